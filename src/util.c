/* util.c - allocation that aborts on OOM, string vectors, cleanup helpers. */
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

static void __attribute__ ((noreturn))
oom (void)
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
