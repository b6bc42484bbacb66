/* error.c - the kiln_error chain (crun's error.c with a kind). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/error.h"
#include "kiln/util.h"

int
kiln_error_code (const struct kiln_error *err)
{
  return err ? -err->errnum - 1 : -1;
}

int
kiln_error_set (struct kiln_error **err, int errnum, enum kiln_errkind kind, const char *fmt, ...)
{
  va_list ap;
  struct kiln_error *e;

  if (errnum < 0)
    errnum = -errnum;
  if (err == NULL)
    return -errnum - 1;
  if (*err)
    kiln_error_free (err); /* a caller bug; keep the newest, do not leak */
  e = kiln_xcalloc (1, sizeof *e);
  e->errnum = errnum;
  e->kind = kind;
  va_start (ap, fmt);
  if (vasprintf (&e->msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  *err = e;
  return -errnum - 1;
}

int
kiln_error_wrap (struct kiln_error **err, const char *fmt, ...)
{
  va_list ap;
  char *ctx, *msg;

  if (err == NULL || *err == NULL)
    return -1;
  va_start (ap, fmt);
  if (vasprintf (&ctx, fmt, ap) < 0)
    abort ();
  va_end (ap);
  msg = kiln_xasprintf ("%s: %s", ctx, (*err)->msg);
  free (ctx);
  free ((*err)->msg);
  (*err)->msg = msg;
  return kiln_error_code (*err);
}

char *
kiln_error_format (const struct kiln_error *err)
{
  if (err == NULL)
    return kiln_xstrdup ("unknown error");
  if (err->errnum)
    return kiln_xasprintf ("%s: %s", err->msg, strerror (err->errnum));
  return kiln_xstrdup (err->msg);
}

void
kiln_error_free (struct kiln_error **err)
{
  if (err == NULL || *err == NULL)
    return;
  free ((*err)->msg);
  free (*err);
  *err = NULL;
}
