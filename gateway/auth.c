/*
 * auth: request identification (token or session cookie), password login
 * and logout, cookies. CSRF checks live at the end of this file.
 */
#define LOG_PREFIX "gateway/auth: "

#include "gateway/auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/passwd.h"
#include "gateway/scopes.h"
#include "gateway/throttle.h"

#define AUTH_HEADER_MAX 512
#define AUTH_BAD_TOKEN "invalid or expired credentials"
#define AUTH_BAD_LOGIN "invalid username or password"

struct auth {
	const struct gw_cfg *cfg;
	struct users_key key;
	struct throttle *thr;
	struct passwd_queue *pq;
	int64_t retry_after;
	bool closing;
};

struct auth *auth_new(const struct gw_cfg *cfg, struct err **err)
{
	struct auth *a = xcalloc(1, sizeof(*a));
	struct throttle_cfg tc = {
		.max_failures = cfg->login_max_failures,
		.backoff_base = cfg->login_backoff_base,
		.backoff_max = cfg->login_backoff_max,
		.guess_limit = cfg->token_guess_limit,
		.guess_window = cfg->token_guess_window,
	};

	if (users_key_load(cfg->state_dir, &a->key, err) < 0) {
		free(a);
		return NULL;
	}
	a->cfg = cfg;
	a->thr = throttle_new(&tc);
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	a->closing = true; /* login callbacks run by passwd_queue_free only clean up */
	passwd_queue_free(a->pq);
	throttle_free(a->thr);
	sodium_memzero(&a->key, sizeof(a->key));
	free(a);
}

void auth_attach_work(struct auth *a, struct work_pool *work)
{
	int64_t n = a->cfg->hash_concurrency;

	if (!a->pq)
		a->pq = passwd_queue_new(work, n > 0 ? (unsigned)n : 1);
}

const struct users_key *auth_key(const struct auth *a)
{
	return &a->key;
}

int64_t auth_retry_after(const struct auth *a)
{
	return a->retry_after;
}

void auth_ident_free(struct auth_ident *id)
{
	if (!id)
		return;
	free(id->user);
	xstrv_free(id->groups);
	scopes_free(id->scopes);
	free(id->server_name);
	free(id);
}

/* ---- parsing (pure) ---- */

static bool auth_token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

long auth_parse_authorization(const char *v, size_t len, size_t *tlen)
{
	size_t skip;

	if (!v || len > AUTH_HEADER_MAX)
		return -1;
	if (len > 6 && !strncasecmp(v, "token ", 6))
		skip = 6;
	else if (len > 7 && !strncasecmp(v, "bearer ", 7))
		skip = 7;
	else
		return -1;
	for (size_t i = skip; i < len; i++)
		if (!auth_token_char((unsigned char)v[i]))
			return -1; /* a second space, "token: X", trailing garbage */
	*tlen = len - skip;
	return (long)skip;
}

static bool auth_cookie_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Value of one "name=value" pair h[i..end) if its name is name, else NULL. */
static const char *auth_cookie_pair(const char *h, size_t i, size_t end, const char *name,
				    size_t *vlen)
{
	size_t nlen = strlen(name), eq, ve;

	while (i < end && auth_cookie_ws(h[i]))
		i++;
	eq = i;
	while (eq < end && h[eq] != '=')
		eq++;
	if (eq == end || eq - i != nlen || memcmp(h + i, name, nlen) != 0)
		return NULL;
	i = eq + 1;
	ve = end;
	while (ve > i && auth_cookie_ws(h[ve - 1]))
		ve--;
	if (ve - i >= 2 && h[i] == '"' && h[ve - 1] == '"') {
		i++;
		ve--;
	}
	*vlen = ve - i;
	return h + i;
}

bool auth_cookie_each(const char *header, size_t len, const char *name,
		      bool (*fn)(void *ctx, const char *v, size_t vlen), void *ctx)
{
	size_t i = 0;

	while (i < len) {
		size_t end = i, vlen = 0;
		const char *v;

		while (end < len && header[end] != ';')
			end++;
		v = auth_cookie_pair(header, i, end, name, &vlen);
		if (v && fn(ctx, v, vlen))
			return true;
		i = end + 1;
	}
	return false;
}

/* Calls auth_cookie_each on every Cookie header of req. */
static bool auth_req_cookies(const struct http_req *req, const char *name,
			     bool (*fn)(void *ctx, const char *v, size_t vlen), void *ctx)
{
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_header *h = &req->hdr[i];

		if (h->name_len == 6 && !strncasecmp(h->name, "cookie", 6) &&
		    auth_cookie_each(h->value, h->value_len, name, fn, ctx))
			return true;
	}
	return false;
}

/* ---- identities ---- */

int auth_user_scopes(const struct users_user *u, struct scope_set **out, struct err **err)
{
	return scopes_for_user(u->name, u->admin, u->scopes, out, err);
}

/* Effective scopes for u, through token t (NULL = session). */
static int auth_effective_scopes(const struct users_user *u, const struct users_token *t,
				 struct scope_set **out, struct err **err)
{
	struct scope_set *owner = NULL, *tok = NULL;
	struct scope_owner o = { .user = u->name };

	if (auth_user_scopes(u, &owner, err) < 0)
		return -EINVAL;
	if (!t) {
		*out = owner;
		return 0;
	}
	o.server = t->kind == USERS_TOKEN_SERVER ? t->server_name : NULL;
	o.inherit = owner;
	if (scopes_expand(t->scopes, &o, &tok, err) < 0) {
		scopes_free(owner);
		return err_wrap(err, "scopes of token %lld", (long long)t->id);
	}
	*out = scopes_intersect(tok, owner);
	scopes_free(tok);
	scopes_free(owner);
	return 0;
}

static int auth_ident_build(struct db *db, const struct users_user *u,
			    const struct users_token *t, struct auth_ident **out,
			    struct err **err)
{
	struct auth_ident *id = xcalloc(1, sizeof(*id));

	id->user_id = u->id;
	id->user = xstrdup(u->name);
	id->admin = u->admin;
	if (users_groups_of(db, u->id, &id->groups, err) < 0 ||
	    auth_effective_scopes(u, t, &id->scopes, err) < 0) {
		auth_ident_free(id);
		return err_set_http(err, 500, EIO, "identify user '%s'", u->name);
	}
	if (t) {
		id->via = AUTH_VIA_TOKEN;
		id->handle_id = t->id;
		snprintf(id->handle, sizeof(id->handle), "t:%lld", (long long)t->id);
		if (t->kind == USERS_TOKEN_SERVER)
			id->server_name = xstrdup(t->server_name ? t->server_name : "");
		id->expires_at = t->expires_at;
	}
	*out = id;
	return 0;
}

int auth_ident_for_user(struct db *db, int64_t user_id, struct auth_ident **out,
			struct err **err)
{
	struct users_user *u = NULL;
	int r = users_get_by_id(db, user_id, &u, err);

	if (r <= 0)
		return r;
	r = auth_ident_build(db, u, NULL, out, err);
	users_user_free(u);
	return r < 0 ? r : 1;
}

static int auth_token_fail(struct auth *a, const char *ip, struct err **err)
{
	throttle_guess_fail(a->thr, ip, time_mono_ms());
	return err_set_http(err, 403, EACCES, AUTH_BAD_TOKEN);
}

/* Resolves a token to its owner; 1 found, 0 bad, < 0 error. */
static int auth_token_owner(struct auth *a, struct db *db, const char *tok,
			    struct users_token **t, struct users_user **u, struct err **err)
{
	int r = users_token_lookup(db, &a->key, tok, time_now_ms(), t, err);

	if (r <= 0)
		return r;
	r = users_get_by_id(db, (*t)->user_id, u, err);
	if (r > 0 && (*u)->locked) {
		users_user_free(*u);
		*u = NULL;
		r = 0;
	}
	if (r <= 0) {
		users_token_free(*t);
		*t = NULL;
	}
	return r;
}

static int auth_by_token(struct auth *a, struct db *db, const struct http_header *h,
			 const char *ip, struct auth_ident **out, struct err **err)
{
	int64_t wait = throttle_guess_check(a->thr, ip, time_mono_ms());
	struct users_token *t = NULL;
	struct users_user *u = NULL;
	cleanup_free char *tok = NULL;
	size_t tlen;
	long off;
	int r;

	if (wait > 0) {
		a->retry_after = wait;
		return err_set_http(err, 429, EAGAIN, "too many invalid tokens, retry in %lld s",
				    (long long)wait);
	}
	off = auth_parse_authorization(h->value, h->value_len, &tlen);
	if (off < 0)
		return auth_token_fail(a, ip, err);
	tok = xstrndup(h->value + off, tlen);
	r = auth_token_owner(a, db, tok, &t, &u, err);
	sodium_memzero(tok, tlen);
	if (r < 0)
		return err_set_http(err, 500, EIO, "look up token");
	if (r == 0)
		return auth_token_fail(a, ip, err);
	users_token_touch(db, t->id, time_now_ms(), NULL);
	r = auth_ident_build(db, u, t, out, err);
	users_token_free(t);
	users_user_free(u);
	return r < 0 ? r : 1;
}

struct auth_cookie_ctx {
	struct db *db;
	const struct gw_cfg *cfg;
	const char *host;   /* the request's host, lower case, no port */
	int64_t now;
	struct users_session s;
	struct users_user *u;
	struct err *err;
};

/* The request's Host, lower-cased, without port, into out ("" if none). */
static void auth_req_host(const struct http_req *req, char *out, size_t n)
{
	size_t len = req->host ? req->host_len : 0, i;
	const char *colon;

	if (len >= n)
		len = 0; /* longer than any host we serve: matches nothing */
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)req->host[i]);
	out[len] = '\0';
	colon = strrchr(out, ':');
	if (colon && !strchr(colon, ']'))
		out[colon - out] = '\0';
}

/* The host of the public URL (lower case, no port) into out. */
static void auth_public_host(const struct gw_cfg *cfg, char *out, size_t n)
{
	const char *pub = cfg->public_url ? cfg->public_url : "";
	const char *a = strstr(pub, "://");
	size_t len, i;
	const char *colon;

	a = a ? a + 3 : pub;
	len = strcspn(a, "/?#");
	if (len >= n)
		len = n - 1;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)a[i]);
	out[len] = '\0';
	colon = strrchr(out, ':');
	if (colon && !strchr(colon, ']'))
		out[colon - out] = '\0';
}

bool auth_host_is_user(const struct gw_cfg *cfg, const char *host)
{
	char pub[USERS_HOST_MAX + 1];
	size_t hl = host ? strlen(host) : 0, dl;

	if (cfg->url_mode != GW_URL_SUBDOMAIN || !cfg->domain || !*cfg->domain)
		return false;
	dl = strlen(cfg->domain);
	if (hl <= dl + 1 || host[hl - dl - 1] != '.' ||
	    strcasecmp(host + hl - dl, cfg->domain) != 0)
		return false;
	auth_public_host(cfg, pub, sizeof(pub));
	return strcasecmp(host, pub) != 0;
}

/*
 * Where a session may authenticate (subdomain mode, JH-3, JH-4, JH-15):
 * a host session only on the one user host it was minted for; a hub
 * session never on a user host (the browser never sends it there, so one
 * that arrives was planted, e.g. tossed for the parent domain).
 */
static bool auth_session_host_ok(const struct auth_cookie_ctx *c)
{
	if (c->s.parent_id)
		return c->s.host[0] && strcasecmp(c->s.host, c->host) == 0;
	return !auth_host_is_user(c->cfg, c->host);
}

/* Tries one session cookie value; true = found a valid session. */
static bool auth_cookie_try(void *vctx, const char *v, size_t vlen)
{
	struct auth_cookie_ctx *c = vctx;
	cleanup_free char *sid = NULL;
	int r;

	if (vlen != USERS_SESSION_ID_LEN || c->err)
		return false;
	sid = xstrndup(v, vlen);
	r = users_session_lookup(c->db, sid, c->now, c->cfg->session_idle_timeout,
				 c->cfg->session_absolute_timeout, &c->s, &c->err);
	if (r <= 0 || !auth_session_host_ok(c))
		return false;
	r = users_get_by_id(c->db, c->s.user_id, &c->u, &c->err);
	if (r > 0 && c->u->locked) {
		users_user_free(c->u);
		c->u = NULL;
		return false;
	}
	return r > 0;
}

static bool auth_cookie_count(void *vctx, const char *v, size_t vlen)
{
	(*(size_t *)vctx)++;
	return false;
}

static int auth_by_cookie(struct db *db, const struct gw_cfg *cfg, const struct http_req *req,
			  struct auth_ident **out, struct err **err)
{
	struct auth_cookie_ctx c = { .db = db, .cfg = cfg, .now = time_now_ms() };
	char host[USERS_HOST_MAX + 1];
	size_t n = 0;
	int r;

	auth_req_host(req, host, sizeof(host));
	c.host = host;
	/*
	 * Cookie tossing (JH-15): a sibling host can plant its own valid
	 * session cookie for the parent domain, listed before ours. Which of
	 * two valid sessions is the victim's cannot be told, so a request
	 * carrying more than one session cookie is not authenticated at all.
	 */
	auth_req_cookies(req, auth_cookie_name(cfg), auth_cookie_count, &n);
	if (n > 1)
		return 0;
	if (!auth_req_cookies(req, auth_cookie_name(cfg), auth_cookie_try, &c)) {
		if (!c.err)
			return 0;
		*err = c.err;
		return err_set_http(err, 500, EIO, "look up session");
	}
	users_session_touch(db, c.s.id, c.now, NULL);
	r = auth_ident_build(db, c.u, NULL, out, err);
	users_user_free(c.u);
	if (r < 0)
		return r;
	(*out)->via = AUTH_VIA_SESSION;
	(*out)->handle_id = c.s.id;
	snprintf((*out)->handle, sizeof((*out)->handle), "s:%lld", (long long)c.s.id);
	if (cfg->session_absolute_timeout > 0)
		(*out)->expires_at = c.s.created + cfg->session_absolute_timeout;
	return 1;
}

int auth_identify(struct auth *a, struct db *db, const struct gw_cfg *cfg,
		  const struct http_req *req, const char *client_ip, bool tls,
		  struct auth_ident **out, struct err **err)
{
	size_t count = 0;
	const struct http_header *h = http_req_header(req, "Authorization", &count);

	(void)tls; /* the cookie name follows cfg->cookie_secure, not this connection */
	if (count > 1)
		return err_set_http(err, 400, EINVAL, "more than one Authorization header");
	if (h)
		return auth_by_token(a, db, h, client_ip, out, err);
	return auth_by_cookie(db, cfg, req, out, err);
}

int auth_check_token_grant(struct db *db, const struct auth_ident *requester,
			   const struct users_user *owner, const char *scopes,
			   struct err **err)
{
	struct scope_set *have = NULL, *want = NULL;
	struct scope_owner o = { .user = owner->name };
	cleanup_free char *missing = NULL;
	int r = 0;

	if (auth_user_scopes(owner, &have, err) < 0)
		return err_set_http(err, 500, EIO, "scopes of '%s'", owner->name);
	o.inherit = have;
	if (scopes_expand(scopes ? scopes : "inherit", &o, &want, err) < 0) {
		scopes_free(have);
		return -EINVAL;
	}
	if (!scopes_subset(want, have, users_in_group_cb, db, &missing))
		r = err_set_http(err, 403, EACCES, "requested scope '%s' is not held by user '%s'",
				 missing, owner->name);
	else if (requester &&
		 !scopes_subset(want, requester->scopes, users_in_group_cb, db, &missing))
		r = err_set_http(err, 403, EACCES,
				 "requested scope '%s' is not held by the requester", missing);
	scopes_free(want);
	scopes_free(have);
	return r;
}

/* ---- cookies ---- */

const char *auth_cookie_name(const struct gw_cfg *cfg)
{
	return cfg->cookie_secure ? AUTH_COOKIE_SECURE : AUTH_COOKIE_PLAIN;
}

static char *auth_cookie_fmt(const struct gw_cfg *cfg, const char *name, const char *value,
			     int64_t max_age_s)
{
	cleanup_free char *age = max_age_s >= 0 ? xasprintf("; Max-Age=%lld",
							    (long long)max_age_s)
						: xstrdup("");

	return xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Lax%s%s", name, value,
			 cfg->cookie_secure ? "; Secure" : "", age);
}

char *auth_cookie_set(const struct gw_cfg *cfg, const char *sid)
{
	int64_t abs = cfg->session_absolute_timeout;

	return auth_cookie_fmt(cfg, auth_cookie_name(cfg), sid, abs > 0 ? abs / 1000 : -1);
}

char *auth_cookie_clear(const struct gw_cfg *cfg)
{
	return auth_cookie_fmt(cfg, auth_cookie_name(cfg), "", 0);
}

/* ---- sessions, login, logout ---- */

void auth_login_result_free(struct auth_login_result *r)
{
	if (!r)
		return;
	free(r->user);
	free(r->set_cookie);
	free(r);
}

int auth_session_start(struct auth *a, struct db *db, int64_t user_id, const char *client_ip,
		       char **set_cookie, int64_t *session_id, struct err **err)
{
	char *sid = NULL;

	if (users_session_create(db, user_id, client_ip, time_now_ms(), &sid, session_id,
				 err) < 0)
		return -EIO;
	*set_cookie = auth_cookie_set(a->cfg, sid);
	sodium_memzero(sid, strlen(sid));
	free(sid);
	return 0;
}

/* A successful login result for u with a fresh session (AUTH-7). */
static int auth_login_ok(struct auth *a, struct db *db, int64_t user_id, const char *name,
			 const char *ip, struct auth_login_result **out, struct err **err)
{
	struct auth_login_result *res = xcalloc(1, sizeof(*res));

	if (auth_session_start(a, db, user_id, ip, &res->set_cookie, &res->session_id,
			       err) < 0) {
		auth_login_result_free(res);
		return -EIO;
	}
	res->status = 200;
	res->user_id = user_id;
	res->user = xstrdup(name);
	*out = res;
	return 0;
}

struct auth_login_job {
	struct auth *a;
	struct db *db;
	char *name;
	char *ip;
	int64_t user_id;  /* 0 = unknown or locked: can never succeed */
	auth_login_done_fn done;
	void *arg;
};

static void auth_login_job_free(struct auth_login_job *j)
{
	free(j->name);
	free(j->ip);
	free(j);
}

static struct auth_login_result *auth_login_failed(void)
{
	struct auth_login_result *res = xcalloc(1, sizeof(*res));

	res->status = 403;
	return res;
}

/* Loop thread: the verify job finished. */
static void auth_login_verified(void *arg, bool ok, char *new_hash)
{
	struct auth_login_job *j = arg;
	struct auth_login_result *res = NULL;
	struct err *err = NULL;

	if (j->a->closing) {
		err_set(&err, ECANCELED, "login cancelled: shutting down");
	} else if (!ok || j->user_id == 0) {
		throttle_fail(j->a->thr, j->name, j->ip, time_mono_ms());
		log_info("login failed for '%s'", j->name);
		res = auth_login_failed();
	} else {
		if (new_hash && users_set_password(j->db, j->user_id, new_hash, &err) < 0) {
			log_warn("rehash of '%s' not stored: %s", j->name, err->msg);
			err_free(&err); /* the old hash still works */
		}
		throttle_success(j->a->thr, j->name, j->ip);
		auth_login_ok(j->a, j->db, j->user_id, j->name, j->ip, &res, &err);
	}
	free(new_hash);
	j->done(j->arg, res, err);
	auth_login_job_free(j);
}

/* Bounds checked before anything slow (AUTH-3, JH-12). */
static int auth_login_precheck(struct auth *a, const char *name, size_t pw_len,
			       const char *pw, const char *ip, char **norm, struct err **err)
{
	int64_t wait;

	if (pw_len > PASSWD_MAX_LEN)
		return err_set_http(err, 400, EMSGSIZE, "password must be at most %d bytes",
				    PASSWD_MAX_LEN);
	if (memchr(pw, '\0', pw_len))
		return err_set_http(err, 400, EINVAL, "password must not contain a NUL byte");
	if (!a->pq)
		return err_set_http(err, 500, EINVAL, "auth: no worker pool attached");
	if (users_normalize_name(name, norm, err) < 0)
		return -EINVAL;
	wait = throttle_check(a->thr, *norm, ip, time_mono_ms());
	if (wait > 0) {
		a->retry_after = wait;
		log_info("login throttled for '%s'", *norm);
		free(steal_ptr(norm));
		return err_set_http(err, 429, EAGAIN, "too many failed logins, retry in %lld s",
				    (long long)wait);
	}
	return 0;
}

int auth_login_start(struct auth *a, struct db *db, const char *name, const char *pw,
		     size_t pw_len, const char *client_ip, auth_login_done_fn done,
		     void *arg, struct err **err)
{
	struct auth_login_job *j;
	struct users_user *u = NULL;
	cleanup_free char *pwz = NULL;
	char *norm = NULL;
	int r;

	if (auth_login_precheck(a, name, pw_len, pw, client_ip, &norm, err) < 0)
		return -EINVAL;
	j = xcalloc(1, sizeof(*j));
	*j = (struct auth_login_job){ a, db, norm, client_ip ? xstrdup(client_ip) : NULL,
				      0, done, arg };
	r = users_get(db, norm, &u, err);
	if (r < 0) {
		auth_login_job_free(j);
		return r;
	}
	if (r > 0 && !u->locked && u->pw_hash)
		j->user_id = u->id;
	pwz = xstrndup(pw, pw_len);
	r = passwd_queue_verify(a->pq, j->user_id ? u->pw_hash : NULL, pwz,
				auth_login_verified, j, err);
	sodium_memzero(pwz, pw_len);
	users_user_free(u);
	if (r < 0)
		auth_login_job_free(j);
	return r;
}

int auth_login_setup_code(struct auth *a, struct db *db, const char *code,
			  const char *client_ip, struct auth_login_result **res,
			  struct err **err)
{
	int64_t wait = throttle_guess_check(a->thr, client_ip, time_mono_ms());
	struct users_user *u = NULL;
	int64_t uid = 0;
	int r;

	if (wait > 0) {
		a->retry_after = wait;
		return err_set_http(err, 429, EAGAIN, "too many invalid codes, retry in %lld s",
				    (long long)wait);
	}
	r = users_setup_code_consume(db, code, time_now_ms(), &uid, err);
	if (r > 0)
		r = users_get_by_id(db, uid, &u, err);
	if (r == 0)
		throttle_guess_fail(a->thr, client_ip, time_mono_ms());
	if (r <= 0)
		return r;
	r = auth_login_ok(a, db, u->id, u->name, client_ip, res, err);
	users_user_free(u);
	return r < 0 ? r : 1;
}

int auth_hash_password(struct auth *a, const char *pw, size_t pw_len,
		       void (*done)(void *arg, char *hash, struct err *err), void *arg,
		       struct err **err)
{
	cleanup_free char *pwz = NULL;
	int r;

	if (passwd_check_policy(pw, pw_len, err) < 0)
		return -EINVAL;
	if (!a->pq)
		return err_set_http(err, 500, EINVAL, "auth: no worker pool attached");
	pwz = xstrndup(pw, pw_len);
	r = passwd_queue_hash(a->pq, pwz, done, arg, err);
	sodium_memzero(pwz, pw_len);
	return r;
}

int auth_logout(struct auth *a, struct db *db, const struct auth_ident *who,
		char **clear_cookie, struct err **err)
{
	if (who && who->via == AUTH_VIA_SESSION &&
	    users_session_delete(db, who->handle_id, err) < 0)
		return -EIO;
	if (clear_cookie)
		*clear_cookie = auth_cookie_clear(a->cfg);
	return 0;
}

/* ---- CSRF (R-5.5) ---- */

static int auth_csrf_fail(struct err **err, const char *why)
{
	return err_set_http(err, 403, EACCES, "%s", why);
}

static bool auth_hdr_is(const struct http_header *h, const char *v)
{
	return h && h->value_len == strlen(v) && !strncasecmp(h->value, v, h->value_len);
}

/* Length of the "scheme://authority" part of a URL, 0 if none. */
static size_t auth_origin_len(const char *url, size_t len)
{
	const char *sep = memmem(url, len, "://", 3);
	size_t i;

	if (!sep || sep == url)
		return 0;
	i = (size_t)(sep - url) + 3;
	while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
		i++;
	return i;
}

/* The port suffix (":8080" or "") of the public URL's authority. */
static const char *auth_public_port(const char *pub, size_t olen, size_t *plen)
{
	const char *colon = NULL;

	for (size_t i = olen; i > 0 && pub[i - 1] != '/' && pub[i - 1] != ']'; i--)
		if (pub[i - 1] == ':') {
			colon = pub + i - 1;
			break;
		}
	*plen = colon ? (size_t)(pub + olen - colon) : 0;
	return colon ? colon : "";
}

/* Is origin[0..len) the hub's public origin, or who's own in subdomain mode? */
static bool auth_origin_ok(const struct gw_cfg *cfg, const char *user, const char *origin,
			   size_t len)
{
	const char *pub = cfg->public_url ? cfg->public_url : "";
	size_t plen = auth_origin_len(pub, strlen(pub)), portlen;
	const char *port, *scheme_end;
	cleanup_free char *own = NULL;

	if (plen && len == plen && !strncasecmp(origin, pub, len))
		return true;
	if (cfg->url_mode != GW_URL_SUBDOMAIN || !user || !cfg->domain || !plen)
		return false;
	scheme_end = strstr(pub, "://");
	port = auth_public_port(pub, plen, &portlen);
	own = xasprintf("%.*s://%s.%s%.*s", (int)(scheme_end - pub), pub, user, cfg->domain,
			(int)portlen, port);
	return len == strlen(own) && !strncasecmp(origin, own, len);
}

/* Fetch-Metadata, Origin and Referer rules shared by both checks. */
static int auth_csrf_fetch(const struct gw_cfg *cfg, const struct http_req *req,
			   const char *user, struct err **err)
{
	const struct http_header *site = http_req_header(req, "Sec-Fetch-Site", NULL);
	const struct http_header *origin = http_req_header(req, "Origin", NULL);
	const struct http_header *ref = http_req_header(req, "Referer", NULL);

	if (auth_hdr_is(site, "cross-site") || auth_hdr_is(site, "same-site"))
		return auth_csrf_fail(err, "cross-site request refused");
	if (origin) {
		if (!auth_origin_ok(cfg, user, origin->value, origin->value_len))
			return auth_csrf_fail(err, "request origin not allowed");
	} else if (ref) {
		size_t olen = auth_origin_len(ref->value, ref->value_len);

		if (!olen || !auth_origin_ok(cfg, user, ref->value, olen))
			return auth_csrf_fail(err, "request referer not allowed");
	}
	return 0;
}

static bool auth_method_safe(const struct http_req *req)
{
	return req->method == HTTP_GET || req->method == HTTP_HEAD ||
	       req->method == HTTP_OPTIONS;
}

/* The media type of Content-Type (before ';'), or an empty string. */
static size_t auth_media_type(const struct http_req *req, const char **mt)
{
	const struct http_header *ct = http_req_header(req, "Content-Type", NULL);
	size_t n = 0;

	*mt = ct ? ct->value : "";
	if (!ct)
		return 0;
	while (n < ct->value_len && ct->value[n] != ';' && ct->value[n] != ' ')
		n++;
	return n;
}

static bool auth_media_is(const char *mt, size_t n, const char *want)
{
	return n == strlen(want) && !strncasecmp(mt, want, n);
}

/* JupyterHub test_post_content_type: cookie API calls must send JSON. */
static int auth_csrf_api_type(const struct http_req *req, struct err **err)
{
	const char *path = req->path.encoded ? req->path.encoded : "";
	const char *mt;
	size_t n = auth_media_type(req, &mt);

	if (strncmp(path, "/hub/api/", 9) != 0 && strcmp(path, "/hub/api") != 0)
		return 0;
	if (n == 0 || auth_media_is(mt, n, "application/json"))
		return 0;
	return err_set_http(err, 403, EACCES,
			    "content type '%.*s' not allowed for cookie-authenticated API requests",
			    (int)(n > 64 ? 64 : n), mt);
}

/* The `_xsrf` field of a urlencoded body, or NULL. */
static const char *auth_form_xsrf(const struct http_req *req, const char *body,
				  size_t body_len, size_t *vlen)
{
	const char *mt;
	size_t n = auth_media_type(req, &mt), i = 0;

	if (!body || !auth_media_is(mt, n, "application/x-www-form-urlencoded"))
		return NULL;
	while (i < body_len) {
		size_t end = i;

		while (end < body_len && body[end] != '&')
			end++;
		if (end - i >= 6 && !memcmp(body + i, "_xsrf=", 6)) {
			*vlen = end - i - 6;
			return body + i + 6;
		}
		i = end + 1;
	}
	return NULL;
}

/* The presented XSRF token: header first, then form field. */
static const char *auth_presented_xsrf(const struct http_req *req, const char *body,
				       size_t body_len, size_t *vlen)
{
	const struct http_header *h = http_req_header(req, "X-XSRFToken", NULL);

	if (h) {
		*vlen = h->value_len;
		return h->value;
	}
	return auth_form_xsrf(req, body, body_len, vlen);
}

static bool auth_const_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && sodium_memcmp(a, b, blen) == 0;
}

/* base64url(HMAC-SHA-256(key, tag || data)). Caller frees. */
static char *auth_mac_b64(const struct auth *a, const char *tag, const char *data)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *out = xmalloc(RAND_B64URL_LEN(sizeof(mac)) + 1);

	crypto_auth_hmacsha256_init(&st, a->key.k, sizeof(a->key.k));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tag, strlen(tag));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)data, strlen(data));
	crypto_auth_hmacsha256_final(&st, mac);
	rand_b64url_encode(mac, sizeof(mac), out, RAND_B64URL_LEN(sizeof(mac)) + 1);
	return out;
}

char *auth_csrf_token(const struct auth *a, const struct auth_ident *who)
{
	return auth_mac_b64(a, "xsrf:", who->handle);
}

int auth_csrf_check(const struct auth *a, const struct gw_cfg *cfg,
		    const struct http_req *req, const struct auth_ident *who,
		    const char *body, size_t body_len, struct err **err)
{
	cleanup_free char *want = NULL;
	const char *got;
	size_t glen = 0;

	if (!who || who->via == AUTH_VIA_TOKEN || auth_method_safe(req))
		return 0;
	if (auth_csrf_fetch(cfg, req, who->user, err) < 0 || auth_csrf_api_type(req, err) < 0)
		return -EACCES;
	got = auth_presented_xsrf(req, body, body_len, &glen);
	if (!got || glen == 0)
		return auth_csrf_fail(err, "'_xsrf' argument missing");
	want = auth_csrf_token(a, who);
	if (!auth_const_eq(got, glen, want))
		return auth_csrf_fail(err, "XSRF cookie does not match POST argument");
	return 0;
}

static const char *auth_login_cookie_name(const struct gw_cfg *cfg)
{
	return cfg->cookie_secure ? AUTH_LOGIN_COOKIE_SECURE : AUTH_LOGIN_COOKIE_PLAIN;
}

char *auth_login_xsrf_new(const struct auth *a, const struct gw_cfg *cfg, char **set_cookie)
{
	cleanup_free char *nonce = rand_b64url(16);

	*set_cookie = auth_cookie_fmt(cfg, auth_login_cookie_name(cfg), nonce, 3600);
	return auth_mac_b64(a, "login:", nonce);
}

struct auth_login_xsrf_ctx {
	const struct auth *a;
	const char *field;
	size_t flen;
};

/* Does this login cookie's nonce match the form field? (every one is tried) */
static bool auth_login_xsrf_try(void *vctx, const char *v, size_t vlen)
{
	struct auth_login_xsrf_ctx *c = vctx;
	cleanup_free char *nonce = NULL;
	cleanup_free char *want = NULL;

	if (vlen == 0 || vlen > 64)
		return false;
	nonce = xstrndup(v, vlen);
	want = auth_mac_b64(c->a, "login:", nonce);
	return auth_const_eq(c->field, c->flen, want);
}

int auth_login_xsrf_check(const struct auth *a, const struct gw_cfg *cfg,
			  const struct http_req *req, const char *body, size_t body_len,
			  struct err **err)
{
	struct auth_login_xsrf_ctx c = { .a = a };

	if (auth_method_safe(req))
		return 0;
	if (auth_csrf_fetch(cfg, req, NULL, err) < 0)
		return -EACCES;
	c.field = auth_presented_xsrf(req, body, body_len, &c.flen);
	if (!c.field || c.flen == 0)
		return auth_csrf_fail(err, "'_xsrf' argument missing");
	if (!auth_req_cookies(req, auth_login_cookie_name(cfg), auth_login_xsrf_try, &c))
		return auth_csrf_fail(err, "XSRF cookie does not match POST argument");
	return 0;
}
