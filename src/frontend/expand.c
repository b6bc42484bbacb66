/* expand.c - Dockerfile variable expansion, following BuildKit's shell lexer
 * (frontend/dockerfile/shell/lex.go) so that a Dockerfile expands the same
 * way under kiln as under `docker build`.
 *
 * The lexer walks the word once.  Unquoted text goes to the result and, when
 * splitting, through the splitter, which breaks words on blanks; quoted text
 * and escaped characters are added "raw" so that blanks inside them never
 * split.  Text produced by $-expansion outside quotes is split like unquoted
 * text, as in BuildKit (ENV a="x y" then `$a` gives two words). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/glob.h"
#include "kiln/util.h"

#define NO_STOP (-1)

struct lexer {
  const char *p; /* cursor into the word */
  char esc;
  kiln_expand_lookup_fn lookup;
  void *ud;
  bool literal_quotes; /* quotes are plain text (heredoc bodies) */
  /* Budgets of one kiln_expand_* call, so that a hostile Dockerfile cannot
   * make expansion take exponential memory or time: the bytes its
   * substitutions may still produce (nested ones included, even when their
   * result is discarded, as in ${E:-${D//?/${E:-...}}}), the glob matching
   * steps left, and how deep ${ } may still nest. */
  size_t out_left;
  size_t match_left;
  int depth_left;
};
#define LEXER_INIT(text, esc, fn, ud, lq)                                                                              \
  {                                                                                                                    \
    (text), (esc), (fn), (ud), (lq), KILN_EXPAND_MAX_OUTPUT, KILN_EXPAND_MAX_MATCH_STEPS, KILN_EXPAND_MAX_DEPTH        \
  }

struct splitter {
  struct kiln_buf cur;
  bool in_word; /* cur holds a word, possibly empty ("" is a word) */
  char **words;
  size_t nwords;
};

static int process_until (struct lexer *lx, int stop, bool raw, const char *open, struct kiln_buf *out,
                          struct splitter *sp, struct kiln_error **err);

static bool
is_blank (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool
is_name_char (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void
split_push (struct splitter *sp)
{
  if (sp->in_word)
    kiln_strv_append (&sp->words, &sp->nwords, kiln_buf_detach (&sp->cur, NULL));
  sp->in_word = false;
}

/* Quoted or escaped text: blanks in it belong to the word. */
static void
split_add_raw (struct splitter *sp, const char *s, size_t n)
{
  if (sp == NULL)
    return;
  kiln_buf_add (&sp->cur, s, n);
  sp->in_word = true;
}

/* Unquoted text, including unquoted expansion results: blanks split. */
static void
split_add_text (struct splitter *sp, const char *s, size_t n)
{
  if (sp == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    {
      if (is_blank (s[i]))
        split_push (sp);
      else
        split_add_raw (sp, s + i, 1);
    }
}

/* The text of a substitution for error messages: from its '$' up to the
 * first '}' (inclusive) or the end of the word. */
static char *
subst_text (const char *start)
{
  const char *end = strchr (start, '}');
  return kiln_xstrndup (start, end ? (size_t) (end - start + 1) : strlen (start));
}

static const char *
lookup (struct lexer *lx, const char *name, size_t len)
{
  kiln_autofree char *n = kiln_xstrndup (name, len);
  return lx->lookup ? lx->lookup (lx->ud, n) : NULL;
}

/* Reads a parameter name at the cursor: [A-Za-z0-9_]+, a run of digits
 * (positional), or one special parameter character, as BuildKit does. */
static size_t
read_name (struct lexer *lx)
{
  const char *s = lx->p;
  if (*s >= '0' && *s <= '9')
    while (*lx->p >= '0' && *lx->p <= '9')
      lx->p++;
  else if (*s != '\0' && strchr ("@*#?-$!", *s) != NULL)
    lx->p++;
  else
    while (is_name_char (*lx->p))
      lx->p++;
  return (size_t) (lx->p - s);
}

/* A ${v#p} or ${v/p/r} pattern, as BuildKit's convertShellPatternToRegex
 * (shell/lex.go) turns it into a regular expression: '*' is ".*" (".*?"
 * for the shortest trims), '?' is '.', neither matches a newline (no (?s)
 * flag), a backslash escapes '*', '?' or itself; "\}" and "\/" only protect
 * the delimiters of ${...}: the backslash is dropped.  No brackets. */
static int
glob_compile (const char *pat, struct kiln_glob *g, struct kiln_error **err)
{
  kiln_glob_init (g, '\n');
  for (const char *p = pat; *p; p++)
    {
      if (*p == '*' || *p == '?')
        {
          kiln_glob_add (g, *p == '*' ? KILN_GLOB_STAR : KILN_GLOB_ONE, 0, NULL);
          continue;
        }
      if (*p == '\\' && (p[1] == '}' || p[1] == '/'))
        continue;
      if (*p == '\\')
        {
          if (p[1] != '*' && p[1] != '?' && p[1] != '\\')
            {
              kiln_glob_clear (g);
              return kiln_error_set (err, 0, KILN_E_PARSE, "invalid escape in pattern `%s`", pat);
            }
          p++;
        }
      kiln_glob_add (g, KILN_GLOB_BYTE, *p, NULL);
    }
  return 0;
}

static int
too_costly (const char *pat, size_t len, struct kiln_error **err)
{
  return kiln_error_set (err, 0, KILN_E_PARSE, "pattern `%.64s` against a %zu-byte value: more than %zu matching steps",
                         pat, len, (size_t) KILN_EXPAND_MAX_MATCH_STEPS);
}

static int
too_large (struct kiln_error **err)
{
  return kiln_error_set (err, 0, KILN_E_PARSE, "expansion larger than %zu bytes", (size_t) KILN_EXPAND_MAX_OUTPUT);
}

/* BuildKit's reverseString: the characters of s[0, n) in reverse order,
 * each keeping its bytes. */
static char *
reverse_chars (const char *s, size_t n)
{
  char *out = kiln_xmalloc (n + 1);
  size_t l;
  for (size_t i = 0; i < n; i += l)
    {
      l = kiln_glob_char (s + i, n - i, NULL);
      memcpy (out + n - i - l, s + i, l);
    }
  out[n] = '\0';
  return out;
}

/* BuildKit's reversePattern: reversed, an escape staying in front of the
 * character it escapes. */
static char *
reverse_pattern (const char *p)
{
  size_t n = strlen (p), l;
  char *out = kiln_xmalloc (n + 1);
  for (size_t i = 0; i < n; i += l)
    {
      l = kiln_glob_char (p + i, n - i, NULL);
      if (p[i] == '\\' && i + 1 < n)
        l += kiln_glob_char (p + i + 1, n - i - 1, NULL);
      memcpy (out + n - i - l, p + i, l);
    }
  out[n] = '\0';
  return out;
}

/* ${v#p} ${v##p} ${v%p} ${v%%p}: drop the shortest (greedy: longest) prefix
 * or suffix of value that matches p.  A suffix is a prefix of the reversed
 * value for the reversed pattern, as BuildKit's trimSuffix does it. */
static int
apply_trim (struct lexer *lx, char op, const char *word, const char *value, struct kiln_buf *out,
            struct kiln_error **err)
{
  bool greedy = word[0] == op;
  const char *pat = greedy ? word + 1 : word;
  size_t len = strlen (value), k = 0;
  struct kiln_glob g;
  if (glob_compile (pat, &g, err) < 0)
    return -1;
  kiln_autofree char *rpat = op == '%' ? reverse_pattern (pat) : NULL;
  kiln_autofree char *rval = op == '%' ? reverse_chars (value, len) : NULL;
  if (rpat)
    {
      kiln_glob_clear (&g);
      if (glob_compile (rpat, &g, err) < 0)
        return -1;
    }
  int r = kiln_glob_prefix (&g, rval ? rval : value, len, greedy, &k, &lx->match_left);
  kiln_glob_clear (&g);
  if (r < 0)
    return too_costly (pat, len, err);
  if (r == 0)
    k = 0;
  if (op == '#')
    kiln_buf_adds (out, value + k);
  else
    kiln_buf_add (out, value, len - k);
  return 0;
}

/* ${v/p/r} replaces the leftmost match (the longest there), ${v//p/r} every
 * match, as Go's Regexp.ReplaceAllString does: an empty match right after
 * a match is not replaced, and the search goes on one character later. */
static int
apply_replace (struct lexer *lx, const char *value, const char *pat, const char *repl, bool all, struct kiln_buf *out,
               struct kiln_error **err)
{
  struct kiln_glob g;
  size_t len = strlen (value), rlen = strlen (repl), pos = 0, last = 0, s, e, base = out->len;
  int r = 0;
  if (glob_compile (pat, &g, err) < 0)
    return -1;
  while (pos <= len && (r = kiln_glob_find (&g, value + pos, len - pos, &s, &e, &lx->match_left)) > 0)
    {
      s += pos, e += pos;
      kiln_buf_add (out, value + last, s - last);
      if (e > last || s == 0)
        kiln_buf_add (out, repl, rlen);
      last = e;
      /* every replacement can add all of repl: stop before memory runs out */
      if (!all || out->len - base > lx->out_left)
        break;
      size_t w = kiln_glob_char (value + pos, len - pos, NULL);
      pos = pos + w > e ? pos + w : pos + 1 > e ? pos + 1 : e;
    }
  kiln_glob_clear (&g);
  if (r < 0)
    return too_costly (pat, len, err);
  if (out->len - base > lx->out_left)
    return too_large (err);
  kiln_buf_adds (out, value + last);
  return 0;
}

/* ${v:?msg} and ${v?msg}: fail naming the variable. */
static int
apply_required (const char *name, const char *value, bool null_is_unset, const char *word, struct kiln_buf *out,
                struct kiln_error **err)
{
  if (value == NULL || (null_is_unset && *value == '\0'))
    {
      const char *dflt = value == NULL ? "is not allowed to be unset" : "is not allowed to be empty";
      return kiln_error_set (err, 0, KILN_E_PARSE, "`%s`: %s", name, *word ? word : dflt);
    }
  kiln_buf_adds (out, value);
  return 0;
}

/* Handles the modifiers after ${name: - + ? # %, the word already read. */
static int
apply_modifier (struct lexer *lx, char op, bool null_is_unset, const char *name, const char *value, const char *word,
                struct kiln_buf *out, struct kiln_error **err)
{
  bool unset = value == NULL || (null_is_unset && *value == '\0');
  switch (op)
    {
    case '-': kiln_buf_adds (out, unset ? word : value); return 0;
    case '+': kiln_buf_adds (out, unset ? "" : word); return 0;
    case '?': return apply_required (name, value, null_is_unset, word, out, err);
    default: return apply_trim (lx, op, word, value ? value : "", out, err);
    }
}

static int
process_replace (struct lexer *lx, const char *start, const char *name, size_t nlen, struct kiln_buf *out,
                 struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf pat = KILN_BUF_INIT;
  kiln_autobuf struct kiln_buf repl = KILN_BUF_INIT;
  bool all = *lx->p == '/';
  if (all)
    lx->p++;
  int r = process_until (lx, '/', true, start, &pat, NULL, err);
  if (r >= 0)
    r = process_until (lx, '}', true, start, &repl, NULL, err);
  if (r < 0)
    return r;
  const char *value = lookup (lx, name, nlen);
  return apply_replace (lx, value ? value : "", pat.buf, repl.buf, all, out, err);
}

/* The part of ${...} after the name; *lx->p is the operator character. */
static int
process_braced_op (struct lexer *lx, const char *start, const char *name, size_t nlen, struct kiln_buf *out,
                   struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf word = KILN_BUF_INIT;
  kiln_autofree char *n = kiln_xstrndup (name, nlen);
  bool null_is_unset = false;
  char op = *lx->p++;

  if (op == '/')
    return process_replace (lx, start, name, nlen, out, err);
  if (op == ':')
    {
      null_is_unset = true;
      op = *lx->p ? *lx->p++ : '\0';
    }
  /* BuildKit also takes ${v:#p} and ${v:%p}; the ':' changes nothing there. */
  if (op == '\0' || strchr ("-+?#%", op) == NULL)
    {
      kiln_autofree char *t = subst_text (start);
      return kiln_error_set (err, 0, KILN_E_PARSE, "bad substitution `%s`", t);
    }
  /* Pattern words keep their escapes so that \* stays a literal star. */
  int r = process_until (lx, '}', op == '#' || op == '%', start, &word, NULL, err);
  if (r < 0)
    return r;
  return apply_modifier (lx, op, null_is_unset, n, lookup (lx, name, nlen), word.buf, out, err);
}

/* At '$': $name, ${name}, ${name<op>word}, or a literal '$'. */
static int
dollar (struct lexer *lx, struct kiln_buf *out, struct kiln_error **err)
{
  const char *start = lx->p++;
  const char *name, *value;
  size_t nlen;

  if (*lx->p != '{')
    {
      name = lx->p;
      nlen = read_name (lx);
      value = nlen ? lookup (lx, name, nlen) : "$";
      kiln_buf_adds (out, value ? value : "");
      return 0;
    }
  lx->p++;
  if (*lx->p == '\0')
    return kiln_error_set (err, 0, KILN_E_PARSE, "missing `}` in `%s`", start);
  if (*lx->p == '{' || *lx->p == '}' || *lx->p == ':')
    {
      kiln_autofree char *t = subst_text (start);
      return kiln_error_set (err, 0, KILN_E_PARSE, "bad substitution `%s`", t);
    }
  name = lx->p;
  nlen = read_name (lx);
  if (*lx->p == '}')
    {
      lx->p++;
      value = lookup (lx, name, nlen);
      kiln_buf_adds (out, value ? value : "");
      return 0;
    }
  if (*lx->p == '\0')
    return kiln_error_set (err, 0, KILN_E_PARSE, "missing `}` in `%s`", start);
  return process_braced_op (lx, start, name, nlen, out, err);
}

/* Every substitution goes through here: each nesting level of ${ } is one
 * call deeper, and what it produces is counted against the budget. */
static int
process_dollar (struct lexer *lx, struct kiln_buf *out, struct kiln_error **err)
{
  size_t before = out->len;
  if (lx->depth_left == 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "`${` nested more than %d deep", KILN_EXPAND_MAX_DEPTH);
  lx->depth_left--;
  int r = dollar (lx, out, err);
  lx->depth_left++;
  if (r < 0)
    return r;
  if (out->len - before > lx->out_left)
    return too_large (err);
  lx->out_left -= out->len - before;
  return 0;
}

static int
process_single_quote (struct lexer *lx, struct kiln_buf *out, struct splitter *sp, struct kiln_error **err)
{
  const char *open = lx->p++;
  const char *close = strchr (lx->p, '\'');
  if (close == NULL)
    return kiln_error_set (err, 0, KILN_E_PARSE, "unterminated single quote at `%s`", open);
  kiln_buf_add (out, lx->p, (size_t) (close - lx->p));
  split_add_raw (sp, lx->p, (size_t) (close - lx->p));
  lx->p = close + 1;
  return 0;
}

/* Inside double quotes the escape character only escapes '"', '$' and
 * itself; elsewhere it stays, as in sh. */
static int
process_double_quote (struct lexer *lx, bool raw, struct kiln_buf *out, struct splitter *sp, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf q = KILN_BUF_INIT;
  const char *open = lx->p++;
  for (;;)
    {
      char c = *lx->p;
      if (c == '\0')
        return kiln_error_set (err, 0, KILN_E_PARSE, "unterminated double quote at `%s`", open);
      if (c == '"')
        break;
      if (c == '$')
        {
          int r = process_dollar (lx, &q, err);
          if (r < 0)
            return r;
          continue;
        }
      lx->p++;
      if (c == lx->esc)
        {
          if (raw)
            kiln_buf_addch (&q, c);
          if (*lx->p == '\0')
            continue;
          if (*lx->p == '"' || *lx->p == '$' || *lx->p == lx->esc)
            c = *lx->p++;
        }
      kiln_buf_addch (&q, c);
    }
  lx->p++;
  kiln_buf_add (out, q.buf, q.len);
  split_add_raw (sp, q.buf, q.len);
  return 0;
}

static int
process_special (struct lexer *lx, bool raw, struct kiln_buf *out, struct splitter *sp, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf tmp = KILN_BUF_INIT;
  int r;

  if (*lx->p == '\'')
    return process_single_quote (lx, out, sp, err);
  if (*lx->p == '"')
    return process_double_quote (lx, raw, out, sp, err);
  r = process_dollar (lx, &tmp, err);
  if (r < 0)
    return r;
  kiln_buf_add (out, tmp.buf, tmp.len);
  split_add_text (sp, tmp.buf, tmp.len);
  return 0;
}

/* Processes text up to the stop character (consumed) or, with NO_STOP, the
 * end of the word.  raw keeps escape characters in the output (patterns).
 * open is the start of the enclosing ${ for error messages. */
static int
process_until (struct lexer *lx, int stop, bool raw, const char *open, struct kiln_buf *out, struct splitter *sp,
               struct kiln_error **err)
{
  while (*lx->p)
    {
      char c = *lx->p;
      if (stop != NO_STOP && c == stop)
        {
          lx->p++;
          return 0;
        }
      if (c == '$' || (!lx->literal_quotes && (c == '\'' || c == '"')))
        {
          int r = process_special (lx, raw, out, sp, err);
          if (r < 0)
            return r;
          continue;
        }
      lx->p++;
      if (c == lx->esc)
        {
          if (raw)
            kiln_buf_addch (out, c);
          if (*lx->p == '\0') /* a trailing escape is dropped */
            break;
          c = *lx->p++;
          kiln_buf_addch (out, c);
          split_add_raw (sp, &c, 1);
          continue;
        }
      kiln_buf_addch (out, c);
      split_add_text (sp, &c, 1);
    }
  if (stop != NO_STOP)
    return kiln_error_set (err, 0, KILN_E_PARSE, "missing `%c` in `%s`", stop, open);
  return 0;
}

int
kiln_expand_word (const char *word, char escape, kiln_expand_lookup_fn lookup_fn, void *ud, char **out,
                  struct kiln_error **err)
{
  struct lexer lx = LEXER_INIT (word, escape, lookup_fn, ud, false);
  kiln_autobuf struct kiln_buf res = KILN_BUF_INIT;

  if (process_until (&lx, NO_STOP, false, word, &res, NULL, err) < 0)
    return kiln_error_wrap (err, "expand `%s`", word);
  *out = kiln_buf_detach (&res, NULL);
  return 0;
}

int
kiln_expand_words (const char *text, char escape, kiln_expand_lookup_fn lookup_fn, void *ud, char ***out,
                   struct kiln_error **err)
{
  struct lexer lx = LEXER_INIT (text, escape, lookup_fn, ud, false);
  kiln_autobuf struct kiln_buf res = KILN_BUF_INIT;
  struct splitter sp = { KILN_BUF_INIT, false, NULL, 0 };
  int r = process_until (&lx, NO_STOP, false, text, &res, &sp, err);

  if (r >= 0)
    split_push (&sp);
  kiln_buf_release (&sp.cur);
  if (r < 0)
    {
      kiln_strv_free (sp.words);
      return kiln_error_wrap (err, "expand `%s`", text);
    }
  /* No words at all is an empty vector, never NULL. */
  *out = sp.words ? sp.words : kiln_xcalloc (1, sizeof (char *));
  return 0;
}

/* The end of the quoted text or ${...} that starts at p (p itself when it
 * starts neither), so that blanks inside never split a raw word. */
static const char *
skip_grouped (const char *p, char esc)
{
  if (*p == '\'')
    {
      const char *q = strchr (p + 1, '\'');
      return q ? q + 1 : p + strlen (p);
    }
  if (*p == '"' || (p[0] == '$' && p[1] == '{'))
    {
      char close = *p == '"' ? '"' : '}';
      const char *q = p + (*p == '"' ? 1 : 2);
      while (*q && *q != close)
        q += (*q == esc && q[1]) ? 2 : 1;
      return *q ? q + 1 : q;
    }
  return p;
}

int
kiln_split_words_raw (const char *text, char escape, char ***out)
{
  struct splitter sp = { KILN_BUF_INIT, false, NULL, 0 };
  const char *p = text;
  while (*p)
    {
      const char *end = skip_grouped (p, escape);
      if (end == p && *p == escape && p[1])
        end = p + 2;
      if (end != p)
        {
          split_add_raw (&sp, p, (size_t) (end - p));
          p = end;
          continue;
        }
      split_add_text (&sp, p, 1);
      p++;
    }
  split_push (&sp);
  kiln_buf_release (&sp.cur);
  *out = sp.words ? sp.words : kiln_xcalloc (1, sizeof (char *));
  return 0;
}

int
kiln_expand_heredoc (const char *body, kiln_expand_lookup_fn lookup_fn, void *ud, char **out, struct kiln_error **err)
{
  struct lexer lx = LEXER_INIT (body, '\\', lookup_fn, ud, true);
  kiln_autobuf struct kiln_buf res = KILN_BUF_INIT;

  if (process_until (&lx, NO_STOP, false, body, &res, NULL, err) < 0)
    return kiln_error_wrap (err, "expand heredoc");
  *out = kiln_buf_detach (&res, NULL);
  return 0;
}
