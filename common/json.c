#include "common/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xalloc.h"

/* Largest integer a double (cJSON's number type) holds exactly: 2^53. */
#define JSON_EXACT_INT_MAX 9007199254740992LL

/*
 * Lead byte c: sequence length and allowed range of the second byte, which
 * is where overlongs, surrogates and values above U+10FFFF show (RFC 3629
 * section 4). Returns 0 for bytes that cannot start a sequence.
 */
static size_t utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	static const struct { unsigned char first, last, n, lo, hi; } leads[] = {
		{ 0xc2, 0xdf, 2, 0x80, 0xbf }, { 0xe0, 0xe0, 3, 0xa0, 0xbf },
		{ 0xe1, 0xec, 3, 0x80, 0xbf }, { 0xed, 0xed, 3, 0x80, 0x9f },
		{ 0xee, 0xef, 3, 0x80, 0xbf }, { 0xf0, 0xf0, 4, 0x90, 0xbf },
		{ 0xf1, 0xf3, 4, 0x80, 0xbf }, { 0xf4, 0xf4, 4, 0x80, 0x8f },
	};

	for (size_t i = 0; i < sizeof(leads) / sizeof(leads[0]); i++) {
		if (c >= leads[i].first && c <= leads[i].last) {
			*lo = leads[i].lo;
			*hi = leads[i].hi;
			return leads[i].n;
		}
	}
	return 0;
}

/* Length of the UTF-8 sequence at s (1..4) if well-formed, else 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char lo, hi;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	n = utf8_lead(s[0], &lo, &hi);
	if (!n || n > left || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool json_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq_len(p + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

/* Offset of the first invalid byte (or len). */
static size_t utf8_bad_offset(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq_len(p + i, len - i);

		if (!n)
			return i;
		i += n;
	}
	return len;
}

cJSON *json_parse(const char *s, size_t len, struct err **err)
{
	const char *end = NULL;
	size_t bad = utf8_bad_offset(s, len);
	cJSON *o;

	if (bad < len)
		return err_set(err, EINVAL, "invalid UTF-8 at byte %zu", bad), NULL;
	/* A NUL would silently truncate C strings after parsing. */
	if (memchr(s, '\0', len))
		return err_set(err, EINVAL, "NUL byte in JSON text"), NULL;
	o = cJSON_ParseWithLengthOpts(s, len, &end, false);
	if (!o) {
		size_t at = end && end >= s ? (size_t)(end - s) : 0;

		return err_set(err, EINVAL, "invalid JSON at byte %zu", at), NULL;
	}
	while (end < s + len && strchr(" \t\r\n", *end))
		end++;
	if (end != s + len) {
		size_t at = (size_t)(end - s);

		cJSON_Delete(o);
		return err_set(err, EINVAL, "trailing data after JSON at byte %zu", at),
		       NULL;
	}
	return o;
}

/*
 * Fetches field; returns 1 (found, *item set), 0 (absent and optional) or
 * < 0 (absent and required, or o is not an object). null counts as absent.
 */
static int json_field(const cJSON *o, const char *field, bool required,
		      const cJSON **item, struct err **err)
{
	const cJSON *it;

	/* explicit -EINVAL (not err_set's value) keeps analyzers on track */
	if (!cJSON_IsObject(o)) {
		err_set(err, EINVAL, "expected a JSON object");
		return -EINVAL;
	}
	it = cJSON_GetObjectItemCaseSensitive(o, field);
	if (!it || cJSON_IsNull(it)) {
		if (!required)
			return 0;
		err_set(err, EINVAL, "field '%s' is required", field);
		return -EINVAL;
	}
	*item = it;
	return 1;
}

int json_get_string(const cJSON *o, const char *field, bool required,
		    const char **out, struct err **err)
{
	const cJSON *it = NULL;
	int r = json_field(o, field, required, &it, err);

	if (r <= 0)
		return r;
	if (!cJSON_IsString(it) || !it->valuestring)
		return err_set(err, EINVAL, "field '%s': expected string", field);
	*out = it->valuestring;
	return 1;
}

int json_get_int(const cJSON *o, const char *field, bool required,
		 int64_t min, int64_t max, int64_t *out, struct err **err)
{
	const cJSON *it = NULL;
	int r = json_field(o, field, required, &it, err);
	double d;

	if (r <= 0)
		return r;
	if (!cJSON_IsNumber(it))
		return err_set(err, EINVAL, "field '%s': expected integer", field);
	d = it->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < -(double)JSON_EXACT_INT_MAX ||
	    d > (double)JSON_EXACT_INT_MAX)
		return err_set(err, EINVAL, "field '%s': expected integer", field);
	if ((int64_t)d < min || (int64_t)d > max)
		return err_set(err, EINVAL,
			       "field '%s': %lld out of range [%lld, %lld]", field,
			       (long long)d, (long long)min, (long long)max);
	*out = (int64_t)d;
	return 1;
}

int json_get_bool(const cJSON *o, const char *field, bool required,
		  bool *out, struct err **err)
{
	const cJSON *it = NULL;
	int r = json_field(o, field, required, &it, err);

	if (r <= 0)
		return r;
	if (!cJSON_IsBool(it))
		return err_set(err, EINVAL, "field '%s': expected boolean", field);
	*out = cJSON_IsTrue(it);
	return 1;
}

int json_get_string_array(const cJSON *o, const char *field, bool required,
			  char ***out, struct err **err)
{
	const cJSON *it = NULL, *el;
	int r = json_field(o, field, required, &it, err);
	size_t n = 0, i = 0;
	char **v;

	if (r <= 0)
		return r;
	if (!cJSON_IsArray(it))
		return err_set(err, EINVAL, "field '%s': expected array of strings",
			       field);
	cJSON_ArrayForEach(el, it) {
		if (!cJSON_IsString(el) || !el->valuestring)
			return err_set(err, EINVAL,
				       "field '%s'[%zu]: expected string", field, n);
		n++;
	}
	v = xcalloc(n + 1, sizeof(*v));
	cJSON_ArrayForEach(el, it)
		v[i++] = xstrdup(el->valuestring);
	*out = v;
	return 1;
}

/* cJSON allocates with malloc, but our callers free with free(): the same. */
char *json_print(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (!s)
		abort();
	return s;
}

char *json_print_pretty(const cJSON *o)
{
	char *s = cJSON_Print(o);

	if (!s)
		abort();
	return s;
}
