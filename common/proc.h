/*
 * proc: spawn, reap and identify child processes (libuv process.c model).
 *
 * proc_spawn() forks; the child does only async-signal-safe work (no
 * malloc, no logs): dup2 the stdio fds, setsid, set ids, close every fd
 * >= 3, chdir, execve. If any step fails the child writes its errno to a
 * CLOEXEC pipe and _exits(127); the parent reads the pipe (EOF means exec
 * succeeded) and returns an error naming argv[0]. So "command not found"
 * is a synchronous error, not a mysterious exit status later.
 *
 * Pids are identified across restarts by (pid, start time) because a pid
 * alone may be reused.
 */
#ifndef NBGATE_COMMON_PROC_H
#define NBGATE_COMMON_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

struct proc_opts {
	const char *const *argv;  /* argv[0] is the path (no PATH search) */
	const char *const *envp;  /* NULL = empty environment */
	const char *cwd;          /* NULL = inherit */
	int stdin_fd;             /* -1 = /dev/null; the fds are borrowed */
	int stdout_fd;
	int stderr_fd;
	bool new_session;         /* setsid(): own process group, no ctty */
	bool set_ids;             /* setgroups(0), setgid(gid), setuid(uid) */
	uid_t uid;
	gid_t gid;
	bool pass_fd3;            /* install fd3 (borrowed) as fd 3 in the child,
				   * e.g. nbgate-init's status pipe */
	int fd3;
};

/*
 * Starts a process. On success *out is its pid and the caller must reap it
 * (proc_reap / proc_kill_and_reap). Errors: errno of the failing step in
 * the child (ENOENT, EACCES, ...) or of fork/pipe. Thread: any; do not
 * call with signals handled by threads that the child might inherit.
 */
int proc_spawn(const struct proc_opts *opts, pid_t *out, struct err **err);

/*
 * waitpid() wrapper (EINTR retried). Returns pid when reaped (*status
 * set if status non-NULL), 0 when still running and !block, < 0 (-errno)
 * on error (ECHILD: not our child or already reaped).
 */
int proc_reap(pid_t pid, int *status, bool block);

/*
 * SIGTERM, waits up to timeout_ms for exit, then SIGKILL and a blocking
 * reap. Signals the process group too when pid leads one. Blocks up to
 * timeout_ms: not for the event loop with large timeouts.
 */
void proc_kill_and_reap(pid_t pid, int timeout_ms);

/* Start time (field 22 of /proc/<pid>/stat, clock ticks since boot), or -1. */
int64_t proc_start_time(pid_t pid);

/* true when pid exists (not a zombie) and its start time matches
 * (start_time < 0 skips the check). */
bool proc_alive(pid_t pid, int64_t start_time);

#endif
