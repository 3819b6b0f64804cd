/*
 * throttle: bounded in-memory failure counters with LRU eviction.
 *
 * Each table is a chained hash of 64-bit keys (SipHash-2-4 of "a:<account>"
 * or "i:<ip>" under a per-process random key, so a client cannot aim
 * collisions) plus a recency list; a full table evicts its least recently
 * updated entry, so memory stays bounded whatever clients send.
 */
#include "gateway/throttle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/rand.h"
#include "common/xalloc.h"

#define THROTTLE_BUCKETS 65536           /* power of two */
#define THROTTLE_FORGET_MS (24LL * 3600 * 1000)

struct throttle_entry {
	uint64_t key;
	int64_t count;      /* failures (login) or guesses in window */
	int64_t last_ms;    /* last failure */
	int64_t window_ms;  /* guess table: start of the current window */
	struct throttle_entry *hnext;
	struct throttle_entry *prev, *next; /* recency: head = newest */
};

struct throttle_table {
	struct throttle_entry **bucket;
	struct throttle_entry *head, *tail;
	size_t n, max;
};

struct throttle {
	struct throttle_cfg cfg;
	unsigned char sipkey[crypto_shorthash_KEYBYTES];
	struct throttle_table login, guess;
};

static void throttle_table_init(struct throttle_table *t, size_t max)
{
	/* an array of chain heads: sizeof a pointer, spelled out for clang-tidy */
	t->bucket = xcalloc(THROTTLE_BUCKETS, sizeof(struct throttle_entry *));
	t->max = max;
}

static void throttle_table_release(struct throttle_table *t)
{
	struct throttle_entry *e = t->head;

	while (e) {
		struct throttle_entry *next = e->next;

		free(e);
		e = next;
	}
	free(t->bucket);
}

struct throttle *throttle_new(const struct throttle_cfg *c)
{
	struct throttle *t = xcalloc(1, sizeof(*t));
	size_t max = c->max_entries ? c->max_entries : THROTTLE_MAX_ENTRIES;

	t->cfg = *c;
	rand_bytes(t->sipkey, sizeof(t->sipkey));
	throttle_table_init(&t->login, max);
	throttle_table_init(&t->guess, max);
	return t;
}

void throttle_free(struct throttle *t)
{
	if (!t)
		return;
	throttle_table_release(&t->login);
	throttle_table_release(&t->guess);
	free(t);
}

static uint64_t throttle_key(const struct throttle *t, char kind, const char *s)
{
	unsigned char out[crypto_shorthash_BYTES];
	size_t len = strlen(s);
	unsigned char *buf = xmalloc(len + 3);
	uint64_t k;

	buf[0] = (unsigned char)kind;
	buf[1] = ':';
	memcpy(buf + 2, s, len + 1); /* the NUL too, though only len + 2 are hashed */
	crypto_shorthash(out, buf, len + 2, t->sipkey);
	free(buf);
	memcpy(&k, out, sizeof(k));
	return k;
}

static struct throttle_entry **throttle_slot(struct throttle_table *t, uint64_t key)
{
	struct throttle_entry **p = &t->bucket[key & (THROTTLE_BUCKETS - 1)];

	while (*p && (*p)->key != key)
		p = &(*p)->hnext;
	return p;
}

static void throttle_unlink(struct throttle_table *t, struct throttle_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void throttle_push_front(struct throttle_table *t, struct throttle_entry *e)
{
	e->next = t->head;
	if (t->head)
		t->head->prev = e;
	t->head = e;
	if (!t->tail)
		t->tail = e;
}

static void throttle_remove(struct throttle_table *t, struct throttle_entry *e)
{
	struct throttle_entry **p = throttle_slot(t, e->key);

	*p = e->hnext;
	throttle_unlink(t, e);
	free(e);
	t->n--;
}

static struct throttle_entry *throttle_find(struct throttle_table *t, uint64_t key)
{
	return *throttle_slot(t, key);
}

/* Finds or creates key's entry and makes it the most recent. */
static struct throttle_entry *throttle_touch(struct throttle_table *t, uint64_t key)
{
	struct throttle_entry **p = throttle_slot(t, key);
	struct throttle_entry *e = *p;

	if (e) {
		throttle_unlink(t, e);
		throttle_push_front(t, e);
		return e;
	}
	if (t->n >= t->max && t->tail) {
		throttle_remove(t, t->tail);
		p = throttle_slot(t, key); /* the chain may have changed */
	}
	e = xcalloc(1, sizeof(*e));
	e->key = key;
	*p = e;
	throttle_push_front(t, e);
	t->n++;
	return e;
}

/* ms still to wait for a login entry, 0 if none. */
static int64_t throttle_login_wait(const struct throttle *t, const struct throttle_entry *e,
				   int64_t now)
{
	int64_t over, delay;

	if (!e || now - e->last_ms > THROTTLE_FORGET_MS)
		return 0;
	over = e->count - t->cfg.max_failures;
	if (over < 0)
		return 0;
	delay = t->cfg.backoff_base;
	for (int64_t i = 0; i < over && delay < t->cfg.backoff_max; i++)
		delay *= 2;
	if (delay > t->cfg.backoff_max)
		delay = t->cfg.backoff_max;
	return e->last_ms + delay > now ? e->last_ms + delay - now : 0;
}

static int64_t throttle_secs(int64_t ms)
{
	return ms <= 0 ? 0 : (ms + 999) / 1000;
}

int64_t throttle_check(struct throttle *t, const char *account, const char *ip,
		       int64_t now_ms)
{
	int64_t wa = 0, wi = 0;

	if (account)
		wa = throttle_login_wait(t, throttle_find(&t->login, throttle_key(t, 'a', account)),
					 now_ms);
	if (ip)
		wi = throttle_login_wait(t, throttle_find(&t->login, throttle_key(t, 'i', ip)),
					 now_ms);
	return throttle_secs(wa > wi ? wa : wi);
}

static void throttle_count(struct throttle *t, uint64_t key, int64_t now)
{
	struct throttle_entry *e = throttle_touch(&t->login, key);

	if (now - e->last_ms > THROTTLE_FORGET_MS)
		e->count = 0;
	e->count++;
	e->last_ms = now;
}

void throttle_fail(struct throttle *t, const char *account, const char *ip, int64_t now_ms)
{
	if (account)
		throttle_count(t, throttle_key(t, 'a', account), now_ms);
	if (ip)
		throttle_count(t, throttle_key(t, 'i', ip), now_ms);
}

void throttle_success(struct throttle *t, const char *account, const char *ip)
{
	struct throttle_entry *e;

	if (account && (e = throttle_find(&t->login, throttle_key(t, 'a', account))))
		throttle_remove(&t->login, e);
	if (ip && (e = throttle_find(&t->login, throttle_key(t, 'i', ip))))
		throttle_remove(&t->login, e);
}

int64_t throttle_guess_check(struct throttle *t, const char *ip, int64_t now_ms)
{
	struct throttle_entry *e;
	int64_t end;

	if (!ip || t->cfg.guess_limit <= 0)
		return 0;
	e = throttle_find(&t->guess, throttle_key(t, 'i', ip));
	if (!e || e->count < t->cfg.guess_limit)
		return 0;
	end = e->window_ms + t->cfg.guess_window;
	return end > now_ms ? throttle_secs(end - now_ms) : 0;
}

void throttle_guess_fail(struct throttle *t, const char *ip, int64_t now_ms)
{
	struct throttle_entry *e;

	if (!ip)
		return;
	e = throttle_touch(&t->guess, throttle_key(t, 'i', ip));
	if (e->count == 0 || now_ms - e->window_ms >= t->cfg.guess_window) {
		e->window_ms = now_ms;
		e->count = 0;
	}
	e->count++;
	e->last_ms = now_ms;
}

size_t throttle_size(const struct throttle *t)
{
	return t->login.n + t->guess.n;
}
