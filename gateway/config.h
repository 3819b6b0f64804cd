/*
 * gateway/config: the gateway's settings (struct gw_cfg) and their table.
 *
 * gw_cfg_load() applies defaults, then the JSON file (if given), then
 * NBGATE_* environment overrides (NBGATE_LISTEN, NBGATE_TLS_CERT, ...),
 * validates everything and derives computed values (public_url,
 * access_log path, cookie_secure). After that the struct is immutable and
 * is passed explicitly (no globals). Keys in the file are the field names.
 * Sizes accept "16KiB"/"1MiB"/"1GiB" or digits; durations "500ms", "10s",
 * "2m", "1h", "7d" or digits (ms). Startup thread only.
 */
#ifndef NBGATE_GATEWAY_CONFIG_H
#define NBGATE_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cfg.h"
#include "spawner/spawner.h"

struct cJSON;
struct err;

enum gw_log_level { GW_LOG_ERROR, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };
enum gw_log_format { GW_LOG_TEXT, GW_LOG_JSON };
enum gw_url_mode { GW_URL_PATH, GW_URL_SUBDOMAIN };
enum gw_spawner { GW_SPAWNER_PROCESS, GW_SPAWNER_LOCAL, GW_SPAWNER_KUBERNETES };

/* The gateway's own pages and API live under this fixed prefix. */
#define GW_HUB_PREFIX "/hub/"

/*
 * Idle-culling rules (config `cull`; a profile's `cull` overrides some of
 * them for servers started with that profile). Times are ms in memory,
 * seconds in the file. A server is culled when it has been idle (every
 * activity source quiet, gateway/activity.h) for idle_timeout_ms, or
 * when max_age_ms > 0 and it started that long ago.
 */
struct gw_cull_rules {
	int64_t idle_timeout_ms;       /* 0 = never culled for idleness */
	int64_t max_age_ms;            /* 0 = no age limit */
	int action;                    /* enum spawner_ckpt_mode */
	bool named_servers;            /* cull named servers too */
	bool tensorboards;             /* cull server_type "tensorboard" */
	int64_t interval_ms;           /* how often the culler looks; global only */
	double cpu_threshold;          /* percent of one CPU that counts as active */
	double gpu_threshold;          /* GPU utilisation percent that counts */
};

/* Which members of a profile's override are set (struct gw_cull_override). */
enum gw_cull_key {
	GW_CULL_IDLE_TIMEOUT = 1 << 0,
	GW_CULL_MAX_AGE = 1 << 1,
	GW_CULL_ACTION = 1 << 2,
	GW_CULL_NAMED_SERVERS = 1 << 3,
	GW_CULL_TENSORBOARDS = 1 << 4,
	GW_CULL_INTERVAL = 1 << 5,
	GW_CULL_CPU_THRESHOLD = 1 << 6,
	GW_CULL_GPU_THRESHOLD = 1 << 7,
};

/* A profile's `cull` object: only the members named in `set` apply. */
struct gw_cull_override {
	unsigned set;                  /* enum gw_cull_key bits */
	struct gw_cull_rules v;
};

struct gw_cfg {
	/* listening */
	char *listen;                  /* "host:port" or "[v6]:port" */
	char *public_url;              /* after load: never "", no trailing '/' */
	char *state_dir;
	int log_level;                 /* enum gw_log_level (same order as log.h) */
	int log_format;                /* enum gw_log_format */
	char *access_log;              /* after load: a path, or "-" = stderr */
	char *tls_cert;                /* "" = no TLS */
	char *tls_key;
	char *http_redirect_listen;    /* "" = off */
	int url_mode;                  /* enum gw_url_mode */
	char *domain;                  /* required in subdomain mode */

	/* HTTP limits */
	uint64_t header_bytes;
	uint64_t header_line;
	uint64_t request_line;
	int64_t header_count;
	uint64_t api_body_max;
	uint64_t proxy_body_max;
	uint64_t ws_message_max;
	int64_t header_timeout;        /* ms */
	int64_t body_idle_timeout;     /* ms */
	uint64_t body_min_rate;        /* bytes/s, enforced after 10 s */
	int64_t keepalive_timeout;     /* ms */
	int64_t keepalive_max_requests;
	int64_t upstream_connect_timeout; /* ms */
	int64_t max_conns;
	int64_t max_conns_per_ip;

	/* auth */
	int64_t session_idle_timeout;     /* ms */
	int64_t session_absolute_timeout; /* ms */
	int64_t token_max_expires_in;     /* ms, 0 = unlimited */
	int64_t login_max_failures;
	int64_t login_backoff_base;       /* ms */
	int64_t login_backoff_max;        /* ms */
	int64_t token_guess_limit;        /* failures per token_guess_window */
	int64_t token_guess_window;       /* ms */
	int64_t hash_concurrency;
	int64_t worker_threads;
	bool cookie_secure;               /* default: true when TLS is on */

	/* servers */
	int spawner;                   /* enum gw_spawner */
	char **server_cmd;             /* NULL-terminated; {sock} {base_url} {home} ... */
	char **server_env;             /* "NAME=VALUE", names from an allow-list */
	int64_t spawn_timeout;         /* ms */
	char **cors_origins;
	char **admin_users;

	/* local backend (issue 3); see config_local.c */
	struct spawner_profile *profiles; /* n_profiles (>= 1), strings owned */
	int n_profiles;
	char **images;                 /* image names users may pick */
	struct spawner_quota quota;    /* per user; 0 = unlimited */
	char *image_store;             /* absolute directory */
	char *seccomp_profile;         /* after load: absolute path */
	int64_t sandbox_uid_base;      /* sandbox uid = base + user id */

	/* checkpoints (issue 4) */
	char *criu_path;               /* absolute; CRIU >= 4.2 (`make criu`) */
	char *checkpoint_dir;          /* after load: absolute (default <state_dir>/checkpoints) */
	int64_t checkpoint_keep;       /* newest N kept per server, >= 1 */
	uint64_t checkpoint_user_quota;/* bytes over all of a user's checkpoints; 0 = none */
	uint64_t checkpoint_min_free;  /* bytes that must stay free after a dump, >= 1 */

	/* idle culling (issue 4); see config_local.c and gw_cfg_cull_rules() */
	struct gw_cull_rules cull;     /* global rules (config `cull`) */
	struct gw_cull_override *profile_cull; /* n_profiles, parallel to profiles */

	/* kubernetes backend (issue 5); see config_k8s.c */
	struct spawner_k8s_cfg k8s;    /* config `kubernetes`: defaults filled in,
					* strings and images owned; k8s.sched
					* points at profile_sched after finish */
	struct spawner_k8s_sched *profile_sched; /* n_profiles, parallel to
					* profiles (node_selector, tolerations) */

	/* derived by gw_cfg_load, not settings */
	bool tls;                      /* tls_cert and tls_key set */
	bool cookie_secure_set;        /* cookie_secure came from file/env */
};

/* The table behind struct gw_cfg (NULL-name terminated). */
extern const struct cfg_entry gw_cfg_table[];

/*
 * Loads the configuration. c is zeroed first. path_or_null: JSON file or
 * NULL for defaults + env only. On error c holds nothing to free (it is
 * released). Errors are EINVAL (bad value), errno of reading the file.
 */
int gw_cfg_load(struct gw_cfg *c, const char *path_or_null, struct err **err);

/*
 * Cross-field validation and derivation (tls both-or-neither, subdomain
 * needs domain, public_url, access_log, cookie_secure). gw_cfg_load()
 * calls it; exposed for tests and --set.
 */
int gw_cfg_finish(struct gw_cfg *c, struct err **err);

/* Pretty JSON with secrets redacted (for --print-config). Caller frees. */
char *gw_cfg_print(const struct gw_cfg *c);

/* Splits c->listen into host (owned) and port. EINVAL on bad syntax. */
int gw_cfg_split_listen(const char *listen, char **host, int *port,
			struct err **err);

/* Frees owned members; c can be loaded again. NULL-safe. */
void gw_cfg_free(struct gw_cfg *c);

/*
 * Fills the local/kubernetes fields of sc (profiles, images, quota,
 * image_store, seccomp_profile, uid_base, and k8s = &c->k8s when spawner
 * is kubernetes, else NULL) from c. Everything is borrowed from c, which
 * must outlive the spawner. Cannot fail.
 */
void gw_cfg_spawner_fill(const struct gw_cfg *c, struct spawner_cfg *sc);

/* The profile called name, or NULL. Borrowed from c. */
const struct spawner_profile *gw_cfg_profile_find(const struct gw_cfg *c, const char *name);

/* Image name syntax of the store: [a-z0-9][a-z0-9._-]*, at most 64. */
bool gw_cfg_image_name_ok(const char *s);

/* True when name is in c->images. */
bool gw_cfg_image_allowed(const struct gw_cfg *c, const char *name);

/*
 * The culling rules for a server started with profile `profile` (NULL or
 * unknown: the global rules): c->cull with that profile's override
 * applied. *out is a plain copy. Cannot fail; any thread (c is immutable).
 */
void gw_cfg_cull_rules(const struct gw_cfg *c, const char *profile, struct gw_cull_rules *out);

/* ---- JSON-valued settings (config_local.c; used by config.c) ---- */

/*
 * Settings whose value is a JSON array or object ("profiles", "quota",
 * "cull")
 * and so do not fit common/cfg's scalar types. Each has a default, a file
 * form (the JSON value) and an env form (NBGATE_PROFILES / NBGATE_QUOTA /
 * NBGATE_CULL holding the same JSON text). Errors name the key and the element
 * ("profiles[1].cpu: ...").
 */
struct gw_cfg_json_entry {
	const char *name;
	const char *def;  /* JSON text */
	int (*parse)(struct gw_cfg *c, const struct cJSON *v, struct err **err);
	struct cJSON *(*print)(const struct gw_cfg *c);
	const char *help;
};

extern const struct gw_cfg_json_entry gw_cfg_json_table[];

/* The entry called name, or NULL. */
const struct gw_cfg_json_entry *gw_cfg_json_find(const char *name);

/* Applies the defaults of gw_cfg_json_table. Fails only on a table bug. */
int gw_cfg_json_defaults(struct gw_cfg *c, struct err **err);

/* Sets entry e from JSON text (env form); the error names `where`. */
int gw_cfg_json_set_text(struct gw_cfg *c, const struct gw_cfg_json_entry *e,
			 const char *text, const char *where, struct err **err);

/* Cross-field checks of the local settings (profiles within the quota)
 * and the seccomp_profile default (next to the executable). */
int gw_cfg_local_finish(struct gw_cfg *c, struct err **err);

/* Frees what gw_cfg_json_table's parsers allocated. */
void gw_cfg_json_free(struct gw_cfg *c);

/* ---- kubernetes settings (config_k8s.c) ---- */

/*
 * Parses the `kubernetes` object (file key or NBGATE_KUBERNETES) into
 * c->k8s, replacing what was there, with every default filled in (images
 * by their server_type: cmd, port, uid 1000, home /home/jovyan). Unknown
 * keys, wrong types and values out of range are EINVAL naming the field
 * ("kubernetes.images[0].uid: must not be 0 ..."); c is unchanged then.
 */
int gw_cfg_k8s_parse(struct gw_cfg *c, const struct cJSON *v, struct err **err);

/* c->k8s as the JSON object gw_cfg_k8s_parse() reads (--print-config).
 * Caller owns the result. */
struct cJSON *gw_cfg_k8s_print(const struct gw_cfg *c);

/* Frees c->k8s and c->profile_sched (n_profiles entries). NULL-safe members. */
void gw_cfg_k8s_free(struct gw_cfg *c);

/*
 * At the end of loading: points c->k8s.sched at c->profile_sched, and when
 * spawner is kubernetes checks that every name in `images` and every
 * profile's image has a kubernetes.images entry, then runs the backend's
 * k8s_check_cfg() on the spawner configuration gw_cfg_spawner_fill()
 * gives. Errors: EINVAL naming the field.
 */
int gw_cfg_k8s_finish(struct gw_cfg *c, struct err **err);

/*
 * A profile key that belongs to kubernetes scheduling: "node_selector"
 * (object of label key -> label value, stored as "key=value") or
 * "tolerations" (list of core/v1 Toleration objects with only key,
 * operator, value, effect, tolerationSeconds; stored as compact JSON)
 * into s, replacing an earlier value. where names the field
 * ("profiles[0].tolerations"). Returns 1 when it was one of them, 0 when
 * it is another key (nothing done), -EINVAL on a bad value.
 */
int gw_cfg_k8s_profile_key(struct spawner_k8s_sched *s, const struct cJSON *it,
			   const char *where, struct err **err);

/* Adds s's node_selector/tolerations (those that are set) to object o. */
void gw_cfg_k8s_sched_print(const struct spawner_k8s_sched *s, struct cJSON *o);

/* Frees n entries of v and v itself; NULL is fine. */
void gw_cfg_k8s_sched_free(struct spawner_k8s_sched *v, int n);

#endif
