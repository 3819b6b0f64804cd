/*
 * Fuzz target: the pure credential parsers of gateway/auth.c, that is
 * auth_parse_authorization() (the Authorization header) and
 * auth_cookie_each() (the Cookie header).
 *
 * Invariants checked (abort on violation, so libFuzzer and the replay
 * build both report them):
 *   - an accepted Authorization value is "token " or "Bearer " (any case)
 *     followed by a non-empty run of token characters that ends the value,
 *     at most 512 bytes in all; the result agrees with an independent
 *     model of that grammar, both ways;
 *   - every cookie value handed to the callback lies inside the header,
 *     holds no ';', follows "name=" (or "name=\"") and, unquoted, has no
 *     trailing blank;
 *   - stopping on the k-th value calls the callback exactly k times and
 *     returns true, for every k; not stopping returns false.
 *
 * Built with -DFUZZ_REPLAY_MAIN, main() replays files and directories so
 * gcc-only CI runs the corpus.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "gateway/auth.h"

#define FUZZ_AUTH_MAX 512
#define FUZZ_NAME_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

__attribute__((noreturn)) static void fail(const char *what)
{
	fprintf(stderr, "fuzz_auth_token: invariant failed: %s\n", what);
	abort();
}

/* A macro over a noreturn function, so the analysers see a failed check end. */
#define check(ok, what) ((ok) ? (void)0 : fail(what))

static bool model_token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("-_.~+/=", c) != NULL);
}

/* The grammar of auth.h, written independently: the scheme length or 0. */
static size_t model_authorization(const char *v, size_t len)
{
	size_t skip;

	if (len > FUZZ_AUTH_MAX)
		return 0;
	if (len >= 6 && strncasecmp(v, "token ", 6) == 0)
		skip = 6;
	else if (len >= 7 && strncasecmp(v, "bearer ", 7) == 0)
		skip = 7;
	else
		return 0;
	if (len == skip)
		return 0;
	for (size_t i = skip; i < len; i++)
		if (!model_token_char((unsigned char)v[i]))
			return 0;
	return skip;
}

static void fuzz_authorization(const char *v, size_t len)
{
	size_t tlen = (size_t)-1;
	long off = auth_parse_authorization(v, len, &tlen);
	size_t want = model_authorization(v, len);

	check((off < 0) == (want == 0), "authorization: accepted iff the model accepts");
	if (off < 0)
		return;
	check((size_t)off == want, "authorization: token offset is the scheme length");
	check(tlen > 0 && (size_t)off + tlen == len, "authorization: token ends the value");
	check(v[off - 1] == ' ', "authorization: one space before the token");
}

struct cookie_walk {
	const char *h;      /* the header */
	size_t len;
	const char *name;
	size_t calls;       /* callback calls so far */
	size_t stop_at;     /* return true on this call (1-based); 0 = never */
};

static bool cookie_cb(void *ctx, const char *v, size_t vlen)
{
	struct cookie_walk *w = ctx;
	size_t nlen = strlen(w->name);
	const char *end = w->h + w->len;
	const char *eq;

	w->calls++;
	check(v >= w->h && v <= end && vlen <= (size_t)(end - v), "cookie: value inside header");
	check(memchr(v, ';', vlen) == NULL, "cookie: value holds no ';'");
	/* the value follows "name=" or "name=\"" */
	eq = v > w->h && v[-1] == '"' && v - 1 > w->h && v[-2] == '=' ? v - 2 : v - 1;
	/* blanks after an unquoted pair are dropped ("a= b" keeps its " b";
	 * inside quotes, which RFC 6265 forbids blanks in, they are kept) */
	if (vlen > 0 && eq == v - 1)
		check(v[vlen - 1] != ' ' && v[vlen - 1] != '\t', "cookie: no trailing blanks");
	check(eq >= w->h && *eq == '=', "cookie: value follows '='");
	check((size_t)(eq - w->h) >= nlen && memcmp(eq - nlen, w->name, nlen) == 0,
	      "cookie: the name precedes '='");
	return w->calls == w->stop_at;
}

/* The cookie name: the input's bytes up to its first '=' (so that the
 * fuzzer can make it match), or a fixed one. */
static void pick_name(const char *d, size_t n, char *name, size_t size)
{
	const char *eq = memchr(d, '=', n < FUZZ_NAME_MAX ? n : FUZZ_NAME_MAX);
	size_t k = eq ? (size_t)(eq - d) : 0;

	if (!eq || memchr(d, '\0', k) || memchr(d, ';', k)) {
		snprintf(name, size, "%s", "nbgate-session");
		return;
	}
	/* leading blanks are not part of a name */
	while (k > 0 && (*d == ' ' || *d == '\t')) {
		d++;
		k--;
	}
	memcpy(name, d, k);
	name[k] = '\0';
}

static void fuzz_cookies(const char *h, size_t len)
{
	char name[FUZZ_NAME_MAX + 1];
	struct cookie_walk w = { .h = h, .len = len, .name = name };
	size_t total;

	pick_name(h, len, name, sizeof(name));
	check(!auth_cookie_each(h, len, name, cookie_cb, &w), "cookie: no stop, false");
	total = w.calls;
	check(total <= len / 2 + 1, "cookie: at most one value per pair");
	for (size_t k = 1; k <= total && k <= 16; k++) {
		w.calls = 0;
		w.stop_at = k;
		check(auth_cookie_each(h, len, name, cookie_cb, &w), "cookie: stop returns true");
		check(w.calls == k, "cookie: stops on the k-th value");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	/* an exact-size heap copy, so ASan sees any read past the value */
	char *buf = xmalloc(n ? n : 1);

	memcpy(buf, d, n);
	fuzz_authorization(buf, n);
	fuzz_cookies(buf, n);
	free(buf);
	return 0;
}

#define FUZZ_NAME "fuzz_auth_token"
#include "tests/fuzz/replay_main.h"
