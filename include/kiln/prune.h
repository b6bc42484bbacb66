/* kiln/prune.h - garbage collection of the store.
 *
 * Everything a build, run, pull or push uses is protected by a lease: those
 * commands hold a shared flock on ROOT/gc.lock for their whole life, and
 * prune takes it exclusively, so it never removes what a running build
 * needs.  Prune deletes cache records first, then what nothing references
 * any more, so a prune killed at any point leaves only garbage, never a
 * dangling reference.
 *
 * Ownership: the lease fd belongs to the caller, who closes it to release
 * the lease; options are borrowed; the report is a plain value. */
#ifndef KILN_PRUNE_H
#define KILN_PRUNE_H

#include <stdbool.h>
#include <stdint.h>
#include "kiln/error.h"

struct kiln_store;

struct kiln_prune_opts {
  bool all;             /* every cache record and snapshot (tagged images stay) */
  int64_t keep_storage; /* drop the least recently used records until blobs fit; -1 = no limit */
  int64_t until;        /* only records unused for this many seconds; 0 = any age */
  bool wait;            /* wait for running builds instead of failing */
};

struct kiln_prune_report {
  size_t records, blobs, snapshots, scratch; /* what was removed */
  uint64_t bytes;                            /* blob bytes freed */
};

/* Takes the shared lease; *fd receives the lock fd (close it to release). */
int kiln_prune_lease (struct kiln_store *st, int *fd, struct kiln_error **err);

int kiln_prune (struct kiln_store *st, const struct kiln_prune_opts *o, struct kiln_prune_report *r,
                struct kiln_error **err);

/* "10GB", "512MiB", "1.5g", "100" (bytes) -> bytes. */
int kiln_prune_parse_size (const char *s, int64_t *out, struct kiln_error **err);
/* "24h", "30m", "7d", "90s" -> seconds. */
int kiln_prune_parse_duration (const char *s, int64_t *out, struct kiln_error **err);

#endif
