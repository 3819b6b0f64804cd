/*
 * profile: launch profiles for the backends that start servers from them
 * (local, kubernetes): which profile and image a server's user_options
 * select, and the per-user limits (cfg->quota). Pure: reads cfg and the
 * spawner's in-memory servers; event-loop thread like the rest of the
 * spawner. (spawner_check_user_options() in spawner.h is built on it.)
 */
#ifndef NBGATE_SPAWNER_PROFILE_H
#define NBGATE_SPAWNER_PROFILE_H

#include "common/err.h"
#include "spawner/spawner.h"

/* The profile called name in cfg, or NULL (also for name NULL). Borrowed. */
const struct spawner_profile *spawner_profile_find(const struct spawner_cfg *cfg,
						   const char *name);

/*
 * Parses user_options (JSON text; NULL or "" = {}) against the allow-lists:
 * only "profile" (a name in cfg->profiles; default the first) and "image"
 * (a name in cfg->images; default the profile's). *prof is never NULL on
 * success; *image is borrowed from cfg. Errors: EINVAL (HTTP 400) naming
 * the field, or "no launch profiles are configured".
 */
int spawner_options_resolve(const struct spawner_cfg *cfg, const char *json,
			    const struct spawner_profile **prof, const char **image,
			    struct err **err);

/*
 * EDQUOT (HTTP 403) when starting profile p for self's user, on top of what
 * that user's other live servers hold (a server whose profile is no longer
 * configured counts as a server only), would exceed cfg->quota; the message
 * names the limit, the current use and the request. EINVAL when p is NULL.
 */
int spawner_quota_check(struct spawner *sp, const struct spawner_server *self,
			const struct spawner_profile *p, struct err **err);

#endif
