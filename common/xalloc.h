/*
 * xalloc: allocation that cannot fail (aborts on out-of-memory, the one
 * place library code may exit).
 *
 * Unit tests are not built with cmocka's -DUNIT_TESTING malloc remap: the
 * code under test lives partly in archives built without it, and memory
 * crossing the two would be freed by the wrong allocator. Leaks are caught
 * by LeakSanitizer instead (make SANITIZE=address,undefined check).
 */
#ifndef NBGATE_COMMON_XALLOC_H
#define NBGATE_COMMON_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* NULL-terminated string vectors (argv, env, JSON string arrays, names):
 * frees each string and the vector; NULL-safe. */
void xstrv_free(char **v);
/* Number of strings before the NULL; 0 for NULL. */
size_t xstrv_len(char *const *v);

/* Returns *p and sets *p to NULL: hands ownership over (bwrap steal_pointer). */
#define steal_ptr(pp) ({ __typeof__(*(pp)) _p = *(pp); *(pp) = NULL; _p; })
/* Returns *fd and sets *fd to -1. */
#define steal_fd(fdp) ({ int _fd = *(fdp); *(fdp) = -1; _fd; })

#endif
