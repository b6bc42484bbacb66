/* export.c - writing an image out of the store: an OCI layout directory, an
 * oci-archive (the same layout as a tar) or a docker-archive (docker save);
 * its filesystem instead of the image: export_rootfs.c.
 *
 * Blobs are streamed from the store, never loaded whole; tar output is
 * deterministic (numeric owner 0, mtime 0, fixed order). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "oci-internal.h"
#include "store-internal.h"

#define OCI_LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"
#define CHUNK (1u << 20)

/* The blobs of one image, deduplicated, manifest first. */
struct image_blobs {
  struct kiln_manifest m;
  struct kiln_digest *d;
  size_t n;
};

static void
blobs_add (struct image_blobs *b, const struct kiln_digest *d)
{
  for (size_t i = 0; i < b->n; i++)
    if (strcmp (b->d[i].s, d->s) == 0)
      return; /* the same layer twice is stored (and exported) once */
  b->d = kiln_xrealloc (b->d, (b->n + 1) * sizeof *b->d);
  b->d[b->n++] = *d;
}

static int
load_image (struct kiln_store *st, const struct kiln_descriptor *desc, struct image_blobs *b, struct kiln_error **err)
{
  memset (b, 0, sizeof *b);
  if (kiln_store_get_manifest (st, &desc->digest, &b->m, err) < 0)
    return -1;
  blobs_add (b, &desc->digest);
  blobs_add (b, &b->m.config.digest);
  for (size_t i = 0; i < b->m.nlayers; i++)
    blobs_add (b, &b->m.layers[i].digest);
  /* a lazy layer (still in a registry) is fetched now: an export needs every byte */
  for (size_t i = 0; i < b->n; i++)
    if (kiln_store_blob_ensure (st, &b->d[i], err) < 0)
      return kiln_error_wrap (err, "blob `%s` of the image is missing from the store", b->d[i].s);
  return 0;
}

static void
image_blobs_clear (struct image_blobs *b)
{
  kiln_manifest_clear (&b->m);
  free (b->d);
}

/* The index.json entry of the exported image. */
static void
export_descriptor (const struct kiln_descriptor *manifest, const char *name, const char *tag,
                   struct kiln_descriptor *out)
{
  memset (out, 0, sizeof *out);
  out->media_type = kiln_xstrdup (manifest->media_type ? manifest->media_type : KILN_MT_OCI_MANIFEST);
  out->digest = manifest->digest;
  out->size = manifest->size;
  if (tag)
    kiln_kvlist_set (&out->annotations, KILN_ANNOT_REF_NAME, tag);
  if (name)
    kiln_kvlist_set (&out->annotations, KILN_ANNOT_IMAGE_NAME, name);
}

/* ---- OCI layout directory ---- */

static int
copy_blob (struct kiln_store *st, const char *hex, int destfd, struct kiln_error **err)
{
  char tmp[64];
  kiln_autoclose int in = kiln_fs_open_beneath (st->blobsfd, hex, O_RDONLY, 0, err);
  if (in < 0)
    return -1;
  kiln_store_random_name (tmp, sizeof tmp, ".tmp-");
  kiln_autoclose int out = openat (destfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create `blobs/sha256/%s`", tmp);
  if (kiln_fs_copy_data (in, out, UINT64_MAX, err) < 0
      || (fsync (out) < 0 && kiln_error_set (err, errno, KILN_E_IO, "fsync") < 0)
      || (renameat (destfd, tmp, destfd, hex) < 0 && kiln_error_set (err, errno, KILN_E_IO, "rename") < 0))
    {
      unlinkat (destfd, tmp, 0);
      return -1;
    }
  return 0;
}

/* Hardlinks a blob into the destination, copying when links cannot cross. */
static int
place_blob (struct kiln_store *st, const struct kiln_digest *d, int destfd, struct kiln_error **err)
{
  const char *hex = kiln_digest_hex (d);
  struct stat a, b;
  if (fstatat (destfd, hex, &b, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (b.st_mode)
      && fstatat (st->blobsfd, hex, &a, AT_SYMLINK_NOFOLLOW) == 0 && a.st_size == b.st_size)
    return 0; /* already there (a layout that shares our blobs) */
  unlinkat (destfd, hex, 0);
  if (linkat (st->blobsfd, hex, destfd, hex, 0) == 0)
    return 0;
  if (errno != EXDEV && errno != EPERM && errno != EMLINK)
    return kiln_error_set (err, errno, KILN_E_IO, "link blob `%s`", d->s);
  if (copy_blob (st, hex, destfd, err) < 0)
    return kiln_error_wrap (err, "copy blob `%s`", d->s);
  return 0;
}

/* Writes oci-layout unless dest already is a layout; returns the index to extend. */
static int
prepare_layout (int dfd, struct kiln_index *ix, struct kiln_error **err)
{
  struct stat sb;
  memset (ix, 0, sizeof *ix);
  if (fstatat (dfd, "oci-layout", &sb, AT_SYMLINK_NOFOLLOW) == 0)
    return kiln_store_read_index_at (dfd, ix, err);
  ix->media_type = kiln_xstrdup (KILN_MT_OCI_INDEX);
  return kiln_fs_write_atomic (dfd, "oci-layout", OCI_LAYOUT_JSON, strlen (OCI_LAYOUT_JSON), 0644, err);
}

static int
export_dir (struct kiln_store *st, const struct image_blobs *b, const struct kiln_descriptor *entry, const char *tag,
            const char *dest, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  kiln_autoclose int bfd = -1;
  int r = -1;
  if (mkdir (dest, 0755) < 0 && errno != EEXIST)
    return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", dest);
  kiln_autoclose int dfd = open (dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", dest);
  if (prepare_layout (dfd, &ix, err) < 0)
    goto out;
  bfd = kiln_fs_mkdir_p_beneath (dfd, "blobs/sha256", 0755, err);
  if (bfd < 0)
    goto out;
  for (size_t i = 0; i < b->n; i++)
    if (place_blob (st, &b->d[i], bfd, err) < 0)
      goto out;
  if (tag)
    kiln_store_index_remove_name (&ix, tag);
  kiln_store_index_add (&ix, entry);
  r = kiln_store_write_index_at (dfd, &ix, err);
out:
  kiln_index_clear (&ix);
  return r;
}

/* ---- tar output ---- */

struct tar {
  struct archive *a;
  struct archive_entry *e;
};

static int
tar_check (struct tar *t, int r, const char *what, const char *path, struct kiln_error **err)
{
  if (r >= ARCHIVE_OK)
    return 0;
  if (r == ARCHIVE_WARN)
    {
      kiln_log_warn ("%s `%s`: %s", what, path, archive_error_string (t->a));
      return 0;
    }
  return kiln_error_set (err, archive_errno (t->a), KILN_E_IO, "%s `%s`: %s", what, path, archive_error_string (t->a));
}

static int
tar_open (struct tar *t, int fd, struct kiln_error **err)
{
  t->a = archive_write_new ();
  t->e = archive_entry_new ();
  if (t->a == NULL || t->e == NULL)
    abort ();
  if (tar_check (t, archive_write_set_format_pax_restricted (t->a), "set up", "tar", err) < 0
      || tar_check (t, archive_write_set_bytes_in_last_block (t->a, 1), "set up", "tar", err) < 0
      || tar_check (t, archive_write_open_fd (t->a, fd), "open", "tar", err) < 0)
    return -1;
  return 0;
}

static void
tar_free (struct tar *t)
{
  if (t->a)
    archive_write_free (t->a);
  if (t->e)
    archive_entry_free (t->e);
}

static int
tar_header (struct tar *t, const char *path, mode_t type, int64_t size, struct kiln_error **err)
{
  archive_entry_clear (t->e);
  archive_entry_set_pathname (t->e, path);
  archive_entry_set_filetype (t->e, type);
  archive_entry_set_perm (t->e, type == AE_IFDIR ? 0755 : 0644);
  archive_entry_set_uid (t->e, 0);
  archive_entry_set_gid (t->e, 0);
  archive_entry_set_mtime (t->e, 0, 0);
  archive_entry_set_size (t->e, type == AE_IFDIR ? 0 : size);
  return tar_check (t, archive_write_header (t->a, t->e), "write tar header", path, err);
}

static int
tar_data (struct tar *t, const char *path, const void *data, size_t len, struct kiln_error **err)
{
  la_ssize_t n = archive_write_data (t->a, data, len);
  if (n < 0 || (size_t) n != len)
    return kiln_error_set (err, archive_errno (t->a), KILN_E_IO, "write `%s` to tar: %s", path,
                           archive_error_string (t->a) ? archive_error_string (t->a) : "short write");
  return 0;
}

static int
tar_add_mem (struct tar *t, const char *path, const void *data, size_t len, struct kiln_error **err)
{
  if (tar_header (t, path, AE_IFREG, (int64_t) len, err) < 0)
    return -1;
  return tar_data (t, path, data, len, err);
}

/* Streams a store blob into the tar under path. */
static int
tar_add_blob (struct tar *t, struct kiln_store *st, const struct kiln_digest *d, const char *path,
              struct kiln_error **err)
{
  struct stat sb;
  kiln_autoclose int fd = kiln_store_blob_open (st, d, err);
  if (fd < 0 || fstat (fd, &sb) < 0)
    return fd < 0 ? -1 : kiln_error_set (err, errno, KILN_E_IO, "stat blob `%s`", d->s);
  if (tar_header (t, path, AE_IFREG, sb.st_size, err) < 0)
    return -1;
  kiln_autofree char *buf = kiln_xmalloc (CHUNK);
  for (off_t left = sb.st_size; left > 0;)
    {
      ssize_t n = read (fd, buf, left < CHUNK ? (size_t) left : CHUNK);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return kiln_error_set (err, n < 0 ? errno : EIO, KILN_E_IO, "read blob `%s`", d->s);
      if (tar_data (t, path, buf, (size_t) n, err) < 0)
        return -1;
      left -= n;
    }
  return 0;
}

static int
tar_close (struct tar *t, struct kiln_error **err)
{
  return tar_check (t, archive_write_close (t->a), "finish", "tar", err);
}

/* ---- archive destinations ---- */

int
kiln_export_out_open (const char *dest, struct kiln_export_out *o, struct kiln_error **err)
{
  char suffix[48];
  memset (o, 0, sizeof *o);
  o->dest = dest;
  if (strcmp (dest, "-") == 0)
    {
      /* buildx refuses too: a tar on a terminal helps nobody */
      if (isatty (STDOUT_FILENO))
        return kiln_error_set (err, 0, KILN_E_USAGE, "refusing to write an archive to a terminal (dest=-)");
      o->fd = STDOUT_FILENO;
      return 0;
    }
  kiln_store_random_name (suffix, sizeof suffix, ".kiln-tmp-");
  o->tmp = kiln_xasprintf ("%s%s", dest, suffix);
  o->fd = open (o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (o->fd < 0)
    {
      kiln_error_set (err, errno, KILN_E_IO, "create `%s`", o->tmp);
      free (o->tmp);
      o->tmp = NULL;
      return -1;
    }
  return 0;
}

int
kiln_export_out_commit (struct kiln_export_out *o, struct kiln_error **err)
{
  int r = 0;
  if (o->tmp == NULL)
    return 0; /* stdout: nothing to rename */
  if (fsync (o->fd) < 0)
    r = kiln_error_set (err, errno, KILN_E_IO, "fsync `%s`", o->tmp);
  if (r == 0 && rename (o->tmp, o->dest) < 0)
    r = kiln_error_set (err, errno, KILN_E_IO, "rename `%s` to `%s`", o->tmp, o->dest);
  if (r < 0)
    kiln_export_out_abort (o);
  else
    {
      close (o->fd);
      free (o->tmp);
      memset (o, 0, sizeof *o);
    }
  return r;
}

void
kiln_export_out_abort (struct kiln_export_out *o)
{
  if (o->tmp == NULL)
    return;
  close (o->fd);
  unlink (o->tmp);
  free (o->tmp);
  memset (o, 0, sizeof *o);
}

/* Writes dest (or stdout for "-") through a temp file beside it, so a failed
 * export leaves no half-written archive under the final name. */
typedef int (*tar_fill_fn) (struct tar *t, void *opaque, struct kiln_error **err);

static int
write_tar_file (const char *dest, tar_fill_fn fill, void *opaque, struct kiln_error **err)
{
  struct tar t = { 0 };
  struct kiln_export_out o;
  int r = kiln_export_out_open (dest, &o, err);
  if (r < 0)
    return -1;
  r = tar_open (&t, o.fd, err);
  if (r == 0)
    r = fill (&t, opaque, err);
  if (r == 0)
    r = tar_close (&t, err);
  tar_free (&t);
  if (r == 0)
    return kiln_export_out_commit (&o, err);
  kiln_export_out_abort (&o);
  return -1;
}

/* ---- oci-archive ---- */

struct export_ctx {
  struct kiln_store *st;
  const struct image_blobs *b;
  const struct kiln_descriptor *entry;
  const char *name, *tag;
};

static int
fill_oci_archive (struct tar *t, void *opaque, struct kiln_error **err)
{
  struct export_ctx *x = opaque;
  struct kiln_index ix = { .media_type = (char *) KILN_MT_OCI_INDEX,
                           .manifests = (struct kiln_descriptor *) x->entry,
                           .nmanifests = 1 };
  kiln_autofree char *index = NULL;
  size_t len = 0;
  if (kiln_index_to_json (&ix, &index, &len, err) < 0
      || tar_add_mem (t, "oci-layout", OCI_LAYOUT_JSON, strlen (OCI_LAYOUT_JSON), err) < 0
      || tar_add_mem (t, "index.json", index, len, err) < 0 || tar_header (t, "blobs/", AE_IFDIR, 0, err) < 0
      || tar_header (t, "blobs/sha256/", AE_IFDIR, 0, err) < 0)
    return -1;
  for (size_t i = 0; i < x->b->n; i++)
    {
      kiln_autofree char *path = kiln_store_blob_relpath (&x->b->d[i]);
      if (tar_add_blob (t, x->st, &x->b->d[i], path, err) < 0)
        return -1;
    }
  return 0;
}

/* ---- docker-archive ---- */

static bool
is_compressed (const char *media_type)
{
  return media_type && (strstr (media_type, "gzip") || strstr (media_type, "zstd"));
}

static int
reader_check (struct archive *a, int r, const struct kiln_digest *d, struct kiln_error **err)
{
  if (r >= ARCHIVE_OK)
    return 0;
  if (r == ARCHIVE_WARN)
    {
      kiln_log_warn ("decompress layer `%s`: %s", d->s, archive_error_string (a));
      return 0;
    }
  return kiln_error_set (err, archive_errno (a), KILN_E_IO, "decompress layer `%s`: %s", d->s,
                         archive_error_string (a) ? archive_error_string (a) : "unknown error");
}

/* Streams the uncompressed content of a layer blob either into a hash (to
 * learn its size and check the diff id before the tar header is written) or
 * into the tar entry at path.  Two passes cost CPU but no scratch disk. */
static int
layer_pass (struct kiln_store *st, const struct kiln_descriptor *layer, struct tar *t, const char *path, uint64_t *size,
            struct kiln_digest *diff, struct kiln_error **err)
{
  kiln_autoclose int fd = kiln_store_blob_open (st, &layer->digest, err);
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  struct kiln_sha256 *h = kiln_sha256_new ();
  la_ssize_t n;
  int r = fd < 0 ? -1 : 0;
  kiln_autofree char *buf = kiln_xmalloc (CHUNK);
  *size = 0;
  if (is_compressed (layer->media_type))
    archive_read_support_filter_all (a);
  archive_read_support_format_raw (a);
  if (r == 0 && (r = reader_check (a, archive_read_open_fd (a, fd, 1 << 16), &layer->digest, err)) == 0)
    {
      int hr = archive_read_next_header (a, &e);
      if (hr != ARCHIVE_EOF)
        r = reader_check (a, hr, &layer->digest, err);
      while (r == 0 && hr != ARCHIVE_EOF && (n = archive_read_data (a, buf, CHUNK)) != 0)
        {
          if (n < 0)
            r = reader_check (a, (int) n, &layer->digest, err);
          else if (t)
            r = tar_data (t, path, buf, (size_t) n, err);
          else
            kiln_sha256_update (h, buf, (size_t) n);
          *size += n > 0 ? (uint64_t) n : 0;
        }
    }
  if (r == 0 && diff)
    kiln_sha256_final (h, diff);
  kiln_sha256_free (h);
  archive_read_free (a);
  return r;
}

static int
add_docker_layer (struct tar *t, struct kiln_store *st, const struct kiln_descriptor *layer, const char *diff_id,
                  struct kiln_error **err)
{
  struct kiln_digest got;
  uint64_t size = 0, size2 = 0;
  const char *hex = diff_id + 7;
  kiln_autofree char *dir = kiln_xasprintf ("%s/", hex);
  kiln_autofree char *path = kiln_xasprintf ("%s/layer.tar", hex);
  if (layer_pass (st, layer, NULL, path, &size, &got, err) < 0)
    return -1;
  if (strcmp (got.s, diff_id) != 0)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "layer `%s` uncompresses to `%s`, the config says `%s`",
                           layer->digest.s, got.s, diff_id);
  if (tar_header (t, dir, AE_IFDIR, 0, err) < 0 || tar_header (t, path, AE_IFREG, (int64_t) size, err) < 0
      || layer_pass (st, layer, t, path, &size2, NULL, err) < 0)
    return -1;
  if (size2 != size)
    return kiln_error_set (err, EIO, KILN_E_IO, "layer `%s` changed while it was exported", layer->digest.s);
  return 0;
}

/* "repo:tag" split for the legacy repositories file; false when name has a
 * digest or no tag. */
static bool
split_name (const char *name, char **repo, char **tag)
{
  const char *slash = strrchr (name, '/');
  const char *colon = strrchr (slash ? slash : name, ':');
  if (strchr (name, '@') || colon == NULL || colon[1] == '\0')
    return false;
  *repo = kiln_xstrndup (name, (size_t) (colon - name));
  *tag = kiln_xstrdup (colon + 1);
  return true;
}

static int
add_docker_metadata (struct tar *t, struct export_ctx *x, char **diff_ids, struct kiln_error **err)
{
  kiln_autojson json_t *top = json_array ();
  json_t *m = json_object (), *tags = json_array (), *layers = json_array ();
  const char *repo_tag = x->name ? x->name : x->tag;
  kiln_autofree char *manifest = NULL, *repos = NULL, *repo = NULL, *tag = NULL;
  size_t n = kiln_strv_len (diff_ids), len = 0;
  json_array_append_new (top, m);
  json_object_set_new (m, "Config", json_sprintf ("%s.json", kiln_digest_hex (&x->b->m.config.digest)));
  if (repo_tag)
    json_array_append_new (tags, json_string (repo_tag));
  json_object_set_new (m, "RepoTags", tags);
  for (size_t i = 0; i < n; i++)
    json_array_append_new (layers, json_sprintf ("%s/layer.tar", diff_ids[i] + 7));
  json_object_set_new (m, "Layers", layers);
  if (kiln_oci_dump (top, "docker manifest.json", &manifest, &len, err) < 0
      || tar_add_mem (t, "manifest.json", manifest, len, err) < 0)
    return -1;
  if (n == 0 || x->name == NULL || !split_name (x->name, &repo, &tag))
    return 0;
  kiln_autojson json_t *r = json_pack ("{s:{s:s}}", repo, tag, diff_ids[n - 1] + 7);
  if (r == NULL || kiln_oci_dump (r, "docker repositories", &repos, &len, err) < 0)
    return r == NULL ? kiln_error_set (err, 0, KILN_E_INTERNAL, "build `repositories`") : -1;
  return tar_add_mem (t, "repositories", repos, len, err);
}

static int
fill_docker_archive (struct tar *t, void *opaque, struct kiln_error **err)
{
  struct export_ctx *x = opaque;
  const struct kiln_manifest *m = &x->b->m;
  struct kiln_image_config c = { 0 };
  kiln_autofree char *cfg = kiln_xasprintf ("%s.json", kiln_digest_hex (&m->config.digest));
  size_t n;
  int r = -1;
  if (kiln_store_get_config (x->st, &m->config.digest, &c, err) < 0)
    return -1;
  n = kiln_strv_len (c.diff_ids);
  if (n != m->nlayers)
    {
      kiln_error_set (err, 0, KILN_E_PARSE, "image has %zu layers but its config lists %zu diff ids", m->nlayers, n);
      goto out;
    }
  if (tar_add_blob (t, x->st, &m->config.digest, cfg, err) < 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    {
      bool seen = false; /* docker save stores a repeated layer once */
      for (size_t j = 0; j < i; j++)
        seen = seen || strcmp (c.diff_ids[j], c.diff_ids[i]) == 0;
      if (!seen && add_docker_layer (t, x->st, &m->layers[i], c.diff_ids[i], err) < 0)
        goto out;
    }
  r = add_docker_metadata (t, x, c.diff_ids, err);
out:
  kiln_image_config_clear (&c);
  return r;
}

int
kiln_store_export (struct kiln_store *st, const struct kiln_descriptor *manifest, const char *name, const char *tag,
                   enum kiln_export_format fmt, const char *dest, struct kiln_error **err)
{
  struct image_blobs b;
  struct kiln_descriptor entry;
  int r = load_image (st, manifest, &b, err);
  export_descriptor (manifest, name, tag, &entry);
  struct export_ctx x = { st, &b, &entry, name, tag };
  if (r == 0)
    switch (fmt)
      {
      case KILN_EXPORT_OCI_DIR: r = export_dir (st, &b, &entry, tag, dest, err); break;
      case KILN_EXPORT_OCI_ARCHIVE: r = write_tar_file (dest, fill_oci_archive, &x, err); break;
      case KILN_EXPORT_DOCKER_ARCHIVE: r = write_tar_file (dest, fill_docker_archive, &x, err); break;
      case KILN_EXPORT_ROOTFS_TAR:
      case KILN_EXPORT_ROOTFS_DIR: r = kiln_store_export_rootfs (st, manifest, fmt, dest, NULL, err); break;
      default: r = kiln_error_set (err, 0, KILN_E_USAGE, "unknown export format %d", (int) fmt);
      }
  kiln_descriptor_clear (&entry);
  image_blobs_clear (&b);
  if (r < 0)
    return kiln_error_wrap (err, "export image to `%s`", dest);
  return 0;
}
