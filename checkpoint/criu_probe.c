/*
 * checkpoint/criu_probe: is CRIU usable for sandbox checkpoints here?
 * (CRIU kerndat / crun criu_check_version in spirit: ask the tool, do not
 * guess from the kernel version.) See checkpoint.h.
 */
#define LOG_PREFIX "checkpoint/criu: "

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define RUN_TIMEOUT_MS 10000
#define RUN_OUTPUT_MAX (64 * 1024)

/*
 * What a sandbox dump needs from the kernel, beyond the category-1 set
 * that plain `criu check` already demands. Needed: nbgate's sandboxes
 * have seccomp filters, their own cgroup and mount namespaces, and
 * loopback TCP between the Jupyter server and its kernels (dumped with
 * --tcp-established, locked with nftables: this host has no iptables).
 * Wanted: speed or robustness, with a fallback. pidfd_store is left out:
 * it serves iterative pre-dumps with a long-lived page server, and those
 * need soft-dirty tracking (mem_dirty_track), which this kernel lacks.
 */
static const struct checkpoint_criu_feature features[] = {
	{ "seccomp_suspend", true, "suspend the sandbox's seccomp filter while CRIU's parasite runs" },
	{ "seccomp_filters", true, "dump the sandbox's seccomp filter to restore it" },
	{ "cgroupns", true, "sandboxes have their own cgroup namespace" },
	{ "mnt_id", true, "map open files to the sandbox's mounts (overlay root, binds)" },
	{ "network_lock_nftables", true,
	  "lock the loopback TCP links (server <-> kernels) during --tcp-established" },
	{ "kcmp_epoll", false, "epoll sets whose fds were dup'ed or closed (tornado, zmq)" },
	{ "clone3_set_tid", false, "restore PIDs with clone3 instead of racing ns_last_pid" },
	{ "uffd", false, "lazy restore (page server + userfaultfd): the lever on resume time" },
	{ "uffd-noncoop", false, "lazy restore of trees that fork or mmap after resume" },
	{ "mem_dirty_track", false, "soft-dirty pages: incremental pre-dump before the freeze" },
};

const struct checkpoint_criu_feature *checkpoint_criu_features(int *n)
{
	*n = (int)(sizeof(features) / sizeof(features[0]));
	return features;
}

/* ---- parsers (pure) ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* 1-3 digits at *p into *out, *p advanced; -1 for none or too many. */
static int parse_part(const char **p, uint32_t *out)
{
	int digits = 0;

	*out = 0;
	while (**p >= '0' && **p <= '9') {
		if (++digits > 3)
			return -1;
		*out = *out * 10 + (uint32_t)(**p - '0');
		(*p)++;
	}
	return digits ? 0 : -1;
}

/* Parses "X.Y[.Z]" from s up to end of line (blanks allowed after);
 * *len is the length of the version text. */
static int parse_dotted(const char *s, uint32_t *num, size_t *len)
{
	uint32_t part[3] = { 0, 0, 0 };
	const char *p = s;
	int n = 0;

	for (;;) {
		if (parse_part(&p, &part[n++]) < 0)
			return -1;
		if (*p != '.')
			break;
		if (n == 3) /* a fourth part */
			return -1;
		p++;
	}
	if (n < 2) /* "4" alone */
		return -1;
	*len = (size_t)(p - s);
	while (is_blank(*p))
		p++;
	if (*p != '\n' && *p != '\0')
		return -1;
	*num = CHECKPOINT_CRIU_VERSION(part[0], part[1], part[2]);
	return 0;
}

int checkpoint_criu_parse_version(const char *out, char *buf, size_t n, uint32_t *num)
{
	static const char key[] = "Version:";
	const char *line = out;

	while (line && *line) {
		if (strncmp(line, key, sizeof(key) - 1) == 0) {
			const char *v = line + sizeof(key) - 1;
			size_t len;

			while (*v == ' ' || *v == '\t')
				v++;
			if (parse_dotted(v, num, &len) < 0 || len + 1 > n)
				return -1;
			memcpy(buf, v, len);
			buf[len] = '\0';
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

/* The line at *line without its end-of-line and trailing blanks, in
 * *len; *line moves to the next line (NULL after the last). */
static const char *next_line(const char **line, size_t *len)
{
	const char *l = *line, *end = strchr(l, '\n');

	*len = end ? (size_t)(end - l) : strlen(l);
	while (*len > 0 && is_blank(l[*len - 1]))
		(*len)--;
	*line = end && end[1] ? end + 1 : NULL;
	return l;
}

static bool starts_with(const char *s, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len >= pl && memcmp(s, prefix, pl) == 0;
}

/* "Looks good." exactly, or the --extra verdict "Looks good but ..." */
static bool is_good_verdict(const char *s, size_t len)
{
	return (len == 11 && memcmp(s, "Looks good.", 11) == 0) ||
	       starts_with(s, len, "Looks good but ");
}

/* The line that best says why `criu check` failed; NULL when none. The
 * first "Error" line wins; "Warn" lines come last because criu prints
 * harmless ones on every run here (hardware breakpoints, kdat cache). */
static char *first_failure_line(const char *out)
{
	const char *pick[2] = { NULL, NULL }, *line = *out ? out : NULL; /* other, warn */
	size_t pick_len[2] = { 0, 0 }, len;

	while (line) {
		const char *l = next_line(&line, &len);
		int k = starts_with(l, len, "Warn") ? 1 : 0;

		if (starts_with(l, len, "Error"))
			return xstrndup(l, len);
		if (!pick[k] && len > 0 && !starts_with(l, len, "Does not look good") &&
		    !is_good_verdict(l, len)) {
			pick[k] = l;
			pick_len[k] = len;
		}
	}
	for (int k = 0; k < 2; k++)
		if (pick[k])
			return xstrndup(pick[k], pick_len[k]);
	return NULL;
}

static bool has_good_verdict(const char *out)
{
	const char *line = *out ? out : NULL;
	size_t len;

	while (line) {
		const char *l = next_line(&line, &len);

		if (is_good_verdict(l, len))
			return true;
	}
	return false;
}

static char *describe_status(int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return xasprintf("criu check killed by signal %d", WTERMSIG(wstatus));
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0)
		return xasprintf("criu check exited with status %d", WEXITSTATUS(wstatus));
	return xstrdup("criu check printed no verdict");
}

bool checkpoint_criu_parse_check(const char *out, int wstatus, char **first_error)
{
	bool exited0 = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	char *why;

	if (exited0 && has_good_verdict(out))
		return true;
	if (!first_error)
		return false;
	why = exited0 ? NULL : first_failure_line(out);
	*first_error = why ? why : describe_status(wstatus);
	return false;
}

/* ---- running criu ---- */

/* Reads fd until EOF or the deadline; keeps the first RUN_OUTPUT_MAX bytes
 * and drains the rest so that the child never blocks on a full pipe.
 * Returns 0 at EOF, -ETIMEDOUT at the deadline. */
static int read_until_eof(int fd, int64_t deadline, char *buf, size_t *len)
{
	char sink[4096] = { 0 };

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - time_mono_ms();
		char *dst = *len < RUN_OUTPUT_MAX ? buf + *len : sink;
		size_t room = *len < RUN_OUTPUT_MAX ? RUN_OUTPUT_MAX - *len : sizeof(sink);
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!p.revents)
			continue;
		n = read(fd, dst, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (dst == buf + *len)
			*len += (size_t)n;
	}
}

/* Waits for pid until the deadline (the pipe is closed, so it is exiting). */
static int reap_until(pid_t pid, int64_t deadline, int *wstatus)
{
	for (;;) {
		int r = proc_reap(pid, wstatus, false);

		if (r != 0)
			return r < 0 ? r : 0;
		if (time_mono_ms() >= deadline)
			return -ETIMEDOUT;
		usleep(10 * 1000);
	}
}

/* Runs argv with a minimal environment; *out gets stdout+stderr (owned,
 * NUL-terminated), *wstatus the wait status. */
static int run_capture(const char *const *argv, char **out, int *wstatus, struct err **err)
{
	static const char *const envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					    "LANG=C", NULL };
	int64_t deadline = time_mono_ms() + RUN_TIMEOUT_MS;
	cleanup_free char *buf = xmalloc(RUN_OUTPUT_MAX + 1);
	cleanup_close int rd = -1;
	int p[2], r;
	size_t len = 0;
	pid_t pid;

	*out = NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		err_set_errno(err, "pipe");
		return -1;
	}
	rd = p[0];
	struct proc_opts po = { .argv = argv, .envp = envp, .stdin_fd = -1, .stdout_fd = p[1],
				.stderr_fd = p[1], .new_session = true };
	r = proc_spawn(&po, &pid, err);
	close(p[1]);
	if (r < 0)
		return -1;
	r = read_until_eof(rd, deadline, buf, &len);
	if (r == 0)
		r = reap_until(pid, deadline, wstatus);
	if (r < 0) {
		proc_kill_and_reap(pid, 200);
		err_set(err, -r, "'%s %s': %s", argv[0], argv[1] ? argv[1] : "",
			r == -ETIMEDOUT ? "timed out" : strerror(-r));
		return -1;
	}
	buf[len] = '\0';
	*out = steal_ptr(&buf);
	return 0;
}

/* ---- the probe ---- */

static int probe_version(const char *criu, struct checkpoint_criu_info *ci, struct err **err)
{
	const char *argv[] = { criu, "--version", NULL };
	cleanup_free char *out = NULL;
	int st;

	if (run_capture(argv, &out, &st, err) < 0)
		return -1;
	if (checkpoint_criu_parse_version(out, ci->version, sizeof(ci->version),
					  &ci->version_num) < 0)
		return err_set(err, EPROTO, "'%s --version' printed no version (is it CRIU?)", criu);
	ci->version_ok = ci->version_num >= CHECKPOINT_CRIU_MIN_VERSION;
	return 0;
}

/* `criu check`; a failure to run it at all is reported as its error. */
static void probe_check(const char *criu, struct checkpoint_criu_info *ci)
{
	const char *argv[] = { criu, "check", NULL };
	cleanup_free char *out = NULL;
	struct err *e = NULL;
	int st = 0;

	if (run_capture(argv, &out, &st, &e) < 0) {
		ci->check_error = xstrdup(e->msg);
		err_free(&e);
		return;
	}
	ci->check_ok = checkpoint_criu_parse_check(out, st, &ci->check_error);
}

static bool probe_feature(const char *criu, const char *name)
{
	const char *argv[] = { criu, "check", "--feature", name, NULL };
	cleanup_free char *out = NULL;
	struct err *e = NULL;
	int st = 0;

	if (run_capture(argv, &out, &st, &e) < 0) {
		err_free(&e);
		return false;
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, " is supported") != NULL;
}

static char *missing_needed(const struct checkpoint_criu_info *ci)
{
	char *s = NULL;
	int i, n;
	const struct checkpoint_criu_feature *f = checkpoint_criu_features(&n);

	for (i = 0; i < n; i++) {
		char *t;

		if (!f[i].needed || (ci->features & (1u << i)))
			continue;
		t = xasprintf("%s%s%s", s ? s : "", s ? ", " : "", f[i].name);
		free(s);
		s = t;
	}
	return s;
}

static void judge(struct checkpoint_criu_info *ci)
{
	cleanup_free char *miss = NULL;

	if (!ci->version_ok)
		ci->reason = xasprintf("criu %s is older than 4.2 (run `make criu`)", ci->version);
	else if (!ci->check_ok)
		ci->reason = xasprintf("criu check fails: %s", ci->check_error);
	else if ((miss = missing_needed(ci)) != NULL)
		ci->reason = xasprintf("kernel lacks what sandbox dumps need: %s", miss);
	ci->usable = ci->reason == NULL;
}

int checkpoint_criu_probe(const char *criu_path, struct checkpoint_criu_info *out,
			  struct err **err)
{
	int i, n;
	const struct checkpoint_criu_feature *f = checkpoint_criu_features(&n);

	memset(out, 0, sizeof(*out));
	if (probe_version(criu_path, out, err) < 0)
		return err_wrap(err, "probe criu");
	probe_check(criu_path, out);
	/* with a failing check every feature probe would fail the same way */
	for (i = 0; out->check_ok && i < n; i++)
		if (probe_feature(criu_path, f[i].name))
			out->features |= 1u << i;
	judge(out);
	return 0;
}

void checkpoint_criu_info_release(struct checkpoint_criu_info *ci)
{
	if (!ci)
		return;
	free(ci->check_error);
	free(ci->reason);
	memset(ci, 0, sizeof(*ci));
}
