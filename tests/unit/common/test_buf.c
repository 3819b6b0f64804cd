/* Unit tests for common/buf.c: the hard maximum, from both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.c"

static void test_buf_append_exactly_max(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "12345678", 8), 0);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	buf_release(&b);
}

static void test_buf_append_over_max_unchanged(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "1234", 4), 0);
	assert_int_equal(buf_append(&b, "56789", 5), -EMSGSIZE);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "1234");
	/* filling up to exactly max still works after a refusal */
	assert_int_equal(buf_append(&b, "5678", 4), 0);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(buf_append(&b, "x", 1), -EMSGSIZE);
	assert_int_equal(b.len, 8);
	buf_release(&b);
}

static void test_buf_max_plus_one_from_empty(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "123456789", 9), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	buf_release(&b);
}

static void test_buf_appendf_limit(void **state)
{
	struct buf b;

	buf_init(&b, 5);
	assert_int_equal(buf_appendf(&b, "%d", 12345), 0);
	assert_int_equal(buf_appendf(&b, "%c", 'x'), -EMSGSIZE);
	assert_string_equal(b.data, "12345");
	buf_release(&b);
}

static void test_buf_consume_and_detach(void **state)
{
	struct buf b;
	size_t len;
	char *p;

	buf_init(&b, 64);
	assert_int_equal(buf_appends(&b, "hello world"), 0);
	buf_consume(&b, 6);
	assert_string_equal(b.data, "world");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_appends(&b, "abc"), 0);
	p = buf_detach(&b, &len);
	assert_int_equal(len, 3);
	assert_string_equal(p, "abc");
	assert_null(b.data);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append_exactly_max),
		cmocka_unit_test(test_buf_append_over_max_unchanged),
		cmocka_unit_test(test_buf_max_plus_one_from_empty),
		cmocka_unit_test(test_buf_appendf_limit),
		cmocka_unit_test(test_buf_consume_and_detach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
