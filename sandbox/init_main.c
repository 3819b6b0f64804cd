/*
 * nbgate-init: the sandbox shim and PID 1 (sandbox/sandbox.h).
 *
 *   nbgate-init <spec.json>
 *   nbgate-init --cleanup <id> <rootfs>   sandbox_cleanup() after a shim
 *                                          was killed (exit 0, or 1 + stderr)
 *
 * Runs as root, with fd 3 as the status fd (optional: when fd 3 is not
 * open, nothing is reported there). Exit status: the server's (code, or
 * 128+signal); 125 when setup failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "sandbox/sandbox.h"
#include "sandbox/sbx.h"

/* 0, 1 and 2 open (on /dev/null if the caller closed them), so no pipe
 * or socket made later lands on a standard fd number. */
static void std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(125);
}

int main(int argc, char **argv)
{
	struct sandbox_spec *s = NULL;
	struct err *e = NULL;
	std_fds();
	int status_fd = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
	if (status_fd >= 0)
		fcntl(status_fd, F_SETFD, FD_CLOEXEC);
	if (argc == 4 && !strcmp(argv[1], "--cleanup")) {
		if (sandbox_cleanup(argv[2], argv[3], &e) == 0)
			return 0;
		dprintf(2, "nbgate-init: cleanup: %s\n", e->msg);
		err_free(&e);
		return 1;
	}
	if (argc != 2) {
		dprintf(2, "usage: nbgate-init <spec.json>\n");
		return 125;
	}
	if (sandbox_spec_read(argv[1], &s, &e) < 0) {
		char line[600];
		snprintf(line, sizeof(line), "failed spec %s\n", e->msg);
		if (status_fd >= 0 && write(status_fd, line, strlen(line)) < 0)
			(void)errno;
		dprintf(2, "nbgate-init: spec: %s\n", e->msg);
		err_free(&e);
		return 125;
	}
#ifdef SANDBOX_FAULTS
	sbx_fault_step = s->fail_step;
#endif
	int r = sbx_shim_run(s, status_fd);
	sandbox_spec_free(s);
	return r;
}
