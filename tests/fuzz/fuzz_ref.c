/* fuzz_ref - image references (src/image/ref.c).
 *
 * Input: the reference text.  Oracle: a parsed reference prints as a
 * string that parses again to the same reference (normalisation is
 * idempotent: "busybox" -> "docker.io/library/busybox:latest" stays). */
#include "fuzz.h"

#include "kiln/ref.h"

static bool
same (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = fuzz_str (data, size);
  struct kiln_ref r = { 0 }, r2 = { 0 };
  struct kiln_error *err = NULL;
  if (kiln_ref_parse (s, &r, &err) == 0)
    {
      char *str = kiln_ref_string (&r), *repo = kiln_ref_repository (&r);
      if (kiln_ref_parse (str, &r2, &err) < 0)
        fuzz_fail ("`%s` parsed as `%s`, which does not parse: %s", s, str, err->msg);
      if (!same (r.domain, r2.domain) || !same (r.path, r2.path) || !same (r.tag, r2.tag)
          || !same (r.digest, r2.digest))
        fuzz_fail ("`%s` parsed as `%s`, which parses differently", s, str);
      char *str2 = kiln_ref_string (&r2);
      if (strcmp (str, str2) != 0)
        fuzz_fail ("`%s` -> `%s` -> `%s`", s, str, str2);
      if (strncmp (str, repo, strlen (repo)) != 0)
        fuzz_fail ("`%s`: repository `%s` is not a prefix of `%s`", s, repo, str);
      free (str), free (str2), free (repo);
    }
  else if (err == NULL || err->msg == NULL)
    fuzz_fail ("`%s` failed without an error message", s);
  kiln_ref_clear (&r);
  kiln_ref_clear (&r2);
  kiln_error_free (&err);
  free (s);
  return 0;
}
