/*
 * images: recipes, the image store (an OCI image layout) and builds.
 *
 * A recipe is a folder (images/recipes/<name>/) holding recipe.json and
 * the files it names (post-install scripts). `nbgate image build <dir>`
 * runs mmdebstrap (Debian trixie) and stores the result in the store as an
 * OCI image layout: oci-layout, index.json, blobs/sha256/<hex> (layer tar,
 * config, manifest). Each layer is also kept unpacked under
 * rootfs/<diff-id hex>/ because local sandboxes use layers directly as
 * overlay lower dirs.
 *
 * Builds are cached by recipe digest: the sha256 over the recipe's files
 * (names and contents, sorted) and the builder's version. index.json maps
 * a name (annotation org.opencontainers.image.ref.name) to a manifest and
 * records the recipe digest (annotation io.nbgate.recipe.digest); an
 * unchanged recipe is not rebuilt. A build works in tmp/ inside the store
 * and publishes by rename, so a failed build leaves nothing half-written.
 *
 * The store lives outside any checkout (default /var/cache/nbgate/images,
 * config key image_store, env NBGATE_IMAGE_STORE) so that make run, make
 * test and CI reuse images.
 *
 * Threading: blocking library calls (builds take minutes). The daemon calls
 * only images_resolve() (a few small file reads) on the event loop; builds
 * run in the CLI or a child process.
 */
#ifndef NBGATE_IMAGES_IMAGE_H
#define NBGATE_IMAGES_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

struct err;

#define IMAGES_DEFAULT_STORE "/var/cache/nbgate/images"

/* What a local sandbox needs to run an image. */
struct image_info {
	char *name;            /* ref name, e.g. "jupyterlab" */
	char *manifest_digest; /* "sha256:<hex>" */
	char *recipe_digest;   /* "sha256:<hex>" */
	char **layers;         /* unpacked layer dirs, TOP first, NULL-ended */
	char **cmd;            /* default command with {placeholders}, NULL-ended */
	char **env;            /* "K=V" image environment, NULL-ended */
	char *user;            /* user name inside, e.g. "jovyan" */
	char *home;            /* home inside, e.g. "/home/jovyan" */
	char *server_type;     /* label io.nbgate.server-type: jupyterlab|vscode|jupyter */
	bool strip_prefix;     /* label io.nbgate.strip-prefix: server has no base path */
	int *ports;            /* exposed TCP ports, n_ports */
	int n_ports;
	int64_t size_bytes;    /* sum of layer blob sizes */
	int64_t created_s;     /* unix time of the build */
};

void image_info_free(struct image_info *ii);

/*
 * Looks up `ref` (a name or "sha256:<manifest hex>") in the store at
 * store_dir. *out is owned. Errors: ENOENT with a message that says how
 * to build it, EINVAL for a corrupt store (names the file).
 */
int images_resolve(const char *store_dir, const char *ref, struct image_info **out,
		   struct err **err);

/* Every image in the store, in name order. *out is an owned array of n. */
int images_list(const char *store_dir, struct image_info ***out, int *n, struct err **err);

/* Frees what images_list() returned. */
void images_list_free(struct image_info **v, int n);

/*
 * Removes the image `ref` from the index and garbage-collects blobs and
 * unpacked layers no other image uses. ENOENT when absent.
 */
int images_rm(const char *store_dir, const char *ref, struct err **err);

struct images_build_opts {
	bool force;            /* rebuild even when the recipe digest is cached */
	const char *mirror;    /* Debian mirror URL; NULL = http://deb.debian.org/debian */
	int progress_fd;       /* where step lines and tool output go; -1 = none */
};

/*
 * Builds the recipe folder recipe_dir into the store (see top comment).
 * Returns 0 and *out (owned, may be NULL) when built or already cached.
 * Errors name the step that failed ("step 'mmdebstrap': exit status 100,
 * see ...") and leave the store as it was.
 */
int images_build(const char *store_dir, const char *recipe_dir,
		 const struct images_build_opts *opts, struct image_info **out,
		 struct err **err);

/* The recipe digest of recipe_dir ("sha256:<hex>", owned). */
int images_recipe_digest(const char *recipe_dir, char **out, struct err **err);

/*
 * Commits an overlayfs upper dir as a new image: one new layer (OCI
 * whiteouts for deleted entries and opaque dirs, xattrs but not overlay's
 * own, hard links, long names as pax; images/commit.c) on top of the
 * layers of base_ref (a name or "sha256:<manifest hex>"), published as
 * new_ref ([a-z0-9-], an image of that name is replaced). The config is the
 * base's plus the layer's diff id and a history entry; the index entry
 * carries org.opencontainers.image.ref.name = new_ref,
 * io.nbgate.commit.base = "<base name>@sha256:<manifest hex>",
 * io.nbgate.commit.created (RFC 3339) and annotations ("key=value",
 * NULL-ended, may be NULL; keys the commit sets itself are EINVAL).
 * upper_dir must not change meanwhile (server stopped or frozen).
 * *out_digest (optional, owned) gets the new manifest digest.
 * Needs root (reads every file, makes whiteout device nodes when it
 * unpacks the layer). Errors name the file that failed (EACCES, EIO,
 * ENOSPC, ...), ENOENT for a missing base, EOPNOTSUPP for overlay
 * redirect/metacopy entries; a failed commit leaves the store as it was
 * (its work dir in <store>/tmp is removed). Blocking, takes the store lock
 * only to publish: call it from a worker or child, never the event loop.
 */
int image_commit(const char *store, const char *base_ref, const char *upper_dir,
		 const char *new_ref, const char *const *annotations, char **out_digest,
		 struct err **err);

/*
 * `nbgate image <build|list|inspect|rm|gc|commit> ...`: argv[0] is "image". Prints
 * results to stdout and errors (naming the argument) to stderr. Returns
 * the process exit status.
 */
int images_cli(int argc, char **argv, const char *store_dir);

#endif
