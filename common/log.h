/*
 * log: leveled logging with a pluggable sink (text on stderr by default,
 * JSON lines as an option). The macros check the level before formatting.
 *
 * Each .c file may define LOG_PREFIX ("gateway/proxy: ") before including
 * this header. Messages follow git's rules: lowercase, no full stop,
 * failure first, 'subject' in quotes.
 *
 * Never pass tokens, cookies or Authorization values: run anything that
 * came from a request through log_redact() first.
 */
#ifndef NBGATE_COMMON_LOG_H
#define NBGATE_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

extern enum log_level log_current_level;

void log_setup(enum log_level level, enum log_format format);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *s);
/* Sends subsequent output to fd (default 2). The fd is borrowed. */
void log_set_fd(int fd);
void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Route libwebsockets' own log lines into this sink. */
void log_hook_lws(void);

/*
 * Copies src into dst (size dst_size, always NUL-terminated) with secrets
 * masked: values after "token=", "Authorization:", "Cookie:", "Bearer ",
 * "token " and "_xsrf=" become "[redacted]", control bytes become '?', and
 * the result is cut at dst_size - 1 (with "..." at the end when cut).
 * Returns dst.
 */
char *log_redact(char *dst, size_t dst_size, const char *src, size_t src_len);

#define log_at(lvl, fmt, ...)                                               \
	do {                                                                \
		if ((lvl) <= log_current_level)                             \
			log_write((lvl), LOG_PREFIX fmt, ##__VA_ARGS__);    \
	} while (0)
#define log_err(fmt, ...) log_at(LOG_ERR, fmt, ##__VA_ARGS__)
#define log_warn(fmt, ...) log_at(LOG_WARN, fmt, ##__VA_ARGS__)
#define log_info(fmt, ...) log_at(LOG_INFO, fmt, ##__VA_ARGS__)
#define log_debug(fmt, ...) log_at(LOG_DEBUG, fmt, ##__VA_ARGS__)
/* Appends ": strerror(errno)". */
#define log_perror(fmt, ...) log_at(LOG_ERR, fmt ": %m", ##__VA_ARGS__)

#endif
