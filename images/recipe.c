/*
 * images/recipe.c: recipe.json parsing with strict validation, and the
 * recipe digest.
 *
 * Every error names the field the way a person finds it in the file
 * ("recipe.json: field 'packages[3]': ..."). Strings that end up in a
 * command line (packages go into mmdebstrap --include, comma-separated)
 * are restricted to what their kind allows, so a recipe cannot smuggle an
 * option or a second package in.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "images/image.h"
#include "images/internal.h"

#define RECIPE_MAX_BYTES (256 * 1024)
#define RECIPE_MAX_FILES 256
#define RECIPE_FILE_MAX (16 * 1024 * 1024)

static const char *const recipe_keys[] = {
	"name", "description", "suite", "packages", "post_install", "build_env", "env",
	"cmd", "user", "home", "ports", "labels", NULL,
};

static const char *const placeholders[] = { "{sock}", "{base_url}", "{home}", "{user}",
					    "{server}", NULL };

#define FERR(err, fmt, ...) err_set(err, EINVAL, "recipe.json: field " fmt, __VA_ARGS__)

bool img_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

/* Debian package names (policy 5.6.1) plus an optional "=version". */
static bool pkg_valid(const char *s)
{
	size_t i = 0;

	if (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0]))
		return false;
	for (; s[i] && s[i] != '='; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
		      strchr("+-.", s[i])))
			return false;
	if (i < 2)
		return false;
	if (s[i] == '=') {
		if (!s[++i])
			return false;
		for (; s[i]; i++)
			if (!(isalnum((unsigned char)s[i]) || strchr("+-.~:", s[i])))
				return false;
	}
	return true;
}

static bool envkey_valid(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

static bool user_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static bool abs_path_valid(const char *s)
{
	if (s[0] != '/' || strstr(s, "/../") || strstr(s, "/./") || strstr(s, "//"))
		return false;
	size_t n = strlen(s);
	if (n >= 3 && strcmp(s + n - 3, "/..") == 0)
		return false;
	return n < 256;
}

/* A file name inside the recipe folder: no path separators, not hidden. */
static bool file_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || strchr("._-", s[i])))
			return false;
	return true;
}

/* Every "{...}" in an argument must be a known placeholder. */
static bool placeholders_valid(const char *s, const char **bad)
{
	for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{')) {
		size_t i;

		for (i = 0; placeholders[i]; i++)
			if (strncmp(p, placeholders[i], strlen(placeholders[i])) == 0)
				break;
		if (!placeholders[i]) {
			*bad = p;
			return false;
		}
	}
	return true;
}

static int check_keys(const cJSON *root, struct err **err)
{
	const cJSON *it;

	if (!cJSON_IsObject(root))
		return err_set(err, EINVAL, "recipe.json: expected an object at the top level");
	cJSON_ArrayForEach(it, root) {
		size_t i;

		for (i = 0; recipe_keys[i]; i++)
			if (strcmp(it->string, recipe_keys[i]) == 0)
				break;
		if (!recipe_keys[i])
			return FERR(err, "'%s': unknown field (known: name, description, suite, "
				    "packages, post_install, build_env, env, cmd, user, home, "
				    "ports, labels)", it->string);
	}
	return 0;
}

static int get_str(const cJSON *root, const char *key, bool required, char **out,
		   struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);

	if (!v) {
		if (required)
			return FERR(err, "'%s': missing", key);
		*out = xstrdup("");
		return 0;
	}
	if (!cJSON_IsString(v))
		return FERR(err, "'%s': expected a string", key);
	if (strlen(v->valuestring) > 4096)
		return FERR(err, "'%s': longer than 4096 bytes", key);
	*out = xstrdup(v->valuestring);
	return 0;
}

/* Array of strings; each is checked by ok() (NULL: any) with `what` in the
 * error. A missing optional array becomes an empty vector. */
static int get_strv(const cJSON *root, const char *key, bool required, bool nonempty,
		    bool (*ok)(const char *), const char *what, char ***out, struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key), *it;
	char **vec;
	int i = 0, n;

	if (!v && required)
		return FERR(err, "'%s': missing", key);
	if (v && !cJSON_IsArray(v))
		return FERR(err, "'%s': expected an array of strings", key);
	n = v ? cJSON_GetArraySize(v) : 0;
	if (nonempty && n == 0)
		return FERR(err, "'%s': must not be empty", key);
	if (n > 1024)
		return FERR(err, "'%s': more than 1024 entries", key);
	vec = xcalloc((size_t)n + 1, sizeof(char *));
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || strlen(it->valuestring) > 4096) {
			xstrv_free(vec);
			return FERR(err, "'%s[%d]': expected a string (at most 4096 bytes)", key, i);
		}
		if (ok && !ok(it->valuestring)) {
			FERR(err, "'%s[%d]': '%s' is not %s", key, i, it->valuestring, what);
			xstrv_free(vec);
			return -EINVAL;
		}
		vec[i++] = xstrdup(it->valuestring);
	}
	*out = vec;
	return 0;
}

static bool env_entry_valid(const char *s)
{
	const char *eq = strchr(s, '=');

	return eq && envkey_valid(s, (size_t)(eq - s));
}

static int get_build_env(const cJSON *root, char ***out, struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "build_env"), *it;
	char **vec;
	int i = 0;

	if (v && !cJSON_IsObject(v))
		return FERR(err, "'%s': expected an object of strings", "build_env");
	vec = xcalloc((size_t)(v ? cJSON_GetArraySize(v) : 0) + 1, sizeof(char *));
	cJSON_ArrayForEach(it, v) {
		if (!envkey_valid(it->string, strlen(it->string))) {
			xstrv_free(vec);
			return FERR(err, "'build_env.%s': not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
				    it->string);
		}
		if (!cJSON_IsString(it)) {
			xstrv_free(vec);
			return FERR(err, "'build_env.%s': expected a string", it->string);
		}
		vec[i++] = xasprintf("%s=%s", it->string, it->valuestring);
	}
	*out = vec;
	return 0;
}

static int check_label(const char *k, const char *v, struct err **err)
{
	if (strcmp(k, "io.nbgate.server-type") == 0 && strcmp(v, "jupyterlab") != 0 &&
	    strcmp(v, "vscode") != 0 && strcmp(v, "jupyter") != 0)
		return FERR(err, "'labels.%s': '%s' is not jupyterlab, vscode or jupyter", k, v);
	if (strcmp(k, "io.nbgate.strip-prefix") == 0 && strcmp(v, "true") != 0 &&
	    strcmp(v, "false") != 0)
		return FERR(err, "'labels.%s': '%s' is not \"true\" or \"false\"", k, v);
	if (strlen(k) == 0 || strlen(k) > 256 || strlen(v) > 4096)
		return FERR(err, "'labels.%s': key or value too long", k);
	return 0;
}

static int get_labels(const cJSON *root, char ***out, struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "labels"), *it;
	char **vec;
	int i = 0;

	if (v && !cJSON_IsObject(v))
		return FERR(err, "'%s': expected an object of strings", "labels");
	vec = xcalloc(2 * (size_t)(v ? cJSON_GetArraySize(v) : 0) + 1, sizeof(char *));
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it)) {
			xstrv_free(vec);
			return FERR(err, "'labels.%s': expected a string", it->string);
		}
		if (check_label(it->string, it->valuestring, err) < 0) {
			xstrv_free(vec);
			return -EINVAL;
		}
		vec[i++] = xstrdup(it->string);
		vec[i++] = xstrdup(it->valuestring);
	}
	*out = vec;
	return 0;
}

static int get_ports(const cJSON *root, struct img_recipe *r, struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "ports"), *it;
	int i = 0;

	if (!v)
		return 0;
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 64)
		return FERR(err, "'%s': expected an array of at most 64 port numbers", "ports");
	r->ports = xcalloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(int));
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int)it->valuedouble ||
		    it->valuedouble < 1 || it->valuedouble > 65535)
			return FERR(err, "'ports[%d]': expected an integer in 1..65535", i);
		r->ports[i++] = (int)it->valuedouble;
	}
	r->n_ports = i;
	return 0;
}

static bool suite_valid(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && s[i] != '-')
			return false;
	return n > 0 && n < 32;
}

static int check_cmd(const struct img_recipe *r, struct err **err)
{
	const char *bad = NULL;

	if (!r->cmd || !r->cmd[0])
		return FERR(err, "'%s': must not be empty", "cmd");
	for (int i = 0; r->cmd[i]; i++)
		if (!placeholders_valid(r->cmd[i], &bad))
			return FERR(err, "'cmd[%d]': unknown placeholder at '%.20s' (known: {sock} "
				    "{base_url} {home} {user} {server})", i, bad);
	if (r->cmd[0][0] != '/')
		return FERR(err, "'cmd[0]': '%s' is not an absolute path", r->cmd[0]);
	return 0;
}

static int check_files(const struct img_recipe *r, struct err **err)
{
	for (int i = 0; r->dir && r->post_install[i]; i++) {
		cleanup_free char *p = xasprintf("%s/%s", r->dir, r->post_install[i]);
		struct stat st;

		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
			return FERR(err, "'post_install[%d]': '%s' is not a file in %s", i,
				    r->post_install[i], r->dir);
	}
	return 0;
}

/* name, description, suite */
static int parse_head(const cJSON *root, struct img_recipe *r, struct err **err)
{
	if (check_keys(root, err) < 0 || get_str(root, "name", true, &r->name, err) < 0)
		return -EINVAL;
	if (!img_name_valid(r->name))
		return FERR(err, "'name': '%s' is not a valid name ([a-z0-9-], at most 63, not "
			    "starting with '-')", r->name);
	if (get_str(root, "description", false, &r->description, err) < 0 ||
	    get_str(root, "suite", true, &r->suite, err) < 0)
		return -EINVAL;
	if (!suite_valid(r->suite))
		return FERR(err, "'suite': '%s' is not a Debian suite name", r->suite);
	return 0;
}

/* user, home, ports, labels */
static int parse_runtime(const cJSON *root, struct img_recipe *r, struct err **err)
{
	if (get_str(root, "user", true, &r->user, err) < 0)
		return -EINVAL;
	if (!user_valid(r->user))
		return FERR(err, "'user': '%s' is not a user name", r->user);
	if (get_str(root, "home", true, &r->home, err) < 0)
		return -EINVAL;
	if (!abs_path_valid(r->home))
		return FERR(err, "'home': '%s' is not a normalised absolute path", r->home);
	if (get_ports(root, r, err) < 0 || get_labels(root, &r->labels, err) < 0)
		return -EINVAL;
	return 0;
}

/* In file order, so the first error reported is the first one a reader meets. */
static int parse_fields(const cJSON *root, struct img_recipe *r, struct err **err)
{
	if (parse_head(root, r, err) < 0 ||
	    get_strv(root, "packages", true, true, pkg_valid, "a Debian package name",
		     &r->packages, err) < 0 ||
	    get_strv(root, "post_install", false, false, file_name_valid,
		     "a file name in the recipe folder", &r->post_install, err) < 0 ||
	    get_build_env(root, &r->build_env, err) < 0 ||
	    get_strv(root, "env", false, false, env_entry_valid, "K=V", &r->env, err) < 0 ||
	    get_strv(root, "cmd", true, true, NULL, NULL, &r->cmd, err) < 0 ||
	    check_cmd(r, err) < 0 || parse_runtime(root, r, err) < 0)
		return -EINVAL;
	return check_files(r, err);
}

int img_recipe_parse(const char *text, size_t len, const char *dir,
		     struct img_recipe **out, struct err **err)
{
	cleanup_json cJSON *root = json_parse(text, len, err);
	struct img_recipe *r;

	if (!root)
		return err_wrap(err, "recipe.json");
	r = xcalloc(1, sizeof(*r));
	r->dir = dir ? xstrdup(dir) : NULL;
	if (parse_fields(root, r, err) < 0) {
		img_recipe_free(r);
		return -EINVAL;
	}
	*out = r;
	return 0;
}

int img_recipe_load(const char *dir, struct img_recipe **out, struct err **err)
{
	cleanup_free char *path = xasprintf("%s/recipe.json", dir);
	cleanup_free char *text = NULL;
	size_t len;

	if (file_read_all(path, 0, RECIPE_MAX_BYTES, &text, &len, err) < 0)
		return err_wrap(err, "recipe '%s'", dir);
	return img_recipe_parse(text, len, dir, out, err);
}

void img_recipe_free(struct img_recipe *r)
{
	if (!r)
		return;
	free(r->dir);
	free(r->name);
	free(r->description);
	free(r->suite);
	xstrv_free(r->packages);
	xstrv_free(r->post_install);
	xstrv_free(r->build_env);
	xstrv_free(r->env);
	xstrv_free(r->cmd);
	free(r->user);
	free(r->home);
	free(r->ports);
	xstrv_free(r->labels);
	free(r);
}

const char *img_recipe_label(const struct img_recipe *r, const char *key)
{
	for (int i = 0; r->labels && r->labels[i]; i += 2)
		if (strcmp(r->labels[i], key) == 0)
			return r->labels[i + 1];
	return NULL;
}

/* ---- digest ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Relative paths of every regular file under dir (recursive), sorted. */
static int list_files(const char *dir, const char *rel, char ***v, size_t *n,
		      struct err **err)
{
	cleanup_free char *path = rel ? xasprintf("%s/%s", dir, rel) : xstrdup(dir);
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (!d)
		return err_set_errno(err, "recipe folder '%s'", path);
	while (r == 0 && (de = readdir(d))) {
		cleanup_free char *sub = NULL, *full = NULL;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		sub = rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		full = xasprintf("%s/%s", dir, sub);
		if (lstat(full, &st) < 0) {
			r = err_set_errno(err, "recipe file '%s'", full);
		} else if (S_ISDIR(st.st_mode)) {
			r = list_files(dir, sub, v, n, err);
		} else if (*n >= RECIPE_MAX_FILES) {
			r = err_set(err, E2BIG, "recipe folder '%s': more than %d files", dir,
				    RECIPE_MAX_FILES);
		} else {
			/* symlinks are hashed by what they point to, like the build reads them */
			*v = xrealloc(*v, (*n + 2) * sizeof(char *));
			(*v)[(*n)++] = steal_ptr(&sub);
			(*v)[*n] = NULL;
		}
	}
	closedir(d);
	return r;
}

static int hash_file(crypto_hash_sha256_state *st, const char *dir, const char *rel,
		     struct err **err)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, rel);
	cleanup_free char *data = NULL;
	size_t len = 0;
	unsigned char lenb[8];

	if (file_read_all(path, 0, RECIPE_FILE_MAX, &data, &len, err) < 0)
		return -1;
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	/* name NUL length contents: unambiguous, so moving bytes between a
	 * name and its contents changes the digest */
	crypto_hash_sha256_update(st, (const unsigned char *)rel, strlen(rel) + 1);
	crypto_hash_sha256_update(st, lenb, sizeof(lenb));
	crypto_hash_sha256_update(st, (const unsigned char *)data, len);
	return 0;
}

int images_recipe_digest(const char *recipe_dir, char **out, struct err **err)
{
	crypto_hash_sha256_state st;
	unsigned char md[crypto_hash_sha256_BYTES];
	char hex[2 * sizeof(md) + 1];
	char **files = NULL;
	size_t n = 0;
	int r;

	if (sodium_init() < 0)
		return err_set(err, EIO, "sha256: libsodium init failed");
	r = list_files(recipe_dir, NULL, &files, &n, err);
	if (r < 0) {
		xstrv_free(files);
		return r;
	}
	if (n > 1)
		qsort(files, n, sizeof(char *), cmp_str);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)IMAGES_BUILDER_VERSION,
				  sizeof(IMAGES_BUILDER_VERSION));
	for (size_t i = 0; i < n && r == 0; i++)
		r = hash_file(&st, recipe_dir, files[i], err);
	xstrv_free(files);
	if (r < 0)
		return err_wrap(err, "recipe digest");
	crypto_hash_sha256_final(&st, md);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	*out = xasprintf("sha256:%s", hex);
	return 0;
}
