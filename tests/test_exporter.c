/* tests/test_exporter.c - the exporters' specs are checked before a build
 * (a bad one writes nothing), and --output to stdout is told apart. */
#include <criterion/criterion.h>
#include <string.h>
#include "kiln/exporter.h"
#include "kiln/ref.h"
#include "kiln/util.h"

static int
check (const char *output, bool push, char **tags, struct kiln_error **err)
{
  struct kiln_exporter_opts o = { .output = output, .push = push, .tags = tags };
  return kiln_exporter_check (&o, err);
}

Test (exporter, bad_specs_fail_before_the_build_and_name_the_flag)
{
  struct kiln_error *err = NULL;
  cr_assert_eq (check ("type=zip,dest=x", false, NULL, &err), -1);
  cr_assert_eq (err->kind, KILN_E_USAGE);
  cr_assert (strstr (err->msg, "unknown type `zip`") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (check ("type=tar,dest=x,color=red", false, NULL, &err), -1);
  cr_assert (strstr (err->msg, "unknown key `color=red`") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (check ("type=local,dest=-", false, NULL, &err), -1);
  cr_assert (strstr (err->msg, "a directory cannot go to stdout") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (check (NULL, true, NULL, &err), -1);
  cr_assert (strstr (err->msg, "--push needs") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  struct kiln_exporter_opts o = { .cache_to = (char *[]){ (char *) "type=nowhere", NULL } };
  cr_assert_eq (kiln_exporter_check (&o, &err), -1);
  cr_assert (strstr (err->msg, "--cache-to") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (check ("type=oci,dest=out", false, NULL, &err), 0);
}

Test (exporter, stdout_is_dest_dash)
{
  struct kiln_exporter_opts o = { .output = "type=tar,dest=-" };
  cr_assert (kiln_exporter_to_stdout (&o));
  o.output = "type=tar,dest=out.tar";
  cr_assert_not (kiln_exporter_to_stdout (&o));
  o.output = NULL;
  cr_assert_not (kiln_exporter_to_stdout (&o));
}

Test (exporter, an_archive_names_its_image_by_the_tag)
{
  char *t = kiln_ref_tag_or_latest ("docker.io/library/app:v2");
  cr_assert_str_eq (t, "v2");
  free (t);
  t = kiln_ref_tag_or_latest ("docker.io/library/app");
  cr_assert_str_eq (t, "latest");
  free (t);
  t = kiln_ref_tag_or_latest ("NOT A REF");
  cr_assert_str_eq (t, "latest");
  free (t);
}
