/* kiln/util.h - allocation that aborts on OOM, string vectors, small helpers. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

void *kiln_xmalloc (size_t n);
/* n must be a multiple of align, a power of two (aligned_alloc's rule). */
void *kiln_xaligned_alloc (size_t align, size_t n);
void *kiln_xcalloc (size_t n, size_t size);
void *kiln_xrealloc (void *p, size_t n);
char *kiln_xstrdup (const char *s);
char *kiln_xstrndup (const char *s, size_t n);
char *kiln_xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* NULL-terminated string vectors (char **). */
size_t kiln_strv_len (char *const *v);
/* Appends a copy of s; *v may be NULL. */
void kiln_strv_push (char ***v, const char *s);
/* Appends s, taking ownership.  Both measure *v first: for a vector that
 * may grow long, use kiln_strv_append. */
void kiln_strv_push_take (char ***v, char *s);
/* Appends s (taken) to *v, whose length the caller keeps in *n, so many
 * appends cost linear time.  *v must start NULL and grow only through this
 * function (its capacity follows from *n). */
void kiln_strv_append (char ***v, size_t *n, char *s);
char **kiln_strv_dup (char *const *v);
void kiln_strv_free (char **v);

/* A qsort/bsearch comparator for arrays of char * (strcmp order). */
int kiln_strv_cmp (const void *a, const void *b);
/* s[0, n) as an unsigned number in base (2..10): digits only (no sign, blank,
 * prefix or suffix), not empty, at most max; false otherwise (as Go's
 * strconv.ParseUint with that base). */
bool kiln_parse_uint (const char *s, size_t n, unsigned base, uint64_t max, uint64_t *out);

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
/* " (did you mean X?)" for a mistyped word (n bytes): BuildKit's
 * util/suggest Search, the option at the smallest edit distance below 3 (an
 * exact match gives none); without case_sensitive the comparison ignores
 * case and X is upper case when the word is, else lower case.  options is
 * NULL-terminated.  NULL when nothing is close; the caller frees. */
char *kiln_suggest (const char *word, size_t n, const char *const *options, bool case_sensitive);

/* libarchive converts tar names between pax records (UTF-8) and the
 * thread's locale; in kiln's default "C" locale a non-ASCII name fails that
 * conversion (ARCHIVE_WARN, "Pathname can't be converted").  Enter switches
 * the calling thread's LC_CTYPE to C.UTF-8 (no-op where missing) around tar
 * reading or writing; restore gives back what enter returned. */
locale_t kiln_locale_utf8_enter (void);
void kiln_locale_restore (locale_t old);

#endif
