/* Unit tests for gateway/conn_limits.c: the per-address connection counts
 * (PRX-18: both sides of max_conns_per_ip, release, IPv4/IPv6 keys, growth,
 * removal) and when a malloc_trim is scheduled after a mass close. No lws
 * context: the timer, the clock and malloc_trim are replaced below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <libwebsockets.h>
#include "common/timeutil.h"

/* Seams: the real declarations are in scope already (include guards keep
 * them from coming back), so these function-like macros only rewrite the
 * calls inside conn_limits.c. */
struct fake {
	int64_t mono;                /* what time_mono_ms() returns */
	int scheduled;               /* lws_sul_schedule calls */
	int cancelled;               /* lws_sul_cancel calls */
	int trims;                   /* malloc_trim calls */
	lws_usec_t us;               /* delay of the last schedule */
	struct lws_context *ctx;     /* context of the last schedule */
	lws_sorted_usec_list_t *sul;
	sul_cb_t cb;
};

static struct fake fk;

static int64_t fake_mono_ms(void)
{
	return fk.mono;
}

static void fake_sul_schedule(struct lws_context *ctx, int tsi, lws_sorted_usec_list_t *sul,
			      sul_cb_t cb, lws_usec_t us)
{
	fk.scheduled++;
	fk.ctx = ctx;
	fk.sul = sul;
	fk.cb = cb;
	fk.us = us;
}

static void fake_sul_cancel(lws_sorted_usec_list_t *sul)
{
	fk.cancelled++;
}

static int fake_malloc_trim(size_t pad)
{
	fk.trims++;
	return 0;
}

#define time_mono_ms() fake_mono_ms()
#define lws_sul_schedule(ctx, tsi, sul, cb, us) fake_sul_schedule(ctx, tsi, sul, cb, us)
#define lws_sul_cancel(sul) fake_sul_cancel(sul)
#define malloc_trim(pad) fake_malloc_trim(pad)

#include "gateway/conn_limits.c"

#include <stdio.h>

/* The admission rule of gw__conn_new (conn.c): the cap counts the
 * connections that exist before the new one joins. */
static bool admit(struct gw_core *core, const char *ip, size_t max)
{
	bool ok = gw__ip_count(core, ip) < max;

	gw__ip_add(core, ip);
	return ok;
}

/* Entries reachable from the buckets; every one must be findable. */
static size_t table_walk(struct gw_core *core)
{
	struct gw_ip_table *t = core->ips;
	size_t n = 0;

	for (size_t i = 0; i < t->nb; i++)
		for (struct gw_ip_entry *e = t->b[i]; e; e = e->next) {
			assert_int_equal(ip_hash(t, e->ip), i);
			assert_true(e->n > 0);
			n++;
		}
	return n;
}

static void test_empty(void **state)
{
	struct gw_core core = { 0 };

	assert_int_equal(gw__ip_count(&core, "10.0.0.1"), 0);
	gw__ip_del(&core, "10.0.0.1"); /* no table yet: nothing happens */
	assert_null(core.ips);
	gw__ip_free(&core);
	assert_null(core.ips);
}

static void test_limit_both_sides(void **state)
{
	struct gw_core core = { 0 };
	const size_t max = 5;

	for (size_t i = 0; i < max; i++) {
		assert_true(admit(&core, "192.0.2.7", max));
		assert_int_equal(gw__ip_count(&core, "192.0.2.7"), i + 1);
	}
	/* the (max+1)th is refused, and the one after it too */
	assert_false(admit(&core, "192.0.2.7", max));
	assert_false(admit(&core, "192.0.2.7", max));
	assert_int_equal(gw__ip_count(&core, "192.0.2.7"), max + 2);
	/* another address is not affected */
	assert_true(admit(&core, "192.0.2.8", max));
	/* the two refused ones close: still full */
	gw__ip_del(&core, "192.0.2.7");
	gw__ip_del(&core, "192.0.2.7");
	assert_int_equal(gw__ip_count(&core, "192.0.2.7"), max);
	assert_false(admit(&core, "192.0.2.7", max));
	gw__ip_del(&core, "192.0.2.7");
	/* one accepted connection closes: exactly one more fits */
	gw__ip_del(&core, "192.0.2.7");
	assert_int_equal(gw__ip_count(&core, "192.0.2.7"), max - 1);
	assert_true(admit(&core, "192.0.2.7", max));
	assert_false(admit(&core, "192.0.2.7", max));
	gw__ip_free(&core);
	assert_null(core.ips);
}

static void test_release_removes_entry(void **state)
{
	struct gw_core core = { 0 };

	gw__ip_add(&core, "10.1.1.1");
	gw__ip_add(&core, "10.1.1.1");
	gw__ip_add(&core, "10.1.1.2");
	assert_int_equal(core.ips->count, 2);
	gw__ip_del(&core, "10.1.1.1");
	assert_int_equal(gw__ip_count(&core, "10.1.1.1"), 1);
	assert_int_equal(core.ips->count, 2);
	gw__ip_del(&core, "10.1.1.1");
	assert_int_equal(gw__ip_count(&core, "10.1.1.1"), 0);
	assert_int_equal(core.ips->count, 1);
	assert_int_equal(table_walk(&core), 1);
	/* releasing an address that is not there changes nothing */
	gw__ip_del(&core, "10.1.1.1");
	gw__ip_del(&core, "10.9.9.9");
	assert_int_equal(core.ips->count, 1);
	assert_int_equal(gw__ip_count(&core, "10.1.1.2"), 1);
	/* the entry comes back from zero */
	gw__ip_add(&core, "10.1.1.1");
	assert_int_equal(gw__ip_count(&core, "10.1.1.1"), 1);
	assert_int_equal(core.ips->count, 2);
	gw__ip_free(&core);
}

static void test_ipv4_ipv6_distinct(void **state)
{
	static const char *const ips[] = {
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "2001:db8::1", "2001:db8::10",
		"2001:db8:0:0:0:0:0:1", "127.0.0.10", "unknown",
		/* the longest a gw_conn holds (char[64]) */
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%verylonginterfacename1",
	};
	const size_t n = sizeof(ips) / sizeof(ips[0]);
	struct gw_core core = { 0 };

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k <= i; k++)
			gw__ip_add(&core, ips[i]);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(gw__ip_count(&core, ips[i]), i + 1);
	assert_int_equal(core.ips->count, n);
	/* prefixes and near misses are other keys */
	assert_int_equal(gw__ip_count(&core, "127.0.0."), 0);
	assert_int_equal(gw__ip_count(&core, "::"), 0);
	assert_int_equal(gw__ip_count(&core, "::FFFF:127.0.0.1"), 0);
	gw__ip_free(&core);
}

static void test_growth_and_removal(void **state)
{
	enum { N = 1000 };
	struct gw_core core = { 0 };
	char ip[64];

	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "%s%d", i % 2 ? "10.0." : "2001:db8::", i);
		for (int k = 0; k < i % 3 + 1; k++)
			gw__ip_add(&core, ip);
	}
	assert_int_equal(core.ips->count, N);
	/* grown: no more entries than buckets, still a power of two */
	assert_true(core.ips->nb >= N);
	assert_true(core.ips->nb > GW_IP_BUCKETS_MIN);
	assert_int_equal(core.ips->nb & (core.ips->nb - 1), 0);
	assert_int_equal(table_walk(&core), N);
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "%s%d", i % 2 ? "10.0." : "2001:db8::", i);
		assert_int_equal(gw__ip_count(&core, ip), i % 3 + 1);
	}
	/* remove every third address completely; the rest stay intact */
	for (int i = 0; i < N; i += 3) {
		snprintf(ip, sizeof(ip), "%s%d", i % 2 ? "10.0." : "2001:db8::", i);
		for (int k = 0; k < i % 3 + 1; k++)
			gw__ip_del(&core, ip);
	}
	assert_int_equal(core.ips->count, N - (N + 2) / 3);
	assert_int_equal(table_walk(&core), N - (N + 2) / 3);
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "%s%d", i % 2 ? "10.0." : "2001:db8::", i);
		assert_int_equal(gw__ip_count(&core, ip), i % 3 ? i % 3 + 1 : 0);
	}
	gw__ip_free(&core);
	assert_null(core.ips);
}

/* ---- malloc_trim trigger ---- */

static void set_conns(struct gw_core *core, size_t n)
{
	core->nconns = n;
	gw__conn_count_changed(core);
}

static void test_trim_needs_peak(void **state)
{
	struct gw gw = { .lws = (struct lws_context *)&gw };
	struct gw_core core = { .gw = &gw };

	memset(&fk, 0, sizeof(fk));
	fk.mono = 100000;
	/* a peak below 64 never trims, however far the count falls */
	for (size_t n = 1; n <= 63; n++)
		set_conns(&core, n);
	set_conns(&core, 0);
	assert_int_equal(fk.scheduled, 0);
	assert_int_equal(core.nconns_peak, 63);
	/* 64 reached: falling to 17 (> 64/4) does not trim, 16 does */
	set_conns(&core, 64);
	set_conns(&core, 17);
	assert_int_equal(fk.scheduled, 0);
	set_conns(&core, 16);
	assert_int_equal(fk.scheduled, 1);
	assert_true(core.trim_armed);
	assert_ptr_equal(fk.ctx, gw.lws);
	assert_ptr_equal(fk.sul, &core.trim_sul);
	/* the last trim was long ago: the short delay applies */
	assert_int_equal(fk.us, (lws_usec_t)GW_TRIM_DELAY_MS * 1000);
	/* armed: further closes do not schedule again */
	set_conns(&core, 3);
	set_conns(&core, 0);
	assert_int_equal(fk.scheduled, 1);
	assert_int_equal(fk.trims, 0);
}

static void test_trim_fires_and_rate_limit(void **state)
{
	struct gw gw = { 0 };
	struct gw_core core = { .gw = &gw };

	memset(&fk, 0, sizeof(fk));
	fk.mono = 500000;
	set_conns(&core, 200);
	set_conns(&core, 50);
	assert_int_equal(fk.scheduled, 1);
	fk.mono += GW_TRIM_DELAY_MS;
	fk.cb(fk.sul); /* the timer fires */
	assert_int_equal(fk.trims, 1);
	assert_false(core.trim_armed);
	assert_true(core.trim_last == fk.mono);
	assert_int_equal(core.nconns_peak, 50); /* the peak starts again */
	/* falling further from the old peak does not trim again */
	set_conns(&core, 10);
	assert_int_equal(fk.scheduled, 1);
	/* a new burst 300 ms after the trim: scheduled for 1 s after it */
	fk.mono += 300;
	set_conns(&core, 400);
	set_conns(&core, 100);
	assert_int_equal(fk.scheduled, 2);
	assert_int_equal(fk.us, (lws_usec_t)(GW_TRIM_EVERY_MS - 300) * 1000);
	fk.mono += GW_TRIM_EVERY_MS - 300;
	fk.cb(fk.sul);
	assert_int_equal(fk.trims, 2);
	/* 900 ms after that trim: at least the short delay, not 100 ms */
	fk.mono += 900;
	set_conns(&core, 400);
	set_conns(&core, 0);
	assert_int_equal(fk.scheduled, 3);
	assert_int_equal(fk.us, (lws_usec_t)GW_TRIM_DELAY_MS * 1000);
	assert_int_equal(core.nconns_peak, 400);
}

static void test_trim_stop(void **state)
{
	struct gw gw = { 0 };
	struct gw_core core = { .gw = &gw };

	memset(&fk, 0, sizeof(fk));
	fk.mono = 1000000;
	gw__trim_stop(&core); /* nothing armed: nothing to cancel */
	assert_int_equal(fk.cancelled, 0);
	assert_true(core.timers_off);
	core.timers_off = false;
	set_conns(&core, 100);
	set_conns(&core, 0);
	assert_int_equal(fk.scheduled, 1);
	gw__trim_stop(&core);
	assert_int_equal(fk.cancelled, 1);
	assert_false(core.trim_armed);
	/* shutting down: no timer is armed any more */
	set_conns(&core, 100);
	set_conns(&core, 0);
	assert_int_equal(fk.scheduled, 1);
	assert_int_equal(fk.trims, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_limit_both_sides),
		cmocka_unit_test(test_release_removes_entry),
		cmocka_unit_test(test_ipv4_ipv6_distinct),
		cmocka_unit_test(test_growth_and_removal),
		cmocka_unit_test(test_trim_needs_peak),
		cmocka_unit_test(test_trim_fires_and_rate_limit),
		cmocka_unit_test(test_trim_stop),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
