/* Unit tests for gateway/config_k8s.c (issue 5): the `kubernetes` key and
 * the profiles' node_selector/tolerations: defaults per server_type, both
 * sides of every limit, the env form, unknown keys named, the checks at
 * finish (images covered, the backend's k8s_check_cfg) and what reaches
 * the spawner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/config_k8s.c"

#include "tests/unit/gateway/cfg_fixture.h"

/* A complete kubernetes config: images and profiles covered. */
#define K8S_IMGS "\"images\": [{\"name\": \"jupyterlab\", \"ref\": \"reg.example/nb/jl:4\"}, " \
	"{\"name\": \"vscode\", \"ref\": \"reg.example/nb/vs:4\"}]"
#define K8S_HEAD "{\"spawner\": \"kubernetes\", \"images\": [\"jupyterlab\", \"vscode\"], "

/* {"kubernetes": {<images>, <kv>}} with spawner=kubernetes */
static char *k8s_text(const char *kv)
{
	return xasprintf(K8S_HEAD "\"kubernetes\": {" K8S_IMGS "%s%s}}", *kv ? ", " : "", kv);
}

static void k_accept(const char *kv)
{
	char *t = k8s_text(kv);

	accept_only(t);
	free(t);
}

static void k_reject(const char *kv, const char *needle)
{
	char *t = k8s_text(kv);

	reject(t, needle);
	free(t);
}

/* One image entry (fields after name/ref) in an otherwise complete config. */
static char *img_text(const char *fields)
{
	return xasprintf(K8S_HEAD "\"kubernetes\": {\"images\": [{\"name\": \"jupyterlab\", "
			 "\"ref\": \"r/jl:1\"%s%s}, {\"name\": \"vscode\", \"ref\": \"r/vs:1\"}]}}",
			 *fields ? ", " : "", fields);
}

static void img_accept(const char *fields)
{
	char *t = img_text(fields);

	accept_only(t);
	free(t);
}

static void img_reject(const char *fields, const char *needle)
{
	char *t = img_text(fields);

	reject(t, needle);
	free(t);
}

/* A profile with the given extra keys, any backend (local: default). */
static char *prof_text(const char *kv)
{
	return xasprintf("{\"profiles\": [{\"name\": \"p\", \"image\": \"jupyterlab\", "
			 "\"cpu\": 1, \"memory\": \"1G\", %s}]}", kv);
}

static void prof_accept(const char *kv)
{
	char *t = prof_text(kv);

	accept_only(t);
	free(t);
}

static void prof_reject(const char *kv, const char *needle)
{
	char *t = prof_text(kv);

	reject(t, needle);
	free(t);
}

static bool argv_has(const char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* ---- tests ---- */

static void test_defaults_without_kubernetes(void **state)
{
	struct gw_cfg c;
	struct spawner_cfg sc = { 0 };
	struct err *e = NULL;

	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_int_equal(c.spawner, GW_SPAWNER_LOCAL);
	assert_null(c.k8s.kubeconfig);
	assert_null(c.k8s.ns);
	assert_int_equal(c.k8s.n_images, 0);
	assert_string_equal(c.k8s.gpu_resource, "nvidia.com/gpu");
	assert_string_equal(c.k8s.gpu_product_label, "nvidia.com/gpu.product");
	assert_string_equal(c.k8s.gpu_taint_key, "nvidia.com/gpu");
	assert_string_equal(c.k8s.image_pull_policy, "IfNotPresent");
	assert_string_equal(c.k8s.gateway_id, "nbgate");
	assert_null(c.k8s.image_pull_secret);
	assert_null(c.k8s.seccomp_localhost);
	assert_null(c.k8s.storage_class);
	assert_int_equal(c.k8s.home_size_bytes, 10LL << 30);
	assert_int_equal(c.k8s.request_timeout_ms, 30000);
	assert_int_equal(c.k8s.max_response_bytes, 16LL << 20);
	assert_int_equal(c.k8s.threads, 4);
	assert_false(c.k8s.checkpoint_kubelet);
	/* other backends get no kubernetes settings */
	gw_cfg_spawner_fill(&c, &sc);
	assert_null(sc.k8s);
	/* the profiles' scheduling array exists, empty */
	assert_non_null(c.profile_sched);
	assert_null(c.profile_sched[0].node_selector);
	assert_null(c.profile_sched[0].tolerations_json);
	gw_cfg_free(&c);
	assert_null(c.profile_sched);
}

static void test_image_defaults_per_type(void **state)
{
	struct gw_cfg c;
	struct spawner_cfg sc = { 0 };
	const struct spawner_k8s_image *jl, *vs, *mn;

	accept_cfg(&c, "{\"spawner\": \"kubernetes\", \"images\": [\"jupyterlab\", \"vscode\", "
		   "\"minimal\"], \"kubernetes\": {\"namespace\": \"nb\", \"images\": ["
		   "{\"name\": \"jupyterlab\", \"ref\": \"r/jl:4\"}, "
		   "{\"name\": \"vscode\", \"ref\": \"r/vs:4\"}, "
		   "{\"name\": \"minimal\", \"ref\": \"r/min:1\"}]}}");
	assert_int_equal(c.k8s.n_images, 3);
	jl = &c.k8s.images[0];
	vs = &c.k8s.images[1];
	mn = &c.k8s.images[2];
	assert_string_equal(jl->server_type, "jupyterlab");
	assert_string_equal(jl->cmd[0], "python3");
	assert_string_equal(jl->cmd[2], "jupyterlab");
	assert_true(argv_has(jl->cmd, "--ServerApp.port={port}"));
	assert_true(argv_has(jl->cmd, "--ServerApp.ip=$(NBGATE_POD_IP)"));
	assert_true(argv_has(jl->cmd, "--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)"));
	assert_true(argv_has(jl->cmd, "--ServerApp.base_url={base_url}"));
	assert_int_equal(jl->port, 8888);
	assert_int_equal(jl->uid, 1000);
	assert_string_equal(jl->home, "/home/jovyan");
	assert_false(jl->strip_prefix);
	assert_string_equal(vs->server_type, "vscode");
	assert_string_equal(vs->cmd[0], "code-server");
	assert_true(argv_has(vs->cmd, "$(NBGATE_POD_IP):{port}"));
	assert_int_equal(vs->port, 8080);
	assert_true(vs->strip_prefix);
	assert_string_equal(mn->server_type, "jupyter");
	assert_string_equal(mn->cmd[2], "jupyter_server");
	/* the spawner borrows it all; sched is parallel to the profiles */
	gw_cfg_spawner_fill(&c, &sc);
	assert_ptr_equal(sc.k8s, &c.k8s);
	assert_ptr_equal(sc.k8s->sched, c.profile_sched);
	assert_string_equal(sc.k8s->ns, "nb");
	gw_cfg_free(&c);
}

static void test_image_explicit_fields(void **state)
{
	struct gw_cfg c;
	const struct spawner_k8s_image *img;
	char *t = img_text("\"cmd\": [\"/opt/run\", \"--port={port}\"], \"server_type\": "
			   "\"vscode\", \"strip_prefix\": false, \"port\": 9000, \"uid\": 4242, "
			   "\"home\": \"/work\"");

	accept_cfg(&c, t);
	free(t);
	img = &c.k8s.images[0];
	assert_string_equal(img->cmd[0], "/opt/run");
	assert_null(img->cmd[2]);
	assert_string_equal(img->server_type, "vscode");
	assert_false(img->strip_prefix); /* explicit false beats the type's true */
	assert_int_equal(img->port, 9000);
	assert_int_equal(img->uid, 4242);
	assert_string_equal(img->home, "/work");
	gw_cfg_free(&c);
}

static void test_image_limits(void **state)
{
	img_reject("\"uid\": 0", "kubernetes.images[0].uid: must not be 0");
	img_accept("\"uid\": 1");
	img_accept("\"uid\": 2147483647");
	img_reject("\"uid\": 2147483648", "kubernetes.images[0].uid");
	img_reject("\"uid\": -1", "kubernetes.images[0].uid");
	img_reject("\"uid\": \"1000\"", "kubernetes.images[0].uid");
	img_reject("\"port\": 0", "kubernetes.images[0].port");
	img_accept("\"port\": 1");
	img_accept("\"port\": 65535");
	img_reject("\"port\": 65536", "kubernetes.images[0].port");
	img_reject("\"server_type\": \"rstudio\"", "kubernetes.images[0].server_type");
	img_reject("\"strip_prefix\": 1", "kubernetes.images[0].strip_prefix");
	img_reject("\"home\": \"home/jovyan\"", "kubernetes.images[0].home");
	img_reject("\"cmd\": []", "kubernetes.images[0].cmd");
	img_reject("\"cmd\": \"python3 -m jupyterlab\"", "kubernetes.images[0].cmd");
	img_reject("\"cmd\": [\"a\\nb\", \"{port}\"]", "kubernetes.images[0].cmd[0]");
	img_reject("\"cmd\": [\"x\", 1]", "kubernetes.images[0].cmd[1]");
	img_reject("\"privileged\": true", "kubernetes.images[0].privileged: unknown key");
	img_reject("\"host_path\": \"/\"", "kubernetes.images[0].host_path: unknown key");
	img_reject("\"port\": 1, \"port\": 2", "kubernetes.images[0].port: duplicate key");
	reject(K8S_HEAD "\"kubernetes\": {\"images\": [{\"name\": \"jupyterlab\"}]}}",
	       "kubernetes.images[0].ref: required");
	reject(K8S_HEAD "\"kubernetes\": {\"images\": [{\"ref\": \"r/x:1\"}]}}",
	       "kubernetes.images[0].name: required");
	reject(K8S_HEAD "\"kubernetes\": {\"images\": [{\"name\": \"jupyterlab\", \"ref\": "
	       "\"r/a b\"}]}}", "kubernetes.images[0].ref");
	reject(K8S_HEAD "\"kubernetes\": {\"images\": [{\"name\": \"Bad\", \"ref\": \"r/x\"}]}}",
	       "kubernetes.images[0].name");
	reject(K8S_HEAD "\"kubernetes\": {\"images\": [{\"name\": \"vscode\", \"ref\": \"r/x\"}, "
	       "{\"name\": \"vscode\", \"ref\": \"r/y\"}]}}",
	       "kubernetes.images[1].name: 'vscode' is listed twice");
	reject("{\"kubernetes\": {\"images\": {}}}", "kubernetes.images");
}

static void test_settings_limits(void **state)
{
	k_reject("\"request_timeout\": 999", "kubernetes.request_timeout");
	k_accept("\"request_timeout\": 1000");
	k_accept("\"request_timeout\": 600000");
	k_reject("\"request_timeout\": 600001", "kubernetes.request_timeout");
	k_accept("\"request_timeout\": \"30s\"");
	k_reject("\"request_timeout\": \"11m\"", "kubernetes.request_timeout");
	k_reject("\"request_timeout\": 1500.5", "kubernetes.request_timeout");
	k_reject("\"threads\": 0", "kubernetes.threads");
	k_accept("\"threads\": 1");
	k_accept("\"threads\": 32");
	k_reject("\"threads\": 33", "kubernetes.threads");
	k_reject("\"max_response_bytes\": 65535", "kubernetes.max_response_bytes");
	k_accept("\"max_response_bytes\": 65536");
	k_accept("\"max_response_bytes\": \"64KiB\"");
	k_accept("\"max_response_bytes\": \"256Mi\"");
	k_accept("\"max_response_bytes\": 268435456");
	k_reject("\"max_response_bytes\": 268435457", "kubernetes.max_response_bytes");
	k_reject("\"home_size\": 1048575", "kubernetes.home_size");
	k_accept("\"home_size\": 1048576");
	k_accept("\"home_size\": \"64Ti\"");
	k_reject("\"home_size\": 70368744177665", "kubernetes.home_size");
	k_reject("\"home_size\": \"65Ti\"", "kubernetes.home_size");
	k_reject("\"home_size\": \"10Gx\"", "kubernetes.home_size");
	k_reject("\"home_size\": \"ten\"", "kubernetes.home_size");
	k_reject("\"home_size\": true", "kubernetes.home_size");
	k_reject("\"checkpoint_kubelet\": \"yes\"", "kubernetes.checkpoint_kubelet");
	k_reject("\"kubeconfig\": \"relative/kubeconfig\"", "kubernetes.kubeconfig");
	k_reject("\"kubeconfig\": 3", "kubernetes.kubeconfig");
	k_reject("\"context\": \"a b\"", "kubernetes.context");
	k_reject("\"privileged\": true", "kubernetes.privileged: unknown key");
	k_reject("\"host_network\": true", "kubernetes.host_network: unknown key");
	k_reject("\"threads\": 2, \"threads\": 3", "kubernetes.threads: duplicate key");
	reject("{\"kubernetes\": []}", "kubernetes: expected an object");
}

static void test_home_size_units(void **state)
{
	struct gw_cfg c;
	char *t = k8s_text("\"home_size\": \"10Gi\"");

	accept_cfg(&c, t);
	free(t);
	assert_int_equal(c.k8s.home_size_bytes, 10LL << 30);
	gw_cfg_free(&c);
	/* nbgate's sizes are binary: "10G" is the same 10 GiB */
	t = k8s_text("\"home_size\": \"10G\", \"max_response_bytes\": \"1Mi\", "
		     "\"request_timeout\": \"2s\", \"threads\": 7, \"checkpoint_kubelet\": true, "
		     "\"kubeconfig\": \"/etc/kc\", \"gpu_resource\": \"\", \"storage_class\": null");
	accept_cfg(&c, t);
	free(t);
	assert_int_equal(c.k8s.home_size_bytes, 10LL << 30);
	assert_int_equal(c.k8s.max_response_bytes, 1LL << 20);
	assert_int_equal(c.k8s.request_timeout_ms, 2000);
	assert_int_equal(c.k8s.threads, 7);
	assert_true(c.k8s.checkpoint_kubelet);
	assert_string_equal(c.k8s.kubeconfig, "/etc/kc");
	assert_string_equal(c.k8s.gpu_resource, "nvidia.com/gpu"); /* "" = default */
	assert_null(c.k8s.storage_class);
	gw_cfg_free(&c);
}

static void test_cover_and_backend_check(void **state)
{
	/* every image name needs an entry when spawner=kubernetes ... */
	reject("{\"spawner\": \"kubernetes\", \"images\": [\"jupyterlab\", \"vscode\"], "
	       "\"kubernetes\": {\"images\": [{\"name\": \"jupyterlab\", \"ref\": \"r/x\"}]}}",
	       "kubernetes.images: no entry for 'vscode'");
	reject("{\"spawner\": \"kubernetes\", \"images\": [\"jupyterlab\", \"vscode\"]}",
	       "kubernetes.images: no entry for 'jupyterlab'");
	/* ... and every profile's image */
	reject("{\"spawner\": \"kubernetes\", \"images\": [\"jupyterlab\"], \"profiles\": ["
	       "{\"name\": \"a\", \"image\": \"other\", \"cpu\": 1, \"memory\": \"1G\"}], "
	       "\"kubernetes\": {\"images\": [{\"name\": \"jupyterlab\", \"ref\": \"r/x\"}]}}",
	       "profiles[0].image: no kubernetes.images entry for 'other'");
	/* ... but not for another backend */
	accept_only("{\"spawner\": \"local\", \"kubernetes\": {\"namespace\": \"Not_A_Label\"}}");
	/* the backend's own check runs at load (k8s_check_cfg) */
	k_reject("\"namespace\": \"Not_A_Label\"", "kubernetes.namespace");
	k_reject("\"image_pull_policy\": \"Sometimes\"", "kubernetes.image_pull_policy");
	img_reject("\"cmd\": [\"python3\", \"-m\", \"jupyterlab\"]",
		   "kubernetes.images[0].cmd");
	k_accept("\"namespace\": \"nbgate-users\", \"image_pull_policy\": \"Always\", "
		 "\"seccomp_localhost\": \"nbgate/default.json\", \"image_pull_secret\": \"regcred\"");
}

static void test_env_form(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;

	setenv("NBGATE_SPAWNER", "kubernetes", 1);
	setenv("NBGATE_IMAGES", "jupyterlab,vscode", 1);
	setenv("NBGATE_KUBERNETES", "{\"namespace\": \"envns\", \"threads\": 9, " K8S_IMGS "}", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_string_equal(c.k8s.ns, "envns");
	assert_int_equal(c.k8s.threads, 9);
	assert_int_equal(c.k8s.n_images, 2);
	gw_cfg_free(&c);
	/* the environment overrides the file */
	accept_cfg(&c, "{\"kubernetes\": {\"namespace\": \"filens\"}}");
	assert_string_equal(c.k8s.ns, "envns");
	gw_cfg_free(&c);
	setenv("NBGATE_KUBERNETES", "{\"threads\": 33}", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "NBGATE_KUBERNETES"));
	assert_non_null(strstr(e->msg, "kubernetes.threads"));
	err_free(&e);
	setenv("NBGATE_KUBERNETES", "{not json", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "NBGATE_KUBERNETES"));
	err_free(&e);
	clean_env(NULL);
}

static void test_profile_node_selector(void **state)
{
	struct gw_cfg c;
	char *t = prof_text("\"node_selector\": {\"pool\": \"cpu\", "
			    "\"topology.kubernetes.io/zone\": \"eu-1a\", \"empty\": \"\"}");
	char *key63 = xasprintf("\"node_selector\": {\"%0*d\": \"v\"}", 63, 0);
	char *key64 = xasprintf("\"node_selector\": {\"%0*d\": \"v\"}", 64, 0);
	char *val63 = xasprintf("\"node_selector\": {\"k\": \"%0*d\"}", 63, 0);
	char *val64 = xasprintf("\"node_selector\": {\"k\": \"%0*d\"}", 64, 0);
	char *many = xstrdup("\"node_selector\": {\"k0\": \"v\"");

	accept_cfg(&c, t);
	free(t);
	assert_string_equal(c.profile_sched[0].node_selector[0], "pool=cpu");
	assert_string_equal(c.profile_sched[0].node_selector[1],
			    "topology.kubernetes.io/zone=eu-1a");
	assert_string_equal(c.profile_sched[0].node_selector[2], "empty=");
	assert_null(c.profile_sched[0].node_selector[3]);
	assert_ptr_equal(c.k8s.sched, c.profile_sched);
	gw_cfg_free(&c);
	prof_accept(key63);
	prof_reject(key64, "profiles[0].node_selector.");
	prof_accept(val63);
	prof_reject(val64, "profiles[0].node_selector.k: expected a label value");
	prof_reject("\"node_selector\": {\"bad key\": \"v\"}",
		    "profiles[0].node_selector.bad key: not a label key");
	prof_reject("\"node_selector\": {\"Bad.Prefix/k\": \"v\"}", "not a label key");
	prof_reject("\"node_selector\": {\"k\": \"-v\"}", "profiles[0].node_selector.k");
	prof_reject("\"node_selector\": {\"k\": 1}", "profiles[0].node_selector.k");
	prof_reject("\"node_selector\": {\"k\": \"a\", \"k\": \"b\"}", "duplicate key");
	prof_reject("\"node_selector\": [\"k=v\"]", "profiles[0].node_selector: expected");
	for (int i = 1; i < 32; i++) {
		char *m = xasprintf("%s, \"k%d\": \"v\"", many, i);

		free(many);
		many = m;
	}
	t = xasprintf("%s}", many);
	prof_accept(t);
	free(t);
	t = xasprintf("%s, \"k32\": \"v\"}", many);
	prof_reject(t, "profiles[0].node_selector: expected an object of at most 32");
	free(t);
	free(many);
	free(key63);
	free(key64);
	free(val63);
	free(val64);
}

static void test_profile_tolerations(void **state)
{
	struct gw_cfg c;
	char *t = prof_text("\"tolerations\": [{\"key\": \"dedicated\", \"operator\": \"Equal\", "
			    "\"value\": \"nb\", \"effect\": \"NoSchedule\"}, {\"operator\": "
			    "\"Exists\"}, {\"key\": \"k\", \"effect\": \"NoExecute\", "
			    "\"tolerationSeconds\": 30}, {\"key\": \"e\", \"effect\": \"\"}]");
	char *many = xstrdup("\"tolerations\": [{\"key\": \"k\"}");

	accept_cfg(&c, t);
	free(t);
	assert_non_null(c.profile_sched[0].tolerations_json);
	assert_non_null(strstr(c.profile_sched[0].tolerations_json, "\"tolerationSeconds\":30"));
	assert_non_null(strstr(c.profile_sched[0].tolerations_json, "\"dedicated\""));
	gw_cfg_free(&c);
	prof_accept("\"tolerations\": []");
	prof_reject("\"tolerations\": {}", "profiles[0].tolerations: expected a list");
	prof_reject("\"tolerations\": [\"x\"]", "profiles[0].tolerations[0]: expected an object");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"operator\": \"In\"}]",
		    "profiles[0].tolerations[0].operator");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"effect\": \"NoRun\"}]",
		    "profiles[0].tolerations[0].effect");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"operator\": \"Exists\", \"value\": "
		    "\"v\"}]", "profiles[0].tolerations[0].value: must be empty");
	prof_reject("\"tolerations\": [{\"value\": \"v\"}]",
		    "profiles[0].tolerations[0].operator: must be Exists when key is empty");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"tolerationSeconds\": 5}]",
		    "profiles[0].tolerations[0].tolerationSeconds: only with effect");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"effect\": \"NoExecute\", "
		    "\"tolerationSeconds\": -1}]", "profiles[0].tolerations[0].tolerationSeconds");
	prof_accept("\"tolerations\": [{\"key\": \"k\", \"effect\": \"NoExecute\", "
		    "\"tolerationSeconds\": 31536000}]");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"effect\": \"NoExecute\", "
		    "\"tolerationSeconds\": 31536001}]", "tolerationSeconds");
	prof_reject("\"tolerations\": [{\"key\": \"bad key\"}]",
		    "profiles[0].tolerations[0].key");
	prof_reject("\"tolerations\": [{\"key\": 3}]", "profiles[0].tolerations[0].key");
	prof_reject("\"tolerations\": [{\"key\": \"k\", \"hostPath\": \"/\"}]",
		    "profiles[0].tolerations[0].hostPath: unknown key");
	for (int i = 1; i < 32; i++) {
		char *m = xasprintf("%s, {\"key\": \"k%d\"}", many, i);

		free(many);
		many = m;
	}
	t = xasprintf("%s]", many);
	prof_accept(t);
	free(t);
	t = xasprintf("%s, {\"key\": \"k32\"}]", many);
	prof_reject(t, "profiles[0].tolerations: expected a list of at most 32");
	free(t);
	free(many);
}

static void test_profile_unknown_keys(void **state)
{
	prof_reject("\"host_path\": \"/data\"", "profiles[0].host_path: unknown key");
	prof_reject("\"privileged\": true", "profiles[0].privileged: unknown key");
	prof_reject("\"capabilities\": [\"NET_ADMIN\"]", "profiles[0].capabilities: unknown key");
	/* the allowed list names the new keys */
	prof_reject("\"nodeSelector\": {}", "node_selector, tolerations");
}

/* --print-config shows the kubernetes block and the profile keys, and what
 * it prints loads back to the same configuration. */
static void test_print_round_trip(void **state)
{
	struct gw_cfg c, c2;
	char *t = xasprintf(K8S_HEAD "\"profiles\": [{\"name\": \"p\", \"image\": \"jupyterlab\", "
			    "\"cpu\": 1, \"memory\": \"1G\", \"node_selector\": {\"pool\": \"gpu\"}, "
			    "\"tolerations\": [{\"key\": \"k\", \"operator\": \"Exists\"}]}], "
			    "\"kubernetes\": {\"namespace\": \"nb\", \"home_size\": \"20Gi\", "
			    K8S_IMGS "}}");
	char *p1, *p2;
	cJSON *root;

	accept_cfg(&c, t);
	free(t);
	p1 = gw_cfg_print(&c);
	root = cJSON_Parse(p1);
	assert_non_null(root);
	{
		cJSON *k = cJSON_GetObjectItem(root, "kubernetes");
		cJSON *prof = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "profiles"), 0);

		assert_non_null(k);
		assert_string_equal(cJSON_GetObjectItem(k, "namespace")->valuestring, "nb");
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(k, "kubeconfig")));
		assert_int_equal(cJSON_GetObjectItem(k, "home_size")->valuedouble, 20LL << 30);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(k, "images")), 2);
		assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(prof, "node_selector"),
							"pool")->valuestring, "gpu");
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(prof, "tolerations")), 1);
	}
	cJSON_Delete(root);
	accept_cfg(&c2, p1);
	p2 = gw_cfg_print(&c2);
	assert_string_equal(p1, p2);
	free(p1);
	free(p2);
	gw_cfg_free(&c2);
	gw_cfg_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults_without_kubernetes, clean_env),
		cmocka_unit_test_setup(test_image_defaults_per_type, clean_env),
		cmocka_unit_test_setup(test_image_explicit_fields, clean_env),
		cmocka_unit_test_setup(test_image_limits, clean_env),
		cmocka_unit_test_setup(test_settings_limits, clean_env),
		cmocka_unit_test_setup(test_home_size_units, clean_env),
		cmocka_unit_test_setup(test_cover_and_backend_check, clean_env),
		cmocka_unit_test_setup(test_env_form, clean_env),
		cmocka_unit_test_setup(test_profile_node_selector, clean_env),
		cmocka_unit_test_setup(test_profile_tolerations, clean_env),
		cmocka_unit_test_setup(test_profile_unknown_keys, clean_env),
		cmocka_unit_test_setup(test_print_round_trip, clean_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
