/*
 * gateway/doctor: `nbgate doctor` (see doctor.h). A table of checks, each
 * answering ok, warn or fail with one line of reason; a fail takes away
 * the areas (sandboxing, checkpointing) the check belongs to. Warnings
 * are things nbgate works without (egress networking, lazy restore).
 */
#define LOG_PREFIX "doctor: "

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "checkpoint/checkpoint.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "gateway/config.h"
#include "gateway/doctor.h"
#include "images/image.h"
#include "sandbox/sandbox.h"

/* sandbox/shim.c runs pasta from here (its PASTA). */
#define DOCTOR_PASTA "/usr/bin/pasta"

enum verdict { V_OK, V_WARN, V_FAIL };
enum area { A_SANDBOX = 1 << 0, A_CHECKPOINT = 1 << 1 };

struct doctor {
	const struct gw_cfg *cfg;
	struct checkpoint_criu_info criu; /* valid when criu_probed */
	bool criu_probed;
};

struct check {
	const char *name;
	unsigned areas;  /* what a fail takes away */
	enum verdict (*fn)(struct doctor *d, char **reason);
};

static enum verdict check_root(struct doctor *d, char **reason)
{
	if (geteuid() == 0) {
		*reason = xstrdup("running as root (namespaces, overlay mounts, cgroups, CRIU)");
		return V_OK;
	}
	*reason = xasprintf("running as uid %u: sandboxes and CRIU need root", (unsigned)geteuid());
	return V_FAIL;
}

static enum verdict check_criu(struct doctor *d, char **reason)
{
	const char *path = d->cfg->criu_path;
	struct err *e = NULL;

	if (checkpoint_criu_probe(path, &d->criu, &e) < 0) {
		*reason = xasprintf("%s (criu_path '%s'; `make criu` installs CRIU there)", e->msg, path);
		err_free(&e);
		return V_FAIL;
	}
	d->criu_probed = true;
	if (!d->criu.version_ok)
		*reason = xasprintf("%s: version %s, need >= 4.2 (`make criu`)", path, d->criu.version);
	else if (!d->criu.check_ok)
		*reason = xasprintf("%s: version %s, criu check fails: %s", path, d->criu.version,
				    d->criu.check_error);
	else
		*reason = xasprintf("%s: version %s, criu check: Looks good.", path, d->criu.version);
	return d->criu.version_ok && d->criu.check_ok ? V_OK : V_FAIL;
}

/*
 * CRIU reads every task's rlimits with prlimit(); for a task of another
 * uid (every sandbox) the kernel wants CAP_SYS_RESOURCE, which root lacks
 * when its bounding set was cut (this VM's PID 1 has it cut). nbgate's
 * CRIU build reads /proc/<pid>/limits instead (checkpoint_criu_rlimits).
 */
static enum verdict check_criu_rlimits(struct doctor *d, char **reason)
{
	return checkpoint_criu_rlimits(d->cfg->criu_path, reason) ? V_OK : V_FAIL;
}

/* Appends name to the comma list *s (owned). */
static void list_add(char **s, const char *name)
{
	char *t = xasprintf("%s%s%s", *s ? *s : "", *s ? ", " : "", name);

	free(*s);
	*s = t;
}

static enum verdict check_criu_features(struct doctor *d, char **reason)
{
	cleanup_free char *have = NULL, *need_missing = NULL, *want_missing = NULL;
	int i, n;
	const struct checkpoint_criu_feature *f = checkpoint_criu_features(&n);

	if (!d->criu_probed || !d->criu.check_ok) {
		*reason = xstrdup("not checked: criu is not usable (see above)");
		return V_WARN;
	}
	for (i = 0; i < n; i++) {
		if (d->criu.features & (1u << i))
			list_add(&have, f[i].name);
		else
			list_add(f[i].needed ? &need_missing : &want_missing, f[i].name);
	}
	if (need_missing) {
		*reason = xasprintf("missing (needed for sandbox dumps): %s", need_missing);
		return V_FAIL;
	}
	if (want_missing) {
		*reason = xasprintf("have %s; missing (optional): %s", have, want_missing);
		return V_WARN;
	}
	*reason = xasprintf("have %s", have);
	return V_OK;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* word in a space-separated list ("cpu" is not "cpuset") */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

/* v2: the controllers sandbox/cgroup.c enables; v1: their hierarchies. */
static enum verdict check_cgroup(struct doctor *d, char **reason)
{
	static const char *const need[] = { "memory", "cpu", "pids" };
	cleanup_free char *ctl = NULL, *missing = NULL;
	struct err *e = NULL;
	int v = sandbox_cgroup_version();
	size_t i;

	if (v == 2 && file_read_all("/sys/fs/cgroup/cgroup.controllers", 0, 4096, &ctl, NULL, &e) < 0) {
		*reason = xstrdup(e->msg);
		err_free(&e);
		return V_FAIL;
	}
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		cleanup_free char *dir = xasprintf("/sys/fs/cgroup/%s", need[i]);
		bool ok = v == 2 ? has_word(ctl, need[i]) : is_dir(dir);

		if (!ok)
			list_add(&missing, need[i]);
	}
	if (missing) {
		*reason = xasprintf("cgroup v%d without controllers: %s", v, missing);
		return V_FAIL;
	}
	/* CRIU can freeze a tree through the cgroup freezer (--freeze-cgroup)
	 * instead of stopping each task with ptrace, which races forks */
	if (v == 1 && !is_dir("/sys/fs/cgroup/freezer")) {
		*reason = xstrdup("cgroup v1 (memory, cpu, pids); no freezer hierarchy for CRIU");
		return V_WARN;
	}
	*reason = xasprintf("cgroup v%d with memory, cpu, pids%s", v,
			    v == 1 ? " and freezer" : " (cgroup.freeze)");
	return V_OK;
}

static enum verdict check_overlay(struct doctor *d, char **reason)
{
	cleanup_free char *fs = NULL;
	struct err *e = NULL;

	if (file_read_all("/proc/filesystems", 0, 64 * 1024, &fs, NULL, &e) < 0) {
		*reason = xstrdup(e->msg);
		err_free(&e);
		return V_FAIL;
	}
	if (!strstr(fs, "\toverlay\n")) {
		*reason = xstrdup("overlay is not in /proc/filesystems (modprobe overlay)");
		return V_FAIL;
	}
	*reason = xstrdup("overlay in /proc/filesystems");
	return V_OK;
}

static enum verdict check_namespaces(struct doctor *d, char **reason)
{
	static const char *const ns[] = { "mnt", "pid", "net", "ipc", "uts", "cgroup" };
	cleanup_free char *missing = NULL;
	size_t i;

	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		cleanup_free char *p = xasprintf("/proc/self/ns/%s", ns[i]);

		if (access(p, F_OK) < 0)
			list_add(&missing, ns[i]);
	}
	if (missing) {
		*reason = xasprintf("kernel lacks namespaces: %s", missing);
		return V_FAIL;
	}
	*reason = xstrdup("mnt, pid, net, ipc, uts and cgroup namespaces");
	return V_OK;
}

static enum verdict check_pasta(struct doctor *d, char **reason)
{
	if (access(DOCTOR_PASTA, X_OK) == 0) {
		*reason = xstrdup(DOCTOR_PASTA " (network mode egress)");
		return V_OK;
	}
	*reason = xasprintf(DOCTOR_PASTA ": %s; profiles with network egress cannot start "
			    "(apt-get install passt)", strerror(errno));
	return V_WARN;
}

static enum verdict check_init(struct doctor *d, char **reason)
{
	cleanup_free char *p = sandbox_init_path();

	if (access(p, X_OK) == 0) {
		*reason = xstrdup(p);
		return V_OK;
	}
	*reason = xasprintf("%s: %s (build it: make all)", p, strerror(errno));
	return V_FAIL;
}

/* The JSON shape only: compiling the filter is sandbox-internal. */
static enum verdict check_seccomp(struct doctor *d, char **reason)
{
	const char *path = d->cfg->seccomp_profile;
	cleanup_free char *text = NULL;
	cleanup_json cJSON *root = NULL;
	struct err *e = NULL;
	size_t len;

	if (file_read_all(path, 0, 4 << 20, &text, &len, &e) < 0 ||
	    (root = json_parse(text, len, &e)) == NULL) {
		*reason = xasprintf("seccomp_profile: %s", e->msg);
		err_free(&e);
		return V_FAIL;
	}
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(root, "defaultAction");
	const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "syscalls");

	if (!cJSON_IsString(def) || !cJSON_IsArray(sys)) {
		*reason = xasprintf("%s: not an OCI seccomp profile (defaultAction, syscalls)", path);
		return V_FAIL;
	}
	*reason = xasprintf("%s (defaultAction %s, %d rules)", path, def->valuestring,
			    cJSON_GetArraySize(sys));
	return V_OK;
}

static enum verdict check_images(struct doctor *d, char **reason)
{
	const struct gw_cfg *c = d->cfg;
	cleanup_free char *names = NULL, *missing = NULL;
	struct image_info **v = NULL;
	struct err *e = NULL;
	int n = 0, i;

	if (images_list(c->image_store, &v, &n, &e) < 0) {
		*reason = xasprintf("image store %s: %s (make images)", c->image_store, e->msg);
		err_free(&e);
		return V_FAIL;
	}
	for (i = 0; i < n; i++)
		list_add(&names, v[i]->name);
	for (i = 0; c->images && c->images[i]; i++) {
		struct image_info *ii = NULL;

		if (images_resolve(c->image_store, c->images[i], &ii, &e) < 0) {
			list_add(&missing, c->images[i]);
			err_free(&e);
		}
		image_info_free(ii);
	}
	images_list_free(v, n);
	if (n == 0) {
		*reason = xasprintf("image store %s is empty: no server can start (make images)",
				    c->image_store);
		return V_FAIL;
	}
	*reason = xasprintf("%s: %s%s%s%s", c->image_store, names, missing ? "; not built: " : "",
			    missing ? missing : "", missing ? " (make images)" : "");
	return missing ? V_WARN : V_OK;
}

static const struct check checks[] = {
	{ "root", A_SANDBOX | A_CHECKPOINT, check_root },
	{ "namespaces", A_SANDBOX, check_namespaces },
	{ "cgroup", A_SANDBOX, check_cgroup },
	{ "overlayfs", A_SANDBOX, check_overlay },
	{ "nbgate-init", A_SANDBOX, check_init },
	{ "seccomp", A_SANDBOX, check_seccomp },
	{ "pasta", A_SANDBOX, check_pasta },
	{ "images", A_SANDBOX, check_images },
	{ "criu", A_CHECKPOINT, check_criu },
	{ "criu-features", A_CHECKPOINT, check_criu_features },
	{ "criu-rlimits", A_CHECKPOINT, check_criu_rlimits },
};

int gw_doctor_run(const struct gw_cfg *c, FILE *out)
{
	static const char *const word[] = { [V_OK] = "ok", [V_WARN] = "warn", [V_FAIL] = "fail" };
	struct doctor d = { .cfg = c };
	unsigned lost = 0;
	size_t i;

	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char *reason = NULL;
		enum verdict v = checks[i].fn(&d, &reason);

		fprintf(out, "%-4s  %-13s %s\n", word[v], checks[i].name, reason);
		free(reason);
		if (v == V_FAIL)
			lost |= checks[i].areas;
	}
	/* the area is lost even when the failing line is a later one */
	if (d.criu_probed && !d.criu.usable)
		lost |= A_CHECKPOINT;
	fprintf(out, "sandboxing: %s; checkpointing: %s\n",
		lost & A_SANDBOX ? "NOT available" : "available",
		lost & A_CHECKPOINT ? "NOT available (servers are committed or stopped instead)"
				    : "available (criu)");
	checkpoint_criu_info_release(&d.criu);
	fflush(out);
	return lost ? 1 : 0;
}
