/* ctxsum_save.c - writing the next checksum index: the mapped records, the
 * sorted runs of earlier updates and the updates in memory merged in path
 * order (a heap over the sources, the newest value of a path winning, a
 * dropped one left out), written with its sha256 trailer to a temp file
 * renamed over the old one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "ctxsum-internal.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/treesum.h"
#include "kiln/util.h"

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

/* ---- the merge: mapped records, runs and memory, in path order ----
 *
 * Each source yields its items sorted; on equal paths the newest source
 * wins (memory, then the runs from the newest, then the mapped file) and
 * the others' items are skipped.  A binary heap keeps the sources ordered:
 * a million-file cold build may have written a dozen runs. */

struct cs_src {
  int rank;         /* higher wins on equal paths */
  const char *path; /* the current item; NULL: no more */
  struct cs_rec rec;
  bool drop;
  const struct kiln_ctxsum *cs; /* the mapped file, from record i */
  uint64_t i;
  const struct update *up; /* memory: up[k..n) */
  size_t k, n;
  FILE *f; /* a run */
  char *buf;
  size_t cap;
  bool bad; /* a run that could not be read back */
};

static bool
read_run_item (struct cs_src *s)
{
  uint32_t len;
  uint8_t drop;
  if (fread (&len, sizeof len, 1, s->f) != 1)
    return s->bad = ferror (s->f) != 0, false;
  if (len + 1 > s->cap)
    {
      s->cap = len + 64;
      s->buf = kiln_xrealloc (s->buf, s->cap);
    }
  if (fread (s->buf, 1, len, s->f) != len || fread (&s->rec, sizeof s->rec, 1, s->f) != 1
      || fread (&drop, 1, 1, s->f) != 1)
    return s->bad = true, false;
  s->buf[len] = '\0';
  s->path = s->buf;
  s->drop = drop != 0;
  return true;
}

static void
src_next (struct cs_src *s)
{
  s->path = NULL;
  if (s->f)
    read_run_item (s);
  else if (s->up)
    {
      if (s->k < s->n)
        {
          s->path = s->up[s->k].path, s->rec = s->up[s->k].r, s->drop = s->up[s->k].drop;
          s->k++;
        }
    }
  else
    while (s->i < s->cs->count && !s->path)
      {
        /* a save reads the whole mapping three times: its pages go as it
         * passes, as a walk's do */
        if (s->i % CS_TRIM_EVERY == 0 && s->cs->maplen > CS_TRIM_BYTES)
          madvise (s->cs->map, s->cs->maplen, MADV_DONTNEED);
        /* a damaged record (path out of bounds) is skipped */
        if ((s->path = kiln_ctxsum_rec_path (s->cs, s->i)))
          s->rec = s->cs->recs[s->i], s->drop = false;
        s->i++;
      }
}

static bool
src_before (const struct cs_src *a, const struct cs_src *b)
{
  int c = kiln_treesum_path_cmp (a->path, b->path);
  return c < 0 || (c == 0 && a->rank > b->rank);
}

static void
sift_down (struct cs_src **h, size_t n, size_t i)
{
  for (;;)
    {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < n && src_before (h[l], h[m]))
        m = l;
      if (r < n && src_before (h[r], h[m]))
        m = r;
      if (m == i)
        return;
      struct cs_src *t = h[i];
      h[i] = h[m], h[m] = t;
      i = m;
    }
}

/* Advances the heap's first source and restores the order; the new size. */
static size_t
heap_advance (struct cs_src **h, size_t n)
{
  src_next (h[0]);
  if (!h[0]->path)
    h[0] = h[--n];
  sift_down (h, n, 0);
  return n;
}

/* One pass of the merge in path order: each kept item's path and record
 * go to emit.  False when a run could not be read back. */
static bool
merge (struct kiln_ctxsum *cs, void (*emit) (void *ud, const char *path, const struct cs_rec *r), void *ud)
{
  size_t ns = cs->nruns + 2, n = 0;
  kiln_autofree struct cs_src *s = kiln_xcalloc (ns, sizeof *s);
  kiln_autofree struct cs_src **h = kiln_xcalloc (ns, sizeof *h);
  kiln_autofree char *last = NULL;
  size_t lastcap = 0;
  bool ok = true;
  s[0] = (struct cs_src){ .rank = 0, .cs = cs };
  for (size_t r = 0; r < cs->nruns; r++)
    {
      s[r + 1] = (struct cs_src){ .rank = (int) r + 1, .f = cs->runs[r] };
      ok = ok && fseek (cs->runs[r], 0, SEEK_SET) == 0;
    }
  s[ns - 1] = (struct cs_src){ .rank = (int) ns, .up = cs->up, .n = cs->nup };
  for (size_t i = 0; i < ns; i++)
    if (src_next (&s[i]), s[i].path)
      h[n++] = &s[i];
  for (size_t i = n / 2; i-- > 0;)
    sift_down (h, n, i);
  while (n > 0)
    {
      size_t len = strlen (h[0]->path);
      if (len + 1 > lastcap)
        last = kiln_xrealloc (last, lastcap = len + 64);
      memcpy (last, h[0]->path, len + 1);
      if (!h[0]->drop)
        emit (ud, last, &h[0]->rec);
      do
        n = heap_advance (h, n);
      while (n > 0 && strcmp (h[0]->path, last) == 0);
    }
  for (size_t i = 0; i < ns; i++)
    {
      ok = ok && !s[i].bad;
      free (s[i].buf);
    }
  return ok;
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
  if (!merge (cs, emit_count, &n))
    {
      close (fd);
      return kiln_error_set (err, EIO, KILN_E_IO, "read back the checksums this build set aside");
    }
  struct cs_header h = {
    .version = CS_VERSION, .reclen = sizeof (struct cs_rec), .count = n.count, .strsize = n.strsize
  };
  memcpy (h.magic, CS_MAGIC, 8);
  struct cs_out o = { .f = fdopen (fd, "w"), .md = EVP_MD_CTX_new () };
  if (!o.f || !o.md || EVP_DigestInit_ex (o.md, EVP_sha256 (), NULL) != 1)
    o.failed = true;
  else
    setvbuf (o.f, NULL, _IOFBF, 1 << 16);
  struct cs_emit e = { .o = &o };
  out_write (&o, &h, sizeof h);
  if (!merge (cs, emit_rec, &e) || !merge (cs, emit_path, &e))
    o.failed = true;
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
  qsort (cs->up, cs->nup, sizeof *cs->up, kiln_ctxsum_compare_update);
  free (cs->slots);
  cs->slots = NULL;
  cs->nslots = 0;
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (cs->st), "cache/ctxsum", 0755, err);
  if (dfd < 0)
    return kiln_error_wrap (err, "save the context checksum cache");
  kiln_autofree char *name = kiln_xasprintf ("%s.idx", cs->name);
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s-%d", name, (int) gettid ());
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
