/* Unit tests for gateway/config_local.c (issue 4 part): the `cull` rules,
 * their per-profile overrides and the checkpoint keys, every limit on
 * both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/config_local.c"

#include "tests/unit/gateway/cfg_fixture.h"

/* {"cull": {<key>: <value>}} */
static void cull_reject(const char *kv, const char *needle)
{
	char *t = xasprintf("{\"cull\": {%s}}", kv);

	reject(t, needle);
	free(t);
}

static void cull_accept(const char *kv)
{
	char *t = xasprintf("{\"cull\": {%s}}", kv);

	accept_only(t);
	free(t);
}

static void test_cull_defaults(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;

	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_int_equal(c.cull.idle_timeout_ms, 3600000);
	assert_int_equal(c.cull.max_age_ms, 0);
	assert_int_equal(c.cull.action, SPAWNER_CKPT_CRIU);
	assert_true(c.cull.named_servers);
	assert_false(c.cull.tensorboards);
	assert_int_equal(c.cull.interval_ms, 60000);
	assert_true(c.cull.cpu_threshold == 5.0);
	assert_true(c.cull.gpu_threshold == 5.0);
	/* the text default and the built-in base agree */
	assert_memory_equal(&c.cull, &cull_builtin, sizeof(cull_builtin));
	assert_non_null(c.profile_cull);
	assert_int_equal(c.profile_cull[0].set, 0);
	/* checkpoint keys */
	assert_int_equal(c.checkpoint_keep, 3);
	assert_int_equal(c.checkpoint_user_quota, 0);
	assert_int_equal(c.checkpoint_min_free, 1ULL << 30);
	assert_true(c.checkpoint_dir[0] == '/');
	assert_non_null(strstr(c.checkpoint_dir, "/state/checkpoints"));
	assert_null(strstr(c.checkpoint_dir, "/./"));
	gw_cfg_free(&c);
	assert_null(c.profile_cull);
}

static void test_cull_partial_keeps_defaults(void **state)
{
	struct gw_cfg c;

	accept_cfg(&c, "{\"cull\": {\"idle_timeout\": 4, \"action\": \"stop\", \"interval\": 1}}");
	assert_int_equal(c.cull.idle_timeout_ms, 4000);
	assert_int_equal(c.cull.action, SPAWNER_CKPT_STOP);
	assert_int_equal(c.cull.interval_ms, 1000);
	assert_true(c.cull.named_servers);
	assert_true(c.cull.cpu_threshold == 5.0);
	gw_cfg_free(&c);
	accept_cfg(&c, "{\"cull\": {\"idle_timeout\": 0.5, \"action\": \"commit\"}}");
	assert_int_equal(c.cull.idle_timeout_ms, 500);
	assert_int_equal(c.cull.action, SPAWNER_CKPT_COMMIT);
	gw_cfg_free(&c);
}

static void test_cull_seconds_limits(void **state)
{
	cull_accept("\"idle_timeout\": 0");
	cull_accept("\"idle_timeout\": 31536000");
	cull_reject("\"idle_timeout\": -1", "cull.idle_timeout: expected a number of seconds");
	cull_reject("\"idle_timeout\": 31536001", "cull.idle_timeout");
	cull_reject("\"idle_timeout\": 0.0001", "cull.idle_timeout");
	cull_reject("\"idle_timeout\": \"1h\"", "cull.idle_timeout");
	cull_accept("\"max_age\": 0");
	cull_accept("\"max_age\": 31536000");
	cull_reject("\"max_age\": -0.5", "cull.max_age");
	cull_reject("\"max_age\": 31536000.5", "cull.max_age");
	cull_accept("\"interval\": 1");
	cull_accept("\"interval\": 3600");
	cull_reject("\"interval\": 0.999", "cull.interval");
	cull_reject("\"interval\": 0", "cull.interval: expected a number of seconds 1..3600");
	cull_reject("\"interval\": 3601", "cull.interval");
}

static void test_cull_percent_limits(void **state)
{
	cull_accept("\"cpu_threshold\": 0");
	cull_accept("\"cpu_threshold\": 10000");
	cull_accept("\"cpu_threshold\": 2.5");
	cull_reject("\"cpu_threshold\": -0.1", "cull.cpu_threshold: expected a percentage");
	cull_reject("\"cpu_threshold\": 10000.1", "cull.cpu_threshold");
	cull_reject("\"cpu_threshold\": \"5%\"", "cull.cpu_threshold");
	cull_accept("\"gpu_threshold\": 0");
	cull_accept("\"gpu_threshold\": 100");
	cull_reject("\"gpu_threshold\": -1", "cull.gpu_threshold");
	cull_reject("\"gpu_threshold\": 100.5", "cull.gpu_threshold");
}

static void test_cull_enums_bools_keys(void **state)
{
	cull_accept("\"action\": \"checkpoint\"");
	cull_accept("\"action\": \"commit\"");
	cull_accept("\"action\": \"stop\"");
	cull_reject("\"action\": \"criu\"", "cull.action: expected \"checkpoint\"");
	cull_reject("\"action\": 1", "cull.action");
	cull_accept("\"named_servers\": false, \"tensorboards\": true");
	cull_reject("\"named_servers\": \"yes\"", "cull.named_servers: expected true or false");
	cull_reject("\"tensorboards\": 1", "cull.tensorboards");
	cull_reject("\"idle\": 5", "cull.idle: unknown key");
	cull_reject("\"idle_timeout\": 5, \"idle_timeout\": 6", "cull.idle_timeout: duplicate key");
	reject("{\"cull\": [1]}", "cull: expected an object");
	reject("{\"cull\": 60}", "cull: expected an object");
}

static const char two_profiles[] =
	"{\"cull\": {\"idle_timeout\": 100, \"cpu_threshold\": 7},"
	" \"profiles\": ["
	"{\"name\": \"lab\", \"image\": \"jupyterlab\", \"cpu\": 1, \"memory\": \"1G\","
	" \"cull\": {\"idle_timeout\": 10, \"action\": \"stop\", \"named_servers\": false}},"
	"{\"name\": \"code\", \"image\": \"vscode\", \"cpu\": 1, \"memory\": \"1G\"}]}";

static void test_cull_profile_override(void **state)
{
	struct gw_cull_rules r;
	struct gw_cfg c;
	char *out;

	accept_cfg(&c, two_profiles);
	gw_cfg_cull_rules(&c, "lab", &r);
	assert_int_equal(r.idle_timeout_ms, 10000);
	assert_int_equal(r.action, SPAWNER_CKPT_STOP);
	assert_false(r.named_servers);
	assert_true(r.cpu_threshold == 7.0);     /* inherited from the global rules */
	assert_int_equal(r.interval_ms, 60000);
	gw_cfg_cull_rules(&c, "code", &r);
	assert_int_equal(r.idle_timeout_ms, 100000);
	assert_int_equal(r.action, SPAWNER_CKPT_CRIU);
	assert_true(r.named_servers);
	gw_cfg_cull_rules(&c, NULL, &r);
	assert_int_equal(r.idle_timeout_ms, 100000);
	gw_cfg_cull_rules(&c, "nope", &r);
	assert_int_equal(r.idle_timeout_ms, 100000);
	/* --print-config shows both, and reads back the same */
	out = gw_cfg_print(&c);
	assert_non_null(strstr(out, "\"cull\""));
	assert_non_null(strstr(out, "\"action\":\t\"stop\""));
	gw_cfg_free(&c);
	accept_cfg(&c, out);
	gw_cfg_cull_rules(&c, "lab", &r);
	assert_int_equal(r.idle_timeout_ms, 10000);
	assert_int_equal(r.action, SPAWNER_CKPT_STOP);
	assert_int_equal(c.profile_cull[1].set, 0);
	gw_cfg_free(&c);
	free(out);
}

static void test_cull_profile_override_limits(void **state)
{
	reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\","
	       " \"cull\": {\"interval\": 5}}]}", "profiles[0].cull.interval: only in the global");
	reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\","
	       " \"cull\": {\"idle_timeout\": -1}}]}", "profiles[0].cull.idle_timeout");
	reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\","
	       " \"cull\": {\"gpu_threshold\": 101}}]}", "profiles[0].cull.gpu_threshold");
	reject("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, \"memory\": \"1G\","
	       " \"cull\": \"never\"}]}", "profiles[0].cull: expected an object");
	accept_only("{\"profiles\": [{\"name\": \"p\", \"image\": \"minimal\", \"cpu\": 1, "
		    "\"memory\": \"1G\", \"cull\": {}}]}");
}

static void test_cull_env(void **state)
{
	struct gw_cfg c;
	struct err *e = NULL;

	setenv("NBGATE_CULL", "{\"idle_timeout\": 5, \"tensorboards\": true}", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_int_equal(c.cull.idle_timeout_ms, 5000);
	assert_true(c.cull.tensorboards);
	gw_cfg_free(&c);
	setenv("NBGATE_CULL", "{\"interval\": 0}", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "NBGATE_CULL"));
	assert_non_null(strstr(e->msg, "cull.interval"));
	err_free(&e);
	setenv("NBGATE_CULL", "not json", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "NBGATE_CULL"));
	err_free(&e);
	unsetenv("NBGATE_CULL");
	setenv("NBGATE_CHECKPOINT_KEEP", "0", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "checkpoint_keep"));
	err_free(&e);
	setenv("NBGATE_CHECKPOINT_KEEP", "7", 1);
	assert_int_equal(gw_cfg_load(&c, NULL, &e), 0);
	assert_int_equal(c.checkpoint_keep, 7);
	gw_cfg_free(&c);
	unsetenv("NBGATE_CHECKPOINT_KEEP");
}

static void test_checkpoint_keys_limits(void **state)
{
	struct gw_cfg c;

	accept_only("{\"checkpoint_keep\": 1}");
	accept_only("{\"checkpoint_keep\": 1000}");
	reject("{\"checkpoint_keep\": 0}", "checkpoint_keep");
	reject("{\"checkpoint_keep\": 1001}", "checkpoint_keep");
	accept_only("{\"checkpoint_user_quota\": 0}");
	accept_only("{\"checkpoint_user_quota\": \"10GiB\"}");
	accept_only("{\"checkpoint_user_quota\": \"1048576TiB\"}");
	reject("{\"checkpoint_user_quota\": \"1048577TiB\"}", "checkpoint_user_quota");
	accept_only("{\"checkpoint_min_free\": 1}");
	accept_only("{\"checkpoint_min_free\": \"1048576TiB\"}");
	reject("{\"checkpoint_min_free\": 0}", "checkpoint_min_free");
	reject("{\"checkpoint_min_free\": \"1048577TiB\"}", "checkpoint_min_free");
	reject("{\"checkpoint_dir\": \"relative/ckpt\"}", "checkpoint_dir");
	accept_cfg(&c, "{\"checkpoint_dir\": \"/srv/ckpt\", \"checkpoint_user_quota\": \"2GiB\"}");
	assert_string_equal(c.checkpoint_dir, "/srv/ckpt");
	assert_int_equal(c.checkpoint_user_quota, 2ULL << 30);
	gw_cfg_free(&c);
	accept_cfg(&c, "{\"state_dir\": \"/var/lib/nbgate\"}");
	assert_string_equal(c.checkpoint_dir, "/var/lib/nbgate/checkpoints");
	gw_cfg_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_cull_defaults, clean_env),
		cmocka_unit_test_setup(test_cull_partial_keeps_defaults, clean_env),
		cmocka_unit_test_setup(test_cull_seconds_limits, clean_env),
		cmocka_unit_test_setup(test_cull_percent_limits, clean_env),
		cmocka_unit_test_setup(test_cull_enums_bools_keys, clean_env),
		cmocka_unit_test_setup(test_cull_profile_override, clean_env),
		cmocka_unit_test_setup(test_cull_profile_override_limits, clean_env),
		cmocka_unit_test_setup(test_cull_env, clean_env),
		cmocka_unit_test_setup(test_checkpoint_keys_limits, clean_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
