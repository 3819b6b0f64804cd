/*
 * spawner/process: runs the server command as a plain child process of the
 * gateway, UNSANDBOXED, as the gateway's own user. For development and
 * tests only; the sandboxed `local` backend (issue 3) becomes the default.
 *
 * Per server: run dir <state>/run/<slug>/ (0700) holding server.sock,
 * server.log and runtime/; home <state>/home/<user slug>/ (0700). The
 * command is cfg->server_cmd with {placeholders} expanded per argv element
 * and no shell anywhere. The environment is built from scratch (never the
 * gateway's own). The child leads its own session, so stop signals the
 * whole process group: SIGTERM, then SIGKILL after the grace period.
 *
 * Output goes to server.log (a file, not a pipe we read): a server must
 * survive a gateway restart to be re-adopted, and a pipe whose reader went
 * away would kill it with SIGPIPE on its next log line. Failure messages
 * quote the file's tail.
 *
 * Readiness, exits and stop deadlines are driven by one lws_sul timer per
 * server: readiness is probed every 10 ms at first, backing off to 20 ms,
 * with non-blocking sockets only (connect, send a GET, read "HTTP/").
 */
#define LOG_PREFIX "spawner/process: "

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
#include <unistd.h>

#include <libwebsockets.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/spawner.h"

#define PROBE_FIRST_MS 10
#define PROBE_MAX_MS 20
#define PROBE_REPLY_MS 2 /* connected and asked: the answer is a moment away */
#define WATCH_MS 100
#define STOP_POLL_MS 20
#define LOG_TAIL_BYTES 8192
#define MSG_TAIL_BYTES 1024
#define ENV_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

struct spawner_process {
	struct spawner base;
};

enum probe_phase { PROBE_IDLE, PROBE_CONNECTING, PROBE_SENT };

/* Backend state of one server (srv->priv). */
struct proc_server {
	struct spawner *sp;
	struct spawner_server *srv;
	lws_sorted_usec_list_t sul;
	pid_t pid;
	int64_t pid_start;
	bool ours;              /* our child (waitid works), not re-adopted */
	bool killed;            /* SIGKILL sent */
	int probe_fd;
	enum probe_phase phase;
	size_t sent;
	int interval_ms;
	int64_t deadline_ms;    /* monotonic: readiness deadline */
	int64_t kill_at_ms;     /* monotonic: SIGKILL when stopping, 0 = none */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

static struct spawner_process *spawner_process_from(struct spawner *sp)
{
	if (sp->ops != &spawner_process_ops)
		abort(); /* BUG: wrong backend downcast (git files_downcast) */
	return (struct spawner_process *)sp;
}

/* -code of the error already set in *err (EIO when the caller passed none). */
static int err_rc(struct err **err)
{
	return err && *err ? -(*err)->code : -EIO;
}

/* ---- placeholders (pure; unit tested) ---- */

struct process_vars {
	const char *sock;
	const char *base_url;
	const char *home;
	const char *user;
	const char *server;
	const char *run_dir;
	const char *port;
};

static const char *var_value(const struct process_vars *v, const char *name, size_t n)
{
	static const struct { const char *name; size_t off; } table[] = {
		{ "sock", offsetof(struct process_vars, sock) },
		{ "base_url", offsetof(struct process_vars, base_url) },
		{ "home", offsetof(struct process_vars, home) },
		{ "user", offsetof(struct process_vars, user) },
		{ "server", offsetof(struct process_vars, server) },
		{ "run_dir", offsetof(struct process_vars, run_dir) },
		{ "port", offsetof(struct process_vars, port) },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strlen(table[i].name) == n && memcmp(table[i].name, name, n) == 0)
			return *(const char *const *)((const char *)v + table[i].off);
	return NULL;
}

/*
 * One argv element with every known {name} replaced by its value. Text
 * that is not a known placeholder (JSON, Python code) stays verbatim; a
 * value is inserted as bytes and never split, quoted or re-expanded.
 */
static char *process_expand_arg(const char *arg, const struct process_vars *v)
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

static bool cmd_uses(const char *const *cmd, const char *placeholder)
{
	for (size_t i = 0; cmd && cmd[i]; i++)
		if (strstr(cmd[i], placeholder))
			return true;
	return false;
}

/* argv[0] as an absolute path: proc_spawn does no PATH search. */
static char *resolve_cmd(const char *name, struct err **err)
{
	static const char *const dirs[] = { "/usr/local/bin", "/usr/bin", "/bin" };

	if (strchr(name, '/')) {
		if (name[0] != '/')
			return err_set(err, EINVAL, "server command '%s' must be an absolute path",
				       name), NULL;
		return xstrdup(name);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *path = xasprintf("%s/%s", dirs[i], name);

		if (access(path, X_OK) == 0)
			return path;
		free(path);
	}
	return err_set(err, ENOENT, "server command '%s' not found in /usr/local/bin:/usr/bin:/bin",
		       name), NULL;
}

/* The expanded argv, NULL-ended; caller frees with xstrv_free(). */
static char **process_build_argv(const char *const *cmd, const struct process_vars *v,
				 struct err **err)
{
	size_t n = 0;
	char **argv;

	while (cmd && cmd[n])
		n++;
	if (n == 0)
		return err_set(err, EINVAL, "empty server command"), NULL;
	argv = xcalloc(n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++)
		argv[i] = process_expand_arg(cmd[i], v);
	if (argv[0][0] != '/') {
		char *abs = resolve_cmd(argv[0], err);

		if (!abs) {
			for (size_t i = 0; i < n; i++)
				free(argv[i]);
			free(argv);
			return NULL;
		}
		free(argv[0]);
		argv[0] = abs;
	}
	return argv;
}

/* Appends "K=V" to env (n entries), replacing an earlier entry with key K. */
static void env_put(char **env, size_t *n, const char *kv)
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

static size_t strv_len(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/*
 * The child's environment: a fixed minimal base, then the gateway's
 * per-server env (tokens), then cfg->server_env; later entries win.
 * Never the gateway's own environment. Caller frees with xstrv_free().
 */
static char **process_build_env(const struct spawner_cfg *cfg, const struct spawner_server *srv)
{
	size_t cap = 8 + strv_len((const char *const *)srv->env) + strv_len(cfg->server_env);
	char **env = xcalloc(cap + 1, sizeof(*env));
	char *tmp[5];
	size_t n = 0;

	env_put(env, &n, ENV_PATH);
	env_put(env, &n, "LANG=C.UTF-8");
	tmp[0] = xasprintf("HOME=%s", srv->home);
	tmp[1] = xasprintf("USER=%s", srv->user);
	tmp[2] = xasprintf("JUPYTER_RUNTIME_DIR=%s/runtime", srv->run_dir);
	tmp[3] = xasprintf("NBGATE_BASE_URL=%s", srv->base_url);
	tmp[4] = xasprintf("NBGATE_SERVER_NAME=%s", srv->name);
	for (size_t i = 0; i < 5; i++) {
		env_put(env, &n, tmp[i]);
		free(tmp[i]);
	}
	for (size_t i = 0; srv->env && srv->env[i]; i++)
		env_put(env, &n, srv->env[i]);
	for (size_t i = 0; cfg->server_env && cfg->server_env[i]; i++)
		env_put(env, &n, cfg->server_env[i]);
	return env;
}

/* ---- addresses, directories, the log tail ---- */

/* Parses "unix:/abs/path" or "127.0.0.1:port" into a socket address. */
static int process_parse_upstream(const char *up, struct sockaddr_storage *ss, socklen_t *len,
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

/* A free loopback port, by binding port 0 (racy but fine for development). */
static int process_free_port(struct err **err)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return err_set_errno(err, "pick a free loopback port");
	return ntohs(sin.sin_port);
}

/* mkdir -m mode, or check that what is there is our own directory. */
static int ensure_dir(const char *path, mode_t mode, struct err **err)
{
	struct stat st;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return err_set_errno(err, "create directory '%s'", path);
	if (lstat(path, &st) < 0)
		return err_set_errno(err, "stat '%s'", path);
	if (!S_ISDIR(st.st_mode))
		return err_set(err, ENOTDIR, "'%s' is not a directory", path);
	if (st.st_uid != geteuid())
		return err_set(err, EPERM, "'%s' belongs to uid %u, not to nbgate", path,
			       (unsigned)st.st_uid);
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return err_set_errno(err, "chmod '%s'", path);
	return 0;
}

static int prepare_dirs(const struct spawner_server *srv, struct err **err)
{
	cleanup_free char *runtime = xasprintf("%s/runtime", srv->run_dir);

	if (ensure_dir(srv->home, 0700, err) < 0 || ensure_dir(srv->run_dir, 0700, err) < 0 ||
	    ensure_dir(runtime, 0700, err) < 0)
		return err_wrap(err, "prepare server directories");
	return 0;
}

/*
 * The last lines of server.log for a failure message: at most
 * MSG_TAIL_BYTES, lines joined with " | ", secrets redacted (Jupyter
 * prints URLs with ?token=). Caller frees; "" when there is no output.
 */
static char *process_log_tail(const char *run_dir)
{
	cleanup_free char *path = xasprintf("%s/server.log", run_dir);
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

static char *exit_reason(int status)
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

/* ---- readiness probe (non-blocking; errors only mean "not yet") ---- */

static void probe_reset(struct proc_server *ps)
{
	if (ps->probe_fd >= 0)
		close(ps->probe_fd);
	ps->probe_fd = -1;
	ps->phase = PROBE_IDLE;
	ps->sent = 0;
}

static int probe_connect(struct proc_server *ps)
{
	int fd = socket(ps->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	ps->probe_fd = fd;
	if (connect(fd, (struct sockaddr *)&ps->addr, ps->addrlen) == 0) {
		ps->phase = PROBE_SENT; /* nothing sent yet: sent == 0 */
		return 1;
	}
	if (errno == EINPROGRESS) {
		ps->phase = PROBE_CONNECTING;
		return 0;
	}
	probe_reset(ps); /* ENOENT, ECONNREFUSED, EAGAIN: not listening yet */
	return 0;
}

static bool probe_connected(struct proc_server *ps)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	/* getpeername fails with ENOTCONN while the connect is in flight. */
	if (getpeername(ps->probe_fd, (struct sockaddr *)&peer, &plen) == 0) {
		ps->phase = PROBE_SENT;
		return true;
	}
	if (getsockopt(ps->probe_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr)
		probe_reset(ps);
	return false;
}

/* Sends (the rest of) the request: 1 when all is sent, 0 not yet (or reset). */
static int probe_send(struct proc_server *ps)
{
	cleanup_free char *req = xasprintf("GET %sapi/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
					   "User-Agent: nbgate-spawner\r\nConnection: close\r\n\r\n",
					   ps->srv->base_url);
	size_t len = strlen(req);
	ssize_t n;

	while (ps->sent < len) {
		n = send(ps->probe_fd, req + ps->sent, len - ps->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			probe_reset(ps);
			return 0;
		}
		ps->sent += (size_t)n;
	}
	return 1;
}

/* 1 when the server answered with anything that looks like HTTP. */
static int probe_step(struct proc_server *ps)
{
	char resp[8];
	ssize_t n;

	if (ps->phase == PROBE_IDLE && !probe_connect(ps))
		return 0;
	if (ps->phase == PROBE_CONNECTING && !probe_connected(ps))
		return 0;
	if (!probe_send(ps))
		return 0;
	n = recv(ps->probe_fd, resp, 5, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n == 5 && memcmp(resp, "HTTP/", 5) == 0) {
		probe_reset(ps);
		return 1;
	}
	if (n > 0 && n < 5)
		return 0; /* partial status line: wait for the rest */
	probe_reset(ps);
	return 0;
}

/* ---- watching the process ---- */

static void process_tick(lws_sorted_usec_list_t *sul);

static void schedule(struct proc_server *ps, int ms)
{
	lws_sul_schedule(ps->sp->cfg.lws, 0, &ps->sul, process_tick, (lws_usec_t)ms * 1000);
}

/* Signals the server's process group (it leads its own session). */
static void signal_group(struct proc_server *ps, int sig)
{
	/* A re-adopted pid is checked first: it may have been reused. */
	if (!ps->ours && !proc_alive(ps->pid, ps->pid_start))
		return;
	if (kill(-ps->pid, sig) < 0)
		kill(ps->pid, sig);
}

/*
 * true when the process has ended; *status is its wait status (-1 when
 * unknown: re-adopted processes are not our children). Stragglers of its
 * group are killed before the leader is reaped, while its pid still
 * names the group.
 */
static bool process_exited(struct proc_server *ps, int *status)
{
	siginfo_t si = { 0 };

	*status = -1;
	if (!ps->ours)
		return !proc_alive(ps->pid, ps->pid_start);
	if (waitid(P_PID, (id_t)ps->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	if (si.si_pid != ps->pid)
		return false;
	kill(-ps->pid, SIGKILL);
	if (proc_reap(ps->pid, status, true) != ps->pid)
		*status = -1;
	return true;
}

static void process_release(struct spawner *sp, struct spawner_server *srv)
{
	struct proc_server *ps = srv->priv;

	if (!ps)
		return;
	lws_sul_cancel(&ps->sul);
	probe_reset(ps);
	free(ps);
	srv->priv = NULL;
}

/* Top level for an ended process: the transition's error is logged here. */
static void process_on_exit(struct proc_server *ps, int status)
{
	struct spawner *sp = ps->sp;
	struct spawner_server *srv = ps->srv;
	cleanup_free char *reason = exit_reason(status);
	cleanup_free char *tail = NULL, *msg = NULL;
	enum spawner_state to = SPAWNER_FAILED;
	struct err *e = NULL;

	log_info("'%s' pid %d: %s", srv->slug, (int)ps->pid, reason);
	process_release(sp, srv);
	if (srv->state == SPAWNER_STOPPING || srv->state == SPAWNER_FAILED ||
	    srv->state == SPAWNER_STOPPED) {
		to = SPAWNER_STOPPED;
		msg = xstrdup("server stopped");
	} else if (srv->state != SPAWNER_STARTING && (status == 0 || status == -1)) {
		to = SPAWNER_STOPPED;
		msg = xstrdup(reason);
	} else {
		tail = process_log_tail(srv->run_dir);
		msg = xasprintf("%s%s%s%s", reason,
				srv->state == SPAWNER_STARTING ? " before it answered" : "",
				tail[0] ? "; last output: " : "", tail);
	}
	if (srv->state == SPAWNER_STOPPED || srv->state == SPAWNER_FAILED)
		return; /* a reaped leftover of a failed start: nothing to report */
	if (spawner_transition(sp, srv, to, msg, &e) < 0) {
		log_warn("record exit of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
}

static int step_starting(struct proc_server *ps)
{
	struct spawner_server *srv = ps->srv;
	cleanup_free char *tail = NULL, *msg = NULL;
	struct err *e = NULL;

	if (probe_step(ps) == 1) {
		if (spawner_transition(ps->sp, srv, SPAWNER_RUNNING, "server ready", &e) < 0) {
			log_warn("record readiness of '%s': %s", srv->slug, e->msg);
			err_free(&e);
		}
		return WATCH_MS;
	}
	if (time_mono_ms() < ps->deadline_ms) {
		/* the socket accepted and holds our request: the server is up,
		 * so look again almost at once (DESIGN.md: noticed within 20 ms;
		 * bench/spawn measured 60 ms when this waited a full tick) */
		if (ps->phase == PROBE_SENT && ps->probe_fd >= 0)
			return PROBE_REPLY_MS;
		if (ps->interval_ms < PROBE_MAX_MS)
			ps->interval_ms += PROBE_FIRST_MS;
		return ps->interval_ms;
	}
	/* Timed out: kill it now, keep watching only to reap it. */
	probe_reset(ps);
	signal_group(ps, SIGKILL);
	ps->killed = true;
	tail = process_log_tail(srv->run_dir);
	msg = xasprintf("server did not answer within %lld ms%s%s",
			(long long)ps->sp->cfg.spawn_timeout_ms,
			tail[0] ? "; last output: " : "", tail);
	if (spawner_transition(ps->sp, srv, SPAWNER_FAILED, msg, &e) < 0) {
		log_warn("record spawn timeout of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
	return STOP_POLL_MS;
}

/* One timer step; returns the delay until the next one, or -1 when ps is gone. */
static int process_step(struct proc_server *ps)
{
	int status;

	if (process_exited(ps, &status)) {
		process_on_exit(ps, status);
		return -1;
	}
	switch (ps->srv->state) {
	case SPAWNER_STARTING:
		return step_starting(ps);
	case SPAWNER_STOPPING:
	case SPAWNER_FAILED:
	case SPAWNER_STOPPED:
		if (!ps->killed && ps->kill_at_ms && time_mono_ms() >= ps->kill_at_ms) {
			log_warn("'%s' did not stop within the grace period: SIGKILL", ps->srv->slug);
			signal_group(ps, SIGKILL);
			ps->killed = true;
		}
		return STOP_POLL_MS;
	default:
		return WATCH_MS;
	}
}

static void process_tick(lws_sorted_usec_list_t *sul)
{
	struct proc_server *ps = lws_container_of(sul, struct proc_server, sul);
	int next = process_step(ps);

	if (next > 0)
		schedule(ps, next);
}

/* ---- ops ---- */

/* Chooses the upstream from the command's placeholders and fills vars. */
static int choose_upstream(struct spawner *sp, struct spawner_server *srv,
			   struct process_vars *v, char **sock, char **port, struct err **err)
{
	const char *const *cmd = sp->cfg.server_cmd;
	int p;

	*sock = xasprintf("%s/server.sock", srv->run_dir);
	v->sock = *sock;
	if (cmd_uses(cmd, "{port}")) {
		if ((p = process_free_port(err)) < 0)
			return p;
		*port = xasprintf("%d", p);
		v->port = *port;
	}
	free(srv->upstream);
	if (cmd_uses(cmd, "{sock}"))
		srv->upstream = xasprintf("unix:%s", *sock);
	else if (*port)
		srv->upstream = xasprintf("127.0.0.1:%s", *port);
	else
		srv->upstream = NULL;
	if (!srv->upstream)
		return err_set(err, EINVAL, "server command has neither {sock} nor {port}");
	return 0;
}

static int launch(struct spawner *sp, struct spawner_server *srv, char **argv, char **env,
		  pid_t *pid, struct err **err)
{
	cleanup_free char *log_path = xasprintf("%s/server.log", srv->run_dir);
	cleanup_free char *sock = xasprintf("%s/server.sock", srv->run_dir);
	cleanup_close int log_fd = -1;
	struct proc_opts o = {
		.argv = (const char *const *)argv,
		.envp = (const char *const *)env,
		.cwd = srv->home,
		.stdin_fd = -1,
		.new_session = true,
	};

	/* NEEDSWORK: the log is truncated per start and not rotated while running. */
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (log_fd < 0)
		return err_set_errno(err, "open '%s'", log_path);
	if (unlink(sock) < 0 && errno != ENOENT)
		return err_set_errno(err, "remove stale socket '%s'", sock);
	o.stdout_fd = log_fd;
	o.stderr_fd = log_fd;
	return proc_spawn(&o, pid, err);
}

static struct proc_server *proc_server_new(struct spawner *sp, struct spawner_server *srv,
					   pid_t pid, int64_t pid_start, bool ours)
{
	struct proc_server *ps = xcalloc(1, sizeof(*ps));

	ps->sp = sp;
	ps->srv = srv;
	ps->pid = pid;
	ps->pid_start = pid_start;
	ps->ours = ours;
	ps->probe_fd = -1;
	ps->interval_ms = PROBE_FIRST_MS;
	srv->priv = ps;
	return ps;
}

static int process_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct process_vars v = { .base_url = srv->base_url, .home = srv->home,
				  .user = srv->user, .server = srv->name, .run_dir = srv->run_dir };
	cleanup_free char *sock = NULL, *port = NULL;
	char **argv = NULL, **env = NULL;
	struct proc_server *ps;
	pid_t pid = 0;
	int rc;

	if (srv->priv)
		return err_set_http(err, 409, EBUSY, "the previous process of '%s' is still exiting",
				    srv->slug);
	if (prepare_dirs(srv, err) < 0 || choose_upstream(sp, srv, &v, &sock, &port, err) < 0)
		return err_rc(err);
	argv = process_build_argv(sp->cfg.server_cmd, &v, err);
	if (!argv)
		return err_rc(err);
	env = process_build_env(&sp->cfg, srv);
	spawner_progress(sp, srv, 20, "starting server process");
	rc = launch(sp, srv, argv, env, &pid, err);
	if (rc == 0)
		log_info("'%s' started pid %d: '%s' (unsandboxed)", srv->slug, (int)pid, argv[0]);
	xstrv_free(argv);
	xstrv_free(env);
	if (rc < 0)
		return rc;
	ps = proc_server_new(sp, srv, pid, proc_start_time(pid), true);
	srv->pid = pid;
	srv->pid_start = ps->pid_start;
	ps->deadline_ms = time_mono_ms() + sp->cfg.spawn_timeout_ms;
	if (process_parse_upstream(srv->upstream, &ps->addr, &ps->addrlen, err) < 0 ||
	    spawner__persist(sp, srv, err) < 0) {
		/* Without its pid in the row it could never be stopped after a restart. */
		proc_kill_and_reap(pid, 0);
		process_release(sp, srv);
		srv->pid = 0;
		return err_rc(err);
	}
	spawner_progress(sp, srv, 50, "waiting for the server to answer");
	schedule(ps, PROBE_FIRST_MS);
	return 0;
}

static int process_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct proc_server *ps = srv->priv;

	if (!ps) /* no process (never launched, or already reaped) */
		return spawner_transition(sp, srv, SPAWNER_STOPPED, "server stopped", err);
	probe_reset(ps);
	signal_group(ps, SIGTERM);
	ps->kill_at_ms = time_mono_ms() + sp->cfg.stop_timeout_ms;
	schedule(ps, STOP_POLL_MS);
	return 0;
}

static int process_status(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct proc_server *ps = srv->priv;

	return ps && proc_alive(ps->pid, ps->pid_start) ? 1 : 0;
}

/* Blocking connect with a short deadline: adoption runs once, at startup. */
static bool answers_connect(const struct sockaddr_storage *ss, socklen_t len)
{
	cleanup_close int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200 * 1000 };

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return connect(fd, (const struct sockaddr *)ss, len) == 0;
}

static int process_adopt(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	struct proc_server *ps;

	if (srv->pid <= 0 || !proc_alive(srv->pid, srv->pid_start > 0 ? srv->pid_start : -1))
		return err_set(err, ESRCH, "pid %d is gone", (int)srv->pid);
	/* Only signal a group that this pid still leads (it was setsid'd). */
	if (getpgid(srv->pid) != srv->pid)
		return err_set(err, ESRCH, "pid %d no longer leads its process group", (int)srv->pid);
	ps = proc_server_new(sp, srv, srv->pid, srv->pid_start, false);
	if (!srv->upstream || process_parse_upstream(srv->upstream, &ss, &len, err) < 0 ||
	    !answers_connect(&ss, len)) {
		/* Alive but unreachable: ours and useless, so end it. */
		signal_group(ps, SIGKILL);
		process_release(sp, srv);
		if (err && !*err)
			err_set(err, ESRCH, "pid %d does not answer at '%s'", (int)srv->pid,
				srv->upstream ? srv->upstream : "");
		return -ESRCH;
	}
	ps->addr = ss;
	ps->addrlen = len;
	schedule(ps, WATCH_MS);
	return 0;
}

static void process_stop_wait(struct spawner *sp, int64_t timeout_ms)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	int64_t end = time_mono_ms() + timeout_ms;
	bool pending = true;

	/* The loop is not running at shutdown: step the watchers by hand. */
	for (int i = 0; pending && i < 100000 && time_mono_ms() < end; i++) {
		pending = false;
		for (struct spawner_server *srv = sp->servers; srv; srv = srv->next) {
			struct proc_server *ps = srv->priv;

			if (!ps || srv->state == SPAWNER_RUNNING || srv->state == SPAWNER_STARTING)
				continue;
			lws_sul_cancel(&ps->sul);
			if (process_step(ps) > 0) {
				pending = true;
				schedule(ps, STOP_POLL_MS);
			}
		}
		if (pending)
			nanosleep(&tick, NULL);
	}
}

static int process_init(struct spawner *sp, struct err **err)
{
	cleanup_free char *run = xasprintf("%s/run", sp->cfg.state_dir);
	cleanup_free char *home = xasprintf("%s/home", sp->cfg.state_dir);
	const char *const *cmd = sp->cfg.server_cmd;

	spawner_process_from(sp);
	if (!sp->cfg.lws)
		return err_set(err, EINVAL, "the process backend needs an event loop (lws context)");
	if (!cmd || !cmd[0])
		return err_set(err, EINVAL, "no server command configured");
	if (!cmd_uses(cmd, "{sock}") && !cmd_uses(cmd, "{port}"))
		return err_set(err, EINVAL,
			       "server command must contain {sock} or {port} so nbgate can reach it");
	if (ensure_dir(run, 0700, err) < 0 || ensure_dir(home, 0700, err) < 0)
		return err_rc(err);
	log_warn("backend 'process' runs user servers UNSANDBOXED as uid %u: for development "
		 "and tests only, never for untrusted users", (unsigned)geteuid());
	return 0;
}

const struct spawner_ops spawner_process_ops = {
	.name = "process",
	.caps = SPAWNER_CAP_ADOPT | SPAWNER_CAP_UNIX | SPAWNER_CAP_PORT,
	.size = sizeof(struct spawner_process),
	.init = process_init,
	.start = process_start,
	.status = process_status,
	.stop = process_stop,
	.adopt = process_adopt,
	.stop_wait = process_stop_wait,
	.server_release = process_release,
};
