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

#define CS_MAGIC "KILNCSI1"
#define CS_VERSION 1u
/* a file changed this recently may change again within its timestamp granule */
#define RACY_NS (2LL * 1000000000LL)
/* a mapping larger than this drops its pages now and then: a walk reads it
 * once, front to back, and peak memory must not grow with the context */
#define CS_TRIM_BYTES (16u << 20)
#define CS_TRIM_EVERY 65536u

struct cs_header {
  char magic[8];
  uint32_t version, reclen;
  uint64_t count, strsize;
};

struct cs_rec {
  uint64_t path_off;
  uint32_t path_len, mode;
  uint64_t dev, ino, size;
  int64_t mtime_ns, ctime_ns;
  unsigned char sha[32];
};
_Static_assert (sizeof (struct cs_header) == 32, "header layout");
_Static_assert (sizeof (struct cs_rec) == 88, "record layout");

/* A digest learned by this build (drop: a racily clean file, whose old
 * record goes and whose new one is not kept). */
struct update {
  char *path;
  struct cs_rec r;
  bool drop;
};

struct kiln_ctxsum {
  struct kiln_store *st;
  char *name;                /* hex of the context path's sha256 */
  void *map;
  size_t maplen;
  const struct cs_rec *recs;
  uint64_t count;
  const char *paths;
  uint64_t strsize;
  uint64_t cursor;           /* where the next lookup of a walk usually is */
  size_t lookups;
  struct update *up;
  size_t nup, capup;
  size_t *slots;             /* open addressing over up: index + 1, 0 empty */
  size_t nslots;
  bool dirty;
  int64_t now_ns;
};

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
      cs->dirty = true;   /* rewritten at the save */
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
  kiln_digest_of (context_abs, strlen (context_abs), &id);
  cs->st = st;
  cs->name = kiln_xstrdup (kiln_digest_hex (&id));
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
static const char *
rec_path (const struct kiln_ctxsum *cs, uint64_t i)
{
  const struct cs_rec *r = &cs->recs[i];
  if (r->path_off >= cs->strsize || r->path_len >= cs->strsize - r->path_off || cs->paths[r->path_off + r->path_len])
    return NULL;
  return cs->paths + r->path_off;
}

static int
cmp_at (const struct kiln_ctxsum *cs, uint64_t i, const char *rel)
{
  const char *p = rec_path (cs, i);
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
  size_t h = 1469598103934665603ULL;   /* FNV-1a */
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
  const struct update *u = find_update (cs, rel);
  const struct cs_rec *r = u ? (u->drop ? NULL : &u->r) : find_mapped (cs, rel);
  trim_mapping (cs);
  if (!r || !same_stat (r, st))
    return false;
  kiln_digest_from_raw (r->sha, d);
  return true;
}

void
kiln_ctxsum_update (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, const struct kiln_digest *d)
{
  struct update *u = find_update (cs, rel);
  cs->dirty = true;
  if (!u)
    {
      if (cs->nup == cs->capup)
        {
          cs->capup = cs->capup ? 2 * cs->capup : 256;
          cs->up = kiln_xrealloc (cs->up, cs->capup * sizeof *cs->up);
        }
      u = &cs->up[cs->nup++];
      u->path = kiln_xstrdup (rel);
      if (2 * cs->nup > cs->nslots)
        grow_slots (cs);
      else
        insert_slot (cs, cs->nup - 1);
    }
  rec_of_stat (st, d, &u->r);
  u->drop = u->r.mtime_ns + RACY_NS > cs->now_ns || u->r.ctime_ns + RACY_NS > cs->now_ns;
}

/* ---- saving: merge the mapped records and the updates ---- */

static int
compare_update (const void *a, const void *b)
{
  return kiln_treesum_path_cmp (((const struct update *) a)->path, ((const struct update *) b)->path);
}

struct cs_out {
  FILE *f;
  EVP_MD_CTX *md;
  bool failed;
};

static void
out_write (struct cs_out *o, const void *p, size_t n)
{
  if (o->failed || n == 0)
    return;
  o->failed = fwrite (p, n, 1, o->f) != 1 || EVP_DigestUpdate (o->md, p, n) != 1;
}

/* One pass of the merge in path order: each kept record's path and record
 * (NULL path: a damaged mapped record, skipped) go to emit. */
static void
merge (struct kiln_ctxsum *cs, void (*emit) (void *ud, const char *path, const struct cs_rec *r), void *ud)
{
  uint64_t i = 0;
  size_t k = 0;
  while (i < cs->count || k < cs->nup)
    {
      const char *mp = i < cs->count ? rec_path (cs, i) : NULL;
      if (i < cs->count && !mp)
        {
          i++;
          continue;
        }
      int c = i == cs->count ? 1 : k == cs->nup ? -1 : kiln_treesum_path_cmp (mp, cs->up[k].path);
      if (c < 0)
        emit (ud, mp, &cs->recs[i++]);
      else
        {
          if (!cs->up[k].drop)
            emit (ud, cs->up[k].path, &cs->up[k].r);
          i += c == 0;
          k++;
        }
    }
}

struct cs_count {
  uint64_t count, strsize;
};

static void
emit_count (void *ud, const char *path, const struct cs_rec *r)
{
  struct cs_count *c = ud;
  (void) r;
  c->count++;
  c->strsize += strlen (path) + 1;
}

struct cs_emit {
  struct cs_out *o;
  uint64_t off;
};

static void
emit_rec (void *ud, const char *path, const struct cs_rec *r)
{
  struct cs_emit *e = ud;
  struct cs_rec w = *r;
  w.path_off = e->off;
  w.path_len = (uint32_t) strlen (path);
  e->off += w.path_len + 1;
  out_write (e->o, &w, sizeof w);
}

static void
emit_path (void *ud, const char *path, const struct cs_rec *r)
{
  struct cs_emit *e = ud;
  (void) r;
  out_write (e->o, path, strlen (path) + 1);
}

static int
write_index (struct kiln_ctxsum *cs, int fd, struct kiln_error **err)
{
  struct cs_count n = { 0 };
  merge (cs, emit_count, &n);
  struct cs_header h = { .version = CS_VERSION, .reclen = sizeof (struct cs_rec), .count = n.count,
                         .strsize = n.strsize };
  memcpy (h.magic, CS_MAGIC, 8);
  struct cs_out o = { .f = fdopen (fd, "w"), .md = EVP_MD_CTX_new () };
  if (!o.f || !o.md || EVP_DigestInit_ex (o.md, EVP_sha256 (), NULL) != 1)
    o.failed = true;
  else
    setvbuf (o.f, NULL, _IOFBF, 1 << 16);
  struct cs_emit e = { .o = &o };
  out_write (&o, &h, sizeof h);
  merge (cs, emit_rec, &e);
  merge (cs, emit_path, &e);
  unsigned char md[32];
  unsigned int mdlen = 0;
  if (!o.failed && EVP_DigestFinal_ex (o.md, md, &mdlen) == 1 && mdlen == 32)
    o.failed = fwrite (md, 32, 1, o.f) != 1;
  else
    o.failed = true;
  int saved = errno;
  if (o.f ? fclose (o.f) != 0 : (close (fd), true))
    o.failed = true;
  EVP_MD_CTX_free (o.md);
  return o.failed ? kiln_error_set (err, saved, KILN_E_IO, "write the context checksum cache") : 0;
}

int
kiln_ctxsum_save (struct kiln_ctxsum *cs, struct kiln_error **err)
{
  if (!cs->dirty)
    return 0;
  /* sorted for the merge; the hash slots are not used after this */
  qsort (cs->up, cs->nup, sizeof *cs->up, compare_update);
  free (cs->slots);
  cs->slots = NULL;
  cs->nslots = 0;
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (cs->st), "cache/ctxsum", 0755, err);
  if (dfd < 0)
    return kiln_error_wrap (err, "save the context checksum cache");
  kiln_autofree char *name = kiln_xasprintf ("%s.idx", cs->name);
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s-%d", name, (int) getpid ());
  int fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "save the context checksum cache: create `cache/ctxsum/%s`", tmp);
  if (write_index (cs, fd, err) < 0 || renameat (dfd, tmp, dfd, name) < 0)
    {
      int saved = errno;
      unlinkat (dfd, tmp, 0);
      return *err ? kiln_error_wrap (err, "save the context checksum cache")
                  : kiln_error_set (err, saved, KILN_E_IO, "save the context checksum cache");
    }
  /* the JSON file earlier versions kept is not read any more */
  kiln_autofree char *old = kiln_xasprintf ("%s.json", cs->name);
  unlinkat (dfd, old, 0);
  cs->dirty = false;
  return 0;
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
  free (cs->up);
  free (cs->slots);
  free (cs->name);
  free (cs);
}
