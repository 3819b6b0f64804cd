/*
 * shim: nbgate-init's outer role (sandbox/sandbox.h): cgroup, clone of
 * PID 1 into new namespaces, egress networking, the status fd, signal
 * forwarding and cleanup.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sbx.h"

#define PASTA "/usr/bin/pasta"

struct shim {
	const struct sandbox_spec *s;
	int status_fd;
	int sig_fd;
	struct sbx_cgroup cg;
	pid_t pid1;
	pid_t pasta;
	int out_rd;            /* the server's stdout+stderr, from PID 1's tree */
	int log_fd, old_fd;    /* log_path and log_path.1 */
	int64_t t0;
	struct sock_fprog *seccomp;
};

static void status_line(struct shim *sh, const char *line)
{
	if (sh->status_fd >= 0) {
		sbx_write_all(sh->status_fd, line, strlen(line));
		close(sh->status_fd);
		sh->status_fd = -1;
	}
}

static void wait_pid1(struct shim *sh, int *st)
{
	while (waitpid(sh->pid1, st, 0) < 0 && errno == EINTR)
		;
	sh->pid1 = 0;
}

/* Leaves nothing: processes, cgroup, sockets, a stray rootfs mount. */
static void cleanup(struct shim *sh)
{
	if (sh->pid1 > 0) {
		int st;
		kill(sh->pid1, SIGKILL);
		wait_pid1(sh, &st);
	}
	if (sh->pasta > 0) {
		kill(sh->pasta, SIGKILL); /* it blocks SIGTERM */
		waitpid(sh->pasta, NULL, 0);
		sh->pasta = 0;
	}
	sbx_cgroup_destroy(&sh->cg);
	if (sh->out_rd >= 0)
		close(sh->out_rd);
	sh->out_rd = -1;
	free(sh->seccomp);
	sh->seccomp = NULL;
	for (int i = 0; i < sh->s->n_ports; i++) {
		cleanup_free char *p = xasprintf("%s/%s", sh->s->sock_dir,
						 sh->s->ports[i].socket_name);
		unlink(p);
	}
	/* mounted only in PID 1's namespace; this catches a host-side one */
	umount2(sh->s->rootfs, MNT_DETACH | UMOUNT_NOFOLLOW);
}

/* "failed <step> <reason>" on the status fd and stderr, then exit 125. */
static int fail(struct shim *sh, const char *step, const char *reason)
{
	char line[600];
	snprintf(line, sizeof(line), "failed %s %s\n", step, reason);
	status_line(sh, line);
	dprintf(2, "nbgate-init: %s: %s\n", step, reason);
	cleanup(sh);
	return 125;
}

/* The step is the error's "<step>: " prefix when it has one (sbx.h). */
static int fail_err(struct shim *sh, const char *step, struct err *e)
{
	char buf[64];
	const char *reason = sbx_err_step(e ? e->msg : "unknown", buf, sizeof(buf));
	int r = fail(sh, buf[0] ? buf : step, buf[0] ? reason : (e ? e->msg : "unknown"));
	err_free(&e);
	return r;
}

static int block_signals(struct shim *sh)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sh->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return sh->sig_fd;
}

/* pasta's capability ceiling: CAP_SYS_ADMIN to setns into PID 1's network
 * namespace, CAP_NET_ADMIN to create the tap and configure addresses and
 * routes there. Found by trying (docs/sandbox.md): without either it
 * fails; NET_BIND_SERVICE (no port forwarding here), NET_RAW (ICMP goes
 * through ping sockets), SETUID/SETGID/SETPCAP (--runas 0:0 changes
 * nothing) and the rest are not needed. */
#define PASTA_CAPS ((1ULL << CAP_SYS_ADMIN) | (1ULL << CAP_NET_ADMIN))

/* In the forked child, before exec: only PASTA_CAPS stay in the bounding
 * set (exec as uid 0 makes the bounding set the permitted set), nothing
 * inheritable or ambient, and no_new_privs (no set-id or file-capability
 * gain through anything pasta might exec). Drops the rest of the current
 * permitted set too. -1 on any failure: pasta is not started then. */
static int pasta_confine(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)PASTA_CAPS, (uint32_t)PASTA_CAPS, 0 },
		{ (uint32_t)(PASTA_CAPS >> 32), (uint32_t)(PASTA_CAPS >> 32), 0 },
	};
	/* headers' CAP_LAST_CAP may be older than the kernel: up to EINVAL */
	for (int c = 0; c < 64; c++) {
		if (PASTA_CAPS & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL && c > CAP_LAST_CAP - 1)
				break;
			return -1;
		}
	}
	if (syscall(SYS_capset, &h, d) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return 0;
}

#define PASTA_EXIT_CONFINE 126

/*
 * Runs pasta with the argv below (see start_pasta) under pasta_confine();
 * it daemonises once the namespace is configured and its pid comes back
 * through a memfd passed as its pid file.
 */
static int pasta_run(struct shim *sh, int nsfd, int mfd, struct err **err)
{
	char ns[64], pidfile[64];
	snprintf(ns, sizeof(ns), "/proc/self/fd/%d", nsfd);
	snprintf(pidfile, sizeof(pidfile), "/proc/self/fd/%d", mfd);
	char *argv[] = { PASTA, "--runas", "0:0", "--config-net", "-q", "-t", "none", "-u", "none",
			 "-T", "none",
			 "-U", "none", "--no-map-gw", "--no-netns-quit", "-P", pidfile,
			 "--netns", ns, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		dup2(dn, 0);
		dup2(dn, 1);
		dup2(dn, 2);
		if (sbx_fault("pasta_caps") || pasta_confine() < 0)
			_exit(PASTA_EXIT_CONFINE);
		execv(PASTA, argv);
		_exit(127);
	}
	int st = -1;
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == PASTA_EXIT_CONFINE)
		return err_set(err, EPERM, "net: dropping capabilities before pasta failed");
	if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return err_set(err, EIO, "net: pasta failed (status %d)", st);
	return 0;
}

/*
 * pasta joins PID 1's network namespace: outbound only. Every port
 * mapping is off (-t/-u none: nothing from the host into the sandbox;
 * -T/-U none and --no-map-gw: the host's loopback stays unreachable).
 * As nobody it cannot setns into a namespace of the initial user
 * namespace, so it keeps uid 0 (--runas 0:0), but with a bounding set of
 * PASTA_CAPS only; once joined it drops NET_ADMIN itself, keeps
 * CAP_SYS_ADMIN (this pasta's choice) and isolates itself. The namespace is an
 * inherited fd; pasta daemonises once the namespace is configured and
 * its pid comes back through a memfd.
 */
static int start_pasta(struct shim *sh, struct err **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)sh->pid1);
	if (sbx_fault("net"))
		return err_set_errno(err, "net: injected");
	cleanup_close int nsfd = open(path, O_RDONLY); /* inherited by pasta */
	cleanup_close int mfd = memfd_create("pasta-pid", 0);
	if (nsfd < 0 || mfd < 0)
		return err_set_errno(err, "net: open %s", path);
	if (pasta_run(sh, nsfd, mfd, err) < 0)
		return -EIO;
	char buf[32] = "";
	ssize_t n = pread(mfd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return err_set(err, EIO, "net: pasta wrote no pid");
	buf[n] = 0;
	sh->pasta = (pid_t)strtol(buf, NULL, 10);
	return 0;
}

#define SBX_CLONE_FLAGS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET)

/* The log files, opened here outside the sandbox: PID 1 and the server
 * hold no host file, which keeps their tree restorable by CRIU. */
static int open_logs(struct shim *sh, struct err **err)
{
	cleanup_free char *old = xasprintf("%s.1", sh->s->log_path);
	sh->log_fd = open(sh->s->log_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			  0640);
	sh->old_fd = open(old, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (sh->log_fd < 0 || sh->old_fd < 0 || sbx_fault("log"))
		return err_set_errno(err, "log: %s", sh->s->log_path);
	return 0;
}

/* Bounded per wakeup; at EOF (every writer gone) the pipe is closed. */
static void relay_output(struct shim *sh)
{
	char buf[65536];
	for (int i = 0; i < 16 && sh->out_rd >= 0; i++) {
		ssize_t n = read(sh->out_rd, buf, sizeof(buf));
		if (n > 0) {
			sbx_log_append(sh->log_fd, sh->old_fd, buf, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(sh->out_rd);
			sh->out_rd = -1;
		}
		return;
	}
}

/* Clones PID 1 (fork-like raw clone: no separate stack); it waits for one
 * byte on the sync pipe, after the shim put it into the cgroup, before it
 * unshares its cgroup namespace (so the namespace is rooted there). */
static int clone_pid1(struct shim *sh, int *sync_wr, int *rep_rd, struct err **err)
{
	int sync[2], rep[2], out[2];
	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		return err_set_errno(err, "clone: pipe");
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(sync[0]), close(sync[1]), close(rep[0]), close(rep[1]);
		return err_set_errno(err, "clone: pipe");
	}
	pid_t pid = sbx_fault("clone") ? -1
		: (pid_t)syscall(SYS_clone, SBX_CLONE_FLAGS | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0) {
		int r = err_set_errno(err, "clone: namespaces");
		close(sync[0]), close(sync[1]), close(rep[0]), close(rep[1]);
		close(out[0]), close(out[1]);
		return r;
	}
	if (pid == 0) {
		struct sbx_pid1_fds fds = { .sync_rd = sync[0], .report_wr = rep[1],
					    .out_wr = out[1], .seccomp = sh->seccomp };
		close(sync[1]);
		close(rep[0]);
		close(out[0]);
		sbx_pid1_main(sh->s, &fds);
	}
	sh->pid1 = pid;
	close(sync[0]);
	close(rep[1]);
	close(out[1]);
	sh->out_rd = out[0];
	fcntl(sh->out_rd, F_SETFL, O_NONBLOCK);
	*sync_wr = sync[1];
	*rep_rd = rep[0];
	return 0;
}

/* Forwards SIGTERM/SIGINT/SIGHUP to PID 1; reaps. true once PID 1 exited. */
static bool on_signals(struct shim *sh, int *st)
{
	struct signalfd_siginfo si;
	while (read(sh->sig_fd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo != SIGCHLD && sh->pid1 > 0)
			kill(sh->pid1, SIGTERM);
	pid_t w;
	bool gone = false;
	while ((w = waitpid(-1, st, WNOHANG)) > 0) /* pasta's daemon too: subreaper */
		if (w == sh->pid1) {
			gone = true;
			sh->pid1 = 0;
		}
	return gone;
}

/* Reads PID 1's report line ("ok" or "failed ..."); line is "" when PID 1
 * died without one (its status is then in *st and *gone is set). */
static void read_report(struct shim *sh, int rep_rd, char *line, size_t cap, bool *gone,
			int *st)
{
	size_t len = 0;
	line[0] = 0;
	while (!*gone) {
		struct pollfd pfd[2] = { { rep_rd, POLLIN, 0 }, { sh->sig_fd, POLLIN, 0 } };
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return;
		if (pfd[1].revents)
			*gone = on_signals(sh, st);
		if (!pfd[0].revents)
			continue;
		ssize_t n = read(rep_rd, line + len, cap - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		line[len] = 0;
		if (memchr(line, '\n', len) || len == cap - 1)
			return;
	}
}

static int exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 125;
}

static int setup_report(struct shim *sh, int rep_rd, bool *gone, int *st)
{
	char line[600];
	read_report(sh, rep_rd, line, sizeof(line), gone, st);
	close(rep_rd);
	if (!strncmp(line, "ok\n", 3)) {
		char up[64];
		snprintf(up, sizeof(up), "up %lld\n", (long long)(sbx_now_us() - sh->t0));
		status_line(sh, up);
		return 0;
	}
	if (!*gone)
		wait_pid1(sh, st);
	if (strncmp(line, "failed ", 7) != 0) {
		char why[64];
		snprintf(why, sizeof(why), "PID 1 exited during setup (status %d)", *st);
		return fail(sh, "init", why);
	}
	line[strcspn(line, "\n")] = 0;
	char *step = line + 7, *reason = strchr(step, ' ');
	if (reason)
		*reason++ = 0;
	return fail(sh, step, reason ? reason : "");
}

/* Up to PID 1 being released into its setup; 0, or the exit status. */
static int shim_start(struct shim *sh, int *rep_rd)
{
	const struct sandbox_spec *s = sh->s;
	struct err *e = NULL;
	int sync_wr = -1;
	if (block_signals(sh) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return fail(sh, "signals", strerror(errno));
	if (sbx_seccomp_bpf(s->seccomp_profile, &sh->seccomp, &e) < 0)
		return fail_err(sh, "seccomp_compile", e);
	if (open_logs(sh, &e) < 0)
		return fail_err(sh, "log", e);
	if (sbx_cgroup_create(s, &sh->cg, &e) < 0)
		return fail_err(sh, "cgroup", e);
	if (clone_pid1(sh, &sync_wr, rep_rd, &e) < 0)
		return fail_err(sh, "clone", e);
	if (sbx_cgroup_attach(&sh->cg, sh->pid1, &e) < 0) {
		close(sync_wr);
		return fail_err(sh, "cgroup", e);
	}
	/* "g": PID 1 builds its root; "n" (after pasta, which runs meanwhile):
	 * it may start the server. A close without "n" makes it give up. */
	if (write(sync_wr, "g", 1) != 1)
		return fail(sh, "sync", strerror(errno));
	if (s->net == SANDBOX_NET_EGRESS && start_pasta(sh, &e) < 0) {
		close(sync_wr);
		return fail_err(sh, "net", e);
	}
	int r = write(sync_wr, "n", 1) == 1 ? 0 : fail(sh, "sync", strerror(errno));
	close(sync_wr);
	return r;
}

/* Until PID 1 is gone: signals, and the server's output into the log.
 * Returns PID 1's exit status for main(). */
static int shim_wait(struct shim *sh, bool gone, int st)
{
	while (!gone) {
		struct pollfd pfd[2] = { { sh->sig_fd, POLLIN, 0 }, { sh->out_rd, POLLIN, 0 } };
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			relay_output(sh);
		if (pfd[0].revents)
			gone = on_signals(sh, &st);
	}
	/* what the server wrote last; bounded: the writers are gone or
	 * killed with the pid namespace */
	for (int i = 0; i < 64 && sh->out_rd >= 0; i++)
		relay_output(sh);
	cleanup(sh);
	return gone ? exit_status(st) : 125;
}

int sbx_shim_run(const struct sandbox_spec *s, int status_fd)
{
	struct shim sh = { .s = s, .status_fd = status_fd, .t0 = sbx_now_us(), .out_rd = -1,
			   .log_fd = -1, .old_fd = -1 };
	int rep_rd = -1, st = 0;
	bool gone = false;
	int r = shim_start(&sh, &rep_rd);
	if (r)
		return r;
	r = setup_report(&sh, rep_rd, &gone, &st);
	if (r)
		return r;
	return shim_wait(&sh, gone, st);
}

/* The restore's half of shim_start: everything PID 1 would have built is
 * rebuilt by CRIU from the images, except the root mount and the cgroup. */
static int shim_restore_start(struct shim *sh, sbx_restore_fn fn, void *arg)
{
	const struct sandbox_spec *s = sh->s;
	struct err *e = NULL;
	int out[2];
	if (block_signals(sh) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return fail(sh, "signals", strerror(errno));
	if (open_logs(sh, &e) < 0)
		return fail_err(sh, "log", e);
	if (sbx_cgroup_create(s, &sh->cg, &e) < 0)
		return fail_err(sh, "cgroup", e);
	/* our own mount namespace: the root mount dies with the shim */
	if (unshare(CLONE_NEWNS) < 0)
		return fail(sh, "restore", strerror(errno));
	if (sbx_rootfs_overlay(s, &e) < 0)
		return fail_err(sh, "restore", e);
	if (pipe2(out, O_CLOEXEC) < 0)
		return fail(sh, "restore", strerror(errno));
	sh->out_rd = out[0];
	fcntl(sh->out_rd, F_SETFL, O_NONBLOCK);
	int r = fn(arg, s, out[1], &sh->pid1, &e);
	close(out[1]);
	if (r < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", e ? e->msg : "unknown");
		err_free(&e);
		sh->pid1 = 0; /* CRIU killed what it had restored */
		return fail(sh, "restore", why);
	}
	return 0;
}

int sbx_shim_restore(const struct sandbox_spec *s, int status_fd, sbx_restore_fn fn, void *arg)
{
	struct shim sh = { .s = s, .status_fd = status_fd, .t0 = sbx_now_us(), .out_rd = -1,
			   .log_fd = -1, .old_fd = -1 };
	char up[64];
	int r = shim_restore_start(&sh, fn, arg);
	if (r)
		return r;
	snprintf(up, sizeof(up), "up %lld\n", (long long)(sbx_now_us() - sh.t0));
	status_line(&sh, up);
	return shim_wait(&sh, false, 0);
}
