/*
 * servers: glue between the spawner and the gateway. Starts and stops a
 * user's server (with its own narrowly scoped API token, R-2.4), publishes
 * and removes routes as the spawner reports readiness and exits, feeds
 * the spawn-progress event streams and the spawn-duration histogram, and
 * re-adopts running servers at startup.
 *
 * The struct gw_servers is the spawner's event_arg (spawner_cfg), so the
 * handlers find it as gw->spawner->cfg.event_arg without any global.
 *
 * Threading: event-loop thread only.
 */
#ifndef NBGATE_GATEWAY_SERVERS_H
#define NBGATE_GATEWAY_SERVERS_H

#include <stdbool.h>

struct err;
struct gw;
struct gw_conn;
struct gw_holds;
struct spawner_event;
struct spawner_server;

struct gw_servers;

/* New glue state for gw (borrowed; must outlive it). Caller owns it:
 * gw_servers_free(). Pass it as spawner_cfg.event_arg with
 * gw_servers_on_event as on_event. */
struct gw_servers *gw_servers_new(struct gw *gw);
/* Ends every open progress stream and frees sv. NULL ok. */
void gw_servers_free(struct gw_servers *sv);

/* The spawner's event callback (spawner_cfg.on_event); arg = gw_servers. */
void gw_servers_on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev);

/*
 * Starts server `server` ("" = default) of user `user` (normalised):
 * revokes the server's old token, creates a new `server`-kind token scoped
 * users:activity!user access:servers!server, and passes it with the
 * NBGATE_* and JUPYTERHUB_* variables to spawner_server_start().
 * user_options_json: JSON object text or NULL, already checked by the
 * caller (JH-19). Returns 0 (started; readiness comes by event), or < 0:
 * ENOENT no such user (404), EALREADY already running (400), EBUSY pending
 * (409) and anything the spawner returns; the token is revoked again then.
 */
int gw_servers_start(struct gw *gw, const char *user, const char *server,
		     const char *user_options_json, struct err **err);

/*
 * Begins stopping (user, server); the route goes at once (no new requests
 * reach a stopping server). Returns 1 when a stop began, 0 when it was
 * not running, < 0 with *err (ENOENT 404, EBUSY 409).
 */
int gw_servers_stop(struct gw *gw, const char *user, const char *server, struct err **err);

/*
 * Progress stream for (user, server) on c: answers 200 text/event-stream
 * and sends `data: {"progress": N, "message": ..., "ready": bool, "url":
 * ...}` events until the server is ready or failed, then ends the
 * stream. A server already running gets its ready event at once; one that
 * is stopped or failed gets a failed event. Takes a reference on c.
 * Returns 0, or -ENOENT when the spawner does not know the server (the
 * caller answers 404).
 */
int gw_servers_subscribe(struct gw *gw, struct gw_conn *c, const char *user,
			 const char *server);

/*
 * Begins checkpointing (user, server) with mode (enum spawner_ckpt_mode)
 * because of reason (borrowed: "manual", "idle ..."); see
 * spawner_server_checkpoint(). The route goes when the checkpoint begins
 * (event), so new requests are held (hold.h). Returns 0, or < 0 with
 * *err carrying its HTTP status: ENOENT 404, EBUSY/ENOTSUP 409 (not
 * running, cannot checkpoint), ENOSPC 507 (disk checks, refused before
 * anything started), database errors 500.
 */
int gw_servers_checkpoint(struct gw *gw, const char *user, const char *server, int mode,
			  const char *reason, struct err **err);

/*
 * Resumes (user, server): a suspended server begins its restore (the
 * progress stream replays its events, held requests wait for it); one
 * being checkpointed is resumed as soon as the checkpoint is written; one
 * restoring or starting is left alone. Returns 1 when it is running
 * already, 0 when a resume began or is pending, < 0 with *err: ENOENT
 * 404, EINVAL 409 (stopped or failed: "start it instead"), EBUSY 409
 * (stopping), and the spawner's errors.
 */
int gw_servers_resume(struct gw *gw, const char *user, const char *server, struct err **err);

/* The held-request table (hold.h) of gw's servers glue, or NULL before the
 * spawner exists. Borrowed. */
struct gw_holds *gw_servers_holds(struct gw *gw);

/*
 * Startup: hands the checkpoint settings of the config to the spawner
 * (spawner_set_ckpt_cfg; CRIU is probed here, blocking about 0.1 s, only
 * for a backend that can checkpoint), then spawner_adopt_all(); live
 * servers come back through ready events, which publish their routes.
 * Errors from the spawner.
 */
int gw_servers_adopt(struct gw *gw, struct err **err);

#endif
