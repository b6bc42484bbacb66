/* kiln/buf.h - growable byte buffer with git strbuf's invariants plus a cap.
 *
 * buf is never NULL (KILN_BUF_INIT points at a static empty string) and always
 * NUL-terminated; alloc >= len + 1 once anything was added.  max (0 = no cap)
 * bounds len: kiln_buf_add_checked fails with EFBIG instead of growing past it,
 * which is how untrusted input (manifests, tokens, error bodies) is read.
 *
 * Ownership: the buffer owns b->buf; anyone may read it (and b->len) but
 * only these calls change it (a writer may also fill the room that
 * kiln_buf_grow made past len, then kiln_buf_setlen), and a pointer into
 * it is valid until the next call that grows the buffer.  kiln_buf_detach hands the string over
 * and leaves an empty buffer; kiln_buf_release frees and re-initialises it
 * (keeping max), so a released buffer can be used again.  Data passed to
 * the _add calls is copied. */
#ifndef KILN_BUF_H
#define KILN_BUF_H

#include <stddef.h>
#include <stdarg.h>
#include "kiln/error.h"

struct kiln_buf {
  char *buf;
  size_t len, alloc, max;
};

extern char kiln_buf_empty[];
#define KILN_BUF_INIT                                                                                                  \
  {                                                                                                                    \
    kiln_buf_empty, 0, 0, 0                                                                                            \
  }

void kiln_buf_init (struct kiln_buf *b, size_t max);
void kiln_buf_grow (struct kiln_buf *b, size_t extra);
void kiln_buf_add (struct kiln_buf *b, const void *data, size_t len);
void kiln_buf_adds (struct kiln_buf *b, const char *s);
void kiln_buf_addch (struct kiln_buf *b, char c);
void kiln_buf_addf (struct kiln_buf *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void kiln_buf_vaddf (struct kiln_buf *b, const char *fmt, va_list ap);
/* Like kiln_buf_add but fails with EFBIG when len would pass max. */
int kiln_buf_add_checked (struct kiln_buf *b, const void *data, size_t len, struct kiln_error **err);
void kiln_buf_setlen (struct kiln_buf *b, size_t len);
void kiln_buf_reset (struct kiln_buf *b);
/* Hands the malloc'd string to the caller (never NULL) and resets b. */
char *kiln_buf_detach (struct kiln_buf *b, size_t *len);
void kiln_buf_release (struct kiln_buf *b);

#define kiln_autobuf __attribute__ ((cleanup (kiln_buf_release)))

#endif
