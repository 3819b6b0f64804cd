/*
 * util: fault injection and small helpers of nbgate-init (sandbox/sbx.h).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sbx.h"

const char *sbx_fault_step;

bool sbx_fault(const char *step)
{
	if (!sbx_fault_step || strcmp(sbx_fault_step, step) != 0)
		return false;
	errno = EPERM;
	return true;
}

int sbx_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int64_t sbx_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *sbx_err_step(const char *msg, char *step, size_t cap)
{
	const char *colon = strstr(msg, ": ");
	size_t n = colon ? (size_t)(colon - msg) : 0;
	step[0] = 0;
	if (!colon || n == 0 || n >= cap || memchr(msg, ' ', n))
		return msg;
	memcpy(step, msg, n);
	step[n] = 0;
	return colon + 2;
}
