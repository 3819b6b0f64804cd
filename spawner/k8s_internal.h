/*
 * k8s_internal: what spawner/k8s.c (the backend's lifecycle) and
 * spawner/k8s_pod.c (the objects it creates) share. Not for the gateway.
 *
 * Names (SECURITY.md JH-6): every object of a server is named from its
 * slug (spawner_slug(): a DNS-1123 label, injective for any (user, server)
 * pair, at most 63 characters) behind a fixed prefix, so the names are
 * injective too and valid DNS-1123 subdomains:
 *   pod     "nb-<slug>"           (label nbgate.io/server=<slug>)
 *   secret  "nb-<slug>-env"       (the server's environment: tokens, URLs)
 *   pvc     "home-<user slug>"    (spawner_slug(user, ""): one per user)
 * Labels on everything the backend creates:
 *   app.kubernetes.io/managed-by=nbgate, app.kubernetes.io/component=
 *   user-server|user-home, nbgate.io/gateway=<gateway_id>,
 *   nbgate.io/server=<slug>, nbgate.io/user=<user slug>,
 *   nbgate.io/network=none|egress (the manifests' NetworkPolicies select it)
 * Annotations keep what labels cannot hold: nbgate.io/user (the user
 * name), nbgate.io/server-name, nbgate.io/server-id (servers.id).
 *
 * All builders are pure (no I/O), thread-safe, and return owned cJSON.
 */
#ifndef NBGATE_SPAWNER_K8S_INTERNAL_H
#define NBGATE_SPAWNER_K8S_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "spawner/spawner.h"

struct cJSON;

#define K8S_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define K8S_LABEL_COMPONENT "app.kubernetes.io/component"
#define K8S_LABEL_GATEWAY "nbgate.io/gateway"
#define K8S_LABEL_SERVER "nbgate.io/server"
#define K8S_LABEL_USER "nbgate.io/user"
#define K8S_LABEL_NETWORK "nbgate.io/network"
#define K8S_ANN_USER "nbgate.io/user"
#define K8S_ANN_SERVER "nbgate.io/server-name"
#define K8S_ANN_SERVER_ID "nbgate.io/server-id"
/* The container's name in every server pod. */
#define K8S_CONTAINER "server"
/* Env var (from the Secret) that holds the token the proxy presents to the
 * server (srv->upstream_auth = "token <it>"); images' commands use
 * $(NBGATE_SERVER_TOKEN), and $(NBGATE_POD_IP) (downward API) to listen. */
#define K8S_ENV_SERVER_TOKEN "NBGATE_SERVER_TOKEN"
#define K8S_ENV_POD_IP "NBGATE_POD_IP"

/* Kubernetes' own syntax rules (apimachinery validation), pure. */
bool k8s_is_label_value(const char *s);    /* IsValidLabelValue ("" is valid) */
bool k8s_is_qualified_name(const char *s); /* IsQualifiedName: label and taint keys */

/*
 * One core/v1 Toleration as the API server validates it (fields and types,
 * operator/effect enums, key/value rules, tolerationSeconds only with
 * NoExecute). at names it in messages ("profiles[0].tolerations[1]").
 * The one copy of these rules: the gateway's config parser and
 * k8s_check_cfg() both call it. EINVAL naming the field.
 */
int k8s_check_toleration(const struct cJSON *t, const char *at, struct err **err);

/* Names (owned, never NULL). slug: srv->slug; user: the user name. */
char *k8s_pod_name(const char *slug);
char *k8s_secret_name(const char *slug);
char *k8s_pvc_name(const char *user);

/* Effective settings: the cfg value or its documented default. */
const char *k8s_cfg_gateway_id(const struct spawner_k8s_cfg *k);
const char *k8s_cfg_gpu_resource(const struct spawner_k8s_cfg *k);

/*
 * Everything one server's objects are built from (all borrowed).
 * server_token: the secret the proxy presents (K8S_ENV_SERVER_TOKEN).
 */
struct k8s_pod_req {
	const struct spawner_cfg *cfg;         /* server_env, stop timeout, k8s */
	const struct spawner_server *srv;      /* slug, user, name, id, env, base_url */
	const struct spawner_profile *prof;
	const struct spawner_k8s_sched *sched; /* may be NULL */
	const struct spawner_k8s_image *img;
	const char *ns;
	const char *server_token;
};

/*
 * The Pod: image, command from img->cmd ({port} {base_url} {home} {user}
 * {server} expanded, $(VAR) kept), envFrom the Secret plus NBGATE_POD_IP
 * (fieldRef status.podIP), resources from the profile (requests = limits),
 * GPUs as <gpu_resource> limits + node selector <gpu_product_label>=
 * <gpu_model> + toleration <gpu_taint_key> Exists, the profile's node
 * selector and tolerations, a readiness probe (httpGet <base_url>api
 * for Jupyter; tcpSocket otherwise), the PVC at img->home, an emptyDir at
 * /tmp, restartPolicy OnFailure, automountServiceAccountToken false,
 * enableServiceLinks false, and the restricted security context
 * (SECURITY.md: runAsNonRoot, runAsUser/Group = img->uid,
 * allowPrivilegeEscalation false, capabilities drop ALL, privileged false,
 * readOnlyRootFilesystem false, seccompProfile RuntimeDefault or Localhost).
 * Errors: EINVAL naming the field (a command without {port}, uid 0,
 * tolerations that are not a JSON array of objects).
 */
struct cJSON *k8s_build_pod(const struct k8s_pod_req *r, struct err **err);

/* The Secret (type Opaque, stringData): srv->env, cfg->server_env, HOME,
 * USER, NBGATE_BASE_URL and K8S_ENV_SERVER_TOKEN. */
struct cJSON *k8s_build_secret(const struct k8s_pod_req *r);

/* The user's PVC (ReadWriteOnce, storage class and size from cfg->k8s). */
struct cJSON *k8s_build_pvc(const struct k8s_pod_req *r);

/*
 * Config-time checks of the kubernetes settings against the profiles and
 * images (every cfg->images name has a k8s image; tolerations parse; node
 * selector entries are "key=value" with valid label syntax; uids non-zero;
 * ports 1..65535; commands contain {port}). The gateway runs it at load
 * (400-style messages naming the field, "kubernetes.images[1].cmd: ...").
 */
int k8s_check_cfg(const struct spawner_cfg *cfg, struct err **err);

/*
 * Reads a pod object: phase, the Ready condition, podIP, node name, and a
 * failure reason when the pod cannot become ready (Unschedulable with the
 * scheduler's message, ErrImagePull/ImagePullBackOff/InvalidImageName with
 * the kubelet's message, CrashLoopBackOff, CreateContainerConfigError,
 * phase Failed/Succeeded). Strings point into pod (borrowed).
 */
struct k8s_pod_view {
	const char *name;
	const char *uid;
	const char *phase;          /* "Pending", "Running", ... or NULL */
	bool ready;
	bool deleting;              /* metadata.deletionTimestamp set */
	const char *pod_ip;
	const char *node;
	const char *waiting_reason; /* the server container's, or NULL */
	const char *waiting_message;
	const char *unschedulable;  /* PodScheduled=False message, or NULL */
	int restarts;
	bool fatal;                 /* will not become ready by waiting */
};
void k8s_pod_view(const struct cJSON *pod, struct k8s_pod_view *out);

/* "ip:port" or "[ip6]:port" for the proxy. Owned. */
char *k8s_upstream(const char *pod_ip, int port);

#endif
