/*
 * file: see file.h.
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"

int file_read_all(const char *path, int extra_flags, size_t max, char **out, size_t *len,
		  struct err **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | extra_flags);
	cleanup_free char *data = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0)
		return err_set_errno(err, "open '%s'", path);
	if (fstat(fd, &st) < 0)
		return err_set_errno(err, "stat '%s'", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "'%s': not a regular file", path);
	if ((size_t)st.st_size > max)
		return err_set(err, EFBIG, "'%s': larger than %zu bytes", path, max);
	/* sized by fstat, so small files do not cost `max`; /proc files say
	 * size 0: read those up to max + 1 bytes (the extra one means too big) */
	size_t want = st.st_size > 0 ? (size_t)st.st_size : max + 1;
	data = xmalloc(want + 1);
	while (got < want) {
		ssize_t n = read(fd, data + got, want - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(err, "read '%s'", path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max)
		return err_set(err, EFBIG, "'%s': larger than %zu bytes", path, max);
	data[got] = '\0';
	if (len)
		*len = got;
	*out = steal_ptr(&data);
	return 0;
}
