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
#include "spawner/supervise.h"

#define ENV_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

struct spawner_process {
	struct spawner base;
};

/* Backend state of one server (srv->priv): only the shared watcher. */
struct proc_server {
	struct spawner_watch w; /* first: spawner_watch_stop_wait() */
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

/* The expanded argv with an absolute argv[0]; caller frees with xstrv_free(). */
static char **process_build_argv(const char *const *cmd, const struct spawner_vars *v,
				 struct err **err)
{
	char **argv = spawner_expand_argv(cmd, v, err);
	char *abs;

	if (!argv || argv[0][0] == '/')
		return argv;
	abs = resolve_cmd(argv[0], err);
	if (!abs) {
		xstrv_free(argv);
		return NULL;
	}
	free(argv[0]);
	argv[0] = abs;
	return argv;
}

/*
 * The child's environment: a fixed minimal base, then the gateway's
 * per-server env (tokens), then cfg->server_env; later entries win.
 * Never the gateway's own environment. Caller frees with xstrv_free().
 */
static char **process_build_env(const struct spawner_cfg *cfg, const struct spawner_server *srv)
{
	size_t cap = 8 + spawner_strv_len((const char *const *)srv->env) +
		     spawner_strv_len(cfg->server_env);
	char **env = xcalloc(cap + 1, sizeof(*env));
	char *tmp[5];
	size_t n = 0;

	spawner_env_put(env, &n, ENV_PATH);
	spawner_env_put(env, &n, "LANG=C.UTF-8");
	tmp[0] = xasprintf("HOME=%s", srv->home);
	tmp[1] = xasprintf("USER=%s", srv->user);
	tmp[2] = xasprintf("JUPYTER_RUNTIME_DIR=%s/runtime", srv->run_dir);
	tmp[3] = xasprintf("NBGATE_BASE_URL=%s", srv->base_url);
	tmp[4] = xasprintf("NBGATE_SERVER_NAME=%s", srv->name);
	for (size_t i = 0; i < 5; i++) {
		spawner_env_put(env, &n, tmp[i]);
		free(tmp[i]);
	}
	for (size_t i = 0; srv->env && srv->env[i]; i++)
		spawner_env_put(env, &n, srv->env[i]);
	for (size_t i = 0; cfg->server_env && cfg->server_env[i]; i++)
		spawner_env_put(env, &n, cfg->server_env[i]);
	return env;
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

static int ensure_dir(const char *path, mode_t mode, struct err **err)
{
	return spawner_ensure_dir(path, mode, geteuid(), getegid(), err);
}

static int prepare_dirs(const struct spawner_server *srv, struct err **err)
{
	cleanup_free char *runtime = xasprintf("%s/runtime", srv->run_dir);

	if (ensure_dir(srv->home, 0700, err) < 0 || ensure_dir(srv->run_dir, 0700, err) < 0 ||
	    ensure_dir(runtime, 0700, err) < 0)
		return err_wrap(err, "prepare server directories");
	return 0;
}

/* ---- ops ---- */

static void process_release(struct spawner *sp, struct spawner_server *srv)
{
	struct proc_server *ps = srv->priv;

	if (!ps)
		return;
	spawner_watch_clear(&ps->w);
	free(ps);
	srv->priv = NULL;
}

static const struct spawner_watch_hooks process_hooks = {
	.release = process_release,
};

/* Chooses the upstream from the command's placeholders and fills vars. */
static int choose_upstream(struct spawner *sp, struct spawner_server *srv,
			   struct spawner_vars *v, char **sock, char **port, struct err **err)
{
	const char *const *cmd = sp->cfg.server_cmd;
	int p;

	*sock = xasprintf("%s/server.sock", srv->run_dir);
	v->sock = *sock;
	if (spawner_cmd_uses(cmd, "{port}")) {
		if ((p = process_free_port(err)) < 0)
			return p;
		*port = xasprintf("%d", p);
		v->port = *port;
	}
	free(srv->upstream);
	if (spawner_cmd_uses(cmd, "{sock}"))
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

	spawner_watch_init(&ps->w, sp, srv, &process_hooks, pid, pid_start, ours);
	ps->w.term_group = true;
	ps->w.log_paths[0] = xasprintf("%s/server.log", srv->run_dir);
	srv->priv = ps;
	return ps;
}

static int process_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct spawner_vars v = { .base_url = srv->base_url, .home = srv->home,
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
	srv->pid_start = ps->w.pid_start;
	if (spawner__persist(sp, srv, err) < 0 || spawner_watch_start(&ps->w, err) < 0) {
		/* Without its pid in the row it could never be stopped after a restart. */
		proc_kill_and_reap(pid, 0);
		process_release(sp, srv);
		srv->pid = 0;
		return err_rc(err);
	}
	spawner_progress(sp, srv, 50, "waiting for the server to answer");
	return 0;
}

static int process_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct proc_server *ps = srv->priv;

	if (!ps) /* no process (never launched, or already reaped) */
		return spawner_transition(sp, srv, SPAWNER_STOPPED, "server stopped", err);
	spawner_watch_stop(&ps->w);
	return 0;
}

static int process_status(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct proc_server *ps = srv->priv;

	return ps && proc_alive(ps->w.pid, ps->w.pid_start) ? 1 : 0;
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
	if (!srv->upstream || spawner_parse_upstream(srv->upstream, &ss, &len, err) < 0 ||
	    !spawner_answers_connect(&ss, len)) {
		/* Alive but unreachable: ours and useless, so end it. */
		spawner_watch_signal(&ps->w, SIGKILL);
		process_release(sp, srv);
		if (err && !*err)
			err_set(err, ESRCH, "pid %d does not answer at '%s'", (int)srv->pid,
				srv->upstream ? srv->upstream : "");
		return -ESRCH;
	}
	ps->w.probe.addr = ss;
	ps->w.probe.addrlen = len;
	spawner_watch_adopted(&ps->w);
	return 0;
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
	if (!spawner_cmd_uses(cmd, "{sock}") && !spawner_cmd_uses(cmd, "{port}"))
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
	.stop_wait = spawner_watch_stop_wait,
	.server_release = process_release,
};
