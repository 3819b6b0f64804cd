/*
 * users: database access for users, groups, API tokens, sessions and setup
 * codes (schema: common/db_schema.c, migration 1; times in ms).
 *
 * Secrets never reach the database (R-2.1, R-5.4, TOK-1): tokens are stored
 * as an 8-hex-digit prefix plus HMAC-SHA-256(server key, token); sessions
 * and setup codes as SHA-256 of their value (256 random bits each, so a
 * fast hash is enough). Comparisons are constant time (sodium_memcmp).
 *
 * Every query is a prepared statement; no SQL is built from input.
 * Lookups return 1 (found), 0 (not found) or < 0 with *err (database
 * error, EIO). Thread: whoever owns the struct db (the event loop).
 */
#ifndef NBGATE_GATEWAY_USERS_H
#define NBGATE_GATEWAY_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/xalloc.h" /* xstrv_free() for name lists */

struct db;
struct err;

#define USERS_NAME_MAX 64

/* ---- names (R-1.3, JH-6, JH-7) ---- */

/*
 * Normalises a user name: ASCII only, A-Z lower-cased, then [a-z0-9] and
 * '-', '_', '.' (not first), 1..64 bytes. Anything else (full-width or
 * zero-width characters, spaces, '/', '%', control bytes) is refused with
 * EINVAL (http 400) "invalid username '<name>': <why>", where a long name
 * is cut to 64 bytes plus its length (JH-12). Caller frees *out.
 */
int users_normalize_name(const char *in, char **out, struct err **err);

/* Same rules for a server name, 0..64 bytes ("" = the default server). */
int users_normalize_server_name(const char *in, char **out, struct err **err);


/* ---- users ---- */

struct users_user {
	int64_t id;
	char *name;
	bool admin;
	char *pw_hash;     /* NULL when no password (setup code only) */
	char *scopes;      /* extra scopes, space-separated, never NULL */
	bool locked;
	int64_t created;
	int64_t last_activity; /* 0 = never */
};
void users_user_free(struct users_user *u);
/* Frees a vector from users_list() (n entries). */
void users_user_freev(struct users_user **v, size_t n);

/*
 * Creates user name (must already be normalised; checked again). pw_hash
 * may be NULL. EEXIST (http 409) "user 'x' already exists".
 */
int users_create(struct db *db, const char *name, bool admin, const char *pw_hash,
		 int64_t now, int64_t *id_out, struct err **err);
/* 1 found (*out owned), 0 not found, < 0 error. name must be normalised. */
int users_get(struct db *db, const char *name, struct users_user **out, struct err **err);
int users_get_by_id(struct db *db, int64_t id, struct users_user **out, struct err **err);
/* All users ordered by name. Caller frees with users_user_freev(). */
int users_list(struct db *db, struct users_user ***out, size_t *n, struct err **err);
int users_count(struct db *db, int64_t *n, struct err **err);
/* Setters: 1 changed, 0 no such user, < 0 error. */
int users_set_admin(struct db *db, int64_t id, bool admin, struct err **err);
int users_set_password(struct db *db, int64_t id, const char *pw_hash, struct err **err);
int users_set_locked(struct db *db, int64_t id, bool locked, struct err **err);
/* scopes is validated with scopes_validate() first (400). */
int users_set_scopes(struct db *db, int64_t id, const char *scopes, struct err **err);
int users_touch(struct db *db, int64_t id, int64_t now, struct err **err);
/* Deletes the user with its tokens, sessions, setup codes and group
 * memberships (one transaction). 1 deleted, 0 not found. */
int users_delete(struct db *db, int64_t id, struct err **err);

/* ---- groups ---- */

/* name follows users_normalize_name rules. EEXIST (409) if present. */
int users_group_create(struct db *db, const char *name, int64_t now, int64_t *id_out,
		       struct err **err);
/* 1 deleted, 0 not found. Memberships go with it. */
int users_group_delete(struct db *db, const char *name, struct err **err);
/* Group names ordered by name, NULL-terminated; xstrv_free(). */
int users_group_list(struct db *db, char ***out, struct err **err);
/* 1 exists, 0 not. */
int users_group_exists(struct db *db, const char *name, struct err **err);
/* Member names of group (ordered); 0 when the group does not exist. */
int users_group_members(struct db *db, const char *group, char ***out, struct err **err);
/* Add/remove: 1 done (idempotent), 0 group or user not found. */
int users_group_add(struct db *db, const char *group, const char *user, struct err **err);
int users_group_remove(struct db *db, const char *group, const char *user,
		       struct err **err);
/* Groups of user_id, ordered, NULL-terminated (never NULL on success). */
int users_groups_of(struct db *db, int64_t user_id, char ***out, struct err **err);
/* scopes_in_group_fn-compatible membership test with ctx = struct db *
 * (false on any error). */
bool users_in_group_cb(void *db, const char *user, const char *group);

/* ---- server key (HMAC for tokens and CSRF) ---- */

#define USERS_KEY_LEN 32
struct users_key {
	unsigned char k[USERS_KEY_LEN];
};

/*
 * Loads <state_dir>/secret.key (exactly 32 bytes, must not be readable by
 * group or others), or creates it (0600, O_EXCL, fsync) on first start.
 * EINVAL for a wrong size or loose mode, errno otherwise.
 */
int users_key_load(const char *state_dir, struct users_key *out, struct err **err);

/* ---- API tokens (R-2.1, TOK-*) ---- */

enum users_token_kind { USERS_TOKEN_API = 0, USERS_TOKEN_SERVER = 1 };

/* "nbg_" + 8 hex + "_" + 43 base64url = 56 bytes. */
#define USERS_TOKEN_LEN 56
#define USERS_TOKEN_PREFIX_LEN 8

struct users_token_spec {
	int64_t user_id;
	enum users_token_kind kind;
	const char *server_name;   /* server tokens: the server ("" default); else NULL */
	const char *note;          /* may be NULL */
	const char *scopes;        /* space-separated; NULL = "inherit" (api) or
				    * SCOPES_SERVER_TOKEN (server) */
	int64_t expires_in_ms;     /* 0 = never (or the cap, when there is one) */
	int64_t max_expires_in_ms; /* cfg->token_max_expires_in; 0 = no cap */
};

struct users_token {
	int64_t id;
	char prefix[USERS_TOKEN_PREFIX_LEN + 1];
	int64_t user_id;
	enum users_token_kind kind;
	char *server_name;  /* NULL for api tokens */
	char *note;         /* never NULL ("" when none) */
	char *scopes;       /* never NULL */
	int64_t created;
	int64_t expires_at; /* 0 = never */
	int64_t last_activity; /* 0 = never used */
};
void users_token_free(struct users_token *t);
void users_token_freev(struct users_token **v, size_t n);

/*
 * Creates a token. Scopes are validated (400). expires_in above the cap
 * -> EINVAL http 400 "expires_in must not exceed <N> seconds" (TOK-5);
 * negative -> 400. *token_out (caller frees; show it once, never log it)
 * and *id_out receive the new token. The caller checks that the owner may
 * grant these scopes (scopes_subset, TOK-4) before calling.
 */
int users_token_create(struct db *db, const struct users_key *key,
		       const struct users_token_spec *spec, int64_t now,
		       char **token_out, int64_t *id_out, struct err **err);

/*
 * Finds the token presented as `token`: syntax check, lookup by prefix,
 * constant-time comparison of the HMAC, expiry (expired rows are deleted).
 * 1 valid (*out owned), 0 for a malformed, unknown, wrong or expired token
 * alike (TOK-9), < 0 database error.
 */
int users_token_lookup(struct db *db, const struct users_key *key, const char *token,
		       int64_t now, struct users_token **out, struct err **err);

/* True when s has the token syntax (cheap; no database). */
bool users_token_syntax_ok(const char *s, size_t len);

/* Tokens of user_id (never secrets), newest first. */
int users_token_list(struct db *db, int64_t user_id, struct users_token ***out,
		     size_t *n, struct err **err);
/* One token of user_id by id: 1/0/<0. */
int users_token_get(struct db *db, int64_t user_id, int64_t id, struct users_token **out,
		    struct err **err);
/* Deletes token id of user_id: 1 deleted, 0 not found. */
int users_token_revoke(struct db *db, int64_t user_id, int64_t id, struct err **err);
/* Deletes the server tokens of user_id's server (server stopped). Count >= 0. */
int users_token_revoke_server(struct db *db, int64_t user_id, const char *server_name,
			      struct err **err);
/* Sets last_activity = now if older than 60 s (bounded write rate). */
int users_token_touch(struct db *db, int64_t id, int64_t now, struct err **err);

/* ---- sessions (R-5.4) ---- */

/* Session ids: 32 random bytes as 43 base64url chars. */
#define USERS_SESSION_ID_LEN 43

/* Longest host name a host session is bound to (RFC 1035: 253). */
#define USERS_HOST_MAX 255

struct users_session {
	int64_t id;
	int64_t user_id;
	int64_t created;
	int64_t last_seen;
	int64_t parent_id;               /* 0 = a hub session; else a host session
					  * minted from hub session parent_id */
	char host[USERS_HOST_MAX + 1];   /* host sessions: the only host (lower
					  * case, no port) they are valid on; "" */
};

/* Creates a session for user_id; *sid_out (caller frees) is the cookie
 * value, *id_out the row id. */
int users_session_create(struct db *db, int64_t user_id, const char *client_ip,
			 int64_t now, char **sid_out, int64_t *id_out, struct err **err);
/*
 * Looks sid up. Idle (now - last_seen > idle_ms) or absolute
 * (now - created > abs_ms) expiry makes it invalid and deletes the row;
 * idle_ms/abs_ms <= 0 disable that check. 1 valid (*out filled), 0 not.
 */
int users_session_lookup(struct db *db, const char *sid, int64_t now, int64_t idle_ms,
			 int64_t abs_ms, struct users_session *out, struct err **err);
/* last_seen = now, written at most once per second per session; a host
 * session's activity also keeps its hub session (parent) alive. */
int users_session_touch(struct db *db, int64_t id, int64_t now, struct err **err);
/*
 * State of a live credential for re-checking open connections
 * (gateway/conn_auth.c): for a session (is_session) its last_seen, for a
 * token its expires_at (0 = never); *locked when its user is locked.
 * Returns 1 found, 0 gone (deleted, revoked), < 0 database error.
 */
int users_cred_state(struct db *db, bool is_session, int64_t id, int64_t *t, bool *locked,
		     struct err **err);
/* 1 deleted, 0 not found. */
int users_session_delete(struct db *db, int64_t id, struct err **err);
/* Deletes every session of user_id; count >= 0. */
int users_session_delete_user(struct db *db, int64_t user_id, struct err **err);
/* Deletes expired sessions, setup codes and auth codes; count >= 0. */
int users_session_purge(struct db *db, int64_t now, int64_t idle_ms, int64_t abs_ms,
			struct err **err);

/*
 * Host sessions (subdomain mode, JH-3/JH-11). Creates a session for the
 * user of hub session parent_id, valid only on host (lower case, no port,
 * at most USERS_HOST_MAX bytes, else EINVAL), with the parent's `created`
 * (so it dies at the parent's absolute limit) and last_seen = now. The row
 * goes with the parent (ON DELETE CASCADE). Returns 1 with *sid_out
 * (caller frees, the cookie value) and *id_out (may be NULL), 0 when the
 * parent is gone, idle (idle_ms) or past its absolute limit (abs_ms), or is
 * itself a host session; < 0 database error.
 */
int users_session_create_child(struct db *db, int64_t parent_id, const char *host,
			       const char *client_ip, int64_t now, int64_t idle_ms,
			       int64_t abs_ms, char **sid_out, int64_t *id_out,
			       struct err **err);
/* Ids of the host sessions of hub session parent_id (for
 * gw_close_sessions_of before logout). *ids_out caller frees (NULL when
 * *n_out is 0). 0 or < 0. */
int users_session_children(struct db *db, int64_t parent_id, int64_t **ids_out,
			   size_t *n_out, struct err **err);

/* ---- one-time authorisation codes (subdomain login hand-off) ---- */

#define USERS_AUTH_CODE_TTL_MS 60000
#define USERS_AUTH_CODE_HANDOFF "handoff"

/*
 * Mints a single-use code of kind for user_id, bound to host (the user
 * host it may be redeemed on) and to hub session parent_session (0 =
 * none), valid USERS_AUTH_CODE_TTL_MS from now. 256 random bits, stored
 * as SHA-256. *code_out (43 base64url chars) caller frees; never log it.
 */
int users_auth_code_create(struct db *db, int64_t user_id, const char *kind,
			   int64_t parent_session, const char *host, int64_t now,
			   char **code_out, struct err **err);
/*
 * Redeems code: the row is deleted whatever the outcome (single use), then
 * it counts only when its kind and host equal kind and host (host
 * compared case-insensitively) and it has not expired. 1 valid
 * (*user_id_out, *parent_out (0 = none) set), 0 unknown, used, expired,
 * other kind or other host; < 0 database error.
 */
int users_auth_code_consume(struct db *db, const char *code, const char *kind,
			    const char *host, int64_t now, int64_t *user_id_out,
			    int64_t *parent_out, struct err **err);

/* ---- setup codes (one-time login URL for the first admin) ---- */

#define USERS_SETUP_CODE_TTL_MS (3600 * 1000)

/* A single-use code for user_id valid 1 h; *code_out caller frees. */
int users_setup_code_create(struct db *db, int64_t user_id, int64_t now, char **code_out,
			    struct err **err);
/* Consumes code: 1 valid (*user_id_out set, row deleted), 0 unknown/expired. */
int users_setup_code_consume(struct db *db, const char *code, int64_t now,
			     int64_t *user_id_out, struct err **err);

#endif
