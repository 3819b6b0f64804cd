/* Unit tests for spawner/netallow.c: the egress allow-list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "spawner/netallow.c"

static char *write_tmp(const char *text)
{
	char *path = xstrdup("/tmp/nbgate-resolv.XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

static void test_resolvers_and_api(void **state)
{
	char *p = write_tmp("# comment\nsearch example\nnameserver 10.255.255.53\n"
			    "nameserver 127.0.0.53\nnameserver ::1\nnameserver fd00::35\n"
			    "nameserver 10.255.255.53\nnameserver fe80::1%eth0\noptions edns0\n");
	char **v = spawner_net_allow(p, "http://192.168.1.5:8000/hub/api");

	(void)state;
	assert_non_null(v);
	assert_string_equal(v[0], "10.255.255.53");
	assert_string_equal(v[1], "fd00::35");
	assert_string_equal(v[2], "192.168.1.5");
	assert_null(v[3]);
	xstrv_free(v);
	unlink(p);
	free(p);
}

static void test_loopback_hub_and_no_file(void **state)
{
	(void)state;
	/* loopback hub, no resolv.conf: nothing to allow */
	assert_null(spawner_net_allow("/nonexistent/resolv.conf", "http://127.0.0.1:8000/hub/api"));
	assert_null(spawner_net_allow(NULL, "http://[::1]:8000/hub/api"));
	assert_null(spawner_net_allow(NULL, "https://hub.example.org/hub/api"));
	assert_null(spawner_net_allow(NULL, "not a url"));
	assert_null(spawner_net_allow(NULL, NULL));
}

static void test_v6_url_and_cap(void **state)
{
	char big[4096] = "";
	char *p, **v;

	(void)state;
	v = spawner_net_allow(NULL, "https://[fd00::7]:443/hub/api");
	assert_non_null(v);
	assert_string_equal(v[0], "fd00::7");
	assert_null(v[1]);
	xstrv_free(v);
	/* more resolvers than the cap: exactly NET_ALLOW_MAX kept */
	for (int i = 0; i < NET_ALLOW_MAX + 4; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), "nameserver 10.0.0.%d\n", i + 1);
	p = write_tmp(big);
	v = spawner_net_allow(p, NULL);
	assert_int_equal(xstrv_len(v), NET_ALLOW_MAX);
	xstrv_free(v);
	unlink(p);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolvers_and_api),
		cmocka_unit_test(test_loopback_hub_and_no_file),
		cmocka_unit_test(test_v6_url_and_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
