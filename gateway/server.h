/*
 * server: the gateway daemon's event loop (libwebsockets 4.1.6, poll).
 *
 * Lifecycle, called by gateway/main.c on the main thread:
 *   fill struct gw: cfg, db, auth, work, metrics (and started_ms);
 *   gw_init()    creates gw->lws (context, raw listener vhosts, TLS when
 *                cfg->tls) and gw->routes, opens the access log;
 *   create the spawner with gw->lws (it runs lws_sul timers there) and set
 *   gw->spawner;
 *   gw_serve()   runs the loop until SIGTERM/SIGINT, then stops accepting
 *                and returns 0 (gw->stopping is set);
 *   gw_release() destroys the context (closing every connection) and the
 *                routes. Members gw_init did not create are left alone.
 *
 * Listeners are RAW vhosts: lws accepts, does TLS (ALPN http/1.1 only, no
 * h2) and socket I/O; HTTP/1.1 is parsed by gateway/http.c
 * (SECURITY.md section 0). The work pool's notify must call
 * lws_cancel_service(gw->lws); the loop then runs work_drain(gw->work).
 */
#ifndef NBGATE_GATEWAY_SERVER_H
#define NBGATE_GATEWAY_SERVER_H

#include "gateway/gw.h"

struct err;

/* Creates gw->lws, gw->routes and the listeners. Errors: bind failures,
 * TLS key/cert load failures, a bad listen address (EINVAL). On error what
 * was created is released by gw_release(). */
int gw_init(struct gw *gw, struct err **err);

/* Runs the event loop until SIGTERM or SIGINT. SIGPIPE is ignored. Returns 0
 * after a signal, < 0 with *err if the loop could not run. */
int gw_serve(struct gw *gw, struct err **err);

/* Destroys what gw_init created (NULL-safe, idempotent). */
void gw_release(struct gw *gw);

#endif
