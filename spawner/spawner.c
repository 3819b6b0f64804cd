/*
 * spawner: the backend registry, the lifecycle state machine persisted in
 * the servers table, and the server list the gateway talks to.
 */
#define LOG_PREFIX "spawner: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/ckpt_internal.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

#define SERVER_NAME_MAX 255

/* ---- small helpers ---- */

static char **strv_dup(const char *const *v)
{
	size_t n = 0;
	char **r;

	while (v && v[n])
		n++;
	r = xcalloc(n + 1, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

static void replace_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

/* Hands a local error to the caller's err (or frees it); returns -code. */
static int err_pass(struct err **err, struct err **local)
{
	int rc = -(*local)->code;

	if (err && !*err)
		*err = steal_ptr(local);
	else
		err_free(local);
	return rc;
}

/* ---- registry ---- */

enum spawner_backend_id { SPAWNER_PROCESS, SPAWNER_LOCAL, SPAWNER_K8S };

static const struct spawner_ops *const backends[] = {
	[SPAWNER_PROCESS] = &spawner_process_ops,
	[SPAWNER_LOCAL] = &spawner_local_ops,
	[SPAWNER_K8S] = &spawner_k8s_ops,
};

const struct spawner_ops *spawner_backend_find(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (name && strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

int spawner_new_ops(const struct spawner_ops *ops, const struct spawner_cfg *cfg,
		    struct spawner **out, struct err **err)
{
	struct spawner *sp;

	if (!cfg->db || !cfg->state_dir || cfg->state_dir[0] != '/')
		return err_set(err, EINVAL, "spawner: database and absolute state_dir required");
	if (ops->size < sizeof(struct spawner) || !ops->init)
		return err_set(err, EINVAL, "spawner backend '%s' is incomplete", ops->name);
	sp = xcalloc(1, ops->size);
	sp->ops = ops;
	sp->cfg = *cfg;
	if (sp->cfg.spawn_timeout_ms <= 0)
		sp->cfg.spawn_timeout_ms = 60000;
	if (sp->cfg.stop_timeout_ms <= 0)
		sp->cfg.stop_timeout_ms = 5000;
	if (ops->init(sp, err) < 0) {
		if (ops->destroy)
			ops->destroy(sp); /* what init set up before it failed */
		free(sp);
		return err_wrap(err, "spawner backend '%s'", ops->name);
	}
	*out = sp;
	return 0;
}

int spawner_new(const char *backend_name, const struct spawner_cfg *cfg,
		struct spawner **out, struct err **err)
{
	const struct spawner_ops *ops = spawner_backend_find(backend_name);

	if (!ops)
		return err_set(err, EINVAL,
			       "unknown spawner backend '%s' (known: process, local, kubernetes)",
			       backend_name ? backend_name : "");
	return spawner_new_ops(ops, cfg, out, err);
}

static void server_free(struct spawner *sp, struct spawner_server *srv)
{
	if (srv->priv && sp->ops->server_release)
		sp->ops->server_release(sp, srv);
	free(srv->user);
	free(srv->name);
	free(srv->slug);
	free(srv->upstream);
	if (srv->upstream_auth)
		explicit_bzero(srv->upstream_auth, strlen(srv->upstream_auth));
	free(srv->upstream_auth);
	free(srv->home);
	free(srv->run_dir);
	free(srv->base_url);
	xstrv_free(srv->env);
	free(srv->user_options);
	free(srv->profile);
	free(srv->server_type);
	free(srv->message);
	free(srv);
}

void spawner_free(struct spawner *sp)
{
	struct spawner_server *srv, *next;

	if (!sp)
		return;
	for (srv = sp->servers; srv; srv = next) {
		next = srv->next;
		server_free(sp, srv);
	}
	sp->servers = NULL;
	if (sp->ops->destroy)
		sp->ops->destroy(sp);
	free(sp);
}

/* ---- the state machine ---- */

static const char *const state_names[SPAWNER_STATE_COUNT] = {
	[SPAWNER_STOPPED] = "stopped",
	[SPAWNER_STARTING] = "starting",
	[SPAWNER_RUNNING] = "running",
	[SPAWNER_CULLING] = "culling",
	[SPAWNER_CHECKPOINTING] = "checkpointing",
	[SPAWNER_SUSPENDED] = "suspended",
	[SPAWNER_RESTORING] = "restoring",
	[SPAWNER_STOPPING] = "stopping",
	[SPAWNER_FAILED] = "failed",
};

#define T(from, to) [SPAWNER_##from][SPAWNER_##to] = true
/*
 * DESIGN.md "Server lifecycle". A process may die in any live state, so
 * every live state may go to stopped (clean exit) or failed. A failed
 * checkpoint leaves the server running; a failed restore falls back to a
 * plain start (restoring -> starting); a checkpoint whose modes all fail
 * ends in a plain stop that keeps the home (checkpointing -> stopping or
 * stopped); culling is abandoned when activity returns (culling -> running).
 */
static const bool transitions[SPAWNER_STATE_COUNT][SPAWNER_STATE_COUNT] = {
	T(STOPPED, STARTING),
	T(STARTING, RUNNING), T(STARTING, STOPPING), T(STARTING, STOPPED), T(STARTING, FAILED),
	T(RUNNING, CULLING), T(RUNNING, CHECKPOINTING), T(RUNNING, STOPPING),
	T(RUNNING, STOPPED), T(RUNNING, FAILED),
	T(CULLING, RUNNING), T(CULLING, CHECKPOINTING), T(CULLING, STOPPING),
	T(CULLING, STOPPED), T(CULLING, FAILED),
	T(CHECKPOINTING, SUSPENDED), T(CHECKPOINTING, RUNNING), T(CHECKPOINTING, FAILED),
	T(CHECKPOINTING, STOPPING), T(CHECKPOINTING, STOPPED),
	T(SUSPENDED, RESTORING), T(SUSPENDED, STOPPED),
	T(RESTORING, RUNNING), T(RESTORING, STARTING), T(RESTORING, FAILED),
	T(STOPPING, STOPPED), T(STOPPING, FAILED),
	T(FAILED, STARTING), T(FAILED, STOPPED),
};
#undef T

const char *spawner_state_name(enum spawner_state state)
{
	if ((unsigned)state >= SPAWNER_STATE_COUNT)
		return "unknown";
	return state_names[state];
}

int spawner_state_parse(const char *name)
{
	for (int i = 0; i < SPAWNER_STATE_COUNT; i++)
		if (name && strcmp(state_names[i], name) == 0)
			return i;
	return -1;
}

bool spawner_transition_allowed(enum spawner_state from, enum spawner_state to)
{
	if ((unsigned)from >= SPAWNER_STATE_COUNT || (unsigned)to >= SPAWNER_STATE_COUNT)
		return false;
	return transitions[from][to];
}

bool spawner_state_is_live(enum spawner_state state)
{
	switch (state) {
	case SPAWNER_STARTING:
	case SPAWNER_RUNNING:
	case SPAWNER_CULLING:
	case SPAWNER_CHECKPOINTING:
	case SPAWNER_RESTORING:
	case SPAWNER_STOPPING:
		return true;
	default:
		return false;
	}
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_int_or_null(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* No process behind the server in this state: no pid, no upstream. A
 * suspended server lives on only in its checkpoint. */
static bool state_is_gone(enum spawner_state s)
{
	return s == SPAWNER_STOPPED || s == SPAWNER_FAILED || s == SPAWNER_SUSPENDED;
}

/* Writes the row as it will be once srv is in state `to`. */
static int persist_row(struct spawner *sp, const struct spawner_server *srv,
		       enum spawner_state to, const char *message, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	bool gone = state_is_gone(to);

	if (db_prepare(sp->cfg.db, &st,
		       "UPDATE servers SET state = ?1, message = ?2, upstream = ?3, pid = ?4,"
		       " pid_start = ?5, started = ?6, user_options = ?7, backend = ?8,"
		       " last_activity = ?9, profile = ?11, server_type = ?12, strip_prefix = ?13,"
		       " activity_source = ?14 WHERE id = ?10", err) < 0)
		return err_wrap(err, "persist server '%s'", srv->slug);
	sqlite3_bind_text(st, 1, spawner_state_name(to), -1, SQLITE_STATIC);
	bind_text_or_null(st, 2, message);
	bind_text_or_null(st, 3, gone ? NULL : srv->upstream);
	bind_int_or_null(st, 4, gone ? 0 : srv->pid);
	bind_int_or_null(st, 5, gone ? 0 : srv->pid_start);
	bind_int_or_null(st, 6, srv->started_ms);
	sqlite3_bind_text(st, 7, srv->user_options ? srv->user_options : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, sp->ops->name, -1, SQLITE_STATIC);
	bind_int_or_null(st, 9, srv->last_activity_ms);
	sqlite3_bind_int64(st, 10, srv->id);
	bind_text_or_null(st, 11, srv->profile);
	bind_text_or_null(st, 12, srv->server_type);
	sqlite3_bind_int(st, 13, srv->strip_prefix);
	bind_text_or_null(st, 14, srv->activity_source);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "persist server '%s': %s", srv->slug,
			       db_errmsg(sp->cfg.db));
	return 0;
}

int spawner__persist(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	return persist_row(sp, srv, srv->state, srv->message, err);
}

static int state_progress(enum spawner_state s)
{
	switch (s) {
	case SPAWNER_STOPPED:
	case SPAWNER_RUNNING:
	case SPAWNER_FAILED:
		return 100;
	case SPAWNER_STARTING:
	case SPAWNER_STOPPING:
		return 10;
	default:
		return 50;
	}
}

static void emit(struct spawner *sp, struct spawner_server *srv, int progress,
		 const char *message, bool ready, bool failed)
{
	struct spawner_event ev = {
		.state = srv->state,
		.progress = progress,
		.message = message,
		.ready = ready,
		.failed = failed,
	};

	srv->progress = progress;
	if (message != srv->message)
		replace_str(&srv->message, message);
	if (sp->cfg.on_event)
		sp->cfg.on_event(sp->cfg.event_arg, srv, &ev);
}

int spawner_transition(struct spawner *sp, struct spawner_server *srv,
		       enum spawner_state to, const char *message, struct err **err)
{
	enum spawner_state from = srv->state;

	if (!spawner_transition_allowed(from, to))
		return err_set_http(err, 409, EINVAL, "server '%s': illegal transition %s -> %s",
				    srv->slug, spawner_state_name(from), spawner_state_name(to));
	if (persist_row(sp, srv, to, message, err) < 0)
		return -EIO; /* persist_row only fails with EIO */
	srv->state = to;
	if (state_is_gone(to)) {
		srv->pid = 0;
		srv->pid_start = 0;
		replace_str(&srv->upstream, NULL);
	}
	log_info("'%s' %s -> %s%s%s", srv->slug, spawner_state_name(from), spawner_state_name(to),
		 message ? ": " : "", message ? message : "");
	emit(sp, srv, state_progress(to), message, to == SPAWNER_RUNNING, to == SPAWNER_FAILED);
	return 0;
}

void spawner_progress(struct spawner *sp, struct spawner_server *srv, int progress,
		      const char *message)
{
	emit(sp, srv, progress, message, false, false);
}

/* ---- the server list ---- */

struct spawner_server *spawner_server_find(struct spawner *sp, const char *user,
					   const char *server)
{
	if (!server)
		server = "";
	for (struct spawner_server *srv = sp->servers; srv; srv = srv->next)
		if (strcmp(srv->user, user) == 0 && strcmp(srv->name, server) == 0)
			return srv;
	return NULL;
}

struct spawner_server *spawner_server_next(struct spawner *sp, struct spawner_server *prev)
{
	return prev ? prev->next : sp->servers;
}

static struct spawner_server *find_slug(struct spawner *sp, const char *slug)
{
	for (struct spawner_server *srv = sp->servers; srv; srv = srv->next)
		if (strcmp(srv->slug, slug) == 0)
			return srv;
	return NULL;
}

/* A new in-memory server with its derived names; not linked yet. */
static struct spawner_server *server_new(struct spawner *sp, int64_t id, int64_t user_id,
					 const char *user, const char *name)
{
	struct spawner_server *srv = xcalloc(1, sizeof(*srv));
	char *user_slug = spawner_slug(user, "");

	srv->id = id;
	srv->user_id = user_id;
	srv->user = xstrdup(user);
	srv->name = xstrdup(name);
	srv->slug = spawner_slug(user, name);
	srv->state = SPAWNER_STOPPED;
	srv->base_url = spawner_base_url(user, name);
	/* Directory names come from slugs, never from raw names ('..', '/'). */
	srv->home = xasprintf("%s/home/%s", sp->cfg.state_dir, user_slug);
	srv->run_dir = xasprintf("%s/run/%s", sp->cfg.state_dir, srv->slug);
	srv->user_options = xstrdup("{}");
	free(user_slug);
	return srv;
}

static void server_link(struct spawner *sp, struct spawner_server *srv)
{
	struct spawner_server **pp = &sp->servers;

	/* Append, so iteration follows creation (and row) order. */
	while (*pp)
		pp = &(*pp)->next;
	*pp = srv;
}

static void server_unlink(struct spawner *sp, struct spawner_server *srv)
{
	for (struct spawner_server **pp = &sp->servers; *pp; pp = &(*pp)->next) {
		if (*pp == srv) {
			*pp = srv->next;
			srv->next = NULL;
			return;
		}
	}
}

static int check_names(const char *user, const char *name, struct err **err)
{
	if (!user || !user[0])
		return err_set_http(err, 400, EINVAL, "empty user name");
	if (strlen(user) > SERVER_NAME_MAX || strlen(name) > SERVER_NAME_MAX)
		return err_set_http(err, 400, EINVAL, "user or server name too long");
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/')
			return err_set_http(err, 400, EINVAL,
					    "invalid server name: no '/' or control characters");
	return 0;
}

/* Finds the row of (user_id, name) or inserts a stopped one; *id is its id. */
static int row_ensure(struct spawner *sp, int64_t user_id, const char *name, int64_t *id,
		      struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(sp->cfg.db, &st,
		       "INSERT INTO servers (user_id, name, state, backend) VALUES (?1, ?2,"
		       " 'stopped', ?3) ON CONFLICT (user_id, name) DO UPDATE SET name = name"
		       " RETURNING id", err) < 0)
		return err_wrap(err, "create server row");
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, sp->ops->name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return err_set(err, EIO, "create server row: %s", db_errmsg(sp->cfg.db));
	*id = sqlite3_column_int64(st, 0);
	return 0;
}

/* The existing server, or a new one with a row; EEXIST when the slug is taken. */
static int server_get_or_create(struct spawner *sp, int64_t user_id, const char *user,
				const char *name, struct spawner_server **out, struct err **err)
{
	struct spawner_server *srv = spawner_server_find(sp, user, name), *other;
	int64_t id = 0;

	if (srv) {
		*out = srv;
		return 0;
	}
	srv = server_new(sp, 0, user_id, user, name);
	other = find_slug(sp, srv->slug);
	if (other) {
		err_set_http(err, 409, EEXIST,
			     "server name '%s' of user '%s' collides with server '%s' of "
			     "user '%s'; choose another name",
			     name, user, other->name, other->user);
		server_free(sp, srv);
		return -EEXIST;
	}
	if (row_ensure(sp, user_id, name, &id, err) < 0) {
		server_free(sp, srv);
		return -EIO;
	}
	srv->id = id;
	server_link(sp, srv);
	*out = srv;
	return 0;
}

static int check_startable(const struct spawner_server *srv, struct err **err)
{
	switch (srv->state) {
	case SPAWNER_STOPPED:
	case SPAWNER_FAILED:
		return 0;
	case SPAWNER_STARTING:
	case SPAWNER_RUNNING:
	case SPAWNER_CULLING:
		return err_set_http(err, 400, EALREADY, "server '%s' is already %s", srv->slug,
				    spawner_state_name(srv->state));
	default:
		return err_set_http(err, 409, EBUSY, "server '%s' is %s; try again later",
				    srv->slug, spawner_state_name(srv->state));
	}
}

int spawner_server_start(struct spawner *sp, int64_t user_id, const char *user,
			 const char *server_name, const char *user_options_json,
			 const char *const *env, struct spawner_server **out,
			 struct err **err)
{
	struct spawner_server *srv = NULL;
	const char *name = server_name ? server_name : "";
	struct err *e = NULL, *e2 = NULL;

	if (check_names(user, name, err) < 0 ||
	    server_get_or_create(sp, user_id, user, name, &srv, err) < 0 ||
	    check_startable(srv, err) < 0)
		return err_wrap(err, "start server");
	replace_str(&srv->user_options, user_options_json ? user_options_json : "{}");
	xstrv_free(srv->env);
	srv->env = strv_dup(env);
	srv->started_ms = time_now_ms();
	srv->last_activity_ms = srv->started_ms;
	srv->activity_source = "start";
	if (spawner_transition(sp, srv, SPAWNER_STARTING, "server requested", err) < 0)
		return err_wrap(err, "start server");
	if (spawner_start(sp, srv, &e) < 0) {
		/* The row says why, for the progress page and after a restart. */
		if (spawner_transition(sp, srv, SPAWNER_FAILED, e->msg, &e2) < 0)
			err_free(&e2);
		err_wrap(&e, "start server '%s'", srv->slug);
		return err_pass(err, &e);
	}
	if (out)
		*out = srv;
	return 0;
}

/*
 * A stop while suspended discards the saved process state: a stopped
 * server starts fresh (home kept), so nothing would ever resume from its
 * checkpoints, and criu images hold process memory (tokens included).
 * Rows whose files cannot be deleted stay ('broken', saying why) and
 * the stop goes on.
 */
static int stop_suspended(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct err *e = NULL;
	const char *msg = "stopped while suspended; its checkpoint was discarded";

	if (spawner__ckpt_drop_server(sp, srv, &e) < 0) {
		log_warn("stop '%s': %s", srv->slug, e->msg);
		err_free(&e);
		msg = "stopped while suspended; its checkpoint could not be deleted";
	}
	return spawner_transition(sp, srv, SPAWNER_STOPPED, msg, err);
}

/* Stops srv (found by the caller); see spawner_server_stop(). */
static int server_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct err *e = NULL, *e2 = NULL;

	switch (srv->state) {
	case SPAWNER_STOPPED:
	case SPAWNER_FAILED:
	case SPAWNER_STOPPING:
		return 0;
	case SPAWNER_SUSPENDED:
		return stop_suspended(sp, srv, err);
	case SPAWNER_CHECKPOINTING:
	case SPAWNER_RESTORING:
		return err_set_http(err, 409, EBUSY, "stop server '%s': it is %s; try again later",
				    srv->slug, spawner_state_name(srv->state));
	default:
		break;
	}
	if (spawner_transition(sp, srv, SPAWNER_STOPPING, "stopping server", err) < 0)
		return err_wrap(err, "stop server");
	if (spawner_stop(sp, srv, &e) < 0) {
		if (spawner_transition(sp, srv, SPAWNER_FAILED, e->msg, &e2) < 0)
			err_free(&e2);
		err_wrap(&e, "stop server '%s'", srv->slug);
		return err_pass(err, &e);
	}
	return 0;
}

int spawner_server_stop(struct spawner *sp, const char *user, const char *server,
			struct err **err)
{
	struct spawner_server *srv = spawner_server_find(sp, user, server);

	if (!srv)
		return err_set(err, ENOENT, "stop server: no server '%s' for user '%s'",
			       server ? server : "", user);
	return server_stop(sp, srv, err);
}

static int row_delete(struct spawner *sp, int64_t id, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st, "DELETE FROM servers WHERE id = ?1", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "%s", db_errmsg(sp->cfg.db));
	return 0;
}

int spawner_server_remove(struct spawner *sp, const char *user, const char *server,
			  struct err **err)
{
	struct spawner_server *srv = spawner_server_find(sp, user, server);

	if (!srv)
		return err_set(err, ENOENT, "remove server: no server '%s' for user '%s'",
			       server ? server : "", user);
	if (srv->state != SPAWNER_STOPPED && srv->state != SPAWNER_FAILED)
		return err_set_http(err, 409, EBUSY, "remove server '%s': it is %s; stop it first",
				    srv->slug, spawner_state_name(srv->state));
	/* The rows would go with the server (ON DELETE CASCADE), the files
	 * not: delete them first, and keep the server if that fails. */
	if (spawner__ckpt_drop_server(sp, srv, err) < 0 || row_delete(sp, srv->id, err) < 0)
		return err_wrap(err, "remove server '%s'", srv->slug);
	server_unlink(sp, srv);
	server_free(sp, srv);
	return 0;
}

void spawner_server_set_env(struct spawner_server *srv, const char *const *env)
{
	xstrv_free(srv->env);
	srv->env = strv_dup(env);
}

void spawner_server_touch(struct spawner *sp, struct spawner_server *srv, int64_t now_ms,
			  const char *source)
{
	(void)sp;
	/* Persisted with the next transition; culling reads memory. */
	if (now_ms <= srv->last_activity_ms)
		return;
	srv->last_activity_ms = now_ms;
	if (source)
		srv->activity_source = source;
}

void spawner_stop_all(struct spawner *sp)
{
	struct err *e = NULL;

	for (struct spawner_server *srv = sp->servers; srv; srv = srv->next) {
		if (!spawner_state_is_live(srv->state) || srv->state == SPAWNER_STOPPING)
			continue;
		if (server_stop(sp, srv, &e) < 0) {
			log_warn("stop server '%s' at shutdown: %s", srv->slug, e->msg);
			err_free(&e);
		}
	}
	if (sp->ops->stop_wait)
		sp->ops->stop_wait(sp, sp->cfg.stop_timeout_ms + 1000);
}

/* ---- adoption after a gateway restart ---- */

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* One in-memory server from a row of the adopt query. */
static struct spawner_server *server_from_row(struct spawner *sp, sqlite3_stmt *st)
{
	struct spawner_server *srv;
	int state = spawner_state_parse(col_text(st, 4));

	srv = server_new(sp, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
			 col_text(st, 2), col_text(st, 3));
	/* An unknown state (newer nbgate, hand edit) is treated as failed. */
	srv->state = state < 0 ? SPAWNER_FAILED : (enum spawner_state)state;
	replace_str(&srv->upstream, col_text(st, 5));
	srv->pid = (pid_t)sqlite3_column_int64(st, 6);
	srv->pid_start = sqlite3_column_int64(st, 7);
	replace_str(&srv->user_options, col_text(st, 8) ? col_text(st, 8) : "{}");
	srv->started_ms = sqlite3_column_int64(st, 9);
	srv->last_activity_ms = sqlite3_column_int64(st, 10);
	replace_str(&srv->message, col_text(st, 11));
	replace_str(&srv->profile, col_text(st, 13));
	replace_str(&srv->server_type, col_text(st, 14));
	srv->strip_prefix = sqlite3_column_int(st, 15) != 0;
	srv->activity_source = spawner__activity_source(col_text(st, 16));
	return srv;
}

static int load_rows(struct spawner *sp, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(sp->cfg.db, &st,
		       "SELECT s.id, s.user_id, u.name, s.name, s.state, s.upstream, s.pid,"
		       " s.pid_start, s.user_options, s.started, s.last_activity, s.message,"
		       " s.backend, s.profile, s.server_type, s.strip_prefix, s.activity_source"
		       " FROM servers s JOIN users u ON u.id = s.user_id ORDER BY s.id",
		       err) < 0)
		return err_wrap(err, "load servers");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct spawner_server *srv = server_from_row(sp, st);
		const char *backend = col_text(st, 12);

		if (spawner_server_find(sp, srv->user, srv->name) || find_slug(sp, srv->slug)) {
			log_warn("ignoring server row %lld: slug '%s' already taken",
				 (long long)srv->id, srv->slug);
			server_free(sp, srv);
			continue;
		}
		/* A row from another backend cannot be adopted by this one. */
		if (backend && strcmp(backend, sp->ops->name) != 0 &&
		    spawner_state_is_live(srv->state)) {
			log_warn("server '%s' was started by backend '%s', now '%s': not adopted",
				 srv->slug, backend, sp->ops->name);
			srv->pid = 0;
		}
		server_link(sp, srv);
	}
	if (rc != SQLITE_DONE)
		return err_set(err, EIO, "load servers: %s", db_errmsg(sp->cfg.db));
	return 0;
}

/*
 * A server left restoring by a gateway restart. Alive: the restore got
 * through, so its checkpoint counts as restored. Dead: nothing was lost,
 * the checkpoint is still there, so it rolls back to suspended (a
 * lifecycle step the table does not offer at run time: this is recovery,
 * as loading the row is) and resumes on the next request. Without a
 * checkpoint to resume from it is failed, as before.
 */
static int adopt_restoring(struct spawner *sp, struct spawner_server *srv, bool alive,
			   struct err **err)
{
	const char *msg = "restore interrupted by a gateway restart; it resumes on the next "
			  "request";
	struct spawner_checkpoint *ck = NULL;
	struct err *e = NULL;

	if (spawner__ckpt_resume_row(sp, srv, &ck, &e) < 0) {
		log_warn("%s", e->msg);
		err_free(&e);
	}
	if (alive && ck && spawner__ckpt_set_state(sp, ck->id, "restored", -1, ck->message,
						   &e) < 0) {
		log_warn("%s", e->msg);
		err_free(&e);
	}
	if (alive || !ck) {
		spawner__ckpt_free(ck);
		return spawner_transition(sp, srv, alive ? SPAWNER_RUNNING : SPAWNER_FAILED,
					  alive ? "server re-adopted after gateway restart"
						: "interrupted by a gateway restart", err);
	}
	spawner__ckpt_free(ck);
	if (persist_row(sp, srv, SPAWNER_SUSPENDED, msg, err) < 0)
		return -EIO;
	srv->state = SPAWNER_SUSPENDED;
	srv->pid = 0;
	srv->pid_start = 0;
	replace_str(&srv->upstream, NULL);
	log_info("'%s' restoring -> suspended: %s", srv->slug, msg);
	emit(sp, srv, state_progress(SPAWNER_SUSPENDED), msg, false, false);
	return 0;
}

/* Whether the backend finds srv's process alive and answering. */
static bool adopt_alive(struct spawner *sp, struct spawner_server *srv)
{
	struct err *e = NULL;

	/* a local server without a pid never got started; a remote one
	 * (a pod) has none, and the backend knows from its own records */
	if (srv->pid <= 0 && !spawner_has_cap(sp, SPAWNER_CAP_REMOTE))
		return false;
	if (spawner_adopt(sp, srv, &e) == 0)
		return true;
	log_info("server '%s' not adopted: %s", srv->slug, e->msg);
	err_free(&e);
	return false;
}

/* Settles one loaded server: adopt it if alive, else record why it is gone. */
static int adopt_one(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	bool alive;
	enum spawner_state was = srv->state;

	if (!spawner_state_is_live(was))
		return 0;
	alive = adopt_alive(sp, srv);
	if (alive && was == SPAWNER_STOPPING)
		return spawner_stop(sp, srv, err); /* finish what was begun */
	if (alive && was == SPAWNER_RUNNING) {
		log_info("'%s' re-adopted at '%s'", srv->slug, srv->upstream ? srv->upstream : "");
		emit(sp, srv, 100, "server re-adopted after gateway restart", true, false);
		return 0;
	}
	if (was == SPAWNER_RESTORING)
		return adopt_restoring(sp, srv, alive, err);
	if (alive && spawner_transition_allowed(was, SPAWNER_RUNNING))
		return spawner_transition(sp, srv, SPAWNER_RUNNING,
					  "server re-adopted after gateway restart", err);
	if (alive)
		log_warn("server '%s' alive in state %s after restart: marking failed", srv->slug,
			 spawner_state_name(was));
	if (!alive && was != SPAWNER_RESTORING && was != SPAWNER_CHECKPOINTING)
		return spawner_transition(sp, srv, SPAWNER_STOPPED,
					  "server was not running after gateway restart", err);
	return spawner_transition(sp, srv, SPAWNER_FAILED,
				  "interrupted by a gateway restart", err);
}

int spawner_adopt_all(struct spawner *sp, struct err **err)
{
	struct err *e = NULL;

	if (load_rows(sp, err) < 0)
		return -EIO;
	/* Before adoption: a server left checkpointing must not keep a
	 * half-written row (call spawner_set_ckpt_cfg() first). */
	if (spawner__ckpt_drop_writing(sp, &e) < 0) {
		log_warn("%s", e->msg);
		err_free(&e);
	}
	for (struct spawner_server *srv = sp->servers; srv; srv = srv->next) {
		if (adopt_one(sp, srv, &e) < 0) {
			/* One bad row must not keep the others from being adopted. */
			log_warn("adopt server '%s': %s", srv->slug, e->msg);
			err_free(&e);
		}
	}
	return 0;
}
