/*
 * conn_auth: credentials of open connections (JH-11, AUTH-8, AUTH-9, TOK-6,
 * PRX-25). Every request is authenticated anew, but a WebSocket tunnel or
 * a long exchange lives on after its request was checked; so each
 * connection remembers the credential it last used (struct gw_cred) and is
 * closed when that credential ends:
 *
 *  - revoked (logout, token deletion, user deleted or locked): the hub
 *    calls gw_close_sessions_of() with "s:<id>", "t:<id>" or "u:<user id>";
 *  - expired: the absolute limit (session absolute timeout, token expiry)
 *    is known at authentication (auth_ident.expires_at) and a timer fires
 *    at that moment; a session's idle limit depends on its last_seen,
 *    which other requests move, so it is re-read from the database when
 *    the idle limit could have passed;
 *  - changed behind our back (the CLI in another process, purges): every
 *    credential is re-read at least every GW_CRED_RECHECK_MS.
 *
 * One lws_sul timer per daemon (core->cred_sul) runs at the earliest time
 * any connection needs attention; a sweep walks the connection list (no
 * database work for connections not due) and does at most
 * GW_CRED_LOOKUPS_PER_TICK database lookups, one per distinct handle.
 *
 * Idle expiry and tunnels: WebSocket traffic does not refresh a session
 * (only authenticated HTTP requests do, as in auth_identify), so a session
 * that is idle by the HTTP rule closes its tunnels too (AUTH-8).
 *
 * Threading: event-loop thread only.
 */
#define LOG_PREFIX "gateway/conn_auth: "

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/conn_internal.h"
#include "gateway/users.h"

#define GW_CRED_RECHECK_MS 30000      /* database re-check of every credential */
#define GW_CRED_LOOKUPS_PER_TICK 128  /* bounded database work per sweep */
#define GW_CRED_DEFER_MS 100          /* lookups left over: the next sweep */
#define GW_CRED_CACHE 32              /* handles remembered within one sweep */
#define GW_AUTH_MEMO_MS 1000          /* per-connection identity reuse */

struct cred_seen {
	char handle[40];
	bool dead;
	int64_t next_check;
};

struct cred_sweep {
	int64_t now;
	unsigned lookups;
	size_t ncache;
	struct cred_seen cache[GW_CRED_CACHE];
};

static void cred_sweep_cb(lws_sorted_usec_list_t *sul);

/* Makes the sweep run no later than wall time due. */
static void cred_arm(struct gw_core *core, int64_t due)
{
	int64_t now = time_now_ms(), in = due - now;

	if (core->cred_sul_armed && core->cred_next <= due)
		return;
	if (in < 10)
		in = 10;
	core->cred_next = now + in;
	core->cred_sul_armed = true;
	lws_sul_schedule(core->gw->lws, 0, &core->cred_sul, cred_sweep_cb, (lws_usec_t)in * 1000);
}

void gw__cred_sweep_stop(struct gw_core *core)
{
	if (core->cred_sul_armed)
		lws_sul_cancel(&core->cred_sul);
	core->cred_sul_armed = false;
}

void gw__conn_set_cred(struct gw_conn *c, const struct auth_ident *who)
{
	const struct gw_cfg *cfg = c->core->gw->cfg;
	int64_t now = time_now_ms(), idle = cfg->session_idle_timeout;
	struct gw_cred *cr = &c->cred;

	if (!who || !who->handle[0])
		return;
	snprintf(cr->handle, sizeof(cr->handle), "%s", who->handle);
	cr->user_id = who->user_id;
	cr->expires_at = who->expires_at;
	/* a session is dead once now - created > absolute (strictly later than
	 * created + absolute); a token once now >= expires_at (users.c) */
	if (cr->expires_at && who->via == AUTH_VIA_SESSION)
		cr->expires_at++;
	cr->check_at = now + GW_CRED_RECHECK_MS;
	/* auth_identify touched last_seen, at most 1 s ago: the idle limit
	 * cannot pass before now - 1000 + idle */
	if (who->via == AUTH_VIA_SESSION && idle > 0 && now + idle - 999 < cr->check_at)
		cr->check_at = now + idle - 999;
	cred_arm(c->core, cr->expires_at && cr->expires_at < cr->check_at ? cr->expires_at
									   : cr->check_at);
}

/* ---- per-connection identity memo ---- */

void gw__conn_auth_forget(struct gw_conn *c)
{
	auth_ident_free(c->auth_memo);
	c->auth_memo = NULL;
}

/* Hash of every header auth_identify reads: Authorization, Cookie, Host
 * (names and values, in order, length-prefixed so no two header lists
 * hash alike by concatenation). */
static void auth_memo_key(const struct http_req *req, unsigned char key[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_header *h = &req->hdr[i];
		uint64_t n[2] = { h->name_len, h->value_len };

		if (!((h->name_len == 13 && !strncasecmp(h->name, "authorization", 13)) ||
		      (h->name_len == 6 && !strncasecmp(h->name, "cookie", 6)) ||
		      (h->name_len == 4 && !strncasecmp(h->name, "host", 4))))
			continue;
		crypto_generichash_update(&st, (const unsigned char *)n, sizeof(n));
		crypto_generichash_update(&st, (const unsigned char *)h->name, h->name_len);
		crypto_generichash_update(&st, (const unsigned char *)h->value, h->value_len);
	}
	crypto_generichash_final(&st, key, 32);
}

int gw__conn_identify(struct gw_conn *c, const struct http_req *req,
		      const struct auth_ident **out, bool *fresh, struct err **err)
{
	struct gw *gw = c->core->gw;
	struct auth_ident *who = NULL;
	unsigned char key[32];
	int64_t mono = time_mono_ms();
	int r;

	auth_memo_key(req, key);
	if (c->auth_memo && c->cred.handle[0] && mono - c->auth_memo_at < GW_AUTH_MEMO_MS &&
	    (!c->auth_memo->expires_at || time_now_ms() < c->auth_memo->expires_at) &&
	    sodium_memcmp(key, c->auth_memo_key, sizeof(key)) == 0) {
		*out = c->auth_memo;
		*fresh = false;
		return 1;
	}
	gw__conn_auth_forget(c);
	r = auth_identify(gw->auth, gw->db, gw->cfg, req, c->ip, c->tls, &who, err);
	if (r <= 0)
		return r;
	c->auth_memo = who;
	c->auth_memo_at = mono;
	memcpy(c->auth_memo_key, key, sizeof(key));
	*out = who;
	*fresh = true;
	return 1;
}

/* ---- closing ---- */

/* Ends what c does because its credential is gone. A local answer in
 * progress (e.g. the logout response itself) is finished first. */
static void cred_close(struct gw_conn *c, const char *why)
{
	log_info("closing connection of '%s' for '%s' (%s)", c->ip, c->cred.handle, why);
	c->cred.handle[0] = '\0';
	gw__conn_auth_forget(c);
	switch (c->st) {
	case GW_CS_TUNNEL:
		gw__ws_fail(c, 1008, why);
		break;
	case GW_CS_HUB_BODY:
	case GW_CS_HUB_WAIT:
	case GW_CS_RESP:
		c->close_after = true;
		break;
	default:
		gw__conn_kill(c);
		break;
	}
}

static bool cred_matches(const struct gw_conn *c, const char *handle, int64_t user_id)
{
	if (!c->wsi || !c->cred.handle[0])
		return false;
	if (user_id > 0)
		return c->cred.user_id == user_id;
	return strcmp(c->cred.handle, handle) == 0;
}

void gw_close_sessions_of(struct gw *gw, const char *auth_handle)
{
	struct gw_core *core;
	int64_t user_id = 0;
	char *end;

	if (!gw->lws || !auth_handle || !*auth_handle)
		return;
	if (strncmp(auth_handle, "u:", 2) == 0) {
		/* digits only: strtoll alone would take " 5" and "+5" */
		if (!isdigit((unsigned char)auth_handle[2]))
			return;
		user_id = strtoll(auth_handle + 2, &end, 10);
		if (*end || user_id <= 0)
			return;
	}
	core = lws_context_user(gw->lws);
	for (struct gw_conn *c = core->conns; c; c = c->next) {
		if (cred_matches(c, auth_handle, user_id))
			cred_close(c, "credential revoked");
	}
}

/* ---- database re-check ---- */

/*
 * Is the credential behind handle still good, and when must it be looked
 * at again? Returns 1 alive (*next_check set), 0 dead, < 0 database error
 * (the caller logs it and retries).
 */
static int cred_lookup(struct gw_core *core, const char *handle, int64_t now,
		       int64_t *next_check)
{
	const struct gw_cfg *cfg = core->gw->cfg;
	bool session = handle[0] == 's', locked = false;
	int64_t t = 0, idle = cfg->session_idle_timeout;
	struct err *err = NULL;
	int r;

	r = users_cred_state(core->gw->db, session, strtoll(handle + 2, NULL, 10), &t, &locked,
			     &err);
	err_free(&err);
	if (r < 0)
		return -1;
	if (r == 0 || locked)
		return 0;
	*next_check = now + GW_CRED_RECHECK_MS;
	if (!session)
		return !(t && t <= now);
	if (idle > 0 && now - t > idle)
		return 0;
	if (idle > 0 && t + idle + 1 < *next_check)
		*next_check = t + idle + 1;
	return 1;
}

/* The verdict for c's handle in this sweep (one lookup per handle). */
static struct cred_seen *cred_verdict(struct gw_core *core, struct cred_sweep *sw,
				      const char *handle)
{
	struct cred_seen *s;
	int r;

	for (size_t i = 0; i < sw->ncache; i++)
		if (strcmp(sw->cache[i].handle, handle) == 0)
			return &sw->cache[i];
	if (sw->lookups >= GW_CRED_LOOKUPS_PER_TICK)
		return NULL;
	sw->lookups++;
	s = &sw->cache[sw->ncache < GW_CRED_CACHE ? sw->ncache++ : GW_CRED_CACHE - 1];
	snprintf(s->handle, sizeof(s->handle), "%s", handle);
	r = cred_lookup(core, handle, sw->now, &s->next_check);
	if (r < 0) {
		log_warn("cannot re-check credential '%s'; trying again", handle);
		s->next_check = sw->now + 1000;
	}
	s->dead = r == 0;
	return s;
}

/* Checks c; returns the wall time it needs attention next, or 0 after
 * closing it. */
static int64_t cred_check(struct gw_conn *c, struct cred_sweep *sw)
{
	struct gw_cred *cr = &c->cred;
	struct cred_seen *v;

	if (cr->expires_at && sw->now >= cr->expires_at) {
		cred_close(c, "credential expired");
		return 0;
	}
	if (cr->check_at && sw->now >= cr->check_at) {
		v = cred_verdict(c->core, sw, cr->handle);
		if (!v)
			return sw->now + GW_CRED_DEFER_MS;
		if (v->dead) {
			cred_close(c, "credential expired or revoked");
			return 0;
		}
		cr->check_at = v->next_check;
	}
	return cr->expires_at && cr->expires_at < cr->check_at ? cr->expires_at : cr->check_at;
}

static void cred_sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_core *core = lws_container_of(sul, struct gw_core, cred_sul);
	struct cred_sweep *sw = xcalloc(1, sizeof(*sw));
	int64_t next = INT64_MAX, due;

	core->cred_sul_armed = false;
	sw->now = time_now_ms();
	/* cred_close never unlinks c from the list (lws closes asynchronously) */
	for (struct gw_conn *c = core->conns; c; c = c->next) {
		if (!c->wsi || !c->cred.handle[0])
			continue;
		due = cred_check(c, sw);
		if (due && due < next)
			next = due;
	}
	free(sw);
	if (next != INT64_MAX && !core->gw->stopping)
		cred_arm(core, next);
}
