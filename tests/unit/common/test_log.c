/* Unit tests for common/log.c: log_redact masks secrets and truncates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.c"

static char out[256];

static const char *redact(const char *s)
{
	return log_redact(out, sizeof(out), s, strlen(s));
}

static void assert_masked(const char *in, const char *secret)
{
	const char *r = redact(in);

	assert_null(strstr(r, secret));
	assert_non_null(strstr(r, "[redacted]"));
}

static void test_log_redact_query_token(void **state)
{
	assert_masked("GET /user/a/api?token=s3cr3tvalue&x=1 HTTP/1.1", "s3cr3tvalue");
	/* what follows the secret survives */
	assert_non_null(strstr(out, "&x=1 HTTP/1.1"));
	assert_non_null(strstr(out, "GET /user/a/api?token="));
	/* one-time setup and hand-off codes are credentials too */
	assert_masked("GET /hub/oauth_callback?code=Zm9vYmFyYmF6&next=%2F", "Zm9vYmFyYmF6");
	assert_masked("GET /hub/setup?code=c0de0123", "c0de0123");
}

static void test_log_redact_headers(void **state)
{
	assert_masked("Authorization: token abcdef123", "abcdef123");
	assert_masked("authorization: Bearer zzz.yyy.xxx", "zzz.yyy");
	assert_masked("Cookie: nbgate-session=deadbeef; other=1", "deadbeef");
	assert_masked("Cookie: a=1; b=secondsecret", "secondsecret");
}

static void test_log_redact_bearer_inline(void **state)
{
	assert_masked("sent Bearer qwerty123 to upstream", "qwerty123");
	assert_non_null(strstr(out, "to upstream"));
}

static void test_log_redact_header_ends_at_newline(void **state)
{
	redact("Cookie: s=abc\r\nHost: example");
	assert_null(strstr(out, "abc"));
	assert_non_null(strstr(out, "Host: example"));
}

static void test_log_redact_plain_unchanged(void **state)
{
	assert_string_equal(redact("nothing secret here"), "nothing secret here");
}

static void test_log_redact_control_bytes(void **state)
{
	assert_string_equal(redact("a\x01" "b\x1b[31m"), "a?b?[31m");
}

static void test_log_redact_truncates(void **state)
{
	char small[8];

	log_redact(small, sizeof(small), "0123456789abcdef", 16);
	assert_int_equal(strlen(small), 7);
	assert_string_equal(small + 4, "...");
	log_redact(small, sizeof(small), "0123456", 7);
	assert_string_equal(small, "0123456");
}

static void test_log_redact_truncated_secret_not_leaked(void **state)
{
	char small[16];

	log_redact(small, sizeof(small), "token=SECRETSECRETSECRET", 24);
	assert_null(strstr(small, "SECRET"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_redact_query_token),
		cmocka_unit_test(test_log_redact_headers),
		cmocka_unit_test(test_log_redact_bearer_inline),
		cmocka_unit_test(test_log_redact_header_ends_at_newline),
		cmocka_unit_test(test_log_redact_plain_unchanged),
		cmocka_unit_test(test_log_redact_control_bytes),
		cmocka_unit_test(test_log_redact_truncates),
		cmocka_unit_test(test_log_redact_truncated_secret_not_leaked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
