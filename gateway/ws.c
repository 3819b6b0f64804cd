/*
 * ws: WebSocket handshake validation and frame headers (RFC 6455, R-3.8,
 * PRX-23, PRX-25).
 *
 * The handshake rules follow HAProxy's websocket.vtc: anything but a plain
 * "GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade, a 16-byte key,
 * version 13" is refused before a backend is contacted, so a backend that
 * would answer 101 to something looser cannot be used to open a tunnel the
 * gateway does not understand (WebSocket smuggling, PRX-24).
 */
#include "gateway/ws.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* base64 of exactly 16 bytes: 22 symbols, the last carrying 2 zero bits,
 * then "==" (RFC 6455 4.1 item 7). */
static bool key_valid(const char *k, size_t n)
{
	if (n != 24 || k[22] != '=' || k[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64(k[i]))
			return false;
	return strchr("AQgw", k[21]) != NULL;
}

static bool value_is(const struct http_header *h, const char *v)
{
	size_t n = strlen(v);

	return h->value_len == n && strncasecmp(h->value, v, n) == 0;
}

/* Every Connection header together must name "upgrade". */
static bool connection_has_upgrade(const struct http_req *req)
{
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_header *h = &req->hdr[i];

		if (h->name_len == 10 && strncasecmp(h->name, "Connection", 10) == 0 &&
		    http_list_has(h->value, h->value_len, "upgrade"))
			return true;
	}
	return false;
}

static int ws_fail(struct http_error *e, int status, const char *msg)
{
	e->status = status;
	e->message = msg;
	e->close = status != 426; /* 426 is a complete, well-framed answer */
	return -1;
}

int ws_validate_upgrade(const struct http_req *req, struct http_error *e)
{
	size_t n;
	const struct http_header *h;

	if (req->method != HTTP_GET)
		return ws_fail(e, 400, "websocket upgrade requires GET");
	if (req->minor != 1)
		return ws_fail(e, 400, "websocket upgrade requires HTTP/1.1");
	h = http_req_header(req, "Upgrade", &n);
	if (!h || n != 1 || !value_is(h, "websocket"))
		return ws_fail(e, 400, "Upgrade must be exactly 'websocket'");
	if (!connection_has_upgrade(req))
		return ws_fail(e, 400, "Connection must contain 'upgrade'");
	h = http_req_header(req, "Sec-WebSocket-Key", &n);
	if (!h || n != 1 || !key_valid(h->value, h->value_len))
		return ws_fail(e, 400, "invalid Sec-WebSocket-Key");
	h = http_req_header(req, "Sec-WebSocket-Version", &n);
	if (!h || n != 1 || !value_is(h, "13"))
		return ws_fail(e, 426, "Sec-WebSocket-Version must be 13");
	return 0;
}

void ws_accept_for_key(const char *key, size_t key_len, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* SHA-1 is what RFC 6455 prescribes; it proves nothing secret. The
	 * low-level SHA1_* calls are deprecated in OpenSSL 3, hence EVP. */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(ctx, key, key_len) ||
	    !EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) ||
	    !EVP_DigestFinal_ex(ctx, md, NULL))
		abort(); /* only on allocation failure, as xmalloc does */
	EVP_MD_CTX_free(ctx);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
	out[28] = '\0';
}

static bool opcode_known(unsigned op)
{
	return op <= WS_BINARY || (op >= WS_CLOSE && op <= WS_PONG);
}

/* The extended payload length after the 2-byte header (7-bit form 126/127). */
static uint64_t ext_len(const uint8_t *p, unsigned len7)
{
	uint64_t v = 0;

	if (len7 == 126)
		return (uint64_t)p[2] << 8 | p[3];
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[2 + i];
	return v;
}

int ws_parse_frame_hdr(const uint8_t *p, size_t len, struct ws_frame_hdr *h)
{
	size_t need = 2;
	unsigned len7;

	if (len < 2)
		return 0;
	h->fin = p[0] & 0x80;
	h->rsv = (p[0] >> 4) & 7;
	h->opcode = p[0] & 0x0f;
	h->masked = p[1] & 0x80;
	len7 = p[1] & 0x7f;
	if (!opcode_known(h->opcode))
		return -1;
	if ((h->opcode & 8) && (!h->fin || len7 > 125))
		return -1; /* control frames: unfragmented, <= 125 bytes */
	need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
	need += h->masked ? 4 : 0;
	if (len < need)
		return 0;
	h->payload_len = len7 < 126 ? len7 : ext_len(p, len7);
	if (h->payload_len >> 63)
		return -1; /* RFC 6455 5.2: the most significant bit MUST be 0 */
	if (h->masked)
		memcpy(h->mask, p + need - 4, 4);
	h->hdr_len = need;
	return 1;
}

size_t ws_build_close(uint8_t *out, uint16_t code, const char *reason)
{
	/* a close payload is <= 125 bytes: the code, then <= 123 of reason */
	size_t rl = reason ? strnlen(reason, 123) : 0;

	out[0] = 0x80 | WS_CLOSE;
	out[1] = (uint8_t)(2 + rl);
	out[2] = (uint8_t)(code >> 8);
	out[3] = (uint8_t)(code & 0xff);
	if (rl)
		memcpy(out + 4, reason, rl);
	return 4 + rl;
}
