/*
 * Unit tests for gateway/http_path.c: the PRX-11 and PRX-12 path tables,
 * the PRX-13 file-name round trips, and idempotence of the re-encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "gateway/http_path.c"

struct path_row {
	const char *raw;
	const char *encoded; /* NULL: refused with 400 */
	size_t nseg;
};

/* PRX-11 / PRX-12 (alice's credentials, aiming at bob or the hub API): the
 * canonical form is what routing and authorisation see. */
static const struct path_row prx11[] = {
	{ "/user/alice/../bob/", "/user/bob/", 2 },
	{ "/user/alice/%2e%2e/bob/", "/user/bob/", 2 },
	{ "/user/alice/%2E%2E/bob/", "/user/bob/", 2 },
	{ "/user/alice/.%2e/bob/", "/user/bob/", 2 },
	{ "/user/alice%2F..%2Fbob/", "/user/alice%2F..%2Fbob/", 2 },
	{ "/user//bob/", "/user/bob/", 2 },
	{ "//user/bob/", "/user/bob/", 2 },
	{ "/user/alice/..;/bob/", "/user/alice/..;/bob/", 4 },
	{ "/user/alice\\..\\bob/", NULL, 0 },
	{ "/user/alice/%5c..%5Cbob/", NULL, 0 },
	{ "/user/alice/%252e%252e/bob/", "/user/alice/%252e%252e/bob/", 4 },
	{ "/hub/../user/bob/", "/user/bob/", 2 },
	{ "/../../user/bob/", NULL, 0 },
	{ "/user/bob%00/", NULL, 0 },
	{ "/user/%62ob/", "/user/bob/", 2 },
	{ "/user/alice/../../hub/api/proxy", "/hub/api/proxy", 3 },
	{ "/%2e%2e/hub/api/users", NULL, 0 },
	{ "/user/alice/./x", "/user/alice/x", 3 },
	{ "/user/alice/%2e/x", "/user/alice/x", 3 },
	{ "/user/alice/...", "/user/alice/...", 3 },
	{ "", "/", 0 },
	{ "/", "/", 0 },
	{ "//", "/", 0 },
	{ "/a", "/a", 1 },
	{ "/a/", "/a/", 1 },
	{ "/a/.", "/a/", 1 },
	{ "/a/b/..", "/a/", 1 },
	{ "/a/..", "/", 0 },
	{ "/..", NULL, 0 },
	{ "/%", NULL, 0 },
	{ "/%4", NULL, 0 },
	{ "/%zz", NULL, 0 },
	{ "/%4g", NULL, 0 },
	{ "/%0a", NULL, 0 },
	{ "/%7F", NULL, 0 },
	{ "/a\x80", NULL, 0 },
	{ "/a\x01", NULL, 0 },
	{ "/a b", NULL, 0 },
	{ "/%41%7a", "/Az", 1 },
	{ "/%c3%bc", "/%C3%BC", 1 },
	{ "/a+b", "/a+b", 1 },
	{ "/x;y=1,z:@!$&'()*", "/x;y=1,z:@!$&'()*", 1 },
	{ "/%20%22%3c%3e%60%7b%7d%7c%5e", "/%20%22%3C%3E%60%7B%7D%7C%5E", 1 },
};

static void check_row(const struct path_row *r)
{
	struct http_path p;
	struct http_error e = { 0 };
	int rc = http_path_canon(r->raw, strlen(r->raw), &p, &e);

	if (!r->encoded) {
		if (rc != -1 || e.status != 400)
			fail_msg("'%s': expected 400, got rc %d", r->raw, rc);
		assert_null(p.encoded);
		return;
	}
	if (rc != 0)
		fail_msg("'%s': refused (%s)", r->raw, e.message);
	if (strcmp(p.encoded, r->encoded) != 0 || p.nseg != r->nseg)
		fail_msg("'%s': got '%s' (%zu segments), want '%s' (%zu)", r->raw, p.encoded,
			 p.nseg, r->encoded, r->nseg);
	http_path_clear(&p);
}

static void test_prx11_table(void **state)
{
	for (size_t i = 0; i < sizeof(prx11) / sizeof(prx11[0]); i++)
		check_row(&prx11[i]);
}

/* Canonicalising the encoded form again changes nothing. */
static void test_canon_idempotent(void **state)
{
	for (size_t i = 0; i < sizeof(prx11) / sizeof(prx11[0]); i++) {
		struct path_row again = { prx11[i].encoded, prx11[i].encoded, prx11[i].nseg };

		if (prx11[i].encoded)
			check_row(&again);
	}
}

/* An encoded slash stays inside its segment and is never resolved. */
static void test_encoded_slash_segment(void **state)
{
	struct http_path p;
	struct http_error e;

	assert_int_equal(http_path_canon("/user/alice%2F..%2Fbob/", 23, &p, &e), 0);
	assert_string_equal(p.seg[1], "alice/../bob");
	assert_true(p.trailing_slash);
	http_path_clear(&p);
	assert_int_equal(http_path_canon("/user/alice/%252e%252e/", 23, &p, &e), 0);
	assert_string_equal(p.seg[2], "%2e%2e");
	http_path_clear(&p);
	/* a contents path with encoded traversal stays one segment */
	assert_int_equal(http_path_canon("/api/contents/..%2F..%2Fetc%2Fpasswd", 36, &p, &e), 0);
	assert_int_equal(p.nseg, 3);
	assert_string_equal(p.seg[2], "../../etc/passwd");
	assert_string_equal(p.encoded, "/api/contents/..%2F..%2Fetc%2Fpasswd");
	http_path_clear(&p);
}

/* PRX-13: Jupyter file names survive encode -> decode unchanged. */
static const struct {
	const char *name;
	const char *encoded;
} prx13[] = {
	{ "a+b.ipynb", "a+b.ipynb" },
	{ "a b.ipynb", "a%20b.ipynb" },
	{ "a%2Fb.ipynb", "a%252Fb.ipynb" },
	{ "a/b.ipynb", "a%2Fb.ipynb" },
	{ "50%.ipynb", "50%25.ipynb" },
	{ "q?.ipynb", "q%3F.ipynb" },
	{ "h#.ipynb", "h%23.ipynb" },
	{ "\xc3\xbc.ipynb", "%C3%BC.ipynb" },
	{ "..", "..", },
};

static void test_prx13_round_trip(void **state)
{
	for (size_t i = 0; i < sizeof(prx13) / sizeof(prx13[0]); i++) {
		char *enc = http_path_encode_segment(prx13[i].name);
		char raw[256];
		struct http_path p;
		struct http_error e;
		int n;

		assert_string_equal(enc, prx13[i].encoded);
		n = snprintf(raw, sizeof(raw), "/user/alice/api/contents/%s", enc);
		free(enc);
		assert_int_equal(http_path_canon(raw, (size_t)n, &p, &e), 0);
		if (strcmp(prx13[i].name, "..") == 0) {
			/* a literal ".." name cannot exist: it pops "contents" */
			assert_int_equal(p.nseg, 3);
			assert_string_equal(p.encoded, "/user/alice/api/");
		} else {
			assert_int_equal(p.nseg, 5);
			assert_string_equal(p.seg[4], prx13[i].name);
			assert_string_equal(p.encoded, raw);
		}
		http_path_clear(&p);
	}
}

/* Every byte value encodes to something that decodes back to it. */
static void test_encode_all_bytes(void **state)
{
	for (int c = 1; c < 256; c++) {
		char seg[4] = { 'x', (char)c, 'y', 0 };
		char *enc = http_path_encode_segment(seg);
		char raw[16];
		struct http_path p;
		struct http_error e;
		int n = snprintf(raw, sizeof(raw), "/%s", enc);
		bool refused = c < 0x20 || c == 0x7f || c == '\\';

		free(enc);
		assert_int_equal(http_path_canon(raw, (size_t)n, &p, &e), refused ? -1 : 0);
		if (!refused) {
			assert_int_equal(p.nseg, 1);
			assert_string_equal(p.seg[0], seg);
			http_path_clear(&p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prx11_table),
		cmocka_unit_test(test_canon_idempotent),
		cmocka_unit_test(test_encoded_slash_segment),
		cmocka_unit_test(test_prx13_round_trip),
		cmocka_unit_test(test_encode_all_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
