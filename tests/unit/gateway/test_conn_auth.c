/* Unit tests for gateway/conn_auth.c: the credential-header hash and the
 * per-connection identity memo (TOK-6), recording a connection's credential
 * and arming the sweep, gw_close_sessions_of (JH-11, AUTH-9) and the expiry
 * sweep with its database re-check (AUTH-8, PRX-25) against a temporary
 * database. No lws context and no sockets: the timer, the clocks,
 * auth_identify and the two ways of ending a connection are replaced below;
 * connections are plain structs whose wsi is a dummy never dereferenced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libwebsockets.h>
#include "common/timeutil.h"
#include "gateway/auth.h"
#include "gateway/conn_internal.h"

struct fake {
	int64_t now, mono;           /* time_now_ms() / time_mono_ms() */
	int scheduled, cancelled;
	lws_usec_t us;               /* delay of the last schedule */
	sul_cb_t cb;
	lws_sorted_usec_list_t *sul;
	void *ctx_user;              /* what lws_context_user() returns */
	int identify_calls;
	int identify_ret;            /* what auth_identify returns */
	int64_t ident_expires_at;
	int kills, ws_fails;
	uint16_t ws_code;
};

static struct fake fk;

static int64_t fake_now_ms(void)
{
	return fk.now;
}

static int64_t fake_mono_ms(void)
{
	return fk.mono;
}

static void fake_sul_schedule(struct lws_context *ctx, int tsi, lws_sorted_usec_list_t *sul,
			      sul_cb_t cb, lws_usec_t us)
{
	fk.scheduled++;
	fk.us = us;
	fk.cb = cb;
	fk.sul = sul;
}

static void fake_sul_cancel(lws_sorted_usec_list_t *sul)
{
	fk.cancelled++;
}

static void *fake_context_user(struct lws_context *ctx)
{
	return fk.ctx_user;
}

static int fake_auth_identify(struct auth *a, struct db *db, const struct gw_cfg *cfg,
			      const struct http_req *req, const char *client_ip, bool tls,
			      struct auth_ident **out, struct err **err)
{
	struct auth_ident *who;

	fk.identify_calls++;
	if (fk.identify_ret <= 0)
		return fk.identify_ret;
	who = calloc(1, sizeof(*who));
	who->groups = calloc(1, sizeof(char *));
	who->user_id = 7;
	who->via = AUTH_VIA_TOKEN;
	snprintf(who->handle, sizeof(who->handle), "t:%d", fk.identify_calls);
	who->expires_at = fk.ident_expires_at;
	*out = who;
	return 1;
}

static void fake_conn_kill(struct gw_conn *c)
{
	fk.kills++;
}

static void fake_ws_fail(struct gw_conn *c, uint16_t code, const char *reason)
{
	fk.ws_fails++;
	fk.ws_code = code;
}

/* The real declarations are in scope (include guards keep them from
 * coming back): these only rewrite the calls inside conn_auth.c. */
#define time_now_ms() fake_now_ms()
#define time_mono_ms() fake_mono_ms()
#define lws_sul_schedule(ctx, tsi, sul, cb, us) fake_sul_schedule(ctx, tsi, sul, cb, us)
#define lws_sul_cancel(sul) fake_sul_cancel(sul)
#define lws_context_user(ctx) fake_context_user(ctx)
#define auth_identify(...) fake_auth_identify(__VA_ARGS__)
#define gw__conn_kill(c) fake_conn_kill(c)
#define gw__ws_fail(c, code, why) fake_ws_fail(c, code, why)

#include "gateway/conn_auth.c"

#include <ftw.h>
#include "common/db.h"
#include "gateway/users.h"

#define NOW0 1700000000000LL
#define IDLE 600000LL

struct fx {
	char dir[64];
	struct db *db;
	struct gw_cfg cfg;
	struct gw gw;
	struct gw_core core;
	struct gw_conn c[4];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char *path;

	memset(&fk, 0, sizeof(fk));
	fk.now = NOW0;
	fk.mono = 1000000;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nbgate-test-conn-auth-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	path = xasprintf("%s/state.db", fx->dir);
	assert_int_equal(db_open(&fx->db, path, NULL), 0);
	free(path);
	fx->cfg.session_idle_timeout = IDLE;
	fx->gw.cfg = &fx->cfg;
	fx->gw.db = fx->db;
	fx->gw.lws = (struct lws_context *)fx; /* only compared with NULL */
	fx->core.gw = &fx->gw;
	fk.ctx_user = &fx->core;
	/* c[0] is the list head */
	for (int i = 0; i < 4; i++) {
		fx->c[i].core = &fx->core;
		fx->c[i].wsi = (struct lws *)&fx->c[i];
		fx->c[i].st = GW_CS_PROXY;
		fx->c[i].next = i < 3 ? &fx->c[i + 1] : NULL;
		snprintf(fx->c[i].ip, sizeof(fx->c[i].ip), "127.0.0.%d", i + 1);
	}
	fx->core.conns = &fx->c[0];
	*state = fx;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < 4; i++)
		gw__conn_auth_forget(&fx->c[i]);
	db_close(fx->db);
	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void add_hdr(struct http_req *r, const char *name, const char *value)
{
	struct http_header *h = &r->hdr[r->nhdr++];

	h->name = name;
	h->name_len = strlen(name);
	h->value = value;
	h->value_len = strlen(value);
}

static void set_cred(struct gw_conn *c, const char *handle, int64_t user_id,
		     enum auth_via via, int64_t expires_at)
{
	struct auth_ident who = { .user_id = user_id, .via = via, .expires_at = expires_at };

	snprintf(who.handle, sizeof(who.handle), "%s", handle);
	gw__conn_set_cred(c, &who);
}

/* ---- the memo key ---- */

static void test_memo_key(void **state)
{
	struct http_req *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	unsigned char ka[32], kb[32];

	add_hdr(a, "Host", "hub.example");
	add_hdr(a, "Cookie", "nbgate-session=abc");
	add_hdr(a, "User-Agent", "x");
	auth_memo_key(a, ka);
	/* headers auth_identify does not read do not matter */
	add_hdr(b, "Host", "hub.example");
	add_hdr(b, "X-Other", "y");
	add_hdr(b, "Cookie", "nbgate-session=abc");
	auth_memo_key(b, kb);
	assert_memory_equal(ka, kb, 32);
	/* any change to Authorization, Cookie or Host does */
	b->hdr[2].value = "nbgate-session=abd";
	auth_memo_key(b, kb);
	assert_memory_not_equal(ka, kb, 32);
	b->hdr[2].value = "nbgate-session=abc";
	b->hdr[0].value = "hub.example.evil";
	b->hdr[0].value_len = strlen(b->hdr[0].value);
	auth_memo_key(b, kb);
	assert_memory_not_equal(ka, kb, 32);
	b->hdr[0].value = "hub.example";
	b->hdr[0].value_len = strlen(b->hdr[0].value);
	add_hdr(b, "authorization", "token x");
	auth_memo_key(b, kb);
	assert_memory_not_equal(ka, kb, 32);
	/* moving bytes between two headers changes the key (length-prefixed) */
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	add_hdr(a, "Cookie", "ab");
	add_hdr(a, "Host", "c");
	add_hdr(b, "Cookie", "a");
	add_hdr(b, "Host", "bc");
	auth_memo_key(a, ka);
	auth_memo_key(b, kb);
	assert_memory_not_equal(ka, kb, 32);
	free(a);
	free(b);
}

/* ---- the identity memo ---- */

static void test_identify_memo(void **state)
{
	struct fx *fx = *state;
	struct gw_conn *c = &fx->c[0];
	struct http_req *req = calloc(1, sizeof(*req));
	const struct auth_ident *who = NULL;
	bool fresh = false;

	add_hdr(req, "Authorization", "token abc");
	fk.identify_ret = 1;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_true(fresh);
	assert_int_equal(fk.identify_calls, 1);
	/* not yet recorded as the connection's credential: no reuse */
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 2);
	gw__conn_set_cred(c, who);
	assert_string_equal(c->cred.handle, "t:2");
	/* 999 ms later, same headers: reused without a lookup */
	fk.mono += 999;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_false(fresh);
	assert_ptr_equal(who, c->auth_memo);
	assert_int_equal(fk.identify_calls, 2);
	/* 1000 ms: asked again */
	fk.mono += 1;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_true(fresh);
	assert_int_equal(fk.identify_calls, 3);
	/* other credential headers: asked again */
	req->hdr[0].value = "token abd";
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 4);
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 4);
	/* a memo whose credential expired is not used */
	fk.ident_expires_at = fk.now + 10;
	fk.mono += 1000;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 5);
	fk.now += 9;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 5);
	fk.now += 1;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 1);
	assert_int_equal(fk.identify_calls, 6);
	/* a failure forgets the memo */
	fk.identify_ret = 0;
	fk.mono += 1000;
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 0);
	assert_null(c->auth_memo);
	assert_int_equal(gw__conn_identify(c, req, &who, &fresh, NULL), 0);
	assert_int_equal(fk.identify_calls, 8);
	free(req);
}

/* ---- recording credentials, arming the sweep ---- */

static void test_set_cred_and_arm(void **state)
{
	struct fx *fx = *state;
	struct gw_cred *cr = &fx->c[0].cred;

	gw__conn_set_cred(&fx->c[0], NULL);
	set_cred(&fx->c[0], "", 5, AUTH_VIA_TOKEN, 0);
	assert_string_equal(cr->handle, "");
	assert_int_equal(fk.scheduled, 0);
	/* a token without expiry: re-checked after 30 s */
	set_cred(&fx->c[0], "t:12", 5, AUTH_VIA_TOKEN, 0);
	assert_string_equal(cr->handle, "t:12");
	assert_true(cr->user_id == 5);
	assert_true(cr->expires_at == 0);
	assert_true(cr->check_at == NOW0 + GW_CRED_RECHECK_MS);
	assert_int_equal(fk.scheduled, 1);
	assert_true(fk.us == (lws_usec_t)GW_CRED_RECHECK_MS * 1000);
	assert_ptr_equal(fk.sul, &fx->core.cred_sul);
	/* a later due time does not move the armed sweep */
	set_cred(&fx->c[1], "t:13", 5, AUTH_VIA_TOKEN, 0);
	assert_int_equal(fk.scheduled, 1);
	/* a token expiring in 2 s: the sweep runs at the expiry, not later */
	set_cred(&fx->c[2], "t:14", 5, AUTH_VIA_TOKEN, NOW0 + 2000);
	assert_true(fx->c[2].cred.expires_at == NOW0 + 2000);
	assert_int_equal(fk.scheduled, 2);
	assert_true(fk.us == 2000 * 1000);
	assert_true(fx->core.cred_next == NOW0 + 2000);
	/* a session: dead strictly after created + absolute, so one ms more;
	 * re-read from the database before its idle limit can pass */
	fx->cfg.session_idle_timeout = 20000;
	set_cred(&fx->c[3], "s:3", 6, AUTH_VIA_SESSION, NOW0 + 1000);
	assert_true(fx->c[3].cred.expires_at == NOW0 + 1001);
	assert_true(fx->c[3].cred.check_at == NOW0 + 20000 - 999);
	assert_true(fk.us == 1001 * 1000);
	/* a due time in the past still waits 10 ms */
	fx->core.cred_sul_armed = false;
	set_cred(&fx->c[3], "s:3", 6, AUTH_VIA_SESSION, NOW0 - 5000);
	assert_true(fk.us == 10 * 1000);
	gw__cred_sweep_stop(&fx->core);
	assert_int_equal(fk.cancelled, 1);
	assert_false(fx->core.cred_sul_armed);
	gw__cred_sweep_stop(&fx->core);
	assert_int_equal(fk.cancelled, 1);
}

/* ---- revocation ---- */

static void test_close_sessions_of(void **state)
{
	struct fx *fx = *state;
	static const char *const bad[] = { "", "u:", "u:abc", "u:0", "u:-5", "u:5x", "u: 5", "u:+5" };

	set_cred(&fx->c[0], "s:3", 5, AUTH_VIA_SESSION, 0);
	set_cred(&fx->c[1], "s:30", 5, AUTH_VIA_SESSION, 0);
	set_cred(&fx->c[2], "t:3", 5, AUTH_VIA_TOKEN, 0);
	set_cred(&fx->c[3], "t:9", 6, AUTH_VIA_TOKEN, 0);
	fx->c[1].st = GW_CS_TUNNEL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		gw_close_sessions_of(&fx->gw, bad[i]);
	gw_close_sessions_of(&fx->gw, NULL);
	gw_close_sessions_of(&fx->gw, "s:4");
	assert_int_equal(fk.kills + fk.ws_fails, 0);
	/* whole handles only: "s:3" is not "s:30" nor "t:3" */
	gw_close_sessions_of(&fx->gw, "s:3");
	assert_int_equal(fk.kills, 1);
	assert_string_equal(fx->c[0].cred.handle, "");
	assert_string_equal(fx->c[1].cred.handle, "s:30");
	assert_string_equal(fx->c[2].cred.handle, "t:3");
	/* closed already: not again */
	gw_close_sessions_of(&fx->gw, "s:3");
	assert_int_equal(fk.kills, 1);
	/* a tunnel gets a 1008 close frame */
	gw_close_sessions_of(&fx->gw, "s:30");
	assert_int_equal(fk.ws_fails, 1);
	assert_int_equal(fk.ws_code, 1008);
	/* every connection of a user; a local answer in progress is finished;
	 * a connection whose socket is gone is left alone */
	fx->c[2].st = GW_CS_HUB_WAIT;
	fx->c[3].wsi = NULL;
	fx->c[3].cred.user_id = 5;
	gw_close_sessions_of(&fx->gw, "u:5");
	assert_int_equal(fk.kills, 1);
	assert_true(fx->c[2].close_after);
	assert_string_equal(fx->c[2].cred.handle, "");
	assert_string_equal(fx->c[3].cred.handle, "t:9");
	/* no lws context (CLI): nothing */
	fx->c[3].wsi = (struct lws *)&fx->c[3];
	fx->gw.lws = NULL;
	gw_close_sessions_of(&fx->gw, "u:5");
	assert_string_equal(fx->c[3].cred.handle, "t:9");
}

/* ---- the sweep ---- */

static void run_sweep(void)
{
	assert_non_null(fk.cb);
	fk.cb(fk.sul);
}

static void test_sweep_expiry(void **state)
{
	struct fx *fx = *state;

	set_cred(&fx->c[0], "t:1", 5, AUTH_VIA_TOKEN, NOW0 + 2000);
	set_cred(&fx->c[1], "t:2", 5, AUTH_VIA_TOKEN, NOW0 + 3000);
	fx->c[1].st = GW_CS_TUNNEL;
	/* 1 ms early: nothing closes, re-armed (never sooner than 10 ms) */
	fk.now = NOW0 + 1999;
	run_sweep();
	assert_int_equal(fk.kills + fk.ws_fails, 0);
	assert_true(fx->core.cred_sul_armed);
	assert_true(fx->core.cred_next == NOW0 + 1999 + 10);
	fk.now = NOW0 + 2000;
	run_sweep();
	assert_int_equal(fk.kills, 1);
	assert_string_equal(fx->c[0].cred.handle, "");
	assert_true(fx->core.cred_next == NOW0 + 3000);
	fk.now = NOW0 + 3000;
	run_sweep();
	assert_int_equal(fk.ws_fails, 1);
	assert_int_equal(fk.ws_code, 1008);
	/* nothing left to watch: not re-armed */
	assert_false(fx->core.cred_sul_armed);
}

static void test_sweep_recheck_db(void **state)
{
	struct fx *fx = *state;
	struct users_key key;
	struct users_token_spec spec = { 0 };
	int64_t alice, bob, sid_a, tid_a, tid_b;
	char *sid = NULL, *tok = NULL, *sql;

	assert_int_equal(users_key_load(fx->dir, &key, NULL), 0);
	assert_int_equal(users_create(fx->db, "alice", false, NULL, NOW0, &alice, NULL), 0);
	assert_int_equal(users_create(fx->db, "bob", false, NULL, NOW0, &bob, NULL), 0);
	assert_int_equal(users_session_create(fx->db, alice, "127.0.0.1", NOW0, &sid, &sid_a,
					      NULL), 0);
	free(sid);
	spec.user_id = alice;
	assert_int_equal(users_token_create(fx->db, &key, &spec, NOW0, &tok, &tid_a, NULL), 0);
	free(tok);
	spec.user_id = bob;
	assert_int_equal(users_token_create(fx->db, &key, &spec, NOW0, &tok, &tid_b, NULL), 0);
	free(tok);

	char h[3][40];

	snprintf(h[0], sizeof(h[0]), "s:%lld", (long long)sid_a);
	snprintf(h[1], sizeof(h[1]), "t:%lld", (long long)tid_a);
	snprintf(h[2], sizeof(h[2]), "t:%lld", (long long)tid_b);
	set_cred(&fx->c[0], h[0], alice, AUTH_VIA_SESSION, 0);
	set_cred(&fx->c[1], h[1], alice, AUTH_VIA_TOKEN, 0);
	set_cred(&fx->c[2], h[2], bob, AUTH_VIA_TOKEN, 0);
	set_cred(&fx->c[3], h[1], alice, AUTH_VIA_TOKEN, 0); /* same token, two conns */
	/* 30 s on, all alive; the session's next check is at its idle limit */
	fk.now = NOW0 + GW_CRED_RECHECK_MS;
	run_sweep();
	assert_int_equal(fk.kills, 0);
	assert_true(fx->c[1].cred.check_at == fk.now + GW_CRED_RECHECK_MS);
	assert_true(fx->c[3].cred.check_at == fk.now + GW_CRED_RECHECK_MS);
	/* the session was seen again by another request (another process) */
	sql = xasprintf("UPDATE sessions SET last_seen = %lld WHERE id = %lld",
			(long long)(NOW0 + 50000), (long long)sid_a);
	assert_int_equal(db_exec(fx->db, sql, NULL), 0);
	free(sql);
	/* bob's token revoked behind our back, alice locked */
	sql = xasprintf("DELETE FROM tokens WHERE id = %lld", (long long)tid_b);
	assert_int_equal(db_exec(fx->db, sql, NULL), 0);
	free(sql);
	fk.now = NOW0 + 2 * GW_CRED_RECHECK_MS;
	run_sweep();
	assert_int_equal(fk.kills, 1);
	assert_string_equal(fx->c[2].cred.handle, "");
	assert_string_equal(fx->c[0].cred.handle, h[0]);
	/* a session idle for exactly the limit lives; one ms more is dead */
	fx->c[0].cred.check_at = NOW0 + 50000 + IDLE;
	fx->c[1].cred.check_at = fx->c[3].cred.check_at = NOW0 + 50000 + IDLE + 10;
	fk.now = NOW0 + 50000 + IDLE;
	run_sweep();
	assert_int_equal(fk.kills, 1);
	assert_true(fx->c[0].cred.check_at == NOW0 + 50000 + IDLE + 1);
	fk.now = NOW0 + 50000 + IDLE + 1;
	run_sweep();
	assert_int_equal(fk.kills, 2);
	assert_string_equal(fx->c[0].cred.handle, "");
	/* locking the user ends both connections of the token */
	assert_int_equal(db_exec(fx->db, "UPDATE users SET locked = 1", NULL), 0);
	fk.now = NOW0 + 50000 + IDLE + 10;
	run_sweep();
	assert_int_equal(fk.kills, 4);
	assert_string_equal(fx->c[1].cred.handle, "");
	assert_string_equal(fx->c[3].cred.handle, "");
}

static void test_sweep_token_expiry_in_db(void **state)
{
	struct fx *fx = *state;
	struct cred_sweep sw = { .now = NOW0 };
	int64_t next = 0;
	struct users_key key;
	struct users_token_spec spec = { .expires_in_ms = 5000 };
	int64_t uid, tid;
	char *tok = NULL, h[40];

	assert_int_equal(users_key_load(fx->dir, &key, NULL), 0);
	assert_int_equal(users_create(fx->db, "carol", false, NULL, NOW0, &uid, NULL), 0);
	spec.user_id = uid;
	assert_int_equal(users_token_create(fx->db, &key, &spec, NOW0, &tok, &tid, NULL), 0);
	free(tok);
	snprintf(h, sizeof(h), "t:%lld", (long long)tid);
	/* alive until expires_at, dead from it on (as users_token_lookup) */
	assert_int_equal(cred_lookup(&fx->core, h, NOW0 + 4999, &next), 1);
	assert_true(next == NOW0 + 4999 + GW_CRED_RECHECK_MS);
	assert_int_equal(cred_lookup(&fx->core, h, NOW0 + 5000, &next), 0);
	assert_int_equal(cred_lookup(&fx->core, "t:999999", NOW0, &next), 0);
	assert_int_equal(cred_lookup(&fx->core, "s:999999", NOW0, &next), 0);
	/* one lookup per handle per sweep, at most GW_CRED_LOOKUPS_PER_TICK */
	assert_false(cred_verdict(&fx->core, &sw, h)->dead);
	assert_true(cred_verdict(&fx->core, &sw, "t:999999")->dead);
	assert_false(cred_verdict(&fx->core, &sw, h)->dead);
	assert_true(cred_verdict(&fx->core, &sw, "t:999999")->dead);
	assert_int_equal(sw.lookups, 2);
	for (int i = 0; i < GW_CRED_LOOKUPS_PER_TICK - 2; i++) {
		char other[40];

		snprintf(other, sizeof(other), "t:%d", 100000 + i);
		assert_non_null(cred_verdict(&fx->core, &sw, other));
	}
	assert_int_equal(sw.lookups, GW_CRED_LOOKUPS_PER_TICK);
	assert_null(cred_verdict(&fx->core, &sw, "t:424242"));
}

/* Over 128 due connections (one database lookup each): the rest wait for
 * the next sweep, 100 ms later, and are checked then. */
static void test_sweep_bounded(void **state)
{
	enum { N = 128 + 3 };
	struct fx *fx = *state;
	struct gw_conn *cs = calloc(N, sizeof(*cs));
	char h[40];

	for (int i = 0; i < N; i++) {
		cs[i].core = &fx->core;
		cs[i].wsi = (struct lws *)&cs[i];
		cs[i].st = GW_CS_PROXY;
		cs[i].next = i + 1 < N ? &cs[i + 1] : NULL;
		snprintf(h, sizeof(h), "t:%d", 500000 + i); /* not in the database */
		set_cred(&cs[i], h, 9, AUTH_VIA_TOKEN, 0);
	}
	fx->core.conns = cs;
	fk.now = NOW0 + GW_CRED_RECHECK_MS;
	run_sweep();
	assert_int_equal(fk.kills, 128);
	assert_true(fx->core.cred_next == fk.now + 100);
	fk.now += 100;
	run_sweep();
	assert_int_equal(fk.kills, N);
	assert_false(fx->core.cred_sul_armed);
	fx->core.conns = &fx->c[0];
	free(cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memo_key),
		cmocka_unit_test_setup_teardown(test_identify_memo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_cred_and_arm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_sessions_of, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_recheck_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_token_expiry_in_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_bounded, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
