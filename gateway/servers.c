/*
 * servers: spawner <-> gateway glue (see servers.h).
 */
#define LOG_PREFIX "gateway/servers: "

#include "gateway/servers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/ckpt.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/gw.h"
#include "gateway/hold.h"
#include "gateway/metrics.h"
#include "gateway/route.h"
#include "gateway/users.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

/* Most progress streams held open at once (each holds a connection). */
#define SERVERS_MAX_SUBS 4096
/* Most spawns timed at once (the histogram's start times). */
#define SERVERS_MAX_TIMERS 4096

struct sub {
	struct gw_conn *c;   /* referenced */
	char *user;
	char *server;
	struct sub *next;
};

/* Events of one spawn kept for late subscribers (image, sandbox, ...). */
#define TIMER_MAX_EVENTS 16

/*
 * One pending spawn, keyed by (user, server): its monotonic start time
 * (the histogram) and its progress events so far, which a progress stream
 * opened after the POST replays first (JupyterHub's progress API does the
 * same), so nobody misses "image ... ready" or "sandbox up".
 */
struct timer {
	char *key;           /* "user/server" */
	int64_t start_mono;
	bool resume;         /* a resume, not a spawn: not in the histogram */
	char *events[TIMER_MAX_EVENTS]; /* event JSON, oldest first */
	int nevents;
	struct timer *next;
};

static void timer_free(struct timer *t)
{
	for (int i = 0; i < t->nevents; i++)
		free(t->events[i]);
	free(t->key);
	free(t);
}

struct gw_servers {
	struct gw *gw;
	struct sub *subs;
	size_t nsubs;
	struct timer *timers;
	size_t ntimers;
	struct gw_holds *holds; /* requests waiting for put-away servers */
};

struct gw_servers *gw_servers_new(struct gw *gw)
{
	struct gw_servers *sv = xcalloc(1, sizeof(*sv));

	sv->gw = gw;
	sv->holds = gw_holds_new(gw);
	return sv;
}

static void sub_free(struct sub *s, bool end)
{
	if (end && gw_conn_alive(s->c))
		gw_stream_end(s->c);
	gw_conn_unref(s->c);
	free(s->user);
	free(s->server);
	free(s);
}

void gw_servers_free(struct gw_servers *sv)
{
	struct sub *s, *sn;
	struct timer *t, *tn;

	if (!sv)
		return;
	gw_holds_free(sv->holds);
	for (s = sv->subs; s; s = sn) {
		sn = s->next;
		sub_free(s, true);
	}
	for (t = sv->timers; t; t = tn) {
		tn = t->next;
		timer_free(t);
	}
	free(sv);
}

static struct gw_servers *servers_of(struct gw *gw)
{
	return gw->spawner ? gw->spawner->cfg.event_arg : NULL;
}

struct gw_holds *gw_servers_holds(struct gw *gw)
{
	struct gw_servers *sv = servers_of(gw);

	return sv ? sv->holds : NULL;
}

/* ---- spawn timers (histogram) ---- */

static char *timer_key(const char *user, const char *server)
{
	return xasprintf("%s/%s", user, server ? server : "");
}

static struct timer *timer_find(struct gw_servers *sv, const char *user, const char *server)
{
	char *key = timer_key(user, server);
	struct timer *t;

	for (t = sv ? sv->timers : NULL; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			break;
	free(key);
	return t;
}

/* Starts (or restarts) the spawn timer of (user, server), history cleared. */
static void timer_start(struct gw_servers *sv, const char *user, const char *server,
			bool resume)
{
	struct timer *t = timer_find(sv, user, server);

	if (!t) {
		if (!sv || sv->ntimers >= SERVERS_MAX_TIMERS)
			return;
		t = xcalloc(1, sizeof(*t));
		t->key = timer_key(user, server);
		t->next = sv->timers;
		sv->timers = t;
		sv->ntimers++;
	}
	t->start_mono = time_mono_ms();
	t->resume = resume;
	while (t->nevents > 0)
		free(t->events[--t->nevents]);
}

/* Keeps a pending spawn's event; past the cap only the latest is kept. */
static void timer_event(struct gw_servers *sv, const char *user, const char *server,
			const char *json)
{
	struct timer *t = timer_find(sv, user, server);

	if (!t)
		return;
	if (t->nevents == TIMER_MAX_EVENTS)
		free(t->events[--t->nevents]);
	t->events[t->nevents++] = xstrdup(json);
}

/* Removes the timer; returns its age in seconds, or -1 if none (or when
 * it timed a resume, which is no spawn). */
static double timer_stop(struct gw_servers *sv, const char *user, const char *server)
{
	char *key = timer_key(user, server);
	struct timer **pp, *t;
	double age = -1;

	for (pp = &sv->timers; (t = *pp); pp = &t->next) {
		if (strcmp(t->key, key) != 0)
			continue;
		if (!t->resume)
			age = (double)(time_mono_ms() - t->start_mono) / 1000.0;
		*pp = t->next;
		timer_free(t);
		sv->ntimers--;
		break;
	}
	free(key);
	return age;
}

/* ---- progress events ---- */

static char *event_json(const struct spawner_server *srv, int progress, const char *message,
			bool ready, bool failed)
{
	cJSON *j = cJSON_CreateObject();
	char *url = spawner_base_url(srv->user, srv->name);
	char *out;

	cJSON_AddNumberToObject(j, "progress", progress);
	cJSON_AddStringToObject(j, "message", message ? message : "");
	cJSON_AddBoolToObject(j, "ready", ready);
	if (failed)
		cJSON_AddBoolToObject(j, "failed", true);
	if (ready)
		cJSON_AddStringToObject(j, "url", url);
	else
		cJSON_AddNullToObject(j, "url");
	out = json_print(j);
	cJSON_Delete(j);
	free(url);
	return out;
}

static void stream_event(struct gw_conn *c, const char *json)
{
	char *line = xasprintf("data: %s\n\n", json);

	gw_stream_write(c, line, strlen(line));
	free(line);
}

/* Sends one event to every subscriber of srv; `final` ends their streams. */
static void broadcast(struct gw_servers *sv, const struct spawner_server *srv,
		      const char *json, bool final)
{
	struct sub **pp = &sv->subs, *s;

	while ((s = *pp)) {
		if (!gw_conn_alive(s->c)) {
			*pp = s->next;
			sub_free(s, false);
			sv->nsubs--;
			continue;
		}
		if (strcmp(s->user, srv->user) != 0 || strcmp(s->server, srv->name) != 0) {
			pp = &s->next;
			continue;
		}
		stream_event(s->c, json);
		if (final) {
			*pp = s->next;
			sub_free(s, true);
			sv->nsubs--;
			continue;
		}
		pp = &s->next;
	}
}

/* A ready server: its route (again) and the spawn histogram. */
static void apply_ready(struct gw_servers *sv, struct spawner_server *srv)
{
	struct gw *gw = sv->gw;
	struct err *err = NULL;
	double age;

	/* code-server has no base path: the backend says so per server; a pod
	 * checks the token the backend gave it (upstream_auth, kubernetes) */
	if (gw_routes_set_auth(gw->routes, srv->user, srv->name, srv->upstream,
			       srv->strip_prefix ? GW_ROUTE_STRIP_PREFIX : 0, srv->upstream_auth,
			       &err) < 0) {
		log_err("cannot publish route for '%s/%s': %s", srv->user, srv->name, err->msg);
		err_free(&err);
	}
	age = timer_stop(sv, srv->user, srv->name);
	if (age >= 0)
		gw_metrics_spawn(gw->metrics, age);
}

/* Route and token bookkeeping for one event. */
/* Checkpointing, suspended, restoring: no route, so requests are held
 * (hold.h); and before a dump, no connection to the server is left. */
static void apply_put_away(struct gw *gw, const struct spawner_server *srv,
			   enum spawner_state state)
{
	if (state != SPAWNER_CHECKPOINTING && state != SPAWNER_SUSPENDED &&
	    state != SPAWNER_RESTORING)
		return;
	gw_routes_del(gw->routes, srv->user, srv->name);
	if (state == SPAWNER_CHECKPOINTING && gw->close_upstream)
		gw->close_upstream(gw, srv->upstream);
}

static void apply_event(struct gw_servers *sv, struct spawner_server *srv,
			const struct spawner_event *ev)
{
	struct gw *gw = sv->gw;
	struct err *err = NULL;

	if (ev->ready && srv->upstream) {
		apply_ready(sv, srv);
		return;
	}
	apply_put_away(gw, srv, ev->state);
	if (ev->failed || ev->state == SPAWNER_STOPPED || ev->state == SPAWNER_STOPPING) {
		gw_routes_del(gw->routes, srv->user, srv->name);
		if (timer_stop(sv, srv->user, srv->name) >= 0 && ev->failed)
			gw_metrics_spawn_failed(gw->metrics);
	}
	if (ev->failed || ev->state == SPAWNER_STOPPED) {
		/* the server's own token dies with the server */
		if (users_token_revoke_server(gw->db, srv->user_id, srv->name, &err) < 0) {
			log_warn("cannot revoke token of '%s/%s': %s", srv->user, srv->name,
				 err->msg);
			err_free(&err);
		}
	}
}

void gw_servers_on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	struct gw_servers *sv = arg;
	bool final = ev->ready || ev->failed || ev->state == SPAWNER_STOPPED;
	char *json;

	json = event_json(srv, ev->failed || ev->ready ? 100 : ev->progress, ev->message,
			  ev->ready, ev->failed || ev->state == SPAWNER_STOPPED);
	if (!final)
		timer_event(sv, srv->user, srv->name, json);
	apply_event(sv, srv, ev);
	broadcast(sv, srv, json, final);
	gw_holds_on_event(sv->holds, srv, ev); /* after the route is (re)published */
	free(json);
}

/* ---- start / stop ---- */

/*
 * The environment of a server: its token and where to find the hub
 * (JupyterHub's names, which jupyterhub-singleuser and extensions read,
 * and ours). The token is never logged: env_free() wipes it.
 */
static char **server_env(const struct gw_cfg *cfg, const char *user, const char *server,
			 const char *token)
{
	char **env = xcalloc(12, sizeof(*env));
	char *base = spawner_base_url(user, server);
	size_t n = 0;

	env[n++] = xasprintf("NBGATE_API_TOKEN=%s", token);
	env[n++] = xasprintf("NBGATE_API_URL=%s/hub/api", cfg->public_url);
	env[n++] = xasprintf("JUPYTERHUB_API_TOKEN=%s", token);
	env[n++] = xasprintf("JUPYTERHUB_API_URL=%s/hub/api", cfg->public_url);
	env[n++] = xasprintf("JUPYTERHUB_USER=%s", user);
	env[n++] = xasprintf("JUPYTERHUB_SERVER_NAME=%s", server);
	env[n++] = xstrdup("JUPYTERHUB_BASE_URL=/");
	env[n++] = xasprintf("JUPYTERHUB_SERVICE_PREFIX=%s", base);
	env[n++] = xasprintf("JUPYTERHUB_ACTIVITY_URL=%s/hub/api/users/%s/activity",
			     cfg->public_url, user);
	/* where the server is reached from outside (public URL + prefix) */
	env[n++] = xasprintf("JUPYTERHUB_SERVICE_URL=%s%s", cfg->public_url, base);
	env[n] = NULL;
	free(base);
	return env;
}

static void env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++) {
		explicit_bzero(env[i], strlen(env[i]));
		free(env[i]);
	}
	free(env);
}

/* Creates the server's token (after revoking any older one, unless keep). */
static int server_token_keep(struct gw *gw, int64_t uid, const char *server, bool keep,
			     char **token, struct err **err)
{
	struct users_token_spec spec = {
		.user_id = uid,
		.kind = USERS_TOKEN_SERVER,
		.server_name = server,
		.note = "server token",
		.scopes = NULL, /* SCOPES_SERVER_TOKEN */
	};
	int64_t id;

	if (!keep && users_token_revoke_server(gw->db, uid, server, err) < 0)
		return err_wrap(err, "revoke old server token");
	if (users_token_create(gw->db, auth_key(gw->auth), &spec, time_now_ms(), token, &id,
			       err) < 0)
		return err_wrap(err, "create server token");
	return 0;
}

static int server_token(struct gw *gw, int64_t uid, const char *server, char **token,
			struct err **err)
{
	return server_token_keep(gw, uid, server, false, token, err);
}

/*
 * A suspended server loaded after a gateway restart has no environment in
 * memory (tokens are never persisted), which a fallback fresh start would
 * need. Give it one with a NEW token, keeping the old one: a CRIU restore
 * brings back a process that still holds it. Both die with the server.
 */
static int resume_env(struct gw *gw, struct spawner_server *srv, struct err **err)
{
	char *token = NULL;
	char **env;

	if (srv->env && srv->env[0])
		return 0;
	if (server_token_keep(gw, srv->user_id, srv->name, true, &token, err) < 0)
		return -1;
	env = server_env(gw->cfg, srv->user, srv->name, token);
	spawner_server_set_env(srv, (const char *const *)env);
	env_free(env);
	explicit_bzero(token, strlen(token));
	free(token);
	return 0;
}

int gw_servers_start(struct gw *gw, const char *user, const char *server,
		     const char *user_options_json, struct err **err)
{
	struct users_user *u = NULL;
	char *token = NULL;
	char **env;
	int r;

	r = users_get(gw->db, user, &u, err);
	if (r <= 0)
		return r < 0 ? r : err_set_http(err, 404, ENOENT, "no such user '%s'", user);
	r = server_token(gw, u->id, server, &token, err);
	if (r < 0)
		goto out;
	env = server_env(gw->cfg, user, server, token);
	timer_start(servers_of(gw), user, server, false);
	r = spawner_server_start(gw->spawner, u->id, user, server, user_options_json,
				 (const char *const *)env, NULL, err);
	env_free(env);
	if (r < 0) {
		timer_stop(servers_of(gw), user, server);
		users_token_revoke_server(gw->db, u->id, server, NULL);
	}
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	users_user_free(u);
	return r < 0 ? r : 0;
}

int gw_servers_stop(struct gw *gw, const char *user, const char *server, struct err **err)
{
	struct spawner_server *srv = spawner_server_find(gw->spawner, user, server);

	if (!srv)
		return err_set_http(err, 404, ENOENT, "%s has no server named '%s'", user, server);
	/* a suspended server is not live, but stopping it forgets that it can
	 * be resumed (its checkpoints stay until deleted or retention) */
	if (!spawner_state_is_live(srv->state) && srv->state != SPAWNER_SUSPENDED)
		return 0;
	/* no new request may reach a server that is going away */
	gw_routes_del(gw->routes, user, server);
	if (spawner_server_stop(gw->spawner, user, server, err) < 0)
		return -1;
	return 1;
}

/*
 * The first events of a new progress stream: a pending spawn's events so
 * far (then live ones follow), else one event with the current state. A
 * failed spawn says why (quota, image missing, ...): the reason is the
 * backend's message, which never holds secrets.
 */
static void subscribe_replay(struct gw_servers *sv, struct gw_conn *c,
			     const struct spawner_server *srv, bool pending, bool ready)
{
	struct timer *t = pending ? timer_find(sv, srv->user, srv->name) : NULL;
	const char *msg;
	char *json;

	if (t && t->nevents > 0) {
		for (int i = 0; i < t->nevents; i++)
			stream_event(c, t->events[i]);
		return;
	}
	if (ready)
		msg = "Server ready";
	else if (pending)
		msg = srv->message;
	else
		msg = srv->state == SPAWNER_FAILED && srv->message ? srv->message : "Spawn failed";
	json = event_json(srv, ready || !pending ? 100 : srv->progress, msg, ready,
			  !ready && !pending);
	stream_event(c, json);
	free(json);
}

int gw_servers_subscribe(struct gw *gw, struct gw_conn *c, const char *user,
			 const char *server)
{
	struct gw_servers *sv = servers_of(gw);
	struct spawner_server *srv = spawner_server_find(gw->spawner, user, server);
	bool pending, ready;
	struct gw_response head;
	struct sub *s;

	if (!srv)
		return -ENOENT;
	ready = srv->state == SPAWNER_RUNNING && srv->upstream;
	/* checkpointing: the stream stays open through the resume that a
	 * held request or the resume API asked for (hold.h) */
	pending = srv->state == SPAWNER_STARTING || srv->state == SPAWNER_RESTORING ||
		  srv->state == SPAWNER_CHECKPOINTING;
	gw_response_init(&head, 200);
	gw_response_header(&head, "Content-Type", "text/event-stream");
	gw_response_header(&head, "Cache-Control", "no-cache");
	gw_stream_begin(c, &head);
	subscribe_replay(sv, c, srv, pending, ready);
	if (!pending || !sv || sv->nsubs >= SERVERS_MAX_SUBS) {
		gw_stream_end(c);
		return 0;
	}
	s = xcalloc(1, sizeof(*s));
	s->c = gw_conn_ref(c);
	s->user = xstrdup(user);
	s->server = xstrdup(server);
	s->next = sv->subs;
	sv->subs = s;
	sv->nsubs++;
	return 0;
}

/*
 * The checkpoint settings from the config. CRIU is probed once, here at
 * startup before the loop serves anything (the probe runs `criu check`:
 * about 0.1 s), and only for a backend that can checkpoint; without a
 * usable CRIU the spawner falls back to commit, then stop. On Kubernetes
 * CRIU runs on the nodes, not here: kubernetes.checkpoint_kubelet says
 * whether the cluster can (docs/kubernetes.md "Checkpoints").
 */
static void set_ckpt_cfg(struct gw *gw)
{
	const struct gw_cfg *cfg = gw->cfg;
	struct err *err = NULL;
	struct spawner_ckpt_cfg cc = {
		.dir = cfg->checkpoint_dir,
		.keep_per_server = (int)cfg->checkpoint_keep,
		.user_quota_bytes = (int64_t)cfg->checkpoint_user_quota,
		.min_free_bytes = (int64_t)cfg->checkpoint_min_free,
		.criu_path = cfg->criu_path,
	};

	/* images hold process memory, tokens included: root only (DESIGN.md) */
	if (cc.dir && mkdir(cc.dir, 0700) < 0 && errno != EEXIST)
		log_warn("cannot create checkpoint dir '%s': %s", cc.dir, strerror(errno));
	if (cfg->spawner == GW_SPAWNER_KUBERNETES) {
		cc.criu_usable = cfg->k8s.checkpoint_kubelet;
	} else if (spawner_has_cap(gw->spawner, SPAWNER_CAP_CHECKPOINT) && cc.criu_path) {
		struct ckpt_target t = { .tool = cc.criu_path };
		char *why = NULL;
		int r = ckpt_probe(&ckpt_criu_ops, &t, &why, &err);

		cc.criu_usable = r > 0;
		if (r <= 0)
			log_info("checkpoints: CRIU at '%s' is not usable (%s); servers are "
				 "committed or stopped instead", cc.criu_path,
				 r < 0 ? err->msg : why ? why : "?");
		err_free(&err);
		free(why);
	}
	spawner_set_ckpt_cfg(gw->spawner, &cc);
}

int gw_servers_adopt(struct gw *gw, struct err **err)
{
	set_ckpt_cfg(gw); /* before adopting: suspended rows resume with it */
	return spawner_adopt_all(gw->spawner, err);
}

/* ---- checkpoint / resume ---- */

/* HTTP statuses of the spawner's checkpoint refusals (spawner.h). */
static void ckpt_error_status(struct err *err)
{
	if (err->http)
		return;
	if (err->code == ENOSPC)
		err->http = 507;
	else if (err->code == EBUSY || err->code == ENOTSUP || err->code == EINVAL ||
		 err->code == EALREADY)
		err->http = 409;
}

int gw_servers_checkpoint(struct gw *gw, const char *user, const char *server, int mode,
			  const char *reason, struct err **err)
{
	if (!spawner_server_find(gw->spawner, user, server))
		return err_set_http(err, 404, ENOENT, "%s has no server named '%s'", user, server);
	if (spawner_server_checkpoint(gw->spawner, user, server, (enum spawner_ckpt_mode)mode,
				      reason, err) < 0) {
		ckpt_error_status(*err);
		/* the server exists: a missing file is our problem, not a 404 */
		if (!(*err)->http && (*err)->code == ENOENT)
			(*err)->http = 500;
		return -1;
	}
	return 0;
}

int gw_servers_resume(struct gw *gw, const char *user, const char *server, struct err **err)
{
	struct gw_servers *sv = servers_of(gw);
	struct spawner_server *srv = spawner_server_find(gw->spawner, user, server);
	bool from_suspended;

	if (!srv)
		return err_set_http(err, 404, ENOENT, "%s has no server named '%s'", user, server);
	switch (srv->state) {
	case SPAWNER_RUNNING:
		return 1;
	case SPAWNER_CHECKPOINTING:
		/* resumed as soon as the checkpoint is written (hold.h) */
		gw_holds_want_resume(sv ? sv->holds : NULL, user, server);
		return 0;
	case SPAWNER_STOPPED:
	case SPAWNER_FAILED:
		return err_set_http(err, 409, EINVAL, "server '%s' of %s is %s, not suspended: "
				    "start it instead", server, user,
				    spawner_state_name(srv->state));
	default:
		break;
	}
	from_suspended = srv->state == SPAWNER_SUSPENDED;
	if (from_suspended && resume_env(gw, srv, err) < 0)
		return -1;
	if (from_suspended)
		timer_start(sv, user, server, true); /* the progress stream replays */
	if (spawner_server_resume(gw->spawner, user, server, err) < 0) {
		if (from_suspended && sv)
			timer_stop(sv, user, server);
		ckpt_error_status(*err);
		return -1;
	}
	/* still on its way back (not already failed or running): a fallback
	 * start after a failed restore is held like the restore */
	srv = spawner_server_find(gw->spawner, user, server);
	if (from_suspended && sv && srv &&
	    (srv->state == SPAWNER_RESTORING || srv->state == SPAWNER_STARTING))
		gw_holds_resume_started(sv->holds, user, server);
	return 0;
}
