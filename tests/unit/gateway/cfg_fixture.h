/*
 * cfg_fixture: what the configuration unit tests share: a clean NBGATE_*
 * environment, loading a JSON text through gw_cfg_load() from a temporary
 * file, and assertions that a text is accepted or refused with a message
 * naming the field. Included by tests/unit/gateway/test_config_*.c after
 * the file under test (its functions are static, one copy per test).
 */
#ifndef NBGATE_TESTS_UNIT_GATEWAY_CFG_FIXTURE_H
#define NBGATE_TESTS_UNIT_GATEWAY_CFG_FIXTURE_H

#include <stdio.h>
#include <unistd.h>

extern char **environ;

static int clean_env(void **state)
{
	for (;;) {
		char **e = environ, *name;

		for (; e && *e; e++)
			if (!strncmp(*e, "NBGATE_", 7))
				break;
		if (!e || !*e)
			return 0;
		name = xstrndup(*e, strcspn(*e, "="));
		unsetenv(name);
		free(name);
	}
}

static int load_text(struct gw_cfg *c, const char *text, char **msg)
{
	char *path = xstrdup("/tmp/nbgate-test-cfg-XXXXXX");
	int fd = mkstemp(path), r;
	struct err *e = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	r = gw_cfg_load(c, path, &e);
	unlink(path);
	free(path);
	if (msg)
		*msg = e ? xstrdup(e->msg) : NULL;
	err_free(&e);
	return r;
}

static void reject(const char *text, const char *needle)
{
	struct gw_cfg c;
	char *msg = NULL;

	if (load_text(&c, text, &msg) != -EINVAL)
		fail_msg("'%s' accepted", text);
	if (!msg || !strstr(msg, needle))
		fail_msg("'%s': message '%s' lacks '%s'", text, msg ? msg : "(none)", needle);
	free(msg);
}

/* Loads text, which must be accepted; the caller frees c. */
static void accept_cfg(struct gw_cfg *c, const char *text)
{
	char *msg = NULL;

	if (load_text(c, text, &msg))
		fail_msg("'%s' rejected: %s", text, msg);
}

static void accept_only(const char *text)
{
	struct gw_cfg c;

	accept_cfg(&c, text);
	gw_cfg_free(&c);
}

#endif
