/* buf.c - kiln_buf, git's strbuf with curl's size cap. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/buf.h"
#include "kiln/util.h"

char kiln_buf_empty[1];

void
kiln_buf_init (struct kiln_buf *b, size_t max)
{
  b->buf = kiln_buf_empty;
  b->len = b->alloc = 0;
  b->max = max;
}

void
kiln_buf_grow (struct kiln_buf *b, size_t extra)
{
  size_t need = b->len + extra + 1;
  if (need <= b->alloc)
    return;
  size_t n = b->alloc ? b->alloc : 64;
  while (n < need)
    n *= 2;
  if (b->alloc == 0)
    {
      b->buf = kiln_xmalloc (n);
      b->buf[0] = '\0';
    }
  else
    b->buf = kiln_xrealloc (b->buf, n);
  b->alloc = n;
}

void
kiln_buf_add (struct kiln_buf *b, const void *data, size_t len)
{
  kiln_buf_grow (b, len);
  memcpy (b->buf + b->len, data, len);
  b->len += len;
  b->buf[b->len] = '\0';
}

void
kiln_buf_adds (struct kiln_buf *b, const char *s)
{
  kiln_buf_add (b, s, strlen (s));
}

void
kiln_buf_addch (struct kiln_buf *b, char c)
{
  kiln_buf_add (b, &c, 1);
}

void
kiln_buf_vaddf (struct kiln_buf *b, const char *fmt, va_list ap)
{
  va_list cp;
  va_copy (cp, ap);
  int n = vsnprintf (NULL, 0, fmt, cp);
  va_end (cp);
  if (n < 0)
    return;
  kiln_buf_grow (b, (size_t) n);
  vsnprintf (b->buf + b->len, (size_t) n + 1, fmt, ap);
  b->len += (size_t) n;
}

void
kiln_buf_addf (struct kiln_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kiln_buf_vaddf (b, fmt, ap);
  va_end (ap);
}

int
kiln_buf_add_checked (struct kiln_buf *b, const void *data, size_t len, struct kiln_error **err)
{
  if (b->max && (len > b->max || b->len > b->max - len))
    return kiln_error_set (err, EFBIG, KILN_E_IO, "data larger than the limit of %zu bytes", b->max);
  kiln_buf_add (b, data, len);
  return 0;
}

void
kiln_buf_setlen (struct kiln_buf *b, size_t len)
{
  if (b->alloc == 0)
    return;
  if (len >= b->alloc)
    len = b->alloc - 1;
  b->len = len;
  b->buf[len] = '\0';
}

void
kiln_buf_reset (struct kiln_buf *b)
{
  kiln_buf_setlen (b, 0);
}

char *
kiln_buf_detach (struct kiln_buf *b, size_t *len)
{
  char *r;
  if (len)
    *len = b->len;
  r = b->alloc ? b->buf : kiln_xstrdup ("");
  size_t max = b->max;
  kiln_buf_init (b, max);
  return r;
}

void
kiln_buf_release (struct kiln_buf *b)
{
  if (b->alloc)
    free (b->buf);
  kiln_buf_init (b, b->max);
}
