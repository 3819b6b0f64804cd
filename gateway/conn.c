/*
 * conn: the client side of the connection core. One state machine per
 * client socket (see conn_internal.h): read a request head, hand it to the
 * dispatcher (server.c), write the answer, then the next request. Requests
 * are handled strictly one at a time (PRX-19): reading pauses while an
 * answer is pending, so bytes of a pipelined request wait in the kernel or
 * in c->in and are never forwarded as part of the previous request.
 *
 * Timers (one lws_sul per connection): header deadline for the whole head
 * (PRX-16), body idle timeout and minimum rate (PRX-17), keep-alive idle,
 * and a short lingering close so that a final error answer reaches a client
 * that is still sending.
 *
 * Also here: the response builders and gw_send/gw_stream_* of gw.h, and the
 * access log.
 */
#define LOG_PREFIX "gateway/conn: "

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/hold.h"
#include "gateway/metrics.h"

/* Hub pages use no inline script or style (notes/hub.md). */
#define GW_HUB_CSP "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; " \
		   "form-action 'self'; object-src 'none'"

struct gw_core *gw__core(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static const struct gw_cfg *cfg_of(const struct gw_conn *c)
{
	return c->core->gw->cfg;
}

static void exchange_end(struct gw_conn *c);

/* ---- timers ---- */

static void conn_timer_cb(lws_sorted_usec_list_t *sul);

/*
 * Lazy timer: every request moves the deadline (often twice), and lws
 * keeps its timers in a sorted list (O(connections) per insert), so an
 * armed timer that fires no later than the new deadline is left alone;
 * the callback re-arms for the deadline that stands then. Cancelling
 * only clears the deadline, except when the connection goes away.
 */
static void conn_timer_arm(struct gw_conn *c, int64_t now)
{
	c->sul_at = c->deadline;
	lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul, conn_timer_cb,
			 (lws_usec_t)(c->deadline - now) * 1000);
}

void gw__conn_set_timer(struct gw_conn *c, int64_t in_ms)
{
	int64_t now = time_mono_ms();

	if (!c->wsi)
		return;
	if (in_ms < 1)
		in_ms = 1;
	c->deadline = now + in_ms;
	if (!c->sul_at || c->sul_at > c->deadline)
		conn_timer_arm(c, now);
}

static void conn_timer_cancel(struct gw_conn *c)
{
	c->deadline = 0;
}

/* For good: the connection is going away. */
static void conn_timer_stop(struct gw_conn *c)
{
	c->deadline = 0;
	c->sul_at = 0;
	lws_sul_cancel(&c->sul);
}

void gw__conn_body_timer(struct gw_conn *c, uint64_t already)
{
	c->body_start = c->body_last = time_mono_ms();
	c->body_got = already;
	gw__conn_set_timer(c, 1000);
}

/* Body progress (PRX-17): idle timeout, then a minimum average rate. */
static bool body_too_slow(struct gw_conn *c, int64_t now)
{
	const struct gw_cfg *cfg = cfg_of(c);
	int64_t elapsed = now - c->body_start;

	if (now - c->body_last >= cfg->body_idle_timeout)
		return true;
	if (elapsed >= GW_BODY_RATE_GRACE_MS && cfg->body_min_rate > 0 &&
	    c->body_got * 1000 / (uint64_t)elapsed < cfg->body_min_rate)
		return true;
	return false;
}

static bool reading_body(const struct gw_conn *c)
{
	return c->st == GW_CS_HUB_BODY || (c->st == GW_CS_PROXY && c->body_left > 0);
}

static void conn_timer_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_conn *c = lws_container_of(sul, struct gw_conn, sul);
	int64_t now = time_mono_ms();

	c->sul_at = 0;
	if (!c->wsi || !c->deadline)
		return;
	if (now < c->deadline) {
		conn_timer_arm(c, now); /* moved later since armed */
		return;
	}
	c->deadline = 0;
	if (c->st == GW_CS_HEAD) {
		if (c->in.len == 0 && c->nreq > 0) {
			gw__conn_kill(c); /* keep-alive idle: close quietly */
			return;
		}
		log_debug("'%s': request head not complete in time", c->ip);
		gw__conn_error(c, NULL, 408, true, "request header timeout", NULL);
	} else if (reading_body(c)) {
		if (!body_too_slow(c, now)) {
			gw__conn_set_timer(c, 1000);
			return;
		}
		log_debug("'%s': request body too slow", c->ip);
		if (c->st == GW_CS_PROXY)
			gw__proxy_detach(c);
		if (c->status == 0)
			gw__conn_error(c, NULL, 408, true, "request body timeout", NULL);
		else
			gw__conn_kill(c);
	} else if (c->st == GW_CS_LINGER) {
		gw__conn_kill(c);
	}
}

/* ---- lifetime ---- */

static void conn_reject(struct gw_conn *c, int status, const char *msg)
{
	char b[256];
	int n = snprintf(b, sizeof(b),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n",
			 status, http_reason(status), strlen(msg) + 1, msg);

	c->st = GW_CS_RESP;
	c->close_after = true;
	gw__conn_queue(c, b, (size_t)n);
}

struct gw_conn *gw__conn_new(struct gw_core *core, struct lws *wsi)
{
	const struct gw_cfg *cfg = core->gw->cfg;
	struct gw_conn *c = xcalloc(1, sizeof(*c));

	c->core = core;
	c->wsi = wsi;
	c->refs = 1;
	c->tls = lws_is_ssl(wsi);
	if (!lws_get_peer_simple(wsi, c->ip, sizeof(c->ip)))
		snprintf(c->ip, sizeof(c->ip), "unknown");
	buf_init(&c->in, cfg->header_bytes + cfg->api_body_max + 65536);
	buf_init(&c->out, GW_LOCAL_RESP_MAX);
	c->st = GW_CS_HEAD;
	/* caps count existing connections, before this one joins (PRX-18) */
	if (cfg->max_conns > 0 && core->nconns >= (size_t)cfg->max_conns)
		conn_reject(c, 503, "too many connections");
	else if (cfg->max_conns_per_ip > 0 &&
		 gw__ip_count(core, c->ip) >= (size_t)cfg->max_conns_per_ip)
		conn_reject(c, 429, "too many connections from your address");
	gw__ip_add(core, c->ip);
	c->next = core->conns;
	if (core->conns)
		core->conns->prev = c;
	core->conns = c;
	core->nconns++;
	gw__conn_count_changed(core);
	gw__conn_set_timer(c, cfg->header_timeout);
	return c;
}

static void conn_free(struct gw_conn *c)
{
	buf_release(&c->in);
	buf_release(&c->out);
	free(c->log_path);
	free(c->log_user);
	free(c->user);
	free(c->server);
	free(c->strip);
	free(c->hold_msg);
	gw__conn_auth_forget(c);
	free(c);
}

struct gw_conn *gw_conn_ref(struct gw_conn *c)
{
	c->refs++;
	return c;
}

void gw_conn_unref(struct gw_conn *c)
{
	if (c && --c->refs == 0)
		conn_free(c);
}

bool gw_conn_alive(const struct gw_conn *c)
{
	return c && c->wsi;
}

void gw__conn_closed(struct gw_conn *c)
{
	struct gw_core *core = c->core;

	conn_timer_stop(c);
	gw__proxy_detach(c);
	if (c->log_path)
		exchange_end(c); /* tunnels and aborted exchanges are logged too */
	if (c->prev)
		c->prev->next = c->next;
	else
		core->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	core->nconns--;
	gw__conn_count_changed(core);
	gw__ip_del(core, c->ip);
	c->wsi = NULL;
	gw_conn_unref(c);
}

void gw__conn_kill(struct gw_conn *c)
{
	gw__proxy_detach(c);
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* ---- flow control ---- */

static bool conn_wants_rx(const struct gw_conn *c)
{
	switch (c->st) {
	case GW_CS_HEAD:
	case GW_CS_LINGER:
		return true;
	case GW_CS_HUB_BODY:
		return c->in.len < c->hub_need;
	case GW_CS_PROXY:
		return c->body_left > 0 && c->in.len < GW_PENDING_MAX;
	case GW_CS_TUNNEL:
		return c->in.len < GW_PENDING_MAX;
	case GW_CS_HOLD:
		/* keep reading (bounded) so that a client that goes away is
		 * noticed; what it sends waits in c->in behind the head */
		return c->in.len < GW_PENDING_MAX;
	default:
		return false; /* one request at a time: the next one waits */
	}
}

void gw__conn_update_rx(struct gw_conn *c)
{
	bool want;

	if (!c->wsi)
		return;
	want = conn_wants_rx(c);
	if (want == !c->rx_paused)
		return;
	c->rx_paused = !want;
	lws_rx_flow_control(c->wsi, want);
}

/* ---- input ---- */

static bool raw_target_is_api(const struct buf *in)
{
	const char *sp = memchr(in->data, ' ', in->len < 32 ? in->len : 32);
	size_t rest;

	if (!sp)
		return false;
	sp++;
	rest = in->len - (size_t)(sp - in->data);
	return (rest >= 9 && memcmp(sp, "/hub/api/", 9) == 0) ||
	       (rest >= 6 && memcmp(sp, "/user/", 6) == 0 && memmem(sp, rest, "/api/", 5));
}

static void process_head(struct gw_conn *c)
{
	struct http_req req;
	struct http_error e = { 0 };
	int r;

	memset(&req, 0, sizeof(req));
	r = http_parse_request(c->in.data, c->in.len, &c->core->lim, &req, &e);
	if (r == 0)
		return;
	if (r < 0) {
		c->nreq++;
		gw__conn_error(c, raw_target_is_api(&c->in) ? "/hub/api/" : NULL, e.status,
			       true, e.message, e.status == 426 ? "Sec-WebSocket-Version: 13" : NULL);
		return;
	}
	c->nreq++;
	gw__conn_begin(c, &req);
	gw__dispatch(c, &req);
	if (c->wsi && (c->st == GW_CS_RESP || c->st == GW_CS_HUB_WAIT))
		buf_consume(&c->in, req.head_len); /* answered here; an unread body closes */
	http_req_clear(&req);
}

/* A hub request's body is complete: parse the head again (the buffer may
 * have moved since) and call the hub. */
static void process_hub_body(struct gw_conn *c)
{
	struct http_req req;
	struct http_error e = { 0 };

	if (c->in.len < c->hub_need)
		return;
	memset(&req, 0, sizeof(req));
	if (http_parse_request(c->in.data, c->in.len, &c->core->lim, &req, &e) != 1) {
		gw__conn_error(c, NULL, 500, true, "internal error", NULL); /* cannot happen */
		return;
	}
	conn_timer_cancel(c);
	gw__dispatch_hub(c, &req);
	http_req_clear(&req);
}

void gw__conn_process(struct gw_conn *c)
{
	enum gw_conn_state before;

	do {
		before = c->st;
		if (!c->wsi)
			return;
		switch (c->st) {
		case GW_CS_HEAD:
			if (c->in.len)
				process_head(c);
			break;
		case GW_CS_HUB_BODY:
			process_hub_body(c);
			break;
		case GW_CS_PROXY:
		case GW_CS_TUNNEL:
			gw__proxy_pump(c);
			break;
		default:
			break;
		}
	} while (c->st != before && c->wsi);
	gw__conn_update_rx(c);
}

int gw__conn_rx(struct gw_conn *c, const void *p, size_t n)
{
	if (!c->lws_timeout_cleared) {
		/* lws arms a 5 s timeout after a TLS accept on raw sockets; our
		 * own header deadline replaces it */
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
		c->lws_timeout_cleared = true;
	}
	if (c->st == GW_CS_LINGER)
		return 0; /* draining before close */
	if (c->st == GW_CS_HEAD && c->in.len == 0 && c->nreq > 0)
		gw__conn_set_timer(c, cfg_of(c)->header_timeout); /* keep-alive -> head */
	if (buf_append(&c->in, p, n) < 0) {
		log_debug("'%s': input buffer full", c->ip);
		return -1;
	}
	if (reading_body(c)) {
		c->body_last = time_mono_ms();
		c->body_got += n;
	}
	gw__conn_process(c);
	return 0;
}

/* ---- output ---- */

int gw__conn_queue(struct gw_conn *c, const void *p, size_t n)
{
	if (!c->wsi)
		return -1;
	if (buf_append(&c->out, p, n) < 0) {
		log_warn("'%s': output buffer full, closing", c->ip);
		gw__conn_kill(c);
		return -1;
	}
	c->bytes_out += n;
	if (!c->out_batch)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/*
 * A log file is written in blocks, not with a write() per request (it was
 * ~10 % of the syscall time under load): lines reach the file within
 * GW_ACCESS_FLUSH_MS, at shutdown, or when the stdio buffer fills. stderr
 * stays unbuffered.
 */
#define GW_ACCESS_FLUSH_MS 200

static void access_flush_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_core *core = lws_container_of(sul, struct gw_core, access_sul);

	core->access_sul_armed = false;
	core->access_flushed = time_mono_ms();
	fflush(core->access);
}

static void access_flush_soon(struct gw_core *core)
{
	int64_t now = time_mono_ms();

	if (core->access == stderr || core->timers_off ||
	    now - core->access_flushed >= GW_ACCESS_FLUSH_MS) {
		fflush(core->access);
		core->access_flushed = now;
		return;
	}
	if (core->access_sul_armed)
		return;
	core->access_sul_armed = true;
	lws_sul_schedule(core->gw->lws, 0, &core->access_sul, access_flush_cb,
			 (lws_usec_t)(core->access_flushed + GW_ACCESS_FLUSH_MS - now) * 1000);
}

void gw__access_flush_stop(struct gw_core *core)
{
	if (core->access_sul_armed)
		lws_sul_cancel(&core->access_sul);
	core->access_sul_armed = false;
	core->timers_off = true;
	if (core->access)
		fflush(core->access);
}

static void access_log(struct gw_conn *c)
{
	char path[512], ts[32];
	struct tm tm;
	time_t now = time(NULL);

	if (!c->core->access || !c->log_path)
		return;
	log_redact(path, sizeof(path), c->log_path, strlen(c->log_path));
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(c->core->access, "%s %s \"%s %s\" %d %llu %lldms %s\n", ts, c->ip, c->method,
		path, c->status, (unsigned long long)c->bytes_out,
		(long long)(time_mono_ms() - c->t_start), c->log_user ? c->log_user : "-");
	access_flush_soon(c->core);
}

static void exchange_end(struct gw_conn *c)
{
	access_log(c);
	if (c->status)
		gw_metrics_request(c->core->gw->metrics, c->status);
	free(c->log_path);
	free(c->log_user);
	free(c->user);
	free(c->server);
	free(c->strip);
	c->log_path = c->log_user = c->user = c->server = c->strip = NULL;
	c->status = 0;
	c->resp_done = false;
	c->hub_need = 0;
	c->body_left = 0;
}

/* The response is flushed: start the next request, or close. */
static void exchange_finish(struct gw_conn *c)
{
	exchange_end(c);
	if (c->close_after)
		return;
	c->st = GW_CS_HEAD;
	gw__conn_set_timer(c, c->in.len ? cfg_of(c)->header_timeout : cfg_of(c)->keepalive_timeout);
	gw__conn_process(c);
}

/* Lingering close: stop sending, drain what the client still sends for a
 * moment, so the answer is not destroyed by a reset (nginx lingering_close). */
static int begin_close(struct gw_conn *c)
{
	if (c->tls || c->st == GW_CS_LINGER)
		return -1;
	shutdown(lws_get_socket_fd(c->wsi), SHUT_WR);
	gw__proxy_detach(c);
	c->st = GW_CS_LINGER;
	gw__conn_set_timer(c, GW_LINGER_MS);
	gw__conn_update_rx(c);
	return 0;
}

/* Writes up to a few chunks while the socket takes them. */
static int conn_flush(struct gw_conn *c)
{
	for (int i = 0; i < 8 && c->out.len; i++) {
		size_t n = c->out.len < GW_WRITE_CHUNK ? c->out.len : GW_WRITE_CHUNK;

		memcpy(c->core->wbuf + LWS_PRE, c->out.data, n);
		if (lws_write(c->wsi, c->core->wbuf + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
			return -1;
		buf_consume(&c->out, n);
		/* choked costs a poll(): only ask when more is waiting */
		if (c->out.len && lws_send_pipe_choked(c->wsi))
			break;
	}
	return 0;
}

void gw__conn_flush_now(struct gw_conn *c)
{
	if (!c->wsi)
		return;
	/* a failed write leaves out as it was: the writeable callback fails
	 * again and closes the socket */
	if (c->out.len && !lws_partial_buffered(c->wsi) && conn_flush(c) < 0) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (c->out.len || c->resp_done || c->close_after)
		lws_callback_on_writable(c->wsi);
}

/*
 * A parked request's verdict (gateway/hold.c): dispatch it again from its
 * head as if it had just arrived, or answer 503 (JSON, Retry-After).
 */
static void hold_done(struct gw_conn *c)
{
	char *msg = c->hold_msg;

	c->hold_msg = NULL;
	if (c->hold_verdict == GW_HOLD_RELEASE) {
		c->st = GW_CS_HEAD;
		c->nreq--; /* process_head counts it again */
		gw__conn_set_timer(c, cfg_of(c)->header_timeout);
		gw__conn_process(c);
	} else {
		c->st = GW_CS_HUB_WAIT;
		buf_consume(&c->in, c->hold_head_len);
		char ra[32];

		snprintf(ra, sizeof(ra), "Retry-After: %d", GW_HOLD_RETRY_AFTER_S);
		gw__conn_error(c, "/hub/api/", 503, false, msg ? msg : "server not available", ra);
	}
	free(msg);
}

int gw__conn_writeable(struct gw_conn *c)
{
	if (c->st == GW_CS_HOLD) {
		if (c->hold_verdict != GW_HOLD_PARKED)
			hold_done(c);
		return 0;
	}
	if (c->out.len) {
		if (conn_flush(c) < 0)
			return -1;
		/* once more when empty: lws has then flushed what it buffered */
		lws_callback_on_writable(c->wsi);
		if (c->out.len < GW_PENDING_MAX / 2)
			gw__proxy_client_drained(c);
		return 0;
	}
	if (c->resp_done)
		exchange_finish(c);
	if (c->close_after && c->out.len == 0)
		return begin_close(c);
	return 0;
}

/* ---- building responses ---- */

void gw__conn_begin(struct gw_conn *c, const struct http_req *req)
{
	snprintf(c->method, sizeof(c->method), "%s", req->method_str);
	c->is_head = req->method == HTTP_HEAD;
	c->req_keep_alive = req->keep_alive;
	c->http10 = req->minor == 0;
	free(c->log_path);
	c->log_path = xstrdup(req->path.encoded ? req->path.encoded : "?");
	c->t_start = time_mono_ms();
	c->status = 0;
	c->bytes_out = 0;
	/* not read yet: answering without reading it means closing */
	c->body_left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
}

bool gw__is_api_path(const char *path)
{
	const char *p;

	if (!path)
		return false;
	if (strncmp(path, "/hub/api/", 9) == 0 || strcmp(path, "/hub/api") == 0)
		return true;
	if (strncmp(path, "/user/", 6) != 0 || !(p = strchr(path + 6, '/')))
		return false;
	/* /user/<name>/api/... or /user/<name>/<server>/api/... */
	if (strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0)
		return true;
	p = strchr(p + 1, '/');
	return p && (strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0);
}

void gw__conn_error(struct gw_conn *c, const char *path, int status, bool close,
		    const char *msg, const char *extra_header)
{
	struct gw_response r;

	if (!c->log_path) { /* no request parsed (bad head, header timeout) */
		c->log_path = xstrdup(path ? path : "-");
		snprintf(c->method, sizeof(c->method), "-");
		c->t_start = time_mono_ms();
	}
	if (c->st == GW_CS_PROXY || c->st == GW_CS_TUNNEL)
		c->st = GW_CS_HUB_WAIT; /* no byte of an upstream answer was sent */
	if (close)
		c->close_after = true;
	gw_response_init(&r, status);
	if (gw__is_api_path(path)) {
		gw_response_error(&r, status, "%s", msg);
	} else {
		gw_response_header(&r, "Content-Type", "text/plain; charset=utf-8");
		buf_appendf(&r.body, "%d %s: %s\n", status, http_reason(status), msg);
	}
	if (extra_header)
		buf_appendf(&r.head, "%s\r\n", extra_header);
	gw_send(c, &r);
}

void gw_response_init(struct gw_response *r, int status)
{
	r->status = status;
	buf_init(&r->head, 65536);
	buf_init(&r->body, GW_LOCAL_RESP_MAX);
}

void gw_response_release(struct gw_response *r)
{
	buf_release(&r->head);
	buf_release(&r->body);
}

void gw_response_header(struct gw_response *r, const char *name, const char *fmt, ...)
{
	size_t start = r->head.len;
	va_list ap;
	char *v;

	va_start(ap, fmt);
	v = xvasprintf(fmt, ap);
	va_end(ap);
	if (strpbrk(name, "\r\n:") || strpbrk(v, "\r\n")) {
		/* a handler bug; never let it split the response */
		log_err("refusing header '%s' with CR/LF", name);
		free(v);
		return;
	}
	if (buf_appendf(&r->head, "%s: %s\r\n", name, v) < 0)
		r->head.len = start;
	free(v);
}

void gw_response_json(struct gw_response *r, int status, struct cJSON *json)
{
	char *s = json ? cJSON_PrintUnformatted(json) : NULL;

	r->status = status;
	gw_response_header(r, "Content-Type", "application/json");
	buf_reset(&r->body);
	if (s)
		buf_appends(&r->body, s);
	free(s);
	cJSON_Delete(json);
}

void gw_response_error(struct gw_response *r, int status, const char *fmt, ...)
{
	cJSON *j = cJSON_CreateObject();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	cJSON_AddNumberToObject(j, "status", status);
	cJSON_AddStringToObject(j, "message", msg);
	free(msg);
	gw_response_json(r, status, j);
}

void gw_response_html(struct gw_response *r, int status, const char *html)
{
	r->status = status;
	gw_response_header(r, "Content-Type", "text/html; charset=utf-8");
	buf_reset(&r->body);
	buf_appends(&r->body, html);
}

void gw_response_redirect(struct gw_response *r, int status, const char *location)
{
	r->status = status;
	gw_response_header(r, "Location", "%s", location);
}

/* Is header `name` among r's extra header lines? */
static bool head_has(const struct buf *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p = head->data;

	while (p && *p) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			return true;
		p = strstr(p, "\r\n");
		if (p)
			p += 2;
	}
	return false;
}

static bool status_has_body(int status)
{
	return status >= 200 && status != 204 && status != 304;
}

/* Decides whether the connection closes after this response. */
bool gw__conn_closing(struct gw_conn *c)
{
	const struct gw_cfg *cfg = cfg_of(c);

	if (!c->req_keep_alive || c->core->gw->stopping || c->body_left > 0)
		c->close_after = true;
	if (cfg->keepalive_max_requests > 0 && c->nreq >= (unsigned)cfg->keepalive_max_requests)
		c->close_after = true;
	return c->close_after;
}

static void head_common(struct gw_conn *c, struct buf *h, const struct gw_response *r)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	buf_appendf(h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", r->status, http_reason(r->status), date);
	if (!head_has(&r->head, "Content-Security-Policy"))
		buf_appendf(h, "Content-Security-Policy: %s\r\n", GW_HUB_CSP);
	buf_appends(h, "X-Content-Type-Options: nosniff\r\nReferrer-Policy: same-origin\r\n");
	if (r->head.len)
		buf_append(h, r->head.data, r->head.len);
}

static bool conn_can_answer(struct gw_conn *c)
{
	if (!c || !c->wsi)
		return false;
	switch (c->st) {
	case GW_CS_HEAD:
	case GW_CS_HUB_BODY:
	case GW_CS_HUB_WAIT:
		return true;
	default:
		log_err("'%s': second answer to one request dropped", c->ip);
		return false;
	}
}

void gw_send(struct gw_conn *c, struct gw_response *r)
{
	struct buf h;

	if (!conn_can_answer(c)) {
		gw_response_release(r);
		return;
	}
	buf_init(&h, GW_LOCAL_RESP_MAX);
	head_common(c, &h, r);
	if (status_has_body(r->status))
		buf_appendf(&h, "Content-Length: %zu\r\n", r->body.len);
	buf_appendf(&h, "Connection: %s\r\n\r\n", gw__conn_closing(c) ? "close" : "keep-alive");
	if (!c->is_head && status_has_body(r->status))
		buf_append(&h, r->body.data, r->body.len);
	c->status = r->status;
	c->st = GW_CS_RESP;
	conn_timer_cancel(c);
	gw__conn_queue(c, h.data, h.len);
	c->resp_done = true;
	buf_release(&h);
	gw_response_release(r);
	gw__conn_update_rx(c);
}

void gw_stream_begin(struct gw_conn *c, struct gw_response *head)
{
	struct buf h;

	if (!conn_can_answer(c)) {
		gw_response_release(head);
		return;
	}
	buf_init(&h, 65536 * 2);
	head_common(c, &h, head);
	if (c->http10)
		c->close_after = true; /* no chunked for 1.0: the body ends at close */
	else
		buf_appends(&h, "Transfer-Encoding: chunked\r\n");
	buf_appendf(&h, "Connection: %s\r\n\r\n", gw__conn_closing(c) ? "close" : "keep-alive");
	c->status = head->status;
	c->st = GW_CS_STREAM;
	conn_timer_cancel(c);
	gw__conn_queue(c, h.data, h.len);
	buf_release(&h);
	gw_response_release(head);
	gw__conn_update_rx(c);
}

int gw_stream_write(struct gw_conn *c, const char *p, size_t n)
{
	char sz[24];
	int k;

	if (!c || !c->wsi || c->st != GW_CS_STREAM)
		return -1;
	if (c->out.len > GW_PENDING_MAX)
		return -1; /* the client does not read: the caller drops events */
	if (n == 0 || c->is_head)
		return 0;
	if (c->http10)
		return gw__conn_queue(c, p, n);
	k = snprintf(sz, sizeof(sz), "%zx\r\n", n);
	if (gw__conn_queue(c, sz, (size_t)k) < 0 || gw__conn_queue(c, p, n) < 0)
		return -1;
	return gw__conn_queue(c, "\r\n", 2);
}

void gw_stream_end(struct gw_conn *c)
{
	if (!c || !c->wsi || c->st != GW_CS_STREAM)
		return;
	if (!c->http10 && !c->is_head)
		gw__conn_queue(c, "0\r\n\r\n", 5);
	c->st = GW_CS_RESP;
	c->resp_done = true;
	lws_callback_on_writable(c->wsi);
}

void gw__conn_response_done(struct gw_conn *c, bool close)
{
	if (!c->wsi)
		return;
	if (close)
		c->close_after = true;
	c->st = GW_CS_RESP;
	c->resp_done = true;
	lws_callback_on_writable(c->wsi);
	gw__conn_update_rx(c);
}
