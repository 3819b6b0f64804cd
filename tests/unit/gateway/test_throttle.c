/* Unit tests for gateway/throttle.c: login backoff both sides of the
 * limit, per-account across addresses (AUTH-5), reset, cap, token guessing
 * (TOK-10) and the bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/throttle.c"

#include <stdio.h>

static const struct throttle_cfg cfg = {
	.max_failures = 3, .backoff_base = 1000, .backoff_max = 8000,
	.guess_limit = 5, .guess_window = 10000, .max_entries = 0,
};

static void test_login_limit(void **state)
{
	struct throttle *t = throttle_new(&cfg);
	int64_t now = 1000000;

	for (int i = 0; i < 2; i++)
		throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 0);
	throttle_fail(t, "alice", "10.0.0.1", now); /* third: at the limit */
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 1);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.9", now), 1); /* any address */
	assert_int_equal(throttle_check(t, "bob", "10.0.0.8", now), 0);   /* bob unaffected */
	assert_int_equal(throttle_check(t, "alice", NULL, now + 1000), 0); /* after backoff */
	throttle_fail(t, "alice", NULL, now + 1000);
	assert_int_equal(throttle_check(t, "alice", NULL, now + 1000), 2); /* doubled */
	throttle_free(t);
}

static void test_login_per_account_many_ips(void **state)
{
	struct throttle *t = throttle_new(&cfg);
	char ip[32];

	for (int i = 0; i < 3; i++) {
		snprintf(ip, sizeof(ip), "127.0.0.%d", i + 1);
		assert_int_equal(throttle_check(t, "alice", ip, 5000), 0);
		throttle_fail(t, "alice", ip, 5000);
	}
	assert_true(throttle_check(t, "alice", "127.0.0.99", 5000) > 0);
	throttle_free(t);
}

static void test_login_reset_and_cap(void **state)
{
	struct throttle *t = throttle_new(&cfg);
	int64_t now = 0;

	for (int i = 0; i < 20; i++)
		throttle_fail(t, "alice", NULL, now);
	assert_int_equal(throttle_check(t, "alice", NULL, now), 8); /* capped at max */
	throttle_success(t, "alice", NULL);
	assert_int_equal(throttle_check(t, "alice", NULL, now), 0);
	/* counters forget after a day without failures */
	for (int i = 0; i < 5; i++)
		throttle_fail(t, "carol", NULL, now);
	assert_int_equal(throttle_check(t, "carol", NULL, now + THROTTLE_FORGET_MS + 1), 0);
	throttle_free(t);
}

static void test_guess_window(void **state)
{
	struct throttle *t = throttle_new(&cfg);

	for (int i = 0; i < 4; i++)
		throttle_guess_fail(t, "10.1.1.1", 100);
	assert_int_equal(throttle_guess_check(t, "10.1.1.1", 100), 0);
	throttle_guess_fail(t, "10.1.1.1", 100);
	assert_int_equal(throttle_guess_check(t, "10.1.1.1", 100), 10);
	assert_int_equal(throttle_guess_check(t, "10.1.1.2", 100), 0); /* other client */
	assert_int_equal(throttle_guess_check(t, "10.1.1.1", 10100), 0); /* window over */
	throttle_guess_fail(t, "10.1.1.1", 10100); /* a new window starts */
	assert_int_equal(throttle_guess_check(t, "10.1.1.1", 10100), 0);
	throttle_free(t);
}

static void test_bounded_table(void **state)
{
	struct throttle_cfg small = cfg;
	struct throttle *t;
	char key[32];

	small.max_entries = 50;
	t = throttle_new(&small);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "user%d", i);
		throttle_fail(t, key, NULL, 0);
	}
	assert_int_equal(throttle_size(t), 50);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
		throttle_guess_fail(t, key, 0);
	}
	assert_int_equal(throttle_size(t), 100);
	throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_limit),
		cmocka_unit_test(test_login_per_account_many_ips),
		cmocka_unit_test(test_login_reset_and_cap),
		cmocka_unit_test(test_guess_window),
		cmocka_unit_test(test_bounded_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
