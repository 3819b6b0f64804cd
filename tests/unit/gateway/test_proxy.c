/* Unit tests for gateway/proxy.c: the upstream Authorization of a route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "gateway/proxy.c"

static void req_head(const char *raw, struct http_req *req)
{
	struct http_limits lim;
	struct http_error e;

	http_limits_default(&lim);
	assert_int_equal(http_parse_request(raw, strlen(raw), &lim, req, &e), 1);
}

static void test_upstream_auth(void **s)
{
	static struct http_req req;
	struct gw_conn c = { 0 };
	struct buf b;
	struct auth_ident who = { .user = "alice" };
	const char *raw = "GET /user/alice/api HTTP/1.1\r\nHost: hub.example\r\n"
		"Authorization: token client-hub-token\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Version: 13\r\n\r\n";

	snprintf(c.ip, sizeof(c.ip), "127.0.0.1");
	req_head(raw, &req);
	buf_init(&b, 1 << 20);
	build_request(&b, &c, &req, &who, 0, "token pod-secret");
	assert_non_null(strstr(b.data, "\r\nAuthorization: token pod-secret\r\n"));
	assert_null(strstr(b.data, "client-hub-token"));
	assert_non_null(strstr(b.data, "Upgrade: websocket"));
	buf_reset(&b);
	build_request(&b, &c, &req, &who, 0, NULL);
	assert_null(strstr(b.data, "Authorization"));
	buf_release(&b);
	http_req_clear(&req);
}

static void test_route_auth(void **s)
{
	struct gw_routes *rt = gw_routes_new();
	struct err *e = NULL;

	assert_int_equal(gw_routes_set_auth(rt, "a", "", "10.0.0.1:8888", 0, "token x", &e), 0);
	assert_string_equal(gw_routes_get(rt, "a", "")->auth, "token x");
	assert_true(gw_routes_set_auth(rt, "a", "", "10.0.0.1:8888", 0, "token x\r\nX-Evil: 1",
				       &e) < 0);
	assert_null(strstr(e->msg, "Evil")); /* the value is never in a message */
	err_free(&e);
	assert_string_equal(gw_routes_get(rt, "a", "")->auth, "token x");
	assert_true(gw_routes_set_auth(rt, "a", "", "10.0.0.1:8888", 0, "", &e) < 0);
	err_free(&e);
	assert_int_equal(gw_routes_set_flags(rt, "a", "", "10.0.0.1:8888", 0, &e), 0);
	assert_null(gw_routes_get(rt, "a", "")->auth);
	gw_routes_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_auth),
		cmocka_unit_test(test_route_auth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
