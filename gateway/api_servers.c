/*
 * api_servers: start and stop a user's default or named server, and the
 * spawn-progress event stream (JupyterHub UserServerAPIHandler and
 * SpawnProgressAPIHandler).
 */
#define LOG_PREFIX "gateway/api_servers: "

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "common/db.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/servers.h"
#include "gateway/users.h"
#include "spawner/names.h"
#include "spawner/spawner.h"

/* Keys (any depth, case-insensitive) that would give a user control of the
 * server's environment, code or host (R-1.7, JH-19). */
static const char *const denied_keys[] = {
	"env", "environment", "path", "pythonpath", "pythonhome", "pythonstartup",
	"ld_preload", "ld_library_path", "ld_audit", "jupyter_config_dir",
	"jupyter_config_path", "jupyter_path", "jupyter_data_dir", "jupyter_runtime_dir",
	"mounts", "mount", "volumes", "volume_mounts", "binds", "cmd", "command", "args",
	"argv", "entrypoint", "working_dir", "cwd", "uid", "gid", "privileged", "capabilities",
	"host_network", "devices",
};

/* Images a user may ask for by name; the configured image catalogue comes
 * with the local backend (issue 3). NEEDSWORK: read it from config. */
static const char *const allowed_images[] = { "default" };

static bool key_denied(const char *k)
{
	size_t i;

	if (strncasecmp(k, "ld_", 3) == 0 || strncasecmp(k, "python", 6) == 0 ||
	    strncasecmp(k, "jupyter_", 8) == 0 || strncasecmp(k, "nbgate_", 7) == 0 ||
	    strncasecmp(k, "jupyterhub_", 11) == 0)
		return true;
	for (i = 0; i < sizeof(denied_keys) / sizeof(denied_keys[0]); i++)
		if (strcasecmp(k, denied_keys[i]) == 0)
			return true;
	return false;
}

static int check_image(const cJSON *v, struct err **err)
{
	size_t i;

	if (!cJSON_IsString(v))
		return err_set_http(err, 400, EINVAL, "user_options.image must be a string");
	for (i = 0; i < sizeof(allowed_images) / sizeof(allowed_images[0]); i++)
		if (strcmp(v->valuestring, allowed_images[i]) == 0)
			return 0;
	return err_set_http(err, 400, EINVAL, "user_options.image: '%s' is not an allowed image",
			    v->valuestring);
}

static int check_tree(const cJSON *o, const char *path, int depth, struct err **err)
{
	const cJSON *it;
	char *sub;
	int r = 0;

	if (depth > 8)
		return err_set_http(err, 400, EINVAL, "%s: nested too deeply", path);
	cJSON_ArrayForEach(it, o) {
		if (it->string && key_denied(it->string))
			return err_set_http(err, 400, EINVAL,
					    "%s.%s: not allowed (the environment, command, "
					    "mounts and devices of a server are set by the "
					    "administrator)", path, it->string);
		if (depth == 0 && it->string && strcmp(it->string, "image") == 0 &&
		    check_image(it, err) < 0)
			return -1;
		if (!cJSON_IsObject(it) && !cJSON_IsArray(it))
			continue;
		sub = xasprintf("%s.%s", path, it->string ? it->string : "[]");
		r = check_tree(it, sub, depth + 1, err);
		free(sub);
		if (r < 0)
			return r;
	}
	return 0;
}

int hub__check_user_options(const struct cJSON *opts, struct err **err)
{
	if (!opts)
		return 0;
	if (!cJSON_IsObject(opts))
		return err_set_http(err, 400, EINVAL, "user_options must be a JSON object");
	return check_tree(opts, "user_options", 0, err);
}

struct cJSON *hub__server_model(const struct spawner_server *srv)
{
	cJSON *j = cJSON_CreateObject(), *opts;
	char *url = spawner_base_url(srv->user, srv->name);
	char *u = spawner_url_segment(srv->user), *s = spawner_url_segment(srv->name);
	char *progress = *srv->name ?
		xasprintf("/hub/api/users/%s/servers/%s/progress", u, s) :
		xasprintf("/hub/api/users/%s/server/progress", u);
	const char *pending = srv->state == SPAWNER_STARTING || srv->state == SPAWNER_RESTORING ?
		"spawn" : srv->state == SPAWNER_STOPPING ? "stop" : NULL;

	opts = srv->user_options ? cJSON_Parse(srv->user_options) : NULL;
	cJSON_AddStringToObject(j, "name", srv->name);
	cJSON_AddItemToObject(j, "last_activity", hub__iso_time(srv->last_activity_ms));
	cJSON_AddItemToObject(j, "started", hub__iso_time(srv->started_ms));
	cJSON_AddItemToObject(j, "pending", pending ? cJSON_CreateString(pending) :
				  cJSON_CreateNull());
	cJSON_AddBoolToObject(j, "ready", srv->state == SPAWNER_RUNNING);
	cJSON_AddBoolToObject(j, "stopped", !spawner_state_is_live(srv->state));
	cJSON_AddStringToObject(j, "state", spawner_state_name(srv->state));
	cJSON_AddStringToObject(j, "url", url);
	cJSON_AddItemToObject(j, "user_options", opts ? opts : cJSON_CreateObject());
	cJSON_AddStringToObject(j, "progress_url", progress);
	free(url);
	free(u);
	free(s);
	free(progress);
	return j;
}

/* The (user, server) the route names; server normalised ("" = default). */
static int target(const struct hub_match *m, char **server, struct err **err)
{
	return users_normalize_server_name(m->narg > 1 ? m->arg[1] : "", server, err);
}

void hub__api_server_start(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			   const struct hub_match *m)
{
	cleanup_json cJSON *opts = NULL;
	struct spawner_server *srv;
	struct err *err = NULL;
	char *server = NULL, *text = NULL;
	bool ok;

	if (target(m, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "servers", m->arg[0], server, false))
		goto out;
	opts = hub__json_body(c, req, true, &ok);
	if (!ok || hub__check_user_options(opts, &err) < 0)
		goto out; /* JH-19: refused before anything starts */
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	if (srv && (srv->state == SPAWNER_STARTING || srv->state == SPAWNER_RESTORING)) {
		hub__send_empty(c, 202); /* JupyterHub: pending spawn -> 202 */
		goto out;
	}
	text = opts ? json_print(opts) : NULL;
	if (gw_servers_start(gw, m->arg[0], server, text, &err) < 0) {
		if (err->code == EALREADY)
			err->http = 400;
		goto out;
	}
	db_audit(gw->db, req->who->user, "server.start", m->arg[0], server);
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	/* NEEDSWORK: JupyterHub waits up to slow_spawn_timeout (10 s) and then
	 * answers 201 when ready; we answer at once */
	hub__send_empty(c, srv && srv->state == SPAWNER_RUNNING ? 201 : 202);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
	free(text);
}

/* DELETE {"remove": true} on a named server forgets it once stopped. */
static void maybe_remove(struct gw *gw, const char *user, const char *server,
			 const cJSON *body)
{
	struct err *err = NULL;
	bool remove = false;

	if (!body || !*server || json_get_bool(body, "remove", false, &remove, &err) < 0 ||
	    !remove) {
		err_free(&err);
		return;
	}
	if (spawner_server_remove(gw->spawner, user, server, &err) < 0) {
		log_warn("cannot remove server '%s/%s': %s", user, server, err->msg);
		err_free(&err);
	}
}

void hub__api_server_stop(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	cleanup_json cJSON *body = NULL;
	struct err *err = NULL;
	char *server = NULL;
	bool ok;
	int r;

	if (target(m, &server, &err) < 0 ||
	    !hub__allow(gw, c, req, "delete:servers", m->arg[0], server, false))
		goto out;
	body = hub__json_body(c, req, true, &ok);
	if (!ok)
		goto out;
	r = gw_servers_stop(gw, m->arg[0], server, &err);
	if (r < 0 && err->code == ENOENT && !*server) {
		err_free(&err); /* the default server that never ran: stopped */
		r = 0;
	}
	if (r < 0)
		goto out;
	db_audit(gw->db, req->who->user, "server.stop", m->arg[0], server);
	if (r == 0)
		maybe_remove(gw, m->arg[0], server, body);
	hub__send_empty(c, r > 0 ? 202 : 204);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
}

void hub__api_server_progress(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			      const struct hub_match *m)
{
	struct err *err = NULL;
	char *server = NULL;

	if (target(m, &server, &err) < 0) {
		hub__send_err(c, &err);
		return;
	}
	if (hub__allow(gw, c, req, "read:servers", m->arg[0], server, false) &&
	    gw_servers_subscribe(gw, c, m->arg[0], server) < 0)
		hub__send_error(c, 404, "%s has no server named '%s'", m->arg[0], server);
	free(server);
}
