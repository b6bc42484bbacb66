/* tests/test_image.c - names to images: the store first, a pull only for a
 * name the store does not have, never over a store that cannot be read. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/image.h"
#include "kiln/registry.h"
#include "kiln/store.h"
#include "kiln/util.h"

TestSuite (image, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static struct kiln_descriptor
fake_desc (char fill)
{
  struct kiln_descriptor d = { 0 };
  d.media_type = (char *) KILN_MT_OCI_MANIFEST;
  memcpy (d.digest.s, "sha256:", 7);
  memset (d.digest.s + 7, fill, KILN_DIGEST_HEX_LEN);
  d.digest.s[KILN_DIGEST_STR_LEN] = '\0';
  d.size = 42;
  return d;
}

struct pulls {
  int n;
  char ref[256];
};

static void
on_pull (void *ud, const char *ref)
{
  struct pulls *p = ud;
  p->n++;
  snprintf (p->ref, sizeof p->ref, "%s", ref);
}

/* A registry nobody listens on: a pull fails at once, without a network. */
static struct kiln_image_pull
nowhere (struct kiln_registry_opts *ro, struct pulls *p)
{
  kiln_registry_opts_init (ro);
  ro->retries = 0;
  return (struct kiln_image_pull){ .registry = ro, .on_pull = on_pull, .ud = p };
}

Test (image, names_resolve_as_written_normalised_or_by_digest)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_descriptor d = fake_desc ('c'), out = { 0 };
  cr_assert_eq (kiln_store_tag (st, "docker.io/library/busybox:latest", &d, &err), 0);
  cr_assert_eq (kiln_image_resolve (st, "busybox", &out, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq (out.digest.s, d.digest.s);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_image_resolve (st, "docker.io/library/busybox:latest", &out, &err), 0);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_image_resolve (st, "alpine", &out, &err), -1);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND, "%s", err->msg);
  kiln_error_free (&err);
  kiln_store_free (st);
}

Test (image, a_missing_name_is_pulled_a_present_one_is_not)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_descriptor d = fake_desc ('d'), out = { 0 };
  struct kiln_registry_opts ro;
  struct pulls p = { 0 };
  struct kiln_image_pull pull = nowhere (&ro, &p);
  cr_assert_eq (kiln_store_tag (st, "127.0.0.1:1/a/b:1", &d, &err), 0);
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/b:1", &pull, &out, &err), 0);
  kiln_descriptor_clear (&out);
  cr_assert_eq (p.n, 0, "pulled a name the store has");
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/c", &pull, &out, &err), -1);
  cr_assert_eq (p.n, 1);
  cr_assert_str_eq (p.ref, "127.0.0.1:1/a/c:latest");
  kiln_error_free (&err);
  /* no pull options: the store only */
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/c", NULL, &out, &err), -1);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  cr_assert_eq (p.n, 1);
  kiln_error_free (&err);
  kiln_store_free (st);
}

/* index.json that does not parse: the error says so, and nothing is pulled
 * (the old code took any resolve error for "not found" and pulled). */
Test (image, a_store_that_cannot_be_read_is_an_error_not_a_pull)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_descriptor out = { 0 };
  struct kiln_registry_opts ro;
  struct pulls p = { 0 };
  struct kiln_image_pull pull = nowhere (&ro, &p);
  kiln_autofree char *index = kiln_xasprintf ("%s/store/index.json", kiln_test_tmpdir ());
  FILE *f = fopen (index, "w");
  cr_assert_not_null (f);
  fputs ("{\"schemaVersion\": 2, \"manifests\": [", f);
  fclose (f);
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/b:1", &pull, &out, &err), -1);
  cr_assert_neq (err->kind, KILN_E_NOTFOUND, "%s", err->msg);
  cr_assert_eq (p.n, 0, "pulled over a store it could not read");
  kiln_error_free (&err);
  kiln_store_free (st);
}

/* Tags d as name the way a pull by tag records it. */
static void
tag_as_pulled (struct kiln_store *st, const char *name, struct kiln_descriptor d)
{
  struct kiln_error *err = NULL;
  struct kiln_descriptor e = { 0 };
  kiln_descriptor_copy (&e, &d);
  kiln_kvlist_set (&e.annotations, KILN_ANNOT_PULL_REF, name);
  kiln_kvlist_set (&e.annotations, KILN_ANNOT_PULL_DIGEST, fake_desc ('9').digest.s);
  cr_assert_eq (kiln_store_tag (st, name, &e, &err), 0);
  kiln_descriptor_clear (&e);
}

Test (image, pull_policies_decide_who_is_asked)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_descriptor d = fake_desc ('e'), out = { 0 };
  struct kiln_registry_opts ro;
  struct pulls p = { 0 };
  struct kiln_image_pull pull = nowhere (&ro, &p);
  tag_as_pulled (st, "127.0.0.1:1/a/pulled:1", d);
  cr_assert_eq (kiln_store_tag (st, "127.0.0.1:1/a/built:1", &d, &err), 0);
  /* newer: the registry cannot be asked, so the store's copy, no pull */
  pull.policy = KILN_PULL_NEWER;
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/pulled:1", &pull, &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d.digest.s);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/built:1", &pull, &out, &err), 0);
  kiln_descriptor_clear (&out);
  cr_assert_eq (p.n, 0);
  /* always: pulls what the store has too, and its failure is an error */
  pull.policy = KILN_PULL_ALWAYS;
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/built:1", &pull, &out, &err), -1);
  cr_assert_eq (p.n, 1);
  kiln_error_free (&err);
  /* ... but not an image named by digest, which cannot change */
  kiln_autofree char *pinned = kiln_xasprintf ("127.0.0.1:1/a/pinned@%s", d.digest.s);
  cr_assert_eq (kiln_store_tag (st, pinned, &d, &err), 0);
  cr_assert_eq (kiln_image_open (st, pinned, &pull, &out, &err), 0, "%s", err ? err->msg : "");
  kiln_descriptor_clear (&out);
  cr_assert_eq (p.n, 1);
  /* never: the store only, and a missing name says why */
  pull.policy = KILN_PULL_NEVER;
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/pulled:1", &pull, &out, &err), 0);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_image_open (st, "127.0.0.1:1/a/absent:1", &pull, &out, &err), -1);
  cr_assert (strstr (err->msg, "127.0.0.1:1/a/absent:1") && strstr (err->msg, "--pull=never"), "%s", err->msg);
  cr_assert_eq (p.n, 1);
  kiln_error_free (&err);
  kiln_store_free (st);
}

Test (image, pull_policy_names)
{
  enum kiln_pull_policy pp;
  struct kiln_error *err = NULL;
  const char *names[] = { "always", "true", "missing", "false", "never", "newer" };
  const enum kiln_pull_policy want[] = { KILN_PULL_ALWAYS,  KILN_PULL_ALWAYS, KILN_PULL_MISSING,
                                         KILN_PULL_MISSING, KILN_PULL_NEVER,  KILN_PULL_NEWER };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    {
      cr_assert_eq (kiln_image_pull_policy_parse (names[i], &pp, &err), 0, "%s", names[i]);
      cr_assert_eq (pp, want[i], "%s", names[i]);
    }
  cr_assert_eq (kiln_image_pull_policy_parse ("Always", &pp, &err), -1);
  cr_assert (strstr (err->msg, "`Always`"), "%s", err->msg);
  cr_assert_eq (err->kind, KILN_E_USAGE);
  kiln_error_free (&err);
}
