/*
 * Unit tests for gateway/handoff.c (subdomain-mode login hand-off, JH-3):
 * which `next` values name the user's own host (never another user's or
 * another host: the JH-1 table applied to user hosts), the path kept on
 * that host, host -> user, and the minted redirect with its one-time code.
 * The callback handler itself runs in tests/integration/t5008.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/handoff.c"

#include <ftw.h>
#include <stdio.h>

#include "common/db.h"

static struct gw_cfg mkcfg(const char *public_url)
{
	struct gw_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.url_mode = GW_URL_SUBDOMAIN;
	cfg.domain = "nbgate.test";
	cfg.public_url = (char *)public_url;
	return cfg;
}

static void expect_next(const struct gw_cfg *cfg, const char *next, const char *user,
			const char *want)
{
	char *got = handoff_next_path(cfg, next, user);
	const char *shown = next ? next : "(null)";

	if (!want) {
		if (got)
			fail_msg("next '%s' for %s: got '%s', want NULL", shown, user, got);
		return;
	}
	if (!got || strcmp(got, want) != 0)
		fail_msg("next '%s' for %s: got '%s', want '%s'", shown, user,
			 got ? got : "NULL", want);
	free(got);
}

static void test_next_path(void **state)
{
	struct gw_cfg cfg = mkcfg("http://hub.nbgate.test:8000");
	static const char *const rows[][2] = {
		/* the user's own host: the path is kept (query too, no fragment) */
		{ "http://alice.nbgate.test:8000/user/alice/lab", "/user/alice/lab" },
		{ "HTTP://Alice.NBGATE.test:8000/user/alice/api/status?x=1#frag",
		  "/user/alice/api/status?x=1" },
		{ "http://alice.nbgate.test:8000//user/alice/x", "/user/alice/x" },
		/* own host, path elsewhere: the user's prefix */
		{ "http://alice.nbgate.test:8000", "/user/alice/" },
		{ "http://alice.nbgate.test:8000/", "/user/alice/" },
		{ "http://alice.nbgate.test:8000?next=x", "/user/alice/" },
		{ "http://alice.nbgate.test:8000/user/alice", "/user/alice/" },
		{ "http://alice.nbgate.test:8000/user/alicex/", "/user/alice/" },
		{ "http://alice.nbgate.test:8000/user/bob/lab", "/user/alice/" },
		{ "http://alice.nbgate.test:8000///evil.example/", "/user/alice/" },
		{ "http://alice.nbgate.test:8000/hub/admin", "/user/alice/" },
		/* never another user's host, another host, port or scheme */
		{ "http://bob.nbgate.test:8000/user/bob/lab", NULL },
		{ "http://alice.nbgate.test:8001/user/alice/lab", NULL },
		{ "http://alice.nbgate.test/user/alice/lab", NULL },
		{ "https://alice.nbgate.test:8000/user/alice/lab", NULL },
		{ "http://alice.nbgate.test:8000.evil.example/user/alice/", NULL },
		{ "http://alice.nbgate.test:8000@evil.example/user/alice/", NULL },
		{ "http://alice.nbgate.test.evil.example:8000/user/alice/", NULL },
		{ "http://xalice.nbgate.test:8000/user/alice/", NULL },
		{ "http://alice.x.nbgate.test:8000/user/alice/", NULL },
		{ "//alice.nbgate.test:8000/user/alice/", NULL },
		{ "http://hub.nbgate.test:8000/user/alice/", NULL },
		/* JupyterHub's refusals still hold */
		{ "http://alice.nbgate.test:8000/user/alice/\\evil", NULL },
		{ "http://alice.nbgate.test:8000/user/alice/\tx", NULL },
		{ "javascript:alert(1)", NULL },
		{ "/user/alice/lab", NULL },
		{ "", NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		expect_next(&cfg, rows[i][0], "alice", rows[i][1]);
	expect_next(&cfg, NULL, "alice", NULL);
	/* outside subdomain mode there are no user hosts */
	cfg.url_mode = GW_URL_PATH;
	expect_next(&cfg, "http://alice.nbgate.test:8000/user/alice/lab", "alice", NULL);
	/* default ports: none in public_url, none in the user origin */
	cfg = mkcfg("https://hub.nbgate.test/");
	expect_next(&cfg, "https://alice.nbgate.test/user/alice/lab", "alice", "/user/alice/lab");
	expect_next(&cfg, "https://alice.nbgate.test:443/user/alice/lab", "alice", NULL);
	expect_next(&cfg, "http://alice.nbgate.test/user/alice/lab", "alice", NULL);
}

static void test_user_path(void **state)
{
	static const char *const rows[][2] = {
		{ "/user/alice/lab?a=1", "/user/alice/lab?a=1" },
		{ "/user/alice/", "/user/alice/" },
		{ "///user/alice/x#y", "/user/alice/x" },
		{ "/user/alice", "/user/alice/" },
		{ "/user/alice?x", "/user/alice/" },
		{ "/user/alice2/", "/user/alice/" },
		{ "/user/bob/", "/user/alice/" },
		{ "user/alice/", "/user/alice/" },
		{ "https://evil.example/user/alice/", "/user/alice/" },
		{ "/user/alice/\\x", "/user/alice/" },
		{ "/user/alice/\r\nSet-Cookie: x", "/user/alice/" },
		{ "", "/user/alice/" },
	};
	char *got;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		got = handoff_user_path("alice", rows[i][0]);
		if (strcmp(got, rows[i][1]) != 0)
			fail_msg("path '%s': got '%s', want '%s'", rows[i][0], got, rows[i][1]);
		free(got);
	}
	got = handoff_user_path("alice", NULL);
	assert_string_equal(got, "/user/alice/");
	free(got);
}

static void test_host_user_and_origin(void **state)
{
	struct gw_cfg cfg = mkcfg("http://hub.nbgate.test:8000");
	static const char *const rows[][2] = {
		{ "alice.nbgate.test", "alice" }, { "a-b_c.nbgate.test", "a-b_c" },
		{ "hub.nbgate.test", NULL }, { "nbgate.test", NULL }, { ".nbgate.test", NULL },
		{ "a.b.nbgate.test", NULL }, { "alice.nbgate.test.evil", NULL },
		{ "alicenbgate.test", NULL }, { "127.0.0.1", NULL }, { "", NULL },
	};
	char *got;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		got = handoff_host_user(&cfg, rows[i][0]);
		if (!rows[i][1] ? got != NULL : !got || strcmp(got, rows[i][1]) != 0)
			fail_msg("host '%s': got '%s'", rows[i][0], got ? got : "NULL");
		free(got);
	}
	assert_null(handoff_host_user(&cfg, NULL));
	got = handoff_user_origin(&cfg, "alice");
	assert_string_equal(got, "http://alice.nbgate.test:8000");
	free(got);
	cfg = mkcfg("HTTPS://Hub.nbgate.test/x");
	got = handoff_user_origin(&cfg, "alice");
	assert_string_equal(got, "https://alice.nbgate.test");
	free(got);
	cfg.url_mode = GW_URL_PATH;
	assert_null(handoff_user_origin(&cfg, "alice"));
	assert_null(handoff_host_user(&cfg, "alice.nbgate.test"));
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

/* The redirect carries a code that works once, on alice's host only. */
static void test_location(void **state)
{
	struct gw_cfg cfg = mkcfg("http://hub.nbgate.test:8000");
	char dir[64] = "/tmp/nbgate-test-handoff-XXXXXX", *path, *sid = NULL, *loc = NULL;
	const char *want = "http://alice.nbgate.test:8000/hub/oauth_callback?code=";
	struct gw gw = { .cfg = &cfg };
	int64_t alice, hub, uid = 0, parent = 0;
	struct err *e = NULL;
	char code[64];
	const char *amp;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/state.db", dir);
	assert_int_equal(db_open(&gw.db, path, NULL), 0);
	assert_int_equal(users_create(gw.db, "alice", false, NULL, 1, &alice, NULL), 0);
	assert_int_equal(users_session_create(gw.db, alice, NULL, time_now_ms(), &sid, &hub, NULL),
			 0);
	assert_true(handoff_location(&gw, alice, "alice", 0, "/user/alice/", &loc, &e) < 0);
	err_free(&e);
	assert_int_equal(handoff_location(&gw, alice, "alice", hub, "/user/alice/x?a=1&b", &loc,
					  NULL), 0);
	assert_int_equal(strncmp(loc, want, strlen(want)), 0);
	amp = strchr(loc + strlen(want), '&');
	assert_non_null(amp);
	assert_string_equal(amp, "&next=%2Fuser%2Falice%2Fx%3Fa%3D1%26b");
	assert_int_equal(amp - (loc + strlen(want)), USERS_SESSION_ID_LEN);
	snprintf(code, sizeof(code), "%.*s", USERS_SESSION_ID_LEN, loc + strlen(want));
	assert_int_equal(users_auth_code_consume(gw.db, code, USERS_AUTH_CODE_HANDOFF,
						 "bob.nbgate.test", time_now_ms(), &uid, &parent,
						 NULL), 0);
	free(loc);
	assert_int_equal(handoff_location(&gw, alice, "alice", hub, "/user/alice/", &loc, NULL), 0);
	snprintf(code, sizeof(code), "%.*s", USERS_SESSION_ID_LEN, loc + strlen(want));
	assert_int_equal(users_auth_code_consume(gw.db, code, USERS_AUTH_CODE_HANDOFF,
						 "alice.nbgate.test", time_now_ms(), &uid, &parent,
						 NULL), 1);
	assert_int_equal(uid, alice);
	assert_int_equal(parent, hub);
	assert_int_equal(users_auth_code_consume(gw.db, code, USERS_AUTH_CODE_HANDOFF,
						 "alice.nbgate.test", time_now_ms(), &uid, &parent,
						 NULL), 0);
	free(loc);
	free(sid);
	db_close(gw.db);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_path),
		cmocka_unit_test(test_user_path),
		cmocka_unit_test(test_host_user_and_origin),
		cmocka_unit_test(test_location),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
