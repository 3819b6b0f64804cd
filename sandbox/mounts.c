/*
 * mounts: PID 1's root filesystem: overlay, binds, /proc, /dev, /tmp,
 * /sys, masked and read-only paths, pivot_root; hostname and lo.
 *
 * Targets inside the rootfs are reached component by component with
 * O_NOFOLLOW (the upper dir is user-writable and persistent: a symlink
 * planted there must not redirect a bind mount onto a host path), and
 * mounted through /proc/self/fd/N as runc does.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "sandbox/sbx.h"

#define MNT_FLAGS_BIND (MS_BIND | MS_REC)

static int do_mount(const char *step, const char *src, const char *dst, const char *type,
		    unsigned long flags, const char *data, struct err **err)
{
	if (sbx_fault(step) || mount(src, dst, type, flags, data) < 0)
		return err_set_errno(err, "%s: mount %s on %s", step, src ? src : "none", dst);
	return 0;
}

/*
 * Opens (creating as needed: dirs, or a final empty file when !dir) the
 * path rel inside the directory fd root, never following a symlink.
 * Returns an O_PATH fd.
 */
static int step_in(int cur, const char *c, bool want_dir, const char *rel, struct err **err)
{
	if (!strcmp(c, "..") || !strcmp(c, "."))
		return err_set(err, EINVAL, "path '%s': '.' or '..'", rel);
	if (want_dir && mkdirat(cur, c, 0755) < 0 && errno != EEXIST)
		return err_set_errno(err, "mkdir '%s' in rootfs", rel);
	if (!want_dir) {
		int f = openat(cur, c, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (f >= 0)
			close(f); /* EISDIR, ENXIO, ...: the open below decides */
	}
	int next = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0));
	if (next < 0)
		return err_set_errno(err, "open '%s' in rootfs (no symlinks)", rel);
	return next;
}

static int open_in_root(int root, const char *rel, bool dir, struct err **err)
{
	cleanup_close int cur = fcntl(root, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return err_set_errno(err, "dup rootfs fd");
	const char *p = rel;
	for (;;) {
		p += strspn(p, "/");
		if (!*p)
			break;
		size_t len = strcspn(p, "/");
		char c[256];
		if (len >= sizeof(c))
			return err_set(err, ENAMETOOLONG, "path '%s': component too long", rel);
		memcpy(c, p, len);
		c[len] = 0;
		p += len;
		bool last = p[strspn(p, "/")] == 0;
		int next = step_in(cur, c, dir || !last, rel, err);
		if (next < 0)
			return next;
		close(cur);
		cur = next;
	}
	return steal_fd(&cur);
}

/* Bind src onto rootfs/dst; then remounted nosuid, nodev (+ read-only when
 * ro) unless it is a device node. */
static int bind_into(const char *step, int root, const char *src, const char *dst,
		     bool dir, bool ro, struct err **err)
{
	cleanup_close int fd = open_in_root(root, dst, dir, err);
	if (fd < 0)
		return err_wrap(err, "%s", step);
	char target[64];
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	if (do_mount(step, src, target, NULL, MNT_FLAGS_BIND, NULL, err) < 0)
		return -EIO;
	if (!strcmp(step, "dev") || !strcmp(step, "devices"))
		return 0; /* nodev would make the node useless */
	/* the fd names the directory under the new mount: walk again to get
	 * the mount itself for the remount */
	close(fd);
	fd = open_in_root(root, dst, dir, err);
	if (fd < 0)
		return err_wrap(err, "%s", step);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	unsigned long fl = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0);
	return do_mount(step, NULL, target, NULL, fl, NULL, err);
}

static int mount_overlay(const struct sandbox_spec *s, struct err **err)
{
	char opts[4096];
	size_t n = (size_t)snprintf(opts, sizeof(opts), "lowerdir=");
	for (size_t i = 0; s->lower[i] && n < sizeof(opts); i++)
		n += (size_t)snprintf(opts + n, sizeof(opts) - n, "%s%s", i ? ":" : "",
				      s->lower[i]);
	if (n < sizeof(opts))
		n += (size_t)snprintf(opts + n, sizeof(opts) - n, ",upperdir=%s,workdir=%s",
				      s->upper, s->work);
	if (n >= sizeof(opts))
		return err_set(err, E2BIG, "overlay: options longer than a page");
	/* not nosuid: SBX-7 shows that no_new_privs, not the mount, stops setuid */
	return do_mount("overlay", "overlay", s->rootfs, "overlay", MS_NODEV, opts, err);
}

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };

static const char *const dev_links[][2] = {
	{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
};

static int populate_dev(int d)
{
	if (mkdirat(d, "pts", 0755) < 0 || mkdirat(d, "shm", 01777) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++)
		if (symlinkat(dev_links[i][1], d, dev_links[i][0]) < 0)
			return -1;
	return 0;
}

static int setup_dev(int root, const struct sandbox_spec *s, struct err **err)
{
	cleanup_close int d = open_in_root(root, "dev", true, err);
	if (d < 0)
		return err_wrap(err, "dev");
	char p[64], q[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", d);
	if (do_mount("dev", "tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k",
		     err) < 0)
		return -EIO;
	close(d);
	d = open_in_root(root, "dev", true, err); /* the new tmpfs */
	if (d < 0)
		return err_wrap(err, "dev");
	for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		snprintf(p, sizeof(p), "/dev/%s", dev_nodes[i]);
		snprintf(q, sizeof(q), "dev/%s", dev_nodes[i]);
		if (bind_into("dev", root, p, q, false, false, err) < 0)
			return -EIO;
	}
	for (size_t i = 0; s->devices && s->devices[i]; i++)
		if (bind_into("devices", root, s->devices[i], s->devices[i] + 1, false, false,
			      err) < 0)
			return -EIO;
	if (populate_dev(d) < 0)
		return err_set_errno(err, "dev: populate");
	snprintf(p, sizeof(p), "/proc/self/fd/%d/pts", d);
	if (do_mount("dev", "devpts", p, "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620", err) < 0)
		return -EIO;
	snprintf(p, sizeof(p), "/proc/self/fd/%d/shm", d);
	return do_mount("dev", "shm", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m",
			err);
}

/* Mounts a fresh filesystem on rootfs/rel (created as a directory). */
static int mount_at(const char *step, int root, const char *rel, const char *type,
		    unsigned long flags, const char *data, struct err **err)
{
	cleanup_close int fd = open_in_root(root, rel, true, err);
	if (fd < 0)
		return err_wrap(err, "%s", step);
	char t[64];
	snprintf(t, sizeof(t), "/proc/self/fd/%d", fd);
	return do_mount(step, type, t, type, flags, data, err);
}

static const char *const masked_paths[] = {
	"proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug", "proc/latency_stats",
	"proc/acpi", "proc/scsi", "proc/interrupts", "sys/firmware", "sys/devices/virtual/powercap",
};
static const char *const ro_paths[] = {
	"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs", "proc/asound",
};

/* Masked: /dev/null over files, an empty read-only tmpfs over dirs;
 * missing ones are fine. Read-only: bound onto themselves, remounted ro. */
static int mask_paths(const char *rootfs, struct err **err)
{
	for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++) {
		cleanup_free char *p = xasprintf("%s/%s", rootfs, masked_paths[i]);
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;
		int r = S_ISDIR(st.st_mode)
			? do_mount("mask", "tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
				   "size=0", err)
			: do_mount("mask", "/dev/null", p, NULL, MS_BIND, NULL, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(ro_paths) / sizeof(ro_paths[0]); i++) {
		cleanup_free char *p = xasprintf("%s/%s", rootfs, ro_paths[i]);
		if (access(p, F_OK) < 0)
			continue;
		if (do_mount("readonly", p, p, NULL, MS_BIND | MS_REC, NULL, err) < 0 ||
		    do_mount("readonly", NULL, p, NULL,
			     MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, err) < 0)
			return -EIO;
	}
	return 0;
}

/*
 * egress: the host's resolv.conf, read-only (the image carries its build
 * host's). A symlink there (e.g. to a systemd-resolved path) is replaced:
 * bind_into never follows one.
 */
static int bind_resolv(int root, struct err **err)
{
	cleanup_close int etc = open_in_root(root, "etc", true, err);
	if (etc < 0)
		return err_wrap(err, "resolv");
	struct stat st;
	if (fstatat(etc, "resolv.conf", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
	    unlinkat(etc, "resolv.conf", 0) < 0)
		return err_set_errno(err, "resolv: unlink the image's symlink");
	return bind_into("resolv", root, "/etc/resolv.conf", "etc/resolv.conf", false, true, err);
}

static int mount_binds(int root, const struct sandbox_spec *s, struct err **err)
{
	if (s->net == SANDBOX_NET_EGRESS && bind_resolv(root, err) < 0)
		return -EIO;
	if (bind_into("home", root, s->home_src, s->home_dst, true, false, err) < 0 ||
	    bind_into("sock_dir", root, s->sock_dir, "run/nbgate", true, false, err) < 0)
		return -EIO;
	for (size_t i = 0; s->ro_binds && s->ro_binds[i]; i++) {
		struct stat st;
		if (stat(s->ro_binds[i], &st) < 0)
			return err_set_errno(err, "ro_binds: '%s'", s->ro_binds[i]);
		if (bind_into("ro_binds", root, s->ro_binds[i], s->ro_binds[i],
			      S_ISDIR(st.st_mode), true, err) < 0)
			return -EIO;
	}
	return 0;
}

static int pivot(const char *rootfs, struct err **err)
{
	if (chdir(rootfs) < 0)
		return err_set_errno(err, "pivot_root: chdir %s", rootfs);
	/* pivot_root(".", "."): the old root ends up stacked under the new
	 * one and is detached at once, no put_old directory needed (runc) */
	if (sbx_fault("pivot_root") || syscall(SYS_pivot_root, ".", ".") < 0)
		return err_set_errno(err, "pivot_root: %s", rootfs);
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 || umount2(".", MNT_DETACH) < 0)
		return err_set_errno(err, "pivot_root: detach old root");
	if (chdir("/") < 0)
		return err_set_errno(err, "pivot_root: chdir /");
	return 0;
}

static int lo_up(struct err **err)
{
	cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return err_set_errno(err, "lo: get flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (sbx_fault("lo") || ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return err_set_errno(err, "lo: set up");
	return 0;
}

/* v1: a small tmpfs at sys/fs/cgroup holding one read-only bind per
 * controller the sandbox uses, then the tmpfs itself made read-only. */
static int cgroup_view_v1(int root, const struct sbx_cgroup *cg, struct err **err)
{
	const unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount_at("cgroup", root, "sys/fs/cgroup", "tmpfs", fl, "mode=755,size=16k", err) < 0)
		return -EIO;
	for (int i = 0; i < cg->n; i++) {
		/* "/sys/fs/cgroup/<controller>/nbgate/<id>" */
		const char *c = cg->dirs[i] + strlen("/sys/fs/cgroup/");
		cleanup_free char *dst = xasprintf("sys/fs/cgroup/%.*s", (int)strcspn(c, "/"), c);
		if (bind_into("cgroup", root, cg->dirs[i], dst, true, true, err) < 0)
			return -EIO;
	}
	cleanup_close int fd = open_in_root(root, "sys/fs/cgroup", true, err);
	if (fd < 0)
		return err_wrap(err, "cgroup");
	char t[64];
	snprintf(t, sizeof(t), "/proc/self/fd/%d", fd);
	return do_mount("cgroup", NULL, t, NULL, MS_REMOUNT | MS_RDONLY | fl, "mode=755,size=16k",
			err);
}

/*
 * A read-only view of the sandbox's own cgroup at /sys/fs/cgroup, so that
 * tools (and runtimes sizing their heaps or thread pools) can read their
 * limits: binds of nbgate/<id> (v2: the leaf; v1: each controller's), the
 * same directories the cgroup namespace shows as "/".
 */
static int mount_cgroup_view(int root, const struct sandbox_spec *s, struct err **err)
{
	struct sbx_cgroup cg;
	sbx_cgroup_paths(s->id, &cg);
	int r = cg.version == 2 ? bind_into("cgroup", root, cg.dirs[0], "sys/fs/cgroup", true,
					    true, err)
				: cgroup_view_v1(root, &cg, err);
	for (int i = 0; i < cg.n; i++)
		free(cg.dirs[i]);
	return r;
}

static int mount_all(int root, const struct sandbox_spec *s, struct err **err)
{
	if (mount_binds(root, s, err) < 0 ||
	    mount_at("proc", root, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
		     err) < 0 ||
	    setup_dev(root, s, err) < 0 ||
	    mount_at("tmp", root, "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err) < 0 ||
	    mount_at("sys", root, "sys", "sysfs",
		     MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0 ||
	    mount_cgroup_view(root, s, err) < 0)
		return -EIO;
	return mask_paths(s->rootfs, err);
}

/* /etc/hostname = id, inside (after pivot_root: a symlink in the upper
 * dir can only point into the sandbox). Lands in the upper dir. */
static int write_hostname(const char *id, struct err **err)
{
	cleanup_close int fd = open("/etc/hostname",
				    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || sbx_write_all(fd, id, strlen(id)) < 0 || sbx_write_all(fd, "\n", 1) < 0)
		return err_set_errno(err, "hostname: /etc/hostname");
	return 0;
}

int sbx_rootfs_overlay(const struct sandbox_spec *s, struct err **err)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set_errno(err, "mount_private: /");
	return mount_overlay(s, err);
}

int sbx_rootfs_setup(const struct sandbox_spec *s, struct err **err)
{
	if (sbx_fault("mount_private") || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set_errno(err, "mount_private: /");
	if (mount_overlay(s, err) < 0)
		return -EIO;
	cleanup_close int root = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return err_set_errno(err, "overlay: open %s", s->rootfs);
	if (mount_all(root, s, err) < 0 || pivot(s->rootfs, err) < 0)
		return -EIO;
	if (sbx_fault("hostname") || sethostname(s->id, strlen(s->id)) < 0)
		return err_set_errno(err, "hostname: %s", s->id);
	if (write_hostname(s->id, err) < 0)
		return -EIO;
	struct rlimit rl = { (rlim_t)(s->nofile ? s->nofile : 4096),
			     (rlim_t)(s->nofile ? s->nofile : 4096) };
	if (sbx_fault("rlimit") || setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return err_set_errno(err, "rlimit: RLIMIT_NOFILE");
	return lo_up(err);
}

/* true when a line of the file at path starts with prefix. */
static bool file_has_prefix(const char *path, const char *prefix)
{
	cleanup_file FILE *f = fopen(path, "re");
	char line[1024];
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, prefix, strlen(prefix)))
			return true;
	return false;
}

static int append_line(const char *path, const char *line, struct err **err)
{
	cleanup_close int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
				    0644);
	if (fd < 0 || sbx_write_all(fd, line, strlen(line)) < 0)
		return err_set_errno(err, "passwd: %s", path);
	return 0;
}

int sbx_rootfs_add_user(const struct sandbox_spec *s, struct err **err)
{
	cleanup_free char *pfx = xasprintf("%s:", s->user_name);
	if (!file_has_prefix("/etc/passwd", pfx)) {
		cleanup_free char *l = xasprintf("%s:x:%u:%u::%s:/bin/sh\n", s->user_name,
						 (unsigned)s->uid, (unsigned)s->gid, s->home_dst);
		if (append_line("/etc/passwd", l, err) < 0)
			return -EIO;
	}
	if (!file_has_prefix("/etc/group", pfx)) {
		cleanup_free char *l = xasprintf("%s:x:%u:\n", s->user_name, (unsigned)s->gid);
		if (append_line("/etc/group", l, err) < 0)
			return -EIO;
	}
	return 0;
}
