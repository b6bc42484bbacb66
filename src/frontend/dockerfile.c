/* dockerfile.c - Dockerfile lexer and parser: text -> instruction list.
 * This file reads lines, directives and heredoc bodies and makes the file;
 * dockerfile_instr.c parses one instruction, dockerfile_words.c splits words.
 *
 * The structure follows BuildKit's frontend/dockerfile/parser: physical lines
 * are joined into logical lines (parser directives, comments, continuations),
 * each logical line is split into keyword, flags and arguments, then checked
 * the way BuildKit's instructions package checks it, and heredoc bodies are
 * read after the line that announced them.  Pure code: no syscalls. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/dockerfile.h"
#include "kiln/util.h"
#include "dockerfile-internal.h"

int
kiln_df_fail (const struct parser *ps, int line, struct kiln_error **err, const char *fmt, ...)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  va_list ap;

  if (line > 0)
    kiln_buf_addf (&b, "%s:%d: ", ps->name, line);
  else
    kiln_buf_addf (&b, "%s: ", ps->name);
  va_start (ap, fmt);
  kiln_buf_vaddf (&b, fmt, ap);
  va_end (ap);
  return kiln_error_set (err, 0, KILN_E_PARSE, "%s", b.buf);
}

/* ---- physical and logical lines ---------------------------------------- */

/* The next physical line, without its "\n" and a "\r" before it (CRLF files). */
static bool
next_line (struct parser *ps, const char **line, size_t *len)
{
  const char *nl, *stop;

  if (ps->pos >= ps->end)
    return false;
  nl = memchr (ps->pos, '\n', (size_t) (ps->end - ps->pos));
  stop = nl ? nl : ps->end;
  *line = ps->pos;
  *len = (size_t) (stop - ps->pos);
  if (*len > 0 && (*line)[*len - 1] == '\r')
    (*len)--;
  ps->pos = nl ? nl + 1 : ps->end;
  ps->lineno++;
  return true;
}

static void
trim_left (const char **s, size_t *n)
{
  while (*n > 0 && is_blank (**s))
    (*s)++, (*n)--;
}

static bool
is_comment_or_blank (const char *s, size_t n)
{
  trim_left (&s, &n);
  return n == 0 || s[0] == '#';
}

/* Drops a trailing escape character (blanks after it allowed) and says whether
 * the line continues.  An escaped escape ("foo \\") does not continue the line,
 * as in BuildKit's lineContinuationRegex. */
static bool
strip_continuation (char escape, const char *s, size_t *n)
{
  size_t k = *n;

  while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
    k--;
  if (k == 0 || s[k - 1] != escape)
    return false;
  if (k >= 2 && s[k - 2] == escape)
    return false;
  *n = k - 1;
  return true;
}

/* Joins the continuation lines that follow the first one into out.  Comment
 * and blank lines inside a continuation are skipped; continuation lines keep
 * their leading blanks, as BuildKit does. */
static void
read_logical (struct parser *ps, const char *s, size_t n, struct kiln_buf *out)
{
  bool more = strip_continuation (ps->escape, s, &n);

  kiln_buf_add (out, s, n);
  while (more && next_line (ps, &s, &n))
    {
      if (is_comment_or_blank (s, n))
        continue;
      more = strip_continuation (ps->escape, s, &n);
      kiln_buf_add (out, s, n);
    }
  while (out->len > 0 && is_blank (out->buf[out->len - 1]))
    kiln_buf_setlen (out, out->len - 1);
}

/* ---- parser directives --------------------------------------------------- */

enum { DIR_SYNTAX = 1, DIR_ESCAPE = 2, DIR_CHECK = 4 };

static int
apply_directive (struct parser *ps, struct kiln_dockerfile *df, int which, const char *val, size_t vlen,
                 struct kiln_error **err)
{
  if (which == DIR_SYNTAX)
    {
      df->syntax = kiln_xstrndup (val, vlen);
      return 1;
    }
  if (which == DIR_ESCAPE)
    {
      if (vlen != 1 || (val[0] != '\\' && val[0] != '`'))
        return kiln_df_fail (ps, ps->lineno, err, "invalid escape token \"%.*s\": must be a backslash or a backtick",
                             (int) vlen, val);
      ps->escape = df->escape = val[0];
    }
  return 1;
}

/* Looks at one left-trimmed line at the top of the file.  Returns 1 for a
 * directive, 0 when the line ends the directive block (anything else, an
 * unknown directive included: BuildKit treats it as a comment and stops
 * looking), < 0 on a repeated directive or bad escape token. */
static int
parse_directive (struct parser *ps, struct kiln_dockerfile *df, const char *s, size_t n, int *seen,
                 struct kiln_error **err)
{
  static const struct {
    const char *key;
    int bit;
  } known[] = {
    { "syntax", DIR_SYNTAX },
    { "escape", DIR_ESCAPE },
    { "check", DIR_CHECK },
  };
  size_t i = 1, klen;
  const char *key;

  if (n == 0 || s[0] != '#')
    return 0;
  while (i < n && is_blank (s[i]))
    i++;
  key = s + i;
  if (i >= n || !isalpha ((unsigned char) s[i]))
    return 0;
  while (i < n && isalnum ((unsigned char) s[i]))
    i++;
  klen = (size_t) (s + i - key);
  while (i < n && is_blank (s[i]))
    i++;
  if (i >= n || s[i] != '=')
    return 0;
  i++;
  while (i < n && is_blank (s[i]))
    i++;
  while (n > i && is_blank (s[n - 1]))
    n--;
  if (i >= n)
    return 0;
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
    {
      if (strlen (known[k].key) != klen || strncasecmp (key, known[k].key, klen) != 0)
        continue;
      if (*seen & known[k].bit)
        return kiln_df_fail (ps, ps->lineno, err, "only one `%s` parser directive can be used", known[k].key);
      *seen |= known[k].bit;
      return apply_directive (ps, df, known[k].bit, s + i, n - i, err);
    }
  return 0;
}

/* Reads body lines up to the delimiter.  Returns 1 when found, 0 at end of
 * input, -1 when the body passes KILN_DOCKERFILE_MAX_HEREDOC. */
static int
read_heredoc_body (struct parser *ps, struct kiln_df_heredoc *h)
{
  kiln_autobuf struct kiln_buf body = KILN_BUF_INIT;
  size_t nlen = strlen (h->name);
  const char *s;
  size_t n;

  while (next_line (ps, &s, &n))
    {
      if (h->chomp)
        while (n > 0 && *s == '\t')
          s++, n--;
      if (n == nlen && memcmp (s, h->name, n) == 0)
        {
          h->content = kiln_buf_detach (&body, NULL);
          return 1;
        }
      if (body.len + n + 1 > KILN_DOCKERFILE_MAX_HEREDOC)
        return -1;
      kiln_buf_add (&body, s, n);
      kiln_buf_addch (&body, '\n');
    }
  return 0;
}

/* Heredocs apply to RUN, COPY and ADD in shell form, also as ONBUILD
 * triggers; the bodies go to the instruction that uses them. */
static int
read_heredocs (struct parser *ps, struct kiln_df_instr *in, struct kiln_error **err)
{
  struct kiln_df_instr *t = in->sub ? in->sub : in;

  if (t->json || (t->cmd != KILN_DF_RUN && t->cmd != KILN_DF_COPY && t->cmd != KILN_DF_ADD))
    return 0;
  kiln_df_find_heredocs (in->original, t);
  for (size_t i = 0; i < t->nheredocs; i++)
    {
      int r = read_heredoc_body (ps, &t->heredocs[i]);
      if (r < 0)
        return kiln_df_fail (ps, in->line, err, "%s: heredoc `%s` is larger than the limit of %u bytes",
                             kiln_df_cmd_name (t->cmd), t->heredocs[i].name, KILN_DOCKERFILE_MAX_HEREDOC);
      if (r == 0)
        return kiln_df_fail (ps, in->line, err, "%s: unterminated heredoc `%s`", kiln_df_cmd_name (t->cmd),
                             t->heredocs[i].name);
    }
  in->end_line = t->end_line = ps->lineno;
  return 0;
}

/* ---- the file ------------------------------------------------------------------------ */

static void
instr_clear (struct kiln_df_instr *in)
{
  for (size_t i = 0; i < in->nflags; i++)
    {
      free (in->flags[i].name);
      free (in->flags[i].value);
    }
  free (in->flags);
  for (size_t i = 0; i < in->nheredocs; i++)
    kiln_df_heredoc_clear (&in->heredocs[i]);
  free (in->heredocs);
  free (in->original);
  free (in->args);
  kiln_strv_free (in->argv);
  if (in->sub)
    {
      instr_clear (in->sub);
      free (in->sub);
    }
  memset (in, 0, sizeof *in);
}

/* Only ARG may precede the first FROM, so this stops early. */
static bool
has_from (const struct kiln_dockerfile *df)
{
  for (size_t i = 0; i < df->ninstrs; i++)
    if (df->instrs[i].cmd == KILN_DF_FROM)
      return true;
  return false;
}

/* Appends *in (taking its contents) after checking that only ARG comes
 * before the first FROM. */
static int
add_instr (struct parser *ps, struct kiln_dockerfile *df, struct kiln_df_instr *in, size_t *cap,
           struct kiln_error **err)
{
  if (!has_from (df) && in->cmd != KILN_DF_FROM && in->cmd != KILN_DF_ARG)
    return kiln_df_fail (ps, in->line, err, "%s: instruction must be preceded by FROM", kiln_df_cmd_name (in->cmd));
  if (df->ninstrs >= KILN_DOCKERFILE_MAX_INSTRUCTIONS)
    return kiln_df_fail (ps, in->line, err, "%s: more than %d instructions in the file (the limit)",
                         kiln_df_cmd_name (in->cmd), KILN_DOCKERFILE_MAX_INSTRUCTIONS);
  if (df->ninstrs == *cap)
    {
      *cap = *cap ? *cap * 2 : 16;
      df->instrs = kiln_xrealloc (df->instrs, *cap * sizeof *df->instrs);
    }
  df->instrs[df->ninstrs++] = *in;
  memset (in, 0, sizeof *in);
  return 0;
}

/* One logical line starting with the physical line s: instruction, heredoc
 * bodies, append. */
static int
parse_one (struct parser *ps, struct kiln_dockerfile *df, const char *s, size_t n, size_t *cap, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf text = KILN_BUF_INIT;
  struct kiln_df_instr in = { 0 };
  int line = ps->lineno;
  int r;

  read_logical (ps, s, n, &text);
  if (is_comment_or_blank (text.buf, text.len))
    return 0; /* a lone escape character continued into nothing */
  r = kiln_df_parse_instr (ps, text.buf, line, &in, err);
  if (r >= 0)
    r = read_heredocs (ps, &in, err);
  if (r >= 0)
    r = add_instr (ps, df, &in, cap, err);
  instr_clear (&in);
  return r;
}

static int
parse_lines (struct parser *ps, struct kiln_dockerfile *df, struct kiln_error **err)
{
  bool directives = true;
  int seen = 0;
  size_t cap = 0;
  const char *s;
  size_t n;
  int r;

  while (next_line (ps, &s, &n))
    {
      trim_left (&s, &n);
      if (directives)
        {
          r = parse_directive (ps, df, s, n, &seen, err);
          if (r < 0)
            return r;
          if (r > 0)
            continue;
          directives = false;
        }
      if (n == 0 || s[0] == '#')
        continue;
      r = parse_one (ps, df, s, n, &cap, err);
      if (r < 0)
        return r;
    }
  return 0;
}

int
kiln_dockerfile_parse (const char *name, const char *text, size_t len, struct kiln_dockerfile **out,
                       struct kiln_error **err)
{
  struct kiln_dockerfile *df;
  struct parser ps = { .name = name, .pos = text, .end = text + len, .escape = '\\' };
  const char *nul = memchr (text, '\0', len);
  int r;

  if (len > KILN_DOCKERFILE_MAX_SIZE)
    return kiln_df_fail (&ps, 0, err, "file is larger than the limit of %u bytes", KILN_DOCKERFILE_MAX_SIZE);
  if (nul)
    {
      int line = 1;
      for (const char *p = text; p < nul; p++)
        line += *p == '\n';
      return kiln_df_fail (&ps, line, err, "file contains a NUL byte");
    }
  /* A UTF-8 byte order mark, as Windows editors write it. */
  if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
    ps.pos += 3;
  df = kiln_xcalloc (1, sizeof *df);
  df->name = kiln_xstrdup (name);
  df->escape = '\\';
  r = parse_lines (&ps, df, err);
  if (r >= 0 && df->ninstrs == 0)
    r = kiln_df_fail (&ps, 0, err, "file contains no instructions");
  else if (r >= 0 && !has_from (df))
    r = kiln_df_fail (&ps, 0, err, "file contains no FROM instruction");
  if (r < 0)
    {
      kiln_dockerfile_free (df);
      return r;
    }
  *out = df;
  return 0;
}

void
kiln_dockerfile_free (struct kiln_dockerfile *df)
{
  if (df == NULL)
    return;
  for (size_t i = 0; i < df->ninstrs; i++)
    instr_clear (&df->instrs[i]);
  free (df->instrs);
  free (df->name);
  free (df->syntax);
  free (df);
}

const char *
kiln_df_instr_flag (const struct kiln_df_instr *in, const char *name, bool *present)
{
  const struct kiln_df_flag *found = NULL;

  for (size_t i = 0; i < in->nflags; i++)
    if (strcmp (in->flags[i].name, name) == 0)
      found = &in->flags[i];
  if (present)
    *present = found != NULL;
  return found ? found->value : NULL;
}

const char *
kiln_df_healthcheck_cmd (const struct kiln_df_instr *in)
{
  const char *p = in->args;

  if (in->cmd != KILN_DF_HEALTHCHECK || strncasecmp (p, "CMD", 3) != 0 || !is_blank (p[3]))
    return NULL;
  for (p += 3; is_blank (*p); p++)
    ;
  return p;
}

/* JSON strings are trimmed as Go's strings.TrimSpace does (ASCII blanks and
 * newlines; other Unicode spaces are kept). */
static char *
trim_space (const char *s)
{
  const char *ws = " \t\n\v\f\r";
  size_t n;

  s += strspn (s, ws);
  n = strlen (s);
  while (n > 0 && strchr (ws, s[n - 1]))
    n--;
  return kiln_xstrndup (s, n);
}

char **
kiln_df_list_words (const struct kiln_df_instr *in)
{
  char **v;

  if (!in->json)
    return kiln_df_split_blanks (in->args);
  v = kiln_xcalloc (1, sizeof *v);
  for (size_t i = 0; in->argv[i]; i++)
    kiln_strv_push_take (&v, trim_space (in->argv[i]));
  return v;
}
