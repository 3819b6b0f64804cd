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
	assert_int_equal(c.spawner, GW_SPAWNER_PROCESS);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
