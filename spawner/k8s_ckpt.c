/*
 * spawner/k8s_ckpt: CRIU checkpoints of the kubernetes backend through the
 * kubelet (kubernetes.checkpoint_kubelet; docs/kubernetes.md "Checkpoints").
 *
 *   checkpoint  POST .../nodes/<node>/proxy/checkpoint/<ns>/<pod>/server
 *          (a job, spawner/k8s.c); its archive is recorded in the row as
 *          "<node>:<archive>", then pod and secret are deleted (the PVC
 *          stays) and the server is suspended. A failed call leaves the
 *          server running (404: feature gate, 403: RBAC). Commit: ENOTSUP.
 *   restore  a start from kubernetes.checkpoint_image pinned to the node,
 *          with the token the checkpointed process still holds (memory
 *          only: after a gateway restart the restore falls back to a
 *          fresh start, like one without checkpoint_image).
 *   forget  only the row: archives live on the nodes.
 *
 * The first part is pure (names, templates, the restore pod: k8s_ckpt.h,
 * also used by the config parser); the second runs on the loop thread.
 */
#define LOG_PREFIX "spawner/k8s_ckpt: "

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "spawner/ckpt_internal.h"
#include "spawner/k8s_backend.h"
#include "spawner/k8s_ckpt.h"
#include "spawner/k8s_internal.h"

/* An expanded image reference never needs more (registries cap at 255). */
#define K8S_CKPT_IMAGE_MAX 1024

char *k8s_ckpt_path(const char *node, const char *archive)
{
	return xasprintf("%s:%s", node, archive);
}

int k8s_ckpt_path_split(const char *path, char **node, char **archive, struct err **err)
{
	const char *colon = path ? strchr(path, ':') : NULL;

	/* Node names are DNS subdomains: no '/' before the colon, none empty;
	 * a criu image dir of the local backend starts with '/'. */
	if (!colon || colon == path || colon[1] != '/' || memchr(path, '/', colon - path))
		return err_set(err, EINVAL, "checkpoint path '%s' is not a kubelet archive "
			       "(<node>:<archive>)", path ? path : "");
	*node = xstrndup(path, (size_t)(colon - path));
	*archive = xstrdup(colon + 1);
	return 0;
}

/* The placeholder at s ("{pod}" ...): its length, 0 when s starts none. */
static size_t placeholder(const char *s, const char **name)
{
	static const char *const names[] = { "{pod}", "{id}", "{node}" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		if (strncmp(s, names[i], n) == 0) {
			*name = names[i];
			return n;
		}
	}
	return 0;
}

int k8s_ckpt_image_check(const char *tmpl, struct err **err)
{
	bool has_id = false;
	const char *name;

	if (!tmpl || !*tmpl || strlen(tmpl) > K8S_CKPT_IMAGE_MAX / 2)
		return err_set(err, EINVAL, "expected an image reference template of 1..%d "
			       "characters", K8S_CKPT_IMAGE_MAX / 2);
	for (const char *p = tmpl; *p; p++) {
		size_t n;

		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return err_set(err, EINVAL, "expected printable ASCII without spaces");
		if (*p == '}')
			return err_set(err, EINVAL, "a '}' outside {pod} {id} {node}");
		if (*p != '{')
			continue;
		n = placeholder(p, &name);
		if (!n)
			return err_set(err, EINVAL, "unknown placeholder at '%.16s' (allowed: {pod} "
				       "{id} {node})", p);
		has_id |= strcmp(name, "{id}") == 0;
		p += n - 1;
	}
	if (!has_id)
		return err_set(err, EINVAL, "needs {id}: every checkpoint is its own image");
	return 0;
}

char *k8s_ckpt_image(const char *tmpl, const char *pod, int64_t id, const char *node,
		     struct err **err)
{
	struct buf b;
	const char *name;
	int rc = 0;

	if (k8s_ckpt_image_check(tmpl, err) < 0)
		return NULL;
	buf_init(&b, K8S_CKPT_IMAGE_MAX);
	for (const char *p = tmpl; *p && rc == 0; p++) {
		size_t n = *p == '{' ? placeholder(p, &name) : 0;

		if (!n) {
			rc = buf_append(&b, p, 1);
			continue;
		}
		if (name[1] == 'p')
			rc = buf_appends(&b, pod);
		else if (name[1] == 'i')
			rc = buf_appendf(&b, "%" PRId64, id);
		else
			rc = buf_appends(&b, node);
		p += n - 1;
	}
	if (rc < 0) {
		buf_release(&b);
		err_set(err, EINVAL, "the checkpoint image is longer than %d characters",
			K8S_CKPT_IMAGE_MAX);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* obj[key] as an object, created when missing (or not an object). */
static cJSON *obj_member(cJSON *obj, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (cJSON_IsObject(v))
		return v;
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	return cJSON_AddObjectToObject(obj, key);
}

static void set_str(cJSON *obj, const char *key, const char *val)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	cJSON_AddStringToObject(obj, key, val);
}

int k8s_ckpt_restore_pod(cJSON *pod, const char *image, const char *node, const char *origin,
			 struct err **err)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
	cJSON *c, *server = NULL;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(spec, "containers")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");

		if (cJSON_IsString(n) && strcmp(n->valuestring, K8S_CONTAINER) == 0)
			server = c;
	}
	if (!server)
		return err_set(err, EINVAL, "the pod has no container '%s'", K8S_CONTAINER);
	set_str(server, "image", image);
	set_str(obj_member(spec, "nodeSelector"), K8S_LABEL_HOSTNAME, node);
	set_str(obj_member(obj_member(pod, "metadata"), "annotations"), K8S_ANN_RESTORED_FROM,
		origin);
	return 0;
}

char *k8s_ckpt_fail_message(int rc, const char *msg, const char *node)
{
	if (!msg)
		msg = "failed";
	if (rc == -ENOENT)
		return xasprintf("the kubelet checkpoint API on node %s answered 404: is the "
				 "ContainerCheckpoint feature gate on and does the node's runtime "
				 "(CRI-O or containerd) have CRIU? (%s)", node, msg);
	if (rc == -EPERM)
		return xasprintf("nbgate's service account may not create nodes/proxy, which "
				 "the kubelet checkpoint needs (the ClusterRole in "
				 "docs/kubernetes.md \"Checkpoints\"): %s", msg);
	return xasprintf("the kubelet checkpoint on node %s failed: %s", node, msg);
}

/* ---- the backend's side (loop thread; spawner/k8s_backend.h) ---- */

int k8s_ckpt_checkpoint(struct spawner *sp, struct spawner_server *srv,
			const struct spawner_checkpoint *ck, struct err **err)
{
	struct spawner_k8s *k = spawner_k8s_from(sp);
	struct k8s_srv *ks = srv->priv;
	cleanup_free char *msg = NULL;
	struct k8s_pod_view v;
	int64_t timeout_s = sp->cfg.spawn_timeout_ms / 1000;

	if (ck->mode != SPAWNER_CKPT_CRIU)
		return err_set(err, ENOTSUP, "%s is not available on kubernetes (the home is on "
			       "the PVC: a stop keeps it)", spawner_ckpt_mode_name(ck->mode));
	if (!sp->cfg.k8s->checkpoint_kubelet)
		return err_set(err, ENOTSUP, "criu on kubernetes needs "
			       "kubernetes.checkpoint_kubelet");
	if (k8s__uses_gpus(sp, srv))
		return err_set(err, ENOTSUP, "CRIU cannot checkpoint a container with GPUs");
	if (!ks || ks->phase != K8S_RUNNING || !ks->pod)
		return err_set_http(err, 409, EBUSY, "the pod of '%s' is not running", srv->slug);
	k8s_pod_view(ks->pod, &v);
	if (!v.node || !v.node[0])
		return err_set_http(err, 409, EBUSY, "pod %s has no node", ks->pod_name);
	k8s__submit_ckpt(k, srv, v.node, ck->id, timeout_s > 0 ? timeout_s : 1);
	log_info("'%s' asking the kubelet on %s to checkpoint pod %s (checkpoint %lld)",
		 srv->slug, v.node, ks->pod_name, (long long)ck->id);
	msg = xasprintf("the kubelet on node %s checkpoints the server", v.node);
	k8s__progress(sp, srv, 30, msg);
	return 0;
}

/*
 * The node holds the archive; the restore runs the image the node's tools
 * built from it (kubernetes.checkpoint_image) with the token the process
 * inside still holds. Anything missing fails at once: the core marks the
 * checkpoint broken and starts fresh (the home is on the PVC).
 */
int k8s_ckpt_restore(struct spawner *sp, struct spawner_server *srv,
		     const struct spawner_checkpoint *ck, struct err **err)
{
	const char *tmpl = sp->cfg.k8s->checkpoint_image;
	struct k8s_srv *ks = srv->priv;
	cleanup_free char *node = NULL, *archive = NULL, *image = NULL, *token = NULL;
	struct k8s_restore rs = { .ck = ck };
	int rc;

	if (ck->mode != SPAWNER_CKPT_CRIU)
		return err_set(err, ENOTSUP, "%s checkpoints do not exist on kubernetes",
			       spawner_ckpt_mode_name(ck->mode));
	if (k8s_ckpt_path_split(ck->path, &node, &archive, err) < 0)
		return -EINVAL;
	if (!tmpl)
		return err_set(err, EINVAL, "restoring a kubelet checkpoint needs "
			       "kubernetes.checkpoint_image (an image built from the archive on "
			       "%s; docs/kubernetes.md)", node);
	if (!ks || !ks->ckpt_token || ks->ckpt_token_id != ck->id)
		return err_set(err, EINVAL, "the server token checkpoint %lld holds is not known "
			       "(the gateway restarted since: tokens are never stored), so the "
			       "restored server would refuse the gateway", (long long)ck->id);
	image = k8s_ckpt_image(tmpl, ks->pod_name, ck->id, node, err);
	if (!image)
		return -EINVAL;
	rs.image = image;
	rs.node = node;
	token = xstrdup(ks->ckpt_token);
	rc = k8s__launch(sp, srv, token, &rs, err);
	explicit_bzero(token, strlen(token));
	return rc;
}

/*
 * Kubelet archives stay on their node: nbgate has no way onto the node's
 * disk (no hostPath, SECURITY.md SBX-16); the kubelet's checkpoint GC or
 * the node's operator deletes them. So forgetting one is only its row.
 * Rows whose dump failed before the kubelet answered still carry the
 * path they were inserted with (below ckpt.dir, never created).
 */
int k8s_ckpt_forget(struct spawner *sp, const struct spawner_checkpoint *ck, struct err **err)
{
	cleanup_free char *node = NULL, *archive = NULL;
	struct err *e = NULL;

	if (ck->mode != SPAWNER_CKPT_CRIU)
		return 0;
	if (k8s_ckpt_path_split(ck->path, &node, &archive, &e) < 0) {
		err_free(&e);
		return spawner__ckpt_remove_files(sp, ck, err);
	}
	log_info("checkpoint %lld forgotten; its archive %s stays on node %s (the kubelet's "
		 "checkpoint GC or the node's operator deletes it)", (long long)ck->id, archive,
		 node);
	return 0;
}

/*
 * A dump whose server moved on (its pod went, it failed): the core will
 * not hear of it, so its 'writing' row goes here. Not at shutdown: the
 * next startup deletes 'writing' rows anyway.
 */
static void drop_stale(struct spawner_k8s *k, const struct k8s_ckpt_result *r)
{
	struct spawner_checkpoint *ck = NULL;
	struct err *e = NULL;

	if (r->shutting)
		return;
	if (spawner__ckpt_get(&k->base, r->ckpt_id, &ck, &e) == 0 &&
	    strcmp(ck->state, "writing") == 0) {
		log_info("checkpoint %lld of pod %s: the server moved on meanwhile; dropped",
			 (long long)r->ckpt_id, r->pod_name);
		spawner__ckpt_remove(&k->base, ck, &e);
	}
	if (e)
		log_warn("checkpoint %lld: %s", (long long)r->ckpt_id, e->msg);
	err_free(&e);
	spawner__ckpt_free(ck);
}

/* The kubelet answered: the archive is recorded, then pod and secret go. */
void k8s_ckpt_dumped(struct spawner_k8s *k, struct spawner_server *srv,
		     const struct k8s_ckpt_result *r)
{
	cleanup_free char *msg = NULL, *path = NULL;
	struct err *e = NULL;

	if (!srv || srv->state != SPAWNER_CHECKPOINTING) {
		drop_stale(k, r);
		return;
	}
	if (r->rc < 0 || !r->archive) { /* nothing was touched: the server goes on */
		msg = k8s_ckpt_fail_message(r->rc, r->msg, r->node);
		spawner_checkpoint_done(&k->base, srv, r->ckpt_id, false, true, -1, msg);
		return;
	}
	path = k8s_ckpt_path(r->node, r->archive);
	if (spawner__ckpt_set_path(&k->base, r->ckpt_id, path, &e) < 0) {
		spawner_checkpoint_done(&k->base, srv, r->ckpt_id, false, true, -1, e->msg);
		err_free(&e);
		return;
	}
	log_info("'%s' kubelet checkpoint %lld at %s; deleting pod %s", srv->slug,
		 (long long)r->ckpt_id, path, r->pod_name);
	msg = xasprintf("checkpoint written on node %s; deleting the pod", r->node);
	k8s__progress(&k->base, srv, 70, msg);
	k8s__submit_ckpt_delete(k, srv, r->ckpt_id, path);
}

/* Keeps the token the checkpointed process holds, for its restore. */
static void keep_token(struct k8s_srv *ks, const struct spawner_server *srv, int64_t id)
{
	const char *auth = srv->upstream_auth;

	if (ks->ckpt_token)
		explicit_bzero(ks->ckpt_token, strlen(ks->ckpt_token));
	free(ks->ckpt_token);
	ks->ckpt_token = auth && strncmp(auth, "token ", 6) == 0 ? xstrdup(auth + 6) : NULL;
	ks->ckpt_token_id = id;
}

void k8s_ckpt_deleted(struct spawner_k8s *k, struct spawner_server *srv,
		      const struct k8s_ckpt_result *r)
{
	struct k8s_srv *ks = srv ? srv->priv : NULL;
	cleanup_free char *msg = NULL;

	if (!ks || srv->state != SPAWNER_CHECKPOINTING) {
		drop_stale(k, r);
		return;
	}
	if (r->rc < 0) { /* the pod may still run: look, and say so */
		ks->phase = K8S_RUNNING;
		msg = xasprintf("pod %s could not be deleted after its checkpoint: %s",
				r->pod_name, r->msg ? r->msg : "failed");
		spawner_checkpoint_done(&k->base, srv, r->ckpt_id, false, true, -1, msg);
		k8s__submit_get(k, srv);
		return;
	}
	keep_token(ks, srv, r->ckpt_id);
	k8s__settle(k, srv);
	msg = xasprintf("kubelet archive %s (it stays on that node); pod %s deleted, home kept",
			r->node, r->pod_name);
	spawner_checkpoint_done(&k->base, srv, r->ckpt_id, true, false, -1, msg);
}
