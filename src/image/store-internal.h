/* store-internal.h - the store struct and helpers shared by store.c,
 * store_index.c, store_check.c and export.c. */
#ifndef KILN_STORE_INTERNAL_H
#define KILN_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/store.h"

#include <pthread.h>

struct kiln_store {
  char *root;
  int rootfd; /* O_DIRECTORY of the root */
  int blobsfd, ingestfd, tmpfd;
  int lockfd; /* kiln.lock, flock()ed around index.json updates */
  /* flock() excludes other processes only: the stages of one build take
   * this first (recursive: depth counts the holder's nesting) */
  pthread_mutex_t lock_mu;
  unsigned lock_depth;
  kiln_store_fetch_fn fetch; /* lazy blobs (kiln_store_set_fetcher), or NULL */
  void *fetch_opaque;
};

/* flock(op) on kiln.lock, retrying EINTR. */
int kiln_store_lock (struct kiln_store *st, int op, struct kiln_error **err);
void kiln_store_unlock (struct kiln_store *st);

/* Writes prefix + 24 random hex digits into out; -ENAMETOOLONG if it does not fit. */
int kiln_store_random_name (char *out, size_t size, const char *prefix);

/* Caps on what is read into memory. */
#define KILN_STORE_MAX_JSON (8u << 20)   /* one manifest or config */
#define KILN_STORE_MAX_INDEX (64u << 20) /* index.json */

/* index.json of the layout at dirfd (missing = empty); no locking. */
int kiln_store_read_index_at (int dirfd, struct kiln_index *out, struct kiln_error **err);
int kiln_store_write_index_at (int dirfd, const struct kiln_index *ix, struct kiln_error **err);
/* Drops the entries whose ref.name is name; returns how many. */
size_t kiln_store_index_remove_name (struct kiln_index *ix, const char *name);
/* Appends a copy of d. */
void kiln_store_index_add (struct kiln_index *ix, const struct kiln_descriptor *d);
/* Whether s is all lowercase hex digits (a blob name, a digest prefix). */
bool kiln_store_is_hex (const char *s);

/* An archive output of export: dest through a temp file beside it (renamed
 * into place by commit, removed by abort), or stdout for "-" (refused when
 * stdout is a terminal). */
struct kiln_export_out {
  int fd;
  char *tmp; /* NULL for stdout */
  const char *dest;
};
int kiln_export_out_open (const char *dest, struct kiln_export_out *o, struct kiln_error **err);
int kiln_export_out_commit (struct kiln_export_out *o, struct kiln_error **err);
void kiln_export_out_abort (struct kiln_export_out *o);

#endif
