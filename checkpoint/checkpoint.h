/*
 * checkpoint: process checkpoints of sandboxes (issue 4, DESIGN.md
 * "Checkpoint"). This first piece only probes CRIU: is the binary there,
 * is it new enough (>= 4.2: Debian 12's 3.17 fails `criu check` on this
 * kernel and 4.1.1 hangs in dump), does `criu check` pass, and does the
 * kernel have the features a sandbox dump needs (the table in
 * criu_probe.c says which and why). The dump/restore ops come later.
 *
 * Threading: checkpoint_criu_probe() runs child processes and blocks for
 * up to a few seconds: call it from the CLI or a worker, never from the
 * event loop. The parsers are pure and run anywhere.
 */
#ifndef NBGATE_CHECKPOINT_CHECKPOINT_H
#define NBGATE_CHECKPOINT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

/* Where scripts/install-criu.sh puts CRIU; the default of `criu_path`. */
#define CHECKPOINT_CRIU_DEFAULT_PATH "/usr/local/sbin/criu"
/* Versions as major * 1000000 + minor * 1000 + sublevel. */
#define CHECKPOINT_CRIU_VERSION(maj, min, sub) ((maj) * 1000000u + (min) * 1000u + (sub))
#define CHECKPOINT_CRIU_MIN_VERSION CHECKPOINT_CRIU_VERSION(4, 2, 0)

/* A kernel feature as `criu check --feature NAME` names it. */
struct checkpoint_criu_feature {
	const char *name;
	bool needed;      /* a sandbox dump/restore fails without it */
	const char *why;  /* one line: what nbgate uses it for */
};

/* The features probed, needed ones first; n in *n. Static, borrowed. */
const struct checkpoint_criu_feature *checkpoint_criu_features(int *n);

struct checkpoint_criu_info {
	char version[16];         /* "4.2.1"; "" when unknown */
	uint32_t version_num;     /* CHECKPOINT_CRIU_VERSION(...); 0 unknown */
	bool version_ok;          /* >= CHECKPOINT_CRIU_MIN_VERSION */
	bool check_ok;            /* `criu check` said "Looks good." */
	char *check_error;        /* owned: first failing line; NULL if ok */
	uint32_t features;        /* bit i: checkpoint_criu_features()[i] present */
	bool usable;              /* version_ok, check_ok, every needed feature */
	char *reason;             /* owned: why not usable; NULL if usable */
};

/*
 * Probes the CRIU binary at criu_path: `criu --version`, `criu check`
 * and one `criu check --feature NAME` per feature of the table. Each run
 * is bounded (10 s, 64 KiB of output) and has a minimal environment. A
 * failing check is not an error: it is reported in *out (usable false,
 * reason set). Errors (return < 0, *out released): ENOENT/EACCES when
 * criu_path cannot be executed, EPROTO when it prints no version,
 * ETIMEDOUT when `criu --version` hangs. `criu check` needs root; run as
 * another user it fails and says so in check_error. Release *out with
 * checkpoint_criu_info_release() after success. Blocks (see above).
 */
int checkpoint_criu_probe(const char *criu_path, struct checkpoint_criu_info *out,
			  struct err **err);

/* Frees the owned members of ci and zeroes it. NULL-safe. */
void checkpoint_criu_info_release(struct checkpoint_criu_info *ci);

/*
 * Parses the output of `criu --version` ("Version: 4.2.1\n[GitID: ...]").
 * On success writes the version text (NUL-terminated, at most n - 1
 * bytes) and *num, returns 0; -1 when no well-formed "Version: X.Y[.Z]"
 * line is there (each part digits only, at most 999). Pure.
 */
int checkpoint_criu_parse_version(const char *out, char *buf, size_t n, uint32_t *num);

/*
 * Judges the output of `criu check` (stdout and stderr together) and
 * its wait status. Passes only when the process exited 0 and printed
 * the verdict "Looks good." (or "Looks good but ..." of --extra). On
 * failure returns false and, when first_error is non-NULL, sets it to
 * an owned copy of the line that says what failed: the first "Error"
 * line, else the first other line that is no verdict, else the first
 * "Warn" line (criu warns on every run), else the exit status.
 * Pure.
 */
bool checkpoint_criu_parse_check(const char *out, int wstatus, char **first_error);

/* ---- dump and restore of a sandbox tree (criu.c) ---- */

struct checkpoint_criu_dump_req {
	const char *criu;     /* the criu binary */
	pid_t pid1;           /* host pid of the sandbox's PID 1 (nbgate-init) */
	const char *dir;      /* image dir: created (or an empty dir of root's)
			       * and set to mode 0700 (process memory, tokens
			       * included) */
	int64_t timeout_ms;   /* CRIU is killed after this */
};

/*
 * Dumps the whole tree under pid1 with its namespaces, mounts, cgroups and
 * loopback TCP connections, then CRIU kills it. First asks PID 1 (SIGUSR1)
 * to close its forwarded connections, which CRIU could not dump. Records
 * the host files PID 1 maps and the log pipe in <dir>/nbgate-restore.txt.
 * On failure (EIO with CRIU's first error line, ETIMEDOUT) the tree is left
 * running as it was (CRIU detaches); the caller removes dir. Blocks for the
 * dump's duration: run it in a helper process (nbgate-init --dump).
 */
int checkpoint_criu_dump(const struct checkpoint_criu_dump_req *r, struct err **err);

struct checkpoint_criu_restore_req {
	const char *criu;
	const char *dir;      /* image dir of a successful dump */
	const char *rootfs;   /* the sandbox's root, mounted by the caller */
	int log_wr;           /* replaces the dumped log pipe (--inherit-fd) */
	int64_t timeout_ms;
};

/*
 * Restores the tree in dir as a sibling: the restored PID 1 becomes a child
 * of the CALLER (the new shim), which must be a child subreaper or wait for
 * it. Opens the recorded host files and refuses (ESTALE) when one changed
 * since the dump. *pid1 is the restored PID 1's host pid. Errors: EIO with
 * CRIU's first error line, ETIMEDOUT, ESTALE, ENOENT. Blocks.
 */
int checkpoint_criu_restore(const struct checkpoint_criu_restore_req *r, pid_t *pid1,
			    struct err **err);

/* The first "Error (...)" line of a CRIU log that is not one CRIU prints on
 * every run here or its closing summary (criu.c), or a placeholder. Owned. */
char *checkpoint_criu_log_error(const char *log_path);

/*
 * 1 when CRIU can read the rlimits of a sandbox's tasks: root has
 * CAP_SYS_RESOURCE, or criu_path carries nbgate's patch for that (the stamp
 * scripts/install-criu.sh leaves); else 0. *why (owned) says which.
 */
int checkpoint_criu_rlimits(const char *criu_path, char **why);

/* Bytes allocated by the regular files directly in dir; -1 when unreadable. */
int64_t checkpoint_dir_size(const char *dir);

#endif
