/*
 * cfg: table-driven configuration (redis standardConfig).
 *
 * A module describes its settings once, as an array of struct cfg_entry
 * terminated by an entry with name == NULL, each pointing (offsetof) at a
 * field of the module's config struct. The same table fills defaults,
 * loads a JSON file, applies environment overrides, validates and prints.
 *
 * Field types (what the field at `offset` must be):
 *   CFG_STRING       char *          owned, never NULL after cfg_defaults()
 *   CFG_INT          int64_t
 *   CFG_BOOL         bool            "true/false/1/0/yes/no/on/off" in env
 *   CFG_SIZE         uint64_t        "16KiB", "1MiB", "1GiB", "512B"/"512"
 *                                    (also KB/MB/GB/K/M/G as 1024 multiples)
 *   CFG_DURATION_MS  int64_t         "500ms", "10s", "2m", "1h", "7d", digits = ms
 *   CFG_ENUM         int             index into enum_names
 *   CFG_STRLIST      char **         owned, NULL-terminated, never NULL after
 *                                    cfg_defaults(); JSON array in files,
 *                                    comma-separated in env and defaults given
 *                                    as "a,b"; a default starting with '['
 *                                    is parsed as a JSON array
 * In JSON files sizes and durations may also be numbers (bytes, ms).
 *
 * Lifecycle: cfg_defaults() -> cfg_load_file() -> cfg_load_env() ->
 * cfg_validate(), then treat the struct as immutable; cfg_free() releases
 * owned members. Not thread-safe; call at startup on one thread.
 */
#ifndef NBGATE_COMMON_CFG_H
#define NBGATE_COMMON_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

enum cfg_type {
	CFG_STRING,
	CFG_INT,
	CFG_BOOL,
	CFG_SIZE,
	CFG_DURATION_MS,
	CFG_ENUM,
	CFG_STRLIST,
};

enum cfg_flags {
	CFG_SECRET = 1 << 0,    /* printed as "[redacted]" when set */
	CFG_IMMUTABLE = 1 << 1, /* informational: never changes after startup */
};

struct cfg_entry {
	const char *name;          /* JSON key; env name is PREFIX + upper(name), '.' -> '_' */
	enum cfg_type type;
	const char *def;           /* default in the env syntax; NULL = empty/0 */
	unsigned flags;            /* enum cfg_flags */
	size_t offset;             /* offsetof(struct X, field) */
	/* Optional: checks one field (pointer to it); < 0 + *err to reject. */
	int (*validate)(const void *field, struct err **err);
	const char *const *enum_names; /* CFG_ENUM: NULL-terminated */
	const char *help;
};

/* Sets every field to its default. Fields are assumed uninitialised
 * (the struct should be zeroed first). Fails only on a bad default. */
int cfg_defaults(const struct cfg_entry *tab, void *obj, struct err **err);

/*
 * Loads a JSON object from path and sets the fields it names. Unknown keys
 * fail ("unknown config key 'x'"), as do wrong types ("config key 'x':
 * expected size"). Errors are prefixed with the path. EINVAL / errno.
 */
int cfg_load_file(const struct cfg_entry *tab, void *obj, const char *path,
		  struct err **err);

/* Same as cfg_load_file() for a JSON text already in memory (fuzzing, tests). */
int cfg_load_json(const struct cfg_entry *tab, void *obj, const char *text,
		  size_t len, struct err **err);

/*
 * Applies environment overrides: for each entry, getenv(prefix + NAME)
 * where NAME is the upper-cased name with '.' and '-' turned into '_'
 * (prefix "NBGATE_": listen -> NBGATE_LISTEN). Bad values fail naming
 * the variable.
 */
int cfg_load_env(const struct cfg_entry *tab, void *obj, const char *prefix,
		 struct err **err);

/* Sets one setting from a string in the env syntax (for --set k=v). */
int cfg_set_string(const struct cfg_entry *tab, void *obj, const char *name,
		   const char *value, struct err **err);

/* Runs every entry's validator; the error names the key. */
int cfg_validate(const struct cfg_entry *tab, void *obj, struct err **err);

/* Pretty JSON of all settings; set secrets are "[redacted]". Caller frees. */
char *cfg_print(const struct cfg_entry *tab, const void *obj);

/* Frees owned members (strings, lists) and NULLs them. Safe to repeat. */
void cfg_free(const struct cfg_entry *tab, void *obj);

/* Lookup by name; NULL when absent. */
const struct cfg_entry *cfg_find(const struct cfg_entry *tab, const char *name);

/*
 * Parsers shared with other modules (return 0, or < 0 with EINVAL):
 * "16KiB" -> 16384; "10s" -> 10000.
 */
int cfg_parse_size(const char *s, uint64_t *out, struct err **err);
int cfg_parse_duration_ms(const char *s, int64_t *out, struct err **err);

/* Ready-made validators (field is a pointer to the member). */
int cfg_validate_positive_size(const void *field, struct err **err); /* > 0 */
int cfg_validate_nonneg_int(const void *field, struct err **err);    /* >= 0 */
int cfg_validate_positive_int(const void *field, struct err **err);  /* > 0 */
int cfg_validate_nonneg_duration(const void *field, struct err **err);
int cfg_validate_positive_duration(const void *field, struct err **err);

#endif
