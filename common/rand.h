/*
 * rand: cryptographically secure random bytes and tokens (libsodium).
 *
 * libsodium is initialised on first use; if sodium_init() fails the process
 * aborts (there is no safe fallback for a security token). Every function
 * is thread-safe and cannot fail.
 */
#ifndef NBGATE_COMMON_RAND_H
#define NBGATE_COMMON_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fills p with n random bytes. */
void rand_bytes(void *p, size_t n);

/* nbytes random bytes as lowercase hex (2 * nbytes chars). Caller frees. */
char *rand_hex(size_t nbytes);

/*
 * nbytes random bytes as unpadded base64url (RFC 4648 section 5,
 * alphabet A-Z a-z 0-9 - _), ceil(nbytes * 4 / 3) chars. Caller frees.
 */
char *rand_b64url(size_t nbytes);

/*
 * Encodes n bytes of in as unpadded base64url into out (size outsz, always
 * NUL-terminated when outsz > 0). outsz must be >= RAND_B64URL_LEN(n) + 1;
 * a smaller buffer gets a truncated (still terminated) encoding.
 */
void rand_b64url_encode(const uint8_t *in, size_t n, char *out, size_t outsz);

/* Characters in the unpadded base64url encoding of n bytes. */
#define RAND_B64URL_LEN(n) (((n) * 4 + 2) / 3)

#endif
