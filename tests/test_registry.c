/* test_registry.c - the pure parts of the registry client: challenges,
 * credentials files and helpers, platform selection, document kinds,
 * header parsers, URL handling, caps and error text. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../src/registry/registry-internal.h"
#include "helpers.h"
#include "kiln/auth.h"
#include "kiln/fs.h"
#include "kiln/util.h"

static char *
tmp_file (const char *name, const char *content, mode_t mode)
{
  char *p = kiln_xasprintf ("%s/%s", kiln_test_tmpdir (), name);
  FILE *f = fopen (p, "w");
  cr_assert (f);
  fputs (content, f);
  fclose (f);
  chmod (p, mode);
  return p;
}

/* ---- challenges ---- */

Test (registry, parses_bearer_challenge_with_quoted_comma_scope)
{
  struct kiln_registry_challenge c;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_registry_challenge_parse ("Bearer realm=\"https://auth.example/token\",service=\"reg.example\","
                                               "scope=\"repository:a/b:pull,push\",error=\"insufficient_scope\"",
                                               &c, &err),
                0);
  cr_assert_eq (c.scheme, KILN_REG_AUTH_BEARER);
  cr_assert_str_eq (c.realm, "https://auth.example/token");
  cr_assert_str_eq (c.service, "reg.example");
  cr_assert_str_eq (c.scope, "repository:a/b:pull,push");
  cr_assert_str_eq (c.error, "insufficient_scope");
  kiln_registry_challenge_clear (&c);
}

Test (registry, parses_basic_challenge_case_insensitively)
{
  struct kiln_registry_challenge c;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_registry_challenge_parse ("basic Realm=\"Registry Realm\"", &c, &err), 0);
  cr_assert_eq (c.scheme, KILN_REG_AUTH_BASIC);
  cr_assert_str_eq (c.realm, "Registry Realm");
  kiln_registry_challenge_clear (&c);
}

Test (registry, rejects_unknown_scheme_and_bearer_without_realm)
{
  struct kiln_registry_challenge c;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_registry_challenge_parse ("Negotiate abc", &c, &err), 0);
  cr_assert_eq (err->kind, KILN_E_AUTH);
  kiln_error_free (&err);
  cr_assert_lt (kiln_registry_challenge_parse ("Bearer service=\"x\"", &c, &err), 0);
  kiln_error_free (&err);
}

Test (registry, basic_header_is_base64_of_user_colon_password)
{
  char *h = kiln_registry_basic_header ("user", "pass");
  cr_assert_str_eq (h, "Basic dXNlcjpwYXNz");
  free (h);
}

Test (registry, token_response_accepts_access_token_and_raises_short_expiry)
{
  char *t = NULL;
  long exp = 0;
  struct kiln_error *err = NULL;
  const char *a = "{\"access_token\":\"abc\",\"expires_in\":5}";
  cr_assert_eq (kiln_registry_token_parse (a, strlen (a), &t, &exp, &err), 0);
  cr_assert_str_eq (t, "abc");
  cr_assert_eq (exp, 60);
  free (t);
  const char *b = "{\"token\":\"tok\",\"access_token\":\"other\",\"expires_in\":300}";
  cr_assert_eq (kiln_registry_token_parse (b, strlen (b), &t, &exp, &err), 0);
  cr_assert_str_eq (t, "tok");
  cr_assert_eq (exp, 300);
  free (t);
  const char *c = "{\"expires_in\":300}";
  cr_assert_lt (kiln_registry_token_parse (c, strlen (c), &t, &exp, &err), 0);
  kiln_error_free (&err);
}

/* ---- credentials ---- */

Test (registry, auth_file_decodes_auth_and_matches_docker_hub_url_key, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  /* dXNlcjpwYTpzcw== is "user:pa:ss": only the first colon splits */
  char *p = tmp_file ("config.json",
                      "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"dXNlcjpwYTpzcw==\"},"
                      "\"localhost:5000\":{\"identitytoken\":\"idt\"}}}",
                      0600);
  struct kiln_auth_cred c = { 0 };
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_auth_lookup_file (p, "docker.io", &c, &err), 1);
  cr_assert_str_eq (c.username, "user");
  cr_assert_str_eq (c.password, "pa:ss");
  kiln_auth_cred_clear (&c);
  cr_assert_eq (kiln_auth_lookup_file (p, "localhost:5000", &c, &err), 1);
  cr_assert_null (c.username);
  cr_assert_str_eq (c.identity_token, "idt");
  kiln_auth_cred_clear (&c);
  cr_assert_eq (kiln_auth_lookup_file (p, "quay.io", &c, &err), 0);
  free (p);
}

Test (registry, auth_file_missing_is_anonymous_and_broken_is_an_error, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_auth_cred c = { 0 };
  struct kiln_error *err = NULL;
  char *missing = kiln_xasprintf ("%s/nope.json", kiln_test_tmpdir ());
  cr_assert_eq (kiln_auth_lookup_file (missing, "h", &c, &err), 0);
  char *bad = tmp_file ("bad.json", "{\"auths\":{\"h\":{\"auth\":\"***\"}}}", 0600);
  cr_assert_lt (kiln_auth_lookup_file (bad, "h", &c, &err), 0);
  cr_assert_eq (err->kind, KILN_E_PARSE);
  kiln_error_free (&err);
  free (missing), free (bad);
}

Test (registry, cred_helper_gets_server_url_on_stdin_and_secret_on_stdout, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  char *bin = kiln_xasprintf ("%s/docker-credential-kt", kiln_test_tmpdir ());
  char *log = kiln_xasprintf ("%s/helper.log", kiln_test_tmpdir ());
  char *script = kiln_xasprintf ("#!/bin/sh\nread url\necho \"$1 $url\" > %s\n"
                                 "[ \"$url\" = reg.example ] || { echo credentials not found; exit 1; }\n"
                                 "echo '{\"ServerURL\":\"reg.example\",\"Username\":\"bob\",\"Secret\":\"s3cret\"}'\n",
                                 log);
  free (tmp_file ("docker-credential-kt", script, 0755));
  char *cfg = tmp_file ("c.json", "{\"credHelpers\":{\"reg.example\":\"kt\"},\"credsStore\":\"kt\"}", 0600);
  char *path = kiln_xasprintf ("%s:%s", kiln_test_tmpdir (), getenv ("PATH"));
  setenv ("PATH", path, 1);
  struct kiln_auth_cred c = { 0 };
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_auth_lookup_file (cfg, "reg.example", &c, &err), 1, "%s", err ? err->msg : "");
  cr_assert_str_eq (c.username, "bob");
  cr_assert_str_eq (c.password, "s3cret");
  kiln_auth_cred_clear (&c);
  struct kiln_buf b = KILN_BUF_INIT;
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, log, 4096, &b, &err), 0);
  cr_assert_str_eq (b.buf, "get reg.example\n");
  kiln_buf_release (&b);
  /* credsStore answers "credentials not found" for other hosts: anonymous */
  cr_assert_eq (kiln_auth_lookup_file (cfg, "other.example", &c, &err), 0);
  free (bin), free (log), free (script), free (cfg), free (path);
}

Test (registry, login_file_is_0600_roundtrips_and_logout_removes, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  char *p = kiln_xasprintf ("%s/sub/dir/auth.json", kiln_test_tmpdir ());
  struct kiln_auth_cred c = { 0 };
  struct kiln_error *err = NULL;
  struct stat sb;
  cr_assert_eq (kiln_auth_store (p, "localhost:5000", "alice", "pw", &err), 0);
  cr_assert_eq (stat (p, &sb), 0);
  cr_assert_eq (sb.st_mode & 07777, 0600);
  cr_assert_eq (kiln_auth_lookup_file (p, "localhost:5000", &c, &err), 1);
  cr_assert_str_eq (c.username, "alice");
  cr_assert_str_eq (c.password, "pw");
  kiln_auth_cred_clear (&c);
  cr_assert_eq (kiln_auth_remove (p, "localhost:5000", &err), 0);
  cr_assert_eq (kiln_auth_lookup_file (p, "localhost:5000", &c, &err), 0);
  cr_assert_lt (kiln_auth_remove (p, "localhost:5000", &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  free (p);
}

Test (registry, normalizes_auth_keys)
{
  const char *cases[][2] = { { "https://index.docker.io/v1/", "docker.io" },
                             { "http://h:5000/v2/", "h:5000" },
                             { "registry-1.docker.io", "docker.io" },
                             { "quay.io/ns", "quay.io/ns" } };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      char *k = kiln_auth_normalize_key (cases[i][0]);
      cr_assert_str_eq (k, cases[i][1]);
      free (k);
    }
}

/* ---- platforms and documents ---- */

static struct kiln_descriptor
entry (const char *os, const char *arch, const char *variant)
{
  struct kiln_descriptor d = { 0 };
  d.platform.os = (char *) os, d.platform.architecture = (char *) arch, d.platform.variant = (char *) variant;
  return d;
}

Test (registry, selects_platform_with_arm64_v8_default_variant)
{
  struct kiln_descriptor es[] = { entry ("unknown", "unknown", NULL), entry ("linux", "amd64", NULL),
                                  entry ("linux", "arm64", NULL), entry ("linux", "arm", "v7") };
  struct kiln_index ix = { .manifests = es, .nmanifests = 4 };
  char l[] = "linux", a64[] = "arm64", v8[] = "v8", a[] = "amd64", arm[] = "arm", v6[] = "v6", win[] = "windows";
  struct kiln_platform w = { l, a64, v8 };
  cr_assert_eq (kiln_registry_platform_select (&ix, &w), 2);
  w = (struct kiln_platform){ l, a, NULL };
  cr_assert_eq (kiln_registry_platform_select (&ix, &w), 1);
  w = (struct kiln_platform){ l, arm, v6 };
  cr_assert_eq (kiln_registry_platform_select (&ix, &w), -1);
  w = (struct kiln_platform){ win, a, NULL };
  cr_assert_eq (kiln_registry_platform_select (&ix, &w), -1);
}

Test (registry, parses_platform_strings)
{
  struct kiln_platform p;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_registry_platform_parse ("linux/arm/v7", &p, &err), 0);
  cr_assert_str_eq (p.os, "linux");
  cr_assert_str_eq (p.architecture, "arm");
  cr_assert_str_eq (p.variant, "v7");
  free (p.os), free (p.architecture), free (p.variant);
  const char *bad[] = { "linux", "linux/", "/amd64", "a/b/c/d", "a//c" };
  for (size_t i = 0; i < 5; i++)
    {
      cr_assert_lt (kiln_registry_platform_parse (bad[i], &p, &err), 0, "%s", bad[i]);
      kiln_error_free (&err);
    }
}

Test (registry, rejects_ambiguous_and_mistyped_documents)
{
  enum kiln_registry_doc k;
  char *mt = NULL;
  struct kiln_error *err = NULL;
  const char *amb = "{\"mediaType\":\"" KILN_MT_OCI_INDEX "\",\"manifests\":[],\"layers\":[]}";
  cr_assert_lt (kiln_registry_doc_kind (amb, strlen (amb), NULL, &k, &mt, &err), 0);
  kiln_error_free (&err);
  const char *wrong = "{\"mediaType\":\"" KILN_MT_OCI_MANIFEST "\",\"manifests\":[]}";
  cr_assert_lt (kiln_registry_doc_kind (wrong, strlen (wrong), NULL, &k, &mt, &err), 0);
  kiln_error_free (&err);
  const char *unk = "{\"mediaType\":\"text/plain\",\"layers\":[]}";
  cr_assert_lt (kiln_registry_doc_kind (unk, strlen (unk), NULL, &k, &mt, &err), 0);
  kiln_error_free (&err);
  /* no mediaType in the body: the Content-Type (parameters dropped) decides */
  const char *bare = "{\"schemaVersion\":2,\"manifests\":[]}";
  cr_assert_eq (kiln_registry_doc_kind (bare, strlen (bare), KILN_MT_OCI_INDEX "; charset=utf-8", &k, &mt, &err), 0);
  cr_assert_eq (k, KILN_REG_DOC_INDEX);
  cr_assert_str_eq (mt, KILN_MT_OCI_INDEX);
  free (mt);
  const char *dl = "{\"mediaType\":\"" KILN_MT_DOCKER_MANIFEST "\",\"config\":{},\"layers\":[]}";
  cr_assert_eq (kiln_registry_doc_kind (dl, strlen (dl), "text/plain", &k, &mt, &err), 0);
  cr_assert_eq (k, KILN_REG_DOC_MANIFEST);
  free (mt);
}

/* ---- headers, URLs, retries ---- */

Test (registry, content_range_must_be_strict)
{
  int64_t s, e, t;
  cr_assert_eq (kiln_registry_parse_content_range ("bytes 100-199/200", &s, &e, &t), 0);
  cr_assert (s == 100 && e == 199 && t == 200);
  const char *bad[] = { "bytes 100-199/*",   "bytes 100-200/200", "100-199/200",
                        "bytes 200-100/300", "bytes 1-2/3 ",      "bytes -1-2/3" };
  for (size_t i = 0; i < 6; i++)
    cr_assert_lt (kiln_registry_parse_content_range (bad[i], &s, &e, &t), 0, "%s", bad[i]);
  cr_assert_lt (kiln_registry_parse_content_range (NULL, &s, &e, &t), 0);
}

Test (registry, upload_range_gives_next_offset)
{
  int64_t n;
  cr_assert_eq (kiln_registry_parse_upload_range ("0-1023", 4096, &n), 0);
  cr_assert_eq (n, 1024);
  cr_assert_eq (kiln_registry_parse_upload_range ("bytes=0-0", 4096, &n), 0);
  cr_assert_eq (n, 1);
  cr_assert_eq (kiln_registry_parse_upload_range ("0-4095", 4096, &n), 0);
  cr_assert_eq (n, 4096);
  cr_assert_lt (kiln_registry_parse_upload_range ("5-10", 4096, &n), 0);
  cr_assert_lt (kiln_registry_parse_upload_range ("0-x", 4096, &n), 0);
}

/* A registry (or a proxy) must not drive the arithmetic past int64: an end
 * of INT64_MAX used to overflow in end + 1.  Impossible ranges (beyond what
 * was sent, end before start, a start other than 0, signs, blanks, numbers
 * past 64 bits) are rejected; registry_push names the registry. */
Test (registry, upload_range_rejects_impossible_and_overflowing_ranges)
{
  int64_t n = -7;
  const char *bad[] = { "0-9223372036854775807",
                        "bytes=0-9223372036854775807",
                        "0-9223372036854775808",
                        "0-99999999999999999999999",
                        "0-4096",
                        "0-5000",
                        "10-5",
                        "1-5",
                        "-0-5",
                        "0--1",
                        "0-+5",
                        "0-5 ",
                        " 0-5",
                        "0-",
                        "-5",
                        "",
                        "bytes=",
                        "0-0x10",
                        "0-1e3",
                        "0-5/10" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_lt (kiln_registry_parse_upload_range (bad[i], 4096, &n), 0, "%s", bad[i]);
  cr_assert_lt (kiln_registry_parse_upload_range ("0-0", 0, &n), 0, "nothing sent: nothing held");
  cr_assert_lt (kiln_registry_parse_upload_range (NULL, 4096, &n), 0);
  cr_assert_eq (n, -7, "left alone on failure");
}

Test (registry, size_headers_are_strict_decimal)
{
  int64_t v = -1;
  cr_assert_eq (kiln_registry_parse_size ("0", &v), 0);
  cr_assert_eq (v, 0);
  cr_assert_eq (kiln_registry_parse_size ("5242880", &v), 0);
  cr_assert_eq (v, 5242880);
  cr_assert_eq (kiln_registry_parse_size ("9223372036854775807", &v), 0);
  cr_assert_eq (v, INT64_MAX);
  const char *bad[] = {
    "9223372036854775808", "99999999999999999999999", "-1", "+1", " 1", "1 ", "", "0x10", "1e6", "abc"
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_lt (kiln_registry_parse_size (bad[i], &v), 0, "%s", bad[i]);
  cr_assert_lt (kiln_registry_parse_size (NULL, &v), 0);
}

Test (registry, content_range_rejects_overflow)
{
  int64_t s, e, t;
  const char *bad[] = { "bytes 0-9223372036854775807/9223372036854775807",
                        "bytes 0-1/99999999999999999999",
                        "bytes 99999999999999999999-1/2",
                        "bytes 0-0/0",
                        "bytes 0-0/-1",
                        "bytes +0-0/1" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_lt (kiln_registry_parse_content_range (bad[i], &s, &e, &t), 0, "%s", bad[i]);
  cr_assert_eq (kiln_registry_parse_content_range ("bytes 0-9223372036854775806/9223372036854775807", &s, &e, &t), 0);
  cr_assert_eq (e, INT64_MAX - 1);
}

Test (registry, retry_after_is_capped_and_falls_back_when_invalid)
{
  cr_assert_eq (kiln_registry_parse_retry_after ("3", 30000), 3000);
  cr_assert_eq (kiln_registry_parse_retry_after ("3600", 30000), 30000);
  cr_assert_eq (kiln_registry_parse_retry_after ("soon", 30000), -1);
  cr_assert_eq (kiln_registry_parse_retry_after ("Wed, 21 Oct 2015 07:28:00 GMT", 30000), -1);
  cr_assert_eq (kiln_registry_parse_retry_after (NULL, 30000), -1);
}

/* Huge delays and far-future dates are capped without signed overflow
 * (seconds * 1000 overflowed before; run under -fsanitize=undefined to see
 * it); negative and garbage values fall back to kiln's own backoff. */
Test (registry, retry_after_huge_values_are_capped_without_overflow)
{
  const char *huge[] = {
    "9223372036854775807", "9223372036854775808",           "99999999999999999999999999",   "9223372036854776", "31",
    "01 Jan 555555555",    "Fri, 01 Jan 9999 00:00:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT"
  };
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
    cr_assert_eq (kiln_registry_parse_retry_after (huge[i], 30000), 30000, "%s", huge[i]);
  cr_assert_eq (kiln_registry_parse_retry_after ("0", 30000), 0);
  const char *bad[] = { "-5", "-9223372036854775808", "+5", " 5", "5 ", "1e9", "0x10", "", "\x01" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq (kiln_registry_parse_retry_after (bad[i], 30000), -1, "%s", bad[i]);
}

Test (registry, backoff_doubles_with_bounded_jitter)
{
  for (int i = 0; i < 20; i++)
    {
      unsigned a = kiln_registry_backoff_ms (100, 0), b = kiln_registry_backoff_ms (100, 3),
               c = kiln_registry_backoff_ms (1000, 20);
      cr_assert (a >= 100 && a <= 125);
      cr_assert (b >= 800 && b <= 1000);
      cr_assert (c >= KILN_REG_MAX_BACKOFF_MS && c <= KILN_REG_MAX_BACKOFF_MS * 5 / 4);
    }
}

Test (registry, resolves_relative_and_absolute_locations)
{
  const char *base = "https://reg.example/v2/a/blobs/uploads/";
  const char *cases[][2] = {
    { "/v2/a/blobs/uploads/u1?_state=x", "https://reg.example/v2/a/blobs/uploads/u1?_state=x" },
    { "u2", "https://reg.example/v2/a/blobs/uploads/u2" },
    { "https://other.example:444/up?sig=1", "https://other.example:444/up?sig=1" },
    { "//cdn.example/blob", "https://cdn.example/blob" },
  };
  for (size_t i = 0; i < 4; i++)
    {
      char *u = kiln_registry_url_resolve (base, cases[i][0]);
      cr_assert_str_eq (u, cases[i][1]);
      free (u);
    }
  char *q = kiln_registry_url_add_query ("https://r/up?_state=a", "digest", "sha256:ab");
  cr_assert_str_eq (q, "https://r/up?_state=a&digest=sha256%3aab");
  free (q);
}

Test (registry, origin_includes_default_port_and_ignores_case)
{
  char *a = kiln_registry_url_origin ("HTTPS://Reg.Example/v2/"),
       *b = kiln_registry_url_origin ("https://reg.example:443/x");
  char *c = kiln_registry_url_origin ("http://reg.example/x"),
       *d = kiln_registry_url_origin ("https://reg.example:5000/");
  cr_assert_str_eq (a, "https://reg.example:443");
  cr_assert_str_eq (a, b);
  cr_assert_str_neq (a, c);
  cr_assert_str_neq (a, d);
  free (a), free (b), free (c), free (d);
}

Test (registry, loopback_hosts)
{
  const char *yes[] = { "localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "::1" };
  const char *no[] = { "localhost.evil.com", "127.0.0.1.nip.io", "10.0.0.1:5000", "128.0.0.1", "[::2]:5000" };
  for (size_t i = 0; i < 6; i++)
    cr_assert (kiln_registry_host_is_loopback (yes[i]), "%s", yes[i]);
  for (size_t i = 0; i < 5; i++)
    cr_assert_not (kiln_registry_host_is_loopback (no[i]), "%s", no[i]);
}

Test (registry, api_host_of_docker_hub)
{
  cr_assert_str_eq (kiln_registry_api_host ("docker.io"), "registry-1.docker.io");
  cr_assert_str_eq (kiln_registry_api_host ("localhost:5000"), "localhost:5000");
}

/* ---- error text and caps ---- */

Test (registry, status_error_names_status_code_and_sanitized_message)
{
  struct kiln_registry_resp r = { .status = 500, .body = KILN_BUF_INIT };
  struct kiln_error *err = NULL;
  kiln_buf_adds (&r.body, "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"boom\\u001b[31m\"}]}");
  kiln_registry_status_error (&r, &err);
  cr_assert_str_eq (err->msg, "HTTP 500 (UNKNOWN: boom [31m)");
  cr_assert_eq (err->kind, KILN_E_NET);
  kiln_error_free (&err);
  r.status = 401;
  kiln_buf_reset (&r.body);
  kiln_registry_status_error (&r, &err);
  cr_assert_str_eq (err->msg, "HTTP 401");
  cr_assert_eq (err->kind, KILN_E_AUTH);
  kiln_error_free (&err);
  kiln_buf_release (&r.body);
}

Test (registry, caps_match_the_distribution_limits)
{
  cr_assert_eq (KILN_REG_MAX_MANIFEST, 4u << 20);
  cr_assert_eq (KILN_REG_MAX_CONFIG, 4u << 20);
  cr_assert_eq (KILN_REG_MAX_TOKEN, 1u << 20);
  cr_assert_eq (KILN_REG_MAX_ERROR, 1u << 20);
}
