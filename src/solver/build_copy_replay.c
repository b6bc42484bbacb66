/* build_copy_replay.c - the key walk's entries kept for the layer.
 *
 * A rebuild walks a streamed source twice when it misses: key mode folds
 * the tree into its digest (to look the step up), then streaming walks it
 * again to write the layer.  The second walk costs what the first did (a
 * stat per file, most of a no-change rebuild's time), so key mode keeps
 * what it folded, compactly: each entry's path as the length it shares
 * with the previous one plus the rest, and its numbers as varints (52
 * bytes a file in the generated 100k-file tree).  Streaming then takes the
 * entries from here.  Past KILN_BUILD_COPY_REPLAY_MAX the record is dropped
 * and streaming walks again, so memory stays bounded at any tree size.
 * Content digests are not kept: the checksum index answers for them from
 * the kept stat. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "build_copy-internal.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/util.h"

#define KILN_BUILD_COPY_REPLAY_MAX (16u << 20)

enum { REC_LINK = 1, REC_DATA = 2 };

struct kiln_build_copy_replay {
  struct kiln_buf b;
  size_t max; /* the budget (KILN_COPY_REPLAY_MAX sets a smaller one, for the tests) */
  size_t n;
  char *last; /* the previous entry's src */
  size_t lastlen, lastcap;
  bool over; /* past the budget: dropped */
};

/* Writes v as a varint at p (at most 10 bytes); returns the end. */
static unsigned char *
put_uv (unsigned char *p, uint64_t v)
{
  while (v > 0x7f)
    {
      *p++ = (unsigned char) ((v & 0x7f) | 0x80);
      v >>= 7;
    }
  *p++ = (unsigned char) v;
  return p;
}

/* Signed values (times) zigzag-encoded, so small negatives stay short. */
static unsigned char *
put_sv (unsigned char *p, int64_t v)
{
  return put_uv (p, ((uint64_t) v << 1) ^ (uint64_t) (v >> 63));
}

static uint64_t
get_uv (const unsigned char **p)
{
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7)
    {
      unsigned char c = *(*p)++;
      v |= (uint64_t) (c & 0x7f) << shift;
      if (!(c & 0x80) || shift >= 63)
        return v;
    }
}

static int64_t
get_sv (const unsigned char **p)
{
  uint64_t u = get_uv (p);
  return (int64_t) (u >> 1) ^ -(int64_t) (u & 1);
}

struct kiln_build_copy_replay *
kiln_build_copy_replay_new (void)
{
  struct kiln_build_copy_replay *r = kiln_xcalloc (1, sizeof *r);
  const char *env = getenv ("KILN_COPY_REPLAY_MAX");
  char *end;
  kiln_buf_init (&r->b, 0);
  r->max = KILN_BUILD_COPY_REPLAY_MAX;
  errno = 0;
  unsigned long long v = env ? strtoull (env, &end, 10) : 0;
  if (env && *env && !*end && errno == 0 && v < r->max)
    r->max = (size_t) v;
  return r;
}

void
kiln_build_copy_replay_free (struct kiln_build_copy_replay *r)
{
  if (!r)
    return;
  kiln_buf_release (&r->b);
  free (r->last);
  free (r);
}

static void
drop (struct kiln_build_copy_replay *r)
{
  kiln_log_debug ("the key's walk kept %zu entries, the budget of %zu bytes: the layer's walk reads again", r->n,
                  r->max);
  kiln_buf_release (&r->b);
  r->over = true;
}

/* Keeps one folded entry, in walk order.  Written straight into the
 * buffer's room (one grow per entry, not one append per field): a no-change
 * rebuild notes every entry of the tree and then does not need them. */
void
kiln_build_copy_replay_note (struct kiln_build_copy_replay *r, const struct centry *c)
{
  if (r->over)
    return;
  size_t len = strlen (c->src), same = 0, linklen = c->link ? strlen (c->link) : 0;
  while (same < len && same < r->lastlen && c->src[same] == r->last[same])
    same++;
  /* 2 + 15 varints of at most 10 bytes, the flags, the path's new part, the link */
  kiln_buf_grow (&r->b, 18 * 10 + 1 + (len - same) + linklen);
  unsigned char *start = (unsigned char *) r->b.buf + r->b.len, *p = start;
  p = put_uv (p, same);
  p = put_uv (p, len - same);
  memcpy (p, c->src + same, len - same);
  p += len - same;
  *p++ = (unsigned char) ((c->link ? REC_LINK : 0) | (c->data ? REC_DATA : 0));
  p = put_uv (p, c->mode), p = put_uv (p, c->uid), p = put_uv (p, c->gid), p = put_uv (p, c->rdev);
  p = put_uv (p, c->size), p = put_sv (p, c->mtime);
  p = put_uv (p, c->st.st_dev), p = put_uv (p, c->st.st_ino), p = put_uv (p, c->st.st_nlink);
  p = put_uv (p, (uint64_t) c->st.st_size), p = put_uv (p, c->st.st_mode);
  p = put_sv (p, c->st.st_mtim.tv_sec), p = put_uv (p, (uint64_t) c->st.st_mtim.tv_nsec);
  p = put_sv (p, c->st.st_ctim.tv_sec), p = put_uv (p, (uint64_t) c->st.st_ctim.tv_nsec);
  if (c->link)
    {
      p = put_uv (p, linklen);
      memcpy (p, c->link, linklen);
      p += linklen;
    }
  kiln_buf_setlen (&r->b, r->b.len + (size_t) (p - start));
  if (r->b.len > r->max)
    return drop (r);
  r->n++;
  if (len + 1 > r->lastcap)
    r->last = kiln_xrealloc (r->last, r->lastcap = 2 * len + 64);
  memcpy (r->last, c->src, len + 1);
  r->lastlen = len;
}

/* Whether the record holds every entry the walk folded. */
bool
kiln_build_copy_replay_complete (const struct kiln_build_copy_replay *r)
{
  return r && !r->over;
}

static void
read_entry (struct copy_job *j, const unsigned char **p, char **src, size_t *cap, size_t tree)
{
  size_t same = get_uv (p), rest = get_uv (p);
  if (same + rest + 1 > *cap)
    *src = kiln_xrealloc (*src, *cap = 2 * (same + rest) + 64);
  memcpy (*src + same, *p, rest);
  (*src)[same + rest] = '\0';
  *p += rest;
  struct centry *c = kiln_build_copy_add_entry (j, *src + tree);
  unsigned flags = *(*p)++;
  c->rootfd = j->rootfd;
  c->src = kiln_xstrdup (*src);
  c->ctx = j->from_context;
  c->origin = j->origin;
  c->mode = (mode_t) get_uv (p), c->uid = (uid_t) get_uv (p), c->gid = (gid_t) get_uv (p);
  c->rdev = (dev_t) get_uv (p), c->size = get_uv (p), c->mtime = get_sv (p);
  c->st.st_dev = (dev_t) get_uv (p), c->st.st_ino = (ino_t) get_uv (p), c->st.st_nlink = (nlink_t) get_uv (p);
  c->st.st_size = (off_t) get_uv (p), c->st.st_mode = (mode_t) get_uv (p);
  c->st.st_mtim.tv_sec = get_sv (p), c->st.st_mtim.tv_nsec = (long) get_uv (p);
  c->st.st_ctim.tv_sec = get_sv (p), c->st.st_ctim.tv_nsec = (long) get_uv (p);
  if (flags & REC_DATA)
    c->data = kiln_xstrdup ("");
  if (flags & REC_LINK)
    {
      size_t n = get_uv (p);
      c->link = kiln_xstrndup ((const char *) *p, n);
      *p += n;
    }
}

/* The kept entries of the directory source src, as its walk would add
 * them (the caller flushes the last). */
void
kiln_build_copy_replay_run (struct copy_job *j, const struct kiln_build_copy_replay *r, const char *src)
{
  const unsigned char *p = (const unsigned char *) r->b.buf, *end = p + r->b.len;
  size_t tree = strlen (src), cap = 0;
  kiln_autofree char *path = NULL;
  tree += tree > 0; /* the entries' paths below the source, as the walk's rel */
  kiln_log_debug ("%s: %zu entries taken from the key's walk (%zu bytes)", j->in->original, r->n, r->b.len);
  while (p < end && !kiln_build_copy_stream_failed (j))
    read_entry (j, &p, &path, &cap, tree);
}
