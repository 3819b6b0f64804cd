/*
 * http_resp: upstream response heads (R-3.10, PRX-20), the strict chunked
 * body scanner, and reason phrases.
 *
 * A backend (Jupyter, a user's own code) is not trusted: its head is held to
 * the same syntax as a client's, and anything ambiguous becomes 502 with the
 * upstream connection closed (RFC 9112 6.3: a proxy MUST close and discard).
 * One exception follows HAProxy: Content-Length together with
 * Transfer-Encoding: chunked is answered with chunked framing, the
 * Content-Length dropped (cl_removed) and the connection not reused, so
 * bytes after the terminating chunk ("response splitting") are discarded.
 */
#include "gateway/http.h"

#include <string.h>
#include <strings.h>

#define CHUNK_EXT_MAX 256
#define CHUNK_TRAILER_MAX 8192

struct resp_ctx {
	struct http_resp *resp;
};

static int status_code(const char *p)
{
	int st = 0;

	for (int i = 0; i < 3; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		st = st * 10 + (p[i] - '0');
	}
	return st >= 100 && st <= 599 ? st : -1;
}

/* "HTTP/1.x NNN[ reason]" (RFC 9112 4). */
static int status_line(void *ctx, const char *p, size_t n, struct http_error *e)
{
	struct resp_ctx *c = ctx;
	int st;

	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
		return http__fail(e, 502, "malformed upstream status line");
	st = status_code(p + 9);
	if (st < 0 || (n > 12 && p[12] != ' '))
		return http__fail(e, 502, "malformed upstream status code");
	if (n > 12 && !http__value_ok(p + 13, n - 13))
		return http__fail(e, 502, "control character in upstream reason");
	c->resp->status = st;
	c->resp->minor = p[7] - '0';
	return 0;
}

static bool status_has_body(int st)
{
	return st >= 200 && st != 204 && st != 304;
}

static int resp_framing(struct http_resp *r, struct http_error *e)
{
	size_t nte, ncl;
	const struct http_header *te = http__find(r->hdr, r->nhdr, "Transfer-Encoding", &nte);
	const struct http_header *cl = http__find(r->hdr, r->nhdr, "Content-Length", &ncl);
	uint64_t v;

	if (te) {
		if (nte > 1 || te->value_len != 7 || strncasecmp(te->value, "chunked", 7) != 0)
			return http__fail(e, 502, "unsupported upstream Transfer-Encoding");
		r->chunked = true;
		r->cl_removed = ncl > 0;
		return 0;
	}
	if (!cl)
		return 0;
	if (ncl > 1 || http__parse_cl(cl->value, cl->value_len, &v) < 0 || v > (uint64_t)INT64_MAX)
		return http__fail(e, 502, "invalid upstream Content-Length");
	r->content_length = (int64_t)v;
	return 0;
}

static void resp_keep_alive(struct http_resp *r)
{
	bool close = false, ka = false;

	for (size_t i = 0; i < r->nhdr; i++) {
		const struct http_header *h = &r->hdr[i];

		if (h->name_len == 10 && strncasecmp(h->name, "Connection", 10) == 0) {
			close |= http_list_has(h->value, h->value_len, "close");
			ka |= http_list_has(h->value, h->value_len, "keep-alive");
		}
	}
	r->keep_alive = r->minor == 1 ? !close : (ka && !close);
	if (r->cl_removed)
		r->keep_alive = false;
	/* a body delimited by the end of the connection ends it */
	if (!r->chunked && r->content_length < 0 && status_has_body(r->status))
		r->keep_alive = false;
}

int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			struct http_resp *resp, struct http_error *e)
{
	struct resp_ctx c = { .resp = resp };
	struct http__head h = {
		.hdr = resp->hdr, .max_hdr = lim->header_count,
		.first_line = status_line, .ctx = &c, .is_request = false,
	};
	int r;

	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	r = http__scan_head(buf, len, lim, &h, e);
	resp->nhdr = h.nhdr;
	if (r == 1) {
		resp->head_len = h.head_len;
		r = resp_framing(resp, e) < 0 ? -1 : 1;
	}
	if (r < 0) {
		/* whatever was wrong upstream, the client sees 502 */
		e->status = 502;
		e->close = true;
		resp->keep_alive = false;
		return -1;
	}
	if (r == 1)
		resp_keep_alive(resp);
	return r;
}

const struct http_header *http_resp_header(const struct http_resp *resp, const char *name,
					   size_t *count)
{
	return http__find(resp->hdr, resp->nhdr, name, count);
}

/* ------------------------------------------------------------- chunked */

enum chunk_state {
	CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START, CH_TRAILER, CH_TRAILER_LF, CH_FINAL_LF, CH_DONE, CH_ERROR,
};

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
}

static int hexdigit(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool is_ctl(unsigned char ch)
{
	return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* chunk-size [ ";" ext ] CRLF: hex digits only, no sign, 0x or spaces. */
static int size_byte(struct http_chunked *c, unsigned char ch)
{
	int v = hexdigit(ch);

	if (c->state == CH_SIZE && v >= 0) {
		if (++c->digits > 16)
			return -1;
		c->remaining = c->remaining << 4 | (uint64_t)v;
		return 0;
	}
	if (c->digits == 0)
		return -1;
	if (ch == '\r') {
		c->state = CH_SIZE_LF;
		return 0;
	}
	if (c->state == CH_SIZE && ch == ';') {
		c->state = CH_EXT;
		c->line_len = 0;
		return 0;
	}
	if (c->state == CH_EXT && !is_ctl(ch) && ++c->line_len <= CHUNK_EXT_MAX)
		return 0;
	return -1;
}

/* Trailer fields after the last chunk: "name: value" lines, bounded in total.
 * line_len counts trailer bytes, digits is 1 once the ':' is seen. */
static int trailer_byte(struct http_chunked *c, unsigned char ch)
{
	if (++c->line_len > CHUNK_TRAILER_MAX)
		return -1;
	if (c->state == CH_TRAILER_START) {
		if (ch == '\r') {
			c->state = CH_FINAL_LF;
			return 0;
		}
		if (!http_is_tchar(ch))
			return -1; /* obs-fold, empty name, junk */
		c->state = CH_TRAILER;
		c->digits = 0;
		return 0;
	}
	if (ch == '\r' && c->digits) {
		c->state = CH_TRAILER_LF;
		return 0;
	}
	if (c->digits)
		return is_ctl(ch) ? -1 : 0;
	if (ch == ':') {
		c->digits = 1;
		return 0;
	}
	return http_is_tchar(ch) ? 0 : -1;
}

static int lf_byte(struct http_chunked *c, unsigned char ch, int next)
{
	if (ch != (c->state == CH_DATA_CR ? '\r' : '\n'))
		return -1;
	c->state = next;
	return 0;
}

static int chunk_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_SIZE:
	case CH_EXT:
		return size_byte(c, ch);
	case CH_SIZE_LF:
		if (lf_byte(c, ch, c->remaining ? CH_DATA : CH_TRAILER_START) < 0)
			return -1;
		c->line_len = 0;
		return 0;
	case CH_DATA_CR:
		return lf_byte(c, ch, CH_DATA_LF);
	case CH_DATA_LF:
		c->digits = 0;
		c->remaining = 0;
		return lf_byte(c, ch, CH_SIZE);
	case CH_TRAILER_START:
	case CH_TRAILER:
		return trailer_byte(c, ch);
	case CH_TRAILER_LF:
		c->line_len++;
		return lf_byte(c, ch, CH_TRAILER_START);
	case CH_FINAL_LF:
		return lf_byte(c, ch, CH_DONE);
	default:
		return -1;
	}
}

long http_chunked_feed(struct http_chunked *c, const char *p, size_t len, bool *done)
{
	size_t i = 0;

	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_ERROR)
			break;
		if (c->state == CH_DATA) {
			size_t take = len - i;

			if ((uint64_t)take > c->remaining)
				take = (size_t)c->remaining;
			i += take;
			c->remaining -= take;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			continue;
		}
		if (chunk_byte(c, (unsigned char)p[i]) < 0)
			c->state = CH_ERROR;
		else
			i++;
	}
	*done = c->state == CH_DONE;
	return c->state == CH_ERROR ? -1 : (long)i;
}

/* -------------------------------------------------------------- reasons */

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{ 100, "Continue" },
	{ 101, "Switching Protocols" },
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 206, "Partial Content" },
	{ 301, "Moved Permanently" },
	{ 302, "Found" },
	{ 303, "See Other" },
	{ 304, "Not Modified" },
	{ 307, "Temporary Redirect" },
	{ 308, "Permanent Redirect" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 409, "Conflict" },
	{ 411, "Length Required" },
	{ 413, "Content Too Large" },
	{ 414, "URI Too Long" },
	{ 415, "Unsupported Media Type" },
	{ 417, "Expectation Failed" },
	{ 421, "Misdirected Request" },
	{ 426, "Upgrade Required" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
	{ 504, "Gateway Timeout" },
	{ 505, "HTTP Version Not Supported" },
};

const char *http_reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}
