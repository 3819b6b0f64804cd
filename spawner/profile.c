/*
 * profile: what the backends that start servers from launch profiles
 * (local, kubernetes) share: user_options checked against the profiles and
 * images allow-lists, and the per-user limits of cfg->quota over a user's
 * live servers.
 */
#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "spawner/profile.h"

const struct spawner_profile *spawner_profile_find(const struct spawner_cfg *cfg,
						   const char *name)
{
	for (int i = 0; name && i < cfg->n_profiles; i++)
		if (strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

/* ---- user options ---- */

/* "a, b, c" of the profile names; caller frees. */
static char *profile_names(const struct spawner_cfg *cfg)
{
	struct buf b;

	buf_init(&b, 1 << 16);
	for (int i = 0; cfg->profiles && i < cfg->n_profiles; i++)
		buf_appendf(&b, "%s%s", i ? ", " : "", cfg->profiles[i].name);
	return b.data ? buf_detach(&b, NULL) : xstrdup("none");
}

static char *image_names(const struct spawner_cfg *cfg)
{
	struct buf b;

	buf_init(&b, 1 << 16);
	for (size_t i = 0; cfg->images && cfg->images[i]; i++)
		buf_appendf(&b, "%s%s", i ? ", " : "", cfg->images[i]);
	return b.data ? buf_detach(&b, NULL) : xstrdup("none");
}

static bool image_allowed(const struct spawner_cfg *cfg, const char *name)
{
	for (size_t i = 0; cfg->images && cfg->images[i]; i++)
		if (strcmp(cfg->images[i], name) == 0)
			return true;
	return false;
}

static int opt_string(const cJSON *it, const char **out, struct err **err)
{
	if (!cJSON_IsString(it) || !it->valuestring)
		return err_set_http(err, 400, EINVAL, "user_options.%s must be a string", it->string);
	*out = it->valuestring;
	return 0;
}

/* The "profile" and "image" strings of o (borrowed from o); anything else is a 400. */
static int collect_options(const cJSON *o, const char **pname, const char **iname,
			   struct err **err)
{
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return err_set_http(err, 400, EINVAL, "user_options must be a JSON object");
	cJSON_ArrayForEach(it, o) {
		const char **slot = strcmp(it->string, "profile") == 0 ? pname :
				    strcmp(it->string, "image") == 0 ? iname : NULL;

		if (!slot)
			return err_set_http(err, 400, EINVAL,
					    "user_options.%.64s: unknown option (allowed: profile, image)",
					    it->string);
		if (opt_string(it, slot, err) < 0)
			return -EINVAL;
	}
	return 0;
}

/*
 * Parses user_options against the allow-lists: *prof (never NULL on
 * success: the named profile or the first) and *image (the chosen image
 * name, or the profile's; borrowed from cfg or from the profile).
 */
static int parse_options_obj(const struct spawner_cfg *cfg, const cJSON *o,
			     const struct spawner_profile **prof, const char **image,
			     struct err **err)
{
	const char *pname = NULL, *iname = NULL;
	cleanup_free char *allowed = NULL;

	if (collect_options(o, &pname, &iname, err) < 0)
		return -EINVAL;
	if (cfg->n_profiles <= 0)
		return err_set_http(err, 400, EINVAL, "no launch profiles are configured");
	*prof = pname ? spawner_profile_find(cfg, pname) : &cfg->profiles[0];
	if (!*prof) {
		allowed = profile_names(cfg);
		return err_set_http(err, 400, EINVAL,
				    "user_options.profile: unknown profile '%.64s' (allowed: %s)",
				    pname, allowed);
	}
	if (iname && !image_allowed(cfg, iname)) {
		allowed = image_names(cfg);
		return err_set_http(err, 400, EINVAL,
				    "user_options.image: unknown image '%.64s' (allowed: %s)",
				    iname, allowed);
	}
	*image = (*prof)->image && (*prof)->image[0] ? (*prof)->image : "jupyterlab";
	for (size_t i = 0; iname && cfg->images[i]; i++)
		if (strcmp(cfg->images[i], iname) == 0)
			*image = cfg->images[i]; /* borrowed from cfg, not o */
	return 0;
}

int spawner_options_resolve(const struct spawner_cfg *cfg, const char *json,
			    const struct spawner_profile **prof, const char **image,
			    struct err **err)
{
	cJSON *o = cJSON_Parse(json && json[0] ? json : "{}");
	int rc = parse_options_obj(cfg, o, prof, image, err);

	cJSON_Delete(o);
	return rc;
}

int spawner_check_user_options(struct spawner *sp, const char *json, struct err **err)
{
	const struct spawner_profile *prof;
	const char *image;

	/* Backends without profiles (process) take no options to check. */
	if (sp->cfg.n_profiles <= 0 && !sp->cfg.images)
		return 0;
	return spawner_options_resolve(&sp->cfg, json, &prof, &image, err);
}

/* ---- quota ---- */

struct usage {
	int servers;
	int64_t cpu_millis;     /* -1 once a server without a CPU limit runs */
	int64_t memory_bytes;   /* -1 likewise */
	int gpus;
};

static void usage_add(struct usage *u, const struct spawner_profile *p)
{
	u->servers++;
	if (!p)
		return; /* profile no longer configured: counts as a server only */
	u->cpu_millis = u->cpu_millis < 0 || p->cpu_millis <= 0 ? -1 : u->cpu_millis + p->cpu_millis;
	u->memory_bytes = u->memory_bytes < 0 || p->memory_bytes <= 0 ? -1 :
			  u->memory_bytes + p->memory_bytes;
	u->gpus += p->gpus;
}

/* What the live servers of self's user other than self hold. */
static void usage_of(struct spawner *sp, const struct spawner_server *self, struct usage *u)
{
	memset(u, 0, sizeof(*u));
	for (struct spawner_server *s = sp->servers; s; s = s->next)
		if (s != self && s->user_id == self->user_id && spawner_state_is_live(s->state))
			usage_add(u, spawner_profile_find(&sp->cfg, s->profile));
}

static char *fmt_cpu(int64_t m)
{
	return m < 0 ? xstrdup("unlimited") : xasprintf("%.2f CPUs", (double)m / 1000.0);
}

static char *fmt_mem(int64_t b)
{
	return b < 0 ? xstrdup("unlimited") : xasprintf("%.2f GiB", (double)b / (1 << 30));
}

/* Sum over a limit: true when used + want > limit (unlimited counts as over). */
static bool over(int64_t limit, int64_t used, int64_t want)
{
	if (limit <= 0)
		return false;
	return used < 0 || want <= 0 || used + want > limit;
}

/* The check itself, over what the user holds (u). */
static int check(const struct spawner_quota *q, const struct usage *u,
		 const struct spawner_profile *p, struct err **err)
{
	cleanup_free char *a = NULL, *b = NULL, *c = NULL;

	if (q->max_servers > 0 && u->servers + 1 > q->max_servers)
		return err_set_http(err, 403, EDQUOT,
				    "quota exceeded: at most %d running servers per user "
				    "(%d running)", q->max_servers, u->servers);
	if (over(q->max_cpu_millis, u->cpu_millis, p->cpu_millis)) {
		a = fmt_cpu(q->max_cpu_millis), b = fmt_cpu(u->cpu_millis);
		c = fmt_cpu(p->cpu_millis > 0 ? p->cpu_millis : -1);
		return err_set_http(err, 403, EDQUOT,
				    "quota exceeded: CPU limit %s per user (%s in use, profile "
				    "'%s' asks for %s)", a, b, p->name, c);
	}
	if (over(q->max_memory_bytes, u->memory_bytes, p->memory_bytes)) {
		a = fmt_mem(q->max_memory_bytes), b = fmt_mem(u->memory_bytes);
		c = fmt_mem(p->memory_bytes > 0 ? p->memory_bytes : -1);
		return err_set_http(err, 403, EDQUOT,
				    "quota exceeded: memory limit %s per user (%s in use, profile "
				    "'%s' asks for %s)", a, b, p->name, c);
	}
	if (q->max_gpus > 0 && p->gpus > 0 && u->gpus + p->gpus > q->max_gpus)
		return err_set_http(err, 403, EDQUOT,
				    "quota exceeded: GPU limit %d per user (%d in use, profile "
				    "'%s' asks for %d)", q->max_gpus, u->gpus, p->name, p->gpus);
	return 0;
}

int spawner_quota_check(struct spawner *sp, const struct spawner_server *self,
			const struct spawner_profile *p, struct err **err)
{
	struct usage u;

	if (!p)
		return err_set(err, EINVAL, "no launch profile");
	usage_of(sp, self, &u);
	return check(&sp->cfg.quota, &u, p, err);
}
