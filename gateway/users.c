/*
 * users: users, groups, tokens, sessions and setup codes in SQLite.
 * Only hashes of secrets are stored (see users.h).
 */
#define LOG_PREFIX "gateway/users: "

#include "gateway/users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/rand.h"
#include "common/xalloc.h"
#include "gateway/scopes.h"

#define USERS_HASH_LEN 32 /* SHA-256 / HMAC-SHA-256 */
#define USERS_TOKEN_TAG "nbg_"
#define USERS_TOKEN_SECRET_LEN 43
#define USERS_TOKEN_TOUCH_MS 60000
#define USERS_SESSION_TOUCH_MS 1000

/* ---- small statement helpers ---- */

static int users_db_err(struct db *db, const char *what, struct err **err)
{
	err_set(err, EIO, "%s: %s", what, db_errmsg(db));
	return -EIO; /* visibly < 0 here, so callers' "r <= 0" paths analyse */
}

/* Steps st to completion; returns sqlite3_changes() or < 0. */
static int users_step_done(struct db *db, sqlite3_stmt *st, const char *what,
			   struct err **err)
{
	int rc = sqlite3_step(st);

	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return err_set(err, EEXIST, "%s: already exists", what);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return users_db_err(db, what, err);
	return sqlite3_changes(db_handle(db));
}

static char *users_col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? xstrdup((const char *)s) : NULL;
}

static void users_bind_str(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Collects column 0 of every row into a NULL-terminated vector. */
static int users_collect_strv(struct db *db, sqlite3_stmt *st, char ***out,
			      struct err **err)
{
	size_t n = 0, cap = 8;
	char **v = xcalloc(cap + 1, sizeof(*v));
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap *= 2;
			v = xrealloc(v, (cap + 1) * sizeof(*v));
		}
		v[n++] = users_col_str(st, 0);
		v[n] = NULL;
	}
	if (rc != SQLITE_DONE) {
		xstrv_free(v);
		return users_db_err(db, "read list", err);
	}
	*out = v;
	return 0;
}

/* ---- names ---- */

static bool users_name_char(unsigned char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '-' || c == '_' || c == '.');
}

/* Why `in` is not a valid name, or NULL. */
static const char *users_name_problem(const char *in, size_t len, size_t min)
{
	if (len < min || len > USERS_NAME_MAX)
		return min ? "must be 1 to 64 characters" : "must be at most 64 characters";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x80)
			return "only ASCII letters, digits, '-', '_' and '.' are allowed";
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!users_name_char(c, i == 0))
			return i == 0 && users_name_char(c, false)
				       ? "must start with a letter or digit"
				       : "only letters, digits, '-', '_' and '.' are allowed";
	}
	return NULL;
}

/* The name as shown in an error: printable ASCII, at most 64 bytes (JH-12). */
static char *users_name_display(const char *in, size_t len)
{
	size_t n = len > USERS_NAME_MAX ? USERS_NAME_MAX : len;
	char *d = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		d[i] = (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '\'') ? in[i] : '?';
	d[n] = '\0';
	if (len <= USERS_NAME_MAX)
		return d;
	char *full = xasprintf("%s... (%zu bytes)", d, len);
	free(d);
	return full;
}

static int users_normalize(const char *in, size_t min, const char *what, char **out,
			   struct err **err)
{
	size_t len = strlen(in);
	const char *why = users_name_problem(in, len, min);
	char *s;

	if (why) {
		cleanup_free char *d = users_name_display(in, len);
		return err_set_http(err, 400, EINVAL, "invalid %s '%s': %s", what, d, why);
	}
	s = xstrndup(in, len);
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	*out = s;
	return 0;
}

int users_normalize_name(const char *in, char **out, struct err **err)
{
	return users_normalize(in ? in : "", 1, "username", out, err);
}

int users_normalize_server_name(const char *in, char **out, struct err **err)
{
	return users_normalize(in ? in : "", 0, "server name", out, err);
}

/* ---- users ---- */

#define USERS_COLS "id, name, admin, pw_hash, scopes, locked, created, last_activity"

static struct users_user *users_row(sqlite3_stmt *st)
{
	struct users_user *u = xcalloc(1, sizeof(*u));

	u->id = sqlite3_column_int64(st, 0);
	u->name = users_col_str(st, 1);
	u->admin = sqlite3_column_int(st, 2) != 0;
	u->pw_hash = users_col_str(st, 3);
	u->scopes = users_col_str(st, 4);
	if (!u->scopes)
		u->scopes = xstrdup("");
	u->locked = sqlite3_column_int(st, 5) != 0;
	u->created = sqlite3_column_int64(st, 6);
	u->last_activity = sqlite3_column_int64(st, 7);
	return u;
}

void users_user_free(struct users_user *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->pw_hash);
	free(u->scopes);
	free(u);
}

void users_user_freev(struct users_user **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		users_user_free(v[i]);
	free(v);
}

int users_create(struct db *db, const char *name, bool admin, const char *pw_hash,
		 int64_t now, int64_t *id_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	cleanup_free char *norm = NULL;
	int r;

	if (users_normalize_name(name, &norm, err) < 0)
		return -EINVAL;
	if (strcmp(norm, name) != 0)
		return err_set_http(err, 400, EINVAL, "username '%s' is not normalised", norm);
	if (db_prepare(db, &st, "INSERT INTO users (name, admin, pw_hash, created)"
				" VALUES (?, ?, ?, ?)", err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, admin);
	users_bind_str(st, 3, pw_hash);
	sqlite3_bind_int64(st, 4, now);
	r = users_step_done(db, st, "create user", NULL);
	if (r == -EEXIST)
		return err_set_http(err, 409, EEXIST, "user '%s' already exists", name);
	if (r < 0)
		return users_db_err(db, "create user", err);
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db_handle(db));
	return 0;
}

static int users_get_where(struct db *db, const char *sql, const char *s, int64_t id,
			   struct users_user **out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -EIO;
	if (s)
		sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return users_db_err(db, "read user", err);
	*out = users_row(st);
	return 1;
}

int users_get(struct db *db, const char *name, struct users_user **out, struct err **err)
{
	return users_get_where(db, "SELECT " USERS_COLS " FROM users WHERE name = ?", name, 0,
			       out, err);
}

int users_get_by_id(struct db *db, int64_t id, struct users_user **out, struct err **err)
{
	return users_get_where(db, "SELECT " USERS_COLS " FROM users WHERE id = ?", NULL, id,
			       out, err);
}

int users_list(struct db *db, struct users_user ***out, size_t *n, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct users_user **v = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	if (db_prepare(db, &st, "SELECT " USERS_COLS " FROM users ORDER BY name", err) < 0)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(struct users_user *));
		}
		v[cnt++] = users_row(st);
	}
	if (rc != SQLITE_DONE) {
		users_user_freev(v, cnt);
		return users_db_err(db, "list users", err);
	}
	*out = v;
	*n = cnt;
	return 0;
}

int users_count(struct db *db, int64_t *n, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "SELECT count(*) FROM users", err) < 0)
		return -EIO;
	if (sqlite3_step(st) != SQLITE_ROW)
		return users_db_err(db, "count users", err);
	*n = sqlite3_column_int64(st, 0);
	return 0;
}

/* UPDATE ... SET <col> = ? WHERE id = ? with an int64 or text value. */
static int users_update(struct db *db, const char *sql, int64_t id, const char *s,
			int64_t v, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	if (db_prepare(db, &st, sql, err) < 0)
		return -EIO;
	if (s)
		sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, v);
	sqlite3_bind_int64(st, 2, id);
	r = users_step_done(db, st, "update user", err);
	return r < 0 ? r : r > 0;
}

int users_set_admin(struct db *db, int64_t id, bool admin, struct err **err)
{
	return users_update(db, "UPDATE users SET admin = ? WHERE id = ?", id, NULL, admin, err);
}

int users_set_password(struct db *db, int64_t id, const char *pw_hash, struct err **err)
{
	return users_update(db, "UPDATE users SET pw_hash = ? WHERE id = ?", id, pw_hash, 0,
			    err);
}

int users_set_locked(struct db *db, int64_t id, bool locked, struct err **err)
{
	return users_update(db, "UPDATE users SET locked = ? WHERE id = ?", id, NULL, locked,
			    err);
}

int users_set_scopes(struct db *db, int64_t id, const char *scopes, struct err **err)
{
	if (scopes_validate(scopes, err) < 0)
		return -EINVAL;
	return users_update(db, "UPDATE users SET scopes = ? WHERE id = ?", id,
			    scopes ? scopes : "", 0, err);
}

int users_touch(struct db *db, int64_t id, int64_t now, struct err **err)
{
	return users_update(db, "UPDATE users SET last_activity = ? WHERE id = ?", id, NULL,
			    now, err);
}

/* Runs sql with ?1 = a (and ?2 = b); returns the number of changed rows. */
static int users_exec_ids(struct db *db, const char *sql, int64_t a, int64_t b,
			  struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, sql, err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	return users_step_done(db, st, "update", err);
}

int users_delete(struct db *db, int64_t id, struct err **err)
{
	/* tokens, sessions, setup codes, memberships and servers go by
	 * ON DELETE CASCADE (foreign_keys is on, common/db.c) */
	int r = users_exec_ids(db, "DELETE FROM users WHERE id = ?1", id, 0, err);

	return r < 0 ? r : r > 0;
}

/* ---- groups ---- */

int users_group_create(struct db *db, const char *name, int64_t now, int64_t *id_out,
		       struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	cleanup_free char *norm = NULL;
	int r;

	if (users_normalize(name ? name : "", 1, "group name", &norm, err) < 0)
		return -EINVAL;
	if (db_prepare(db, &st, "INSERT INTO groups (name, created) VALUES (?, ?)", err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	r = users_step_done(db, st, "create group", NULL);
	if (r == -EEXIST)
		return err_set_http(err, 409, EEXIST, "group '%s' already exists", norm);
	if (r < 0)
		return users_db_err(db, "create group", err);
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db_handle(db));
	return 0;
}

/* Runs sql binding ?1 = s1 and, if present, ?2 = s2; returns changes or row found. */
static int users_exec_strs(struct db *db, const char *sql, const char *s1, const char *s2,
			   struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, sql, err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, s1, -1, SQLITE_STATIC);
	if (s2)
		sqlite3_bind_text(st, 2, s2, -1, SQLITE_STATIC);
	if (sqlite3_stmt_readonly(st)) {
		int rc = sqlite3_step(st);

		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return users_db_err(db, "query", err);
		return rc == SQLITE_ROW;
	}
	return users_step_done(db, st, "update", err);
}

int users_group_delete(struct db *db, const char *name, struct err **err)
{
	int r = users_exec_strs(db, "DELETE FROM groups WHERE name = ?1", name, NULL, err);

	return r < 0 ? r : r > 0;
}

int users_group_exists(struct db *db, const char *name, struct err **err)
{
	return users_exec_strs(db, "SELECT 1 FROM groups WHERE name = ?1", name, NULL, err);
}

int users_group_list(struct db *db, char ***out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "SELECT name FROM groups ORDER BY name", err) < 0)
		return -EIO;
	return users_collect_strv(db, st, out, err);
}

int users_group_members(struct db *db, const char *group, char ***out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r = users_group_exists(db, group, err);

	if (r <= 0)
		return r;
	if (db_prepare(db, &st, "SELECT u.name FROM users u JOIN group_members m"
				" ON m.user_id = u.id JOIN groups g ON g.id = m.group_id"
				" WHERE g.name = ? ORDER BY u.name", err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
	return users_collect_strv(db, st, out, err) < 0 ? -EIO : 1;
}

/* 1 when both the group and the user exist. */
static int users_group_pair_exists(struct db *db, const char *group, const char *user,
				   struct err **err)
{
	return users_exec_strs(db, "SELECT 1 FROM groups g, users u"
				   " WHERE g.name = ?1 AND u.name = ?2", group, user, err);
}

int users_group_add(struct db *db, const char *group, const char *user, struct err **err)
{
	int r = users_group_pair_exists(db, group, user, err);

	if (r <= 0)
		return r;
	r = users_exec_strs(db, "INSERT OR IGNORE INTO group_members (group_id, user_id)"
				" SELECT g.id, u.id FROM groups g, users u"
				" WHERE g.name = ?1 AND u.name = ?2", group, user, err);
	return r < 0 ? r : 1;
}

int users_group_remove(struct db *db, const char *group, const char *user,
		       struct err **err)
{
	int r = users_group_pair_exists(db, group, user, err);

	if (r <= 0)
		return r;
	r = users_exec_strs(db, "DELETE FROM group_members"
				" WHERE group_id = (SELECT id FROM groups WHERE name = ?1)"
				" AND user_id = (SELECT id FROM users WHERE name = ?2)",
			    group, user, err);
	return r < 0 ? r : 1;
}

int users_groups_of(struct db *db, int64_t user_id, char ***out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "SELECT g.name FROM groups g JOIN group_members m"
				" ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name",
		       err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	return users_collect_strv(db, st, out, err);
}

bool users_in_group_cb(void *db, const char *user, const char *group)
{
	return users_exec_strs(db, "SELECT 1 FROM group_members m"
				   " JOIN groups g ON g.id = m.group_id"
				   " JOIN users u ON u.id = m.user_id"
				   " WHERE u.name = ?1 AND g.name = ?2", user, group, NULL) == 1;
}

/* ---- server key ---- */

static int users_key_read(int fd, const char *path, struct users_key *out, struct err **err)
{
	struct stat stbuf;
	ssize_t n;

	if (fstat(fd, &stbuf) < 0)
		return err_set_errno(err, "stat '%s'", path);
	if (!S_ISREG(stbuf.st_mode) || (stbuf.st_mode & 077))
		return err_set(err, EINVAL, "key file '%s' must be a regular file of mode 0600",
			       path);
	if (stbuf.st_size != USERS_KEY_LEN)
		return err_set(err, EINVAL, "key file '%s' must hold exactly %d bytes", path,
			       USERS_KEY_LEN);
	n = TEMP_FAILURE_RETRY(read(fd, out->k, USERS_KEY_LEN));
	if (n != USERS_KEY_LEN)
		return n < 0 ? err_set_errno(err, "read '%s'", path)
			     : err_set(err, EIO, "read '%s': short read", path);
	return 0;
}

static int users_key_create(const char *path, struct users_key *out, struct err **err)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				    0600);

	if (fd < 0)
		return errno == EEXIST ? -EEXIST : err_set_errno(err, "create '%s'", path);
	rand_bytes(out->k, USERS_KEY_LEN);
	if (TEMP_FAILURE_RETRY(write(fd, out->k, USERS_KEY_LEN)) != USERS_KEY_LEN ||
	    fsync(fd) < 0) {
		int r = err_set_errno(err, "write '%s'", path);

		unlink(path);
		return r;
	}
	return 0;
}

int users_key_load(const char *state_dir, struct users_key *out, struct err **err)
{
	cleanup_free char *path = xasprintf("%s/secret.key", state_dir);

	for (int attempt = 0; attempt < 2; attempt++) {
		cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		int r;

		if (fd >= 0)
			return users_key_read(fd, path, out, err);
		if (errno != ENOENT)
			return err_set_errno(err, "open '%s'", path);
		r = users_key_create(path, out, err);
		if (r != -EEXIST)
			return r; /* created, or failed; EEXIST = lost a race: read it */
	}
	return err_set(err, EIO, "cannot create or read '%s'", path);
}

/* ---- tokens ---- */

static bool users_b64url_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static bool users_b64url_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!users_b64url_char((unsigned char)s[i]))
			return false;
	return true;
}

bool users_token_syntax_ok(const char *s, size_t len)
{
	const size_t tag = sizeof(USERS_TOKEN_TAG) - 1;

	if (!s || len != USERS_TOKEN_LEN || memcmp(s, USERS_TOKEN_TAG, tag) != 0)
		return false;
	for (size_t i = tag; i < tag + USERS_TOKEN_PREFIX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[tag + USERS_TOKEN_PREFIX_LEN] == '_' &&
	       users_b64url_ok(s + tag + USERS_TOKEN_PREFIX_LEN + 1, USERS_TOKEN_SECRET_LEN);
}

static void users_token_mac(const struct users_key *key, const char *token,
			    unsigned char out[USERS_HASH_LEN])
{
	crypto_auth_hmacsha256(out, (const unsigned char *)token, strlen(token), key->k);
}

static void users_sha256(const char *s, unsigned char out[USERS_HASH_LEN])
{
	crypto_hash_sha256(out, (const unsigned char *)s, strlen(s));
}

static char *users_token_new(void)
{
	cleanup_free char *prefix = rand_hex(USERS_TOKEN_PREFIX_LEN / 2);
	cleanup_free char *secret = rand_b64url(32);

	return xasprintf(USERS_TOKEN_TAG "%s_%s", prefix, secret);
}

/* Resolves expires_in against the cap (TOK-5); *expires_at 0 = never. */
static int users_token_expiry(const struct users_token_spec *s, int64_t now,
			      int64_t *expires_at, struct err **err)
{
	int64_t in = s->expires_in_ms;

	if (in < 0)
		return err_set_http(err, 400, EINVAL, "expires_in must not be negative");
	if (s->max_expires_in_ms > 0 && in > s->max_expires_in_ms)
		return err_set_http(err, 400, EINVAL, "expires_in must not exceed %lld seconds",
				    (long long)(s->max_expires_in_ms / 1000));
	if (in == 0 && s->max_expires_in_ms > 0)
		in = s->max_expires_in_ms; /* as JupyterHub: no expiry means the cap */
	*expires_at = in ? now + in : 0;
	return 0;
}

static const char *users_token_default_scopes(const struct users_token_spec *s)
{
	if (s->scopes)
		return s->scopes;
	return s->kind == USERS_TOKEN_SERVER ? SCOPES_SERVER_TOKEN : "inherit";
}

int users_token_create(struct db *db, const struct users_key *key,
		       const struct users_token_spec *spec, int64_t now,
		       char **token_out, int64_t *id_out, struct err **err)
{
	const char *scopes = users_token_default_scopes(spec);
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char mac[USERS_HASH_LEN];
	int64_t expires_at = 0;
	char *token;

	if (scopes_validate(scopes, err) < 0 || users_token_expiry(spec, now, &expires_at, err) < 0)
		return -EINVAL;
	if (db_prepare(db, &st, "INSERT INTO tokens (prefix, hash, user_id, kind, server_name,"
				" note, scopes, created, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
		       err) < 0)
		return -EIO;
	token = users_token_new();
	users_token_mac(key, token, mac);
	sqlite3_bind_text(st, 1, token + 4, USERS_TOKEN_PREFIX_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, spec->user_id);
	sqlite3_bind_text(st, 4, spec->kind == USERS_TOKEN_SERVER ? "server" : "api", -1,
			  SQLITE_STATIC);
	users_bind_str(st, 5, spec->kind == USERS_TOKEN_SERVER ? spec->server_name : NULL);
	users_bind_str(st, 6, spec->note ? spec->note : "");
	sqlite3_bind_text(st, 7, scopes, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, now);
	if (expires_at)
		sqlite3_bind_int64(st, 9, expires_at);
	if (users_step_done(db, st, "create token", err) < 0) {
		sodium_memzero(token, strlen(token));
		free(token);
		return -EIO;
	}
	*token_out = token;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db_handle(db));
	return 0;
}

#define USERS_TOKEN_COLS \
	"id, prefix, user_id, kind, server_name, note, scopes, created, expires_at," \
	" last_activity"

static struct users_token *users_token_row(sqlite3_stmt *st)
{
	struct users_token *t = xcalloc(1, sizeof(*t));
	const unsigned char *prefix = sqlite3_column_text(st, 1);
	const unsigned char *kind = sqlite3_column_text(st, 3);

	t->id = sqlite3_column_int64(st, 0);
	snprintf(t->prefix, sizeof(t->prefix), "%s", prefix ? (const char *)prefix : "");
	t->user_id = sqlite3_column_int64(st, 2);
	t->kind = kind && !strcmp((const char *)kind, "server") ? USERS_TOKEN_SERVER
								: USERS_TOKEN_API;
	t->server_name = users_col_str(st, 4);
	t->note = users_col_str(st, 5);
	if (!t->note)
		t->note = xstrdup("");
	t->scopes = users_col_str(st, 6);
	if (!t->scopes)
		t->scopes = xstrdup("");
	t->created = sqlite3_column_int64(st, 7);
	t->expires_at = sqlite3_column_int64(st, 8);
	t->last_activity = sqlite3_column_int64(st, 9);
	return t;
}

void users_token_free(struct users_token *t)
{
	if (!t)
		return;
	free(t->server_name);
	free(t->note);
	free(t->scopes);
	free(t);
}

void users_token_freev(struct users_token **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		users_token_free(v[i]);
	free(v);
}

/* Among the rows with this prefix, the one whose hash equals mac. */
static int users_token_match(struct db *db, sqlite3_stmt *st, const unsigned char *mac,
			     struct users_token **out, struct err **err)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 10);

		if (h && sqlite3_column_bytes(st, 10) == USERS_HASH_LEN &&
		    sodium_memcmp(h, mac, USERS_HASH_LEN) == 0) {
			*out = users_token_row(st);
			return 1;
		}
	}
	return rc == SQLITE_DONE ? 0 : users_db_err(db, "look up token", err);
}

int users_token_lookup(struct db *db, const struct users_key *key, const char *token,
		       int64_t now, struct users_token **out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char mac[USERS_HASH_LEN];
	struct users_token *t = NULL;
	int r;

	if (!token || !users_token_syntax_ok(token, strlen(token)))
		return 0;
	users_token_mac(key, token, mac);
	if (db_prepare(db, &st, "SELECT " USERS_TOKEN_COLS ", hash FROM tokens WHERE prefix = ?",
		       err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, token + 4, USERS_TOKEN_PREFIX_LEN, SQLITE_STATIC);
	r = users_token_match(db, st, mac, &t, err);
	if (r <= 0)
		return r;
	if (t->expires_at && t->expires_at <= now) {
		sqlite3_reset(st);
		users_exec_ids(db, "DELETE FROM tokens WHERE id = ?1", t->id, 0, NULL);
		users_token_free(t);
		return 0;
	}
	*out = t;
	return 1;
}

int users_token_list(struct db *db, int64_t user_id, struct users_token ***out,
		     size_t *n, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct users_token **v = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	if (db_prepare(db, &st, "SELECT " USERS_TOKEN_COLS " FROM tokens WHERE user_id = ?"
				" ORDER BY created DESC, id DESC", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(struct users_token *));
		}
		v[cnt++] = users_token_row(st);
	}
	if (rc != SQLITE_DONE) {
		users_token_freev(v, cnt);
		return users_db_err(db, "list tokens", err);
	}
	*out = v;
	*n = cnt;
	return 0;
}

int users_token_get(struct db *db, int64_t user_id, int64_t id, struct users_token **out,
		    struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db, &st, "SELECT " USERS_TOKEN_COLS " FROM tokens"
				" WHERE id = ? AND user_id = ?", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, user_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return users_db_err(db, "read token", err);
	*out = users_token_row(st);
	return 1;
}

int users_token_revoke(struct db *db, int64_t user_id, int64_t id, struct err **err)
{
	int r = users_exec_ids(db, "DELETE FROM tokens WHERE id = ?1 AND user_id = ?2", id,
			       user_id, err);

	return r < 0 ? r : r > 0;
}

int users_token_revoke_server(struct db *db, int64_t user_id, const char *server_name,
			      struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "DELETE FROM tokens WHERE user_id = ? AND kind = 'server'"
				" AND server_name = ?", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_text(st, 2, server_name ? server_name : "", -1, SQLITE_STATIC);
	return users_step_done(db, st, "revoke server tokens", err);
}

/*
 * Tokens touched lately, so that a busy token costs a write transaction
 * at most once per USERS_TOKEN_TOUCH_MEMO_MS (the UPDATE's own condition
 * only makes it a no-op, still taking the write lock). Direct-mapped by
 * token id; a collision only costs an extra UPDATE. Event-loop thread.
 */
#define USERS_TOKEN_TOUCH_MEMO_MS 5000
#define USERS_TOKEN_TOUCH_MEMO 256

static struct {
	const struct db *db;
	int64_t id;
	int64_t at;
} users_touch_memo[USERS_TOKEN_TOUCH_MEMO];

int users_token_touch(struct db *db, int64_t id, int64_t now, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	size_t slot = (uint64_t)id % USERS_TOKEN_TOUCH_MEMO;

	if (users_touch_memo[slot].db == db && users_touch_memo[slot].id == id &&
	    now - users_touch_memo[slot].at >= 0 &&
	    now - users_touch_memo[slot].at < USERS_TOKEN_TOUCH_MEMO_MS)
		return 0;
	users_touch_memo[slot].db = db;
	users_touch_memo[slot].id = id;
	users_touch_memo[slot].at = now;
	if (db_prepare(db, &st, "UPDATE tokens SET last_activity = ?1 WHERE id = ?2"
				" AND (last_activity IS NULL OR last_activity < ?1 - ?3)", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, USERS_TOKEN_TOUCH_MS);
	return users_step_done(db, st, "touch token", err);
}

/* ---- sessions ---- */

int users_session_create(struct db *db, int64_t user_id, const char *client_ip,
			 int64_t now, char **sid_out, int64_t *id_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	char *sid;

	if (db_prepare(db, &st, "INSERT INTO sessions (hash, user_id, created, last_seen,"
				" client_ip) VALUES (?, ?, ?, ?, ?)", err) < 0)
		return -EIO;
	sid = rand_b64url(32);
	users_sha256(sid, h);
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, user_id);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, now);
	users_bind_str(st, 5, client_ip);
	if (users_step_done(db, st, "create session", err) < 0) {
		free(sid);
		return -EIO;
	}
	*sid_out = sid;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db_handle(db));
	return 0;
}

static bool users_session_expired(const struct users_session *s, int64_t now,
				  int64_t idle_ms, int64_t abs_ms)
{
	return (idle_ms > 0 && now - s->last_seen > idle_ms) ||
	       (abs_ms > 0 && now - s->created > abs_ms);
}

int users_session_lookup(struct db *db, const char *sid, int64_t now, int64_t idle_ms,
			 int64_t abs_ms, struct users_session *out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	struct users_session s;
	int rc;

	if (!sid || strlen(sid) != USERS_SESSION_ID_LEN || !users_b64url_ok(sid, strlen(sid)))
		return 0;
	users_sha256(sid, h);
	if (db_prepare(db, &st, "SELECT id, user_id, created, last_seen, parent_id, host"
				" FROM sessions WHERE hash = ?", err) < 0)
		return -EIO;
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return users_db_err(db, "look up session", err);
	s.id = sqlite3_column_int64(st, 0);
	s.user_id = sqlite3_column_int64(st, 1);
	s.created = sqlite3_column_int64(st, 2);
	s.last_seen = sqlite3_column_int64(st, 3);
	s.parent_id = sqlite3_column_int64(st, 4); /* NULL reads as 0 */
	snprintf(s.host, sizeof(s.host), "%s",
		 sqlite3_column_text(st, 5) ? (const char *)sqlite3_column_text(st, 5) : "");
	sqlite3_reset(st);
	if (users_session_expired(&s, now, idle_ms, abs_ms)) {
		users_exec_ids(db, "DELETE FROM sessions WHERE id = ?1", s.id, 0, NULL);
		return 0;
	}
	*out = s;
	return 1;
}

int users_session_touch(struct db *db, int64_t id, int64_t now, struct err **err)
{
	/* a host session's parent is touched with it: the hub session (and so
	 * the host sessions hanging off it) stays alive while the user works
	 * on their own host only */
	return users_exec_ids(db, "UPDATE sessions SET last_seen = ?2 WHERE (id = ?1 OR id ="
				  " (SELECT parent_id FROM sessions WHERE id = ?1))"
				  " AND last_seen <= ?2 - 1000", id, now, err);
}

int users_session_delete(struct db *db, int64_t id, struct err **err)
{
	int r = users_exec_ids(db, "DELETE FROM sessions WHERE id = ?1", id, 0, err);

	return r < 0 ? r : r > 0;
}

int users_session_delete_user(struct db *db, int64_t user_id, struct err **err)
{
	return users_exec_ids(db, "DELETE FROM sessions WHERE user_id = ?1", user_id, 0, err);
}

int users_session_purge(struct db *db, int64_t now, int64_t idle_ms, int64_t abs_ms,
			struct err **err)
{
	int a, b, c, d;

	a = users_exec_ids(db, "DELETE FROM sessions WHERE ?2 > 0 AND last_seen < ?1 - ?2",
			   now, idle_ms, err);
	if (a < 0)
		return a;
	b = users_exec_ids(db, "DELETE FROM sessions WHERE ?2 > 0 AND created < ?1 - ?2",
			   now, abs_ms, err);
	if (b < 0)
		return b;
	c = users_exec_ids(db, "DELETE FROM setup_codes WHERE expires_at <= ?1", now, 0, err);
	if (c < 0)
		return c;
	d = users_exec_ids(db, "DELETE FROM auth_codes WHERE expires_at <= ?1", now, 0, err);
	return d < 0 ? d : a + b + c + d;
}

/* ---- host sessions (subdomain mode) ---- */

static bool users_host_ok(const char *host)
{
	size_t n = host ? strlen(host) : 0;

	if (n == 0 || n > USERS_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((host[i] < 'a' || host[i] > 'z') && (host[i] < '0' || host[i] > '9') &&
		    host[i] != '-' && host[i] != '.' && host[i] != '_')
			return false;
	return true;
}

int users_session_create_child(struct db *db, int64_t parent_id, const char *host,
			       const char *client_ip, int64_t now, int64_t idle_ms,
			       int64_t abs_ms, char **sid_out, int64_t *id_out,
			       struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	char *sid;
	int r;

	if (!users_host_ok(host))
		return err_set(err, EINVAL, "invalid session host");
	/* one statement: no window between checking the parent and inserting */
	if (db_prepare(db, &st, "INSERT INTO sessions (hash, user_id, created, last_seen,"
				" client_ip, parent_id, host) SELECT ?1, user_id, created, ?2, ?3,"
				" id, ?4 FROM sessions WHERE id = ?5 AND parent_id IS NULL"
				" AND (?6 <= 0 OR ?2 - last_seen <= ?6)"
				" AND (?7 <= 0 OR ?2 - created <= ?7)", err) < 0)
		return -EIO;
	sid = rand_b64url(32);
	users_sha256(sid, h);
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, now);
	users_bind_str(st, 3, client_ip);
	sqlite3_bind_text(st, 4, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, parent_id);
	sqlite3_bind_int64(st, 6, idle_ms);
	sqlite3_bind_int64(st, 7, abs_ms);
	r = users_step_done(db, st, "create host session", err);
	if (r <= 0) {
		sodium_memzero(sid, strlen(sid));
		free(sid);
		return r < 0 ? -EIO : 0;
	}
	*sid_out = sid;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db_handle(db));
	return 1;
}

int users_session_children(struct db *db, int64_t parent_id, int64_t **ids_out,
			   size_t *n_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int64_t *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*ids_out = NULL;
	*n_out = 0;
	if (db_prepare(db, &st, "SELECT id FROM sessions WHERE parent_id = ? ORDER BY id",
		       err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, parent_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		free(v);
		return users_db_err(db, "list host sessions", err);
	}
	*ids_out = v;
	*n_out = n;
	return 0;
}

/* ---- one-time authorisation codes ---- */

int users_auth_code_create(struct db *db, int64_t user_id, const char *kind,
			   int64_t parent_session, const char *host, int64_t now,
			   char **code_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	char *code;

	if (!users_host_ok(host) || !kind || !*kind)
		return err_set(err, EINVAL, "invalid auth code host or kind");
	if (db_prepare(db, &st, "INSERT INTO auth_codes (hash, user_id, kind, parent_session,"
				" host, expires_at) VALUES (?, ?, ?, ?, ?, ?)", err) < 0)
		return -EIO;
	code = rand_b64url(32);
	users_sha256(code, h);
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, user_id);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	if (parent_session > 0)
		sqlite3_bind_int64(st, 4, parent_session);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_text(st, 5, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now + USERS_AUTH_CODE_TTL_MS);
	if (users_step_done(db, st, "create auth code", err) < 0) {
		free(code);
		return -EIO;
	}
	*code_out = code;
	return 0;
}

int users_auth_code_consume(struct db *db, const char *code, const char *kind,
			    const char *host, int64_t now, int64_t *user_id_out,
			    int64_t *parent_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	const char *k, *hs;
	int rc;

	if (!code || strlen(code) != USERS_SESSION_ID_LEN || !users_b64url_ok(code, strlen(code)))
		return 0;
	users_sha256(code, h);
	/* one statement: the row is gone whether or not it was still valid */
	if (db_prepare(db, &st, "DELETE FROM auth_codes WHERE hash = ?"
				" RETURNING user_id, kind, parent_session, host, expires_at",
		       err) < 0)
		return -EIO;
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return users_db_err(db, "consume auth code", err);
	k = (const char *)sqlite3_column_text(st, 1);
	hs = (const char *)sqlite3_column_text(st, 3);
	if (!k || !hs || !kind || !host || strcmp(k, kind) != 0 || strcasecmp(hs, host) != 0 ||
	    sqlite3_column_int64(st, 4) <= now)
		return 0;
	*user_id_out = sqlite3_column_int64(st, 0);
	*parent_out = sqlite3_column_int64(st, 2);
	return 1;
}

/* ---- setup codes ---- */

int users_setup_code_create(struct db *db, int64_t user_id, int64_t now, char **code_out,
			    struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	char *code;

	if (db_prepare(db, &st, "INSERT INTO setup_codes (hash, user_id, expires_at)"
				" VALUES (?, ?, ?)", err) < 0)
		return -EIO;
	code = rand_b64url(32);
	users_sha256(code, h);
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, user_id);
	sqlite3_bind_int64(st, 3, now + USERS_SETUP_CODE_TTL_MS);
	if (users_step_done(db, st, "create setup code", err) < 0) {
		free(code);
		return -EIO;
	}
	*code_out = code;
	return 0;
}

int users_setup_code_consume(struct db *db, const char *code, int64_t now,
			     int64_t *user_id_out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	unsigned char h[USERS_HASH_LEN];
	int rc;

	if (!code || strlen(code) != USERS_SESSION_ID_LEN || !users_b64url_ok(code, strlen(code)))
		return 0;
	users_sha256(code, h);
	/* one statement: the row is gone whether or not it was still valid */
	if (db_prepare(db, &st, "DELETE FROM setup_codes WHERE hash = ?"
				" RETURNING user_id, expires_at", err) < 0)
		return -EIO;
	sqlite3_bind_blob(st, 1, h, sizeof(h), SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return users_db_err(db, "consume setup code", err);
	if (sqlite3_column_int64(st, 1) <= now)
		return 0;
	*user_id_out = sqlite3_column_int64(st, 0);
	return 1;
}

int users_cred_state(struct db *db, bool is_session, int64_t id, int64_t *t, bool *locked,
		     struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db, &st, is_session ?
		       "SELECT s.last_seen, u.locked FROM sessions s JOIN users u"
		       " ON u.id = s.user_id WHERE s.id = ?" :
		       "SELECT t.expires_at, u.locked FROM tokens t JOIN users u"
		       " ON u.id = t.user_id WHERE t.id = ?", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return err_set(err, EIO, "credential state: %s", sqlite3_errmsg(db_handle(db)));
	*t = sqlite3_column_int64(st, 0);
	*locked = sqlite3_column_int64(st, 1) != 0;
	return 1;
}
