/* layer_map.c - where a gzip layer's blocks are cut, what each block is made
 * of (its recipe), and the layer map that keeps both (see layer-internal.h).
 *
 * A recipe is the sha256 of records, each ending in a tag byte so that the
 * sequence reads back unambiguously from its end:
 *   raw bytes   <bytes> <u64 length> 'R'
 *   file data   <32-byte content digest> <u64 offset> <u64 length> 'D'
 * The splitting of raw bytes into write calls never shows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "layer-internal.h"

#define LMAP_MAGIC "KLNLMAP1"
#define LMAP_REC 96 /* u_len 8, c_len 8, crc 4, recipe 32, mid 32 + 8, ccrc 4 */
#define LMAP_MAX_FILE (256u << 20)

static void
put_le (unsigned char *p, uint64_t v, int bytes)
{
  for (int i = 0; i < bytes; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static uint64_t
get_le (const unsigned char *p, int bytes)
{
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

/* ---- the builder ---- */

void
kiln_layer_map_builder_init (struct lmap_builder *b, bool capture)
{
  memset (b, 0, sizeof *b);
  b->capture = capture;
}

void
kiln_layer_map_block_clear (struct lmap_block *blk)
{
  kiln_sha256_free (blk->ctx);
  kiln_buf_release (&blk->raw);
  for (size_t i = 0; i < blk->npieces; i++)
    free (blk->pieces[i].path);
  free (blk->pieces);
  memset (blk, 0, sizeof *blk);
}

void
kiln_layer_map_builder_clear (struct lmap_builder *b)
{
  for (size_t i = b->head; i < b->n; i++)
    kiln_layer_map_block_clear (&b->q[i]);
  free (b->q);
  free (b->path);
  memset (b, 0, sizeof *b);
}

static struct lmap_block *
open_block (struct lmap_builder *b)
{
  if (b->n == b->head || b->q[b->n - 1].closed)
    {
      if (b->head > 0 && b->head * 2 >= b->n)
        {
          memmove (b->q, b->q + b->head, (b->n - b->head) * sizeof *b->q);
          b->n -= b->head;
          b->head = 0;
        }
      if (b->n == b->cap)
        {
          b->cap = b->cap ? b->cap * 2 : 16;
          b->q = kiln_xrealloc (b->q, b->cap * sizeof *b->q);
        }
      memset (&b->q[b->n], 0, sizeof b->q[b->n]);
      b->q[b->n].raw = (struct kiln_buf) KILN_BUF_INIT;
      b->n++;
    }
  return &b->q[b->n - 1];
}

static struct kiln_sha256 *
block_ctx (struct lmap_block *blk)
{
  if (blk->ctx == NULL)
    blk->ctx = kiln_sha256_new ();
  return blk->ctx;
}

static void
end_raw_run (struct lmap_block *blk)
{
  if (blk->raw_run == 0)
    return;
  unsigned char rec[9];
  put_le (rec, blk->raw_run, 8);
  rec[8] = 'R';
  kiln_sha256_update (block_ctx (blk), rec, sizeof rec);
  blk->raw_run = 0;
}

static void
data_record (struct lmap_block *blk, const struct kiln_digest *d, uint64_t off, uint64_t len)
{
  unsigned char rec[49];
  kiln_digest_raw (d, rec);
  put_le (rec + 32, off, 8);
  put_le (rec + 40, len, 8);
  rec[48] = 'D';
  kiln_sha256_update (block_ctx (blk), rec, sizeof rec);
}

static void
seal (struct lmap_block *blk)
{
  struct kiln_digest d;
  kiln_sha256_final (block_ctx (blk), &d);
  kiln_digest_raw (&d, blk->recipe);
  blk->resolved = true;
}

static void
close_block (struct lmap_builder *b)
{
  struct lmap_block *blk = &b->q[b->n - 1];
  if (b->n == b->head || blk->closed || blk->u_len == 0)
    return;
  end_raw_run (blk);
  blk->closed = true;
  if (!blk->pending && !b->broken)
    seal (blk);
}

static struct lmap_piece *
add_piece (struct lmap_block *blk)
{
  blk->pieces = kiln_xrealloc (blk->pieces, (blk->npieces + 1) * sizeof *blk->pieces);
  struct lmap_piece *pc = &blk->pieces[blk->npieces++];
  memset (pc, 0, sizeof *pc);
  return pc;
}

static void
capture_raw (struct lmap_block *blk, const void *p, size_t len)
{
  struct lmap_piece *last = blk->npieces ? &blk->pieces[blk->npieces - 1] : NULL;
  if (last == NULL || last->data)
    {
      last = add_piece (blk);
      last->raw_off = blk->raw.len;
    }
  last->len += len;
  kiln_buf_add (&blk->raw, p, len);
}

static void
capture_data (struct lmap_builder *b, struct lmap_block *blk, const unsigned char *p, uint64_t len)
{
  struct lmap_piece *last = blk->npieces ? &blk->pieces[blk->npieces - 1] : NULL;
  if (last && last->data && last->opaque == b->opaque && last->off + last->len == b->data_off
      && strcmp (last->path, b->path) == 0)
    last->len += len;
  else
    {
      last = add_piece (blk);
      *last = (struct lmap_piece){ .data = true,
                                   .off = b->data_off,
                                   .len = len,
                                   .path = kiln_xstrdup (b->path),
                                   .opaque = b->opaque,
                                   .size = b->size,
                                   .digest = b->digest,
                                   .kept = b->keep_data,
                                   .raw_off = blk->raw.len };
    }
  if (last->kept)
    kiln_buf_add (&blk->raw, p, (size_t) len);
}

/* Whether the name picks this entry to start a block: each tar byte is a
 * candidate with odds 1 in LMAP_CUT_AVG, so an entry's odds grow with its
 * size and blocks average LMAP_CUT_MIN + LMAP_CUT_AVG whatever the file
 * sizes.  The name is mixed (murmur3's finaliser) since FNV's bits are not
 * spread evenly. */
static bool
picked (const char *path, uint64_t padded)
{
  uint64_t h = kiln_str_hash (path);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return (h >> 32) < ((padded + 512) << (32 - LMAP_CUT_AVG_BITS));
}

bool
kiln_layer_map_cut_before (struct lmap_builder *b, const char *path, uint64_t size)
{
  if (b->n == b->head || b->q[b->n - 1].closed)
    return false;
  uint64_t fill = b->q[b->n - 1].u_len;
  uint64_t padded = (size + 511) & ~(uint64_t) 511;
  bool cut = fill > 0
             && (size >= LMAP_CUT_BIG || fill + padded + LMAP_HEADER_ROOM > KILN_GZIP_BLOCK_MAX
                 || (fill >= LMAP_CUT_MIN && picked (path, padded)));
  if (cut)
    close_block (b);
  return cut;
}

void
kiln_layer_map_begin_entry (struct lmap_builder *b, const char *path, uint64_t size, void *opaque,
                            const struct kiln_digest *digest)
{
  free (b->path);
  b->path = kiln_xstrdup (path);
  b->size = size;
  b->opaque = opaque;
  b->data_off = 0;
  b->known = digest != NULL;
  if (digest)
    b->digest = *digest;
}

/* What of len bytes the open block takes before it is full. */
static size_t
block_take (const struct lmap_block *blk, size_t len)
{
  size_t room = KILN_GZIP_BLOCK_MAX - blk->u_len;
  return room < len ? room : len;
}

/* n bytes went into the open block; a full block closes by itself. */
static void
block_grow (struct lmap_builder *b, struct lmap_block *blk, size_t n)
{
  blk->u_len += n;
  if (blk->u_len == KILN_GZIP_BLOCK_MAX)
    close_block (b);
}

static void
raw_bytes (struct lmap_builder *b, const unsigned char *p, size_t len)
{
  for (size_t n; len > 0; p += n, len -= n)
    {
      struct lmap_block *blk = open_block (b);
      n = block_take (blk, len);
      if (!b->broken)
        kiln_sha256_update (block_ctx (blk), p, n);
      blk->raw_run += n;
      if (b->capture)
        capture_raw (blk, p, n);
      block_grow (b, blk, n);
    }
}

static void
data_bytes (struct lmap_builder *b, const unsigned char *p, size_t len)
{
  for (size_t n; len > 0; p += n, len -= n)
    {
      struct lmap_block *blk = open_block (b);
      n = block_take (blk, len);
      if (!blk->pending)
        {
          end_raw_run (blk);
          blk->pending = true;
          blk->pend_off = b->data_off;
          blk->pend_len = 0;
        }
      blk->pend_len += n;
      if (b->capture)
        capture_data (b, blk, p, n);
      b->data_off += n;
      block_grow (b, blk, n);
    }
}

void
kiln_layer_map_bytes (struct lmap_builder *b, bool data, const void *p, size_t len)
{
  if (data)
    data_bytes (b, p, len);
  else
    raw_bytes (b, p, len);
}

bool
kiln_layer_map_at_start (const struct lmap_builder *b, size_t *room)
{
  const struct lmap_block *blk = b->n > b->head ? &b->q[b->n - 1] : NULL;
  bool fresh = blk == NULL || blk->closed;
  *room = fresh ? KILN_GZIP_BLOCK_MAX : KILN_GZIP_BLOCK_MAX - blk->u_len;
  return fresh || blk->u_len == 0;
}

void
kiln_layer_map_note_mid (struct lmap_builder *b, const struct kiln_sha256_mid *m)
{
  struct lmap_block *blk = open_block (b);
  blk->mid = *m;
  blk->has_mid = true;
}

void
kiln_layer_map_end_entry (struct lmap_builder *b, const struct kiln_digest *digest)
{
  if (digest == NULL && b->known)
    digest = &b->digest;
  if (b->data_off > 0 && digest == NULL)
    b->broken = true;
  for (size_t i = b->head; i < b->n; i++)
    {
      struct lmap_block *blk = &b->q[i];
      if (!blk->pending)
        continue;
      blk->pending = false;
      if (b->broken)
        {
          blk->resolved = blk->closed;
          continue;
        }
      data_record (blk, digest, blk->pend_off, blk->pend_len);
      if (blk->closed)
        seal (blk);
    }
  b->known = false;
}

void
kiln_layer_map_finish (struct lmap_builder *b)
{
  close_block (b);
}

bool
kiln_layer_map_take (struct lmap_builder *b, struct lmap_block *out)
{
  if (b->head == b->n)
    return false;
  struct lmap_block *blk = &b->q[b->head];
  if (!blk->closed || blk->pending || !(blk->resolved || b->broken))
    return false;
  *out = *blk;
  memset (blk, 0, sizeof *blk);
  b->head++;
  return true;
}

/* ---- the stored map ---- */

void
kiln_layer_map_add (struct lmap *m, uint64_t u_len, uint64_t c_len, uint32_t crc, uint32_t ccrc,
                    const unsigned char recipe[32], const struct kiln_sha256_mid *mid)
{
  if (m->n == m->cap)
    {
      m->cap = m->cap ? m->cap * 2 : 64;
      m->v = kiln_xrealloc (m->v, m->cap * sizeof *m->v);
    }
  struct lmap_entry *e = &m->v[m->n];
  e->u_len = u_len;
  e->c_len = c_len;
  e->c_off = m->n ? m->v[m->n - 1].c_off + m->v[m->n - 1].c_len : KILN_GZIP_HEADER_LEN;
  e->crc = crc;
  e->ccrc = ccrc;
  memcpy (e->recipe, recipe, 32);
  if (mid)
    e->mid = *mid;
  else
    memset (&e->mid, 0xff, sizeof e->mid); /* len UINT64_MAX: none */
  m->n++;
}

bool
kiln_layer_map_has_mids (const struct lmap *m)
{
  uint64_t at = 0;
  for (size_t i = 0; i < m->n; i++)
    {
      if (m->v[i].mid.len != at)
        return false;
      at += m->v[i].u_len;
    }
  return true;
}

void
kiln_layer_map_clear (struct lmap *m)
{
  free (m->v);
  free (m->slots);
  memset (m, 0, sizeof *m);
}

static char *
lmap_name (const struct kiln_digest *blob)
{
  return kiln_xstrdup (kiln_digest_hex (blob));
}

int
kiln_layer_map_save (struct kiln_store *st, const struct kiln_digest *blob, const struct lmap *m,
                     struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf out = KILN_BUF_INIT;
  unsigned char head[24], rec[LMAP_REC];
  memcpy (head, LMAP_MAGIC, 8);
  put_le (head + 8, LMAP_VERSION, 4);
  put_le (head + 12, (uint32_t) m->level, 4);
  put_le (head + 16, m->n, 8);
  kiln_buf_add (&out, head, sizeof head);
  for (size_t i = 0; i < m->n; i++)
    {
      put_le (rec, m->v[i].u_len, 8);
      put_le (rec + 8, m->v[i].c_len, 8);
      put_le (rec + 16, m->v[i].crc, 4);
      memcpy (rec + 20, m->v[i].recipe, 32);
      for (int k = 0; k < 8; k++)
        put_le (rec + 52 + 4 * k, m->v[i].mid.h[k], 4);
      put_le (rec + 84, m->v[i].mid.len, 8);
      put_le (rec + 92, m->v[i].ccrc, 4);
      kiln_buf_add (&out, rec, sizeof rec);
    }
  struct kiln_digest d;
  kiln_digest_of (out.buf, out.len, &d);
  kiln_buf_adds (&out, d.s);
  kiln_autofree char *name = lmap_name (blob);
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), "cache/lmap", 0755, err);
  /* a lost map only means the next rebuild writes the whole layer */
  if (dfd < 0 || kiln_fs_write_atomic (dfd, name, out.buf, out.len, 0644, err) < 0)
    return kiln_error_wrap (err, "save the block map of layer %s", blob->s);
  return 0;
}

static void
index_recipes (struct lmap *m)
{
  m->nslots = 16;
  while (m->nslots < m->n * 2)
    m->nslots *= 2;
  m->slots = kiln_xcalloc (m->nslots, sizeof *m->slots);
  for (size_t i = 0; i < m->n; i++)
    {
      size_t h = (size_t) get_le (m->v[i].recipe, 8) & (m->nslots - 1);
      while (m->slots[h])
        h = (h + 1) & (m->nslots - 1);
      m->slots[h] = i + 1;
    }
}

/* Any damage, another version or level reads as no map. */
static int
decode (const struct kiln_buf *b, int level, struct lmap *m)
{
  const unsigned char *p = (const unsigned char *) b->buf;
  if (b->len < 24 + KILN_DIGEST_STR_LEN || memcmp (p, LMAP_MAGIC, 8) != 0 || get_le (p + 8, 4) != LMAP_VERSION
      || (int32_t) get_le (p + 12, 4) != level)
    return 0;
  uint64_t n = get_le (p + 16, 8);
  size_t body = b->len - KILN_DIGEST_STR_LEN;
  if (n > (body - 24) / LMAP_REC || 24 + n * LMAP_REC != body)
    return 0;
  struct kiln_digest d;
  kiln_digest_of (p, body, &d);
  if (memcmp (d.s, p + body, KILN_DIGEST_STR_LEN) != 0)
    return 0;
  m->level = level;
  for (uint64_t i = 0; i < n; i++)
    {
      const unsigned char *r = p + 24 + i * LMAP_REC;
      struct kiln_sha256_mid mid;
      for (int k = 0; k < 8; k++)
        mid.h[k] = (uint32_t) get_le (r + 52 + 4 * k, 4);
      mid.len = get_le (r + 84, 8);
      kiln_layer_map_add (m, get_le (r, 8), get_le (r + 8, 8), (uint32_t) get_le (r + 16, 4),
                          (uint32_t) get_le (r + 92, 4), r + 20, &mid);
    }
  index_recipes (m);
  return 1;
}

int
kiln_layer_map_load (struct kiln_store *st, const struct kiln_digest *blob, int level, struct lmap *m)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autofree char *rel = kiln_xasprintf ("cache/lmap/%s", kiln_digest_hex (blob));
  memset (m, 0, sizeof *m);
  if (kiln_fs_read_file (kiln_store_dirfd (st), rel, LMAP_MAX_FILE, &b, &e) < 0)
    return 0;
  int r = decode (&b, level, m);
  if (r == 0)
    {
      kiln_log_debug ("layer map of %s: damaged or of another kind, not used", blob->s);
      kiln_layer_map_clear (m);
    }
  return r;
}

const struct lmap_entry *
kiln_layer_map_find (const struct lmap *m, const unsigned char recipe[32], uint64_t u_len)
{
  if (m->nslots == 0)
    return NULL;
  for (size_t h = (size_t) get_le (recipe, 8) & (m->nslots - 1); m->slots[h]; h = (h + 1) & (m->nslots - 1))
    {
      const struct lmap_entry *e = &m->v[m->slots[h] - 1];
      if (e->u_len == u_len && memcmp (e->recipe, recipe, 32) == 0)
        return e;
    }
  return NULL;
}
