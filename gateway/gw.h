/*
 * gw: the daemon object and the interface between the connection core
 * (gateway/server.c, conn.c, proxy.c) and the request handlers for the
 * hub's own pages and REST API (gateway/hub.c, api_*.c, pages.c).
 *
 * Threading: everything here runs on the event-loop thread. Slow work goes
 * to the worker pool (common/work.h) and comes back through its completion
 * queue, drained on the loop after lws_cancel_service().
 */
#ifndef NBGATE_GATEWAY_GW_H
#define NBGATE_GATEWAY_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "gateway/http.h"

struct cJSON;
struct db;
struct lws_context;
struct gw_cfg;
struct gw_routes;
struct gw_metrics;
struct spawner;
struct auth;
struct auth_ident;
struct work_pool;

/* The daemon: one per process, created by gw_serve(). Members are owned. */
struct gw {
	const struct gw_cfg *cfg;
	struct db *db;
	struct lws_context *lws;
	struct gw_routes *routes;
	struct gw_metrics *metrics;
	struct spawner *spawner;
	struct auth *auth;           /* throttles, keys, dummy hash */
	struct work_pool *work;
	int64_t started_ms;          /* wall clock, ms */
	bool stopping;
	/* gw_close_upstream() once the core runs (server.c), else NULL: a
	 * pointer, so that handler code calling it does not link the core */
	void (*close_upstream)(struct gw *gw, const char *upstream);
};

/* One client connection (opaque). Reference-counted so that an async
 * handler can answer later; check gw_conn_alive() before answering. */
struct gw_conn;

/* A request handed to a hub handler: head parsed and validated, body read
 * completely (at most cfg->api_body_max bytes), caller identified. All
 * members are borrowed for the duration of the handler call only. */
struct gw_request {
	const struct http_req *http;
	const char *body;
	size_t body_len;
	const struct auth_ident *who;   /* NULL when not authenticated */
	bool via_cookie;                /* who came from a session cookie (CSRF applies) */
	const char *client_ip;          /* textual address of the peer */
	bool tls;
	const char *host;               /* lower-cased Host without port */
};

/* A response being built. Owned by whoever initialised it until passed to
 * gw_send(), which takes its contents. */
struct gw_response {
	int status;
	struct buf head;  /* extra header lines, each "Name: value\r\n" */
	struct buf body;
};

void gw_response_init(struct gw_response *r, int status);
void gw_response_release(struct gw_response *r);
/* Adds one header line; name and value must be free of CR/LF (asserted). */
void gw_response_header(struct gw_response *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets status and a JSON body (Content-Type application/json). Takes json. */
void gw_response_json(struct gw_response *r, int status, struct cJSON *json);
/* JSON error body {"status": N, "message": "..."} (JupyterHub shape). */
void gw_response_error(struct gw_response *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* HTML page: escapes nothing itself; use gw_html_escape for input. */
void gw_response_html(struct gw_response *r, int status, const char *html);
/* 302/303 redirect to an absolute path on this host (caller validated). */
void gw_response_redirect(struct gw_response *r, int status, const char *location);

/*
 * Sends a complete response on c and consumes r. Adds Date, Content-Length,
 * Connection, and the security headers of R-1.5 / AUTH-13 for hub pages.
 * The connection continues with the next pipelined request, or closes when
 * the request or response asked for it.
 */
void gw_send(struct gw_conn *c, struct gw_response *r);

/* Streaming responses (text/event-stream for spawn progress): head first,
 * then chunks, then end. The body is sent with chunked encoding. */
void gw_stream_begin(struct gw_conn *c, struct gw_response *head);
int gw_stream_write(struct gw_conn *c, const char *p, size_t n);
void gw_stream_end(struct gw_conn *c);

struct gw_conn *gw_conn_ref(struct gw_conn *c);
void gw_conn_unref(struct gw_conn *c);
/* False once the client went away; an async handler then just unrefs. */
bool gw_conn_alive(const struct gw_conn *c);

/* The hub's router (gateway/hub.c): everything that is not proxied.
 * Must answer exactly once, now or later (async). */
void gw_hub_handle(struct gw *gw, struct gw_conn *c, const struct gw_request *req);

/* HTML page for /user/<name>/... when that server is not running (HTML
 * clients), or a 503 JSON for API clients; written by gateway/pages.c. */
void gw_hub_not_running(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const char *user, const char *server);

/*
 * Subdomain mode: a request for /hub/... that arrived on host_user's own
 * host (<user>.<domain>). Serves GET /hub/oauth_callback?code=&next= (the
 * login hand-off, gateway/handoff.c): consumes the one-time code (bound to
 * this host), sets a host-only session cookie for this host and redirects
 * to next (a path under /user/<host_user>/); invalid, used or expired
 * code -> 403 page, no cookie. Everything else -> 404. Answers now.
 * gw_hub_handle() calls it itself for requests whose req->host is a user
 * host, so the core only has to route the callback path to the hub.
 */
void gw_hub_user_host(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		      const char *host_user);

/*
 * Closes every proxied WebSocket and keep-alive connection whose last
 * credential was auth_handle: "s:<session id>", "t:<token id>", or
 * "u:<user id>" for every connection of that user (logout, revocation,
 * user deletion: JH-11, TOK-6). A connection waiting for a hub answer
 * right now (the logout request itself) gets its answer, then closes.
 */
void gw_close_sessions_of(struct gw *gw, const char *auth_handle);

/*
 * Closes every connection to the upstream `upstream` ("unix:/..."):
 * keep-alive ones, and client connections proxied or tunnelled there
 * (their clients reconnect, and are held while the server is away).
 * Before a checkpoint: CRIU cannot dump a Unix stream socket whose peer,
 * this process, stays outside the dump. Event-loop thread.
 */
void gw_close_upstream(struct gw *gw, const char *upstream);

/* HTML-escapes s (& < > " ' `) into a new string; caller frees. */
char *gw_html_escape(const char *s);

#endif
