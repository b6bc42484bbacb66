/* fuzz_ignore - .dockerignore parsing and matching (src/frontend/ignore.c).
 *
 * Input: "IGNORE-FILE\0PATHS": the file's text, then newline-separated
 * paths to match (cleaned here, as the context walker hands cleaned
 * relative paths to kiln_ignore_excluded).  Without paths, the patterns
 * themselves (without "!") and a few fixed names are matched.
 * Oracles: the sanitizers, time limits (no backtracking blow-up), and that
 * an empty pattern set excludes nothing. */
#include "fuzz.h"

#include "kiln/ignore.h"

/* rel cleaned like filepath.Clean, leading "/" dropped; NULL when empty. */
static char *
clean_path (const char *p, size_t n)
{
  char *out = malloc (n + 1);
  size_t o = 0, i = 0;
  if (out == NULL)
    abort ();
  while (i < n)
    {
      while (i < n && p[i] == '/')
        i++;
      size_t s = i;
      while (i < n && p[i] != '/')
        i++;
      size_t len = i - s;
      if (len == 0 || (len == 1 && p[s] == '.'))
        continue;
      if (len == 2 && p[s] == '.' && p[s + 1] == '.')
        {
          while (o > 0 && out[o - 1] != '/')
            o--;
          if (o > 0)
            o--;
          continue;
        }
      if (o > 0)
        out[o++] = '/';
      memcpy (out + o, p + s, len);
      o += len;
    }
  out[o] = '\0';
  if (o == 0)
    {
      free (out);
      return NULL;
    }
  return out;
}

static void
match (const struct kiln_ignore *ig, const struct kiln_ignore *empty, const char *p, size_t n)
{
  char *rel = clean_path (p, n);
  if (rel == NULL)
    return;
  if (kiln_ignore_excluded (ig, rel))
    kiln_ignore_has_exceptions_under (ig, rel);
  if (kiln_ignore_excluded (empty, rel))
    fuzz_fail ("the empty pattern set excludes `%s`", rel);
  free (rel);
}

/* Each line of text as a path (a leading "!" removed). */
static void
match_lines (const struct kiln_ignore *ig, const struct kiln_ignore *empty, const char *text, size_t len)
{
  size_t i = 0;
  while (i < len)
    {
      const char *nl = memchr (text + i, '\n', len - i);
      size_t n = nl ? (size_t) (nl - (text + i)) : len - i;
      const char *p = text + i;
      size_t m = n;
      if (m > 0 && p[0] == '!')
        p++, m--;
      if (m > 0 && p[m - 1] == '\r')
        m--;
      match (ig, empty, p, m);
      i += n + 1;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const fixed[] = { "a",         "a/b",     "Dockerfile", "node_modules/x/y.js",
                                       "build/tmp", "x.log",   ".git/HEAD",  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
                                       "a/b/c/d/e", "keep.log" };
  char *parts[2];
  size_t lens[2];
  size_t nparts = fuzz_split (data, size, parts, lens, 2);
  struct kiln_ignore *ig = NULL, *empty = kiln_ignore_new_empty ();
  struct kiln_error *err = NULL;
  if (kiln_ignore_parse (".dockerignore", (const char *) data, lens[0], &ig, &err) == 0)
    {
      if (nparts == 2)
        match_lines (ig, empty, parts[1], lens[1]);
      else
        {
          for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            match (ig, empty, fixed[i], strlen (fixed[i]));
          match_lines (ig, empty, (const char *) data, lens[0]);
        }
      kiln_ignore_free (ig);
    }
  kiln_error_free (&err);
  kiln_ignore_free (empty);
  fuzz_free_parts (parts, 2);
  return 0;
}
