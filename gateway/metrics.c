/*
 * metrics: counters and Prometheus text rendering (format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
#define LOG_PREFIX "gateway/metrics: "

#include "gateway/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/gw.h"
#include "gateway/route.h"
#include "spawner/spawner.h"

/* Activity newer than this makes a user "active" (DESIGN: last 5 minutes). */
#define GW_METRICS_ACTIVE_MS (5 * 60 * 1000)

const double gw_metrics_spawn_bounds[GW_METRICS_SPAWN_BUCKETS] = {
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

struct gw_metrics {
	atomic_uint_fast64_t requests[5];   /* 1xx .. 5xx */
	atomic_uint_fast64_t proxy_in;
	atomic_uint_fast64_t proxy_out;
	atomic_int_fast64_t ws_open;
	atomic_uint_fast64_t spawn_failed;
	/* histogram: non-cumulative per bucket, +Inf last; sum in microseconds */
	atomic_uint_fast64_t spawn_bucket[GW_METRICS_SPAWN_BUCKETS + 1];
	atomic_uint_fast64_t spawn_count;
	atomic_uint_fast64_t spawn_sum_us;
	atomic_uint_fast64_t cull[SPAWNER_CKPT_MODE_COUNT][GW_METRICS_CULL_REASONS];
};

/* Label values of nbgate_cull_total (the config names of the actions). */
static const char *const cull_actions[SPAWNER_CKPT_MODE_COUNT] = {
	[SPAWNER_CKPT_CRIU] = "checkpoint", [SPAWNER_CKPT_COMMIT] = "commit",
	[SPAWNER_CKPT_STOP] = "stop",
};
static const char *const cull_reasons[GW_METRICS_CULL_REASONS] = {
	[GW_METRICS_CULL_IDLE] = "idle", [GW_METRICS_CULL_MAX_AGE] = "max_age",
};

struct gw_metrics *gw_metrics_new(void)
{
	struct gw_metrics *m = xcalloc(1, sizeof(*m));

	return m;
}

void gw_metrics_free(struct gw_metrics *m)
{
	free(m);
}

void gw_metrics_request(struct gw_metrics *m, int status)
{
	int cls = status / 100;

	if (!m || cls < 1 || cls > 5)
		return;
	atomic_fetch_add_explicit(&m->requests[cls - 1], 1, memory_order_relaxed);
}

void gw_metrics_proxy_bytes(struct gw_metrics *m, uint64_t in, uint64_t out)
{
	if (!m)
		return;
	if (in)
		atomic_fetch_add_explicit(&m->proxy_in, in, memory_order_relaxed);
	if (out)
		atomic_fetch_add_explicit(&m->proxy_out, out, memory_order_relaxed);
}

void gw_metrics_ws_open(struct gw_metrics *m)
{
	if (m)
		atomic_fetch_add_explicit(&m->ws_open, 1, memory_order_relaxed);
}

void gw_metrics_ws_close(struct gw_metrics *m)
{
	if (m)
		atomic_fetch_sub_explicit(&m->ws_open, 1, memory_order_relaxed);
}

void gw_metrics_spawn(struct gw_metrics *m, double seconds)
{
	size_t i;

	if (!m)
		return;
	if (!(seconds >= 0)) /* also rejects NaN */
		seconds = 0;
	for (i = 0; i < GW_METRICS_SPAWN_BUCKETS; i++)
		if (seconds <= gw_metrics_spawn_bounds[i])
			break;
	atomic_fetch_add_explicit(&m->spawn_bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->spawn_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->spawn_sum_us, (uint64_t)(seconds * 1e6),
				  memory_order_relaxed);
}

void gw_metrics_spawn_failed(struct gw_metrics *m)
{
	if (m)
		atomic_fetch_add_explicit(&m->spawn_failed, 1, memory_order_relaxed);
}

void gw_metrics_cull(struct gw_metrics *m, int action, int reason)
{
	if (!m || action < 0 || action >= SPAWNER_CKPT_MODE_COUNT || reason < 0 ||
	    reason >= GW_METRICS_CULL_REASONS)
		return;
	atomic_fetch_add_explicit(&m->cull[action][reason], 1, memory_order_relaxed);
}

static uint64_t ld(atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void metric_head(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_requests(struct gw_metrics *m, struct buf *out)
{
	int i;

	metric_head(out, "nbgate_http_requests_total", "counter",
		    "HTTP responses sent by the gateway, by status class.");
	for (i = 0; i < 5; i++)
		buf_appendf(out, "nbgate_http_requests_total{code=\"%dxx\"} %llu\n", i + 1,
			    (unsigned long long)ld(&m->requests[i]));
}

static void render_proxy(struct gw_metrics *m, struct buf *out)
{
	int64_t ws = atomic_load_explicit(&m->ws_open, memory_order_relaxed);

	metric_head(out, "nbgate_proxy_bytes_total", "counter",
		    "Bytes proxied to and from user servers.");
	buf_appendf(out, "nbgate_proxy_bytes_total{direction=\"in\"} %llu\n",
		    (unsigned long long)ld(&m->proxy_in));
	buf_appendf(out, "nbgate_proxy_bytes_total{direction=\"out\"} %llu\n",
		    (unsigned long long)ld(&m->proxy_out));
	metric_head(out, "nbgate_websockets_open", "gauge",
		    "Proxied WebSocket connections currently open.");
	buf_appendf(out, "nbgate_websockets_open %lld\n", (long long)(ws < 0 ? 0 : ws));
}

static void render_spawn(struct gw_metrics *m, struct buf *out)
{
	uint64_t cum = 0;
	size_t i;

	metric_head(out, "nbgate_spawn_duration_seconds", "histogram",
		    "Time from a start request to the server answering.");
	for (i = 0; i < GW_METRICS_SPAWN_BUCKETS; i++) {
		cum += ld(&m->spawn_bucket[i]);
		buf_appendf(out, "nbgate_spawn_duration_seconds_bucket{le=\"%g\"} %llu\n",
			    gw_metrics_spawn_bounds[i], (unsigned long long)cum);
	}
	cum += ld(&m->spawn_bucket[GW_METRICS_SPAWN_BUCKETS]);
	buf_appendf(out, "nbgate_spawn_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		    (unsigned long long)cum);
	buf_appendf(out, "nbgate_spawn_duration_seconds_sum %.6f\n",
		    (double)ld(&m->spawn_sum_us) / 1e6);
	buf_appendf(out, "nbgate_spawn_duration_seconds_count %llu\n",
		    (unsigned long long)ld(&m->spawn_count));
	metric_head(out, "nbgate_spawn_failures_total", "counter",
		    "Server starts that failed.");
	buf_appendf(out, "nbgate_spawn_failures_total %llu\n",
		    (unsigned long long)ld(&m->spawn_failed));
}

static void render_cull(struct gw_metrics *m, struct buf *out)
{
	metric_head(out, "nbgate_cull_total", "counter",
		    "Servers the idle culler acted on, by action and reason.");
	for (int a = 0; a < SPAWNER_CKPT_MODE_COUNT; a++)
		for (int r = 0; r < GW_METRICS_CULL_REASONS; r++)
			buf_appendf(out, "nbgate_cull_total{action=\"%s\",reason=\"%s\"} %llu\n",
				    cull_actions[a], cull_reasons[r],
				    (unsigned long long)ld(&m->cull[a][r]));
}

void gw_metrics_render_values(struct gw_metrics *m, int64_t routes, int64_t active_users,
			      struct buf *out)
{
	render_requests(m, out);
	render_proxy(m, out);
	metric_head(out, "nbgate_routes", "gauge", "Routes to user servers currently published.");
	buf_appendf(out, "nbgate_routes %lld\n", (long long)routes);
	metric_head(out, "nbgate_active_users", "gauge",
		    "Users with activity in the last 5 minutes.");
	buf_appendf(out, "nbgate_active_users %lld\n", (long long)active_users);
	render_spawn(m, out);
	render_cull(m, out);
}

/* Distinct users whose servers saw activity recently (servers are listed
 * per user consecutively or not: count each user once via a small scan). */
static int64_t count_active_users(struct spawner *sp, int64_t now_ms)
{
	struct spawner_server *s, *t;
	int64_t n = 0;
	bool seen;

	for (s = spawner_server_next(sp, NULL); s; s = spawner_server_next(sp, s)) {
		if (now_ms - s->last_activity_ms > GW_METRICS_ACTIVE_MS)
			continue;
		seen = false;
		for (t = spawner_server_next(sp, NULL); t && t != s; t = spawner_server_next(sp, t))
			if (now_ms - t->last_activity_ms <= GW_METRICS_ACTIVE_MS &&
			    strcmp(t->user, s->user) == 0)
				seen = true;
		if (!seen)
			n++;
	}
	return n;
}

static void render_servers(struct spawner *sp, struct buf *out)
{
	int64_t count[SPAWNER_STATE_COUNT] = { 0 };
	struct spawner_server *s;
	int i;

	for (s = spawner_server_next(sp, NULL); s; s = spawner_server_next(sp, s))
		if ((int)s->state >= 0 && s->state < SPAWNER_STATE_COUNT)
			count[s->state]++;
	metric_head(out, "nbgate_servers", "gauge", "User servers known, by lifecycle state.");
	for (i = 0; i < SPAWNER_STATE_COUNT; i++)
		buf_appendf(out, "nbgate_servers{state=\"%s\"} %lld\n",
			    spawner_state_name((enum spawner_state)i), (long long)count[i]);
}

void gw_metrics_render(struct gw_metrics *m, struct gw *gw, struct buf *out)
{
	int64_t routes = 0, active = 0;

	if (gw && gw->routes)
		routes = (int64_t)gw_routes_count(gw->routes);
	if (gw && gw->spawner)
		active = count_active_users(gw->spawner, time_now_ms());
	gw_metrics_render_values(m, routes, active, out);
	if (gw && gw->spawner)
		render_servers(gw->spawner, out);
}
