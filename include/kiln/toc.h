/* kiln/toc.h - layer tables of contents and the merged view of a layer chain.
 *
 * A table of contents (TOC) lists what one layer's tar holds, without the
 * file contents: path, type and mode, owner, mtime, link target.  kiln
 * writes it while it writes a layer (free: the writer sees every header) and
 * otherwise reads it once from the layer's blob; it is kept in the store as
 * cache/toc/<diffID hex>, versioned and checksummed, so "what is at /tmp in
 * this image" never needs an extracted filesystem.
 *
 * A view merges the TOCs of a layer chain the way a runtime extracts the
 * layers (whiteouts and opaque directories applied, a non-directory replacing
 * a directory drops what was below it) and resolves paths with symlinks
 * followed inside the root, as COPY/ADD/WORKDIR need for their destinations.
 *
 * Ownership: a recorder (kiln_toc_rec) is a value: _init, then _clear frees
 * it (also after _save); entries added are copied.  A kiln_toc from _read
 * or _load is the caller's, freed with kiln_toc_free.  A view is the
 * caller's from _new to _free; _apply and _put copy what they keep, and a
 * node _get returns is borrowed, valid until the view next changes.
 * kiln_tocview_resolve's *out is malloc'd for the caller. */
#ifndef KILN_TOC_H
#define KILN_TOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "kiln/buf.h"
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;
struct archive_entry;
struct kiln_toc;

struct kiln_toc_entry {
  const char *path; /* relative, cleaned, no trailing '/'; whiteouts keep their ".wh." names */
  mode_t mode;      /* type bits + permission bits */
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  const char *link; /* symlink target, or the hardlinked path; NULL otherwise */
  bool hardlink;
};

/* ---- recording and storing ---- */

/* The TOC being recorded while a layer is written: entries in tar order. */
struct kiln_toc_rec {
  struct kiln_buf data;
  uint64_t count;
  struct kiln_store *spill_st; /* set aside past a few MiB (kiln_toc_rec_spill) */
  int spill_fd;                /* the unnamed file of cache/toc holding the records so far, -1 */
  bool spill_failed;
};
void kiln_toc_rec_init (struct kiln_toc_rec *r);
/* Past a few MiB the records go to an unnamed file of st's cache/toc that
 * the save names (a million-file layer has about 80 MiB of them).  Such a
 * record can be saved, not read (kiln_toc_rec_read fails). */
void kiln_toc_rec_spill (struct kiln_toc_rec *r, struct kiln_store *st);
void kiln_toc_rec_add (struct kiln_toc_rec *r, const struct kiln_toc_entry *e);
void kiln_toc_rec_clear (struct kiln_toc_rec *r);
/* Records a tar header as read by libarchive (an extraction records as it goes). */
void kiln_toc_rec_add_archive (struct kiln_toc_rec *r, struct archive_entry *ae);
/* Whether the TOC of diff_id is stored already. */
bool kiln_toc_exists (struct kiln_store *st, const struct kiln_digest *diff_id);
/* The recorded entries as a TOC (*out; r is left as it was). */
int kiln_toc_rec_read (const struct kiln_toc_rec *r, struct kiln_toc **out);
/* Stores r as the TOC of the layer whose tar has digest diff_id. */
int kiln_toc_rec_save (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_toc_rec *r,
                       struct kiln_error **err);

/* A loaded TOC (read-only entries). */
struct kiln_toc {
  struct kiln_toc_entry *v;
  size_t n;
  char *strings; /* owns the paths and link targets */
};
void kiln_toc_free (struct kiln_toc *t);

/* The TOC of a layer: from cache/toc/, or read from the layer's blob (fetched
 * when the store has a fetcher) and then stored.  A stored TOC that does not
 * verify is rebuilt from the blob. */
int kiln_toc_load (struct kiln_store *st, const struct kiln_descriptor *layer, const struct kiln_digest *diff_id,
                   struct kiln_toc **out, struct kiln_error **err);

/* A registry or layout cache carries the TOCs of its layers as blobs, so a
 * runner that reuses a cached layer without fetching it can still place a
 * COPY on top of it.  Export: the stored TOC of diff_id as a blob of the
 * store (1; 0 when there is none).  Import: remembers that blob (fetched
 * only when kiln_toc_load needs it). */
#define KILN_MT_TOC "application/vnd.kiln.layer.toc.v1"
int kiln_toc_export (struct kiln_store *st, const struct kiln_digest *diff_id, struct kiln_descriptor *blob,
                     struct kiln_error **err);
int kiln_toc_note_blob (struct kiln_store *st, const struct kiln_digest *diff_id, const struct kiln_digest *blob,
                        struct kiln_error **err);

/* ---- the merged view ---- */

struct kiln_tocview;
struct kiln_tocnode {
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  char *link; /* symlink target */
};

struct kiln_tocview *kiln_tocview_new (void);
void kiln_tocview_free (struct kiln_tocview *v);
/* Applies one layer on top: its whiteouts first, then its entries. */
void kiln_tocview_apply (struct kiln_tocview *v, const struct kiln_toc *t);
/* What is at path (relative, cleaned), not following a final symlink; NULL
 * when nothing is. */
const struct kiln_tocnode *kiln_tocview_get (const struct kiln_tocview *v, const char *path);
/* Puts one entry (as a layer entry would), replacing what was there; a
 * non-directory replacing a directory drops its subtree.  Missing parents are
 * created as 0755 root directories. */
void kiln_tocview_put (struct kiln_tocview *v, const struct kiln_toc_entry *e);
/* path ('/'-separated, absolute or relative to the root) with every symlink
 * followed inside the root (the last component too when follow_last), ".."
 * never above the root, as a runtime's chroot would see it.  *out: the
 * cleaned relative result ("" for the root); components after a missing one
 * are kept as written.  KILN_E_PARSE on a symlink loop (more than 40 links). */
int kiln_tocview_resolve (const struct kiln_tocview *v, const char *path, bool follow_last, char **out,
                          struct kiln_error **err);

#endif
