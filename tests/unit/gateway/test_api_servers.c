/* Unit tests for gateway/api_servers.c: user_options validation against the
 * configuration, the server model's additions and the log tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/api_servers.c"

#include <stdio.h>

static struct gw_cfg cfg;

static int load_cfg(void **state)
{
	struct err *e = NULL;

	unsetenv("NBGATE_PROFILES");
	unsetenv("NBGATE_IMAGES");
	unsetenv("NBGATE_SPAWNER");
	assert_int_equal(gw_cfg_load(&cfg, NULL, &e), 0);
	return 0;
}

static int free_cfg(void **state)
{
	gw_cfg_free(&cfg);
	return 0;
}

/* Checks opts_text; returns 0 or the error, message in *msg. */
static int check(const char *opts_text, char **msg)
{
	cJSON *o = cJSON_Parse(opts_text);
	struct err *e = NULL;
	int r;

	assert_non_null(o);
	r = hub__check_user_options(&cfg, o, &e);
	cJSON_Delete(o);
	*msg = e ? xstrdup(e->msg) : NULL;
	if (e)
		assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	return r;
}

static void expect_ok(const char *t)
{
	char *msg = NULL;

	if (check(t, &msg) != 0)
		fail_msg("%s refused: %s", t, msg);
}

static void expect_400(const char *t, const char *needle)
{
	char *msg = NULL;

	assert_true(check(t, &msg) < 0);
	if (!msg || !strstr(msg, needle))
		fail_msg("%s: message '%s' lacks '%s'", t, msg ? msg : "(none)", needle);
	free(msg);
}

static void test_sandboxed_only_profile_and_image(void **state)
{
	assert_int_equal(cfg.spawner, GW_SPAWNER_LOCAL);
	expect_ok("{}");
	expect_ok("{\"profile\": \"jupyterlab\"}");
	expect_ok("{\"profile\": \"vscode\", \"image\": \"minimal\"}");
	expect_400("{\"profile\": \"gpu\"}", "user_options.profile: 'gpu' is not an allowed");
	expect_400("{\"profile\": \"gpu\"}", "allowed: jupyterlab, vscode");
	expect_400("{\"profile\": 1}", "user_options.profile must be a string");
	expect_400("{\"image\": \"evil.example/evil:latest\"}", "user_options.image");
	expect_400("{\"image\": \"jupyterlab2\"}", "allowed: jupyterlab, vscode, minimal");
	/* anything else names the field, harmless-looking or not */
	expect_400("{\"cpu\": 8}", "user_options.cpu: unknown option (allowed: profile, image)");
	expect_400("{\"profile\": \"vscode\", \"memory\": \"64G\"}", "user_options.memory");
	expect_400("{\"env\": {\"A\": \"b\"}}", "user_options.env: unknown option");
	expect_400("{\"gpus\": 4}", "user_options.gpus");
	expect_400("[]", "user_options must be a JSON object");
}

static void test_sandboxed_messages_bounded(void **state)
{
	char big[300], *t;

	/* a long or odd value is not echoed back */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t = xasprintf("{\"image\": \"%s\"}", big);
	expect_400(t, "user_options.image: not an allowed image");
	free(t);
	t = xasprintf("{\"%s\": 1}", big);
	expect_400(t, "user_options: unknown option");
	free(t);
	expect_400("{\"image\": \"<script>\"}", "user_options.image: not an allowed image");
}

static void test_process_backend_rules(void **state)
{
	cfg.spawner = GW_SPAWNER_PROCESS;
	expect_ok("{\"anything\": {\"nested\": 1}}");
	expect_ok("{\"image\": \"minimal\"}");
	expect_400("{\"image\": \"evil\"}", "user_options.image: 'evil' is not an allowed");
	expect_400("{\"a\": {\"LD_PRELOAD\": \"x\"}}", "user_options.a.LD_PRELOAD");
	expect_400("{\"cmd\": [\"/bin/sh\"]}", "user_options.cmd");
	cfg.spawner = GW_SPAWNER_LOCAL;
}

static void test_server_model_fields(void **state)
{
	struct spawner_server srv = {
		.user = "alice", .name = "code", .state = SPAWNER_FAILED,
		.user_options = "{\"profile\":\"vscode\"}", .profile = "vscode",
		.server_type = "vscode", .message = "quota: 4 servers of 4",
	};
	cJSON *j = hub__server_model(&srv), *o;

	assert_string_equal(cJSON_GetObjectItem(j, "profile")->valuestring, "vscode");
	assert_string_equal(cJSON_GetObjectItem(j, "server_type")->valuestring, "vscode");
	assert_string_equal(cJSON_GetObjectItem(j, "message")->valuestring,
			    "quota: 4 servers of 4");
	o = cJSON_GetObjectItem(j, "user_options");
	assert_string_equal(cJSON_GetObjectItem(o, "profile")->valuestring, "vscode");
	cJSON_Delete(j);
	srv.state = SPAWNER_RUNNING;
	srv.profile = srv.server_type = NULL;
	j = hub__server_model(&srv);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "profile")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "server_type")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "message")));
	cJSON_Delete(j);
}

static char *tmp_file(const char *text)
{
	char *path = xstrdup("/tmp/nbgate-test-logs-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void expect_tail(const char *text, long lines, size_t max, const char *want)
{
	char *path = tmp_file(text), *out = NULL;
	struct err *e = NULL;

	assert_int_equal(hub__log_tail(path, lines, max, &out, &e), 0);
	if (strcmp(out, want) != 0)
		fail_msg("tail %ld of '%s' (max %zu): '%s', want '%s'", lines, text, max, out,
			 want);
	unlink(path);
	free(path);
	free(out);
}

static void test_log_tail(void **state)
{
	struct err *e = NULL;
	char *out = NULL;

	expect_tail("a\nb\nc\n", 1, 1024, "c\n");
	expect_tail("a\nb\nc\n", 2, 1024, "b\nc\n");
	expect_tail("a\nb\nc\n", 3, 1024, "a\nb\nc\n");
	expect_tail("a\nb\nc\n", 10000, 1024, "a\nb\nc\n");
	expect_tail("a\nb\nc", 1, 1024, "c"); /* no final newline */
	expect_tail("a\nb\nc", 2, 1024, "b\nc");
	expect_tail("", 5, 1024, "");
	/* byte cap: the partial first line is dropped */
	expect_tail("0123456789\nabc\ndef\n", 10, 9, "abc\ndef\n"); /* starts at a line */
	expect_tail("0123456789\nabc\ndef\n", 10, 8, "def\n");
	expect_tail("0123456789\nabc\ndef\n", 10, 3, "");
	assert_int_equal(hub__log_tail("/nonexistent/server.log", 5, 1024, &out, &e), -ENOENT);
	err_free(&e);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sandboxed_only_profile_and_image),
		T(test_sandboxed_messages_bounded),
		T(test_process_backend_rules),
		T(test_server_model_fields),
		T(test_log_tail),
	};

	return cmocka_run_group_tests(tests, load_cfg, free_cfg);
}
