#include "common/work.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/xalloc.h"

struct work_job {
	void (*run)(void *arg);
	void (*done)(void *arg);
	void *arg;
	struct work_job *next;
};

/* Singly linked FIFO. */
struct work_queue {
	struct work_job *head, *tail;
};

struct work_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* signalled when jobs are queued or on stop */
	struct work_queue todo;    /* submitted, not started */
	struct work_queue finished; /* run done, waiting for work_drain */
	size_t pending;            /* submitted and not yet drained */
	bool stopping;
	void (*notify)(void *arg);
	void *notify_arg;
	unsigned nthreads;
	pthread_t *threads;
};

static void work_queue_push(struct work_queue *q, struct work_job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct work_job *work_queue_pop(struct work_queue *q)
{
	struct work_job *j = q->head;

	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
	}
	return j;
}

/* Worker: runs jobs until stopping and the queue is empty. */
static void *work_thread(void *data)
{
	struct work_pool *p = data;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct work_job *j = work_queue_pop(&p->todo);

		if (!j) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		j->run(j->arg);
		pthread_mutex_lock(&p->lock);
		work_queue_push(&p->finished, j);
		if (p->notify) {
			/* outside the lock: notify may take locks of its own */
			pthread_mutex_unlock(&p->lock);
			p->notify(p->notify_arg);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct work_pool *work_pool_new(unsigned threads, void (*notify)(void *arg),
				void *notify_arg)
{
	struct work_pool *p = xcalloc(1, sizeof(*p));

	if (!threads)
		threads = 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->notify = notify;
	p->notify_arg = notify_arg;
	p->threads = xcalloc(threads, sizeof(*p->threads));
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, work_thread, p))
			abort(); /* like OOM: nothing sensible to do at startup */
		p->nthreads++;
	}
	return p;
}

int work_submit(struct work_pool *p, void (*run)(void *arg),
		void (*done)(void *arg), void *arg)
{
	struct work_job *j;

	if (!run)
		return -EINVAL;
	j = xcalloc(1, sizeof(*j));
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		free(j);
		return -ESHUTDOWN;
	}
	work_queue_push(&p->todo, j);
	p->pending++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

size_t work_drain(struct work_pool *p)
{
	struct work_queue q;
	struct work_job *j;
	size_t n = 0;

	/* Take the whole list at once; done() runs without the lock held
	 * so it may submit more work. */
	pthread_mutex_lock(&p->lock);
	q = p->finished;
	p->finished.head = p->finished.tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while ((j = work_queue_pop(&q))) {
		if (j->done)
			j->done(j->arg);
		free(j);
		n++;
	}
	pthread_mutex_lock(&p->lock);
	p->pending -= n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

size_t work_pending(struct work_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->pending;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void work_pool_free(struct work_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* Every queued job has run: hand each arg back through done(). */
	work_drain(p);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}
