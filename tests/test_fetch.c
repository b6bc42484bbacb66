/* test_fetch.c - what ADD <url> derives from a URL (downloads: t_add_url). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include "kiln/fetch.h"

static void
check_name (const char *url, const char *want)
{
  char *got = kiln_fetch_filename (url);
  cr_assert_str_eq (got, want, "file name of %s", url);
  free (got);
}

Test (fetch, file_name_is_the_last_path_element_as_buildkit_does)
{
  check_name ("https://example.com/models/model.safetensors", "model.safetensors");
  check_name ("https://example.com/models/model.bin?download=1#frag", "model.bin");
  check_name ("https://example.com/dir/", "dir");
  check_name ("https://example.com/a%20b.txt", "a b.txt");
  check_name ("https://example.com/", "__unnamed__");
  check_name ("https://example.com", "__unnamed__");
  check_name ("https://example.com/x/..", "__unnamed__");
  check_name ("https://example.com/x/.", "__unnamed__");
}

Test (fetch, only_http_and_https_are_urls)
{
  cr_assert (kiln_fetch_is_url ("http://h/x"));
  cr_assert (kiln_fetch_is_url ("https://h/x"));
  cr_assert_not (kiln_fetch_is_url ("ftp://h/x"));
  cr_assert_not (kiln_fetch_is_url ("file:///etc/passwd"));
  cr_assert_not (kiln_fetch_is_url ("git@github.com:a/b.git"));
  cr_assert_not (kiln_fetch_is_url ("src/http://x"));
}

Test (fetch, redaction_drops_user_and_password_only)
{
  char *r = kiln_fetch_redact ("https://user:s3cret@example.com:8443/p/f.bin?x=1");
  cr_assert_null (strstr (r, "s3cret"), "%s", r);
  cr_assert_null (strstr (r, "user"), "%s", r);
  cr_assert (strstr (r, "example.com:8443/p/f.bin?x=1"), "%s", r);
  free (r);
  /* never echo what could not be parsed: it may hold a password */
  r = kiln_fetch_redact ("http://user:pw@[bad");
  cr_assert_str_eq (r, "(unparsable URL)");
  free (r);
}
