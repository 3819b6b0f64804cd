/*
 * names: derived names for servers (JH-6, R-1.3).
 *
 * A (user, server name) pair becomes a slug used for run directories now
 * and for Kubernetes object names later. The slug is a DNS-1123 label
 * ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters) and the encoding
 * is injective up to the length cut:
 *
 *  - the user part: its first character is kept when in [a-z1-9], else
 *    written "0" + two lowercase hex digits; every later character is kept
 *    when in [a-z0-9], else written "-" + two hex digits (so '-' itself is
 *    "-2d" and 'A' is "-41": nothing else may produce a hyphen);
 *  - a non-empty server name follows after "--" with the same "-xx"
 *    escaping for every character (the default server "" adds nothing);
 *  - decoding is unambiguous: in the body a '-' is followed by two hex
 *    digits except at the one "--" separator, so two different pairs never
 *    share a slug of up to 63 characters;
 *  - a longer result is cut to 47 characters and gets "----" plus the
 *    first 12 hex digits of SHA-256(user NUL server). Four hyphens never
 *    occur in an uncut slug, so cut slugs cannot equal uncut ones; two cut
 *    slugs collide only on a 48-bit hash collision, which the spawner
 *    detects and refuses (EEXIST).
 *
 * All functions are pure, thread-safe, and allocate through xalloc.
 */
#ifndef NBGATE_SPAWNER_NAMES_H
#define NBGATE_SPAWNER_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define SPAWNER_SLUG_MAX 63

/*
 * The slug of (user, server); server may be "" or NULL (default server).
 * user must be non-empty. Caller owns the result (free()). Never NULL.
 */
char *spawner_slug(const char *user, const char *server);

/* True if s is a DNS-1123 label (RFC 1123, Kubernetes' IsDNS1123Label). */
bool spawner_is_dns1123_label(const char *s);

/*
 * The path segment for a name in URLs: every byte outside
 * [A-Za-z0-9-._~@] percent-encoded (JupyterHub quotes with safe='@~').
 * Caller owns the result (free()).
 */
char *spawner_url_segment(const char *name);

/*
 * The server's base URL: "/user/<u>/" or "/user/<u>/<s>/" with both
 * segments from spawner_url_segment(). Caller owns the result (free()).
 */
char *spawner_base_url(const char *user, const char *server);

#endif
