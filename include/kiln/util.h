/* kiln/util.h - allocation that aborts on OOM, string vectors, small helpers. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

void *kiln_xmalloc (size_t n);
void *kiln_xcalloc (size_t n, size_t size);
void *kiln_xrealloc (void *p, size_t n);
char *kiln_xstrdup (const char *s);
char *kiln_xstrndup (const char *s, size_t n);
char *kiln_xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* NULL-terminated string vectors (char **). */
size_t kiln_strv_len (char *const *v);
/* Appends a copy of s; *v may be NULL. */
void kiln_strv_push (char ***v, const char *s);
/* Appends s, taking ownership. */
void kiln_strv_push_take (char ***v, char *s);
char **kiln_strv_dup (char *const *v);
void kiln_strv_free (char **v);

bool kiln_str_has_prefix (const char *s, const char *prefix);
bool kiln_str_has_suffix (const char *s, const char *suffix);
/* s with every byte that does not start a valid UTF-8 sequence replaced by
 * U+FFFD, as Go does when it encodes or decodes JSON (so BuildKit's configs
 * and its parser's JSON strings).  Caller frees. */
char *kiln_str_utf8_coerce (const char *s);

/* Monotonic clock in nanoseconds. */
unsigned long long kiln_now_ns (void);

/* FNV-1a of a string, for the hash tables of paths. */
uint64_t kiln_str_hash (const char *s);

#endif
