/* compress_zstd.c - the zstd backend: libzstd's multithreaded mode with a
 * fixed job size (output independent of the thread count), blocks that do
 * not compress written as raw frames. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "compress-internal.h"
#include "kiln/compress.h"
#include "kiln/log.h"
#include "kiln/util.h"

#define OUT_CHUNK (128 * 1024)

/* ---- zstd ---- */

/* The input goes in blocks of ZSTD_BLOCK bytes.  A block that does not
 * compress (model weights) leaves the compressed frame and becomes a frame of
 * raw blocks, which costs a copy instead of a compression attempt over every
 * byte; zstd readers take concatenated frames.  Which blocks are raw depends
 * only on their content, so the output still does not depend on threads. */
#define ZSTD_BLOCK (1024 * 1024)
#define ZSTD_PROBE (64 * 1024)
#define ZSTD_RAW_MAX (128 * 1024)

struct zstd_compressor {
  struct kiln_compressor base;
  ZSTD_CCtx *cctx;
  ZSTD_CCtx *probe; /* single-threaded, level 1: is a block worth it */
  unsigned char *block, *probe_out;
  size_t block_len;
  bool frame_open; /* the compressed frame holds data */
  bool emitted;    /* any frame written */
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
zstd_step (struct zstd_compressor *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, size_t *left, struct kiln_error **err)
{
  ZSTD_outBuffer ob = { z->out, sizeof z->out, 0 };
  *left = ZSTD_compressStream2 (z->cctx, &ob, in, mode);
  int r = zstd_check (*left, "zstd compress", err);
  if (r < 0)
    return r;
  return kiln_compress_emit (&z->base, z->out, ob.pos, err);
}

static int
zstd_end_frame (struct zstd_compressor *z, struct kiln_error **err)
{
  ZSTD_inBuffer in = { NULL, 0, 0 };
  size_t left;
  do
    {
      int r = zstd_step (z, &in, ZSTD_e_end, &left, err);
      if (r < 0)
        return r;
    }
  while (left != 0);
  z->frame_open = false;
  z->emitted = true;
  return 0;
}

/* A frame of raw blocks: magic, a header with no content size and a 128 KiB
 * window (Window_Descriptor 0x38), then raw blocks of at most 128 KiB. */
static int
zstd_raw_frame (struct zstd_compressor *z, const unsigned char *data, size_t len, struct kiln_error **err)
{
  static const unsigned char header[6] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38 };
  int r = kiln_compress_emit (&z->base, header, sizeof header, err);
  for (size_t off = 0; r == 0 && off < len; off += ZSTD_RAW_MAX)
    {
      size_t n = len - off < ZSTD_RAW_MAX ? len - off : ZSTD_RAW_MAX;
      uint32_t h = (uint32_t) (n << 3) | (off + n == len ? 1u : 0u); /* Block_Type 0 = raw */
      unsigned char bh[3] = { (unsigned char) h, (unsigned char) (h >> 8), (unsigned char) (h >> 16) };
      r = kiln_compress_emit (&z->base, bh, sizeof bh, err);
      if (r == 0)
        r = kiln_compress_emit (&z->base, data + off, n, err);
    }
  z->emitted = true;
  return r;
}

/* Its first 64 KiB at level 1 tell a block of random data. */
static bool
zstd_worth_compressing (struct zstd_compressor *z, const unsigned char *data, size_t len)
{
  if (len < ZSTD_BLOCK)
    return true; /* the tail of a layer: small, compress it */
  size_t n = ZSTD_compressCCtx (z->probe, z->probe_out, ZSTD_compressBound (ZSTD_PROBE), data, ZSTD_PROBE, 1);
  return ZSTD_isError (n) || n < ZSTD_PROBE - ZSTD_PROBE / 32;
}

static int
zstd_flush_block (struct zstd_compressor *z, struct kiln_error **err)
{
  size_t len = z->block_len;
  z->block_len = 0;
  if (!zstd_worth_compressing (z, z->block, len))
    {
      if (z->frame_open && zstd_end_frame (z, err) < 0)
        return -1;
      return zstd_raw_frame (z, z->block, len, err);
    }
  ZSTD_inBuffer in = { z->block, len, 0 };
  size_t left;
  while (in.pos < in.size)
    if (zstd_step (z, &in, ZSTD_e_continue, &left, err) < 0)
      return -1;
  z->frame_open = true;
  return 0;
}

static int
zstd_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  const unsigned char *p = data;
  while (len)
    {
      size_t n = ZSTD_BLOCK - z->block_len < len ? ZSTD_BLOCK - z->block_len : len;
      memcpy (z->block + z->block_len, p, n);
      z->block_len += n;
      p += n;
      len -= n;
      if (z->block_len == ZSTD_BLOCK && zstd_flush_block (z, err) < 0)
        return -1;
    }
  return 0;
}

static int
zstd_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  if (z->block_len && zstd_flush_block (z, err) < 0)
    return -1;
  /* an empty input still makes one (empty) frame */
  if (z->frame_open || !z->emitted)
    return zstd_end_frame (z, err);
  return 0;
}

static void
zstd_free (struct kiln_compressor *c)
{
  struct zstd_compressor *z = (struct zstd_compressor *) c;
  ZSTD_freeCCtx (z->cctx);
  ZSTD_freeCCtx (z->probe);
  free (z->block);
  free (z->probe_out);
  free (z);
}

static const struct kiln_compressor_ops zstd_ops = { zstd_write, zstd_finish, zstd_free, NULL };

/* Fixed so that the frame depends only on the input and the level: zstd's
 * multithreaded mode cuts the input into jobs of ZSTD_JOB bytes, each seeing
 * the tail of the one before (overlapLog), whatever the number of workers.
 * Single-threaded mode (nbWorkers 0) makes different bytes, so even one
 * thread uses a worker. */
#define ZSTD_JOB (1024 * 1024)
#define ZSTD_OVERLAP_LOG 6

static int
zstd_set (struct zstd_compressor *z, ZSTD_cParameter p, int v, const char *what, struct kiln_error **err)
{
  return zstd_check (ZSTD_CCtx_setParameter (z->cctx, p, v), what, err);
}

int
kiln_compress_zstd_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err)
{
  /* 1, not zstd's usual 3: on the model-image benchmark (random weights +
   * text) level 1 was ~1.4x faster and its text output 25% smaller. */
  if (level < 0)
    level = 1;
  if (level < 1 || level > ZSTD_maxCLevel ())
    return kiln_error_set (err, 0, KILN_E_USAGE, "zstd level %d out of range (1-%d)", level, ZSTD_maxCLevel ());
  struct zstd_compressor *z = kiln_xcalloc (1, sizeof *z);
  z->cctx = ZSTD_createCCtx ();
  z->probe = ZSTD_createCCtx ();
  if (z->cctx == NULL || z->probe == NULL)
    abort ();
  z->block = kiln_xmalloc (ZSTD_BLOCK);
  z->probe_out = kiln_xmalloc (ZSTD_compressBound (ZSTD_PROBE));
  /* No checksum, no content size: the frame depends only on the input
   * bytes and the level. */
  int r = zstd_set (z, ZSTD_c_compressionLevel, level, "set zstd level", err);
  if (r == 0)
    r = zstd_set (z, ZSTD_c_checksumFlag, 0, "set zstd checksum", err);
  if (r == 0)
    r = zstd_set (z, ZSTD_c_contentSizeFlag, 0, "set zstd content size", err);
  if (r == 0)
    r = zstd_set (z, ZSTD_c_nbWorkers, threads, "set zstd workers (libzstd without threads?)", err);
  if (r == 0)
    r = zstd_set (z, ZSTD_c_jobSize, ZSTD_JOB, "set zstd job size", err);
  if (r == 0)
    r = zstd_set (z, ZSTD_c_overlapLog, ZSTD_OVERLAP_LOG, "set zstd overlap", err);
  if (r < 0)
    {
      zstd_free (&z->base);
      return r;
    }
  z->base.ops = &zstd_ops;
  *out = &z->base;
  return 0;
}
