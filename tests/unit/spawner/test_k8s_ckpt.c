/*
 * Unit tests for the pure half of spawner/k8s_ckpt.c (k8s_ckpt.h): the
 * "<node>:<archive>" row path and its split, the checkpoint_image template
 * (check and expansion), the restore Pod built from k8s_build_pod()'s
 * output (only image, hostname selector and restored-from annotation
 * change) and the messages of a failed kubelet checkpoint call. Both sides
 * of every rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawner/k8s_ckpt.c"

#include "spawner/k8s_api.h"
#include "spawner/names.h"

#define TOKEN "s3cr3t-server-token-0123456789"
#define ARCHIVE "/var/lib/kubelet/checkpoints/checkpoint-nbgate-alice_nbgate-users-server-" \
	"2024-03-01T10:20:30Z.tar"
#define NODE "worker-7.example"

static const char *const jlab_cmd[] = {
	"python3", "-m", "jupyterlab", "--ServerApp.ip=$(NBGATE_POD_IP)",
	"--ServerApp.port={port}", "--ServerApp.base_url={base_url}",
	"--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)", "--ServerApp.root_dir={home}", NULL
};
static char *srv_env[] = { "A=1", NULL };
static const char *const sel_small[] = { "pool=cpu", NULL };
static const char *const sel_gpu[] = { "pool=gpu", "zone=a", NULL };
/* A profile that already pins a host: the checkpoint's node must win. */
static const char *const sel_host[] = { "pool=cpu", "kubernetes.io/hostname=other-node", NULL };
static const char *const tol_small =
	"[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"nb\",\"effect\":\"NoSchedule\"}]";

/* Profile 0 "small" (cpu, selector), 1 "gpu", 2 "plain" (no sched). */
struct fx {
	struct spawner_k8s_image img;
	struct spawner_k8s_cfg k;
	struct spawner_profile prof[3];
	struct spawner_k8s_sched sched[3];
	struct spawner_cfg cfg;
	struct spawner_server srv;
	struct k8s_pod_req req;
	const char *images[2];
	char *slug;
};

static void fx_init(struct fx *f, int profile)
{
	memset(f, 0, sizeof(*f));
	f->img = (struct spawner_k8s_image){ .name = "jupyterlab",
		.ref = "registry.example/nbgate/jupyterlab:4", .cmd = jlab_cmd,
		.server_type = "jupyterlab", .port = 8888, .uid = 1000, .home = "/home/jovyan" };
	f->k = (struct spawner_k8s_cfg){ .ns = "nbgate-users", .images = &f->img, .n_images = 1,
		.sched = f->sched, .storage_class = "standard", .gateway_id = "gw1",
		.image_pull_secret = "regcred" };
	f->prof[0] = (struct spawner_profile){ .name = "small", .image = "jupyterlab",
		.cpu_millis = 1500, .memory_bytes = 2147483648LL, .network = "none" };
	f->prof[1] = (struct spawner_profile){ .name = "gpu", .image = "jupyterlab",
		.cpu_millis = 4000, .memory_bytes = 17179869184LL, .gpus = 2,
		.gpu_model = "NVIDIA-A100-SXM4-40GB", .network = "egress" };
	f->prof[2] = (struct spawner_profile){ .name = "plain", .image = "jupyterlab",
		.network = "none" };
	f->sched[0] = (struct spawner_k8s_sched){ sel_small, tol_small };
	f->sched[1] = (struct spawner_k8s_sched){ sel_gpu, NULL };
	f->sched[2] = (struct spawner_k8s_sched){ NULL, NULL };
	f->images[0] = "jupyterlab";
	f->cfg = (struct spawner_cfg){ .stop_timeout_ms = 10000, .profiles = f->prof,
		.n_profiles = 3, .images = f->images, .k8s = &f->k };
	f->srv = (struct spawner_server){ .id = 42, .base_url = "/user/alice/", .env = srv_env };
	f->slug = spawner_slug("alice", "");
	f->srv.user = (char *)"alice";
	f->srv.name = (char *)"";
	f->srv.slug = f->slug;
	f->req = (struct k8s_pod_req){ .cfg = &f->cfg, .srv = &f->srv, .prof = &f->prof[profile],
		.sched = profile == 2 ? NULL : &f->sched[profile], .img = &f->img,
		.ns = "nbgate-users", .server_token = TOKEN };
}

static void fx_free(struct fx *f)
{
	free(f->slug);
	f->slug = NULL;
}

/* Serialises and parses back: what the API server would receive. */
static cJSON *roundtrip(cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);
	cJSON *back;

	assert_non_null(text);
	back = cJSON_Parse(text);
	assert_non_null(back);
	free(text);
	cJSON_Delete(o);
	return back;
}

static cJSON *build_pod(struct fx *f)
{
	struct err *e = NULL;
	cJSON *pod = k8s_build_pod(&f->req, &e);

	if (!pod)
		fail_msg("k8s_build_pod: %s", e->msg);
	return pod;
}

static cJSON *get(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *gets(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(get(o, k));
}

/* The container named name in spec.containers, or NULL. */
static cJSON *container(const cJSON *pod, const char *name)
{
	cJSON *c;

	cJSON_ArrayForEach(c, get(get(pod, "spec"), "containers")) {
		if (gets(c, "name") && strcmp(gets(c, "name"), name) == 0)
			return c;
	}
	return NULL;
}

/* How many members of obj are named key (a JSON object must have one). */
static int count_key(const cJSON *obj, const char *key)
{
	const cJSON *c;
	int n = 0;

	cJSON_ArrayForEach(c, obj) {
		if (c->string && strcmp(c->string, key) == 0)
			n++;
	}
	return n;
}

/* Asserts rc < 0, code EINVAL and a message containing want; frees. */
static void assert_einval(int rc, struct err **e, const char *want)
{
	assert_true(rc < 0);
	assert_non_null(*e);
	assert_int_equal((*e)->code, EINVAL);
	assert_int_equal(rc, -EINVAL);
	if (want && !strstr((*e)->msg, want))
		fail_msg("message '%s' lacks '%s'", (*e)->msg, want);
	err_free(e);
}

/* ---- row path ---- */

static void split_ok(const char *path, const char *node, const char *archive)
{
	struct err *e = NULL;
	char *n = NULL, *a = NULL;

	if (k8s_ckpt_path_split(path, &n, &a, &e) < 0)
		fail_msg("split '%s': %s", path, e->msg);
	assert_null(e);
	assert_string_equal(n, node);
	assert_string_equal(a, archive);
	free(n);
	free(a);
}

static void split_bad(const char *path)
{
	struct err *e = NULL;
	char *n = NULL, *a = NULL;
	int rc = k8s_ckpt_path_split(path, &n, &a, &e);

	if (rc == 0)
		fail_msg("'%s' split as '%s' + '%s'", path ? path : "(null)", n, a);
	assert_einval(rc, &e, "not a kubelet archive");
	assert_null(n);
	assert_null(a);
}

static void test_path(void **state)
{
	char *p;

	(void)state;
	p = k8s_ckpt_path(NODE, ARCHIVE);
	assert_string_equal(p, NODE ":" ARCHIVE);
	/* the archive's own colons (the kubelet's timestamp) stay in it */
	split_ok(p, NODE, ARCHIVE);
	free(p);
	split_ok("n:/a", "n", "/a");
	split_ok("ip-10-0-0-1.ec2.internal:/x:y:z", "ip-10-0-0-1.ec2.internal", "/x:y:z");
	split_ok("n:/", "n", "/");

	split_bad(NULL);
	split_bad("");
	split_bad("/srv/nbgate/ckpt/42");          /* a local backend's criu dir */
	split_bad("/srv/nbgate/ckpt:odd/42");      /* ... with a colon in it */
	split_bad("worker-7");                     /* no colon */
	split_bad(":" ARCHIVE);                    /* empty node */
	split_bad("worker-7:relative/archive.tar"); /* the archive is absolute */
	split_bad("worker-7:");                    /* no archive */
	split_bad("a/b:/x");                       /* '/' in the node */
}

/* ---- image template ---- */

static void check_ok(const char *tmpl)
{
	struct err *e = NULL;

	if (k8s_ckpt_image_check(tmpl, &e) < 0)
		fail_msg("'%s' refused: %s", tmpl, e->msg);
	assert_null(e);
}

static void check_bad(const char *tmpl, const char *want)
{
	struct err *e = NULL;
	int rc = k8s_ckpt_image_check(tmpl, &e);

	if (rc == 0)
		fail_msg("'%s' accepted", tmpl ? tmpl : "(null)");
	assert_einval(rc, &e, want);
	/* the expansion refuses the same templates */
	assert_null(k8s_ckpt_image(tmpl, "pod", 1, "node", &e));
	assert_einval(-EINVAL, &e, want);
}

static void test_image_check(void **state)
{
	char longest[513], too_long[514];

	(void)state;
	check_ok("registry.example/ckpt/{pod}:{id}");
	check_ok("{id}");
	check_ok("reg:5000/c/{node}-{pod}-{id}:{id}");
	check_ok("reg/ckpt@{id}");

	/* {id} required */
	check_bad("registry.example/ckpt/{pod}:latest", "needs {id}");
	check_bad("reg/{pod}-{node}", "needs {id}");
	check_bad("reg/plain", "needs {id}");
	/* only {pod} {id} {node} */
	check_bad("reg/{user}:{id}", "unknown placeholder");
	check_bad("reg/{ID}", "unknown placeholder");
	check_bad("reg/{Pod}:{id}", "unknown placeholder");
	check_bad("reg/{}:{id}", "unknown placeholder");
	check_bad("reg/{ id}", "unknown placeholder");
	/* bad braces */
	check_bad("reg/{id", "unknown placeholder");
	check_bad("reg/{id}:{", "unknown placeholder");
	check_bad("reg/{{id}}", "unknown placeholder");
	check_bad("reg/id}", "'}'");
	check_bad("reg/{id}}", "'}'");
	check_bad("}{id}", "'}'");
	/* printable ASCII, no spaces */
	check_bad("reg/ {id}", "printable");
	check_bad("reg/\t{id}", "printable");
	check_bad("reg/\n{id}", "printable");
	check_bad("reg/\x7f{id}", "printable");
	check_bad("reg/\xc3\xa9{id}", "printable");
	/* length 1..512 */
	check_bad(NULL, "1..512");
	check_bad("", "1..512");
	memset(longest, 'a', sizeof(longest) - 1);
	memcpy(longest, "{id}", 4);
	longest[sizeof(longest) - 1] = '\0';
	check_ok(longest);
	memset(too_long, 'a', sizeof(too_long) - 1);
	memcpy(too_long, "{id}", 4);
	too_long[sizeof(too_long) - 1] = '\0';
	check_bad(too_long, "1..512");
}

static void image_is(const char *tmpl, const char *pod, int64_t id, const char *node,
		     const char *want)
{
	struct err *e = NULL;
	char *got = k8s_ckpt_image(tmpl, pod, id, node, &e);

	if (!got)
		fail_msg("'%s': %s", tmpl, e->msg);
	assert_null(e);
	assert_string_equal(got, want);
	free(got);
}

static void test_image(void **state)
{
	struct err *e = NULL;
	char pod[1025], *got;

	(void)state;
	image_is("registry.example/ckpt/{pod}:{id}", "nbgate-alice", 17, NODE,
		 "registry.example/ckpt/nbgate-alice:17");
	image_is("reg:5000/c/{node}-{pod}-{id}:{id}", "p", 9, "n1", "reg:5000/c/n1-p-9:9");
	image_is("{id}", "p", 0, "n", "0");
	image_is("r/{id}", "p", INT64_MAX, "n", "r/9223372036854775807");
	image_is("r/{id}", "p", -5, "n", "r/-5");
	/* values are copied verbatim, never re-expanded */
	image_is("r/{pod}:{id}", "{id}", 3, "n", "r/{id}:3");
	image_is("r/{node}{id}", "p", 3, "{pod}", "r/{pod}3");

	/* the result is at most 1024 characters */
	memset(pod, 'p', sizeof(pod) - 1);
	pod[1023] = '\0';
	got = k8s_ckpt_image("{id}{pod}", pod, 7, "n", &e);
	if (!got)
		fail_msg("1024 characters refused: %s", e->msg);
	assert_int_equal(strlen(got), 1024);
	assert_int_equal(got[0], '7');
	free(got);
	pod[1023] = 'p';
	pod[1024] = '\0';
	assert_null(k8s_ckpt_image("{id}{pod}", pod, 7, "n", &e));
	assert_einval(-EINVAL, &e, "longer than 1024");
}

/* ---- restore pod ---- */

/*
 * Undoes exactly what k8s_ckpt_restore_pod() may change; the rest must be
 * k8s_build_pod()'s output untouched.
 */
static void undo_restore(cJSON *pod, const char *orig_image, bool had_selector)
{
	cJSON *spec = get(pod, "spec");
	cJSON *sel = get(spec, "nodeSelector");

	cJSON_ReplaceItemInObjectCaseSensitive(container(pod, K8S_CONTAINER), "image",
					       cJSON_CreateString(orig_image));
	cJSON_DeleteItemFromObjectCaseSensitive(sel, K8S_LABEL_HOSTNAME);
	if (!had_selector && cJSON_GetArraySize(sel) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "nodeSelector");
	cJSON_DeleteItemFromObjectCaseSensitive(get(get(pod, "metadata"), "annotations"),
						K8S_ANN_RESTORED_FROM);
}

/* Builds the profile's pod, restores it, checks and returns nodeSelector. */
static void restore_profile(int profile, const char *const *want_sel)
{
	struct fx f;
	struct err *e = NULL;
	cJSON *orig, *pod, *sel;
	char *image = xstrdup("registry.example/ckpt/nbgate-alice:17");
	char *node = xstrdup(NODE);
	char *origin = k8s_ckpt_path(NODE, ARCHIVE);
	bool had_selector;
	int n_want = 0;

	fx_init(&f, profile);
	orig = build_pod(&f);
	had_selector = get(get(orig, "spec"), "nodeSelector") != NULL;
	pod = cJSON_Duplicate(orig, true);
	if (k8s_ckpt_restore_pod(pod, image, node, origin, &e) < 0)
		fail_msg("restore: %s", e->msg);
	assert_null(e);
	/* strings are copied: the caller's may go */
	free(image);
	free(node);
	free(origin);
	pod = roundtrip(pod);

	assert_string_equal(gets(container(pod, K8S_CONTAINER), "image"),
			    "registry.example/ckpt/nbgate-alice:17");
	sel = get(get(pod, "spec"), "nodeSelector");
	assert_true(cJSON_IsObject(sel));
	assert_int_equal(count_key(sel, K8S_LABEL_HOSTNAME), 1);
	assert_string_equal(gets(sel, K8S_LABEL_HOSTNAME), NODE);
	for (; want_sel && want_sel[n_want]; n_want += 2)
		assert_string_equal(gets(sel, want_sel[n_want]), want_sel[n_want + 1]);
	/* the profile's entries (+ GPU product label) stay, the pin is added */
	assert_int_equal(cJSON_GetArraySize(sel),
			 cJSON_GetArraySize(get(get(orig, "spec"), "nodeSelector")) + 1);
	assert_int_equal(count_key(get(get(pod, "metadata"), "annotations"),
				   K8S_ANN_RESTORED_FROM), 1);
	assert_string_equal(gets(get(get(pod, "metadata"), "annotations"), K8S_ANN_RESTORED_FROM),
			    NODE ":" ARCHIVE);

	undo_restore(pod, f.img.ref, had_selector);
	if (!cJSON_Compare(orig, pod, true)) {
		char *a = cJSON_Print(orig), *b = cJSON_Print(pod);

		fail_msg("restore changed more than image/selector/annotation:\n%s\n---\n%s", a, b);
	}
	cJSON_Delete(orig);
	cJSON_Delete(pod);
	fx_free(&f);
}

static void test_restore_pod(void **state)
{
	static const char *const want_small[] = { "pool", "cpu", NULL };
	static const char *const want_gpu[] = { "pool", "gpu", "zone", "a", NULL };

	(void)state;
	restore_profile(0, want_small);
	restore_profile(1, want_gpu);
	restore_profile(2, NULL); /* no profile selector: one is created */
}

/* A profile that pins a host already: the archive's node replaces it. */
static void test_restore_pod_host_pinned(void **state)
{
	struct fx f;
	struct err *e = NULL;
	cJSON *pod, *sel;

	(void)state;
	fx_init(&f, 0);
	f.sched[0].node_selector = sel_host;
	pod = build_pod(&f);
	assert_string_equal(gets(get(get(pod, "spec"), "nodeSelector"), K8S_LABEL_HOSTNAME),
			    "other-node");
	assert_int_equal(k8s_ckpt_restore_pod(pod, "img:{1}", NODE, "o", &e), 0);
	pod = roundtrip(pod);
	sel = get(get(pod, "spec"), "nodeSelector");
	assert_int_equal(count_key(sel, K8S_LABEL_HOSTNAME), 1);
	assert_string_equal(gets(sel, K8S_LABEL_HOSTNAME), NODE);
	assert_string_equal(gets(sel, "pool"), "cpu");
	assert_int_equal(cJSON_GetArraySize(sel), 2);
	/* a second restore of the same object does not duplicate anything */
	assert_int_equal(k8s_ckpt_restore_pod(pod, "img2", "n2", "o2", &e), 0);
	assert_int_equal(count_key(sel, K8S_LABEL_HOSTNAME), 1);
	assert_string_equal(gets(sel, K8S_LABEL_HOSTNAME), "n2");
	assert_string_equal(gets(container(pod, K8S_CONTAINER), "image"), "img2");
	assert_int_equal(count_key(container(pod, K8S_CONTAINER), "image"), 1);
	assert_string_equal(gets(get(get(pod, "metadata"), "annotations"),
				 K8S_ANN_RESTORED_FROM), "o2");
	cJSON_Delete(pod);
	fx_free(&f);
}

/* Only the container named "server" changes; missing parents are made. */
static void test_restore_pod_minimal(void **state)
{
	struct err *e = NULL;
	cJSON *pod = cJSON_Parse("{\"spec\":{\"nodeSelector\":null,\"containers\":["
				 "{\"name\":\"sidecar\",\"image\":\"side:1\"},"
				 "{\"name\":\"server\",\"image\":\"old:1\"}]}}");

	(void)state;
	assert_non_null(pod);
	assert_int_equal(k8s_ckpt_restore_pod(pod, "new:2", "n", "n:/a", &e), 0);
	assert_string_equal(gets(container(pod, "sidecar"), "image"), "side:1");
	assert_string_equal(gets(container(pod, K8S_CONTAINER), "image"), "new:2");
	assert_string_equal(gets(get(get(pod, "spec"), "nodeSelector"), K8S_LABEL_HOSTNAME), "n");
	assert_string_equal(gets(get(get(pod, "metadata"), "annotations"), K8S_ANN_RESTORED_FROM),
			    "n:/a");
	cJSON_Delete(pod);
}

static void restore_bad(const char *json)
{
	struct err *e = NULL;
	cJSON *pod = json ? cJSON_Parse(json) : NULL;
	char *before = pod ? cJSON_PrintUnformatted(pod) : NULL, *after;

	assert_einval(k8s_ckpt_restore_pod(pod, "i", "n", "o", &e), &e, "no container 'server'");
	/* a refused pod is left as it was */
	if (pod) {
		after = cJSON_PrintUnformatted(pod);
		assert_string_equal(before, after);
		free(after);
	}
	free(before);
	cJSON_Delete(pod);
}

static void test_restore_pod_errors(void **state)
{
	(void)state;
	restore_bad(NULL);
	restore_bad("{}");
	restore_bad("{\"spec\":{}}");
	restore_bad("{\"spec\":{\"containers\":[]}}");
	restore_bad("{\"spec\":{\"containers\":[{\"name\":\"sidecar\",\"image\":\"s\"}]}}");
	restore_bad("{\"spec\":{\"containers\":[{\"name\":\"Server\"},{\"image\":\"x\"}]}}");
	restore_bad("{\"spec\":{\"initContainers\":[{\"name\":\"server\"}]}}");
}

/* ---- fail messages ---- */

static void assert_has(const char *s, const char *needle, bool want)
{
	if (!!strstr(s, needle) != want)
		fail_msg("'%s' %s '%s'", s, want ? "lacks" : "contains", needle);
}

static void test_fail_message(void **state)
{
	char *m;

	(void)state;
	/* 404: the feature gate or the runtime, on that node */
	m = k8s_ckpt_fail_message(k8s_errno(404), "the server could not find it", NODE);
	assert_has(m, "404", true);
	assert_has(m, "ContainerCheckpoint", true);
	assert_has(m, "CRIU", true);
	assert_has(m, NODE, true);
	assert_has(m, "the server could not find it", true);
	assert_has(m, "nodes/proxy", false);
	free(m);
	/* 403: the RBAC rule */
	m = k8s_ckpt_fail_message(k8s_errno(403), "nodes \"w\" is forbidden: cannot create", NODE);
	assert_has(m, "nodes/proxy", true);
	assert_has(m, "ClusterRole", true);
	assert_has(m, "is forbidden: cannot create", true);
	assert_has(m, "ContainerCheckpoint", false);
	free(m);
	/* anything else: the message as it came */
	m = k8s_ckpt_fail_message(k8s_errno(500), "runtime: criu dump failed", NODE);
	assert_string_equal(m, "the kubelet checkpoint on node " NODE
			    " failed: runtime: criu dump failed");
	free(m);
	m = k8s_ckpt_fail_message(k8s_errno(401), "Unauthorized", NODE);
	assert_has(m, "Unauthorized", true);
	assert_has(m, "nodes/proxy", false);
	assert_has(m, "ContainerCheckpoint", false);
	free(m);
	m = k8s_ckpt_fail_message(-ETIMEDOUT, NULL, NODE);
	assert_string_equal(m, "the kubelet checkpoint on node " NODE " failed: failed");
	free(m);
	/* NULL message on the special statuses too */
	m = k8s_ckpt_fail_message(-ENOENT, NULL, NODE);
	assert_has(m, "ContainerCheckpoint", true);
	assert_has(m, "(null)", false);
	free(m);
	m = k8s_ckpt_fail_message(-EPERM, NULL, NODE);
	assert_has(m, "nodes/proxy", true);
	assert_has(m, "(null)", false);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_image_check),
		cmocka_unit_test(test_image),
		cmocka_unit_test(test_restore_pod),
		cmocka_unit_test(test_restore_pod_host_pinned),
		cmocka_unit_test(test_restore_pod_minimal),
		cmocka_unit_test(test_restore_pod_errors),
		cmocka_unit_test(test_fail_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
