/*
 * Unit tests for spawner/spawner.c: the registry and its stubs, the
 * lifecycle table, persistence before events, start/stop/remove through a
 * fake backend, slug collisions and adoption after a restart. No fork.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "spawner/spawner.c"

/* ---- a fake backend recording its calls ---- */

struct fake {
	int starts, stops, adopts, releases;
	int start_rc;          /* what start returns */
	pid_t alive_pid;       /* adopt succeeds for this pid only */
	bool stop_sync;        /* stop reports `stopped` at once */
};
static struct fake fake;

static int fake_init(struct spawner *sp, struct err **err)
{
	return 0;
}

static int fake_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	fake.starts++;
	if (fake.start_rc < 0)
		return err_set(err, -fake.start_rc, "fake start failed");
	srv->pid = 4242;
	srv->upstream = xstrdup("unix:/fake.sock");
	return spawner__persist(sp, srv, err);
}

static int fake_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	fake.stops++;
	if (fake.stop_sync)
		return spawner_transition(sp, srv, SPAWNER_STOPPED, "fake stopped", err);
	return 0;
}

static int fake_adopt(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	fake.adopts++;
	if (srv->pid != fake.alive_pid)
		return err_set(err, ESRCH, "fake: pid %d gone", (int)srv->pid);
	srv->priv = &fake;
	return 0;
}

static void fake_release(struct spawner *sp, struct spawner_server *srv)
{
	fake.releases++;
	srv->priv = NULL;
}

static const struct spawner_ops fake_ops = {
	.name = "fake",
	.size = sizeof(struct spawner),
	.init = fake_init,
	.start = fake_start,
	.stop = fake_stop,
	.adopt = fake_adopt,
	.server_release = fake_release,
};

/* A backend with only the required ops, for the -ENOTSUP dispatchers. */
static const struct spawner_ops bare_ops = {
	.name = "bare",
	.size = sizeof(struct spawner),
	.init = fake_init,
	.start = fake_start,
};

/* ---- fixture: in-memory database with two users, event recorder ---- */

#define MAX_EVENTS 32
struct fixture {
	struct db *db;
	struct spawner *sp;
	int nev;
	struct spawner_event ev[MAX_EVENTS];
	char *msg[MAX_EVENTS];
	char *db_state[MAX_EVENTS]; /* the row's state when the event arrived */
};

static char *row_state(struct db *db, int64_t id)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct err *e = NULL;

	assert_int_equal(db_prepare(db, &st, "SELECT state FROM servers WHERE id = ?1", &e), 0);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	return xstrdup((const char *)sqlite3_column_text(st, 0));
}

static void on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	struct fixture *f = arg;

	assert_true(f->nev < MAX_EVENTS);
	f->ev[f->nev] = *ev;
	f->msg[f->nev] = ev->message ? xstrdup(ev->message) : NULL;
	f->db_state[f->nev] = row_state(f->db, srv->id);
	f->nev++;
}

static struct spawner_cfg fixture_cfg(struct fixture *f)
{
	return (struct spawner_cfg){
		.db = f->db, .state_dir = "/nonexistent/state",
		.on_event = on_event, .event_arg = f,
	};
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct err *e = NULL;
	struct spawner_cfg cfg;

	memset(&fake, 0, sizeof(fake));
	assert_int_equal(db_open(&f->db, ":memory:", &e), 0);
	assert_int_equal(db_exec(f->db, "INSERT INTO users (id, name, created) VALUES"
				 " (1, 'alice', 0), (2, 'bob', 0), (3, 'user-hyphen', 0),"
				 " (4, 'user', 0)", &e), 0);
	cfg = fixture_cfg(f);
	assert_int_equal(spawner_new_ops(&fake_ops, &cfg, &f->sp, &e), 0);
	*state = f;
	return 0;
}

static void clear_events(struct fixture *f)
{
	for (int i = 0; i < f->nev; i++) {
		free(f->msg[i]);
		free(f->db_state[i]);
	}
	f->nev = 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	clear_events(f);
	spawner_free(f->sp);
	db_close(f->db);
	free(f);
	return 0;
}

/* ---- the lifecycle table ---- */

/* The legal transitions, written out independently of the table. */
static const char *const legal[] = {
	"stopped>starting",
	"starting>running", "starting>stopping", "starting>stopped", "starting>failed",
	"running>culling", "running>checkpointing", "running>stopping", "running>stopped",
	"running>failed",
	"culling>running", "culling>checkpointing", "culling>stopping", "culling>stopped",
	"culling>failed",
	"checkpointing>suspended", "checkpointing>running", "checkpointing>failed",
	"checkpointing>stopping", "checkpointing>stopped",
	"suspended>restoring", "suspended>stopped",
	"restoring>running", "restoring>starting", "restoring>failed",
	"stopping>stopped", "stopping>failed",
	"failed>starting", "failed>stopped",
};

static bool in_legal(const char *from, const char *to)
{
	char key[64];

	snprintf(key, sizeof(key), "%s>%s", from, to);
	for (size_t i = 0; i < sizeof(legal) / sizeof(legal[0]); i++)
		if (strcmp(legal[i], key) == 0)
			return true;
	return false;
}

static void test_spawner_transition_table_complete(void **state)
{
	int allowed = 0;

	for (int a = 0; a < SPAWNER_STATE_COUNT; a++) {
		for (int b = 0; b < SPAWNER_STATE_COUNT; b++) {
			bool want = in_legal(spawner_state_name(a), spawner_state_name(b));

			if (spawner_transition_allowed(a, b) != want)
				fail_msg("%s -> %s: table says %d", spawner_state_name(a),
					 spawner_state_name(b), !want);
			allowed += want;
		}
	}
	assert_int_equal(allowed, (int)(sizeof(legal) / sizeof(legal[0])));
	/* Out of range never passes. */
	assert_false(spawner_transition_allowed(SPAWNER_STATE_COUNT, SPAWNER_STOPPED));
	assert_false(spawner_transition_allowed(SPAWNER_STOPPED, -1));
}

static void test_spawner_state_names_roundtrip(void **state)
{
	for (int s = 0; s < SPAWNER_STATE_COUNT; s++)
		assert_int_equal(spawner_state_parse(spawner_state_name(s)), s);
	assert_int_equal(spawner_state_parse("bogus"), -1);
	assert_int_equal(spawner_state_parse(NULL), -1);
	assert_string_equal(spawner_state_name(99), "unknown");
}

/* Walks every legal edge on a real row: persisted before each event. */
static void test_spawner_transition_persists_before_event(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv;
	struct err *e = NULL;
	static const enum spawner_state walk[] = {
		SPAWNER_STARTING, SPAWNER_RUNNING, SPAWNER_CULLING, SPAWNER_CHECKPOINTING,
		SPAWNER_SUSPENDED, SPAWNER_RESTORING, SPAWNER_STARTING, SPAWNER_RUNNING,
		SPAWNER_CHECKPOINTING, SPAWNER_RUNNING, SPAWNER_STOPPING, SPAWNER_STOPPED,
	};

	assert_int_equal(server_get_or_create(f->sp, 1, "alice", "", &srv, &e), 0);
	for (size_t i = 0; i < sizeof(walk) / sizeof(walk[0]); i++) {
		clear_events(f);
		assert_int_equal(spawner_transition(f->sp, srv, walk[i], "step", &e), 0);
		assert_int_equal(srv->state, walk[i]);
		assert_int_equal(f->nev, 1);
		assert_int_equal(f->ev[0].state, walk[i]);
		assert_string_equal(f->db_state[0], spawner_state_name(walk[i]));
		assert_int_equal(f->ev[0].ready, walk[i] == SPAWNER_RUNNING);
	}
	clear_events(f);
}

static void test_spawner_transition_illegal_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv;
	struct err *e = NULL;
	char *st;

	assert_int_equal(server_get_or_create(f->sp, 1, "alice", "", &srv, &e), 0);
	assert_true(spawner_transition(f->sp, srv, SPAWNER_RUNNING, "no", &e) < 0);
	assert_non_null(e);
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "illegal transition stopped -> running"));
	err_free(&e);
	assert_int_equal(srv->state, SPAWNER_STOPPED);
	assert_int_equal(f->nev, 0);
	st = row_state(f->db, srv->id);
	assert_string_equal(st, "stopped");
	free(st);
	/* stopped -> stopped is not a transition either */
	assert_true(spawner_transition(f->sp, srv, SPAWNER_STOPPED, NULL, &e) < 0);
	err_free(&e);
}

/* If the row cannot be written, memory keeps the old state and no event goes out. */
static void test_spawner_transition_db_failure_no_effect(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv;
	struct err *e = NULL;

	assert_int_equal(server_get_or_create(f->sp, 1, "alice", "", &srv, &e), 0);
	assert_int_equal(db_exec(f->db, "CREATE TRIGGER no_upd BEFORE UPDATE ON servers BEGIN"
				 " SELECT RAISE(ABORT, 'read only'); END", &e), 0);
	assert_true(spawner_transition(f->sp, srv, SPAWNER_STARTING, "x", &e) < 0);
	assert_int_equal(e->code, EIO);
	err_free(&e);
	assert_int_equal(srv->state, SPAWNER_STOPPED);
	assert_int_equal(f->nev, 0);
}

/* ---- start / stop / remove through the fake ---- */

static void test_spawner_start_stop_remove(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv = NULL;
	struct err *e = NULL;
	const char *env[] = { "NBGATE_API_TOKEN=secret", NULL };
	char *st;

	assert_int_equal(spawner_server_start(f->sp, 1, "alice", "", "{\"a\":1}", env, &srv, &e), 0);
	assert_non_null(srv);
	assert_int_equal(fake.starts, 1);
	assert_int_equal(srv->state, SPAWNER_STARTING);
	assert_string_equal(srv->base_url, "/user/alice/");
	assert_string_equal(srv->run_dir, "/nonexistent/state/run/alice");
	assert_string_equal(srv->home, "/nonexistent/state/home/alice");
	assert_string_equal(srv->env[0], "NBGATE_API_TOKEN=secret");
	assert_null(srv->env[1]);
	assert_int_equal(f->ev[0].state, SPAWNER_STARTING);
	assert_ptr_equal(spawner_server_find(f->sp, "alice", NULL), srv);
	assert_ptr_equal(spawner_server_next(f->sp, NULL), srv);
	assert_null(spawner_server_next(f->sp, srv));

	/* already starting -> EALREADY, nothing launched */
	assert_true(spawner_server_start(f->sp, 1, "alice", "", NULL, NULL, NULL, &e) < 0);
	assert_int_equal(e->code, EALREADY);
	err_free(&e);
	assert_int_equal(fake.starts, 1);

	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_RUNNING, "ready", &e), 0);
	assert_true(f->ev[f->nev - 1].ready);
	/* removing a live server is refused */
	assert_true(spawner_server_remove(f->sp, "alice", "", &e) < 0);
	assert_int_equal(e->code, EBUSY);
	err_free(&e);

	assert_int_equal(spawner_server_stop(f->sp, "alice", "", &e), 0);
	assert_int_equal(fake.stops, 1);
	assert_int_equal(srv->state, SPAWNER_STOPPING);
	/* a second stop while stopping is a no-op */
	assert_int_equal(spawner_server_stop(f->sp, "alice", "", &e), 0);
	assert_int_equal(fake.stops, 1);
	assert_int_equal(spawner_transition(f->sp, srv, SPAWNER_STOPPED, "done", &e), 0);
	assert_null(srv->upstream);
	assert_int_equal(srv->pid, 0);

	int64_t id = srv->id;
	assert_int_equal(spawner_server_remove(f->sp, "alice", "", &e), 0);
	assert_null(spawner_server_find(f->sp, "alice", ""));
	st = row_state(f->db, id);
	assert_null(st);
	assert_true(spawner_server_stop(f->sp, "alice", "", &e) < 0);
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
}

/* A start that fails records `failed` with the reason and can be retried. */
static void test_spawner_start_failure_recorded(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *srv;
	struct err *e = NULL;
	char *st;

	fake.start_rc = -ENOENT;
	assert_true(spawner_server_start(f->sp, 2, "bob", "gpu", NULL, NULL, NULL, &e) < 0);
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "fake start failed"));
	err_free(&e);
	srv = spawner_server_find(f->sp, "bob", "gpu");
	assert_non_null(srv);
	assert_int_equal(srv->state, SPAWNER_FAILED);
	assert_non_null(strstr(srv->message, "fake start failed"));
	assert_true(f->ev[f->nev - 1].failed);
	st = row_state(f->db, srv->id);
	assert_string_equal(st, "failed");
	free(st);
	assert_string_equal(srv->base_url, "/user/bob/gpu/");

	fake.start_rc = 0;
	assert_int_equal(spawner_server_start(f->sp, 2, "bob", "gpu", NULL, NULL, NULL, &e), 0);
	assert_int_equal(srv->state, SPAWNER_STARTING);
}

static void test_spawner_start_rejects_bad_names(void **state)
{
	struct fixture *f = *state;
	struct err *e = NULL;

	assert_true(spawner_server_start(f->sp, 1, "alice", "a/b", NULL, NULL, NULL, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	assert_true(spawner_server_start(f->sp, 1, "alice", "a\nb", NULL, NULL, NULL, &e) < 0);
	err_free(&e);
	assert_true(spawner_server_start(f->sp, 1, "", "", NULL, NULL, NULL, &e) < 0);
	err_free(&e);
	assert_int_equal(fake.starts, 0);
	assert_null(spawner_server_next(f->sp, NULL));
}

/* JH-6: (user-hyphen, "") and (user, hyphen) are different servers with different dirs. */
static void test_spawner_jh6_servers_distinct(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *a, *b;
	struct err *e = NULL;

	assert_int_equal(spawner_server_start(f->sp, 3, "user-hyphen", "", NULL, NULL, &a, &e), 0);
	assert_int_equal(spawner_server_start(f->sp, 4, "user", "hyphen", NULL, NULL, &b, &e), 0);
	assert_ptr_not_equal(a, b);
	assert_string_not_equal(a->slug, b->slug);
	assert_string_not_equal(a->run_dir, b->run_dir);
	assert_string_not_equal(a->home, b->home);
}

/* A slug already owned by another pair is refused with EEXIST. */
static void test_spawner_slug_collision_refused(void **state)
{
	struct fixture *f = *state;
	struct spawner_server *a;
	struct err *e = NULL;

	assert_int_equal(spawner_server_start(f->sp, 1, "alice", "x", NULL, NULL, &a, &e), 0);
	/* Forge a collision (the encoding itself has none below the cut). */
	free(a->slug);
	a->slug = spawner_slug("bob", "");
	assert_true(spawner_server_start(f->sp, 2, "bob", "", NULL, NULL, NULL, &e) < 0);
	assert_int_equal(e->code, EEXIST);
	assert_non_null(strstr(e->msg, "collides"));
	err_free(&e);
	assert_null(spawner_server_find(f->sp, "bob", ""));
	assert_int_equal(fake.starts, 1);
}

static void test_spawner_dispatch_enotsup(void **state)
{
	struct fixture *f = *state;
	struct spawner_cfg cfg = fixture_cfg(f);
	struct spawner *sp = NULL;
	struct spawner_server srv = { .slug = "x" };
	struct err *e = NULL;

	assert_int_equal(spawner_new_ops(&bare_ops, &cfg, &sp, &e), 0);
	assert_int_equal(spawner_stop(sp, &srv, &e), -ENOTSUP);
	err_free(&e);
	assert_int_equal(spawner_adopt(sp, &srv, &e), -ENOTSUP);
	err_free(&e);
	assert_int_equal(spawner_status(sp, &srv, &e), -ENOTSUP);
	err_free(&e);
	spawner_free(sp);
}

/* ---- registry ---- */

static void test_spawner_registry(void **state)
{
	struct fixture *f = *state;
	struct spawner_cfg cfg = fixture_cfg(f);
	struct spawner *sp = NULL;
	struct err *e = NULL;

	assert_ptr_equal(spawner_backend_find("process"), &spawner_process_ops);
	assert_ptr_equal(spawner_backend_find("local"), &spawner_local_ops);
	assert_ptr_equal(spawner_backend_find("kubernetes"), &spawner_k8s_ops);
	assert_null(spawner_backend_find("docker"));
	assert_null(spawner_backend_find(NULL));

	assert_true(spawner_new("docker", &cfg, &sp, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "unknown spawner backend 'docker'"));
	err_free(&e);
	/* local is real now: without an event loop it says so */
	assert_true(spawner_new("local", &cfg, &sp, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "event loop"));
	err_free(&e);
	/* kubernetes is real now: without its settings it says so */
	assert_true(spawner_new("kubernetes", &cfg, &sp, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "settings missing"));
	err_free(&e);
	/* process needs an event loop: without one it says so */
	assert_true(spawner_new("process", &cfg, &sp, &e) < 0);
	assert_non_null(strstr(e->msg, "event loop"));
	err_free(&e);
	cfg.state_dir = "relative";
	assert_true(spawner_new("process", &cfg, &sp, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	assert_null(sp);
	assert_false(spawner_has_cap(f->sp, SPAWNER_CAP_SANDBOX));
	assert_true(spawner_process_ops.caps & SPAWNER_CAP_UNIX);
	assert_false(spawner_process_ops.caps & SPAWNER_CAP_SANDBOX);
}

/* ---- adoption after a restart ---- */

static void test_spawner_adopt_all(void **state)
{
	struct fixture *f = *state;
	struct spawner_cfg cfg = fixture_cfg(f);
	struct spawner *sp = NULL;
	struct spawner_server *s;
	struct err *e = NULL;

	assert_int_equal(db_exec(f->db,
		"INSERT INTO servers (id, user_id, name, state, backend, upstream, pid) VALUES"
		" (10, 1, '', 'running', 'fake', 'unix:/a.sock', 111),"
		" (11, 1, 'dead', 'running', 'fake', 'unix:/b.sock', 222),"
		" (12, 2, '', 'starting', 'fake', NULL, 333),"
		" (13, 2, 'old', 'failed', 'fake', NULL, NULL),"
		" (14, 3, '', 'restoring', 'fake', NULL, 444),"
		" (15, 4, '', 'starting', 'fake', 'unix:/c.sock', 111)", &e), 0);
	fake.alive_pid = 111;
	assert_int_equal(spawner_new_ops(&fake_ops, &cfg, &sp, &e), 0);
	assert_int_equal(spawner_adopt_all(sp, &e), 0);

	s = spawner_server_find(sp, "alice", "");
	assert_int_equal(s->state, SPAWNER_RUNNING);
	assert_string_equal(s->upstream, "unix:/a.sock");
	s = spawner_server_find(sp, "alice", "dead");
	assert_int_equal(s->state, SPAWNER_STOPPED);
	assert_null(s->upstream);
	assert_int_equal(spawner_server_find(sp, "bob", "")->state, SPAWNER_STOPPED);
	assert_int_equal(spawner_server_find(sp, "bob", "old")->state, SPAWNER_FAILED);
	assert_int_equal(spawner_server_find(sp, "user-hyphen", "")->state, SPAWNER_FAILED);
	/* a live `starting` row becomes running */
	assert_int_equal(spawner_server_find(sp, "user", "")->state, SPAWNER_RUNNING);
	assert_int_equal(fake.adopts, 5);

	/* ready events for the two adopted servers, persisted states match */
	int ready = 0;
	for (int i = 0; i < f->nev; i++) {
		ready += f->ev[i].ready;
		assert_string_equal(f->db_state[i], spawner_state_name(f->ev[i].state));
	}
	assert_int_equal(ready, 2);
	char *st = row_state(f->db, 11);
	assert_string_equal(st, "stopped");
	free(st);
	spawner_free(sp);
	assert_int_equal(fake.releases, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawner_transition_table_complete),
		cmocka_unit_test(test_spawner_state_names_roundtrip),
		cmocka_unit_test_setup_teardown(test_spawner_transition_persists_before_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_transition_illegal_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_transition_db_failure_no_effect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_start_stop_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_start_failure_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_start_rejects_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_jh6_servers_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_slug_collision_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_dispatch_enotsup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawner_adopt_all, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
