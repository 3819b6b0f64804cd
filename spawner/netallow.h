/*
 * netallow: the addresses an `egress` sandbox may reach although they sit
 * in a private range the sandbox blocks (SECURITY.md ): the host's
 * DNS resolvers (resolv.conf) and the hub's API address when that is not
 * on loopback. The sandbox gets them as sandbox_spec.net_allow.
 */
#ifndef NBGATE_SPAWNER_NETALLOW_H
#define NBGATE_SPAWNER_NETALLOW_H

/*
 * The allow-list for one sandbox: each non-loopback IPv4/IPv6 `nameserver`
 * of resolv_conf (a missing file gives none), then the host of api_url
 * ("http://10.1.2.3:8000/hub/api", "https://[fd00::1]/...") when it is a
 * numeric non-loopback address. Duplicates are dropped; at most 16
 * entries. Returns an owned NULL-terminated list (xstrv_free()), or NULL
 * when empty. Names (not addresses) in api_url are ignored: the sandbox
 * reaches public names anyway, and resolving here would block.
 */
char **spawner_net_allow(const char *resolv_conf, const char *api_url);

#endif
