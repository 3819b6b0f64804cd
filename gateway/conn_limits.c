/*
 * conn_limits: open connections per client address (PRX-18, R-3.9).
 *
 * A chained hash table keyed by the peer address string, so the per-IP cap
 * costs O(1) per accept instead of a scan of every connection. Buckets are
 * chosen by SipHash (crypto_shorthash) with a random key: clients choose
 * their addresses (an IPv6 /64 holds plenty), so a fixed hash could be
 * driven into one long chain. The table doubles when it holds more entries
 * than buckets; an entry is removed when its count drops to zero.
 *
 * Threading: event-loop thread only.
 */
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/conn_internal.h"

#define GW_IP_BUCKETS_MIN 64

struct gw_ip_entry {
	struct gw_ip_entry *next;
	size_t n;
	char ip[64];
};

struct gw_ip_table {
	struct gw_ip_entry **b;
	size_t nb;       /* power of two */
	size_t count;    /* entries */
	unsigned char key[crypto_shorthash_KEYBYTES];
};

static size_t ip_hash(const struct gw_ip_table *t, const char *ip)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)ip, strlen(ip), t->key);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (t->nb - 1));
}

static struct gw_ip_table *ip_table(struct gw_core *core)
{
	struct gw_ip_table *t = core->ips;

	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->nb = GW_IP_BUCKETS_MIN;
	t->b = xcalloc(t->nb, sizeof(struct gw_ip_entry *));
	randombytes_buf(t->key, sizeof(t->key));
	core->ips = t;
	return t;
}

static struct gw_ip_entry **ip_find(struct gw_ip_table *t, const char *ip)
{
	struct gw_ip_entry **p = &t->b[ip_hash(t, ip)];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

static void ip_grow(struct gw_ip_table *t)
{
	struct gw_ip_entry **old = t->b;
	size_t oldn = t->nb;

	t->nb *= 2;
	t->b = xcalloc(t->nb, sizeof(struct gw_ip_entry *));
	for (size_t i = 0; i < oldn; i++) {
		while (old[i]) {
			struct gw_ip_entry *e = old[i];
			size_t k = ip_hash(t, e->ip);

			old[i] = e->next;
			e->next = t->b[k];
			t->b[k] = e;
		}
	}
	free(old);
}

size_t gw__ip_count(struct gw_core *core, const char *ip)
{
	struct gw_ip_entry **p;

	if (!core->ips)
		return 0;
	p = ip_find(core->ips, ip);
	return *p ? (*p)->n : 0;
}

void gw__ip_add(struct gw_core *core, const char *ip)
{
	struct gw_ip_table *t = ip_table(core);
	struct gw_ip_entry **p = ip_find(t, ip);

	if (*p) {
		(*p)->n++;
		return;
	}
	*p = xcalloc(1, sizeof(**p));
	snprintf((*p)->ip, sizeof((*p)->ip), "%s", ip);
	(*p)->n = 1;
	if (++t->count > t->nb)
		ip_grow(t);
}

void gw__ip_del(struct gw_core *core, const char *ip)
{
	struct gw_ip_entry **p, *e;

	if (!core->ips)
		return;
	p = ip_find(core->ips, ip);
	e = *p;
	if (!e || --e->n > 0)
		return;
	*p = e->next;
	free(e);
	core->ips->count--;
}

void gw__ip_free(struct gw_core *core)
{
	struct gw_ip_table *t = core->ips;

	if (!t)
		return;
	for (size_t i = 0; i < t->nb; i++) {
		while (t->b[i]) {
			struct gw_ip_entry *e = t->b[i];

			t->b[i] = e->next;
			free(e);
		}
	}
	free(t->b);
	free(t);
	core->ips = NULL;
}

/* ---- giving memory back after mass closes ---- */

/*
 * glibc keeps freed heap (connection buffers, TLS state) mapped: after a
 * thousand WebSockets close the RSS stays megabytes higher. A trim costs
 * a walk of the heap (~ms), so it runs only when the connection count has
 * fallen to a quarter of a peak of at least GW_TRIM_PEAK_MIN, delayed a
 * little so a burst of closes is trimmed once, and at most once a second.
 */
#define GW_TRIM_PEAK_MIN 64
#define GW_TRIM_DELAY_MS 200
#define GW_TRIM_EVERY_MS 1000

static void trim_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_core *core = lws_container_of(sul, struct gw_core, trim_sul);

	core->trim_armed = false;
	core->trim_last = time_mono_ms();
	core->nconns_peak = core->nconns;
	malloc_trim(0);
}

void gw__conn_count_changed(struct gw_core *core)
{
	int64_t in;

	if (core->nconns > core->nconns_peak)
		core->nconns_peak = core->nconns;
	if (core->trim_armed || core->timers_off || core->nconns_peak < GW_TRIM_PEAK_MIN ||
	    core->nconns > core->nconns_peak / 4)
		return;
	in = core->trim_last + GW_TRIM_EVERY_MS - time_mono_ms();
	if (in < GW_TRIM_DELAY_MS)
		in = GW_TRIM_DELAY_MS;
	core->trim_armed = true;
	lws_sul_schedule(core->gw->lws, 0, &core->trim_sul, trim_cb, (lws_usec_t)in * 1000);
}

void gw__trim_stop(struct gw_core *core)
{
	if (core->trim_armed)
		lws_sul_cancel(&core->trim_sul);
	core->trim_armed = false;
	core->timers_off = true;
}
