/*
 * Unit tests for spawner/ckpt.c and spawner/ckpt_catalog.c: checkpoint
 * and resume on the lifecycle state machine through a fake backend
 * (spawner_new_ops), with an on-disk temporary database and checkpoint
 * dir. No fork: the fake's ops only record calls and write small files;
 * completions are driven by the test through spawner_checkpoint_done()
 * and spawner_restore_done(), as a backend would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spawner/ckpt.c"
#include "spawner/ckpt_catalog.c"
#include "common/db.h"

/* ---- a fake backend ---- */

struct fake {
	int starts, stops, ckpts, restores, forgets;
	int ckpt_rc[SPAWNER_CKPT_MODE_COUNT]; /* what checkpoint returns per mode */
	int restore_rc;
	int64_t size;                 /* checkpoint_size; -1 unknown */
	int64_t last_id;              /* row of the last checkpoint/restore call */
	enum spawner_ckpt_mode last_mode;
	const char *last_state;       /* server state seen by the last op */
	pid_t alive_pid;              /* adopt succeeds for this pid only */
	bool write_files;             /* criu ops write a file into ck->path */
};
static struct fake fake;

static int fake_init(struct spawner *sp, struct err **err)
{
	return 0;
}

static int fake_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	fake.starts++;
	srv->pid = 4000 + fake.starts;
	free(srv->upstream);
	srv->upstream = xstrdup("unix:/fake.sock");
	/* Like local.c: the chosen profile is recorded by the backend. */
	free(srv->profile);
	srv->profile = xstrdup("small");
	return spawner__persist(sp, srv, err);
}

static int fake_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	fake.stops++;
	return spawner_transition(sp, srv, SPAWNER_STOPPED, "fake stopped", err);
}

static int fake_adopt(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	if (srv->pid != fake.alive_pid)
		return err_set(err, ESRCH, "fake: pid %d gone", (int)srv->pid);
	return 0;
}

static void write_ckpt_files(const char *path)
{
	char *slug_dir = xstrdup(path), *file;
	int fd;

	*strrchr(slug_dir, '/') = '\0';
	(void)mkdir(slug_dir, 0700);
	assert_int_equal(mkdir(path, 0700), 0);
	file = xasprintf("%s/pages-1.img", path);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	free(file);
	free(slug_dir);
}

static int fake_checkpoint(struct spawner *sp, struct spawner_server *srv,
			   const struct spawner_checkpoint *ck, struct err **err)
{
	fake.ckpts++;
	fake.last_id = ck->id;
	fake.last_mode = ck->mode;
	fake.last_state = spawner_state_name(srv->state);
	if (fake.ckpt_rc[ck->mode] < 0)
		return err_set(err, -fake.ckpt_rc[ck->mode], "fake %s refused",
			       spawner_ckpt_mode_name(ck->mode));
	if (fake.write_files && ck->mode == SPAWNER_CKPT_CRIU)
		write_ckpt_files(ck->path);
	return 0;
}

static int fake_restore(struct spawner *sp, struct spawner_server *srv,
			const struct spawner_checkpoint *ck, struct err **err)
{
	fake.restores++;
	fake.last_id = ck->id;
	fake.last_mode = ck->mode;
	fake.last_state = spawner_state_name(srv->state);
	if (fake.restore_rc < 0)
		return err_set(err, -fake.restore_rc, "fake restore refused");
	return 0;
}

static int64_t fake_size(struct spawner *sp, struct spawner_server *srv)
{
	return fake.size;
}

static const struct spawner_ops fake_ops = {
	.name = "fake",
	.caps = SPAWNER_CAP_CHECKPOINT,
	.size = sizeof(struct spawner),
	.init = fake_init,
	.start = fake_start,
	.stop = fake_stop,
	.adopt = fake_adopt,
	.checkpoint = fake_checkpoint,
	.restore = fake_restore,
	.checkpoint_size = fake_size,
};

/* The same without checkpoint ops (process backend-like). */
static const struct spawner_ops plain_ops = {
	.name = "fake",
	.size = sizeof(struct spawner),
	.init = fake_init,
	.start = fake_start,
	.stop = fake_stop,
};

/* ---- fixture ---- */

static const struct spawner_profile profiles[] = {
	{ .name = "small", .image = "jupyterlab" },
};
static const char *const images[] = { "jupyterlab", "vscode", NULL };

#define MAX_EVENTS 128
struct fixture {
	char dir[64];
	char *ckpt_dir;
	char *db_path;
	struct db *db;
	struct spawner *sp;
	int nev;
	struct spawner_event ev[MAX_EVENTS];
	char *msg[MAX_EVENTS];
};

static void on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	struct fixture *f = arg;

	assert_true(f->nev < MAX_EVENTS);
	f->ev[f->nev] = *ev;
	f->msg[f->nev] = ev->message ? xstrdup(ev->message) : NULL;
	f->nev++;
}

static struct spawner_cfg fixture_cfg(struct fixture *f)
{
	return (struct spawner_cfg){
		.db = f->db, .state_dir = f->dir,
		.profiles = profiles, .n_profiles = 1, .images = images,
		.on_event = on_event, .event_arg = f,
	};
}

static struct spawner_ckpt_cfg ckpt_cfg(struct fixture *f)
{
	return (struct spawner_ckpt_cfg){
		.dir = f->ckpt_dir, .min_free_bytes = 1, .criu_usable = true,
	};
}

static struct spawner *new_spawner(struct fixture *f, const struct spawner_ops *ops)
{
	struct spawner_cfg cfg = fixture_cfg(f);
	struct spawner_ckpt_cfg cc = ckpt_cfg(f);
	struct spawner *sp = NULL;
	struct err *e = NULL;

	assert_int_equal(spawner_new_ops(ops, &cfg, &sp, &e), 0);
	spawner_set_ckpt_cfg(sp, &cc);
	return sp;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct err *e = NULL;

	memset(&fake, 0, sizeof(fake));
	fake.size = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nbgate-test-ckpt-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->ckpt_dir = xasprintf("%s/ckpt", f->dir);
	assert_int_equal(mkdir(f->ckpt_dir, 0700), 0);
	f->db_path = xasprintf("%s/state.db", f->dir);
	assert_int_equal(db_open(&f->db, f->db_path, &e), 0);
	assert_int_equal(db_exec(f->db, "INSERT INTO users (id, name, created) VALUES"
				 " (1, 'alice', 0), (2, 'bob', 0)", &e), 0);
	f->sp = new_spawner(f, &fake_ops);
	*state = f;
	return 0;
}

static void clear_events(struct fixture *f)
{
	for (int i = 0; i < f->nev; i++)
		free(f->msg[i]);
	f->nev = 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p) < 0 ? -1 : 0;
}

/* The fixture dir only (no fork in unit tests). */
static void rm_rf(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	clear_events(f);
	spawner_free(f->sp);
	db_close(f->db);
	rm_rf(f->dir);
	free(f->ckpt_dir);
	free(f->db_path);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static struct spawner_server *start_running(struct fixture *f, const char *user,
					    const char *name)
{
	struct spawner_server *srv = NULL;
	struct err *e = NULL;

	assert_int_equal(spawner_server_start(f->sp, strcmp(user, "alice") ? 2 : 1, user, name,
					      "{\"profile\":\"small\"}", NULL, &srv, &e), 0);
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_RUNNING, "ready", &e), 0);
	return srv;
}

/* Rows matching id (0 = any), state and image (NULL = any). Fixed SQL:
 * db_prepare() caches statements by their text. */
static int count_rows(struct fixture *f, int64_t id, const char *state, const char *image)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct err *e = NULL;

	assert_int_equal(db_prepare(f->db, &st, "SELECT COUNT(*) FROM checkpoints WHERE"
				    " (?1 = 0 OR id = ?1) AND (?2 IS NULL OR state = ?2)"
				    " AND (?3 IS NULL OR image = ?3)", &e), 0);
	sqlite3_bind_int64(st, 1, id);
	if (state)
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	if (image)
		sqlite3_bind_text(st, 3, image, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	return sqlite3_column_int(st, 0);
}

static struct spawner_checkpoint *row(struct fixture *f, int64_t id)
{
	struct spawner_checkpoint *ck = NULL;
	struct err *e = NULL;

	assert_int_equal(spawner__ckpt_get(f->sp, id, &ck, &e), 0);
	return ck;
}

static bool path_exists(const char *p)
{
	struct stat sb;

	return lstat(p, &sb) == 0;
}

static bool some_msg_has(struct fixture *f, const char *needle)
{
	for (int i = 0; i < f->nev; i++)
		if (f->msg[i] && strstr(f->msg[i], needle))
			return true;
	return false;
}

/* Checkpoint (criu, must begin) and complete it; returns the row id. */
static int64_t suspend(struct fixture *f, struct spawner_server *srv, int64_t size)
{
	struct err *e = NULL;

	assert_int_equal(spawner_server_checkpoint(f->sp, srv->user, srv->name, SPAWNER_CKPT_CRIU,
						   "idle for 3600 s", &e), 0);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	spawner_checkpoint_done(f->sp, srv, fake.last_id, true, false, size, NULL);
	assert_int_equal(srv->state, SPAWNER_SUSPENDED);
	return fake.last_id;
}

/* Resume and complete the restore. */
static void resume_ok(struct fixture *f, struct spawner_server *srv)
{
	struct err *e = NULL;

	assert_int_equal(spawner_server_resume(f->sp, srv->user, srv->name, &e), 0);
	assert_int_equal(srv->state, SPAWNER_RESTORING);
	srv->pid = 5000;
	spawner_restore_done(f->sp, srv, fake.last_id, true, NULL);
	assert_int_equal(srv->state, SPAWNER_RUNNING);
}

/* ---- tests ---- */

static void test_ckpt_mode_names(void **state)
{
	for (int m = 0; m < SPAWNER_CKPT_MODE_COUNT; m++)
		assert_int_equal(spawner_ckpt_mode_parse(spawner_ckpt_mode_name(m)), m);
	assert_int_equal(spawner_ckpt_mode_parse("bogus"), -1);
	assert_int_equal(spawner_ckpt_mode_parse(NULL), -1);
	assert_string_equal(spawner_ckpt_mode_name(SPAWNER_CKPT_MODE_COUNT), "unknown");
}

static void test_ckpt_criu_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;
	char *want;
	int64_t id;

	clear_events(f);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU, "manual",
						   &e), 0);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	assert_string_equal(fake.last_state, "checkpointing");
	assert_string_equal(f->msg[0], "checkpointing (criu): manual");
	id = fake.last_id;
	ck = row(f, id);
	assert_string_equal(ck->state, "writing");
	assert_string_equal(ck->image, "jupyterlab");
	assert_string_equal(ck->profile, "small");
	assert_string_equal(ck->reason, "manual");
	want = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)id);
	assert_string_equal(ck->path, want);
	free(want);
	spawner__ckpt_free(ck);

	spawner_checkpoint_done(f->sp, srv, id, true, false, 12345, NULL);
	assert_int_equal(srv->state, SPAWNER_SUSPENDED);
	assert_int_equal(srv->pid, 0);
	assert_null(srv->upstream);
	assert_string_equal(f->msg[f->nev - 1], "suspended (criu): manual");
	ck = row(f, id);
	assert_string_equal(ck->state, "ready");
	assert_int_equal(ck->size_bytes, 12345);
	spawner__ckpt_free(ck);

	/* a stale second completion changes nothing */
	spawner_checkpoint_done(f->sp, srv, id, false, true, 0, "late");
	assert_int_equal(srv->state, SPAWNER_SUSPENDED);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 1);

	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	assert_int_equal(srv->state, SPAWNER_RESTORING);
	assert_int_equal(fake.restores, 1);
	assert_int_equal(fake.last_id, id);
	assert_string_equal(srv->activity_source, "resume");
	/* idempotent while restoring: every held request may call it */
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	assert_int_equal(fake.restores, 1);
	srv->pid = 5000;
	spawner_restore_done(f->sp, srv, id, true, NULL);
	assert_int_equal(srv->state, SPAWNER_RUNNING);
	assert_true(f->ev[f->nev - 1].ready);
	assert_non_null(strstr(f->msg[f->nev - 1], "resumed (criu) from checkpoint"));
	ck = row(f, id);
	assert_string_equal(ck->state, "restored");
	spawner__ckpt_free(ck);
	/* and while running */
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	assert_int_equal(fake.restores, 1);
	assert_int_equal(fake.starts, 1);
}

static void test_ckpt_refused_unless_running(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "nope", SPAWNER_CKPT_CRIU,
						   "manual", &e), -ENOENT);
	assert_int_equal(err_http_status(e), 404);
	err_free(&e);
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_STOPPING, "x", &e), 0);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), -EBUSY);
	assert_int_equal(err_http_status(e), 409);
	err_free(&e);
	assert_int_equal(fake.ckpts, 0);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	/* culling counts as running */
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_STOPPED, "x", &e), 0);
	srv = start_running(f, "alice", "");
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_CULLING, "idle", &e), 0);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "idle", &e), 0);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
}

static void test_ckpt_dump_failed_alive_left_running(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;
	char *path;

	fake.write_files = true;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	path = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)fake.last_id);
	assert_true(path_exists(path));
	spawner_checkpoint_done(f->sp, srv, fake.last_id, false, true, 0, "criu: dump killed");
	assert_int_equal(srv->state, SPAWNER_RUNNING);
	assert_string_equal(srv->message,
			    "checkpoint failed, server left running: criu: dump killed");
	assert_true(f->ev[f->nev - 1].ready);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	assert_false(path_exists(path));
	assert_int_equal(fake.ckpts, 1); /* no fallback for a live server */
	free(path);
}

/* A cull whose dump failed with the server alive goes on with commit (the
 * commit op stops the server itself); with the commit failing too, the
 * live server is stopped for real, keeping its home. */
static void test_ckpt_cull_dump_failed_alive_goes_commit(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;
	int64_t criu_id;

	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "idle for 3600 s", &e), 0);
	criu_id = fake.last_id;
	spawner_checkpoint_done(f->sp, srv, criu_id, false, true, 0, "criu: dump killed");
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	assert_true(fake.last_id != criu_id);
	assert_int_equal(fake.ckpts, 2);
	spawner_checkpoint_done(f->sp, srv, fake.last_id, false, true, 0, "no space");
	assert_int_equal(fake.stops, 1); /* a live server: a real stop */
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
}

static void test_ckpt_fallback_dead_criu_commit_stop(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;
	char *want;
	int64_t criu_id, commit_id;

	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "idle", &e), 0);
	criu_id = fake.last_id;
	spawner_checkpoint_done(f->sp, srv, criu_id, false, false, 0, "tree died");
	/* commit begun at once, still checkpointing, the why on the row */
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	commit_id = fake.last_id;
	assert_true(commit_id != criu_id);
	ck = row(f, commit_id);
	assert_string_equal(ck->state, "writing");
	want = xasprintf("jupyterlab-ckpt-alice-%lld", (long long)commit_id);
	assert_string_equal(ck->path, want);
	assert_string_equal(ck->message, "criu failed: tree died");
	assert_string_equal(ck->reason, "idle");
	free(want);
	spawner__ckpt_free(ck);
	assert_true(some_msg_has(f, "criu failed: tree died; checkpointing (commit): idle"));
	assert_int_equal(count_rows(f, 0, NULL, NULL), 1);

	spawner_checkpoint_done(f->sp, srv, commit_id, false, false, 0, "no upper dir");
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	assert_int_equal(fake.stops, 0); /* nothing left to stop */
	assert_int_equal(srv->state,
			 spawner_transition_allowed(SPAWNER_CHECKPOINTING, SPAWNER_STOPPED)
				 ? SPAWNER_STOPPED : SPAWNER_FAILED);
	assert_non_null(strstr(srv->message, "criu failed: tree died"));
	assert_non_null(strstr(srv->message, "commit failed: no upper dir"));
	assert_non_null(strstr(srv->message, "your home is kept"));
}

static void test_ckpt_commit_success(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "lab");
	struct err *e = NULL;

	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "lab", SPAWNER_CKPT_COMMIT,
						   "manual", &e), 0);
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	spawner_checkpoint_done(f->sp, srv, fake.last_id, true, false, 10, "saved in 1 s");
	assert_int_equal(srv->state, SPAWNER_SUSPENDED);
	assert_string_equal(srv->message, "suspended (commit): manual; saved in 1 s");
	resume_ok(f, srv);
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	assert_non_null(strstr(srv->message, "kernels were restarted"));
}

static void test_ckpt_enotsup_skips_to_next(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;

	fake.ckpt_rc[SPAWNER_CKPT_CRIU] = -ENOTSUP;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	assert_int_equal(fake.ckpts, 2);
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 1);
	ck = row(f, fake.last_id);
	assert_non_null(strstr(ck->message, "criu failed: fake criu refused"));
	spawner__ckpt_free(ck);
	spawner_checkpoint_done(f->sp, srv, fake.last_id, true, false, 1, NULL);
	assert_int_equal(srv->state, SPAWNER_SUSPENDED);
}

static void test_ckpt_criu_unusable_goes_commit(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	f->sp->ckpt.criu_usable = false;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	assert_int_equal(fake.ckpts, 1); /* criu never called */
	assert_int_equal(fake.last_mode, SPAWNER_CKPT_COMMIT);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	assert_non_null(strstr(srv->message, "criu: criu is not available"));
}

static void test_ckpt_all_enotsup_alive_stops(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	fake.ckpt_rc[SPAWNER_CKPT_CRIU] = -ENOTSUP;
	fake.ckpt_rc[SPAWNER_CKPT_COMMIT] = -ENOTSUP;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "idle", &e), 0);
	assert_int_equal(fake.ckpts, 2);
	assert_int_equal(fake.stops, 1);
	assert_int_equal(srv->state, SPAWNER_STOPPED);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	assert_true(some_msg_has(f, "stopping the server instead (your home is kept)"));
}

static void test_ckpt_sync_error_left_running(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	fake.ckpt_rc[SPAWNER_CKPT_CRIU] = -EIO;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), -EIO);
	assert_non_null(strstr(e->msg, "fake criu refused"));
	err_free(&e);
	assert_int_equal(fake.ckpts, 1);
	assert_int_equal(srv->state, SPAWNER_RUNNING);
	assert_non_null(strstr(srv->message, "checkpoint failed, server left running"));
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
}

static void test_ckpt_mode_stop(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	clear_events(f);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_STOP,
						   "idle for 60 s", &e), 0);
	assert_int_equal(fake.ckpts, 0);
	assert_int_equal(fake.stops, 1);
	assert_int_equal(f->ev[0].state, SPAWNER_STOPPING);
	assert_string_equal(f->msg[0], "stopping: idle for 60 s (your home is kept)");
	assert_int_equal(srv->state, SPAWNER_STOPPED);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
}

static void test_ckpt_backend_without_ops(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv;
	struct err *e = NULL;

	spawner_free(f->sp);
	f->sp = new_spawner(f, &plain_ops);
	srv = start_running(f, "alice", "");
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_COMMIT,
						   "manual", &e), -ENOTSUP);
	assert_int_equal(err_http_status(e), 409);
	err_free(&e);
	assert_int_equal(srv->state, SPAWNER_RUNNING);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_STOP,
						   "manual", &e), 0);
	assert_int_equal(srv->state, SPAWNER_STOPPED);
}

static void test_ckpt_disk_min_free(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	f->sp->ckpt.min_free_bytes = INT64_MAX / 2;
	clear_events(f);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), -ENOSPC);
	assert_int_equal(err_http_status(e), 507);
	assert_non_null(strstr(e->msg, "bytes free"));
	assert_non_null(strstr(e->msg, "must stay free"));
	err_free(&e);
	/* refused before anything: no op, no row, no event, still running */
	assert_int_equal(fake.ckpts, 0);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	assert_int_equal(f->nev, 0);
	assert_int_equal(srv->state, SPAWNER_RUNNING);
	/* commit is checked against the same dir */
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_COMMIT,
						   "manual", &e), -ENOSPC);
	err_free(&e);

	/* the other side: a small margin passes (with a small estimate) */
	f->sp->ckpt.min_free_bytes = 1;
	fake.size = 4096;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
	/* and an estimate larger than the disk is refused by itself */
	spawner_checkpoint_done(f->sp, srv, fake.last_id, false, true, 0, "x");
	fake.size = INT64_MAX / 2;
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), -ENOSPC);
	err_free(&e);
}

static void test_ckpt_disk_quota(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_server *other = start_running(f, "alice", "other");
	struct spawner_server *bob = start_running(f, "bob", "");
	struct err *e = NULL;
	char *sql;

	(void)bob;
	f->sp->ckpt.user_quota_bytes = 1000;
	sql = xasprintf("INSERT INTO checkpoints (server_id, mode, state, path, size_bytes,"
			" created) VALUES (%lld, 'criu', 'broken', '%s/alice-2dother/1', 900, 1),"
			" (%lld, 'criu', 'ready', '%s/bob/2', 5000, 1)",
			(long long)other->id, f->ckpt_dir, (long long)bob->id, f->ckpt_dir);
	assert_int_equal(db_exec(f->db, sql, &e), 0);
	free(sql);

	fake.size = 200; /* 900 + 200 > 1000 */
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), -ENOSPC);
	assert_int_equal(err_http_status(e), 507);
	assert_non_null(strstr(e->msg, "900 bytes of checkpoints"));
	assert_non_null(strstr(e->msg, "quota is 1000"));
	err_free(&e);
	assert_int_equal(fake.ckpts, 0);
	assert_int_equal(srv->state, SPAWNER_RUNNING);

	fake.size = 100; /* 900 + 100 fits; bob's 5000 do not count */
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	assert_int_equal(srv->state, SPAWNER_CHECKPOINTING);
}

static void test_ckpt_retention_keep_n(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	int64_t ids[4];
	char *p0, *p3;

	f->sp->ckpt.keep_per_server = 2;
	fake.write_files = true;
	for (int i = 0; i < 4; i++) {
		ids[i] = suspend(f, srv, 10);
		resume_ok(f, srv);
	}
	assert_int_equal(count_rows(f, 0, NULL, NULL), 2);
	p0 = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)ids[0]);
	p3 = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)ids[3]);
	assert_false(path_exists(p0));
	assert_true(path_exists(p3));
	assert_int_equal(count_rows(f, ids[2], NULL, NULL) + count_rows(f, ids[3], NULL, NULL), 2);
	free(p0);
	free(p3);
}

static void test_ckpt_retention_never_resume_row(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_server *two = start_running(f, "alice", "two");
	struct err *e = NULL;
	int64_t a, b;
	char *sql;

	/* keep 1, with a newer row of another image in front of the resume row */
	f->sp->ckpt.keep_per_server = 1;
	sql = xasprintf("INSERT INTO checkpoints (server_id, mode, state, path, size_bytes,"
			" created, image, profile) VALUES (%lld, 'commit', 'ready', 'x', 1,"
			" 9000000000000, 'vscode', 'small')", (long long)srv->id);
	assert_int_equal(db_exec(f->db, sql, &e), 0);
	free(sql);
	a = suspend(f, srv, 10);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 2); /* the resume row is kept */

	/* quota: over it by the resume rows alone, nothing is deleted (the
	 * quota shrinks after the check, as after a config change) */
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "two", SPAWNER_CKPT_CRIU,
						   "idle", &e), 0);
	b = fake.last_id;
	f->sp->ckpt.user_quota_bytes = 5;
	spawner_checkpoint_done(f->sp, two, b, true, false, 10, NULL);
	assert_int_equal(two->state, SPAWNER_SUSPENDED);
	assert_int_equal(count_rows(f, a, NULL, NULL) + count_rows(f, b, NULL, NULL), 2);
	/* the unprotected 'vscode' row went for the quota */
	assert_int_equal(count_rows(f, 0, NULL, "vscode"), 0);
	/* once 'two' resumed and checkpointed again, its old row goes */
	f->sp->ckpt.user_quota_bytes = 25;
	resume_ok(f, two);
	suspend(f, two, 10);
	assert_int_equal(count_rows(f, b, NULL, NULL), 0);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 2);
}

static void test_ckpt_restore_failed_keeps_row(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;
	int64_t id = suspend(f, srv, 10);

	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	spawner_restore_done(f->sp, srv, id, false, "corrupt image");
	assert_int_equal(srv->state, SPAWNER_STARTING);
	assert_int_equal(fake.starts, 2);
	assert_string_equal(srv->message, "restore failed: corrupt image; starting a fresh "
			    "server (your home and files are kept)");
	ck = row(f, id);
	assert_string_equal(ck->state, "broken");
	assert_non_null(strstr(ck->message, "corrupt image"));
	spawner__ckpt_free(ck);
	/* the broken row is not resumed from again; the user may delete it */
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_RUNNING, "ready", &e), 0);
	assert_int_equal(spawner_checkpoint_delete(f->sp, srv, id, &e), 0);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
}

static void test_ckpt_restore_sync_error_falls_back(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;
	int64_t id = suspend(f, srv, 10);

	fake.restore_rc = -EIO;
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	assert_int_equal(srv->state, SPAWNER_STARTING);
	assert_true(some_msg_has(f, "restore failed: fake restore refused"));
	ck = row(f, id);
	assert_string_equal(ck->state, "broken");
	spawner__ckpt_free(ck);
}

static void test_ckpt_resume_without_usable_row(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	suspend(f, srv, 10);
	/* the server's image changed under its checkpoint (config edit) */
	free(srv->user_options);
	srv->user_options = xstrdup("{\"profile\":\"small\",\"image\":\"vscode\"}");
	clear_events(f);
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), 0);
	assert_int_equal(fake.restores, 0);
	assert_int_equal(fake.starts, 2);
	assert_int_equal(f->ev[0].state, SPAWNER_RESTORING);
	assert_int_equal(f->ev[1].state, SPAWNER_STARTING);
	assert_non_null(strstr(f->msg[1], "taken with image 'jupyterlab'"));
	assert_non_null(strstr(f->msg[1], "now uses image 'vscode'"));
	assert_non_null(strstr(f->msg[1], "your home and files are kept"));
}

static void test_ckpt_resume_wrong_states(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;

	assert_int_equal(spawner_server_resume(f->sp, "alice", "x", &e), -ENOENT);
	err_free(&e);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "", SPAWNER_CKPT_CRIU,
						   "manual", &e), 0);
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), -EBUSY);
	assert_int_equal(err_http_status(e), 409);
	err_free(&e);
	spawner_checkpoint_done(f->sp, srv, fake.last_id, false, true, 0, "x");
	assert_int_equal(spawner_server_stop(f->sp, "alice", "", &e), 0);
	assert_int_equal(spawner_server_resume(f->sp, "alice", "", &e), -EINVAL);
	assert_int_equal(err_http_status(e), 409);
	assert_non_null(strstr(e->msg, "start it"));
	err_free(&e);
}

static void test_ckpt_delete_rules(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_server *bob = start_running(f, "bob", "");
	struct spawner_checkpoint *v = NULL;
	struct err *e = NULL;
	int64_t a, b;
	char *pa;
	int n = 0;

	fake.write_files = true;
	a = suspend(f, srv, 10);
	pa = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)a);
	assert_int_equal(spawner_checkpoint_delete(f->sp, srv, a, &e), -EBUSY);
	assert_int_equal(err_http_status(e), 409);
	err_free(&e);
	assert_int_equal(spawner_checkpoint_delete(f->sp, bob, a, &e), -ENOENT);
	assert_int_equal(err_http_status(e), 404);
	err_free(&e);
	assert_int_equal(spawner_checkpoint_delete(f->sp, srv, 999, &e), -ENOENT);
	err_free(&e);
	/* being written */
	assert_int_equal(spawner_server_checkpoint(f->sp, "bob", "", SPAWNER_CKPT_CRIU, "m", &e), 0);
	b = fake.last_id;
	assert_int_equal(spawner_checkpoint_delete(f->sp, bob, b, &e), -EBUSY);
	err_free(&e);

	resume_ok(f, srv);
	assert_int_equal(spawner_checkpoints_list(f->sp, srv, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].state, "restored");
	spawner_checkpoints_free(v, n);
	assert_true(path_exists(pa));
	assert_int_equal(spawner_checkpoint_delete(f->sp, srv, a, &e), 0);
	assert_false(path_exists(pa));
	assert_int_equal(spawner_checkpoints_list(f->sp, srv, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	spawner_checkpoints_free(v, n);
	free(pa);
}

static void test_ckpt_list_newest_first(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *v = NULL;
	struct err *e = NULL;
	int64_t a, b;
	int n = 0;

	a = suspend(f, srv, 1);
	resume_ok(f, srv);
	b = suspend(f, srv, 2);
	assert_int_equal(spawner_checkpoints_list(f->sp, srv, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, b);
	assert_int_equal(v[1].id, a);
	assert_int_equal(v[0].mode, SPAWNER_CKPT_CRIU);
	assert_int_equal(v[0].size_bytes, 2);
	assert_true(v[0].created_ms > 0);
	spawner_checkpoints_free(v, n);
}

static void test_ckpt_remove_files_safety(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint ck = { .mode = SPAWNER_CKPT_CRIU, .state = "ready" };
	struct err *e = NULL;
	char *victim = xasprintf("%s/victim", f->dir), *link, *inside;

	assert_int_equal(mkdir(victim, 0700), 0);
	(void)srv;
	/* outside the dir, or escaping it with .. */
	ck.path = "/etc";
	assert_int_equal(spawner__ckpt_remove_files(f->sp, &ck, &e), -EPERM);
	err_free(&e);
	ck.path = xasprintf("%s/../victim", f->ckpt_dir);
	assert_int_equal(spawner__ckpt_remove_files(f->sp, &ck, &e), -EPERM);
	err_free(&e);
	free(ck.path);
	/* a prefix that is not a path component */
	ck.path = xasprintf("%sx/1", f->ckpt_dir);
	assert_int_equal(spawner__ckpt_remove_files(f->sp, &ck, &e), -EPERM);
	err_free(&e);
	free(ck.path);
	/* a symlink below the dir is refused, never followed */
	link = xasprintf("%s/alice", f->ckpt_dir);
	assert_int_equal(symlink(victim, link), 0);
	inside = xasprintf("%s/keep", victim);
	assert_int_equal(mkdir(inside, 0700), 0);
	ck.path = xasprintf("%s/alice/keep", f->ckpt_dir);
	assert_true(spawner__ckpt_remove_files(f->sp, &ck, &e) < 0);
	err_free(&e);
	assert_true(path_exists(inside));
	free(ck.path);
	/* the last component as a symlink: the link goes, not its target */
	ck.path = link;
	assert_int_equal(spawner__ckpt_remove_files(f->sp, &ck, &e), 0);
	assert_false(path_exists(link));
	assert_true(path_exists(inside));
	/* missing: fine */
	assert_int_equal(spawner__ckpt_remove_files(f->sp, &ck, &e), 0);
	free(link);
	free(inside);
	free(victim);
}

static void test_ckpt_unremovable_row_kept_broken(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct spawner_checkpoint *ck;
	struct err *e = NULL;

	char *sql = xasprintf("INSERT INTO checkpoints (id, server_id, mode, state, path, created)"
			      " VALUES (77, %lld, 'criu', 'ready', '/etc', 1)", (long long)srv->id);

	assert_int_equal(db_exec(f->db, sql, &e), 0);
	free(sql);
	assert_int_equal(spawner_checkpoint_delete(f->sp, srv, 77, &e), -EPERM);
	assert_non_null(strstr(e->msg, "not below the checkpoint dir"));
	err_free(&e);
	ck = row(f, 77);
	assert_string_equal(ck->state, "broken");
	assert_non_null(strstr(ck->message, "files could not be deleted"));
	spawner__ckpt_free(ck);
}

static void test_ckpt_stop_and_remove_drop_checkpoints(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = start_running(f, "alice", "");
	struct err *e = NULL;
	char *p;
	int64_t id;

	fake.write_files = true;
	id = suspend(f, srv, 10);
	p = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)id);
	assert_true(path_exists(p));
	assert_int_equal(spawner_server_stop(f->sp, "alice", "", &e), 0);
	assert_int_equal(srv->state, SPAWNER_STOPPED);
	assert_non_null(strstr(srv->message, "checkpoint was discarded"));
	assert_false(path_exists(p));
	free(p);
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);

	/* remove deletes files of rows left behind (a broken one here) */
	srv = start_running(f, "alice", "");
	id = suspend(f, srv, 10);
	resume_ok(f, srv);
	p = xasprintf("%s/alice/%lld", f->ckpt_dir, (long long)id);
	assert_true(path_exists(p));
	assert_int_equal(spawner_server_stop(f->sp, "alice", "", &e), 0);
	assert_int_equal(spawner_server_remove(f->sp, "alice", "", &e), 0);
	assert_false(path_exists(p));
	assert_int_equal(count_rows(f, 0, NULL, NULL), 0);
	free(p);
}

static void test_ckpt_gateway_restart(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *a = start_running(f, "alice", "a");  /* checkpointing, alive */
	struct spawner_server *b = start_running(f, "alice", "b");  /* suspended */
	struct spawner_server *c = start_running(f, "alice", "c");  /* restoring, dead */
	struct spawner_server *d = start_running(f, "bob", "d");    /* checkpointing, dead */
	struct err *e = NULL;
	int64_t a_id, b_id, c_id;
	char *a_path;
	pid_t a_pid = a->pid;

	fake.write_files = true;
	b_id = suspend(f, b, 10);
	c_id = suspend(f, c, 10);
	assert_int_equal(spawner_server_resume(f->sp, "alice", "c", &e), 0);
	assert_int_equal(spawner_server_checkpoint(f->sp, "bob", "d", SPAWNER_CKPT_CRIU, "m", &e), 0);
	assert_int_equal(spawner_server_checkpoint(f->sp, "alice", "a", SPAWNER_CKPT_CRIU, "m",
						   &e), 0);
	a_id = fake.last_id;
	a_path = xasprintf("%s/%s/%lld", f->ckpt_dir, a->slug, (long long)a_id);
	assert_true(path_exists(a_path));
	spawner_server_touch(f->sp, b, time_now_ms() + 100000, "kernel");
	assert_int_equal(spawner__persist(f->sp, b, &e), 0);

	/* the gateway goes away and comes back */
	spawner_free(f->sp);
	f->sp = new_spawner(f, &fake_ops);
	fake.alive_pid = a_pid;
	assert_int_equal(spawner_adopt_all(f->sp, &e), 0);
	assert_int_equal(count_rows(f, 0, "writing", NULL), 0);
	assert_false(path_exists(a_path));
	a = spawner_server_find(f->sp, "alice", "a");
	b = spawner_server_find(f->sp, "alice", "b");
	c = spawner_server_find(f->sp, "alice", "c");
	d = spawner_server_find(f->sp, "bob", "d");
	assert_int_equal(a->state, SPAWNER_RUNNING);
	assert_int_equal(d->state, SPAWNER_FAILED);
	assert_int_equal(b->state, SPAWNER_SUSPENDED);
	assert_string_equal(b->activity_source, "kernel");
	assert_int_equal(c->state, SPAWNER_SUSPENDED); /* rolled back, row kept */
	assert_null(c->upstream);

	/* both resume later as if nothing happened */
	fake.restores = 0;
	assert_int_equal(spawner_server_resume(f->sp, "alice", "b", &e), 0);
	assert_int_equal(fake.last_id, b_id);
	spawner_restore_done(f->sp, b, b_id, true, NULL);
	assert_int_equal(b->state, SPAWNER_RUNNING);
	assert_int_equal(spawner_server_resume(f->sp, "alice", "c", &e), 0);
	assert_int_equal(fake.last_id, c_id);
	assert_int_equal(fake.restores, 2);
	free(a_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ckpt_mode_names),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_ckpt_criu_roundtrip),
		T(test_ckpt_refused_unless_running),
		T(test_ckpt_dump_failed_alive_left_running),
		T(test_ckpt_cull_dump_failed_alive_goes_commit),
		T(test_ckpt_fallback_dead_criu_commit_stop),
		T(test_ckpt_commit_success),
		T(test_ckpt_enotsup_skips_to_next),
		T(test_ckpt_criu_unusable_goes_commit),
		T(test_ckpt_all_enotsup_alive_stops),
		T(test_ckpt_sync_error_left_running),
		T(test_ckpt_mode_stop),
		T(test_ckpt_backend_without_ops),
		T(test_ckpt_disk_min_free),
		T(test_ckpt_disk_quota),
		T(test_ckpt_retention_keep_n),
		T(test_ckpt_retention_never_resume_row),
		T(test_ckpt_restore_failed_keeps_row),
		T(test_ckpt_restore_sync_error_falls_back),
		T(test_ckpt_resume_without_usable_row),
		T(test_ckpt_resume_wrong_states),
		T(test_ckpt_delete_rules),
		T(test_ckpt_list_newest_first),
		T(test_ckpt_remove_files_safety),
		T(test_ckpt_unremovable_row_kept_broken),
		T(test_ckpt_stop_and_remove_drop_checkpoints),
		T(test_ckpt_gateway_restart),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
