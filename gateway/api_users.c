/*
 * api_users: /hub/api/, /hub/api/user, /hub/api/users[/{name}] and
 * /hub/api/users/{name}/activity, in JupyterHub's shapes
 * (jupyterhub/apihandlers/users.py, docs/source/_static/rest-api.yml).
 */
#define LOG_PREFIX "gateway/api_users: "

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/db.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/scopes.h"
#include "gateway/servers.h"
#include "gateway/users.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

void hub__api_root(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		   const struct hub_match *m)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddStringToObject(j, "version", NBGATE_VERSION);
	hub__send_json(c, 200, j);
}

static cJSON *strv_json(char *const *v)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; v && v[i]; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

/* Adds "servers" (name -> model) and the default server's summary. */
/* Listed in a user's servers: live ones, and suspended ones (they come
 * back on the next request, unlike stopped ones), that the caller may read. */
static bool server_listed(const struct gw_request *req, const char *name,
			  const struct spawner_server *s)
{
	if (strcmp(s->user, name) != 0 ||
	    (!spawner_state_is_live(s->state) && s->state != SPAWNER_SUSPENDED))
		return false;
	return scopes_allow(req->who->scopes, "read:servers", name, s->name,
			    (const char *const *)req->who->groups) ||
	       strcmp(name, req->who->user) == 0;
}

/* JupyterHub's "pending" of the default server: spawn or stop under way. */
static const char *pending_of(const struct spawner_server *s)
{
	if (s->state == SPAWNER_STARTING || s->state == SPAWNER_RESTORING)
		return "spawn";
	if (s->state == SPAWNER_STOPPING || s->state == SPAWNER_CHECKPOINTING)
		return "stop";
	return NULL;
}

static void add_servers(struct gw *gw, const struct gw_request *req, const char *name,
			cJSON *model)
{
	cJSON *servers = cJSON_CreateObject();
	const char *pending = NULL;
	struct spawner_server *s;
	char *url = NULL;

	for (s = gw->spawner ? spawner_server_next(gw->spawner, NULL) : NULL; s;
	     s = spawner_server_next(gw->spawner, s)) {
		if (!server_listed(req, name, s))
			continue;
		cJSON_AddItemToObject(servers, s->name, hub__server_model(s));
		if (s->name[0])
			continue;
		if (s->state == SPAWNER_RUNNING)
			url = spawner_base_url(name, "");
		pending = pending_of(s);
	}
	cJSON_AddItemToObject(model, "server", url ? cJSON_CreateString(url) : cJSON_CreateNull());
	cJSON_AddItemToObject(model, "pending",
			      pending ? cJSON_CreateString(pending) : cJSON_CreateNull());
	cJSON_AddItemToObject(model, "servers", servers);
	free(url);
}

static cJSON *user_model_of(struct gw *gw, const struct gw_request *req,
			    const struct users_user *u)
{
	cJSON *j = cJSON_CreateObject(), *roles = cJSON_CreateArray();
	struct err *err = NULL;
	char **groups = NULL;

	if (users_groups_of(gw->db, u->id, &groups, &err) < 0)
		err_free(&err);
	cJSON_AddStringToObject(j, "kind", "user");
	cJSON_AddStringToObject(j, "name", u->name);
	cJSON_AddBoolToObject(j, "admin", u->admin);
	cJSON_AddItemToArray(roles, cJSON_CreateString(u->admin ? "admin" : "user"));
	cJSON_AddItemToObject(j, "roles", roles);
	cJSON_AddItemToObject(j, "groups", strv_json(groups));
	cJSON_AddItemToObject(j, "created", hub__iso_time(u->created));
	cJSON_AddItemToObject(j, "last_activity", hub__iso_time(u->last_activity));
	cJSON_AddNullToObject(j, "auth_state");
	add_servers(gw, req, u->name, j);
	xstrv_free(groups);
	return j;
}

struct cJSON *hub__user_model(struct gw *gw, const struct gw_request *req, const char *name)
{
	struct users_user *u = NULL;
	struct err *err = NULL;
	cJSON *j;

	if (users_get(gw->db, name, &u, &err) <= 0) {
		err_free(&err);
		return NULL;
	}
	j = user_model_of(gw, req, u);
	users_user_free(u);
	return j;
}

/* Splits "a b c" into a JSON array of strings. */
static cJSON *scopes_json(const struct scope_set *s)
{
	char *text = scopes_to_string(s), *p = text, *sp;
	cJSON *a = cJSON_CreateArray();

	while (p && *p) {
		sp = strchr(p, ' ');
		if (sp)
			*sp = '\0';
		if (*p)
			cJSON_AddItemToArray(a, cJSON_CreateString(p));
		p = sp ? sp + 1 : NULL;
	}
	free(text);
	return a;
}

void hub__api_self(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		   const struct hub_match *m)
{
	const struct auth_ident *who = req->who;
	cJSON *j = hub__user_model(gw, req, who->user);
	char *id;

	if (!j) {
		hub__send_error(c, 403, "missing or invalid credentials");
		return;
	}
	id = xasprintf("a%lld", (long long)who->handle_id);
	if (who->via == AUTH_VIA_TOKEN) {
		cJSON_AddStringToObject(j, "token_id", id);
		cJSON_AddNullToObject(j, "session_id");
	} else {
		cJSON_AddNullToObject(j, "token_id");
		cJSON_AddNumberToObject(j, "session_id", (double)who->handle_id);
	}
	cJSON_AddItemToObject(j, "scopes", scopes_json(who->scopes));
	free(id);
	hub__send_json(c, 200, j);
}

void hub__api_users_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const struct hub_match *m)
{
	struct users_user **v = NULL;
	struct err *err = NULL;
	cJSON *a;
	size_t n = 0, i;
	char **groups;
	bool ok;

	if (users_list(gw->db, &v, &n, &err) < 0) {
		hub__send_err(c, &err);
		return;
	}
	a = cJSON_CreateArray();
	for (i = 0; i < n; i++) {
		/* filtered list: only users the caller may list (JupyterHub) */
		groups = NULL;
		if (users_groups_of(gw->db, v[i]->id, &groups, &err) < 0)
			err_free(&err);
		ok = scopes_allow(req->who->scopes, "list:users", v[i]->name, NULL,
				  (const char *const *)groups);
		xstrv_free(groups);
		if (ok)
			cJSON_AddItemToArray(a, user_model_of(gw, req, v[i]));
	}
	users_user_freev(v, n);
	hub__send_json(c, 200, a);
}

/* Creates one user (normalised name) unless present; 1 created, 0 existed. */
static int create_one(struct gw *gw, const char *actor, const char *name, bool admin,
		      struct err **err)
{
	int64_t id;
	int r = users_create(gw->db, name, admin, NULL, time_now_ms(), &id, err);

	if (r < 0 && (*err)->code == EEXIST) {
		err_free(err);
		return 0;
	}
	if (r >= 0)
		db_audit(gw->db, actor, "user.create", name, admin ? "admin" : NULL);
	return r < 0 ? r : 1;
}

/* Reads {"usernames": [...], "admin": bool}; names normalised in place. */
static int users_create_body(const struct gw_request *req, const cJSON *body, char ***names,
			     bool *admin, struct err **err)
{
	char *norm;
	size_t i;

	if (json_get_string_array(body, "usernames", true, names, err) < 0 ||
	    json_get_bool(body, "admin", false, admin, err) < 0)
		return -1;
	if (!(*names)[0])
		return err_set_http(err, 400, EINVAL, "Must specify at least one user to create");
	if (*admin && scopes_check_admin_change(hub__acts_as_admin(req), false, true, err) < 0)
		return -1;
	for (i = 0; (*names)[i]; i++) { /* validate all before creating any */
		if (users_normalize_name((*names)[i], &norm, err) < 0)
			return -1;
		free((*names)[i]);
		(*names)[i] = norm;
	}
	return 0;
}

void hub__api_users_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct err *err = NULL;
	bool ok, admin = false;
	char **names = NULL;
	cJSON *out = NULL;
	size_t i;

	body = hub__json_body(c, req, false, &ok);
	if (!ok)
		return;
	if (users_create_body(req, body, &names, &admin, &err) == 0) {
		out = cJSON_CreateArray();
		for (i = 0; !err && names[i]; i++)
			if (create_one(gw, req->who->user, names[i], admin, &err) > 0)
				cJSON_AddItemToArray(out, hub__user_model(gw, req, names[i]));
		if (!err && cJSON_GetArraySize(out) == 0)
			err_set_http(&err, 409, EEXIST, "All %zu users already exist", i);
	}
	xstrv_free(names);
	if (err) {
		cJSON_Delete(out);
		hub__send_err(c, &err);
		return;
	}
	hub__send_json(c, 201, out);
}

void hub__api_user_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
		       const struct hub_match *m)
{
	const char *name = m->arg[0];
	cJSON *j;

	if (!hub__allow(gw, c, req, "read:users:name", name, NULL, true))
		return;
	j = hub__user_model(gw, req, name);
	if (!j) {
		hub__send_error(c, 404, "no such user '%s'", name);
		return;
	}
	hub__send_json(c, 200, j);
}

void hub__api_user_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct err *err = NULL;
	bool ok, admin = false;
	char *name = NULL;
	int r;

	body = hub__json_body(c, req, true, &ok);
	if (!ok)
		return;
	if ((body && json_get_bool(body, "admin", false, &admin, &err) < 0) ||
	    users_normalize_name(m->arg[0], &name, &err) < 0 ||
	    !hub__allow(gw, c, req, "admin:users", name, NULL, false) ||
	    (admin && scopes_check_admin_change(hub__acts_as_admin(req), false, true, &err) < 0))
		goto out;
	r = create_one(gw, req->who->user, name, admin, &err);
	if (r == 0)
		err_set_http(&err, 409, EEXIST, "User %s already exists", name);
	else if (r > 0)
		hub__send_json(c, 201, hub__user_model(gw, req, name));
out:
	if (err)
		hub__send_err(c, &err);
	free(name);
}

/* Applies a PATCH body {"admin": bool} ("name" renames are refused). */
static int patch_apply(struct gw *gw, const struct gw_request *req,
		       const struct users_user *u, const cJSON *body, struct err **err)
{
	const cJSON *it;
	bool admin;

	cJSON_ArrayForEach(it, body)
		if (strcmp(it->string, "admin") != 0 && strcmp(it->string, "name") != 0)
			return err_set_http(err, 400, EINVAL, "Invalid JSON keys: '%s'",
					    it->string);
	if (cJSON_GetObjectItemCaseSensitive(body, "name") &&
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "name")))
		return err_set_http(err, 400, EINVAL, "user.name must be a string");
	if (cJSON_GetObjectItemCaseSensitive(body, "name") &&
	    strcmp(cJSON_GetObjectItemCaseSensitive(body, "name")->valuestring, u->name) != 0)
		return err_set_http(err, 400, EINVAL, "renaming users is not supported");
	admin = u->admin;
	if (json_get_bool(body, "admin", false, &admin, err) < 0)
		return -1;
	/* JH-10: only admins modify admins or grant admin */
	if (scopes_check_admin_change(hub__acts_as_admin(req), u->admin, admin != u->admin, err) < 0)
		return -1;
	if (admin != u->admin && users_set_admin(gw->db, u->id, admin, err) < 0)
		return -1;
	if (admin != u->admin)
		db_audit(gw->db, req->who->user, admin ? "user.admin.grant" : "user.admin.revoke",
			 u->name, NULL);
	return 0;
}

void hub__api_user_patch(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			 const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct users_user *u = NULL;
	struct err *err = NULL;
	bool ok;
	int r;

	if (!hub__allow(gw, c, req, "admin:users", m->arg[0], NULL, false))
		return;
	body = hub__json_body(c, req, false, &ok);
	if (!ok)
		return;
	if (!cJSON_IsObject(body)) {
		hub__send_error(c, 400, "Invalid JSON data: expected an object");
		return;
	}
	r = users_get(gw->db, m->arg[0], &u, &err);
	if (r == 0)
		err_set_http(&err, 404, ENOENT, "no such user '%s'", m->arg[0]);
	if (r > 0 && patch_apply(gw, req, u, body, &err) == 0)
		hub__send_json(c, 200, hub__user_model(gw, req, u->name));
	if (err)
		hub__send_err(c, &err);
	users_user_free(u);
}

/* Stops and forgets every server of user (best effort for stopped ones). */
static int drop_servers(struct gw *gw, const char *user, struct err **err)
{
	struct spawner_server *s;
	bool again = true;

	for (s = spawner_server_next(gw->spawner, NULL); s; s = spawner_server_next(gw->spawner, s))
		if (strcmp(s->user, user) == 0 && spawner_state_is_live(s->state))
			return err_set_http(err, 400, EBUSY,
					    "%s's server '%s' is running; stop it first", user,
					    s->name);
	while (again) { /* removal invalidates the iterator: restart each time */
		again = false;
		for (s = spawner_server_next(gw->spawner, NULL); s;
		     s = spawner_server_next(gw->spawner, s)) {
			if (strcmp(s->user, user) != 0)
				continue;
			if (spawner_server_remove(gw->spawner, user, s->name, err) < 0)
				return -1;
			again = true;
			break;
		}
	}
	return 0;
}

void hub__api_user_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct users_user *u = NULL;
	struct err *err = NULL;
	int r;

	if (!hub__allow(gw, c, req, "delete:users", m->arg[0], NULL, false))
		return;
	r = users_get(gw->db, m->arg[0], &u, &err);
	if (r == 0)
		err_set_http(&err, 404, ENOENT, "no such user '%s'", m->arg[0]);
	else if (r > 0 && strcmp(u->name, req->who->user) == 0)
		err_set_http(&err, 400, EINVAL, "Cannot delete yourself!");
	else if (r > 0 && scopes_check_admin_change(hub__acts_as_admin(req), u->admin, false, &err) == 0 &&
		 drop_servers(gw, u->name, &err) == 0 && users_delete(gw->db, u->id, &err) >= 0) {
		char handle[32];

		/* sessions and tokens went with the row (ON DELETE CASCADE); the
		 * connections they opened must end too */
		snprintf(handle, sizeof(handle), "u:%lld", (long long)u->id);
		gw_close_sessions_of(gw, handle);
		db_audit(gw->db, req->who->user, "user.delete", u->name, NULL);
		hub__send_empty(c, 204);
	}
	if (err)
		hub__send_err(c, &err);
	users_user_free(u);
}

/* "2024-01-02T03:04:05[.fff](Z|+00:00)" -> ms; -1 when malformed. */
static int64_t parse_iso(const char *s)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ms = 0, scale = 100;

	if (!p)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += (*p - '0') * scale;
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0 && *p)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Activity time from a model (default now; never in the future). */
static int activity_of(const cJSON *o, int64_t now, int64_t *out, struct err **err)
{
	const char *s = NULL;
	int r = json_get_string(o, "last_activity", false, &s, err);

	*out = now;
	if (r <= 0)
		return r;
	*out = parse_iso(s);
	if (*out < 0)
		return err_set_http(err, 400, EINVAL, "last_activity: invalid timestamp '%s'", s);
	if (*out > now)
		*out = now;
	return 0;
}

static int touch_servers(struct gw *gw, const char *user, const cJSON *servers, int64_t now,
			 struct err **err)
{
	struct spawner_server *srv;
	const cJSON *it;
	int64_t t;

	cJSON_ArrayForEach(it, servers) {
		srv = spawner_server_find(gw->spawner, user, it->string);
		if (!srv)
			return err_set_http(err, 400, ENOENT, "No such server '%s' for user %s",
					    it->string, user);
		if (activity_of(it, now, &t, err) < 0)
			return -1;
		if (t > srv->last_activity_ms)
			spawner_server_touch(gw->spawner, srv, t, "api");
	}
	return 0;
}

void hub__api_user_activity(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct users_user *u = NULL;
	int64_t now = time_now_ms(), t = now;
	struct err *err = NULL;
	bool ok;
	int r;

	if (!hub__allow(gw, c, req, "users:activity", m->arg[0], NULL, false))
		return;
	body = hub__json_body(c, req, true, &ok);
	if (!ok)
		return;
	r = users_get(gw->db, m->arg[0], &u, &err);
	if (r == 0)
		err_set_http(&err, 404, ENOENT, "no such user '%s'", m->arg[0]);
	if (r > 0 && body && activity_of(body, now, &t, &err) == 0)
		touch_servers(gw, u->name, cJSON_GetObjectItemCaseSensitive(body, "servers"), now,
			      &err);
	if (r > 0 && !err && users_touch(gw->db, u->id, t, &err) >= 0)
		hub__send_json(c, 200, cJSON_CreateObject());
	if (err)
		hub__send_err(c, &err);
	users_user_free(u);
}
