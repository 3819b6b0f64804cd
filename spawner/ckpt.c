/*
 * spawner/ckpt: checkpoint and resume on top of the lifecycle state
 * machine (DESIGN.md "Checkpoint", "Server lifecycle"; issue 4 items 4
 * and 5). The backend's checkpoint/restore ops do the work; this file
 * decides what happens around them:
 *
 *   running/culling -> checkpointing -> suspended -> restoring -> running
 *
 * - Disk checks come before anything changes (no row, no state change): a
 *   dump must leave ckpt.min_free_bytes free in ckpt.dir, and a criu dump
 *   must fit the user's checkpoint quota. Refused with ENOSPC / HTTP 507.
 * - Fallbacks criu -> commit -> stop: a mode the backend cannot do
 *   (ENOTSUP, criu not usable) is skipped at once; a dump that failed
 *   with the server still alive leaves it running and untouched, and a
 *   manual checkpoint ends there, while a cull goes on with the next mode
 *   (which stops the server: else a server whose dumps always fail would
 *   never be culled); a dump that failed after the server died goes on
 *   with the next mode (commit needs only the upper dir; stop of a dead
 *   server only records it).
 * - A checkpoint is tied to the image and profile it was taken with; a
 *   server resumes from its newest 'ready'/'restored' row that matches,
 *   else it starts fresh (home kept) and the messages say why.
 * - A failed restore marks the row 'broken' (kept: the last good
 *   checkpoint is never deleted before a restore from it succeeded) and
 *   falls back to a plain start.
 * - Retention after every successful checkpoint: newest keep_per_server
 *   rows per server, then the user's quota, never the row a suspended
 *   server resumes from.
 *
 * Every message goes through spawner_transition()/spawner_progress(), so
 * the progress stream and the "Resuming" page show them. Event-loop
 * thread only.
 */
#define LOG_PREFIX "spawner/ckpt: "

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/ckpt_internal.h"

/* statvfs() walks up to the nearest existing parent of ckpt.dir (it may
 * not exist before the first dump); bounded by the path's depth. */
#define CKPT_PARENT_WALK_MAX 64

static const char *const mode_names[SPAWNER_CKPT_MODE_COUNT] = {
	[SPAWNER_CKPT_CRIU] = "criu",
	[SPAWNER_CKPT_COMMIT] = "commit",
	[SPAWNER_CKPT_STOP] = "stop",
};

const char *spawner_ckpt_mode_name(enum spawner_ckpt_mode mode)
{
	if ((unsigned)mode >= SPAWNER_CKPT_MODE_COUNT)
		return "unknown";
	return mode_names[mode];
}

int spawner_ckpt_mode_parse(const char *name)
{
	for (int i = 0; i < SPAWNER_CKPT_MODE_COUNT; i++)
		if (name && strcmp(mode_names[i], name) == 0)
			return i;
	return -1;
}

/* Call before spawner_adopt_all(): startup deletes unfinished dumps below
 * cfg->dir. Strings stay borrowed. */
void spawner_set_ckpt_cfg(struct spawner *sp, const struct spawner_ckpt_cfg *cfg)
{
	sp->ckpt = *cfg;
}

/* Hands a local error to the caller's err (or frees it); returns -code. */
static int err_hand(struct err **err, struct err **local)
{
	int rc = -(*local)->code;

	if (err && !*err)
		*err = steal_ptr(local);
	else
		err_free(local);
	return rc;
}

/* Appends "; <text>" to *why (the fallbacks taken so far). */
static void why_add(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(char **why, const char *fmt, ...)
{
	va_list ap;
	char *s, *old = *why;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	*why = old ? xasprintf("%s; %s", old, s) : s;
	if (old) {
		free(old);
		free(s);
	}
}

/* Logs a failed follow-up step of a completion (nobody to return it to). */
static void log_drop(struct err **e, const char *what, const struct spawner_server *srv)
{
	if (*e)
		log_err("%s '%s': %s", what, srv->slug, (*e)->msg);
	err_free(e);
}

/* ---- disk checks ---- */

/* Free bytes (for unprivileged writers too: f_bavail) of dir's filesystem. */
static int dir_free_bytes(const char *dir, int64_t *out, struct err **err)
{
	cleanup_free char *p = xstrdup(dir);
	struct statvfs v;

	for (int i = 0; i < CKPT_PARENT_WALK_MAX; i++) {
		char *slash;

		if (statvfs(p, &v) == 0) {
			unsigned long long b = (unsigned long long)v.f_bavail * v.f_frsize;

			*out = b > (unsigned long long)INT64_MAX ? INT64_MAX : (int64_t)b;
			return 0;
		}
		slash = strrchr(p, '/');
		if (errno != ENOENT || !slash)
			break;
		slash[slash == p ? 1 : 0] = '\0';
	}
	return err_set_errno(err, "free space of '%s'", dir);
}

/*
 * The checks before a dump. The estimate is the backend's checkpoint_size
 * (memory in use); unknown (-1 or no op) counts as 0, and then only the
 * min_free margin protects the disk.
 */
static int disk_check(struct spawner *sp, struct spawner_server *srv,
		      enum spawner_ckpt_mode mode, struct err **err)
{
	int64_t est = sp->ops->checkpoint_size ? sp->ops->checkpoint_size(sp, srv) : -1;
	int64_t avail = 0, min_free = spawner__ckpt_min_free(sp);
	int64_t quota = sp->ckpt.user_quota_bytes, used = 0;

	if (mode == SPAWNER_CKPT_STOP || !sp->ckpt.dir)
		return 0;
	if (est < 0)
		est = 0;
	if (dir_free_bytes(sp->ckpt.dir, &avail, err) < 0)
		return err_wrap(err, "checkpoint '%s'", srv->slug);
	if (avail - est < min_free)
		return err_set_http(err, 507, ENOSPC,
				    "checkpoint '%s' refused: '%s' has %lld bytes free, the "
				    "dump needs about %lld and %lld must stay free", srv->slug,
				    sp->ckpt.dir, (long long)avail, (long long)est,
				    (long long)min_free);
	/* Commit writes to the image store: its quota is not ours to check. */
	if (mode != SPAWNER_CKPT_CRIU || quota <= 0)
		return 0;
	if (spawner__ckpt_user_bytes(sp, srv->user_id, &used, err) < 0)
		return err_wrap(err, "checkpoint '%s'", srv->slug);
	if (used > quota - est)
		return err_set_http(err, 507, ENOSPC,
				    "checkpoint '%s' refused: user '%s' has %lld bytes of "
				    "checkpoints, the dump needs about %lld and the quota is %lld",
				    srv->slug, srv->user, (long long)used, (long long)est,
				    (long long)quota);
	return 0;
}

/* ---- beginning a checkpoint, with fallbacks ---- */

/* Whether mode can be tried at all; *no says why not. */
static bool mode_usable(const struct spawner *sp, enum spawner_ckpt_mode mode, const char **no)
{
	if (mode == SPAWNER_CKPT_STOP)
		return true;
	if (!sp->ops->checkpoint) {
		*no = "the backend cannot checkpoint";
		return false;
	}
	if (mode == SPAWNER_CKPT_CRIU && !sp->ckpt.criu_usable) {
		*no = "criu is not available";
		return false;
	}
	if (mode == SPAWNER_CKPT_CRIU && !sp->ckpt.dir) {
		*no = "no checkpoint dir configured";
		return false;
	}
	return true;
}

/* A dump that failed with the server alive: it goes on as before. */
static void back_to_running(struct spawner *sp, struct spawner_server *srv, const char *why)
{
	cleanup_free char *msg = xasprintf("checkpoint failed, server left running: %s", why);
	struct err *e = NULL;

	if (srv->state != SPAWNER_CHECKPOINTING)
		return;
	if (spawner_transition(sp, srv, SPAWNER_RUNNING, msg, &e) < 0)
		log_drop(&e, "return to running", srv);
}

/*
 * One attempt in `mode`: the 'writing' row, the state (a transition the
 * first time, a progress message on a fallback) and the backend op. On
 * failure the row is gone again and the state unchanged by this call.
 */
static int ckpt_begin(struct spawner *sp, struct spawner_server *srv,
		      enum spawner_ckpt_mode mode, const char *reason, const char *why,
		      struct err **err)
{
	struct spawner_checkpoint *ck = NULL;
	cleanup_free char *msg = NULL;
	struct err *e = NULL;
	int rc;

	if (spawner__ckpt_insert(sp, srv, mode, reason, why, &ck, err) < 0)
		return -EIO;
	msg = why ? xasprintf("%s; checkpointing (%s): %s", why, spawner_ckpt_mode_name(mode),
			      reason)
		  : xasprintf("checkpointing (%s): %s", spawner_ckpt_mode_name(mode), reason);
	if (srv->state == SPAWNER_CHECKPOINTING) {
		spawner_progress(sp, srv, 50, msg);
		rc = 0;
	} else {
		rc = spawner_transition(sp, srv, SPAWNER_CHECKPOINTING, msg, err);
	}
	if (rc == 0)
		rc = sp->ops->checkpoint(sp, srv, ck, err);
	if (rc < 0 && spawner__ckpt_remove(sp, ck, &e) < 0)
		log_drop(&e, "drop checkpoint row of", srv);
	spawner__ckpt_free(ck);
	return rc;
}

/*
 * The last resort, keeping the home. Alive: a normal stop. Dead: only
 * the record (nothing is left to stop). Checkpointing -> stopping/stopped
 * are not in the lifecycle table (yet): a live server goes through
 * running, a dead one ends failed, both with the same message.
 */
static int stop_instead(struct spawner *sp, struct spawner_server *srv, bool alive,
			const char *reason, const char *why, struct err **err)
{
	cleanup_free char *msg = NULL;
	struct err *e = NULL;
	enum spawner_state to;

	if (!alive) {
		msg = xasprintf("checkpoint failed (%s); the server is stopped, your home is kept",
				why ? why : "no checkpoint mode left");
		to = spawner_transition_allowed(srv->state, SPAWNER_STOPPED) ? SPAWNER_STOPPED
									      : SPAWNER_FAILED;
		return spawner_transition(sp, srv, to, msg, err);
	}
	msg = why ? xasprintf("%s; stopping the server instead (your home is kept)", why)
		  : xasprintf("stopping: %s (your home is kept)", reason);
	if (!spawner_transition_allowed(srv->state, SPAWNER_STOPPING) &&
	    spawner_transition(sp, srv, SPAWNER_RUNNING, msg, err) < 0)
		return -EIO;
	if (spawner_transition(sp, srv, SPAWNER_STOPPING, msg, err) < 0)
		return -EIO;
	if (spawner_stop(sp, srv, &e) < 0) {
		struct err *e2 = NULL;

		if (spawner_transition(sp, srv, SPAWNER_FAILED, e->msg, &e2) < 0)
			log_drop(&e2, "record failed stop of", srv);
		return err_hand(err, &e);
	}
	return 0;
}

/*
 * Tries mode, then the next ones. `checked`: the disk check of the first
 * usable mode was already done by the caller. `why0` (borrowed, may be
 * NULL): what failed before. Returns 0 once a mode has begun.
 */
static int try_modes(struct spawner *sp, struct spawner_server *srv, int mode,
		     const char *reason, bool alive, bool checked, const char *why0,
		     struct err **err)
{
	cleanup_free char *why = why0 ? xstrdup(why0) : NULL;
	struct err *e = NULL;

	for (; mode < SPAWNER_CKPT_STOP; mode++) {
		const char *name = spawner_ckpt_mode_name(mode), *no = NULL;

		if (!mode_usable(sp, mode, &no)) {
			why_add(&why, "%s: %s", name, no);
			continue;
		}
		if (!checked && disk_check(sp, srv, mode, &e) < 0) {
			why_add(&why, "%s: %s", name, e->msg);
			err_free(&e);
			continue;
		}
		checked = false; /* the next mode needs its own check */
		if (ckpt_begin(sp, srv, mode, reason, why, &e) == 0)
			return 0;
		if (e->code != ENOTSUP && alive) {
			back_to_running(sp, srv, e->msg);
			err_wrap(&e, "checkpoint '%s'", srv->slug);
			return err_hand(err, &e);
		}
		why_add(&why, "%s failed: %s", name, e->msg);
		err_free(&e);
	}
	return stop_instead(sp, srv, alive, reason, why, err);
}

/* The first mode that can be tried, from mode on. */
static int first_usable(const struct spawner *sp, int mode)
{
	const char *no;

	while (mode < SPAWNER_CKPT_STOP && !mode_usable(sp, mode, &no))
		mode++;
	return mode;
}

int spawner_server_checkpoint(struct spawner *sp, const char *user, const char *server,
			      enum spawner_ckpt_mode mode, const char *reason,
			      struct err **err)
{
	struct spawner_server *srv = spawner_server_find(sp, user, server);
	int rc;

	if (!srv)
		return err_set_http(err, 404, ENOENT, "checkpoint: no server '%s' for user '%s'",
				    server ? server : "", user);
	if ((unsigned)mode >= SPAWNER_CKPT_MODE_COUNT)
		return err_set_http(err, 400, EINVAL, "checkpoint: unknown mode %d", (int)mode);
	if (srv->state != SPAWNER_RUNNING && srv->state != SPAWNER_CULLING)
		return err_set_http(err, 409, EBUSY, "checkpoint '%s': it is %s, not running",
				    srv->slug, spawner_state_name(srv->state));
	if (mode != SPAWNER_CKPT_STOP && !sp->ops->checkpoint)
		return err_set_http(err, 409, ENOTSUP, "checkpoint '%s': backend '%s' cannot "
				    "checkpoint (use stop)", srv->slug, sp->ops->name);
	if (!reason)
		reason = "manual";
	/* Refuse before anything changes (DESIGN: no dump that would fill
	 * the disk). Fallbacks after this point check again per mode. */
	rc = disk_check(sp, srv, first_usable(sp, mode), err);
	if (rc < 0)
		return rc;
	return try_modes(sp, srv, mode, reason, true, true, NULL, err);
}

/* ---- completion of a checkpoint ---- */

/* The backend's message (sizes, timings) follows ours when it gave one. */
static void done_ok(struct spawner *sp, struct spawner_server *srv,
		    const struct spawner_checkpoint *ck, int64_t size_bytes, const char *message)
{
	cleanup_free char *msg = xasprintf("suspended (%s): %s%s%s",
					   spawner_ckpt_mode_name(ck->mode),
					   ck->reason ? ck->reason : "manual",
					   message ? "; " : "", message ? message : "");
	struct err *e = NULL;

	/* Row first: a crash in between leaves a ready row and a server in
	 * checkpointing, which adoption turns into failed (the home is kept
	 * and the row can still be listed and deleted). */
	if (spawner__ckpt_set_state(sp, ck->id, "ready", size_bytes < 0 ? 0 : size_bytes,
				    ck->message, &e) < 0)
		log_drop(&e, "record checkpoint of", srv);
	if (spawner_transition(sp, srv, SPAWNER_SUSPENDED, msg, &e) < 0)
		log_drop(&e, "suspend", srv);
	if (spawner__ckpt_retention(sp, srv, &e) < 0)
		log_drop(&e, "checkpoint retention for", srv);
}

/* The row ckpt_id if it is srv's dump in progress, else NULL (stale). */
static struct spawner_checkpoint *own_row(struct spawner *sp, struct spawner_server *srv,
					  int64_t ckpt_id, enum spawner_state want,
					  const char *row_state)
{
	struct spawner_checkpoint *ck = NULL;
	struct err *e = NULL;

	if (spawner__ckpt_get(sp, ckpt_id, &ck, &e) < 0) {
		log_warn("'%s': completion for checkpoint %lld ignored: %s", srv->slug,
			 (long long)ckpt_id, e->msg);
		err_free(&e);
		return NULL;
	}
	if (ck->server_id != srv->id || srv->state != want ||
	    (row_state && strcmp(ck->state, row_state) != 0)) {
		log_warn("'%s': stale completion for checkpoint %lld (server %s, row %s) ignored",
			 srv->slug, (long long)ckpt_id, spawner_state_name(srv->state), ck->state);
		spawner__ckpt_free(ck);
		return NULL;
	}
	return ck;
}

void spawner_checkpoint_done(struct spawner *sp, struct spawner_server *srv, int64_t ckpt_id,
			     bool ok, bool alive, int64_t size_bytes, const char *message)
{
	struct spawner_checkpoint *ck;
	cleanup_free char *why = NULL;
	struct err *e = NULL;

	ck = own_row(sp, srv, ckpt_id, SPAWNER_CHECKPOINTING, "writing");
	if (!ck)
		return;
	if (ok) {
		done_ok(sp, srv, ck, size_bytes, message);
		spawner__ckpt_free(ck);
		return;
	}
	if (!message)
		message = "unknown error";
	/* A failed dump leaves the server running and untouched. A manual
	 * checkpoint stops there (the user asked for that mode and sees why);
	 * a cull goes on with the next mode, which stops the server itself:
	 * else a server whose dumps always fail would never be culled. */
	if (alive && (!ck->reason || strcmp(ck->reason, "manual") == 0)) {
		back_to_running(sp, srv, message);
	} else {
		why = ck->message ? xasprintf("%s; %s failed: %s", ck->message,
					      spawner_ckpt_mode_name(ck->mode), message)
				  : xasprintf("%s failed: %s", spawner_ckpt_mode_name(ck->mode),
					      message);
		/* The failed row goes after the next one exists: SQLite would
		 * hand its id (the highest) to the next row, and a late
		 * completion for it must not match the new dump. */
		if (try_modes(sp, srv, ck->mode + 1, ck->reason ? ck->reason : "manual", alive,
			      false, why, &e) < 0)
			log_drop(&e, "checkpoint fallback for", srv);
	}
	if (spawner__ckpt_remove(sp, ck, &e) < 0)
		log_drop(&e, "drop failed checkpoint of", srv);
	spawner__ckpt_free(ck);
}

/* ---- resume ---- */

/*
 * restoring -> starting and a plain start (home kept), saying why. A
 * failed start ends failed with the backend's reason, as in
 * spawner_server_start().
 */
static int start_fresh(struct spawner *sp, struct spawner_server *srv, const char *why,
		       struct err **err)
{
	cleanup_free char *msg =
		xasprintf("%s; starting a fresh server (your home and files are kept)", why);
	struct err *e = NULL, *e2 = NULL;

	srv->started_ms = time_now_ms();
	if (spawner_transition(sp, srv, SPAWNER_STARTING, msg, err) < 0)
		return err_wrap(err, "resume '%s'", srv->slug);
	if (spawner_start(sp, srv, &e) < 0) {
		if (spawner_transition(sp, srv, SPAWNER_FAILED, e->msg, &e2) < 0)
			log_drop(&e2, "record failed start of", srv);
		err_wrap(&e, "resume '%s': start", srv->slug);
		return err_hand(err, &e);
	}
	return 0;
}

/* Marks ck broken (unless the backend simply cannot restore) and starts fresh. */
static int restore_failed(struct spawner *sp, struct spawner_server *srv,
			  const struct spawner_checkpoint *ck, const char *msg, bool broken,
			  struct err **err)
{
	cleanup_free char *why = xasprintf("restore failed: %s", msg ? msg : "unknown error");
	struct err *e = NULL;

	/* The row is kept: a broken checkpoint is deleted by the user or
	 * retention, never silently here. */
	if (broken && spawner__ckpt_set_state(sp, ck->id, "broken", -1, why, &e) < 0)
		log_drop(&e, "mark checkpoint broken of", srv);
	return start_fresh(sp, srv, why, err);
}

/* Why srv has no row to resume from (for the messages). Caller frees. */
static char *no_row_reason(struct spawner *sp, const struct spawner_server *srv)
{
	cleanup_free char *image = spawner__ckpt_server_image(sp, srv);
	struct spawner_checkpoint *v = NULL;
	struct err *e = NULL;
	char *r = NULL;
	int n = 0;

	if (spawner__ckpt_list(sp, srv->id, &v, &n, &e) < 0) {
		err_free(&e);
		return xstrdup("no checkpoint to resume from");
	}
	for (int i = 0; i < n && !r; i++)
		if (strcmp(v[i].state, "ready") == 0 || strcmp(v[i].state, "restored") == 0)
			r = xasprintf("checkpoint %lld was taken with image '%s' and profile "
				      "'%s', the server now uses image '%s' and profile '%s'",
				      (long long)v[i].id, v[i].image ? v[i].image : "",
				      v[i].profile ? v[i].profile : "", image ? image : "",
				      srv->profile ? srv->profile : "");
	if (!r)
		r = xstrdup(n ? "no usable checkpoint (the last one is broken)"
			      : "no checkpoint to resume from");
	spawner_checkpoints_free(v, n);
	return r;
}

static int check_resumable(const struct spawner_server *srv, struct err **err)
{
	switch (srv->state) {
	case SPAWNER_SUSPENDED:
		return 1;
	case SPAWNER_RUNNING:
	case SPAWNER_CULLING:
	case SPAWNER_STARTING:
	case SPAWNER_RESTORING:
		return 0; /* every held request may ask: nothing to do */
	case SPAWNER_CHECKPOINTING:
	case SPAWNER_STOPPING:
		return err_set_http(err, 409, EBUSY, "resume '%s': it is %s; try again later",
				    srv->slug, spawner_state_name(srv->state));
	default:
		return err_set_http(err, 409, EINVAL, "resume '%s': it is %s; start it instead",
				    srv->slug, spawner_state_name(srv->state));
	}
}

/* suspended -> restoring and the backend's restore from ck. */
static int restore_from(struct spawner *sp, struct spawner_server *srv,
			const struct spawner_checkpoint *ck, struct err **err)
{
	cleanup_free char *msg = xasprintf("restoring (%s) from checkpoint %lld (%s)",
					   spawner_ckpt_mode_name(ck->mode), (long long)ck->id,
					   ck->reason ? ck->reason : "manual");
	struct err *e = NULL;
	int rc;

	if (spawner_transition(sp, srv, SPAWNER_RESTORING, msg, err) < 0)
		return err_wrap(err, "resume '%s'", srv->slug);
	if (sp->ops->restore)
		rc = sp->ops->restore(sp, srv, ck, &e);
	else
		rc = err_set(&e, ENOTSUP, "backend '%s' cannot restore", sp->ops->name);
	if (rc == 0)
		return 0;
	rc = restore_failed(sp, srv, ck, e->msg, e->code != ENOTSUP, err);
	err_free(&e);
	return rc;
}

int spawner_server_resume(struct spawner *sp, const char *user, const char *server,
			  struct err **err)
{
	struct spawner_server *srv = spawner_server_find(sp, user, server);
	struct spawner_checkpoint *ck = NULL;
	cleanup_free char *why = NULL;
	int rc;

	if (!srv)
		return err_set_http(err, 404, ENOENT, "resume: no server '%s' for user '%s'",
				    server ? server : "", user);
	rc = check_resumable(srv, err);
	if (rc <= 0)
		return rc;
	if (spawner__ckpt_resume_row(sp, srv, &ck, err) < 0)
		return err_wrap(err, "resume '%s'", srv->slug);
	/* Resuming is activity: the culler must not take it straight back. */
	srv->last_activity_ms = time_now_ms();
	srv->activity_source = "resume";
	if (ck) {
		rc = restore_from(sp, srv, ck, err);
		spawner__ckpt_free(ck);
		return rc;
	}
	why = no_row_reason(sp, srv);
	if (spawner_transition(sp, srv, SPAWNER_RESTORING, why, err) < 0)
		return err_wrap(err, "resume '%s'", srv->slug);
	return start_fresh(sp, srv, why, err);
}

void spawner_restore_done(struct spawner *sp, struct spawner_server *srv, int64_t ckpt_id,
			  bool ok, const char *message)
{
	struct spawner_checkpoint *ck = own_row(sp, srv, ckpt_id, SPAWNER_RESTORING, NULL);
	cleanup_free char *msg = NULL;
	struct err *e = NULL;

	if (!ck)
		return;
	if (!ok) {
		if (restore_failed(sp, srv, ck, message, true, &e) < 0)
			log_drop(&e, "fresh start after a failed restore of", srv);
		spawner__ckpt_free(ck);
		return;
	}
	msg = xasprintf("resumed (%s) from checkpoint %lld%s%s%s",
			spawner_ckpt_mode_name(ck->mode), (long long)ck->id,
			ck->mode == SPAWNER_CKPT_COMMIT ? ": files and installed packages kept, "
							  "kernels were restarted" : "",
			message ? "; " : "", message ? message : "");
	if (spawner__ckpt_set_state(sp, ck->id, "restored", -1, ck->message, &e) < 0)
		log_drop(&e, "record restored checkpoint of", srv);
	if (spawner_transition(sp, srv, SPAWNER_RUNNING, msg, &e) < 0)
		log_drop(&e, "resume", srv);
	spawner__ckpt_free(ck);
}

/* ---- the catalog for the API ---- */

int spawner_checkpoints_list(struct spawner *sp, const struct spawner_server *srv,
			     struct spawner_checkpoint **out, int *n, struct err **err)
{
	return spawner__ckpt_list(sp, srv->id, out, n, err);
}

int spawner_checkpoint_delete(struct spawner *sp, struct spawner_server *srv, int64_t id,
			      struct err **err)
{
	struct spawner_checkpoint *ck = NULL;
	struct err *e = NULL;
	int rc;

	if (spawner__ckpt_get(sp, id, &ck, &e) < 0 && e->code != ENOENT)
		return err_hand(err, &e);
	err_free(&e);
	if (!ck || ck->server_id != srv->id) {
		spawner__ckpt_free(ck);
		return err_set_http(err, 404, ENOENT, "server '%s' has no checkpoint %lld",
				    srv->slug, (long long)id);
	}
	if (strcmp(ck->state, "writing") == 0)
		rc = err_set_http(err, 409, EBUSY, "checkpoint %lld of '%s' is being written",
				  (long long)id, srv->slug);
	else if (spawner__ckpt_protected(sp, ck))
		rc = err_set_http(err, 409, EBUSY, "checkpoint %lld is the one '%s' resumes "
				  "from; resume or stop the server first", (long long)id,
				  srv->slug);
	else
		rc = spawner__ckpt_remove(sp, ck, err);
	spawner__ckpt_free(ck);
	return rc;
}
