/*
 * images/store.c: the image store, an OCI image layout
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):
 *
 *   <store>/oci-layout          {"imageLayoutVersion": "1.0.0"}
 *   <store>/index.json          one manifest per image name
 *   <store>/blobs/sha256/<hex>  layer tars, configs, manifests
 *   <store>/rootfs/<hex>/       each layer unpacked (hex = its diff id)
 *   <store>/tmp/<random>/       builds in progress (one lock file each)
 *   <store>/lock                flock: index updates and garbage collection
 *
 * Readers take no lock: every file is replaced by rename, so a reader sees
 * the old or the new version. Writers (publish, rm, gc) hold the lock, so
 * gc never removes what a publish is about to reference.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/rand.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "images/internal.h"

#define INDEX_MAX (4 * 1024 * 1024)
#define BLOB_JSON_MAX (4 * 1024 * 1024)
/* A tmp/ entry without a lock file is a build that died between mkdir
 * and creating its lock: removed when older than this. */
#define STALE_UNLOCKED_S 600

static bool hex64(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

/* "sha256:<64 hex>" -> pointer to the hex, or NULL. */
static const char *digest_hex(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || !hex64(d + 7))
		return NULL;
	return d + 7;
}

static int mkdir_p1(const char *p, mode_t mode, struct err **err)
{
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return err_set_errno(err, "create '%s'", p);
	return 0;
}

static int write_if_missing(const char *path, const char *text, struct err **err)
{
	if (access(path, F_OK) == 0)
		return 0;
	return img_write_atomic(path, text, strlen(text), err);
}

int img_store_init(const char *store, struct err **err)
{
	cleanup_free char *blobs = xasprintf("%s/blobs", store);
	cleanup_free char *sha = xasprintf("%s/blobs/sha256", store);
	cleanup_free char *rootfs = xasprintf("%s/rootfs", store);
	cleanup_free char *tmp = xasprintf("%s/tmp", store);
	cleanup_free char *layout = xasprintf("%s/oci-layout", store);
	cleanup_free char *index = xasprintf("%s/index.json", store);
	cleanup_free char *parent = xstrdup(store);
	char *slash = strrchr(parent, '/');

	if (slash && slash != parent) { /* one level up (/var/cache/nbgate) may be missing */
		*slash = '\0';
		if (mkdir_p1(parent, 0755, err) < 0)
			return -1;
	}
	if (mkdir_p1(store, 0755, err) < 0 || mkdir_p1(blobs, 0755, err) < 0 ||
	    mkdir_p1(sha, 0755, err) < 0 || mkdir_p1(rootfs, 0755, err) < 0 ||
	    mkdir_p1(tmp, 0711, err) < 0)
		return err_wrap(err, "image store '%s'", store);
	if (write_if_missing(layout, "{\"imageLayoutVersion\":\"1.0.0\"}\n", err) < 0 ||
	    write_if_missing(index, "{\"schemaVersion\":2,\"mediaType\":\"" IMAGES_INDEX_MEDIA
			     "\",\"manifests\":[]}\n", err) < 0)
		return err_wrap(err, "image store '%s'", store);
	return 0;
}

static int store_lock(const char *store, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/lock", store);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return err_set_errno(err, "open '%s'", p);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return err_set_errno(err, "lock '%s'", p);
		}
	}
	return fd;
}

/* index.json as a tree; a store that does not exist reads as empty. */
static int read_index(const char *store, cJSON **out, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/index.json", store);
	cleanup_free char *text = NULL;
	struct err *e = NULL;
	cJSON *idx, *m;
	size_t len;

	if (file_read_all(p, 0, INDEX_MAX, &text, &len, &e) < 0) {
		if (e->code != ENOENT) {
			*err = e;
			return -EINVAL;
		}
		err_free(&e);
		text = xstrdup("{\"schemaVersion\":2,\"manifests\":[]}");
		len = strlen(text);
	}
	idx = json_parse(text, len, err);
	if (!idx)
		return err_wrap(err, "corrupt '%s'", p);
	m = cJSON_GetObjectItemCaseSensitive(idx, "manifests");
	if (!cJSON_IsArray(m)) {
		cJSON_Delete(idx);
		return err_set(err, EINVAL, "corrupt '%s': no 'manifests' array", p);
	}
	*out = idx;
	return 0;
}

static int write_index(const char *store, const cJSON *idx, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/index.json", store);
	cleanup_free char *s = json_print_pretty(idx);

	return img_write_atomic(p, s, strlen(s), err);
}

static const char *ann(const cJSON *desc, const char *key)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(desc, "annotations");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *desc_digest(const cJSON *desc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(desc, "digest");

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The index entry for ref (a name or "sha256:<manifest hex>"), or NULL. */
static cJSON *index_find(const cJSON *idx, const char *ref)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(idx, "manifests"), *it;

	cJSON_ArrayForEach(it, m) {
		const char *n = ann(it, IMAGES_ANN_REF), *d = desc_digest(it);

		if ((n && strcmp(n, ref) == 0) || (d && strcmp(d, ref) == 0))
			return it;
	}
	return NULL;
}

static int read_blob_json(const char *store, const char *digest, cJSON **out, struct err **err)
{
	const char *hex = digest_hex(digest);
	cleanup_free char *p = NULL, *text = NULL;
	size_t len;

	if (!hex)
		return err_set(err, EINVAL, "corrupt store '%s': bad digest '%s'", store,
			       digest ? digest : "(none)");
	p = xasprintf("%s/blobs/sha256/%s", store, hex);
	if (file_read_all(p, 0, BLOB_JSON_MAX, &text, &len, err) < 0)
		return -1;
	*out = json_parse(text, len, err);
	if (!*out)
		return err_wrap(err, "corrupt blob '%s'", p);
	return 0;
}

static int not_found(const char *store, const char *ref, struct err **err)
{
	return err_set(err, ENOENT, "image '%s' not found in store '%s' (build it with "
		       "'nbgate image build images/recipes/%s', or 'make images')", ref, store, ref);
}

int img_store_read_image(const char *store, const char *ref, cJSON **manifest,
			 cJSON **config, char **manifest_digest, struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	cJSON *ent, *m = NULL, *cfgd;

	if (read_index(store, &idx, err) < 0)
		return -1;
	ent = index_find(idx, ref);
	if (!ent)
		return not_found(store, ref, err);
	if (read_blob_json(store, desc_digest(ent), &m, err) < 0)
		return err_wrap(err, "image '%s': manifest", ref);
	cfgd = cJSON_GetObjectItemCaseSensitive(m, "config");
	if (read_blob_json(store, desc_digest(cfgd), config, err) < 0) {
		cJSON_Delete(m);
		return err_wrap(err, "image '%s': config", ref);
	}
	*manifest = m;
	if (manifest_digest)
		*manifest_digest = xstrdup(desc_digest(ent));
	return 0;
}

static const char *label(const cJSON *cc, const char *key)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(cc, "Labels");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char **strv_from_json(const cJSON *a)
{
	const cJSON *it;
	char **v = xcalloc((size_t)(cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0) + 1,
			   sizeof(char *));
	int n = 0;

	cJSON_ArrayForEach(it, a)
		if (cJSON_IsString(it))
			v[n++] = xstrdup(it->valuestring);
	return v;
}

static char *str_or_empty(const char *s)
{
	return xstrdup(s ? s : "");
}

/* Unpacked layer dirs, top first (diff_ids lists the base first). */
static int info_layers(const char *store, const cJSON *config, struct image_info *ii,
		       struct err **err)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(config, "rootfs"), "diff_ids");
	int n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;

	if (n == 0)
		return err_set(err, EINVAL, "image '%s': config has no rootfs.diff_ids", ii->name);
	ii->layers = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		const cJSON *d = cJSON_GetArrayItem(ids, n - 1 - i);
		const char *hex = digest_hex(cJSON_IsString(d) ? d->valuestring : NULL);

		if (!hex)
			return err_set(err, EINVAL, "image '%s': bad diff id", ii->name);
		ii->layers[i] = xasprintf("%s/rootfs/%s", store, hex);
	}
	return 0;
}

/* "8888/tcp" -> 8888; anything else -> 0 */
static int port_of(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || strcmp(end, "/tcp") != 0 || v < 1 || v > 65535)
		return 0;
	return (int)v;
}

static void info_ports(const cJSON *cc, struct image_info *ii)
{
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(cc, "ExposedPorts"), *it;

	ii->ports = xcalloc((size_t)(cJSON_IsObject(ep) ? cJSON_GetArraySize(ep) : 0) + 1,
			    sizeof(int));
	cJSON_ArrayForEach(it, ep) {
		int p = port_of(it->string);

		if (p > 0)
			ii->ports[ii->n_ports++] = p;
	}
}

static int64_t layers_size(const cJSON *manifest)
{
	const cJSON *ls = cJSON_GetObjectItemCaseSensitive(manifest, "layers"), *it;
	int64_t total = 0;

	cJSON_ArrayForEach(it, ls) {
		const cJSON *sz = cJSON_GetObjectItemCaseSensitive(it, "size");

		if (cJSON_IsNumber(sz) && sz->valuedouble > 0)
			total += (int64_t)sz->valuedouble;
	}
	return total;
}

static int info_build(const char *store, const cJSON *ent, const cJSON *manifest,
		      const cJSON *config, struct image_info *ii, struct err **err)
{
	const cJSON *cc = cJSON_GetObjectItemCaseSensitive(config, "config");
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(config, "created");
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(cc, "User");
	const cJSON *wd = cJSON_GetObjectItemCaseSensitive(cc, "WorkingDir");
	const char *home = label(cc, "io.nbgate.home"), *sp = label(cc, "io.nbgate.strip-prefix");

	ii->name = str_or_empty(ann(ent, IMAGES_ANN_REF));
	ii->manifest_digest = xstrdup(desc_digest(ent));
	ii->recipe_digest = str_or_empty(ann(ent, IMAGES_ANN_RECIPE));
	if (info_layers(store, config, ii, err) < 0)
		return -1;
	ii->cmd = strv_from_json(cJSON_GetObjectItemCaseSensitive(cc, "Cmd"));
	ii->env = strv_from_json(cJSON_GetObjectItemCaseSensitive(cc, "Env"));
	ii->user = str_or_empty(cJSON_IsString(user) ? user->valuestring : NULL);
	if (!home && cJSON_IsString(wd))
		home = wd->valuestring;
	ii->home = str_or_empty(home);
	ii->server_type = str_or_empty(label(cc, "io.nbgate.server-type"));
	ii->strip_prefix = sp && strcmp(sp, "true") == 0;
	info_ports(cc, ii);
	ii->size_bytes = layers_size(manifest);
	ii->created_s = img_time_parse(cJSON_IsString(created) ? created->valuestring : NULL);
	return 0;
}

/* The image of one index entry. */
static int info_from_entry(const char *store, const cJSON *ent, struct image_info **out,
			   struct err **err)
{
	cleanup_json cJSON *m = NULL;
	cleanup_json cJSON *c = NULL;
	const char *name = ann(ent, IMAGES_ANN_REF);
	struct image_info *ii = NULL;

	if (!name || !digest_hex(desc_digest(ent)))
		return err_set(err, EINVAL, "corrupt '%s/index.json': an entry without name or "
			       "digest", store);
	if (read_blob_json(store, desc_digest(ent), &m, err) < 0)
		return err_wrap(err, "image '%s': manifest", name);
	if (read_blob_json(store, desc_digest(cJSON_GetObjectItemCaseSensitive(m, "config")),
			   &c, err) < 0)
		return err_wrap(err, "image '%s': config", name);
	ii = xcalloc(1, sizeof(*ii));
	if (info_build(store, ent, m, c, ii, err) < 0) {
		image_info_free(ii);
		return -EINVAL;
	}
	*out = ii;
	return 0;
}

void image_info_free(struct image_info *ii)
{
	if (!ii)
		return;
	free(ii->name);
	free(ii->manifest_digest);
	free(ii->recipe_digest);
	xstrv_free(ii->layers);
	xstrv_free(ii->cmd);
	xstrv_free(ii->env);
	free(ii->user);
	free(ii->home);
	free(ii->server_type);
	free(ii->ports);
	free(ii);
}

int images_resolve(const char *store_dir, const char *ref, struct image_info **out,
		   struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	const cJSON *ent;

	if (read_index(store_dir, &idx, err) < 0)
		return -1;
	ent = index_find(idx, ref);
	if (!ent)
		return not_found(store_dir, ref, err);
	return info_from_entry(store_dir, ent, out, err);
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp((*(struct image_info *const *)a)->name,
		      (*(struct image_info *const *)b)->name);
}

int images_list(const char *store_dir, struct image_info ***out, int *n, struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	const cJSON *it, *arr;
	struct image_info **v;
	int k = 0;

	if (read_index(store_dir, &idx, err) < 0)
		return -1;
	arr = cJSON_GetObjectItemCaseSensitive(idx, "manifests");
	v = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(struct image_info *));
	cJSON_ArrayForEach(it, arr) {
		if (info_from_entry(store_dir, it, &v[k], err) < 0) {
			images_list_free(v, k);
			return -1;
		}
		k++;
	}
	qsort(v, (size_t)k, sizeof(struct image_info *), cmp_info);
	*out = v;
	*n = k;
	return 0;
}

void images_list_free(struct image_info **v, int n)
{
	for (int i = 0; v && i < n; i++)
		image_info_free(v[i]);
	free(v);
}

int img_store_lookup(const char *store, const char *name, char **recipe_digest,
		     char **manifest_digest, struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	struct image_info *ii = NULL;
	struct err *e = NULL;
	const cJSON *ent;
	int ok = 1;

	if (read_index(store, &idx, err) < 0)
		return -1;
	ent = index_find(idx, name);
	if (!ent)
		return 1;
	/* an entry whose blobs or layers went missing is not a cache hit */
	if (info_from_entry(store, ent, &ii, &e) < 0 || !ii) {
		err_free(&e);
		return 1;
	}
	for (int i = 0; ii->layers[i]; i++)
		if (access(ii->layers[i], F_OK) < 0)
			ok = 0;
	if (ok) {
		*recipe_digest = steal_ptr(&ii->recipe_digest);
		*manifest_digest = steal_ptr(&ii->manifest_digest);
	}
	image_info_free(ii);
	return ok ? 0 : 1;
}

/* ---- garbage collection ---- */

static void add_ref(char ***v, size_t *n, const char *digest)
{
	const char *hex = digest_hex(digest);

	if (!hex)
		return;
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = xstrdup(hex);
	(*v)[*n] = NULL;
}

static bool has_ref(char *const *v, const char *hex)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], hex) == 0)
			return true;
	return false;
}

/* Every blob and diff id the index reaches. A manifest or config that
 * cannot be read is an error: gc must not guess what it referenced. */
static int collect_refs(const char *store, const cJSON *idx, char ***blobs, char ***layers,
			struct err **err)
{
	size_t nb = 0, nl = 0;
	const cJSON *ent, *it, *arr = cJSON_GetObjectItemCaseSensitive(idx, "manifests");

	cJSON_ArrayForEach(ent, arr) {
		cleanup_json cJSON *m = NULL;
		cleanup_json cJSON *c = NULL;
		const cJSON *cfgd, *ls, *ids;

		if (read_blob_json(store, desc_digest(ent), &m, err) < 0)
			return err_wrap(err, "gc: manifest of '%s'", ann(ent, IMAGES_ANN_REF));
		cfgd = cJSON_GetObjectItemCaseSensitive(m, "config");
		if (read_blob_json(store, desc_digest(cfgd), &c, err) < 0)
			return err_wrap(err, "gc: config of '%s'", ann(ent, IMAGES_ANN_REF));
		add_ref(blobs, &nb, desc_digest(ent));
		add_ref(blobs, &nb, desc_digest(cfgd));
		ls = cJSON_GetObjectItemCaseSensitive(m, "layers");
		cJSON_ArrayForEach(it, ls) {
			add_ref(blobs, &nb, desc_digest(it));
		}
		ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "rootfs"),
						       "diff_ids");
		cJSON_ArrayForEach(it, ids) {
			add_ref(layers, &nl, cJSON_IsString(it) ? it->valuestring : NULL);
		}
	}
	return 0;
}

/* Removes entries of dir whose names are 64-hex and not in keep. */
static int sweep(const char *dir, char *const *keep, struct err **err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : err_set_errno(err, "gc: open '%s'", dir);
	while (r == 0 && (de = readdir(d))) {
		cleanup_free char *p = NULL;

		if (!hex64(de->d_name) || has_ref(keep, de->d_name))
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		r = img_rmtree(p, err);
	}
	closedir(d);
	return r;
}

int img_store_gc(const char *store, bool locked, struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	cleanup_free char *bd = xasprintf("%s/blobs/sha256", store);
	cleanup_free char *rd = xasprintf("%s/rootfs", store);
	char **blobs = NULL, **layers = NULL;
	int lk = -1, r;

	if (!locked) {
		lk = store_lock(store, err);
		if (lk < 0)
			return -1;
	}
	r = read_index(store, &idx, err);
	if (r == 0)
		r = collect_refs(store, idx, &blobs, &layers, err);
	if (r == 0)
		r = sweep(bd, blobs, err);
	if (r == 0)
		r = sweep(rd, layers, err);
	xstrv_free(blobs);
	xstrv_free(layers);
	if (lk >= 0)
		close(lk); /* releases the flock */
	return r < 0 ? -1 : 0;
}

int images_rm(const char *store_dir, const char *ref, struct err **err)
{
	cleanup_close int lk = -1;
	cleanup_json cJSON *idx = NULL;
	cJSON *ent;

	if (access(store_dir, F_OK) < 0)
		return not_found(store_dir, ref, err);
	lk = store_lock(store_dir, err);
	if (lk < 0 || read_index(store_dir, &idx, err) < 0)
		return -1;
	ent = index_find(idx, ref);
	if (!ent)
		return not_found(store_dir, ref, err);
	cJSON_Delete(cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(idx, "manifests"),
						ent));
	if (write_index(store_dir, idx, err) < 0)
		return err_wrap(err, "remove image '%s'", ref);
	return img_store_gc(store_dir, true, err);
}

/* ---- work dirs ---- */

/* Removes tmp/ entries whose build is gone: lock file free, or no lock
 * file and old. Best effort: a leftover that cannot go stays for later. */
static void clean_stale(const char *tmpdir)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		cleanup_free char *p = NULL, *lp = NULL;
		cleanup_close int fd = -1;
		struct err *e = NULL;
		struct stat st;
		bool dead;

		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", tmpdir, de->d_name);
		lp = xasprintf("%s/.lock", p);
		fd = open(lp, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
		else
			dead = lstat(p, &st) == 0 && st.st_mtime + STALE_UNLOCKED_S < time(NULL);
		if (dead && img_rmtree(p, &e) < 0)
			err_free(&e);
	}
	closedir(d);
}

/* The work dir and its held lock; the caller holds the store lock. */
static int mkwork_locked(const char *store, char **work_dir, int *lock_fd, struct err **err)
{
	cleanup_free char *tmpdir = xasprintf("%s/tmp", store);
	cleanup_free char *hex = rand_hex(8);
	cleanup_free char *dir = NULL, *lp = NULL;
	int fd;

	clean_stale(tmpdir);
	dir = xasprintf("%s/build-%s", tmpdir, hex);
	/* 0711: apt's unprivileged _apt user must reach rootfs/ inside to
	 * download into it; nothing in a work dir is secret, names are random */
	if (mkdir(dir, 0711) < 0)
		return err_set_errno(err, "create '%s'", dir);
	lp = xasprintf("%s/.lock", dir);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		err_set_errno(err, "lock '%s'", lp);
		if (fd >= 0)
			close(fd);
		rmdir(dir);
		return -1;
	}
	*work_dir = steal_ptr(&dir);
	*lock_fd = fd;
	return 0;
}

int img_store_mkwork(const char *store, char **work_dir, int *lock_fd, struct err **err)
{
	int lk, r;

	/* under the store lock, so clean_stale() never sees a work dir
	 * between its mkdir and its flock */
	if (img_store_init(store, err) < 0)
		return -1;
	lk = store_lock(store, err);
	if (lk < 0)
		return -1;
	r = mkwork_locked(store, work_dir, lock_fd, err);
	close(lk);
	return r;
}

/* ---- publish ---- */

static cJSON *descriptor(const char *media, const char *hex, int64_t size)
{
	cJSON *d = cJSON_CreateObject();
	char *dg = xasprintf("sha256:%s", hex);

	cJSON_AddStringToObject(d, "mediaType", media);
	cJSON_AddStringToObject(d, "digest", dg);
	cJSON_AddNumberToObject(d, "size", (double)size);
	free(dg);
	return d;
}

static cJSON *strv_json(char *const *v)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; v && v[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static const char *oci_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#else
	return "unknown";
#endif
}

static cJSON *config_inner(const struct img_config_in *c)
{
	cJSON *cc = cJSON_CreateObject(), *labels, *ports;

	cJSON_AddStringToObject(cc, "User", c->user ? c->user : "");
	cJSON_AddItemToObject(cc, "Env", strv_json(c->env));
	cJSON_AddItemToObject(cc, "Cmd", strv_json(c->cmd));
	cJSON_AddStringToObject(cc, "WorkingDir", c->home ? c->home : "/");
	labels = cJSON_AddObjectToObject(cc, "Labels");
	for (size_t i = 0; c->labels && c->labels[i] && c->labels[i + 1]; i += 2)
		cJSON_AddStringToObject(labels, c->labels[i], c->labels[i + 1]);
	/* OCI configs have no home field: a label carries it */
	if (c->home && !cJSON_GetObjectItemCaseSensitive(labels, "io.nbgate.home"))
		cJSON_AddStringToObject(labels, "io.nbgate.home", c->home);
	if (c->recipe_digest)
		cJSON_AddStringToObject(labels, IMAGES_ANN_RECIPE, c->recipe_digest);
	ports = cJSON_AddObjectToObject(cc, "ExposedPorts");
	for (int i = 0; i < c->n_ports; i++) {
		char k[16];

		snprintf(k, sizeof(k), "%d/tcp", c->ports[i]);
		cJSON_AddItemToObject(ports, k, cJSON_CreateObject());
	}
	return cc;
}

static char *config_text(const struct img_config_in *c, const char *diff_hex)
{
	cleanup_free char *created = img_time_rfc3339(c->created_s);
	cleanup_free char *diff = xasprintf("sha256:%s", diff_hex);
	cJSON *root = cJSON_CreateObject(), *rootfs, *hist, *h;
	char *s;

	cJSON_AddStringToObject(root, "created", created);
	cJSON_AddStringToObject(root, "architecture", oci_arch());
	cJSON_AddStringToObject(root, "os", "linux");
	cJSON_AddItemToObject(root, "config", config_inner(c));
	rootfs = cJSON_AddObjectToObject(root, "rootfs");
	cJSON_AddStringToObject(rootfs, "type", "layers");
	cJSON_AddItemToObject(rootfs, "diff_ids", cJSON_CreateArray());
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(rootfs, "diff_ids"),
			     cJSON_CreateString(diff));
	hist = cJSON_AddArrayToObject(root, "history");
	h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "created", created);
	cJSON_AddStringToObject(h, "created_by", "nbgate image build (mmdebstrap)");
	cJSON_AddItemToArray(hist, h);
	s = json_print_pretty(root);
	cJSON_Delete(root);
	return s;
}

static cJSON *annotations(const struct img_config_in *c)
{
	cleanup_free char *created = img_time_rfc3339(c->created_s);
	cJSON *a = cJSON_CreateObject();

	cJSON_AddStringToObject(a, IMAGES_ANN_REF, c->name);
	if (c->recipe_digest)
		cJSON_AddStringToObject(a, IMAGES_ANN_RECIPE, c->recipe_digest);
	cJSON_AddStringToObject(a, IMAGES_ANN_CREATED, created);
	return a;
}

static char *manifest_text(const struct img_config_in *c, const char *cfg_hex, int64_t cfg_size,
			   const char *layer_hex, int64_t layer_size)
{
	cJSON *root = cJSON_CreateObject(), *layers;
	char *s;

	cJSON_AddNumberToObject(root, "schemaVersion", 2);
	cJSON_AddStringToObject(root, "mediaType", IMAGES_MANIFEST_MEDIA);
	cJSON_AddItemToObject(root, "config", descriptor(IMAGES_CONFIG_MEDIA, cfg_hex, cfg_size));
	layers = cJSON_AddArrayToObject(root, "layers");
	cJSON_AddItemToArray(layers, descriptor(IMAGES_LAYER_MEDIA, layer_hex, layer_size));
	cJSON_AddItemToObject(root, "annotations", annotations(c));
	s = json_print_pretty(root);
	cJSON_Delete(root);
	return s;
}

static int write_blob(const char *work, const char *text, char **hex, struct err **err)
{
	cleanup_free char *p = NULL;

	*hex = img_sha256_hex(text, strlen(text));
	p = xasprintf("%s/%s.json", work, *hex);
	return img_write_atomic(p, text, strlen(text), err);
}

static int unpack(const char *work, const char *tar, char **rootfs, struct err **err)
{
	cleanup_free char *dir = xasprintf("%s/unpacked", work);
	cleanup_free char *tail = NULL, *sum = NULL;
	char **env = img_tool_env();
	const char *argv[] = { "/usr/bin/tar", "--extract", "--file", tar, "--directory", dir,
			       "--numeric-owner", "--same-owner", "--same-permissions",
			       "--xattrs", "--xattrs-include=*", NULL };
	int st;

	if (mkdir(dir, 0755) < 0) {
		xstrv_free(env);
		return err_set_errno(err, "create '%s'", dir);
	}
	st = img_run(argv, (const char *const *)env, NULL, -1, 2048, &tail, err);
	xstrv_free(env);
	if (st < 0)
		return st;
	if (st != 0) {
		sum = img_tail_summary(tail, 3);
		return err_set(err, EIO, "unpack '%s': tar: exit status %d (%s)", tar, st, sum);
	}
	/* tar leaves OCI whiteouts as empty files: overlay needs its own */
	if (img_layer_to_overlay(dir, err) < 0)
		return err_wrap(err, "unpack '%s'", tar);
	*rootfs = steal_ptr(&dir);
	return 0;
}

/* A file or folder of a work dir and its place in the store. */
struct move {
	const char *src, *dst;
	bool moved;     /* by this publish: moved back out when it fails */
};

static void moves_undo(struct move *mv, int n)
{
	/* a move that cannot be undone leaves an unreferenced blob: gc's */
	for (int i = n - 1; i >= 0; i--)
		if (mv[i].moved && rename(mv[i].dst, mv[i].src) == 0)
			mv[i].moved = false;
}

static int moves_do(struct move *mv, int n, struct err **err)
{
	for (int i = 0; i < n; i++) {
		if (access(mv[i].dst, F_OK) == 0)
			continue; /* content-addressed: it already holds the same bytes */
		if (rename(mv[i].src, mv[i].dst) < 0) {
			err_set_errno(err, "publish '%s'", mv[i].dst);
			moves_undo(mv, i);
			return -1;
		}
		mv[i].moved = true;
	}
	return 0;
}

/* Points the index entry of name at manifest mhex; ann is taken. */
static int index_put(const char *store, const char *name, const char *mhex, int64_t msize,
		     cJSON *ann, struct err **err)
{
	cleanup_json cJSON *idx = NULL;
	cJSON *arr, *ent, *old;

	if (read_index(store, &idx, err) < 0) {
		cJSON_Delete(ann);
		return -1;
	}
	arr = cJSON_GetObjectItemCaseSensitive(idx, "manifests");
	while ((old = index_find(idx, name)))
		cJSON_Delete(cJSON_DetachItemViaPointer(arr, old));
	ent = descriptor(IMAGES_MANIFEST_MEDIA, mhex, msize);
	cJSON_AddItemToObject(ent, "annotations", ann);
	cJSON_AddItemToArray(arr, ent);
	return write_index(store, idx, err);
}

/* Moves the blobs and layer in and points the index at the manifest;
 * on failure the store is as before. The caller holds the store lock. */
static int publish_moves(const char *store, const char *work, const char *layer_tar,
			 const char *rootfs, const char *lhex, const char *chex, const char *mhex,
			 int64_t msize, const char *name, cJSON *ann, struct err **err)
{
	cleanup_free char *bl = xasprintf("%s/blobs/sha256/%s", store, lhex);
	cleanup_free char *rl = xasprintf("%s/rootfs/%s", store, lhex);
	cleanup_free char *cs = xasprintf("%s/%s.json", work, chex);
	cleanup_free char *cd = xasprintf("%s/blobs/sha256/%s", store, chex);
	cleanup_free char *ms = xasprintf("%s/%s.json", work, mhex);
	cleanup_free char *md = xasprintf("%s/blobs/sha256/%s", store, mhex);
	struct move mv[] = { { layer_tar, bl, false }, { rootfs, rl, false }, { cs, cd, false },
			     { ms, md, false } };
	int n = (int)(sizeof(mv) / sizeof(mv[0]));

	if (moves_do(mv, n, err) < 0) {
		cJSON_Delete(ann);
		return -1;
	}
	if (index_put(store, name, mhex, msize, ann, err) < 0) {
		moves_undo(mv, n);
		return -1;
	}
	return 0;
}

int img_store_publish(const char *store, const char *work_dir, const char *layer_tar,
		      const char *rootfs_dir, const struct img_config_in *cfg,
		      char **manifest_digest, struct err **err)
{
	cleanup_free char *lhex = NULL, *chex = NULL, *mhex = NULL;
	cleanup_free char *ctext = NULL, *mtext = NULL, *unpacked = NULL;
	cleanup_close int lk = -1;
	int64_t lsize = 0;

	if (!img_name_valid(cfg->name))
		return err_set(err, EINVAL, "image name '%s' is not valid ([a-z0-9-])", cfg->name);
	if (img_sha256_file(layer_tar, &lhex, &lsize, err) < 0)
		return err_wrap(err, "layer digest");
	if (!rootfs_dir) {
		if (unpack(work_dir, layer_tar, &unpacked, err) < 0)
			return -1;
		rootfs_dir = unpacked;
	}
	ctext = config_text(cfg, lhex);
	if (write_blob(work_dir, ctext, &chex, err) < 0)
		return -1;
	mtext = manifest_text(cfg, chex, (int64_t)strlen(ctext), lhex, lsize);
	if (write_blob(work_dir, mtext, &mhex, err) < 0)
		return -1;
	lk = store_lock(store, err);
	if (lk < 0 || publish_moves(store, work_dir, layer_tar, rootfs_dir, lhex, chex, mhex,
				    (int64_t)strlen(mtext), cfg->name, annotations(cfg), err) < 0)
		return err_wrap(err, "publish image '%s'", cfg->name);
	if (manifest_digest)
		*manifest_digest = xasprintf("sha256:%s", mhex);
	return 0;
}

/* sub/<hex> is in the store, or hex is the layer being published. */
static int present(const char *store, const char *sub, const char *hex, const char *lhex,
		   struct err **err)
{
	cleanup_free char *p = hex ? xasprintf("%s/%s/%s", store, sub, hex) : NULL;

	if (!hex)
		return err_set(err, EINVAL, "prepared image: bad digest in '%s'", sub);
	if (strcmp(hex, lhex) != 0 && access(p, F_OK) < 0)
		return err_set(err, ENOENT, "'%s/%s' is not in the store (removed meanwhile?)",
			       sub, hex);
	return 0;
}

/* The lower layers a prepared manifest and config name (all but lhex)
 * are in the store: blob and unpacked folder. Under the store lock. */
static int lowers_present(const char *store, const char *mtext, const char *ctext,
			  const char *lhex, struct err **err)
{
	cleanup_json cJSON *m = json_parse(mtext, strlen(mtext), err);
	cleanup_json cJSON *c = m ? json_parse(ctext, strlen(ctext), err) : NULL;
	const cJSON *it, *ids;

	if (!m || !c)
		return err_wrap(err, "prepared manifest or config");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "layers")) {
		if (present(store, "blobs/sha256", digest_hex(desc_digest(it)), lhex, err) < 0)
			return -1;
	}
	ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "rootfs"),
					       "diff_ids");
	cJSON_ArrayForEach(it, ids) {
		if (present(store, "rootfs", digest_hex(cJSON_IsString(it) ? it->valuestring : NULL),
			    lhex, err) < 0)
			return -1;
	}
	return 0;
}

int img_store_publish_raw(const char *store, const char *work_dir, const char *layer_tar,
			  const char *layer_hex, const char *rootfs_dir, const char *config_text,
			  const char *manifest_text, const cJSON *annotations,
			  char **manifest_digest, struct err **err)
{
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(annotations, IMAGES_ANN_REF);
	const char *name = cJSON_IsString(nm) ? nm->valuestring : "";
	cleanup_free char *chex = NULL, *mhex = NULL, *unpacked = NULL;
	cleanup_close int lk = -1;

	if (!img_name_valid(name))
		return err_set(err, EINVAL, "image name '%s' is not valid ([a-z0-9-])", name);
	if (!hex64(layer_hex))
		return err_set(err, EINVAL, "publish image '%s': bad layer digest", name);
	if (!rootfs_dir) {
		if (unpack(work_dir, layer_tar, &unpacked, err) < 0)
			return err_wrap(err, "publish image '%s'", name);
		rootfs_dir = unpacked;
	}
	if (write_blob(work_dir, config_text, &chex, err) < 0 ||
	    write_blob(work_dir, manifest_text, &mhex, err) < 0)
		return err_wrap(err, "publish image '%s'", name);
	lk = store_lock(store, err);
	if (lk < 0 || lowers_present(store, manifest_text, config_text, layer_hex, err) < 0 ||
	    publish_moves(store, work_dir, layer_tar, rootfs_dir, layer_hex, chex, mhex,
			  (int64_t)strlen(manifest_text), name, cJSON_Duplicate(annotations, true),
			  err) < 0)
		return err_wrap(err, "publish image '%s'", name);
	if (manifest_digest)
		*manifest_digest = xasprintf("sha256:%s", mhex);
	return 0;
}

int img_store_add_tar(const char *store, const char *layer_tar,
		      const struct img_config_in *cfg, char **manifest_digest, struct err **err)
{
	cleanup_free char *work = NULL, *copy = NULL, *tail = NULL;
	cleanup_close int lock_fd = -1;
	char **env = NULL;
	struct err *e = NULL;
	int r, st;

	if (img_store_mkwork(store, &work, &lock_fd, err) < 0)
		return -1;
	copy = xasprintf("%s/layer.tar", work);
	env = img_tool_env();
	st = img_run((const char *const[]){ "/bin/cp", "--", layer_tar, copy, NULL },
		     (const char *const *)env, NULL, -1, 1024, &tail, err);
	xstrv_free(env);
	if (st > 0)
		err_set(err, EIO, "copy '%s': %s", layer_tar, tail);
	r = st != 0 ? -1 : img_store_publish(store, work, copy, NULL, cfg, manifest_digest, err);
	if (img_rmtree(work, &e) < 0)
		err_free(&e); /* a leftover is removed by the next build */
	return r;
}
