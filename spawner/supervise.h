/*
 * spawner/supervise: the machinery the process-tree backends share
 * (`process` and `local`): argv placeholders, environments, upstream
 * addresses, run directories, log tails for failure messages, the
 * non-blocking readiness probe, and the per-server watcher that drives
 * readiness, exits and stop deadlines from one lws_sul timer.
 *
 * A backend's per-server state (srv->priv) begins with a
 * `struct spawner_watch`; the watcher calls the backend back through
 * `struct spawner_watch_hooks` for what differs (nbgate-init's status
 * pipe, sandbox cleanup, GPU release).
 *
 * Threading: event-loop thread only (the watcher uses lws_sul timers);
 * the pure helpers are thread-safe.
 */
#ifndef NBGATE_SPAWNER_SUPERVISE_H
#define NBGATE_SPAWNER_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <libwebsockets.h>

#include "spawner/spawner.h"

#define SPAWNER_PROBE_FIRST_MS 10
#define SPAWNER_PROBE_MAX_MS 20
#define SPAWNER_PROBE_REPLY_MS 2 /* connected and asked: the answer is a moment away */
#define SPAWNER_WATCH_MS 100
#define SPAWNER_STOP_POLL_MS 20

/* Values of the {placeholders} of a server command; NULL = not known. */
struct spawner_vars {
	const char *sock;
	const char *base_url;
	const char *home;
	const char *user;
	const char *server;
	const char *run_dir;
	const char *port;
};

/*
 * One argv element with every known {name} replaced by its value. Text
 * that is not a known placeholder (JSON, Python code) stays verbatim; a
 * value is inserted as bytes and never split, quoted or re-expanded.
 * Caller owns the result (free()).
 */
char *spawner_expand_arg(const char *arg, const struct spawner_vars *v);

/*
 * cmd with every element expanded (no PATH search), NULL-ended; caller
 * frees with xstrv_free(). Errors: EINVAL empty command.
 */
char **spawner_expand_argv(const char *const *cmd, const struct spawner_vars *v,
			   struct err **err);

/* True when some element of cmd contains `placeholder` ("{sock}"). */
bool spawner_cmd_uses(const char *const *cmd, const char *placeholder);

/*
 * Appends a copy of "K=V" to env (*n entries, room for one more),
 * replacing an earlier entry with key K; a string without '=' or with an
 * empty key is ignored.
 */
void spawner_env_put(char **env, size_t *n, const char *kv);

/* Entries of a NULL-ended vector (NULL counts as empty). */
size_t spawner_strv_len(const char *const *v);

/*
 * Parses "unix:/abs/path" (path <= 107 bytes) or "127.0.0.1:port" into a
 * socket address. Errors: EINVAL naming the upstream (a too long path
 * says to use a shorter state directory).
 */
int spawner_parse_upstream(const char *up, struct sockaddr_storage *ss, socklen_t *len,
			   struct err **err);

/*
 * mkdir path with mode, or accept what is there when it is a directory
 * (not a symlink) owned by `uid`; then chown to uid:gid and chmod to mode
 * when they differ. Errors: errno of mkdir/lstat/chown/chmod, ENOTDIR,
 * EPERM owned by someone else (never taken over silently).
 */
int spawner_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, struct err **err);

/*
 * The last lines of a log file for a failure message: at most 1 KiB,
 * lines joined with " | ", secrets redacted (Jupyter prints URLs with
 * ?token=). Caller frees; "" when there is no output.
 */
char *spawner_log_tail(const char *path);

/* "server exited with status 3", "... killed by signal 9 (Killed)"; -1 =
 * unknown. Caller frees. */
char *spawner_exit_reason(int status);

/* Blocking connect with a 200 ms deadline (adoption, once at startup). */
bool spawner_answers_connect(const struct sockaddr_storage *ss, socklen_t len);

enum spawner_probe_phase { SPAWNER_PROBE_IDLE, SPAWNER_PROBE_CONNECTING, SPAWNER_PROBE_SENT };

/*
 * Readiness probe: connect, send "GET <base_url>api/status", read
 * "HTTP/". Non-blocking: every error only means "not yet". Zero it and
 * set fd = -1 before use.
 */
struct spawner_probe {
	int fd;
	enum spawner_probe_phase phase;
	size_t sent;
	const char *base_url;          /* borrowed */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

void spawner_probe_reset(struct spawner_probe *p);

/* One step: 1 when the server answered with anything HTTP, else 0. */
int spawner_probe_step(struct spawner_probe *p);

struct spawner_watch;

/* What differs per backend; every hook is optional except release. */
struct spawner_watch_hooks {
	/* Each timer step, before the process is checked (status pipes). */
	void (*tick)(struct spawner_watch *w);
	/* The process has ended: release resources (sandbox, GPUs) before
	 * the transition is recorded. */
	void (*ended)(struct spawner_watch *w);
	/* Frees srv->priv (which holds w) and sets it NULL: the backend's
	 * server_release op. */
	void (*release)(struct spawner *sp, struct spawner_server *srv);
	/* A server in `restoring` answers: the backend reports the restore
	 * (spawner_restore_done) instead of the watcher's own transition. */
	void (*restored)(struct spawner_watch *w);
};

/*
 * The watcher of one server process. Embedded FIRST in the backend's
 * srv->priv. Fields are the watcher's; backends set them between
 * spawner_watch_init() and the first schedule.
 */
struct spawner_watch {
	struct spawner *sp;
	struct spawner_server *srv;
	const struct spawner_watch_hooks *hooks;
	lws_sorted_usec_list_t sul;
	pid_t pid;
	int64_t pid_start;
	bool ours;              /* our child (waitid works), not re-adopted */
	bool killed;            /* SIGKILL sent */
	bool term_group;        /* SIGTERM the whole process group (else the pid) */
	struct spawner_probe probe;
	int interval_ms;
	int64_t deadline_ms;    /* monotonic: readiness deadline */
	int64_t kill_at_ms;     /* monotonic: SIGKILL when stopping, 0 = none */
	int64_t kill_after_ms;  /* stop: SIGTERM -> SIGKILL delay */
	char *log_paths[2];     /* owned; tails quoted in failure messages */
	char *fail_reason;      /* owned; set by the backend (a setup step that
				 * failed): replaces the exit status in messages */
};

/* Fills w for pid (ours = our child); sets hooks and zeroes the rest. */
void spawner_watch_init(struct spawner_watch *w, struct spawner *sp,
			struct spawner_server *srv, const struct spawner_watch_hooks *hooks,
			pid_t pid, int64_t pid_start, bool ours);

/* Cancels the timer, closes the probe and frees the watcher's strings
 * (not w itself). */
void spawner_watch_clear(struct spawner_watch *w);

/* (Re)arms the timer in ms. */
void spawner_watch_schedule(struct spawner_watch *w, int ms);

/* Signals the process (group for SIGKILL, and SIGTERM when term_group);
 * an adopted pid is checked for reuse first. */
void spawner_watch_signal(struct spawner_watch *w, int sig);

/*
 * Begins watching for readiness at srv->upstream with the spawn timeout.
 * Errors: EINVAL bad upstream.
 */
int spawner_watch_start(struct spawner_watch *w, struct err **err);

/* Begins a stop: SIGTERM now, SIGKILL after kill_after_ms. */
void spawner_watch_stop(struct spawner_watch *w);

/* Adopted and answering: watch for exit only. */
void spawner_watch_adopted(struct spawner_watch *w);

/*
 * ops->stop_wait for backends whose srv->priv starts with a watcher:
 * steps every stopping watcher by hand (the loop is not running at
 * shutdown) until all stopped or timeout_ms passed. Blocks.
 */
void spawner_watch_stop_wait(struct spawner *sp, int64_t timeout_ms);

#endif
