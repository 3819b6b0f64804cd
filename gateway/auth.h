/*
 * auth: who is making a request (session cookie or API token), password
 * login, logout and CSRF checks (SECURITY.md sections 1, 2 and 5).
 *
 * struct auth holds the server key (<state_dir>/secret.key, HMAC for
 * tokens and CSRF), the login and token-guess throttles and the queue of
 * password hashing jobs. One per daemon (gw->auth); event-loop thread only.
 *
 * Credentials come from the `Authorization` header (`token <t>` or
 * `Bearer <t>`) or the session cookie; never from the query string (R-1.6,
 * JH-8). A request with both is identified by its token.
 */
#ifndef NBGATE_GATEWAY_AUTH_H
#define NBGATE_GATEWAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/users.h"

struct db;
struct err;
struct gw_cfg;
struct http_req;
struct scope_set;
struct work_pool;

struct auth;

enum auth_via { AUTH_VIA_SESSION = 0, AUTH_VIA_TOKEN = 1 };

/* An identified caller. Owned by whoever got it from auth_identify(); free
 * with auth_ident_free(). */
struct auth_ident {
	int64_t user_id;
	char *user;                /* normalised name */
	bool admin;                /* the user's admin flag now */
	char **groups;             /* the user's groups, NULL-terminated, never NULL */
	struct scope_set *scopes;  /* effective: token AND owner */
	enum auth_via via;
	int64_t handle_id;         /* session or token row id */
	char handle[40];           /* "s:<id>" or "t:<id>" for gw_close_sessions_of */
	char *server_name;         /* server tokens: that server ("" default); else NULL */
	int64_t expires_at;        /* wall ms when this credential dies at the
				    * latest (session absolute timeout, token
				    * expiry); 0 = never */
};
void auth_ident_free(struct auth_ident *id);

/*
 * Creates the auth state: loads or creates <cfg->state_dir>/secret.key
 * (users_key_load), sets up throttles from cfg. cfg is borrowed and must
 * outlive the result. Caller owns it (auth_free()). Errors from the key.
 */
struct auth *auth_new(const struct gw_cfg *cfg, struct err **err);
/* Frees a; call after work_pool_free() (see passwd_queue_free). NULL ok. */
void auth_free(struct auth *a);

/* Gives auth the worker pool for password hashing (borrowed; must outlive
 * a). Call once before auth_login_start()/auth_hash_password(). */
void auth_attach_work(struct auth *a, struct work_pool *work);

/* The server key (borrowed) for users_token_create/lookup. */
const struct users_key *auth_key(const struct auth *a);

/*
 * Identifies the caller of req. Returns 1 with *out set (caller owns), 0
 * when the request carries no credentials, or no valid session cookie
 * (anonymous: the handler decides between 401 and a login redirect), or
 * < 0 with *err:
 *   400  two Authorization headers;
 *   403  malformed Authorization (`token: X`, `Basic X`, trailing
 *        garbage, > 512 bytes), unknown, wrong, expired or revoked token,
 *        locked owner: all with the same message (TOK-3, TOK-9);
 *   429  too many invalid tokens from client_ip (TOK-10): the number of
 *        seconds for Retry-After is auth_retry_after(a);
 *   5xx  database errors.
 * Every session cookie value is tried (cookie tossing, JH-15): a forged
 * one listed first never hides or replaces the valid one. A valid session
 * is touched (last_seen, at most once a second). Subdomain mode: a host
 * session (users_session.parent_id != 0) counts only when req's Host
 * (without port) is the host it was minted for; a hub session never counts
 * on a user host (auth_host_is_user).
 */
int auth_identify(struct auth *a, struct db *db, const struct gw_cfg *cfg,
		  const struct http_req *req, const char *client_ip, bool tls,
		  struct auth_ident **out, struct err **err);

/* True in subdomain mode when host (lower case, no port) is a user host:
 * "<x>.<domain>" and not the public URL's host. Pure. */
bool auth_host_is_user(const struct gw_cfg *cfg, const char *host);

/* Retry-After seconds for the last 429 from auth_identify/auth_login_start. */
int64_t auth_retry_after(const struct auth *a);

/*
 * Builds the identity of user_id as if logged in by a session (effective
 * scopes = the user's scopes). For the CLI and internal callers. 1/0/<0.
 */
int auth_ident_for_user(struct db *db, int64_t user_id, struct auth_ident **out,
			struct err **err);

/* The scopes user u holds now (role + users.scopes). Caller frees. */
int auth_user_scopes(const struct users_user *u, struct scope_set **out, struct err **err);

/*
 * TOK-4: may `requester` create a token with `scopes` (text; NULL =
 * inherit) for `owner`? The expanded scopes must be covered by the owner's
 * current scopes and by the requester's effective scopes. Returns 0, or
 * -EACCES http 403 "requested scope 'x' is not held by ..." / 400 for
 * unknown scopes.
 */
int auth_check_token_grant(struct db *db, const struct auth_ident *requester,
			   const struct users_user *owner, const char *scopes,
			   struct err **err);

/* ---- password login (loop thread) ---- */

struct auth_login_result {
	int status;          /* 200 logged in, 403 generic failure (AUTH-4) */
	int64_t user_id;     /* when 200 */
	char *user;          /* normalised name, when 200 */
	int64_t session_id;  /* session row id, when 200 */
	char *set_cookie;    /* Set-Cookie header value, when 200 */
};
void auth_login_result_free(struct auth_login_result *r);

/* done() runs on the loop thread and owns res (auth_login_result_free) and
 * err (err_free; only for database or internal errors, res then NULL). */
typedef void (*auth_login_done_fn)(void *arg, struct auth_login_result *res,
				   struct err *err);

/*
 * Starts a password login: normalises name (400 if invalid), checks the
 * password policy bounds (over 1024 bytes -> 400 at once, no hashing),
 * throttling (429, see auth_retry_after), reads the user, and verifies on
 * the worker pool (unknown or locked users verify against the dummy hash,
 * so the answer and its time are the same: ). Then, on the loop
 * thread: a correct password rehashes when needed (AUTH-2), creates a new
 * session (AUTH-7) and resets the throttle; a wrong one counts a failure.
 * Returns 0 when queued (done will be called), < 0 with *err otherwise
 * (done is not called). db and a must outlive the job.
 */
int auth_login_start(struct auth *a, struct db *db, const char *name, const char *pw,
		     size_t pw_len, const char *client_ip, auth_login_done_fn done,
		     void *arg, struct err **err);

/*
 * Logs in with a one-time setup code (first admin): consumes the code and
 * creates a session. 1 with *res, 0 for an unknown/expired/used code
 * (counted as a token guess for client_ip), < 0 error (429 throttled).
 */
int auth_login_setup_code(struct auth *a, struct db *db, const char *code,
			  const char *client_ip, struct auth_login_result **res,
			  struct err **err);

/* Creates a session for user_id (after sign-up): *set_cookie caller frees. */
int auth_session_start(struct auth *a, struct db *db, int64_t user_id, const char *client_ip,
		       char **set_cookie, int64_t *session_id, struct err **err);

/*
 * Hashes a new password on the worker pool (sign-up, password change).
 * Checks the policy first (400 at once). done as in passwd.h.
 */
int auth_hash_password(struct auth *a, const char *pw, size_t pw_len,
		       void (*done)(void *arg, char *hash, struct err *err), void *arg,
		       struct err **err);

/*
 * Logout: deletes who's session (session-authenticated callers only; a
 * token caller is left alone). *clear_cookie (may be NULL) receives the
 * clearing Set-Cookie value. The caller then calls
 * gw_close_sessions_of(gw, who->handle) (JH-11).
 */
int auth_logout(struct auth *a, struct db *db, const struct auth_ident *who,
		char **clear_cookie, struct err **err);

/* ---- cookies (R-5.4, JH-3, AUTH-6) ---- */

#define AUTH_COOKIE_PLAIN "nbgate-session"
#define AUTH_COOKIE_SECURE "__Host-nbgate-session"
#define AUTH_LOGIN_COOKIE_PLAIN "nbgate-login-xsrf"
#define AUTH_LOGIN_COOKIE_SECURE "__Host-nbgate-login-xsrf"

/* The session cookie's name for cfg (static string). */
const char *auth_cookie_name(const struct gw_cfg *cfg);
/* "<name>=<sid>; Path=/; HttpOnly; SameSite=Lax[; Secure]; Max-Age=<abs>"
 * (no Domain). Caller frees. */
char *auth_cookie_set(const struct gw_cfg *cfg, const char *sid);
/* The value that deletes the cookie (Max-Age=0). Caller frees. */
char *auth_cookie_clear(const struct gw_cfg *cfg);

/* ---- CSRF (R-5.5, JH-9, AUTH-10, AUTH-11) ---- */

/*
 * Checks a cookie-authenticated request with an unsafe method (anything
 * but GET, HEAD, OPTIONS); returns 0 at once for safe methods and for
 * token-authenticated callers (who->via == AUTH_VIA_TOKEN) or who == NULL.
 * In order, each failure is -EACCES http 403:
 *   Sec-Fetch-Site cross-site or same-site;
 *   Origin present and not the public origin (nor, in subdomain mode,
 *   the caller's own <user>.<domain> origin); Referer likewise when there
 *   is no Origin;
 *   /hub/api/ requests with Content-Type text/plain,
 *   application/x-www-form-urlencoded or multipart/form-data;
 *   no X-XSRFToken header and no `_xsrf` field in a form body ->
 *   "'_xsrf' argument missing"; a token not equal to
 *   auth_csrf_token(a, who) -> "XSRF cookie does not match POST argument".
 * The token is always required (also when Fetch-Metadata says
 * same-origin), so the check does not depend on the browser. body may be
 * NULL (proxied requests: then only the header counts).
 */
int auth_csrf_check(const struct auth *a, const struct gw_cfg *cfg,
		    const struct http_req *req, const struct auth_ident *who,
		    const char *body, size_t body_len, struct err **err);

/* The XSRF token bound to who's session or token handle:
 * base64url(HMAC-SHA-256(key, "xsrf:" handle)). Caller frees. */
char *auth_csrf_token(const struct auth *a, const struct auth_ident *who);

/*
 * Login CSRF (AUTH-11). auth_login_xsrf_new() makes a random nonce for a
 * login form: *set_cookie gets the cookie carrying it (caller frees) and
 * the return value is the `_xsrf` form value (caller frees), an HMAC of
 * the nonce. auth_login_xsrf_check() applies the Fetch-Metadata / Origin
 * rules above and requires the form value to match the cookie. 0 or 403.
 */
char *auth_login_xsrf_new(const struct auth *a, const struct gw_cfg *cfg, char **set_cookie);
int auth_login_xsrf_check(const struct auth *a, const struct gw_cfg *cfg,
			  const struct http_req *req, const char *body, size_t body_len,
			  struct err **err);

/*
 * Parses an Authorization value: exactly "token <t>" or "Bearer <t>"
 * (scheme case-insensitive, one space, t of token characters, at most
 * 512 bytes in all). Returns the offset of t in v and its length in *tlen,
 * or -1. Pure (fuzz target auth_token).
 */
long auth_parse_authorization(const char *v, size_t len, size_t *tlen);

/*
 * Calls fn(ctx, value, value_len) for every cookie named name in a Cookie
 * header value (RFC 6265 "a=b; c=d"); stops early when fn returns true.
 * Returns true when some fn call returned true. Pure (fuzz target).
 */
bool auth_cookie_each(const char *header, size_t len, const char *name,
		      bool (*fn)(void *ctx, const char *v, size_t vlen), void *ctx);

#endif
