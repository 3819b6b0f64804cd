/*
 * Unit tests for gateway/pages.c: HTML escaping (R-1.5, JH-2, JH-13), the
 * error page built from hostile input, the static files, and the
 * Prometheus text that /hub/metrics serves (gateway/metrics.c).
 *
 * The connection core is replaced by weak stubs that capture what would be
 * sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "gateway/pages.c"
#include "gateway/route.h"

#define WEAK __attribute__((weak))

static struct {
	int status;
	char body[1 << 16];
	char head[4096];
} sent;

WEAK void gw_response_init(struct gw_response *r, int status)
{
	r->status = status;
	buf_init(&r->head, 1 << 16);
	buf_init(&r->body, 1 << 20);
}
WEAK void gw_response_release(struct gw_response *r)
{
	buf_release(&r->head);
	buf_release(&r->body);
}
WEAK void gw_response_header(struct gw_response *r, const char *n, const char *fmt, ...)
{
	va_list ap;
	char *v;

	va_start(ap, fmt);
	v = xvasprintf(fmt, ap);
	va_end(ap);
	buf_appendf(&r->head, "%s: %s\r\n", n, v);
	free(v);
}
WEAK void gw_response_json(struct gw_response *r, int status, struct cJSON *json)
{
	char *s = cJSON_PrintUnformatted(json);

	r->status = status;
	buf_appends(&r->body, s);
	free(s);
	cJSON_Delete(json);
}
WEAK void gw_response_error(struct gw_response *r, int status, const char *fmt, ...)
{
	r->status = status;
}
WEAK void gw_response_html(struct gw_response *r, int status, const char *html)
{
	r->status = status;
	buf_appends(&r->body, html);
}
WEAK void gw_response_redirect(struct gw_response *r, int status, const char *l)
{
	r->status = status;
}
WEAK void gw_send(struct gw_conn *c, struct gw_response *r)
{
	sent.status = r->status;
	snprintf(sent.body, sizeof(sent.body), "%s", r->body.data ? r->body.data : "");
	snprintf(sent.head, sizeof(sent.head), "%s", r->head.data ? r->head.data : "");
	gw_response_release(r);
}
WEAK void gw_stream_begin(struct gw_conn *c, struct gw_response *head) {}
WEAK int gw_stream_write(struct gw_conn *c, const char *p, size_t n) { return 0; }
WEAK void gw_stream_end(struct gw_conn *c) {}
WEAK struct gw_conn *gw_conn_ref(struct gw_conn *c) { return c; }
WEAK void gw_conn_unref(struct gw_conn *c) {}
WEAK bool gw_conn_alive(const struct gw_conn *c) { return true; }
WEAK void gw_close_sessions_of(struct gw *gw, const char *h) {}
/* Stubs, so that route.o (and the core it pulls in) stays out of the link;
 * metrics.c only asks for the count. */
WEAK int gw_routes_set(struct gw_routes *rt, const char *u, const char *s, const char *up,
		       struct err **err) { return 0; }
WEAK void gw_routes_del(struct gw_routes *rt, const char *u, const char *s) {}
WEAK size_t gw_routes_count(const struct gw_routes *rt) { return 0; }

static void expect_escape(const char *in, const char *want)
{
	char *got = gw_html_escape(in);

	assert_string_equal(got, want);
	free(got);
}

static void test_escape_table(void **state)
{
	expect_escape("", "");
	expect_escape(NULL, "");
	expect_escape("plain text 123", "plain text 123");
	expect_escape("a&b", "a&amp;b");
	expect_escape("<script>", "&lt;script&gt;");
	expect_escape("\"'`", "&quot;&#39;&#96;");
	expect_escape("&amp;", "&amp;amp;");
	expect_escape("caf\xc3\xa9", "caf\xc3\xa9");
}

/* No byte that could end an attribute or open a tag survives escaping. */
static void test_escape_jh2_payloads(void **state)
{
	static const char *const payloads[] = {
		"\" onfocus=alert(1) x=\"",
		"</script><script>alert(1)</script>",
		"'><svg onload=alert(1)>",
		"`${alert(1)}`",
	};
	size_t i;
	char *e;

	for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		e = gw_html_escape(payloads[i]);
		assert_null(strpbrk(e, "<>\"'`"));
		free(e);
	}
}

/* JH-13: the error page built from a hostile path shows it escaped only. */
static void test_error_page_escapes(void **state)
{
	const char *evil = "/nonexistent/\"><svg onload=alert(1)>";

	hub__send_page_error(NULL, 404, evil);
	assert_int_equal(sent.status, 404);
	assert_null(strstr(sent.body, "<svg"));
	assert_non_null(strstr(sent.body, "/nonexistent/&quot;&gt;&lt;svg"));
	assert_non_null(strstr(sent.body, "&lt;svg onload=alert(1)&gt;"));
	assert_non_null(strstr(sent.body, "404 Not Found"));
}

static void test_static_files(void **state)
{
	struct hub_match m = { .arg = { "app.js" }, .narg = 1 };

	hub__page_static(NULL, NULL, NULL, &m);
	assert_int_equal(sent.status, 200);
	assert_non_null(strstr(sent.head, "Content-Type: application/javascript"));
	assert_non_null(strstr(sent.body, "EventSource"));
	m.arg[0] = "style.css";
	hub__page_static(NULL, NULL, NULL, &m);
	assert_int_equal(sent.status, 200);
	assert_non_null(strstr(sent.head, "Content-Type: text/css"));
	m.arg[0] = "../secret.key";
	hub__page_static(NULL, NULL, NULL, &m);
	assert_int_equal(sent.status, 404);
}

/* Prometheus text format 0.0.4: HELP/TYPE before samples, cumulative
 * buckets ending in +Inf == _count. */
static void test_metrics_render(void **state)
{
	struct gw_metrics *m = gw_metrics_new();
	struct buf out;

	gw_metrics_request(m, 200);
	gw_metrics_request(m, 204);
	gw_metrics_request(m, 404);
	gw_metrics_request(m, 99);   /* ignored */
	gw_metrics_request(m, 600);  /* ignored */
	gw_metrics_proxy_bytes(m, 10, 20);
	gw_metrics_ws_open(m);
	gw_metrics_ws_open(m);
	gw_metrics_ws_close(m);
	gw_metrics_spawn(m, 0.05);
	gw_metrics_spawn(m, 1.5);
	gw_metrics_spawn(m, 100);
	buf_init(&out, 1 << 20);
	gw_metrics_render_values(m, 3, 2, &out);
	assert_non_null(strstr(out.data, "# TYPE nbgate_http_requests_total counter\n"));
	assert_non_null(strstr(out.data, "nbgate_http_requests_total{code=\"2xx\"} 2\n"));
	assert_non_null(strstr(out.data, "nbgate_http_requests_total{code=\"4xx\"} 1\n"));
	assert_non_null(strstr(out.data, "nbgate_http_requests_total{code=\"1xx\"} 0\n"));
	assert_non_null(strstr(out.data, "nbgate_proxy_bytes_total{direction=\"in\"} 10\n"));
	assert_non_null(strstr(out.data, "nbgate_proxy_bytes_total{direction=\"out\"} 20\n"));
	assert_non_null(strstr(out.data, "nbgate_websockets_open 1\n"));
	assert_non_null(strstr(out.data, "nbgate_routes 3\n"));
	assert_non_null(strstr(out.data, "nbgate_active_users 2\n"));
	assert_non_null(strstr(out.data, "# TYPE nbgate_spawn_duration_seconds histogram\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_bucket{le=\"0.1\"} 1\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_bucket{le=\"1\"} 1\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_bucket{le=\"2.5\"} 2\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_bucket{le=\"60\"} 2\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_count 3\n"));
	assert_non_null(strstr(out.data, "nbgate_spawn_duration_seconds_sum 101.550000\n"));
	buf_release(&out);
	gw_metrics_free(m);
}

/* Every sample line's metric has a TYPE line earlier in the text. */
static void test_metrics_types_first(void **state)
{
	struct gw_metrics *m = gw_metrics_new();
	char *line, *save = NULL, *name, *types;
	struct buf out;
	size_t n;

	buf_init(&out, 1 << 20);
	gw_metrics_render_values(m, 0, 0, &out);
	types = xstrdup("");
	for (line = out.data; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		n = strcspn(line, "\n");
		if (strncmp(line, "# TYPE ", 7) == 0) {
			save = xasprintf("%s|%.*s", types, (int)strcspn(line + 7, " "), line + 7);
			free(types);
			types = save;
			continue;
		}
		if (line[0] == '#')
			continue;
		name = xstrndup(line, strcspn(line, "{ "));
		for (const char *suf = "_bucket"; suf; suf = NULL)
			if (strlen(name) > 7 && strcmp(name + strlen(name) - 7, suf) == 0)
				name[strlen(name) - 7] = '\0';
		if (strlen(name) > 4 && strcmp(name + strlen(name) - 4, "_sum") == 0)
			name[strlen(name) - 4] = '\0';
		if (strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_count") == 0)
			name[strlen(name) - 6] = '\0';
		if (!strstr(types, name))
			fail_msg("sample '%.*s' has no TYPE line before it", (int)n, line);
		assert_true(strncmp(name, "nbgate_", 7) == 0);
		free(name);
	}
	free(types);
	buf_release(&out);
	gw_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_jh2_payloads),
		cmocka_unit_test(test_error_page_escapes),
		cmocka_unit_test(test_static_files),
		cmocka_unit_test(test_metrics_render),
		cmocka_unit_test(test_metrics_types_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
