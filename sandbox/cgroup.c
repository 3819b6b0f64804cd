/*
 * cgroup: the sandbox's cgroup nbgate/<id> with memory, CPU and pids
 * limits, on cgroup v1 (one directory per controller) or v2 (one leaf).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/sbx.h"

#define CG_ROOT "/sys/fs/cgroup"

static const char *const cg_v1_controllers[] = { "memory", "cpu", "pids" };

int sandbox_cgroup_version(void)
{
	return access(CG_ROOT "/cgroup.controllers", F_OK) == 0 ? 2 : 1;
}

static int cg_write(const char *dir, const char *file, const char *val, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/%s", dir, file);
	if (sbx_fault("cgroup_write"))
		return err_set_errno(err, "cgroup_write: %s", p);
	cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "cgroup_write: open %s", p);
	if (sbx_write_all(fd, val, strlen(val)) < 0)
		return err_set_errno(err, "cgroup_write: %s = %s", p, val);
	return 0;
}

void sbx_cgroup_paths(const char *id, struct sbx_cgroup *cg)
{
	memset(cg, 0, sizeof(*cg));
	cg->version = sandbox_cgroup_version();
	if (cg->version == 2) {
		cg->dirs[cg->n++] = xasprintf(CG_ROOT "/nbgate/%s", id);
		return;
	}
	for (size_t i = 0; i < sizeof(cg_v1_controllers) / sizeof(cg_v1_controllers[0]); i++)
		cg->dirs[cg->n++] = xasprintf(CG_ROOT "/%s/nbgate/%s", cg_v1_controllers[i], id);
}

static int mkdir_parent(const char *leaf, struct err **err)
{
	cleanup_free char *parent = xstrdup(leaf);
	*strrchr(parent, '/') = 0;
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return err_set_errno(err, "cgroup: mkdir %s", parent);
	return 0;
}

/* v2: controllers must be enabled in every ancestor's subtree_control. */
static int cg_v2_enable(struct err **err)
{
	if (cg_write(CG_ROOT, "cgroup.subtree_control", "+memory +cpu +pids", err) < 0)
		return -EIO;
	return cg_write(CG_ROOT "/nbgate", "cgroup.subtree_control", "+memory +cpu +pids", err);
}

static int cg_limits_v2(const char *d, const struct sandbox_spec *s, struct err **err)
{
	char v[64];
	if (s->memory_bytes > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)s->memory_bytes);
		if (cg_write(d, "memory.max", v, err) < 0)
			return -EIO;
		/* absent without swap accounting: nothing to limit then */
		cg_write(d, "memory.swap.max", "0", NULL);
	}
	if (s->cpu_millis > 0) {
		snprintf(v, sizeof(v), "%lld 100000", (long long)s->cpu_millis * 100);
		if (cg_write(d, "cpu.max", v, err) < 0)
			return -EIO;
	}
	if (s->pids_max > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)s->pids_max);
		if (cg_write(d, "pids.max", v, err) < 0)
			return -EIO;
	}
	return 0;
}

static int cg_limits_v1(const struct sbx_cgroup *cg, const struct sandbox_spec *s,
			struct err **err)
{
	char v[64];
	if (s->memory_bytes > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)s->memory_bytes);
		if (cg_write(cg->dirs[0], "memory.limit_in_bytes", v, err) < 0)
			return -EIO;
		/* memsw exists only with swap accounting; without it there is
		 * nothing to limit */
		cleanup_free char *sw = xasprintf("%s/memory.memsw.limit_in_bytes", cg->dirs[0]);
		if (access(sw, F_OK) == 0 &&
		    cg_write(cg->dirs[0], "memory.memsw.limit_in_bytes", v, err) < 0)
			return -EIO;
	}
	if (s->cpu_millis > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)s->cpu_millis * 100);
		if (cg_write(cg->dirs[1], "cpu.cfs_period_us", "100000", err) < 0 ||
		    cg_write(cg->dirs[1], "cpu.cfs_quota_us", v, err) < 0)
			return -EIO;
	}
	if (s->pids_max > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)s->pids_max);
		if (cg_write(cg->dirs[2], "pids.max", v, err) < 0)
			return -EIO;
	}
	return 0;
}

int sbx_cgroup_create(const struct sandbox_spec *s, struct sbx_cgroup *out, struct err **err)
{
	struct sbx_cgroup cg;
	sbx_cgroup_paths(s->id, &cg);
	int r = 0;
	for (int i = 0; i < cg.n && r == 0; i++) {
		r = mkdir_parent(cg.dirs[i], err);
		if (r == 0 && mkdir(cg.dirs[i], 0755) < 0) {
			/* a leftover of a killed shim with this id */
			r = err_set_errno(err, "cgroup: mkdir %s", cg.dirs[i]);
			cg.n = i; /* destroy only what we made */
		}
	}
	if (r == 0 && cg.version == 2)
		r = cg_v2_enable(err);
	if (r == 0)
		r = cg.version == 2 ? cg_limits_v2(cg.dirs[0], s, err) : cg_limits_v1(&cg, s, err);
	if (r < 0) {
		sbx_cgroup_destroy(&cg);
		return r;
	}
	*out = cg;
	return 0;
}

int sbx_cgroup_attach(const struct sbx_cgroup *cg, pid_t pid, struct err **err)
{
	char v[32];
	snprintf(v, sizeof(v), "%d", (int)pid);
	for (int i = 0; i < cg->n; i++)
		if (cg_write(cg->dirs[i], "cgroup.procs", v, err) < 0)
			return -EIO;
	return 0;
}

/*
 * Next pid of a cgroup.procs file (one decimal pid a line): true and *pid
 * set, or false at the end or at the first line that is not a pid > 0 (a
 * pid of 0 or below would make kill() signal a process group, or all).
 */
static bool cg_next_pid(FILE *f, pid_t *pid)
{
	char line[32];
	if (!fgets(line, sizeof(line), f))
		return false;
	char *end = NULL;
	errno = 0;
	long v = strtol(line, &end, 10);
	if (end == line || errno || v <= 0 || v > INT_MAX || (*end && *end != '\n'))
		return false;
	*pid = (pid_t)v;
	return true;
}

/* Kills every pid listed; returns how many were listed (-1 unreadable). */
static int cg_kill_listed(const char *dir)
{
	cleanup_free char *p = xasprintf("%s/cgroup.procs", dir);
	cleanup_file FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	int n = 0;
	pid_t pid;
	while (cg_next_pid(f, &pid)) {
		kill(pid, SIGKILL);
		n++;
	}
	return n;
}

int sbx_cgroup_count(const struct sbx_cgroup *cg)
{
	if (cg->n == 0)
		return -1;
	cleanup_free char *p = xasprintf("%s/cgroup.procs", cg->dirs[0]);
	cleanup_file FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	int n = 0;
	pid_t pid;
	while (cg_next_pid(f, &pid))
		n++;
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

void sbx_cgroup_destroy(struct sbx_cgroup *cg)
{
	if (cg->version == 2 && cg->n > 0)
		cg_write(cg->dirs[0], "cgroup.kill", "1", NULL);
	/* bounded: 2 s; pids.max and the kill loop stop a fork bomb */
	for (int tries = 0; tries < 400; tries++) {
		int left = 0;
		for (int i = 0; i < cg->n; i++)
			left += cg_kill_listed(cg->dirs[i]) > 0;
		bool gone = true;
		for (int i = 0; i < cg->n; i++)
			if (rmdir(cg->dirs[i]) < 0 && errno != ENOENT)
				gone = false;
		if (gone && left == 0)
			break;
		sleep_ms(5);
	}
	for (int i = 0; i < cg->n; i++)
		free(cg->dirs[i]);
	cg->n = 0;
}

int sandbox_cleanup(const char *id, const char *rootfs, struct err **err)
{
	struct sbx_cgroup cg;
	if (!id || !*id || strchr(id, '/') || !strcmp(id, "..") || !strcmp(id, "."))
		return err_set(err, EINVAL, "sandbox cleanup: bad id");
	sbx_cgroup_paths(id, &cg);
	sbx_cgroup_destroy(&cg);
	if (rootfs && umount2(rootfs, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
	    errno != ENOENT)
		return err_set_errno(err, "sandbox cleanup: umount '%s'", rootfs);
	sbx_cgroup_paths(id, &cg);
	for (int i = 0; i < cg.n; i++) {
		bool left = access(cg.dirs[i], F_OK) == 0;
		free(cg.dirs[i]);
		cg.dirs[i] = NULL;
		if (left)
			return err_set(err, EBUSY, "sandbox cleanup: cgroup of '%s' still busy", id);
	}
	return 0;
}
