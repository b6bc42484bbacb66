/* tests/fuzz/fuzz.h - what the fuzz targets share.
 *
 * Each tests/fuzz/fuzz_TARGET.c defines LLVMFuzzerTestOneInput (and maybe
 * LLVMFuzzerInitialize) and is linked twice: with libFuzzer (clang,
 * build/fuzz/fuzz_TARGET, `make fuzz`) and with tests/fuzz/replay.c (gcc,
 * build/fuzz-replay/TARGET, `make fuzz-replay`), which replays the
 * regression inputs of testdata/fuzz/TARGET/.  An oracle failure calls
 * fuzz_fail, which aborts, so both drivers report it as a crash. */
#ifndef KILN_FUZZ_H
#define KILN_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

/* An oracle found the library wrong: print why and abort (a "crash"). */
#define fuzz_fail(...)                                                                                                 \
  do                                                                                                                   \
    {                                                                                                                  \
      fprintf (stderr, "fuzz oracle: " __VA_ARGS__);                                                                   \
      fputc ('\n', stderr);                                                                                            \
      abort ();                                                                                                        \
    }                                                                                                                  \
  while (0)

/* Warnings about hostile input (dropped xattrs, skipped entries) are what a
 * fuzzer feeds all day: printing them only slows the run down. */
__attribute__ ((constructor, unused)) static void
fuzz_quiet (void)
{
  kiln_log_set_level (KILN_LOG_QUIET);
}

/* A NUL-terminated copy of data[0..n) (inner NULs end the string early). */
static inline char *
fuzz_str (const uint8_t *data, size_t n)
{
  char *s = malloc (n + 1);
  if (s == NULL)
    abort ();
  memcpy (s, data, n);
  s[n] = '\0';
  return s;
}

/* Splits data on NUL bytes into at most max NUL-terminated parts (the last
 * part keeps any further NULs as part of its bytes, its length in
 * lens[max-1]).  Returns the number of parts; parts[i] malloc'd, missing
 * parts are "" so callers need not check. */
static inline size_t
fuzz_split (const uint8_t *data, size_t size, char **parts, size_t *lens, size_t max)
{
  size_t n = 0, pos = 0;
  while (n < max)
    {
      const uint8_t *nul = n + 1 < max ? memchr (data + pos, 0, size - pos) : NULL;
      size_t len = nul ? (size_t) (nul - (data + pos)) : size - pos;
      parts[n] = fuzz_str (data + pos, len);
      lens[n++] = len;
      pos += len;
      if (!nul)
        break;
      pos++;
    }
  for (size_t i = n; i < max; i++)
    {
      parts[i] = fuzz_str (data, 0);
      lens[i] = 0;
    }
  return n;
}

static inline void
fuzz_free_parts (char **parts, size_t max)
{
  for (size_t i = 0; i < max; i++)
    free (parts[i]);
}

#endif
