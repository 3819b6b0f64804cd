/*
 * k8s_api: the Kubernetes REST client's transport and typed calls (see
 * k8s_api.h). One libcurl easy handle per call, so calls from several
 * worker threads never share state except the token (under a mutex).
 *
 * NEEDSWORK: no connection reuse (a TLS handshake per call); a curl share
 * handle for connections and TLS sessions would save it. Lists are not
 * paginated (limit/continue): max_response_bytes bounds them.
 */
#define LOG_PREFIX "spawner/k8s_api: "

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "spawner/k8s_api_internal.h"

#define K8S_MSG_MAX 1024

static const struct k8s_kind_info kinds[K8S_KIND_COUNT] = {
	[K8S_POD] = { "Pod", "v1", "/api/v1", "pods" },
	[K8S_PVC] = { "PersistentVolumeClaim", "v1", "/api/v1", "persistentvolumeclaims" },
	[K8S_SECRET] = { "Secret", "v1", "/api/v1", "secrets" },
	[K8S_SERVICE] = { "Service", "v1", "/api/v1", "services" },
	[K8S_EVENT] = { "Event", "v1", "/api/v1", "events" },
	[K8S_JOB] = { "Job", "batch/v1", "/apis/batch/v1", "jobs" },
};

const struct k8s_kind_info *k8s_kind_info(enum k8s_kind kind)
{
	if ((unsigned)kind >= K8S_KIND_COUNT)
		return NULL;
	return &kinds[kind];
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		abort(); /* no TLS library: nothing of this client could work */
}

/* ---- client ---- */

static void wipe_free(char *p, size_t n)
{
	if (p) {
		explicit_bzero(p, n);
		free(p);
	}
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ns);
	free(c->ca_file);
	free(c->ca_data);
	free(c->cert_data);
	wipe_free(c->key_data, c->key_len);
	free(c->token_file);
	wipe_free(c->token, c->token ? strlen(c->token) : 0);
	pthread_mutex_destroy(&c->token_mu);
	free(c);
}

int k8s_client_new(const struct k8s_client_opts *opts, struct k8s_client **out,
		   struct err **err)
{
	struct k8s_client *c = xcalloc(1, sizeof(*c));

	pthread_once(&curl_once, curl_init_once);
	pthread_mutex_init(&c->token_mu, NULL);
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
	c->request_timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 30000;
	c->max_response_bytes = opts->max_response_bytes > 0 ? opts->max_response_bytes
							     : 16 << 20;
	if (k8s__config_load(c, opts, err) < 0) {
		k8s_client_free(c);
		return -(err && *err ? (*err)->code : EINVAL);
	}
	log_debug("API server '%s', namespace '%s', %s", c->server, c->ns,
		  c->cert_data ? "client certificate" : "bearer token");
	*out = c;
	return 0;
}

const char *k8s_client_namespace(const struct k8s_client *c)
{
	return c->ns;
}

const char *k8s_client_server(const struct k8s_client *c)
{
	return c->server;
}

void k8s_response_clear(struct k8s_response *r)
{
	if (r->body)
		cJSON_Delete(r->body);
	r->body = NULL;
	r->status = 0;
}

/* ---- transport ---- */

struct xctx {
	struct k8s_client *c;
	struct k8s__xfer *x;
	CURL *h;
	bool too_big;
	struct err *sink_err;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xctx *t = arg;
	size_t n = size * nmemb;
	long st = 0;

	if (t->x->sink) {
		curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &st);
		if (st >= 200 && st < 300)
			return t->x->sink(t->x->sink_arg, p, n, &t->sink_err) < 0 ? 0 : n;
	}
	if (buf_append(&t->x->out, p, n) < 0) {
		t->too_big = true;
		return 0;
	}
	return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct k8s__abort *ab = arg;

	return ab && atomic_load(&ab->stop) ? 1 : 0;
}

static void set_blob(CURL *h, CURLoption opt, const char *data, size_t len)
{
	struct curl_blob b = { .data = (void *)data, .len = len, .flags = CURL_BLOB_COPY };

	curl_easy_setopt(h, opt, &b);
}

static void setup_tls(CURL *h, const struct k8s_client *c)
{
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_data || c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL); /* the cluster CA only */
	if (c->ca_data)
		set_blob(h, CURLOPT_CAINFO_BLOB, c->ca_data, c->ca_len);
	else if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_data) {
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		set_blob(h, CURLOPT_SSLCERT_BLOB, c->cert_data, c->cert_len);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
		set_blob(h, CURLOPT_SSLKEY_BLOB, c->key_data, c->key_len);
	}
}

static struct curl_slist *headers(const struct k8s__xfer *x, const char *token)
{
	struct curl_slist *l = NULL;
	char *v;

	v = xasprintf("Accept: %s", x->accept ? x->accept : "application/json");
	l = curl_slist_append(l, v);
	free(v);
	if (x->body) {
		v = xasprintf("Content-Type: %s",
			      x->content_type ? x->content_type : "application/json");
		l = curl_slist_append(l, v);
		free(v);
	}
	if (token) {
		v = xasprintf("Authorization: Bearer %s", token);
		l = curl_slist_append(l, v);
		explicit_bzero(v, strlen(v));
		free(v);
	}
	return curl_slist_append(l, "Expect:"); /* no 100-continue round trip */
}

static void setup(CURL *h, struct xctx *t, const char *url, char *errbuf)
{
	struct k8s__xfer *x = t->x;
	int64_t tmo = x->timeout_ms ? x->timeout_ms : t->c->request_timeout_ms;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "nbgate");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)t->c->connect_timeout_ms);
	if (tmo > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)tmo);
	if (x->low_speed_time_s > 0) {
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, x->low_speed_time_s);
	}
	if (!x->sink)
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
				 (curl_off_t)t->c->max_response_bytes);
	if (x->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
	} else if (strcmp(x->method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x->abort);
	setup_tls(h, t->c);
}

/* Drives one easy handle on the abort's multi handle: k8s_watch_stop()
 * wakes curl_multi_poll() at once (an easy handle would notice its
 * progress callback only about once a second). */
static CURLcode run_multi(CURL *h, struct k8s__abort *ab)
{
	CURLM *m = ab->multi;
	CURLcode rc = CURLE_ABORTED_BY_CALLBACK;
	int running = 1;
	CURLMsg *msg;
	int left;

	if (curl_multi_add_handle(m, h) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (!atomic_load(&ab->stop)) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			rc = CURLE_RECV_ERROR;
			break;
		}
		if (!running) {
			while ((msg = curl_multi_info_read(m, &left)))
				if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
					rc = msg->data.result;
			break;
		}
		curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(m, h);
	return rc;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_FILESIZE_EXCEEDED:
		return EMSGSIZE;
	case CURLE_ABORTED_BY_CALLBACK:
		return ECANCELED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return ECONNRESET;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return EPROTO;
	default:
		return EIO;
	}
}

/* One attempt with the given token. */
static int attempt(struct k8s_client *c, struct k8s__xfer *x, const char *url,
		   const char *token, struct err **err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct xctx t = { .c = c, .x = x };
	struct curl_slist *hdr = headers(x, token);
	CURLcode rc;
	int r = 0;

	t.h = curl_easy_init();
	if (!t.h) {
		curl_slist_free_all(hdr);
		return err_set(err, ENOMEM, "%s %s: curl_easy_init failed", x->method, x->path);
	}
	buf_reset(&x->out);
	x->status = 0;
	setup(t.h, &t, url, errbuf);
	curl_easy_setopt(t.h, CURLOPT_HTTPHEADER, hdr);
	rc = x->abort && x->abort->multi ? run_multi(t.h, x->abort) : curl_easy_perform(t.h);
	curl_easy_getinfo(t.h, CURLINFO_RESPONSE_CODE, &x->status);
	if (t.sink_err) {
		*err = steal_ptr(&t.sink_err);
		r = -(*err)->code;
	} else if (t.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		r = err_set(err, EMSGSIZE, "%s %s: the answer is larger than %" PRId64 " bytes",
			    x->method, x->path, c->max_response_bytes);
	} else if (rc != CURLE_OK) {
		r = err_set(err, curl_errno(rc), "%s %s%s: %s", x->method, c->server, x->path,
			    errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	curl_easy_cleanup(t.h);
	/* the header list holds the token: wipe it */
	for (struct curl_slist *l = hdr; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(hdr);
	return r;
}

int k8s__perform(struct k8s_client *c, struct k8s__xfer *x, struct err **err)
{
	cleanup_free char *url = xasprintf("%s%s", c->server, x->path);
	char *tok = NULL;
	uint64_t gen = 0;
	int r;

	buf_init(&x->out, (size_t)c->max_response_bytes);
	if (k8s__token_get(c, 0, false, &tok, &gen, err) < 0)
		return -EACCES;
	r = attempt(c, x, url, tok, err);
	wipe_free(tok, tok ? strlen(tok) : 0);
	tok = NULL;
	if (r < 0 || x->status != 401 || !c->token_file)
		return r;
	/* the token may have rotated under us: read it again, once */
	log_debug("%s %s: 401, re-reading the token file and retrying once", x->method,
		  x->path);
	if (k8s__token_get(c, gen, true, &tok, &gen, err) < 0)
		return -EACCES;
	r = attempt(c, x, url, tok, err);
	wipe_free(tok, tok ? strlen(tok) : 0);
	return r;
}

/* ---- paths ---- */

static char *esc(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r;

	if (!e)
		abort(); /* out of memory */
	r = xstrdup(e);
	curl_free(e);
	return r;
}

char *k8s__path(enum k8s_kind kind, const char *ns, const char *name, const char *sub)
{
	const struct k8s_kind_info *k = &kinds[kind];
	cleanup_free char *ens = esc(ns), *ename = name ? esc(name) : NULL;

	return xasprintf("%s/namespaces/%s/%s%s%s%s%s", k->prefix, ens, k->plural,
			 name ? "/" : "", name ? ename : "", sub ? "/" : "", sub ? sub : "");
}

int k8s__query_add(struct buf *b, const char *key, const char *value)
{
	cleanup_free char *e = NULL;

	if (!value)
		return 0;
	e = esc(value);
	return buf_appendf(b, "%c%s=%s", b->data && strchr(b->data, '?') ? '&' : '?', key, e);
}

/* ---- Status -> message ---- */

int k8s_errno(long st)
{
	if (st == 400 || st == 422)
		return -EINVAL;
	if (st == 401)
		return -EACCES;
	if (st == 403)
		return -EPERM;
	if (st == 404)
		return -ENOENT;
	if (st == 409)
		return -EEXIST;
	if (st == 410)
		return -ESTALE;
	if (st == 429)
		return -EAGAIN;
	if (st >= 500 && st <= 599)
		return -EIO;
	return -EPROTO;
}

static const char *phrase(long st)
{
	static const struct { long st; const char *s; } t[] = {
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 409, "Conflict" },
		{ 410, "Gone" }, { 413, "Request Entity Too Large" },
		{ 415, "Unsupported Media Type" }, { 422, "Unprocessable Entity" },
		{ 429, "Too Many Requests" }, { 500, "Internal Server Error" },
		{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].st == st)
			return t[i].s;
	return "";
}

/* A server-sent string fit for a message: control bytes become '?', cut. */
static void add_clean(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	bool cut = n > K8S_MSG_MAX;

	for (size_t i = 0; i < n && i < K8S_MSG_MAX; i++) {
		char ch = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];

		buf_append(b, &ch, 1);
	}
	if (cut)
		buf_appends(b, "...");
}

static const char *sfield(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* details.causes that the message does not already spell out. */
static void add_causes(struct buf *b, const cJSON *body, const char *msg)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "details");
	const cJSON *causes = cJSON_GetObjectItemCaseSensitive(d, "causes");
	const cJSON *arr = cJSON_IsArray(causes) ? causes : NULL;
	const cJSON *c;
	int n = 0;

	cJSON_ArrayForEach(c, arr) {
		const char *field = sfield(c, "field"), *m = sfield(c, "message");
		cleanup_free char *one = NULL;

		if (!m || n >= 20)
			continue;
		one = field ? xasprintf("%s: %s", field, m) : xstrdup(m);
		if (msg && strstr(msg, one))
			continue;
		buf_appends(b, n++ ? "; " : " (");
		add_clean(b, one);
	}
	if (n)
		buf_appends(b, ")");
}

static void add_detail(struct buf *b, const char *verb, const char *resource, const char *ns,
		       long st, const char *msg)
{
	if (st == 403 && (!msg || strstr(msg, " cannot "))) {
		/* RBAC's wording; admission (PodSecurity, quotas) also answers 403 */
		buf_appendf(b, "the service account lacks RBAC permission to %s %s ", verb,
			    resource);
		if (ns)
			buf_appendf(b, "in namespace \"%s\"", ns);
		else
			buf_appends(b, "(cluster scope)");
		if (msg)
			buf_appends(b, ": ");
	} else if (st == 401) {
		buf_appends(b, "the API server refused nbgate's credentials (token expired or "
			       "revoked, or a client certificate it does not trust)");
		if (msg)
			buf_appends(b, ": ");
	} else if (!msg) {
		buf_appends(b, "no Status in the answer");
	}
	if (msg)
		add_clean(b, msg);
}

char *k8s_status_message(const char *verb, const char *resource, const char *name,
			 const char *ns, long st, const cJSON *body)
{
	struct buf b;
	const char *msg = cJSON_IsObject(body) ? sfield(body, "message") : NULL;

	buf_init(&b, 64 * 1024);
	buf_appendf(&b, "%s %s", verb ? verb : "call", resource ? resource : "?");
	if (name) {
		buf_appends(&b, " \"");
		add_clean(&b, name);
		buf_appends(&b, "\"");
	}
	buf_appendf(&b, ": %ld", st);
	if (phrase(st)[0])
		buf_appendf(&b, " %s", phrase(st));
	buf_appends(&b, ": ");
	add_detail(&b, verb ? verb : "call", resource ? resource : "?", ns, st, msg);
	if (cJSON_IsObject(body))
		add_causes(&b, body, msg);
	return buf_detach(&b, NULL);
}

int k8s__status_err(struct err **err, const char *verb, const char *resource,
		    const char *name, const char *ns, long st, const char *body, size_t len)
{
	cleanup_json cJSON *j = len ? json_parse(body, len, NULL) : NULL;
	cleanup_free char *m = k8s_status_message(verb, resource, name, ns, st, j);

	return err_set(err, -k8s_errno(st), "%s", m);
}

/* ---- typed calls ---- */

struct call {
	const char *method;
	const char *verb;          /* RBAC verb, for messages */
	enum k8s_kind kind;
	const char *ns;
	const char *name;          /* in the path */
	const char *label;         /* the name in messages (NULL = name) */
	const char *sub;           /* subresource, or NULL */
	const char *query;         /* "?a=b", or NULL */
	const char *content_type;
	const cJSON *body;
};

/* Parses a 2xx body into *out (when wanted). */
static int parse_ok(const struct k8s__xfer *x, cJSON **out, struct err **err)
{
	cJSON *j;

	if (!out)
		return 0;
	if (x->out.len == 0) {
		*out = NULL;
		return 0;
	}
	j = json_parse(x->out.data, x->out.len, NULL);
	if (!j)
		return err_set(err, EPROTO, "%s %s: %ld answer is not JSON", x->method, x->path,
			       x->status);
	*out = j;
	return 0;
}

static int typed(struct k8s_client *c, const struct call *k, struct k8s__abort *ab,
		 cJSON **out, long *http_status, struct err **err)
{
	const char *ns = k->ns ? k->ns : c->ns;
	cleanup_free char *p = k8s__path(k->kind, ns, k->name, k->sub);
	cleanup_free char *path = xasprintf("%s%s", p, k->query ? k->query : "");
	cleanup_free char *body = k->body ? json_print(k->body) : NULL;
	struct k8s__xfer x = { .method = k->method, .path = path, .body = body,
			       .content_type = k->content_type, .abort = ab };
	int r = k8s__perform(c, &x, err);

	if (r == 0 && http_status)
		*http_status = x.status;
	if (r == 0 && (x.status < 200 || x.status > 299)) {
		cleanup_free char *res = k->sub ? xasprintf("%s/%s", kinds[k->kind].plural, k->sub)
						: xstrdup(kinds[k->kind].plural);

		r = k8s__status_err(err, k->verb, res, k->label ? k->label : k->name, ns,
				    x.status, x.out.data, x.out.len);
	} else if (r == 0) {
		r = parse_ok(&x, out, err);
	}
	buf_release(&x.out);
	log_debug("%s %s: %ld%s", k->method, path, x.status, r < 0 ? " (failed)" : "");
	return r;
}

int k8s_request(struct k8s_client *c, const char *method, const char *path,
		const char *content_type, const char *body, struct k8s_response *resp,
		struct err **err)
{
	struct k8s__xfer x = { .method = method, .path = path, .body = body,
			       .content_type = content_type };
	int r = k8s__perform(c, &x, err);

	resp->status = x.status;
	resp->body = NULL;
	if (r == 0 && x.out.len) {
		resp->body = json_parse(x.out.data, x.out.len, NULL);
		if (!resp->body && x.status >= 200 && x.status <= 299)
			r = err_set(err, EPROTO, "%s %s: %ld answer is not JSON", method, path,
				    x.status);
	}
	buf_release(&x.out);
	return r;
}

int k8s_create(struct k8s_client *c, enum k8s_kind kind, const char *ns, const cJSON *obj,
	       cJSON **out, long *http_status, struct err **err)
{
	/* the name belongs in messages, not in the POST's path */
	struct call k = { .method = "POST", .verb = "create", .kind = kind, .ns = ns,
			  .body = obj, .label = k8s_json_str(obj, "metadata.name") };

	return typed(c, &k, NULL, out, http_status, err);
}

int k8s_get(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	    cJSON **out, long *http_status, struct err **err)
{
	struct call k = { .method = "GET", .verb = "get", .kind = kind, .ns = ns, .name = name };

	return typed(c, &k, NULL, out, http_status, err);
}

int k8s__list(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *lsel,
	      const char *fsel, struct k8s__abort *ab, cJSON **out, long *status,
	      struct err **err)
{
	struct buf q;
	struct call k = { .method = "GET", .verb = "list", .kind = kind, .ns = ns };
	int r;

	buf_init(&q, 64 * 1024);
	if (k8s__query_add(&q, "labelSelector", lsel) < 0 ||
	    k8s__query_add(&q, "fieldSelector", fsel) < 0) {
		buf_release(&q);
		return err_set(err, EINVAL, "list %s: selectors too long", kinds[kind].plural);
	}
	k.query = q.data;
	r = typed(c, &k, ab, out, status, err);
	buf_release(&q);
	return r;
}

int k8s_list(struct k8s_client *c, enum k8s_kind kind, const char *ns,
	     const char *label_selector, const char *field_selector, cJSON **out,
	     long *http_status, struct err **err)
{
	return k8s__list(c, kind, ns, label_selector, field_selector, NULL, out, http_status,
			 err);
}

int k8s_patch(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	      const cJSON *patch, bool strategic, cJSON **out, long *http_status,
	      struct err **err)
{
	struct call k = { .method = "PATCH", .verb = "patch", .kind = kind, .ns = ns,
			  .name = name, .body = patch,
			  .content_type = strategic ? "application/strategic-merge-patch+json"
						    : "application/merge-patch+json" };

	return typed(c, &k, NULL, out, http_status, err);
}

int k8s_delete(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
	       int64_t grace_seconds, long *http_status, struct err **err)
{
	char q[96];
	struct call k = { .method = "DELETE", .verb = "delete", .kind = kind, .ns = ns,
			  .name = name, .query = q };

	if (grace_seconds >= 0)
		snprintf(q, sizeof(q), "?propagationPolicy=Background&gracePeriodSeconds=%" PRId64,
			 grace_seconds);
	else
		snprintf(q, sizeof(q), "?propagationPolicy=Background");
	return typed(c, &k, NULL, NULL, http_status, err);
}

int k8s_pod_log(struct k8s_client *c, const char *ns, const char *pod, const char *container,
		int tail_lines, int64_t limit_bytes, char **out, struct err **err)
{
	cleanup_free char *p = k8s__path(K8S_POD, ns ? ns : c->ns, pod, "log");
	struct k8s__xfer x = { .method = "GET", .accept = "text/plain, */*" };
	struct buf path;
	char n1[24], n2[24];
	int r;

	buf_init(&path, 64 * 1024);
	snprintf(n1, sizeof(n1), "%d", tail_lines);
	snprintf(n2, sizeof(n2), "%" PRId64, limit_bytes);
	buf_appends(&path, p);
	k8s__query_add(&path, "container", container);
	k8s__query_add(&path, "tailLines", tail_lines > 0 ? n1 : NULL);
	k8s__query_add(&path, "limitBytes", limit_bytes > 0 ? n2 : NULL);
	x.path = path.data;
	r = k8s__perform(c, &x, err);
	if (r == 0 && (x.status < 200 || x.status > 299))
		r = k8s__status_err(err, "get", "pods/log", pod, ns ? ns : c->ns, x.status,
				    x.out.data, x.out.len);
	if (r == 0)
		*out = x.out.data ? buf_detach(&x.out, NULL) : xstrdup("");
	buf_release(&x.out);
	buf_release(&path);
	return r;
}

int k8s_checkpoint_container(struct k8s_client *c, const char *node, const char *ns,
			     const char *pod, const char *container, int64_t timeout_s,
			     char **archive, struct err **err)
{
	cleanup_free char *en = esc(node), *ens = esc(ns ? ns : c->ns), *ep = esc(pod);
	cleanup_free char *ec = esc(container);
	cleanup_free char *path = xasprintf("/api/v1/nodes/%s/proxy/checkpoint/%s/%s/%s"
					    "?timeout=%" PRId64, en, ens, ep, ec,
					    timeout_s > 0 ? timeout_s : 60);
	cleanup_free char *what = xasprintf("%s/%s/%s", ns ? ns : c->ns, pod, container);
	struct k8s__xfer x = { .method = "POST", .path = path, .body = "",
			       .timeout_ms = (timeout_s > 0 ? timeout_s : 60) * 1000 +
					     c->request_timeout_ms };
	cleanup_json cJSON *j = NULL;
	const cJSON *first;
	int r = k8s__perform(c, &x, err);

	if (r == 0 && (x.status < 200 || x.status > 299))
		r = k8s__status_err(err, "create", "nodes/proxy", what, NULL, x.status,
				    x.out.data, x.out.len);
	if (r == 0 && !(j = x.out.len ? json_parse(x.out.data, x.out.len, NULL) : NULL))
		r = err_set(err, EPROTO, "checkpoint '%s': the kubelet's answer is not JSON",
			    what);
	buf_release(&x.out);
	if (r < 0)
		return r;
	first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "items"), 0);
	if (!cJSON_IsString(first) || !first->valuestring[0])
		return err_set(err, EPROTO, "checkpoint '%s': no archive in the kubelet's answer",
			       what);
	*archive = xstrdup(first->valuestring);
	return 0;
}
