/*
 * activity: what counts as a user being active on a server (issue 4 item 2,
 * DESIGN.md "Idle culling").
 *
 * A server is idle only when every source is quiet. Each source records
 * activity with spawner_server_touch(sp, srv, now_ms, "<source>"):
 *
 *  proxy     HTTP requests and WebSocket data frames through the proxy, in
 *            either direction, except what an idle open JupyterLab tab does
 *            by itself (gw_activity_http_counts(), gw_activity_ws_counts()).
 *            Called by gateway/proxy.c and proxy_ws.c on the event loop.
 *  kernel    a kernel executing (execution_state "busy") or a kernel's own
 *  terminal  last_activity (terminals: output or input) newer than ours,
 *            read from the server's REST API by the culler (culler.c) on
 *            the worker pool through gw_activity_probe_jupyter().
 *  cpu, gpu  CPU use of the sandbox's cgroup, or utilisation of the GPUs
 *            allocated to the server, above the rules' thresholds
 *            (gw_activity_cpu_usec(), gw_activity_gpu_util()).
 *
 * The pure helpers (classifiers, parsers, threshold maths, the culling
 * verdict) are here so that tests/unit/gateway/test_activity.c can reach
 * them; the blocking probes run on worker threads only.
 */
#ifndef NBGATE_GATEWAY_ACTIVITY_H
#define NBGATE_GATEWAY_ACTIVITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct gw;
struct gw_cull_rules;

/*
 * Kernel-channel WebSocket frames within this many ms of the tunnel's
 * upgrade request do not count: JupyterLab's connect exchange
 * (kernel_info, comm_info, status busy/idle), measured at about 1 s.
 */
#define GW_ACTIVITY_WS_SETTLE_MS 10000

/* Probe limits (worker threads): per request, and response size (head + body). */
#define GW_ACTIVITY_PROBE_TIMEOUT_MS 2000
#define GW_ACTIVITY_PROBE_MAX (1024 * 1024)

/* ---- classifiers (pure; any thread) ---- */

/*
 * The part of a canonical request path (http_path.encoded) below the
 * server's base: "/user/a/api/kernels" -> "/api/kernels" for the default
 * server, "/user/a/lab1/api/kernels" -> "/api/kernels" for server "lab1".
 * Borrowed from encoded; "" when the path is the bare prefix.
 */
const char *gw_activity_subpath(const char *encoded, const char *server);

/*
 * Does an HTTP request (method, path below the base: gw_activity_subpath)
 * count as activity? False for the periodic polling of an idle open
 * JupyterLab tab (GET/HEAD of its polled API paths, see activity.c for the
 * recorded list) and for the upgrade request of a kernel channel
 * WebSocket; true for everything else.
 */
bool gw_activity_http_counts(const char *method, const char *subpath);

/*
 * Does a WebSocket data frame (either direction) on the tunnel opened for
 * subpath, age_ms after its upgrade request, count? Never for the event
 * stream (/api/events/...: it echoes the polling); for kernel channels
 * only after GW_ACTIVITY_WS_SETTLE_MS; always for the rest (terminals,
 * language servers, anything else). Control frames never count: the
 * caller passes data frames only.
 */
bool gw_activity_ws_counts(const char *subpath, int64_t age_ms);

/* ---- proxy hooks (event-loop thread) ---- */

/*
 * Traffic of an HTTP exchange for (user, server) whose request was
 * `method` `encoded_path` (canonical): touches the server with source
 * "proxy" at now_ms unless gw_activity_http_counts() says no. NULL-safe on
 * every pointer; a server the spawner does not know is ignored.
 */
void gw_activity_http(struct gw *gw, const char *user, const char *server, const char *method,
		      const char *encoded_path, int64_t now_ms);

/* A WebSocket data frame on the tunnel for (user, server) opened for
 * encoded_path age_ms ago: touches with "proxy" when it counts. */
void gw_activity_ws_frame(struct gw *gw, const char *user, const char *server,
			  const char *encoded_path, int64_t age_ms);

/* ---- parsers and maths (pure; any thread) ---- */

/*
 * Jupyter's timestamps ("2024-05-01T10:20:30.123456Z", "+00:00" or no zone
 * = UTC) -> ms since the epoch; -1 when malformed.
 */
int64_t gw_activity_parse_iso(const char *s);

/* What the server's REST API says (gw_activity_parse_kernels/_terminals). */
struct gw_activity_jupyter {
	int kernels;              /* kernels listed */
	int busy;                 /* of those, execution_state "busy" */
	int64_t kernel_last_ms;   /* newest kernel last_activity, 0 = none */
	int terminals;
	int64_t terminal_last_ms; /* newest terminal last_activity, 0 = none */
};

/*
 * Parses GET /api/kernels (a JSON list of kernel models) into out (adds to
 * kernels, busy, kernel_last_ms). EINVAL when it is not a list of objects.
 */
int gw_activity_parse_kernels(const char *json, size_t len, struct gw_activity_jupyter *out,
			      struct err **err);
/* Same for GET /api/terminals (terminals, terminal_last_ms). */
int gw_activity_parse_terminals(const char *json, size_t len, struct gw_activity_jupyter *out,
				struct err **err);

/*
 * True when the CPU time used between two samples (usec, taken at mono
 * ms) is above threshold_pct percent of one CPU. False when the interval
 * is not positive or the counter went backwards (a process left).
 */
bool gw_activity_cpu_busy(int64_t usec0, int64_t ms0, int64_t usec1, int64_t ms1,
			  double threshold_pct);

/*
 * nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits
 * output -> the highest utilisation among the GPUs whose index is in
 * idx[0..n); -1 when none of them is listed or the text is malformed.
 */
int gw_activity_gpu_util_parse(const char *csv, const int *idx, int n);

/* The culler's verdict on one running server (gw_activity_cull_verdict). */
enum gw_cull_verdict {
	GW_VERDICT_KEEP = 0,  /* active enough, or the rules never cull */
	GW_VERDICT_IDLE,      /* idle for idle_timeout: act */
	GW_VERDICT_MAX_AGE,   /* started max_age ago: act */
	GW_VERDICT_SAVED,     /* past idle_timeout by the traffic clock, but a
			      * probe source (kernel, terminal, cpu, gpu) was
			      * active: keep, and say why */
};

/*
 * The threshold maths. now, started (0 = unknown), last (every source) and
 * traffic_last (proxy, API and start only) are wall-clock ms. max_age wins
 * over idleness; SAVED needs traffic_last past the timeout while last is
 * not.
 */
enum gw_cull_verdict gw_activity_cull_verdict(const struct gw_cull_rules *r, int64_t now,
					      int64_t started, int64_t last,
					      int64_t traffic_last);

/*
 * Whether rules r apply to a server at all: named servers only with
 * r->named_servers, server_type "tensorboard" only with r->tensorboards.
 */
bool gw_activity_cull_eligible(const struct gw_cull_rules *r, const char *server_name,
			       const char *server_type);

/* ---- blocking probes (worker threads only) ---- */

/*
 * GET target from upstream ("unix:/path" or "host:port" with a numeric
 * host) with "Authorization: token <token>" (token may be NULL), HTTP/1.0,
 * at most timeout_ms in all and max bytes of response (head and body). On 200 *body is the
 * NUL-terminated body (caller frees) and *len its length. Errors: ETIMEDOUT,
 * EMSGSIZE (too big), EPROTO (not HTTP, or status != 200), connect errors.
 */
int gw_activity_http_get(const char *upstream, const char *target, const char *token,
			 int timeout_ms, size_t max, char **body, size_t *len, struct err **err);

/*
 * Asks a Jupyter server (upstream, base = path prefix ending in '/', e.g.
 * "/user/a/" or "/") for GET <base>api/kernels and <base>api/terminals and
 * fills out. A missing terminals API (404: terminals disabled) is not an
 * error. Errors from gw_activity_http_get or the parsers.
 */
int gw_activity_probe_jupyter(const char *upstream, const char *base, const char *token,
			      struct gw_activity_jupyter *out, struct err **err);

/*
 * CPU time in microseconds used so far by the sandbox called id (the
 * server's slug): see activity.c for where each cgroup layout keeps it.
 * cg_root is "/sys/fs/cgroup" and proc_root "/proc" outside tests.
 * Errors: ENOENT no such cgroup (not a sandboxed server), read errors.
 */
int gw_activity_cpu_usec(const char *cg_root, const char *proc_root, const char *id,
			 int64_t *out, struct err **err);

/*
 * Highest utilisation (percent) of the GPUs idx[0..n) by running
 * nvidia_smi (absolute path) with a timeout_ms deadline. Errors: the
 * command failing, timing out or not listing those GPUs.
 */
int gw_activity_gpu_util(const char *nvidia_smi, const int *idx, int n, int timeout_ms,
			 int *out, struct err **err);

#endif
