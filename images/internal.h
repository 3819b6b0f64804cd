/*
 * images/internal.h: what the images/ files share (not a public API).
 *
 *   recipe.c  recipe.json parsing, strict validation, recipe digest
 *   store.c   the OCI image layout: index, blobs, unpacked layers, lock, gc
 *   util.c    running tools (output passed through + tail kept), rmtree,
 *             sha256 of files, atomic writes
 *   build.c   the build steps (mmdebstrap, post-install, layer, publish)
 *   commit.c  upper dir -> layer tar (whiteouts, pax headers), layer dir
 *             whiteouts -> overlay whiteouts, image_commit()
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

/*
 * Publishes a prepared image: layer_tar (in work_dir, uncompressed) is its
 * new top layer with sha256 layer_hex; config_text and manifest_text (JSON,
 * written here as blobs) already reference it and any lower layers, which
 * must be in the store (checked under the store lock: ENOENT naming the
 * layer when a base went away meanwhile). rootfs_dir is the layer's
 * unpacked copy in work_dir, or NULL to unpack layer_tar here (OCI
 * whiteouts become overlay whiteouts). The index entry gets a copy of
 * annotations, whose org.opencontainers.image.ref.name names the image
 * (an entry of that name is replaced). What this call moved into the store
 * is moved back out when it fails. *manifest_digest (optional, owned) gets
 * "sha256:<hex>".
 */
int img_store_publish_raw(const char *store, const char *work_dir, const char *layer_tar,
			  const char *layer_hex, const char *rootfs_dir, const char *config_text,
			  const char *manifest_text, const cJSON *annotations,
			  char **manifest_digest, struct err **err);

/* ---- commit.c ---- */

struct buf;

/* One extended attribute of a tar entry. Owned by whoever fills it. */
struct img_xattr {
	char *name;
	char *value;          /* len bytes, binary */
	size_t len;
};

/* What img_tar_header() writes. Borrowed. */
struct img_tar_entry {
	const char *name;     /* path in the layer, relative, dirs end in '/' */
	char type;            /* '0' file, '1' hard link, '2' symlink, '5' dir, '6' fifo */
	const char *link;     /* '1': earlier name, '2': target; else NULL */
	uint32_t mode;        /* permission bits (07777) */
	uint64_t uid, gid;
	int64_t size;         /* '0' only */
	int64_t mtime;        /* seconds */
	const struct img_xattr *xattrs;
	size_t n_xattrs;
};

/*
 * Appends e's header blocks to out: a pax extended header when the name or
 * link is longer than 100 bytes, a number does not fit ustar, or e has
 * xattrs (SCHILY.xattr.<name>), then the ustar block. Errors: ENAMETOOLONG
 * (name or link over 4096 bytes), EMSGSIZE (records over 1 MiB or out full).
 */
int img_tar_header(struct buf *out, const struct img_tar_entry *e, struct err **err);

/*
 * Writes the layer tar of an overlayfs upper dir to tar_fd (see commit.c's
 * top comment for the translation); *size (optional) gets the bytes
 * written. Errors name the file of the upper dir that failed.
 */
int img_layer_from_upper(const char *upper_dir, int tar_fd, const char *tar_path,
			 int64_t *size, struct err **err);

/*
 * Turns the OCI whiteouts of an unpacked layer dir into overlay ones:
 * `.wh.<name>` -> char device 0:0 <name>, `.wh..wh..opq` -> xattr
 * trusted.overlay.opaque="y" on its dir (needs CAP_MKNOD and
 * CAP_SYS_ADMIN). Directory mtimes are kept.
 */
int img_layer_to_overlay(const char *dir, struct err **err);

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
