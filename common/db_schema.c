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

/*
 * Subdomain-mode login hand-off (JH-3, JH-11): one-time codes that carry a
 * hub session to a user's host, and per-host sessions that hang off the
 * hub session they came from (parent_id), so that deleting the hub session
 * (logout, expiry) deletes them too. host is the user host a session is
 * valid on (NULL = a hub session). SQLite accepts REFERENCES in ADD COLUMN
 * because the default is NULL.
 */
static const char migration_2[] =
	"CREATE TABLE auth_codes ("
	" hash BLOB PRIMARY KEY,"
	" user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	" kind TEXT NOT NULL,"
	" parent_session INTEGER REFERENCES sessions(id) ON DELETE CASCADE,"
	" host TEXT NOT NULL,"
	" expires_at INTEGER NOT NULL);"
	"CREATE INDEX auth_codes_user ON auth_codes(user_id);"
	"CREATE INDEX auth_codes_parent ON auth_codes(parent_session);"
	"ALTER TABLE sessions ADD COLUMN parent_id INTEGER"
	" REFERENCES sessions(id) ON DELETE CASCADE;"
	"ALTER TABLE sessions ADD COLUMN host TEXT;"
	"CREATE INDEX sessions_parent ON sessions(parent_id);";

/*
 * Sandboxed local servers (issue 3): exclusive GPU allocations, one row
 * per device node held by a server (freed when it stops or fails, kept
 * across a gateway restart so adoption re-derives them), and the launch
 * profile / server type of each server so that quotas and routes survive
 * a restart.
 */
static const char migration_3[] =
	"CREATE TABLE gpu_allocations ("
	" device TEXT PRIMARY KEY,"
	" server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,"
	" gpu_index INTEGER NOT NULL,"
	" allocated INTEGER NOT NULL);"
	"CREATE INDEX gpu_allocations_server ON gpu_allocations(server_id);"
	"ALTER TABLE servers ADD COLUMN profile TEXT;"
	"ALTER TABLE servers ADD COLUMN server_type TEXT;"
	"ALTER TABLE servers ADD COLUMN strip_prefix INTEGER NOT NULL DEFAULT 0;";

/*
 * Checkpoints and culling (issue 4): one row per checkpoint of a server
 * (CRIU process images or a committed image layer), tied to the image and
 * profile it was taken with; and the source of the last activity so that
 * the API and the home page can say why a server counts as active.
 * state: 'writing' while the dump runs (a row left so after a crash is
 * garbage), 'ready', 'restored' (resumed from at least once), 'broken'
 * (a restore from it failed).
 */
static const char migration_4[] =
	"CREATE TABLE checkpoints ("
	" id INTEGER PRIMARY KEY,"
	" server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,"
	" mode TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" path TEXT NOT NULL,"
	" size_bytes INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" image TEXT,"
	" profile TEXT,"
	" reason TEXT,"
	" message TEXT);"
	"CREATE INDEX checkpoints_server ON checkpoints(server_id);"
	"ALTER TABLE servers ADD COLUMN activity_source TEXT;";

const char *const db__migrations[] = {
	migration_1,
	migration_2,
	migration_3,
	migration_4,
};

const int db__migration_count =
	(int)(sizeof(db__migrations) / sizeof(db__migrations[0]));
