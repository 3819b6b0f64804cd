/*
 * ckpt: the registry of checkpoint modes and `nbgate checkpoint dump`
 * (ckpt.h), the helper process the local backend runs for a dump.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/ckpt.h"
#include "common/err.h"

static const struct ckpt_ops *const modes[] = { &ckpt_criu_ops, &ckpt_commit_ops };

const struct ckpt_ops *ckpt_ops_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(modes[i]->name, name) == 0)
			return modes[i];
	return NULL;
}

#define CKPT_DUMP_TIMEOUT_MS (10 * 60 * 1000)

/* The string options of `nbgate checkpoint dump` and where they go. */
static const char **opt_slot(const char *k, const char **mode, struct ckpt_target *t)
{
	static const struct {
		const char *name;
		size_t off;
	} opts[] = {
		{ "--criu", offsetof(struct ckpt_target, tool) },
		{ "--dir", offsetof(struct ckpt_target, dir) },
		{ "--store", offsetof(struct ckpt_target, store) },
		{ "--base", offsetof(struct ckpt_target, base) },
		{ "--upper", offsetof(struct ckpt_target, upper) },
		{ "--ref", offsetof(struct ckpt_target, ref) },
	};

	if (!strcmp(k, "--mode"))
		return mode;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strcmp(k, opts[i].name))
			return (const char **)((char *)t + opts[i].off);
	return NULL;
}

/* A whole decimal number, or -1. */
static long long opt_num(const char *v)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	return end == v || *end || errno ? -1 : n;
}

/* --name VALUE pairs into t; -1 on an unknown or incomplete option. */
static int parse_opts(int argc, char **argv, const char **mode, struct ckpt_target *t)
{
	for (int i = 0; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = opt_slot(k, mode, t);

		if (!v)
			return -1;
		if (slot)
			*slot = v;
		else if (!strcmp(k, "--pid1") && opt_num(v) >= 0)
			t->pid1 = (pid_t)opt_num(v);
		else if (!strcmp(k, "--timeout") && opt_num(v) >= 0)
			t->timeout_ms = opt_num(v);
		else
			return -1;
	}
	return 0;
}

int ckpt_cli(int argc, char **argv)
{
	struct ckpt_target t = { .timeout_ms = CKPT_DUMP_TIMEOUT_MS, .log_wr = -1 };
	const struct ckpt_ops *ops;
	const char *mode = NULL;
	struct err *e = NULL;

	if (argc < 1 || strcmp(argv[0], "dump") != 0 || parse_opts(argc - 1, argv + 1, &mode, &t) < 0) {
		fprintf(stderr, "usage: nbgate checkpoint dump --mode criu --criu PATH --pid1 N --dir DIR "
			"[--timeout MS]\n       nbgate checkpoint dump --mode commit --store DIR --base REF "
			"--upper DIR --ref NEW\n");
		return 2;
	}
	ops = ckpt_ops_find(mode);
	if (!ops) {
		fprintf(stderr, "nbgate checkpoint: --mode: unknown mode '%s' (criu, commit)\n",
			mode ? mode : "");
		return 2;
	}
	if (ops == &ckpt_criu_ops && (t.pid1 <= 1 || !t.tool || !t.dir || t.timeout_ms <= 0)) {
		fprintf(stderr, "nbgate checkpoint: criu needs --criu, --pid1 (> 1) and --dir\n");
		return 2;
	}
	if (ckpt_dump(ops, &t, &e) == 0)
		return 0;
	fprintf(stderr, "nbgate checkpoint: dump: %s\n", e->msg);
	err_free(&e);
	return 1;
}
