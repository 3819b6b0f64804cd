/*
 * culler: the idle culler (issue 4 item 3, DESIGN.md "Idle culling").
 *
 * Every cfg->cull.interval_ms an lws_sul timer on the event loop looks at
 * each running server. For each it queues one probe on the worker pool
 * (never two at once for a server): the server's own REST API (kernels
 * busy, kernel and terminal last_activity; Jupyter servers only), the CPU
 * time of its sandbox's cgroup and, when it holds GPUs, their utilisation
 * (gateway/activity.h). The result comes back on the loop, where the probe
 * sources touch the server and the verdict is taken with the server's
 * rules (gw_cfg_cull_rules: global `cull`, per-profile override):
 *
 *   idle or too old  -> spawner_server_checkpoint(mode = the rules' action,
 *                       reason "idle for N s" / "max age N s"); audit row
 *                       "server.cull", counter nbgate_cull_total
 *   past the timeout by the traffic clock but a probe source active
 *                    -> kept; audit row "server.cull.skip" naming the
 *                       source (once per source change, not every tick)
 *
 * Nothing here blocks the loop: the probes' connect/read timeouts (2 s)
 * and nvidia-smi run on worker threads.
 */
#ifndef NBGATE_GATEWAY_CULLER_H
#define NBGATE_GATEWAY_CULLER_H

struct gw;
struct gw_culler;

/*
 * Starts the culler's timer on gw->lws; gw (with cfg, db, spawner, work,
 * metrics set) must outlive it. Caller owns: gw_culler_free(). Cannot
 * fail. Event-loop thread, before or while the loop runs.
 */
struct gw_culler *gw_culler_new(struct gw *gw);

/*
 * Stops the timer and frees the culler. Probes still queued or running
 * finish on their own and are dropped when the work pool hands them back
 * (work_drain or work_pool_free). Call before lws_context_destroy. NULL is
 * fine. Event-loop thread (or after the loop stopped).
 */
void gw_culler_free(struct gw_culler *cl);

#endif
