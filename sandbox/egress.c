/*
 * egress: the routing filter of a sandbox in `egress` mode (SECURITY.md
 * SBX-12), set up by PID 1 over rtnetlink inside the sandbox's
 * network namespace, after pasta configured it and before PID 1 drops
 * CAP_NET_ADMIN (the server never has it, so it cannot undo this).
 *
 * Policy routing rather than routes in the main table: pasta copies the
 * host's address and prefix route into the namespace, and a host on
 * 10.0.0.0/24 would give the sandbox a connected 10.0.0.0/24 route more
 * specific than any 10.0.0.0/8 we could add there. So one rule (priority
 * SBX_EGRESS_PRIO, before "main", after "local" so loopback and the
 * sandbox's own address still work) sends every lookup to table
 * SBX_EGRESS_TABLE, which holds:
 *   - an `unreachable` route per denied range (connect() gets
 *     EHOSTUNREACH; the packet never reaches pasta). Scope link, so that
 *     SO_DONTROUTE/MSG_DONTROUTE lookups (link scope) match them too and
 *     cannot fall through to the connected route in main;
 *   - a `throw` route per net_allow entry: the lookup goes on in main
 *     (the default route via pasta's gateway) as if the rule were absent.
 * A destination matching nothing in the table falls through to main.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "sandbox/sbx.h"

#define SBX_EGRESS_TABLE 0x6e62 /* "nb" */
#define SBX_EGRESS_PRIO 100

/* Private, shared-address, link-local (cloud metadata: 169.254.169.254),
 * "this network", and IPv6 unique-local. fe80::/10 stays: neighbour
 * discovery and pasta's link-local gateway need it, and link-local
 * addresses reach only the link, which is pasta. */
static const char *const denied[] = {
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
	"100.64.0.0/10", "0.0.0.0/8", "fc00::/7",
};

/* The prefix length after '/': decimal digits only, 0..bits; -EINVAL else. */
static int cidr_plen(const char *p, int bits)
{
	char *end = NULL;
	long v = strtol(p, &end, 10);
	if (!p[0] || *end || v < 0 || v > bits || p[0] == '+' || p[0] == '-')
		return -EINVAL;
	return (int)v;
}

int sbx_cidr_parse(const char *s, struct sbx_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	memset(out, 0, sizeof(*out));
	out->family = strchr(host, ':') ? AF_INET6 : AF_INET;
	int bits = out->family == AF_INET ? 32 : 128;
	if (inet_pton(out->family, host, out->addr) != 1)
		return -EINVAL;
	out->plen = bits;
	if (slash) {
		int plen = cidr_plen(slash + 1, bits);
		if (plen < 0)
			return -EINVAL;
		out->plen = plen;
	}
	/* host bits must be zero, as the kernel requires of a route */
	for (int i = out->plen; i < bits; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	return 0;
}

struct nlreq {
	struct nlmsghdr h;
	union {
		struct rtmsg rt;
		struct fib_rule_hdr fr;
	} u;
	char attrs[64];
};

static void add_attr(struct nlreq *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends one request and waits for its ack; 0 or -errno. */
static int nl_talk(int fd, struct nlreq *r)
{
	static unsigned seq;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	r->h.nlmsg_seq = ++seq;
	if (send(fd, r, r->h.nlmsg_len, 0) < 0)
		return -errno;
	char buf[1024];
	for (int i = 0; i < 8; i++) { /* bounded: the ack is the next message */
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return -errno;
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
			if (h->nlmsg_seq == seq && h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	return -EPROTO;
}

static int add_route(int fd, const struct sbx_cidr *c, unsigned char type)
{
	struct nlreq r;
	memset(&r, 0, sizeof(r));
	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	r.h.nlmsg_type = RTM_NEWROUTE;
	r.u.rt.rtm_family = (unsigned char)c->family;
	r.u.rt.rtm_dst_len = (unsigned char)c->plen;
	r.u.rt.rtm_table = RT_TABLE_UNSPEC; /* RTA_TABLE says which */
	r.u.rt.rtm_protocol = RTPROT_STATIC;
	r.u.rt.rtm_scope = RT_SCOPE_LINK;
	r.u.rt.rtm_type = type;
	uint32_t table = SBX_EGRESS_TABLE;
	add_attr(&r, RTA_TABLE, &table, sizeof(table));
	if (c->plen)
		add_attr(&r, RTA_DST, c->addr, c->family == AF_INET ? 4 : 16);
	return nl_talk(fd, &r);
}

static int add_rule(int fd, int family)
{
	struct nlreq r;
	memset(&r, 0, sizeof(r));
	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
	r.h.nlmsg_type = RTM_NEWRULE;
	r.u.fr.family = (unsigned char)family;
	r.u.fr.action = FR_ACT_TO_TBL;
	uint32_t table = SBX_EGRESS_TABLE, prio = SBX_EGRESS_PRIO;
	add_attr(&r, FRA_TABLE, &table, sizeof(table));
	add_attr(&r, FRA_PRIORITY, &prio, sizeof(prio));
	return nl_talk(fd, &r);
}

/* true when net_allow has exactly c (its throw route takes the slot) */
static bool allowed_exactly(const struct sandbox_spec *s, const struct sbx_cidr *c)
{
	struct sbx_cidr a;
	for (size_t i = 0; s->net_allow && s->net_allow[i]; i++)
		if (sbx_cidr_parse(s->net_allow[i], &a) == 0 && a.family == c->family &&
		    a.plen == c->plen && !memcmp(a.addr, c->addr, sizeof(a.addr)))
			return true;
	return false;
}

static int add_routes(int fd, const struct sandbox_spec *s, bool v6, struct err **err)
{
	struct sbx_cidr c;
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		if (sbx_cidr_parse(denied[i], &c) < 0 || (c.family == AF_INET6) != v6 ||
		    allowed_exactly(s, &c))
			continue;
		int r = add_route(fd, &c, RTN_UNREACHABLE);
		if (r < 0)
			return err_set(err, -r, "egress: unreachable route %s", denied[i]);
	}
	for (size_t i = 0; s->net_allow && s->net_allow[i]; i++) {
		if (sbx_cidr_parse(s->net_allow[i], &c) < 0)
			return err_set(err, EINVAL, "egress: net_allow '%s'", s->net_allow[i]);
		if ((c.family == AF_INET6) != v6)
			continue;
		int r = add_route(fd, &c, RTN_THROW);
		if (r < 0)
			return err_set(err, -r, "egress: throw route %s", s->net_allow[i]);
	}
	return 0;
}

int sbx_egress_filter(const struct sandbox_spec *s, struct err **err)
{
	cleanup_close int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0 || sbx_fault("egress"))
		return err_set_errno(err, "egress: netlink socket");
	struct timeval tv = { 2, 0 }; /* a hung kernel answer must not hang setup */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* routes first, the rule last: no window where the rule points at a
	 * half-filled table matters (nothing runs yet), but this order means
	 * a failure leaves no rule at all */
	int r = add_routes(fd, s, false, err);
	if (r < 0)
		return r;
	r = add_rule(fd, AF_INET);
	if (r < 0)
		return err_set(err, -r, "egress: IPv4 rule");
	/* a kernel without IPv6 has no IPv6 to filter */
	r = add_routes(fd, s, true, err);
	if (r == -EAFNOSUPPORT) {
		if (err)
			err_free(err);
		return 0;
	}
	if (r < 0)
		return r;
	r = add_rule(fd, AF_INET6);
	if (r < 0 && r != -EAFNOSUPPORT)
		return err_set(err, -r, "egress: IPv6 rule");
	return 0;
}
