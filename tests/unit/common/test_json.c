/* Unit tests for common/json.c: strict UTF-8, parse errors, field errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/json.c"

#define P(s) s, sizeof(s) - 1

static void test_json_utf8_valid_table(void **state)
{
	static const struct { const char *s; size_t n; bool ok; } rows[] = {
		{ P("plain ascii"), true },
		{ P("caf\xc3\xa9"), true },                 /* U+00E9 */
		{ P("\xe2\x82\xac"), true },                /* U+20AC */
		{ P("\xf0\x9f\x98\x80"), true },            /* U+1F600 */
		{ P("\xf4\x8f\xbf\xbf"), true },            /* U+10FFFF */
		{ P("\xef\xbb\xbf"), true },                /* BOM is a char */
		{ P("\xc0\xaf"), false },                   /* overlong '/' */
		{ P("\xe0\x80\xaf"), false },               /* overlong, 3 bytes */
		{ P("\xf0\x80\x80\xaf"), false },           /* overlong, 4 bytes */
		{ P("\xed\xa0\x80"), false },               /* surrogate D800 */
		{ P("\xf4\x90\x80\x80"), false },           /* U+110000 */
		{ P("\xf5\x80\x80\x80"), false },
		{ P("\x80"), false },                       /* lone continuation */
		{ P("\xc3"), false },                       /* truncated */
		{ P("\xe2\x82"), false },
		{ P("\xc3\x28"), false },                   /* bad continuation */
		{ P("\xff"), false },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(json_utf8_valid(rows[i].s, rows[i].n), rows[i].ok);
}

static void test_json_parse_rejects_invalid_utf8(void **state)
{
	static const char bad[] = "{\"name\": \"a\xc0\xafz\"}";
	struct err *e = NULL;
	cJSON *o = json_parse(bad, sizeof(bad) - 1, &e);

	assert_null(o);
	assert_int_equal(e->code, EINVAL);
	assert_int_equal(err_http_status(e), 400);
	assert_non_null(strstr(e->msg, "invalid UTF-8 at byte 11"));
	err_free(&e);
}

static void test_json_parse_good_and_length_bound(void **state)
{
	/* only len bytes are read: the trailing garbage is outside */
	static const char text[] = "{\"a\": \"\xc3\xa9\"}GARBAGE";
	struct err *e = NULL;
	cJSON *o = json_parse(text, sizeof(text) - 1 - 7, &e);
	const char *s = NULL;

	assert_non_null(o);
	assert_int_equal(json_get_string(o, "a", true, &s, &e), 1);
	assert_string_equal(s, "\xc3\xa9");
	cJSON_Delete(o);
}

static void test_json_parse_errors(void **state)
{
	static const char *const bad[] = { "", "{", "{\"a\":1} x", "{\"a\":1}{}",
					   "nul", "{\"a\":\"b\"" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err *e = NULL;

		assert_null(json_parse(bad[i], strlen(bad[i]), &e));
		assert_int_equal(e->code, EINVAL);
		err_free(&e);
	}
}

static void test_json_parse_rejects_nul(void **state)
{
	struct err *e = NULL;

	assert_null(json_parse("{\"a\":\"x\0y\"}", 11, &e));
	assert_non_null(strstr(e->msg, "NUL"));
	err_free(&e);
}

static void test_json_parse_trailing_whitespace_ok(void **state)
{
	cJSON *o = json_parse(P("{\"a\": 1}\r\n  "), NULL);

	assert_non_null(o);
	cJSON_Delete(o);
}

static void test_json_field_errors_named(void **state)
{
	cJSON *o = json_parse(P("{\"name\": 5, \"admin\": \"yes\", \"n\": 1.5,"
				" \"big\": 1000, \"groups\": [\"a\", 2], \"nul\": null}"), NULL);
	const char *s = NULL;
	bool b = false;
	int64_t v = 0;
	char **arr = NULL;
	struct err *e = NULL;

	assert_non_null(o);
	assert_true(json_get_string(o, "name", true, &s, &e) < 0);
	assert_string_equal(e->msg, "field 'name': expected string");
	err_free(&e);
	assert_true(json_get_bool(o, "admin", true, &b, &e) < 0);
	assert_string_equal(e->msg, "field 'admin': expected boolean");
	err_free(&e);
	assert_true(json_get_int(o, "n", true, 0, 10, &v, &e) < 0);
	assert_string_equal(e->msg, "field 'n': expected integer");
	err_free(&e);
	assert_true(json_get_int(o, "big", true, 0, 999, &v, &e) < 0);
	assert_non_null(strstr(e->msg, "field 'big': 1000 out of range"));
	err_free(&e);
	assert_int_equal(json_get_int(o, "big", true, 0, 1000, &v, &e), 1);
	assert_int_equal(v, 1000);
	assert_true(json_get_string_array(o, "groups", true, &arr, &e) < 0);
	assert_string_equal(e->msg, "field 'groups'[1]: expected string");
	assert_null(arr);
	err_free(&e);
	assert_true(json_get_string(o, "missing", true, &s, &e) < 0);
	assert_string_equal(e->msg, "field 'missing' is required");
	err_free(&e);
	/* null counts as absent */
	assert_true(json_get_string(o, "nul", true, &s, &e) < 0);
	err_free(&e);
	s = "untouched";
	assert_int_equal(json_get_string(o, "nul", false, &s, &e), 0);
	assert_string_equal(s, "untouched");
	assert_null(e);
	cJSON_Delete(o);
}

static void test_json_string_array(void **state)
{
	cJSON *o = json_parse(P("{\"g\": [\"a\", \"b\"], \"e\": []}"), NULL);
	char **arr = NULL;

	assert_int_equal(json_get_string_array(o, "g", true, &arr, NULL), 1);
	assert_int_equal(xstrv_len(arr), 2);
	assert_string_equal(arr[1], "b");
	assert_null(arr[2]);
	xstrv_free(arr);
	arr = NULL;
	assert_int_equal(json_get_string_array(o, "e", true, &arr, NULL), 1);
	assert_non_null(arr);
	assert_null(arr[0]);
	xstrv_free(arr);
	cJSON_Delete(o);
}

static void test_json_print_compact(void **state)
{
	cJSON *o = json_parse(P("{ \"a\" : [ 1 , 2 ] , \"b\" : \"x\" }"), NULL);
	char *s = json_print(o);

	assert_string_equal(s, "{\"a\":[1,2],\"b\":\"x\"}");
	free(s);
	cJSON_Delete(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_utf8_valid_table),
		cmocka_unit_test(test_json_parse_rejects_invalid_utf8),
		cmocka_unit_test(test_json_parse_good_and_length_bound),
		cmocka_unit_test(test_json_parse_errors),
		cmocka_unit_test(test_json_parse_rejects_nul),
		cmocka_unit_test(test_json_parse_trailing_whitespace_ok),
		cmocka_unit_test(test_json_field_errors_named),
		cmocka_unit_test(test_json_string_array),
		cmocka_unit_test(test_json_print_compact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
