/*
 * Unit tests for spawner/profile.c: the per-user limits both profile-based
 * backends (local, kubernetes) apply, on both sides of each limit, and
 * what counts as a user's use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "spawner/profile.c"

static const struct spawner_profile profiles[] = {
	{ .name = "small", .image = "minimal", .cpu_millis = 1000, .memory_bytes = 1LL << 30,
	  .network = "none" },
	{ .name = "big", .image = "jupyterlab", .cpu_millis = 4000, .memory_bytes = 8LL << 30,
	  .pids_max = 300, .network = "egress" },
	{ .name = "gpu", .image = "jupyterlab", .cpu_millis = 2000, .memory_bytes = 4LL << 30,
	  .gpus = 2, .gpu_model = "H100" },
	{ .name = "free", .image = "minimal" }, /* no limits */
};

static const char *const images[] = { "minimal", "jupyterlab", "vscode", NULL };

static struct spawner_cfg base_cfg(void)
{
	return (struct spawner_cfg){ .profiles = profiles, .n_profiles = 4, .images = images };
}

static void expect_reject(const char *json, const char *needle)
{
	struct spawner_cfg cfg = base_cfg();
	const struct spawner_profile *p = NULL;
	const char *img = NULL;
	struct err *e = NULL;

	assert_true(spawner_options_resolve(&cfg, json, &p, &img, &e) < 0);
	assert_non_null(e);
	if (!strstr(e->msg, needle))
		fail_msg("'%s': message '%s' lacks '%s'", json, e->msg, needle);
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
}

static void test_profile_options(void **state)
{
	struct spawner_cfg cfg = base_cfg();
	const struct spawner_profile *p = NULL;
	const char *img = NULL;
	struct err *e = NULL;

	assert_int_equal(spawner_options_resolve(&cfg, "{}", &p, &img, &e), 0);
	assert_string_equal(p->name, "small"); /* the first is the default */
	assert_string_equal(img, "minimal");   /* the profile's image */
	assert_int_equal(spawner_options_resolve(&cfg, NULL, &p, &img, &e), 0);
	assert_string_equal(p->name, "small");
	assert_int_equal(spawner_options_resolve(&cfg, "{\"profile\":\"big\",\"image\":\"vscode\"}",
					     &p, &img, &e), 0);
	assert_string_equal(p->name, "big");
	assert_string_equal(img, "vscode");
	assert_ptr_equal(img, images[2]); /* borrowed from cfg, not the parsed JSON */

	expect_reject("{\"gpus\": 8}", "user_options.gpus: unknown option (allowed: profile, image)");
	expect_reject("{\"profile\":\"small\",\"cmd\":\"sh\"}", "user_options.cmd: unknown option");
	expect_reject("{\"profile\":\"huge\"}",
		      "user_options.profile: unknown profile 'huge' (allowed: small, big, gpu, free)");
	expect_reject("{\"image\":\"evil\"}",
		      "user_options.image: unknown image 'evil' (allowed: minimal, jupyterlab, vscode)");
	expect_reject("{\"profile\":3}", "user_options.profile must be a string");
	expect_reject("{\"image\":null}", "user_options.image must be a string");
	expect_reject("[]", "user_options must be a JSON object");
	expect_reject("{bad json", "user_options must be a JSON object");
	/* the public check: same answers, and nothing to check without profiles */
	struct spawner sp = { .cfg = cfg };
	assert_true(spawner_check_user_options(&sp, "{\"x\":1}", &e) < 0);
	assert_non_null(strstr(e->msg, "user_options.x"));
	err_free(&e);
	sp.cfg.profiles = NULL;
	sp.cfg.n_profiles = 0;
	sp.cfg.images = NULL;
	assert_int_equal(spawner_check_user_options(&sp, "{\"x\":1}", &e), 0);
}


static void test_quota_check(void **state)
{
	struct spawner_quota q = { .max_servers = 2, .max_cpu_millis = 3000,
				   .max_memory_bytes = 4LL << 30, .max_gpus = 2 };
	struct usage u = { 0 };
	struct err *e = NULL;

	assert_int_equal(check(&q, &u, &profiles[0], &e), 0);
	usage_add(&u, &profiles[0]); /* 1 CPU, 1 GiB */
	assert_int_equal(check(&q, &u, &profiles[0], &e), 0);
	/* 1 + 4 CPUs > 3 */
	assert_int_equal(check(&q, &u, &profiles[1], &e), -EDQUOT);
	assert_int_equal(err_http_status(e), 403);
	assert_non_null(strstr(e->msg, "CPU limit 3.00 CPUs per user (1.00 CPUs in use"));
	assert_non_null(strstr(e->msg, "'big' asks for 4.00 CPUs"));
	err_free(&e);
	usage_add(&u, &profiles[0]); /* 2 servers */
	assert_int_equal(check(&q, &u, &profiles[0], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "at most 2 running servers per user (2 running)"));
	err_free(&e);
	/* memory: 2 GiB used + 4 GiB > 4 GiB, with CPU and count unlimited */
	q.max_servers = 0;
	q.max_cpu_millis = 0;
	assert_int_equal(check(&q, &u, &profiles[2], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "memory limit 4.00 GiB per user (2.00 GiB in use"));
	err_free(&e);
	/* GPUs */
	q.max_memory_bytes = 0;
	q.max_gpus = 1;
	assert_int_equal(check(&q, &u, &profiles[2], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "GPU limit 1 per user (0 in use, profile 'gpu' asks for 2)"));
	err_free(&e);
	q.max_gpus = 2;
	assert_int_equal(check(&q, &u, &profiles[2], &e), 0);
	/* an unlimited profile under a CPU quota is refused, never counted as 0 */
	q.max_cpu_millis = 100000;
	assert_int_equal(check(&q, &u, &profiles[3], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "asks for unlimited"));
	err_free(&e);
	/* and once one runs, the use is unlimited: everything is over */
	usage_add(&u, &profiles[3]);
	assert_int_equal(u.cpu_millis, -1);
	assert_int_equal(check(&q, &u, &profiles[0], &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "unlimited in use"));
	err_free(&e);
}

/* Usage sums the user's live servers only, and never the one being started. */
static void test_quota_usage(void **state)
{
	struct spawner sp = { .cfg = base_cfg() };
	struct spawner_server s[5] = {
		{ .user_id = 1, .state = SPAWNER_RUNNING, .profile = "big" },
		{ .user_id = 1, .state = SPAWNER_STOPPING, .profile = "gpu" }, /* still holds */
		{ .user_id = 1, .state = SPAWNER_STOPPED, .profile = "big" },
		{ .user_id = 2, .state = SPAWNER_RUNNING, .profile = "big" },  /* another user */
		{ .user_id = 1, .state = SPAWNER_STARTING, .profile = "small" }, /* self */
	};
	struct usage u;

	for (int i = 0; i < 4; i++)
		s[i].next = &s[i + 1];
	sp.servers = &s[0];
	usage_of(&sp, &s[4], &u);
	assert_int_equal(u.servers, 2);
	assert_int_equal(u.cpu_millis, 6000);
	assert_int_equal(u.memory_bytes, 12LL << 30);
	assert_int_equal(u.gpus, 2);
	/* a profile that is no longer configured still counts as a server */
	s[0].profile = "removed";
	usage_of(&sp, &s[4], &u);
	assert_int_equal(u.servers, 2);
	assert_int_equal(u.cpu_millis, 2000);
}

/* The public entry: no profile is EINVAL; the quota is cfg's. */
static void test_quota_entry(void **state)
{
	struct spawner sp = { .cfg = base_cfg() };
	struct spawner_server self = { .user_id = 1, .state = SPAWNER_STARTING };
	struct spawner_server other = { .user_id = 1, .state = SPAWNER_RUNNING, .profile = "big" };
	struct err *e = NULL;

	assert_int_equal(spawner_quota_check(&sp, &self, NULL, &e), -EINVAL);
	err_free(&e);
	sp.servers = &other;
	other.next = &self;
	sp.cfg.quota.max_servers = 2;
	assert_int_equal(spawner_quota_check(&sp, &self, &profiles[0], &e), 0);
	sp.cfg.quota.max_servers = 1;
	assert_int_equal(spawner_quota_check(&sp, &self, &profiles[0], &e), -EDQUOT);
	err_free(&e);
	assert_ptr_equal(spawner_profile_find(&sp.cfg, "gpu"), &profiles[2]);
	assert_null(spawner_profile_find(&sp.cfg, "nope"));
	assert_null(spawner_profile_find(&sp.cfg, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_options),
		cmocka_unit_test(test_quota_check),
		cmocka_unit_test(test_quota_usage),
		cmocka_unit_test(test_quota_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
