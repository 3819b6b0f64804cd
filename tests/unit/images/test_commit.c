/* Unit tests for images/commit.c: tar header writing (ustar fields and
 * checksum, pax records for long names, long link targets and binary
 * xattrs, hard links), the upper dir -> layer translation read back by GNU
 * tar, whiteouts and opaque dirs both ways, and image_commit() on a
 * scratch store (layers, config, annotations, rm + gc, failures leave the
 * store as it was). Cases that make device nodes or trusted.* xattrs need
 * root and are skipped without it. Needs /usr/bin/tar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "images/commit.c"

#include <sys/socket.h>
#include <sys/un.h>

#include "common/file.h"

struct fx {
	char root[64];
	char *store, *upper, *out;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	snprintf(f->root, sizeof(f->root), "/tmp/test-commit-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->store = xasprintf("%s/store", f->root);
	f->upper = xasprintf("%s/upper", f->root);
	f->out = xasprintf("%s/out", f->root);
	assert_int_equal(mkdir(f->upper, 0755), 0);
	assert_int_equal(mkdir(f->out, 0755), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;

	assert_int_equal(img_rmtree(f->root, &e), 0);
	free(f->store), free(f->upper), free(f->out), free(f);
	return 0;
}

static void put(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	free(p);
}

static void mkd(const char *dir, const char *rel, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, rel);

	assert_int_equal(mkdir(p, mode), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static char *slurp(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel), *text = NULL;
	struct err *e = NULL;

	if (file_read_all(p, O_NOFOLLOW, 1 << 20, &text, NULL, &e) < 0)
		fail_msg("%s", e->msg);
	free(p);
	return text;
}

static bool is_root(void)
{
	return geteuid() == 0;
}

/* Output (stdout + stderr) of a tool, or fails the test on exit != 0. */
static char *run_ok(const char *const *argv)
{
	char **env = img_tool_env(), *tail = NULL;
	struct err *e = NULL;
	int st = img_run(argv, (const char *const *)env, NULL, -1, 64 * 1024, &tail, &e);

	xstrv_free(env);
	if (st != 0)
		fail_msg("%s: exit %d: %s", argv[0], st, tail ? tail : (e ? e->msg : ""));
	return tail;
}

/* ---- headers ---- */

static unsigned long octal(const char *p, size_t n)
{
	char tmp[16] = "";

	memcpy(tmp, p, n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1);
	return strtoul(tmp, NULL, 8);
}

static void assert_checksum(const char *h)
{
	unsigned sum = 0;

	for (int i = 0; i < TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
	assert_int_equal(octal(h + 148, 7), sum);
}

static void test_tar_header_ustar(void **state)
{
	struct img_tar_entry t = { .name = "usr/bin/tool", .type = '0', .mode = 04755, .uid = 1000,
				   .gid = 100, .size = 12345, .mtime = 1700000000 };
	struct err *e = NULL;
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(img_tar_header(&b, &t, &e), 0);
	assert_int_equal(b.len, TAR_BLOCK); /* no pax block needed */
	assert_string_equal(b.data, "usr/bin/tool");
	assert_int_equal(octal(b.data + 100, 8), 04755);
	assert_int_equal(octal(b.data + 108, 8), 1000);
	assert_int_equal(octal(b.data + 116, 8), 100);
	assert_int_equal(octal(b.data + 124, 12), 12345);
	assert_int_equal(octal(b.data + 136, 12), 1700000000);
	assert_int_equal(b.data[156], '0');
	assert_memory_equal(b.data + 257, "ustar\0" "00", 8);
	assert_checksum(b.data);
	buf_release(&b);
}

/* The pax records of a header whose first block is 'x'; owned text. */
static char *pax_of(const struct buf *b, size_t *len)
{
	char *p;

	assert_true(b->len >= 3 * TAR_BLOCK);
	assert_int_equal(b->data[156], 'x');
	assert_checksum(b->data);
	*len = octal(b->data + 124, 12);
	p = xmalloc(*len + 1); /* binary: xattr values may hold NUL bytes */
	memcpy(p, b->data + TAR_BLOCK, *len);
	p[*len] = '\0';
	return p;
}

/* Every record's length prefix equals its length; returns the count. */
static int check_records(const char *p, size_t len)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		char *end;
		unsigned long rl = strtoul(p + off, &end, 10);

		assert_true(*end == ' ' && rl > 0 && off + rl <= len);
		assert_int_equal(p[off + rl - 1], '\n');
		off += rl;
		n++;
	}
	assert_int_equal(off, len);
	return n;
}

static void test_tar_header_long_name(void **state)
{
	char name[301], link[201];
	struct img_tar_entry t = { .name = name, .type = '2', .link = link, .mode = 0777 };
	struct err *e = NULL;
	size_t len, hl;
	struct buf b;
	char *pax, *want;

	memset(name, 'n', 300), name[300] = '\0';
	memset(link, 'l', 200), link[200] = '\0';
	name[150] = '/';
	buf_init(&b, 1 << 20);
	assert_int_equal(img_tar_header(&b, &t, &e), 0);
	pax = pax_of(&b, &len);
	assert_int_equal(check_records(pax, len), 2);
	want = xasprintf("%d path=%s\n", 3 + 1 + 5 + 300 + 1, name); /* 310 */
	assert_non_null(strstr(pax, want));
	free(want);
	want = xasprintf("%d linkpath=%s\n", 3 + 1 + 9 + 200 + 1, link);
	assert_non_null(strstr(pax, want));
	free(want);
	hl = TAR_BLOCK + (len + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
	assert_int_equal(b.len, hl + TAR_BLOCK);
	assert_int_equal(b.data[hl + 156], '2');
	assert_checksum(b.data + hl);
	free(pax);
	buf_release(&b);
}

static void test_tar_header_record_length_boundary(void **state)
{
	struct buf b;
	char v[100];

	/* "NN k=" + v + "\n": with 94 value bytes the length is 99 + 1 digit */
	for (size_t vl = 90; vl < 100; vl++) {
		char *end;

		memset(v, 'v', vl);
		buf_init(&b, 4096);
		assert_int_equal(pax_record(&b, "k", v, vl), 0);
		assert_int_equal(strtoul(b.data, &end, 10), b.len);
		buf_release(&b);
	}
}

static void test_tar_header_xattrs_binary(void **state)
{
	static const char cap[] = { 0x01, 0x00, 0x00, 0x02, '\n', 0x00, 0x20, 0x00 };
	struct img_xattr x[] = { { "security.capability", (char *)cap, sizeof(cap) },
				 { "user.note", "hello", 5 } };
	struct img_tar_entry t = { .name = "bin/ping", .type = '0', .mode = 0755,
				   .xattrs = x, .n_xattrs = 2 };
	struct err *e = NULL;
	size_t len;
	struct buf b;
	char *pax;

	buf_init(&b, 1 << 20);
	assert_int_equal(img_tar_header(&b, &t, &e), 0);
	pax = pax_of(&b, &len);
	assert_int_equal(check_records(pax, len), 2); /* the \n inside the value is counted */
	assert_non_null(memmem(pax, len, "SCHILY.xattr.security.capability=", 33));
	assert_non_null(memmem(pax, len, cap, sizeof(cap)));
	assert_non_null(memmem(pax, len, "SCHILY.xattr.user.note=hello\n", 29));
	free(pax);
	buf_release(&b);
}

static void test_tar_header_big_numbers_and_limits(void **state)
{
	struct img_tar_entry t = { .name = "big", .type = '0', .mode = 0644, .uid = 100000000,
				   .size = 10LL << 30, .mtime = -5 };
	struct err *e = NULL;
	size_t len;
	struct buf b;
	char *pax, *huge = xmalloc(5000);

	buf_init(&b, 1 << 20);
	assert_int_equal(img_tar_header(&b, &t, &e), 0);
	pax = pax_of(&b, &len);
	assert_non_null(strstr(pax, " uid=100000000\n"));
	assert_non_null(strstr(pax, " size=10737418240\n"));
	assert_non_null(strstr(pax, " mtime=-5\n"));
	free(pax);
	buf_release(&b);
	memset(huge, 'a', 4999), huge[4999] = '\0';
	t.name = huge;
	buf_init(&b, 1 << 20);
	assert_true(img_tar_header(&b, &t, &e) < 0);
	assert_int_equal(e->code, ENAMETOOLONG);
	err_free(&e);
	buf_release(&b);
	free(huge);
}

/* ---- upper dir -> layer tar ---- */

static char *layer_of(struct fx *f, struct err **e)
{
	char *tar = xasprintf("%s/layer.tar", f->root);
	int fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int64_t size = 0;
	int r;

	assert_true(fd >= 0);
	r = img_layer_from_upper(f->upper, fd, tar, &size, e);
	close(fd);
	if (r < 0) {
		free(tar);
		return NULL;
	}
	assert_int_equal(size % TAR_BLOCK, 0);
	return tar;
}

static void extract(struct fx *f, const char *tar)
{
	free(run_ok((const char *const[]){ "/usr/bin/tar", "--extract", "--file", tar,
					   "--directory", f->out, "--numeric-owner",
					   "--same-owner", "--same-permissions", "--xattrs",
					   "--xattrs-include=*", NULL }));
}

static char *at(const char *dir, const char *rel)
{
	return xasprintf("%s/%s", dir, rel);
}

static struct stat lst(const char *dir, const char *rel)
{
	char *p = at(dir, rel);
	struct stat st;

	if (lstat(p, &st) < 0)
		fail_msg("lstat '%s': %s", p, strerror(errno));
	free(p);
	return st;
}

/* A 3 x 110-byte directory path ending in /file: needs pax names. */
static char *deep_path(void)
{
	char deep[400];
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		memset(deep + n, 'd' + i, 109);
		deep[n + 109] = '/';
		n += 110;
	}
	snprintf(deep + n, sizeof(deep) - n, "file");
	return xstrdup(deep);
}

static void test_layer_files_links_long_names(void **state)
{
	struct fx *f = *state;
	char *deep = deep_path(), *tar, *list, *p, *q, t[100] = "";
	struct err *e = NULL;

	mkd(f->upper, "etc", 0755);
	put(f->upper, "etc/motd", "hello\n", 0640);
	put(f->upper, "run.sh", "#!/bin/sh\n", 04755);
	p = at(f->upper, "etc/motd"), q = at(f->upper, "hard");
	assert_int_equal(link(p, q), 0);
	free(p), free(q);
	p = at(f->upper, "abs");
	assert_int_equal(symlink("/usr/lib/target-that-is-absolute", p), 0);
	free(p);
	for (size_t cut = 110; cut <= 330; cut += 110) {
		q = xstrndup(deep, cut - 1);
		mkd(f->upper, q, 0700);
		free(q);
	}
	put(f->upper, deep, "deep", 0600);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	list = run_ok((const char *const[]){ "/usr/bin/tar", "-tvf", tar, NULL });
	assert_non_null(strstr(list, "hard link to etc/motd")); /* "etc/motd" < "hard" */
	assert_null(strstr(list, "./"));                           /* names are relative */
	extract(f, tar);
	p = slurp(f->out, deep);
	assert_string_equal(p, "deep");
	free(p);
	assert_int_equal(lst(f->out, "hard").st_ino, lst(f->out, "etc/motd").st_ino);
	assert_int_equal(lst(f->out, "etc/motd").st_mode & 07777, 0640);
	assert_int_equal(lst(f->out, "run.sh").st_mode & 07777, 04755);
	assert_int_equal(lst(f->out, "etc").st_mtime, lst(f->upper, "etc").st_mtime);
	p = at(f->out, "abs");
	assert_true(readlink(p, t, sizeof(t) - 1) > 0);
	assert_string_equal(t, "/usr/lib/target-that-is-absolute");
	free(p), free(list), free(tar), free(deep);
}

static void test_layer_fifo_kept_socket_skipped(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *p = at(f->upper, "pipe"), *tar, *list;
	struct err *e = NULL;
	int s;

	assert_int_equal(mkfifo(p, 0600), 0);
	free(p);
	p = at(f->upper, "sock");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	free(p);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	list = run_ok((const char *const[]){ "/usr/bin/tar", "-tf", tar, NULL });
	assert_string_equal(list, "pipe\n");
	free(list), free(tar);
}

static void test_layer_user_xattr(void **state)
{
	struct fx *f = *state;
	char *p, *tar, v[16] = "";
	struct err *e = NULL;

	put(f->upper, "noted", "x", 0644);
	p = at(f->upper, "noted");
	if (lsetxattr(p, "user.nbgate", "kept", 4, 0) < 0) {
		free(p);
		skip(); /* the scratch filesystem has no user xattrs */
	}
	free(p);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	extract(f, tar);
	p = at(f->out, "noted");
	assert_int_equal(lgetxattr(p, "user.nbgate", v, sizeof(v)), 4);
	assert_string_equal(v, "kept");
	free(p), free(tar);
}

static void test_layer_reserved_name_refused(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;

	mkd(f->upper, "d", 0755);
	put(f->upper, "d/.wh.sneaky", "", 0644);
	assert_null(layer_of(f, &e));
	assert_int_equal(e->code, EINVAL);
	assert_non_null(strstr(e->msg, "d/.wh.sneaky"));
	err_free(&e);
}

static void test_layer_missing_upper(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;

	assert_int_equal(img_rmtree(f->upper, &e), 0);
	assert_null(layer_of(f, &e));
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, f->upper));
	err_free(&e);
}

/* ---- whiteouts (root: mknod, trusted.* xattrs) ---- */

static void whiteout_upper(struct fx *f)
{
	char *p;

	mkd(f->upper, "gone-parent", 0755);
	p = at(f->upper, "gone-parent/deleted");
	assert_int_equal(mknod(p, S_IFCHR | 0, makedev(0, 0)), 0);
	free(p);
	mkd(f->upper, "replaced", 0750);
	p = at(f->upper, "replaced");
	assert_int_equal(lsetxattr(p, OVL_OPAQUE, "y", 1, 0), 0);
	assert_int_equal(lsetxattr(p, "trusted.overlay.origin", "zz", 2, 0), 0);
	free(p);
	put(f->upper, "replaced/new", "new", 0644);
	p = at(f->upper, "null-like"); /* a real device node: not part of a layer */
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
	free(p);
}

static void test_whiteouts_to_tar(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;
	char *tar, *list;

	if (!is_root())
		skip();
	whiteout_upper(f);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	list = run_ok((const char *const[]){ "/usr/bin/tar", "-tf", tar, NULL });
	assert_string_equal(list, "gone-parent/\ngone-parent/.wh.deleted\nreplaced/\n"
			    "replaced/.wh..wh..opq\nreplaced/new\n");
	free(list), free(tar);
}

static void test_whiteouts_no_overlay_xattrs(void **state)
{
	struct fx *f = *state;
	char **env = img_tool_env(), *tar, *tail = NULL;
	struct err *e = NULL;
	int st;

	if (!is_root())
		skip();
	whiteout_upper(f);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	st = img_run((const char *const[]){ "/bin/grep", "-q", "-a", "trusted.overlay", tar, NULL },
		     (const char *const *)env, NULL, -1, 1024, &tail, &e);
	assert_int_equal(st, 1); /* grep: not found */
	xstrv_free(env);
	free(tail), free(tar);
	err_free(&e);
}

static void test_whiteouts_round_trip(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;
	struct stat st, before;
	char *tar, *p, v[4] = "";

	if (!is_root())
		skip();
	whiteout_upper(f);
	tar = layer_of(f, &e);
	assert_non_null(tar);
	extract(f, tar);
	before = lst(f->out, "gone-parent");
	assert_int_equal(img_layer_to_overlay(f->out, &e), 0);
	st = lst(f->out, "gone-parent/deleted");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
	assert_int_equal(lst(f->out, "gone-parent").st_mtime, before.st_mtime);
	p = at(f->out, "gone-parent/.wh.deleted");
	assert_true(access(p, F_OK) < 0);
	free(p);
	p = at(f->out, "replaced");
	assert_int_equal(lgetxattr(p, OVL_OPAQUE, v, sizeof(v)), 1);
	assert_int_equal(v[0], 'y');
	assert_true(lgetxattr(p, "trusted.overlay.origin", v, sizeof(v)) < 0);
	free(p);
	p = at(f->out, "replaced/.wh..wh..opq");
	assert_true(access(p, F_OK) < 0);
	free(p), free(tar);
}

static void test_to_overlay_edge_cases(void **state)
{
	struct fx *f = *state;
	struct err *e = NULL;
	char *p;

	if (!is_root())
		skip();
	/* the same layer holding the name: the whiteout is dropped */
	put(f->out, "both", "kept", 0644);
	put(f->out, ".wh.both", "", 0644);
	put(f->out, ".wh..wh.plnk", "", 0644); /* other reserved names: dropped */
	assert_int_equal(img_layer_to_overlay(f->out, &e), 0);
	assert_true(S_ISREG(lst(f->out, "both").st_mode));
	p = at(f->out, ".wh..wh.plnk");
	assert_true(access(p, F_OK) < 0);
	free(p);
	put(f->out, ".wh...", "", 0644); /* a whiteout of ".." */
	assert_true(img_layer_to_overlay(f->out, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
}

/* ---- image_commit on a scratch store ---- */

static char *base_tar(struct fx *f)
{
	char *src = at(f->root, "base-src"), *tar = at(f->root, "base.tar");

	assert_int_equal(mkdir(src, 0755), 0);
	mkd(src, "etc", 0755);
	put(src, "etc/hello", "base", 0644);
	put(src, "etc/old", "old", 0644);
	free(run_ok((const char *const[]){ "/usr/bin/tar", "-cf", tar, "-C", src, ".", NULL }));
	free(src);
	return tar;
}

static char *make_base(struct fx *f)
{
	static char *const cmd[] = { "/bin/true", NULL };
	struct img_config_in c = { .name = "base", .cmd = cmd, .user = "jovyan",
				   .home = "/home/jovyan", .created_s = 1700000000 };
	char *tar = base_tar(f), *md = NULL;
	struct err *e = NULL;

	if (img_store_add_tar(f->store, tar, &c, &md, &e) < 0)
		fail_msg("%s", e->msg);
	free(tar);
	return md;
}

static int count(struct fx *f, const char *sub)
{
	char *p = at(f->store, sub);
	DIR *d = opendir(p);
	struct dirent *de;
	int n = 0;

	free(p);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static const char *ann_of(const cJSON *m, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "annotations"), k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_committed(struct fx *f, const char *base_md, const char *md)
{
	struct image_info *ii = NULL;
	cJSON *m = NULL, *c = NULL, *ids, *hist;
	struct err *e = NULL;
	char *want = xasprintf("base@%s", base_md), *p;

	assert_int_equal(images_resolve(f->store, "snap", &ii, &e), 0);
	assert_string_equal(ii->manifest_digest, md);
	assert_string_equal(ii->cmd[0], "/bin/true");       /* the base's config */
	assert_non_null(ii->layers[1]);
	assert_null(ii->layers[2]);
	p = slurp(ii->layers[0], "etc/new");                 /* top first */
	assert_string_equal(p, "new");
	free(p);
	assert_true(S_ISCHR(lst(ii->layers[0], "etc/old").st_mode));
	assert_int_equal(img_store_read_image(f->store, "snap", &m, &c, NULL, &e), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "layers")), 2);
	ids = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "rootfs"), "diff_ids");
	assert_int_equal(cJSON_GetArraySize(ids), 2);
	hist = cJSON_GetObjectItem(c, "history");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 1), "created_by")
			    ->valuestring, "nbgate image commit");
	assert_string_equal(ann_of(m, IMAGES_ANN_REF), "snap");
	assert_string_equal(ann_of(m, ANN_COMMIT_BASE), want);
	assert_non_null(ann_of(m, ANN_COMMIT_CREATED));
	assert_string_equal(ann_of(m, "io.nbgate.server"), "alice/");
	cJSON_Delete(m), cJSON_Delete(c), free(want);
	image_info_free(ii);
}

static void test_commit_publish_and_rm(void **state)
{
	struct fx *f = *state;
	const char *ann[] = { "io.nbgate.server=alice/", NULL };
	char *base_md, *md = NULL, *p;
	struct err *e = NULL;

	if (!is_root())
		skip();
	base_md = make_base(f);
	mkd(f->upper, "etc", 0755);
	put(f->upper, "etc/new", "new", 0644);
	p = at(f->upper, "etc/old");
	assert_int_equal(mknod(p, S_IFCHR | 0, makedev(0, 0)), 0);
	free(p);
	if (image_commit(f->store, "base", f->upper, "snap", ann, &md, &e) < 0)
		fail_msg("%s", e->msg);
	check_committed(f, base_md, md);
	assert_int_equal(count(f, "blobs/sha256"), 6);
	assert_int_equal(count(f, "rootfs"), 2);
	assert_int_equal(count(f, "tmp"), 0);
	/* a commit of a commit, by digest */
	free(base_md);
	base_md = md, md = NULL;
	assert_int_equal(image_commit(f->store, base_md, f->upper, "snap2", NULL, &md, &e), 0);
	assert_int_equal(images_rm(f->store, "snap2", &e), 0);
	assert_int_equal(images_rm(f->store, "snap", &e), 0);
	assert_int_equal(count(f, "blobs/sha256"), 3); /* the base's: layer, config, manifest */
	assert_int_equal(count(f, "rootfs"), 1);
	free(base_md), free(md);
}

static char *index_text(struct fx *f)
{
	return slurp(f->store, "index.json");
}

static void test_commit_failures_leave_store(void **state)
{
	struct fx *f = *state;
	const char *reserved[] = { "io.nbgate.commit.base=x", NULL };
	const char *bad[] = { "=x", NULL };
	char *base_md, *idx, *idx2, *md = NULL;
	struct err *e = NULL;

	if (!is_root())
		skip();
	base_md = make_base(f);
	idx = index_text(f);
	put(f->upper, ".wh.x", "", 0644);
	assert_true(image_commit(f->store, "base", f->upper, "snap", NULL, &md, &e) < 0);
	assert_non_null(strstr(e->msg, "commit 'snap' onto 'base'"));
	assert_non_null(strstr(e->msg, ".wh.x"));
	err_free(&e);
	assert_true(image_commit(f->store, "nobase", f->upper, "snap", NULL, &md, &e) < 0);
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
	assert_true(image_commit(f->store, "base", f->upper, "Bad_Name", NULL, &md, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	assert_true(image_commit(f->store, "base", f->upper, "snap", reserved, &md, &e) < 0);
	assert_non_null(strstr(e->msg, "io.nbgate.commit.base"));
	err_free(&e);
	assert_true(image_commit(f->store, "base", f->upper, "snap", bad, &md, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	assert_null(md);
	idx2 = index_text(f);
	assert_string_equal(idx, idx2);
	assert_int_equal(count(f, "blobs/sha256"), 3);
	assert_int_equal(count(f, "rootfs"), 1);
	assert_int_equal(count(f, "tmp"), 0);
	free(idx), free(idx2), free(base_md);
}

/* A base layer removed while a commit ran: the publish is refused under
 * the store lock and nothing it moved stays in the store. */
static void test_publish_raw_missing_lower(void **state)
{
	struct fx *f = *state;
	char *base_md, *work = NULL, *tar, *lhex = NULL, *idx, *idx2;
	const char *mt = "{\"layers\":[{\"digest\":\"sha256:"
			 "1111111111111111111111111111111111111111111111111111111111111111\"}]}";
	const char *ct = "{\"rootfs\":{\"diff_ids\":[]}}";
	cJSON *ann = cJSON_CreateObject();
	struct err *e = NULL;
	int lock = -1;

	if (!is_root())
		skip();
	base_md = make_base(f);
	idx = index_text(f);
	assert_int_equal(img_store_mkwork(f->store, &work, &lock, &e), 0);
	tar = at(work, "layer.tar");
	free(run_ok((const char *const[]){ "/usr/bin/tar", "-cf", tar, "-C", f->upper, ".",
					   NULL }));
	assert_int_equal(img_sha256_file(tar, &lhex, NULL, &e), 0);
	cJSON_AddStringToObject(ann, IMAGES_ANN_REF, "snap");
	assert_true(img_store_publish_raw(f->store, work, tar, lhex, NULL, ct, mt, ann, NULL, &e) < 0);
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "1111"));
	err_free(&e);
	idx2 = index_text(f);
	assert_string_equal(idx, idx2);
	assert_int_equal(count(f, "blobs/sha256"), 3);
	assert_int_equal(count(f, "rootfs"), 1);
	close(lock);
	cJSON_Delete(ann);
	free(base_md), free(work), free(tar), free(lhex), free(idx), free(idx2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tar_header_ustar),
		cmocka_unit_test(test_tar_header_long_name),
		cmocka_unit_test(test_tar_header_record_length_boundary),
		cmocka_unit_test(test_tar_header_xattrs_binary),
		cmocka_unit_test(test_tar_header_big_numbers_and_limits),
		cmocka_unit_test_setup_teardown(test_layer_files_links_long_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_fifo_kept_socket_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_user_xattr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_reserved_name_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_missing_upper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteouts_to_tar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteouts_no_overlay_xattrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteouts_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_to_overlay_edge_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_publish_and_rm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failures_leave_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_raw_missing_lower, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
