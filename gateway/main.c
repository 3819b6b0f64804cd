/*
 * nbgate: the command line (crun-style dispatch table of subcommands).
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage error. Every command
 * takes --config FILE (or NBGATE_CONFIG) and works on
 * <state_dir>/nbgate.db.
 */
#define LOG_PREFIX "nbgate: "

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/work.h"
#include "common/xalloc.h"
#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/culler.h"
#include "checkpoint/ckpt.h"
#include "gateway/doctor.h"
#include "gateway/gw.h"
#include "gateway/metrics.h"
#include "gateway/passwd.h"
#include "gateway/route.h"
#include "gateway/scopes.h"
#include "gateway/server.h"
#include "gateway/servers.h"
#include "gateway/users.h"
#include "images/image.h"
#include "spawner/spawner.h"

#define EXIT_USAGE 2
/* What command functions return for a usage error: outside the errno range,
 * so a failure with code 2 (ENOENT) is not mistaken for one. */
#define RC_USAGE (-100000)

struct cli {
	const char *config;    /* --config or NBGATE_CONFIG, may be NULL */
	struct gw_cfg cfg;
	bool cfg_loaded;
	struct db *db;
	int argc;              /* after the subcommand words */
	char **argv;
};

struct cmd {
	const char *group;     /* "user", "group", "token", "config" or NULL */
	const char *name;
	int min_args, max_args;
	bool needs_db;
	int (*fn)(struct cli *cli, struct err **err);
	const char *usage;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("nbgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return RC_USAGE;
}

/* Removes "--NAME VALUE" / "--NAME=VALUE" from cli->argv; NULL if absent.
 * *bad is set when the option is present without a value. */
static const char *take_opt(struct cli *cli, const char *name, bool *bad)
{
	size_t n = strlen(name);
	const char *v = NULL;
	int i, k;

	for (i = 0; i < cli->argc; i++) {
		if (strncmp(cli->argv[i], name, n) != 0)
			continue;
		if (cli->argv[i][n] == '=') {
			v = cli->argv[i] + n + 1;
			k = 1;
		} else if (cli->argv[i][n] == '\0') {
			if (i + 1 >= cli->argc) {
				*bad = true;
				return NULL;
			}
			v = cli->argv[i + 1];
			k = 2;
		} else {
			continue;
		}
		memmove(&cli->argv[i], &cli->argv[i + k], (size_t)(cli->argc - i - k) * sizeof(char *));
		cli->argc -= k;
		return v;
	}
	return NULL;
}

static bool take_flag(struct cli *cli, const char *name)
{
	int i;

	for (i = 0; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], name) != 0)
			continue;
		memmove(&cli->argv[i], &cli->argv[i + 1], (size_t)(cli->argc - i - 1) * sizeof(char *));
		cli->argc--;
		return true;
	}
	return false;
}

static int open_state(struct cli *cli, struct err **err)
{
	char *path;
	int r;

	if (mkdir(cli->cfg.state_dir, 0700) < 0 && errno != EEXIST)
		return err_set_errno(err, "create state directory '%s'", cli->cfg.state_dir);
	path = xasprintf("%s/nbgate.db", cli->cfg.state_dir);
	r = db_open(&cli->db, path, err);
	if (r < 0)
		err_wrap(err, "open '%s'", path);
	free(path);
	return r;
}

/* Reads a password from stdin (one line, newline stripped). */
static char *read_password(struct err **err)
{
	char buf[PASSWD_MAX_LEN + 2];
	size_t n;

	if (isatty(0))
		fprintf(stderr, "password: ");
	if (!fgets(buf, sizeof(buf), stdin)) {
		err_set(err, EINVAL, "no password on standard input");
		return NULL;
	}
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	return xstrdup(buf);
}

static int hash_from_stdin(char **hash, struct err **err)
{
	char *pw = read_password(err);
	int r;

	if (!pw)
		return -1;
	r = passwd_check_policy(pw, strlen(pw), err);
	if (r >= 0)
		r = passwd_hash(pw, hash, err);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	return r;
}

/* Looks up a user by (normalised) name; ENOENT when absent. */
static int get_user(struct cli *cli, const char *name, struct users_user **u,
		    struct err **err)
{
	char *norm = NULL;
	int r = users_normalize_name(name, &norm, err);

	if (r >= 0)
		r = users_get(cli->db, norm, u, err);
	if (r == 0)
		r = err_set(err, ENOENT, "no such user '%s'", norm);
	free(norm);
	return r < 0 ? r : 0;
}

/* ---- user ---- */

static int cmd_user_add(struct cli *cli, struct err **err)
{
	bool admin = take_flag(cli, "--admin"), pw = take_flag(cli, "--password-stdin");
	char *norm = NULL, *hash = NULL;
	int64_t id;
	int r;

	if (cli->argc != 1)
		return usage_error("user add: expected NAME, got %d arguments", cli->argc);
	r = users_normalize_name(cli->argv[0], &norm, err);
	if (r >= 0 && pw)
		r = hash_from_stdin(&hash, err);
	if (r >= 0)
		r = users_create(cli->db, norm, admin, hash, time_now_ms(), &id, err);
	if (r >= 0) {
		db_audit(cli->db, "cli", "user.create", norm, admin ? "admin" : NULL);
		printf("created user %s%s\n", norm, admin ? " (admin)" : "");
	}
	free(norm);
	free(hash);
	return r;
}

static int cmd_user_list(struct cli *cli, struct err **err)
{
	struct users_user **v = NULL;
	size_t n = 0, i;

	if (users_list(cli->db, &v, &n, err) < 0)
		return -1;
	for (i = 0; i < n; i++)
		printf("%s%s%s\n", v[i]->name, v[i]->admin ? "\tadmin" : "\t-",
		       v[i]->pw_hash ? "" : "\t(no password)");
	users_user_freev(v, n);
	return 0;
}

static int cmd_user_passwd(struct cli *cli, struct err **err)
{
	struct users_user *u = NULL;
	char *hash = NULL;
	int r = get_user(cli, cli->argv[0], &u, err);

	if (r >= 0)
		r = hash_from_stdin(&hash, err);
	if (r >= 0)
		r = users_set_password(cli->db, u->id, hash, err);
	if (r >= 0) {
		/* a new password ends every session (stolen cookies too) */
		r = users_session_delete_user(cli->db, u->id, err);
		db_audit(cli->db, "cli", "user.passwd", u->name, NULL);
	}
	free(hash);
	users_user_free(u);
	return r < 0 ? r : 0;
}

static int cmd_user_del(struct cli *cli, struct err **err)
{
	struct users_user *u = NULL;
	int r = get_user(cli, cli->argv[0], &u, err);

	if (r >= 0)
		r = users_delete(cli->db, u->id, err);
	if (r >= 0)
		db_audit(cli->db, "cli", "user.delete", u->name, NULL);
	users_user_free(u);
	return r < 0 ? r : 0;
}

static int cmd_user_admin(struct cli *cli, struct err **err)
{
	struct users_user *u = NULL;
	const char *v = cli->argv[1];
	bool on = strcmp(v, "on") == 0;
	int r;

	if (!on && strcmp(v, "off") != 0)
		return usage_error("user admin: expected 'on' or 'off', not '%s'", v);
	r = get_user(cli, cli->argv[0], &u, err);
	if (r >= 0)
		r = users_set_admin(cli->db, u->id, on, err);
	if (r >= 0)
		db_audit(cli->db, "cli", on ? "user.admin.grant" : "user.admin.revoke", u->name,
			 NULL);
	users_user_free(u);
	return r < 0 ? r : 0;
}

/* ---- group ---- */

static int cmd_group_add(struct cli *cli, struct err **err)
{
	char *norm = NULL;
	int64_t id;
	int r = users_normalize_name(cli->argv[0], &norm, err);

	if (r >= 0)
		r = users_group_create(cli->db, norm, time_now_ms(), &id, err);
	free(norm);
	return r < 0 ? r : 0;
}

static int cmd_group_del(struct cli *cli, struct err **err)
{
	int r = users_group_delete(cli->db, cli->argv[0], err);

	if (r == 0)
		return err_set(err, ENOENT, "no such group '%s'", cli->argv[0]);
	return r < 0 ? r : 0;
}

static int print_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		printf("%s\n", v[i]);
	xstrv_free(v);
	return 0;
}

static int cmd_group_list(struct cli *cli, struct err **err)
{
	char **v = NULL;

	if (users_group_list(cli->db, &v, err) < 0)
		return -1;
	return print_strv(v);
}

static int cmd_group_members(struct cli *cli, struct err **err)
{
	char **v = NULL;
	int r = users_group_members(cli->db, cli->argv[0], &v, err);

	if (r < 0)
		return r;
	if (users_group_exists(cli->db, cli->argv[0], err) == 0) {
		xstrv_free(v);
		return err_set(err, ENOENT, "no such group '%s'", cli->argv[0]);
	}
	return print_strv(v);
}

static int cli_group_member(struct cli *cli, bool add, struct err **err)
{
	char *norm = NULL;
	int r = users_normalize_name(cli->argv[1], &norm, err);

	if (r >= 0)
		r = add ? users_group_add(cli->db, cli->argv[0], norm, err) :
			  users_group_remove(cli->db, cli->argv[0], norm, err);
	if (r == 0)
		r = err_set(err, ENOENT, "no such group '%s' or user '%s'", cli->argv[0], norm);
	free(norm);
	return r < 0 ? r : 0;
}

static int cmd_group_adduser(struct cli *cli, struct err **err)
{
	return cli_group_member(cli, true, err);
}

static int cmd_group_rmuser(struct cli *cli, struct err **err)
{
	return cli_group_member(cli, false, err);
}

/* ---- token ---- */

static int parse_seconds(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || end == s || *end || *out <= 0 ? -1 : 0;
}

static int token_create(struct cli *cli, struct users_user *u, const char *scopes,
			int64_t expires_s, const char *note, struct err **err)
{
	struct users_token_spec spec = { .user_id = u->id, .kind = USERS_TOKEN_API,
					 .note = note ? note : "created with nbgate token create",
					 .scopes = scopes, .expires_in_ms = expires_s * 1000,
					 .max_expires_in_ms = cli->cfg.token_max_expires_in };
	struct auth_ident *who = NULL;
	struct users_key key;
	char *token = NULL;
	int64_t id;
	int r;

	r = users_key_load(cli->cfg.state_dir, &key, err);
	if (r >= 0)
		r = auth_ident_for_user(cli->db, u->id, &who, err);
	if (r >= 0) /* TOK-4 holds for the CLI as well */
		r = auth_check_token_grant(cli->db, who, u, scopes, err);
	if (r >= 0)
		r = users_token_create(cli->db, &key, &spec, time_now_ms(), &token, &id, err);
	if (r >= 0) {
		printf("%s\n", token); /* shown once; never logged */
		fprintf(stderr, "token a%lld created for %s\n", (long long)id, u->name);
		explicit_bzero(token, strlen(token));
	}
	explicit_bzero(&key, sizeof(key));
	auth_ident_free(who);
	free(token);
	return r < 0 ? r : 0;
}

static int cmd_token_create(struct cli *cli, struct err **err)
{
	bool bad = false;
	const char *scopes = take_opt(cli, "--scopes", &bad);
	const char *exp = take_opt(cli, "--expires-in", &bad);
	const char *note = take_opt(cli, "--note", &bad);
	struct users_user *u = NULL;
	int64_t expires = 0;
	int r;

	if (bad)
		return usage_error("token create: an option is missing its value");
	if (cli->argc != 1)
		return usage_error("token create: expected USER, got %d arguments", cli->argc);
	if (exp && parse_seconds(exp, &expires) < 0)
		return usage_error("token create: --expires-in: '%s' is not a positive number "
				   "of seconds", exp);
	r = get_user(cli, cli->argv[0], &u, err);
	if (r >= 0)
		r = token_create(cli, u, scopes, expires, note, err);
	users_user_free(u);
	return r;
}

static int cmd_token_list(struct cli *cli, struct err **err)
{
	struct users_token **v = NULL;
	struct users_user *u = NULL;
	size_t n = 0, i;
	int r = get_user(cli, cli->argv[0], &u, err);

	if (r >= 0)
		r = users_token_list(cli->db, u->id, &v, &n, err);
	for (i = 0; r >= 0 && i < n; i++)
		printf("a%lld\t%s\t%s\t%s\n", (long long)v[i]->id,
		       v[i]->kind == USERS_TOKEN_SERVER ? "server" : "api", v[i]->scopes,
		       v[i]->note);
	users_token_freev(v, n);
	users_user_free(u);
	return r < 0 ? r : 0;
}

static int cmd_token_revoke(struct cli *cli, struct err **err)
{
	const char *ids = cli->argv[1];
	struct users_user *u = NULL;
	int64_t id;
	int r;

	if (parse_seconds(ids[0] == 'a' ? ids + 1 : ids, &id) < 0)
		return usage_error("token revoke: '%s' is not a token id (a<number>)", ids);
	r = get_user(cli, cli->argv[0], &u, err);
	if (r >= 0)
		r = users_token_revoke(cli->db, u->id, id, err);
	if (r == 0)
		r = err_set(err, ENOENT, "no token %s for user '%s'", ids, u->name);
	users_user_free(u);
	return r < 0 ? r : 0;
}

/* ---- misc ---- */

static int cmd_version(struct cli *cli, struct err **err)
{
	printf("nbgate %s\n", NBGATE_VERSION);
	return 0;
}

static int cmd_config_print(struct cli *cli, struct err **err)
{
	char *s = gw_cfg_print(&cli->cfg);

	printf("%s\n", s);
	free(s);
	return 0;
}

/* Exit 1 without a message: the checks printed why. */
static int cmd_doctor(struct cli *cli, struct err **err)
{
	return gw_doctor_run(&cli->cfg, stdout) == 0 ? 0 : -1;
}

static int cmd_serve(struct cli *cli, struct err **err);

static const struct cmd cmds[] = {
	{ NULL, "serve", 0, 0, true, cmd_serve, "serve [--config FILE]" },
	{ NULL, "version", 0, 0, false, cmd_version, "version" },
	{ NULL, "doctor", 0, 0, false, cmd_doctor,
	  "doctor  (can this host sandbox and checkpoint? exit 0 yes, 1 no)" },
	{ "config", "print", 0, 0, false, cmd_config_print, "config print" },
	{ "user", "add", 1, 3, true, cmd_user_add, "user add NAME [--admin] [--password-stdin]" },
	{ "user", "list", 0, 0, true, cmd_user_list, "user list" },
	{ "user", "passwd", 1, 1, true, cmd_user_passwd, "user passwd NAME  (password on stdin)" },
	{ "user", "del", 1, 1, true, cmd_user_del, "user del NAME" },
	{ "user", "admin", 2, 2, true, cmd_user_admin, "user admin NAME on|off" },
	{ "group", "add", 1, 1, true, cmd_group_add, "group add NAME" },
	{ "group", "del", 1, 1, true, cmd_group_del, "group del NAME" },
	{ "group", "list", 0, 0, true, cmd_group_list, "group list" },
	{ "group", "members", 1, 1, true, cmd_group_members, "group members NAME" },
	{ "group", "adduser", 2, 2, true, cmd_group_adduser, "group adduser GROUP USER" },
	{ "group", "rmuser", 2, 2, true, cmd_group_rmuser, "group rmuser GROUP USER" },
	{ "token", "create", 1, 7, true, cmd_token_create,
	  "token create USER [--scopes S] [--expires-in SECONDS] [--note N]" },
	{ "token", "list", 1, 1, true, cmd_token_list, "token list USER" },
	{ "token", "revoke", 2, 2, true, cmd_token_revoke, "token revoke USER ID" },
};

static void print_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: nbgate [--config FILE] COMMAND\n\ncommands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  nbgate %s\n", cmds[i].usage);
	fprintf(f, "  nbgate image build RECIPE_DIR [--force] [--mirror URL]\n"
		   "  nbgate image list | inspect REF | rm REF | gc\n");
	fprintf(f, "\nThe configuration file may also be given in NBGATE_CONFIG.\n");
	fprintf(f, "Images live in NBGATE_IMAGE_STORE (default %s).\n", IMAGES_DEFAULT_STORE);
}

static const struct cmd *find_cmd(int argc, char **argv, int *used)
{
	size_t i;

	for (i = 0; argc >= 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!cmds[i].group && strcmp(argv[0], cmds[i].name) == 0) {
			*used = 1;
			return &cmds[i];
		}
		if (cmds[i].group && argc >= 2 && strcmp(argv[0], cmds[i].group) == 0 &&
		    strcmp(argv[1], cmds[i].name) == 0) {
			*used = 2;
			return &cmds[i];
		}
	}
	return NULL;
}

static int run_cmd(struct cli *cli, const struct cmd *c, struct err **err)
{
	if (cli->argc < c->min_args || cli->argc > c->max_args)
		return usage_error("wrong number of arguments; usage: nbgate %s", c->usage);
	/* every command but "version" reads the config; one that opens the
	 * database needs state_dir from it, whatever its name */
	if (c->needs_db || strcmp(c->name, "version") != 0) {
		if (gw_cfg_load(&cli->cfg, cli->config, err) < 0)
			return err_wrap(err, "load configuration");
		cli->cfg_loaded = true;
	}
	if (c->needs_db && c->fn != cmd_serve && open_state(cli, err) < 0)
		return -1;
	return c->fn(cli, err);
}

/* Global options and help; returns -1 to go on, else the exit code. */
static int early_args(struct cli *cli)
{
	bool bad = false;
	const char *env = getenv("NBGATE_CONFIG");

	cli->config = take_opt(cli, "--config", &bad);
	if (bad) {
		usage_error("--config: missing FILE");
		return EXIT_USAGE;
	}
	if (!cli->config && env && *env)
		cli->config = env;
	if (cli->argc == 0) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (take_flag(cli, "--help") || take_flag(cli, "-h")) {
		print_usage(stdout);
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cli cli = { .argc = argc - 1, .argv = argv + 1 };
	const struct cmd *c;
	struct err *err = NULL;
	int used = 0, r;

	r = early_args(&cli);
	if (r >= 0)
		return r;
	if (strcmp(cli.argv[0], "checkpoint") == 0) /* checkpoint/ owns its helper command */
		return ckpt_cli(cli.argc - 1, cli.argv + 1);
	if (strcmp(cli.argv[0], "image") == 0) { /* images/ owns its subcommands */
		const char *store = getenv("NBGATE_IMAGE_STORE");

		return images_cli(cli.argc, cli.argv, store && *store ? store : IMAGES_DEFAULT_STORE);
	}
	c = find_cmd(cli.argc, cli.argv, &used);
	if (!c) {
		usage_error("unknown command '%s%s%s' (see nbgate --help)", cli.argv[0],
			    cli.argc > 1 ? " " : "", cli.argc > 1 ? cli.argv[1] : "");
		return EXIT_USAGE;
	}
	cli.argc -= used;
	cli.argv += used;
	r = run_cmd(&cli, c, &err);
	if (r < 0 && err)
		fprintf(stderr, "nbgate: %s\n", err->msg);
	err_free(&err);
	db_close(cli.db);
	if (cli.cfg_loaded)
		gw_cfg_free(&cli.cfg);
	return r == RC_USAGE ? EXIT_USAGE : r < 0 ? 1 : 0;
}

/* ---- serve ---- */

static void serve_warnings(const struct gw_cfg *cfg)
{
	if (cfg->spawner == GW_SPAWNER_PROCESS)
		log_warn("spawner 'process' runs servers UNSANDBOXED as plain host processes: "
			 "for development and tests only");
	if (cfg->url_mode == GW_URL_PATH)
		log_warn("path mode serves every user from one origin: only for semi-trusted "
			 "users; use subdomain mode for untrusted users (SECURITY.md R-1.1)");
	if (!cfg->cookie_secure)
		log_warn("cookies are not Secure (plain HTTP): sessions can be stolen on the "
			 "network; enable TLS outside development");
}

/* First start: an admin without password and a one-time setup URL. */
static int first_start(struct gw *gw, struct err **err)
{
	int64_t n, id;
	char *code = NULL;

	if (users_count(gw->db, &n, err) < 0)
		return -1;
	if (n > 0)
		return 0;
	if (users_create(gw->db, "admin", true, NULL, time_now_ms(), &id, err) < 0 ||
	    users_setup_code_create(gw->db, id, time_now_ms(), &code, err) < 0)
		return err_wrap(err, "create first admin");
	db_audit(gw->db, "nbgate", "user.create", "admin", "first start");
	/* stdout, once: the code is single-use and valid for 1 h; never a password */
	printf("\nnbgate: first start: set the password of user 'admin' within 1 hour at\n"
	       "  %s/hub/setup?code=%s\n\n", gw->cfg->public_url, code);
	fflush(stdout);
	log_info("created user 'admin'; the one-time setup URL was printed on stdout");
	explicit_bzero(code, strlen(code));
	free(code);
	return 0;
}

static void wake_loop(void *arg)
{
	struct gw *gw = arg;

	if (gw->lws)
		lws_cancel_service(gw->lws);
}

static const char *const spawner_names[] = {
	[GW_SPAWNER_PROCESS] = "process", [GW_SPAWNER_LOCAL] = "local",
	[GW_SPAWNER_KUBERNETES] = "kubernetes",
};

static int make_spawner(struct gw *gw, struct gw_servers *sv, struct err **err)
{
	struct spawner_cfg sc = {
		.lws = gw->lws,
		.db = gw->db,
		.state_dir = gw->cfg->state_dir,
		.server_cmd = (const char *const *)gw->cfg->server_cmd,
		.server_env = (const char *const *)gw->cfg->server_env,
		.spawn_timeout_ms = gw->cfg->spawn_timeout,
		.on_event = gw_servers_on_event,
		.event_arg = sv,
	};

	gw_cfg_spawner_fill(gw->cfg, &sc); /* profiles, images, quota, sandbox */
	if (spawner_new(spawner_names[gw->cfg->spawner], &sc, &gw->spawner, err) < 0)
		return err_wrap(err, "spawner");
	return gw_servers_adopt(gw, err);
}

static int serve_run(struct gw *gw, struct gw_servers *sv, struct gw_culler **culler,
		     struct err **err)
{
	if ((gw->auth = auth_new(gw->cfg, err)) == NULL)
		return -1;
	gw->work = work_pool_new((unsigned)gw->cfg->worker_threads, wake_loop, gw);
	auth_attach_work(gw->auth, gw->work);
	gw->metrics = gw_metrics_new();
	if (first_start(gw, err) < 0 || gw_init(gw, err) < 0 || make_spawner(gw, sv, err) < 0)
		return -1;
	*culler = gw_culler_new(gw);
	return gw_serve(gw, err);
}

static int cmd_serve(struct cli *cli, struct err **err)
{
	struct gw gw = { .cfg = &cli->cfg, .started_ms = time_now_ms() };
	struct gw_servers *sv = gw_servers_new(&gw);
	struct gw_culler *culler = NULL;
	int r;

	log_setup((enum log_level)cli->cfg.log_level, (enum log_format)cli->cfg.log_format);
	log_hook_lws();
	serve_warnings(&cli->cfg);
	r = open_state(cli, err);
	gw.db = cli->db;
	if (r >= 0)
		r = serve_run(&gw, sv, &culler, err);
	gw_culler_free(culler); /* its timer lives in the lws context */
	gw_servers_free(sv);
	spawner_free(gw.spawner);
	work_pool_free(gw.work);
	gw_release(&gw);
	auth_free(gw.auth);
	gw_metrics_free(gw.metrics);
	return r;
}
