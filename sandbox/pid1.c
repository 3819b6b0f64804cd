/*
 * pid1: nbgate-init's init role inside the namespaces (sandbox/sandbox.h):
 * builds the root, starts the confined server, then reaps, forwards ports
 * and handles SIGTERM with a grace period. The server's output goes to a
 * pipe the shim reads: nothing here holds a host file (CRIU).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sbx.h"

struct pid1 {
	const struct sandbox_spec *s;
	int report;            /* to the shim, until "ok" */
	int out_wr;            /* the server's stdout+stderr (the shim logs it) */
	int sig_fd;
	pid_t server;
	int status;            /* the server's wait status, once it exited */
	bool server_done;
	int64_t kill_at_us;    /* 0, or when the SIGKILL is due */
	struct sbx_fwd *fwd;
	const struct sock_fprog *seccomp; /* borrowed from the shim */
};

/* "failed <step> <reason>" to the shim, then exit 125. */
static void __attribute__((noreturn)) pid1_fail(struct pid1 *p, const char *step,
						const char *reason)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "failed %s %s\n", step, reason);
	if (n > 0)
		sbx_write_all(p->report, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (p->server > 0)
		kill(-p->server, SIGKILL);
	_exit(125);
}

static void __attribute__((noreturn)) pid1_fail_err(struct pid1 *p, struct err *e)
{
	char step[64];
	const char *reason = sbx_err_step(e ? e->msg : "unknown error", step, sizeof(step));
	pid1_fail(p, step[0] ? step : "init", reason);
}

/* Only 0, 1, 2 and the three pipes to the shim survive into PID 1. */
static void close_inherited(const struct sbx_pid1_fds *fds)
{
	int keep[3] = { fds->sync_rd, fds->report_wr, fds->out_wr }, lo = 3;
	for (int i = 0; i < 3; i++) /* sort the three */
		for (int j = i + 1; j < 3; j++)
			if (keep[j] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (int i = 0; i < 3; i++) {
		if (keep[i] > lo)
			syscall(SYS_close_range, (unsigned)lo, (unsigned)keep[i] - 1, 0U);
		if (keep[i] + 1 > lo)
			lo = keep[i] + 1;
	}
	syscall(SYS_close_range, (unsigned)lo, ~0U, 0U);
}

/* After pivot_root: 0, 1 and 2 on the sandbox's own /dev/null, so that
 * no host file stays open in PID 1 (CRIU could not restore it). */
static void stdio_inside(struct pid1 *p)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		pid1_fail(p, "stdio", strerror(errno));
	close(null);
}

/* The server child: never returns. No allocation, no logging. */
static void __attribute__((noreturn)) server_child(struct pid1 *p, int out_wr, int exec_wr)
{
	const struct sandbox_spec *s = p->s;
	const char *step = "setsid";
	sigset_t none;
	/* the shim's blocked set came down to PID 1: the server starts clean */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (setsid() < 0 || null < 0)
		goto fail;
	step = "stdio";
	if (dup2(null, 0) < 0 || dup2(out_wr, 1) < 0 || dup2(out_wr, 2) < 0)
		goto fail;
	step = "chdir";
	if (chdir(s->cwd ? s->cwd : s->home_dst) < 0)
		goto fail;
	if (sbx_drop_privs(s->uid, s->gid, p->seccomp, true, &step) < 0)
		goto fail;
	execve(s->argv[0], s->argv, s->env);
	step = "execve";
fail:;
	char line[256];
	int n = snprintf(line, sizeof(line), "%s %s", step, strerror(errno));
	if (n > 0)
		sbx_write_all(exec_wr, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	_exit(125);
}

static void start_server(struct pid1 *p)
{
	int ex[2];
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	p->sig_fd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK);
	if (p->sig_fd < 0 || pipe2(ex, O_CLOEXEC) < 0)
		pid1_fail(p, "fork", strerror(errno));
	p->server = fork();
	if (p->server < 0)
		pid1_fail(p, "fork", strerror(errno));
	if (p->server == 0)
		server_child(p, p->out_wr, ex[1]);
	close(p->out_wr);
	p->out_wr = -1;
	close(ex[1]);
	char msg[256];
	ssize_t n;
	while ((n = read(ex[0], msg, sizeof(msg) - 1)) < 0 && errno == EINTR)
		;
	close(ex[0]);
	if (n > 0) { /* "<step> <reason>" from the child: it did not exec */
		msg[n] = 0;
		char *sp = strchr(msg, ' ');
		if (sp)
			*sp++ = 0;
		waitpid(p->server, NULL, 0);
		p->server = 0;
		pid1_fail(p, msg, sp ? sp : "");
	}
}

/* PID 1 gives up root too: same order, no close_range (it keeps its
 * pipes and sockets), then non-dumpable so the server's uid cannot
 * ptrace or read it. */
static void drop_self(struct pid1 *p)
{
	const char *step = NULL;
	if (sbx_drop_privs(p->s->uid, p->s->gid, p->seccomp, false, &step) < 0)
		pid1_fail(p, step, strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		pid1_fail(p, "dumpable", strerror(errno));
}

static void setup(struct pid1 *p, const struct sbx_pid1_fds *fds)
{
	struct err *e = NULL;
	char go;
	if (read(fds->sync_rd, &go, 1) != 1)
		_exit(125); /* the shim failed or died: it reports */
	if (sbx_fault("cgroupns") || unshare(CLONE_NEWCGROUP) < 0)
		pid1_fail(p, "cgroupns", strerror(errno));
	if (sbx_rootfs_setup(p->s, &e) < 0 || sbx_rootfs_add_user(p->s, &e) < 0 ||
	    sbx_fwd_new(p->s, "/run/nbgate", &p->fwd, &e) < 0)
		pid1_fail_err(p, e);
	stdio_inside(p);
	/* the network (pasta) is ready only after the second byte */
	if (read(fds->sync_rd, &go, 1) != 1)
		pid1_fail(p, "net", "shim gave up");
	close(fds->sync_rd);
	/* pasta configured the namespace; we still have CAP_NET_ADMIN */
	if (p->s->net == SANDBOX_NET_EGRESS && sbx_egress_filter(p->s, &e) < 0)
		pid1_fail_err(p, e);
	start_server(p);
	drop_self(p);
	sbx_write_all(p->report, "ok\n", 3);
	close(p->report);
	p->report = -1;
}

static void reap(struct pid1 *p)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		if (pid == p->server) {
			p->status = st;
			p->server_done = true;
		}
}

static void on_signals(struct pid1 *p)
{
	struct signalfd_siginfo si;
	while (read(p->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		if (si.ssi_signo == SIGUSR1) { /* a checkpoint is about to start */
			sbx_fwd_drop_conns(p->fwd);
			continue;
		}
		/* SIGTERM/SIGINT: the server's group first, everyone after
		 * the grace period */
		kill(-p->server, SIGTERM);
		if (!p->kill_at_us) {
			int64_t g = p->s->stop_grace_ms ? p->s->stop_grace_ms : 5000;
			p->kill_at_us = sbx_now_us() + g * 1000;
		}
	}
	reap(p);
}

static int exit_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 125;
}

static int poll_timeout(const struct pid1 *p)
{
	if (!p->kill_at_us)
		return -1;
	int64_t left = (p->kill_at_us - sbx_now_us()) / 1000 + 1;
	return left < 0 ? 0 : (int)left;
}

static void __attribute__((noreturn)) loop(struct pid1 *p)
{
	struct pollfd pfd[1 + 2 * 256 + 32];
	while (!p->server_done) {
		pfd[0] = (struct pollfd){ .fd = p->sig_fd, .events = POLLIN };
		int n = sbx_fwd_pollfds(p->fwd, pfd + 1, (int)(sizeof(pfd) / sizeof(pfd[0])) - 1);
		int r = poll(pfd, (nfds_t)n + 1, poll_timeout(p));
		if (r < 0 && errno != EINTR)
			break;
		if (p->kill_at_us && sbx_now_us() >= p->kill_at_us) {
			kill(-1, SIGKILL); /* every process of the uid but us */
			p->kill_at_us = sbx_now_us() + 100000;
		}
		if (r <= 0)
			continue;
		if (pfd[0].revents)
			on_signals(p);
		sbx_fwd_handle(p->fwd, pfd + 1, n);
	}
	/* exiting kills every process left in the pid namespace */
	_exit(exit_code(p->status));
}

void sbx_pid1_main(const struct sandbox_spec *s, const struct sbx_pid1_fds *fds)
{
	struct pid1 p = { .s = s, .report = fds->report_wr, .out_wr = fds->out_wr,
			  .sig_fd = -1, .seccomp = fds->seccomp };
	close_inherited(fds);
	/* Its own session: CRIU refuses to dump a tree whose session leader
	 * is outside the pid namespace (the shim's session otherwise). */
	if (setsid() < 0)
		pid1_fail(&p, "setsid", strerror(errno));
	setup(&p, fds);
	loop(&p);
}
