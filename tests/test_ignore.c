/* test_ignore.c - .dockerignore matching, with moby/patternmatcher's test
 * tables (TestMatches, the filepath.Match table, the multi-pattern cases). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/ignore.h"

static struct kiln_ignore *
parse_ok (const char *text)
{
  struct kiln_ignore *ig = NULL;
  struct kiln_error *err = NULL;
  int r = kiln_ignore_parse (".dockerignore", text, strlen (text), &ig, &err);
  cr_assert_geq (r, 0, "parse `%s`: %s", text, err ? err->msg : "");
  return ig;
}

static bool
excluded (const char *patterns, const char *path)
{
  struct kiln_ignore *ig = parse_ok (patterns);
  bool r = kiln_ignore_excluded (ig, path);
  kiln_ignore_free (ig);
  return r;
}

struct match_case {
  const char *pattern, *path;
  bool match; /* the path or one of its parents matches */
};

/* patternmatcher TestMatches (MatchesOrParentMatches column). */
static const struct match_case matches_cases[] = {
  { "**", "file", true },
  { "**", "file/", true },
  { "**/", "file", true },
  { "**/", "file/", true },
  { "**", "/", true },
  { "**/", "/", true },
  { "**", "dir/file", true },
  { "**/", "dir/file", true },
  { "**", "dir/file/", true },
  { "**/", "dir/file/", true },
  { "**/**", "dir/file", true },
  { "**/**", "dir/file/", true },
  { "dir/**", "dir/file", true },
  { "dir/**", "dir/file/", true },
  { "dir/**", "dir/dir2/file", true },
  { "dir/**", "dir/dir2/file/", true },
  { "**/dir", "dir", true },
  { "**/dir", "dir/file", true },
  { "**/dir2/*", "dir/dir2/file", true },
  { "**/dir2/*", "dir/dir2/file/", true },
  { "**/dir2/**", "dir/dir2/dir3/file", true },
  { "**/dir2/**", "dir/dir2/dir3/file/", true },
  { "**file", "file", true },
  { "**file", "dir/file", true },
  { "**/file", "dir/file", true },
  { "**file", "dir/dir/file", true },
  { "**/file", "dir/dir/file", true },
  { "**/file*", "dir/dir/file", true },
  { "**/file*", "dir/dir/file.txt", true },
  { "**/file*txt", "dir/dir/file.txt", true },
  { "**/file*.txt", "dir/dir/file.txt", true },
  { "**/file*.txt*", "dir/dir/file.txt", true },
  { "**/**/*.txt", "dir/dir/file.txt", true },
  { "**/**/*.txt2", "dir/dir/file.txt", false },
  { "**/*.txt", "file.txt", true },
  { "**/**/*.txt", "file.txt", true },
  { "a**/*.txt", "a/file.txt", true },
  { "a**/*.txt", "a/dir/file.txt", true },
  { "a**/*.txt", "a/dir/dir/file.txt", true },
  { "a/*.txt", "a/dir/file.txt", false },
  { "a/*.txt", "a/file.txt", true },
  { "a/*.txt**", "a/file.txt", true },
  { "a[b-d]e", "ae", false },
  { "a[b-d]e", "ace", true },
  { "a[b-d]e", "aae", false },
  { "a[^b-d]e", "aze", true },
  { ".*", ".foo", true },
  { ".*", "foo", false },
  { "abc.def", "abcdef", false },
  { "abc.def", "abc.def", true },
  { "abc.def", "abcZdef", false },
  { "abc?def", "abcZdef", true },
  { "abc?def", "abcdef", false },
  { "**/foo/bar", "foo/bar", true },
  { "**/foo/bar", "dir/foo/bar", true },
  { "**/foo/bar", "dir/dir2/foo/bar", true },
  { "abc/**", "abc", false },
  { "abc/**", "abc/def", true },
  { "abc/**", "abc/def/ghi", true },
  { "**/.foo", ".foo", true },
  { "**/.foo", "bar.foo", false },
  { "a(b)c/def", "a(b)c/def", true },
  { "a(b)c/def", "a(b)c/xyz", false },
  { "a.|)$(}+{bc", "a.|)$(}+{bc", true },
  { "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
    true },
  { "dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true },
  { "a\\\\", "a\\", true },
  { "a\\*b", "a*b", true },
  /* the filepath.Match table patternmatcher borrows */
  { "abc", "abc", true },
  { "*", "abc", true },
  { "*c", "abc", true },
  { "a*", "a", true },
  { "a*", "abc", true },
  { "a*", "ab/c", true },
  { "a*/b", "abc/b", true },
  { "a*/b", "a/c/b", false },
  { "a*b*c*d*e*/f", "axbxcxdxe/f", true },
  { "a*b*c*d*e*/f", "axbxcxdxexxx/f", true },
  { "a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false },
  { "a*b*c*d*e*/f", "axbxcxdxexxx/fff", false },
  { "a*b?c*x", "abxbbxdbxebxczzx", true },
  { "a*b?c*x", "abxbbxdbxebxczzy", false },
  { "ab[c]", "abc", true },
  { "ab[b-d]", "abc", true },
  { "ab[e-g]", "abc", false },
  { "ab[^c]", "abc", false },
  { "ab[^b-d]", "abc", false },
  { "ab[^e-g]", "abc", true },
  { "a\\*b", "ab", false },
  { "a?b", "a☺b", true },
  { "a[^a]b", "a☺b", true },
  { "a???b", "a☺b", false },
  { "a[^a][^a][^a]b", "a☺b", false },
  { "[a-ζ]*", "α", true },
  { "*[a-ζ]", "A", false },
  { "a?b", "a/b", false },
  { "a*b", "a/b", false },
  { "[\\]a]", "]", true },
  { "[\\-]", "-", true },
  { "[x\\-]", "x", true },
  { "[x\\-]", "-", true },
  { "[x\\-]", "z", false },
  { "[\\-x]", "x", true },
  { "[\\-x]", "-", true },
  { "[\\-x]", "a", false },
  { "*x", "xxx", true },
};

Test (ignore, patternmatcher_match_table)
{
  for (size_t i = 0; i < sizeof matches_cases / sizeof matches_cases[0]; i++)
    {
      const struct match_case *c = &matches_cases[i];
      cr_expect_eq (excluded (c->pattern, c->path), c->match, "pattern `%s` path `%s`: want %d", c->pattern, c->path,
                    c->match);
    }
}

Test (ignore, rejects_malformed_patterns_naming_file_and_line)
{
  static const char *bad[] = { "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "!" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      struct kiln_ignore *ig = NULL;
      struct kiln_error *err = NULL;
      char *text = NULL;
      cr_assert (asprintf (&text, "# comment\nok\n%s\n", bad[i]) > 0);
      cr_expect_lt (kiln_ignore_parse ("ctx/.dockerignore", text, strlen (text), &ig, &err), 0, "`%s`", bad[i]);
      cr_expect_null (ig);
      if (err)
        {
          cr_expect_eq (err->kind, KILN_E_PARSE);
          cr_expect (strncmp (err->msg, "ctx/.dockerignore:3: ", 21) == 0, "%s", err->msg);
        }
      kiln_error_free (&err);
      free (text);
    }
}

Test (ignore, bad_pattern_message_quotes_the_pattern)
{
  struct kiln_ignore *ig = NULL;
  struct kiln_error *err = NULL;
  const char *text = "a\n  src/[abc  \n";
  cr_assert_lt (kiln_ignore_parse (".dockerignore", text, strlen (text), &ig, &err), 0);
  cr_expect_str_eq (err->msg, ".dockerignore:2: bad pattern `src/[abc`: bad or unterminated character class");
  kiln_error_free (&err);
}

struct multi_case {
  const char *patterns, *path;
  bool excluded;
};

Test (ignore, last_matching_pattern_wins)
{
  static const struct multi_case cases[] = {
    { "**\n!util/docker/web\n", "util/docker/web/foo", false },
    { "**\n!util/docker/web\nutil/docker/web/foo\n", "util/docker/web/foo", true },
    { "**\n!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl\n",
      "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false },
    { "**\n!dist/*.whl\n", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false },
    { "*.go\n", "fileutils.go", true },
    { "!fileutils.go\n*.go\n", "fileutils.go", true },
    { "*.go\n!fileutils.go\n", "fileutils.go", false },
    { "docs\n!docs/README.md\n", "docs/README.md", false },
    { "docs/\n!docs/README.md\n", "docs/README.md", false },
    { "docs/*\n!docs/README.md\n", "docs/README.md", false },
    { "docs\n!docs/README.md\n", "docs/other.md", true },
    { "*.go\n", ".", false },
    { "", "any/path/there", false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_eq (excluded (cases[i].patterns, cases[i].path), cases[i].excluded, "patterns `%s` path `%s`",
                  cases[i].patterns, cases[i].path);
}

Test (ignore, lines_are_trimmed_cleaned_and_comments_skipped)
{
  static const struct multi_case cases[] = {
    { "  docs  \n", "docs/x", true },
    { "# docs\n", "# docs", false },
    { "# docs\n", "docs", false },
    { "  # docs\n", "# docs", true }, /* only a '#' in column 1 starts a comment */
    { "/docs\n", "docs/a", true },
    { "./docs/../src//lib/\n", "src/lib/x.c", true },
    { "docs\r\n  !  docs/keep \r\n", "docs/keep", false },
    { "\xef\xbb\xbf"
      "docs\n",
      "docs", true },
    { "\n\n\t\nbuild\n", "build", true },
    { "build", "builder", false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_eq (excluded (cases[i].patterns, cases[i].path), cases[i].excluded, "patterns `%s` path `%s`",
                  cases[i].patterns, cases[i].path);
}

Test (ignore, empty_set_excludes_nothing)
{
  struct kiln_ignore *ig = kiln_ignore_new_empty ();
  cr_expect_not (kiln_ignore_excluded (ig, "a"));
  cr_expect_not (kiln_ignore_has_exceptions_under (ig, "a"));
  kiln_ignore_free (ig);
  kiln_ignore_free (NULL);
}

Test (ignore, exceptions_under_excluded_dir_force_descent)
{
  static const struct {
    const char *patterns, *dir;
    bool want;
  } cases[] = {
    { "docs\n!docs/README.md\n", "docs", true },
    { "docs\n!docs/README.md\n", "src", false },
    { "docs\n", "docs", false },
    { "a\n!a/b/c/keep\n", "a/b", true },
    { "a\n!a/b/c/keep\n", "a/x", false },
    { "a\n!**/keep\n", "a/b", true },
    { "a\n!*/keep\n", "a", true },
    { "a\n!*/keep\n", "a/b", false },
    { "a\n!a/*.md\n", "a", true },
    { "a\n!a/b*/x\n", "a/bc", true },
    { "a\n!a/b*/x\n", "a/cb", false },
    { "a\n!a/[bc]/x\n", "a/c", true },
    { "a\n!a/[bc]/x\n", "a/d", false },
    { "a\n!a/b/**\n", "a/b", true },
    { "a\n!a/b/**\n", "a/c", false },
    { "a\n!**.md\n", "a/deep", true },
    { "a\n!ab/x\n", "a", false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct kiln_ignore *ig = parse_ok (cases[i].patterns);
      cr_expect_eq (kiln_ignore_has_exceptions_under (ig, cases[i].dir), cases[i].want, "patterns `%s` dir `%s`",
                    cases[i].patterns, cases[i].dir);
      kiln_ignore_free (ig);
    }
}

/* "*a*a*a*a*a*a*b" against a long name took exponential time with the
 * backtracking matcher (C(n, 6) ways to split the a's); patternmatcher's Go
 * regexp is linear and so is kiln's matcher now.  Also a path of many long
 * components and a "**" pattern with many stars. */
Test (ignore, many_stars_against_long_names_are_fast, .timeout = 10)
{
  static char name[10001], deep[12000];
  memset (name, 'a', 10000);
  cr_assert_not (excluded ("*a*a*a*a*a*a*b\n", name));
  cr_assert_not (excluded ("**/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\n", name));
  cr_assert (excluded ("*a*a*a*a*a*a*a\n", name));
  size_t n = 0;
  for (int i = 0; i < 50; i++)
    {
      memset (deep + n, 'a', 200);
      n += 200;
      deep[n++] = '/';
    }
  deep[n - 1] = 'b';
  cr_assert (excluded ("**/*a*a*a*a*a*a*b\n", deep));
  cr_assert_not (excluded ("**/*a*a*a*a*a*a*c\n", deep));
  struct kiln_ignore *ig = parse_ok ("x\n!*a*a*a*a*a*a*b/**\n");
  cr_assert_not (kiln_ignore_has_exceptions_under (ig, name));
  name[9999] = 'b';
  cr_assert (kiln_ignore_has_exceptions_under (ig, name));
  kiln_ignore_free (ig);
}
