/*
 * db_schema: the migrations, applied in order by db_open(). Never edit a
 * migration that has shipped; append a new one. Times are INTEGER ms since
 * the epoch. Secrets (tokens, sessions, setup codes) are stored only as
 * hashes.
 */
#include "common/db.h"

static const char migration_1[] =
	"CREATE TABLE users ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT UNIQUE NOT NULL,"
	" admin INTEGER NOT NULL DEFAULT 0,"
	" pw_hash TEXT,"
	" scopes TEXT NOT NULL DEFAULT '',"
	" locked INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" last_activity INTEGER);"
	"CREATE TABLE groups ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT UNIQUE NOT NULL,"
	" created INTEGER NOT NULL,"
	" properties TEXT NOT NULL DEFAULT '{}');"
	"CREATE TABLE group_members ("
	" group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" PRIMARY KEY (group_id, user_id));"
	"CREATE INDEX group_members_user ON group_members(user_id);"
	"CREATE TABLE tokens ("
	" id INTEGER PRIMARY KEY,"
	" prefix TEXT NOT NULL,"
	" hash BLOB NOT NULL,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" kind TEXT NOT NULL DEFAULT 'api',"
	" server_name TEXT,"
	" note TEXT,"
	" scopes TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" last_activity INTEGER);"
	"CREATE INDEX tokens_prefix ON tokens(prefix);"
	"CREATE INDEX tokens_user ON tokens(user_id);"
	"CREATE TABLE sessions ("
	" id INTEGER PRIMARY KEY,"
	" hash BLOB UNIQUE NOT NULL,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" created INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL,"
	" client_ip TEXT);"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE servers ("
	" id INTEGER PRIMARY KEY,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL DEFAULT '',"
	" state TEXT NOT NULL DEFAULT 'stopped',"
	" backend TEXT NOT NULL,"
	" upstream TEXT,"
	" pid INTEGER,"
	" pid_start INTEGER,"
	" user_options TEXT NOT NULL DEFAULT '{}',"
	" started INTEGER,"
	" last_activity INTEGER,"
	" message TEXT,"
	" UNIQUE (user_id, name));"
	"CREATE TABLE setup_codes ("
	" hash BLOB PRIMARY KEY,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" expires_at INTEGER NOT NULL);"
	"CREATE INDEX setup_codes_user ON setup_codes(user_id);"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" ts INTEGER NOT NULL,"
	" actor TEXT,"
	" action TEXT NOT NULL,"
	" target TEXT,"
	" detail TEXT);"
	"CREATE INDEX audit_ts ON audit(ts);";

const char *const db__migrations[] = {
	migration_1,
};

const int db__migration_count =
	(int)(sizeof(db__migrations) / sizeof(db__migrations[0]));
