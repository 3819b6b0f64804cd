/* Unit tests for gateway/activity.c: the polling classifier, the parsers,
 * the threshold maths, the CPU sources and the blocking probe client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/activity.c"

#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>

/* ---- classifier ---- */

static void test_activity_subpath(void **state)
{
	assert_string_equal(gw_activity_subpath("/user/alice/api/kernels", ""), "/api/kernels");
	assert_string_equal(gw_activity_subpath("/user/alice/lab1/api/kernels", "lab1"),
			    "/api/kernels");
	assert_string_equal(gw_activity_subpath("/user/alice/", ""), "/");
	assert_string_equal(gw_activity_subpath("/user/alice", ""), "");
	assert_string_equal(gw_activity_subpath("/user/a%2Fb/x", ""), "/x");
	assert_string_equal(gw_activity_subpath(NULL, ""), "");
}

static void test_activity_http_polling_does_not_count(void **state)
{
	static const char *const polls[] = {
		"/api/kernels", "/api/sessions", "/api/terminals", "/api/kernelspecs",
		"/api/contents", "/api/contents/work/sub", "/api/contents/nb.ipynb/checkpoints",
		"/api/me", "/api/status", "/api/events/subscribe", "/api/collaboration/room/x",
		"/lab/api/settings/@jupyterlab/notebook-extension:panel",
		"/lab/api/workspaces/default",
		"/api/kernels/0b5c3d6e-1111-2222-3333-444455556666/channels", NULL,
	};

	for (int i = 0; polls[i]; i++) {
		if (gw_activity_http_counts("GET", polls[i]))
			fail_msg("GET %s counted", polls[i]);
		assert_false(gw_activity_http_counts("HEAD", polls[i]));
	}
}

static void test_activity_http_user_actions_count(void **state)
{
	/* writes count wherever they go: a save, a run, a new kernel */
	assert_true(gw_activity_http_counts("PUT", "/api/contents/nb.ipynb"));
	assert_true(gw_activity_http_counts("POST", "/api/kernels"));
	assert_true(gw_activity_http_counts("PATCH", "/api/sessions/x"));
	assert_true(gw_activity_http_counts("DELETE", "/api/kernels/x"));
	assert_true(gw_activity_http_counts("PUT", "/lab/api/workspaces/default"));
	/* page loads, downloads, other paths */
	assert_true(gw_activity_http_counts("GET", "/lab"));
	assert_true(gw_activity_http_counts("GET", "/lab/tree/nb.ipynb"));
	assert_true(gw_activity_http_counts("GET", "/files/data.csv"));
	assert_true(gw_activity_http_counts("GET", "/terminals/websocket/1"));
	assert_true(gw_activity_http_counts("GET", "/api/nbconvert"));
	/* whole segments only */
	assert_true(gw_activity_http_counts("GET", "/api/kernelsX"));
	assert_true(gw_activity_http_counts("GET", "/api/meter"));
	assert_true(gw_activity_http_counts("GET", "/lab/api/settingsx"));
	assert_true(gw_activity_http_counts(NULL, "/api/kernels"));
}

static void test_activity_ws_rules(void **state)
{
	const char *ch = "/api/kernels/0b5c3d6e-1111-2222-3333-444455556666/channels";

	assert_false(gw_activity_ws_counts("/api/events/subscribe", 0));
	assert_false(gw_activity_ws_counts("/api/events/subscribe", 3600000));
	assert_false(gw_activity_ws_counts(ch, 0));
	assert_false(gw_activity_ws_counts(ch, GW_ACTIVITY_WS_SETTLE_MS - 1));
	assert_true(gw_activity_ws_counts(ch, GW_ACTIVITY_WS_SETTLE_MS));
	assert_true(gw_activity_ws_counts("/terminals/websocket/1", 0));
	assert_true(gw_activity_ws_counts("/api/kernels/x/other", 0));
	assert_true(gw_activity_ws_counts("/lsp/ws/pylsp", 0));
}

/* ---- parsers ---- */

static void test_activity_parse_iso(void **state)
{
	assert_int_equal(gw_activity_parse_iso("1970-01-01T00:00:01Z"), 1000);
	assert_int_equal(gw_activity_parse_iso("1970-01-01T00:00:01.250999Z"), 1250);
	assert_int_equal(gw_activity_parse_iso("1970-01-01T00:01:00+00:00"), 60000);
	assert_int_equal(gw_activity_parse_iso("1970-01-01T00:01:00"), 60000);
	assert_int_equal(gw_activity_parse_iso("2024-05-01T10:20:30.5Z"), 1714558830500LL);
	assert_int_equal(gw_activity_parse_iso("2024-13-01T10:20:30Z"), -1);
	assert_int_equal(gw_activity_parse_iso("2024-05-01 10:20:30Z"), -1);
	assert_int_equal(gw_activity_parse_iso("2024-05-01T10:20:30+02:00"), -1);
	assert_int_equal(gw_activity_parse_iso("2024-05-01"), -1);
	assert_int_equal(gw_activity_parse_iso("yesterday at noon!!"), -1);
	assert_int_equal(gw_activity_parse_iso(NULL), -1);
}

static void test_activity_parse_kernels(void **state)
{
	static const char js[] =
		"[{\"id\":\"a\",\"execution_state\":\"idle\",\"last_activity\":\"1970-01-01T00:00:05Z\"},"
		"{\"id\":\"b\",\"execution_state\":\"busy\",\"last_activity\":\"1970-01-01T00:00:09Z\"},"
		"{\"id\":\"c\",\"execution_state\":\"starting\"}]";
	struct gw_activity_jupyter j = { 0 };
	struct err *e = NULL;

	assert_int_equal(gw_activity_parse_kernels(js, strlen(js), &j, &e), 0);
	assert_int_equal(j.kernels, 3);
	assert_int_equal(j.busy, 1);
	assert_int_equal(j.kernel_last_ms, 9000);
	assert_int_equal(gw_activity_parse_kernels("{}", 2, &j, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "api/kernels"));
	err_free(&e);
	assert_int_equal(gw_activity_parse_kernels("[1]", 3, &j, &e), -EINVAL);
	err_free(&e);
	assert_int_equal(gw_activity_parse_kernels("[", 1, &j, &e), -EINVAL);
	err_free(&e);
}

static void test_activity_parse_terminals(void **state)
{
	static const char js[] = "[{\"name\":\"1\",\"last_activity\":\"1970-01-01T00:00:07.5Z\"},"
				 "{\"name\":\"2\",\"last_activity\":\"garbage\"}]";
	struct gw_activity_jupyter j = { 0 };
	struct err *e = NULL;

	assert_int_equal(gw_activity_parse_terminals("[]", 2, &j, &e), 0);
	assert_int_equal(j.terminals, 0);
	assert_int_equal(gw_activity_parse_terminals(js, strlen(js), &j, &e), 0);
	assert_int_equal(j.terminals, 2);
	assert_int_equal(j.terminal_last_ms, 7500);
	assert_int_equal(j.busy, 0);
}

/* ---- threshold maths ---- */

static void test_activity_cpu_threshold(void **state)
{
	/* 5 % of one CPU over one second is 50000 us: strictly above counts */
	assert_true(gw_activity_cpu_busy(0, 1000, 50001, 2000, 5));
	assert_false(gw_activity_cpu_busy(0, 1000, 50000, 2000, 5));
	assert_false(gw_activity_cpu_busy(0, 1000, 40000, 2000, 5));
	/* over 60 s: 5 % is 3 s of CPU */
	assert_true(gw_activity_cpu_busy(1000000, 0, 4000001, 60000, 5));
	assert_false(gw_activity_cpu_busy(1000000, 0, 4000000, 60000, 5));
	/* several CPUs busy: above 100 % */
	assert_true(gw_activity_cpu_busy(0, 0, 2500000, 1000, 200));
	assert_false(gw_activity_cpu_busy(0, 0, 1500000, 1000, 200));
	/* no interval, or the counter went back (a process left) */
	assert_false(gw_activity_cpu_busy(0, 1000, 999999, 1000, 5));
	assert_false(gw_activity_cpu_busy(5000000, 0, 1000, 1000, 5));
	/* threshold 0: any use */
	assert_true(gw_activity_cpu_busy(0, 0, 1, 1000, 0));
	assert_false(gw_activity_cpu_busy(0, 0, 0, 1000, 0));
}

static void test_activity_gpu_parse(void **state)
{
	static const char csv[] = "0, 37\n1, 80\n2, 3\n";
	int a[] = { 0 }, b[] = { 1 }, ab[] = { 0, 2 }, none[] = { 5 };

	assert_int_equal(gw_activity_gpu_util_parse(csv, a, 1), 37);
	assert_int_equal(gw_activity_gpu_util_parse(csv, b, 1), 80);
	assert_int_equal(gw_activity_gpu_util_parse(csv, ab, 2), 37);
	assert_int_equal(gw_activity_gpu_util_parse(csv, none, 1), -1);
	assert_int_equal(gw_activity_gpu_util_parse("0, [N/A]\n", a, 1), -1);
	assert_int_equal(gw_activity_gpu_util_parse("garbage", a, 1), -1);
	assert_int_equal(gw_activity_gpu_util_parse("0, 12\r\n", a, 1), 12);
	assert_int_equal(gw_activity_gpu_util_parse("", a, 1), -1);
}

static void test_activity_cull_verdict(void **state)
{
	struct gw_cull_rules r = { .idle_timeout_ms = 4000, .max_age_ms = 0 };
	int64_t now = 1000000;

	assert_int_equal(gw_activity_cull_verdict(&r, now, 1, now - 4000, now - 4000),
			 GW_VERDICT_IDLE);
	assert_int_equal(gw_activity_cull_verdict(&r, now, 1, now - 3999, now - 3999),
			 GW_VERDICT_KEEP);
	/* traffic quiet for 10 s, a kernel busy 1 s ago */
	assert_int_equal(gw_activity_cull_verdict(&r, now, 1, now - 1000, now - 10000),
			 GW_VERDICT_SAVED);
	assert_int_equal(gw_activity_cull_verdict(&r, now, 1, now - 1000, now - 3999),
			 GW_VERDICT_KEEP);
	/* max_age wins over activity */
	r.max_age_ms = 10000;
	assert_int_equal(gw_activity_cull_verdict(&r, now, now - 10000, now, now),
			 GW_VERDICT_MAX_AGE);
	assert_int_equal(gw_activity_cull_verdict(&r, now, now - 9999, now, now),
			 GW_VERDICT_KEEP);
	assert_int_equal(gw_activity_cull_verdict(&r, now, 0, now, now), GW_VERDICT_KEEP);
	/* idle_timeout 0: never idle */
	r.idle_timeout_ms = 0;
	r.max_age_ms = 0;
	assert_int_equal(gw_activity_cull_verdict(&r, now, 1, 0, 0), GW_VERDICT_KEEP);
}

static void test_activity_cull_eligible(void **state)
{
	struct gw_cull_rules r = { .named_servers = false, .tensorboards = false };

	assert_true(gw_activity_cull_eligible(&r, "", "jupyterlab"));
	assert_true(gw_activity_cull_eligible(&r, "", NULL));
	assert_false(gw_activity_cull_eligible(&r, "lab2", "jupyterlab"));
	assert_false(gw_activity_cull_eligible(&r, "", "tensorboard"));
	r.named_servers = r.tensorboards = true;
	assert_true(gw_activity_cull_eligible(&r, "lab2", "jupyterlab"));
	assert_true(gw_activity_cull_eligible(&r, "tb", "tensorboard"));
}

/* ---- CPU sources on fake cgroup trees ---- */

static char *mkdtemp_x(void)
{
	char *d = xstrdup("/tmp/nbgate-test-activity-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

/* mkdir -p of the directories above dir/rel, then writes text there. */
static void write_file(const char *dir, const char *rel, const char *text)
{
	char *p = xasprintf("%s/%s", dir, rel);
	FILE *f;

	for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
		*s = '/';
	}
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(char *d)
{
	assert_int_equal(nftw(d, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
	free(d);
}

static void test_activity_cpu_v2(void **state)
{
	char *d = mkdtemp_x();
	struct err *e = NULL;
	int64_t us = -1;

	write_file(d, "cgroup.controllers", "cpu memory pids\n");
	write_file(d, "nbgate/alice/cpu.stat", "user_usec 1\nusage_usec 123456\nsystem_usec 2\n");
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "alice", &us, &e), 0);
	assert_int_equal(us, 123456);
	assert_true(gw_activity_cpu_usec(d, "/proc", "bob", &us, &e) < 0);
	err_free(&e);
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "../alice", &us, &e), -EINVAL);
	err_free(&e);
	rm_rf(d);
}

static void test_activity_cpu_v1(void **state)
{
	char *d = mkdtemp_x();
	struct err *e = NULL;
	int64_t us = -1;

	/* cpu,cpuacct co-mounted: nanoseconds */
	write_file(d, "cpu/nbgate/alice/cpuacct.usage", "7000000\n");
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "alice", &us, &e), 0);
	assert_int_equal(us, 7000);
	/* a separate cpuacct hierarchy holding the sandbox */
	write_file(d, "cpuacct/nbgate/bob/cpuacct.usage", "2000\n");
	write_file(d, "cpu/nbgate/bob/cgroup.procs", "");
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "bob", &us, &e), 0);
	assert_int_equal(us, 2);
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "carol", &us, &e), -ENOENT);
	err_free(&e);
	rm_rf(d);
}

/* cpu alone (cpuacct elsewhere): the processes' own counters */
static void test_activity_cpu_v1_procs(void **state)
{
	char *d = mkdtemp_x(), *procs = xasprintf("%d\n999999999\n", (int)getpid());
	struct err *e = NULL;
	int64_t us0 = -1, us1 = -1, t0 = time_mono_ms();
	volatile uint64_t spin = 0;

	write_file(d, "cpu/nbgate/alice/cgroup.procs", procs);
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "alice", &us0, &e), 0);
	while (time_mono_ms() - t0 < 300) /* bounded: 0.3 s of CPU */
		spin++;
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "alice", &us1, &e), 0);
	assert_true(us1 - us0 >= 100000); /* at least 0.1 s of the 0.3 s seen */
	write_file(d, "cpu/nbgate/alice/cgroup.procs", "999999999\n");
	assert_int_equal(gw_activity_cpu_usec(d, "/proc", "alice", &us1, &e), 0);
	assert_int_equal(us1, 0); /* a pid that is gone adds nothing */
	free(procs);
	rm_rf(d);
}

/* ---- the probe client against a canned Unix-socket server ---- */

struct canned {
	int lfd;
	const char *replies[4]; /* one per connection; NULL = say nothing */
	int n;
	char seen[4][512];      /* request heads */
};

static void *canned_serve(void *arg)
{
	struct canned *c = arg;

	for (int i = 0; i < c->n; i++) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		ssize_t r;

		if (fd < 0)
			break;
		r = recv(fd, c->seen[i], sizeof(c->seen[i]) - 1, 0);
		c->seen[i][r > 0 ? r : 0] = '\0';
		if (c->replies[i])
			send(fd, c->replies[i], strlen(c->replies[i]), MSG_NOSIGNAL);
		else
			usleep(500 * 1000); /* longer than the client's deadline below */
		close(fd);
	}
	return NULL;
}

static char *canned_start(struct canned *c, pthread_t *t, char **dir)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	*dir = mkdtemp_x();
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/s", *dir);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(c->lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(c->lfd, 4), 0);
	assert_int_equal(pthread_create(t, NULL, canned_serve, c), 0);
	return xasprintf("unix:%s", un.sun_path);
}

static void canned_stop(struct canned *c, pthread_t t, char *dir, char *up)
{
	pthread_join(t, NULL);
	close(c->lfd);
	rm_rf(dir);
	free(up);
}

static void test_activity_http_get(void **state)
{
	struct canned c = { .n = 3, .replies = {
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[1,2]",
		"HTTP/1.1 404 Not Found\r\n\r\n{}", NULL } };
	struct err *e = NULL;
	char *body = NULL, *dir;
	size_t len = 0;
	pthread_t t;
	char *up = canned_start(&c, &t, &dir);

	assert_int_equal(gw_activity_http_get(up, "/user/a/api/kernels", "secret-tok", 2000,
					      1024, &body, &len, &e), 0);
	assert_string_equal(body, "[1,2]");
	assert_int_equal(len, 5);
	free(body);
	assert_non_null(strstr(c.seen[0], "GET /user/a/api/kernels HTTP/1.0\r\n"));
	assert_non_null(strstr(c.seen[0], "Authorization: token secret-tok\r\n"));
	assert_int_equal(gw_activity_http_get(up, "/x", NULL, 2000, 1024, &body, &len, &e),
			 -EPROTO);
	assert_non_null(strstr(e->msg, "404"));
	assert_null(strstr(c.seen[1], "Authorization"));
	err_free(&e);
	assert_int_equal(gw_activity_http_get(up, "/x", NULL, 200, 1024, &body, &len, &e),
			 -ETIMEDOUT);
	err_free(&e);
	canned_stop(&c, t, dir, up);
}

static void test_activity_probe_jupyter(void **state)
{
	struct canned c = { .n = 2, .replies = {
		"HTTP/1.1 200 OK\r\n\r\n[{\"execution_state\":\"busy\","
		"\"last_activity\":\"1970-01-01T00:00:03Z\"}]",
		"HTTP/1.1 404 Not Found\r\n\r\n" } };
	struct gw_activity_jupyter j;
	struct err *e = NULL;
	char *dir;
	pthread_t t;
	char *up = canned_start(&c, &t, &dir);

	/* terminals disabled (404) is not an error */
	assert_int_equal(gw_activity_probe_jupyter(up, "/user/a/", "tok", &j, &e), 0);
	assert_int_equal(j.kernels, 1);
	assert_int_equal(j.busy, 1);
	assert_int_equal(j.kernel_last_ms, 3000);
	assert_int_equal(j.terminals, 0);
	assert_non_null(strstr(c.seen[1], "GET /user/a/api/terminals HTTP/1.0"));
	canned_stop(&c, t, dir, up);
}

static void test_activity_http_get_too_big(void **state)
{
	static char big[4096];
	struct canned c = { .n = 2 };
	struct err *e = NULL;
	char *body = NULL, *dir;
	size_t len;
	pthread_t t;
	char *up;

	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "HTTP/1.1 200 OK\r\n\r\n", 19);
	c.replies[0] = c.replies[1] = big;
	up = canned_start(&c, &t, &dir);
	assert_int_equal(gw_activity_http_get(up, "/x", NULL, 2000, 1024, &body, &len, &e),
			 -EMSGSIZE);
	err_free(&e);
	assert_int_equal(gw_activity_http_get(up, "/x", NULL, 2000, sizeof(big), &body, &len, &e),
			 0);
	assert_int_equal(len, sizeof(big) - 1 - 19);
	free(body);
	canned_stop(&c, t, dir, up);
	assert_int_equal(gw_activity_http_get("unix:/nonexistent/sock", "/x", NULL, 200, 8, &body,
					      &len, &e), -ENOENT);
	err_free(&e);
	assert_int_equal(gw_activity_http_get("localhost:80", "/x", NULL, 200, 8, &body, &len,
					      &e), -EINVAL);
	err_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activity_subpath),
		cmocka_unit_test(test_activity_http_polling_does_not_count),
		cmocka_unit_test(test_activity_http_user_actions_count),
		cmocka_unit_test(test_activity_ws_rules),
		cmocka_unit_test(test_activity_parse_iso),
		cmocka_unit_test(test_activity_parse_kernels),
		cmocka_unit_test(test_activity_parse_terminals),
		cmocka_unit_test(test_activity_cpu_threshold),
		cmocka_unit_test(test_activity_gpu_parse),
		cmocka_unit_test(test_activity_cull_verdict),
		cmocka_unit_test(test_activity_cull_eligible),
		cmocka_unit_test(test_activity_cpu_v2),
		cmocka_unit_test(test_activity_cpu_v1),
		cmocka_unit_test(test_activity_cpu_v1_procs),
		cmocka_unit_test(test_activity_http_get),
		cmocka_unit_test(test_activity_probe_jupyter),
		cmocka_unit_test(test_activity_http_get_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
