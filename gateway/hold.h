/*
 * hold: requests for a server that is put away (checkpointing, suspended,
 * restoring, or starting again after a failed restore) wait at the gateway
 * instead of failing (issue 4, DESIGN.md "Checkpoint").
 *
 * A held request is parked on its connection (state GW_CS_HOLD, the head
 * left in the input buffer, no busy loop: one lws_sul for the whole table
 * fires at the earliest deadline or when there is work). When the
 * server's route is published again (ready event) every held request of
 * that server is dispatched again from its head, exactly as if it had just
 * arrived: authentication, scopes and the proxy run as usual, so a
 * WebSocket upgrade (JupyterLab reconnecting its kernels) becomes a
 * tunnel and an API call gets the server's answer. When the resume fails,
 * the server ends up stopped, or the deadline passes, each one is answered
 * 503 {"message": ...} with Retry-After. Held connections whose client
 * went away are dropped when seen (on every add and every sweep).
 *
 * Bounds: at most GW_HOLD_MAX_PER_SERVER requests per server; each waits
 * at most twice the spawn timeout (a restore, then its fallback start).
 *
 * Checkpointing: a request that arrives while the server is being
 * checkpointed is held until the server runs again: the table remembers
 * that someone wants it and resumes the server as soon as the checkpoint
 * finishes (suspended event). A failed dump brings the server straight
 * back to running, which releases the requests too.
 *
 * The table is part of the servers glue (gw_servers_holds()); everything
 * runs on the event-loop thread.
 */
#ifndef NBGATE_GATEWAY_HOLD_H
#define NBGATE_GATEWAY_HOLD_H

#include <stdbool.h>

struct gw;
struct gw_conn;
struct gw_request;
struct spawner_event;
struct spawner_server;
struct gw_holds;

#define GW_HOLD_MAX_PER_SERVER 64
#define GW_HOLD_RETRY_AFTER_S 5

/* A new, empty table for gw (borrowed; gw->lws is used lazily). Caller owns
 * it: gw_holds_free(). */
struct gw_holds *gw_holds_new(struct gw *gw);

/* Drops every held request (their connections close with the daemon) and
 * frees h. Call before the lws context is destroyed. NULL ok. */
void gw_holds_free(struct gw_holds *h);

/*
 * The dispatcher's hook for a request for /user/<user>/[<server>/]... that
 * has no route (before the "not running" answer). When the server is put
 * away (gw_holds_should_hold) it checks access:servers for it, starts its
 * resume, and answers a browser navigation (GET, Accept text/html, no
 * WebSocket upgrade) with the 200 "Resuming your server" page, or holds
 * anything else (gw_hold_request); returns true then: the request is dealt
 * with. False: not put away, the caller answers "not running". server may
 * be "" for /user/<u>/<s>/... of a routeless named server <s>: the spawner
 * is asked which server it is. c must be in GW_CS_HUB_WAIT with the head
 * unconsumed.
 */
bool gw_hold_not_running(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const char *user, const char *server);

/*
 * Parks the request req on c for (user, server) (see the top comment).
 * Called from the dispatcher's "no route" path (gw_hub_not_running) while
 * the request's head is still unconsumed. Takes a reference on c.
 * Returns 0 when held (answer nothing now), -1 when the server's queue is
 * full (the caller answers 503).
 */
int gw_hold_request(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		    const char *user, const char *server);

/*
 * Feeds a spawner event of srv to the table (called by the servers glue
 * after it published or removed the route): ready releases srv's held
 * requests, failed/stopped answers them 503 with the event's message,
 * suspended resumes srv when a request or an API call asked for it during
 * the checkpoint. The work runs from the table's timer right after, never
 * inside the spawner's callback.
 */
void gw_holds_on_event(struct gw_holds *h, const struct spawner_server *srv,
		       const struct spawner_event *ev);

/*
 * Remembers that (user, server) must be resumed once its checkpoint
 * finishes (it is `checkpointing` now).
 */
void gw_holds_want_resume(struct gw_holds *h, const char *user, const char *server);

/* Number of requests held for (user, server) right now (tests, metrics). */
int gw_holds_count(const struct gw_holds *h, const char *user, const char *server);

/*
 * True when a request for srv should wait for it rather than be told
 * "not running": srv is checkpointing, suspended or restoring, or starting
 * as the fallback of a resume.
 */
bool gw_holds_should_hold(const struct gw_holds *h, const struct spawner_server *srv);

/* Records that srv's resume began (its fallback start is then held too). */
void gw_holds_resume_started(struct gw_holds *h, const char *user, const char *server);

#endif
