/*
 * config_local: the settings of the sandboxed local backend (issue 3)
 * that are JSON values rather than scalars: `profiles` (a list of launch
 * profiles) and `quota` (per-user limits), plus the helpers that hand
 * them to the spawner; and `cull`, the idle-culling rules (issue 4), which
 * a profile may override in its own `cull` object. The scalar ones (images, image_store,
 * seccomp_profile, sandbox_uid_base) are rows of gw_cfg_table in
 * config.c.
 *
 * Everything is validated strictly: unknown keys inside a profile or the
 * quota are errors, numbers have both a lower and an upper bound, and
 * every message names the element ("profiles[1].memory: ...") so that an
 * operator finds the mistake without reading the source.
 *
 * Startup thread only.
 */
#define LOG_PREFIX "gateway/config_local: "

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/cfg.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "gateway/config.h"

/* Bounds; the reasons are in docs/operations.md ("Profiles"). */
#define PROFILES_MAX 64
#define PROFILE_NAME_MAX 32
#define DISPLAY_NAME_MAX 100
#define IMAGE_NAME_MAX 64
#define GPU_MODEL_MAX 64
#define CPU_MILLIS_MAX (1024 * 1000LL)         /* 1024 CPUs */
#define MEMORY_MIN (32ULL << 20)               /* 32 MiB: Python needs more */
#define MEMORY_MAX (16ULL << 40)               /* 16 TiB */
#define PIDS_MAX 1000000
#define GPUS_MAX 16
#define QUOTA_SERVERS_MAX 1000
#define CULL_SECONDS_MAX (365 * 86400)         /* idle_timeout, max_age: a year */
#define CULL_INTERVAL_MAX 3600                 /* the culler looks at least hourly */
#define CULL_CPU_MAX 10000.0                   /* percent of one CPU: 100 CPUs */
#define CULL_GPU_MAX 100.0                     /* nvidia-smi utilization.gpu */

/* Seccomp profile next to a checkout build: build/nbgate -> ../sandbox/... */
#define SECCOMP_REL "/../sandbox/profiles/default.json"

static const char default_profiles[] =
	"[{\"name\":\"jupyterlab\",\"display_name\":\"JupyterLab\","
	"\"image\":\"jupyterlab\",\"cpu\":2,\"memory\":\"4G\"},"
	"{\"name\":\"vscode\",\"display_name\":\"VS Code\","
	"\"image\":\"vscode\",\"cpu\":2,\"memory\":\"4G\"}]";

/* DESIGN.md "Idle culling"; docs/operations.md "Culling" has the reasons. */
static const char default_cull[] =
	"{\"idle_timeout\":3600,\"max_age\":0,\"action\":\"checkpoint\","
	"\"named_servers\":true,\"tensorboards\":false,\"interval\":60,"
	"\"cpu_threshold\":5,\"gpu_threshold\":5}";

static const char default_quota[] =
	"{\"max_servers\":4,\"max_cpu\":4,\"max_memory\":\"8G\",\"max_gpus\":1}";

/* ---- name checks ---- */

/* Profile names: [a-z0-9-], not starting with '-' (used in URLs, forms). */
static bool profile_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROFILE_NAME_MAX || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
			return false;
	return true;
}

bool gw_cfg_image_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > IMAGE_NAME_MAX || !isalnum((unsigned char)s[0]) ||
	    isupper((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
		    *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

/* Printable ASCII without markup characters (shown on the spawn form). */
static bool text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* ---- value parsers (v is the JSON value, where names it) ---- */

static int get_size(const cJSON *v, const char *where, uint64_t *out, struct err **err)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!(d >= 0) || d > (double)MEMORY_MAX * 1024 || d != (double)(int64_t)d)
			return err_set(err, EINVAL, "%s: expected a whole number of bytes", where);
		*out = (uint64_t)d;
		return 0;
	}
	if (!cJSON_IsString(v) || cfg_parse_size(v->valuestring, out, NULL) < 0)
		return err_set(err, EINVAL, "%s: expected a size like \"512M\", \"4G\" or bytes",
			       where);
	return 0;
}

static int get_memory(const cJSON *v, const char *where, bool zero_ok, int64_t *out,
		      struct err **err)
{
	uint64_t b = 0;

	if (get_size(v, where, &b, err) < 0)
		return -EINVAL;
	if (b == 0 && zero_ok) {
		*out = 0;
		return 0;
	}
	if (b < MEMORY_MIN || b > MEMORY_MAX)
		return err_set(err, EINVAL, "%s: must be between 32M and 16T", where);
	*out = (int64_t)b;
	return 0;
}

/* CPUs as a number (0.5 = half a CPU) -> millis; zero_ok for "unlimited". */
static int get_cpu(const cJSON *v, const char *where, bool zero_ok, int64_t *out,
		   struct err **err)
{
	double m, r;

	if (!cJSON_IsNumber(v))
		return err_set(err, EINVAL, "%s: expected a number of CPUs (e.g. 0.5)", where);
	m = v->valuedouble * 1000.0;
	if (zero_ok && m == 0) {
		*out = 0;
		return 0;
	}
	/* no libm: round by hand once the range is known */
	r = (m >= 1.0 && m <= (double)CPU_MILLIS_MAX) ? (double)(int64_t)(m + 0.5) : -1;
	if (r < 1 || m - r > 1e-6 || r - m > 1e-6)
		return err_set(err, EINVAL, "%s: must be 0.001..1024 in steps of 0.001%s", where,
			       zero_ok ? " (or 0 = unlimited)" : "");
	*out = (int64_t)r;
	return 0;
}

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

static int get_text(const cJSON *v, const char *where, size_t max, const char **out,
		    struct err **err)
{
	if (!cJSON_IsString(v) || !text_ok(v->valuestring, max))
		return err_set(err, EINVAL, "%s: expected printable text of 1..%zu characters",
			       where, max);
	*out = v->valuestring;
	return 0;
}

/* ---- cull rules ---- */

enum cull_type { CULL_SECONDS, CULL_ACTION, CULL_BOOL, CULL_PERCENT };

/* One key of a `cull` object; numbers must lie in lo..hi (seconds or %). */
struct cull_key {
	const char *name;
	unsigned bit;           /* enum gw_cull_key */
	enum cull_type type;
	size_t off;             /* of the member in struct gw_cull_rules */
	double lo, hi;
	bool global_only;       /* not in a profile's override */
};

#define CK(n, m, bit, t, lo, hi, g) { n, bit, t, offsetof(struct gw_cull_rules, m), lo, hi, g }

static const struct cull_key cull_keys[] = {
	CK("idle_timeout", idle_timeout_ms, GW_CULL_IDLE_TIMEOUT, CULL_SECONDS, 0,
	   CULL_SECONDS_MAX, false),
	CK("max_age", max_age_ms, GW_CULL_MAX_AGE, CULL_SECONDS, 0, CULL_SECONDS_MAX, false),
	CK("action", action, GW_CULL_ACTION, CULL_ACTION, 0, 0, false),
	CK("named_servers", named_servers, GW_CULL_NAMED_SERVERS, CULL_BOOL, 0, 0, false),
	CK("tensorboards", tensorboards, GW_CULL_TENSORBOARDS, CULL_BOOL, 0, 0, false),
	CK("interval", interval_ms, GW_CULL_INTERVAL, CULL_SECONDS, 1, CULL_INTERVAL_MAX, true),
	CK("cpu_threshold", cpu_threshold, GW_CULL_CPU_THRESHOLD, CULL_PERCENT, 0, CULL_CPU_MAX,
	   false),
	CK("gpu_threshold", gpu_threshold, GW_CULL_GPU_THRESHOLD, CULL_PERCENT, 0, CULL_GPU_MAX,
	   false),
};

#define CULL_NKEYS (sizeof(cull_keys) / sizeof(cull_keys[0]))
#define CULL_ALLOWED "idle_timeout, max_age, action, named_servers, tensorboards, " \
	"interval, cpu_threshold, gpu_threshold"

/* The rules a `cull` object starts from: keys left out keep these (the
 * same values as default_cull, which a unit test holds them to). */
static const struct gw_cull_rules cull_builtin = {
	.idle_timeout_ms = 3600 * 1000LL, .max_age_ms = 0, .action = SPAWNER_CKPT_CRIU,
	.named_servers = true, .tensorboards = false, .interval_ms = 60 * 1000LL,
	.cpu_threshold = 5, .gpu_threshold = 5,
};

/* Config names of the actions, indexed by enum spawner_ckpt_mode. */
static const char *const cull_action_names[SPAWNER_CKPT_MODE_COUNT] = {
	[SPAWNER_CKPT_CRIU] = "checkpoint", [SPAWNER_CKPT_COMMIT] = "commit",
	[SPAWNER_CKPT_STOP] = "stop",
};

/* Seconds as a JSON number, at most millisecond precision, in lo..hi. */
static int cull_seconds(const cJSON *v, const struct cull_key *k, const char *where,
			int64_t *out, struct err **err)
{
	double ms = cJSON_IsNumber(v) ? v->valuedouble * 1000.0 : -1;
	double r = (ms >= 0 && ms <= k->hi * 1000.0) ? (double)(int64_t)(ms + 0.5) : -1;

	if (!(ms >= k->lo * 1000.0) || r < 0 || ms - r > 1e-6 || r - ms > 1e-6)
		return err_set(err, EINVAL, "%s: expected a number of seconds %g..%g%s", where,
			       k->lo, k->hi, k->lo == 0 ? " (0 = off)" : "");
	*out = (int64_t)r;
	return 0;
}

static int cull_action(const cJSON *v, const char *where, int *out, struct err **err)
{
	for (int i = 0; cJSON_IsString(v) && i < SPAWNER_CKPT_MODE_COUNT; i++)
		if (!strcmp(v->valuestring, cull_action_names[i])) {
			*out = i;
			return 0;
		}
	return err_set(err, EINVAL, "%s: expected \"checkpoint\", \"commit\" or \"stop\"", where);
}

static int cull_key_set(const struct cull_key *k, const cJSON *v, const char *where,
			struct gw_cull_rules *r, struct err **err)
{
	char *field = (char *)r + k->off;

	switch (k->type) {
	case CULL_SECONDS:
		return cull_seconds(v, k, where, (int64_t *)(void *)field, err);
	case CULL_ACTION:
		return cull_action(v, where, (int *)(void *)field, err);
	case CULL_BOOL:
		if (!cJSON_IsBool(v))
			return err_set(err, EINVAL, "%s: expected true or false", where);
		*(bool *)field = cJSON_IsTrue(v);
		return 0;
	case CULL_PERCENT:
		if (!cJSON_IsNumber(v) || !(v->valuedouble >= k->lo) || v->valuedouble > k->hi)
			return err_set(err, EINVAL, "%s: expected a percentage %g..%g", where, k->lo,
				       k->hi);
		*(double *)(void *)field = v->valuedouble;
		return 0;
	}
	return err_set(err, EINVAL, "%s: bad key type", where);
}

static const struct cull_key *cull_key_find(const char *name)
{
	for (size_t i = 0; i < CULL_NKEYS; i++)
		if (!strcmp(cull_keys[i].name, name))
			return &cull_keys[i];
	return NULL;
}

/*
 * Parses a `cull` object named `prefix` ("cull", "profiles[1].cull") into
 * out->v, setting out->set for each key given; profile overrides
 * (!global) may not hold the global-only keys.
 */
static int cull_parse(const cJSON *o, const char *prefix, bool global,
		      struct gw_cull_override *out, struct err **err)
{
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return err_set(err, EINVAL, "%s: expected an object {" CULL_ALLOWED "}", prefix);
	cJSON_ArrayForEach(it, o) {
		cleanup_free char *where = xasprintf("%s.%s", prefix, it->string);
		const struct cull_key *k = cull_key_find(it->string);

		for (const cJSON *p = o->child; p != it; p = p->next)
			if (!strcmp(p->string, it->string))
				return err_set(err, EINVAL, "%s: duplicate key", where);
		if (!k)
			return err_set(err, EINVAL, "%s: unknown key (allowed: " CULL_ALLOWED ")",
				       where);
		if (k->global_only && !global)
			return err_set(err, EINVAL, "%s: only in the global `cull` settings", where);
		if (cull_key_set(k, it, where, &out->v, err) < 0)
			return -EINVAL;
		out->set |= k->bit;
	}
	return 0;
}

/* Keys left out keep their defaults (cull_builtin). */
static int parse_cull(struct gw_cfg *c, const cJSON *v, struct err **err)
{
	struct gw_cull_override o = { .v = cull_builtin };

	if (cull_parse(v, "cull", true, &o, err) < 0)
		return -EINVAL;
	c->cull = o.v;
	return 0;
}

/* The members of r named in `set` (all of them for ~0u) as a JSON object. */
static cJSON *cull_json(const struct gw_cull_rules *r, unsigned set)
{
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; i < CULL_NKEYS; i++) {
		const struct cull_key *k = &cull_keys[i];
		const char *field = (const char *)r + k->off;

		if (!(set & k->bit))
			continue;
		if (k->type == CULL_SECONDS)
			cJSON_AddNumberToObject(o, k->name,
						(double)*(const int64_t *)(const void *)field / 1000.0);
		else if (k->type == CULL_ACTION)
			cJSON_AddStringToObject(o, k->name, cull_action_names[r->action]);
		else if (k->type == CULL_BOOL)
			cJSON_AddBoolToObject(o, k->name, *(const bool *)field);
		else
			cJSON_AddNumberToObject(o, k->name, *(const double *)(const void *)field);
	}
	return o;
}

static cJSON *print_cull(const struct gw_cfg *c)
{
	return cull_json(&c->cull, ~0u);
}

void gw_cfg_cull_rules(const struct gw_cfg *c, const char *profile, struct gw_cull_rules *out)
{
	const struct gw_cull_override *ov = NULL;

	*out = c->cull;
	for (int i = 0; profile && c->profile_cull && i < c->n_profiles; i++)
		if (!strcmp(c->profiles[i].name, profile))
			ov = &c->profile_cull[i];
	if (!ov)
		return;
	for (size_t i = 0; i < CULL_NKEYS; i++) {
		const struct cull_key *k = &cull_keys[i];
		size_t sz = k->type == CULL_SECONDS ? sizeof(int64_t) :
			    k->type == CULL_ACTION ? sizeof(int) :
			    k->type == CULL_BOOL ? sizeof(bool) : sizeof(double);

		if (ov->set & k->bit)
			memcpy((char *)out + k->off, (const char *)&ov->v + k->off, sz);
	}
}

/* ---- profiles ---- */

static void profile_clear(struct spawner_profile *p)
{
	free((char *)p->name);
	free((char *)p->display_name);
	free((char *)p->image);
	free((char *)p->gpu_model);
	free((char *)p->network);
	memset(p, 0, sizeof(*p));
}

static void profiles_free(struct spawner_profile *v, int n)
{
	for (int i = 0; v && i < n; i++)
		profile_clear(&v[i]);
	free(v);
}

/* Checks v for the identifier-like keys name, image and network. */
static int profile_ident_ok(const char *k, const char *v, const char *where, struct err **err)
{
	if (strcmp(k, "name") == 0 && !(v && profile_name_ok(v)))
		return err_set(err, EINVAL, "%s: expected [a-z0-9-], 1..%d characters", where,
			       PROFILE_NAME_MAX);
	if (strcmp(k, "image") == 0 && !(v && gw_cfg_image_name_ok(v)))
		return err_set(err, EINVAL, "%s: expected an image name [a-z0-9._-]", where);
	if (strcmp(k, "network") == 0 &&
	    !(v && (strcmp(v, "none") == 0 || strcmp(v, "egress") == 0)))
		return err_set(err, EINVAL, "%s: expected \"none\" or \"egress\"", where);
	if (strcmp(k, "name") != 0 && strcmp(k, "image") != 0 && strcmp(k, "network") != 0)
		return err_set(err, EINVAL, "%s: unknown key (allowed: name, display_name, "
			       "image, cpu, memory, pids, gpus, gpu_model, network, cull, "
			       "node_selector, tolerations)", where);
	return 0;
}

/* The string keys of a profile; *s receives the validated value. */
static int profile_key_str(const cJSON *it, const char *where, const char **s,
			   struct err **err)
{
	const char *k = it->string, *v = cJSON_IsString(it) ? it->valuestring : NULL;

	if (strcmp(k, "gpu_model") == 0) {
		if (v && !*v) {
			*s = "";
			return 0;
		}
		return get_text(it, where, GPU_MODEL_MAX, s, err);
	}
	if (strcmp(k, "display_name") == 0)
		return get_text(it, where, DISPLAY_NAME_MAX, s, err);
	if (profile_ident_ok(k, v, where, err) < 0)
		return -EINVAL;
	*s = v;
	return 0;
}

/* One key of a profile object; string values come back in *s. */
static int profile_key(struct spawner_profile *p, const cJSON *it, const char *where,
		       const char **s, struct err **err)
{
	const char *k = it->string;
	int64_t v = 0;

	if (!strcmp(k, "cpu"))
		return get_cpu(it, where, false, &p->cpu_millis, err);
	if (!strcmp(k, "memory"))
		return get_memory(it, where, false, &p->memory_bytes, err);
	if (!strcmp(k, "pids")) {
		if (get_int(it, where, 0, PIDS_MAX, &p->pids_max, err) < 0)
			return -EINVAL;
		if (p->pids_max && p->pids_max < 16)
			return err_set(err, EINVAL, "%s: must be 0 (default) or 16..%d", where,
				       PIDS_MAX);
		return 0;
	}
	if (!strcmp(k, "gpus")) {
		if (get_int(it, where, 0, GPUS_MAX, &v, err) < 0)
			return -EINVAL;
		p->gpus = (int)v;
		return 0;
	}
	return profile_key_str(it, where, s, err);
}

/* String members in key order: index into this table for profile_key's *s. */
static const char *const profile_strs[] = { "name", "display_name", "image", "gpu_model",
					    "network" };

/* True when a member before it in object o has the same key. */
static bool key_repeated(const cJSON *o, const cJSON *it)
{
	for (const cJSON *q = o->child; q != it; q = q->next)
		if (!strcmp(q->string, it->string))
			return true;
	return false;
}

/* One member `it` of profile object o: string members land in s[]. */
static int profile_member(const cJSON *o, const cJSON *it, int i, struct spawner_profile *p,
			  struct gw_cull_override *ov, struct spawner_k8s_sched *sk,
			  const char *s[5], struct err **err)
{
	cleanup_free char *where = xasprintf("profiles[%d].%s", i, it->string);
	const char *val = NULL;
	int r;

	if (key_repeated(o, it))
		return err_set(err, EINVAL, "%s: duplicate key", where);
	if (!strcmp(it->string, "cull"))
		return cull_parse(it, where, false, ov, err) < 0 ? -EINVAL : 0;
	/* kubernetes scheduling: config_k8s.c; every backend accepts it */
	r = gw_cfg_k8s_profile_key(sk, it, where, err);
	if (r != 0)
		return r < 0 ? -EINVAL : 0;
	if (profile_key(p, it, where, &val, err) < 0)
		return -EINVAL;
	for (size_t k = 0; val && k < sizeof(profile_strs) / sizeof(profile_strs[0]); k++)
		if (!strcmp(profile_strs[k], it->string))
			s[k] = val;
	return 0;
}

static int profile_parse(const cJSON *o, int i, struct spawner_profile *p,
			 struct gw_cull_override *ov, struct spawner_k8s_sched *sk,
			 struct err **err)
{
	const char *s[5] = { NULL, NULL, NULL, "", "none" };
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return err_set(err, EINVAL, "profiles[%d]: expected an object", i);
	cJSON_ArrayForEach(it, o)
		if (profile_member(o, it, i, p, ov, sk, s, err) < 0)
			return -EINVAL;
	if (!s[0])
		return err_set(err, EINVAL, "profiles[%d].name: required", i);
	if (!s[2])
		return err_set(err, EINVAL, "profiles[%d].image: required", i);
	if (!p->cpu_millis || !p->memory_bytes)
		return err_set(err, EINVAL, "profiles[%d].%s: required", i,
			       p->cpu_millis ? "memory" : "cpu");
	p->name = xstrdup(s[0]);
	p->display_name = xstrdup(s[1] ? s[1] : s[0]);
	p->image = xstrdup(s[2]);
	p->gpu_model = xstrdup(s[3]);
	p->network = xstrdup(s[4]);
	return 0;
}

static int parse_profiles(struct gw_cfg *c, const cJSON *v, struct err **err)
{
	int n = cJSON_GetArraySize(v), i = 0;
	struct spawner_profile *ps;
	struct gw_cull_override *ov;
	struct spawner_k8s_sched *sk;
	const cJSON *it;

	if (!cJSON_IsArray(v) || n < 1 || n > PROFILES_MAX)
		return err_set(err, EINVAL, "expected a list of 1..%d profile objects",
			       PROFILES_MAX);
	ps = xcalloc((size_t)n, sizeof(*ps));
	ov = xcalloc((size_t)n, sizeof(*ov));
	sk = xcalloc((size_t)n, sizeof(*sk));
	cJSON_ArrayForEach(it, v) {
		if (profile_parse(it, i, &ps[i], &ov[i], &sk[i], err) < 0)
			goto fail;
		for (int k = 0; k < i; k++)
			if (!strcmp(ps[k].name, ps[i].name)) {
				err_set(err, EINVAL, "profiles[%d].name: '%s' is used twice", i,
					ps[i].name);
				goto fail;
			}
		i++;
	}
	gw_cfg_k8s_sched_free(c->profile_sched, c->n_profiles);
	profiles_free(c->profiles, c->n_profiles);
	free(c->profile_cull);
	c->profiles = ps;
	c->profile_cull = ov;
	c->profile_sched = sk;
	c->n_profiles = n;
	return 0;
fail:
	profiles_free(ps, n);
	free(ov);
	gw_cfg_k8s_sched_free(sk, n);
	return -EINVAL;
}

/* 4294967296 -> "4G"; sizes that are not whole MiB stay numbers of bytes. */
static cJSON *size_json(int64_t b)
{
	char tmp[32];

	if (b == 0 || b % (1LL << 20))
		return cJSON_CreateNumber((double)b);
	if (b % (1LL << 30) == 0)
		snprintf(tmp, sizeof(tmp), "%lldG", (long long)(b >> 30));
	else
		snprintf(tmp, sizeof(tmp), "%lldM", (long long)(b >> 20));
	return cJSON_CreateString(tmp);
}

static cJSON *print_profiles(const struct gw_cfg *c)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; i < c->n_profiles; i++) {
		const struct spawner_profile *p = &c->profiles[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", p->name);
		cJSON_AddStringToObject(o, "display_name", p->display_name);
		cJSON_AddStringToObject(o, "image", p->image);
		cJSON_AddNumberToObject(o, "cpu", (double)p->cpu_millis / 1000.0);
		cJSON_AddItemToObject(o, "memory", size_json(p->memory_bytes));
		cJSON_AddNumberToObject(o, "pids", (double)p->pids_max);
		cJSON_AddNumberToObject(o, "gpus", p->gpus);
		cJSON_AddStringToObject(o, "gpu_model", p->gpu_model ? p->gpu_model : "");
		cJSON_AddStringToObject(o, "network", p->network);
		if (c->profile_cull && c->profile_cull[i].set)
			cJSON_AddItemToObject(o, "cull", cull_json(&c->profile_cull[i].v,
								   c->profile_cull[i].set));
		if (c->profile_sched)
			gw_cfg_k8s_sched_print(&c->profile_sched[i], o);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/* ---- quota ---- */

static int quota_key(struct spawner_quota *q, const cJSON *it, const char *where,
		     struct err **err)
{
	int64_t v = 0;

	if (!strcmp(it->string, "max_cpu"))
		return get_cpu(it, where, true, &q->max_cpu_millis, err);
	if (!strcmp(it->string, "max_memory"))
		return get_memory(it, where, true, &q->max_memory_bytes, err);
	if (!strcmp(it->string, "max_servers")) {
		if (get_int(it, where, 0, QUOTA_SERVERS_MAX, &v, err) < 0)
			return -EINVAL;
		q->max_servers = (int)v;
		return 0;
	}
	if (!strcmp(it->string, "max_gpus")) {
		if (get_int(it, where, 0, GPUS_MAX, &v, err) < 0)
			return -EINVAL;
		q->max_gpus = (int)v;
		return 0;
	}
	return err_set(err, EINVAL, "%s: unknown key (allowed: max_servers, max_cpu, "
		       "max_memory, max_gpus)", where);
}

/* Keys left out are unlimited (0), so {} means no quota at all. */
static int parse_quota(struct gw_cfg *c, const cJSON *v, struct err **err)
{
	struct spawner_quota q = { 0 };
	const cJSON *it;

	if (!cJSON_IsObject(v))
		return err_set(err, EINVAL, "expected an object {max_servers, max_cpu, "
			       "max_memory, max_gpus}");
	cJSON_ArrayForEach(it, v) {
		cleanup_free char *where = xasprintf("quota.%s", it->string);

		for (const cJSON *p = v->child; p != it; p = p->next)
			if (!strcmp(p->string, it->string))
				return err_set(err, EINVAL, "%s: duplicate key", where);
		if (quota_key(&q, it, where, err) < 0)
			return -EINVAL;
	}
	c->quota = q;
	return 0;
}

static cJSON *print_quota(const struct gw_cfg *c)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "max_servers", c->quota.max_servers);
	cJSON_AddNumberToObject(o, "max_cpu", (double)c->quota.max_cpu_millis / 1000.0);
	cJSON_AddItemToObject(o, "max_memory", size_json(c->quota.max_memory_bytes));
	cJSON_AddNumberToObject(o, "max_gpus", c->quota.max_gpus);
	return o;
}

/* ---- the table ---- */

const struct gw_cfg_json_entry gw_cfg_json_table[] = {
	{ "profiles", default_profiles, parse_profiles, print_profiles,
	  "launch profiles users pick from (first = default)" },
	{ "quota", default_quota, parse_quota, print_quota,
	  "per-user limits over live servers; 0 or absent = unlimited" },
	{ "cull", default_cull, parse_cull, print_cull,
	  "idle culling: idle_timeout, max_age, action, ...; profiles may override" },
	{ "kubernetes", "{}", gw_cfg_k8s_parse, gw_cfg_k8s_print,
	  "kubernetes backend: kubeconfig, namespace, images, storage, GPUs (config_k8s.c)" },
	{ NULL },
};

const struct gw_cfg_json_entry *gw_cfg_json_find(const char *name)
{
	for (const struct gw_cfg_json_entry *e = gw_cfg_json_table; e->name; e++)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

int gw_cfg_json_set_text(struct gw_cfg *c, const struct gw_cfg_json_entry *e,
			 const char *text, const char *where, struct err **err)
{
	cleanup_json cJSON *v = json_parse(text, strlen(text), NULL);

	if (!v)
		return err_set(err, EINVAL, "%s: not valid JSON", where);
	if (e->parse(c, v, err) < 0)
		return err_wrap(err, "%s", where);
	return 0;
}

int gw_cfg_json_defaults(struct gw_cfg *c, struct err **err)
{
	for (const struct gw_cfg_json_entry *e = gw_cfg_json_table; e->name; e++) {
		cleanup_free char *where = xasprintf("default of config key '%s'", e->name);

		if (gw_cfg_json_set_text(c, e, e->def, where, err) < 0)
			return -EINVAL;
	}
	return 0;
}

void gw_cfg_json_free(struct gw_cfg *c)
{
	gw_cfg_k8s_free(c); /* profile_sched is parallel to profiles: first */
	profiles_free(c->profiles, c->n_profiles);
	free(c->profile_cull);
	c->profile_cull = NULL;
	c->profiles = NULL;
	c->n_profiles = 0;
	memset(&c->quota, 0, sizeof(c->quota));
}

/* ---- cross-field checks ---- */

/* A profile that the quota can never admit is a configuration error. */
static int profiles_within_quota(const struct gw_cfg *c, struct err **err)
{
	const struct spawner_quota *q = &c->quota;

	for (int i = 0; i < c->n_profiles; i++) {
		const struct spawner_profile *p = &c->profiles[i];

		if (q->max_cpu_millis && p->cpu_millis > q->max_cpu_millis)
			return err_set(err, EINVAL, "profiles[%d].cpu exceeds quota.max_cpu", i);
		if (q->max_memory_bytes && p->memory_bytes > q->max_memory_bytes)
			return err_set(err, EINVAL, "profiles[%d].memory exceeds quota.max_memory",
				       i);
		if (p->gpus > q->max_gpus)
			return err_set(err, EINVAL, "profiles[%d].gpus exceeds quota.max_gpus", i);
	}
	return 0;
}

/* <directory of /proc/self/exe>/../sandbox/profiles/default.json, or NULL. */
static char *seccomp_default(void)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash || slash == exe)
		return NULL;
	*slash = '\0';
	return xasprintf("%s" SECCOMP_REL, exe);
}

/* Resolves "a/b/../c" lexically: the file may not exist yet (tests). */
static void path_tidy(char *p)
{
	char *dots;

	while ((dots = strstr(p, "/../")) != NULL) {
		char *prev = dots;

		while (prev > p && prev[-1] != '/')
			prev--;
		if (prev == p)
			break;
		memmove(prev, dots + 4, strlen(dots + 4) + 1);
	}
}

int gw_cfg_local_finish(struct gw_cfg *c, struct err **err)
{
	if (profiles_within_quota(c, err) < 0)
		return -EINVAL;
	if (c->image_store[0] != '/')
		return err_set(err, EINVAL, "image_store must be an absolute path");
	if (!c->seccomp_profile[0]) {
		char *d = seccomp_default();

		if (!d)
			return err_set(err, EINVAL, "seccomp_profile: cannot find the executable; "
				       "set an absolute path");
		path_tidy(d);
		free(c->seccomp_profile);
		c->seccomp_profile = d;
	}
	if (c->seccomp_profile[0] != '/')
		return err_set(err, EINVAL, "seccomp_profile must be an absolute path");
	return 0;
}

/* ---- for the spawner and the API ---- */

void gw_cfg_spawner_fill(const struct gw_cfg *c, struct spawner_cfg *sc)
{
	sc->profiles = c->profiles;
	sc->n_profiles = c->n_profiles;
	sc->images = (const char *const *)c->images;
	sc->quota = c->quota;
	sc->image_store = c->image_store;
	sc->seccomp_profile = c->seccomp_profile;
	sc->uid_base = (uint32_t)c->sandbox_uid_base;
	sc->k8s = c->spawner == GW_SPAWNER_KUBERNETES ? &c->k8s : NULL;
}

const struct spawner_profile *gw_cfg_profile_find(const struct gw_cfg *c, const char *name)
{
	for (int i = 0; name && i < c->n_profiles; i++)
		if (!strcmp(c->profiles[i].name, name))
			return &c->profiles[i];
	return NULL;
}

bool gw_cfg_image_allowed(const struct gw_cfg *c, const char *name)
{
	for (size_t i = 0; name && c->images && c->images[i]; i++)
		if (!strcmp(c->images[i], name))
			return true;
	return false;
}
