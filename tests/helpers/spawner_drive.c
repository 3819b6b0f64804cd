/*
 * spawner_drive: drives a spawner backend on a real lws event loop for
 * tests/integration/t2001-spawner-process.py (process) and
 * t6200-local-backend.py (local).
 *
 *   spawner_drive [OPTIONS] STATE_DIR MODE USER SERVER TIMEOUT_MS [-- CMD...]
 *
 * OPTIONS (local backend; all optional):
 *   --backend NAME         process (default) or local
 *   --profile SPEC         name:image:cpu_millis:memory_mib:gpus:network[:gpu_model]
 *                          (repeatable; the first is the default)
 *   --images a,b,c         images users may pick
 *   --quota S:CPU:MEM:GPU  max servers, CPU millis, memory MiB, GPUs (0 = unlimited)
 *   --options JSON         user_options of the start (default {})
 *   --image-store DIR      image store
 *   --uid-base N           sandbox uid base
 *   --gpu-glob PATTERN     GPU device nodes (tests use fake ones)
 *   --env K=V              per-server env from the "gateway" (repeatable)
 *   --seccomp PATH         seccomp profile (default: found next to nbgate-init)
 *   --fail-step STEP       sandbox fault injection (with nbgate-init-faults)
 *
 * MODE:
 *   start-stop    start, wait for ready, stop, wait for stopped
 *   start-detach  start, wait for ready, exit leaving the server running
 *   adopt-stop    adopt what the database says runs, wait for its ready
 *                 event, stop it, wait for stopped
 *   adopt-detach  adopt, wait for its ready event, exit leaving it running
 *   start-watch   start, wait for ready, then wait for the server to end
 *                 (the test kills it) and report how
 *   expect-fail   start and wait for the failed event
 *   start-stopall start, wait for ready, then the blocking shutdown stop
 *                 (spawner_stop_all) without servicing the loop
 *
 * MODE check-options: only spawner_check_user_options() on --options
 * (prints "OPTIONS ok" or "FAILED message").
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
	const char *user, *server; /* the server whose events set the flags */
	bool ready, failed, stopped;
	int64_t ready_ms, start_ms;
};

static void on_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	struct drive *d = arg;

	printf("EVENT %s %d %d %d %s\n", spawner_state_name(ev->state), ev->progress, ev->ready,
	       ev->failed, ev->message ? ev->message : "");
	/* other servers (adopted at startup) are reported, not waited for */
	if (d->user && (strcmp(srv->user, d->user) != 0 || strcmp(srv->name, d->server) != 0)) {
		fflush(stdout);
		return;
	}
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

#define DRIVE_MAX 16

struct opts {
	const char *backend;
	struct spawner_profile profiles[DRIVE_MAX];
	int n_profiles;
	char *images[DRIVE_MAX + 1];
	struct spawner_quota quota;
	const char *options;
	const char *image_store;
	uint32_t uid_base;
	const char *gpu_glob;
	const char *fail_step;
	const char *seccomp;
	char *env[DRIVE_MAX + 1];
	int n_env;
};

/* name:image:cpu_millis:memory_mib:gpus:network[:gpu_model]; fields kept in s */
static int parse_profile(char *s, struct spawner_profile *p)
{
	char *f[7] = { 0 };
	int n = 0;

	for (char *c = s; n < 7; n++) {
		f[n] = c;
		c = strchr(c, ':');
		if (!c) {
			n++;
			break;
		}
		*c++ = '\0';
	}
	if (n < 6)
		return -1;
	*p = (struct spawner_profile){ .name = f[0], .display_name = f[0], .image = f[1],
		.cpu_millis = strtoll(f[2], NULL, 10),
		.memory_bytes = strtoll(f[3], NULL, 10) << 20,
		.gpus = (int)strtol(f[4], NULL, 10), .network = f[5], .gpu_model = f[6] };
	return 0;
}

static int parse_list(char *s, char **out, int max)
{
	int n = 0;

	for (char *c = s; c && n < max; n++) {
		out[n] = c;
		c = strchr(c, ',');
		if (c)
			*c++ = '\0';
	}
	out[n] = NULL;
	return n;
}

/* S:CPU_MILLIS:MEM_MIB:GPUS */
static void parse_quota(const char *v, struct spawner_quota *q)
{
	long long cpu = 0, mem = 0;

	if (sscanf(v, "%d:%lld:%lld:%d", &q->max_servers, &cpu, &mem, &q->max_gpus) >= 1) {
		q->max_cpu_millis = cpu;
		q->max_memory_bytes = mem << 20;
	}
}

/* Consumes the leading --options; returns the index of STATE_DIR or -1. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	int i = 1;

	o->backend = "process";
	o->options = "{}";
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i += 2) {
		const char *k = argv[i] + 2;
		char *v = argv[i + 1];

		if (!strcmp(k, "backend"))
			o->backend = v;
		else if (!strcmp(k, "profile") && o->n_profiles < DRIVE_MAX) {
			if (parse_profile(v, &o->profiles[o->n_profiles++]) < 0)
				return -1;
		} else if (!strcmp(k, "images"))
			parse_list(v, o->images, DRIVE_MAX);
		else if (!strcmp(k, "quota"))
			parse_quota(v, &o->quota);
		else if (!strcmp(k, "options"))
			o->options = v;
		else if (!strcmp(k, "image-store"))
			o->image_store = v;
		else if (!strcmp(k, "uid-base"))
			o->uid_base = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "gpu-glob"))
			o->gpu_glob = v;
		else if (!strcmp(k, "seccomp"))
			o->seccomp = v;
		else if (!strcmp(k, "fail-step"))
			o->fail_step = v;
		else if (!strcmp(k, "env") && o->n_env < DRIVE_MAX)
			o->env[o->n_env++] = v;
		else
			return -1;
	}
	return i;
}

static int drive(struct spawner *sp, struct lws_context *ctx, struct drive *d, const char *mode,
		 int64_t uid, const char *user, const char *server, int64_t timeout,
		 const struct opts *o)
{
	struct err *e = NULL;
	int64_t deadline = time_mono_ms() + timeout;

	d->start_ms = time_mono_ms();
	if (strcmp(mode, "check-options") == 0) {
		if (spawner_check_user_options(sp, o->options, &e) < 0) {
			printf("FAILED %s\n", e->msg);
			err_free(&e);
			return 1;
		}
		printf("OPTIONS ok\n");
		return 0;
	}
	if (strncmp(mode, "adopt-", 6) != 0 &&
	    spawner_server_start(sp, uid, user, server, o->options,
				 (const char *const *)o->env, NULL, &e) < 0) {
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
	if (strcmp(mode, "start-detach") == 0 || strcmp(mode, "adopt-detach") == 0)
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
	struct opts o = { 0 };
	char *dbpath, **a;
	int64_t uid;
	int rc, i = parse_opts(argc, argv, &o), n;

	n = i < 0 ? 0 : argc - i;
	a = i < 0 ? argv : argv + i;
	if (i < 0 || n < 5 || (n > 5 && strcmp(a[5], "--") != 0) ||
	    (strcmp(o.backend, "process") == 0 && n < 7)) {
		fprintf(stderr, "usage: spawner_drive [OPTIONS] STATE MODE USER SERVER TIMEOUT_MS"
			" [-- CMD...]\n");
		return 2;
	}
	log_setup(LOG_DEBUG, LOG_FORMAT_TEXT);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	ctx = lws_create_context(&info);
	d.ctx = ctx;
	d.user = a[2];
	d.server = a[3];
	dbpath = xasprintf("%s/nbgate.db", a[0]);
	if (!ctx || db_open(&db, dbpath, &e) < 0 || (uid = ensure_user(db, a[2])) < 0)
		goto fail;
	cfg = (struct spawner_cfg){
		.lws = ctx, .db = db, .state_dir = a[0],
		.server_cmd = n > 6 ? (const char *const *)&a[6] : NULL,
		.spawn_timeout_ms = strtoll(a[4], NULL, 10) / 2, .stop_timeout_ms = 2000,
		.on_event = on_event, .event_arg = &d,
		.profiles = o.profiles, .n_profiles = o.n_profiles,
		.images = o.images[0] ? (const char *const *)o.images : NULL,
		.quota = o.quota, .image_store = o.image_store, .uid_base = o.uid_base,
		.gpu_dev_glob = o.gpu_glob, .sandbox_fail_step = o.fail_step,
		.seccomp_profile = o.seccomp,
	};
	if (spawner_new(o.backend, &cfg, &sp, &e) < 0 || spawner_adopt_all(sp, &e) < 0)
		goto fail;
	rc = drive(sp, ctx, &d, a[1], uid, a[2], a[3], strtoll(a[4], NULL, 10), &o);
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
