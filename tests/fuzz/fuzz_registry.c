/* fuzz_registry - what a registry (or a proxy) sends back, through kiln's
 * parsers: WWW-Authenticate, token JSON, error JSON, Content-Range, the
 * upload Range, Retry-After, Location, response header lines, manifest
 * document kinds, platforms, and credential files (src/registry/registry_http.c,
 * src/registry/registry_auth.c, src/registry/registry.c, src/registry/auth.c).
 *
 * Input: one selector byte, then the text for that parser.  Oracles: the
 * sanitizers, and each parser's documented range: a Content-Range has
 * start <= end < total, an upload Range gives 0 < next <= bytes sent, a
 * size is not negative, a Retry-After is -1 or within the cap, an error
 * quotes no control byte. */
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include "../../src/registry/registry-internal.h"
#include "kiln/auth.h"

#define RETRY_CAP_MS 300000L

static char auth_path[64];

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc, (void) argv;
  /* credential helpers named by a fuzzed file must not be found */
  setenv ("PATH", "/nonexistent-kiln-fuzz", 1);
  snprintf (auth_path, sizeof auth_path, "/tmp/kiln-fuzz-auth-%d.json", (int) getpid ());
  return 0;
}

static void
challenge (const char *s)
{
  struct kiln_registry_challenge c;
  struct kiln_error *err = NULL;
  if (kiln_registry_challenge_parse (s, &c, &err) == 0)
    {
      if (c.scheme == KILN_REG_AUTH_BEARER && (c.realm == NULL || *c.realm == '\0'))
        fuzz_fail ("bearer challenge `%s` accepted without a realm", s);
      kiln_registry_challenge_clear (&c);
    }
  kiln_error_free (&err);
}

static void
token (const char *s, size_t n)
{
  char *t = NULL;
  long exp = 0;
  struct kiln_error *err = NULL;
  if (kiln_registry_token_parse (s, n, &t, &exp, &err) == 0)
    {
      if (exp < 60 || exp > 86400)
        fuzz_fail ("token lifetime %ld out of [60, 86400]", exp);
      for (const char *p = t; *p; p++)
        if ((unsigned char) *p < 0x21 || *p == 0x7f)
          fuzz_fail ("token holds byte %#x", (unsigned char) *p);
    }
  free (t);
  kiln_error_free (&err);
}

static void
status_error (const uint8_t *d, size_t n)
{
  struct kiln_registry_resp r = { .status = 400 };
  struct kiln_error *err = NULL;
  r.body = (struct kiln_buf) KILN_BUF_INIT;
  if (n >= 2)
    r.status = 100 + (d[0] << 8 | d[1]) % 500, d += 2, n -= 2;
  kiln_buf_add (&r.body, d, n);
  if (kiln_registry_status_error (&r, &err) >= 0)
    fuzz_fail ("a status error returned success");
  for (const char *p = err->msg; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      fuzz_fail ("registry text reached the error unsanitised (byte %#x)", (unsigned char) *p);
  kiln_error_free (&err);
  kiln_registry_resp_clear (&r);
}

static void
content_range (const char *s)
{
  int64_t a, b, t;
  if (kiln_registry_parse_content_range (s, &a, &b, &t) == 0 && !(0 <= a && a <= b && b < t))
    fuzz_fail ("Content-Range `%s` gave %lld-%lld/%lld", s, (long long) a, (long long) b, (long long) t);
}

static void
upload_range (const char *s)
{
  /* what the client has sent so far bounds what the registry may claim */
  static const int64_t sents[] = { 0, 1, 1024, INT64_MAX };
  for (size_t i = 0; i < sizeof sents / sizeof sents[0]; i++)
    {
      int64_t next = -1;
      if (kiln_registry_parse_upload_range (s, sents[i], &next) == 0 && (next <= 0 || next > sents[i]))
        fuzz_fail ("upload Range `%s` after %lld bytes gave next offset %lld", s, (long long) sents[i],
                   (long long) next);
    }
}

static void
size_header (const char *s)
{
  int64_t v = -1;
  if (kiln_registry_parse_size (s, &v) == 0 && v < 0)
    fuzz_fail ("size header `%s` gave %lld", s, (long long) v);
}

static void
retry_after (const char *s)
{
  long ms = kiln_registry_parse_retry_after (s, RETRY_CAP_MS);
  if (ms < -1 || ms > RETRY_CAP_MS)
    fuzz_fail ("Retry-After `%s` gave %ld ms (cap %ld)", s, ms, RETRY_CAP_MS);
}

static void
urls (char *base, char *loc)
{
  static const char *const bases[] = { "https://registry.example:5000/v2/a/b/blobs/uploads/x?state=1",
                                       "http://127.0.0.1/v2/" };
  const char *b = *base ? base : bases[strlen (loc) % 2];
  char *o = kiln_registry_url_origin (b);
  char *r = kiln_registry_url_resolve (b, loc);
  char *q = r ? kiln_registry_url_add_query (r, "digest", loc) : NULL;
  char *o2 = r ? kiln_registry_url_origin (r) : NULL;
  char *k = kiln_auth_normalize_key (loc);
  if (k == NULL)
    fuzz_fail ("kiln_auth_normalize_key (`%s`) returned NULL", loc);
  kiln_registry_host_is_loopback (loc);
  free (o), free (r), free (q), free (o2), free (k);
}

/* Header lines as curl hands them, then what the client does with them. */
static void
headers (const char *s, size_t n)
{
  struct kiln_registry_resp r = { 0 };
  r.body = (struct kiln_buf) KILN_BUF_INIT;
  size_t i = 0;
  while (i < n)
    {
      const char *nl = memchr (s + i, '\n', n - i);
      size_t len = nl ? (size_t) (nl - (s + i)) + 1 : n - i;
      char *line = fuzz_str ((const uint8_t *) s + i, len);
      kiln_registry_resp_header (&r, line, len);
      free (line);
      i += len;
    }
  if (r.www_auth)
    challenge (r.www_auth);
  if (r.content_range)
    content_range (r.content_range);
  if (r.range)
    upload_range (r.range);
  if (r.retry_after)
    retry_after (r.retry_after);
  if (r.chunk_min)
    size_header (r.chunk_min);
  if (r.status < 0 || r.status > 999)
    fuzz_fail ("status line gave status %ld", r.status);
  if (r.location)
    {
      char *u = kiln_registry_url_resolve ("https://registry.example/v2/x/blobs/uploads/", r.location);
      free (u);
    }
  kiln_registry_resp_clear (&r);
}

static void
doc_kind (char *ctype, const char *doc, size_t n)
{
  enum kiln_registry_doc kind;
  char *mt = NULL;
  struct kiln_error *err = NULL;
  kiln_registry_doc_kind (doc, n, *ctype ? ctype : NULL, &kind, &mt, &err);
  free (mt);
  kiln_error_free (&err);
}

static void
platform (const char *s)
{
  struct kiln_platform p, want = { (char *) "linux", (char *) "arm64", NULL };
  struct kiln_error *err = NULL;
  struct kiln_descriptor d[2] = { { 0 } };
  struct kiln_index ix = { .manifests = d, .nmanifests = 2 };
  d[0].platform = (struct kiln_platform){ (char *) "linux", (char *) "arm", (char *) "v7" };
  if (kiln_registry_platform_parse (s, &p, &err) == 0)
    {
      d[1].platform = p;
      if (kiln_registry_platform_select (&ix, &p) < 0)
        fuzz_fail ("platform `%s` does not select its own index entry", s);
      kiln_registry_platform_select (&ix, &want);
      free (p.os), free (p.architecture), free (p.variant);
    }
  kiln_error_free (&err);
}

static void
auth_file (const uint8_t *d, size_t n)
{
  int fd = open (auth_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write (fd, d, n) != (ssize_t) n)
    abort ();
  close (fd);
  static const char *const hosts[] = { "docker.io", "localhost:5000", "registry.example" };
  for (size_t i = 0; i < 3; i++)
    {
      struct kiln_auth_cred c = { 0 };
      struct kiln_error *err = NULL;
      kiln_auth_lookup_file (auth_path, hosts[i], &c, &err);
      kiln_auth_cred_clear (&c);
      kiln_error_free (&err);
    }
  unlink (auth_path);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned sel = data[0] % 10;
  data++, size--;
  char *s = fuzz_str (data, size);
  char *parts[2];
  size_t lens[2];
  fuzz_split (data, size, parts, lens, 2);
  switch (sel)
    {
    case 0: challenge (s); break;
    case 1: token (s, size); break;
    case 2: status_error (data, size); break;
    case 3: content_range (s); break;
    case 4: upload_range (s), size_header (s); break;
    case 5: retry_after (s); break;
    case 6: urls (parts[0], parts[1]); break;
    case 7: headers (s, strlen (s)); break;
    case 8: doc_kind (parts[0], parts[1], lens[1]); break;
    default:
      if (size > 0 && data[0] == '{')
        auth_file (data, size);
      else
        platform (s);
      break;
    }
  fuzz_free_parts (parts, 2);
  free (s);
  return 0;
}
