/*
 * route: the proxy's route table, (user, server name) -> upstream.
 *
 * The only source of upstream addresses: nothing in a request can
 * choose a host or port. Keys are exact names (the user segment of
 * /user/<name>/ and the server segment), so prefix confusion between `al`
 * and `alice` cannot happen (R-3.7, JH-5).
 *
 * Entries live in an array sorted by (user, server); lookups are binary
 * searches. A pointer returned by gw_routes_get() is valid until the next
 * gw_routes_set()/gw_routes_del() on the table: callers that outlive that
 * (a proxied connection) keep copies of the key and look the entry up again.
 *
 * Threading: event-loop thread only.
 */
#ifndef NBGATE_GATEWAY_ROUTE_H
#define NBGATE_GATEWAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* Route flags (gw_routes_set_flags). */
enum gw_route_flags {
	/* The server has no base-path option (code-server): the proxy removes
	 * /user/<name>[/<server>] before forwarding, and the bare prefix
	 * redirects to the trailing-slash form (gw_route_strip()). */
	GW_ROUTE_STRIP_PREFIX = 1 << 0,
};

struct gw_route {
	char *user;                /* normalised user name, owned */
	char *server;              /* "" = the default server, owned */
	char *upstream;            /* "unix:/abs/path" or "host:port", owned */
	int64_t last_activity_ms;  /* wall clock ms; traffic either way, HTTP and WS */
	int64_t created_ms;        /* wall clock ms of the last gw_routes_set */
	unsigned flags;            /* enum gw_route_flags */
	char *auth;                /* Authorization value the proxy sends upstream
				    * (srv->upstream_auth: "token <secret>"), or
				    * NULL; owned, secret: never logged or listed */
};

struct gw_routes;

/* An empty table. Caller owns: gw_routes_free(). Cannot fail. */
struct gw_routes *gw_routes_new(void);
/* Frees the table and every entry. NULL is fine. */
void gw_routes_free(struct gw_routes *rt);

/*
 * Adds or replaces the route for (user, server). server "" is the default
 * server. upstream must be "unix:/absolute/path" (at most 107 bytes of path)
 * or "host:port" / "[v6]:port" with a numeric port 1..65535; anything else
 * fails with -EINVAL and leaves the table unchanged. Strings are copied.
 * A replaced route keeps its last_activity_ms.
 */
int gw_routes_set(struct gw_routes *rt, const char *user, const char *server,
		  const char *upstream, struct err **err);

/* Same with flags (enum gw_route_flags); gw_routes_set() passes 0. A
 * replaced route takes the new flags. */
int gw_routes_set_flags(struct gw_routes *rt, const char *user, const char *server,
			const char *upstream, unsigned flags, struct err **err);

/*
 * Same with the Authorization value the proxy adds to every request it
 * sends to this upstream (HTTP and WebSocket upgrades), or NULL for none
 * (gw_routes_set_flags() passes NULL). auth is copied; a replaced route
 * takes the new value (NULL removes it). It must be 1..4096 bytes of
 * visible ASCII and spaces (a header value: no CR, LF or other controls),
 * else -EINVAL and the table is unchanged; the message never holds it.
 */
int gw_routes_set_auth(struct gw_routes *rt, const char *user, const char *server,
		       const char *upstream, unsigned flags, const char *auth,
		       struct err **err);

/*
 * Prefix stripping for GW_ROUTE_STRIP_PREFIX routes. encoded is the
 * canonical, re-encoded request path (http_path.encoded) of a request
 * routed to (user, server); the prefix is "/user/<user>" plus "/<server>"
 * for a named server, each segment encoded as http_path_encode_segment()
 * does. Returns:
 *   0  the path is below the prefix; *skip = bytes to drop from encoded
 *      (what remains starts with '/': "/user/a/vscode/x" -> "/x");
 *   1  the path is the bare prefix without its trailing slash: redirect to
 *      encoded + "/" (query kept);
 *  -1  the path is not under the prefix ("/user/a/vscodeX"): not this route.
 * Pure function; any thread.
 */
int gw_route_strip(const char *encoded, const char *user, const char *server, size_t *skip);

/* Removes the route for (user, server); no-op when absent. */
void gw_routes_del(struct gw_routes *rt, const char *user, const char *server);

/* The route for (user, server) or NULL; borrowed (see top comment). */
const struct gw_route *gw_routes_get(const struct gw_routes *rt, const char *user,
				     const char *server);

/* Number of routes. */
size_t gw_routes_count(const struct gw_routes *rt);

/* The i-th route in (user, server) order, i < gw_routes_count(); borrowed. */
const struct gw_route *gw_routes_at(const struct gw_routes *rt, size_t i);

/* Records traffic on (user, server) at now_ms (wall clock); no-op when absent
 * or when now_ms is not newer. */
void gw_routes_touch(struct gw_routes *rt, const char *user, const char *server,
		     int64_t now_ms);

/*
 * Calls fn(arg, route) for every route in order (activity reporting and
 * idle culling read last_activity_ms here). fn must not modify the table.
 */
void gw_routes_activity(const struct gw_routes *rt,
			void (*fn)(void *arg, const struct gw_route *r), void *arg);

/*
 * Parses an upstream string. Returns 0 with *is_unix set, and for TCP
 * *host (owned, brackets removed) and *port; for unix sockets *host
 * receives the socket path (owned) and *port 0. -EINVAL otherwise.
 */
int gw_upstream_parse(const char *upstream, bool *is_unix, char **host, int *port,
		      struct err **err);

#endif
