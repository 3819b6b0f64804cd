#include "gateway/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"

#define GW_ENV_PREFIX "NBGATE_"
#define GW_CFG_FILE_MAX (1024 * 1024) /* as common/cfg's CFG_FILE_MAX */
#define GW_CKPT_KEEP_MAX 1000
#define GW_CKPT_BYTES_MAX (1ULL << 60)

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const url_mode_names[] = { "path", "subdomain", NULL };
static const char *const spawner_names[] = { "process", "local", "kubernetes", NULL };

/*
 * Extra environment an operator may give every server. Everything else is
 * refused: PATH, LD_xxx, PYTHONxxx, JUPYTER_xxx and our own NBGATE_xxx and JUPYTERHUB_xxx
 * change what code runs or who the server thinks it is (SECURITY.md R-1.7).
 */
static const char *const server_env_allowed[] = {
	"LANG", "LANGUAGE", "TZ", "TERM", "MPLBACKEND",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
	"no_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST",
	"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
	"CUDA_DEVICE_ORDER", NULL,
};
static const char *const server_env_allowed_prefixes[] = { "LC_", NULL };

/* ---- syntax helpers ---- */

static int parse_port(const char *s, int *port)
{
	long v = 0;

	if (!*s || strlen(s) > 5)
		return -1;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/* Hostname or IPv4 literal: letters, digits, '-', '.'; 1..253 chars. */
static bool host_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return s[0] != '.' && s[0] != '-';
}

/* IPv6 literal contents (between brackets): hex digits, ':', '.'. */
static bool host_v6_ok(const char *s, size_t n)
{
	if (n < 2 || n > 45)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	return true;
}

int gw_cfg_split_listen(const char *listen, char **host, int *port,
			struct err **err)
{
	const char *colon, *h = listen;
	size_t hl;

	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');

		if (!rb || rb[1] != ':' || !host_v6_ok(listen + 1, (size_t)(rb - listen - 1)))
			return err_set(err, EINVAL, "'%s': expected [v6addr]:port", listen);
		h = listen + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || !host_name_ok(listen, (size_t)(colon - listen)))
			return err_set(err, EINVAL, "'%s': expected host:port", listen);
		hl = (size_t)(colon - listen);
	}
	if (parse_port(colon + 1, port) < 0)
		return err_set(err, EINVAL, "'%s': port must be 1..65535", listen);
	if (host)
		*host = xstrndup(h, hl);
	return 0;
}

/* host[:port] or [v6][:port] of exactly n chars (an URL authority). */
static int authority_check(const char *url, const char *a, size_t n,
			   struct err **err)
{
	const char *end = a + n, *rest;
	int port;

	if (a[0] == '[') {
		const char *rb = memchr(a, ']', n);

		if (!rb || !host_v6_ok(a + 1, (size_t)(rb - a - 1)))
			return err_set(err, EINVAL, "'%s': bad IPv6 host", url);
		rest = rb + 1;
	} else {
		const char *c = memchr(a, ':', n);

		rest = c ? c : end;
		if (!host_name_ok(a, (size_t)(rest - a)))
			return err_set(err, EINVAL, "'%s': bad host", url);
	}
	if (rest == end)
		return 0;
	if (*rest != ':')
		return err_set(err, EINVAL, "'%s': bad host", url);
	{
		cleanup_free char *p = xstrndup(rest + 1, (size_t)(end - rest - 1));

		if (parse_port(p, &port) < 0)
			return err_set(err, EINVAL, "'%s': port must be 1..65535", url);
	}
	return 0;
}

/* http(s)://host[:port][/] with nothing else: no path, query, userinfo. */
static int url_origin_check(const char *url, bool allow_slash, struct err **err)
{
	const char *rest;
	size_t n;

	if (!strncmp(url, "https://", 8))
		rest = url + 8;
	else if (!strncmp(url, "http://", 7))
		rest = url + 7;
	else
		return err_set(err, EINVAL, "'%s': expected an http:// or https:// URL", url);
	n = strlen(rest);
	if (allow_slash && n && rest[n - 1] == '/')
		n--;
	if (strcspn(rest, "/@?#") < n)
		return err_set(err, EINVAL, "'%s': no path, query or user allowed", url);
	return authority_check(url, rest, n, err);
}

/* ---- per-field validators (field points at the member) ---- */

static int v_listen(const void *f, struct err **err)
{
	return gw_cfg_split_listen(*(char *const *)f, NULL, &(int){ 0 }, err);
}

static int v_listen_opt(const void *f, struct err **err)
{
	const char *s = *(char *const *)f;

	return *s ? v_listen(f, err) : 0;
}

static int v_public_url(const void *f, struct err **err)
{
	const char *s = *(char *const *)f;

	return *s ? url_origin_check(s, true, err) : 0;
}

static int v_nonempty(const void *f, struct err **err)
{
	if (!**(char *const *)f)
		return err_set(err, EINVAL, "must not be empty");
	return 0;
}

static int v_domain(const void *f, struct err **err)
{
	const char *s = *(char *const *)f;

	if (*s && !host_name_ok(s, strlen(s)))
		return err_set(err, EINVAL, "'%s': not a host name", s);
	return 0;
}

static int v_header_count(const void *f, struct err **err)
{
	int64_t v = *(const int64_t *)f;

	if (v < 1 || v > 256)
		return err_set(err, EINVAL, "must be 1..256");
	return 0;
}

static int v_threads(const void *f, struct err **err)
{
	int64_t v = *(const int64_t *)f;

	if (v < 1 || v > 64)
		return err_set(err, EINVAL, "must be 1..64");
	return 0;
}

static int v_server_cmd(const void *f, struct err **err)
{
	char *const *v = *(char **const *)f;

	/* proc_spawn does no PATH search: the program must be a full path */
	if (!v || !v[0] || v[0][0] != '/')
		return err_set(err, EINVAL,
			       "must be a non-empty list starting with an absolute path");
	return 0;
}

static bool env_name_allowed(const char *name, size_t n)
{
	for (int i = 0; server_env_allowed[i]; i++)
		if (strlen(server_env_allowed[i]) == n &&
		    !strncmp(name, server_env_allowed[i], n))
			return true;
	for (int i = 0; server_env_allowed_prefixes[i]; i++) {
		size_t pl = strlen(server_env_allowed_prefixes[i]);

		if (n > pl && !strncmp(name, server_env_allowed_prefixes[i], pl))
			return true;
	}
	return false;
}

static int v_server_env(const void *f, struct err **err)
{
	char *const *v = *(char **const *)f;

	for (size_t i = 0; v && v[i]; i++) {
		const char *eq = strchr(v[i], '=');
		size_t n = eq ? (size_t)(eq - v[i]) : 0;

		if (!eq || !n)
			return err_set(err, EINVAL, "'%s': expected NAME=VALUE", v[i]);
		for (size_t k = 0; k < n; k++)
			if (!isalnum((unsigned char)v[i][k]) && v[i][k] != '_')
				return err_set(err, EINVAL, "'%.*s': bad variable name",
					       (int)n, v[i]);
		if (!env_name_allowed(v[i], n))
			return err_set(err, EINVAL,
				       "variable '%.*s' is not in the allow-list", (int)n,
				       v[i]);
	}
	return 0;
}

static int v_cors_origins(const void *f, struct err **err)
{
	char *const *v = *(char **const *)f;

	/* "*" would let any site drive the API with a user's token */
	for (size_t i = 0; v && v[i]; i++)
		if (url_origin_check(v[i], false, err) < 0)
			return -EINVAL;
	return 0;
}

static int v_admin_users(const void *f, struct err **err)
{
	char *const *v = *(char **const *)f;

	for (size_t i = 0; v && v[i]; i++)
		if (!v[i][0])
			return err_set(err, EINVAL, "empty user name");
	return 0;
}

static int v_images(const void *f, struct err **err)
{
	char *const *v = *(char **const *)f;

	for (size_t i = 0; v && v[i]; i++) {
		if (!gw_cfg_image_name_ok(v[i]))
			return err_set(err, EINVAL, "'%s': not an image name [a-z0-9._-]", v[i]);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(v[k], v[i]))
				return err_set(err, EINVAL, "'%s' is listed twice", v[i]);
	}
	return 0;
}

static int v_abs_path(const void *f, struct err **err)
{
	if (**(char *const *)f != '/')
		return err_set(err, EINVAL, "must be an absolute path");
	return 0;
}

static int v_abs_path_opt(const void *f, struct err **err)
{
	return **(char *const *)f ? v_abs_path(f, err) : 0;
}

/* uid_base + user id must stay below the overflow uid (65534 in 32 bits
 * is fine, but (uid_t)-1 and -2 are special) and above system uids. */
static int v_uid_base(const void *f, struct err **err)
{
	int64_t v = *(const int64_t *)f;

	if (v < 1000 || v > 4000000000LL)
		return err_set(err, EINVAL, "must be 1000..4000000000");
	return 0;
}

/* Checkpoints kept per server: at least the one a resume needs. */
static int v_ckpt_keep(const void *f, struct err **err)
{
	int64_t v = *(const int64_t *)f;

	if (v < 1 || v > GW_CKPT_KEEP_MAX)
		return err_set(err, EINVAL, "must be 1..%d", GW_CKPT_KEEP_MAX);
	return 0;
}

static int v_ckpt_quota(const void *f, struct err **err)
{
	if (*(const uint64_t *)f > GW_CKPT_BYTES_MAX)
		return err_set(err, EINVAL, "must be 0 (none) .. 1 EiB");
	return 0;
}

/* 0 would read as "the spawner's default" (struct spawner_ckpt_cfg) */
static int v_ckpt_min_free(const void *f, struct err **err)
{
	uint64_t v = *(const uint64_t *)f;

	if (v < 1 || v > GW_CKPT_BYTES_MAX)
		return err_set(err, EINVAL, "must be 1 byte .. 1 EiB");
	return 0;
}

/* ---- the table ---- */

#define F(name) offsetof(struct gw_cfg, name)
#define STR(n, d, v, h) { #n, CFG_STRING, d, CFG_IMMUTABLE, F(n), v, NULL, h }
#define INT(n, d, v, h) { #n, CFG_INT, d, CFG_IMMUTABLE, F(n), v, NULL, h }
#define SIZE(n, d, h) { #n, CFG_SIZE, d, CFG_IMMUTABLE, F(n), cfg_validate_positive_size, NULL, h }
#define DUR(n, d, v, h) { #n, CFG_DURATION_MS, d, CFG_IMMUTABLE, F(n), v, NULL, h }
#define ENUM(n, d, names, h) { #n, CFG_ENUM, d, CFG_IMMUTABLE, F(n), NULL, names, h }
#define LIST(n, d, v, h) { #n, CFG_STRLIST, d, CFG_IMMUTABLE, F(n), v, NULL, h }

#define POS_DUR cfg_validate_positive_duration
#define POS_INT cfg_validate_positive_int

/*
 * The default server is Debian 12's classic Jupyter Notebook 6.4: it has a
 * browser UI (Jupyter Server 1.23 alone has none) and the same REST and
 * kernel WebSocket API. It listens on a Unix socket in the server's run
 * directory; authentication is the gateway's, so its own token, password and
 * XSRF check are off and it accepts any Host (the gateway validated it).
 * --allow-root: the process backend runs servers as nbgate's own user, and
 * `make run` runs as root; the sandboxed local backend (issue 3) drops to an
 * unprivileged uid instead.
 */
static const char default_server_cmd[] =
	"[\"/usr/bin/python3\",\"-m\",\"notebook\","
	"\"--NotebookApp.sock={sock}\",\"--NotebookApp.base_url={base_url}\","
	"\"--NotebookApp.token=\",\"--NotebookApp.password=\","
	"\"--NotebookApp.disable_check_xsrf=True\","
	"\"--NotebookApp.allow_remote_access=True\",\"--no-browser\","
	"\"--allow-root\",\"--NotebookApp.notebook_dir={home}\"]";

const struct cfg_entry gw_cfg_table[] = {
	STR(listen, "127.0.0.1:8000", v_listen, "address to listen on: host:port or [v6]:port"),
	STR(public_url, "", v_public_url, "URL users reach the hub at; \"\" = http(s)://<listen>"),
	STR(state_dir, "./state", v_nonempty, "database, keys and logs live here"),
	ENUM(log_level, "info", log_level_names, "error|warn|info|debug"),
	ENUM(log_format, "text", log_format_names, "text|json"),
	STR(access_log, "", NULL, "\"\" = <state_dir>/access.log, \"-\" = stderr"),
	STR(tls_cert, "", NULL, "PEM certificate chain file (with tls_key)"),
	STR(tls_key, "", NULL, "PEM private key file (with tls_cert)"),
	STR(http_redirect_listen, "", v_listen_opt, "plain-HTTP listener redirecting to https"),
	ENUM(url_mode, "path", url_mode_names, "path: /user/<name>/; subdomain: <name>.<domain>"),
	STR(domain, "", v_domain, "base domain for subdomain mode"),
	SIZE(header_bytes, "16KiB", "maximum size of all request headers"),
	SIZE(header_line, "8KiB", "maximum size of one header line"),
	SIZE(request_line, "8KiB", "maximum size of the request line"),
	INT(header_count, "100", v_header_count, "maximum number of request headers (1..256)"),
	SIZE(api_body_max, "1MiB", "maximum body of a hub API request"),
	SIZE(proxy_body_max, "1GiB", "maximum body of a proxied request"),
	SIZE(ws_message_max, "128MiB", "maximum WebSocket message size"),
	DUR(header_timeout, "10s", POS_DUR, "time allowed to send the request headers"),
	DUR(body_idle_timeout, "30s", POS_DUR, "maximum silence while a body is sent"),
	SIZE(body_min_rate, "1KiB", "bytes/s a request body must average after 10 s"),
	DUR(keepalive_timeout, "60s", POS_DUR, "idle time before a kept-alive connection closes"),
	INT(keepalive_max_requests, "1000", POS_INT, "requests per connection"),
	DUR(upstream_connect_timeout, "10s", POS_DUR, "connect timeout to a user server"),
	INT(max_conns, "10000", POS_INT, "maximum client connections"),
	INT(max_conns_per_ip, "256", POS_INT, "maximum client connections per address"),
	DUR(session_idle_timeout, "24h", POS_DUR, "session ends after this much inactivity"),
	DUR(session_absolute_timeout, "14d", POS_DUR, "session ends this long after login"),
	DUR(token_max_expires_in, "0", cfg_validate_nonneg_duration, "cap on API token lifetime; 0 = none"),
	INT(login_max_failures, "5", POS_INT, "failed logins before backoff"),
	DUR(login_backoff_base, "1s", POS_DUR, "first login backoff, doubling"),
	DUR(login_backoff_max, "15m", POS_DUR, "longest login backoff"),
	INT(token_guess_limit, "100", POS_INT, "bad tokens per address per token_guess_window"),
	DUR(token_guess_window, "10s", POS_DUR, "window for token_guess_limit"),
	INT(hash_concurrency, "2", v_threads, "password hashes in flight (1..64)"),
	INT(worker_threads, "2", v_threads, "worker threads for blocking jobs (1..64)"),
	ENUM(spawner, "local", spawner_names,
	     "process|local|kubernetes (process runs servers unsandboxed)"),
	LIST(server_cmd, default_server_cmd, v_server_cmd,
	     "server command; {sock} {base_url} {home} are substituted"),
	LIST(server_env, "", v_server_env, "extra NAME=VALUE for servers (allow-listed names)"),
	DUR(spawn_timeout, "60s", POS_DUR, "time a server has to become ready"),
	LIST(cors_origins, "", v_cors_origins, "origins allowed to call the API cross-site"),
	LIST(admin_users, "", v_admin_users, "users made admin at startup"),
	LIST(images, "jupyterlab,vscode,minimal", v_images,
	     "image names users may pick in user_options.image"),
	STR(image_store, "/var/cache/nbgate/images", v_abs_path,
	    "image store directory (OCI layout, `nbgate image build`)"),
	STR(seccomp_profile, "", v_abs_path_opt,
	    "seccomp profile (absolute); \"\" = <exe dir>/../sandbox/profiles/default.json"),
	INT(sandbox_uid_base, "200000", v_uid_base, "sandbox uid = sandbox_uid_base + user id"),
	STR(criu_path, "/usr/local/sbin/criu", v_abs_path,
	    "CRIU >= 4.2 for checkpoints (`make criu` installs it there)"),
	STR(checkpoint_dir, "", v_abs_path_opt,
	    "checkpoint images (absolute); \"\" = <state_dir>/checkpoints"),
	INT(checkpoint_keep, "3", v_ckpt_keep, "checkpoints kept per server, newest first (1..1000)"),
	{ "checkpoint_user_quota", CFG_SIZE, "0", CFG_IMMUTABLE, F(checkpoint_user_quota),
	  v_ckpt_quota, NULL, "bytes of checkpoints per user; 0 = no quota" },
	{ "checkpoint_min_free", CFG_SIZE, "1GiB", CFG_IMMUTABLE, F(checkpoint_min_free),
	  v_ckpt_min_free, NULL, "free disk space a dump must leave (refused before it starts)" },
	{ "cookie_secure", CFG_BOOL, NULL, CFG_IMMUTABLE, F(cookie_secure), NULL, NULL,
	  "Secure cookie flag; default true with TLS or an https public_url" },
	{ NULL },
};

/* ---- cross-field checks and derived values ---- */

static int gw_cfg_check_tls(struct gw_cfg *c, struct err **err)
{
	bool cert = c->tls_cert[0], key = c->tls_key[0];

	if (cert != key)
		return err_set(err, EINVAL,
			       "tls_cert and tls_key must be set together (only %s is set)",
			       cert ? "tls_cert" : "tls_key");
	c->tls = cert;
	if (c->http_redirect_listen[0] && !c->tls)
		return err_set(err, EINVAL, "http_redirect_listen needs tls_cert and tls_key");
	return 0;
}

static void gw_cfg_derive_public_url(struct gw_cfg *c)
{
	size_t n;

	if (!c->public_url[0]) {
		free(c->public_url);
		c->public_url = xasprintf("%s://%s", c->tls ? "https" : "http", c->listen);
	}
	n = strlen(c->public_url);
	if (n && c->public_url[n - 1] == '/')
		c->public_url[n - 1] = '\0';
}

/*
 * <state_dir>/checkpoints, absolute: the spawner hands it to CRIU, which
 * runs with another working directory, and state_dir may be relative.
 */
static void gw_cfg_derive_checkpoint_dir(struct gw_cfg *c)
{
	char cwd[4096];
	const char *sd = c->state_dir;

	if (c->checkpoint_dir[0])
		return;
	free(c->checkpoint_dir);
	while (sd[0] == '.' && sd[1] == '/')
		sd += 2;
	if (sd[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		c->checkpoint_dir = xasprintf("%s/checkpoints", sd);
	else if (!strcmp(sd, "."))
		c->checkpoint_dir = xasprintf("%s/checkpoints", cwd);
	else
		c->checkpoint_dir = xasprintf("%s/%s/checkpoints", cwd, sd);
}

int gw_cfg_finish(struct gw_cfg *c, struct err **err)
{
	if (gw_cfg_check_tls(c, err) < 0)
		return -EINVAL;
	if (c->url_mode == GW_URL_SUBDOMAIN && !c->domain[0])
		return err_set(err, EINVAL, "url_mode subdomain needs domain");
	if (c->login_backoff_base > c->login_backoff_max)
		return err_set(err, EINVAL, "login_backoff_base exceeds login_backoff_max");
	if (c->session_idle_timeout > c->session_absolute_timeout)
		return err_set(err, EINVAL,
			       "session_idle_timeout exceeds session_absolute_timeout");
	if (gw_cfg_local_finish(c, err) < 0)
		return -EINVAL;
	if (gw_cfg_k8s_finish(c, err) < 0)
		return -EINVAL;
	gw_cfg_derive_checkpoint_dir(c);
	gw_cfg_derive_public_url(c);
	if (!c->access_log[0]) {
		free(c->access_log);
		c->access_log = xasprintf("%s/access.log", c->state_dir);
	}
	if (!c->cookie_secure_set)
		c->cookie_secure = c->tls || !strncmp(c->public_url, "https://", 8);
	return 0;
}

/*
 * Takes the JSON-valued keys (gw_cfg_json_table) out of root and applies
 * them; common/cfg handles the rest.
 */
static int gw_cfg_take_json_keys(struct gw_cfg *c, cJSON *root, struct err **err)
{
	for (const struct gw_cfg_json_entry *e = gw_cfg_json_table; e->name; e++) {
		cleanup_json cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(root, e->name);

		if (!v)
			continue;
		if (cJSON_GetObjectItemCaseSensitive(root, e->name))
			return err_set(err, EINVAL, "duplicate config key '%s'", e->name);
		if (e->parse(c, v, err) < 0)
			return err_wrap(err, "config key '%s'", e->name);
	}
	return 0;
}

static int gw_cfg_load_path(struct gw_cfg *c, const char *path, struct err **err)
{
	cleanup_free char *text = NULL, *rest = NULL;
	cleanup_json cJSON *root = NULL;
	int r = file_read_all(path, 0, GW_CFG_FILE_MAX, &text, NULL, err);

	if (r < 0 || !text)
		return r < 0 ? r : -EINVAL;
	root = json_parse(text, strlen(text), err);
	if (!root)
		return err_wrap(err, "config file '%s'", path);
	if (!cJSON_IsObject(root))
		return err_set(err, EINVAL, "config file '%s': config must be a JSON object", path);
	/* an explicit cookie_secure false must win over TLS */
	c->cookie_secure_set = cJSON_GetObjectItemCaseSensitive(root, "cookie_secure") != NULL;
	if (gw_cfg_take_json_keys(c, root, err) < 0)
		return err_wrap(err, "config file '%s'", path);
	rest = json_print(root);
	if (cfg_load_json(gw_cfg_table, c, rest, strlen(rest), err) < 0)
		return err_wrap(err, "config file '%s'", path);
	return 0;
}

static int gw_cfg_load_json_env(struct gw_cfg *c, struct err **err)
{
	for (const struct gw_cfg_json_entry *e = gw_cfg_json_table; e->name; e++) {
		cleanup_free char *var = xasprintf(GW_ENV_PREFIX "%s", e->name);
		const char *val;

		for (char *p = var; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		val = getenv(var);
		if (!val)
			continue;
		{
			cleanup_free char *where = xasprintf("environment variable %s", var);

			if (gw_cfg_json_set_text(c, e, val, where, err) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

int gw_cfg_load(struct gw_cfg *c, const char *path_or_null, struct err **err)
{
	int r;

	memset(c, 0, sizeof(*c));
	r = cfg_defaults(gw_cfg_table, c, err);
	if (r >= 0)
		r = gw_cfg_json_defaults(c, err);
	if (r >= 0 && path_or_null)
		r = gw_cfg_load_path(c, path_or_null, err);
	if (r >= 0)
		r = cfg_load_env(gw_cfg_table, c, GW_ENV_PREFIX, err);
	if (r >= 0)
		r = gw_cfg_load_json_env(c, err);
	if (getenv(GW_ENV_PREFIX "COOKIE_SECURE"))
		c->cookie_secure_set = true;
	if (r >= 0)
		r = cfg_validate(gw_cfg_table, c, err);
	if (r >= 0)
		r = gw_cfg_finish(c, err);
	if (r < 0)
		gw_cfg_free(c);
	return r < 0 ? r : 0;
}

char *gw_cfg_print(const struct gw_cfg *c)
{
	cleanup_free char *text = cfg_print(gw_cfg_table, c);
	cleanup_json cJSON *root = json_parse(text, strlen(text), NULL);

	if (!root)
		return steal_ptr(&text);
	for (const struct gw_cfg_json_entry *e = gw_cfg_json_table; e->name; e++)
		cJSON_AddItemToObject(root, e->name, e->print(c));
	return json_print_pretty(root);
}

void gw_cfg_free(struct gw_cfg *c)
{
	if (!c)
		return;
	cfg_free(gw_cfg_table, c);
	gw_cfg_json_free(c);
	memset(c, 0, sizeof(*c));
}
