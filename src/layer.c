/* layer.c - the streaming layer writer.
 *
 *   entries -> libarchive (pax_restricted, fixed blocking) -> write_cb
 *     write_cb: sha256 (diffID) -> compressor -> sink -> store blob writer
 *
 * Nothing is buffered beyond one read chunk, one libarchive block and the
 * compressor's window, so memory does not grow with file sizes. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"

#define READ_CHUNK (1024 * 1024)
/* libarchive hands us whole blocks of this size, so the compressor always
 * sees the same chunking for the same tar stream. */
#define TAR_BLOCK (64 * 1024)

struct kiln_layer_writer {
  struct kiln_layer_opts opts;
  struct archive *ar;
  struct archive_entry *entry;     /* reused for every header */
  struct kiln_sha256 *tar_hash;
  struct kiln_compressor *comp;
  struct kiln_blob_writer *blob;   /* NULL once committed or aborted */
  uint64_t tar_size;
  struct kiln_error *cb_err;       /* failure inside write_cb, reported by the caller of libarchive */
  unsigned char *buf;
  locale_t utf8;                   /* C.UTF-8 for libarchive's name conversion; 0 if missing */
  bool failed;                     /* the tar stream is broken; only free is allowed */
  bool dropping;                   /* free(): swallow libarchive's closing writes */
};

void
kiln_layer_result_clear (struct kiln_layer_result *r)
{
  if (r == NULL)
    return;
  kiln_descriptor_clear (&r->desc);
  memset (&r->diff_id, 0, sizeof r->diff_id);
  r->tar_size = 0;
}

static int
blob_sink (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  struct kiln_layer_writer *w = opaque;
  return kiln_blob_writer_write (w->blob, data, len, err);
}

static la_ssize_t
write_cb (struct archive *a, void *opaque, const void *data, size_t len)
{
  struct kiln_layer_writer *w = opaque;
  if (w->dropping)
    return (la_ssize_t) len;
  kiln_sha256_update (w->tar_hash, data, len);
  w->tar_size += len;
  struct kiln_error *e = NULL;
  if (kiln_compressor_write (w->comp, data, len, &e) < 0)
    {
      archive_set_error (a, e->errnum ? e->errnum : EIO, "%s", e->msg);
      kiln_error_free (&w->cb_err);
      w->cb_err = e;
      return -1;
    }
  return (la_ssize_t) len;
}

/* The libarchive adapter: turns a status into a kiln_error (or a warning).
 * An error raised by our own write callback is preferred over libarchive's
 * copy of its text, so the kind and errno survive. */
static int
archive_status (struct kiln_layer_writer *w, int r, const char *what, const char *path,
                struct kiln_error **err)
{
  if (r >= ARCHIVE_OK)
    return 0;
  if (r == ARCHIVE_WARN)
    {
      kiln_log_warn ("%s `%s`: %s", what, path, archive_error_string (w->ar));
      return 0;
    }
  w->failed = true;
  if (w->cb_err != NULL && err != NULL)
    {
      *err = kiln_steal_ptr (&w->cb_err);
      return kiln_error_wrap (err, "%s `%s`", what, path);
    }
  return kiln_error_set (err, archive_errno (w->ar), KILN_E_IO, "%s `%s`: %s", what, path,
                         archive_error_string (w->ar));
}

static int
open_archive (struct kiln_layer_writer *w, struct kiln_error **err)
{
  w->ar = archive_write_new ();
  w->entry = archive_entry_new ();
  if (w->ar == NULL || w->entry == NULL)
    abort ();
  int r = archive_write_set_format_pax_restricted (w->ar);
  /* libarchive writes each xattr twice (LIBARCHIVE.xattr and SCHILY.xattr)
   * by default; Docker, containerd and Go's archive/tar read SCHILY only. */
  if (r == ARCHIVE_OK)
    r = archive_write_set_format_option (w->ar, NULL, "xattrheader", "SCHILY");
  if (r == ARCHIVE_OK)
    r = archive_write_set_bytes_per_block (w->ar, TAR_BLOCK);
  /* No padding of the last block: the tar ends right after its two zero
   * blocks, as Go's archive/tar writes it. */
  if (r == ARCHIVE_OK)
    r = archive_write_set_bytes_in_last_block (w->ar, 1);
  if (r == ARCHIVE_OK)
    r = archive_write_open2 (w->ar, w, NULL, write_cb, NULL, NULL);
  return archive_status (w, r, "open", "tar stream", err);
}

int
kiln_layer_writer_new (struct kiln_store *st, const struct kiln_layer_opts *opts,
                       struct kiln_layer_writer **out, struct kiln_error **err)
{
  struct kiln_layer_writer *w = kiln_xcalloc (1, sizeof *w);
  w->opts = *opts;
  w->tar_hash = kiln_sha256_new ();
  w->utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
  if (w->utf8 == (locale_t) 0)
    kiln_log_debug ("no C.UTF-8 locale: non-ASCII tar names follow the process locale");
  w->buf = kiln_xmalloc (READ_CHUNK);
  int r = kiln_compressor_new (opts->compression, opts->level, blob_sink, w, &w->comp, err);
  if (r == 0)
    r = kiln_store_blob_begin (st, &w->blob, err);
  if (r == 0)
    r = open_archive (w, err);
  if (r < 0)
    {
      kiln_layer_writer_free (w);
      return kiln_error_wrap (err, "start layer");
    }
  *out = w;
  return 0;
}

static int
check_entry (const struct kiln_layer_entry *e, struct kiln_error **err)
{
  if (e->path == NULL || e->path[0] == '\0' || e->path[0] == '/')
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add layer entry `%s`: path must be relative",
                           e->path ? e->path : "");
  if ((e->hardlink || S_ISLNK (e->mode)) && e->link == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add layer entry `%s`: missing link target", e->path);
  if (e->hardlink && !S_ISREG (e->mode))
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add layer entry `%s`: hardlink to a non-regular file",
                           e->path);
  return 0;
}

static void
fill_entry (struct kiln_layer_writer *w, const struct kiln_layer_entry *e)
{
  struct archive_entry *ae = archive_entry_clear (w->entry);
  /* libarchive's ustar/pax writer appends the trailing '/' Docker puts on
   * directory names (tests/test_layer.c checks the raw header). */
  archive_entry_copy_pathname (ae, e->path);
  archive_entry_set_mode (ae, e->mode);
  archive_entry_set_uid (ae, e->uid);
  archive_entry_set_gid (ae, e->gid);
  /* Whole seconds only: sub-second times differ between copies of the same
   * tree and would make the digest depend on when a file was written. */
  int64_t mtime = e->mtime;
  if (w->opts.clamp_mtime && mtime > w->opts.epoch)
    mtime = w->opts.epoch;
  archive_entry_set_mtime (ae, (time_t) mtime, 0);
  if (e->hardlink)
    {
      archive_entry_copy_hardlink (ae, e->link);
      archive_entry_set_size (ae, 0);
    }
  else if (S_ISREG (e->mode))
    archive_entry_set_size (ae, (la_int64_t) e->size);
  else if (S_ISLNK (e->mode))
    archive_entry_copy_symlink (ae, e->link);
  else if (S_ISCHR (e->mode) || S_ISBLK (e->mode))
    archive_entry_set_rdev (ae, e->rdev);
  for (size_t i = 0; i < e->nxattrs; i++)
    archive_entry_xattr_add_entry (ae, e->xattr_names[i], e->xattr_values[i], e->xattr_sizes[i]);
}

static int
write_header (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, struct kiln_error **err)
{
  if (w->failed || w->blob == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add `%s` to layer: writer already failed or finished",
                           e->path);
  int r = check_entry (e, err);
  if (r < 0)
    return r;
  fill_entry (w, e);
  /* Names are bytes.  libarchive converts them from the thread's locale to
   * UTF-8 for pax records; pinning that locale to C.UTF-8 makes the output
   * independent of the caller's LANG.  A name that is not valid UTF-8 still
   * goes in byte for byte, with a hdrcharset=BINARY record (and a warning). */
  locale_t old = w->utf8 ? uselocale (w->utf8) : (locale_t) 0;
  r = archive_write_header (w->ar, w->entry);
  if (old)
    uselocale (old);
  return archive_status (w, r, "write tar header for", e->path, err);
}

static int
write_data (struct kiln_layer_writer *w, const char *path, const void *data, size_t len,
            struct kiln_error **err)
{
  la_ssize_t n = archive_write_data (w->ar, data, len);
  if (n < 0)
    return archive_status (w, (int) n, "write tar data for", path, err);
  if ((size_t) n != len)
    {
      w->failed = true;
      return kiln_error_set (err, EIO, KILN_E_IO, "write tar data for `%s`: short write", path);
    }
  return 0;
}

static ssize_t
read_some (int fd, void *buf, size_t len)
{
  ssize_t n;
  do
    n = read (fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Copies exactly e->size bytes.  A file that shrank or grew since it was
 * stat()ed cannot be described by the header already written, so the whole
 * layer fails rather than padding or truncating silently. */
static int
copy_fd (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, int fd, struct kiln_error **err)
{
  uint64_t done = 0;
  while (done < e->size)
    {
      size_t want = e->size - done < READ_CHUNK ? (size_t) (e->size - done) : READ_CHUNK;
      ssize_t n = read_some (fd, w->buf, want);
      if (n < 0)
        {
          w->failed = true;
          return kiln_error_set (err, errno, KILN_E_IO, "read `%s`", e->path);
        }
      if (n == 0)
        break;
      int r = write_data (w, e->path, w->buf, (size_t) n, err);
      if (r < 0)
        return r;
      done += (uint64_t) n;
    }
  if (done == e->size && read_some (fd, w->buf, 1) == 0)
    return 0;
  w->failed = true;
  return kiln_error_set (err, 0, KILN_E_IO, "read `%s`: file changed size while being added (expected %llu bytes)",
                         e->path, (unsigned long long) e->size);
}

int
kiln_layer_writer_add (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, int fd,
                       struct kiln_error **err)
{
  int r = write_header (w, e, err);
  if (r < 0 || e->hardlink || !S_ISREG (e->mode))
    return r;
  return copy_fd (w, e, fd, err);
}

int
kiln_layer_writer_add_data (struct kiln_layer_writer *w, const struct kiln_layer_entry *e,
                            const void *data, size_t len, struct kiln_error **err)
{
  struct kiln_layer_entry copy = *e;
  copy.mode = (e->mode & ~(mode_t) S_IFMT) | S_IFREG;
  copy.size = len;
  copy.hardlink = false;
  copy.link = NULL;
  int r = write_header (w, &copy, err);
  if (r < 0)
    return r;
  return write_data (w, e->path, data, len, err);
}

static int
fill_result (struct kiln_layer_writer *w, const struct kiln_digest *blob, uint64_t size,
             struct kiln_layer_result *res)
{
  kiln_sha256_final (w->tar_hash, &res->diff_id);
  res->tar_size = w->tar_size;
  memset (&res->desc, 0, sizeof res->desc);
  res->desc.media_type = kiln_xstrdup (kiln_compression_media_type (w->opts.compression));
  res->desc.digest = *blob;
  res->desc.size = (int64_t) size;
  return 0;
}

int
kiln_layer_writer_finish (struct kiln_layer_writer *w, struct kiln_layer_result *res,
                          struct kiln_error **err)
{
  if (w->failed || w->blob == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "finish layer: writer already failed or finished");
  /* close writes the end-of-archive blocks and flushes the last block. */
  int r = archive_status (w, archive_write_close (w->ar), "finish", "tar stream", err);
  if (r == 0)
    r = kiln_compressor_finish (w->comp, err);
  if (r < 0)
    {
      w->failed = true;
      return kiln_error_wrap (err, "finish layer");
    }
  struct kiln_digest blob;
  uint64_t size = 0;
  r = kiln_blob_writer_commit (kiln_steal_ptr (&w->blob), NULL, &blob, &size, err);
  if (r < 0)
    return kiln_error_wrap (err, "finish layer");
  return fill_result (w, &blob, size, res);
}

void
kiln_layer_writer_free (struct kiln_layer_writer *w)
{
  if (w == NULL)
    return;
  /* archive_write_free closes an open archive, which would push the end
   * blocks through write_cb into a blob that is about to be dropped. */
  w->dropping = true;
  if (w->ar != NULL)
    archive_write_free (w->ar);
  archive_entry_free (w->entry);
  kiln_compressor_free (w->comp);
  kiln_blob_writer_abort (w->blob);
  kiln_sha256_free (w->tar_hash);
  kiln_error_free (&w->cb_err);
  if (w->utf8)
    freelocale (w->utf8);
  free (w->buf);
  free (w);
}
