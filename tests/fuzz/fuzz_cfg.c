/*
 * Fuzz target: configuration files (common/cfg.c through gateway's
 * gw_cfg_table) and the size / duration parsers.
 *
 * Invariants checked (abort on violation, so libFuzzer and the replay
 * build both report them):
 *   - cfg_load_json() returns 0, or < 0 with an error set; either way the
 *     struct can be freed (ASan/LSan see leaks and double frees);
 *   - what --print-config prints (cfg_print) for an accepted file is itself
 *     accepted and prints the same again: the printed form round-trips;
 *   - cfg_validate() and gw_cfg_finish() accept, deriving access_log and
 *     public_url, or refuse with an error;
 *   - cfg_parse_size / cfg_parse_duration_ms: an accepted value printed as
 *     plain digits (and with a unit, where it fits) parses to the same
 *     value; a refusal sets an error.
 *
 * Built with -DFUZZ_REPLAY_MAIN, main() replays files and directories so
 * gcc-only CI runs the corpus.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

__attribute__((noreturn)) static void fail(const char *what)
{
	fprintf(stderr, "fuzz_cfg: invariant failed: %s\n", what);
	abort();
}

/* A macro over a noreturn function, so the analysers see a failed check end. */
#define check(ok, what) ((ok) ? (void)0 : fail(what))

/* Defaults, then text; returns the load's result. *c must be freed. */
static int load(struct gw_cfg *c, const char *text, size_t len)
{
	struct err *err = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	check(cfg_defaults(gw_cfg_table, c, &err) == 0, "defaults load");
	r = cfg_load_json(gw_cfg_table, c, text, len, &err);
	check(r == 0 || (r < 0 && err && err->msg), "a refusal sets an error");
	err_free(&err);
	return r;
}

/* The validators parse hostile strings too (listen, public_url, domain,
 * server_env, ...); then the cross-field checks and derivations. */
static void fuzz_validate(struct gw_cfg *c)
{
	struct err *err = NULL;
	int r = cfg_validate(gw_cfg_table, c, &err);

	if (r == 0)
		r = gw_cfg_finish(c, &err);
	check(r == 0 || (r < 0 && err && err->msg), "validation refusal sets an error");
	if (r == 0) {
		check(c->access_log && c->access_log[0], "finish: access_log derived");
		check(c->public_url && c->public_url[0], "finish: public_url derived");
	}
	err_free(&err);
}

static void fuzz_file(const char *text, size_t len)
{
	struct gw_cfg a, b;
	char *pa, *pb;

	if (load(&a, text, len) < 0) {
		gw_cfg_free(&a);
		return;
	}
	pa = cfg_print(gw_cfg_table, &a);
	check(pa != NULL, "accepted config prints");
	check(load(&b, pa, strlen(pa)) == 0, "printed config loads again");
	pb = cfg_print(gw_cfg_table, &b);
	check(pb != NULL && strcmp(pa, pb) == 0, "printed config is a fixed point");
	free(pb);
	free(pa);
	gw_cfg_free(&b);
	fuzz_validate(&a);
	gw_cfg_free(&a);
}

static void fuzz_size(const char *s)
{
	struct err *err = NULL;
	uint64_t v = 0, again = 0;
	char tmp[48];

	if (cfg_parse_size(s, &v, &err) < 0) {
		check(err != NULL, "size: refusal sets an error");
		err_free(&err);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	check(cfg_parse_size(tmp, &again, NULL) == 0 && again == v, "size: digits round-trip");
	if (v % 1024 == 0 && v > 0) {
		snprintf(tmp, sizeof(tmp), "%" PRIu64 "KiB", v / 1024);
		check(cfg_parse_size(tmp, &again, NULL) == 0 && again == v, "size: KiB round-trip");
	}
}

static void fuzz_duration(const char *s)
{
	struct err *err = NULL;
	int64_t v = -1, again = -1;
	char tmp[48];

	if (cfg_parse_duration_ms(s, &v, &err) < 0) {
		check(err != NULL, "duration: refusal sets an error");
		err_free(&err);
		return;
	}
	check(v >= 0, "duration: never negative");
	snprintf(tmp, sizeof(tmp), "%" PRId64 "ms", v);
	check(cfg_parse_duration_ms(tmp, &again, NULL) == 0 && again == v,
	      "duration: ms round-trip");
	if (v % 1000 == 0) {
		snprintf(tmp, sizeof(tmp), "%" PRId64 "s", v / 1000);
		check(cfg_parse_duration_ms(tmp, &again, NULL) == 0 && again == v,
		      "duration: s round-trip");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	/* an exact-size copy for the JSON parser (ASan sees overreads), and a
	 * NUL-terminated one for the string parsers */
	char *text = xmalloc(n ? n : 1);
	char *str = xmalloc(n + 1);

	memcpy(text, d, n);
	fuzz_file(text, n);
	memcpy(str, d, n);
	str[n] = '\0';
	fuzz_size(str);
	fuzz_duration(str);
	free(str);
	free(text);
	return 0;
}

#define FUZZ_NAME "fuzz_cfg"
#include "tests/fuzz/replay_main.h"
