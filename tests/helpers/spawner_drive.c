/*
 * spawner_drive: drives the `process` spawner backend on a real lws event
 * loop for tests/integration/t2001-spawner-process.py.
 *
 *   spawner_drive STATE_DIR MODE USER SERVER TIMEOUT_MS -- CMD...
 *
 * MODE:
 *   start-stop    start, wait for ready, stop, wait for stopped
 *   start-detach  start, wait for ready, exit leaving the server running
 *   adopt-stop    adopt what the database says runs, wait for its ready
 *                 event, stop it, wait for stopped
 *   start-watch   start, wait for ready, then wait for the server to end
 *                 (the test kills it) and report how
 *   expect-fail   start and wait for the failed event
 *   start-stopall start, wait for ready, then the blocking shutdown stop
 *                 (spawner_stop_all) without servicing the loop
 *
 * Prints one line per event ("EVENT state progress ready failed message")
 * and "READY upstream pid" / "STOPPED" / "FAILED message"; exit status 0
 * when the mode's expected outcome happened, 1 otherwise, 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/spawner.h"

struct drive {
	struct lws_context *ctx;
	bool ready, failed, stopped;
	int64_t ready_ms, start_ms;
};

static void on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	struct drive *d = arg;

	printf("EVENT %s %d %d %d %s\n", spawner_state_name(ev->state), ev->progress, ev->ready,
	       ev->failed, ev->message ? ev->message : "");
	if (ev->ready && !d->ready) {
		d->ready = true;
		d->ready_ms = time_mono_ms();
		printf("READY %s %d\n", srv->upstream ? srv->upstream : "-", (int)srv->pid);
	}
	if (ev->failed) {
		d->failed = true;
		printf("FAILED %s\n", ev->message ? ev->message : "");
	}
	if (ev->state == SPAWNER_STOPPED) {
		d->stopped = true;
		printf("STOPPED %s\n", ev->message ? ev->message : "");
	}
	fflush(stdout);
	/* lws runs due timers before it polls: wake that poll so run_until sees the flag. */
	lws_cancel_service(d->ctx);
}

static int dummy_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "dummy", dummy_cb, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* Services the loop until *flag, a failure or the deadline; true if *flag. */
static bool run_until(struct lws_context *ctx, const struct drive *d, const bool *flag,
		      int64_t deadline)
{
	while (!*flag && !d->failed && time_mono_ms() < deadline)
		lws_service(ctx, 0);
	return *flag;
}

static int64_t ensure_user(struct db *db, const char *user)
{
	sqlite3_stmt *st = NULL;
	struct err *e = NULL;
	int64_t id = -1;

	if (db_prepare(db, &st, "INSERT INTO users (name, created) VALUES (?1, 0)"
		       " ON CONFLICT (name) DO UPDATE SET name = name RETURNING id", &e) < 0) {
		fprintf(stderr, "%s\n", e->msg);
		err_free(&e);
		return -1;
	}
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	db_release_stmt(st);
	return id;
}

static int drive(struct spawner *sp, struct lws_context *ctx, struct drive *d, const char *mode,
		 int64_t uid, const char *user, const char *server, int64_t timeout)
{
	struct err *e = NULL;
	int64_t deadline = time_mono_ms() + timeout;

	d->start_ms = time_mono_ms();
	if (strcmp(mode, "adopt-stop") != 0 &&
	    spawner_server_start(sp, uid, user, server, "{}", NULL, NULL, &e) < 0) {
		printf("FAILED %s\n", e->msg);
		err_free(&e);
		return strcmp(mode, "expect-fail") == 0 ? 0 : 1;
	}
	if (strcmp(mode, "expect-fail") == 0)
		return run_until(ctx, d, &d->failed, deadline) && !d->ready ? 0 : 1;
	if (!run_until(ctx, d, &d->ready, deadline) || d->failed)
		return 1;
	printf("READY_AFTER_MS %lld\n", (long long)(d->ready_ms - d->start_ms));
	fflush(stdout);
	if (strcmp(mode, "start-detach") == 0)
		return 0;
	if (strcmp(mode, "start-stopall") == 0) {
		spawner_stop_all(sp);
		return d->stopped ? 0 : 1;
	}
	if (strcmp(mode, "start-watch") == 0) {
		while (!d->failed && !d->stopped && time_mono_ms() < deadline)
			lws_service(ctx, 0);
		return d->failed || d->stopped ? 0 : 1;
	}
	if (spawner_server_stop(sp, user, server, &e) < 0) {
		printf("FAILED stop: %s\n", e->msg);
		err_free(&e);
		return 1;
	}
	return run_until(ctx, d, &d->stopped, deadline) ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info = { 0 };
	struct spawner_cfg cfg = { 0 };
	struct drive d = { 0 };
	struct spawner *sp = NULL;
	struct lws_context *ctx;
	struct db *db = NULL;
	struct err *e = NULL;
	char *dbpath;
	int64_t uid;
	int rc;

	if (argc < 8 || strcmp(argv[6], "--") != 0) {
		fprintf(stderr, "usage: spawner_drive STATE MODE USER SERVER TIMEOUT_MS -- CMD...\n");
		return 2;
	}
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	ctx = lws_create_context(&info);
	d.ctx = ctx;
	dbpath = xasprintf("%s/nbgate.db", argv[1]);
	if (!ctx || db_open(&db, dbpath, &e) < 0 || (uid = ensure_user(db, argv[3])) < 0)
		goto fail;
	cfg = (struct spawner_cfg){
		.lws = ctx, .db = db, .state_dir = argv[1],
		.server_cmd = (const char *const *)&argv[7],
		.spawn_timeout_ms = strtoll(argv[5], NULL, 10) / 2, .stop_timeout_ms = 2000,
		.on_event = on_event, .event_arg = &d,
	};
	if (spawner_new("process", &cfg, &sp, &e) < 0 || spawner_adopt_all(sp, &e) < 0)
		goto fail;
	rc = drive(sp, ctx, &d, argv[2], uid, argv[3], argv[4], strtoll(argv[5], NULL, 10));
	spawner_free(sp);
	db_close(db);
	lws_context_destroy(ctx);
	free(dbpath);
	return rc;
fail:
	printf("FAILED setup: %s\n", e ? e->msg : "lws context");
	err_free(&e);
	return 1;
}
