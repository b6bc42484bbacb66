/* util.c - allocation that aborts on OOM, string vectors, cleanup helpers. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/util.h"

static void __attribute__ ((noreturn)) oom (void)
{
  static const char msg[] = "kiln: out of memory\n";
  (void) !write (2, msg, sizeof msg - 1);
  abort ();
}

void *
kiln_xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
kiln_xaligned_alloc (size_t align, size_t n)
{
  void *p = aligned_alloc (align, n ? n : align);
  if (p == NULL)
    oom ();
  return p;
}

void *
kiln_xcalloc (size_t n, size_t size)
{
  void *p = calloc (n ? n : 1, size ? size : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
kiln_xrealloc (void *p, size_t n)
{
  p = realloc (p, n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

char *
kiln_xstrdup (const char *s)
{
  char *r = strdup (s ? s : "");
  if (r == NULL)
    oom ();
  return r;
}

char *
kiln_xstrndup (const char *s, size_t n)
{
  char *r = strndup (s, n);
  if (r == NULL)
    oom ();
  return r;
}

char *
kiln_xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *r;
  va_start (ap, fmt);
  if (vasprintf (&r, fmt, ap) < 0)
    oom ();
  va_end (ap);
  return r;
}

size_t
kiln_strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void
kiln_strv_push_take (char ***v, char *s)
{
  size_t n = kiln_strv_len (*v);
  *v = kiln_xrealloc (*v, (n + 2) * sizeof (char *));
  (*v)[n] = s;
  (*v)[n + 1] = NULL;
}

int
kiln_strv_cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

bool
kiln_parse_uint (const char *s, size_t n, unsigned base, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    {
      unsigned d = (unsigned) (unsigned char) s[i] - '0';
      /* v * base + d > max, asked without overflowing */
      if (d >= base || d > max || v > (max - d) / base)
        return false;
      v = v * base + d;
    }
  *out = v;
  return true;
}

void
kiln_strv_append (char ***v, size_t *n, char *s)
{
  /* capacity: the next power of two of n + 1 slots (the strings and the
   * NULL), at least 8; grown when the new string and its NULL need more */
  size_t cap = 8;
  while (cap < *n + 1)
    cap *= 2;
  if (*v == NULL || *n + 2 > cap)
    *v = kiln_xrealloc (*v, (*v == NULL ? cap : 2 * cap) * sizeof (char *));
  (*v)[(*n)++] = s;
  (*v)[*n] = NULL;
}

void
kiln_strv_push (char ***v, const char *s)
{
  kiln_strv_push_take (v, kiln_xstrdup (s));
}

char **
kiln_strv_dup (char *const *v)
{
  size_t n = kiln_strv_len (v);
  char **r = kiln_xcalloc (n + 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    r[i] = kiln_xstrdup (v[i]);
  return r;
}

void
kiln_strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

bool
kiln_str_has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

bool
kiln_str_has_suffix (const char *s, const char *suffix)
{
  size_t a = strlen (s), b = strlen (suffix);
  return a >= b && memcmp (s + a - b, suffix, b) == 0;
}

unsigned long long
kiln_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec;
}

void
kiln_cleanup_freep (void *p)
{
  free (*(void **) p);
}

void
kiln_cleanup_closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

void
kiln_cleanup_fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
}

void
kiln_cleanup_closedirp (DIR **d)
{
  if (*d)
    closedir (*d);
}

void
kiln_cleanup_strvp (char ***v)
{
  kiln_strv_free (*v);
}

void
kiln_cleanup_jsonp (void *pj)
{
  json_t **j = pj;
  if (*j)
    json_decref (*j);
}

uint64_t
kiln_str_hash (const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

/* Length of the valid UTF-8 sequence at s, 0 when s does not start one
 * (Go's utf8.DecodeRune: no overlong forms, surrogates or code points above
 * U+10FFFF). */
static size_t
utf8_len (const unsigned char *s)
{
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
  else
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return n;
}

char *
kiln_str_utf8_coerce (const char *s)
{
  /* U+FFFD takes 3 bytes where one bad byte was */
  char *r = kiln_xmalloc (3 * strlen (s) + 1), *o = r;
  const unsigned char *p = (const unsigned char *) s;
  while (*p)
    {
      size_t n = utf8_len (p);
      if (n == 0)
        {
          memcpy (o, "\xef\xbf\xbd", 3);
          o += 3;
          p++;
          continue;
        }
      memcpy (o, p, n);
      o += n;
      p += n;
    }
  *o = '\0';
  return r;
}

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void
utf8_locale_init (void)
{
  utf8_locale = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
}

locale_t
kiln_locale_utf8_enter (void)
{
  pthread_once (&utf8_once, utf8_locale_init);
  return utf8_locale ? uselocale (utf8_locale) : (locale_t) 0;
}

void
kiln_locale_restore (locale_t old)
{
  if (old)
    uselocale (old);
}

/* Edit distance of a and b, one per insertion, deletion or substitution. */
static size_t
edit_distance (const char *a, size_t na, const char *b, size_t nb, bool case_sensitive)
{
  size_t *row = kiln_xcalloc (nb + 1, sizeof *row);
  for (size_t j = 0; j <= nb; j++)
    row[j] = j;
  for (size_t i = 1; i <= na; i++)
    {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= nb; j++)
        {
          size_t up = row[j];
          int ca = (unsigned char) a[i - 1], cb = (unsigned char) b[j - 1];
          bool same = case_sensitive ? ca == cb : tolower (ca) == tolower (cb);
          size_t sub = diag + !same;
          size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
          row[j] = sub < best ? sub : best;
          diag = up;
        }
    }
  size_t d = row[nb];
  free (row);
  return d;
}

char *
kiln_suggest (const char *word, size_t n, const char *const *options, bool case_sensitive)
{
  const char *best = NULL;
  size_t mindist = 3;
  for (size_t i = 0; options[i]; i++)
    {
      size_t d = edit_distance (word, n, options[i], strlen (options[i]), case_sensitive);
      if (d == 0)
        return NULL; /* the word is valid: the error is about something else */
      if (d < mindist)
        best = options[i], mindist = d;
    }
  if (!best)
    return NULL;
  bool upper = true;
  for (size_t i = 0; i < n; i++)
    upper = upper && !islower ((unsigned char) word[i]);
  char *s = kiln_xasprintf (" (did you mean %s?)", best);
  if (!case_sensitive)
    for (char *c = s + strlen (" (did you mean "); *c != '?'; c++)
      *c = (char) (upper ? toupper ((unsigned char) *c) : tolower ((unsigned char) *c));
  return s;
}
