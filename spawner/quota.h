/*
 * quota: per-user limits (cfg->quota) for backends that start servers from
 * launch profiles. Pure arithmetic over the spawner's in-memory servers;
 * event-loop thread like the rest of the spawner.
 */
#ifndef NBGATE_SPAWNER_QUOTA_H
#define NBGATE_SPAWNER_QUOTA_H

#include "common/err.h"
#include "spawner/spawner.h"

/* The profile called name in cfg, or NULL (also for name NULL). Borrowed. */
const struct spawner_profile *spawner_profile_find(const struct spawner_cfg *cfg,
						   const char *name);

/*
 * EDQUOT (HTTP 403) when starting profile p for self's user, on top of what
 * that user's other live servers hold (a server whose profile is no longer
 * configured counts as a server only), would exceed cfg->quota; the message
 * names the limit, the current use and the request. EINVAL when p is NULL.
 */
int spawner_quota_check(struct spawner *sp, const struct spawner_server *self,
			const struct spawner_profile *p, struct err **err);

#endif
