/* dockerfile.c - Dockerfile lexer and parser: text -> instruction list.
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

struct flag_spec {
  const char *name;
  bool is_bool;
};

struct cmd_spec {
  const char *name;
  const struct flag_spec *flags;
};

static const struct flag_spec no_flags[] = { { NULL, false } };
static const struct flag_spec from_flags[] = { { "platform", false }, { NULL, false } };
static const struct flag_spec run_flags[] = {
  { "mount", false },
  { "network", false },
  { "security", false },
  { NULL, false },
};
static const struct flag_spec copy_flags[] = {
  { "from", false },   { "chown", false },   { "chmod", false }, { "link", true },
  { "parents", true }, { "exclude", false }, { NULL, false },
};
static const struct flag_spec add_flags[] = {
  { "chown", false },       { "chmod", false },   { "link", true }, { "checksum", false },
  { "keep-git-dir", true }, { "exclude", false }, { NULL, false },
};
static const struct flag_spec healthcheck_flags[] = {
  { "interval", false },       { "timeout", false }, { "start-period", false },
  { "start-interval", false }, { "retries", false }, { NULL, false },
};

/* Indexed by enum kiln_df_cmd. */
static const struct cmd_spec cmd_specs[] = {
  [KILN_DF_FROM] = { "FROM", from_flags },
  [KILN_DF_RUN] = { "RUN", run_flags },
  [KILN_DF_CMD] = { "CMD", no_flags },
  [KILN_DF_ENTRYPOINT] = { "ENTRYPOINT", no_flags },
  [KILN_DF_COPY] = { "COPY", copy_flags },
  [KILN_DF_ADD] = { "ADD", add_flags },
  [KILN_DF_ENV] = { "ENV", no_flags },
  [KILN_DF_ARG] = { "ARG", no_flags },
  [KILN_DF_LABEL] = { "LABEL", no_flags },
  [KILN_DF_EXPOSE] = { "EXPOSE", no_flags },
  [KILN_DF_USER] = { "USER", no_flags },
  [KILN_DF_WORKDIR] = { "WORKDIR", no_flags },
  [KILN_DF_VOLUME] = { "VOLUME", no_flags },
  [KILN_DF_STOPSIGNAL] = { "STOPSIGNAL", no_flags },
  [KILN_DF_HEALTHCHECK] = { "HEALTHCHECK", healthcheck_flags },
  [KILN_DF_SHELL] = { "SHELL", no_flags },
  [KILN_DF_ONBUILD] = { "ONBUILD", no_flags },
  [KILN_DF_MAINTAINER] = { "MAINTAINER", no_flags },
};

#define NCMDS (sizeof cmd_specs / sizeof cmd_specs[0])

/* Reading state over the whole text. */
struct parser {
  const char *name;
  const char *pos, *end;
  int lineno; /* number of the last physical line read */
  char escape;
  size_t nargs, npairs; /* ARG names, ENV/LABEL pairs so far (the limits) */
};

/* Where an instruction error is reported: "NAME:LINE: KEYWORD: ". */
struct ictx {
  const struct parser *ps;
  int line;
  const char *kw;
};

static bool
is_blank (char c)
{
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static int __attribute__ ((format (printf, 4, 5)))
fail (const struct parser *ps, int line, struct kiln_error **err, const char *fmt, ...)
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

static int __attribute__ ((format (printf, 3, 4)))
ifail (const struct ictx *ic, struct kiln_error **err, const char *fmt, ...)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  va_list ap;

  kiln_buf_addf (&b, "%s:%d: %s: ", ic->ps->name, ic->line, ic->kw);
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
        return fail (ps, ps->lineno, err, "invalid escape token \"%.*s\": must be a backslash or a backtick",
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
        return fail (ps, ps->lineno, err, "only one `%s` parser directive can be used", known[k].key);
      *seen |= known[k].bit;
      return apply_directive (ps, df, known[k].bit, s + i, n - i, err);
    }
  return 0;
}

/* ---- words ----------------------------------------------------------------- */

/* A NULL-terminated vector that knows its length: kiln_strv_push_take
 * measures the vector on every push, and a hostile line holds millions of
 * words (a 400 KB ENV line took seconds, a 16 MiB one hours). */
struct wordv {
  char **v;
  size_t n, cap;
};

static void
wordv_push_take (struct wordv *w, char *s)
{
  if (w->n + 2 > w->cap)
    {
      w->cap = w->cap ? w->cap * 2 : 8;
      w->v = kiln_xrealloc (w->v, w->cap * sizeof *w->v);
    }
  w->v[w->n++] = s;
  w->v[w->n] = NULL;
}

/* The vector, never NULL; w is left empty. */
static char **
wordv_detach (struct wordv *w)
{
  char **v = w->v ? w->v : kiln_xcalloc (1, sizeof *v);
  *w = (struct wordv){ 0 };
  return v;
}

static void
wordv_clear (struct wordv *w)
{
  kiln_strv_free (wordv_detach (w));
}

/* Splits on runs of blanks, nothing else (BuildKit parseStringsWhitespaceDelimited). */
static char **
split_blanks (const char *s)
{
  struct wordv v = { 0 };

  while (*s)
    {
      const char *w;
      while (is_blank (*s))
        s++;
      if (!*s)
        break;
      w = s;
      while (*s && !is_blank (*s))
        s++;
      wordv_push_take (&v, kiln_xstrndup (w, (size_t) (s - w)));
    }
  return wordv_detach (&v);
}

/* Scans one quoted section starting at *s (a quote character), appending it
 * to w with the quotes; inside double quotes the escape character protects
 * the next byte.  Returns false when the quote is not closed. */
static bool
scan_quoted (const char **s, char escape, struct kiln_buf *w)
{
  const char *p = *s;
  char q = *p;

  kiln_buf_addch (w, *p++);
  while (*p && *p != q)
    {
      if (q == '"' && *p == escape && p[1])
        kiln_buf_addch (w, *p++);
      kiln_buf_addch (w, *p++);
    }
  if (!*p)
    return false;
  kiln_buf_addch (w, *p++);
  *s = p;
  return true;
}

/* Splits into words on unquoted blanks, keeping quotes and escapes in the
 * words (BuildKit parseWords for ENV/LABEL/ARG and, with escape '\\' and
 * heredoc set, its raw shell lexer for heredoc detection).  With heredoc,
 * "<<" swallows the blanks after it so "<< EOF" stays one word.  Returns NULL
 * on an unterminated quote. */
static char **
split_words (const char *s, char escape, bool heredoc)
{
  __attribute__ ((cleanup (wordv_clear))) struct wordv v = { 0 };
  kiln_autobuf struct kiln_buf w = KILN_BUF_INIT;
  bool inword = false;

  for (;;)
    {
      if (!*s || is_blank (*s))
        {
          if (inword)
            wordv_push_take (&v, kiln_buf_detach (&w, NULL));
          inword = false;
          if (!*s++)
            break;
          continue;
        }
      inword = true;
      if (*s == '\'' || *s == '"')
        {
          if (!scan_quoted (&s, escape, &w))
            return NULL;
          continue;
        }
      if (*s == escape && s[1])
        kiln_buf_addch (&w, *s++);
      else if (heredoc && s[0] == '<' && s[1] == '<')
        {
          kiln_buf_adds (&w, "<<");
          for (s += 2; is_blank (*s); s++)
            kiln_buf_addch (&w, *s);
          continue;
        }
      kiln_buf_addch (&w, *s++);
    }
  return wordv_detach (&v);
}

/* ---- heredocs ---------------------------------------------------------------- */

/* Removes quotes and escapes from a heredoc delimiter word.  *quoted tells
 * whether any quote was present (the body is then not expanded).  Returns
 * NULL when the word is really several words or a quote is open. */
static char *
unquote_delim (const char *s, bool *quoted)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;

  *quoted = false;
  while (*s)
    {
      char q = *s;
      if (is_blank (q))
        return NULL;
      if (q != '\'' && q != '"')
        {
          if (q == '\\' && s[1])
            s++;
          kiln_buf_addch (&b, *s++);
          continue;
        }
      *quoted = true;
      for (s++; *s && *s != q; s++)
        {
          if (q == '"' && *s == '\\' && (s[1] == '"' || s[1] == '\\' || s[1] == '$'))
            s++;
          kiln_buf_addch (&b, *s);
        }
      if (!*s++)
        return NULL;
    }
  if (b.len == 0)
    return NULL;
  return kiln_buf_detach (&b, NULL);
}

/* Matches BuildKit's ^(\d*)<<(-?)\s*([^<]*)$ on one raw word.  On a match,
 * fills h (name malloc'd) and returns true. */
static bool
match_heredoc (const char *word, struct kiln_df_heredoc *h)
{
  const char *p = word;

  while (isdigit ((unsigned char) *p))
    p++;
  if (p[0] != '<' || p[1] != '<')
    return false;
  p += 2;
  h->chomp = *p == '-';
  if (h->chomp)
    p++;
  while (is_blank (*p))
    p++;
  if (*p == '\0' || strchr (p, '<'))
    return false;
  h->name = unquote_delim (p, &h->expand);
  h->expand = !h->expand;
  return h->name != NULL;
}

static void
heredoc_clear (struct kiln_df_heredoc *h)
{
  free (h->name);
  free (h->content);
}

/* The heredocs announced on a logical line, in order. */
static void
find_heredocs (const char *line, struct kiln_df_instr *in)
{
  kiln_autostrv char **words = NULL;

  if (!strstr (line, "<<"))
    return;
  words = split_words (line, '\\', true);
  for (size_t i = 0; words && words[i]; i++)
    {
      struct kiln_df_heredoc h = { 0 };
      if (!match_heredoc (words[i], &h))
        continue;
      in->heredocs = kiln_xrealloc (in->heredocs, (in->nheredocs + 1) * sizeof *in->heredocs);
      in->heredocs[in->nheredocs++] = h;
    }
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
  find_heredocs (in->original, t);
  for (size_t i = 0; i < t->nheredocs; i++)
    {
      int r = read_heredoc_body (ps, &t->heredocs[i]);
      if (r < 0)
        return fail (ps, in->line, err, "%s: heredoc `%s` is larger than the limit of %u bytes", cmd_specs[t->cmd].name,
                     t->heredocs[i].name, KILN_DOCKERFILE_MAX_HEREDOC);
      if (r == 0)
        return fail (ps, in->line, err, "%s: unterminated heredoc `%s`", cmd_specs[t->cmd].name, t->heredocs[i].name);
    }
  in->end_line = t->end_line = ps->lineno;
  return 0;
}

/* ---- flags --------------------------------------------------------------------- */

/* Reads the "--flag" words at the start of line (BuildKit extractBuilderFlags:
 * quotes removed, '\\' escapes the next byte, a bare "--" ends the flags) and
 * returns where the arguments start. */
static const char *
extract_flag_words (const char *line, char ***words)
{
  const char *p = line;
  struct wordv v = { 0 };

  for (;;)
    {
      kiln_autobuf struct kiln_buf w = KILN_BUF_INIT;
      while (is_blank (*p))
        p++;
      if (p[0] != '-' || p[1] != '-')
        return p;
      while (*p && !is_blank (*p))
        {
          if (*p == '\'' || *p == '"')
            {
              char q = *p++;
              for (; *p && *p != q; p++)
                kiln_buf_addch (&w, *p == '\\' && p[1] ? *++p : *p);
              if (*p)
                p++;
              continue;
            }
          if (*p == '\\' && p[1])
            p++;
          if (*p)
            kiln_buf_addch (&w, *p++);
        }
      if (strcmp (w.buf, "--") == 0)
        return p;
      wordv_push_take (&v, kiln_buf_detach (&w, NULL));
      *words = v.v; /* the caller owns (and frees) what is there so far */
    }
}

static int
check_flag (const struct ictx *ic, const struct flag_spec *specs, const struct kiln_df_flag *f, struct kiln_error **err)
{
  size_t n = 0;
  for (const struct flag_spec *spec = specs; spec->name; spec++, n++)
    {
      if (strcmp (spec->name, f->name) != 0)
        continue;
      if (!spec->is_bool)
        {
          if (f->value == NULL)
            return ifail (ic, err, "missing a value on flag: --%s", f->name);
          return 0;
        }
      if (f->value && strcasecmp (f->value, "true") != 0 && strcasecmp (f->value, "false") != 0)
        return ifail (ic, err, "expecting a boolean value for flag: --%s, not `%s`", f->name, f->value);
      return 0;
    }
  /* BuildKit bflag.go Parse: suggest among the instruction's flags */
  const char **names = kiln_xcalloc (n + 1, sizeof *names);
  for (size_t i = 0; i < n; i++)
    names[i] = specs[i].name;
  kiln_autofree char *hint = kiln_suggest (f->name, strlen (f->name), names, true);
  free (names);
  return ifail (ic, err, "unknown flag: --%s%s", f->name, hint ? hint : "");
}

/* Fills in->flags from the flag words and checks them against the flags the
 * instruction accepts. */
static int
parse_flags (const struct ictx *ic, struct kiln_df_instr *in, char **words, struct kiln_error **err)
{
  size_t n = kiln_strv_len (words);

  in->flags = kiln_xcalloc (n ? n : 1, sizeof *in->flags);
  for (size_t i = 0; i < n; i++)
    {
      struct kiln_df_flag *f = &in->flags[in->nflags++];
      const char *eq = strchr (words[i] + 2, '=');
      f->name = eq ? kiln_xstrndup (words[i] + 2, (size_t) (eq - words[i] - 2)) : kiln_xstrdup (words[i] + 2);
      f->value = eq ? kiln_xstrdup (eq + 1) : NULL;
      int r = check_flag (ic, cmd_specs[in->cmd].flags, f, err);
      if (r < 0)
        return r;
    }
  return 0;
}

/* ---- arguments ------------------------------------------------------------------ */

/* Exec form: when args parse as a JSON array, sets json and argv.  Invalid
 * JSON leaves the shell form; a valid array holding anything but strings is
 * an error, as in BuildKit (parser/line_parsers.go parseJSON/parseMaybeJSON,
 * whose json.Unmarshal accepts "\u0000" and numbers of any size).  A string
 * holding U+0000 is valid JSON, so the line is exec form; kiln's argv and
 * image config are C strings and cannot carry the NUL, and cutting the string
 * there would write a different command than the one asked for, so that is an
 * error instead of a silently changed image. */
static int
maybe_json (const struct ictx *ic, struct kiln_df_instr *in, const char *args, struct kiln_error **err)
{
  kiln_autojson json_t *j = NULL;
  kiln_autostrv char **v = NULL;
  json_error_t jerr;
  size_t i;
  json_t *e;

  if (args[0] != '[')
    return 0;
  /* As Go's json.Unmarshal: bytes that are not UTF-8 become U+FFFD inside
   * strings (outside them they stay a syntax error), and an integer too big
   * for json_int_t is still a number (JSON_DECODE_INT_AS_REAL), so a
   * non-string element. */
  kiln_autofree char *text = kiln_str_utf8_coerce (args);
  j = json_loads (text, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
  if (j == NULL || !json_is_array (j))
    return 0;
  v = kiln_xcalloc (1, sizeof *v);
  json_array_foreach (j, i, e)
    {
      if (!json_is_string (e))
        return ifail (ic, err, "JSON array must contain only strings");
      if (strlen (json_string_value (e)) != json_string_length (e))
        return ifail (ic, err,
                      "JSON string %zu of the array contains a NUL character (\\u0000), "
                      "which kiln cannot store in a command or path",
                      i + 1);
      kiln_strv_push (&v, json_string_value (e));
    }
  in->json = true;
  in->argv = kiln_steal_ptr (&v);
  return 0;
}

static size_t
count_list_args (const struct kiln_df_instr *in)
{
  kiln_autostrv char **w = NULL;

  if (in->json)
    return kiln_strv_len (in->argv);
  w = split_blanks (in->args);
  return kiln_strv_len (w);
}

/* COPY/ADD: at least a source and a destination, which cannot be a heredoc. */
static int
check_copy (const struct ictx *ic, struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **w = NULL;
  struct kiln_df_heredoc h = { 0 };
  const char *dest;
  size_t n;
  int r = maybe_json (ic, in, in->args, err);

  if (r < 0)
    return r;
  w = in->json ? kiln_strv_dup (in->argv) : split_blanks (in->args);
  n = kiln_strv_len (w);
  if (n < 2)
    return ifail (ic, err, "requires at least two arguments");
  dest = w[n - 1];
  if (!in->json && match_heredoc (dest, &h))
    {
      heredoc_clear (&h);
      return ifail (ic, err, "cannot use a heredoc as the destination");
    }
  return 0;
}

/* BuildKit instructions/parse.go parseVolume: each word, blanks trimmed,
 * must not be empty (only a JSON string can be, before expansion). */
static int
check_volume (const struct ictx *ic, struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **w = NULL;
  int r = maybe_json (ic, in, in->args, err);

  if (r < 0)
    return r;
  if (count_list_args (in) == 0)
    return ifail (ic, err, "requires at least one argument");
  w = kiln_df_list_words (in);
  for (size_t i = 0; w[i]; i++)
    if (!*w[i])
      return ifail (ic, err, "a volume can not be an empty string");
  return 0;
}

static int
check_stage_name (const struct ictx *ic, const char *name, struct kiln_error **err)
{
  bool ok = isalpha ((unsigned char) name[0]);

  for (const char *p = name; ok && *p; p++)
    ok = isalnum ((unsigned char) *p) || *p == '-' || *p == '_' || *p == '.';
  if (!ok)
    return ifail (ic, err,
                  "invalid stage name `%s`: it must start with a letter and contain only "
                  "letters, digits, `-`, `_` and `.`",
                  name);
  return 0;
}

static int
check_from (const struct ictx *ic, const struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **w = split_blanks (in->args);
  size_t n = kiln_strv_len (w);

  if (n == 3 && strcasecmp (w[1], "AS") == 0)
    return check_stage_name (ic, w[2], err);
  if (n != 1)
    return ifail (ic, err, "requires either one or three arguments (`FROM image [AS name]`)");
  return 0;
}

/* ENV and LABEL: "name value" (old form) or name=value pairs (BuildKit parseNameVal). */
static int
check_name_val (const struct ictx *ic, const struct parser *ps, const char *args, struct kiln_error **err)
{
  kiln_autostrv char **w = split_words (args, ps->escape, false);

  if (w == NULL)
    return ifail (ic, err, "unterminated quote");
  if (w[0] == NULL)
    return ifail (ic, err, "requires at least one argument");
  if (strchr (w[0], '=') == NULL)
    {
      kiln_autostrv char **old = split_blanks (args);
      if (kiln_strv_len (old) < 2)
        return ifail (ic, err, "must have two arguments (`%s name value` or `%s name=value`)", ic->kw, ic->kw);
      return 0;
    }
  for (size_t i = 0; w[i]; i++)
    {
      if (strchr (w[i], '=') == NULL)
        return ifail (ic, err, "missing `=` in `%s`, expected name=value", w[i]);
      if (w[i][0] == '=')
        return ifail (ic, err, "names can not be blank");
    }
  return 0;
}

static int
check_healthcheck (const struct ictx *ic, struct kiln_df_instr *in, struct kiln_error **err)
{
  const char *rest = in->args;
  size_t tlen;
  int r;

  while (*rest && !is_blank (*rest))
    rest++;
  tlen = (size_t) (rest - in->args);
  while (is_blank (*rest))
    rest++;
  if (tlen == 4 && strncasecmp (in->args, "NONE", 4) == 0)
    return *rest ? ifail (ic, err, "NONE takes no arguments") : 0;
  if (tlen != 3 || strncasecmp (in->args, "CMD", 3) != 0)
    return ifail (ic, err, "unknown type `%.*s` (expected CMD or NONE)", (int) tlen, in->args);
  r = maybe_json (ic, in, rest, err);
  if (r < 0)
    return r;
  if (in->json ? in->argv[0] == NULL : *rest == '\0')
    return ifail (ic, err, "missing command after CMD");
  return 0;
}

static int
check_shell (const struct ictx *ic, struct kiln_df_instr *in, struct kiln_error **err)
{
  int r = maybe_json (ic, in, in->args, err);

  if (r < 0)
    return r;
  if (in->args[0] == '\0' || (in->json && in->argv[0] == NULL))
    return ifail (ic, err, "requires at least one argument");
  if (!in->json)
    return ifail (ic, err, "requires the arguments to be in JSON form");
  return 0;
}

static int parse_instr (struct parser *ps, const char *text, int line, struct kiln_df_instr *in,
                        struct kiln_error **err);

static int
parse_onbuild (const struct ictx *ic, struct parser *ps, struct kiln_df_instr *in, struct kiln_error **err)
{
  const char *a = in->args;
  size_t n = 0;

  while (a[n] && !is_blank (a[n]))
    n++;
  if (n == 7 && strncasecmp (a, "ONBUILD", 7) == 0)
    return ifail (ic, err, "chaining ONBUILD via `ONBUILD ONBUILD` is not allowed");
  if ((n == 4 && strncasecmp (a, "FROM", 4) == 0) || (n == 10 && strncasecmp (a, "MAINTAINER", 10) == 0))
    return ifail (ic, err, "`%.*s` is not allowed as an ONBUILD trigger", (int) n, a);
  in->sub = kiln_xcalloc (1, sizeof *in->sub);
  return parse_instr (ps, a, in->line, in->sub, err);
}

/* ARG names and ENV/LABEL pairs add up over the file (ONBUILD triggers
 * included): each later declaration looks the earlier ones up. */
static int
count_decls (const struct ictx *ic, struct parser *ps, const struct kiln_df_instr *in, struct kiln_error **err)
{
  bool arg = in->cmd == KILN_DF_ARG;
  if (!arg && in->cmd != KILN_DF_ENV && in->cmd != KILN_DF_LABEL)
    return 0;
  kiln_autostrv char **w = split_words (in->args, ps->escape, false);
  if (w == NULL) /* an unterminated quote: count what the blanks separate */
    w = split_blanks (in->args);
  size_t n = kiln_strv_len (w);
  /* the old form `ENV name value` is one pair */
  if (!arg && n > 0 && strchr (w[0], '=') == NULL)
    n = 1;
  size_t *sum = arg ? &ps->nargs : &ps->npairs;
  size_t max = arg ? KILN_DOCKERFILE_MAX_ARGS : KILN_DOCKERFILE_MAX_PAIRS;
  *sum += n;
  if (*sum > max)
    return ifail (ic, err,
                  arg ? "more than %zu ARG names declared in the file (the limit)"
                      : "more than %zu ENV and LABEL pairs in the file (the limit)",
                  max);
  return 0;
}

static int
parse_args (const struct ictx *ic, struct parser *ps, struct kiln_df_instr *in, struct kiln_error **err)
{
  bool empty = in->args[0] == '\0';

  switch (in->cmd)
    {
    case KILN_DF_FROM: return check_from (ic, in, err);
    case KILN_DF_RUN:
      if (empty)
        return ifail (ic, err, "requires at least one argument");
      return maybe_json (ic, in, in->args, err);
    case KILN_DF_CMD:
    case KILN_DF_ENTRYPOINT: return maybe_json (ic, in, in->args, err);
    case KILN_DF_COPY:
    case KILN_DF_ADD: return check_copy (ic, in, err);
    case KILN_DF_VOLUME: return check_volume (ic, in, err);
    case KILN_DF_SHELL: return check_shell (ic, in, err);
    case KILN_DF_ENV:
    case KILN_DF_LABEL: return check_name_val (ic, ps, in->args, err);
    case KILN_DF_HEALTHCHECK:
      return empty ? ifail (ic, err, "requires at least one argument") : check_healthcheck (ic, in, err);
    case KILN_DF_ONBUILD:
      return empty ? ifail (ic, err, "requires at least one argument") : parse_onbuild (ic, ps, in, err);
    case KILN_DF_ARG:
    case KILN_DF_EXPOSE: return empty ? ifail (ic, err, "requires at least one argument") : 0;
    case KILN_DF_USER:
    case KILN_DF_WORKDIR:
    case KILN_DF_STOPSIGNAL:
    case KILN_DF_MAINTAINER: return empty ? ifail (ic, err, "requires exactly one argument") : 0;
    }
  return 0;
}

static const struct cmd_spec *
lookup_cmd (const char *kw, size_t n, enum kiln_df_cmd *cmd)
{
  for (size_t i = 0; i < NCMDS; i++)
    if (strlen (cmd_specs[i].name) == n && strncasecmp (kw, cmd_specs[i].name, n) == 0)
      {
        *cmd = (enum kiln_df_cmd) i;
        return &cmd_specs[i];
      }
  return NULL;
}

/* " (did you mean ENTRYPOINT?)" for a misspelt instruction (BuildKit
 * parse.go: suggest over allInstructionNames, case-insensitive). */
static char *
suggest_cmd (const char *kw, size_t n)
{
  const char *names[NCMDS + 1];
  for (size_t i = 0; i < NCMDS; i++)
    names[i] = cmd_specs[i].name;
  names[NCMDS] = NULL;
  return kiln_suggest (kw, n, names, false);
}

/* Parses one logical line (already joined) into *in; on failure *in may be
 * partly filled and the caller clears it. */
static int
parse_instr (struct parser *ps, const char *text, int line, struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **words = NULL;
  const struct cmd_spec *spec;
  const char *kw, *p, *args;
  size_t n;
  int r;

  in->line = line;
  in->end_line = ps->lineno;
  while (is_blank (*text))
    text++;
  in->original = kiln_xstrdup (text);
  for (kw = p = text; *p && !is_blank (*p); p++)
    ;
  spec = lookup_cmd (kw, (size_t) (p - kw), &in->cmd);
  if (spec == NULL)
    {
      kiln_autofree char *hint = suggest_cmd (kw, (size_t) (p - kw));
      return fail (ps, line, err, "unknown instruction: %.*s%s", (int) (p - kw), kw, hint ? hint : "");
    }
  struct ictx ic = { ps, line, spec->name };
  args = extract_flag_words (p, &words);
  while (is_blank (*args))
    args++;
  n = strlen (args);
  while (n > 0 && is_blank (args[n - 1]))
    n--;
  in->args = kiln_xstrndup (args, n);
  r = parse_flags (&ic, in, words, err);
  if (r < 0)
    return r;
  r = parse_args (&ic, ps, in, err);
  return r < 0 ? r : count_decls (&ic, ps, in, err);
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
    heredoc_clear (&in->heredocs[i]);
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
    return fail (ps, in->line, err, "%s: instruction must be preceded by FROM", cmd_specs[in->cmd].name);
  if (df->ninstrs >= KILN_DOCKERFILE_MAX_INSTRUCTIONS)
    return fail (ps, in->line, err, "%s: more than %d instructions in the file (the limit)", cmd_specs[in->cmd].name,
                 KILN_DOCKERFILE_MAX_INSTRUCTIONS);
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
  r = parse_instr (ps, text.buf, line, &in, err);
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
    return fail (&ps, 0, err, "file is larger than the limit of %u bytes", KILN_DOCKERFILE_MAX_SIZE);
  if (nul)
    {
      int line = 1;
      for (const char *p = text; p < nul; p++)
        line += *p == '\n';
      return fail (&ps, line, err, "file contains a NUL byte");
    }
  /* A UTF-8 byte order mark, as Windows editors write it. */
  if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
    ps.pos += 3;
  df = kiln_xcalloc (1, sizeof *df);
  df->name = kiln_xstrdup (name);
  df->escape = '\\';
  r = parse_lines (&ps, df, err);
  if (r >= 0 && df->ninstrs == 0)
    r = fail (&ps, 0, err, "file contains no instructions");
  else if (r >= 0 && !has_from (df))
    r = fail (&ps, 0, err, "file contains no FROM instruction");
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
kiln_df_cmd_name (enum kiln_df_cmd cmd)
{
  if ((size_t) cmd >= NCMDS)
    return NULL;
  return cmd_specs[cmd].name;
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
    return split_blanks (in->args);
  v = kiln_xcalloc (1, sizeof *v);
  for (size_t i = 0; in->argv[i]; i++)
    kiln_strv_push_take (&v, trim_space (in->argv[i]));
  return v;
}
