/* Unit tests for common/rand.c: lengths, alphabets, encoding, uniqueness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/rand.c"

#include <string.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_rand_hex(void **state)
{
	for (size_t n = 0; n < 40; n++) {
		char *s = rand_hex(n);

		assert_int_equal(strlen(s), 2 * n);
		assert_int_equal(strspn(s, "0123456789abcdef"), 2 * n);
		free(s);
	}
}

static void test_rand_b64url_len_and_charset(void **state)
{
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	for (size_t n = 0; n < 40; n++) {
		char *s = rand_b64url(n);

		assert_int_equal(strlen(s), (n * 4 + 2) / 3);
		assert_int_equal(strspn(s, alpha), strlen(s));
		free(s);
	}
}

static void test_rand_b64url_encode_vectors(void **state)
{
	/* RFC 4648 section 10 vectors, unpadded, plus the url-safe chars */
	static const struct { const char *in, *out; } rows[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		rand_b64url_encode((const uint8_t *)rows[i].in, strlen(rows[i].in), out,
				   sizeof(out));
		assert_string_equal(out, rows[i].out);
	}
	/* a short buffer truncates but stays terminated */
	rand_b64url_encode((const uint8_t *)"foobar", 6, out, 4);
	assert_string_equal(out, "Zm9");
}

static void test_rand_b64url_unique(void **state)
{
	enum { N = 10000 };
	char **v = calloc(N, sizeof(*v));

	for (int i = 0; i < N; i++)
		v[i] = rand_b64url(32);
	qsort(v, N, sizeof(*v), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(v[i - 1], v[i]);
	for (int i = 0; i < N; i++)
		free(v[i]);
	free(v);
}

static void test_rand_bytes_not_constant(void **state)
{
	uint8_t a[32], b[32];

	rand_bytes(a, sizeof(a));
	rand_bytes(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rand_hex),
		cmocka_unit_test(test_rand_b64url_len_and_charset),
		cmocka_unit_test(test_rand_b64url_encode_vectors),
		cmocka_unit_test(test_rand_b64url_unique),
		cmocka_unit_test(test_rand_bytes_not_constant),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
