/*
 * spawner/local: the sandboxed local backend (DESIGN.md "Local backend").
 *
 * Each server runs in its own sandbox (sandbox/sandbox.h): the daemon
 * writes a root-only spec to <state>/run/<slug>/sandbox.json and starts
 * `nbgate-init --spec <file>` (the shim) in its own session, with fd 3 the
 * status pipe ("up <us>" / "failed <step> <reason>"), read on the loop by
 * the watcher's tick. The shim's own output goes to shim.log, the
 * server's to server.log (written by nbgate-init). Readiness, exits and
 * stop deadlines use the same watcher as `process` (spawner/supervise.c);
 * the upstream is the Unix socket <run>/sock/server.sock, which appears
 * as /run/nbgate/server.sock inside.
 *
 * Per server (run dir, root 0700): rootfs/ (mount point), upper/ and
 * work/ (the overlay's writable layer, kept across stop/start of this
 * server and reset when the image's manifest digest changes: image.digest
 * records it), sock/ (owned by the sandbox uid, 0700). Per user: home
 * <state>/home/<user slug>/ owned by uid_base + user id, 0700, shared by
 * that user's servers and kept across image changes.
 *
 * What a user may choose comes only from user_options {"profile",
 * "image"}, checked against the configured allow-lists; quotas are summed
 * over the user's live servers; GPUs are allocated exclusively and the
 * allocation is persisted (gpu_allocations) so that a restarted gateway
 * re-derives it when it adopts the sandbox.
 */
#define LOG_PREFIX "spawner/local: "

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/db.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "sandbox/sandbox.h"
#include "spawner/names.h"
#include "spawner/profile.h"
#include "spawner/netallow.h"
#include "spawner/spawner.h"
#include "spawner/supervise.h"
#include "spawner/local_internal.h"

#define LOCAL_SOCK_INSIDE "/run/nbgate/server.sock"
#define LOCAL_SOCK_MAX 107 /* sizeof(sun_path) - 1 */
#define LOCAL_PIDS_DEFAULT 1024
#define LOCAL_UID_BASE_DEFAULT 100000
#define LOCAL_GPU_GLOB_DEFAULT "/dev/nvidia[0-9]*"
#define LOCAL_KILL_EXTRA_MS 2000 /* the shim's own grace comes first */
#define LOCAL_ENV_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

/* Where NVIDIA's user-space driver lives: Debian's packages, and the
 * /usr/local/nvidia layout of GPU cloud images (notes/gpu-facts.md). */
static const char *const local_driver_dirs[] = {
	"/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib64", NULL,
};
static const char *const local_smi_paths[] = {
	"/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi", "/usr/local/bin/nvidia-smi",
	NULL,
};

/* The first path of v that exists, or NULL. */
static const char *first_existing(const char *const *v)
{
	for (size_t i = 0; v[i]; i++)
		if (access(v[i], F_OK) == 0)
			return v[i];
	return NULL;
}

struct spawner_local *spawner_local_from(struct spawner *sp)
{
	if (sp->ops != &spawner_local_ops)
		abort(); /* BUG: wrong backend downcast (git files_downcast) */
	return (struct spawner_local *)sp;
}

/* -code of the error already set in *err (EIO when the caller passed none). */
static int err_rc(struct err **err)
{
	return err && *err ? -(*err)->code : -EIO;
}

/* ---- GPUs: inventory, nvidia-smi, exclusive allocation ---- */

static void gpus_free(struct local_gpu *g, int n)
{
	for (int i = 0; i < n; i++) {
		free(g[i].dev);
		free(g[i].model);
		free(g[i].uuid);
	}
	free(g);
}

/* N of ".../nvidiaN", or -1 when the name does not end in digits. */
static int gpu_index_of(const char *dev)
{
	const char *base = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev, *p = base;
	long v;

	while (*p && (*p < '0' || *p > '9'))
		p++;
	if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 4)
		return -1;
	v = strtol(p, NULL, 10);
	return (int)v;
}

/* The device nodes matching pattern, in index order. */
static int local_gpu_scan(const char *pattern, struct local_gpu **out, int *n)
{
	glob_t g = { 0 };
	struct local_gpu *v;
	int k = 0;

	*out = NULL;
	*n = 0;
	if (glob(pattern, 0, NULL, &g) != 0) {
		globfree(&g);
		return 0; /* no GPUs is not an error */
	}
	v = xcalloc(g.gl_pathc + 1, sizeof(*v));
	for (size_t i = 0; i < g.gl_pathc; i++) {
		int idx = gpu_index_of(g.gl_pathv[i]);

		if (idx < 0)
			continue;
		v[k].dev = xstrdup(g.gl_pathv[i]);
		v[k++].index = idx;
	}
	globfree(&g);
	/* glob sorts by name (nvidia10 < nvidia2): order by index instead */
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && v[j - 1].index > v[j].index; j--) {
			struct local_gpu t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	*n = k;
	return k;
}

/*
 * Applies `nvidia-smi --query-gpu=index,name,uuid --format=csv,noheader`
 * output to the inventory (by index). Returns the number of lines used.
 */
static int local_gpu_parse_smi(const char *text, struct local_gpu *g, int n)
{
	cleanup_free char *copy = xstrdup(text);
	char *line = copy, *next;
	int used = 0;

	for (; line && *line; line = next) {
		char *c1, *c2, *end;
		long idx;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		c1 = strchr(line, ',');
		if (!c1)
			continue;
		*c1 = '\0';
		errno = 0;
		idx = strtol(line, &end, 10);
		if (errno || end == line)
			continue;
		c2 = strchr(c1 + 1, ',');
		if (c2)
			*c2 = '\0';
		for (int i = 0; i < n; i++) {
			if (g[i].index != idx)
				continue;
			free(g[i].model);
			g[i].model = xstrdup(c1 + 1 + strspn(c1 + 1, " "));
			if (c2) {
				free(g[i].uuid);
				g[i].uuid = xstrdup(c2 + 1 + strspn(c2 + 1, " "));
			}
			used++;
		}
	}
	return used;
}

/* Runs nvidia-smi once (init only: it blocks up to 5 s) and applies its models. */
static void local_gpu_models(struct local_gpu *g, int n)
{
	const char *const argv[] = { first_existing(local_smi_paths),
		"--query-gpu=index,name,uuid", "--format=csv,noheader", NULL };
	char out[8192];
	size_t len = 0;
	int fds[2];
	struct err *e = NULL;
	pid_t pid;

	if (n == 0 || !argv[0] || access(argv[0], X_OK) < 0 || pipe2(fds, O_CLOEXEC) < 0)
		return;
	struct proc_opts o = { .argv = argv, .stdin_fd = -1, .stdout_fd = fds[1], .stderr_fd = -1,
			       .new_session = true };
	if (proc_spawn(&o, &pid, &e) < 0) {
		log_warn("nvidia-smi: %s", e->msg);
		err_free(&e);
		close(fds[0]);
		close(fds[1]);
		return;
	}
	close(fds[1]);
	for (int i = 0; i < 50 && len < sizeof(out) - 1; i++) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 100) <= 0)
			continue;
		k = read(fds[0], out + len, sizeof(out) - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fds[0]);
	proc_kill_and_reap(pid, 100);
	out[len] = '\0';
	log_info("nvidia-smi named %d of %d GPU(s)", local_gpu_parse_smi(out, g, n), n);
}

static bool gpu_model_ok(const struct local_gpu *g, const char *want)
{
	if (!want || !want[0])
		return true;
	return g->model && strcasestr(g->model, want);
}

/* Is dev allocated (to anyone)? */
static int gpu_taken(struct db *db, const char *dev, bool *taken, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "SELECT 1 FROM gpu_allocations WHERE device = ?1", err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
	*taken = sqlite3_step(st) == SQLITE_ROW;
	return 0;
}

static int gpu_insert(struct db *db, const struct local_gpu *g, int64_t server_id,
		      struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(db, &st, "INSERT INTO gpu_allocations (device, server_id, gpu_index,"
		       " allocated) VALUES (?1, ?2, ?3, ?4)", err) < 0)
		return -EIO;
	sqlite3_bind_text(st, 1, g->dev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, server_id);
	sqlite3_bind_int(st, 3, g->index);
	sqlite3_bind_int64(st, 4, time_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "record GPU allocation: %s", db_errmsg(db));
	return 0;
}

/* Frees every GPU that server_id holds. */
static int local_gpu_release(struct spawner *sp, int64_t server_id, struct err **err)
{
	cleanup_stmt sqlite3_stmt *st = NULL;

	if (db_prepare(sp->cfg.db, &st, "DELETE FROM gpu_allocations WHERE server_id = ?1",
		       err) < 0)
		return -EIO;
	sqlite3_bind_int64(st, 1, server_id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return err_set(err, EIO, "free GPUs: %s", db_errmsg(sp->cfg.db));
	return 0;
}

/* The inventory entries server_id holds (borrowed pointers), NULL-ended. */
static const struct local_gpu **local_gpu_held(struct spawner_local *sl, int64_t server_id,
					       int *count)
{
	const struct local_gpu **v = xcalloc((size_t)sl->n_gpus + 1, sizeof(const struct local_gpu *));
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct err *e = NULL;
	int k = 0;

	*count = 0;
	if (db_prepare(sl->base.cfg.db, &st, "SELECT device FROM gpu_allocations"
		       " WHERE server_id = ?1 ORDER BY gpu_index", &e) < 0) {
		err_free(&e);
		return v;
	}
	sqlite3_bind_int64(st, 1, server_id);
	while (sqlite3_step(st) == SQLITE_ROW && k < sl->n_gpus) {
		const char *dev = (const char *)sqlite3_column_text(st, 0);

		for (int i = 0; i < sl->n_gpus; i++)
			if (dev && strcmp(sl->gpus[i].dev, dev) == 0)
				v[k++] = &sl->gpus[i];
	}
	*count = k;
	return v;
}

/* " of model 'X'" or "" for messages; caller frees. */
static char *model_suffix(const char *m)
{
	return m ? xasprintf(" of model '%s'", m) : xstrdup("");
}

/* Inserts up to count free matching GPUs for server_id; *got says how many. */
static int gpu_take(struct spawner_local *sl, int64_t server_id, int count, const char *m,
		    int *got, struct err **err)
{
	struct db *db = sl->base.cfg.db;
	bool taken;

	*got = 0;
	for (int i = 0; i < sl->n_gpus && *got < count; i++) {
		if (!gpu_model_ok(&sl->gpus[i], m))
			continue;
		if (gpu_taken(db, sl->gpus[i].dev, &taken, err) < 0)
			return -EIO;
		if (taken)
			continue;
		if (gpu_insert(db, &sl->gpus[i], server_id, err) < 0)
			return -EIO;
		(*got)++;
	}
	return 0;
}

/*
 * Allocates `count` free GPUs matching `model` to server_id, in one
 * transaction. Errors: EDQUOT the host has fewer matching GPUs than asked,
 * EBUSY not enough of them are free (both name the counts), EIO.
 */
static int local_gpu_alloc(struct spawner_local *sl, int64_t server_id, int count,
			   const char *model, struct err **err)
{
	struct db *db = sl->base.cfg.db;
	const char *m = model && model[0] ? model : NULL;
	cleanup_free char *what = model_suffix(m);
	int matching = 0, got = 0;

	for (int i = 0; i < sl->n_gpus; i++)
		matching += gpu_model_ok(&sl->gpus[i], m);
	if (matching < count)
		return err_set_http(err, 403, EDQUOT, "this host has %d GPU(s)%s, the profile "
				    "asks for %d", matching, what, count);
	if (db_begin(db, err) < 0)
		return -EIO;
	if (gpu_take(sl, server_id, count, m, &got, err) < 0)
		goto fail;
	if (got < count) {
		err_set_http(err, 409, EBUSY, "not enough free GPUs: the profile asks for %d%s, "
			     "%d of %d are free; try again when another server stops", count, what,
			     got, matching);
		goto fail;
	}
	if (db_commit(db, err) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return err_rc(err);
}

/* ---- directories and the spec ---- */

/* Socket paths must fit sockaddr_un (107 bytes + NUL); both sides tested. */
static int local_check_sock_path(const char *path, struct err **err)
{
	size_t n = strlen(path);

	if (n > LOCAL_SOCK_MAX)
		return err_set(err, ENAMETOOLONG,
			       "socket path '%s' is %zu bytes, longer than the %d a Unix socket "
			       "allows: configure a shorter state directory", path, n, LOCAL_SOCK_MAX);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf of dir's contents and dir itself; never follows symlinks or mounts. */
static int rm_tree(const char *dir, struct err **err)
{
	if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
		return err_set_errno(err, "remove '%s'", dir);
	return 0;
}

/*
 * Drops the writable layer when the image changed: upper/ was made on top
 * of other lower layers and would shadow the new image's files.
 */
static int reset_upper_if_new_image(const char *run, const char *digest, struct err **err)
{
	cleanup_free char *path = xasprintf("%s/image.digest", run);
	cleanup_free char *upper = xasprintf("%s/upper", run);
	cleanup_free char *work = xasprintf("%s/work", run);
	char old[256] = "";
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd >= 0 ? read(fd, old, sizeof(old) - 1) : 0;

	old[n > 0 ? n : 0] = '\0';
	if (strcmp(old, digest) == 0)
		return 0;
	if (old[0])
		log_info("'%s': image changed (%s -> %s): new writable layer", run, old, digest);
	if (rm_tree(upper, err) < 0 || rm_tree(work, err) < 0)
		return err_rc(err);
	close(fd);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, digest, strlen(digest)) != (ssize_t)strlen(digest))
		return err_set_errno(err, "write '%s'", path);
	return 0;
}

static uid_t local_uid(const struct spawner *sp, const struct spawner_server *srv)
{
	uint32_t base = sp->cfg.uid_base ? sp->cfg.uid_base : LOCAL_UID_BASE_DEFAULT;

	return (uid_t)(base + (uint32_t)srv->user_id);
}

static int local_prepare_dirs(struct spawner *sp, struct spawner_server *srv,
			      const struct image_info *img, struct err **err)
{
	const char *run = srv->run_dir;
	cleanup_free char *rootfs = xasprintf("%s/rootfs", run);
	cleanup_free char *upper = xasprintf("%s/upper", run);
	cleanup_free char *work = xasprintf("%s/work", run);
	cleanup_free char *sock = xasprintf("%s/sock", run);
	uid_t uid = local_uid(sp, srv);

	if (spawner_ensure_dir(run, 0700, 0, 0, err) < 0 ||
	    reset_upper_if_new_image(run, img->manifest_digest, err) < 0 ||
	    spawner_ensure_dir(rootfs, 0755, 0, 0, err) < 0 ||
	    /* upper's root becomes "/" inside: world-traversable like a real root */
	    spawner_ensure_dir(upper, 0755, 0, 0, err) < 0 ||
	    spawner_ensure_dir(work, 0700, 0, 0, err) < 0 ||
	    spawner_ensure_dir(sock, 0700, uid, uid, err) < 0 ||
	    spawner_ensure_dir(srv->home, 0700, uid, uid, err) < 0)
		return err_wrap(err, "prepare directories of '%s'", srv->slug);
	return 0;
}

static char **strv_from(const char *const *v)
{
	size_t n = spawner_strv_len(v);
	char **r = xcalloc(n + 1, sizeof(*r));

	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

/* Appends to a NULL-ended owned vector. */
static void strv_push(char ***v, char *s)
{
	size_t n = spawner_strv_len((const char *const *)*v);

	*v = xrealloc(*v, (n + 2) * sizeof(**v));
	(*v)[n] = s;
	(*v)[n + 1] = NULL;
}

/* CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES for the GPUs (owned "K=V"). */
static void gpu_env(const struct local_gpu *const *gpus, int n_gpus, char **cuda_kv,
		    char **nv_kv)
{
	struct buf cuda, nv;
	bool uuids = n_gpus > 0;

	buf_init(&cuda, 4096);
	buf_init(&nv, 4096);
	for (int j = 0; j < n_gpus; j++)
		uuids = uuids && gpus[j]->uuid;
	for (int i = 0; i < n_gpus; i++) {
		/* UUIDs name the same GPU whatever CUDA's enumeration order;
		 * without nvidia-smi only the nodes bound in exist: 0..n-1 */
		if (uuids)
			buf_appendf(&cuda, "%s%s", i ? "," : "", gpus[i]->uuid);
		else
			buf_appendf(&cuda, "%s%d", i ? "," : "", i);
		buf_appendf(&nv, "%s%d", i ? "," : "", gpus[i]->index);
	}
	*cuda_kv = xasprintf("CUDA_VISIBLE_DEVICES=%s", cuda.data ? cuda.data : "");
	*nv_kv = xasprintf("NVIDIA_VISIBLE_DEVICES=%s", nv.data ? nv.data : "void");
	buf_release(&cuda);
	buf_release(&nv);
}

/*
 * The sandbox environment: defaults, the image's env, the gateway's
 * per-server env (tokens, URLs), the operator's server_env, then HOME and
 * USER forced to the sandbox's. Later entries win. Caller frees.
 */
static char **local_build_env(const struct spawner_cfg *cfg, const struct spawner_server *srv,
			      const struct image_info *img, const char *home, const char *user,
			      const struct local_gpu *const *gpus, int n_gpus)
{
	size_t cap = 16 + spawner_strv_len((const char *const *)img->env) +
		     spawner_strv_len((const char *const *)srv->env) +
		     spawner_strv_len(cfg->server_env);
	char **env = xcalloc(cap + 1, sizeof(*env));
	char *tmp[5];
	size_t n = 0;

	spawner_env_put(env, &n, LOCAL_ENV_PATH);
	spawner_env_put(env, &n, "LANG=C.UTF-8");
	spawner_env_put(env, &n, "SHELL=/bin/bash");
	for (size_t i = 0; img->env && img->env[i]; i++)
		spawner_env_put(env, &n, img->env[i]);
	for (size_t i = 0; srv->env && srv->env[i]; i++)
		spawner_env_put(env, &n, srv->env[i]);
	for (size_t i = 0; cfg->server_env && cfg->server_env[i]; i++)
		spawner_env_put(env, &n, cfg->server_env[i]);
	gpu_env(gpus, n_gpus, &tmp[3], &tmp[4]);
	tmp[0] = xasprintf("HOME=%s", home);
	tmp[1] = xasprintf("USER=%s", user);
	tmp[2] = xasprintf("NBGATE_BASE_URL=%s", srv->base_url);
	for (size_t i = 0; i < 5; i++) {
		spawner_env_put(env, &n, tmp[i]);
		free(tmp[i]);
	}
	return env;
}

/* Appends path when it exists (device nodes and driver files are optional). */
static void push_if_exists(char ***v, const char *path)
{
	if (access(path, F_OK) == 0)
		strv_push(v, xstrdup(path));
}

/* Sets "K=V" in an owned NULL-ended env, replacing an entry with key K. */
static void env_set(char ***env, const char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv);

	for (size_t i = 0; (*env)[i]; i++) {
		if (strncmp((*env)[i], kv, klen) == 0 && (*env)[i][klen] == '=') {
			free((*env)[i]);
			(*env)[i] = xstrdup(kv);
			return;
		}
	}
	strv_push(env, xstrdup(kv));
}

/* Binds the driver libraries found in dir; true when there were any. */
static bool bind_driver_dir(struct sandbox_spec *s, const char *dir)
{
	static const char *const libs[] = { "libcuda.so*", "libnvidia-*.so*" };
	bool any = false;

	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		cleanup_free char *pat = xasprintf("%s/%s", dir, libs[i]);
		glob_t g = { 0 };

		if (glob(pat, 0, NULL, &g) == 0)
			for (size_t j = 0; j < g.gl_pathc; j++, any = true)
				strv_push(&s->ro_binds, xstrdup(g.gl_pathv[j]));
		globfree(&g);
	}
	return any;
}

/*
 * Device nodes, read-only driver files and nvidia-smi for the allocated
 * GPUs; driver dirs outside the loader's default path go on
 * LD_LIBRARY_PATH (s->env must be set).
 */
static void local_gpu_binds(struct sandbox_spec *s, const struct local_gpu *const *gpus,
			    int n_gpus, const char *const *driver_dirs)
{
	static const char *const ctl[] = { "/dev/nvidiactl", "/dev/nvidia-uvm",
					   "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset" };
	struct buf ld;

	s->devices = xcalloc(1, sizeof(*s->devices));
	s->ro_binds = xcalloc(1, sizeof(*s->ro_binds));
	if (n_gpus <= 0)
		return;
	for (int i = 0; i < n_gpus; i++)
		strv_push(&s->devices, xstrdup(gpus[i]->dev));
	for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++)
		push_if_exists(&s->devices, ctl[i]);
	buf_init(&ld, 4096);
	for (size_t i = 0; driver_dirs && driver_dirs[i]; i++)
		if (bind_driver_dir(s, driver_dirs[i]) &&
		    strcmp(driver_dirs[i], "/usr/lib/x86_64-linux-gnu") != 0)
			buf_appendf(&ld, "%s%s", ld.data ? ":" : "", driver_dirs[i]);
	if (ld.data) {
		cleanup_free char *kv = xasprintf("LD_LIBRARY_PATH=%s", ld.data);

		env_set(&s->env, kv);
	}
	buf_release(&ld);
	/* every copy: /usr/bin/nvidia-smi may be a wrapper that runs another */
	for (size_t i = 0; local_smi_paths[i]; i++)
		push_if_exists(&s->ro_binds, local_smi_paths[i]);
}

/* What one start needs besides sp and srv. */
struct local_req {
	const struct spawner_profile *prof;
	const struct image_info *img;
	const struct local_gpu *const *gpus;
	int n_gpus;
	const char *seccomp_profile;
	const char *const *driver_dirs;
};

static void spec_ports(struct sandbox_spec *s, const struct image_info *img)
{
	if (img->n_ports <= 0)
		return;
	s->ports = xcalloc((size_t)img->n_ports, sizeof(*s->ports));
	s->n_ports = img->n_ports;
	for (int i = 0; i < img->n_ports; i++) {
		s->ports[i].port = img->ports[i];
		s->ports[i].socket_name = xasprintf("port-%d.sock", img->ports[i]);
	}
}

/* The value of NAME in a "K=V" list, or NULL. */
static const char *env_value(char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

/*
 * The sandbox spec of srv for req. Caller owns (sandbox_spec_free()).
 * Errors: EINVAL empty image command, ENAMETOOLONG socket paths.
 */
static struct sandbox_spec *local_build_spec(struct spawner *sp, struct spawner_server *srv,
					     const struct local_req *r, struct err **err)
{
	const struct image_info *img = r->img;
	const char *user = img->user && img->user[0] ? img->user : "jovyan";
	cleanup_free char *home = img->home && img->home[0] ? xstrdup(img->home)
							    : xasprintf("/home/%s", user);
	struct spawner_vars v = { .sock = LOCAL_SOCK_INSIDE, .base_url = srv->base_url,
				  .home = home, .user = srv->user, .server = srv->name };
	struct sandbox_spec *s = xcalloc(1, sizeof(*s));

	s->argv = spawner_expand_argv((const char *const *)img->cmd, &v, err);
	if (!s->argv) {
		sandbox_spec_free(s);
		return err_wrap(err, "image '%s' has no command", img->name), NULL;
	}
	s->id = xstrdup(srv->slug);
	s->rootfs = xasprintf("%s/rootfs", srv->run_dir);
	s->lower = strv_from((const char *const *)img->layers);
	s->upper = xasprintf("%s/upper", srv->run_dir);
	s->work = xasprintf("%s/work", srv->run_dir);
	s->home_src = xstrdup(srv->home);
	s->home_dst = xstrdup(home);
	s->sock_dir = xasprintf("%s/sock", srv->run_dir);
	s->log_path = xasprintf("%s/server.log", srv->run_dir);
	s->uid = local_uid(sp, srv);
	s->gid = (gid_t)s->uid;
	s->user_name = xstrdup(user);
	s->env = local_build_env(&sp->cfg, srv, img, home, user, r->gpus, r->n_gpus);
	s->memory_bytes = r->prof->memory_bytes;
	s->cpu_millis = r->prof->cpu_millis;
	s->pids_max = r->prof->pids_max > 0 ? r->prof->pids_max : LOCAL_PIDS_DEFAULT;
	s->net = r->prof->network && strcmp(r->prof->network, "egress") == 0 ? SANDBOX_NET_EGRESS
									       : SANDBOX_NET_NONE;
	/* egress blocks private ranges; the DNS servers and the hub may sit there */
	if (s->net == SANDBOX_NET_EGRESS)
		s->net_allow = spawner_net_allow("/etc/resolv.conf", env_value(srv->env,
									 "NBGATE_API_URL"));
	s->seccomp_profile = r->seccomp_profile ? xstrdup(r->seccomp_profile) : NULL;
	s->stop_grace_ms = sp->cfg.stop_timeout_ms;
	s->fail_step = sp->cfg.sandbox_fail_step ? xstrdup(sp->cfg.sandbox_fail_step) : NULL;
	local_gpu_binds(s, r->gpus, r->n_gpus, r->driver_dirs);
	spec_ports(s, img);
	return s;
}

/* Every socket the gateway will connect to must fit sockaddr_un. */
static int local_check_spec_socks(const struct sandbox_spec *s, struct err **err)
{
	cleanup_free char *main_sock = xasprintf("%s/server.sock", s->sock_dir);

	if (local_check_sock_path(main_sock, err) < 0)
		return -ENAMETOOLONG;
	for (int i = 0; i < s->n_ports; i++) {
		cleanup_free char *p = xasprintf("%s/%s", s->sock_dir, s->ports[i].socket_name);

		if (local_check_sock_path(p, err) < 0)
			return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- the shim and its status pipe ---- */

void local__release(struct spawner *sp, struct spawner_server *srv)
{
	struct local_server *ls = srv->priv;

	if (!ls)
		return;
	spawner_watch_clear(&ls->w);
	if (ls->status_fd >= 0)
		close(ls->status_fd);
	free(ls->rootfs);
	free(ls->spec_path);
	free(ls);
	srv->priv = NULL;
}

/* One line of the status protocol (sandbox/sandbox.h). */
static void local_status_line(struct local_server *ls, char *line)
{
	struct spawner_server *srv = ls->w.srv;
	char *sp1, msg[256];

	if (strncmp(line, "up ", 3) == 0) {
		long long us = strtoll(line + 3, NULL, 10);

		snprintf(msg, sizeof(msg), "sandbox up (%lld ms)", us > 0 ? us / 1000 : 0);
		log_info("'%s' %s, %lld ms after launch", srv->slug, msg,
			 (long long)(time_mono_ms() - ls->launched_ms));
		spawner_progress(ls->w.sp, srv, 60, msg);
	} else if (strncmp(line, "failed ", 7) == 0) {
		line += 7;
		sp1 = strchr(line, ' ');
		if (sp1)
			*sp1++ = '\0';
		free(ls->w.fail_reason);
		ls->w.fail_reason = xasprintf("sandbox setup failed at step '%.32s': %.300s", line,
					      sp1 ? sp1 : "no reason given");
	}
}

/* Reads what the shim wrote on fd 3 (non-blocking; tick hook). */
static void local_tick(struct spawner_watch *w)
{
	struct local_server *ls = (struct local_server *)w;
	char *nl;
	ssize_t n;

	while (ls->status_fd >= 0) {
		n = read(ls->status_fd, ls->status + ls->status_len,
			 sizeof(ls->status) - 1 - ls->status_len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) { /* EOF: the shim closed it before exec'ing the server */
			close(ls->status_fd);
			ls->status_fd = -1;
			break;
		}
		ls->status_len += (size_t)n;
		ls->status[ls->status_len] = '\0';
		while ((nl = strchr(ls->status, '\n'))) {
			*nl = '\0';
			local_status_line(ls, ls->status);
			ls->status_len -= (size_t)(nl + 1 - ls->status);
			memmove(ls->status, nl + 1, ls->status_len + 1);
		}
		if (ls->status_len == sizeof(ls->status) - 1)
			ls->status_len = 0; /* an overlong line: dropped */
	}
}

/* Removes what a sandbox leaves behind once its shim is gone. */
void local__cleanup(struct spawner *sp, struct spawner_server *srv, const char *spec_path)
{
	cleanup_free char *rootfs = xasprintf("%s/rootfs", srv->run_dir);
	struct err *e = NULL;

	if (sandbox_cleanup(srv->slug, rootfs, &e) < 0) {
		log_warn("clean up sandbox of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
	if (local_gpu_release(sp, srv->id, &e) < 0) {
		log_warn("free GPUs of '%s': %s", srv->slug, e->msg);
		err_free(&e);
	}
	if (spec_path)
		unlink(spec_path); /* it holds the server's tokens */
}

static void local_ended(struct spawner_watch *w)
{
	struct local_server *ls = (struct local_server *)w;

	local__cleanup(w->sp, w->srv, ls->spec_path);
	local__ended_ckpt(w); /* a dump or restore in flight reports itself */
}

static const struct spawner_watch_hooks local_hooks = {
	.tick = local_tick,
	.ended = local_ended,
	.release = local__release,
	.restored = local__restore_ready,
};

struct local_server *local__server_new(struct spawner *sp, struct spawner_server *srv, pid_t pid,
				       int64_t pid_start, bool ours)
{
	struct local_server *ls = xcalloc(1, sizeof(*ls));

	spawner_watch_init(&ls->w, sp, srv, &local_hooks, pid, pid_start, ours);
	/* SIGTERM to the shim alone: it forwards to PID 1, which has its own
	 * grace period; SIGKILL (group) only after that and 2 s more */
	ls->w.term_group = false;
	ls->w.kill_after_ms = sp->cfg.stop_timeout_ms + LOCAL_KILL_EXTRA_MS;
	ls->w.log_paths[0] = xasprintf("%s/server.log", srv->run_dir);
	ls->w.log_paths[1] = xasprintf("%s/shim.log", srv->run_dir);
	ls->status_fd = -1;
	ls->rootfs = xasprintf("%s/rootfs", srv->run_dir);
	ls->spec_path = xasprintf("%s/sandbox.json", srv->run_dir);
	srv->priv = ls;
	return ls;
}

int local__launch_shim(struct spawner_server *srv, const char *const *argv, pid_t *pid,
		       int *status_fd, struct err **err)
{
	cleanup_free char *log_path = xasprintf("%s/shim.log", srv->run_dir);
	/* nothing of the gateway's environment: the spec carries the server's */
	const char *const env[] = { LOCAL_ENV_PATH, "LANG=C.UTF-8", NULL };
	cleanup_close int log_fd = -1;
	int fds[2], rc;
	struct proc_opts o = { .argv = argv, .envp = env, .cwd = "/", .stdin_fd = -1,
			       .new_session = true, .pass_fd3 = true };

	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (log_fd < 0)
		return err_set_errno(err, "open '%s'", log_path);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_set_errno(err, "status pipe");
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		close(fds[0]);
		close(fds[1]);
		return err_set_errno(err, "status pipe");
	}
	o.stdout_fd = log_fd;
	o.stderr_fd = log_fd;
	o.fd3 = fds[1];
	rc = proc_spawn(&o, pid, err);
	close(fds[1]);
	if (rc < 0) {
		close(fds[0]);
		return rc;
	}
	*status_fd = fds[0];
	return 0;
}

/* ---- ops ---- */

/* Dirs, spec, launch and watch, for a server whose image and GPUs are settled. */
static int local_launch(struct spawner_local *sl, struct spawner_server *srv,
			const struct local_req *r, struct err **err)
{
	struct spawner *sp = &sl->base;
	struct sandbox_spec *spec = NULL;
	cleanup_free char *spec_path = xasprintf("%s/sandbox.json", srv->run_dir);
	cleanup_free char *sock = xasprintf("%s/sock/server.sock", srv->run_dir);
	struct local_server *ls;
	int status_fd = -1, rc;
	pid_t pid = 0;

	if (local_check_sock_path(sock, err) < 0 || local_prepare_dirs(sp, srv, r->img, err) < 0)
		return err_rc(err);
	spec = local_build_spec(sp, srv, r, err);
	rc = spec ? local_check_spec_socks(spec, err) : err_rc(err);
	if (rc == 0 && (rc = sandbox_spec_write(spec, spec_path, err)) < 0)
		err_wrap(err, "write sandbox spec");
	sandbox_spec_free(spec);
	if (rc < 0)
		return rc;
	if (unlink(sock) < 0 && errno != ENOENT)
		return err_set_errno(err, "remove stale socket '%s'", sock);
	free(srv->upstream);
	srv->upstream = xasprintf("unix:%s", sock);
	const char *const argv[] = { sl->init_path, spec_path, NULL };
	if ((rc = local__launch_shim(srv, argv, &pid, &status_fd, err)) < 0)
		return rc;
	ls = local__server_new(sp, srv, pid, proc_start_time(pid), true);
	ls->status_fd = status_fd;
	ls->launched_ms = time_mono_ms();
	srv->pid = pid;
	srv->pid_start = ls->w.pid_start;
	log_info("'%s' sandbox shim pid %d (uid %u, profile '%s', image '%s')", srv->slug,
		 (int)pid, (unsigned)local_uid(sp, srv), r->prof->name, r->img->name);
	if (spawner__persist(sp, srv, err) < 0 || spawner_watch_start(&ls->w, err) < 0) {
		/* Without its pid in the row it could never be stopped after a restart. */
		proc_kill_and_reap(pid, 0);
		local__release(sp, srv);
		local__cleanup(sp, srv, NULL);
		srv->pid = 0;
		return err_rc(err);
	}
	spawner_progress(sp, srv, 40, "sandbox starting");
	return 0;
}

/* Resolves the image; fills srv's type fields. *img is owned. */
static int local_image(struct spawner *sp, struct spawner_server *srv, const char *name,
		       struct image_info **img, struct err **err)
{
	cleanup_free char *msg = NULL;

	if (images_resolve(sp->cfg.image_store, name, img, err) < 0) {
		if ((*err)->code == ENOENT && !strstr((*err)->msg, "nbgate image build"))
			return err_wrap(err, "image '%s' (build it with: nbgate image build "
					"images/recipes/%s)", name, name);
		return err_wrap(err, "image '%s'", name);
	}
	free(srv->server_type);
	srv->server_type = (*img)->server_type ? xstrdup((*img)->server_type) : NULL;
	srv->strip_prefix = (*img)->strip_prefix;
	msg = xasprintf("image %s ready", name);
	spawner_progress(sp, srv, 20, msg);
	return 0;
}

int local__start_image(struct spawner *sp, struct spawner_server *srv, const char *image_override,
		       struct err **err)
{
	struct spawner_local *sl = spawner_local_from(sp);
	struct local_req r = { .seccomp_profile = sp->cfg.seccomp_profile,
			       .driver_dirs = local_driver_dirs };
	const struct local_gpu **held = NULL;
	struct image_info *img = NULL;
	const char *image = NULL;
	int rc;

	if (srv->priv)
		return err_set_http(err, 409, EBUSY, "the previous sandbox of '%s' is still exiting",
				    srv->slug);
	if (spawner_options_resolve(&sp->cfg, srv->user_options, &r.prof, &image, err) < 0)
		return -EINVAL;
	if (!r.prof) /* cannot happen: parse sets it on success */
		return err_set(err, EINVAL, "no launch profile");
	if (spawner_quota_check(sp, srv, r.prof, err) < 0)
		return -EDQUOT;
	free(srv->profile);
	srv->profile = xstrdup(r.prof->name);
	if (local_image(sp, srv, image_override ? image_override : image, &img, err) < 0)
		return err_rc(err);
	r.img = img;
	/* a stale allocation of this server (crash mid-start) is not reused */
	if (local_gpu_release(sp, srv->id, err) < 0 ||
	    (r.prof->gpus > 0 && local_gpu_alloc(sl, srv->id, r.prof->gpus, r.prof->gpu_model,
						 err) < 0)) {
		image_info_free(img);
		return err_rc(err);
	}
	held = local_gpu_held(sl, srv->id, &r.n_gpus);
	r.gpus = held;
	rc = local_launch(sl, srv, &r, err);
	if (rc < 0)
		local_gpu_release(sp, srv->id, NULL);
	free(held);
	image_info_free(img);
	return rc;
}

static int local_start(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	return local__start_image(sp, srv, NULL, err);
}

static int local_stop(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct local_server *ls = srv->priv;

	if (!ls) { /* no shim (never launched, or already reaped) */
		local__cleanup(sp, srv, NULL);
		return spawner_transition(sp, srv, SPAWNER_STOPPED, "server stopped", err);
	}
	spawner_watch_stop(&ls->w);
	return 0;
}

static int local_status(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct local_server *ls = srv->priv;

	return ls && proc_alive(ls->w.pid, ls->w.pid_start) ? 1 : 0;
}

static int local_adopt(struct spawner *sp, struct spawner_server *srv, struct err **err)
{
	struct spawner_local *sl = spawner_local_from(sp);
	const struct local_gpu **held;
	struct sockaddr_storage ss;
	struct local_server *ls;
	socklen_t len = 0;
	int n = 0;

	if (srv->pid <= 0 || !proc_alive(srv->pid, srv->pid_start > 0 ? srv->pid_start : -1) ||
	    getpgid(srv->pid) != srv->pid) {
		local__cleanup(sp, srv, NULL);
		return err_set(err, ESRCH, "sandbox shim pid %d is gone", (int)srv->pid);
	}
	ls = local__server_new(sp, srv, srv->pid, srv->pid_start, false);
	if (!srv->upstream || spawner_parse_upstream(srv->upstream, &ss, &len, err) < 0 ||
	    !spawner_answers_connect(&ss, len)) {
		/* Alive but unreachable: ours and useless, so end it. */
		spawner_watch_signal(&ls->w, SIGKILL);
		local__release(sp, srv);
		local__cleanup(sp, srv, NULL);
		if (err && !*err)
			err_set(err, ESRCH, "sandbox of pid %d does not answer at '%s'",
				(int)srv->pid, srv->upstream ? srv->upstream : "");
		return -ESRCH;
	}
	held = local_gpu_held(sl, srv->id, &n);
	if (n)
		log_info("'%s' keeps %d GPU(s), first %s", srv->slug, n, held[0]->dev);
	free(held);
	ls->w.probe.addr = ss;
	ls->w.probe.addrlen = len;
	spawner_watch_adopted(&ls->w);
	return 0;
}

/* Used when the configuration names no profiles. */
static const struct spawner_profile local_default_profile = {
	.name = "default",
	.display_name = "Default",
	.image = "jupyterlab",
	.network = "none",
};

/* <dir of path>/../sandbox/profiles/default.json when readable, else NULL. */
static char *seccomp_near(const char *path)
{
	cleanup_free char *dir = path ? xstrdup(path) : NULL;
	cleanup_free char *cand = NULL;
	char *slash = dir ? strrchr(dir, '/') : NULL;

	if (!slash)
		return NULL;
	*slash = '\0';
	cand = xasprintf("%s/../sandbox/profiles/default.json", dir);
	return access(cand, R_OK) == 0 ? realpath(cand, NULL) : NULL;
}

/*
 * The default seccomp profile: next to the running binary's build (a
 * checkout's build/ -> sandbox/profiles/), next to nbgate-init's, else the
 * installed one; NULL when none exists. Caller frees.
 */
static char *default_seccomp(const char *init_path)
{
	cleanup_free char *exe = realpath("/proc/self/exe", NULL);
	char *p = seccomp_near(exe);

	if (!p)
		p = seccomp_near(init_path);
	if (!p && access("/usr/share/nbgate/seccomp/default.json", R_OK) == 0)
		p = xstrdup("/usr/share/nbgate/seccomp/default.json");
	return p;
}

static int local_init_paths(struct spawner_local *sl, struct err **err)
{
	struct spawner_cfg *c = &sl->base.cfg;

	sl->init_path = sandbox_init_path();
	if (!sl->init_path || access(sl->init_path, X_OK) < 0)
		return err_set(err, ENOENT, "nbgate-init not found at '%s': build it (make) or set "
			       "NBGATE_INIT", sl->init_path ? sl->init_path : "");
	if (!c->image_store)
		c->image_store = IMAGES_DEFAULT_STORE;
	if (!c->seccomp_profile) {
		/* cfg strings are borrowed: ours lives in sl, as long as the cfg copy */
		sl->seccomp = default_seccomp(sl->init_path);
		if (!sl->seccomp)
			return err_set(err, ENOENT, "no seccomp profile found next to '%s': "
				       "configure seccomp_profile", sl->init_path);
		c->seccomp_profile = sl->seccomp;
	}
	if (access(c->seccomp_profile, R_OK) < 0)
		return err_set_errno(err, "seccomp profile '%s'", c->seccomp_profile);
	return 0;
}

static int local_init(struct spawner *sp, struct err **err)
{
	struct spawner_local *sl = spawner_local_from(sp);
	cleanup_free char *run = xasprintf("%s/run", sp->cfg.state_dir);
	cleanup_free char *home = xasprintf("%s/home", sp->cfg.state_dir);
	cleanup_free char *longest = xasprintf("%s/run/%0*d/sock/server.sock", sp->cfg.state_dir,
					       SPAWNER_SLUG_MAX, 0);

	if (!sp->cfg.lws)
		return err_set(err, EINVAL, "the local backend needs an event loop (lws context)");
	if (geteuid() != 0)
		return err_set(err, EPERM, "backend 'local' must run as root (it creates namespaces, "
			       "mounts and cgroups); use 'process' for unprivileged development");
	if (sp->cfg.n_profiles <= 0) {
		sp->cfg.profiles = &local_default_profile;
		sp->cfg.n_profiles = 1;
	}
	if (local_init_paths(sl, err) < 0)
		return err_rc(err);
	if (spawner_ensure_dir(run, 0700, 0, 0, err) < 0 ||
	    spawner_ensure_dir(home, 0700, 0, 0, err) < 0)
		return err_rc(err);
	if (strlen(longest) > LOCAL_SOCK_MAX)
		log_warn("state_dir '%s' is long: servers with long names will fail (Unix socket "
			 "paths are limited to %d bytes)", sp->cfg.state_dir, LOCAL_SOCK_MAX);
	local_gpu_scan(sp->cfg.gpu_dev_glob ? sp->cfg.gpu_dev_glob : LOCAL_GPU_GLOB_DEFAULT,
		       &sl->gpus, &sl->n_gpus);
	local_gpu_models(sl->gpus, sl->n_gpus);
	/* allocations of servers that are no longer live (crash between steps) */
	if (db_exec(sp->cfg.db, "DELETE FROM gpu_allocations WHERE server_id NOT IN (SELECT id"
		    " FROM servers WHERE state IN ('starting', 'running', 'culling',"
		    " 'checkpointing', 'restoring', 'stopping'))", err) < 0)
		return err_rc(err);
	log_info("sandboxed local backend: %d GPU(s), nbgate-init '%s', images '%s'",
		 sl->n_gpus, sl->init_path, sp->cfg.image_store);
	return 0;
}

static void local_destroy(struct spawner *sp)
{
	struct spawner_local *sl = spawner_local_from(sp);

	local__jobs_free(sl);
	gpus_free(sl->gpus, sl->n_gpus);
	sl->gpus = NULL;
	sl->n_gpus = 0;
	free(sl->init_path);
	sl->init_path = NULL;
	free(sl->seccomp);
	sl->seccomp = NULL;
}

const struct spawner_ops spawner_local_ops = {
	.name = "local",
	.caps = SPAWNER_CAP_SANDBOX | SPAWNER_CAP_ADOPT | SPAWNER_CAP_UNIX | SPAWNER_CAP_CHECKPOINT,
	.size = sizeof(struct spawner_local),
	.init = local_init,
	.start = local_start,
	.status = local_status,
	.stop = local_stop,
	.adopt = local_adopt,
	.stop_wait = spawner_watch_stop_wait,
	.server_release = local__release,
	.destroy = local_destroy,
	.checkpoint = local__checkpoint,
	.restore = local__restore,
	.checkpoint_size = local__checkpoint_size,
	.checkpoint_forget = local__checkpoint_forget,
};
