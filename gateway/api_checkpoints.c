/*
 * api_checkpoints: checkpoint, resume, and the checkpoint catalog of a
 * user's default or named server (issue 4 item 5; docs/checkpoint.md "API
 * and UI"). nbgate's own nouns, under the JupyterHub-shaped server URLs:
 *
 *   POST   .../server[s/{name}]/checkpoint       {"mode": "criu"|"commit"|"stop"}
 *   POST   .../server[s/{name}]/resume
 *   GET    .../server[s/{name}]/checkpoints
 *   DELETE .../server[s/{name}]/checkpoints/{id}
 *
 * Scopes as for starting and stopping: `servers` to act, `read:servers`
 * to list. Every action writes an audit row.
 */
#define LOG_PREFIX "gateway/api_checkpoints: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/servers.h"
#include "gateway/users.h"
#include "spawner/spawner.h"

/* The server of a route: arg[1] when the route has one ("" = default). */
static int ck_target(const struct hub_match *m, bool has_id, char **server, struct err **err)
{
	size_t nserver = has_id ? 3 : 2;

	return users_normalize_server_name(m->narg >= nserver ? m->arg[1] : "", server, err);
}

/* {"mode": ...} or nothing; any other field is a 400 naming it. */
static int parse_mode(const cJSON *body, int *mode, struct err **err)
{
	const cJSON *it;

	*mode = SPAWNER_CKPT_CRIU;
	if (!body)
		return 0;
	if (!cJSON_IsObject(body))
		return err_set_http(err, 400, EINVAL, "the body must be a JSON object");
	cJSON_ArrayForEach(it, body) {
		if (strcmp(it->string, "mode") != 0) {
			if (strlen(it->string) > 64 || !json_utf8_valid(it->string,
								       strlen(it->string)))
				return err_set_http(err, 400, EINVAL,
						    "unknown field (allowed: mode)");
			return err_set_http(err, 400, EINVAL, "%s: unknown field (allowed: mode)",
					    it->string);
		}
		if (!cJSON_IsString(it))
			return err_set_http(err, 400, EINVAL, "mode must be a string");
		*mode = spawner_ckpt_mode_parse(it->valuestring);
		if (*mode < 0)
			return err_set_http(err, 400, EINVAL, "mode: unknown mode%s%s%s (allowed: "
					    "criu, commit, stop)",
					    strlen(it->valuestring) <= 32 ? " '" : "",
					    strlen(it->valuestring) <= 32 ? it->valuestring : "",
					    strlen(it->valuestring) <= 32 ? "'" : "");
	}
	return 0;
}

/* The mode actually under way: the spawner falls back at once when the
 * backend cannot do the asked one (criu -> commit -> stop). */
static const char *mode_now(struct gw *gw, const struct spawner_server *srv, int asked)
{
	struct spawner_checkpoint *v = NULL;
	struct err *err = NULL;
	const char *name = spawner_ckpt_mode_name((enum spawner_ckpt_mode)asked);
	int n = 0;

	if (srv->state == SPAWNER_STOPPING || srv->state == SPAWNER_STOPPED)
		return spawner_ckpt_mode_name(SPAWNER_CKPT_STOP);
	if (spawner_checkpoints_list(gw->spawner, srv, &v, &n, &err) < 0) {
		err_free(&err);
		return name;
	}
	if (n > 0 && v[0].state && strcmp(v[0].state, "writing") == 0)
		name = spawner_ckpt_mode_name(v[0].mode);
	spawner_checkpoints_free(v, n);
	return name;
}

/* Audit detail: {"server": ..., <key>: <value>} as JSON text (owned). */
static char *audit_detail(const char *server, const char *key, const char *value)
{
	cJSON *j = cJSON_CreateObject();
	char *out;

	cJSON_AddStringToObject(j, "server", server);
	if (key)
		cJSON_AddStringToObject(j, key, value);
	out = json_print(j);
	cJSON_Delete(j);
	return out;
}

void hub__api_server_checkpoint(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
				const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct spawner_server *srv;
	struct err *err = NULL;
	char *server = NULL, *detail;
	int mode;
	bool ok;
	cJSON *j;

	if (ck_target(m, false, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "servers", m->arg[0], server, false))
		goto out;
	body = hub__json_body(c, req, true, &ok);
	if (!ok || parse_mode(body, &mode, &err) < 0)
		goto out; /* refused before anything starts */
	if (gw_servers_checkpoint(gw, m->arg[0], server, mode, "manual", &err) < 0)
		goto out;
	detail = audit_detail(server, "mode", spawner_ckpt_mode_name(mode));
	db_audit(gw->db, req->who->user, "server.checkpoint", m->arg[0], detail);
	free(detail);
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "state", srv ? spawner_state_name(srv->state) : "stopped");
	cJSON_AddStringToObject(j, "checkpoint_mode", srv ? mode_now(gw, srv, mode) :
				spawner_ckpt_mode_name(mode));
	hub__send_json(c, 202, j);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
}

void hub__api_server_resume(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			    const struct hub_match *m)
{
	struct spawner_server *srv;
	struct err *err = NULL;
	char *server = NULL, *detail;
	int r;
	cJSON *j;

	if (ck_target(m, false, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "servers", m->arg[0], server, false))
		goto out;
	r = gw_servers_resume(gw, m->arg[0], server, &err);
	if (r < 0)
		goto out;
	if (r == 0) {
		detail = audit_detail(server, NULL, NULL);
		db_audit(gw->db, req->who->user, "server.resume", m->arg[0], detail);
		free(detail);
	}
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "state", srv ? spawner_state_name(srv->state) : "stopped");
	hub__send_json(c, r == 1 ? 200 : 202, j);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
}

/* One catalog row as JSON. The image path is never shown (root's). */
static cJSON *checkpoint_json(const struct spawner_checkpoint *ck)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddNumberToObject(j, "id", (double)ck->id);
	cJSON_AddStringToObject(j, "mode", spawner_ckpt_mode_name(ck->mode));
	cJSON_AddStringToObject(j, "state", ck->state ? ck->state : "");
	cJSON_AddNumberToObject(j, "size", (double)ck->size_bytes);
	cJSON_AddItemToObject(j, "created", hub__iso_time(ck->created_ms));
	cJSON_AddItemToObject(j, "image", ck->image ? cJSON_CreateString(ck->image) :
				  cJSON_CreateNull());
	cJSON_AddItemToObject(j, "profile", ck->profile ? cJSON_CreateString(ck->profile) :
				  cJSON_CreateNull());
	cJSON_AddItemToObject(j, "reason", ck->reason ? cJSON_CreateString(ck->reason) :
				  cJSON_CreateNull());
	cJSON_AddItemToObject(j, "message", ck->message ? cJSON_CreateString(ck->message) :
				  cJSON_CreateNull());
	return j;
}

/* The server of (user, server) or NULL after sending 404. */
static struct spawner_server *find_or_404(struct gw *gw, struct gw_conn *c, const char *user,
					  const char *server)
{
	struct spawner_server *srv = spawner_server_find(gw->spawner, user, server);

	if (!srv)
		hub__send_error(c, 404, "%s has no server named '%s'", user, server);
	return srv;
}

void hub__api_checkpoints_list(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			       const struct hub_match *m)
{
	struct spawner_checkpoint *v = NULL;
	struct spawner_server *srv;
	struct err *err = NULL;
	char *server = NULL;
	cJSON *a;
	int n = 0;

	if (ck_target(m, false, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "read:servers", m->arg[0], server, false))
		goto out;
	srv = find_or_404(gw, c, m->arg[0], server);
	if (!srv || spawner_checkpoints_list(gw->spawner, srv, &v, &n, &err) < 0)
		goto out;
	a = cJSON_CreateArray();
	for (int i = 0; i < n; i++) /* newest first, as the spawner lists them */
		cJSON_AddItemToArray(a, checkpoint_json(&v[i]));
	spawner_checkpoints_free(v, n);
	hub__send_json(c, 200, a);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
}

/* A checkpoint id: decimal digits, 1..2^53 (ids are JSON numbers). */
static int64_t parse_id(const char *s)
{
	int64_t v = 0;

	if (!*s || strlen(s) > 16)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v > 0 ? v : -1;
}

void hub__api_checkpoint_delete(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
				const struct hub_match *m)
{
	struct spawner_server *srv;
	struct err *err = NULL;
	char *server = NULL, *detail;
	const char *ids = m->arg[m->narg - 1];
	int64_t id;

	if (ck_target(m, true, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "servers", m->arg[0], server, false))
		goto out;
	srv = find_or_404(gw, c, m->arg[0], server);
	if (!srv)
		goto out;
	id = parse_id(ids);
	if (id < 0) {
		err_set_http(&err, 404, ENOENT, "%s's server '%s' has no such checkpoint",
			     m->arg[0], server);
		goto out;
	}
	if (spawner_checkpoint_delete(gw->spawner, srv, id, &err) < 0) {
		if (!err->http && err->code == EBUSY)
			err->http = 409;
		goto out;
	}
	detail = audit_detail(server, "checkpoint", ids);
	db_audit(gw->db, req->who->user, "checkpoint.delete", m->arg[0], detail);
	free(detail);
	hub__send_empty(c, 204);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
}
