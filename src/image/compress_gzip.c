/* compress_gzip.c - the gzip backend: block-parallel ISA-L deflate behind a
 * fixed header, each block cut where the layer writer asks or every 1 MiB,
 * and the single-block pieces a patched layer is made of. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <unistd.h>
#include <zlib.h>
#include "compress-internal.h"
#include "kiln/compress.h"
#include "kiln/log.h"
#include "kiln/util.h"

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
  int isal_level; /* -1: stored blocks only */
  int threads;
  size_t nslots;
  struct gz_slot *slots;
  uint64_t submitted, taken, collected; /* block sequence numbers; slot = seq % nslots */
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  pthread_t *workers;
  int nworkers; /* started so far */
  bool stop;
  unsigned char *level_buf; /* for blocks compressed in the caller */
  uint32_t crc;
  uint32_t isize; /* input length mod 2^32, as RFC 1952 wants */
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
      h[0] = 0; /* not final, stored; the stream is byte aligned here */
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
gz_deflate (int level, unsigned char *level_buf, const unsigned char *in, size_t len, unsigned char *out, size_t cap)
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
      gz_gather (s, false); /* did not shrink after all: back to stored */
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
    g->base.on_block (g->base.block_opaque, s->in_len, s->out_len, s->crc, crc32_gzip_refl (0, s->out, s->out_len));
  int r = kiln_compress_emit (&g->base, s->out, s->out_len, err);
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
      int r = kiln_compress_emit (c, kiln_gzip_header, sizeof kiln_gzip_header, err);
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
  int r = gzip_write (c, NULL, 0, err); /* the header, for an empty stream */
  if (r == 0 && g->slots[g->submitted % g->nslots].in_len > 0)
    r = gz_submit (g, err);
  while (r == 0 && g->collected < g->submitted)
    r = gz_collect (g, err);
  if (r < 0)
    return r;
  unsigned char end[KILN_GZIP_END_LEN];
  kiln_gzip_end (g->crc, g->isize, end);
  return kiln_compress_emit (c, end, sizeof end, err);
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

int
kiln_compress_gzip_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err)
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
