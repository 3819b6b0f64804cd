/*
 * throttle: login backoff and token-guess limiting (SECURITY.md,
 * AUTH-5, TOK-10).
 *
 * In-memory tables with a bounded number of entries: when a table is full,
 * entries whose state has expired are purged, then the least recently
 * updated one is evicted. Keys are hashed (SipHash with a per-process key),
 * never logged.
 *
 * Login: failures are counted per account (whatever the client address)
 * and per client address. Once a key has `max_failures` failures, each
 * further attempt must wait base * 2^(n - max_failures), capped at max,
 * after the last failure. A success resets the account (and the address).
 * A counter forgets after 24 h without failures.
 *
 * Tokens: invalid-token attempts per client address within a fixed window;
 * beyond `guess_limit` in the window, attempts wait for the window's end.
 *
 * Not thread-safe: the event-loop thread only. Times are ms on any
 * monotonic clock the caller picks (time_mono_ms()).
 */
#ifndef NBGATE_GATEWAY_THROTTLE_H
#define NBGATE_GATEWAY_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct throttle_cfg {
	int64_t max_failures;     /* free login failures per key */
	int64_t backoff_base;     /* ms */
	int64_t backoff_max;      /* ms */
	int64_t guess_limit;      /* invalid tokens per window per address */
	int64_t guess_window;     /* ms */
	size_t max_entries;       /* per table; 0 = THROTTLE_MAX_ENTRIES */
};

#define THROTTLE_MAX_ENTRIES 100000

struct throttle;

/* Caller owns the result (throttle_free()). Copies c. */
struct throttle *throttle_new(const struct throttle_cfg *c);
void throttle_free(struct throttle *t);

/*
 * Seconds the client must wait before a login attempt for account from ip
 * (either may be NULL): 0 = go ahead, > 0 = answer 429 with Retry-After.
 * The larger of the account's and the address's waits. Does not count.
 */
int64_t throttle_check(struct throttle *t, const char *account, const char *ip,
		       int64_t now_ms);

/* Records a failed login for account and ip (either may be NULL). */
void throttle_fail(struct throttle *t, const char *account, const char *ip,
		   int64_t now_ms);

/* Records a successful login: clears account's and ip's counters. */
void throttle_success(struct throttle *t, const char *account, const char *ip);

/* Seconds to wait before ip may present another token (0 = go ahead). */
int64_t throttle_guess_check(struct throttle *t, const char *ip, int64_t now_ms);

/* Records an invalid token from ip. */
void throttle_guess_fail(struct throttle *t, const char *ip, int64_t now_ms);

/* Entries held in the login and guess tables together (tests, metrics). */
size_t throttle_size(const struct throttle *t);

#endif
