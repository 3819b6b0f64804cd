/*
 * file: reading a whole small file, once for the config loaders and the
 * sandbox spec (the EINTR loop, the size cap and the regular-file check
 * were written out four times before).
 */
#ifndef NBGATE_COMMON_FILE_H
#define NBGATE_COMMON_FILE_H

#include <stddef.h>

struct err;

/*
 * Reads the regular file at path (opened with O_RDONLY | O_CLOEXEC |
 * O_NOCTTY | extra_flags, e.g. O_NOFOLLOW) into *out, NUL-terminated, its
 * length in *len (may be NULL). Errors: the errno of open/fstat/read
 * naming the path; EINVAL not a regular file; EFBIG larger than max bytes.
 * *out is owned by the caller. Thread: any.
 */
int file_read_all(const char *path, int extra_flags, size_t max, char **out, size_t *len,
		  struct err **err);

#endif
