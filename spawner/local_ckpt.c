/*
 * spawner/local_ckpt: the local backend's checkpoint and restore ops
 * (spawner.h "checkpoints", docs/checkpoint.md).
 *
 * criu    `nbgate checkpoint dump --mode criu` (checkpoint/ckpt.h) runs as a
 *         helper process against the sandbox's PID 1; CRIU kills the tree when the images
 *         are written, the shim sees PID 1 go and cleans up, and the watcher
 *         stays quiet because the server is `checkpointing`. The dump is
 *         done when the helper exited 0 AND the shim is gone. The restore is
 *         a new shim, `nbgate-init --restore`, watched like a start: it
 *         answers -> spawner_restore_done(ok); it exits first -> not ok.
 * commit  the sandbox is stopped, then `nbgate checkpoint dump --mode
 *         commit` turns the server's upper dir into a layer on top of its
 *         image; resuming
 *         starts that image (a new image digest resets the upper dir).
 *
 * Both run helpers as child processes polled from an lws_sul timer: the
 * event loop never waits for CRIU or tar.
 */
#define LOG_PREFIX "spawner/local: "

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/ckpt.h"
#include "common/cleanup.h"
#include "common/file.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "spawner/local_internal.h"

#define JOB_TICK_MS 50
#define DUMP_TIMEOUT_MS (10 * 60 * 1000)
#define SHIM_GONE_MS 15000   /* after a good dump the shim exits at once */
#define COMMIT_TIMEOUT_MS (30 * 60 * 1000)

enum job_kind { JOB_DUMP, JOB_COMMIT, JOB_REPORT };

/* One dump, commit, or deferred restore report (srv is borrowed: a server
 * that is checkpointing or restoring cannot be removed). */
struct local_job {
	lws_sorted_usec_list_t sul;
	struct spawner *sp;
	struct spawner_server *srv;
	enum job_kind kind;
	int64_t ckpt_id;
	pid_t pid;             /* the helper, 0 before it runs */
	int status;
	bool exited;
	int64_t t0_ms, deadline_ms, shim_gone_by_ms; /* monotonic */
	char *dir;             /* criu: image dir */
	char *log;             /* the helper's output */
	char *base, *ref;      /* commit: base image and new image ref */
	bool ok;               /* report */
	char *msg;
	struct local_job *next; /* spawner_local.jobs */
};

static void job_free(struct local_job *j)
{
	struct spawner_local *sl = spawner_local_from(j->sp);

	for (struct local_job **pp = &sl->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	lws_sul_cancel(&j->sul);
	if (j->pid > 0 && !j->exited) {
		kill(j->pid, SIGKILL);
		proc_reap(j->pid, NULL, true);
	}
	free(j->dir);
	free(j->log);
	free(j->base);
	free(j->ref);
	free(j->msg);
	free(j);
}

static void job_tick(lws_sorted_usec_list_t *sul);

static struct local_job *job_new(struct spawner *sp, struct spawner_server *srv,
				 enum job_kind kind, int64_t ckpt_id)
{
	struct local_job *j = xcalloc(1, sizeof(*j));

	j->sp = sp;
	j->srv = srv;
	j->kind = kind;
	j->ckpt_id = ckpt_id;
	j->t0_ms = time_mono_ms();
	j->next = spawner_local_from(sp)->jobs;
	spawner_local_from(sp)->jobs = j;
	return j;
}

void local__jobs_free(struct spawner_local *sl)
{
	while (sl->jobs)
		job_free(sl->jobs);
}

static void job_schedule(struct local_job *j, int ms)
{
	lws_sul_schedule(j->sp->cfg.lws, 0, &j->sul, job_tick, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* The last non-empty line of the helper's output, for messages. Owned. */
static char *helper_error(const char *log)
{
	cleanup_free char *text = NULL;
	char *end, *start;

	if (file_read_all(log, 0, 1 << 20, &text, NULL, NULL) < 0 || !text[0])
		return xstrdup("the helper printed nothing");
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(text, '\n');
	start = start ? start + 1 : text;
	if (strncmp(start, "nbgate checkpoint: dump: ", 25) == 0)
		start += 25;
	return xstrndup(start, 400);
}

static int spawn_helper(struct local_job *j, const char *const *argv, const char *const *env,
			struct err **err)
{
	cleanup_close int fd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
				    0600);
	struct proc_opts o = { .argv = argv, .envp = env, .cwd = "/", .stdin_fd = -1,
			       .new_session = true };

	if (fd < 0)
		return err_set_errno(err, "open '%s'", j->log);
	o.stdout_fd = fd;
	o.stderr_fd = fd;
	return proc_spawn(&o, &j->pid, err);
}

/* Polls the helper; true once it has exited (status in j->status). */
static bool helper_exited(struct local_job *j)
{
	if (!j->exited && j->pid > 0 && proc_reap(j->pid, &j->status, false) == j->pid)
		j->exited = true;
	if (!j->exited && time_mono_ms() >= j->deadline_ms) {
		log_warn("'%s': checkpoint helper pid %d over its deadline: SIGKILL", j->srv->slug,
			 (int)j->pid);
		kill(j->pid, SIGKILL);
		j->deadline_ms = time_mono_ms() + 60000;
	}
	return j->exited;
}

static bool helper_ok(const struct local_job *j)
{
	return WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0;
}

/* ---- criu ---- */

/* Host pid of the sandbox's PID 1: the shim's only child. */
static pid_t sandbox_pid1(pid_t shim)
{
	char path[64];
	cleanup_free char *kids = NULL;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)shim, (int)shim);
	if (file_read_all(path, 0, 4096, &kids, NULL, NULL) < 0)
		return -1;
	return (pid_t)strtol(kids, NULL, 10);
}

/* Why a sandbox cannot be dumped by CRIU, from its spec; NULL when it can. */
static const char *criu_refusal(const struct sandbox_spec *s)
{
	if (s->net != SANDBOX_NET_NONE)
		return "network 'egress' (pasta's tap device lives outside the sandbox)";
	if (s->devices && s->devices[0])
		return "GPUs are attached (device memory cannot be dumped)";
	return NULL;
}

/* dir 0700 with a copy of the spec: the restore needs it after the shim
 * removed the original; it holds the server's token, like the images. */
static int criu_prepare_dir(const char *dir, const char *spec_path, struct err **err)
{
	cleanup_free char *parent = xstrdup(dir), *copy = xasprintf("%s/sandbox.json", dir);
	cleanup_free char *text = NULL;
	cleanup_close int fd = -1;
	size_t len = 0;
	char *slash = strrchr(parent, '/');

	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0700) < 0 && errno != EEXIST)
			return err_set_errno(err, "checkpoint dir '%s'", parent);
	}
	if (mkdir(dir, 0700) < 0)
		return err_set_errno(err, "checkpoint dir '%s'", dir);
	if (file_read_all(spec_path, O_NOFOLLOW, 1 << 20, &text, &len, err) < 0)
		return err_wrap(err, "sandbox spec");
	fd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		return err_set_errno(err, "write '%s'", copy);
	return 0;
}

static int checkpoint_criu(struct spawner_local *sl, struct spawner_server *srv,
			   const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner *sp = &sl->base;
	struct local_server *ls = srv->priv;
	struct sandbox_spec *spec = NULL;
	const char *why;
	struct local_job *j;
	char pid_s[16], timeout_s[24];
	pid_t pid1;

	if (!sp->ckpt.criu_usable)
		return err_set(err, ENOTSUP, "CRIU is not usable on this host (`nbgate doctor` "
			       "says why)");
	if (!ls || (pid1 = sandbox_pid1(ls->w.pid)) <= 1)
		return err_set(err, ENOTSUP, "no running sandbox to dump");
	if (sandbox_spec_read(ls->spec_path, &spec, err) < 0)
		return err_wrap(err, "criu checkpoint");
	why = criu_refusal(spec);
	sandbox_spec_free(spec);
	if (why)
		return err_set(err, ENOTSUP, "CRIU cannot checkpoint this server: %s", why);
	if (criu_prepare_dir(ck->path, ls->spec_path, err) < 0)
		return err_wrap(err, "criu checkpoint");
	j = job_new(sp, srv, JOB_DUMP, ck->id);
	j->dir = xstrdup(ck->path);
	j->log = xasprintf("%s/helper.log", ck->path);
	j->deadline_ms = time_mono_ms() + DUMP_TIMEOUT_MS + 10000;
	snprintf(pid_s, sizeof(pid_s), "%d", (int)pid1);
	snprintf(timeout_s, sizeof(timeout_s), "%d", DUMP_TIMEOUT_MS);
	const char *criu = sp->ckpt.criu_path ? sp->ckpt.criu_path : CHECKPOINT_CRIU_DEFAULT_PATH;
	/* the running binary through /proc: its path may name a file replaced
	 * since (a rebuild or an upgrade: "... (deleted)") */
	const char *const argv[] = { "/proc/self/exe", "checkpoint", "dump", "--mode", "criu",
				     "--criu", criu, "--pid1", pid_s, "--dir", ck->path,
				     "--timeout", timeout_s, NULL };
	const char *const env[] = { "PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
				    "LANG=C.UTF-8", NULL };
	if (spawn_helper(j, argv, env, err) < 0) {
		job_free(j);
		return err_wrap(err, "criu checkpoint");
	}
	log_info("'%s': CRIU dump of PID 1 %d into '%s' (helper pid %d)", srv->slug, (int)pid1,
		 ck->path, (int)j->pid);
	spawner_progress(sp, srv, 30, "writing the checkpoint (CRIU)");
	job_schedule(j, JOB_TICK_MS);
	return 0;
}

/* true when the job is finished (and freed by the caller). */
static bool dump_step(struct local_job *j)
{
	struct spawner_server *srv = j->srv;
	cleanup_free char *msg = NULL;

	if (!helper_exited(j))
		return false;
	if (!helper_ok(j)) {
		cleanup_free char *why = helper_error(j->log);
		bool alive = srv->priv != NULL;

		msg = xasprintf("CRIU dump failed: %s", why);
		log_warn("'%s': %s (sandbox %s)", srv->slug, msg, alive ? "still running" : "gone");
		spawner_checkpoint_done(j->sp, srv, j->ckpt_id, false, alive, 0, msg);
		return true;
	}
	if (srv->priv) { /* the shim notices PID 1's end and cleans up */
		if (!j->shim_gone_by_ms)
			j->shim_gone_by_ms = time_mono_ms() + SHIM_GONE_MS;
		if (time_mono_ms() < j->shim_gone_by_ms)
			return false;
		log_warn("'%s': shim still there %d ms after the dump: SIGKILL", srv->slug,
			 SHIM_GONE_MS);
		spawner_watch_signal(&((struct local_server *)srv->priv)->w, SIGKILL);
		j->shim_gone_by_ms = time_mono_ms() + SHIM_GONE_MS;
		return false;
	}
	int64_t size = checkpoint_dir_size(j->dir);
	msg = xasprintf("checkpoint written: %.1f MiB in %.2f s (CRIU)",
			(double)(size > 0 ? size : 0) / (1 << 20),
			(double)(time_mono_ms() - j->t0_ms) / 1000.0);
	log_info("'%s': %s", srv->slug, msg);
	spawner_checkpoint_done(j->sp, srv, j->ckpt_id, true, false, size > 0 ? size : 0, msg);
	return true;
}

/* ---- commit ---- */

static int64_t tree_bytes;
static int tree_add(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)path, (void)type, (void)f;
	if (S_ISREG(st->st_mode))
		tree_bytes += (int64_t)st->st_blocks * 512;
	return 0;
}

/* Bytes of the files under dir (the layer's size before compression). */
static int64_t tree_size(const char *dir)
{
	tree_bytes = 0;
	if (nftw(dir, tree_add, 16, FTW_PHYS | FTW_MOUNT) < 0)
		return -1;
	return tree_bytes;
}

static int checkpoint_commit(struct spawner_local *sl, struct spawner_server *srv,
			     const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner *sp = &sl->base;
	struct local_job *j;

	if (!ck->image || !ck->image[0])
		return err_set(err, EINVAL, "commit: the server's image is not known");
	j = job_new(sp, srv, JOB_COMMIT, ck->id);
	j->base = xstrdup(ck->image);
	j->ref = xstrdup(ck->path);
	j->log = xasprintf("%s/commit.log", srv->run_dir);
	j->deadline_ms = time_mono_ms() + COMMIT_TIMEOUT_MS;
	if (srv->priv) /* kernels cannot survive a commit: stop first */
		spawner_watch_stop(&((struct local_server *)srv->priv)->w);
	spawner_progress(sp, srv, 30, "stopping the server to save its files (commit)");
	job_schedule(j, JOB_TICK_MS);
	return 0;
}

static int commit_spawn(struct local_job *j, struct err **err)
{
	struct spawner_server *srv = j->srv;
	cleanup_free char *upper = xasprintf("%s/upper", srv->run_dir);
	const char *const argv[] = { "/proc/self/exe", "checkpoint", "dump", "--mode", "commit",
				     "--store", j->sp->cfg.image_store, "--base", j->base,
				     "--upper", upper, "--ref", j->ref, NULL };
	const char *const env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL };

	return spawn_helper(j, argv, env, err);
}

static bool commit_step(struct local_job *j)
{
	struct spawner_server *srv = j->srv;
	cleanup_free char *msg = NULL, *upper = NULL;
	struct err *e = NULL;

	if (srv->priv)
		return false; /* still stopping (the watcher's deadline kills it) */
	if (j->pid == 0) {
		if (commit_spawn(j, &e) < 0) {
			spawner_checkpoint_done(j->sp, srv, j->ckpt_id, false, false, 0, e->msg);
			err_free(&e);
			return true;
		}
		spawner_progress(j->sp, srv, 50, "saving the server's files as an image layer");
		return false;
	}
	if (!helper_exited(j))
		return false;
	if (!helper_ok(j)) {
		cleanup_free char *why = helper_error(j->log);
		msg = xasprintf("commit failed: %s", why);
		spawner_checkpoint_done(j->sp, srv, j->ckpt_id, false, false, 0, msg);
		return true;
	}
	upper = xasprintf("%s/upper", srv->run_dir);
	int64_t size = tree_size(upper); /* NEEDSWORK: the blob's size would be exact */
	msg = xasprintf("files saved as image '%s' in %.2f s (commit)", j->ref,
			(double)(time_mono_ms() - j->t0_ms) / 1000.0);
	log_info("'%s': %s", srv->slug, msg);
	spawner_checkpoint_done(j->sp, srv, j->ckpt_id, true, false, size > 0 ? size : 0, msg);
	return true;
}

/* ---- the timer ---- */

static void job_tick(lws_sorted_usec_list_t *sul)
{
	struct local_job *j = lws_container_of(sul, struct local_job, sul);
	bool done = true;

	switch (j->kind) {
	case JOB_DUMP:
		done = dump_step(j);
		break;
	case JOB_COMMIT:
		done = commit_step(j);
		break;
	case JOB_REPORT:
		spawner_restore_done(j->sp, j->srv, j->ckpt_id, j->ok, j->msg);
		break;
	}
	if (done)
		job_free(j);
	else
		job_schedule(j, JOB_TICK_MS);
}

int local__checkpoint(struct spawner *sp, struct spawner_server *srv,
		      const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner_local *sl = spawner_local_from(sp);

	switch (ck->mode) {
	case SPAWNER_CKPT_CRIU:
		return checkpoint_criu(sl, srv, ck, err);
	case SPAWNER_CKPT_COMMIT:
		return checkpoint_commit(sl, srv, ck, err);
	default:
		return err_set(err, ENOTSUP, "checkpoint mode '%s' is not a backend op",
			       spawner_ckpt_mode_name(ck->mode));
	}
}

/* ---- restore ---- */

/* The saved spec back in the run dir, where the shim and adoption expect it. */
static int restore_spec(const struct spawner_checkpoint *ck, const char *spec_path,
			struct err **err)
{
	cleanup_free char *saved = xasprintf("%s/sandbox.json", ck->path);
	cleanup_free char *text = NULL;
	cleanup_close int fd = -1;
	size_t len = 0;

	if (file_read_all(saved, O_NOFOLLOW, 1 << 20, &text, &len, err) < 0)
		return err_wrap(err, "checkpoint %lld has no sandbox spec", (long long)ck->id);
	unlink(spec_path);
	fd = open(spec_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		return err_set_errno(err, "write '%s'", spec_path);
	return 0;
}

static int restore_criu(struct spawner_local *sl, struct spawner_server *srv,
			const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner *sp = &sl->base;
	cleanup_free char *spec_path = xasprintf("%s/sandbox.json", srv->run_dir);
	cleanup_free char *sock = xasprintf("%s/sock/server.sock", srv->run_dir);
	const char *criu = sp->ckpt.criu_path ? sp->ckpt.criu_path : CHECKPOINT_CRIU_DEFAULT_PATH;
	const char *const argv[] = { sl->init_path, "--restore", criu, ck->path, spec_path, NULL };
	struct local_server *ls;
	int status_fd = -1;
	pid_t pid = 0;

	if (!sp->ckpt.criu_usable)
		return err_set(err, ENOTSUP, "CRIU is not usable on this host any more");
	if (restore_spec(ck, spec_path, err) < 0 ||
	    local__launch_shim(srv, argv, &pid, &status_fd, err) < 0)
		return err_wrap(err, "restore");
	free(srv->upstream);
	srv->upstream = xasprintf("unix:%s", sock);
	ls = local__server_new(sp, srv, pid, proc_start_time(pid), true);
	ls->status_fd = status_fd;
	ls->launched_ms = time_mono_ms();
	ls->ckpt_id = ck->id;
	ls->ckpt_mode = SPAWNER_CKPT_CRIU;
	srv->pid = pid;
	srv->pid_start = ls->w.pid_start;
	if (spawner__persist(sp, srv, err) < 0 || spawner_watch_start(&ls->w, err) < 0) {
		proc_kill_and_reap(pid, 0);
		local__release(sp, srv);
		local__cleanup(sp, srv, NULL);
		srv->pid = 0;
		return err_wrap(err, "restore");
	}
	log_info("'%s': restoring checkpoint %lld with CRIU (shim pid %d)", srv->slug,
		 (long long)ck->id, (int)pid);
	spawner_progress(sp, srv, 40, "restoring the checkpoint (CRIU)");
	return 0;
}

int local__restore(struct spawner *sp, struct spawner_server *srv,
		   const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner_local *sl = spawner_local_from(sp);
	struct local_server *ls;

	if (srv->priv)
		return err_set_http(err, 409, EBUSY, "the previous sandbox of '%s' is still exiting",
				    srv->slug);
	if (ck->mode == SPAWNER_CKPT_CRIU)
		return restore_criu(sl, srv, ck, err);
	if (ck->mode != SPAWNER_CKPT_COMMIT)
		return err_set(err, ENOTSUP, "cannot restore a '%s' checkpoint",
			       spawner_ckpt_mode_name(ck->mode));
	if (local__start_image(sp, srv, ck->path, err) < 0)
		return err_wrap(err, "start from the committed image '%s'", ck->path);
	ls = srv->priv;
	ls->ckpt_id = ck->id;
	ls->ckpt_mode = SPAWNER_CKPT_COMMIT;
	return 0;
}

void local__restore_ready(struct spawner_watch *w)
{
	struct local_server *ls = (struct local_server *)w;
	const char *msg = ls->ckpt_mode == SPAWNER_CKPT_CRIU
		? "restored: kernels and terminals are where you left them (CRIU)"
		: "resumed from the saved files: installed packages are kept, kernels were restarted "
		  "(commit)";

	log_info("'%s': %s, %lld ms after launch", w->srv->slug, msg,
		 (long long)(time_mono_ms() - ls->launched_ms));
	spawner_restore_done(w->sp, w->srv, ls->ckpt_id, true, msg);
}

bool local__ended_ckpt(struct spawner_watch *w)
{
	struct local_server *ls = (struct local_server *)w;
	struct local_job *j;
	cleanup_free char *tail = NULL;

	if (w->srv->state != SPAWNER_RESTORING)
		return false; /* a dump's end is the dump job's business */
	/* reported after the watcher released srv->priv: the fallback start
	 * needs a server without a sandbox */
	j = job_new(w->sp, w->srv, JOB_REPORT, ls->ckpt_id);
	tail = w->log_paths[1] ? spawner_log_tail(w->log_paths[1]) : xstrdup("");
	j->msg = w->fail_reason ? xstrdup(w->fail_reason)
				: xasprintf("the restored sandbox exited%s%s", tail[0] ? ": " : "",
					    tail);
	j->ok = false;
	job_schedule(j, 0);
	return true;
}

/*
 * What a dump writes is mostly the sandbox's anonymous memory (and shmem);
 * the cgroup's usage also counts page cache (the image's libraries), which
 * is not dumped. v1: total_rss + total_shmem; v2: anon + shmem.
 */
int64_t local__checkpoint_size(struct spawner *sp, struct spawner_server *srv)
{
	bool v2 = sandbox_cgroup_version() == 2;
	cleanup_free char *path = v2 ? xasprintf("/sys/fs/cgroup/nbgate/%s/memory.stat", srv->slug)
				     : xasprintf("/sys/fs/cgroup/memory/nbgate/%s/memory.stat",
						 srv->slug);
	const char *keys[2] = { v2 ? "anon " : "total_rss ", v2 ? "shmem " : "total_shmem " };
	cleanup_free char *text = NULL;
	int64_t sum = 0;

	(void)sp;
	if (file_read_all(path, 0, 1 << 16, &text, NULL, NULL) < 0)
		return -1;
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		for (int i = 0; i < 2; i++)
			if (strncmp(l, keys[i], strlen(keys[i])) == 0)
				sum += strtoll(l + strlen(keys[i]), NULL, 10);
	return sum;
}

/*
 * Through the mode's remove op: criu rows lose their image dir (only below
 * ckpt.dir, no symlink followed), commit rows their image and the layer
 * only it used. NEEDSWORK: runs on the event loop; a large layer's unlink
 * takes a moment.
 */
int local__checkpoint_forget(struct spawner *sp, const struct spawner_checkpoint *ck,
			     struct err **err)
{
	const struct ckpt_ops *ops = ckpt_ops_find(spawner_ckpt_mode_name(ck->mode));
	struct ckpt_target t = { .dir = ck->path, .root = sp->ckpt.dir, .ref = ck->path,
				 .store = sp->cfg.image_store };

	if (!ops || !ck->path || !ck->path[0])
		return 0; /* stop rows own no files */
	return ckpt_remove(ops, &t, err);
}
