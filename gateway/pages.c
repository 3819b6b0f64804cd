/*
 * pages: the hub's server-rendered HTML pages (login, logout, setup, home,
 * token, admin, the "server not running" page), the same-origin static
 * files they use, /hub/health and /hub/metrics.
 *
 * Everything echoed into HTML goes through gw_html_escape (R-1.5, JH-2,
 * JH-13). No inline script or style: the CSP that gw_send adds
 * (default-src 'self'; frame-ancestors 'none') is enough for
 * /hub/static/app.js and /hub/static/style.css. The CSRF token for the
 * JavaScript calls is in <meta name="nbgate-xsrf">.
 */
#define LOG_PREFIX "gateway/pages: "

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/handoff.h"
#include "gateway/metrics.h"
#include "gateway/scopes.h"
#include "gateway/users.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

#define PAGE_MAX (4u << 20)

char *gw_html_escape(const char *s)
{
	struct buf b;

	buf_init(&b, (size_t)-1 / 2);
	for (; s && *s; s++) {
		switch (*s) {
		case '&': buf_appends(&b, "&amp;"); break;
		case '<': buf_appends(&b, "&lt;"); break;
		case '>': buf_appends(&b, "&gt;"); break;
		case '"': buf_appends(&b, "&quot;"); break;
		case '\'': buf_appends(&b, "&#39;"); break;
		case '`': buf_appends(&b, "&#96;"); break;
		default: buf_append(&b, s, 1); break;
		}
	}
	return buf_detach(&b, NULL);
}

/* Appends escaped s. */
static void put_esc(struct buf *b, const char *s)
{
	char *e = gw_html_escape(s);

	buf_appends(b, e);
	free(e);
}

struct page {
	const char *title;
	const char *set_cookie;  /* may be NULL */
	bool no_store;           /* Cache-Control: no-store (token page) */
	bool bare;               /* no navigation (login, setup) */
};

static void page_nav(struct gw *gw, const struct gw_request *req, struct buf *out)
{
	if (!req->who)
		return;
	buf_appends(out, "<nav><a href=\"/hub/home\">Home</a> <a href=\"/hub/token\">Token</a>");
	if (scopes_allow_any(req->who->scopes, "admin:users"))
		buf_appends(out, " <a href=\"/hub/admin\">Admin</a>");
	buf_appends(out, " <span class=\"who\">");
	put_esc(out, req->who->user);
	buf_appends(out, "</span> <a href=\"/hub/logout\">Logout</a></nav>\n");
}

/* Sends a complete HTML document around body (escaped already). */
static void page_send(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      int status, const struct page *p, const char *body)
{
	struct gw_response r;
	struct buf out;
	char *xsrf = req->who ? auth_csrf_token(gw->auth, req->who) : NULL;

	buf_init(&out, PAGE_MAX);
	buf_appends(&out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		    "<meta name=\"viewport\" content=\"width=device-width\">"
		    "<link rel=\"stylesheet\" href=\"/hub/static/style.css\">"
		    "<script src=\"/hub/static/app.js\" defer></script>");
	if (xsrf)
		buf_appendf(&out, "<meta name=\"nbgate-xsrf\" content=\"%s\">", xsrf);
	buf_appends(&out, "<title>");
	put_esc(&out, p->title);
	buf_appends(&out, " - nbgate</title></head><body>\n");
	if (!p->bare)
		page_nav(gw, req, &out);
	buf_appends(&out, "<main>\n");
	buf_appends(&out, body);
	buf_appends(&out, "</main></body></html>\n");
	gw_response_init(&r, status);
	if (p->set_cookie)
		gw_response_header(&r, "Set-Cookie", "%s", p->set_cookie);
	if (p->no_store)
		gw_response_header(&r, "Cache-Control", "no-store");
	gw_response_html(&r, status, out.data);
	buf_release(&out);
	free(xsrf);
	gw_send(c, &r);
}

void hub__send_page_error(struct gw_conn *c, int status, const char *msg)
{
	struct gw_response r;
	struct buf out;

	buf_init(&out, PAGE_MAX);
	buf_appendf(&out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		    "<link rel=\"stylesheet\" href=\"/hub/static/style.css\">"
		    "<title>%d %s</title></head><body><main><h1>%d %s</h1><p>", status,
		    http_reason(status), status, http_reason(status));
	put_esc(&out, msg);
	buf_appends(&out, "</p><p><a href=\"/hub/home\">Home</a></p></main></body></html>\n");
	gw_response_init(&r, status);
	gw_response_html(&r, status, out.data);
	buf_release(&out);
	gw_send(c, &r);
}

/* ---- login ---- */

static void login_form(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       int status, const char *next, const char *error)
{
	char *set_cookie = NULL;
	char *xsrf = auth_login_xsrf_new(gw->auth, gw->cfg, &set_cookie);
	struct page p = { .title = "Sign in", .set_cookie = set_cookie, .bare = true };
	struct buf b;

	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Sign in</h1>\n");
	if (error) {
		buf_appends(&b, "<p class=\"error\">");
		put_esc(&b, error);
		buf_appends(&b, "</p>\n");
	}
	buf_appends(&b, "<form method=\"post\" action=\"/hub/login\">"
		    "<input type=\"hidden\" name=\"_xsrf\" value=\"");
	put_esc(&b, xsrf);
	buf_appends(&b, "\"><input type=\"hidden\" name=\"next\" value=\"");
	put_esc(&b, next ? next : "");
	buf_appends(&b, "\"><label>Username <input name=\"username\" autocomplete=\"username\" "
		    "autocapitalize=\"none\" required autofocus></label>"
		    "<label>Password <input type=\"password\" name=\"password\" "
		    "autocomplete=\"current-password\" required></label>"
		    "<button type=\"submit\">Sign in</button></form>\n");
	page_send(gw, c, req, status, &p, b.data);
	buf_release(&b);
	free(xsrf);
	free(set_cookie);
}

void hub__page_root(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const struct hub_match *m)
{
	hub__send_redirect(c, req->who ? "/hub/home" : "/hub/login");
}

/*
 * Where a login with next goes (R-1.4, JH-1). Path mode: hub__next_url's
 * answer. Subdomain mode, where /user/<u>/... is served on u's own host
 * only: a next on the user's own host (absolute URL, or /user/<me>/...,
 * which the core would send there) goes through the hand-off (handoff.h)
 * when session_id is a hub session (0 = none: token callers); a next under
 * another user's /user/ prefix is dropped, since no cookie can be carried
 * there and the browser would bounce between the hosts. Caller frees;
 * NULL = the default page.
 */
static char *login_next(struct gw *gw, const char *next, int64_t user_id, const char *user,
			int64_t session_id)
{
	char *path = hub__next_url(next, gw->cfg->public_url, NULL);
	char *mine = xasprintf("/user/%s", user), *upath = NULL, *loc = NULL;
	size_t ml = strlen(mine);
	struct err *err = NULL;

	if (gw->cfg->url_mode != GW_URL_SUBDOMAIN)
		goto out;
	if (!path)
		upath = handoff_next_path(gw->cfg, next, user);
	else if (strncmp(path, mine, ml) == 0 && strchr("/?#", path[ml]))
		upath = handoff_user_path(user, path);
	else if (strncmp(path, "/user/", 6) == 0)
		goto drop;
	if (!upath || session_id <= 0)
		goto out;
	if (handoff_location(gw, user_id, user, session_id, upath, &loc, &err) < 0) {
		log_err("login hand-off for '%s' failed: %s", user, err->msg);
		err_free(&err);
	}
drop:
	free(path);
	path = loc;
out:
	free(upath);
	free(mine);
	return path;
}

void hub__page_login(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m)
{
	char *next = hub__query_get(req, "next");
	char *safe;

	if (req->who) {
		safe = login_next(gw, next, req->who->user_id, req->who->user,
				  req->who->via == AUTH_VIA_SESSION ? req->who->handle_id : 0);
		hub__send_redirect(c, safe ? safe : "/hub/home");
		free(safe);
	} else {
		login_form(gw, c, req, 200, next, NULL);
	}
	free(next);
}

struct login_job {
	struct gw *gw;
	struct gw_conn *c;
	char *next;
};

static void login_done(void *arg, struct auth_login_result *res, struct err *err)
{
	struct login_job *j = arg;
	const struct gw_request anon = { 0 };
	struct gw_response r;
	char *loc;

	if (!gw_conn_alive(j->c))
		goto out;
	if (err) {
		hub__send_page_error(j->c, err_http_status(err), "Sign-in failed, try again.");
		log_err("login failed: %s", err->msg);
	} else if (res->status != 200) {
		/* AUTH-4: one message for unknown user, wrong password, locked */
		login_form(j->gw, j->c, &anon, 403, j->next, "Invalid username or password.");
	} else {
		loc = login_next(j->gw, j->next, res->user_id, res->user, res->session_id);
		gw_response_init(&r, 302);
		gw_response_header(&r, "Set-Cookie", "%s", res->set_cookie);
		gw_response_redirect(&r, 302, loc ? loc : "/hub/home");
		gw_send(j->c, &r);
		free(loc);
	}
out:
	auth_login_result_free(res);
	err_free(&err);
	gw_conn_unref(j->c);
	free(j->next);
	free(j);
}

/* Answers a refused login attempt (400 / 429 / 503) with the form again. */
static void login_refused(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const char *next, struct err **err)
{
	int status = err_http_status(*err);
	struct gw_response r;
	char *msg;

	if (status == 429) {
		gw_response_init(&r, 429);
		gw_response_header(&r, "Retry-After", "%lld",
				   (long long)auth_retry_after(gw->auth));
		msg = xasprintf("<h1>Too many attempts</h1><p>Try again in %lld seconds.</p>",
				(long long)auth_retry_after(gw->auth));
		gw_response_html(&r, 429, msg);
		free(msg);
		gw_send(c, &r);
	} else if (status >= 500) {
		log_err("login failed: %s", (*err)->msg);
		hub__send_page_error(c, status, "Sign-in is unavailable, try again later.");
	} else {
		login_form(gw, c, req, status, next, (*err)->msg);
	}
	err_free(err);
}

void hub__page_login_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct err *err = NULL;
	struct login_job *j;
	char *name, *pw;

	if (auth_login_xsrf_check(gw->auth, gw->cfg, req->http, req->body, req->body_len,
				  &err) < 0) {
		hub__send_page_error(c, 403, err->msg);
		err_free(&err);
		return;
	}
	name = hub__form_get(req->body, req->body_len, "username");
	pw = hub__form_get(req->body, req->body_len, "password");
	j = xcalloc(1, sizeof(*j));
	j->gw = gw;
	j->next = hub__form_get(req->body, req->body_len, "next");
	if (!name || !pw) {
		login_form(gw, c, req, 400, j->next, "Username and password are required.");
	} else if (auth_login_start(gw->auth, gw->db, name, pw, strlen(pw), req->client_ip,
				    login_done, j, &err) < 0) {
		login_refused(gw, c, req, j->next, &err);
	} else {
		j->c = gw_conn_ref(c);
		j = NULL;
	}
	if (j) {
		free(j->next);
		free(j);
	}
	if (pw)
		explicit_bzero(pw, strlen(pw));
	free(pw);
	free(name);
}

/* ---- logout ---- */

void hub__page_logout(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m)
{
	struct page p = { .title = "Sign out" };
	char *xsrf;
	struct buf b;

	if (!req->who) {
		hub__send_redirect(c, "/hub/login");
		return;
	}
	/* a GET never changes state: the form POSTs with the CSRF token */
	xsrf = auth_csrf_token(gw->auth, req->who);
	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Sign out</h1><form method=\"post\" action=\"/hub/logout\">"
		    "<input type=\"hidden\" name=\"_xsrf\" value=\"");
	put_esc(&b, xsrf);
	buf_appends(&b, "\"><button type=\"submit\">Sign out</button></form>\n");
	page_send(gw, c, req, 200, &p, b.data);
	buf_release(&b);
	free(xsrf);
}

void hub__page_logout_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	struct err *err = NULL;
	char *clear = NULL, handle[40];
	struct gw_response r;
	int64_t *kids = NULL;
	size_t nkids = 0;

	if (req->who) {
		/* the host sessions minted from this one (subdomain mode) go
		 * with it by cascade; their ids are needed to close their
		 * connections, so they are read first */
		if ((req->who->via == AUTH_VIA_SESSION &&
		     users_session_children(gw->db, req->who->handle_id, &kids, &nkids, &err) < 0) ||
		    auth_logout(gw->auth, gw->db, req->who, &clear, &err) < 0) {
			hub__send_page_error(c, err_http_status(err), "Sign-out failed.");
			log_err("logout failed: %s", err->msg);
			err_free(&err);
			free(kids);
			return;
		}
	}
	for (size_t i = 0; i < nkids; i++) {
		snprintf(handle, sizeof(handle), "s:%lld", (long long)kids[i]);
		gw_close_sessions_of(gw, handle); /* JH-11 */
	}
	free(kids);
	/* this connection is among them: conn_auth.c lets a connection that
	 * awaits its hub answer send it (with Connection: close) first */
	if (req->who)
		gw_close_sessions_of(gw, req->who->handle); /* JH-11 */
	if (!clear)
		clear = auth_cookie_clear(gw->cfg);
	gw_response_init(&r, 302);
	gw_response_header(&r, "Set-Cookie", "%s", clear);
	gw_response_redirect(&r, 302, "/hub/login");
	gw_send(c, &r);
	free(clear);
}

/* ---- setup (first admin's one-time code) ---- */

static void setup_form(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       int status, const char *code, const char *error)
{
	char *set_cookie = NULL;
	char *xsrf = auth_login_xsrf_new(gw->auth, gw->cfg, &set_cookie);
	struct page p = { .title = "Set password", .set_cookie = set_cookie, .bare = true,
			  .no_store = true };
	struct buf b;

	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Set your password</h1>\n");
	if (error) {
		buf_appends(&b, "<p class=\"error\">");
		put_esc(&b, error);
		buf_appends(&b, "</p>\n");
	}
	buf_appends(&b, "<form method=\"post\" action=\"/hub/setup\">"
		    "<input type=\"hidden\" name=\"_xsrf\" value=\"");
	put_esc(&b, xsrf);
	buf_appends(&b, "\"><input type=\"hidden\" name=\"code\" value=\"");
	put_esc(&b, code ? code : "");
	buf_appends(&b, "\"><label>New password <input type=\"password\" name=\"password\" "
		    "autocomplete=\"new-password\" minlength=\"8\" required autofocus></label>"
		    "<button type=\"submit\">Set password and sign in</button></form>\n");
	page_send(gw, c, req, status, &p, b.data);
	buf_release(&b);
	free(xsrf);
	free(set_cookie);
}

void hub__page_setup(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m)
{
	char *code = hub__query_get(req, "code");

	if (!code || !*code)
		hub__send_page_error(c, 400, "This setup link has no code.");
	else
		setup_form(gw, c, req, 200, code, NULL);
	free(code);
}

struct setup_job {
	struct gw *gw;
	struct gw_conn *c;
	char *code;
	char *client_ip;
};

/* Runs after hashing: only now is the code consumed, so a bad password
 * does not burn the one-time link. */
static void setup_hashed(void *arg, char *hash, struct err *err)
{
	struct setup_job *j = arg;
	struct auth_login_result *res = NULL;
	struct gw_response r;
	int rc = -1;

	if (!gw_conn_alive(j->c))
		goto out;
	if (hash)
		rc = auth_login_setup_code(j->gw->auth, j->gw->db, j->code, j->client_ip, &res,
					   &err);
	if (rc > 0)
		rc = users_set_password(j->gw->db, res->user_id, hash, &err);
	if (rc > 0) {
		gw_response_init(&r, 302);
		gw_response_header(&r, "Set-Cookie", "%s", res->set_cookie);
		gw_response_redirect(&r, 302, "/hub/home");
		gw_send(j->c, &r);
	} else if (rc == 0) {
		hub__send_page_error(j->c, 403, "This setup link is invalid, used or expired.");
	} else {
		if (err && err_http_status(err) >= 500)
			log_err("setup failed: %s", err->msg);
		hub__send_page_error(j->c, err ? err_http_status(err) : 500,
				     err && err_http_status(err) < 500 ? err->msg : "Setup failed.");
	}
out:
	auth_login_result_free(res);
	err_free(&err);
	free(hash);
	gw_conn_unref(j->c);
	free(j->code);
	free(j->client_ip);
	free(j);
}

void hub__page_setup_post(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct err *err = NULL;
	struct setup_job *j;
	char *pw;

	if (auth_login_xsrf_check(gw->auth, gw->cfg, req->http, req->body, req->body_len,
				  &err) < 0) {
		hub__send_page_error(c, 403, err->msg);
		err_free(&err);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->gw = gw;
	j->code = hub__form_get(req->body, req->body_len, "code");
	j->client_ip = xstrdup(req->client_ip ? req->client_ip : "");
	pw = hub__form_get(req->body, req->body_len, "password");
	if (!j->code || !pw) {
		hub__send_page_error(c, 400, "The setup form is incomplete.");
	} else if (auth_hash_password(gw->auth, pw, strlen(pw), setup_hashed, j, &err) < 0) {
		setup_form(gw, c, req, err_http_status(err), j->code, err->msg);
		err_free(&err);
	} else {
		j->c = gw_conn_ref(c);
		j = NULL;
	}
	if (j) {
		free(j->code);
		free(j->client_ip);
		free(j);
	}
	if (pw)
		explicit_bzero(pw, strlen(pw));
	free(pw);
}

/* ---- home ---- */

/* Where "Open" goes: JupyterLab's UI is below lab/, VS Code's at the root. */
static char *open_url(const char *base, const struct spawner_server *srv)
{
	bool lab = srv && srv->server_type && !strcmp(srv->server_type, "jupyterlab");

	return xasprintf("%s%s", base, lab ? "lab" : "");
}

/* "2024-01-02T03:04:05.678Z (proxy)", or "" when never active. */
static void activity_text(struct buf *b, const struct spawner_server *srv)
{
	cJSON *t = hub__iso_time(srv ? srv->last_activity_ms : 0);

	if (cJSON_IsString(t)) {
		put_esc(b, t->valuestring);
		if (srv && srv->activity_source) {
			buf_appends(b, " (");
			put_esc(b, srv->activity_source);
			buf_appends(b, ")");
		}
	}
	cJSON_Delete(t);
}

/* "12.3 MiB" */
static void size_text(struct buf *b, int64_t n)
{
	if (n >= (1LL << 30))
		buf_appendf(b, "%.1f GiB", (double)n / (double)(1LL << 30));
	else if (n >= (1LL << 20))
		buf_appendf(b, "%.1f MiB", (double)n / (double)(1LL << 20));
	else
		buf_appendf(b, "%lld KiB", (long long)((n + 1023) / 1024));
}

/* A suspended server's checkpoints: mode, size, time, state (newest first). */
static void checkpoints_list(struct gw *gw, struct buf *b, const struct spawner_server *srv)
{
	struct spawner_checkpoint *v = NULL;
	struct err *err = NULL;
	int n = 0;
	cJSON *t;

	if (spawner_checkpoints_list(gw->spawner, srv, &v, &n, &err) < 0) {
		log_warn("cannot list checkpoints of '%s/%s': %s", srv->user, srv->name, err->msg);
		err_free(&err);
		return;
	}
	if (n > 0)
		buf_appends(b, "<ul class=\"checkpoints\">");
	for (int i = 0; i < n; i++) {
		t = hub__iso_time(v[i].created_ms);
		buf_appends(b, "<li>");
		put_esc(b, spawner_ckpt_mode_name(v[i].mode));
		buf_appends(b, ", ");
		size_text(b, v[i].size_bytes);
		buf_appends(b, ", ");
		put_esc(b, cJSON_IsString(t) ? t->valuestring : "");
		buf_appends(b, " (");
		put_esc(b, v[i].state ? v[i].state : "");
		buf_appends(b, ")</li>");
		cJSON_Delete(t);
	}
	if (n > 0)
		buf_appends(b, "</ul>");
	spawner_checkpoints_free(v, n);
}

/* The state cell: state, profile, last activity and its source, and for
 * a failed server why; a suspended server lists its checkpoints. */
static void state_cell(struct gw *gw, struct buf *b, const struct spawner_server *srv)
{
	buf_appends(b, "</td><td class=\"state\">");
	put_esc(b, srv ? spawner_state_name(srv->state) : "stopped");
	if (srv && srv->state == SPAWNER_SUSPENDED && gw && gw->spawner)
		checkpoints_list(gw, b, srv);
	buf_appends(b, "</td><td>");
	put_esc(b, srv && srv->profile ? srv->profile : "");
	buf_appends(b, "</td><td class=\"activity\">");
	activity_text(b, srv);
	buf_appends(b, "</td><td><progress max=\"100\" value=\"0\" hidden></progress> "
		    "<span class=\"msg\">");
	if (srv && srv->state == SPAWNER_FAILED && srv->message) {
		buf_appends(b, "Failed: ");
		put_esc(b, srv->message);
	}
	buf_appends(b, "</span></td><td>");
}

/* One server row with start/stop/open buttons (app.js drives them); a
 * suspended server gets a Resume button instead of Start. */
static void server_row(struct gw *gw, struct buf *b, const char *user, const char *name,
		       const struct spawner_server *srv)
{
	char *u = spawner_url_segment(user), *s = spawner_url_segment(name);
	char *base = spawner_base_url(user, name), *open = open_url(base, srv);
	char *api = *name ? xasprintf("/hub/api/users/%s/servers/%s", u, s) :
			    xasprintf("/hub/api/users/%s/server", u);

	buf_appends(b, "<tr><td>");
	put_esc(b, *name ? name : "(default)");
	state_cell(gw, b, srv);
	if (srv && (srv->state == SPAWNER_SUSPENDED || srv->state == SPAWNER_CHECKPOINTING))
		buf_appends(b, "<button data-action=\"resume\" data-api=\"");
	else
		buf_appends(b, "<button data-action=\"start\" data-api=\"");
	put_esc(b, api);
	buf_appends(b, "\" data-url=\"");
	put_esc(b, open);
	/* a restart keeps the profile it was started with */
	buf_appends(b, "\" data-options=\"");
	put_esc(b, srv && srv->user_options ? srv->user_options : "{}");
	buf_appends(b, srv && (srv->state == SPAWNER_SUSPENDED ||
			       srv->state == SPAWNER_CHECKPOINTING) ? "\">Resume</button> " :
		    "\">Start</button> ");
	buf_appends(b, "<button data-action=\"stop\" data-api=\"");
	put_esc(b, api);
	buf_appends(b, "\">Stop</button> <a href=\"");
	put_esc(b, open);
	buf_appends(b, "\">Open</a></td></tr>\n");
	free(u);
	free(s);
	free(base);
	free(open);
	free(api);
}

/* "2 CPUs, 4 GiB, 1 GPU (A100)" for the profile select. */
static void profile_option(struct buf *b, const struct spawner_profile *p)
{
	int64_t m = p->memory_bytes;

	buf_appends(b, "<option value=\"");
	put_esc(b, p->name);
	/* VS Code lives at the server's root, JupyterLab below lab/ */
	buf_appendf(b, "\" data-suffix=\"%s\">", strncmp(p->image, "vscode", 6) ? "lab" : "");
	put_esc(b, p->display_name);
	buf_appendf(b, " (%g CPU%s, ", (double)p->cpu_millis / 1000.0,
		    p->cpu_millis == 1000 ? "" : "s");
	if (m % (1LL << 30) == 0)
		buf_appendf(b, "%lld GiB", (long long)(m >> 30));
	else
		buf_appendf(b, "%lld MiB", (long long)(m >> 20));
	if (p->gpus) {
		buf_appendf(b, ", %d GPU%s", p->gpus, p->gpus == 1 ? "" : "s");
		if (p->gpu_model && *p->gpu_model) {
			buf_appends(b, " ");
			put_esc(b, p->gpu_model);
		}
	}
	buf_appends(b, ")</option>");
}

/* The spawn form: profile (sandboxed backends), optional server name. */
static void spawn_form(struct gw *gw, struct buf *b, const char *me)
{
	buf_appends(b, "<h2>Start a server</h2><form class=\"spawn\" data-user=\"");
	put_esc(b, me);
	buf_appends(b, "\">");
	if (gw->cfg->spawner != GW_SPAWNER_PROCESS) {
		buf_appends(b, "<label>Profile <select name=\"profile\">");
		for (int i = 0; i < gw->cfg->n_profiles; i++)
			profile_option(b, &gw->cfg->profiles[i]);
		buf_appends(b, "</select></label>");
	}
	buf_appends(b, "<label>Server name (optional; several servers each need a name) "
		    "<input name=\"server\" pattern=\"[a-z0-9._-]*\" maxlength=\"255\"></label>"
		    "<button type=\"submit\">Start</button> <progress max=\"100\" value=\"0\" "
		    "hidden></progress> <span class=\"msg\"></span></form>\n");
}

void hub__page_home(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const struct hub_match *m)
{
	const char *me = req->who->user;
	struct page p = { .title = "Home" };
	struct spawner_server *s;
	bool have_default = false;
	struct buf b;

	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>My servers</h1><table class=\"servers\"><thead><tr><th>Name</th>"
		    "<th>State</th><th>Profile</th><th>Last activity</th><th>Progress</th><th></th>"
		    "</tr></thead>"
		    "<tbody>\n");
	for (s = gw->spawner ? spawner_server_next(gw->spawner, NULL) : NULL; s;
	     s = spawner_server_next(gw->spawner, s)) {
		if (strcmp(s->user, me) != 0)
			continue;
		have_default |= s->name[0] == '\0';
		server_row(gw, &b, me, s->name, s);
	}
	if (!have_default)
		server_row(gw, &b, me, "", NULL);
	buf_appends(&b, "</tbody></table>\n");
	spawn_form(gw, &b, me);
	page_send(gw, c, req, 200, &p, b.data);
	buf_release(&b);
}

/* ---- token page ---- */

static void token_rows(struct gw *gw, const struct gw_request *req, struct buf *b)
{
	struct users_token **v = NULL;
	struct err *err = NULL;
	size_t n = 0, i;
	cJSON *t;
	char *u = spawner_url_segment(req->who->user);

	if (users_token_list(gw->db, req->who->user_id, &v, &n, &err) < 0) {
		log_err("cannot list tokens: %s", err->msg);
		err_free(&err);
	}
	for (i = 0; i < n; i++) {
		buf_appendf(b, "<tr><td>a%lld</td><td>", (long long)v[i]->id);
		put_esc(b, v[i]->note);
		buf_appends(b, "</td><td>");
		put_esc(b, v[i]->scopes);
		t = hub__iso_time(v[i]->expires_at);
		buf_appends(b, "</td><td>");
		put_esc(b, cJSON_IsString(t) ? t->valuestring : "never");
		cJSON_Delete(t);
		buf_appendf(b, "</td><td><button data-action=\"revoke\" "
			    "data-api=\"/hub/api/users/%s/tokens/a%lld\">Revoke</button></td></tr>\n",
			    u, (long long)v[i]->id);
	}
	users_token_freev(v, n);
	free(u);
}

void hub__page_token(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m)
{
	struct page p = { .title = "Tokens", .no_store = true };
	struct buf b;

	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>API tokens</h1><form class=\"token\" data-user=\"");
	put_esc(&b, req->who->user);
	buf_appends(&b, "\"><label>Note <input name=\"note\"></label>"
		    "<label>Expires in (seconds, empty = never) <input name=\"expires_in\" "
		    "type=\"number\" min=\"1\"></label>"
		    "<label>Scopes (space separated, empty = all mine) <input name=\"scopes\">"
		    "</label><button type=\"submit\">Request new token</button></form>\n"
		    "<p class=\"newtoken\" hidden>Copy this token now, it is shown once: "
		    "<code></code></p>\n<table><thead><tr><th>Id</th><th>Note</th><th>Scopes</th>"
		    "<th>Expires</th><th></th></tr></thead><tbody>\n");
	token_rows(gw, req, &b);
	buf_appends(&b, "</tbody></table>\n");
	page_send(gw, c, req, 200, &p, b.data);
	buf_release(&b);
}

/* ---- admin ---- */

static void admin_user_row(struct gw *gw, struct buf *b, const struct users_user *u)
{
	struct spawner_server *s;
	bool any = false;

	buf_appends(b, "<tr><td>");
	put_esc(b, u->name);
	buf_appendf(b, "</td><td>%s</td><td><table>", u->admin ? "admin" : "");
	for (s = gw->spawner ? spawner_server_next(gw->spawner, NULL) : NULL; s;
	     s = spawner_server_next(gw->spawner, s)) {
		if (strcmp(s->user, u->name) != 0)
			continue;
		server_row(gw, b, u->name, s->name, s);
		any = true;
	}
	if (!any)
		server_row(gw, b, u->name, "", NULL);
	buf_appends(b, "</table></td></tr>\n");
}

void hub__page_admin(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		     const struct hub_match *m)
{
	struct page p = { .title = "Admin" };
	struct users_user **v = NULL;
	struct err *err = NULL;
	size_t n = 0, i;
	struct buf b;

	if (users_list(gw->db, &v, &n, &err) < 0) {
		hub__send_page_error(c, 500, "Cannot list users.");
		log_err("cannot list users: %s", err->msg);
		err_free(&err);
		return;
	}
	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Users and servers</h1><table class=\"admin\"><thead><tr>"
		    "<th>User</th><th>Role</th><th>Servers</th></tr></thead><tbody>\n");
	for (i = 0; i < n; i++)
		if (scopes_allow(req->who->scopes, "read:users", v[i]->name, NULL, NULL) ||
		    scopes_allow_all(req->who->scopes, "admin:users"))
			admin_user_row(gw, &b, v[i]);
	buf_appends(&b, "</tbody></table>\n");
	users_user_freev(v, n);
	page_send(gw, c, req, 200, &p, b.data);
	buf_release(&b);
}

/* ---- "server not running" (gw.h) ---- */

static bool wants_html(const struct gw_request *req)
{
	const struct http_header *h = http_req_header(req->http, "Accept", NULL);

	return h && memmem(h->value, h->value_len, "text/html", 9) != NULL;
}

/* ---- "Resuming your server" (the hold logic is in hold.c) ---- */

/*
 * 200 "Resuming your server": progress from the server's progress stream
 * (app.js), then the original URL again; says so when the restore failed
 * and a fresh server starts instead (the stream's message). no-store: the
 * page must never stand in for the server's own page in a cache.
 */
void hub__page_resuming(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct spawner_server *srv)
{
	struct page p = { .title = "Resuming your server", .no_store = true };
	char *u = spawner_url_segment(srv->user), *s = spawner_url_segment(srv->name);
	char *progress = *srv->name ?
		xasprintf("/hub/api/users/%s/servers/%s/progress", u, s) :
		xasprintf("/hub/api/users/%s/server/progress", u);
	const struct http_req *h = req->http;
	char *back = xasprintf("%s%s%s", h->path.encoded, h->query ? "?" : "",
			       h->query ? h->query : "");
	struct buf b;

	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Resuming your server</h1><div class=\"resuming\" data-progress=\"");
	put_esc(&b, progress);
	buf_appends(&b, "\" data-url=\"");
	put_esc(&b, back);
	buf_appends(&b, "\"><p>The server ");
	put_esc(&b, *srv->name ? srv->name : "(default)");
	buf_appends(&b, " was put away to free the machine (now: ");
	put_esc(&b, spawner_state_name(srv->state));
	buf_appends(&b, "). It is being brought back with its kernels; this page continues "
		    "to it when it is ready.</p><progress max=\"100\" value=\"0\"></progress> "
		    "<span class=\"msg\"></span><p class=\"note\" hidden></p></div>\n");
	page_send(gw, c, req, 200, &p, b.data);
	buf_release(&b);
	free(u);
	free(s);
	free(progress);
	free(back);
}

void gw_hub_not_running(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const char *user, const char *server)
{
	struct page p = { .title = "Server not running" };
	struct buf b;

	if (!wants_html(req)) {
		hub__send_error(c, 503, "server %s%s%s is not running", user,
				server && *server ? "/" : "", server ? server : "");
		return;
	}
	buf_init(&b, PAGE_MAX);
	buf_appends(&b, "<h1>Server not running</h1><p>The server ");
	put_esc(&b, user);
	if (server && *server) {
		buf_appends(&b, "/");
		put_esc(&b, server);
	}
	buf_appends(&b, " is not running.</p>\n");
	if (req->who && strcmp(req->who->user, user) == 0) {
		buf_appends(&b, "<table class=\"servers\"><tbody>");
		server_row(gw, &b, user, server ? server : "",
			   gw->spawner ? spawner_server_find(gw->spawner, user, server) : NULL);
		buf_appends(&b, "</tbody></table>\n");
	}
	page_send(gw, c, req, 503, &p, b.data);
	buf_release(&b);
}

/* ---- static files, health, metrics ---- */

/* Same-origin assets (no CDN, no inline script: CSP default-src 'self'). */
static const char static_app_js[] =
	"/* nbgate hub pages: start/stop/resume/revoke buttons, the spawn progress stream\n"
	" * and the \"Resuming your server\" page. */\n"
	"\"use strict\";\n"
	"(function () {\n"
	"  var meta = document.querySelector('meta[name=\"nbgate-xsrf\"]');\n"
	"  var xsrf = meta ? meta.content : \"\";\n"
	"  function call(method, url, body) {\n"
	"    return fetch(url, { method: method, credentials: \"same-origin\",\n"
	"      headers: { \"X-XSRFToken\": xsrf, \"Content-Type\": \"application/json\" },\n"
	"      body: body === undefined ? undefined : JSON.stringify(body) });\n"
	"  }\n"
	"  function row(el) { return el.closest(\"tr\") || el.closest(\"form\") || document.body; }\n"
	"  function say(r, text) { var m = r.querySelector(\".msg\"); if (m) m.textContent = text; }\n"
	"  function watch(btn) {\n"
	"    var r = row(btn), bar = r.querySelector(\"progress\");\n"
	"    var es = new EventSource(btn.dataset.api + \"/progress\");\n"
	"    if (bar) bar.hidden = false;\n"
	"    es.onmessage = function (ev) {\n"
	"      var e = JSON.parse(ev.data);\n"
	"      if (bar && typeof e.progress === \"number\") bar.value = e.progress;\n"
	"      say(r, e.message || \"\");\n"
	"      if (e.ready) { es.close(); window.location.href = e.url || btn.dataset.url; }\n"
	"      if (e.failed) { es.close(); say(r, \"Failed: \" + (e.message || \"\")); }\n"
	"    };\n"
	"    es.onerror = function () { es.close(); };\n"
	"  }\n"
	"  function start(btn) {\n"
	"    var opts = {};\n"
	"    try { opts = JSON.parse(btn.dataset.options || \"{}\"); } catch (e) { opts = {}; }\n"
	"    call(\"POST\", btn.dataset.api, opts).then(function (res) {\n"
	"      if (res.status === 201 || res.status === 202) { watch(btn); return; }\n"
	"      return res.json().then(function (j) {\n"
	"        if (/already running/.test(j.message || \"\")) window.location.href = btn.dataset.url;\n"
	"        else say(row(btn), j.message || (\"error \" + res.status));\n"
	"      });\n"
	"    });\n"
	"  }\n"
	"  function stop(btn) {\n"
	"    call(\"DELETE\", btn.dataset.api).then(function (res) {\n"
	"      var s = row(btn).querySelector(\".state\");\n"
	"      if (s) s.textContent = res.ok ? \"stopping\" : \"error \" + res.status;\n"
	"    });\n"
	"  }\n"
	"  function resume(btn) {\n"
	"    call(\"POST\", btn.dataset.api + \"/resume\").then(function (res) {\n"
	"      if (res.status === 200) { window.location.href = btn.dataset.url; return; }\n"
	"      if (res.status === 202) { watch(btn); return; }\n"
	"      return res.json().then(function (j) { say(row(btn), j.message || (\"error \" + res.status)); });\n"
	"    });\n"
	"  }\n"
	"  function resuming(el) {\n"
	"    var bar = el.querySelector(\"progress\"), note = el.querySelector(\".note\");\n"
	"    var es = new EventSource(el.dataset.progress), done = false;\n"
	"    es.onmessage = function (ev) {\n"
	"      var e = JSON.parse(ev.data), m = e.message || \"\";\n"
	"      if (typeof e.progress === \"number\") bar.value = e.progress;\n"
	"      say(el, m);\n"
	"      if (/restore failed/.test(m)) { note.hidden = false; note.textContent = m; }\n"
	"      if (e.ready) { done = true; es.close(); window.location.replace(el.dataset.url); }\n"
	"      if (e.failed) { done = true; es.close(); say(el, \"Failed: \" + m); }\n"
	"    };\n"
	"    es.onerror = function () {\n"
	"      es.close();\n"
	"      if (!done) setTimeout(function () { window.location.reload(); }, 3000);\n"
	"    };\n"
	"  }\n"
	"  var rz = document.querySelector(\".resuming\");\n"
	"  if (rz) resuming(rz);\n"
	"  function revoke(btn) {\n"
	"    call(\"DELETE\", btn.dataset.api).then(function (res) {\n"
	"      if (res.ok) row(btn).remove();\n"
	"    });\n"
	"  }\n"
	"  var actions = { start: start, stop: stop, resume: resume, revoke: revoke };\n"
	"  document.addEventListener(\"click\", function (ev) {\n"
	"    var btn = ev.target.closest(\"button[data-action]\");\n"
	"    if (btn && actions[btn.dataset.action]) { ev.preventDefault(); actions[btn.dataset.action](btn); }\n"
	"  });\n"
	"  document.addEventListener(\"submit\", function (ev) {\n"
	"    var f = ev.target, u = encodeURIComponent(f.dataset.user || \"\");\n"
	"    if (f.classList.contains(\"spawn\")) {\n"
	"      ev.preventDefault();\n"
	"      var name = f.server.value.trim(), b = document.createElement(\"button\");\n"
	"      var sel = f.profile, opt = sel ? sel.options[sel.selectedIndex] : null;\n"
	"      b.dataset.api = \"/hub/api/users/\" + u + (name ? \"/servers/\" + encodeURIComponent(name) : \"/server\");\n"
	"      b.dataset.url = \"/user/\" + u + \"/\" + (name ? encodeURIComponent(name) + \"/\" : \"\") + (opt ? opt.dataset.suffix : \"\");\n"
	"      b.dataset.options = JSON.stringify(sel ? { profile: sel.value } : {});\n"
	"      f.appendChild(b); b.hidden = true; start(b);\n"
	"    } else if (f.classList.contains(\"token\")) {\n"
	"      ev.preventDefault();\n"
	"      var body = { note: f.note.value };\n"
	"      if (f.expires_in.value) body.expires_in = parseInt(f.expires_in.value, 10);\n"
	"      if (f.scopes.value.trim()) body.scopes = f.scopes.value.trim().split(/\\s+/);\n"
	"      call(\"POST\", \"/hub/api/users/\" + u + \"/tokens\", body).then(function (res) {\n"
	"        return res.json().then(function (j) {\n"
	"          var p = document.querySelector(\".newtoken\");\n"
	"          p.hidden = false;\n"
	"          p.querySelector(\"code\").textContent = j.token || j.message;\n"
	"        });\n"
	"      });\n"
	"    }\n"
	"  });\n"
	"})();\n";

static const char static_style_css[] =
	"body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\n"
	"nav{background:#234;padding:.6em 1em}nav a,nav .who{color:#fff;margin-right:1em}\n"
	"main{max-width:60em;margin:1.5em auto;padding:0 1em}\n"
	"form label{display:block;margin:.5em 0}input{padding:.3em;margin-left:.3em}\n"
	"button{padding:.3em .8em;cursor:pointer}table{border-collapse:collapse;width:100%}\n"
	"td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}\n"
	".checkpoints{margin:.2em 0;padding-left:1.2em;font-size:.85em;color:#555}\n"
	".resuming .note{color:#a60}\n"
	".error{color:#a00}.newtoken code{background:#eee;padding:.2em;word-break:break-all}\n";

static const struct {
	const char *name;
	const char *type;
	const char *body;
} static_files[] = {
	{ "app.js", "application/javascript; charset=utf-8", static_app_js },
	{ "style.css", "text/css; charset=utf-8", static_style_css },
};

void hub__page_static(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m)
{
	struct gw_response r;
	size_t i;

	for (i = 0; i < sizeof(static_files) / sizeof(static_files[0]); i++) {
		if (strcmp(static_files[i].name, m->arg[0]) != 0)
			continue;
		gw_response_init(&r, 200);
		gw_response_header(&r, "Content-Type", "%s", static_files[i].type);
		gw_response_header(&r, "Cache-Control", "no-cache");
		buf_appends(&r.body, static_files[i].body);
		gw_send(c, &r);
		return;
	}
	hub__send_page_error(c, 404, "No such file.");
}

void hub__page_health(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const struct hub_match *m)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddStringToObject(j, "status", gw->stopping ? "stopping" : "ok");
	cJSON_AddNumberToObject(j, "uptime_s",
				gw->started_ms ? (double)(time_now_ms() - gw->started_ms) / 1000 : 0);
	hub__send_json(c, gw->stopping ? 503 : 200, j);
}

static bool is_loopback(const char *ip)
{
	return ip && (strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
		      strncmp(ip, "::ffff:127.", 11) == 0);
}

/*
 * Prometheus scrapers usually run on the host: loopback needs no
 * credentials; anyone else needs a token (or session) holding read:metrics
 * (admins have it). Documented in docs/api/openapi.yaml.
 */
void hub__page_metrics(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       const struct hub_match *m)
{
	struct gw_response r;

	if (!is_loopback(req->client_ip) &&
	    !(req->who && scopes_allow_all(req->who->scopes, "read:metrics"))) {
		hub__send_error(c, 403, "metrics require the read:metrics scope");
		return;
	}
	gw_response_init(&r, 200);
	gw_response_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	gw_metrics_render(gw->metrics, gw, &r.body);
	gw_send(c, &r);
}
