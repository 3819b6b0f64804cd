/*
 * config_k8s: the settings of the kubernetes backend (issue 5): the
 * `kubernetes` key (a JSON object, env form NBGATE_KUBERNETES) and the two
 * scheduling keys of a profile, `node_selector` and `tolerations`, which
 * every backend accepts and only kubernetes uses (notes/i5-shared.md,
 * docs/operations.md "Kubernetes").
 *
 * Parsing here checks shapes, types and ranges and fills the defaults, so
 * that --print-config shows what the backend will use; the syntax that
 * the API server would refuse (namespace, label keys of the settings,
 * image references, commands) is checked once more by the backend's own
 * k8s_check_cfg() when spawner=kubernetes (gw_cfg_k8s_finish()).
 *
 * There is no key for host paths, privileges or capabilities, and an
 * unknown key is an error naming the field: a misspelt or invented
 * setting must never be silently ignored (SECURITY.md ).
 *
 * Startup thread only.
 */
#define LOG_PREFIX "gateway/config_k8s: "

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/cfg.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "gateway/config.h"
#include "spawner/k8s_ckpt.h"
#include "spawner/k8s_internal.h"

/* Bounds; docs/operations.md ("Kubernetes") has the reasons. */
#define K8S_IMAGES_MAX 64
#define K8S_REF_MAX 512
#define K8S_TEXT_MAX 253             /* names and keys: a DNS subdomain's length */
#define K8S_PATH_MAX 4096
#define K8S_CMD_MAX 64
#define K8S_ARG_MAX 4096
#define K8S_UID_MAX 2147483647LL     /* runAsUser is an int64, kubelets use 31 bits */
#define K8S_TIMEOUT_MIN 1000
#define K8S_TIMEOUT_MAX 600000
#define K8S_RESP_MIN (64LL << 10)
#define K8S_RESP_MAX (256LL << 20)
#define K8S_THREADS_MAX 32
#define K8S_HOME_MIN (1LL << 20)
#define K8S_HOME_MAX (64LL << 40)
#define K8S_SELECTOR_MAX 32
#define K8S_TOLERATIONS_MAX 32
#define K8S_TOL_SECONDS_MAX (365 * 86400LL)

/* ---- defaults per server_type ---- */

/*
 * The server listens on the pod's IP (downward API, $(NBGATE_POD_IP)) and
 * checks the token the proxy presents ($(NBGATE_SERVER_TOKEN), from the
 * server's Secret): unlike a local server behind a Unix socket, a pod is
 * reachable over the cluster network. XSRF stays off as in the local images:
 * the gateway checks cross-site requests itself.
 */
#define JUPYTER_ARGS \
	"--ServerApp.ip=$(NBGATE_POD_IP)", "--ServerApp.port={port}", \
	"--ServerApp.base_url={base_url}", \
	"--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)", "--ServerApp.password=", \
	"--no-browser", "--ServerApp.root_dir={home}", \
	"--ServerApp.allow_remote_access=True", "--ServerApp.disable_check_xsrf=True", \
	"--MappingKernelManager.cull_idle_timeout=0"

static const char *const cmd_jupyterlab[] = { "python3", "-m", "jupyterlab", JUPYTER_ARGS,
					       NULL };
static const char *const cmd_jupyter[] = { "python3", "-m", "jupyter_server", JUPYTER_ARGS,
					   NULL };
/*
 * code-server can check only its own password (a login form and a cookie),
 * never a header the proxy adds, so it runs with --auth none: on
 * Kubernetes the NetworkPolicy of manifests/ (only the gateway reaches
 * user pods) is what keeps others out. docs/operations.md says so.
 */
static const char *const cmd_vscode[] = {
	"code-server", "--bind-addr", "$(NBGATE_POD_IP):{port}", "--auth", "none",
	"--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", "{home}",
	NULL,
};

struct type_default {
	const char *type;
	const char *const *cmd;
	int port;
	bool strip_prefix;
};

static const struct type_default type_defaults[] = {
	{ "jupyterlab", cmd_jupyterlab, 8888, false },
	{ "jupyter", cmd_jupyter, 8888, false },
	{ "vscode", cmd_vscode, 8080, true },
};

#define NTYPES (sizeof(type_defaults) / sizeof(type_defaults[0]))
#define DEF_UID 1000
#define DEF_HOME "/home/jovyan"

static const struct type_default *type_find(const char *t)
{
	for (size_t i = 0; t && i < NTYPES; i++)
		if (!strcmp(type_defaults[i].type, t))
			return &type_defaults[i];
	return NULL;
}

/* An image entry without server_type: the bundled recipe of that name
 * (images/recipes/: minimal runs jupyter_server), else JupyterLab. */
static const char *type_guess(const char *name)
{
	if (type_find(name))
		return name;
	return strcmp(name, "minimal") ? "jupyterlab" : "jupyter";
}

/* ---- small syntax checks ---- */

static bool printable(const char *s, size_t max, bool space_ok)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			if (!(space_ok && *s == ' '))
				return false;
	return true;
}

static bool key_repeated(const cJSON *o, const cJSON *it)
{
	for (const cJSON *q = o->child; q != it; q = q->next)
		if (!strcmp(q->string, it->string))
			return true;
	return false;
}

static void strv_free(char **v);

/* An integer JSON number in lo..hi. */
static int get_int(const cJSON *v, const char *where, int64_t lo, int64_t hi, int64_t *out,
		   struct err **err)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo) ||
	    v->valuedouble > (double)hi || v->valuedouble != (double)(int64_t)v->valuedouble)
		return err_set(err, EINVAL, "%s: expected an integer %lld..%lld", where,
			       (long long)lo, (long long)hi);
	*out = (int64_t)v->valuedouble;
	return 0;
}

/*
 * Bytes as a number, or a size string: nbgate's units ("512M", "10G",
 * "16KiB": binary, like every nbgate size) and Kubernetes' binary
 * suffixes ("10Gi", "64Ki"). Decimal Kubernetes suffixes are not taken:
 * "10G" means 10 GiB here, as it does for a profile's memory.
 */
static int get_bytes(const cJSON *v, const char *where, int64_t lo, int64_t hi, int64_t *out,
		     struct err **err)
{
	uint64_t b = 0;

	if (cJSON_IsNumber(v)) {
		if (v->valuedouble >= 0 && v->valuedouble <= (double)hi &&
		    v->valuedouble == (double)(int64_t)v->valuedouble)
			b = (uint64_t)v->valuedouble;
		else
			b = UINT64_MAX;
	} else if (cJSON_IsString(v) && strlen(v->valuestring) < 32) {
		char tmp[40];
		size_t n = strlen(v->valuestring);

		snprintf(tmp, sizeof(tmp), "%s", v->valuestring);
		if (n >= 3 && tmp[n - 1] == 'i' && strchr("KMGTkmgt", tmp[n - 2]))
			snprintf(tmp + n - 1, sizeof(tmp) - n + 1, "iB");
		if (cfg_parse_size(tmp, &b, NULL) < 0)
			return err_set(err, EINVAL, "%s: expected a size like \"10Gi\", \"10G\" "
				       "or a number of bytes", where);
	} else {
		return err_set(err, EINVAL, "%s: expected a size like \"10Gi\", \"10G\" or a "
			       "number of bytes", where);
	}
	if (b < (uint64_t)lo || b > (uint64_t)hi)
		return err_set(err, EINVAL, "%s: must be %lld..%lld bytes", where, (long long)lo,
			       (long long)hi);
	*out = (int64_t)b;
	return 0;
}

/* Milliseconds as a number, or a duration string ("30s"). */
static int get_ms(const cJSON *v, const char *where, int64_t lo, int64_t hi, int64_t *out,
		  struct err **err)
{
	int64_t ms = -1;

	if (cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble &&
	    v->valuedouble >= 0 && v->valuedouble <= 1e15)
		ms = (int64_t)v->valuedouble;
	else if (cJSON_IsString(v) && cfg_parse_duration_ms(v->valuestring, &ms, NULL) < 0)
		ms = -1;
	if (ms < lo || ms > hi)
		return err_set(err, EINVAL, "%s: expected milliseconds %lld..%lld (or \"30s\")",
			       where, (long long)lo, (long long)hi);
	*out = ms;
	return 0;
}

/* ---- profiles: node_selector, tolerations ---- */

/* One member of a node_selector object: a label key and a label value. */
static int selector_entry_check(const cJSON *o, const cJSON *it, const char *where,
				struct err **err)
{
	const char *val = cJSON_IsString(it) ? it->valuestring : NULL;

	if (key_repeated(o, it))
		return err_set(err, EINVAL, "%s.%s: duplicate key", where, it->string);
	if (!k8s_is_qualified_name(it->string))
		return err_set(err, EINVAL, "%s.%s: not a label key ([prefix/]name)", where,
			       it->string);
	if (!val || !k8s_is_label_value(val))
		return err_set(err, EINVAL, "%s.%s: expected a label value (at most 63 of "
			       "[A-Za-z0-9-_.], alphanumeric at both ends)", where, it->string);
	return 0;
}

static int node_selector_parse(const cJSON *v, const char *where, char ***out,
			       struct err **err)
{
	int n = cJSON_GetArraySize(v), i = 0;
	char **sel;
	const cJSON *it;

	if (!cJSON_IsObject(v) || n > K8S_SELECTOR_MAX)
		return err_set(err, EINVAL, "%s: expected an object of at most %d label: value "
			       "strings", where, K8S_SELECTOR_MAX);
	cJSON_ArrayForEach(it, v)
		if (selector_entry_check(v, it, where, err) < 0)
			return -EINVAL;
	sel = xcalloc((size_t)n + 1, sizeof(*sel));
	cJSON_ArrayForEach(it, v)
		sel[i++] = xasprintf("%s=%s", it->string, it->valuestring);
	*out = sel;
	return 0;
}

/* One toleration object: only the five fields of core/v1 Toleration. */
static int toleration_parse(const cJSON *t, const char *where, struct err **err)
{
	const cJSON *it;
	int64_t secs;

	if (!cJSON_IsObject(t))
		return err_set(err, EINVAL, "%s: expected an object {key, operator, value, "
			       "effect, tolerationSeconds}", where);
	cJSON_ArrayForEach(it, t) {
		cleanup_free char *at = xasprintf("%s.%s", where, it->string);

		if (key_repeated(t, it))
			return err_set(err, EINVAL, "%s: duplicate key", at);
		if (!strcmp(it->string, "tolerationSeconds")) {
			if (get_int(it, at, 0, K8S_TOL_SECONDS_MAX, &secs, err) < 0)
				return -EINVAL;
			continue;
		}
		if (strcmp(it->string, "key") != 0 && strcmp(it->string, "operator") != 0 &&
		    strcmp(it->string, "value") != 0 && strcmp(it->string, "effect") != 0)
			return err_set(err, EINVAL, "%s: unknown key (allowed: key, operator, value, "
				       "effect, tolerationSeconds)", at);
		if (!cJSON_IsString(it) || strlen(it->valuestring) > K8S_TEXT_MAX)
			return err_set(err, EINVAL, "%s: expected a string", at);
	}
	return k8s_check_toleration(t, where, err); /* the API server's rules */
}

static int tolerations_parse(const cJSON *v, const char *where, char **out, struct err **err)
{
	int i = 0;
	const cJSON *it;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > K8S_TOLERATIONS_MAX)
		return err_set(err, EINVAL, "%s: expected a list of at most %d toleration objects",
			       where, K8S_TOLERATIONS_MAX);
	cJSON_ArrayForEach(it, v) {
		cleanup_free char *at = xasprintf("%s[%d]", where, i++);

		if (toleration_parse(it, at, err) < 0)
			return -EINVAL;
	}
	*out = json_print(v); /* compact; only the checked fields are in it */
	return 0;
}

int gw_cfg_k8s_profile_key(struct spawner_k8s_sched *s, const cJSON *it, const char *where,
			   struct err **err)
{
	if (!strcmp(it->string, "node_selector")) {
		char **sel = NULL;

		if (node_selector_parse(it, where, &sel, err) < 0)
			return -EINVAL;
		strv_free((char **)s->node_selector);
		s->node_selector = (const char *const *)sel;
		return 1;
	}
	if (!strcmp(it->string, "tolerations")) {
		char *t = NULL;

		if (tolerations_parse(it, where, &t, err) < 0)
			return -EINVAL;
		free((char *)s->tolerations_json);
		s->tolerations_json = t;
		return 1;
	}
	return 0;
}

void gw_cfg_k8s_sched_print(const struct spawner_k8s_sched *s, cJSON *o)
{
	if (s->node_selector) {
		cJSON *ns = cJSON_AddObjectToObject(o, "node_selector");

		for (size_t i = 0; s->node_selector[i]; i++) {
			const char *kv = s->node_selector[i], *eq = strchr(kv, '=');
			cleanup_free char *k = xstrndup(kv, (size_t)(eq - kv));

			cJSON_AddStringToObject(ns, k, eq + 1);
		}
	}
	if (s->tolerations_json) {
		cJSON *t = cJSON_Parse(s->tolerations_json);

		cJSON_AddItemToObject(o, "tolerations", t ? t : cJSON_CreateArray());
	}
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void gw_cfg_k8s_sched_free(struct spawner_k8s_sched *v, int n)
{
	for (int i = 0; v && i < n; i++) {
		strv_free((char **)v[i].node_selector);
		free((char *)v[i].tolerations_json);
	}
	free(v);
}

/* ---- kubernetes.images ---- */

static void image_clear(struct spawner_k8s_image *img)
{
	free((char *)img->name);
	free((char *)img->ref);
	strv_free((char **)img->cmd);
	free((char *)img->server_type);
	free((char *)img->home);
	memset(img, 0, sizeof(*img));
}

static void images_free(struct spawner_k8s_image *v, int n)
{
	for (int i = 0; v && i < n; i++)
		image_clear(&v[i]);
	free(v);
}

static int image_cmd(const cJSON *v, const char *where, char ***out, struct err **err)
{
	int n = cJSON_GetArraySize(v), i = 0;
	char **cmd;
	const cJSON *it;

	if (!cJSON_IsArray(v) || n < 1 || n > K8S_CMD_MAX)
		return err_set(err, EINVAL, "%s: expected a list of 1..%d strings (argv)", where,
			       K8S_CMD_MAX);
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || !printable(it->valuestring, K8S_ARG_MAX, true))
			return err_set(err, EINVAL, "%s[%d]: expected printable text of 1..%d "
				       "characters", where, i, K8S_ARG_MAX);
		i++;
	}
	cmd = xcalloc((size_t)n + 1, sizeof(*cmd));
	i = 0;
	cJSON_ArrayForEach(it, v)
		cmd[i++] = xstrdup(it->valuestring);
	*out = cmd;
	return 0;
}

/* The string keys of an image entry: name, ref, server_type, home. */
static int image_str(struct spawner_k8s_image *img, const cJSON *it, const char *where,
		     struct err **err)
{
	const char *k = it->string, *v = cJSON_IsString(it) ? it->valuestring : "";
	const char **dst;

	if (!strcmp(k, "name") && !gw_cfg_image_name_ok(v))
		return err_set(err, EINVAL, "%s: expected an image name [a-z0-9._-]", where);
	if (!strcmp(k, "ref") && !printable(v, K8S_REF_MAX, false))
		return err_set(err, EINVAL, "%s: expected an image reference "
			       "(registry/repository:tag or @sha256:...)", where);
	if (!strcmp(k, "server_type") && !type_find(v))
		return err_set(err, EINVAL, "%s: expected \"jupyterlab\", \"jupyter\" or "
			       "\"vscode\"", where);
	if (!strcmp(k, "home") && (v[0] != '/' || !printable(v, K8S_PATH_MAX, false)))
		return err_set(err, EINVAL, "%s: expected an absolute path", where);
	dst = !strcmp(k, "name") ? &img->name : !strcmp(k, "ref") ? &img->ref :
	      !strcmp(k, "server_type") ? &img->server_type : &img->home;
	free((char *)*dst);
	*dst = xstrdup(v);
	return 0;
}

static int image_key(struct spawner_k8s_image *img, const cJSON *it, const char *where,
		     struct err **err)
{
	const char *k = it->string;
	int64_t v = 0;

	if (!strcmp(k, "name") || !strcmp(k, "ref") || !strcmp(k, "server_type") ||
	    !strcmp(k, "home"))
		return image_str(img, it, where, err);
	if (!strcmp(k, "cmd")) {
		char **cmd = NULL;

		if (image_cmd(it, where, &cmd, err) < 0)
			return -EINVAL;
		img->cmd = (const char *const *)cmd;
		return 0;
	}
	if (!strcmp(k, "strip_prefix")) {
		if (!cJSON_IsBool(it))
			return err_set(err, EINVAL, "%s: expected true or false", where);
		img->strip_prefix = cJSON_IsTrue(it);
		return 0;
	}
	if (!strcmp(k, "port")) {
		if (get_int(it, where, 1, 65535, &v, err) < 0)
			return -EINVAL;
		img->port = (int)v;
		return 0;
	}
	if (!strcmp(k, "uid")) {
		if (cJSON_IsNumber(it) && it->valuedouble == 0)
			return err_set(err, EINVAL, "%s: must not be 0 (servers never run as root)",
				       where);
		return get_int(it, where, 1, K8S_UID_MAX, &img->uid, err);
	}
	return err_set(err, EINVAL, "%s: unknown key (allowed: name, ref, cmd, server_type, "
		       "strip_prefix, port, uid, home)", where);
}

/* Fills what the entry left out from its server_type's defaults. */
static void image_defaults(struct spawner_k8s_image *img, const cJSON *o)
{
	const struct type_default *d;

	if (!img->server_type)
		img->server_type = xstrdup(type_guess(img->name));
	d = type_find(img->server_type);
	if (!img->cmd) {
		size_t n = 0;
		char **cmd;

		while (d->cmd[n])
			n++;
		cmd = xcalloc(n + 1, sizeof(*cmd));
		for (size_t i = 0; i < n; i++)
			cmd[i] = xstrdup(d->cmd[i]);
		img->cmd = (const char *const *)cmd;
	}
	if (!img->port)
		img->port = d->port;
	if (!cJSON_GetObjectItemCaseSensitive(o, "strip_prefix"))
		img->strip_prefix = d->strip_prefix;
	if (!img->uid)
		img->uid = DEF_UID;
	if (!img->home)
		img->home = xstrdup(DEF_HOME);
}

static int image_parse(const cJSON *o, int i, struct spawner_k8s_image *img, struct err **err)
{
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return err_set(err, EINVAL, "kubernetes.images[%d]: expected an object", i);
	cJSON_ArrayForEach(it, o) {
		cleanup_free char *where = xasprintf("kubernetes.images[%d].%s", i, it->string);

		if (key_repeated(o, it))
			return err_set(err, EINVAL, "%s: duplicate key", where);
		if (image_key(img, it, where, err) < 0)
			return -EINVAL;
	}
	if (!img->name || !img->ref)
		return err_set(err, EINVAL, "kubernetes.images[%d].%s: required", i,
			       img->name ? "ref" : "name");
	image_defaults(img, o);
	return 0;
}

static int images_parse(const cJSON *v, struct spawner_k8s_cfg *k, struct err **err)
{
	int n = cJSON_GetArraySize(v), i = 0;
	struct spawner_k8s_image *imgs;
	const cJSON *it;

	if (!cJSON_IsArray(v) || n > K8S_IMAGES_MAX)
		return err_set(err, EINVAL, "kubernetes.images: expected a list of at most %d "
			       "image objects", K8S_IMAGES_MAX);
	imgs = xcalloc((size_t)n + 1, sizeof(*imgs));
	cJSON_ArrayForEach(it, v) {
		int r = image_parse(it, i, &imgs[i], err);

		for (int j = 0; r == 0 && j < i; j++)
			if (!strcmp(imgs[j].name, imgs[i].name))
				r = err_set(err, EINVAL, "kubernetes.images[%d].name: '%s' is listed "
					    "twice", i, imgs[i].name);
		if (r < 0) {
			images_free(imgs, n);
			return -EINVAL;
		}
		i++;
	}
	images_free((struct spawner_k8s_image *)k->images, k->n_images);
	k->images = imgs;
	k->n_images = n;
	return 0;
}

static cJSON *image_print(const struct spawner_k8s_image *img)
{
	cJSON *o = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(o, "cmd");

	cJSON_AddStringToObject(o, "name", img->name);
	cJSON_AddStringToObject(o, "ref", img->ref);
	for (size_t i = 0; img->cmd && img->cmd[i]; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(img->cmd[i]));
	cJSON_AddStringToObject(o, "server_type", img->server_type);
	cJSON_AddBoolToObject(o, "strip_prefix", img->strip_prefix);
	cJSON_AddNumberToObject(o, "port", img->port);
	cJSON_AddNumberToObject(o, "uid", (double)img->uid);
	cJSON_AddStringToObject(o, "home", img->home);
	return o;
}

/* ---- the `kubernetes` object ---- */

enum k8s_key_type { KT_STR, KT_PATH, KT_BOOL, KT_MS, KT_BYTES, KT_INT, KT_IMAGES };

/* One key of `kubernetes`: off is the member in struct spawner_k8s_cfg. */
struct k8s_key {
	const char *name;
	enum k8s_key_type type;
	size_t off;
	int64_t lo, hi;
	const char *def;        /* KT_STR: default string (NULL = none) */
	int64_t def_num;        /* KT_MS/KT_BYTES/KT_INT default */
};

#define KO(m) offsetof(struct spawner_k8s_cfg, m)

static const struct k8s_key k8s_keys[] = {
	{ "kubeconfig", KT_PATH, KO(kubeconfig), 0, 0, NULL, 0 },
	{ "context", KT_STR, KO(context), 0, 0, NULL, 0 },
	{ "namespace", KT_STR, KO(ns), 0, 0, NULL, 0 },
	{ "images", KT_IMAGES, KO(images), 0, 0, NULL, 0 },
	{ "storage_class", KT_STR, KO(storage_class), 0, 0, NULL, 0 },
	{ "home_size", KT_BYTES, KO(home_size_bytes), K8S_HOME_MIN, K8S_HOME_MAX, NULL,
	  10LL << 30 },
	{ "gpu_resource", KT_STR, KO(gpu_resource), 0, 0, "nvidia.com/gpu", 0 },
	{ "gpu_product_label", KT_STR, KO(gpu_product_label), 0, 0, "nvidia.com/gpu.product", 0 },
	{ "gpu_taint_key", KT_STR, KO(gpu_taint_key), 0, 0, "nvidia.com/gpu", 0 },
	{ "seccomp_localhost", KT_STR, KO(seccomp_localhost), 0, 0, NULL, 0 },
	{ "image_pull_policy", KT_STR, KO(image_pull_policy), 0, 0, "IfNotPresent", 0 },
	{ "image_pull_secret", KT_STR, KO(image_pull_secret), 0, 0, NULL, 0 },
	{ "gateway_id", KT_STR, KO(gateway_id), 0, 0, "nbgate", 0 },
	{ "request_timeout", KT_MS, KO(request_timeout_ms), K8S_TIMEOUT_MIN, K8S_TIMEOUT_MAX,
	  NULL, 30000 },
	{ "max_response_bytes", KT_BYTES, KO(max_response_bytes), K8S_RESP_MIN, K8S_RESP_MAX,
	  NULL, 16LL << 20 },
	{ "threads", KT_INT, KO(threads), 1, K8S_THREADS_MAX, NULL, 4 },
	{ "checkpoint_kubelet", KT_BOOL, KO(checkpoint_kubelet), 0, 0, NULL, 0 },
	{ "checkpoint_image", KT_STR, KO(checkpoint_image), 0, 0, NULL, 0 },
};

#define K8S_NKEYS (sizeof(k8s_keys) / sizeof(k8s_keys[0]))
#define K8S_ALLOWED "kubeconfig, context, namespace, images, storage_class, home_size, " \
	"gpu_resource, gpu_product_label, gpu_taint_key, seccomp_localhost, " \
	"image_pull_policy, image_pull_secret, gateway_id, request_timeout, " \
	"max_response_bytes, threads, checkpoint_kubelet, checkpoint_image"

static const struct k8s_key *k8s_key_find(const char *name)
{
	for (size_t i = 0; i < K8S_NKEYS; i++)
		if (!strcmp(k8s_keys[i].name, name))
			return &k8s_keys[i];
	return NULL;
}

/* A string key: null or "" = its default; else printable, no spaces. */
static int k8s_str(const struct k8s_key *k, const cJSON *v, const char *where, char **dst,
		   struct err **err)
{
	const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
	size_t max = k->type == KT_PATH ? K8S_PATH_MAX : K8S_TEXT_MAX;

	if (!cJSON_IsNull(v) && !s)
		return err_set(err, EINVAL, "%s: expected a string (or null: %s)", where,
			       k->def ? k->def : "none");
	if (s && !*s)
		s = NULL; /* "" = the default */
	if (s && !printable(s, max, false))
		return err_set(err, EINVAL, "%s: expected printable text without spaces, at "
			       "most %zu characters", where, max);
	if (s && k->type == KT_PATH && s[0] != '/')
		return err_set(err, EINVAL, "%s: must be an absolute path", where);
	free(*dst);
	*dst = s ? xstrdup(s) : k->def ? xstrdup(k->def) : NULL;
	return 0;
}

static int k8s_key_set(const struct k8s_key *k, const cJSON *v, const char *where,
		       struct spawner_k8s_cfg *kc, struct err **err)
{
	char *field = (char *)kc + k->off;
	int64_t n = 0;

	switch (k->type) {
	case KT_STR:
	case KT_PATH:
		return k8s_str(k, v, where, (char **)(void *)field, err);
	case KT_BOOL:
		if (!cJSON_IsBool(v))
			return err_set(err, EINVAL, "%s: expected true or false", where);
		*(bool *)field = cJSON_IsTrue(v);
		return 0;
	case KT_MS:
		return get_ms(v, where, k->lo, k->hi, (int64_t *)(void *)field, err);
	case KT_BYTES:
		return get_bytes(v, where, k->lo, k->hi, (int64_t *)(void *)field, err);
	case KT_INT:
		if (get_int(v, where, k->lo, k->hi, &n, err) < 0)
			return -EINVAL;
		*(int *)(void *)field = (int)n;
		return 0;
	case KT_IMAGES:
		return images_parse(v, kc, err);
	}
	return err_set(err, EINVAL, "%s: bad key type", where);
}

static void k8s_cfg_clear(struct spawner_k8s_cfg *k)
{
	for (size_t i = 0; i < K8S_NKEYS; i++)
		if (k8s_keys[i].type == KT_STR || k8s_keys[i].type == KT_PATH)
			free(*(char **)(void *)((char *)k + k8s_keys[i].off));
	images_free((struct spawner_k8s_image *)k->images, k->n_images);
	memset(k, 0, sizeof(*k));
}

/* The defaults every key starts from (the sched pointer is set at finish). */
static void k8s_cfg_defaults(struct spawner_k8s_cfg *k)
{
	for (size_t i = 0; i < K8S_NKEYS; i++) {
		const struct k8s_key *d = &k8s_keys[i];
		char *field = (char *)k + d->off;

		if (d->type == KT_STR && d->def)
			*(char **)(void *)field = xstrdup(d->def);
		else if (d->type == KT_MS || d->type == KT_BYTES)
			*(int64_t *)(void *)field = d->def_num;
		else if (d->type == KT_INT)
			*(int *)(void *)field = (int)d->def_num;
	}
}

int gw_cfg_k8s_parse(struct gw_cfg *c, const cJSON *v, struct err **err)
{
	struct spawner_k8s_cfg k = { 0 };
	const cJSON *it;

	if (!cJSON_IsObject(v))
		return err_set(err, EINVAL, "kubernetes: expected an object {" K8S_ALLOWED "}");
	k8s_cfg_defaults(&k);
	cJSON_ArrayForEach(it, v) {
		cleanup_free char *where = xasprintf("kubernetes.%s", it->string);
		const struct k8s_key *kk = k8s_key_find(it->string);

		int r;

		if (key_repeated(v, it))
			r = err_set(err, EINVAL, "%s: duplicate key", where);
		else if (!kk)
			r = err_set(err, EINVAL, "%s: unknown key (allowed: " K8S_ALLOWED ")",
				    where);
		else
			r = k8s_key_set(kk, it, where, &k, err);
		if (r < 0) {
			k8s_cfg_clear(&k);
			return -EINVAL;
		}
	}
	/* a template: {pod} {id} {node} are expanded at each restore */
	if (k.checkpoint_image && k8s_ckpt_image_check(k.checkpoint_image, err) < 0) {
		k8s_cfg_clear(&k);
		return err_wrap(err, "kubernetes.checkpoint_image");
	}
	k8s_cfg_clear(&c->k8s);
	c->k8s = k;
	return 0;
}

cJSON *gw_cfg_k8s_print(const struct gw_cfg *c)
{
	const struct spawner_k8s_cfg *k = &c->k8s;
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; i < K8S_NKEYS; i++) {
		const struct k8s_key *d = &k8s_keys[i];
		const char *field = (const char *)k + d->off;
		const char *s;
		cJSON *a;

		switch (d->type) {
		case KT_STR:
		case KT_PATH:
			/* only string fields hold a pointer (bools and ints are not
			 * aligned for one: UBSan caught reading them as such) */
			s = *(char *const *)(const void *)field;
			cJSON_AddItemToObject(o, d->name, s ? cJSON_CreateString(s) :
							      cJSON_CreateNull());
			break;
		case KT_BOOL:
			cJSON_AddBoolToObject(o, d->name, *(const bool *)field);
			break;
		case KT_MS:
		case KT_BYTES:
			cJSON_AddNumberToObject(o, d->name,
						(double)*(const int64_t *)(const void *)field);
			break;
		case KT_INT:
			cJSON_AddNumberToObject(o, d->name, *(const int *)(const void *)field);
			break;
		case KT_IMAGES:
			a = cJSON_AddArrayToObject(o, d->name);
			for (int j = 0; j < k->n_images; j++)
				cJSON_AddItemToArray(a, image_print(&k->images[j]));
			break;
		}
	}
	return o;
}

void gw_cfg_k8s_free(struct gw_cfg *c)
{
	k8s_cfg_clear(&c->k8s);
	gw_cfg_k8s_sched_free(c->profile_sched, c->n_profiles);
	c->profile_sched = NULL;
}

/* ---- cross-field checks ---- */

/* Every image a user may pick, and every profile's image, has an entry:
 * a cluster pulls from a registry, so there is no store to fall back on. */
static int k8s_cover(const struct gw_cfg *c, struct err **err)
{
	for (size_t i = 0; c->images && c->images[i]; i++) {
		bool found = false;

		for (int j = 0; j < c->k8s.n_images && !found; j++)
			found = !strcmp(c->k8s.images[j].name, c->images[i]);
		if (!found)
			return err_set(err, EINVAL, "kubernetes.images: no entry for '%s' "
				       "(images[%zu]); every name in `images` needs its registry "
				       "reference", c->images[i], i);
	}
	for (int i = 0; i < c->n_profiles; i++) {
		bool found = false;

		for (int j = 0; j < c->k8s.n_images && !found; j++)
			found = !strcmp(c->k8s.images[j].name, c->profiles[i].image);
		if (!found)
			return err_set(err, EINVAL, "profiles[%d].image: no kubernetes.images entry "
				       "for '%s'", i, c->profiles[i].image);
	}
	return 0;
}

int gw_cfg_k8s_finish(struct gw_cfg *c, struct err **err)
{
	struct spawner_cfg sc = { 0 };

	c->k8s.sched = c->profile_sched;
	if (c->spawner != GW_SPAWNER_KUBERNETES)
		return 0;
	if (k8s_cover(c, err) < 0)
		return -EINVAL;
	gw_cfg_spawner_fill(c, &sc);
	sc.server_cmd = (const char *const *)c->server_cmd;
	sc.server_env = (const char *const *)c->server_env;
	sc.spawn_timeout_ms = c->spawn_timeout;
	return k8s_check_cfg(&sc, err);
}
