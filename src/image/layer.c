/* layer.c - the streaming layer writer.
 *
 *   caller's thread: file -> libarchive (pax_restricted, fixed blocking)
 *     -> write_cb: sha256 (diffID) -> bounded pipe (PIPE_SLOTS x PIPE_CHUNK)
 *   pipe thread: compressor (its own workers for gzip/zstd) -> sink
 *     -> store blob writer (sha256 of the blob + write)
 *
 * The two sha256 passes run on different threads, so a layer uses two cores
 * even when the compressor has nothing to do (incompressible weights).
 * Nothing is buffered beyond one read chunk, the pipe and the compressor's
 * blocks, so memory does not grow with file sizes.  A layer whose tar fits
 * in one pipe chunk never starts the thread. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/toc.h"
#include "kiln/util.h"
#include "layer-internal.h"

struct kiln_layer_writer {
  struct kiln_layer_opts opts;
  struct archive *ar;
  struct archive_entry *entry; /* reused for every header */
  struct kiln_sha256 *tar_hash;
  struct kiln_compressor *comp;
  struct kiln_blob_writer *blob; /* NULL once committed or aborted */
  uint64_t tar_size;
  struct kiln_error *cb_err; /* failure inside write_cb, reported by the caller of libarchive */
  struct layer_pipe pipe;
  bool failed;   /* the tar stream is broken; only free is allowed */
  bool dropping; /* free(): swallow libarchive's closing writes */
  struct kiln_store *st;
  struct kiln_toc_rec toc; /* the layer's table of contents, stored by diffID at finish */
  /* gzip: where blocks are cut and what they are made of (layer-internal.h) */
  bool mapped;
  bool in_data; /* write_cb sees the current entry's content */
  struct lmap_builder map;
  struct lmap umap; /* closed blocks: input length and recipe */
  struct lmap cmap; /* what the compressor made of them: output length, CRC */
  /* patch mode */
  struct layer_patch *patch;
  unsigned char *zeros;
  uint64_t made, reused;
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

/* Tar bytes to the diffID hash, the block builder and the compressor; the
 * hash's state is noted where each block starts, so a later patch of this
 * layer can resume it there. */
static int
feed (struct kiln_layer_writer *w, const unsigned char *p, size_t len, struct kiln_error **err)
{
  if (!w->mapped)
    {
      kiln_sha256_update (w->tar_hash, p, len);
      return kiln_layer_pipe_write (&w->pipe, p, len, err);
    }
  while (len > 0)
    {
      size_t room;
      struct kiln_sha256_mid mid;
      if (kiln_layer_map_at_start (&w->map, &room) && kiln_sha256_mid_get (w->tar_hash, &mid))
        kiln_layer_map_note_mid (&w->map, &mid);
      size_t n = room < len ? room : len;
      kiln_sha256_update (w->tar_hash, p, n);
      kiln_layer_map_bytes (&w->map, w->in_data, p, n);
      int r = kiln_layer_pipe_write (&w->pipe, p, n, err);
      if (r < 0)
        return r;
      p += n;
      len -= n;
    }
  return 0;
}

static la_ssize_t
write_cb (struct archive *a, void *opaque, const void *data, size_t len)
{
  struct kiln_layer_writer *w = opaque;
  if (w->dropping)
    return (la_ssize_t) len;
  w->tar_size += len;
  if (w->patch)
    {
      /* patch mode: the blocks are hashed and emitted as they close */
      kiln_layer_map_bytes (&w->map, w->in_data, data, len);
      return (la_ssize_t) len;
    }
  struct kiln_error *e = NULL;
  if (feed (w, data, len, &e) < 0)
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
archive_status (struct kiln_layer_writer *w, int r, const char *what, const char *path, struct kiln_error **err)
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
  /* Unbuffered: libarchive passes our data pointers through, so file data
   * read into the pipe is not copied again (see kiln_layer_pipe_write).  The tar bytes
   * do not depend on the blocking: the last block is not padded. */
  if (r == ARCHIVE_OK)
    r = archive_write_set_bytes_per_block (w->ar, 0);
  /* No padding of the last block: the tar ends right after its two zero
   * blocks, as Go's archive/tar writes it. */
  if (r == ARCHIVE_OK)
    r = archive_write_set_bytes_in_last_block (w->ar, 1);
  if (r == ARCHIVE_OK)
    r = archive_write_open2 (w->ar, w, NULL, write_cb, NULL, NULL);
  return archive_status (w, r, "open", "tar stream", err);
}

/* KILN_THREADS caps the compression threads (tests, shared CI runners); the
 * default is one per online CPU.  The layer bytes never depend on it. */
static int
layer_threads (void)
{
  const char *s = getenv ("KILN_THREADS");
  if (s == NULL || *s == '\0')
    return 0;
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 1 || v > INT_MAX)
    {
      kiln_log_warn ("ignoring KILN_THREADS `%s`: not a positive number", s);
      return 0;
    }
  return (int) v;
}

static void on_cblock (void *opaque, size_t in_len, size_t out_len, uint32_t crc, uint32_t out_crc);

static struct kiln_layer_writer *
writer_alloc (struct kiln_store *st, const struct kiln_layer_opts *opts)
{
  struct kiln_layer_writer *w = kiln_xcalloc (1, sizeof *w);
  w->opts = *opts;
  w->st = st;
  kiln_toc_rec_init (&w->toc);
  kiln_toc_rec_spill (&w->toc, st);
  w->tar_hash = kiln_sha256_new ();
  kiln_layer_pipe_init (&w->pipe);
  w->mapped = opts->compression == KILN_COMP_GZIP;
  kiln_layer_map_builder_init (&w->map, false);
  w->umap.level = w->cmap.level = opts->level;
  return w;
}

int
kiln_layer_writer_new (struct kiln_store *st, const struct kiln_layer_opts *opts, struct kiln_layer_writer **out,
                       struct kiln_error **err)
{
  struct kiln_layer_writer *w = writer_alloc (st, opts);
  int r = kiln_compressor_new_mt (opts->compression, opts->level, layer_threads (), blob_sink, w, &w->comp, err);
  w->pipe.comp = w->comp;
  if (r == 0 && w->mapped)
    kiln_compressor_on_block (w->comp, on_cblock, w);
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

int
kiln_layer_writer_new_patch (struct kiln_store *st, const struct kiln_layer_opts *opts, const struct kiln_digest *base,
                             kiln_layer_open_fn open, void *ud, struct kiln_layer_writer **out, struct kiln_error **err)
{
  struct layer_patch *p = NULL;
  if (opts->compression != KILN_COMP_GZIP || kiln_layer_patch_new (st, base, opts->level, open, ud, &p) == 0)
    return 0;
  struct kiln_layer_writer *w = writer_alloc (st, opts);
  w->patch = p;
  w->map.capture = true;
  int r = kiln_store_blob_begin (st, &w->blob, err);
  if (r == 0)
    r = open_archive (w, err);
  if (r < 0)
    {
      kiln_layer_writer_free (w);
      return kiln_error_wrap (err, "start layer");
    }
  *out = w;
  return 1;
}

void
kiln_layer_writer_blocks (const struct kiln_layer_writer *w, uint64_t *made, uint64_t *reused)
{
  *made = w->made;
  *reused = w->reused;
}

/* kiln's extractor refuses names, link targets and depths past the limits
 * of kiln/extract.h; a layer kiln writes must be one it can read back (the
 * next build FROM it, --output), so the same limits hold here, for every
 * layer (COPY from a context, a RUN's diff). */
static int
check_limits (const struct kiln_layer_entry *e, struct kiln_error **err)
{
  const char *why = NULL;
  int limit = 0;
  if (strlen (e->path) > KILN_EXTRACT_MAX_PATH)
    why = "name longer than", limit = KILN_EXTRACT_MAX_PATH;
  else if (kiln_fs_path_depth (e->path) > KILN_EXTRACT_MAX_DEPTH)
    why = "deeper than", limit = KILN_EXTRACT_MAX_DEPTH;
  else if (e->link && strlen (e->link) > KILN_EXTRACT_MAX_PATH)
    why = "link target longer than", limit = KILN_EXTRACT_MAX_PATH;
  else if (e->link && e->hardlink && kiln_fs_path_depth (e->link) > KILN_EXTRACT_MAX_DEPTH)
    why = "hardlink target deeper than", limit = KILN_EXTRACT_MAX_DEPTH;
  if (!why)
    return 0;
  return kiln_error_set (err, ENAMETOOLONG, KILN_E_UNSUPPORTED, "`%.64s%s`: %s %d %s (the limit of a layer entry)",
                         e->path, strlen (e->path) > 64 ? "..." : "", why, limit,
                         limit == KILN_EXTRACT_MAX_PATH ? "bytes" : "directories");
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
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add layer entry `%s`: hardlink to a non-regular file", e->path);
  return check_limits (e, err);
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
  archive_entry_set_mtime (ae, (time_t) kiln_layer_opts_mtime (&w->opts, e->mtime), 0);
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

int64_t
kiln_layer_opts_mtime (const struct kiln_layer_opts *o, int64_t mtime)
{
  return o->clamp_mtime && mtime > o->epoch ? o->epoch : mtime;
}

static void
record_toc (struct kiln_layer_writer *w, const struct kiln_layer_entry *e)
{
  struct kiln_toc_entry t = {
    .path = e->path,
    .mode = e->mode,
    .uid = e->uid,
    .gid = e->gid,
    .link = e->link,
    .hardlink = e->hardlink,
    .mtime = kiln_layer_opts_mtime (&w->opts, e->mtime),
  };
  kiln_toc_rec_add (&w->toc, &t);
}

/* Closed blocks: recorded (a fresh layer) or emitted (patch mode). */
static int
drain_blocks (struct kiln_layer_writer *w, struct kiln_error **err)
{
  struct lmap_block blk;
  while (kiln_layer_map_take (&w->map, &blk))
    {
      int r = 0;
      if (w->patch)
        r = kiln_layer_patch_block (w->patch, &blk, w->blob, w->tar_hash, err);
      else if (!w->map.broken)
        kiln_layer_map_add (&w->umap, blk.u_len, 0, 0, 0, blk.recipe, blk.has_mid ? &blk.mid : NULL);
      kiln_layer_map_block_clear (&blk);
      if (r < 0)
        {
          w->failed = true;
          return r;
        }
    }
  return 0;
}

static void
on_cblock (void *opaque, size_t in_len, size_t out_len, uint32_t crc, uint32_t out_crc)
{
  struct kiln_layer_writer *w = opaque;
  static const unsigned char none[32];
  kiln_layer_map_add (&w->cmap, in_len, out_len, crc, out_crc, none, NULL);
}

/* Ends the previous entry (its padding) and cuts a block here when the cut
 * rule says so. */
static int
entry_boundary (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, struct kiln_error **err)
{
  int r = archive_status (w, archive_write_finish_entry (w->ar), "finish", "tar entry", err);
  uint64_t size = S_ISREG (e->mode) && !e->hardlink ? e->size : 0;
  if (r < 0 || !w->mapped)
    return r;
  if (kiln_layer_map_cut_before (&w->map, e->path, size) && !w->patch)
    r = kiln_layer_pipe_cut (&w->pipe, err);
  if (r == 0)
    r = drain_blocks (w, err);
  kiln_layer_map_begin_entry (&w->map, e->path, size, e->opaque, e->known_digest);
  return r;
}

static int
end_entry (struct kiln_layer_writer *w, const struct kiln_digest *digest, struct kiln_error **err)
{
  if (!w->mapped)
    return 0;
  kiln_layer_map_end_entry (&w->map, digest);
  return drain_blocks (w, err);
}

static int
write_header (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, struct kiln_error **err)
{
  if (w->failed || w->blob == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "add `%s` to layer: writer already failed or finished", e->path);
  int r = check_entry (e, err);
  if (r < 0 || (r = entry_boundary (w, e, err)) < 0)
    return r;
  fill_entry (w, e);
  /* Names are bytes.  libarchive converts them from the thread's locale to
   * UTF-8 for pax records; pinning that locale to C.UTF-8 makes the output
   * independent of the caller's LANG.  A name that is not valid UTF-8 still
   * goes in byte for byte, with a hdrcharset=BINARY record (and a warning).
   * The locale is the process's one (util.c): made once, never freed, as
   * stages writing layers at once would race on glibc's locale data. */
  locale_t old = kiln_locale_utf8_enter ();
  r = archive_write_header (w->ar, w->entry);
  kiln_locale_restore (old);
  r = archive_status (w, r, "write tar header for", e->path, err);
  if (r == 0)
    record_toc (w, e);
  return r;
}

static int
write_data (struct kiln_layer_writer *w, const char *path, const void *data, size_t len, struct kiln_error **err)
{
  w->in_data = true;
  la_ssize_t n = archive_write_data (w->ar, data, len);
  w->in_data = false;
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
  bool eof = false;
  struct kiln_sha256 *h = e->content_digest ? kiln_sha256_new () : NULL;
  /* read-ahead doubled for big files; a hint, so failure does not matter */
  if (e->size > PIPE_CHUNK)
    (void) posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  while (done < e->size)
    {
      size_t room;
      unsigned char *buf = kiln_layer_pipe_tail (&w->pipe, &room);
      uint64_t left = e->size - done;
      /* the last read asks one byte more: a short answer is the end of a
       * regular file, so a small file costs one read, not a read and a probe */
      size_t want = left < room ? (size_t) left + 1 : room;
      ssize_t n = read_some (fd, buf, want);
      if (n < 0)
        {
          w->failed = true;
          kiln_sha256_free (h);
          return kiln_error_set (err, errno, KILN_E_IO, "read `%s`", e->path);
        }
      if (n == 0 || (uint64_t) n > left)
        break; /* shrank or grew: the size check below fails */
      eof = (size_t) n < want && (uint64_t) n == left;
      if (h)
        kiln_sha256_update (h, buf, (size_t) n);
      int r = write_data (w, e->path, buf, (size_t) n, err);
      if (r < 0)
        {
          kiln_sha256_free (h);
          return r;
        }
      done += (uint64_t) n;
    }
  char probe;
  if (done == e->size && (eof || read_some (fd, &probe, 1) == 0))
    {
      if (h)
        kiln_sha256_final (h, e->content_digest);
      kiln_sha256_free (h);
      return 0;
    }
  kiln_sha256_free (h);
  w->failed = true;
  return kiln_error_set (err, 0, KILN_E_IO, "read `%s`: file changed size while being added (expected %llu bytes)",
                         e->path, (unsigned long long) e->size);
}

/* Patch mode: the content is not read; zeros stand in for it in the tar
 * stream, whose data bytes only count here (the blocks are made from the
 * files or the old layer). */
static int
skip_data (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, struct kiln_error **err)
{
  if (e->known_digest == NULL)
    {
      w->failed = true;
      return kiln_error_set (err, 0, KILN_E_INTERNAL, "add `%s` to a patched layer: no content digest", e->path);
    }
  if (w->zeros == NULL)
    w->zeros = kiln_xcalloc (1, PIPE_CHUNK);
  for (uint64_t done = 0; done < e->size;)
    {
      size_t n = e->size - done < PIPE_CHUNK ? (size_t) (e->size - done) : PIPE_CHUNK;
      int r = write_data (w, e->path, w->zeros, n, err);
      if (r < 0)
        return r;
      done += n;
    }
  return 0;
}

int
kiln_layer_writer_add (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, int fd, struct kiln_error **err)
{
  int r = write_header (w, e, err);
  if (r < 0)
    return r;
  if (!e->hardlink && S_ISREG (e->mode))
    r = w->patch ? skip_data (w, e, err) : copy_fd (w, e, fd, err);
  if (r < 0)
    return r;
  return end_entry (w, e->known_digest ? e->known_digest : e->content_digest, err);
}

int
kiln_layer_writer_add_data (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, const void *data, size_t len,
                            struct kiln_error **err)
{
  struct kiln_layer_entry copy = *e;
  copy.mode = (e->mode & ~(mode_t) S_IFMT) | S_IFREG;
  copy.size = len;
  copy.hardlink = false;
  copy.link = NULL;
  struct kiln_digest d;
  if (w->mapped)
    {
      kiln_digest_of (data, len, &d);
      copy.known_digest = &d;
    }
  int r = write_header (w, &copy, err);
  if (r < 0)
    return r;
  /* the bytes are at hand: a patching writer keeps them with the block
   * instead of opening anything again */
  w->map.keep_data = w->patch != NULL;
  r = write_data (w, e->path, data, len, err);
  w->map.keep_data = false;
  if (r < 0)
    return r;
  return end_entry (w, w->mapped ? &d : NULL, err);
}

static int
fill_result (struct kiln_layer_writer *w, const struct kiln_digest *blob, uint64_t size, struct kiln_layer_result *res)
{
  kiln_sha256_final (w->tar_hash, &res->diff_id);
  res->tar_size = w->tar_size;
  memset (&res->desc, 0, sizeof res->desc);
  res->desc.media_type = kiln_xstrdup (kiln_compression_media_type (w->opts.compression));
  res->desc.digest = *blob;
  res->desc.size = (int64_t) size;
  kiln_autoerror struct kiln_error *e = NULL;
  /* the TOC can always be read again from the blob: losing it is no failure */
  if (kiln_toc_rec_save (w->st, &res->diff_id, &w->toc, &e) < 0)
    kiln_log_warn ("%s", e->msg);
  return 0;
}

/* The map of a fresh layer: the builder's blocks matched with the
 * compressor's, one for one (anything else is a bug, and costs only the
 * shortcut). */
static void
save_map (struct kiln_layer_writer *w, const struct kiln_digest *blob, const struct lmap *made)
{
  kiln_autoerror struct kiln_error *e = NULL;
  struct lmap m = { .level = w->opts.level };
  if (made == NULL)
    {
      if (w->map.broken || w->umap.n != w->cmap.n)
        {
          if (!w->map.broken)
            kiln_log_debug ("layer %s: %zu blocks cut, %zu compressed; no block map", blob->s, w->umap.n, w->cmap.n);
          return;
        }
      for (size_t i = 0; i < w->umap.n; i++)
        {
          if (w->umap.v[i].u_len != w->cmap.v[i].u_len)
            {
              kiln_log_debug ("layer %s: block %zu cut at another length; no block map", blob->s, i);
              kiln_layer_map_clear (&m);
              return;
            }
          kiln_layer_map_add (&m, w->umap.v[i].u_len, w->cmap.v[i].c_len, w->cmap.v[i].crc, w->cmap.v[i].ccrc,
                              w->umap.v[i].recipe, &w->umap.v[i].mid);
        }
      made = &m;
    }
  w->made = made == &m ? made->n : w->made;
  if (kiln_layer_map_save (w->st, blob, made, &e) < 0)
    kiln_log_warn ("%s", e->msg);
  kiln_layer_map_clear (&m);
}

/* Closes the tar; the blocks left go to the compressor or, patching, are
 * emitted and the gzip end written. */
static int
finish_stream (struct kiln_layer_writer *w, struct lmap **made, struct kiln_error **err)
{
  /* close writes the end-of-archive blocks and flushes the last block. */
  int r = archive_status (w, archive_write_close (w->ar), "finish", "tar stream", err);
  if (r == 0 && w->mapped)
    {
      kiln_layer_map_finish (&w->map);
      r = drain_blocks (w, err);
    }
  if (r == 0 && w->patch)
    {
      r = kiln_layer_patch_end (w->patch, w->blob, w->tar_hash, made, err);
      kiln_layer_patch_counts (w->patch, &w->made, &w->reused);
      return r;
    }
  if (r == 0)
    r = kiln_layer_pipe_finish (&w->pipe, err);
  if (r == 0)
    r = kiln_compressor_finish (w->comp, err);
  return r;
}

int
kiln_layer_writer_finish (struct kiln_layer_writer *w, struct kiln_layer_result *res, struct kiln_error **err)
{
  if (w->failed || w->blob == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "finish layer: writer already failed or finished");
  struct lmap *made = NULL;
  int r = finish_stream (w, &made, err);
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
  if (w->mapped)
    save_map (w, &blob, made);
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
  kiln_layer_pipe_stop (&w->pipe, true);
  /* its threads may still be writing to the blob */
  kiln_layer_patch_free (kiln_steal_ptr (&w->patch));
  if (w->ar != NULL)
    archive_write_free (w->ar);
  archive_entry_free (w->entry);
  kiln_compressor_free (w->comp);
  kiln_blob_writer_abort (w->blob);
  kiln_sha256_free (w->tar_hash);
  kiln_error_free (&w->cb_err);
  kiln_layer_pipe_clear (&w->pipe);
  kiln_toc_rec_clear (&w->toc);
  kiln_layer_map_builder_clear (&w->map);
  kiln_layer_map_clear (&w->umap);
  kiln_layer_map_clear (&w->cmap);
  kiln_layer_patch_free (w->patch);
  free (w->zeros);
  free (w);
}
