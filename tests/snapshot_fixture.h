/* tests/snapshot_fixture.h - a store with two layers for test_snapshot.c and
 * test_diff.c.  Layer 1: a/{file1,keep,del}, d/old, gone, link -> a/file1,
 * dir2/x, opq/lowfile.  Layer 2: .wh.gone, opq/ replaced opaquely by
 * opq/newfile. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "helpers.h"
#include "kiln/layer.h"
#include "kiln/snapshot.h"
#include "kiln/store.h"
#include "kiln/util.h"

struct fixture {
  struct kiln_store *st;
  struct kiln_descriptor layers[2];
  char *diff_ids[3];
};

static void
fx_add (struct kiln_layer_writer *w, const char *path, mode_t mode, const char *data, const char *link)
{
  struct kiln_error *err = NULL;
  struct kiln_layer_entry e = { .path = path, .mode = mode, .mtime = 1000000, .link = link };
  int r = S_ISREG (mode) ? kiln_layer_writer_add_data (w, &e, data, strlen (data), &err)
                         : kiln_layer_writer_add (w, &e, -1, &err);
  cr_assert_eq (r, 0, "add %s: %s", path, err ? err->msg : "");
}

static void
fx_finish (struct fixture *f, struct kiln_layer_writer *w, size_t i)
{
  struct kiln_error *err = NULL;
  struct kiln_layer_result res = { 0 };
  cr_assert_eq (kiln_layer_writer_finish (w, &res, &err), 0);
  kiln_layer_writer_free (w);
  f->layers[i] = res.desc;
  f->diff_ids[i] = kiln_xstrdup (res.diff_id.s);
}

static void
fx_init (struct fixture *f)
{
  struct kiln_error *err = NULL;
  struct kiln_layer_opts lo = { .compression = KILN_COMP_GZIP, .level = -1 };
  struct kiln_layer_writer *w = NULL;
  char root[4200];
  memset (f, 0, sizeof *f);
  snprintf (root, sizeof root, "%s/store", kiln_test_tmpdir ());
  cr_assert_eq (kiln_store_open (root, &f->st, &err), 0);
  cr_assert_eq (kiln_layer_writer_new (f->st, &lo, &w, &err), 0);
  fx_add (w, "a", S_IFDIR | 0755, NULL, NULL);
  fx_add (w, "a/del", S_IFREG | 0644, "del", NULL);
  fx_add (w, "a/file1", S_IFREG | 0644, "one", NULL);
  fx_add (w, "a/keep", S_IFREG | 0644, "keep", NULL);
  fx_add (w, "d", S_IFDIR | 0750, NULL, NULL);
  fx_add (w, "d/old", S_IFREG | 0644, "old", NULL);
  fx_add (w, "dir2", S_IFDIR | 0755, NULL, NULL);
  fx_add (w, "dir2/x", S_IFREG | 0644, "x", NULL);
  fx_add (w, "gone", S_IFREG | 0644, "gone", NULL);
  fx_add (w, "link", S_IFLNK | 0777, NULL, "a/file1");
  fx_add (w, "opq", S_IFDIR | 0755, NULL, NULL);
  fx_add (w, "opq/lowfile", S_IFREG | 0644, "low", NULL);
  fx_finish (f, w, 0);
  cr_assert_eq (kiln_layer_writer_new (f->st, &lo, &w, &err), 0);
  fx_add (w, ".wh.gone", S_IFREG, "", NULL);
  fx_add (w, "opq", S_IFDIR | 0711, NULL, NULL);
  fx_add (w, "opq/.wh..wh..opq", S_IFREG, "", NULL);
  fx_add (w, "opq/newfile", S_IFREG | 0600, "new", NULL);
  fx_finish (f, w, 1);
}

static void
fx_fini (struct fixture *f)
{
  for (size_t i = 0; i < 2; i++)
    {
      kiln_descriptor_clear (&f->layers[i]);
      free (f->diff_ids[i]);
    }
  kiln_store_free (f->st);
}

static void
fx_prepare (struct fixture *f, size_t n, char ***lowers)
{
  struct kiln_error *err = NULL;
  int r = kiln_snapshot_prepare (f->st, f->layers, f->diff_ids, n, lowers, &err);
  cr_assert_eq (r, 0, "prepare: %s", err ? err->msg : "");
}

static __attribute__ ((unused)) char *
fx_read (const char *dir, const char *rel)
{
  char p[8400], buf[256];
  snprintf (p, sizeof p, "%s/%s", dir, rel);
  int fd = open (p, O_RDONLY);
  if (fd < 0)
    return NULL;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  buf[n > 0 ? n : 0] = '\0';
  return kiln_xstrdup (buf);
}

static __attribute__ ((unused)) bool
fx_exists (const char *dir, const char *rel)
{
  char p[8400];
  struct stat st;
  if (snprintf (p, sizeof p, "%s/%s", dir, rel) >= (int) sizeof p)
    return false;
  return lstat (p, &st) == 0;
}

/* No mount of ours is left anywhere under the test's temp dir. */
static void
fx_assert_no_mounts (void)
{
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  char line[8192];
  cr_assert_not_null (f);
  while (fgets (line, sizeof line, f))
    cr_assert_null (strstr (line, kiln_test_tmpdir ()), "mount left behind: %s", line);
  fclose (f);
}

/* A suite of these tests: as root, a fresh store in fx, no mount left behind. */
#define FX_SUITE(name)                                                                                                 \
  static struct fixture fx;                                                                                            \
  static void fx_setup (void)                                                                                          \
  {                                                                                                                    \
    kiln_test_tmp_init ();                                                                                             \
    kiln_test_require (KILN_NEED_ROOT);                                                                                \
    fx_init (&fx);                                                                                                     \
  }                                                                                                                    \
  static void fx_teardown (void)                                                                                       \
  {                                                                                                                    \
    fx_fini (&fx);                                                                                                     \
    fx_assert_no_mounts ();                                                                                            \
    kiln_test_tmp_fini ();                                                                                             \
  }                                                                                                                    \
  TestSuite (name, .init = fx_setup, .fini = fx_teardown)
