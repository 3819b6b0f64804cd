/*
 * Unit tests for gateway/http.c and gateway/http_resp.c: the PRX-1..7,
 * PRX-15 and PRX-20 tables of SECURITY.md as data, limits on both sides,
 * and the chunked scanner fed whole and byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "gateway/http.c"
#include "gateway/http_resp.c"

#define R(s) s, sizeof(s) - 1

struct row {
	const char *name;
	const char *raw;
	size_t len;
	int status; /* 0: accepted */
};

static void limits(struct http_limits *lim)
{
	http_limits_default(lim);
	lim->body_max = 1 << 20;
}

static int parse(const char *raw, size_t len, struct http_req *req, struct http_error *e)
{
	struct http_limits lim;

	limits(&lim);
	memset(e, 0, sizeof(*e));
	return http_parse_request(raw, len, &lim, req, e);
}

static void check_rows(const struct row *rows, size_t n)
{
	struct http_req *req = malloc(sizeof(*req));
	struct http_error e;

	for (size_t i = 0; i < n; i++) {
		int r = parse(rows[i].raw, rows[i].len, req, &e);

		print_message("# %s\n", rows[i].name);
		if (rows[i].status == 0) {
			if (r != 1)
				fail_msg("%s: expected accept, got %d status %d (%s)", rows[i].name, r,
					 e.status, e.message ? e.message : "");
			http_req_clear(req);
			continue;
		}
		if (r != -1 || e.status != rows[i].status)
			fail_msg("%s: expected %d, got r=%d status %d", rows[i].name, rows[i].status, r,
				 e.status);
		assert_true(e.close);
		assert_non_null(e.message);
	}
	free(req);
}

#define CHECK_ROWS(t) check_rows(t, sizeof(t) / sizeof(t[0]))

#define POST_H "POST /user/alice/x HTTP/1.1\r\nHost: hub.example\r\n"
#define GET_H "GET /user/alice/x HTTP/1.1\r\nHost: hub.example\r\n"

/* PRX-1: CL.TE and TE.CL */
static const struct row prx1[] = {
	{ "CL then TE", R(POST_H "Content-Length: 31\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "0\r\n\r\nGET /__smuggled HTTP/1.1\r\n\r\n"), 400 },
	{ "TE then CL", R(POST_H "Transfer-Encoding: chunked\r\nContent-Length: 31\r\n\r\n"
			       "0\r\n\r\nGET /__smuggled HTTP/1.1\r\n\r\n"), 400 },
	{ "GET CL+TE", R(GET_H "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
};

/* PRX-2: TE variants. Decision 2: 411 on a body method, 400 otherwise. */
static const struct row prx2[] = {
	{ "chunked", R(POST_H "Transfer-Encoding: chunked\r\n\r\n"), 411 },
	{ "chunked, identity", R(POST_H "Transfer-Encoding: chunked, identity\r\n\r\n"), 411 },
	{ "identity", R(POST_H "Transfer-Encoding: identity\r\n\r\n"), 411 },
	{ ",chunked", R(POST_H "Transfer-Encoding: ,chunked\r\n\r\n"), 411 },
	{ "chunked,", R(POST_H "Transfer-Encoding: chunked,\r\n\r\n"), 411 },
	{ "xchunked", R(POST_H "Transfer-Encoding: xchunked\r\n\r\n"), 411 },
	{ "chunked VT", R(POST_H "Transfer-Encoding: chunked\x0b\r\n\r\n"), 400 },
	{ "quoted", R(POST_H "Transfer-Encoding: \"chunked\"\r\n\r\n"), 411 },
	{ "gzip, chunked", R(POST_H "Transfer-Encoding: gzip, chunked\r\n\r\n"), 411 },
	{ "Chunked", R(POST_H "Transfer-Encoding: Chunked\r\n\r\n"), 411 },
	{ "chunked HTAB", R(POST_H "Transfer-Encoding: chunked\t\r\n\r\n"), 411 },
	{ "PUT chunked", R("PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 411 },
	{ "PATCH chunked", R("PATCH /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 411 },
	{ "GET chunked", R(GET_H "Transfer-Encoding: chunked\r\n\r\n"), 400 },
	{ "DELETE chunked", R("DELETE /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
	{ "two TE lines", R(POST_H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
	{ "te lowercase name", R(POST_H "transfer-encoding: chunked\r\n\r\n"), 411 },
};

/* PRX-3: HTTP/1.0 + TE */
static const struct row prx3[] = {
	{ "1.0 POST TE", R("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
	{ "1.0 GET TE", R("GET /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400 },
};

/* PRX-4: Content-Length forms */
static const struct row prx4[] = {
	{ "+5", R(POST_H "Content-Length: +5\r\n\r\n"), 400 },
	{ "-1", R(POST_H "Content-Length: -1\r\n\r\n"), 400 },
	{ "0x10", R(POST_H "Content-Length: 0x10\r\n\r\n"), 400 },
	{ "1_0", R(POST_H "Content-Length: 1_0\r\n\r\n"), 400 },
	{ "5abc", R(POST_H "Content-Length: 5abc\r\n\r\n"), 400 },
	{ "1 2", R(POST_H "Content-Length: 1 2\r\n\r\n"), 400 },
	{ "empty", R(POST_H "Content-Length: \r\n\r\n"), 400 },
	{ "5,5", R(POST_H "Content-Length: 5,5\r\n\r\n"), 400 },
	{ "5, 6", R(POST_H "Content-Length: 5, 6\r\n\r\n"), 400 },
	{ "20 digits", R(POST_H "Content-Length: 99999999999999999999\r\n\r\n"), 413 },
	{ "19 digits over max", R(POST_H "Content-Length: 9999999999999999999\r\n\r\n"), 413 },
	{ "two identical", R(POST_H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400 },
	{ "two different", R(POST_H "Content-Length: 5\r\nContent-Length: 10\r\n\r\n"), 400 },
	{ "010", R(POST_H "Content-Length: 010\r\n\r\n0123456789"), 0 },
	{ "OWS around", R(POST_H "Content-Length: \t5 \r\n\r\n"), 0 },
	{ "POST without CL", R(POST_H "\r\n"), 411 },
	{ "PUT without CL", R("PUT /x HTTP/1.1\r\nHost: h\r\n\r\n"), 411 },
	{ "PATCH without CL", R("PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n"), 411 },
	{ "GET without CL", R(GET_H "\r\n"), 0 },
	{ "POST CL 0", R(POST_H "Content-Length: 0\r\n\r\n"), 0 },
};

/* PRX-5: header syntax */
static const struct row prx5[] = {
	{ "space before colon", R(POST_H "Content-Length : 5\r\n\r\n"), 400 },
	{ "tab before colon", R(POST_H "Content-Length\t: 5\r\n\r\n"), 400 },
	{ "HTAB first header", R("GET / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: h\r\n\r\n"), 400 },
	{ "SP first header", R("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400 },
	{ "obs-fold", R(GET_H "X-A: a\r\n b\r\n\r\n"), 400 },
	{ "bare LF endings", R("GET / HTTP/1.1\nHost: h\n\n"), 400 },
	{ "bare LF one line", R("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), 400 },
	{ "bare LF end", R("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400 },
	{ "bare CR in value", R(GET_H "X-A: a\rb\r\n\r\n"), 400 },
	{ "bare CR end", R("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"), 400 },
	{ "NUL in name", R(GET_H "X-\0A: a\r\n\r\n"), 400 },
	{ "NUL in value", R(GET_H "X-A: a\0b\r\n\r\n"), 400 },
	{ "DEL in value", R(GET_H "X-A: a\x7f\r\n\r\n"), 400 },
	{ "ESC in value", R(GET_H "X-A: a\x1b[0m\r\n\r\n"), 400 },
	{ "empty name", R(GET_H ": x\r\n\r\n"), 400 },
	{ "no colon", R(GET_H "NoColonHere\r\n\r\n"), 400 },
	{ "name 0x85", R(GET_H "X-\x85: a\r\n\r\n"), 400 },
	{ "name with space", R(GET_H "Bad Name: a\r\n\r\n"), 400 },
	{ "underscore", R(GET_H "X_Gateway_User: admin\r\n\r\n"), 400 },
	{ "name with slash", R(GET_H "X/Y: a\r\n\r\n"), 400 },
	{ "obs-text value ok", R(GET_H "X-A: caf\xc3\xa9\r\n\r\n"), 0 },
	{ "HTAB in value ok", R(GET_H "X-A: a\tb\r\n\r\n"), 0 },
	{ "empty value ok", R(GET_H "X-A:\r\n\r\n"), 0 },
	{ "empty line first", R("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
};

/* PRX-6: request line (the 16 KiB URI and 300-byte method are generated) */
static const struct row prx6[] = {
	{ "asterisk", R("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "OPTIONS asterisk", R("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "no slash", R("GET admin HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "HTTP/1.32", R("GET / HTTP/1.32\r\nHost: h\r\n\r\n"), 505 },
	{ "HTTP/2.0", R("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505 },
	{ "HTTP/1.2", R("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505 },
	{ "http/1.1 lowercase", R("GET / http/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "HTTP/1", R("GET / HTTP/1\r\nHost: h\r\n\r\n"), 400 },
	{ "HTTP/0.9", R("GET /\r\n\r\n"), 400 },
	{ "LF in line", R("GET /\nHTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target 0x80", R("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target 0xff", R("GET /a\xff HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target CTL", R("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target HTAB", R("GET /\ta HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target DEL", R("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "target fragment", R("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "query CTL", R("GET /a?\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "query 0x80", R("GET /a?x=\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "double space", R("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "space in target", R("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "trailing space", R("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400 },
	{ "TRACE", R("TRACE / HTTP/1.1\r\nHost: h\r\n\r\n"), 405 },
	{ "CONNECT", R("CONNECT hub.example:443 HTTP/1.1\r\nHost: hub.example:443\r\n\r\n"), 405 },
	{ "method 20 bytes", R("ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\nHost: h\r\n\r\n"), 0 },
	{ "method 21 bytes", R("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: h\r\n\r\n"), 501 },
	{ "method bad char", R("G(ET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "empty method", R(" / HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "backslash path", R("GET /a\\..\\b HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "%00 path", R("GET /user/bob%00/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "above root", R("GET /../x HTTP/1.1\r\nHost: h\r\n\r\n"), 400 },
	{ "absolute https", R("GET https://hub.example/x HTTP/1.1\r\nHost: hub.example\r\n\r\n"), 0 },
	{ "absolute ftp", R("GET ftp://hub.example/x HTTP/1.1\r\nHost: hub.example\r\n\r\n"), 400 },
	{ "absolute userinfo", R("GET http://u@hub.example/ HTTP/1.1\r\nHost: hub.example\r\n\r\n"), 400 },
	{ "HEAD", R("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), 0 },
	{ "OPTIONS", R("OPTIONS / HTTP/1.1\r\nHost: h\r\n\r\n"), 0 },
	{ "DELETE", R("DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n"), 0 },
};

/* PRX-7: Host */
static const struct row prx7[] = {
	{ "no Host 1.1", R("GET / HTTP/1.1\r\n\r\n"), 400 },
	{ "no Host 1.0", R("GET / HTTP/1.0\r\n\r\n"), 0 },
	{ "two Host", R("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400 },
	{ "Host a b", R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400 },
	{ "Host userinfo", R("GET / HTTP/1.1\r\nHost: hub.example:@evil\r\n\r\n"), 400 },
	{ "Host port 99999", R("GET / HTTP/1.1\r\nHost: hub.example:99999\r\n\r\n"), 400 },
	{ "Host port 0", R("GET / HTTP/1.1\r\nHost: hub.example:0\r\n\r\n"), 400 },
	{ "Host empty port", R("GET / HTTP/1.1\r\nHost: hub.example:\r\n\r\n"), 400 },
	{ "Host port 65535", R("GET / HTTP/1.1\r\nHost: hub.example:65535\r\n\r\n"), 0 },
	{ "Host empty", R("GET / HTTP/1.1\r\nHost: \r\n\r\n"), 400 },
	{ "Host ipv4", R("GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"), 0 },
	{ "Host ipv6", R("GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n"), 0 },
	{ "Host ipv6 zone", R("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n"), 400 },
	{ "Host slash", R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400 },
	{ "Host comma", R("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), 400 },
	{ "absolute mismatch", R("GET http://bob.domain/ HTTP/1.1\r\nHost: alice.domain\r\n\r\n"), 400 },
	{ "absolute match", R("GET http://alice.domain/x HTTP/1.1\r\nHost: Alice.Domain\r\n\r\n"), 0 },
	{ "absolute port mismatch", R("GET http://a.d:81/ HTTP/1.1\r\nHost: a.d\r\n\r\n"), 400 },
};

/* Connection/Expect/Upgrade options */
static const struct row opts[] = {
	{ "expect 100", R(POST_H "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n"), 0 },
	{ "expect other", R(POST_H "Content-Length: 3\r\nExpect: 200-ok\r\n\r\n"), 417 },
	{ "upgrade h2c", R(GET_H "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
				"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"), 400 },
	{ "upgrade websocket", R(GET_H "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0 },
	/* both sides of the no-body rule for upgrades (t5009 desync) */
	{ "upgrade, CL 0", R(GET_H "Connection: Upgrade\r\nUpgrade: websocket\r\n"
			     "Content-Length: 0\r\n\r\n"), 0 },
	{ "upgrade, CL 16", R(GET_H "Connection: Upgrade\r\nUpgrade: websocket\r\n"
			      "Content-Length: 16\r\n\r\n"), 400 },
};

static void test_prx1_cl_te(void **state)
{
	CHECK_ROWS(prx1);
}

static void test_prx2_te_variants(void **state)
{
	CHECK_ROWS(prx2);
}

static void test_prx3_http10_te(void **state)
{
	CHECK_ROWS(prx3);
}

static void test_prx4_content_length(void **state)
{
	CHECK_ROWS(prx4);
}

static void test_prx5_header_syntax(void **state)
{
	CHECK_ROWS(prx5);
}

static void test_prx6_request_line(void **state)
{
	CHECK_ROWS(prx6);
}

static void test_prx7_host(void **state)
{
	CHECK_ROWS(prx7);
}

static void test_options_rows(void **state)
{
	CHECK_ROWS(opts);
}

/* ---------------------------------------------------- accepted fields */

static struct http_req *parse_ok(const char *raw, size_t len)
{
	struct http_req *req = malloc(sizeof(*req));
	struct http_error e;

	assert_int_equal(parse(raw, len, req, &e), 1);
	return req;
}

static void drop(struct http_req *req)
{
	http_req_clear(req);
	free(req);
}

static void test_parse_fields(void **state)
{
	static const char raw[] = "PUT /user/alice/api/contents/a%20b?x=1&y=%2F HTTP/1.1\r\n"
				  "Host: hub.example:8000\r\nContent-Length: 010\r\n"
				  "X-Tok:  v  \r\n\r\n0123456789";
	struct http_req *req = parse_ok(raw, sizeof(raw) - 1);
	const struct http_header *h;
	size_t n;

	assert_int_equal(req->method, HTTP_PUT);
	assert_string_equal(req->method_str, "PUT");
	assert_int_equal(req->minor, 1);
	assert_string_equal(req->path.encoded, "/user/alice/api/contents/a%20b");
	assert_string_equal(req->path.seg[4], "a b");
	assert_string_equal(req->query, "x=1&y=%2F");
	assert_int_equal(req->content_length, 10);
	assert_int_equal(req->head_len, sizeof(raw) - 1 - 10);
	assert_true(req->keep_alive);
	assert_memory_equal(req->host, "hub.example:8000", req->host_len);
	assert_null(req->authority);
	h = http_req_header(req, "x-tok", &n);
	assert_non_null(h);
	assert_int_equal(n, 1);
	assert_int_equal(h->value_len, 1);
	assert_memory_equal(h->value, "v", 1);
	assert_null(http_req_header(req, "X-Missing", &n));
	assert_int_equal(n, 0);
	drop(req);
}

static void test_parse_keep_alive(void **state)
{
	struct http_req *req;

	req = parse_ok(R("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
	assert_false(req->keep_alive);
	drop(req);
	req = parse_ok(R("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"));
	assert_false(req->keep_alive);
	drop(req);
	req = parse_ok(R("GET / HTTP/1.0\r\n\r\n"));
	assert_false(req->keep_alive);
	assert_null(req->query);
	drop(req);
	req = parse_ok(R("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
	assert_true(req->keep_alive);
	drop(req);
}

static void test_parse_expect_upgrade(void **state)
{
	struct http_req *req;

	req = parse_ok(R(POST_H "Content-Length: 3\r\nExpect: 100-Continue\r\n\r\n"));
	assert_true(req->expect_continue);
	assert_false(req->ws_upgrade);
	drop(req);
	req = parse_ok(R(GET_H "Connection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"));
	assert_true(req->ws_upgrade);
	assert_false(req->expect_continue);
	drop(req);
}

static void test_parse_absolute_form(void **state)
{
	struct http_req *req =
		parse_ok(R("GET http://alice.domain:8080?q=1 HTTP/1.1\r\nHost: alice.domain:8080\r\n\r\n"));

	assert_int_equal(req->authority_len, strlen("alice.domain:8080"));
	assert_memory_equal(req->authority, "alice.domain:8080", req->authority_len);
	assert_string_equal(req->path.encoded, "/");
	assert_string_equal(req->query, "q=1");
	drop(req);
	req = parse_ok(R("GET http://h10.example/x HTTP/1.0\r\n\r\n"));
	assert_memory_equal(req->host, "h10.example", req->host_len);
	drop(req);
}

/* Pipelined bytes after the head are not part of it (PRX-19). */
static void test_parse_pipelined(void **state)
{
	static const char raw[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_req *req = parse_ok(raw, sizeof(raw) - 1);
	size_t first = req->head_len;

	assert_string_equal(req->path.encoded, "/a");
	drop(req);
	req = parse_ok(raw + first, sizeof(raw) - 1 - first);
	assert_string_equal(req->path.encoded, "/b");
	drop(req);
}

/* Every prefix of a valid head needs more bytes; the whole head parses. */
static void test_parse_incremental(void **state)
{
	static const char raw[] = POST_H "Content-Length: 2\r\nX-A: b\r\n\r\nhi";
	size_t head = sizeof(raw) - 1 - 2;
	struct http_req *req = malloc(sizeof(*req));
	struct http_error e;

	for (size_t i = 0; i < head; i++)
		assert_int_equal(parse(raw, i, req, &e), 0);
	for (size_t i = head; i <= sizeof(raw) - 1; i++) {
		assert_int_equal(parse(raw, i, req, &e), 1);
		assert_int_equal(req->head_len, head);
		http_req_clear(req);
	}
	free(req);
}

/* An error in a complete line is reported before the head is complete. */
static void test_parse_early_reject(void **state)
{
	struct http_req req;
	struct http_error e;

	assert_int_equal(parse(R("TRACE / HTTP/1.1\r\n"), &req, &e), -1);
	assert_int_equal(e.status, 405);
	assert_int_equal(parse(R("GET / HTTP/1.1\r\nX\rY"), &req, &e), -1);
	assert_int_equal(e.status, 400);
	assert_int_equal(parse(R("GET / HTTP/1.1\r\nX_Y: 1\r\n"), &req, &e), -1);
	assert_int_equal(e.status, 400);
}

/* ---------------------------------------------------------- PRX-15 sizes */

static char *make_req(size_t target_len, size_t hdr_value_len, size_t nhdr, size_t *len)
{
	size_t cap = target_len + hdr_value_len + nhdr * 32 + 128, o = 0;
	char *p = malloc(cap);

	o += (size_t)snprintf(p + o, cap - o, "GET /");
	memset(p + o, 'a', target_len - 1);
	o += target_len - 1;
	o += (size_t)snprintf(p + o, cap - o, " HTTP/1.1\r\nHost: h\r\n");
	if (hdr_value_len) {
		o += (size_t)snprintf(p + o, cap - o, "X-Big: ");
		memset(p + o, 'v', hdr_value_len);
		o += hdr_value_len;
		o += (size_t)snprintf(p + o, cap - o, "\r\n");
	}
	for (size_t i = 0; i < nhdr; i++)
		o += (size_t)snprintf(p + o, cap - o, "X-H%zu: v\r\n", i);
	o += (size_t)snprintf(p + o, cap - o, "\r\n");
	*len = o;
	return p;
}

/* Returns the status for the request (0 = accepted); also checks that the
 * same bytes without the final CRLF already fail with that status. */
static int status_raw(char *raw, size_t len, bool check_partial)
{
	struct http_req *req = malloc(sizeof(*req));
	struct http_error e;
	int r = parse(raw, len, req, &e), st = r == 1 ? 0 : e.status;

	assert_int_not_equal(r, 0);
	if (r == 1)
		http_req_clear(req);
	if (check_partial && st) {
		assert_int_equal(parse(raw, len - 2, req, &e), -1);
		assert_int_equal(e.status, st);
	}
	free(req);
	free(raw);
	return st;
}

/* Builds a request with make_req() and returns status_raw() of it; *len
 * receives its length. */
static int status_of(size_t target, size_t hv, size_t nhdr, bool check_partial, size_t *len)
{
	char *raw = make_req(target, hv, nhdr, len);

	return status_raw(raw, *len, check_partial);
}

static void test_prx15_request_line(void **state)
{
	size_t len, fixed = strlen("GET  HTTP/1.1");

	assert_int_equal(status_of(8192 - fixed, 0, 0, false, &len), 0);
	assert_int_equal(status_of(8193 - fixed, 0, 0, true, &len), 414);
	assert_int_equal(status_of(16384, 0, 0, true, &len), 414);
}

static void test_prx15_header_line(void **state)
{
	size_t len, fixed = strlen("X-Big: ");

	assert_int_equal(status_of(1, 8192 - fixed, 0, false, &len), 0);
	assert_int_equal(status_of(1, 8193 - fixed, 0, true, &len), 431);
	assert_int_equal(status_of(1, 20480, 0, true, &len), 431);
}

static void test_prx15_header_count(void **state)
{
	size_t len;

	/* Host counts: 99 more make exactly 100 */
	assert_int_equal(status_of(1, 0, 99, false, &len), 0);
	assert_int_equal(status_of(1, 0, 100, false, &len), 431);
	assert_int_equal(status_of(1, 0, 150, false, &len), 431);
}

/* "GET /a..a HTTP/1.1", Host, X-A and X-B with values of the given sizes. */
static char *make_req3(size_t target, size_t va, size_t vb, size_t *len)
{
	size_t cap = target + va + vb + 128, o = 0;
	char *p = malloc(cap);

	o += (size_t)snprintf(p, cap, "GET /");
	memset(p + o, 'a', target - 1);
	o += target - 1;
	o += (size_t)snprintf(p + o, cap - o, " HTTP/1.1\r\nHost: h\r\nX-A: ");
	memset(p + o, 'v', va);
	o += va;
	o += (size_t)snprintf(p + o, cap - o, "\r\nX-B: ");
	memset(p + o, 'w', vb);
	o += vb;
	o += (size_t)snprintf(p + o, cap - o, "\r\n\r\n");
	*len = o;
	return p;
}

static void test_prx15_header_bytes(void **state)
{
	/* fixed bytes: "GET " " HTTP/1.1\r\n" "Host: h\r\n" "X-A: \r\n" "X-B: \r\n" "\r\n" */
	size_t fixed = 4 + 11 + 9 + 7 + 7 + 2, len;
	size_t target = 5000, va = 6000, vb = 16384 - fixed - target - va;
	char *raw;

	raw = make_req3(target, va, vb, &len);
	assert_int_equal(len, 16384);
	assert_int_equal(status_raw(raw, len, false), 0);
	raw = make_req3(target, va, vb + 1, &len);
	assert_int_equal(len, 16385);
	assert_int_equal(status_raw(raw, len, false), 431);
	/* an unfinished head is refused as soon as it passes the limit */
	raw = make_req3(target, va, vb + 100, &len);
	{
		struct http_req *req = malloc(sizeof(*req));
		struct http_error e;

		assert_int_equal(parse(raw, 16384, req, &e), 0);
		assert_int_equal(parse(raw, 16385, req, &e), -1);
		assert_int_equal(e.status, 431);
		free(req);
		free(raw);
	}
	/* 64 KiB of headers, each line small */
	assert_int_equal(status_of(1, 0, 8000, true, &len), 431);
}

/* A line exactly at the limit, fed byte by byte, is never refused early. */
static void test_prx15_limit_bytewise(void **state)
{
	size_t len, fixed = strlen("X-Big: ");
	char *raw = make_req(1, 8192 - fixed, 0, &len);
	struct http_req *req = malloc(sizeof(*req));
	struct http_error e;

	for (size_t i = 0; i < len; i++)
		assert_int_equal(parse(raw, i, req, &e), 0);
	assert_int_equal(parse(raw, len, req, &e), 1);
	http_req_clear(req);
	free(req);
	free(raw);
}

static void test_prx15_body_max(void **state)
{
	struct http_req req;
	struct http_error e;
	char raw[128];
	int n;

	n = snprintf(raw, sizeof(raw), POST_H "Content-Length: %d\r\n\r\n", 1 << 20);
	assert_int_equal(parse(raw, (size_t)n, &req, &e), 1);
	assert_int_equal(req.content_length, 1 << 20);
	http_req_clear(&req);
	n = snprintf(raw, sizeof(raw), POST_H "Content-Length: %d\r\n\r\n", (1 << 20) + 1);
	assert_int_equal(parse(raw, (size_t)n, &req, &e), -1);
	assert_int_equal(e.status, 413);
	assert_true(e.close);
}

static void test_prx6_generated(void **state)
{
	char *raw = malloc(512);
	struct http_req req;
	struct http_error e;
	int n;

	memset(raw, 'M', 300);
	n = 300 + snprintf(raw + 300, 212, " / HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(parse(raw, (size_t)n, &req, &e), -1);
	assert_int_equal(e.status, 501);
	free(raw);
}

/* ------------------------------------------------------------- helpers */

static void test_list_and_host(void **state)
{
	const char *v = " a ,, B\t, c d ,";
	const char *p = v, *t;
	size_t tl, n = 0;

	while (http_list_next(&p, v + strlen(v), &t, &tl))
		n++;
	assert_int_equal(n, 3);
	assert_true(http_list_has(v, strlen(v), "b"));
	assert_true(http_list_has(v, strlen(v), "c d"));
	assert_false(http_list_has(v, strlen(v), "c"));
	assert_false(http_list_has("", 0, "a"));
	assert_true(http_host_valid(R("hub.example")));
	assert_true(http_host_valid(R("[2001:db8::1]")));
	assert_false(http_host_valid(R("[2001:db8::1]:")));
	assert_false(http_host_valid(R("[::1")));
	assert_false(http_host_valid(R("a:1:2")));
	assert_false(http_host_valid(R("a%41")));
	assert_false(http_host_valid(R(":80")));
}

static void test_reason(void **state)
{
	static const int codes[] = { 100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307,
				     308, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414, 415,
				     417, 421, 426, 429, 431, 500, 501, 502, 503, 504, 505 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_string_not_equal(http_reason(codes[i]), "Unknown");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(299), "Unknown");
}

/* ---------------------------------------------------- PRX-20 responses */

struct resp_row {
	const char *name;
	const char *raw;
	size_t len;
	int ok; /* 1 accepted, -1 -> 502 */
};

static const struct resp_row prx20[] = {
	{ "CL+TE", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"), 1 },
	{ "CL 5abc", R("HTTP/1.1 200 OK\r\nContent-Length: 5abc\r\n\r\n"), -1 },
	{ "CL two values", R("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"), -1 },
	{ "CL two lines", R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), -1 },
	{ "CL +5", R("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"), -1 },
	{ "CL 20 digits", R("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"), -1 },
	{ "bare LF in value", R("HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: x=1\r\n\r\n"), -1 },
	{ "bare CR in value", R("HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: x=1\r\n\r\n"), -1 },
	{ "TE gzip", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), -1 },
	{ "TE gzip, chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -1 },
	{ "two TE", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), -1 },
	{ "status 2 digits", R("HTTP/1.1 20 OK\r\n\r\n"), -1 },
	{ "status 600", R("HTTP/1.1 600 X\r\n\r\n"), -1 },
	{ "HTTP/2", R("HTTP/2 200 OK\r\n\r\n"), -1 },
	{ "HTTP/1.2", R("HTTP/1.2 200 OK\r\n\r\n"), -1 },
	{ "no reason", R("HTTP/1.1 204\r\n\r\n"), 1 },
	{ "empty reason", R("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), 1 },
	{ "reason CTL", R("HTTP/1.1 200 O\x01K\r\n\r\n"), -1 },
	{ "underscore name", R("HTTP/1.1 200 OK\r\nX_A: 1\r\n\r\n"), -1 },
	{ "obs-fold", R("HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n"), -1 },
	{ "101", R("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), 1 },
};

static void test_prx20_response_rows(void **state)
{
	struct http_limits lim;
	struct http_resp *resp = malloc(sizeof(*resp));
	struct http_error e;

	limits(&lim);
	for (size_t i = 0; i < sizeof(prx20) / sizeof(prx20[0]); i++) {
		int r = http_parse_response(prx20[i].raw, prx20[i].len, &lim, resp, &e);

		if (r != prx20[i].ok)
			fail_msg("%s: expected %d got %d", prx20[i].name, prx20[i].ok, r);
		if (r < 0) {
			assert_int_equal(e.status, 502);
			assert_true(e.close);
		}
	}
	free(resp);
}

static void test_prx20_cl_te_splitting(void **state)
{
	static const char raw[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				  "Content-Length: 30\r\n\r\n0\r\n\r\nResponse splitting attach";
	struct http_limits lim;
	struct http_resp *resp = malloc(sizeof(*resp));
	struct http_error e;
	struct http_chunked c;
	bool done;
	long n;

	limits(&lim);
	assert_int_equal(http_parse_response(raw, sizeof(raw) - 1, &lim, resp, &e), 1);
	assert_true(resp->chunked);
	assert_true(resp->cl_removed);
	assert_int_equal(resp->content_length, -1);
	assert_false(resp->keep_alive);
	http_chunked_init(&c);
	n = http_chunked_feed(&c, raw + resp->head_len, sizeof(raw) - 1 - resp->head_len, &done);
	assert_int_equal(n, 5); /* "0\r\n\r\n": the junk is left unconsumed */
	assert_true(done);
	free(resp);
}

static void test_response_fields(void **state)
{
	struct http_limits lim;
	struct http_resp *resp = malloc(sizeof(*resp));
	struct http_error e;

	limits(&lim);
	assert_int_equal(http_parse_response(R("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n"
						"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nmissing"),
					      &lim, resp, &e), 1);
	assert_int_equal(resp->status, 404);
	assert_int_equal(resp->minor, 1);
	assert_int_equal(resp->content_length, 7);
	assert_true(resp->keep_alive);
	{
		size_t n;

		assert_non_null(http_resp_header(resp, "set-cookie", &n));
		assert_int_equal(n, 2);
	}
	/* no framing on a 200: delimited by close */
	assert_int_equal(http_parse_response(R("HTTP/1.1 200 OK\r\n\r\n"), &lim, resp, &e), 1);
	assert_false(resp->keep_alive);
	assert_int_equal(http_parse_response(R("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), &lim,
					      resp, &e), 1);
	assert_false(resp->keep_alive);
	assert_int_equal(http_parse_response(R("HTTP/1.1 304 Not Modified\r\n\r\n"), &lim, resp, &e), 1);
	assert_true(resp->keep_alive);
	assert_int_equal(http_parse_response(R("HTTP/1.1 200 OK\r\nContent-"), &lim, resp, &e), 0);
	free(resp);
}

/* ------------------------------------------------------------- chunked */

struct chunk_row {
	const char *name;
	const char *raw;
	size_t len;
	long consumed; /* -1: error */
};

static const struct chunk_row chunk_rows[] = {
	{ "simple", R("5\r\nhello\r\n0\r\n\r\n"), 15 },
	{ "two chunks + junk", R("3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\nXYZ"), 28 },
	{ "upper hex", R("aB\r\n"), 4 },
	{ "ext", R("5;name=val\r\nhello\r\n0;x\r\n\r\n"), 26 },
	{ "trailer", R("1\r\na\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n"), 25 },
	{ "leading zeros", R("0005\r\nhello\r\n0\r\n\r\n"), 18 },
	{ "plus", R("+5\r\nhello\r\n0\r\n\r\n"), -1 },
	{ "minus", R("-1\r\n"), -1 },
	{ "0x", R("0x5\r\nhello\r\n0\r\n\r\n"), -1 },
	{ "space before", R(" 5\r\nhello\r\n0\r\n\r\n"), -1 },
	{ "space after", R("5 \r\nhello\r\n0\r\n\r\n"), -1 },
	{ "empty size", R("\r\nhello"), -1 },
	{ "bare LF size", R("5\nhello\r\n0\r\n\r\n"), -1 },
	{ "bare CR size", R("5\rhello"), -1 },
	{ "no CRLF after data", R("5\r\nhelloX\r\n0\r\n\r\n"), -1 },
	{ "bare LF after data", R("5\r\nhello\n0\r\n\r\n"), -1 },
	{ "17 hex digits", R("10000000000000000\r\n"), -1 },
	{ "16 hex digits", R("0000000000000001\r\nx\r\n0\r\n\r\n"), 26 },
	{ "ext LF", R("5;a\nb\r\n"), -1 },
	{ "ext NUL", R("5;a\0b\r\n"), -1 },
	{ "trailer obs-fold", R("0\r\nX: 1\r\n 2\r\n\r\n"), -1 },
	{ "trailer no colon", R("0\r\nXY\r\n\r\n"), -1 },
	{ "trailer bare LF", R("0\r\nX: 1\n\r\n"), -1 },
	{ "trailer CTL", R("0\r\nX: \x01\r\n\r\n"), -1 },
	{ "final bare LF", R("0\r\n\n"), -1 },
	{ "incomplete", R("5\r\nhel"), 6 },
};

/* Feeds p one byte at a time, as a slow peer would. */
static long feed_bytewise(const char *p, size_t len, bool *done)
{
	struct http_chunked c;
	long total = 0;

	http_chunked_init(&c);
	*done = false;
	for (size_t i = 0; i < len && !*done; i++) {
		long n = http_chunked_feed(&c, p + i, 1, done);

		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

static void test_chunked_rows(void **state)
{
	for (size_t i = 0; i < sizeof(chunk_rows) / sizeof(chunk_rows[0]); i++) {
		const struct chunk_row *r = &chunk_rows[i];
		struct http_chunked c;
		bool done1, done2;
		long whole, bytes;

		http_chunked_init(&c);
		whole = http_chunked_feed(&c, r->raw, r->len, &done1);
		bytes = feed_bytewise(r->raw, r->len, &done2);
		if (whole != r->consumed)
			fail_msg("%s: expected %ld got %ld", r->name, r->consumed, whole);
		if (bytes != whole || (whole >= 0 && done1 != done2))
			fail_msg("%s: bytewise %ld/%d != whole %ld/%d", r->name, bytes, done2, whole,
				 done1);
	}
}

static void test_chunked_limits(void **state)
{
	char *p = malloc(9000);
	struct http_chunked c;
	bool done;
	size_t n;

	/* extension of exactly 256 bytes after ';' passes, 257 fails */
	for (int extra = 0; extra <= 1; extra++) {
		n = (size_t)snprintf(p, 9000, "1;");
		memset(p + n, 'e', 256 + (size_t)extra);
		n += 256 + (size_t)extra;
		n += (size_t)snprintf(p + n, 9000 - n, "\r\nx\r\n0\r\n\r\n");
		http_chunked_init(&c);
		assert_int_equal(http_chunked_feed(&c, p, n, &done), extra ? -1 : (long)n);
	}
	/* 8 KiB of trailers passes, more fails */
	for (int extra = 0; extra <= 1; extra++) {
		/* counted: "T:" + value + CRLF + the final CR */
		size_t vl = 8192 - 2 - 3 + (size_t)extra;

		n = (size_t)snprintf(p, 9000, "0\r\nT:");
		memset(p + n, 'v', vl);
		n += vl;
		n += (size_t)snprintf(p + n, 9000 - n, "\r\n\r\n");
		http_chunked_init(&c);
		assert_int_equal(http_chunked_feed(&c, p, n, &done), extra ? -1 : (long)n);
	}
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prx1_cl_te),
		cmocka_unit_test(test_prx2_te_variants),
		cmocka_unit_test(test_prx3_http10_te),
		cmocka_unit_test(test_prx4_content_length),
		cmocka_unit_test(test_prx5_header_syntax),
		cmocka_unit_test(test_prx6_request_line),
		cmocka_unit_test(test_prx6_generated),
		cmocka_unit_test(test_prx7_host),
		cmocka_unit_test(test_options_rows),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_keep_alive),
		cmocka_unit_test(test_parse_expect_upgrade),
		cmocka_unit_test(test_parse_absolute_form),
		cmocka_unit_test(test_parse_pipelined),
		cmocka_unit_test(test_parse_incremental),
		cmocka_unit_test(test_parse_early_reject),
		cmocka_unit_test(test_prx15_request_line),
		cmocka_unit_test(test_prx15_header_line),
		cmocka_unit_test(test_prx15_header_count),
		cmocka_unit_test(test_prx15_header_bytes),
		cmocka_unit_test(test_prx15_limit_bytewise),
		cmocka_unit_test(test_prx15_body_max),
		cmocka_unit_test(test_list_and_host),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_prx20_response_rows),
		cmocka_unit_test(test_prx20_cl_te_splitting),
		cmocka_unit_test(test_response_fields),
		cmocka_unit_test(test_chunked_rows),
		cmocka_unit_test(test_chunked_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
