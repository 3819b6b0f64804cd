/*
 * drop: the privilege drop of SECURITY.md, in the runc/crun order.
 * Runs in a child after fork: no allocation, no logging; the caller
 * reports *step through its pipe.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sbx.h"

#define FAIL(name)                     \
	do {                           \
		*step = (name);        \
		return -1;             \
	} while (0)

/* The fault check comes first so an injected step fails exactly where the
 * real syscall would, with nothing after it run. */
#define STEP(name, call)                                  \
	do {                                              \
		if (sbx_fault(name) || (call) < 0)       \
			FAIL(name);                       \
	} while (0)

static int drop_bounding(void)
{
	/* CAP_LAST_CAP of the headers may be older than the kernel: go on
	 * until the kernel says EINVAL (no such capability) */
	for (int c = 0; c < 64; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL && c > CAP_LAST_CAP - 1)
				return 0;
			return -1;
		}
	}
	return 0;
}

static int caps_clear(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
	return (int)syscall(SYS_capset, &h, d);
}

static int close_fds(void)
{
	/* CLOEXEC, not close: the exec-error pipe must survive until execve
	 * and vanish with it (SBX-8: only 0, 1, 2 after exec) */
	return (int)syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
}

int sbx_drop_privs(uid_t uid, gid_t gid, const struct sock_fprog *prog, bool close,
		   const char **step)
{
	STEP("setgroups", setgroups(0, NULL));
	STEP("bounding", drop_bounding());
	STEP("setresgid", setresgid(gid, gid, gid));
	STEP("setresuid", setresuid(uid, uid, uid));
	STEP("capset", caps_clear());
	STEP("ambient", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	STEP("nnp", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	if (close)
		STEP("close_range", close_fds());
	/* last: nothing but execve may follow it (SBX-13) */
	STEP("seccomp_load", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog));
	return 0;
}
