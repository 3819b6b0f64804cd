/*
 * http_path: the one canonical form of a request path (R-0.3, R-3.7,
 * PRX-11..13).
 *
 * lws decodes %2F into '/' before merging and resolving dot segments, so a
 * file called "a%2Fb" and the directory pair "a/b" look alike there. Here
 * the raw path is first split on the raw '/', then each segment is decoded
 * once (never twice: "%252e" is the text "%2e"), so an encoded slash stays
 * inside its segment. Dot segments are resolved on the decoded form, which
 * catches "%2e%2e". The gateway routes and authorises on the segments and
 * forwards the deterministic re-encoding in `encoded`, so what the backend
 * sees is exactly what was authorised.
 */
#include "gateway/http.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Decodes one raw segment p[0..n) into *out (owned, NUL-terminated). */
static int decode_segment(const char *p, size_t n, char **out, struct http_error *e)
{
	char *d = xmalloc(n + 1);
	const char *why;
	size_t o = 0;

	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		why = "invalid character in path";
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			goto bad;
		if (c == '%') {
			int hi = i + 2 < n ? hexval((unsigned char)p[i + 1]) : -1;
			int lo = hi >= 0 ? hexval((unsigned char)p[i + 2]) : -1;

			why = "invalid percent-encoding in path";
			if (lo < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			/* %00 and other control bytes have no business in a
			 * name; a decoded backslash is a Windows separator */
			why = "forbidden encoded character in path";
			if (c == 0 || is_ctl(c) || c == '\\')
				goto bad;
		}
		d[o++] = (char)c;
	}
	d[o] = '\0';
	*out = d;
	return 0;
bad:
	free(d);
	/* http__fail() returns -1, but it lives in another translation unit;
	 * returning -1 here lets the analyser see *out is only read on 0 */
	http__fail(e, 400, why);
	return -1;
}

static void seg_push(struct http_path *p, size_t *alloc, char *s)
{
	if (p->nseg == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 8;
		p->seg = xrealloc(p->seg, *alloc * sizeof(*p->seg));
	}
	p->seg[p->nseg++] = s;
}

/* Applies one decoded segment; returns 1 for a dot segment, 0, or -1. */
static int seg_apply(struct http_path *p, size_t *alloc, char *s, struct http_error *e)
{
	if (strcmp(s, ".") == 0) {
		free(s);
		return 1;
	}
	if (strcmp(s, "..") == 0) {
		free(s);
		if (p->nseg == 0)
			return http__fail(e, 400, "path escapes the root");
		free(p->seg[--p->nseg]);
		return 1;
	}
	seg_push(p, alloc, s);
	return 0;
}

char *http_path_encode_segment(const char *seg)
{
	static const char keep[] = "-._~!$&'()*+,;=:@";
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(seg), o = 0;
	char *out = xmalloc(3 * n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)seg[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c && memchr(keep, c, sizeof(keep) - 1))) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return out;
}

static char *encode_path(const struct http_path *p)
{
	size_t cap = 2, o = 0;
	char **enc = xcalloc(p->nseg ? p->nseg : 1, sizeof(*enc));
	char *out;

	for (size_t i = 0; i < p->nseg; i++) {
		enc[i] = http_path_encode_segment(p->seg[i]);
		cap += strlen(enc[i]) + 1;
	}
	out = xmalloc(cap);
	out[o++] = '/';
	for (size_t i = 0; i < p->nseg; i++) {
		size_t l = strlen(enc[i]);

		memcpy(out + o, enc[i], l);
		o += l;
		if (i + 1 < p->nseg || p->trailing_slash)
			out[o++] = '/';
		free(enc[i]);
	}
	out[o] = '\0';
	free(enc);
	return out;
}

int http_path_canon(const char *raw, size_t len, struct http_path *out, struct http_error *e)
{
	size_t pos = 0, alloc = 0;
	bool last_dot = false;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *sl = memchr(raw + pos, '/', len - pos);
		size_t end = sl ? (size_t)(sl - raw) : len;
		char *s = NULL;
		int r;

		if (end > pos) {
			if (decode_segment(raw + pos, end - pos, &s, e) < 0)
				goto fail;
			r = seg_apply(out, &alloc, s, e);
			if (r < 0)
				goto fail;
			last_dot = r == 1;
		}
		pos = end + 1;
	}
	/* "/a/." and "/a/b/.." name a directory, as in RFC 3986 5.2.4 */
	out->trailing_slash = len == 0 || raw[len - 1] == '/' || last_dot;
	out->encoded = encode_path(out);
	return 0;
fail:
	http_path_clear(out);
	return -1;
}

void http_path_clear(struct http_path *p)
{
	for (size_t i = 0; i < p->nseg; i++)
		free(p->seg[i]);
	free(p->seg);
	free(p->encoded);
	memset(p, 0, sizeof(*p));
}
