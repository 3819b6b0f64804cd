/*
 * server: lws context and raw listeners, the event loop, signals, and the
 * request dispatcher (Host check, hub vs proxy, authorisation before any
 * upstream byte).
 *
 * Raw listeners with TLS on lws 4.1.6 (tested, notes/core.md): the vhost
 * needs LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG with
 * listen_accept_role "raw-skt", LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT in
 * the *vhost* options as well as the context's, and alpn "http/1.1"
 * (otherwise ALPN picks h2 and lws switches the socket to its h2 role).
 */
#define LOG_PREFIX "gateway/server: "

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/work.h"
#include "common/xalloc.h"
#include "gateway/auth.h"
#include "gateway/api.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/hold.h"
#include "gateway/route.h"
#include "gateway/scopes.h"
#include "gateway/server.h"
#include "gateway/users.h"

static volatile sig_atomic_t gw_stop_signal;
static struct lws_context *gw_signal_ctx;

/* ---- lws callbacks for client sockets ---- */

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			   void *in, size_t len)
{
	struct gw_conn *c = lws_get_opaque_user_data(wsi);
	struct gw_core *core;

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		core = gw__core(wsi);
		c = gw__conn_new(core, wsi);
		lws_set_opaque_user_data(wsi, c);
		return 0;
	case LWS_CALLBACK_RAW_RX:
		return c ? gw__conn_rx(c, in, len) : -1;
	case LWS_CALLBACK_RAW_WRITEABLE:
		return c ? gw__conn_writeable(c) : -1;
	case LWS_CALLBACK_RAW_CLOSE:
		if (c) {
			lws_set_opaque_user_data(wsi, NULL);
			gw__conn_closed(c);
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		core = gw__core(wsi);
		if (core && core->gw->work)
			work_drain(core->gw->work);
		/* backends with threads of their own (kubernetes) woke us too */
		if (core)
			spawner_poll(core->gw->spawner);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols gw_protocols[] = {
	{ "nbgate", client_callback, 0, 0, 0, NULL, 0 },
	{ "nbgate-up", gw__proxy_callback, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* ---- setup ---- */

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Splits public_url into scheme, authority, host and port suffix. */
static int parse_public_url(struct gw_core *core, const char *url, struct err **err)
{
	const char *p = strstr(url, "://"), *a, *end, *colon;

	if (!p)
		return err_set(err, EINVAL, "public_url '%s' has no scheme", url);
	core->public_scheme = xstrndup(url, (size_t)(p - url));
	lower(core->public_scheme);
	a = p + 3;
	end = a + strcspn(a, "/?#");
	core->public_authority = xstrndup(a, (size_t)(end - a));
	lower(core->public_authority);
	colon = strrchr(core->public_authority, ':');
	if (colon && !strchr(colon, ']')) {
		core->public_host = xstrndup(core->public_authority,
					     (size_t)(colon - core->public_authority));
		core->public_port_sfx = xstrdup(colon);
	} else {
		core->public_host = xstrdup(core->public_authority);
		core->public_port_sfx = xstrdup("");
	}
	core->public_origin = xasprintf("%s://%s", core->public_scheme, core->public_authority);
	return 0;
}

static void set_limits(struct gw_core *core, const struct gw_cfg *cfg)
{
	core->lim.header_bytes = cfg->header_bytes;
	core->lim.header_line = cfg->header_line;
	core->lim.request_line = cfg->request_line;
	core->lim.header_count = (size_t)cfg->header_count;
	core->lim.body_max = cfg->proxy_body_max > cfg->api_body_max ? cfg->proxy_body_max
								      : cfg->api_body_max;
	/* upstream heads may be larger (cookies, CSP); bodies are streamed */
	core->resp_lim = core->lim;
	core->resp_lim.header_bytes = cfg->header_bytes * 4;
	core->resp_lim.header_line = cfg->header_line * 4;
	core->resp_lim.header_count = (size_t)cfg->header_count * 2;
	core->resp_lim.body_max = UINT64_MAX >> 1;
}

static int open_access_log(struct gw_core *core, const char *path, struct err **err)
{
	if (!path || !*path || strcmp(path, "-") == 0) {
		core->access = stderr;
		return 0;
	}
	core->access = fopen(path, "ae");
	if (!core->access)
		return err_set_errno(err, "open access log '%s'", path);
	core->access_owned = true;
	setvbuf(core->access, NULL, _IOFBF, 65536); /* flushed by conn.c */
	return 0;
}

static struct lws_vhost *make_vhost(struct gw *gw, const char *name, const char *listen,
				    bool tls, struct err **err)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	char *host = NULL;
	int port;

	if (gw_cfg_split_listen(listen, &host, &port, err) < 0)
		return NULL;
	memset(&info, 0, sizeof(info));
	info.vhost_name = name;
	info.port = port;
	info.iface = (*host && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0) ? host
											: NULL;
	info.protocols = gw_protocols;
	info.options = LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
	info.listen_accept_role = "raw-skt";
	info.listen_accept_protocol = "nbgate";
	info.alpn = "http/1.1"; /* never h2 on lws 4.1.6 (R-0.2) */
	if (strchr(host, ':') == NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	if (tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = gw->cfg->tls_cert;
		info.ssl_private_key_filepath = gw->cfg->tls_key;
	}
	vh = lws_create_vhost(gw->lws, &info);
	if (!vh)
		err_set(err, EADDRNOTAVAIL, "cannot listen on '%s'%s", listen,
			tls ? " with TLS (check tls_cert/tls_key)" : "");
	free(host);
	return vh;
}

static int create_listeners(struct gw *gw, struct gw_core *core, struct err **err)
{
	char *host = NULL;

	if (gw_cfg_split_listen(gw->cfg->listen, &host, &core->listen_port, err) < 0)
		return -1;
	lower(host);
	core->listen_host = host;
	core->vh = make_vhost(gw, "nbgate", gw->cfg->listen, gw->cfg->tls, err);
	if (!core->vh)
		return -1;
	if (gw->cfg->http_redirect_listen && *gw->cfg->http_redirect_listen) {
		core->redirect_vh = make_vhost(gw, "nbgate-redirect",
					       gw->cfg->http_redirect_listen, false, err);
		if (!core->redirect_vh)
			return -1;
	}
	return 0;
}

/* Frees what gw_init allocated for core (the lws context is gone or was
 * never made). */
static void core_free(struct gw_core *core)
{
	if (core->access_owned)
		fclose(core->access);
	free(core->public_scheme);
	free(core->public_authority);
	free(core->public_host);
	free(core->public_port_sfx);
	free(core->public_origin);
	free(core->listen_host);
	free(core);
}

int gw_init(struct gw *gw, struct err **err)
{
	struct lws_context_creation_info info;
	struct gw_core *core = xcalloc(1, sizeof(*core));

	core->gw = gw;
	set_limits(core, gw->cfg);
	gw->routes = gw_routes_new();
	gw->close_upstream = gw_close_upstream;
	if (parse_public_url(core, gw->cfg->public_url, err) < 0 ||
	    open_access_log(core, gw->cfg->access_log, err) < 0)
		goto fail;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (gw->cfg->tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.user = core;
	info.pt_serv_buf_size = 65536; /* bytes per socket read (default 4096) */
	gw->lws = lws_create_context(&info);
	if (!gw->lws) {
		err_set(err, ENOMEM, "cannot create the lws context");
		goto fail;
	}
	if (create_listeners(gw, core, err) < 0)
		return err_wrap(err, "gateway");
	return 0;
fail:
	/* no context to hang core on yet */
	core_free(core);
	return -1;
}

void gw_release(struct gw *gw)
{
	struct gw_core *core;

	if (gw->lws) {
		core = lws_context_user(gw->lws);
		gw__cred_sweep_stop(core);
		gw__trim_stop(core);
		gw__access_flush_stop(core);
		lws_context_destroy(gw->lws);
		gw->lws = NULL;
		gw__ip_free(core); /* after the connections are gone */
		core_free(core);
	}
	gw_routes_free(gw->routes);
	gw->routes = NULL;
}

static void on_signal(int sig)
{
	gw_stop_signal = sig;
	/* wakes poll(); lws_cancel_service only writes to the event pipe */
	if (gw_signal_ctx)
		lws_cancel_service(gw_signal_ctx);
}

int gw_serve(struct gw *gw, struct err **err)
{
	struct sigaction sa;

	if (!gw->lws)
		return err_set(err, EINVAL, "gw_serve before gw_init");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	gw_signal_ctx = gw->lws;
	gw_stop_signal = 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	log_info("listening on '%s' (%s), public URL '%s'", gw->cfg->listen,
		 gw->cfg->tls ? "TLS" : "plain HTTP", gw->cfg->public_url);
	while (!gw_stop_signal) {
		if (lws_service(gw->lws, 0) < 0)
			break;
	}
	gw->stopping = true;
	log_info("stopping on signal %d", (int)gw_stop_signal);
	gw__cred_sweep_stop(lws_context_user(gw->lws));
	gw__trim_stop(lws_context_user(gw->lws));
	gw__access_flush_stop(lws_context_user(gw->lws));
	gw__proxy_pool_flush(lws_context_user(gw->lws));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	gw_signal_ctx = NULL;
	return 0;
}

/* ---- dispatch: Host (R-3.6) ---- */

struct host_info {
	char host[256];   /* lower-case, no port, brackets kept for v6 */
	char port[8];     /* "" when absent */
	char *user;       /* subdomain mode: the user whose host this is (owned) */
};

static void host_split(const struct http_req *req, struct host_info *h)
{
	size_t n = req->host_len < sizeof(h->host) - 1 ? req->host_len : sizeof(h->host) - 1;
	char *colon;

	/* HTTP/1.0 requests may come without Host (host NULL): memcpy from
	 * NULL is undefined even for 0 bytes (UBSan, found by t5009) */
	if (req->host)
		memcpy(h->host, req->host, n);
	else
		n = 0;
	h->host[n] = '\0';
	lower(h->host);
	h->port[0] = '\0';
	colon = strrchr(h->host, ':');
	if (colon && !strchr(colon, ']')) {
		snprintf(h->port, sizeof(h->port), "%s", colon + 1);
		*colon = '\0';
	}
	h->user = NULL;
}

static bool port_matches(const struct gw_core *core, const char *port)
{
	const char *want = core->public_port_sfx[0] ? core->public_port_sfx + 1
			   : strcmp(core->public_scheme, "https") == 0 ? "443" : "80";

	return !*port || strcmp(port, want) == 0;
}

static bool is_loopback_literal(const char *h)
{
	return strncmp(h, "127.", 4) == 0 || strcmp(h, "[::1]") == 0 || strcmp(h, "::1") == 0;
}

/* 1 hub host, 2 user host (h->user set), 0 unknown. */
static int host_classify(struct gw_conn *c, struct host_info *h)
{
	struct gw_core *core = c->core;
	const struct gw_cfg *cfg = core->gw->cfg;
	char lport[8];
	struct users_user *u = NULL;
	size_t hl, dl;

	if (strcmp(h->host, core->public_host) == 0 && port_matches(core, h->port))
		return 1;
	snprintf(lport, sizeof(lport), "%d", core->listen_port);
	if (is_loopback_literal(h->host) && strcmp(h->host, core->listen_host) == 0 &&
	    (!*h->port || strcmp(h->port, lport) == 0))
		return 1;
	if (cfg->url_mode != GW_URL_SUBDOMAIN || !cfg->domain || !port_matches(core, h->port))
		return 0;
	hl = strlen(h->host);
	dl = strlen(cfg->domain);
	if (hl <= dl + 1 || h->host[hl - dl - 1] != '.' ||
	    strcasecmp(h->host + hl - dl, cfg->domain) != 0)
		return 0;
	h->host[hl - dl - 1] = '\0';
	if (strchr(h->host, '.') || users_get(core->gw->db, h->host, &u, NULL) != 1)
		return 0;
	users_user_free(u);
	h->user = xstrdup(h->host);
	h->host[hl - dl - 1] = '.';
	return 2;
}

/* ---- dispatch: hub ---- */

static void send_redirect(struct gw_conn *c, const char *location)
{
	struct gw_response r;

	gw_response_init(&r, 302);
	gw_response_redirect(&r, 302, location);
	gw_send(c, &r);
}

static void answer_auth_error(struct gw_conn *c, const char *path, struct err *err)
{
	int status = err_http_status(err);
	char hdr[64];

	hdr[0] = '\0';
	if (status == 429)
		snprintf(hdr, sizeof(hdr), "Retry-After: %lld",
			 (long long)auth_retry_after(c->core->gw->auth));
	gw__conn_error(c, path, status, false, status >= 500 ? "internal error" : err->msg,
		       hdr[0] ? hdr : NULL);
}

static void request_host(const struct http_req *req, char *out, size_t n)
{
	struct host_info h;

	host_split(req, &h);
	snprintf(out, n, "%s", h.host);
}

void gw__dispatch_hub(struct gw_conn *c, struct http_req *req)
{
	struct gw *gw = c->core->gw;
	struct auth_ident *who = NULL;
	struct err *err = NULL;
	struct gw_request g = { 0 };
	char host[256];
	int r;

	c->st = GW_CS_HUB_WAIT;
	gw__conn_auth_forget(c); /* hub requests may change roles: look up anew after */
	r = auth_identify(gw->auth, gw->db, gw->cfg, req, c->ip, c->tls, &who, &err);
	if (r < 0) {
		answer_auth_error(c, req->path.encoded, err);
		err_free(&err);
	} else {
		request_host(req, host, sizeof(host));
		g.http = req;
		g.body = c->in.data + req->head_len;
		g.body_len = c->hub_need - req->head_len;
		g.who = who;
		g.via_cookie = who && who->via == AUTH_VIA_SESSION;
		g.client_ip = c->ip;
		g.tls = c->tls;
		g.host = host;
		if (who) {
			c->log_user = xstrdup(who->user);
			gw__conn_set_cred(c, who);
		}
		gw_hub_handle(gw, c, &g);
		auth_ident_free(who);
	}
	if (c->wsi)
		buf_consume(&c->in, c->hub_need);
}

static void dispatch_hub(struct gw_conn *c, struct http_req *req)
{
	const struct gw_cfg *cfg = c->core->gw->cfg;
	uint64_t cl = req->content_length > 0 ? (uint64_t)req->content_length : 0;

	if (cl > cfg->api_body_max) {
		/* before reading the body, and no 100 Continue (PRX-14) */
		gw__conn_error(c, req->path.encoded, 413, true, "request body too large", NULL);
		return;
	}
	c->hub_need = req->head_len + cl;
	c->body_left = 0; /* read here, not by the proxy */
	c->st = GW_CS_HUB_BODY;
	if (c->in.len < c->hub_need) {
		if (req->expect_continue)
			gw__conn_queue(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		gw__conn_body_timer(c, c->in.len - req->head_len);
	}
}

/* ---- dispatch: proxy (R-1.2, JH-4, JH-16, PRX-22) ---- */

static bool wants_html(const struct http_req *req)
{
	const struct http_header *a = http_req_header(req, "Accept", NULL);

	return req->method == HTTP_GET && !req->ws_upgrade && a &&
	       memmem(a->value, a->value_len, "text/html", 9);
}

static char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *o = xmalloc(n * 3 + 1), *p = o;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || strchr("-._~/", ch)) {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return o;
}

static void answer_anonymous(struct gw_conn *c, const struct http_req *req)
{
	char *next, *loc;

	if (!wants_html(req)) {
		gw__conn_error(c, req->ws_upgrade ? "/hub/api/" : req->path.encoded, 401, false,
			       "authentication required", NULL);
		return;
	}
	/* the query is left out: it may carry a token (JH-8) */
	next = url_encode(req->path.encoded);
	loc = xasprintf("%s/hub/login?next=%s", c->core->gw->cfg->url_mode == GW_URL_SUBDOMAIN
					       ? c->core->gw->cfg->public_url : "", next);
	send_redirect(c, loc);
	free(loc);
	free(next);
}

static bool scope_ok(struct gw *gw, const struct auth_ident *who, const char *user,
		     const char *server)
{
	char **groups;
	bool ok;

	if (strcmp(user, who->user) == 0)
		return scopes_allow(who->scopes, "access:servers", user, server,
				    (const char *const *)who->groups);
	groups = hub__user_groups(gw, user);
	ok = scopes_allow(who->scopes, "access:servers", user, server,
			  (const char *const *)groups);
	xstrv_free(groups);
	return ok;
}

/* The origin a page of user's server has: the hub's in path mode, the
 * user's own host in subdomain mode. Caller frees. */
static char *user_origin(const struct gw_core *core, const char *user)
{
	if (core->gw->cfg->url_mode == GW_URL_SUBDOMAIN)
		return xasprintf("%s://%s.%s%s", core->public_scheme, user, core->gw->cfg->domain,
				 core->public_port_sfx);
	return xstrdup(core->public_origin);
}

/* Cookie-authenticated upgrades need the right Origin; any Origin given must
 * be right (CSWSH, PRX-22). */
static bool ws_origin_ok(struct gw_conn *c, const struct http_req *req,
			 const struct auth_ident *who, const char *user)
{
	const struct http_header *o = http_req_header(req, "Origin", NULL);
	char *want;
	bool ok;

	if (!o)
		return who->via == AUTH_VIA_TOKEN;
	want = user_origin(c->core, user);
	ok = o->value_len == strlen(want) && strncasecmp(o->value, want, o->value_len) == 0;
	free(want);
	return ok;
}

/* Does the Referer name a page of origin (the origin itself, or below it)? */
static bool referer_from(const struct http_req *req, const char *origin)
{
	const struct http_header *r = http_req_header(req, "Referer", NULL);
	size_t n = strlen(origin);

	return r && r->value_len >= n && strncasecmp(r->value, origin, n) == 0 &&
	       (r->value_len == n || r->value[n] == '/');
}

static bool is_safe_method(enum http_method m)
{
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS;
}

/* Is the path /user/<u>/files/... (default server) or
 * /user/<u>/<server>/files/... (named server)? */
static bool is_files_path(const struct http_req *req, const char *server)
{
	size_t i = *server ? 3 : 2;

	return req->path.nseg > i && strcmp(req->path.seg[i], "files") == 0;
}

/*
 * JH-14 (jupyter_server CVE-2023-40170): a cookie-authenticated request
 * that the browser marks `Sec-Fetch-Site: cross-site` and that does not
 * come from a page of the hub or of the user's server (Referer) is refused
 * before the backend sees it when it
 *  - uses an unsafe method (anything but GET, HEAD, OPTIONS): a form post
 *    or fetch() from another site riding on the session cookie;
 *  - GETs /user/<u>[/<server>]/files/...: the endpoint that serves user
 *    content (HTML, SVG) from the hub's origin in path mode; a link on
 *    another site must not make the victim's browser render a file an
 *    attacker put into a shared or the victim's directory.
 * GET in general is not refused: a top-level navigation from another site
 * (a notebook link in a chat or a mail) is cross-site too and must keep
 * working. Token-authenticated requests are exempt: a cross-site page
 * cannot make a browser attach an Authorization header.
 */
static bool cross_site_refused(const struct gw_conn *c, const struct http_req *req,
			       const struct auth_ident *who, const char *user, const char *server)
{
	const struct http_header *site = http_req_header(req, "Sec-Fetch-Site", NULL);
	char *origin;
	bool from_us;

	if (who->via != AUTH_VIA_SESSION || !site || site->value_len != 10 ||
	    strncasecmp(site->value, "cross-site", 10) != 0)
		return false;
	if (is_safe_method(req->method) && !is_files_path(req, server))
		return false;
	origin = user_origin(c->core, user);
	from_us = referer_from(req, c->core->public_origin) || referer_from(req, origin);
	free(origin);
	return !from_us;
}

static void not_running(struct gw_conn *c, struct http_req *req, const struct auth_ident *who,
			const char *user, const char *server)
{
	struct gw_request g = { 0 };
	char host[256];

	request_host(req, host, sizeof(host));
	g.http = req;
	g.who = who;
	g.via_cookie = who->via == AUTH_VIA_SESSION;
	g.client_ip = c->ip;
	g.tls = c->tls;
	g.host = host;
	c->st = GW_CS_HUB_WAIT; /* its body (if any) is not read: the connection closes */
	/* a server put away (checkpoint) resumes; the request waits (hold.h) */
	if (!gw_hold_not_running(c->core->gw, c, &g, user, server))
		gw_hub_not_running(c->core->gw, c, &g, user, server);
}

/* Checks that need no identity: WebSocket handshake and body size. */
static bool proxy_precheck(struct gw_conn *c, struct http_req *req)
{
	struct http_error e = { 0 };
	const struct gw_cfg *cfg = c->core->gw->cfg;

	if (req->ws_upgrade && ws_validate_upgrade(req, &e) < 0) {
		gw__conn_error(c, "/hub/api/", e.status, e.close, e.message,
			       e.status == 426 ? "Sec-WebSocket-Version: 13" : NULL);
		return false;
	}
	if (req->content_length > 0 && (uint64_t)req->content_length > cfg->proxy_body_max) {
		gw__conn_error(c, req->path.encoded, 413, true, "request body too large", NULL);
		return false;
	}
	return true;
}

/*
 * A GW_ROUTE_STRIP_PREFIX route: the bare prefix redirects to its
 * trailing-slash form (relative URLs of the server resolve below it), a
 * path below it is forwarded without it (*strip bytes dropped). False when
 * the request was answered here.
 */
static bool strip_checked(struct gw_conn *c, struct http_req *req, const char *user,
			  const char *server, size_t *strip)
{
	char *loc;
	int r = gw_route_strip(req->path.encoded, user, server, strip);

	if (r == 0)
		return true;
	if (r < 0) {
		gw__conn_error(c, req->path.encoded, 404, false, "not found", NULL);
		return false;
	}
	loc = xasprintf("%s/%s%s", req->path.encoded, req->query ? "?" : "",
			req->query ? req->query : "");
	send_redirect(c, loc);
	free(loc);
	return false;
}

static void proxy_authorised(struct gw_conn *c, struct http_req *req,
			     const struct auth_ident *who, const char *user, bool fresh)
{
	struct gw *gw = c->core->gw;
	const char *server = "";
	size_t strip = 0;
	const struct gw_route *rt;
	const struct http_header *key;

	if (req->path.nseg >= 3 && gw_routes_get(gw->routes, user, req->path.seg[2]))
		server = req->path.seg[2];
	c->log_user = xstrdup(who->user);
	if (fresh) /* a memo hit keeps the record (and timer) of its lookup */
		gw__conn_set_cred(c, who);
	if (!scope_ok(gw, who, user, server)) {
		if (wants_html(req))
			gw__conn_error(c, NULL, 403, false, "you may not access this server", NULL);
		else
			gw__conn_error(c, "/hub/api/", 403, false,
				       "action is not authorized with current scopes; requires any of "
				       "[access:servers]", NULL);
		return;
	}
	if (req->ws_upgrade && !ws_origin_ok(c, req, who, user)) {
		gw__conn_error(c, "/hub/api/", 403, false, "cross-origin WebSocket refused", NULL);
		return;
	}
	if (cross_site_refused(c, req, who, user, server)) {
		gw__conn_error(c, req->path.encoded, 403, false, "cross-site request refused",
			       NULL);
		return;
	}
	rt = gw_routes_get(gw->routes, user, server);
	if (!rt) {
		not_running(c, req, who, user, server);
		return;
	}
	if ((rt->flags & GW_ROUTE_STRIP_PREFIX) && !strip_checked(c, req, user, server, &strip))
		return;
	key = http_req_header(req, "Sec-WebSocket-Key", NULL);
	gw__proxy_start(c, req, who, user, server, rt->upstream, strip,
			req->ws_upgrade && key ? xstrndup(key->value, key->value_len) : NULL);
}

static void dispatch_proxy(struct gw_conn *c, struct http_req *req, const char *host_user)
{
	const char *user = req->path.seg[1];
	const struct auth_ident *who = NULL;
	struct err *err = NULL;
	bool fresh = false;
	char *loc;
	int r;

	if (strchr(user, '/') || (host_user && strcmp(user, host_user) != 0)) {
		gw__conn_error(c, req->path.encoded, 404, false, "not found", NULL); /* R-3.7 */
		return;
	}
	if (req->path.nseg == 2 && !req->path.trailing_slash) {
		loc = xasprintf("%s/", req->path.encoded);
		send_redirect(c, loc);
		free(loc);
		return;
	}
	if (!proxy_precheck(c, req))
		return;
	r = gw__conn_identify(c, req, &who, &fresh, &err);
	if (r < 0) {
		answer_auth_error(c, req->ws_upgrade ? "/hub/api/" : req->path.encoded, err);
		err_free(&err);
		return;
	}
	if (r == 0) {
		answer_anonymous(c, req);
		return;
	}
	proxy_authorised(c, req, who, user, fresh);
}

/* The plain-HTTP redirect listener: everything to public_url (never Host). */
static void dispatch_redirect(struct gw_conn *c, struct http_req *req)
{
	char *loc = xasprintf("%s%s%s%s", c->core->gw->cfg->public_url, req->path.encoded,
			      req->query ? "?" : "", req->query ? req->query : "");
	struct gw_response r;

	c->close_after = true;
	gw_response_init(&r, 301);
	gw_response_redirect(&r, 301, loc);
	gw_send(c, &r);
	free(loc);
}

static bool seg_is(const struct http_req *req, size_t i, const char *s)
{
	return req->path.nseg > i && strcmp(req->path.seg[i], s) == 0;
}

/* Subdomain mode, hub host asked for /user/<u>/...: send it to u's origin. */
static void redirect_to_user_host(struct gw_conn *c, struct http_req *req)
{
	struct gw_core *core = c->core;
	char *loc = xasprintf("%s://%s.%s%s%s", core->public_scheme, req->path.seg[1],
			      core->gw->cfg->domain, core->public_port_sfx, req->path.encoded);

	send_redirect(c, loc);
	free(loc);
}

/* Subdomain mode, a user's host, anything but /user/...: `/` goes to the
 * user's server, the login hand-off callback to the hub, the rest 404. */
static void dispatch_user_host(struct gw_conn *c, struct http_req *req, const char *user)
{
	char *loc;

	if (req->path.nseg == 0) {
		loc = xasprintf("/user/%s/", user);
		send_redirect(c, loc);
		free(loc);
	} else if (req->path.nseg == 2 && seg_is(req, 0, "hub") &&
		   seg_is(req, 1, "oauth_callback")) {
		dispatch_hub(c, req); /* gw_hub_handle passes it to gw_hub_user_host */
	} else {
		gw__conn_error(c, req->path.encoded, 404, false, "not found", NULL);
	}
}

void gw__dispatch(struct gw_conn *c, struct http_req *req)
{
	struct host_info h;
	int kind;

	if (c->core->redirect_vh && lws_get_vhost(c->wsi) == c->core->redirect_vh) {
		dispatch_redirect(c, req);
		return;
	}
	host_split(req, &h);
	kind = host_classify(c, &h);
	if (kind == 0) {
		gw__conn_error(c, req->path.encoded, 421, false, "unknown host", NULL);
	} else if (seg_is(req, 0, "user") && req->path.nseg >= 2) {
		if (kind == 1 && c->core->gw->cfg->url_mode == GW_URL_SUBDOMAIN &&
		    !strchr(req->path.seg[1], '/'))
			redirect_to_user_host(c, req);
		else
			dispatch_proxy(c, req, h.user);
	} else if (kind == 2) {
		dispatch_user_host(c, req, h.user);
	} else if (req->path.nseg == 0) {
		send_redirect(c, "/hub/");
	} else if (seg_is(req, 0, "hub")) {
		dispatch_hub(c, req);
	} else {
		gw__conn_error(c, req->path.encoded, 404, false, "not found", NULL);
	}
	free(h.user);
}
