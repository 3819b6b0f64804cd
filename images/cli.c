/*
 * images/cli.c: `nbgate image build|list|inspect|rm|gc|commit`.
 * Exit status: 0 ok, 1 failure, 2 usage error (as gateway/main.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "images/internal.h"

#define EXIT_USAGE 2

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "nbgate image: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: nbgate image build RECIPE_DIR [--force] [--mirror URL]\n"
		"       nbgate image list\n"
		"       nbgate image inspect REF\n"
		"       nbgate image rm REF\n"
		"       nbgate image gc\n"
		"       nbgate image commit --base REF --upper DIR [--annotation KEY=VALUE]... "
		"NEW_REF\n");
	return EXIT_USAGE;
}

static int fail(struct err **e)
{
	fprintf(stderr, "nbgate image: %s\n", (*e)->msg);
	err_free(e);
	return 1;
}

static int cmd_build(int argc, char **argv, const char *store)
{
	struct images_build_opts o = { .progress_fd = 1 };
	const char *dir = NULL;
	struct err *e = NULL;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0) {
			o.force = true;
		} else if (strcmp(argv[i], "--mirror") == 0) {
			if (i + 1 >= argc)
				return usage("build: --mirror: missing URL", "");
			o.mirror = argv[++i];
		} else if (strncmp(argv[i], "--mirror=", 9) == 0) {
			o.mirror = argv[i] + 9;
		} else if (argv[i][0] == '-') {
			return usage("build: unknown option '%s'", argv[i]);
		} else if (dir) {
			return usage("build: unexpected argument '%s' (one RECIPE_DIR)", argv[i]);
		} else {
			dir = argv[i];
		}
	}
	if (!dir)
		return usage("build: missing RECIPE_DIR%s", "");
	if (o.mirror && strncmp(o.mirror, "http://", 7) != 0 && strncmp(o.mirror, "https://", 8) != 0 &&
	    strncmp(o.mirror, "file://", 7) != 0)
		return usage("build: --mirror: '%s' is not an http(s):// or file:// URL", o.mirror);
	if (images_build(store, dir, &o, NULL, &e) < 0) {
		fprintf(stderr, "nbgate image: build '%s': %s\n", dir, e->msg);
		err_free(&e);
		return 1;
	}
	return 0;
}

static void human_size(int64_t n, char *b, size_t sz)
{
	if (n >= 1024LL * 1024 * 1024)
		snprintf(b, sz, "%.2f GB", (double)n / (1024.0 * 1024 * 1024));
	else if (n >= 1024 * 1024)
		snprintf(b, sz, "%.1f MB", (double)n / (1024.0 * 1024));
	else
		snprintf(b, sz, "%.1f kB", (double)n / 1024.0);
}

static const char *short_digest(const char *d)
{
	static char b[20];

	snprintf(b, sizeof(b), "%.12s", strncmp(d, "sha256:", 7) == 0 ? d + 7 : d);
	return b;
}

static int cmd_list(const char *store)
{
	struct image_info **v = NULL;
	struct err *e = NULL;
	int n = 0;

	if (images_list(store, &v, &n, &e) < 0)
		return fail(&e);
	printf("%-16s %-12s %10s  %-20s  %s\n", "NAME", "DIGEST", "SIZE", "CREATED", "RECIPE");
	for (int i = 0; i < n; i++) {
		char sz[32], created[32] = "-";
		time_t t = (time_t)v[i]->created_s;
		struct tm tm;
		char rd[20];

		human_size(v[i]->size_bytes, sz, sizeof(sz));
		if (v[i]->created_s > 0 && gmtime_r(&t, &tm))
			strftime(created, sizeof(created), "%Y-%m-%d %H:%M UTC", &tm);
		snprintf(rd, sizeof(rd), "%s", short_digest(v[i]->recipe_digest));
		printf("%-16s %-12s %10s  %-20s  %s\n", v[i]->name,
		       short_digest(v[i]->manifest_digest), sz, created, rd);
	}
	images_list_free(v, n);
	return 0;
}

static cJSON *info_json(const struct image_info *ii)
{
	cJSON *o = cJSON_CreateObject(), *a;

	cJSON_AddStringToObject(o, "name", ii->name);
	cJSON_AddStringToObject(o, "digest", ii->manifest_digest);
	cJSON_AddStringToObject(o, "recipe_digest", ii->recipe_digest);
	cJSON_AddNumberToObject(o, "size_bytes", (double)ii->size_bytes);
	cJSON_AddNumberToObject(o, "created", (double)ii->created_s);
	cJSON_AddStringToObject(o, "user", ii->user);
	cJSON_AddStringToObject(o, "home", ii->home);
	cJSON_AddStringToObject(o, "server_type", ii->server_type);
	cJSON_AddBoolToObject(o, "strip_prefix", ii->strip_prefix);
	a = cJSON_AddArrayToObject(o, "ports");
	for (int i = 0; i < ii->n_ports; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(ii->ports[i]));
	a = cJSON_AddArrayToObject(o, "layers");
	for (int i = 0; ii->layers[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(ii->layers[i]));
	a = cJSON_AddArrayToObject(o, "cmd");
	for (int i = 0; ii->cmd[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(ii->cmd[i]));
	a = cJSON_AddArrayToObject(o, "env");
	for (int i = 0; ii->env[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(ii->env[i]));
	return o;
}

static int cmd_inspect(const char *ref, const char *store)
{
	struct image_info *ii = NULL;
	cJSON *m = NULL, *c = NULL, *o;
	struct err *e = NULL;
	char *s;

	if (images_resolve(store, ref, &ii, &e) < 0 ||
	    img_store_read_image(store, ref, &m, &c, NULL, &e) < 0) {
		image_info_free(ii);
		return fail(&e);
	}
	o = info_json(ii);
	cJSON_AddItemToObject(o, "manifest", m);
	cJSON_AddItemToObject(o, "config", c);
	s = json_print_pretty(o);
	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
	image_info_free(ii);
	return 0;
}

/* The value of option `name` at argv[*i] ("--name V" or "--name=V"), or
 * NULL when argv[*i] is another argument; *bad when V is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *bad)
{
	size_t n = strlen(name);

	if (!argv[*i] || strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc || !argv[*i + 1]) {
		*bad = true;
		return NULL;
	}
	*i += 1;
	return argv[*i];
}

struct commit_args {
	const char *base, *upper, *ref;
	const char **ann;  /* NULL-ended, argc + 1 slots */
};

static int commit_parse(int argc, char **argv, struct commit_args *a)
{
	int na = 0;

	for (int i = 0; i < argc; i++) {
		bool bad = false;
		const char *v;

		if ((v = opt_value(argc, argv, &i, "--base", &bad)))
			a->base = v;
		else if ((v = opt_value(argc, argv, &i, "--upper", &bad)))
			a->upper = v;
		else if ((v = opt_value(argc, argv, &i, "--annotation", &bad)))
			a->ann[na++] = v;
		else if (bad)
			return usage("commit: option '%s' needs a value", argv[i]);
		else if (argv[i][0] == '-')
			return usage("commit: unknown option '%s'", argv[i]);
		else if (a->ref)
			return usage("commit: unexpected argument '%s' (one NEW_REF)", argv[i]);
		else
			a->ref = argv[i];
	}
	if (!a->base || !a->upper || !a->ref)
		return usage("commit: %s", !a->base ? "missing --base REF" :
			     !a->upper ? "missing --upper DIR" : "missing NEW_REF");
	return 0;
}

static int cmd_commit(int argc, char **argv, const char *store)
{
	cleanup_free const char **ann = xcalloc((size_t)argc + 1, sizeof(char *));
	struct commit_args a = { .ann = ann };
	cleanup_free char *digest = NULL;
	struct err *e = NULL;
	int r = commit_parse(argc, argv, &a);

	if (r != 0)
		return r;
	if (geteuid() != 0) {
		fprintf(stderr, "nbgate image: commit '%s': needs root (it reads every file of "
			"the upper dir and makes whiteout device nodes)\n", a.ref);
		return 1;
	}
	if (image_commit(store, a.base, a.upper, a.ref, a.ann, &digest, &e) < 0)
		return fail(&e);
	printf("image %s: committed %s\n", a.ref, digest);
	return 0;
}

/* `inspect REF` and `rm REF`. */
static int cmd_ref(const char *sub, int argc, char **argv, const char *store)
{
	struct err *e = NULL;

	if (argc != 3)
		return usage(strcmp(sub, "rm") == 0 ? "rm: expected one REF%s" :
			     "inspect: expected one REF%s", "");
	if (strcmp(sub, "inspect") == 0)
		return cmd_inspect(argv[2], store);
	if (images_rm(store, argv[2], &e) < 0)
		return fail(&e);
	printf("image %s: removed\n", argv[2]);
	return 0;
}

int images_cli(int argc, char **argv, const char *store_dir)
{
	struct err *e = NULL;
	const char *sub = argc >= 2 ? argv[1] : NULL;

	if (!sub)
		return usage("missing subcommand%s", "");
	if (strcmp(sub, "build") == 0)
		return cmd_build(argc - 2, argv + 2, store_dir);
	if (strcmp(sub, "commit") == 0)
		return cmd_commit(argc - 2, argv + 2, store_dir);
	if (strcmp(sub, "list") == 0)
		return argc == 2 ? cmd_list(store_dir) : usage("list: unexpected argument '%s'",
								 argv[2]);
	if (strcmp(sub, "gc") == 0) {
		if (argc != 2)
			return usage("gc: unexpected argument '%s'", argv[2]);
		return img_store_gc(store_dir, false, &e) < 0 ? fail(&e) : 0;
	}
	if (strcmp(sub, "inspect") == 0 || strcmp(sub, "rm") == 0)
		return cmd_ref(sub, argc, argv, store_dir);
	return usage("unknown subcommand '%s'", sub);
}
