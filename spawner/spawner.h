/*
 * spawner: per-user server lifecycle behind one ops table (git refs
 * backends, crun cgroup manager, curl vtls).
 *
 * The gateway sees only this header. A `struct spawner` is one backend
 * instance ("process" now; "local" in issue 3, "kubernetes" in issue 5)
 * plus the shared state: the servers it knows, the database rows behind
 * them and the lifecycle state machine of DESIGN.md:
 *
 *   stopped -> starting -> running -> (culling) -> checkpointing ->
 *   suspended -> restoring -> running, plus stopping and failed.
 *
 * Every transition is validated against one table, persisted to the
 * `servers` table BEFORE it takes effect in memory, and then reported to
 * the gateway through cfg->on_event (progress streams, route publishing).
 *
 * Threading: everything here runs on the event-loop thread (the thread
 * that services cfg->lws). Nothing blocks the loop for more than about a
 * millisecond: starts and stops are asynchronous, readiness and exits are
 * noticed on lws_sul timers and reported by event.
 *
 * Dependencies: common/ and libwebsockets only; never gateway/.
 */
#ifndef NBGATE_SPAWNER_SPAWNER_H
#define NBGATE_SPAWNER_SPAWNER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct lws_context;
struct db;
struct spawner;
struct spawner_server;
struct spawner_checkpoint;
struct spawner_k8s_cfg;

enum spawner_state {
	SPAWNER_STOPPED = 0,
	SPAWNER_STARTING,
	SPAWNER_RUNNING,
	SPAWNER_CULLING,
	SPAWNER_CHECKPOINTING,
	SPAWNER_SUSPENDED,
	SPAWNER_RESTORING,
	SPAWNER_STOPPING,
	SPAWNER_FAILED,
	SPAWNER_STATE_COUNT
};

/* Abilities a backend has; callers test bits instead of comparing names. */
enum spawner_caps {
	SPAWNER_CAP_SANDBOX = 1 << 0,    /* servers are isolated from the host */
	SPAWNER_CAP_ADOPT = 1 << 1,      /* re-adopts live servers after restart */
	SPAWNER_CAP_CHECKPOINT = 1 << 2, /* checkpoint/restore supported */
	SPAWNER_CAP_PORT = 1 << 3,       /* upstreams may be host:port */
	SPAWNER_CAP_UNIX = 1 << 4,       /* upstreams may be Unix sockets */
	SPAWNER_CAP_REMOTE = 1 << 5,     /* servers run on other machines: no host
					  * pid or cgroup; adopt asks the backend */
};

/*
 * One lifecycle or progress event. Everything is borrowed and valid only
 * during the on_event call; copy what you keep.
 */
struct spawner_event {
	enum spawner_state state; /* state after the event */
	int progress;             /* 0-100, JupyterHub progress semantics */
	const char *message;      /* human readable, never contains secrets */
	bool ready;               /* server answers: publish its route */
	bool failed;              /* start failed or server died: drop route */
};

/*
 * A launch profile offered to users (config `profiles`; the local and
 * kubernetes backends). A server is started with one profile, chosen by
 * user_options {"profile": name} (default: the first), optionally with
 * {"image": name} from cfg->images. Nothing else in user_options reaches
 * the backend: other keys are a 400 naming the field.
 */
struct spawner_profile {
	const char *name;          /* [a-z0-9-], unique */
	const char *display_name;  /* shown on the spawn form */
	const char *image;         /* image ref in the store ("jupyterlab") */
	int64_t cpu_millis;        /* 1000 = one CPU; 0 = unlimited */
	int64_t memory_bytes;      /* 0 = unlimited */
	int64_t pids_max;          /* 0 = backend default */
	int gpus;                  /* whole GPUs, allocated exclusively */
	const char *gpu_model;     /* "" or NULL = any model */
	const char *network;       /* "none" | "egress" */
};

/* Per-user limits over all of a user's live servers; 0 = unlimited. */
struct spawner_quota {
	int max_servers;
	int64_t max_cpu_millis;
	int64_t max_memory_bytes;
	int max_gpus;
};

/*
 * Configuration, borrowed by spawner_new() for the spawner's lifetime
 * (the pointed-to strings and arrays must outlive the spawner).
 */
struct spawner_cfg {
	struct lws_context *lws;        /* timers run here (lws_sul) */
	struct db *db;                  /* holds the servers table */
	const char *state_dir;          /* absolute; run/ and home/ below it */
	const char *const *server_cmd;  /* argv with {placeholders}, NULL-ended */
	const char *const *server_env;  /* "K=V" extra env, NULL-ended or NULL */
	int64_t spawn_timeout_ms;       /* readiness deadline; 0 = 60000 */
	int64_t stop_timeout_ms;        /* SIGTERM -> SIGKILL grace; 0 = 5000 */
	/* local/kubernetes backends: */
	const struct spawner_profile *profiles; /* n_profiles, first = default */
	int n_profiles;
	const char *const *images;      /* images users may pick, NULL-ended */
	struct spawner_quota quota;
	const char *image_store;        /* images/image.h store directory */
	const char *seccomp_profile;    /* absolute path of the JSON profile */
	uint32_t uid_base;              /* sandbox uid = uid_base + user id */
	const char *gpu_dev_glob;       /* NULL = "/dev/nvidia[0-9]*" (tests
					 * point it at fake nodes) */
	const char *sandbox_fail_step;  /* tests only: the spec's fail_step
					 * (SBX-14 fault injection; honoured
					 * only by nbgate-init-faults); NULL */
	const struct spawner_k8s_cfg *k8s; /* kubernetes backend only; else NULL */
	/*
	 * Called on the event-loop thread after every transition and progress
	 * step. srv is borrowed (see spawner_server_find()). The callback may
	 * call spawner_server_find()/_next() but must not start, stop or remove
	 * servers from inside the callback (defer with a sul instead).
	 */
	void (*on_event)(void *arg, struct spawner_server *srv,
			 const struct spawner_event *ev);
	void *event_arg;
};

/*
 * One image users may pick on Kubernetes (config `kubernetes.images`): the
 * local backend finds its images in the store, a cluster pulls them from a
 * registry, so the command and the rest of what the store's metadata says
 * come from the configuration instead.
 */
struct spawner_k8s_image {
	const char *name;          /* the name in cfg->images ("jupyterlab") */
	const char *ref;           /* registry reference ("reg.example/nbgate/jupyterlab:4.2") */
	const char *const *cmd;    /* argv, NULL-ended; {port} {base_url} {home} {user}
				    * {server} are expanded by nbgate, $(VAR) is left to
				    * the kubelet (NBGATE_POD_IP, NBGATE_SERVER_TOKEN) */
	const char *server_type;   /* "jupyterlab" | "vscode" | "jupyter" */
	bool strip_prefix;         /* server has no base path */
	int port;                  /* TCP port the server listens on in the pod */
	int64_t uid;               /* runAsUser/runAsGroup/fsGroup, never 0 */
	const char *home;          /* where the user's PVC is mounted ("/home/jovyan") */
};

/* Per-profile scheduling on Kubernetes, parallel to cfg->profiles. */
struct spawner_k8s_sched {
	const char *const *node_selector; /* "key=value", NULL-ended or NULL */
	const char *tolerations_json;     /* JSON array of core/v1 Toleration, or NULL */
};

/*
 * Kubernetes backend settings (config `kubernetes`, docs/kubernetes.md).
 * Strings are borrowed like the rest of spawner_cfg; NULL/0 = the default
 * named in the comment.
 */
struct spawner_k8s_cfg {
	const char *kubeconfig;          /* path; NULL = in-cluster service account */
	const char *context;             /* kubeconfig context; NULL = current-context */
	const char *ns;                  /* namespace; NULL = kubeconfig's / the pod's */
	const struct spawner_k8s_image *images; /* n_images, one per cfg->images name */
	int n_images;
	const struct spawner_k8s_sched *sched;  /* n_profiles entries, or NULL */
	const char *storage_class;       /* NULL = the cluster's default class */
	int64_t home_size_bytes;         /* PVC request; 0 = 10 GiB */
	const char *gpu_resource;        /* NULL = "nvidia.com/gpu" */
	const char *gpu_product_label;   /* NULL = "nvidia.com/gpu.product" */
	const char *gpu_taint_key;       /* NULL = "nvidia.com/gpu" (toleration, Exists) */
	const char *seccomp_localhost;   /* NULL = RuntimeDefault; else the Localhost
					  * profile path under the kubelet's seccomp
					  * root ("nbgate/default.json") */
	const char *image_pull_policy;   /* NULL = "IfNotPresent" */
	const char *image_pull_secret;   /* NULL = none */
	const char *gateway_id;          /* label nbgate.io/gateway; NULL = "nbgate" */
	int64_t request_timeout_ms;      /* one API call; 0 = 30000 */
	int64_t max_response_bytes;      /* one API response; 0 = 16 MiB */
	int threads;                     /* API worker threads; 0 = 4 */
	bool checkpoint_kubelet;         /* CRIU through the kubelet checkpoint API */
	const char *checkpoint_image;    /* restore of a kubelet checkpoint: the image
					  * built from its archive, a template with
					  * {pod} {id} {node}; NULL = restores start
					  * fresh (docs/kubernetes.md "Checkpoints") */
};

/* Checkpoint/retention settings, set by the gateway after spawner_new(). */
struct spawner_ckpt_cfg {
	const char *dir;            /* absolute; criu images go below it */
	int keep_per_server;        /* newest N kept; 0 = 3 */
	int64_t user_quota_bytes;   /* all of a user's checkpoints; 0 = none */
	int64_t min_free_bytes;     /* free space left after a dump; 0 = 1 GiB */
	const char *criu_path;      /* NULL = CHECKPOINT_CRIU_DEFAULT_PATH */
	bool criu_usable;           /* set from the probe at startup */
};

/*
 * One (user, server name) pair. Owned by the spawner; the gateway borrows
 * it (valid until spawner_server_remove() on it or spawner_free()) and
 * treats every field as read-only. Look it up again by (user, name) after
 * returning to the event loop rather than caching the pointer long-term.
 */
struct spawner_server {
	int64_t id;              /* servers.id */
	int64_t user_id;
	char *user;              /* normalised user name */
	char *name;              /* "" for the default server */
	char *slug;              /* spawner_slug(user, name) */
	enum spawner_state state;
	char *upstream;          /* "unix:/abs/path.sock" | "127.0.0.1:port" | NULL */
	pid_t pid;               /* 0 when none */
	int64_t pid_start;       /* proc start time (clock ticks since boot) */
	char *home;              /* persistent home directory */
	char *run_dir;           /* per-server runtime dir (socket, log) */
	char *base_url;          /* "/user/<u>/" or "/user/<u>/<s>/" */
	char **env;              /* "K=V" from the gateway (tokens), NULL-ended */
	char *user_options;      /* JSON text, "{}" by default */
	char *profile;           /* profile name, or NULL (process backend) */
	char *server_type;       /* "jupyterlab" | "vscode" | "jupyter" | NULL */
	bool strip_prefix;       /* proxy strips base_url (server has no base path) */
	int64_t started_ms;      /* wall clock of the last start, 0 if never */
	int64_t last_activity_ms;/* wall clock, maintained by the gateway */
	const char *activity_source; /* what set last_activity_ms: a static
				  * string ("proxy", "kernel", "terminal",
				  * "cpu", "gpu", "start", "api"), or NULL */
	char *upstream_auth;     /* Authorization value the proxy adds to every
				  * request to upstream ("token <secret>"), or
				  * NULL: set by backends whose servers are
				  * reachable by others (kubernetes). Secret:
				  * never logged or persisted */
	int progress;            /* last event's progress, for late listeners */
	char *message;           /* last event's message, or NULL */
	struct spawner_server *next; /* spawner's list; use spawner_server_next() */
	void *priv;              /* backend-private per-server state */
};

/*
 * The ops table (STYLE.md "Backend interface"). `size` is the size of the
 * backend's struct, which embeds `struct spawner` first; spawner_new()
 * allocates it zeroed, fills the base and calls init. Every fallible op
 * takes `struct err **err` last. Optional ops may be NULL: the dispatchers
 * then fail with -ENOTSUP.
 *
 *  init     prepare the backend (directories, probes). Required.
 *  start    launch srv (state is already `starting`, persisted). Returns
 *           once launched; reports readiness or failure later by calling
 *           spawner_transition(). Required except in stub backends.
 *  status   1 if the server's process/pod is alive, 0 if not. Optional.
 *  stop     begin stopping srv (state already `stopping`); completion is
 *           reported by spawner_transition(..., SPAWNER_STOPPED). Optional.
 *  adopt    after a gateway restart: srv holds the persisted row; returns
 *           0 and fills srv->priv when the server is still alive and
 *           answering, -ESRCH when it is gone. Optional.
 *  stop_wait  block until every server in `stopping` has stopped, at most
 *           timeout_ms (shutdown only, see spawner_stop_all()). Optional.
 *  server_release  free srv->priv (and stop watching it; never kills).
 *           Optional.
 *  destroy  free backend state (not the struct itself). Optional.
 */
struct spawner_ops {
	const char *name;
	unsigned caps;
	size_t size;
	int (*init)(struct spawner *sp, struct err **err);
	int (*start)(struct spawner *sp, struct spawner_server *srv, struct err **err);
	int (*status)(struct spawner *sp, struct spawner_server *srv, struct err **err);
	int (*stop)(struct spawner *sp, struct spawner_server *srv, struct err **err);
	int (*adopt)(struct spawner *sp, struct spawner_server *srv, struct err **err);
	void (*stop_wait)(struct spawner *sp, int64_t timeout_ms);
	void (*server_release)(struct spawner *sp, struct spawner_server *srv);
	void (*destroy)(struct spawner *sp);
	/*
	 * checkpoint  begin checkpointing srv (state already `checkpointing`,
	 *          ck->id is the catalog row in state 'writing'). Completion:
	 *          spawner_checkpoint_done(). Optional (no CAP_CHECKPOINT).
	 * restore  begin restoring srv from ck (state already `restoring`).
	 *          Completion: spawner_restore_done(). Optional.
	 * checkpoint_size  bytes a dump of srv would write (memory in use), for
	 *          the disk checks before a dump; -1 unknown. Optional.
	 */
	int (*checkpoint)(struct spawner *sp, struct spawner_server *srv,
			  const struct spawner_checkpoint *ck, struct err **err);
	int (*restore)(struct spawner *sp, struct spawner_server *srv,
		       const struct spawner_checkpoint *ck, struct err **err);
	int64_t (*checkpoint_size)(struct spawner *sp, struct spawner_server *srv);
	/*
	 * checkpoint_forget  delete the files behind ck before its row goes
	 *          (criu: the image dir, the backend may own the privileges;
	 *          commit: the committed image in the store). Optional: without
	 *          it criu dirs are removed in-process (below ckpt.dir only,
	 *          spawner/ckpt_internal.h) and commit images are left in the
	 *          store. An error keeps the row ('broken', saying why).
	 */
	int (*checkpoint_forget)(struct spawner *sp, const struct spawner_checkpoint *ck,
				 struct err **err);
	/*
	 * poll     runs the backend's completions on the loop thread: backends
	 *          that work on threads of their own (kubernetes: API calls,
	 *          watches) wake the loop with lws_cancel_service(cfg->lws),
	 *          and the gateway calls spawner_poll() when it wakes. Optional.
	 */
	void (*poll)(struct spawner *sp);
};

/* The base every backend embeds first. Fields are the spawner's own. */
struct spawner {
	const struct spawner_ops *ops;
	struct spawner_cfg cfg;          /* copy; pointers inside are borrowed */
	struct spawner_server *servers;  /* singly linked, owned */
	struct spawner_ckpt_cfg ckpt;    /* spawner_set_ckpt_cfg(); borrowed strings */
};

/* ---- the backend registry (spawner.c) ---- */

extern const struct spawner_ops spawner_process_ops;
extern const struct spawner_ops spawner_local_ops;
extern const struct spawner_ops spawner_k8s_ops;

/*
 * The ops of the backend called `name` ("process", "local",
 * "kubernetes"), or NULL when no backend has that name. Stub backends
 * (not built yet) are returned too; their init fails with a clear message.
 */
const struct spawner_ops *spawner_backend_find(const char *name);

/*
 * Creates a spawner for `backend_name` with cfg (borrowed, see struct
 * spawner_cfg). Loads nothing from the database yet: call
 * spawner_adopt_all() next. On success *out is owned by the caller, free
 * with spawner_free(). Errors: EINVAL unknown backend or bad cfg,
 * ENOTSUP backend not built/implemented, anything from the backend init.
 * Event-loop thread.
 */
int spawner_new(const char *backend_name, const struct spawner_cfg *cfg,
		struct spawner **out, struct err **err);

/*
 * Same with an explicit ops table: for fakes and decorators in tests
 * (tests/helpers) that are not in the registry.
 */
int spawner_new_ops(const struct spawner_ops *ops, const struct spawner_cfg *cfg,
		    struct spawner **out, struct err **err);

/*
 * Frees the spawner and its in-memory servers. Running servers are left
 * running (their rows say so) so the next gateway start re-adopts them;
 * call spawner_stop_all() first for a full shutdown. Safe on NULL.
 */
void spawner_free(struct spawner *sp);

/* ---- lifecycle for the gateway ---- */

/*
 * Checks user_options (JSON text; NULL or "" = {}) against the backend's
 * allow-lists before a start, so that the gateway can answer 400 at once:
 * only "profile" (a name in cfg->profiles) and "image" (a name in
 * cfg->images) are accepted, both strings. Backends configured without
 * profiles and images (process) accept anything (they ignore options).
 * Errors: EINVAL (HTTP 400) naming the field, e.g.
 * "user_options.gpu: unknown option (allowed: profile, image)" or
 * "user_options.profile: unknown profile 'x' (allowed: small, gpu)".
 * Event-loop thread (reads cfg only).
 */
int spawner_check_user_options(struct spawner *sp, const char *json, struct err **err);

/*
 * Starts (user, server_name). Reuses the server's row, or inserts one.
 * user_options_json (may be NULL = "{}") is stored verbatim; env is a
 * NULL-ended "K=V" list (may be NULL) copied for the server's environment
 * (its API token and the like). The state becomes `starting` and the
 * backend launches the server; this returns once it is launched, and
 * readiness (ready=true) or failure (failed=true) arrives later by event.
 * *out (may be NULL) receives the borrowed server.
 *
 * Errors: EALREADY already starting/running (HTTP 400-ish in JupyterHub
 * terms: "already running"), EBUSY in another transitional state (409),
 * EEXIST the name's slug belongs to another (user, server), EINVAL bad
 * name, anything from the database or the backend (the server is then
 * `failed` with the reason in srv->message). Event-loop thread.
 */
int spawner_server_start(struct spawner *sp, int64_t user_id, const char *user,
			 const char *server_name, const char *user_options_json,
			 const char *const *env, struct spawner_server **out,
			 struct err **err);

/*
 * Begins stopping (user, server): state `stopping`, SIGTERM (process) and
 * SIGKILL after the grace period; `stopped` arrives by event. A server that
 * is already stopped/failed: returns 0 and does nothing. Errors: ENOENT no
 * such server, EBUSY checkpointing/restoring, database errors.
 * Event-loop thread.
 */
int spawner_server_stop(struct spawner *sp, const char *user, const char *server,
			struct err **err);

/*
 * Forgets (user, server): deletes its row and frees the in-memory server.
 * Only when stopped or failed. Errors: ENOENT, EBUSY not stopped,
 * database errors. Invalidates pointers to that server.
 */
int spawner_server_remove(struct spawner *sp, const char *user, const char *server,
			  struct err **err);

/*
 * Stops every live server and waits for them (bounded by the stop
 * timeout). For shutdown and tests only: it blocks the calling thread.
 */
void spawner_stop_all(struct spawner *sp);

/*
 * The server (user, server) or NULL. Borrowed: valid until
 * spawner_server_remove() on it or spawner_free().
 */
struct spawner_server *spawner_server_find(struct spawner *sp, const char *user,
					   const char *server);

/*
 * Iteration over all known servers (any state): pass NULL for the first,
 * the previous one for the next; NULL at the end. Do not remove servers
 * while iterating. Borrowed pointers as for spawner_server_find().
 */
struct spawner_server *spawner_server_next(struct spawner *sp,
					   struct spawner_server *prev);

/*
 * Startup: loads every row of the servers table into memory. Rows in
 * starting/running/culling are checked with the backend's adopt op
 * (process: pid + start time alive and the socket answers); a live one
 * goes (back) to running with a ready event so the gateway publishes its
 * route, a dead one becomes stopped ("server was not running after
 * gateway restart"). Rows left in stopping are finished (killed if alive)
 * and become stopped; other transitional rows become failed. Call once,
 * after spawner_new(). Errors: database errors. Event-loop thread.
 */
int spawner_adopt_all(struct spawner *sp, struct err **err);

/*
 * Records activity (wall-clock ms) for culling, and which source saw it
 * (static string, see struct spawner_server; NULL keeps the old one).
 * Ignored when now_ms is not newer. Not persisted on every call.
 */
void spawner_server_touch(struct spawner *sp, struct spawner_server *srv,
			  int64_t now_ms, const char *source);

/*
 * Replaces srv's environment ("K=V", NULL-ended, copied) for its next start:
 * the gateway gives a server loaded from the database (no env in memory)
 * one before a resume, which may fall back to a fresh start.
 */
void spawner_server_set_env(struct spawner_server *srv, const char *const *env);

/* ---- checkpoints (issue 4; DESIGN.md "Checkpoint") ---- */

/*
 * How a server is put away. criu: process images (kernels keep their
 * memory); commit: the server's upper dir becomes an image layer (files
 * and installed packages kept, kernels restarted); stop: a plain stop that
 * keeps the home. A failing mode falls back to the next one in that order.
 */
enum spawner_ckpt_mode {
	SPAWNER_CKPT_CRIU = 0,
	SPAWNER_CKPT_COMMIT,
	SPAWNER_CKPT_STOP,
	SPAWNER_CKPT_MODE_COUNT
};

/* "criu", "commit", "stop"; "unknown" out of range. Static storage. */
const char *spawner_ckpt_mode_name(enum spawner_ckpt_mode mode);
/* Parses a mode name; -1 when unknown. */
int spawner_ckpt_mode_parse(const char *name);

/* One row of the checkpoints table. Strings owned by the struct. */
struct spawner_checkpoint {
	int64_t id;
	int64_t server_id;
	enum spawner_ckpt_mode mode;
	char *state;        /* "writing" | "ready" | "restored" | "broken" */
	char *path;         /* criu: image dir (0700, root); commit: image ref */
	int64_t size_bytes;
	int64_t created_ms;
	char *image;        /* image ref the server ran (a checkpoint is tied to it) */
	char *profile;      /* profile name the server ran with */
	char *reason;       /* "manual", "idle for 3600 s", ... */
	char *message;      /* why it is broken, fallbacks taken; or NULL */
};

void spawner_set_ckpt_cfg(struct spawner *sp, const struct spawner_ckpt_cfg *cfg);

/*
 * Begins checkpointing (user, server) with `mode` because of `reason`
 * (borrowed; "manual", "idle ..."): running/culling -> checkpointing, a
 * catalog row in state 'writing', then the backend's checkpoint op. The
 * outcome arrives by event: `suspended` (criu/commit) or `stopped` (stop,
 * or every fallback failed into a plain stop), or back to `running` when
 * the dump failed before anything was touched. Refused BEFORE anything
 * starts (no row, no state change) when the disk checks fail: ENOSPC, HTTP
 * 507, naming the free space, the estimate and the quota.
 * Errors: ENOENT (404), EBUSY not running (409), ENOSPC (507), ENOTSUP
 * backend cannot checkpoint and mode != stop (409), database errors.
 * Event-loop thread.
 */
int spawner_server_checkpoint(struct spawner *sp, const char *user, const char *server,
			      enum spawner_ckpt_mode mode, const char *reason,
			      struct err **err);

/*
 * Begins resuming (user, server) from its newest usable checkpoint:
 * suspended -> restoring -> running (ready event), or, when the restore
 * fails, a plain start (restoring -> starting) whose messages say why.
 * Idempotent: 0 and nothing done when already restoring/starting/running,
 * so every held request may call it. Errors: ENOENT no such server, EBUSY
 * (409) checkpointing or stopping, EINVAL (409) stopped/failed (start it
 * instead). Event-loop thread.
 */
int spawner_server_resume(struct spawner *sp, const char *user, const char *server,
			  struct err **err);

/* For backends: the checkpoint ck of srv finished. ok: srv is gone and the
 * row becomes 'ready' with size_bytes; state -> suspended. !ok: the row is
 * deleted (and its files), srv stays/returns to running when `alive`, else
 * the next fallback mode is tried. message is borrowed. */
void spawner_checkpoint_done(struct spawner *sp, struct spawner_server *srv, int64_t ckpt_id,
			     bool ok, bool alive, int64_t size_bytes, const char *message);

/* For backends: the restore of srv from ckpt_id finished. ok: srv runs
 * (pid/upstream set by the backend), row -> 'restored', state running.
 * !ok: row -> 'broken' with message, then a plain start (fallback). */
void spawner_restore_done(struct spawner *sp, struct spawner_server *srv, int64_t ckpt_id,
			  bool ok, const char *message);

/*
 * The checkpoints of srv, newest first. *out owned: free with
 * spawner_checkpoints_free(). Errors: database errors.
 */
int spawner_checkpoints_list(struct spawner *sp, const struct spawner_server *srv,
			     struct spawner_checkpoint **out, int *n, struct err **err);
void spawner_checkpoints_free(struct spawner_checkpoint *v, int n);

/*
 * Deletes checkpoint `id` of srv (row and files). EBUSY (409) when it is
 * the checkpoint a suspended srv would resume from or a restore is using
 * it; ENOENT (404) when srv has no such checkpoint.
 */
int spawner_checkpoint_delete(struct spawner *sp, struct spawner_server *srv, int64_t id,
			      struct err **err);

/* ---- state machine (shared with the backends) ---- */

/* "stopped", "starting", ...; "unknown" out of range. Static storage. */
const char *spawner_state_name(enum spawner_state state);
/* Parses a state name; -1 when unknown. */
int spawner_state_parse(const char *name);
/* True if the lifecycle table allows from -> to. */
bool spawner_transition_allowed(enum spawner_state from, enum spawner_state to);
/* True for starting/running/culling/checkpointing/restoring/stopping. */
bool spawner_state_is_live(enum spawner_state state);

/*
 * Moves srv to `to`: validates the transition (illegal -> EINVAL and
 * nothing changes), persists state, message, pid, pid_start, upstream and
 * started to the servers row, then updates srv and emits an event with
 * `message` (borrowed, may be NULL) and a progress/ready/failed derived
 * from `to` (running => ready, failed => failed). If persisting fails
 * nothing changes in memory. Event-loop thread.
 */
int spawner_transition(struct spawner *sp, struct spawner_server *srv,
		       enum spawner_state to, const char *message, struct err **err);

/* Emits a progress event (no state change); message is borrowed. */
void spawner_progress(struct spawner *sp, struct spawner_server *srv, int progress,
		      const char *message);

/*
 * For backends: persists srv's pid, pid_start and upstream without a
 * state change (once the process exists and its pid is known).
 */
int spawner__persist(struct spawner *sp, struct spawner_server *srv, struct err **err);

/* ---- dispatchers ---- */

static inline int spawner_start(struct spawner *sp, struct spawner_server *srv,
				struct err **err)
{
	if (!sp->ops->start)
		return err_set(err, ENOTSUP, "backend '%s' cannot start servers", sp->ops->name);
	return sp->ops->start(sp, srv, err);
}

static inline int spawner_status(struct spawner *sp, struct spawner_server *srv,
				 struct err **err)
{
	if (!sp->ops->status)
		return err_set(err, ENOTSUP, "backend '%s' has no status", sp->ops->name);
	return sp->ops->status(sp, srv, err);
}

static inline int spawner_stop(struct spawner *sp, struct spawner_server *srv,
			       struct err **err)
{
	if (!sp->ops->stop)
		return err_set(err, ENOTSUP, "backend '%s' cannot stop servers", sp->ops->name);
	return sp->ops->stop(sp, srv, err);
}

static inline int spawner_adopt(struct spawner *sp, struct spawner_server *srv,
				struct err **err)
{
	if (!sp->ops->adopt)
		return err_set(err, ENOTSUP, "backend '%s' cannot adopt servers", sp->ops->name);
	return sp->ops->adopt(sp, srv, err);
}

/* Loop thread, on every wake-up (LWS_CALLBACK_EVENT_WAIT_CANCELLED). */
static inline void spawner_poll(struct spawner *sp)
{
	if (sp && sp->ops->poll)
		sp->ops->poll(sp);
}

static inline bool spawner_has_cap(const struct spawner *sp, unsigned cap)
{
	return (sp->ops->caps & cap) == cap;
}

#endif
