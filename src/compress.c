/* compress.c - gzip (block-parallel ISA-L deflate + a fixed header), zstd
 * (libzstd multithreaded) and pass-through compressors feeding a sink, plus
 * the compression name / media type tables. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "kiln/compress.h"
#include "kiln/log.h"
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

static const struct kiln_compressor_ops none_ops = { none_write, none_finish, none_free, NULL };

/* ---- gzip: block-parallel ISA-L deflate ----
 *
 * The input is cut into GZ_BLOCK blocks, each compressed on its own (no
 * history shared with the previous block) and ended on a byte boundary, so
 * the compressed blocks concatenate into one deflate stream; a final empty
 * stored block closes it.  Block boundaries depend only on the input offset,
 * so the bytes are the same for any thread count.  Workers take blocks in
 * order from a ring of slots; the caller's thread emits them in order. */

#define GZ_BLOCK KILN_GZIP_BLOCK_MAX
#define GZ_STORED_MAX 65535
/* A stored deflate block: 5 header bytes, then up to 65535 bytes. */
#define GZ_PIECE (5 + GZ_STORED_MAX)
#define GZ_STORED_SIZE(len) ((len) + 5 * (((len) + GZ_STORED_MAX - 1) / GZ_STORED_MAX))
#define GZ_OUT_CAP (GZ_STORED_SIZE (GZ_BLOCK) + 1024)
#define GZ_LEVEL_BUF ISAL_DEF_LVL3_DEFAULT
#define GZ_MAX_SLOTS 8

/* Input is copied into out already laid out as stored blocks (a 5-byte gap
 * before every 65535 bytes): a block that does not compress (weights) is
 * then emitted without another copy; one that does is gathered into in. */
struct gz_slot {
  unsigned char *out, *in;
  size_t in_len, out_len;
  uint32_t crc;
  bool done;
};

static void gz_run (struct gz_slot *s, int level, unsigned char *level_buf);
static int gzip_isal_level (int level);

struct gzip_compressor {
  struct kiln_compressor base;
  int isal_level;                  /* -1: stored blocks only */
  int threads;
  size_t nslots;
  struct gz_slot *slots;
  uint64_t submitted, taken, collected;   /* block sequence numbers; slot = seq % nslots */
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  pthread_t *workers;
  int nworkers;                    /* started so far */
  bool stop;
  unsigned char *level_buf;        /* for blocks compressed in the caller */
  uint32_t crc;
  uint32_t isize;                  /* input length mod 2^32, as RFC 1952 wants */
  bool header_done;
};

/* Written by hand rather than by a library's gzip wrapper so that every
 * field is pinned: no mtime, no name, XFL 0, OS 255 (unknown).  Two runs on
 * two hosts give the same bytes. */
const unsigned char kiln_gzip_header[KILN_GZIP_HEADER_LEN] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };
/* BFINAL=1, BTYPE=00, LEN 0, NLEN 0xffff: ends the deflate stream. */
static const unsigned char gzip_last_block[5] = { 1, 0, 0, 0xff, 0xff };

/* Fills in the stored block headers around the input in s->out. */
static size_t
gz_stored (struct gz_slot *s)
{
  size_t len = s->in_len;
  for (size_t off = 0, k = 0; off < len; off += GZ_STORED_MAX, k++)
    {
      size_t n = len - off < GZ_STORED_MAX ? len - off : GZ_STORED_MAX;
      unsigned char *h = s->out + k * GZ_PIECE;
      h[0] = 0;   /* not final, stored; the stream is byte aligned here */
      h[1] = (unsigned char) n;
      h[2] = (unsigned char) (n >> 8);
      h[3] = (unsigned char) ~n;
      h[4] = (unsigned char) (~n >> 8);
    }
  return GZ_STORED_SIZE (len);
}

/* Moves the input between its stored layout in out and contiguous in. */
static void
gz_gather (struct gz_slot *s, bool to_in)
{
  for (size_t off = 0, k = 0; off < s->in_len; off += GZ_STORED_MAX, k++)
    {
      size_t n = s->in_len - off < GZ_STORED_MAX ? s->in_len - off : GZ_STORED_MAX;
      unsigned char *piece = s->out + k * GZ_PIECE + 5;
      if (to_in)
        memcpy (s->in + off, piece, n);
      else
        memcpy (piece, s->in + off, n);
    }
}

/* Raw deflate of in, byte aligned at the end (FULL_FLUSH); 0 when the
 * output would not fit in cap. */
static size_t
gz_deflate (int level, unsigned char *level_buf, const unsigned char *in, size_t len, unsigned char *out,
            size_t cap)
{
  struct isal_zstream zs;
  isal_deflate_stateless_init (&zs);
  /* stateless_init leaves hist_bits (log2 of the window) as it was on the
   * stack; a stale 1-15 there shrinks the window and changes the bytes.
   * 0 asks for the full 32 KiB window. */
  zs.hist_bits = 0;
  zs.level = (uint32_t) level;
  zs.level_buf = level > 0 ? level_buf : NULL;
  zs.level_buf_size = level > 0 ? GZ_LEVEL_BUF : 0;
  zs.flush = FULL_FLUSH;
  zs.end_of_stream = 0;
  zs.gzip_flag = IGZIP_DEFLATE;
  zs.next_in = (uint8_t *) in;
  zs.avail_in = (uint32_t) len;
  zs.next_out = out;
  zs.avail_out = (uint32_t) cap;
  if (isal_deflate_stateless (&zs) != COMP_OK)
    return 0;
  return zs.total_out;
}

/* The first 64 KiB are compressed alone first: random data (model weights)
 * shows itself there and the block is stored without compressing the rest,
 * so weights cost a CRC and no deflate time. */
static bool
gz_worth_compressing (struct gz_slot *s, int level, unsigned char *level_buf)
{
  if (s->in_len <= 2 * GZ_STORED_MAX)
    return true;
  size_t n = gz_deflate (level, level_buf, s->out + 5, GZ_STORED_MAX, s->in, GZ_OUT_CAP);
  return n != 0 && n < GZ_STORED_MAX - GZ_STORED_MAX / 32;
}

static void
gz_run (struct gz_slot *s, int level, unsigned char *level_buf)
{
  size_t len = s->in_len, stored = GZ_STORED_SIZE (len);
  uint32_t crc = 0;
  for (size_t off = 0, k = 0; off < len; off += GZ_STORED_MAX, k++)
    crc = crc32_gzip_refl (crc, s->out + k * GZ_PIECE + 5, len - off < GZ_STORED_MAX ? len - off : GZ_STORED_MAX);
  s->crc = crc;
  if (level >= 0 && gz_worth_compressing (s, level, level_buf))
    {
      gz_gather (s, true);
      s->out_len = gz_deflate (level, level_buf, s->in, len, s->out, stored);
      if (s->out_len != 0 && s->out_len < stored)
        return;
      gz_gather (s, false);   /* did not shrink after all: back to stored */
    }
  s->out_len = gz_stored (s);
}

static void *
gz_worker (void *arg)
{
  struct gzip_compressor *g = arg;
  unsigned char *level_buf = kiln_xmalloc (GZ_LEVEL_BUF);
  pthread_mutex_lock (&g->mu);
  while (!g->stop)
    {
      if (g->taken == g->submitted)
        {
          pthread_cond_wait (&g->cv_work, &g->mu);
          continue;
        }
      struct gz_slot *s = &g->slots[g->taken++ % g->nslots];
      pthread_mutex_unlock (&g->mu);
      gz_run (s, g->isal_level, level_buf);
      pthread_mutex_lock (&g->mu);
      s->done = true;
      pthread_cond_broadcast (&g->cv_done);
    }
  pthread_mutex_unlock (&g->mu);
  free (level_buf);
  return NULL;
}

static void
gz_stop (struct gzip_compressor *g)
{
  if (g->nworkers == 0)
    return;
  pthread_mutex_lock (&g->mu);
  g->stop = true;
  pthread_cond_broadcast (&g->cv_work);
  pthread_mutex_unlock (&g->mu);
  for (int i = 0; i < g->nworkers; i++)
    pthread_join (g->workers[i], NULL);
  g->nworkers = 0;
}

/* Started with the first full block: most layers are small and never need
 * them.  Without threads we fall back to compressing in the caller. */
static void
gz_start (struct gzip_compressor *g)
{
  g->workers = kiln_xcalloc ((size_t) g->threads, sizeof *g->workers);
  for (int i = 0; i < g->threads; i++)
    {
      if (pthread_create (&g->workers[i], NULL, gz_worker, g) != 0)
        {
          kiln_log_debug ("gzip: could not start worker %d: %s", i, strerror (errno));
          break;
        }
      g->nworkers++;
    }
}

/* Waits for the oldest block, emits it and frees its slot. */
static int
gz_collect (struct gzip_compressor *g, struct kiln_error **err)
{
  struct gz_slot *s = &g->slots[g->collected % g->nslots];
  pthread_mutex_lock (&g->mu);
  while (!s->done)
    pthread_cond_wait (&g->cv_done, &g->mu);
  pthread_mutex_unlock (&g->mu);
  g->crc = (uint32_t) crc32_combine (g->crc, s->crc, (z_off_t) s->in_len);
  g->isize += (uint32_t) s->in_len;
  if (g->base.on_block)
    g->base.on_block (g->base.block_opaque, s->in_len, s->out_len, s->crc,
                      crc32_gzip_refl (0, s->out, s->out_len));
  int r = emit (&g->base, s->out, s->out_len, err);
  s->done = false;
  s->in_len = 0;
  g->collected++;
  return r;
}

static bool
gz_front_done (struct gzip_compressor *g)
{
  if (g->collected == g->submitted)
    return false;
  pthread_mutex_lock (&g->mu);
  bool done = g->slots[g->collected % g->nslots].done;
  pthread_mutex_unlock (&g->mu);
  return done;
}

/* Hands the filling slot to a worker (or compresses it here), then emits
 * whatever is ready; on return the next slot is free to fill. */
static int
gz_submit (struct gzip_compressor *g, struct kiln_error **err)
{
  struct gz_slot *s = &g->slots[g->submitted % g->nslots];
  if (g->threads > 1 && g->workers == NULL)
    gz_start (g);
  if (g->nworkers == 0)
    {
      gz_run (s, g->isal_level, g->level_buf);
      s->done = true;
      g->submitted++;
      return gz_collect (g, err);
    }
  pthread_mutex_lock (&g->mu);
  g->submitted++;
  pthread_cond_signal (&g->cv_work);
  pthread_mutex_unlock (&g->mu);
  int r = 0;
  while (r == 0 && (g->submitted - g->collected >= g->nslots || gz_front_done (g)))
    r = gz_collect (g, err);
  return r;
}

static int
gzip_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  if (!g->header_done)
    {
      int r = emit (c, kiln_gzip_header, sizeof kiln_gzip_header, err);
      if (r < 0)
        return r;
      g->header_done = true;
    }
  const unsigned char *p = data;
  while (len > 0)
    {
      struct gz_slot *s = &g->slots[g->submitted % g->nslots];
      if (s->in == NULL)
        {
          s->in = kiln_xmalloc (GZ_OUT_CAP);
          s->out = kiln_xmalloc (GZ_OUT_CAP);
        }
      /* up to the end of the block and of the current stored piece */
      size_t room = GZ_STORED_MAX - s->in_len % GZ_STORED_MAX;
      if (room > GZ_BLOCK - s->in_len)
        room = GZ_BLOCK - s->in_len;
      size_t n = room < len ? room : len;
      size_t at = (s->in_len / GZ_STORED_MAX) * GZ_PIECE + 5 + s->in_len % GZ_STORED_MAX;
      memcpy (s->out + at, p, n);
      s->in_len += n;
      p += n;
      len -= n;
      if (s->in_len == GZ_BLOCK)
        {
          int r = gz_submit (g, err);
          if (r < 0)
            return r;
        }
    }
  return 0;
}

static int
gzip_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  int r = gzip_write (c, NULL, 0, err);   /* the header, for an empty stream */
  if (r == 0 && g->slots[g->submitted % g->nslots].in_len > 0)
    r = gz_submit (g, err);
  while (r == 0 && g->collected < g->submitted)
    r = gz_collect (g, err);
  if (r < 0)
    return r;
  unsigned char end[KILN_GZIP_END_LEN];
  kiln_gzip_end (g->crc, g->isize, end);
  return emit (c, end, sizeof end, err);
}

void
kiln_gzip_end (uint32_t crc, uint64_t isize, unsigned char out[KILN_GZIP_END_LEN])
{
  memcpy (out, gzip_last_block, sizeof gzip_last_block);
  for (int i = 0; i < 4; i++)
    {
      out[5 + i] = (unsigned char) (crc >> (8 * i));
      out[9 + i] = (unsigned char) (isize >> (8 * i));
    }
}

/* An explicit block end (the layer writer cuts at entry boundaries, so a
 * changed file leaves the blocks around it as they were). */
static int
gzip_cut (struct kiln_compressor *c, struct kiln_error **err)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  if (g->slots[g->submitted % g->nslots].in_len == 0)
    return 0;
  return gz_submit (g, err);
}

static void
gzip_free (struct kiln_compressor *c)
{
  struct gzip_compressor *g = (struct gzip_compressor *) c;
  gz_stop (g);
  for (size_t i = 0; i < g->nslots; i++)
    {
      free (g->slots[i].in);
      free (g->slots[i].out);
    }
  free (g->slots);
  free (g->workers);
  free (g->level_buf);
  pthread_mutex_destroy (&g->mu);
  pthread_cond_destroy (&g->cv_work);
  pthread_cond_destroy (&g->cv_done);
  free (g);
}

static const struct kiln_compressor_ops gzip_ops = { gzip_write, gzip_finish, gzip_free, gzip_cut };

size_t
kiln_gzip_block (int level, const void *in, size_t len, unsigned char *out, uint32_t *crc)
{
  struct gz_slot s = { .out = out, .in = kiln_xmalloc (GZ_OUT_CAP), .in_len = len };
  memcpy (s.in, in, len);
  gz_gather (&s, false);
  unsigned char *level_buf = kiln_xmalloc (GZ_LEVEL_BUF);
  gz_run (&s, gzip_isal_level (level), level_buf);
  free (level_buf);
  free (s.in);
  *crc = s.crc;
  return s.out_len;
}

/* --compression-level 0-9 onto ISA-L 0-3 (documented in compress.h); -1 is
 * stored blocks only. */
static int
gzip_isal_level (int level)
{
  if (level < 0)
    return 1;
  static const int map[10] = { -1, 0, 1, 1, 1, 1, 2, 2, 3, 3 };
  return map[level];
}

static int
gzip_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err)
{
  if (level > 9)
    return kiln_error_set (err, 0, KILN_E_USAGE, "gzip level %d out of range (0-9)", level);
  struct gzip_compressor *g = kiln_xcalloc (1, sizeof *g);
  g->isal_level = gzip_isal_level (level);
  g->threads = threads;
  /* Two slots per worker keep every worker busy while the caller emits;
   * capped, since each slot holds two ~1 MiB buffers. */
  g->nslots = threads > 1 ? (size_t) threads * 2 : 1;
  if (g->nslots > GZ_MAX_SLOTS)
    g->nslots = GZ_MAX_SLOTS;
  g->slots = kiln_xcalloc (g->nslots, sizeof *g->slots);
  g->level_buf = kiln_xmalloc (GZ_LEVEL_BUF);
  pthread_mutex_init (&g->mu, NULL);
  pthread_cond_init (&g->cv_work, NULL);
  pthread_cond_init (&g->cv_done, NULL);
  g->base.ops = &gzip_ops;
  *out = &g->base;
  return 0;
}

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
  ZSTD_CCtx *probe;            /* single-threaded, level 1: is a block worth it */
  unsigned char *block, *probe_out;
  size_t block_len;
  bool frame_open;             /* the compressed frame holds data */
  bool emitted;                /* any frame written */
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
  int r = emit (&z->base, header, sizeof header, err);
  for (size_t off = 0; r == 0 && off < len; off += ZSTD_RAW_MAX)
    {
      size_t n = len - off < ZSTD_RAW_MAX ? len - off : ZSTD_RAW_MAX;
      uint32_t h = (uint32_t) (n << 3) | (off + n == len ? 1u : 0u);   /* Block_Type 0 = raw */
      unsigned char bh[3] = { (unsigned char) h, (unsigned char) (h >> 8), (unsigned char) (h >> 16) };
      r = emit (&z->base, bh, sizeof bh, err);
      if (r == 0)
        r = emit (&z->base, data + off, n, err);
    }
  z->emitted = true;
  return r;
}

/* Its first 64 KiB at level 1 tell a block of random data. */
static bool
zstd_worth_compressing (struct zstd_compressor *z, const unsigned char *data, size_t len)
{
  if (len < ZSTD_BLOCK)
    return true;   /* the tail of a layer: small, compress it */
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

static int
zstd_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err)
{
  /* 1, not zstd's usual 3: on the model-image benchmark (random weights +
   * text) level 1 was ~1.4x faster and its text output 25% smaller. */
  if (level < 0)
    level = 1;
  if (level < 1 || level > ZSTD_maxCLevel ())
    return kiln_error_set (err, 0, KILN_E_USAGE, "zstd level %d out of range (1-%d)", level,
                           ZSTD_maxCLevel ());
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
kiln_compressor_new_mt (enum kiln_compression c, int level, int threads, kiln_compress_sink sink,
                        void *opaque, struct kiln_compressor **out, struct kiln_error **err)
{
  struct kiln_compressor *k = NULL;
  int r = 0;
  threads = kiln_compress_threads (threads);
  switch (c)
    {
    case KILN_COMP_GZIP:
      r = gzip_new (level, threads, &k, err);
      break;
    case KILN_COMP_ZSTD:
      r = zstd_new (level, threads, &k, err);
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
