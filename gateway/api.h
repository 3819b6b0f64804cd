/*
 * api: internal declarations shared by the hub's router (hub.c), its REST
 * API handlers (api_users.c, api_servers.c, api_tokens.c, api_groups.c)
 * and its HTML pages (pages.c). Not used outside those files.
 *
 * (api_checkpoints.c: checkpoint, resume and the checkpoint catalog.)
 *
 * A handler receives the request and the path parameters the router
 * matched, and must answer exactly once through gw_send() (now, or later
 * after gw_conn_ref() for asynchronous work). The hub__ helpers below build
 * and send the common answers.
 *
 * Threading: everything here runs on the event-loop thread.
 */
#ifndef NBGATE_GATEWAY_API_H
#define NBGATE_GATEWAY_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/gw.h"
#include "gateway/auth.h"
#include "gateway/http.h"
#include "gateway/scopes.h"

struct cJSON;
struct spawner_server;
struct err;

/* The version reported by GET /hub/api/ and `nbgate version`. */
#define NBGATE_VERSION "0.1.0"

/* Most path parameters a route pattern has ({} segments). */
#define HUB_MAX_ARGS 3

/* Path parameters: decoded segments, borrowed from the request. */
struct hub_match {
	const char *arg[HUB_MAX_ARGS];
	size_t narg;
};

typedef void (*hub_handler_fn)(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			       const struct hub_match *m);

enum hub_route_flags {
	HUB_API = 1 << 0,      /* JSON errors; cookie-authenticated unsafe requests need JSON */
	HUB_AUTH = 1 << 1,     /* caller must be authenticated */
	HUB_NOCSRF = 1 << 2,   /* handler checks CSRF itself (login form) */
};

/*
 * One route. pattern: absolute path, "{}" matches exactly one non-empty
 * segment. scope: a scope the caller must hold with some filter
 * (scopes_allow_any) before the handler runs; NULL = none (the handler
 * decides). Methods: HEAD is served by GET routes.
 */
struct hub_route {
	enum http_method method;
	const char *pattern;
	hub_handler_fn fn;
	unsigned flags;
	const char *scope;
};

/* The router's table (hub.c) and its size, exposed for tests. */
extern const struct hub_route hub__routes[];
extern const size_t hub__nroutes;

/*
 * Finds the route for (method, path segments). Returns the route, or NULL
 * with *status = 404 (no pattern matches) or 405 (pattern matches but not
 * the method; *allow then lists the methods, e.g. "GET, POST", static
 * buffer owned by the caller of size 64). Fills *m.
 */
const struct hub_route *hub__match(enum http_method method, char *const *seg, size_t nseg,
				   struct hub_match *m, int *status, char *allow, size_t allow_size);

/* ---- answers (hub.c) ---- */

/* JSON error {"status": N, "message": "..."} (API) and sends it. */
void hub__send_error(struct gw_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sends *err as a JSON error (status from err_http_status) and frees it. */
void hub__send_err(struct gw_conn *c, struct err **err);
/* Sends a JSON body (takes json). */
void hub__send_json(struct gw_conn *c, int status, struct cJSON *json);
/* Sends a response with no body (201/202/204). */
void hub__send_empty(struct gw_conn *c, int status);
/* HTML error page with the message escaped (pages). */
void hub__send_page_error(struct gw_conn *c, int status, const char *msg);
/* 302 to location (a validated same-host path). */
void hub__send_redirect(struct gw_conn *c, const char *location);

/*
 * Parses the request body as a JSON value. An empty body gives NULL with
 * *ok = true when allow_empty; otherwise sends 400 ("invalid JSON ...",
 * invalid UTF-8 included) and returns NULL with *ok = false.
 */
struct cJSON *hub__json_body(struct gw_conn *c, const struct gw_request *req, bool allow_empty,
			     bool *ok);

/*
 * Scope check for a request about user/server (either NULL): true when
 * allowed. Otherwise sends 403 (or 404 when `hide`, so that existence is
 * not revealed) and returns false.
 */
bool hub__allow(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		const char *needed, const char *user, const char *server, bool hide);

/* The authenticated caller's user name, or NULL. Borrowed from req. */
const char *hub__who_name(const struct gw_request *req);
/* True when the caller is an admin user. */
bool hub__who_admin(const struct gw_request *req);
/* Groups of user `name` (NULL-terminated, xstrv_free), or NULL. */
char **hub__user_groups(struct gw *gw, const char *name);

/* ---- parsing (hub.c) ---- */

/*
 * The value of `name` in an application/x-www-form-urlencoded string
 * (a form body or a query), decoded ('+' = space, %XX). NULL when absent
 * or malformed (bad %XX, decoded NUL). Caller frees.
 */
char *hub__form_get(const char *s, size_t len, const char *name);

/* Query parameter of the request (see hub__form_get). Caller frees. */
char *hub__query_get(const struct gw_request *req, const char *name);

/* The value of cookie `name` from the Cookie headers, or NULL. Caller frees.
 * When several cookies carry the name, the last one wins?  No: returns NULL
 * (ambiguous, JH-15) so a tossed cookie never authenticates. */
char *hub__cookie_get(const struct gw_request *req, const char *name);

/*
 * Login redirect target (R-1.4, JH-1; JupyterHub's _validate_next_url):
 * returns a same-host absolute path (owned), or NULL when next is unsafe or
 * empty (the caller uses the default /hub/home). public_url is
 * "scheme://host[:port]" (no trailing slash); host is the request's Host.
 * Both may be NULL.
 */
char *hub__next_url(const char *next, const char *public_url, const char *host);

/* ---- handlers: pages.c ---- */
void hub__page_root(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const struct hub_match *m);
void hub__page_login(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m);
void hub__page_login_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__page_logout(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m);
void hub__page_logout_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);
void hub__page_setup(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m);
void hub__page_setup_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__page_home(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const struct hub_match *m);
void hub__page_token(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m);
void hub__page_admin(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m);
void hub__page_static(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m);
void hub__page_health(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m);
void hub__page_metrics(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       const struct hub_match *m);
/* 200 "Resuming your server" for a browser navigating to srv while it is
 * put away (gateway/hold.c decides): follows srv's progress stream and
 * goes back to the request's URL when ready. no-store. */
void hub__page_resuming(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct spawner_server *srv);

/* ---- handlers: api_users.c ---- */
void hub__api_root(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		   const struct hub_match *m);
void hub__api_self(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		   const struct hub_match *m);
void hub__api_users_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const struct hub_match *m);
void hub__api_users_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);
void hub__api_user_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       const struct hub_match *m);
void hub__api_user_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__api_user_patch(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const struct hub_match *m);
void hub__api_user_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__api_user_activity(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m);
/* The JupyterHub user model of `name` as the caller may see it, or NULL
 * when the user does not exist or the caller may see nothing of it. */
struct cJSON *hub__user_model(struct gw *gw, const struct gw_request *req, const char *name);

/* ---- handlers: api_servers.c ---- */
void hub__api_server_start(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);
void hub__api_server_stop(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__api_server_progress(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m);
/* The JupyterHub server model of one spawner server (owned JSON). */
struct cJSON *hub__server_model(const struct spawner_server *srv);
/*
 * JH-19: checks user_options (may be NULL) against cfg. For the
 * sandboxed backends (local, kubernetes) only "profile" (a name in
 * cfg->profiles) and "image" (a name in cfg->images) are accepted; for
 * the process backend any key but those that would control the
 * environment, command or mounts, with "image" from cfg->images. Returns
 * 0, or -EINVAL (http 400) with *err naming the field
 * ("user_options.<key>: ...").
 */
int hub__check_user_options(const struct gw_cfg *cfg, const struct cJSON *opts,
			    struct err **err);
/* GET .../server[s/{name}]/logs: text/plain tail of the server's log. */
void hub__api_server_logs(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
/*
 * The last `lines` lines (at most max_bytes bytes, cut at a line start)
 * of the file at path. Owned text in *out; ENOENT when there is no log
 * yet. Blocking file I/O of at most max_bytes: the event loop reads at
 * most that much (the default is small).
 */
int hub__log_tail(const char *path, long lines, size_t max_bytes, char **out,
		  struct err **err);

/* ---- handlers: api_checkpoints.c ---- */
/* POST .../server[s/{name}]/checkpoint {"mode": "criu"|"commit"|"stop"}
 * (default criu): 202 {"state", "checkpoint_mode"}; 400 unknown field or
 * mode (named), 404, 409 not running, 507 the disk checks refused it. */
void hub__api_server_checkpoint(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
				const struct hub_match *m);
/* POST .../resume: 202 {"state"} (begun, or pending after a checkpoint),
 * 200 already running, 404, 409 stopped/failed ("start it instead"). */
void hub__api_server_resume(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m);
/* GET .../checkpoints: 200 [{"id", "mode", "state", "size", "created",
 * "image", "profile", "reason", "message"}] newest first; 404. */
void hub__api_checkpoints_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			       const struct hub_match *m);
/* DELETE .../checkpoints/{id}: 204; 404 unknown server or checkpoint; 409
 * the checkpoint a suspended server resumes from, or one in use. The last
 * path parameter is the id (routes with and without a server name). */
void hub__api_checkpoint_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
				const struct hub_match *m);

/* ---- handlers: api_tokens.c ---- */
void hub__api_tokens_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__api_tokens_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m);
void hub__api_token_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct hub_match *m);
void hub__api_token_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);

/* ---- handlers: api_groups.c ---- */
void hub__api_groups_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m);
void hub__api_group_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct hub_match *m);
void hub__api_group_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);
void hub__api_group_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m);
void hub__api_group_users_add(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m);
void hub__api_group_users_del(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m);

/* ISO 8601 UTC with 'Z' ("2024-01-02T03:04:05.678Z") of ms since the
 * epoch, as a JSON string; JSON null for 0. */
struct cJSON *hub__iso_time(int64_t ms);

/*
 * JH-10 (CVE-2024-41942): acting "as an admin" on admins needs an admin
 * owner AND an unfiltered admin:users in the request's scopes; an admin's
 * token limited to admin:users!group=g must not grant or change admins.
 */
static inline bool hub__acts_as_admin(const struct gw_request *req)
{
	return req->who && req->who->admin && scopes_allow_all(req->who->scopes, "admin:users");
}

#endif
