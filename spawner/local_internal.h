/*
 * spawner/local_internal: what local.c shares with local_ckpt.c (the local
 * backend's checkpoint and restore ops). Not an interface for anyone else.
 */
#ifndef NBGATE_SPAWNER_LOCAL_INTERNAL_H
#define NBGATE_SPAWNER_LOCAL_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "spawner/spawner.h"
#include "spawner/supervise.h"

#define LOCAL_STATUS_MAX 1024

struct local_job;

struct local_gpu {
	char *dev;    /* host device node, e.g. /dev/nvidia0 */
	int index;    /* N of nvidiaN */
	char *model;  /* from nvidia-smi, or NULL */
	char *uuid;   /* from nvidia-smi, or NULL */
};

struct spawner_local {
	struct spawner base;
	struct local_gpu *gpus;
	int n_gpus;
	char *init_path;
	char *seccomp;          /* default profile path when cfg names none */
	struct local_job *jobs; /* dumps, commits, reports in flight (local_ckpt.c) */
};

/* Backend state of one server (srv->priv). */
struct local_server {
	struct spawner_watch w; /* first: spawner_watch_stop_wait() */
	int status_fd;          /* read end of the shim's fd 3, or -1 */
	char status[LOCAL_STATUS_MAX];
	size_t status_len;
	int64_t launched_ms;    /* monotonic */
	char *rootfs;
	char *spec_path;
	int64_t ckpt_id;        /* restoring from this checkpoint, else 0 */
	enum spawner_ckpt_mode ckpt_mode;
};

struct local_job;
/* Frees every job in flight (backend destroy). */
void local__jobs_free(struct spawner_local *sl);

/* sp as the local backend; aborts on any other (a bug). */
struct spawner_local *spawner_local_from(struct spawner *sp);

/* A watched local_server for the shim `pid` (srv->priv = it). */
struct local_server *local__server_new(struct spawner *sp, struct spawner_server *srv, pid_t pid,
				       int64_t pid_start, bool ours);
/* The backend's server_release op: frees srv->priv. */
void local__release(struct spawner *sp, struct spawner_server *srv);
/* Removes what a sandbox leaves once its shim is gone (spec_path: unlink). */
void local__cleanup(struct spawner *sp, struct spawner_server *srv, const char *spec_path);
/* Starts nbgate-init with argv (NULL-ended, argv[0] = init path); fd 3 is
 * the status pipe, whose read end lands in *status_fd. */
int local__launch_shim(struct spawner_server *srv, const char *const *argv, pid_t *pid,
		       int *status_fd, struct err **err);
/* local_start with the image `image` instead of the one the options name
 * (a committed checkpoint image); NULL = the usual one. */
int local__start_image(struct spawner *sp, struct spawner_server *srv, const char *image,
		       struct err **err);

/* local_ckpt.c: the ops. */
int local__checkpoint(struct spawner *sp, struct spawner_server *srv,
		      const struct spawner_checkpoint *ck, struct err **err);
int local__restore(struct spawner *sp, struct spawner_server *srv,
		   const struct spawner_checkpoint *ck, struct err **err);
int64_t local__checkpoint_size(struct spawner *sp, struct spawner_server *srv);
int local__checkpoint_forget(struct spawner *sp, const struct spawner_checkpoint *ck,
			     struct err **err);
/* Watch hooks for a restore: the restored server answers / ended. */
void local__restore_ready(struct spawner_watch *w);
bool local__ended_ckpt(struct spawner_watch *w);

#endif
