/* ignore.c - .dockerignore matching with moby/patternmatcher's semantics.
 *
 * Each pattern is classified as patternmatcher does (exact, "dir/" + "**"
 * prefix, leading "**" suffix, or general) because the classes really behave
 * differently: "**file" is a plain suffix test and matches "xfile".  General
 * patterns are compiled to kiln_glob tokens where patternmatcher builds a
 * regular expression: '*' and '?' never cross '/', a "**" followed by more
 * pattern matches zero or more whole directories ("(.*" "/)?"), one at the
 * end anything.  The glob matcher runs in time linear in the path, as Go's
 * regexp does: "*a*a*a*a*a*a*b" against a long name does not backtrack. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/glob.h"
#include "kiln/ignore.h"
#include "kiln/util.h"

enum match_type {
  M_EXACT,
  M_PREFIX, /* "dir/" then "**": plain prefix test */
  M_SUFFIX, /* "**" then "name" or "/name": plain suffix test */
  M_TOKENS,
};

struct pattern {
  char *text; /* cleaned, without the leading '!' */
  bool exception;
  enum match_type type;
  struct kiln_glob glob; /* M_TOKENS */
};

struct kiln_ignore {
  struct pattern *pats;
  size_t n;
};

/* filepath.Match's syntax check; *why says what is wrong. */
static bool
pattern_valid (const char *p, const char **why)
{
  while (*p)
    {
      bool hit;
      if (*p == '\\')
        {
          if (*++p == '\0')
            return *why = "trailing `\\`", false;
          p += kiln_glob_char (p, strnlen (p, 4), NULL);
        }
      else if (*p == '[')
        {
          p++;
          if (!kiln_glob_class_scan (&p, 0, &hit))
            return *why = "bad or unterminated character class", false;
        }
      else
        p++;
    }
  return true;
}

/* Classifies and tokenises pat->text, as patternmatcher's compile(). */
static void
pattern_compile (struct pattern *pat)
{
  const char *p = pat->text;
  enum match_type type = M_EXACT;
  bool hit;

  kiln_glob_init (&pat->glob, '/');
  for (bool first = true; *p; first = false)
    {
      char c = *p++;
      if (c == '*' && *p == '*')
        {
          p += p[1] == '/' ? 2 : 1;
          if (*p == '\0' && type == M_EXACT)
            type = M_PREFIX;
          else
            {
              kiln_glob_add (&pat->glob, *p ? KILN_GLOB_DIRS : KILN_GLOB_ANY, 0, NULL);
              type = M_TOKENS;
            }
          if (first)
            type = M_SUFFIX;
        }
      else if (c == '*' || c == '?')
        {
          kiln_glob_add (&pat->glob, c == '*' ? KILN_GLOB_STAR : KILN_GLOB_ONE, 0, NULL);
          type = M_TOKENS;
        }
      else if (c == '[')
        {
          kiln_glob_add (&pat->glob, KILN_GLOB_CLASS, 0, p);
          kiln_glob_class_scan (&p, 0, &hit); /* validated already */
          type = M_TOKENS;
        }
      else if (c == '\\' && *p)
        {
          kiln_glob_add (&pat->glob, KILN_GLOB_BYTE, *p++, NULL);
          type = M_TOKENS;
        }
      else
        kiln_glob_add (&pat->glob, KILN_GLOB_BYTE, c, NULL);
    }
  pat->type = type;
}

static bool
pattern_match (const struct pattern *pat, const char *path)
{
  size_t plen = strlen (path), tlen = strlen (pat->text);
  const char *suffix;
  switch (pat->type)
    {
    case M_EXACT: return strcmp (path, pat->text) == 0;
    case M_PREFIX: return strncmp (path, pat->text, tlen - 2) == 0;
    case M_SUFFIX:
      suffix = pat->text + 2;
      if (plen >= tlen - 2 && strcmp (path + plen - (tlen - 2), suffix) == 0)
        return true;
      /* "**" + "/foo" also matches "foo" itself */
      return suffix[0] == '/' && strcmp (path, suffix + 1) == 0;
    default: return kiln_glob_match (&pat->glob, path, plen, NULL) == 1;
    }
}

/* The path or one of its parent directories matches (MatchesOrParentMatches). */
static bool
pattern_match_or_parent (const struct pattern *pat, char *path)
{
  if (pattern_match (pat, path))
    return true;
  for (char *slash = strchr (path, '/'); slash; slash = strchr (slash + 1, '/'))
    {
      *slash = '\0';
      bool m = pattern_match (pat, path);
      *slash = '/';
      if (m)
        return true;
    }
  return false;
}

bool
kiln_ignore_excluded (const struct kiln_ignore *ig, const char *rel)
{
  bool matched = false;
  if (ig == NULL || rel[0] == '\0' || strcmp (rel, ".") == 0)
    return false;
  kiln_autofree char *path = kiln_xstrdup (rel);
  for (size_t i = 0; i < ig->n; i++)
    {
      const struct pattern *pat = &ig->pats[i];
      /* Only an exception can undo a match, only an inclusion can make one. */
      if (pat->exception != matched)
        continue;
      if (pattern_match_or_parent (pat, path))
        matched = !pat->exception;
    }
  return matched;
}

bool
kiln_ignore_has_exceptions_under (const struct kiln_ignore *ig, const char *dir)
{
  if (ig == NULL)
    return false;
  kiln_autofree char *prefix = kiln_xasprintf ("%s/", dir);
  size_t dlen = strlen (prefix);
  for (size_t i = 0; i < ig->n; i++)
    {
      const struct pattern *pat = &ig->pats[i];
      size_t tlen = strlen (pat->text);
      if (!pat->exception)
        continue;
      switch (pat->type)
        {
        case M_EXACT: /* "dir" itself or something below it */
          if (strncmp (pat->text, prefix, dlen - 1) == 0 && (tlen == dlen - 1 || pat->text[dlen - 1] == '/'))
            return true;
          break;
        case M_PREFIX:
          if (strncmp (pat->text, prefix, tlen - 2 < dlen ? tlen - 2 : dlen) == 0)
            return true;
          break;
        case M_SUFFIX: return true;
        default:
          if (kiln_glob_match_start (&pat->glob, prefix, dlen))
            return true;
        }
    }
  return false;
}

/* filepath.Clean for '/'-separated paths. */
static char *
path_clean (const char *s)
{
  size_t n = strlen (s), r = 0, dotdot = 0;
  bool rooted = n > 0 && s[0] == '/';
  struct kiln_buf out = KILN_BUF_INIT;

  if (rooted)
    {
      kiln_buf_addch (&out, '/');
      r = dotdot = 1;
    }
  while (r < n)
    {
      if (s[r] == '/' || (s[r] == '.' && (r + 1 == n || s[r + 1] == '/')))
        r++;
      else if (s[r] == '.' && s[r + 1] == '.' && (r + 2 == n || s[r + 2] == '/'))
        {
          r += 2;
          if (out.len > dotdot)
            {
              size_t w = out.len - 1;
              while (w > dotdot && out.buf[w] != '/')
                w--;
              kiln_buf_setlen (&out, w);
            }
          else if (!rooted)
            {
              kiln_buf_adds (&out, out.len ? "/.." : "..");
              dotdot = out.len;
            }
        }
      else
        {
          if (out.len > (rooted ? 1u : 0u))
            kiln_buf_addch (&out, '/');
          for (; r < n && s[r] != '/'; r++)
            kiln_buf_addch (&out, s[r]);
        }
    }
  if (out.len == 0)
    kiln_buf_addch (&out, '.');
  return kiln_buf_detach (&out, NULL);
}

static char *
trim_space (const char *s, size_t len)
{
  while (len && strchr (" \t\r\n\v\f", *s) != NULL)
    s++, len--;
  while (len && strchr (" \t\r\n\v\f", s[len - 1]) != NULL)
    len--;
  return kiln_xstrndup (s, len);
}

static void
pattern_clear (struct pattern *pat)
{
  free (pat->text);
  kiln_glob_clear (&pat->glob);
}

/* One line of the file, as moby's ignorefile.ReadAll and patternmatcher.New
 * treat it.  Returns 1 when the line holds a pattern, 0 when it is blank or
 * a comment. */
static int
parse_line (const char *name, size_t lineno, const char *line, size_t len, struct pattern *pat, struct kiln_error **err)
{
  const char *why = NULL;
  /* A comment only when '#' is the very first character, as in moby. */
  if (len > 0 && line[0] == '#')
    return 0;
  kiln_autofree char *t = trim_space (line, len);
  if (t[0] == '\0')
    return 0;
  pat->exception = t[0] == '!';
  kiln_autofree char *body = trim_space (t + pat->exception, strlen (t + pat->exception));
  if (body[0] == '\0')
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s:%zu: `!` without a pattern", name, lineno);
  pat->text = path_clean (body);
  if (pat->text[0] == '/' && pat->text[1] != '\0')
    memmove (pat->text, pat->text + 1, strlen (pat->text));
  if (!pattern_valid (pat->text, &why))
    {
      int r = kiln_error_set (err, 0, KILN_E_PARSE, "%s:%zu: bad pattern `%s`: %s", name, lineno, t, why);
      pattern_clear (pat);
      return r;
    }
  pattern_compile (pat);
  return 1;
}

int
kiln_ignore_parse (const char *name, const char *text, size_t len, struct kiln_ignore **out, struct kiln_error **err)
{
  struct kiln_ignore *ig = kiln_ignore_new_empty ();
  size_t lineno = 0, off = 0;

  /* A UTF-8 byte order mark before the first line is not part of it. */
  if (len >= 3 && memcmp (text, "\xef\xbb\xbf", 3) == 0)
    off = 3;
  while (off < len)
    {
      const char *nl = memchr (text + off, '\n', len - off);
      size_t end = nl ? (size_t) (nl - text) : len;
      struct pattern pat = { 0 };
      lineno++;
      ig->pats = kiln_xrealloc (ig->pats, (ig->n + 1) * sizeof *ig->pats);
      int r = parse_line (name, lineno, text + off, end - off, &pat, err);
      if (r < 0)
        {
          kiln_ignore_free (ig);
          return r;
        }
      if (r > 0)
        ig->pats[ig->n++] = pat;
      off = end + 1;
    }
  *out = ig;
  return 0;
}

struct kiln_ignore *
kiln_ignore_new_empty (void)
{
  return kiln_xcalloc (1, sizeof (struct kiln_ignore));
}

void
kiln_ignore_free (struct kiln_ignore *ig)
{
  if (ig == NULL)
    return;
  for (size_t i = 0; i < ig->n; i++)
    pattern_clear (&ig->pats[i]);
  free (ig->pats);
  free (ig);
}
