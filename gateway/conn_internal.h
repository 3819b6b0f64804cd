/*
 * conn_internal: state shared by the connection core (server.c, conn.c,
 * proxy.c). Not for handlers: they see struct gw_conn as opaque (gw.h).
 *
 * Files: server.c (context, listeners, dispatch), conn.c (client state
 * machine, responses), conn_auth.c (credentials of open connections:
 * revocation and expiry), conn_limits.c (per-address connection counts),
 * proxy.c (upstream sockets, HTTP exchanges), proxy_ws.c (WebSocket
 * tunnels).
 *
 * One struct gw_core per daemon hangs off the lws context user pointer.
 * Every client socket has one struct gw_conn (reference-counted: async hub
 * handlers keep it past the socket's end), and while a request is proxied
 * one struct gw_up for the upstream socket. Idle upstream sockets wait in
 * a keep-alive pool per upstream address.
 *
 * Buffers: c->in holds client bytes not yet consumed (the current request's
 * head and body, never the next request's beyond what the kernel already
 * gave us: reading pauses once the current request is complete, PRX-19);
 * c->out holds bytes for the client; up->out bytes for the upstream. Each
 * direction pauses its reader (lws_rx_flow_control) when the buffer on the
 * other side passes GW_PENDING_MAX, so a slow side never makes us buffer
 * without bound.
 *
 * Threading: event-loop thread only.
 */
#ifndef NBGATE_GATEWAY_CONN_INTERNAL_H
#define NBGATE_GATEWAY_CONN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <libwebsockets.h>

#include "common/buf.h"
#include "gateway/gw.h"
#include "gateway/http.h"
#include "gateway/ws.h"

#define GW_PENDING_MAX (256 * 1024)   /* per direction, then the reader pauses */
#define GW_WRITE_CHUNK 16384          /* bytes per lws_write */
#define GW_LOCAL_RESP_MAX (256u << 20) /* hub responses are built in memory */
#define GW_LINGER_MS 2000             /* drain after a final response (lingering close) */
#define GW_UP_IDLE_MS 30000           /* idle upstream keep-alive sockets */
#define GW_BODY_RATE_GRACE_MS 10000   /* body_min_rate applies after this */
#define GW_WS_PINGS_PER_S 100

struct auth_ident;
struct err;
struct gw_up;
struct gw_ip_table;

enum gw_conn_state {
	GW_CS_HEAD,      /* reading a request head (or idle keep-alive) */
	GW_CS_HUB_BODY,  /* reading the body of a hub request into c->in */
	GW_CS_HUB_WAIT,  /* hub handler answers (maybe later) */
	GW_CS_RESP,      /* a local response is queued; finishing the exchange */
	GW_CS_STREAM,    /* gw_stream_* response in progress */
	GW_CS_PROXY,     /* request proxied to c->up */
	GW_CS_TUNNEL,    /* WebSocket tunnel with c->up */
	GW_CS_LINGER,    /* final bytes sent, draining input before close */
	GW_CS_HOLD,      /* request parked until its server is back (hold.c);
			  * the head stays in c->in and is dispatched again */
};

struct gw_core {
	struct gw *gw;
	struct lws_vhost *vh;          /* main listener; upstream sockets join it */
	struct lws_vhost *redirect_vh; /* plain-HTTP redirect listener or NULL */
	struct gw_conn *conns;         /* live client connections */
	size_t nconns;
	struct gw_ip_table *ips;       /* connections per client address (PRX-18) */
	struct gw_up *idle;            /* upstream keep-alive pool */
	lws_sorted_usec_list_t cred_sul; /* credential expiry sweep (conn_auth.c) */
	bool cred_sul_armed;
	int64_t cred_next;             /* wall ms the sweep is scheduled for */
	size_t nconns_peak;            /* most connections since the last trim */
	lws_sorted_usec_list_t trim_sul; /* malloc_trim after mass closes (conn_limits.c) */
	bool trim_armed;
	int64_t trim_last;             /* mono ms of the last trim */
	FILE *access;                  /* access log (may be stderr) */
	int64_t access_flushed;        /* mono ms of the last access log flush */
	lws_sorted_usec_list_t access_sul; /* flushes what the log buffered (conn.c) */
	bool access_sul_armed;
	bool timers_off;               /* shutting down: arm no more timers */
	bool access_owned;
	struct http_limits lim;        /* requests */
	struct http_limits resp_lim;   /* upstream responses */
	char *public_scheme;           /* "http" / "https" */
	char *public_host;             /* lower-case host of public_url, no port */
	char *public_authority;        /* host[:port] as in public_url */
	char *public_port_sfx;         /* ":8000" or "" */
	char *public_origin;           /* scheme://authority */
	char *listen_host;             /* for the loopback Host literal rule */
	int listen_port;
	unsigned char wbuf[LWS_PRE + GW_WRITE_CHUNK];
};

/* client -> upstream WebSocket frames (PRX-25) */
struct gw_ws_rx {
	uint64_t frame_left;      /* payload bytes of the current frame still to pass */
	uint64_t msg_len;         /* data bytes of the current message so far */
	int64_t ping_window_ms;
	unsigned pings;
};

/* upstream -> client WebSocket frames: followed so that the gateway knows
 * frame boundaries (its own close frame may only go between frames) and
 * sees the server's close frame. */
struct gw_ws_tx {
	uint8_t hdr[14];          /* a frame header split across reads */
	size_t hdr_len;
	uint64_t frame_left;      /* payload bytes of the current frame still to pass */
	bool close_seen;          /* the server sent a close frame: nothing may follow */
};

/* The credential a connection last authenticated with (conn_auth.c). */
struct gw_cred {
	char handle[40];          /* "s:<id>"/"t:<id>"; "" = none */
	int64_t user_id;
	int64_t expires_at;       /* wall ms of the absolute limit, 0 = none */
	int64_t check_at;         /* wall ms of the next database re-check, 0 = none */
};

enum up_state { UP_CONNECTING, UP_ACTIVE, UP_IDLE, UP_DEAD };
enum up_body { UP_BODY_NONE, UP_BODY_CL, UP_BODY_CHUNKED, UP_BODY_CLOSE };

/*
 * One upstream socket. Lifetime: created by up_connect (proxy.c), freed
 * only when lws reports the socket closed (RAW_CLOSE -> up_closed) or when
 * adopting it fails; up_close() never frees, it unlinks and asks lws to
 * close. up->c and c->up point at each other or are both NULL.
 */
struct gw_up {
	struct gw_core *core;
	struct lws *wsi;
	struct gw_conn *c;          /* client being served; NULL when idle/orphaned */
	struct gw_up *next_idle;
	char *upstream;
	enum up_state st;
	struct buf out;             /* bytes for the upstream */
	struct buf in;              /* response head being accumulated */
	bool head_done;
	bool reusable;
	bool resp_keep_alive;
	bool rx_paused;
	bool tunnel;
	bool got_bytes;
	bool from_pool;             /* taken from the keep-alive pool for this exchange */
	char *replay;               /* pooled exchange: the request head, for one retry */
	size_t replay_len;
	char *ws_key;               /* client's Sec-WebSocket-Key (upgrade requests) */
	enum up_body body;
	uint64_t left;
	struct http_chunked ch;
	lws_sorted_usec_list_t sul; /* connect timeout, idle timeout */
};

struct gw_conn {
	struct gw_core *core;
	struct lws *wsi;                /* NULL once the socket is gone */
	struct gw_conn *next, *prev;
	int refs;
	enum gw_conn_state st;
	char ip[64];
	bool tls;
	struct buf in, out;
	bool rx_paused;
	bool close_after;               /* close once out is flushed */
	bool flushing_close;            /* last bytes handed to lws */
	bool resp_done;                 /* whole response is in out */
	bool out_batch;                 /* queue only: gw__conn_flush_now follows */
	bool lws_timeout_cleared;       /* lws's TLS-accept timeout removed */
	unsigned nreq;
	/* the current exchange */
	int64_t t_start;                /* mono ms */
	int status;
	uint64_t bytes_out;
	char method[24];
	bool is_head;
	bool req_keep_alive;
	bool http10;
	char *log_path;                 /* canonical path, redacted later */
	char *log_user;
	size_t hub_need;                /* bytes of head + body for a hub request */
	uint64_t body_left;             /* proxied request body still to forward */
	bool body_sent;                 /* some body byte went upstream (no retry) */
	struct gw_cred cred;            /* last credential used on this connection */
	struct auth_ident *auth_memo;   /* identity of the last proxied request (conn_auth.c) */
	unsigned char auth_memo_key[32];/* hash of that request's credential headers */
	int64_t auth_memo_at;           /* mono ms auth_memo was looked up */
	char *user, *server;            /* route key of a proxied request */
	char *strip;                    /* owned: base path removed upstream
					 * ("/user/a/vscode"), NULL when none */
	struct gw_up *up;
	struct gw_ws_rx ws;             /* tunnel: client -> upstream frames */
	struct gw_ws_tx wstx;           /* tunnel: upstream -> client frames */
	/* timers */
	lws_sorted_usec_list_t sul;
	int64_t deadline;               /* mono ms of the state's deadline, 0 none */
	int64_t sul_at;                 /* mono ms sul is armed for, 0 = not armed */
	int64_t body_start, body_last;  /* mono ms */
	uint64_t body_got;
	/* GW_CS_HOLD (gateway/hold.c): the verdict arrives by a writeable
	 * callback, so that hold.c needs nothing of the core but fields */
	enum { GW_HOLD_PARKED, GW_HOLD_RELEASE, GW_HOLD_FAIL } hold_verdict;
	size_t hold_head_len;           /* the parked request's head in c->in */
	char *hold_msg;                 /* owned: GW_HOLD_FAIL's 503 message */
};

/* ---- conn.c ---- */
struct gw_core *gw__core(struct lws *wsi);
struct gw_conn *gw__conn_new(struct gw_core *core, struct lws *wsi);
int gw__conn_rx(struct gw_conn *c, const void *p, size_t n);
int gw__conn_writeable(struct gw_conn *c);
void gw__conn_closed(struct gw_conn *c);
/* Kills the client socket asynchronously (with its upstream). */
void gw__conn_kill(struct gw_conn *c);
/* Re-evaluates whether the client socket should be read. */
void gw__conn_update_rx(struct gw_conn *c);
/* Runs the state machine over buffered input. */
void gw__conn_process(struct gw_conn *c);
/* Queues bytes for the client and asks for a writeable callback (unless
 * c->out_batch: then the caller runs gw__conn_flush_now afterwards). */
int gw__conn_queue(struct gw_conn *c, const void *p, size_t n);
/*
 * Writes what c->out holds at once when lws holds no unsent remainder for
 * the socket (saves a poll round trip per hop), then asks for a writeable
 * callback when bytes remain or the exchange has more to do (finish,
 * close). Order is kept: c->out only empties through lws_write, and lws
 * appends to its own remainder.
 */
void gw__conn_flush_now(struct gw_conn *c);
/* A local error answer: JSON for API paths, text otherwise; close for framing. */
void gw__conn_error(struct gw_conn *c, const char *path, int status, bool close,
		    const char *msg, const char *extra_header);
/* The proxied response is complete (head + body queued). */
void gw__conn_response_done(struct gw_conn *c, bool close);
/* Exchange bookkeeping: copies what the access log needs from req. */
void gw__conn_begin(struct gw_conn *c, const struct http_req *req);
void gw__conn_set_timer(struct gw_conn *c, int64_t in_ms);
/* Starts the body progress checks (PRX-17); already = body bytes in hand. */
void gw__conn_body_timer(struct gw_conn *c, uint64_t already);
/* Decides (and records) whether the connection closes after this response. */
bool gw__conn_closing(struct gw_conn *c);
bool gw__is_api_path(const char *path);
/* Flushes the access log and cancels its flush timer (shutdown). */
void gw__access_flush_stop(struct gw_core *core);

/* ---- conn_auth.c ---- */
/* Records who authenticated on c (handle, user, expiry) and arms the
 * expiry sweep. who may be NULL (no change). */
void gw__conn_set_cred(struct gw_conn *c, const struct auth_ident *who);
/* Stops the expiry sweep (shutdown). */
void gw__cred_sweep_stop(struct gw_core *core);
/*
 * auth_identify() for a proxied request, through a per-connection memo: a
 * request whose credential headers (Authorization, Cookie, Host) hash the
 * same as those this connection authenticated with less than
 * GW_AUTH_MEMO_MS ago reuses that identity without database work. Revoked
 * or expired credentials still end at once: gw_close_sessions_of and the
 * expiry sweep close the connection (and forget the memo); scope or group
 * changes show within GW_AUTH_MEMO_MS (TOK-6 allows 1 s). Returns like
 * auth_identify; on 1 *out is borrowed from c (valid until c's next
 * request) and *fresh tells whether the database was asked (the caller
 * then records the credential with gw__conn_set_cred). A miss that is not
 * a success forgets the memo.
 */
int gw__conn_identify(struct gw_conn *c, const struct http_req *req,
		      const struct auth_ident **out, bool *fresh, struct err **err);
/* Forgets c's memoised identity. */
void gw__conn_auth_forget(struct gw_conn *c);

/* ---- conn_limits.c ---- */
/* Counts of open connections per client address (PRX-18), O(1) per
 * accept. The table is created on first use and freed by gw__ip_free. */
size_t gw__ip_count(struct gw_core *core, const char *ip);
void gw__ip_add(struct gw_core *core, const char *ip);
void gw__ip_del(struct gw_core *core, const char *ip);
void gw__ip_free(struct gw_core *core);
/* Called after core->nconns changed: once the count falls well below its
 * peak (a mass close), gives freed heap back to the system (malloc_trim)
 * shortly after, at most once a second. */
void gw__conn_count_changed(struct gw_core *core);
/* Cancels a pending trim (shutdown). */
void gw__trim_stop(struct gw_core *core);

/* ---- server.c ---- */
/* Dispatches a parsed request head (state GW_CS_HEAD, req complete). */
void gw__dispatch(struct gw_conn *c, struct http_req *req);
/* Hub request whose body is complete in c->in. */
void gw__dispatch_hub(struct gw_conn *c, struct http_req *req);

/* ---- proxy.c ---- */
/*
 * Starts proxying req for c to route (user, server). who may be NULL only
 * when the caller decided the request needs no identity (never today).
 * Consumes the head from c->in; the body follows through gw__proxy_pump.
 * ws_key (owned, taken): the client's Sec-WebSocket-Key for an upgrade, else NULL.
 * strip: bytes of req->path.encoded not forwarded (a GW_ROUTE_STRIP_PREFIX
 * route, see gw_route_strip()); 0 forwards the path unchanged.
 */
void gw__proxy_start(struct gw_conn *c, const struct http_req *req, const struct auth_ident *who,
		     const char *user, const char *server, const char *upstream,
		     size_t strip, char *ws_key);
/* Moves buffered client bytes (request body, tunnel frames) upstream. */
void gw__proxy_pump(struct gw_conn *c);
/* c->out drained below the limit: resume reading the upstream. */
void gw__proxy_client_drained(struct gw_conn *c);
/* The client went away or is being killed: drop the upstream socket. */
void gw__proxy_detach(struct gw_conn *c);
/* lws callback for upstream sockets (protocol "nbgate-up"). */
int gw__proxy_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		       void *in, size_t len);
/* Closes every idle pooled upstream socket (shutdown). */
void gw__proxy_pool_flush(struct gw_core *core);
/* Closes every connection to `upstream`: pooled ones, and client
 * connections proxied or tunnelled there (killed: clients reconnect).
 * Before a checkpoint: CRIU cannot dump a Unix stream socket whose peer
 * (this process) stays outside the dump. */
void gw__proxy_drop_upstream(struct gw_core *core, const char *upstream);
/* Queues bytes of the upstream's answer for the client (metrics counted). */
void gw__proxy_forward(struct gw_up *up, const char *p, size_t n);

/* ---- proxy_ws.c ---- */
/* Client -> upstream tunnel bytes: checks every frame header (masking,
 * message cap, ping rate: PRX-25) and moves frames to up->out. */
void gw__ws_pump(struct gw_conn *c, struct gw_up *up);
/* Upstream -> client tunnel bytes: follows frame headers, forwards. */
void gw__ws_from_upstream(struct gw_up *up, const char *p, size_t n);
/* 101 from the upstream: checks Sec-WebSocket-Accept (PRX-24), answers the
 * client and enters tunnel mode. -1 for a bad handshake (nothing sent). */
int gw__ws_start_tunnel(struct gw_up *up, const struct http_resp *resp);
/* Ends a tunnel from the gateway's side: a close frame with code/reason
 * when the client stream is between frames, then closes. */
void gw__ws_fail(struct gw_conn *c, uint16_t code, const char *reason);
/* Shared with proxy.c: response headers minus hop-by-hop, cookies checked. */
void gw__proxy_response_headers(struct buf *b, const struct gw_conn *c,
				const struct http_resp *resp, bool upgrade);

#endif
