/* Unit tests for common/err.c: set, wrap, first error wins, HTTP mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.c"

static void test_err_set_and_wrap(void **state)
{
	struct err *e = NULL;

	assert_int_equal(err_set(&e, ENOENT, "open '%s'", "x"), -ENOENT);
	assert_int_equal(err_wrap(&e, "load %d", 7), -ENOENT);
	assert_int_equal(e->code, ENOENT);
	assert_string_equal(e->msg, "load 7: open 'x'");
	err_free(&e);
	assert_null(e);
}

static void test_err_first_error_kept(void **state)
{
	struct err *e = NULL;

	err_set(&e, EINVAL, "first");
	assert_int_equal(err_set(&e, EIO, "second"), -EIO);
	assert_string_equal(e->msg, "first");
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
}

static void test_err_null_sink(void **state)
{
	assert_int_equal(err_set(NULL, EACCES, "x"), -EACCES);
	assert_int_equal(err_set(NULL, 0, "x"), -EIO);
}

static void test_err_errno(void **state)
{
	struct err *e = NULL;

	errno = ENOENT;
	err_set_errno(&e, "stat '%s'", "/nope");
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "stat '/nope': "));
	assert_non_null(strstr(e->msg, strerror(ENOENT)));
	err_free(&e);
}

static void test_err_http_mapping(void **state)
{
	static const struct { int code, http; } rows[] = {
		{ EINVAL, 400 }, { EACCES, 403 }, { EPERM, 403 }, { ENOENT, 404 },
		{ EEXIST, 409 }, { EMSGSIZE, 413 }, { ENOTSUP, 501 },
		{ EAGAIN, 503 }, { ETIMEDOUT, 504 }, { EIO, 500 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct err *e = NULL;

		err_set(&e, rows[i].code, "x");
		assert_int_equal(err_http_status(e), rows[i].http);
		err_free(&e);
	}
	assert_int_equal(err_http_status(NULL), 500);
}

static void test_err_explicit_http(void **state)
{
	struct err *e = NULL;

	err_set_http(&e, 429, EAGAIN, "slow down");
	assert_int_equal(err_http_status(e), 429);
	err_wrap(&e, "login");
	assert_int_equal(err_http_status(e), 429);
	assert_string_equal(e->msg, "login: slow down");
	err_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set_and_wrap),
		cmocka_unit_test(test_err_first_error_kept),
		cmocka_unit_test(test_err_null_sink),
		cmocka_unit_test(test_err_errno),
		cmocka_unit_test(test_err_http_mapping),
		cmocka_unit_test(test_err_explicit_http),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
