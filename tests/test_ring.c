/* tests/test_ring.c - the byte ring between two threads: every byte in
 * order through wrap-arounds, the writer's abort, the reader's early end. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/ring.h"

#define TOTAL (5u << 20)

struct writer {
  struct kiln_ring *r;
  bool abort_at_half;
  bool last; /* kiln_ring_write's last answer */
};

static unsigned char
byte_at (size_t i)
{
  return (unsigned char) ((i * 2654435761u) >> 13);
}

/* Writes TOTAL pattern bytes in pieces of 1..9973 bytes. */
static void *
write_main (void *opaque)
{
  struct writer *w = opaque;
  static unsigned char buf[9973];
  size_t off = 0, step = 1;
  w->last = true;
  while (off < TOTAL && w->last)
    {
      size_t n = step % sizeof buf + 1;
      if (n > TOTAL - off)
        n = TOTAL - off;
      if (w->abort_at_half && off + n > TOTAL / 2)
        {
          kiln_ring_close (w->r, true);
          return NULL;
        }
      for (size_t i = 0; i < n; i++)
        buf[i] = byte_at (off + i);
      w->last = kiln_ring_write (w->r, buf, n);
      off += n;
      step = step * 7 + 3;
    }
  kiln_ring_close (w->r, false);
  return NULL;
}

Test (ring, every_byte_arrives_in_order)
{
  struct kiln_ring *r = kiln_ring_new (64 * 1024, 5000);
  struct writer w = { .r = r };
  pthread_t th;
  const void *p;
  ssize_t n;
  size_t got = 0, pieces = 0;
  cr_assert_eq (pthread_create (&th, NULL, write_main, &w), 0);
  while ((n = kiln_ring_read (r, &p)) > 0)
    {
      cr_assert_leq (n, 5000, "a piece larger than asked");
      for (ssize_t i = 0; i < n; i++)
        cr_assert_eq (((const unsigned char *) p)[i], byte_at (got + (size_t) i), "byte %zu", got + (size_t) i);
      got += (size_t) n;
      pieces++;
    }
  pthread_join (th, NULL);
  cr_assert_eq (n, 0);
  cr_assert_eq (got, TOTAL);
  cr_assert_gt (pieces, TOTAL / (64 * 1024), "the ring never wrapped around");
  kiln_ring_free (r);
}

Test (ring, writer_abort_is_an_error_for_the_reader)
{
  struct kiln_ring *r = kiln_ring_new (64 * 1024, 64 * 1024);
  struct writer w = { .r = r, .abort_at_half = true };
  pthread_t th;
  const void *p;
  ssize_t n;
  size_t got = 0;
  cr_assert_eq (pthread_create (&th, NULL, write_main, &w), 0);
  while ((n = kiln_ring_read (r, &p)) > 0)
    got += (size_t) n;
  pthread_join (th, NULL);
  cr_assert_eq (n, -1);
  cr_assert_leq (got, TOTAL / 2);
  kiln_ring_free (r);
}

Test (ring, reader_done_stops_the_writer)
{
  struct kiln_ring *r = kiln_ring_new (16 * 1024, 4096);
  struct writer w = { .r = r };
  pthread_t th;
  const void *p;
  cr_assert_eq (pthread_create (&th, NULL, write_main, &w), 0);
  cr_assert_gt (kiln_ring_read (r, &p), 0);
  /* the writer is blocked on a full ring now or soon: done must release it */
  kiln_ring_done (r);
  pthread_join (th, NULL);
  cr_assert_not (w.last, "the writer was not told the reader is done");
  kiln_ring_free (r);
}
