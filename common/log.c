#include "common/log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

enum log_level log_current_level = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static int log_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_setup(enum log_level level, enum log_format format)
{
	log_current_level = level;
	log_fmt = format;
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcmp(s, level_names[i]))
			return (int)i;
	return -1;
}

void log_set_fd(int fd)
{
	log_fd = fd;
}

/* JSON-escapes src into dst; always terminates. */
static void json_escape(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	for (; *src && o + 7 < size; src++) {
		unsigned char c = (unsigned char)*src;

		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(dst + o, size - o, "\\u%04x", c);
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char msg[2048], line[4300], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_fmt == LOG_FORMAT_JSON) {
		char esc[4200];

		json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line),
			     "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
			     ts, now.tv_nsec / 1000000, level_names[level], esc);
	} else {
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s\n", ts,
			     now.tv_nsec / 1000000, level_names[level], msg);
	}
	if (n > (int)sizeof(line))
		n = (int)sizeof(line);
	if (write(log_fd, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}

static void lws_emit(int lws_level, const char *line)
{
	enum log_level l = LOG_DEBUG;
	char buf[512];
	size_t len = strlen(line);

	if (lws_level & LLL_ERR)
		l = LOG_ERR;
	else if (lws_level & LLL_WARN)
		l = LOG_WARN;
	if (l > log_current_level)
		return;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	log_redact(buf, sizeof(buf), line, len);
	log_write(l, "lws: %s", buf);
}

void log_hook_lws(void)
{
	int mask = LLL_ERR | LLL_WARN;

	if (log_current_level >= LOG_DEBUG)
		mask |= LLL_NOTICE | LLL_INFO;
	lws_set_log_level(mask, lws_emit);
}

static const char *const secret_marks[] = {
	"token=", "authorization:", "cookie:", "set-cookie:", "bearer ",
	"token ", "_xsrf=", "password=", "session=", "code=",
};

/* Length of the secret-introducing marker at s, or 0. */
static size_t secret_mark_at(const char *s, size_t left)
{
	for (size_t i = 0; i < sizeof(secret_marks) / sizeof(secret_marks[0]); i++) {
		size_t ml = strlen(secret_marks[i]);

		if (ml <= left && !strncasecmp(s, secret_marks[i], ml))
			return ml;
	}
	return 0;
}

static bool secret_end(char c, bool header_value)
{
	if (header_value)
		return c == '\r' || c == '\n';
	return c == '&' || c == ' ' || c == ';' || c == ',' || c == '"' ||
	       c == '\'' || c == '\r' || c == '\n';
}

char *log_redact(char *dst, size_t dst_size, const char *src, size_t src_len)
{
	static const char mask[] = "[redacted]";
	size_t i = 0, o = 0;

	if (!dst_size)
		return dst;
	while (i < src_len && o + 1 < dst_size) {
		size_t ml = secret_mark_at(src + i, src_len - i);

		if (ml) {
			bool hdr = src[i + ml - 1] == ':';
			size_t cp = ml < dst_size - 1 - o ? ml : dst_size - 1 - o;

			memcpy(dst + o, src + i, cp);
			o += cp;
			i += ml;
			while (i < src_len && src[i] == ' ')
				i++;
			while (i < src_len && !secret_end(src[i], hdr))
				i++;
			cp = sizeof(mask) - 1;
			if (cp > dst_size - 1 - o)
				cp = dst_size - 1 - o;
			memcpy(dst + o, mask, cp);
			o += cp;
			continue;
		}
		dst[o++] = isprint((unsigned char)src[i]) ? src[i] : '?';
		i++;
	}
	dst[o] = '\0';
	if (i < src_len && dst_size > 4)
		memcpy(dst + dst_size - 4, "...", 4);
	return dst;
}
