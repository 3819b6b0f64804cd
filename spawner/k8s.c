/*
 * spawner/k8s: the `kubernetes` backend. Per server a Pod and a Secret
 * (its environment, with the token the proxy presents upstream), per user
 * a PVC that outlives the pods (spawner/k8s_internal.h names and builds
 * them). Lifecycle (notes/i5-shared.md, docs/kubernetes.md):
 *
 *   start  ensure the PVC, (re)create the Secret, create the Pod; progress
 *          from Events, running when the pod is Ready with an IP
 *          (k8s_sync.c), failed with a reason at the spawn deadline or as
 *          soon as waiting cannot help. A failure deletes pod and secret.
 *   stop   delete pod (grace = stop timeout) and secret; stopped when the
 *          watch says DELETED or a GET answers 404. The PVC stays.
 *   adopt  after a restart, from one LIST of pods and secrets at init: a
 *          Ready pod of ours with the row's server id is adopted, with the
 *          token read back from its Secret.
 *   checkpoint (criu, kubernetes.checkpoint_kubelet) the kubelet checkpoints
 *          the server container through the node proxy; the row records
 *          "<node>:<archive>", then pod and secret go (the PVC stays).
 *          commit: ENOTSUP, the core stops instead (the PVC keeps the home).
 *   restore  a start from kubernetes.checkpoint_image pinned to the node
 *          of the archive, with the token the checkpointed process holds;
 *          without that image the core starts fresh (docs/kubernetes.md).
 *
 * Every API call is a job on the backend's work pool; jobs of one server
 * run one after another (a stop's delete waits for the start's create),
 * jobs of different servers in parallel. Completions and watch events
 * reach the loop thread through ops->poll (spawner_poll()).
 */
#define LOG_PREFIX "spawner/k8s: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/timeutil.h"
#include "common/work.h"
#include "common/xalloc.h"
#include "spawner/k8s_backend.h"
#include "spawner/k8s_ckpt.h"
#include "spawner/profile.h"

#define K8S_TOKEN_BYTES 32
#define K8S_LOG_LIMIT (64 * 1024)
/* A start finds an earlier pod of its own still terminating: wait this long. */
#define K8S_WAIT_GONE_POLL_MS 500

enum job_kind { JOB_START, JOB_DELETE, JOB_GET, JOB_LOG, JOB_CKPT, JOB_CKPT_DEL };

/*
 * One API job. Inputs are built on the loop thread, outputs written by
 * the worker; the loop reads them in done() after the pool's handover.
 */
struct k8s_job {
	struct k8s_job *next;
	struct spawner_k8s *k;
	enum job_kind kind;
	int64_t srv_id;
	uint64_t gen;
	bool submitted;           /* on the pool (else deferred behind another) */
	char *pod_name;
	char *secret_name;
	cJSON *pvc, *secret, *pod; /* JOB_START */
	int64_t grace_s;          /* JOB_DELETE, and a start's wait for an old pod */
	bool del_pod, del_secret; /* JOB_DELETE */
	int rc;
	struct err *e;
	cJSON *out;               /* the created or fetched pod */
	char *text;               /* JOB_LOG; JOB_CKPT: the archive */
	bool pod_gone;            /* 404 */
	char *node;               /* JOB_CKPT*: the pod's node */
	int64_t ckpt_id;          /* JOB_CKPT*: the catalog row */
	int64_t timeout_s;        /* JOB_CKPT: the kubelet's dump */
};

struct spawner_k8s *spawner_k8s_from(struct spawner *sp)
{
	if (sp->ops != &spawner_k8s_ops)
		abort(); /* BUG: wrong backend downcast */
	return (struct spawner_k8s *)sp;
}

#define FREE_AND_NULL(p) do { free(p); (p) = NULL; } while (0)

/* -code of the error already set in *err (EIO when the caller passed none). */
static int err_rc(struct err **err)
{
	return err && *err ? -(*err)->code : -EIO;
}

static const char *or_null(const char *s)
{
	return s ? s : "(unnamed)";
}

static int64_t grace_seconds(const struct spawner *sp)
{
	int64_t g = sp->cfg.stop_timeout_ms / 1000;

	return g < 1 ? 1 : g;
}

/* Hands *local over to the caller's err (or frees it); returns -code. */
static int err_move(struct err **err, struct err **local)
{
	int rc = -(*local)->code;

	if (err && !*err)
		*err = steal_ptr(local);
	else
		err_free(local);
	return rc;
}

static bool shutting_down(const struct spawner_k8s *k)
{
	return __atomic_load_n(&k->shutting, __ATOMIC_ACQUIRE);
}

struct spawner_server *k8s__server_by_id(struct spawner_k8s *k, int64_t id)
{
	for (struct spawner_server *srv = k->base.servers; srv; srv = srv->next)
		if (srv->id == id && srv->priv)
			return srv;
	return NULL;
}

/* The upstream token (a secret): wiped, not just freed. */
static void clear_auth(struct spawner_server *srv)
{
	if (srv->upstream_auth)
		explicit_bzero(srv->upstream_auth, strlen(srv->upstream_auth));
	free(srv->upstream_auth);
	srv->upstream_auth = NULL;
}

/* ---- jobs: run on a worker ---- */

/* Zeroes every string in o (the Secret holds the server's tokens). */
static void json_wipe(cJSON *o)
{
	for (cJSON *it = o ? o->child : NULL; it; it = it->next) {
		if (cJSON_IsString(it) && it->valuestring)
			explicit_bzero(it->valuestring, strlen(it->valuestring));
		else
			json_wipe(it);
	}
}

static void job_free(struct k8s_job *j)
{
	free(j->pod_name);
	free(j->secret_name);
	cJSON_Delete(j->pvc);
	json_wipe(j->secret);
	cJSON_Delete(j->secret);
	cJSON_Delete(j->pod);
	cJSON_Delete(j->out);
	free(j->text);
	free(j->node);
	err_free(&j->e);
	free(j);
}

/* Whether pod carries our gateway label and server srv_id's annotation. */
static bool pod_is_ours(const struct spawner_k8s *k, int64_t srv_id, const cJSON *pod)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
	const cJSON *lab = cJSON_GetObjectItemCaseSensitive(md, "labels");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(ann, K8S_ANN_SERVER_ID);
	const cJSON *gw = cJSON_GetObjectItemCaseSensitive(lab, K8S_LABEL_GATEWAY);
	char want[32];

	snprintf(want, sizeof(want), "%lld", (long long)srv_id);
	return cJSON_IsString(id) && k8s__str_eq(id->valuestring, want) && cJSON_IsString(gw) &&
	       k8s__str_eq(gw->valuestring, k->gateway_id);
}

/* Waits (bounded) until pod j->pod_name answers 404. */
static int wait_pod_gone(struct k8s_job *j, struct err **err)
{
	const struct timespec tick = { 0, K8S_WAIT_GONE_POLL_MS * 1000000L };
	int64_t end = time_mono_ms() + j->grace_s * 1000 + K8S_STOP_SLACK_MS;
	struct err *e = NULL;
	int rc;

	while (!shutting_down(j->k) && time_mono_ms() < end) {
		rc = k8s_get(j->k->client, K8S_POD, j->k->ns, j->pod_name, NULL, NULL, &e);
		if (rc == -ENOENT) {
			err_free(&e);
			return 0;
		}
		if (rc < 0)
			return err_move(err, &e);
		nanosleep(&tick, NULL);
	}
	return err_set(err, ETIMEDOUT, "an earlier pod %s of this server is still terminating",
		       j->pod_name);
}

/*
 * Before anything is created: a pod of that name must not exist. One of
 * ours (an earlier start's, still terminating or left behind) is deleted
 * and waited for; anyone else's is left alone and fails the start.
 */
static int start_check_pod(struct k8s_job *j, struct err **err)
{
	struct k8s_client *c = j->k->client;
	struct err *e = NULL;
	cJSON *old = NULL;
	bool deleting;
	int rc;

	rc = k8s_get(c, K8S_POD, j->k->ns, j->pod_name, &old, NULL, &e);
	if (rc == -ENOENT) {
		err_free(&e);
		return 0;
	}
	if (rc < 0)
		return err_move(err, &e);
	if (!pod_is_ours(j->k, j->srv_id, old)) {
		cJSON_Delete(old);
		return err_set_http(err, 409, EEXIST,
				    "pod %s already exists (delete it or stop the server)",
				    j->pod_name);
	}
	deleting = k8s_json_str(old, "metadata.deletionTimestamp") != NULL;
	cJSON_Delete(old);
	if (!deleting) {
		rc = k8s_delete(c, K8S_POD, j->k->ns, j->pod_name, j->grace_s, NULL, &e);
		if (rc < 0 && rc != -ENOENT)
			return err_move(err, &e);
		err_free(&e);
	}
	return wait_pod_gone(j, err);
}

/* Creates the Secret; one left from an earlier start is replaced. */
static int start_secret(struct k8s_job *j, struct err **err)
{
	struct k8s_client *c = j->k->client;
	struct err *e = NULL;
	int rc;

	rc = k8s_create(c, K8S_SECRET, j->k->ns, j->secret, NULL, NULL, &e);
	if (rc != -EEXIST)
		return rc < 0 ? err_move(err, &e) : 0;
	err_free(&e);
	rc = k8s_delete(c, K8S_SECRET, j->k->ns, j->secret_name, -1, NULL, &e);
	if (rc < 0 && rc != -ENOENT)
		return err_move(err, &e);
	err_free(&e);
	rc = k8s_create(c, K8S_SECRET, j->k->ns, j->secret, NULL, NULL, &e);
	return rc < 0 ? err_move(err, &e) : 0;
}

/* Best effort: what a failed start created goes again (the PVC stays). */
static void start_undo(struct k8s_job *j, bool pod)
{
	struct err *e = NULL;

	if (pod && k8s_delete(j->k->client, K8S_POD, j->k->ns, j->pod_name, j->grace_s, NULL,
			      &e) < 0)
		err_free(&e);
	if (k8s_delete(j->k->client, K8S_SECRET, j->k->ns, j->secret_name, -1, NULL, &e) < 0)
		err_free(&e);
}

static void start_run(struct k8s_job *j)
{
	struct k8s_client *c = j->k->client;
	struct err *e = NULL;
	int rc;

	rc = k8s_create(c, K8S_PVC, j->k->ns, j->pvc, NULL, NULL, &e);
	if (rc == -EEXIST) { /* the user's home from an earlier server: fine */
		err_free(&e);
		rc = 0;
	}
	if (rc == 0)
		rc = start_check_pod(j, &e);
	if (rc == 0 && (rc = start_secret(j, &e)) == 0) {
		rc = k8s_create(c, K8S_POD, j->k->ns, j->pod, &j->out, NULL, &e);
		if (rc == -EEXIST) { /* created by someone else meanwhile */
			err_free(&e);
			err_set(&e, EEXIST, "pod %s already exists (delete it or stop the server)",
				j->pod_name);
		}
		/* A timeout may have created it after all; a 409 is not ours. */
		if (rc < 0)
			start_undo(j, rc != -EEXIST);
	}
	j->rc = rc;
	j->e = e;
}

static void delete_run(struct k8s_job *j)
{
	struct k8s_client *c = j->k->client;
	struct err *e = NULL;
	int rc = 0;

	if (j->del_pod) {
		rc = k8s_delete(c, K8S_POD, j->k->ns, j->pod_name, j->grace_s, NULL, &e);
		if (rc == -ENOENT) {
			j->pod_gone = true;
			err_free(&e);
			rc = 0;
		}
		if (rc < 0)
			j->e = steal_ptr(&e);
		j->rc = rc;
	}
	if (j->del_secret) {
		rc = k8s_delete(c, K8S_SECRET, j->k->ns, j->secret_name, -1, NULL, &e);
		if (rc < 0 && rc != -ENOENT && !j->e) {
			j->e = steal_ptr(&e);
			j->rc = rc;
		}
		err_free(&e);
	}
}

/* After a kubelet checkpoint: pod and secret go; done once the pod is gone. */
static void ckpt_del_run(struct k8s_job *j)
{
	struct err *e = NULL;

	delete_run(j);
	if (j->rc == 0 && !j->pod_gone && wait_pod_gone(j, &e) < 0) {
		j->rc = -e->code;
		j->e = e;
	}
}

static void job_run(void *arg)
{
	struct k8s_job *j = arg;
	struct err *e = NULL;

	switch (j->kind) {
	case JOB_START:
		start_run(j);
		break;
	case JOB_DELETE:
		delete_run(j);
		break;
	case JOB_GET:
		j->rc = k8s_get(j->k->client, K8S_POD, j->k->ns, j->pod_name, &j->out, NULL, &e);
		j->pod_gone = j->rc == -ENOENT;
		j->e = e;
		break;
	case JOB_LOG:
		j->rc = k8s_pod_log(j->k->client, j->k->ns, j->pod_name, K8S_CONTAINER,
				    K8S_LOG_LINES, K8S_LOG_LIMIT, &j->text, &e);
		j->e = e;
		break;
	case JOB_CKPT:
		j->rc = k8s_checkpoint_container(j->k->client, j->node, j->k->ns, j->pod_name,
						 K8S_CONTAINER, j->timeout_s, &j->text, &e);
		j->e = e;
		break;
	case JOB_CKPT_DEL:
		ckpt_del_run(j);
		break;
	}
}

/* ---- jobs: queueing (loop thread) ---- */

static void job_done(void *arg);

static bool srv_has_job(const struct spawner_k8s *k, int64_t id, bool submitted_only)
{
	for (const struct k8s_job *j = k->jobs; j; j = j->next)
		if (j->srv_id == id && (j->submitted || !submitted_only))
			return true;
	return false;
}

static void job_unlink(struct spawner_k8s *k, struct k8s_job *j)
{
	for (struct k8s_job **pp = &k->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			j->next = NULL;
			return;
		}
	}
}

static void job_launch(struct spawner_k8s *k, struct k8s_job *j)
{
	j->submitted = true;
	if (!k->pool || work_submit(k->pool, job_run, job_done, j) < 0) {
		/* Only while the pool shuts down: nothing left to act on. */
		job_unlink(k, j);
		job_free(j);
	}
}

/* Queues j; it waits while another job of the same server is on the pool. */
static void job_submit(struct spawner_k8s *k, struct k8s_job *j)
{
	struct k8s_job **pp = &k->jobs;
	bool busy = srv_has_job(k, j->srv_id, true);

	while (*pp)
		pp = &(*pp)->next;
	*pp = j;
	if (!busy)
		job_launch(k, j);
}

static struct k8s_job *job_new(struct spawner_k8s *k, enum job_kind kind,
			       const struct spawner_server *srv, const struct k8s_srv *ks)
{
	struct k8s_job *j = xcalloc(1, sizeof(*j));

	j->k = k;
	j->kind = kind;
	j->srv_id = srv->id;
	j->gen = ks->gen;
	j->pod_name = xstrdup(ks->pod_name);
	j->secret_name = xstrdup(ks->secret_name);
	j->grace_s = grace_seconds(&k->base);
	return j;
}

static void submit_delete(struct spawner_k8s *k, const struct spawner_server *srv,
			  const struct k8s_srv *ks, bool pod)
{
	struct k8s_job *j = job_new(k, JOB_DELETE, srv, ks);

	j->del_pod = pod;
	j->del_secret = true;
	job_submit(k, j);
}

void k8s__submit_get(struct spawner_k8s *k, struct spawner_server *srv)
{
	struct k8s_srv *ks = srv->priv;

	if (srv_has_job(k, srv->id, false))
		return; /* whatever runs reports soon enough */
	job_submit(k, job_new(k, JOB_GET, srv, ks));
}

void k8s__submit_log(struct spawner_k8s *k, struct spawner_server *srv)
{
	struct k8s_srv *ks = srv->priv;

	ks->log_pending = true;
	spawner_progress(&k->base, srv, srv->progress, "server crashed; reading its log");
	job_submit(k, job_new(k, JOB_LOG, srv, ks));
}

/* ---- state changes (loop thread) ---- */

static void timers_cancel(struct k8s_srv *ks)
{
	lws_sul_cancel(&ks->deadline_sul);
	lws_sul_cancel(&ks->tick_sul);
}

/* Leaves the current start/stop: later completions of it are stale. */
static void settle(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks)
{
	ks->gen = ++k->next_gen;
	ks->phase = K8S_IDLE;
	ks->log_pending = false;
	ks->not_ready_since_ms = 0;
	ks->restore_id = 0;
	timers_cancel(ks);
	clear_auth(srv);
}

static void transition(struct spawner_k8s *k, struct spawner_server *srv,
		       enum spawner_state to, const char *msg)
{
	struct err *e = NULL;

	if (spawner_transition(&k->base, srv, to, msg, &e) < 0) {
		log_warn("'%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
}

/*
 * A start that cannot go on: failed; a restore: the core's fallback (the
 * checkpoint becomes broken, a fresh start follows, queued behind the
 * delete since jobs of one server run in order).
 */
static void end_failed(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
		       const char *msg, bool del)
{
	int64_t rid = ks->restore_id;

	settle(k, srv, ks);
	if (del)
		submit_delete(k, srv, ks, true);
	if (rid && srv->state == SPAWNER_RESTORING)
		spawner_restore_done(&k->base, srv, rid, false, msg);
	else
		transition(k, srv, SPAWNER_FAILED, msg);
}

void k8s__fail(struct spawner_k8s *k, struct spawner_server *srv, const char *msg)
{
	end_failed(k, srv, srv->priv, msg, true);
}

void k8s__gone(struct spawner_k8s *k, struct spawner_server *srv, const char *msg)
{
	struct k8s_srv *ks = srv->priv;

	settle(k, srv, ks);
	transition(k, srv, SPAWNER_STOPPED, msg);
	submit_delete(k, srv, ks, true);
}

void k8s__stopped(struct spawner_k8s *k, struct spawner_server *srv)
{
	settle(k, srv, srv->priv);
	transition(k, srv, SPAWNER_STOPPED, "server stopped");
}

void k8s__ready(struct spawner_k8s *k, struct spawner_server *srv, const char *pod_ip)
{
	struct k8s_srv *ks = srv->priv;

	free(srv->upstream);
	srv->upstream = k8s_upstream(pod_ip, ks->port);
	lws_sul_cancel(&ks->deadline_sul);
	ks->phase = K8S_RUNNING;
	ks->not_ready_since_ms = 0;
	log_info("'%s' pod %s ready at %s", srv->slug, ks->pod_name, srv->upstream);
	if (ks->restore_id && srv->state == SPAWNER_RESTORING) {
		int64_t rid = ks->restore_id;

		ks->restore_id = 0;
		spawner_restore_done(&k->base, srv, rid, true, "the restored pod is ready");
		return;
	}
	transition(k, srv, SPAWNER_RUNNING, "server ready");
}

/* ---- timers ---- */

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
	struct k8s_srv *ks = lws_container_of(sul, struct k8s_srv, deadline_sul);
	struct spawner_server *srv = k8s__server_by_id(ks->k, ks->id);

	if (srv)
		k8s_sync_deadline(ks->k, srv);
}

static void stop_tick(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks)
{
	cleanup_free char *msg = NULL;

	if (time_mono_ms() >= ks->stop_deadline_ms) {
		msg = xasprintf("pod %s did not go away within %lld s of its deletion",
				ks->pod_name, (long long)grace_seconds(&k->base) +
						      K8S_STOP_SLACK_MS / 1000);
		settle(k, srv, ks);
		transition(k, srv, SPAWNER_FAILED, msg);
		return;
	}
	/* The watch may be broken: ask. */
	k8s__submit_get(k, srv);
	k8s__tick_in(ks, K8S_STOP_POLL_MS);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	struct k8s_srv *ks = lws_container_of(sul, struct k8s_srv, tick_sul);
	struct spawner_server *srv = k8s__server_by_id(ks->k, ks->id);
	cleanup_free char *msg = NULL;

	if (!srv)
		return;
	if (ks->phase == K8S_STOPPING) {
		stop_tick(ks->k, srv, ks);
	} else if (ks->phase == K8S_RUNNING && ks->not_ready_since_ms &&
		   time_mono_ms() - ks->not_ready_since_ms >= K8S_NOT_READY_MS - 10) {
		msg = xasprintf("server not ready for %d s (pod %s)", K8S_NOT_READY_MS / 1000,
				ks->pod_name);
		k8s__fail(ks->k, srv, msg);
	}
}

void k8s__tick_in(struct k8s_srv *ks, int64_t ms)
{
	lws_sul_schedule(ks->k->base.cfg.lws, 0, &ks->tick_sul, tick_cb, (lws_usec_t)ms * 1000);
}

/* ---- jobs: completions (loop thread) ---- */

/* srv's state when j still belongs to its current start/stop, else NULL. */
static struct k8s_srv *job_current(struct k8s_job *j, struct spawner_server **srv)
{
	struct k8s_srv *ks;

	*srv = k8s__server_by_id(j->k, j->srv_id);
	ks = *srv ? (*srv)->priv : NULL;
	return ks && ks->gen == j->gen ? ks : NULL;
}

static void start_done(struct k8s_job *j)
{
	struct spawner_server *srv;
	struct k8s_srv *ks = job_current(j, &srv);
	const char *uid = k8s_json_str(j->out, "metadata.uid");
	bool early;

	if (!ks || ks->phase != K8S_STARTING)
		return; /* stopped or failed meanwhile: its delete job follows this one */
	if (j->rc < 0) { /* start_run removed what it created */
		end_failed(j->k, srv, ks, j->e ? j->e->msg : "create failed", false);
		return;
	}
	k8s__replace_str(&ks->pod_uid, uid ? uid : "");
	log_info("'%s' pod %s created", srv->slug, ks->pod_name);
	k8s__progress(&j->k->base, srv, 15, "pod created, waiting for a node");
	early = ks->early_pod && k8s__str_eq(k8s_json_str(ks->early_pod, "metadata.uid"), uid);
	k8s_sync_pod(j->k, srv, early ? ks->early_pod : j->out, false);
	cJSON_Delete(ks->early_pod);
	ks->early_pod = NULL;
}

static void delete_done(struct k8s_job *j)
{
	struct spawner_server *srv;
	struct k8s_srv *ks = job_current(j, &srv);
	cleanup_free char *msg = NULL;

	if (!ks || ks->phase != K8S_STOPPING) {
		if (j->rc < 0)
			log_warn("clean up pod %s: %s", j->pod_name, j->e ? j->e->msg : "failed");
		return;
	}
	if (j->rc < 0) {
		msg = xasprintf("could not delete pod %s: %s", j->pod_name,
				j->e ? j->e->msg : "failed");
		settle(j->k, srv, ks);
		transition(j->k, srv, SPAWNER_FAILED, msg);
	} else if (j->pod_gone) {
		k8s__stopped(j->k, srv);
	}
}

static void get_done(struct k8s_job *j)
{
	struct spawner_server *srv;
	struct k8s_srv *ks = job_current(j, &srv);
	const char *uid = k8s_json_str(j->out, "metadata.uid");

	if (!ks || ks->phase == K8S_IDLE)
		return;
	if (j->rc < 0 && !j->pod_gone) {
		log_debug("'%s' get pod %s: %s", srv->slug, j->pod_name, j->e ? j->e->msg : "");
		return;
	}
	/* Another pod of the same name is not ours: ours is gone. */
	if (j->pod_gone || (ks->pod_uid && !k8s__str_eq(uid, ks->pod_uid)))
		k8s_sync_pod(j->k, srv, NULL, true);
	else
		k8s_sync_pod(j->k, srv, j->out, false);
}

static void log_done(struct k8s_job *j)
{
	struct spawner_server *srv;
	struct k8s_srv *ks = job_current(j, &srv);
	cleanup_free char *msg = NULL, *text = NULL;

	if (!ks || ks->phase != K8S_STARTING || !ks->log_pending)
		return;
	ks->log_pending = false;
	if (j->rc < 0)
		text = xasprintf("(its log could not be read: %s)", j->e ? j->e->msg : "");
	msg = k8s_sync_crash_message(ks->pod_name, ks->restarts, text ? text : j->text);
	k8s__fail(j->k, srv, msg);
}

/* ---- checkpoints: the jobs (spawner/k8s_ckpt.c decides) ---- */

static void ckpt_result(struct k8s_job *j, void (*fn)(struct spawner_k8s *,
						     struct spawner_server *,
						     const struct k8s_ckpt_result *))
{
	struct spawner_server *srv;
	struct k8s_srv *ks = job_current(j, &srv);
	struct k8s_ckpt_result r = {
		.ckpt_id = j->ckpt_id, .node = j->node, .pod_name = j->pod_name,
		.archive = j->text, .rc = j->rc, .msg = j->e ? j->e->msg : NULL,
		.shutting = shutting_down(j->k),
	};

	fn(j->k, ks ? srv : NULL, &r);
}

void k8s__submit_ckpt(struct spawner_k8s *k, struct spawner_server *srv, const char *node,
		      int64_t ckpt_id, int64_t timeout_s)
{
	struct k8s_job *j = job_new(k, JOB_CKPT, srv, srv->priv);

	j->node = xstrdup(node);
	j->ckpt_id = ckpt_id;
	j->timeout_s = timeout_s;
	job_submit(k, j);
}

void k8s__submit_ckpt_delete(struct spawner_k8s *k, struct spawner_server *srv,
			     int64_t ckpt_id, const char *path)
{
	struct k8s_srv *ks = srv->priv;
	struct k8s_job *d;

	/* From here on the pod's going is ours: the watch must not call it a
	 * server that died (phase idle, a new generation). */
	timers_cancel(ks);
	ks->gen = ++k->next_gen;
	ks->phase = K8S_IDLE;
	d = job_new(k, JOB_CKPT_DEL, srv, ks);
	d->del_pod = d->del_secret = true;
	d->ckpt_id = ckpt_id;
	d->node = xstrdup(path);
	job_submit(k, d);
}

void k8s__settle(struct spawner_k8s *k, struct spawner_server *srv)
{
	settle(k, srv, srv->priv);
}

static void job_done(void *arg)
{
	struct k8s_job *j = arg, *next;
	struct spawner_k8s *k = j->k;

	job_unlink(k, j);
	/* The next job of this server goes first: jobs done() adds queue behind it. */
	for (next = k->jobs; next; next = next->next)
		if (next->srv_id == j->srv_id && !next->submitted)
			break;
	if (next)
		job_launch(k, next);
	switch (j->kind) {
	case JOB_START:
		start_done(j);
		break;
	case JOB_DELETE:
		delete_done(j);
		break;
	case JOB_GET:
		get_done(j);
		break;
	case JOB_LOG:
		log_done(j);
		break;
	case JOB_CKPT:
		ckpt_result(j, k8s_ckpt_dumped);
		break;
	case JOB_CKPT_DEL:
		ckpt_result(j, k8s_ckpt_deleted);
		break;
	}
	job_free(j);
}

/* ---- start ---- */

static const struct spawner_k8s_image *k8s_image_find(const struct spawner_k8s_cfg *kc,
						      const char *name)
{
	for (int i = 0; name && i < kc->n_images; i++)
		if (k8s__str_eq(kc->images[i].name, name))
			return &kc->images[i];
	return NULL;
}

/*
 * The profile, image and scheduling srv starts with, from its
 * user_options (already checked by spawner_check_user_options()).
 */
static int resolve(struct spawner *sp, const struct spawner_server *srv,
		   const struct spawner_profile **prof, const struct spawner_k8s_image **img,
		   const struct spawner_k8s_sched **sched, struct err **err)
{
	const char *iname = NULL;

	if (spawner_options_resolve(&sp->cfg, srv->user_options, prof, &iname, err) < 0)
		return -EINVAL;
	*img = k8s_image_find(sp->cfg.k8s, iname);
	if (!*img)
		return err_set(err, EINVAL, "kubernetes: no kubernetes.images entry for image "
			       "'%.64s'", iname);
	*sched = sp->cfg.k8s->sched ? &sp->cfg.k8s->sched[*prof - sp->cfg.profiles] : NULL;
	return 0;
}

static struct k8s_srv *ks_ensure(struct spawner_k8s *k, struct spawner_server *srv)
{
	struct k8s_srv *ks = srv->priv;

	if (ks)
		return ks;
	ks = xcalloc(1, sizeof(*ks));
	ks->k = k;
	ks->id = srv->id;
	ks->pod_name = k8s_pod_name(srv->slug);
	ks->secret_name = k8s_secret_name(srv->slug);
	srv->priv = ks;
	return ks;
}

/* Forgets what the previous pod of srv said; a new start or adoption follows. */
static void ks_reset(struct spawner_k8s *k, struct k8s_srv *ks)
{
	timers_cancel(ks);
	ks->gen = ++k->next_gen;
	ks->phase = K8S_IDLE;
	FREE_AND_NULL(ks->pod_uid);
	FREE_AND_NULL(ks->last_waiting);
	FREE_AND_NULL(ks->sched_msg);
	FREE_AND_NULL(ks->pull_msg);
	cJSON_Delete(ks->pod);
	cJSON_Delete(ks->early_pod);
	ks->pod = ks->early_pod = NULL;
	ks->pull_backoffs = 0;
	ks->restarts = 0;
	ks->not_ready_since_ms = 0;
	ks->log_pending = false;
	ks->synced = false;
	ks->restore_id = 0;
}

/* The start job's objects; the token is the one srv->upstream_auth carries. */
static struct k8s_job *start_job(struct spawner_k8s *k, struct spawner_server *srv,
				 struct k8s_srv *ks, const struct k8s_pod_req *r, struct err **err)
{
	struct k8s_job *j;
	cJSON *pod = k8s_build_pod(r, err);

	if (!pod)
		return NULL;
	j = job_new(k, JOB_START, srv, ks);
	j->pod = pod;
	j->secret = k8s_build_secret(r);
	j->pvc = k8s_build_pvc(r);
	return j;
}

static void set_image_fields(struct spawner_server *srv, const struct spawner_profile *prof,
			     const struct spawner_k8s_image *img)
{
	k8s__replace_str(&srv->profile, prof->name);
	k8s__replace_str(&srv->server_type, img->server_type);
	srv->strip_prefix = img->strip_prefix;
}

int k8s__launch(struct spawner *sp, struct spawner_server *srv, const char *token,
		const struct k8s_restore *rs, struct err **err)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_pod_req r = { .cfg = &sp->cfg, .srv = srv, .ns = k->ns,
				 .server_token = token };
	const struct spawner_k8s_image *img;
	struct k8s_srv *ks;
	struct k8s_job *j;

	if (resolve(sp, srv, &r.prof, &img, &r.sched, err) < 0 ||
	    spawner_quota_check(sp, srv, r.prof, err) < 0)
		return err_rc(err);
	r.img = img;
	set_image_fields(srv, r.prof, img);
	ks = ks_ensure(k, srv);
	ks_reset(k, ks);
	j = start_job(k, srv, ks, &r, err);
	if (j && rs && k8s_ckpt_restore_pod(j->pod, rs->image, rs->node, rs->ck->path,
					    err) < 0) {
		job_free(j);
		j = NULL;
	}
	clear_auth(srv);
	if (!j)
		return err_rc(err);
	srv->upstream_auth = xasprintf("token %s", token);
	ks->phase = K8S_STARTING;
	ks->port = img->port;
	ks->spawn_timeout_ms = sp->cfg.spawn_timeout_ms;
	ks->restore_id = rs ? rs->ck->id : 0;
	job_submit(k, j);
	lws_sul_schedule(sp->cfg.lws, 0, &ks->deadline_sul, deadline_cb,
			 (lws_usec_t)sp->cfg.spawn_timeout_ms * 1000);
	log_info("'%s' creating pod %s in namespace %s (profile '%s', image %s)", srv->slug,
		 ks->pod_name, k->ns, r.prof->name, rs ? rs->image : img->ref);
	spawner_progress(sp, srv, 10, rs ? "creating the restored server's pod"
					 : "creating the server's pod");
	return 0;
}

static int k8s_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	char *token = rand_hex(K8S_TOKEN_BYTES);
	int rc = k8s__launch(sp, srv, token, NULL, err);

	explicit_bzero(token, strlen(token));
	free(token);
	return rc;
}

/* ---- stop, status ---- */

static int k8s_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_srv *ks = srv->priv;

	if (!ks) /* nothing of ours was ever created for it by this gateway */
		return spawner_transition(sp, srv, SPAWNER_STOPPED, "server stopped", err);
	timers_cancel(ks);
	ks->gen = ++k->next_gen;
	ks->phase = K8S_STOPPING;
	ks->log_pending = false;
	ks->stop_deadline_ms = time_mono_ms() + grace_seconds(sp) * 1000 + K8S_STOP_SLACK_MS;
	submit_delete(k, srv, ks, true);
	k8s__tick_in(ks, K8S_STOP_POLL_MS);
	log_info("'%s' deleting pod %s (grace %lld s)", srv->slug, ks->pod_name,
		 (long long)grace_seconds(sp));
	return 0;
}

static int k8s_status(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct k8s_srv *ks = srv->priv;
	struct k8s_pod_view v;

	if (!ks || !ks->pod || ks->phase == K8S_IDLE)
		return 0;
	k8s_pod_view(ks->pod, &v);
	return k8s__str_eq(v.phase, "Running") && v.ready && !v.deleting ? 1 : 0;
}

/* ---- for spawner/k8s_ckpt.c ---- */

bool k8s__uses_gpus(struct spawner *sp, const struct spawner_server *srv)
{
	const struct spawner_profile *prof;
	const struct spawner_k8s_image *img;
	const struct spawner_k8s_sched *sched;
	struct err *e = NULL;

	if (resolve(sp, srv, &prof, &img, &sched, &e) < 0) {
		err_free(&e);
		return false;
	}
	return prof->gpus > 0;
}

/* ---- adopt ---- */

static const cJSON *list_find(const cJSON *list, const char *name)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
		if (k8s__str_eq(k8s_json_str(it, "metadata.name"), name))
			return it;
	return NULL;
}

/*
 * A copy of the object from the startup LIST; NULL: none. Adoption runs
 * once, before the loop serves (spawner_adopt_all()), and never calls the
 * API itself: a GET here would block the event loop.
 */
static cJSON *adopt_fetch(const cJSON *list, const char *name)
{
	return list ? cJSON_Duplicate(list_find(list, name), true) : NULL;
}

/* The server token in a Secret's data (base64) or stringData; owned or NULL. */
static char *secret_token(const cJSON *secret)
{
	const char *b64 = NULL, *plain = NULL;
	const cJSON *v;
	size_t n = 0, len;
	char *out;

	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(secret, "data"),
					     K8S_ENV_SERVER_TOKEN);
	b64 = cJSON_IsString(v) ? v->valuestring : NULL;
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(secret,
						"stringData"), K8S_ENV_SERVER_TOKEN);
	plain = cJSON_IsString(v) ? v->valuestring : NULL;
	if (!b64)
		return plain && plain[0] ? xstrdup(plain) : NULL;
	len = strlen(b64);
	out = xmalloc(len + 1);
	if (sodium_base642bin((unsigned char *)out, len, b64, len, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || n == 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)out[i] <= 0x20 || out[i] == 0x7f) { /* not a header value */
			explicit_bzero(out, n);
			free(out);
			return NULL;
		}
	}
	return out;
}

/* The port of "ip:port" / "[ip6]:port"; 0 when there is none. */
static int upstream_port(const char *up)
{
	const char *c = up ? strrchr(up, ':') : NULL;
	char *end;
	long p;

	if (!c)
		return 0;
	errno = 0;
	p = strtol(c + 1, &end, 10);
	return errno || *end || p < 1 || p > 65535 ? 0 : (int)p;
}

static int adopt_port(struct spawner *sp, const struct spawner_server *srv)
{
	const struct spawner_profile *prof = NULL;
	const struct spawner_k8s_image *img = NULL;
	const struct spawner_k8s_sched *sched = NULL;
	struct err *e = NULL;
	int p = upstream_port(srv->upstream);

	if (p)
		return p;
	if (resolve(sp, srv, &prof, &img, &sched, &e) < 0 || !img) {
		err_free(&e);
		return 0;
	}
	return img->port;
}

/* Adopts a Ready pod of ours: upstream, token. -ESRCH when it cannot be. */
static int adopt_ready(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
		       const struct k8s_pod_view *v, struct err **err)
{
	cleanup_json cJSON *secret = adopt_fetch(k->init_secrets, ks->secret_name);
	cleanup_free char *token = secret_token(secret);
	int port = adopt_port(&k->base, srv);

	if (!token || !port) {
		submit_delete(k, srv, ks, true);
		return err_set(err, ESRCH, "%s", !token ?
			       "its secret holds no server token" : "its port is unknown");
	}
	free(srv->upstream);
	srv->upstream = k8s_upstream(v->pod_ip, port);
	clear_auth(srv);
	srv->upstream_auth = xasprintf("token %s", token);
	explicit_bzero(token, strlen(token));
	k8s__replace_str(&ks->pod_uid, v->uid ? v->uid : "");
	ks->port = port;
	ks->restarts = v->restarts;
	ks->phase = K8S_RUNNING;
	return 0;
}

static int k8s_adopt(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_srv *ks = ks_ensure(k, srv);
	struct k8s_pod_view v;
	cJSON *pod;

	ks_reset(k, ks);
	pod = adopt_fetch(k->init_pods, ks->pod_name);
	if (!pod) {
		/* its Secret holds the server's and the user's tokens: not left behind */
		cleanup_json cJSON *secret = adopt_fetch(k->init_secrets,
							 ks->secret_name);

		if (secret)
			submit_delete(k, srv, ks, false);
		return err_set(err, ESRCH, "pod %s not found", ks->pod_name);
	}
	if (!pod_is_ours(k, srv->id, pod)) {
		cJSON_Delete(pod);
		return err_set(err, ESRCH, "pod %s belongs to another server", ks->pod_name);
	}
	ks->pod = pod;
	k8s_pod_view(pod, &v);
	if (v.deleting)
		return err_set(err, ESRCH, "pod %s is being deleted", ks->pod_name);
	if (!v.ready || !v.pod_ip || !v.pod_ip[0]) {
		submit_delete(k, srv, ks, true);
		return err_set(err, ESRCH, "pod %s is not ready (phase %s); deleting it",
			       ks->pod_name, v.phase ? v.phase : "unknown");
	}
	if (adopt_ready(k, srv, ks, &v, err) < 0)
		return err_wrap(err, "pod %s", ks->pod_name);
	log_info("'%s' adopted pod %s at %s", srv->slug, ks->pod_name, srv->upstream);
	return 0;
}

static void k8s_release(struct spawner *sp, struct spawner_server *srv)
{
	struct k8s_srv *ks = srv->priv;

	if (!ks)
		return;
	ks_reset(spawner_k8s_from(sp), ks);
	if (ks->ckpt_token)
		explicit_bzero(ks->ckpt_token, strlen(ks->ckpt_token));
	free(ks->ckpt_token);
	free(ks->pod_name);
	free(ks->secret_name);
	free(ks);
	srv->priv = NULL;
}

/* ---- poll, shutdown ---- */

/* Pods of our gateway whose server is not live here: logged, never touched. */
static void log_orphans(struct spawner_k8s *k)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(k->init_pods, "items")) {
		const cJSON *ann = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(it, "metadata"), "annotations");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ann, K8S_ANN_SERVER_ID);
		long long v = cJSON_IsString(id) ? strtoll(id->valuestring, NULL, 10) : 0;
		struct spawner_server *srv = k8s__server_by_id(k, v);

		if ((srv && spawner_state_is_live(srv->state)) || srv_has_job(k, v, false))
			continue;
		log_info("pod %s belongs to no live server of this gateway; left alone (delete "
			 "it by hand if it is not wanted)", or_null(k8s_json_str(it, "metadata.name")));
	}
}

/* Every server with a pod: GET it (events were dropped). */
static void resync_all(struct spawner_k8s *k)
{
	log_warn("watch events were dropped (queue full); checking every pod");
	for (struct spawner_server *srv = k->base.servers; srv; srv = srv->next) {
		struct k8s_srv *ks = srv->priv;

		if (ks && ks->phase != K8S_IDLE && ks->pod_uid)
			k8s__submit_get(k, srv);
	}
}

static void k8s_poll(struct spawner *sp)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_qitem *items, *it;
	bool overflowed = false;

	if (!k->pool)
		return;
	work_drain(k->pool);
	items = k8s_evq_take(&k->q, &overflowed);
	for (it = items; it; it = it->next)
		k8s_sync_handle(k, it);
	k8s_qitems_free(items);
	if (overflowed)
		resync_all(k);
	if (!k->polled) { /* adoption is over: the startup lists have served */
		log_orphans(k);
		k->polled = true;
		cJSON_Delete(k->init_pods);
		cJSON_Delete(k->init_secrets);
		k->init_pods = k->init_secrets = NULL;
	}
}

static void k8s_stop_wait(struct spawner *sp, int64_t timeout_ms)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };
	struct spawner_k8s *k = spawner_k8s_from(sp);
	int64_t end = time_mono_ms() + timeout_ms, next_get = time_mono_ms() + K8S_STOP_POLL_MS;
	bool pending = true;

	/* The loop is not running at shutdown: poll by hand; timers do not fire. */
	for (int i = 0; pending && i < 100000 && time_mono_ms() < end; i++) {
		bool get = time_mono_ms() >= next_get;

		k8s_poll(sp);
		pending = false;
		for (struct spawner_server *srv = sp->servers; srv; srv = srv->next) {
			struct k8s_srv *ks = srv->priv;

			if (srv->state != SPAWNER_STOPPING)
				continue;
			pending = true;
			if (get && ks && ks->phase == K8S_STOPPING)
				k8s__submit_get(k, srv);
		}
		if (get)
			next_get = time_mono_ms() + K8S_STOP_POLL_MS;
		if (pending)
			nanosleep(&tick, NULL);
	}
}

/* ---- init, destroy ---- */

static void k8s_wake(void *arg)
{
	lws_cancel_service(arg);
}

static void on_watch(void *arg, enum k8s_watch_event ev, const cJSON *obj, const char *message)
{
	struct k8s_src *src = arg;

	/* Old events (a list) and bookkeeping of the events watch say nothing new. */
	if (src->kind == K8S_EVENT && ev != K8S_WATCH_ADDED && ev != K8S_WATCH_MODIFIED &&
	    ev != K8S_WATCH_ERROR)
		return;
	k8s_evq_push(&src->k->q, src->kind, ev, obj, message);
	lws_cancel_service(src->k->base.cfg.lws);
}

static int client_open(struct spawner_k8s *k, struct err **err)
{
	const struct spawner_k8s_cfg *kc = k->base.cfg.k8s;
	struct k8s_client_opts o = {
		.in_cluster = !kc->kubeconfig,
		.kubeconfig = kc->kubeconfig,
		.context = kc->context,
		.ns = kc->ns,
		/* tests only: where the service account files are (tests/k8s) */
		.in_cluster_root = getenv("NBGATE_K8S_IN_CLUSTER_ROOT"),
		.request_timeout_ms = kc->request_timeout_ms,
		.max_response_bytes = kc->max_response_bytes,
	};

	if (k8s_client_new(&o, &k->client, err) < 0)
		return err_wrap(err, "kubernetes: %s", kc->kubeconfig ? "kubeconfig" :
				"in-cluster configuration");
	k->ns = k8s_client_namespace(k->client);
	return 0;
}

/* One LIST of our pods and secrets: adopt() answers from it, no call each. */
static int initial_lists(struct spawner_k8s *k, struct err **err)
{
	if (k8s_list(k->client, K8S_POD, k->ns, k->selector, NULL, &k->init_pods, NULL,
		     err) < 0 ||
	    k8s_list(k->client, K8S_SECRET, k->ns, k->selector, NULL, &k->init_secrets, NULL,
		     err) < 0)
		return err_wrap(err, "kubernetes: list what nbgate created in namespace %s",
				k->ns);
	return 0;
}

static int watches_start(struct spawner_k8s *k, struct err **err)
{
	struct k8s_watch_opts pods = { .kind = K8S_POD, .ns = k->ns,
				       .label_selector = k->selector };
	struct k8s_watch_opts events = { .kind = K8S_EVENT, .ns = k->ns,
					 .field_selector = "involvedObject.kind=Pod" };

	k->pod_src = (struct k8s_src){ .k = k, .kind = K8S_POD };
	k->ev_src = (struct k8s_src){ .k = k, .kind = K8S_EVENT };
	if (k8s_watch_start(k->client, &pods, on_watch, &k->pod_src, &k->pods_w, err) < 0 ||
	    k8s_watch_start(k->client, &events, on_watch, &k->ev_src, &k->events_w, err) < 0)
		return err_wrap(err, "kubernetes: watch");
	return 0;
}

static int k8s_init(struct spawner *sp, struct err **err)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	const struct spawner_k8s_cfg *kc = sp->cfg.k8s;
	int threads;

	if (!kc)
		return err_set(err, EINVAL, "kubernetes: settings missing");
	if (!sp->cfg.lws)
		return err_set(err, EINVAL, "the kubernetes backend needs an event loop");
	if (k8s_check_cfg(&sp->cfg, err) < 0)
		return err_rc(err);
	k8s_evq_init(&k->q, K8S_EVQ_MAX);
	k->q_ready = true;
	k->gateway_id = k8s_cfg_gateway_id(kc);
	k->selector = xasprintf("%s=nbgate,%s=%s", K8S_LABEL_MANAGED, K8S_LABEL_GATEWAY,
				k->gateway_id);
	if (client_open(k, err) < 0 || initial_lists(k, err) < 0)
		return err_rc(err);
	threads = kc->threads > 0 ? kc->threads : 4;
	k->pool = work_pool_new((unsigned)threads, k8s_wake, sp->cfg.lws);
	if (watches_start(k, err) < 0)
		return err_rc(err);
	log_info("backend 'kubernetes': namespace %s at %s, gateway id '%s', %d pod(s) found",
		 k->ns, k8s_client_server(k->client), k->gateway_id,
		 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(k->init_pods, "items")));
	return 0;
}

static void k8s_destroy(struct spawner *sp)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_job *j;

	__atomic_store_n(&k->shutting, 1, __ATOMIC_RELEASE);
	k8s_watch_stop(k->pods_w);
	k8s_watch_stop(k->events_w);
	k->pods_w = k->events_w = NULL;
	/* Runs the done()s left (servers are gone by now: they only free). */
	work_pool_free(k->pool);
	k->pool = NULL;
	while ((j = k->jobs)) { /* deferred, never submitted */
		k->jobs = j->next;
		job_free(j);
	}
	if (k->q_ready)
		k8s_evq_release(&k->q);
	k8s_client_free(k->client);
	cJSON_Delete(k->init_pods);
	cJSON_Delete(k->init_secrets);
	free(k->selector);
}

const struct spawner_ops spawner_k8s_ops = {
	.name = "kubernetes",
	.caps = SPAWNER_CAP_SANDBOX | SPAWNER_CAP_ADOPT | SPAWNER_CAP_PORT | SPAWNER_CAP_REMOTE |
		SPAWNER_CAP_CHECKPOINT,
	.size = sizeof(struct spawner_k8s),
	.init = k8s_init,
	.start = k8s_start,
	.status = k8s_status,
	.stop = k8s_stop,
	.adopt = k8s_adopt,
	.stop_wait = k8s_stop_wait,
	.server_release = k8s_release,
	.destroy = k8s_destroy,
	.checkpoint = k8s_ckpt_checkpoint,
	.restore = k8s_ckpt_restore,
	.checkpoint_forget = k8s_ckpt_forget,
	.poll = k8s_poll,
};
