/* tests/test_decompress.c - the layer decompressor (ISA-L gzip, zstd, none)
 * against zlib/libzstd-made streams fed in every piece size, the blob
 * reader, and tar extraction from a stream (kiln_extract_stream) with the
 * same end-of-archive rules as from a file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/compress.h"
#include "kiln/decompress.h"
#include "kiln/extract.h"
#include "kiln/util.h"

TestSuite (decompress, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

/* Random bytes and text: stored and Huffman-coded deflate blocks both. */
static unsigned char *
sample (size_t n)
{
  unsigned char *p = kiln_xmalloc (n);
  unsigned x = 12345;
  static const char *const words[] = { "layer ", "tar ", "inflate ", "kiln ", "snapshot\n", "a " };
  for (size_t i = 0; i < n;)
    {
      x = x * 1103515245u + 12345u;
      if (i < n / 2)
        p[i++] = (unsigned char) (x >> 16);
      else
        for (const char *w = words[(x >> 16) % 6]; *w && i < n; w++)
          p[i++] = (unsigned char) *w;
    }
  return p;
}

/* One gzip member of data (zlib). */
static void
gzip_member (const unsigned char *data, size_t n, struct kiln_buf *out)
{
  z_stream z = { 0 };
  cr_assert_eq (deflateInit2 (&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  uLong cap = deflateBound (&z, n);
  unsigned char *buf = kiln_xmalloc (cap);
  z.next_in = (unsigned char *) data, z.avail_in = (uInt) n;
  z.next_out = buf, z.avail_out = (uInt) cap;
  cr_assert_eq (deflate (&z, Z_FINISH), Z_STREAM_END);
  kiln_buf_add (out, buf, cap - z.avail_out);
  deflateEnd (&z);
  free (buf);
}

/* Decompresses in with pieces of `piece` bytes in and `ocap` out; 0 and the
 * output in *got, or < 0 with *err. */
static int
run (enum kiln_compression c, const struct kiln_buf *in, size_t piece, size_t ocap, struct kiln_buf *got,
     bool *complete, struct kiln_error **err)
{
  struct kiln_decomp *d = NULL;
  unsigned char *out = kiln_xmalloc (ocap);
  cr_assert_eq (kiln_decomp_new (c, &d, err), 0);
  int r = 0;
  for (size_t off = 0; r == 0 && off <= in->len;)
    {
      size_t n = in->len - off < piece ? in->len - off : piece;
      const unsigned char *p = (const unsigned char *) in->buf + off;
      size_t left = n;
      do
        {
          size_t made = 0;
          r = kiln_decomp_step (d, &p, &left, out, ocap, &made, err);
          kiln_buf_add (got, out, made);
          if (r == 0 && made < ocap && left == 0)
            break;
        }
      while (r == 0);
      off += n;
      if (n == 0)
        break;
    }
  *complete = kiln_decomp_complete (d);
  kiln_decomp_free (d);
  free (out);
  return r;
}

static void
assert_roundtrip (enum kiln_compression c, const struct kiln_buf *in, const unsigned char *want, size_t wlen)
{
  static const size_t pieces[] = { 1, 7, 512, 65536, 1 << 22 };
  static const size_t outs[] = { 1, 333, 131072 };
  for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++)
    for (size_t j = 0; j < sizeof outs / sizeof *outs; j++)
      {
        /* byte-at-a-time through a 1-byte buffer is slow: small inputs only */
        if ((pieces[i] == 1 || outs[j] == 1) && wlen > 100000)
          continue;
        struct kiln_buf got = KILN_BUF_INIT;
        struct kiln_error *err = NULL;
        bool complete = false;
        int r = run (c, in, pieces[i], outs[j], &got, &complete, &err);
        cr_assert_eq (r, 0, "piece %zu out %zu: %s", pieces[i], outs[j], err ? err->msg : "");
        cr_assert (complete, "piece %zu out %zu: not complete", pieces[i], outs[j]);
        cr_assert_eq (got.len, wlen, "piece %zu out %zu: %zu bytes, want %zu", pieces[i], outs[j], got.len, wlen);
        cr_assert (memcmp (got.buf, want, wlen) == 0, "piece %zu out %zu: content differs", pieces[i], outs[j]);
        kiln_buf_release (&got);
      }
}

Test (decompress, gzip_members_in_a_row_are_one_stream)
{
  size_t n = 40000;
  unsigned char *a = sample (n), *b = sample (n / 3);
  struct kiln_buf gz = KILN_BUF_INIT;
  gzip_member (a, n, &gz);
  gzip_member (b, n / 3, &gz);
  gzip_member ((const unsigned char *) "", 0, &gz); /* an empty member too */
  gzip_member (a, 100, &gz);
  struct kiln_buf want = KILN_BUF_INIT;
  kiln_buf_add (&want, a, n);
  kiln_buf_add (&want, b, n / 3);
  kiln_buf_add (&want, a, 100);
  assert_roundtrip (KILN_COMP_GZIP, &gz, (const unsigned char *) want.buf, want.len);
  kiln_buf_release (&gz);
  kiln_buf_release (&want);
  free (a);
  free (b);
}

static int
to_buf (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  (void) err;
  kiln_buf_add (opaque, data, len);
  return 0;
}

/* What kiln's own layer writer makes (block-parallel ISA-L deflate with
 * stored blocks for random data), and zstd the same way. */
static void
compressor_roundtrip (enum kiln_compression c)
{
  size_t n = 5u << 20;
  unsigned char *data = sample (n);
  struct kiln_buf z = KILN_BUF_INIT;
  struct kiln_compressor *comp = NULL;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_compressor_new_mt (c, -1, 2, to_buf, &z, &comp, &err), 0);
  cr_assert_eq (kiln_compressor_write (comp, data, n, &err), 0);
  cr_assert_eq (kiln_compressor_finish (comp, &err), 0);
  kiln_compressor_free (comp);
  assert_roundtrip (c, &z, data, n);
  kiln_buf_release (&z);
  free (data);
}

Test (decompress, layer_writer_gzip_roundtrips)
{
  compressor_roundtrip (KILN_COMP_GZIP);
}

Test (decompress, zstd_roundtrips)
{
  compressor_roundtrip (KILN_COMP_ZSTD);
}

Test (decompress, none_copies)
{
  struct kiln_buf in = KILN_BUF_INIT;
  kiln_buf_add (&in, "plain bytes", 11);
  assert_roundtrip (KILN_COMP_NONE, &in, (const unsigned char *) "plain bytes", 11);
  kiln_buf_release (&in);
}

static int
decompress_all (enum kiln_compression c, const struct kiln_buf *in, bool *complete, char **msg)
{
  struct kiln_buf got = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  int r = run (c, in, 4096, 65536, &got, complete, &err);
  *msg = err ? kiln_xstrdup (err->msg) : NULL;
  kiln_error_free (&err);
  kiln_buf_release (&got);
  return r;
}

Test (decompress, truncated_or_corrupt_gzip_is_never_complete)
{
  size_t n = 100000;
  unsigned char *a = sample (n);
  struct kiln_buf gz = KILN_BUF_INIT, cut = KILN_BUF_INIT;
  bool complete = true;
  char *msg = NULL;
  gzip_member (a, n, &gz);
  /* cut anywhere, the trailer included: never complete */
  static const size_t cuts[] = { 0, 1, 9, 5000, 0 /* len - 4 */, 0 /* len - 1 */ };
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
    {
      size_t at = i == 4 ? gz.len - 4 : i == 5 ? gz.len - 1 : cuts[i];
      kiln_buf_reset (&cut);
      kiln_buf_add (&cut, gz.buf, at);
      int r = decompress_all (KILN_COMP_GZIP, &cut, &complete, &msg);
      cr_assert (r < 0 || !complete, "gzip cut at %zu of %zu read as complete", at, gz.len);
      free (msg);
    }
  /* a flipped byte in the CRC32 trailer */
  kiln_buf_reset (&cut);
  kiln_buf_add (&cut, gz.buf, gz.len);
  cut.buf[cut.len - 6] ^= 0x40;
  cr_assert_lt (decompress_all (KILN_COMP_GZIP, &cut, &complete, &msg), 0);
  cr_assert (strstr (msg, "not valid gzip"), "%s", msg);
  free (msg);
  /* garbage after a complete member is not a member: shorter than a gzip
   * header it is an unfinished one, longer it is invalid */
  kiln_buf_reset (&cut);
  kiln_buf_add (&cut, gz.buf, gz.len);
  kiln_buf_add (&cut, "garbage!", 8);
  int r = decompress_all (KILN_COMP_GZIP, &cut, &complete, &msg);
  cr_assert (r < 0 || !complete, "short garbage after the member accepted");
  free (msg);
  kiln_buf_add (&cut, "more garbage", 12);
  cr_assert_lt (decompress_all (KILN_COMP_GZIP, &cut, &complete, &msg), 0);
  cr_assert (strstr (msg, "not valid gzip"), "%s", msg);
  free (msg);
  kiln_buf_release (&gz);
  kiln_buf_release (&cut);
  free (a);
}

Test (decompress, truncated_zstd_is_not_complete)
{
  unsigned char *a = sample (200000);
  size_t cap = ZSTD_compressBound (200000);
  unsigned char *z = kiln_xmalloc (cap);
  size_t zn = ZSTD_compress (z, cap, a, 200000, 3);
  cr_assert_not (ZSTD_isError (zn));
  struct kiln_buf in = KILN_BUF_INIT;
  bool complete = true;
  char *msg = NULL;
  kiln_buf_add (&in, z, zn - 3);
  int r = decompress_all (KILN_COMP_ZSTD, &in, &complete, &msg);
  cr_assert (r < 0 || !complete);
  free (msg);
  kiln_buf_release (&in);
  free (z);
  free (a);
}

Test (decompress, sniff_reads_magic_only)
{
  cr_assert_eq (kiln_decomp_sniff ("\x1f\x8b\x08", 3), KILN_COMP_GZIP);
  cr_assert_eq (kiln_decomp_sniff ("\x28\xb5\x2f\xfd\x00", 5), KILN_COMP_ZSTD);
  cr_assert_eq (kiln_decomp_sniff ("\x1f", 1), KILN_COMP_NONE);
  cr_assert_eq (kiln_decomp_sniff ("BZh9", 4), KILN_COMP_NONE);
  cr_assert_eq (kiln_decomp_sniff ("", 0), KILN_COMP_NONE);
}

/* ---- the blob reader and extraction from a stream ---- */

struct slow {
  struct kiln_decomp_reader *r;
  const unsigned char *p; /* what the reader gave and we hand out in pieces */
  ssize_t left;
};

/* Hands the reader's output on in 100-byte pieces, so tar headers and
 * blocks straddle reads. */
static ssize_t
slow_read (void *opaque, const void **out, struct kiln_error **err)
{
  struct slow *s = opaque;
  if (s->left == 0)
    {
      const void *p;
      s->left = kiln_decomp_reader_read (s->r, &p, err);
      if (s->left <= 0)
        return s->left;
      s->p = p;
    }
  ssize_t n = s->left < 100 ? s->left : 100;
  *out = s->p;
  s->p += n, s->left -= n;
  return n;
}

static int
extract_stream_file (const char *tar, char **msg)
{
  char rel[256], dir[4300];
  struct kiln_error *err = NULL;
  struct kiln_decomp_reader *r = NULL;
  snprintf (rel, sizeof rel, "extract/%s", tar);
  snprintf (dir, sizeof dir, "%s/root-%s", kiln_test_tmpdir (), tar);
  cr_assert_eq (mkdir (dir, 0755), 0);
  int fd = open (kiln_test_data (rel), O_RDONLY | O_CLOEXEC);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cr_assert (fd >= 0 && dfd >= 0);
  cr_assert_eq (kiln_decomp_reader_open (fd, &r, &err), 0);
  struct slow s = { .r = r };
  struct kiln_extract_opts o = { .whiteouts = true, .keep_owner = true };
  int ret = kiln_extract_stream (slow_read, &s, kiln_decomp_reader_decompressed (r), tar, dfd, &o, &err);
  *msg = err ? kiln_error_format (err) : NULL;
  kiln_error_free (&err);
  kiln_decomp_reader_free (r);
  close (fd);
  close (dfd);
  return ret;
}

static char *
read_file (const char *tar, const char *rel)
{
  char p[8600];
  struct kiln_buf b = KILN_BUF_INIT;
  snprintf (p, sizeof p, "%s/root-%s/%s", kiln_test_tmpdir (), tar, rel);
  int fd = open (p, O_RDONLY);
  if (fd < 0)
    return NULL;
  char buf[256];
  ssize_t n;
  while ((n = read (fd, buf, sizeof buf)) > 0)
    kiln_buf_add (&b, buf, (size_t) n);
  close (fd);
  kiln_buf_add (&b, "", 1);
  return kiln_buf_detach (&b, NULL);
}

Test (decompress, stream_extraction_of_plain_gzip_and_zstd_tars)
{
  static const char *const ok[] = { "small.tar",    "small.tar.gz",      "small.tar.zst",
                                    "end_none.tar", "end_one_block.tar", "end_record_cut.tar" };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    {
      char *msg = NULL;
      cr_assert_eq (extract_stream_file (ok[i], &msg), 0, "%s: %s", ok[i], msg);
      char *c = read_file (ok[i], "hello/world");
      cr_assert_not_null (c, "%s: hello/world missing", ok[i]);
      cr_assert_str_eq (c, "hi\n");
      free (c);
    }
}

/* The same end-of-archive rules as kiln_extract_fd (test_extract.c):
 * Go's archive/tar fails on a damaged end marker. */
Test (decompress, stream_extraction_rejects_damaged_end_and_double_compression)
{
  static const char *const bad[] = {
    "end_first_block_cut.tar",   "end_second_block_cut.tar", "end_second_block_cut.tar.gz",
    "end_zero_then_garbage.tar", "end_data_cut.tar",         "small.tar.gz.gz"
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      char *msg = NULL;
      cr_assert_lt (extract_stream_file (bad[i], &msg), 0, "%s was accepted", bad[i]);
      char want[128];
      snprintf (want, sizeof want, "extract `%s`: ", bad[i]);
      cr_assert (strstr (msg, want), "%s", msg);
      if (i == 5)
        cr_assert (strstr (msg, "compressed more than once"), "%s", msg);
      else
        cr_assert (strcasestr (msg, "truncated"), "%s", msg);
      free (msg);
    }
}

static ssize_t
failing_read (void *opaque, const void **out, struct kiln_error **err)
{
  int *calls = opaque;
  static char block[512];
  if ((*calls)++ == 0)
    {
      *out = block; /* a zero block: libarchive wants more */
      return 1;
    }
  return kiln_error_set (err, ECONNRESET, KILN_E_NET, "the wire broke");
}

Test (decompress, stream_read_error_is_the_error_returned)
{
  char dir[4300];
  struct kiln_error *err = NULL;
  int calls = 0;
  snprintf (dir, sizeof dir, "%s/root", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (dir, 0755), 0);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY);
  struct kiln_extract_opts o = { .whiteouts = true };
  cr_assert_lt (kiln_extract_stream (failing_read, &calls, true, "wire", dfd, &o, &err), 0);
  char *msg = kiln_error_format (err);
  cr_assert (strstr (msg, "extract `wire`: the wire broke"), "%s", msg);
  cr_assert_eq (err->kind, KILN_E_NET);
  free (msg);
  kiln_error_free (&err);
  close (dfd);
}

/* ---- extraction details the fast paths must keep ---- */

#include <archive.h>
#include <archive_entry.h>
#include <sys/mman.h>

struct tar_ent {
  const char *path;
  mode_t type;
  const char *data; /* file content, or symlink target */
  int64_t size;     /* > strlen(data): a sparse file ending in a hole */
};

/* A pax tar of ents in a memfd, positioned at 0. */
static int
make_tar (const struct tar_ent *ents, size_t n)
{
  int fd = memfd_create ("tar", MFD_CLOEXEC);
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  cr_assert_eq (archive_write_open_fd (a, fd), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, ents[i].path);
      archive_entry_set_filetype (e, ents[i].type);
      archive_entry_set_perm (e, ents[i].type == AE_IFDIR ? 0755 : 0644);
      archive_entry_set_mtime (e, 1000000, 0);
      size_t len = ents[i].data && ents[i].type == AE_IFREG ? strlen (ents[i].data) : 0;
      if (ents[i].type == AE_IFLNK)
        archive_entry_set_symlink (e, ents[i].data);
      if (ents[i].type == AE_IFREG)
        archive_entry_set_size (e, ents[i].size > (int64_t) len ? ents[i].size : (int64_t) len);
      if (ents[i].type == AE_IFREG && ents[i].size > (int64_t) len)
        archive_entry_sparse_add_entry (e, 0, (la_int64_t) len);
      cr_assert_eq (archive_write_header (a, e), ARCHIVE_OK, "%s", archive_error_string (a));
      if (len)
        cr_assert_eq (archive_write_data (a, ents[i].data, len), (la_ssize_t) len);
      archive_entry_free (e);
    }
  archive_write_close (a);
  archive_write_free (a);
  lseek (fd, 0, SEEK_SET);
  return fd;
}

static char *
read_in (const char *dir, const char *rel)
{
  char p[4400];
  snprintf (p, sizeof p, "%s/%s/%s", kiln_test_tmpdir (), dir, rel);
  int fd = open (p, O_RDONLY);
  if (fd < 0)
    return NULL;
  char buf[256];
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  buf[n > 0 ? n : 0] = '\0';
  return kiln_xstrdup (buf);
}

static int
extract_ents (const struct tar_ent *ents, size_t n, const char *dir, char **msg)
{
  char p[4300];
  struct kiln_error *err = NULL;
  snprintf (p, sizeof p, "%s/%s", kiln_test_tmpdir (), dir);
  cr_assert_eq (mkdir (p, 0755), 0);
  int rootfd = open (p, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd = make_tar (ents, n);
  struct kiln_extract_opts o = { .whiteouts = true };
  int r = kiln_extract_fd (fd, dir, rootfd, &o, &err);
  *msg = err ? kiln_error_format (err) : NULL;
  kiln_error_free (&err);
  close (fd);
  close (rootfd);
  return r;
}

/* A directory replaced by a symlink between two of its entries: the second
 * entry follows the symlink (resolved in root), it does not land in the
 * directory the first one went into. */
Test (decompress, entry_after_its_directory_was_replaced_follows_the_new_one)
{
  static const struct tar_ent ents[] = {
    { "x", AE_IFDIR, NULL, 0 }, { "d", AE_IFDIR, NULL, 0 },  { "d/a", AE_IFREG, "a", 0 },
    { "d", AE_IFLNK, "x", 0 },  { "d/b", AE_IFREG, "b", 0 },
  };
  char *msg = NULL;
  cr_assert_eq (extract_ents (ents, sizeof ents / sizeof *ents, "r1", &msg), 0, "%s", msg);
  char *b = read_in ("r1", "x/b");
  cr_assert_not_null (b, "d/b did not land in x/b through the symlink");
  cr_assert_str_eq (b, "b");
  char p[4400];
  struct stat st;
  snprintf (p, sizeof p, "%s/r1/x/b", kiln_test_tmpdir ());
  cr_assert_eq (lstat (p, &st), 0, "d/b did not land in x/b through the symlink");
  snprintf (p, sizeof p, "%s/r1/d", kiln_test_tmpdir ());
  cr_assert_eq (lstat (p, &st), 0);
  cr_assert (S_ISLNK (st.st_mode));
  snprintf (p, sizeof p, "%s/r1/x/a", kiln_test_tmpdir ());
  cr_assert_neq (lstat (p, &st), 0, "d/a must not reappear in x");
  free (b);
}

/* A file over an existing file, a file over a directory, and a directory's
 * file after the directory became a file: replaced, replaced, refused. */
Test (decompress, files_replace_what_is_there)
{
  static const struct tar_ent ents[] = {
    { "f", AE_IFREG, "one", 0 }, { "f", AE_IFREG, "two", 0 },        { "d", AE_IFDIR, NULL, 0 },
    { "d/x", AE_IFREG, "x", 0 }, { "d", AE_IFREG, "now a file", 0 },
  };
  char *msg = NULL;
  cr_assert_eq (extract_ents (ents, sizeof ents / sizeof *ents, "r2", &msg), 0, "%s", msg);
  char *f = read_in ("r2", "f"), *d = read_in ("r2", "d");
  cr_assert_str_eq (f, "two");
  cr_assert_str_eq (d, "now a file");
  free (f);
  free (d);
  static const struct tar_ent bad[] = {
    { "d", AE_IFDIR, NULL, 0 },
    { "d/x", AE_IFREG, "x", 0 },
    { "d", AE_IFREG, "file", 0 },
    { "d/y", AE_IFREG, "y", 0 },
  };
  cr_assert_lt (extract_ents (bad, sizeof bad / sizeof *bad, "r3", &msg), 0);
  cr_assert (strstr (msg, "d/y"), "%s", msg);
  free (msg);
}

Test (decompress, sparse_file_ending_in_a_hole_keeps_its_size)
{
  static const struct tar_ent ents[] = { { "s", AE_IFREG, "head", 100000 }, { "t", AE_IFREG, "full", 0 } };
  char *msg = NULL, p[4400];
  struct stat st;
  cr_assert_eq (extract_ents (ents, 2, "r4", &msg), 0, "%s", msg);
  snprintf (p, sizeof p, "%s/r4/s", kiln_test_tmpdir ());
  cr_assert_eq (stat (p, &st), 0);
  cr_assert_eq (st.st_size, 100000);
  snprintf (p, sizeof p, "%s/r4/t", kiln_test_tmpdir ());
  cr_assert_eq (stat (p, &st), 0);
  cr_assert_eq (st.st_size, 4);
}
