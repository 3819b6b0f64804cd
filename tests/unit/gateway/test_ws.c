/*
 * Unit tests for gateway/ws.c: PRX-23 handshake rows, the RFC 6455 accept
 * value, frame header parsing (PRX-25 inputs) and close frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "gateway/ws.c"

#define R(s) s, sizeof(s) - 1

#define WS_LINE "GET /user/alice/api/kernels/k/channels HTTP/1.1\r\nHost: hub.example\r\n"
#define WS_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define WS_VER "Sec-WebSocket-Version: 13\r\n"
#define WS_UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"

struct ws_row {
	const char *name;
	const char *raw;
	size_t len;
	int parse_status;  /* non-zero: http_parse_request refuses already */
	int status;        /* ws_validate_upgrade: 0 ok, else status */
};

static const struct ws_row rows[] = {
	{ "valid", R(WS_LINE WS_UPG WS_KEY WS_VER "\r\n"), 0, 0 },
	{ "connection list", R(WS_LINE "Upgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n"
			       WS_KEY WS_VER "\r\n"), 0, 0 },
	{ "two Connection lines", R(WS_LINE "Upgrade: websocket\r\nConnection: keep-alive\r\n"
				    "Connection: Upgrade\r\n" WS_KEY WS_VER "\r\n"), 0, 0 },
	{ "missing key", R(WS_LINE WS_UPG WS_VER "\r\n"), 0, 400 },
	{ "short key", R(WS_LINE WS_UPG "Sec-WebSocket-Key: abc\r\n" WS_VER "\r\n"), 0, 400 },
	{ "key of 15 bytes", R(WS_LINE WS_UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" WS_VER "\r\n"), 0, 400 },
	{ "key of 17 bytes", R(WS_LINE WS_UPG "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" WS_VER "\r\n"), 0, 400 },
	{ "key bad padding bits", R(WS_LINE WS_UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" WS_VER "\r\n"), 0, 400 },
	{ "key bad char", R(WS_LINE WS_UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ==\r\n" WS_VER "\r\n"), 0, 400 },
	{ "two keys", R(WS_LINE WS_UPG WS_KEY WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "upgrade list", R(WS_LINE "Upgrade: proto1, websocket, proto2\r\nConnection: Upgrade\r\n"
			    WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "two Upgrade lines", R(WS_LINE "Upgrade: websocket\r\nUpgrade: websocket\r\n"
				 "Connection: Upgrade\r\n" WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "h2c", R(WS_LINE "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
		   "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"), 400, 0 },
	{ "version 8", R(WS_LINE WS_UPG WS_KEY "Sec-WebSocket-Version: 8\r\n\r\n"), 0, 426 },
	{ "version missing", R(WS_LINE WS_UPG WS_KEY "\r\n"), 0, 426 },
	{ "version 13, 8", R(WS_LINE WS_UPG WS_KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n"), 0, 426 },
	{ "POST", R("POST /user/alice/api/kernels/k/channels HTTP/1.1\r\nHost: h\r\n"
		    "Content-Length: 0\r\n" WS_UPG WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "HTTP/1.0", R("GET /x HTTP/1.0\r\nHost: h\r\n" WS_UPG WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "no Connection upgrade", R(WS_LINE "Upgrade: websocket\r\nConnection: keep-alive\r\n"
				     WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "Connection upgrades", R(WS_LINE "Upgrade: websocket\r\nConnection: upgrades\r\n"
				   WS_KEY WS_VER "\r\n"), 0, 400 },
	{ "no Upgrade", R(WS_LINE "Connection: Upgrade\r\n" WS_KEY WS_VER "\r\n"), 0, 400 },
};

static void test_prx23_handshake(void **state)
{
	struct http_limits lim;
	struct http_req *req = malloc(sizeof(*req));

	http_limits_default(&lim);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct http_error e = { 0 };
		int r = http_parse_request(rows[i].raw, rows[i].len, &lim, req, &e);

		if (rows[i].parse_status) {
			if (r != -1 || e.status != rows[i].parse_status)
				fail_msg("%s: parse gave %d/%d", rows[i].name, r, e.status);
			continue;
		}
		if (r != 1)
			fail_msg("%s: parse refused %d (%s)", rows[i].name, e.status, e.message);
		r = ws_validate_upgrade(req, &e);
		if (rows[i].status == 0 ? r != 0 : r != -1 || e.status != rows[i].status)
			fail_msg("%s: validate gave %d/%d, want %d", rows[i].name, r, e.status,
				 rows[i].status);
		if (r < 0)
			assert_int_equal(e.close, e.status != 426);
		http_req_clear(req);
	}
	free(req);
}

/* A hand-built request, as a caller might construct one: h2c is refused. */
static void test_validate_h2c_direct(void **state)
{
	struct http_req *req = calloc(1, sizeof(*req));
	struct http_error e;

	req->method = HTTP_GET;
	req->minor = 1;
	req->hdr[0] = (struct http_header){ "Upgrade", 7, "h2c", 3 };
	req->hdr[1] = (struct http_header){ "Connection", 10, "Upgrade, HTTP2-Settings", 23 };
	req->nhdr = 2;
	assert_int_equal(ws_validate_upgrade(req, &e), -1);
	assert_int_equal(e.status, 400);
	free(req);
}

static void test_accept_rfc6455(void **state)
{
	char out[29];

	/* RFC 6455 section 1.3 */
	ws_accept_for_key(R("dGhlIHNhbXBsZSBub25jZQ=="), out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ws_accept_for_key(R("AAAAAAAAAAAAAAAAAAAAAA=="), out);
	assert_int_equal(strlen(out), 28);
	assert_string_not_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

struct frame_row {
	const char *name;
	uint8_t b[16];
	size_t len;
	int r;
	uint64_t payload_len;
	size_t hdr_len;
};

static const struct frame_row frames[] = {
	{ "text 5 masked", { 0x81, 0x85, 1, 2, 3, 4 }, 6, 1, 5, 6 },
	{ "binary unmasked", { 0x82, 0x03 }, 2, 1, 3, 2 },
	{ "continuation", { 0x00, 0x80, 0, 0, 0, 0 }, 6, 1, 0, 6 },
	{ "16-bit len", { 0x82, 0xfe, 0x01, 0x00, 9, 9, 9, 9 }, 8, 1, 256, 8 },
	{ "64-bit len", { 0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 9, 9, 9, 9 }, 14, 1, 1ULL << 32, 14 },
	{ "64-bit MSB", { 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 10, -1, 0, 0 },
	{ "ping 125", { 0x89, 0x7d }, 2, 1, 125, 2 },
	{ "ping 126", { 0x89, 0x7e, 0, 126 }, 4, -1, 0, 0 },
	{ "close 127", { 0x88, 0x7f }, 2, -1, 0, 0 },
	{ "ping not FIN", { 0x09, 0x00 }, 2, -1, 0, 0 },
	{ "pong", { 0x8a, 0x80, 1, 2, 3, 4 }, 6, 1, 0, 6 },
	{ "rsv1 reported", { 0xc1, 0x01 }, 2, 1, 1, 2 },
	{ "opcode 3", { 0x83, 0x00 }, 2, -1, 0, 0 },
	{ "opcode 7", { 0x87, 0x00 }, 2, -1, 0, 0 },
	{ "opcode B", { 0x8b, 0x00 }, 2, -1, 0, 0 },
	{ "opcode F", { 0x8f, 0x00 }, 2, -1, 0, 0 },
	{ "one byte", { 0x81 }, 1, 0, 0, 0 },
	{ "16-bit short", { 0x82, 0x7e, 0x01 }, 3, 0, 0, 0 },
	{ "mask short", { 0x81, 0x85, 1, 2, 3 }, 5, 0, 0, 0 },
	{ "64-bit short", { 0x82, 0xff, 0, 0, 0, 0 }, 6, 0, 0, 0 },
};

static void test_frame_rows(void **state)
{
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		const struct frame_row *f = &frames[i];
		struct ws_frame_hdr h;
		int r = ws_parse_frame_hdr(f->b, f->len, &h);

		if (r != f->r)
			fail_msg("%s: got %d want %d", f->name, r, f->r);
		if (r != 1)
			continue;
		assert_int_equal(h.payload_len, f->payload_len);
		assert_int_equal(h.hdr_len, f->hdr_len);
		assert_int_equal(h.opcode, f->b[0] & 0x0f);
		assert_int_equal(h.fin, (f->b[0] & 0x80) != 0);
		assert_int_equal(h.masked, (f->b[1] & 0x80) != 0);
		if (h.masked)
			assert_memory_equal(h.mask, f->b + h.hdr_len - 4, 4);
		/* every shorter prefix needs more bytes */
		for (size_t n = 0; n < h.hdr_len; n++)
			assert_int_equal(ws_parse_frame_hdr(f->b, n, &h), 0);
	}
}

static void test_build_close(void **state)
{
	uint8_t out[256];
	char long_reason[200];
	struct ws_frame_hdr h;
	size_t n = ws_build_close(out, 1009, "too big");

	assert_int_equal(n, 11);
	assert_int_equal(out[0], 0x88);
	assert_int_equal(out[1], 9);
	assert_int_equal(out[2] << 8 | out[3], 1009);
	assert_memory_equal(out + 4, "too big", 7);
	assert_int_equal(ws_parse_frame_hdr(out, n, &h), 1);
	assert_int_equal(h.opcode, WS_CLOSE);
	assert_int_equal(h.payload_len, 9);
	assert_false(h.masked);
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	n = ws_build_close(out, 1002, long_reason);
	assert_int_equal(n, 4 + 123);
	assert_int_equal(ws_parse_frame_hdr(out, n, &h), 1);
	assert_int_equal(h.payload_len, 125);
	assert_int_equal(ws_build_close(out, 1000, ""), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prx23_handshake),
		cmocka_unit_test(test_validate_h2c_direct),
		cmocka_unit_test(test_accept_rfc6455),
		cmocka_unit_test(test_frame_rows),
		cmocka_unit_test(test_build_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
