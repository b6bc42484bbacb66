/* dockerfile_instr.c - one instruction from its logical line: the keyword
 * (with a suggestion when it is misspelt), the flags it accepts, and its
 * arguments checked as BuildKit's instructions package checks them. */
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

/* Where an instruction error is reported: "NAME:LINE: KEYWORD: ". */
struct ictx {
  const struct parser *ps;
  int line;
  const char *kw;
};

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
      kiln_df_wordv_push_take (&v, kiln_buf_detach (&w, NULL));
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
  w = kiln_df_split_blanks (in->args);
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
  w = in->json ? kiln_strv_dup (in->argv) : kiln_df_split_blanks (in->args);
  n = kiln_strv_len (w);
  if (n < 2)
    return ifail (ic, err, "requires at least two arguments");
  dest = w[n - 1];
  if (!in->json && kiln_df_match_heredoc (dest, &h))
    {
      kiln_df_heredoc_clear (&h);
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
  kiln_autostrv char **w = kiln_df_split_blanks (in->args);
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
  kiln_autostrv char **w = kiln_df_split_words (args, ps->escape, false);

  if (w == NULL)
    return ifail (ic, err, "unterminated quote");
  if (w[0] == NULL)
    return ifail (ic, err, "requires at least one argument");
  if (strchr (w[0], '=') == NULL)
    {
      kiln_autostrv char **old = kiln_df_split_blanks (args);
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
  return kiln_df_parse_instr (ps, a, in->line, in->sub, err);
}

/* ARG names and ENV/LABEL pairs add up over the file (ONBUILD triggers
 * included): each later declaration looks the earlier ones up. */
static int
count_decls (const struct ictx *ic, struct parser *ps, const struct kiln_df_instr *in, struct kiln_error **err)
{
  bool arg = in->cmd == KILN_DF_ARG;
  if (!arg && in->cmd != KILN_DF_ENV && in->cmd != KILN_DF_LABEL)
    return 0;
  kiln_autostrv char **w = kiln_df_split_words (in->args, ps->escape, false);
  if (w == NULL) /* an unterminated quote: count what the blanks separate */
    w = kiln_df_split_blanks (in->args);
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
int
kiln_df_parse_instr (struct parser *ps, const char *text, int line, struct kiln_df_instr *in, struct kiln_error **err)
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
      return kiln_df_fail (ps, line, err, "unknown instruction: %.*s%s", (int) (p - kw), kw, hint ? hint : "");
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

const char *
kiln_df_cmd_name (enum kiln_df_cmd cmd)
{
  if ((size_t) cmd >= NCMDS)
    return NULL;
  return cmd_specs[cmd].name;
}
