/*
 * timeutil: millisecond clocks.
 *
 * time_now_ms() is wall-clock time (CLOCK_REALTIME), for values stored in
 * the database or shown to people. time_mono_ms() (CLOCK_MONOTONIC) is for
 * timeouts and intervals, which must not jump with the clock.
 * Both are safe on any thread and cannot fail.
 */
#ifndef NBGATE_COMMON_TIMEUTIL_H
#define NBGATE_COMMON_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch. */
static inline int64_t time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds on the monotonic clock (arbitrary origin). */
static inline int64_t time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
