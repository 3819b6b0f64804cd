/*
 * activity: the activity model (see activity.h).
 */
#define LOG_PREFIX "gateway/activity: "

#include "gateway/activity.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/proc.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/config.h"
#include "gateway/gw.h"
#include "gateway/route.h"
#include "spawner/spawner.h"

/* ---- classifiers ---- */

/*
 * What an idle open JupyterLab tab requests by itself. Recorded from a real
 * tab: JupyterLab 4.0 of the `jupyterlab` image (Debian trixie), driven by
 * Playwright + chromium through nbgate (t6210's setup, the login and spawn
 * of tests/browser/sandbox.test.mjs), a notebook open with a kernel that
 * had run one cell, then 130 s untouched (issue 4, notes/activity.md):
 *   every 10 s  GET api/kernels, api/sessions, api/terminals and
 *               api/contents/<the file browser's directory>?content=1
 *   every 60 s  GET api/kernelspecs, api/me
 *   WebSocket   api/events/subscribe: the server pushes a contents_service
 *               "get" event for each contents poll (so it never counts)
 *   kernel WS   nothing after the connect exchange (about 1 s)
 *   once        PUT api/contents/<notebook> 120 s after the last edit
 *               (autosave of the dirty notebook: counted, it is the user's
 *               work being saved) with GET api/contents/<nb>/checkpoints
 * Also listed, from JupyterLab's sources and the issue: api/status,
 * lab/api/settings and lab/api/workspaces (read at load and on reconnect)
 * and api/collaboration (jupyter-collaboration, not in the image: its
 * awareness pings every 15 s would otherwise keep every tab alive).
 * Only GET/HEAD: every write (PUT, POST, PATCH, DELETE) counts.
 */
static const char *const poll_prefixes[] = {
	"/api/kernels", "/api/sessions", "/api/terminals", "/api/kernelspecs",
	"/api/contents", "/api/me", "/api/status", "/api/events", "/api/collaboration",
	"/lab/api/settings", "/lab/api/workspaces", NULL,
};

/* p equals prefix, or continues it with a new segment (whole segments). */
static bool under(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Skips one "/segment" of a canonical path; p points at its '/'. */
static const char *skip_segment(const char *p)
{
	if (*p != '/')
		return p;
	p++;
	while (*p && *p != '/')
		p++;
	return p;
}

const char *gw_activity_subpath(const char *encoded, const char *server)
{
	const char *p = encoded;

	if (!p)
		return "";
	p = skip_segment(skip_segment(p)); /* "/user/<name>" */
	if (server && *server)
		p = skip_segment(p);
	return p;
}

/* /api/kernels/<id>/channels: the kernel's WebSocket. */
static bool is_kernel_channels(const char *sub)
{
	const char *p;

	if (!under(sub, "/api/kernels") || sub[12] != '/')
		return false;
	p = skip_segment(sub + 12);
	return strcmp(p, "/channels") == 0;
}

bool gw_activity_http_counts(const char *method, const char *subpath)
{
	if (!method || !subpath)
		return true;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return true;
	for (int i = 0; poll_prefixes[i]; i++)
		if (under(subpath, poll_prefixes[i]))
			return false; /* includes the kernel channels upgrade */
	return true;
}

bool gw_activity_ws_counts(const char *subpath, int64_t age_ms)
{
	if (!subpath)
		return true;
	if (under(subpath, "/api/events"))
		return false;
	if (is_kernel_channels(subpath))
		return age_ms >= GW_ACTIVITY_WS_SETTLE_MS;
	return true;
}

/* ---- proxy hooks ---- */

static void touch_proxy(struct gw *gw, const char *user, const char *server, int64_t now_ms)
{
	struct spawner_server *srv;

	if (!gw || !gw->spawner || !user || !server)
		return;
	srv = spawner_server_find(gw->spawner, user, server);
	if (srv)
		spawner_server_touch(gw->spawner, srv, now_ms, "proxy");
}

void gw_activity_http(struct gw *gw, const char *user, const char *server, const char *method,
		      const char *encoded_path, int64_t now_ms)
{
	if (gw_activity_http_counts(method, gw_activity_subpath(encoded_path, server)))
		touch_proxy(gw, user, server, now_ms);
}

void gw_activity_ws_frame(struct gw *gw, const char *user, const char *server,
			  const char *encoded_path, int64_t age_ms)
{
	if (gw_activity_ws_counts(gw_activity_subpath(encoded_path, server), age_ms))
		touch_proxy(gw, user, server, time_now_ms());
}

/* ---- parsers ---- */

/* n digits at s into *out; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DDThh:mm:ss" into tm; false when s has another shape. */
static bool iso_fields(const char *s, struct tm *tm)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	static const int at[6] = { 0, 5, 8, 11, 14, 17 }, len[6] = { 4, 2, 2, 2, 2, 2 };
	int v[6];

	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
			return false;
	for (int i = 0; i < 6; i++)
		digits(s + at[i], len[i], &v[i]);
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
		return false;
	*tm = (struct tm){ .tm_year = v[0] - 1900, .tm_mon = v[1] - 1, .tm_mday = v[2],
			   .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5] };
	return true;
}

int64_t gw_activity_parse_iso(const char *s)
{
	struct tm tm;
	int ms = 0, scale = 100;
	const char *p;

	if (!s || !iso_fields(s, &tm))
		return -1;
	p = s + 19;
	if (*p == '.') /* fractions: milliseconds kept, the rest dropped */
		for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
			ms += (*p - '0') * scale;
	if (*p && strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Parses a JSON list of objects; calls fn for each. */
static int parse_list(const char *json, size_t len, const char *what,
		      void (*fn)(const cJSON *o, struct gw_activity_jupyter *out),
		      struct gw_activity_jupyter *out, struct err **err)
{
	cleanup_json cJSON *root = json_parse(json, len, NULL);
	const cJSON *it;

	if (!cJSON_IsArray(root))
		return err_set(err, EINVAL, "%s: expected a JSON list", what);
	cJSON_ArrayForEach(it, root) {
		if (!cJSON_IsObject(it))
			return err_set(err, EINVAL, "%s: expected a list of objects", what);
		fn(it, out);
	}
	return 0;
}

static int64_t last_activity_of(const cJSON *o)
{
	const cJSON *la = cJSON_GetObjectItemCaseSensitive(o, "last_activity");

	return cJSON_IsString(la) ? gw_activity_parse_iso(la->valuestring) : -1;
}

static void kernel_one(const cJSON *o, struct gw_activity_jupyter *out)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "execution_state");
	int64_t t = last_activity_of(o);

	out->kernels++;
	if (cJSON_IsString(st) && strcmp(st->valuestring, "busy") == 0)
		out->busy++;
	if (t > out->kernel_last_ms)
		out->kernel_last_ms = t;
}

static void terminal_one(const cJSON *o, struct gw_activity_jupyter *out)
{
	int64_t t = last_activity_of(o);

	out->terminals++;
	if (t > out->terminal_last_ms)
		out->terminal_last_ms = t;
}

int gw_activity_parse_kernels(const char *json, size_t len, struct gw_activity_jupyter *out,
			      struct err **err)
{
	return parse_list(json, len, "api/kernels", kernel_one, out, err);
}

int gw_activity_parse_terminals(const char *json, size_t len, struct gw_activity_jupyter *out,
				struct err **err)
{
	return parse_list(json, len, "api/terminals", terminal_one, out, err);
}

bool gw_activity_cpu_busy(int64_t usec0, int64_t ms0, int64_t usec1, int64_t ms1,
			  double threshold_pct)
{
	int64_t dt = ms1 - ms0, du = usec1 - usec0;

	if (dt <= 0 || du < 0)
		return false;
	/* du us over dt ms of one CPU: du / (dt * 1000) * 100 percent */
	return (double)du / (double)dt / 10.0 > threshold_pct;
}

int gw_activity_gpu_util_parse(const char *csv, const int *idx, int n)
{
	const char *line = csv;
	int best = -1;

	while (line && *line) {
		char *end;
		long i = strtol(line, &end, 10), u;

		if (end == line || *end != ',')
			return -1;
		u = strtol(end + 1, &end, 10);
		while (*end == ' ' || *end == '\r')
			end++;
		if (*end && *end != '\n')
			return -1; /* "[N/A]" and friends */
		for (int k = 0; k < n; k++)
			if (idx[k] == i && u > best)
				best = (int)(u > 100 ? 100 : u < 0 ? 0 : u);
		line = *end ? end + 1 : end;
	}
	return best;
}

enum gw_cull_verdict gw_activity_cull_verdict(const struct gw_cull_rules *r, int64_t now,
					      int64_t started, int64_t last,
					      int64_t traffic_last)
{
	if (r->max_age_ms > 0 && started > 0 && now - started >= r->max_age_ms)
		return GW_VERDICT_MAX_AGE;
	if (r->idle_timeout_ms <= 0)
		return GW_VERDICT_KEEP;
	if (now - last >= r->idle_timeout_ms)
		return GW_VERDICT_IDLE;
	if (now - traffic_last >= r->idle_timeout_ms)
		return GW_VERDICT_SAVED;
	return GW_VERDICT_KEEP;
}

bool gw_activity_cull_eligible(const struct gw_cull_rules *r, const char *server_name,
			       const char *server_type)
{
	if (server_name && *server_name && !r->named_servers)
		return false;
	if (server_type && strcmp(server_type, "tensorboard") == 0 && !r->tensorboards)
		return false;
	return true;
}

/* ---- blocking HTTP client (worker threads) ---- */

static int remaining(int64_t deadline)
{
	int64_t left = deadline - time_mono_ms();

	return left > 0 ? (int)left : 0;
}

/* A connected, non-blocking socket to upstream, or < 0 with *err. */
static int probe_connect(const char *upstream, int64_t deadline, struct err **err)
{
	cleanup_free char *host = NULL;
	cleanup_close int fd = -1;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct pollfd pfd;
	bool is_unix;
	int port, soerr = 0;

	if (gw_upstream_parse(upstream, &is_unix, &host, &port, err) < 0)
		return -EINVAL;
	if (is_unix) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", host);
		sl = sizeof(*un);
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)port);
			sl = sizeof(*in4);
		} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			sl = sizeof(*in6);
		} else {
			return err_set(err, EINVAL, "upstream '%s': not a numeric address", upstream);
		}
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set_errno(err, "socket for '%s'", upstream);
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		return err_set_errno(err, "connect '%s'", upstream);
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, remaining(deadline)) <= 0)
		return err_set(err, ETIMEDOUT, "connect '%s': timed out", upstream);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &(socklen_t){ sizeof(soerr) });
	if (soerr)
		return err_set(err, soerr, "connect '%s': %s", upstream, strerror(soerr));
	return steal_fd(&fd);
}

/* Writes all of p, or fails at the deadline. */
static int probe_send(int fd, const char *p, size_t n, int64_t deadline, struct err **err)
{
	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pfd, 1, remaining(deadline)) <= 0)
			return err_set(err, ETIMEDOUT, "send: timed out");
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return err_set_errno(err, "send");
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	return 0;
}

/* Reads until EOF into b (at most cap bytes), or fails at the deadline. */
static int probe_recv(int fd, struct buf *b, size_t cap, int64_t deadline, struct err **err)
{
	char tmp[16384];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, remaining(deadline)) <= 0)
			return err_set(err, ETIMEDOUT, "response: timed out");
		r = recv(fd, tmp, sizeof(tmp), 0);
		if (r == 0)
			return 0;
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return err_set_errno(err, "recv");
		if (b->len + (size_t)r > cap)
			return err_set(err, EMSGSIZE, "response larger than %zu bytes", cap);
		buf_append(b, tmp, (size_t)r);
	}
}

/* Status line and framing of a raw HTTP/1.0 response; *body_at = offset. */
static int probe_status(const char *raw, size_t len, size_t *body_at, struct err **err)
{
	const char *end = memmem(raw, len, "\r\n\r\n", 4);
	int status;

	if (len < 12 || strncmp(raw, "HTTP/1.", 7) != 0 || !end ||
	    !digits(raw + 9, 3, &status))
		return err_set(err, EPROTO, "not an HTTP response");
	/* asked with HTTP/1.0, so the body runs to EOF and is never chunked */
	if (memmem(raw, (size_t)(end - raw), "chunked", 7))
		return err_set(err, EPROTO, "chunked response to an HTTP/1.0 request");
	*body_at = (size_t)(end - raw) + 4;
	return status;
}

int gw_activity_http_get(const char *upstream, const char *target, const char *token,
			 int timeout_ms, size_t max, char **body, size_t *len, struct err **err)
{
	int64_t deadline = time_mono_ms() + timeout_ms;
	cleanup_close int fd = probe_connect(upstream, deadline, err);
	cleanup_free char *req = NULL;
	struct buf b;
	size_t at = 0;
	int r;

	if (fd < 0)
		return fd;
	req = xasprintf("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
			"%s%s%s\r\n", target, token ? "Authorization: token " : "",
			token ? token : "", token ? "\r\n" : "");
	r = probe_send(fd, req, strlen(req), deadline, err);
	explicit_bzero(req, strlen(req)); /* holds the server's token */
	if (r < 0)
		return r;
	buf_init(&b, max);
	r = probe_recv(fd, &b, max, deadline, err);
	if (r >= 0)
		r = probe_status(b.data ? b.data : "", b.len, &at, err);
	if (r >= 0 && r != 200)
		r = err_set(err, EPROTO, "status %d", r);
	if (r >= 0) {
		*len = b.len - at;
		*body = xstrndup(b.data + at, *len);
	}
	buf_release(&b);
	return r < 0 ? r : 0;
}

int gw_activity_probe_jupyter(const char *upstream, const char *base, const char *token,
			      struct gw_activity_jupyter *out, struct err **err)
{
	cleanup_free char *kt = xasprintf("%sapi/kernels", base);
	cleanup_free char *tt = xasprintf("%sapi/terminals", base);
	cleanup_free char *body = NULL;
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (gw_activity_http_get(upstream, kt, token, GW_ACTIVITY_PROBE_TIMEOUT_MS,
				 GW_ACTIVITY_PROBE_MAX, &body, &len, err) < 0 ||
	    gw_activity_parse_kernels(body, len, out, err) < 0)
		return err_wrap(err, "GET %s", kt);
	free(body);
	body = NULL;
	r = gw_activity_http_get(upstream, tt, token, GW_ACTIVITY_PROBE_TIMEOUT_MS,
				 GW_ACTIVITY_PROBE_MAX, &body, &len, err);
	if (r < 0 && (*err)->code == EPROTO && strstr((*err)->msg, "status 404")) {
		err_free(err); /* terminals disabled in this server */
		return 0;
	}
	if (r < 0 || gw_activity_parse_terminals(body, len, out, err) < 0)
		return err_wrap(err, "GET %s", tt);
	return 0;
}

/* ---- CPU ---- */

/* "usage_usec N" of a cgroup v2 cpu.stat. */
static int cpu_v2(const char *path, int64_t *out, struct err **err)
{
	cleanup_free char *text = NULL;
	const char *p;

	if (file_read_all(path, 0, 65536, &text, NULL, err) < 0)
		return -1;
	p = strstr(text, "usage_usec ");
	if (!p || (p != text && p[-1] != '\n'))
		return err_set(err, EINVAL, "'%s': no usage_usec", path);
	*out = strtoll(p + 11, NULL, 10);
	return 0;
}

/* cpuacct.usage (nanoseconds) of a cgroup v1 cpuacct directory. */
static int cpu_v1_acct(const char *path, int64_t *out, struct err **err)
{
	cleanup_free char *text = NULL;

	if (file_read_all(path, 0, 4096, &text, NULL, err) < 0)
		return -1;
	if (!isdigit((unsigned char)text[0]))
		return err_set(err, EINVAL, "'%s': not a number", path);
	*out = strtoll(text, NULL, 10) / 1000;
	return 0;
}

/* utime + stime + cutime + cstime of one process, in clock ticks; 0 if gone. */
static int64_t proc_ticks(const char *proc_root, long pid)
{
	cleanup_free char *path = xasprintf("%s/%ld/stat", proc_root, pid);
	cleanup_free char *text = NULL;
	long long v[4] = { 0 };
	const char *p;

	if (file_read_all(path, 0, 4096, &text, NULL, NULL) < 0)
		return 0;
	p = strrchr(text, ')'); /* comm may hold spaces and parentheses */
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt, then utime(14) stime cutime cstime (proc(5)) */
	if (!p)
		return 0;
	/* skip state and the ten numbers before utime */
	p++;
	for (int field = 0; field < 11 && p; field++) {
		p += strspn(p, " ");
		p = strchr(p, ' ');
	}
	for (int i = 0; i < 4; i++) {
		char *end;

		if (!p)
			return 0;
		errno = 0;
		v[i] = strtoll(p, &end, 10);
		if (end == p || errno)
			return 0;
		p = end;
	}
	return v[0] + v[1] + v[2] + v[3];
}

/* Sum of proc_ticks over the pids in a cgroup.procs file, as microseconds. */
static int cpu_v1_procs(const char *procs, const char *proc_root, int64_t *out,
			struct err **err)
{
	cleanup_free char *text = NULL;
	long hz = sysconf(_SC_CLK_TCK);
	int64_t ticks = 0;
	const char *p;

	if (file_read_all(procs, 0, 1 << 20, &text, NULL, err) < 0)
		return -1;
	for (p = text; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);

		if (end == p)
			break;
		ticks += proc_ticks(proc_root, pid);
		p = end;
		while (*p == '\n')
			p++;
	}
	*out = ticks * (1000000 / (hz > 0 ? hz : 100));
	return 0;
}

/*
 * Where the sandbox's CPU time is. sandbox/cgroup.c (sbx_cgroup_paths)
 * names the cgroup nbgate/<id>, id = the server's slug:
 *  v2  <root>/nbgate/<id>: cpu.stat "usage_usec".
 *  v1  one directory per controller (memory, cpu, pids). Where cpu and
 *      cpuacct share a hierarchy (<root>/cpu is "cpu,cpuacct"),
 *      <root>/cpu/nbgate/<id>/cpuacct.usage; a separate cpuacct
 *      hierarchy holding the sandbox: <root>/cpuacct/nbgate/<id>/.
 *      Otherwise (cpuacct mounted on its own and the sandbox not in it, as
 *      on the development machine's kernel) the usage of the processes in
 *      <root>/cpu/nbgate/<id>/cgroup.procs from /proc/<pid>/stat: CPU of
 *      processes that exited without being waited for is missed, which
 *      only under-counts.
 */
int gw_activity_cpu_usec(const char *cg_root, const char *proc_root, const char *id,
			 int64_t *out, struct err **err)
{
	cleanup_free char *v2 = xasprintf("%s/nbgate/%s/cpu.stat", cg_root, id);
	cleanup_free char *co = xasprintf("%s/cpu/nbgate/%s/cpuacct.usage", cg_root, id);
	cleanup_free char *acct = xasprintf("%s/cpuacct/nbgate/%s/cpuacct.usage", cg_root, id);
	cleanup_free char *procs = xasprintf("%s/cpu/nbgate/%s/cgroup.procs", cg_root, id);
	cleanup_free char *ctl = xasprintf("%s/cgroup.controllers", cg_root);

	if (!id || !*id || strchr(id, '/') || id[0] == '.')
		return err_set(err, EINVAL, "bad sandbox id");
	if (access(ctl, F_OK) == 0)
		return cpu_v2(v2, out, err);
	if (access(co, F_OK) == 0)
		return cpu_v1_acct(co, out, err);
	if (access(acct, F_OK) == 0)
		return cpu_v1_acct(acct, out, err);
	if (access(procs, F_OK) == 0)
		return cpu_v1_procs(procs, proc_root, out, err);
	return err_set(err, ENOENT, "no cgroup for sandbox '%s'", id);
}

/* ---- GPU ---- */

/* Reads fd to EOF into b (cap bytes) before the deadline. */
static int read_child(int fd, struct buf *b, size_t cap, int64_t deadline, struct err **err)
{
	char tmp[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, remaining(deadline)) <= 0)
			return err_set(err, ETIMEDOUT, "timed out");
		r = read(fd, tmp, sizeof(tmp));
		if (r == 0)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set_errno(err, "read");
		if (b->len + (size_t)r > cap)
			return err_set(err, EMSGSIZE, "output too large");
		buf_append(b, tmp, (size_t)r);
	}
}

int gw_activity_gpu_util(const char *nvidia_smi, const int *idx, int n, int timeout_ms,
			 int *out, struct err **err)
{
	const char *argv[] = { nvidia_smi, "--query-gpu=index,utilization.gpu",
			       "--format=csv,noheader,nounits", NULL };
	int64_t deadline = time_mono_ms() + timeout_ms;
	struct proc_opts o = { .argv = argv, .stdin_fd = -1, .stderr_fd = -1,
			       .new_session = true };
	int p[2], st = 0, r;
	struct buf b;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set_errno(err, "pipe");
	o.stdout_fd = p[1];
	r = proc_spawn(&o, &pid, err);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return r;
	}
	buf_init(&b, 65536);
	r = read_child(p[0], &b, 65536, deadline, err);
	close(p[0]);
	if (r < 0)
		proc_kill_and_reap(pid, 100);
	else if (proc_reap(pid, &st, true) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		r = err_set(err, EIO, "'%s' failed (status %d)", nvidia_smi, st);
	if (r >= 0 && (*out = gw_activity_gpu_util_parse(b.data ? b.data : "", idx, n)) < 0)
		r = err_set(err, EINVAL, "'%s' did not list the server's GPUs", nvidia_smi);
	buf_release(&b);
	return r < 0 ? r : 0;
}
