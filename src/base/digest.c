/* digest.c - streaming sha256 over OpenSSL EVP, and "sha256:<hex>" strings. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/digest.h"
#include "kiln/util.h"

/* The streaming context is OpenSSL's low-level SHA256_CTX (deprecated in
 * OpenSSL 3, kept until 4.0; the same assembly as EVP's SHA-256): unlike an
 * EVP context its state can be read and set, which is what lets a patched
 * layer resume its diffID after the unchanged blocks instead of hashing
 * them again (kiln_sha256_mid_*). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct kiln_sha256 {
  SHA256_CTX c;
};

/* OpenSSL 3 looks EVP_sha256() up (under a lock) at every init; fetched
 * once, small digests (a tree's entries, keys) cost what they hash. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
fetch_sha256 (void)
{
  sha256_md = EVP_MD_fetch (NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256 (void)
{
  pthread_once (&sha256_once, fetch_sha256);
  return sha256_md ? sha256_md : EVP_sha256 ();
}

struct kiln_sha256 *
kiln_sha256_new (void)
{
  struct kiln_sha256 *h = kiln_xmalloc (sizeof *h);
  SHA256_Init (&h->c);
  return h;
}

void
kiln_sha256_update (struct kiln_sha256 *h, const void *data, size_t len)
{
  if (len)
    SHA256_Update (&h->c, data, len);
}

bool
kiln_sha256_mid_get (const struct kiln_sha256 *h, struct kiln_sha256_mid *out)
{
  if (h->c.num != 0)
    return false;
  for (int i = 0; i < 8; i++)
    out->h[i] = h->c.h[i];
  out->len = ((uint64_t) h->c.Nh << 32 | h->c.Nl) / 8;
  return true;
}

void
kiln_sha256_mid_set (struct kiln_sha256 *h, const struct kiln_sha256_mid *m)
{
  SHA256_Init (&h->c);
  for (int i = 0; i < 8; i++)
    h->c.h[i] = m->h[i];
  uint64_t bits = m->len * 8;
  h->c.Nl = (SHA_LONG) bits;
  h->c.Nh = (SHA_LONG) (bits >> 32);
}

static void
to_digest (const unsigned char *md, struct kiln_digest *out)
{
  static const char hex[] = "0123456789abcdef";
  memcpy (out->s, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    {
      out->s[7 + 2 * i] = hex[md[i] >> 4];
      out->s[8 + 2 * i] = hex[md[i] & 15];
    }
  out->s[KILN_DIGEST_STR_LEN] = '\0';
}

void
kiln_digest_from_raw (const unsigned char md[32], struct kiln_digest *out)
{
  to_digest (md, out);
}

void
kiln_digest_raw (const struct kiln_digest *d, unsigned char md[32])
{
  for (int i = 0; i < 32; i++)
    {
      char c1 = d->s[7 + 2 * i], c2 = d->s[8 + 2 * i];
      int hi = c1 <= '9' ? c1 - '0' : c1 - 'a' + 10, lo = c2 <= '9' ? c2 - '0' : c2 - 'a' + 10;
      md[i] = (unsigned char) (hi << 4 | lo);
    }
}

void
kiln_sha256_final (struct kiln_sha256 *h, struct kiln_digest *out)
{
  unsigned char md[32];
  SHA256_Final (md, &h->c);
  to_digest (md, out);
}

void
kiln_sha256_peek (const struct kiln_sha256 *h, struct kiln_digest *out)
{
  SHA256_CTX c = h->c;
  unsigned char md[32];
  SHA256_Final (md, &c);
  to_digest (md, out);
}

void
kiln_sha256_reset (struct kiln_sha256 *h)
{
  SHA256_Init (&h->c);
}

void
kiln_sha256_free (struct kiln_sha256 *h)
{
  free (h);
}

void
kiln_digest_of (const void *data, size_t len, struct kiln_digest *out)
{
  unsigned char md[32];
  unsigned int n = 0;
  if (EVP_Digest (data, len, md, &n, sha256 (), NULL) != 1)
    abort ();
  to_digest (md, out);
}

bool
kiln_digest_valid (const char *s)
{
  if (s == NULL || strncmp (s, "sha256:", 7) != 0 || strlen (s) != KILN_DIGEST_STR_LEN)
    return false;
  for (const char *p = s + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

int
kiln_digest_parse (const char *s, struct kiln_digest *out, struct kiln_error **err)
{
  if (!kiln_digest_valid (s))
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid digest `%.80s` (want sha256:<64 hex digits>)", s ? s : "");
  memcpy (out->s, s, KILN_DIGEST_STR_LEN + 1);
  return 0;
}

int
kiln_digest_fd (int fd, struct kiln_digest *out, uint64_t *size, struct kiln_error **err)
{
  struct kiln_sha256 *h = kiln_sha256_new ();
  /* on the stack: hashing 100,000 small files allocates nothing */
  char buf[128 << 10];
  size_t bufsz = sizeof buf;
  uint64_t total = 0;
  int ret = 0;
  for (;;)
    {
      ssize_t n = read (fd, buf, bufsz);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          ret = kiln_error_set (err, errno, KILN_E_IO, "read for hashing");
          break;
        }
      if (n == 0)
        break;
      kiln_sha256_update (h, buf, (size_t) n);
      total += (uint64_t) n;
    }
  if (ret == 0)
    {
      kiln_sha256_final (h, out);
      if (size)
        *size = total;
    }
  kiln_sha256_free (h);
  return ret;
}
