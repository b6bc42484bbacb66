/* tests/test_layer.c - the streaming layer writer: determinism, digests,
 * tar contents, bounded memory, size mismatches, abort. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "helpers.h"
#include "kiln/cache.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/digest.h"
#include "kiln/layer.h"
#include "kiln/store.h"
#include "kiln/util.h"

TestSuite (layer, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static struct kiln_store *
open_store (void)
{
  return kiln_test_store_open ();
}

static char *
blob_path (const struct kiln_digest *d)
{
  return kiln_xasprintf ("%s/store/blobs/sha256/%s", kiln_test_tmpdir (), kiln_digest_hex (d));
}

static struct kiln_layer_writer *
new_writer (struct kiln_store *st, enum kiln_compression c, int64_t epoch, bool clamp)
{
  struct kiln_layer_opts opts = { .compression = c, .level = -1, .clamp_mtime = clamp, .epoch = epoch };
  struct kiln_layer_writer *w = NULL;
  struct kiln_error *err = NULL;
  int r = kiln_layer_writer_new (st, &opts, &w, &err);
  cr_assert_eq (r, 0, "writer new: %s", err ? err->msg : "");
  return w;
}

static void
add_data (struct kiln_layer_writer *w, const char *path, mode_t mode, int64_t mtime, const char *data)
{
  struct kiln_layer_entry e = { .path = path, .mode = S_IFREG | mode, .uid = 0, .gid = 0, .mtime = mtime };
  struct kiln_error *err = NULL;
  int r = kiln_layer_writer_add_data (w, &e, data, strlen (data), &err);
  cr_assert_eq (r, 0, "add_data `%s`: %s", path, err ? err->msg : "");
}

static void
add_entry (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, int fd)
{
  struct kiln_error *err = NULL;
  int r = kiln_layer_writer_add (w, e, fd, &err);
  cr_assert_eq (r, 0, "add `%s`: %s", e->path, err ? err->msg : "");
}

static void
finish (struct kiln_layer_writer *w, struct kiln_layer_result *res)
{
  struct kiln_error *err = NULL;
  int r = kiln_layer_writer_finish (w, res, &err);
  cr_assert_eq (r, 0, "finish: %s", err ? err->msg : "");
  kiln_layer_writer_free (w);
}

/* A small fixed tree; mtime of every entry is `mtime`. */
static void
build_small (struct kiln_store *st, enum kiln_compression c, int64_t mtime, int64_t epoch, bool clamp,
             struct kiln_layer_result *res)
{
  struct kiln_layer_writer *w = new_writer (st, c, epoch, clamp);
  struct kiln_layer_entry dir = { .path = "etc", .mode = S_IFDIR | 0755, .mtime = mtime };
  add_entry (w, &dir, -1);
  add_data (w, "etc/hostname", 0644, mtime, "kiln\n");
  add_data (w, "etc/motd", 0600, mtime, "hello, layer\n");
  finish (w, res);
}

/* ---- decompression done independently of src/image/compress.c ---- */

static void
read_file (const char *path, unsigned char **data, size_t *len)
{
  FILE *f = fopen (path, "rb");
  cr_assert_not_null (f, "open %s: %s", path, strerror (errno));
  struct stat sb;
  cr_assert_eq (fstat (fileno (f), &sb), 0);
  *len = (size_t) sb.st_size;
  *data = kiln_xmalloc (*len + 1);
  cr_assert_eq (fread (*data, 1, *len, f), *len);
  fclose (f);
}

static void
gunzip (const unsigned char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
  z_stream zs = { 0 };
  /* 16 + 15: gzip framing, checks CRC32 and ISIZE of the trailer. */
  cr_assert_eq (inflateInit2 (&zs, 16 + 15), Z_OK);
  size_t cap = 1 << 16;
  *out = kiln_xmalloc (cap);
  zs.next_in = (Bytef *) in;
  zs.avail_in = (uInt) inlen;
  int zr;
  do
    {
      if (zs.total_out == cap)
        {
          cap *= 2;
          *out = kiln_xrealloc (*out, cap);
        }
      zs.next_out = *out + zs.total_out;
      zs.avail_out = (uInt) (cap - zs.total_out);
      zr = inflate (&zs, Z_NO_FLUSH);
      cr_assert (zr == Z_OK || zr == Z_STREAM_END, "inflate: %d %s", zr, zs.msg ? zs.msg : "");
    }
  while (zr != Z_STREAM_END);
  cr_assert_eq (zs.avail_in, 0, "trailing garbage after gzip stream");
  *outlen = zs.total_out;
  inflateEnd (&zs);
}

static void
unzstd (const unsigned char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
  ZSTD_DStream *ds = ZSTD_createDStream ();
  size_t cap = 1 << 16, len = 0;
  *out = kiln_xmalloc (cap);
  ZSTD_inBuffer ib = { in, inlen, 0 };
  size_t zr = 1;
  while (ib.pos < ib.size || zr != 0)
    {
      if (len == cap)
        {
          cap *= 2;
          *out = kiln_xrealloc (*out, cap);
        }
      ZSTD_outBuffer ob = { *out + len, cap - len, 0 };
      size_t before = ib.pos;
      zr = ZSTD_decompressStream (ds, &ob, &ib);
      cr_assert (!ZSTD_isError (zr), "zstd: %s", ZSTD_getErrorName (zr));
      len += ob.pos;
      cr_assert (ob.pos > 0 || ib.pos > before || zr == 0, "zstd made no progress");
    }
  *outlen = len;
  ZSTD_freeDStream (ds);
}

/* The uncompressed tar of a stored layer blob. */
static void
layer_tar (const struct kiln_layer_result *res, unsigned char **tar, size_t *len)
{
  kiln_autofree char *path = blob_path (&res->desc.digest);
  kiln_autofree unsigned char *blob = NULL;
  size_t blen;
  read_file (path, &blob, &blen);
  if (strcmp (res->desc.media_type, KILN_MT_OCI_LAYER_GZIP) == 0)
    gunzip (blob, blen, tar, len);
  else if (strcmp (res->desc.media_type, KILN_MT_OCI_LAYER_ZSTD) == 0)
    unzstd (blob, blen, tar, len);
  else
    {
      *tar = kiln_steal_ptr (&blob);
      *len = blen;
    }
}

/* ---- tar reading ---- */

struct tar_entry {
  char *name, *uname, *gname, *symlink, *hardlink, *xattr_name, *xattr_value;
  mode_t mode;
  int64_t uid, gid, mtime, size;
  dev_t rdev;
  bool uname_set, gname_set, atime_set, ctime_set;
};

static size_t
read_entries (const unsigned char *tar, size_t len, struct tar_entry *out, size_t max)
{
  struct archive *a = archive_read_new ();
  archive_read_support_format_tar (a);
  cr_assert_eq (archive_read_open_memory (a, tar, len), ARCHIVE_OK, "%s", archive_error_string (a));
  struct archive_entry *ae;
  size_t n = 0;
  int r;
  while ((r = archive_read_next_header (a, &ae)) == ARCHIVE_OK)
    {
      cr_assert_lt (n, max);
      struct tar_entry *t = &out[n++];
      memset (t, 0, sizeof *t);
      t->name = kiln_xstrdup (archive_entry_pathname (ae));
      t->uname_set = archive_entry_uname (ae) != NULL && archive_entry_uname (ae)[0] != '\0';
      t->gname_set = archive_entry_gname (ae) != NULL && archive_entry_gname (ae)[0] != '\0';
      t->atime_set = archive_entry_atime_is_set (ae);
      t->ctime_set = archive_entry_ctime_is_set (ae);
      t->symlink = archive_entry_symlink (ae) ? kiln_xstrdup (archive_entry_symlink (ae)) : NULL;
      t->hardlink = archive_entry_hardlink (ae) ? kiln_xstrdup (archive_entry_hardlink (ae)) : NULL;
      t->mode = archive_entry_mode (ae);
      t->uid = archive_entry_uid (ae);
      t->gid = archive_entry_gid (ae);
      t->mtime = archive_entry_mtime (ae);
      t->size = archive_entry_size (ae);
      t->rdev = archive_entry_rdev (ae);
      archive_entry_xattr_reset (ae);
      const char *xn;
      const void *xv;
      size_t xs;
      if (archive_entry_xattr_next (ae, &xn, &xv, &xs) == ARCHIVE_OK)
        {
          t->xattr_name = kiln_xstrdup (xn);
          t->xattr_value = kiln_xstrndup (xv, xs);
        }
    }
  cr_assert_eq (r, ARCHIVE_EOF, "read tar: %s", archive_error_string (a));
  archive_read_free (a);
  return n;
}

static void
free_entries (struct tar_entry *ents, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free (ents[i].name);
      free (ents[i].symlink);
      free (ents[i].hardlink);
      free (ents[i].xattr_name);
      free (ents[i].xattr_value);
    }
}

static void
digest_of_file (const char *path, struct kiln_digest *d, uint64_t *size)
{
  struct kiln_error *err = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  cr_assert_geq (fd, 0, "open %s: %s", path, strerror (errno));
  cr_assert_eq (kiln_digest_fd (fd, d, size, &err), 0);
  close (fd);
}

static size_t
count_ingest (void)
{
  kiln_autofree char *path = kiln_xasprintf ("%s/store/ingest", kiln_test_tmpdir ());
  DIR *d = opendir (path);
  if (d == NULL)
    return 0;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      n++;
  closedir (d);
  return n;
}

/* ---- tests ---- */

Test (layer, parses_compression_names)
{
  enum kiln_compression c;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_compression_parse ("gzip", &c, &err), 0);
  cr_assert_eq (c, KILN_COMP_GZIP);
  cr_assert_eq (kiln_compression_parse ("zstd", &c, &err), 0);
  cr_assert_eq (c, KILN_COMP_ZSTD);
  cr_assert_eq (kiln_compression_parse ("none", &c, &err), 0);
  cr_assert_eq (c, KILN_COMP_NONE);
  cr_assert_eq (kiln_compression_parse ("uncompressed", &c, &err), 0);
  cr_assert_eq (c, KILN_COMP_NONE);
  cr_assert_str_eq (kiln_compression_media_type (KILN_COMP_GZIP), KILN_MT_OCI_LAYER_GZIP);
  cr_assert_str_eq (kiln_compression_media_type (KILN_COMP_ZSTD), KILN_MT_OCI_LAYER_ZSTD);
  cr_assert_str_eq (kiln_compression_media_type (KILN_COMP_NONE), KILN_MT_OCI_LAYER);
}

Test (layer, rejects_unknown_compression_listing_choices)
{
  enum kiln_compression c = KILN_COMP_ZSTD;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_compression_parse ("bzip2", &c, &err), 0);
  cr_assert_eq (err->kind, KILN_E_USAGE);
  cr_assert_not_null (strstr (err->msg, "`bzip2`"), "%s", err->msg);
  cr_assert_not_null (strstr (err->msg, "gzip"), "%s", err->msg);
  cr_assert_not_null (strstr (err->msg, "zstd"), "%s", err->msg);
  kiln_error_free (&err);
}

static void
check_deterministic (enum kiln_compression c, const char *mt)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result a = { 0 }, b = { 0 }, other = { 0 };
  build_small (st, c, 1700000000, 0, false, &a);
  build_small (st, c, 1700000000, 0, false, &b);
  build_small (st, c, 1700000001, 0, false, &other);
  cr_assert_str_eq (a.desc.media_type, mt);
  cr_assert_str_eq (a.diff_id.s, b.diff_id.s);
  cr_assert_str_eq (a.desc.digest.s, b.desc.digest.s);
  cr_assert_eq (a.desc.size, b.desc.size);
  cr_assert_str_neq (a.diff_id.s, other.diff_id.s);
  cr_assert_str_neq (a.desc.digest.s, other.desc.digest.s);
  kiln_layer_result_clear (&a);
  kiln_layer_result_clear (&b);
  kiln_layer_result_clear (&other);
  kiln_store_free (st);
}

Test (layer, same_entries_give_same_digests_gzip)
{
  check_deterministic (KILN_COMP_GZIP, KILN_MT_OCI_LAYER_GZIP);
}

Test (layer, same_entries_give_same_digests_zstd)
{
  check_deterministic (KILN_COMP_ZSTD, KILN_MT_OCI_LAYER_ZSTD);
}

Test (layer, same_entries_give_same_digests_none)
{
  check_deterministic (KILN_COMP_NONE, KILN_MT_OCI_LAYER);
}

Test (layer, clamp_mtime_makes_later_mtimes_equal)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result a = { 0 }, b = { 0 }, unclamped = { 0 };
  build_small (st, KILN_COMP_GZIP, 1700000000, 1000, true, &a);
  build_small (st, KILN_COMP_GZIP, 1800000000, 1000, true, &b);
  build_small (st, KILN_COMP_GZIP, 1700000000, 1000, false, &unclamped);
  cr_assert_str_eq (a.desc.digest.s, b.desc.digest.s);
  cr_assert_str_neq (a.desc.digest.s, unclamped.desc.digest.s);
  unsigned char *tar;
  size_t len;
  layer_tar (&a, &tar, &len);
  struct tar_entry ents[4];
  cr_assert_eq (read_entries (tar, len, ents, 4), 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq (ents[i].mtime, 1000);
  free_entries (ents, 3);
  free (tar);
  kiln_layer_result_clear (&a);
  kiln_layer_result_clear (&b);
  kiln_layer_result_clear (&unclamped);
  kiln_store_free (st);
}

Test (layer, ignores_subsecond_mtime)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result a = { 0 }, b = { 0 };
  for (int i = 0; i < 2; i++)
    {
      struct kiln_layer_writer *w = new_writer (st, KILN_COMP_NONE, 0, false);
      /* a name past 100 bytes needs a pax header, where nsec could go */
      struct kiln_layer_entry d = { .path = "d12345678901234567890123456789012345678901234567890123456789"
                                            "012345678901234567890123456789012345678901234567890123456789",
                                    .mode = S_IFDIR | 0755,
                                    .mtime = 5,
                                    .mtime_nsec = i ? 999 : 1 };
      add_entry (w, &d, -1);
      finish (w, i ? &b : &a);
    }
  cr_assert_str_eq (a.diff_id.s, b.diff_id.s);
  kiln_layer_result_clear (&a);
  kiln_layer_result_clear (&b);
  kiln_store_free (st);
}

static void
check_digests (enum kiln_compression c)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result res = { 0 };
  build_small (st, c, 1700000000, 0, false, &res);
  /* blob digest = sha256 of the stored file */
  kiln_autofree char *path = blob_path (&res.desc.digest);
  struct kiln_digest fd_digest;
  uint64_t size;
  digest_of_file (path, &fd_digest, &size);
  cr_assert_str_eq (fd_digest.s, res.desc.digest.s);
  cr_assert_eq ((int64_t) size, res.desc.size);
  /* diffID = sha256 of the decompressed blob */
  unsigned char *tar;
  size_t len;
  layer_tar (&res, &tar, &len);
  struct kiln_digest tar_digest;
  kiln_digest_of (tar, len, &tar_digest);
  cr_assert_str_eq (tar_digest.s, res.diff_id.s);
  cr_assert_eq (len, res.tar_size);
  cr_assert_eq (len % 512, 0);
  free (tar);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

Test (layer, digests_match_stored_and_decompressed_bytes_gzip)
{
  check_digests (KILN_COMP_GZIP);
}

Test (layer, digests_match_stored_and_decompressed_bytes_zstd)
{
  check_digests (KILN_COMP_ZSTD);
}

Test (layer, digests_match_stored_and_decompressed_bytes_none)
{
  check_digests (KILN_COMP_NONE);
}

Test (layer, gzip_header_is_fixed)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result res = { 0 };
  build_small (st, KILN_COMP_GZIP, 1700000000, 0, false, &res);
  kiln_autofree char *path = blob_path (&res.desc.digest);
  kiln_autofree unsigned char *blob = NULL;
  size_t len;
  read_file (path, &blob, &len);
  static const unsigned char want[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };
  cr_assert_gt (len, 18);
  cr_assert_eq (memcmp (blob, want, 10), 0, "gzip header carries mtime/name/os");
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

Test (layer, empty_layer_is_end_of_archive_only)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result res = { 0 };
  finish (new_writer (st, KILN_COMP_GZIP, 0, false), &res);
  cr_assert_eq (res.tar_size, 1024);
  unsigned char *tar;
  size_t len;
  layer_tar (&res, &tar, &len);
  cr_assert_eq (len, 1024);
  for (size_t i = 0; i < len; i++)
    cr_assert_eq (tar[i], 0);
  struct tar_entry ents[1];
  cr_assert_eq (read_entries (tar, len, ents, 1), 0);
  free (tar);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

static const struct tar_entry *
find (const struct tar_entry *ents, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (ents[i].name, name) == 0)
      return &ents[i];
  cr_assert_fail ("no entry `%s` in tar", name);
  return NULL;
}

static void
write_rich (struct kiln_layer_writer *w, int fd)
{
  struct kiln_layer_entry dir = { .path = "usr", .mode = S_IFDIR | 01777, .uid = 0, .gid = 0, .mtime = 100 };
  add_entry (w, &dir, -1);
  const char *xn[] = { "user.kiln" };
  const void *xv[] = { "v1" };
  size_t xs[] = { 2 };
  struct kiln_layer_entry bin = { .path = "usr/su",
                                  .mode = S_IFREG | 04755,
                                  .uid = 70000,
                                  .gid = 70001,
                                  .mtime = 200,
                                  .size = 6,
                                  .xattr_names = xn,
                                  .xattr_values = xv,
                                  .xattr_sizes = xs,
                                  .nxattrs = 1 };
  add_entry (w, &bin, fd);
  struct kiln_layer_entry hl = { .path = "usr/su2",
                                 .mode = S_IFREG | 04755,
                                 .uid = 70000,
                                 .gid = 70001,
                                 .mtime = 200,
                                 .size = 6,
                                 .link = "usr/su",
                                 .hardlink = true };
  add_entry (w, &hl, -1);
  struct kiln_layer_entry sl = { .path = "usr/sh", .mode = S_IFLNK | 0777, .mtime = 300, .link = "../bin/busybox" };
  add_entry (w, &sl, -1);
  struct kiln_layer_entry dev = { .path = "usr/null", .mode = S_IFCHR | 0666, .mtime = 300, .rdev = makedev (1, 3) };
  add_entry (w, &dev, -1);
}

Test (layer, tar_has_expected_entries)
{
  struct kiln_store *st = open_store ();
  kiln_autofree char *fpath = kiln_xasprintf ("%s/su", kiln_test_tmpdir ());
  int fd = open (fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert_eq (write (fd, "setuid", 6), 6);
  cr_assert_eq (lseek (fd, 0, SEEK_SET), 0);
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_NONE, 0, false);
  write_rich (w, fd);
  close (fd);
  struct kiln_layer_result res = { 0 };
  finish (w, &res);
  unsigned char *tar;
  size_t len;
  layer_tar (&res, &tar, &len);
  struct tar_entry ents[8];
  size_t n = read_entries (tar, len, ents, 8);
  cr_assert_eq (n, 5);
  cr_assert_str_eq (ents[0].name, "usr/");
  /* libarchive's reader adds the slash itself: check the raw ustar name */
  cr_assert_eq (memcmp (tar, "usr/", 5), 0, "directories carry a trailing slash");
  for (size_t i = 0; i < n; i++)
    cr_assert (!ents[i].uname_set && !ents[i].gname_set && !ents[i].atime_set && !ents[i].ctime_set,
               "`%s` has uname/gname/atime/ctime", ents[i].name);
  cr_assert_eq (ents[0].mode, S_IFDIR | 01777);
  const struct tar_entry *su = find (ents, n, "usr/su");
  cr_assert_eq (su->mode, S_IFREG | 04755);
  cr_assert_eq (su->uid, 70000);
  cr_assert_eq (su->gid, 70001);
  cr_assert_eq (su->size, 6);
  cr_assert_eq (su->mtime, 200);
  cr_assert_str_eq (su->xattr_name, "user.kiln");
  cr_assert_str_eq (su->xattr_value, "v1");
  const struct tar_entry *hl = find (ents, n, "usr/su2");
  cr_assert_str_eq (hl->hardlink, "usr/su");
  cr_assert_eq (hl->size, 0);
  const struct tar_entry *sl = find (ents, n, "usr/sh");
  cr_assert_eq (sl->mode & S_IFMT, S_IFLNK);
  cr_assert_str_eq (sl->symlink, "../bin/busybox");
  const struct tar_entry *dev = find (ents, n, "usr/null");
  cr_assert_eq (dev->mode, S_IFCHR | 0666);
  cr_assert_eq (dev->rdev, makedev (1, 3));
  /* the file content follows its header */
  cr_assert_not_null (memmem (tar, len, "setuid", 6));
  /* xattrs as SCHILY.xattr only, the key Docker and containerd read */
  cr_assert_not_null (memmem (tar, len, "SCHILY.xattr.user.kiln=v1", 25));
  cr_assert_null (memmem (tar, len, "LIBARCHIVE.xattr", 16));
  free_entries (ents, n);
  free (tar);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

Test (layer, add_data_writes_in_memory_content)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_ZSTD, 0, false);
  add_data (w, "app/run.sh", 0755, 42, "#!/bin/sh\necho hi\n");
  struct kiln_layer_result res = { 0 };
  finish (w, &res);
  unsigned char *tar;
  size_t len;
  layer_tar (&res, &tar, &len);
  struct tar_entry ents[2];
  cr_assert_eq (read_entries (tar, len, ents, 2), 1);
  cr_assert_str_eq (ents[0].name, "app/run.sh");
  cr_assert_eq (ents[0].mode, S_IFREG | 0755);
  cr_assert_eq (ents[0].size, 18);
  cr_assert_not_null (memmem (tar, len, "#!/bin/sh\necho hi\n", 18));
  free_entries (ents, 1);
  free (tar);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

static void
build_named (struct kiln_store *st, const char *name, struct kiln_layer_result *res)
{
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_NONE, 0, false);
  add_data (w, name, 0644, 1, "x");
  finish (w, res);
}

Test (layer, non_ascii_names_are_kept_byte_for_byte_whatever_the_locale)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result c = { 0 }, u = { 0 }, bad = { 0 };
  setlocale (LC_ALL, "C");
  build_named (st, "caf\xc3\xa9", &c);
  build_named (st, "bad\xff", &bad);
  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    cr_skip_test ("no C.UTF-8 locale");
  build_named (st, "caf\xc3\xa9", &u);
  setlocale (LC_ALL, "C");
  cr_assert_str_eq (c.diff_id.s, u.diff_id.s, "tar bytes depend on the locale");
  unsigned char *tar;
  size_t len;
  layer_tar (&c, &tar, &len);
  cr_assert_not_null (memmem (tar, len, "path=caf\xc3\xa9\n", 11));
  cr_assert_null (memmem (tar, len, "hdrcharset", 10));
  free (tar);
  /* not UTF-8: stored raw, flagged as binary */
  layer_tar (&bad, &tar, &len);
  cr_assert_not_null (memmem (tar, len, "path=bad\xff\n", 10));
  cr_assert_not_null (memmem (tar, len, "hdrcharset=BINARY", 17));
  free (tar);
  kiln_layer_result_clear (&c);
  kiln_layer_result_clear (&u);
  kiln_layer_result_clear (&bad);
  kiln_store_free (st);
}

static int
make_big_file (const char *path, size_t size)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert_geq (fd, 0);
  size_t chunk = 1 << 20;
  uint64_t *buf = kiln_xmalloc (chunk);
  uint64_t x = 88172645463325252ull;
  for (size_t done = 0; done < size; done += chunk)
    {
      for (size_t i = 0; i < chunk / 8; i++)
        {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          buf[i] = x;
        }
      cr_assert_eq (write (fd, buf, chunk), (ssize_t) chunk);
    }
  free (buf);
  cr_assert_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

static long
maxrss_kib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

Test (layer, large_file_streams_with_bounded_memory, .timeout = 120)
{
  const size_t size = 64u << 20;
  struct kiln_store *st = open_store ();
  kiln_autofree char *fpath = kiln_xasprintf ("%s/big", kiln_test_tmpdir ());
  int fd = make_big_file (fpath, size);
  long before = maxrss_kib ();
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_ZSTD, 0, false);
  struct kiln_layer_entry e = { .path = "big", .mode = S_IFREG | 0644, .mtime = 1, .size = size };
  add_entry (w, &e, fd);
  close (fd);
  struct kiln_layer_result res = { 0 };
  finish (w, &res);
  long grown = maxrss_kib () - before;
  /* the pipe (2 MiB), zstd's job buffers and worker tables; not the file */
  cr_assert_lt (grown, 32 * 1024, "rss grew by %ld KiB for a 64 MiB file", grown);
  cr_assert_gt (res.tar_size, size);
  /* the blob holds the whole file: random data does not compress */
  cr_assert_gt ((uint64_t) res.desc.size, size);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

static void
check_size_mismatch (size_t actual, uint64_t claimed)
{
  struct kiln_store *st = open_store ();
  kiln_autofree char *fpath = kiln_xasprintf ("%s/f", kiln_test_tmpdir ());
  int fd = open (fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  char data[256];
  memset (data, 'x', sizeof data);
  cr_assert_eq (write (fd, data, actual), (ssize_t) actual);
  cr_assert_eq (lseek (fd, 0, SEEK_SET), 0);
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_GZIP, 0, false);
  struct kiln_layer_entry e = { .path = "etc/changed", .mode = S_IFREG | 0644, .size = claimed };
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_layer_writer_add (w, &e, fd, &err), 0);
  cr_assert_eq (err->kind, KILN_E_IO);
  cr_assert_not_null (strstr (err->msg, "`etc/changed`"), "%s", err->msg);
  kiln_error_free (&err);
  /* the header already promised the old size: the layer cannot be finished */
  struct kiln_layer_result res = { 0 };
  cr_assert_lt (kiln_layer_writer_finish (w, &res, &err), 0);
  kiln_error_free (&err);
  kiln_layer_writer_free (w);
  close (fd);
  cr_assert_eq (count_ingest (), 0);
  kiln_store_free (st);
}

Test (layer, fails_on_file_shorter_than_size)
{
  check_size_mismatch (50, 100);
}

Test (layer, fails_on_file_longer_than_size)
{
  check_size_mismatch (200, 100);
}

Test (layer, free_unfinished_writer_leaves_no_ingest_file)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_ZSTD, 0, false);
  add_data (w, "a", 0644, 1, "some content");
  cr_assert_eq (count_ingest (), 1, "the writer streams into an ingest file");
  kiln_layer_writer_free (w);
  cr_assert_eq (count_ingest (), 0);
  kiln_store_free (st);
}

Test (layer, rejects_absolute_path)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_writer *w = new_writer (st, KILN_COMP_NONE, 0, false);
  struct kiln_layer_entry e = { .path = "/etc", .mode = S_IFDIR | 0755 };
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_layer_writer_add (w, &e, -1, &err), 0);
  kiln_error_free (&err);
  kiln_layer_writer_free (w);
  kiln_store_free (st);
}

Test (layer, rejects_out_of_range_level)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_opts opts = { .compression = KILN_COMP_GZIP, .level = 12 };
  struct kiln_layer_writer *w = NULL;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_layer_writer_new (st, &opts, &w, &err), 0);
  cr_assert_eq (err->kind, KILN_E_USAGE);
  kiln_error_free (&err);
  cr_assert_eq (count_ingest (), 0);
  kiln_store_free (st);
}

static int
collect_sink (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  (void) err;
  struct kiln_buf *b = opaque;
  kiln_buf_add (b, data, len);
  return 0;
}

Test (layer, compressor_output_is_independent_of_input_chunking)
{
  enum kiln_compression cs[] = { KILN_COMP_GZIP, KILN_COMP_ZSTD };
  size_t len = 300000;
  char *in = kiln_xmalloc (len);
  for (size_t i = 0; i < len; i++)
    in[i] = (char) ("kiln layer "[i % 11] + (i / 4096) % 3);
  for (size_t k = 0; k < 2; k++)
    {
      struct kiln_buf a = KILN_BUF_INIT, b = KILN_BUF_INIT;
      struct kiln_compressor *ca, *cb;
      struct kiln_error *err = NULL;
      cr_assert_eq (kiln_compressor_new (cs[k], -1, collect_sink, &a, &ca, &err), 0);
      cr_assert_eq (kiln_compressor_new (cs[k], -1, collect_sink, &b, &cb, &err), 0);
      cr_assert_eq (kiln_compressor_write (ca, in, len, &err), 0);
      for (size_t off = 0; off < len; off += 777)
        cr_assert_eq (kiln_compressor_write (cb, in + off, off + 777 > len ? len - off : 777, &err), 0);
      cr_assert_eq (kiln_compressor_finish (ca, &err), 0);
      cr_assert_eq (kiln_compressor_finish (cb, &err), 0);
      cr_assert_eq (a.len, b.len);
      cr_assert_eq (memcmp (a.buf, b.buf, a.len), 0);
      cr_assert_lt (a.len, len / 10);
      kiln_compressor_free (ca);
      kiln_compressor_free (cb);
      kiln_buf_release (&a);
      kiln_buf_release (&b);
    }
  free (in);
}

static int
failing_sink (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  (void) opaque;
  (void) data;
  (void) len;
  return kiln_error_set (err, ENOSPC, KILN_E_IO, "write blob");
}

Test (layer, compressor_reports_sink_failure)
{
  enum kiln_compression cs[] = { KILN_COMP_GZIP, KILN_COMP_ZSTD, KILN_COMP_NONE };
  for (size_t k = 0; k < 3; k++)
    {
      struct kiln_compressor *c;
      struct kiln_error *err = NULL;
      cr_assert_eq (kiln_compressor_new (cs[k], -1, failing_sink, NULL, &c, &err), 0);
      /* gzip/zstd may hold small input back; finish must flush it */
      int r = kiln_compressor_write (c, "data", 4, &err);
      if (r == 0)
        r = kiln_compressor_finish (c, &err);
      cr_assert_lt (r, 0, "compression %zu swallowed a sink error", k);
      cr_assert_eq (err->errnum, ENOSPC);
      kiln_error_free (&err);
      kiln_compressor_free (c);
    }
}

/* ---- threads, ISA-L gzip, multithreaded zstd ---- */

/* Random 1 MiB blocks alternating with text blocks: both the stored and
 * the compressed paths of gzip, several zstd jobs. */
static unsigned char *
mixed_data (size_t len)
{
  unsigned char *p = kiln_xmalloc (len);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < len; i++)
    {
      if ((i >> 20) % 2 == 0)
        {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          p[i] = (unsigned char) x;
        }
      else
        p[i] = (unsigned char) ("token 0123 weight=0.5 the quick brown fox\n"[i % 42] + (i / 8192) % 5);
    }
  return p;
}

static void
compress_all (enum kiln_compression c, int level, int threads, const unsigned char *in, size_t len,
              struct kiln_buf *out)
{
  struct kiln_compressor *k;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_compressor_new_mt (c, level, threads, collect_sink, out, &k, &err), 0, "%s", err ? err->msg : "");
  /* odd chunk sizes: block boundaries must not follow the writes */
  for (size_t off = 0; off < len; off += 300007)
    cr_assert_eq (kiln_compressor_write (k, in + off, len - off < 300007 ? len - off : 300007, &err), 0);
  cr_assert_eq (kiln_compressor_finish (k, &err), 0, "%s", err ? err->msg : "");
  kiln_compressor_free (k);
}

static void
check_same_output_for_threads (enum kiln_compression c)
{
  size_t len = (7u << 20) + 12345;
  unsigned char *in = mixed_data (len);
  struct kiln_buf ref = KILN_BUF_INIT;
  compress_all (c, -1, 1, in, len, &ref);
  int threads[] = { 2, 8 };
  for (size_t i = 0; i < 2; i++)
    {
      struct kiln_buf b = KILN_BUF_INIT;
      compress_all (c, -1, threads[i], in, len, &b);
      cr_assert_eq (b.len, ref.len, "%d threads: %zu bytes, 1 thread: %zu", threads[i], b.len, ref.len);
      cr_assert_eq (memcmp (b.buf, ref.buf, b.len), 0, "%d threads changed the bytes", threads[i]);
      kiln_buf_release (&b);
    }
  unsigned char *back;
  size_t blen;
  if (c == KILN_COMP_GZIP)
    gunzip ((unsigned char *) ref.buf, ref.len, &back, &blen);
  else
    unzstd ((unsigned char *) ref.buf, ref.len, &back, &blen);
  cr_assert_eq (blen, len);
  cr_assert_eq (memcmp (back, in, len), 0, "round trip changed the data");
  free (back);
  kiln_buf_release (&ref);
  free (in);
}

Test (layer, gzip_output_is_the_same_for_1_2_and_8_threads, .timeout = 60)
{
  check_same_output_for_threads (KILN_COMP_GZIP);
}

Test (layer, zstd_output_is_the_same_for_1_2_and_8_threads, .timeout = 60)
{
  check_same_output_for_threads (KILN_COMP_ZSTD);
}

/* Leaves `v` in every 16-bit word of the stack below the caller, where the
 * compressor's locals will be: a field the compressor forgets to set then
 * reads v. */
static __attribute__ ((noinline)) void
dirty_stack (uint16_t v)
{
  volatile uint16_t area[256 * 1024];
  for (size_t i = 0; i < sizeof area / sizeof area[0]; i++)
    area[i] = v;
}

/* ISA-L's isal_deflate_stateless_init() leaves hist_bits (the window size)
 * as it finds it; a stale 1-15 there once gave one layer two digests. */
Test (layer, gzip_output_does_not_depend_on_stack_contents)
{
  size_t len = (3u << 20) + 777;
  unsigned char *in = mixed_data (len);
  struct kiln_buf ref = KILN_BUF_INIT;
  dirty_stack (0);
  compress_all (KILN_COMP_GZIP, -1, 1, in, len, &ref);
  for (uint16_t v = 1; v <= 15; v += 7)
    {
      struct kiln_buf b = KILN_BUF_INIT;
      dirty_stack (v);
      compress_all (KILN_COMP_GZIP, -1, 1, in, len, &b);
      cr_assert_eq (b.len, ref.len, "stack word %u: %zu bytes, clean stack: %zu", v, b.len, ref.len);
      cr_assert_eq (memcmp (b.buf, ref.buf, b.len), 0, "stack word %u changed the bytes", v);
      kiln_buf_release (&b);
    }
  kiln_buf_release (&ref);
  free (in);
}

/* The layer as a whole (pipe thread included) through KILN_THREADS. */
static void
layer_of_file (struct kiln_store *st, enum kiln_compression c, const char *threads, int fd, size_t size,
               struct kiln_layer_result *res)
{
  setenv ("KILN_THREADS", threads, 1);
  cr_assert_eq (lseek (fd, 0, SEEK_SET), 0);
  struct kiln_layer_writer *w = new_writer (st, c, 0, false);
  add_data (w, "app/config.json", 0644, 7, "{\"port\":8080}\n");
  struct kiln_layer_entry e = { .path = "model.bin", .mode = S_IFREG | 0644, .mtime = 1, .size = size };
  add_entry (w, &e, fd);
  finish (w, res);
  unsetenv ("KILN_THREADS");
}

static void
check_layer_digest_for_threads (enum kiln_compression c)
{
  struct kiln_store *st = open_store ();
  size_t size = (6u << 20) + 777;
  unsigned char *data = mixed_data (size);
  kiln_autofree char *fpath = kiln_xasprintf ("%s/model.bin", kiln_test_tmpdir ());
  int fd = open (fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert_eq (write (fd, data, size), (ssize_t) size);
  free (data);
  struct kiln_layer_result r1 = { 0 }, r2 = { 0 }, r8 = { 0 };
  layer_of_file (st, c, "1", fd, size, &r1);
  layer_of_file (st, c, "2", fd, size, &r2);
  layer_of_file (st, c, "8", fd, size, &r8);
  close (fd);
  cr_assert_str_eq (r1.desc.digest.s, r2.desc.digest.s);
  cr_assert_str_eq (r1.desc.digest.s, r8.desc.digest.s);
  cr_assert_str_eq (r1.diff_id.s, r8.diff_id.s);
  /* and the blob holds that tar */
  unsigned char *tar;
  size_t len;
  layer_tar (&r8, &tar, &len);
  struct kiln_digest d;
  kiln_digest_of (tar, len, &d);
  cr_assert_str_eq (d.s, r8.diff_id.s);
  free (tar);
  kiln_layer_result_clear (&r1);
  kiln_layer_result_clear (&r2);
  kiln_layer_result_clear (&r8);
  kiln_store_free (st);
}

Test (layer, gzip_layer_digest_is_the_same_for_1_2_and_8_threads, .timeout = 60)
{
  check_layer_digest_for_threads (KILN_COMP_GZIP);
}

Test (layer, zstd_layer_digest_is_the_same_for_1_2_and_8_threads, .timeout = 60)
{
  check_layer_digest_for_threads (KILN_COMP_ZSTD);
}

Test (layer, gzip_stores_incompressible_blocks_and_compresses_text)
{
  size_t len = 4u << 20;
  unsigned char *in = mixed_data (len); /* blocks 0, 2 random; 1, 3 text */
  struct kiln_buf out = KILN_BUF_INIT;
  compress_all (KILN_COMP_GZIP, -1, 2, in, len, &out);
  /* stored random blocks cost 5 bytes per 64 KiB; text shrinks a lot */
  size_t random_part = 2u << 20;
  cr_assert_gt (out.len, random_part, "random data cannot shrink");
  cr_assert_lt (out.len, random_part + random_part / 1000 + (len - random_part) / 4, "%zu bytes", out.len);
  /* a stored block header (not final, LEN 65535) right after the gzip header */
  static const unsigned char stored[5] = { 0, 0xff, 0xff, 0, 0 };
  cr_assert_eq (memcmp (out.buf + 10, stored, 5), 0, "first random block not stored");
  kiln_buf_release (&out);
  free (in);
}

Test (layer, gzip_level_0_stores_and_every_level_decodes)
{
  size_t len = (2u << 20) + 99;
  unsigned char *in = mixed_data (len);
  for (int level = 0; level <= 9; level++)
    {
      struct kiln_buf out = KILN_BUF_INIT;
      compress_all (KILN_COMP_GZIP, level, 2, in, len, &out);
      if (level == 0)
        cr_assert_gt (out.len, len, "level 0 compressed");
      else
        cr_assert_lt (out.len, len - len / 8, "level %d did not compress the text blocks", level);
      unsigned char *back;
      size_t blen;
      gunzip ((unsigned char *) out.buf, out.len, &back, &blen);
      cr_assert_eq (blen, len);
      cr_assert_eq (memcmp (back, in, len), 0, "level %d round trip", level);
      free (back);
      kiln_buf_release (&out);
    }
  free (in);
}

Test (layer, empty_gzip_stream_is_valid)
{
  struct kiln_buf out = KILN_BUF_INIT;
  compress_all (KILN_COMP_GZIP, -1, 2, (const unsigned char *) "", 0, &out);
  unsigned char *back;
  size_t blen;
  gunzip ((unsigned char *) out.buf, out.len, &back, &blen);
  cr_assert_eq (blen, 0);
  free (back);
  kiln_buf_release (&out);
}

/* libarchive's own gzip reader (the one kiln uses to extract layers). */
static void
read_with_libarchive (const char *path, const char *name, const unsigned char *want, size_t want_len)
{
  struct archive *a = archive_read_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  cr_assert_eq (archive_read_open_filename (a, path, 1 << 16), ARCHIVE_OK, "%s", archive_error_string (a));
  struct archive_entry *ae;
  bool found = false;
  int r;
  while ((r = archive_read_next_header (a, &ae)) == ARCHIVE_OK)
    {
      if (strcmp (archive_entry_pathname (ae), name) != 0)
        continue;
      found = true;
      unsigned char *got = kiln_xmalloc (want_len + 1);
      la_ssize_t n, total = 0;
      while ((n = archive_read_data (a, got + total, want_len + 1 - (size_t) total)) > 0)
        total += n;
      cr_assert_geq (n, 0, "read data: %s", archive_error_string (a));
      cr_assert_eq ((size_t) total, want_len);
      cr_assert_eq (memcmp (got, want, want_len), 0);
      free (got);
    }
  cr_assert_eq (r, ARCHIVE_EOF, "%s", archive_error_string (a));
  cr_assert (found, "no `%s` in the layer", name);
  cr_assert_eq (archive_filter_code (a, 0), ARCHIVE_FILTER_GZIP);
  archive_read_free (a);
}

/* gzip(1) -t, the reference reader; tests only, never product code. */
static int
gzip_test (const char *path)
{
  pid_t pid = fork ();
  cr_assert_geq (pid, 0);
  if (pid == 0)
    {
      int devnull = open ("/dev/null", O_WRONLY);
      dup2 (devnull, 2);
      execlp ("gzip", "gzip", "-t", path, (char *) NULL);
      _exit (127);
    }
  int status;
  cr_assert_eq (waitpid (pid, &status, 0), pid);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

Test (layer, gzip_layer_reads_back_with_zlib_libarchive_and_gzip, .timeout = 60)
{
  struct kiln_store *st = open_store ();
  size_t size = (3u << 20) + 4321;
  unsigned char *data = mixed_data (size);
  kiln_autofree char *fpath = kiln_xasprintf ("%s/model.bin", kiln_test_tmpdir ());
  int fd = open (fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert_eq (write (fd, data, size), (ssize_t) size);
  struct kiln_layer_result res = { 0 };
  layer_of_file (st, KILN_COMP_GZIP, "2", fd, size, &res);
  close (fd);
  kiln_autofree char *blob = blob_path (&res.desc.digest);
  read_with_libarchive (blob, "model.bin", data, size);
  unsigned char *tar;
  size_t len;
  layer_tar (&res, &tar, &len); /* zlib, CRC and ISIZE checked */
  cr_assert_not_null (memmem (tar, len, data, 4096));
  free (tar);
  int rc = gzip_test (blob);
  if (rc == 127)
    cr_log_warn ("gzip(1) not installed: skipped gzip -t");
  else
    cr_assert_eq (rc, 0, "gzip -t rejected the layer");
  free (data);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

static void
check_rss_256 (enum kiln_compression c)
{
  const size_t size = 256u << 20;
  struct kiln_store *st = open_store ();
  kiln_autofree char *fpath = kiln_xasprintf ("%s/big", kiln_test_tmpdir ());
  int fd = make_big_file (fpath, size);
  struct kiln_layer_writer *w = new_writer (st, c, 0, false);
  struct kiln_layer_entry e = { .path = "big", .mode = S_IFREG | 0644, .mtime = 1, .size = size };
  add_entry (w, &e, fd);
  close (fd);
  struct kiln_layer_result res = { 0 };
  finish (w, &res);
  /* the whole process, test runner included */
  long rss = maxrss_kib ();
  cr_assert_lt (rss, 48 * 1024, "peak rss %ld KiB for a 256 MiB layer", rss);
  cr_assert_gt ((uint64_t) res.desc.size, size);
  kiln_layer_result_clear (&res);
  kiln_store_free (st);
}

Test (layer, gzip_layer_of_256_mib_stays_under_48_mib_rss, .timeout = 120)
{
  check_rss_256 (KILN_COMP_GZIP);
}

Test (layer, zstd_layer_of_256_mib_stays_under_48_mib_rss, .timeout = 120)
{
  check_rss_256 (KILN_COMP_ZSTD);
}

Test (layer, invalid_kiln_threads_is_ignored)
{
  setenv ("KILN_THREADS", "lots", 1);
  struct kiln_store *st = open_store ();
  struct kiln_layer_result a = { 0 };
  build_small (st, KILN_COMP_GZIP, 1700000000, 0, false, &a);
  unsetenv ("KILN_THREADS");
  struct kiln_layer_result b = { 0 };
  build_small (st, KILN_COMP_GZIP, 1700000000, 0, false, &b);
  cr_assert_str_eq (a.desc.digest.s, b.desc.digest.s);
  kiln_layer_result_clear (&a);
  kiln_layer_result_clear (&b);
  kiln_store_free (st);
}

/* Random 1 MiB blocks leave the compressed frame as raw frames: the output
 * is barely larger than the input, the text around them still compresses,
 * and libzstd reads the concatenated frames back exactly. */
Test (layer, zstd_stores_random_blocks_raw_and_compresses_the_rest)
{
  size_t rnd = 3u << 20, txt = 2u << 20, len = txt + rnd + txt;
  unsigned char *in = kiln_xmalloc (len);
  for (size_t i = 0; i < txt; i++)
    in[i] = in[txt + rnd + i] = (unsigned char) ("weights and vocab "[i % 18]);
  uint64_t x = 88172645463325252ULL;
  for (size_t i = 0; i < rnd; i++)
    {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      in[txt + i] = (unsigned char) x;
    }
  struct kiln_buf out = KILN_BUF_INIT;
  compress_all (KILN_COMP_ZSTD, -1, 2, in, len, &out);
  cr_assert_lt (out.len, rnd + rnd / 50, "the text compresses and the random part costs almost nothing extra");
  cr_assert_gt (out.len, rnd, "random data cannot shrink");
  /* a raw frame header follows the first compressed frame */
  static const unsigned char raw_header[6] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38 };
  cr_assert_not_null (memmem (out.buf, out.len, raw_header, sizeof raw_header), "no raw frame");
  unsigned char *back;
  size_t blen;
  unzstd ((unsigned char *) out.buf, out.len, &back, &blen);
  cr_assert_eq (blen, len);
  cr_assert_eq (memcmp (back, in, len), 0);
  free (back);
  kiln_buf_release (&out);
  free (in);
}

/* ---- --force-compression: a stored layer in another compression ---- */

Test (layer, recompress_keeps_the_tar_checks_the_diffid_and_remembers)
{
  struct kiln_store *st = open_store ();
  struct kiln_layer_result gz = { 0 }, back = { 0 };
  struct kiln_layer_opts zo = { .compression = KILN_COMP_ZSTD, .level = -1 };
  struct kiln_descriptor z = { 0 }, again = { 0 }, bad = { 0 };
  struct kiln_error *err = NULL;
  build_small (st, KILN_COMP_GZIP, 1700000000, 0, false, &gz);

  cr_assert_eq (kiln_cache_recompress (st, &gz.desc, gz.diff_id.s, &zo, &z, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq (z.media_type, KILN_MT_OCI_LAYER_ZSTD);
  cr_assert_str_neq (z.digest.s, gz.desc.digest.s);
  /* the new blob holds the same tar: decompressed independently, hashed */
  back.desc = z;
  unsigned char *tar;
  size_t len;
  layer_tar (&back, &tar, &len);
  struct kiln_digest d;
  kiln_digest_of (tar, len, &d);
  cr_assert_str_eq (d.s, gz.diff_id.s);
  free (tar);

  cr_assert_eq (kiln_cache_recompress (st, &gz.desc, gz.diff_id.s, &zo, &again, &err), 1,
                "asked again: the remembered blob");
  cr_assert_str_eq (again.digest.s, z.digest.s);

  /* a diffID the blob does not decompress to is refused, naming both */
  const char *wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  struct kiln_layer_opts no = { .compression = KILN_COMP_NONE, .level = -1 };
  cr_assert_lt (kiln_cache_recompress (st, &gz.desc, wrong, &no, &bad, &err), 0);
  cr_assert_eq (err->kind, KILN_E_DIGEST);
  cr_assert (strstr (err->msg, wrong) && strstr (err->msg, gz.diff_id.s) && strstr (err->msg, gz.desc.digest.s), "%s",
             err->msg);
  kiln_error_free (&err);
  kiln_descriptor_clear (&z);
  kiln_descriptor_clear (&again);
  kiln_layer_result_clear (&gz);
  kiln_store_free (st);
}
