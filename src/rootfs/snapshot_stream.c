/* snapshot_stream.c - a snapshot extracted from a layer's tar while the
 * layer downloads: the pull hands every piece it has verified-so-far (and
 * decompressed) to kiln_snapshot_stream_write; an extractor thread reads the
 * pieces out of a ring buffer into the hardened extractor, so the layer is
 * read from the network once and never from the store.  The snapshot is
 * committed only after the pull verified the whole blob (digest, size,
 * diffID): until then it is a flock()ed temp dir that a failure removes.
 *
 * Why a thread and a ring (kiln/ring.h): the download is pushed by libcurl,
 * libarchive pulls; the ring (RING bytes, fixed) is what keeps memory
 * bounded whatever the layer's size, and makes a slow disk slow the download
 * down instead of buffering it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/log.h"
#include "kiln/ring.h"
#include "kiln/snapshot.h"
#include "kiln/toc.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

#define RING (2u << 20)
/* the most the extractor takes at once, so the writer can refill behind it */
#define PIECE (512u * 1024)

struct kiln_snapshot_stream {
  struct kiln_store *st;
  char **diff_ids; /* the chain up to this layer */
  size_t n;
  char *name; /* the layer's digest, for messages */
  bool decompressed;
  struct kiln_snapshot_tmp *tmp;
  int dfd;
  bool want_toc;
  struct kiln_digest diff_id;
  struct kiln_toc_rec rec;
  struct kiln_ring *ring;
  pthread_t th;
  int result; /* the extractor's */
  struct kiln_error *err;
};

/* The extractor's read function: the next piece of the ring. */
static ssize_t
ring_read (void *opaque, const void **out, struct kiln_error **err)
{
  struct kiln_snapshot_stream *s = opaque;
  ssize_t n = kiln_ring_read (s->ring, out);
  if (n < 0)
    return kiln_error_set (err, ECANCELED, KILN_E_INTERNAL, "the layer's download stopped");
  return n;
}

static void *
extractor (void *opaque)
{
  struct kiln_snapshot_stream *s = opaque;
  struct kiln_extract_opts xo = { .overlay_whiteouts = true, .keep_owner = true, .toc = s->want_toc ? &s->rec : NULL };
  s->result = kiln_extract_stream (ring_read, s, s->decompressed, s->name, s->dfd, &xo, &s->err);
  /* the archive ended (what follows is padding) or extraction failed
   * (commit reports it): the rest of the stream is not needed */
  kiln_ring_done (s->ring);
  return NULL;
}

static void
stream_free (struct kiln_snapshot_stream *s)
{
  kiln_snapshot_abort (s->tmp);
  kiln_strv_free (s->diff_ids);
  kiln_toc_rec_clear (&s->rec);
  kiln_error_free (&s->err);
  kiln_ring_free (s->ring);
  free (s->name);
  free (s);
}

int
kiln_snapshot_stream_begin (struct kiln_store *st, char *const *diff_ids, size_t n, const char *name, bool decompressed,
                            struct kiln_snapshot_stream **out, struct kiln_error **err)
{
  *out = NULL;
  int missing = n > 0 ? kiln_snapshot_missing (st, diff_ids, n, err) : 0;
  if (missing <= 0)
    return missing;
  struct kiln_snapshot_stream *s = kiln_xcalloc (1, sizeof *s);
  s->st = st;
  s->n = n;
  s->diff_ids = kiln_xcalloc (n + 1, sizeof *s->diff_ids);
  for (size_t i = 0; i < n; i++)
    s->diff_ids[i] = kiln_xstrdup (diff_ids[i]);
  s->name = kiln_xstrdup (name);
  s->decompressed = decompressed;
  s->want_toc = kiln_snapshot_toc_wanted (st, diff_ids[n - 1], &s->diff_id);
  kiln_toc_rec_init (&s->rec);
  s->ring = kiln_ring_new (RING, PIECE);
  if (kiln_snapshot_begin (st, &s->tmp, &s->dfd, err) < 0)
    {
      stream_free (s);
      return kiln_error_wrap (err, "prepare snapshot of layer `%s`", name);
    }
  int e = pthread_create (&s->th, NULL, extractor, s);
  if (e != 0)
    {
      stream_free (s);
      return kiln_error_set (err, e, KILN_E_INTERNAL, "start the extraction of layer `%s`", name);
    }
  *out = s;
  return 0;
}

void
kiln_snapshot_stream_write (struct kiln_snapshot_stream *s, const void *data, size_t len)
{
  kiln_ring_write (s->ring, data, len);
}

static void
stream_stop (struct kiln_snapshot_stream *s, bool abort)
{
  kiln_ring_close (s->ring, abort);
  pthread_join (s->th, NULL);
}

int
kiln_snapshot_stream_commit (struct kiln_snapshot_stream *s, struct kiln_error **err)
{
  stream_stop (s, false);
  int r = s->result;
  if (r < 0)
    *err = kiln_steal_ptr (&s->err);
  if (r == 0 && s->want_toc)
    kiln_snapshot_toc_keep (s->st, &s->diff_id, &s->rec);
  if (r == 0)
    r = kiln_snapshot_commit (kiln_steal_ptr (&s->tmp), s->diff_ids, s->n, err);
  if (r == 0)
    kiln_log_debug ("snapshot of layer %s extracted while it downloaded", s->name);
  stream_free (s);
  return r;
}

void
kiln_snapshot_stream_abort (struct kiln_snapshot_stream *s)
{
  if (s == NULL)
    return;
  stream_stop (s, true);
  stream_free (s);
}
