#include "common/cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "common/xalloc.h"

/* A config file larger than this is a mistake, not a config. */
#define CFG_FILE_MAX (1024 * 1024)

/*
 * Per-type behaviour (redis typeInterface): parse the env/default syntax,
 * take a JSON value, render for printing, free.
 */
struct cfg_type_ops {
	const char *what; /* for "expected <what>" */
	int (*from_str)(const struct cfg_entry *e, void *f, const char *s,
			struct err **err);
	int (*from_json)(const struct cfg_entry *e, void *f, const cJSON *j,
			 struct err **err);
	cJSON *(*to_json)(const struct cfg_entry *e, const void *f);
	bool (*is_set)(const void *f);
	void (*release)(void *f);
};

static void *cfg_field(const struct cfg_entry *e, void *obj)
{
	return (char *)obj + e->offset;
}

static const void *cfg_cfield(const struct cfg_entry *e, const void *obj)
{
	return (const char *)obj + e->offset;
}

/* ---- parsers ---- */

/* Leading decimal digits of s as uint64 in *out; returns chars used, -1 on overflow. */
static int parse_digits(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int i = 0;

	while (s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		i++;
	}
	*out = v;
	return i;
}

struct cfg_unit {
	const char *suffix;
	uint64_t mult;
};

static const struct cfg_unit size_units[] = {
	{ "", 1 }, { "b", 1 },
	{ "k", 1ULL << 10 }, { "kb", 1ULL << 10 }, { "kib", 1ULL << 10 },
	{ "m", 1ULL << 20 }, { "mb", 1ULL << 20 }, { "mib", 1ULL << 20 },
	{ "g", 1ULL << 30 }, { "gb", 1ULL << 30 }, { "gib", 1ULL << 30 },
	{ "t", 1ULL << 40 }, { "tb", 1ULL << 40 }, { "tib", 1ULL << 40 },
	{ NULL, 0 },
};

static const struct cfg_unit duration_units[] = {
	{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 },
	{ NULL, 0 },
};

/* "<digits><unit>" -> value * mult with overflow checks. */
static int parse_with_unit(const char *s, const struct cfg_unit *units,
			   uint64_t limit, uint64_t *out)
{
	uint64_t v;
	int n = parse_digits(s, &v);

	if (n <= 0)
		return -1;
	for (const struct cfg_unit *u = units; u->suffix; u++) {
		if (strcasecmp(s + n, u->suffix) != 0)
			continue;
		if (v > limit / u->mult)
			return -1;
		*out = v * u->mult;
		return 0;
	}
	return -1;
}

int cfg_parse_size(const char *s, uint64_t *out, struct err **err)
{
	if (parse_with_unit(s, size_units, UINT64_MAX, out) < 0)
		return err_set(err, EINVAL,
			       "invalid size '%s' (use e.g. 512, 16KiB, 1MiB, 1GiB)", s);
	return 0;
}

int cfg_parse_duration_ms(const char *s, int64_t *out, struct err **err)
{
	uint64_t v;

	if (parse_with_unit(s, duration_units, INT64_MAX, &v) < 0)
		return err_set(err, EINVAL,
			       "invalid duration '%s' (use e.g. 500ms, 10s, 2m, 1h, 7d)",
			       s);
	*out = (int64_t)v;
	return 0;
}

static int parse_int64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "on", NULL };
	static const char *const no[] = { "false", "0", "no", "off", NULL };

	for (int i = 0; yes[i]; i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(s, no[i]))
			return *out = false, 0;
	}
	return -1;
}

/* ---- rendering helpers ---- */

/* Largest unit that divides v exactly: 16384 -> "16KiB". */
static cJSON *render_unit(uint64_t v, const char *const *names,
			  const uint64_t *mults, size_t n)
{
	char tmp[48];

	for (size_t i = n; i-- > 0;) {
		if (v && v % mults[i] == 0) {
			snprintf(tmp, sizeof(tmp), "%" PRIu64 "%s", v / mults[i],
				 names[i]);
			return cJSON_CreateString(tmp);
		}
	}
	snprintf(tmp, sizeof(tmp), "%" PRIu64 "%s", v, names[0]);
	return cJSON_CreateString(tmp);
}

/* ---- CFG_STRING ---- */

static int str_from_str(const struct cfg_entry *e, void *f, const char *s,
			struct err **err)
{
	char **p = f;

	free(*p);
	*p = xstrdup(s);
	return 0;
}

static int str_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			 struct err **err)
{
	if (!cJSON_IsString(j) || !j->valuestring)
		return -EINVAL;
	return str_from_str(e, f, j->valuestring, err);
}

static cJSON *str_to_json(const struct cfg_entry *e, const void *f)
{
	const char *s = *(char *const *)f;

	return cJSON_CreateString(s ? s : "");
}

static bool str_is_set(const void *f)
{
	const char *s = *(char *const *)f;

	return s && *s;
}

static void str_release(void *f)
{
	char **p = f;

	free(*p);
	*p = NULL;
}

/* ---- CFG_INT ---- */

static int int_from_str(const struct cfg_entry *e, void *f, const char *s,
			struct err **err)
{
	return parse_int64(s, f) < 0 ? -EINVAL : 0;
}

/* An integral JSON number within what a double holds exactly. */
static int json_exact_int(const cJSON *j, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(j))
		return -EINVAL;
	d = j->valuedouble;
	if (d != d || d < -9007199254740992.0 || d > 9007199254740992.0 ||
	    d != (double)(int64_t)d)
		return -EINVAL;
	*out = (int64_t)d;
	return 0;
}

static int int_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			 struct err **err)
{
	return json_exact_int(j, f);
}

static cJSON *int_to_json(const struct cfg_entry *e, const void *f)
{
	return cJSON_CreateNumber((double)*(const int64_t *)f);
}

static bool int_is_set(const void *f)
{
	return *(const int64_t *)f != 0;
}

/* ---- CFG_BOOL ---- */

static int bool_from_str(const struct cfg_entry *e, void *f, const char *s,
			 struct err **err)
{
	return parse_bool(s, f) < 0 ? -EINVAL : 0;
}

static int bool_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			  struct err **err)
{
	if (!cJSON_IsBool(j))
		return -EINVAL;
	*(bool *)f = cJSON_IsTrue(j);
	return 0;
}

static cJSON *bool_to_json(const struct cfg_entry *e, const void *f)
{
	return cJSON_CreateBool(*(const bool *)f);
}

static bool bool_is_set(const void *f)
{
	return *(const bool *)f;
}

/* ---- CFG_SIZE ---- */

static int size_from_str(const struct cfg_entry *e, void *f, const char *s,
			 struct err **err)
{
	return parse_with_unit(s, size_units, UINT64_MAX, f) < 0 ? -EINVAL : 0;
}

static int size_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			  struct err **err)
{
	int64_t v;

	if (cJSON_IsString(j) && j->valuestring)
		return size_from_str(e, f, j->valuestring, err);
	if (json_exact_int(j, &v) < 0 || v < 0)
		return -EINVAL;
	*(uint64_t *)f = (uint64_t)v;
	return 0;
}

static cJSON *size_to_json(const struct cfg_entry *e, const void *f)
{
	static const char *const names[] = { "", "KiB", "MiB", "GiB", "TiB" };
	static const uint64_t mults[] = { 1, 1ULL << 10, 1ULL << 20, 1ULL << 30,
					  1ULL << 40 };

	return render_unit(*(const uint64_t *)f, names, mults, 5);
}

/* ---- CFG_DURATION_MS ---- */

static int dur_from_str(const struct cfg_entry *e, void *f, const char *s,
			struct err **err)
{
	uint64_t v;

	if (parse_with_unit(s, duration_units, INT64_MAX, &v) < 0)
		return -EINVAL;
	*(int64_t *)f = (int64_t)v;
	return 0;
}

static int dur_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			 struct err **err)
{
	int64_t v;

	if (cJSON_IsString(j) && j->valuestring)
		return dur_from_str(e, f, j->valuestring, err);
	if (json_exact_int(j, &v) < 0 || v < 0)
		return -EINVAL;
	*(int64_t *)f = v;
	return 0;
}

static cJSON *dur_to_json(const struct cfg_entry *e, const void *f)
{
	static const char *const names[] = { "ms", "s", "m", "h", "d" };
	static const uint64_t mults[] = { 1, 1000, 60000, 3600000, 86400000 };
	int64_t v = *(const int64_t *)f;

	return render_unit(v < 0 ? 0 : (uint64_t)v, names, mults, 5);
}

/* ---- CFG_ENUM ---- */

static int enum_from_str(const struct cfg_entry *e, void *f, const char *s,
			 struct err **err)
{
	for (int i = 0; e->enum_names && e->enum_names[i]; i++) {
		if (!strcasecmp(s, e->enum_names[i])) {
			*(int *)f = i;
			return 0;
		}
	}
	return -EINVAL;
}

static int enum_from_json(const struct cfg_entry *e, void *f, const cJSON *j,
			  struct err **err)
{
	if (!cJSON_IsString(j) || !j->valuestring)
		return -EINVAL;
	return enum_from_str(e, f, j->valuestring, err);
}

static size_t enum_count(const struct cfg_entry *e)
{
	size_t n = 0;

	while (e->enum_names && e->enum_names[n])
		n++;
	return n;
}

static cJSON *enum_to_json(const struct cfg_entry *e, const void *f)
{
	int v = *(const int *)f;

	if (v < 0 || (size_t)v >= enum_count(e))
		return cJSON_CreateNull();
	return cJSON_CreateString(e->enum_names[v]);
}

static bool enum_is_set(const void *f)
{
	return true;
}

/* ---- CFG_STRLIST ---- */

/* "a,b,c" -> owned NULL-terminated list; "" -> empty list. */
static char **strlist_split(const char *s)
{
	size_t n = 1, i = 0;
	char **v;

	if (!*s)
		return xcalloc(1, sizeof(char *));
	for (const char *p = s; *p; p++)
		n += *p == ',';
	v = xcalloc(n + 1, sizeof(*v));
	for (;;) {
		const char *c = strchr(s, ',');

		if (!c) {
			v[i++] = xstrdup(s);
			break;
		}
		v[i++] = xstrndup(s, (size_t)(c - s));
		s = c + 1;
	}
	return v;
}

static int strlist_from_json(const struct cfg_entry *e, void *f,
			     const cJSON *j, struct err **err)
{
	char ***p = f;
	const cJSON *el;
	size_t n = 0, i = 0;
	char **v;

	if (!cJSON_IsArray(j))
		return -EINVAL;
	cJSON_ArrayForEach(el, j) {
		if (!cJSON_IsString(el) || !el->valuestring)
			return -EINVAL;
		n++;
	}
	v = xcalloc(n + 1, sizeof(*v));
	cJSON_ArrayForEach(el, j)
		v[i++] = xstrdup(el->valuestring);
	xstrv_free(*p);
	*p = v;
	return 0;
}

/* A value starting with '[' is a JSON array (lets arguments hold commas). */
static int strlist_from_str(const struct cfg_entry *e, void *f, const char *s,
			    struct err **err)
{
	char ***p = f;
	cJSON *j;
	int r;

	if (*s != '[') {
		xstrv_free(*p);
		*p = strlist_split(s);
		return 0;
	}
	j = json_parse(s, strlen(s), NULL);
	if (!j)
		return -EINVAL;
	r = strlist_from_json(e, f, j, err);
	cJSON_Delete(j);
	return r;
}

static cJSON *strlist_to_json(const struct cfg_entry *e, const void *f)
{
	char *const *v = *(char **const *)f;
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; v && v[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

static bool strlist_is_set(const void *f)
{
	char *const *v = *(char **const *)f;

	return v && v[0];
}

static void strlist_release(void *f)
{
	char ***p = f;

	xstrv_free(*p);
	*p = NULL;
}

static const struct cfg_type_ops cfg_types[] = {
	[CFG_STRING] = { "string", str_from_str, str_from_json, str_to_json,
			 str_is_set, str_release },
	[CFG_INT] = { "integer", int_from_str, int_from_json, int_to_json,
		      int_is_set, NULL },
	[CFG_BOOL] = { "boolean", bool_from_str, bool_from_json, bool_to_json,
		       bool_is_set, NULL },
	[CFG_SIZE] = { "size (e.g. 512, 16KiB, 1MiB, 1GiB)", size_from_str,
		       size_from_json, size_to_json, int_is_set, NULL },
	[CFG_DURATION_MS] = { "duration (e.g. 500ms, 10s, 2m, 1h, 7d)",
			      dur_from_str, dur_from_json, dur_to_json,
			      int_is_set, NULL },
	[CFG_ENUM] = { "one of", enum_from_str, enum_from_json, enum_to_json,
		       enum_is_set, NULL },
	[CFG_STRLIST] = { "array of strings", strlist_from_str,
			  strlist_from_json, strlist_to_json, strlist_is_set,
			  strlist_release },
};

static const struct cfg_type_ops *cfg_ops(const struct cfg_entry *e)
{
	if ((size_t)e->type >= sizeof(cfg_types) / sizeof(cfg_types[0]))
		abort(); /* a table bug, not a runtime condition */
	return &cfg_types[e->type];
}

/* "expected <what>", listing the names for enums. */
static int cfg_type_error(const struct cfg_entry *e, const char *where,
			  struct err **err)
{
	cleanup_free char *names = NULL;

	if (e->type == CFG_ENUM) {
		names = xstrdup("");
		for (size_t i = 0; i < enum_count(e); i++) {
			char *n = xasprintf("%s%s%s", names, i ? "|" : "",
					    e->enum_names[i]);
			free(names);
			names = n;
		}
	}
	return err_set(err, EINVAL, "%s: expected %s%s%s", where,
		       cfg_ops(e)->what, names ? " " : "", names ? names : "");
}

const struct cfg_entry *cfg_find(const struct cfg_entry *tab, const char *name)
{
	for (; tab->name; tab++)
		if (!strcmp(tab->name, name))
			return tab;
	return NULL;
}

static int cfg_entry_default(const struct cfg_entry *e, void *obj,
			     struct err **err)
{
	void *f = cfg_field(e, obj);
	const char *def = e->def;

	if (!def) {
		/* zero value: "", 0, false, first enum name, empty list */
		if (e->type == CFG_INT || e->type == CFG_SIZE ||
		    e->type == CFG_DURATION_MS || e->type == CFG_ENUM)
			def = "0";
		else if (e->type == CFG_BOOL)
			def = "false";
		else
			def = "";
		if (e->type == CFG_ENUM) {
			*(int *)f = 0;
			return 0;
		}
	}
	if (cfg_ops(e)->from_str(e, f, def, err) < 0) {
		char *where = xasprintf("default of config key '%s'", e->name);
		int r = cfg_type_error(e, where, err);

		free(where);
		return r;
	}
	return 0;
}

int cfg_defaults(const struct cfg_entry *tab, void *obj, struct err **err)
{
	for (const struct cfg_entry *e = tab; e->name; e++) {
		int r = cfg_entry_default(e, obj, err);

		if (r < 0)
			return r;
	}
	return 0;
}

int cfg_set_string(const struct cfg_entry *tab, void *obj, const char *name,
		   const char *value, struct err **err)
{
	const struct cfg_entry *e = cfg_find(tab, name);
	char *where;
	int r;

	if (!e)
		return err_set(err, EINVAL, "unknown config key '%s'", name);
	if (cfg_ops(e)->from_str(e, cfg_field(e, obj), value, err) >= 0)
		return 0;
	where = xasprintf("config key '%s'", name);
	r = cfg_type_error(e, where, err);
	free(where);
	return r;
}

/* Rejects keys that appear twice: which one wins is a trap. */
static int cfg_check_duplicate(const cJSON *root, const cJSON *item,
			       struct err **err)
{
	for (const cJSON *p = root->child; p && p != item; p = p->next)
		if (!strcmp(p->string, item->string))
			return err_set(err, EINVAL, "duplicate config key '%s'",
				       item->string);
	return 0;
}

int cfg_load_json(const struct cfg_entry *tab, void *obj, const char *text,
		  size_t len, struct err **err)
{
	cleanup_json cJSON *root = json_parse(text, len, err);
	const cJSON *it;

	if (!root)
		return -EINVAL;
	if (!cJSON_IsObject(root))
		return err_set(err, EINVAL, "config must be a JSON object");
	cJSON_ArrayForEach(it, root) {
		const struct cfg_entry *e = cfg_find(tab, it->string);
		char *where;
		int r;

		if (!e)
			return err_set(err, EINVAL, "unknown config key '%s'",
				       it->string);
		if (cfg_check_duplicate(root, it, err) < 0)
			return -EINVAL;
		if (cfg_ops(e)->from_json(e, cfg_field(e, obj), it, err) >= 0)
			continue;
		where = xasprintf("config key '%s'", e->name);
		r = cfg_type_error(e, where, err);
		free(where);
		return r;
	}
	return 0;
}

int cfg_load_file(const struct cfg_entry *tab, void *obj, const char *path,
		  struct err **err)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	int r = file_read_all(path, 0, CFG_FILE_MAX, &text, &len, err);

	if (r < 0)
		return r;
	if (cfg_load_json(tab, obj, text, len, err) < 0)
		return err_wrap(err, "config file '%s'", path);
	return 0;
}

static char *cfg_env_name(const char *prefix, const char *name)
{
	char *s = xasprintf("%s%s", prefix ? prefix : "", name);

	for (char *p = s + (prefix ? strlen(prefix) : 0); *p; p++) {
		if (*p == '.' || *p == '-')
			*p = '_';
		else if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
	return s;
}

int cfg_load_env(const struct cfg_entry *tab, void *obj, const char *prefix,
		 struct err **err)
{
	for (const struct cfg_entry *e = tab; e->name; e++) {
		cleanup_free char *var = cfg_env_name(prefix, e->name);
		const char *val = getenv(var);
		char *where;
		int r;

		if (!val)
			continue;
		if (cfg_ops(e)->from_str(e, cfg_field(e, obj), val, err) >= 0)
			continue;
		where = xasprintf("environment variable %s", var);
		r = cfg_type_error(e, where, err);
		free(where);
		return r;
	}
	return 0;
}

int cfg_validate(const struct cfg_entry *tab, void *obj, struct err **err)
{
	for (const struct cfg_entry *e = tab; e->name; e++) {
		void *f = cfg_field(e, obj);

		if (e->type == CFG_ENUM &&
		    (*(int *)f < 0 || (size_t)*(int *)f >= enum_count(e)))
			return err_set(err, EINVAL,
				       "config key '%s': value out of range",
				       e->name);
		if (e->validate && e->validate(f, err) < 0)
			return err_wrap(err, "config key '%s'", e->name);
	}
	return 0;
}

char *cfg_print(const struct cfg_entry *tab, const void *obj)
{
	cleanup_json cJSON *root = cJSON_CreateObject();

	if (!root)
		abort();
	for (const struct cfg_entry *e = tab; e->name; e++) {
		const void *f = cfg_cfield(e, obj);
		cJSON *v;

		if ((e->flags & CFG_SECRET) && cfg_ops(e)->is_set(f))
			v = cJSON_CreateString("[redacted]");
		else
			v = cfg_ops(e)->to_json(e, f);
		if (!v)
			abort();
		cJSON_AddItemToObject(root, e->name, v);
	}
	return json_print_pretty(root);
}

void cfg_free(const struct cfg_entry *tab, void *obj)
{
	for (const struct cfg_entry *e = tab; e->name; e++)
		if (cfg_ops(e)->release)
			cfg_ops(e)->release(cfg_field(e, obj));
}

/* ---- ready-made validators ---- */

int cfg_validate_positive_size(const void *field, struct err **err)
{
	if (*(const uint64_t *)field == 0)
		return err_set(err, EINVAL, "must be greater than 0");
	return 0;
}

int cfg_validate_nonneg_int(const void *field, struct err **err)
{
	if (*(const int64_t *)field < 0)
		return err_set(err, EINVAL, "must not be negative");
	return 0;
}

int cfg_validate_positive_int(const void *field, struct err **err)
{
	if (*(const int64_t *)field <= 0)
		return err_set(err, EINVAL, "must be greater than 0");
	return 0;
}

int cfg_validate_nonneg_duration(const void *field, struct err **err)
{
	return cfg_validate_nonneg_int(field, err);
}

int cfg_validate_positive_duration(const void *field, struct err **err)
{
	return cfg_validate_positive_int(field, err);
}
