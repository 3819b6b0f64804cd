#define LOG_PREFIX "db: "
#include "common/db.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

struct db {
	sqlite3 *h;
};

sqlite3 *db_handle(struct db *db)
{
	return db->h;
}

const char *db_errmsg(struct db *db)
{
	return sqlite3_errmsg(db->h);
}

int db_exec(struct db *db, const char *sql, struct err **err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);
	int r = 0;

	if (rc != SQLITE_OK) {
		r = err_set(err, (rc & 0xff) == SQLITE_BUSY ? EBUSY : EIO, "sqlite: %s",
			    msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return r;
}

/*
 * The statement cache: one small process-wide table, so that releasing a
 * statement needs only the statement (sqlite 3.40 has no per-connection
 * client data to find our struct db from it). Guarded by a mutex because
 * worker threads may open their own connections.
 */
#define DB_STMT_CACHE_MAX 128

struct db_cached_stmt {
	sqlite3 *h;
	const char *sql;
	sqlite3_stmt *st;
	bool busy;
};

static struct db_cached_stmt db_cache[DB_STMT_CACHE_MAX];
static size_t db_ncache;
static pthread_mutex_t db_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Takes a free cached statement for (h, sql), or NULL. Lock held. */
static sqlite3_stmt *db_cache_take(sqlite3 *h, const char *sql, bool *full)
{
	for (size_t i = 0; i < db_ncache; i++) {
		struct db_cached_stmt *c = &db_cache[i];

		/* the text, not just the address: a freed dynamic string's
		 * address may come back holding other SQL */
		if (c->h == h && !c->busy &&
		    strcmp(sqlite3_sql(c->st), sql) == 0) {
			c->busy = true;
			return c->st;
		}
	}
	*full = db_ncache == DB_STMT_CACHE_MAX;
	return NULL;
}

int db_prepare(struct db *db, sqlite3_stmt **out, const char *sql,
	       struct err **err)
{
	bool full = false;
	int rc;

	pthread_mutex_lock(&db_cache_lock);
	*out = db_cache_take(db->h, sql, &full);
	if (*out) {
		pthread_mutex_unlock(&db_cache_lock);
		return 0;
	}
	rc = sqlite3_prepare_v3(db->h, sql, -1, full ? 0 : SQLITE_PREPARE_PERSISTENT, out,
				NULL);
	if (rc != SQLITE_OK) {
		pthread_mutex_unlock(&db_cache_lock);
		*out = NULL;
		return err_set(err, EIO, "sqlite prepare: %s", sqlite3_errmsg(db->h));
	}
	if (!full)
		db_cache[db_ncache++] = (struct db_cached_stmt){ db->h, sql, *out, true };
	pthread_mutex_unlock(&db_cache_lock);
	return 0;
}

void db_release_stmt(sqlite3_stmt *st)
{
	pthread_mutex_lock(&db_cache_lock);
	for (size_t i = 0; i < db_ncache; i++) {
		if (db_cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			db_cache[i].busy = false;
			pthread_mutex_unlock(&db_cache_lock);
			return;
		}
	}
	pthread_mutex_unlock(&db_cache_lock);
	sqlite3_finalize(st);
}

/* Finalizes and forgets every cached statement of h. */
static void db_cache_drop(sqlite3 *h)
{
	size_t o = 0;

	pthread_mutex_lock(&db_cache_lock);
	for (size_t i = 0; i < db_ncache; i++) {
		if (db_cache[i].h == h)
			sqlite3_finalize(db_cache[i].st);
		else
			db_cache[o++] = db_cache[i];
	}
	db_ncache = o;
	pthread_mutex_unlock(&db_cache_lock);
}

int db_begin(struct db *db, struct err **err)
{
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

int db_commit(struct db *db, struct err **err)
{
	return db_exec(db, "COMMIT", err);
}

int db_rollback(struct db *db)
{
	/* No transaction open is fine: rollback is for error paths. */
	if (sqlite3_get_autocommit(db->h))
		return 0;
	return sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK
		       ? 0
		       : -EIO;
}

int db_user_version(struct db *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies migration i (version i -> i + 1) atomically. */
static int db_migrate_one(struct db *db, int i, struct err **err)
{
	char *ver;
	int r;

	if (db_begin(db, err) < 0)
		return -EIO;
	r = db_exec(db, db__migrations[i], err);
	if (r >= 0) {
		/* PRAGMA takes no bound parameters; i is our own integer. */
		ver = xasprintf("PRAGMA user_version = %d", i + 1);
		r = db_exec(db, ver, err);
		free(ver);
	}
	if (r >= 0)
		r = db_commit(db, err);
	if (r < 0) {
		db_rollback(db);
		return err_wrap(err, "migration %d", i + 1);
	}
	return 0;
}

static int db_migrate(struct db *db, struct err **err)
{
	int v = db_user_version(db);

	if (v < 0)
		return err_set(err, EIO, "read schema version: %s", db_errmsg(db));
	if (v > db__migration_count)
		return err_set(err, EPROTO,
			       "schema version %d is newer than this nbgate (%d)",
			       v, db__migration_count);
	for (int i = v; i < db__migration_count; i++)
		if (db_migrate_one(db, i, err) < 0)
			return -EIO;
	return 0;
}

/* Creates path 0600 before sqlite does, so it never exists with umask perms. */
static int db_create_file(const char *path, struct err **err)
{
	int fd;

	if (!strcmp(path, ":memory:") || !*path)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		  0600);
	if (fd < 0)
		return err_set_errno(err, "open '%s'", path);
	close(fd);
	return 0;
}

static int db_configure(struct db *db, struct err **err)
{
	sqlite3_busy_timeout(db->h, 5000);
	sqlite3_extended_result_codes(db->h, 1);
	if (db_exec(db, "PRAGMA foreign_keys = ON", err) < 0 ||
	    db_exec(db, "PRAGMA journal_mode = WAL", err) < 0 ||
	    db_exec(db, "PRAGMA synchronous = NORMAL", err) < 0)
		return -EIO;
	return 0;
}

int db_open(struct db **out, const char *path, struct err **err)
{
	struct db *db;
	int rc;

	if (db_create_file(path, err) < 0)
		return -EIO;
	db = xcalloc(1, sizeof(*db));
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		err_set(err, EIO, "open database '%s': %s", path,
			db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		db_close(db);
		return -EIO;
	}
	if (db_configure(db, err) < 0 || db_migrate(db, err) < 0) {
		db_close(db);
		return err_wrap(err, "database '%s'", path);
	}
	*out = db;
	return 0;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	db_cache_drop(db->h);
	/* close_v2 defers until forgotten statements are finalized. */
	sqlite3_close_v2(db->h);
	free(db);
}

int db_audit(struct db *db, const char *actor, const char *action,
	     const char *target, const char *detail)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db->h,
				"INSERT INTO audit (ts, actor, action, target, detail)"
				" VALUES (?, ?, ?, ?, ?)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, time_now_ms());
		sqlite3_bind_text(st, 2, actor, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, action, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, target, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 5, detail, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warn("audit '%s' not recorded: %s", action, sqlite3_errmsg(db->h));
		return -EIO;
	}
	return 0;
}
