/*
 * scopes: JupyterHub-style scope parsing, expansion and checks.
 * See scopes.h for the model and the table of implied scopes.
 */
#include "gateway/scopes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xalloc.h"

#define SCOPE_MAX_IMPLIED 4
#define SCOPE_VALUE_MAX 130  /* "<user>/<server>": 64 + 1 + 64, plus NUL */
#define SCOPE_TEXT_MAX 65536 /* bound on a scope list */

enum scope_filter { SF_NONE, SF_USER, SF_SERVER, SF_GROUP };

struct scope_def {
	const char *name;
	bool group_resource; /* !group= names the group itself */
	const char *implies[SCOPE_MAX_IMPLIED];
};

/* The implication table (scopes.h). Order does not matter. */
static const struct scope_def scope_defs[] = {
	{ "admin:users", false, { "users", "admin:servers", "delete:users" } },
	{ "users", false, { "read:users", "list:users", "users:activity" } },
	{ "read:users", false,
	  { "read:users:name", "read:users:groups", "read:users:activity" } },
	{ "list:users", false, { "read:users:name" } },
	{ "users:activity", false, { "read:users:activity" } },
	{ "read:users:name", false, { NULL } },
	{ "read:users:groups", false, { NULL } },
	{ "read:users:activity", false, { NULL } },
	{ "delete:users", false, { NULL } },
	{ "admin:servers", false, { "servers" } },
	{ "servers", false, { "read:servers", "delete:servers" } },
	{ "read:servers", false, { "read:users:name" } },
	{ "delete:servers", false, { NULL } },
	{ "access:servers", false, { NULL } },
	{ "tokens", false, { "read:tokens" } },
	{ "read:tokens", false, { NULL } },
	{ "admin:groups", true, { "groups", "delete:groups" } },
	{ "groups", true, { "read:groups", "list:groups" } },
	{ "read:groups", true, { "read:groups:name" } },
	{ "list:groups", true, { "read:groups:name" } },
	{ "read:groups:name", true, { NULL } },
	{ "delete:groups", true, { NULL } },
	{ "read:metrics", false, { NULL } },
	{ "shutdown", false, { NULL } },
};

/* What `self` grants, each with !user=<owner>. */
static const char *const scope_self[] = {
	"read:users", "users:activity", "servers", "tokens", "access:servers", NULL,
};

static const struct {
	const char *role;
	const char *scopes;
} scope_roles[] = {
	{ SCOPES_ROLE_USER, "self" },
	{ SCOPES_ROLE_ADMIN,
	  "admin:users admin:groups tokens access:servers read:metrics shutdown" },
	{ SCOPES_ROLE_SERVER, SCOPES_SERVER_TOKEN },
};

struct scope_grant {
	const struct scope_def *def;
	enum scope_filter filter;
	char *value; /* NULL for SF_NONE */
};

struct scope_set {
	struct scope_grant *g;
	size_t n, alloc;
	struct scope_set *and; /* conjunction: both must allow */
};

/* One parsed word, before expansion. */
struct scope_word {
	const struct scope_def *def; /* NULL for a metascope */
	const char *meta;            /* "self" / "inherit" */
	enum scope_filter filter;
	bool self_ref;               /* bare !user / !server */
	char value[SCOPE_VALUE_MAX];
};

static const struct scope_def *scope_def_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(scope_defs) / sizeof(scope_defs[0]); i++)
		if (strlen(scope_defs[i].name) == len && !memcmp(scope_defs[i].name, name, len))
			return &scope_defs[i];
	return NULL;
}

static bool scope_name_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '-' || c == '_' || c == '.');
}

/* A user or group name as users_normalize_name() produces it. */
static bool scope_valid_name(const char *s, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!scope_name_char(s[i], i == 0))
			return false;
	return true;
}

/* "<user>/<server>" with server possibly empty. */
static bool scope_valid_server(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	size_t ulen, slen;

	if (!slash)
		return false;
	ulen = (size_t)(slash - s);
	slen = len - ulen - 1;
	return scope_valid_name(s, ulen) && (slen == 0 || scope_valid_name(slash + 1, slen));
}

static int scope_parse_filter(const char *f, size_t len, struct scope_word *w)
{
	static const struct {
		const char *key;
		enum scope_filter filter;
	} keys[] = { { "user", SF_USER }, { "server", SF_SERVER }, { "group", SF_GROUP } };
	const char *eq = memchr(f, '=', len);
	size_t klen = eq ? (size_t)(eq - f) : len;
	size_t vlen = eq ? len - klen - 1 : 0;

	for (size_t i = 0; i < 3; i++) {
		if (strlen(keys[i].key) != klen || memcmp(keys[i].key, f, klen) != 0)
			continue;
		w->filter = keys[i].filter;
		if (!eq) {
			w->self_ref = true;
			return w->filter == SF_GROUP ? -1 : 0;
		}
		if (vlen >= SCOPE_VALUE_MAX)
			return -1;
		if (w->filter == SF_SERVER ? !scope_valid_server(eq + 1, vlen)
					   : !scope_valid_name(eq + 1, vlen))
			return -1;
		memcpy(w->value, eq + 1, vlen);
		w->value[vlen] = '\0';
		return 0;
	}
	return -1;
}

static int scope_parse_word(const char *s, size_t len, struct scope_word *w,
			    struct err **err)
{
	const char *bang = memchr(s, '!', len);
	size_t nlen = bang ? (size_t)(bang - s) : len;
	int show = len > 80 ? 80 : (int)len;

	memset(w, 0, sizeof(*w));
	if (nlen == 4 && !memcmp(s, "self", 4))
		w->meta = "self";
	else if (nlen == 7 && !memcmp(s, "inherit", 7))
		w->meta = "inherit";
	else if (!(w->def = scope_def_find(s, nlen)))
		return err_set_http(err, 400, EINVAL, "unknown scope '%.*s'", show, s);
	if (bang && (w->meta || scope_parse_filter(bang + 1, len - nlen - 1, w) < 0))
		return err_set_http(err, 400, EINVAL, "invalid scope filter '%.*s'", show, s);
	return 0;
}

/* Calls fn for each space-separated word of text. */
static int scope_each_word(const char *text, int (*fn)(void *ctx, const char *w, size_t n,
						       struct err **err),
			   void *ctx, struct err **err)
{
	const char *p = text ? text : "";

	if (strlen(p) > SCOPE_TEXT_MAX)
		return err_set_http(err, 400, EINVAL, "scope list too long");
	while (*p) {
		size_t n;
		int r;

		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (n == 0)
			break;
		r = fn(ctx, p, n, err);
		if (r < 0)
			return r;
		p += n;
	}
	return 0;
}

static int scope_validate_one(void *ctx, const char *w, size_t n, struct err **err)
{
	struct scope_word word;

	(void)ctx;
	return scope_parse_word(w, n, &word, err);
}

int scopes_validate(const char *text, struct err **err)
{
	return scope_each_word(text, scope_validate_one, NULL, err);
}

/* ---- sets ---- */

static struct scope_set *scope_set_new(void)
{
	return xcalloc(1, sizeof(struct scope_set));
}

static bool scope_grant_eq(const struct scope_grant *a, const struct scope_grant *b)
{
	if (a->def != b->def || a->filter != b->filter)
		return false;
	return a->filter == SF_NONE || !strcmp(a->value, b->value);
}

static void scope_add(struct scope_set *s, const struct scope_def *def,
		      enum scope_filter filter, const char *value)
{
	struct scope_grant g = { def, filter, (char *)value };

	for (size_t i = 0; i < s->n; i++)
		if (scope_grant_eq(&s->g[i], &g))
			return;
	if (s->n == s->alloc) {
		s->alloc = s->alloc ? s->alloc * 2 : 16;
		s->g = xrealloc(s->g, s->alloc * sizeof(*s->g));
	}
	g.value = filter == SF_NONE ? NULL : xstrdup(value);
	s->g[s->n++] = g;
}

/* Adds def and everything it implies, all with the same filter. */
static void scope_add_closure(struct scope_set *s, const struct scope_def *def,
			      enum scope_filter filter, const char *value, int depth)
{
	scope_add(s, def, filter, value);
	if (depth > 8)
		return; /* the table is acyclic and shallow; this is a guard */
	for (size_t i = 0; i < SCOPE_MAX_IMPLIED && def->implies[i]; i++) {
		const struct scope_def *sub =
			scope_def_find(def->implies[i], strlen(def->implies[i]));
		if (sub)
			scope_add_closure(s, sub, filter, value, depth + 1);
	}
}

struct scope_expand_ctx {
	struct scope_set *set;
	const struct scope_owner *owner;
};

static void scope_expand_self(struct scope_set *s, const char *user)
{
	for (size_t i = 0; scope_self[i]; i++)
		scope_add_closure(s, scope_def_find(scope_self[i], strlen(scope_self[i])),
				  SF_USER, user, 0);
}

static void scope_expand_inherit(struct scope_set *s, const struct scope_set *from)
{
	if (!from)
		return;
	for (size_t i = 0; i < from->n; i++)
		scope_add(s, from->g[i].def, from->g[i].filter, from->g[i].value);
	/* an intersected owner set contributes what both sides allow: the
	 * top level is already the narrower token side when built that way */
}

/* Resolves a bare !user / !server for the owner; false = drop the word. */
static bool scope_resolve_self(struct scope_word *w, const struct scope_owner *o)
{
	int n;

	if (!w->self_ref)
		return true;
	if (w->filter == SF_USER)
		n = snprintf(w->value, sizeof(w->value), "%s", o->user);
	else if (o->server)
		n = snprintf(w->value, sizeof(w->value), "%s/%s", o->user, o->server);
	else
		return false;
	return n > 0 && (size_t)n < sizeof(w->value);
}

static int scope_expand_one(void *vctx, const char *s, size_t n, struct err **err)
{
	struct scope_expand_ctx *ctx = vctx;
	struct scope_word w;

	if (scope_parse_word(s, n, &w, err) < 0)
		return -EINVAL;
	if (w.meta && !strcmp(w.meta, "self"))
		scope_expand_self(ctx->set, ctx->owner->user);
	else if (w.meta)
		scope_expand_inherit(ctx->set, ctx->owner->inherit);
	else if (scope_resolve_self(&w, ctx->owner))
		scope_add_closure(ctx->set, w.def, w.filter,
				  w.filter == SF_NONE ? NULL : w.value, 0);
	return 0;
}

int scopes_expand(const char *text, const struct scope_owner *owner,
		  struct scope_set **out, struct err **err)
{
	struct scope_expand_ctx ctx = { scope_set_new(), owner };

	if (!owner || !owner->user) {
		scopes_free(ctx.set);
		return err_set(err, EINVAL, "scope expansion needs an owner");
	}
	if (scope_each_word(text, scope_expand_one, &ctx, err) < 0) {
		scopes_free(ctx.set);
		return -EINVAL;
	}
	*out = ctx.set;
	return 0;
}

const char *scopes_role(const char *role)
{
	for (size_t i = 0; i < sizeof(scope_roles) / sizeof(scope_roles[0]); i++)
		if (role && !strcmp(scope_roles[i].role, role))
			return scope_roles[i].scopes;
	return NULL;
}

int scopes_for_user(const char *user, bool admin, const char *extra,
		    struct scope_set **out, struct err **err)
{
	const char *role = scopes_role(admin ? SCOPES_ROLE_ADMIN : SCOPES_ROLE_USER);
	struct scope_owner owner = { .user = user };
	struct scope_expand_ctx ctx;

	if (scopes_expand(role, &owner, out, err) < 0)
		return -EINVAL;
	ctx.set = *out;
	ctx.owner = &owner;
	if (scope_each_word(extra, scope_expand_one, &ctx, err) < 0) {
		scopes_free(*out);
		*out = NULL;
		return err_wrap(err, "scopes of user '%s'", user);
	}
	return 0;
}

struct scope_set *scopes_dup(const struct scope_set *s)
{
	struct scope_set *d;

	if (!s)
		return NULL;
	d = scope_set_new();
	for (size_t i = 0; i < s->n; i++)
		scope_add(d, s->g[i].def, s->g[i].filter, s->g[i].value);
	d->and = scopes_dup(s->and);
	return d;
}

struct scope_set *scopes_intersect(const struct scope_set *token,
				   const struct scope_set *owner)
{
	struct scope_set *r = scopes_dup(token);
	struct scope_set **tail = &r->and;

	while (*tail)
		tail = &(*tail)->and;
	*tail = scopes_dup(owner);
	return r;
}

void scopes_free(struct scope_set *s)
{
	while (s) {
		struct scope_set *next = s->and;

		for (size_t i = 0; i < s->n; i++)
			free(s->g[i].value);
		free(s->g);
		free(s);
		s = next;
	}
}

/* ---- checks ---- */

struct scope_target {
	const char *user;
	const char *server;
	const char *const *groups;
	const char *group; /* groups scopes */
};

static bool scope_strv_has(const char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static bool scope_server_is(const char *value, const char *user, const char *server)
{
	size_t ulen = strlen(user);

	return !strncmp(value, user, ulen) && value[ulen] == '/' &&
	       !strcmp(value + ulen + 1, server);
}

static bool scope_grant_matches(const struct scope_grant *g, const struct scope_target *t)
{
	switch (g->filter) {
	case SF_NONE:
		return true;
	case SF_USER:
		return t->user && !strcmp(g->value, t->user);
	case SF_SERVER:
		return t->user && t->server && scope_server_is(g->value, t->user, t->server);
	case SF_GROUP:
		if (g->def->group_resource && t->group)
			return !strcmp(g->value, t->group);
		return t->user && scope_strv_has(t->groups, g->value);
	}
	return false;
}

static bool scope_set_allows(const struct scope_set *s, const char *needed,
			     const struct scope_target *t)
{
	for (; s; s = s->and) {
		bool ok = false;

		for (size_t i = 0; i < s->n && !ok; i++)
			ok = !strcmp(s->g[i].def->name, needed) && scope_grant_matches(&s->g[i], t);
		if (!ok)
			return false;
	}
	return true;
}

bool scopes_allow(const struct scope_set *s, const char *needed, const char *user,
		  const char *server, const char *const *user_groups)
{
	struct scope_target t = { user, server, user_groups, NULL };

	return s && needed && scope_set_allows(s, needed, &t);
}

bool scopes_allow_group(const struct scope_set *s, const char *needed, const char *group)
{
	struct scope_target t = { NULL, NULL, NULL, group };

	return s && needed && group && scope_set_allows(s, needed, &t);
}

static bool scope_set_has(const struct scope_set *s, const char *needed, bool unfiltered)
{
	for (; s; s = s->and) {
		bool ok = false;

		for (size_t i = 0; i < s->n && !ok; i++)
			ok = !strcmp(s->g[i].def->name, needed) &&
			     (!unfiltered || s->g[i].filter == SF_NONE);
		if (!ok)
			return false;
	}
	return true;
}

bool scopes_allow_any(const struct scope_set *s, const char *needed)
{
	return s && needed && scope_set_has(s, needed, false);
}

bool scopes_allow_all(const struct scope_set *s, const char *needed)
{
	return s && needed && scope_set_has(s, needed, true);
}

/* The user part of a !server=u/x value, in buf. */
static const char *scope_server_user(const char *value, char *buf, size_t size)
{
	size_t n = strcspn(value, "/");

	if (n >= size)
		return NULL;
	memcpy(buf, value, n);
	buf[n] = '\0';
	return buf;
}

static bool scope_covers(const struct scope_grant *have, const struct scope_grant *want,
			 scopes_in_group_fn in_group, void *ctx)
{
	char ubuf[SCOPE_VALUE_MAX];
	const char *user = NULL;

	if (have->def != want->def)
		return false;
	if (have->filter == SF_NONE || scope_grant_eq(have, want))
		return true;
	if (want->filter == SF_USER)
		user = want->value;
	else if (want->filter == SF_SERVER)
		user = scope_server_user(want->value, ubuf, sizeof(ubuf));
	if (!user)
		return false;
	if (have->filter == SF_USER)
		return want->filter == SF_SERVER && !strcmp(have->value, user);
	return have->filter == SF_GROUP && in_group && in_group(ctx, user, have->value);
}

static bool scope_set_covers(const struct scope_set *have, const struct scope_grant *want,
			     scopes_in_group_fn in_group, void *ctx)
{
	for (; have; have = have->and) {
		bool ok = false;

		for (size_t i = 0; i < have->n && !ok; i++)
			ok = scope_covers(&have->g[i], want, in_group, ctx);
		if (!ok)
			return false;
	}
	return true;
}

static char *scope_grant_str(const struct scope_grant *g)
{
	static const char *const keys[] = { "", "user", "server", "group" };

	if (g->filter == SF_NONE)
		return xstrdup(g->def->name);
	return xasprintf("%s!%s=%s", g->def->name, keys[g->filter], g->value);
}

bool scopes_subset(const struct scope_set *requested, const struct scope_set *have,
		   scopes_in_group_fn in_group, void *ctx, char **missing)
{
	if (!requested)
		return true;
	for (size_t i = 0; i < requested->n; i++) {
		if (have && scope_set_covers(have, &requested->g[i], in_group, ctx))
			continue;
		if (missing)
			*missing = scope_grant_str(&requested->g[i]);
		return false;
	}
	return true;
}

static int scope_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the grants of `from` covered by `other` (NULL = all) to v. */
static size_t scope_collect(const struct scope_set *from, const struct scope_set *other,
			    char **v, size_t n)
{
	for (size_t i = 0; i < from->n; i++)
		if (!other || scope_set_covers(other, &from->g[i], NULL, NULL))
			v[n++] = scope_grant_str(&from->g[i]);
	return n;
}

char *scopes_to_string(const struct scope_set *s)
{
	size_t cap, n = 0, len = 1;
	char **v, *out, *p;

	if (!s)
		return xstrdup("");
	cap = s->n + (s->and ? s->and->n : 0) + 1;
	v = xcalloc(cap, sizeof(*v));
	n = scope_collect(s, s->and, v, n);
	if (s->and)
		n = scope_collect(s->and, s, v, n);
	qsort(v, n, sizeof(*v), scope_cmp_str);
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	p = out = xcalloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i && !strcmp(v[i], v[i - 1]))
			continue;
		p += snprintf(p, len - (size_t)(p - out), "%s%s", p == out ? "" : " ", v[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return out;
}

int scopes_check_admin_change(bool actor_admin, bool target_admin, bool sets_admin,
			      struct err **err)
{
	if (actor_admin)
		return 0;
	if (sets_admin)
		return err_set_http(err, 403, EACCES, "only admins can grant admin");
	if (target_admin)
		return err_set_http(err, 403, EACCES, "only admins can modify admins");
	return 0;
}
