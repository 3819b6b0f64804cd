/*
 * metrics: the gateway's counters and their Prometheus rendering
 * (text exposition format 0.0.4) for GET /hub/metrics.
 *
 * The connection core calls the increment functions; the hub renders. All
 * counters live in one struct gw_metrics owned by struct gw.
 *
 * Threading: the increment functions use relaxed atomics, so they may be
 * called from any thread (the core calls them on the event loop); render
 * runs on the event-loop thread.
 */
#ifndef NBGATE_GATEWAY_METRICS_H
#define NBGATE_GATEWAY_METRICS_H

#include <stdint.h>

struct buf;
struct gw;
struct gw_metrics;

/* Upper bounds (seconds) of the spawn-duration histogram buckets; +Inf is implied. */
#define GW_METRICS_SPAWN_BUCKETS 9
extern const double gw_metrics_spawn_bounds[GW_METRICS_SPAWN_BUCKETS];

/* A new zeroed set of counters. Caller owns: gw_metrics_free(). Cannot fail. */
struct gw_metrics *gw_metrics_new(void);
/* Frees m; NULL is fine. */
void gw_metrics_free(struct gw_metrics *m);

/* One response sent with `status` (counted by class 1xx..5xx; others ignored). */
void gw_metrics_request(struct gw_metrics *m, int status);
/* Bytes proxied: in = client -> upstream, out = upstream -> client. */
void gw_metrics_proxy_bytes(struct gw_metrics *m, uint64_t in, uint64_t out);
/* A proxied WebSocket opened / closed (gauge). */
void gw_metrics_ws_open(struct gw_metrics *m);
void gw_metrics_ws_close(struct gw_metrics *m);
/* One completed spawn (start request -> ready) that took `seconds`. */
void gw_metrics_spawn(struct gw_metrics *m, double seconds);
/* One failed spawn (counted separately; not in the histogram). */
void gw_metrics_spawn_failed(struct gw_metrics *m);
/*
 * The culler acted on a server (gateway/culler.c): action is an enum
 * spawner_ckpt_mode (rendered "checkpoint", "commit", "stop"), reason
 * GW_METRICS_CULL_IDLE or GW_METRICS_CULL_MAX_AGE; others are ignored.
 */
enum { GW_METRICS_CULL_IDLE, GW_METRICS_CULL_MAX_AGE, GW_METRICS_CULL_REASONS };
void gw_metrics_cull(struct gw_metrics *m, int action, int reason);

/*
 * Appends the Prometheus text exposition of every metric to out: the
 * counters in m plus gauges computed from gw (routes published, users
 * active in the last 5 minutes, servers by state). gw may be NULL (gauges
 * read as 0). Metric names are nbgate_*. Event-loop thread.
 */
void gw_metrics_render(struct gw_metrics *m, struct gw *gw, struct buf *out);

/*
 * The same with the gw-derived gauges given explicitly (what render uses,
 * exposed for unit tests).
 */
void gw_metrics_render_values(struct gw_metrics *m, int64_t routes, int64_t active_users,
			      struct buf *out);

#endif
