/* kiln/digest.h - streaming sha256 and the "sha256:<hex>" digest type.
 *
 * Ownership: a struct kiln_digest is a plain value (copy it with `=`), never
 * allocated.  A kiln_sha256 context is the caller's from _new until
 * kiln_sha256_free; _final does not free it.  kiln_digest_hex points into
 * the digest it is given. */
#ifndef KILN_DIGEST_H
#define KILN_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/error.h"

#define KILN_DIGEST_HEX_LEN 64
#define KILN_DIGEST_STR_LEN (7 + KILN_DIGEST_HEX_LEN) /* "sha256:" + hex */

/* A digest as text, always "sha256:" + 64 lowercase hex digits + NUL. */
struct kiln_digest {
  char s[KILN_DIGEST_STR_LEN + 1];
};

struct kiln_sha256; /* opaque streaming context */

struct kiln_sha256 *kiln_sha256_new (void);
void kiln_sha256_update (struct kiln_sha256 *h, const void *data, size_t len);
/* Writes the digest; the context may be reused after kiln_sha256_reset. */
void kiln_sha256_final (struct kiln_sha256 *h, struct kiln_digest *out);
/* The digest of what was hashed so far; h goes on unchanged. */
void kiln_sha256_peek (const struct kiln_sha256 *h, struct kiln_digest *out);
void kiln_sha256_reset (struct kiln_sha256 *h);
void kiln_sha256_free (struct kiln_sha256 *h);
/* The state after a whole number of 64-byte blocks: with it a later run
 * goes on hashing from that point (a patched layer skips the unchanged
 * blocks before its first change). */
struct kiln_sha256_mid {
  uint32_t h[8];
  uint64_t len; /* bytes hashed; a multiple of 64 */
};
/* false when the bytes so far are not a multiple of 64 */
bool kiln_sha256_mid_get (const struct kiln_sha256 *h, struct kiln_sha256_mid *out);
/* h continues from m (m.len must be a multiple of 64). */
void kiln_sha256_mid_set (struct kiln_sha256 *h, const struct kiln_sha256_mid *m);

void kiln_digest_of (const void *data, size_t len, struct kiln_digest *out);
/* The 32 bytes of a digest and back (d must be valid, as parse makes it). */
void kiln_digest_from_raw (const unsigned char md[32], struct kiln_digest *out);
void kiln_digest_raw (const struct kiln_digest *d, unsigned char md[32]);

/* Parses and validates "sha256:<64 lowercase hex>"; KILN_E_PARSE otherwise. */
int kiln_digest_parse (const char *s, struct kiln_digest *out, struct kiln_error **err);
bool kiln_digest_valid (const char *s);
/* The hex part (s + 7). */
static inline const char *
kiln_digest_hex (const struct kiln_digest *d)
{
  return d->s + 7;
}

/* Hashes everything readable from fd (from its current offset). */
int kiln_digest_fd (int fd, struct kiln_digest *out, uint64_t *size, struct kiln_error **err);

#endif
