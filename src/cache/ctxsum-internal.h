/* ctxsum-internal.h - the checksum index's file layout and in-memory state,
 * shared by ctxsum.c (open, lookups, updates, runs) and ctxsum_save.c (the
 * merge that writes the next file). */
#ifndef KILN_CTXSUM_INTERNAL_H
#define KILN_CTXSUM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kiln/ctxsum.h"

#define CS_MAGIC "KILNCSI1"
#define CS_VERSION 1u
/* a file changed this recently may change again within its timestamp granule */
#define RACY_NS (2LL * 1000000000LL)
/* a mapping larger than this drops its pages now and then: a walk reads it
 * once, front to back, and peak memory must not grow with the context */
#define CS_TRIM_BYTES (16u << 20)
#define CS_TRIM_EVERY 65536u
/* updates held in memory before they go, sorted, to a run file: a cold
 * build of a million files must not hold a million of them */
#define CS_SPILL_BYTES (8u << 20)

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
_Static_assert(sizeof (struct cs_header) == 32, "header layout");
_Static_assert(sizeof (struct cs_rec) == 88, "record layout");

/* A digest learned by this build (drop: a racily clean file, whose old
 * record goes and whose new one is not kept). */
struct update {
  char *path;
  struct cs_rec r;
  bool drop;
};

struct kiln_ctxsum {
  struct kiln_store *st;
  char *name; /* hex of the context path's sha256 */
  void *map;
  size_t maplen;
  const struct cs_rec *recs;
  uint64_t count;
  const char *paths;
  uint64_t strsize;
  uint64_t cursor; /* where the next lookup of a walk usually is */
  size_t lookups;
  struct update *up;
  size_t nup, capup;
  size_t upbytes;     /* what up holds, paths included */
  size_t spill_bytes; /* past this, up goes to a run */
  FILE **runs;        /* sorted runs of earlier updates, oldest first */
  size_t nruns;
  size_t *slots; /* open addressing over up: index + 1, 0 empty */
  size_t nslots;
  bool dirty;
  int64_t now_ns;
  pthread_mutex_t mu; /* stages of one build look up and update at once */
};

/* The path of record i of the mapped file, or NULL when its offsets are out
 * of bounds. */
const char *kiln_ctxsum_rec_path (const struct kiln_ctxsum *cs, uint64_t i);
/* qsort order of updates: their paths in tree order. */
int kiln_ctxsum_compare_update (const void *a, const void *b);

#endif
