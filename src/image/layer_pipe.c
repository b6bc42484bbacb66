/* layer_pipe.c - the bounded pipe between a layer's tar thread and its
 * compressor thread: PIPE_SLOTS chunks of PIPE_CHUNK bytes in a
 * single-producer single-consumer ring.  The tar side fills a chunk (file
 * data is read straight into its free tail), the compressor thread -
 * started on the first full chunk, so a small layer never starts it -
 * compresses the chunks in order and honours the cuts that end gzip
 * blocks.  A failure of the compressor stops the producer at its next push. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/compress.h"
#include "kiln/error.h"
#include "kiln/log.h"
#include "kiln/util.h"
#include "layer-internal.h"

static void *
pipe_thread (void *arg)
{
  struct layer_pipe *p = arg;
  pthread_mutex_lock (&p->mu);
  for (;;)
    {
      while (p->popped == p->pushed && !p->eof && !p->abort)
        pthread_cond_wait (&p->cv, &p->mu);
      if (p->abort || p->popped == p->pushed)
        break;
      size_t i = p->popped % PIPE_SLOTS;
      pthread_mutex_unlock (&p->mu);
      struct kiln_error *e = NULL;
      int r = kiln_compressor_write (p->comp, p->data[i], p->len[i], &e);
      if (r == 0 && p->cut[i])
        r = kiln_compressor_cut (p->comp, &e);
      pthread_mutex_lock (&p->mu);
      p->len[i] = 0;
      p->cut[i] = false;
      p->popped++;
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

void
kiln_layer_pipe_init (struct layer_pipe *p)
{
  for (size_t i = 0; i < PIPE_SLOTS; i++)
    p->data[i] = kiln_xmalloc (PIPE_CHUNK);
  pthread_mutex_init (&p->mu, NULL);
  pthread_cond_init (&p->cv, NULL);
}

/* Stops the thread (after draining, unless abort); the chunks stay until
 * kiln_layer_pipe_clear. */
void
kiln_layer_pipe_stop (struct layer_pipe *p, bool abort)
{
  if (p->started)
    {
      pthread_mutex_lock (&p->mu);
      p->eof = true;
      p->abort = abort;
      pthread_cond_broadcast (&p->cv);
      pthread_mutex_unlock (&p->mu);
      pthread_join (p->thread, NULL);
      p->started = false;
    }
}

void
kiln_layer_pipe_clear (struct layer_pipe *p)
{
  kiln_layer_pipe_stop (p, true);
  for (size_t i = 0; i < PIPE_SLOTS; i++)
    free (p->data[i]);
  kiln_error_free (&p->err);
  pthread_mutex_destroy (&p->mu);
  pthread_cond_destroy (&p->cv);
}

static int
pipe_error (struct layer_pipe *p, struct kiln_error **err)
{
  if (p->err == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "compress layer: compressor stopped");
  *err = kiln_steal_ptr (&p->err);
  return (*err)->errnum ? -(*err)->errnum - 1 : -1;
}

/* Hands the filling chunk to the compressor thread, starting it on the
 * first full chunk; waits while the pipe is full. */
static int
pipe_push (struct layer_pipe *p, struct kiln_error **err)
{
  if (!p->started)
    {
      int e = pthread_create (&p->thread, NULL, pipe_thread, p);
      if (e != 0)
        {
          /* no thread: compress here, slower but correct */
          kiln_log_debug ("layer: could not start the compressor thread: %s", strerror (e));
          size_t i = p->pushed % PIPE_SLOTS;
          int r = kiln_compressor_write (p->comp, p->data[i], p->len[i], err);
          if (r == 0 && p->cut[i])
            r = kiln_compressor_cut (p->comp, err);
          p->len[i] = 0;
          p->cut[i] = false;
          return r;
        }
      p->started = true;
    }
  pthread_mutex_lock (&p->mu);
  p->pushed++;
  pthread_cond_broadcast (&p->cv);
  while (!p->failed && p->pushed - p->popped >= PIPE_SLOTS)
    pthread_cond_wait (&p->cv, &p->mu);
  bool failed = p->failed;
  pthread_mutex_unlock (&p->mu);
  return failed ? pipe_error (p, err) : 0;
}

/* The free tail of the chunk being filled (never empty: a full chunk is
 * pushed at once). */
unsigned char *
kiln_layer_pipe_tail (struct layer_pipe *p, size_t *room)
{
  size_t i = p->pushed % PIPE_SLOTS;
  *room = PIPE_CHUNK - p->len[i];
  return p->data[i] + p->len[i];
}

int
kiln_layer_pipe_write (struct layer_pipe *p, const unsigned char *data, size_t len, struct kiln_error **err)
{
  while (len > 0)
    {
      size_t i = p->pushed % PIPE_SLOTS;
      size_t n = PIPE_CHUNK - p->len[i] < len ? PIPE_CHUNK - p->len[i] : len;
      /* file data that copy_fd read into the free tail of the slot is
       * already in place */
      if (data != p->data[i] + p->len[i])
        memcpy (p->data[i] + p->len[i], data, n);
      p->len[i] += n;
      data += n;
      len -= n;
      if (p->len[i] == PIPE_CHUNK)
        {
          int r = pipe_push (p, err);
          if (r < 0)
            return r;
        }
    }
  return 0;
}

/* Ends the gzip block after what was written so far: the chunk being filled
 * goes to the compressor with the cut, in stream order. */
int
kiln_layer_pipe_cut (struct layer_pipe *p, struct kiln_error **err)
{
  p->cut[p->pushed % PIPE_SLOTS] = true;
  return pipe_push (p, err);
}

/* Drains the pipe: after this the compressor belongs to the caller again. */
int
kiln_layer_pipe_finish (struct layer_pipe *p, struct kiln_error **err)
{
  size_t i = p->pushed % PIPE_SLOTS;
  if (!p->started)
    {
      int r = kiln_compressor_write (p->comp, p->data[i], p->len[i], err);
      p->len[i] = 0;
      return r;
    }
  if (p->len[i] > 0)
    {
      pthread_mutex_lock (&p->mu);
      p->pushed++;
      pthread_mutex_unlock (&p->mu);
    }
  kiln_layer_pipe_stop (p, false);
  return p->failed ? pipe_error (p, err) : 0;
}
