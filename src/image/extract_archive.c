/* extract_archive.c - reading the tar for the extractor: a file (any one
 * compression, detected) or a stream, tar formats only and no external
 * programs, the end-of-archive marker checked as Go's archive/tar checks
 * it; every entry goes to kiln_extract_entry (extract.c). */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "extract-internal.h"
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/store.h"
#include "kiln/toc.h"
#include "kiln/util.h"

/* Only tar formats, and only decompressors linked in-process: libarchive
 * falls back to exec'ing an external program when a library is missing,
 * which docs/security.md rules out (no external programs). */
static void
support_filters (struct archive *a)
{
  if (archive_zlib_version ())
    archive_read_support_filter_gzip (a);
  if (archive_bzlib_version ())
    archive_read_support_filter_bzip2 (a);
  if (archive_liblzma_version ())
    archive_read_support_filter_xz (a);
  if (archive_libzstd_version ())
    archive_read_support_filter_zstd (a);
}

static void
support_formats (struct archive *a)
{
  archive_read_support_format_tar (a);
  support_filters (a);
}

/* Docker and BuildKit (DecompressStream) undo one compression, detected by
 * its magic; libarchive would undo any number.  The filter count includes
 * the reader itself: 1 for a plain tar, 2 for a compressed one. */
static bool
one_compression (struct archive *a)
{
  return archive_filter_count (a) <= 2;
}

static int
open_reader (struct xstate *x, int fd, struct kiln_error **err)
{
  struct archive *a = x->a = archive_read_new ();
  support_formats (a);
  return kiln_extract_archive_check (x, archive_read_open_fd (a, fd, READ_BLOCK), err);
}

struct peek {
  int fd;
  off_t off;
  char buf[READ_BLOCK];
};

static la_ssize_t
peek_read (struct archive *a, void *ud, const void **out)
{
  struct peek *p = ud;
  ssize_t n;
  (void) a;
  do
    n = pread (p->fd, p->buf, sizeof p->buf, p->off);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    p->off += n;
  *out = p->buf;
  return n;
}

/* Whether the uncompressed stream of fd, read from offset start, holds
 * more than pos bytes: 1 yes, 0 no, -1 unreadable.  Decompresses again, with
 * pread (fd's offset is untouched). */
static int
bytes_after (int fd, off_t start, int64_t pos)
{
  struct archive_entry *e;
  kiln_autofree struct peek *p = kiln_xmalloc (sizeof *p);
  kiln_autofree char *buf = kiln_xmalloc (READ_BLOCK);
  struct archive *a = archive_read_new ();
  int64_t total = 0;
  la_ssize_t n = -1;
  p->fd = fd;
  p->off = start;
  support_filters (a);
  archive_read_support_format_raw (a);
  if (archive_read_open (a, p, NULL, peek_read, NULL) == ARCHIVE_OK && archive_read_next_header (a, &e) == ARCHIVE_OK)
    while ((n = archive_read_data (a, buf, READ_BLOCK)) > 0 && total <= pos)
      total += n;
  archive_read_free (a);
  if (n < 0)
    return -1;
  return total > pos;
}

/* Go's archive/tar, with which BuildKit extracts ADD archives, ends a tar at
 * a clean end of input or at two zero blocks: a zero block followed by a
 * partial block (ErrUnexpectedEOF) or by a non-zero one (ErrHeader) fails
 * the build.  libarchive ends at the first zero block in both cases, so when
 * it consumed exactly one zero block, look at what follows it.  start < 0:
 * the input cannot be re-read (a pipe), libarchive's answer stands. */
static int
check_end_marker (struct xstate *x, int fd, off_t start, struct kiln_error **err)
{
  int64_t end = archive_filter_bytes (x->a, 0);
  int64_t marker = archive_read_header_position (x->a);
  if (start < 0 || end - marker != 512)
    return 0;
  int more = bytes_after (fd, start, end);
  if (more < 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "read the end of the archive again");
  if (more)
    return kiln_error_set (err, 0, KILN_E_PARSE, "truncated tar archive: damaged end-of-archive marker");
  return 0;
}

/* Entries until the end of the archive; max_filters: the filter count
 * allowed (the reader itself is one, see one_compression). */
static int
read_entries (struct xstate *x, int max_filters, struct kiln_error **err)
{
  struct archive_entry *e;
  for (;;)
    {
      int r = archive_read_next_header (x->a, &e);
      if (r == ARCHIVE_EOF)
        return 0;
      if (kiln_extract_archive_check (x, r, err) < 0)
        return -1;
      if (archive_filter_count (x->a) > max_filters)
        return kiln_error_set (err, 0, KILN_E_PARSE, "compressed more than once (a tar is decompressed once)");
      if (x->opts->toc)
        kiln_toc_rec_add_archive (x->opts->toc, e);
      if (kiln_extract_entry (x, e, err) < 0)
        return -1;
    }
}

int
kiln_extract_fd (int fd, const char *name, int rootfd, const struct kiln_extract_opts *opts, struct kiln_error **err)
{
  struct xstate x = { .name = name, .rootfd = rootfd, .opts = opts, .pcache = KILN_FS_DIRCACHE_INIT };
  off_t start = lseek (fd, 0, SEEK_CUR);
  int r;

  locale_t old = kiln_locale_utf8_enter ();
  if ((r = open_reader (&x, fd, err)) == 0 && (r = read_entries (&x, 2, err)) == 0
      && (r = check_end_marker (&x, fd, start, err)) == 0)
    r = kiln_extract_dir_meta (&x, err);
  kiln_locale_restore (old);
  kiln_extract_state_clear (&x);
  if (r < 0)
    return kiln_error_wrap (err, "extract `%s`", name);
  return 0;
}

/* ---- a stream instead of a file ---- */

struct sread {
  kiln_extract_read_fn fn;
  void *opaque;
  struct kiln_error *err; /* the read function's own failure */
  int64_t delivered;      /* bytes handed to libarchive */
};

static la_ssize_t
sread_cb (struct archive *a, void *ud, const void **out)
{
  struct sread *s = ud;
  ssize_t n = s->fn (s->opaque, out, &s->err);
  if (n < 0)
    {
      archive_set_error (a, EIO, "%s", s->err ? s->err->msg : "read error");
      return -1;
    }
  s->delivered += n;
  return n;
}

/* check_end_marker for a stream, which cannot be read again: whatever
 * follows the one zero block is either already handed to libarchive or
 * still to come, and one more byte of either means the marker is damaged.
 * Behind a libarchive filter the positions are not the stream's: skipped. */
static int
stream_end_marker (struct xstate *x, struct sread *s, struct kiln_error **err)
{
  int64_t end = archive_filter_bytes (x->a, 0);
  int64_t marker = archive_read_header_position (x->a);
  const void *buf;
  if (end - marker != 512 || archive_filter_count (x->a) != 1)
    return 0;
  ssize_t n = s->delivered > end ? 1 : s->fn (s->opaque, &buf, err);
  if (n < 0)
    return -1;
  if (n > 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "truncated tar archive: damaged end-of-archive marker");
  return 0;
}

int
kiln_extract_stream (kiln_extract_read_fn read, void *opaque, bool decompressed, const char *name, int rootfd,
                     const struct kiln_extract_opts *opts, struct kiln_error **err)
{
  struct xstate x = { .name = name, .rootfd = rootfd, .opts = opts, .pcache = KILN_FS_DIRCACHE_INIT };
  struct sread s = { .fn = read, .opaque = opaque };
  int r;

  locale_t old = kiln_locale_utf8_enter ();
  x.a = archive_read_new ();
  support_formats (x.a);
  r = kiln_extract_archive_check (&x, archive_read_open (x.a, &s, NULL, sread_cb, NULL), err);
  if (r == 0 && (r = read_entries (&x, decompressed ? 1 : 2, err)) == 0 && (r = stream_end_marker (&x, &s, err)) == 0)
    r = kiln_extract_dir_meta (&x, err);
  kiln_locale_restore (old);
  kiln_extract_state_clear (&x);
  if (r < 0 && s.err)
    {
      /* the stream's own error says more than libarchive's copy of it */
      kiln_error_free (err);
      *err = kiln_steal_ptr (&s.err);
    }
  kiln_error_free (&s.err);
  if (r < 0)
    return kiln_error_wrap (err, "extract `%s`", name);
  return 0;
}

static bool
tar_checksum_ok (const unsigned char *h)
{
  unsigned long want = 0, sum = 0;
  long ssum = 0;
  int i = 148, digits = 0;

  while (i < 156 && h[i] == ' ')
    i++;
  for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++, digits++)
    want = want * 8 + (unsigned long) (h[i] - '0');
  if (digits == 0 || (i < 156 && h[i] != ' ' && h[i] != '\0'))
    return false;
  for (i = 0; i < 512; i++)
    {
      unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
      sum += c;
      ssum += (signed char) c;
    }
  /* some old tars summed signed chars */
  return want == sum || (long) want == ssum;
}

/* Docker extracts a compressed file only when what it holds is a tar: a
 * gzip'd text file is copied as it is, and so is a gzip'd tar.xz (BuildKit
 * isArchivePath: one DecompressStream, then tar.Next must succeed).  Reads with pread, so fd's offset
 * is untouched. */
static bool
compressed_tar (int fd)
{
  struct archive_entry *e;
  struct peek *p = kiln_xmalloc (sizeof *p);
  struct archive *a = archive_read_new ();
  p->fd = fd;
  p->off = 0;
  support_formats (a);
  /* a warning (a name libarchive cannot convert) still means a tar */
  locale_t old = kiln_locale_utf8_enter ();
  int r = archive_read_open (a, p, NULL, peek_read, NULL);
  if (r == ARCHIVE_OK)
    r = archive_read_next_header (a, &e);
  bool ok = (r == ARCHIVE_OK || r == ARCHIVE_WARN) && one_compression (a);
  kiln_locale_restore (old);
  archive_read_free (a);
  free (p);
  return ok;
}

bool
kiln_extract_is_archive (int fd)
{
  unsigned char h[512];
  ssize_t n;

  do
    n = pread (fd, h, sizeof h, 0);
  while (n < 0 && errno == EINTR);
  if (n < 4)
    return false;
  if ((h[0] == 0x1f && h[1] == 0x8b) || memcmp (h, "BZh", 3) == 0
      || (n >= 6
          && memcmp (h,
                     "\xfd"
                     "7zXZ\0",
                     6)
                 == 0)
      || memcmp (h, "\x28\xb5\x2f\xfd", 4) == 0)
    return compressed_tar (fd);
  return n == (ssize_t) sizeof h && tar_checksum_ok (h);
}

int
kiln_extract_layers (struct kiln_store *st, const struct kiln_descriptor *layers, size_t n, int rootfd,
                     struct kiln_error **err)
{
  const struct kiln_extract_opts opts = { .whiteouts = true, .keep_owner = true };
  for (size_t i = 0; i < n; i++)
    {
      kiln_autoclose int fd = kiln_store_blob_open (st, &layers[i].digest, err);
      if (fd < 0)
        return kiln_error_wrap (err, "extract layer %zu", i + 1);
      if (kiln_extract_fd (fd, layers[i].digest.s, rootfd, &opts, err) < 0)
        return -1;
    }
  return 0;
}
