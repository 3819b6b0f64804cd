/*
 * Unit tests for the kubernetes backend's loop-thread logic that needs no
 * API server (spawner/k8s_sync.c, helpers of spawner/k8s.c): the event
 * queue between the watch threads and the loop, the Event -> progress
 * mapping, the classification of starting pods (fixture pods through
 * k8s_pod_view() and hand-made views), the failure messages, reading the
 * token back from a Secret and the ownership check of pods. The lifecycle
 * against an API server is tests/k8s/t81xx (contract double + kubelet).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawner/k8s.c"
#include "spawner/k8s_sync.c"

static cJSON *parse(const char *s)
{
	cJSON *o = cJSON_Parse(s);

	assert_non_null(o);
	return o;
}

/* ---- the event queue ---- */

static void test_evq_order_copy_and_overflow(void **state)
{
	struct k8s_evq q;
	struct k8s_qitem *items, *it;
	cJSON *obj = parse("{\"metadata\":{\"name\":\"a\"}}");
	bool over = true;
	int n = 0;

	k8s_evq_init(&q, 3);
	assert_true(k8s_evq_push(&q, K8S_POD, K8S_WATCH_ADDED, obj, NULL));
	/* The queue holds a copy: the watch's object may go right after. */
	cJSON_SetValuestring(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "name"),
			     "changed");
	assert_true(k8s_evq_push(&q, K8S_EVENT, K8S_WATCH_MODIFIED, obj, NULL));
	assert_true(k8s_evq_push(&q, K8S_POD, K8S_WATCH_ERROR, NULL, "broken"));
	assert_false(k8s_evq_push(&q, K8S_POD, K8S_WATCH_SYNCED, NULL, NULL));
	items = k8s_evq_take(&q, &over);
	assert_true(over);
	for (it = items; it; it = it->next)
		n++;
	assert_int_equal(n, 3);
	assert_int_equal(items->ev, K8S_WATCH_ADDED);
	assert_string_equal(k8s_json_str(items->obj, "metadata.name"), "a");
	assert_int_equal(items->next->kind, K8S_EVENT);
	assert_string_equal(k8s_json_str(items->next->obj, "metadata.name"), "changed");
	assert_null(items->next->next->obj);
	assert_string_equal(items->next->next->message, "broken");
	k8s_qitems_free(items);
	/* Taken: empty again, overflow flag cleared, room again. */
	assert_null(k8s_evq_take(&q, &over));
	assert_false(over);
	assert_true(k8s_evq_push(&q, K8S_POD, K8S_WATCH_SYNCED, NULL, NULL));
	k8s_evq_release(&q);
	cJSON_Delete(obj);
}

struct pusher {
	struct k8s_evq *q;
	int n;
};

static void *push_many(void *arg)
{
	struct pusher *p = arg;
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; i < p->n; i++) {
		cJSON_AddNumberToObject(o, "i", i);
		k8s_evq_push(p->q, K8S_POD, K8S_WATCH_MODIFIED, o, NULL);
		cJSON_DeleteItemFromObject(o, "i");
	}
	cJSON_Delete(o);
	return NULL;
}

static int drain_count(struct k8s_evq *q)
{
	struct k8s_qitem *items = k8s_evq_take(q, NULL);
	int n = 0;

	for (struct k8s_qitem *it = items; it; it = it->next)
		n++;
	k8s_qitems_free(items);
	return n;
}

/* Two watch threads and a loop taking meanwhile: nothing lost or doubled. */
static void test_evq_threads(void **state)
{
	const struct timespec ts = { 0, 100000 };
	struct k8s_evq q;
	struct pusher p = { &q, 2000 };
	pthread_t t[2];
	int count = 0;

	k8s_evq_init(&q, 100000);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, push_many, &p), 0);
	for (int round = 0; round < 100000 && count < 4000; round++) {
		count += drain_count(&q);
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	count += drain_count(&q);
	assert_int_equal(count, 4000);
	k8s_evq_release(&q);
}

/* ---- Events -> progress ---- */

static void test_event_text(void **state)
{
	static const struct {
		const char *reason;
		int progress;
	} steps[] = { { "Scheduled", 20 }, { "Pulling", 40 }, { "Pulled", 60 },
		      { "Created", 80 },   { "Started", 80 },  { "FailedScheduling", -1 },
		      { "Failed", -1 },    { "BackOff", -1 } };
	char *t;
	int p = 99;
	char big[2000];

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		t = k8s_sync_event_text(steps[i].reason, "the message", &p);
		assert_non_null(t);
		assert_int_equal(p, steps[i].progress);
		assert_true(strncmp(t, steps[i].reason, strlen(steps[i].reason)) == 0);
		assert_non_null(strstr(t, ": the message"));
		free(t);
	}
	/* Not shown: probes failing while the server starts are normal. */
	assert_null(k8s_sync_event_text("Unhealthy", "Readiness probe failed", &p));
	assert_int_equal(p, -1);
	assert_null(k8s_sync_event_text(NULL, "x", &p));
	t = k8s_sync_event_text("Pulled", "", &p);
	assert_string_equal(t, "Pulled");
	free(t);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t = k8s_sync_event_text("Failed", big, &p);
	assert_true(strlen(t) < 600);
	free(t);
}

/* ---- classification of starting pods ---- */

static const struct k8s_start_ctx ctx0 = { .pod_name = "nb-alice", .timeout_s = 60 };

static enum k8s_verdict classify(const struct k8s_pod_view *v, const struct k8s_start_ctx *c,
				 bool deadline, char **msg)
{
	free(*msg);
	*msg = NULL;
	return k8s_sync_classify(v, c, deadline, msg);
}

static void test_classify_views(void **state)
{
	struct k8s_pod_view v = { .phase = "Pending" };
	struct k8s_start_ctx c = ctx0;
	char *msg = NULL;

	/* Nothing seen yet: wait; at the deadline it says so. */
	assert_int_equal(classify(NULL, &c, false, &msg), K8S_WAIT);
	assert_null(msg);
	assert_int_equal(classify(NULL, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "not ready after 60 s"));
	assert_non_null(strstr(msg, "nb-alice was not created"));
	/* Ready needs an IP. */
	v.ready = true;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	v.pod_ip = "10.1.2.3";
	v.phase = "Running";
	assert_int_equal(classify(&v, &c, false, &msg), K8S_READY);
	assert_int_equal(classify(&v, &c, true, &msg), K8S_READY);
	v.deleting = true;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	/* Running, probe failing: wait, then a message that says so. */
	memset(&v, 0, sizeof(v));
	v.phase = "Running";
	v.pod_ip = "10.1.2.3";
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "readiness probe"));
	/* Ended before ready. */
	v.phase = "Failed";
	v.fatal = true;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "Failed"));
	free(msg);
}

static void test_classify_unschedulable(void **state)
{
	struct k8s_pod_view v = { .phase = "Pending",
				  .unschedulable = "0/1 nodes are available: 1 Insufficient "
						   "nvidia.com/gpu." };
	struct k8s_start_ctx c = ctx0;
	char *msg = NULL;

	/* The scheduler may find room later (autoscaler): wait for the deadline. */
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "unschedulable"));
	assert_non_null(strstr(msg, "Insufficient nvidia.com/gpu"));
	/* Only the FailedScheduling event knew: its message is used. */
	v.unschedulable = NULL;
	c.sched_msg = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity.";
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "didn't match"));
	/* Once on a node, an old scheduling message is no reason any more. */
	v.node = "node-1";
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_null(strstr(msg, "didn't match"));
	free(msg);
}

static void test_classify_image_pull(void **state)
{
	struct k8s_pod_view v = { .phase = "Pending", .node = "node-1",
				  .waiting_reason = "ErrImagePull" };
	struct k8s_start_ctx c = ctx0;
	char *msg = NULL;

	c.pull_msg = "Failed to pull image \"reg/x:1\": not found";
	/* A registry hiccup heals: wait. */
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	c.pull_backoffs = 1;
	v.waiting_reason = "ImagePullBackOff";
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	c.pull_backoffs = K8S_PULL_BACKOFFS_MAX;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "image pull failed"));
	assert_non_null(strstr(msg, "ImagePullBackOff"));
	/* The kubelet's own words when the pod has no message. */
	assert_non_null(strstr(msg, "reg/x:1"));
	/* At the deadline after one back-off too. */
	c.pull_backoffs = 1;
	v.waiting_message = "Back-off pulling image \"reg/x:1\"";
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "Back-off pulling image"));
	assert_non_null(strstr(msg, "not found")); /* and why, from the kubelet's event */
	/* Invalid names never heal. */
	c.pull_backoffs = 0;
	v.waiting_reason = "InvalidImageName";
	v.fatal = true;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "InvalidImageName"));
	free(msg);
}

static void test_classify_crash_and_config(void **state)
{
	struct k8s_pod_view v = { .phase = "Running", .node = "node-1", .pod_ip = "10.0.0.9",
				  .waiting_reason = "CrashLoopBackOff", .fatal = true,
				  .restarts = 3 };
	struct k8s_start_ctx c = ctx0;
	char *msg = NULL;

	/* The log is fetched first, then it fails. */
	assert_int_equal(classify(&v, &c, false, &msg), K8S_CRASHLOOP);
	assert_null(msg);
	v.waiting_reason = "CreateContainerConfigError";
	v.waiting_message = "secret \"nb-alice-env\" not found";
	assert_int_equal(classify(&v, &c, false, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "nb-alice cannot start"));
	assert_non_null(strstr(msg, "CreateContainerConfigError: secret"));
	/* Waiting for a reason that may pass (ContainerCreating): wait. */
	v.waiting_reason = "ContainerCreating";
	v.waiting_message = NULL;
	v.fatal = false;
	assert_int_equal(classify(&v, &c, false, &msg), K8S_WAIT);
	assert_int_equal(classify(&v, &c, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "container waiting: ContainerCreating"));
	free(msg);
}

/* Fixture pods as the API server returns them, through k8s_pod_view(). */
static const char *pod_unschedulable =
	"{\"metadata\":{\"name\":\"nb-bob\",\"uid\":\"u1\"},\"status\":{\"phase\":\"Pending\","
	"\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\",\"reason\":"
	"\"Unschedulable\",\"message\":\"0/1 nodes are available: 1 Insufficient cpu.\"}]}}";
static const char *pod_ready =
	"{\"metadata\":{\"name\":\"nb-bob\",\"uid\":\"u1\"},\"spec\":{\"nodeName\":\"n1\"},"
	"\"status\":{\"phase\":\"Running\",\"podIP\":\"10.4.0.7\",\"conditions\":["
	"{\"type\":\"PodScheduled\",\"status\":\"True\"},{\"type\":\"Ready\",\"status\":"
	"\"True\"}],\"containerStatuses\":[{\"name\":\"server\",\"ready\":true,"
	"\"restartCount\":0,\"state\":{\"running\":{}}}]}}";
static const char *pod_crash =
	"{\"metadata\":{\"name\":\"nb-bob\",\"uid\":\"u1\"},\"spec\":{\"nodeName\":\"n1\"},"
	"\"status\":{\"phase\":\"Running\",\"podIP\":\"10.4.0.7\",\"containerStatuses\":[{"
	"\"name\":\"server\",\"restartCount\":4,\"state\":{\"waiting\":{\"reason\":"
	"\"CrashLoopBackOff\",\"message\":\"back-off 40s\"}},\"lastState\":{\"terminated\":{"
	"\"exitCode\":1,\"reason\":\"Error\"}}}]}}";
static const char *pod_pull =
	"{\"metadata\":{\"name\":\"nb-bob\",\"uid\":\"u1\"},\"spec\":{\"nodeName\":\"n1\"},"
	"\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"server\","
	"\"restartCount\":0,\"state\":{\"waiting\":{\"reason\":\"ErrImagePull\",\"message\":"
	"\"rpc error: manifest unknown\"}}}]}}";

static enum k8s_verdict classify_json(const char *json, bool deadline, char **msg)
{
	cJSON *pod = parse(json);
	struct k8s_pod_view v;
	struct k8s_start_ctx c = ctx0;
	enum k8s_verdict r;

	k8s_pod_view(pod, &v);
	r = classify(&v, &c, deadline, msg);
	cJSON_Delete(pod);
	return r;
}

static void test_classify_fixture_pods(void **state)
{
	char *msg = NULL;

	assert_int_equal(classify_json(pod_unschedulable, false, &msg), K8S_WAIT);
	assert_int_equal(classify_json(pod_unschedulable, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "Insufficient cpu"));
	assert_int_equal(classify_json(pod_ready, false, &msg), K8S_READY);
	assert_int_equal(classify_json(pod_crash, false, &msg), K8S_CRASHLOOP);
	assert_int_equal(classify_json(pod_pull, false, &msg), K8S_WAIT);
	assert_int_equal(classify_json(pod_pull, true, &msg), K8S_FAIL);
	assert_non_null(strstr(msg, "manifest unknown"));
	free(msg);
}

/* Back-offs count spells of ImagePullBackOff, not updates within one. */
static void test_count_backoffs(void **state)
{
	struct k8s_srv ks = { 0 };
	const char *seq[] = { "ContainerCreating", "ErrImagePull", "ImagePullBackOff",
			      "ImagePullBackOff", "ErrImagePull", "ImagePullBackOff", NULL };

	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		count_backoffs(&ks, seq[i]);
	assert_int_equal(ks.pull_backoffs, 2);
	free(ks.last_waiting);
}

/* ---- messages ---- */

static void test_exit_reason(void **state)
{
	cJSON *pod = parse(pod_crash);
	char *s = k8s_sync_exit_reason(pod);

	assert_string_equal(s, "Error, exit code 1");
	free(s);
	cJSON_Delete(pod);
	pod = parse("{\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":"
		    "\"server\",\"state\":{\"terminated\":{\"exitCode\":137,\"reason\":"
		    "\"OOMKilled\",\"message\":\"out of memory\"}}}]}}");
	s = k8s_sync_exit_reason(pod);
	assert_string_equal(s, "OOMKilled, exit code 137: out of memory");
	free(s);
	cJSON_Delete(pod);
	pod = parse("{\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\",\"message\":"
		    "\"The node was low on resource: memory.\"}}");
	s = k8s_sync_exit_reason(pod);
	assert_string_equal(s, "Evicted: The node was low on resource: memory.");
	free(s);
	cJSON_Delete(pod);
	s = k8s_sync_exit_reason(NULL);
	assert_string_equal(s, "pod phase unknown");
	free(s);
}

static void test_crash_message(void **state)
{
	struct buf b;
	char *log, *m;

	buf_init(&b, 1 << 20);
	for (int i = 1; i <= 30; i++)
		buf_appendf(&b, "line %d\n", i);
	buf_appends(&b, "\n\n");
	log = buf_detach(&b, NULL);
	m = k8s_sync_crash_message("nb-bob", 4, log);
	assert_non_null(strstr(m, "CrashLoopBackOff, 4 restarts"));
	assert_null(strstr(m, "line 10\n"));
	assert_non_null(strstr(m, "\nline 11\n"));
	assert_non_null(strstr(m, "line 30"));
	assert_int_equal(m[strlen(m) - 1], '0'); /* trailing blank lines dropped */
	free(m);
	free(log);
	m = k8s_sync_crash_message("nb-bob", 1, "");
	assert_non_null(strstr(m, "no log"));
	free(m);
	/* One enormous line: the end is kept, bounded. */
	log = xmalloc(100001);
	memset(log, 'y', 100000);
	log[99999] = 'Z';
	log[100000] = '\0';
	m = k8s_sync_crash_message("nb-bob", 1, log);
	assert_true(strlen(m) < 4096 + 200);
	assert_int_equal(m[strlen(m) - 1], 'Z');
	free(m);
	free(log);
}

/* ---- k8s.c helpers ---- */

static void test_secret_token(void **state)
{
	/* "token-abc" */
	cJSON *s = parse("{\"data\":{\"NBGATE_SERVER_TOKEN\":\"dG9rZW4tYWJj\"}}");
	char *t = secret_token(s);

	assert_string_equal(t, "token-abc");
	free(t);
	cJSON_Delete(s);
	s = parse("{\"stringData\":{\"NBGATE_SERVER_TOKEN\":\"plain\"}}");
	t = secret_token(s);
	assert_string_equal(t, "plain");
	free(t);
	cJSON_Delete(s);
	/* Not base64; a value with a newline (header injection); absent. */
	s = parse("{\"data\":{\"NBGATE_SERVER_TOKEN\":\"!!!\"}}");
	assert_null(secret_token(s));
	cJSON_Delete(s);
	s = parse("{\"data\":{\"NBGATE_SERVER_TOKEN\":\"YQpi\"}}"); /* "a\nb" */
	assert_null(secret_token(s));
	cJSON_Delete(s);
	s = parse("{\"data\":{}}");
	assert_null(secret_token(s));
	cJSON_Delete(s);
	assert_null(secret_token(NULL));
}

static void test_upstream_port(void **state)
{
	assert_int_equal(upstream_port("10.0.0.1:8888"), 8888);
	assert_int_equal(upstream_port("[fd00::1]:8080"), 8080);
	assert_int_equal(upstream_port("10.0.0.1"), 0);
	assert_int_equal(upstream_port("10.0.0.1:70000"), 0);
	assert_int_equal(upstream_port("10.0.0.1:88x"), 0);
	assert_int_equal(upstream_port(NULL), 0);
}

static void test_pod_is_ours(void **state)
{
	struct spawner_k8s k = { .gateway_id = "nbgate" };
	cJSON *p = parse("{\"metadata\":{\"labels\":{\"nbgate.io/gateway\":\"nbgate\"},"
			 "\"annotations\":{\"nbgate.io/server-id\":\"42\"}}}");

	assert_true(pod_is_ours(&k, 42, p));
	assert_false(pod_is_ours(&k, 4, p));
	k.gateway_id = "other";
	assert_false(pod_is_ours(&k, 42, p));
	cJSON_Delete(p);
	k.gateway_id = "nbgate";
	p = parse("{\"metadata\":{\"name\":\"nb-x\"}}"); /* made by hand */
	assert_false(pod_is_ours(&k, 42, p));
	cJSON_Delete(p);
}

static void test_quota(void **state)
{
	static const struct spawner_profile profs[] = {
		{ .name = "small", .image = "jupyterlab", .cpu_millis = 1000, .memory_bytes = 1 << 30 },
		{ .name = "gpu", .image = "jupyterlab", .cpu_millis = 1000, .memory_bytes = 1 << 30,
		  .gpus = 1 },
	};
	struct spawner sp = { .ops = &spawner_k8s_ops };
	struct spawner_server a = { .id = 1, .user_id = 7, .state = SPAWNER_RUNNING,
				    .profile = "gpu" };
	struct spawner_server b = { .id = 2, .user_id = 7, .state = SPAWNER_STARTING };
	struct err *e = NULL;

	sp.cfg.profiles = profs;
	sp.cfg.n_profiles = 2;
	sp.cfg.quota.max_gpus = 1;
	sp.servers = &a;
	a.next = &b;
	assert_int_equal(spawner_quota_check(&sp, &b, &profs[0], &e), 0);
	assert_int_equal(spawner_quota_check(&sp, &b, &profs[1], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "GPU limit 1"));
	err_free(&e);
	sp.cfg.quota.max_servers = 1;
	assert_int_equal(spawner_quota_check(&sp, &b, &profs[0], &e), -EDQUOT);
	err_free(&e);
	a.state = SPAWNER_STOPPED;
	assert_int_equal(spawner_quota_check(&sp, &b, &profs[1], &e), 0);
	sp.cfg.quota.max_cpu_millis = 1500;
	a.state = SPAWNER_RUNNING;
	sp.cfg.quota.max_servers = 0;
	sp.cfg.quota.max_gpus = 0;
	assert_int_equal(spawner_quota_check(&sp, &b, &profs[0], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "CPU"));
	err_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_evq_order_copy_and_overflow),
		cmocka_unit_test(test_evq_threads),
		cmocka_unit_test(test_event_text),
		cmocka_unit_test(test_classify_views),
		cmocka_unit_test(test_classify_unschedulable),
		cmocka_unit_test(test_classify_image_pull),
		cmocka_unit_test(test_classify_crash_and_config),
		cmocka_unit_test(test_classify_fixture_pods),
		cmocka_unit_test(test_count_backoffs),
		cmocka_unit_test(test_exit_reason),
		cmocka_unit_test(test_crash_message),
		cmocka_unit_test(test_secret_token),
		cmocka_unit_test(test_upstream_port),
		cmocka_unit_test(test_pod_is_ours),
		cmocka_unit_test(test_quota),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
