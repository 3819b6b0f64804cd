/*
 * k8s_api_drive: drives spawner/k8s_api.h from the command line, so the
 * tests of tests/k8s/ can exercise the REST client's transport (TLS, token
 * rotation, Status errors, watches with bookmarks and 410) against the
 * contract double without the whole backend.
 *
 *   k8s_api_drive [-k KUBECONFIG [-c CONTEXT] | -i ROOT] [-n NS] CMD ARGS
 *     get KIND NAME            create KIND JSON-FILE     delete KIND NAME GRACE
 *     list KIND [LABELSEL]     patch KIND NAME JSON      log POD [TAIL]
 *     checkpoint NODE POD CONTAINER
 *     watch KIND SECONDS [LABELSEL]   (events as lines until SECONDS pass)
 *     token-loop KIND N MS     (N gets of KIND list, MS apart: token rotation)
 * KIND: pod pvc secret service event job. Output: one line
 * "rc=<rc> status=<http> err=<message>" then the JSON answer, if any;
 * watch prints "SYNC <name>", "SYNCED", "ADDED <name> <rv>", ...,
 * "ERROR <message>", then "stats lists=.. reconnects=.. relists_gone=..
 * bookmarks=..". Exit status 0 when rc was 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "spawner/k8s_api.h"

static int kind_of(const char *s)
{
	static const char *const names[] = { "pod", "pvc", "secret", "service", "event", "job" };

	for (int i = 0; i < K8S_KIND_COUNT; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	fprintf(stderr, "k8s_api_drive: unknown kind '%s'\n", s);
	exit(2);
}

static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end) {
		fprintf(stderr, "k8s_api_drive: '%s': not a number\n", s);
		exit(2);
	}
	return v;
}

static int report(int r, long st, struct err *err, cJSON *out)
{
	printf("rc=%d status=%ld err=%s\n", r, st, err ? err->msg : "");
	if (out) {
		char *s = json_print(out);

		printf("%s\n", s);
		free(s);
		cJSON_Delete(out);
	}
	fflush(stdout);
	return r == 0 ? 0 : 1;
}

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_watch(void *arg, enum k8s_watch_event ev, const cJSON *obj, const char *msg)
{
	static const char *const names[] = { "SYNC", "SYNCED", "ADDED", "MODIFIED", "DELETED",
					     "ERROR" };
	const char *name = k8s_json_str(obj, "metadata.name");
	const char *rv = k8s_json_str(obj, "metadata.resourceVersion");

	pthread_mutex_lock(&out_mu);
	if (ev == K8S_WATCH_ERROR)
		printf("ERROR %s\n", msg ? msg : "");
	else
		printf("%s %s %s\n", names[ev], name ? name : "-", rv ? rv : "-");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

static int do_watch(struct k8s_client *c, int kind, int secs, const char *sel)
{
	struct k8s_watch_opts o = { .kind = kind, .label_selector = sel, .timeout_s = 5,
				    .backoff_min_ms = 100, .backoff_max_ms = 1000 };
	struct k8s_watch *w = NULL;
	struct k8s_watch_stats st;
	struct err *err = NULL;

	if (k8s_watch_start(c, &o, on_watch, NULL, &w, &err) < 0)
		return report(-1, 0, err, NULL);
	sleep((unsigned)secs);
	k8s_watch_get_stats(w, &st);
	k8s_watch_stop(w);
	printf("stats lists=%llu reconnects=%llu relists_gone=%llu bookmarks=%llu\n",
	       (unsigned long long)st.lists, (unsigned long long)st.reconnects,
	       (unsigned long long)st.relists_gone, (unsigned long long)st.bookmarks);
	return 0;
}

static int do_token_loop(struct k8s_client *c, int kind, int n, int ms)
{
	int fails = 0;

	for (int i = 0; i < n; i++) {
		struct err *err = NULL;
		long st = 0;
		int r = k8s_list(c, kind, NULL, NULL, NULL, NULL, &st, &err);

		printf("rc=%d status=%ld err=%s\n", r, st, err ? err->msg : "");
		fflush(stdout);
		fails += r < 0;
		err_free(&err);
		usleep((useconds_t)ms * 1000);
	}
	return fails ? 1 : 0;
}

static cJSON *load_json(const char *path_or_text)
{
	char *text = NULL;
	cJSON *j;

	if (path_or_text[0] == '{')
		return json_parse(path_or_text, strlen(path_or_text), NULL);
	if (file_read_all(path_or_text, 0, 4 << 20, &text, NULL, NULL) < 0)
		return NULL;
	j = json_parse(text, strlen(text), NULL);
	free(text);
	return j;
}

static int run(struct k8s_client *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	struct err *err = NULL;
	cJSON *out = NULL, *in = NULL;
	long st = 0;
	int r = -EINVAL;

	if (strcmp(cmd, "get") == 0 && argc == 3) {
		r = k8s_get(c, kind_of(argv[1]), NULL, argv[2], &out, &st, &err);
	} else if (strcmp(cmd, "create") == 0 && argc == 3 && (in = load_json(argv[2]))) {
		r = k8s_create(c, kind_of(argv[1]), NULL, in, &out, &st, &err);
	} else if (strcmp(cmd, "patch") == 0 && argc == 4 && (in = load_json(argv[3]))) {
		r = k8s_patch(c, kind_of(argv[1]), NULL, argv[2], in, false, &out, &st, &err);
	} else if (strcmp(cmd, "delete") == 0 && argc == 4) {
		r = k8s_delete(c, kind_of(argv[1]), NULL, argv[2], num(argv[3]), &st, &err);
	} else if (strcmp(cmd, "list") == 0 && (argc == 2 || argc == 3)) {
		r = k8s_list(c, kind_of(argv[1]), NULL, argc == 3 ? argv[2] : NULL, NULL, &out,
			     &st, &err);
	} else if (strcmp(cmd, "log") == 0 && argc >= 2) {
		char *text = NULL;

		r = k8s_pod_log(c, NULL, argv[1], "server", argc > 2 ? (int)num(argv[2]) : 20,
				1 << 20, &text, &err);
		out = text ? cJSON_CreateString(text) : NULL;
		free(text);
	} else if (strcmp(cmd, "checkpoint") == 0 && argc == 4) {
		char *archive = NULL;

		r = k8s_checkpoint_container(c, argv[1], NULL, argv[2], argv[3], 30, &archive,
					     &err);
		out = archive ? cJSON_CreateString(archive) : NULL;
		free(archive);
	} else if (strcmp(cmd, "watch") == 0 && argc >= 3) {
		return do_watch(c, kind_of(argv[1]), (int)num(argv[2]), argc > 3 ? argv[3] : NULL);
	} else if (strcmp(cmd, "token-loop") == 0 && argc == 4) {
		return do_token_loop(c, kind_of(argv[1]), (int)num(argv[2]), (int)num(argv[3]));
	} else {
		fprintf(stderr, "k8s_api_drive: bad command (see the source's comment)\n");
		return 2;
	}
	if (in)
		cJSON_Delete(in);
	r = report(r, st, err, out);
	err_free(&err);
	return r;
}

int main(int argc, char **argv)
{
	struct k8s_client_opts o = { 0 };
	struct k8s_client *c = NULL;
	struct err *err = NULL;
	int opt, r;

	while ((opt = getopt(argc, argv, "+k:c:i:n:")) != -1) {
		if (opt == 'k')
			o.kubeconfig = optarg;
		else if (opt == 'c')
			o.context = optarg;
		else if (opt == 'i')
			o.in_cluster = true, o.in_cluster_root = optarg;
		else if (opt == 'n')
			o.ns = optarg;
		else
			return 2;
	}
	if (optind >= argc)
		return 2;
	if (k8s_client_new(&o, &c, &err) < 0)
		return report(-1, 0, err, NULL);
	r = run(c, argc - optind, argv + optind);
	k8s_client_free(c);
	return r;
}
