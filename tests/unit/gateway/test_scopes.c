/* Unit tests for gateway/scopes.c: parsing, expansion, filters,
 * intersection, escalation refusal (TOK-4) and the JH-10 guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/scopes.c"

static struct scope_set *expand(const char *text, const char *user, const char *server,
				const struct scope_set *inherit)
{
	struct scope_owner o = { user, server, inherit };
	struct scope_set *s = NULL;
	struct err *e = NULL;

	assert_int_equal(scopes_expand(text, &o, &s, &e), 0);
	assert_null(e);
	return s;
}

static void test_validate_known_and_unknown(void **state)
{
	static const char *const good[] = {
		"", "self", "inherit", "read:users", "admin:users!group=g1",
		"servers!server=alice/", "servers!server=alice/lab", "tokens!user",
		"access:servers!server", "read:users!user=a.b  list:users",
	};
	static const char *const bad[] = {
		"read:user", "admin", "read:users!user=ALICE", "read:users!group",
		"self!user=alice", "servers!server=alice", "read:users!host=x",
		"read:users!user=a/b", "read:users!user=",
	};
	struct err *e = NULL;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(scopes_validate(good[i], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(scopes_validate(bad[i], &e), -EINVAL);
		assert_int_equal(err_http_status(e), 400);
		err_free(&e);
	}
}

static void test_implied_scopes(void **state)
{
	struct scope_set *s = expand("admin:users", "root", NULL, NULL);

	assert_true(scopes_allow(s, "read:users", "bob", NULL, NULL));
	assert_true(scopes_allow(s, "list:users", NULL, NULL, NULL));
	assert_true(scopes_allow(s, "servers", "bob", "", NULL));
	assert_true(scopes_allow(s, "delete:users", "bob", NULL, NULL));
	assert_false(scopes_allow(s, "admin:groups", NULL, NULL, NULL));
	assert_false(scopes_allow(s, "tokens", "bob", NULL, NULL));
	scopes_free(s);

	s = expand("list:users", "root", NULL, NULL);
	assert_true(scopes_allow(s, "read:users:name", "x", NULL, NULL));
	assert_false(scopes_allow(s, "read:users", "x", NULL, NULL));
	scopes_free(s);
}

static void test_self_and_user_filter(void **state)
{
	struct scope_set *s = expand("self", "alice", NULL, NULL);
	const char *const g[] = { "g1", NULL };

	assert_true(scopes_allow(s, "read:users", "alice", NULL, NULL));
	assert_true(scopes_allow(s, "access:servers", "alice", "", NULL));
	assert_true(scopes_allow(s, "access:servers", "alice", "lab", NULL));
	assert_true(scopes_allow(s, "tokens", "alice", NULL, NULL));
	assert_false(scopes_allow(s, "read:users", "bob", NULL, g));
	assert_false(scopes_allow(s, "access:servers", "bob", "", NULL));
	assert_false(scopes_allow(s, "read:users", NULL, NULL, NULL));
	assert_false(scopes_allow(s, "admin:users", "alice", NULL, NULL));
	assert_true(scopes_allow_any(s, "read:users"));
	assert_false(scopes_allow_all(s, "read:users"));
	scopes_free(s);
}

static void test_server_filter(void **state)
{
	struct scope_set *s = expand(SCOPES_SERVER_TOKEN, "alice", "", NULL);

	assert_true(scopes_allow(s, "access:servers", "alice", "", NULL));
	assert_false(scopes_allow(s, "access:servers", "alice", "other", NULL));
	assert_false(scopes_allow(s, "access:servers", "bob", "", NULL));
	assert_true(scopes_allow(s, "users:activity", "alice", NULL, NULL));
	assert_false(scopes_allow(s, "read:users", "alice", NULL, NULL));
	assert_false(scopes_allow(s, "tokens", "alice", NULL, NULL));
	scopes_free(s);

	/* a bare !server without a server is dropped, not widened */
	s = expand("access:servers!server", "alice", NULL, NULL);
	assert_false(scopes_allow_any(s, "access:servers"));
	scopes_free(s);
	/* alice/lab must not match user "alice/la" + server "b"-like splits */
	s = expand("servers!server=alice/lab", "root", NULL, NULL);
	assert_true(scopes_allow(s, "servers", "alice", "lab", NULL));
	assert_false(scopes_allow(s, "servers", "alice", "la", NULL));
	assert_false(scopes_allow(s, "servers", "alice", NULL, NULL));
	scopes_free(s);
}

static void test_group_filter(void **state)
{
	struct scope_set *s = expand("admin:users!group=g admin:groups!group=g", "root", NULL,
				     NULL);
	const char *const in[] = { "x", "g", NULL };
	const char *const out[] = { "gg", NULL };

	assert_true(scopes_allow(s, "read:users", "carol", NULL, in));
	assert_false(scopes_allow(s, "read:users", "dave", NULL, out));
	assert_false(scopes_allow(s, "read:users", "dave", NULL, NULL));
	assert_true(scopes_allow_group(s, "read:groups", "g"));
	assert_false(scopes_allow_group(s, "read:groups", "h"));
	scopes_free(s);
}

static void test_intersection(void **state)
{
	struct scope_set *admin = NULL, *user = NULL, *tok, *eff;

	assert_int_equal(scopes_for_user("alice", true, "", &admin, NULL), 0);
	assert_int_equal(scopes_for_user("alice", false, NULL, &user, NULL), 0);
	tok = expand("list:users read:users", "alice", NULL, admin);

	eff = scopes_intersect(tok, admin);
	assert_true(scopes_allow(eff, "list:users", NULL, NULL, NULL));
	scopes_free(eff);
	/* admin lost: the same token no longer lists users (TOK-4) */
	eff = scopes_intersect(tok, user);
	assert_false(scopes_allow_any(eff, "list:users"));
	assert_false(scopes_allow(eff, "read:users", "bob", NULL, NULL));
	assert_true(scopes_allow(eff, "read:users", "alice", NULL, NULL));
	char *str = scopes_to_string(eff);
	assert_non_null(strstr(str, "read:users!user=alice"));
	assert_null(strstr(str, "list:users"));
	free(str);
	scopes_free(eff);
	scopes_free(tok);

	/* inherit = the owner's set */
	tok = expand("inherit", "alice", NULL, user);
	assert_true(scopes_allow(tok, "servers", "alice", "", NULL));
	assert_false(scopes_allow(tok, "servers", "bob", "", NULL));
	scopes_free(tok);
	scopes_free(admin);
	scopes_free(user);
}

static bool fake_in_group(void *ctx, const char *user, const char *group)
{
	return !strcmp(user, "carol") && !strcmp(group, "g");
}

static void test_subset_escalation(void **state)
{
	struct scope_set *user = NULL, *req;
	char *missing = NULL;

	assert_int_equal(scopes_for_user("alice", false, NULL, &user, NULL), 0);
	req = expand("admin:users", "alice", NULL, user);
	assert_false(scopes_subset(req, user, NULL, NULL, &missing));
	assert_string_equal(missing, "admin:users");
	free(missing);
	scopes_free(req);

	req = expand("read:users!user access:servers!server=alice/x", "alice", NULL, user);
	assert_true(scopes_subset(req, user, NULL, NULL, NULL));
	scopes_free(req);
	scopes_free(user);

	/* group-filtered owner: covers members only */
	user = expand("admin:users!group=g", "boss", NULL, NULL);
	req = expand("read:users!user=carol", "boss", NULL, NULL);
	assert_true(scopes_subset(req, user, fake_in_group, NULL, NULL));
	assert_false(scopes_subset(req, user, NULL, NULL, NULL));
	scopes_free(req);
	req = expand("read:users!user=dave", "boss", NULL, NULL);
	assert_false(scopes_subset(req, user, fake_in_group, NULL, NULL));
	scopes_free(req);
	req = expand("read:users", "boss", NULL, NULL);
	assert_false(scopes_subset(req, user, fake_in_group, NULL, NULL));
	scopes_free(req);
	scopes_free(user);
}

static void test_admin_guard(void **state)
{
	struct err *e = NULL;

	assert_int_equal(scopes_check_admin_change(true, true, true, NULL), 0);
	assert_int_equal(scopes_check_admin_change(false, false, false, NULL), 0);
	assert_int_equal(scopes_check_admin_change(false, false, true, &e), -EACCES);
	assert_int_equal(err_http_status(e), 403);
	err_free(&e);
	assert_int_equal(scopes_check_admin_change(false, true, false, &e), -EACCES);
	assert_string_equal(e->msg, "only admins can modify admins");
	err_free(&e);
}

static void test_roles(void **state)
{
	assert_string_equal(scopes_role("user"), "self");
	assert_non_null(strstr(scopes_role("admin"), "admin:users"));
	assert_null(scopes_role("root"));
	assert_null(scopes_role(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_known_and_unknown),
		cmocka_unit_test(test_implied_scopes),
		cmocka_unit_test(test_self_and_user_filter),
		cmocka_unit_test(test_server_filter),
		cmocka_unit_test(test_group_filter),
		cmocka_unit_test(test_intersection),
		cmocka_unit_test(test_subset_escalation),
		cmocka_unit_test(test_admin_guard),
		cmocka_unit_test(test_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
