/*
 * quota: the per-user limits of cfg->quota over a user's live servers,
 * shared by the backends that start servers from profiles (local,
 * kubernetes).
 */
#include <errno.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "spawner/quota.h"

const struct spawner_profile *spawner_profile_find(const struct spawner_cfg *cfg,
						   const char *name)
{
	for (int i = 0; name && i < cfg->n_profiles; i++)
		if (strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

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
