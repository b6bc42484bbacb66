/* tests/test_dockerfile.c - the Dockerfile parser (suite `dockerfile`). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "helpers.h"
#include "kiln/dockerfile.h"
#include "kiln/cleanup.h"
#include "kiln/util.h"

static struct kiln_dockerfile *
parse_len (const char *text, size_t len)
{
  struct kiln_dockerfile *df = NULL;
  struct kiln_error *err = NULL;
  int r = kiln_dockerfile_parse ("Dockerfile", text, len, &df, &err);
  cr_assert_geq (r, 0, "parse failed: %s", err ? err->msg : "(no error set)");
  cr_assert_null (err);
  cr_assert_not_null (df);
  return df;
}

static struct kiln_dockerfile *
parse (const char *text)
{
  return parse_len (text, strlen (text));
}

static void
expect_err_len (const char *text, size_t len, const char *msg)
{
  struct kiln_dockerfile *df = NULL;
  struct kiln_error *err = NULL;
  int r = kiln_dockerfile_parse ("Dockerfile", text, len, &df, &err);
  cr_assert_lt (r, 0, "parse of <<%s>> should fail with %s", text, msg);
  cr_assert_null (df);
  cr_assert_not_null (err);
  cr_expect_eq (err->kind, KILN_E_PARSE);
  cr_expect_str_eq (err->msg, msg);
  kiln_error_free (&err);
}

static void
expect_err (const char *text, const char *msg)
{
  expect_err_len (text, strlen (text), msg);
}

#define ERR_TEST(name, text, msg)                                                                                      \
  Test (dockerfile, name)                                                                                              \
  {                                                                                                                    \
    expect_err (text, msg);                                                                                            \
  }

/* ---- basics ---- */

Test (dockerfile, parses_from_and_run_with_lines)
{
  struct kiln_dockerfile *df = parse ("FROM alpine:3.19\nRUN echo hi\n");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_eq (df->escape, '\\');
  cr_expect_null (df->syntax);
  cr_expect_str_eq (df->name, "Dockerfile");
  cr_expect_eq (df->instrs[0].cmd, KILN_DF_FROM);
  cr_expect_str_eq (df->instrs[0].args, "alpine:3.19");
  cr_expect_eq (df->instrs[0].line, 1);
  cr_expect_eq (df->instrs[1].cmd, KILN_DF_RUN);
  cr_expect_str_eq (df->instrs[1].args, "echo hi");
  cr_expect_eq (df->instrs[1].line, 2);
  cr_expect_eq (df->instrs[1].end_line, 2);
  cr_expect_not (df->instrs[1].json);
  cr_expect_null (df->instrs[1].argv);
  cr_expect_null (df->instrs[1].sub);
  kiln_dockerfile_free (df);
}

Test (dockerfile, keywords_are_case_insensitive)
{
  struct kiln_dockerfile *df = parse ("from alpine\nRuN true\nworkdir /x\nHealthCheck none\n");
  cr_assert_eq (df->ninstrs, 4);
  cr_expect_eq (df->instrs[0].cmd, KILN_DF_FROM);
  cr_expect_eq (df->instrs[1].cmd, KILN_DF_RUN);
  cr_expect_eq (df->instrs[2].cmd, KILN_DF_WORKDIR);
  cr_expect_eq (df->instrs[3].cmd, KILN_DF_HEALTHCHECK);
  cr_expect_str_eq (df->instrs[1].original, "RuN true");
  kiln_dockerfile_free (df);
}

Test (dockerfile, recognises_every_instruction)
{
  struct kiln_dockerfile *df = parse ("FROM a AS b\nRUN x\nCMD x\nENTRYPOINT x\nCOPY a b\nADD a b\n"
                                      "ENV A=1\nARG B\nLABEL k=v\nEXPOSE 80\nUSER u\nWORKDIR /w\n"
                                      "VOLUME /v\nSTOPSIGNAL SIGTERM\nHEALTHCHECK NONE\n"
                                      "SHELL [\"sh\"]\nONBUILD RUN x\nMAINTAINER me\n");
  cr_assert_eq (df->ninstrs, 18);
  for (size_t i = 0; i < df->ninstrs; i++)
    cr_expect_eq (df->instrs[i].cmd, (enum kiln_df_cmd) i, "instruction %zu", i);
  kiln_dockerfile_free (df);
}

Test (dockerfile, cmd_name_maps_every_keyword)
{
  cr_expect_str_eq (kiln_df_cmd_name (KILN_DF_FROM), "FROM");
  cr_expect_str_eq (kiln_df_cmd_name (KILN_DF_HEALTHCHECK), "HEALTHCHECK");
  cr_expect_str_eq (kiln_df_cmd_name (KILN_DF_MAINTAINER), "MAINTAINER");
  cr_expect_null (kiln_df_cmd_name ((enum kiln_df_cmd) 999));
}

ERR_TEST (rejects_unknown_instruction, "FROM a\nXYZZY bar\n", "Dockerfile:2: unknown instruction: XYZZY")
ERR_TEST (unknown_instruction_keeps_spelling, "FROM a\n\n  frob x\n",
          "Dockerfile:3: unknown instruction: frob (did you mean from?)")
/* BuildKit suggest.Search: the closest name below distance 3, in the word's case */
ERR_TEST (unknown_instruction_suggests_upper, "FROM a\nFNTRYPOINT [\"x\"]\n",
          "Dockerfile:2: unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)")
ERR_TEST (unknown_instruction_suggests_lower, "FROM a\nCopyy x y\n",
          "Dockerfile:2: unknown instruction: Copyy (did you mean copy?)")

Test (dockerfile, skips_comments_and_blank_lines_keeping_line_numbers)
{
  struct kiln_dockerfile *df = parse ("# hello\n\nFROM a\n   # indented comment\n\t\nRUN x # not a comment\n");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_eq (df->instrs[0].line, 3);
  cr_expect_eq (df->instrs[1].line, 6);
  cr_expect_str_eq (df->instrs[1].args, "x # not a comment");
  kiln_dockerfile_free (df);
}

Test (dockerfile, leading_whitespace_before_keyword_is_ignored)
{
  struct kiln_dockerfile *df = parse ("  FROM a\n\tRUN   x  \n");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].args, "x");
  cr_expect_str_eq (df->instrs[1].original, "RUN   x");
  kiln_dockerfile_free (df);
}

Test (dockerfile, last_line_without_newline)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD run");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].args, "run");
  kiln_dockerfile_free (df);
}

/* ---- parser directives ---- */

Test (dockerfile, escape_directive_backtick_allows_windows_paths)
{
  struct kiln_dockerfile *df = parse ("# escape=`\nFROM windows\nCOPY testfile.txt c:\\\n"
                                      "RUN dir c:\\ `\n  && echo done\n");
  cr_expect_eq (df->escape, '`');
  cr_assert_eq (df->ninstrs, 3);
  cr_expect_str_eq (df->instrs[1].args, "testfile.txt c:\\");
  cr_expect_eq (df->instrs[1].line, 3);
  cr_expect_str_eq (df->instrs[2].args, "dir c:\\   && echo done");
  cr_expect_eq (df->instrs[2].line, 4);
  cr_expect_eq (df->instrs[2].end_line, 5);
  kiln_dockerfile_free (df);
}

Test (dockerfile, escape_directive_key_is_case_insensitive_and_spaced)
{
  struct kiln_dockerfile *df = parse ("#  ESCAPE =  `  \nFROM a\nRUN a `\nb\n");
  cr_expect_eq (df->escape, '`');
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].args, "a b");
  kiln_dockerfile_free (df);
}

Test (dockerfile, escape_backslash_directive_is_default)
{
  struct kiln_dockerfile *df = parse ("# escape=\\\nFROM a\nRUN a \\\nb\n");
  cr_expect_eq (df->escape, '\\');
  cr_expect_str_eq (df->instrs[1].args, "a b");
  kiln_dockerfile_free (df);
}

Test (dockerfile, syntax_directive_is_recorded)
{
  struct kiln_dockerfile *df = parse ("# syntax = docker/dockerfile:1.7 \n# escape=`\nFROM a\n");
  cr_expect_str_eq (df->syntax, "docker/dockerfile:1.7");
  cr_expect_eq (df->escape, '`');
  cr_expect_eq (df->ninstrs, 1);
  kiln_dockerfile_free (df);
}

Test (dockerfile, directive_after_comment_is_a_comment)
{
  struct kiln_dockerfile *df = parse ("# hello\n# escape=`\nFROM a\nRUN a `\n");
  cr_expect_eq (df->escape, '\\');
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].args, "a `");
  kiln_dockerfile_free (df);
}

Test (dockerfile, directive_after_blank_line_is_a_comment)
{
  struct kiln_dockerfile *df = parse ("\n# escape=`\n# syntax=x\nFROM a\n");
  cr_expect_eq (df->escape, '\\');
  cr_expect_null (df->syntax);
  kiln_dockerfile_free (df);
}

Test (dockerfile, directive_after_instruction_is_a_comment)
{
  struct kiln_dockerfile *df = parse ("FROM a\n# escape=`\nRUN a `\n");
  cr_expect_eq (df->escape, '\\');
  cr_expect_str_eq (df->instrs[1].args, "a `");
  kiln_dockerfile_free (df);
}

Test (dockerfile, unknown_directive_is_a_comment_and_ends_directives)
{
  struct kiln_dockerfile *df = parse ("# foo=bar\n# escape=`\nFROM a\n");
  cr_expect_eq (df->escape, '\\');
  cr_expect_eq (df->ninstrs, 1);
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_repeated_directive, "# escape=`\n# ESCAPE=`\nFROM a\n",
          "Dockerfile:2: only one `escape` parser directive can be used")
ERR_TEST (rejects_bad_escape_token, "# escape=ab\nFROM a\n",
          "Dockerfile:1: invalid escape token \"ab\": must be a backslash or a backtick")

/* ---- continuation ---- */

Test (dockerfile, continuation_joins_lines_and_keeps_original)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN apt-get update && \\\n    apt-get install -y x\nUSER u\n");
  cr_assert_eq (df->ninstrs, 3);
  struct kiln_df_instr *in = &df->instrs[1];
  cr_expect_str_eq (in->args, "apt-get update &&     apt-get install -y x");
  cr_expect_str_eq (in->original, "RUN apt-get update &&     apt-get install -y x");
  cr_expect_eq (in->line, 2);
  cr_expect_eq (in->end_line, 3);
  cr_expect_eq (df->instrs[2].line, 4);
  kiln_dockerfile_free (df);
}

Test (dockerfile, continuation_allows_trailing_blanks_after_escape)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN a \\ \t \nb\n");
  cr_expect_str_eq (df->instrs[1].args, "a b");
  cr_expect_eq (df->instrs[1].end_line, 3);
  kiln_dockerfile_free (df);
}

Test (dockerfile, continuation_skips_comment_and_blank_lines)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN one \\\n# comment\n   # indented\n\n  \\\n two\nCMD x\n");
  cr_assert_eq (df->ninstrs, 3);
  cr_expect_str_eq (df->instrs[1].args, "one    two");
  cr_expect_eq (df->instrs[1].end_line, 7);
  cr_expect_eq (df->instrs[2].line, 8);
  kiln_dockerfile_free (df);
}

Test (dockerfile, escaped_escape_at_end_does_not_continue)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN echo foo\\\\\nCMD x\n");
  cr_assert_eq (df->ninstrs, 3);
  cr_expect_str_eq (df->instrs[1].args, "echo foo\\\\");
  kiln_dockerfile_free (df);
}

Test (dockerfile, continuation_at_end_of_file_ends_instruction)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN a \\\n");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].args, "a");
  kiln_dockerfile_free (df);
}

/* ---- input robustness ---- */

Test (dockerfile, accepts_crlf_line_endings)
{
  struct kiln_dockerfile *df = parse ("# escape=`\r\nFROM a\r\nRUN a `\r\n  b\r\nCOPY <<EOF /f\r\nhi\r\nEOF\r\n");
  cr_expect_eq (df->escape, '`');
  cr_assert_eq (df->ninstrs, 3);
  cr_expect_str_eq (df->instrs[0].args, "a");
  cr_expect_str_eq (df->instrs[1].args, "a   b");
  cr_assert_eq (df->instrs[2].nheredocs, 1);
  cr_expect_str_eq (df->instrs[2].heredocs[0].content, "hi\n");
  kiln_dockerfile_free (df);
}

Test (dockerfile, skips_utf8_bom)
{
  struct kiln_dockerfile *df = parse ("\xEF\xBB\xBF# escape=`\nFROM a\n");
  cr_expect_eq (df->escape, '`');
  cr_assert_eq (df->ninstrs, 1);
  cr_expect_eq (df->instrs[0].cmd, KILN_DF_FROM);
  kiln_dockerfile_free (df);
}

Test (dockerfile, rejects_nul_byte)
{
  static const char text[] = "FROM a\nRUN a\0b\n";
  expect_err_len (text, sizeof text - 1, "Dockerfile:2: file contains a NUL byte");
}

Test (dockerfile, does_not_need_nul_terminated_input)
{
  static const char text[] = "FROM a\nRUN abcdef";
  struct kiln_dockerfile *df = parse_len (text, sizeof text - 4);
  cr_expect_str_eq (df->instrs[1].args, "abc");
  kiln_dockerfile_free (df);
}

Test (dockerfile, handles_very_long_lines)
{
  size_t n = 1 << 20;
  char *text = kiln_xmalloc (n + 32);
  memcpy (text, "FROM a\nRUN ", 11);
  memset (text + 11, 'x', n);
  memcpy (text + 11 + n, "\n", 2);
  struct kiln_dockerfile *df = parse (text);
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_eq (strlen (df->instrs[1].args), n);
  kiln_dockerfile_free (df);
  free (text);
}

/* ---- flags ---- */

Test (dockerfile, copy_flags_come_before_arguments)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY --from=a --chown=1:2 x y\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nflags, 2);
  cr_expect_str_eq (in->flags[0].name, "from");
  cr_expect_str_eq (in->flags[0].value, "a");
  cr_expect_str_eq (in->flags[1].name, "chown");
  cr_expect_str_eq (in->flags[1].value, "1:2");
  cr_expect_str_eq (in->args, "x y");
  cr_expect_str_eq (in->original, "COPY --from=a --chown=1:2 x y");
  cr_expect_str_eq (kiln_df_instr_flag (in, "from", NULL), "a");
  cr_expect_null (kiln_df_instr_flag (in, "chmod", NULL));
  kiln_dockerfile_free (df);
}

Test (dockerfile, run_keeps_every_mount_in_order)
{
  struct kiln_dockerfile *df = parse (
      "FROM a\nRUN --mount=type=cache,target=/c --mount=type=secret,id=s cmd --mount=x\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nflags, 2);
  cr_expect_str_eq (in->flags[0].name, "mount");
  cr_expect_str_eq (in->flags[0].value, "type=cache,target=/c");
  cr_expect_str_eq (in->flags[1].name, "mount");
  cr_expect_str_eq (in->flags[1].value, "type=secret,id=s");
  cr_expect_str_eq (in->args, "cmd --mount=x");
  cr_expect_str_eq (kiln_df_instr_flag (in, "mount", NULL), "type=secret,id=s");
  kiln_dockerfile_free (df);
}

Test (dockerfile, flags_after_first_argument_are_arguments)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY x --from=b y\n");
  cr_expect_eq (df->instrs[1].nflags, 0);
  cr_expect_str_eq (df->instrs[1].args, "x --from=b y");
  kiln_dockerfile_free (df);
}

Test (dockerfile, bare_flag_is_present_with_null_value)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY --link --parents=false x y\n");
  struct kiln_df_instr *in = &df->instrs[1];
  bool present = false;
  cr_expect_null (kiln_df_instr_flag (in, "link", &present));
  cr_expect (present);
  cr_expect_str_eq (kiln_df_instr_flag (in, "parents", &present), "false");
  cr_expect (present);
  cr_expect_null (kiln_df_instr_flag (in, "from", &present));
  cr_expect_not (present);
  kiln_dockerfile_free (df);
}

Test (dockerfile, last_flag_occurrence_wins)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY --chown=1 --chown=2 x y\n");
  cr_expect_eq (df->instrs[1].nflags, 2);
  cr_expect_str_eq (kiln_df_instr_flag (&df->instrs[1], "chown", NULL), "2");
  kiln_dockerfile_free (df);
}

Test (dockerfile, flag_values_lose_quotes_but_keep_variables)
{
  struct kiln_dockerfile *df = parse ("FROM --platform=\"$BUILDPLATFORM\" a\nCOPY --chown='u g' x y\n");
  cr_expect_str_eq (df->instrs[0].flags[0].value, "$BUILDPLATFORM");
  cr_expect_str_eq (df->instrs[0].args, "a");
  cr_expect_str_eq (df->instrs[1].flags[0].value, "u g");
  cr_expect_str_eq (df->instrs[1].args, "x y");
  kiln_dockerfile_free (df);
}

Test (dockerfile, double_dash_ends_flags)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY --link -- --odd y\n");
  cr_expect_eq (df->instrs[1].nflags, 1);
  cr_expect_str_eq (df->instrs[1].args, "--odd y");
  kiln_dockerfile_free (df);
}

Test (dockerfile, accepts_flags_of_each_instruction)
{
  struct kiln_dockerfile *df = parse (
      "FROM --platform=linux/amd64 a\nRUN --network=none --security=insecure x\n"
      "COPY --from=a --chown=1 --chmod=644 --link --parents --exclude=*.o x y\n"
      "ADD --chown=1 --chmod=644 --link=true --checksum=sha256:ab --keep-git-dir --exclude=x a b\n"
      "HEALTHCHECK --interval=5s --timeout=1s --start-period=1s --start-interval=1s --retries=3 CMD x\n");
  cr_assert_eq (df->ninstrs, 5);
  cr_expect_eq (df->instrs[2].nflags, 6);
  cr_expect_eq (df->instrs[3].nflags, 6);
  cr_expect_eq (df->instrs[4].nflags, 5);
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_unknown_flag, "FROM a\nCOPY --foo a b\n",
          "Dockerfile:2: COPY: unknown flag: --foo (did you mean from?)")
/* BuildKit bflag.go: a suggestion among the instruction's own flags */
ERR_TEST (unknown_flag_suggests_a_flag_of_the_instruction, "FROM a\nRUN --mont=type=tmpfs x\n",
          "Dockerfile:2: RUN: unknown flag: --mont (did you mean mount?)")
ERR_TEST (unknown_flag_without_a_close_one, "FROM a\nCOPY --verbose a b\n",
          "Dockerfile:2: COPY: unknown flag: --verbose")
ERR_TEST (rejects_flag_of_other_instruction, "FROM a\nADD --from=x a b\n", "Dockerfile:2: ADD: unknown flag: --from")
ERR_TEST (rejects_flag_on_instruction_without_flags, "FROM a\nWORKDIR --x=1 /a\n",
          "Dockerfile:2: WORKDIR: unknown flag: --x")
ERR_TEST (rejects_value_flag_without_value, "FROM a\nRUN --mount echo\n",
          "Dockerfile:2: RUN: missing a value on flag: --mount")
ERR_TEST (rejects_non_boolean_value_for_bool_flag, "FROM a\nCOPY --link=yes a b\n",
          "Dockerfile:2: COPY: expecting a boolean value for flag: --link, not `yes`")

/* ---- exec (JSON) form ---- */

Test (dockerfile, cmd_exec_form_decodes_argv)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD [\"echo\", \"a b\", \"\\u00e9\\\"\"]\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert (in->json);
  cr_assert_eq (kiln_strv_len (in->argv), 3);
  cr_expect_str_eq (in->argv[0], "echo");
  cr_expect_str_eq (in->argv[1], "a b");
  cr_expect_str_eq (in->argv[2], "\xc3\xa9\"");
  cr_expect_str_eq (in->args, "[\"echo\", \"a b\", \"\\u00e9\\\"\"]");
  kiln_dockerfile_free (df);
}

Test (dockerfile, single_quoted_json_falls_back_to_shell_form)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD [\"a\", 'b']\n");
  cr_expect_not (df->instrs[1].json);
  cr_expect_null (df->instrs[1].argv);
  cr_expect_str_eq (df->instrs[1].args, "[\"a\", 'b']");
  kiln_dockerfile_free (df);
}

Test (dockerfile, trailing_garbage_after_json_is_shell_form)
{
  struct kiln_dockerfile *df = parse ("FROM a\nENTRYPOINT [\"a\"] x\nRUN [ -f /x ] && echo\n");
  cr_expect_not (df->instrs[1].json);
  cr_expect_not (df->instrs[2].json);
  kiln_dockerfile_free (df);
}

Test (dockerfile, exec_form_for_run_entrypoint_copy_add_volume)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN [\"sh\",\"-c\",\"x\"]\nENTRYPOINT [\"/bin/e\"]\n"
                                      "COPY [\"a b\", \"/c\"]\nADD [\"x\",\"y\"]\nVOLUME [\"/v\"]\n");
  for (size_t i = 1; i < df->ninstrs; i++)
    cr_expect (df->instrs[i].json, "instruction %zu", i);
  cr_expect_str_eq (df->instrs[3].argv[0], "a b");
  cr_expect_str_eq (df->instrs[5].argv[0], "/v");
  kiln_dockerfile_free (df);
}

Test (dockerfile, empty_json_array_is_exec_form_with_empty_argv)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD []\nENTRYPOINT\n");
  cr_expect (df->instrs[1].json);
  cr_assert_not_null (df->instrs[1].argv);
  cr_expect_null (df->instrs[1].argv[0]);
  cr_expect_not (df->instrs[2].json);
  cr_expect_str_eq (df->instrs[2].args, "");
  kiln_dockerfile_free (df);
}

Test (dockerfile, shell_requires_json_and_decodes_it)
{
  struct kiln_dockerfile *df = parse ("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n");
  cr_expect (df->instrs[1].json);
  cr_expect_str_eq (df->instrs[1].argv[1], "-c");
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_shell_in_shell_form, "FROM a\nSHELL /bin/sh -c\n",
          "Dockerfile:2: SHELL: requires the arguments to be in JSON form")
ERR_TEST (rejects_empty_shell, "FROM a\nSHELL []\n", "Dockerfile:2: SHELL: requires at least one argument")
ERR_TEST (rejects_json_array_of_non_strings, "FROM a\nRUN [\"a\", null]\n",
          "Dockerfile:2: RUN: JSON array must contain only strings")

/* BuildKit parser/line_parsers.go parseJSON: json.Unmarshal accepts "\u0000"
 * and numbers of any size, so such lines are exec form (a NUL string is an
 * error in kiln, see maybe_json; a huge number is a non-string element). */
Test (dockerfile, json_with_escaped_nul_is_exec_form_not_shell_form)
{
  const char *lines[] = {
    "CMD [\"x\\u0000y\"]",         "RUN [\"x\\u0000\"]",
    "ENTRYPOINT [\"\\u0000\"]",    "SHELL [\"/bin/sh\", \"\\u0000\"]",
    "COPY [\"a\\u0000\", \"/d\"]", "ADD [\"a\", \"/d\\u0000\"]",
    "VOLUME [\"/v\\u0000\"]",      "HEALTHCHECK CMD [\"x\\u0000\"]",
  };
  const char *kw[] = { "CMD", "RUN", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME", "HEALTHCHECK" };
  int pos[] = { 1, 1, 1, 2, 1, 2, 1, 1 };
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
    {
      kiln_autofree char *text = kiln_xasprintf ("FROM a\n%s\n", lines[i]);
      kiln_autofree char *msg
          = kiln_xasprintf ("Dockerfile:2: %s: JSON string %d of the array contains a NUL character (\\u0000), "
                            "which kiln cannot store in a command or path",
                            kw[i], pos[i]);
      expect_err (text, msg);
    }
}

/* Go's json.Unmarshal (decode.go unquote) turns bytes that are not UTF-8
 * inside a string into U+FFFD; outside strings they are a syntax error. */
Test (dockerfile, json_with_latin1_bytes_is_exec_form_with_replacement_characters)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD [\"caf\xe9\"]\nCMD [\"a\"]\xe9\n");
  cr_assert (df->instrs[1].json);
  cr_expect_str_eq (df->instrs[1].argv[0], "caf\xef\xbf\xbd");
  cr_expect_not (df->instrs[2].json);
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_json_array_with_a_huge_number, "FROM a\nCMD [\"a\", 123456789012345678901234567890]\n",
          "Dockerfile:2: CMD: JSON array must contain only strings")

Test (dockerfile, json_with_a_number_out_of_double_range_is_shell_form)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD [\"a\", 1e999]\n");
  cr_expect_not (df->instrs[1].json);
  kiln_dockerfile_free (df);
}

/* BuildKit parser parseMaybeJSONToList + instructions/parse.go parseVolume:
 * words split on blanks only (quotes are expanded per word later), JSON
 * strings trimmed, an empty one rejected. */
Test (dockerfile, volume_words_split_on_blanks_or_trimmed_json)
{
  struct kiln_dockerfile *df = parse ("FROM a\nVOLUME /a \"$x y\"\t/b\nVOLUME [\" /c \", \"/d e\"]\n");
  char **w1 = kiln_df_list_words (&df->instrs[1]);
  char **w2 = kiln_df_list_words (&df->instrs[2]);
  cr_assert_eq (kiln_strv_len (w1), 4);
  cr_expect_str_eq (w1[1], "\"$x");
  cr_expect_str_eq (w1[2], "y\"");
  cr_expect_str_eq (w1[3], "/b");
  cr_assert_eq (kiln_strv_len (w2), 2);
  cr_expect_str_eq (w2[0], "/c");
  cr_expect_str_eq (w2[1], "/d e");
  kiln_strv_free (w1);
  kiln_strv_free (w2);
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_empty_json_volume, "FROM a\nVOLUME [\"/a\", \"\"]\n",
          "Dockerfile:2: VOLUME: a volume can not be an empty string")
ERR_TEST (rejects_blank_json_volume, "FROM a\nVOLUME [\" \\t\"]\n",
          "Dockerfile:2: VOLUME: a volume can not be an empty string")

/* ---- heredocs ---- */

Test (dockerfile, run_heredoc_reads_body_and_end_line)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN <<EOF\necho $HOME\n  indented\nEOF\nUSER u\n");
  cr_assert_eq (df->ninstrs, 3);
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nheredocs, 1);
  cr_expect_str_eq (in->heredocs[0].name, "EOF");
  cr_expect_str_eq (in->heredocs[0].content, "echo $HOME\n  indented\n");
  cr_expect (in->heredocs[0].expand);
  cr_expect_not (in->heredocs[0].chomp);
  cr_expect_str_eq (in->args, "<<EOF");
  cr_expect_eq (in->line, 2);
  cr_expect_eq (in->end_line, 5);
  cr_expect_eq (df->instrs[2].line, 6);
  kiln_dockerfile_free (df);
}

Test (dockerfile, several_heredocs_on_one_line_in_order)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCOPY <<one <<two /dest/\n1\nend\none\n2\ntwo\nRUN x\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nheredocs, 2);
  cr_expect_str_eq (in->heredocs[0].name, "one");
  cr_expect_str_eq (in->heredocs[0].content, "1\nend\n");
  cr_expect_str_eq (in->heredocs[1].name, "two");
  cr_expect_str_eq (in->heredocs[1].content, "2\n");
  cr_expect_eq (in->end_line, 7);
  cr_expect_eq (df->instrs[2].line, 8);
  kiln_dockerfile_free (df);
}

Test (dockerfile, chomp_heredoc_strips_leading_tabs)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN <<-EOT bash\n\t\techo a\n\t  b\n\tEOT\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nheredocs, 1);
  cr_expect (in->heredocs[0].chomp);
  cr_expect_str_eq (in->heredocs[0].content, "echo a\n  b\n");
  kiln_dockerfile_free (df);
}

Test (dockerfile, without_chomp_tabbed_delimiter_is_body)
{
  expect_err ("FROM a\nRUN <<EOT\n\tEOT\n", "Dockerfile:2: RUN: unterminated heredoc `EOT`");
}

Test (dockerfile, quoted_heredoc_delimiter_disables_expansion)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN <<'EOF' cat - <<\"X\"\n$a\nEOF\n$b\nX\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nheredocs, 2);
  cr_expect_str_eq (in->heredocs[0].name, "EOF");
  cr_expect_not (in->heredocs[0].expand);
  cr_expect_str_eq (in->heredocs[1].name, "X");
  cr_expect_not (in->heredocs[1].expand);
  cr_expect_str_eq (in->heredocs[1].content, "$b\n");
  kiln_dockerfile_free (df);
}

Test (dockerfile, heredoc_with_fd_and_space_before_delimiter)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN python3 3<< END\nprint(1)\nEND\n");
  cr_assert_eq (df->instrs[1].nheredocs, 1);
  cr_expect_str_eq (df->instrs[1].heredocs[0].name, "END");
  cr_expect_str_eq (df->instrs[1].heredocs[0].content, "print(1)\n");
  kiln_dockerfile_free (df);
}

Test (dockerfile, heredoc_inside_quotes_is_not_a_heredoc)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN echo \"<<EOF\" '<<X' a\\<<Y\nCMD x\n");
  cr_expect_eq (df->instrs[1].nheredocs, 0);
  cr_expect_eq (df->ninstrs, 3);
  kiln_dockerfile_free (df);
}

Test (dockerfile, here_string_is_not_a_heredoc)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN cat <<<word\nCMD x\n");
  cr_expect_eq (df->instrs[1].nheredocs, 0);
  cr_expect_eq (df->ninstrs, 3);
  kiln_dockerfile_free (df);
}

Test (dockerfile, heredoc_only_for_run_copy_add_shell_form)
{
  struct kiln_dockerfile *df = parse ("FROM a\nCMD cat <<EOF\nRUN [\"cat\", \"<<EOF\"]\nUSER u\n");
  cr_assert_eq (df->ninstrs, 4);
  cr_expect_eq (df->instrs[1].nheredocs, 0);
  cr_expect_eq (df->instrs[2].nheredocs, 0);
  cr_expect_eq (df->instrs[3].cmd, KILN_DF_USER);
  kiln_dockerfile_free (df);
}

Test (dockerfile, heredoc_follows_continued_line)
{
  struct kiln_dockerfile *df = parse ("FROM a\nADD --chmod=755 \\\n  <<EOF /run.sh\n#!/bin/sh\nEOF\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_assert_eq (in->nheredocs, 1);
  cr_expect_str_eq (in->heredocs[0].content, "#!/bin/sh\n");
  cr_expect_eq (in->line, 2);
  cr_expect_eq (in->end_line, 5);
  kiln_dockerfile_free (df);
}

Test (dockerfile, heredoc_body_keeps_comment_and_blank_lines)
{
  struct kiln_dockerfile *df = parse ("FROM a\nRUN <<EOF\n# not a comment\n\nFROM x \\\nEOF\n");
  cr_assert_eq (df->ninstrs, 2);
  cr_expect_str_eq (df->instrs[1].heredocs[0].content, "# not a comment\n\nFROM x \\\n");
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_unterminated_heredoc, "FROM a\nRUN <<EOF\necho hi\n", "Dockerfile:2: RUN: unterminated heredoc `EOF`")
ERR_TEST (rejects_second_heredoc_unterminated, "FROM a\n\nCOPY <<A <<B /\nA\nx\n",
          "Dockerfile:3: COPY: unterminated heredoc `B`")
ERR_TEST (rejects_heredoc_as_destination, "FROM a\nCOPY x <<EOF\nEOF\n",
          "Dockerfile:2: COPY: cannot use a heredoc as the destination")

/* ---- ONBUILD ---- */

Test (dockerfile, onbuild_parses_trigger)
{
  struct kiln_dockerfile *df = parse ("FROM a\nONBUILD COPY --from=b x /y\n");
  struct kiln_df_instr *in = &df->instrs[1];
  cr_expect_eq (in->cmd, KILN_DF_ONBUILD);
  cr_expect_str_eq (in->args, "COPY --from=b x /y");
  cr_assert_not_null (in->sub);
  cr_expect_eq (in->sub->cmd, KILN_DF_COPY);
  cr_expect_str_eq (in->sub->args, "x /y");
  cr_expect_str_eq (kiln_df_instr_flag (in->sub, "from", NULL), "b");
  cr_expect_eq (in->sub->line, 2);
  kiln_dockerfile_free (df);
}

Test (dockerfile, onbuild_trigger_gets_heredocs_and_json)
{
  struct kiln_dockerfile *df = parse ("FROM a\nONBUILD RUN <<EOF\nx\nEOF\nONBUILD CMD [\"a\"]\n");
  cr_assert_eq (df->ninstrs, 3);
  cr_assert_eq (df->instrs[1].sub->nheredocs, 1);
  cr_expect_str_eq (df->instrs[1].sub->heredocs[0].content, "x\n");
  cr_expect_eq (df->instrs[1].end_line, 4);
  cr_expect (df->instrs[2].sub->json);
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_onbuild_onbuild, "FROM a\nONBUILD ONBUILD RUN x\n",
          "Dockerfile:2: ONBUILD: chaining ONBUILD via `ONBUILD ONBUILD` is not allowed")
ERR_TEST (rejects_onbuild_from, "FROM a\nONBUILD FROM b\n",
          "Dockerfile:2: ONBUILD: `FROM` is not allowed as an ONBUILD trigger")
ERR_TEST (rejects_onbuild_maintainer, "FROM a\nONBUILD maintainer me\n",
          "Dockerfile:2: ONBUILD: `maintainer` is not allowed as an ONBUILD trigger")
ERR_TEST (rejects_bad_onbuild_trigger, "FROM a\nONBUILD COPY x\n",
          "Dockerfile:2: COPY: requires at least two arguments")
ERR_TEST (rejects_empty_onbuild, "FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD: requires at least one argument")

/* ---- argument checks ---- */

ERR_TEST (rejects_from_without_image, "FROM\n",
          "Dockerfile:1: FROM: requires either one or three arguments (`FROM image [AS name]`)")
ERR_TEST (rejects_from_with_two_words, "FROM a b\n",
          "Dockerfile:1: FROM: requires either one or three arguments (`FROM image [AS name]`)")
ERR_TEST (rejects_bad_stage_name, "FROM a AS b/c\n",
          "Dockerfile:1: FROM: invalid stage name `b/c`: it must start with a letter and contain "
          "only letters, digits, `-`, `_` and `.`")
ERR_TEST (rejects_copy_with_one_argument, "FROM a\nRUN x\nCOPY onlyone\n",
          "Dockerfile:3: COPY: requires at least two arguments")
ERR_TEST (rejects_json_copy_with_one_argument, "FROM a\nADD [\"x\"]\n",
          "Dockerfile:2: ADD: requires at least two arguments")
ERR_TEST (rejects_env_without_arguments, "FROM a\nENV\n", "Dockerfile:2: ENV: requires at least one argument")
ERR_TEST (rejects_env_old_form_without_value, "FROM a\nENV NAME\n",
          "Dockerfile:2: ENV: must have two arguments (`ENV name value` or `ENV name=value`)")
ERR_TEST (rejects_label_pair_without_equals, "FROM a\nLABEL a=1 b\n",
          "Dockerfile:2: LABEL: missing `=` in `b`, expected name=value")
ERR_TEST (rejects_env_blank_name, "FROM a\nENV =x\n", "Dockerfile:2: ENV: names can not be blank")
ERR_TEST (rejects_arg_without_name, "ARG\nFROM a\n", "Dockerfile:1: ARG: requires at least one argument")
ERR_TEST (rejects_workdir_without_path, "FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR: requires exactly one argument")
ERR_TEST (rejects_expose_without_port, "FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE: requires at least one argument")
ERR_TEST (rejects_user_without_name, "FROM a\nUSER \n", "Dockerfile:2: USER: requires exactly one argument")
ERR_TEST (rejects_run_without_command, "FROM a\nRUN --network=none\n",
          "Dockerfile:2: RUN: requires at least one argument")
ERR_TEST (rejects_empty_volume, "FROM a\nVOLUME []\n", "Dockerfile:2: VOLUME: requires at least one argument")

Test (dockerfile, env_and_label_accept_both_forms_and_quotes)
{
  struct kiln_dockerfile *df = parse ("FROM a\nENV A 1 2\nENV B=\"x y\" C='z w' D=\\ e\n"
                                      "LABEL \"k q\"=v\nARG X Y=1\n");
  cr_assert_eq (df->ninstrs, 5);
  cr_expect_str_eq (df->instrs[1].args, "A 1 2");
  cr_expect_str_eq (df->instrs[2].args, "B=\"x y\" C='z w' D=\\ e");
  kiln_dockerfile_free (df);
}

Test (dockerfile, from_with_stage_name)
{
  struct kiln_dockerfile *df = parse ("FROM golang:1.22 as build-1.x\nFROM scratch\n");
  cr_expect_str_eq (df->instrs[0].args, "golang:1.22 as build-1.x");
  kiln_dockerfile_free (df);
}

/* ---- ordering and empty files ---- */

ERR_TEST (rejects_empty_file, "", "Dockerfile: file contains no instructions")
ERR_TEST (rejects_comment_only_file, "# syntax=x\n# hi\n\n", "Dockerfile: file contains no instructions")
ERR_TEST (rejects_file_without_from, "ARG A\nARG B=2\n", "Dockerfile: file contains no FROM instruction")
ERR_TEST (rejects_instruction_before_from, "ARG V=1\nRUN echo\nFROM a\n",
          "Dockerfile:2: RUN: instruction must be preceded by FROM")

Test (dockerfile, arg_may_precede_from)
{
  struct kiln_dockerfile *df = parse ("ARG TAG=latest\nFROM alpine:${TAG}\nARG X\n");
  cr_assert_eq (df->ninstrs, 3);
  cr_expect_eq (df->instrs[0].cmd, KILN_DF_ARG);
  cr_expect_str_eq (df->instrs[1].args, "alpine:${TAG}");
  kiln_dockerfile_free (df);
}

/* ---- HEALTHCHECK ---- */

Test (dockerfile, healthcheck_cmd_shell_and_exec_forms)
{
  struct kiln_dockerfile *df = parse ("FROM a\nHEALTHCHECK --interval=5s CMD curl -f http://x/\n"
                                      "HEALTHCHECK cmd [\"curl\", \"-f\"]\nHEALTHCHECK NONE\n");
  struct kiln_df_instr *in = df->instrs;
  cr_expect_not (in[1].json);
  cr_expect_str_eq (in[1].args, "CMD curl -f http://x/");
  cr_expect_str_eq (kiln_df_healthcheck_cmd (&in[1]), "curl -f http://x/");
  cr_expect_str_eq (kiln_df_instr_flag (&in[1], "interval", NULL), "5s");
  cr_assert (in[2].json);
  cr_expect_str_eq (in[2].argv[0], "curl");
  cr_expect_str_eq (in[2].argv[1], "-f");
  cr_expect_str_eq (kiln_df_healthcheck_cmd (&in[2]), "[\"curl\", \"-f\"]");
  cr_expect_null (kiln_df_healthcheck_cmd (&in[3]));
  cr_expect_null (kiln_df_healthcheck_cmd (&in[0]));
  kiln_dockerfile_free (df);
}

ERR_TEST (rejects_healthcheck_without_type, "FROM a\nHEALTHCHECK\n",
          "Dockerfile:2: HEALTHCHECK: requires at least one argument")
ERR_TEST (rejects_healthcheck_with_unknown_type, "FROM a\nHEALTHCHECK curl x\n",
          "Dockerfile:2: HEALTHCHECK: unknown type `curl` (expected CMD or NONE)")
ERR_TEST (rejects_healthcheck_none_with_arguments, "FROM a\nHEALTHCHECK NONE x\n",
          "Dockerfile:2: HEALTHCHECK: NONE takes no arguments")
ERR_TEST (rejects_healthcheck_cmd_without_command, "FROM a\nHEALTHCHECK CMD []\n",
          "Dockerfile:2: HEALTHCHECK: missing command after CMD")

/* ---- malformed fixtures shared with the CLI tests ---- */

static char *
read_file (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  cr_assert_not_null (f, "open %s", path);
  char *buf = kiln_xmalloc (1 << 16);
  *len = fread (buf, 1, (1 << 16) - 1, f);
  buf[*len] = '\0';
  fclose (f);
  return buf;
}

static void
check_bad_fixture (const char *dir, const char *file)
{
  char *path = kiln_xasprintf ("%s/%s", dir, file);
  char *errpath = kiln_xasprintf ("%.*s.err", (int) (strlen (path) - strlen (".Dockerfile")), path);
  size_t len, elen;
  char *text = read_file (path, &len);
  char *want = read_file (errpath, &elen);
  while (elen > 0 && want[elen - 1] == '\n')
    want[--elen] = '\0';
  cr_expect_gt (elen, 0, "%s is empty", errpath);
  cr_expect_null (strchr (want, '\n'), "%s must hold one line", errpath);

  struct kiln_dockerfile *df = NULL;
  struct kiln_error *err = NULL;
  int r = kiln_dockerfile_parse ("Dockerfile", text, len, &df, &err);
  cr_expect_lt (r, 0, "%s parsed but should fail", file);
  if (err)
    {
      cr_expect_eq (err->kind, KILN_E_PARSE, "%s", file);
      cr_expect_str_eq (err->msg, want, "%s", file);
    }
  kiln_error_free (&err);
  kiln_dockerfile_free (df);
  free (text);
  free (want);
  free (path);
  free (errpath);
}

Test (dockerfile, bad_fixtures_give_expected_messages)
{
  const char *dir = kiln_test_data ("dockerfile/bad");
  char *dirpath = kiln_xstrdup (dir);
  DIR *d = opendir (dirpath);
  struct dirent *de;
  int n = 0;

  cr_assert_not_null (d, "opendir %s", dirpath);
  while ((de = readdir (d)) != NULL)
    {
      if (!kiln_str_has_suffix (de->d_name, ".Dockerfile"))
        continue;
      check_bad_fixture (dirpath, de->d_name);
      n++;
    }
  closedir (d);
  free (dirpath);
  cr_expect_geq (n, 10, "only %d fixtures", n);
}
