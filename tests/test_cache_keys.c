/* tests/test_cache_keys.c - the rules of step keys, through real builds:
 * each input changes the key of the step that uses it (and only where it is
 * used); excluded inputs (mtimes, unused build args, secrets, cache mount
 * content) do not. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/build.h"
#include "kiln/plan.h"
#include "kiln/store.h"
#include "kiln/util.h"

static struct kiln_store *st;
static char *ctx;

static void
put (const char *rel, const char *content)
{
  char *p = kiln_xasprintf ("%s/%s", ctx, rel);
  FILE *f = fopen (p, "w");
  cr_assert_not_null (f, "create %s", p);
  fputs (content, f);
  fclose (f);
  /* old timestamps: the checksum cache may keep them */
  struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
  utimensat (AT_FDCWD, p, ts, 0);
  free (p);
}

static void
init (void)
{
  kiln_test_tmp_init ();
  ctx = kiln_xasprintf ("%s/ctx", kiln_test_tmpdir ());
  mkdir (ctx, 0755);
  st = kiln_test_store_open ();
}

static void
fini (void)
{
  kiln_store_free (st);
  free (ctx);
  kiln_test_tmp_fini ();
}

TestSuite (cache_keys, .init = init, .fini = fini);

/* Builds ctx with the Dockerfile text; keys[i] = key after step i. */
static size_t
build (const char *dockerfile, const char *const *args, struct kiln_digest *keys, bool *cached, size_t max)
{
  struct kiln_error *err = NULL;
  struct kiln_build_result res = { 0 };
  struct kiln_build_opts o = { .context = ctx, .dockerfile_name = "Dockerfile", .progress = KILN_PROGRESS_QUIET };
  char *df = kiln_xasprintf ("%s/Dockerfile", ctx);
  o.dockerfile = df;
  o.layer.level = -1;
  kiln_registry_opts_init (&o.registry);
  put ("Dockerfile", dockerfile);
  for (size_t i = 0; args && args[i]; i += 2)
    kiln_kvlist_set (&o.build_args, args[i], args[i + 1]);
  int r = kiln_build_run (st, &o, &res, &err);
  cr_assert_eq (r, 0, "build failed: %s", err ? err->msg : "");
  size_t n = res.nsteps < max ? res.nsteps : max;
  for (size_t i = 0; i < n; i++)
    {
      keys[i] = res.steps[i].key;
      if (cached)
        cached[i] = res.steps[i].cached;
    }
  kiln_build_result_clear (&res);
  kiln_kvlist_clear (&o.build_args);
  free (df);
  return n;
}

#define K(a, i) ((a)[i].s)

Test (cache_keys, same_input_same_keys_and_full_hit)
{
  struct kiln_digest a[4], b[4];
  bool hit[4];
  put ("f", "one");
  const char *df = "FROM scratch\nCOPY f /f\nENV X=1\nCOPY f /g\n";
  build (df, NULL, a, NULL, 4);
  build (df, NULL, b, hit, 4);
  for (int i = 0; i < 4; i++)
    cr_assert_str_eq (K (a, i), K (b, i), "step %d", i);
  cr_assert (hit[1] && hit[3], "COPY steps are cache hits");
}

Test (cache_keys, content_change_misses_there_and_after_only)
{
  struct kiln_digest a[4], b[4];
  put ("f", "one");
  put ("g", "two");
  const char *df = "FROM scratch\nCOPY f /f\nCOPY g /g\nLABEL x=1\n";
  build (df, NULL, a, NULL, 4);
  put ("g", "TWO");
  build (df, NULL, b, NULL, 4);
  cr_assert_str_eq (K (a, 1), K (b, 1), "COPY f unchanged");
  cr_assert_str_neq (K (a, 2), K (b, 2), "COPY g content changed");
  cr_assert_str_neq (K (a, 3), K (b, 3), "the chain after it changes too");
}

Test (cache_keys, mtime_only_change_does_not_miss)
{
  struct kiln_digest a[2], b[2];
  put ("f", "one");
  build ("FROM scratch\nCOPY f /f\n", NULL, a, NULL, 2);
  char *p = kiln_xasprintf ("%s/f", ctx);
  struct timespec ts[2] = { { 1700000000, 0 }, { 1700000000, 0 } };
  utimensat (AT_FDCWD, p, ts, 0);
  free (p);
  build ("FROM scratch\nCOPY f /f\n", NULL, b, NULL, 2);
  cr_assert_str_eq (K (a, 1), K (b, 1));
}

Test (cache_keys, mode_chmod_and_chown_change_the_key)
{
  struct kiln_digest a[2], b[2], c[2], d[2];
  put ("f", "one");
  build ("FROM scratch\nCOPY f /f\n", NULL, a, NULL, 2);
  build ("FROM scratch\nCOPY --chmod=0600 f /f\n", NULL, b, NULL, 2);
  build ("FROM scratch\nCOPY --chmod=0640 f /f\n", NULL, c, NULL, 2);
  build ("FROM scratch\nCOPY --chown=5:5 f /f\n", NULL, d, NULL, 2);
  cr_assert_str_neq (K (a, 1), K (b, 1));
  cr_assert_str_neq (K (b, 1), K (c, 1), "a different --chmod flag misses");
  cr_assert_str_neq (K (a, 1), K (d, 1));
  char *p = kiln_xasprintf ("%s/f", ctx);
  chmod (p, 0700);
  free (p);
  build ("FROM scratch\nCOPY f /f\n", NULL, b, NULL, 2);
  cr_assert_str_neq (K (a, 1), K (b, 1), "the source's mode is an input");
}

Test (cache_keys, build_arg_counts_only_where_used)
{
  struct kiln_digest a[5], b[5];
  put ("f", "one");
  const char *df = "FROM scratch\nARG USED=1\nARG UNUSED=1\nCOPY f /f\nLABEL v=$USED\n";
  build (df, (const char *[]){ "USED", "a", "UNUSED", "a", NULL }, a, NULL, 5);
  build (df, (const char *[]){ "USED", "a", "UNUSED", "b", NULL }, b, NULL, 5);
  for (int i = 0; i < 5; i++)
    cr_assert_str_eq (K (a, i), K (b, i), "an unused build arg changes nothing (step %d)", i);
  build (df, (const char *[]){ "USED", "b", "UNUSED", "a", NULL }, b, NULL, 5);
  cr_assert_str_eq (K (a, 3), K (b, 3), "COPY does not use USED");
  cr_assert_str_neq (K (a, 4), K (b, 4), "LABEL uses USED");
}

Test (cache_keys, env_used_by_copy_destination_counts)
{
  struct kiln_digest a[3], b[3];
  put ("f", "one");
  build ("FROM scratch\nENV D=/x\nCOPY f $D/f\n", NULL, a, NULL, 3);
  build ("FROM scratch\nENV D=/y\nCOPY f $D/f\n", NULL, b, NULL, 3);
  cr_assert_str_neq (K (a, 2), K (b, 2));
}

Test (cache_keys, onbuild_and_healthcheck_changes_miss)
{
  struct kiln_digest a[3], b[3];
  put ("f", "one");
  build ("FROM scratch\nONBUILD COPY a /a\nCOPY f /f\n", NULL, a, NULL, 3);
  build ("FROM scratch\nONBUILD COPY b /b\nCOPY f /f\n", NULL, b, NULL, 3);
  cr_assert_str_neq (K (a, 1), K (b, 1));
  cr_assert_str_neq (K (a, 2), K (b, 2));
  build ("FROM scratch\nHEALTHCHECK CMD a\nCOPY f /f\n", NULL, a, NULL, 3);
  build ("FROM scratch\nHEALTHCHECK --interval=5s CMD a\nCOPY f /f\n", NULL, b, NULL, 3);
  cr_assert_str_neq (K (a, 1), K (b, 1));
}

Test (cache_keys, compression_is_part_of_layer_keys)
{
  struct kiln_digest a[2], b[2];
  struct kiln_error *err = NULL;
  struct kiln_build_result res = { 0 };
  put ("f", "one");
  build ("FROM scratch\nCOPY f /f\n", NULL, a, NULL, 2);
  struct kiln_build_opts o = {
    .context = ctx, .dockerfile_name = "Dockerfile", .layer.compression = KILN_COMP_ZSTD, .layer.level = -1
  };
  char *df = kiln_xasprintf ("%s/Dockerfile", ctx);
  o.dockerfile = df;
  kiln_registry_opts_init (&o.registry);
  cr_assert_eq (kiln_build_run (st, &o, &res, &err), 0);
  b[1] = res.steps[1].key;
  kiln_build_result_clear (&res);
  free (df);
  cr_assert_str_neq (K (a, 1), K (b, 1));
}

/* RUN steps need a root file system: the static test helper is enough. */
static void
prepare_run (void)
{
  kiln_test_require (KILN_NEED_ROOT);
  /* the overlay mounts of the build stay in this test's own namespace */
  cr_assert_eq (unshare (CLONE_NEWNS), 0);
  cr_assert_eq (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  /* reopen the store inside the new namespace: fds opened before belong to
   * the old one, and overlay cannot be moved onto a mount of another namespace */
  kiln_store_free (st);
  st = kiln_test_store_open ();
  char *dst = kiln_xasprintf ("%s/helper", ctx);
  int in = open (KILN_HELPER_INIT, O_RDONLY), out = open (dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  char buf[65536];
  ssize_t n;
  cr_assert (in >= 0 && out >= 0);
  while ((n = read (in, buf, sizeof buf)) > 0)
    cr_assert_eq (write (out, buf, (size_t) n), n);
  close (in);
  close (out);
  struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
  utimensat (AT_FDCWD, dst, ts, 0);
  free (dst);
}

static size_t
build_secret (const char *dockerfile, const char *secret_file, struct kiln_digest *keys, bool *cached, size_t max)
{
  struct kiln_error *err = NULL;
  struct kiln_build_result res = { 0 };
  struct kiln_build_opts o = { .context = ctx, .dockerfile_name = "Dockerfile", .progress = KILN_PROGRESS_QUIET };
  char *df = kiln_xasprintf ("%s/Dockerfile", ctx), *how = kiln_xasprintf ("src=%s", secret_file);
  o.dockerfile = df;
  o.layer.level = -1;
  kiln_registry_opts_init (&o.registry);
  kiln_kvlist_set (&o.secrets, "s", how);
  put ("Dockerfile", dockerfile);
  cr_assert_eq (kiln_build_run (st, &o, &res, &err), 0, "build failed: %s (%s)", err ? err->msg : "",
                err ? strerror (err->errnum) : "");
  for (size_t i = 0; i < res.nsteps && i < max; i++)
    keys[i] = res.steps[i].key, cached[i] = res.steps[i].cached;
  kiln_build_result_clear (&res);
  kiln_kvlist_clear (&o.secrets);
  free (df);
  free (how);
  return max;
}

Test (cache_keys, secret_and_cache_mount_contents_stay_out_of_run_keys)
{
  struct kiln_digest a[3], b[3];
  bool hit[3];
  prepare_run ();
  char *sec = kiln_xasprintf ("%s/secret", kiln_test_tmpdir ());
  const char *df
      = "FROM scratch\nCOPY helper /helper\n"
        "RUN --mount=type=secret,id=s --mount=type=cache,target=/c [\"/helper\", \"write\", \"/c/x\", \"v\"]\n";
  FILE *f = fopen (sec, "w");
  fputs ("first", f);
  fclose (f);
  build_secret (df, sec, a, hit, 3);
  cr_assert_not (hit[2], "the first RUN runs");
  f = fopen (sec, "w");
  fputs ("second", f);
  fclose (f);
  build_secret (df, sec, b, hit, 3);
  cr_assert_str_eq (K (a, 2), K (b, 2), "a changed secret and a changed cache mount do not miss");
  cr_assert (hit[2]);
  free (sec);
}

Test (cache_keys, run_sees_all_env_and_args_in_scope)
{
  struct kiln_digest a[4], b[4];
  bool hit[4];
  prepare_run ();
  char *sec = kiln_xasprintf ("%s/none", kiln_test_tmpdir ());
  build_secret ("FROM scratch\nCOPY helper /helper\nENV A=1\nRUN [\"/helper\", \"exit\", \"0\"]\n", sec, a, hit, 4);
  build_secret ("FROM scratch\nCOPY helper /helper\nENV A=2\nRUN [\"/helper\", \"exit\", \"0\"]\n", sec, b, hit, 4);
  cr_assert_str_neq (K (a, 3), K (b, 3), "RUN's environment changed although its command did not use it");
  cr_assert_not (hit[3]);
  free (sec);
}

Test (cache_keys, no_cache_filter_disables_lookups_of_that_stage_only)
{
  struct kiln_error *err = NULL;
  struct kiln_build_result res = { 0 };
  struct kiln_digest k[5];
  bool hit[5];
  put ("f", "one");
  const char *df = "FROM scratch AS a\nCOPY f /f\nFROM scratch AS b\nCOPY --from=a /f /g\n";
  build (df, NULL, k, NULL, 4);
  struct kiln_build_opts o = { .context = ctx, .dockerfile_name = "Dockerfile", .layer.level = -1 };
  char *path = kiln_xasprintf ("%s/Dockerfile", ctx);
  char *filter[] = { (char *) "b", NULL };
  o.dockerfile = path;
  o.no_cache_filter = filter;
  kiln_registry_opts_init (&o.registry);
  cr_assert_eq (kiln_build_run (st, &o, &res, &err), 0);
  for (size_t i = 0; i < res.nsteps && i < 5; i++)
    hit[i] = res.steps[i].cached;
  kiln_build_result_clear (&res);
  free (path);
  cr_assert (hit[1], "stage a is still looked up");
  cr_assert_not (hit[3], "stage b is not");
}

/* The keys of a fixed build, pinned: a refactoring of the executor must not
 * change them, or every user's cache misses once (docs/internals/cache-keys.md
 * says how to change a key on purpose).  Computed by the executor before
 * the solver split (891e70f^); FROM scratch names the platform, so they
 * hold for linux/amd64. */
Test (cache_keys, keys_of_a_fixed_build_do_not_change)
{
  static const char *const pinned[] = {
    "sha256:60f267e1937e8236f09ee36d67ea3ea3342d6d2068be50289e679ca50621ecff",
    "sha256:6088692adaf12576401636858eb0e78eda75c8e349265987b4a2c11690d81efa",
    "sha256:ba9b3549690949f29bfbcef2b2e266ed2e4bc5eb3ffc71135d114af899c67697",
    "sha256:edf7926d3008772e7e5c820bb23ab34bf44fe676d87d3198e4ffdbe60a17af76",
    "sha256:8c198e28a6c958b84cb3b8ada2908880dfde3fe7e4150159b786c306ab968268",
    "sha256:cb80c1d547c706b918036bf24597cc0005b5efc91dcb765bb0ed04499ccb11cf",
    "sha256:d2ca00c3c4ea58da97cd5a4e5bf96e2133bcae75cd8d414f0039e04e0e723055",
    "sha256:5843c5e92198c83cd8aae939395312ab6bda3231d0e9fa66dcca304a11b3236e",
  };
  const char *os, *arch, *variant;
  kiln_plan_host_platform (&os, &arch, &variant);
  if (strcmp (arch, "amd64") != 0)
    cr_skip_test ("the pinned keys are those of linux/amd64, this is %s", arch);
  struct kiln_digest k[8];
  bool hit[8];
  put ("f", "one");
  char *dir = kiln_xasprintf ("%s/dir", ctx);
  mkdir (dir, 0755);
  free (dir);
  put ("dir/a", "a");
  put ("dir/b", "b");
  const char *df
      = "FROM scratch\nARG V=1\nENV A=$V\nWORKDIR /w\nCOPY f d/\nCOPY dir/ /t/\nLABEL l=$A\nCOPY --chmod=600 f /g\n";
  size_t n = build (df, NULL, k, NULL, 8);
  cr_assert_eq (n, 8);
  for (size_t i = 0; i < n; i++)
    cr_expect_str_eq (k[i].s, pinned[i], "step %zu: key %s, pinned %s", i, k[i].s, pinned[i]);
  build (df, NULL, k, hit, 8);
  cr_assert (hit[4] && hit[5] && hit[7], "a rebuild hits every COPY");
}
