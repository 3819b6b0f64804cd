/*
 * images/util.c: running build tools, removing trees, hashing and atomic
 * writes for the image store. Blocking; not for the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/proc.h"
#include "common/xalloc.h"
#include "images/internal.h"

static void write_all(int fd, const char *p, size_t n)
{
	while (fd >= 0 && n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* progress is best effort: a closed terminal must not fail a build */
		p += w;
		n -= (size_t)w;
	}
}

void img_progress(int fd, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	write_all(fd, s, strlen(s));
	write_all(fd, "\n", 1);
	free(s);
}

/* Keeps the last `max` bytes seen in a ring (tail of a tool's output). */
struct tail {
	char *data;
	size_t max, len, pos;
};

static void tail_add(struct tail *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		t->data[t->pos] = p[i];
		t->pos = (t->pos + 1) % t->max;
		if (t->len < t->max)
			t->len++;
	}
}

static char *tail_take(struct tail *t)
{
	char *s = xmalloc(t->len + 1);
	size_t start = (t->pos + t->max - t->len) % t->max;

	for (size_t i = 0; i < t->len; i++)
		s[i] = t->data[(start + i) % t->max];
	s[t->len] = '\0';
	return s;
}

static int wait_status(pid_t pid)
{
	int st = 0;

	if (proc_reap(pid, &st, true) < 0)
		return 255;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int img_run(const char *const *argv, const char *const *envp, const char *cwd,
	    int progress_fd, size_t tail_max, char **tail, struct err **err)
{
	struct tail t = { .max = tail_max ? tail_max : 1 };
	struct proc_opts o = { .argv = argv, .envp = envp, .cwd = cwd, .stdin_fd = -1 };
	char chunk[8192];
	int fds[2], r;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_set_errno(err, "run '%s': pipe", argv[0]);
	o.stdout_fd = o.stderr_fd = fds[1];
	r = proc_spawn(&o, &pid, err);
	close(fds[1]);
	if (r < 0) {
		close(fds[0]);
		return r;
	}
	t.data = xmalloc(t.max);
	for (;;) { /* ends at EOF: when the tool and everything it started exit */
		ssize_t n = read(fds[0], chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		write_all(progress_fd, chunk, (size_t)n);
		tail_add(&t, chunk, (size_t)n);
	}
	close(fds[0]);
	r = wait_status(pid);
	if (tail)
		*tail = tail_take(&t);
	free(t.data);
	return r;
}

char *img_tail_summary(const char *tail, int max_lines)
{
	const char *end, *p;
	int lines = 0;
	char *s, *q;

	if (!tail)
		return xstrdup("");
	end = tail + strlen(tail);
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	for (p = end; p > tail; p--) {
		if (p[-1] == '\n' && ++lines >= max_lines)
			break;
	}
	s = xstrndup(p, (size_t)(end - p));
	for (q = s; *q; q++) { /* one line for an error message */
		if (*q == '\n')
			*q = '|';
		else if ((unsigned char)*q < 0x20)
			*q = ' ';
	}
	return s;
}

char **img_tool_env(void)
{
	static const char *const pass[] = { "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
					    "HTTPS_PROXY", "NO_PROXY", "TERM" };
	char **v = xcalloc(4 + sizeof(pass) / sizeof(pass[0]) + 1, sizeof(char *));
	size_t n = 0;

	v[n++] = xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	v[n++] = xstrdup("HOME=/root");
	v[n++] = xstrdup("LC_ALL=C.UTF-8");
	v[n++] = xstrdup("DEBIAN_FRONTEND=noninteractive");
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
		const char *e = getenv(pass[i]);

		if (e)
			v[n++] = xasprintf("%s=%s", pass[i], e);
	}
	v[n] = NULL;
	return v;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int r = flag == FTW_DP ? rmdir(path) : unlink(path);

	if (r < 0 && errno != ENOENT)
		return errno;
	return 0;
}

int img_rmtree(const char *path, struct err **err)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_set_errno(err, "remove '%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return err_set_errno(err, "remove '%s'", path);
		return 0;
	}
	/* FTW_PHYS: symlinks are removed, never followed; FTW_MOUNT: a mount
	 * left inside a crashed build's rootfs is not descended into (its
	 * rmdir then fails with EBUSY, which is reported). */
	r = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r < 0)
		return err_set_errno(err, "remove '%s'", path);
	if (r > 0) {
		errno = r;
		return err_set_errno(err, "remove '%s'", path);
	}
	return 0;
}

int img_sha256_file(const char *path, char **hex, int64_t *size, struct err **err)
{
	crypto_hash_sha256_state st;
	unsigned char md[crypto_hash_sha256_BYTES];
	char out[2 * sizeof(md) + 1];
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	cleanup_free char *chunk = xmalloc(1 << 16);
	int64_t total = 0;

	if (fd < 0)
		return err_set_errno(err, "open '%s'", path);
	if (sodium_init() < 0)
		return err_set(err, EIO, "sha256: libsodium init failed");
	crypto_hash_sha256_init(&st);
	for (;;) {
		ssize_t n = read(fd, chunk, 1 << 16);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(err, "read '%s'", path);
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, (unsigned char *)chunk, (size_t)n);
		total += n;
	}
	crypto_hash_sha256_final(&st, md);
	sodium_bin2hex(out, sizeof(out), md, sizeof(md));
	*hex = xstrdup(out);
	if (size)
		*size = total;
	return 0;
}

char *img_sha256_hex(const void *p, size_t n)
{
	unsigned char md[crypto_hash_sha256_BYTES];
	char out[2 * sizeof(md) + 1];

	if (sodium_init() < 0)
		abort(); /* as common/rand.c: no safe fallback */
	crypto_hash_sha256(md, p, n);
	sodium_bin2hex(out, sizeof(out), md, sizeof(md));
	return xstrdup(out);
}

int img_write_atomic(const char *path, const void *data, size_t n, struct err **err)
{
	cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	const char *p = data;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return err_set_errno(err, "create '%s'", tmp);
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err_set_errno(err, "write '%s'", tmp);
			goto fail;
		}
		p += w;
		n -= (size_t)w;
	}
	if (fsync(fd) < 0) {
		err_set_errno(err, "fsync '%s'", tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		err_set_errno(err, "rename '%s'", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
fail:
	close(fd);
	unlink(tmp);
	return -1;
}

char *img_sh_quote(const char *s)
{
	size_t n = 2, i;
	char *q, *p;

	for (i = 0; s[i]; i++)
		n += s[i] == '\'' ? 4 : 1;
	q = p = xmalloc(n + 1);
	*p++ = '\'';
	for (i = 0; s[i]; i++) {
		if (s[i] == '\'') {
			memcpy(p, "'\\''", 4);
			p += 4;
		} else {
			*p++ = s[i];
		}
	}
	*p++ = '\'';
	*p = '\0';
	return q;
}

char *img_time_rfc3339(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char b[32];

	gmtime_r(&tt, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(b);
}

int64_t img_time_parse(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return -1;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return (int64_t)timegm(&tm);
}

static int64_t tree_bytes;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_F || flag == FTW_SL || flag == FTW_D || flag == FTW_DP)
		tree_bytes += (int64_t)st->st_blocks * 512;
	return 0;
}

int64_t img_tree_size(const char *path)
{
	/* not thread-safe (nftw has no user pointer); the CLI only */
	tree_bytes = 0;
	if (nftw(path, du_one, 32, FTW_PHYS | FTW_MOUNT) < 0)
		return -1;
	return tree_bytes;
}
