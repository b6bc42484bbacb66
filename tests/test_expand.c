/* test_expand.c - variable expansion, with BuildKit's envVarTest and
 * wordsTest vectors (frontend/dockerfile/shell) ported as tables. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/util.h"

/* A NULL-terminated "NAME=value" list; a later entry wins, like BuildEnvs. */
static const char *
env_lookup (void *ud, const char *name)
{
  const char *const *env = ud;
  const char *found = NULL;
  size_t n = strlen (name);
  for (; *env; env++)
    if (strncmp (*env, name, n) == 0 && (*env)[n] == '=')
      found = *env + n + 1;
  return found;
}

static const char *buildkit_env[] = { "PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL=", NULL };

struct word_case {
  const char *in;
  const char *want; /* NULL: must fail */
};

/* envVarTest, the lines tagged A (all platforms) and U (unix). */
static const struct word_case env_var_cases[] = {
  { "hello", "hello" },
  { "he'll'o", "hello" },
  { "he'llo", NULL },
  { "he\\'llo", "he'llo" },
  { "he\\\\'llo", NULL },
  { "abc\\tdef", "abctdef" },
  { "\"abc\\tdef\"", "abc\\tdef" },
  { "\"abc\\\\tdef\"", "abc\\tdef" },
  { "'abc\\tdef'", "abc\\tdef" },
  { "hello\\", "hello" },
  { "hello\\\\", "hello\\" },
  { "\"hello", NULL },
  { "\"hello\\\"", NULL },
  { "\"hel'lo\"", "hel'lo" },
  { "'hello", NULL },
  { "'hello\\'", "hello\\" },
  { "'hello\\there'", "hello\\there" },
  { "'hello\\\\there'", "hello\\\\there" },
  { "\"''\"", "''" },
  { "$.", "$." },
  { "he$1x", "hex" },
  { "he$.x", "he$.x" },
  { "he$pwd.", "he." },
  { "he$PWD", "he/home" },
  { "he\\$PWD", "he$PWD" },
  { "he\\\\$PWD", "he\\/home" },
  { "\"he\\$PWD\"", "he$PWD" },
  { "\"he\\\\$PWD\"", "he\\/home" },
  { "\\${}", "${}" },
  { "\\${}aaa", "${}aaa" },
  { "he\\${}", "he${}" },
  { "he\\${}xx", "he${}xx" },
  { "${}", NULL },
  { "${}xx", NULL },
  { "he${}", NULL },
  { "he${}xx", NULL },
  { "he${hi}", "he" },
  { "he${hi}xx", "hexx" },
  { "he${PWD}", "he/home" },
  { "he${.}", NULL },
  { "he${XXX:-000}xx", "he000xx" },
  { "he${PWD:-000}xx", "he/homexx" },
  { "he${XXX:-$PWD}xx", "he/homexx" },
  { "he${XXX:-${PWD:-yyy}}xx", "he/homexx" },
  { "he${XXX:-${YYY:-yyy}}xx", "heyyyxx" },
  { "he${XXX:YYY}", NULL },
  { "he${XXX?}", NULL },
  { "he${XXX:?}", NULL },
  { "he${PWD?}", "he/home" },
  { "he${PWD:?}", "he/home" },
  { "he${NULL?}", "he" },
  { "he${NULL:?}", NULL },
  { "he${XXX:+${PWD}}xx", "hexx" },
  { "he${PWD:+${XXX}}xx", "hexx" },
  { "he${PWD:+${SHELL}}xx", "hebashxx" },
  { "he${XXX:+000}xx", "hexx" },
  { "he${PWD:+000}xx", "he000xx" },
  { "'he${XX}'", "he${XX}" },
  { "\"he${PWD}\"", "he/home" },
  { "\"he'$PWD'\"", "he'/home'" },
  { "\"$PWD\"", "/home" },
  { "'$PWD'", "$PWD" },
  { "'\\$PWD'", "\\$PWD" },
  { "'\"hello\"'", "\"hello\"" },
  { "'he\\$PWD'", "he\\$PWD" },
  { "he${PWD", NULL },
  { "he${PWD:=000}xx", NULL },
  { "he${PWD:+${PWD}:}xx", "he/home:xx" },
  { "he${XXX:-\\$PWD:}xx", "he$PWD:xx" },
  { "he${XXX:-\\${PWD}z}xx", "he${PWDz}xx" },
  { "안녕하세요", "안녕하세요" },
  { "안'녕'하세요", "안녕하세요" },
  { "안'녕하세요", NULL },
  { "안녕\\'하세요", "안녕'하세요" },
  { "안\\\\'녕하세요", NULL },
  { "\"안녕\\t하세요\"", "안녕\\t하세요" },
  { "안녕하세요\\\\", "안녕하세요\\" },
  { "안녕${XXX:-${YYY:-yyy}}xx", "안녕yyyxx" },
  { "$KOREAN", "한국어" },
  { "안녕$KOREAN", "안녕한국어" },
  { "${{aaa}", NULL },
  { "${aaa}}", "}" },
  { "${aaa", NULL },
  { "${{aaa", NULL },
  { "${{aaa}}", NULL },
  { "${aaa}}}", "}}" },
};

static void
check_word (const struct word_case *c, char esc, const char **env)
{
  struct kiln_error *err = NULL;
  char *got = NULL;
  int r = kiln_expand_word (c->in, esc, env_lookup, env, &got, &err);
  if (c->want == NULL)
    {
      cr_expect_lt (r, 0, "`%s` should fail, got `%s`", c->in, got ? got : "");
      cr_expect (err != NULL && err->kind == KILN_E_PARSE, "`%s`: parse error expected", c->in);
    }
  else
    {
      cr_expect_geq (r, 0, "`%s` failed: %s", c->in, err ? err->msg : "");
      if (r >= 0)
        cr_expect_str_eq (got, c->want, "`%s`", c->in);
    }
  free (got);
  kiln_error_free (&err);
}

Test (expand, buildkit_env_var_vectors)
{
  for (size_t i = 0; i < sizeof env_var_cases / sizeof env_var_cases[0]; i++)
    check_word (&env_var_cases[i], '\\', buildkit_env);
}

/* Patterns, as in BuildKit's TestProcessWithMatches. */
Test (expand, trims_and_replaces_patterns)
{
  static const char *env[] = {
    "FOO=xxyy",        "BAR=x",       "SPECIAL=()[]{}^$.*?|\\x", "STARS=xx**", "MANY=a***yy*",
    "P=/foo*/*/*.txt", "NEEDLE=\\*/", "T=/tmp/tmp/bar.txt",      "TMP=/tmp",   NULL
  };
  static const struct word_case cases[] = {
    { "${FOO#*x*y}", "y" },
    { "${FOO#*}", "xxyy" },
    { "${FOO#$BAR}", "xyy" },
    { "${FOO#}", "xxyy" },
    { "${FOO##*x}", "yy" },
    { "${FOO%y}", "xxy" },
    { "${FOO%%y*}", "xx" },
    { "${STARS%%\\**}", "xx" },
    { "${MANY%%\\**\\*}", "a" },
    { "${SPECIAL#()[]{\\}^$.\\*\\?|\\\\}", "x" },
    { "${ABC:-.}${FOO%x}${ABC:-.}", ".xxyy." },
    { "${P/$NEEDLE/.} - ${P//$NEEDLE/.}", "/foo.*/*.txt - /foo..*.txt" },
    { "${T/$TMP/} - ${T//$TMP/}", "/tmp/bar.txt - /bar.txt" },
    { "${T//\\//\\/}", "\\/tmp\\/tmp\\/bar.txt" },
    { "${FOO///}", "xxyy" },
    { "${FOO//ww}", NULL },
    { "${FOO//}", NULL },
    { "${FOO#\\x}", NULL },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_word (&cases[i], '\\', env);
}

Test (expand, backtick_escape_char)
{
  static const struct word_case cases[] = {
    { "he`$PWD", "he$PWD" }, { "c:\\dir\\$PWD", "c:\\dir\\/home" }, { "\"a`\"b\"", "a\"b" }, { "'a`b'", "a`b" },
    { "x``y", "x`y" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_word (&cases[i], '`', buildkit_env);
}

Test (expand, required_variable_error_names_variable_and_message)
{
  static const char *set[] = { "VAR=plain", "ARG=x", NULL };
  static const char *empty[] = { "VAR=", "ARG=x", NULL };
  static const char *unset[] = { "ARG=x", NULL };
  struct kiln_error *err = NULL;
  char *got = NULL;

  cr_assert_geq (kiln_expand_word ("${VAR:?message here$ARG}", '\\', env_lookup, set, &got, &err), 0);
  cr_expect_str_eq (got, "plain");
  free (got);

  cr_assert_lt (kiln_expand_word ("${VAR:?message here$ARG}", '\\', env_lookup, empty, &got, &err), 0);
  cr_expect_str_eq (err->msg, "expand `${VAR:?message here$ARG}`: `VAR`: message herex");
  kiln_error_free (&err);

  cr_assert_lt (kiln_expand_word ("${VAR?message here$ARG}", '\\', env_lookup, unset, &got, &err), 0);
  cr_expect (strstr (err->msg, "message herex") != NULL, "%s", err->msg);
  kiln_error_free (&err);

  cr_assert_geq (kiln_expand_word ("${VAR?message}", '\\', env_lookup, empty, &got, &err), 0);
  cr_expect_str_eq (got, "");
  free (got);

  cr_assert_lt (kiln_expand_word ("${VAR:?}", '\\', env_lookup, unset, &got, &err), 0);
  cr_expect_str_eq (err->msg, "expand `${VAR:?}`: `VAR`: is not allowed to be unset");
  kiln_error_free (&err);
}

Test (expand, errors_name_the_offending_text)
{
  static const struct {
    const char *in, *msg;
  } cases[] = {
    { "a${v:x}b", "expand `a${v:x}b`: bad substitution `${v:x}`" },
    { "he${PWD", "expand `he${PWD`: missing `}` in `${PWD`" },
    { "x${a:-b", "expand `x${a:-b`: missing `}` in `${a:-b`" },
    { "it's", "expand `it's`: unterminated single quote at `'s`" },
    { "say \"hi", "expand `say \"hi`: unterminated double quote at `\"hi`" },
    { "${}", "expand `${}`: bad substitution `${}`" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct kiln_error *err = NULL;
      char *got = NULL;
      cr_expect_lt (kiln_expand_word (cases[i].in, '\\', env_lookup, buildkit_env, &got, &err), 0);
      if (err)
        cr_expect_str_eq (err->msg, cases[i].msg);
      kiln_error_free (&err);
    }
}

Test (expand, word_does_not_split_and_keeps_blanks)
{
  static const char *env[] = { "SP=a  b", NULL };
  struct kiln_error *err = NULL;
  char *got = NULL;
  cr_assert_geq (kiln_expand_word ("  x $SP  y ", '\\', env_lookup, env, &got, &err), 0);
  cr_expect_str_eq (got, "  x a  b  y ");
  free (got);
}

Test (expand, lookup_callback_sees_each_name)
{
  static const char *env[] = { "A=1", NULL };
  struct kiln_error *err = NULL;
  char *got = NULL;
  cr_assert_geq (kiln_expand_word ("$A-${B:-$C}-'$D'", '\\', env_lookup, env, &got, &err), 0);
  cr_expect_str_eq (got, "1--$D");
  free (got);
  cr_assert_geq (kiln_expand_word ("$A", '\\', NULL, NULL, &got, &err), 0);
  cr_expect_str_eq (got, "", "a NULL lookup means everything is unset");
  free (got);
}

/* wordsTest: each case runs with the ENV lines seen so far. */
struct words_case {
  const char *in;
  const char *want; /* words joined by ','; "error" for a failure */
  int nenv;         /* how many entries of words_env are set */
};

static const char *words_env[] = { "hi=hi", "space=abc  def", "leading=  ab c", "trailing=ab c   ", NULL };

static const struct words_case words_cases[] = {
  { "hello", "hello", 0 },
  { "hello${hi}bye", "hellobye", 0 },
  { "hello${hi}bye", "hellohibye", 1 },
  { "hello${space}bye", "helloabc,defbye", 2 },
  { "hello\"${space}\"bye", "helloabc  defbye", 2 },
  { "hello \"${space}\"bye", "hello,abc  defbye", 2 },
  { "hello${leading}def", "hello,ab,cdef", 3 },
  { "hello\"${leading}\" def", "hello  ab c,def", 3 },
  { "hello\"${leading}\"", "hello  ab c", 3 },
  { "hello${leading}", "hello,ab,c", 3 },
  { "hello${trailing}", "helloab,c", 4 },
  { "hello${trailing}d", "helloab,c,d", 4 },
  { "hello\"${trailing}\"d", "helloab c   d", 4 },
  { "hel\"lo${trailing}\"", "helloab c   ", 4 },
  { "hello\" there  \"", "hello there  ", 4 },
  { "hello there     ", "hello,there", 4 },
  { "hello\\ there", "hello there", 4 },
  { "hello\" there", "error", 4 },
  { "hello\\\" there", "hello\",there", 4 },
  { "hello\"\\\\there\"", "hello\\there", 4 },
  { "hello\"\\there\"", "hello\\there", 4 },
  { "hello'\\\\there'", "hello\\\\there", 4 },
  { "hello'\\there'", "hello\\there", 4 },
  { "hello'$there'", "hello$there", 4 },
  /* kiln: a quoted empty string is a word (as in sh) */
  { "a \"\" b ''", "a,,b,", 0 },
  { "  \t ", "", 0 },
  { "$unset", "", 0 },
};

static char *
join_words (char **w)
{
  struct kiln_buf b = KILN_BUF_INIT;
  for (size_t i = 0; w[i]; i++)
    {
      if (i)
        kiln_buf_addch (&b, ',');
      kiln_buf_adds (&b, w[i]);
    }
  return kiln_buf_detach (&b, NULL);
}

Test (expand, buildkit_words_vectors)
{
  for (size_t i = 0; i < sizeof words_cases / sizeof words_cases[0]; i++)
    {
      const struct words_case *c = &words_cases[i];
      const char *env[8] = { NULL };
      struct kiln_error *err = NULL;
      char **words = NULL;
      for (int k = 0; k < c->nenv; k++)
        env[k] = words_env[k];
      int r = kiln_expand_words (c->in, '\\', env_lookup, env, &words, &err);
      char *got = r < 0 ? kiln_xstrdup ("error") : join_words (words);
      cr_expect_str_eq (got, c->want, "`%s`", c->in);
      free (got);
      kiln_strv_free (words);
      kiln_error_free (&err);
    }
}

Test (expand, words_returns_empty_vector_not_null)
{
  struct kiln_error *err = NULL;
  char **words = NULL;
  cr_assert_geq (kiln_expand_words ("   ", '\\', NULL, NULL, &words, &err), 0);
  cr_assert_not_null (words);
  cr_expect_null (words[0]);
  kiln_strv_free (words);
}

/* COPY/ADD arguments: split raw, then each expanded alone (BuildKit
 * parseStringsWhitespaceDelimited + ProcessWord). */
Test (expand, split_words_raw_keeps_quotes_escapes_and_braces)
{
  static const struct {
    const char *in, *want;
  } cases[] = {
    { "testfile $empty", "testfile|$empty" },
    { "  a\t b  ", "a|b" },
    { "\"my file\" 'x y' /d/", "\"my file\"|'x y'|/d/" },
    { "${v:-a b} c", "${v:-a b}|c" },
    { "a\\ b c", "a\\ b|c" },
    { "\"unterminated x", "\"unterminated x" },
    { "   ", "" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      char **w = NULL;
      cr_assert_eq (kiln_split_words_raw (cases[i].in, '\\', &w), 0);
      struct kiln_buf b = KILN_BUF_INIT;
      for (size_t k = 0; w[k]; k++)
        {
          if (k)
            kiln_buf_addch (&b, '|');
          kiln_buf_adds (&b, w[k]);
        }
      char *got = kiln_buf_detach (&b, NULL);
      cr_expect_str_eq (got, cases[i].want, "`%s`", cases[i].in);
      free (got);
      kiln_strv_free (w);
    }
}

/* COPY <<EOF bodies: quotes are text, the backslash escapes (BuildKit
 * testCopyHeredocSpecialSymbols, testHeredocVarSubstitution). */
Test (expand, heredoc_keeps_quotes_and_processes_backslashes)
{
  static const char *env[] = { "name=world", NULL };
  static const struct {
    const char *in, *want;
  } cases[] = {
    { "\"quotes in file\"\n", "\"quotes in file\"\n" },
    { "\\\n", "\n" },
    { "\\\\\n", "\\\n" },
    { "\\$\n", "$\n" },
    { "Hello ${name}!\n", "Hello world!\n" },
    { "Hello '${name}'!\n", "Hello 'world'!\n" },
    { "Hello \"${name}\"!\n", "Hello \"world\"!\n" },
    { "${unset:-it's}\n", "it's\n" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct kiln_error *err = NULL;
      char *got = NULL;
      cr_assert_eq (kiln_expand_heredoc (cases[i].in, env_lookup, env, &got, &err), 0, "`%s`", cases[i].in);
      cr_expect_str_eq (got, cases[i].want, "`%s`", cases[i].in);
      free (got);
    }
}

static char *
expand_ok (const char *word, const char **env)
{
  struct kiln_error *err = NULL;
  char *got = NULL;
  cr_assert_geq (kiln_expand_word (word, '\\', env_lookup, env, &got, &err), 0, "`%.80s`: %s", word,
                 err ? err->msg : "");
  return got;
}

static struct kiln_error *
expand_err (const char *word, const char **env)
{
  struct kiln_error *err = NULL;
  char *got = NULL;
  cr_assert_lt (kiln_expand_word (word, '\\', env_lookup, env, &got, &err), 0, "`%.80s` expanded", word);
  cr_assert_eq (err->kind, KILN_E_PARSE, "%s", err->msg);
  return err;
}

/* ${V//P/x} with P = *a*a*a*a*b on 100 characters tried every start, every end and
 * every split of the a's (exponential); the matcher is linear now, and so
 * is a pattern with 64 stars (BuildKit's regexp is linear too). */
Test (expand, patterns_with_many_stars_are_fast, .timeout = 10)
{
  char v[2 + 10000 + 1] = "V=";
  memset (v + 2, 'a', 10000);
  v[2 + 10000] = '\0';
  const char *env[] = { v, NULL };
  kiln_autofree char *r1 = expand_ok ("${V//*a*a*a*a*b/x}", env);
  cr_assert_str_eq (r1, v + 2);
  kiln_autofree char *r2 = expand_ok ("${V#*a*a*a*a*b}${V%*a*a*a*a*b}${V/*a*a*a*a*b/x}", env);
  cr_assert_eq (strlen (r2), 30000);
  struct kiln_buf p = KILN_BUF_INIT;
  kiln_buf_adds (&p, "${V//");
  for (int i = 0; i < 64; i++)
    kiln_buf_adds (&p, "*a");
  kiln_buf_adds (&p, "*b/x}");
  kiln_autofree char *r3 = expand_ok (p.buf, env);
  cr_assert_str_eq (r3, v + 2);
  kiln_buf_release (&p);
  kiln_autofree char *r4 = expand_ok ("${V//*a/x}", env);
  cr_assert_str_eq (r4, "x", "one longest match");
}

/* Go's Regexp.ReplaceAllString and trims on characters, as BuildKit runs
 * them (shell/lex.go convertShellPatternToRegex, trimSuffix): '?' is one
 * UTF-8 character, an empty match after a match is not replaced, and '*'
 * and '?' do not match a newline (no (?s) flag). */
Test (expand, patterns_follow_go_regexp_semantics)
{
  static const char *env[] = { "U=a\xc3\xa9", "AB=ab", "NL=a\nb", "E=", NULL };
  static const struct word_case cases[] = {
    { "${U%?}", "a" },        { "${U#??}", "" },         { "${U//?/x}", "xx" }, { "${U/\xc3\xa9/e}", "ae" },
    { "${AB//*/x}", "x" },    { "${AB///-}", "-a-b-" },  { "${AB/#/-}", "ab" }, { "${E///-}", "-" },
    { "${AB//b*/x}", "ax" },  { "${NL//*/x}", "x\nx" },  { "${NL##*}", "\nb" }, { "${NL%%*}", "a\n" },
    { "${NL//?/x}", "x\nx" }, { "${NL/a?b/x}", "a\nb" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_word (&cases[i], '\\', env);
}

/* ${E:-${D//?/${E:-...}}} with E unset: every level multiplies the size by
 * len(D) (64^6 * 2 bytes here); the old code went on until memory ran out.
 * The budget counts what every substitution produced, a default thrown
 * away too, and stops at 1 MiB with an error. */
Test (expand, amplification_stops_at_the_output_budget, .timeout = 10)
{
  static const char *env[] = { "E=set", "D=0123456789012345678901234567890123456789012345678901234567890123", NULL };
  struct kiln_buf w = KILN_BUF_INIT;
  for (int i = 0; i < 6; i++)
    kiln_buf_adds (&w, "${U:-${D//?/");
  kiln_buf_adds (&w, "xy");
  for (int i = 0; i < 6; i++)
    kiln_buf_adds (&w, "}}");
  struct kiln_error *err = expand_err (w.buf, env);
  cr_assert (strstr (err->msg, "expansion larger than 1048576 bytes"), "%s", err->msg);
  kiln_error_free (&err);
  /* E set: the defaults are computed and thrown away, each level is
   * small, but what they produced in all is counted */
  kiln_buf_reset (&w);
  for (int i = 0; i < 3000; i++)
    kiln_buf_adds (&w, "${E:-${D//?/${U:-${D//?/xy}}}}");
  err = expand_err (w.buf, env);
  cr_assert (strstr (err->msg, "expansion larger than 1048576 bytes"), "%s", err->msg);
  kiln_error_free (&err);
  kiln_buf_release (&w);
  /* two levels stay far below */
  kiln_autofree char *ok = expand_ok ("${E:-${D//?/${U:-${D//?/xy}}}}", env);
  cr_assert_str_eq (ok, "set");
  kiln_autofree char *ok2 = expand_ok ("${U:-${D//?/${U:-${D//?/x}}}}", env);
  cr_assert_eq (strlen (ok2), 64 * 64);
}

Test (expand, output_budget_counts_values_but_not_literal_text)
{
  size_t big = (1u << 20) - 100;
  char *v = malloc (big + 3);
  memcpy (v, "B=", 2);
  memset (v + 2, 'q', big);
  v[2 + big] = '\0';
  const char *env[] = { v, NULL };
  kiln_autofree char *one = expand_ok ("${B}", env);
  cr_assert_eq (strlen (one), big);
  struct kiln_error *err = expand_err ("$B$B", env);
  cr_assert (strstr (err->msg, "expansion larger than 1048576 bytes"), "%s", err->msg);
  kiln_error_free (&err);
  /* a heredoc's own text is not expansion output */
  char *body = malloc (3u << 20);
  memset (body, 'h', (3u << 20) - 1);
  body[(3u << 20) - 1] = '\0';
  char *out = NULL;
  cr_assert_eq (kiln_expand_heredoc (body, env_lookup, env, &out, &err), 0);
  cr_assert_eq (strlen (out), (3u << 20) - 1);
  free (out);
  free (body);
  free (v);
}

Test (expand, nesting_depth_is_limited)
{
  static const char *env[] = { NULL };
  struct kiln_buf w = KILN_BUF_INIT;
  for (int i = 0; i < 64; i++)
    kiln_buf_adds (&w, "${a:-");
  kiln_buf_adds (&w, "x");
  for (int i = 0; i < 64; i++)
    kiln_buf_adds (&w, "}");
  kiln_autofree char *ok = expand_ok (w.buf, env);
  cr_assert_str_eq (ok, "x");
  kiln_buf_reset (&w);
  for (int i = 0; i < 100000; i++)
    kiln_buf_adds (&w, "${a:-\"");
  struct kiln_error *err = expand_err (w.buf, env);
  cr_assert (strstr (err->msg, "nested more than 64 deep"), "%s", err->msg);
  kiln_error_free (&err);
  kiln_buf_release (&w);
}

Test (expand, pattern_matching_work_is_limited, .timeout = 10)
{
  size_t n = 200000;
  char *v = malloc (n + 3);
  memcpy (v, "V=", 2);
  memset (v + 2, 'a', n);
  v[2 + n] = '\0';
  const char *env[] = { v, NULL };
  struct kiln_buf w = KILN_BUF_INIT;
  kiln_buf_adds (&w, "${V//");
  for (int i = 0; i < 200; i++)
    kiln_buf_adds (&w, "*a");
  kiln_buf_adds (&w, "*b/x}");
  struct kiln_error *err = expand_err (w.buf, env);
  cr_assert (strstr (err->msg, "more than 33554432 matching steps"), "%s", err->msg);
  kiln_error_free (&err);
  kiln_buf_release (&w);
  free (v);
}
