/* Unit tests for common/work.c: jobs run on workers, done() only on drain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/work.c"

#include <stdatomic.h>
#include <time.h>

#include "common/timeutil.h"

#define NJOBS 64

static atomic_int notified;
static atomic_int ran;
static int done_count;  /* loop thread only */
static pthread_t loop_thread;

struct job {
	int in, out;
	bool ran_off_loop;
	bool done;
};

static void notify(void *arg)
{
	atomic_fetch_add(&notified, 1);
}

static void run_square(void *arg)
{
	struct job *j = arg;

	j->out = j->in * j->in;
	j->ran_off_loop = !pthread_equal(pthread_self(), loop_thread);
	atomic_fetch_add(&ran, 1);
}

static void done_job(void *arg)
{
	struct job *j = arg;

	/* done() runs on the thread that drains */
	assert_true(pthread_equal(pthread_self(), loop_thread));
	j->done = true;
	done_count++;
}

static void reset(void)
{
	atomic_store(&notified, 0);
	atomic_store(&ran, 0);
	done_count = 0;
	loop_thread = pthread_self();
}

/* Drains until n done callbacks ran or 5 s passed. */
static void drain_until(struct work_pool *p, int n)
{
	int64_t deadline = time_mono_ms() + 5000;
	const struct timespec tick = { 0, 1000000 };

	while (done_count < n && time_mono_ms() < deadline) {
		work_drain(p);
		nanosleep(&tick, NULL);
	}
}

static void test_work_jobs_run_and_done_on_drain(void **state)
{
	static struct job jobs[NJOBS];
	struct work_pool *p;
	int64_t deadline;

	reset();
	p = work_pool_new(3, notify, NULL);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct job){ .in = i };
		assert_int_equal(work_submit(p, run_square, done_job, &jobs[i]), 0);
	}
	/* all jobs run without anyone draining... */
	deadline = time_mono_ms() + 5000;
	while (atomic_load(&ran) < NJOBS && time_mono_ms() < deadline)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	assert_int_equal(atomic_load(&ran), NJOBS);
	/* ...but no done() has been called yet */
	assert_int_equal(done_count, 0);
	assert_int_equal(work_pending(p), NJOBS);
	deadline = time_mono_ms() + 5000;
	while (atomic_load(&notified) < NJOBS && time_mono_ms() < deadline)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	assert_int_equal(atomic_load(&notified), NJOBS);
	drain_until(p, NJOBS);
	assert_int_equal(done_count, NJOBS);
	assert_int_equal(work_pending(p), 0);
	for (int i = 0; i < NJOBS; i++) {
		assert_true(jobs[i].done);
		assert_true(jobs[i].ran_off_loop);
		assert_int_equal(jobs[i].out, i * i);
	}
	assert_int_equal(work_drain(p), 0);
	work_pool_free(p);
}

static void test_work_free_runs_queued_and_calls_done(void **state)
{
	static struct job jobs[NJOBS];
	struct work_pool *p;

	reset();
	p = work_pool_new(1, NULL, NULL);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct job){ .in = i + 1 };
		assert_int_equal(work_submit(p, run_square, done_job, &jobs[i]), 0);
	}
	work_pool_free(p);
	assert_int_equal(atomic_load(&ran), NJOBS);
	assert_int_equal(done_count, NJOBS);
	for (int i = 0; i < NJOBS; i++)
		assert_int_equal(jobs[i].out, (i + 1) * (i + 1));
}

static void run_nothing(void *arg)
{
	atomic_fetch_add(&ran, 1);
}

static void test_work_null_done_and_bad_args(void **state)
{
	struct work_pool *p;

	reset();
	p = work_pool_new(0, NULL, NULL); /* 0 threads means 1 */
	assert_int_equal(work_submit(p, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(work_submit(p, run_nothing, NULL, NULL), 0);
	work_pool_free(p);
	assert_int_equal(atomic_load(&ran), 1);
	work_pool_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_work_jobs_run_and_done_on_drain),
		cmocka_unit_test(test_work_free_runs_queued_and_calls_done),
		cmocka_unit_test(test_work_null_done_and_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
