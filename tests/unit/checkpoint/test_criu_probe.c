/*
 * Unit tests for checkpoint/criu_probe.c: the `criu --version` and
 * `criu check` parsers from both sides (4.1.1 and 3.17 refused, 4.2 and
 * 4.2.1 accepted, garbage refused) and the usability verdict. Running a
 * real criu is t7000's job (nothing here forks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "checkpoint/criu_probe.c"

static bool version_of(const char *out, char *buf, size_t n, uint32_t *num)
{
	return checkpoint_criu_parse_version(out, buf, n, num) == 0;
}

static void test_parse_version_accepts_4_2_1(void **state)
{
	char v[16];
	uint32_t num = 0;

	assert_true(version_of("Version: 4.2.1\nGitID: v4.2.1\n", v, sizeof(v), &num));
	assert_string_equal(v, "4.2.1");
	assert_int_equal(num, CHECKPOINT_CRIU_VERSION(4, 2, 1));
	assert_true(num >= CHECKPOINT_CRIU_MIN_VERSION);
}

static void test_parse_version_accepts_4_2(void **state)
{
	char v[16];
	uint32_t num = 0;

	assert_true(version_of("Version: 4.2\n", v, sizeof(v), &num));
	assert_string_equal(v, "4.2");
	assert_int_equal(num, CHECKPOINT_CRIU_MIN_VERSION);
	/* no newline at the end, trailing blanks, a later line */
	assert_true(version_of("Version:\t4.2  ", v, sizeof(v), &num));
	assert_string_equal(v, "4.2");
	assert_true(version_of("Warn: something\nVersion: 4.10.0\r\n", v, sizeof(v), &num));
	assert_string_equal(v, "4.10.0");
	assert_true(num > CHECKPOINT_CRIU_VERSION(4, 9, 999));
}

static void test_parse_version_old_ones_are_too_old(void **state)
{
	char v[16];
	uint32_t num = 0;

	assert_true(version_of("Version: 4.1.1\n", v, sizeof(v), &num));
	assert_int_equal(num, CHECKPOINT_CRIU_VERSION(4, 1, 1));
	assert_true(num < CHECKPOINT_CRIU_MIN_VERSION);
	assert_true(version_of("Version: 3.17.1\n", v, sizeof(v), &num));
	assert_true(num < CHECKPOINT_CRIU_MIN_VERSION);
	/* 4.1.999 is still older than 4.2 */
	assert_true(version_of("Version: 4.1.999\n", v, sizeof(v), &num));
	assert_true(num < CHECKPOINT_CRIU_MIN_VERSION);
}

static void test_parse_version_refuses_garbage(void **state)
{
	static const char *const bad[] = {
		"", "hello\n", "Version:\n", "Version: \n", "Version: 4\n", "Version: 4.\n",
		"Version: 4.x\n", "Version: v4.2.1\n", "Version: 4.2.1.1\n", "Version: 4.2.1-rc1\n",
		"Version: 4.2.1 extra\n", "Version: 1234.1\n", "Version: .2\n", "  Version: 4.2.1\n",
		"criu Version: 4.2.1\n", "version: 4.2.1\n", "GitID: v4.2.1\n",
	};
	char v[16];
	uint32_t num = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (version_of(bad[i], v, sizeof(v), &num))
			fail_msg("accepted %s", bad[i]);
	}
}

static void test_parse_version_buffer_too_small(void **state)
{
	char v[5];
	uint32_t num = 0;

	assert_false(version_of("Version: 4.2.1\n", v, sizeof(v), &num));
	assert_true(version_of("Version: 4.2\n", v, sizeof(v), &num));
	assert_string_equal(v, "4.2");
}

static void test_parse_check_good(void **state)
{
	char *why = NULL;

	assert_true(checkpoint_criu_parse_check("Looks good.\n", W_EXITCODE(0, 0), &why));
	assert_null(why);
	/* warnings before the verdict do not fail it */
	assert_true(checkpoint_criu_parse_check("Warn  (criu/kerndat.c:1493): pagemap_scan ...\n"
						"Looks good.\n",
						W_EXITCODE(0, 0), &why));
	assert_true(checkpoint_criu_parse_check("Looks good but some kernel features are missing\n"
						"which, depending on your process tree, may cause\n"
						"dump or restore failure.\n",
						W_EXITCODE(0, 0), &why));
	assert_null(why);
}

static void test_parse_check_error_line(void **state)
{
	char *why = NULL;

	assert_false(checkpoint_criu_parse_check(
		"Info: something first\n"
		"Error (criu/cr-check.c:1130): Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP\n"
		"Error (criu/cr-check.c:1200): second\n"
		"Does not look good.\n",
		W_EXITCODE(1, 0), &why));
	assert_non_null(why);
	assert_string_equal(why,
			    "Error (criu/cr-check.c:1130): Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP");
	free(why);
}

/* criu prints warnings on every run here: they must not hide the error */
static void test_parse_check_error_after_warnings(void **state)
{
	char *why = NULL;

	assert_false(checkpoint_criu_parse_check(
		"Warn  (criu/kerndat.c:1799): Hardware breakpoints don't seem to work (status=137f)\n"
		"Warn  (criu/kerndat.c:1290): Can't keep kdat cache on non-tempfs\n"
		"Error (criu/cr-check.c:99): fake kernel lacks map_files\n"
		"Does not look good.\n",
		W_EXITCODE(1, 0), &why));
	assert_string_equal(why, "Error (criu/cr-check.c:99): fake kernel lacks map_files");
	free(why);
	why = NULL;
	/* only warnings: a plain line beats them, else the first warning */
	assert_false(checkpoint_criu_parse_check("Warn  (a): w1\nsomething broke\n",
						 W_EXITCODE(1, 0), &why));
	assert_string_equal(why, "something broke");
	free(why);
	why = NULL;
	assert_false(checkpoint_criu_parse_check("Warn  (a): w1\nWarn  (b): w2\nDoes not look good.\n",
						 W_EXITCODE(1, 0), &why));
	assert_string_equal(why, "Warn  (a): w1");
	free(why);
}

static void test_parse_check_non_root(void **state)
{
	char *why = NULL;

	assert_false(checkpoint_criu_parse_check(
		"Running as non-root requires '--unprivileged'\r\nPlease consult the documentation\n",
		W_EXITCODE(1, 0), &why));
	assert_string_equal(why, "Running as non-root requires '--unprivileged'");
	free(why);
}

static void test_parse_check_refuses_garbage(void **state)
{
	char *why = NULL;

	/* exit 0 without the verdict */
	assert_false(checkpoint_criu_parse_check("all fine, trust me\n", W_EXITCODE(0, 0), &why));
	assert_string_equal(why, "criu check printed no verdict");
	free(why);
	why = NULL;
	assert_false(checkpoint_criu_parse_check("", W_EXITCODE(0, 0), &why));
	free(why);
	why = NULL;
	/* not the verdict, only text that starts like it */
	assert_false(checkpoint_criu_parse_check("Looks good.extra\n", W_EXITCODE(0, 0), &why));
	free(why);
	why = NULL;
	/* the verdict with a failing exit status */
	assert_false(checkpoint_criu_parse_check("Looks good.\n", W_EXITCODE(1, 0), &why));
	assert_string_equal(why, "criu check exited with status 1");
	free(why);
	why = NULL;
	assert_false(checkpoint_criu_parse_check("Looks good.\n", W_EXITCODE(0, 9), &why));
	assert_string_equal(why, "criu check killed by signal 9");
	free(why);
	/* a NULL first_error is allowed */
	assert_false(checkpoint_criu_parse_check("Does not look good.\n", W_EXITCODE(1, 0), NULL));
}

static void test_features_table(void **state)
{
	int n, i, j;
	const struct checkpoint_criu_feature *f = checkpoint_criu_features(&n);
	bool seen_wanted = false;

	assert_true(n > 0 && n <= 32); /* bits of info.features */
	for (i = 0; i < n; i++) {
		assert_non_null(f[i].name);
		assert_non_null(f[i].why);
		if (!f[i].needed)
			seen_wanted = true;
		else if (seen_wanted)
			fail_msg("needed feature %s after a wanted one", f[i].name);
		for (j = 0; j < i; j++)
			assert_string_not_equal(f[i].name, f[j].name);
	}
}

static uint32_t all_needed(void)
{
	int n, i;
	const struct checkpoint_criu_feature *f = checkpoint_criu_features(&n);
	uint32_t m = 0;

	for (i = 0; i < n; i++)
		if (f[i].needed)
			m |= 1u << i;
	return m;
}

static void test_judge(void **state)
{
	struct checkpoint_criu_info ci = { .version = "4.2.1", .version_ok = true, .check_ok = true };

	ci.features = all_needed();
	judge(&ci);
	assert_true(ci.usable);
	assert_null(ci.reason);

	ci.features = all_needed() & ~1u; /* the first needed one missing */
	judge(&ci);
	assert_false(ci.usable);
	assert_non_null(strstr(ci.reason, checkpoint_criu_features(&(int){ 0 })[0].name));
	checkpoint_criu_info_release(&ci);

	ci = (struct checkpoint_criu_info){ .version = "4.1.1", .check_ok = true };
	judge(&ci);
	assert_false(ci.usable);
	assert_non_null(strstr(ci.reason, "4.1.1 is older than 4.2"));
	checkpoint_criu_info_release(&ci);

	ci = (struct checkpoint_criu_info){ .version = "4.2.1", .version_ok = true };
	ci.check_error = xstrdup("Error (x): y");
	judge(&ci);
	assert_false(ci.usable);
	assert_string_equal(ci.reason, "criu check fails: Error (x): y");
	checkpoint_criu_info_release(&ci);
	assert_null(ci.reason);
	checkpoint_criu_info_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_version_accepts_4_2_1),
		cmocka_unit_test(test_parse_version_accepts_4_2),
		cmocka_unit_test(test_parse_version_old_ones_are_too_old),
		cmocka_unit_test(test_parse_version_refuses_garbage),
		cmocka_unit_test(test_parse_version_buffer_too_small),
		cmocka_unit_test(test_parse_check_good),
		cmocka_unit_test(test_parse_check_error_line),
		cmocka_unit_test(test_parse_check_error_after_warnings),
		cmocka_unit_test(test_parse_check_non_root),
		cmocka_unit_test(test_parse_check_refuses_garbage),
		cmocka_unit_test(test_features_table),
		cmocka_unit_test(test_judge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
