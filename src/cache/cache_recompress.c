/* cache_recompress.c - a stored layer blob in another compression
 * (build --force-compression): decompressed by libarchive's filters,
 * checked against its diffID, compressed by our compressors, memoised in
 * cache/recompressed/ so a rebuild does not do it again. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <unistd.h>
#include "kiln/cache.h"
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/layer.h"
#include "kiln/store.h"
#include "kiln/util.h"

#define RECOMPRESS_CHUNK (1024 * 1024)

static int
blob_sink (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  return kiln_blob_writer_write (opaque, data, len, err);
}

/* Streams the decompressed layer into the compressor, hashing it. */
static int
pump (struct archive *a, struct kiln_compressor *c, struct kiln_digest *tar_digest, struct kiln_error **err)
{
  struct kiln_sha256 *h = kiln_sha256_new ();
  kiln_autofree unsigned char *buf = kiln_xmalloc (RECOMPRESS_CHUNK);
  la_ssize_t n;
  int r = 0;
  while (r == 0 && (n = archive_read_data (a, buf, RECOMPRESS_CHUNK)) != 0)
    {
      if (n < 0)
        {
          r = kiln_error_set (err, archive_errno (a), KILN_E_PARSE, "decompress: %s", archive_error_string (a));
          break;
        }
      kiln_sha256_update (h, buf, (size_t) n);
      r = kiln_compressor_write (c, buf, (size_t) n, err);
    }
  if (r == 0)
    r = kiln_compressor_finish (c, err);
  kiln_sha256_final (h, tar_digest);
  kiln_sha256_free (h);
  return r;
}

static int
recompress (struct kiln_store *st, int fd, const char *diff_id, const struct kiln_layer_opts *opts,
            struct kiln_descriptor *out, struct kiln_error **err)
{
  struct archive *a = archive_read_new ();
  struct archive_entry *ae;
  struct kiln_blob_writer *w = NULL;
  struct kiln_compressor *c = NULL;
  struct kiln_digest tar, blob;
  uint64_t size = 0;
  int r = -1;
  if (a == NULL)
    abort ();
  archive_read_support_filter_all (a);
  archive_read_support_format_raw (a);
  if (archive_read_open_fd (a, fd, RECOMPRESS_CHUNK) != ARCHIVE_OK || archive_read_next_header (a, &ae) != ARCHIVE_OK)
    {
      kiln_error_set (err, archive_errno (a), KILN_E_PARSE, "decompress: %s", archive_error_string (a));
      goto out;
    }
  if (kiln_store_blob_begin (st, &w, err) < 0
      || kiln_compressor_new_mt (opts->compression, opts->level, 0, blob_sink, w, &c, err) < 0
      || pump (a, c, &tar, err) < 0)
    goto out;
  /* the config names the layer by its diffID: the new blob must hold that tar */
  if (strcmp (tar.s, diff_id) != 0)
    {
      kiln_error_set (err, 0, KILN_E_DIGEST, "decompresses to %s, not its diffID %s", tar.s, diff_id);
      goto out;
    }
  if (kiln_blob_writer_commit (kiln_steal_ptr (&w), NULL, &blob, &size, err) < 0)
    goto out;
  out->media_type = kiln_xstrdup (kiln_compression_media_type (opts->compression));
  out->digest = blob;
  out->size = (int64_t) size;
  r = 0;
out:
  kiln_compressor_free (c);
  kiln_blob_writer_abort (w);
  archive_read_free (a);
  return r;
}

int
kiln_cache_recompress (struct kiln_store *st, const struct kiln_descriptor *in, const char *diff_id,
                       const struct kiln_layer_opts *opts, struct kiln_descriptor *out, struct kiln_error **err)
{
  const char *mt = kiln_compression_media_type (opts->compression);
  memset (out, 0, sizeof *out);
  if (kiln_recompressed_get (st, &in->digest, mt, opts->level, out))
    return 1;
  kiln_autoclose int fd = kiln_store_blob_open (st, &in->digest, err);
  if (fd < 0 || recompress (st, fd, diff_id, opts, out, err) < 0)
    return kiln_error_wrap (err, "recompress layer %s", in->digest.s);
  kiln_autoerror struct kiln_error *e = NULL;
  (void) kiln_recompressed_put (st, &in->digest, opts->level, out, &e); /* a lost memo costs a redo */
  return 0;
}
