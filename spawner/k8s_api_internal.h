/*
 * k8s_api_internal: what spawner/k8s_api.c (transport, typed calls),
 * spawner/k8s_config.c (kubeconfig, in-cluster) and spawner/k8s_watch.c
 * (the watch thread) share, and the pure parsers the unit tests and the
 * fuzz target reach. Not for the backend: it uses spawner/k8s_api.h.
 */
#ifndef NBGATE_SPAWNER_K8S_API_INTERNAL_H
#define NBGATE_SPAWNER_K8S_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "spawner/k8s_api.h"

/* Caps on what configuration files may hold (they are small). */
#define K8S__MAX_CONFIG_BYTES (4u << 20)
#define K8S__MAX_TOKEN_BYTES (64u << 10)
#define K8S__SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Identity of the token file when it was last read: a change re-reads. */
struct k8s__file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct k8s_client {
	char *server;       /* "https://host:port[/path]", no trailing '/' */
	char *ns;
	char *ca_file;      /* CA bundle path (CURLOPT_CAINFO), or NULL */
	char *ca_data;      /* PEM (decoded certificate-authority-data), or NULL */
	size_t ca_len;
	char *cert_data;    /* client certificate PEM, or NULL */
	size_t cert_len;
	char *key_data;     /* client key PEM (wiped on free), or NULL */
	size_t key_len;
	char *token_file;   /* re-read when it changes, or NULL */
	int64_t connect_timeout_ms;
	int64_t request_timeout_ms;
	int64_t max_response_bytes;
	pthread_mutex_t token_mu; /* guards the three below */
	char *token;        /* bearer token, or NULL (client certificate) */
	struct k8s__file_id token_id;
	uint64_t token_gen; /* bumped on every (re)read */
};

/*
 * The settings a kubeconfig selects for one context, before any file is
 * read (all borrowed from the parsed document). Pure: the fuzz target
 * runs it on anything.
 */
struct k8s__kcfg {
	const char *context;
	const char *server;
	const char *ca_file, *ca_data;
	const char *cert_file, *cert_data;
	const char *key_file, *key_data;
	const char *token, *token_file;
	const char *ns;     /* the context's namespace, or NULL */
};

/* ---- k8s_config.c ---- */

/*
 * YAML (one document; JSON is YAML) -> cJSON. Plain scalars follow the
 * YAML 1.2 core schema (null, booleans, integers, floats), everything else
 * is a string; duplicate keys, non-scalar keys, more than 64 levels or
 * 100000 nodes (aliases count each time they are used) fail EINVAL with
 * the line. *out owned.
 */
int k8s__yaml_to_json(const char *text, size_t len, struct cJSON **out, struct err **err);

/*
 * Picks the context (context, or current-context when NULL) of a parsed
 * kubeconfig and its cluster and user. Errors (EINVAL) name the field:
 * "contexts[0].context.cluster: missing", and refuse what nbgate will not
 * do: insecure-skip-tls-verify, exec/auth-provider plugins, basic auth,
 * proxy-url, tls-server-name, a server that is not https.
 */
int k8s__kubeconfig_select(const struct cJSON *doc, const char *context,
			   struct k8s__kcfg *out, struct err **err);

/* Standard base64 (whitespace ignored) -> bytes; *out owned, NUL-terminated. */
int k8s__b64_decode(const char *field, const char *s, char **out, size_t *len,
		    struct err **err);

/* Fills c's connection settings from opts (files read here). */
int k8s__config_load(struct k8s_client *c, const struct k8s_client_opts *opts,
		     struct err **err);

/*
 * The bearer token to send (owned copy, NULL when the client uses a
 * certificate) and its generation. The token file is re-read when its
 * identity changed, or when force_gen equals the generation in use (a 401
 * with that token). Thread: any.
 */
int k8s__token_get(struct k8s_client *c, uint64_t force_gen, bool force, char **tok,
		   uint64_t *gen, struct err **err);

/* true for a DNS-1123 label (namespaces). */
bool k8s__is_dns_label(const char *s);

/* ---- k8s_api.c: transport ---- */

/* A transfer that another thread can abort (the watch's). */
struct k8s__abort {
	atomic_bool stop;
	void *multi;        /* CURLM *, owned by the watch */
};

/* Receives a 2xx body as it arrives (watches). <0 aborts the transfer. */
typedef int (*k8s__sink_fn)(void *arg, const char *p, size_t n, struct err **err);

struct k8s__xfer {
	const char *method;
	const char *path;          /* with query, already escaped */
	const char *content_type;  /* NULL = application/json (when body) */
	const char *body;          /* NULL = none */
	const char *accept;        /* NULL = application/json */
	int64_t timeout_ms;        /* 0 = the client's request timeout */
	long low_speed_time_s;     /* 0 = none: < 1 byte/s this long aborts */
	k8s__sink_fn sink;         /* NULL = collect into body */
	void *sink_arg;
	struct k8s__abort *abort;  /* NULL = not abortable */
	/* results */
	long status;
	struct buf out;            /* the body (not a 2xx one when sink) */
};

/*
 * Runs one request (a 401 with a token file re-reads it and retries once).
 * x->out holds the body (the caller releases it). Fails on transport
 * errors only: ECONNREFUSED, ETIMEDOUT, EMSGSIZE, ECANCELED (aborted),
 * EPROTO (TLS), ECONNRESET, EIO; a sink's error as it set it.
 */
int k8s__perform(struct k8s_client *c, struct k8s__xfer *x, struct err **err);

/* "/api/v1/namespaces/<ns>/<plural>[/<name>][/<sub>]" escaped; owned. */
char *k8s__path(enum k8s_kind kind, const char *ns, const char *name, const char *sub);

/* "&key=<escaped value>" appended to b (nothing when value is NULL). */
int k8s__query_add(struct buf *b, const char *key, const char *value);

/*
 * list for the watch (abortable): *out the List, *status the HTTP status.
 * Non-2xx fails with k8s_errno() and the Status message.
 */
int k8s__list(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *lsel,
	      const char *fsel, struct k8s__abort *ab, struct cJSON **out, long *status,
	      struct err **err);

/* The node at a dotted path ("metadata.name"), or NULL (borrowed). */
const struct cJSON *k8s__json_at(const struct cJSON *obj, const char *path);

/* An error for a non-2xx answer (verb, resource as for k8s_status_message). */
int k8s__status_err(struct err **err, const char *verb, const char *resource,
		    const char *name, const char *ns, long status, const char *body,
		    size_t len);

/* ---- k8s_watch.c: pure parts ---- */

/* Splits a byte stream into lines ("\n", a trailing "\r" dropped). */
struct k8s__lines {
	struct buf partial;  /* an incomplete line; max = the line cap */
};
typedef int (*k8s__line_fn)(void *arg, const char *line, size_t len, struct err **err);
void k8s__lines_init(struct k8s__lines *l, size_t max_line);
void k8s__lines_release(struct k8s__lines *l);
/*
 * Calls fn for each complete line in the stream so far (blank lines too).
 * A line longer than the cap fails EMSGSIZE; fn's failure stops it.
 */
int k8s__lines_feed(struct k8s__lines *l, const char *p, size_t n, k8s__line_fn fn,
		    void *arg, struct err **err);

enum k8s__wtype {
	K8S__W_ADDED,
	K8S__W_MODIFIED,
	K8S__W_DELETED,
	K8S__W_BOOKMARK,
	K8S__W_ERROR,
	K8S__W_BLANK     /* an empty line: nothing to do */
};

/* One parsed watch line. */
struct k8s__wevent {
	enum k8s__wtype type;
	struct cJSON *root;       /* owned: the whole line */
	const struct cJSON *obj;  /* borrowed from root: "object" */
	const char *rv;           /* obj's metadata.resourceVersion, or NULL */
	long code;                /* ERROR: the Status code (0 when none) */
	const char *message;      /* ERROR: the Status message, or NULL */
};

/*
 * Parses one line of a watch stream: {"type": ..., "object": {...}}.
 * EPROTO names what is wrong (not JSON, no type, unknown type, object not
 * an object). ev->root owned: k8s__wevent_clear().
 */
int k8s__watch_parse_line(const char *line, size_t len, struct k8s__wevent *ev,
			  struct err **err);
void k8s__wevent_clear(struct k8s__wevent *ev);

/* The backoff before retry n (0-based): min * 2^n capped at max, then a
 * random point in its upper half (jitter). r is a random 32-bit value. */
int64_t k8s__backoff_ms(int64_t min_ms, int64_t max_ms, unsigned n, uint32_t r);

#endif
