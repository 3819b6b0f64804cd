/*
 * commit: the `commit` checkpoint mode's ops (ckpt.h). The server's overlay
 * upper dir becomes one image layer on top of the image it ran
 * (images/commit.c does the OCI work: whiteouts, opaque dirs); its restore
 * is a start of that image, so there is no restore op.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "images/image.h"

static int commit_probe(const struct ckpt_target *t, char **why, struct err **err)
{
	struct stat st;

	(void)err;
	if (t->store && stat(t->store, &st) == 0 && S_ISDIR(st.st_mode) && access(t->store, W_OK) == 0)
		return 1;
	*why = xasprintf("the image store '%s' is not a writable directory",
			 t->store ? t->store : "(none)");
	return 0;
}

static int commit_dump(const struct ckpt_target *t, struct err **err)
{
	char *digest = NULL;

	if (!t->store || !t->base || !t->upper || !t->ref)
		return err_set(err, EINVAL, "commit: store, base, upper and ref are all needed");
	if (image_commit(t->store, t->base, t->upper, t->ref, NULL, &digest, err) < 0)
		return -EIO; /* its message names the image, the path and the step */
	free(digest);
	return 0;
}

/* The committed image and the layer only it used; absent is fine. */
static int commit_remove(const struct ckpt_target *t, struct err **err)
{
	if (!t->ref || !t->ref[0] || images_rm(t->store, t->ref, err) == 0)
		return 0;
	if ((*err)->code == ENOENT) {
		err_free(err);
		return 0;
	}
	return err_wrap(err, "remove committed image '%s'", t->ref);
}

const struct ckpt_ops ckpt_commit_ops = {
	.name = "commit",
	.caps = CKPT_CAP_FS,
	.probe = commit_probe,
	.dump = commit_dump,
	.restore = NULL,
	.remove = commit_remove,
};
