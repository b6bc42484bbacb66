/* compress.c - gzip (zlib raw deflate + a fixed header), zstd and pass-through
 * compressors feeding a sink, plus the compression name / media type tables. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "kiln/compress.h"
#include "kiln/oci.h"
#include "kiln/util.h"

#define OUT_CHUNK (128 * 1024)

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
    return kiln_error_set (err, 0, KILN_E_USAGE,
                           "unknown compression `%s` (choose gzip, zstd, none or uncompressed)", s);
  return 0;
}

const char *
kiln_compression_media_type (enum kiln_compression c)
{
  switch (c)
    {
    case KILN_COMP_GZIP:
      return KILN_MT_OCI_LAYER_GZIP;
    case KILN_COMP_ZSTD:
      return KILN_MT_OCI_LAYER_ZSTD;
    case KILN_COMP_NONE:
    default:
      return KILN_MT_OCI_LAYER;
    }
}

static int
emit (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  if (len == 0)
    return 0;
  return c->sink (c->opaque, data, len, err);
}

/* ---- none ---- */

static int
none_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  return emit (c, data, len, err);
}

static int
none_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  (void) c;
  (void) err;
  return 0;
}

static void
none_free (struct kiln_compressor *c)
{
  free (c);
}

static const struct kiln_compressor_ops none_ops = { none_write, none_finish, none_free };

/* ---- gzip ---- */

struct gzip_compressor {
  struct kiln_compressor base;
  z_stream zs;
  uLong crc;
  uint32_t isize;   /* input length mod 2^32, as RFC 1952 wants */
  bool header_done;
  unsigned char out[OUT_CHUNK];
};

/* Written by hand rather than by zlib's gzip wrapper so that every field is
 * pinned: no mtime, no name, XFL 0, OS 255 (unknown).  Two runs on two hosts
 * give the same bytes. */
static const unsigned char gzip_header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };

static int
gzip_pump (struct gzip_compressor *g, int flush, struct kiln_error **err)
{
  int zr;
  do
    {
      g->zs.next_out = g->out;
      g->zs.avail_out = sizeof g->out;
      zr = deflate (&g->zs, flush);
      if (zr == Z_STREAM_ERROR)
        return kiln_error_set (err, 0, KILN_E_INTERNAL, "deflate: stream error");
      int r = emit (&g->base, g->out, sizeof g->out - g->zs.avail_out, err);
      if (r < 0)
        return r;
    }
  while (g->zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
  return 0;
}

static int
gzip_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  if (!g->header_done)
    {
      int r = emit (c, gzip_header, sizeof gzip_header, err);
      if (r < 0)
        return r;
      g->header_done = true;
    }
  const unsigned char *p = data;
  while (len > 0)
    {
      /* avail_in is a uInt: feed at most 1 GiB at a time. */
      uInt n = len > (1u << 30) ? (1u << 30) : (uInt) len;
      g->crc = crc32 (g->crc, p, n);
      g->isize += (uint32_t) n;
      g->zs.next_in = (Bytef *) p;
      g->zs.avail_in = n;
      int r = gzip_pump (g, Z_NO_FLUSH, err);
      if (r < 0)
        return r;
      p += n;
      len -= n;
    }
  return 0;
}

static int
gzip_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  int r = gzip_write (c, NULL, 0, err);   /* the header, for an empty stream */
  if (r < 0)
    return r;
  g->zs.next_in = NULL;
  g->zs.avail_in = 0;
  r = gzip_pump (g, Z_FINISH, err);
  if (r < 0)
    return r;
  unsigned char trailer[8];
  for (int i = 0; i < 4; i++)
    {
      trailer[i] = (unsigned char) (g->crc >> (8 * i));
      trailer[4 + i] = (unsigned char) (g->isize >> (8 * i));
    }
  return emit (c, trailer, sizeof trailer, err);
}

static void
gzip_free (struct kiln_compressor *c)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  deflateEnd (&g->zs);
  free (g);
}

static const struct kiln_compressor_ops gzip_ops = { gzip_write, gzip_finish, gzip_free };

static int
gzip_new (int level, struct kiln_compressor **out, struct kiln_error **err)
{
  if (level < 0)
    level = 6;
  if (level > 9)
    return kiln_error_set (err, 0, KILN_E_USAGE, "gzip level %d out of range (0-9)", level);
  struct gzip_compressor *g = kiln_xcalloc (1, sizeof *g);
  /* windowBits -15: raw deflate, the gzip framing is ours. */
  if (deflateInit2 (&g->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    {
      free (g);
      return kiln_error_set (err, ENOMEM, KILN_E_INTERNAL, "initialise deflate");
    }
  g->crc = crc32 (0, NULL, 0);
  g->base.ops = &gzip_ops;
  *out = &g->base;
  return 0;
}

/* ---- zstd ---- */

struct zstd_compressor {
  struct kiln_compressor base;
  ZSTD_CCtx *cctx;
  unsigned char out[OUT_CHUNK];
};

static int
zstd_check (size_t zr, const char *what, struct kiln_error **err)
{
  if (ZSTD_isError (zr))
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "%s: %s", what, ZSTD_getErrorName (zr));
  return 0;
}

static int
zstd_step (struct zstd_compressor *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, size_t *left,
           struct kiln_error **err)
{
  ZSTD_outBuffer ob = { z->out, sizeof z->out, 0 };
  *left = ZSTD_compressStream2 (z->cctx, &ob, in, mode);
  int r = zstd_check (*left, "zstd compress", err);
  if (r < 0)
    return r;
  return emit (&z->base, z->out, ob.pos, err);
}

static int
zstd_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  ZSTD_inBuffer in = { data, len, 0 };
  size_t left;
  while (in.pos < in.size)
    {
      int r = zstd_step (z, &in, ZSTD_e_continue, &left, err);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
zstd_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  ZSTD_inBuffer in = { NULL, 0, 0 };
  size_t left;
  do
    {
      int r = zstd_step (z, &in, ZSTD_e_end, &left, err);
      if (r < 0)
        return r;
    }
  while (left != 0);
  return 0;
}

static void
zstd_free (struct kiln_compressor *c)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  ZSTD_freeCCtx (z->cctx);
  free (z);
}

static const struct kiln_compressor_ops zstd_ops = { zstd_write, zstd_finish, zstd_free };

static int
zstd_new (int level, struct kiln_compressor **out, struct kiln_error **err)
{
  if (level < 0)
    level = 3;
  if (level < 1 || level > ZSTD_maxCLevel ())
    return kiln_error_set (err, 0, KILN_E_USAGE, "zstd level %d out of range (1-%d)", level,
                           ZSTD_maxCLevel ());
  struct zstd_compressor *z = kiln_xcalloc (1, sizeof *z);
  z->cctx = ZSTD_createCCtx ();
  if (z->cctx == NULL)
    abort ();
  /* Single-threaded, no checksum, no content size: the frame depends only on
   * the input bytes and the level. */
  int r = zstd_check (ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_compressionLevel, level), "zstd level", err);
  if (r == 0)
    r = zstd_check (ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_checksumFlag, 0), "zstd checksum", err);
  if (r == 0)
    r = zstd_check (ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_contentSizeFlag, 0), "zstd content size", err);
  if (r < 0)
    {
      zstd_free (&z->base);
      return r;
    }
  z->base.ops = &zstd_ops;
  *out = &z->base;
  return 0;
}

/* ---- dispatch ---- */

int
kiln_compressor_new (enum kiln_compression c, int level, kiln_compress_sink sink, void *opaque,
                     struct kiln_compressor **out, struct kiln_error **err)
{
  struct kiln_compressor *k = NULL;
  int r = 0;
  switch (c)
    {
    case KILN_COMP_GZIP:
      r = gzip_new (level, &k, err);
      break;
    case KILN_COMP_ZSTD:
      r = zstd_new (level, &k, err);
      break;
    case KILN_COMP_NONE:
      k = kiln_xcalloc (1, sizeof *k);
      k->ops = &none_ops;
      break;
    default:
      return kiln_error_set (err, 0, KILN_E_INTERNAL, "unknown compression %d", (int) c);
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
