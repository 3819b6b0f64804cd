/*
 * ckpt: the registry of checkpoint modes and `nbgate checkpoint dump`
 * (ckpt.h), the helper process the local backend runs for a dump.
 */
#include <errno.h>
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

/* --name VALUE pairs into t; -1 on an unknown or incomplete option. */
static int parse_opts(int argc, char **argv, const char **mode, struct ckpt_target *t)
{
	for (int i = 0; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;

		if (!v)
			return -1;
		if (!strcmp(k, "--mode"))
			*mode = v;
		else if (!strcmp(k, "--criu"))
			t->tool = v;
		else if (!strcmp(k, "--pid1"))
			t->pid1 = (pid_t)strtol(v, &end, 10);
		else if (!strcmp(k, "--dir"))
			t->dir = v;
		else if (!strcmp(k, "--timeout"))
			t->timeout_ms = strtoll(v, &end, 10);
		else if (!strcmp(k, "--store"))
			t->store = v;
		else if (!strcmp(k, "--base"))
			t->base = v;
		else if (!strcmp(k, "--upper"))
			t->upper = v;
		else if (!strcmp(k, "--ref"))
			t->ref = v;
		else
			return -1;
		if (end && (*end || end == v))
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
