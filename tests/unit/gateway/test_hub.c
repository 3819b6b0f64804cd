/*
 * Unit tests for gateway/hub.c: the route table, the login next-URL
 * validation (SECURITY.md JH-1), form/query/cookie parsing.
 *
 * The handlers and the connection core are replaced by weak stubs: the
 * router is tested on its own (the real handlers are linked instead when
 * some other object pulls them in, which does not change these tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/hub.c"

#define WEAK __attribute__((weak))
#define STUB(fn)                                                                          \
	WEAK void fn(struct gw *gw, struct gw_conn *c, const struct gw_request *req,       \
		     const struct hub_match *m)                                             \
	{                                                                                 \
	}
STUB(hub__page_root) STUB(hub__page_login) STUB(hub__page_login_post) STUB(hub__page_logout)
STUB(hub__page_logout_post) STUB(hub__page_setup) STUB(hub__page_setup_post)
STUB(hub__page_home) STUB(hub__page_token) STUB(hub__page_admin) STUB(hub__page_static)
STUB(hub__page_health) STUB(hub__page_metrics) STUB(hub__api_root) STUB(hub__api_self)
STUB(hub__api_users_list) STUB(hub__api_users_create) STUB(hub__api_user_get)
STUB(hub__api_user_create) STUB(hub__api_user_patch) STUB(hub__api_user_delete)
STUB(hub__api_user_activity) STUB(hub__api_server_start) STUB(hub__api_server_stop)
STUB(hub__api_server_progress) STUB(hub__api_tokens_list) STUB(hub__api_tokens_create)
STUB(hub__api_token_get) STUB(hub__api_token_delete) STUB(hub__api_groups_list)
STUB(hub__api_group_get) STUB(hub__api_group_create) STUB(hub__api_group_delete)
STUB(hub__api_group_users_add) STUB(hub__api_group_users_del)

WEAK void hub__send_page_error(struct gw_conn *c, int status, const char *msg) {}
WEAK void gw_response_init(struct gw_response *r, int status) { r->status = status; }
WEAK void gw_response_release(struct gw_response *r) {}
WEAK void gw_response_header(struct gw_response *r, const char *n, const char *f, ...) {}
WEAK void gw_response_json(struct gw_response *r, int status, struct cJSON *json)
{
	cJSON_Delete(json);
}
WEAK void gw_response_error(struct gw_response *r, int status, const char *fmt, ...) {}
WEAK void gw_response_redirect(struct gw_response *r, int status, const char *l) {}
WEAK void gw_send(struct gw_conn *c, struct gw_response *r) {}

/* Splits "/a/b/c" into segments (no decoding needed for these tests). */
static size_t split(char *path, char **seg, size_t max)
{
	size_t n = 0;
	char *p = path, *e;

	while (*p && n < max) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchr(p, '/');
		seg[n++] = p;
		if (!e)
			break;
		*e = '\0';
		p = e + 1;
	}
	return n;
}

static const struct hub_route *route_for(enum http_method meth, const char *path,
					 struct hub_match *m, int *status, char *allow)
{
	static char buf[256];
	char *seg[16];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", path);
	n = split(buf, seg, 16);
	return hub__match(meth, seg, n, m, status, allow, 64);
}

struct route_row {
	enum http_method meth;
	const char *path;
	hub_handler_fn fn;   /* NULL = no route */
	int status;          /* when fn == NULL */
	const char *arg0, *arg1;
};

static void test_match_table(void **state)
{
	static const struct route_row rows[] = {
		{ HTTP_GET, "/hub/", hub__page_root, 0, NULL, NULL },
		{ HTTP_GET, "/hub/login", hub__page_login, 0, NULL, NULL },
		{ HTTP_POST, "/hub/login", hub__page_login_post, 0, NULL, NULL },
		{ HTTP_HEAD, "/hub/home", hub__page_home, 0, NULL, NULL },
		{ HTTP_GET, "/hub/static/app.js", hub__page_static, 0, "app.js", NULL },
		{ HTTP_GET, "/hub/api/", hub__api_root, 0, NULL, NULL },
		{ HTTP_GET, "/hub/api/user", hub__api_self, 0, NULL, NULL },
		{ HTTP_GET, "/hub/api/users", hub__api_users_list, 0, NULL, NULL },
		{ HTTP_PATCH, "/hub/api/users/alice", hub__api_user_patch, 0, "alice", NULL },
		{ HTTP_DELETE, "/hub/api/users/alice", hub__api_user_delete, 0, "alice", NULL },
		{ HTTP_POST, "/hub/api/users/al/server", hub__api_server_start, 0, "al", NULL },
		{ HTTP_POST, "/hub/api/users/al/servers/x1", hub__api_server_start, 0, "al", "x1" },
		{ HTTP_GET, "/hub/api/users/al/servers/x1/progress", hub__api_server_progress, 0,
		  "al", "x1" },
		{ HTTP_GET, "/hub/api/users/al/server/progress", hub__api_server_progress, 0,
		  "al", NULL },
		{ HTTP_DELETE, "/hub/api/users/bob/tokens/a12", hub__api_token_delete, 0, "bob",
		  "a12" },
		{ HTTP_POST, "/hub/api/groups/g/users", hub__api_group_users_add, 0, "g", NULL },
		{ HTTP_POST, "/hub/api/users/u/activity", hub__api_user_activity, 0, "u", NULL },
		{ HTTP_GET, "/hub/nope", NULL, 404, NULL, NULL },
		{ HTTP_GET, "/hub/api/users/a/b/c/d/e", NULL, 404, NULL, NULL },
		{ HTTP_PUT, "/hub/api/users/alice", NULL, 405, NULL, NULL },
		{ HTTP_DELETE, "/hub/login", NULL, 405, NULL, NULL },
		{ HTTP_GET, "/hub/api/users/alice/server", NULL, 405, NULL, NULL },
		{ HTTP_GET, "/user/alice/", NULL, 404, NULL, NULL },
	};
	struct hub_match m;
	char allow[64];
	int status;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct hub_route *r = route_for(rows[i].meth, rows[i].path, &m, &status,
						      allow);

		if (!rows[i].fn) {
			assert_null(r);
			assert_int_equal(status, rows[i].status);
			continue;
		}
		assert_non_null(r);
		assert_ptr_equal(r->fn, rows[i].fn);
		if (rows[i].arg0)
			assert_string_equal(m.arg[0], rows[i].arg0);
		if (rows[i].arg1)
			assert_string_equal(m.arg[1], rows[i].arg1);
		assert_int_equal(m.narg, !!rows[i].arg0 + !!rows[i].arg1);
	}
}

static void test_match_allow_header(void **state)
{
	struct hub_match m;
	char allow[64];
	int status;

	assert_null(route_for(HTTP_PUT, "/hub/api/users/alice", &m, &status, allow));
	assert_int_equal(status, 405);
	assert_non_null(strstr(allow, "GET"));
	assert_non_null(strstr(allow, "HEAD"));
	assert_non_null(strstr(allow, "POST"));
	assert_non_null(strstr(allow, "PATCH"));
	assert_non_null(strstr(allow, "DELETE"));
	assert_null(strstr(allow, "PUT"));
}

/* Every unsafe API route needs authentication; no route lacks a handler. */
static void test_table_invariants(void **state)
{
	size_t i;

	for (i = 0; i < hub__nroutes; i++) {
		assert_non_null(hub__routes[i].fn);
		assert_true(hub__routes[i].pattern[0] == '/');
		if ((hub__routes[i].flags & HUB_API) && hub__routes[i].method != HTTP_GET)
			assert_true(hub__routes[i].flags & HUB_AUTH);
		/* only the login forms check CSRF themselves */
		if (hub__routes[i].flags & HUB_NOCSRF)
			assert_int_equal(hub__routes[i].method, HTTP_POST);
	}
}

#define PUB "https://hub.example.org"
#define HOST "hub.example.org"

static void expect_next(const char *in, const char *want)
{
	char *got = hub__next_url(in, PUB, HOST);

	if (!want) {
		if (got)
			fail_msg("next '%s' -> '%s', expected refusal", in, got);
		return;
	}
	if (!got)
		fail_msg("next '%s' refused, expected '%s'", in, want);
	assert_string_equal(got, want);
	free(got);
}

/* SECURITY.md JH-1 rows (JupyterHub test_login_redirect + ours). */
static void test_next_url_jh1(void **state)
{
	expect_next("/hub/admin", "/hub/admin");
	expect_next("/has?repo=https://host.git", "/has?repo=https://host.git");
	expect_next("/has#repo=https://host.git", "/has#repo=https://host.git");
	expect_next("relative/path", NULL);
	expect_next("https://other.domain", NULL);
	expect_next("ftp://other.domain", NULL);
	expect_next("//other.domain", NULL);
	expect_next("///other.domain/triple", NULL);
	expect_next("\\\\other.domain/backslashes", NULL);
	expect_next("%2F%2Fother.domain", NULL);
	expect_next("/\tother.domain", NULL);
	expect_next("javascript:alert(1)", NULL);
	expect_next("https://" HOST "//other.domain/", "/other.domain/");
	expect_next("https://" HOST "///other.domain/", "/other.domain/");
	expect_next("https://" HOST "////other.domain/", "/other.domain/");
}

static void test_next_url_more(void **state)
{
	expect_next("", NULL);
	expect_next(NULL, NULL);
	expect_next("https://" HOST "/user/alice/lab", "/user/alice/lab");
	expect_next("HTTPS://HUB.EXAMPLE.ORG/x", "/x");
	expect_next("//" HOST "/x", "/x");
	expect_next("https://" HOST, "/");
	expect_next("https://" HOST ".evil.com/x", NULL);
	expect_next("https://" HOST "@evil.com/x", NULL);
	expect_next("http://" HOST "/x", NULL); /* scheme differs from public_url */
	expect_next("/\\evil.com", NULL);
	expect_next("/a\r\nSet-Cookie: x=y", NULL);
}

static void test_form_get(void **state)
{
	const char *f = "a=1&next=%2Fhub%2Fhome&name=J+Doe&bad=%zz&nul=%00&empty=&flag";
	char *v;

	v = hub__form_get(f, strlen(f), "next");
	assert_string_equal(v, "/hub/home");
	free(v);
	v = hub__form_get(f, strlen(f), "name");
	assert_string_equal(v, "J Doe");
	free(v);
	v = hub__form_get(f, strlen(f), "empty");
	assert_string_equal(v, "");
	free(v);
	v = hub__form_get(f, strlen(f), "flag");
	assert_string_equal(v, "");
	free(v);
	assert_null(hub__form_get(f, strlen(f), "bad"));
	assert_null(hub__form_get(f, strlen(f), "nul"));
	assert_null(hub__form_get(f, strlen(f), "missing"));
	assert_null(hub__form_get(f, strlen(f), "nex"));
	/* a value cut at len is not read past it */
	v = hub__form_get("x=abc", 4, "x");
	assert_string_equal(v, "ab");
	free(v);
	assert_null(hub__form_get("x=%4", 4, "x"));
}

static void cookie_req(struct http_req *h, const char *v1, const char *v2)
{
	memset(h, 0, sizeof(*h));
	h->hdr[0] = (struct http_header){ "Cookie", 6, v1, strlen(v1) };
	h->nhdr = 1;
	if (v2) {
		h->hdr[1] = (struct http_header){ "cookie", 6, v2, strlen(v2) };
		h->nhdr = 2;
	}
}

static void test_cookie_get(void **state)
{
	static struct http_req h;
	struct gw_request req = { .http = &h };
	char *v;

	cookie_req(&h, "a=1; sess=abc; b=2", NULL);
	v = hub__cookie_get(&req, "sess");
	assert_string_equal(v, "abc");
	free(v);
	assert_null(hub__cookie_get(&req, "ses"));
	/* JH-15: two cookies of one name (tossed from a parent domain) */
	cookie_req(&h, "sess=forged", "sess=valid");
	assert_null(hub__cookie_get(&req, "sess"));
	cookie_req(&h, "sess=forged; sess=valid", NULL);
	assert_null(hub__cookie_get(&req, "sess"));
}

static void test_iso_time(void **state)
{
	cJSON *j = hub__iso_time(1700000000123LL);

	assert_true(cJSON_IsString(j));
	assert_string_equal(j->valuestring, "2023-11-14T22:13:20.123Z");
	cJSON_Delete(j);
	j = hub__iso_time(0);
	assert_true(cJSON_IsNull(j));
	cJSON_Delete(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_allow_header),
		cmocka_unit_test(test_table_invariants),
		cmocka_unit_test(test_next_url_jh1),
		cmocka_unit_test(test_next_url_more),
		cmocka_unit_test(test_form_get),
		cmocka_unit_test(test_cookie_get),
		cmocka_unit_test(test_iso_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
