/*
 * replay_main.h: the main() of a fuzz target's replay build. libFuzzer
 * provides main() in `make fuzz`; gcc-only CI builds each target with
 * -DFUZZ_REPLAY_MAIN and replays its corpus through this one (crun's
 * tests_libcrun_fuzzer.c does the same). Include it last, after the
 * target's LLVMFuzzerTestOneInput, with FUZZ_NAME defined.
 */
#ifndef NBGATE_TESTS_FUZZ_REPLAY_MAIN_H
#define NBGATE_TESTS_FUZZ_REPLAY_MAIN_H
#ifdef FUZZ_REPLAY_MAIN

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

/* Runs one file through the target; a crash or abort ends the process. */
static int replay_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *data;
	ssize_t got;

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	got = read(fd, data, (size_t)st.st_size);
	close(fd);
	if (got != st.st_size) {
		fprintf(stderr, "%s: short read\n", path);
		free(data);
		return -1;
	}
	LLVMFuzzerTestOneInput(data, (size_t)got);
	free(data);
	return 0;
}

static int replay_dir(const char *dir, unsigned *pass, unsigned *fail)
{
	DIR *dp = opendir(dir);
	struct dirent *de;

	if (!dp)
		return -1;
	while ((de = readdir(dp))) {
		char path[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (replay_file(path) == 0)
			(*pass)++;
		else
			(*fail)++;
	}
	closedir(dp);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned pass = 0, fail = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &pass, &fail) < 0)
				fail++;
		} else if (replay_file(argv[i]) == 0) {
			pass++;
		} else {
			fail++;
		}
	}
	printf("%s: %u passed, %u failed\n", FUZZ_NAME, pass, fail);
	return fail ? 1 : 0;
}

#endif
#endif
