/* dockerfile_words.c - words as BuildKit's parser splits them (blanks,
 * quotes, escapes) and the heredoc markers (`<<EOF`, `<<-"EOF"`) an
 * instruction announces. */
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

/* ---- words ----------------------------------------------------------------- */

void
kiln_df_wordv_push_take (struct wordv *w, char *s)
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
char **
kiln_df_split_blanks (const char *s)
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
      kiln_df_wordv_push_take (&v, kiln_xstrndup (w, (size_t) (s - w)));
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
char **
kiln_df_split_words (const char *s, char escape, bool heredoc)
{
  __attribute__ ((cleanup (wordv_clear))) struct wordv v = { 0 };
  kiln_autobuf struct kiln_buf w = KILN_BUF_INIT;
  bool inword = false;

  for (;;)
    {
      if (!*s || is_blank (*s))
        {
          if (inword)
            kiln_df_wordv_push_take (&v, kiln_buf_detach (&w, NULL));
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
bool
kiln_df_match_heredoc (const char *word, struct kiln_df_heredoc *h)
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

void
kiln_df_heredoc_clear (struct kiln_df_heredoc *h)
{
  free (h->name);
  free (h->content);
}

/* The heredocs announced on a logical line, in order. */
void
kiln_df_find_heredocs (const char *line, struct kiln_df_instr *in)
{
  kiln_autostrv char **words = NULL;

  if (!strstr (line, "<<"))
    return;
  words = kiln_df_split_words (line, '\\', true);
  for (size_t i = 0; words && words[i]; i++)
    {
      struct kiln_df_heredoc h = { 0 };
      if (!kiln_df_match_heredoc (words[i], &h))
        continue;
      in->heredocs = kiln_xrealloc (in->heredocs, (in->nheredocs + 1) * sizeof *in->heredocs);
      in->heredocs[in->nheredocs++] = h;
    }
}
