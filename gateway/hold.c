/*
 * hold: parked requests for servers that are put away (see hold.h).
 */
#define LOG_PREFIX "gateway/hold: "

#include "gateway/hold.h"
#include "gateway/activity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/scopes.h"
#include "gateway/servers.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

/* One parked request. */
struct held {
	struct gw_conn *c;   /* referenced */
	size_t head_len;     /* its head, at the start of c->in */
	int64_t deadline;    /* mono ms */
	struct held *next;
};

enum hold_todo { TODO_NONE, TODO_RELEASE, TODO_FAIL, TODO_RESUME };

/* The parked requests and resume wishes of one (user, server). */
struct hsrv {
	char *user;
	char *server;
	struct held *held;   /* newest first */
	int nheld;
	bool want_resume;    /* checkpointing now: resume once suspended */
	bool resuming;       /* a resume began: its fallback start is held too */
	enum hold_todo todo; /* what the next sweep does */
	char *fail_msg;      /* TODO_FAIL: the answer's message */
	struct hsrv *next;
};

struct gw_holds {
	struct gw *gw;
	struct hsrv *srvs;
	lws_sorted_usec_list_t sul;
	int64_t armed_at;    /* mono ms the sweep is armed for; 0 = not armed */
};

struct gw_holds *gw_holds_new(struct gw *gw)
{
	struct gw_holds *h = xcalloc(1, sizeof(*h));

	h->gw = gw;
	return h;
}

static void hsrv_free(struct hsrv *hs)
{
	struct held *e, *en;

	for (e = hs->held; e; e = en) {
		en = e->next;
		gw_conn_unref(e->c);
		free(e);
	}
	free(hs->user);
	free(hs->server);
	free(hs->fail_msg);
	free(hs);
}

void gw_holds_free(struct gw_holds *h)
{
	struct hsrv *hs, *hn;

	if (!h)
		return;
	if (h->armed_at)
		lws_sul_cancel(&h->sul);
	for (hs = h->srvs; hs; hs = hn) {
		hn = hs->next;
		hsrv_free(hs);
	}
	free(h);
}

static struct hsrv *hsrv_find(const struct gw_holds *h, const char *user, const char *server)
{
	struct hsrv *hs;

	for (hs = h ? h->srvs : NULL; hs; hs = hs->next)
		if (strcmp(hs->user, user) == 0 && strcmp(hs->server, server) == 0)
			return hs;
	return NULL;
}

static struct hsrv *hsrv_get(struct gw_holds *h, const char *user, const char *server)
{
	struct hsrv *hs = hsrv_find(h, user, server);

	if (hs)
		return hs;
	hs = xcalloc(1, sizeof(*hs));
	hs->user = xstrdup(user);
	hs->server = xstrdup(server);
	hs->next = h->srvs;
	h->srvs = hs;
	return hs;
}

/* Drops parked requests whose client went away. */
static void prune_dead(struct hsrv *hs)
{
	struct held **pp = &hs->held, *e;

	while ((e = *pp)) {
		if (gw_conn_alive(e->c)) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		gw_conn_unref(e->c);
		free(e);
		hs->nheld--;
	}
}

/* ---- the sweep timer ---- */

static void sweep_cb(lws_sorted_usec_list_t *sul);

/* Arms the sweep to run in_ms from now unless it runs earlier already. */
static void arm(struct gw_holds *h, int64_t in_ms)
{
	int64_t now = time_mono_ms(), at = now + (in_ms > 0 ? in_ms : 0);

	if (!h->gw->lws || (h->armed_at && h->armed_at <= at))
		return;
	h->armed_at = at;
	lws_sul_schedule(h->gw->lws, 0, &h->sul, sweep_cb, (lws_usec_t)(at - now) * 1000);
}

/*
 * Gives a parked request its verdict: the connection core acts on it from
 * its own writeable callback (conn.c hold_done: dispatch again from the
 * head, or 503 with Retry-After), so this file uses only fields of the
 * core and lws, never its functions.
 */
static void verdict(struct gw_conn *c, bool ok, const char *msg)
{
	if (!gw_conn_alive(c) || c->st != GW_CS_HOLD || c->hold_verdict != GW_HOLD_PARKED)
		return;
	c->hold_verdict = ok ? GW_HOLD_RELEASE : GW_HOLD_FAIL;
	if (!ok)
		c->hold_msg = xstrdup(msg);
	lws_callback_on_writable(c->wsi);
}

static void answer_busy(struct held *e, const char *msg)
{
	verdict(e->c, false, msg);
}

static void release(struct gw_holds *h, struct held *e)
{
	verdict(e->c, true, NULL);
}

/* Takes every parked request of hs and releases or answers it. The list is
 * detached first: a released request may be parked again later (on hs). */
static void drain(struct gw_holds *h, struct hsrv *hs, bool ok, const char *msg)
{
	struct held *e = hs->held, *en;

	hs->held = NULL;
	hs->nheld = 0;
	for (; e; e = en) {
		en = e->next;
		if (ok)
			release(h, e);
		else
			answer_busy(e, msg);
		gw_conn_unref(e->c);
		free(e);
	}
}

static void do_resume(struct gw_holds *h, struct hsrv *hs)
{
	struct err *err = NULL;
	char *msg;

	if (gw_servers_resume(h->gw, hs->user, hs->server, &err) >= 0)
		return;
	msg = xasprintf("cannot resume server: %s", err->msg);
	log_warn("cannot resume '%s/%s' for held requests: %s", hs->user, hs->server, err->msg);
	err_free(&err);
	drain(h, hs, false, msg);
	free(msg);
}

/* Answers parked requests past their deadline; returns the earliest
 * deadline left (mono ms), or 0. */
static int64_t expire(struct hsrv *hs, int64_t now)
{
	struct held **pp = &hs->held, *e;
	int64_t next = 0;

	while ((e = *pp)) {
		if (e->deadline > now) {
			if (!next || e->deadline < next)
				next = e->deadline;
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		hs->nheld--;
		answer_busy(e, "timed out waiting for the server to resume");
		gw_conn_unref(e->c);
		free(e);
	}
	return next;
}

/* The pending work of one server. */
static void run_todo(struct gw_holds *h, struct hsrv *hs)
{
	enum hold_todo todo = hs->todo;
	char *msg = hs->fail_msg;

	hs->todo = TODO_NONE;
	hs->fail_msg = NULL;
	if (todo == TODO_RELEASE)
		drain(h, hs, true, NULL);
	else if (todo == TODO_FAIL)
		drain(h, hs, false, msg ? msg : "the server is not running");
	else if (todo == TODO_RESUME)
		do_resume(h, hs);
	free(msg);
}

static void sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_holds *h = lws_container_of(sul, struct gw_holds, sul);
	struct hsrv **pp = &h->srvs, *hs;
	int64_t now = time_mono_ms(), next = 0, d;

	h->armed_at = 0;
	/* run_todo may park requests again or add servers (at the head of
	 * the list, before pp): both are seen by the next sweep */
	while ((hs = *pp)) {
		if (hs->todo != TODO_NONE)
			run_todo(h, hs);
		prune_dead(hs);
		d = expire(hs, now);
		if (d && (!next || d < next))
			next = d;
		if (!hs->held && !hs->want_resume && !hs->resuming && hs->todo == TODO_NONE) {
			*pp = hs->next;
			hsrv_free(hs);
			continue;
		}
		if (hs->todo != TODO_NONE)
			next = now;
		pp = &hs->next;
	}
	if (next)
		arm(h, next - now);
}

/* ---- the dispatcher's "no route" hook ---- */

static bool wants_html(const struct gw_request *req)
{
	const struct http_header *h = http_req_header(req->http, "Accept", NULL);

	return h && memmem(h->value, h->value_len, "text/html", 9) != NULL;
}

/*
 * The server a request without a route is for. The proxy takes
 * /user/<u>/<s>/ as named server <s> only while <s> has a route, and a
 * server that is put away has none: ask the spawner instead.
 */
static const char *target_server(struct gw *gw, const struct gw_request *req,
				 const char *user, const char *server)
{
	const struct http_path *p = &req->http->path;

	if ((server && *server) || p->nseg < 3 || !gw->spawner)
		return server ? server : "";
	return spawner_server_find(gw->spawner, user, p->seg[2]) ? p->seg[2] : "";
}

/* access:servers on (user, server), as the proxy checks it. */
static bool may_access(struct gw *gw, const struct gw_request *req, const char *user,
		       const char *server)
{
	char **groups;
	bool ok;

	if (!req->who)
		return false;
	if (strcmp(user, req->who->user) == 0)
		return scopes_allow(req->who->scopes, "access:servers", user, server,
				    (const char *const *)req->who->groups);
	groups = hub__user_groups(gw, user);
	ok = scopes_allow(req->who->scopes, "access:servers", user, server,
			  (const char *const *)groups);
	xstrv_free(groups);
	return ok;
}

/* A browser navigating (not a script, not a WebSocket) gets the page. */
static bool is_navigation(const struct gw_request *req)
{
	return req->http->method == HTTP_GET && !req->http->ws_upgrade && wants_html(req);
}


/*
 * What an open but untouched JupyterLab tab sends by itself: its periodic
 * polling (the activity model's list) and WebSocket reconnects. Such a
 * request waits for the server but does not bring it back: else the tab a
 * user walked away from would undo every checkpoint of its server at once
 * (its kernel WebSocket is closed for the dump and reconnects within
 * milliseconds). A navigation, the Resume button or API, or any request
 * the activity model counts (saving, opening a file, starting a kernel)
 * resumes; then the waiting requests go through and the tab reconnects.
 */
static bool is_passive(const struct gw_request *req, const char *server)
{
	const struct http_req *h = req->http;

	if (is_navigation(req))
		return false;
	if (h->ws_upgrade)
		return true;
	return !gw_activity_http_counts(h->method_str,
					gw_activity_subpath(h->path.encoded, server));
}

/* A passive request for a server that is away: held, no resume. True when
 * it was handled so. */
static bool hold_passive(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const struct spawner_server *srv)
{
	if (!srv || (srv->state != SPAWNER_SUSPENDED && srv->state != SPAWNER_CHECKPOINTING) ||
	    !is_passive(req, srv->name))
		return false;
	if (gw_hold_request(gw, c, req, srv->user, srv->name) < 0)
		hub__send_error(c, 503, "server %s%s%s is suspended; too many requests are "
				"waiting for it", srv->user, *srv->name ? "/" : "", srv->name);
	return true;
}

/* Resumes srv for this request, then shows the page or holds the request. */
static void resume_for_request(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			       const char *user, const char *server)
{
	struct spawner_server *srv = spawner_server_find(gw->spawner, user, server);
	bool was_suspended = srv && srv->state == SPAWNER_SUSPENDED;
	struct err *err = NULL;
	int r;

	if (hold_passive(gw, c, req, srv))
		return;

	r = gw_servers_resume(gw, user, server, &err);
	if (r < 0) {
		hub__send_error(c, 503, "cannot resume server: %s", err->msg);
		err_free(&err);
		return;
	}
	if (was_suspended)
		db_audit(gw->db, req->who ? req->who->user : NULL, "server.resume", user,
			 server);
	srv = spawner_server_find(gw->spawner, user, server);
	if (r == 1 || !srv) {
		hub__send_error(c, 503, "server %s%s%s changed state; try again", user,
				*server ? "/" : "", server);
		return;
	}
	if (is_navigation(req))
		hub__page_resuming(gw, c, req, srv);
	else if (gw_hold_request(gw, c, req, user, server) < 0)
		hub__send_error(c, 503, "too many requests are waiting for server %s%s%s",
				user, *server ? "/" : "", server);
}

bool gw_hold_not_running(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const char *user, const char *server)
{
	struct spawner_server *srv;

	server = target_server(gw, req, user, server);
	srv = gw->spawner ? spawner_server_find(gw->spawner, user, server) : NULL;
	if (!srv || !gw_holds_should_hold(gw_servers_holds(gw), srv))
		return false;
	if (!may_access(gw, req, user, server))
		hub__send_error(c, 403, "action is not authorized with current scopes; "
				"requires any of [access:servers]");
	else
		resume_for_request(gw, c, req, user, server);
	return true;
}

/* ---- API ---- */

int gw_hold_request(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const char *user, const char *server)
{
	struct gw_holds *h = gw_servers_holds(gw);
	struct hsrv *hs;
	struct held *e;
	int64_t wait;

	if (!h || !gw_conn_alive(c))
		return -1;
	hs = hsrv_get(h, user, server);
	prune_dead(hs);
	if (hs->nheld >= GW_HOLD_MAX_PER_SERVER)
		return -1;
	/* a restore, then maybe its fallback start: each within spawn_timeout */
	wait = 2 * (gw->cfg->spawn_timeout > 0 ? gw->cfg->spawn_timeout : 60000);
	e = xcalloc(1, sizeof(*e));
	e->c = gw_conn_ref(c);
	e->head_len = req->http->head_len;
	e->deadline = time_mono_ms() + wait;
	e->next = hs->held;
	hs->held = e;
	hs->nheld++;
	c->st = GW_CS_HOLD;
	c->hold_verdict = GW_HOLD_PARKED;
	c->hold_head_len = e->head_len;
	c->deadline = 0; /* no header timeout while parked: ours applies */
	arm(h, wait);
	log_debug("holding a request for '%s/%s' (%d held)", user, server, hs->nheld);
	return 0;
}

void gw_holds_on_event(struct gw_holds *h, const struct spawner_server *srv,
		       const struct spawner_event *ev)
{
	struct hsrv *hs = hsrv_find(h, srv->user, srv->name);

	if (!hs)
		return;
	if (ev->ready) {
		hs->todo = TODO_RELEASE;
		hs->want_resume = hs->resuming = false;
	} else if (ev->failed || ev->state == SPAWNER_STOPPED) {
		hs->todo = TODO_FAIL;
		free(hs->fail_msg);
		hs->fail_msg = xasprintf("the server did not come back: %s",
					 ev->message && *ev->message ? ev->message : "stopped");
		hs->want_resume = hs->resuming = false;
	} else if (ev->state == SPAWNER_SUSPENDED && hs->want_resume) {
		/* asked for (not only waited for) while the checkpoint was written:
		 * bring it back now */
		hs->todo = TODO_RESUME;
		hs->want_resume = false;
	} else {
		return;
	}
	arm(h, 0);
}

void gw_holds_want_resume(struct gw_holds *h, const char *user, const char *server)
{
	if (h)
		hsrv_get(h, user, server)->want_resume = true;
}

void gw_holds_resume_started(struct gw_holds *h, const char *user, const char *server)
{
	if (h)
		hsrv_get(h, user, server)->resuming = true;
}

int gw_holds_count(const struct gw_holds *h, const char *user, const char *server)
{
	const struct hsrv *hs = hsrv_find(h, user, server);

	return hs ? hs->nheld : 0;
}

bool gw_holds_should_hold(const struct gw_holds *h, const struct spawner_server *srv)
{
	const struct hsrv *hs;

	switch (srv->state) {
	case SPAWNER_CHECKPOINTING:
	case SPAWNER_SUSPENDED:
	case SPAWNER_RESTORING:
		return true;
	case SPAWNER_STARTING:
		hs = hsrv_find(h, srv->user, srv->name);
		return hs && hs->resuming;
	default:
		return false;
	}
}
