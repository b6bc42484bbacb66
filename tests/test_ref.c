/* test_ref.c - image reference parsing and normalisation, with cases from
 * distribution/reference (normalize_test.go, reference_test.go). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/ref.h"

#define D64 "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
#define HEX64 "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"

struct valid_case {
  const char *in, *domain, *path, *tag, *digest;
};

static const struct valid_case valid_cases[] = {
  { "busybox", "docker.io", "library/busybox", "latest", NULL },
  { "busybox:1.36", "docker.io", "library/busybox", "1.36", NULL },
  { "user/img", "docker.io", "user/img", "latest", NULL },
  { "docker.io/debian", "docker.io", "library/debian", "latest", NULL },
  { "docker.io/library/debian", "docker.io", "library/debian", "latest", NULL },
  { "index.docker.io/debian", "docker.io", "library/debian", "latest", NULL },
  { "index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", NULL },
  { "docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", NULL },
  { "store/foo/bar", "docker.io", "store/foo/bar", "latest", NULL },
  { "localhost/x", "localhost", "x", "latest", NULL },
  { "localhost:5000/x:dev", "localhost:5000", "x", "dev", NULL },
  { "host:5000/a/b:tag", "host:5000", "a/b", "tag", NULL },
  { "host.tld/x", "host.tld", "x", "latest", NULL },
  { "127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", NULL },
  { "127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", "latest", NULL },
  { "[::1]:5000/x", "[::1]:5000", "x", "latest", NULL },
  { "[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", "latest", NULL },
  { "xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", NULL },
  { "test-com:8080/foo", "test-com:8080", "foo", "latest", NULL },
  { "Example.COM/foo", "Example.COM", "foo", "latest", NULL },
  { "test_com/foo", "docker.io", "test_com/foo", "latest", NULL },
  { "192.168.0.1", "docker.io", "library/192.168.0.1", "latest", NULL },
  { "192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", NULL },
  { "name@" D64, "docker.io", "library/name", NULL, D64 },
  { "name:tag@" D64, "docker.io", "library/name", "tag", D64 },
  { "busybox:latest@" D64, "docker.io", "library/busybox", "latest", D64 },
  { "docker.io/" HEX64, "docker.io", "library/" HEX64, "latest", NULL },
  { "docker---rules/docker", "docker.io", "docker---rules/docker", "latest", NULL },
  { "dock__er/docker", "docker.io", "dock__er/docker", "latest", NULL },
  { "d/docker", "docker.io", "d/docker", "latest", NULL },
  { "a_b-c/d.e__f:Tag_1.2-x", "docker.io", "a_b-c/d.e__f", "Tag_1.2-x", NULL },
};

static void
expect_str_or_null (const char *got, const char *want, const char *what, const char *in)
{
  if (want == NULL)
    cr_expect_null (got, "`%s`: %s should be NULL, got `%s`", in, what, got);
  else
    cr_expect (got && strcmp (got, want) == 0, "`%s`: %s `%s`, want `%s`", in, what, got ? got : "(null)", want);
}

Test (ref, parses_and_normalises_valid_references)
{
  for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++)
    {
      const struct valid_case *c = &valid_cases[i];
      struct kiln_ref r = { 0 };
      struct kiln_error *err = NULL;
      int rc = kiln_ref_parse (c->in, &r, &err);
      cr_expect_geq (rc, 0, "`%s`: %s", c->in, err ? err->msg : "");
      if (rc < 0)
        {
          kiln_error_free (&err);
          continue;
        }
      expect_str_or_null (r.domain, c->domain, "domain", c->in);
      expect_str_or_null (r.path, c->path, "path", c->in);
      expect_str_or_null (r.tag, c->tag, "tag", c->in);
      expect_str_or_null (r.digest, c->digest, "digest", c->in);
      kiln_ref_clear (&r);
      cr_expect_null (r.domain);
    }
}

struct invalid_case {
  const char *in, *why;
};

static const struct invalid_case invalid_cases[] = {
  { "", "invalid reference: empty string" },
  { "Foo/bar", "repository name must be lowercase" },
  { "docker/Docker", "repository name must be lowercase" },
  { "docker.io/docker/Docker", "repository name must be lowercase" },
  { "UPPER", "repository name must be lowercase" },
  { HEX64, "cannot specify 64-byte hexadecimal strings" },
  { "busybox:", "missing tag after `:`" },
  { "busybox:-x", "invalid tag format" },
  { "busybox:a+b", "invalid tag format" },
  { "busybox@sha256:abc", "invalid digest length" },
  { "busybox@sha256:86E0E091D0DA6BDE2456DBB48306F3956BBEB2EAE1B5B9A43045843F69FE4AAA", "invalid digest format" },
  { "busybox@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm" },
  { "busybox@", "invalid digest format" },
  { "busybox@" D64 "@" D64, "invalid digest length" },
  { ":tag", "repository name must have at least one component" },
  { "https://github.com/docker/docker", "invalid reference format" },
  { "-docker", "invalid reference format" },
  { "-docker/docker", "invalid reference format" },
  { "docker-/docker", "invalid reference format" },
  { "-docker.io/docker/docker", "invalid reference format" },
  { "docker///docker", "invalid reference format" },
  { "docker.io/docker///docker", "invalid reference format" },
  { "docker/", "invalid reference format" },
  { "____/____", "invalid reference format" },
  { "_docker/_docker", "invalid reference format" },
  { "dock..er/docker", "invalid reference format" },
  { "dock_.er/docker", "invalid reference format" },
  { "dock-.er/docker", "invalid reference format" },
  { "[fc00::1]", "invalid tag format" },
  { "a.b_c/e", "invalid reference format" }, /* a dotted first part is a registry */
  { "[fc00::1]:5000", "invalid reference format" },
  { "fc00::1:5000/debian", "invalid reference format" },
  { "[fe80::1%eth0]:5000/debian", "invalid reference format" },
  { "[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format" },
  { "host:/x", "invalid reference format" },
  { "host:5x/x", "invalid reference format" },
  { "a b", "invalid reference format" },
};

Test (ref, rejects_invalid_references_with_reason)
{
  for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++)
    {
      const struct invalid_case *c = &invalid_cases[i];
      struct kiln_ref r = { 0 };
      struct kiln_error *err = NULL;
      cr_expect_lt (kiln_ref_parse (c->in, &r, &err), 0, "`%s` should be rejected", c->in);
      cr_expect_null (r.domain, "`%s`: out untouched on failure", c->in);
      if (err == NULL)
        continue;
      cr_expect_eq (err->kind, KILN_E_PARSE);
      cr_expect (strstr (err->msg, c->why) != NULL, "`%s`: message `%s` lacks `%s`", c->in, err->msg, c->why);
      kiln_error_free (&err);
    }
}

Test (ref, error_message_names_reference_and_problem)
{
  struct kiln_ref r = { 0 };
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_ref_parse ("Foo/bar", &r, &err), 0);
  cr_expect_str_eq (err->msg, "invalid reference `Foo/bar`: repository name must be lowercase");
  kiln_error_free (&err);
}

Test (ref, tag_length_limit_is_128)
{
  char in[8 + 130];
  struct kiln_ref r = { 0 };
  struct kiln_error *err = NULL;
  memcpy (in, "busybox:", 8);
  memset (in + 8, 'a', 128);
  in[8 + 128] = '\0';
  cr_expect_geq (kiln_ref_parse (in, &r, &err), 0);
  cr_expect_eq (strlen (r.tag), 128);
  kiln_ref_clear (&r);
  in[8 + 128] = 'a';
  in[8 + 129] = '\0';
  cr_expect_lt (kiln_ref_parse (in, &r, &err), 0);
  cr_expect (err && strstr (err->msg, "invalid tag format"));
  kiln_error_free (&err);
}

Test (ref, name_length_limit_counts_domain)
{
  char in[300];
  struct kiln_ref r = { 0 };
  struct kiln_error *err = NULL;
  /* docker.io/library/ is 18 characters: 237 more make exactly 255 */
  memset (in, 'a', 237);
  in[237] = '\0';
  cr_expect_geq (kiln_ref_parse (in, &r, &err), 0, "%s", err ? err->msg : "");
  kiln_ref_clear (&r);
  in[237] = 'a';
  in[238] = '\0';
  cr_expect_lt (kiln_ref_parse (in, &r, &err), 0);
  cr_expect (err && strstr (err->msg, "must not be more than 255 characters"));
  kiln_error_free (&err);
}

Test (ref, string_and_repository_round_trip)
{
  static const struct {
    const char *in, *str, *repo;
  } cases[] = {
    { "busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox" },
    { "user/img:1", "docker.io/user/img:1", "docker.io/user/img" },
    { "host:5000/a/b:tag", "host:5000/a/b:tag", "host:5000/a/b" },
    { "name@" D64, "docker.io/library/name@" D64, "docker.io/library/name" },
    { "index.docker.io/name:tag@" D64, "docker.io/library/name:tag@" D64, "docker.io/library/name" },
    { "[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct kiln_ref r = { 0 }, again = { 0 };
      struct kiln_error *err = NULL;
      cr_assert_geq (kiln_ref_parse (cases[i].in, &r, &err), 0, "`%s`", cases[i].in);
      char *s = kiln_ref_string (&r), *repo = kiln_ref_repository (&r);
      cr_expect_str_eq (s, cases[i].str);
      cr_expect_str_eq (repo, cases[i].repo);
      /* the normalised form parses back to itself */
      cr_assert_geq (kiln_ref_parse (s, &again, &err), 0, "`%s`", s);
      char *s2 = kiln_ref_string (&again);
      cr_expect_str_eq (s2, s);
      free (s);
      free (s2);
      free (repo);
      kiln_ref_clear (&r);
      kiln_ref_clear (&again);
    }
}
