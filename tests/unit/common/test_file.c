/* Unit tests for common/file.c: whole-file reads, both sides of the cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/file.c"

static char dir[] = "/tmp/nbgate-file-XXXXXX";

static char *put(const char *name, const char *text, size_t n)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	fwrite(text, 1, n, f);
	fclose(f);
	return p;
}

static void test_read_cap(void **state)
{
	char *p = put("ten", "0123456789", 10), *out = NULL;
	struct err *e = NULL;
	size_t len = 0;

	(void)state;
	/* exactly at the cap: read */
	assert_int_equal(file_read_all(p, 0, 10, &out, &len, &e), 0);
	assert_int_equal(len, 10);
	assert_string_equal(out, "0123456789");
	free(out);
	out = NULL;
	/* one byte over: EFBIG, nothing returned */
	assert_true(file_read_all(p, 0, 9, &out, &len, &e) < 0);
	assert_int_equal(e->code, EFBIG);
	assert_null(out);
	err_free(&e);
	free(p);
	/* /proc files report size 0 and are read anyway; the cap still holds */
	assert_int_equal(file_read_all("/proc/self/status", 0, 1 << 16, &out, &len, &e), 0);
	assert_non_null(strstr(out, "\nCapBnd:"));
	free(out);
	out = NULL;
	assert_true(file_read_all("/proc/self/status", 0, 16, &out, &len, &e) < 0);
	assert_int_equal(e->code, EFBIG);
	assert_null(out);
	err_free(&e);
	/* empty file */
	p = put("empty", "", 0);
	assert_int_equal(file_read_all(p, 0, 4, &out, NULL, &e), 0);
	assert_string_equal(out, "");
	free(out);
	free(p);
}

static void test_read_errors(void **state)
{
	char *p = xasprintf("%s/missing", dir), *link, *out = NULL, *target;
	struct err *e = NULL;

	(void)state;
	assert_true(file_read_all(p, 0, 100, &out, NULL, &e) < 0);
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "missing"));
	err_free(&e);
	/* a directory is not a regular file */
	assert_true(file_read_all(dir, 0, 100, &out, NULL, &e) < 0);
	assert_int_equal(e->code, EINVAL);
	err_free(&e);
	/* O_NOFOLLOW refuses a symlink */
	target = put("target", "x", 1);
	link = xasprintf("%s/link", dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(file_read_all(link, 0, 100, &out, NULL, &e), 0);
	free(out);
	out = NULL;
	assert_true(file_read_all(link, O_NOFOLLOW, 100, &out, NULL, &e) < 0);
	assert_int_equal(e->code, ELOOP);
	assert_null(out);
	err_free(&e);
	free(p);
	free(link);
	free(target);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd[] = { "missing", "empty", "ten", "link", "target" };

	(void)state;
	for (size_t i = 0; i < sizeof(cmd) / sizeof(cmd[0]); i++) {
		char *p = xasprintf("%s/%s", dir, cmd[i]);

		unlink(p);
		free(p);
	}
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_cap),
		cmocka_unit_test(test_read_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
