/* store.c - the content-addressed store: an OCI image layout at --root.
 *
 * Everything inside the root is reached from the root's O_DIRECTORY fd with
 * *at() calls or openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a symlink
 * planted inside the store cannot redirect a write elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "store-internal.h"

#define OCI_LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"
#define EMPTY_INDEX_JSON "{\"manifests\":[],\"mediaType\":\"" KILN_MT_OCI_INDEX "\",\"schemaVersion\":2}"

struct kiln_blob_writer {
  struct kiln_store *st;
  int fd;
  char name[48]; /* ingest/<name> */
  struct kiln_sha256 *hash;
  uint64_t size;
  uint64_t flushed; /* bytes already handed to writeback */
  /* O_DIRECT (kiln_blob_writer_set_direct): bytes that do not fill an
   * aligned block yet wait in dbuf */
  bool direct;
  unsigned char *dbuf;
  size_t dlen;
};

/* Direct writes go in whole blocks of this many bytes from a buffer aligned
 * to it; 4096 satisfies every disk's logical block size. */
#define KILN_BLOB_DIRECT_ALIGN 4096u
#define KILN_BLOB_DIRECT_BUF (1u << 20)

/* Writeback started every this many bytes, so the fsync at commit finds
 * little left to write instead of the whole multi-GB blob. */
#define KILN_BLOB_WRITEBACK (32u << 20)

/* mkdir -p for the root path itself: the only place a caller-given path is
 * walked; everything below it goes through the root fd. */
static int
mkdir_root (const char *root, struct kiln_error **err)
{
  kiln_autofree char *p = kiln_xstrdup (root);
  for (char *s = p + 1; *s; s++)
    {
      if (*s != '/')
        continue;
      *s = '\0';
      if (mkdir (p, 0755) < 0 && errno != EEXIST)
        return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", p);
      *s = '/';
    }
  if (mkdir (p, 0755) < 0 && errno != EEXIST)
    return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", p);
  return 0;
}

static int
open_subdir (int rootfd, const char *rel, struct kiln_error **err)
{
  int fd = kiln_fs_mkdir_p_beneath (rootfd, rel, 0755, err);
  if (fd < 0)
    return fd;
  close (fd);
  /* O_PATH fds from mkdir_p cannot be fsync()ed; reopen for real */
  return kiln_fs_open_beneath (rootfd, rel, O_RDONLY | O_DIRECTORY, 0, err);
}

int
kiln_store_lock (struct kiln_store *st, int op, struct kiln_error **err)
{
  pthread_mutex_lock (&st->lock_mu);
  if (st->lock_depth++ > 0)
    return 0; /* this thread holds it already */
  while (flock (st->lockfd, op) < 0)
    if (errno != EINTR)
      {
        st->lock_depth--;
        pthread_mutex_unlock (&st->lock_mu);
        return kiln_error_set (err, errno, KILN_E_IO, "lock `kiln.lock` in store `%s`", st->root);
      }
  return 0;
}

void
kiln_store_unlock (struct kiln_store *st)
{
  if (--st->lock_depth == 0)
    flock (st->lockfd, LOCK_UN);
  pthread_mutex_unlock (&st->lock_mu);
}

/* Creates oci-layout and index.json when missing.  index.json is created
 * under the lock: a concurrent tag must not be overwritten by an empty index. */
static int
init_files (struct kiln_store *st, struct kiln_error **err)
{
  struct stat sb;
  int r = 0;
  if (fstatat (st->rootfd, "oci-layout", &sb, AT_SYMLINK_NOFOLLOW) < 0
      && kiln_fs_write_atomic (st->rootfd, "oci-layout", OCI_LAYOUT_JSON, strlen (OCI_LAYOUT_JSON), 0644, err) < 0)
    return -1;
  if (kiln_store_lock (st, LOCK_EX, err) < 0)
    return -1;
  if (fstatat (st->rootfd, "index.json", &sb, AT_SYMLINK_NOFOLLOW) < 0)
    r = kiln_fs_write_atomic (st->rootfd, "index.json", EMPTY_INDEX_JSON, strlen (EMPTY_INDEX_JSON), 0644, err);
  kiln_store_unlock (st);
  return r;
}

static int
store_open_fds (struct kiln_store *st, struct kiln_error **err)
{
  st->rootfd = open (st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (st->rootfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", st->root);
  if ((st->blobsfd = open_subdir (st->rootfd, "blobs/sha256", err)) < 0
      || (st->ingestfd = open_subdir (st->rootfd, "ingest", err)) < 0
      || (st->tmpfd = open_subdir (st->rootfd, "tmp", err)) < 0)
    return -1;
  st->lockfd = kiln_fs_open_beneath (st->rootfd, "kiln.lock", O_RDWR | O_CREAT, 0644, err);
  if (st->lockfd < 0)
    return -1;
  return init_files (st, err);
}

int
kiln_store_open (const char *root, struct kiln_store **out, struct kiln_error **err)
{
  struct kiln_store *st;
  if (root == NULL || *root == '\0')
    return kiln_error_set (err, 0, KILN_E_USAGE, "open store: empty root path");
  if (mkdir_root (root, err) < 0)
    return kiln_error_wrap (err, "open store `%s`", root);
  st = kiln_xcalloc (1, sizeof *st);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init (&ma);
  pthread_mutexattr_settype (&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init (&st->lock_mu, &ma);
  pthread_mutexattr_destroy (&ma);
  st->root = kiln_xstrdup (root);
  st->rootfd = st->blobsfd = st->ingestfd = st->tmpfd = st->lockfd = -1;
  if (store_open_fds (st, err) < 0)
    {
      kiln_store_free (st);
      return kiln_error_wrap (err, "open store `%s`", root);
    }
  *out = st;
  return 0;
}

void
kiln_store_free (struct kiln_store *st)
{
  if (st == NULL)
    return;
  int fds[] = { st->rootfd, st->blobsfd, st->ingestfd, st->tmpfd, st->lockfd };
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  free (st->root);
  pthread_mutex_destroy (&st->lock_mu);
  free (st);
}

int
kiln_store_dirfd (const struct kiln_store *st)
{
  return st->rootfd;
}

const char *
kiln_store_root (const struct kiln_store *st)
{
  return st->root;
}

char *
kiln_store_blob_relpath (const struct kiln_digest *d)
{
  return kiln_xasprintf ("blobs/sha256/%s", kiln_digest_hex (d));
}

int
kiln_store_random_name (char *out, size_t size, const char *prefix)
{
  unsigned char rnd[12];
  static const char hex[] = "0123456789abcdef";
  size_t plen = strlen (prefix);
  if (size < plen + 2 * sizeof rnd + 1)
    return -ENAMETOOLONG;
  if (getrandom (rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
    {
      /* getrandom cannot fail for 12 bytes after boot; fall back to a counter anyway */
      unsigned long long t = kiln_now_ns () ^ ((unsigned long long) getpid () << 32);
      memcpy (rnd, &t, sizeof t);
      memset (rnd + sizeof t, 0, sizeof rnd - sizeof t);
    }
  memcpy (out, prefix, plen);
  for (size_t i = 0; i < sizeof rnd; i++)
    {
      out[plen + 2 * i] = hex[rnd[i] >> 4];
      out[plen + 2 * i + 1] = hex[rnd[i] & 15];
    }
  out[plen + 2 * sizeof rnd] = '\0';
  return 0;
}

int
kiln_store_blob_begin (struct kiln_store *st, struct kiln_blob_writer **out, struct kiln_error **err)
{
  struct kiln_blob_writer *w = kiln_xcalloc (1, sizeof *w);
  w->st = st;
  w->fd = -1;
  for (int tries = 0; tries < 8 && w->fd < 0; tries++)
    {
      kiln_store_random_name (w->name, sizeof w->name, "blob-");
      w->fd = openat (st->ingestfd, w->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (w->fd < 0 && errno != EEXIST)
        break;
    }
  if (w->fd < 0)
    {
      int e = errno;
      free (w);
      return kiln_error_set (err, e, KILN_E_IO, "create ingest file in store `%s`", st->root);
    }
  w->hash = kiln_sha256_new ();
  *out = w;
  return 0;
}

void
kiln_blob_writer_set_direct (struct kiln_blob_writer *w)
{
  int fl = fcntl (w->fd, F_GETFL);
  /* tmpfs before 6.6 and some FUSE file systems refuse O_DIRECT: the blob
   * is then written through the page cache as usual */
  if (w->size > 0 || fl < 0 || fcntl (w->fd, F_SETFL, fl | O_DIRECT) < 0)
    return;
  w->dbuf = aligned_alloc (KILN_BLOB_DIRECT_ALIGN, KILN_BLOB_DIRECT_BUF);
  if (w->dbuf == NULL)
    {
      (void) fcntl (w->fd, F_SETFL, fl);
      return;
    }
  w->direct = true;
}

/* Back to the page cache: for the tail that fills no block, or when the
 * file system takes O_DIRECT at open but refuses our alignment. */
static int
direct_off (struct kiln_blob_writer *w)
{
  int fl = fcntl (w->fd, F_GETFL);
  if (fl < 0 || fcntl (w->fd, F_SETFL, fl & ~O_DIRECT) < 0)
    return -1;
  w->direct = false;
  return 0;
}

static int
write_out (struct kiln_blob_writer *w, const unsigned char *p, size_t n, struct kiln_error **err)
{
  while (n > 0)
    {
      ssize_t k = write (w->fd, p, n);
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0 && errno == EINVAL && w->direct && direct_off (w) == 0)
        continue;
      if (k <= 0)
        return kiln_error_set (err, k < 0 ? errno : EIO, KILN_E_IO, "write blob `ingest/%s`", w->name);
      p += k, n -= (size_t) k;
    }
  return 0;
}

/* Whole aligned blocks straight from the caller's buffer when it is
 * aligned (a download's stage is); the rest gathered in dbuf first. */
static int
write_direct (struct kiln_blob_writer *w, const unsigned char *p, size_t len, struct kiln_error **err)
{
  while (len > 0 && w->direct)
    {
      size_t n;
      if (w->dlen == 0 && (uintptr_t) p % KILN_BLOB_DIRECT_ALIGN == 0 && len >= KILN_BLOB_DIRECT_ALIGN)
        {
          n = len - len % KILN_BLOB_DIRECT_ALIGN;
          if (write_out (w, p, n, err) < 0)
            return -1;
        }
      else
        {
          n = KILN_BLOB_DIRECT_BUF - w->dlen < len ? KILN_BLOB_DIRECT_BUF - w->dlen : len;
          memcpy (w->dbuf + w->dlen, p, n);
          w->dlen += n;
          if (w->dlen == KILN_BLOB_DIRECT_BUF && write_out (w, w->dbuf, w->dlen, err) < 0)
            return -1;
          if (w->dlen == KILN_BLOB_DIRECT_BUF)
            w->dlen = 0;
        }
      p += n, len -= n;
    }
  return write_out (w, p, len, err); /* what is left after direct_off */
}

/* The bytes still in dbuf, written through the page cache. */
static int
direct_finish (struct kiln_blob_writer *w, struct kiln_error **err)
{
  if (w->dbuf == NULL)
    return 0;
  if (w->direct && direct_off (w) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "clear O_DIRECT on blob `ingest/%s`", w->name);
  size_t n = w->dlen;
  w->dlen = 0;
  return write_out (w, w->dbuf, n, err);
}

int
kiln_blob_writer_write (struct kiln_blob_writer *w, const void *data, size_t len, struct kiln_error **err)
{
  if (w->dbuf ? write_direct (w, data, len, err) < 0 : kiln_fs_write_all (w->fd, data, len, err) < 0)
    return kiln_error_wrap (err, "write blob `ingest/%s`", w->name);
  kiln_sha256_update (w->hash, data, len);
  w->size += len;
  if (!w->direct && w->size - w->flushed >= KILN_BLOB_WRITEBACK)
    {
      /* a hint: a failure only leaves the work to fsync */
      (void) sync_file_range (w->fd, (off_t) w->flushed, (off_t) (w->size - w->flushed), SYNC_FILE_RANGE_WRITE);
      w->flushed = w->size;
    }
  return 0;
}

void
kiln_blob_writer_abort (struct kiln_blob_writer *w)
{
  if (w == NULL)
    return;
  if (w->fd >= 0)
    close (w->fd);
  unlinkat (w->st->ingestfd, w->name, 0);
  kiln_sha256_free (w->hash);
  free (w->dbuf);
  free (w);
}

/* Moves the finished temp file into blobs/sha256/<hex>.  RENAME_NOREPLACE
 * keeps an existing blob's inode (it may be hardlinked into an export). */
static int
install_blob (struct kiln_blob_writer *w, const struct kiln_digest *d, struct kiln_error **err)
{
  struct kiln_store *st = w->st;
  const char *hex = kiln_digest_hex (d);
  if (renameat2 (st->ingestfd, w->name, st->blobsfd, hex, RENAME_NOREPLACE) < 0)
    {
      if (errno != EEXIST && !(errno == EINVAL || errno == ENOSYS))
        return kiln_error_set (err, errno, KILN_E_IO, "rename blob into `blobs/sha256/%s`", hex);
      struct stat sb;
      /* EINVAL/ENOSYS: filesystem without RENAME_NOREPLACE; a plain rename
       * over an identical blob is harmless */
      if (errno != EEXIST && fstatat (st->blobsfd, hex, &sb, AT_SYMLINK_NOFOLLOW) < 0
          && renameat (st->ingestfd, w->name, st->blobsfd, hex) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "rename blob into `blobs/sha256/%s`", hex);
      unlinkat (st->ingestfd, w->name, 0);
    }
  if (fsync (st->blobsfd) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "fsync `blobs/sha256` in store `%s`", st->root);
  return 0;
}

void
kiln_blob_writer_digest (const struct kiln_blob_writer *w, struct kiln_digest *out)
{
  kiln_sha256_peek (w->hash, out);
}

int
kiln_blob_writer_commit (struct kiln_blob_writer *w, const struct kiln_digest *expect, struct kiln_digest *out,
                         uint64_t *size, struct kiln_error **err)
{
  struct kiln_digest d;
  int r = 0;
  kiln_sha256_final (w->hash, &d);
  if (direct_finish (w, err) < 0)
    r = -1;
  else if (fchmod (w->fd, 0444) < 0 || fsync (w->fd) < 0)
    r = kiln_error_set (err, errno, KILN_E_IO, "fsync blob `ingest/%s`", w->name);
  else if (expect && strcmp (expect->s, d.s) != 0)
    r = kiln_error_set (err, 0, KILN_E_DIGEST, "commit blob: content has digest `%s`, expected `%s`", d.s, expect->s);
  else
    r = install_blob (w, &d, err);
  if (r == 0)
    {
      if (out)
        *out = d;
      if (size)
        *size = w->size;
    }
  kiln_blob_writer_abort (w); /* closes, drops whatever is left in ingest/ */
  return r;
}

int
kiln_store_blob_put (struct kiln_store *st, const void *data, size_t len, struct kiln_digest *out,
                     struct kiln_error **err)
{
  struct kiln_blob_writer *w = NULL;
  struct kiln_digest d;
  uint64_t have;
  /* A rebuild that changed nothing writes the same config and manifest
   * again: hashing them first spares two temp files and three fsyncs, which
   * wait behind the writeback of an earlier build's layers. */
  kiln_digest_of (data, len, &d);
  if (kiln_store_blob_exists (st, &d, &have) && have == len)
    {
      if (out)
        *out = d;
      return 0;
    }
  if (kiln_store_blob_begin (st, &w, err) < 0)
    return -1;
  if (kiln_blob_writer_write (w, data, len, err) < 0)
    {
      kiln_blob_writer_abort (w);
      return -1;
    }
  return kiln_blob_writer_commit (w, NULL, out, NULL, err);
}

bool
kiln_store_blob_exists (struct kiln_store *st, const struct kiln_digest *d, uint64_t *size)
{
  struct stat sb;
  if (!kiln_digest_valid (d->s) || fstatat (st->blobsfd, kiln_digest_hex (d), &sb, AT_SYMLINK_NOFOLLOW) < 0
      || !S_ISREG (sb.st_mode))
    return false;
  if (size)
    *size = (uint64_t) sb.st_size;
  return true;
}

void
kiln_store_set_fetcher (struct kiln_store *st, kiln_store_fetch_fn fn, void *opaque)
{
  st->fetch = fn;
  st->fetch_opaque = opaque;
}

/* Opens a blob that is in the store; absent = KILN_E_NOTFOUND. */
static int
open_local (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err)
{
  int fd = openat (st->blobsfd, kiln_digest_hex (d), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open blob `%s`", d->s);
  return fd;
}

int
kiln_store_blob_open (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err)
{
  if (!kiln_digest_valid (d->s))
    return kiln_error_set (err, 0, KILN_E_PARSE, "open blob: invalid digest `%.80s`", d->s);
  int fd = openat (st->blobsfd, kiln_digest_hex (d), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  /* only a blob that is really absent is fetched; other failures stand */
  if (fd >= 0 || errno != ENOENT || st->fetch == NULL)
    return fd >= 0 ? fd : open_local (st, d, err);
  if (st->fetch (st->fetch_opaque, st, d, err) < 0)
    return kiln_error_wrap (err, "fetch missing blob `%s`", d->s);
  return open_local (st, d, err);
}

int
kiln_store_blob_ensure (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err)
{
  if (kiln_store_blob_exists (st, d, NULL))
    return 0;
  int fd = kiln_store_blob_open (st, d, err);
  if (fd < 0)
    return fd;
  close (fd);
  return 0;
}

int
kiln_store_blob_read (struct kiln_store *st, const struct kiln_digest *d, size_t max, struct kiln_buf *out,
                      struct kiln_error **err)
{
  struct kiln_digest got;
  kiln_autoclose int fd = kiln_store_blob_open (st, d, err);
  if (fd < 0)
    return fd;
  kiln_buf_reset (out);
  if (kiln_fs_read_fd (fd, max, out, err) < 0)
    return kiln_error_wrap (err, "read blob `%s`", d->s);
  kiln_digest_of (out->buf, out->len, &got);
  if (strcmp (got.s, d->s) != 0)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "read blob `%s`: content has digest `%s`", d->s, got.s);
  return 0;
}

/* ---- configs and manifests ---- */

static void
fill_desc (struct kiln_descriptor *desc, const char *media_type, const struct kiln_digest *d, size_t size)
{
  memset (desc, 0, sizeof *desc);
  desc->media_type = kiln_xstrdup (media_type);
  desc->digest = *d;
  desc->size = (int64_t) size;
}

int
kiln_store_put_config (struct kiln_store *st, const struct kiln_image_config *c, struct kiln_descriptor *desc,
                       struct kiln_error **err)
{
  kiln_autofree char *json = NULL;
  size_t len = 0;
  struct kiln_digest d;
  if (kiln_image_config_to_json (c, &json, &len, err) < 0 || kiln_store_blob_put (st, json, len, &d, err) < 0)
    return kiln_error_wrap (err, "store image config");
  if (desc)
    fill_desc (desc, KILN_MT_OCI_CONFIG, &d, len);
  return 0;
}

int
kiln_store_put_manifest (struct kiln_store *st, const struct kiln_manifest *m, struct kiln_descriptor *desc,
                         struct kiln_error **err)
{
  kiln_autofree char *json = NULL;
  size_t len = 0;
  struct kiln_digest d;
  if (kiln_manifest_to_json (m, &json, &len, err) < 0 || kiln_store_blob_put (st, json, len, &d, err) < 0)
    return kiln_error_wrap (err, "store image manifest");
  if (desc)
    fill_desc (desc, m->media_type ? m->media_type : KILN_MT_OCI_MANIFEST, &d, len);
  return 0;
}

int
kiln_store_get_manifest (struct kiln_store *st, const struct kiln_digest *d, struct kiln_manifest *out,
                         struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  if (kiln_store_blob_read (st, d, KILN_STORE_MAX_JSON, &b, err) < 0
      || kiln_manifest_from_json (b.buf, b.len, out, err) < 0)
    return kiln_error_wrap (err, "load manifest `%s`", d->s);
  return 0;
}

int
kiln_store_get_config (struct kiln_store *st, const struct kiln_digest *d, struct kiln_image_config *out,
                       struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  if (kiln_store_blob_read (st, d, KILN_STORE_MAX_JSON, &b, err) < 0
      || kiln_image_config_from_json (b.buf, b.len, out, err) < 0)
    return kiln_error_wrap (err, "load image config `%s`", d->s);
  return 0;
}

int
kiln_store_mktemp_dir (struct kiln_store *st, char **relpath, struct kiln_error **err)
{
  char name[48];
  for (int tries = 0; tries < 16; tries++)
    {
      kiln_store_random_name (name, sizeof name, "build-");
      if (mkdirat (st->tmpfd, name, 0700) == 0)
        {
          *relpath = kiln_xasprintf ("tmp/%s", name);
          return 0;
        }
      if (errno != EEXIST)
        break;
    }
  return kiln_error_set (err, errno, KILN_E_IO, "create a directory in `tmp` of store `%s`", st->root);
}
