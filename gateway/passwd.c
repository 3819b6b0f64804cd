/*
 * passwd: Argon2id password hashing through libsodium, and a bounded queue
 * that runs it on the worker pool.
 */
#include "gateway/passwd.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/rand.h"
#include "common/work.h"
#include "common/xalloc.h"

#define PASSWD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PASSWD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

int passwd_check_policy(const char *pw, size_t len, struct err **err)
{
	if (len > PASSWD_MAX_LEN)
		return err_set_http(err, 400, EMSGSIZE,
				    "password must be at most %d bytes", PASSWD_MAX_LEN);
	if (len < PASSWD_MIN_LEN)
		return err_set_http(err, 400, EINVAL,
				    "password must be at least %d characters", PASSWD_MIN_LEN);
	if (memchr(pw, '\0', len))
		return err_set_http(err, 400, EINVAL, "password must not contain a NUL byte");
	return 0;
}

static void passwd_sodium_init(void)
{
	if (sodium_init() < 0)
		abort(); /* no safe fallback for crypto (rand.h does the same) */
}

int passwd_hash(const char *pw, char **out, struct err **err)
{
	char buf[crypto_pwhash_STRBYTES];

	passwd_sodium_init();
	if (crypto_pwhash_str(buf, pw, strlen(pw), PASSWD_OPSLIMIT, PASSWD_MEMLIMIT) != 0)
		return err_set(err, ENOMEM, "hash password: out of memory");
	*out = xstrdup(buf);
	return 0;
}

static pthread_once_t passwd_dummy_once = PTHREAD_ONCE_INIT;
static char passwd_dummy[crypto_pwhash_STRBYTES];

static void passwd_dummy_init(void)
{
	char *pw = rand_hex(16);

	passwd_sodium_init();
	if (crypto_pwhash_str(passwd_dummy, pw, strlen(pw), PASSWD_OPSLIMIT,
			      PASSWD_MEMLIMIT) != 0)
		abort();
	free(pw);
}

const char *passwd_dummy_hash(void)
{
	pthread_once(&passwd_dummy_once, passwd_dummy_init);
	return passwd_dummy;
}

/* Is s a string crypto_pwhash_str_verify can take (argon2id, bounded)? */
static bool passwd_hash_usable(const char *s)
{
	return s && strncmp(s, "$argon2id$", 10) == 0 && strlen(s) < crypto_pwhash_STRBYTES;
}

bool passwd_verify(const char *stored, const char *pw)
{
	bool usable = passwd_hash_usable(stored);
	const char *h = usable ? stored : passwd_dummy_hash();
	bool ok;

	passwd_sodium_init();
	ok = crypto_pwhash_str_verify(h, pw, strlen(pw)) == 0;
	return usable && ok;
}

bool passwd_needs_rehash(const char *stored)
{
	if (!passwd_hash_usable(stored))
		return true;
	passwd_sodium_init();
	return crypto_pwhash_str_needs_rehash(stored, PASSWD_OPSLIMIT, PASSWD_MEMLIMIT) != 0;
}

/* ---- queue ---- */

enum passwd_job_kind { PASSWD_JOB_VERIFY, PASSWD_JOB_HASH };

struct passwd_job {
	struct passwd_job *next;
	struct passwd_queue *q;
	enum passwd_job_kind kind;
	char *stored; /* verify: NULL = unknown user */
	char *pw;     /* wiped before free */
	/* results, written by the worker */
	bool ok;
	char *hash;
	struct err *err;
	union {
		passwd_verify_done_fn verify;
		passwd_hash_done_fn hash;
	} done;
	void *arg;
};

struct passwd_queue {
	struct work_pool *work;
	unsigned concurrency;
	unsigned running;
	size_t waiting;
	struct passwd_job *head, *tail;
};

struct passwd_queue *passwd_queue_new(struct work_pool *work, unsigned concurrency)
{
	struct passwd_queue *q = xcalloc(1, sizeof(*q));

	q->work = work;
	q->concurrency = concurrency ? concurrency : 1;
	return q;
}

static void passwd_job_free(struct passwd_job *j)
{
	if (j->pw) {
		sodium_memzero(j->pw, strlen(j->pw));
		free(j->pw);
	}
	free(j->stored);
	free(j);
}

/* Hands the result to the owner and frees the job. */
static void passwd_job_finish(struct passwd_job *j)
{
	if (j->kind == PASSWD_JOB_VERIFY)
		j->done.verify(j->arg, j->ok, steal_ptr(&j->hash));
	else
		j->done.hash(j->arg, steal_ptr(&j->hash), steal_ptr(&j->err));
	free(j->hash);
	err_free(&j->err);
	passwd_job_free(j);
}

/* Worker thread: strings only, no database. */
static void passwd_job_run(void *arg)
{
	struct passwd_job *j = arg;

	if (j->kind == PASSWD_JOB_HASH) {
		passwd_hash(j->pw, &j->hash, &j->err);
		return;
	}
	j->ok = passwd_verify(j->stored, j->pw);
	if (j->ok && passwd_needs_rehash(j->stored) && passwd_hash(j->pw, &j->hash, NULL) < 0)
		j->hash = NULL; /* keep the old hash; the login still succeeds */
}

static void passwd_queue_pump(struct passwd_queue *q);

/* Loop thread, from work_drain(). */
static void passwd_job_done(void *arg)
{
	struct passwd_job *j = arg;
	struct passwd_queue *q = j->q;

	q->running--;
	passwd_job_finish(j);
	passwd_queue_pump(q);
}

static void passwd_queue_pump(struct passwd_queue *q)
{
	while (q->head && q->running < q->concurrency) {
		struct passwd_job *j = q->head;

		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->waiting--;
		q->running++;
		if (work_submit(q->work, passwd_job_run, passwd_job_done, j) < 0) {
			/* pool shutting down: fail the job now */
			q->running--;
			j->ok = false;
			err_set(&j->err, ECANCELED, "password hashing cancelled");
			passwd_job_finish(j);
		}
	}
}

static int passwd_queue_add(struct passwd_queue *q, struct passwd_job *j, struct err **err)
{
	if (q->waiting >= PASSWD_QUEUE_MAX) {
		passwd_job_free(j);
		return err_set_http(err, 503, EAGAIN, "too many logins in progress, try again");
	}
	j->q = q;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->waiting++;
	passwd_queue_pump(q);
	return 0;
}

int passwd_queue_verify(struct passwd_queue *q, const char *stored, const char *pw,
			passwd_verify_done_fn done, void *arg, struct err **err)
{
	struct passwd_job *j = xcalloc(1, sizeof(*j));

	j->kind = PASSWD_JOB_VERIFY;
	j->stored = stored ? xstrdup(stored) : NULL;
	j->pw = xstrdup(pw);
	j->done.verify = done;
	j->arg = arg;
	return passwd_queue_add(q, j, err);
}

int passwd_queue_hash(struct passwd_queue *q, const char *pw, passwd_hash_done_fn done,
		      void *arg, struct err **err)
{
	struct passwd_job *j = xcalloc(1, sizeof(*j));

	j->kind = PASSWD_JOB_HASH;
	j->pw = xstrdup(pw);
	j->done.hash = done;
	j->arg = arg;
	return passwd_queue_add(q, j, err);
}

size_t passwd_queue_len(const struct passwd_queue *q)
{
	return q->running + q->waiting;
}

void passwd_queue_free(struct passwd_queue *q)
{
	if (!q)
		return;
	while (q->head) {
		struct passwd_job *j = q->head;

		q->head = j->next;
		j->ok = false;
		err_set(&j->err, ECANCELED, "password hashing cancelled");
		passwd_job_finish(j);
	}
	free(q);
}
