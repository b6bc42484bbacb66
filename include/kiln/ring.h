/* kiln/ring.h - a fixed-size byte ring between one writer thread and one
 * reader thread: the stages of a layer's pipeline (download -> inflate ->
 * extract) run on their own threads with bounded memory, the writer waiting
 * while the ring is full and the reader while it is empty.
 *
 * The reader borrows contiguous pieces in place (no copy on its side); a
 * piece stays valid until its next read.  Either side can end the stream:
 * the writer with kiln_ring_close (at the end, or aborted), the reader with
 * kiln_ring_done (it needs no more: later writes are dropped). */
#ifndef KILN_RING_H
#define KILN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct kiln_ring;

/* size: the ring's bytes; piece: the most one read hands out, so the writer
 * can refill behind the reader. */
struct kiln_ring *kiln_ring_new (size_t size, size_t piece);
void kiln_ring_free (struct kiln_ring *r); /* NULL-safe; both sides must be finished */

/* Copies all of data in, waiting for room; false (nothing more is copied)
 * once the reader called kiln_ring_done. */
bool kiln_ring_write (struct kiln_ring *r, const void *data, size_t len);
/* The writer's end: the reader sees the end of the stream after what was
 * written, or, with abort, an error at its next read. */
void kiln_ring_close (struct kiln_ring *r, bool abort);

/* The next piece: its length (*out points at it), 0 at the end of the
 * stream, -1 when the writer aborted. */
ssize_t kiln_ring_read (struct kiln_ring *r, const void **out);
/* The reader's end: the writer stops waiting and its writes are dropped. */
void kiln_ring_done (struct kiln_ring *r);

#endif
