/*
 * api_groups: /hub/api/groups[/{name}[/users]] (JupyterHub
 * apihandlers/groups.py shapes).
 */
#define LOG_PREFIX "gateway/api_groups: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
#include "gateway/users.h"

static cJSON *group_model(struct gw *gw, const char *name, struct err **err)
{
	cJSON *j, *users;
	char **members = NULL;
	size_t i;

	if (users_group_members(gw->db, name, &members, err) < 0)
		return NULL;
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "kind", "group");
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddItemToObject(j, "roles", cJSON_CreateArray());
	users = cJSON_AddArrayToObject(j, "users");
	for (i = 0; members && members[i]; i++)
		cJSON_AddItemToArray(users, cJSON_CreateString(members[i]));
	cJSON_AddItemToObject(j, "properties", cJSON_CreateObject());
	xstrv_free(members);
	return j;
}

/* Scope check on a group; sends 403 (or 404 when hide) on refusal. */
static bool allow_group(struct gw_conn *c, const struct gw_request *req, const char *needed,
			const char *group, bool hide)
{
	if (scopes_allow_group(req->who->scopes, needed, group))
		return true;
	if (hide)
		hub__send_error(c, 404, "No such group: %s", group);
	else
		hub__send_error(c, 403, "action is not authorized with current scopes; requires "
			       "any of [%s]", needed);
	return false;
}

/* 1 exists; 0 -> 404 sent; < 0 -> error sent. */
static int group_exists(struct gw *gw, struct gw_conn *c, const char *name)
{
	struct err *err = NULL;
	int r = users_group_exists(gw->db, name, &err);

	if (r < 0)
		hub__send_err(c, &err);
	else if (r == 0)
		hub__send_error(c, 404, "No such group: %s", name);
	return r;
}

static void send_model(struct gw *gw, struct gw_conn *c, int status, const char *name)
{
	struct err *err = NULL;
	cJSON *j = group_model(gw, name, &err);

	if (j)
		hub__send_json(c, status, j);
	else
		hub__send_err(c, &err);
}

void hub__api_groups_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct err *err = NULL;
	char **names = NULL;
	cJSON *a, *j;
	size_t i;

	if (users_group_list(gw->db, &names, &err) < 0) {
		hub__send_err(c, &err);
		return;
	}
	a = cJSON_CreateArray();
	for (i = 0; names[i]; i++) {
		if (!scopes_allow_group(req->who->scopes, "list:groups", names[i]))
			continue;
		j = group_model(gw, names[i], &err);
		if (!j)
			break;
		cJSON_AddItemToArray(a, j);
	}
	xstrv_free(names);
	if (err) {
		cJSON_Delete(a);
		hub__send_err(c, &err);
		return;
	}
	hub__send_json(c, 200, a);
}

void hub__api_group_get(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const struct hub_match *m)
{
	if (!allow_group(c, req, "read:groups", m->arg[0], true))
		return;
	if (group_exists(gw, c, m->arg[0]) > 0)
		send_model(gw, c, 200, m->arg[0]);
}

/* Applies body {"users": [...]} to group: add or remove each member. */
static int apply_users(struct gw *gw, const char *group, const cJSON *body, bool add,
		       bool required, struct err **err)
{
	char **users = NULL, *norm = NULL;
	size_t i;
	int r = 0;

	if (body && json_get_string_array(body, "users", required, &users, err) < 0)
		return -1;
	if (!body && required)
		return err_set_http(err, 400, EINVAL, "field 'users' is required");
	for (i = 0; users && users[i] && r >= 0; i++) {
		r = users_normalize_name(users[i], &norm, err);
		if (r >= 0)
			r = add ? users_group_add(gw->db, group, norm, err) :
				  users_group_remove(gw->db, group, norm, err);
		if (r == 0 && add)
			r = err_set_http(err, 400, ENOENT, "No such user: %s", norm);
		free(norm);
		norm = NULL;
	}
	xstrv_free(users);
	return r < 0 ? r : 0;
}

void hub__api_group_create(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct err *err = NULL;
	char *name = NULL;
	int64_t id;
	bool ok;

	if (users_normalize_name(m->arg[0], &name, &err) < 0 ||
	    !allow_group(c, req, "admin:groups", name, false))
		goto out;
	body = hub__json_body(c, req, true, &ok);
	if (!ok)
		goto out;
	if (users_group_exists(gw->db, name, &err) > 0)
		err_set_http(&err, 409, EEXIST, "Group %s already exists", name);
	if (err)
		goto out;
	if (users_group_create(gw->db, name, time_now_ms(), &id, &err) < 0 ||
	    apply_users(gw, name, body, true, false, &err) < 0)
		goto out;
	db_audit(gw->db, req->who->user, "group.create", name, NULL);
	send_model(gw, c, 201, name);
out:
	if (err)
		hub__send_err(c, &err);
	free(name);
}

void hub__api_group_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	struct err *err = NULL;
	int r;

	if (!allow_group(c, req, "delete:groups", m->arg[0], false))
		return;
	r = users_group_delete(gw->db, m->arg[0], &err);
	if (r < 0) {
		hub__send_err(c, &err);
	} else if (r == 0) {
		hub__send_error(c, 404, "No such group: %s", m->arg[0]);
	} else {
		db_audit(gw->db, req->who->user, "group.delete", m->arg[0], NULL);
		hub__send_empty(c, 204);
	}
}

static void group_users(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			const char *group, bool add)
{
	cleanup_json cJSON *body = NULL;
	struct err *err = NULL;
	bool ok;

	if (!allow_group(c, req, "groups", group, false) || group_exists(gw, c, group) <= 0)
		return;
	body = hub__json_body(c, req, false, &ok);
	if (!ok)
		return;
	if (apply_users(gw, group, body, add, true, &err) < 0) {
		hub__send_err(c, &err);
		return;
	}
	db_audit(gw->db, req->who->user, add ? "group.users.add" : "group.users.remove", group,
		 NULL);
	send_model(gw, c, 200, group);
}

void hub__api_group_users_add(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m)
{
	group_users(gw, c, req, m->arg[0], true);
}

void hub__api_group_users_del(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m)
{
	group_users(gw, c, req, m->arg[0], false);
}
