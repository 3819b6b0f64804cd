/*
 * k8s_pod: the objects one server becomes on Kubernetes (Pod, Secret,
 * PVC), their names, the config checks behind them, and the reading of a
 * pod's status (spawner/k8s_internal.h).
 *
 * What the objects promise, and why:
 *  - Pod Security "restricted", literally (SECURITY.md, SBX-16): the
 *    API server's admission checks the fields as written, so every one of
 *    them is explicit (allowPrivilegeEscalation false, privileged false,
 *    drop ALL, runAsNonRoot, a non-zero uid, a seccomp profile), plus
 *    automountServiceAccountToken false (a user's server has no business
 *    with the API) and enableServiceLinks false (no other services'
 *    addresses in its environment). Volumes: the user's PVC and an
 *    emptyDir for /tmp, nothing from the host.
 *  - Secrets stay out of the pod spec (TOK-8): the environment, server
 *    token included, lives in the Secret and reaches the container by
 *    envFrom; the pod spec has no `value:` holding it.
 *  - Only fields of the v1.24 API (../shared/k8s-openapi/): nothing newer
 *    (hostUsers, resizePolicy, ...), so older clusters accept the pods.
 *  - Values nbgate puts into the command have "$" doubled: the kubelet
 *    expands $(VAR) in commands, and a user or server name must not pull
 *    a variable (the token) into argv.
 *
 * Pure: no I/O and no globals; every function is thread-safe. cJSON fails
 * only on out-of-memory, which aborts like xmalloc does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "spawner/k8s_internal.h"
#include "spawner/names.h"
#include "spawner/supervise.h"

#define K8S_DEF_GATEWAY_ID "nbgate"
#define K8S_DEF_GPU_RESOURCE "nvidia.com/gpu"
#define K8S_DEF_GPU_LABEL "nvidia.com/gpu.product"
#define K8S_DEF_GPU_TAINT "nvidia.com/gpu"
#define K8S_DEF_PULL_POLICY "IfNotPresent"
#define K8S_DEF_HOME "/home/jovyan"
#define K8S_DEF_STOP_MS 5000
#define K8S_PROBE_PERIOD_S 2
#define K8S_PROBE_FAILURES 3
#define K8S_VOL_HOME "home"
#define K8S_VOL_TMP "tmp"
#define K8S_UID_MAX 2147483647

/* ---- cJSON building (abort on OOM, like xalloc) ---- */

static cJSON *j_ok(cJSON *j)
{
	if (!j)
		abort(); /* cJSON returns NULL only when malloc did */
	return j;
}

static cJSON *j_new(void)
{
	return j_ok(cJSON_CreateObject());
}

static cJSON *j_obj(cJSON *o, const char *k)
{
	return j_ok(cJSON_AddObjectToObject(o, k));
}

static cJSON *j_arr(cJSON *o, const char *k)
{
	return j_ok(cJSON_AddArrayToObject(o, k));
}

static void j_str(cJSON *o, const char *k, const char *v)
{
	j_ok(cJSON_AddStringToObject(o, k, v));
}

static void j_int(cJSON *o, const char *k, int64_t v)
{
	/* every integer here (uids, ports, seconds) is far below 2^53 */
	j_ok(cJSON_AddNumberToObject(o, k, (double)v));
}

static void j_bool(cJSON *o, const char *k, bool v)
{
	j_ok(cJSON_AddBoolToObject(o, k, v));
}

/* Adds item (owned) to o under k. */
static void j_put(cJSON *o, const char *k, cJSON *item)
{
	if (!cJSON_AddItemToObject(o, k, j_ok(item)))
		abort();
}

/* Appends item (owned) to arr and returns it. */
static cJSON *j_push(cJSON *arr, cJSON *item)
{
	if (!cJSON_AddItemToArray(arr, j_ok(item)))
		abort();
	return item;
}

/* ---- syntax of names, labels and keys (apimachinery validation) ---- */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One dot-separated part of a DNS-1123 subdomain. */
static bool dns_part_ok(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* IsDNS1123Subdomain: what object names (pods, secrets, PVCs) must be. */
static bool k8s_is_subdomain(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);

		if (!dns_part_ok(s, len))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

/* The name part of a label key, or a non-empty label value. */
static bool label_token_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* IsValidLabelValue: empty, or a label token. */
bool k8s_is_label_value(const char *s)
{
	return !s[0] || label_token_ok(s, strlen(s));
}

/* IsQualifiedName: [subdomain "/"] token (label and taint keys). */
bool k8s_is_qualified_name(const char *s)
{
	const char *slash = strchr(s, '/');
	cleanup_free char *prefix = NULL;

	if (!slash)
		return label_token_ok(s, strlen(s));
	prefix = xstrndup(s, (size_t)(slash - s));
	return k8s_is_subdomain(prefix) && label_token_ok(slash + 1, strlen(slash + 1));
}

/* Extended resources need a domain prefix ("nvidia.com/gpu"). */
static bool is_extended_resource(const char *s)
{
	return strchr(s, '/') && k8s_is_qualified_name(s);
}

/* A C identifier: the environment variable names a shell can use. */
static bool is_c_ident(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_')
			return false;
	return true;
}

static bool is_pull_policy(const char *s)
{
	return !strcmp(s, "Always") || !strcmp(s, "IfNotPresent") || !strcmp(s, "Never");
}

static bool is_gateway_id(const char *s)
{
	return s[0] && k8s_is_label_value(s);
}

/* A Localhost seccomp profile: relative to the kubelet's seccomp root. */
static bool is_seccomp_path(const char *s)
{
	size_t n = strlen(s);

	if (!n || s[0] == '/' || s[n - 1] == '/' || !strcmp(s, "..") ||
	    !strncmp(s, "../", 3) || strstr(s, "/../") || (n >= 3 && !strcmp(s + n - 3, "/..")))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- names and defaults ---- */

char *k8s_pod_name(const char *slug)
{
	return xasprintf("nb-%s", slug);
}

char *k8s_secret_name(const char *slug)
{
	return xasprintf("nb-%s-env", slug);
}

char *k8s_pvc_name(const char *user)
{
	cleanup_free char *slug = spawner_slug(user, "");

	return xasprintf("home-%s", slug);
}

static const char *or_default(const char *v, const char *def)
{
	return v && v[0] ? v : def;
}

const char *k8s_cfg_gateway_id(const struct spawner_k8s_cfg *k)
{
	return or_default(k ? k->gateway_id : NULL, K8S_DEF_GATEWAY_ID);
}

const char *k8s_cfg_gpu_resource(const struct spawner_k8s_cfg *k)
{
	return or_default(k ? k->gpu_resource : NULL, K8S_DEF_GPU_RESOURCE);
}

static const char *cfg_gpu_label(const struct spawner_k8s_cfg *k)
{
	return or_default(k ? k->gpu_product_label : NULL, K8S_DEF_GPU_LABEL);
}

static const char *cfg_gpu_taint(const struct spawner_k8s_cfg *k)
{
	return or_default(k ? k->gpu_taint_key : NULL, K8S_DEF_GPU_TAINT);
}

static const char *img_home(const struct spawner_k8s_image *img)
{
	return or_default(img->home, K8S_DEF_HOME);
}

/* "egress" or "none": anything else gets the safe one. */
static const char *prof_network(const struct spawner_profile *p)
{
	return p && p->network && !strcmp(p->network, "egress") ? "egress" : "none";
}

static bool has_gpu_model(const struct spawner_profile *p)
{
	return p && p->gpu_model && p->gpu_model[0];
}

char *k8s_upstream(const char *pod_ip, int port)
{
	if (strchr(pod_ip, ':'))
		return xasprintf("[%s]:%d", pod_ip, port);
	return xasprintf("%s:%d", pod_ip, port);
}

/* ---- metadata, environment, Secret, PVC ---- */

enum meta_kind { META_POD, META_SECRET, META_PVC };

static void add_meta(cJSON *root, const char *name, const struct k8s_pod_req *r,
		     enum meta_kind kind)
{
	cleanup_free char *uslug = spawner_slug(r->srv->user, "");
	cleanup_free char *id = xasprintf("%" PRId64, r->srv->id);
	cJSON *md = j_obj(root, "metadata"), *labels, *ann;

	j_str(md, "name", name);
	if (r->ns && r->ns[0])
		j_str(md, "namespace", r->ns);
	labels = j_obj(md, "labels");
	j_str(labels, K8S_LABEL_MANAGED, "nbgate");
	j_str(labels, K8S_LABEL_COMPONENT, kind == META_PVC ? "user-home" : "user-server");
	j_str(labels, K8S_LABEL_GATEWAY, k8s_cfg_gateway_id(r->cfg->k8s));
	if (kind != META_PVC)
		j_str(labels, K8S_LABEL_SERVER, r->srv->slug);
	j_str(labels, K8S_LABEL_USER, uslug);
	if (kind == META_POD)
		j_str(labels, K8S_LABEL_NETWORK, prof_network(r->prof));
	/* labels hold slugs; the names themselves, for people and adoption */
	ann = j_obj(md, "annotations");
	j_str(ann, K8S_ANN_USER, r->srv->user);
	if (kind != META_PVC) {
		j_str(ann, K8S_ANN_SERVER, r->srv->name ? r->srv->name : "");
		j_str(ann, K8S_ANN_SERVER_ID, id);
	}
}

/* The login name a home suggests ("/home/jovyan" -> "jovyan"). */
static char *home_user(const char *home)
{
	const char *slash = strrchr(home, '/');

	return xstrdup(slash && slash[1] ? slash + 1 : "jovyan");
}

/*
 * The server's environment, as local.c builds it: the gateway's per-server
 * env (tokens, URLs), the operator's server_env, then HOME, USER,
 * NBGATE_BASE_URL and the server token forced. Later entries win.
 */
static char **pod_env(const struct k8s_pod_req *r)
{
	const struct spawner_server *srv = r->srv;
	size_t cap = 4 + spawner_strv_len((const char *const *)srv->env) +
		     spawner_strv_len(r->cfg->server_env);
	char **env = xcalloc(cap + 1, sizeof(*env));
	cleanup_free char *user = home_user(img_home(r->img));
	char *tmp[4];
	size_t n = 0;

	for (size_t i = 0; srv->env && srv->env[i]; i++)
		spawner_env_put(env, &n, srv->env[i]);
	for (size_t i = 0; r->cfg->server_env && r->cfg->server_env[i]; i++)
		spawner_env_put(env, &n, r->cfg->server_env[i]);
	tmp[0] = xasprintf("HOME=%s", img_home(r->img));
	tmp[1] = xasprintf("USER=%s", user);
	tmp[2] = xasprintf("NBGATE_BASE_URL=%s", srv->base_url ? srv->base_url : "/");
	tmp[3] = xasprintf(K8S_ENV_SERVER_TOKEN "=%s", r->server_token ? r->server_token : "");
	for (size_t i = 0; i < 4; i++) {
		spawner_env_put(env, &n, tmp[i]);
		free(tmp[i]);
	}
	return env;
}

struct cJSON *k8s_build_secret(const struct k8s_pod_req *r)
{
	cleanup_free char *name = k8s_secret_name(r->srv->slug);
	char **env = pod_env(r);
	cJSON *root = j_new(), *data;

	j_str(root, "apiVersion", "v1");
	j_str(root, "kind", "Secret");
	add_meta(root, name, r, META_SECRET);
	j_str(root, "type", "Opaque");
	data = j_obj(root, "stringData");
	for (size_t i = 0; env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		cleanup_free char *key = xstrndup(env[i], (size_t)(eq - env[i]));

		/* envFrom drops keys that are not variable names (an event, no
		 * error); k8s_check_cfg refuses them in server_env up front */
		if (is_c_ident(key, strlen(key)))
			j_str(data, key, eq + 1);
	}
	xstrv_free(env);
	return root;
}

struct cJSON *k8s_build_pvc(const struct k8s_pod_req *r)
{
	const struct spawner_k8s_cfg *k = r->cfg->k8s;
	cleanup_free char *name = k8s_pvc_name(r->srv->user);
	cleanup_free char *size = k && k->home_size_bytes > 0
					  ? xasprintf("%" PRId64, k->home_size_bytes)
					  : xstrdup("10Gi");
	cJSON *root = j_new(), *spec, *req;

	j_str(root, "apiVersion", "v1");
	j_str(root, "kind", "PersistentVolumeClaim");
	add_meta(root, name, r, META_PVC);
	spec = j_obj(root, "spec");
	j_push(j_arr(spec, "accessModes"), cJSON_CreateString("ReadWriteOnce"));
	req = j_obj(j_obj(spec, "resources"), "requests");
	j_str(req, "storage", size);
	if (k && k->storage_class && k->storage_class[0])
		j_str(spec, "storageClassName", k->storage_class);
	return root;
}

/* ---- the Pod: scheduling ---- */

/* The fields and their JSON types (the gateway's parser is stricter). */
static int toleration_fields(const cJSON *t, const char *at, struct err **err)
{
	static const char *const fields[] = { "key", "operator", "value", "effect" };
	const cJSON *f;

	if (!cJSON_IsObject(t))
		return err_set(err, EINVAL, "%s: expected an object", at);
	cJSON_ArrayForEach(f, t) {
		bool known = !strcmp(f->string, "tolerationSeconds") && cJSON_IsNumber(f) &&
			     f->valuedouble == (double)(int64_t)f->valuedouble;

		for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++)
			known |= !strcmp(f->string, fields[j]) && cJSON_IsString(f);
		if (!known)
			return err_set(err, EINVAL,
				       "%s.%s: unknown field or wrong type (allowed: key, "
				       "operator, value, effect: strings; tolerationSeconds: "
				       "integer)",
				       at, f->string);
	}
	return 0;
}

static const char *tol_str(const cJSON *t, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, k));
}

/* operator and effect: the enums of core/v1 Toleration. */
static int toleration_enums(const cJSON *t, const char *at, struct err **err)
{
	const char *op = tol_str(t, "operator"), *eff = tol_str(t, "effect");

	if (op && strcmp(op, "Exists") != 0 && strcmp(op, "Equal") != 0)
		return err_set(err, EINVAL, "%s.operator: must be Equal or Exists", at);
	if (eff && eff[0] && strcmp(eff, "NoSchedule") != 0 && strcmp(eff, "PreferNoSchedule") != 0 &&
	    strcmp(eff, "NoExecute") != 0)
		return err_set(err, EINVAL,
			       "%s.effect: must be NoSchedule, PreferNoSchedule, NoExecute or empty",
			       at);
	return 0;
}

/* key and value (apis/core/validation ValidateTolerations). */
static int toleration_key_value(const cJSON *t, const char *at, struct err **err)
{
	const char *key = tol_str(t, "key"), *op = tol_str(t, "operator");
	const char *val = tol_str(t, "value");
	bool exists = op && !strcmp(op, "Exists");

	if (key && key[0] && !k8s_is_qualified_name(key))
		return err_set(err, EINVAL, "%s.key: '%s' is not a valid taint key", at, key);
	if ((!key || !key[0]) && !exists)
		return err_set(err, EINVAL, "%s.operator: must be Exists when key is empty", at);
	if (exists && val && val[0])
		return err_set(err, EINVAL, "%s.value: must be empty when operator is Exists", at);
	if (!exists && val && !k8s_is_label_value(val))
		return err_set(err, EINVAL, "%s.value: '%s' is not a valid label value", at, val);
	return 0;
}

int k8s_check_toleration(const cJSON *t, const char *at, struct err **err)
{
	const char *eff = tol_str(t, "effect");

	if (toleration_fields(t, at, err) < 0 || toleration_enums(t, at, err) < 0 ||
	    toleration_key_value(t, at, err) < 0)
		return -EINVAL;
	if (cJSON_GetObjectItemCaseSensitive(t, "tolerationSeconds") &&
	    (!eff || strcmp(eff, "NoExecute") != 0))
		return err_set(err, EINVAL, "%s.tolerationSeconds: only with effect NoExecute", at);
	return 0;
}

/* Parses a JSON array of tolerations; owned result, or NULL and *err. */
static cJSON *tolerations_parse(const char *json, const char *where, struct err **err)
{
	cleanup_json cJSON *a = json_parse(json, strlen(json), err);
	const cJSON *t;
	int i = 0;

	if (!a)
		return err_wrap(err, "%s", where), NULL;
	if (!cJSON_IsArray(a))
		return err_set(err, EINVAL,
			       "%s: expected a JSON array of tolerations", where), NULL;
	cJSON_ArrayForEach(t, a) {
		cleanup_free char *at = xasprintf("%s[%d]", where, i++);

		if (k8s_check_toleration(t, at, err) < 0)
			return NULL;
	}
	return steal_ptr(&a);
}

/*
 * Splits a node selector entry "key=value" and checks its syntax. *key
 * owned, *val borrowed from kv. where: "profiles[0].node_selector[1]".
 */
static int selector_split(const char *kv, const char *where, char **key, const char **val,
			  struct err **err)
{
	const char *eq = strchr(kv, '=');

	if (!eq)
		return err_set(err, EINVAL, "%s: '%s' is not key=value", where, kv);
	*key = xstrndup(kv, (size_t)(eq - kv));
	*val = eq + 1;
	if (!k8s_is_qualified_name(*key) || !k8s_is_label_value(*val)) {
		free(*key);
		*key = NULL;
		return err_set(err, EINVAL, "%s: '%s' is not a valid label key=value", where, kv);
	}
	return 0;
}

/*
 * The node selector: the GPU product label when the profile names a
 * model, then the profile's entries. A key given twice, or the GPU label
 * given again by the profile, is a conflict: an error rather than a
 * silent winner. Adds nothing when empty. where names the profile.
 */
static int node_selector_fill(cJSON *ns, const struct spawner_k8s_cfg *k,
			      const struct spawner_profile *p, const struct spawner_k8s_sched *s,
			      const char *where, struct err **err)
{
	if (has_gpu_model(p))
		j_str(ns, cfg_gpu_label(k), p->gpu_model);
	for (size_t i = 0; s && s->node_selector && s->node_selector[i]; i++) {
		cleanup_free char *at = xasprintf("%s.node_selector[%zu]", where, i);
		cleanup_free char *key = NULL;
		const char *val = NULL;

		if (selector_split(s->node_selector[i], at, &key, &val, err) < 0)
			return -EINVAL;
		if (cJSON_GetObjectItemCaseSensitive(ns, key))
			return err_set(err, EINVAL,
				       "%s: '%s' is set twice (the profile's gpu_model sets %s)",
				       at, key, cfg_gpu_label(k));
		j_str(ns, key, val);
	}
	return 0;
}

static int pod_node_selector(cJSON *spec, const struct k8s_pod_req *r, struct err **err)
{
	cleanup_free char *where = xasprintf("profile '%s'", r->prof->name ? r->prof->name : "");
	cleanup_json cJSON *ns = j_new();

	if (node_selector_fill(ns, r->cfg->k8s, r->prof, r->sched, where, err) < 0)
		return -EINVAL;
	if (cJSON_GetArraySize(ns) > 0)
		j_put(spec, "nodeSelector", steal_ptr(&ns));
	return 0;
}

/* GPUs' toleration of the GPU nodes' taint, then the profile's. */
static int pod_tolerations(cJSON *spec, const struct k8s_pod_req *r, struct err **err)
{
	cleanup_json cJSON *arr = j_ok(cJSON_CreateArray());
	cJSON *t;

	if (r->prof->gpus > 0) {
		t = j_push(arr, j_new());
		j_str(t, "key", cfg_gpu_taint(r->cfg->k8s));
		j_str(t, "operator", "Exists");
		j_str(t, "effect", "NoSchedule");
	}
	if (r->sched && r->sched->tolerations_json) {
		cleanup_free char *where = xasprintf("profile '%s' tolerations",
						     r->prof->name ? r->prof->name : "");
		cleanup_json cJSON *more = tolerations_parse(r->sched->tolerations_json, where, err);

		if (!more)
			return -EINVAL;
		while (cJSON_GetArraySize(more) > 0)
			j_push(arr, cJSON_DetachItemFromArray(more, 0));
	}
	if (cJSON_GetArraySize(arr) > 0)
		j_put(spec, "tolerations", steal_ptr(&arr));
	return 0;
}

/* ---- the Pod: the container ---- */

/* "$" doubled: the kubelet's $(VAR) expansion turns "$$" back into "$". */
static char *kubelet_escape(const char *s)
{
	size_t n = 0;
	char *out, *o;

	if (!s)
		return NULL;
	for (const char *p = s; *p; p++)
		n += *p == '$' ? 2 : 1;
	out = o = xmalloc(n + 1);
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == '$')
			*o++ = '$';
	}
	*o = '\0';
	return out;
}

/* img->cmd with {port} {base_url} {home} {user} {server}; owned argv. */
static char **pod_command(const struct k8s_pod_req *r, struct err **err)
{
	cleanup_free char *port = xasprintf("%d", r->img->port);
	cleanup_free char *base = kubelet_escape(r->srv->base_url);
	cleanup_free char *home = kubelet_escape(img_home(r->img));
	cleanup_free char *user = kubelet_escape(r->srv->user);
	cleanup_free char *server = kubelet_escape(r->srv->name ? r->srv->name : "");
	struct spawner_vars v = { .base_url = base, .home = home, .user = user,
				  .server = server, .port = port };
	char **argv = spawner_expand_argv(r->img->cmd, &v, err);

	if (!argv)
		return err_wrap(err, "image '%s'", r->img->name), NULL;
	return argv;
}

/* requests = limits: Guaranteed QoS, and what extended resources need. */
static void pod_resources(cJSON *c, const struct k8s_pod_req *r)
{
	const struct spawner_profile *p = r->prof;
	cJSON *res = j_obj(c, "resources");

	if (p->cpu_millis <= 0 && p->memory_bytes <= 0 && p->gpus <= 0)
		return;
	for (int pass = 0; pass < 2; pass++) {
		cJSON *m = j_obj(res, pass ? "limits" : "requests");

		if (p->cpu_millis > 0) {
			cleanup_free char *q = xasprintf("%" PRId64 "m", p->cpu_millis);

			j_str(m, "cpu", q);
		}
		if (p->memory_bytes > 0) {
			cleanup_free char *q = xasprintf("%" PRId64, p->memory_bytes);

			j_str(m, "memory", q);
		}
		if (p->gpus > 0) {
			cleanup_free char *q = xasprintf("%d", p->gpus);

			j_str(m, k8s_cfg_gpu_resource(r->cfg->k8s), q);
		}
	}
}

/*
 * Readiness: Jupyter answers GET <base_url>api with its version without a
 * token (api/status needs one), code-server answers /healthz; anything
 * else gets a TCP check. strip_prefix servers have no base path.
 */
static void pod_probe(cJSON *c, const struct k8s_pod_req *r)
{
	const struct spawner_k8s_image *img = r->img;
	const char *type = img->server_type ? img->server_type : "";
	const char *base = img->strip_prefix || !r->srv->base_url ? "/" : r->srv->base_url;
	cleanup_free char *path = NULL;
	cJSON *p = j_obj(c, "readinessProbe"), *a;

	if (!strcmp(type, "jupyterlab") || !strcmp(type, "jupyter"))
		path = xasprintf("%sapi", base);
	else if (!strcmp(type, "vscode"))
		path = xasprintf("%shealthz", base);
	if (path) {
		a = j_obj(p, "httpGet");
		j_str(a, "path", path);
		j_int(a, "port", img->port);
		j_str(a, "scheme", "HTTP");
	} else {
		a = j_obj(p, "tcpSocket");
		j_int(a, "port", img->port);
	}
	j_int(p, "periodSeconds", K8S_PROBE_PERIOD_S);
	j_int(p, "failureThreshold", K8S_PROBE_FAILURES);
}

static cJSON *seccomp_profile(const struct spawner_k8s_cfg *k)
{
	cJSON *o = j_new();

	if (k && k->seccomp_localhost && k->seccomp_localhost[0]) {
		j_str(o, "type", "Localhost");
		j_str(o, "localhostProfile", k->seccomp_localhost);
	} else {
		j_str(o, "type", "RuntimeDefault");
	}
	return o;
}

/* Container-level half of: each field explicit, as PSS reads them. */
static void container_security(cJSON *c, const struct k8s_pod_req *r)
{
	cJSON *sc = j_obj(c, "securityContext");

	j_bool(sc, "allowPrivilegeEscalation", false);
	j_bool(sc, "privileged", false);
	j_bool(sc, "readOnlyRootFilesystem", false);
	j_bool(sc, "runAsNonRoot", true);
	j_push(j_arr(j_obj(sc, "capabilities"), "drop"), cJSON_CreateString("ALL"));
	j_put(sc, "seccompProfile", seccomp_profile(r->cfg->k8s));
}

/* Ports, env (pod IP + the Secret) and mounts. */
static void container_wiring(cJSON *c, const struct k8s_pod_req *r)
{
	cleanup_free char *secret = k8s_secret_name(r->srv->slug);
	cJSON *o, *sel;

	o = j_push(j_arr(c, "ports"), j_new());
	j_str(o, "name", "http");
	j_int(o, "containerPort", r->img->port);
	j_str(o, "protocol", "TCP");
	o = j_push(j_arr(c, "env"), j_new());
	j_str(o, "name", K8S_ENV_POD_IP);
	sel = j_obj(j_obj(o, "valueFrom"), "fieldRef");
	j_str(sel, "apiVersion", "v1");
	j_str(sel, "fieldPath", "status.podIP");
	o = j_push(j_arr(c, "envFrom"), j_new());
	j_str(j_obj(o, "secretRef"), "name", secret);
	sel = j_arr(c, "volumeMounts");
	o = j_push(sel, j_new());
	j_str(o, "name", K8S_VOL_HOME);
	j_str(o, "mountPath", img_home(r->img));
	o = j_push(sel, j_new());
	j_str(o, "name", K8S_VOL_TMP);
	j_str(o, "mountPath", "/tmp");
}

static cJSON *pod_container(const struct k8s_pod_req *r, struct err **err)
{
	const struct spawner_k8s_cfg *k = r->cfg->k8s;
	char **argv = pod_command(r, err);
	cJSON *c, *cmd;

	if (!argv)
		return NULL;
	c = j_new();
	j_str(c, "name", K8S_CONTAINER);
	j_str(c, "image", r->img->ref);
	j_str(c, "imagePullPolicy", or_default(k ? k->image_pull_policy : NULL, K8S_DEF_PULL_POLICY));
	cmd = j_arr(c, "command");
	for (size_t i = 0; argv[i]; i++)
		j_push(cmd, cJSON_CreateString(argv[i]));
	xstrv_free(argv);
	j_str(c, "workingDir", img_home(r->img));
	container_wiring(c, r);
	pod_resources(c, r);
	pod_probe(c, r);
	container_security(c, r);
	/* a crash's last output lands in the status: CrashLoopBackOff messages */
	j_str(c, "terminationMessagePolicy", "FallbackToLogsOnError");
	return c;
}

/* ---- the Pod: spec and object ---- */

/* Pod-level half of, and the volumes (PVC + emptyDir only). */
static void pod_spec_base(cJSON *spec, const struct k8s_pod_req *r)
{
	const struct spawner_k8s_cfg *k = r->cfg->k8s;
	int64_t stop_ms = r->cfg->stop_timeout_ms > 0 ? r->cfg->stop_timeout_ms : K8S_DEF_STOP_MS;
	cleanup_free char *pvc = k8s_pvc_name(r->srv->user);
	cJSON *sc, *vols, *v;

	j_str(spec, "restartPolicy", "OnFailure");
	j_int(spec, "terminationGracePeriodSeconds", stop_ms >= 2000 ? stop_ms / 1000 : 1);
	j_bool(spec, "automountServiceAccountToken", false);
	j_bool(spec, "enableServiceLinks", false);
	/* the pod name ("nb-" + slug) may exceed a label's 63 characters, which
	 * the kubelet would cut for the hostname; the slug is a DNS-1123 label
	 * and unique to the server */
	j_str(spec, "hostname", r->srv->slug);
	sc = j_obj(spec, "securityContext");
	j_bool(sc, "runAsNonRoot", true);
	j_int(sc, "runAsUser", r->img->uid);
	j_int(sc, "runAsGroup", r->img->uid);
	j_int(sc, "fsGroup", r->img->uid);
	/* a big home is not chown'ed on every start */
	j_str(sc, "fsGroupChangePolicy", "OnRootMismatch");
	j_put(sc, "seccompProfile", seccomp_profile(k));
	vols = j_arr(spec, "volumes");
	v = j_push(vols, j_new());
	j_str(v, "name", K8S_VOL_HOME);
	j_str(j_obj(v, "persistentVolumeClaim"), "claimName", pvc);
	v = j_push(vols, j_new());
	j_str(v, "name", K8S_VOL_TMP);
	j_obj(v, "emptyDir");
	if (k && k->image_pull_secret && k->image_pull_secret[0])
		j_str(j_push(j_arr(spec, "imagePullSecrets"), j_new()), "name", k->image_pull_secret);
}

/* What the builder cannot build from (k8s_check_cfg says it at load). */
static int pod_req_check(const struct k8s_pod_req *r, struct err **err)
{
	const struct spawner_k8s_image *img = r->img;

	if (!img || !img->ref || !img->ref[0])
		return err_set(err, EINVAL, "kubernetes: no image reference for the server");
	if (img->uid <= 0 || img->uid > K8S_UID_MAX)
		return err_set(err, EINVAL,
			       "kubernetes image '%s': uid %" PRId64 " is not allowed (1..%d; never root)",
			       img->name, img->uid, K8S_UID_MAX);
	if (img->port < 1 || img->port > 65535)
		return err_set(err, EINVAL, "kubernetes image '%s': port %d out of range 1..65535",
			       img->name, img->port);
	if (!spawner_cmd_uses(img->cmd, "{port}"))
		return err_set(err, EINVAL,
			       "kubernetes image '%s': cmd must contain {port}", img->name);
	if (!r->prof)
		return err_set(err, EINVAL, "kubernetes: no profile for the server");
	return 0;
}

struct cJSON *k8s_build_pod(const struct k8s_pod_req *r, struct err **err)
{
	cleanup_json cJSON *root = NULL;
	cleanup_free char *name = NULL;
	cJSON *spec, *c;

	if (pod_req_check(r, err) < 0)
		return NULL;
	root = j_new();
	name = k8s_pod_name(r->srv->slug);
	j_str(root, "apiVersion", "v1");
	j_str(root, "kind", "Pod");
	add_meta(root, name, r, META_POD);
	spec = j_obj(root, "spec");
	c = pod_container(r, err);
	if (!c)
		return NULL;
	j_push(j_arr(spec, "containers"), c);
	pod_spec_base(spec, r);
	if (pod_node_selector(spec, r, err) < 0 || pod_tolerations(spec, r, err) < 0)
		return NULL;
	return steal_ptr(&root);
}

/* ---- k8s_check_cfg ---- */

struct str_rule {
	const char *field;
	const char *value;
	bool (*ok)(const char *s);
	const char *what;
};

static int check_settings(const struct spawner_k8s_cfg *k, struct err **err)
{
	const struct str_rule rules[] = {
		{ "namespace", k->ns, spawner_is_dns1123_label, "a DNS-1123 label" },
		{ "storage_class", k->storage_class, k8s_is_subdomain, "a DNS-1123 subdomain" },
		{ "gpu_resource", k->gpu_resource, is_extended_resource,
		  "a domain-prefixed resource name (vendor.example/gpu)" },
		{ "gpu_product_label", k->gpu_product_label, k8s_is_qualified_name, "a label key" },
		{ "gpu_taint_key", k->gpu_taint_key, k8s_is_qualified_name, "a taint key" },
		{ "seccomp_localhost", k->seccomp_localhost, is_seccomp_path,
		  "a relative path below the kubelet's seccomp root, without '..'" },
		{ "image_pull_policy", k->image_pull_policy, is_pull_policy,
		  "Always, IfNotPresent or Never" },
		{ "image_pull_secret", k->image_pull_secret, k8s_is_subdomain,
		  "a Secret name (DNS-1123 subdomain)" },
		{ "gateway_id", k->gateway_id, is_gateway_id,
		  "a label value (1-63 of [A-Za-z0-9-_.], alphanumeric at both ends)" },
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].value && !rules[i].ok(rules[i].value))
			return err_set(err, EINVAL, "kubernetes.%s: '%s' is not %s", rules[i].field,
				       rules[i].value, rules[i].what);
	if (k->home_size_bytes < 0 || k->request_timeout_ms < 0 || k->max_response_bytes < 0 ||
	    k->threads < 0)
		return err_set(err, EINVAL,
			       "kubernetes: home_size, request_timeout, max_response_bytes and "
			       "threads must not be negative");
	if (k->n_images > 0 && !k->images)
		return err_set(err, EINVAL, "kubernetes.images: missing");
	return 0;
}

/* The command: {port} present, placeholders that exist only locally absent. */
static int check_cmd(const struct spawner_k8s_image *img, int i, struct err **err)
{
	static const char *const local_only[] = { "{sock}", "{run_dir}" };

	if (!img->cmd || !img->cmd[0])
		return err_set(err, EINVAL,
			       "kubernetes.images[%d].cmd: missing (an argv array)", i);
	if (!spawner_cmd_uses(img->cmd, "{port}"))
		return err_set(err, EINVAL,
			       "kubernetes.images[%d].cmd: must contain {port} (the server "
			       "listens on img port %d)",
			       i, img->port);
	for (size_t j = 0; j < sizeof(local_only) / sizeof(local_only[0]); j++)
		if (spawner_cmd_uses(img->cmd, local_only[j]))
			return err_set(err, EINVAL,
				       "kubernetes.images[%d].cmd: %s does not exist on "
				       "kubernetes (use {port} and $(NBGATE_POD_IP))",
				       i, local_only[j]);
	return 0;
}

static bool is_mount_path(const char *s)
{
	return s[0] == '/' && s[1] && !strstr(s, "/../") && !strstr(s, "/./") &&
	       strcmp(s, "/tmp") != 0 && strncmp(s, "/tmp/", 5) != 0 && !strchr(s, ':') &&
	       s[strlen(s) - 1] != '/' && !strstr(s, "//") &&
	       (strlen(s) < 3 || strcmp(s + strlen(s) - 3, "/..") != 0);
}

/* The scalar fields of kubernetes.images[i]. */
static int check_image_fields(const struct spawner_k8s_image *img, int i, struct err **err)
{
	if (!img->name || !img->name[0])
		return err_set(err, EINVAL, "kubernetes.images[%d].name: missing", i);
	if (!img->ref || !img->ref[0] || strpbrk(img->ref, " \t\r\n\"'\\"))
		return err_set(err, EINVAL,
			       "kubernetes.images[%d].ref: missing or not an image reference", i);
	if (img->port < 1 || img->port > 65535)
		return err_set(err, EINVAL, "kubernetes.images[%d].port: %d out of range 1..65535",
			       i, img->port);
	if (img->uid <= 0 || img->uid > K8S_UID_MAX)
		return err_set(err, EINVAL, "kubernetes.images[%d].uid: %s (1..%d)", i,
			       img->uid == 0 ? "must not be 0 (root)" : "out of range", K8S_UID_MAX);
	if (img->home && !is_mount_path(img->home))
		return err_set(err, EINVAL,
			       "kubernetes.images[%d].home: '%s' is not an absolute mount path "
			       "(and not /tmp, the scratch volume)",
			       i, img->home);
	return 0;
}

static int check_image(const struct spawner_k8s_cfg *k, int i, struct err **err)
{
	const struct spawner_k8s_image *img = &k->images[i];
	const char *t = img->server_type;

	if (check_image_fields(img, i, err) < 0)
		return -EINVAL;
	if (t && strcmp(t, "jupyterlab") != 0 && strcmp(t, "jupyter") != 0 && strcmp(t, "vscode") != 0)
		return err_set(err, EINVAL,
			       "kubernetes.images[%d].server_type: unknown '%s' (allowed: "
			       "jupyterlab, jupyter, vscode)",
			       i, t);
	for (int j = 0; j < i; j++)
		if (k->images[j].name && !strcmp(k->images[j].name, img->name))
			return err_set(err, EINVAL,
				       "kubernetes.images[%d].name: '%s' given twice", i,
				       img->name);
	return check_cmd(img, i, err);
}

static bool has_k8s_image(const struct spawner_k8s_cfg *k, const char *name)
{
	for (int i = 0; i < k->n_images; i++)
		if (k->images[i].name && !strcmp(k->images[i].name, name))
			return true;
	return false;
}

/* Every image a user can pick, or a profile names, has a k8s entry. */
static int check_cover(const struct spawner_cfg *cfg, struct err **err)
{
	for (size_t i = 0; cfg->images && cfg->images[i]; i++)
		if (!has_k8s_image(cfg->k8s, cfg->images[i]))
			return err_set(err, EINVAL,
				       "kubernetes.images: no entry for image '%s' "
				       "(images[%zu]): a cluster needs its registry reference "
				       "and command",
				       cfg->images[i], i);
	for (int i = 0; i < cfg->n_profiles; i++) {
		const char *img = cfg->profiles[i].image;

		if (img && img[0] && !has_k8s_image(cfg->k8s, img))
			return err_set(err, EINVAL,
				       "profiles[%d].image: no kubernetes.images entry for '%s'",
				       i, img);
	}
	return 0;
}

static int check_profile(const struct spawner_cfg *cfg, int i, struct err **err)
{
	const struct spawner_profile *p = &cfg->profiles[i];
	const struct spawner_k8s_sched *s = cfg->k8s->sched ? &cfg->k8s->sched[i] : NULL;
	cleanup_free char *where = xasprintf("profiles[%d]", i);
	cleanup_json cJSON *ns = j_new();

	if (p->gpus < 0)
		return err_set(err, EINVAL, "%s.gpus: must not be negative", where);
	if (has_gpu_model(p) && !k8s_is_label_value(p->gpu_model))
		return err_set(err, EINVAL,
			       "%s.gpu_model: '%s' is not a valid label value (it selects nodes "
			       "by %s)",
			       where, p->gpu_model, cfg_gpu_label(cfg->k8s));
	if (p->network && strcmp(p->network, "none") != 0 && strcmp(p->network, "egress") != 0)
		return err_set(err, EINVAL, "%s.network: must be none or egress", where);
	if (node_selector_fill(ns, cfg->k8s, p, s, where, err) < 0)
		return -EINVAL;
	if (s && s->tolerations_json) {
		cleanup_free char *at = xasprintf("%s.tolerations", where);
		cleanup_json cJSON *t = tolerations_parse(s->tolerations_json, at, err);

		if (!t)
			return -EINVAL;
	}
	return 0;
}

/* The Secret carries the environment: only names envFrom keeps. */
static int check_server_env(const struct spawner_cfg *cfg, struct err **err)
{
	for (size_t i = 0; cfg->server_env && cfg->server_env[i]; i++) {
		const char *kv = cfg->server_env[i], *eq = strchr(kv, '=');

		if (!eq || !is_c_ident(kv, (size_t)(eq - kv)))
			return err_set(err, EINVAL,
				       "server_env[%zu]: '%.*s' is not a valid environment "
				       "variable name on kubernetes (letters, digits, _; not "
				       "starting with a digit)",
				       i, eq ? (int)(eq - kv) : (int)strlen(kv), kv);
	}
	return 0;
}

int k8s_check_cfg(const struct spawner_cfg *cfg, struct err **err)
{
	const struct spawner_k8s_cfg *k = cfg->k8s;

	if (!k)
		return err_set(err, EINVAL, "kubernetes: settings missing");
	if (check_settings(k, err) < 0)
		return -EINVAL;
	for (int i = 0; i < k->n_images; i++)
		if (check_image(k, i, err) < 0)
			return -EINVAL;
	if (check_cover(cfg, err) < 0)
		return -EINVAL;
	for (int i = 0; i < cfg->n_profiles; i++)
		if (check_profile(cfg, i, err) < 0)
			return -EINVAL;
	return check_server_env(cfg, err);
}

/* ---- k8s_pod_view ---- */

static const cJSON *j_get(const cJSON *o, const char *k)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *j_getstr(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(j_get(o, k));
}

static void view_conditions(const cJSON *status, struct k8s_pod_view *out)
{
	const cJSON *conds = j_get(status, "conditions"), *c;

	if (!cJSON_IsArray(conds))
		return;
	cJSON_ArrayForEach(c, conds) {
		const char *type = j_getstr(c, "type"), *st = j_getstr(c, "status");
		const char *reason = j_getstr(c, "reason"), *msg = j_getstr(c, "message");

		if (!type || !st)
			continue;
		if (!strcmp(type, "Ready"))
			out->ready = !strcmp(st, "True");
		if (!strcmp(type, "PodScheduled") && !strcmp(st, "False") && reason &&
		    !strcmp(reason, "Unschedulable"))
			out->unschedulable = msg ? msg : reason;
	}
}

/* The server container's status: waiting reason and restarts. */
static void view_container(const cJSON *status, struct k8s_pod_view *out)
{
	const cJSON *list = j_get(status, "containerStatuses"), *cs;

	if (!cJSON_IsArray(list))
		return;
	cJSON_ArrayForEach(cs, list) {
		const char *name = j_getstr(cs, "name");
		const cJSON *waiting = j_get(j_get(cs, "state"), "waiting");
		const cJSON *rc = j_get(cs, "restartCount");

		if (!name || strcmp(name, K8S_CONTAINER) != 0)
			continue;
		if (cJSON_IsNumber(rc) && rc->valuedouble >= 0 && rc->valuedouble < 1e9)
			out->restarts = (int)rc->valuedouble;
		out->waiting_reason = j_getstr(waiting, "reason");
		out->waiting_message = j_getstr(waiting, "message");
		return;
	}
}

/* Reasons after which waiting longer cannot help (k8s.c fails at once). */
static bool reason_fatal(const char *reason)
{
	static const char *const fatal[] = { "InvalidImageName", "ErrImageNeverPull",
					     "CreateContainerConfigError", "CrashLoopBackOff" };

	for (size_t i = 0; reason && i < sizeof(fatal) / sizeof(fatal[0]); i++)
		if (!strcmp(reason, fatal[i]))
			return true;
	return false;
}

void k8s_pod_view(const struct cJSON *pod, struct k8s_pod_view *out)
{
	const cJSON *md = j_get(pod, "metadata"), *status = j_get(pod, "status");
	const cJSON *del = j_get(md, "deletionTimestamp");

	memset(out, 0, sizeof(*out));
	out->name = j_getstr(md, "name");
	out->uid = j_getstr(md, "uid");
	out->deleting = del && !cJSON_IsNull(del);
	out->node = j_getstr(j_get(pod, "spec"), "nodeName");
	out->phase = j_getstr(status, "phase");
	out->pod_ip = j_getstr(status, "podIP");
	if (out->pod_ip && !out->pod_ip[0])
		out->pod_ip = NULL;
	view_conditions(status, out);
	view_container(status, out);
	out->fatal = reason_fatal(out->waiting_reason) ||
		     (out->phase && (!strcmp(out->phase, "Failed") || !strcmp(out->phase, "Succeeded")));
}
