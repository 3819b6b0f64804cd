#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static int err_vset(struct err **err, int http, int code, const char *suffix,
		    const char *fmt, va_list ap)
{
	char *msg;

	if (code <= 0)
		code = EIO;
	if (!err || *err)
		return -code;
	msg = xvasprintf(fmt, ap);
	if (suffix) {
		char *full = xasprintf("%s: %s", msg, suffix);
		free(msg);
		msg = full;
	}
	*err = xcalloc(1, sizeof(**err));
	(*err)->code = code;
	(*err)->http = http;
	(*err)->msg = msg;
	return -code;
}

int err_set(struct err **err, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(err, 0, code, NULL, fmt, ap);
	va_end(ap);
	return r;
}

int err_set_http(struct err **err, int http, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(err, http, code, NULL, fmt, ap);
	va_end(ap);
	return r;
}

int err_set_errno(struct err **err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(err, 0, saved, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
	return r;
}

int err_wrap(struct err **err, const char *fmt, ...)
{
	va_list ap;
	char *ctx, *full;

	if (!err || !*err)
		return -EIO;
	va_start(ap, fmt);
	ctx = xvasprintf(fmt, ap);
	va_end(ap);
	full = xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = full;
	return -(*err)->code;
}

void err_free(struct err **err)
{
	if (!err || !*err)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

int err_http_status(const struct err *err)
{
	if (!err)
		return 500;
	if (err->http)
		return err->http;
	switch (err->code) {
	case EINVAL: case EDOM: case EILSEQ: case E2BIG: return 400;
	case EACCES: case EPERM: return 403;
	case ENOENT: case ESRCH: return 404;
	case EEXIST: case EBUSY: case EALREADY: return 409;
	case EMSGSIZE: case EFBIG: return 413;
	case ENOTSUP: return 501;
	case EAGAIN: return 503;
	case ETIMEDOUT: return 504;
	default: return 500;
	}
}
