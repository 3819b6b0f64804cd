/*
 * ws: WebSocket handshake validation and frame header parsing (RFC 6455),
 * pure functions. The gateway does not terminate proxied WebSockets: after
 * both handshakes it forwards frames unchanged, but it parses every frame
 * header on the client->server side to enforce masking and size caps
 * (R-3.8, PRX-25) and on the server->client side to follow close frames.
 */
#ifndef NBGATE_GATEWAY_WS_H
#define NBGATE_GATEWAY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/http.h"

/*
 * Validates a client upgrade request (R-3.8, PRX-23): GET, HTTP/1.1,
 * Upgrade: websocket (exactly that token), Connection containing "upgrade",
 * Sec-WebSocket-Key = base64 of 16 bytes, Sec-WebSocket-Version: 13.
 * Returns 0 or -1 with *e set (400, or 426 for a wrong version: the caller
 * then adds "Sec-WebSocket-Version: 13"). Upgrade: h2c -> 400.
 */
int ws_validate_upgrade(const struct http_req *req, struct http_error *e);

/* Computes Sec-WebSocket-Accept for key into out (29 bytes incl. NUL). */
void ws_accept_for_key(const char *key, size_t key_len, char out[29]);

enum ws_opcode {
	WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2,
	WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA,
};

struct ws_frame_hdr {
	bool fin;
	unsigned rsv;        /* RSV1..3 bits */
	unsigned opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t payload_len;
	size_t hdr_len;      /* 2..14 */
};

/*
 * Parses a frame header at p[0..len). Returns 1 (complete, *h filled),
 * 0 (need more bytes), -1 (protocol error: reserved opcode, control frame
 * over 125 bytes or fragmented, 64-bit length with the top bit set).
 */
int ws_parse_frame_hdr(const uint8_t *p, size_t len, struct ws_frame_hdr *h);

/* Builds an unmasked server close frame with code + reason into out
 * (at least 4 + strlen(reason) bytes, reason <= 123 bytes). Returns its length. */
size_t ws_build_close(uint8_t *out, uint16_t code, const char *reason);

#endif
