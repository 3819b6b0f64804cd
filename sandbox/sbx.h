/*
 * sbx: internals of nbgate-init shared by the files of sandbox/ (not a
 * public interface: the daemon uses sandbox/sandbox.h only).
 *
 * Threading: nbgate-init is single-threaded; nothing here is thread-safe.
 */
#ifndef NBGATE_SANDBOX_SBX_H
#define NBGATE_SANDBOX_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

struct err;
struct pollfd;
struct sock_fprog;

/* ---- fault injection (SBX-14) ---- */

/* The step to fail, set only by nbgate-init built with -DSANDBOX_FAULTS;
 * NULL in production. Borrowed. */
extern const char *sbx_fault_step;
/* true (and errno = EPERM) when step is the one to fail. */
bool sbx_fault(const char *step);

/* ---- cgroups (cgroup.c) ---- */

#define SBX_CG_MAX 4
struct sbx_cgroup {
	int version;              /* 1 or 2 */
	int n;                    /* directories in dirs */
	char *dirs[SBX_CG_MAX];   /* owned: one per v1 controller, or the v2 leaf */
};

/* Creates nbgate/<id> (under each v1 controller, or the v2 tree with
 * memory, cpu and pids enabled) and writes the spec's limits. On failure
 * nothing is left. *out owned: sbx_cgroup_destroy(). Errors start with
 * "cgroup_write: " or "cgroup: ". */
int sbx_cgroup_create(const struct sandbox_spec *s, struct sbx_cgroup *out, struct err **err);
/* Moves pid into every directory of cg. */
int sbx_cgroup_attach(const struct sbx_cgroup *cg, pid_t pid, struct err **err);
/* SIGKILLs what is left (bounded retries), removes the directories and
 * frees cg's strings. Idempotent. */
void sbx_cgroup_destroy(struct sbx_cgroup *cg);
/* Fills cg with the directories of id that would exist (for cleanup). */
void sbx_cgroup_paths(const char *id, struct sbx_cgroup *cg);
/* Number of processes in cg (first directory), -1 if unreadable. */
int sbx_cgroup_count(const struct sbx_cgroup *cg);

/* ---- seccomp (seccomp.c) ---- */

/* Compiles an OCI/Docker JSON profile with libseccomp. *ctx is owned:
 * seccomp_release(). The filter applies to a process with no
 * capabilities (rules whose includes.caps is non-empty are skipped). */
int sbx_seccomp_compile(const char *path, void **ctx, struct err **err);
/* Compiles and exports to BPF once, so that the two loads (server, PID 1)
 * are one syscall each. *out owned (one allocation): free(). */
int sbx_seccomp_bpf(const char *path, struct sock_fprog **out, struct err **err);

/* ---- egress filter (egress.c), in PID 1 ---- */

/* An IPv4/IPv6 address or CIDR ("10.1.2.3", "10.0.0.0/8", "fd00::/8"). */
struct sbx_cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* network order; host bits zero */
	int plen;          /* prefix length; 32/128 for a plain address */
};
/* Parses s strictly (no host bits set, plen in range); 0 or -EINVAL. */
int sbx_cidr_parse(const char *s, struct sbx_cidr *out);
/* In the sandbox's network namespace, with CAP_NET_ADMIN: the routing
 * filter of egress.c's top comment (denied ranges unreachable, spec
 * net_allow punched through). Errors start with "egress: ". */
int sbx_egress_filter(const struct sandbox_spec *s, struct err **err);

/* The ENOSYS prefix for syscalls newer than libseccomp (seccomp.c's
 * comment): writes at most cap instructions to out, returns the count
 * (0 when the profile's default action is allow or log). */
#define SBX_ENOSYS_STUB_MAX 64
struct sock_filter;
int sbx_seccomp_enosys_stub(void *ctx, struct sock_filter *out, int cap);

/* ---- rootfs (mounts.c), in PID 1 ---- */

/* Everything up to and including pivot_root + umount of the old root,
 * hostname and lo up. Errors start with "<step>: ". */
int sbx_rootfs_setup(const struct sandbox_spec *s, struct err **err);
/* Adds user_name to /etc/passwd and /etc/group (inside, after pivot). */
int sbx_rootfs_add_user(const struct sandbox_spec *s, struct err **err);
/* Only the overlay root at s->rootfs, in the caller's mount namespace made
 * private first: what a CRIU restore needs before it rebuilds the rest. */
int sbx_rootfs_overlay(const struct sandbox_spec *s, struct err **err);

/* ---- privilege drop (drop.c) ---- */

/*
 * order: setgroups, bounding set, setresgid, setresuid, capset
 * empty, ambient clear, no_new_privs, close_range(3..) as CLOEXEC, seccomp.
 * No allocation, no logging (runs in the child after fork). On failure
 * returns < 0 and *step names the step (static string), errno is set.
 * close_fds false skips close_range (PID 1 keeps its pipes and sockets).
 */
int sbx_drop_privs(uid_t uid, gid_t gid, const struct sock_fprog *prog, bool close_fds,
		   const char **step);

/* ---- PID 1 (pid1.c) and the shim (shim.c) ---- */

struct sbx_pid1_fds {
	int sync_rd;    /* shim -> pid1: "g" (in the cgroup), "n" (network up) */
	int report_wr;  /* pid1 -> shim: "ok\n" or "failed <step> <reason>\n" */
	int out_wr;     /* the server's stdout+stderr; the shim reads the other
			 * end into the log (no host file inside: CRIU) */
	const struct sock_fprog *seccomp; /* compiled by the shim before clone */
};

/* PID 1: never returns. */
void sbx_pid1_main(const struct sandbox_spec *s, const struct sbx_pid1_fds *fds)
	__attribute__((noreturn));

/* The shim: runs the whole sandbox, returns the exit status for main(). */
int sbx_shim_run(const struct sandbox_spec *s, int status_fd);

/*
 * Restores a checkpointed tree in place of clone + setup: fn (CRIU) runs as
 * the shim's child with the overlay root mounted at s->rootfs, the cgroup
 * created and log_wr the new log pipe, and returns the restored PID 1 (a
 * child of the shim: --restore-sibling). Then the shim runs as after a
 * normal start. A failed restore reports "failed restore <reason>".
 */
typedef int (*sbx_restore_fn)(void *arg, const struct sandbox_spec *s, int log_wr,
			      pid_t *pid1, struct err **err);
int sbx_shim_restore(const struct sandbox_spec *s, int status_fd, sbx_restore_fn fn,
		     void *arg);

/* ---- port forwarding and log relay (fwd.c), PID 1's loop ---- */

struct sbx_fwd;
/* Listening sockets sock_dir/<socket_name> (inside: /run/nbgate/<name>),
 * chown uid:gid, mode 0660. */
int sbx_fwd_new(const struct sandbox_spec *s, const char *dir, struct sbx_fwd **out,
		struct err **err);
void sbx_fwd_free(struct sbx_fwd *f);
/* poll set management: fills pfd (capacity max), returns the count. */
int sbx_fwd_pollfds(struct sbx_fwd *f, struct pollfd *pfd, int max);
/* Handles the revents of the entries sbx_fwd_pollfds filled. */
void sbx_fwd_handle(struct sbx_fwd *f, const struct pollfd *pfd, int n);
/* Closes every forwarded connection (not the listeners): before a CRIU
 * dump, which cannot take a Unix stream socket whose peer (the gateway)
 * stays outside. Clients see EOF and reconnect after the restore. */
void sbx_fwd_drop_conns(struct sbx_fwd *f);

/* Appends data to the log fd, rotating into the .1 fd at SBX_LOG_CAP. */
#define SBX_LOG_CAP (8 << 20)
void sbx_log_append(int log_fd, int old_fd, const char *data, size_t n);

/* Writes all of p (EINTR-safe, no allocation); -1 on error. */
int sbx_write_all(int fd, const void *p, size_t n);
/* Splits "<step>: <reason>" (the convention of errors here): copies the
 * step (one word) into step[cap] and returns the reason; step "" and msg
 * itself when there is no such prefix. */
const char *sbx_err_step(const char *msg, char *step, size_t cap);
/* Microseconds of CLOCK_MONOTONIC. */
int64_t sbx_now_us(void);

#endif
