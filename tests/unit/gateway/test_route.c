/* Unit tests for gateway/route.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/route.c"

static void test_set_get_exact_names(void **state)
{
	struct gw_routes *rt = gw_routes_new();
	struct err *err = NULL;

	assert_int_equal(gw_routes_set(rt, "alice", "", "unix:/run/a.sock", &err), 0);
	assert_int_equal(gw_routes_set(rt, "al", "", "127.0.0.1:8001", &err), 0);
	assert_int_equal(gw_routes_set(rt, "alice2", "", "127.0.0.1:8002", &err), 0);
	assert_int_equal(gw_routes_set(rt, "alice", "gpu", "[::1]:8003", &err), 0);
	assert_null(err);
	assert_int_equal(gw_routes_count(rt), 4);
	assert_string_equal(gw_routes_get(rt, "al", "")->upstream, "127.0.0.1:8001");
	assert_string_equal(gw_routes_get(rt, "alice", "")->upstream, "unix:/run/a.sock");
	assert_string_equal(gw_routes_get(rt, "alice", "gpu")->upstream, "[::1]:8003");
	/* whole names only: no prefix matches */
	assert_null(gw_routes_get(rt, "ali", ""));
	assert_null(gw_routes_get(rt, "alicex", ""));
	assert_null(gw_routes_get(rt, "alice", "gp"));
	assert_null(gw_routes_get(rt, "bob", ""));
	gw_routes_free(rt);
}

static void test_order_and_iteration(void **state)
{
	const char *names[] = { "m", "c", "x", "a", "q", "b" };
	struct gw_routes *rt = gw_routes_new();

	for (size_t i = 0; i < 6; i++)
		assert_int_equal(gw_routes_set(rt, names[i], "", "h:1", NULL), 0);
	for (size_t i = 1; i < gw_routes_count(rt); i++)
		assert_true(strcmp(gw_routes_at(rt, i - 1)->user, gw_routes_at(rt, i)->user) < 0);
	assert_null(gw_routes_at(rt, 6));
	gw_routes_free(rt);
}

static void test_replace_and_delete(void **state)
{
	struct gw_routes *rt = gw_routes_new();

	assert_int_equal(gw_routes_set(rt, "bob", "", "127.0.0.1:1", NULL), 0);
	gw_routes_touch(rt, "bob", "", INT64_MAX - 1);
	assert_int_equal(gw_routes_set(rt, "bob", "", "127.0.0.1:2", NULL), 0);
	assert_int_equal(gw_routes_count(rt), 1);
	assert_string_equal(gw_routes_get(rt, "bob", "")->upstream, "127.0.0.1:2");
	assert_true(gw_routes_get(rt, "bob", "")->last_activity_ms == INT64_MAX - 1);
	gw_routes_del(rt, "bob", "x");
	assert_int_equal(gw_routes_count(rt), 1);
	gw_routes_del(rt, "bob", "");
	assert_int_equal(gw_routes_count(rt), 0);
	assert_null(gw_routes_get(rt, "bob", ""));
	gw_routes_free(rt);
}

static void test_bad_upstreams(void **state)
{
	const char *bad[] = { "", "unix:", "unix:relative.sock", "localhost", "h:0", "h:65536",
			      "h:80x", ":80", "h:", "[::1:80", "a/b:80", "u@h:80", "h: 80", NULL };
	struct gw_routes *rt = gw_routes_new();

	for (size_t i = 0; bad[i]; i++) {
		struct err *err = NULL;

		assert_true(gw_routes_set(rt, "u", "", bad[i], &err) < 0);
		assert_non_null(err);
		assert_int_equal(err->code, EINVAL);
		err_free(&err);
	}
	assert_true(gw_routes_set(rt, "", "", "h:1", NULL) < 0);
	assert_int_equal(gw_routes_count(rt), 0);
	gw_routes_free(rt);
}

static void test_upstream_parse(void **state)
{
	bool is_unix;
	char *host;
	int port;

	assert_int_equal(gw_upstream_parse("[::1]:8888", &is_unix, &host, &port, NULL), 0);
	assert_false(is_unix);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8888);
	free(host);
	assert_int_equal(gw_upstream_parse("unix:/tmp/x.sock", &is_unix, &host, &port, NULL), 0);
	assert_true(is_unix);
	assert_string_equal(host, "/tmp/x.sock");
	free(host);
}

static int count_cb_n;
static void count_cb(void *arg, const struct gw_route *r)
{
	count_cb_n += r->last_activity_ms == *(int64_t *)arg;
}

static void test_touch_and_activity(void **state)
{
	struct gw_routes *rt = gw_routes_new();
	int64_t t = INT64_MAX - 5;

	gw_routes_set(rt, "a", "", "h:1", NULL);
	gw_routes_set(rt, "b", "", "h:1", NULL);
	gw_routes_touch(rt, "a", "", t);
	gw_routes_touch(rt, "a", "", 5); /* older: ignored */
	gw_routes_touch(rt, "zz", "", t); /* absent: no-op */
	count_cb_n = 0;
	gw_routes_activity(rt, count_cb, &t);
	assert_int_equal(count_cb_n, 1);
	gw_routes_free(rt);
}

/* Canonical encoded form of raw, as the proxy sees it. */
static char *canon(const char *raw)
{
	struct http_path p = { 0 };
	struct http_error e = { 0 };
	char *out;

	if (http_path_canon(raw, strlen(raw), &p, &e) != 0)
		fail_msg("'%s' not canonical: %s", raw, e.message);
	out = xstrdup(p.encoded);
	http_path_clear(&p);
	return out;
}

/* gw_route_strip on canon(raw); returns its result, *rest what is forwarded. */
static int strip(const char *raw, const char *user, const char *server, char **rest)
{
	char *enc = canon(raw);
	size_t skip = 999;
	int r = gw_route_strip(enc, user, server, &skip);

	*rest = r == 0 ? xstrdup(enc + skip) : NULL;
	if (r != 0)
		assert_int_equal(skip, 999); /* untouched unless forwarding */
	free(enc);
	return r;
}

static void expect_strip(const char *raw, const char *user, const char *server,
			 int want, const char *want_rest)
{
	char *rest = NULL;
	int r = strip(raw, user, server, &rest);

	if (r != want)
		fail_msg("%s (%s/%s): got %d, want %d", raw, user, server, r, want);
	if (want_rest && (!rest || strcmp(rest, want_rest) != 0))
		fail_msg("%s: forwarded '%s', want '%s'", raw, rest ? rest : "(null)", want_rest);
	free(rest);
}

static void test_strip_prefix(void **state)
{
	/* below the prefix: the rest is forwarded, starting with '/' */
	expect_strip("/user/alice/vscode/", "alice", "vscode", 0, "/");
	expect_strip("/user/alice/vscode/x", "alice", "vscode", 0, "/x");
	expect_strip("/user/alice/vscode/static/a.js", "alice", "vscode", 0, "/static/a.js");
	/* the bare prefix redirects */
	expect_strip("/user/alice/vscode", "alice", "vscode", 1, NULL);
	/* whole segments only */
	expect_strip("/user/alice/vscodeX", "alice", "vscode", -1, NULL);
	expect_strip("/user/alice/vscodeX/", "alice", "vscode", -1, NULL);
	expect_strip("/user/alicea/vscode/", "alice", "vscode", -1, NULL);
	expect_strip("/user/alic/vscode/", "alice", "vscode", -1, NULL);
	expect_strip("/user/alice/other/vscode/", "alice", "vscode", -1, NULL);
	/* an encoded slash is part of a segment, not a separator */
	expect_strip("/user/alice/vscode%2Fx/", "alice", "vscode", -1, NULL);
	expect_strip("/user/alice/vscode/a%2Fb", "alice", "vscode", 0, "/a%2Fb");
	expect_strip("/user/alice/vs%2Fcode/", "alice", "vs/code", 0, "/");
	/* dot segments are resolved before routing: no escape from the prefix */
	expect_strip("/user/alice/vscode/../../bob/vscode/", "alice", "vscode", -1, NULL);
	/* encoded names match the canonical encoding */
	expect_strip("/user/al%20ice/vs%20code/x", "al ice", "vs code", 0, "/x");
	expect_strip("/user/%61lice/vscode/x", "alice", "vscode", 0, "/x");
	/* default server: prefix is /user/<name> */
	expect_strip("/user/alice/", "alice", "", 0, "/");
	expect_strip("/user/alice/x/y", "alice", "", 0, "/x/y");
	expect_strip("/user/alice", "alice", "", 1, NULL);
	expect_strip("/user/alicex/", "alice", "", -1, NULL);
}

static void test_route_flags(void **state)
{
	struct gw_routes *rt = gw_routes_new();
	struct err *err = NULL;

	assert_int_equal(gw_routes_set_flags(rt, "alice", "vscode", "unix:/run/v.sock",
					     GW_ROUTE_STRIP_PREFIX, &err), 0);
	assert_int_equal(gw_routes_set(rt, "alice", "", "unix:/run/a.sock", &err), 0);
	assert_int_equal(gw_routes_get(rt, "alice", "vscode")->flags, GW_ROUTE_STRIP_PREFIX);
	assert_int_equal(gw_routes_get(rt, "alice", "")->flags, 0);
	/* a replaced route takes the new flags */
	assert_int_equal(gw_routes_set(rt, "alice", "vscode", "unix:/run/v.sock", &err), 0);
	assert_int_equal(gw_routes_get(rt, "alice", "vscode")->flags, 0);
	assert_int_equal(gw_routes_set_flags(rt, "alice", "", "unix:/run/a.sock",
					     GW_ROUTE_STRIP_PREFIX, &err), 0);
	assert_int_equal(gw_routes_get(rt, "alice", "")->flags, GW_ROUTE_STRIP_PREFIX);
	assert_true(gw_routes_set_flags(rt, "alice", "x", "bogus", GW_ROUTE_STRIP_PREFIX,
					&err) < 0);
	err_free(&err);
	assert_null(gw_routes_get(rt, "alice", "x"));
	gw_routes_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_exact_names),
		cmocka_unit_test(test_order_and_iteration),
		cmocka_unit_test(test_replace_and_delete),
		cmocka_unit_test(test_bad_upstreams),
		cmocka_unit_test(test_upstream_parse),
		cmocka_unit_test(test_touch_and_activity),
		cmocka_unit_test(test_strip_prefix),
		cmocka_unit_test(test_route_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
