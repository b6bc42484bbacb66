/* registry_parse.c - the registry client's pure helpers: URLs (origin,
 * redirect targets, query parameters) and the headers it reads (Range,
 * Content-Range, sizes, Retry-After), plus the retry backoff.  No I/O, so
 * the fuzzer and the unit tests call them directly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "kiln/cleanup.h"
#include "kiln/util.h"
#include "registry-internal.h"

/* ---- URL helpers ---- */

char *
kiln_registry_url_origin (const char *url)
{
  CURLU *u = curl_url ();
  char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
  if (curl_url_set (u, CURLUPART_URL, url, 0) == CURLUE_OK
      && curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
      && curl_url_get (u, CURLUPART_HOST, &host, 0) == CURLUE_OK
      && curl_url_get (u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    {
      for (char *p = host; *p; p++)
        *p = (char) (('A' <= *p && *p <= 'Z') ? *p + 32 : *p);
      out = kiln_xasprintf ("%s://%s:%s", scheme, host, port);
    }
  curl_free (scheme), curl_free (host), curl_free (port);
  curl_url_cleanup (u);
  return out;
}

char *
kiln_registry_url_resolve (const char *base, const char *loc)
{
  CURLU *u = curl_url ();
  char *s = NULL, *out = NULL;
  if (curl_url_set (u, CURLUPART_URL, base, 0) == CURLUE_OK && curl_url_set (u, CURLUPART_URL, loc, 0) == CURLUE_OK
      && curl_url_get (u, CURLUPART_URL, &s, 0) == CURLUE_OK)
    out = kiln_xstrdup (s);
  curl_free (s);
  curl_url_cleanup (u);
  return out;
}

char *
kiln_registry_url_add_query (const char *url, const char *name, const char *value)
{
  CURLU *u = curl_url ();
  char *s = NULL, *out = NULL;
  kiln_autofree char *q = kiln_xasprintf ("%s=%s", name, value);
  if (curl_url_set (u, CURLUPART_URL, url, 0) == CURLUE_OK
      && curl_url_set (u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK
      && curl_url_get (u, CURLUPART_URL, &s, 0) == CURLUE_OK)
    out = kiln_xstrdup (s);
  curl_free (s);
  curl_url_cleanup (u);
  return out;
}

/* ---- small parsers ---- */

static int
parse_i64 (const char **s, int64_t *out)
{
  char *end;
  if (**s < '0' || **s > '9')
    return -1;
  errno = 0;
  long long v = strtoll (*s, &end, 10);
  if (errno || v < 0)
    return -1;
  *out = v;
  *s = end;
  return 0;
}

int
kiln_registry_parse_content_range (const char *s, int64_t *start, int64_t *end, int64_t *total)
{
  if (s == NULL || strncmp (s, "bytes ", 6) != 0)
    return -1;
  s += 6;
  if (parse_i64 (&s, start) < 0 || *s++ != '-' || parse_i64 (&s, end) < 0 || *s++ != '/' || parse_i64 (&s, total) < 0
      || *s != '\0' || *end < *start || *end >= *total)
    return -1;
  return 0;
}

int
kiln_registry_parse_upload_range (const char *s, int64_t sent, int64_t *next)
{
  int64_t a, b;
  if (s == NULL)
    return -1;
  if (strncmp (s, "bytes=", 6) == 0)
    s += 6;
  if (parse_i64 (&s, &a) < 0 || a != 0 || *s++ != '-' || parse_i64 (&s, &b) < 0 || *s != '\0')
    return -1;
  /* the registry cannot hold more than was sent (this also keeps b + 1 from
   * overflowing: sent is a real file size) */
  if (b >= sent)
    return -1;
  *next = b + 1;
  return 0;
}

int
kiln_registry_parse_size (const char *s, int64_t *out)
{
  if (s == NULL || parse_i64 (&s, out) < 0 || *s != '\0')
    return -1;
  return 0;
}

/* ms milliseconds for secs seconds, at most cap_ms, without overflow. */
static long
capped_ms (int64_t secs, long cap_ms)
{
  return secs > cap_ms / 1000 ? cap_ms : (long) secs * 1000;
}

long
kiln_registry_parse_retry_after (const char *s, long cap_ms)
{
  int64_t v;
  const char *p = s;
  if (s == NULL || *s == '\0')
    return -1;
  if (strspn (s, "0123456789") == strlen (s))
    /* delta-seconds; more than int64 holds is just "very long" */
    return parse_i64 (&p, &v) == 0 ? capped_ms (v, cap_ms) : cap_ms;
  time_t t = curl_getdate (s, NULL);
  if (t < 0)
    return -1;
  time_t now = time (NULL);
  if (t <= now)
    return -1; /* a date in the past falls back to our own backoff */
  return capped_ms ((int64_t) t - (int64_t) now, cap_ms);
}

unsigned
kiln_registry_backoff_ms (unsigned delay_ms, int n)
{
  unsigned long long d = delay_ms;
  for (int i = 0; i < n && d < KILN_REG_MAX_BACKOFF_MS; i++)
    d *= 2;
  if (d > KILN_REG_MAX_BACKOFF_MS)
    d = KILN_REG_MAX_BACKOFF_MS;
  /* jitter spreads parallel workers hitting the same overloaded registry */
  unsigned long long j = d / 4 ? (unsigned long long) random () % (d / 4 + 1) : 0;
  return (unsigned) (d + j);
}
