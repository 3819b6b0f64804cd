/*
 * http: strict HTTP/1.1 message parsing (pure functions, no I/O).
 *
 * lws 4.1.6 does no request-smuggling defence and decodes the path before
 * an application sees it (SECURITY.md section 0), so nbgate runs its
 * listeners as raw sockets and parses requests itself, here. Everything the
 * gateway forwards is rebuilt from what these functions accept.
 *
 * All functions may run on the event-loop thread; none allocate more than
 * the request they describe.
 */
#ifndef NBGATE_GATEWAY_HTTP_H
#define NBGATE_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS_HARD 256 /* array size; the configured limit is lower */

enum http_method {
	HTTP_OTHER = 0, HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_PATCH,
	HTTP_DELETE, HTTP_OPTIONS, HTTP_TRACE, HTTP_CONNECT,
};

struct http_limits {
	size_t header_bytes;     /* request line + all headers, default 16384 */
	size_t header_line;      /* one header line, default 8192 */
	size_t request_line;     /* default 8192 -> 414 above */
	size_t header_count;     /* default 100 */
	uint64_t body_max;       /* max Content-Length accepted here -> 413 */
};

/* A header as received: pointers into the caller's buffer (borrowed). */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value;   /* OWS trimmed on both sides */
	size_t value_len;
};

/* Canonical path: decoded segments, "." and ".." resolved,
 * empty segments merged, re-encoded deterministically. */
struct http_path {
	char **seg;          /* decoded segments, owned; a segment may hold '/' from %2F */
	size_t nseg;
	bool trailing_slash; /* original path ended in '/' */
	char *encoded;       /* "/a/b%2Fc/" re-encoded form; routing and forwarding use this */
};

struct http_req {
	enum http_method method;
	char method_str[24];     /* as sent (validated token) */
	int minor;               /* HTTP/1.<minor>: 0 or 1 */
	struct http_path path;   /* owned */
	char *query;             /* raw query without '?', owned, NULL if none */
	struct http_header hdr[HTTP_MAX_HEADERS_HARD];
	size_t nhdr;
	int64_t content_length;  /* -1 when absent */
	const char *host;        /* borrowed from hdr; NULL when absent */
	size_t host_len;
	bool keep_alive;         /* after Connection/version rules */
	bool expect_continue;
	bool ws_upgrade;         /* Upgrade: websocket present (not yet validated by
				  * ws_validate_upgrade()); an Upgrade header without
				  * "websocket" (h2c, PRX-23) is refused 400 by the parser */
	size_t head_len;         /* bytes of request line + headers + CRLF CRLF */
	/* Added by http.c: absolute-form target ("GET http://h:p/x"): its
	 * host[:port], borrowed from the buffer; NULL for origin-form. It is
	 * checked against Host (mismatch -> 400); on HTTP/1.0 without Host,
	 * host points at it. */
	const char *authority;
	size_t authority_len;
};

/* A rejected message: the status to answer, a short reason for the JSON or
 * HTML body, and whether the connection must close (framing errors do). */
struct http_error {
	int status;
	const char *message; /* static string */
	bool close;
};

/*
 * Parses one request head from buf[0..len). Returns 1 when a complete head
 * was parsed into *req (caller clears with http_req_clear()), 0 when more
 * bytes are needed (also checks the partial head against the limits, so an
 * oversized head fails before it is complete), -1 on a rejected request with
 * *e set. Header pointers in *req point into buf.
 * Enforces, R-3.6 (syntax), R-3.7 and the PRX-1..7 tables.
 * Every refusal sets e->close (framing can no longer be trusted). A request
 * with Transfer-Encoding is refused (decision 2): 411 on POST/PUT/PATCH,
 * 400 otherwise, 400 with Content-Length too. After 0 or -1 *req owns
 * nothing (http_req_clear() is still safe). *req is large (~8 KiB): keep it
 * off small stacks.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_req *req, struct http_error *e);
void http_req_clear(struct http_req *req);

/* Case-insensitive header lookup; returns the first match or NULL.
 * *count (if non-NULL) receives the number of headers with that name. */
const struct http_header *http_req_header(const struct http_req *req, const char *name,
					  size_t *count);

/*
 * Canonicalises a raw request-target path (no query). Returns 0, or -1 with
 * *e set: %00 / bad %XX / raw CTL or byte >= 0x80 / backslash -> 400,
 * ".." above the root -> 400. Caller clears with http_path_clear().
 */
int http_path_canon(const char *raw, size_t len, struct http_path *out, struct http_error *e);
void http_path_clear(struct http_path *p);
/* Percent-encodes one decoded segment the way http_path_canon does; owned result. */
char *http_path_encode_segment(const char *seg);

/* A response head from an upstream. */
struct http_resp {
	int status;
	int minor;
	struct http_header hdr[HTTP_MAX_HEADERS_HARD];
	size_t nhdr;
	int64_t content_length;  /* -1 when absent */
	bool chunked;            /* Transfer-Encoding: chunked (CL is then ignored/removed) */
	bool keep_alive;         /* false also when the body is delimited by close */
	size_t head_len;
	/* Added: Content-Length arrived together with Transfer-Encoding: chunked
	 * (PRX-20, HAProxy's behaviour): chunked wins, content_length is -1, and
	 * the caller must not forward the Content-Length header; keep_alive is
	 * false so the upstream connection is not reused. */
	bool cl_removed;
};

/* Same contract as http_parse_request, for a response; errors map to 502. */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			struct http_resp *resp, struct http_error *e);
const struct http_header *http_resp_header(const struct http_resp *resp, const char *name,
					   size_t *count);

/*
 * Incremental validator of a chunked body, used to find where a chunked
 * response ends while its bytes are forwarded unchanged. Strict: hex digits
 * only, bounded extensions and trailers, CRLF only.
 */
struct http_chunked {
	int state;
	uint64_t remaining;
	size_t line_len;
	unsigned digits;
};
void http_chunked_init(struct http_chunked *c);
/* Consumes up to len bytes; returns bytes consumed (<= len), or -1 on a
 * framing error. Sets *done once the final CRLF after the last chunk (and
 * trailers) has been consumed; bytes after that are not consumed. */
long http_chunked_feed(struct http_chunked *c, const char *p, size_t len, bool *done);

/* Reason phrase for a status code ("Not Found"); "Unknown" otherwise. */
const char *http_reason(int status);

/* --- added by http.c (helpers other modules may use) --- */

/* Fills *lim with the SECURITY.md defaults: 16 KiB head, 8 KiB line,
 * 8 KiB request line, 100 headers, body_max 1 GiB (decision 6). */
void http_limits_default(struct http_limits *lim);

/* True when the comma-separated list v[0..len) (RFC 9110 #token, OWS around
 * elements, empty elements ignored) contains token, case-insensitively. */
bool http_list_has(const char *v, size_t len, const char *token);

/*
 * Iterates the elements of a comma-separated list: *p is the cursor (start
 * at v), end = v + len. Returns true with *tok and *tok_len set to the next
 * non-empty element with OWS trimmed, false when the list is exhausted.
 * Used for Connection (hop-by-hop names, R-3.4) and Upgrade.
 */
bool http_list_next(const char **p, const char *end, const char **tok, size_t *tok_len);

/* True for host[:port] as accepted in Host: reg-name (ALPHA DIGIT
 * - . _ ~), IPv4 or [IPv6], optional port 1..65535, at most 261 bytes. */
bool http_host_valid(const char *h, size_t len);

/* True for RFC 9110 tchar (field names, methods, list tokens). */
bool http_is_tchar(unsigned char c);

/*
 * Internal to gateway/http*.c ("http__" prefix, libuv style): the head
 * scanner shared by requests and responses. Calls first_line() once the
 * first line is complete, then parses header lines into hdr[] (at most
 * max_hdr, further ones -> 431). Returns 1 with *nhdr and *head_len set,
 * 0 when more bytes are needed (limits already checked), -1 with *e set
 * (400/414/431, or whatever first_line() set).
 */
struct http__head {
	struct http_header *hdr;
	size_t nhdr;
	size_t max_hdr;
	size_t head_len;
	int (*first_line)(void *ctx, const char *p, size_t n, struct http_error *e);
	void *ctx;
	bool is_request;         /* 414 for an overlong first line */
};
int http__scan_head(const char *buf, size_t len, const struct http_limits *lim,
		    struct http__head *h, struct http_error *e);
/* Content-Length value: 0, -1 (not 1*DIGIT), -2 (more than 19 digits). */
int http__parse_cl(const char *v, size_t n, uint64_t *out);
const struct http_header *http__find(const struct http_header *hdr, size_t n,
				     const char *name, size_t *count);
int http__fail(struct http_error *e, int status, const char *msg);
/* True when p[0..n) holds no CTL other than HTAB (and no DEL). */
bool http__value_ok(const char *p, size_t n);

#endif
