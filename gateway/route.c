/*
 * route: sorted array of (user, server) -> upstream (see route.h).
 */
#define LOG_PREFIX "gateway/route: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/http.h"
#include "gateway/route.h"

struct gw_routes {
	struct gw_route **v;
	size_t n, cap;
};

struct gw_routes *gw_routes_new(void)
{
	return xcalloc(1, sizeof(struct gw_routes));
}

static void route_free(struct gw_route *r)
{
	if (!r)
		return;
	free(r->user);
	free(r->server);
	free(r->upstream);
	if (r->auth) /* a server's credential: leave no copy in freed memory */
		explicit_bzero(r->auth, strlen(r->auth));
	free(r->auth);
	free(r);
}

/* The value of a header line we write ourselves: 1..4096 of 0x20..0x7e,
 * not starting or ending with a space (no CR/LF: no header injection). */
static bool auth_ok(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n > 4096 || a[0] == ' ' || a[n - 1] == ' ')
		return false;
	for (; *a; a++)
		if ((unsigned char)*a < 0x20 || (unsigned char)*a > 0x7e)
			return false;
	return true;
}

static void route_set_auth(struct gw_route *r, const char *auth)
{
	if (r->auth)
		explicit_bzero(r->auth, strlen(r->auth));
	free(r->auth);
	r->auth = auth ? xstrdup(auth) : NULL;
}

void gw_routes_free(struct gw_routes *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->n; i++)
		route_free(rt->v[i]);
	free(rt->v);
	free(rt);
}

static int key_cmp(const struct gw_route *r, const char *user, const char *server)
{
	int c = strcmp(r->user, user);

	return c ? c : strcmp(r->server, server);
}

/* Index of (user, server), or -(insertion point) - 1 when absent. */
static long find(const struct gw_routes *rt, const char *user, const char *server)
{
	size_t lo = 0, hi = rt->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(rt->v[mid], user, server);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static bool port_ok(const char *p)
{
	long v = 0;

	if (!*p || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

int gw_upstream_parse(const char *upstream, bool *is_unix, char **host, int *port,
		      struct err **err)
{
	const char *colon, *h = upstream;
	size_t hlen;

	if (!upstream)
		return err_set(err, EINVAL, "no upstream");
	if (strncmp(upstream, "unix:", 5) == 0) {
		if (upstream[5] != '/' || strlen(upstream + 5) > 107)
			return err_set(err, EINVAL, "bad unix upstream '%s'", upstream);
		*is_unix = true;
		*host = xstrdup(upstream + 5);
		*port = 0;
		return 0;
	}
	colon = strrchr(upstream, ':');
	if (!colon || colon == upstream || !port_ok(colon + 1))
		return err_set(err, EINVAL, "bad upstream '%s': want host:port", upstream);
	hlen = (size_t)(colon - upstream);
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return err_set(err, EINVAL, "bad upstream '%s'", upstream);
		h++;
		hlen -= 2;
	}
	if (memchr(h, '/', hlen) || memchr(h, ' ', hlen) || memchr(h, '@', hlen))
		return err_set(err, EINVAL, "bad upstream host in '%s'", upstream);
	*is_unix = false;
	*host = xstrndup(h, hlen);
	*port = (int)strtol(colon + 1, NULL, 10);
	return 0;
}

int gw_routes_set(struct gw_routes *rt, const char *user, const char *server,
		  const char *upstream, struct err **err)
{
	return gw_routes_set_flags(rt, user, server, upstream, 0, err);
}

int gw_routes_set_flags(struct gw_routes *rt, const char *user, const char *server,
			const char *upstream, unsigned flags, struct err **err)
{
	return gw_routes_set_auth(rt, user, server, upstream, flags, NULL, err);
}

int gw_routes_set_auth(struct gw_routes *rt, const char *user, const char *server,
		       const char *upstream, unsigned flags, const char *auth,
		       struct err **err)
{
	struct gw_route *r;
	char *host = NULL;
	bool is_unix;
	int port;
	long i;

	if (!user || !*user || !server)
		return err_set(err, EINVAL, "route needs a user and a server name");
	if (gw_upstream_parse(upstream, &is_unix, &host, &port, err) < 0)
		return err_wrap(err, "route '%s/%s'", user, server);
	free(host);
	if (auth && !auth_ok(auth))
		return err_set(err, EINVAL, "route '%s/%s': upstream authorization is not a "
			       "valid header value", user, server);
	i = find(rt, user, server);
	if (i >= 0) {
		r = rt->v[i];
		free(r->upstream);
		r->upstream = xstrdup(upstream);
		r->created_ms = time_now_ms();
		r->flags = flags;
		route_set_auth(r, auth);
		return 0;
	}
	if (rt->n == rt->cap) {
		rt->cap = rt->cap ? rt->cap * 2 : 16;
		rt->v = xrealloc(rt->v, rt->cap * sizeof(struct gw_route *));
	}
	r = xcalloc(1, sizeof(*r));
	r->user = xstrdup(user);
	r->server = xstrdup(server);
	r->upstream = xstrdup(upstream);
	r->created_ms = r->last_activity_ms = time_now_ms();
	r->flags = flags;
	route_set_auth(r, auth);
	i = -i - 1;
	memmove(rt->v + i + 1, rt->v + i, (rt->n - (size_t)i) * sizeof(struct gw_route *));
	rt->v[i] = r;
	rt->n++;
	return 0;
}

int gw_route_strip(const char *encoded, const char *user, const char *server, size_t *skip)
{
	char *u = http_path_encode_segment(user);
	char *s = server && *server ? http_path_encode_segment(server) : NULL;
	char *prefix = s ? xasprintf("/user/%s/%s", u, s) : xasprintf("/user/%s", u);
	size_t n = strlen(prefix);
	int r = -1;

	/* whole segments only: "/user/a/vscodeX" is not under "/user/a/vscode" */
	if (strncmp(encoded, prefix, n) == 0) {
		if (encoded[n] == '\0')
			r = 1;
		else if (encoded[n] == '/')
			r = 0;
	}
	if (r == 0)
		*skip = n;
	free(u);
	free(s);
	free(prefix);
	return r;
}

void gw_routes_del(struct gw_routes *rt, const char *user, const char *server)
{
	long i = find(rt, user, server);

	if (i < 0)
		return;
	route_free(rt->v[i]);
	memmove(rt->v + i, rt->v + i + 1, (rt->n - (size_t)i - 1) * sizeof(struct gw_route *));
	rt->n--;
}

const struct gw_route *gw_routes_get(const struct gw_routes *rt, const char *user,
				     const char *server)
{
	long i;

	if (!rt || !user || !server)
		return NULL;
	i = find(rt, user, server);
	return i >= 0 ? rt->v[i] : NULL;
}

size_t gw_routes_count(const struct gw_routes *rt)
{
	return rt ? rt->n : 0;
}

const struct gw_route *gw_routes_at(const struct gw_routes *rt, size_t i)
{
	return i < rt->n ? rt->v[i] : NULL;
}

void gw_routes_touch(struct gw_routes *rt, const char *user, const char *server,
		     int64_t now_ms)
{
	long i = find(rt, user, server);

	if (i >= 0 && now_ms > rt->v[i]->last_activity_ms)
		rt->v[i]->last_activity_ms = now_ms;
}

void gw_routes_activity(const struct gw_routes *rt,
			void (*fn)(void *arg, const struct gw_route *r), void *arg)
{
	for (size_t i = 0; i < rt->n; i++)
		fn(arg, rt->v[i]);
}
