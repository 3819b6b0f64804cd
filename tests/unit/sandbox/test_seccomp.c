/*
 * Unit tests for sandbox/seccomp.c (SBX-18): the default profile compiles,
 * its PFC export matches the checked-in golden tests/sbx/default.pfc
 * (regenerate: SBX_REGEN=1 build/tests/unit/sandbox/test_seccomp), and a
 * simulation of the exported BPF (libseccomp's *-sim-* approach: run the
 * filter over struct seccomp_data) gives the intended verdicts, the
 * socket family rules above all (the AND-on-one-argument trap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sandbox/seccomp.c"

#include <signal.h>
#include <linux/audit.h>
#include <linux/seccomp.h>

#define PROFILE "sandbox/profiles/default.json"
#define GOLDEN "tests/sbx/default.pfc"

static char *pfc_of(const char *profile)
{
	void *ctx = NULL;
	struct err *e = NULL;
	if (sbx_seccomp_compile(profile, &ctx, &e) < 0)
		fail_msg("compile: %s", e->msg);
	FILE *f = tmpfile();
	assert_non_null(f);
	assert_int_equal(seccomp_export_pfc(ctx, fileno(f)), 0);
	/* the ENOSYS prefix sbx_seccomp_bpf puts in front (seccomp.c) */
	struct sock_filter stub[SBX_ENOSYS_STUB_MAX];
	int ns = sbx_seccomp_enosys_stub(ctx, stub, SBX_ENOSYS_STUB_MAX);
	fprintf(f, "#\n# nbgate ENOSYS prefix: code jt jf k\n#\n");
	for (int i = 0; i < ns; i++)
		fprintf(f, "%04x %3u %3u 0x%08x\n", stub[i].code, stub[i].jt, stub[i].jf,
			stub[i].k);
	fflush(f);
	seccomp_release(ctx);
	long n = lseek(fileno(f), 0, SEEK_END);
	char *buf = xmalloc((size_t)n + 1);
	assert_int_equal(pread(fileno(f), buf, (size_t)n, 0), n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void test_seccomp_golden_pfc(void **state)
{
	char *pfc = pfc_of(PROFILE);
	if (getenv("SBX_REGEN")) {
		FILE *f = fopen(GOLDEN, "w");
		assert_non_null(f);
		fputs(pfc, f);
		fclose(f);
	}
	char *golden = slurp(GOLDEN, NULL);
	if (!golden)
		fail_msg("no %s: run with SBX_REGEN=1 once and review the diff", GOLDEN);
	if (strcmp(pfc, golden))
		fail_msg("%s differs from the compiled profile: review, then SBX_REGEN=1", GOLDEN);
	free(pfc);
	free(golden);
}

/* A classic-BPF interpreter for the instructions libseccomp emits. */
static uint32_t bpf_run(const struct sock_fprog *p, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	for (unsigned pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->filter[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			assert_true(f->k + 4 <= sizeof(*d));
			memcpy(&a, (const char *)d + f->k, 4);
			break;
		case BPF_LD | BPF_MEM: a = mem[f->k]; break;
		case BPF_LDX | BPF_MEM: x = mem[f->k]; break;
		case BPF_ST: mem[f->k] = a; break;
		case BPF_STX: mem[f->k] = x; break;
		case BPF_MISC | BPF_TAX: x = a; break;
		case BPF_MISC | BPF_TXA: a = x; break;
		case BPF_ALU | BPF_AND | BPF_K: a &= f->k; break;
		case BPF_ALU | BPF_OR | BPF_K: a |= f->k; break;
		case BPF_ALU | BPF_SUB | BPF_K: a -= f->k; break;
		case BPF_ALU | BPF_ADD | BPF_K: a += f->k; break;
		case BPF_JMP | BPF_JA: pc += f->k; break;
		case BPF_JMP | BPF_JEQ | BPF_K: case BPF_JMP | BPF_JEQ | BPF_X:
			pc += a == src ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JGT | BPF_K: case BPF_JMP | BPF_JGT | BPF_X:
			pc += a > src ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JGE | BPF_K: case BPF_JMP | BPF_JGE | BPF_X:
			pc += a >= src ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JSET | BPF_K: case BPF_JMP | BPF_JSET | BPF_X:
			pc += (a & src) ? f->jt : f->jf; break;
		case BPF_RET | BPF_K: return f->k;
		case BPF_RET | BPF_A: return a;
		default: fail_msg("bpf: opcode 0x%x not simulated", f->code);
		}
	}
	fail_msg("bpf: fell off the end");
	return 0;
}

#define ALLOW SECCOMP_RET_ALLOW
#define EPERM_ SECCOMP_RET_ERRNO | EPERM
#define ENOSYS_ SECCOMP_RET_ERRNO | ENOSYS

static uint32_t sim(const struct sock_fprog *p, uint32_t arch, int nr, uint64_t a0)
{
	struct seccomp_data d = { .nr = nr, .arch = arch, .args = { a0 } };
	return bpf_run(p, &d);
}

static void test_seccomp_sim_socket_families(void **state)
{
	struct sock_fprog *p = NULL;
	struct err *e = NULL;
	assert_int_equal(sbx_seccomp_bpf(PROFILE, &p, &e), 0);
	const struct { uint32_t arch; int nr; } abis[] = {
		{ AUDIT_ARCH_X86_64, 41 },              /* socket */
		{ AUDIT_ARCH_I386, 359 },
		{ AUDIT_ARCH_X86_64, 41 | 0x40000000 }, /* x32 */
	};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 38), EPERM_); /* AF_ALG */
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 40), EPERM_); /* AF_VSOCK */
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 39), ALLOW);
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 41), ALLOW);
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 2), ALLOW);  /* AF_INET */
		assert_int_equal(sim(p, abis[i].arch, abis[i].nr, 1), ALLOW);  /* AF_UNIX */
	}
	free(p);
}

static void test_seccomp_sim_other_rules(void **state)
{
	struct sock_fprog *p = NULL;
	struct err *e = NULL;
	assert_int_equal(sbx_seccomp_bpf(PROFILE, &p, &e), 0);
	const uint32_t x64 = AUDIT_ARCH_X86_64;
	assert_int_equal(sim(p, x64, 435, 0), ENOSYS_);                 /* clone3 */
	assert_int_equal(sim(p, x64, 56, SIGCHLD), ALLOW);              /* clone */
	assert_int_equal(sim(p, x64, 56, 0x10000000 | SIGCHLD), EPERM_); /* CLONE_NEWUSER */
	assert_int_equal(sim(p, x64, 56, 0x00020000), EPERM_);          /* CLONE_NEWNS */
	assert_int_equal(sim(p, x64, 165, 0), EPERM_);                  /* mount */
	assert_int_equal(sim(p, x64, 425, 0), EPERM_);                  /* io_uring_setup */
	assert_int_equal(sim(p, x64, 135, 0x0040000), EPERM_);          /* personality */
	assert_int_equal(sim(p, x64, 135, 8), ALLOW);
	assert_int_equal(sim(p, x64, 135, 0xffffffff), ALLOW);
	assert_int_equal(sim(p, x64, 0, 0), ALLOW);                     /* read */
	assert_int_equal(sim(p, AUDIT_ARCH_I386, 21, 0), EPERM_);       /* i386 mount */
	/* socketcall: libseccomp would derive "socketcall(SYS_SOCKET) allow"
	 * from the socket rules, with the family unchecked (it is in memory) */
	assert_int_equal(sim(p, AUDIT_ARCH_I386, 102, 1), ENOSYS_);
	assert_int_equal(sim(p, x64, 165 | 0x40000000, 0), EPERM_);     /* x32 mount */
	/* an unknown architecture is killed, not allowed */
	uint32_t r = sim(p, AUDIT_ARCH_AARCH64, 0, 0);
	assert_true((r & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_KILL_THREAD ||
		    (r & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_KILL_PROCESS);
	free(p);
}

/* Syscalls newer than libseccomp: ENOSYS up to SBX_ENOSYS_MAX, per
 * architecture; known ones keep their rule; above the bound the default. */
static void test_seccomp_sim_unknown_syscalls(void **state)
{
	struct sock_fprog *p = NULL;
	struct err *e = NULL;
	assert_int_equal(sbx_seccomp_bpf(PROFILE, &p, &e), 0);
	const uint32_t x64 = AUDIT_ARCH_X86_64, i386 = AUDIT_ARCH_I386, x32 = 0x40000000;
	int hi = 0;
	for (int n = 0; n < 512; n++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, n);
		hi = name ? n : hi;
		free(name);
	}
	assert_true(hi >= 435 && hi < 600);
	assert_int_equal(sim(p, x64, hi + 1, 0), ENOSYS_);
	assert_int_equal(sim(p, x64, 600, 0), ENOSYS_);
	assert_int_equal(sim(p, x64, 601, 0), EPERM_);
	assert_int_equal(sim(p, x64, 1000, 0), EPERM_);
	assert_int_equal(sim(p, i386, hi + 1, 0), ENOSYS_);
	assert_int_equal(sim(p, i386, 601, 0), EPERM_);
	assert_int_equal(sim(p, x64, (hi + 1) | x32, 0), ENOSYS_);
	assert_int_equal(sim(p, x64, 600 | x32, 0), ENOSYS_);
	/* known syscalls keep the profile's verdict */
	assert_int_equal(sim(p, x64, 165, 0), EPERM_);       /* mount */
	assert_int_equal(sim(p, x64, 0, 0), ALLOW);          /* read */
	assert_int_equal(sim(p, x64, 0 | x32, 0), ALLOW);
	assert_int_equal(sim(p, i386, 3, 0), ALLOW);         /* i386 read */
	free(p);
	/* an allow-by-default profile gets no prefix */
	char path[] = "/tmp/test_seccomp.XXXXXX";
	int fd = mkstemp(path);
	const char *j = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}";
	assert_int_equal(write(fd, j, strlen(j)), (ssize_t)strlen(j));
	close(fd);
	void *ctx = NULL;
	assert_int_equal(sbx_seccomp_compile(path, &ctx, &e), 0);
	struct sock_filter stub[SBX_ENOSYS_STUB_MAX];
	assert_int_equal(sbx_seccomp_enosys_stub(ctx, stub, SBX_ENOSYS_STUB_MAX), 0);
	seccomp_release(ctx);
	unlink(path);
}

static void test_seccomp_profile_errors(void **state)
{
	static const struct { const char *json, *want; } rows[] = {
		{ "{\"defaultAction\":\"SCMP_ACT_NOPE\",\"syscalls\":[]}", "unknown action" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_PDP11\"],"
		  "\"syscalls\":[]}", "'architectures'" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
		  "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":9,\"value\":1,"
		  "\"op\":\"SCMP_CMP_EQ\"}]}]}", "syscalls[0]" },
		{ "{\"defaultAction\":\"SCMP_ACT_ERRNO\"}", "'syscalls'" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char path[] = "/tmp/test_seccomp.XXXXXX";
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, rows[i].json, strlen(rows[i].json)),
				 (ssize_t)strlen(rows[i].json));
		close(fd);
		void *ctx = NULL;
		struct err *e = NULL;
		int r = sbx_seccomp_compile(path, &ctx, &e);
		unlink(path);
		if (r == 0 || !strstr(e->msg, rows[i].want))
			fail_msg("row %zu: r=%d msg=%s", i, r, e ? e->msg : "(none)");
		err_free(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp_golden_pfc),
		cmocka_unit_test(test_seccomp_sim_socket_families),
		cmocka_unit_test(test_seccomp_sim_other_rules),
		cmocka_unit_test(test_seccomp_sim_unknown_syscalls),
		cmocka_unit_test(test_seccomp_profile_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
