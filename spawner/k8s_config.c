/*
 * k8s_config: where the REST client connects and how it authenticates.
 * Kubeconfig files (YAML, read with libyaml into cJSON) and the in-cluster
 * service account; the bearer token file re-read when it rotates.
 *
 * Also the pure parsers of k8s_api.h the backend uses on objects
 * (quantities, dotted JSON paths).
 *
 * Policy kept here on purpose: the API server's certificate is always
 * verified, so a kubeconfig asking for insecure-skip-tls-verify (or plain
 * http) is refused rather than quietly honoured, and credential plugins
 * (exec, auth-provider) are refused with a message naming them.
 */
#undef LOG_PREFIX
#define LOG_PREFIX "spawner/k8s_config: "

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>
#include <yaml.h>

#include "common/cleanup.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "spawner/k8s_api_internal.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 100000

/* ---- YAML -> cJSON ---- */

struct yconv {
	yaml_document_t *doc;
	size_t nodes;
	struct err **err;
};

static bool str_in(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

static const char *skip_digits(const char *p, bool *any)
{
	for (; *p >= '0' && *p <= '9'; p++)
		*any = true;
	return p;
}

/* YAML 1.2 core schema numbers: [-+]?digits[.digits][e[-+]digits]. */
static bool is_number(const char *s)
{
	bool digits = false, exp = false;
	const char *p = s + (*s == '-' || *s == '+');

	p = skip_digits(p, &digits);
	if (*p == '.')
		p = skip_digits(p + 1, &digits);
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p += 1 + (p[1] == '-' || p[1] == '+');
		p = skip_digits(p, &exp);
		if (!exp)
			return false;
	}
	return *p == '\0';
}

static cJSON *yscalar(struct yconv *y, yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	const char *s = (const char *)n->data.scalar.value;

	if (strlen(s) != n->data.scalar.length) {
		err_set(y->err, EINVAL, "line %zu: NUL byte in a string", n->start_mark.line + 1);
		return NULL;
	}
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return cJSON_CreateString(s);
	if (str_in(s, nulls))
		return cJSON_CreateNull();
	if (str_in(s, trues) || str_in(s, falses))
		return cJSON_CreateBool(str_in(s, trues));
	if (is_number(s))
		return cJSON_CreateNumber(strtod(s, NULL));
	return cJSON_CreateString(s);
}

static cJSON *ynode(struct yconv *y, int idx, int depth);

static cJSON *ymapping(struct yconv *y, yaml_node_t *n, int depth)
{
	cleanup_json cJSON *o = cJSON_CreateObject();

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		cJSON *v;

		if (!k || k->type != YAML_SCALAR_NODE ||
		    strlen((char *)k->data.scalar.value) != k->data.scalar.length) {
			err_set(y->err, EINVAL, "line %zu: a mapping key must be a string",
				n->start_mark.line + 1);
			return NULL;
		}
		if (cJSON_GetObjectItemCaseSensitive(o, (char *)k->data.scalar.value)) {
			err_set(y->err, EINVAL, "line %zu: duplicate key '%s'",
				k->start_mark.line + 1, (char *)k->data.scalar.value);
			return NULL;
		}
		v = ynode(y, p->value, depth + 1);
		if (!v)
			return NULL;
		cJSON_AddItemToObject(o, (char *)k->data.scalar.value, v);
	}
	return steal_ptr(&o);
}

static cJSON *ynode(struct yconv *y, int idx, int depth)
{
	yaml_node_t *n = yaml_document_get_node(y->doc, idx);
	cleanup_json cJSON *a = NULL;

	if (!n) {
		err_set(y->err, EINVAL, "yaml: dangling node");
		return NULL;
	}
	if (depth > YAML_MAX_DEPTH || ++y->nodes > YAML_MAX_NODES) {
		err_set(y->err, EINVAL, "line %zu: nested deeper than %d or more than %d nodes",
			n->start_mark.line + 1, YAML_MAX_DEPTH, YAML_MAX_NODES);
		return NULL;
	}
	if (n->type == YAML_SCALAR_NODE)
		return yscalar(y, n);
	if (n->type == YAML_MAPPING_NODE)
		return ymapping(y, n, depth);
	if (n->type != YAML_SEQUENCE_NODE) {
		err_set(y->err, EINVAL, "line %zu: empty node", n->start_mark.line + 1);
		return NULL;
	}
	a = cJSON_CreateArray();
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		cJSON *v = ynode(y, *it, depth + 1);

		if (!v)
			return NULL;
		cJSON_AddItemToArray(a, v);
	}
	return steal_ptr(&a);
}

int k8s__yaml_to_json(const char *text, size_t len, struct cJSON **out, struct err **err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct yconv y = { .doc = &doc, .err = err };
	cJSON *root = NULL;
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		return err_set(err, ENOMEM, "yaml: cannot initialise the parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = err_set(err, EINVAL, "line %zu: %s", parser.problem_mark.line + 1,
			    parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		return r;
	}
	if (!yaml_document_get_root_node(&doc))
		r = err_set(err, EINVAL, "empty document");
	else if (!(root = ynode(&y, 1, 0)))
		r = -EINVAL;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r < 0)
		return r;
	*out = root;
	return 0;
}

/* ---- kubeconfig: choosing the context, cluster and user ---- */

/* A string field of o (at prefix): 1 found, 0 absent, < 0 wrong type. */
static int kstr(const cJSON *o, const char *prefix, const char *key, bool required,
		const char **out, struct err **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!prefix)
		prefix = "";
	if (!v || cJSON_IsNull(v)) {
		if (required)
			return err_set(err, EINVAL, "%s%s%s: missing", prefix, *prefix ? "." : "",
				       key);
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return err_set(err, EINVAL, "%s%s%s: expected a non-empty string", prefix,
			       *prefix ? "." : "", key);
	*out = v->valuestring;
	return 1;
}

/*
 * The `inner` object of the entry named name in the list doc[list]
 * ({name: ..., <inner>: {...}}); *where receives "list[i].inner".
 */
static int knamed(const cJSON *doc, const char *list, const char *inner, const char *name,
		  const cJSON **out, char **where, struct err **err)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, list);
	const cJSON *e;
	int i = 0;

	if (!name)
		return err_set(err, EINVAL, "%s: no name to look up", list);
	if (!cJSON_IsArray(a))
		return err_set(err, EINVAL, "%s: %s", list, a ? "expected a list" : "missing");
	cJSON_ArrayForEach(e, a) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");

		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
			*where = xasprintf("%s[%d].%s", list, i, inner);
			*out = cJSON_GetObjectItemCaseSensitive(e, inner);
			if (!cJSON_IsObject(*out))
				return err_set(err, EINVAL, "%s: %s", *where,
					       *out ? "expected a mapping" : "missing");
			return 0;
		}
		i++;
	}
	return err_set(err, EINVAL, "%s: no entry named '%s'", list, name);
}

static bool ktrue(const cJSON *v)
{
	return cJSON_IsTrue(v) || (cJSON_IsString(v) && strcasecmp(v->valuestring, "true") == 0);
}

/* Keys nbgate refuses rather than half-honours, and why. */
static int krefuse(const cJSON *o, const char *where, const char *const *keys,
		   const char *why, struct err **err)
{
	for (; *keys; keys++)
		if (cJSON_GetObjectItemCaseSensitive(o, *keys))
			return err_set(err, EINVAL, "%s.%s: not supported: %s", where, *keys,
				       why);
	return 0;
}

static int kcluster(const cJSON *cl, const char *where, struct k8s__kcfg *k, struct err **err)
{
	static const char *const unsupported[] = { "proxy-url", "tls-server-name", NULL };

	if (ktrue(cJSON_GetObjectItemCaseSensitive(cl, "insecure-skip-tls-verify")))
		return err_set(err, EINVAL,
			       "%s.insecure-skip-tls-verify: refused: nbgate always verifies the "
			       "API server's certificate (give certificate-authority or "
			       "certificate-authority-data instead)", where);
	if (krefuse(cl, where, unsupported, "connect to the API server directly", err) < 0 ||
	    kstr(cl, where, "server", true, &k->server, err) < 0 ||
	    kstr(cl, where, "certificate-authority", false, &k->ca_file, err) < 0 ||
	    kstr(cl, where, "certificate-authority-data", false, &k->ca_data, err) < 0)
		return -EINVAL;
	if (!k->server || strncmp(k->server, "https://", 8) != 0 || !k->server[8])
		return err_set(err, EINVAL, "%s.server: '%s': not an https:// URL (nbgate talks "
			       "to the API server over verified TLS only)", where, k->server);
	for (const char *p = k->server; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return err_set(err, EINVAL, "%s.server: control character or space",
				       where);
	return 0;
}

/* The string fields of a kubeconfig mapping that land in struct k8s__kcfg
 * (the first one present of two aliases wins). */
struct kfield {
	const char *key;
	size_t off;
};

static int kfields(const cJSON *o, const char *where, const struct kfield *f, size_t n,
		   struct k8s__kcfg *k, struct err **err)
{
	for (size_t i = 0; i < n; i++) {
		const char **dst = (const char **)(void *)((char *)k + f[i].off);

		if (!*dst && kstr(o, where, f[i].key, false, dst, err) < 0)
			return -EINVAL;
	}
	return 0;
}

static int kuser(const cJSON *u, const char *where, struct k8s__kcfg *k, struct err **err)
{
	static const char *const plugins[] = { "exec", "auth-provider", "username", "password",
					       "as", NULL };
	static const struct kfield f[] = {
		{ "token", offsetof(struct k8s__kcfg, token) },
		/* client-go's key is tokenFile; token-file is accepted too */
		{ "tokenFile", offsetof(struct k8s__kcfg, token_file) },
		{ "token-file", offsetof(struct k8s__kcfg, token_file) },
		{ "client-certificate", offsetof(struct k8s__kcfg, cert_file) },
		{ "client-certificate-data", offsetof(struct k8s__kcfg, cert_data) },
		{ "client-key", offsetof(struct k8s__kcfg, key_file) },
		{ "client-key-data", offsetof(struct k8s__kcfg, key_data) },
	};
	bool cert, key;

	if (krefuse(u, where, plugins, "use a token, tokenFile or a client certificate",
		    err) < 0 ||
	    kfields(u, where, f, sizeof(f) / sizeof(f[0]), k, err) < 0)
		return -EINVAL;
	cert = k->cert_file || k->cert_data;
	key = k->key_file || k->key_data;
	if (cert && !key)
		return err_set(err, EINVAL, "%s.client-key-data: missing (a client certificate "
			       "needs its key)", where);
	if (key && !cert)
		return err_set(err, EINVAL, "%s.client-certificate-data: missing (a client key "
			       "needs its certificate)", where);
	if (!cert && !k->token && !k->token_file)
		return err_set(err, EINVAL, "%s: no credentials (token, tokenFile or "
			       "client-certificate-data + client-key-data)", where);
	return 0;
}

int k8s__kubeconfig_select(const cJSON *doc, const char *context, struct k8s__kcfg *out,
			   struct err **err)
{
	struct k8s__kcfg k = { 0 };
	cleanup_free char *cw = NULL, *clw = NULL, *uw = NULL;
	const cJSON *ctx = NULL, *cl = NULL, *u = NULL;
	const char *cluster = NULL, *user = NULL;

	if (!cJSON_IsObject(doc))
		return err_set(err, EINVAL, "not a kubeconfig (expected a mapping)");
	if (context)
		k.context = context;
	else if (kstr(doc, "", "current-context", false, &k.context, err) < 0)
		return -EINVAL;
	if (!k.context)
		return err_set(err, EINVAL, "current-context: missing (set it, or name the "
			       "context in the kubernetes.context setting)");
	if (knamed(doc, "contexts", "context", k.context, &ctx, &cw, err) < 0 ||
	    kstr(ctx, cw, "cluster", true, &cluster, err) < 0 ||
	    kstr(ctx, cw, "user", true, &user, err) < 0 ||
	    kstr(ctx, cw, "namespace", false, &k.ns, err) < 0 ||
	    knamed(doc, "clusters", "cluster", cluster, &cl, &clw, err) < 0 ||
	    kcluster(cl, clw, &k, err) < 0 ||
	    knamed(doc, "users", "user", user, &u, &uw, err) < 0 ||
	    kuser(u, uw, &k, err) < 0)
		return -EINVAL;
	*out = k;
	return 0;
}

int k8s__b64_decode(const char *field, const char *s, char **out, size_t *len,
		    struct err **err)
{
	size_t n = strlen(s);
	cleanup_free char *bin = xmalloc(n / 4 * 3 + 4);
	size_t got = 0;

	if (sodium_base642bin((unsigned char *)bin, n / 4 * 3 + 3, s, n, " \t\r\n", &got,
			      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || got == 0)
		return err_set(err, EINVAL, "%s: not base64", field);
	bin[got] = '\0';
	*out = steal_ptr(&bin);
	*len = got;
	return 0;
}

bool k8s__is_dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* ---- the token file ---- */

static bool same_id(const struct k8s__file_id *a, const struct stat *st)
{
	return a->dev == st->st_dev && a->ino == st->st_ino && a->size == st->st_size &&
	       a->mtime.tv_sec == st->st_mtim.tv_sec && a->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* A token is printable ASCII (it goes into a header); trailing blanks cut. */
static int token_clean(const char *where, char *t, size_t len, struct err **err)
{
	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ' ||
		       t[len - 1] == '\t'))
		t[--len] = '\0';
	if (len == 0)
		return err_set(err, EINVAL, "%s: empty token", where);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			return err_set(err, EINVAL, "%s: the token holds a byte that is not "
				       "printable ASCII", where);
	return 0;
}

/* Re-reads c->token_file when its identity changed (or always when force).
 * Called with token_mu held. */
static int token_reload(struct k8s_client *c, bool force, struct err **err)
{
	cleanup_close int fd = open(c->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	cleanup_free char *t = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set_errno(err, "token file '%s'", c->token_file);
	if (!force && c->token && same_id(&c->token_id, &st))
		return 0;
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)K8S__MAX_TOKEN_BYTES)
		return err_set(err, EINVAL, "token file '%s': not a regular file of at most %u "
			       "bytes", c->token_file, K8S__MAX_TOKEN_BYTES);
	t = xmalloc(K8S__MAX_TOKEN_BYTES + 1);
	do
		n = pread(fd, t, K8S__MAX_TOKEN_BYTES, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_set_errno(err, "read token file '%s'", c->token_file);
	t[n] = '\0';
	if (token_clean(c->token_file, t, (size_t)n, err) < 0)
		return -EINVAL;
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	c->token = steal_ptr(&t);
	c->token_id = (struct k8s__file_id){ st.st_dev, st.st_ino, st.st_size, st.st_mtim };
	c->token_gen++;
	log_debug("read the bearer token from '%s' (generation %llu)", c->token_file,
		  (unsigned long long)c->token_gen);
	return 0;
}

int k8s__token_get(struct k8s_client *c, uint64_t force_gen, bool force, char **tok,
		   uint64_t *gen, struct err **err)
{
	int r = 0;

	pthread_mutex_lock(&c->token_mu);
	if (c->token_file)
		r = token_reload(c, force && force_gen == c->token_gen, err);
	if (r == 0) {
		*tok = c->token ? xstrdup(c->token) : NULL;
		*gen = c->token_gen;
	}
	pthread_mutex_unlock(&c->token_mu);
	return r;
}

/* ---- loading ---- */

/* Reads the token file once now: a missing one is a configuration error. */
static int first_token(struct k8s_client *c, struct err **err)
{
	char *tok = NULL;
	uint64_t gen;

	if (k8s__token_get(c, 0, false, &tok, &gen, err) < 0)
		return -EINVAL;
	if (tok) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
	return 0;
}

/* path as written, or relative to the kubeconfig's folder (as kubectl). */
static char *kpath(const char *kubeconfig, const char *p)
{
	const char *slash = strrchr(kubeconfig, '/');

	if (p[0] == '/' || !slash)
		return xstrdup(p);
	return xasprintf("%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p);
}

static int readable(const char *what, const char *path, struct err **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return err_set_errno(err, "%s '%s'", what, path);
	return 0;
}

/* PEM bytes from *-data (base64) or a file. */
static int kpem(const char *kubeconfig, const char *field, const char *data, const char *file,
		char **out, size_t *len, struct err **err)
{
	cleanup_free char *p = NULL;

	if (data)
		return k8s__b64_decode(field, data, out, len, err);
	p = kpath(kubeconfig, file);
	return file_read_all(p, 0, K8S__MAX_CONFIG_BYTES, out, len, err);
}

static int kapply_tls(struct k8s_client *c, const char *path, const struct k8s__kcfg *k,
		      struct err **err)
{
	if (k->ca_data && k8s__b64_decode("certificate-authority-data", k->ca_data,
					  &c->ca_data, &c->ca_len, err) < 0)
		return -EINVAL;
	if (!k->ca_data && k->ca_file) {
		c->ca_file = kpath(path, k->ca_file);
		if (readable("certificate-authority", c->ca_file, err) < 0)
			return -EINVAL;
	}
	if (!k->cert_data && !k->cert_file)
		return 0;
	if (kpem(path, "client-certificate-data", k->cert_data, k->cert_file, &c->cert_data,
		 &c->cert_len, err) < 0 ||
	    kpem(path, "client-key-data", k->key_data, k->key_file, &c->key_data, &c->key_len,
		 err) < 0)
		return -EINVAL;
	return 0;
}

static int kapply(struct k8s_client *c, const char *path, const struct k8s__kcfg *k,
		  struct err **err)
{
	size_t n;

	if (!k->server) /* k8s__kubeconfig_select() requires it */
		return err_set(err, EINVAL, "server: missing");
	c->server = xstrdup(k->server);
	n = strlen(c->server);
	while (n > 8 && c->server[n - 1] == '/')
		c->server[--n] = '\0';
	if (!c->ns)
		c->ns = xstrdup(k->ns ? k->ns : "default");
	if (kapply_tls(c, path, k, err) < 0)
		return -EINVAL;
	if (k->token_file) {
		c->token_file = kpath(path, k->token_file);
	} else if (k->token) {
		c->token = xstrdup(k->token);
		if (token_clean("token", c->token, strlen(c->token), err) < 0)
			return -EINVAL;
	}
	return 0;
}

static int load_kubeconfig(struct k8s_client *c, const struct k8s_client_opts *o,
			   struct err **err)
{
	cleanup_free char *text = NULL;
	cleanup_json cJSON *doc = NULL;
	struct k8s__kcfg k = { 0 };
	size_t len = 0;
	int r;

	r = file_read_all(o->kubeconfig, 0, K8S__MAX_CONFIG_BYTES, &text, &len, err);
	if (r == 0)
		r = k8s__yaml_to_json(text, len, &doc, err);
	if (r == 0)
		r = k8s__kubeconfig_select(doc, o->context, &k, err);
	if (r == 0)
		r = kapply(c, o->kubeconfig, &k, err);
	if (r == 0)
		r = first_token(c, err);
	if (r < 0)
		return err_wrap(err, "kubeconfig %s", o->kubeconfig);
	return 0;
}

/* The pod's namespace file, or "default". */
static int sa_namespace(struct k8s_client *c, const char *dir, struct err **err)
{
	cleanup_free char *p = xasprintf("%s/namespace", dir);
	cleanup_free char *t = NULL;
	size_t len = 0;

	if (access(p, F_OK) < 0) {
		c->ns = xstrdup("default");
		return 0;
	}
	if (file_read_all(p, 0, 256, &t, &len, err) < 0)
		return -EINVAL;
	while (len && (t[len - 1] == '\n' || t[len - 1] == ' ' || t[len - 1] == '\r'))
		t[--len] = '\0';
	c->ns = steal_ptr(&t);
	return 0;
}

static int load_in_cluster(struct k8s_client *c, const struct k8s_client_opts *o,
			   struct err **err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	cleanup_free char *dir = xasprintf("%s%s", o->in_cluster_root ? o->in_cluster_root : "",
					   K8S__SA_DIR);

	if (!host || !*host || !port || !*port)
		return err_set(err, ENOENT, "not running in a pod: KUBERNETES_SERVICE_HOST and "
			       "KUBERNETES_SERVICE_PORT are not set");
	if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    strspn(host, "0123456789abcdefABCDEF.:-") != strlen(host))
		return err_set(err, EINVAL, "KUBERNETES_SERVICE_HOST/PORT: '%s' '%s': not a "
			       "host and port", host, port);
	c->token_file = xasprintf("%s/token", dir);
	if (access(c->token_file, F_OK) < 0)
		return err_set(err, ENOENT, "not running in a pod: no service account token at "
			       "'%s'", c->token_file);
	c->ca_file = xasprintf("%s/ca.crt", dir);
	if (readable("service account CA", c->ca_file, err) < 0)
		return -EINVAL;
	c->server = strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
				       : xasprintf("https://%s:%s", host, port);
	if (!c->ns && sa_namespace(c, dir, err) < 0)
		return -EINVAL;
	return first_token(c, err);
}

int k8s__config_load(struct k8s_client *c, const struct k8s_client_opts *o, struct err **err)
{
	int r;

	if (o->ns)
		c->ns = xstrdup(o->ns);
	if (o->in_cluster)
		r = load_in_cluster(c, o, err);
	else if (o->kubeconfig)
		r = load_kubeconfig(c, o, err);
	else
		r = err_set(err, EINVAL, "kubernetes: neither in_cluster nor a kubeconfig given");
	if (r < 0)
		return r;
	if (!k8s__is_dns_label(c->ns))
		return err_set(err, EINVAL, "namespace '%s': not a DNS-1123 label", c->ns);
	return 0;
}

/* ---- pure parsers for the backend: quantities, JSON paths ---- */

/* The suffix of a quantity: a power of two (bin) and of ten (dec). */
static int qsuffix(const char *p, int *bin, int *dec)
{
	static const struct { const char *s; int bin, dec; } t[] = {
		{ "", 0, 0 }, { "Ki", 10, 0 }, { "Mi", 20, 0 }, { "Gi", 30, 0 },
		{ "Ti", 40, 0 }, { "Pi", 50, 0 }, { "Ei", 60, 0 }, { "n", 0, -9 },
		{ "u", 0, -6 }, { "m", 0, -3 }, { "k", 0, 3 }, { "M", 0, 6 },
		{ "G", 0, 9 }, { "T", 0, 12 }, { "P", 0, 15 }, { "E", 0, 18 },
	};
	int sign = 1, e = 0;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(p, t[i].s) == 0) {
			*bin = t[i].bin;
			*dec = t[i].dec;
			return 0;
		}
	if (*p != 'e' && *p != 'E')
		return -EINVAL;
	p++;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || e > 1000)
			return -EINVAL;
		e = e * 10 + (*p - '0');
	}
	*bin = 0;
	*dec = sign * e;
	return 0;
}

/* num * 2^bin * 10^dec rounded up (as Kubernetes' Value/MilliValue). */
static int qscale(__int128 num, int bin, int dec, int64_t *out)
{
	__int128 v = num << bin; /* num < 10^20, bin <= 60: fits */

	if (dec < 0) {
		__int128 d = 1;

		if (-dec > 38) {
			*out = v > 0;
			return 0;
		}
		for (int i = 0; i < -dec; i++)
			d *= 10;
		v = v / d + (v % d != 0);
	}
	for (int i = 0; i < dec && v; i++) {
		if (v > INT64_MAX / 10)
			return -EINVAL;
		v *= 10;
	}
	if (v > INT64_MAX)
		return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

int k8s_quantity_parse(const char *s, bool milli, int64_t *out)
{
	__int128 num = 0;
	int frac = 0, sig = 0, bin, dec;
	bool dot = false, digit = false;
	const char *p = s;

	if (!s)
		return -EINVAL;
	if (*p == '+')
		p++;
	for (; (*p >= '0' && *p <= '9') || (*p == '.' && !dot); p++) {
		if (*p == '.') {
			dot = true;
			continue;
		}
		digit = true;
		frac += dot;
		if (num == 0 && *p == '0')
			continue;
		if (++sig > 20)
			return -EINVAL; /* more precision than any resource needs */
		num = num * 10 + (*p - '0');
	}
	if (!digit || qsuffix(p, &bin, &dec) < 0)
		return -EINVAL;
	return qscale(num, bin, dec - frac + (milli ? 3 : 0), out);
}

const cJSON *k8s__json_at(const cJSON *obj, const char *path)
{
	const char *p = path;

	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char key[128];

		if (n >= sizeof(key) || !cJSON_IsObject(obj))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
		p += n + (dot != NULL);
	}
	return obj;
}

const char *k8s_json_str(const cJSON *obj, const char *path)
{
	const cJSON *v = k8s__json_at(obj, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}
