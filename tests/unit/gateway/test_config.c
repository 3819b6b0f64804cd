/* Unit tests for gateway/config.c: defaults, cross-field rules, validators. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/config.c"

#include <stdio.h>
#include <unistd.h>

extern char **environ;

/* Drops every NBGATE_* variable so the host environment can't leak in. */
static int clean_env(void **state)
{
	for (;;) {
		char **e = environ, *name = NULL;

		for (; e && *e; e++)
			if (!strncmp(*e, "NBGATE_", 7))
				break;
		if (!e || !*e)
			return 0;
		name = xstrndup(*e, strcspn(*e, "="));
		unsetenv(name);
		free(name);
	}
}

static char *tmp_json(const char *text)
{
	char *path = xstrdup("/tmp/nbgate-test-gwcfg-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Loads text as a config file; returns 0 or the error code, message in *msg. */
static int load_text(struct gw_cfg *c, const char *text, char **msg)
{
	char *path = tmp_json(text);
	struct err *e = NULL;
	int r = gw_cfg_load(c, path, &e);

	unlink(path);
	free(path);
	if (msg)
		*msg = e ? xstrdup(e->msg) : NULL;
	err_free(&e);
	return r;
}

static void expect_reject(const char *text, const char *needle)
{
	struct gw_cfg c;
	char *msg = NULL;

	assert_int_equal(load_text(&c, text, &msg), -EINVAL);
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("'%s': message '%s' lacks '%s'", text, msg, needle);
	free(msg);
	assert_null(c.listen); /* freed on failure */
}

static void expect_accept(const char *text)
{
	struct gw_cfg c;
	char *msg = NULL;

	if (load_text(&c, text, &msg))
		fail_msg("'%s' rejected: %s", text, msg);
	gw_cfg_free(&c);
}

static void test_config_defaults_valid(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;

	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_null(e);
	assert_string_equal(c.listen, "127.0.0.1:8000");
	assert_string_equal(c.public_url, "http://127.0.0.1:8000");
	assert_string_equal(c.state_dir, "./state");
	assert_string_equal(c.access_log, "./state/access.log");
	assert_int_equal(c.log_level, GW_LOG_INFO);
	assert_int_equal(c.url_mode, GW_URL_PATH);
	assert_int_equal(c.spawner, GW_SPAWNER_LOCAL);
	assert_false(c.tls);
	assert_false(c.cookie_secure);
	assert_int_equal(c.header_bytes, 16384);
	assert_int_equal(c.header_line, 8192);
	assert_int_equal(c.header_count, 100);
	assert_int_equal(c.api_body_max, 1 << 20);
	assert_int_equal(c.proxy_body_max, 1ULL << 30);
	assert_int_equal(c.ws_message_max, 128ULL << 20);
	assert_int_equal(c.header_timeout, 10000);
	assert_int_equal(c.session_idle_timeout, 24LL * 3600000);
	assert_int_equal(c.session_absolute_timeout, 14LL * 86400000);
	assert_int_equal(c.login_backoff_max, 15 * 60000);
	assert_int_equal(c.token_max_expires_in, 0);
	assert_string_equal(c.server_cmd[0], "/usr/bin/python3");
	assert_string_equal(c.server_cmd[2], "notebook");
	assert_string_equal(c.server_cmd[3], "--NotebookApp.sock={sock}");
	assert_int_equal(xstrv_len(c.server_cmd), 12);
	assert_int_equal(xstrv_len(c.server_env), 0);
	gw_cfg_free(&c);
	assert_null(c.listen);
}

static void test_config_print_round_trips(void **state)
{
	struct gw_cfg c, c2;
	char *out, *path;
	struct err *e = NULL;

	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	out = gw_cfg_print(&c);
	assert_non_null(strstr(out, "\"header_bytes\":\t\"16KiB\""));
	path = tmp_json(out);
	assert_int_equal(gw_cfg_load(&c2, path, &e), 0);
	unlink(path);
	free(path);
	assert_int_equal(c2.header_bytes, c.header_bytes);
	assert_string_equal(c2.server_cmd[10], c.server_cmd[10]);
	free(out);
	gw_cfg_free(&c);
	gw_cfg_free(&c2);
}

static void test_config_subdomain_needs_domain(void **state)
{
	expect_reject("{\"url_mode\": \"subdomain\"}", "needs domain");
	expect_accept("{\"url_mode\": \"subdomain\", \"domain\": \"nb.example.org\"}");
	expect_reject("{\"domain\": \"bad domain\"}", "'domain'");
}

static void test_config_tls_both_or_neither(void **state)
{
	struct gw_cfg c;

	expect_reject("{\"tls_cert\": \"/etc/c.pem\"}", "only tls_cert");
	expect_reject("{\"tls_key\": \"/etc/k.pem\"}", "only tls_key");
	assert_int_equal(load_text(&c, "{\"tls_cert\": \"/c\", \"tls_key\": \"/k\","
				   " \"listen\": \"[::1]:8443\"}", NULL), 0);
	assert_true(c.tls);
	assert_true(c.cookie_secure);
	assert_string_equal(c.public_url, "https://[::1]:8443");
	gw_cfg_free(&c);
	/* an explicit false wins over the TLS default */
	assert_int_equal(load_text(&c, "{\"tls_cert\": \"/c\", \"tls_key\": \"/k\","
				   " \"cookie_secure\": false}", NULL), 0);
	assert_false(c.cookie_secure);
	gw_cfg_free(&c);
	expect_reject("{\"http_redirect_listen\": \"0.0.0.0:80\"}", "needs tls");
}

static void test_config_listen_syntax(void **state)
{
	static const char *const good[] = { "127.0.0.1:1", "0.0.0.0:65535",
					    "[::1]:8000", "[::]:80", "localhost:8000" };
	static const char *const bad[] = { "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
					   ":8000", "[::1]8000", "[::1:80", "host:80x",
					   "a b:80", "[zz]:80" };
	char buf[128];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(buf, sizeof(buf), "{\"listen\": \"%s\"}", good[i]);
		expect_accept(buf);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "{\"listen\": \"%s\"}", bad[i]);
		expect_reject(buf, "config key 'listen'");
	}
}

static void test_config_split_listen(void **state)
{
	char *host = NULL;
	int port = 0;

	assert_int_equal(gw_cfg_split_listen("[::1]:8443", &host, &port, NULL), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8443);
	free(host);
	assert_int_equal(gw_cfg_split_listen("10.0.0.1:80", &host, &port, NULL), 0);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 80);
	free(host);
}

static void test_config_public_url(void **state)
{
	struct gw_cfg c;

	assert_int_equal(load_text(&c, "{\"public_url\": \"https://nb.example.org/\"}",
				   NULL), 0);
	assert_string_equal(c.public_url, "https://nb.example.org");
	assert_true(c.cookie_secure); /* https public URL behind a TLS proxy */
	gw_cfg_free(&c);
	expect_accept("{\"public_url\": \"http://[::1]:8000\"}");
	expect_reject("{\"public_url\": \"https://nb.example.org/hub\"}", "no path");
	expect_reject("{\"public_url\": \"ftp://x\"}", "http");
	expect_reject("{\"public_url\": \"https://u@x\"}", "'public_url'");
	expect_reject("{\"public_url\": \"https://x?y\"}", "'public_url'");
	expect_reject("{\"public_url\": \"https://x:99999\"}", "port");
	expect_reject("{\"public_url\": \"https://\"}", "bad host");
}

static void test_config_limits_both_sides(void **state)
{
	expect_accept("{\"header_count\": 1}");
	expect_accept("{\"header_count\": 256}");
	expect_reject("{\"header_count\": 0}", "'header_count'");
	expect_reject("{\"header_count\": 257}", "'header_count'");
	expect_accept("{\"header_bytes\": 1}");
	expect_reject("{\"header_bytes\": 0}", "'header_bytes'");
	expect_reject("{\"proxy_body_max\": \"0MiB\"}", "'proxy_body_max'");
	expect_reject("{\"api_body_max\": \"1 MiB\"}", "'api_body_max'");
	expect_reject("{\"header_timeout\": \"0s\"}", "'header_timeout'");
	expect_accept("{\"token_max_expires_in\": \"0\"}");
	expect_reject("{\"worker_threads\": 0}", "'worker_threads'");
	expect_reject("{\"worker_threads\": 65}", "'worker_threads'");
	expect_reject("{\"login_backoff_base\": \"1h\", \"login_backoff_max\": \"1m\"}",
		      "login_backoff_base");
	expect_reject("{\"log_level\": \"verbose\"}", "error|warn|info|debug");
	expect_reject("{\"no_such_key\": 1}", "unknown config key 'no_such_key'");
}

static void test_config_server_cmd_env(void **state)
{
	expect_reject("{\"server_cmd\": []}", "'server_cmd'");
	expect_reject("{\"server_cmd\": [\"python3\"]}", "absolute path");
	expect_accept("{\"server_cmd\": [\"/bin/true\"]}");
	expect_accept("{\"server_env\": [\"LANG=C.UTF-8\", \"LC_ALL=C\", \"HTTPS_PROXY=http://p:3128\"]}");
	expect_reject("{\"server_env\": [\"LD_PRELOAD=/x.so\"]}", "allow-list");
	expect_reject("{\"server_env\": [\"PATH=/tmp\"]}", "allow-list");
	expect_reject("{\"server_env\": [\"PYTHONPATH=/tmp\"]}", "allow-list");
	expect_reject("{\"server_env\": [\"NBGATE_API_TOKEN=x\"]}", "allow-list");
	expect_reject("{\"server_env\": [\"LANG\"]}", "NAME=VALUE");
	expect_reject("{\"server_env\": [\"LC_=x\"]}", "allow-list");
	expect_reject("{\"cors_origins\": [\"*\"]}", "'cors_origins'");
	expect_accept("{\"cors_origins\": [\"https://app.example.org\"]}");
}

static void test_config_env_override(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;
	char *path = tmp_json("{\"listen\": \"127.0.0.1:9000\", \"max_conns\": 5}");

	setenv("NBGATE_LISTEN", "127.0.0.1:9100", 1);
	setenv("NBGATE_HEADER_BYTES", "32KiB", 1);
	setenv("NBGATE_ADMIN_USERS", "alice,bob", 1);
	assert_int_equal(gw_cfg_load(&c, path, &e), 0);
	assert_string_equal(c.listen, "127.0.0.1:9100");
	assert_int_equal(c.max_conns, 5);
	assert_int_equal(c.header_bytes, 32768);
	assert_string_equal(c.admin_users[1], "bob");
	gw_cfg_free(&c);
	setenv("NBGATE_HEADER_TIMEOUT", "soon", 1);
	assert_true(gw_cfg_load(&c, path, &e) < 0);
	assert_non_null(strstr(e->msg, "NBGATE_HEADER_TIMEOUT"));
	err_free(&e);
	unlink(path);
	free(path);
	clean_env(NULL);
}

static void test_config_missing_file(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;

	assert_int_equal(gw_cfg_load(&c, "/nonexistent/nbgate.json", &e), -ENOENT);
	assert_non_null(strstr(e->msg, "/nonexistent/nbgate.json"));
	err_free(&e);
}

/* ---- local backend settings (issue 3) ---- */

static void test_config_local_defaults(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;
	struct spawner_cfg sc = { 0 };

	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_int_equal(c.n_profiles, 2);
	assert_string_equal(c.profiles[0].name, "jupyterlab");
	assert_string_equal(c.profiles[0].image, "jupyterlab");
	assert_int_equal(c.profiles[0].cpu_millis, 2000);
	assert_int_equal(c.profiles[0].memory_bytes, 4LL << 30);
	assert_string_equal(c.profiles[0].network, "none");
	assert_string_equal(c.profiles[1].name, "vscode");
	assert_string_equal(c.profiles[1].image, "vscode");
	assert_string_equal(c.images[0], "jupyterlab");
	assert_string_equal(c.images[2], "minimal");
	assert_null(c.images[3]);
	assert_int_equal(c.quota.max_servers, 4);
	assert_int_equal(c.quota.max_cpu_millis, 4000);
	assert_int_equal(c.quota.max_memory_bytes, 8LL << 30);
	assert_int_equal(c.quota.max_gpus, 1);
	assert_string_equal(c.image_store, "/var/cache/nbgate/images");
	assert_int_equal(c.sandbox_uid_base, 200000);
	/* next to the test binary: <exe dir>/../sandbox/profiles/default.json */
	assert_true(c.seccomp_profile[0] == '/');
	assert_null(strstr(c.seccomp_profile, "/../"));
	assert_non_null(strstr(c.seccomp_profile, "/sandbox/profiles/default.json"));
	gw_cfg_spawner_fill(&c, &sc);
	assert_ptr_equal(sc.profiles, c.profiles);
	assert_int_equal(sc.n_profiles, 2);
	assert_string_equal(sc.images[1], "vscode");
	assert_int_equal(sc.quota.max_servers, 4);
	assert_int_equal(sc.uid_base, 200000);
	assert_ptr_equal(sc.seccomp_profile, c.seccomp_profile);
	assert_non_null(gw_cfg_profile_find(&c, "vscode"));
	assert_null(gw_cfg_profile_find(&c, "vscod"));
	assert_true(gw_cfg_image_allowed(&c, "minimal"));
	assert_false(gw_cfg_image_allowed(&c, "minimal2"));
	gw_cfg_free(&c);
	assert_null(c.profiles);
}

static void test_config_profiles_parse(void **state)
{
	struct gw_cfg c;
	char *msg = NULL;

	assert_int_equal(load_text(&c, "{\"profiles\": [{\"name\": \"gpu-1\", \"display_name\": "
				   "\"One GPU\", \"image\": \"jupyterlab\", \"cpu\": 0.5, "
				   "\"memory\": \"512M\", \"pids\": 2048, \"gpus\": 1, "
				   "\"gpu_model\": \"A100\", \"network\": \"egress\"}, "
				   "{\"name\": \"small\", \"image\": \"minimal\", \"cpu\": 1, "
				   "\"memory\": 1073741824}]}", &msg), 0);
	assert_int_equal(c.n_profiles, 2);
	assert_string_equal(c.profiles[0].display_name, "One GPU");
	assert_int_equal(c.profiles[0].cpu_millis, 500);
	assert_int_equal(c.profiles[0].memory_bytes, 512LL << 20);
	assert_int_equal(c.profiles[0].pids_max, 2048);
	assert_int_equal(c.profiles[0].gpus, 1);
	assert_string_equal(c.profiles[0].gpu_model, "A100");
	assert_string_equal(c.profiles[0].network, "egress");
	/* display_name defaults to the name */
	assert_string_equal(c.profiles[1].display_name, "small");
	assert_int_equal(c.profiles[1].memory_bytes, 1LL << 30);
	assert_string_equal(c.profiles[1].gpu_model, "");
	gw_cfg_free(&c);
}

#define P(extra) "{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", " extra "}]}"
#define PCM(extra) P("\"cpu\": 1, \"memory\": \"1G\"" extra)

static void test_config_profiles_limits(void **state)
{
	/* cpu: 0.001 .. quota.max_cpu (4) by default; 1024 with no quota */
	expect_accept(P("\"cpu\": 0.001, \"memory\": \"1G\""));
	expect_reject(P("\"cpu\": 0.0001, \"memory\": \"1G\""), "profiles[0].cpu");
	expect_reject(P("\"cpu\": 0, \"memory\": \"1G\""), "profiles[0].cpu");
	expect_reject(P("\"cpu\": -1, \"memory\": \"1G\""), "profiles[0].cpu");
	expect_reject(P("\"cpu\": \"2\", \"memory\": \"1G\""), "profiles[0].cpu");
	expect_accept(P("\"cpu\": 4, \"memory\": \"1G\""));
	expect_reject(P("\"cpu\": 4.5, \"memory\": \"1G\""), "profiles[0].cpu exceeds quota.max_cpu");
	expect_accept("{\"quota\": {}, \"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", "
		      "\"cpu\": 1024, \"memory\": \"1G\"}]}");
	expect_reject("{\"quota\": {}, \"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", "
		      "\"cpu\": 1024.001, \"memory\": \"1G\"}]}", "profiles[0].cpu");
	/* memory: 32M .. quota.max_memory (8G) */
	expect_accept(P("\"cpu\": 1, \"memory\": \"32M\""));
	expect_reject(P("\"cpu\": 1, \"memory\": \"31M\""), "profiles[0].memory");
	expect_accept(P("\"cpu\": 1, \"memory\": \"8G\""));
	expect_reject(P("\"cpu\": 1, \"memory\": 8589934593"), "exceeds quota.max_memory");
	expect_reject(P("\"cpu\": 1, \"memory\": \"lots\""), "profiles[0].memory");
	expect_reject(P("\"cpu\": 1, \"memory\": 1.5"), "profiles[0].memory");
	expect_reject(P("\"cpu\": 1"), "profiles[0].memory: required");
	expect_reject(P("\"memory\": \"1G\""), "profiles[0].cpu: required");
	/* pids 0 or 16..1000000 */
	expect_accept(PCM(", \"pids\": 0"));
	expect_accept(PCM(", \"pids\": 16"));
	expect_reject(PCM(", \"pids\": 15"), "profiles[0].pids");
	expect_accept(PCM(", \"pids\": 1000000"));
	expect_reject(PCM(", \"pids\": 1000001"), "profiles[0].pids");
	expect_reject(PCM(", \"pids\": 1.5"), "profiles[0].pids");
	/* gpus 0..quota.max_gpus (1) */
	expect_accept(PCM(", \"gpus\": 1"));
	expect_reject(PCM(", \"gpus\": 2"), "profiles[0].gpus exceeds quota.max_gpus");
	expect_reject(PCM(", \"gpus\": -1"), "profiles[0].gpus");
	expect_reject("{\"quota\": {\"max_gpus\": 16}, \"profiles\": [{\"name\": \"p\", \"image\": "
		      "\"minimal\", \"cpu\": 1, \"memory\": \"1G\", \"gpus\": 17}]}",
		      "profiles[0].gpus");
}

static void test_config_profiles_strict(void **state)
{
	expect_reject("{\"profiles\": []}", "'profiles'");
	expect_reject("{\"profiles\": {}}", "'profiles'");
	expect_reject("{\"profiles\": [1]}", "profiles[0]: expected an object");
	expect_reject(PCM(", \"command\": \"/bin/sh\""), "profiles[0].command: unknown key");
	expect_reject(PCM(", \"cpu\": 2"), "profiles[0].cpu: duplicate key");
	expect_reject(P("\"cpu\": 1, \"memory\": \"1G\", \"network\": \"host\""),
		      "profiles[0].network");
	expect_accept(PCM(", \"network\": \"none\""));
	expect_reject("{\"profiles\": [{\"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\"}]}",
		      "profiles[0].name: required");
	expect_reject("{\"profiles\": [{\"name\": \"p\", \"cpu\": 1, \"memory\": \"1G\"}]}",
		      "profiles[0].image: required");
	expect_reject("{\"profiles\": [{\"name\": \"P\", \"image\": \"minimal\", \"cpu\": 1, "
		      "\"memory\": \"1G\"}]}", "profiles[0].name");
	expect_reject("{\"profiles\": [{\"name\": \"-p\", \"image\": \"minimal\", \"cpu\": 1, "
		      "\"memory\": \"1G\"}]}", "profiles[0].name");
	expect_accept("{\"profiles\": [{\"name\": \"abcdefghijklmnopqrstuvwxyz012345\", "
		      "\"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\"}]}");
	expect_reject("{\"profiles\": [{\"name\": \"abcdefghijklmnopqrstuvwxyz0123456\", "
		      "\"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\"}]}",
		      "profiles[0].name");
	expect_reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"../etc\", \"cpu\": 1, "
		      "\"memory\": \"1G\"}]}", "profiles[0].image");
	expect_reject(PCM(", \"display_name\": \"a\\nb\""), "profiles[0].display_name");
	expect_reject(PCM(", \"display_name\": \"\""), "profiles[0].display_name");
	expect_reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, "
		      "\"memory\": \"1G\"}, {\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, "
		      "\"memory\": \"1G\"}]}", "profiles[1].name: 'p' is used twice");
	expect_reject("{\"profiles\": [], \"profiles\": []}", "'profiles'");
}

static void test_config_quota_limits(void **state)
{
	struct gw_cfg c;

	assert_int_equal(load_text(&c, "{\"quota\": {}}", NULL), 0);
	assert_int_equal(c.quota.max_servers, 0); /* unlimited */
	assert_int_equal(c.quota.max_cpu_millis, 0);
	gw_cfg_free(&c);
	assert_int_equal(load_text(&c, "{\"quota\": {\"max_servers\": 2, \"max_cpu\": 8, "
				   "\"max_memory\": \"16G\", \"max_gpus\": 2}}", NULL), 0);
	assert_int_equal(c.quota.max_servers, 2);
	assert_int_equal(c.quota.max_cpu_millis, 8000);
	assert_int_equal(c.quota.max_memory_bytes, 16LL << 30);
	assert_int_equal(c.quota.max_gpus, 2);
	gw_cfg_free(&c);
	expect_accept("{\"quota\": {\"max_servers\": 1000}}");
	expect_reject("{\"quota\": {\"max_servers\": 1001}}", "quota.max_servers");
	expect_reject("{\"quota\": {\"max_servers\": -1}}", "quota.max_servers");
	expect_accept("{\"quota\": {\"max_cpu\": 0}}");
	expect_reject("{\"quota\": {\"max_cpu\": -0.5}}", "quota.max_cpu");
	expect_reject("{\"quota\": {\"max_cpu\": 1}}", "profiles[0].cpu exceeds quota.max_cpu");
	expect_accept("{\"quota\": {\"max_memory\": 0}}");
	expect_reject("{\"quota\": {\"max_memory\": \"16M\"}}", "quota.max_memory");
	expect_accept("{\"quota\": {\"max_gpus\": 16}}");
	expect_reject("{\"quota\": {\"max_gpus\": 17}}", "quota.max_gpus");
	expect_reject("{\"quota\": {\"max_disk\": 1}}", "quota.max_disk: unknown key");
	expect_reject("{\"quota\": []}", "'quota'");
}

static void test_config_local_scalars(void **state)
{
	expect_accept("{\"images\": []}");
	expect_accept("{\"images\": [\"my-image_2.0\"]}");
	expect_reject("{\"images\": [\"Bad\"]}", "'images'");
	expect_reject("{\"images\": [\"a/b\"]}", "'images'");
	expect_reject("{\"images\": [\"a\", \"a\"]}", "listed twice");
	expect_reject("{\"image_store\": \"relative/dir\"}", "'image_store'");
	expect_accept("{\"seccomp_profile\": \"/etc/nbgate/seccomp.json\"}");
	expect_reject("{\"seccomp_profile\": \"seccomp.json\"}", "'seccomp_profile'");
	expect_accept("{\"sandbox_uid_base\": 1000}");
	expect_reject("{\"sandbox_uid_base\": 999}", "'sandbox_uid_base'");
	expect_accept("{\"sandbox_uid_base\": 4000000000}");
	expect_reject("{\"sandbox_uid_base\": 4000000001}", "'sandbox_uid_base'");
	expect_accept("{\"spawner\": \"process\"}");
}

static void test_config_local_env_and_print(void **state)
{
	struct gw_cfg c, c2;
	struct err *e = NULL;
	char *out, *path;

	setenv("NBGATE_PROFILES", "[{\"name\":\"env\",\"image\":\"minimal\",\"cpu\":1,"
	       "\"memory\":\"768M\"}]", 1);
	setenv("NBGATE_QUOTA", "{\"max_servers\": 7}", 1);
	setenv("NBGATE_IMAGE_STORE", "/srv/images", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_string_equal(c.profiles[0].name, "env");
	assert_int_equal(c.quota.max_servers, 7);
	assert_string_equal(c.image_store, "/srv/images");
	out = gw_cfg_print(&c);
	assert_non_null(strstr(out, "\"memory\":\t\"768M\""));
	assert_non_null(strstr(out, "\"max_servers\":\t7"));
	clean_env(NULL);
	path = tmp_json(out);
	assert_int_equal(gw_cfg_load(&c2, path, &e), 0);
	assert_string_equal(c2.profiles[0].name, "env");
	assert_int_equal(c2.profiles[0].memory_bytes, 768LL << 20);
	assert_int_equal(c2.quota.max_servers, 7);
	assert_string_equal(c2.seccomp_profile, c.seccomp_profile);
	unlink(path);
	free(path);
	free(out);
	gw_cfg_free(&c);
	gw_cfg_free(&c2);
	setenv("NBGATE_QUOTA", "{\"max_servers\": 7", 1);
	assert_true(gw_cfg_load(&c, NULL, &e) < 0);
	assert_non_null(strstr(e->msg, "NBGATE_QUOTA"));
	err_free(&e);
	setenv("NBGATE_QUOTA", "{\"max_servers\": 1001}", 1);
	assert_true(gw_cfg_load(&c, NULL, &e) < 0);
	assert_non_null(strstr(e->msg, "quota.max_servers"));
	err_free(&e);
	clean_env(NULL);
}

#define T(f) cmocka_unit_test_setup(f, clean_env)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_defaults_valid),
		T(test_config_print_round_trips),
		T(test_config_subdomain_needs_domain),
		T(test_config_tls_both_or_neither),
		T(test_config_listen_syntax),
		T(test_config_split_listen),
		T(test_config_public_url),
		T(test_config_limits_both_sides),
		T(test_config_server_cmd_env),
		T(test_config_env_override),
		T(test_config_missing_file),
		T(test_config_local_defaults),
		T(test_config_profiles_parse),
		T(test_config_profiles_limits),
		T(test_config_profiles_strict),
		T(test_config_quota_limits),
		T(test_config_local_scalars),
		T(test_config_local_env_and_print),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
