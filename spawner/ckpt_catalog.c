/*
 * spawner/ckpt_catalog: the `checkpoints` table (migration 4) and the
 * files behind its rows. See spawner/ckpt_internal.h for the row states
 * and spawner/ckpt.c for the state logic that uses them.
 */
#define LOG_PREFIX "spawner/ckpt: "

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/db.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "spawner/ckpt_internal.h"

/* Image dirs CRIU writes are flat (a few dozen files); anything deeper is
 * not ours. Bounds the recursion of rm_tree_at(). */
#define CKPT_RM_DEPTH_MAX 16

#define CKPT_COLS                                                                \
	"SELECT id, server_id, mode, state, path, size_bytes, created, image,"  \
	" profile, reason, message FROM checkpoints"

/* ---- configuration ---- */

int spawner__ckpt_keep(const struct spawner *sp)
{
	return sp->ckpt.keep_per_server > 0 ? sp->ckpt.keep_per_server
					    : SPAWNER_CKPT_KEEP_DEFAULT;
}

int64_t spawner__ckpt_min_free(const struct spawner *sp)
{
	return sp->ckpt.min_free_bytes > 0 ? sp->ckpt.min_free_bytes
					   : SPAWNER_CKPT_MIN_FREE_DEFAULT;
}

/* Hands a local error to the caller's err (or frees it); returns -code. */
static int cat_err_hand(struct err **err, struct err **local)
{
	int rc = -(*local)->code;

	if (err && !*err)
		*err = steal_ptr(local);
	else
		err_free(local);
	return rc;
}

static bool str_eq(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

static const struct spawner_profile *profile_of(const struct spawner *sp,
						const struct spawner_server *srv)
{
	for (int i = 0; i < sp->cfg.n_profiles; i++)
		if (str_eq(sp->cfg.profiles[i].name, srv->profile))
			return &sp->cfg.profiles[i];
	/* local.c starts with the first profile when none is named. */
	return !srv->profile && sp->cfg.n_profiles > 0 ? &sp->cfg.profiles[0] : NULL;
}

static bool image_allowed(const struct spawner *sp, const char *name)
{
	for (size_t i = 0; sp->cfg.images && sp->cfg.images[i]; i++)
		if (strcmp(sp->cfg.images[i], name) == 0)
			return true;
	return false;
}

/*
 * NEEDSWORK: a field set by the backend at start (srv->image) would say
 * this without re-reading user_options; until spawner.h has one, this
 * mirrors local_parse_options().
 */
char *spawner__ckpt_server_image(const struct spawner *sp, const struct spawner_server *srv)
{
	const struct spawner_profile *prof = profile_of(sp, srv);
	cJSON *o = srv->user_options ? cJSON_Parse(srv->user_options) : NULL;
	const cJSON *img = cJSON_GetObjectItemCaseSensitive(o, "image");
	char *r = NULL;

	if (cJSON_IsString(img) && image_allowed(sp, img->valuestring))
		r = xstrdup(img->valuestring);
	else if (prof)
		r = xstrdup(prof->image && prof->image[0] ? prof->image : "jupyterlab");
	cJSON_Delete(o);
	return r;
}

/* ---- rows ---- */

void spawner__ckpt_free(struct spawner_checkpoint *ck)
{
	if (!ck)
		return;
	spawner_checkpoints_free(ck, 1);
}

static void ckpt_clear(struct spawner_checkpoint *ck)
{
	free(ck->state);
	free(ck->path);
	free(ck->image);
	free(ck->profile);
	free(ck->reason);
	free(ck->message);
	memset(ck, 0, sizeof(*ck));
}

void spawner_checkpoints_free(struct spawner_checkpoint *v, int n)
{
	for (int i = 0; v && i < n; i++)
		ckpt_clear(&v[i]);
	free(v);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? xstrdup(s) : NULL;
}

/* Fills ck from a row of CKPT_COLS. */
static void ckpt_from_row(struct spawner_checkpoint *ck, sqlite3_stmt *st)
{
	int mode = spawner_ckpt_mode_parse((const char *)sqlite3_column_text(st, 2));

	ck->id = sqlite3_column_int64(st, 0);
	ck->server_id = sqlite3_column_int64(st, 1);
	/* An unknown mode (hand edit, newer nbgate) is treated like a criu
	 * dir: deleting it still goes through the below-ckpt.dir checks. */
	ck->mode = mode < 0 ? SPAWNER_CKPT_CRIU : (enum spawner_ckpt_mode)mode;
	ck->state = col_dup(st, 3);
	ck->path = col_dup(st, 4);
	ck->size_bytes = sqlite3_column_int64(st, 5);
	ck->created_ms = sqlite3_column_int64(st, 6);
	ck->image = col_dup(st, 7);
	ck->profile = col_dup(st, 8);
	ck->reason = col_dup(st, 9);
	ck->message = col_dup(st, 10);
	if (!ck->state)
		ck->state = xstrdup("broken");
	if (!ck->path)
		ck->path = xstrdup("");
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Steps st until done, collecting rows (bounded by the table's size). */
static int ckpt_collect(struct spawner *sp, sqlite3_stmt *st, struct spawner_checkpoint **out,
			int *n, struct err **err)
{
	struct spawner_checkpoint *v = NULL;
	int cnt = 0, cap = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, (size_t)cap * sizeof(*v));
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		ckpt_from_row(&v[cnt++], st);
	}
	if (rc != SQLITE_DONE) {
		spawner_checkpoints_free(v, cnt);
		return err_set(err, EIO, "read checkpoints: %s", db_errmsg(sp->cfg.db));
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int ckpt_exec_id(struct spawner *sp, const char *sql, int64_t id, const char *what,
			struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st, sql, err) < 0)
		return err_wrap(err, "%s checkpoint %lld", what, (long long)id);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "%s checkpoint %lld: %s", what, (long long)id,
			       db_errmsg(sp->cfg.db));
	return 0;
}

static char *ckpt_path(const struct spawner *sp, const struct spawner_server *srv,
		       enum spawner_ckpt_mode mode, const char *image, int64_t id)
{
	if (mode == SPAWNER_CKPT_CRIU)
		return xasprintf("%s/%s/%lld", sp->ckpt.dir, srv->slug, (long long)id);
	if (image)
		return xasprintf("%s-ckpt-%s-%lld", image, srv->slug, (long long)id);
	return xasprintf("ckpt-%s-%lld", srv->slug, (long long)id);
}

/* The row without its path (it needs the id); *id receives the new id. */
static int ckpt_insert_row(struct spawner *sp, const struct spawner_server *srv,
			   enum spawner_ckpt_mode mode, const char *image, const char *reason,
			   const char *message, int64_t *id, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st,
		       "INSERT INTO checkpoints (server_id, mode, state, path, created, image,"
		       " profile, reason, message) VALUES (?1, ?2, 'writing', '', ?3, ?4, ?5,"
		       " ?6, ?7) RETURNING id", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, srv->id);
	sqlite3_bind_text(st, 2, spawner_ckpt_mode_name(mode), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, time_now_ms());
	bind_text_or_null(st, 4, image);
	bind_text_or_null(st, 5, srv->profile);
	bind_text_or_null(st, 6, reason);
	bind_text_or_null(st, 7, message);
	if (sqlite3_step(st) != SQLITE_ROW)
		return err_set(err, EIO, "%s", db_errmsg(sp->cfg.db));
	*id = sqlite3_column_int64(st, 0);
	return 0;
}

static int ckpt_set_path(struct spawner *sp, int64_t id, const char *path, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st, "UPDATE checkpoints SET path = ?2 WHERE id = ?1",
		       err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "%s", db_errmsg(sp->cfg.db));
	return 0;
}

int spawner__ckpt_insert(struct spawner *sp, const struct spawner_server *srv,
			 enum spawner_ckpt_mode mode, const char *reason, const char *message,
			 struct spawner_checkpoint **out, struct err **err)
{
	cleanup_free char *image = spawner__ckpt_server_image(sp, srv);
	cleanup_free char *path = NULL;
	int64_t id = 0;

	if (mode == SPAWNER_CKPT_CRIU && (!sp->ckpt.dir || sp->ckpt.dir[0] != '/'))
		return err_set(err, EINVAL, "record checkpoint of '%s': no checkpoint dir "
			       "configured", srv->slug);
	/* Insert and path in one transaction: no row without its path. */
	if (db_begin(sp->cfg.db, err) < 0)
		return err_wrap(err, "record checkpoint of '%s'", srv->slug);
	if (ckpt_insert_row(sp, srv, mode, image, reason, message, &id, err) < 0)
		goto fail;
	path = ckpt_path(sp, srv, mode, image, id);
	if (ckpt_set_path(sp, id, path, err) < 0 || db_commit(sp->cfg.db, err) < 0)
		goto fail;
	return spawner__ckpt_get(sp, id, out, err);
fail:
	db_rollback(sp->cfg.db);
	return err_wrap(err, "record checkpoint of '%s'", srv->slug);
}

int spawner__ckpt_set_path(struct spawner *sp, int64_t ckpt_id, const char *path,
			   struct err **err)
{
	if (ckpt_set_path(sp, ckpt_id, path, err) < 0)
		return err_wrap(err, "record the path of checkpoint %lld", (long long)ckpt_id);
	return 0;
}

int spawner__ckpt_get(struct spawner *sp, int64_t id, struct spawner_checkpoint **out,
		      struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct spawner_checkpoint *v = NULL;
	int n = 0;

	if (db_prepare(sp->cfg.db, &st, CKPT_COLS " WHERE id = ?1", err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	if (ckpt_collect(sp, st, &v, &n, err) < 0)
		return -EIO;
	if (n == 0) {
		free(v);
		return err_set_http(err, 404, ENOENT, "no checkpoint %lld", (long long)id);
	}
	*out = v;
	return 0;
}

int spawner__ckpt_set_state(struct spawner *sp, int64_t id, const char *state,
			    int64_t size_bytes, const char *message, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st,
		       "UPDATE checkpoints SET state = ?2, message = ?3,"
		       " size_bytes = CASE WHEN ?4 >= 0 THEN ?4 ELSE size_bytes END"
		       " WHERE id = ?1", err) < 0)
		return err_wrap(err, "update checkpoint %lld", (long long)id);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	bind_text_or_null(st, 3, message);
	sqlite3_bind_int64(st, 4, size_bytes);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "update checkpoint %lld: %s", (long long)id,
			       db_errmsg(sp->cfg.db));
	return 0;
}

int spawner__ckpt_list(struct spawner *sp, int64_t server_id, struct spawner_checkpoint **out,
		       int *n, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st,
		       CKPT_COLS " WHERE server_id = ?1 ORDER BY created DESC, id DESC", err) < 0)
		return err_wrap(err, "list checkpoints");
	sqlite3_bind_int64(st, 1, server_id);
	return ckpt_collect(sp, st, out, n, err);
}

int spawner__ckpt_resume_row(struct spawner *sp, const struct spawner_server *srv,
			     struct spawner_checkpoint **out, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	cleanup_free char *image = spawner__ckpt_server_image(sp, srv);
	struct spawner_checkpoint *v = NULL;
	int n = 0;

	/* IS compares NULL with NULL as equal (process backend: no image). */
	if (db_prepare(sp->cfg.db, &st,
		       CKPT_COLS " WHERE server_id = ?1 AND state IN ('ready', 'restored')"
		       " AND image IS ?2 AND profile IS ?3 ORDER BY created DESC, id DESC"
		       " LIMIT 1", err) < 0)
		return err_wrap(err, "find checkpoint of '%s'", srv->slug);
	sqlite3_bind_int64(st, 1, srv->id);
	bind_text_or_null(st, 2, image);
	bind_text_or_null(st, 3, srv->profile);
	if (ckpt_collect(sp, st, &v, &n, err) < 0)
		return err_wrap(err, "find checkpoint of '%s'", srv->slug);
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	return 0;
}

static struct spawner_server *server_by_id(struct spawner *sp, int64_t id)
{
	for (struct spawner_server *s = sp->servers; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

bool spawner__ckpt_protected(struct spawner *sp, const struct spawner_checkpoint *ck)
{
	struct spawner_server *srv = server_by_id(sp, ck->server_id);
	struct spawner_checkpoint *r = NULL;
	struct err *e = NULL;
	bool prot;

	if (strcmp(ck->state, "writing") == 0)
		return true;
	if (!srv || (srv->state != SPAWNER_SUSPENDED && srv->state != SPAWNER_RESTORING))
		return false;
	if (spawner__ckpt_resume_row(sp, srv, &r, &e) < 0) {
		log_warn("checkpoint %lld kept: %s", (long long)ck->id, e->msg);
		err_free(&e);
		return true;
	}
	prot = r && r->id == ck->id;
	spawner__ckpt_free(r);
	return prot;
}

int spawner__ckpt_user_bytes(struct spawner *sp, int64_t user_id, int64_t *out,
			     struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st,
		       "SELECT COALESCE(SUM(c.size_bytes), 0) FROM checkpoints c"
		       " JOIN servers s ON s.id = c.server_id WHERE s.user_id = ?1", err) < 0)
		return err_wrap(err, "checkpoint usage");
	sqlite3_bind_int64(st, 1, user_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return err_set(err, EIO, "checkpoint usage: %s", db_errmsg(sp->cfg.db));
	*out = sqlite3_column_int64(st, 0);
	return 0;
}

/* ---- files ---- */

/* True when rel ("a/b/c") has no empty, "." or ".." component. */
static bool rel_path_clean(const char *rel)
{
	const char *p = rel;

	if (!*p)
		return false;
	while (*p) {
		size_t len = strcspn(p, "/");

		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += len;
		if (*p == '/')
			p++;
		if (!*p && p[-1] == '/')
			return false;
	}
	return true;
}

static int rm_tree_at(int dirfd, const char *name, int depth, struct err **err);

/* Empties the directory name in dirfd (opened without following it). */
static int rm_entries_at(int dirfd, const char *name, int depth, struct err **err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (fd < 0)
		return err_set_errno(err, "open '%s'", name);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set_errno(err, "opendir '%s'", name);
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = rm_tree_at(fd, de->d_name, depth + 1, err);
	}
	closedir(d);
	return rc;
}

/* rm -r of name in dirfd without following symlinks; depth bounded. */
static int rm_tree_at(int dirfd, const char *name, int depth, struct err **err)
{
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : err_set_errno(err, "stat '%s'", name);
	if (!S_ISDIR(sb.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT
			       ? err_set_errno(err, "unlink '%s'", name) : 0;
	if (depth >= CKPT_RM_DEPTH_MAX)
		return err_set(err, ELOOP, "'%s': directories nested too deep", name);
	if (rm_entries_at(dirfd, name, depth, err) < 0)
		return err_wrap(err, "'%s'", name);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return err_set_errno(err, "rmdir '%s'", name);
	return 0;
}

/*
 * Opens the parent of the last component of rel below base, one component
 * at a time with O_NOFOLLOW. Returns the fd, -ENOENT when a component is
 * missing (nothing to delete), other < 0 with *err set.
 */
static int open_parent_nofollow(const char *base, const char *rel, const char **last,
				struct err **err)
{
	int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *p = rel;
	char comp[256];

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : err_set_errno(err, "open '%s'", base);
	for (size_t len; (len = strcspn(p, "/")), p[len] == '/'; p += len + 1) {
		int next;

		if (len >= sizeof(comp)) {
			close(fd);
			return err_set(err, ENAMETOOLONG, "'%s': name too long", rel);
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0 && errno == ENOENT)
			return -ENOENT;
		if (next < 0)
			return err_set_errno(err, "open '%s' below '%s' (symlinks are refused)",
					     comp, base);
		fd = next;
	}
	*last = p;
	return fd;
}

int spawner__ckpt_remove_files(struct spawner *sp, const struct spawner_checkpoint *ck,
			       struct err **err)
{
	const char *dir = sp->ckpt.dir, *rel, *last = NULL;
	size_t dlen;
	int pfd, rc;

	if (ck->mode != SPAWNER_CKPT_CRIU)
		return 0;
	dlen = dir ? strlen(dir) : 0;
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	if (!dir || dir[0] != '/' || strncmp(ck->path, dir, dlen) != 0 ||
	    ck->path[dlen] != '/' || !rel_path_clean(ck->path + dlen + 1))
		return err_set(err, EPERM, "refusing to delete '%s': not below the checkpoint "
			       "dir '%s'", ck->path, dir ? dir : "(none)");
	rel = ck->path + dlen + 1;
	pfd = open_parent_nofollow(dir, rel, &last, err);
	if (pfd == -ENOENT)
		return 0;
	if (pfd < 0)
		return err_wrap(err, "delete checkpoint files '%s'", ck->path);
	if (!last) { /* cannot happen: rel is clean and not empty */
		close(pfd);
		return err_set(err, EINVAL, "delete checkpoint files '%s': empty path", ck->path);
	}
	rc = rm_tree_at(pfd, last, 0, err);
	close(pfd);
	if (rc < 0)
		return err_wrap(err, "delete checkpoint files '%s'", ck->path);
	return 0;
}

/* The per-server dir "<dir>/<slug>" once its last checkpoint is gone. */
static void rmdir_server_dir(struct spawner *sp, const struct spawner_checkpoint *ck)
{
	cleanup_free char *parent = NULL;
	char *slash;

	if (ck->mode != SPAWNER_CKPT_CRIU || !sp->ckpt.dir)
		return;
	parent = xstrdup(ck->path);
	slash = strrchr(parent, '/');
	if (!slash || (size_t)(slash - parent) <= strlen(sp->ckpt.dir))
		return;
	*slash = '\0';
	/* Fails with ENOTEMPTY while other checkpoints remain: fine. */
	(void)rmdir(parent);
}

static int ckpt_forget_files(struct spawner *sp, const struct spawner_checkpoint *ck,
			     struct err **err)
{
	if (sp->ops->checkpoint_forget)
		return sp->ops->checkpoint_forget(sp, ck, err);
	if (ck->mode == SPAWNER_CKPT_CRIU)
		return spawner__ckpt_remove_files(sp, ck, err);
	/* NEEDSWORK: deleting a committed image is the image store's (the
	 * backend's checkpoint_forget); without it the image stays. */
	log_info("checkpoint %lld: image '%s' left in the image store", (long long)ck->id,
		 ck->path);
	return 0;
}

int spawner__ckpt_remove(struct spawner *sp, const struct spawner_checkpoint *ck,
			 struct err **err)
{
	struct err *e = NULL;

	if (ckpt_forget_files(sp, ck, &e) < 0) {
		cleanup_free char *why = xasprintf("files could not be deleted: %s", e->msg);
		struct err *e2 = NULL;

		/* Keep the row, so the files are not forgotten: the user sees
		 * why in the list and can delete it again. */
		if (spawner__ckpt_set_state(sp, ck->id, "broken", -1, why, &e2) < 0)
			err_free(&e2);
		err_wrap(&e, "delete checkpoint %lld", (long long)ck->id);
		return cat_err_hand(err, &e);
	}
	rmdir_server_dir(sp, ck);
	return ckpt_exec_id(sp, "DELETE FROM checkpoints WHERE id = ?1", ck->id, "delete", err);
}

/* ---- bulk deletes ---- */

/* Removes every row of v not protected (when check_protected), first error kept. */
static int remove_rows(struct spawner *sp, struct spawner_checkpoint *v, int n,
		       bool check_protected, struct err **err)
{
	struct err *e = NULL;
	int rc = 0;

	for (int i = 0; i < n; i++) {
		if (check_protected && spawner__ckpt_protected(sp, &v[i]))
			continue;
		if (spawner__ckpt_remove(sp, &v[i], &e) < 0) {
			int r = cat_err_hand(err, &e);

			rc = rc ? rc : r;
		}
	}
	return rc;
}

int spawner__ckpt_drop_server(struct spawner *sp, const struct spawner_server *srv,
			      struct err **err)
{
	struct spawner_checkpoint *v = NULL;
	int n = 0, rc;

	if (spawner__ckpt_list(sp, srv->id, &v, &n, err) < 0)
		return -EIO;
	rc = remove_rows(sp, v, n, false, err);
	spawner_checkpoints_free(v, n);
	return rc;
}

int spawner__ckpt_drop_writing(struct spawner *sp, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct spawner_checkpoint *v = NULL;
	int n = 0, rc;

	if (db_prepare(sp->cfg.db, &st, CKPT_COLS " WHERE state = 'writing' ORDER BY id", err) < 0 ||
	    ckpt_collect(sp, st, &v, &n, err) < 0)
		return err_wrap(err, "drop unfinished checkpoints");
	for (int i = 0; i < n; i++)
		log_info("dropping unfinished checkpoint %lld ('%s'): the gateway stopped "
			 "during the dump", (long long)v[i].id, v[i].path);
	rc = remove_rows(sp, v, n, false, err);
	spawner_checkpoints_free(v, n);
	return rc;
}

/* The user's rows, oldest first. */
static int user_rows_oldest(struct spawner *sp, int64_t user_id,
			    struct spawner_checkpoint **out, int *n, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st,
		       "SELECT c.id, c.server_id, c.mode, c.state, c.path, c.size_bytes,"
		       " c.created, c.image, c.profile, c.reason, c.message FROM checkpoints c"
		       " JOIN servers s ON s.id = c.server_id WHERE s.user_id = ?1"
		       " ORDER BY c.created ASC, c.id ASC", err) < 0)
		return err_wrap(err, "list user checkpoints");
	sqlite3_bind_int64(st, 1, user_id);
	return ckpt_collect(sp, st, out, n, err);
}

/* Deletes the user's oldest unprotected rows while over the quota. */
static int retention_quota(struct spawner *sp, const struct spawner_server *srv,
			   struct err **err)
{
	struct spawner_checkpoint *v = NULL;
	int64_t total = 0, quota = sp->ckpt.user_quota_bytes;
	int n = 0, rc = 0;

	if (quota <= 0)
		return 0;
	if (user_rows_oldest(sp, srv->user_id, &v, &n, err) < 0)
		return -EIO;
	for (int i = 0; i < n; i++)
		total += v[i].size_bytes;
	for (int i = 0; i < n && total > quota; i++) {
		if (spawner__ckpt_protected(sp, &v[i]))
			continue;
		log_info("user '%s' over checkpoint quota (%lld > %lld bytes): deleting "
			 "checkpoint %lld", srv->user, (long long)total, (long long)quota,
			 (long long)v[i].id);
		if (remove_rows(sp, &v[i], 1, false, err) == 0)
			total -= v[i].size_bytes;
		else
			rc = -EIO;
	}
	spawner_checkpoints_free(v, n);
	return rc;
}

int spawner__ckpt_retention(struct spawner *sp, const struct spawner_server *srv,
			    struct err **err)
{
	struct spawner_checkpoint *v = NULL;
	int n = 0, keep = spawner__ckpt_keep(sp), rc;

	if (spawner__ckpt_list(sp, srv->id, &v, &n, err) < 0)
		return -EIO;
	/* Newest first: everything after the first `keep` rows goes. */
	rc = n > keep ? remove_rows(sp, v + keep, n - keep, true, err) : 0;
	spawner_checkpoints_free(v, n);
	if (retention_quota(sp, srv, err) < 0)
		rc = rc ? rc : -EIO;
	return rc;
}

/* ---- activity sources ---- */

static const char *const activity_sources[] = {
	"proxy", "kernel", "terminal", "cpu", "gpu", "start", "api", "resume",
};

const char *spawner__activity_source(const char *name)
{
	for (size_t i = 0; name && i < sizeof(activity_sources) / sizeof(activity_sources[0]);
	     i++)
		if (strcmp(activity_sources[i], name) == 0)
			return activity_sources[i];
	return NULL;
}
