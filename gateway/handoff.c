/*
 * handoff: subdomain-mode login hand-off (see handoff.h): next-URL checks
 * for user hosts, code minting, and the /hub/oauth_callback handler on a
 * user's host.
 */
#define LOG_PREFIX "gateway/handoff: "

#include "gateway/handoff.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/users.h"

/* Splits public_url into lower-case scheme and port suffix (":8080" or ""). */
static bool handoff_public_parts(const struct gw_cfg *cfg, char **scheme, char **port)
{
	const char *pub = cfg->public_url ? cfg->public_url : "";
	const char *sep = strstr(pub, "://"), *a, *colon = NULL;
	size_t alen;

	if (!sep || sep == pub)
		return false;
	a = sep + 3;
	alen = strcspn(a, "/?#");
	for (size_t i = alen; i > 0 && a[i - 1] != ']'; i--)
		if (a[i - 1] == ':') {
			colon = a + i - 1;
			break;
		}
	*scheme = xstrndup(pub, (size_t)(sep - pub));
	for (char *p = *scheme; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	*port = colon ? xstrndup(colon, (size_t)(a + alen - colon)) : xstrdup("");
	return true;
}

char *handoff_user_origin(const struct gw_cfg *cfg, const char *user)
{
	char *scheme = NULL, *port = NULL, *o;

	if (cfg->url_mode != GW_URL_SUBDOMAIN || !cfg->domain || !*cfg->domain || !user ||
	    !*user || !handoff_public_parts(cfg, &scheme, &port))
		return NULL;
	o = xasprintf("%s://%s.%s%s", scheme, user, cfg->domain, port);
	for (char *p = o; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	free(scheme);
	free(port);
	return o;
}

char *handoff_host_user(const struct gw_cfg *cfg, const char *host)
{
	size_t hl, dl;
	char *u;

	if (!auth_host_is_user(cfg, host))
		return NULL;
	hl = strlen(host);
	dl = strlen(cfg->domain);
	u = xstrndup(host, hl - dl - 1);
	if (!*u || strchr(u, '.')) {
		free(u);
		return NULL;
	}
	return u;
}

/* No backslashes, control bytes or DEL anywhere (JupyterHub's rule). */
static bool handoff_clean(const char *s)
{
	for (; *s; s++)
		if (*s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

char *handoff_user_path(const char *user, const char *path)
{
	char *prefix = xasprintf("/user/%s/", user);
	size_t plen = strlen(prefix);

	if (!path || !handoff_clean(path) || path[0] != '/')
		return prefix;
	while (path[1] == '/')
		path++; /* "//evil" is another host (CVE-2026-33709) */
	if (strncmp(path, prefix, plen) != 0)
		return prefix; /* also "/user/<u>" without its slash */
	free(prefix);
	return xstrndup(path, strcspn(path, "#"));
}

char *handoff_next_path(const struct gw_cfg *cfg, const char *next, const char *user)
{
	char *origin = handoff_user_origin(cfg, user);
	const char *rest;
	size_t olen;
	char *out = NULL;

	if (!origin || !next || !handoff_clean(next))
		goto out;
	olen = strlen(origin);
	if (strncasecmp(next, origin, olen) != 0)
		goto out;
	rest = next + olen;
	if (*rest && *rest != '/' && *rest != '?' && *rest != '#')
		goto out; /* "http://alice.<domain>.evil" or another port */
	out = handoff_user_path(user, *rest == '/' ? rest : NULL);
out:
	free(origin);
	return out;
}

/* Percent-encodes everything but unreserved characters (so '/' too). */
static char *handoff_qs_encode(const char *s)
{
	struct buf b;

	buf_init(&b, 65536);
	for (; *s; s++) {
		if (isalnum((unsigned char)*s) || strchr("-._~", *s))
			buf_append(&b, s, 1);
		else
			buf_appendf(&b, "%%%02X", (unsigned char)*s);
	}
	return buf_detach(&b, NULL);
}

int handoff_location(struct gw *gw, int64_t user_id, const char *user, int64_t session_id,
		     const char *path, char **loc, struct err **err)
{
	char *origin = handoff_user_origin(gw->cfg, user), *host, *code = NULL, *enc;

	if (!origin || session_id <= 0) {
		free(origin);
		return err_set(err, EINVAL, "no hand-off for '%s' (subdomain mode, hub session)",
			       user ? user : "");
	}
	host = xasprintf("%s.%s", user, gw->cfg->domain);
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (users_auth_code_create(gw->db, user_id, USERS_AUTH_CODE_HANDOFF, session_id, host,
				   time_now_ms(), &code, err) < 0) {
		free(origin);
		free(host);
		return -EIO;
	}
	enc = handoff_qs_encode(path);
	*loc = xasprintf("%s/hub/oauth_callback?code=%s&next=%s", origin, code, enc);
	sodium_memzero(code, strlen(code));
	free(code);
	free(enc);
	free(origin);
	free(host);
	return 0;
}

/* ---- the callback on a user's host ---- */

/* Redeems code for host_user on req's host: 1 with *sid (caller frees),
 * 0 refused (the reason is logged), < 0 error. */
static int handoff_redeem(struct gw *gw, const struct gw_request *req, const char *host_user,
			  const char *code, char **sid, struct err **err)
{
	const struct gw_cfg *cfg = gw->cfg;
	struct users_user *u = NULL;
	int64_t uid = 0, parent = 0, now = time_now_ms();
	int r;

	r = users_auth_code_consume(gw->db, code, USERS_AUTH_CODE_HANDOFF, req->host, now, &uid,
				    &parent, err);
	if (r <= 0)
		return r;
	r = users_get_by_id(gw->db, uid, &u, err);
	if (r <= 0)
		return r;
	/* the code names its host; this is defence in depth */
	if (u->locked || strcmp(u->name, host_user) != 0 || parent <= 0) {
		log_warn("hand-off code of '%s' refused on the host of '%s'", u->name, host_user);
		users_user_free(u);
		return 0;
	}
	users_user_free(u);
	return users_session_create_child(gw->db, parent, req->host, req->client_ip, now,
					  cfg->session_idle_timeout, cfg->session_absolute_timeout,
					  sid, NULL, err);
}

static void handoff_callback(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			     const char *host_user)
{
	char *code = hub__query_get(req, "code"), *next = hub__query_get(req, "next");
	char *sid = NULL, *path, *origin, *loc, *cookie;
	struct err *err = NULL;
	struct gw_response r;
	int rc = handoff_redeem(gw, req, host_user, code, &sid, &err);

	if (code)
		sodium_memzero(code, strlen(code));
	if (rc < 0) {
		log_err("hand-off failed: %s", err->msg);
		err_free(&err);
		hub__send_page_error(c, 500, "Sign-in failed, try again.");
	} else if (rc == 0) {
		hub__send_page_error(c, 403, "This sign-in link is invalid, used or expired. "
				     "Sign in again from the hub.");
	} else {
		path = handoff_user_path(host_user, next);
		origin = handoff_user_origin(gw->cfg, host_user);
		loc = xasprintf("%s%s", origin ? origin : "", path);
		cookie = auth_cookie_set(gw->cfg, sid);
		gw_response_init(&r, 302);
		gw_response_header(&r, "Set-Cookie", "%s", cookie);
		gw_response_header(&r, "Cache-Control", "no-store");
		gw_response_redirect(&r, 302, loc);
		gw_send(c, &r);
		sodium_memzero(cookie, strlen(cookie));
		sodium_memzero(sid, strlen(sid));
		free(cookie);
		free(loc);
		free(origin);
		free(path);
	}
	free(sid);
	free(code);
	free(next);
}

/*
 * Everything the hub serves on a user's host: only
 * GET /hub/oauth_callback; anything else there is 404 (the hub's pages,
 * API and cookies live on the hub host only).
 */
void gw_hub_user_host(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const char *host_user)
{
	const struct http_path *p = &req->http->path;

	if (!host_user || p->nseg != 2 || strcmp(p->seg[0], "hub") != 0 ||
	    strcmp(p->seg[1], "oauth_callback") != 0) {
		hub__send_page_error(c, 404, "Page not found.");
		return;
	}
	if (req->http->method != HTTP_GET) {
		struct gw_response r;

		gw_response_init(&r, 405);
		gw_response_header(&r, "Allow", "GET");
		gw_response_html(&r, 405, "<!DOCTYPE html><title>405</title><p>Method not allowed.</p>");
		gw_send(c, &r);
		return;
	}
	handoff_callback(gw, c, req, host_user);
}
