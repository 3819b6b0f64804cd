/*
 * k8s_ckpt: the pure parts of CRIU checkpoints through the kubelet
 * (kubernetes.checkpoint_kubelet; docs/kubernetes.md "Checkpoints").
 * spawner/k8s.c runs the jobs; this file names, expands and builds.
 *
 * A kubelet checkpoint is an archive on the node that ran the pod
 * (/var/lib/kubelet/checkpoints/...). nbgate records it in the catalog row
 * as "<node>:<archive>" and never touches it: the node's tools turn it
 * into an image (kubernetes.checkpoint_image) and its GC deletes it.
 *
 * Everything here is pure (no I/O) and thread-safe.
 */
#ifndef NBGATE_SPAWNER_K8S_CKPT_H
#define NBGATE_SPAWNER_K8S_CKPT_H

#include <stdint.h>

#include "common/err.h"

struct cJSON;

/* The pod annotation of a restored pod: where its checkpoint came from. */
#define K8S_ANN_RESTORED_FROM "nbgate.io/restored-from"
/* The node label a restored pod is pinned with (the archive is there). */
#define K8S_LABEL_HOSTNAME "kubernetes.io/hostname"

/* "<node>:<archive>". Owned, never NULL. */
char *k8s_ckpt_path(const char *node, const char *archive);

/*
 * Splits a row path made by k8s_ckpt_path(): *node and *archive owned.
 * Errors: EINVAL (a path of another kind, such as an image dir).
 */
int k8s_ckpt_path_split(const char *path, char **node, char **archive, struct err **err);

/*
 * Checks a kubernetes.checkpoint_image template: printable, placeholders
 * only {pod} {id} {node}, and {id} present (every checkpoint has its own
 * image). Errors: EINVAL saying what is wrong (the caller adds the field).
 */
int k8s_ckpt_image_check(const char *tmpl, struct err **err);

/*
 * The template with {pod} {id} {node} expanded. Owned. Errors: EINVAL
 * (the template fails k8s_ckpt_image_check()).
 */
char *k8s_ckpt_image(const char *tmpl, const char *pod, int64_t id, const char *node,
		     struct err **err);

/*
 * Turns a start's Pod (k8s_build_pod()) into the restore of a checkpoint:
 * the server container's image = image, nodeSelector kubernetes.io/hostname
 * = node (added to the profile's), annotation nbgate.io/restored-from =
 * origin. Strings are copied. Errors: EINVAL (no server container).
 */
int k8s_ckpt_restore_pod(struct cJSON *pod, const char *image, const char *node,
			 const char *origin, struct err **err);

/*
 * What a failed kubelet checkpoint call means (rc: the call's -errno,
 * msg: its message, borrowed, may be NULL): 404 the feature gate or the
 * runtime, 403 the RBAC rule, else the message. Owned.
 */
char *k8s_ckpt_fail_message(int rc, const char *msg, const char *node);

#endif
