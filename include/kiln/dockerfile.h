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

/* Resource limits: a Dockerfile may come from a pull request, so everything
 * the parser keeps in memory is bounded (docs/security.md explains each
 * value).  KILN_DOCKERFILE_MAX_SIZE: the file as read (a BuildKit frontend
 * run as a gateway image reads it in one gRPC message of at most 16 MiB).  KILN_DOCKERFILE_MAX_INSTRUCTIONS: instructions of the file,
 * ONBUILD triggers counted once.  KILN_DOCKERFILE_MAX_HEREDOC: one heredoc
 * body.  KILN_DOCKERFILE_MAX_ARGS: ARG names declared over the whole file;
 * KILN_DOCKERFILE_MAX_PAIRS: ENV and LABEL name=value pairs over the whole
 * file (each declaration is a linear lookup, so their number must not be
 * quadratic in the file's size). */
#define KILN_DOCKERFILE_MAX_SIZE (16u << 20)
#define KILN_DOCKERFILE_MAX_INSTRUCTIONS 10000
#define KILN_DOCKERFILE_MAX_HEREDOC (4u << 20)
#define KILN_DOCKERFILE_MAX_ARGS 4096
#define KILN_DOCKERFILE_MAX_PAIRS 16384

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
 * before the first argument, as BuildKit does; a bare "--" ends them.  As in
 * BuildKit's extractBuilderFlags, quotes are removed from the flag word and
 * '\\' escapes the next byte, but variables are not expanded.  Every
 * occurrence is kept, in order (several --mount).  Flags are checked against
 * the instruction: FROM --platform; RUN --mount --network --security; COPY
 * --from --chown --chmod --link --parents --exclude; ADD --chown --chmod --link
 * --checksum --keep-git-dir --exclude; HEALTHCHECK --interval --timeout
 * --start-period --start-interval --retries.  Boolean flags (link, parents,
 * keep-git-dir) take no value or =true/=false; the others need a value. */
struct kiln_df_flag {
  char *name;  /* without the leading "--" */
  char *value; /* raw, unexpanded; NULL for a bare flag */
};

struct kiln_df_heredoc {
  char *name;    /* the delimiter word, quotes removed */
  char *content; /* body, each line ending in '\n' (CRLF made LF); leading tabs
                       removed for <<- */
  bool expand;   /* false when the delimiter was quoted ('EOF' or "EOF") */
  bool chomp;    /* written as <<- */
};

struct kiln_df_instr {
  enum kiln_df_cmd cmd;
  int line;     /* 1-based line of the keyword */
  int end_line; /* last line, continuations and heredocs included */
  /* The logical line as written: continuations joined (escape character
   * removed, comment and blank lines inside dropped), flags kept, outer
   * blanks trimmed.  For ONBUILD's sub, the trigger text. */
  char *original;
  struct kiln_df_flag *flags;
  size_t nflags;
  /* Arguments after the flags, continuation-joined, leading/trailing blanks
   * trimmed, unexpanded.  For the JSON form this is the raw JSON text.
   * HEALTHCHECK keeps its type word ("CMD ..." or "NONE"); json/argv then
   * describe the part after CMD (see kiln_df_healthcheck_cmd). */
  char *args;
  bool json;   /* exec form: argv holds the decoded JSON strings */
  char **argv; /* NULL unless json */
  /* In order of appearance on the line.  Only RUN, COPY and ADD in shell form
   * have heredocs; for ONBUILD they belong to the trigger (sub). */
  struct kiln_df_heredoc *heredocs;
  size_t nheredocs;
  struct kiln_df_instr *sub; /* ONBUILD: the trigger, parsed; else NULL */
};

struct kiln_dockerfile {
  char *name;   /* file name used in error messages */
  char escape;  /* '\\' or '`' */
  char *syntax; /* "# syntax=" value, recorded only; NULL if absent */
  struct kiln_df_instr *instrs;
  size_t ninstrs;
};

/* Parses text (len bytes, need not be NUL-terminated; a UTF-8 BOM and CRLF
 * line ends are accepted).  name is used in errors, which read
 * "NAME:LINE: INSTRUCTION: what is wrong" (kind KILN_E_PARSE), e.g.
 * "Dockerfile:3: COPY: requires at least two arguments": missing arguments,
 * bad flag syntax, flag not allowed for the instruction, unterminated
 * heredoc, non-string JSON array, instruction other than ARG before FROM.
 * Errors not tied to an instruction omit the keyword ("NAME:LINE: unknown
 * instruction: FOO", bad or repeated parser directive, NUL byte), and
 * file-level ones the line too ("NAME: file contains no instructions",
 * "NAME: file contains no FROM instruction").  Past a limit
 * the error names the limit and its value ("NAME:LINE: RUN: heredoc `EOF`
 * is larger than the limit of 4194304 bytes"; the size: "NAME: file is
 * larger than the limit of 16777216 bytes").  testdata/dockerfile/bad/ holds
 * one example per error with the exact message.  *out is set only on success. */
int kiln_dockerfile_parse (const char *name, const char *text, size_t len, struct kiln_dockerfile **out,
                           struct kiln_error **err);
void kiln_dockerfile_free (struct kiln_dockerfile *df);

/* "FROM", "RUN", ...; NULL for a value outside the enum. */
const char *kiln_df_cmd_name (enum kiln_df_cmd cmd);

/* The flag's value, or NULL when absent; *present (optional) tells a bare flag
 * apart from a missing one.  The last occurrence wins. */
const char *kiln_df_instr_flag (const struct kiln_df_instr *in, const char *name, bool *present);

/* HEALTHCHECK CMD: the command text after "CMD" (raw JSON when in->json);
 * NULL for HEALTHCHECK NONE or another instruction.  Points into in->args. */
const char *kiln_df_healthcheck_cmd (const struct kiln_df_instr *in);

/* VOLUME's words, unexpanded (BuildKit parseMaybeJSONToList, then
 * parseVolume): the JSON strings with surrounding blanks trimmed, or the
 * arguments split on blanks (quotes are not word boundaries: each word is
 * expanded on its own later).  NULL-terminated, caller frees. */
char **kiln_df_list_words (const struct kiln_df_instr *in);

#endif
