/*
 * Unit tests for spawner/local.c without forking or root: GPU
 * inventory (fake device nodes in a temp dir), nvidia-smi parsing,
 * exclusive allocation persisted across a second backend instance on the
 * same database, sandbox spec construction (argv placeholders, env,
 * limits, devices) and the Unix socket path limit on both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "spawner/local.c"

static const struct spawner_profile profiles[] = {
	{ .name = "small", .image = "minimal", .cpu_millis = 1000, .memory_bytes = 1LL << 30,
	  .network = "none" },
	{ .name = "big", .image = "jupyterlab", .cpu_millis = 4000, .memory_bytes = 8LL << 30,
	  .pids_max = 300, .network = "egress" },
	{ .name = "gpu", .image = "jupyterlab", .cpu_millis = 2000, .memory_bytes = 4LL << 30,
	  .gpus = 2, .gpu_model = "H100" },
	{ .name = "free", .image = "minimal" }, /* no limits */
};
static const char *const images[] = { "minimal", "jupyterlab", "vscode", NULL };

static struct spawner_cfg base_cfg(void)
{
	return (struct spawner_cfg){ .profiles = profiles, .n_profiles = 4, .images = images,
				     .state_dir = "/st", .uid_base = 200000,
				     .stop_timeout_ms = 3000 };
}

/* ---- GPUs ---- */

struct gpu_fixture {
	char dir[64];
	char *glob;
	char *dbpath;
	struct db *db;
};

static void touch(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fclose(f);
	free(p);
}

static int gpu_setup(void **state)
{
	struct gpu_fixture *f = xcalloc(1, sizeof(*f));
	struct err *e = NULL;

	memcpy(f->dir, "/tmp/nbgate-gpu-XXXXXX", 23);
	assert_non_null(mkdtemp(f->dir));
	/* 4 GPUs, named so that glob's name order differs from index order */
	touch(f->dir, "nvidia0");
	touch(f->dir, "nvidia1");
	touch(f->dir, "nvidia2");
	touch(f->dir, "nvidia10");
	touch(f->dir, "nvidiactl"); /* not a GPU */
	f->glob = xasprintf("%s/nvidia[0-9]*", f->dir);
	f->dbpath = xasprintf("%s/nbgate.db", f->dir);
	assert_int_equal(db_open(&f->db, f->dbpath, &e), 0);
	assert_int_equal(db_exec(f->db, "INSERT INTO users (id, name, created) VALUES (1, 'a', 0),"
				 " (2, 'b', 0); INSERT INTO servers (id, user_id, name, backend)"
				 " VALUES (11, 1, '', 'local'), (12, 1, 'x', 'local'),"
				 " (21, 2, '', 'local')", &e), 0);
	*state = f;
	return 0;
}

static int gpu_teardown(void **state)
{
	struct gpu_fixture *f = *state;
	char *cmd[] = { "nvidia0", "nvidia1", "nvidia2", "nvidia10", "nvidiactl", "nbgate.db",
			"nbgate.db-wal", "nbgate.db-shm" };

	db_close(f->db);
	for (size_t i = 0; i < sizeof(cmd) / sizeof(cmd[0]); i++) {
		char *p = xasprintf("%s/%s", f->dir, cmd[i]);

		unlink(p);
		free(p);
	}
	rmdir(f->dir);
	free(f->glob);
	free(f->dbpath);
	free(f);
	return 0;
}

/* A backend instance on f's database, without init (no root, no lws). */
static struct spawner_local *gpu_backend(struct gpu_fixture *f, const char *smi)
{
	struct spawner_local *sl = xcalloc(1, sizeof(*sl));

	sl->base.ops = &spawner_local_ops;
	sl->base.cfg = base_cfg();
	sl->base.cfg.db = f->db;
	sl->base.cfg.gpu_dev_glob = f->glob;
	assert_int_equal(local_gpu_scan(f->glob, &sl->gpus, &sl->n_gpus), 4);
	if (smi)
		local_gpu_parse_smi(smi, sl->gpus, sl->n_gpus);
	return sl;
}

static void backend_free(struct spawner_local *sl)
{
	local_destroy(&sl->base);
	free(sl);
}

static const char smi_out[] =
	"0, NVIDIA H100 80GB HBM3, GPU-aaaa\n"
	"1, NVIDIA A100-SXM4-40GB, GPU-bbbb\n"
	"2, NVIDIA H100 80GB HBM3, GPU-cccc\n"
	"10, NVIDIA H100 80GB HBM3, GPU-dddd\n"
	"garbage line\n"
	"7, not installed here, GPU-eeee\n";

static void test_local_gpu_inventory(void **state)
{
	struct gpu_fixture *f = *state;
	struct spawner_local *sl = gpu_backend(f, NULL);

	/* index order, not name order; nvidiactl is not a GPU */
	assert_int_equal(sl->gpus[0].index, 0);
	assert_int_equal(sl->gpus[2].index, 2);
	assert_int_equal(sl->gpus[3].index, 10);
	assert_null(sl->gpus[0].model);
	assert_int_equal(local_gpu_parse_smi(smi_out, sl->gpus, sl->n_gpus), 4);
	assert_string_equal(sl->gpus[1].model, "NVIDIA A100-SXM4-40GB");
	assert_string_equal(sl->gpus[3].uuid, "GPU-dddd");
	assert_int_equal(gpu_index_of("/dev/nvidia-uvm"), -1);
	assert_int_equal(gpu_index_of("/dev/nvidia7"), 7);
	backend_free(sl);
	/* no match at all is an empty inventory, not an error */
	struct local_gpu *g = NULL;
	int n = -1;

	assert_int_equal(local_gpu_scan("/nonexistent/nvidia[0-9]*", &g, &n), 0);
	assert_int_equal(n, 0);
	gpus_free(g, n);
}

static int held_count(struct spawner_local *sl, int64_t id, const char *want_first)
{
	int n = 0;
	const struct local_gpu **h = local_gpu_held(sl, id, &n);

	if (want_first)
		assert_string_equal(h[0]->dev + strlen(h[0]->dev) - strlen(want_first), want_first);
	free(h);
	return n;
}

static void test_local_gpu_alloc(void **state)
{
	struct gpu_fixture *f = *state;
	struct spawner_local *sl = gpu_backend(f, smi_out), *sl2;
	struct err *e = NULL;

	/* model filter: 3 H100s; 2 for server 11 (the first two H100s: 0 and 2) */
	assert_int_equal(local_gpu_alloc(sl, 11, 2, "h100", &e), 0);
	assert_int_equal(held_count(sl, 11, "/nvidia0"), 2);
	/* 2 more H100s for server 21: only one is free -> EBUSY naming counts */
	assert_int_equal(local_gpu_alloc(sl, 21, 2, "H100", &e), -EBUSY);
	assert_non_null(strstr(e->msg, "1 of 3 are free"));
	err_free(&e);
	assert_int_equal(held_count(sl, 21, NULL), 0); /* rolled back, nothing half-held */
	/* more than the host has: EDQUOT */
	assert_int_equal(local_gpu_alloc(sl, 21, 2, "A100", &e), -EDQUOT);
	assert_non_null(strstr(e->msg, "this host has 1 GPU(s) of model 'A100'"));
	err_free(&e);
	/* any model: the A100 and the last H100 */
	assert_int_equal(local_gpu_alloc(sl, 21, 2, NULL, &e), 0);
	assert_int_equal(held_count(sl, 21, "/nvidia1"), 2);

	/* a new backend on the same database sees the allocations */
	sl2 = gpu_backend(f, smi_out);
	assert_int_equal(held_count(sl2, 11, "/nvidia0"), 2);
	assert_int_equal(local_gpu_alloc(sl2, 12, 1, NULL, &e), -EBUSY);
	err_free(&e);
	/* freed when the server stops; then they can be had again */
	assert_int_equal(local_gpu_release(&sl2->base, 11, &e), 0);
	assert_int_equal(held_count(sl2, 11, NULL), 0);
	assert_int_equal(local_gpu_alloc(sl2, 12, 2, "H100", &e), 0);
	assert_int_equal(held_count(sl, 12, "/nvidia0"), 2);
	/* deleting the server row frees its GPUs (ON DELETE CASCADE) */
	assert_int_equal(db_exec(f->db, "DELETE FROM servers WHERE id = 12", &e), 0);
	assert_int_equal(held_count(sl, 12, NULL), 0);
	backend_free(sl);
	backend_free(sl2);
}

/* ---- spec ---- */

static char *img_layers[] = { "/img/rootfs/top", "/img/rootfs/base", NULL };
static char *img_cmd[] = { "/usr/bin/jupyter-server", "--sock={sock}",
			   "--ServerApp.base_url={base_url}", "--notebook-dir={home}",
			   "--name={user}:{server}", "{run_dir}", "a;touch /tmp/pwn", NULL };
static char *img_env[] = { "PATH=/opt/conda/bin:/usr/bin:/bin", "IMG=1", "HOME=/wrong", NULL };
static int img_ports[] = { 6006 };

static struct image_info test_image(void)
{
	return (struct image_info){ .name = "minimal", .manifest_digest = "sha256:abc",
				    .layers = img_layers, .cmd = img_cmd, .env = img_env,
				    .user = "jovyan", .home = "/home/jovyan",
				    .server_type = "jupyterlab", .ports = img_ports, .n_ports = 1 };
}

static bool env_has(char **env, const char *kv)
{
	for (size_t i = 0; env && env[i]; i++)
		if (strcmp(env[i], kv) == 0)
			return true;
	return false;
}

static bool env_has_key(char **env, const char *key)
{
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], key, strlen(key)) == 0 && env[i][strlen(key)] == '=')
			return true;
	return false;
}

static void test_local_spec(void **state)
{
	char *srv_env[] = { "JUPYTERHUB_API_TOKEN=secret", "IMG=2",
			    "NBGATE_API_URL=http://10.9.8.7:8000/hub/api", NULL };
	struct spawner sp = { .ops = &spawner_local_ops, .cfg = base_cfg() };
	struct spawner_server srv = { .user_id = 7, .user = "bob smith", .name = "dev",
				      .slug = "bob-20smith--dev", .base_url = "/user/bob%20smith/dev/",
				      .home = "/st/home/bob-20smith",
				      .run_dir = "/st/run/bob-20smith--dev", .env = srv_env };
	struct image_info img = test_image();
	struct local_gpu g[2] = { { .dev = "/dev/nvidia3", .index = 3, .uuid = "GPU-x" },
				  { .dev = "/dev/nvidia5", .index = 5, .uuid = "GPU-y" } };
	const struct local_gpu *held[] = { &g[0], &g[1], NULL };
	char drv[] = "/tmp/nbgate-drv-XXXXXX";
	const char *dirs[] = { "/nonexistent", drv, NULL };
	struct local_req r = { .prof = &profiles[1], .img = &img, .seccomp_profile = "/p.json",
			       .driver_dirs = dirs };
	struct sandbox_spec *s;
	struct err *e = NULL;

	assert_non_null(mkdtemp(drv));
	touch(drv, "libcuda.so.1");
	touch(drv, "libnvidia-ml.so.550.1");
	touch(drv, "libc.so.6"); /* not a driver library */
	s = local_build_spec(&sp, &srv, &r, &e);
	assert_non_null(s);
	assert_string_equal(s->id, "bob-20smith--dev");
	/* each argv element expanded alone; unknown placeholders verbatim; no shell */
	assert_string_equal(s->argv[0], "/usr/bin/jupyter-server");
	assert_string_equal(s->argv[1], "--sock=/run/nbgate/server.sock");
	assert_string_equal(s->argv[2], "--ServerApp.base_url=/user/bob%20smith/dev/");
	assert_string_equal(s->argv[3], "--notebook-dir=/home/jovyan");
	assert_string_equal(s->argv[4], "--name=bob smith:dev");
	assert_string_equal(s->argv[5], "{run_dir}"); /* host paths never leak inside */
	assert_string_equal(s->argv[6], "a;touch /tmp/pwn");
	assert_null(s->argv[7]);
	/* layers, dirs, ids */
	assert_string_equal(s->lower[0], "/img/rootfs/top");
	assert_string_equal(s->lower[1], "/img/rootfs/base");
	assert_string_equal(s->upper, "/st/run/bob-20smith--dev/upper");
	assert_string_equal(s->work, "/st/run/bob-20smith--dev/work");
	assert_string_equal(s->rootfs, "/st/run/bob-20smith--dev/rootfs");
	assert_string_equal(s->sock_dir, "/st/run/bob-20smith--dev/sock");
	assert_string_equal(s->log_path, "/st/run/bob-20smith--dev/server.log");
	assert_string_equal(s->home_src, "/st/home/bob-20smith");
	assert_string_equal(s->home_dst, "/home/jovyan");
	assert_int_equal(s->uid, 200007);
	assert_int_equal(s->gid, 200007);
	assert_string_equal(s->user_name, "jovyan");
	/* limits and network from the profile */
	assert_int_equal(s->cpu_millis, 4000);
	assert_int_equal(s->memory_bytes, 8LL << 30);
	assert_int_equal(s->pids_max, 300);
	assert_int_equal(s->net, SANDBOX_NET_EGRESS);
	/* egress: the hub on a private address stays reachable (plus the
	 * host's resolvers, whatever this machine's resolv.conf says) */
	assert_non_null(s->net_allow);
	assert_true(env_has(s->net_allow, "10.9.8.7"));
	assert_int_equal(s->stop_grace_ms, 3000);
	assert_string_equal(s->seccomp_profile, "/p.json");
	assert_int_equal(s->n_ports, 1);
	assert_int_equal(s->ports[0].port, 6006);
	assert_string_equal(s->ports[0].socket_name, "port-6006.sock");
	/* env: image, then gateway, then forced HOME/USER; no GPUs */
	assert_true(env_has(s->env, "PATH=/opt/conda/bin:/usr/bin:/bin"));
	assert_true(env_has(s->env, "IMG=2"));
	assert_true(env_has(s->env, "JUPYTERHUB_API_TOKEN=secret"));
	assert_true(env_has(s->env, "HOME=/home/jovyan"));
	assert_false(env_has(s->env, "HOME=/wrong"));
	assert_true(env_has(s->env, "USER=jovyan"));
	assert_true(env_has(s->env, "SHELL=/bin/bash"));
	assert_true(env_has(s->env, "LANG=C.UTF-8"));
	assert_true(env_has(s->env, "CUDA_VISIBLE_DEVICES="));
	assert_true(env_has(s->env, "NVIDIA_VISIBLE_DEVICES=void"));
	assert_false(env_has_key(s->env, "JUPYTER_RUNTIME_DIR"));
	assert_null(s->devices[0]);
	/* and the sandbox runtime accepts it */
	if (sandbox_spec_validate(s, &e) < 0)
		fail_msg("spec rejected: %s", e->msg);
	sandbox_spec_free(s);

	/* defaults: pids, network none; and GPUs bound with their env */
	r.prof = &profiles[2];
	r.gpus = held;
	r.n_gpus = 2;
	s = local_build_spec(&sp, &srv, &r, &e);
	assert_null(s->net_allow); /* network none: nothing to punch through */
	assert_non_null(s);
	assert_int_equal(s->pids_max, LOCAL_PIDS_DEFAULT);
	assert_int_equal(s->net, SANDBOX_NET_NONE);
	assert_string_equal(s->devices[0], "/dev/nvidia3");
	assert_string_equal(s->devices[1], "/dev/nvidia5");
	assert_true(env_has(s->env, "CUDA_VISIBLE_DEVICES=GPU-x,GPU-y"));
	assert_true(env_has(s->env, "NVIDIA_VISIBLE_DEVICES=3,5"));
	/* the driver libraries found are bound read-only, their dir on the loader path */
	char *want1 = xasprintf("%s/libcuda.so.1", drv), *want2 = xasprintf("%s/libnvidia-ml.so.550.1", drv);
	char *ld = xasprintf("LD_LIBRARY_PATH=%s", drv);
	bool b1 = false, b2 = false, libc = false;

	for (size_t i = 0; s->ro_binds[i]; i++) {
		b1 |= !strcmp(s->ro_binds[i], want1);
		b2 |= !strcmp(s->ro_binds[i], want2);
		libc |= strstr(s->ro_binds[i], "libc.so") != NULL;
	}
	assert_true(b1 && b2 && !libc);
	assert_true(env_has(s->env, ld));
	free(want1);
	free(want2);
	free(ld);
	sandbox_spec_free(s);
	/* without nvidia-smi: the bound nodes, counted from 0 */
	g[0].uuid = NULL;
	s = local_build_spec(&sp, &srv, &r, &e);
	assert_true(env_has(s->env, "CUDA_VISIBLE_DEVICES=0,1"));
	sandbox_spec_free(s);

	for (size_t i = 0; i < 3; i++) {
		static const char *const names[] = { "libcuda.so.1", "libnvidia-ml.so.550.1",
						     "libc.so.6" };
		char *p = xasprintf("%s/%s", drv, names[i]);

		unlink(p);
		free(p);
	}
	rmdir(drv);
	/* an image without a command is refused, naming the image */
	img.cmd = NULL;
	assert_null(local_build_spec(&sp, &srv, &r, &e));
	assert_non_null(strstr(e->msg, "image 'minimal'"));
	err_free(&e);
}

static void test_local_sock_path_limit(void **state)
{
	char p[LOCAL_SOCK_MAX + 2];
	struct err *e = NULL;
	struct sandbox_spec s = { 0 };
	struct sandbox_port port = { .port = 8080, .socket_name = "port-8080.sock" };

	memset(p, 'a', sizeof(p));
	p[0] = '/';
	p[LOCAL_SOCK_MAX] = '\0'; /* 107 bytes: fits */
	assert_int_equal(local_check_sock_path(p, &e), 0);
	p[LOCAL_SOCK_MAX] = 'a';
	p[LOCAL_SOCK_MAX + 1] = '\0'; /* 108: does not */
	assert_int_equal(local_check_sock_path(p, &e), -ENAMETOOLONG);
	assert_non_null(strstr(e->msg, "is 108 bytes, longer than the 107"));
	assert_non_null(strstr(e->msg, "shorter state directory"));
	err_free(&e);

	/* the spec check covers the port sockets too: server.sock fits, port-8080.sock not */
	char dir[LOCAL_SOCK_MAX];
	size_t dlen = LOCAL_SOCK_MAX - strlen("/server.sock");

	memset(dir, 'd', dlen);
	dir[0] = '/';
	dir[dlen] = '\0';
	s.sock_dir = dir;
	assert_int_equal(local_check_spec_socks(&s, &e), 0);
	s.ports = &port;
	s.n_ports = 1;
	assert_int_equal(local_check_spec_socks(&s, &e), -ENAMETOOLONG);
	assert_non_null(strstr(e->msg, "port-8080.sock"));
	err_free(&e);
}

static int n_events;
static char last_msg[256];

static void count_event(void *arg, struct spawner_server *srv, const struct spawner_event *ev)
{
	n_events++;
	snprintf(last_msg, sizeof(last_msg), "%s", ev->message ? ev->message : "");
}

/* The status pipe is read without blocking, in pieces, until EOF. */
static void test_local_status_pipe(void **state)
{
	struct spawner_server srv = { .slug = "a", .base_url = "/user/a/" };
	struct spawner sp = { .ops = &spawner_local_ops, .cfg = base_cfg() };
	struct local_server ls = { .status_fd = -1 };
	int fds[2];

	sp.cfg.on_event = count_event;
	ls.w.sp = &sp;
	ls.w.srv = &srv;
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	ls.status_fd = fds[0];
	local_tick(&ls.w); /* nothing yet: returns at once */
	assert_int_equal(n_events, 0);
	assert_int_equal(write(fds[1], "up 220", 6), 6);
	local_tick(&ls.w); /* half a line */
	assert_int_equal(n_events, 0);
	assert_int_equal(write(fds[1], "00\nfailed net pasta: exit 1\n", 28), 28);
	local_tick(&ls.w);
	assert_int_equal(n_events, 1);
	assert_string_equal(last_msg, "sandbox up (22 ms)");
	assert_string_equal(ls.w.fail_reason, "sandbox setup failed at step 'net': pasta: exit 1");
	assert_true(ls.status_fd >= 0);
	close(fds[1]);
	local_tick(&ls.w); /* EOF closes our end */
	assert_int_equal(ls.status_fd, -1);
	free(srv.message);
	free(ls.w.fail_reason);
}

static bool exists(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);
	bool r = access(p, F_OK) == 0;

	free(p);
	return r;
}

/* upper/ survives a restart with the same image and is reset when the image changes */
static void test_local_upper_reset(void **state)
{
	char run[] = "/tmp/nbgate-run-XXXXXX";
	struct err *e = NULL;
	char *p;

	assert_non_null(mkdtemp(run));
	assert_int_equal(reset_upper_if_new_image(run, "sha256:one", &e), 0);
	p = xasprintf("%s/upper", run);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xasprintf("%s/upper/sub", run);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	touch(run, "upper/sub/installed.py");
	assert_int_equal(reset_upper_if_new_image(run, "sha256:one", &e), 0);
	assert_true(exists(run, "upper/sub/installed.py"));
	assert_int_equal(reset_upper_if_new_image(run, "sha256:two", &e), 0);
	assert_false(exists(run, "upper"));
	assert_int_equal(reset_upper_if_new_image(run, "sha256:two", &e), 0);
	p = xasprintf("%s/image.digest", run);
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(rmdir(run), 0);
}

static void test_local_status_lines(void **state)
{
	struct spawner_server srv = { .slug = "a", .base_url = "/user/a/" };
	struct spawner sp = { .ops = &spawner_local_ops, .cfg = base_cfg() };
	struct local_server ls = { .status_fd = -1 };
	char line1[] = "failed mount overlay: No such file or directory";
	char line2[] = "failed";

	ls.w.sp = &sp;
	ls.w.srv = &srv;
	local_status_line(&ls, line1);
	assert_string_equal(ls.w.fail_reason,
			    "sandbox setup failed at step 'mount': overlay: No such file or directory");
	local_status_line(&ls, line2); /* unknown line: ignored, reason kept */
	assert_non_null(strstr(ls.w.fail_reason, "'mount'"));
	free(ls.w.fail_reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_local_gpu_inventory, gpu_setup, gpu_teardown),
		cmocka_unit_test_setup_teardown(test_local_gpu_alloc, gpu_setup, gpu_teardown),
		cmocka_unit_test(test_local_spec),
		cmocka_unit_test(test_local_sock_path_limit),
		cmocka_unit_test(test_local_status_lines),
		cmocka_unit_test(test_local_upper_reset),
		cmocka_unit_test(test_local_status_pipe),
	};

	log_setup(LOG_ERR, LOG_FORMAT_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
