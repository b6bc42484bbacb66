/* kiln/treesum.h - the Merkle digest of a file tree, and its listing.
 *
 * A COPY over a directory is keyed by one digest of the tree, not by a line
 * per file, so a cache record stays small whatever the tree's size (BuildKit's
 * contenthash does the same with its radix tree).  Each entry's digest covers
 * its metadata (type and mode, owner, link target) and its content: a regular
 * file's content digest, a directory's digest of its sorted children (name +
 * digest each).  Mtimes never enter it.
 *
 * Entries are fed in tree order (kiln_treesum_path_cmp: a directory before its
 * children, siblings by name), as a walk that sorts each directory yields
 * them, so the fold holds only the open directories: memory grows with the
 * tree's depth, not its size.
 *
 * A listing is what a miss explanation needs from the last build: every entry
 * (shown name, metadata, content digest) in tree order, in a compact binary
 * file compared by a streaming merge. */
#ifndef KILN_TREESUM_H
#define KILN_TREESUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "kiln/digest.h"
#include "kiln/error.h"

struct kiln_treesum_entry {
  const char *path; /* below the tree's root, cleaned; "" is the root itself */
  mode_t mode;      /* type bits + permission bits */
  uid_t uid;
  gid_t gid;
  const char *link;                  /* symlink target; NULL otherwise */
  const struct kiln_digest *content; /* regular files; NULL otherwise */
};

/* strcmp order with '/' below every other byte: the order of a depth-first
 * walk that visits a directory before its children and siblings by name. */
int kiln_treesum_path_cmp (const char *a, const char *b);

struct kiln_treesum;
struct kiln_treesum *kiln_treesum_new (void);
/* Entries must come in tree order (equal paths may repeat: each counts);
 * KILN_E_INTERNAL otherwise.  A directory that no entry names but that holds
 * entries counts as a directory without metadata. */
int kiln_treesum_add (struct kiln_treesum *t, const struct kiln_treesum_entry *e, struct kiln_error **err);
/* The root's digest; the fold can then take a new tree. */
void kiln_treesum_final (struct kiln_treesum *t, struct kiln_digest *out);
void kiln_treesum_free (struct kiln_treesum *t);

/* ---- listings ---- */

struct kiln_treelist_writer;
/* Writes to fd (taken) once finished; entries in tree order. */
struct kiln_treelist_writer *kiln_treelist_writer_new (int fd);
void kiln_treelist_write (struct kiln_treelist_writer *w, const char *shown, const struct kiln_treesum_entry *e);
int kiln_treelist_writer_finish (struct kiln_treelist_writer *w, struct kiln_error **err);

/* The listing's file name under cache/trees for a source's key line value
 * ("tree app/ sha256:..."): its name and digest.  Caller frees. */
char *kiln_treelist_name (const char *key_value);

/* What changed from listing old_fd to listing now_fd, as a sentence naming
 * the first changed entry ("app/d3/f42.py content changed (+2 more)"); NULL
 * when they hold the same entries or a file is damaged.  Both are read as
 * streams; the fds are not closed. */
char *kiln_treelist_explain (int old_fd, int now_fd);

#endif
