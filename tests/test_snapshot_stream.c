/* tests/test_snapshot_stream.c - snapshots filled from a layer's tar as it
 * arrives (kiln_snapshot_stream_*), the way a pull feeds them: the same
 * snapshot as extraction from the blob, committed only on commit, nothing
 * left by an abort or a broken tar; and the parallel prepare (root only, as
 * test_snapshot.c). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/decompress.h"
#include "kiln/toc.h"
#include "snapshot_fixture.h"

FX_SUITE (snapshot_stream);

/* The uncompressed tar of fixture layer i. */
static void
layer_tar (size_t i, struct kiln_buf *out)
{
  struct kiln_error *err = NULL;
  struct kiln_decomp_reader *r = NULL;
  const void *p;
  ssize_t n;
  int fd = kiln_store_blob_open (fx.st, &fx.layers[i].digest, &err);
  cr_assert_geq (fd, 0);
  cr_assert_eq (kiln_decomp_reader_open (fd, &r, &err), 0);
  cr_assert (kiln_decomp_reader_decompressed (r));
  while ((n = kiln_decomp_reader_read (r, &p, &err)) > 0)
    kiln_buf_add (out, p, (size_t) n);
  cr_assert_eq (n, 0, "%s", err ? err->msg : "");
  kiln_decomp_reader_free (r);
  close (fd);
}

static char *
snap_path (size_t n)
{
  struct kiln_digest chain;
  kiln_oci_chain_id (fx.diff_ids, n, &chain);
  return kiln_xasprintf ("%s/store/snapshots/%s", kiln_test_tmpdir (), kiln_digest_hex (&chain));
}

/* Entries of snapshots/ besides the committed ones: temp dirs. */
static size_t
temp_dirs (void)
{
  char p[4300];
  size_t n = 0;
  struct dirent *de;
  snprintf (p, sizeof p, "%s/store/snapshots", kiln_test_tmpdir ());
  DIR *d = opendir (p);
  if (d == NULL)
    return 0;
  while ((de = readdir (d)))
    n += strncmp (de->d_name, ".tmp-", 5) == 0;
  closedir (d);
  return n;
}

/* Streams the tar of layer i (chain 0..i) in pieces of `piece` bytes. */
static int
stream_layer (size_t i, const struct kiln_buf *tar, size_t piece, bool commit, struct kiln_error **err)
{
  struct kiln_snapshot_stream *s = NULL;
  cr_assert_eq (kiln_snapshot_stream_begin (fx.st, fx.diff_ids, i + 1, fx.layers[i].digest.s, true, &s, err), 0);
  cr_assert_not_null (s, "the snapshot is missing: a stream must be given");
  for (size_t off = 0; off < tar->len; off += piece)
    kiln_snapshot_stream_write (s, tar->buf + off, tar->len - off < piece ? tar->len - off : piece);
  if (!commit)
    {
      kiln_snapshot_stream_abort (s);
      return 0;
    }
  return kiln_snapshot_stream_commit (s, err);
}

Test (snapshot_stream, streamed_snapshot_is_the_one_prepare_uses)
{
  struct kiln_buf t1 = KILN_BUF_INIT, t2 = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  char **lowers = NULL;
  struct stat a, b;
  char v[4] = "";
  layer_tar (0, &t1);
  layer_tar (1, &t2);
  /* 3 bytes at a time: headers and blocks straddle every write */
  cr_assert_eq (stream_layer (0, &t1, 3, true, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (stream_layer (1, &t2, 70000, true, &err), 0, "%s", err ? err->msg : "");
  kiln_autofree char *top = snap_path (2);
  cr_assert_eq (stat (top, &a), 0);
  /* layer 2's whiteouts are overlay markers, as extraction from the blob makes them */
  char p[8400];
  snprintf (p, sizeof p, "%s/gone", top);
  cr_assert_eq (lstat (p, &b), 0);
  cr_assert (S_ISCHR (b.st_mode) && b.st_rdev == makedev (0, 0));
  snprintf (p, sizeof p, "%s/opq", top);
  cr_assert_eq (getxattr (p, "user.overlay.opaque", v, sizeof v), 1);
  /* prepare finds both and touches neither */
  fx_prepare (&fx, 2, &lowers);
  cr_assert_str_eq (lowers[0], top);
  cr_assert_eq (stat (lowers[0], &b), 0);
  cr_assert_eq (a.st_ino, b.st_ino, "prepare made the snapshot again");
  char *one = fx_read (lowers[1], "a/file1");
  cr_assert_str_eq (one, "one");
  free (one);
  cr_assert_eq (temp_dirs (), 0);
  /* a second stream for it is not started */
  struct kiln_snapshot_stream *s = (void *) 1;
  cr_assert_eq (kiln_snapshot_stream_begin (fx.st, fx.diff_ids, 2, "x", true, &s, &err), 0);
  cr_assert_null (s);
  kiln_strv_free (lowers);
  kiln_buf_release (&t1);
  kiln_buf_release (&t2);
}

Test (snapshot_stream, abort_leaves_nothing)
{
  struct kiln_buf t1 = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  layer_tar (0, &t1);
  struct kiln_buf half = KILN_BUF_INIT;
  kiln_buf_add (&half, t1.buf, t1.len / 2);
  cr_assert_eq (stream_layer (0, &half, 512, false, &err), 0);
  kiln_autofree char *snap = snap_path (1);
  cr_assert_not (fx_exists (snap, ""), "an aborted stream left its snapshot");
  cr_assert_eq (temp_dirs (), 0, "an aborted stream left its temp dir");
  kiln_buf_release (&t1);
  kiln_buf_release (&half);
}

Test (snapshot_stream, broken_tar_fails_commit_and_leaves_nothing)
{
  struct kiln_buf junk = KILN_BUF_INIT, t1 = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  layer_tar (0, &t1);
  /* a cut tar (the stream ends inside an entry), then plain garbage */
  kiln_buf_add (&junk, t1.buf, 1000);
  cr_assert_lt (stream_layer (0, &junk, 4096, true, &err), 0);
  cr_assert (strstr (err->msg, fx.layers[0].digest.s), "%s", err->msg);
  kiln_error_free (&err);
  kiln_buf_reset (&junk);
  for (int i = 0; i < 4096; i++)
    kiln_buf_add (&junk, "garbage!", 8);
  cr_assert_lt (stream_layer (0, &junk, 4096, true, &err), 0);
  kiln_error_free (&err);
  kiln_autofree char *snap = snap_path (1);
  cr_assert_not (fx_exists (snap, ""));
  cr_assert_eq (temp_dirs (), 0);
  /* the blob still makes it */
  char **lowers = NULL;
  fx_prepare (&fx, 1, &lowers);
  cr_assert (fx_exists (lowers[0], "a/file1"));
  kiln_strv_free (lowers);
  kiln_buf_release (&junk);
  kiln_buf_release (&t1);
}

Test (snapshot_stream, records_the_table_of_contents_of_a_pulled_layer)
{
  struct kiln_buf t1 = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  struct kiln_digest d;
  struct kiln_toc *toc = NULL;
  cr_assert_eq (kiln_digest_parse (fx.diff_ids[0], &d, &err), 0);
  char p[4400];
  snprintf (p, sizeof p, "%s/store/cache/toc/%s", kiln_test_tmpdir (), kiln_digest_hex (&d));
  cr_assert_eq (unlink (p), 0, "the layer writer stores a TOC at %s", p);
  cr_assert_not (kiln_toc_exists (fx.st, &d));
  layer_tar (0, &t1);
  cr_assert_eq (stream_layer (0, &t1, 65536, true, &err), 0);
  cr_assert (kiln_toc_exists (fx.st, &d), "no TOC recorded by the streamed extraction");
  /* and it is the layer's: loading it does not need the blob */
  kiln_autofree char *blob = kiln_xasprintf ("%s/store/blobs/sha256/%s", kiln_test_tmpdir (),
                                             kiln_digest_hex (&fx.layers[0].digest));
  cr_assert_eq (unlink (blob), 0);
  cr_assert_eq (kiln_toc_load (fx.st, &fx.layers[0], &d, &toc, &err), 0, "%s", err ? err->msg : "");
  bool found = false;
  for (size_t i = 0; i < toc->n; i++)
    found |= strcmp (toc->v[i].path, "link") == 0 && toc->v[i].link && strcmp (toc->v[i].link, "a/file1") == 0;
  cr_assert (found, "the TOC lacks `link -> a/file1`");
  kiln_toc_free (toc);
  kiln_buf_release (&t1);
}

/* More missing snapshots than the pool has threads: all made, each once. */
Test (snapshot_stream, parallel_prepare_of_many_layers)
{
  struct kiln_descriptor layers[7];
  char *ids[8] = { 0 };
  char **lowers = NULL;
  struct kiln_error *err = NULL;
  /* the fixture's layer 1 seven times: seven chain ids, seven snapshots */
  for (size_t i = 0; i < 7; i++)
    {
      layers[i] = fx.layers[0];
      ids[i] = fx.diff_ids[0];
    }
  cr_assert_eq (kiln_snapshot_prepare (fx.st, layers, ids, 7, &lowers, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_strv_len (lowers), 7);
  for (size_t i = 0; i < 7; i++)
    {
      char *one = fx_read (lowers[i], "a/file1");
      cr_assert_str_eq (one, "one", "snapshot %zu", i);
      free (one);
    }
  cr_assert_eq (temp_dirs (), 0);
  kiln_strv_free (lowers);
}
