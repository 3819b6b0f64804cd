/* Unit tests for gateway/auth.c: Authorization forms (TOK-3), no oracle
 * (TOK-9), guess throttling (TOK-10), cookie tossing (JH-15), cookie flags
 * (JH-3, AUTH-6), CSRF matrix (JH-9, AUTH-10, AUTH-11), password login
 * with throttling (AUTH-4, AUTH-5, AUTH-7) and token grants (TOK-4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/auth.c"

#include <ftw.h>
#include <unistd.h>

#include "common/work.h"

struct fx {
	char dir[64];
	struct gw_cfg cfg;
	struct db *db;
	struct auth *a;
	int64_t alice, bob;
	char *tok;      /* alice's token */
	char *sid;      /* alice's session id */
	char buf[16384];
	struct http_req req;
	bool have_req;
};

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct users_token_spec spec = { .scopes = "inherit" };
	char *path, *hash = NULL;

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nbgate-test-auth-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->cfg.state_dir = fx->dir;
	fx->cfg.public_url = "https://hub.example.org";
	fx->cfg.domain = "example.org";
	fx->cfg.session_idle_timeout = 3600000;
	fx->cfg.session_absolute_timeout = 86400000;
	fx->cfg.login_max_failures = 3;
	fx->cfg.login_backoff_base = 60000;
	fx->cfg.login_backoff_max = 600000;
	fx->cfg.token_guess_limit = 5;
	fx->cfg.token_guess_window = 10000;
	fx->cfg.hash_concurrency = 2;
	path = xasprintf("%s/state.db", fx->dir);
	assert_int_equal(db_open(&fx->db, path, NULL), 0);
	free(path);
	fx->a = auth_new(&fx->cfg, NULL);
	assert_non_null(fx->a);
	assert_int_equal(passwd_hash("alice-password", &hash, NULL), 0);
	assert_int_equal(users_create(fx->db, "alice", false, hash, 1, &fx->alice, NULL), 0);
	assert_int_equal(users_create(fx->db, "bob", true, hash, 1, &fx->bob, NULL), 0);
	free(hash);
	spec.user_id = fx->alice;
	assert_int_equal(users_token_create(fx->db, auth_key(fx->a), &spec, time_now_ms(),
					    &fx->tok, NULL, NULL), 0);
	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, time_now_ms(), &fx->sid,
					      NULL, NULL), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->have_req)
		http_req_clear(&fx->req);
	auth_free(fx->a);
	db_close(fx->db);
	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx->tok);
	free(fx->sid);
	free(fx);
	return 0;
}

/* Parses "<method> <path>" plus header lines (each ending \r\n). */
static const struct http_req *mkreq(struct fx *fx, const char *line, const char *headers)
{
	struct http_limits lim = { 16384, 12000, 8192, 100, 1 << 20 };
	struct http_error e;
	int n;

	if (fx->have_req)
		http_req_clear(&fx->req);
	/* bodies are passed to auth separately; the head only announces one */
	n = snprintf(fx->buf, sizeof(fx->buf), "%s HTTP/1.1\r\nHost: hub.example.org\r\n%s%s\r\n",
		     line, strncmp(line, "POST", 4) ? "" : "Content-Length: 0\r\n", headers);
	assert_true(n > 0 && (size_t)n < sizeof(fx->buf));
	memset(&fx->req, 0, sizeof(fx->req));
	assert_int_equal(http_parse_request(fx->buf, (size_t)n, &lim, &fx->req, &e), 1);
	fx->have_req = true;
	return &fx->req;
}

static int identify(struct fx *fx, const char *ip, const char *headers,
		    struct auth_ident **id, struct err **err)
{
	const struct http_req *req = mkreq(fx, "GET /hub/api/user", headers);

	return auth_identify(fx->a, fx->db, &fx->cfg, req, ip, true, id, err);
}

static void test_parse_authorization(void **state)
{
	static const char *const ok[] = { "token abc", "Bearer abc", "bearer abc", "TOKEN abc" };
	static const char *const bad[] = {
		"token: abc", "Basic abc", "no sir", "", "token", "token ", "token  abc",
		"token abc def", "token abc\t", "Bearer\tabc", "tokenabc",
	};
	char big[10240];
	size_t tlen;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		long off = auth_parse_authorization(ok[i], strlen(ok[i]), &tlen);
		assert_true(off > 0);
		assert_int_equal(tlen, 3);
		assert_memory_equal(ok[i] + off, "abc", 3);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(auth_parse_authorization(bad[i], strlen(bad[i]), &tlen), -1);
	memcpy(big, "token ", 6);
	memset(big + 6, 'a', sizeof(big) - 6);
	assert_int_equal(auth_parse_authorization(big, sizeof(big), &tlen), -1);
	assert_int_equal(auth_parse_authorization(big, 512, &tlen), 6);
	assert_int_equal(auth_parse_authorization(big, 513, &tlen), -1);
}

static bool collect(void *ctx, const char *v, size_t n)
{
	char *out = ctx;

	strncat(out, v, n);
	strcat(out, "|");
	return false;
}

static void test_cookie_each(void **state)
{
	const char *h = "a=1; nbgate-session=v1;nbgate-session = x; nbgate-session=\"v2\"; "
			"xnbgate-session=no;  nbgate-session=v3  ";
	char out[128] = "";

	assert_false(auth_cookie_each(h, strlen(h), "nbgate-session", collect, out));
	assert_string_equal(out, "v1|v2|v3|");
}

static void test_token_forms(void **state)
{
	struct fx *fx = *state;
	struct auth_ident *id = NULL;
	struct err *e = NULL;
	char h[1024], first_msg[256] = "";
	const char *fmt[] = { "Authorization: token: %s\r\n", "Authorization: Basic %s\r\n",
			      "Authorization: token %sx\r\n", "Authorization: token %s x\r\n",
			      "Authorization: \r\n" };

	snprintf(h, sizeof(h), "Authorization: token %s\r\n", fx->tok);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 1);
	assert_string_equal(id->user, "alice");
	assert_int_equal(id->via, AUTH_VIA_TOKEN);
	assert_int_equal(strncmp(id->handle, "t:", 2), 0);
	assert_true(scopes_allow(id->scopes, "read:users", "alice", NULL, NULL));
	assert_false(scopes_allow(id->scopes, "read:users", "bob", NULL, NULL));
	auth_ident_free(id);
	snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", fx->tok);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 1);
	auth_ident_free(id);
	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		snprintf(h, sizeof(h), fmt[i], fx->tok);
		assert_int_equal(identify(fx, "10.0.0.2", h, &id, &e), -EACCES);
		assert_int_equal(err_http_status(e), 403);
		if (!*first_msg)
			snprintf(first_msg, sizeof(first_msg), "%s", e->msg);
		assert_string_equal(e->msg, first_msg); /* same body for all: TOK-9 */
		err_free(&e);
	}
	snprintf(h, sizeof(h), "Authorization: token %s\r\nAuthorization: token %s\r\n",
		 fx->tok, fx->tok);
	assert_int_equal(identify(fx, "10.0.0.3", h, &id, &e), -EINVAL);
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	/* a query-string token is never read */
	snprintf(h, sizeof(h), "GET /hub/api/user?token=%s", fx->tok);
	assert_int_equal(auth_identify(fx->a, fx->db, &fx->cfg, mkreq(fx, h, ""), "10.0.0.4",
				       true, &id, NULL), 0);
}

static void test_token_oracle_and_throttle(void **state)
{
	struct fx *fx = *state;
	struct auth_ident *id = NULL;
	struct err *e = NULL;
	char h[1024], wrong[128];
	char *hx = rand_hex(4), *sec = rand_b64url(32);
	char *unknown = xasprintf("nbg_%s_%s", hx, sec);

	snprintf(wrong, sizeof(wrong), "%s", fx->tok);
	wrong[30] = wrong[30] == 'A' ? 'B' : 'A';
	for (int i = 0; i < 5; i++) {
		snprintf(h, sizeof(h), "Authorization: token %s\r\n", i % 2 ? wrong : unknown);
		assert_int_equal(identify(fx, "10.9.9.9", h, &id, &e), -EACCES);
		assert_string_equal(e->msg, AUTH_BAD_TOKEN);
		err_free(&e);
	}
	/* the limit is reached: even a valid token from that client waits */
	snprintf(h, sizeof(h), "Authorization: token %s\r\n", fx->tok);
	assert_int_equal(identify(fx, "10.9.9.9", h, &id, &e), -EAGAIN);
	assert_int_equal(err_http_status(e), 429);
	assert_true(auth_retry_after(fx->a) > 0);
	err_free(&e);
	/* another client is unaffected */
	assert_int_equal(identify(fx, "10.9.9.10", h, &id, NULL), 1);
	auth_ident_free(id);
	free(unknown);
	free(hx);
	free(sec);
}

static void test_revoked_and_locked(void **state)
{
	struct fx *fx = *state;
	struct users_token *t = NULL;
	struct auth_ident *id = NULL;
	struct err *e = NULL;
	char h[1024];

	snprintf(h, sizeof(h), "Authorization: token %s\r\n", fx->tok);
	assert_int_equal(users_set_locked(fx->db, fx->alice, true, NULL), 1);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, &e), -EACCES);
	err_free(&e);
	assert_int_equal(users_set_locked(fx->db, fx->alice, false, NULL), 1);
	assert_int_equal(users_token_lookup(fx->db, auth_key(fx->a), fx->tok, time_now_ms(), &t,
					    NULL), 1);
	assert_int_equal(users_token_revoke(fx->db, fx->alice, t->id, NULL), 1);
	users_token_free(t);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, &e), -EACCES);
	err_free(&e);
}

static void test_cookie_tossing(void **state)
{
	struct fx *fx = *state;
	struct auth_ident *id = NULL;
	char h[512];
	const char *forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

	/* one valid cookie authenticates */
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\n", fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 1);
	assert_string_equal(id->user, "alice");
	assert_int_equal(id->via, AUTH_VIA_SESSION);
	assert_int_equal(strncmp(id->handle, "s:", 2), 0);
	assert_true(id->expires_at > 0);
	auth_ident_free(id);
	/* two session cookies (one tossed from a sibling host): ambiguous, so
	 * neither authenticates, whichever is listed first (JH-15) */
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s; nbgate-session=%s\r\n", forged,
		 fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 0);
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\nCookie: nbgate-session=%s\r\n",
		 fx->sid, fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 0);
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\nCookie: a=%s\r\n", forged, fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 0);
	/* TLS cookie mode: only the __Host- name counts */
	fx->cfg.cookie_secure = true;
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\n", fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 0);
	snprintf(h, sizeof(h), "Cookie: __Host-nbgate-session=%s\r\n", fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 1);
	auth_ident_free(id);
}

static void test_cookie_flags(void **state)
{
	struct fx *fx = *state;
	char *c;

	fx->cfg.cookie_secure = true;
	c = auth_cookie_set(&fx->cfg, "SID");
	assert_string_equal(c, "__Host-nbgate-session=SID; Path=/; HttpOnly; SameSite=Lax; "
			       "Secure; Max-Age=86400");
	free(c);
	c = auth_cookie_clear(&fx->cfg);
	assert_non_null(strstr(c, "Max-Age=0"));
	assert_null(strcasestr(c, "domain"));
	free(c);
	fx->cfg.cookie_secure = false;
	c = auth_cookie_set(&fx->cfg, "SID");
	assert_int_equal(strncmp(c, "nbgate-session=SID;", 19), 0);
	assert_null(strstr(c, "Secure"));
	free(c);
}

static struct auth_ident *session_ident(struct fx *fx)
{
	struct auth_ident *id = NULL;
	char h[512];

	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\n", fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 1);
	return id;
}

static int csrf(struct fx *fx, const struct auth_ident *who, const char *line,
		const char *headers, const char *body, struct err **e)
{
	const struct http_req *req = mkreq(fx, line, headers);

	return auth_csrf_check(fx->a, &fx->cfg, req, who, body, body ? strlen(body) : 0, e);
}

static void expect_403(struct fx *fx, const struct auth_ident *who, const char *headers,
		       const char *msg)
{
	struct err *e = NULL;

	assert_int_equal(csrf(fx, who, "POST /hub/api/users/alice/server", headers, NULL, &e),
			 -EACCES);
	assert_int_equal(err_http_status(e), 403);
	if (msg)
		assert_string_equal(e->msg, msg);
	err_free(&e);
}

static void test_csrf_matrix(void **state)
{
	struct fx *fx = *state;
	struct auth_ident *id = session_ident(fx), tokid = { 0 };
	char *x = auth_csrf_token(fx->a, id);
	char h[512];

	expect_403(fx, id, "", "'_xsrf' argument missing");
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nSec-Fetch-Site: same-origin\r\n", x);
	assert_int_equal(csrf(fx, id, "POST /hub/api/users/alice/server", h, NULL, NULL), 0);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nSec-Fetch-Site: cross-site\r\n", x);
	expect_403(fx, id, h, NULL);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nSec-Fetch-Site: same-site\r\n", x);
	expect_403(fx, id, h, NULL);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nSec-Fetch-Mode: no-cors\r\n"
			       "Sec-Fetch-Site: cross-site\r\n", x);
	expect_403(fx, id, h, NULL);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nOrigin: https://evil\r\n", x);
	expect_403(fx, id, h, NULL);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nOrigin: https://hub.example.org\r\n", x);
	assert_int_equal(csrf(fx, id, "POST /hub/api/users/alice/server", h, NULL, NULL), 0);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nReferer: https://evil/hub/\r\n", x);
	expect_403(fx, id, h, NULL);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\nContent-Type: text/plain\r\n", x);
	expect_403(fx, id, h, NULL);
	expect_403(fx, id, "X-XSRFToken: AAAA\r\n", "XSRF cookie does not match POST argument");
	/* a token of another session does not fit this one */
	tokid = *id;
	snprintf(tokid.handle, sizeof(tokid.handle), "s:%lld", (long long)id->handle_id + 1);
	free(x);
	x = auth_csrf_token(fx->a, &tokid);
	snprintf(h, sizeof(h), "X-XSRFToken: %s\r\n", x);
	expect_403(fx, id, h, NULL);
	/* token callers and safe methods skip the check */
	tokid.via = AUTH_VIA_TOKEN;
	assert_int_equal(csrf(fx, &tokid, "POST /hub/api/x", "Content-Type: text/plain\r\n",
			      NULL, NULL), 0);
	assert_int_equal(csrf(fx, id, "GET /hub/api/x", "Sec-Fetch-Site: cross-site\r\n", NULL,
			      NULL), 0);
	free(x);
	auth_ident_free(id);
}

static void test_csrf_form_and_subdomain(void **state)
{
	struct fx *fx = *state;
	struct auth_ident *id = session_ident(fx);
	char *x = auth_csrf_token(fx->a, id);
	char *body = xasprintf("a=1&_xsrf=%s&b=2", x);
	const char *form = "Content-Type: application/x-www-form-urlencoded\r\n";

	assert_int_equal(csrf(fx, id, "POST /hub/logout", form, body, NULL), 0);
	assert_int_equal(csrf(fx, id, "POST /hub/logout", form, "_xsrf=zz", NULL), -EACCES);
	/* forms are refused on the JSON API */
	assert_int_equal(csrf(fx, id, "POST /hub/api/x", form, body, NULL), -EACCES);
	free(body);
	/* subdomain mode: the user's own origin is allowed, a neighbour's not */
	fx->cfg.url_mode = GW_URL_SUBDOMAIN;
	body = xasprintf("X-XSRFToken: %s\r\nOrigin: https://alice.example.org\r\n", x);
	assert_int_equal(csrf(fx, id, "POST /api/contents", body, NULL, NULL), 0);
	free(body);
	body = xasprintf("X-XSRFToken: %s\r\nOrigin: https://bob.example.org\r\n", x);
	assert_int_equal(csrf(fx, id, "POST /api/contents", body, NULL, NULL), -EACCES);
	free(body);
	free(x);
	auth_ident_free(id);
}

static void test_login_xsrf(void **state)
{
	struct fx *fx = *state;
	char *cookie = NULL, *field = auth_login_xsrf_new(fx->a, &fx->cfg, &cookie);
	const char *form = "Content-Type: application/x-www-form-urlencoded\r\n";
	char *nonce = xstrndup(cookie, strcspn(cookie, ";"));
	char *h = xasprintf("%sCookie: %s\r\n", form, nonce);
	char *body = xasprintf("username=a&_xsrf=%s", field);

	assert_int_equal(auth_login_xsrf_check(fx->a, &fx->cfg, mkreq(fx, "POST /hub/login", h),
					       body, strlen(body), NULL), 0);
	assert_int_equal(auth_login_xsrf_check(fx->a, &fx->cfg, mkreq(fx, "POST /hub/login", form),
					       body, strlen(body), NULL), -EACCES);
	free(h);
	h = xasprintf("%sCookie: %s\r\nSec-Fetch-Site: cross-site\r\n", form, nonce);
	assert_int_equal(auth_login_xsrf_check(fx->a, &fx->cfg, mkreq(fx, "POST /hub/login", h),
					       body, strlen(body), NULL), -EACCES);
	free(h);
	free(body);
	free(nonce);
	free(cookie);
	free(field);
}

struct login_res {
	int calls;
	int status;
	char *cookie;
};

static void on_login(void *arg, struct auth_login_result *res, struct err *err)
{
	struct login_res *r = arg;

	assert_null(err);
	r->calls++;
	r->status = res->status;
	free(r->cookie);
	r->cookie = res->set_cookie ? xstrdup(res->set_cookie) : NULL;
	auth_login_result_free(res);
}

static int login(struct fx *fx, struct work_pool *wp, const char *user, const char *pw,
		 const char *ip, struct login_res *r, struct err **e)
{
	int64_t deadline = time_mono_ms() + 20000;
	int calls = r->calls;

	if (auth_login_start(fx->a, fx->db, user, pw, strlen(pw), ip, on_login, r, e) < 0)
		return -1;
	while (r->calls == calls && time_mono_ms() < deadline) {
		work_drain(wp);
		usleep(2000);
	}
	assert_int_equal(r->calls, calls + 1);
	return r->status;
}

static void test_login_flow(void **state)
{
	struct fx *fx = *state;
	struct work_pool *wp = work_pool_new(2, NULL, NULL);
	struct login_res r = { 0 };
	struct err *e = NULL;
	char big[2000];

	auth_attach_work(fx->a, wp);
	assert_int_equal(login(fx, wp, "Alice", "alice-password", "127.0.0.1", &r, NULL), 200);
	assert_non_null(strstr(r.cookie, "nbgate-session="));
	assert_int_equal(login(fx, wp, "alice", "wrong-password", "127.0.0.2", &r, NULL), 403);
	assert_int_equal(login(fx, wp, "nobody", "alice-password", "127.0.0.3", &r, NULL), 403);
	assert_int_equal(login(fx, wp, "alice", "wrong-password", "127.0.0.4", &r, NULL), 403);
	assert_int_equal(login(fx, wp, "alice", "wrong-password", "127.0.0.5", &r, NULL), 403);
	/* 3 failures for alice from 3 addresses: the next waits, whatever the address */
	assert_int_equal(login(fx, wp, "alice", "alice-password", "127.0.0.6", &r, &e), -1);
	assert_int_equal(err_http_status(e), 429);
	assert_true(auth_retry_after(fx->a) >= 59);
	err_free(&e);
	/* bob is not affected */
	assert_int_equal(login(fx, wp, "bob", "alice-password", "127.0.0.7", &r, NULL), 200);
	/* oversized password: refused at once */
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(login(fx, wp, "bob", big, "127.0.0.7", &r, &e), -1);
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	assert_int_equal(login(fx, wp, "bad name", "x", "127.0.0.7", &r, &e), -1);
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	free(r.cookie);
	work_pool_free(wp);
}

static void test_setup_code_and_logout(void **state)
{
	struct fx *fx = *state;
	struct auth_login_result *res = NULL;
	struct auth_ident *id;
	char *code = NULL, *clear = NULL;

	assert_int_equal(users_setup_code_create(fx->db, fx->bob, time_now_ms(), &code, NULL), 0);
	assert_int_equal(auth_login_setup_code(fx->a, fx->db, code, "1.2.3.4", &res, NULL), 1);
	assert_string_equal(res->user, "bob");
	auth_login_result_free(res);
	assert_int_equal(auth_login_setup_code(fx->a, fx->db, code, "1.2.3.4", &res, NULL), 0);
	free(code);
	id = session_ident(fx);
	assert_int_equal(auth_logout(fx->a, fx->db, id, &clear, NULL), 0);
	assert_non_null(strstr(clear, "Max-Age=0"));
	free(clear);
	auth_ident_free(id);
	/* the old cookie no longer identifies anyone (AUTH-9) */
	char h[512];
	snprintf(h, sizeof(h), "Cookie: nbgate-session=%s\r\n", fx->sid);
	assert_int_equal(identify(fx, "10.0.0.1", h, &id, NULL), 0);
}

/* identify() with another Host and path. */
static int identify_on(struct fx *fx, const char *host, const char *cookie_sid,
		       struct auth_ident **id)
{
	struct http_limits lim = { 16384, 12000, 8192, 100, 1 << 20 };
	struct http_error e;
	int n;

	if (fx->have_req)
		http_req_clear(&fx->req);
	n = snprintf(fx->buf, sizeof(fx->buf), "GET /user/alice/lab HTTP/1.1\r\nHost: %s\r\n"
		     "Cookie: nbgate-session=%s\r\n\r\n", host, cookie_sid);
	assert_true(n > 0 && (size_t)n < sizeof(fx->buf));
	memset(&fx->req, 0, sizeof(fx->req));
	assert_int_equal(http_parse_request(fx->buf, (size_t)n, &lim, &fx->req, &e), 1);
	fx->have_req = true;
	*id = NULL;
	return auth_identify(fx->a, fx->db, &fx->cfg, &fx->req, "10.0.0.1", false, id, NULL);
}

/* Expects identify_on to give user (NULL = anonymous). */
static void expect_on(struct fx *fx, const char *host, const char *sid, const char *user)
{
	struct auth_ident *id = NULL;
	int r = identify_on(fx, host, sid, &id);

	if (!user) {
		assert_int_equal(r, 0);
		assert_null(id);
		return;
	}
	assert_int_equal(r, 1);
	assert_string_equal(id->user, user);
	assert_int_equal(id->via, AUTH_VIA_SESSION);
	auth_ident_free(id);
}

/* Subdomain mode (JH-3, JH-4, JH-15): a host session counts only on its
 * host, a hub session never on a user host. */
static void test_host_sessions(void **state)
{
	struct fx *fx = *state;
	int64_t hub = 0, now = time_now_ms();
	char *ksid = NULL;
	struct users_session s;

	fx->cfg.url_mode = GW_URL_SUBDOMAIN;
	assert_int_equal(users_session_lookup(fx->db, fx->sid, now, 0, 0, &s, NULL), 1);
	hub = s.id;
	assert_int_equal(users_session_create_child(fx->db, hub, "alice.example.org", NULL, now,
						    0, 0, &ksid, NULL, NULL), 1);
	assert_true(auth_host_is_user(&fx->cfg, "alice.example.org"));
	assert_false(auth_host_is_user(&fx->cfg, "hub.example.org"));
	assert_false(auth_host_is_user(&fx->cfg, "example.org"));
	assert_false(auth_host_is_user(&fx->cfg, "alice.example.org.evil"));
	assert_false(auth_host_is_user(&fx->cfg, "aliceexample.org"));
	expect_on(fx, "hub.example.org", fx->sid, "alice");
	expect_on(fx, "hub.example.org:443", fx->sid, "alice");
	expect_on(fx, "alice.example.org", fx->sid, NULL);
	expect_on(fx, "bob.example.org:443", fx->sid, NULL);
	expect_on(fx, "alice.example.org", ksid, "alice");
	expect_on(fx, "ALICE.Example.org:443", ksid, "alice");
	expect_on(fx, "bob.example.org", ksid, NULL);
	expect_on(fx, "hub.example.org", ksid, NULL);
	expect_on(fx, "alice.example.org.evil", ksid, NULL);
	expect_on(fx, "127.0.0.1:8000", ksid, NULL);
	/* path mode has no user hosts; host sessions stay on their host */
	fx->cfg.url_mode = GW_URL_PATH;
	assert_false(auth_host_is_user(&fx->cfg, "alice.example.org"));
	expect_on(fx, "alice.example.org", fx->sid, "alice");
	expect_on(fx, "hub.example.org", ksid, NULL);
	/* the hub session's logout ends the host session (JH-11) */
	fx->cfg.url_mode = GW_URL_SUBDOMAIN;
	assert_int_equal(users_session_delete(fx->db, hub, NULL), 1);
	expect_on(fx, "alice.example.org", ksid, NULL);
	free(ksid);
}

static void test_token_grant(void **state)
{
	struct fx *fx = *state;
	struct users_user *alice = NULL, *bob = NULL;
	struct auth_ident *ra = NULL, *rb = NULL;
	struct err *e = NULL;

	assert_int_equal(users_get(fx->db, "alice", &alice, NULL), 1);
	assert_int_equal(users_get(fx->db, "bob", &bob, NULL), 1);
	assert_int_equal(auth_ident_for_user(fx->db, fx->alice, &ra, NULL), 1);
	assert_int_equal(auth_ident_for_user(fx->db, fx->bob, &rb, NULL), 1);
	assert_int_equal(auth_check_token_grant(fx->db, ra, alice, "admin:users", &e), -EACCES);
	assert_int_equal(err_http_status(e), 403);
	err_free(&e);
	assert_int_equal(auth_check_token_grant(fx->db, ra, alice, "read:users!user", NULL), 0);
	assert_int_equal(auth_check_token_grant(fx->db, ra, alice, NULL, NULL), 0);
	assert_int_equal(auth_check_token_grant(fx->db, rb, bob, "list:users", NULL), 0);
	/* admin bob asks for alice a scope alice does not hold */
	assert_int_equal(auth_check_token_grant(fx->db, rb, alice, "list:users", &e), -EACCES);
	err_free(&e);
	/* alice cannot create a token for bob with bob's powers */
	assert_int_equal(auth_check_token_grant(fx->db, ra, bob, "admin:users", &e), -EACCES);
	err_free(&e);
	assert_int_equal(auth_check_token_grant(fx->db, ra, alice, "nonsense", &e), -EINVAL);
	err_free(&e);
	auth_ident_free(ra);
	auth_ident_free(rb);
	users_user_free(alice);
	users_user_free(bob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_authorization),
		cmocka_unit_test(test_cookie_each),
		cmocka_unit_test_setup_teardown(test_token_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_oracle_and_throttle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_and_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cookie_tossing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cookie_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csrf_matrix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csrf_form_and_subdomain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_xsrf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_code_and_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_grant, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
