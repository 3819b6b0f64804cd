/*
 * k8s_watch: list, then watch from the list's resourceVersion, on a
 * thread of its own (client-go's reflector, reduced to what the backend
 * needs): bookmarks move the resourceVersion on, 410 Gone relists, other
 * failures are reported and retried after a jittered exponential backoff.
 *
 * The transfer runs on a curl multi handle of the watch, so that
 * k8s_watch_stop() can wake it with curl_multi_wakeup() and have it return
 * at once instead of at the next progress callback (about a second).
 * A server that stops sending (a dead peer behind a NAT) is noticed by the
 * low-speed limit and the total timeout: the API server sends bookmarks
 * and ends the watch itself after timeoutSeconds.
 */
#undef LOG_PREFIX
#define LOG_PREFIX "spawner/k8s_watch: "

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/xalloc.h"
#include "spawner/k8s_api_internal.h"

struct k8s_watch {
	struct k8s_client *c;
	enum k8s_kind kind;
	char *ns, *lsel, *fsel;
	int64_t timeout_s, backoff_min_ms, backoff_max_ms, max_event_bytes;
	k8s_watch_fn fn;
	void *arg;
	pthread_t thread;
	struct k8s__abort ab;
	pthread_mutex_t mu;     /* with cond: the backoff sleep */
	pthread_cond_t cond;
	_Atomic uint64_t lists, reconnects, relists_gone, bookmarks;
	/* the watch thread's own */
	char *rv;
	uint64_t watches;       /* watch requests made */
	uint64_t lines;         /* lines in the current watch */
};

/* ---- pure: lines and events ---- */

void k8s__lines_init(struct k8s__lines *l, size_t max_line)
{
	buf_init(&l->partial, max_line);
}

void k8s__lines_release(struct k8s__lines *l)
{
	buf_release(&l->partial);
}

static int line_out(const char *p, size_t n, k8s__line_fn fn, void *arg, struct err **err)
{
	if (n && p[n - 1] == '\r')
		n--;
	return fn(arg, p, n, err);
}

int k8s__lines_feed(struct k8s__lines *l, const char *p, size_t n, k8s__line_fn fn,
		    void *arg, struct err **err)
{
	size_t max = l->partial.max;

	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (l->partial.len + take > max)
			return err_set(err, EMSGSIZE, "watch: an event longer than %zu bytes",
				       max);
		if (!nl) {
			buf_append(&l->partial, p, take);
			return 0;
		}
		if (l->partial.len == 0) {
			/* the common case: a whole line in this chunk, no copy */
			if (line_out(p, take, fn, arg, err) < 0)
				return -1;
		} else {
			buf_append(&l->partial, p, take);
			if (line_out(l->partial.data, l->partial.len, fn, arg, err) < 0)
				return -1;
			buf_reset(&l->partial);
		}
		p += take + 1;
		n -= take + 1;
	}
	return 0;
}

void k8s__wevent_clear(struct k8s__wevent *ev)
{
	if (ev->root)
		cJSON_Delete(ev->root);
	memset(ev, 0, sizeof(*ev));
}

static int wtype(const char *t, enum k8s__wtype *out)
{
	static const char *const names[] = {
		[K8S__W_ADDED] = "ADDED", [K8S__W_MODIFIED] = "MODIFIED",
		[K8S__W_DELETED] = "DELETED", [K8S__W_BOOKMARK] = "BOOKMARK",
		[K8S__W_ERROR] = "ERROR",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(t, names[i]) == 0) {
			*out = (enum k8s__wtype)i;
			return 0;
		}
	return -1;
}

int k8s__watch_parse_line(const char *line, size_t len, struct k8s__wevent *ev,
			  struct err **err)
{
	const cJSON *t, *code;
	size_t i = 0;

	memset(ev, 0, sizeof(*ev));
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len) {
		ev->type = K8S__W_BLANK;
		return 0;
	}
	ev->root = json_parse(line, len, NULL);
	if (!ev->root)
		return err_set(err, EPROTO, "watch: an event that is not JSON");
	t = cJSON_GetObjectItemCaseSensitive(ev->root, "type");
	ev->obj = cJSON_GetObjectItemCaseSensitive(ev->root, "object");
	if (!cJSON_IsString(t) || wtype(t->valuestring, &ev->type) < 0) {
		k8s__wevent_clear(ev);
		return err_set(err, EPROTO, "watch: an event without a known type");
	}
	if (!cJSON_IsObject(ev->obj)) {
		k8s__wevent_clear(ev);
		return err_set(err, EPROTO, "watch: an event without an object");
	}
	ev->rv = k8s_json_str(ev->obj, "metadata.resourceVersion");
	if (ev->type == K8S__W_ERROR) {
		code = cJSON_GetObjectItemCaseSensitive(ev->obj, "code");
		ev->code = cJSON_IsNumber(code) && code->valuedouble >= 0 &&
				   code->valuedouble < 1000 ? (long)code->valuedouble : 0;
		ev->message = k8s_json_str(ev->obj, "message");
	}
	return 0;
}

int64_t k8s__backoff_ms(int64_t min_ms, int64_t max_ms, unsigned n, uint32_t r)
{
	int64_t d = min_ms > 0 ? min_ms : 1;

	for (unsigned i = 0; i < n && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* a random point in [d/2, d]: many gateways do not retry in step */
	return d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

/* ---- the thread ---- */

static bool stopped(struct k8s_watch *w)
{
	return atomic_load(&w->ab.stop);
}

static void set_rv(struct k8s_watch *w, const char *rv)
{
	if (rv && rv[0] && (!w->rv || strcmp(w->rv, rv) != 0)) {
		free(w->rv);
		w->rv = xstrdup(rv);
	}
}

static int list_sync(struct k8s_watch *w, struct err **err)
{
	cleanup_json cJSON *list = NULL;
	const cJSON *items, *arr, *it;
	long st = 0;

	if (k8s__list(w->c, w->kind, w->ns, w->lsel, w->fsel, &w->ab, &list, &st, err) < 0)
		return -1;
	items = cJSON_GetObjectItemCaseSensitive(list, "items");
	if (!k8s_json_str(list, "metadata.resourceVersion") ||
	    !(cJSON_IsArray(items) || cJSON_IsNull(items) || !items))
		return err_set(err, EPROTO, "list %s: not a List (no items or resourceVersion)",
			       k8s_kind_info(w->kind)->plural);
	atomic_fetch_add(&w->lists, 1);
	arr = cJSON_IsArray(items) ? items : NULL;
	for (it = arr ? arr->child : NULL; it; it = it->next)
		w->fn(w->arg, K8S_WATCH_SYNC, it, NULL);
	w->fn(w->arg, K8S_WATCH_SYNCED, NULL, NULL);
	set_rv(w, k8s_json_str(list, "metadata.resourceVersion"));
	log_debug("listed %s at resourceVersion %s", k8s_kind_info(w->kind)->plural, w->rv);
	return 0;
}

static int on_event(struct k8s_watch *w, struct k8s__wevent *ev, struct err **err)
{
	static const enum k8s_watch_event map[] = {
		[K8S__W_ADDED] = K8S_WATCH_ADDED, [K8S__W_MODIFIED] = K8S_WATCH_MODIFIED,
		[K8S__W_DELETED] = K8S_WATCH_DELETED,
	};
	const char *plural = k8s_kind_info(w->kind)->plural;
	cleanup_free char *m = NULL;

	switch (ev->type) {
	case K8S__W_BLANK:
		return 0;
	case K8S__W_BOOKMARK:
		atomic_fetch_add(&w->bookmarks, 1);
		set_rv(w, ev->rv);
		return 0;
	case K8S__W_ERROR:
		m = k8s_status_message("watch", plural, NULL, w->ns, ev->code ? ev->code : 500,
				       ev->obj);
		return err_set(err, ev->code == 410 ? ESTALE : EIO, "%s", m);
	default:
		w->fn(w->arg, map[ev->type], ev->obj, NULL);
		set_rv(w, ev->rv);
		return 0;
	}
}

static int on_line(void *arg, const char *line, size_t len, struct err **err)
{
	struct k8s_watch *w = arg;
	struct k8s__wevent ev;
	int r;

	w->lines++;
	if (k8s__watch_parse_line(line, len, &ev, err) < 0)
		return -1;
	r = on_event(w, &ev, err);
	k8s__wevent_clear(&ev);
	return r;
}

struct sink {
	struct k8s_watch *w;
	struct k8s__lines lines;
};

static int on_bytes(void *arg, const char *p, size_t n, struct err **err)
{
	struct sink *s = arg;

	return k8s__lines_feed(&s->lines, p, n, on_line, s->w, err);
}

static char *watch_path(struct k8s_watch *w)
{
	cleanup_free char *p = k8s__path(w->kind, w->ns, NULL, NULL);
	char num[24];
	struct buf b;

	snprintf(num, sizeof(num), "%" PRId64, w->timeout_s);
	buf_init(&b, 64 * 1024);
	buf_appends(&b, p);
	k8s__query_add(&b, "watch", "1");
	k8s__query_add(&b, "allowWatchBookmarks", "true");
	k8s__query_add(&b, "timeoutSeconds", num);
	k8s__query_add(&b, "resourceVersion", w->rv);
	k8s__query_add(&b, "labelSelector", w->lsel);
	k8s__query_add(&b, "fieldSelector", w->fsel);
	return buf_detach(&b, NULL);
}

/* One watch request. 0: ended normally (resume), -ESTALE: relist. */
static int watch_once(struct k8s_watch *w, struct err **err)
{
	cleanup_free char *path = watch_path(w);
	struct sink s = { .w = w };
	struct k8s__xfer x = { .method = "GET", .path = path, .sink = on_bytes, .sink_arg = &s,
			       .abort = &w->ab, .timeout_ms = (w->timeout_s + 60) * 1000,
			       .low_speed_time_s = (long)w->timeout_s + 30 };
	int r;

	if (w->watches++)
		atomic_fetch_add(&w->reconnects, 1);
	w->lines = 0;
	k8s__lines_init(&s.lines, (size_t)w->max_event_bytes);
	r = k8s__perform(w->c, &x, err);
	if (r == 0 && x.status != 200)
		r = k8s__status_err(err, "watch", k8s_kind_info(w->kind)->plural, NULL, w->ns,
				    x.status, x.out.data, x.out.len);
	k8s__lines_release(&s.lines);
	buf_release(&x.out);
	if (r < 0 && *err && (*err)->code == ESTALE)
		return -ESTALE;
	return r < 0 ? -1 : 0;
}

/* Sleeps up to ms, or until stopped. */
static void nap(struct k8s_watch *w, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->mu);
	while (!stopped(w) && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&w->mu);
}

static void backoff(struct k8s_watch *w, unsigned *fails)
{
	uint32_t r;

	rand_bytes(&r, sizeof(r));
	nap(w, k8s__backoff_ms(w->backoff_min_ms, w->backoff_max_ms, (*fails)++, r));
}

/* One round: list when needed, then a watch. Returns whether to relist. */
static bool round_once(struct k8s_watch *w, bool relist, unsigned *fails)
{
	struct err *err = NULL;
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = relist ? list_sync(w, &err) : watch_once(w, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (stopped(w)) {
		err_free(&err);
		return relist;
	}
	if (r == -ESTALE) {
		log_debug("%s", err->msg);
		err_free(&err);
		atomic_fetch_add(&w->relists_gone, 1);
		if (*fails > 0) /* a server that keeps saying 410 */
			backoff(w, fails);
		else
			(*fails)++;
		return true;
	}
	if (r < 0) {
		log_debug("%s", err->msg);
		w->fn(w->arg, K8S_WATCH_ERROR, NULL, err->msg);
		err_free(&err);
		backoff(w, fails);
		return relist;
	}
	if (!relist && w->lines == 0 && t1.tv_sec - t0.tv_sec < 1) {
		backoff(w, fails); /* ended at once with nothing: do not spin */
		return false;
	}
	*fails = 0;
	return false;
}

static void *watch_main(void *arg)
{
	struct k8s_watch *w = arg;
	unsigned fails = 0;
	bool relist = true;

	while (!stopped(w))
		relist = round_once(w, relist, &fails);
	return NULL;
}

/* ---- public ---- */

static void watch_free(struct k8s_watch *w)
{
	if (w->ab.multi)
		curl_multi_cleanup(w->ab.multi);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mu);
	free(w->ns);
	free(w->lsel);
	free(w->fsel);
	free(w->rv);
	free(w);
}

static struct k8s_watch *watch_new(struct k8s_client *c, const struct k8s_watch_opts *o)
{
	struct k8s_watch *w = xcalloc(1, sizeof(*w));
	pthread_condattr_t ca;

	w->c = c;
	w->kind = o->kind;
	w->ns = xstrdup(o->ns ? o->ns : k8s_client_namespace(c));
	w->lsel = o->label_selector ? xstrdup(o->label_selector) : NULL;
	w->fsel = o->field_selector ? xstrdup(o->field_selector) : NULL;
	w->timeout_s = o->timeout_s > 0 ? o->timeout_s : 300;
	w->backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 500;
	w->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	if (w->backoff_max_ms < w->backoff_min_ms)
		w->backoff_max_ms = w->backoff_min_ms;
	w->max_event_bytes = o->max_event_bytes > 0 ? o->max_event_bytes : 4 << 20;
	atomic_init(&w->ab.stop, false);
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	return w;
}

int k8s_watch_start(struct k8s_client *c, const struct k8s_watch_opts *opts, k8s_watch_fn fn,
		    void *arg, struct k8s_watch **out, struct err **err)
{
	struct k8s_watch *w;
	sigset_t all, old;
	int r;

	if (!fn || !k8s_kind_info(opts->kind))
		return err_set(err, EINVAL, "watch: no callback or an unknown kind");
	w = watch_new(c, opts);
	w->fn = fn;
	w->arg = arg;
	w->ab.multi = curl_multi_init();
	if (!w->ab.multi) {
		watch_free(w);
		return err_set(err, ENOMEM, "watch %s: curl_multi_init failed",
			       k8s_kind_info(opts->kind)->plural);
	}
	/* signals stay with the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		watch_free(w);
		return err_set(err, r, "watch %s: cannot start a thread",
			       k8s_kind_info(opts->kind)->plural);
	}
	*out = w;
	return 0;
}

void k8s_watch_stop(struct k8s_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->ab.stop, true);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	curl_multi_wakeup(w->ab.multi);
	pthread_join(w->thread, NULL);
	watch_free(w);
}

void k8s_watch_get_stats(struct k8s_watch *w, struct k8s_watch_stats *out)
{
	out->lists = atomic_load(&w->lists);
	out->reconnects = atomic_load(&w->reconnects);
	out->relists_gone = atomic_load(&w->relists_gone);
	out->bookmarks = atomic_load(&w->bookmarks);
}
