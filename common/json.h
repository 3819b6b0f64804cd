/*
 * json: thin cJSON helpers whose errors name the offending field.
 *
 * Getters: `required` decides whether a missing (or JSON null) field is an
 * error; when it is not required and missing, *out is left untouched and
 * the function returns 0 (1 when the field was present and stored). Type or
 * range mismatches fail with EINVAL and a message like
 * "field 'name': expected string". Errors map to HTTP 400 through
 * err_http_status(). Borrowed results stay valid as long as the cJSON tree.
 * All functions are thread-safe (no shared state).
 */
#ifndef NBGATE_COMMON_JSON_H
#define NBGATE_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/xalloc.h" /* xstrv_free() for string arrays */

struct err;

/* Returns 1 stored, 0 absent (optional), < 0 on error. *out is borrowed. */
int json_get_string(const cJSON *o, const char *field, bool required,
		    const char **out, struct err **err);

/* Integer in [min, max]; non-integral numbers are rejected. */
int json_get_int(const cJSON *o, const char *field, bool required,
		 int64_t min, int64_t max, int64_t *out, struct err **err);

int json_get_bool(const cJSON *o, const char *field, bool required,
		  bool *out, struct err **err);

/*
 * Array of strings. *out becomes an owned NULL-terminated array (free with
 * xstrv_free()); an existing *out is not freed.
 */
int json_get_string_array(const cJSON *o, const char *field, bool required,
			  char ***out, struct err **err);


/* true when s[0..len) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool json_utf8_valid(const char *s, size_t len);

/*
 * Parses exactly len bytes (s need not be NUL-terminated). Invalid UTF-8,
 * a syntax error or trailing garbage fail with EINVAL (HTTP 400); the
 * message gives the byte offset. Caller owns the result: cJSON_Delete().
 */
cJSON *json_parse(const char *s, size_t len, struct err **err);

/* Compact serialisation of o (non-NULL). Caller frees with free(). Aborts on OOM. */
char *json_print(const cJSON *o);

/* Indented serialisation. Caller frees with free(). Aborts on OOM. */
char *json_print_pretty(const cJSON *o);

static inline void json_cleanup_deletep(cJSON **p)
{
	if (*p)
		cJSON_Delete(*p);
}
/* cleanup attribute: cJSON_Delete() at scope exit. */
#ifndef cleanup_json
#define cleanup_json __attribute__((cleanup(json_cleanup_deletep)))
#endif

#endif
