/*
 * checkpoint/ckpt: the checkpoint ops table (STYLE.md "Backend interface"),
 * one per mode:
 *
 *   criu    process state: memory, kernels, terminals (CKPT_CAP_MEMORY)
 *   commit  the writable layer as an image layer (CKPT_CAP_FS)
 *
 *   probe    can this host do it? 1 yes, 0 no (*why says why), <0 error
 *   dump     write the checkpoint of t; blocks for the whole dump
 *   restore  bring t back; criu: the tree becomes the CALLER's child
 *            (run it in the sandbox shim); NULL for commit, whose restore
 *            is a start of the committed image
 *   remove   delete what dump wrote
 *
 * A NULL op fails with -ENOTSUP through the dispatchers. Who calls what:
 * the gateway probes at startup; `nbgate checkpoint dump` (a helper the
 * local backend runs, so the event loop never waits) dumps; nbgate-init
 * --restore restores; the backend's checkpoint_forget removes. Every op
 * blocks: helpers, CLI and workers only.
 */
#ifndef NBGATE_CHECKPOINT_CKPT_H
#define NBGATE_CHECKPOINT_CKPT_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

enum ckpt_caps {
	CKPT_CAP_MEMORY = 1 << 0, /* processes come back with their memory */
	CKPT_CAP_FS = 1 << 1,     /* files outside the home come back */
};

/* What an op works on; each mode reads its own fields. Borrowed. */
struct ckpt_target {
	const char *tool;     /* criu: the criu binary */
	pid_t pid1;           /* criu dump: host pid of the sandbox's PID 1 */
	const char *dir;      /* criu: the image dir */
	const char *root;     /* criu remove: dir must lie below it */
	const char *rootfs;   /* criu restore: the mounted sandbox root */
	int log_wr;           /* criu restore: the new log pipe */
	const char *store;    /* commit: the image store */
	const char *base;     /* commit: the image the server ran */
	const char *upper;    /* commit: the server's overlay upper dir */
	const char *ref;      /* commit: the new image's name */
	int64_t timeout_ms;
};

struct ckpt_ops {
	const char *name;
	unsigned caps;
	int (*probe)(const struct ckpt_target *t, char **why, struct err **err);
	int (*dump)(const struct ckpt_target *t, struct err **err);
	int (*restore)(const struct ckpt_target *t, pid_t *pid1, struct err **err);
	int (*remove)(const struct ckpt_target *t, struct err **err);
};

extern const struct ckpt_ops ckpt_criu_ops;
extern const struct ckpt_ops ckpt_commit_ops;

/* The ops of mode `name` ("criu", "commit"), or NULL. */
const struct ckpt_ops *ckpt_ops_find(const char *name);

/*
 * `nbgate checkpoint dump --mode criu --criu PATH --pid1 N --dir DIR
 * [--timeout MS]` and `... --mode commit --store DIR --base REF --upper DIR
 * --ref NEW`: one dump through the ops table, for helpers. Returns the
 * exit status (0 ok, 1 failed with one line on stderr, 2 usage).
 */
int ckpt_cli(int argc, char **argv);

static inline int ckpt_probe(const struct ckpt_ops *o, const struct ckpt_target *t, char **why,
			     struct err **err)
{
	if (!o->probe)
		return 1;
	return o->probe(t, why, err);
}

static inline int ckpt_dump(const struct ckpt_ops *o, const struct ckpt_target *t,
			    struct err **err)
{
	if (!o->dump)
		return err_set(err, ENOTSUP, "checkpoint mode '%s' cannot dump", o->name);
	return o->dump(t, err);
}

static inline int ckpt_restore(const struct ckpt_ops *o, const struct ckpt_target *t,
			       pid_t *pid1, struct err **err)
{
	if (!o->restore)
		return err_set(err, ENOTSUP, "checkpoint mode '%s' has no restore op (start "
			       "its image instead)", o->name);
	return o->restore(t, pid1, err);
}

static inline int ckpt_remove(const struct ckpt_ops *o, const struct ckpt_target *t,
			      struct err **err)
{
	if (!o->remove)
		return err_set(err, ENOTSUP, "checkpoint mode '%s' cannot remove", o->name);
	return o->remove(t, err);
}

#endif
