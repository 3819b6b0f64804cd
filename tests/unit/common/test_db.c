/* Unit tests for common/db.c and db_schema.c: migrations, reopen, FKs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/db.c"
#include "common/db_schema.c"

#include <ftw.h>
#include <stdio.h>

struct fixture {
	char dir[64];
	char *path;
};

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nbgate-test-db-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->path = xasprintf("%s/state.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx->path);
	free(fx);
	return 0;
}

static int64_t one_int(struct db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(db_prepare(db, &st, sql, NULL), 0);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	db_release_stmt(st);
	return v;
}

static void test_db_open_migrates(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	struct err *e = NULL;
	struct stat st;

	assert_int_equal(db_open(&db, fx->path, &e), 0);
	assert_null(e);
	assert_true(db__migration_count >= 1);
	assert_int_equal(db_user_version(db), db__migration_count);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(one_int(db, "PRAGMA foreign_keys"), 1);
	/* every table of migration 1 exists */
	assert_int_equal(one_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table'"
				 " AND name IN ('users','groups','group_members','tokens',"
				 "'sessions','servers','setup_codes','audit')"), 8);
	db_close(db);
}

static void test_db_wal(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_prepare(db, &st, "PRAGMA journal_mode", NULL), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	db_release_stmt(st);
	db_close(db);
}

static void test_db_reopen_idempotent(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_exec(db, "INSERT INTO users (name, created) VALUES ('alice', 1)",
				 NULL), 0);
	db_close(db);
	db = NULL;
	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_user_version(db), db__migration_count);
	assert_int_equal(one_int(db, "SELECT count(*) FROM users WHERE name = 'alice'"), 1);
	db_close(db);
}

static void test_db_newer_schema_refused(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	struct err *e = NULL;
	char *sql;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	sql = xasprintf("PRAGMA user_version = %d", db__migration_count + 1);
	assert_int_equal(db_exec(db, sql, NULL), 0);
	free(sql);
	db_close(db);
	db = NULL;
	assert_true(db_open(&db, fx->path, &e) < 0);
	assert_null(db);
	assert_non_null(strstr(e->msg, "newer"));
	err_free(&e);
}

static void test_db_foreign_keys_cascade(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_exec(db,
		"INSERT INTO users (id, name, created) VALUES (1, 'alice', 1);"
		"INSERT INTO groups (id, name, created) VALUES (1, 'g', 1);"
		"INSERT INTO group_members VALUES (1, 1);"
		"INSERT INTO tokens (prefix, hash, user_id, scopes, created)"
		" VALUES ('abc', x'00', 1, '', 1);"
		"INSERT INTO sessions (hash, user_id, created, last_seen) VALUES (x'01', 1, 1, 1);"
		"INSERT INTO servers (user_id, backend) VALUES (1, 'process');"
		"INSERT INTO setup_codes VALUES (x'02', 1, 5);", NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM tokens"), 1);
	assert_int_equal(db_exec(db, "DELETE FROM users WHERE id = 1", NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM tokens"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM sessions"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM servers"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM group_members"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM setup_codes"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM groups"), 1);
	db_close(db);
}

/* Migration 2: host sessions go with their hub session, codes with the
 * session that minted them (JH-11). */
static void test_db_session_parent_cascade(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_true(db__migration_count >= 2);
	assert_int_equal(db_exec(db,
		"INSERT INTO users (id, name, created) VALUES (1, 'alice', 1);"
		"INSERT INTO sessions (id, hash, user_id, created, last_seen)"
		" VALUES (1, x'01', 1, 1, 1), (9, x'09', 1, 1, 1);"
		"INSERT INTO sessions (id, hash, user_id, created, last_seen, parent_id, host)"
		" VALUES (2, x'02', 1, 1, 1, 1, 'alice.example.org'),"
		" (3, x'03', 1, 1, 1, 1, 'alice.example.org');"
		"INSERT INTO auth_codes VALUES (x'04', 1, 'handoff', 1, 'alice.example.org', 5);"
		"INSERT INTO auth_codes VALUES (x'05', 1, 'handoff', 9, 'alice.example.org', 5);",
		NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM sessions"), 4);
	assert_int_equal(db_exec(db, "DELETE FROM sessions WHERE id = 1", NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM sessions"), 1);
	assert_int_equal(one_int(db, "SELECT count(*) FROM auth_codes"), 1);
	/* a parent that does not exist is refused */
	assert_true(db_exec(db, "INSERT INTO sessions (hash, user_id, created, last_seen,"
			    " parent_id) VALUES (x'06', 1, 1, 1, 77)", NULL) < 0);
	assert_int_equal(db_exec(db, "DELETE FROM users WHERE id = 1", NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM auth_codes"), 0);
	db_close(db);
}

static void test_db_foreign_key_enforced(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	struct err *e = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_true(db_exec(db, "INSERT INTO sessions (hash, user_id, created, last_seen)"
			    " VALUES (x'01', 42, 1, 1)", &e) < 0);
	assert_non_null(strstr(e->msg, "FOREIGN KEY"));
	err_free(&e);
	db_close(db);
}

static void test_db_transaction_rollback(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_begin(db, NULL), 0);
	assert_int_equal(db_exec(db, "INSERT INTO users (name, created) VALUES ('bob', 1)", NULL), 0);
	assert_int_equal(db_rollback(db), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM users"), 0);
	assert_int_equal(db_rollback(db), 0); /* no transaction: harmless */
	assert_int_equal(db_begin(db, NULL), 0);
	assert_int_equal(db_exec(db, "INSERT INTO users (name, created) VALUES ('bob', 1)", NULL), 0);
	assert_int_equal(db_commit(db, NULL), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM users"), 1);
	db_close(db);
}

static void test_db_audit(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_audit(db, "alice", "user.create", "bob", NULL), 0);
	assert_int_equal(db_audit(db, NULL, "login.fail", NULL, "{\"ip\":\"::1\"}"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM audit WHERE ts > 0"), 2);
	assert_int_equal(one_int(db, "SELECT count(*) FROM audit WHERE actor IS NULL"), 1);
	db_close(db);
}

static void test_db_prepare_error(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	struct err *e = NULL;
	sqlite3_stmt *st = (sqlite3_stmt *)1;

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_true(db_prepare(db, &st, "SELECT nope FROM nowhere", &e) < 0);
	assert_null(st);
	assert_non_null(strstr(e->msg, "nowhere"));
	err_free(&e);
	db_close(db);
}

/* The statement cache hands the same statement back once released, a fresh
 * one while it is in use, and resets bindings and cursor on release. */
static void test_db_stmt_cache(void **state)
{
	struct fixture *fx = *state;
	struct db *db = NULL;
	sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;
	static const char sql[] = "SELECT ?1";

	assert_int_equal(db_open(&db, fx->path, NULL), 0);
	assert_int_equal(db_prepare(db, &a, sql, NULL), 0);
	sqlite3_bind_int(a, 1, 7);
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	assert_int_equal(db_prepare(db, &b, sql, NULL), 0);
	assert_ptr_not_equal(a, b); /* nested use: a fresh statement */
	db_release_stmt(b);
	db_release_stmt(a);
	assert_int_equal(db_prepare(db, &c, "SELECT ?1", NULL), 0);
	assert_ptr_equal(a, c); /* same text, another address: cached one */
	assert_int_equal(sqlite3_step(c), SQLITE_ROW);
	assert_int_equal(sqlite3_column_type(c, 0), SQLITE_NULL); /* bindings cleared */
	db_release_stmt(c);
	db_close(db);
}

static void test_db_open_bad_dir(void **state)
{
	struct db *db = NULL;
	struct err *e = NULL;

	assert_true(db_open(&db, "/nonexistent-dir/x.db", &e) < 0);
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_db_open_migrates),
		T(test_db_wal),
		T(test_db_reopen_idempotent),
		T(test_db_newer_schema_refused),
		T(test_db_foreign_keys_cascade),
		T(test_db_session_parent_cascade),
		T(test_db_foreign_key_enforced),
		T(test_db_transaction_rollback),
		T(test_db_audit),
		T(test_db_prepare_error),
		T(test_db_stmt_cache),
		T(test_db_open_bad_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
