/*
 * cleanup: scope-bound release (crun utils.h, bwrap utils.h).
 *   cleanup_free char *p = ...;      free(p) at scope exit
 *   cleanup_close int fd = ...;      close(fd) if >= 0
 * Hand ownership out with steal_ptr()/steal_fd() from common/xalloc.h.
 */
#ifndef NBGATE_COMMON_CLEANUP_H
#define NBGATE_COMMON_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}
static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void cleanup_filep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_file __attribute__((cleanup(cleanup_filep)))

#endif
