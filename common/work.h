/*
 * work: a fixed pool of worker threads for slow, blocking jobs (password
 * hashing, file I/O) so the event loop never blocks (libuv uv_queue_work).
 *
 * run(arg) executes on a worker thread; when it returns the job is queued
 * as completed and notify(notify_arg) is called from that worker (the
 * gateway passes a function that calls lws_cancel_service()). The loop
 * thread then calls work_drain(), which calls done(arg) for each completed
 * job in completion order on the loop thread. arg is owned by the caller
 * throughout; done is where it is usually freed.
 */
#ifndef NBGATE_COMMON_WORK_H
#define NBGATE_COMMON_WORK_H

#include <stddef.h>

struct work_pool;

/*
 * Starts `threads` workers (>= 1; 0 is treated as 1). notify may be NULL.
 * Caller owns the pool: work_pool_free(). Aborts if threads can't start.
 */
struct work_pool *work_pool_new(unsigned threads, void (*notify)(void *arg),
				void *notify_arg);

/*
 * Queues a job. run must not be NULL; done may be NULL. Returns 0, or
 * -ESHUTDOWN after work_pool_free() has begun. Thread: any.
 */
int work_submit(struct work_pool *p, void (*run)(void *arg),
		void (*done)(void *arg), void *arg);

/* Calls done() for every completed job. Returns how many. Loop thread only. */
size_t work_drain(struct work_pool *p);

/* Jobs submitted but whose done() has not run yet. Thread: any. */
size_t work_pending(struct work_pool *p);

/*
 * Stops the pool: every job already queued still runs (so done() always
 * sees a finished run), threads are joined, then done() is called on the
 * calling thread for every job not yet drained, so owners can free arg.
 * New submissions during shutdown fail. May block for as long as the queue
 * takes. NULL is fine. Call from the loop thread, after the loop stopped.
 */
void work_pool_free(struct work_pool *p);

#endif
