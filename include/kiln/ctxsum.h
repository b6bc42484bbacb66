/* kiln/ctxsum.h - the context checksum cache: what each file of a build
 * context hashed to, keyed by its stat, so a rebuild reads no file whose
 * (dev, inode, size, mode, mtime, ctime) is unchanged.
 *
 * One file per context, cache/ctxsum/<sha256 of the context's path>.idx, laid
 * out like git's index: a header, fixed-size records sorted by path in tree
 * order (kiln_treesum_path_cmp, the order a context walk visits them), their
 * paths, and a sha256 trailer.  It is mapped, never parsed: a lookup is a
 * binary search that a walk's next path usually answers at the cursor.  A
 * save merges the mapped records with this build's updates into a new file
 * renamed over the old one, so concurrent builds on one context never see a
 * torn file (the last save wins; a lost update only costs hashing again).
 * A damaged file is ignored with a warning and rewritten at the next save.
 *
 * Ownership: the cache is the caller's until kiln_ctxsum_free (which does
 * not save); paths and stats given to _lookup and _update are copied when
 * kept. */
#ifndef KILN_CTXSUM_H
#define KILN_CTXSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include "kiln/digest.h"
#include "kiln/error.h"

struct kiln_store;
struct kiln_ctxsum;

/* Opens the checksum cache of a context directory (by its absolute path). */
int kiln_ctxsum_open (struct kiln_store *st, const char *context_abs, struct kiln_ctxsum **out,
                      struct kiln_error **err);
/* True and *d set when rel's recorded stat matches st exactly. */
bool kiln_ctxsum_lookup (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, struct kiln_digest *d);
/* Records a digest; entries changed within the last seconds are kept out of
 * the saved file, so a file rewritten within the same timestamp granule is
 * always hashed again ("racily clean", as git calls it). */
void kiln_ctxsum_update (struct kiln_ctxsum *cs, const char *rel, const struct stat *st, const struct kiln_digest *d);
/* Past this many bytes of updates in memory (8 MiB), they go sorted to an
 * unnamed run file beside the index and the save merges the runs: memory
 * stays bounded for any context.  For tests. */
void kiln_ctxsum_set_spill (struct kiln_ctxsum *cs, size_t bytes);
/* Writes the merged file when anything was updated. */
int kiln_ctxsum_save (struct kiln_ctxsum *cs, struct kiln_error **err);
void kiln_ctxsum_free (struct kiln_ctxsum *cs);

#endif
