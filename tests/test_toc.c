/* tests/test_toc.c - layer tables of contents: recorded by the layer writer,
 * read back from a blob when missing or corrupt, merged views (whiteouts,
 * opaque dirs, replacement) and symlink resolution inside the root. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/store.h"
#include "kiln/toc.h"
#include "kiln/util.h"

TestSuite (toc, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static void
put (struct kiln_tocview *v, const char *path, mode_t mode, const char *link)
{
  struct kiln_toc_entry e = { .path = path, .mode = mode, .link = link, .uid = 1, .gid = 2, .mtime = 3 };
  kiln_tocview_put (v, &e);
}

static char *
resolve (struct kiln_tocview *v, const char *path, bool follow_last)
{
  char *out = NULL;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_tocview_resolve (v, path, follow_last, &out, &err), 0, "%s", err ? err->msg : "");
  return out;
}

Test (toc, resolve_follows_links_inside_the_root)
{
  struct kiln_tocview *v = kiln_tocview_new ();
  put (v, "real", S_IFDIR | 0755, NULL);
  put (v, "abs", S_IFLNK | 0777, "/real");
  put (v, "rel", S_IFLNK | 0777, "real/../real");
  put (v, "up", S_IFLNK | 0777, "../../../../real");
  put (v, "dangling", S_IFLNK | 0777, "../tmp/target");
  put (v, "real/f", S_IFREG | 0644, NULL);
  put (v, "chain", S_IFLNK | 0777, "abs/f");
  const char *cases[][3] = {
    { "/abs/sub/", "real/sub", "1" }, { "rel/x", "real/x", "1" }, { "up", "real", "1" },
    { "/dangling/", "tmp/target", "1" }, { "abs", "abs", "0" }, { "/../../abs/./f", "real/f", "1" },
    { "chain", "real/f", "1" }, { "missing/../abs/x", "real/x", "1" }, { "/", "", "1" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      kiln_autofree char *r = resolve (v, cases[i][0], cases[i][2][0] == '1');
      cr_assert_str_eq (r, cases[i][1], "resolve %s", cases[i][0]);
    }
  kiln_tocview_free (v);
}

Test (toc, resolve_refuses_loops)
{
  struct kiln_tocview *v = kiln_tocview_new ();
  put (v, "a", S_IFLNK | 0777, "/b");
  put (v, "b", S_IFLNK | 0777, "a/x");
  char *out = NULL;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_tocview_resolve (v, "a/y", true, &out, &err), 0);
  cr_assert (strstr (err->msg, "too many levels of symbolic links"), "%s", err->msg);
  kiln_error_free (&err);
  kiln_tocview_free (v);
}

static struct kiln_toc
toc_of (struct kiln_toc_entry *v, size_t n)
{
  return (struct kiln_toc){ .v = v, .n = n };
}

Test (toc, apply_whiteouts_opaque_and_replacement)
{
  struct kiln_tocview *v = kiln_tocview_new ();
  struct kiln_toc_entry l1[] = {
    { .path = "d", .mode = S_IFDIR | 0700, .uid = 5 }, { .path = "d/a", .mode = S_IFREG | 0644 },
    { .path = "d/sub/b", .mode = S_IFREG | 0644 }, { .path = "o", .mode = S_IFDIR | 0755 },
    { .path = "o/old", .mode = S_IFREG | 0644 }, { .path = "x", .mode = S_IFDIR | 0755 },
    { .path = "x/y", .mode = S_IFREG | 0644 },
  };
  struct kiln_toc_entry l2[] = {
    { .path = "d/.wh.a", .mode = S_IFREG }, { .path = "o", .mode = S_IFDIR | 0750 },
    { .path = "o/.wh..wh..opq", .mode = S_IFREG }, { .path = "o/new", .mode = S_IFREG | 0600 },
    { .path = "x", .mode = S_IFREG | 0644 },
  };
  struct kiln_toc t1 = toc_of (l1, 7), t2 = toc_of (l2, 5);
  kiln_tocview_apply (v, &t1);
  kiln_tocview_apply (v, &t2);
  cr_assert_null (kiln_tocview_get (v, "d/a"));
  cr_assert_not_null (kiln_tocview_get (v, "d/sub/b"));
  /* a parent the layer never listed is a 0755 root directory */
  cr_assert_eq (kiln_tocview_get (v, "d/sub")->mode, S_IFDIR | 0755);
  cr_assert_eq (kiln_tocview_get (v, "d")->uid, 5);
  cr_assert_null (kiln_tocview_get (v, "o/old"));
  cr_assert_eq (kiln_tocview_get (v, "o/new")->mode, S_IFREG | 0600);
  cr_assert_eq (kiln_tocview_get (v, "o")->mode, S_IFDIR | 0750);
  cr_assert_eq (kiln_tocview_get (v, "x")->mode, S_IFREG | 0644);
  cr_assert_null (kiln_tocview_get (v, "x/y"));
  /* a directory where the file was: nothing of the old subtree comes back */
  put (v, "x", S_IFDIR | 0755, NULL);
  cr_assert_null (kiln_tocview_get (v, "x/y"));
  kiln_tocview_free (v);
}

/* A layer written by the layer writer has its TOC stored; a missing or
 * corrupt one is read again from the blob, with the same entries. */
Test (toc, writer_records_and_blob_rebuilds)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_layer_opts lo = { .compression = KILN_COMP_GZIP, .level = -1 };
  struct kiln_layer_writer *w = NULL;
  struct kiln_layer_result lr = { 0 };
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_layer_writer_new (st, &lo, &w, &err), 0);
  struct kiln_layer_entry es[] = {
    { .path = "etc", .mode = S_IFDIR | 0750, .uid = 7, .gid = 8, .mtime = 99 },
    { .path = "etc/f", .mode = S_IFREG | 0600, .uid = 1, .gid = 1, .mtime = 5 },
    { .path = "etc/l", .mode = S_IFLNK | 0777, .link = "../x" },
    { .path = "etc/h", .mode = S_IFREG | 0600, .link = "etc/f", .hardlink = true },
  };
  for (size_t i = 0; i < 4; i++)
    {
      if (S_ISREG (es[i].mode) && !es[i].hardlink)
        cr_assert_eq (kiln_layer_writer_add_data (w, &es[i], "abc", 3, &err), 0);
      else
        cr_assert_eq (kiln_layer_writer_add (w, &es[i], -1, &err), 0);
    }
  cr_assert_eq (kiln_layer_writer_finish (w, &lr, &err), 0);
  kiln_layer_writer_free (w);
  kiln_autofree char *rel = kiln_xasprintf ("cache/toc/%s", kiln_digest_hex (&lr.diff_id));
  for (int round = 0; round < 3; round++)
    {
      if (round == 1)
        cr_assert_eq (unlinkat (kiln_store_dirfd (st), rel, 0), 0);
      if (round == 2)
        {
          /* one flipped byte: the checksum catches it, the blob is read again */
          int fd = openat (kiln_store_dirfd (st), rel, O_RDWR);
          cr_assert_geq (fd, 0);
          cr_assert_eq (pwrite (fd, "X", 1, 20), 1);
          close (fd);
        }
      struct kiln_toc *t = NULL;
      cr_assert_eq (kiln_toc_load (st, &lr.desc, &lr.diff_id, &t, &err), 0, "round %d: %s", round,
                    err ? err->msg : "");
      cr_assert_eq (t->n, 4, "round %d", round);
      cr_assert_str_eq (t->v[0].path, "etc");
      cr_assert_eq (t->v[0].mode, S_IFDIR | 0750);
      cr_assert_eq (t->v[0].uid, 7);
      cr_assert_eq (t->v[0].mtime, 99);
      cr_assert_str_eq (t->v[2].link, "../x");
      cr_assert (t->v[3].hardlink);
      cr_assert_str_eq (t->v[3].link, "etc/f");
      cr_assert_eq (t->v[3].mode & S_IFMT, S_IFREG);
      kiln_toc_free (t);
    }
  kiln_layer_result_clear (&lr);
  kiln_store_free (st);
}
