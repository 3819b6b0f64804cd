/*
 * images/build.c: `nbgate image build`, from a recipe folder to a
 * published image.
 *
 * Steps (each announced on progress_fd; a failure names its step):
 *   1 validate     recipe.json, root, cache lookup by recipe digest
 *   2 mmdebstrap   Debian root filesystem with the packages (--mode=root,
 *                  directory output in <store>/tmp/build-<hex>/rootfs)
 *   3 post-install the recipe's scripts, run by mmdebstrap as a
 *                  --customize-hook through a fixed runner script that
 *                  chroots into the rootfs (the host CA bundle is there only
 *                  while they run, at /tmp/nbgate-build/host-ca.crt)
 *   4 layer        device nodes dropped, rootfs packed into an uncompressed tar
 *   5 unpack       the build's rootfs folder becomes the unpacked layer
 *                  (it is what the tar was made from: no second extraction)
 *   6 publish      sha256, config, manifest, rename into the store, index
 * Whatever happens, the work folder in tmp/ is removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "images/internal.h"

#define N_STEPS 6
#define TAIL_BYTES 4096
#define HOST_CA "/etc/ssl/certs/ca-certificates.crt"

struct build {
	const char *store;
	const struct images_build_opts *opts;
	struct img_recipe *r;
	char *recipe_digest;
	char *work;          /* <store>/tmp/build-<hex> */
	int lock_fd;
	int64_t t0_ms;
};

/*
 * The post-install runner. Fixed text: everything recipe-specific reaches
 * it through files in the work dir, never through the command line.
 * $1: rootfs, $2: work dir. /proc is mounted for the scripts when
 * mmdebstrap has not done it; the EXIT trap removes the build folder (and
 * with it the host CA bundle) and the mount whatever the scripts did.
 */
static const char hook_runner[] =
	"#!/bin/sh\n"
	"set -eu\n"
	"root=$1 work=$2 b=\"$1/tmp/nbgate-build\" mp=\n"
	"cleanup() { rm -rf \"$b\"; [ -z \"$mp\" ] || umount \"$root/proc\"; }\n"
	"trap cleanup EXIT\n"
	": > \"$work/.in-post-install\"\n"
	"cat \"$work/announce\"\n"
	"mkdir -p \"$b\"\n"
	"cp -a \"$work/recipe/.\" \"$b/\"\n"
	"if [ -f " HOST_CA " ]; then cp " HOST_CA " \"$b/host-ca.crt\"; fi\n"
	"cp \"$work/build-env.sh\" \"$b/.build-env\"\n"
	"if [ ! -e \"$root/proc/self\" ]; then mount -t proc proc \"$root/proc\"; mp=1; fi\n"
	"while IFS= read -r s; do\n"
	"  printf '%s\\n' \"$s\" > \"$work/.current-hook\"\n"
	"  echo \"post-install: $s\"\n"
	"  chroot \"$root\" /bin/sh -c '. /tmp/nbgate-build/.build-env && cd /tmp/nbgate-build "
	"&& exec /bin/sh -eu \"./$1\"' sh \"$s\"\n"
	"done < \"$work/post-install.list\"\n"
	"rm -f \"$work/.current-hook\"\n";

static void step(const struct build *b, int i, const char *what)
{
	img_progress(b->opts->progress_fd, "image %s: step %d/%d: %s", b->r->name, i, N_STEPS,
		     what);
}

static int write_text(const char *work, const char *name, const char *text, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/%s", work, name);

	return img_write_atomic(p, text, strlen(text), err);
}

/* build-env.sh: the defaults, then the recipe's build_env, shell-quoted. */
static char *build_env_text(const struct img_recipe *r)
{
	char *s = xstrdup("export HOME=/root LC_ALL=C.UTF-8 TMPDIR=/tmp "
			  "DEBIAN_FRONTEND=noninteractive "
			  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
			  "NBGATE_HOST_CA=/tmp/nbgate-build/host-ca.crt "
			  "NBGATE_IMAGE_USER=");
	cleanup_free char *u = img_sh_quote(r->user), *h = img_sh_quote(r->home);
	char *t = xasprintf("%s%s NBGATE_IMAGE_HOME=%s\n", s, u, h);

	free(s);
	s = t;
	for (int i = 0; r->build_env[i]; i++) {
		const char *eq = strchr(r->build_env[i], '=');
		cleanup_free char *q = img_sh_quote(eq + 1);

		t = xasprintf("%sexport %.*s=%s\n", s, (int)(eq - r->build_env[i]),
			      r->build_env[i], q);
		free(s);
		s = t;
	}
	return s;
}

/* The work dir's inputs for the runner: the recipe copy, lists, env. */
static int prepare_hooks(struct build *b, struct err **err)
{
	cleanup_free char *list = xstrdup(""), *env = build_env_text(b->r);
	cleanup_free char *ann = NULL, *dst = xasprintf("%s/recipe", b->work), *tail = NULL;
	char **tenv = img_tool_env();
	int st;

	for (int i = 0; b->r->post_install[i]; i++) {
		char *t = xasprintf("%s%s\n", list, b->r->post_install[i]);

		free(list);
		list = t;
	}
	ann = xasprintf("image %s: step 3/%d: post-install (%zu scripts)\n", b->r->name, N_STEPS,
			xstrv_len(b->r->post_install));
	st = img_run((const char *const[]){ "/bin/cp", "-a", "--", b->r->dir, dst, NULL },
		     (const char *const *)tenv, NULL, -1, 1024, &tail, err);
	xstrv_free(tenv);
	if (st != 0)
		return st < 0 ? st : err_set(err, EIO, "copy recipe: %s", tail);
	if (write_text(b->work, "post-install.list", list, err) < 0 ||
	    write_text(b->work, "build-env.sh", env, err) < 0 ||
	    write_text(b->work, "announce", ann, err) < 0 ||
	    write_text(b->work, "hooks.sh", hook_runner, err) < 0)
		return -1;
	return 0;
}

static char *join_packages(char *const *v)
{
	char *s = xstrdup("--include=");

	for (int i = 0; v[i]; i++) {
		char *t = xasprintf("%s%s%s", s, i ? "," : "", v[i]);

		free(s);
		s = t;
	}
	return s;
}

/* Why mmdebstrap failed: in a post-install script (markers the runner
 * leaves behind) or in mmdebstrap itself. */
static int mmdebstrap_error(const struct build *b, int st, const char *tail, struct err **err)
{
	cleanup_free char *sum = img_tail_summary(tail, 6);
	cleanup_free char *cur = xasprintf("%s/.current-hook", b->work), *hook = NULL;
	size_t len;

	if (file_read_all(cur, 0, 4096, &hook, &len, NULL) == 0) {
		while (len > 0 && hook[len - 1] == '\n')
			hook[--len] = '\0';
		return err_set(err, EIO, "step 'post-install': script '%s' failed (mmdebstrap "
			       "exit status %d; last lines: %s)", hook, st, sum);
	}
	return err_set(err, EIO, "step 'mmdebstrap': exit status %d (last lines: %s)", st, sum);
}

static int run_mmdebstrap(struct build *b, struct err **err)
{
	cleanup_free char *inc = join_packages(b->r->packages);
	cleanup_free char *qw = img_sh_quote(b->work);
	cleanup_free char *hook = xasprintf("--customize-hook=/bin/sh %s/hooks.sh \"$1\" %s", qw, qw);
	cleanup_free char *out = xasprintf("%s/rootfs", b->work), *tail = NULL;
	const char *mirror = b->opts->mirror ? b->opts->mirror : IMAGES_DEFAULT_MIRROR;
	const char *argv[] = {
		"/usr/bin/mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
		"--aptopt=Acquire::Retries \"3\"",
		/* docs and man pages are dead weight in a notebook image */
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		inc, hook, b->r->suite, out, mirror, NULL,
	};
	char **env = img_tool_env();
	int st;

	step(b, 2, "mmdebstrap (Debian packages)");
	st = img_run(argv, (const char *const *)env, NULL, b->opts->progress_fd, TAIL_BYTES,
		     &tail, err);
	xstrv_free(env);
	if (st < 0)
		return err_wrap(err, "step 'mmdebstrap'");
	if (st != 0)
		return mmdebstrap_error(b, st, tail, err);
	return 0;
}

/* Device nodes out (the sandbox makes its own /dev), then the tar. */
static int make_layer(struct build *b, struct err **err)
{
	cleanup_free char *root = xasprintf("%s/rootfs", b->work);
	cleanup_free char *dev = xasprintf("%s/rootfs/dev", b->work);
	cleanup_free char *bld = xasprintf("%s/rootfs/tmp/nbgate-build", b->work);
	cleanup_free char *tar = xasprintf("%s/layer.tar", b->work), *tail = NULL, *sum = NULL;
	const char *argv[] = { "/usr/bin/tar", "--create", "--file", tar, "--directory", root,
			       "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name",
			       "--format=posix", "--pax-option=delete=atime,delete=ctime", ".",
			       NULL };
	char **env;
	int st;

	step(b, 4, "layer (tar of the root filesystem)");
	/* belt and braces: the runner removes it, a build never ships the CA */
	if (img_rmtree(bld, err) < 0 || img_rmtree(dev, err) < 0)
		return err_wrap(err, "step 'layer'");
	if (mkdir(dev, 0755) < 0)
		return err_set_errno(err, "step 'layer': create '%s'", dev);
	env = img_tool_env();
	st = img_run(argv, (const char *const *)env, NULL, -1, TAIL_BYTES, &tail, err);
	xstrv_free(env);
	if (st < 0)
		return err_wrap(err, "step 'layer'");
	if (st != 0) {
		sum = img_tail_summary(tail, 4);
		return err_set(err, EIO, "step 'layer': tar: exit status %d (last lines: %s)", st,
			       sum);
	}
	return 0;
}

static int publish(struct build *b, char **mdigest, struct err **err)
{
	cleanup_free char *root = xasprintf("%s/rootfs", b->work);
	cleanup_free char *tar = xasprintf("%s/layer.tar", b->work);
	struct img_config_in c = {
		.name = b->r->name, .recipe_digest = b->recipe_digest, .env = b->r->env,
		.cmd = b->r->cmd, .user = b->r->user, .home = b->r->home, .ports = b->r->ports,
		.n_ports = b->r->n_ports, .labels = b->r->labels, .created_s = time(NULL),
	};

	step(b, 5, "unpack (the built root filesystem becomes the layer folder)");
	step(b, 6, "publish (sha256, config, manifest, index)");
	if (img_store_publish(b->store, b->work, tar, root, &c, mdigest, err) < 0)
		return err_wrap(err, "step 'publish'");
	return 0;
}

/* Step 1. Returns 1 when the cached image can be used. */
static int validate(struct build *b, const char *recipe_dir, char **mdigest, struct err **err)
{
	cleanup_free char *cached = NULL;
	struct img_recipe *r = NULL;
	int found;

	if (img_recipe_load(recipe_dir, &r, err) < 0)
		return err_wrap(err, "step 'validate'");
	b->r = r;
	if (images_recipe_digest(recipe_dir, &b->recipe_digest, err) < 0)
		return err_wrap(err, "step 'validate'");
	found = img_store_lookup(b->store, r->name, &cached, mdigest, err);
	if (found < 0)
		return err_wrap(err, "step 'validate'");
	if (found == 0 && !b->opts->force && strcmp(cached, b->recipe_digest) == 0)
		return 1;
	free(*mdigest);
	*mdigest = NULL;
	step(b, 1, "validate recipe");
	if (geteuid() != 0)
		return err_set(err, EPERM, "step 'validate': building images needs root "
			       "(mmdebstrap --mode=root)");
	if (access("/usr/bin/mmdebstrap", X_OK) < 0)
		return err_set(err, ENOENT, "step 'validate': /usr/bin/mmdebstrap not found "
			       "(apt-get install mmdebstrap)");
	return 0;
}

static int build_steps(struct build *b, char **mdigest, struct err **err)
{
	if (img_store_mkwork(b->store, &b->work, &b->lock_fd, err) < 0)
		return err_wrap(err, "step 'validate'");
	if (prepare_hooks(b, err) < 0)
		return err_wrap(err, "step 'validate'");
	if (run_mmdebstrap(b, err) < 0 || make_layer(b, err) < 0 || publish(b, mdigest, err) < 0)
		return -1;
	return 0;
}

int images_build(const char *store_dir, const char *recipe_dir,
		 const struct images_build_opts *opts, struct image_info **out,
		 struct err **err)
{
	static const struct images_build_opts defaults = { .progress_fd = -1 };
	struct build b = { .store = store_dir, .opts = opts ? opts : &defaults, .lock_fd = -1,
			   .t0_ms = time_mono_ms() };
	char *mdigest = NULL;
	struct err *e = NULL;
	int r;

	r = validate(&b, recipe_dir, &mdigest, err);
	if (r >= 0 && !b.r) { /* cannot happen: keeps the analyzer sure of b.r */
		err_set(err, EINVAL, "step 'validate': no recipe");
		r = -1;
	}
	if (r == 1) {
		img_progress(b.opts->progress_fd, "image %s: cached (%s)", b.r->name, mdigest);
	} else if (r == 0) {
		r = build_steps(&b, &mdigest, err);
		if (r == 0)
			img_progress(b.opts->progress_fd, "image %s: built %s in %.1f s", b.r->name,
				     mdigest, (double)(time_mono_ms() - b.t0_ms) / 1000.0);
	}
	if (b.work && img_rmtree(b.work, &e) < 0)
		err_free(&e); /* the next build removes what is left */
	if (b.lock_fd >= 0)
		close(b.lock_fd);
	if (r >= 0 && b.r && out && images_resolve(store_dir, b.r->name, out, err) < 0)
		r = -1;
	free(mdigest);
	free(b.work);
	free(b.recipe_digest);
	img_recipe_free(b.r);
	return r < 0 ? -1 : 0;
}
