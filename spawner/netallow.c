/*
 * netallow: see netallow.h.
 */
#include "spawner/netallow.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define NET_ALLOW_MAX 16

/* A numeric address outside loopback and the unspecified addresses. */
static bool routable(const char *a)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (inet_pton(AF_INET, a, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) != 127 && v4.s_addr != 0;
	if (inet_pton(AF_INET6, a, &v6) == 1)
		return !IN6_IS_ADDR_LOOPBACK(&v6) && !IN6_IS_ADDR_UNSPECIFIED(&v6) &&
		       !IN6_IS_ADDR_V4MAPPED(&v6);
	return false;
}

static void add(char **v, int *n, const char *a)
{
	if (*n >= NET_ALLOW_MAX || !routable(a))
		return;
	for (int i = 0; i < *n; i++)
		if (strcmp(v[i], a) == 0)
			return;
	v[(*n)++] = xstrdup(a);
}

static void add_resolvers(char **v, int *n, const char *path)
{
	char line[512], addr[INET6_ADDRSTRLEN + 1];
	FILE *f = path ? fopen(path, "re") : NULL;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		/* "nameserver <addr>"; a scoped "fe80::1%eth0" is not routable from
		 * the sandbox and fails inet_pton, as it should */
		if (sscanf(line, " nameserver %46s", addr) == 1)
			add(v, n, addr);
	}
	fclose(f);
}

/* The host part of "scheme://host[:port]/..." ("[v6]" unbracketed). */
static void add_url_host(char **v, int *n, const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL, *end;
	char host[INET6_ADDRSTRLEN + 1];
	size_t len;

	if (!p)
		return;
	p += 3;
	if (*p == '[') {
		end = strchr(++p, ']');
	} else {
		end = p + strcspn(p, ":/");
	}
	if (!end || (len = (size_t)(end - p)) == 0 || len >= sizeof(host))
		return;
	memcpy(host, p, len);
	host[len] = '\0';
	add(v, n, host);
}

char **spawner_net_allow(const char *resolv_conf, const char *api_url)
{
	char **v = xcalloc(NET_ALLOW_MAX + 1, sizeof(*v));
	int n = 0;

	add_resolvers(v, &n, resolv_conf);
	add_url_host(v, &n, api_url);
	if (n == 0) {
		free(v);
		return NULL;
	}
	return v;
}
