/*
 * sandbox: the local container runtime (DESIGN.md "Local backend").
 *
 * A sandbox is described by a spec (struct sandbox_spec), written by the
 * daemon as a root-only JSON file in the server's run dir and executed by
 * the `nbgate-init` binary. nbgate-init runs as root and has two roles
 * (the conmon/crun split, in one binary):
 *
 *   shim    the process the daemon starts (its own session). Creates the
 *           cgroup and its limits, clones PID 1 into new mount, pid, ipc,
 *           uts, net and cgroup namespaces, moves it into the cgroup,
 *           starts user-mode networking for `egress`, reports progress on
 *           the status fd, then waits for PID 1, forwards SIGTERM to it and
 *           cleans up (unmounts the rootfs, removes the cgroup). Its exit
 *           status is the server's (code, or 128+signal); 125 means setup
 *           failed, with one line "nbgate-init: <step>: <reason>" on
 *           stderr and a "failed <step> <reason>" line on the status fd.
 *   init    PID 1 inside: overlay root from the image layers + the upper
 *           dir, binds (home, socket dir, devices, driver libraries),
 *           fresh /proc, minimal /dev, /dev/shm and /tmp tmpfs, masked and
 *           read-only paths, pivot_root, hostname, loopback up; then forks
 *           the server, which drops privileges in the runc/crun order
 *           (setgroups, bounding set, setresgid, setresuid, capset, ambient,
 *           no_new_privs, close_range, seccomp) and execs. PID 1 then drops
 *           its own privileges the same way, reaps every child, relays the
 *           server's stdout/stderr (a pipe) into the log file, forwards the
 *           spec's TCP ports to Unix sockets in the socket dir, and on
 *           SIGTERM signals the server, waits the grace period and kills
 *           what is left.
 *
 * Why a spec file and a separate binary: the daemon is multi-threaded and
 * must not do namespace/mount work after fork; and the spec is the typed,
 * validated request the privileged helper of DESIGN.md "Privilege
 * separation" will accept, so that split needs no new interface.
 *
 * Status fd protocol (fd 3 of the shim, closed by the shim before the
 * server is exec'd, so a gateway restart never breaks it), one line each:
 *   "up <setup_us>\n"            sandbox set up, server about to exec
 *   "failed <step> <reason>\n"   setup failed at <step> (shim exits 125)
 *
 * Threading: the functions here are plain library calls, any thread.
 */
#ifndef NBGATE_SANDBOX_SANDBOX_H
#define NBGATE_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct err;

enum sandbox_net {
	SANDBOX_NET_NONE = 0, /* own namespace, loopback only */
	SANDBOX_NET_EGRESS,   /* + outbound through pasta (or slirp4netns) */
};

/* A TCP port inside the sandbox exposed as a Unix socket in sock_dir. */
struct sandbox_port {
	int port;            /* 1..65535, on 127.0.0.1 inside */
	char *socket_name;   /* file name in sock_dir, e.g. "port-6006.sock" */
};

struct sandbox_spec {
	char *id;              /* [a-z0-9-], <= 63: cgroup leaf and hostname */
	char *rootfs;          /* absolute, empty dir: the overlay mount point */
	char **lower;          /* image layer dirs, TOP first, NULL-ended */
	char *upper;           /* overlay upper dir (per server, persistent) */
	char *work;            /* overlay work dir (same filesystem as upper) */
	char *home_src;        /* host dir of the user's persistent home */
	char *home_dst;        /* path inside, e.g. "/home/jovyan" */
	char *sock_dir;        /* host dir, owned by uid: appears as /run/nbgate */
	char *log_path;        /* host file the server's output is appended to */
	uid_t uid;             /* != 0 */
	gid_t gid;             /* != 0 */
	char *user_name;       /* passwd name inside (an entry is added) */
	char **argv;           /* server command, argv[0] absolute inside */
	char **env;            /* "K=V", the whole environment, NULL-ended */
	char *cwd;             /* inside; NULL = home_dst */
	int64_t memory_bytes;  /* 0 = no limit */
	int64_t cpu_millis;    /* 1000 = one CPU; 0 = no limit */
	int64_t pids_max;      /* 0 = no limit */
	int64_t nofile;        /* RLIMIT_NOFILE; 0 = 4096 */
	enum sandbox_net net;
	char **net_allow;      /* egress only: IPv4/IPv6 addresses or CIDRs
				* reachable although in a denied range
				* (private, link-local/metadata, CGNAT, ULA;
				* docs/sandbox.md), e.g. the DNS resolvers and
				* the hub API; NULL-ended, NULL = none */
	char *seccomp_profile; /* absolute path of an OCI/Docker JSON profile */
	char **devices;        /* host device nodes bound in (GPUs), NULL-ended */
	char **ro_binds;       /* host files/dirs bound read-only at the same path */
	struct sandbox_port *ports; /* n_ports entries */
	int n_ports;
	int64_t stop_grace_ms; /* SIGTERM -> SIGKILL inside; 0 = 5000 */
	char *fail_step;       /* fault injection (SBX-14), honoured only when
				* nbgate-init was built with -DSANDBOX_FAULTS;
				* NULL otherwise */
};

/* Validates every field (absolute paths, ids, uid != 0, ...); the error
 * names the field. */
int sandbox_spec_validate(const struct sandbox_spec *s, struct err **err);

/* Writes s as JSON to path (mode 0600, atomically: temp + rename). */
int sandbox_spec_write(const struct sandbox_spec *s, const char *path, struct err **err);

/* Reads and validates a spec. *out is owned: sandbox_spec_free(). */
int sandbox_spec_read(const char *path, struct sandbox_spec **out, struct err **err);

/* Parses and validates a spec from JSON text s[0..len) (the reader behind
 * sandbox_spec_read; unknown fields are errors). *out is owned. */
int sandbox_spec_parse(const char *s, size_t len, struct sandbox_spec **out,
		       struct err **err);

/* Frees a spec and every string in it. NULL is fine. */
void sandbox_spec_free(struct sandbox_spec *s);

/*
 * Absolute path of the nbgate-init binary: $NBGATE_INIT if set, else
 * "nbgate-init" next to the running executable (/proc/self/exe). Owned.
 */
char *sandbox_init_path(void);

/*
 * After a shim died without cleaning up (SIGKILL, host crash): kills what
 * is left in the sandbox's cgroup, unmounts rootfs (lazily if busy) and
 * removes the cgroup. Idempotent; missing pieces are not errors.
 */
int sandbox_cleanup(const char *id, const char *rootfs, struct err **err);

/* Which cgroup layout this host has: 2 = unified v2 with controllers,
 * 1 = v1 controllers (the v2 hierarchy beside them, if any, is unused). */
int sandbox_cgroup_version(void);

#endif
