/* toc.c - layer tables of contents: recorded while a layer is written or
 * extracted, stored by diffID, read back from the store or, failing that,
 * from the layer's blob.  The merged view of a chain is toc_view.c. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/toc.h"
#include "kiln/util.h"

/* File format, version 1: "KILNTOC1", u64 count, count records, then the
 * "sha256:<hex>" of everything before it.  A record: u32 mode, u32 uid,
 * u32 gid, i64 mtime, u8 flags (1 hardlink, 2 has link), u32 path length,
 * path, [u32 link length, link].  Integers little-endian. */
#define TOC_MAGIC "KILNTOC1"
#define TOC_MAX ((size_t) 1 << 31) /* 2 GiB: far past any real layer's TOC */

enum { F_HARDLINK = 1, F_LINK = 2 };

static void
put_le (struct kiln_buf *b, uint64_t v, int bytes)
{
  unsigned char x[8];
  for (int i = 0; i < bytes; i++)
    x[i] = (unsigned char) (v >> (8 * i));
  kiln_buf_add (b, x, (size_t) bytes);
}

#define TOC_SPILL_BYTES (4u << 20)
#define TOC_HEAD 16 /* magic, u64 count */

void
kiln_toc_rec_init (struct kiln_toc_rec *r)
{
  kiln_buf_init (&r->data, 0);
  r->count = 0;
  r->spill_st = NULL;
  r->spill_fd = -1;
  r->spill_failed = false;
}

void
kiln_toc_rec_clear (struct kiln_toc_rec *r)
{
  kiln_buf_release (&r->data);
  r->count = 0;
  if (r->spill_fd >= 0)
    close (r->spill_fd);
  r->spill_fd = -1;
}

void
kiln_toc_rec_spill (struct kiln_toc_rec *r, struct kiln_store *st)
{
  r->spill_st = st;
}

/* The records in memory go to the unnamed file, after room for the header.
 * When no such file can be made the records stay in memory (and spilling
 * stops); only a write that fails after the file took records loses them. */
static void
rec_set_aside (struct kiln_toc_rec *r)
{
  static const char room[TOC_HEAD];
  kiln_autoerror struct kiln_error *e = NULL;
  if (r->spill_fd < 0)
    {
      r->spill_fd = kiln_fs_tmpfile_beneath (kiln_store_dirfd (r->spill_st), "cache/toc", 0644, &e);
      if (r->spill_fd < 0 || kiln_fs_write_all (r->spill_fd, room, sizeof room, &e) < 0)
        {
          if (r->spill_fd >= 0)
            close (r->spill_fd);
          r->spill_fd = -1;
          r->spill_st = NULL;
          return;
        }
    }
  if (r->spill_failed || kiln_fs_write_all (r->spill_fd, r->data.buf, r->data.len, &e) < 0)
    r->spill_failed = true;
  kiln_buf_reset (&r->data);
}

void
kiln_toc_rec_add (struct kiln_toc_rec *r, const struct kiln_toc_entry *e)
{
  size_t pl = strlen (e->path);
  put_le (&r->data, (uint32_t) e->mode, 4);
  put_le (&r->data, (uint32_t) e->uid, 4);
  put_le (&r->data, (uint32_t) e->gid, 4);
  put_le (&r->data, (uint64_t) e->mtime, 8);
  put_le (&r->data, (e->hardlink ? F_HARDLINK : 0) | (e->link ? F_LINK : 0), 1);
  put_le (&r->data, pl, 4);
  kiln_buf_add (&r->data, e->path, pl);
  if (e->link)
    {
      put_le (&r->data, strlen (e->link), 4);
      kiln_buf_adds (&r->data, e->link);
    }
  r->count++;
  if (r->spill_st && r->data.len >= TOC_SPILL_BYTES)
    rec_set_aside (r);
}

static int decode (const struct kiln_buf *b, struct kiln_toc **out);

/* What comes before the records: the magic and their count (TOC_HEAD bytes). */
static void
rec_head (const struct kiln_toc_rec *r, struct kiln_buf *out)
{
  kiln_buf_add (out, TOC_MAGIC, 8);
  put_le (out, r->count, 8);
}

/* The file format around r's records. */
static void
rec_frame (const struct kiln_toc_rec *r, struct kiln_buf *out)
{
  struct kiln_digest d;
  rec_head (r, out);
  kiln_buf_add (out, r->data.buf, r->data.len);
  kiln_digest_of (out->buf, out->len, &d);
  kiln_buf_adds (out, d.s);
}

int
kiln_toc_rec_read (const struct kiln_toc_rec *r, struct kiln_toc **out)
{
  if (r->spill_fd >= 0 || r->spill_failed)
    return -1;
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  rec_frame (r, &b);
  return decode (&b, out);
}

/* cache/toc/<diffID hex><suffix>: the TOC itself ("") or the blob a cache
 * import named for it (".blob"). */
static char *
toc_rel (const struct kiln_digest *diff_id, const char *suffix)
{
  return kiln_xasprintf ("cache/toc/%s%s", kiln_digest_hex (diff_id), suffix);
}

static int
write_toc_filev (struct kiln_store *st, const struct kiln_digest *diff_id, const char *suffix, const struct iovec *iov,
                 int n, struct kiln_error **err)
{
  kiln_autofree char *name = kiln_xasprintf ("%s%s", kiln_digest_hex (diff_id), suffix);
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), "cache/toc", 0755, err);
  /* a TOC that is lost or torn is rebuilt from its blob */
  if (dfd < 0 || kiln_fs_write_atomicv (dfd, name, iov, n, 0644, err) < 0)
    return kiln_error_wrap (err, "save the table of contents of layer %s", diff_id->s);
  return 0;
}

static int
write_toc_file (struct kiln_store *st, const struct kiln_digest *diff_id, const char *suffix, const void *data,
                size_t len, struct kiln_error **err)
{
  struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
  return write_toc_filev (st, diff_id, suffix, &iov, 1, err);
}

/* The set-aside file completed (header, the last records, digest) and
 * named: linked under a temporary name, renamed over the TOC's. */
static int
save_set_aside (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_toc_rec *r,
                struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf head = KILN_BUF_INIT;
  struct kiln_digest d;
  rec_set_aside (r);
  rec_head (r, &head);
  off_t end = lseek (r->spill_fd, 0, SEEK_END);
  if (r->spill_failed || end < 0 || pwrite (r->spill_fd, head.buf, TOC_HEAD, 0) != TOC_HEAD
      || lseek (r->spill_fd, 0, SEEK_SET) < 0 || kiln_digest_fd (r->spill_fd, &d, NULL, err) < 0)
    return *err ? -1 : kiln_error_set (err, errno, KILN_E_IO, "set aside the table of contents");
  kiln_autofree char *name = kiln_xasprintf ("%s", kiln_digest_hex (diff_id));
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s.%d", name, (int) gettid ());
  kiln_autofree char *proc = kiln_xasprintf ("/proc/self/fd/%d", r->spill_fd);
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), "cache/toc", 0755, err);
  if (dfd < 0)
    return -1;
  if (pwrite (r->spill_fd, d.s, strlen (d.s), end) != (ssize_t) strlen (d.s) || fsync (r->spill_fd) < 0
      || linkat (AT_FDCWD, proc, dfd, tmp, AT_SYMLINK_FOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "save the table of contents of layer %s", diff_id->s);
  if (renameat (dfd, tmp, dfd, name) < 0)
    {
      int saved = errno;
      unlinkat (dfd, tmp, 0);
      return kiln_error_set (err, saved, KILN_E_IO, "save the table of contents of layer %s", diff_id->s);
    }
  return 0;
}

/* rec_frame's bytes written from the records where they are: a layer of a
 * million files has tens of MB of them, not to be copied once more. */
int
kiln_toc_rec_save (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_toc_rec *r,
                   struct kiln_error **err)
{
  if (r->spill_fd >= 0 || r->spill_failed)
    return save_set_aside (st, diff_id, r, err);
  kiln_autobuf struct kiln_buf head = KILN_BUF_INIT;
  struct kiln_digest d;
  rec_head (r, &head);
  struct kiln_sha256 *h = kiln_sha256_new ();
  kiln_sha256_update (h, head.buf, head.len);
  kiln_sha256_update (h, r->data.buf, r->data.len);
  kiln_sha256_final (h, &d);
  kiln_sha256_free (h);
  struct iovec iov[3] = { { head.buf, head.len }, { r->data.buf, r->data.len }, { d.s, strlen (d.s) } };
  return write_toc_filev (st, diff_id, "", iov, 3, err);
}

void
kiln_toc_free (struct kiln_toc *t)
{
  if (!t)
    return;
  free (t->v);
  free (t->strings);
  free (t);
}

/* ---- decoding a stored TOC ---- */

struct reader {
  const unsigned char *p, *end;
  bool bad;
};

static uint64_t
get_le (struct reader *r, int bytes)
{
  uint64_t v = 0;
  if (r->bad || r->end - r->p < bytes)
    {
      r->bad = true;
      return 0;
    }
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t) r->p[i] << (8 * i);
  r->p += bytes;
  return v;
}

/* A length-prefixed string copied into *sp (NUL-terminated); NULL if bad. */
static const char *
get_str (struct reader *r, char **sp)
{
  uint64_t n = get_le (r, 4);
  if (r->bad || (uint64_t) (r->end - r->p) < n || memchr (r->p, '\0', n))
    {
      r->bad = true;
      return NULL;
    }
  char *s = *sp;
  memcpy (s, r->p, n);
  s[n] = '\0';
  *sp += n + 1;
  r->p += n;
  return s;
}

static int
decode (const struct kiln_buf *b, struct kiln_toc **out)
{
  const size_t tl = KILN_DIGEST_STR_LEN;
  struct kiln_digest d;
  if (b->len < 16 + tl || memcmp (b->buf, TOC_MAGIC, 8) != 0)
    return -1;
  kiln_digest_of (b->buf, b->len - tl, &d);
  if (memcmp (d.s, b->buf + b->len - tl, tl) != 0)
    return -1;
  struct reader r = { (const unsigned char *) b->buf + 8, (const unsigned char *) b->buf + b->len - tl, false };
  uint64_t count = get_le (&r, 8);
  /* every record takes at least 25 bytes: a count beyond that is a lie */
  if (count > (uint64_t) (r.end - r.p) / 25)
    return -1;
  struct kiln_toc *t = kiln_xcalloc (1, sizeof *t);
  t->v = kiln_xcalloc (count ? count : 1, sizeof *t->v);
  t->strings = kiln_xmalloc (b->len + 2 * count + 1);
  char *sp = t->strings;
  for (uint64_t i = 0; i < count && !r.bad; i++)
    {
      struct kiln_toc_entry *e = &t->v[i];
      e->mode = (mode_t) get_le (&r, 4);
      e->uid = (uid_t) get_le (&r, 4);
      e->gid = (gid_t) get_le (&r, 4);
      e->mtime = (int64_t) get_le (&r, 8);
      unsigned flags = (unsigned) get_le (&r, 1);
      e->hardlink = flags & F_HARDLINK;
      e->path = get_str (&r, &sp);
      e->link = flags & F_LINK ? get_str (&r, &sp) : NULL;
    }
  t->n = count;
  if (r.bad || r.p != r.end)
    {
      kiln_toc_free (t);
      return -1;
    }
  *out = t;
  return 0;
}

/* ---- building a TOC from a layer blob ---- */

void
kiln_toc_rec_add_archive (struct kiln_toc_rec *rec, struct archive_entry *ae)
{
  kiln_autofree char *path = kiln_fs_path_clean (archive_entry_pathname (ae) ? archive_entry_pathname (ae) : "");
  const char *hl = archive_entry_hardlink (ae);
  const char *sl = archive_entry_symlink (ae);
  kiln_autofree char *hlc = hl ? kiln_fs_path_clean (hl) : NULL;
  struct kiln_toc_entry e = {
    .path = path,
    .mode = archive_entry_mode (ae),
    .uid = (uid_t) archive_entry_uid (ae),
    .gid = (gid_t) archive_entry_gid (ae),
    .mtime = archive_entry_mtime (ae),
    .link = hlc ? hlc : sl,
    .hardlink = hlc != NULL,
  };
  if (!*path)
    return;
  if (e.hardlink)
    e.mode = (e.mode & 07777) | S_IFREG;
  kiln_toc_rec_add (rec, &e);
}

static int
rec_from_blob (struct kiln_store *st, const struct kiln_descriptor *layer, struct kiln_toc_rec *rec,
               struct kiln_error **err)
{
  kiln_autoclose int fd = kiln_store_blob_open (st, &layer->digest, err);
  if (fd < 0)
    return -1;
  struct archive *a = archive_read_new ();
  struct archive_entry *ae;
  int r;
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  r = archive_read_open_fd (a, fd, 1 << 16);
  /* names as bytes, whatever the locale (a warning about one would end the
   * walk and fail the COPY) */
  locale_t old = kiln_locale_utf8_enter ();
  while (r == ARCHIVE_OK && ((r = archive_read_next_header (a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN))
    {
      kiln_toc_rec_add_archive (rec, ae);
      r = archive_read_data_skip (a);
    }
  kiln_locale_restore (old);
  if (r != ARCHIVE_EOF)
    kiln_error_set (err, archive_errno (a), KILN_E_IO, "read layer %s for its table of contents: %s", layer->digest.s,
                    archive_error_string (a) ? archive_error_string (a) : "bad tar");
  archive_read_free (a);
  return r == ARCHIVE_EOF ? 0 : -1;
}

bool
kiln_toc_exists (struct kiln_store *st, const struct kiln_digest *diff_id)
{
  struct stat sb;
  kiln_autofree char *rel = toc_rel (diff_id, "");
  return fstatat (kiln_store_dirfd (st), rel, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The stored TOC of diff_id, its bytes in b and decoded in *out (optional):
 * 1, or 0 when there is none or it does not verify. */
static int
read_stored (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_buf *b, struct kiln_toc **out)
{
  kiln_autofree char *rel = toc_rel (diff_id, "");
  kiln_autoerror struct kiln_error *e = NULL;
  struct kiln_toc *t = NULL;
  if (kiln_fs_read_file (kiln_store_dirfd (st), rel, TOC_MAX, b, &e) < 0)
    return 0;
  if (decode (b, &t) < 0)
    {
      kiln_log_warn ("the table of contents of layer %s does not verify; reading the layer again", diff_id->s);
      return 0;
    }
  if (out)
    *out = t;
  else
    kiln_toc_free (t);
  return 1;
}

int
kiln_toc_export (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_descriptor *blob,
                 struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  if (!read_stored (st, diff_id, &b, NULL))
    return 0;
  memset (blob, 0, sizeof *blob);
  if (kiln_store_blob_put (st, b.buf, b.len, &blob->digest, err) < 0)
    return -1;
  blob->media_type = kiln_xstrdup (KILN_MT_TOC);
  blob->size = (int64_t) b.len;
  return 1;
}

int
kiln_toc_note_blob (struct kiln_store *st, const struct kiln_digest *diff_id, const struct kiln_digest *blob,
                    struct kiln_error **err)
{
  return write_toc_file (st, diff_id, ".blob", blob->s, strlen (blob->s), err);
}

/* The TOC from the blob a cache import named, fetched now; 0 if none. */
static int
load_noted (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_toc **out)
{
  kiln_autobuf struct kiln_buf ptr = KILN_BUF_INIT, b = KILN_BUF_INIT;
  kiln_autofree char *rel = toc_rel (diff_id, ".blob");
  kiln_autoerror struct kiln_error *e = NULL;
  struct kiln_digest d;
  if (kiln_fs_read_file (kiln_store_dirfd (st), rel, 128, &ptr, &e) < 0 || kiln_digest_parse (ptr.buf, &d, &e) < 0
      || kiln_store_blob_read (st, &d, TOC_MAX, &b, &e) < 0 || decode (&b, out) < 0)
    {
      if (e)
        kiln_log_debug ("table of contents of layer %s from the cache: %s", diff_id->s, e->msg);
      return 0;
    }
  if (write_toc_file (st, diff_id, "", b.buf, b.len, &e) < 0)
    kiln_log_warn ("%s", e->msg);
  return 1;
}

int
kiln_toc_load (struct kiln_store *st, const struct kiln_descriptor *layer, const struct kiln_digest *diff_id,
               struct kiln_toc **out, struct kiln_error **err)
{
  struct kiln_toc_rec rec;
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  if (read_stored (st, diff_id, &b, out) || load_noted (st, diff_id, out))
    return 0;
  kiln_toc_rec_init (&rec);
  int r = rec_from_blob (st, layer, &rec, err);
  if (r == 0 && kiln_toc_rec_read (&rec, out) < 0)
    r = kiln_error_set (err, 0, KILN_E_INTERNAL, "list the table of contents of layer %s", diff_id->s);
  if (r == 0)
    {
      /* kept for next time; without it the layer is only read again */
      kiln_autoerror struct kiln_error *e = NULL;
      if (kiln_toc_rec_save (st, diff_id, &rec, &e) < 0)
        kiln_log_warn ("%s", e->msg);
    }
  kiln_toc_rec_clear (&rec);
  return r;
}
