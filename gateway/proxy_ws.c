/*
 * proxy_ws: proxied WebSocket tunnels (R-3.8, PRX-24, PRX-25).
 *
 * The gateway does not terminate proxied WebSockets: after both handshakes
 * frames pass unchanged. It parses every frame header in both directions:
 *  - client -> upstream: frames must be masked (1002), a frame or message
 *    above cfg->ws_message_max closes with 1009, more than
 *    GW_WS_PINGS_PER_S pings in a second with 1008;
 *  - upstream -> client: to know the frame boundaries (the gateway's own
 *    close frame, e.g. on credential expiry, may only go between frames)
 *    and to see the server's close frame (nothing may follow it).
 *
 * Threading: event-loop thread only.
 */
#define LOG_PREFIX "gateway/proxy_ws: "

#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "gateway/activity.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/metrics.h"

void gw__ws_fail(struct gw_conn *c, uint16_t code, const char *reason)
{
	const struct gw_ws_tx *t = &c->wstx;
	uint8_t frame[128];
	size_t n;

	log_debug("'%s': closing WebSocket with %u: %s", c->ip, code, reason);
	gw__proxy_detach(c);
	c->close_after = true;
	if (!c->wsi)
		return;
	/* our close frame inside a server frame would corrupt the stream, and
	 * after the server's close frame no frame may follow: then just close */
	if (c->st == GW_CS_TUNNEL && t->frame_left == 0 && t->hdr_len == 0 && !t->close_seen) {
		n = ws_build_close(frame, code, reason);
		gw__conn_queue(c, frame, n);
	}
	lws_callback_on_writable(c->wsi);
}

/* ---- client -> upstream ---- */

static bool ws_ping_ok(struct gw_conn *c)
{
	int64_t now = time_mono_ms();

	if (now - c->ws.ping_window_ms >= 1000) {
		c->ws.ping_window_ms = now;
		c->ws.pings = 0;
	}
	return ++c->ws.pings <= GW_WS_PINGS_PER_S;
}

/* Checks one client frame header (R-3.8, PRX-25); false after gw__ws_fail. */
static bool ws_check_frame(struct gw_conn *c, const struct ws_frame_hdr *h)
{
	uint64_t max = c->core->gw->cfg->ws_message_max;

	if (!h->masked) {
		gw__ws_fail(c, 1002, "client frames must be masked");
		return false;
	}
	if (h->opcode < 8) {
		if (h->opcode != WS_CONT)
			c->ws.msg_len = 0;
		c->ws.msg_len += h->payload_len;
		if (h->payload_len > max || c->ws.msg_len > max) {
			gw__ws_fail(c, 1009, "message too big");
			return false;
		}
	} else if (h->opcode == WS_PING && !ws_ping_ok(c)) {
		gw__ws_fail(c, 1008, "too many pings");
		return false;
	}
	return true;
}

/* Payload bytes of the current client frame; returns how many moved. */
static size_t ws_pass_payload(struct gw_conn *c, struct gw_up *up)
{
	size_t n = c->in.len;

	if (n > c->ws.frame_left)
		n = (size_t)c->ws.frame_left;
	if (n > GW_PENDING_MAX - up->out.len)
		n = GW_PENDING_MAX - up->out.len;
	buf_append(&up->out, c->in.data, n);
	buf_consume(&c->in, n);
	c->ws.frame_left -= n;
	gw_metrics_proxy_bytes(c->core->gw->metrics, n, 0);
	return n;
}

void gw__ws_pump(struct gw_conn *c, struct gw_up *up)
{
	struct ws_frame_hdr h;
	int r;

	while (c->in.len && up->out.len < GW_PENDING_MAX) {
		if (c->ws.frame_left > 0) {
			ws_pass_payload(c, up);
			continue;
		}
		r = ws_parse_frame_hdr((const uint8_t *)c->in.data, c->in.len, &h);
		if (r == 0)
			break;
		if (r < 0) {
			gw__ws_fail(c, 1002, "protocol error");
			return; /* up is detached: not ours to touch any more */
		}
		if (!ws_check_frame(c, &h))
			return;
		if (h.opcode < 8) /* data frames only: pings keep nothing alive */
			gw_activity_ws_frame(c->core->gw, c->user, c->server, c->log_path,
					     time_mono_ms() - c->t_start);
		buf_append(&up->out, c->in.data, h.hdr_len);
		buf_consume(&c->in, h.hdr_len);
		c->ws.frame_left = h.payload_len;
	}
}

/* ---- upstream -> client ---- */

/* Collects header bytes into t->hdr; returns bytes of p used, and sets *h
 * and *done once the header is complete (-1: protocol error). */
static long ws_tx_header(struct gw_ws_tx *t, const char *p, size_t n, struct ws_frame_hdr *h,
			 bool *done)
{
	size_t old = t->hdr_len, k = sizeof(t->hdr) - old;
	int r;

	if (k > n)
		k = n;
	memcpy(t->hdr + old, p, k);
	r = ws_parse_frame_hdr(t->hdr, old + k, h);
	if (r < 0)
		return -1;
	*done = r == 1;
	if (r == 0) {
		t->hdr_len = old + k;
		return (long)k;
	}
	t->hdr_len = 0;
	return (long)(h->hdr_len - old);
}

/* A complete server frame header: forwards it and starts its payload. */
static bool ws_tx_frame(struct gw_up *up, const struct ws_frame_hdr *h)
{
	struct gw_conn *c = up->c;
	struct gw_ws_tx *t = &c->wstx;

	if (h->masked) {
		gw__ws_fail(c, 1002, "server frames must not be masked");
		return false;
	}
	gw__proxy_forward(up, (const char *)t->hdr, h->hdr_len);
	t->frame_left = h->payload_len;
	if (h->opcode < 8)
		gw_activity_ws_frame(c->core->gw, c->user, c->server, c->log_path,
				     time_mono_ms() - c->t_start);
	if (h->opcode == WS_CLOSE) {
		t->close_seen = true; /* its payload still passes; nothing after it */
		log_debug("'%s': server closed the WebSocket", c->ip);
	}
	return true;
}

void gw__ws_from_upstream(struct gw_up *up, const char *p, size_t n)
{
	struct gw_ws_tx *t = &up->c->wstx;
	struct ws_frame_hdr h;
	bool done;
	long k;

	while (n) {
		if (t->frame_left > 0) {
			k = (long)(n < t->frame_left ? n : t->frame_left);
			gw__proxy_forward(up, p, (size_t)k);
			t->frame_left -= (uint64_t)k;
		} else if (t->close_seen) {
			log_debug("dropped %zu bytes after the server's close frame", n);
			return;
		} else {
			k = ws_tx_header(t, p, n, &h, &done);
			if (k < 0) {
				gw__ws_fail(up->c, 1002, "protocol error from the server");
				return;
			}
			if (done && !ws_tx_frame(up, &h))
				return; /* up is detached */
		}
		p += k;
		n -= (size_t)k;
	}
}

/* ---- handshake ---- */

static bool accept_ok(const struct gw_up *up, const struct http_resp *resp)
{
	const struct http_header *a = http_resp_header(resp, "Sec-WebSocket-Accept", NULL);
	const struct http_header *u = http_resp_header(resp, "Upgrade", NULL);
	char want[29];

	if (!up->ws_key || !a || !u || u->value_len != 9 ||
	    strncasecmp(u->value, "websocket", 9) != 0)
		return false;
	ws_accept_for_key(up->ws_key, strlen(up->ws_key), want);
	return a->value_len == 28 && memcmp(a->value, want, 28) == 0;
}

int gw__ws_start_tunnel(struct gw_up *up, const struct http_resp *resp)
{
	struct gw_conn *c = up->c;
	struct buf b;

	if (!accept_ok(up, resp))
		return -1;
	buf_init(&b, 4 * c->core->resp_lim.header_bytes + 1024);
	buf_appends(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
	gw__proxy_response_headers(&b, c, resp, true);
	buf_appends(&b, "Connection: Upgrade\r\n\r\n");
	c->status = 101;
	gw__conn_queue(c, b.data, b.len);
	buf_release(&b);
	up->tunnel = true;
	up->reusable = false;
	c->st = GW_CS_TUNNEL;
	memset(&c->ws, 0, sizeof(c->ws));
	memset(&c->wstx, 0, sizeof(c->wstx));
	gw_metrics_ws_open(c->core->gw->metrics);
	return 0;
}
