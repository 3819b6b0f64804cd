/* Unit tests for images/recipe.c: strict recipe validation (every field
 * error names its field) and the recipe digest (stable, and sensitive to
 * every byte, file name and added file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "images/recipe.c"

#include <fcntl.h>
#include <unistd.h>

static const char base_recipe[] =
	"{\"name\":\"t-1\",\"description\":\"d\",\"suite\":\"trixie\","
	"\"packages\":[\"python3\",\"python3-ipykernel\"],\"post_install\":[],"
	"\"build_env\":{\"A\":\"1\"},\"env\":[\"LANG=C.UTF-8\"],"
	"\"cmd\":[\"/usr/bin/x\",\"--sock={sock}\",\"{base_url}\"],\"user\":\"jovyan\","
	"\"home\":\"/home/jovyan\",\"ports\":[8888],"
	"\"labels\":{\"io.nbgate.server-type\":\"jupyter\",\"io.nbgate.strip-prefix\":\"false\"}}";

/* base_recipe with field `key` replaced by the JSON text `val` (NULL removes it). */
static char *with_field(const char *key, const char *val)
{
	cJSON *o = cJSON_Parse(base_recipe);
	char *s;

	assert_non_null(o);
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	if (val) {
		cJSON *v = cJSON_Parse(val);

		assert_non_null(v);
		cJSON_AddItemToObject(o, key, v);
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void test_recipe_base_parses(void **state)
{
	struct img_recipe *r = NULL;
	struct err *e = NULL;

	assert_int_equal(img_recipe_parse(base_recipe, strlen(base_recipe), NULL, &r, &e), 0);
	assert_null(e);
	assert_string_equal(r->name, "t-1");
	assert_string_equal(r->packages[1], "python3-ipykernel");
	assert_null(r->packages[2]);
	assert_string_equal(r->build_env[0], "A=1");
	assert_string_equal(r->cmd[1], "--sock={sock}");
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 8888);
	assert_string_equal(img_recipe_label(r, "io.nbgate.server-type"), "jupyter");
	assert_null(img_recipe_label(r, "nope"));
	img_recipe_free(r);
}

static void test_recipe_field_errors(void **state)
{
	static const struct { const char *key, *val, *want; } rows[] = {
		{ "bogus", "1", "field 'bogus': unknown field" },
		{ "name", NULL, "field 'name': missing" },
		{ "name", "5", "field 'name': expected a string" },
		{ "name", "\"Bad_Name\"", "field 'name': 'Bad_Name' is not a valid name" },
		{ "name", "\"-x\"", "field 'name'" },
		{ "description", "[]", "field 'description': expected a string" },
		{ "suite", NULL, "field 'suite': missing" },
		{ "suite", "\"tri xie\"", "field 'suite'" },
		{ "packages", NULL, "field 'packages': missing" },
		{ "packages", "[]", "field 'packages': must not be empty" },
		{ "packages", "\"python3\"", "field 'packages': expected an array" },
		{ "packages", "[\"a1\",\"ok\",\"x\",\"--evil\"]", "field 'packages[2]'" },
		{ "packages", "[\"ok\",\"b,c\"]", "field 'packages[1]': 'b,c' is not a Debian package" },
		{ "packages", "[\"ok\",\"zz\",\"yy\",7]", "field 'packages[3]': expected a string" },
		{ "post_install", "[\"../x.sh\"]", "field 'post_install[0]'" },
		{ "post_install", "{}", "field 'post_install': expected an array" },
		{ "build_env", "[]", "field 'build_env': expected an object" },
		{ "build_env", "{\"1A\":\"x\"}", "field 'build_env.1A'" },
		{ "build_env", "{\"A\":1}", "field 'build_env.A': expected a string" },
		{ "env", "[\"NOEQUALS\"]", "field 'env[0]'" },
		{ "env", "[\"A=1\",\"=x\"]", "field 'env[1]'" },
		{ "cmd", NULL, "field 'cmd': missing" },
		{ "cmd", "[]", "field 'cmd': must not be empty" },
		{ "cmd", "[\"relative\"]", "field 'cmd[0]': 'relative' is not an absolute path" },
		{ "cmd", "[\"/x\",\"{nope}\"]", "field 'cmd[1]': unknown placeholder" },
		{ "user", NULL, "field 'user': missing" },
		{ "user", "\"Root User\"", "field 'user'" },
		{ "home", "\"relative\"", "field 'home'" },
		{ "home", "\"/home/../etc\"", "field 'home'" },
		{ "ports", "[0]", "field 'ports[0]'" },
		{ "ports", "[80, 1.5]", "field 'ports[1]'" },
		{ "ports", "[80, 70000]", "field 'ports[1]'" },
		{ "ports", "\"80\"", "field 'ports'" },
		{ "labels", "[]", "field 'labels': expected an object" },
		{ "labels", "{\"a\":1}", "field 'labels.a': expected a string" },
		{ "labels", "{\"io.nbgate.server-type\":\"emacs\"}", "field 'labels.io.nbgate.server-type'" },
		{ "labels", "{\"io.nbgate.strip-prefix\":\"yes\"}", "field 'labels.io.nbgate.strip-prefix'" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *text = with_field(rows[i].key, rows[i].val);
		struct img_recipe *r = NULL;
		struct err *e = NULL;
		int rc = img_recipe_parse(text, strlen(text), NULL, &r, &e);

		if (rc == 0 || !e || !strstr(e->msg, rows[i].want) ||
		    !strstr(e->msg, "recipe.json: "))
			fail_msg("row %zu (%s): got rc %d msg '%s', want '%s'", i, rows[i].key, rc,
				 e ? e->msg : "(none)", rows[i].want);
		assert_int_equal(e->code, EINVAL);
		assert_null(r);
		err_free(&e);
		free(text);
	}
}

static void test_recipe_not_json(void **state)
{
	struct img_recipe *r = NULL;
	struct err *e = NULL;

	assert_true(img_recipe_parse("[1,", 3, NULL, &r, &e) < 0);
	assert_non_null(strstr(e->msg, "recipe.json"));
	err_free(&e);
	assert_true(img_recipe_parse("[]", 2, NULL, &r, &e) < 0);
	assert_non_null(strstr(e->msg, "top level"));
	err_free(&e);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	free(p);
}

static char *digest_of(const char *dir)
{
	struct err *e = NULL;
	char *d = NULL;

	if (images_recipe_digest(dir, &d, &e) < 0)
		fail_msg("digest: %s", e->msg);
	assert_int_equal(strlen(d), 7 + 64);
	assert_memory_equal(d, "sha256:", 7);
	return d;
}

static void test_recipe_digest(void **state)
{
	char dir[] = "/tmp/test-recipe-XXXXXX";
	char *d0, *d1, *d2, *d3, *d4, *d5, *sub;
	struct err *e = NULL;

	assert_non_null(mkdtemp(dir));
	write_file(dir, "recipe.json", base_recipe);
	write_file(dir, "a.sh", "echo a\n");
	d0 = digest_of(dir);
	d1 = digest_of(dir);
	assert_string_equal(d0, d1);               /* stable */
	free(d1);
	d1 = NULL;
	write_file(dir, "a.sh", "echo b\n");
	d2 = digest_of(dir);
	assert_string_not_equal(d0, d2);           /* one byte changed */
	write_file(dir, "a.sh", "echo a\n");
	d3 = digest_of(dir);
	assert_string_equal(d0, d3);               /* and back */
	write_file(dir, "b.sh", "");
	d4 = digest_of(dir);
	assert_string_not_equal(d0, d4);           /* an added (empty) file */
	sub = xasprintf("%s/b.sh", dir);
	unlink(sub);
	free(sub);
	write_file(dir, "a.sh.", "echo a\n");      /* same bytes under another name */
	sub = xasprintf("%s/a.sh", dir);
	unlink(sub);
	free(sub);
	d5 = digest_of(dir);
	assert_string_not_equal(d0, d5);
	sub = xasprintf("%s/a.sh.", dir);
	unlink(sub);
	free(sub);
	sub = xasprintf("%s/recipe.json", dir);
	unlink(sub);
	free(sub);
	rmdir(dir);
	assert_true(images_recipe_digest(dir, &d1, &e) < 0); /* folder gone */
	assert_int_equal(e->code, ENOENT);
	err_free(&e);
	free(d0), free(d2), free(d3), free(d4), free(d5);
}

/* The shipped recipes are valid, with their post-install files present. */
static void test_recipe_shipped(void **state)
{
	static const char *const names[] = { "minimal", "jupyterlab", "vscode" };

	for (size_t i = 0; i < 3; i++) {
		char *dir = xasprintf("images/recipes/%s", names[i]);
		struct img_recipe *r = NULL;
		struct err *e = NULL;

		if (access(dir, F_OK) < 0) { /* run from elsewhere than the repo root */
			free(dir);
			skip();
		}
		if (img_recipe_load(dir, &r, &e) < 0)
			fail_msg("%s: %s", dir, e->msg);
		assert_string_equal(r->name, names[i]);
		assert_non_null(img_recipe_label(r, "io.nbgate.server-type"));
		img_recipe_free(r);
		free(dir);
	}
}

static void test_recipe_missing_post_install_file(void **state)
{
	char dir[] = "/tmp/test-recipe-XXXXXX";
	char *text = with_field("post_install", "[\"nothere.sh\"]");
	struct img_recipe *r = NULL;
	struct err *e = NULL;

	assert_non_null(mkdtemp(dir));
	assert_true(img_recipe_parse(text, strlen(text), dir, &r, &e) < 0);
	assert_non_null(strstr(e->msg, "field 'post_install[0]': 'nothere.sh' is not a file"));
	err_free(&e);
	write_file(dir, "nothere.sh", "true\n");
	assert_int_equal(img_recipe_parse(text, strlen(text), dir, &r, &e), 0);
	img_recipe_free(r);
	free(text);
	text = xasprintf("%s/nothere.sh", dir);
	unlink(text);
	free(text);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recipe_base_parses),
		cmocka_unit_test(test_recipe_field_errors),
		cmocka_unit_test(test_recipe_not_json),
		cmocka_unit_test(test_recipe_digest),
		cmocka_unit_test(test_recipe_shipped),
		cmocka_unit_test(test_recipe_missing_post_install_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
