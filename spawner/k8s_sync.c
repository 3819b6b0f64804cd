/*
 * k8s_sync: what the watches say, applied to the servers (loop thread).
 *
 * Pod events drive the lifecycle: a starting pod becomes running when it
 * is Ready with an IP, fails at once when waiting cannot help (a fatal
 * waiting reason, a crash loop, repeated image pull back-offs) and at the
 * start deadline otherwise, with the best reason known (the scheduler's
 * message when unschedulable, the kubelet's for image pulls); a running
 * pod that is deleted, ends or stays not Ready too long ends its server.
 * Events (core/v1 Event, involvedObject a pod) only make progress lines:
 * they are advisory and may be missing, so no decision rests on them
 * alone except the messages quoted in failures.
 *
 * The pure parts (the event queue, the event -> progress mapping, the
 * classification of a starting pod, the messages) are unit tested on
 * fixture objects (tests/unit/spawner/test_k8s.c).
 */
#define LOG_PREFIX "spawner/k8s: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/k8s_backend.h"

/* Longest piece of an API message quoted to users. */
#define K8S_MSG_MAX 512
/* Longest crash log quoted in a failure. */
#define K8S_LOG_MAX 4096

/* ---- the event queue ---- */

void k8s_evq_init(struct k8s_evq *q, size_t max)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	q->tail = &q->head;
	q->max = max ? max : K8S_EVQ_MAX;
}

void k8s_qitems_free(struct k8s_qitem *it)
{
	while (it) {
		struct k8s_qitem *next = it->next;

		cJSON_Delete(it->obj);
		free(it->message);
		free(it);
		it = next;
	}
}

void k8s_evq_release(struct k8s_evq *q)
{
	k8s_qitems_free(q->head);
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
	pthread_mutex_destroy(&q->mu);
}

bool k8s_evq_push(struct k8s_evq *q, enum k8s_kind kind, enum k8s_watch_event ev,
		  const cJSON *obj, const char *message)
{
	struct k8s_qitem *it;

	pthread_mutex_lock(&q->mu);
	if (q->n >= q->max) {
		q->overflowed = true;
		pthread_mutex_unlock(&q->mu);
		return false;
	}
	pthread_mutex_unlock(&q->mu);
	/* Copy outside the lock: a pod object is a few KiB of allocations. */
	it = xcalloc(1, sizeof(*it));
	it->kind = kind;
	it->ev = ev;
	it->obj = obj ? cJSON_Duplicate(obj, true) : NULL;
	it->message = message ? xstrdup(message) : NULL;
	pthread_mutex_lock(&q->mu);
	*q->tail = it;
	q->tail = &it->next;
	q->n++;
	pthread_mutex_unlock(&q->mu);
	return true;
}

struct k8s_qitem *k8s_evq_take(struct k8s_evq *q, bool *overflowed)
{
	struct k8s_qitem *head;

	pthread_mutex_lock(&q->mu);
	head = q->head;
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
	if (overflowed)
		*overflowed = q->overflowed;
	q->overflowed = false;
	pthread_mutex_unlock(&q->mu);
	return head;
}

/* ---- pure helpers ---- */

/* A member by exact key (label and annotation keys contain dots). */
static const cJSON *member(const cJSON *o, const char *key)
{
	return o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *member_str(const cJSON *o, const char *key)
{
	const cJSON *v = member(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const struct {
	const char *reason;
	int progress;
} event_steps[] = {
	{ "Scheduled", 20 }, { "Pulling", 40 },	 { "Pulled", 60 },
	{ "Created", 80 },   { "Started", 80 },	 { "FailedScheduling", -1 },
	{ "Failed", -1 },    { "BackOff", -1 },	 { "FailedMount", -1 },
};

char *k8s_sync_event_text(const char *reason, const char *message, int *progress)
{
	*progress = -1;
	if (!reason)
		return NULL;
	for (size_t i = 0; i < sizeof(event_steps) / sizeof(event_steps[0]); i++) {
		if (strcmp(event_steps[i].reason, reason) != 0)
			continue;
		*progress = event_steps[i].progress;
		if (!message || !message[0])
			return xstrdup(reason);
		return xasprintf("%s: %.*s", reason, K8S_MSG_MAX, message);
	}
	return NULL;
}

bool k8s_sync_is_pull_error(const char *r)
{
	return k8s__str_eq(r, "ErrImagePull") || k8s__str_eq(r, "ImagePullBackOff") ||
	       k8s__str_eq(r, "InvalidImageName") || k8s__str_eq(r, "ErrImageNeverPull") ||
	       k8s__str_eq(r, "RegistryUnavailable") || k8s__str_eq(r, "ErrImageInspect");
}

static bool phase_ended(const char *phase)
{
	return k8s__str_eq(phase, "Failed") || k8s__str_eq(phase, "Succeeded");
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/*
 * "reason: message" of the server container's wait, or the reason alone;
 * extra (the kubelet's Failed event: why the pull failed, where the wait
 * says only "Back-off pulling image") is appended when it adds something.
 */
static char *waiting_text(const struct k8s_pod_view *v, const char *extra)
{
	const char *m = v->waiting_message && v->waiting_message[0] ? v->waiting_message : NULL;

	if (m && extra && extra[0] && !strstr(m, extra))
		return xasprintf("%s: %.*s; %.*s", or_empty(v->waiting_reason), K8S_MSG_MAX, m,
				 K8S_MSG_MAX, extra);
	if (!m)
		m = extra;
	if (m && m[0])
		return xasprintf("%s: %.*s", or_empty(v->waiting_reason), K8S_MSG_MAX, m);
	return xstrdup(or_empty(v->waiting_reason));
}

/* The deadline passed: the reason the pod is not ready, as precisely as known. */
static char *deadline_message(const struct k8s_pod_view *v, const struct k8s_start_ctx *c)
{
	const char *sched = v && v->unschedulable ? v->unschedulable : NULL;
	cleanup_free char *w = NULL;
	long long t = (long long)c->timeout_s;

	if (!sched && (!v || !v->node) && c->sched_msg)
		sched = c->sched_msg;
	if (sched)
		return xasprintf("no node can run the server (unschedulable for %lld s): %.*s", t,
				 K8S_MSG_MAX, sched);
	if (!v)
		return xasprintf("server not ready after %lld s: pod %s was not created", t,
				 or_empty(c->pod_name));
	if (v->waiting_reason) {
		w = waiting_text(v, k8s_sync_is_pull_error(v->waiting_reason) ? c->pull_msg : NULL);
		if (k8s_sync_is_pull_error(v->waiting_reason))
			return xasprintf("image pull failed after %lld s: %s", t, w);
		return xasprintf("server not ready after %lld s (container waiting: %s)", t, w);
	}
	if (k8s__str_eq(v->phase, "Running"))
		return xasprintf("server not ready after %lld s (the pod runs but its readiness "
				 "probe fails)", t);
	return xasprintf("server not ready after %lld s (pod phase %s)", t,
			 v->phase ? v->phase : "unknown");
}

/* What a pod that is there (v) says now, before any deadline. */
static enum k8s_verdict classify_pod(const struct k8s_pod_view *v, const struct k8s_start_ctx *c,
				     bool at_deadline, char **msg)
{
	cleanup_free char *w = NULL;

	if (v->ready && v->pod_ip && v->pod_ip[0] && !v->deleting)
		return K8S_READY;
	if (phase_ended(v->phase)) {
		*msg = xasprintf("server exited before it was ready (pod phase %s)", v->phase);
		return K8S_FAIL;
	}
	if (k8s__str_eq(v->waiting_reason, "CrashLoopBackOff"))
		return K8S_CRASHLOOP;
	if (k8s_sync_is_pull_error(v->waiting_reason) &&
	    (v->fatal || c->pull_backoffs >= K8S_PULL_BACKOFFS_MAX || at_deadline)) {
		w = waiting_text(v, c->pull_msg);
		*msg = xasprintf("image pull failed: %s", w);
		return K8S_FAIL;
	}
	if (v->fatal) {
		w = waiting_text(v, NULL);
		*msg = xasprintf("pod %s cannot start: %s", or_empty(c->pod_name),
				 w[0] ? w : "not startable");
		return K8S_FAIL;
	}
	return K8S_WAIT;
}

enum k8s_verdict k8s_sync_classify(const struct k8s_pod_view *v, const struct k8s_start_ctx *c,
				   bool at_deadline, char **msg)
{
	enum k8s_verdict r = K8S_WAIT;

	*msg = NULL;
	if (v)
		r = classify_pod(v, c, at_deadline, msg);
	if (r != K8S_WAIT || !at_deadline)
		return r;
	*msg = deadline_message(v, c);
	return K8S_FAIL;
}

/* The server container's status (by name, else the first). */
static const cJSON *server_status(const cJSON *pod)
{
	const cJSON *st = member(member(pod, "status"), "containerStatuses"), *it;

	cJSON_ArrayForEach(it, st)
		if (k8s__str_eq(member_str(it, "name"), K8S_CONTAINER))
			return it;
	return cJSON_IsArray(st) ? cJSON_GetArrayItem(st, 0) : NULL;
}

static char *terminated_text(const cJSON *t)
{
	const cJSON *code = member(t, "exitCode");
	const char *reason = member_str(t, "reason"), *m = member_str(t, "message");
	struct buf b;

	buf_init(&b, 2 * K8S_MSG_MAX);
	buf_appends(&b, reason ? reason : "terminated");
	if (cJSON_IsNumber(code))
		buf_appendf(&b, ", exit code %d", code->valueint);
	if (m && m[0])
		buf_appendf(&b, ": %.*s", K8S_MSG_MAX, m);
	return buf_detach(&b, NULL);
}

char *k8s_sync_exit_reason(const cJSON *pod)
{
	const cJSON *cs = server_status(pod), *status = member(pod, "status");
	const cJSON *t = member(member(cs, "state"), "terminated");
	const char *phase = member_str(status, "phase"), *r = member_str(status, "reason");
	const char *m = member_str(status, "message");

	if (!t)
		t = member(member(cs, "lastState"), "terminated");
	if (cJSON_IsObject(t))
		return terminated_text(t);
	if (r || m)
		return xasprintf("%s%s%.*s", or_empty(r), r && m ? ": " : "", K8S_MSG_MAX,
				 or_empty(m));
	return xasprintf("pod phase %s", phase ? phase : "unknown");
}

/* The last `lines` lines of s (borrowed pointer into s). */
static const char *last_lines(const char *s, size_t len, int lines)
{
	size_t i = len;

	while (i > 0 && s[i - 1] == '\n')
		i--;
	while (i > 0) {
		if (s[i - 1] == '\n' && --lines == 0)
			return s + i;
		i--;
	}
	return s;
}

char *k8s_sync_crash_message(const char *pod_name, int restarts, const char *log)
{
	const char *tail;
	size_t len;

	if (!log || !log[0])
		return xasprintf("server keeps crashing (pod %s: CrashLoopBackOff, %d restarts); "
				 "it wrote no log", or_empty(pod_name), restarts);
	len = strlen(log);
	tail = last_lines(log, len, K8S_LOG_LINES);
	len -= (size_t)(tail - log);
	while (len > 0 && tail[len - 1] == '\n')
		len--;
	if (len > K8S_LOG_MAX) { /* keep the end: the last lines say why */
		tail += len - K8S_LOG_MAX;
		len = K8S_LOG_MAX;
	}
	return xasprintf("server keeps crashing (pod %s: CrashLoopBackOff, %d restarts); last "
			 "log lines:\n%.*s", or_empty(pod_name), restarts, (int)len, tail);
}

/* ---- applying pods to servers ---- */

static void replace_json(cJSON **dst, const cJSON *src)
{
	cJSON_Delete(*dst);
	*dst = src ? cJSON_Duplicate(src, true) : NULL;
}

static void start_ctx(const struct k8s_srv *ks, struct k8s_start_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->pod_name = ks->pod_name;
	c->sched_msg = ks->sched_msg;
	c->pull_msg = ks->pull_msg;
	c->pull_backoffs = ks->pull_backoffs;
	c->timeout_s = ks->spawn_timeout_ms / 1000;
}

/* Counts the spells of ImagePullBackOff (each entry into it from elsewhere). */
static void count_backoffs(struct k8s_srv *ks, const char *waiting)
{
	if (k8s__str_eq(waiting, "ImagePullBackOff") && !k8s__str_eq(ks->last_waiting, "ImagePullBackOff"))
		ks->pull_backoffs++;
	k8s__replace_str(&ks->last_waiting, waiting);
}

static void act(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
		const struct k8s_pod_view *v, enum k8s_verdict verdict, const char *msg)
{
	switch (verdict) {
	case K8S_READY:
		k8s__ready(k, srv, v->pod_ip);
		break;
	case K8S_CRASHLOOP:
		if (!ks->log_pending)
			k8s__submit_log(k, srv);
		break;
	case K8S_FAIL:
		k8s__fail(k, srv, msg);
		break;
	case K8S_WAIT:
		break;
	}
}

static void on_starting(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
			const cJSON *pod, bool deleted)
{
	struct k8s_pod_view v;
	struct k8s_start_ctx c;
	cleanup_free char *msg = NULL;
	enum k8s_verdict verdict;

	if (deleted) {
		msg = xasprintf("pod %s was deleted outside nbgate", ks->pod_name);
		k8s__fail(k, srv, msg);
		return;
	}
	replace_json(&ks->pod, pod);
	k8s_pod_view(ks->pod, &v);
	if (v.deleting) {
		msg = xasprintf("pod %s is being deleted outside nbgate", ks->pod_name);
		k8s__fail(k, srv, msg);
		return;
	}
	count_backoffs(ks, v.waiting_reason);
	ks->restarts = v.restarts;
	start_ctx(ks, &c);
	verdict = k8s_sync_classify(&v, &c, false, &msg);
	if (verdict == K8S_FAIL && phase_ended(v.phase)) {
		cleanup_free char *why = k8s_sync_exit_reason(ks->pod);

		free(msg);
		msg = xasprintf("server exited before it was ready: %s", why);
	}
	act(k, srv, ks, &v, verdict, msg);
}

static void running_ready(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
			  const struct k8s_pod_view *v)
{
	cleanup_free char *up = k8s_upstream(v->pod_ip, ks->port);
	struct err *e = NULL;

	if (ks->not_ready_since_ms)
		log_info("'%s' pod %s is ready again", srv->slug, ks->pod_name);
	ks->not_ready_since_ms = 0;
	if (k8s__str_eq(up, srv->upstream))
		return;
	/* NEEDSWORK: the gateway's route keeps the address of the ready event. */
	log_info("'%s' pod %s has a new address %s", srv->slug, ks->pod_name, up);
	k8s__replace_str(&srv->upstream, up);
	if (spawner__persist(&k->base, srv, &e) < 0) {
		log_warn("'%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
}

static void on_running(struct spawner_k8s *k, struct spawner_server *srv, struct k8s_srv *ks,
		       const cJSON *pod, bool deleted)
{
	struct k8s_pod_view v = { 0 };
	cleanup_free char *msg = NULL, *why = NULL;

	if (!deleted) {
		replace_json(&ks->pod, pod);
		k8s_pod_view(ks->pod, &v);
	}
	if (deleted || v.deleting) {
		msg = xasprintf("pod %s deleted outside nbgate", ks->pod_name);
		k8s__gone(k, srv, msg);
		return;
	}
	if (phase_ended(v.phase)) {
		why = k8s_sync_exit_reason(ks->pod);
		msg = xasprintf("server exited: %s", why);
		if (k8s__str_eq(v.phase, "Succeeded"))
			k8s__gone(k, srv, msg);
		else
			k8s__fail(k, srv, msg);
		return;
	}
	if (v.restarts > ks->restarts) {
		why = k8s_sync_exit_reason(ks->pod);
		msg = xasprintf("server restarted in pod %s (%d restarts): %s", ks->pod_name,
				v.restarts, why);
		log_info("'%s' %s", srv->slug, msg);
		spawner_progress(&k->base, srv, srv->progress, msg);
	}
	ks->restarts = v.restarts;
	if (v.ready && v.pod_ip && v.pod_ip[0]) {
		running_ready(k, srv, ks, &v);
	} else if (!ks->not_ready_since_ms) {
		log_info("'%s' pod %s is not ready", srv->slug, ks->pod_name);
		ks->not_ready_since_ms = time_mono_ms();
		k8s__tick_in(ks, K8S_NOT_READY_MS);
	}
}

void k8s_sync_pod(struct spawner_k8s *k, struct spawner_server *srv, const cJSON *pod,
		  bool deleted)
{
	struct k8s_srv *ks = srv->priv;

	switch (ks->phase) {
	case K8S_STARTING:
		on_starting(k, srv, ks, pod, deleted);
		break;
	case K8S_RUNNING:
		on_running(k, srv, ks, pod, deleted);
		break;
	case K8S_STOPPING:
		if (deleted)
			k8s__stopped(k, srv);
		else
			replace_json(&ks->pod, pod);
		break;
	case K8S_IDLE:
		break;
	}
}

void k8s_sync_deadline(struct spawner_k8s *k, struct spawner_server *srv)
{
	struct k8s_srv *ks = srv->priv;
	struct k8s_pod_view v;
	struct k8s_start_ctx c;
	cleanup_free char *msg = NULL;
	enum k8s_verdict verdict;

	if (ks->phase != K8S_STARTING)
		return;
	if (ks->pod)
		k8s_pod_view(ks->pod, &v);
	start_ctx(ks, &c);
	verdict = k8s_sync_classify(ks->pod ? &v : NULL, &c, true, &msg);
	if (verdict == K8S_CRASHLOOP && ks->log_pending)
		return; /* the log fetch fails it */
	log_info("'%s' start deadline (%lld s) passed", srv->slug, (long long)c.timeout_s);
	act(k, srv, ks, &v, verdict, msg);
}

/* ---- watch events ---- */

/* The server a pod of ours belongs to (by the server-id annotation), or NULL. */
static struct spawner_server *pod_server(struct spawner_k8s *k, const cJSON *pod)
{
	const cJSON *md = member(pod, "metadata");
	const char *id = member_str(member(md, "annotations"), K8S_ANN_SERVER_ID);
	const char *name = member_str(md, "name");
	struct spawner_server *srv;
	struct k8s_srv *ks;
	char *end;
	long long v;

	if (!id || !name)
		return NULL;
	errno = 0;
	v = strtoll(id, &end, 10);
	if (errno || *end || end == id)
		return NULL;
	srv = k8s__server_by_id(k, v);
	ks = srv ? srv->priv : NULL;
	return ks && k8s__str_eq(ks->pod_name, name) ? srv : NULL;
}

static void pod_event(struct spawner_k8s *k, const struct k8s_qitem *it)
{
	struct spawner_server *srv = pod_server(k, it->obj);
	const char *uid = k8s_json_str(it->obj, "metadata.uid");
	struct k8s_srv *ks;

	if (!srv)
		return;
	ks = srv->priv;
	if (it->ev == K8S_WATCH_SYNC)
		ks->synced = true;
	if (!ks->pod_uid) {
		/* Its create has not returned yet: keep the news for then. */
		if (ks->phase == K8S_STARTING && it->ev != K8S_WATCH_DELETED)
			replace_json(&ks->early_pod, it->obj);
		else if (ks->phase == K8S_STOPPING && it->ev == K8S_WATCH_DELETED)
			k8s__stopped(k, srv);
		return;
	}
	if (!k8s__str_eq(uid, ks->pod_uid))
		return; /* an earlier pod of the same name */
	log_debug("'%s' pod %s %s", srv->slug, ks->pod_name,
		  it->ev == K8S_WATCH_DELETED ? "deleted" : "changed");
	k8s_sync_pod(k, srv, it->obj, it->ev == K8S_WATCH_DELETED);
}

/* After a relist: pods of ours the list did not show are checked by GET. */
static void pods_synced(struct spawner_k8s *k)
{
	for (struct spawner_server *srv = k->base.servers; srv; srv = srv->next) {
		struct k8s_srv *ks = srv->priv;

		if (!ks)
			continue;
		if (ks->phase != K8S_IDLE && ks->pod_uid && !ks->synced)
			k8s__submit_get(k, srv);
		ks->synced = false;
	}
}

/* The server whose current pod an Event is about, or NULL. */
static struct spawner_server *event_server(struct spawner_k8s *k, const cJSON *ev)
{
	const cJSON *io = member(ev, "involvedObject");
	const char *name = member_str(io, "name"), *uid = member_str(io, "uid");

	if (!name)
		return NULL;
	for (struct spawner_server *srv = k->base.servers; srv; srv = srv->next) {
		struct k8s_srv *ks = srv->priv;

		if (!ks || ks->phase == K8S_IDLE || !k8s__str_eq(ks->pod_name, name))
			continue;
		/* Events of an earlier pod of that name are not this start's. */
		if (uid && uid[0] && ks->pod_uid && !k8s__str_eq(uid, ks->pod_uid))
			return NULL;
		return srv;
	}
	return NULL;
}

static void event_event(struct spawner_k8s *k, const struct k8s_qitem *it)
{
	struct spawner_server *srv = event_server(k, it->obj);
	const char *reason = member_str(it->obj, "reason");
	const char *msg = member_str(it->obj, "message");
	cleanup_free char *text = NULL;
	struct k8s_srv *ks;
	int progress;

	if (!srv || !reason)
		return;
	ks = srv->priv;
	log_debug("'%s' event %s: %s", srv->slug, reason, msg ? msg : "");
	if (ks->phase != K8S_STARTING)
		return;
	if (strcmp(reason, "FailedScheduling") == 0 && msg)
		k8s__replace_str(&ks->sched_msg, msg);
	/* Keep the kubelet's own words over its "Error: ErrImagePull" echo. */
	if (strcmp(reason, "Failed") == 0 && msg && strncmp(msg, "Error: ", 7) != 0)
		k8s__replace_str(&ks->pull_msg, msg);
	text = k8s_sync_event_text(reason, msg, &progress);
	if (text)
		k8s__progress(&k->base, srv, progress, text);
}

void k8s_sync_handle(struct spawner_k8s *k, const struct k8s_qitem *it)
{
	if (it->ev == K8S_WATCH_ERROR) {
		log_info("watch %s: %s (reconnecting)", it->kind == K8S_POD ? "pods" : "events",
			 it->message ? it->message : "broken");
		return;
	}
	if (it->kind == K8S_EVENT) {
		if ((it->ev == K8S_WATCH_ADDED || it->ev == K8S_WATCH_MODIFIED) && it->obj)
			event_event(k, it);
		return;
	}
	if (it->ev == K8S_WATCH_SYNCED)
		pods_synced(k);
	else if (it->obj)
		pod_event(k, it);
}
