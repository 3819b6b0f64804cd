/* Unit tests for gateway/users.c against a temporary database: names
 * (JH-7, JH-12), users, groups, tokens (TOK-1, TOK-5, TOK-12), sessions
 * (AUTH-8 timeouts with injected times), setup codes, the key file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/users.c"

#include <ftw.h>

struct fx {
	char dir[64];
	char *path;
	struct db *db;
	struct users_key key;
	int64_t alice;
};

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nbgate-test-users-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->path = xasprintf("%s/state.db", fx->dir);
	assert_int_equal(db_open(&fx->db, fx->path, NULL), 0);
	assert_int_equal(users_key_load(fx->dir, &fx->key, NULL), 0);
	assert_int_equal(users_create(fx->db, "alice", false, NULL, 1000, &fx->alice, NULL), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	db_close(fx->db);
	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx->path);
	free(fx);
	return 0;
}

static void test_normalize_name(void **state)
{
	static const char *const ok[][2] = {
		{ "Alice", "alice" }, { "ALICE", "alice" }, { "a.b", "a.b" },
		{ "a-b_c9", "a-b_c9" }, { "0x", "0x" },
	};
	static const char *const bad[] = {
		"", "\xef\xbd\x81lice" /* full-width a */, "alice\xe2\x80\x8b" /* ZWSP */,
		"al ice", "a/b", "a%2fb", ".alice", "-a", "_a", "al\tice", "alice\n",
	};
	struct err *e = NULL;
	char *out = NULL;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(users_normalize_name(ok[i][0], &out, NULL), 0);
		assert_string_equal(out, ok[i][1]);
		free(out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(users_normalize_name(bad[i], &out, &e), -EINVAL);
		assert_int_equal(err_http_status(e), 400);
		assert_non_null(strstr(e->msg, "invalid username"));
		err_free(&e);
	}
	assert_int_equal(users_normalize_server_name("", &out, NULL), 0);
	assert_string_equal(out, "");
	free(out);
}

static void test_normalize_long_name_message(void **state)
{
	size_t n = 1 << 20;
	char *big = malloc(n + 1);
	struct err *e = NULL;
	char *out = NULL;

	memset(big, 'a', n);
	big[n] = '\0';
	assert_int_equal(users_normalize_name(big, &out, &e), -EINVAL);
	assert_true(strlen(e->msg) < 200); /* JH-12 */
	assert_non_null(strstr(e->msg, "1048576 bytes"));
	err_free(&e);
	memset(big, 'a', 65);
	big[65] = '\0';
	assert_int_equal(users_normalize_name(big, &out, &e), -EINVAL);
	err_free(&e);
	big[64] = '\0';
	assert_int_equal(users_normalize_name(big, &out, NULL), 0);
	free(out);
	free(big);
}

static void test_users_crud(void **state)
{
	struct fx *fx = *state;
	struct users_user *u = NULL;
	struct err *e = NULL;
	int64_t id, n;

	assert_int_equal(users_create(fx->db, "alice", false, NULL, 1, &id, &e), -EEXIST);
	assert_int_equal(err_http_status(e), 409);
	err_free(&e);
	assert_int_equal(users_create(fx->db, "Bob", false, NULL, 1, &id, &e), -EINVAL);
	err_free(&e);
	assert_int_equal(users_create(fx->db, "bob", true, "$argon2id$x", 5, &id, NULL), 0);
	assert_int_equal(users_get(fx->db, "bob", &u, NULL), 1);
	assert_true(u->admin);
	assert_string_equal(u->pw_hash, "$argon2id$x");
	assert_string_equal(u->scopes, "");
	users_user_free(u);
	assert_int_equal(users_set_admin(fx->db, id, false, NULL), 1);
	assert_int_equal(users_set_scopes(fx->db, id, "read:users!group=g", NULL), 1);
	assert_int_equal(users_set_scopes(fx->db, id, "root", &e), -EINVAL);
	err_free(&e);
	assert_int_equal(users_set_locked(fx->db, 9999, true, NULL), 0);
	assert_int_equal(users_get_by_id(fx->db, id, &u, NULL), 1);
	assert_false(u->admin);
	assert_string_equal(u->scopes, "read:users!group=g");
	users_user_free(u);
	assert_int_equal(users_count(fx->db, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(users_delete(fx->db, id, NULL), 1);
	assert_int_equal(users_delete(fx->db, id, NULL), 0);
	assert_int_equal(users_get(fx->db, "bob", &u, NULL), 0);
}

static void test_groups(void **state)
{
	struct fx *fx = *state;
	char **v = NULL;

	assert_int_equal(users_group_create(fx->db, "g1", 1, NULL, NULL), 0);
	assert_int_equal(users_group_add(fx->db, "g1", "alice", NULL), 1);
	assert_int_equal(users_group_add(fx->db, "g1", "alice", NULL), 1);
	assert_int_equal(users_group_add(fx->db, "g1", "nobody", NULL), 0);
	assert_int_equal(users_group_add(fx->db, "nogroup", "alice", NULL), 0);
	assert_true(users_in_group_cb(fx->db, "alice", "g1"));
	assert_false(users_in_group_cb(fx->db, "alice", "g2"));
	assert_int_equal(users_groups_of(fx->db, fx->alice, &v, NULL), 0);
	assert_int_equal(xstrv_len(v), 1);
	assert_string_equal(v[0], "g1");
	xstrv_free(v);
	assert_int_equal(users_group_members(fx->db, "g1", &v, NULL), 1);
	assert_string_equal(v[0], "alice");
	xstrv_free(v);
	assert_int_equal(users_group_remove(fx->db, "g1", "alice", NULL), 1);
	assert_false(users_in_group_cb(fx->db, "alice", "g1"));
	assert_int_equal(users_group_delete(fx->db, "g1", NULL), 1);
	assert_int_equal(users_group_exists(fx->db, "g1", NULL), 0);
}

static bool file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	size_t n, cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	bool found;

	assert_non_null(f);
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	found = memmem(buf, len, needle, strlen(needle)) != NULL;
	free(buf);
	return found;
}

static void test_tokens(void **state)
{
	struct fx *fx = *state;
	struct users_token_spec spec = { .user_id = fx->alice, .note = "ci", .scopes = "self" };
	struct users_token *t = NULL, **list = NULL;
	char *tok[3];
	int64_t id[3];
	size_t n;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(users_token_create(fx->db, &fx->key, &spec, 1000, &tok[i], &id[i],
						    NULL), 0);
		assert_int_equal(strlen(tok[i]), USERS_TOKEN_LEN);
		assert_true(users_token_syntax_ok(tok[i], strlen(tok[i])));
	}
	assert_string_not_equal(tok[0], tok[1]);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok[1], 2000, &t, NULL), 1);
	assert_int_equal(t->id, id[1]);
	assert_string_equal(t->scopes, "self");
	assert_memory_equal(t->prefix, tok[1] + 4, 8);
	users_token_free(t);
	/* a wrong secret with a known prefix, and garbage, look the same */
	tok[1][20] = tok[1][20] == 'A' ? 'B' : 'A';
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok[1], 2000, &t, NULL), 0);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, "nbg_x", 2000, &t, NULL), 0);
	assert_int_equal(users_token_list(fx->db, fx->alice, &list, &n, NULL), 0);
	assert_int_equal(n, 3);
	users_token_freev(list, n);
	assert_int_equal(users_token_revoke(fx->db, fx->alice, id[0], NULL), 1);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok[0], 2000, &t, NULL), 0);
	assert_int_equal(users_token_revoke(fx->db, fx->alice + 1, id[2], NULL), 0);
	/* TOK-1: no secret (nor its secret part) is in the database file */
	db_close(fx->db);
	for (int i = 0; i < 3; i++) {
		assert_false(file_contains(fx->path, tok[i]));
		assert_false(file_contains(fx->path, tok[i] + 13));
		free(tok[i]);
	}
	assert_int_equal(db_open(&fx->db, fx->path, NULL), 0);
}

static void test_token_expiry(void **state)
{
	struct fx *fx = *state;
	struct users_token_spec spec = { .user_id = fx->alice, .expires_in_ms = 1000,
					 .max_expires_in_ms = 3600000 };
	struct users_token *t = NULL;
	struct err *e = NULL;
	char *tok = NULL;

	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, 5000, &tok, NULL, NULL), 0);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok, 5999, &t, NULL), 1);
	assert_int_equal(t->expires_at, 6000);
	assert_string_equal(t->scopes, "inherit");
	users_token_free(t);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok, 6000, &t, NULL), 0);
	free(tok);
	spec.expires_in_ms = 3600001;
	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, 0, &tok, NULL, &e), -EINVAL);
	assert_int_equal(err_http_status(e), 400);
	assert_non_null(strstr(e->msg, "3600"));
	err_free(&e);
	spec.expires_in_ms = 0; /* no expiry asked: the cap applies */
	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, 0, &tok, NULL, NULL), 0);
	assert_int_equal(users_token_lookup(fx->db, &fx->key, tok, 1, &t, NULL), 1);
	assert_int_equal(t->expires_at, 3600000);
	users_token_free(t);
	free(tok);
	spec.scopes = "bogus";
	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, 0, &tok, NULL, &e), -EINVAL);
	err_free(&e);
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_token_entropy(void **state)
{
	struct fx *fx = *state;
	enum { N = 2000 };
	char **v = calloc(N, sizeof(*v));

	for (int i = 0; i < N; i++) {
		v[i] = users_token_new();
		assert_true(users_token_syntax_ok(v[i], strlen(v[i])));
	}
	qsort(v, N, sizeof(*v), strcmp_ptr);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(v[i], v[i - 1]);
	for (int i = 0; i < N; i++)
		free(v[i]);
	free(v);
	(void)fx;
}

static void test_sessions(void **state)
{
	struct fx *fx = *state;
	struct users_session s;
	char *sid = NULL, *sid2 = NULL;
	int64_t id;

	assert_int_equal(users_session_create(fx->db, fx->alice, "127.0.0.1", 10000, &sid, &id,
					      NULL), 0);
	assert_int_equal(strlen(sid), USERS_SESSION_ID_LEN);
	assert_int_equal(users_session_lookup(fx->db, sid, 11000, 2000, 5000, &s, NULL), 1);
	assert_int_equal(s.user_id, fx->alice);
	/* idle: 2 s allowed, 3 s of silence kills it */
	assert_int_equal(users_session_lookup(fx->db, sid, 13001, 2000, 5000, &s, NULL), 0);
	assert_int_equal(users_session_lookup(fx->db, sid, 11000, 2000, 5000, &s, NULL), 0);
	free(sid);
	/* absolute: touched every second, still dies after 5 s */
	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, 20000, &sid, &id, NULL), 0);
	for (int64_t t = 21000; t <= 25000; t += 1000) {
		assert_int_equal(users_session_lookup(fx->db, sid, t, 2000, 5000, &s, NULL), 1);
		assert_int_equal(users_session_touch(fx->db, id, t, NULL), 1);
		assert_int_equal(users_session_touch(fx->db, id, t + 10, NULL), 0); /* rate */
	}
	assert_int_equal(users_session_lookup(fx->db, sid, 25001, 2000, 5000, &s, NULL), 0);
	free(sid);
	/* delete, delete all, bad ids */
	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, 0, &sid, &id, NULL), 0);
	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, 0, &sid2, NULL, NULL), 0);
	assert_string_not_equal(sid, sid2);
	assert_int_equal(users_session_delete(fx->db, id, NULL), 1);
	assert_int_equal(users_session_lookup(fx->db, sid, 1, 0, 0, &s, NULL), 0);
	assert_int_equal(users_session_delete_user(fx->db, fx->alice, NULL), 1);
	assert_int_equal(users_session_lookup(fx->db, sid2, 1, 0, 0, &s, NULL), 0);
	assert_int_equal(users_session_lookup(fx->db, "short", 1, 0, 0, &s, NULL), 0);
	db_close(fx->db);
	assert_false(file_contains(fx->path, sid2));
	assert_int_equal(db_open(&fx->db, fx->path, NULL), 0);
	free(sid);
	free(sid2);
}

static void test_setup_codes(void **state)
{
	struct fx *fx = *state;
	char *code = NULL;
	int64_t uid = 0;

	assert_int_equal(users_setup_code_create(fx->db, fx->alice, 0, &code, NULL), 0);
	assert_int_equal(users_setup_code_consume(fx->db, code, 1000, &uid, NULL), 1);
	assert_int_equal(uid, fx->alice);
	assert_int_equal(users_setup_code_consume(fx->db, code, 1000, &uid, NULL), 0); /* once */
	free(code);
	assert_int_equal(users_setup_code_create(fx->db, fx->alice, 0, &code, NULL), 0);
	assert_int_equal(users_setup_code_consume(fx->db, code, USERS_SETUP_CODE_TTL_MS, &uid,
						  NULL), 0);
	free(code);
}

/* Subdomain hand-off codes: single use, bound to kind and host, 60 s. */
static void test_auth_codes(void **state)
{
	struct fx *fx = *state;
	const char *h = "alice.example.org";
	char *code = NULL, *sid = NULL;
	int64_t uid = 0, parent = 0, hub;

	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, 1000, &sid, &hub, NULL), 0);
	free(sid);
	assert_int_equal(users_auth_code_create(fx->db, fx->alice, "handoff", hub, h, 1000, &code,
						NULL), 0);
	assert_int_equal(strlen(code), USERS_SESSION_ID_LEN);
	assert_false(file_contains(fx->path, code));
	assert_int_equal(users_auth_code_consume(fx->db, code, "handoff", "ALICE.example.org",
						 1000 + USERS_AUTH_CODE_TTL_MS - 1, &uid, &parent,
						 NULL), 1);
	assert_int_equal(uid, fx->alice);
	assert_int_equal(parent, hub);
	/* single use */
	assert_int_equal(users_auth_code_consume(fx->db, code, "handoff", h, 1000, &uid, &parent,
						 NULL), 0);
	free(code);
	/* another host, another kind, expired: refused, and burnt all the same */
	const char *bad[][2] = { { "handoff", "bob.example.org" }, { "other", h },
				 { "handoff", "alice.example.org.evil" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(users_auth_code_create(fx->db, fx->alice, "handoff", hub, h, 1000,
							&code, NULL), 0);
		assert_int_equal(users_auth_code_consume(fx->db, code, bad[i][0], bad[i][1], 1000,
							 &uid, &parent, NULL), 0);
		assert_int_equal(users_auth_code_consume(fx->db, code, "handoff", h, 1000, &uid,
							 &parent, NULL), 0);
		free(code);
	}
	assert_int_equal(users_auth_code_create(fx->db, fx->alice, "handoff", hub, h, 1000, &code,
						NULL), 0);
	assert_int_equal(users_auth_code_consume(fx->db, code, "handoff", h,
						 1000 + USERS_AUTH_CODE_TTL_MS, &uid, &parent, NULL),
			 0);
	free(code);
	assert_int_equal(users_auth_code_consume(fx->db, "short", "handoff", h, 1000, &uid, &parent,
						 NULL), 0);
	assert_true(users_auth_code_create(fx->db, fx->alice, "handoff", hub, "Bad Host", 1000,
					   &code, NULL) < 0);
	/* purge drops expired codes; logout of the hub session drops its codes */
	assert_int_equal(users_auth_code_create(fx->db, fx->alice, "handoff", hub, h, 1000, &code,
						NULL), 0);
	free(code);
	assert_int_equal(users_session_purge(fx->db, 1000 + USERS_AUTH_CODE_TTL_MS, 0, 0, NULL), 1);
	assert_int_equal(users_auth_code_create(fx->db, fx->alice, "handoff", hub, h, 1000, &code,
						NULL), 0);
	assert_int_equal(users_session_delete(fx->db, hub, NULL), 1);
	assert_int_equal(users_auth_code_consume(fx->db, code, "handoff", h, 1000, &uid, &parent,
						 NULL), 0);
	free(code);
}

/* Host sessions hang off their hub session (JH-11). */
static void test_host_sessions(void **state)
{
	struct fx *fx = *state;
	const char *h = "alice.example.org";
	struct users_session s;
	char *hsid = NULL, *sid = NULL, *sid2 = NULL;
	int64_t hub, kid, kid2, *ids = NULL;
	size_t n = 0;

	assert_int_equal(users_session_create(fx->db, fx->alice, NULL, 10000, &hsid, &hub, NULL), 0);
	assert_int_equal(users_session_create_child(fx->db, hub, h, "10.0.0.1", 12000, 5000, 60000,
						    &sid, &kid, NULL), 1);
	assert_int_equal(users_session_lookup(fx->db, sid, 12000, 5000, 60000, &s, NULL), 1);
	assert_int_equal(s.user_id, fx->alice);
	assert_int_equal(s.parent_id, hub);
	assert_string_equal(s.host, h);
	assert_int_equal(s.created, 10000); /* the parent's absolute limit */
	assert_int_equal(users_session_lookup(fx->db, hsid, 12000, 5000, 60000, &s, NULL), 1);
	assert_int_equal(s.parent_id, 0);
	assert_string_equal(s.host, "");
	/* a host session's activity keeps the hub session alive */
	assert_int_equal(users_session_touch(fx->db, kid, 14000, NULL), 2);
	assert_int_equal(users_session_lookup(fx->db, hsid, 18500, 5000, 60000, &s, NULL), 1);
	/* no child of a child, of a missing, idle or too old parent */
	assert_int_equal(users_session_create_child(fx->db, kid, h, NULL, 18500, 5000, 60000, &sid2,
						    NULL, NULL), 0);
	assert_int_equal(users_session_create_child(fx->db, 999, h, NULL, 18500, 5000, 60000, &sid2,
						    NULL, NULL), 0);
	assert_int_equal(users_session_create_child(fx->db, hub, h, NULL, 24000, 5000, 60000, &sid2,
						    NULL, NULL), 0);
	assert_int_equal(users_session_create_child(fx->db, hub, h, NULL, 18600, 0, 8000, &sid2,
						    NULL, NULL), 0);
	assert_true(users_session_create_child(fx->db, hub, "a/b", NULL, 18500, 5000, 60000, &sid2,
					       NULL, NULL) < 0);
	assert_null(sid2);
	assert_int_equal(users_session_create_child(fx->db, hub, h, NULL, 18500, 5000, 60000, &sid2,
						    &kid2, NULL), 1);
	assert_int_equal(users_session_children(fx->db, hub, &ids, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], kid);
	assert_int_equal(ids[1], kid2);
	free(ids);
	assert_int_equal(users_session_children(fx->db, kid, &ids, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(ids);
	/* logout of the hub session takes its host sessions with it */
	assert_int_equal(users_session_delete(fx->db, hub, NULL), 1);
	assert_int_equal(users_session_lookup(fx->db, sid, 18500, 0, 0, &s, NULL), 0);
	assert_int_equal(users_session_lookup(fx->db, sid2, 18500, 0, 0, &s, NULL), 0);
	free(hsid);
	free(sid);
	free(sid2);
}

static void test_key_file(void **state)
{
	struct fx *fx = *state;
	struct users_key k2;
	struct err *e = NULL;
	char *p = xasprintf("%s/secret.key", fx->dir);
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(users_key_load(fx->dir, &k2, NULL), 0);
	assert_memory_equal(k2.k, fx->key.k, USERS_KEY_LEN);
	chmod(p, 0644);
	assert_int_equal(users_key_load(fx->dir, &k2, &e), -EINVAL);
	err_free(&e);
	free(p);
}

/* Reads tokens.last_activity straight from the table (-1 = NULL). */
static int64_t token_last_activity(struct fx *fx, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -2;

	assert_int_equal(sqlite3_prepare_v2(db_handle(fx->db),
					    "SELECT last_activity FROM tokens WHERE id = ?", -1, &st,
					    NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void token_forget_activity(struct fx *fx, int64_t id)
{
	char *sql = xasprintf("UPDATE tokens SET last_activity = NULL WHERE id = %lld",
			      (long long)id);

	assert_int_equal(db_exec(fx->db, sql, NULL), 0);
	free(sql);
}

/*
 * users_token_touch's in-memory throttle: within 5 s of a touch of the same
 * token no UPDATE runs at all. To see the memo and not the UPDATE's own 60 s
 * condition, last_activity is reset to NULL behind the memo's back (the SQL
 * condition alone would then write).
 */
static void test_token_touch_throttle(void **state)
{
	struct fx *fx = *state;
	struct users_token_spec spec = { .user_id = fx->alice };
	/* far from the small times other tests use: the memo is static */
	const int64_t t = 4000000000000;
	int64_t id, id2;
	char *tok = NULL, *sql;

	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, t - 1000, &tok, &id, NULL), 0);
	free(tok);
	assert_int_equal(users_token_create(fx->db, &fx->key, &spec, t - 1000, &tok, &id2, NULL), 0);
	free(tok);
	/* the memo is direct-mapped by id: give id2 the same slot as id */
	sql = xasprintf("UPDATE tokens SET id = %lld WHERE id = %lld", (long long)(id + 256),
			(long long)id2);
	assert_int_equal(db_exec(fx->db, sql, NULL), 0);
	free(sql);
	id2 = id + 256;
	assert_int_equal(token_last_activity(fx, id), -1);

	assert_true(users_token_touch(fx->db, id, t, NULL) >= 0);
	assert_true(token_last_activity(fx, id) == t);
	token_forget_activity(fx, id);
	/* inside the window: no write, although the row would accept one */
	assert_true(users_token_touch(fx->db, id, t + 1000, NULL) >= 0);
	assert_int_equal(token_last_activity(fx, id), -1);
	assert_true(users_token_touch(fx->db, id, t + 4999, NULL) >= 0);
	assert_int_equal(token_last_activity(fx, id), -1);
	/* the memo is per token: another token (same memo slot) writes */
	assert_true(users_token_touch(fx->db, id2, t + 1000, NULL) >= 0);
	assert_true(token_last_activity(fx, id2) == t + 1000);
	/* 5 s after the remembered touch: written again */
	assert_true(users_token_touch(fx->db, id, t + 5000, NULL) >= 0);
	assert_true(token_last_activity(fx, id) == t + 5000);
	/* a new window starts at that touch */
	token_forget_activity(fx, id);
	assert_true(users_token_touch(fx->db, id, t + 9999, NULL) >= 0);
	assert_int_equal(token_last_activity(fx, id), -1);
	assert_true(users_token_touch(fx->db, id, t + 11000, NULL) >= 0);
	assert_true(token_last_activity(fx, id) == t + 11000);
	/* past the memo window the UPDATE's 60 s condition still rules */
	assert_true(users_token_touch(fx->db, id, t + 17000, NULL) >= 0);
	assert_true(token_last_activity(fx, id) == t + 11000);
	assert_true(users_token_touch(fx->db, id, t + 71001, NULL) >= 0);
	assert_true(token_last_activity(fx, id) == t + 71001);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_name),
		cmocka_unit_test(test_normalize_long_name_message),
		cmocka_unit_test_setup_teardown(test_users_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_entropy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_touch_throttle, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
