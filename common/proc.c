#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"

/* Which child step failed, reported with its errno over the pipe. */
enum proc_step {
	PROC_STEP_FDS,
	PROC_STEP_SETSID,
	PROC_STEP_SETIDS,
	PROC_STEP_CHDIR,
	PROC_STEP_EXEC,
};

static const char *const proc_step_names[] = {
	[PROC_STEP_FDS] = "set up fds",
	[PROC_STEP_SETSID] = "setsid",
	[PROC_STEP_SETIDS] = "set uid/gid",
	[PROC_STEP_CHDIR] = "chdir",
	[PROC_STEP_EXEC] = "exec",
};

/* Child after fork: report and die (libuv uv__write_errno). */
static void __attribute__((noreturn))
proc_child_fail(int fd, enum proc_step step)
{
	int msg[2] = { (int)step, errno };
	ssize_t n;

	do
		n = write(fd, msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/*
 * Child after fork: install fds 0-2. A source below 3 could be clobbered
 * by an earlier dup2, so such sources are first moved above 2.
 */
static int proc_child_stdio(const int src_in[3], int devnull)
{
	int src[3];

	for (int i = 0; i < 3; i++) {
		src[i] = src_in[i] < 0 ? devnull : src_in[i];
		if (src[i] < 3 && src[i] != i) {
			src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
			if (src[i] < 0)
				return -1;
		}
	}
	for (int i = 0; i < 3; i++) {
		if (src[i] == i) {
			/* dup2 onto itself keeps CLOEXEC: clear it by hand */
			if (fcntl(i, F_SETFD, 0) < 0)
				return -1;
		} else if (dup2(src[i], i) < 0) {
			return -1;
		}
	}
	return 0;
}

/* Child after fork: close everything >= lo except keep (CLOEXEC anyway). */
static void proc_child_close_fds(int lo, int keep)
{
	if (keep > lo)
		close_range((unsigned)lo, (unsigned)keep - 1, 0);
	if (close_range((unsigned)keep + 1, ~0U, 0) < 0) {
		/* pre-5.9 kernel: bounded fallback */
		for (int fd = keep + 1; fd < 4096; fd++)
			close(fd);
	}
}

/* Child after fork: default dispositions and an empty mask for the exec'd program. */
static void proc_child_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL); /* SIGKILL/SIGSTOP fail harmlessly */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Child after fork: installs stdio and, when asked, fd 3; errfd is moved
 * above every fd being installed first. Returns the (moved) errfd.
 */
static int proc_child_fds(const struct proc_opts *o, int errfd, int devnull)
{
	const int src[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
	int low = o->pass_fd3 ? 4 : 3;

	if (errfd < low) {
		int moved = fcntl(errfd, F_DUPFD_CLOEXEC, low);

		if (moved < 0)
			_exit(127);
		errfd = moved;
	}
	if (o->pass_fd3 && o->fd3 < 3)
		proc_child_fail(errfd, PROC_STEP_FDS); /* would be clobbered by stdio */
	if (proc_child_stdio(src, devnull) < 0)
		proc_child_fail(errfd, PROC_STEP_FDS);
	if (!o->pass_fd3)
		return errfd;
	/* dup2 onto itself keeps CLOEXEC: clear it by hand */
	if ((o->fd3 == 3 ? fcntl(3, F_SETFD, 0) : dup2(o->fd3, 3)) < 0)
		proc_child_fail(errfd, PROC_STEP_FDS);
	return errfd;
}

static void __attribute__((noreturn))
proc_child(const struct proc_opts *o, int errfd, int devnull)
{
	static const char *const empty_env[] = { NULL };

	errfd = proc_child_fds(o, errfd, devnull);
	if (o->new_session && setsid() < 0)
		proc_child_fail(errfd, PROC_STEP_SETSID);
	if (o->set_ids && (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 ||
			   setuid(o->uid) < 0))
		proc_child_fail(errfd, PROC_STEP_SETIDS);
	proc_child_close_fds(o->pass_fd3 ? 4 : 3, errfd);
	if (o->cwd && chdir(o->cwd) < 0)
		proc_child_fail(errfd, PROC_STEP_CHDIR);
	proc_child_signals();
	execve(o->argv[0], (char *const *)o->argv,
	       (char *const *)(o->envp ? o->envp : empty_env));
	proc_child_fail(errfd, PROC_STEP_EXEC);
}

/* Parent: EOF on the pipe means exec succeeded; a message means it did not. */
static int proc_read_child_error(int fd, int msg[2])
{
	ssize_t n;

	do
		n = read(fd, msg, 2 * sizeof(int));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)(2 * sizeof(int));
}

static int proc_fork(const struct proc_opts *o, int pipefd[2], int devnull,
		     pid_t *out, struct err **err)
{
	sigset_t all, old;
	pid_t pid;
	int saved;

	/* No handler of ours may run in the child between fork and exec. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		proc_child(o, pipefd[1], devnull);
	}
	saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		errno = saved;
		return err_set_errno(err, "spawn '%s': fork", o->argv[0]);
	}
	*out = pid;
	return 0;
}

int proc_spawn(const struct proc_opts *o, pid_t *out, struct err **err)
{
	cleanup_close int devnull = -1;
	int pipefd[2], msg[2], r;
	pid_t pid = -1;

	if (!o->argv || !o->argv[0])
		return err_set(err, EINVAL, "spawn: empty argv");
	if (o->stdin_fd < 0 || o->stdout_fd < 0 || o->stderr_fd < 0) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0)
			return err_set_errno(err, "spawn '%s': open /dev/null",
					     o->argv[0]);
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return err_set_errno(err, "spawn '%s': pipe", o->argv[0]);
	r = proc_fork(o, pipefd, devnull, &pid, err);
	close(pipefd[1]);
	if (r < 0) {
		close(pipefd[0]);
		return r;
	}
	r = proc_read_child_error(pipefd[0], msg);
	close(pipefd[0]);
	if (!r) {
		*out = pid;
		return 0;
	}
	proc_reap(pid, NULL, true);
	if (msg[0] < 0 || msg[0] > PROC_STEP_EXEC)
		msg[0] = PROC_STEP_EXEC;
	errno = msg[1];
	return err_set_errno(err, "spawn '%s': %s", o->argv[0],
			     proc_step_names[msg[0]]);
}

int proc_reap(pid_t pid, int *status, bool block)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r > 0 && status)
		*status = st;
	return (int)r;
}

static void proc_signal(pid_t pid, int sig, bool group)
{
	if (group)
		kill(-pid, sig);
	kill(pid, sig);
}

void proc_kill_and_reap(pid_t pid, int timeout_ms)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	bool group = getpgid(pid) == pid;
	int waited = 0, r;

	if (pid <= 0)
		return;
	proc_signal(pid, SIGTERM, group);
	while ((r = proc_reap(pid, NULL, false)) == 0 && waited < timeout_ms) {
		nanosleep(&tick, NULL);
		waited += 10;
	}
	if (r != 0)
		return; /* reaped, or not our child */
	proc_signal(pid, SIGKILL, group);
	proc_reap(pid, NULL, true);
}

/* Reads state (field 3) and starttime (field 22) of /proc/<pid>/stat. */
static int proc_stat(pid_t pid, char *state, int64_t *start)
{
	char path[64], buf[1024], *end;
	cleanup_close int fd = -1;
	unsigned long long st;
	const char *p;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may contain spaces and ')': the last ')' ends it */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	*state = p[2];
	p += 3;
	/* fields 4..21 lie between the state and starttime */
	for (int field = 4; field <= 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	errno = 0;
	st = strtoull(p, &end, 10);
	if (errno || end == p || (*end != ' ' && *end != '\n' && *end))
		return -1;
	*start = (int64_t)st;
	return 0;
}

int64_t proc_start_time(pid_t pid)
{
	int64_t start;
	char state;

	if (pid <= 0 || proc_stat(pid, &state, &start) < 0)
		return -1;
	return start;
}

bool proc_alive(pid_t pid, int64_t start_time)
{
	int64_t start;
	char state;

	if (pid <= 0 || proc_stat(pid, &state, &start) < 0)
		return false;
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	return start_time < 0 || start == start_time;
}
