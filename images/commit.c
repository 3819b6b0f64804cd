/*
 * images/commit.c: `nbgate image commit`, an overlayfs upper dir becomes
 * one new OCI layer on top of a base image (DESIGN.md "Checkpoint", commit
 * mode), and the way back: a layer's OCI whiteouts become overlay
 * whiteouts when the store unpacks it.
 *
 * Translation (https://github.com/opencontainers/image-spec/blob/main/layer.md):
 *   upper dir (overlayfs, trusted.* xattrs)    layer tar
 *   char device 0:0 `x`                        regular file `.wh.x`, empty
 *   empty file with trusted.overlay.whiteout   `.wh.x` (kernel >= 6.7 xwhiteouts)
 *   dir with trusted.overlay.opaque = "y"      the dir, then `dir/.wh..wh..opq`
 *   trusted.overlay.* xattrs                   dropped (overlay bookkeeping)
 *   trusted.overlay.redirect / .metacopy       refused: the data lives in a
 *                                              lower layer (nbgate's overlays
 *                                              run with both features off)
 *   other xattrs (security.capability, user.*) PAX SCHILY.xattr.<name>
 *   regular files, dirs, symlinks, fifos       as they are (mode incl. suid,
 *                                              numeric uid/gid, mtime in seconds)
 *   a second name of a regular file            tar hard link to the first name
 *   sockets, device nodes other than 0:0       skipped: a socket means nothing
 *                                              without its process, and the
 *                                              sandbox makes its own /dev
 *   names starting with `.wh.`                 refused (they would turn into
 *                                              whiteouts on the way back)
 * The tar is POSIX pax (ustar headers, pax records for names or link targets
 * longer than 100 bytes, large numbers and xattrs), uncompressed like every
 * layer of the store, names relative without "./", entries sorted by name.
 * Symlink targets are kept as they are: absolute ones resolve inside the
 * container.
 *
 * Blocking; never on the event loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "images/internal.h"

#define TAR_BLOCK 512
#define TAR_HEADER_MAX (1024 * 1024)   /* pax records of one entry (xattrs included) */
#define XATTR_LIST_MAX_B (64 * 1024)
#define XATTR_VALUE_MAX_B (64 * 1024)
/* Each level holds a directory fd open: bounded well below RLIMIT_NOFILE. */
#define WALK_DEPTH_MAX 256
#define LAYER_PATH_MAX 4096
#define ANN_MAX 64
#define ANN_LEN_MAX 4096
#define COPY_CHUNK (128 * 1024)
#define OVL_PREFIX "trusted.overlay."
#define OVL_OPAQUE "trusted.overlay.opaque"
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define ANN_COMMIT_BASE "io.nbgate.commit.base"
#define ANN_COMMIT_CREATED "io.nbgate.commit.created"

/* ---- tar headers ---- */

/* Writes v as width-1 octal digits and a NUL; -1 when it does not fit. */
static int put_octal(char *field, size_t width, uint64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);

	if (n < 0 || (size_t)n != width - 1)
		return -1;
	memcpy(field, tmp, width);
	return 0;
}

/* One pax record "LEN key=value\n"; LEN counts itself. */
static int pax_record(struct buf *b, const char *key, const char *val, size_t vlen)
{
	size_t base = strlen(key) + vlen + 3, len = base, digits = 0;

	for (;;) { /* the length's own digits are part of the length */
		size_t d = 0, v = len;

		do {
			d++;
			v /= 10;
		} while (v);
		if (d == digits)
			break;
		digits = d;
		len = base + d;
	}
	if (buf_appendf(b, "%zu %s=", len, key) < 0 || buf_append(b, val, vlen) < 0)
		return -1;
	return buf_append(b, "\n", 1);
}

static int pax_number(struct buf *b, const char *key, long long v)
{
	char s[32];

	snprintf(s, sizeof(s), "%lld", v);
	return pax_record(b, key, s, strlen(s));
}

/* The pax records e needs; b stays empty when the ustar header suffices. */
static int pax_records(struct buf *b, const struct img_tar_entry *e)
{
	int r = 0;

	if (strlen(e->name) > 100)
		r |= pax_record(b, "path", e->name, strlen(e->name));
	if (e->link && strlen(e->link) > 100)
		r |= pax_record(b, "linkpath", e->link, strlen(e->link));
	if (e->size > 077777777777LL)
		r |= pax_number(b, "size", (long long)e->size);
	if (e->uid > 07777777)
		r |= pax_number(b, "uid", (long long)e->uid);
	if (e->gid > 07777777)
		r |= pax_number(b, "gid", (long long)e->gid);
	if (e->mtime < 0 || e->mtime > 077777777777LL)
		r |= pax_number(b, "mtime", (long long)e->mtime);
	for (size_t i = 0; i < e->n_xattrs; i++) {
		cleanup_free char *k = xasprintf("SCHILY.xattr.%s", e->xattrs[i].name);

		r |= pax_record(b, k, e->xattrs[i].value, e->xattrs[i].len);
	}
	return r < 0 ? -1 : 0;
}

static uint64_t clamp_u(int64_t v, uint64_t max)
{
	return v < 0 ? 0 : (uint64_t)v > max ? max : (uint64_t)v;
}

/* One ustar block; numbers too large for it were given as pax records. */
static void ustar_block(char h[TAR_BLOCK], const char *name, char type, const char *link,
			uint32_t mode, uint64_t uid, uint64_t gid, int64_t size, int64_t mtime)
{
	unsigned sum = 0;

	memset(h, 0, TAR_BLOCK);
	memcpy(h, name, strnlen(name, 100));
	put_octal(h + 100, 8, mode & 07777);
	put_octal(h + 108, 8, uid > 07777777 ? 0 : uid);
	put_octal(h + 116, 8, gid > 07777777 ? 0 : gid);
	put_octal(h + 124, 12, clamp_u(size, 077777777777ULL));
	put_octal(h + 136, 12, clamp_u(mtime, 077777777777ULL));
	h[156] = type;
	if (link)
		memcpy(h + 157, link, strnlen(link, 100));
	memcpy(h + 257, "ustar", 6); /* magic "ustar\0", version "00" */
	h[263] = h[264] = '0';
	put_octal(h + 329, 8, 0);
	put_octal(h + 337, 8, 0);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < TAR_BLOCK; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum & 0777777); /* six digits, NUL, then the space */
	h[155] = ' ';
}

static int append_padded(struct buf *out, const char *p, size_t n)
{
	static const char zero[TAR_BLOCK];
	size_t pad = (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK;

	if (buf_append(out, p, n) < 0)
		return -1;
	return buf_append(out, zero, pad);
}

int img_tar_header(struct buf *out, const struct img_tar_entry *e, struct err **err)
{
	struct buf pax;
	char h[TAR_BLOCK];
	int r = 0;

	if (!e->name[0] || strlen(e->name) > LAYER_PATH_MAX ||
	    (e->link && strlen(e->link) > LAYER_PATH_MAX))
		return err_set(err, ENAMETOOLONG, "tar entry '%s': name or link longer than %d bytes",
			       e->name, LAYER_PATH_MAX);
	buf_init(&pax, TAR_HEADER_MAX);
	if (pax_records(&pax, e) < 0) {
		buf_release(&pax);
		return err_set(err, EMSGSIZE, "tar entry '%s': more than %d bytes of pax records "
			       "(xattrs)", e->name, TAR_HEADER_MAX);
	}
	if (pax.len > 0) {
		const char *base = strrchr(e->name, '/');
		cleanup_free char *pn = NULL;

		/* the name of a pax header block is informational (readers
		 * ignore it); a fixed one keeps layers reproducible */
		base = base && base[1] ? base + 1 : e->name;
		pn = xasprintf("PaxHeaders/%s", base);
		ustar_block(h, pn, 'x', NULL, 0644, 0, 0, (int64_t)pax.len, e->mtime);
		r = append_padded(out, h, TAR_BLOCK);
		if (r == 0)
			r = append_padded(out, pax.data, pax.len);
	}
	buf_release(&pax);
	ustar_block(h, e->name, e->type, e->link, e->mode, e->uid, e->gid,
		    e->type == '0' ? e->size : 0, e->mtime);
	if (r == 0)
		r = append_padded(out, h, TAR_BLOCK);
	if (r < 0)
		return err_set(err, EMSGSIZE, "tar entry '%s': header too large", e->name);
	return 0;
}

/* ---- writing the layer ---- */

struct tar_out {
	int fd;
	const char *path;  /* for errors */
	int64_t bytes;
};

static int tar_write(struct tar_out *t, const void *p, size_t n, struct err **err)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(t->fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set_errno(err, "write '%s'", t->path);
		c += w;
		n -= (size_t)w;
		t->bytes += w;
	}
	return 0;
}

static int tar_put_header(struct tar_out *t, const struct img_tar_entry *e, struct err **err)
{
	struct buf b;
	int r;

	buf_init(&b, 2 * TAR_HEADER_MAX);
	r = img_tar_header(&b, e, err);
	if (r == 0)
		r = tar_write(t, b.data, b.len, err);
	buf_release(&b);
	return r;
}

/* Exactly size bytes of src, then the padding to a whole block. */
static int tar_put_data(struct tar_out *t, int src, int64_t size, const char *what,
			struct err **err)
{
	static const char zero[TAR_BLOCK];
	cleanup_free char *chunk = xmalloc(COPY_CHUNK);
	int64_t left = size;

	while (left > 0) {
		size_t want = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;
		ssize_t n = read(src, chunk, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(err, "read '%s'", what);
		if (n == 0) /* the header already promised size bytes */
			return err_set(err, EIO, "read '%s': file shrank while committing", what);
		if (tar_write(t, chunk, (size_t)n, err) < 0)
			return -1;
		left -= n;
	}
	return tar_write(t, zero, (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK), err);
}

/* ---- walking the upper dir ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir fd dfd (without . and ..), sorted; owned vector. */
static int read_names(int dfd, const char *what, char ***out, struct err **err)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **v = xcalloc(1, sizeof(char *));
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		err_set_errno(err, "open '%s'", what);
		if (fd >= 0)
			close(fd);
		free(v);
		return -1;
	}
	for (errno = 0; (de = readdir(d)); errno = 0) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		v = xrealloc(v, (n + 2) * sizeof(char *));
		v[n++] = xstrdup(de->d_name);
		v[n] = NULL;
	}
	if (errno) {
		err_set_errno(err, "read '%s'", what);
		closedir(d);
		xstrv_free(v);
		return -1;
	}
	closedir(d);
	qsort(v, n, sizeof(char *), cmp_str);
	*out = v;
	return 0;
}

/* The overlay bookkeeping found in an entry's trusted.overlay.* xattrs. */
struct ovl_marks {
	bool opaque;       /* opaque = "y" */
	bool whiteout;     /* trusted.overlay.whiteout (xwhiteout) */
	bool redirect;
	bool metacopy;
};

struct xattrs {
	struct img_xattr *v;
	size_t n;
};

static void xattrs_clear(struct xattrs *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].name);
		free(x->v[i].value);
	}
	free(x->v);
	x->v = NULL;
	x->n = 0;
}

static void ovl_mark(struct ovl_marks *m, const char *name, const char *p)
{
	char v[4] = "";

	if (strcmp(name, OVL_OPAQUE) == 0) {
		ssize_t n = lgetxattr(p, name, v, sizeof(v) - 1);

		m->opaque = n == 1 && v[0] == 'y'; /* "x" only marks xwhiteouts inside */
	} else if (strcmp(name, OVL_PREFIX "whiteout") == 0) {
		m->whiteout = true;
	} else if (strcmp(name, OVL_PREFIX "redirect") == 0) {
		m->redirect = true;
	} else if (strcmp(name, OVL_PREFIX "metacopy") == 0) {
		m->metacopy = true;
	}
}

static int xattr_get(const char *p, const char *name, const char *what, struct xattrs *x,
		     struct err **err)
{
	cleanup_free char *val = xmalloc(XATTR_VALUE_MAX_B);
	ssize_t n = lgetxattr(p, name, val, XATTR_VALUE_MAX_B);

	if (n < 0 && errno == ENODATA)
		return 0; /* removed since the listing */
	if (n < 0)
		return err_set_errno(err, "read xattr '%s' of '%s'", name, what);
	x->v = xrealloc(x->v, (x->n + 1) * sizeof(*x->v));
	x->v[x->n].name = xstrdup(name);
	x->v[x->n].value = xmalloc((size_t)n + 1);
	memcpy(x->v[x->n].value, val, (size_t)n);
	x->v[x->n].len = (size_t)n;
	x->n++;
	return 0;
}

/* The xattrs of name in dfd to keep, and the overlay marks among the rest. */
static int read_xattrs(int dfd, const char *name, const char *what, struct xattrs *x,
		       struct ovl_marks *m, struct err **err)
{
	/* through /proc: symlinks have xattrs too and cannot be opened */
	cleanup_free char *p = xasprintf("/proc/self/fd/%d/%s", dfd, name);
	cleanup_free char *list = xmalloc(XATTR_LIST_MAX_B);
	ssize_t n = llistxattr(p, list, XATTR_LIST_MAX_B);

	memset(m, 0, sizeof(*m));
	if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		return 0;
	if (n < 0)
		return err_set_errno(err, "list xattrs of '%s'", what);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
		const char *k = list + i;

		if (strncmp(k, OVL_PREFIX, strlen(OVL_PREFIX)) == 0)
			ovl_mark(m, k, p);
		else if (xattr_get(p, k, what, x, err) < 0)
			return -1;
	}
	return 0;
}

struct hl_ent {
	dev_t dev;
	ino_t ino;
	char *name;
};

/* Open-addressing map (dev, ino) -> first layer name, for hard links. */
struct hl_map {
	struct hl_ent *v;
	size_t cap, n;
};

static size_t hl_slot(const struct hl_map *m, dev_t dev, ino_t ino)
{
	size_t h = ((size_t)ino * 0x9E3779B97F4A7C15ULL) ^ (size_t)dev;

	for (h &= m->cap - 1; m->v[h].name; h = (h + 1) & (m->cap - 1))
		if (m->v[h].dev == dev && m->v[h].ino == ino)
			break;
	return h;
}

static void hl_grow(struct hl_map *m)
{
	struct hl_map g = { .cap = m->cap ? m->cap * 2 : 64 };

	g.v = xcalloc(g.cap, sizeof(*g.v));
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].name)
			g.v[hl_slot(&g, m->v[i].dev, m->v[i].ino)] = m->v[i];
	g.n = m->n;
	free(m->v);
	*m = g;
}

/* The name already recorded for (dev, ino), or NULL after recording name. */
static const char *hl_get_or_add(struct hl_map *m, dev_t dev, ino_t ino, const char *name)
{
	size_t s;

	if ((m->n + 1) * 2 > m->cap)
		hl_grow(m);
	s = hl_slot(m, dev, ino);
	if (m->v[s].name)
		return m->v[s].name;
	m->v[s] = (struct hl_ent){ .dev = dev, .ino = ino, .name = xstrdup(name) };
	m->n++;
	return NULL;
}

static void hl_clear(struct hl_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].name);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

struct walk {
	const char *upper;
	struct tar_out tar;
	struct hl_map links;
};

/* One entry of the upper dir: its layer name, stat, xattrs, marks. */
struct ent {
	const char *rel;    /* parent's layer path, "" or ending in '/' */
	const char *name;
	char *path;         /* rel + name */
	char *what;         /* upper + "/" + path, for errors */
	struct stat st;
	struct xattrs x;
	struct ovl_marks m;
};

static struct img_tar_entry tar_entry_of(const struct ent *e, const char *name, char type)
{
	return (struct img_tar_entry){
		.name = name, .type = type, .mode = e->st.st_mode & 07777,
		.uid = e->st.st_uid, .gid = e->st.st_gid, .mtime = e->st.st_mtim.tv_sec,
		.xattrs = e->x.v, .n_xattrs = e->x.n,
	};
}

/* `.wh.<name>` next to where the deleted entry was. */
static int put_whiteout(struct walk *w, const struct ent *e, struct err **err)
{
	cleanup_free char *n = xasprintf("%s" WH_PREFIX "%s", e->rel, e->name);
	struct img_tar_entry t = { .name = n, .type = '0', .mode = 0, .mtime = e->st.st_mtim.tv_sec };

	return tar_put_header(&w->tar, &t, err);
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth, struct err **err);

static int put_dir(struct walk *w, int dfd, struct ent *e, int depth, struct err **err)
{
	cleanup_free char *dn = xasprintf("%s/", e->path);
	cleanup_close int fd = -1;
	struct img_tar_entry t = tar_entry_of(e, dn, '5');

	if (e->m.redirect)
		return err_set(err, EOPNOTSUPP, "'%s': a renamed directory of a lower layer "
			       "(overlay redirect_dir) cannot be committed", e->what);
	if (tar_put_header(&w->tar, &t, err) < 0)
		return -1;
	if (e->m.opaque) {
		cleanup_free char *o = xasprintf("%s/" WH_OPAQUE, e->path);
		struct img_tar_entry ot = { .name = o, .type = '0', .mtime = e->st.st_mtim.tv_sec };

		if (tar_put_header(&w->tar, &ot, err) < 0)
			return -1;
	}
	fd = openat(dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "open '%s'", e->what);
	return walk_dir(w, fd, dn, depth + 1, err);
}

static int put_file(struct walk *w, int dfd, struct ent *e, struct err **err)
{
	struct img_tar_entry t = tar_entry_of(e, e->path, '0');
	cleanup_close int fd = -1;
	const char *first;

	if (e->m.whiteout && e->st.st_size == 0)
		return put_whiteout(w, e, err);
	if (e->m.metacopy)
		return err_set(err, EOPNOTSUPP, "'%s': a metadata-only copy-up (overlay metacopy) "
			       "cannot be committed", e->what);
	if (e->st.st_nlink > 1 &&
	    (first = hl_get_or_add(&w->links, e->st.st_dev, e->st.st_ino, e->path))) {
		t.type = '1';
		t.link = first;
		t.xattrs = NULL; /* a hard link shares the first name's inode */
		t.n_xattrs = 0;
		return tar_put_header(&w->tar, &t, err);
	}
	fd = openat(dfd, e->name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "open '%s'", e->what);
	t.size = e->st.st_size;
	if (tar_put_header(&w->tar, &t, err) < 0)
		return -1;
	return tar_put_data(&w->tar, fd, e->st.st_size, e->what, err);
}

static int put_symlink(struct walk *w, int dfd, struct ent *e, struct err **err)
{
	char target[LAYER_PATH_MAX + 1];
	struct img_tar_entry t = tar_entry_of(e, e->path, '2');
	ssize_t n = readlinkat(dfd, e->name, target, sizeof(target));

	if (n < 0)
		return err_set_errno(err, "read link '%s'", e->what);
	if ((size_t)n >= sizeof(target))
		return err_set(err, ENAMETOOLONG, "'%s': link target longer than %d bytes", e->what,
			       LAYER_PATH_MAX);
	target[n] = '\0';
	t.link = target;
	return tar_put_header(&w->tar, &t, err);
}

static int put_entry(struct walk *w, int dfd, struct ent *e, int depth, struct err **err)
{
	struct img_tar_entry t;

	switch (e->st.st_mode & S_IFMT) {
	case S_IFDIR:
		return put_dir(w, dfd, e, depth, err);
	case S_IFREG:
		return put_file(w, dfd, e, err);
	case S_IFLNK:
		return put_symlink(w, dfd, e, err);
	case S_IFIFO:
		t = tar_entry_of(e, e->path, '6');
		return tar_put_header(&w->tar, &t, err);
	default:
		return 0; /* sockets and device nodes: see the top comment */
	}
}

static int walk_one(struct walk *w, int dfd, const char *rel, const char *name, int depth,
		    struct err **err)
{
	struct ent e = { .rel = rel, .name = name };
	int r;

	e.path = xasprintf("%s%s", rel, name);
	e.what = xasprintf("%s/%s", w->upper, e.path);
	if (fstatat(dfd, name, &e.st, AT_SYMLINK_NOFOLLOW) < 0)
		r = err_set_errno(err, "stat '%s'", e.what);
	else if (strlen(e.path) > LAYER_PATH_MAX - 2)
		r = err_set(err, ENAMETOOLONG, "'%s': path longer than %d bytes", e.what,
			    LAYER_PATH_MAX - 2);
	else if (strncmp(name, WH_PREFIX, strlen(WH_PREFIX)) == 0)
		r = err_set(err, EINVAL, "'%s': names starting with '" WH_PREFIX "' are reserved "
			    "for OCI whiteouts", e.what);
	else if (S_ISCHR(e.st.st_mode) && e.st.st_rdev == makedev(0, 0))
		r = put_whiteout(w, &e, err); /* overlay's mark of a deleted entry */
	else if (S_ISSOCK(e.st.st_mode) || S_ISCHR(e.st.st_mode) || S_ISBLK(e.st.st_mode))
		r = 0;
	else
		r = read_xattrs(dfd, name, e.what, &e.x, &e.m, err);
	if (r == 0 && (S_ISDIR(e.st.st_mode) || S_ISREG(e.st.st_mode) || S_ISLNK(e.st.st_mode) ||
		       S_ISFIFO(e.st.st_mode)))
		r = put_entry(w, dfd, &e, depth, err);
	xattrs_clear(&e.x);
	free(e.path);
	free(e.what);
	return r;
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth, struct err **err)
{
	cleanup_free char *what = xasprintf("%s/%s", w->upper, rel);
	char **names = NULL;
	int r = 0;

	if (depth > WALK_DEPTH_MAX)
		return err_set(err, ELOOP, "'%s': deeper than %d levels", what, WALK_DEPTH_MAX);
	if (read_names(dfd, what, &names, err) < 0)
		return -1;
	for (size_t i = 0; r == 0 && names[i]; i++)
		r = walk_one(w, dfd, rel, names[i], depth, err);
	xstrv_free(names);
	return r;
}

int img_layer_from_upper(const char *upper_dir, int tar_fd, const char *tar_path,
			 int64_t *size, struct err **err)
{
	static const char end[2 * TAR_BLOCK];
	struct walk w = { .upper = upper_dir, .tar = { .fd = tar_fd, .path = tar_path } };
	cleanup_close int fd = open(upper_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return err_set_errno(err, "open upper dir '%s'", upper_dir);
	r = walk_dir(&w, fd, "", 0, err);
	if (r == 0)
		r = tar_write(&w.tar, end, sizeof(end), err); /* two zero blocks end a tar */
	hl_clear(&w.links);
	if (r == 0 && size)
		*size = w.tar.bytes;
	return r;
}

/* ---- the way back: OCI whiteouts -> overlay whiteouts ---- */

static int ovl_dir(int dfd, const char *what, int depth, struct err **err);

static int ovl_whiteout(int dfd, const char *what, const char *name, struct err **err)
{
	const char *target = name + strlen(WH_PREFIX);
	struct stat st;

	if (unlinkat(dfd, name, 0) < 0)
		return err_set_errno(err, "remove '%s/%s'", what, name);
	if (strcmp(name, WH_OPAQUE) == 0) {
		if (fsetxattr(dfd, OVL_OPAQUE, "y", 1, 0) < 0)
			return err_set_errno(err, "mark '%s' opaque", what);
		return 0;
	}
	if (strncmp(target, WH_PREFIX, strlen(WH_PREFIX)) == 0)
		return 0; /* other reserved .wh..wh.* names (AUFS metadata): dropped */
	if (!target[0] || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
		return err_set(err, EINVAL, "'%s/%s': not a valid whiteout", what, name);
	/* the same layer holding the name wins over its whiteout (OCI layer.md),
	 * and in overlay terms it already hides the lower layers' entry */
	if (fstatat(dfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (mknodat(dfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
		return err_set_errno(err, "whiteout '%s/%s'", what, target);
	return 0;
}

static int ovl_entry(int dfd, const char *what, const char *name, int depth, bool *changed,
		     struct err **err)
{
	cleanup_free char *sub = xasprintf("%s/%s", what, name);
	cleanup_close int fd = -1;
	struct stat st;

	if (strncmp(name, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
		*changed = true;
		return ovl_whiteout(dfd, what, name, err);
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set_errno(err, "stat '%s'", sub);
	if (!S_ISDIR(st.st_mode))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "open '%s'", sub);
	return ovl_dir(fd, sub, depth + 1, err);
}

static int ovl_dir(int dfd, const char *what, int depth, struct err **err)
{
	char **names = NULL;
	bool changed = false;
	struct stat st;
	int r = 0;

	if (depth > WALK_DEPTH_MAX)
		return err_set(err, ELOOP, "'%s': deeper than %d levels", what, WALK_DEPTH_MAX);
	if (fstat(dfd, &st) < 0)
		return err_set_errno(err, "stat '%s'", what);
	if (read_names(dfd, what, &names, err) < 0)
		return -1;
	for (size_t i = 0; r == 0 && names[i]; i++)
		r = ovl_entry(dfd, what, names[i], depth, &changed, err);
	xstrv_free(names);
	if (r == 0 && changed) { /* tar restored the directory's mtime: keep it */
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, st.st_mtim };

		if (futimens(dfd, ts) < 0)
			return err_set_errno(err, "set mtime of '%s'", what);
	}
	return r;
}

int img_layer_to_overlay(const char *dir, struct err **err)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return err_set_errno(err, "open '%s'", dir);
	return ovl_dir(fd, dir, 0, err);
}

/* ---- image_commit ---- */

struct commit {
	const char *store, *base_ref, *upper, *new_ref;
	const char *const *ann;
	struct image_info *base;
	cJSON *manifest, *config;  /* the base's, extended in place */
	char *work, *tar, *lhex;
	int lock_fd;
	int64_t lsize, now;
};

static bool ann_reserved(const char *k, size_t klen)
{
	static const char *const reserved[] = { IMAGES_ANN_REF, IMAGES_ANN_CREATED, IMAGES_ANN_RECIPE,
						ANN_COMMIT_BASE, ANN_COMMIT_CREATED };

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == klen && strncmp(k, reserved[i], klen) == 0)
			return true;
	return false;
}

static int check_args(const struct commit *c, struct err **err)
{
	size_t i;

	if (!img_name_valid(c->new_ref))
		return err_set(err, EINVAL, "image name '%s' is not valid ([a-z0-9-], at most 63)",
			       c->new_ref);
	for (i = 0; c->ann && c->ann[i]; i++) {
		const char *a = c->ann[i], *eq = strchr(a, '=');

		if (!eq || eq == a || strlen(a) > ANN_LEN_MAX || !json_utf8_valid(a, strlen(a)))
			return err_set(err, EINVAL, "annotation '%.64s': expected key=value "
				       "(UTF-8, at most %d bytes)", a, ANN_LEN_MAX);
		if (ann_reserved(a, (size_t)(eq - a)))
			return err_set(err, EINVAL, "annotation '%.*s' is set by the commit itself",
				       (int)(eq - a), a);
	}
	if (i > ANN_MAX)
		return err_set(err, EINVAL, "more than %d annotations", ANN_MAX);
	return 0;
}

/* The base image, its layers present, and its manifest and config. */
static int load_base(struct commit *c, struct err **err)
{
	if (images_resolve(c->store, c->base_ref, &c->base, err) < 0)
		return err_wrap(err, "base image");
	for (int i = 0; c->base->layers[i]; i++)
		if (access(c->base->layers[i], F_OK) < 0)
			return err_set_errno(err, "base image '%s': layer '%s'", c->base_ref,
					     c->base->layers[i]);
	if (img_store_read_image(c->store, c->base->manifest_digest, &c->manifest, &c->config,
				 NULL, err) < 0)
		return err_wrap(err, "base image");
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c->manifest, "layers")) ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(c->config, "rootfs"), "diff_ids")))
		return err_set(err, EINVAL, "base image '%s': manifest without layers or config "
			       "without rootfs.diff_ids", c->base_ref);
	return 0;
}

static int write_layer(struct commit *c, struct err **err)
{
	cleanup_close int fd = -1;

	c->tar = xasprintf("%s/layer.tar", c->work);
	fd = open(c->tar, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set_errno(err, "create '%s'", c->tar);
	if (img_layer_from_upper(c->upper, fd, c->tar, NULL, err) < 0)
		return -1;
	if (fsync(fd) < 0)
		return err_set_errno(err, "write '%s'", c->tar);
	return img_sha256_file(c->tar, &c->lhex, &c->lsize, err);
}

static cJSON *descriptor_new(const char *media, const char *hex, int64_t size)
{
	cJSON *d = cJSON_CreateObject();
	cleanup_free char *dg = xasprintf("sha256:%s", hex);

	cJSON_AddStringToObject(d, "mediaType", media);
	cJSON_AddStringToObject(d, "digest", dg);
	cJSON_AddNumberToObject(d, "size", (double)size);
	return d;
}

static cJSON *commit_annotations(const struct commit *c, const char *created)
{
	cJSON *a = cJSON_CreateObject();
	cleanup_free char *base = xasprintf("%s@%s", c->base->name, c->base->manifest_digest);

	for (size_t i = 0; c->ann && c->ann[i]; i++) {
		const char *eq = strchr(c->ann[i], '=');
		cleanup_free char *k = xstrndup(c->ann[i], (size_t)(eq - c->ann[i]));

		cJSON_DeleteItemFromObjectCaseSensitive(a, k); /* the last one wins */
		cJSON_AddStringToObject(a, k, eq + 1);
	}
	cJSON_AddStringToObject(a, IMAGES_ANN_REF, c->new_ref);
	cJSON_AddStringToObject(a, ANN_COMMIT_BASE, base);
	cJSON_AddStringToObject(a, ANN_COMMIT_CREATED, created);
	cJSON_AddStringToObject(a, IMAGES_ANN_CREATED, created);
	return a;
}

/* The base config plus the new diff id and a history entry. Owned text. */
static char *extend_config(struct commit *c, const char *created)
{
	cJSON *rootfs = cJSON_GetObjectItemCaseSensitive(c->config, "rootfs");
	cJSON *hist = cJSON_GetObjectItemCaseSensitive(c->config, "history"), *h;
	cleanup_free char *diff = xasprintf("sha256:%s", c->lhex);
	cleanup_free char *comment = xasprintf("upper dir committed onto %s@%s", c->base->name,
					       c->base->manifest_digest);

	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(rootfs, "diff_ids"),
			     cJSON_CreateString(diff));
	cJSON_DeleteItemFromObjectCaseSensitive(c->config, "created");
	cJSON_AddStringToObject(c->config, "created", created);
	if (!cJSON_IsArray(hist)) {
		cJSON_DeleteItemFromObjectCaseSensitive(c->config, "history");
		hist = cJSON_AddArrayToObject(c->config, "history");
	}
	h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "created", created);
	cJSON_AddStringToObject(h, "created_by", "nbgate image commit");
	cJSON_AddStringToObject(h, "comment", comment);
	cJSON_AddItemToArray(hist, h);
	return json_print_pretty(c->config);
}

/* The base manifest with the new config and the new top layer. */
static char *extend_manifest(struct commit *c, const char *ctext, const cJSON *ann)
{
	cleanup_free char *chex = img_sha256_hex(ctext, strlen(ctext));

	cJSON_DeleteItemFromObjectCaseSensitive(c->manifest, "config");
	cJSON_AddItemToObject(c->manifest, "config",
			      descriptor_new(IMAGES_CONFIG_MEDIA, chex, (int64_t)strlen(ctext)));
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(c->manifest, "layers"),
			     descriptor_new(IMAGES_LAYER_MEDIA, c->lhex, c->lsize));
	cJSON_DeleteItemFromObjectCaseSensitive(c->manifest, "annotations");
	cJSON_AddItemToObject(c->manifest, "annotations", cJSON_Duplicate(ann, true));
	return json_print_pretty(c->manifest);
}

static int publish(struct commit *c, char **digest, struct err **err)
{
	cleanup_free char *created = img_time_rfc3339(c->now);
	cleanup_free char *ctext = extend_config(c, created), *mtext = NULL;
	cleanup_json cJSON *ann = commit_annotations(c, created);

	mtext = extend_manifest(c, ctext, ann);
	/* rootfs NULL: the store unpacks the tar itself, so the overlay lower
	 * dir is what any other reader of the layer would get */
	return img_store_publish_raw(c->store, c->work, c->tar, c->lhex, NULL, ctext, mtext, ann,
				     digest, err);
}

static int commit_steps(struct commit *c, char **digest, struct err **err)
{
	if (check_args(c, err) < 0 || load_base(c, err) < 0)
		return -1;
	if (img_store_mkwork(c->store, &c->work, &c->lock_fd, err) < 0)
		return -1;
	if (write_layer(c, err) < 0)
		return err_wrap(err, "layer");
	return publish(c, digest, err);
}

int image_commit(const char *store, const char *base_ref, const char *upper_dir,
		 const char *new_ref, const char *const *annotations, char **out_digest,
		 struct err **err)
{
	struct commit c = { .store = store, .base_ref = base_ref, .upper = upper_dir,
			    .new_ref = new_ref, .ann = annotations, .lock_fd = -1,
			    .now = time(NULL) };
	char *digest = NULL;
	struct err *e = NULL;
	int r = commit_steps(&c, &digest, err);

	if (c.work && img_rmtree(c.work, &e) < 0)
		err_free(&e); /* the next build or commit removes what is left */
	if (c.lock_fd >= 0)
		close(c.lock_fd);
	image_info_free(c.base);
	cJSON_Delete(c.manifest);
	cJSON_Delete(c.config);
	free(c.work), free(c.tar), free(c.lhex);
	if (r < 0) {
		free(digest);
		return err_wrap(err, "commit '%s' onto '%s'", new_ref, base_ref);
	}
	if (out_digest)
		*out_digest = digest;
	else
		free(digest);
	return 0;
}
