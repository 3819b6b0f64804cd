/* Unit tests for images/store.c: the OCI layout written by publishing a
 * tiny synthetic layer (no mmdebstrap), resolve/list/lookup, rm with
 * garbage collection of blobs and unpacked layers, corrupt stores, and the
 * cleanup of crash leftovers in tmp/. Needs /usr/bin/tar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "images/store.c"

#include <sys/stat.h>

struct fx {
	char root[64];    /* scratch folder */
	char *store;
	char *tar_a, *tar_b;
};

static void put(const char *path, const char *text)
{
	struct err *e = NULL;

	if (img_write_atomic(path, text, strlen(text), &e) < 0)
		fail_msg("%s", e->msg);
}

/* A one-file root filesystem packed with tar. */
static char *make_tar(const char *root, const char *tag)
{
	char *src = xasprintf("%s/src-%s", root, tag), *f, *tar = xasprintf("%s/%s.tar", root, tag);
	char *etc = xasprintf("%s/etc", src);
	char **env = img_tool_env();
	struct err *e = NULL;
	int st;

	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(etc, 0755), 0);
	f = xasprintf("%s/etc/hello", src);
	put(f, tag);
	st = img_run((const char *const[]){ "/usr/bin/tar", "-cf", tar, "-C", src, ".", NULL },
		     (const char *const *)env, NULL, -1, 512, NULL, &e);
	assert_int_equal(st, 0);
	xstrv_free(env);
	free(f), free(etc), free(src);
	return tar;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	snprintf(f->root, sizeof(f->root), "/tmp/test-store-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->store = xasprintf("%s/store", f->root);
	f->tar_a = make_tar(f->root, "a");
	f->tar_b = make_tar(f->root, "b");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;

	assert_int_equal(img_rmtree(f->root, &e), 0);
	free(f->store), free(f->tar_a), free(f->tar_b), free(f);
	return 0;
}

static char *const test_cmd[] = { "/usr/bin/python3", "-m", "jupyter_server", "--sock={sock}", NULL };
static char *const test_env[] = { "LANG=C.UTF-8", NULL };
static char *const test_labels[] = { "io.nbgate.server-type", "jupyter",
				     "io.nbgate.strip-prefix", "true", NULL };
static const int test_ports[] = { 8888, 9000 };

static char *add(struct fx *f, const char *name, const char *tar, const char *rd)
{
	struct img_config_in c = {
		.name = name, .recipe_digest = rd, .env = test_env, .cmd = test_cmd,
		.user = "jovyan", .home = "/home/jovyan", .ports = test_ports, .n_ports = 2,
		.labels = test_labels, .created_s = 1700000000,
	};
	struct err *e = NULL;
	char *md = NULL;

	if (img_store_add_tar(f->store, tar, &c, &md, &e) < 0)
		fail_msg("add %s: %s", name, e->msg);
	return md;
}

static int count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int count(struct fx *f, const char *sub)
{
	char *p = xasprintf("%s/%s", f->store, sub);
	int n = count_dir(p);

	free(p);
	return n;
}

static void test_store_add_and_resolve(void **state)
{
	struct fx *f = *state;
	char *md = add(f, "alpha", f->tar_a, "sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	struct image_info *ii = NULL;
	struct err *e = NULL;
	char *p, *text = NULL;

	assert_int_equal(images_resolve(f->store, "alpha", &ii, &e), 0);
	assert_string_equal(ii->name, "alpha");
	assert_string_equal(ii->manifest_digest, md);
	assert_string_equal(ii->user, "jovyan");
	assert_string_equal(ii->home, "/home/jovyan");
	assert_string_equal(ii->server_type, "jupyter");
	assert_true(ii->strip_prefix);
	assert_int_equal(ii->n_ports, 2);
	assert_string_equal(ii->cmd[3], "--sock={sock}");
	assert_string_equal(ii->env[0], "LANG=C.UTF-8");
	assert_int_equal(ii->created_s, 1700000000);
	assert_true(ii->size_bytes >= 10240); /* a tar is at least 10 kB */
	assert_non_null(ii->layers[0]);
	assert_null(ii->layers[1]);
	/* the unpacked layer holds the file, and the layer is content-addressed */
	p = xasprintf("%s/etc/hello", ii->layers[0]);
	assert_int_equal(file_read_all(p, 0, 100, &text, NULL, &e), 0);
	assert_string_equal(text, "a");
	free(p), free(text);
	image_info_free(ii);
	/* by manifest digest too */
	assert_int_equal(images_resolve(f->store, md, &ii, &e), 0);
	assert_string_equal(ii->name, "alpha");
	image_info_free(ii);
	/* layout files */
	p = xasprintf("%s/oci-layout", f->store);
	assert_int_equal(file_read_all(p, 0, 1000, &text, NULL, &e), 0);
	assert_non_null(strstr(text, "\"imageLayoutVersion\":\"1.0.0\""));
	free(p), free(text);
	assert_int_equal(count(f, "blobs/sha256"), 3); /* layer, config, manifest */
	assert_int_equal(count(f, "rootfs"), 1);
	assert_int_equal(count(f, "tmp"), 0);          /* work dir removed */
	free(md);
}

static void test_store_blobs_match_digests(void **state)
{
	struct fx *f = *state;
	char *md = add(f, "alpha", f->tar_a, NULL);
	cJSON *m = NULL, *c = NULL;
	struct err *e = NULL;
	char *hex = NULL, *p;
	const char *ld, *cd;

	assert_int_equal(img_store_read_image(f->store, "alpha", &m, &c, NULL, &e), 0);
	ld = desc_digest(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 0));
	cd = desc_digest(cJSON_GetObjectItem(m, "config"));
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 0),
						"mediaType")->valuestring, IMAGES_LAYER_MEDIA);
	/* each blob's name is the sha256 of its bytes */
	const char *ds[] = { md, ld, cd };
	for (int i = 0; i < 3; i++) {
		p = xasprintf("%s/blobs/sha256/%s", f->store, ds[i] + 7);
		assert_int_equal(img_sha256_file(p, &hex, NULL, &e), 0);
		assert_string_equal(hex, ds[i] + 7);
		free(hex), free(p);
	}
	/* uncompressed layer: diff id == layer digest */
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "rootfs"),
								   "diff_ids"), 0)->valuestring, ld);
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "config"),
								"ExposedPorts"), "8888/tcp"));
	cJSON_Delete(m), cJSON_Delete(c), free(md);
}

static void test_store_list_sorted(void **state)
{
	struct fx *f = *state;
	struct image_info **v = NULL;
	struct err *e = NULL;
	int n = 0;

	free(add(f, "zeta", f->tar_b, NULL));
	free(add(f, "alpha", f->tar_a, NULL));
	assert_int_equal(images_list(f->store, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->name, "alpha");
	assert_string_equal(v[1]->name, "zeta");
	images_list_free(v, n);
}

static void test_store_rm_gc(void **state)
{
	struct fx *f = *state;
	struct image_info *ii = NULL;
	struct err *e = NULL;
	char *md_a = add(f, "alpha", f->tar_a, NULL);
	char *md_b = add(f, "beta", f->tar_b, NULL);
	char *md_c = add(f, "gamma", f->tar_a, NULL); /* shares alpha's layer */
	char *layer_a;

	assert_int_equal(count(f, "rootfs"), 2);
	assert_int_equal(images_resolve(f->store, "alpha", &ii, &e), 0);
	layer_a = xstrdup(ii->layers[0]);
	image_info_free(ii);
	assert_int_equal(images_rm(f->store, "alpha", &e), 0);
	assert_true(images_resolve(f->store, "alpha", &ii, &e) < 0);
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "nbgate image build"));
	err_free(&e);
	assert_int_equal(access(layer_a, F_OK), 0); /* gamma still uses it */
	assert_int_equal(images_rm(f->store, md_c, &e), 0); /* by digest */
	assert_true(access(layer_a, F_OK) < 0);
	assert_int_equal(count(f, "rootfs"), 1);
	assert_int_equal(count(f, "blobs/sha256"), 3);    /* beta's three */
	assert_int_equal(images_rm(f->store, "beta", &e), 0);
	assert_int_equal(count(f, "blobs/sha256"), 0);
	assert_int_equal(count(f, "rootfs"), 0);
	assert_true(images_rm(f->store, "beta", &e) < 0);
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
	free(md_a), free(md_b), free(md_c), free(layer_a);
}

static void test_store_republish_replaces(void **state)
{
	struct fx *f = *state;
	struct image_info **v = NULL, *ii = NULL;
	struct err *e = NULL;
	char *rd = NULL, *md = NULL;
	int n = 0;
	char *m1 = add(f, "alpha", f->tar_a, "sha256:1111111111111111111111111111111111111111111111111111111111111111");
	char *m2 = add(f, "alpha", f->tar_b, "sha256:2222222222222222222222222222222222222222222222222222222222222222");

	assert_string_not_equal(m1, m2);
	assert_int_equal(images_list(f->store, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	images_list_free(v, n);
	assert_int_equal(img_store_lookup(f->store, "alpha", &rd, &md, &e), 0);
	assert_string_equal(md, m2);
	assert_non_null(strstr(rd, "2222"));
	free(rd), free(md);
	/* the old image's blobs stay until gc (a running sandbox may use them) */
	assert_int_equal(count(f, "rootfs"), 2);
	assert_int_equal(img_store_gc(f->store, false, &e), 0);
	assert_int_equal(count(f, "rootfs"), 1);
	assert_int_equal(images_resolve(f->store, "alpha", &ii, &e), 0);
	image_info_free(ii);
	/* a missing layer folder is not a cache hit */
	assert_int_equal(images_resolve(f->store, "alpha", &ii, &e), 0);
	assert_int_equal(img_rmtree(ii->layers[0], &e), 0);
	image_info_free(ii);
	assert_int_equal(img_store_lookup(f->store, "alpha", &rd, &md, &e), 1);
	assert_int_equal(img_store_lookup(f->store, "nothere", &rd, &md, &e), 1);
	free(m1), free(m2);
}

static void test_store_corrupt(void **state)
{
	struct fx *f = *state;
	struct image_info *ii = NULL, **v = NULL;
	struct err *e = NULL;
	char *idx = xasprintf("%s/index.json", f->store);
	int n;

	/* an empty or missing store lists nothing */
	assert_int_equal(images_list(f->store, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	images_list_free(v, n);
	assert_int_equal(img_store_init(f->store, &e), 0);
	put(idx, "{\"manifests\": 5}");
	assert_true(images_resolve(f->store, "x", &ii, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "index.json"));
	err_free(&e);
	put(idx, "{\"manifests\":[{\"digest\":\"sha256:zz\",\"annotations\":"
		 "{\"org.opencontainers.image.ref.name\":\"x\"}}]}");
	assert_true(images_resolve(f->store, "x", &ii, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	put(idx, "not json");
	assert_true(images_list(f->store, &v, &n, &e) < 0);
	assert_non_null(strstr(e->msg, "corrupt"));
	err_free(&e);
	free(idx);
}

static void test_store_tmp_leftovers_cleaned(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;
	char *dead, *lock, *work = NULL, *work2 = NULL;
	int fd = -1, fd2 = -1;

	assert_int_equal(img_store_init(f->store, &e), 0);
	dead = xasprintf("%s/tmp/build-dead", f->store);
	lock = xasprintf("%s/.lock", dead);
	assert_int_equal(mkdir(dead, 0700), 0);
	put(lock, "");                         /* a lock nobody holds: a crashed build */
	assert_int_equal(img_store_mkwork(f->store, &work, &fd, &e), 0);
	assert_true(access(dead, F_OK) < 0);
	/* a live build's dir (its lock held) survives another build's cleanup */
	assert_int_equal(img_store_mkwork(f->store, &work2, &fd2, &e), 0);
	assert_int_equal(access(work, F_OK), 0);
	close(fd), close(fd2);
	free(dead), free(lock), free(work), free(work2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_add_and_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_blobs_match_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_list_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_rm_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_republish_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_tmp_leftovers_cleaned, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
