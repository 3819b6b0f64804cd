/*
 * names: slugs and URL segments for servers. The encoding and why it is
 * injective are described in names.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/xalloc.h"
#include "spawner/names.h"

/* Long enough for any uncut slug we test before cutting (3 bytes/char). */
#define SLUG_CUT 47
#define SLUG_HASH_HEX 12

static const char hexdig[] = "0123456789abcdef";

static bool is_lower_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static void put_escaped(struct buf *b, char mark, unsigned char c)
{
	char e[3] = { mark, hexdig[c >> 4], hexdig[c & 15] };

	buf_append(b, e, sizeof(e));
}

static void encode_part(struct buf *b, const char *s, bool leading)
{
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		/* A label may not start with '-', so the first character of
		 * the slug escapes with a '0' mark; '0' itself is escaped there
		 * so that the mark stays unambiguous. */
		if (leading && i == 0) {
			if (is_lower_alnum(c) && c != '0')
				buf_append(b, s, 1);
			else
				put_escaped(b, '0', c);
			continue;
		}
		if (is_lower_alnum(c))
			buf_append(b, &s[i], 1);
		else
			put_escaped(b, '-', c);
	}
}

static void hash_pair(const char *user, const char *server, char out[SLUG_HASH_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, server, strlen(server)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < SLUG_HASH_HEX / 2)
		abort(); /* only out-of-memory can get here */
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < SLUG_HASH_HEX / 2; i++) {
		out[2 * i] = hexdig[md[i] >> 4];
		out[2 * i + 1] = hexdig[md[i] & 15];
	}
	out[SLUG_HASH_HEX] = '\0';
}

char *spawner_slug(const char *user, const char *server)
{
	struct buf b;
	char hash[SLUG_HASH_HEX + 1];

	if (!server)
		server = "";
	/* Bounded: 3 bytes per input byte, plus the separator. */
	buf_init(&b, 3 * (strlen(user) + strlen(server)) + 8);
	/* "00" cannot start an encoded non-empty user ("0" + two hex). */
	if (!user[0])
		buf_appends(&b, "00");
	encode_part(&b, user, true);
	if (server[0]) {
		buf_appends(&b, "--");
		encode_part(&b, server, false);
	}
	if (b.len <= SPAWNER_SLUG_MAX)
		return buf_detach(&b, NULL);
	hash_pair(user, server, hash);
	b.len = SLUG_CUT;
	b.data[b.len] = '\0';
	buf_appends(&b, "----");
	buf_appends(&b, hash);
	return buf_detach(&b, NULL);
}

bool spawner_is_dns1123_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SPAWNER_SLUG_MAX)
		return false;
	if (!is_lower_alnum((unsigned char)s[0]) || !is_lower_alnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool url_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '@';
}

char *spawner_url_segment(const char *name)
{
	struct buf b;

	buf_init(&b, 3 * strlen(name) + 1);
	for (size_t i = 0; name[i]; i++) {
		unsigned char c = (unsigned char)name[i];
		char e[3] = { '%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15] };

		if (url_safe(c))
			buf_append(&b, &name[i], 1);
		else
			buf_append(&b, e, sizeof(e));
	}
	if (!b.data)
		return xstrdup("");
	return buf_detach(&b, NULL);
}

char *spawner_base_url(const char *user, const char *server)
{
	char *u = spawner_url_segment(user);
	char *s, *url;

	if (!server || !server[0]) {
		url = xasprintf("/user/%s/", u);
	} else {
		s = spawner_url_segment(server);
		url = xasprintf("/user/%s/%s/", u, s);
		free(s);
	}
	free(u);
	return url;
}
