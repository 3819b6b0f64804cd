/*
 * nbgate-init: the sandbox shim and PID 1 (sandbox/sandbox.h).
 *
 *   nbgate-init <spec.json>
 *   nbgate-init --cleanup <id> <rootfs>   sandbox_cleanup() after a shim
 *                                          was killed (exit 0, or 1 + stderr)
 *   nbgate-init --restore <criu> <dir> <spec.json>
 *                                          the shim, restoring the tree
 *                                          dumped in dir instead of
 *                                          starting the server
 *
 * Runs as root, with fd 3 as the status fd (optional: when fd 3 is not
 * open, nothing is reported there). Exit status: the server's (code, or
 * 128+signal); 125 when setup failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/ckpt.h"
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

/* Restores take seconds per GiB; the daemon bounds them too. */
#define CRIU_RESTORE_TIMEOUT_MS (10 * 60 * 1000)

struct restore_arg {
	const char *criu, *dir;
};

static int restore_cb(void *arg, const struct sandbox_spec *s, int log_wr, pid_t *pid1,
		      struct err **err)
{
	const struct restore_arg *a = arg;
	struct ckpt_target t = { .tool = a->criu, .dir = a->dir, .rootfs = s->rootfs,
				 .log_wr = log_wr, .timeout_ms = CRIU_RESTORE_TIMEOUT_MS };
	return ckpt_restore(&ckpt_criu_ops, &t, pid1, err);
}

static int read_spec(const char *path, int status_fd, struct sandbox_spec **s)
{
	struct err *e = NULL;
	if (sandbox_spec_read(path, s, &e) == 0)
		return 0;
	char line[600];
	snprintf(line, sizeof(line), "failed spec %s\n", e->msg);
	if (status_fd >= 0 && write(status_fd, line, strlen(line)) < 0)
		(void)errno;
	dprintf(2, "nbgate-init: spec: %s\n", e->msg);
	err_free(&e);
	return 125;
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
	if (argc == 5 && !strcmp(argv[1], "--restore")) {
		struct restore_arg a = { argv[2], argv[3] };
		if (read_spec(argv[4], status_fd, &s))
			return 125;
		int r = sbx_shim_restore(s, status_fd, restore_cb, &a);
		sandbox_spec_free(s);
		return r;
	}
	if (argc != 2) {
		dprintf(2, "usage: nbgate-init <spec.json>\n");
		return 125;
	}
	if (read_spec(argv[1], status_fd, &s))
		return 125;
#ifdef SANDBOX_FAULTS
	sbx_fault_step = s->fail_step;
#endif
	int r = sbx_shim_run(s, status_fd);
	sandbox_spec_free(s);
	return r;
}
