/*
 * proxy: the upstream side of a proxied request (R-3.3 .. ).
 *
 * The request is rebuilt from parsed fields, never spliced: method,
 * canonical path re-encoded by http.c, the client's headers minus
 * hop-by-hop, identity and credential headers, then the gateway's own
 * X-Forwarded-* and X-Nbgate-User. The response head is parsed strictly
 * (http_parse_response: bad framing -> 502 and the upstream socket closed)
 * and rebuilt; its body is forwarded unchanged, its end found by
 * Content-Length, by validating the chunked framing, or by close.
 *
 * Choices (see notes/core.md):
 *  - Host sent upstream is the client's validated Host (the public host, or
 *    the user's subdomain): Jupyter compares Origin with Host for WebSockets
 *    and XSRF, so the upstream must see the browser's host.
 *  - Authorization is never forwarded: any Authorization that got this far
 *    is an nbgate token (auth_identify refuses others), and the user's
 *    server must not learn the caller's hub credential (an admin's token
 *    would otherwise reach alice's code). The same holds for the nbgate
 *    session and login cookies. Jupyter trusts X-Nbgate-User instead.
 *  - A route with an upstream credential (gw_route.auth: a kubernetes pod
 *    is reachable over the cluster network, so its server checks a token
 *    of its own) gets the gateway's `Authorization: <auth>` on every
 *    request and WebSocket upgrade, after the client's headers (whose own
 *    Authorization was dropped above). It is never logged.
 *
 * Upstream sockets are created here (non-blocking connect, SOCK_CLOEXEC) and
 * adopted into lws as raw sockets of protocol "nbgate-up". A socket whose
 * exchange completed cleanly waits in the keep-alive pool for the same
 * upstream; any doubt (early response, extra bytes, errors) closes it. A
 * pooled socket that turns out closed before any response byte is replaced
 * once by a fresh connection when no body byte was sent yet (the upstream
 * may close an idle keep-alive socket just as we reuse it).
 *
 * WebSocket tunnels are in proxy_ws.c.
 */
#define LOG_PREFIX "gateway/proxy: "

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/activity.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/metrics.h"
#include "gateway/route.h"

static const char *const hop_by_hop[] = {
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade", "Proxy-Authorization", "Proxy-Authenticate", "Content-Length", "Host",
	"Expect", NULL,
};

/* Identity and credential headers never forwarded (R-3.5, PRX-8, PRX-10). */
static const char *const identity[] = {
	"Forwarded", "X-Real-IP", "X-Gateway-User", "X-Remote-User", "Authorization", NULL,
};

static bool name_in(const char *name, size_t len, const char *const *list)
{
	for (; *list; list++)
		if (strlen(*list) == len && strncasecmp(name, *list, len) == 0)
			return true;
	return false;
}

static bool has_prefix_ci(const char *name, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(name, prefix, n) == 0;
}

/* Is name listed in a Connection header among hdr[0..nhdr)? */
static bool named_in_connection(const struct http_header *hdr, size_t nhdr, const char *name,
				size_t len)
{
	for (size_t i = 0; i < nhdr; i++) {
		const char *v = hdr[i].value, *end = v + hdr[i].value_len;

		if (hdr[i].name_len != 10 || strncasecmp(hdr[i].name, "Connection", 10) != 0)
			continue;
		while (v < end) {
			const char *comma = memchr(v, ',', (size_t)(end - v));
			const char *te = comma ? comma : end, *ts = v;

			while (ts < te && (*ts == ' ' || *ts == '\t'))
				ts++;
			while (te > ts && (te[-1] == ' ' || te[-1] == '\t'))
				te--;
			if ((size_t)(te - ts) == len && strncasecmp(ts, name, len) == 0)
				return true;
			v = comma ? comma + 1 : end;
		}
	}
	return false;
}

/* ---- request rebuilding ---- */

static bool gateway_cookie(const char *name, size_t len)
{
	static const char *const own[] = { AUTH_COOKIE_PLAIN, AUTH_COOKIE_SECURE,
					   AUTH_LOGIN_COOKIE_PLAIN, AUTH_LOGIN_COOKIE_SECURE, NULL };

	return name_in(name, len, own);
}

/* Appends the Cookie header without the gateway's own cookies. */
static void append_cookie(struct buf *b, const struct http_header *h)
{
	const char *v = h->value, *end = v + h->value_len;
	size_t start = b->len;
	bool any = false;

	buf_appends(b, "Cookie: ");
	while (v < end) {
		const char *semi = memchr(v, ';', (size_t)(end - v));
		const char *pe = semi ? semi : end, *ps = v, *eq;

		while (ps < pe && *ps == ' ')
			ps++;
		eq = memchr(ps, '=', (size_t)(pe - ps));
		if (pe > ps && !gateway_cookie(ps, eq ? (size_t)(eq - ps) : (size_t)(pe - ps))) {
			if (any)
				buf_appends(b, "; ");
			buf_append(b, ps, (size_t)(pe - ps));
			any = true;
		}
		v = semi ? semi + 1 : end;
	}
	if (any)
		buf_appends(b, "\r\n");
	else
		b->len = start, b->data[start] = '\0';
}

static void append_client_headers(struct buf *b, const struct http_req *req)
{
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_header *h = &req->hdr[i];

		if (name_in(h->name, h->name_len, hop_by_hop) ||
		    name_in(h->name, h->name_len, identity) ||
		    has_prefix_ci(h->name, h->name_len, "X-Forwarded-") ||
		    has_prefix_ci(h->name, h->name_len, "X-Nbgate-") ||
		    named_in_connection(req->hdr, req->nhdr, h->name, h->name_len))
			continue;
		if (h->name_len == 6 && strncasecmp(h->name, "Cookie", 6) == 0) {
			append_cookie(b, h);
			continue;
		}
		buf_append(b, h->name, h->name_len);
		buf_appends(b, ": ");
		buf_append(b, h->value, h->value_len);
		buf_appends(b, "\r\n");
	}
}

static void build_request(struct buf *b, const struct gw_conn *c, const struct http_req *req,
			  const struct auth_ident *who, size_t strip, const char *auth)
{
	/* Host stays the client's even when the prefix is stripped: code-server
	 * refuses a WebSocket whose Origin host differs from Host (403) */
	buf_appendf(b, "%s %s%s%s HTTP/1.1\r\nHost: %.*s\r\n", req->method_str,
		    req->path.encoded + strip, req->query ? "?" : "", req->query ? req->query : "",
		    (int)req->host_len, req->host);
	append_client_headers(b, req);
	if (req->ws_upgrade)
		buf_appends(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
	else
		buf_appends(b, "Connection: keep-alive\r\n");
	if (req->content_length >= 0)
		buf_appendf(b, "Content-Length: %lld\r\n", (long long)req->content_length);
	if (auth) /* checked by gw_routes_set_auth(): one clean header line */
		buf_appendf(b, "Authorization: %s\r\n", auth);
	/* the gateway's own headers come last; nothing of the client's can remove them */
	buf_appendf(b, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n"
		       "X-Forwarded-Host: %.*s\r\nX-Nbgate-User: %s\r\n\r\n",
		    c->ip, c->tls ? "https" : "http", (int)req->host_len, req->host,
		    who ? who->user : "");
}

/* ---- upstream socket lifetime ---- */

static void up_timer_cb(lws_sorted_usec_list_t *sul);
static void up_kick(struct gw_up *up, const struct gw_conn *c);

static void up_set_timer(struct gw_up *up, int64_t ms)
{
	lws_sul_schedule(lws_get_context(up->wsi), 0, &up->sul, up_timer_cb, (lws_usec_t)ms * 1000);
}

/* Only from up_closed (lws reported the close) and a failed adoption. */
static void up_free(struct gw_up *up)
{
	lws_sul_cancel(&up->sul);
	buf_release(&up->out);
	buf_release(&up->in);
	free(up->upstream);
	free(up->ws_key);
	free(up->replay);
	free(up);
}

static void pool_unlink(struct gw_up *up)
{
	for (struct gw_up **p = &up->core->idle; *p; p = &(*p)->next_idle) {
		if (*p == up) {
			*p = up->next_idle;
			break;
		}
	}
	up->next_idle = NULL;
}

/*
 * Closes the upstream socket: unlinks it from the pool and from its client
 * and asks lws to close it. Never frees: up stays valid until lws reports
 * the close (up_closed), so callers holding up may still read it.
 */
static void up_close(struct gw_up *up)
{
	if (up->st == UP_IDLE)
		pool_unlink(up);
	if (up->c) {
		if (up->tunnel)
			gw_metrics_ws_close(up->core->gw->metrics);
		up->c->up = NULL;
		up->c = NULL;
	}
	up->st = UP_DEAD;
	lws_sul_cancel(&up->sul);
	/* wsi is NULL only inside up_closed, which frees up itself */
	if (up->wsi)
		lws_set_timeout(up->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void up_update_rx(struct gw_up *up)
{
	bool want = !up->c || up->c->out.len < GW_PENDING_MAX;

	if (!up->wsi || want == !up->rx_paused)
		return;
	up->rx_paused = !want;
	lws_rx_flow_control(up->wsi, want);
}

static int connect_unix(const char *path, struct err **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(err, ENAMETOOLONG, "socket path too long");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set_errno(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		err_set_errno(err, "connect '%s'", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(const char *host, int port, struct err **err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char ps[8];
	int fd, r;

	snprintf(ps, sizeof(ps), "%d", port);
	/* NEEDSWORK: names resolve synchronously; routes carry addresses today */
	r = getaddrinfo(host, ps, &hints, &ai);
	if (r != 0)
		return err_set(err, EHOSTUNREACH, "resolve '%s': %s", host, gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set_errno(err, "socket");
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		err_set_errno(err, "connect '%s:%d'", host, port);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static struct gw_up *up_connect(struct gw_core *core, const char *upstream, struct err **err)
{
	lws_adopt_desc_t ad = { 0 };
	struct gw_up *up;
	char *host = NULL;
	bool is_unix;
	int port, fd;

	if (gw_upstream_parse(upstream, &is_unix, &host, &port, err) < 0)
		return NULL;
	fd = is_unix ? connect_unix(host, err) : connect_tcp(host, port, err);
	free(host);
	if (fd < 0)
		return NULL;
	up = xcalloc(1, sizeof(*up));
	up->core = core;
	up->upstream = xstrdup(upstream);
	buf_init(&up->out, GW_PENDING_MAX + 2 * core->lim.header_bytes + 65536);
	buf_init(&up->in, core->resp_lim.header_bytes + 1);
	up->st = UP_CONNECTING;
	ad.vh = core->vh;
	ad.type = LWS_ADOPT_SOCKET; /* raw, no TLS */
	ad.fd.sockfd = fd;
	ad.vh_prot_name = "nbgate-up";
	ad.opaque = up;
	up->wsi = lws_adopt_descriptor_vhost_via_info(&ad); /* closes fd on failure */
	if (!up->wsi) {
		up_free(up);
		err_set(err, ENOMEM, "cannot adopt upstream socket");
		return NULL;
	}
	lws_set_opaque_user_data(up->wsi, up);
	up_set_timer(up, core->gw->cfg->upstream_connect_timeout);
	lws_callback_on_writable(up->wsi);
	return up;
}

static struct gw_up *pool_take(struct gw_core *core, const char *upstream)
{
	for (struct gw_up *up = core->idle; up; up = up->next_idle) {
		if (strcmp(up->upstream, upstream) == 0) {
			pool_unlink(up);
			lws_sul_cancel(&up->sul);
			up->st = UP_ACTIVE;
			up->from_pool = true;
			return up;
		}
	}
	return NULL;
}

static void pool_put(struct gw_up *up)
{
	up->st = UP_IDLE;
	up->next_idle = up->core->idle;
	up->core->idle = up;
	up_set_timer(up, GW_UP_IDLE_MS);
	up_update_rx(up);
}

void gw__proxy_pool_flush(struct gw_core *core)
{
	struct gw_up *up;

	while (core && core->idle) {
		up = core->idle;
		core->idle = up->next_idle; /* unlinked here, closed below */
		up->next_idle = NULL;
		up->st = UP_DEAD;
		up_close(up);
	}
}

void gw__proxy_drop_upstream(struct gw_core *core, const char *upstream)
{
	struct gw_up **pp = core ? &core->idle : NULL;
	int pooled = 0, live = 0;

	if (!core || !upstream)
		return;
	while (*pp) {
		struct gw_up *up = *pp;

		if (up->upstream && strcmp(up->upstream, upstream) == 0) {
			*pp = up->next_idle;
			up->next_idle = NULL;
			up->st = UP_DEAD;
			up_close(up);
			pooled++;
			continue;
		}
		pp = &up->next_idle;
	}
	for (struct gw_conn *c = core->conns; c; c = c->next)
		if (c->up && c->up->upstream && strcmp(c->up->upstream, upstream) == 0) {
			gw__conn_kill(c); /* the browser reconnects; that request is held */
			live++;
		}
	log_info("closed %d pooled and %d client connections to '%s'", pooled, live, upstream);
}

void gw_close_upstream(struct gw *gw, const char *upstream)
{
	if (gw->lws)
		gw__proxy_drop_upstream(lws_context_user(gw->lws), upstream);
}

static void up_reset_exchange(struct gw_up *up)
{
	buf_reset(&up->out);
	buf_reset(&up->in);
	up->head_done = up->tunnel = up->got_bytes = false;
	up->reusable = true;
	up->body = UP_BODY_NONE;
	up->left = 0;
	free(up->ws_key);
	up->ws_key = NULL;
	free(up->replay);
	up->replay = NULL;
	up->replay_len = 0;
}

static void touch(struct gw_conn *c)
{
	int64_t now;

	if (!c->user || !c->server)
		return;
	now = time_now_ms();
	gw_routes_touch(c->core->gw->routes, c->user, c->server, now);
	/* culling activity; a tunnel's frames are judged in proxy_ws.c */
	if (c->st != GW_CS_TUNNEL)
		gw_activity_http(c->core->gw, c->user, c->server, c->method, c->log_path, now);
}

void gw__proxy_start(struct gw_conn *c, const struct http_req *req, const struct auth_ident *who,
		     const char *user, const char *server, const char *upstream, size_t strip,
		     char *ws_key)
{
	struct gw_up *up = pool_take(c->core, upstream);
	const struct gw_route *rt = gw_routes_get(c->core->gw->routes, user, server);
	struct err *err = NULL;

	if (!up && !(up = up_connect(c->core, upstream, &err))) {
		log_warn("upstream of '%s/%s' unreachable: %s", user, server, err->msg);
		err_free(&err);
		free(ws_key);
		gw__conn_error(c, req->path.encoded, 502, false, "server not reachable", NULL);
		return;
	}
	up_reset_exchange(up);
	up->ws_key = ws_key;
	up->c = c;
	c->up = up;
	c->user = xstrdup(user);
	c->server = xstrdup(server);
	c->strip = strip ? xstrndup(req->path.encoded, strip) : NULL;
	c->st = GW_CS_PROXY;
	/* the caller found the route just now, on this same loop turn */
	build_request(&up->out, c, req, who, strip,
		      rt && !strcmp(rt->upstream, upstream) ? rt->auth : NULL);
	if (up->from_pool) {
		up->replay = xmalloc(up->out.len);
		memcpy(up->replay, up->out.data, up->out.len);
		up->replay_len = up->out.len;
	}
	buf_consume(&c->in, req->head_len);
	c->body_left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
	c->body_sent = false;
	if (c->body_left > c->in.len) {
		if (req->expect_continue)
			gw__conn_queue(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		gw__conn_body_timer(c, c->in.len);
	}
	touch(c);
	up_kick(up, c);
	up_update_rx(up);
}

/* ---- client -> upstream ---- */

static void body_pump(struct gw_conn *c, struct gw_up *up)
{
	size_t n = c->in.len;

	if (n > c->body_left)
		n = (size_t)c->body_left;
	if (up->out.len >= GW_PENDING_MAX)
		return;
	if (n > GW_PENDING_MAX - up->out.len)
		n = GW_PENDING_MAX - up->out.len;
	if (n == 0)
		return;
	buf_append(&up->out, c->in.data, n);
	buf_consume(&c->in, n);
	c->body_left -= n;
	c->body_sent = true;
	gw_metrics_proxy_bytes(c->core->gw->metrics, n, 0);
}

void gw__proxy_pump(struct gw_conn *c)
{
	struct gw_up *up = c->up;
	size_t before;

	if (!up)
		return;
	before = up->out.len;
	if (c->st == GW_CS_TUNNEL)
		gw__ws_pump(c, up);
	else if (c->body_left)
		body_pump(c, up);
	/* a failed frame check detaches up (still allocated: up_close never frees) */
	if (c->up == up && up->out.len != before) {
		touch(c);
		up_kick(up, c);
	}
}

void gw__proxy_client_drained(struct gw_conn *c)
{
	if (c->up)
		up_update_rx(c->up);
}

void gw__proxy_detach(struct gw_conn *c)
{
	if (c->up)
		up_close(c->up); /* an unfinished exchange: never reused */
}

/* ---- upstream -> client ---- */

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Trims OWS around [*s, *e). */
static void trim_ows(const char **s, const char **e)
{
	while (*s < *e && is_ows(**s))
		(*s)++;
	while (*e > *s && is_ows((*e)[-1]))
		(*e)--;
}

/* Is the cookie path p[0..n) the user's prefix "/user/<name>" or below it
 * (whole segment)? */
static bool cookie_path_ok(const struct gw_conn *c, const char *p, size_t n)
{
	size_t pl = strlen(c->user);

	return n >= 6 + pl && memcmp(p, "/user/", 6) == 0 && memcmp(p + 6, c->user, pl) == 0 &&
	       (n == 6 + pl || p[6 + pl] == '/');
}

/* Drops Set-Cookie with a Domain attribute or a Path outside the user's
 * prefix (PRX-21, JH-3): user content must not set cookies for the hub. */
static bool cookie_attr_ok(const struct gw_conn *c, const char *a, size_t n)
{
	const char *e = a + n;

	trim_ows(&a, &e);
	n = (size_t)(e - a);
	if (n >= 6 && strncasecmp(a, "domain", 6) == 0 && (n == 6 || a[6] == '=' || is_ows(a[6])))
		return false;
	if (n < 5 || strncasecmp(a, "path=", 5) != 0)
		return true;
	return cookie_path_ok(c, a + 5, n - 5);
}

static bool cookie_allowed(const struct gw_conn *c, const char *v, size_t len)
{
	const char *end = v + len, *semi = memchr(v, ';', len);

	while (semi && semi < end) {
		const char *a = semi + 1, *next = memchr(a, ';', (size_t)(end - a));
		const char *ae = next ? next : end;

		if (!cookie_attr_ok(c, a, (size_t)(ae - a)))
			return false;
		semi = next;
	}
	return true;
}

static bool is_frame_ancestors(const char *d, size_t n)
{
	return n >= 15 && strncasecmp(d, "frame-ancestors", 15) == 0 && (n == 15 || is_ows(d[15]));
}

/*
 * JH-14: user content may not be framed. In path mode every user's content
 * shares the hub's origin, so the server's own frame-ancestors (Jupyter
 * sends 'self') would let another user's page frame this one: it is
 * replaced by 'none'. In subdomain mode the server's directive is kept and
 * 'none' added only when it has none.
 */
static void append_csp(struct buf *b, const struct gw_conn *c, const struct http_header *h)
{
	bool path_mode = c->core->gw->cfg->url_mode != GW_URL_SUBDOMAIN;
	const char *v = h->value, *end = v + h->value_len;
	bool any = false, has_fa = false;

	buf_appends(b, "Content-Security-Policy: ");
	while (v < end) {
		const char *semi = memchr(v, ';', (size_t)(end - v));
		const char *de = semi ? semi : end, *ds = v;
		bool fa;

		trim_ows(&ds, &de);
		fa = is_frame_ancestors(ds, (size_t)(de - ds));
		has_fa = has_fa || fa;
		if (de > ds && !(fa && path_mode)) {
			if (any)
				buf_appends(b, "; ");
			buf_append(b, ds, (size_t)(de - ds));
			any = true;
		}
		v = semi ? semi + 1 : end;
	}
	if (path_mode || !has_fa)
		buf_appendf(b, "%sframe-ancestors 'none'", any ? "; " : "");
	buf_appends(b, "\r\n");
}

/*
 * A stripped server thinks it lives at "/": an absolute-path Location
 * ("/login") would leave the user's prefix, so it gets the prefix back.
 * Full URLs and scheme-relative ones ("//host") are forwarded unchanged.
 */
static bool append_location(struct buf *b, const struct gw_conn *c, const struct http_header *h)
{
	if (!c->strip || h->name_len != 8 || strncasecmp(h->name, "Location", 8) != 0 ||
	    h->value_len < 1 || h->value[0] != '/' || (h->value_len > 1 && h->value[1] == '/'))
		return false;
	buf_appendf(b, "Location: %s", c->strip);
	buf_append(b, h->value, h->value_len);
	buf_appends(b, "\r\n");
	return true;
}

void gw__proxy_response_headers(struct buf *b, const struct gw_conn *c,
				const struct http_resp *resp, bool upgrade)
{
	for (size_t i = 0; i < resp->nhdr; i++) {
		const struct http_header *h = &resp->hdr[i];

		if (upgrade && h->name_len == 7 && strncasecmp(h->name, "Upgrade", 7) == 0)
			continue; /* written by us */
		if (name_in(h->name, h->name_len, hop_by_hop) ||
		    named_in_connection(resp->hdr, resp->nhdr, h->name, h->name_len))
			continue;
		if (h->name_len == 10 && strncasecmp(h->name, "Set-Cookie", 10) == 0 &&
		    !cookie_allowed(c, h->value, h->value_len)) {
			log_debug("dropped a Set-Cookie from '%s' (domain or path)", c->user);
			continue;
		}
		if (h->name_len == 23 && strncasecmp(h->name, "Content-Security-Policy", 23) == 0) {
			append_csp(b, c, h);
			continue;
		}
		if (append_location(b, c, h))
			continue;
		buf_append(b, h->name, h->name_len);
		buf_appends(b, ": ");
		buf_append(b, h->value, h->value_len);
		buf_appends(b, "\r\n");
	}
	if (!http_resp_header(resp, "Content-Security-Policy", NULL))
		buf_appends(b, "Content-Security-Policy: frame-ancestors 'none'\r\n"); /* JH-14 */
}

static void set_framing(struct gw_up *up, const struct http_resp *resp)
{
	struct gw_conn *c = up->c;

	if (c->is_head || resp->status == 204 || resp->status == 304) {
		up->body = UP_BODY_NONE;
	} else if (resp->chunked) {
		up->body = UP_BODY_CHUNKED;
		http_chunked_init(&up->ch);
	} else if (resp->content_length >= 0) {
		up->body = UP_BODY_CL;
		up->left = (uint64_t)resp->content_length;
	} else {
		up->body = UP_BODY_CLOSE;
		up->reusable = false;
		c->close_after = true;
	}
}

static void send_response_head(struct gw_up *up, const struct http_resp *resp)
{
	struct gw_conn *c = up->c;
	struct buf b;

	set_framing(up, resp);
	if (c->http10 && up->body == UP_BODY_CHUNKED)
		c->close_after = true; /* NEEDSWORK: dechunk for HTTP/1.0 clients */
	buf_init(&b, 4 * c->core->resp_lim.header_bytes + 1024);
	buf_appendf(&b, "HTTP/1.1 %d %s\r\n", resp->status, http_reason(resp->status));
	gw__proxy_response_headers(&b, c, resp, false);
	if (up->body == UP_BODY_CHUNKED)
		buf_appends(&b, "Transfer-Encoding: chunked\r\n");
	else if (up->body == UP_BODY_CL || (c->is_head && resp->content_length >= 0))
		buf_appendf(&b, "Content-Length: %lld\r\n", (long long)resp->content_length);
	buf_appendf(&b, "Connection: %s\r\n\r\n", gw__conn_closing(c) ? "close" : "keep-alive");
	c->status = resp->status;
	gw__conn_queue(c, b.data, b.len);
	buf_release(&b);
}

/* Response complete: the client continues, the upstream socket is pooled
 * only after a clean exchange. */
static void exchange_done(struct gw_up *up)
{
	struct gw_conn *c = up->c;
	bool close = c->body_left > 0; /* the rest of its body is still coming */

	up->reusable = up->reusable && up->resp_keep_alive && !close && up->out.len == 0 &&
		       !up->core->gw->stopping;
	c->up = NULL;
	up->c = NULL;
	if (up->reusable)
		pool_put(up);
	else
		up_close(up);
	gw__conn_response_done(c, close);
}

void gw__proxy_forward(struct gw_up *up, const char *p, size_t n)
{
	if (!n)
		return;
	gw__conn_queue(up->c, p, n);
	gw_metrics_proxy_bytes(up->core->gw->metrics, 0, n);
}

/* Body bytes of the response; calls exchange_done at its end. */
static void feed_body(struct gw_up *up, const char *p, size_t n)
{
	bool done = false;
	long k;

	switch (up->body) {
	case UP_BODY_NONE:
		done = true;
		break;
	case UP_BODY_CL:
		k = (long)(n < up->left ? n : up->left);
		gw__proxy_forward(up, p, (size_t)k);
		up->left -= (uint64_t)k;
		n -= (size_t)k;
		done = up->left == 0;
		break;
	case UP_BODY_CHUNKED:
		k = http_chunked_feed(&up->ch, p, n, &done);
		if (k < 0) {
			log_warn("bad chunked response from '%s'", up->upstream);
			gw__conn_kill(up->c); /* its head is gone already: cut it */
			return;
		}
		gw__proxy_forward(up, p, (size_t)k);
		n -= (size_t)k;
		break;
	case UP_BODY_CLOSE:
		gw__proxy_forward(up, p, n);
		n = 0;
		break;
	}
	if (n)
		up->reusable = false; /* bytes after the end: never reuse */
	if (done)
		exchange_done(up);
}

static void bad_gateway(struct gw_up *up, const char *why)
{
	struct gw_conn *c = up->c;

	log_warn("bad response from upstream '%s': %s", up->upstream, why);
	up_close(up);
	gw__conn_error(c, c->log_path, 502, false, "bad response from the server", NULL);
}

/* A complete response head at up->in: returns 1 when handled (in consumed),
 * 0 to parse again (a 1xx was skipped), -1 after an error. */
static int on_head(struct gw_up *up, const struct http_resp *resp)
{
	struct gw_conn *c = up->c;
	size_t rest = up->in.len - resp->head_len;

	if (resp->status >= 100 && resp->status < 200 && resp->status != 101) {
		buf_consume(&up->in, resp->head_len); /* 100 Continue, 103: dropped */
		return 0;
	}
	up->head_done = true;
	up->resp_keep_alive = resp->keep_alive;
	if (up->ws_key || resp->status == 101) {
		if (resp->status == 101) {
			if (gw__ws_start_tunnel(up, resp) < 0) {
				bad_gateway(up, "bad WebSocket handshake");
				return -1;
			}
			if (rest)
				gw__ws_from_upstream(up, up->in.data + resp->head_len, rest);
			buf_reset(&up->in);
			if (c->up == up)
				gw__conn_process(c); /* frames the client sent early */
			return 1;
		}
		c->close_after = true; /* refused upgrade: relay, do not tunnel */
		up->reusable = false;
	}
	send_response_head(up, resp);
	buf_consume(&up->in, resp->head_len);
	if (up->in.len || up->body == UP_BODY_NONE || (up->body == UP_BODY_CL && !up->left)) {
		struct buf tmp = up->in;

		buf_init(&up->in, tmp.max); /* feed_body may free up (exchange done) */
		feed_body(up, tmp.data ? tmp.data : "", tmp.len);
		buf_release(&tmp);
	}
	return 1;
}

static void parse_head(struct gw_up *up)
{
	struct http_resp *resp = xmalloc(sizeof(*resp));
	struct http_error e = { 0 };
	int r;

	do {
		memset(resp, 0, sizeof(*resp));
		r = http_parse_response(up->in.data, up->in.len, &up->core->resp_lim, resp, &e);
		if (r < 0)
			bad_gateway(up, e.message);
		else if (r == 1)
			r = on_head(up, resp) == 0 ? 2 : 1;
	} while (r == 2 && up->in.len);
	free(resp);
}

static void up_rx_dispatch(struct gw_up *up, const char *p, size_t n)
{
	if (up->tunnel) {
		gw__ws_from_upstream(up, p, n);
	} else if (!up->head_done) {
		if (buf_append(&up->in, p, n) < 0) {
			bad_gateway(up, "response head too large");
			return;
		}
		parse_head(up);
	} else {
		feed_body(up, p, n);
	}
}

/*
 * Bytes from the upstream. What they produce for the client is collected
 * (c->out_batch) and written at once at the end, in one write when the
 * client socket takes it, instead of waiting for a writeable callback.
 */
static int up_rx(struct gw_up *up, const char *p, size_t n)
{
	struct gw_conn *c = up->c;

	if (!c)
		return -1; /* idle sockets must stay silent */
	if (!up->got_bytes) {
		up->got_bytes = true;
		free(up->replay); /* the upstream answered: no retry any more */
		up->replay = NULL;
	}
	touch(c);
	gw_conn_ref(c); /* up may let go of c below */
	c->out_batch = true;
	up_rx_dispatch(up, p, n);
	c->out_batch = false;
	gw__conn_flush_now(c);
	gw_conn_unref(c);
	if (up->c)
		up_update_rx(up);
	return 0;
}

static int up_connected(struct gw_up *up)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(lws_get_socket_fd(up->wsi), SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e) {
		log_warn("connect to '%s' failed: %s", up->upstream, strerror(e ? e : errno));
		return -1;
	}
	lws_sul_cancel(&up->sul);
	up->st = UP_ACTIVE;
	return 0;
}

/* Writes up to a few chunks of up->out while the socket takes them. */
static int up_flush(struct gw_up *up)
{
	size_t n;

	for (int i = 0; i < 8 && up->out.len; i++) {
		n = up->out.len < GW_WRITE_CHUNK ? up->out.len : GW_WRITE_CHUNK;
		memcpy(up->core->wbuf + LWS_PRE, up->out.data, n);
		if (lws_write(up->wsi, up->core->wbuf + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
			return -1;
		buf_consume(&up->out, n);
		/* choked costs a poll(): only ask when more is waiting */
		if (up->out.len && lws_send_pipe_choked(up->wsi))
			break;
	}
	return 0;
}

/*
 * up->out grew while serving the client: write at once when the upstream
 * is connected and lws holds no unsent remainder for it (saves a poll
 * round trip), else (or for what is left, or client bytes that did not fit
 * yet) wait for the writeable callback. A failed write is left to that
 * callback, which fails again and closes the socket (up_closed tells c).
 */
static void up_kick(struct gw_up *up, const struct gw_conn *c)
{
	if (up->st != UP_ACTIVE)
		return; /* the connect completion writes */
	if (!lws_partial_buffered(up->wsi) && up_flush(up) == 0 && !up->out.len &&
	    !c->in.len)
		return;
	lws_callback_on_writable(up->wsi);
}

static int up_writeable(struct gw_up *up)
{
	if (up->st == UP_CONNECTING && up_connected(up) < 0) {
		if (up->c)
			gw__conn_error(up->c, up->c->log_path, 502, false, "server not reachable",
				       NULL);
		up_close(up);
		return 0;
	}
	if (up_flush(up) < 0)
		return -1;
	if (up->out.len)
		lws_callback_on_writable(up->wsi);
	if (up->c)
		gw__conn_process(up->c); /* room again: take more from the client */
	return 0;
}

/*
 * A pooled socket closed before any response byte: the upstream closed an
 * idle keep-alive connection as we reused it. Moves the exchange to a
 * fresh connection once, when the request can be sent again as it was
 * (its head is kept in up->replay; no body byte went out yet).
 */
static bool up_retry(struct gw_up *up)
{
	struct gw_conn *c = up->c;
	struct gw_up *fresh;
	struct err *err = NULL;

	if (!up->replay || up->got_bytes || up->head_done || c->body_sent ||
	    up->core->gw->stopping)
		return false;
	fresh = up_connect(up->core, up->upstream, &err);
	if (!fresh) {
		log_warn("retry of '%s' failed: %s", up->upstream, err->msg);
		err_free(&err);
		return false;
	}
	log_debug("pooled connection to '%s' was closed; retrying on a new one", up->upstream);
	up_reset_exchange(fresh);
	buf_append(&fresh->out, up->replay, up->replay_len);
	fresh->ws_key = up->ws_key;
	up->ws_key = NULL;
	up->c = NULL;
	fresh->c = c;
	c->up = fresh;
	up_update_rx(fresh);
	return true;
}

/* The upstream socket of c's exchange is gone: finish or fail it. */
static void up_lost(struct gw_up *up, struct gw_conn *c)
{
	c->up = NULL;
	up->c = NULL;
	if (up->tunnel) {
		gw_metrics_ws_close(up->core->gw->metrics);
		c->close_after = true;
		lws_callback_on_writable(c->wsi);
	} else if (up->head_done && up->body == UP_BODY_CLOSE) {
		gw__conn_response_done(c, true);
	} else if (!up->head_done) {
		gw__conn_error(c, c->log_path, 502, false,
			       up->st == UP_CONNECTING ? "server not reachable"
						       : "server closed the connection",
			       NULL);
	} else {
		gw__conn_kill(c); /* truncated response */
	}
}

/* lws reports the socket gone (the only place besides a failed adoption
 * where an upstream is freed). */
static void up_closed(struct gw_up *up)
{
	up->wsi = NULL;
	if (up->st == UP_IDLE)
		pool_unlink(up);
	if (up->c && !up_retry(up))
		up_lost(up, up->c);
	up_free(up);
}

static void up_timer_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_up *up = lws_container_of(sul, struct gw_up, sul);

	if (up->st == UP_CONNECTING && up->c) {
		log_warn("connect to '%s' timed out", up->upstream);
		gw__conn_error(up->c, up->c->log_path, 504, false, "server did not answer", NULL);
	}
	up_close(up);
}

int gw__proxy_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		       void *in, size_t len)
{
	struct gw_up *up = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX:
		return up ? up_rx(up, in, len) : -1;
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (!up || up->st == UP_DEAD)
			return -1;
		return up_writeable(up);
	case LWS_CALLBACK_RAW_CLOSE:
		if (up) {
			lws_set_opaque_user_data(wsi, NULL);
			up_closed(up);
		}
		return 0;
	default:
		return 0;
	}
}
