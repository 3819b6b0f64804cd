/*
 * api_tokens: /hub/api/users/{name}/tokens[/{id}] (JupyterHub
 * UserTokenListAPIHandler, UserTokenAPIHandler). Secrets are returned once,
 * at creation (TOK-2); ids are "a<row id>" as in JupyterHub.
 */
#define LOG_PREFIX "gateway/api_tokens: "

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/scopes.h"
#include "gateway/users.h"

static cJSON *split_json(const char *text)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = text ? text : "";
	size_t n;

	while (*p) {
		n = strcspn(p, " ");
		if (n) {
			char *one = xstrndup(p, n);

			cJSON_AddItemToArray(a, cJSON_CreateString(one));
			free(one);
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return a;
}

static cJSON *token_model(const char *user, const struct users_token *t)
{
	cJSON *j = cJSON_CreateObject();
	char id[32];

	snprintf(id, sizeof(id), "a%lld", (long long)t->id);
	cJSON_AddStringToObject(j, "user", user);
	cJSON_AddStringToObject(j, "id", id);
	cJSON_AddStringToObject(j, "kind", "api_token");
	cJSON_AddItemToObject(j, "roles", cJSON_CreateArray());
	cJSON_AddItemToObject(j, "scopes", split_json(t->scopes));
	cJSON_AddItemToObject(j, "created", hub__iso_time(t->created));
	cJSON_AddItemToObject(j, "last_activity", hub__iso_time(t->last_activity));
	cJSON_AddItemToObject(j, "expires_at", hub__iso_time(t->expires_at));
	cJSON_AddStringToObject(j, "note", t->note);
	cJSON_AddNullToObject(j, "session_id");
	cJSON_AddStringToObject(j, "oauth_client",
				t->kind == USERS_TOKEN_SERVER ? "server" : "nbgate");
	return j;
}

/* Loads the user named by the route; sends 404 and returns NULL if none. */
static struct users_user *route_user(struct gw *gw, struct gw_conn *c, const char *name)
{
	struct users_user *u = NULL;
	struct err *err = NULL;
	int r = users_get(gw->db, name, &u, &err);

	if (r < 0)
		hub__send_err(c, &err);
	else if (r == 0)
		hub__send_error(c, 404, "No such user: %s", name);
	return r > 0 ? u : NULL;
}

/* "a123" -> 123; -1 when malformed. */
static int64_t parse_token_id(const char *s)
{
	char *end;
	long long v;

	if (s[0] != 'a' || s[1] < '0' || s[1] > '9')
		return -1;
	errno = 0;
	v = strtoll(s + 1, &end, 10);
	return errno || *end || v <= 0 ? -1 : (int64_t)v;
}

void hub__api_tokens_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct users_token **v = NULL;
	struct users_user *u;
	struct err *err = NULL;
	cJSON *j, *a;
	size_t n = 0, i;

	if (!hub__allow(gw, c, req, "read:tokens", m->arg[0], NULL, false))
		return;
	u = route_user(gw, c, m->arg[0]);
	if (!u)
		return;
	if (users_token_list(gw->db, u->id, &v, &n, &err) < 0) {
		hub__send_err(c, &err);
		users_user_free(u);
		return;
	}
	j = cJSON_CreateObject();
	a = cJSON_AddArrayToObject(j, "api_tokens");
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(a, token_model(u->name, v[i]));
	users_token_freev(v, n);
	users_user_free(u);
	hub__send_json(c, 200, j);
}

/* Space-separated scopes from "scopes" and "roles" (NULL = inherit). */
static int requested_scopes(const cJSON *body, char **out, struct err **err)
{
	char **scopes = NULL, **roles = NULL;
	const char *role;
	struct buf b;
	size_t i;
	int r = 0;

	*out = NULL;
	if (json_get_string_array(body, "scopes", false, &scopes, err) < 0 ||
	    json_get_string_array(body, "roles", false, &roles, err) < 0) {
		xstrv_free(scopes);
		return -1;
	}
	buf_init(&b, 65536);
	for (i = 0; scopes && scopes[i]; i++)
		buf_appendf(&b, "%s%s", b.len ? " " : "", scopes[i]);
	for (i = 0; roles && roles[i] && r == 0; i++) {
		role = scopes_role(roles[i]);
		if (!role)
			r = err_set_http(err, 400, EINVAL, "role '%s' does not exist", roles[i]);
		else
			buf_appendf(&b, "%s%s", b.len ? " " : "", role);
	}
	xstrv_free(scopes);
	xstrv_free(roles);
	if (r == 0 && (scopes || roles))
		*out = buf_detach(&b, NULL);
	buf_release(&b);
	return r;
}

/* Validates the body and creates the token; *model gets the answer. */
static int create_token(struct gw *gw, const struct gw_request *req,
			const struct users_user *u, const cJSON *body, cJSON **model,
			struct err **err)
{
	struct users_token_spec spec = { .user_id = u->id, .kind = USERS_TOKEN_API,
					 .max_expires_in_ms = gw->cfg->token_max_expires_in };
	cleanup_free char *scopes = NULL, *token = NULL, *note = NULL;
	struct users_token *t = NULL;
	const char *n = NULL;
	int64_t expires = 0, id;

	if (body && (json_get_string(body, "note", false, &n, err) < 0 ||
		     json_get_int(body, "expires_in", false, INT64_MIN / 1000, INT64_MAX / 1000,
				  &expires, err) < 0 ||
		     requested_scopes(body, &scopes, err) < 0))
		return -1;
	if (body && expires <= 0 && cJSON_GetObjectItemCaseSensitive(body, "expires_in") &&
	    !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "expires_in")))
		return err_set_http(err, 400, EINVAL, "token expires_in must be positive");
	note = n && *n ? xstrdup(n) : strcmp(req->who->user, u->name) == 0 ?
		xstrdup("Requested via api") : xasprintf("Requested via api by user %s",
							 req->who->user);
	spec.note = note;
	spec.scopes = scopes;
	spec.expires_in_ms = expires * 1000;
	/* TOK-4: neither more than the owner holds nor more than the requester */
	if (auth_check_token_grant(gw->db, req->who, u, scopes, err) < 0 ||
	    users_token_create(gw->db, auth_key(gw->auth), &spec, time_now_ms(), &token, &id,
			       err) < 0 ||
	    users_token_get(gw->db, u->id, id, &t, err) <= 0)
		return err_set(err, EIO, "token vanished after creation");
	*model = token_model(u->name, t);
	cJSON_AddStringToObject(*model, "token", token);
	explicit_bzero(token, strlen(token));
	users_token_free(t);
	db_audit(gw->db, req->who->user, "token.create", u->name, NULL);
	return 0;
}

void hub__api_tokens_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct users_user *u = NULL;
	struct err *err = NULL;
	cJSON *model = NULL;
	bool ok;

	if (!hub__allow(gw, c, req, "tokens", m->arg[0], NULL, false))
		return;
	body = hub__json_body(c, req, true, &ok);
	if (!ok)
		return;
	if (body && !cJSON_IsObject(body)) {
		hub__send_error(c, 400, "Body must be a JSON dict or empty");
		return;
	}
	u = route_user(gw, c, m->arg[0]);
	if (!u)
		return;
	if (create_token(gw, req, u, body, &model, &err) < 0)
		hub__send_err(c, &err);
	else
		hub__send_json(c, 201, model);
	users_user_free(u);
}

/* Finds token m->arg[1] of user m->arg[0]; sends 404 when absent. */
static struct users_token *route_token(struct gw *gw, struct gw_conn *c,
				       const struct hub_match *m, struct users_user **uo)
{
	int64_t id = parse_token_id(m->arg[1]);
	struct users_token *t = NULL;
	struct err *err = NULL;
	int r = 0;

	*uo = route_user(gw, c, m->arg[0]);
	if (!*uo)
		return NULL;
	if (id > 0)
		r = users_token_get(gw->db, (*uo)->id, id, &t, &err);
	if (r < 0)
		hub__send_err(c, &err);
	else if (r == 0)
		hub__send_error(c, 404, "No such token %s for user %s", m->arg[1], m->arg[0]);
	return t;
}

void hub__api_token_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct hub_match *m)
{
	struct users_user *u = NULL;
	struct users_token *t;

	if (!hub__allow(gw, c, req, "read:tokens", m->arg[0], NULL, false))
		return;
	t = route_token(gw, c, m, &u);
	if (t)
		hub__send_json(c, 200, token_model(u->name, t));
	users_token_free(t);
	users_user_free(u);
}

void hub__api_token_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	struct users_user *u = NULL;
	struct users_token *t;
	struct err *err = NULL;
	char handle[40];

	if (!hub__allow(gw, c, req, "tokens", m->arg[0], NULL, false))
		return;
	t = route_token(gw, c, m, &u);
	if (t && users_token_revoke(gw->db, u->id, t->id, &err) < 0) {
		hub__send_err(c, &err);
	} else if (t) {
		/* TOK-6: connections authenticated by it go now */
		snprintf(handle, sizeof(handle), "t:%lld", (long long)t->id);
		gw_close_sessions_of(gw, handle);
		db_audit(gw->db, req->who->user, "token.revoke", u->name, m->arg[1]);
		hub__send_empty(c, 204);
	}
	users_token_free(t);
	users_user_free(u);
}
