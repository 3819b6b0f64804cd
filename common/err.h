/*
 * err: the error object (crun model).
 *
 * A function that can fail takes `struct err **err` last, returns < 0 (or
 * NULL) and sets *err; on success it returns >= 0 and leaves *err alone.
 * Each layer adds context with err_wrap(); only the top level (main, an
 * lws callback, a worker) logs the error and frees it.
 *
 * `code` is errno-style (EINVAL, ENOENT, EACCES, ...). Gateway code maps it
 * to an HTTP status with err_http_status(); an explicit status can be carried
 * with err_set_http().
 */
#ifndef NBGATE_COMMON_ERR_H
#define NBGATE_COMMON_ERR_H

#include <stdarg.h>

struct err {
	int code;   /* errno-style, > 0 */
	int http;   /* 0, or an explicit HTTP status chosen where the error arose */
	char *msg;  /* owned; "outer context: inner context: cause" */
};

/* Sets *err (if err is non-NULL and *err is NULL) and returns -code (< 0). */
int err_set(struct err **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with an explicit HTTP status for the gateway to answer with. */
int err_set_http(struct err **err, int http, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like err_set with code = errno and ": strerror(errno)" appended. */
int err_set_errno(struct err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefixes "context: " to the message of *err; returns -code. */
int err_wrap(struct err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Frees *err and sets it to NULL. Safe on NULL. */
void err_free(struct err **err);
/* HTTP status for an error: its explicit status, else mapped from code. */
int err_http_status(const struct err *err);

#endif
