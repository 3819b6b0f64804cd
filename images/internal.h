/*
 * images/internal.h: what the images/ files share (not a public API).
 *
 *   recipe.c  recipe.json parsing, strict validation, recipe digest
 *   store.c   the OCI image layout: index, blobs, unpacked layers, lock, gc
 *   util.c    running tools (output passed through + tail kept), rmtree,
 *             sha256 of files, atomic writes
 *   build.c   the build steps (mmdebstrap, post-install, layer, publish)
 *   cli.c     `nbgate image ...`
 */
#ifndef NBGATE_IMAGES_INTERNAL_H
#define NBGATE_IMAGES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct err;

/* Bumped when the builder changes what a recipe produces: part of every
 * recipe digest, so a builder change rebuilds every image once. */
#define IMAGES_BUILDER_VERSION "nbgate-images-1"
#define IMAGES_DEFAULT_MIRROR "http://deb.debian.org/debian"
#define IMAGES_LAYER_MEDIA "application/vnd.oci.image.layer.v1.tar"
#define IMAGES_CONFIG_MEDIA "application/vnd.oci.image.config.v1+json"
#define IMAGES_MANIFEST_MEDIA "application/vnd.oci.image.manifest.v1+json"
#define IMAGES_INDEX_MEDIA "application/vnd.oci.image.index.v1+json"
#define IMAGES_ANN_REF "org.opencontainers.image.ref.name"
#define IMAGES_ANN_RECIPE "io.nbgate.recipe.digest"
#define IMAGES_ANN_CREATED "org.opencontainers.image.created"

/* A validated recipe.json. Every string and vector is owned. */
struct img_recipe {
	char *dir;             /* recipe folder as given */
	char *name;
	char *description;     /* "" when absent */
	char *suite;
	char **packages;       /* NULL-ended */
	char **post_install;   /* file names in dir, NULL-ended (may be empty) */
	char **build_env;      /* "K=V", NULL-ended (may be empty) */
	char **env;            /* "K=V", NULL-ended */
	char **cmd;            /* NULL-ended, >= 1 */
	char *user;
	char *home;
	int *ports;
	int n_ports;
	char **labels;         /* key, value, key, value, ..., NULL */
};

/* Parses and validates the JSON text of a recipe (len bytes). dir is only
 * used to check that post_install files exist (NULL skips the check).
 * Errors: EINVAL "recipe.json: field 'packages[3]': ...". */
int img_recipe_parse(const char *text, size_t len, const char *dir,
		     struct img_recipe **out, struct err **err);
/* Reads <dir>/recipe.json and parses it. */
int img_recipe_load(const char *dir, struct img_recipe **out, struct err **err);
void img_recipe_free(struct img_recipe *r);
/* Value of label key in r, or NULL. Borrowed. */
const char *img_recipe_label(const struct img_recipe *r, const char *key);
/* true when s is a valid image name: [a-z0-9][a-z0-9-]{0,62}. */
bool img_name_valid(const char *s);

/* What an image's config carries, for img_store_add(). Borrowed. */
struct img_config_in {
	const char *name;
	const char *recipe_digest;   /* "sha256:<hex>" */
	char *const *env;
	char *const *cmd;
	const char *user;
	const char *home;
	const int *ports;
	int n_ports;
	char *const *labels;         /* key, value, ..., NULL */
	int64_t created_s;
};

/*
 * Publishes an image made of one layer into the store: layer_tar is an
 * uncompressed tar of a root filesystem (moved into blobs/), rootfs_dir
 * its unpacked copy (moved to rootfs/<diff-id hex>/) or NULL to unpack
 * layer_tar here. Both must live in work_dir (a folder in <store>/tmp).
 * Replaces an image of the same name in index.json (under the store lock).
 * *manifest_digest (optional) gets "sha256:<hex>", owned.
 */
int img_store_publish(const char *store, const char *work_dir, const char *layer_tar,
		      const char *rootfs_dir, const struct img_config_in *cfg,
		      char **manifest_digest, struct err **err);
/*
 * Test and import entry point: makes a work dir in the store, copies
 * layer_tar in, unpacks it and publishes it as image cfg->name.
 */
int img_store_add_tar(const char *store, const char *layer_tar,
		      const struct img_config_in *cfg, char **manifest_digest, struct err **err);
/* Creates the store skeleton (oci-layout, index.json, blobs/, rootfs/, tmp/). */
int img_store_init(const char *store, struct err **err);
/* Makes <store>/tmp/<random>/ (0700), locked for this process while
 * *lock_fd stays open; removes crash leftovers of dead builds first. */
int img_store_mkwork(const char *store, char **work_dir, int *lock_fd, struct err **err);
/* Looks up the index entry of `name` whose blobs are all present and
 * returns its recipe digest and manifest digest (owned). 0 found, 1 none. */
int img_store_lookup(const char *store, const char *name, char **recipe_digest,
		     char **manifest_digest, struct err **err);
/* Removes blobs and unpacked layers that no image in the index uses; the
 * caller holds the store lock when locked is true, else it is taken. */
int img_store_gc(const char *store, bool locked, struct err **err);

/* The manifest + config of an image as JSON trees (owned, cJSON_Delete). */
int img_store_read_image(const char *store, const char *ref, cJSON **manifest,
			 cJSON **config, char **manifest_digest, struct err **err);

/* ---- util.c ---- */

/*
 * Runs argv (argv[0] a full path) with envp, stdout and stderr passed to
 * progress_fd (-1: dropped) and the last lines kept. Returns the exit
 * status (>= 0; 128 + signal when killed) or < 0 when it could not start.
 * *tail (optional) gets the last ~tail_max bytes of output, owned.
 */
int img_run(const char *const *argv, const char *const *envp, const char *cwd,
	    int progress_fd, size_t tail_max, char **tail, struct err **err);
/* A tidy, single-line version of a command's output tail for errors. */
char *img_tail_summary(const char *tail, int max_lines);
/* The environment tools run with: PATH, HOME, LC_ALL and the proxy
 * variables of this process. Owned NULL-ended vector. */
char **img_tool_env(void);
/* rm -rf without following symlinks or crossing mounts. ENOENT is fine. */
int img_rmtree(const char *path, struct err **err);
/* sha256 of a file as "<hex>" (owned) and its size. */
int img_sha256_file(const char *path, char **hex, int64_t *size, struct err **err);
/* sha256 of bytes as "<hex>" (owned). */
char *img_sha256_hex(const void *p, size_t n);
/* Writes data to path atomically (path.tmp, fsync, rename). */
int img_write_atomic(const char *path, const void *data, size_t n, struct err **err);
/* Writes a line (printf format) to fd unless fd < 0. */
void img_progress(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Quotes s for /bin/sh single quotes ('it'\''s'). Owned. */
char *img_sh_quote(const char *s);
/* "2025-01-02T03:04:05Z" for t. Owned. */
char *img_time_rfc3339(int64_t t);
/* Parses the above (fractional seconds and other offsets rejected: -1). */
int64_t img_time_parse(const char *s);
/* Disk usage in bytes of a tree (st_blocks), for listings. */
int64_t img_tree_size(const char *path);

#endif
