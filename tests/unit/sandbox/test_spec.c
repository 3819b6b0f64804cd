/* Unit tests for sandbox/spec.c: strict parsing, validation naming the
 * field, write + read round trip, the init path lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sandbox/spec.c"

static const char *const good =
	"{\"id\":\"alice-1\",\"rootfs\":\"/r\",\"lower\":[\"/l1\",\"/l0\"],\"upper\":\"/u\","
	"\"work\":\"/w\",\"home_src\":\"/hs\",\"home_dst\":\"/home/alice\",\"sock_dir\":\"/s\","
	"\"log_path\":\"/log\",\"uid\":1500,\"gid\":1501,\"user_name\":\"alice\","
	"\"argv\":[\"/bin/sh\",\"-c\",\"a;touch /tmp/pwn\"],\"env\":[\"A=1\"],"
	"\"seccomp_profile\":\"/p.json\",\"memory_bytes\":1048576,\"cpu_millis\":500,"
	"\"pids_max\":64,\"net\":\"egress\",\"ports\":[{\"port\":8888,\"socket_name\":\"s.sock\"}]}";

/* good with `from` replaced by `to` (once) */
static char *mutate(const char *from, const char *to)
{
	const char *p = strstr(good, from);
	assert_non_null(p);
	return xasprintf("%.*s%s%s", (int)(p - good), good, to, p + strlen(from));
}

static void test_spec_parse_good(void **state)
{
	struct sandbox_spec *s = NULL;
	struct err *e = NULL;
	assert_int_equal(sandbox_spec_parse(good, strlen(good), &s, &e), 0);
	assert_string_equal(s->id, "alice-1");
	assert_string_equal(s->lower[0], "/l1");
	assert_string_equal(s->lower[1], "/l0");
	assert_null(s->lower[2]);
	assert_int_equal(s->uid, 1500);
	assert_int_equal(s->gid, 1501);
	assert_string_equal(s->argv[2], "a;touch /tmp/pwn");
	assert_int_equal(s->net, SANDBOX_NET_EGRESS);
	assert_int_equal(s->n_ports, 1);
	assert_int_equal(s->ports[0].port, 8888);
	assert_null(s->cwd);
	assert_null(s->fail_step);
	assert_null(s->net_allow);
	sandbox_spec_free(s);
	char *t = mutate("\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":"
			 "[\"10.255.255.53\",\"fd00::/8\",\"0.0.0.0/0\",\"::1\"]");
	assert_int_equal(sandbox_spec_parse(t, strlen(t), &s, &e), 0);
	assert_string_equal(s->net_allow[0], "10.255.255.53");
	assert_string_equal(s->net_allow[3], "::1");
	assert_null(s->net_allow[4]);
	sandbox_spec_free(s);
	free(t);
}

static void test_spec_errors_name_the_field(void **state)
{
	static const struct { const char *from, *to, *field; } rows[] = {
		{ "\"alice-1\"", "\"a;b\"", "'id'" },
		{ "\"alice-1\"", "\"-x\"", "'id'" },
		{ "\"alice-1\"", "\"Alice\"", "'id'" },
		{ "\"uid\":1500", "\"uid\":0", "'uid'" },
		{ "\"gid\":1501", "\"gid\":0", "'gid'" },
		{ "\"rootfs\":\"/r\"", "\"rootfs\":\"r\"", "'rootfs'" },
		{ "\"/l0\"", "\"/a/../b\"", "'lower'" },
		{ "\"/l0\"", "\"/a,upperdir=/x\"", "'lower'" },
		{ "\"upper\":\"/u\"", "\"upper\":\"/u:x\"", "'upper'" },
		{ "\"lower\":[\"/l1\",\"/l0\"]", "\"lower\":[]", "'lower'" },
		{ "\"/bin/sh\",", "\"sh\",", "'argv'" },
		{ "\"A=1\"", "\"A\"", "'env'" },
		{ "\"port\":8888", "\"port\":0", "'port'" },
		{ "\"socket_name\":\"s.sock\"", "\"socket_name\":\"../x\"", "'ports" },
		{ "\"net\":\"egress\"", "\"net\":\"bridge\"", "'net'" },
		{ "\"pids_max\":64", "\"pids_max\":-1", "'pids_max'" },
		{ "\"user_name\":\"alice\"", "\"user_name\":\"a:b\"", "'user_name'" },
		{ "\"home_dst\":\"/home/alice\"", "\"home_dst\":\"/\"", "'home_dst'" },
		{ "\"id\":", "\"bogus\":1,\"id\":", "'bogus'" },
		{ "\"seccomp_profile\":\"/p.json\",", "", "'seccomp_profile'" },
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[\"10.1.2.3/8\"]",
		  "'net_allow'" }, /* host bits */
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[\"10.1.2.300\"]",
		  "'net_allow'" },
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[\"fd00::/129\"]",
		  "'net_allow'" },
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[\"10.0.0.1/\"]",
		  "'net_allow'" },
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[\"host.name\"]",
		  "'net_allow'" },
		{ "\"net\":\"egress\"", "\"net\":\"none\",\"net_allow\":[\"10.0.0.1\"]",
		  "'net_allow'" },
		{ "\"net\":\"egress\"", "\"net\":\"egress\",\"net_allow\":[1]", "'net_allow'" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *text = mutate(rows[i].from, rows[i].to);
		struct sandbox_spec *s = NULL;
		struct err *e = NULL;
		int r = sandbox_spec_parse(text, strlen(text), &s, &e);
		if (r == 0 || !strstr(e->msg, rows[i].field))
			fail_msg("row %zu: r=%d msg=%s", i, r, e ? e->msg : "(none)");
		assert_null(s);
		err_free(&e);
		free(text);
	}
}

static void test_spec_write_read_roundtrip(void **state)
{
	struct sandbox_spec *s = NULL, *t = NULL;
	struct err *e = NULL;
	char dir[] = "/tmp/test_spec.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/spec.json", dir);
	assert_int_equal(sandbox_spec_parse(good, strlen(good), &s, &e), 0);
	s->cwd = xstrdup("/home/alice/work");
	assert_int_equal(sandbox_spec_write(s, path, &e), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(sandbox_spec_read(path, &t, &e), 0);
	assert_string_equal(t->cwd, "/home/alice/work");
	assert_string_equal(t->argv[2], s->argv[2]);
	assert_int_equal(t->memory_bytes, s->memory_bytes);
	assert_int_equal(t->cpu_millis, 500);
	assert_string_equal(t->ports[0].socket_name, "s.sock");
	/* an invalid spec is not written */
	t->uid = 0;
	assert_true(sandbox_spec_write(t, path, &e) < 0);
	assert_non_null(strstr(e->msg, "'uid'"));
	err_free(&e);
	unlink(path);
	rmdir(dir);
	free(path);
	sandbox_spec_free(s);
	sandbox_spec_free(t);
}

static void test_spec_init_path(void **state)
{
	setenv("NBGATE_INIT", "/opt/x/nbgate-init", 1);
	char *p = sandbox_init_path();
	assert_string_equal(p, "/opt/x/nbgate-init");
	free(p);
	unsetenv("NBGATE_INIT");
	p = sandbox_init_path();
	assert_true(p[0] == '/');
	assert_non_null(strstr(p, "/nbgate-init"));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parse_good),
		cmocka_unit_test(test_spec_errors_name_the_field),
		cmocka_unit_test(test_spec_write_read_roundtrip),
		cmocka_unit_test(test_spec_init_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
