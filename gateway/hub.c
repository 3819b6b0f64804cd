/*
 * hub: the router for everything under /hub/ (pages, REST API, metrics),
 * plus the helpers its handlers share (answers, form/query/cookie parsing,
 * login next-URL validation).
 *
 * Order of checks for every request (JH-9, AUTH-10: nothing changes state
 * before all of them passed):
 *   1. route match (404 / 405 with Allow)
 *   2. authentication when the route needs it (API: 403 JSON as
 *      JupyterHub; pages: redirect to the login page)
 *   3. for cookie-authenticated unsafe methods: CSRF (auth_csrf_check),
 *      and on the API a JSON content type (text/plain and forms -> 403)
 *   4. the route's coarse scope (held with any filter)
 *   5. the handler's precise scope check on the target user/server.
 */
#define LOG_PREFIX "gateway/hub: "

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/handoff.h"
#include "gateway/scopes.h"
#include "gateway/users.h"

#define U "/hub/api/users/{}"
#define S U "/servers/{}"
#define G "/hub/api/groups/{}"

const struct hub_route hub__routes[] = {
	{ HTTP_GET, "/hub", hub__page_root, 0, NULL },
	{ HTTP_GET, "/hub/login", hub__page_login, 0, NULL },
	{ HTTP_POST, "/hub/login", hub__page_login_post, HUB_NOCSRF, NULL },
	{ HTTP_GET, "/hub/logout", hub__page_logout, 0, NULL },
	{ HTTP_POST, "/hub/logout", hub__page_logout_post, 0, NULL },
	{ HTTP_GET, "/hub/setup", hub__page_setup, 0, NULL },
	{ HTTP_POST, "/hub/setup", hub__page_setup_post, HUB_NOCSRF, NULL },
	{ HTTP_GET, "/hub/home", hub__page_home, HUB_AUTH, NULL },
	{ HTTP_GET, "/hub/token", hub__page_token, HUB_AUTH, NULL },
	{ HTTP_GET, "/hub/admin", hub__page_admin, HUB_AUTH, "admin:users" },
	{ HTTP_GET, "/hub/static/{}", hub__page_static, 0, NULL },
	{ HTTP_GET, "/hub/health", hub__page_health, 0, NULL },
	{ HTTP_GET, "/hub/metrics", hub__page_metrics, 0, NULL },

	{ HTTP_GET, "/hub/api", hub__api_root, HUB_API, NULL },
	{ HTTP_GET, "/hub/api/user", hub__api_self, HUB_API | HUB_AUTH, NULL },
	{ HTTP_GET, "/hub/api/users", hub__api_users_list, HUB_API | HUB_AUTH, "list:users" },
	{ HTTP_POST, "/hub/api/users", hub__api_users_create, HUB_API | HUB_AUTH, "admin:users" },
	{ HTTP_GET, U, hub__api_user_get, HUB_API | HUB_AUTH, NULL },
	{ HTTP_POST, U, hub__api_user_create, HUB_API | HUB_AUTH, "admin:users" },
	{ HTTP_PATCH, U, hub__api_user_patch, HUB_API | HUB_AUTH, "admin:users" },
	{ HTTP_DELETE, U, hub__api_user_delete, HUB_API | HUB_AUTH, "delete:users" },
	{ HTTP_POST, U "/activity", hub__api_user_activity, HUB_API | HUB_AUTH, "users:activity" },
	{ HTTP_POST, U "/server", hub__api_server_start, HUB_API | HUB_AUTH, "servers" },
	{ HTTP_DELETE, U "/server", hub__api_server_stop, HUB_API | HUB_AUTH, "delete:servers" },
	{ HTTP_GET, U "/server/progress", hub__api_server_progress, HUB_API | HUB_AUTH,
	  "read:servers" },
	{ HTTP_POST, S, hub__api_server_start, HUB_API | HUB_AUTH, "servers" },
	{ HTTP_DELETE, S, hub__api_server_stop, HUB_API | HUB_AUTH, "delete:servers" },
	{ HTTP_GET, S "/progress", hub__api_server_progress, HUB_API | HUB_AUTH, "read:servers" },
	{ HTTP_GET, U "/server/logs", hub__api_server_logs, HUB_API | HUB_AUTH, "read:servers" },
	/* checkpoints (issue 4, api_checkpoints.c) */
	{ HTTP_POST, U "/server/checkpoint", hub__api_server_checkpoint, HUB_API | HUB_AUTH,
	  "servers" },
	{ HTTP_POST, S "/checkpoint", hub__api_server_checkpoint, HUB_API | HUB_AUTH, "servers" },
	{ HTTP_POST, U "/server/resume", hub__api_server_resume, HUB_API | HUB_AUTH, "servers" },
	{ HTTP_POST, S "/resume", hub__api_server_resume, HUB_API | HUB_AUTH, "servers" },
	{ HTTP_GET, U "/server/checkpoints", hub__api_checkpoints_list, HUB_API | HUB_AUTH,
	  "read:servers" },
	{ HTTP_GET, S "/checkpoints", hub__api_checkpoints_list, HUB_API | HUB_AUTH,
	  "read:servers" },
	{ HTTP_DELETE, U "/server/checkpoints/{}", hub__api_checkpoint_delete, HUB_API | HUB_AUTH,
	  "servers" },
	{ HTTP_DELETE, S "/checkpoints/{}", hub__api_checkpoint_delete, HUB_API | HUB_AUTH,
	  "servers" },
	{ HTTP_GET, S "/logs", hub__api_server_logs, HUB_API | HUB_AUTH, "read:servers" },
	{ HTTP_GET, U "/tokens", hub__api_tokens_list, HUB_API | HUB_AUTH, "read:tokens" },
	{ HTTP_POST, U "/tokens", hub__api_tokens_create, HUB_API | HUB_AUTH, "tokens" },
	{ HTTP_GET, U "/tokens/{}", hub__api_token_get, HUB_API | HUB_AUTH, "read:tokens" },
	{ HTTP_DELETE, U "/tokens/{}", hub__api_token_delete, HUB_API | HUB_AUTH, "tokens" },
	{ HTTP_GET, "/hub/api/groups", hub__api_groups_list, HUB_API | HUB_AUTH, "list:groups" },
	{ HTTP_GET, G, hub__api_group_get, HUB_API | HUB_AUTH, "read:groups" },
	{ HTTP_POST, G, hub__api_group_create, HUB_API | HUB_AUTH, "admin:groups" },
	{ HTTP_DELETE, G, hub__api_group_delete, HUB_API | HUB_AUTH, "delete:groups" },
	{ HTTP_POST, G "/users", hub__api_group_users_add, HUB_API | HUB_AUTH, "groups" },
	{ HTTP_DELETE, G "/users", hub__api_group_users_del, HUB_API | HUB_AUTH, "groups" },
};
const size_t hub__nroutes = sizeof(hub__routes) / sizeof(hub__routes[0]);

#undef U
#undef S
#undef G

static const char *method_name(enum http_method m)
{
	static const char *const names[] = {
		[HTTP_GET] = "GET", [HTTP_POST] = "POST", [HTTP_PUT] = "PUT",
		[HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE",
	};

	if ((size_t)m < sizeof(names) / sizeof(names[0]) && names[m])
		return names[m];
	return "?";
}

/* Matches seg[] against pattern's segments; fills m->arg for "{}". */
static bool pattern_match(const char *pattern, char *const *seg, size_t nseg,
			  struct hub_match *m)
{
	const char *p = pattern;
	size_t i = 0, n;

	m->narg = 0;
	while (*p == '/') {
		p++;
		n = strcspn(p, "/");
		if (i >= nseg)
			return false;
		if (n == 2 && p[0] == '{' && p[1] == '}') {
			if (!seg[i][0] || m->narg >= HUB_MAX_ARGS)
				return false;
			m->arg[m->narg++] = seg[i];
		} else if (strlen(seg[i]) != n || memcmp(seg[i], p, n) != 0) {
			return false;
		}
		i++;
		p += n;
	}
	return i == nseg;
}

static void allow_add(char *allow, size_t size, const char *name)
{
	size_t len = strlen(allow);

	if (strstr(allow, name))
		return;
	snprintf(allow + len, size - len, "%s%s", len ? ", " : "", name);
}

const struct hub_route *hub__match(enum http_method method, char *const *seg, size_t nseg,
				   struct hub_match *m, int *status, char *allow, size_t allow_size)
{
	enum http_method want = method == HTTP_HEAD ? HTTP_GET : method;
	struct hub_match tmp;
	size_t i;

	if (allow_size)
		allow[0] = '\0';
	*status = 404;
	for (i = 0; i < hub__nroutes; i++) {
		if (!pattern_match(hub__routes[i].pattern, seg, nseg, &tmp))
			continue;
		if (hub__routes[i].method == want) {
			*m = tmp;
			return &hub__routes[i];
		}
		*status = 405;
		allow_add(allow, allow_size, method_name(hub__routes[i].method));
		if (hub__routes[i].method == HTTP_GET)
			allow_add(allow, allow_size, "HEAD");
	}
	return NULL;
}

/* ---- answers ---- */

void hub__send_json(struct gw_conn *c, int status, struct cJSON *json)
{
	struct gw_response r;

	gw_response_init(&r, status);
	gw_response_json(&r, status, json);
	gw_send(c, &r);
}

void hub__send_error(struct gw_conn *c, int status, const char *fmt, ...)
{
	struct gw_response r;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	gw_response_init(&r, status);
	gw_response_error(&r, status, "%s", msg);
	free(msg);
	gw_send(c, &r);
}

void hub__send_err(struct gw_conn *c, struct err **err)
{
	int status = err_http_status(*err);

	/* 507: the disk checks before a dump, whose message (free space,
	 * estimate, quota) is written for the user */
	bool user_msg = status < 500 || status == 507;

	if (!user_msg)
		log_err("request failed: %s", (*err)->msg);
	/* 5xx messages may carry internals (paths, SQL); clients get a generic one */
	hub__send_error(c, status, "%s", user_msg ? (*err)->msg : "internal error");
	err_free(err);
}

void hub__send_empty(struct gw_conn *c, int status)
{
	struct gw_response r;

	gw_response_init(&r, status);
	gw_send(c, &r);
}

void hub__send_redirect(struct gw_conn *c, const char *location)
{
	struct gw_response r;

	gw_response_init(&r, 302);
	gw_response_redirect(&r, 302, location);
	gw_send(c, &r);
}

struct cJSON *hub__json_body(struct gw_conn *c, const struct gw_request *req, bool allow_empty,
			     bool *ok)
{
	struct err *err = NULL;
	cJSON *j;

	*ok = true;
	if (req->body_len == 0 && allow_empty)
		return NULL;
	j = json_parse(req->body ? req->body : "", req->body_len, &err);
	if (!j) {
		*ok = false;
		hub__send_error(c, 400, "invalid JSON body: %s", err ? err->msg : "empty");
		err_free(&err);
	}
	return j;
}

const char *hub__who_name(const struct gw_request *req)
{
	return req->who ? req->who->user : NULL;
}

bool hub__who_admin(const struct gw_request *req)
{
	return req->who && req->who->admin;
}

char **hub__user_groups(struct gw *gw, const char *name)
{
	struct users_user *u = NULL;
	struct err *err = NULL;
	char **groups = NULL;

	if (!name || users_get(gw->db, name, &u, &err) <= 0) {
		err_free(&err);
		return NULL;
	}
	if (users_groups_of(gw->db, u->id, &groups, &err) < 0)
		err_free(&err);
	users_user_free(u);
	return groups;
}

bool hub__allow(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		const char *needed, const char *user, const char *server, bool hide)
{
	char **groups = NULL;
	bool ok = false;

	if (req->who) {
		/* the caller's own groups are known; others' come from the DB
		 * (needed for !group= filters) */
		if (user && strcmp(user, req->who->user) == 0)
			ok = scopes_allow(req->who->scopes, needed, user, server,
					  (const char *const *)req->who->groups);
		else {
			groups = hub__user_groups(gw, user);
			ok = scopes_allow(req->who->scopes, needed, user, server,
					  (const char *const *)groups);
			xstrv_free(groups);
		}
	}
	if (ok)
		return true;
	if (hide)
		hub__send_error(c, 404, "not found");
	else
		hub__send_error(c, 403, "action is not authorized with current scopes; requires "
			       "any of [%s]", needed);
	return false;
}

/* ---- parsing ---- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Decodes s[0..n) ('+' -> ' ', %XX); NULL on a bad escape or a NUL byte. */
static char *form_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

char *hub__form_get(const char *s, size_t len, const char *name)
{
	size_t nlen = strlen(name), i = 0, end, eq;

	if (!s)
		return NULL;
	while (i < len) {
		end = i;
		while (end < len && s[end] != '&')
			end++;
		eq = i;
		while (eq < end && s[eq] != '=')
			eq++;
		if (eq - i == nlen && memcmp(s + i, name, nlen) == 0)
			return form_decode(s + eq + (eq < end), end - eq - (eq < end));
		i = end + 1;
	}
	return NULL;
}

char *hub__query_get(const struct gw_request *req, const char *name)
{
	const char *q = req->http->query;

	return q ? hub__form_get(q, strlen(q), name) : NULL;
}

/* Scans one Cookie header value for name; counts matches into *count. */
static void cookie_scan(const char *v, size_t len, const char *name, char **found,
			int *count)
{
	size_t nlen = strlen(name), i = 0, end;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == ';'))
			i++;
		end = i;
		while (end < len && v[end] != ';')
			end++;
		if (end - i > nlen && v[i + nlen] == '=' && memcmp(v + i, name, nlen) == 0) {
			(*count)++;
			free(*found);
			*found = xstrndup(v + i + nlen + 1, end - i - nlen - 1);
		}
		i = end;
	}
}

char *hub__cookie_get(const struct gw_request *req, const char *name)
{
	const struct http_req *h = req->http;
	char *found = NULL;
	int count = 0;
	size_t i;

	for (i = 0; i < h->nhdr; i++)
		if (h->hdr[i].name_len == 6 && strncasecmp(h->hdr[i].name, "Cookie", 6) == 0)
			cookie_scan(h->hdr[i].value, h->hdr[i].value_len, name, &found, &count);
	if (count > 1) {
		/* JH-15: a second cookie of the same name may be tossed from a
		 * sibling domain; trust neither */
		free(found);
		return NULL;
	}
	return found;
}

/* "scheme://host[:port]" of public_url, lower-cased; NULL if not absolute. */
static char *origin_of(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL;
	size_t n;
	char *o;

	if (!p)
		return NULL;
	n = (size_t)(p - url) + 3 + strcspn(p + 3, "/?#");
	o = xstrndup(url, n);
	for (char *q = o; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return o;
}

/* True when s starts with prefix, ASCII case-insensitively. */
static bool prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The rest of next after prefix (case-insensitive), or NULL. */
static const char *after(const char *next, const char *prefix)
{
	return prefix && prefix_ci(next, prefix) ? next + strlen(prefix) : NULL;
}

/* Strips "scheme://ourhost" or "//ourhost" when followed by '/' or end. */
static const char *strip_own_origin(const char *next, const char *public_url,
				    const char *host)
{
	char *origin = origin_of(public_url);
	char *alt = origin && strstr(origin, "://") ? xasprintf("/%s", strstr(origin, "://") + 1) :
						      NULL;
	char *alt_host = host && *host ? xasprintf("//%s", host) : NULL;
	const char *rest = after(next, origin);

	if (!rest)
		rest = after(next, alt);      /* "//host[:port]" */
	if (!rest)
		rest = after(next, alt_host);
	free(origin);
	free(alt);
	free(alt_host);
	if (rest && *rest != '/' && *rest != '\0' && *rest != '?' && *rest != '#')
		return NULL; /* "https://ourhost.evil" is another host */
	return rest;
}

char *hub__next_url(const char *next, const char *public_url, const char *host)
{
	const char *p, *rest;

	if (!next || !*next)
		return NULL;
	for (p = next; *p; p++) /* JupyterHub escapes '\'; control bytes never belong */
		if (*p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return NULL;
	rest = strip_own_origin(next, public_url, host);
	if (rest) {
		if (*rest != '/')
			return xasprintf("/%s", rest);
		/* CVE-2026-33709: "https://host//evil/" must become "/evil/" */
		while (rest[1] == '/')
			rest++;
		return xstrdup(rest);
	}
	/* only absolute paths remain; "//x" (and "///x") name another host */
	if (next[0] != '/' || next[1] == '/')
		return NULL;
	return xstrdup(next);
}

/* ---- dispatch ---- */

static bool is_unsafe(enum http_method m)
{
	return m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS;
}

/* JSON APIs refuse other content types when cookie-authenticated (R-5.5). */
static bool json_content_type(const struct gw_request *req)
{
	const struct http_header *h = http_req_header(req->http, "Content-Type", NULL);

	if (!h)
		return req->body_len == 0;
	return h->value_len >= 16 && strncasecmp(h->value, "application/json", 16) == 0 &&
	       (h->value_len == 16 || h->value[16] == ';' || h->value[16] == ' ');
}

/* Percent-encodes a path+query for use as the login page's next= value. */
static char *encode_next(const struct gw_request *req)
{
	const char *path = req->http->path.encoded;
	const char *q = req->http->query;
	char *raw = q ? xasprintf("%s?%s", path, q) : xstrdup(path);
	struct buf b;

	buf_init(&b, 16384);
	for (const char *p = raw; *p; p++) {
		if (isalnum((unsigned char)*p) || strchr("/-._~", *p))
			buf_append(&b, p, 1);
		else
			buf_appendf(&b, "%%%02X", (unsigned char)*p);
	}
	free(raw);
	return buf_detach(&b, NULL);
}

static void send_unauthenticated(struct gw_conn *c, const struct gw_request *req,
				 const struct hub_route *r)
{
	char *next, *loc;

	if (r->flags & HUB_API) {
		hub__send_error(c, 403, "missing or invalid credentials");
		return;
	}
	next = encode_next(req);
	loc = xasprintf("/hub/login?next=%s", next);
	hub__send_redirect(c, loc);
	free(loc);
	free(next);
}

/* Steps 3 and 4 of the header comment. Sends the answer when refusing. */
static bool precheck(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_route *r)
{
	struct err *err = NULL;

	if (req->via_cookie && is_unsafe(req->http->method) && !(r->flags & HUB_NOCSRF)) {
		if (auth_csrf_check(gw->auth, gw->cfg, req->http, req->who, req->body,
				    req->body_len, &err) < 0) {
			if (r->flags & HUB_API)
				hub__send_err(c, &err);
			else {
				hub__send_page_error(c, 403, err->msg);
				err_free(&err);
			}
			return false;
		}
		if ((r->flags & HUB_API) && !json_content_type(req)) {
			hub__send_error(c, 415, "cookie-authenticated API requests must send "
				       "Content-Type: application/json");
			return false;
		}
	}
	if (r->scope && !(req->who && scopes_allow_any(req->who->scopes, r->scope))) {
		if (r->flags & HUB_API)
			hub__send_error(c, 403, "action is not authorized with current scopes; "
				       "requires any of [%s]", r->scope);
		else
			hub__send_page_error(c, 403, "You are not allowed to see this page.");
		return false;
	}
	return true;
}

static bool is_api_path(const struct http_path *p)
{
	return p->nseg >= 2 && strcmp(p->seg[0], "hub") == 0 && strcmp(p->seg[1], "api") == 0;
}

static void send_no_route(struct gw_conn *c, const struct gw_request *req, int status,
			  const char *allow)
{
	struct gw_response r;

	gw_response_init(&r, status);
	if (status == 405 && allow[0])
		gw_response_header(&r, "Allow", "%s", allow);
	if (is_api_path(&req->http->path)) {
		gw_response_error(&r, status, "%s", status == 405 ? "method not allowed" :
				  "not found");
		gw_send(c, &r);
		return;
	}
	gw_response_release(&r);
	hub__send_page_error(c, status, status == 405 ? "Method not allowed." :
			     "Page not found.");
}

void gw_hub_handle(struct gw *gw, struct gw_conn *c, const struct gw_request *req)
{
	const struct http_path *p = &req->http->path;
	const struct hub_route *r;
	struct hub_match m;
	char allow[64], *host_user;
	int status;

	if (auth_host_is_user(gw->cfg, req->host)) {
		/* subdomain mode: on a user's host the hub serves only the
		 * login hand-off; its pages, API and cookies stay on its own */
		host_user = handoff_host_user(gw->cfg, req->host);
		gw_hub_user_host(gw, c, req, host_user);
		free(host_user);
		return;
	}
	r = hub__match(req->http->method, p->seg, p->nseg, &m, &status, allow, sizeof(allow));
	if (!r) {
		send_no_route(c, req, status, allow);
		return;
	}
	if ((r->flags & HUB_AUTH) && !req->who) {
		send_unauthenticated(c, req, r);
		return;
	}
	if (!precheck(gw, c, req, r))
		return;
	r->fn(gw, c, req, &m);
}

struct cJSON *hub__iso_time(int64_t ms)
{
	char out[64];
	time_t t;
	struct tm tm;

	if (ms <= 0)
		return cJSON_CreateNull();
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return cJSON_CreateString(out);
}
