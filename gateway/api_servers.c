/*
 * api_servers: start and stop a user's default or named server, and the
 * spawn-progress event stream (JupyterHub UserServerAPIHandler and
 * SpawnProgressAPIHandler).
 */
#define LOG_PREFIX "gateway/api_servers: "

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/db.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/config.h"
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

/* "a, b, c" of the configured images or profiles, for error messages. */
static char *allowed_list(const struct gw_cfg *cfg, bool profiles)
{
	struct buf b;
	size_t n = profiles ? (size_t)cfg->n_profiles : xstrv_len(cfg->images);

	buf_init(&b, 64 * 1024);
	for (size_t i = 0; i < n; i++)
		buf_appendf(&b, "%s%s", i ? ", " : "",
			    profiles ? cfg->profiles[i].name : cfg->images[i]);
	if (!n)
		buf_appends(&b, "none");
	return buf_detach(&b, NULL);
}

/* Values are echoed in messages: printable and short, or not at all. */
static int check_name(const struct gw_cfg *cfg, const cJSON *v, bool profile,
		      struct err **err)
{
	const char *key = profile ? "profile" : "image";
	cleanup_free char *allowed = NULL;

	if (!cJSON_IsString(v))
		return err_set_http(err, 400, EINVAL, "user_options.%s must be a string", key);
	if (profile ? gw_cfg_profile_find(cfg, v->valuestring) != NULL :
		      gw_cfg_image_allowed(cfg, v->valuestring))
		return 0;
	allowed = allowed_list(cfg, profile);
	if (!gw_cfg_image_name_ok(v->valuestring))
		return err_set_http(err, 400, EINVAL, "user_options.%s: not an allowed %s "
				    "(allowed: %s)", key, key, allowed);
	return err_set_http(err, 400, EINVAL, "user_options.%s: '%s' is not an allowed %s "
			    "(allowed: %s)", key, v->valuestring, key, allowed);
}

/* Sandboxed backends: the profile and image are all a user may choose. */
static int check_sandboxed(const struct gw_cfg *cfg, const cJSON *opts, struct err **err)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, opts) {
		bool profile = strcmp(it->string, "profile") == 0;

		if (!profile && strcmp(it->string, "image") != 0) {
			if (strlen(it->string) > 64 || !json_utf8_valid(it->string,
								       strlen(it->string)))
				return err_set_http(err, 400, EINVAL, "user_options: unknown "
						    "option (allowed: profile, image)");
			return err_set_http(err, 400, EINVAL, "user_options.%s: unknown option "
					    "(allowed: profile, image)", it->string);
		}
		if (check_name(cfg, it, profile, err) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_tree(const struct gw_cfg *cfg, const cJSON *o, const char *path, int depth,
		      struct err **err)
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
		    check_name(cfg, it, false, err) < 0)
			return -1;
		if (!cJSON_IsObject(it) && !cJSON_IsArray(it))
			continue;
		sub = xasprintf("%s.%s", path, it->string ? it->string : "[]");
		r = check_tree(cfg, it, sub, depth + 1, err);
		free(sub);
		if (r < 0)
			return r;
	}
	return 0;
}

int hub__check_user_options(const struct gw_cfg *cfg, const struct cJSON *opts,
			    struct err **err)
{
	if (!opts)
		return 0;
	if (!cJSON_IsObject(opts))
		return err_set_http(err, 400, EINVAL, "user_options must be a JSON object");
	/* The backend checks the same rules again when it starts the server
	 * (spawner_check_user_options); checking here too answers the 400
	 * before a token is minted, without echoing odd keys. NEEDSWORK: one
	 * copy of the rules, once the gateway's error wording moves there. */
	if (cfg->spawner != GW_SPAWNER_PROCESS)
		return check_sandboxed(cfg, opts, err);
	return check_tree(cfg, opts, "user_options", 0, err);
}

struct cJSON *hub__server_model(const struct spawner_server *srv)
{
	cJSON *j = cJSON_CreateObject(), *opts;
	char *url = spawner_base_url(srv->user, srv->name);
	char *u = spawner_url_segment(srv->user), *s = spawner_url_segment(srv->name);
	char *progress = *srv->name ?
		xasprintf("/hub/api/users/%s/servers/%s/progress", u, s) :
		xasprintf("/hub/api/users/%s/server/progress", u);
	/* JupyterHub's pending: a restore is a spawn, a checkpoint a stop; a
	 * suspended server has none ("state": "suspended", "ready": false) */
	const char *pending = srv->state == SPAWNER_STARTING || srv->state == SPAWNER_RESTORING ?
		"spawn" : srv->state == SPAWNER_STOPPING || srv->state == SPAWNER_CHECKPOINTING ?
		"stop" : NULL;

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
	/* nbgate additions: the launch profile, what runs, and why it failed */
	cJSON_AddItemToObject(j, "profile", srv->profile ? cJSON_CreateString(srv->profile) :
				  cJSON_CreateNull());
	cJSON_AddItemToObject(j, "server_type", srv->server_type ?
				  cJSON_CreateString(srv->server_type) : cJSON_CreateNull());
	cJSON_AddItemToObject(j, "message", srv->state == SPAWNER_FAILED && srv->message ?
				  cJSON_CreateString(srv->message) : cJSON_CreateNull());
	/* issue 4: what set last_activity ("proxy", "kernel", "terminal", ...) */
	cJSON_AddItemToObject(j, "activity_source", srv->activity_source ?
				  cJSON_CreateString(srv->activity_source) : cJSON_CreateNull());
	free(url);
	free(u);
	free(s);
	free(progress);
	return j;
}

/* Backend refusals that have their own status (the message says why). */
static void start_error_status(struct err *err)
{
	if (err->http)
		return;
	if (err->code == EALREADY)
		err->http = 400;
	else if (err->code == EDQUOT)
		err->http = 403; /* over the user's quota */
	else if (err->code == ENOSPC || err->code == ENODEV)
		err->http = 503; /* no free GPU of the profile's model right now */
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
	if (!ok || hub__check_user_options(gw->cfg, opts, &err) < 0)
		goto out; /* JH-19: refused before anything starts */
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	if (srv && (srv->state == SPAWNER_STARTING || srv->state == SPAWNER_RESTORING)) {
		hub__send_empty(c, 202); /* JupyterHub: pending spawn -> 202 */
		goto out;
	}
	text = opts ? json_print(opts) : NULL;
	if (gw_servers_start(gw, m->arg[0], server, text, &err) < 0) {
		start_error_status(err);
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

/* ---- logs ---- */

#define LOGS_TAIL_DEFAULT 200
#define LOGS_TAIL_MAX 10000
#define LOGS_BYTES_MAX (2u << 20)

/* Reads the last at most max bytes of fd into *out (owned), *n bytes. */
static int read_end(int fd, const char *path, size_t max, char **out, size_t *n,
		    struct err **err)
{
	struct stat st;
	off_t off;
	size_t want, got = 0;
	char *data;

	if (fstat(fd, &st) < 0)
		return err_set_errno(err, "stat '%s'", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "'%s' is not a regular file", path);
	want = (uint64_t)st.st_size > max ? max : (size_t)st.st_size;
	off = st.st_size - (off_t)want;
	data = xmalloc(want + 1);
	while (got < want) {
		ssize_t r = pread(fd, data + got, want - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* truncated meanwhile: return what we have */
		got += (size_t)r;
	}
	data[got] = '\0';
	*out = data;
	*n = got;
	return off > 0 ? 1 : 0;
}

int hub__log_tail(const char *path, long lines, size_t max_bytes, char **out,
		  struct err **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	char *data = NULL, *start;
	size_t n = 0;
	long seen = 0;
	int cut;

	if (fd < 0)
		return err_set_errno(err, "open '%s'", path);
	cut = read_end(fd, path, max_bytes, &data, &n, err);
	if (cut < 0)
		return cut;
	if (!data)
		return err_set(err, EIO, "read '%s': nothing read", path);
	/* walk back over `lines` newlines (a final one ends the last line) */
	start = data + n;
	if (start > data && start[-1] == '\n')
		start--;
	while (start > data) {
		if (start[-1] == '\n' && ++seen == lines)
			break;
		start--;
	}
	/* a read that began mid-file starts mid-line: drop the fragment */
	if (start == data && cut > 0) {
		char *nl = memchr(data, '\n', n);

		start = nl ? nl + 1 : data + n;
	}
	*out = xstrndup(start, (size_t)(data + n - start));
	free(data);
	return 0;
}

/* ?tail=N: 1..LOGS_TAIL_MAX, default LOGS_TAIL_DEFAULT. */
static int parse_tail(const struct gw_request *req, long *tail, struct err **err)
{
	cleanup_free char *v = hub__query_get(req, "tail");
	char *end = NULL;

	*tail = LOGS_TAIL_DEFAULT;
	if (!v)
		return 0;
	errno = 0;
	*tail = strtol(v, &end, 10);
	if (!*v || *end || errno || *tail < 1 || *tail > LOGS_TAIL_MAX)
		return err_set_http(err, 400, EINVAL, "tail must be 1..%d", LOGS_TAIL_MAX);
	return 0;
}

void hub__api_server_logs(struct gw *gw, struct gw_conn *c, const struct gw_request *req,
			  const struct hub_match *m)
{
	struct spawner_server *srv;
	struct gw_response r;
	struct err *err = NULL;
	char *server = NULL, *path = NULL, *text = NULL;
	long tail;

	if (target(m, &server, &err) < 0 || parse_tail(req, &tail, &err) < 0 ||
	    !hub__allow(gw, c, req, "read:servers", m->arg[0], server, false))
		goto out;
	srv = spawner_server_find(gw->spawner, m->arg[0], server);
	if (!srv || !srv->run_dir) {
		err_set_http(&err, 404, ENOENT, "%s has no server named '%s'", m->arg[0], server);
		goto out;
	}
	path = xasprintf("%s/server.log", srv->run_dir);
	if (hub__log_tail(path, tail, LOGS_BYTES_MAX, &text, &err) < 0) {
		if (err->code != ENOENT)
			goto out;
		err_free(&err); /* never started, or started before logs existed */
		text = xstrdup("");
	}
	gw_response_init(&r, 200);
	gw_response_header(&r, "Content-Type", "text/plain; charset=utf-8");
	gw_response_header(&r, "Cache-Control", "no-store");
	gw_response_header(&r, "X-Content-Type-Options", "nosniff");
	buf_appends(&r.body, text);
	gw_send(c, &r);
out:
	if (err)
		hub__send_err(c, &err);
	free(server);
	free(path);
	free(text);
}
