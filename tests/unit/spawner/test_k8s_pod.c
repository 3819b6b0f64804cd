/*
 * Unit tests for spawner/k8s_pod.c: the Pod, Secret and PVC a server
 * becomes, checked field by field after a round trip through JSON text;
 * Pod Security "restricted" fields (R-4.5, SBX-16); the token only in the
 * Secret (TOK-8); injective, valid names (JH-6); k8s_check_cfg on both
 * sides of every rule; k8s_pod_view on fixture pods.
 *
 * NBGATE_WRITE_FIXTURES=<dir> also writes the rendered example objects
 * (pod-cpu.json, pod-gpu.json, secret.json, pvc.json) there, for the
 * schema and PSS checkers of tests/k8s/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawner/k8s_pod.c"

#define TOKEN "s3cr3t-server-token-0123456789"

static const char *const jlab_cmd[] = {
	"python3", "-m", "jupyterlab", "--ServerApp.ip=$(NBGATE_POD_IP)",
	"--ServerApp.port={port}", "--ServerApp.base_url={base_url}",
	"--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)", "--ServerApp.root_dir={home}",
	"--user={user}", "--server={server}", NULL
};
static const char *const noport_cmd[] = { "jupyter", "lab", "--ip=0.0.0.0", NULL };
static const char *const sock_cmd[] = { "srv", "--port={port}", "--sock={sock}", NULL };
static char *srv_env[] = { "JUPYTERHUB_API_TOKEN=hubtok", "A-B=skipped", "SHARED=from-srv",
			   "NBGATE_SERVER_TOKEN=not-this-one", NULL };
static const char *const server_env[] = { "SHARED=from-cfg", "EXTRA=1", NULL };
static const char *const sel_small[] = { "pool=cpu", NULL };
static const char *const sel_gpu[] = { "pool=gpu", "zone=a", NULL };
static const char *const tol_small =
	"[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"nb\",\"effect\":\"NoSchedule\"}]";

/* One configuration: profile 0 "small" (cpu), 1 "gpu"; user alice. */
struct fx {
	struct spawner_k8s_image img;
	struct spawner_k8s_cfg k;
	struct spawner_profile prof[2];
	struct spawner_k8s_sched sched[2];
	struct spawner_cfg cfg;
	struct spawner_server srv;
	struct k8s_pod_req req;
	const char *images[2];
	char *slug;
};

static void fx_user(struct fx *f, const char *user, const char *server)
{
	free(f->slug);
	f->slug = spawner_slug(user, server);
	f->srv.user = (char *)user;
	f->srv.name = (char *)server;
	f->srv.slug = f->slug;
}

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
	f->sched[0] = (struct spawner_k8s_sched){ sel_small, tol_small };
	f->sched[1] = (struct spawner_k8s_sched){ sel_gpu, NULL };
	f->images[0] = "jupyterlab";
	f->cfg = (struct spawner_cfg){ .server_env = server_env, .stop_timeout_ms = 10000,
		.profiles = f->prof, .n_profiles = 2, .images = f->images, .k8s = &f->k };
	f->srv = (struct spawner_server){ .id = 42, .base_url = "/user/alice/", .env = srv_env };
	fx_user(f, "alice", "");
	f->req = (struct k8s_pod_req){ .cfg = &f->cfg, .srv = &f->srv, .prof = &f->prof[profile],
		.sched = &f->sched[profile], .img = &f->img, .ns = "nbgate-users",
		.server_token = TOKEN };
}

static void fx_free(struct fx *f)
{
	free(f->slug);
	f->slug = NULL;
}

/* Serialises and parses back: what the API server would receive. */
static cJSON *roundtrip(cJSON *o)
{
	char *text = json_print(o);
	cJSON *back = cJSON_Parse(text);

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
	return roundtrip(pod);
}

/* ---- path getters: JP(o, "spec", "containers", "0", "name") ---- */

static const cJSON *jp_v(const cJSON *o, va_list ap)
{
	const char *k;

	while (o && (k = va_arg(ap, const char *))) {
		if (cJSON_IsArray(o))
			o = cJSON_GetArrayItem(o, (int)strtol(k, NULL, 10));
		else
			o = cJSON_GetObjectItemCaseSensitive(o, k);
	}
	return o;
}

static const cJSON *jp(const cJSON *o, ...)
{
	va_list ap;

	va_start(ap, o);
	o = jp_v(o, ap);
	va_end(ap);
	return o;
}

#define JP(o, ...) jp((o), __VA_ARGS__, (const char *)NULL)
#define JS(o, ...) cJSON_GetStringValue(JP(o, __VA_ARGS__))
#define JN(o, ...) jnum(JP(o, __VA_ARGS__))
#define JSIZE(o, ...) cJSON_GetArraySize(JP(o, __VA_ARGS__))

static int64_t jnum(const cJSON *n)
{
	assert_true(cJSON_IsNumber(n));
	return (int64_t)n->valuedouble;
}

static void assert_false_json(const cJSON *v)
{
	assert_true(cJSON_IsBool(v));
	assert_true(cJSON_IsFalse(v));
}

static void assert_true_json(const cJSON *v)
{
	assert_true(cJSON_IsBool(v));
	assert_true(cJSON_IsTrue(v));
}

/* True when any key in the tree starts with prefix. */
static bool tree_has_key_prefix(const cJSON *o, const char *prefix)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, o) {
		if (c->string && !strncmp(c->string, prefix, strlen(prefix)))
			return true;
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && tree_has_key_prefix(c, prefix))
			return true;
	}
	return false;
}

/* True when needle occurs in any string value or key of the tree. */
static bool tree_has_text(const cJSON *o, const char *needle)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, o) {
		if (c->string && strstr(c->string, needle))
			return true;
		if (cJSON_IsString(c) && strstr(c->valuestring, needle))
			return true;
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && tree_has_text(c, needle))
			return true;
	}
	return false;
}

/* ---- the Pod ---- */

static void check_labels(const cJSON *md, const char *component, bool server)
{
	assert_string_equal(JS(md, "labels", K8S_LABEL_MANAGED), "nbgate");
	assert_string_equal(JS(md, "labels", K8S_LABEL_COMPONENT), component);
	assert_string_equal(JS(md, "labels", K8S_LABEL_GATEWAY), "gw1");
	assert_string_equal(JS(md, "labels", K8S_LABEL_USER), "alice");
	assert_string_equal(JS(md, "annotations", K8S_ANN_USER), "alice");
	if (server) {
		assert_string_equal(JS(md, "labels", K8S_LABEL_SERVER), "alice");
		assert_string_equal(JS(md, "annotations", K8S_ANN_SERVER), "");
		assert_string_equal(JS(md, "annotations", K8S_ANN_SERVER_ID), "42");
	} else {
		assert_null(JP(md, "labels", K8S_LABEL_SERVER));
	}
}

/* R-4.5 / SBX-16: every restricted field, exact. */
static void check_pss(const cJSON *spec, const char *seccomp_type, const char *localhost)
{
	const cJSON *psc = JP(spec, "securityContext");
	const cJSON *csc = JP(spec, "containers", "0", "securityContext");
	const cJSON *scs[] = { JP(psc, "seccompProfile"), JP(csc, "seccompProfile") };

	assert_int_equal(JSIZE(spec, "containers"), 1);
	assert_true_json(JP(psc, "runAsNonRoot"));
	assert_int_equal(JN(psc, "runAsUser"), 1000);
	assert_int_equal(JN(psc, "runAsGroup"), 1000);
	assert_int_equal(JN(psc, "fsGroup"), 1000);
	assert_false_json(JP(csc, "allowPrivilegeEscalation"));
	assert_false_json(JP(csc, "privileged"));
	assert_true_json(JP(csc, "runAsNonRoot"));
	assert_int_equal(JSIZE(csc, "capabilities", "drop"), 1);
	assert_string_equal(JS(csc, "capabilities", "drop", "0"), "ALL");
	assert_null(JP(csc, "capabilities", "add"));
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(JS(scs[i], "type"), seccomp_type);
		if (localhost)
			assert_string_equal(JS(scs[i], "localhostProfile"), localhost);
		else
			assert_null(JP(scs[i], "localhostProfile"));
	}
	assert_false_json(JP(spec, "automountServiceAccountToken"));
	assert_false_json(JP(spec, "enableServiceLinks"));
	/* the hostname is the slug (a label, never cut); the only host* key */
	assert_true(spawner_is_dns1123_label(JS(spec, "hostname")));
	cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)spec, "hostname");
	assert_false(tree_has_key_prefix(spec, "host"));
	assert_false(tree_has_key_prefix(spec, "procMount"));
	assert_int_equal(JSIZE(spec, "volumes"), 2);
	assert_string_equal(JS(spec, "volumes", "0", "name"), "home");
	assert_string_equal(JS(spec, "volumes", "0", "persistentVolumeClaim", "claimName"),
			    "home-alice");
	assert_int_equal(cJSON_GetArraySize(JP(spec, "volumes", "0")), 2);
	assert_string_equal(JS(spec, "volumes", "1", "name"), "tmp");
	assert_true(cJSON_IsObject(JP(spec, "volumes", "1", "emptyDir")));
	assert_int_equal(cJSON_GetArraySize(JP(spec, "volumes", "1")), 2);
}

static void check_container_basics(const cJSON *c)
{
	static const char *const want_cmd[] = {
		"python3", "-m", "jupyterlab", "--ServerApp.ip=$(NBGATE_POD_IP)",
		"--ServerApp.port=8888", "--ServerApp.base_url=/user/alice/",
		"--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)",
		"--ServerApp.root_dir=/home/jovyan", "--user=alice", "--server=", NULL
	};

	assert_string_equal(JS(c, "name"), "server");
	assert_string_equal(JS(c, "image"), "registry.example/nbgate/jupyterlab:4");
	assert_string_equal(JS(c, "imagePullPolicy"), "IfNotPresent");
	assert_null(JP(c, "args"));
	assert_int_equal(JSIZE(c, "command"), 10);
	for (int i = 0; want_cmd[i]; i++)
		assert_string_equal(cJSON_GetArrayItem(JP(c, "command"), i)->valuestring, want_cmd[i]);
	assert_string_equal(JS(c, "workingDir"), "/home/jovyan");
	assert_int_equal(JN(c, "ports", "0", "containerPort"), 8888);
	assert_int_equal(JSIZE(c, "env"), 1);
	assert_string_equal(JS(c, "env", "0", "name"), "NBGATE_POD_IP");
	assert_null(JP(c, "env", "0", "value"));
	assert_string_equal(JS(c, "env", "0", "valueFrom", "fieldRef", "fieldPath"), "status.podIP");
	assert_int_equal(JSIZE(c, "envFrom"), 1);
	assert_string_equal(JS(c, "envFrom", "0", "secretRef", "name"), "nb-alice-env");
	assert_string_equal(JS(c, "volumeMounts", "0", "name"), "home");
	assert_string_equal(JS(c, "volumeMounts", "0", "mountPath"), "/home/jovyan");
	assert_string_equal(JS(c, "volumeMounts", "1", "name"), "tmp");
	assert_string_equal(JS(c, "volumeMounts", "1", "mountPath"), "/tmp");
	assert_string_equal(JS(c, "readinessProbe", "httpGet", "path"), "/user/alice/api");
	assert_int_equal(JN(c, "readinessProbe", "httpGet", "port"), 8888);
	assert_int_equal(JN(c, "readinessProbe", "periodSeconds"), 2);
	assert_int_equal(JN(c, "readinessProbe", "failureThreshold"), 3);
}

static void test_build_pod_cpu(void **state)
{
	struct fx f;
	cJSON *pod, *spec, *c;

	fx_init(&f, 0);
	pod = build_pod(&f);
	spec = (cJSON *)JP(pod, "spec");
	c = (cJSON *)JP(spec, "containers", "0");
	assert_string_equal(JS(pod, "apiVersion"), "v1");
	assert_string_equal(JS(pod, "kind"), "Pod");
	assert_string_equal(JS(pod, "metadata", "name"), "nb-alice");
	assert_string_equal(JS(pod, "metadata", "namespace"), "nbgate-users");
	check_labels(JP(pod, "metadata"), "user-server", true);
	assert_string_equal(JS(pod, "metadata", "labels", K8S_LABEL_NETWORK), "none");
	check_pss(spec, "RuntimeDefault", NULL);
	check_container_basics(c);
	assert_string_equal(JS(c, "resources", "requests", "cpu"), "1500m");
	assert_string_equal(JS(c, "resources", "limits", "cpu"), "1500m");
	assert_string_equal(JS(c, "resources", "requests", "memory"), "2147483648");
	assert_string_equal(JS(c, "resources", "limits", "memory"), "2147483648");
	assert_int_equal(cJSON_GetArraySize(JP(c, "resources", "limits")), 2);
	assert_false(tree_has_text(pod, "nvidia.com/gpu"));
	assert_string_equal(JS(spec, "restartPolicy"), "OnFailure");
	assert_int_equal(JN(spec, "terminationGracePeriodSeconds"), 10);
	assert_string_equal(JS(spec, "imagePullSecrets", "0", "name"), "regcred");
	/* the profile's scheduling, and nothing for GPUs */
	assert_int_equal(cJSON_GetArraySize(JP(spec, "nodeSelector")), 1);
	assert_string_equal(JS(spec, "nodeSelector", "pool"), "cpu");
	assert_int_equal(JSIZE(spec, "tolerations"), 1);
	assert_string_equal(JS(spec, "tolerations", "0", "key"), "dedicated");
	assert_string_equal(JS(spec, "tolerations", "0", "value"), "nb");
	cJSON_Delete(pod);
	fx_free(&f);
}

static void check_gpu_toleration(const cJSON *t)
{
	assert_string_equal(JS(t, "key"), "nvidia.com/gpu");
	assert_string_equal(JS(t, "operator"), "Exists");
	assert_string_equal(JS(t, "effect"), "NoSchedule");
	assert_null(JP(t, "value"));
}

static void test_build_pod_gpu(void **state)
{
	struct fx f;
	cJSON *pod, *spec, *res;

	fx_init(&f, 1);
	pod = build_pod(&f);
	spec = (cJSON *)JP(pod, "spec");
	res = (cJSON *)JP(spec, "containers", "0", "resources");
	assert_string_equal(JS(pod, "metadata", "labels", K8S_LABEL_NETWORK), "egress");
	check_pss(spec, "RuntimeDefault", NULL);
	assert_string_equal(JS(res, "limits", "nvidia.com/gpu"), "2");
	assert_string_equal(JS(res, "requests", "nvidia.com/gpu"), "2");
	assert_string_equal(JS(res, "limits", "cpu"), "4000m");
	assert_string_equal(JS(res, "requests", "memory"), "17179869184");
	/* merged: the model's label, then the profile's entries */
	assert_int_equal(cJSON_GetArraySize(JP(spec, "nodeSelector")), 3);
	assert_string_equal(JS(spec, "nodeSelector", "nvidia.com/gpu.product"),
			    "NVIDIA-A100-SXM4-40GB");
	assert_string_equal(JS(spec, "nodeSelector", "pool"), "gpu");
	assert_string_equal(JS(spec, "nodeSelector", "zone"), "a");
	assert_int_equal(JSIZE(spec, "tolerations"), 1);
	check_gpu_toleration(JP(spec, "tolerations", "0"));
	cJSON_Delete(pod);

	/* any model: no product label; tolerations appended after the GPU one */
	f.prof[1].gpu_model = "";
	f.sched[1].tolerations_json = tol_small;
	f.k.gpu_resource = "example.com/tpu";
	f.k.gpu_taint_key = "example.com/accel";
	pod = build_pod(&f);
	spec = (cJSON *)JP(pod, "spec");
	assert_null(JP(spec, "nodeSelector", "nvidia.com/gpu.product"));
	assert_int_equal(cJSON_GetArraySize(JP(spec, "nodeSelector")), 2);
	assert_int_equal(JSIZE(spec, "tolerations"), 2);
	assert_string_equal(JS(spec, "tolerations", "0", "key"), "example.com/accel");
	assert_string_equal(JS(spec, "tolerations", "1", "key"), "dedicated");
	assert_string_equal(JS(spec, "containers", "0", "resources", "limits", "example.com/tpu"), "2");
	assert_false(tree_has_text(pod, "nvidia.com/gpu"));
	cJSON_Delete(pod);

	/* one GPU is a GPU too */
	f.prof[1].gpus = 1;
	pod = build_pod(&f);
	assert_string_equal(JS(pod, "spec", "containers", "0", "resources", "requests",
			       "example.com/tpu"), "1");
	assert_string_equal(JS(pod, "spec", "tolerations", "0", "key"), "example.com/accel");
	cJSON_Delete(pod);
	fx_free(&f);
}

/* No limits at all: no resources maps, no scheduling fields. */
static void test_build_pod_unlimited(void **state)
{
	struct fx f;
	cJSON *pod;

	fx_init(&f, 0);
	f.prof[0].cpu_millis = 0;
	f.prof[0].memory_bytes = 0;
	f.req.sched = NULL;
	f.k.image_pull_secret = NULL;
	f.k.image_pull_policy = "Always";
	f.req.ns = NULL;
	pod = build_pod(&f);
	assert_null(JP(pod, "spec", "containers", "0", "resources", "limits"));
	assert_null(JP(pod, "spec", "containers", "0", "resources", "requests"));
	assert_null(JP(pod, "spec", "nodeSelector"));
	assert_null(JP(pod, "spec", "tolerations"));
	assert_null(JP(pod, "spec", "imagePullSecrets"));
	assert_null(JP(pod, "metadata", "namespace"));
	assert_string_equal(JS(pod, "spec", "containers", "0", "imagePullPolicy"), "Always");
	cJSON_Delete(pod);
	fx_free(&f);
}

static void test_build_pod_seccomp_localhost(void **state)
{
	struct fx f;
	cJSON *pod;

	fx_init(&f, 0);
	f.k.seccomp_localhost = "nbgate/default.json";
	pod = build_pod(&f);
	check_pss(JP(pod, "spec"), "Localhost", "nbgate/default.json");
	cJSON_Delete(pod);
	f.k.seccomp_localhost = "";
	pod = build_pod(&f);
	check_pss(JP(pod, "spec"), "RuntimeDefault", NULL);
	cJSON_Delete(pod);
	fx_free(&f);
}

/* TOK-8: the token is in the Secret only, never a plain env value. */
static void test_build_pod_token_not_in_spec(void **state)
{
	struct fx f;
	cJSON *pod, *secret;
	const cJSON *e;

	fx_init(&f, 1);
	pod = build_pod(&f);
	assert_false(tree_has_text(pod, TOKEN));
	assert_false(tree_has_text(pod, "hubtok"));
	cJSON_ArrayForEach(e, JP(pod, "spec", "containers", "0", "env"))
		assert_null(JP(e, "value"));
	secret = roundtrip(k8s_build_secret(&f.req));
	assert_string_equal(JS(secret, "stringData", "NBGATE_SERVER_TOKEN"), TOKEN);
	cJSON_Delete(secret);
	cJSON_Delete(pod);
	fx_free(&f);
}

static const char *probe_path(struct fx *f)
{
	static char buf[128];
	cJSON *pod = build_pod(f);
	const char *p = JS(pod, "spec", "containers", "0", "readinessProbe", "httpGet", "path");

	if (p)
		snprintf(buf, sizeof(buf), "%s", p);
	else if (JP(pod, "spec", "containers", "0", "readinessProbe", "tcpSocket", "port"))
		snprintf(buf, sizeof(buf), "tcp:%d",
			 (int)JN(pod, "spec", "containers", "0", "readinessProbe", "tcpSocket", "port"));
	else
		snprintf(buf, sizeof(buf), "none");
	cJSON_Delete(pod);
	return buf;
}

static void test_build_pod_probes(void **state)
{
	struct fx f;

	fx_init(&f, 0);
	assert_string_equal(probe_path(&f), "/user/alice/api");
	f.img.server_type = "jupyter";
	assert_string_equal(probe_path(&f), "/user/alice/api");
	f.img.strip_prefix = true;
	assert_string_equal(probe_path(&f), "/api");
	f.img.server_type = "vscode";
	f.img.port = 8080;
	assert_string_equal(probe_path(&f), "/healthz");
	f.img.strip_prefix = false;
	assert_string_equal(probe_path(&f), "/user/alice/healthz");
	f.img.server_type = NULL;
	assert_string_equal(probe_path(&f), "tcp:8080");
	fx_free(&f);
}

/* Names go in as bytes, with "$" doubled against the kubelet's $(VAR). */
static void test_build_pod_command_escape(void **state)
{
	struct fx f;
	cJSON *pod;
	const cJSON *cmd;

	fx_init(&f, 0);
	fx_user(&f, "alice", "$(NBGATE_SERVER_TOKEN) x");
	pod = build_pod(&f);
	cmd = JP(pod, "spec", "containers", "0", "command");
	assert_string_equal(cJSON_GetArrayItem(cmd, 9)->valuestring,
			    "--server=$$(NBGATE_SERVER_TOKEN) x");
	/* the image's own $(VAR) stays for the kubelet */
	assert_string_equal(cJSON_GetArrayItem(cmd, 6)->valuestring,
			    "--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)");
	assert_string_equal(JS(pod, "metadata", "annotations", K8S_ANN_SERVER),
			    "$(NBGATE_SERVER_TOKEN) x");
	assert_string_equal(JS(pod, "metadata", "labels", K8S_LABEL_SERVER), f.slug);
	cJSON_Delete(pod);
	fx_free(&f);
}

static void test_build_pod_grace(void **state)
{
	static const struct { int64_t ms; int64_t want; } cases[] = {
		{ 0, 5 }, { 1, 1 }, { 1999, 1 }, { 2000, 2 }, { 30000, 30 }, { 30999, 30 },
	};
	struct fx f;

	fx_init(&f, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *pod;

		f.cfg.stop_timeout_ms = cases[i].ms;
		pod = build_pod(&f);
		assert_int_equal(JN(pod, "spec", "terminationGracePeriodSeconds"), cases[i].want);
		cJSON_Delete(pod);
	}
	fx_free(&f);
}

static void expect_pod_error(struct fx *f, const char *needle)
{
	struct err *e = NULL;
	cJSON *pod = k8s_build_pod(&f->req, &e);

	assert_null(pod);
	assert_non_null(e);
	assert_int_equal(e->code, EINVAL);
	if (!strstr(e->msg, needle))
		fail_msg("error '%s' does not say '%s'", e->msg, needle);
	err_free(&e);
}

static void test_build_pod_errors(void **state)
{
	static const char *const conflict[] = { "nvidia.com/gpu.product=other", NULL };
	static const char *const dup[] = { "pool=a", "pool=b", NULL };
	static const char *const bad_sel[] = { "pool", NULL };
	struct fx f;

	fx_init(&f, 1);
	f.img.uid = 0;
	expect_pod_error(&f, "uid 0");
	fx_free(&f);
	fx_init(&f, 1);
	f.img.cmd = noport_cmd;
	expect_pod_error(&f, "{port}");
	fx_free(&f);
	fx_init(&f, 1);
	f.sched[1].node_selector = conflict;
	expect_pod_error(&f, "nvidia.com/gpu.product");
	f.prof[1].gpu_model = NULL; /* no model: the profile may pick the label */
	cJSON_Delete(build_pod(&f));
	f.sched[1].node_selector = dup;
	expect_pod_error(&f, "set twice");
	f.sched[1].node_selector = bad_sel;
	expect_pod_error(&f, "not key=value");
	fx_free(&f);
	fx_init(&f, 1);
	f.sched[1].tolerations_json = "{\"key\":\"a\"}";
	expect_pod_error(&f, "JSON array");
	f.sched[1].tolerations_json = "[1]";
	expect_pod_error(&f, "expected an object");
	f.sched[1].tolerations_json = "[{\"key\":\"a\",\"hostPath\":\"/\"}]";
	expect_pod_error(&f, "hostPath");
	f.sched[1].tolerations_json = "[{\"key\":\"a\"}] x";
	expect_pod_error(&f, "profile 'gpu' tolerations");
	fx_free(&f);
}

/* ---- Secret and PVC ---- */

static void test_build_secret(void **state)
{
	struct fx f;
	cJSON *s;
	const cJSON *d;

	fx_init(&f, 0);
	s = roundtrip(k8s_build_secret(&f.req));
	assert_string_equal(JS(s, "apiVersion"), "v1");
	assert_string_equal(JS(s, "kind"), "Secret");
	assert_string_equal(JS(s, "type"), "Opaque");
	assert_string_equal(JS(s, "metadata", "name"), "nb-alice-env");
	assert_string_equal(JS(s, "metadata", "namespace"), "nbgate-users");
	check_labels(JP(s, "metadata"), "user-server", true);
	assert_null(JP(s, "metadata", "labels", K8S_LABEL_NETWORK));
	assert_null(JP(s, "data"));
	d = JP(s, "stringData");
	assert_string_equal(JS(d, "NBGATE_SERVER_TOKEN"), TOKEN); /* forced over srv env */
	assert_string_equal(JS(d, "JUPYTERHUB_API_TOKEN"), "hubtok");
	assert_string_equal(JS(d, "SHARED"), "from-cfg"); /* server_env wins */
	assert_string_equal(JS(d, "EXTRA"), "1");
	assert_string_equal(JS(d, "HOME"), "/home/jovyan");
	assert_string_equal(JS(d, "USER"), "jovyan");
	assert_string_equal(JS(d, "NBGATE_BASE_URL"), "/user/alice/");
	assert_null(JP(d, "A-B"));
	assert_int_equal(cJSON_GetArraySize((cJSON *)d), 7);
	cJSON_Delete(s);
	fx_free(&f);
}

static void test_build_pvc(void **state)
{
	struct fx f;
	cJSON *p;

	fx_init(&f, 0);
	fx_user(&f, "alice", "second");
	p = roundtrip(k8s_build_pvc(&f.req));
	assert_string_equal(JS(p, "kind"), "PersistentVolumeClaim");
	assert_string_equal(JS(p, "metadata", "name"), "home-alice"); /* per user */
	check_labels(JP(p, "metadata"), "user-home", false);
	assert_null(JP(p, "metadata", "annotations", K8S_ANN_SERVER_ID));
	assert_int_equal(JSIZE(p, "spec", "accessModes"), 1);
	assert_string_equal(JS(p, "spec", "accessModes", "0"), "ReadWriteOnce");
	assert_string_equal(JS(p, "spec", "resources", "requests", "storage"), "10Gi");
	assert_string_equal(JS(p, "spec", "storageClassName"), "standard");
	cJSON_Delete(p);
	f.k.home_size_bytes = 5368709120LL;
	f.k.storage_class = NULL;
	p = roundtrip(k8s_build_pvc(&f.req));
	assert_string_equal(JS(p, "spec", "resources", "requests", "storage"), "5368709120");
	assert_null(JP(p, "spec", "storageClassName"));
	cJSON_Delete(p);
	fx_free(&f);
}

/* ---- names (JH-6) ---- */

static void test_syntax_helpers(void **state)
{
	assert_true(k8s_is_subdomain("nb-a.b-c"));
	assert_true(k8s_is_subdomain("a"));
	assert_false(k8s_is_subdomain(""));
	assert_false(k8s_is_subdomain("A"));
	assert_false(k8s_is_subdomain("-a"));
	assert_false(k8s_is_subdomain("a."));
	assert_false(k8s_is_subdomain("a..b"));
	assert_false(k8s_is_subdomain("a_b"));
	assert_true(k8s_is_label_value(""));
	assert_true(k8s_is_label_value("NVIDIA-A100_x.y"));
	assert_false(k8s_is_label_value("-a"));
	assert_false(k8s_is_label_value("a/b"));
	assert_true(k8s_is_qualified_name("nvidia.com/gpu.product"));
	assert_true(k8s_is_qualified_name("pool"));
	assert_false(k8s_is_qualified_name("/pool"));
	assert_false(k8s_is_qualified_name("a/b/c"));
	assert_false(k8s_is_qualified_name("Nvidia.com/x"));
	assert_true(is_c_ident("A_1", 3));
	assert_false(is_c_ident("1A", 2));
	assert_false(is_c_ident("A-B", 3));
}

static void check_names_distinct(char **v, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (!k8s_is_subdomain(v[i]))
			fail_msg("%s '%s' is not a DNS-1123 subdomain", what, v[i]);
		for (size_t j = i + 1; j < n; j++)
			if (!strcmp(v[i], v[j]))
				fail_msg("%s %zu and %zu share '%s'", what, i, j, v[i]);
	}
}

static void test_names_injective(void **state)
{
	char long_a[301], long_b[301];
	const char *pairs[][2] = {
		{ "user-hyphen", "" }, { "user", "hyphen" }, { "a.b", "" }, { "a-b", "" },
		{ "a_b", "" }, { "A-b", "" }, { long_a, "" }, { long_b, "" }, { "\xef\xbd\x81", "" },
		{ "alice\xe2\x80\x8b", "" }, { "\xc3\xa9", "" }, { "e\xcc\x81", "" }, { "user", "" },
	};
	enum { N = sizeof(pairs) / sizeof(pairs[0]) };
	char *pods[N], *secrets[N], *pvcs[N], *uslug;

	memset(long_a, 'x', 300);
	long_a[300] = '\0';
	memcpy(long_b, long_a, sizeof(long_a));
	long_b[299] = 'y';
	for (size_t i = 0; i < N; i++) {
		char *slug = spawner_slug(pairs[i][0], pairs[i][1]);

		assert_true(spawner_is_dns1123_label(slug)); /* label nbgate.io/server */
		assert_true(k8s_is_label_value(slug));
		uslug = spawner_slug(pairs[i][0], "");
		assert_true(spawner_is_dns1123_label(uslug)); /* label nbgate.io/user */
		free(uslug);
		pods[i] = k8s_pod_name(slug);
		secrets[i] = k8s_secret_name(slug);
		pvcs[i] = k8s_pvc_name(pairs[i][0]);
		free(slug);
	}
	check_names_distinct(pods, N, "pod");
	check_names_distinct(secrets, N, "secret");
	/* one PVC per user: "user"/"hyphen" and "user"/"" share it, by design */
	assert_string_equal(pvcs[1], pvcs[N - 1]);
	check_names_distinct(pvcs, N - 1, "pvc");
	for (size_t i = 0; i < N; i++) {
		free(pods[i]);
		free(secrets[i]);
		free(pvcs[i]);
	}
}

static void test_upstream(void **state)
{
	char *u = k8s_upstream("10.1.2.3", 8888);

	assert_string_equal(u, "10.1.2.3:8888");
	free(u);
	u = k8s_upstream("fd00::1", 8080);
	assert_string_equal(u, "[fd00::1]:8080");
	free(u);
	assert_string_equal(k8s_cfg_gateway_id(NULL), "nbgate");
	assert_string_equal(k8s_cfg_gpu_resource(NULL), "nvidia.com/gpu");
}

/* ---- k8s_check_cfg ---- */

struct cfg_case {
	const char *what;
	void (*mutate)(struct fx *f);
	const char *needle; /* NULL: must pass */
};

static const char *const bad_env[] = { "OK=1", "BAD-NAME=2", NULL };
static const char *const bad_sel_kv[] = { "pool=a b", NULL };
static const char *const gpu_conflict[] = { "nvidia.com/gpu.product=x", NULL };
static const char *const two_images[] = { "jupyterlab", "vscode", NULL };

static void m_none(struct fx *f) { (void)f; }
static void m_uid0(struct fx *f) { f->img.uid = 0; }
static void m_uid1(struct fx *f) { f->img.uid = 1; }
static void m_noport(struct fx *f) { f->img.cmd = noport_cmd; }
static void m_sock(struct fx *f) { f->img.cmd = sock_cmd; }
static void m_port0(struct fx *f) { f->img.port = 0; }
static void m_port65535(struct fx *f) { f->img.port = 65535; }
static void m_port65536(struct fx *f) { f->img.port = 65536; }
static void m_home_rel(struct fx *f) { f->img.home = "home/x"; }
static void m_home_tmp(struct fx *f) { f->img.home = "/tmp"; }
static void m_type(struct fx *f) { f->img.server_type = "rstudio"; }
static void m_type_vscode(struct fx *f) { f->img.server_type = "vscode"; }
static void m_ref(struct fx *f) { f->img.ref = ""; }
static void m_missing_img(struct fx *f) { f->cfg.images = two_images; }
static void m_prof_img(struct fx *f) { f->prof[1].image = "other"; }
static void m_env(struct fx *f) { f->cfg.server_env = bad_env; }
static void m_sel(struct fx *f) { f->sched[0].node_selector = bad_sel_kv; }
static void m_conflict(struct fx *f) { f->sched[1].node_selector = gpu_conflict; }
static void m_conflict_nomodel(struct fx *f)
{
	f->sched[1].node_selector = gpu_conflict;
	f->prof[1].gpu_model = NULL;
}
static void m_tol_op(struct fx *f) { f->sched[0].tolerations_json = "[{\"key\":\"a\",\"operator\":\"In\"}]"; }
static void m_tol_exists_val(struct fx *f)
{
	f->sched[0].tolerations_json = "[{\"key\":\"a\",\"operator\":\"Exists\",\"value\":\"v\"}]";
}
static void m_tol_secs(struct fx *f)
{
	f->sched[0].tolerations_json = "[{\"key\":\"a\",\"operator\":\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":30}]";
}
static void m_tol_secs_bad(struct fx *f)
{
	f->sched[0].tolerations_json = "[{\"key\":\"a\",\"effect\":\"NoSchedule\",\"tolerationSeconds\":30}]";
}
static void m_tol_empty_key(struct fx *f) { f->sched[0].tolerations_json = "[{\"operator\":\"Exists\"}]"; }
static void m_tol_empty_key_eq(struct fx *f) { f->sched[0].tolerations_json = "[{\"value\":\"x\"}]"; }
static void m_tol_effect(struct fx *f) { f->sched[0].tolerations_json = "[{\"key\":\"a\",\"effect\":\"Never\"}]"; }
static void m_tol_type(struct fx *f) { f->sched[0].tolerations_json = "[{\"key\":1}]"; }
static void m_gpu_model(struct fx *f) { f->prof[1].gpu_model = "A100 40GB"; }
static void m_gpus_neg(struct fx *f) { f->prof[1].gpus = -1; }
static void m_network(struct fx *f) { f->prof[0].network = "host"; }
static void m_ns(struct fx *f) { f->k.ns = "Users"; }
static void m_ns_ok(struct fx *f) { f->k.ns = "users-1"; }
static void m_sc(struct fx *f) { f->k.storage_class = "fast_ssd"; }
static void m_gpu_res(struct fx *f) { f->k.gpu_resource = "gpu"; }
static void m_gpu_res_ok(struct fx *f) { f->k.gpu_resource = "amd.com/gpu"; }
static void m_label(struct fx *f) { f->k.gpu_product_label = "-bad"; }
static void m_taint(struct fx *f) { f->k.gpu_taint_key = "a/b/c"; }
static void m_seccomp_abs(struct fx *f) { f->k.seccomp_localhost = "/etc/x.json"; }
static void m_seccomp_dots(struct fx *f) { f->k.seccomp_localhost = "nbgate/../x.json"; }
static void m_seccomp_ok(struct fx *f) { f->k.seccomp_localhost = "nbgate/default.json"; }
static void m_pull(struct fx *f) { f->k.image_pull_policy = "Sometimes"; }
static void m_pull_ok(struct fx *f) { f->k.image_pull_policy = "Never"; }
static void m_pull_secret(struct fx *f) { f->k.image_pull_secret = "Reg Cred"; }
static void m_gateway(struct fx *f) { f->k.gateway_id = "gw/1"; }
static void m_gateway_long(struct fx *f)
{
	f->k.gateway_id = "g123456789012345678901234567890123456789012345678901234567890123";
}
static void m_gateway_empty(struct fx *f) { f->k.gateway_id = ""; }
static void m_size(struct fx *f) { f->k.home_size_bytes = -1; }
static void m_nok8s(struct fx *f) { f->cfg.k8s = NULL; }
static void m_dup_img(struct fx *f)
{
	static struct spawner_k8s_image two[2];

	two[0] = two[1] = f->img;
	f->k.images = two;
	f->k.n_images = 2;
}

static void test_check_cfg(void **state)
{
	static const struct cfg_case cases[] = {
		{ "valid", m_none, NULL },
		{ "uid 0", m_uid0, "kubernetes.images[0].uid: must not be 0" },
		{ "uid 1", m_uid1, NULL },
		{ "no {port}", m_noport, "kubernetes.images[0].cmd: must contain {port}" },
		{ "{sock}", m_sock, "kubernetes.images[0].cmd: {sock}" },
		{ "port 0", m_port0, "kubernetes.images[0].port" },
		{ "port 65535", m_port65535, NULL },
		{ "port 65536", m_port65536, "kubernetes.images[0].port" },
		{ "home relative", m_home_rel, "kubernetes.images[0].home" },
		{ "home /tmp", m_home_tmp, "kubernetes.images[0].home" },
		{ "server_type", m_type, "kubernetes.images[0].server_type" },
		{ "server_type vscode", m_type_vscode, NULL },
		{ "empty ref", m_ref, "kubernetes.images[0].ref" },
		{ "image twice", m_dup_img, "kubernetes.images[1].name: 'jupyterlab' given twice" },
		{ "image not covered", m_missing_img, "no entry for image 'vscode'" },
		{ "profile image", m_prof_img, "profiles[1].image" },
		{ "server_env", m_env, "server_env[1]: 'BAD-NAME'" },
		{ "node selector", m_sel, "profiles[0].node_selector[0]" },
		{ "gpu label conflict", m_conflict, "profiles[1].node_selector[0]" },
		{ "gpu label, no model", m_conflict_nomodel, NULL },
		{ "toleration operator", m_tol_op, "profiles[0].tolerations[0].operator" },
		{ "Exists with value", m_tol_exists_val, "profiles[0].tolerations[0].value" },
		{ "tolerationSeconds NoExecute", m_tol_secs, NULL },
		{ "tolerationSeconds NoSchedule", m_tol_secs_bad, "tolerationSeconds" },
		{ "empty key Exists", m_tol_empty_key, NULL },
		{ "empty key Equal", m_tol_empty_key_eq, "must be Exists when key is empty" },
		{ "toleration effect", m_tol_effect, "profiles[0].tolerations[0].effect" },
		{ "toleration type", m_tol_type, "profiles[0].tolerations[0].key" },
		{ "gpu_model", m_gpu_model, "profiles[1].gpu_model" },
		{ "gpus < 0", m_gpus_neg, "profiles[1].gpus" },
		{ "network", m_network, "profiles[0].network" },
		{ "namespace", m_ns, "kubernetes.namespace" },
		{ "namespace ok", m_ns_ok, NULL },
		{ "storage class", m_sc, "kubernetes.storage_class" },
		{ "gpu_resource", m_gpu_res, "kubernetes.gpu_resource" },
		{ "gpu_resource ok", m_gpu_res_ok, NULL },
		{ "gpu label", m_label, "kubernetes.gpu_product_label" },
		{ "taint key", m_taint, "kubernetes.gpu_taint_key" },
		{ "seccomp absolute", m_seccomp_abs, "kubernetes.seccomp_localhost" },
		{ "seccomp ..", m_seccomp_dots, "kubernetes.seccomp_localhost" },
		{ "seccomp ok", m_seccomp_ok, NULL },
		{ "pull policy", m_pull, "kubernetes.image_pull_policy" },
		{ "pull policy ok", m_pull_ok, NULL },
		{ "pull secret", m_pull_secret, "kubernetes.image_pull_secret" },
		{ "gateway id", m_gateway, "kubernetes.gateway_id" },
		{ "gateway id 64", m_gateway_long, "kubernetes.gateway_id" },
		{ "gateway id empty", m_gateway_empty, "kubernetes.gateway_id" },
		{ "home size", m_size, "must not be negative" },
		{ "no settings", m_nok8s, "kubernetes: settings missing" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx f;
		struct err *e = NULL;
		int rc;

		fx_init(&f, 0);
		cases[i].mutate(&f);
		rc = k8s_check_cfg(&f.cfg, &e);
		if (!cases[i].needle && rc != 0)
			fail_msg("%s: refused: %s", cases[i].what, e->msg);
		if (cases[i].needle && (rc >= 0 || !e || e->code != EINVAL))
			fail_msg("%s: accepted", cases[i].what);
		if (cases[i].needle && !strstr(e->msg, cases[i].needle))
			fail_msg("%s: '%s' does not say '%s'", cases[i].what, e->msg, cases[i].needle);
		err_free(&e);
		fx_free(&f);
	}
}

/* ---- k8s_pod_view on fixture pods ---- */

#define POD_HEAD "{\"metadata\":{\"name\":\"nb-alice\",\"uid\":\"u-1\"%s},\"spec\":{%s},\"status\":"

static cJSON *fixture(const char *meta, const char *spec, const char *status)
{
	char *text = xasprintf(POD_HEAD "%s}", meta, spec, status);
	cJSON *o = cJSON_Parse(text);

	if (!o)
		fail_msg("bad fixture: %s", text);
	free(text);
	return o;
}

static const char st_unsched[] =
	"{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\","
	"\"reason\":\"Unschedulable\",\"message\":\"0/3 nodes are available: 3 Insufficient nvidia.com/gpu.\"}]}";
static const char st_pull[] =
	"{\"phase\":\"Pending\",\"podIP\":\"10.0.0.7\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},"
	"{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"ContainersNotReady\"}],"
	"\"containerStatuses\":[{\"name\":\"server\",\"ready\":false,\"restartCount\":0,"
	"\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\",\"message\":\"Back-off pulling image \\\"x\\\"\"}}}]}";
static const char st_crash[] =
	"{\"phase\":\"Running\",\"podIP\":\"10.0.0.7\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],"
	"\"containerStatuses\":[{\"name\":\"sidecar\",\"restartCount\":9,\"state\":{\"running\":{}}},"
	"{\"name\":\"server\",\"restartCount\":4,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\","
	"\"message\":\"back-off 40s restarting failed container\"}}}]}";
static const char st_ready[] =
	"{\"phase\":\"Running\",\"podIP\":\"10.0.0.7\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},"
	"{\"type\":\"Ready\",\"status\":\"True\"}],\"containerStatuses\":[{\"name\":\"server\",\"ready\":true,"
	"\"restartCount\":1,\"state\":{\"running\":{\"startedAt\":\"2024-01-01T00:00:00Z\"}}}]}";
static const char st_invalid[] =
	"{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"server\",\"restartCount\":0,"
	"\"state\":{\"waiting\":{\"reason\":\"InvalidImageName\",\"message\":\"bad ref\"}}}]}";

static void test_pod_view_pending(void **state)
{
	struct k8s_pod_view v;
	cJSON *p = fixture("", "", st_unsched);

	k8s_pod_view(p, &v);
	assert_string_equal(v.name, "nb-alice");
	assert_string_equal(v.uid, "u-1");
	assert_string_equal(v.phase, "Pending");
	assert_false(v.ready);
	assert_false(v.deleting);
	assert_null(v.pod_ip);
	assert_null(v.node);
	assert_string_equal(v.unschedulable, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.");
	assert_false(v.fatal); /* the backend waits for the deadline */
	cJSON_Delete(p);

	p = fixture("", "\"nodeName\":\"n1\"", st_pull);
	k8s_pod_view(p, &v);
	assert_null(v.unschedulable);
	assert_string_equal(v.node, "n1");
	assert_string_equal(v.pod_ip, "10.0.0.7");
	assert_string_equal(v.waiting_reason, "ImagePullBackOff");
	assert_string_equal(v.waiting_message, "Back-off pulling image \"x\"");
	assert_false(v.fatal);
	cJSON_Delete(p);

	p = fixture("", "", st_invalid);
	k8s_pod_view(p, &v);
	assert_string_equal(v.waiting_reason, "InvalidImageName");
	assert_true(v.fatal);
	cJSON_Delete(p);
}

static void test_pod_view_crash_ready_deleting(void **state)
{
	struct k8s_pod_view v;
	cJSON *p = fixture("", "\"nodeName\":\"n1\"", st_crash);

	k8s_pod_view(p, &v);
	assert_string_equal(v.waiting_reason, "CrashLoopBackOff");
	assert_int_equal(v.restarts, 4); /* the server's, not the sidecar's */
	assert_true(v.fatal);
	assert_false(v.ready);
	cJSON_Delete(p);

	p = fixture("", "\"nodeName\":\"n2\"", st_ready);
	k8s_pod_view(p, &v);
	assert_true(v.ready);
	assert_false(v.fatal);
	assert_null(v.waiting_reason);
	assert_int_equal(v.restarts, 1);
	assert_string_equal(v.pod_ip, "10.0.0.7");
	cJSON_Delete(p);

	p = fixture(",\"deletionTimestamp\":\"2024-01-01T00:00:00Z\"", "", st_ready);
	k8s_pod_view(p, &v);
	assert_true(v.deleting);
	assert_true(v.ready);
	cJSON_Delete(p);

	p = fixture("", "", "{\"phase\":\"Succeeded\"}");
	k8s_pod_view(p, &v);
	assert_true(v.fatal);
	cJSON_Delete(p);
	p = fixture("", "", "{\"phase\":\"Failed\",\"conditions\":\"junk\",\"containerStatuses\":{}}");
	k8s_pod_view(p, &v);
	assert_true(v.fatal);
	assert_false(v.ready);
	cJSON_Delete(p);
}

/* Whatever arrives (junk, wrong types) reads as "nothing known". */
static void test_pod_view_junk(void **state)
{
	static const char *const junk[] = { "[]", "1", "{}", "{\"metadata\":[],\"status\":\"x\"}",
					    "{\"status\":{\"phase\":3,\"podIP\":\"\",\"conditions\":[1,{}]}}" };
	struct k8s_pod_view v;

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		cJSON *p = cJSON_Parse(junk[i]);

		k8s_pod_view(p, &v);
		assert_null(v.name);
		assert_null(v.phase);
		assert_null(v.pod_ip);
		assert_false(v.ready);
		assert_false(v.fatal);
		cJSON_Delete(p);
	}
	k8s_pod_view(NULL, &v);
	assert_null(v.name);
}

/* ---- fixtures for tests/k8s (NBGATE_WRITE_FIXTURES=dir) ---- */

static int write_json(const char *dir, const char *name, cJSON *o)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, name);
	cleanup_free char *text = json_print_pretty(o);
	FILE *f = fopen(path, "we");
	int rc = 0;

	cJSON_Delete(o);
	if (!f || fputs(text, f) < 0 || fputc('\n', f) == EOF)
		rc = -1;
	if (f && fclose(f) != 0)
		rc = -1;
	if (rc < 0)
		fprintf(stderr, "cannot write '%s'\n", path);
	return rc;
}

static int write_fixtures(const char *dir)
{
	struct fx f;
	struct err *e = NULL;
	cJSON *cpu, *gpu;
	int rc = 0;

	fx_init(&f, 0);
	cpu = k8s_build_pod(&f.req, &e);
	f.req.prof = &f.prof[1];
	f.req.sched = &f.sched[1];
	f.k.seccomp_localhost = "nbgate/default.json";
	gpu = k8s_build_pod(&f.req, &e);
	if (!cpu || !gpu) {
		fprintf(stderr, "build: %s\n", e ? e->msg : "?");
		return 1;
	}
	rc |= write_json(dir, "pod-cpu.json", cpu);
	rc |= write_json(dir, "pod-gpu.json", gpu);
	rc |= write_json(dir, "secret.json", k8s_build_secret(&f.req));
	rc |= write_json(dir, "pvc.json", k8s_build_pvc(&f.req));
	fx_free(&f);
	return rc ? 1 : 0;
}

int main(void)
{
	const char *dir = getenv("NBGATE_WRITE_FIXTURES");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_pod_cpu),
		cmocka_unit_test(test_build_pod_gpu),
		cmocka_unit_test(test_build_pod_unlimited),
		cmocka_unit_test(test_build_pod_seccomp_localhost),
		cmocka_unit_test(test_build_pod_token_not_in_spec),
		cmocka_unit_test(test_build_pod_probes),
		cmocka_unit_test(test_build_pod_command_escape),
		cmocka_unit_test(test_build_pod_grace),
		cmocka_unit_test(test_build_pod_errors),
		cmocka_unit_test(test_build_secret),
		cmocka_unit_test(test_build_pvc),
		cmocka_unit_test(test_syntax_helpers),
		cmocka_unit_test(test_names_injective),
		cmocka_unit_test(test_upstream),
		cmocka_unit_test(test_check_cfg),
		cmocka_unit_test(test_pod_view_pending),
		cmocka_unit_test(test_pod_view_crash_ready_deleting),
		cmocka_unit_test(test_pod_view_junk),
	};

	if (dir && dir[0] && write_fixtures(dir) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
