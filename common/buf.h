/*
 * buf: a growable byte buffer with a hard maximum (curl dynbuf).
 *
 * Every buffer that grows with peer input has a maximum; appends past it
 * fail with -EMSGSIZE and leave the contents unchanged. The data is always
 * NUL-terminated (not counted in len) so text can be used directly.
 *
 * Lifecycle: buf_init() (no allocation), buf_release() frees the storage and
 * returns the buffer to the just-initialised state. A struct buf owns its data.
 */
#ifndef NBGATE_COMMON_BUF_H
#define NBGATE_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;    /* NULL until the first append */
	size_t len;
	size_t alloc;
	size_t max;    /* hard limit on len */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
/* Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appends(struct buf *b, const char *s);
int buf_appendf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Hands the data to the caller (free() it); the buffer is released. */
char *buf_detach(struct buf *b, size_t *len);

#endif
