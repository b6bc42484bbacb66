/* kiln/error.h - the error object every fallible function fills in.
 *
 * A fallible function returns int (>= 0 on success, < 0 on failure) and takes
 * `struct kiln_error **err` as its last argument, set exactly once on failure.
 * Callers either return the error as is, wrap it with context, or handle it
 * and free it.  Only main/cmd_* print errors. */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stdarg.h>

enum kiln_errkind {
  KILN_E_INTERNAL = 0,
  KILN_E_PARSE, /* bad input text: Dockerfile, JSON, flags, references */
  KILN_E_IO,    /* filesystem or pipe */
  KILN_E_NET,
  KILN_E_AUTH,
  KILN_E_NOTFOUND,
  KILN_E_DIGEST, /* content does not match its digest */
  KILN_E_UNSUPPORTED,
  KILN_E_USAGE, /* bad command line */
};

struct kiln_error {
  int errnum; /* errno, or 0 */
  enum kiln_errkind kind;
  char *msg; /* "outer context: inner context: failure" */
};

/* Sets *err (which must be NULL) and returns -errnum - 1, negative even when
 * errnum is 0.  The errno text is appended only when printed. */
int kiln_error_set (struct kiln_error **err, int errnum, enum kiln_errkind kind, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Prepends "context: " to the message of *err; returns -errnum - 1. */
int kiln_error_wrap (struct kiln_error **err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* The return value a failed call gave, recomputed from *err. */
int kiln_error_code (const struct kiln_error *err);

/* Full text, with ": strerror(errnum)" when errnum != 0.  Caller frees. */
char *kiln_error_format (const struct kiln_error *err);

/* Frees *err and sets it to NULL; NULL-safe. */
void kiln_error_free (struct kiln_error **err);

#endif
