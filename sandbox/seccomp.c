/*
 * seccomp: an OCI/Docker-format JSON profile compiled with libseccomp
 * (built in the parent, loaded in the child: sandbox/drop.c).
 *
 * Supported: defaultAction, defaultErrnoRet, architectures (or archMap),
 * syscalls[{names, action, errnoRet, args[{index, value, valueTwo, op}],
 * includes/excludes {caps, arches, minKernel}}]. Syscall names this
 * libseccomp does not know are skipped (as Docker does); anything else
 * unknown is an error naming the entry.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <seccomp.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "sandbox/sbx.h"

#define PROFILE_MAX (1 << 20)

static const struct { const char *name; uint32_t act; bool has_errno; } sc_actions[] = {
	{ "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false },
	{ "SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true },
	{ "SCMP_ACT_KILL", SCMP_ACT_KILL, false },
	{ "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false },
	{ "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false },
	{ "SCMP_ACT_TRAP", SCMP_ACT_TRAP, false },
	{ "SCMP_ACT_LOG", SCMP_ACT_LOG, false },
};

static const struct { const char *name; enum scmp_compare op; } sc_ops[] = {
	{ "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT },
	{ "SCMP_CMP_LE", SCMP_CMP_LE }, { "SCMP_CMP_EQ", SCMP_CMP_EQ },
	{ "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
	{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* Docker's Go names and libseccomp's names for the x86 family. */
static const struct { const char *name; uint32_t arch; } sc_arches[] = {
	{ "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 }, { "SCMP_ARCH_X86", SCMP_ARCH_X86 },
	{ "SCMP_ARCH_X32", SCMP_ARCH_X32 }, { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },
	{ "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
};

static int parse_action(const cJSON *o, const char *field, const char *errno_field,
			int64_t def_errno, uint32_t *out, struct err **err)
{
	const char *a = NULL;
	if (json_get_string(o, field, true, &a, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(sc_actions) / sizeof(sc_actions[0]); i++) {
		if (strcmp(a, sc_actions[i].name) != 0)
			continue;
		int64_t e = def_errno;
		if (sc_actions[i].has_errno &&
		    json_get_int(o, errno_field, false, 0, 4095, &e, err) < 0)
			return -EINVAL;
		*out = sc_actions[i].has_errno ? SCMP_ACT_ERRNO((uint32_t)e) : sc_actions[i].act;
		return 0;
	}
	return err_set(err, EINVAL, "field '%s': unknown action '%s'", field, a);
}

static int add_arches(scmp_filter_ctx ctx, const cJSON *root, struct err **err)
{
	char **v = NULL;
	if (json_get_string_array(root, "architectures", false, &v, err) < 0)
		return -EINVAL;
	for (size_t i = 0; v && v[i]; i++) {
		uint32_t arch = 0;
		for (size_t j = 0; j < sizeof(sc_arches) / sizeof(sc_arches[0]); j++)
			if (!strcmp(v[i], sc_arches[j].name))
				arch = sc_arches[j].arch;
		if (!arch) {
			int r = err_set(err, EINVAL, "field 'architectures': unknown '%s'", v[i]);
			xstrv_free(v);
			return r;
		}
		int r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST) {
			r = err_set(err, -r, "field 'architectures': add '%s'", v[i]);
			xstrv_free(v);
			return r;
		}
	}
	xstrv_free(v);
	return 0;
}

/* One decimal int at *s; the end in *end (== s when there is none). */
static bool parse_int(const char *s, char **end, int *out)
{
	errno = 0;
	long v = strtol(s, end, 10);
	if (*end == s || errno || v < INT_MIN || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* "MAJOR[.MINOR]..." as sscanf("%d.%d") reads it: how many of the two
 * numbers were read (0, 1 or 2). */
static int parse_version(const char *s, int *ma, int *mi)
{
	char *end = NULL;
	if (!parse_int(s, &end, ma))
		return 0;
	if (*end != '.' || !parse_int(end + 1, &end, mi))
		return 1;
	return 2;
}

static bool kernel_at_least(const char *min)
{
	struct utsname u;
	int ma = 0, mi = 0, kma = 0, kmi = 0;
	if (uname(&u) < 0 || parse_version(min, &ma, &mi) < 1 ||
	    parse_version(u.release, &kma, &kmi) < 2)
		return true;
	return kma > ma || (kma == ma && kmi >= mi);
}

static bool strv_has(const cJSON *o, const char *field, const char *const *want)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, field);
	const cJSON *e;
	cJSON_ArrayForEach(e, a)
		for (size_t i = 0; want[i]; i++)
			if (cJSON_IsString(e) && !strcmp(e->valuestring, want[i]))
				return true;
	return false;
}

static bool nonempty(const cJSON *o, const char *field)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, field)) > 0;
}

/* Docker's includes/excludes, for a process with no capabilities on x86_64. */
static bool rule_applies(const cJSON *rule)
{
	static const char *const native[] = { "amd64", "x86_64", "SCMP_ARCH_X86_64", NULL };
	const cJSON *inc = cJSON_GetObjectItemCaseSensitive(rule, "includes");
	const cJSON *exc = cJSON_GetObjectItemCaseSensitive(rule, "excludes");
	if (inc && nonempty(inc, "caps"))
		return false;
	if (inc && nonempty(inc, "arches") && !strv_has(inc, "arches", native))
		return false;
	const cJSON *mk = inc ? cJSON_GetObjectItemCaseSensitive(inc, "minKernel") : NULL;
	if (mk && cJSON_IsString(mk) && !kernel_at_least(mk->valuestring))
		return false;
	if (exc && nonempty(exc, "arches") && strv_has(exc, "arches", native))
		return false;
	return true;
}

static int parse_arg(const cJSON *a, struct scmp_arg_cmp *out, struct err **err)
{
	int64_t idx = 0;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "value");
	const cJSON *v2 = cJSON_GetObjectItemCaseSensitive(a, "valueTwo");
	const char *op = NULL;
	if (json_get_int(a, "index", true, 0, 5, &idx, err) < 0 ||
	    json_get_string(a, "op", true, &op, err) < 0)
		return -EINVAL;
	if (!cJSON_IsNumber(v) || (v2 && !cJSON_IsNumber(v2)) || v->valuedouble < 0)
		return err_set(err, EINVAL, "field 'args': value/valueTwo must be numbers >= 0");
	out->arg = (unsigned int)idx;
	out->datum_a = (scmp_datum_t)v->valuedouble;
	out->datum_b = v2 ? (scmp_datum_t)v2->valuedouble : 0;
	for (size_t i = 0; i < sizeof(sc_ops) / sizeof(sc_ops[0]); i++)
		if (!strcmp(op, sc_ops[i].name)) {
			out->op = sc_ops[i].op;
			return 0;
		}
	return err_set(err, EINVAL, "field 'args': unknown op '%s'", op);
}

static int parse_args(const cJSON *rule, struct scmp_arg_cmp *args, unsigned *n,
		      struct err **err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(rule, "args");
	const cJSON *e;
	*n = 0;
	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > 6)
		return err_set(err, EINVAL, "field 'args': expected an array of at most 6");
	cJSON_ArrayForEach(e, a)
		if (parse_arg(e, &args[(*n)++], err) < 0)
			return -EINVAL;
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, const cJSON *rule, uint32_t def_act,
		    int64_t def_errno, struct err **err)
{
	uint32_t act;
	struct scmp_arg_cmp args[6];
	unsigned n_args;
	char **names = NULL;
	if (!rule_applies(rule))
		return 0;
	if (parse_action(rule, "action", "errnoRet", def_errno, &act, err) < 0 ||
	    parse_args(rule, args, &n_args, err) < 0 ||
	    json_get_string_array(rule, "names", true, &names, err) < 0)
		return -EINVAL;
	int r = 0;
	for (size_t i = 0; names[i] && r == 0 && act != def_act; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to this libseccomp: as Docker, skip */
		r = seccomp_rule_add_array(ctx, act, nr, n_args, args);
		if (r < 0)
			r = err_set(err, -r, "syscall '%s': rule rejected by libseccomp", names[i]);
	}
	xstrv_free(names);
	return r;
}

static int compile_root(scmp_filter_ctx ctx, const cJSON *root, uint32_t def_act,
			int64_t def_errno, struct err **err)
{
	if (add_arches(ctx, root, err) < 0)
		return -EINVAL;
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "syscalls");
	if (!cJSON_IsArray(rules))
		return err_set(err, EINVAL, "field 'syscalls': expected an array");
	const cJSON *rule;
	int i = 0;
	cJSON_ArrayForEach(rule, rules) {
		if (add_rule(ctx, rule, def_act, def_errno, err) < 0)
			return err_wrap(err, "syscalls[%d]", i);
		i++;
	}
	return 0;
}

static char *slurp(const char *path, struct err **err)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		err_set_errno(err, "open '%s'", path);
		return NULL;
	}
	char *buf = xmalloc(PROFILE_MAX + 1);
	size_t n = fread(buf, 1, PROFILE_MAX + 1, f);
	bool bad = n > PROFILE_MAX || ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		err_set(err, EFBIG, "read '%s': error or larger than %d bytes", path, PROFILE_MAX);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

int sbx_seccomp_compile(const char *path, void **out, struct err **err)
{
	cleanup_free char *text = slurp(path, err);
	if (!text)
		return err_wrap(err, "seccomp profile");
	cleanup_json cJSON *root = json_parse(text, strlen(text), err);
	if (!root)
		return err_wrap(err, "seccomp profile '%s'", path);
	uint32_t def_act;
	int64_t def_errno = EPERM;
	if (json_get_int(root, "defaultErrnoRet", false, 0, 4095, &def_errno, err) < 0 ||
	    parse_action(root, "defaultAction", "defaultErrnoRet", def_errno, &def_act, err) < 0)
		return err_wrap(err, "seccomp profile '%s'", path);
	scmp_filter_ctx ctx = seccomp_init(def_act);
	if (!ctx)
		return err_set(err, ENOMEM, "seccomp profile '%s': seccomp_init", path);
	/* we set no_new_privs ourselves, in the order */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (compile_root(ctx, root, def_act, def_errno, err) < 0) {
		seccomp_release(ctx);
		return err_wrap(err, "seccomp profile '%s'", path);
	}
	*out = ctx;
	return 0;
}

/*
 * Syscalls newer than this libseccomp (2.5.4 knows x86_64 up to 456):
 * the profile cannot name them (unknown names are skipped), so the
 * default action (EPERM) would answer them, and a libc that falls back
 * only on ENOSYS (glibc's fchmodat2 -> fchmodat, clone3 -> clone) breaks.
 * As runc does, a prefix in front of libseccomp's program answers ENOSYS
 * for the numbers libseccomp cannot name, from just above the highest
 * number it knows in the common table (< 512) up to SBX_ENOSYS_MAX, per
 * architecture of the filter. libseccomp itself cannot express this: a
 * rule by raw number is translated to the other architectures by name,
 * which fails (-EFAULT) for a number without one.
 */
#define SBX_ENOSYS_MAX 600
#define X32_BIT 0x40000000u

static bool sc_known(uint32_t arch, uint32_t nr)
{
	char *name = seccomp_syscall_resolve_num_arch(arch, (int)nr);
	free(name);
	return name != NULL;
}

/* Runs [a, b] of unknown numbers (with bit) above the highest known
 * number below 512. Returns the count (at most max). */
static int unknown_runs(uint32_t arch, uint32_t bit, uint32_t runs[][2], int max)
{
	int hi = -1, cnt = 0, start = -1;
	for (int n = 0; n < 512; n++)
		if (sc_known(arch, (uint32_t)n | bit))
			hi = n;
	for (int n = hi + 1; n <= SBX_ENOSYS_MAX + 1 && cnt < max; n++) {
		bool unk = n <= SBX_ENOSYS_MAX && !sc_known(arch, (uint32_t)n | bit);
		if (unk && start < 0)
			start = n;
		if (!unk && start >= 0) {
			runs[cnt][0] = (uint32_t)start | bit;
			runs[cnt++][1] = (uint32_t)(n - 1) | bit;
			start = -1;
		}
	}
	return cnt;
}

#define STMT(c, k) ((struct sock_filter)BPF_STMT((c), (k)))
#define JUMP(c, k, t, f) ((struct sock_filter)BPF_JUMP((c), (k), (t), (f)))

/* One block: "if arch matches (and the x32 bit is as wanted) and nr is in
 * a run: ENOSYS", else fall through to the next block. */
static int stub_block(uint32_t arch, int x32, uint32_t runs[][2], int nr, struct sock_filter *o)
{
	int n = 0, len = 3 + (x32 >= 0) + 3 * nr;
	o[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	o[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, (uint8_t)(len - 2));
	o[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	if (x32 >= 0) /* x86_64 and x32 share AUDIT_ARCH_X86_64 */
		o[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_BIT, x32 ? 0 : (uint8_t)(3 * nr),
			      x32 ? (uint8_t)(3 * nr) : 0);
	for (int i = 0; i < nr; i++) {
		o[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, runs[i][0], 0, 2);
		o[n++] = JUMP(BPF_JMP | BPF_JGT | BPF_K, runs[i][1], 1, 0);
		o[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	}
	return n;
}

int sbx_seccomp_enosys_stub(void *ctx, struct sock_filter *out, int cap)
{
	uint32_t def = 0;
	if (seccomp_attr_get(ctx, SCMP_FLTATR_ACT_DEFAULT, &def) < 0 ||
	    def == SCMP_ACT_ALLOW || def == SCMP_ACT_LOG)
		return 0; /* an allow-by-default profile lets the kernel answer */
	int n = 0;
	for (size_t i = 0; i < sizeof(sc_arches) / sizeof(sc_arches[0]); i++) {
		uint32_t a = sc_arches[i].arch, runs[8][2];
		if (seccomp_arch_exist(ctx, a) != 0)
			continue;
		int x32 = a == SCMP_ARCH_X32 ? 1 : a == SCMP_ARCH_X86_64 ? 0 : -1;
		int nr = unknown_runs(a, x32 == 1 ? X32_BIT : 0, runs, 8);
		if (nr == 0 || n + 4 + 3 * nr > cap)
			continue;
		n += stub_block(x32 >= 0 ? SCMP_ARCH_X86_64 : a, x32, runs, nr, out + n);
	}
	return n;
}

int sbx_seccomp_bpf(const char *path, struct sock_fprog **out, struct err **err)
{
	void *ctx = NULL;
	if (sbx_seccomp_compile(path, &ctx, err) < 0)
		return -EINVAL;
	struct sock_filter stub[SBX_ENOSYS_STUB_MAX];
	int ns = sbx_seccomp_enosys_stub(ctx, stub, SBX_ENOSYS_STUB_MAX);
	cleanup_close int mfd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	int r = mfd < 0 ? -errno : seccomp_export_bpf(ctx, mfd);
	seccomp_release(ctx);
	if (r < 0)
		return err_set(err, -r, "seccomp profile '%s': export BPF", path);
	off_t len = lseek(mfd, 0, SEEK_END);
	size_t sl = (size_t)ns * sizeof(struct sock_filter);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) ||
	    (size_t)len + sl > BPF_MAXINSNS * sizeof(struct sock_filter))
		return err_set(err, EINVAL, "seccomp profile '%s': bad BPF size", path);
	struct sock_fprog *prog = xmalloc(sizeof(*prog) + sl + (size_t)len);
	prog->len = (unsigned short)(ns + len / (off_t)sizeof(struct sock_filter));
	prog->filter = (struct sock_filter *)(prog + 1);
	memcpy(prog->filter, stub, sl);
	if (pread(mfd, prog->filter + ns, (size_t)len, 0) != len) {
		free(prog);
		return err_set_errno(err, "seccomp profile '%s': read BPF", path);
	}
	*out = prog;
	return 0;
}
