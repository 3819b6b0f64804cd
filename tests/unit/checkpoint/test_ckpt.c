/*
 * checkpoint/ckpt.c: the mode registry, the dispatchers, `nbgate checkpoint
 * dump` argument checking; through the table, the criu mode's remove op
 * (what it refuses and what it deletes), the commit mode's probe, and the
 * CRIU log reader behind dump/restore error messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt.c"
#include "checkpoint/checkpoint.h"
#include "common/xalloc.h"

static char tmp[64];

static int rm_any(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_ckpt.XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmp, rm_any, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_ops_find(void **state)
{
	(void)state;
	assert_ptr_equal(ckpt_ops_find("criu"), &ckpt_criu_ops);
	assert_ptr_equal(ckpt_ops_find("commit"), &ckpt_commit_ops);
	assert_null(ckpt_ops_find("stop"));
	assert_null(ckpt_ops_find(NULL));
	assert_int_equal(ckpt_criu_ops.caps, CKPT_CAP_MEMORY);
	assert_int_equal(ckpt_commit_ops.caps, CKPT_CAP_FS);
}

static void test_dispatch_null_ops(void **state)
{
	struct ckpt_ops none = { .name = "none" };
	struct ckpt_target t = { 0 };
	struct err *e = NULL;
	char *why = NULL;
	pid_t pid = 0;

	(void)state;
	assert_int_equal(ckpt_probe(&none, &t, &why, &e), 1); /* nothing to probe */
	assert_true(ckpt_dump(&none, &t, &e) < 0);
	assert_int_equal(e->code, ENOTSUP);
	err_free(&e);
	assert_true(ckpt_restore(&ckpt_commit_ops, &t, &pid, &e) < 0);
	assert_int_equal(e->code, ENOTSUP);
	assert_non_null(strstr(e->msg, "start its image"));
	err_free(&e);
	assert_true(ckpt_remove(&none, &t, &e) < 0);
	err_free(&e);
}

static void test_cli_usage(void **state)
{
	char *no_cmd[] = { "nope" };
	char *bad_mode[] = { "dump", "--mode", "zip" };
	char *odd[] = { "dump", "--mode" };
	char *unknown[] = { "dump", "--mode", "criu", "--colour", "red" };
	char *bad_pid[] = { "dump", "--mode", "criu", "--criu", "/x", "--pid1", "1", "--dir", "/d" };
	char *junk_pid[] = { "dump", "--mode", "criu", "--criu", "/x", "--pid1", "12x", "--dir", "/d" };

	(void)state;
	assert_int_equal(ckpt_cli(1, no_cmd), 2);
	assert_int_equal(ckpt_cli(3, bad_mode), 2);
	assert_int_equal(ckpt_cli(2, odd), 2);
	assert_int_equal(ckpt_cli(5, unknown), 2);
	assert_int_equal(ckpt_cli(9, bad_pid), 2);
	assert_int_equal(ckpt_cli(9, junk_pid), 2);
}

static void test_cli_commit_fails_cleanly(void **state)
{
	char store[128], upper[128];
	char *argv[] = { "dump", "--mode", "commit", "--store", store, "--base", "nope",
			 "--upper", upper, "--ref", "x" };

	(void)state;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(upper, sizeof(upper), "%s/upper", tmp);
	assert_int_equal(mkdir(store, 0700), 0);
	assert_int_equal(mkdir(upper, 0700), 0);
	/* no such base image: one line on stderr, exit 1 */
	assert_int_equal(ckpt_cli(11, argv), 1);
}

static void test_criu_remove(void **state)
{
	char root[128], dir[160], file[192], link[160], outside[128];
	struct ckpt_target t = { .root = root };
	struct err *e = NULL;

	(void)state;
	snprintf(root, sizeof(root), "%s/ck", tmp);
	snprintf(dir, sizeof(dir), "%s/alice/7", root);
	snprintf(file, sizeof(file), "%s/pages-1.img", dir);
	snprintf(outside, sizeof(outside), "%s/outside", tmp);
	assert_int_equal(mkdir(root, 0700), 0);
	snprintf(link, sizeof(link), "%s/alice", root);
	assert_int_equal(mkdir(link, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	put(file, "x");
	assert_int_equal(mkdir(outside, 0700), 0);

	/* refused: outside the root, dot components, the root itself */
	t.dir = outside;
	assert_true(ckpt_remove(&ckpt_criu_ops, &t, &e) < 0);
	assert_int_equal(e->code, EPERM);
	err_free(&e);
	char dots[192];
	snprintf(dots, sizeof(dots), "%s/alice/../../outside", root);
	t.dir = dots;
	assert_true(ckpt_remove(&ckpt_criu_ops, &t, &e) < 0);
	err_free(&e);
	t.dir = root;
	assert_true(ckpt_remove(&ckpt_criu_ops, &t, &e) < 0);
	err_free(&e);
	assert_int_equal(access(outside, F_OK), 0);

	/* a symlink on the way is never followed */
	char via[160], target[192];
	snprintf(via, sizeof(via), "%s/bob", root);
	assert_int_equal(symlink(outside, via), 0);
	snprintf(target, sizeof(target), "%s/bob/1", root);
	snprintf(file, sizeof(file), "%s/1", outside);
	assert_int_equal(mkdir(file, 0700), 0);
	t.dir = target;
	assert_true(ckpt_remove(&ckpt_criu_ops, &t, &e) < 0);
	assert_int_equal(e->code, ELOOP);
	err_free(&e);
	assert_int_equal(access(file, F_OK), 0);

	/* deleted, and a missing dir is fine */
	t.dir = dir;
	assert_int_equal(ckpt_remove(&ckpt_criu_ops, &t, &e), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(ckpt_remove(&ckpt_criu_ops, &t, &e), 0);
}

static void test_commit_probe(void **state)
{
	char nodir[128];
	struct ckpt_target t = { .store = tmp };
	struct err *e = NULL;
	char *why = NULL;

	(void)state;
	assert_int_equal(ckpt_probe(&ckpt_commit_ops, &t, &why, &e), 1);
	snprintf(nodir, sizeof(nodir), "%s/none", tmp);
	t.store = nodir;
	assert_int_equal(ckpt_probe(&ckpt_commit_ops, &t, &why, &e), 0);
	assert_non_null(strstr(why, "not a writable directory"));
	free(why);
}

static void test_criu_log_error(void **state)
{
	char log[128];
	char *m;

	(void)state;
	snprintf(log, sizeof(log), "%s/dump.log", tmp);
	put(log, "(00.01) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x\n"
		 "Error (criu/util.c:642): execvp(\"iptables-save\", ...) failed\n"
		 "(00.40) Error (criu/sk-unix.c:351): unix: Unix socket 42 not found\n"
		 "(00.41) Error (criu/cr-dump.c:1577): Dump files (pid: 7) failed with -1\n"
		 "(00.42) Error (criu/cr-dump.c:2007): Dumping FAILED.\n");
	m = checkpoint_criu_log_error(log);
	assert_string_equal(m, "Error (criu/sk-unix.c:351): unix: Unix socket 42 not found");
	free(m);
	put(log, "(00.42) Error (criu/cr-dump.c:2007): Dumping FAILED.\n");
	m = checkpoint_criu_log_error(log);
	assert_string_equal(m, "CRIU failed without an error line");
	free(m);
	snprintf(log, sizeof(log), "%s/absent.log", tmp);
	m = checkpoint_criu_log_error(log);
	assert_string_equal(m, "no CRIU log");
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops_find),
		cmocka_unit_test(test_dispatch_null_ops),
		cmocka_unit_test(test_cli_usage),
		cmocka_unit_test_setup_teardown(test_cli_commit_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_criu_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_criu_log_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
