/*
 * Unit tests for spawner/process.c without forking: placeholder expansion
 * (one argv element stays one element, no shell), the child environment,
 * upstream parsing, the log tail in failure messages and the non-blocking
 * readiness probe against an in-process listener.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "spawner/process.c"

static const struct spawner_vars vars = {
	.sock = "/st/run/alice/server.sock",
	.base_url = "/user/alice/",
	.home = "/st/home/alice",
	.user = "alice",
	.server = "",
	.run_dir = "/st/run/alice",
	.port = "8123",
};

static void expect_expand(const struct spawner_vars *v, const char *arg, const char *want)
{
	char *got = spawner_expand_arg(arg, v);

	assert_string_equal(got, want);
	free(got);
}

static void test_process_expand_placeholders(void **state)
{
	expect_expand(&vars, "{sock}", "/st/run/alice/server.sock");
	expect_expand(&vars, "--ServerApp.base_url={base_url}", "--ServerApp.base_url=/user/alice/");
	expect_expand(&vars, "{home}:{user}:{server}:{port}:{run_dir}",
		      "/st/home/alice:alice::8123:/st/run/alice");
	/* unknown placeholders, JSON and stray braces stay verbatim */
	expect_expand(&vars, "{nope}", "{nope}");
	expect_expand(&vars, "{\"a\": {sock}}", "{\"a\": /st/run/alice/server.sock}");
	expect_expand(&vars, "{", "{");
	expect_expand(&vars, "}{", "}{");
	expect_expand(&vars, "", "");
	expect_expand(&vars, "{{user}}", "{alice}");
}

/* A value is inserted as bytes: never re-expanded, split or interpreted. */
static void test_process_expand_value_not_reexpanded(void **state)
{
	struct spawner_vars v = vars;

	v.user = "{sock} a;touch /tmp/pwn $(id) `id`";
	expect_expand(&v, "--user={user}", "--user={sock} a;touch /tmp/pwn $(id) `id`");
}

static void test_process_build_argv_one_element_each(void **state)
{
	const char *const cmd[] = { "/usr/bin/python3", "-m", "jupyter_server", "--sock={sock}",
				    "a;touch /tmp/pwn", "{user}", NULL };
	struct spawner_vars v = vars;
	struct err *e = NULL;
	char **argv;

	v.user = "bob smith";
	argv = process_build_argv(cmd, &v, &e);
	assert_non_null(argv);
	assert_string_equal(argv[0], "/usr/bin/python3");
	assert_string_equal(argv[3], "--sock=/st/run/alice/server.sock");
	assert_string_equal(argv[4], "a;touch /tmp/pwn");
	assert_string_equal(argv[5], "bob smith");
	assert_null(argv[6]);
	xstrv_free(argv);
}

static void test_process_build_argv_paths(void **state)
{
	const char *const sh[] = { "sh", "-c", "true", NULL };
	const char *const rel[] = { "bin/sh", NULL };
	const char *const missing[] = { "nbgate-no-such-command-xyz", NULL };
	const char *const empty[] = { NULL };
	struct err *e = NULL;
	char **argv;

	argv = process_build_argv(sh, &vars, &e);
	assert_non_null(argv);
	assert_true(argv[0][0] == '/');
	assert_non_null(strstr(argv[0], "/sh"));
	xstrv_free(argv);
	assert_null(process_build_argv(rel, &vars, &e));
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	assert_null(process_build_argv(missing, &vars, &e));
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
	assert_null(process_build_argv(empty, &vars, &e));
	err_free(&e);
	assert_null(process_build_argv(NULL, &vars, &e));
	err_free(&e);
}

static bool env_has(char **env, const char *kv)
{
	for (size_t i = 0; env[i]; i++)
		if (strcmp(env[i], kv) == 0)
			return true;
	return false;
}

static bool env_has_key(char **env, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; env[i]; i++)
		if (strncmp(env[i], key, n) == 0 && env[i][n] == '=')
			return true;
	return false;
}

static void test_process_env_built_from_scratch(void **state)
{
	char *srv_env[] = { "NBGATE_API_TOKEN=tok", "LANG=de_DE.UTF-8", "noequals", NULL };
	const char *const cfg_env[] = { "NBGATE_API_TOKEN=override", "EXTRA=1", NULL };
	struct spawner_cfg cfg = { .server_env = cfg_env };
	struct spawner_server srv = {
		.user = "alice", .name = "", .home = "/st/home/alice", .run_dir = "/st/run/alice",
		.base_url = "/user/alice/", .env = srv_env,
	};
	char **env;
	size_t n = 0;

	setenv("NBGATE_GATEWAY_SECRET", "leak", 1);
	env = process_build_env(&cfg, &srv);
	assert_true(env_has(env, ENV_PATH));
	assert_true(env_has(env, "HOME=/st/home/alice"));
	assert_true(env_has(env, "USER=alice"));
	assert_true(env_has(env, "JUPYTER_RUNTIME_DIR=/st/run/alice/runtime"));
	assert_true(env_has(env, "LANG=de_DE.UTF-8")); /* gateway env overrides the base */
	assert_true(env_has(env, "NBGATE_API_TOKEN=override")); /* cfg overrides gateway env */
	assert_false(env_has(env, "NBGATE_API_TOKEN=tok"));
	assert_true(env_has(env, "EXTRA=1"));
	assert_false(env_has_key(env, "NBGATE_GATEWAY_SECRET"));
	assert_false(env_has(env, "noequals"));
	while (env[n])
		n++;
	assert_int_equal(n, 9);
	xstrv_free(env);
	unsetenv("NBGATE_GATEWAY_SECRET");
}

static void test_process_parse_upstream(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct err *e = NULL;
	char longpath[200];

	assert_int_equal(spawner_parse_upstream("unix:/tmp/x.sock", &ss, &len, &e), 0);
	assert_int_equal(ss.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/tmp/x.sock");
	assert_int_equal(spawner_parse_upstream("127.0.0.1:8888", &ss, &len, &e), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8888);
	static const char *const bad[] = {
		"unix:relative", "10.0.0.1:80", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:80x", "127.0.0.1:", "localhost:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(spawner_parse_upstream(bad[i], &ss, &len, &e) < 0);
		err_free(&e);
	}
	memcpy(longpath, "unix:/", 6);
	memset(longpath + 6, 'a', sizeof(longpath) - 7);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_true(spawner_parse_upstream(longpath, &ss, &len, &e) < 0);
	assert_non_null(strstr(e->msg, "shorter state directory"));
	err_free(&e);
}

static char *process_log_tail_of(const char *dir)
{
	cleanup_free char *path = xasprintf("%s/server.log", dir);

	return spawner_log_tail(path);
}

static void test_process_log_tail_redacted(void **state)
{
	char dir[] = "/tmp/nbgate-test-XXXXXX";
	char *path;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/server.log", dir);
	f = fopen(path, "w");
	for (int i = 0; i < 200; i++)
		fprintf(f, "noise line %d\n", i);
	fprintf(f, "http://127.0.0.1/?token=abcdef123456\nTraceback: boom\n");
	fclose(f);
	char *tail = process_log_tail_of(dir);
	assert_non_null(strstr(tail, "Traceback: boom"));
	assert_null(strstr(tail, "abcdef123456"));
	assert_non_null(strstr(tail, " | "));
	assert_null(strchr(tail, '\n'));
	assert_true(strlen(tail) < 1024 + 200);
	assert_null(strstr(tail, "noise line 0\n"));
	free(tail);
	unlink(path);
	free(path);
	rmdir(dir);
	tail = spawner_log_tail("/nonexistent/server.log");
	assert_string_equal(tail, "");
	free(tail);
}

static void test_process_exit_reason(void **state)
{
	char *r = spawner_exit_reason(3 << 8);

	assert_string_equal(r, "server exited with status 3");
	free(r);
	r = spawner_exit_reason(SIGKILL);
	assert_non_null(strstr(r, "killed by signal 9"));
	free(r);
}

/* The probe never blocks: not listening, listening but silent, then answering. */
static void test_process_probe_nonblocking(void **state)
{
	char dir[] = "/tmp/nbgate-probe-XXXXXX";
	struct spawner_probe ps = { .base_url = "/user/alice/", .fd = -1 };
	struct err *e = NULL;
	char *up, req[512];
	int lfd, cfd;
	ssize_t n;

	assert_non_null(mkdtemp(dir));
	up = xasprintf("unix:%s/s.sock", dir);
	assert_int_equal(spawner_parse_upstream(up, &ps.addr, &ps.addrlen, &e), 0);
	assert_int_equal(spawner_probe_step(&ps), 0); /* nothing there yet */
	assert_int_equal(ps.fd, -1);

	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&ps.addr, ps.addrlen), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(spawner_probe_step(&ps), 0); /* connected, request sent, no answer */
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(cfd >= 0);
	n = read(cfd, req, sizeof(req) - 1);
	assert_true(n > 0);
	req[n] = '\0';
	assert_non_null(strstr(req, "GET /user/alice/api/status HTTP/1.1\r\n"));
	assert_int_equal(spawner_probe_step(&ps), 0); /* still silent */
	assert_int_equal(write(cfd, "HTT", 3), 3);
	assert_int_equal(spawner_probe_step(&ps), 0); /* partial status line */
	assert_int_equal(write(cfd, "P/1.1 403 Forbidden\r\n\r\n", 23), 23);
	assert_int_equal(spawner_probe_step(&ps), 1);
	assert_int_equal(ps.fd, -1);
	close(cfd);
	close(lfd);
	free(up);
	up = xasprintf("%s/s.sock", dir);
	unlink(up);
	free(up);
	rmdir(dir);
}

/* A peer that closes without answering is "not yet", and the probe retries. */
static void test_process_probe_closed_retries(void **state)
{
	struct spawner_probe ps = { .base_url = "/user/a/", .fd = -1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(listen(lfd, 4), 0);
	memcpy(&ps.addr, &sin, sizeof(sin));
	ps.addrlen = sizeof(sin);
	/* Loopback TCP may finish connecting at once or on a later step. */
	for (int i = 0; i < 100 && ps.sent == 0; i++) {
		assert_int_equal(spawner_probe_step(&ps), 0);
		usleep(1000);
	}
	assert_true(ps.sent > 0);
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(cfd);
	for (int i = 0; i < 100 && ps.fd >= 0; i++) {
		assert_int_equal(spawner_probe_step(&ps), 0);
		usleep(1000);
	}
	assert_int_equal(ps.phase, SPAWNER_PROBE_IDLE);
	spawner_probe_reset(&ps);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process_expand_placeholders),
		cmocka_unit_test(test_process_expand_value_not_reexpanded),
		cmocka_unit_test(test_process_build_argv_one_element_each),
		cmocka_unit_test(test_process_build_argv_paths),
		cmocka_unit_test(test_process_env_built_from_scratch),
		cmocka_unit_test(test_process_parse_upstream),
		cmocka_unit_test(test_process_log_tail_redacted),
		cmocka_unit_test(test_process_exit_reason),
		cmocka_unit_test(test_process_probe_nonblocking),
		cmocka_unit_test(test_process_probe_closed_retries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
