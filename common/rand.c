#include "common/rand.h"

#include <pthread.h>
#include <stdlib.h>

#include <sodium.h>

#include "common/xalloc.h"

static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_init(void)
{
	/* Without a working CSPRNG no token we mint is safe: stop here. */
	if (sodium_init() < 0)
		abort();
}

void rand_bytes(void *p, size_t n)
{
	pthread_once(&rand_once, rand_init);
	randombytes_buf(p, n);
}

char *rand_hex(size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *raw = xmalloc(nbytes ? nbytes : 1);
	char *out = xmalloc(nbytes * 2 + 1);

	rand_bytes(raw, nbytes);
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0xf];
	}
	out[nbytes * 2] = '\0';
	sodium_memzero(raw, nbytes);
	free(raw);
	return out;
}

void rand_b64url_encode(const uint8_t *in, size_t n, char *out, size_t outsz)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!outsz)
		return;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6 && o + 1 < outsz) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 0x3f];
		}
	}
	if (bits > 0 && o + 1 < outsz)
		out[o++] = tab[(acc << (6 - bits)) & 0x3f];
	out[o] = '\0';
}

char *rand_b64url(size_t nbytes)
{
	uint8_t *raw = xmalloc(nbytes ? nbytes : 1);
	size_t sz = RAND_B64URL_LEN(nbytes) + 1;
	char *out = xmalloc(sz);

	rand_bytes(raw, nbytes);
	rand_b64url_encode(raw, nbytes, out, sz);
	sodium_memzero(raw, nbytes);
	free(raw);
	return out;
}
