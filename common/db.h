/*
 * db: the SQLite state database (WAL) and its versioned schema.
 *
 * db_open() creates the file (mode 0600) if needed, enables WAL,
 * foreign_keys and a 5 s busy timeout, and applies every pending migration
 * from common/db_schema.c, each in its own transaction, recording its
 * number in PRAGMA user_version. A database from a newer nbgate (user
 * version above the known count) is refused.
 *
 * Times are INTEGER milliseconds since the epoch (time_now_ms()).
 *
 * Threading: a struct db is used by one thread at a time (the event loop,
 * or a worker that opened its own connection). SQLite is in serialized
 * mode anyway, but statements and transactions must not interleave.
 */
#ifndef NBGATE_COMMON_DB_H
#define NBGATE_COMMON_DB_H

#include <sqlite3.h>

struct err;
struct db;

/* Migration table (common/db_schema.c): db__migrations[i] moves the schema
 * from version i to version i + 1. */
extern const char *const db__migrations[];
extern const int db__migration_count;

/* Opens (creating) path; *out is owned, free with db_close(). ":memory:" works. */
int db_open(struct db **out, const char *path, struct err **err);

/* Closes the connection (finalizing nothing: finalize your statements). NULL ok. */
void db_close(struct db *db);

/* The raw handle, borrowed, valid until db_close(). */
sqlite3 *db_handle(struct db *db);

/* Runs one or more SQL statements without results. EIO with sqlite's message. */
int db_exec(struct db *db, const char *sql, struct err **err);

/*
 * Prepares one statement; give it back with db_release_stmt() (the
 * cleanup_stmt attribute does that), never sqlite3_finalize().
 *
 * Statements are cached per database by their SQL text: the gateway runs the same few statements on every request, and preparing
 * them each time cost more than the queries themselves (bench/proxy profile).
 * A cached statement already in use (nested use of the same SQL) is
 * prepared afresh and finalized on release.
 */
int db_prepare(struct db *db, sqlite3_stmt **out, const char *sql,
	       struct err **err);
/* Resets a cached statement for reuse, or finalizes an uncached one. */
void db_release_stmt(sqlite3_stmt *st);

/* BEGIN IMMEDIATE / COMMIT. */
int db_begin(struct db *db, struct err **err);
int db_commit(struct db *db, struct err **err);
/* ROLLBACK, best effort (used on error paths): returns 0 or < 0, no err. */
int db_rollback(struct db *db);

/* PRAGMA user_version (the schema version), or -1 on error. */
int db_user_version(struct db *db);

/* Last error message from sqlite (borrowed, valid until the next call). */
const char *db_errmsg(struct db *db);

/*
 * Appends an audit row (ts = now). Best effort: failures are logged at
 * warn level and otherwise ignored; returns 0 or < 0. Any argument but
 * action may be NULL. detail should be JSON text or plain text, never a
 * secret.
 */
int db_audit(struct db *db, const char *actor, const char *action,
	     const char *target, const char *detail);

/* cleanup attribute for prepared statements: db_release_stmt(). */
static inline void db_cleanup_stmtp(sqlite3_stmt **s)
{
	if (*s)
		db_release_stmt(*s);
}
#define cleanup_stmt __attribute__((cleanup(db_cleanup_stmtp)))

#endif
