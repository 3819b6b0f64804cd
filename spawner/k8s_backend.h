/*
 * k8s_backend: what spawner/k8s.c (the ops, the API jobs) and
 * spawner/k8s_sync.c (watch events -> server state) share. Internal to
 * the kubernetes backend; the gateway sees only spawner.h.
 *
 * Threads: the API calls run as jobs on the backend's own work pool
 * (common/work.h), the watches on their own threads (k8s_watch_start).
 * Neither touches a server: a job's done() and every watch event run on
 * the loop thread from ops->poll, which looks the server up again by id
 * (it may be gone) and checks the per-server generation, so a completion
 * that belongs to an earlier start or stop does nothing.
 *
 * Every struct here is owned by the loop thread except struct k8s_evq,
 * whose mutex hands events from the watch threads over.
 */
#ifndef NBGATE_SPAWNER_K8S_BACKEND_H
#define NBGATE_SPAWNER_K8S_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "common/xalloc.h"

#include "spawner/k8s_api.h"
#include "spawner/k8s_internal.h"
#include "spawner/spawner.h"

struct cJSON;
struct work_pool;
struct k8s_job;

/* A running pod that stays not Ready this long is given up. */
#define K8S_NOT_READY_MS 30000
/* Stop: GET the pod this often when the watch has not said DELETED. */
#define K8S_STOP_POLL_MS 1000
/* ... for at most grace + this long. */
#define K8S_STOP_SLACK_MS 30000
/* Image pull back-offs after which a start fails before its deadline. */
#define K8S_PULL_BACKOFFS_MAX 2

/*
 * A progress step that never goes backwards: the pod's events and the API
 * calls' completions race (a Scheduled event can arrive before the pod's
 * create call returns), and a progress bar that jumps back looks broken.
 */
static inline void k8s__progress(struct spawner *sp, struct spawner_server *srv, int p,
				 const char *msg)
{
	spawner_progress(sp, srv, p > srv->progress ? p : srv->progress, msg);
}
/* Crash loop: lines of the server's log quoted in the failure. */
#define K8S_LOG_LINES 20
/* Watch events waiting for the loop; more are dropped and resynced. */
#define K8S_EVQ_MAX 20000

/* ---- the event queue (watch threads -> loop thread) ---- */

/* One watch event; obj is an owned duplicate (NULL for SYNCED/ERROR). */
struct k8s_qitem {
	struct k8s_qitem *next;
	enum k8s_kind kind;       /* K8S_POD or K8S_EVENT */
	enum k8s_watch_event ev;
	struct cJSON *obj;
	char *message;            /* K8S_WATCH_ERROR only, else NULL */
};

struct k8s_evq {
	pthread_mutex_t mu;
	struct k8s_qitem *head;
	struct k8s_qitem **tail;
	size_t n;
	size_t max;
	bool overflowed;          /* events were dropped since the last take */
};

/* Empty queue holding at most max items (0 = K8S_EVQ_MAX). */
void k8s_evq_init(struct k8s_evq *q, size_t max);
/* Frees every queued item and the mutex. The watches must be stopped. */
void k8s_evq_release(struct k8s_evq *q);
/*
 * Appends a copy of (kind, ev, obj, message): obj is duplicated, nothing
 * is borrowed after the call. Returns false when the queue is full (the
 * event is dropped and the overflow flag set). Thread: any.
 */
bool k8s_evq_push(struct k8s_evq *q, enum k8s_kind kind, enum k8s_watch_event ev,
		  const struct cJSON *obj, const char *message);
/*
 * Takes every queued item in arrival order (owned: k8s_qitems_free()),
 * NULL when empty; *overflowed (may be NULL) says whether events were
 * dropped since the last take, and clears that. Thread: any.
 */
struct k8s_qitem *k8s_evq_take(struct k8s_evq *q, bool *overflowed);
void k8s_qitems_free(struct k8s_qitem *it);

/* ---- per-server and backend state ---- */

enum k8s_phase {
	K8S_IDLE = 0,   /* no pod of ours expected (stopped, failed) */
	K8S_STARTING,   /* objects being created / pod not ready yet */
	K8S_RUNNING,    /* pod ready, upstream set */
	K8S_STOPPING,   /* pod deleted, waiting for it to go */
};

/* srv->priv of a kubernetes server. */
struct k8s_srv {
	struct spawner_k8s *k;
	int64_t id;                /* srv->id: how jobs and timers find srv again */
	uint64_t gen;              /* bumped by every start, stop and failure */
	enum k8s_phase phase;
	char *pod_name;
	char *secret_name;
	char *pod_uid;             /* the pod this start created or adopt found */
	struct cJSON *pod;         /* last seen state of that pod, or NULL */
	struct cJSON *early_pod;   /* watch news of the pod before its create returned */
	int port;                  /* the server's port in the pod */
	int64_t spawn_timeout_ms;
	int pull_backoffs;         /* ImagePullBackOff spells seen */
	char *last_waiting;        /* waiting reason at the previous update */
	char *sched_msg;           /* last FailedScheduling event's message */
	char *pull_msg;            /* last Failed (image) event's message */
	int restarts;
	int64_t not_ready_since_ms; /* mono; 0 while ready */
	int64_t stop_deadline_ms;  /* mono */
	bool log_pending;          /* crash loop: log fetch in flight */
	bool synced;               /* seen in the current watch list pass */
	int64_t restore_id;        /* the checkpoint this start restores; 0: a plain start */
	char *ckpt_token;          /* the server token a process checkpointed as
				    * checkpoint ckpt_token_id still holds (its restore
				    * needs it): memory only, wiped, never persisted */
	int64_t ckpt_token_id;
	lws_sorted_usec_list_t deadline_sul; /* start deadline */
	lws_sorted_usec_list_t tick_sul;     /* stop poll / not-ready limit */
};

/* What a watch callback needs: its backend and which watch it is. */
struct k8s_src {
	struct spawner_k8s *k;
	enum k8s_kind kind;
};

struct spawner_k8s {
	struct spawner base;
	struct k8s_client *client;
	const char *ns;               /* borrowed from client */
	const char *gateway_id;       /* borrowed from cfg (or the default) */
	char *selector;               /* our pods' label selector */
	struct work_pool *pool;
	struct k8s_watch *pods_w;
	struct k8s_watch *events_w;
	struct k8s_src pod_src;
	struct k8s_src ev_src;
	struct k8s_evq q;
	bool q_ready;                 /* q initialised (destroy after a failed init) */
	struct k8s_job *jobs;         /* in flight and deferred, see k8s.c */
	struct cJSON *init_pods;      /* the startup LISTs, for adopt(); freed */
	struct cJSON *init_secrets;   /* at the first poll */
	bool polled;
	int shutting;                 /* atomic: destroy began, jobs give up waiting */
	uint64_t next_gen;
};

struct spawner_k8s *spawner_k8s_from(struct spawner *sp);

/* Both non-NULL and equal. */
static inline bool k8s__str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Replaces *dst by a copy of src (NULL allowed). */
static inline void k8s__replace_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

/* ---- k8s.c, for k8s_sync.c (loop thread) ---- */

/* The server with id `id` whose priv is ours, or NULL. */
struct spawner_server *k8s__server_by_id(struct spawner_k8s *k, int64_t id);
/*
 * Fails a starting/running srv with msg: transition failed, then a job
 * deletes its pod and secret (the PVC stays). Logs what it cannot do.
 */
void k8s__fail(struct spawner_k8s *k, struct spawner_server *srv, const char *msg);
/*
 * srv's pod went away by itself (or exited cleanly): transition stopped
 * with msg, then a job deletes what is left (secret, pod).
 */
void k8s__gone(struct spawner_k8s *k, struct spawner_server *srv, const char *msg);
/* A pod we are stopping is gone: stopped. */
void k8s__stopped(struct spawner_k8s *k, struct spawner_server *srv);
/* Queues a GET of srv's pod; its answer is handled like a watch event. */
void k8s__submit_get(struct spawner_k8s *k, struct spawner_server *srv);
/* Crash loop: queues a fetch of the last log lines, then fails srv. */
void k8s__submit_log(struct spawner_k8s *k, struct spawner_server *srv);
/* Arms the tick timer of ks in ms. */
void k8s__tick_in(struct k8s_srv *ks, int64_t ms);
/* Pod ready while starting: upstream, transition running. */
void k8s__ready(struct spawner_k8s *k, struct spawner_server *srv, const char *pod_ip);

/* ---- k8s.c <-> k8s_ckpt.c: kubelet checkpoints (loop thread) ---- */

/* What a restore changes in a start (all borrowed). */
struct k8s_restore {
	const struct spawner_checkpoint *ck;
	const char *image;        /* kubernetes.checkpoint_image, expanded */
	const char *node;         /* where the archive is */
};

/*
 * Creates srv's Secret and Pod (and the PVC) with the server token
 * `token` (borrowed): a start, or with rs a restore (image, node selector,
 * annotation; spawner_restore_done() once the pod is ready or cannot
 * become so). Errors: those of a start (profile, quota, pod build).
 */
int k8s__launch(struct spawner *sp, struct spawner_server *srv, const char *token,
		const struct k8s_restore *rs, struct err **err);
/* Whether srv's profile asks for GPUs. */
bool k8s__uses_gpus(struct spawner *sp, const struct spawner_server *srv);
/* Leaves srv's current start/stop (idle, new generation, auth cleared). */
void k8s__settle(struct spawner_k8s *k, struct spawner_server *srv);
/* Queues the kubelet checkpoint of srv's pod on node (k8s_ckpt_dumped() next). */
void k8s__submit_ckpt(struct spawner_k8s *k, struct spawner_server *srv, const char *node,
		      int64_t ckpt_id, int64_t timeout_s);
/*
 * After the dump: srv's pod stops being watched as running (idle, new
 * generation) and a job deletes pod and secret and waits until the pod
 * is gone (k8s_ckpt_deleted() next). path: the row's, for messages.
 */
void k8s__submit_ckpt_delete(struct spawner_k8s *k, struct spawner_server *srv,
			     int64_t ckpt_id, const char *path);

/* A checkpoint job's outcome (borrowed from the job). */
struct k8s_ckpt_result {
	int64_t ckpt_id;
	const char *node;         /* dump: the node; delete: the row's path */
	const char *pod_name;
	const char *archive;      /* dump: the kubelet's archive path */
	int rc;                   /* 0 or -errno */
	const char *msg;          /* the error's message, or NULL */
	bool shutting;            /* the backend is being destroyed */
};

/* k8s_ckpt.c: the ops, and the jobs' completions (srv NULL: it moved on). */
int k8s_ckpt_checkpoint(struct spawner *sp, struct spawner_server *srv,
			const struct spawner_checkpoint *ck, struct err **err);
int k8s_ckpt_restore(struct spawner *sp, struct spawner_server *srv,
		     const struct spawner_checkpoint *ck, struct err **err);
int k8s_ckpt_forget(struct spawner *sp, const struct spawner_checkpoint *ck, struct err **err);
void k8s_ckpt_dumped(struct spawner_k8s *k, struct spawner_server *srv,
		     const struct k8s_ckpt_result *r);
void k8s_ckpt_deleted(struct spawner_k8s *k, struct spawner_server *srv,
		      const struct k8s_ckpt_result *r);

/* ---- k8s_sync.c ---- */

/* Handles one watch event on the loop thread (k8s.c's poll). */
void k8s_sync_handle(struct spawner_k8s *k, const struct k8s_qitem *it);
/* Applies a pod object (watch or GET) to srv; deleted: the pod is gone. */
void k8s_sync_pod(struct spawner_k8s *k, struct spawner_server *srv,
		  const struct cJSON *pod, bool deleted);
/* The start deadline of srv passed: fail it with the best reason known. */
void k8s_sync_deadline(struct spawner_k8s *k, struct spawner_server *srv);

/* ---- pure helpers (unit tested) ---- */

/*
 * The progress line for a pod Event (reason, message): owned text such as
 * "Pulling: Pulling image \"x\"", and *progress the step it stands for
 * (Scheduled 20, Pulling 40, Pulled 60, Created/Started 80) or -1 to keep
 * the current one (warnings). NULL for reasons not shown to users.
 */
char *k8s_sync_event_text(const char *reason, const char *message, int *progress);

/* What to do about a starting pod. */
enum k8s_verdict {
	K8S_WAIT = 0,   /* not ready yet, nothing wrong (or not yet known) */
	K8S_READY,      /* Ready with an IP: running */
	K8S_CRASHLOOP,  /* fetch the log, then fail */
	K8S_FAIL,       /* fail now, *msg says why */
};

/* What the events said besides the pod (borrowed; NULL when unknown). */
struct k8s_start_ctx {
	const char *pod_name;
	const char *sched_msg;     /* scheduler (FailedScheduling event) */
	const char *pull_msg;      /* kubelet (Failed event) */
	int pull_backoffs;
	int64_t timeout_s;         /* the spawn timeout, for messages */
};

/*
 * Classifies a starting pod (v may be NULL: no pod seen yet). At the
 * deadline everything not ready fails, with the scheduler's message when
 * unschedulable, the kubelet's for image pulls, else "not ready after N
 * s". Before it only what waiting cannot cure fails: v->fatal, phase
 * Failed/Succeeded, image pulls after K8S_PULL_BACKOFFS_MAX back-offs.
 * *msg (owned) is set for K8S_FAIL only.
 */
enum k8s_verdict k8s_sync_classify(const struct k8s_pod_view *v, const struct k8s_start_ctx *c,
				   bool at_deadline, char **msg);

/* True for the waiting reasons of a failing image pull. */
bool k8s_sync_is_pull_error(const char *waiting_reason);

/*
 * Why the server container of pod ended: "Error, exit code 1: <message>"
 * from state.terminated (or lastState.terminated), else the phase. Owned.
 */
char *k8s_sync_exit_reason(const struct cJSON *pod);

/* The crash-loop failure message with up to K8S_LOG_LINES of log. Owned. */
char *k8s_sync_crash_message(const char *pod_name, int restarts, const char *log);

#endif
