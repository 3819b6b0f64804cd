/*
 * culler: the idle culler (see culler.h).
 */
#define LOG_PREFIX "gateway/culler: "

#include "gateway/culler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>
#include <sqlite3.h>

#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/work.h"
#include "common/xalloc.h"
#include "gateway/activity.h"
#include "gateway/config.h"
#include "gateway/gw.h"
#include "gateway/metrics.h"
#include "spawner/spawner.h"

#define CULL_RETRY_MS 60000          /* no new action on a server this long after one */
#define CULL_GPUS_MAX 16
#define CULL_NVIDIA_SMI "/usr/bin/nvidia-smi"
#define CULL_CGROUP_ROOT "/sys/fs/cgroup"
#define CULL_TOKEN_VAR "JUPYTERHUB_API_TOKEN="

/* What the culler remembers about one running server between ticks. */
struct cull_entry {
	int64_t server_id;
	int64_t started_ms;      /* a restart starts the entry afresh */
	bool in_flight;          /* a probe is queued or running */
	bool seen;               /* running at the current tick */
	int64_t cpu_usec;        /* last CPU sample ... */
	int64_t cpu_ms;          /* ... taken at this mono ms; 0 = none yet */
	int64_t traffic_ms;      /* last activity from proxy, API or start */
	const char *saved_by;    /* source named in the last skip row (static) */
	int64_t retry_at;        /* mono ms: no action before (one was taken) */
};

/* One probe: inputs copied on the loop, results filled on a worker. */
struct cull_job {
	struct gw_culler *cl;    /* NULL once the culler is freed */
	struct cull_job *next, *prev;
	int64_t server_id;
	char *user, *name;
	char *upstream, *base, *token; /* upstream NULL: no Jupyter probe */
	char *sandbox;           /* NULL: no CPU probe */
	int gpus[CULL_GPUS_MAX];
	int ngpus;
	struct gw_activity_jupyter jup;
	bool jup_ok, cpu_ok, gpu_ok;
	int64_t cpu_usec, cpu_ms;
	int gpu_util;
	char *errmsg;            /* first probe failure, for the debug log */
};

struct gw_culler {
	struct gw *gw;
	lws_sorted_usec_list_t sul;
	struct cull_entry *v;
	size_t n, cap;
	struct cull_job *jobs;   /* in flight */
};

static bool is_probe_source(const char *s)
{
	return s && (!strcmp(s, "kernel") || !strcmp(s, "terminal") || !strcmp(s, "cpu") ||
		     !strcmp(s, "gpu"));
}

/* Jupyter servers answer api/kernels; VS Code and TensorBoard do not. */
static bool is_jupyter(const struct spawner_server *srv)
{
	return !srv->server_type || !strncmp(srv->server_type, "jupyter", 7);
}

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "?");
}

/* ---- entries ---- */

static struct cull_entry *entry_find(struct gw_culler *cl, int64_t id)
{
	for (size_t i = 0; i < cl->n; i++)
		if (cl->v[i].server_id == id)
			return &cl->v[i];
	return NULL;
}

static struct cull_entry *entry_get(struct gw_culler *cl, const struct spawner_server *srv)
{
	struct cull_entry *e = entry_find(cl, srv->id);

	if (e && e->started_ms == srv->started_ms)
		return e;
	if (!e) {
		if (cl->n == cl->cap) {
			cl->cap = cl->cap ? cl->cap * 2 : 16;
			cl->v = xrealloc(cl->v, cl->cap * sizeof(*cl->v));
		}
		e = &cl->v[cl->n++];
		e->in_flight = false;
	}
	*e = (struct cull_entry){ .server_id = srv->id, .started_ms = srv->started_ms,
				  .traffic_ms = srv->last_activity_ms, .in_flight = e->in_flight };
	return e;
}

/* Forgets servers no longer running (their probes came back). */
static void entries_prune(struct gw_culler *cl)
{
	size_t k = 0;

	for (size_t i = 0; i < cl->n; i++)
		if (cl->v[i].seen || cl->v[i].in_flight)
			cl->v[k++] = cl->v[i];
	cl->n = k;
}

/* ---- probes (worker threads) ---- */

static void job_note(struct cull_job *j, struct err **e)
{
	if (*e && !j->errmsg)
		j->errmsg = xstrdup((*e)->msg);
	err_free(e);
}

static void job_run(void *arg)
{
	struct cull_job *j = arg;
	struct err *e = NULL;

	if (j->upstream) {
		j->jup_ok = gw_activity_probe_jupyter(j->upstream, j->base, j->token, &j->jup,
						      &e) >= 0;
		job_note(j, &e);
	}
	if (j->sandbox) {
		j->cpu_ok = gw_activity_cpu_usec(CULL_CGROUP_ROOT, "/proc", j->sandbox, &j->cpu_usec,
						 &e) >= 0;
		j->cpu_ms = time_mono_ms();
		job_note(j, &e);
	}
	if (j->ngpus) {
		j->gpu_ok = gw_activity_gpu_util(CULL_NVIDIA_SMI, j->gpus, j->ngpus,
						 GW_ACTIVITY_PROBE_TIMEOUT_MS, &j->gpu_util, &e) >= 0;
		job_note(j, &e);
	}
}

static void job_free(struct cull_job *j)
{
	if (j->token)
		explicit_bzero(j->token, strlen(j->token));
	free(j->token);
	free(j->user);
	free(j->name);
	free(j->upstream);
	free(j->base);
	free(j->sandbox);
	free(j->errmsg);
	free(j);
}

static void job_unlink(struct gw_culler *cl, struct cull_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		cl->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->next = j->prev = NULL;
}

/* The GPUs allocated to a server (table gpu_allocations); 0 on errors. */
static int gpus_of(struct gw *gw, const struct spawner_server *srv, int *out)
{
	const struct spawner_profile *p = gw_cfg_profile_find(gw->cfg, srv->profile);
	cleanup_stmt sqlite3_stmt *st = NULL;
	int n = 0;

	/* NEEDSWORK: the index is the /dev/nvidiaN minor number; nvidia-smi's
	 * index matches it on usual systems (CUDA_DEVICE_ORDER=PCI_BUS_ID). */
	if (!p || p->gpus <= 0 ||
	    db_prepare(gw->db, &st, "SELECT gpu_index FROM gpu_allocations WHERE server_id = ?1"
		       " ORDER BY gpu_index", NULL) < 0)
		return 0;
	sqlite3_bind_int64(st, 1, srv->id);
	while (n < CULL_GPUS_MAX && sqlite3_step(st) == SQLITE_ROW)
		out[n++] = sqlite3_column_int(st, 0);
	return n;
}

/*
 * The token the server's API accepts: a server that checks the proxy's
 * own header (kubernetes pods: upstream_auth "token <t>") wants that one,
 * the others the hub token in their environment.
 */
static char *token_of(const struct spawner_server *srv)
{
	size_t n = strlen(CULL_TOKEN_VAR);

	if (srv->upstream_auth && !strncmp(srv->upstream_auth, "token ", 6))
		return xstrdup(srv->upstream_auth + 6);
	for (size_t i = 0; srv->env && srv->env[i]; i++)
		if (!strncmp(srv->env[i], CULL_TOKEN_VAR, n))
			return xstrdup(srv->env[i] + n);
	return NULL;
}

static struct cull_job *job_new(struct gw_culler *cl, const struct spawner_server *srv)
{
	struct cull_job *j = xcalloc(1, sizeof(*j));

	j->cl = cl;
	j->server_id = srv->id;
	j->user = xstrdup(srv->user);
	j->name = xstrdup(srv->name);
	if (is_jupyter(srv) && srv->upstream) {
		j->upstream = xstrdup(srv->upstream);
		j->base = xstrdup(srv->strip_prefix || !srv->base_url ? "/" : srv->base_url);
		j->token = token_of(srv);
	}
	/* the sandbox's cgroup is on this host only for local servers */
	if (spawner_has_cap(cl->gw->spawner, SPAWNER_CAP_SANDBOX) &&
	    !spawner_has_cap(cl->gw->spawner, SPAWNER_CAP_REMOTE))
		j->sandbox = xstrdup(srv->slug);
	j->ngpus = gpus_of(cl->gw, srv, j->gpus);
	return j;
}

/* ---- verdicts (event loop) ---- */

/* ENOTSUP: this backend cannot checkpoint at all; a plain stop still
 * frees the machine, which is what culling is for. */
static void cull_do(struct gw_culler *cl, struct cull_entry *e, struct spawner_server *srv,
		    int mode, const char *reason)
{
	struct spawner *sp = cl->gw->spawner;
	cleanup_free char *user = xstrdup(srv->user), *name = xstrdup(srv->name);
	struct err *err = NULL;
	int r = spawner_server_checkpoint(sp, user, name, mode, reason, &err);

	if (r < 0 && err->code == ENOTSUP && mode != SPAWNER_CKPT_STOP) {
		log_info("'%s/%s': backend cannot checkpoint (%s): stopping instead", user, name,
			 err->msg);
		err_free(&err);
		r = spawner_server_checkpoint(sp, user, name, SPAWNER_CKPT_STOP, reason, &err);
	}
	if (r < 0) {
		cleanup_free char *d = xasprintf("server '%s': cull failed: %s", name, err->msg);

		log_warn("cull '%s/%s' failed: %s", user, name, err->msg);
		db_audit(cl->gw->db, "culler", "server.cull.failed", user, d);
		err_free(&err);
	}
}

static void cull_act(struct gw_culler *cl, struct cull_entry *e, struct spawner_server *srv,
		     const struct gw_cull_rules *r, enum gw_cull_verdict v, int64_t now)
{
	static const char *const actions[] = { "checkpoint", "commit", "stop" };
	const char *act = r->action >= 0 && r->action < 3 ? actions[r->action] : "?";
	cleanup_free char *reason = NULL, *detail = NULL;
	char at[32];

	if (time_mono_ms() < e->retry_at)
		return;
	iso_time(srv->last_activity_ms, at);
	if (v == GW_VERDICT_IDLE) {
		reason = xasprintf("idle for %lld s", (long long)(now - srv->last_activity_ms) / 1000);
		detail = xasprintf("server '%s': culled: %s (last activity '%s' at %s), action %s",
				   srv->name, reason,
				   srv->activity_source ? srv->activity_source : "unknown", at, act);
	} else {
		reason = xasprintf("max age %lld s", (long long)r->max_age_ms / 1000);
		detail = xasprintf("server '%s': culled: running for %lld s, %s reached, action %s",
				   srv->name, (long long)(now - srv->started_ms) / 1000, reason,
				   act);
	}
	log_info("'%s': %s", srv->user, detail);
	db_audit(cl->gw->db, "culler", "server.cull", srv->user, detail);
	gw_metrics_cull(cl->gw->metrics, r->action,
			v == GW_VERDICT_IDLE ? GW_METRICS_CULL_IDLE : GW_METRICS_CULL_MAX_AGE);
	/* a dump that fails after it began brings the server back running:
	 * not again at every tick */
	e->retry_at = time_mono_ms() + CULL_RETRY_MS;
	cull_do(cl, e, srv, r->action, reason);
}

/* Past the timeout by the traffic clock, kept by a probe source: said
 * once per source, not at every tick of a long computation. */
static void cull_saved(struct gw_culler *cl, struct cull_entry *e, struct spawner_server *srv,
		       const struct gw_cull_rules *r, int64_t now)
{
	const char *src = srv->activity_source ? srv->activity_source : "unknown";
	cleanup_free char *detail = NULL;
	char at[32];

	if (e->saved_by && !strcmp(e->saved_by, src))
		return;
	e->saved_by = src;
	iso_time(srv->last_activity_ms, at);
	detail = xasprintf("server '%s': not culled: '%s' active (at %s); no traffic for %lld s, "
			   "idle_timeout %lld s", srv->name, src, at,
			   (long long)(now - e->traffic_ms) / 1000,
			   (long long)r->idle_timeout_ms / 1000);
	log_info("'%s': %s", srv->user, detail);
	db_audit(cl->gw->db, "culler", "server.cull.skip", srv->user, detail);
}

/* Lets the probe sources speak: kernel, terminal, cpu, gpu. */
static void cull_touch(struct gw_culler *cl, struct cull_entry *e, struct spawner_server *srv,
		       const struct cull_job *j, const struct gw_cull_rules *r, int64_t now)
{
	struct spawner *sp = cl->gw->spawner;

	if (j->jup_ok) {
		if (j->jup.busy)
			spawner_server_touch(sp, srv, now, "kernel");
		if (j->jup.kernel_last_ms > 0)
			spawner_server_touch(sp, srv, j->jup.kernel_last_ms < now ?
					     j->jup.kernel_last_ms : now, "kernel");
		if (j->jup.terminal_last_ms > 0)
			spawner_server_touch(sp, srv, j->jup.terminal_last_ms < now ?
					     j->jup.terminal_last_ms : now, "terminal");
	}
	if (j->cpu_ok) {
		if (e->cpu_ms && gw_activity_cpu_busy(e->cpu_usec, e->cpu_ms, j->cpu_usec,
						      j->cpu_ms, r->cpu_threshold))
			spawner_server_touch(sp, srv, now, "cpu");
		e->cpu_usec = j->cpu_usec;
		e->cpu_ms = j->cpu_ms;
	}
	if (j->gpu_ok && j->gpu_util > r->gpu_threshold)
		spawner_server_touch(sp, srv, now, "gpu");
}

static void cull_apply(struct gw_culler *cl, struct cull_job *j)
{
	struct cull_entry *e = entry_find(cl, j->server_id);
	struct spawner_server *srv = spawner_server_find(cl->gw->spawner, j->user, j->name);
	struct gw_cull_rules r;
	enum gw_cull_verdict v;
	int64_t now = time_now_ms();

	if (e)
		e->in_flight = false;
	if (!e || !srv || srv->id != j->server_id || srv->state != SPAWNER_RUNNING)
		return;
	if (j->errmsg)
		log_info("probe of '%s': %s", srv->slug, j->errmsg);
	gw_cfg_cull_rules(cl->gw->cfg, srv->profile, &r);
	/* what proxy, API and start said since the last probe (probe touches
	 * happen only here, so the source now is one of those or ours) */
	if (!is_probe_source(srv->activity_source) && srv->last_activity_ms > e->traffic_ms)
		e->traffic_ms = srv->last_activity_ms;
	cull_touch(cl, e, srv, j, &r, now);
	if (!gw_activity_cull_eligible(&r, srv->name, srv->server_type))
		return;
	v = gw_activity_cull_verdict(&r, now, srv->started_ms, srv->last_activity_ms,
				     e->traffic_ms);
	if (v == GW_VERDICT_SAVED) {
		cull_saved(cl, e, srv, &r, now);
		return;
	}
	e->saved_by = NULL;
	if (v == GW_VERDICT_IDLE || v == GW_VERDICT_MAX_AGE)
		cull_act(cl, e, srv, &r, v, now);
}

/* Loop thread, from work_drain() (or work_pool_free() at shutdown). */
static void job_done(void *arg)
{
	struct cull_job *j = arg;

	if (j->cl) {
		job_unlink(j->cl, j);
		cull_apply(j->cl, j);
	}
	job_free(j);
}

/* ---- the timer ---- */

static void cull_probe(struct gw_culler *cl, struct spawner_server *srv)
{
	struct cull_entry *e = entry_get(cl, srv);
	struct cull_job *j;

	e->seen = true;
	if (e->in_flight)
		return; /* the last probe is still out (a slow server) */
	j = job_new(cl, srv);
	if (work_submit(cl->gw->work, job_run, job_done, j) < 0) {
		job_free(j);
		return;
	}
	e->in_flight = true;
	j->next = cl->jobs;
	if (cl->jobs)
		cl->jobs->prev = j;
	cl->jobs = j;
}

static void cull_tick(lws_sorted_usec_list_t *sul)
{
	struct gw_culler *cl = lws_container_of(sul, struct gw_culler, sul);
	struct spawner *sp = cl->gw->spawner;
	struct spawner_server *srv;

	for (size_t i = 0; i < cl->n; i++)
		cl->v[i].seen = false;
	for (srv = spawner_server_next(sp, NULL); srv; srv = spawner_server_next(sp, srv))
		if (srv->state == SPAWNER_RUNNING)
			cull_probe(cl, srv);
	entries_prune(cl);
	if (!cl->gw->stopping)
		lws_sul_schedule(cl->gw->lws, 0, &cl->sul, cull_tick,
				 (lws_usec_t)cl->gw->cfg->cull.interval_ms * LWS_US_PER_MS);
}

struct gw_culler *gw_culler_new(struct gw *gw)
{
	struct gw_culler *cl = xcalloc(1, sizeof(*cl));

	cl->gw = gw;
	if (gw->spawner && gw->work && gw->lws)
		lws_sul_schedule(gw->lws, 0, &cl->sul, cull_tick,
				 (lws_usec_t)gw->cfg->cull.interval_ms * LWS_US_PER_MS);
	log_info("culler: every %lld ms; idle_timeout %lld s, max_age %lld s",
		 (long long)gw->cfg->cull.interval_ms,
		 (long long)gw->cfg->cull.idle_timeout_ms / 1000,
		 (long long)gw->cfg->cull.max_age_ms / 1000);
	return cl;
}

void gw_culler_free(struct gw_culler *cl)
{
	if (!cl)
		return;
	lws_sul_cancel(&cl->sul);
	for (struct cull_job *j = cl->jobs; j; j = j->next)
		j->cl = NULL;
	free(cl->v);
	free(cl);
}
