/*
 * handoff: the subdomain-mode login hand-off (R-1.1, JH-3, JH-11), a
 * simplified version of what JupyterHub does with OAuth.
 *
 * In subdomain mode alice's server lives on its own origin
 * `<scheme>://alice.<domain>[:port]` and the hub's session cookie is
 * host-only on the hub's host, so the browser carries no credential to
 * alice's host. After a login (or on GET /hub/login with a hub session)
 * whose `next` names alice's own host, the hub mints a one-time code
 * (users_auth_code_create, kind "handoff", 60 s, bound to alice's host and
 * to the hub session) and redirects to
 *   <alice origin>/hub/oauth_callback?code=<code>&next=<path>
 * The callback, served on alice's host by gw_hub_user_host() (gw.h),
 * consumes the code and sets a host session cookie (host-only, no
 * Domain) whose session row hangs off the hub session: logging out of
 * the hub deletes it (ON DELETE CASCADE), and auth_identify accepts it
 * only on alice's host.
 *
 * Threading: event-loop thread only.
 */
#ifndef NBGATE_GATEWAY_HANDOFF_H
#define NBGATE_GATEWAY_HANDOFF_H

#include <stdint.h>

struct err;
struct gw;
struct gw_cfg;

/* "<scheme of public_url>://<user>.<domain><:port of public_url>", lower
 * case. Caller frees. NULL outside subdomain mode. Pure. */
char *handoff_user_origin(const struct gw_cfg *cfg, const char *user);

/* The user whose host `host` (lower case, no port) is: "<user>.<domain>"
 * with a single label, not the public host; caller frees; NULL otherwise
 * (also outside subdomain mode). Does not check that the user exists. */
char *handoff_host_user(const struct gw_cfg *cfg, const char *host);

/*
 * Validates a path for user's host: "/user/<user>/..." (leading slashes
 * collapsed to one, CVE-2026-33709) is kept with its query, without a
 * fragment; "/user/<user>" becomes "/user/<user>/"; anything else
 * (another prefix, backslashes, control bytes, NULL) gives "/user/<user>/".
 * Never NULL; caller frees. Pure.
 */
char *handoff_user_path(const char *user, const char *path);

/*
 * True (returns the path, caller frees) when next names a page of user's
 * own host: an absolute URL whose origin is exactly
 * handoff_user_origin(cfg, user) (case-insensitive), followed by '/',
 * '?', '#' or nothing; the path is then handoff_user_path()'s. Any other
 * next (other users' hosts, other hosts, scheme-relative, backslashes,
 * control bytes, outside subdomain mode) gives NULL. Pure.
 */
char *handoff_next_path(const struct gw_cfg *cfg, const char *next, const char *user);

/*
 * Mints a hand-off code for hub session session_id of user (id user_id)
 * and builds the redirect
 *   <user origin>/hub/oauth_callback?code=<code>&next=<path, %-encoded>
 * into *loc (caller frees). path must come from handoff_user_path or
 * handoff_next_path. < 0 with *err on database errors.
 */
int handoff_location(struct gw *gw, int64_t user_id, const char *user, int64_t session_id,
		     const char *path, char **loc, struct err **err);

#endif
