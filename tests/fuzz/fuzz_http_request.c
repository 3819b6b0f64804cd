/*
 * Fuzz target: request heads, canonical paths, response heads and chunked
 * bodies (gateway/http*.c).
 *
 * Invariants checked (abort on violation, so libFuzzer and the replay
 * build both report them):
 *   - an accepted request's canonical path is a fixed point: canonicalising
 *     its encoded form again gives the same string (R-3.7: what is routed
 *     is what is forwarded);
 *   - head_len lies within the input, and a refusal carries a status;
 *   - the chunked scanner consumes the same bytes fed whole or one byte at
 *     a time.
 *
 * Built with -DFUZZ_REPLAY_MAIN, main() replays files and directories so
 * gcc-only CI runs the corpus (crun tests_libcrun_fuzzer.c).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "gateway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http_request: invariant failed: %s\n", what);
		abort();
	}
}

static void fuzz_path_fixed_point(const struct http_path *p)
{
	struct http_path again;
	struct http_error e;
	size_t len = strlen(p->encoded);

	check(http_path_canon(p->encoded, len, &again, &e) == 0, "encoded path re-parses");
	check(strcmp(again.encoded, p->encoded) == 0, "canonical path is a fixed point");
	check(again.nseg == p->nseg, "segment count is stable");
	for (size_t i = 0; i < p->nseg; i++)
		check(strcmp(again.seg[i], p->seg[i]) == 0, "segments are stable");
	http_path_clear(&again);
}

static void fuzz_request(const char *buf, size_t n, const struct http_limits *lim)
{
	struct http_req *req = xmalloc(sizeof(*req));
	struct http_error e = { 0 };
	int r = http_parse_request(buf, n, lim, req, &e);

	if (r == 1) {
		check(req->head_len <= n, "head_len within input");
		fuzz_path_fixed_point(&req->path);
		http_req_clear(req);
	} else if (r < 0) {
		check(e.status >= 400 && e.status <= 505 && e.message, "refusal has a status");
	}
	free(req);
}

static void fuzz_response(const char *buf, size_t n, const struct http_limits *lim)
{
	struct http_resp *resp = xmalloc(sizeof(*resp));
	struct http_error e = { 0 };
	int r = http_parse_response(buf, n, lim, resp, &e);

	if (r == 1)
		check(resp->head_len <= n, "response head_len within input");
	else if (r < 0)
		check(e.status == 502, "response refusal is 502");
	free(resp);
}

static void fuzz_chunked(const char *buf, size_t n)
{
	struct http_chunked whole, bytes;
	bool done_w, done_b = false;
	long cw, cb = 0;

	http_chunked_init(&whole);
	cw = http_chunked_feed(&whole, buf, n, &done_w);
	http_chunked_init(&bytes);
	for (size_t i = 0; i < n && !done_b; i++) {
		long k = http_chunked_feed(&bytes, buf + i, 1, &done_b);

		if (k < 0) {
			cb = -1;
			break;
		}
		cb += k;
	}
	check(cw == cb, "chunked: whole and bytewise agree");
	check(cw < 0 || done_w == done_b, "chunked: done agrees");
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct http_limits lim;
	const char *buf = (const char *)d;

	http_limits_default(&lim);
	fuzz_request(buf, n, &lim);
	fuzz_response(buf, n, &lim);
	fuzz_chunked(buf, n);
	return 0;
}

#define FUZZ_NAME "fuzz_http_request"
#include "tests/fuzz/replay_main.h"
