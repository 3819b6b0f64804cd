/*
 * Unit tests for the Kubernetes REST client (spawner/k8s_api.c,
 * k8s_config.c, k8s_watch.c): kubeconfig and in-cluster loading from temp
 * trees, token rotation, Status messages, k8s_errno, quantities on both
 * sides of every limit, the watch line splitter and event parser, paths
 * and the JSON path helper; the transport only where no server is needed
 * (a refused connection, a watch stopped while its TLS handshake hangs).
 * The transport against a server is tests/k8s/ (the contract double).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spawner/k8s_api.c"
#include "spawner/k8s_config.c"
#include "spawner/k8s_watch.c"

/* ---- fixtures ---- */

/* A real (self-signed) CA certificate, its key thrown away: curl must be
 * able to load it before it starts a handshake. */
static const char test_ca[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBrzCCAVWgAwIBAgIUKssaTh36FHK7KluRFbd18j+ddlkwCgYIKoZIzj0EAwIw\n"
	"LDEqMCgGA1UEAwwhbmJnYXRlIHVuaXQgdGVzdCBDQSAobm8ga2V5IGtlcHQpMCAX\n"
	"DTI2MTEyMzExMjQwM1oYDzIxMjYxMDMwMTEyNDAzWjAsMSowKAYDVQQDDCFuYmdh\n"
	"dGUgdW5pdCB0ZXN0IENBIChubyBrZXkga2VwdCkwWTATBgcqhkjOPQIBBggqhkjO\n"
	"PQMBBwNCAATZj5vCsvUvmGXY6dEVJvhXWiklPuq0tZ4U7cdzkpavjdhJ5OmcyloG\n"
	"lJDJXCViui0Y+oeAlCWrQJXiKj0y6gT6o1MwUTAdBgNVHQ4EFgQUsdS/HBvOxZm3\n"
	"f/AWDNHf6gdcbzIwHwYDVR0jBBgwFoAUsdS/HBvOxZm3f/AWDNHf6gdcbzIwDwYD\n"
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAnt8WJVBlY2zjbtMLbRn+\n"
	"QPp0NWn++V3QJQZyMpbU6m8CIFWas/toHKYMHWSiHbUybk0USN106caiM3uRR25A\n"
	"SPJb\n"
	"-----END CERTIFICATE-----\n";

static char tmp[64];

static int setup_tmp(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/nbgate-k8s-api-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int teardown_tmp(void **state)
{
	return nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *b64(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL));

	sodium_bin2base64(out, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL),
			  (const unsigned char *)s, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* A kubeconfig with two contexts ("a": token, "b": client cert) and
 * whatever `extra_cluster` / `extra_user` add to cluster c1 / user u1. */
static void kubeconfig(const char *current, const char *extra_cluster, const char *extra_user)
{
	cleanup_free char *cert = b64("-----BEGIN CERTIFICATE-----\nCERT\n");
	cleanup_free char *key = b64("-----BEGIN PRIVATE KEY-----\nKEY\n");
	cleanup_free char *ca = b64("-----BEGIN CERTIFICATE-----\nCA-DATA\n");
	cleanup_free char *y = xasprintf(
		"apiVersion: v1\nkind: Config\n%s%s\n"
		"clusters:\n"
		"- name: c1\n  cluster:\n    server: https://127.0.0.1:6443/\n"
		"    certificate-authority: ca.crt\n%s"
		"- name: c2\n  cluster:\n    server: \"https://[::1]:443\"\n"
		"    certificate-authority-data: %s\n"
		"users:\n"
		"- name: u1\n  user:\n%s"
		"- name: u2\n  user:\n    client-certificate-data: %s\n"
		"    client-key-data: %s\n"
		"contexts:\n"
		"- name: a\n  context: {cluster: c1, user: u1, namespace: team-a}\n"
		"- name: b\n  context:\n    cluster: c2\n    user: u2\n",
		current ? "current-context: " : "", current ? current : "",
		extra_cluster ? extra_cluster : "", ca,
		extra_user ? extra_user : "    token: tok-abc\n", cert, key);

	put("kubeconfig", y);
	put("ca.crt", "-----BEGIN CERTIFICATE-----\nCA-FILE\n");
}

static int load(const char *context, const char *ns, struct k8s_client **c, struct err **err)
{
	char p[256];
	struct k8s_client_opts o = { .kubeconfig = p, .context = context, .ns = ns };

	snprintf(p, sizeof(p), "%s/kubeconfig", tmp);
	return k8s_client_new(&o, c, err);
}

/* Loads and expects a failure whose message holds want. */
static void load_fails(const char *context, const char *want)
{
	struct k8s_client *c = NULL;
	struct err *err = NULL;

	assert_true(load(context, NULL, &c, &err) < 0);
	assert_null(c);
	assert_non_null(err);
	if (!strstr(err->msg, want))
		fail_msg("message '%s' lacks '%s'", err->msg, want);
	assert_non_null(strstr(err->msg, "kubeconfig /tmp/"));
	err_free(&err);
}

/* ---- kubeconfig ---- */

static void test_kubeconfig_token_current_context(void **state)
{
	struct k8s_client *c = NULL;
	struct err *err = NULL;
	char want[256];

	kubeconfig("a", NULL, NULL);
	assert_int_equal(load(NULL, NULL, &c, &err), 0);
	assert_string_equal(k8s_client_server(c), "https://127.0.0.1:6443");
	assert_string_equal(k8s_client_namespace(c), "team-a");
	assert_string_equal(c->token, "tok-abc");
	assert_null(c->token_file);
	assert_null(c->cert_data);
	/* a relative CA path is relative to the kubeconfig's folder */
	snprintf(want, sizeof(want), "%s/ca.crt", tmp);
	assert_string_equal(c->ca_file, want);
	assert_null(c->ca_data);
	k8s_client_free(c);
}

static void test_kubeconfig_cert_context_and_ns(void **state)
{
	struct k8s_client *c = NULL;
	struct err *err = NULL;

	/* current-context a, but the caller names b; no namespace -> default */
	kubeconfig("a", NULL, NULL);
	assert_int_equal(load("b", NULL, &c, &err), 0);
	assert_string_equal(k8s_client_server(c), "https://[::1]:443");
	assert_string_equal(k8s_client_namespace(c), "default");
	assert_null(c->token);
	assert_non_null(c->cert_data);
	assert_string_equal(c->cert_data, "-----BEGIN CERTIFICATE-----\nCERT\n");
	assert_int_equal(c->cert_len, strlen("-----BEGIN CERTIFICATE-----\nCERT\n"));
	assert_string_equal(c->key_data, "-----BEGIN PRIVATE KEY-----\nKEY\n");
	/* CA data wins over a file, and is decoded */
	assert_null(c->ca_file);
	assert_string_equal(c->ca_data, "-----BEGIN CERTIFICATE-----\nCA-DATA\n");
	k8s_client_free(c);
	/* the caller's namespace overrides the context's */
	assert_int_equal(load("a", "nbgate-users", &c, &err), 0);
	assert_string_equal(k8s_client_namespace(c), "nbgate-users");
	k8s_client_free(c);
}

static void test_kubeconfig_token_file(void **state)
{
	struct k8s_client *c = NULL;
	struct err *err = NULL;
	char *tok = NULL;
	uint64_t gen = 0, gen2 = 0;

	kubeconfig("a", NULL, "    tokenFile: sa-token\n");
	put("sa-token", "first-token\n");
	assert_int_equal(load(NULL, NULL, &c, &err), 0);
	assert_non_null(c->token_file);
	assert_int_equal(k8s__token_get(c, 0, false, &tok, &gen, &err), 0);
	assert_string_equal(tok, "first-token");
	free(tok);
	/* rotation: a new file (other size) is read on the next call */
	put("sa-token", "second-token-longer\n");
	assert_int_equal(k8s__token_get(c, 0, false, &tok, &gen2, &err), 0);
	assert_string_equal(tok, "second-token-longer");
	assert_true(gen2 > gen);
	free(tok);
	/* unchanged: no re-read; forced for the generation in use: re-read */
	assert_int_equal(k8s__token_get(c, 0, false, &tok, &gen, &err), 0);
	assert_int_equal(gen, gen2);
	free(tok);
	assert_int_equal(k8s__token_get(c, gen2, true, &tok, &gen, &err), 0);
	assert_int_equal(gen, gen2 + 1);
	free(tok);
	/* a stale generation (someone else re-read already) is not forced */
	assert_int_equal(k8s__token_get(c, gen2, true, &tok, &gen2, &err), 0);
	assert_int_equal(gen, gen2);
	free(tok);
	/* a token that is not printable ASCII is refused */
	put("sa-token", "bad\001token\n");
	assert_true(k8s__token_get(c, 0, false, &tok, &gen, &err) < 0);
	assert_non_null(strstr(err->msg, "printable"));
	err_free(&err);
	k8s_client_free(c);
	/* a missing token file fails at load */
	kubeconfig("a", NULL, "    tokenFile: /nonexistent/token\n");
	load_fails(NULL, "/nonexistent/token");
}

static void test_kubeconfig_missing_fields(void **state)
{
	kubeconfig(NULL, NULL, NULL);
	load_fails(NULL, "current-context: missing");
	kubeconfig("zz", NULL, NULL);
	load_fails(NULL, "contexts: no entry named 'zz'");
	put("kubeconfig", "current-context: a\ncontexts:\n- name: a\n  context: {user: u}\n");
	load_fails(NULL, "contexts[0].context.cluster: missing");
	put("kubeconfig", "current-context: a\ncontexts:\n- name: x\n  context: {}\n"
			  "- name: a\n  context: {cluster: c, user: u}\n");
	load_fails(NULL, "clusters: missing");
	put("kubeconfig", "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, "
			  "user: u}\nclusters:\n- name: c\n  cluster: {certificate-authority-data: "
			  "eA==}\n");
	load_fails(NULL, "clusters[0].cluster.server: missing");
	kubeconfig("a", NULL, "    foo: bar\n");
	load_fails(NULL, "users[0].user: no credentials");
	kubeconfig("a", NULL, "    client-certificate: c.pem\n");
	load_fails(NULL, "users[0].user.client-key-data: missing");
	kubeconfig("a", NULL, "    exec: {command: aws}\n");
	load_fails(NULL, "users[0].user.exec: not supported");
	kubeconfig("a", NULL, "    token: \"\"\n");
	load_fails(NULL, "users[0].user.token: expected a non-empty string");
	kubeconfig("b", "    extra: 1\n", "    client-certificate-data: '!!!'\n"
					    "    client-key-data: eA==\n");
	load_fails("a", "client-certificate-data: not base64");
	put("kubeconfig", "- just\n- a list\n");
	load_fails(NULL, "not a kubeconfig");
	put("kubeconfig", "a: [unclosed\n");
	load_fails(NULL, "line ");
}

static void test_kubeconfig_insecure_refused(void **state)
{
	kubeconfig("a", "    insecure-skip-tls-verify: true\n", NULL);
	load_fails(NULL, "clusters[0].cluster.insecure-skip-tls-verify: refused: nbgate always "
			 "verifies");
	kubeconfig("a", "    insecure-skip-tls-verify: \"true\"\n", NULL);
	load_fails(NULL, "insecure-skip-tls-verify: refused");
	kubeconfig("a", "    proxy-url: http://proxy:3128\n", NULL);
	load_fails(NULL, "proxy-url: not supported");
	/* false is fine */
	struct k8s_client *c = NULL;
	struct err *err = NULL;

	kubeconfig("a", "    insecure-skip-tls-verify: false\n", NULL);
	assert_int_equal(load(NULL, NULL, &c, &err), 0);
	k8s_client_free(c);
	/* plain http is refused */
	put("kubeconfig", "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, "
			  "user: u}\nclusters:\n- name: c\n  cluster: {server: 'http://x:8080'}\n"
			  "users:\n- name: u\n  user: {token: t}\n");
	load_fails(NULL, "not an https:// URL");
	/* a namespace that is not a DNS label */
	kubeconfig("a", NULL, NULL);
	assert_true(load(NULL, "Bad_NS", &c, &err) < 0);
	assert_non_null(strstr(err->msg, "namespace 'Bad_NS'"));
	err_free(&err);
}

static void test_yaml_limits(void **state)
{
	cJSON *j = NULL;
	struct err *err = NULL;
	struct buf b;
	const char *dup = "a: 1\na: 2\n";
	const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
			   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";

	assert_true(k8s__yaml_to_json(dup, strlen(dup), &j, &err) < 0);
	assert_non_null(strstr(err->msg, "duplicate key 'a'"));
	err_free(&err);
	assert_true(k8s__yaml_to_json(bomb, strlen(bomb), &j, &err) < 0);
	assert_non_null(strstr(err->msg, "100000 nodes"));
	err_free(&err);
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 70; i++)
		buf_appends(&b, "[");
	assert_true(k8s__yaml_to_json(b.data, b.len, &j, &err) < 0);
	err_free(&err);
	buf_release(&b);
	/* core schema scalars; quoted stays a string */
	const char *ok = "n: null\nt: true\nq: \"true\"\ni: -12\nf: 1.5e3\ns: 1.2.3\ne: ''\n";

	assert_int_equal(k8s__yaml_to_json(ok, strlen(ok), &j, &err), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "n")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "t")));
	assert_string_equal(cJSON_GetObjectItem(j, "q")->valuestring, "true");
	assert_int_equal((int)cJSON_GetObjectItem(j, "i")->valuedouble, -12);
	assert_int_equal((int)cJSON_GetObjectItem(j, "f")->valuedouble, 1500);
	assert_string_equal(cJSON_GetObjectItem(j, "s")->valuestring, "1.2.3");
	assert_string_equal(cJSON_GetObjectItem(j, "e")->valuestring, "");
	cJSON_Delete(j);
}

/* ---- in-cluster ---- */

static void sa_tree(const char *ns)
{
	static const char *const dirs[] = { "var", "var/run", "var/run/secrets",
					    "var/run/secrets/kubernetes.io",
					    "var/run/secrets/kubernetes.io/serviceaccount" };
	char p[256];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, dirs[i]);
		mkdir(p, 0700);
	}
	put("var/run/secrets/kubernetes.io/serviceaccount/token", "sa-token-1");
	put("var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CA");
	if (ns)
		put("var/run/secrets/kubernetes.io/serviceaccount/namespace", ns);
}

static void test_in_cluster(void **state)
{
	struct k8s_client_opts o = { .in_cluster = true, .in_cluster_root = tmp };
	struct k8s_client *c = NULL;
	struct err *err = NULL;

	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	assert_int_equal(k8s_client_new(&o, &c, &err), -ENOENT);
	assert_non_null(strstr(err->msg, "not running in a pod"));
	err_free(&err);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(k8s_client_new(&o, &c, &err), -ENOENT);
	assert_non_null(strstr(err->msg, "no service account token"));
	err_free(&err);
	sa_tree("nbgate-users\n");
	assert_int_equal(k8s_client_new(&o, &c, &err), 0);
	assert_string_equal(k8s_client_server(c), "https://10.96.0.1:443");
	assert_string_equal(k8s_client_namespace(c), "nbgate-users");
	assert_string_equal(c->token, "sa-token-1");
	assert_non_null(strstr(c->ca_file, "/serviceaccount/ca.crt"));
	k8s_client_free(c);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	o.ns = "other";
	assert_int_equal(k8s_client_new(&o, &c, &err), 0);
	assert_string_equal(k8s_client_server(c), "https://[fd00::1]:443");
	assert_string_equal(k8s_client_namespace(c), "other");
	k8s_client_free(c);
	setenv("KUBERNETES_SERVICE_PORT", "443/tcp", 1);
	assert_true(k8s_client_new(&o, &c, &err) < 0);
	err_free(&err);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* ---- Status messages, errno ---- */

static char *msg_for(const char *verb, const char *res, const char *name, const char *ns,
		     long st, const char *body)
{
	cleanup_json cJSON *j = body ? cJSON_Parse(body) : NULL;

	return k8s_status_message(verb, res, name, ns, st, j);
}

static void test_status_messages(void **state)
{
	char *m;

	m = msg_for("create", "pods", "nb-alice", "nbgate-users", 403,
		    "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods is forbidden: "
		    "User \\\"system:serviceaccount:nbgate:nbgate\\\" cannot create resource "
		    "\\\"pods\\\" in API group \\\"\\\" in the namespace \\\"nbgate-users\\\"\","
		    "\"reason\":\"Forbidden\",\"details\":{\"kind\":\"pods\"},\"code\":403}");
	assert_string_equal(m, "create pods \"nb-alice\": 403 Forbidden: the service account "
			       "lacks RBAC permission to create pods in namespace \"nbgate-users\": "
			       "pods is forbidden: User \"system:serviceaccount:nbgate:nbgate\" "
			       "cannot create resource \"pods\" in API group \"\" in the namespace "
			       "\"nbgate-users\"");
	free(m);
	/* admission also answers 403: no RBAC claim then */
	m = msg_for("create", "pods", "nb-x", "ns", 403,
		    "{\"kind\":\"Status\",\"message\":\"pods \\\"nb-x\\\" is forbidden: violates "
		    "PodSecurity \\\"restricted:latest\\\": privileged\",\"code\":403}");
	assert_null(strstr(m, "RBAC"));
	assert_non_null(strstr(m, "403 Forbidden: pods \"nb-x\" is forbidden: violates PodSecurity"));
	free(m);
	/* no body at all: still says which permission */
	m = msg_for("list", "events", NULL, "ns", 403, NULL);
	assert_string_equal(m, "list events: 403 Forbidden: the service account lacks RBAC "
			       "permission to list events in namespace \"ns\"");
	free(m);
	m = msg_for("create", "nodes/proxy", NULL, NULL, 403, "{}");
	assert_non_null(strstr(m, "to create nodes/proxy (cluster scope)"));
	free(m);
	m = msg_for("get", "pods", "nb-x", "ns", 404,
		    "{\"kind\":\"Status\",\"message\":\"pods \\\"nb-x\\\" not found\","
		    "\"reason\":\"NotFound\",\"code\":404}");
	assert_string_equal(m, "get pods \"nb-x\": 404 Not Found: pods \"nb-x\" not found");
	free(m);
	m = msg_for("create", "persistentvolumeclaims", "home-a", "ns", 409,
		    "{\"message\":\"persistentvolumeclaims \\\"home-a\\\" already exists\","
		    "\"reason\":\"AlreadyExists\",\"code\":409}");
	assert_string_equal(m, "create persistentvolumeclaims \"home-a\": 409 Conflict: "
			       "persistentvolumeclaims \"home-a\" already exists");
	free(m);
	m = msg_for("watch", "pods", NULL, "ns", 410,
		    "{\"message\":\"too old resource version: 5 (90)\",\"reason\":\"Expired\"}");
	assert_string_equal(m, "watch pods: 410 Gone: too old resource version: 5 (90)");
	free(m);
	/* 422: causes the message does not already hold are added */
	m = msg_for("create", "pods", "nb-y", "ns", 422,
		    "{\"kind\":\"Status\",\"message\":\"Pod \\\"nb-y\\\" is invalid: "
		    "spec.containers[0].image: Required value\",\"reason\":\"Invalid\","
		    "\"details\":{\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":"
		    "\"Required value\",\"field\":\"spec.containers[0].image\"},{\"reason\":"
		    "\"FieldValueInvalid\",\"message\":\"unknown field \\\"foo\\\"\",\"field\":"
		    "\"spec.foo\"}]},\"code\":422}");
	assert_string_equal(m, "create pods \"nb-y\": 422 Unprocessable Entity: Pod \"nb-y\" is "
			       "invalid: spec.containers[0].image: Required value "
			       "(spec.foo: unknown field \"foo\")");
	free(m);
	/* not a Status (a proxy's HTML), 401, control bytes, odd statuses */
	m = msg_for("get", "pods", "p", "ns", 502, NULL);
	assert_string_equal(m, "get pods \"p\": 502 Bad Gateway: no Status in the answer");
	free(m);
	m = msg_for("get", "pods", "p", "ns", 401, "{\"message\":\"Unauthorized\"}");
	assert_non_null(strstr(m, "401 Unauthorized: the API server refused nbgate's "
				  "credentials"));
	free(m);
	m = msg_for("get", "pods", "p\n", "ns", 599, "{\"message\":\"a\\u0001b\"}");
	assert_string_equal(m, "get pods \"p?\": 599: a?b");
	free(m);
}

static void test_errno(void **state)
{
	static const struct { long st; int e; } t[] = {
		{ 400, -EINVAL }, { 422, -EINVAL }, { 401, -EACCES }, { 403, -EPERM },
		{ 404, -ENOENT }, { 409, -EEXIST }, { 410, -ESTALE }, { 429, -EAGAIN },
		{ 500, -EIO }, { 503, -EIO }, { 599, -EIO }, { 600, -EPROTO }, { 418, -EPROTO },
		{ 200, -EPROTO }, { 0, -EPROTO },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(k8s_errno(t[i].st), t[i].e);
}

static void test_status_err(void **state)
{
	struct err *err = NULL;
	const char *b = "{\"message\":\"pods \\\"x\\\" already exists\"}";

	assert_int_equal(k8s__status_err(&err, "create", "pods", "x", "ns", 409, b, strlen(b)),
			 -EEXIST);
	assert_int_equal(err->code, EEXIST);
	assert_non_null(strstr(err->msg, "already exists"));
	err_free(&err);
	/* a body that is not JSON, and a truncated one */
	assert_int_equal(k8s__status_err(&err, "get", "pods", "x", "ns", 500, "<html>", 6), -EIO);
	assert_non_null(strstr(err->msg, "no Status"));
	err_free(&err);
	assert_int_equal(k8s__status_err(&err, "get", "pods", "x", "ns", 404, b, 10), -ENOENT);
	err_free(&err);
}

/* ---- quantities ---- */

static void qok(const char *s, bool milli, int64_t want)
{
	int64_t v = -1;

	if (k8s_quantity_parse(s, milli, &v) != 0)
		fail_msg("'%s' refused", s);
	if (v != want)
		fail_msg("'%s' (milli %d): %lld, want %lld", s, milli, (long long)v,
			 (long long)want);
}

static void qbad(const char *s, bool milli)
{
	int64_t v = 42;

	if (k8s_quantity_parse(s, milli, &v) != -EINVAL)
		fail_msg("'%s' (milli %d) accepted: %lld", s, milli, (long long)v);
	assert_int_equal(v, 42);
}

static void test_quantity(void **state)
{
	qok("500m", true, 500);
	qok("2", true, 2000);
	qok("0.5", true, 500);
	qok(".5", true, 500);
	qok("1.", true, 1000);
	qok("+1", true, 1000);
	qok("0.0001", true, 1); /* rounded up, as MilliValue() */
	qok("1n", true, 1);
	qok("0", true, 0);
	qok("1Gi", false, 1073741824);
	qok("1.5G", false, 1500000000);
	qok("100Ki", false, 102400);
	qok("1e3", false, 1000);
	qok("1E3", false, 1000);
	qok("1E", false, 1000000000000000000);
	qok("2e-3", true, 2);
	qok("100m", false, 1); /* a tenth of a byte rounds up */
	qok("1k", false, 1000);
	qok("1Mi", false, 1048576);
	qok("1u", false, 1);
	/* the int64 limit, both sides */
	qok("9223372036854775807", false, INT64_MAX);
	qbad("9223372036854775808", false);
	qok("9223372036854775807m", true, INT64_MAX);
	qbad("9223372036854775808m", true);
	qok("9223372036854775", true, 9223372036854775000);
	qbad("9223372036854776", true);
	qok("7Ei", false, 7LL << 60);
	qbad("8Ei", false);
	qok("9E", false, 9000000000000000000);
	qbad("10E", false);
	qok("8191Pi", false, 8191LL << 50);
	qbad("8192Pi", false);
	qok("9223372036854775807e0", false, INT64_MAX);
	qbad("1e19", false);
	qok("1e-1000", false, 1);
	qok("0e1000", false, 0);
	qok("00000000000000000000000000001", false, 1);
	qbad("123456789012345678901", false); /* more than 20 significant digits */
	/* syntax */
	qbad("", false);
	qbad(".", false);
	qbad("-1", false);
	qbad("1 ", false);
	qbad("1Kb", false);
	qbad("1ki", false);
	qbad("1e", false);
	qbad("1e+", false);
	qbad("1..2", false);
	qbad("1.2.3", false);
	qbad("Gi", false);
	qbad("1e10001", false);
	qbad(NULL, false);
}

/* ---- JSON path, paths ---- */

static void test_json_str_and_paths(void **state)
{
	cleanup_json cJSON *j = cJSON_Parse("{\"metadata\":{\"name\":\"nb-a\",\"labels\":"
					    "{\"x\":\"1\"},\"n\":3},\"status\":{\"podIP\":"
					    "\"10.0.0.5\"}}");
	char *p;
	struct buf b;

	assert_string_equal(k8s_json_str(j, "metadata.name"), "nb-a");
	assert_string_equal(k8s_json_str(j, "status.podIP"), "10.0.0.5");
	assert_string_equal(k8s_json_str(j, "metadata.labels.x"), "1");
	assert_null(k8s_json_str(j, "metadata.n"));
	assert_null(k8s_json_str(j, "metadata"));
	assert_null(k8s_json_str(j, "metadata.name.more"));
	assert_null(k8s_json_str(j, "nope.name"));
	assert_null(k8s_json_str(j, "metadata."));
	assert_null(k8s_json_str(NULL, "metadata.name"));
	assert_true(k8s__json_at(j, "metadata.n") != NULL);

	p = k8s__path(K8S_POD, "ns", "nb-a", "log");
	assert_string_equal(p, "/api/v1/namespaces/ns/pods/nb-a/log");
	free(p);
	p = k8s__path(K8S_JOB, "ns", NULL, NULL);
	assert_string_equal(p, "/apis/batch/v1/namespaces/ns/jobs");
	free(p);
	p = k8s__path(K8S_SECRET, "a/b", "x?y z", NULL);
	assert_string_equal(p, "/api/v1/namespaces/a%2Fb/secrets/x%3Fy%20z");
	free(p);
	buf_init(&b, 4096);
	buf_appends(&b, "/x");
	k8s__query_add(&b, "labelSelector", "app.kubernetes.io/managed-by=nbgate,a in (b,c)");
	k8s__query_add(&b, "fieldSelector", NULL);
	k8s__query_add(&b, "watch", "1");
	assert_string_equal(b.data, "/x?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dnbgate"
				    "%2Ca%20in%20%28b%2Cc%29&watch=1");
	buf_release(&b);
	assert_string_equal(k8s_kind_info(K8S_PVC)->plural, "persistentvolumeclaims");
	assert_string_equal(k8s_kind_info(K8S_JOB)->api_version, "batch/v1");
	assert_null(k8s_kind_info(K8S_KIND_COUNT));
}

/* ---- watch lines and events ---- */

struct collected {
	char lines[16][64];
	int n;
	int fail_at; /* 1-based line whose callback fails, 0 = none */
};

static int collect(void *arg, const char *line, size_t len, struct err **err)
{
	struct collected *c = arg;

	if (c->n >= 16 || len >= 64)
		return err_set(err, E2BIG, "test: too many or too long");
	memcpy(c->lines[c->n], line, len);
	c->lines[c->n][len] = '\0';
	if (++c->n == c->fail_at)
		return err_set(err, EBADMSG, "test: fail here");
	return 0;
}

static void test_lines_split(void **state)
{
	const char *s = "{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\":\n3}\npartial";
	struct collected whole = { 0 }, bytes = { 0 };
	struct k8s__lines l;
	struct err *err = NULL;

	k8s__lines_init(&l, 64);
	assert_int_equal(k8s__lines_feed(&l, s, strlen(s), collect, &whole, &err), 0);
	k8s__lines_release(&l);
	assert_int_equal(whole.n, 5);
	assert_string_equal(whole.lines[0], "{\"a\":1}");
	assert_string_equal(whole.lines[1], "");
	assert_string_equal(whole.lines[2], "{\"b\":2}");
	assert_string_equal(whole.lines[3], "{\"c\":");
	assert_string_equal(whole.lines[4], "3}");
	/* byte by byte: the same lines */
	k8s__lines_init(&l, 64);
	for (size_t i = 0; i < strlen(s); i++)
		assert_int_equal(k8s__lines_feed(&l, s + i, 1, collect, &bytes, &err), 0);
	assert_int_equal(bytes.n, whole.n);
	for (int i = 0; i < whole.n; i++)
		assert_string_equal(bytes.lines[i], whole.lines[i]);
	assert_int_equal(l.partial.len, strlen("partial"));
	k8s__lines_release(&l);
}

static void test_lines_cap(void **state)
{
	char line[40];
	struct collected c = { 0 };
	struct k8s__lines l;
	struct err *err = NULL;

	/* exactly the cap passes (split over two feeds), one more fails */
	memset(line, 'x', sizeof(line));
	k8s__lines_init(&l, 32);
	assert_int_equal(k8s__lines_feed(&l, line, 20, collect, &c, &err), 0);
	assert_int_equal(k8s__lines_feed(&l, line, 12, collect, &c, &err), 0);
	assert_int_equal(k8s__lines_feed(&l, "\n", 1, collect, &c, &err), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(strlen(c.lines[0]), 32);
	assert_int_equal(k8s__lines_feed(&l, line, 20, collect, &c, &err), 0);
	assert_true(k8s__lines_feed(&l, line, 13, collect, &c, &err) < 0);
	assert_int_equal(err->code, EMSGSIZE);
	err_free(&err);
	k8s__lines_release(&l);
	/* a whole line over the cap inside one chunk */
	k8s__lines_init(&l, 32);
	line[33] = '\n';
	assert_true(k8s__lines_feed(&l, line, 34, collect, &c, &err) < 0);
	assert_int_equal(err->code, EMSGSIZE);
	err_free(&err);
	k8s__lines_release(&l);
	/* the callback's failure stops the feed */
	memset(&c, 0, sizeof(c));
	c.fail_at = 2;
	k8s__lines_init(&l, 32);
	assert_true(k8s__lines_feed(&l, "a\nb\nc\n", 6, collect, &c, &err) < 0);
	assert_int_equal(err->code, EBADMSG);
	assert_int_equal(c.n, 2);
	err_free(&err);
	k8s__lines_release(&l);
}

static void wparse_ok(const char *line, enum k8s__wtype type, const char *rv, long code)
{
	struct k8s__wevent ev;
	struct err *err = NULL;

	assert_int_equal(k8s__watch_parse_line(line, strlen(line), &ev, &err), 0);
	assert_int_equal(ev.type, type);
	if (rv)
		assert_string_equal(ev.rv, rv);
	else
		assert_null(ev.rv);
	assert_int_equal(ev.code, code);
	k8s__wevent_clear(&ev);
}

static void wparse_bad(const char *line, const char *want)
{
	struct k8s__wevent ev;
	struct err *err = NULL;

	assert_true(k8s__watch_parse_line(line, strlen(line), &ev, &err) < 0);
	assert_int_equal(err->code, EPROTO);
	assert_non_null(strstr(err->msg, want));
	assert_null(ev.root);
	err_free(&err);
}

static void test_watch_parse(void **state)
{
	struct k8s__wevent ev;
	struct err *err = NULL;
	const char *e410 = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
			   "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old "
			   "resource version: 1 (20)\",\"reason\":\"Expired\",\"code\":410}}";

	wparse_ok("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\","
		 "\"resourceVersion\":\"17\"}}}", K8S__W_ADDED, "17", 0);
	wparse_ok("{\"type\":\"MODIFIED\",\"object\":{}}", K8S__W_MODIFIED, NULL, 0);
	wparse_ok("{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}",
		 K8S__W_DELETED, "9", 0);
	wparse_ok("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
		 "{\"resourceVersion\":\"42\"}}}", K8S__W_BOOKMARK, "42", 0);
	wparse_ok(e410, K8S__W_ERROR, NULL, 410);
	wparse_ok("  \r", K8S__W_BLANK, NULL, 0);
	wparse_ok("", K8S__W_BLANK, NULL, 0);
	wparse_ok("{\"type\":\"ERROR\",\"object\":{\"code\":1e300}}", K8S__W_ERROR, NULL, 0);
	assert_int_equal(k8s__watch_parse_line(e410, strlen(e410), &ev, &err), 0);
	assert_string_equal(ev.message, "too old resource version: 1 (20)");
	k8s__wevent_clear(&ev);
	wparse_bad("{\"type\":\"ADDED\"", "not JSON");
	wparse_bad("{\"type\":\"ADDED\",\"object\":{}} trailing", "not JSON");
	wparse_bad("{\"object\":{}}", "known type");
	wparse_bad("{\"type\":\"SYNC\",\"object\":{}}", "known type");
	wparse_bad("{\"type\":7,\"object\":{}}", "known type");
	wparse_bad("{\"type\":\"ADDED\",\"object\":[]}", "without an object");
	wparse_bad("{\"type\":\"ADDED\"}", "without an object");
	wparse_bad("[]", "known type");
}

static void test_backoff(void **state)
{
	/* the upper half of min * 2^n, capped */
	assert_int_equal(k8s__backoff_ms(500, 30000, 0, 0), 250);
	assert_int_equal(k8s__backoff_ms(500, 30000, 0, 250), 500);
	assert_int_equal(k8s__backoff_ms(500, 30000, 0, 251), 250);
	assert_int_equal(k8s__backoff_ms(500, 30000, 1, 500), 1000);
	assert_int_equal(k8s__backoff_ms(500, 30000, 6, UINT32_MAX) <= 30000, 1);
	assert_int_equal(k8s__backoff_ms(500, 30000, 6, 15000), 30000);
	assert_int_equal(k8s__backoff_ms(500, 30000, 1000, 0), 15000);
	for (uint32_t r = 0; r < 5000; r += 7) {
		int64_t d = k8s__backoff_ms(100, 3000, r % 40, r * 2654435761u);
		int64_t cap = 100LL << (r % 40 < 5 ? r % 40 : 5);

		if (cap > 3000)
			cap = 3000;
		assert_true(d >= cap / 2 && d <= cap);
	}
}

/* ---- transport without a server ---- */

/* A loopback TCP socket: listening (accepts nothing) or closed again. */
static int loopback(bool listening, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	if (listening) {
		assert_int_equal(listen(fd, 8), 0);
		return fd;
	}
	close(fd);
	return -1;
}

static struct k8s_client *client_at(int port)
{
	struct k8s_client *c = NULL;
	struct err *err = NULL;
	cleanup_free char *y = xasprintf(
		"current-context: t\ncontexts:\n- name: t\n  context: {cluster: c, user: u, "
		"namespace: nbgate-users}\nclusters:\n- name: c\n  cluster: {server: "
		"'https://127.0.0.1:%d', certificate-authority: ca.crt}\nusers:\n- name: u\n"
		"  user: {token: very-secret-token}\n", port);

	put("kubeconfig", y);
	put("ca.crt", test_ca);
	assert_int_equal(load(NULL, NULL, &c, &err), 0);
	return c;
}

static void test_request_refused(void **state)
{
	int port;
	struct k8s_client *c;
	struct err *err = NULL;
	long st = -1;
	cJSON *out = NULL;

	loopback(false, &port);
	c = client_at(port);
	assert_int_equal(k8s_get(c, K8S_POD, NULL, "nb-a", &out, &st, &err), -ECONNREFUSED);
	assert_null(out);
	assert_non_null(strstr(err->msg, "GET https://127.0.0.1:"));
	assert_non_null(strstr(err->msg, "/api/v1/namespaces/nbgate-users/pods/nb-a"));
	assert_null(strstr(err->msg, "very-secret-token"));
	err_free(&err);
	k8s_client_free(c);
}

struct wcount {
	atomic_int events, errors;
	char last[512];
};

static void wcb(void *arg, enum k8s_watch_event ev, const cJSON *obj, const char *message)
{
	struct wcount *w = arg;

	if (ev == K8S_WATCH_ERROR) {
		snprintf(w->last, sizeof(w->last), "%s", message ? message : "(null)");
		atomic_fetch_add(&w->errors, 1);
	} else {
		atomic_fetch_add(&w->events, 1);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_watch_stop_is_prompt(void **state)
{
	int port, fd = loopback(true, &port);
	struct k8s_client *c = client_at(port);
	struct k8s_watch_opts o = { .kind = K8S_POD, .label_selector = "a=b" };
	struct k8s_watch *w = NULL;
	struct wcount n = { 0 };
	struct err *err = NULL;
	int64_t t0;

	/* the TLS handshake hangs: the server never accepts */
	assert_int_equal(k8s_watch_start(c, &o, wcb, &n, &w, &err), 0);
	usleep(300 * 1000);
	t0 = now_ms();
	k8s_watch_stop(w);
	if (now_ms() - t0 > 400) /* ~100 ms asked; room for a busy 2-core box */
		fail_msg("k8s_watch_stop took %lld ms", (long long)(now_ms() - t0));
	assert_int_equal(atomic_load(&n.events), 0);
	if (atomic_load(&n.errors))
		fail_msg("error: %s", n.last);
	close(fd);
	k8s_client_free(c);
}

static void test_watch_errors_back_off(void **state)
{
	int port;
	struct k8s_client *c;
	struct k8s_watch_opts o = { .kind = K8S_POD, .backoff_min_ms = 20, .backoff_max_ms = 40 };
	struct k8s_watch *w = NULL;
	struct k8s_watch_stats st;
	struct wcount n = { 0 };
	struct err *err = NULL;
	int64_t t0 = now_ms();

	loopback(false, &port);
	c = client_at(port);
	assert_int_equal(k8s_watch_start(c, &o, wcb, &n, &w, &err), 0);
	while (atomic_load(&n.errors) < 3 && now_ms() - t0 < 5000)
		usleep(10 * 1000);
	k8s_watch_get_stats(w, &st);
	k8s_watch_stop(w);
	assert_int_equal(st.lists, 0);
	assert_int_equal(st.relists_gone, 0);
	assert_true(atomic_load(&n.errors) >= 3);
	/* backoff: three failures take at least 10 + 20 ms of naps */
	assert_true(now_ms() - t0 >= 30);
	assert_int_equal(atomic_load(&n.events), 0);
	assert_non_null(strstr(n.last, "GET https://127.0.0.1:"));
	k8s_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kubeconfig_token_current_context, setup_tmp,
						teardown_tmp),
		cmocka_unit_test_setup_teardown(test_kubeconfig_cert_context_and_ns, setup_tmp,
						teardown_tmp),
		cmocka_unit_test_setup_teardown(test_kubeconfig_token_file, setup_tmp,
						teardown_tmp),
		cmocka_unit_test_setup_teardown(test_kubeconfig_missing_fields, setup_tmp,
						teardown_tmp),
		cmocka_unit_test_setup_teardown(test_kubeconfig_insecure_refused, setup_tmp,
						teardown_tmp),
		cmocka_unit_test(test_yaml_limits),
		cmocka_unit_test_setup_teardown(test_in_cluster, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_status_messages),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_status_err),
		cmocka_unit_test(test_quantity),
		cmocka_unit_test(test_json_str_and_paths),
		cmocka_unit_test(test_lines_split),
		cmocka_unit_test(test_lines_cap),
		cmocka_unit_test(test_watch_parse),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test_setup_teardown(test_request_refused, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_watch_stop_is_prompt, setup_tmp,
						teardown_tmp),
		cmocka_unit_test_setup_teardown(test_watch_errors_back_off, setup_tmp,
						teardown_tmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
