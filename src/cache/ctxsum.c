/* ctxsum.c - the context checksum cache: a sorted binary index per context,
 * mapped for lookups, rewritten by merge when a build learned new digests.
 *
 * File layout (native byte order: the file never leaves its store):
 *   header   "KILNCSI1", u32 version, u32 record size, u64 count, u64 bytes of paths
 *   records  count x struct cs_rec, sorted by path in tree order
 *   paths    each path NUL-terminated, at its record's offset
 *   trailer  sha256 of everything before it (32 bytes)
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "kiln/cleanup.h"
#include "kiln/ctxsum.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/treesum.h"
#include "kiln/util.h"

#include "ctxsum-internal.h"

static int64_t
ns_of (const struct timespec *t)
{
  return (int64_t) t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void
rec_of_stat (const struct stat *st, const struct kiln_digest *d, struct cs_rec *r)
{
  memset (r, 0, sizeof *r);
  r->mode = (uint32_t) st->st_mode;
  r->dev = (uint64_t) st->st_dev;
  r->ino = (uint64_t) st->st_ino;
  r->size = (uint64_t) st->st_size;
  r->mtime_ns = ns_of (&st->st_mtim);
  r->ctime_ns = ns_of (&st->st_ctim);
  if (d)
    kiln_digest_raw (d, r->sha);
}

static bool
same_stat (const struct cs_rec *r, const struct stat *st)
{
  struct cs_rec now;
  rec_of_stat (st, NULL, &now);
  return r->mode == now.mode && r->dev == now.dev && r->ino == now.ino && r->size == now.size
         && r->mtime_ns == now.mtime_ns && r->ctime_ns == now.ctime_ns;
}

/* ---- opening: verify, then map ---- */

static bool
hash_file (int fd, uint64_t len, unsigned char md[32])
{
  kiln_autofree unsigned char *buf = kiln_xmalloc (1 << 20);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  bool ok = ctx && EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) == 1;
  for (uint64_t off = 0; ok && off < len;)
    {
      size_t want = len - off < (1 << 20) ? (size_t) (len - off) : (1 << 20);
      ssize_t n = pread (fd, buf, want, (off_t) off);
      ok = n > 0 && EVP_DigestUpdate (ctx, buf, (size_t) n) == 1;
      off += n > 0 ? (uint64_t) n : 0;
    }
  unsigned int mdlen = 0;
  ok = ok && EVP_DigestFinal_ex (ctx, md, &mdlen) == 1 && mdlen == 32;
  EVP_MD_CTX_free (ctx);
  return ok;
}

/* NULL when the file is whole and consistent, else what is wrong. */
static const char *
check_file (int fd, uint64_t size, struct cs_header *h)
{
  unsigned char md[32], trailer[32];
  if (size < sizeof *h + 32 || pread (fd, h, sizeof *h, 0) != (ssize_t) sizeof *h)
    return "too short";
  if (memcmp (h->magic, CS_MAGIC, 8) != 0 || h->version != CS_VERSION || h->reclen != sizeof (struct cs_rec))
    return "not a kiln checksum index of this version";
  if (h->count > (size - sizeof *h) / sizeof (struct cs_rec)
      || sizeof *h + h->count * sizeof (struct cs_rec) + h->strsize + 32 != size)
    return "sizes do not add up";
  if (pread (fd, trailer, 32, (off_t) (size - 32)) != 32 || !hash_file (fd, size - 32, md)
      || memcmp (md, trailer, 32) != 0)
    return "checksum mismatch";
  return NULL;
}

static void
map_file (struct kiln_ctxsum *cs, int fd, const char *rel)
{
  struct stat sb;
  struct cs_header h;
  if (fstat (fd, &sb) < 0)
    return;
  const char *bad = check_file (fd, (uint64_t) sb.st_size, &h);
  if (bad)
    {
      kiln_log_warn ("context checksum cache `%s` is damaged (%s): ignored, files are hashed again", rel, bad);
      cs->dirty = true; /* rewritten at the save */
      return;
    }
  void *m = mmap (NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED)
    return;
  cs->map = m;
  cs->maplen = (size_t) sb.st_size;
  cs->recs = (const struct cs_rec *) ((const char *) m + sizeof h);
  cs->count = h.count;
  cs->paths = (const char *) (cs->recs + h.count);
  cs->strsize = h.strsize;
}

int
kiln_ctxsum_open (struct kiln_store *st, const char *context_abs, struct kiln_ctxsum **out, struct kiln_error **err)
{
  struct kiln_digest id;
  struct timespec now;
  struct kiln_ctxsum *cs = kiln_xcalloc (1, sizeof *cs);
  pthread_mutex_init (&cs->mu, NULL);
  kiln_digest_of (context_abs, strlen (context_abs), &id);
  cs->st = st;
  cs->name = kiln_xstrdup (kiln_digest_hex (&id));
  cs->spill_bytes = CS_SPILL_BYTES;
  clock_gettime (CLOCK_REALTIME, &now);
  cs->now_ns = ns_of (&now);
  kiln_autofree char *rel = kiln_xasprintf ("cache/ctxsum/%s.idx", cs->name);
  kiln_autoerror struct kiln_error *e = NULL;
  /* a missing or unreadable checksum cache only costs hashing again */
  kiln_autoclose int fd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY, 0, &e);
  if (fd >= 0)
    map_file (cs, fd, rel);
  *out = cs;
  (void) err;
  return 0;
}

/* ---- lookups ---- */

/* The path of record i, or NULL when its offsets are out of bounds. */
const char *
kiln_ctxsum_rec_path (const struct kiln_ctxsum *cs, uint64_t i)
{
  const struct cs_rec *r = &cs->recs[i];
  if (r->path_off >= cs->strsize || r->path_len >= cs->strsize - r->path_off || cs->paths[r->path_off + r->path_len])
    return NULL;
  return cs->paths + r->path_off;
}

static int
cmp_at (const struct kiln_ctxsum *cs, uint64_t i, const char *rel)
{
  const char *p = kiln_ctxsum_rec_path (cs, i);
  return p ? kiln_treesum_path_cmp (p, rel) : -2;
}

/* The record of rel in the mapped file, or NULL. */
static const struct cs_rec *
find_mapped (struct kiln_ctxsum *cs, const char *rel)
{
  uint64_t lo = 0, hi = cs->count;
  /* a walk asks in the file's order: the next record is usually it */
  for (uint64_t i = cs->cursor; i < cs->count && i < cs->cursor + 2; i++)
    if (cmp_at (cs, i, rel) == 0)
      {
        cs->cursor = i + 1;
        return &cs->recs[i];
      }
  while (lo < hi)
    {
      uint64_t mid = lo + (hi - lo) / 2;
      int c = cmp_at (cs, mid, rel);
      if (c == -2)
        return NULL;
      if (c == 0)
        {
          cs->cursor = mid + 1;
          return &cs->recs[mid];
        }
      if (c < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return NULL;
}

static size_t
path_hash (const char *s)
{
  size_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

static struct update *
find_update (struct kiln_ctxsum *cs, const char *rel)
{
  if (cs->nslots == 0)
    return NULL;
  for (size_t i = path_hash (rel) & (cs->nslots - 1);; i = (i + 1) & (cs->nslots - 1))
    {
      if (cs->slots[i] == 0)
        return NULL;
      if (strcmp (cs->up[cs->slots[i] - 1].path, rel) == 0)
        return &cs->up[cs->slots[i] - 1];
    }
}

static void
insert_slot (struct kiln_ctxsum *cs, size_t idx)
{
  size_t i = path_hash (cs->up[idx].path) & (cs->nslots - 1);
  while (cs->slots[i])
    i = (i + 1) & (cs->nslots - 1);
  cs->slots[i] = idx + 1;
}

static void
grow_slots (struct kiln_ctxsum *cs)
{
  free (cs->slots);
  cs->nslots = cs->nslots ? cs->nslots * 2 : 1024;
  cs->slots = kiln_xcalloc (cs->nslots, sizeof *cs->slots);
  for (size_t i = 0; i < cs->nup; i++)
    insert_slot (cs, i);
}

static void
trim_mapping (struct kiln_ctxsum *cs)
{
  if (cs->map && cs->maplen > CS_TRIM_BYTES && ++cs->lookups % CS_TRIM_EVERY == 0)
    madvise (cs->map, cs->maplen, MADV_DONTNEED);
}

bool
kiln_ctxsum_lookup (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, struct kiln_digest *d)
{
  pthread_mutex_lock (&cs->mu);
  const struct update *u = find_update (cs, rel);
  const struct cs_rec *r = u ? (u->drop ? NULL : &u->r) : find_mapped (cs, rel);
  bool found = r && same_stat (r, st);
  if (found)
    kiln_digest_from_raw (r->sha, d);
  trim_mapping (cs);
  pthread_mutex_unlock (&cs->mu);
  return found;
}

static void spill (struct kiln_ctxsum *cs);

static void update_locked (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, const struct kiln_digest *d);

void
kiln_ctxsum_update (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, const struct kiln_digest *d)
{
  pthread_mutex_lock (&cs->mu);
  update_locked (cs, rel, st, d);
  pthread_mutex_unlock (&cs->mu);
}

static void
update_locked (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, const struct kiln_digest *d)
{
  struct update *u = find_update (cs, rel);
  cs->dirty = true;
  if (!u && cs->upbytes >= cs->spill_bytes)
    spill (cs);
  if (!u)
    {
      if (cs->nup == cs->capup)
        {
          cs->capup = cs->capup ? 2 * cs->capup : 256;
          cs->up = kiln_xrealloc (cs->up, cs->capup * sizeof *cs->up);
        }
      u = &cs->up[cs->nup++];
      u->path = kiln_xstrdup (rel);
      cs->upbytes += sizeof *u + 2 * sizeof *cs->slots + strlen (rel) + 17;
      if (2 * cs->nup > cs->nslots)
        grow_slots (cs);
      else
        insert_slot (cs, cs->nup - 1);
    }
  rec_of_stat (st, d, &u->r);
  u->drop = u->r.mtime_ns + RACY_NS > cs->now_ns || u->r.ctime_ns + RACY_NS > cs->now_ns;
}

/* ---- updates kept for the save: sorted runs past CS_SPILL_BYTES ---- */

int
kiln_ctxsum_compare_update (const void *a, const void *b)
{
  return kiln_treesum_path_cmp (((const struct update *) a)->path, ((const struct update *) b)->path);
}

static void
reslot (struct kiln_ctxsum *cs)
{
  memset (cs->slots, 0, cs->nslots * sizeof *cs->slots);
  for (size_t i = 0; i < cs->nup; i++)
    insert_slot (cs, i);
}

static bool
write_run (FILE *f, const struct update *up, size_t n)
{
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++)
    {
      uint32_t len = (uint32_t) strlen (up[i].path);
      uint8_t drop = up[i].drop;
      ok = fwrite (&len, sizeof len, 1, f) == 1 && fwrite (up[i].path, 1, len, f) == len
           && fwrite (&up[i].r, sizeof up[i].r, 1, f) == 1 && fwrite (&drop, 1, 1, f) == 1;
    }
  return ok && fflush (f) == 0;
}

/* The updates in memory go, sorted, to an unnamed file beside the index
 * (a run, merged at the save).  A lookup no longer sees them: a file they
 * name is hashed again if asked for twice, which a build seldom does.  When
 * the run cannot be written they stay in memory. */
static void
spill (struct kiln_ctxsum *cs)
{
  kiln_autoerror struct kiln_error *e = NULL;
  int fd = kiln_fs_tmpfile_beneath (kiln_store_dirfd (cs->st), "cache/ctxsum", 0600, &e);
  FILE *f = fd >= 0 ? fdopen (fd, "w+") : NULL;
  qsort (cs->up, cs->nup, sizeof *cs->up, kiln_ctxsum_compare_update);
  if (!f || !write_run (f, cs->up, cs->nup))
    {
      if (f)
        fclose (f);
      else if (fd >= 0)
        close (fd);
      reslot (cs);
      cs->spill_bytes *= 2; /* try again later, not at every update */
      return;
    }
  cs->runs = kiln_xrealloc (cs->runs, (cs->nruns + 1) * sizeof *cs->runs);
  cs->runs[cs->nruns++] = f;
  for (size_t i = 0; i < cs->nup; i++)
    free (cs->up[i].path);
  cs->nup = 0;
  cs->upbytes = 0;
  reslot (cs);
}

void
kiln_ctxsum_set_spill (struct kiln_ctxsum *cs, size_t bytes)
{
  cs->spill_bytes = bytes;
}

void
kiln_ctxsum_free (struct kiln_ctxsum *cs)
{
  if (!cs)
    return;
  if (cs->map)
    munmap (cs->map, cs->maplen);
  for (size_t i = 0; i < cs->nup; i++)
    free (cs->up[i].path);
  for (size_t i = 0; i < cs->nruns; i++)
    fclose (cs->runs[i]);
  free (cs->runs);
  free (cs->up);
  free (cs->slots);
  free (cs->name);
  pthread_mutex_destroy (&cs->mu);
  free (cs);
}
