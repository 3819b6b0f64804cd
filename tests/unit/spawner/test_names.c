/*
 * Unit tests for spawner/names.c: the slug is a DNS-1123 label and
 * injective (JH-6, R-1.3), proved by decoding it back on random names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawner/names.c"

/* The inverse of the uncut encoding; false when s is not a valid slug. */
static bool hexval(char c, int *v)
{
	if (c >= '0' && c <= '9')
		*v = c - '0';
	else if (c >= 'a' && c <= 'f')
		*v = c - 'a' + 10;
	else
		return false;
	return true;
}

static bool unescape(const char *s, size_t *i, char *out)
{
	int hi, lo;

	if (!hexval(s[*i + 1], &hi) || !hexval(s[*i + 2], &lo))
		return false;
	*out = (char)(hi << 4 | lo);
	*i += 3;
	return true;
}

static bool slug_decode(const char *s, char *user, char *server)
{
	size_t i = 0, u = 0, v = 0;
	char *dst = user;
	size_t *n = &u;

	if (strncmp(s, "00", 2) == 0 && (s[2] == '\0' || s[2] == '-')) {
		i = 2; /* empty user */
	} else if (s[0] == '0') {
		if (!unescape(s, &i, &user[u++]))
			return false;
	} else if (s[0]) {
		user[u++] = s[i++];
	}
	while (s[i]) {
		if (s[i] == '-' && s[i + 1] == '-' && dst == user) {
			dst = server;
			n = &v;
			i += 2;
			if (!s[i])
				return false; /* server part may not be empty */
		} else if (s[i] == '-') {
			if (!unescape(s, &i, &dst[(*n)++]))
				return false;
		} else {
			dst[(*n)++] = s[i++];
		}
	}
	user[u] = server[v] = '\0';
	return true;
}

static void check_roundtrip(const char *user, const char *server)
{
	char *slug = spawner_slug(user, server);
	char du[1024], ds[1024];

	assert_true(spawner_is_dns1123_label(slug));
	if (!strstr(slug, "----")) {
		assert_true(slug_decode(slug, du, ds));
		assert_string_equal(du, user);
		assert_string_equal(ds, server ? server : "");
	} else {
		assert_int_equal(strlen(slug), SPAWNER_SLUG_MAX);
	}
	free(slug);
}

static void test_spawner_slug_examples(void **state)
{
	static const struct { const char *u, *s, *want; } cases[] = {
		{ "alice", "", "alice" },
		{ "alice", NULL, "alice" },
		{ "user", "hyphen", "user--hyphen" },
		{ "user-hyphen", "", "user-2dhyphen" },
		{ "a-b", "", "a-2db" },
		{ "a.b", "", "a-2eb" },
		{ "a_b", "", "a-5fb" },
		{ "A-b", "", "041-2db" },
		{ "0day", "", "030day" },
		{ "_x", "", "05fx" },
		{ "u", "-x", "u---2dx" },
		{ "", "s", "00--s" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *slug = spawner_slug(cases[i].u, cases[i].s);

		assert_string_equal(slug, cases[i].want);
		assert_true(spawner_is_dns1123_label(slug));
		free(slug);
	}
}

/* JH-6: the names that collide in naive escapers map to distinct slugs. */
static void test_spawner_slug_jh6_distinct(void **state)
{
	static const char *const pairs[][2] = {
		{ "user-hyphen", "" }, { "user", "hyphen" }, { "user", "-hyphen" },
		{ "user-", "hyphen" }, { "a.b", "" }, { "a-b", "" }, { "a_b", "" },
		{ "A-b", "" }, { "a-2db", "" }, { "a", "b" }, { "a--b", "" }, { "a-", "-b" },
		{ "0", "" }, { "030", "" }, { "00", "" },
	};
	size_t n = sizeof(pairs) / sizeof(pairs[0]);
	char *slugs[sizeof(pairs) / sizeof(pairs[0])];

	for (size_t i = 0; i < n; i++) {
		slugs[i] = spawner_slug(pairs[i][0], pairs[i][1]);
		check_roundtrip(pairs[i][0], pairs[i][1]);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(slugs[i], slugs[j]) == 0)
				fail_msg("'%s'/'%s' and '%s'/'%s' share slug '%s'", pairs[i][0],
					 pairs[i][1], pairs[j][0], pairs[j][1], slugs[i]);
	for (size_t i = 0; i < n; i++)
		free(slugs[i]);
}

static void random_name(char *out, size_t maxlen, unsigned *seed)
{
	static const char alphabet[] = "ab0-_.A@ z9\xc3\xa9/%";
	size_t len = (size_t)rand_r(seed) % maxlen;

	for (size_t i = 0; i < len; i++) {
		/* Mostly a small alphabet (so collisions are tried), sometimes any byte. */
		if (rand_r(seed) % 8)
			out[i] = alphabet[rand_r(seed) % (sizeof(alphabet) - 1)];
		else
			out[i] = (char)(1 + rand_r(seed) % 255);
	}
	out[len] = '\0';
}

static void test_spawner_slug_random_roundtrip(void **state)
{
	unsigned seed = 12345;
	char user[64], server[64];

	for (int i = 0; i < 20000; i++) {
		random_name(user, 16, &seed);
		if (!user[0])
			continue;
		random_name(server, 12, &seed);
		check_roundtrip(user, server);
	}
}

/* Two pairs in a small space: equal slugs only for equal pairs. */
static void test_spawner_slug_random_pairs_distinct(void **state)
{
	unsigned seed = 777;
	char u1[8], s1[8], u2[8], s2[8];
	int compared = 0;

	for (int i = 0; i < 50000; i++) {
		random_name(u1, 4, &seed);
		random_name(s1, 3, &seed);
		random_name(u2, 4, &seed);
		random_name(s2, 3, &seed);
		if (!u1[0] || !u2[0])
			continue;
		char *a = spawner_slug(u1, s1), *b = spawner_slug(u2, s2);
		bool same_pair = strcmp(u1, u2) == 0 && strcmp(s1, s2) == 0;

		assert_int_equal(strcmp(a, b) == 0, same_pair);
		compared++;
		free(a);
		free(b);
	}
	assert_true(compared > 1000);
}

static void test_spawner_slug_long_is_cut_and_hashed(void **state)
{
	char user[200], other[200];
	char *a, *b, *c;

	memset(user, 'x', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	memcpy(other, user, sizeof(user));
	other[150] = 'y'; /* differs only after the cut */
	a = spawner_slug(user, "");
	b = spawner_slug(other, "");
	c = spawner_slug(user, "");
	assert_int_equal(strlen(a), SPAWNER_SLUG_MAX);
	assert_true(spawner_is_dns1123_label(a));
	assert_non_null(strstr(a, "----"));
	assert_string_not_equal(a, b);
	assert_string_equal(a, c); /* deterministic */
	free(a);
	free(b);
	free(c);
}

static void test_spawner_is_dns1123_label(void **state)
{
	char long_label[70];

	assert_true(spawner_is_dns1123_label("a"));
	assert_true(spawner_is_dns1123_label("a-b--c9"));
	assert_true(spawner_is_dns1123_label("0a"));
	assert_false(spawner_is_dns1123_label(""));
	assert_false(spawner_is_dns1123_label("-a"));
	assert_false(spawner_is_dns1123_label("a-"));
	assert_false(spawner_is_dns1123_label("A"));
	assert_false(spawner_is_dns1123_label("a.b"));
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_false(spawner_is_dns1123_label(long_label));
	long_label[63] = '\0';
	assert_true(spawner_is_dns1123_label(long_label));
}

static void test_spawner_url_segment_and_base_url(void **state)
{
	char *s = spawner_url_segment("a b/c%d?e#f@g~h.i_j-k\xc3\xa9");
	char *u1 = spawner_base_url("alice", "");
	char *u2 = spawner_base_url("al ice", "my/server");

	assert_string_equal(s, "a%20b%2Fc%25d%3Fe%23f@g~h.i_j-k%C3%A9");
	assert_string_equal(u1, "/user/alice/");
	assert_string_equal(u2, "/user/al%20ice/my%2Fserver/");
	free(s);
	free(u1);
	free(u2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawner_slug_examples),
		cmocka_unit_test(test_spawner_slug_jh6_distinct),
		cmocka_unit_test(test_spawner_slug_random_roundtrip),
		cmocka_unit_test(test_spawner_slug_random_pairs_distinct),
		cmocka_unit_test(test_spawner_slug_long_is_cut_and_hashed),
		cmocka_unit_test(test_spawner_is_dns1123_label),
		cmocka_unit_test(test_spawner_url_segment_and_base_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
