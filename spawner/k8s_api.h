/*
 * k8s_api: a Kubernetes REST client (libcurl + cJSON). Transport and
 * protocol only, no policy: what to create and when is spawner/k8s.c's.
 *
 * Connection settings come from the pod's service account (in-cluster:
 * KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/
 * serviceaccount/{token,ca.crt,namespace}) or from a kubeconfig file
 * (server, certificate-authority[-data], token[-file] or
 * client-certificate[-data] + client-key[-data], the context's namespace).
 * The bearer token file is re-read when it changes (bound service account
 * tokens rotate about hourly) and once more after a 401.
 *
 * Every call is blocking and bounded (connect and total timeouts, a cap on
 * the response size): run them on worker threads, never on the event loop.
 * A client is safe to use from several threads at once.
 *
 * Errors: API errors become `struct err` with the HTTP status in
 * err->code as a negative errno mapping (see k8s_errno()) and a message
 * built from the Kubernetes Status object, e.g.
 *   "create pods \"nb-alice\": 403 Forbidden: the service account lacks RBAC
 *    permission to create pods in namespace \"nbgate-users\""
 * and the status itself in *http_status where asked for.
 *
 * Thread: any. Dependencies: common/, libcurl, cJSON, libyaml.
 */
#ifndef NBGATE_SPAWNER_K8S_API_H
#define NBGATE_SPAWNER_K8S_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct cJSON;
struct k8s_client;
struct k8s_watch;

/* The resources the backend uses (and nothing else: RBAC mirrors this). */
enum k8s_kind {
	K8S_POD = 0,
	K8S_PVC,
	K8S_SECRET,
	K8S_SERVICE,
	K8S_EVENT,
	K8S_JOB,
	K8S_KIND_COUNT
};

/* Where a kind lives: "/api/v1" + "pods"; "/apis/batch/v1" + "jobs". */
struct k8s_kind_info {
	const char *kind;        /* "Pod" */
	const char *api_version; /* "v1", "batch/v1" */
	const char *prefix;      /* "/api/v1", "/apis/batch/v1" */
	const char *plural;      /* "pods" (also the RBAC resource name) */
};
const struct k8s_kind_info *k8s_kind_info(enum k8s_kind kind);

/*
 * How to connect. Either in_cluster, or kubeconfig (+ optional context).
 * For tests, in_cluster_root replaces "/" in front of the service account
 * directory and KUBERNETES_SERVICE_* are read from the environment as
 * usual. ns overrides the namespace found in the configuration.
 */
struct k8s_client_opts {
	bool in_cluster;
	const char *kubeconfig;      /* path */
	const char *context;         /* NULL = current-context */
	const char *ns;              /* NULL = from the configuration, else "default" */
	const char *in_cluster_root; /* NULL = "" (tests point it at a tree) */
	int64_t connect_timeout_ms;  /* 0 = 5000 */
	int64_t request_timeout_ms;  /* 0 = 30000 */
	int64_t max_response_bytes;  /* 0 = 16 MiB; larger bodies fail EMSGSIZE */
};

/*
 * Reads the configuration and returns a client (no request is made yet).
 * *out owned: k8s_client_free(). Errors name the file and field:
 * "kubeconfig /x: contexts[0].context.cluster: missing", ENOENT when the
 * service account files are absent ("not running in a pod"), EINVAL.
 */
int k8s_client_new(const struct k8s_client_opts *opts, struct k8s_client **out,
		   struct err **err);
void k8s_client_free(struct k8s_client *c);

/* The namespace in use (borrowed, valid for the client's lifetime). */
const char *k8s_client_namespace(const struct k8s_client *c);
/* "https://host:port" of the API server (borrowed). */
const char *k8s_client_server(const struct k8s_client *c);

/*
 * One response. body is the parsed JSON (NULL when the body was empty or
 * not JSON); status is the HTTP status. Owned: k8s_response_clear().
 */
struct k8s_response {
	long status;
	struct cJSON *body;
};
void k8s_response_clear(struct k8s_response *r);

/*
 * A raw request: method ("GET", "POST", "PATCH", "DELETE", "PUT"), path
 * with query ("/api/v1/namespaces/x/pods?labelSelector=..."), body (may be
 * NULL; sent as content_type, NULL = "application/json"). Returns 0 for
 * any HTTP status (the caller looks at resp->status) and fails only on
 * transport errors (ECONNREFUSED, ETIMEDOUT, EMSGSIZE, EPROTO for a body
 * that is not JSON). For the caller that wants Status errors turned into
 * err, use the typed calls below.
 */
int k8s_request(struct k8s_client *c, const char *method, const char *path,
		const char *content_type, const char *body, struct k8s_response *resp,
		struct err **err);

/*
 * Typed calls in the client's namespace (ns NULL) or another. On a
 * non-2xx status they fail with k8s_errno(status) and the Status message
 * (see top), and set *http_status when not NULL (also on success).
 * *out (may be NULL to discard) receives the returned object, owned.
 *
 *  create   POST the object (cJSON, not consumed). 409 -> -EEXIST.
 *  get      404 -> -ENOENT.
 *  list     labelSelector / fieldSelector may be NULL; *out is the List
 *           (items + metadata.resourceVersion).
 *  patch    merge patch (application/merge-patch+json), or a strategic one
 *           when strategic is true (application/strategic-merge-patch+json).
 *  patch_status  the same on the status subresource.
 *  delete   propagationPolicy Background, gracePeriodSeconds when >= 0.
 *           404 -> -ENOENT (callers that only want it gone ignore it).
 */
int k8s_create(struct k8s_client *c, enum k8s_kind kind, const char *ns,
	       const struct cJSON *obj, struct cJSON **out, long *http_status,
	       struct err **err);
int k8s_get(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	    struct cJSON **out, long *http_status, struct err **err);
int k8s_list(struct k8s_client *c, enum k8s_kind kind, const char *ns,
	     const char *label_selector, const char *field_selector, struct cJSON **out,
	     long *http_status, struct err **err);
int k8s_patch(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	      const struct cJSON *patch, bool strategic, struct cJSON **out,
	      long *http_status, struct err **err);
int k8s_delete(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	       int64_t grace_seconds, long *http_status, struct err **err);

/*
 * A pod's log (the container's last tail_lines lines, at most limit_bytes),
 * for crash-loop messages. *out owned text (may be empty).
 */
int k8s_pod_log(struct k8s_client *c, const char *ns, const char *pod, const char *container,
		int tail_lines, int64_t limit_bytes, char **out, struct err **err);

/*
 * POST /api/v1/nodes/<node>/proxy/checkpoint/<ns>/<pod>/<container>:
 * the kubelet's container checkpoint (KEP-2008), through the API server's
 * node proxy. *archive (owned) is the first path of the answer's "items"
 * (the archive on the node). timeout_s bounds the kubelet's dump.
 */
int k8s_checkpoint_container(struct k8s_client *c, const char *node, const char *ns,
			     const char *pod, const char *container, int64_t timeout_s,
			     char **archive, struct err **err);

/*
 * Turns an HTTP status into the negative errno the typed calls return:
 * 400/422 -EINVAL, 401 -EACCES, 403 -EPERM, 404 -ENOENT, 409 -EEXIST,
 * 410 -ESTALE, 429 -EAGAIN, 5xx -EIO, others -EPROTO.
 */
int k8s_errno(long http_status);

/*
 * The message of a Kubernetes Status object (reason, message, details),
 * with the verb and resource of the call for 403s. Owned string. Exposed
 * for the unit tests and the fuzz target: body may be anything.
 */
char *k8s_status_message(const char *verb, const char *resource, const char *name,
			 const char *ns, long http_status, const struct cJSON *body);

/* ---- watches (list, then watch from its resourceVersion) ---- */

enum k8s_watch_event {
	K8S_WATCH_SYNC,      /* an object of a fresh list (after start or a 410) */
	K8S_WATCH_SYNCED,    /* the list is complete (obj NULL): objects not seen
			      * in it since the last SYNC pass are gone */
	K8S_WATCH_ADDED,
	K8S_WATCH_MODIFIED,
	K8S_WATCH_DELETED,
	K8S_WATCH_ERROR      /* the watch broke (obj NULL, message set); it
			      * reconnects by itself after a backoff */
};

/*
 * Called on the watch's own thread for every event. obj is borrowed (valid
 * during the call). message is for K8S_WATCH_ERROR only. Must not block
 * for long: hand the event to the loop thread.
 */
typedef void (*k8s_watch_fn)(void *arg, enum k8s_watch_event ev, const struct cJSON *obj,
			     const char *message);

struct k8s_watch_opts {
	enum k8s_kind kind;
	const char *ns;              /* NULL = the client's namespace */
	const char *label_selector;  /* may be NULL */
	const char *field_selector;  /* may be NULL */
	int64_t timeout_s;           /* server side timeoutSeconds; 0 = 300 */
	int64_t backoff_min_ms;      /* 0 = 500 */
	int64_t backoff_max_ms;      /* 0 = 30000 (doubles, with jitter) */
	int64_t max_event_bytes;     /* one event line; 0 = 4 MiB */
};

/*
 * Starts a thread that lists, then watches from the list's
 * resourceVersion with allowWatchBookmarks=true, and keeps it that way:
 * a watch that ends normally is resumed from the last resourceVersion seen
 * (bookmarks included); 410 Gone (or an ERROR event with code 410) relists
 * (SYNC... SYNCED again); any other failure is reported as
 * K8S_WATCH_ERROR and retried after an exponential backoff. Strings in
 * opts are copied. *out owned: k8s_watch_stop().
 */
int k8s_watch_start(struct k8s_client *c, const struct k8s_watch_opts *opts,
		    k8s_watch_fn fn, void *arg, struct k8s_watch **out, struct err **err);

/*
 * Stops the thread (aborting a transfer in flight, so it returns within
 * about 100 ms) and joins it; fn is not called after this returns. NULL ok.
 */
void k8s_watch_stop(struct k8s_watch *w);

/* Counters for tests and metrics: lists done, reconnects, 410 relists. */
struct k8s_watch_stats {
	uint64_t lists;
	uint64_t reconnects;
	uint64_t relists_gone;
	uint64_t bookmarks;
};
void k8s_watch_get_stats(struct k8s_watch *w, struct k8s_watch_stats *out);

/* ---- helpers on JSON objects (pure; for the backend and the tests) ---- */

/*
 * Parses a Kubernetes quantity ("500m", "2", "1Gi", "1.5G", "100Ki") into
 * milli-units (for cpu: 500m -> 500; "2" -> 2000) or bytes (for memory:
 * "1Gi" -> 1073741824) depending on milli. -EINVAL on bad syntax or
 * overflow.
 */
int k8s_quantity_parse(const char *s, bool milli, int64_t *out);

/* The string at a dotted path ("metadata.name", "status.podIP"), or NULL. */
const char *k8s_json_str(const struct cJSON *obj, const char *path);

#endif
