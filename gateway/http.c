/*
 * http: strict HTTP/1.1 request heads (R-3.1, R-3.2, R-3.6, PRX-1..7, PRX-15).
 *
 * The parser is stateless: the caller hands it everything received so far
 * and it re-scans from the start, so there is no partial state to get out
 * of step with the byte stream (the classic smuggling bug). Heads are small
 * (16 KiB) so the re-scan is cheap. Anything not explicitly valid is
 * refused, and every refusal closes the connection: once framing is in
 * doubt no later byte on that connection can be trusted.
 */
#include "gateway/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"

#define METHOD_MAX 20 /* longer method tokens are answered 501 */
#define HOST_MAX 261  /* 255 name + ':' + 5 port digits */

bool http_is_tchar(unsigned char c)
{
	/* RFC 9110 5.6.2: "!#$%&'*+-.^_`|~" DIGIT ALPHA */
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && memchr(extra, c, sizeof(extra) - 1) != NULL;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int http__fail(struct http_error *e, int status, const char *msg)
{
	e->status = status;
	e->message = msg;
	e->close = true;
	return -1;
}

void http_limits_default(struct http_limits *lim)
{
	lim->header_bytes = 16384;
	lim->header_line = 8192;
	lim->request_line = 8192;
	lim->header_count = 100;
	lim->body_max = (uint64_t)1 << 30;
}

/* ---------------------------------------------------------------- lists */

bool http_list_next(const char **p, const char *end, const char **tok, size_t *tok_len)
{
	const char *s = *p;

	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		const char *b = s;

		s = comma ? comma + 1 : end;
		while (b < e && is_ows(*b))
			b++;
		while (e > b && is_ows(e[-1]))
			e--;
		if (e > b) {
			*p = s;
			*tok = b;
			*tok_len = (size_t)(e - b);
			return true;
		}
	}
	*p = end;
	return false;
}

bool http_list_has(const char *v, size_t len, const char *token)
{
	const char *p = v, *t;
	size_t tl, want = strlen(token);

	while (http_list_next(&p, v + len, &t, &tl))
		if (tl == want && strncasecmp(t, token, tl) == 0)
			return true;
	return false;
}

/* ----------------------------------------------------------------- host */

static bool port_valid(const char *p, size_t n)
{
	unsigned long v = 0;

	if (n < 1 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

static bool ipv6_literal_valid(const char *p, size_t n)
{
	/* "[" HEXDIG / ":" / "." "]": no zone ids, no IPvFuture */
	if (n < 4 || p[0] != '[' || p[n - 1] != ']')
		return false;
	for (size_t i = 1; i + 1 < n; i++) {
		char c = p[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
			return false;
	}
	return true;
}

static bool reg_name_valid(const char *p, size_t n)
{
	/* unreserved only: no pct-encoding, no sub-delims, no '@' userinfo */
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'))
			return false;
	}
	return true;
}

bool http_host_valid(const char *h, size_t len)
{
	const char *colon;
	size_t hl;

	if (len == 0 || len > HOST_MAX)
		return false;
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', len);

		if (!rb)
			return false;
		hl = (size_t)(rb - h) + 1;
		if (!ipv6_literal_valid(h, hl))
			return false;
		if (hl == len)
			return true;
		return h[hl] == ':' && port_valid(h + hl + 1, len - hl - 1);
	}
	colon = memchr(h, ':', len);
	hl = colon ? (size_t)(colon - h) : len;
	if (!reg_name_valid(h, hl))
		return false;
	return !colon || port_valid(colon + 1, len - hl - 1);
}

/* ----------------------------------------------------- head scanning */

/*
 * Finds the line starting at pos. Returns 1 with *eol (index of its CR) and
 * *next (index after LF), 0 when incomplete, -1 on a bare LF or bare CR.
 */
static int next_line(const char *buf, size_t len, size_t pos, size_t *eol, size_t *next)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	size_t end = lf ? (size_t)(lf - buf) : len;
	const char *cr = memchr(buf + pos, '\r', end - pos);

	if (!lf) {
		/* a CR with a byte after it that is not LF is a bare CR */
		if (cr && (size_t)(cr - buf) + 1 < len)
			return -1;
		return 0;
	}
	if (!cr || (size_t)(cr - buf) != end - 1)
		return -1; /* bare LF, or a CR inside the line */
	*eol = end - 1;
	*next = end + 1;
	return 1;
}

/* Limits that an incomplete line at pos already exceeds (PRX-15). */
static int check_partial(const char *buf, size_t len, size_t pos, size_t lineno,
			 const struct http_limits *lim, const struct http__head *h,
			 struct http_error *e)
{
	size_t partial = len - pos;
	bool req_line = lineno == 0 && h->is_request;

	if (partial && buf[len - 1] == '\r')
		partial--; /* the CR of a line exactly at the limit */
	if (req_line && partial > lim->request_line)
		return http__fail(e, 414, "request line too long");
	if (!req_line && partial > lim->header_line)
		return http__fail(e, 431, "header line too long");
	if (len > lim->header_bytes)
		return http__fail(e, 431, "request header too large");
	return 0;
}

bool http__value_ok(const char *p, size_t n)
{
	/* field-vchar / SP / HTAB / obs-text: no NUL, CR, LF, other CTLs, DEL */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* Length of the field name before ':', or -1 if a byte is not a tchar
 * ('_' included: nginx and Envoy's edge config refuse it, and some
 * frameworks read X_User as X-User), or -2 if there is no ':'. */
static long name_len(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			return (long)i;
		if (!http_is_tchar(c) || c == '_')
			return -1;
	}
	return -2;
}

/* One "name: value" line p[0..n) (CRLF excluded), R-3.2. */
static int parse_header_line(const char *p, size_t n, struct http_header *out,
			     struct http_error *e)
{
	long nl;
	size_t b, t;

	if (n > 0 && is_ows(p[0]))
		return http__fail(e, 400, "obsolete line folding");
	nl = name_len(p, n);
	if (nl == -1)
		return http__fail(e, 400, "invalid character in header name");
	if (nl == -2)
		return http__fail(e, 400, "header line without ':'");
	if (nl == 0)
		return http__fail(e, 400, "empty header name");
	if (!http__value_ok(p + nl + 1, n - (size_t)nl - 1))
		return http__fail(e, 400, "control character in header value");
	for (b = (size_t)nl + 1; b < n && is_ows(p[b]); b++)
		;
	for (t = n; t > b && is_ows(p[t - 1]); t--)
		;
	out->name = p;
	out->name_len = (size_t)nl;
	out->value = p + b;
	out->value_len = t - b;
	return 0;
}

static int scan_line(const char *buf, size_t pos, size_t eol, size_t lineno,
		     const struct http_limits *lim, struct http__head *h, struct http_error *e)
{
	size_t n = eol - pos;

	if (lineno == 0) {
		if (h->is_request && n > lim->request_line)
			return http__fail(e, 414, "request line too long");
		if (n > lim->header_line)
			return http__fail(e, 431, "status line too long");
		if (n == 0)
			return http__fail(e, 400, "empty first line");
		return h->first_line(h->ctx, buf + pos, n, e);
	}
	if (n > lim->header_line)
		return http__fail(e, 431, "header line too long");
	if (h->nhdr >= h->max_hdr)
		return http__fail(e, 431, "too many header fields");
	if (parse_header_line(buf + pos, n, &h->hdr[h->nhdr], e) < 0)
		return -1;
	h->nhdr++;
	return 0;
}

int http__scan_head(const char *buf, size_t len, const struct http_limits *lim,
		    struct http__head *h, struct http_error *e)
{
	size_t pos = 0, lineno = 0, eol, next;

	h->nhdr = 0;
	if (h->max_hdr > HTTP_MAX_HEADERS_HARD)
		h->max_hdr = HTTP_MAX_HEADERS_HARD;
	for (;;) {
		int r = next_line(buf, len, pos, &eol, &next);

		if (r < 0)
			return http__fail(e, 400, "bare CR or LF");
		if (r == 0)
			return check_partial(buf, len, pos, lineno, lim, h, e);
		if (lineno > 0 && eol == pos) {
			if (next > lim->header_bytes)
				return http__fail(e, 431, "request header too large");
			h->head_len = next;
			return 1;
		}
		/* per-line limits first: an overlong request line is a 414 */
		if (scan_line(buf, pos, eol, lineno, lim, h, e) < 0)
			return -1;
		if (next > lim->header_bytes)
			return http__fail(e, 431, "request header too large");
		pos = next;
		lineno++;
	}
}

/* ------------------------------------------------------------- lookups */

const struct http_header *http__find(const struct http_header *hdr, size_t n,
				     const char *name, size_t *count)
{
	const struct http_header *first = NULL;
	size_t nl = strlen(name), c = 0;

	for (size_t i = 0; i < n; i++) {
		if (hdr[i].name_len != nl || strncasecmp(hdr[i].name, name, nl) != 0)
			continue;
		if (!first)
			first = &hdr[i];
		c++;
	}
	if (count)
		*count = c;
	return first;
}

const struct http_header *http_req_header(const struct http_req *req, const char *name,
					  size_t *count)
{
	return http__find(req->hdr, req->nhdr, name, count);
}

int http__parse_cl(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return -1;
	if (n > 19)
		return -2; /* 19 digits always fit in uint64_t */
	for (size_t i = 0; i < n; i++)
		x = x * 10 + (uint64_t)(v[i] - '0');
	*out = x;
	return 0;
}

/* -------------------------------------------------------- request line */

struct req_ctx {
	struct http_req *req;
	const char *path;
	size_t path_len;
	const char *query;  /* NULL when the target had no '?' */
	size_t query_len;
};

static const struct {
	const char *name;
	enum http_method m;
} methods[] = {
	{ "GET", HTTP_GET },	   { "HEAD", HTTP_HEAD },	{ "POST", HTTP_POST },
	{ "PUT", HTTP_PUT },	   { "PATCH", HTTP_PATCH },	{ "DELETE", HTTP_DELETE },
	{ "OPTIONS", HTTP_OPTIONS }, { "TRACE", HTTP_TRACE }, { "CONNECT", HTTP_CONNECT },
};

static enum http_method method_lookup(const char *p, size_t n)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i].name) == n && memcmp(methods[i].name, p, n) == 0)
			return methods[i].m;
	return HTTP_OTHER;
}

static size_t digits_at(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++;
	return i;
}

/* "HTTP/1.0" or "HTTP/1.1" -> minor; other HTTP/d.d -> 505; else 400. */
static int parse_version(const char *p, size_t n, int *minor, struct http_error *e)
{
	size_t d1, d2;

	if (n < 5 || memcmp(p, "HTTP/", 5) != 0)
		return http__fail(e, 400, "malformed HTTP version");
	d1 = digits_at(p + 5, n - 5);
	if (d1 == 0 || 5 + d1 >= n || p[5 + d1] != '.')
		return http__fail(e, 400, "malformed HTTP version");
	d2 = digits_at(p + 6 + d1, n - 6 - d1);
	if (d2 == 0 || 6 + d1 + d2 != n)
		return http__fail(e, 400, "malformed HTTP version");
	if (n == 8 && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1')) {
		*minor = p[7] - '0';
		return 0;
	}
	return http__fail(e, 505, "HTTP version not supported");
}

static bool has_prefix_ci(const char *p, size_t n, const char *pre)
{
	size_t pl = strlen(pre);

	return n >= pl && strncasecmp(p, pre, pl) == 0;
}

/* Splits an absolute-form target into authority and path. */
static int parse_absolute(struct req_ctx *c, const char *t, size_t n, struct http_error *e)
{
	size_t skip = has_prefix_ci(t, n, "http://") ? 7 : has_prefix_ci(t, n, "https://") ? 8 : 0;
	size_t a = skip;

	if (!skip)
		return http__fail(e, 400, "request target must be origin-form");
	while (a < n && t[a] != '/' && t[a] != '?')
		a++;
	if (!http_host_valid(t + skip, a - skip))
		return http__fail(e, 400, "invalid authority in request target");
	c->req->authority = t + skip;
	c->req->authority_len = a - skip;
	c->path = t + a;
	c->path_len = n - a;
	return 0;
}

static int parse_target(struct req_ctx *c, const char *t, size_t n, struct http_error *e)
{
	const char *q;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)t[i];

		if (ch <= 0x20 || ch >= 0x7f || ch == '#')
			return http__fail(e, 400, "invalid character in request target");
	}
	if (n > 0 && t[0] == '/') {
		c->path = t;
		c->path_len = n;
	} else if (parse_absolute(c, t, n, e) < 0) {
		return -1;
	}
	q = memchr(c->path, '?', c->path_len);
	if (q) {
		c->query = q + 1;
		c->query_len = c->path_len - (size_t)(q - c->path) - 1;
		c->path_len = (size_t)(q - c->path);
	}
	return 0;
}

static int request_line(void *ctx, const char *p, size_t n, struct http_error *e)
{
	struct req_ctx *c = ctx;
	struct http_req *req = c->req;
	size_t m = 0;
	const char *sp2;

	while (m < n && http_is_tchar((unsigned char)p[m]))
		m++;
	if (m == 0 || m == n || p[m] != ' ')
		return http__fail(e, 400, "malformed request line");
	if (m > METHOD_MAX)
		return http__fail(e, 501, "method not implemented");
	sp2 = memchr(p + m + 1, ' ', n - m - 1);
	if (!sp2)
		return http__fail(e, 400, "missing HTTP version");
	if (parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - p), &req->minor, e) < 0)
		return -1;
	memcpy(req->method_str, p, m);
	req->method_str[m] = '\0';
	req->method = method_lookup(p, m);
	if (req->method == HTTP_TRACE || req->method == HTTP_CONNECT)
		return http__fail(e, 405, "method not allowed");
	return parse_target(c, p + m + 1, (size_t)(sp2 - p) - m - 1, e);
}

/* ------------------------------------------------------------ semantics */

static bool method_needs_body(enum http_method m)
{
	return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH;
}

/* Host (R-3.6, PRX-7): one valid Host, equal to an absolute-form authority. */
static int check_host(struct http_req *req, struct http_error *e)
{
	size_t count;
	const struct http_header *h = http_req_header(req, "Host", &count);

	if (count > 1)
		return http__fail(e, 400, "more than one Host header");
	if (!h) {
		if (req->minor == 1)
			return http__fail(e, 400, "missing Host header");
		req->host = req->authority;
		req->host_len = req->authority_len;
		return 0;
	}
	if (!http_host_valid(h->value, h->value_len))
		return http__fail(e, 400, "invalid Host header");
	if (req->authority && (req->authority_len != h->value_len ||
			       strncasecmp(req->authority, h->value, h->value_len) != 0))
		return http__fail(e, 400, "request target authority does not match Host");
	req->host = h->value;
	req->host_len = h->value_len;
	return 0;
}

/* Transfer-Encoding is refused outright (decision 2, PRX-1..3). */
static int check_te(const struct http_req *req, struct http_error *e)
{
	size_t nte, ncl;

	if (!http_req_header(req, "Transfer-Encoding", &nte))
		return 0;
	http_req_header(req, "Content-Length", &ncl);
	if (ncl > 0)
		return http__fail(e, 400, "both Content-Length and Transfer-Encoding");
	if (req->minor == 0 || nte > 1)
		return http__fail(e, 400, "Transfer-Encoding not allowed");
	if (method_needs_body(req->method))
		return http__fail(e, 411, "Transfer-Encoding not supported, send Content-Length");
	return http__fail(e, 400, "Transfer-Encoding not allowed");
}

/* Content-Length (R-3.1, PRX-4, PRX-14). */
static int check_cl(struct http_req *req, const struct http_limits *lim, struct http_error *e)
{
	size_t count;
	const struct http_header *h = http_req_header(req, "Content-Length", &count);
	uint64_t v;
	int r;

	if (!h) {
		if (method_needs_body(req->method))
			return http__fail(e, 411, "Content-Length required");
		return 0;
	}
	if (count > 1)
		return http__fail(e, 400, "more than one Content-Length header");
	r = http__parse_cl(h->value, h->value_len, &v);
	if (r == -1)
		return http__fail(e, 400, "invalid Content-Length");
	if (r == -2 || v > lim->body_max || v > (uint64_t)INT64_MAX)
		return http__fail(e, 413, "request body too large");
	req->content_length = (int64_t)v;
	return 0;
}

/* Connection, Expect and Upgrade. */
static int check_options(struct http_req *req, struct http_error *e)
{
	bool close = false, ka = false;

	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_header *h = &req->hdr[i];

		if (h->name_len == 10 && strncasecmp(h->name, "Connection", 10) == 0) {
			close |= http_list_has(h->value, h->value_len, "close");
			ka |= http_list_has(h->value, h->value_len, "keep-alive");
		} else if (h->name_len == 6 && strncasecmp(h->name, "Expect", 6) == 0) {
			if (h->value_len != 12 || strncasecmp(h->value, "100-continue", 12) != 0)
				return http__fail(e, 417, "unsupported Expect");
			req->expect_continue = req->minor == 1;
		} else if (h->name_len == 7 && strncasecmp(h->name, "Upgrade", 7) == 0) {
			/* h2c and other protocols are refused (PRX-23); a
			 * websocket upgrade is validated by ws_validate_upgrade() */
			if (!http_list_has(h->value, h->value_len, "websocket"))
				return http__fail(e, 400, "unsupported Upgrade");
			req->ws_upgrade = true;
		}
	}
	/*
	 * After an upgrade request the bytes that follow are WebSocket frames
	 * to the server but a body to anyone counting Content-Length: such a
	 * request means two things at once (a desync found by t5009), so refuse it.
	 */
	if (req->ws_upgrade && req->content_length > 0)
		return http__fail(e, 400, "a WebSocket upgrade cannot carry a body");
	req->keep_alive = req->minor == 1 ? !close : (ka && !close);
	return 0;
}

static int finish_request(struct req_ctx *c, const struct http_limits *lim, struct http_error *e)
{
	struct http_req *req = c->req;

	if (check_host(req, e) < 0 || check_te(req, e) < 0 || check_cl(req, lim, e) < 0 ||
	    check_options(req, e) < 0)
		return -1;
	if (http_path_canon(c->path, c->path_len, &req->path, e) < 0) {
		e->close = true;
		return -1;
	}
	if (c->query)
		req->query = xstrndup(c->query, c->query_len);
	return 0;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_req *req, struct http_error *e)
{
	struct req_ctx c = { .req = req };
	struct http__head h = {
		.hdr = req->hdr, .max_hdr = lim->header_count,
		.first_line = request_line, .ctx = &c, .is_request = true,
	};
	int r;

	memset(req, 0, sizeof(*req));
	req->content_length = -1;
	r = http__scan_head(buf, len, lim, &h, e);
	req->nhdr = h.nhdr;
	if (r <= 0) {
		req->keep_alive = false;
		return r;
	}
	req->head_len = h.head_len;
	if (finish_request(&c, lim, e) < 0) {
		http_req_clear(req);
		return -1;
	}
	return 1;
}

void http_req_clear(struct http_req *req)
{
	http_path_clear(&req->path);
	free(req->query);
	req->query = NULL;
}
