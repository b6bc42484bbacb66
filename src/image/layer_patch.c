/* layer_patch.c - a gzip layer made from an earlier layer of the same step.
 *
 * Each block the writer closes comes with its recipe.  When the earlier
 * layer's map has a block of the same recipe and length, its compressed
 * bytes are copied from the earlier blob; they are inflated on the way, for
 * the diffID and a CRC check (a damaged old block is made again instead).
 * Any other block is assembled from its pieces - the tar header bytes the
 * writer kept and ranges of the files, opened through the caller - and
 * compressed as the gzip compressor would.  A file read whole must still
 * have the content digest its recipe was made with. */
#include <errno.h>
#include <pthread.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "layer-internal.h"

/* Past the unchanged start, blocks go through a ring of jobs: the writer's
 * thread (making headers) queues each block as it closes; workers read and
 * inflate the old blocks (most of a patch's work, and blocks inflate
 * independently); one emitter takes the jobs in order, makes the blocks
 * that have no old copy, hashes the tar, writes the blob.  So the three
 * kinds of work use the cores at once. */
#define PATCH_SLOTS 8

struct patch_job {
  struct lmap_block blk;
  const struct lmap_entry *old;         /* the old block with its recipe, or NULL */
  bool prefix;                          /* old is at the same place, all before it too */
  const struct kiln_sha256_mid *resume; /* the first job after the prefix: the hash's state */
  unsigned char *ubuf, *cbuf;
  bool claimed; /* a worker has it */
  bool done, ok;
};

struct layer_patch {
  struct lmap old;
  struct lmap made; /* the new layer's map */
  int old_fd;
  int level;
  kiln_layer_open_fn open;
  void *ud;
  void *open_opaque; /* the file open for the last data piece */
  int open_fd;
  uint32_t crc;
  uint64_t isize;
  bool started;
  uint64_t reused, remade;
  /* Blocks equal to the old layer's at the same place, from the start: copied
   * without being inflated or hashed; the diffID's hash resumes from the old
   * map's state at the first block that differs. */
  bool prefix;
  bool hashing; /* emitter: a prefix block was bad, hash every block */
  uint64_t u_off;
  size_t sub_n; /* blocks submitted and their length, for the prefix test */
  uint64_t sub_off;
  struct patch_job jobs[PATCH_SLOTS];
  uint64_t submitted, collected; /* job sequence numbers; slot = seq % PATCH_SLOTS */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* any change of the ring; broadcast */
  pthread_t workers[2], emitter;
  int nworkers;
  bool emitting; /* the emitter runs */
  bool stop;     /* workers: quit */
  bool eof;      /* no more jobs: the emitter drains and quits */
  bool failed;   /* the emitter stopped on err */
  struct kiln_error *err;
  struct kiln_blob_writer *blob; /* the writer's, while the emitter runs */
  struct kiln_sha256 *tar_hash;
};

static void start_workers (struct layer_patch *p);
static void stop_workers (struct layer_patch *p, bool drain);

int
kiln_layer_patch_new (struct kiln_store *st, const struct kiln_digest *base, int level, kiln_layer_open_fn open,
                      void *ud, struct layer_patch **out)
{
  kiln_autoerror struct kiln_error *e = NULL;
  uint64_t size;
  /* never fetched: a base that is not here is no shortcut */
  if (!kiln_store_blob_exists (st, base, &size))
    return 0;
  struct layer_patch *p = kiln_xcalloc (1, sizeof *p);
  p->old_fd = -1;
  p->open_fd = -1;
  pthread_mutex_init (&p->mu, NULL);
  pthread_cond_init (&p->cv, NULL);
  if (kiln_layer_map_load (st, base, level, &p->old) == 0 || (p->old_fd = kiln_store_blob_open (st, base, &e)) < 0)
    {
      kiln_layer_patch_free (p);
      return 0;
    }
  p->level = level;
  p->made.level = level;
  p->prefix = kiln_layer_map_has_mids (&p->old);
  p->open = open;
  p->ud = ud;
  start_workers (p);
  *out = p;
  return 1;
}

void
kiln_layer_patch_free (struct layer_patch *p)
{
  if (p == NULL)
    return;
  stop_workers (p, false);
  pthread_mutex_destroy (&p->mu);
  pthread_cond_destroy (&p->cv);
  kiln_error_free (&p->err);
  for (size_t i = 0; i < PATCH_SLOTS; i++)
    {
      kiln_layer_map_block_clear (&p->jobs[i].blk);
      free (p->jobs[i].ubuf);
      free (p->jobs[i].cbuf);
    }
  kiln_layer_map_clear (&p->old);
  kiln_layer_map_clear (&p->made);
  if (p->old_fd >= 0)
    close (p->old_fd);
  if (p->open_fd >= 0)
    close (p->open_fd);
  free (p);
}

/* The old block's bytes into cbuf and, inflated, into ubuf; false when they
 * do not read back as the map says. */
static bool
read_old (int fd, const struct lmap_entry *o, unsigned char *cbuf, unsigned char *ubuf)
{
  if (o->c_len > KILN_GZIP_BLOCK_OUT_CAP || o->u_len > KILN_GZIP_BLOCK_MAX)
    return false;
  ssize_t n = pread (fd, cbuf, o->c_len, (off_t) o->c_off);
  if (n < 0 || (uint64_t) n != o->c_len)
    return false;
  struct inflate_state s;
  isal_inflate_init (&s);
  s.crc_flag = ISAL_DEFLATE;
  s.next_in = cbuf;
  s.avail_in = (uint32_t) o->c_len;
  s.next_out = ubuf;
  s.avail_out = (uint32_t) o->u_len + 1;
  int r = isal_inflate (&s);
  return r == ISAL_DECOMP_OK && s.total_out == o->u_len && crc32_gzip_refl (0, ubuf, (uint64_t) o->u_len) == o->crc;
}

static void *
worker (void *arg)
{
  struct layer_patch *p = arg;
  pthread_mutex_lock (&p->mu);
  while (!p->stop)
    {
      /* the oldest job nobody has: jobs done at submission are skipped */
      struct patch_job *j = NULL;
      for (uint64_t seq = p->collected; seq < p->submitted && j == NULL; seq++)
        if (!p->jobs[seq % PATCH_SLOTS].done && !p->jobs[seq % PATCH_SLOTS].claimed)
          j = &p->jobs[seq % PATCH_SLOTS];
      if (j == NULL)
        {
          pthread_cond_wait (&p->cv, &p->mu);
          continue;
        }
      j->claimed = true;
      pthread_mutex_unlock (&p->mu);
      bool ok = read_old (p->old_fd, j->old, j->cbuf, j->ubuf);
      pthread_mutex_lock (&p->mu);
      j->ok = ok;
      j->done = true;
      pthread_cond_broadcast (&p->cv);
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

static void
start_workers (struct layer_patch *p)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  int want = cpus > 2 ? 2 : 1;
  for (int i = 0; i < want; i++)
    if (pthread_create (&p->workers[i], NULL, worker, p) == 0)
      p->nworkers++;
}

/* Stops the emitter (after it drained the ring, or at once when the layer
 * is dropped) and the workers. */
static void
stop_workers (struct layer_patch *p, bool drain)
{
  pthread_mutex_lock (&p->mu);
  p->eof = true;
  p->failed = p->failed || !drain;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
  if (p->emitting)
    pthread_join (p->emitter, NULL);
  p->emitting = false;
  pthread_mutex_lock (&p->mu);
  p->stop = true;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
  for (int i = 0; i < p->nworkers; i++)
    pthread_join (p->workers[i], NULL);
  p->nworkers = 0;
}

static int
piece_fd (struct layer_patch *p, const struct lmap_piece *pc, struct kiln_error **err)
{
  if (p->open_fd >= 0 && p->open_opaque == pc->opaque)
    return p->open_fd;
  if (p->open_fd >= 0)
    close (p->open_fd);
  p->open_fd = p->open (p->ud, pc->opaque, pc->path, err);
  p->open_opaque = pc->opaque;
  return p->open_fd;
}

static int
changed (const struct lmap_piece *pc, struct kiln_error **err)
{
  return kiln_error_set (err, 0, KILN_E_IO,
                         "read `%s`: file changed while being added (expected %llu bytes, "
                         "content %s)",
                         pc->path, (unsigned long long) pc->size, pc->digest.s);
}

/* A range of a file into dst; a file read whole must match its digest, one
 * read in part its size. */
static int
read_piece (struct layer_patch *p, const struct lmap_piece *pc, unsigned char *dst, struct kiln_error **err)
{
  int fd = piece_fd (p, pc, err);
  if (fd < 0)
    return -1;
  for (uint64_t done = 0; done < pc->len;)
    {
      ssize_t n = pread (fd, dst + done, pc->len - done, (off_t) (pc->off + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read `%s`", pc->path);
      if (n == 0)
        return changed (pc, err);
      done += (uint64_t) n;
    }
  struct stat sb;
  if (fstat (fd, &sb) < 0 || (uint64_t) sb.st_size != pc->size)
    return changed (pc, err);
  if (pc->off == 0 && pc->len == pc->size)
    {
      struct kiln_digest d;
      kiln_digest_of (dst, pc->len, &d);
      if (strcmp (d.s, pc->digest.s) != 0)
        return changed (pc, err);
    }
  return 0;
}

/* The block's tar bytes from its pieces into ubuf. */
static int
assemble (struct layer_patch *p, const struct lmap_block *blk, unsigned char *ubuf, struct kiln_error **err)
{
  uint64_t at = 0;
  for (size_t i = 0; i < blk->npieces; i++)
    {
      const struct lmap_piece *pc = &blk->pieces[i];
      if (at + pc->len > blk->u_len)
        return kiln_error_set (err, 0, KILN_E_INTERNAL, "patch layer: block pieces exceed the block");
      if (!pc->data || pc->kept)
        memcpy (ubuf + at, blk->raw.buf + pc->raw_off, pc->len);
      else if (read_piece (p, pc, ubuf + at, err) < 0)
        return -1;
      at += pc->len;
    }
  if (at != blk->u_len)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "patch layer: block pieces make %llu of %llu bytes",
                           (unsigned long long) at, (unsigned long long) blk->u_len);
  return 0;
}

static int
start (struct layer_patch *p, struct kiln_blob_writer *blob, struct kiln_error **err)
{
  if (p->started)
    return 0;
  p->started = true;
  return kiln_blob_writer_write (blob, kiln_gzip_header, KILN_GZIP_HEADER_LEN, err);
}

static void
account (struct layer_patch *p, const struct lmap_block *blk, const unsigned char *cbuf, size_t c_len, uint32_t crc,
         const struct kiln_sha256_mid *mid)
{
  p->crc = (uint32_t) crc32_combine (p->crc, crc, (z_off_t) blk->u_len);
  p->isize += blk->u_len;
  p->u_off += blk->u_len;
  kiln_layer_map_add (&p->made, blk->u_len, c_len, crc, crc32_gzip_refl (0, cbuf, c_len), blk->recipe, mid);
}

static int
put_block (struct layer_patch *p, struct kiln_blob_writer *blob, struct kiln_sha256 *tar_hash,
           const struct lmap_block *blk, const unsigned char *ubuf, const unsigned char *cbuf, size_t c_len,
           uint32_t crc, struct kiln_error **err)
{
  struct kiln_sha256_mid mid;
  bool has_mid = kiln_sha256_mid_get (tar_hash, &mid);
  if (start (p, blob, err) < 0)
    return -1;
  kiln_sha256_update (tar_hash, ubuf, blk->u_len);
  account (p, blk, cbuf, c_len, crc, has_mid ? &mid : NULL);
  return kiln_blob_writer_write (blob, cbuf, c_len, err);
}

/* Still in the prefix: the old block at this place, copied as it is; the
 * diffID is not hashed here (see resume).  0 when its bytes do not check
 * out (a damaged store): from here on every block is hashed. */
static int
prefix_block (struct layer_patch *p, struct patch_job *j, struct kiln_error **err)
{
  const struct lmap_entry *o = j->old;
  ssize_t n = o->c_len <= KILN_GZIP_BLOCK_OUT_CAP ? pread (p->old_fd, j->cbuf, o->c_len, (off_t) o->c_off) : -1;
  if (n < 0 || (uint64_t) n != o->c_len || crc32_gzip_refl (0, j->cbuf, o->c_len) != o->ccrc)
    {
      kiln_log_debug ("patch layer: the old block at %llu does not check out; hashing from here",
                      (unsigned long long) o->c_off);
      p->hashing = true;
      kiln_sha256_mid_set (p->tar_hash, &o->mid);
      return 0;
    }
  if (start (p, p->blob, err) < 0)
    return -1;
  p->reused++;
  account (p, &j->blk, j->cbuf, o->c_len, o->crc, &o->mid);
  return kiln_blob_writer_write (p->blob, j->cbuf, o->c_len, err) < 0 ? -1 : 1;
}

/* Whether blk is the old layer's block at the same place, with the whole
 * stream before it equal too; the old stream's last block never counts, so
 * the hash always has a block to resume at. */
static const struct lmap_entry *
same_place (struct layer_patch *p, const struct lmap_block *blk)
{
  size_t i = p->sub_n;
  if (!p->prefix || i + 1 >= p->old.n)
    return NULL;
  const struct lmap_entry *o = &p->old.v[i];
  if (o->u_len != blk->u_len || o->mid.len != p->sub_off || memcmp (o->recipe, blk->recipe, 32) != 0)
    return NULL;
  return o;
}

/* One job leaves: hashed and written, or made here when the old block was
 * not there or did not read back. */
static int
emit_job (struct layer_patch *p, struct patch_job *j, struct kiln_error **err)
{
  if (j->prefix && !p->hashing)
    {
      int r = prefix_block (p, j, err);
      if (r != 0)
        return r < 0 ? -1 : 0;
    }
  if (j->prefix)
    j->ok = read_old (p->old_fd, j->old, j->cbuf, j->ubuf);
  /* the bytes before are the old layer's: its hash state goes on here */
  if (j->resume && !p->hashing)
    kiln_sha256_mid_set (p->tar_hash, j->resume);
  if (j->ok)
    {
      p->reused++;
      return put_block (p, p->blob, p->tar_hash, &j->blk, j->ubuf, j->cbuf, j->old->c_len, j->old->crc, err);
    }
  if (j->old)
    kiln_log_debug ("patch layer: an old block at %llu does not read back; making it again",
                    (unsigned long long) j->old->c_off);
  if (assemble (p, &j->blk, j->ubuf, err) < 0)
    return -1;
  uint32_t crc;
  size_t c_len = kiln_gzip_block (p->level, j->ubuf, j->blk.u_len, j->cbuf, &crc);
  p->remade++;
  return put_block (p, p->blob, p->tar_hash, &j->blk, j->ubuf, j->cbuf, c_len, crc, err);
}

static void *
emitter (void *arg)
{
  struct layer_patch *p = arg;
  pthread_mutex_lock (&p->mu);
  for (;;)
    {
      struct patch_job *j = &p->jobs[p->collected % PATCH_SLOTS];
      if ((p->collected == p->submitted && p->eof) || p->failed)
        break;
      if (p->collected == p->submitted || !j->done)
        {
          pthread_cond_wait (&p->cv, &p->mu);
          continue;
        }
      pthread_mutex_unlock (&p->mu);
      struct kiln_error *e = NULL;
      int r = emit_job (p, j, &e);
      kiln_layer_map_block_clear (&j->blk);
      pthread_mutex_lock (&p->mu);
      j->done = j->claimed = false;
      p->collected++;
      pthread_cond_broadcast (&p->cv);
      if (r < 0)
        {
          p->failed = true;
          p->err = e;
          break;
        }
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

static int
failed (struct layer_patch *p, struct kiln_error **err)
{
  if (p->err == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "patch layer: the block writer stopped");
  *err = kiln_steal_ptr (&p->err);
  return -1;
}

/* Queues blk (taken over) behind the blocks still on their way; waits
 * while the ring is full. */
static int
submit (struct layer_patch *p, struct lmap_block *blk, struct kiln_error **err)
{
  if (!p->emitting)
    {
      if (pthread_create (&p->emitter, NULL, emitter, p) != 0)
        return kiln_error_set (err, errno, KILN_E_INTERNAL, "patch layer: start a thread");
      p->emitting = true;
    }
  pthread_mutex_lock (&p->mu);
  while (!p->failed && p->submitted - p->collected == PATCH_SLOTS)
    pthread_cond_wait (&p->cv, &p->mu);
  bool bad = p->failed;
  pthread_mutex_unlock (&p->mu);
  if (bad)
    return failed (p, err);
  /* the slot is ours: the emitter is done with it, no worker takes it */
  struct patch_job *j = &p->jobs[p->submitted % PATCH_SLOTS];
  if (j->ubuf == NULL)
    {
      j->ubuf = kiln_xmalloc (KILN_GZIP_BLOCK_MAX + 1);
      j->cbuf = kiln_xmalloc (KILN_GZIP_BLOCK_OUT_CAP);
    }
  j->blk = *blk;
  memset (blk, 0, sizeof *blk);
  j->old = same_place (p, &j->blk);
  j->prefix = j->old != NULL;
  j->resume = NULL;
  if (!j->prefix && p->prefix)
    {
      p->prefix = false;
      j->resume = p->sub_n > 0 ? &p->old.v[p->sub_n].mid : NULL;
    }
  if (!j->prefix)
    j->old = kiln_layer_map_find (&p->old, j->blk.recipe, j->blk.u_len);
  p->sub_n++;
  p->sub_off += j->blk.u_len;
  /* a prefix block is only copied; nothing to inflate, or no worker: done here */
  bool here = j->prefix || j->old == NULL || p->nworkers == 0;
  bool ok = here && !j->prefix && j->old && read_old (p->old_fd, j->old, j->cbuf, j->ubuf);
  pthread_mutex_lock (&p->mu);
  j->done = here;
  j->ok = ok;
  p->submitted++;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
  return 0;
}

int
kiln_layer_patch_block (struct layer_patch *p, struct lmap_block *blk, struct kiln_blob_writer *blob,
                        struct kiln_sha256 *tar_hash, struct kiln_error **err)
{
  /* the emitter's from its start on */
  if (!p->emitting)
    {
      p->blob = blob;
      p->tar_hash = tar_hash;
    }
  return submit (p, blk, err);
}

int
kiln_layer_patch_end (struct layer_patch *p, struct kiln_blob_writer *blob, struct kiln_sha256 *tar_hash,
                      struct lmap **map, struct kiln_error **err)
{
  (void) tar_hash;
  stop_workers (p, true);
  if (p->failed)
    return failed (p, err);
  if (start (p, blob, err) < 0)
    return -1;
  unsigned char end[KILN_GZIP_END_LEN];
  kiln_gzip_end (p->crc, p->isize, end);
  if (kiln_blob_writer_write (blob, end, sizeof end, err) < 0)
    return -1;
  kiln_log_debug ("patch layer: %llu blocks reused, %llu made", (unsigned long long) p->reused,
                  (unsigned long long) p->remade);
  *map = &p->made;
  return 0;
}

void
kiln_layer_patch_counts (const struct layer_patch *p, uint64_t *made, uint64_t *reused)
{
  *made = p->remade;
  *reused = p->reused;
}
