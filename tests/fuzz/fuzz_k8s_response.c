/*
 * Fuzz target: what a Kubernetes API server (or whatever answers in its
 * place) sends back, and the kubeconfig the client reads, through the
 * REST client's parsers; no network.
 *
 * Invariants checked (abort on violation):
 *   - k8s_status_message() always returns a message for any body and
 *     status, free of control bytes (it ends up in logs and the UI), and
 *     the RBAC wording only for 403s;
 *   - the watch line splitter gives the same lines however the stream is
 *     cut into chunks; k8s__watch_parse_line() returns a known type or an
 *     error, never both;
 *   - k8s__yaml_to_json() + k8s__kubeconfig_select(): a refusal sets an
 *     error; a selection has an https:// server and credentials;
 *   - k8s_quantity_parse(): accepted values are >= 0 and, milli, 1000
 *     times the plain value or its rounding up.
 *
 * Built with -DFUZZ_REPLAY_MAIN, main() replays the corpus
 * (tests/fuzz/corpus/k8s_response/).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "spawner/k8s_api.h"
#include "spawner/k8s_api_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

__attribute__((noreturn)) static void fail(const char *what)
{
	fprintf(stderr, "fuzz_k8s_response: invariant failed: %s\n", what);
	abort();
}

#define check(ok, what) ((ok) ? (void)0 : fail(what))

static void fuzz_status(const char *text, size_t len)
{
	static const long statuses[] = { 401, 403, 404, 409, 410, 422, 429, 500, 200, 0 };
	cJSON *j = len ? json_parse(text, len, NULL) : NULL;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		char *m = k8s_status_message("create", "pods", i % 2 ? "nb-x" : NULL,
					     i % 3 ? "ns" : NULL, statuses[i], j);

		check(m != NULL && m[0], "a message for every status");
		for (const char *p = m; *p; p++)
			check((unsigned char)*p >= 0x20 && *p != 0x7f, "no control bytes");
		/* the server's own text may say anything */
		check(statuses[i] == 403 || memmem(text, len, "RBAC", 4) || !strstr(m, "RBAC"),
		      "RBAC only on 403");
		free(m);
	}
	if (j) {
		const char *s = k8s_json_str(j, "metadata.name");

		check(!s || k8s__json_at(j, "metadata.name") != NULL, "json_str agrees");
		cJSON_Delete(j);
	}
}

struct lines_seen {
	size_t n;
	size_t bytes;
};

static int on_line(void *arg, const char *line, size_t len, struct err **err)
{
	struct lines_seen *s = arg;
	struct k8s__wevent ev;
	struct err *e = NULL;
	int r;

	s->n++;
	s->bytes += len;
	r = k8s__watch_parse_line(line, len, &ev, &e);
	check(r == 0 || (e != NULL && ev.root == NULL), "parse: an error or an event");
	if (r == 0) {
		check(ev.type <= K8S__W_BLANK, "known type");
		check(ev.type == K8S__W_BLANK || ev.obj != NULL, "event has an object");
		check(ev.code >= 0 && ev.code < 1000, "code in range");
	}
	k8s__wevent_clear(&ev);
	err_free(&e);
	return 0;
}

static int feed(const char *text, size_t len, size_t cut, struct lines_seen *s)
{
	struct k8s__lines l;
	struct err *err = NULL;
	int r;

	k8s__lines_init(&l, 512);
	r = k8s__lines_feed(&l, text, cut, on_line, s, &err);
	if (r == 0)
		r = k8s__lines_feed(&l, text + cut, len - cut, on_line, s, &err);
	check(r == 0 || err != NULL, "splitter refusal sets an error");
	err_free(&err);
	k8s__lines_release(&l);
	return r;
}

static void fuzz_watch(const char *text, size_t len)
{
	struct lines_seen a = { 0 }, b = { 0 };
	int ra = feed(text, len, 0, &a);
	int rb = feed(text, len, len ? (size_t)(unsigned char)text[0] % len : 0, &b);

	check(ra == rb, "same verdict however the stream is cut");
	if (ra == 0)
		check(a.n == b.n && a.bytes == b.bytes, "same lines however the stream is cut");
}

static void fuzz_kubeconfig(const char *text, size_t len)
{
	cJSON *doc = NULL;
	struct err *err = NULL;
	struct k8s__kcfg k;
	char *bin = NULL;
	size_t blen = 0;

	if (k8s__yaml_to_json(text, len, &doc, &err) < 0) {
		check(err != NULL && err->msg, "yaml refusal sets an error");
		err_free(&err);
		return;
	}
	for (int i = 0; i < 2; i++) {
		if (k8s__kubeconfig_select(doc, i ? "a" : NULL, &k, &err) < 0) {
			check(err != NULL && err->msg, "kubeconfig refusal sets an error");
			err_free(&err);
			continue;
		}
		check(strncmp(k.server, "https://", 8) == 0, "https only");
		check(k.token || k.token_file || k.cert_data || k.cert_file, "credentials");
		if (k.ca_data && k8s__b64_decode("ca", k.ca_data, &bin, &blen, &err) == 0)
			free(bin);
		err_free(&err);
	}
	cJSON_Delete(doc);
}

static void fuzz_quantity(const char *s)
{
	int64_t plain = -1, milli = -1;
	int rp = k8s_quantity_parse(s, false, &plain);
	int rm = k8s_quantity_parse(s, true, &milli);

	check(rp == 0 || rp == -EINVAL, "quantity: 0 or -EINVAL");
	if (rp == 0)
		check(plain >= 0, "quantity >= 0");
	if (rm == 0)
		check(milli >= 0, "milli quantity >= 0");
	if (rp == 0 && rm == 0 && plain <= INT64_MAX / 1000)
		check(milli <= plain * 1000 && (plain == 0 || milli > (plain - 1) * 1000),
		      "milli agrees with the plain value");
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *text = xmalloc(n ? n : 1);
	char *str = xmalloc(n + 1);

	memcpy(text, d, n);
	fuzz_status(text, n);
	fuzz_watch(text, n);
	fuzz_kubeconfig(text, n);
	memcpy(str, d, n);
	str[n] = '\0';
	fuzz_quantity(str);
	free(str);
	free(text);
	return 0;
}

#define FUZZ_NAME "fuzz_k8s_response"
#include "tests/fuzz/replay_main.h"
