/* tests/test_toc.c - layer tables of contents: recorded by the layer writer,
 * read back from a blob when missing or corrupt, merged views (whiteouts,
 * opaque dirs, replacement) and symlink resolution inside the root. */
#include <criterion/criterion.h>
#include <errno.h>
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
    { "/abs/sub/", "real/sub", "1" },
    { "rel/x", "real/x", "1" },
    { "up", "real", "1" },
    { "/dangling/", "tmp/target", "1" },
    { "abs", "abs", "0" },
    { "/../../abs/./f", "real/f", "1" },
    { "chain", "real/f", "1" },
    { "missing/../abs/x", "real/x", "1" },
    { "/", "", "1" },
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
    { .path = "d/sub/b", .mode = S_IFREG | 0644 },     { .path = "o", .mode = S_IFDIR | 0755 },
    { .path = "o/old", .mode = S_IFREG | 0644 },       { .path = "x", .mode = S_IFDIR | 0755 },
    { .path = "x/y", .mode = S_IFREG | 0644 },
  };
  struct kiln_toc_entry l2[] = {
    { .path = "d/.wh.a", .mode = S_IFREG },        { .path = "o", .mode = S_IFDIR | 0750 },
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
      cr_assert_eq (kiln_toc_load (st, &lr.desc, &lr.diff_id, &t, &err), 0, "round %d: %s", round, err ? err->msg : "");
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

static void
read_rel (struct kiln_store *st, const char *rel, struct kiln_buf *out)
{
  struct kiln_error *err = NULL;
  kiln_autoclose int fd = openat (kiln_store_dirfd (st), rel, O_RDONLY);
  cr_assert_geq (fd, 0, "%s", rel);
  cr_assert_eq (kiln_fs_read_fd (fd, 0, out, &err), 0);
}

/* Past a few MiB a layer's records go to an unnamed file that the save
 * names: the TOC is byte for byte the one kept in memory, and it loads. */
Test (toc, records_set_aside_save_the_same_toc)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_toc_rec mem, aside;
  struct kiln_error *err = NULL;
  struct kiln_digest d_mem, d_aside;
  kiln_digest_of ("mem", 3, &d_mem);
  kiln_digest_of ("aside", 5, &d_aside);
  kiln_toc_rec_init (&mem);
  kiln_toc_rec_init (&aside);
  kiln_toc_rec_spill (&aside, st);
  char pad[201];
  memset (pad, 'p', 200);
  pad[200] = '\0';
  for (int i = 0; i < 40000; i++) /* about 10 MiB of records */
    {
      kiln_autofree char *path = kiln_xasprintf ("d%d/%s%d", i % 7, pad, i);
      struct kiln_toc_entry e = {
        .path = path, .mode = S_IFREG | 0644, .uid = (uid_t) i, .mtime = i, .link = i % 100 == 0 ? "t" : NULL
      };
      kiln_toc_rec_add (&mem, &e);
      kiln_toc_rec_add (&aside, &e);
    }
  cr_assert_geq (aside.spill_fd, 0, "the records were set aside");
  cr_assert_lt (aside.data.len, 4u << 20);
  struct kiln_toc *t = NULL;
  cr_assert_neq (kiln_toc_rec_read (&aside, &t), 0, "records set aside cannot be read in memory");
  cr_assert_eq (kiln_toc_rec_save (st, &d_mem, &mem, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_toc_rec_save (st, &d_aside, &aside, &err), 0, "%s", err ? err->msg : "");
  kiln_toc_rec_clear (&mem);
  kiln_toc_rec_clear (&aside);
  kiln_autofree char *rm = kiln_xasprintf ("cache/toc/%s", kiln_digest_hex (&d_mem));
  kiln_autofree char *ra = kiln_xasprintf ("cache/toc/%s", kiln_digest_hex (&d_aside));
  kiln_autobuf struct kiln_buf bm = KILN_BUF_INIT, ba = KILN_BUF_INIT;
  read_rel (st, rm, &bm);
  read_rel (st, ra, &ba);
  cr_assert_gt (bm.len, 8u << 20);
  cr_assert (bm.len == ba.len && memcmp (bm.buf, ba.buf, bm.len) == 0, "the same file");
  struct kiln_descriptor none = { 0 };
  cr_assert_eq (kiln_toc_load (st, &none, &d_aside, &t, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (t->n, 40000);
  cr_assert_eq (t->v[39999].mtime, 39999);
  kiln_toc_free (t);
  kiln_store_free (st);
}

/* When no unnamed file can be made (here cache/toc is a file), the records
 * stay in memory: nothing is lost and they still read back. */
Test (toc, records_stay_in_memory_when_they_cannot_be_set_aside)
{
  struct kiln_store *st = kiln_test_store_open ();
  cr_assert_eq (mkdirat (kiln_store_dirfd (st), "cache", 0755) == 0 || errno == EEXIST, true);
  int fd = openat (kiln_store_dirfd (st), "cache/toc", O_WRONLY | O_CREAT | O_EXCL, 0644);
  cr_assert_geq (fd, 0);
  close (fd);
  struct kiln_toc_rec r;
  kiln_toc_rec_init (&r);
  kiln_toc_rec_spill (&r, st);
  char pad[201];
  memset (pad, 'p', 200);
  pad[200] = '\0';
  for (int i = 0; i < 40000; i++)
    {
      kiln_autofree char *path = kiln_xasprintf ("d/%s%d", pad, i);
      struct kiln_toc_entry e = { .path = path, .mode = S_IFREG | 0644, .mtime = i };
      kiln_toc_rec_add (&r, &e);
    }
  cr_assert_lt (r.spill_fd, 0, "nothing was set aside");
  cr_assert_gt (r.data.len, 8u << 20, "the records are all in memory");
  struct kiln_toc *t = NULL;
  cr_assert_eq (kiln_toc_rec_read (&r, &t), 0);
  cr_assert_eq (t->n, 40000);
  cr_assert_eq (t->v[39999].mtime, 39999);
  kiln_toc_free (t);
  kiln_toc_rec_clear (&r);
  kiln_store_free (st);
}
