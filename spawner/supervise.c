/*
 * spawner/supervise: the shared machinery of the process-tree backends
 * (see supervise.h). Moved out of process.c so that `local` runs the same
 * readiness probe, exit watching and stop deadlines.
 */
#define LOG_PREFIX "spawner: "

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/supervise.h"

#define MSG_TAIL_BYTES 1024

/* ---- placeholders (pure) ---- */

static const char *var_value(const struct spawner_vars *v, const char *name, size_t n)
{
	static const struct { const char *name; size_t off; } table[] = {
		{ "sock", offsetof(struct spawner_vars, sock) },
		{ "base_url", offsetof(struct spawner_vars, base_url) },
		{ "home", offsetof(struct spawner_vars, home) },
		{ "user", offsetof(struct spawner_vars, user) },
		{ "server", offsetof(struct spawner_vars, server) },
		{ "run_dir", offsetof(struct spawner_vars, run_dir) },
		{ "port", offsetof(struct spawner_vars, port) },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strlen(table[i].name) == n && memcmp(table[i].name, name, n) == 0)
			return *(const char *const *)((const char *)v + table[i].off);
	return NULL;
}

char *spawner_expand_arg(const char *arg, const struct spawner_vars *v)
{
	struct buf b;
	const char *p = arg, *close, *val;

	buf_init(&b, 1 << 20);
	while (*p) {
		close = *p == '{' ? strchr(p + 1, '}') : NULL;
		val = close ? var_value(v, p + 1, (size_t)(close - p - 1)) : NULL;
		if (val) {
			buf_appends(&b, val);
			p = close + 1;
		} else {
			buf_append(&b, p, 1);
			p++;
		}
	}
	if (!b.data)
		return xstrdup("");
	return buf_detach(&b, NULL);
}

char **spawner_expand_argv(const char *const *cmd, const struct spawner_vars *v,
			   struct err **err)
{
	size_t n = spawner_strv_len(cmd);
	char **argv;

	if (n == 0)
		return err_set(err, EINVAL, "empty server command"), NULL;
	argv = xcalloc(n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++)
		argv[i] = spawner_expand_arg(cmd[i], v);
	return argv;
}

bool spawner_cmd_uses(const char *const *cmd, const char *placeholder)
{
	for (size_t i = 0; cmd && cmd[i]; i++)
		if (strstr(cmd[i], placeholder))
			return true;
	return false;
}

void spawner_env_put(char **env, size_t *n, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);

	if (!eq || klen == 0)
		return; /* not K=V: ignored rather than passed on malformed */
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=') {
			free(env[i]);
			env[i] = xstrdup(kv);
			return;
		}
	}
	env[(*n)++] = xstrdup(kv);
}

size_t spawner_strv_len(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* ---- addresses, directories, the log tail ---- */

int spawner_parse_upstream(const char *up, struct sockaddr_storage *ss, socklen_t *len,
			   struct err **err)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	const char *colon;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(up, "unix:", 5) == 0) {
		if (up[5] != '/' || strlen(up + 5) >= sizeof(sun->sun_path))
			return err_set(err, EINVAL,
				       "socket path '%s' is not absolute or longer than %zu bytes: "
				       "use a shorter state directory", up + 5, sizeof(sun->sun_path) - 1);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, up + 5, strlen(up + 5) + 1);
		*len = sizeof(*sun);
		return 0;
	}
	colon = strrchr(up, ':');
	if (!colon || strncmp(up, "127.0.0.1:", 10) != 0)
		return err_set(err, EINVAL, "upstream '%s' is neither unix:/path nor 127.0.0.1:port", up);
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port <= 0 || port > 65535)
		return err_set(err, EINVAL, "upstream '%s': bad port", up);
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*sin);
	return 0;
}

int spawner_ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, struct err **err)
{
	struct stat st;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return err_set_errno(err, "create directory '%s'", path);
	if (lstat(path, &st) < 0)
		return err_set_errno(err, "stat '%s'", path);
	if (!S_ISDIR(st.st_mode))
		return err_set(err, ENOTDIR, "'%s' is not a directory", path);
	if (st.st_uid != uid && st.st_uid != geteuid())
		return err_set(err, EPERM, "'%s' belongs to uid %u, not to uid %u", path,
			       (unsigned)st.st_uid, (unsigned)uid);
	if ((st.st_uid != uid || st.st_gid != gid) && lchown(path, uid, gid) < 0)
		return err_set_errno(err, "chown '%s' to %u:%u", path, (unsigned)uid, (unsigned)gid);
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return err_set_errno(err, "chmod '%s'", path);
	return 0;
}

char *spawner_log_tail(const char *path)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char raw[MSG_TAIL_BYTES + 1], joined[3 * MSG_TAIL_BYTES + 1], *out;
	size_t j = 0, start = 0;
	struct stat st;
	ssize_t n;
	off_t off;

	if (fd < 0 || fstat(fd, &st) < 0)
		return xstrdup("");
	off = st.st_size > MSG_TAIL_BYTES ? st.st_size - MSG_TAIL_BYTES : 0;
	n = pread(fd, raw, MSG_TAIL_BYTES, off);
	if (n <= 0)
		return xstrdup("");
	while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
		n--;
	/* Start at a line boundary when the read began mid-line. */
	if (off > 0)
		while (start < (size_t)n && raw[start++] != '\n')
			;
	for (size_t i = start; i < (size_t)n; i++) {
		if (raw[i] == '\n') {
			static const char sep[3] = { ' ', '|', ' ' }; /* no NUL */

			memcpy(joined + j, sep, sizeof(sep));
			j += sizeof(sep);
		} else if (raw[i] != '\r') {
			joined[j++] = raw[i];
		}
	}
	out = xmalloc(j + 64);
	log_redact(out, j + 64, joined, j);
	return out;
}

char *spawner_exit_reason(int status)
{
	if (status < 0)
		return xstrdup("server process ended");
	if (WIFEXITED(status))
		return xasprintf("server exited with status %d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return xasprintf("server was killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
	return xasprintf("server ended with wait status %d", status);
}

bool spawner_answers_connect(const struct sockaddr_storage *ss, socklen_t len)
{
	cleanup_close int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200 * 1000 };

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return connect(fd, (const struct sockaddr *)ss, len) == 0;
}

/* ---- readiness probe (non-blocking; errors only mean "not yet") ---- */

void spawner_probe_reset(struct spawner_probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->phase = SPAWNER_PROBE_IDLE;
	p->sent = 0;
}

static int probe_connect(struct spawner_probe *p)
{
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	p->fd = fd;
	if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) == 0) {
		p->phase = SPAWNER_PROBE_SENT; /* nothing sent yet: sent == 0 */
		return 1;
	}
	if (errno == EINPROGRESS) {
		p->phase = SPAWNER_PROBE_CONNECTING;
		return 0;
	}
	spawner_probe_reset(p); /* ENOENT, ECONNREFUSED, EAGAIN: not listening yet */
	return 0;
}

static bool probe_connected(struct spawner_probe *p)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	/* getpeername fails with ENOTCONN while the connect is in flight. */
	if (getpeername(p->fd, (struct sockaddr *)&peer, &plen) == 0) {
		p->phase = SPAWNER_PROBE_SENT;
		return true;
	}
	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr)
		spawner_probe_reset(p);
	return false;
}

/* Sends (the rest of) the request: 1 when all is sent, 0 not yet (or reset). */
static int probe_send(struct spawner_probe *p)
{
	cleanup_free char *req = xasprintf("GET %sapi/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
					   "User-Agent: nbgate-spawner\r\nConnection: close\r\n\r\n",
					   p->base_url ? p->base_url : "/");
	size_t len = strlen(req);
	ssize_t n;

	while (p->sent < len) {
		n = send(p->fd, req + p->sent, len - p->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			spawner_probe_reset(p);
			return 0;
		}
		p->sent += (size_t)n;
	}
	return 1;
}

int spawner_probe_step(struct spawner_probe *p)
{
	char resp[8];
	ssize_t n;

	if (p->phase == SPAWNER_PROBE_IDLE && !probe_connect(p))
		return 0;
	if (p->phase == SPAWNER_PROBE_CONNECTING && !probe_connected(p))
		return 0;
	if (!probe_send(p))
		return 0;
	n = recv(p->fd, resp, 5, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n == 5 && memcmp(resp, "HTTP/", 5) == 0) {
		spawner_probe_reset(p);
		return 1;
	}
	if (n > 0 && n < 5)
		return 0; /* partial status line: wait for the rest */
	spawner_probe_reset(p);
	return 0;
}

/* ---- the watcher ---- */

static void watch_tick(lws_sorted_usec_list_t *sul);

void spawner_watch_init(struct spawner_watch *w, struct spawner *sp,
			struct spawner_server *srv, const struct spawner_watch_hooks *hooks,
			pid_t pid, int64_t pid_start, bool ours)
{
	memset(w, 0, sizeof(*w));
	w->sp = sp;
	w->srv = srv;
	w->hooks = hooks;
	w->pid = pid;
	w->pid_start = pid_start;
	w->ours = ours;
	w->probe.fd = -1;
	w->probe.base_url = srv->base_url;
	w->interval_ms = SPAWNER_PROBE_FIRST_MS;
	w->kill_after_ms = sp->cfg.stop_timeout_ms;
}

void spawner_watch_clear(struct spawner_watch *w)
{
	lws_sul_cancel(&w->sul);
	spawner_probe_reset(&w->probe);
	for (size_t i = 0; i < 2; i++) {
		free(w->log_paths[i]);
		w->log_paths[i] = NULL;
	}
	free(w->fail_reason);
	w->fail_reason = NULL;
}

void spawner_watch_schedule(struct spawner_watch *w, int ms)
{
	lws_sul_schedule(w->sp->cfg.lws, 0, &w->sul, watch_tick, (lws_usec_t)ms * 1000);
}

void spawner_watch_signal(struct spawner_watch *w, int sig)
{
	/* A re-adopted pid is checked first: it may have been reused. */
	if (!w->ours && !proc_alive(w->pid, w->pid_start))
		return;
	if ((sig == SIGKILL || w->term_group) && getpgid(w->pid) == w->pid &&
	    kill(-w->pid, sig) == 0)
		return;
	kill(w->pid, sig);
}

/*
 * true when the process has ended; *status is its wait status (-1 when
 * unknown: re-adopted processes are not our children). Stragglers of its
 * group are killed before the leader is reaped, while its pid still
 * names the group.
 */
static bool watch_exited(struct spawner_watch *w, int *status)
{
	siginfo_t si = { 0 };

	*status = -1;
	if (!w->ours)
		return !proc_alive(w->pid, w->pid_start);
	if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	if (si.si_pid != w->pid)
		return false;
	kill(-w->pid, SIGKILL);
	if (proc_reap(w->pid, status, true) != w->pid)
		*status = -1;
	return true;
}

/* " | "-joined tails of the watcher's logs, "" when silent. Caller frees. */
static char *watch_tails(struct spawner_watch *w)
{
	char *t[2] = { NULL, NULL }, *all;

	for (size_t i = 0; i < 2; i++)
		t[i] = w->log_paths[i] ? spawner_log_tail(w->log_paths[i]) : xstrdup("");
	all = xasprintf("%s%s%s", t[0], t[0][0] && t[1][0] ? " | " : "", t[1]);
	free(t[0]);
	free(t[1]);
	return all;
}

/* The message for an ended process; NULL when nothing is to be reported. */
static char *exit_message(struct spawner_watch *w, int status, enum spawner_state *to)
{
	struct spawner_server *srv = w->srv;
	cleanup_free char *reason = w->fail_reason ? xstrdup(w->fail_reason)
						   : spawner_exit_reason(status);
	cleanup_free char *tail = NULL;

	log_info("'%s' pid %d: %s", srv->slug, (int)w->pid, reason);
	*to = SPAWNER_STOPPED;
	if (srv->state == SPAWNER_STOPPED || srv->state == SPAWNER_FAILED)
		return NULL; /* a reaped leftover of a failed start */
	if (srv->state == SPAWNER_STOPPING)
		return xstrdup("server stopped");
	/* a dump ends the sandbox on purpose; a failed restore falls back:
	 * the backend's ended hook reports both */
	if (srv->state == SPAWNER_CHECKPOINTING || srv->state == SPAWNER_RESTORING)
		return NULL;
	if (srv->state != SPAWNER_STARTING && !w->fail_reason && (status == 0 || status == -1))
		return steal_ptr(&reason);
	*to = SPAWNER_FAILED;
	tail = watch_tails(w);
	return xasprintf("%s%s%s%s", reason,
			 srv->state == SPAWNER_STARTING && !w->fail_reason ? " before it answered" : "",
			 tail[0] ? "; last output: " : "", tail);
}

/* Top level for an ended process: the transition's error is logged here. */
static void watch_on_exit(struct spawner_watch *w, int status)
{
	struct spawner *sp = w->sp;
	struct spawner_server *srv = w->srv;
	enum spawner_state to;
	cleanup_free char *msg = exit_message(w, status, &to);
	struct err *e = NULL;

	if (w->hooks->ended)
		w->hooks->ended(w);
	w->hooks->release(sp, srv); /* frees w */
	if (!msg)
		return;
	if (spawner_transition(sp, srv, to, msg, &e) < 0) {
		log_warn("record exit of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
}

static int step_starting(struct spawner_watch *w)
{
	struct spawner_server *srv = w->srv;
	cleanup_free char *tail = NULL, *msg = NULL;
	struct err *e = NULL;

	if (spawner_probe_step(&w->probe) == 1) {
		if (srv->state == SPAWNER_RESTORING && w->hooks->restored) {
			w->hooks->restored(w);
			return SPAWNER_WATCH_MS;
		}
		if (spawner_transition(w->sp, srv, SPAWNER_RUNNING, "server ready", &e) < 0) {
			log_warn("record readiness of '%s': %s", srv->slug, e->msg);
			err_free(&e);
		}
		return SPAWNER_WATCH_MS;
	}
	if (time_mono_ms() < w->deadline_ms) {
		/* the socket accepted and holds our request: the server is up,
		 * so look again almost at once (DESIGN.md: noticed within 20 ms;
		 * bench/spawn measured 60 ms when this waited a full tick) */
		if (w->probe.phase == SPAWNER_PROBE_SENT && w->probe.fd >= 0)
			return SPAWNER_PROBE_REPLY_MS;
		if (w->interval_ms < SPAWNER_PROBE_MAX_MS)
			w->interval_ms += SPAWNER_PROBE_FIRST_MS;
		return w->interval_ms;
	}
	/* Timed out: kill it now, keep watching only to reap it. */
	spawner_probe_reset(&w->probe);
	spawner_watch_signal(w, SIGKILL);
	w->killed = true;
	if (srv->state == SPAWNER_RESTORING) { /* reported as a failed restore on exit */
		free(w->fail_reason);
		w->fail_reason = xasprintf("the restored server did not answer within %lld ms",
					   (long long)w->sp->cfg.spawn_timeout_ms);
		return SPAWNER_STOP_POLL_MS;
	}
	tail = watch_tails(w);
	msg = xasprintf("server did not answer within %lld ms%s%s",
			(long long)w->sp->cfg.spawn_timeout_ms,
			tail[0] ? "; last output: " : "", tail);
	if (spawner_transition(w->sp, srv, SPAWNER_FAILED, msg, &e) < 0) {
		log_warn("record spawn timeout of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
	return SPAWNER_STOP_POLL_MS;
}

/* One timer step; returns the delay until the next one, or -1 when w is gone. */
static int watch_step(struct spawner_watch *w)
{
	int status;

	bool gone = watch_exited(w, &status);

	/* after the exit check: a last status line written before the exit
	 * is read before the exit is reported */
	if (w->hooks->tick)
		w->hooks->tick(w);
	if (gone) {
		watch_on_exit(w, status);
		return -1;
	}
	switch (w->srv->state) {
	case SPAWNER_STARTING:
	case SPAWNER_RESTORING:
		return step_starting(w);
	case SPAWNER_STOPPING:
	case SPAWNER_FAILED:
	case SPAWNER_STOPPED:
		if (!w->killed && w->kill_at_ms && time_mono_ms() >= w->kill_at_ms) {
			log_warn("'%s' did not stop within the grace period: SIGKILL", w->srv->slug);
			spawner_watch_signal(w, SIGKILL);
			w->killed = true;
		}
		return SPAWNER_STOP_POLL_MS;
	default:
		return SPAWNER_WATCH_MS;
	}
}

static void watch_tick(lws_sorted_usec_list_t *sul)
{
	struct spawner_watch *w = lws_container_of(sul, struct spawner_watch, sul);
	int next = watch_step(w);

	if (next > 0)
		spawner_watch_schedule(w, next);
}

int spawner_watch_start(struct spawner_watch *w, struct err **err)
{
	if (!w->srv->upstream)
		return err_set(err, EINVAL, "server '%s' has no upstream", w->srv->slug);
	if (spawner_parse_upstream(w->srv->upstream, &w->probe.addr, &w->probe.addrlen, err) < 0)
		return -EINVAL;
	w->deadline_ms = time_mono_ms() + w->sp->cfg.spawn_timeout_ms;
	spawner_watch_schedule(w, SPAWNER_PROBE_FIRST_MS);
	return 0;
}

void spawner_watch_stop(struct spawner_watch *w)
{
	spawner_probe_reset(&w->probe);
	spawner_watch_signal(w, SIGTERM);
	w->kill_at_ms = time_mono_ms() + w->kill_after_ms;
	spawner_watch_schedule(w, SPAWNER_STOP_POLL_MS);
}

void spawner_watch_adopted(struct spawner_watch *w)
{
	spawner_watch_schedule(w, SPAWNER_WATCH_MS);
}

void spawner_watch_stop_wait(struct spawner *sp, int64_t timeout_ms)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	int64_t end = time_mono_ms() + timeout_ms;
	bool pending = true;

	/* The loop is not running at shutdown: step the watchers by hand. */
	for (int i = 0; pending && i < 100000 && time_mono_ms() < end; i++) {
		pending = false;
		for (struct spawner_server *srv = sp->servers; srv; srv = srv->next) {
			struct spawner_watch *w = srv->priv;

			if (!w || srv->state == SPAWNER_RUNNING || srv->state == SPAWNER_STARTING)
				continue;
			lws_sul_cancel(&w->sul);
			if (watch_step(w) > 0) {
				pending = true;
				spawner_watch_schedule(w, SPAWNER_STOP_POLL_MS);
			}
		}
		if (pending)
			nanosleep(&tick, NULL);
	}
}
