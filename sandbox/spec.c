/*
 * spec: the sandbox spec file (sandbox/sandbox.h): JSON read, write and
 * strict validation. Every error names the field it is about.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/sbx.h"

#define SPEC_MAX_BYTES (1 << 20)
#define SPEC_MAX_PATH 1024
#define SPEC_MAX_PORTS 32

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Absolute, no "..", no control bytes; overlay needs no ',' or ':' either. */
static int check_path(const char *field, const char *p, bool overlay, struct err **err)
{
	if (!p || p[0] != '/')
		return err_set(err, EINVAL, "field '%s': must be an absolute path", field);
	if (strlen(p) >= SPEC_MAX_PATH || has_ctl(p))
		return err_set(err, EINVAL, "field '%s': too long or control bytes", field);
	if (strstr(p, "/../") || !strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/.."))
		return err_set(err, EINVAL, "field '%s': must not contain '..'", field);
	if (overlay && strpbrk(p, ",:\\"))
		return err_set(err, EINVAL, "field '%s': ',' ':' '\\' not allowed", field);
	return 0;
}

static bool charset_ok(const char *s, const char *extra, bool lower_only)
{
	for (; *s; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr(extra, c);
		if (!lower_only && c >= 'A' && c <= 'Z')
			ok = true;
		if (!ok || c == 0)
			return false;
	}
	return true;
}

static int check_name(const char *field, const char *s, size_t max, const char *extra,
		      bool lower, struct err **err)
{
	if (!s || !*s || strlen(s) > max || !charset_ok(s, extra, lower) || s[0] == '-' ||
	    s[0] == '.')
		return err_set(err, EINVAL, "field '%s': must be 1..%zu of [a-z0-9%s], not "
			       "starting with '-' or '.'", field, max, extra);
	return 0;
}

static int check_paths(const struct sandbox_spec *s, struct err **err)
{
	const struct { const char *f; const char *v; bool ov; } p[] = {
		{ "rootfs", s->rootfs, true }, { "upper", s->upper, true },
		{ "work", s->work, true }, { "home_src", s->home_src, false },
		{ "home_dst", s->home_dst, false }, { "sock_dir", s->sock_dir, false },
		{ "log_path", s->log_path, false },
		{ "seccomp_profile", s->seccomp_profile, false },
	};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (check_path(p[i].f, p[i].v, p[i].ov, err) < 0)
			return -EINVAL;
	if (!strcmp(s->home_dst, "/"))
		return err_set(err, EINVAL, "field 'home_dst': must not be '/'");
	if (s->cwd && check_path("cwd", s->cwd, false, err) < 0)
		return -EINVAL;
	return 0;
}

/* lower, devices and ro_binds: the path lists. */
static int check_path_lists(const struct sandbox_spec *s, struct err **err)
{
	if (!s->lower || !s->lower[0])
		return err_set(err, EINVAL, "field 'lower': at least one layer");
	for (size_t i = 0; s->lower[i]; i++)
		if (check_path("lower", s->lower[i], true, err) < 0)
			return -EINVAL;
	for (size_t i = 0; s->devices && s->devices[i]; i++)
		if (check_path("devices", s->devices[i], false, err) < 0 ||
		    strncmp(s->devices[i], "/dev/", 5) != 0)
			return err_set(err, EINVAL, "field 'devices': must be under /dev/");
	for (size_t i = 0; s->ro_binds && s->ro_binds[i]; i++)
		if (check_path("ro_binds", s->ro_binds[i], false, err) < 0 ||
		    strcmp(s->ro_binds[i], "/") == 0)
			return err_set(err, EINVAL, "field 'ro_binds': absolute, not '/'");
	return 0;
}

/* net_allow: at most 64 addresses/CIDRs, only with net "egress". */
static int check_net_allow(const struct sandbox_spec *s, struct err **err)
{
	size_t n = 0;
	for (; s->net_allow && s->net_allow[n]; n++) {
		struct sbx_cidr c;
		if (n >= 64 || sbx_cidr_parse(s->net_allow[n], &c) < 0)
			return err_set(err, EINVAL, "field 'net_allow': '%.64s' is not an IPv4/IPv6 "
				       "address or CIDR without host bits (at most 64)",
				       s->net_allow[n]);
	}
	if (n && s->net != SANDBOX_NET_EGRESS)
		return err_set(err, EINVAL, "field 'net_allow': only with net \"egress\"");
	return 0;
}

static int check_lists(const struct sandbox_spec *s, struct err **err)
{
	if (check_path_lists(s, err) < 0)
		return -EINVAL;
	return check_net_allow(s, err);
}

static int check_cmd(const struct sandbox_spec *s, struct err **err)
{
	if (!s->argv || !s->argv[0] || s->argv[0][0] != '/')
		return err_set(err, EINVAL, "field 'argv': argv[0] must be an absolute path");
	if (xstrv_len(s->argv) > 4096)
		return err_set(err, EINVAL, "field 'argv': too many elements");
	for (size_t i = 0; s->env && s->env[i]; i++) {
		const char *eq = strchr(s->env[i], '=');
		if (!eq || eq == s->env[i])
			return err_set(err, EINVAL, "field 'env': entry %zu is not K=V", i);
	}
	return 0;
}

static int check_ports(const struct sandbox_spec *s, struct err **err)
{
	if (s->n_ports < 0 || s->n_ports > SPEC_MAX_PORTS || (s->n_ports && !s->ports))
		return err_set(err, EINVAL, "field 'ports': at most %d", SPEC_MAX_PORTS);
	for (int i = 0; i < s->n_ports; i++) {
		const struct sandbox_port *p = &s->ports[i];
		if (p->port < 1 || p->port > 65535)
			return err_set(err, EINVAL, "field 'ports': port out of range");
		if (check_name("ports.socket_name", p->socket_name, 64, "._-", false, err) < 0)
			return -EINVAL;
		if (strlen(s->sock_dir) + strlen(p->socket_name) + 2 > 108)
			return err_set(err, EINVAL, "field 'ports': socket path too long");
		for (int j = 0; j < i; j++)
			if (!strcmp(s->ports[j].socket_name, p->socket_name))
				return err_set(err, EINVAL, "field 'ports': duplicate socket_name");
	}
	return 0;
}

static int check_limits(const struct sandbox_spec *s, struct err **err)
{
	if (s->uid == 0 || s->uid == (uid_t)-1)
		return err_set(err, EINVAL, "field 'uid': must not be 0");
	if (s->gid == 0 || s->gid == (gid_t)-1)
		return err_set(err, EINVAL, "field 'gid': must not be 0");
	if (s->memory_bytes < 0)
		return err_set(err, EINVAL, "field 'memory_bytes': must be >= 0");
	if (s->cpu_millis < 0 || s->cpu_millis > 1024 * 1000)
		return err_set(err, EINVAL, "field 'cpu_millis': out of range");
	if (s->pids_max < 0)
		return err_set(err, EINVAL, "field 'pids_max': must be >= 0");
	if (s->nofile < 0 || s->nofile > (1 << 20))
		return err_set(err, EINVAL, "field 'nofile': out of range");
	if (s->stop_grace_ms < 0 || s->stop_grace_ms > 3600 * 1000)
		return err_set(err, EINVAL, "field 'stop_grace_ms': out of range");
	if (s->net != SANDBOX_NET_NONE && s->net != SANDBOX_NET_EGRESS)
		return err_set(err, EINVAL, "field 'net': must be none or egress");
	return 0;
}

int sandbox_spec_validate(const struct sandbox_spec *s, struct err **err)
{
	if (check_name("id", s->id, 63, "-", true, err) < 0)
		return -EINVAL;
	if (check_name("user_name", s->user_name, 32, "_-", true, err) < 0)
		return -EINVAL;
	if (check_paths(s, err) < 0 || check_lists(s, err) < 0 || check_cmd(s, err) < 0 ||
	    check_ports(s, err) < 0 || check_limits(s, err) < 0)
		return -EINVAL;
	if (s->fail_step && check_name("fail_step", s->fail_step, 32, "_", true, err) < 0)
		return -EINVAL;
	return 0;
}

void sandbox_spec_free(struct sandbox_spec *s)
{
	if (!s)
		return;
	char **strs[] = { &s->id, &s->rootfs, &s->upper, &s->work, &s->home_src, &s->home_dst,
			  &s->sock_dir, &s->log_path, &s->user_name, &s->cwd,
			  &s->seccomp_profile, &s->fail_step };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	xstrv_free(s->lower);
	xstrv_free(s->argv);
	xstrv_free(s->env);
	xstrv_free(s->devices);
	xstrv_free(s->ro_binds);
	xstrv_free(s->net_allow);
	for (int i = 0; i < s->n_ports && s->ports; i++)
		free(s->ports[i].socket_name);
	free(s->ports);
	free(s);
}

/* ---- JSON -> struct ---- */

static const char *const spec_str_fields[] = {
	"id", "rootfs", "upper", "work", "home_src", "home_dst", "sock_dir", "log_path",
	"user_name", "cwd", "seccomp_profile", "fail_step",
};

static char **str_slot(struct sandbox_spec *s, size_t i)
{
	char **slots[] = { &s->id, &s->rootfs, &s->upper, &s->work, &s->home_src,
			   &s->home_dst, &s->sock_dir, &s->log_path, &s->user_name, &s->cwd,
			   &s->seccomp_profile, &s->fail_step };
	return slots[i];
}

static bool str_required(const char *f)
{
	return strcmp(f, "cwd") != 0 && strcmp(f, "fail_step") != 0;
}

static int read_strings(const cJSON *o, struct sandbox_spec *s, struct err **err)
{
	for (size_t i = 0; i < sizeof(spec_str_fields) / sizeof(spec_str_fields[0]); i++) {
		const char *v = NULL;
		int r = json_get_string(o, spec_str_fields[i], str_required(spec_str_fields[i]),
					&v, err);
		if (r < 0)
			return r;
		if (r > 0)
			*str_slot(s, i) = xstrdup(v);
	}
	if (json_get_string_array(o, "lower", true, &s->lower, err) < 0 ||
	    json_get_string_array(o, "argv", true, &s->argv, err) < 0 ||
	    json_get_string_array(o, "env", false, &s->env, err) < 0 ||
	    json_get_string_array(o, "devices", false, &s->devices, err) < 0 ||
	    json_get_string_array(o, "ro_binds", false, &s->ro_binds, err) < 0 ||
	    json_get_string_array(o, "net_allow", false, &s->net_allow, err) < 0)
		return -EINVAL;
	if (!s->env)
		s->env = xcalloc(1, sizeof(char *));
	return 0;
}

static int read_numbers(const cJSON *o, struct sandbox_spec *s, struct err **err)
{
	int64_t uid = 0, gid = 0;
	if (json_get_int(o, "uid", true, 1, UINT32_MAX - 1, &uid, err) < 0 ||
	    json_get_int(o, "gid", true, 1, UINT32_MAX - 1, &gid, err) < 0 ||
	    json_get_int(o, "memory_bytes", false, 0, INT64_MAX, &s->memory_bytes, err) < 0 ||
	    json_get_int(o, "cpu_millis", false, 0, 1024 * 1000, &s->cpu_millis, err) < 0 ||
	    json_get_int(o, "pids_max", false, 0, INT32_MAX, &s->pids_max, err) < 0 ||
	    json_get_int(o, "nofile", false, 0, 1 << 20, &s->nofile, err) < 0 ||
	    json_get_int(o, "stop_grace_ms", false, 0, 3600 * 1000, &s->stop_grace_ms, err) < 0)
		return -EINVAL;
	s->uid = (uid_t)uid;
	s->gid = (gid_t)gid;
	const char *net = "none";
	if (json_get_string(o, "net", false, &net, err) < 0)
		return -EINVAL;
	if (!strcmp(net, "none"))
		s->net = SANDBOX_NET_NONE;
	else if (!strcmp(net, "egress"))
		s->net = SANDBOX_NET_EGRESS;
	else
		return err_set(err, EINVAL, "field 'net': must be \"none\" or \"egress\"");
	return 0;
}

static int read_ports(const cJSON *o, struct sandbox_spec *s, struct err **err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "ports");
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > SPEC_MAX_PORTS)
		return err_set(err, EINVAL, "field 'ports': expected array of at most %d",
			       SPEC_MAX_PORTS);
	int n = cJSON_GetArraySize(a);
	s->ports = xcalloc((size_t)n + 1, sizeof(*s->ports));
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		int64_t port = 0;
		const char *name = NULL;
		if (!cJSON_IsObject(e) ||
		    json_get_int(e, "port", true, 1, 65535, &port, err) < 0 ||
		    json_get_string(e, "socket_name", true, &name, err) < 0)
			return err_set(err, EINVAL, "field 'ports': entries are "
				       "{\"port\": int, \"socket_name\": string}");
		s->ports[s->n_ports].port = (int)port;
		s->ports[s->n_ports++].socket_name = xstrdup(name);
	}
	return 0;
}

static const char *const spec_known[] = {
	"id", "rootfs", "upper", "work", "home_src", "home_dst", "sock_dir", "log_path",
	"user_name", "cwd", "seccomp_profile", "fail_step", "lower", "argv", "env", "devices",
	"ro_binds", "net_allow", "uid", "gid", "memory_bytes", "cpu_millis", "pids_max", "nofile",
	"stop_grace_ms", "net", "ports",
};

static int check_unknown(const cJSON *o, struct err **err)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, o) {
		bool known = false;
		for (size_t i = 0; i < sizeof(spec_known) / sizeof(spec_known[0]); i++)
			known |= e->string && !strcmp(e->string, spec_known[i]);
		if (!known)
			return err_set(err, EINVAL, "field '%s': unknown", e->string ? e->string : "?");
	}
	return 0;
}

/* Parses and validates a spec from JSON text (exposed for the unit tests). */
int sandbox_spec_parse(const char *text, size_t len, struct sandbox_spec **out, struct err **err)
{
	cleanup_json cJSON *o = json_parse(text, len, err);
	if (!o)
		return err_wrap(err, "sandbox spec");
	if (!cJSON_IsObject(o))
		return err_set(err, EINVAL, "sandbox spec: expected an object");
	struct sandbox_spec *s = xcalloc(1, sizeof(*s));
	if (check_unknown(o, err) < 0 || read_strings(o, s, err) < 0 ||
	    read_numbers(o, s, err) < 0 || read_ports(o, s, err) < 0 ||
	    sandbox_spec_validate(s, err) < 0) {
		sandbox_spec_free(s);
		return err_wrap(err, "sandbox spec");
	}
	*out = s;
	return 0;
}

int sandbox_spec_read(const char *path, struct sandbox_spec **out, struct err **err)
{
	cleanup_free char *text = NULL;
	size_t len = 0;

	/* O_NOFOLLOW: the spec is root's, in a root-only run dir */
	if (file_read_all(path, O_NOFOLLOW, SPEC_MAX_BYTES, &text, &len, err) < 0)
		return err_wrap(err, "spec");
	return sandbox_spec_parse(text, len, out, err);
}

/* ---- struct -> JSON ---- */

static void add_strv(cJSON *o, const char *name, char *const *v)
{
	cJSON *a = cJSON_AddArrayToObject(o, name);
	for (size_t i = 0; v && v[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
}

static cJSON *spec_to_json(const struct sandbox_spec *s)
{
	cJSON *o = cJSON_CreateObject();
	struct sandbox_spec *m = (struct sandbox_spec *)s; /* str_slot() reads only */
	for (size_t i = 0; i < sizeof(spec_str_fields) / sizeof(spec_str_fields[0]); i++)
		if (*str_slot(m, i))
			cJSON_AddStringToObject(o, spec_str_fields[i], *str_slot(m, i));
	add_strv(o, "lower", s->lower);
	add_strv(o, "argv", s->argv);
	add_strv(o, "env", s->env);
	add_strv(o, "devices", s->devices);
	add_strv(o, "ro_binds", s->ro_binds);
	add_strv(o, "net_allow", s->net_allow);
	cJSON_AddNumberToObject(o, "uid", s->uid);
	cJSON_AddNumberToObject(o, "gid", s->gid);
	cJSON_AddNumberToObject(o, "memory_bytes", (double)s->memory_bytes);
	cJSON_AddNumberToObject(o, "cpu_millis", (double)s->cpu_millis);
	cJSON_AddNumberToObject(o, "pids_max", (double)s->pids_max);
	cJSON_AddNumberToObject(o, "nofile", (double)s->nofile);
	cJSON_AddNumberToObject(o, "stop_grace_ms", (double)s->stop_grace_ms);
	cJSON_AddStringToObject(o, "net", s->net == SANDBOX_NET_EGRESS ? "egress" : "none");
	cJSON *ports = cJSON_AddArrayToObject(o, "ports");
	for (int i = 0; i < s->n_ports; i++) {
		cJSON *p = cJSON_CreateObject();
		cJSON_AddNumberToObject(p, "port", s->ports[i].port);
		cJSON_AddStringToObject(p, "socket_name", s->ports[i].socket_name);
		cJSON_AddItemToArray(ports, p);
	}
	return o;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sandbox_spec_write(const struct sandbox_spec *s, const char *path, struct err **err)
{
	if (sandbox_spec_validate(s, err) < 0)
		return err_wrap(err, "write spec '%s'", path);
	cleanup_json cJSON *o = spec_to_json(s);
	cleanup_free char *text = json_print_pretty(o);
	cleanup_free char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(err, "write spec '%s': create temp", path);
	if (fchmod(fd, 0600) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    write_all(fd, "\n", 1) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return err_set_errno(err, "write spec '%s'", path);
	}
	return 0;
}

char *sandbox_init_path(void)
{
	const char *env = getenv("NBGATE_INIT");
	if (env && *env)
		return xstrdup(env);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return xstrdup("/usr/libexec/nbgate/nbgate-init");
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	return xasprintf("%s/nbgate-init", self);
}
