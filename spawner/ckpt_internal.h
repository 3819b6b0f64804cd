/*
 * spawner/ckpt_internal.h: the checkpoint catalog (the `checkpoints` table
 * of migration 4) shared by spawner/ckpt.c (state logic and fallbacks),
 * spawner/spawner.c (stop, remove and adoption) and the backends.
 *
 * A row is one checkpoint of one server: 'writing' while the dump runs
 * (garbage after a crash: deleted with its files at startup), 'ready'
 * once the dump finished, 'restored' once a restore from it succeeded and
 * 'broken' when a restore from it failed (kept: the user or retention
 * deletes it). Deleting a row always deletes its files first; a row whose
 * files could not be deleted is kept so nothing leaks unseen.
 *
 * Everything here runs on the event-loop thread and only touches the
 * database and (for criu rows) the image dir below sp->ckpt.dir.
 */
#ifndef NBGATE_SPAWNER_CKPT_INTERNAL_H
#define NBGATE_SPAWNER_CKPT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "spawner/spawner.h"

/* The defaults of struct spawner_ckpt_cfg's zero values. */
#define SPAWNER_CKPT_KEEP_DEFAULT 3
#define SPAWNER_CKPT_MIN_FREE_DEFAULT (1LL << 30)

/* The effective values of sp->ckpt (zero -> default). */
int spawner__ckpt_keep(const struct spawner *sp);
int64_t spawner__ckpt_min_free(const struct spawner *sp);

/*
 * The image srv runs (a checkpoint is tied to it): user_options "image"
 * when it names an allowed image, else the profile's image ("jupyterlab"
 * when the profile names none), NULL for backends without profiles and
 * images (process). Mirrors local.c's option parsing. Caller owns the
 * result (free()).
 */
char *spawner__ckpt_server_image(const struct spawner *sp, const struct spawner_server *srv);

/* Frees one row's strings and the row itself. NULL ok. */
void spawner__ckpt_free(struct spawner_checkpoint *ck);

/*
 * Inserts a 'writing' row for srv in `mode` (criu or commit) with the
 * image and profile srv runs, reason and message (borrowed, may be NULL),
 * and sets its path: "<ckpt.dir>/<slug>/<id>" for criu (the dir the
 * backend dumps into; it creates it 0700), "<image>-ckpt-<slug>-<id>" for
 * commit (the image ref the layer is stored as). *out is owned: free with
 * spawner__ckpt_free(). Errors: EINVAL criu without ckpt.dir, EIO.
 */
int spawner__ckpt_insert(struct spawner *sp, const struct spawner_server *srv,
			 enum spawner_ckpt_mode mode, const char *reason, const char *message,
			 struct spawner_checkpoint **out, struct err **err);

/*
 * Replaces row id's path (borrowed): backends whose dump ends up somewhere
 * else than the path the row was inserted with (kubernetes: the kubelet's
 * archive, "<node>:<archive>") record it before spawner_checkpoint_done().
 * Errors: EIO.
 */
int spawner__ckpt_set_path(struct spawner *sp, int64_t ckpt_id, const char *path,
			   struct err **err);

/* Row `id` (any server). *out owned. Errors: ENOENT (404), EIO. */
int spawner__ckpt_get(struct spawner *sp, int64_t id, struct spawner_checkpoint **out,
		      struct err **err);

/*
 * Sets row id's state ("ready", "restored", "broken"); size_bytes when
 * >= 0 (else unchanged); message (borrowed, NULL clears it). Errors: EIO.
 */
int spawner__ckpt_set_state(struct spawner *sp, int64_t id, const char *state,
			    int64_t size_bytes, const char *message, struct err **err);

/* The rows of server_id, newest first. *out owned (spawner_checkpoints_free). */
int spawner__ckpt_list(struct spawner *sp, int64_t server_id, struct spawner_checkpoint **out,
		       int *n, struct err **err);

/*
 * The row srv would resume from: its newest row in 'ready' or 'restored'
 * whose image and profile equal srv's (NULL equals NULL). *out owned, NULL
 * when there is none (returns 0). Errors: EIO.
 */
int spawner__ckpt_resume_row(struct spawner *sp, const struct spawner_server *srv,
			     struct spawner_checkpoint **out, struct err **err);

/*
 * True when ck must not be deleted now: it is being written, or it is the
 * row its server resumes from while that server is suspended or
 * restoring. Database errors count as protected (never delete blindly).
 */
bool spawner__ckpt_protected(struct spawner *sp, const struct spawner_checkpoint *ck);

/* Sum of size_bytes over every row of every server of user_id. Errors: EIO. */
int spawner__ckpt_user_bytes(struct spawner *sp, int64_t user_id, int64_t *out,
			     struct err **err);

/*
 * Deletes ck's files, then its row. Files: the backend's
 * ops->checkpoint_forget when it has one (it may own the privileges and,
 * for commit rows, the image store), else for criu rows
 * spawner__ckpt_remove_files(); commit rows without the hook leave their
 * image in the store (logged). When the files cannot be deleted the row is
 * kept and marked 'broken' saying why (unless it is 'writing' at startup,
 * see spawner__ckpt_drop_writing) and the error is returned.
 */
int spawner__ckpt_remove(struct spawner *sp, const struct spawner_checkpoint *ck,
			 struct err **err);

/*
 * rm -r of a criu row's image dir: only a path strictly below ckpt.dir
 * without '.'/'..' components, opened component by component with
 * O_NOFOLLOW (a symlink anywhere below ckpt.dir is refused, never
 * followed), depth bounded. A missing dir is not an error. Commit rows:
 * nothing (returns 0). For backends' checkpoint_forget too.
 * Errors: EPERM path outside ckpt.dir, ELOOP symlink/too deep, errno.
 */
int spawner__ckpt_remove_files(struct spawner *sp, const struct spawner_checkpoint *ck,
			       struct err **err);

/*
 * Retention after srv's checkpoint became ready: keeps the newest
 * keep_per_server rows of srv, then deletes the user's oldest rows while
 * their total size is over user_quota_bytes. Never deletes a protected row
 * (spawner__ckpt_protected). Best effort: failures are returned after the
 * remaining rows were tried (first error kept).
 */
int spawner__ckpt_retention(struct spawner *sp, const struct spawner_server *srv,
			    struct err **err);

/*
 * Deletes every row of srv with its files (stop while suspended, remove).
 * Rows whose files cannot be deleted are kept (first error returned).
 */
int spawner__ckpt_drop_server(struct spawner *sp, const struct spawner_server *srv,
			      struct err **err);

/*
 * Startup (spawner_adopt_all): deletes every 'writing' row with its files:
 * a dump that was running when the gateway stopped never completed.
 * A row whose files cannot be deleted becomes 'broken' saying why.
 */
int spawner__ckpt_drop_writing(struct spawner *sp, struct err **err);

/*
 * Activity sources are static strings (struct spawner_server); this maps
 * a persisted name back to the static one, NULL when unknown or NULL.
 */
const char *spawner__activity_source(const char *name);

#endif
