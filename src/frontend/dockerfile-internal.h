/* dockerfile-internal.h - what the parser's files share: the reading
 * state, errors, words and heredoc markers (dockerfile_words.c), and one
 * instruction parsed from its logical line (dockerfile_instr.c). */
#ifndef KILN_DOCKERFILE_INTERNAL_H
#define KILN_DOCKERFILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/dockerfile.h"
#include "kiln/error.h"

/* Reading state over the whole text. */
struct parser {
  const char *name;
  const char *pos, *end;
  int lineno; /* number of the last physical line read */
  char escape;
  size_t nargs, npairs; /* ARG names, ENV/LABEL pairs so far (the limits) */
};

static inline bool
is_blank (char c)
{
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* A parse error "NAME:LINE: message" (line 0: "NAME: message"). */
int kiln_df_fail (const struct parser *ps, int line, struct kiln_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* A NULL-terminated vector that knows its length: kiln_strv_push_take
 * measures the vector on every push, and a hostile line holds millions of
 * words (a 400 KB ENV line took seconds, a 16 MiB one hours). */
struct wordv {
  char **v;
  size_t n, cap;
};

/* Appends s (taken) to w. */
void kiln_df_wordv_push_take (struct wordv *w, char *s);
/* The words of s split on runs of blanks only (caller frees). */
char **kiln_df_split_blanks (const char *s);
/* The words of s as BuildKit's shell lexer splits them (quotes and escape
 * kept out, with heredoc "<< EOF" stays one word); NULL on an unterminated
 * quote.  Caller frees. */
char **kiln_df_split_words (const char *s, char escape, bool heredoc);
/* Whether word announces a heredoc; fills h (its name allocated) if so. */
bool kiln_df_match_heredoc (const char *word, struct kiln_df_heredoc *h);
void kiln_df_heredoc_clear (struct kiln_df_heredoc *h);
/* Adds to in the heredocs a logical line announces, in order (no bodies). */
void kiln_df_find_heredocs (const char *line, struct kiln_df_instr *in);
/* Parses one logical line (already joined) into *in; on failure *in may be
 * partly filled and the caller clears it. */
int kiln_df_parse_instr (struct parser *ps, const char *text, int line, struct kiln_df_instr *in,
                         struct kiln_error **err);

#endif
