/*
 * Unit tests for common/cfg.c: defaults, file, env override, type and
 * unknown-key errors, size/duration syntax, redaction, validators.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/cfg.c"

struct tcfg {
	char *name;
	int64_t count;
	bool flag;
	uint64_t size;
	int64_t timeout;
	int mode;
	char **list;
	char *password;
};

static const char *const mode_names[] = { "alpha", "beta", NULL };

static int v_count(const void *f, struct err **err)
{
	int64_t v = *(const int64_t *)f;

	if (v < 1 || v > 10)
		return err_set(err, EINVAL, "must be 1..10");
	return 0;
}

static int v_nonempty(const void *f, struct err **err)
{
	if (!**(char *const *)f)
		return err_set(err, EINVAL, "must not be empty");
	return 0;
}

#define O(f) offsetof(struct tcfg, f)
static const struct cfg_entry tab[] = {
	{ "name", CFG_STRING, "anon", 0, O(name), v_nonempty, NULL, "" },
	{ "count", CFG_INT, "3", 0, O(count), v_count, NULL, "" },
	{ "flag", CFG_BOOL, "true", 0, O(flag), NULL, NULL, "" },
	{ "size", CFG_SIZE, "16KiB", 0, O(size), cfg_validate_positive_size, NULL, "" },
	{ "timeout", CFG_DURATION_MS, "10s", 0, O(timeout), NULL, NULL, "" },
	{ "mode", CFG_ENUM, "beta", 0, O(mode), NULL, mode_names, "" },
	{ "list", CFG_STRLIST, "a,b", 0, O(list), NULL, NULL, "" },
	{ "password", CFG_STRING, NULL, CFG_SECRET, O(password), NULL, NULL, "" },
	{ NULL },
};

static int setup(void **state)
{
	struct tcfg *c = calloc(1, sizeof(*c));
	struct err *e = NULL;

	assert_int_equal(cfg_defaults(tab, c, &e), 0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	cfg_free(tab, *state);
	free(*state);
	return 0;
}

/* Writes text to a fresh temp file; returns its path (caller frees + unlinks). */
static char *tmpfile_with(const char *text)
{
	char *path = xstrdup("/tmp/nbgate-test-cfg-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Loads JSON text; returns the error message (caller frees) or NULL. */
static char *load(struct tcfg *c, const char *json)
{
	struct err *e = NULL;
	char *msg;

	if (cfg_load_json(tab, c, json, strlen(json), &e) == 0) {
		assert_null(e);
		return NULL;
	}
	assert_non_null(e);
	assert_int_equal(e->code, EINVAL);
	msg = xstrdup(e->msg);
	err_free(&e);
	return msg;
}

static void test_cfg_defaults(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;

	assert_string_equal(c->name, "anon");
	assert_int_equal(c->count, 3);
	assert_true(c->flag);
	assert_int_equal(c->size, 16384);
	assert_int_equal(c->timeout, 10000);
	assert_int_equal(c->mode, 1);
	assert_int_equal(xstrv_len(c->list), 2);
	assert_string_equal(c->list[1], "b");
	assert_string_equal(c->password, "");
	assert_int_equal(cfg_validate(tab, c, &e), 0);
}

static void test_cfg_file(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;
	char *path = tmpfile_with(
		"{\"name\": \"x\", \"count\": 7, \"flag\": false, \"size\": \"1MiB\","
		" \"timeout\": \"500ms\", \"mode\": \"alpha\", \"list\": [\"p\", \"q,r\", \"s\"]}");

	assert_int_equal(cfg_load_file(tab, c, path, &e), 0);
	unlink(path);
	free(path);
	assert_string_equal(c->name, "x");
	assert_int_equal(c->count, 7);
	assert_false(c->flag);
	assert_int_equal(c->size, 1 << 20);
	assert_int_equal(c->timeout, 500);
	assert_int_equal(c->mode, 0);
	assert_int_equal(xstrv_len(c->list), 3);
	assert_string_equal(c->list[1], "q,r");
}

static void test_cfg_file_numbers_for_size_duration(void **state)
{
	struct tcfg *c = *state;

	assert_null(load(c, "{\"size\": 4096, \"timeout\": 250}"));
	assert_int_equal(c->size, 4096);
	assert_int_equal(c->timeout, 250);
}

static void test_cfg_file_missing(void **state)
{
	struct err *e = NULL;

	assert_true(cfg_load_file(tab, *state, "/nonexistent/nbgate.json", &e) < 0);
	assert_int_equal(e->code, ENOENT);
	assert_non_null(strstr(e->msg, "/nonexistent/nbgate.json"));
	err_free(&e);
}

static void test_cfg_unknown_key(void **state)
{
	char *msg = load(*state, "{\"count\": 2, \"colour\": \"red\"}");

	assert_non_null(msg);
	assert_non_null(strstr(msg, "unknown config key 'colour'"));
	free(msg);
}

static void test_cfg_duplicate_key(void **state)
{
	char *msg = load(*state, "{\"count\": 2, \"count\": 4}");

	assert_non_null(strstr(msg, "duplicate config key 'count'"));
	free(msg);
}

static void test_cfg_wrong_type_names_key(void **state)
{
	static const struct { const char *json, *key, *what; } rows[] = {
		{ "{\"count\": \"3\"}", "'count'", "integer" },
		{ "{\"count\": 2.5}", "'count'", "integer" },
		{ "{\"flag\": 1}", "'flag'", "boolean" },
		{ "{\"name\": 5}", "'name'", "string" },
		{ "{\"list\": \"a\"}", "'list'", "array of strings" },
		{ "{\"list\": [1]}", "'list'", "array of strings" },
		{ "{\"mode\": \"gamma\"}", "'mode'", "alpha|beta" },
		{ "{\"size\": -1}", "'size'", "size" },
		{ "{\"timeout\": true}", "'timeout'", "duration" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *msg = load(*state, rows[i].json);

		assert_non_null(msg);
		assert_non_null(strstr(msg, rows[i].key));
		assert_non_null(strstr(msg, rows[i].what));
		free(msg);
	}
}

static void test_cfg_not_object_or_bad_json(void **state)
{
	char *msg = load(*state, "[1]");

	assert_non_null(strstr(msg, "object"));
	free(msg);
	msg = load(*state, "{\"count\": ");
	assert_non_null(strstr(msg, "invalid JSON"));
	free(msg);
}

static void test_cfg_env_override(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;
	char *path = tmpfile_with("{\"count\": 7, \"name\": \"file\"}");

	setenv("TCFG_COUNT", "9", 1);
	setenv("TCFG_SIZE", "2GiB", 1);
	setenv("TCFG_LIST", "x,y,z", 1);
	setenv("TCFG_FLAG", "off", 1);
	assert_int_equal(cfg_load_file(tab, c, path, &e), 0);
	assert_int_equal(cfg_load_env(tab, c, "TCFG_", &e), 0);
	unlink(path);
	free(path);
	assert_int_equal(c->count, 9);            /* env beats file */
	assert_string_equal(c->name, "file");     /* file beats default */
	assert_int_equal(c->size, 2ULL << 30);
	assert_int_equal(xstrv_len(c->list), 3);
	assert_false(c->flag);
	unsetenv("TCFG_COUNT");
	unsetenv("TCFG_SIZE");
	unsetenv("TCFG_LIST");
	unsetenv("TCFG_FLAG");
}

static void test_cfg_env_bad_value_names_variable(void **state)
{
	struct err *e = NULL;

	setenv("TCFG_TIMEOUT", "10 parsecs", 1);
	assert_true(cfg_load_env(tab, *state, "TCFG_", &e) < 0);
	unsetenv("TCFG_TIMEOUT");
	assert_non_null(strstr(e->msg, "TCFG_TIMEOUT"));
	assert_non_null(strstr(e->msg, "duration"));
	err_free(&e);
}

static void test_cfg_env_list_json(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;

	setenv("TCFG_LIST", "[\"a,b\",\"c\"]", 1);
	assert_int_equal(cfg_load_env(tab, c, "TCFG_", &e), 0);
	unsetenv("TCFG_LIST");
	assert_int_equal(xstrv_len(c->list), 2);
	assert_string_equal(c->list[0], "a,b");
}

static void test_cfg_size_syntax(void **state)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 }, { "16KiB", 16384 },
		{ "16k", 16384 }, { "1MiB", 1 << 20 }, { "1MB", 1 << 20 },
		{ "1GiB", 1ULL << 30 }, { "3gib", 3ULL << 30 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "KiB", "16 KiB", "16KiBs", "-1", "1.5MiB", "16XiB", " 1",
		"18446744073709551616", "17179869184GiB",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(cfg_parse_size(good[i].s, &v, NULL), 0);
		assert_true(v == good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err *e = NULL;

		assert_int_equal(cfg_parse_size(bad[i], &v, &e), -EINVAL);
		assert_non_null(strstr(e->msg, "invalid size"));
		err_free(&e);
	}
}

static void test_cfg_duration_syntax(void **state)
{
	static const struct { const char *s; int64_t v; } good[] = {
		{ "0", 0 }, { "250", 250 }, { "500ms", 500 }, { "10s", 10000 },
		{ "2m", 120000 }, { "1h", 3600000 }, { "14d", 14LL * 86400000 },
	};
	static const char *const bad[] = { "", "s", "10 s", "10sec", "-5s",
					   "1.5h", "9223372036854775808",
					   "999999999999999999d" };
	int64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(cfg_parse_duration_ms(good[i].s, &v, NULL), 0);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cfg_parse_duration_ms(bad[i], &v, NULL), -EINVAL);
}

static void test_cfg_bad_size_suffix_in_file(void **state)
{
	char *msg = load(*state, "{\"size\": \"16XB\"}");

	assert_non_null(strstr(msg, "config key 'size'"));
	assert_non_null(strstr(msg, "size"));
	free(msg);
}

static void test_cfg_print_redacts_secret(void **state)
{
	struct tcfg *c = *state;
	char *out;

	out = cfg_print(tab, c);
	/* an unset secret prints as empty, so operators see it is unset */
	assert_non_null(strstr(out, "\"password\":\t\"\""));
	free(out);
	assert_null(load(c, "{\"password\": \"hunter2\"}"));
	out = cfg_print(tab, c);
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "\"password\":\t\"[redacted]\""));
	assert_non_null(strstr(out, "\"size\":\t\"16KiB\""));
	assert_non_null(strstr(out, "\"timeout\":\t\"10s\""));
	assert_non_null(strstr(out, "\"mode\":\t\"beta\""));
	free(out);
}

static void test_cfg_print_round_trips(void **state)
{
	struct tcfg *c = *state, c2 = { 0 };
	struct err *e = NULL;
	char *out, *out2;

	assert_null(load(c, "{\"size\": 1000, \"timeout\": \"90s\", \"count\": 4}"));
	out = cfg_print(tab, c);
	assert_int_equal(cfg_defaults(tab, &c2, &e), 0);
	assert_int_equal(cfg_load_json(tab, &c2, out, strlen(out), &e), 0);
	assert_int_equal(c2.size, 1000);
	assert_int_equal(c2.timeout, 90000);
	assert_int_equal(c2.count, 4);
	out2 = cfg_print(tab, &c2);
	assert_string_equal(out, out2);
	free(out);
	free(out2);
	cfg_free(tab, &c2);
}

static void test_cfg_validator_both_sides(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;

	c->count = 10;
	assert_int_equal(cfg_validate(tab, c, &e), 0);
	c->count = 1;
	assert_int_equal(cfg_validate(tab, c, &e), 0);
	c->count = 11;
	assert_int_equal(cfg_validate(tab, c, &e), -EINVAL);
	assert_string_equal(e->msg, "config key 'count': must be 1..10");
	err_free(&e);
	c->count = 0;
	assert_int_equal(cfg_validate(tab, c, &e), -EINVAL);
	err_free(&e);
	c->count = 5;
	c->size = 0;
	assert_int_equal(cfg_validate(tab, c, &e), -EINVAL);
	assert_non_null(strstr(e->msg, "'size'"));
	err_free(&e);
	c->size = 1;
	assert_int_equal(cfg_validate(tab, c, &e), 0);
	free(c->name);
	c->name = xstrdup("");
	assert_int_equal(cfg_validate(tab, c, &e), -EINVAL);
	err_free(&e);
}

static void test_cfg_set_string(void **state)
{
	struct tcfg *c = *state;
	struct err *e = NULL;

	assert_int_equal(cfg_set_string(tab, c, "mode", "alpha", &e), 0);
	assert_int_equal(c->mode, 0);
	assert_int_equal(cfg_set_string(tab, c, "nope", "1", &e), -EINVAL);
	assert_non_null(strstr(e->msg, "unknown config key 'nope'"));
	err_free(&e);
}

static void test_cfg_free_twice(void **state)
{
	struct tcfg *c = *state;

	cfg_free(tab, c);
	assert_null(c->name);
	assert_null(c->list);
	cfg_free(tab, c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_cfg_defaults),
		T(test_cfg_file),
		T(test_cfg_file_numbers_for_size_duration),
		T(test_cfg_file_missing),
		T(test_cfg_unknown_key),
		T(test_cfg_duplicate_key),
		T(test_cfg_wrong_type_names_key),
		T(test_cfg_not_object_or_bad_json),
		T(test_cfg_env_override),
		T(test_cfg_env_bad_value_names_variable),
		T(test_cfg_env_list_json),
		T(test_cfg_size_syntax),
		T(test_cfg_duration_syntax),
		T(test_cfg_bad_size_suffix_in_file),
		T(test_cfg_print_redacts_secret),
		T(test_cfg_print_round_trips),
		T(test_cfg_validator_both_sides),
		T(test_cfg_set_string),
		T(test_cfg_free_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
