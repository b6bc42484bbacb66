/* kiln/dockerfile.h - Dockerfile lexer and parser: text -> instruction list.
 *
 * Pure code, no syscalls.  The parser follows the Dockerfile reference as
 * BuildKit implements it: parser directives (escape, syntax), comments,
 * line continuation with the escape character (comments and blank lines
 * inside a continuation are skipped), exec (JSON) form with fallback to shell
 * form on invalid JSON, instruction flags, heredocs.  It does NOT expand
 * variables: arguments are kept raw (quotes included) for the planner, which
 * expands them with kiln/expand.h. */
#ifndef KILN_DOCKERFILE_H
#define KILN_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/error.h"

enum kiln_df_cmd {
  KILN_DF_FROM,
  KILN_DF_RUN,
  KILN_DF_CMD,
  KILN_DF_ENTRYPOINT,
  KILN_DF_COPY,
  KILN_DF_ADD,
  KILN_DF_ENV,
  KILN_DF_ARG,
  KILN_DF_LABEL,
  KILN_DF_EXPOSE,
  KILN_DF_USER,
  KILN_DF_WORKDIR,
  KILN_DF_VOLUME,
  KILN_DF_STOPSIGNAL,
  KILN_DF_HEALTHCHECK,
  KILN_DF_SHELL,
  KILN_DF_ONBUILD,
  KILN_DF_MAINTAINER,
};

/* "--name=value" or bare "--name" (value NULL).  Flags are only recognised
 * before the first argument, as BuildKit does. */
struct kiln_df_flag {
  char *name;     /* without the leading "--" */
  char *value;    /* raw, unexpanded; NULL for a bare flag */
};

struct kiln_df_heredoc {
  char *name;       /* the delimiter word, quotes removed */
  char *content;    /* body, each line ending in '\n'; leading tabs removed for <<- */
  bool expand;      /* false when the delimiter was quoted ('EOF' or "EOF") */
  bool chomp;       /* written as <<- */
};

struct kiln_df_instr {
  enum kiln_df_cmd cmd;
  int line;                 /* 1-based line of the keyword */
  int end_line;             /* last line, continuations and heredocs included */
  char *original;           /* the logical line as written (continuations joined, flags kept) */
  struct kiln_df_flag *flags;
  size_t nflags;
  /* Arguments after the flags, continuation-joined, leading/trailing blanks
   * trimmed, unexpanded.  For the JSON form this is the raw JSON text. */
  char *args;
  bool json;                /* exec form: argv holds the decoded JSON strings */
  char **argv;              /* NULL unless json */
  struct kiln_df_heredoc *heredocs;   /* in order of appearance on the line */
  size_t nheredocs;
  struct kiln_df_instr *sub;          /* ONBUILD: the trigger, parsed; else NULL */
};

struct kiln_dockerfile {
  char *name;               /* file name used in error messages */
  char escape;              /* '\\' or '`' */
  char *syntax;             /* "# syntax=" value, recorded only; NULL if absent */
  struct kiln_df_instr *instrs;
  size_t ninstrs;
};

/* Parses text (len bytes, need not be NUL-terminated).  name is used in errors,
 * which read "NAME:LINE: INSTRUCTION: what is wrong" (kind KILN_E_PARSE):
 * unknown instruction, missing arguments, bad flag syntax, flag not allowed
 * for the instruction, unterminated heredoc, empty file (no FROM). */
int kiln_dockerfile_parse (const char *name, const char *text, size_t len,
                           struct kiln_dockerfile **out, struct kiln_error **err);
void kiln_dockerfile_free (struct kiln_dockerfile *df);

/* "FROM", "RUN", ... */
const char *kiln_df_cmd_name (enum kiln_df_cmd cmd);

/* The flag's value, or NULL when absent; *present (optional) tells a bare flag
 * apart from a missing one.  The last occurrence wins. */
const char *kiln_df_instr_flag (const struct kiln_df_instr *in, const char *name, bool *present);

#endif
