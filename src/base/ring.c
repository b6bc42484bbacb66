/* ring.c - the single-writer, single-reader byte ring of kiln/ring.h.
 *
 * [tail, tail + lent) is the piece the reader holds, [tail + lent, head)
 * written and unread, [head, tail + size) free: the writer copies into its
 * free span without the lock, since the reader never touches it.
 *
 * No lost wake-up: the reader sleeps only on an empty ring and is woken once
 * a piece is there (a piece is at most the ring, so a writer that fills the
 * ring has woken it) or at the close; the writer sleeps only on a full ring
 * and the reader empties it a piece at a time, waking it at a quarter free
 * (an empty ring is all free) or at done. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/ring.h"
#include "kiln/util.h"

struct kiln_ring {
  pthread_mutex_t lock;
  pthread_cond_t readable, writable;
  unsigned char *buf;
  size_t size, piece;
  uint64_t head;        /* bytes written */
  uint64_t tail;        /* bytes the reader is done with */
  size_t lent;          /* bytes from tail the reader holds */
  bool closed, aborted; /* the writer's end */
  bool done;            /* the reader's end */
};

struct kiln_ring *
kiln_ring_new (size_t size, size_t piece)
{
  struct kiln_ring *r = kiln_xcalloc (1, sizeof *r);
  pthread_mutex_init (&r->lock, NULL);
  pthread_cond_init (&r->readable, NULL);
  pthread_cond_init (&r->writable, NULL);
  r->buf = kiln_xmalloc (size);
  r->size = size;
  r->piece = piece < size ? piece : size;
  return r;
}

void
kiln_ring_free (struct kiln_ring *r)
{
  if (r == NULL)
    return;
  pthread_cond_destroy (&r->readable);
  pthread_cond_destroy (&r->writable);
  pthread_mutex_destroy (&r->lock);
  free (r->buf);
  free (r);
}

bool
kiln_ring_write (struct kiln_ring *r, const void *data, size_t len)
{
  const unsigned char *p = data;
  while (len > 0)
    {
      pthread_mutex_lock (&r->lock);
      while (!r->done && r->head - r->tail == r->size)
        pthread_cond_wait (&r->writable, &r->lock);
      if (r->done)
        {
          pthread_mutex_unlock (&r->lock);
          return false;
        }
      size_t off = (size_t) (r->head % r->size);
      size_t room = r->size - (size_t) (r->head - r->tail);
      size_t n = len < room ? len : room;
      if (n > r->size - off)
        n = r->size - off;
      pthread_mutex_unlock (&r->lock);
      memcpy (r->buf + off, p, n);
      pthread_mutex_lock (&r->lock);
      r->head += n;
      /* a piece's worth, not every write: each wake-up of the other thread
       * costs a trip through the scheduler (milliseconds on a busy machine) */
      if (r->head - r->tail >= r->piece)
        pthread_cond_signal (&r->readable);
      pthread_mutex_unlock (&r->lock);
      p += n, len -= n;
    }
  return true;
}

void
kiln_ring_close (struct kiln_ring *r, bool abort)
{
  pthread_mutex_lock (&r->lock);
  r->closed = true;
  r->aborted = abort;
  pthread_cond_broadcast (&r->readable);
  pthread_mutex_unlock (&r->lock);
}

ssize_t
kiln_ring_read (struct kiln_ring *r, const void **out)
{
  pthread_mutex_lock (&r->lock);
  r->tail += r->lent;
  r->lent = 0;
  /* the writer waits only on a full ring: wake it once a quarter is free */
  if (r->size - (size_t) (r->head - r->tail) >= r->size / 4)
    pthread_cond_signal (&r->writable);
  while (r->head == r->tail && !r->closed)
    pthread_cond_wait (&r->readable, &r->lock);
  if (r->aborted)
    {
      pthread_mutex_unlock (&r->lock);
      return -1;
    }
  size_t off = (size_t) (r->tail % r->size);
  uint64_t avail = r->head - r->tail;
  size_t n = avail < r->size - off ? (size_t) avail : r->size - off;
  if (n > r->piece)
    n = r->piece;
  r->lent = n;
  pthread_mutex_unlock (&r->lock);
  *out = r->buf + off;
  return (ssize_t) n;
}

void
kiln_ring_done (struct kiln_ring *r)
{
  pthread_mutex_lock (&r->lock);
  r->done = true;
  pthread_cond_broadcast (&r->writable);
  pthread_mutex_unlock (&r->lock);
}
