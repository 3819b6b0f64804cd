/*
 * scopes: JupyterHub-style RBAC scopes (SECURITY.md 2.1, JupyterHub
 * docs/source/rbac/scopes.md).
 *
 * A scope string is `name[!filter]` where name is one of the known scopes
 * below and filter is `user=<name>`, `server=<user>/<server>`,
 * `group=<name>`, or the self-referencing `user` / `server` (resolved for
 * the token's owner / the token's server at expansion). Scope lists are
 * space-separated.
 *
 * Known scopes and what each implies (JupyterHub's table, trimmed to the
 * resources nbgate has; every scope also holds itself):
 *
 *   admin:users      -> users, admin:servers, delete:users
 *   users            -> read:users, list:users, users:activity
 *   read:users       -> read:users:name, read:users:groups, read:users:activity
 *   list:users       -> read:users:name
 *   users:activity   -> read:users:activity
 *   admin:servers    -> servers
 *   servers          -> read:servers, delete:servers
 *   read:servers     -> read:users:name
 *   tokens           -> read:tokens
 *   admin:groups     -> groups, delete:groups
 *   groups           -> read:groups, list:groups
 *   read:groups      -> read:groups:name
 *   list:groups      -> read:groups:name
 *   access:servers, delete:users, read:metrics, shutdown   (leaves)
 *
 * Metascopes: `self` = the owner's own user, servers, tokens and activity
 * (read:users, users:activity, servers, tokens, access:servers, all with
 * !user=<owner>; groups are not included: a user reads group membership
 * through read:users:groups on itself). `inherit` = every scope the owner
 * holds right now.
 *
 * Roles: `user` = self; `admin` = admin:users admin:groups tokens
 * access:servers read:metrics shutdown (unfiltered); `server` (the token a
 * single-user server gets) = users:activity!user access:servers!server.
 *
 * Effective scopes of a request = token scopes AND the owner's current
 * scopes. nbgate keeps both sets and checks each grant against
 * both (scopes_intersect() builds that conjunction), which is exact even
 * for filters that cannot be compared without a database (a !group= owner
 * against a !user= token).
 *
 * Filters: !user=u matches requests about user u and u's servers;
 * !server=u/s matches only server s of user u (u/ for the default
 * server); !group=g matches every member of g and their servers, and, for
 * the groups scopes, group g itself.
 *
 * All functions are pure and thread-safe (no global state).
 */
#ifndef NBGATE_GATEWAY_SCOPES_H
#define NBGATE_GATEWAY_SCOPES_H

#include <stdbool.h>
#include <stddef.h>

struct err;

/* An expanded set of scope grants. Opaque; free with scopes_free(). */
struct scope_set;

/* Who a scope string is expanded for. All members borrowed. */
struct scope_owner {
	const char *user;             /* owner's (normalised) name; required */
	const char *server;           /* server tokens: its server name ("" =
				       * default); NULL otherwise. Resolves
				       * the bare !server filter. */
	const struct scope_set *inherit; /* owner's current scopes, for the
					  * `inherit` metascope; NULL = none */
};

/* Role names accepted by scopes_role(). */
#define SCOPES_ROLE_USER "user"
#define SCOPES_ROLE_ADMIN "admin"
#define SCOPES_ROLE_SERVER "server"

/* Scopes of the server role, as stored in a server token's row. */
#define SCOPES_SERVER_TOKEN "users:activity!user access:servers!server"

/*
 * Checks a space-separated scope list without expanding it: every name is
 * known (metascopes included) and every filter well formed. Returns 0 or
 * -EINVAL with *err = "unknown scope 'x'" / "invalid scope filter 'x'"
 * (http 400). An empty list is valid.
 */
int scopes_validate(const char *text, struct err **err);

/*
 * Parses and expands a space-separated scope list for owner: metascopes,
 * implied scopes, self-referencing filters. A bare !server with no server
 * in owner is dropped (as JupyterHub does). Caller owns *out. Errors as
 * scopes_validate().
 */
int scopes_expand(const char *text, const struct scope_owner *owner,
		  struct scope_set **out, struct err **err);

/*
 * The scopes a user holds right now: the `admin` role when admin, else the
 * `user` role, plus extra (the users.scopes column, may be NULL or "").
 * Caller owns *out. Fails only on a malformed extra (-EINVAL).
 */
int scopes_for_user(const char *user, bool admin, const char *extra,
		    struct scope_set **out, struct err **err);

/* A role's scope list ("self" for user...), or NULL for an unknown role. */
const char *scopes_role(const char *role);

/*
 * The conjunction token AND owner: a grant holds only if both sets
 * hold it. Copies both; the arguments stay owned by the caller. Caller owns
 * the result.
 */
struct scope_set *scopes_intersect(const struct scope_set *token,
				   const struct scope_set *owner);

/* A deep copy (caller owns). */
struct scope_set *scopes_dup(const struct scope_set *s);

void scopes_free(struct scope_set *s);

/*
 * Is `needed` (a plain scope name such as "read:users", no filter)
 * granted for a request about user `user` (NULL = about no particular
 * user), server `server` of that user (NULL = not about a server; "" =
 * the default server), where user belongs to user_groups (NULL-terminated,
 * may be NULL)? Respects filters and intersections.
 */
bool scopes_allow(const struct scope_set *s, const char *needed,
		  const char *user, const char *server,
		  const char *const *user_groups);

/* Same for the groups scopes about group `group` (filters !group=). */
bool scopes_allow_group(const struct scope_set *s, const char *needed,
			const char *group);

/*
 * True when `needed` is held with any filter at all: the check for list
 * endpoints, whose items are then each filtered with scopes_allow().
 */
bool scopes_allow_any(const struct scope_set *s, const char *needed);

/* True when `needed` is held without a filter (on both sides). */
bool scopes_allow_all(const struct scope_set *s, const char *needed);

/*
 * Callback deciding group membership for scopes_subset(): does user belong
 * to group? NULL callback = never (the safe answer).
 */
typedef bool (*scopes_in_group_fn)(void *ctx, const char *user, const char *group);

/*
 * TOK-4: is every grant in `requested` also held by `have`? A filtered
 * grant is covered by the same grant unfiltered, with the same filter, by
 * !user=u for !server=u/x, and by !group=g for !user=u / !server=u/x when
 * in_group(ctx, u, g). On false, *missing (if non-NULL) receives the first
 * grant not covered ("admin:users"), owned by the caller.
 */
bool scopes_subset(const struct scope_set *requested, const struct scope_set *have,
		   scopes_in_group_fn in_group, void *ctx, char **missing);

/*
 * The grants as a sorted, space-separated string ("read:users!user=alice
 * servers"), for API output. For an intersection, the grants of the token
 * side that the owner side covers (scopes_subset rules, no group lookup).
 * Caller frees.
 */
char *scopes_to_string(const struct scope_set *s);

/*
 * JH-10 (CVE-2024-41942): only admins may make or unmake admins and modify
 * or delete an admin. actor_admin: the acting user is an admin;
 * target_admin: the user being changed is one now; sets_admin: the request
 * changes the admin flag. Returns 0 if allowed, else -EACCES (http 403,
 * "only admins can modify admins" / "only admins can grant admin").
 * Call it in addition to the scope check, never instead.
 */
int scopes_check_admin_change(bool actor_admin, bool target_admin, bool sets_admin,
			      struct err **err);

#endif
