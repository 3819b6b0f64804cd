/* Unit tests for gateway/passwd.c: hash format (AUTH-1), verify, policy
 * bounds (AUTH-3), rehash detection (AUTH-2) and the bounded queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/passwd.c"

#include <regex.h>
#include <unistd.h>

#include "common/timeutil.h"

static void test_hash_format(void **state)
{
	char *a = NULL, *b = NULL;
	regex_t re;

	assert_int_equal(passwd_hash("correct horse", &a, NULL), 0);
	assert_int_equal(passwd_hash("correct horse", &b, NULL), 0);
	assert_int_equal(regcomp(&re, "^\\$argon2id\\$v=19\\$m=65536,t=2,p=1\\$", REG_EXTENDED),
			 0);
	assert_int_equal(regexec(&re, a, 0, NULL, 0), 0);
	regfree(&re);
	assert_string_not_equal(a, b); /* random salt */
	assert_true(passwd_verify(a, "correct horse"));
	assert_true(passwd_verify(b, "correct horse"));
	assert_false(passwd_verify(a, "correct horsE"));
	assert_false(passwd_verify(a, ""));
	assert_false(passwd_needs_rehash(a));
	free(a);
	free(b);
}

static void test_verify_bad_stored(void **state)
{
	assert_false(passwd_verify(NULL, "whatever1"));
	assert_false(passwd_verify("", "whatever1"));
	assert_false(passwd_verify("$2b$10$abc", "whatever1"));
	/* the dummy is a real hash, yet no password we know matches it */
	assert_int_equal(strncmp(passwd_dummy_hash(), "$argon2id$", 10), 0);
	assert_false(passwd_verify(passwd_dummy_hash(), "whatever1"));
}

static void test_policy_bounds(void **state)
{
	char big[PASSWD_MAX_LEN + 2];
	struct err *e = NULL;

	memset(big, 'x', sizeof(big));
	assert_int_equal(passwd_check_policy(big, 7, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "8"));
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	assert_int_equal(passwd_check_policy(big, 8, NULL), 0);
	assert_int_equal(passwd_check_policy(big, 64, NULL), 0);
	assert_int_equal(passwd_check_policy(big, 1024, NULL), 0);
	assert_int_equal(passwd_check_policy(big, 1025, &e), -EMSGSIZE);
	assert_int_equal(err_http_status(e), 400);
	err_free(&e);
	big[3] = '\0';
	assert_int_equal(passwd_check_policy(big, 10, &e), -EINVAL);
	err_free(&e);
}

static void test_rehash_lower_params(void **state)
{
	char old[crypto_pwhash_STRBYTES];

	assert_int_equal(crypto_pwhash_str(old, "password1", 9, crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN), 0);
	assert_true(passwd_verify(old, "password1"));
	assert_true(passwd_needs_rehash(old));
	assert_true(passwd_needs_rehash(NULL));
	assert_true(passwd_needs_rehash("$2b$10$x"));
}

struct qres {
	int verified, hashed;
	bool ok[4];
	char *new_hash;
	char *hash;
};

static void on_verify(void *arg, bool ok, char *new_hash)
{
	struct qres *r = arg;

	r->ok[r->verified++] = ok;
	if (new_hash) {
		free(r->new_hash);
		r->new_hash = new_hash;
	}
}

static void on_hash(void *arg, char *hash, struct err *err)
{
	struct qres *r = arg;

	assert_null(err);
	r->hash = hash;
	r->hashed++;
}

static void test_queue_bounded(void **state)
{
	struct work_pool *wp = work_pool_new(2, NULL, NULL);
	struct passwd_queue *q = passwd_queue_new(wp, 1);
	char old[crypto_pwhash_STRBYTES];
	struct qres r = { 0 };
	int64_t deadline = time_mono_ms() + 20000;

	assert_int_equal(crypto_pwhash_str(old, "password1", 9, crypto_pwhash_OPSLIMIT_MIN,
					   crypto_pwhash_MEMLIMIT_MIN), 0);
	assert_int_equal(passwd_queue_verify(q, old, "password1", on_verify, &r, NULL), 0);
	assert_int_equal(passwd_queue_verify(q, old, "wrong", on_verify, &r, NULL), 0);
	assert_int_equal(passwd_queue_verify(q, NULL, "password1", on_verify, &r, NULL), 0);
	assert_int_equal(passwd_queue_hash(q, "new password", on_hash, &r, NULL), 0);
	assert_int_equal(q->running, 1); /* concurrency cap */
	assert_int_equal(passwd_queue_len(q), 4);
	while ((r.verified < 3 || r.hashed < 1) && time_mono_ms() < deadline) {
		work_drain(wp);
		usleep(5000);
	}
	assert_int_equal(r.verified, 3);
	assert_true(r.ok[0]);
	assert_false(r.ok[1]);
	assert_false(r.ok[2]);
	assert_non_null(r.new_hash); /* rehashed: old params */
	assert_false(passwd_needs_rehash(r.new_hash));
	assert_true(passwd_verify(r.hash, "new password"));
	assert_int_equal(passwd_queue_len(q), 0);
	free(r.new_hash);
	free(r.hash);
	work_pool_free(wp);
	passwd_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_format),
		cmocka_unit_test(test_verify_bad_stored),
		cmocka_unit_test(test_policy_bounds),
		cmocka_unit_test(test_rehash_lower_params),
		cmocka_unit_test(test_queue_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
