/*
 * passwd: password policy and hashing (SECURITY.md ).
 *
 * Hashes are libsodium crypto_pwhash_str() Argon2id strings with
 * OPSLIMIT_INTERACTIVE (t=2) and MEMLIMIT_INTERACTIVE (64 MiB):
 * "$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>". Hashing or verifying
 * costs ~70 ms and 64 MiB, so the event loop never calls passwd_hash() or
 * passwd_verify(): it uses the passwd_queue, which runs them on the worker
 * pool with at most cfg->hash_concurrency in flight and queues the rest.
 *
 * Only strings cross into the worker: the database is read before and
 * written after, on the loop thread.
 */
#ifndef NBGATE_GATEWAY_PASSWD_H
#define NBGATE_GATEWAY_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

struct err;
struct work_pool;

#define PASSWD_MIN_LEN 8
#define PASSWD_MAX_LEN 1024
/* Most hash jobs waiting for a slot; more -> EAGAIN (http 503). */
#define PASSWD_QUEUE_MAX 1024

/*
 * Checks a new password: at least PASSWD_MIN_LEN bytes ("password must be
 * at least 8 characters"), at most PASSWD_MAX_LEN bytes (EMSGSIZE, http
 * 400), no NUL byte inside. Returns 0 or < 0 with *err. Any thread; cheap,
 * so call it before queueing any hash (AUTH-3).
 */
int passwd_check_policy(const char *pw, size_t len, struct err **err);

/*
 * Hashes pw (NUL-terminated) with the current parameters. Caller frees
 * *out. ENOMEM/EIO when libsodium fails. Any thread, but slow: workers only.
 */
int passwd_hash(const char *pw, char **out, struct err **err);

/*
 * True when pw matches stored (a crypto_pwhash_str string). A NULL or
 * malformed stored verifies against the dummy hash and returns false, so
 * the time spent is the same. Slow: workers only.
 */
bool passwd_verify(const char *stored, const char *pw);

/* True when stored uses parameters below the current ones (or is not an
 * argon2id string we can parse). Cheap. */
bool passwd_needs_rehash(const char *stored);

/*
 * A valid hash of a random password, computed once per process (thread
 * safe, pthread_once), for unknown users. Borrowed, static.
 * The first call is slow.
 */
const char *passwd_dummy_hash(void);

/* ---- bounded asynchronous hashing on the worker pool (loop thread) ---- */

struct passwd_queue;

/*
 * Result of a verify job, handed to done() on the loop thread. ok: the
 * password matched (always false for a NULL stored hash). new_hash: when
 * ok and the stored hash needed a rehash, the new hash (done() takes it,
 * free() it); else NULL.
 */
typedef void (*passwd_verify_done_fn)(void *arg, bool ok, char *new_hash);
/* Result of a hash job: hash (done() frees) or NULL with err (done() frees). */
typedef void (*passwd_hash_done_fn)(void *arg, char *hash, struct err *err);

/*
 * A queue running at most `concurrency` (>= 1) jobs on work at once.
 * work is borrowed and must outlive the queue. Caller owns the queue.
 */
struct passwd_queue *passwd_queue_new(struct work_pool *work, unsigned concurrency);

/*
 * Frees the queue. Jobs still waiting for a slot get done() called with a
 * failed result (verify: ok=false; hash: err ECANCELED) so owners can free
 * their arg; jobs on the pool must have drained first (work_pool_free()
 * before this). NULL ok.
 */
void passwd_queue_free(struct passwd_queue *q);

/*
 * Verifies pw against stored (NULL = unknown user: the dummy hash is used
 * and done() gets ok=false). Copies both strings; the copy of pw is wiped.
 * Returns 0, or -EAGAIN (http 503) when PASSWD_QUEUE_MAX jobs wait, in
 * which case done() is not called.
 */
int passwd_queue_verify(struct passwd_queue *q, const char *stored, const char *pw,
			passwd_verify_done_fn done, void *arg, struct err **err);

/* Hashes pw (policy already checked). Same return contract. */
int passwd_queue_hash(struct passwd_queue *q, const char *pw, passwd_hash_done_fn done,
		      void *arg, struct err **err);

/* Jobs running plus waiting (metrics, tests). */
size_t passwd_queue_len(const struct passwd_queue *q);

#endif
