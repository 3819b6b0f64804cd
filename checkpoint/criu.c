/*
 * criu: dump and restore of one sandbox tree with CRIU (checkpoint.h).
 *
 * What makes a sandbox dumpable (docs/checkpoint.md "How a sandbox is
 * dumped"): PID 1 is a session leader (pid1.c), holds no host file but its
 * own executable and libraries, and the server's output is a pipe whose
 * reader (the shim) stays outside. So a dump names:
 *   - every bind mount from the host (home, socket dir, /dev nodes, masks)
 *     as external, auto-detected: --external mnt[];
 *   - each host file PID 1 maps (nbgate-init and its libraries) as
 *     --external file[<mnt_id>:<inode>], recorded with its path in
 *     nbgate-restore.txt so that the restore can open the same file and
 *     hand it over with --inherit-fd;
 *   - the log pipe, recorded the same way, replaced by the new shim's pipe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/ckpt.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/xalloc.h"

#define META "nbgate-restore.txt"
#define MAX_EXT 64

struct ext {
	char key[64];    /* "file[1a:3f2]" or "pipe:[12345]" */
	char *path;      /* host path (files) or NULL (the log pipe) */
};

struct exts {
	struct ext v[MAX_EXT];
	int n;
};

static void exts_free(struct exts *x)
{
	for (int i = 0; i < x->n; i++)
		free(x->v[i].path);
	x->n = 0;
}

static bool exts_has(const struct exts *x, const char *key)
{
	for (int i = 0; i < x->n; i++)
		if (!strcmp(x->v[i].key, key))
			return true;
	return false;
}

/* The mount ids of pid's mount namespace (first field of mountinfo). */
static int ns_mounts(pid_t pid, int **ids, int *n, struct err **err)
{
	cleanup_free char *path = xasprintf("/proc/%d/mountinfo", (int)pid);
	cleanup_free char *text = NULL;
	int cap = 0;

	if (file_read_all(path, 0, 4 << 20, &text, NULL, err) < 0)
		return -EIO;
	*n = 0;
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*ids = xrealloc(*ids, (size_t)cap * sizeof(**ids));
		}
		(*ids)[(*n)++] = (int)strtol(l, NULL, 10);
	}
	return 0;
}

static bool in_list(const int *v, int n, int x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* mnt_id of an open fd, from /proc/self/fdinfo. */
static int fd_mnt_id(int fd)
{
	char path[64];
	cleanup_free char *text = NULL;
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (file_read_all(path, 0, 1 << 16, &text, NULL, NULL) < 0 ||
	    !(p = strstr(text, "mnt_id:")))
		return -1;
	return (int)strtol(p + 7, NULL, 10);
}

/* Adds `file` (opened through a /proc link) when its mount is not in the
 * sandbox's namespace: a host file CRIU cannot find on its own. */
static void add_if_external(struct exts *x, const char *link, const char *path, const int *ns,
			    int n_ns)
{
	cleanup_close int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	char key[64];
	int mnt;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || x->n == MAX_EXT)
		return;
	mnt = fd_mnt_id(fd);
	if (mnt < 0 || in_list(ns, n_ns, mnt))
		return;
	snprintf(key, sizeof(key), "file[%x:%llx]", mnt, (unsigned long long)st.st_ino);
	if (exts_has(x, key))
		return;
	snprintf(x->v[x->n].key, sizeof(x->v[x->n].key), "%s", key);
	x->v[x->n++].path = xstrdup(path);
}

/* Host files mapped by pid (its executable and shared libraries). */
static int scan_maps(pid_t pid, struct exts *x, const int *ns, int n_ns, struct err **err)
{
	cleanup_free char *path = xasprintf("/proc/%d/maps", (int)pid);
	cleanup_free char *text = NULL;

	if (file_read_all(path, 0, 8 << 20, &text, NULL, err) < 0)
		return -EIO;
	for (char *l = text; l && *l;) {
		char *nl = strchr(l, '\n'), *file = strchr(l, '/'), *dash = strchr(l, '-');
		if (nl)
			*nl = '\0';
		/* "start-end perms off dev inode   /path": map_files/<start-end> */
		if (file && dash && dash < file && !strstr(file, " (deleted)")) {
			char *sp = strchr(l, ' ');
			if (sp) {
				*sp = '\0';
				cleanup_free char *link = xasprintf("/proc/%d/map_files/%s", (int)pid, l);
				add_if_external(x, link, file, ns, n_ns);
			}
		}
		l = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* The log pipe: fd 1 of PID 1's first child (the server). */
static void find_log_pipe(pid_t pid1, struct exts *x)
{
	char path[96], target[64] = "";
	cleanup_free char *kids = NULL;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid1, (int)pid1);
	if (file_read_all(path, 0, 1 << 16, &kids, NULL, NULL) < 0 || !kids[0])
		return;
	snprintf(path, sizeof(path), "/proc/%ld/fd/1", strtol(kids, NULL, 10));
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0 || strncmp(target, "pipe:[", 6) != 0 || x->n == MAX_EXT)
		return;
	target[n] = '\0';
	snprintf(x->v[x->n].key, sizeof(x->v[x->n].key), "%s", target);
	x->v[x->n++].path = NULL;
}

#define MAX_TASKS 4096
#define FOREIGN_WAIT_MS 5000

/* pid1 and all its descendants (bounded), through /proc/<pid>/task/<tid>/children. */
static int tree_pids(pid_t pid1, pid_t *out, int cap)
{
	int n = 0;

	out[n++] = pid1;
	for (int i = 0; i < n; i++) {
		char path[64];
		cleanup_free char *kids = NULL;
		char *p, *end;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)out[i], (int)out[i]);
		if (file_read_all(path, 0, 1 << 16, &kids, NULL, NULL) < 0)
			continue;
		for (p = kids; n < cap; p = end) {
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			out[n++] = (pid_t)v;
		}
	}
	return n;
}

/* true when `text` (a /proc/net/unix) lists socket inode ino. */
static bool unix_listed(const char *text, unsigned long ino)
{
	char needle[32];
	size_t n = (size_t)snprintf(needle, sizeof(needle), " %lu", ino);

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		if (p[n] == '\n' || p[n] == ' ' || p[n] == '\0')
			return true;
	return false;
}

/* The first socket an fd of the tree holds that is not in the sandbox's
 * network namespace: a connection accepted from the gateway (an accepted
 * Unix socket belongs to the connecting side's namespace); 0 when none. */
static unsigned long foreign_socket(pid_t pid1)
{
	static pid_t pids[MAX_TASKS];
	cleanup_free char *path = xasprintf("/proc/%d/net/unix", (int)pid1), *netunix = NULL;
	cleanup_free char *hostunix = NULL;
	int n = tree_pids(pid1, pids, MAX_TASKS);

	if (file_read_all(path, 0, 16 << 20, &netunix, NULL, NULL) < 0 ||
	    file_read_all("/proc/self/net/unix", 0, 16 << 20, &hostunix, NULL, NULL) < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		char fdd[64], link[384], target[64];
		snprintf(fdd, sizeof(fdd), "/proc/%d/fd", (int)pids[i]);
		DIR *d = opendir(fdd);
		struct dirent *de;
		unsigned long ino = 0;

		while (d && (de = readdir(d))) {
			snprintf(link, sizeof(link), "%s/%s", fdd, de->d_name);
			ssize_t len = readlink(link, target, sizeof(target) - 1);
			if (len <= 8 || strncmp(target, "socket:[", 8) != 0)
				continue;
			target[len] = '\0';
			unsigned long v = strtoul(target + 8, NULL, 10);
			/* in the host's namespace (ours), not the sandbox's */
			if (!unix_listed(netunix, v) && unix_listed(hostunix, v)) {
				ino = v;
				break;
			}
		}
		if (d)
			closedir(d);
		if (ino)
			return ino;
	}
	return 0;
}

static int write_meta(const char *dir, pid_t pid1, const struct exts *x, struct err **err)
{
	cleanup_free char *path = xasprintf("%s/" META, dir);
	FILE *f = fopen(path, "wxe");

	if (!f)
		return err_set_errno(err, "write %s", path);
	fprintf(f, "pid1 %d\n", (int)pid1);
	for (int i = 0; i < x->n; i++)
		fprintf(f, "%s %s\n", x->v[i].path ? "file" : "pipe", x->v[i].key);
	for (int i = 0; i < x->n; i++)
		if (x->v[i].path)
			fprintf(f, "path %s %s\n", x->v[i].key, x->v[i].path);
	if (fclose(f) != 0)
		return err_set_errno(err, "write %s", path);
	return 0;
}

/* Runs argv, killing it after timeout_ms; its status in *st. The child
 * dies with us (PDEATHSIG): a killed dump helper takes CRIU with it. */
static int run_bounded(char **argv, int64_t timeout_ms, const int *keep, int n_keep, int *st,
		       struct err **err)
{
	pid_t pid = fork();
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	if (pid < 0)
		return err_set_errno(err, "fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (int i = 0; i < n_keep; i++)
			fcntl(keep[i], F_SETFD, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int64_t waited = 0;; waited += 5) {
		pid_t w = waitpid(pid, st, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return err_set_errno(err, "waitpid");
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, st, 0);
			return err_set(err, ETIMEDOUT, "criu did not finish within %lld ms",
				       (long long)timeout_ms);
		}
		nanosleep(&ts, NULL);
	}
}

/* Error lines CRIU prints on every run here and then goes on: its own
 * RLIMIT_NOFILE (no CAP_SYS_RESOURCE), iptables missing (nftables locks),
 * the restored loopback addresses. */
static bool harmless(const char *line)
{
	static const char *const known[] = { "Can't setup RLIMIT_NOFILE for self",
					     "tables-save", "tables-restore", "tables-legacy",
					     "already assigned", "Dumping FAILED", "Restoring FAILED",
					     NULL };
	for (int i = 0; known[i]; i++)
		if (strstr(line, known[i]))
			return true;
	return false;
}

/* The first meaningful "Error" line of CRIU's log (the cause; what follows
 * are its consequences), for messages. Owned. */
char *checkpoint_criu_log_error(const char *log_path)
{
	cleanup_free char *text = NULL;
	char *found = NULL;

	if (file_read_all(log_path, 0, 64 << 20, &text, NULL, NULL) < 0)
		return xstrdup("no CRIU log");
	for (char *l = text; l && *l;) {
		char *nl = strchr(l, '\n'), *p;
		if (nl)
			*nl = '\0';
		if (!found && (p = strstr(l, "Error (")) && !harmless(p))
			found = xstrdup(p);
		l = nl ? nl + 1 : NULL;
	}
	return found ? found : xstrdup("CRIU failed without an error line");
}

/* Total bytes of the regular files in dir (the image size). */
int64_t checkpoint_dir_size(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t sum = 0;
	struct stat st;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (int64_t)st.st_blocks * 512;
	closedir(d);
	return sum;
}

static char **dump_argv(const struct checkpoint_criu_dump_req *r, const struct exts *x,
			char *pid_s, char *log)
{
	char **v = xcalloc(32 + 2 * (size_t)x->n, sizeof(*v));
	int n = 0;
	const char *fixed[] = { r->criu, "dump", "-t", pid_s, "-D", r->dir, "-o", log, "-v4",
				"--tcp-established", "--manage-cgroups", "--file-locks",
				"--link-remap", "--ghost-limit", "64M",
				"--external", "mnt[]", NULL };

	for (int i = 0; fixed[i]; i++)
		v[n++] = (char *)fixed[i];
	for (int i = 0; i < x->n; i++)
		if (x->v[i].path) {
			v[n++] = "--external";
			v[n++] = (char *)x->v[i].key;
		}
	return v;
}

/* The image dir, and no connection from outside left in the sandbox. */
static int dump_prepare(const struct checkpoint_criu_dump_req *r, struct err **err)
{
	unsigned long ino = 0;
	struct stat ds;

	/* the caller may have created it (with the sandbox spec in it) */
	if ((mkdir(r->dir, 0700) < 0 && errno != EEXIST) || lstat(r->dir, &ds) < 0 ||
	    !S_ISDIR(ds.st_mode) || ds.st_uid != 0 || chmod(r->dir, 0700) < 0)
		return err_set_errno(err, "checkpoint dir %s", r->dir);
	/* the forwarder's connections to the gateway cannot be dumped */
	if (kill(r->pid1, SIGUSR1) < 0)
		return err_set_errno(err, "signal PID 1 (%d)", (int)r->pid1);
	/* nor the server's own: the gateway closed them; wait (bounded) until
	 * the server has closed its ends too */
	for (int i = 0; i < FOREIGN_WAIT_MS / 20 && (ino = foreign_socket(r->pid1)); i++)
		usleep(20 * 1000);
	if (ino)
		return err_set(err, EBUSY, "a connection from outside the sandbox (socket %lu) is "
			       "still open after %d ms", ino, FOREIGN_WAIT_MS);
	return 0;
}

int checkpoint_criu_dump(const struct checkpoint_criu_dump_req *r, struct err **err)
{
	cleanup_free int *ns = NULL;
	cleanup_free char **argv = NULL;
	cleanup_free char *log = xasprintf("%s/dump.log", r->dir);
	char pid_s[16];
	struct exts x = { .n = 0 };
	int n_ns = 0, st = 0, rc;

	if (dump_prepare(r, err) < 0)
		return -EIO;
	if (ns_mounts(r->pid1, &ns, &n_ns, err) < 0 ||
	    scan_maps(r->pid1, &x, ns, n_ns, err) < 0) {
		exts_free(&x);
		return -EIO;
	}
	find_log_pipe(r->pid1, &x);
	rc = write_meta(r->dir, r->pid1, &x, err);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)r->pid1);
	argv = dump_argv(r, &x, pid_s, log);
	if (rc == 0)
		rc = run_bounded(argv, r->timeout_ms, NULL, 0, &st, err);
	exts_free(&x);
	if (rc < 0)
		return rc;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		cleanup_free char *why = checkpoint_criu_log_error(log);
		return err_set(err, EIO, "criu dump failed (status %d): %s", st, why);
	}
	return 0;
}

/* Opens a host file the dump recorded as key "file[<mnt>:<inode>]",
 * read-only; ESTALE when it is another inode now. */
static int open_recorded(const char *key, const char *file, struct err **err)
{
	const char *colon = strchr(key, ':');
	unsigned long long ino = 0;
	char *end = NULL;
	struct stat st;
	int fd;

	if (colon) {
		errno = 0;
		ino = strtoull(colon + 1, &end, 16);
	}
	if (!colon || end == colon + 1 || *end != ']' || errno)
		return err_set(err, EINVAL, "checkpoint metadata: bad key '%s'", key);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "open %s (recorded by the dump)", file);
	if (fstat(fd, &st) < 0 || st.st_ino != ino) {
		close(fd);
		return err_set(err, ESTALE, "%s changed since the checkpoint (nbgate or the "
			       "system was upgraded)", file);
	}
	return fd;
}

/* Parses nbgate-restore.txt: opens every recorded host file read-only
 * (read-write would make exec of criu fail with ETXTBSY) and checks it is
 * still the same inode; a rebuilt nbgate-init cannot restore its old self. */
static int open_externals(const char *dir, struct exts *x, int *fds, struct err **err)
{
	cleanup_free char *path = xasprintf("%s/" META, dir);
	cleanup_free char *text = NULL;
	char key[64], file[4096];

	if (file_read_all(path, 0, 1 << 20, &text, NULL, err) < 0)
		return err_wrap(err, "checkpoint metadata");
	for (char *l = text; l && *l && x->n < MAX_EXT; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (sscanf(l, "pipe %63s", key) == 1) {
			snprintf(x->v[x->n].key, sizeof(key), "%s", key);
			fds[x->n] = -1; /* the caller's log pipe */
			x->v[x->n++].path = NULL;
			continue;
		}
		if (sscanf(l, "path %63s %4095[^\n]", key, file) != 2)
			continue;
		int fd = open_recorded(key, file, err);
		if (fd < 0)
			return fd;
		snprintf(x->v[x->n].key, sizeof(key), "%s", key);
		fds[x->n] = fd;
		x->v[x->n++].path = xstrdup(file);
	}
	return 0;
}

static char **restore_argv(const struct checkpoint_criu_restore_req *r, const struct exts *x,
			   const int *fds, char *log, char *pidfile)
{
	char **v = xcalloc(32 + 2 * (size_t)x->n, sizeof(*v));
	int n = 0;
	const char *fixed[] = { r->criu, "restore", "-D", r->dir, "-o", log, "-v4",
				"--restore-detached", "--restore-sibling", "--tcp-established",
				"--manage-cgroups", "--file-locks", "--external", "mnt[]",
				"--root", r->rootfs, "--pidfile", pidfile, NULL };

	/* every element owned, so that one free loop releases them */
	for (int i = 0; fixed[i]; i++)
		v[n++] = xstrdup(fixed[i]);
	for (int i = 0; i < x->n; i++) {
		v[n++] = xstrdup("--inherit-fd");
		v[n++] = xasprintf("fd[%d]:%s", fds[i] >= 0 ? fds[i] : r->log_wr, x->v[i].key);
	}
	return v;
}

static void argv_free_inherit(char **v)
{
	for (int i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int checkpoint_criu_restore(const struct checkpoint_criu_restore_req *r, pid_t *pid1,
			    struct err **err)
{
	cleanup_free char *log = xasprintf("%s/restore.log", r->dir);
	cleanup_free char *pidfile = xasprintf("%s/restore.pid", r->dir);
	cleanup_free char *pid_s = NULL;
	int fds[MAX_EXT], keep[MAX_EXT + 1], n_keep = 0, st = 0, rc;
	struct exts x = { .n = 0 };
	char **argv = NULL;

	unlink(pidfile);
	unlink(log);
	rc = open_externals(r->dir, &x, fds, err);
	if (rc == 0) {
		for (int i = 0; i < x.n; i++)
			keep[n_keep++] = fds[i] >= 0 ? fds[i] : r->log_wr;
		argv = restore_argv(r, &x, fds, log, pidfile);
		rc = run_bounded(argv, r->timeout_ms, keep, n_keep, &st, err);
	}
	for (int i = 0; i < x.n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	exts_free(&x);
	argv_free_inherit(argv);
	if (rc < 0)
		return rc;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		cleanup_free char *why = checkpoint_criu_log_error(log);
		return err_set(err, EIO, "criu restore failed (status %d): %s", st, why);
	}
	if (file_read_all(pidfile, 0, 64, &pid_s, NULL, err) < 0)
		return err_wrap(err, "criu restore: pid file");
	*pid1 = (pid_t)strtol(pid_s, NULL, 10);
	return *pid1 > 0 ? 0 : err_set(err, EIO, "criu restore: bad pid file '%s'", pid_s);
}

/* ---- rlimits: root without CAP_SYS_RESOURCE (docs/checkpoint.md) ---- */

/* true when <prefix>/lib/nbgate/criu-patches.sha256 sits next to
 * criu_path = <prefix>/sbin/criu: scripts/install-criu.sh built it with
 * nbgate's patches, one of which reads rlimits from /proc/<pid>/limits. */
static bool criu_patched(const char *criu_path)
{
	cleanup_free char *dir = xstrdup(criu_path ? criu_path : "");
	cleanup_free char *stamp = NULL;
	char *slash;

	for (int i = 0; i < 2; i++) {
		slash = strrchr(dir, '/');
		if (!slash)
			return false;
		*slash = '\0';
	}
	stamp = xasprintf("%s/lib/nbgate/criu-patches.sha256", dir);
	return access(stamp, R_OK) == 0;
}

int checkpoint_criu_rlimits(const char *criu_path, char **why)
{
	cleanup_free char *status = NULL;
	unsigned long long bnd = 0;
	const char *p = NULL;
	char *end = NULL;

	if (file_read_all("/proc/self/status", 0, 1 << 16, &status, NULL, NULL) == 0 &&
	    (p = strstr(status, "\nCapBnd:")))
		bnd = strtoull(p + 8, &end, 16);
	if (!p || end == p + 8) {
		*why = xstrdup("cannot read CapBnd from /proc/self/status");
		return 0;
	}
	if (bnd & (1ULL << 24)) { /* CAP_SYS_RESOURCE */
		*why = xstrdup("CAP_SYS_RESOURCE in the bounding set: CRIU can read sandboxes' rlimits");
		return 1;
	}
	if (criu_patched(criu_path)) {
		*why = xstrdup("root lacks CAP_SYS_RESOURCE, but this CRIU carries nbgate's patch "
			       "(rlimits read from /proc/<pid>/limits)");
		return 1;
	}
	*why = xstrdup("root lacks CAP_SYS_RESOURCE (bounding set): CRIU cannot read the rlimits "
		       "of a sandbox's tasks (prlimit: EPERM), so sandbox dumps fail; `make criu` "
		       "builds CRIU with nbgate's patch for this (docs/checkpoint.md)");
	return 0;
}

/* ---- the ops (ckpt.h) ---- */

static int criu_probe(const struct ckpt_target *t, char **why, struct err **err)
{
	struct checkpoint_criu_info ci = { 0 };
	int ok;

	if (checkpoint_criu_probe(t->tool, &ci, err) < 0)
		return err_wrap(err, "CRIU at '%s'", t->tool);
	ok = ci.usable;
	if (!ok)
		*why = xstrdup(ci.reason ? ci.reason : "CRIU is not usable");
	checkpoint_criu_info_release(&ci);
	if (ok && !(ok = checkpoint_criu_rlimits(t->tool, why)))
		return 0;
	if (ok) {
		free(*why);
		*why = NULL;
	}
	return ok;
}

static int criu_dump_op(const struct ckpt_target *t, struct err **err)
{
	struct checkpoint_criu_dump_req r = { .criu = t->tool, .pid1 = t->pid1, .dir = t->dir,
					      .timeout_ms = t->timeout_ms };
	return checkpoint_criu_dump(&r, err);
}

static int criu_restore_op(const struct ckpt_target *t, pid_t *pid1, struct err **err)
{
	struct checkpoint_criu_restore_req r = { .criu = t->tool, .dir = t->dir,
						 .rootfs = t->rootfs, .log_wr = t->log_wr,
						 .timeout_ms = t->timeout_ms };
	return checkpoint_criu_restore(&r, pid1, err);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* t->dir is a clean path strictly below the absolute t->root. */
static bool below_root(const struct ckpt_target *t)
{
	size_t rl = t->root ? strlen(t->root) : 0;

	return t->root && t->root[0] == '/' && t->dir && strncmp(t->dir, t->root, rl) == 0 &&
	       t->dir[rl] == '/' && !strstr(t->dir + rl, "/.") && !strstr(t->dir + rl, "//");
}

/* Every component of path after the first skip bytes is a real directory
 * (lstat: a symlink is not). 1 yes, 0 a component is missing, <0 not. */
static int real_dirs(const char *path, size_t skip, struct err **err)
{
	cleanup_free char *p = xstrdup(path);
	struct stat st;

	for (char *s = p + skip + 1;; s++) {
		bool last = *s == '\0';

		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (lstat(p, &st) < 0)
			return errno == ENOENT ? 0 : err_set_errno(err, "stat '%s'", p);
		if (!S_ISDIR(st.st_mode))
			return err_set(err, ELOOP, "refusing to delete below '%s': not a directory", p);
		if (last)
			return 1;
		*s = '/';
	}
}

/*
 * rm -r of t->dir, which must be a clean path strictly below t->root whose
 * every component below the root is a real directory (no symlink anywhere:
 * lstat, and nftw with FTW_PHYS never follows one). A missing dir is fine.
 */
static int criu_remove_op(const struct ckpt_target *t, struct err **err)
{
	int r;

	if (!below_root(t))
		return err_set(err, EPERM, "refusing to delete '%s': not below '%s'",
			       t->dir ? t->dir : "", t->root ? t->root : "");
	r = real_dirs(t->dir, strlen(t->root), err);
	if (r <= 0)
		return r;
	if (nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return err_set_errno(err, "delete '%s'", t->dir);
	return 0;
}

const struct ckpt_ops ckpt_criu_ops = {
	.name = "criu",
	.caps = CKPT_CAP_MEMORY,
	.probe = criu_probe,
	.dump = criu_dump_op,
	.restore = criu_restore_op,
	.remove = criu_remove_op,
};
