/* compress.c - the compressors' front: names and media types, and the
 * dispatch to a backend through its ops table (compress-internal.h), one
 * file per backend as libarchive's archive_write_add_filter_*.c:
 *   compress_gzip.c  block-parallel ISA-L deflate, blocks cut where asked
 *   compress_zstd.c  libzstd multithreaded, incompressible blocks raw
 *   compress_none.c  pass-through */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "compress-internal.h"
#include "kiln/compress.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/util.h"

int
kiln_compression_parse (const char *s, enum kiln_compression *out, struct kiln_error **err)
{
  if (strcmp (s, "gzip") == 0)
    *out = KILN_COMP_GZIP;
  else if (strcmp (s, "zstd") == 0)
    *out = KILN_COMP_ZSTD;
  else if (strcmp (s, "none") == 0 || strcmp (s, "uncompressed") == 0)
    *out = KILN_COMP_NONE;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "unknown compression `%s` (choose gzip, zstd, none or uncompressed)",
                           s);
  return 0;
}

const char *
kiln_compression_media_type (enum kiln_compression c)
{
  switch (c)
    {
    case KILN_COMP_GZIP: return KILN_MT_OCI_LAYER_GZIP;
    case KILN_COMP_ZSTD: return KILN_MT_OCI_LAYER_ZSTD;
    case KILN_COMP_NONE:
    default: return KILN_MT_OCI_LAYER;
    }
}

int
kiln_compress_emit (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  if (len == 0)
    return 0;
  return c->sink (c->opaque, data, len, err);
}

/* ---- dispatch ---- */

int
kiln_compress_threads (int threads)
{
  if (threads <= 0)
    {
      long n = sysconf (_SC_NPROCESSORS_ONLN);
      threads = n > 0 ? (int) (n < KILN_COMPRESS_MAX_THREADS ? n : KILN_COMPRESS_MAX_THREADS) : 1;
    }
  return threads < KILN_COMPRESS_MAX_THREADS ? threads : KILN_COMPRESS_MAX_THREADS;
}

int
kiln_compressor_new (enum kiln_compression c, int level, kiln_compress_sink sink, void *opaque,
                     struct kiln_compressor **out, struct kiln_error **err)
{
  return kiln_compressor_new_mt (c, level, 0, sink, opaque, out, err);
}

int
kiln_compressor_new_mt (enum kiln_compression c, int level, int threads, kiln_compress_sink sink, void *opaque,
                        struct kiln_compressor **out, struct kiln_error **err)
{
  struct kiln_compressor *k = NULL;
  int r = 0;
  threads = kiln_compress_threads (threads);
  switch (c)
    {
    case KILN_COMP_GZIP: r = kiln_compress_gzip_new (level, threads, &k, err); break;
    case KILN_COMP_ZSTD: r = kiln_compress_zstd_new (level, threads, &k, err); break;
    case KILN_COMP_NONE: k = kiln_compress_none_new (); break;
    default: return kiln_error_set (err, 0, KILN_E_INTERNAL, "unknown compression %d", (int) c);
    }
  if (r < 0)
    return r;
  k->sink = sink;
  k->opaque = opaque;
  *out = k;
  return 0;
}

int
kiln_compressor_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  if (len == 0)
    return 0;
  return c->ops->write (c, data, len, err);
}

int
kiln_compressor_cut (struct kiln_compressor *c, struct kiln_error **err)
{
  return c->ops->cut ? c->ops->cut (c, err) : 0;
}

void
kiln_compressor_on_block (struct kiln_compressor *c, kiln_compress_block_fn fn, void *opaque)
{
  c->on_block = fn;
  c->block_opaque = opaque;
}

int
kiln_compressor_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  return c->ops->finish (c, err);
}

void
kiln_compressor_free (struct kiln_compressor *c)
{
  if (c != NULL)
    c->ops->free (c);
}
