/* snapshot-internal.h - reading a stack of overlay lower dirs the way
 * overlayfs does (snapshot_lower.c), used by snapshot_mount.c (copy mode)
 * and diff.c (the copy-mode tree diff and the exclude check).
 *
 * A directory of the merged view is a stack: its fd in every lower that
 * contributes, top first.  A name's topmost occurrence decides: a 0:0
 * character device hides it, a non-directory is the object, a directory
 * merges with the directories below it until one is opaque or a layer holds
 * a non-directory there. */
#ifndef KILN_SNAPSHOT_INTERNAL_H
#define KILN_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "kiln/error.h"

struct kiln_lstack {
  int *fds; /* O_RDONLY|O_DIRECTORY, owned */
  size_t n;
};

void kiln_snapshot_lstack_clear (struct kiln_lstack *s);
/* The root directories of lowers (top first). */
int kiln_snapshot_lstack_open_roots (char *const *lowers, struct kiln_lstack *out, struct kiln_error **err);
/* The visible names of the stack's directory, sorted (strcmp), NULL-terminated. */
int kiln_snapshot_lstack_list (const struct kiln_lstack *s, char ***names, struct kiln_error **err);

enum kiln_lookup { KILN_LOOKUP_ABSENT = 0, KILN_LOOKUP_FILE, KILN_LOOKUP_DIR };
/* Looks name up in the stack.  FILE: *st is the object and *layer the index
 * in s of the directory holding it.  DIR: *st is the topmost directory and,
 * when child is non-NULL, *child its stack (caller clears). */
int kiln_snapshot_lstack_lookup (const struct kiln_lstack *s, const char *name, struct stat *st, size_t *layer,
                                 struct kiln_lstack *child, struct kiln_error **err);
/* Whether the cleaned relative path exists in the merged view of lowers. */
int kiln_snapshot_lstack_path_exists (char *const *lowers, const char *path, struct kiln_error **err);

/* The names in dfd (no . and ..), sorted by strcmp, NULL-terminated. */
int kiln_dir_names (int dfd, char ***names, struct kiln_error **err);

bool kiln_is_overlay_whiteout (const struct stat *st);
/* Whether an xattr is exported to layers / copied: security.capability and
 * user.* except user.overlay.* (trusted.*, security.selinux stay behind). */
bool kiln_xattr_exported (const char *name);
/* The exported xattrs of fd as parallel name/value/size arrays (names NUL-separated). */
struct kiln_xattrs {
  char *names; /* listxattr buffer: every name, exported or not */
  size_t len;  /* bytes of names */
  const char **name;
  void **value;
  size_t *size;
  size_t n;
};
void kiln_xattrs_clear (struct kiln_xattrs *x);
int kiln_xattrs_read (int fd, struct kiln_xattrs *x, struct kiln_error **err);
bool kiln_xattrs_equal (const struct kiln_xattrs *a, const struct kiln_xattrs *b);

/* ---- snapshot_keep.c: a RUN step's upper dir made into its layer's snapshot ---- */

/* Called by the diff right after it wrote an object of the upper dir to the
 * layer, with the mtime the layer recorded: fd is the open regular file or
 * directory (x: its xattrs as kiln_xattrs_read listed them), or -1 for a
 * symlink or node at dirfd/name.  Drops the xattrs the layer does not
 * carry and sets the times extraction would set; a directory's times wait
 * for kiln_snapshot_keep_dir_done, after its children (removing one changes
 * them). */
int kiln_snapshot_keep_object (int fd, int dirfd, const char *name, const struct stat *st, const struct kiln_xattrs *x,
                               int64_t mtime, struct kiln_error **err);
/* A directory whose children are done: opaque markers as extraction sets
 * them (when opaque), then its times. */
int kiln_snapshot_keep_dir_done (int fd, bool opaque, int64_t mtime, struct kiln_error **err);

/* ---- shared by snapshot.c and snapshot_stream.c ---- */

struct kiln_store;
struct kiln_digest;
struct kiln_toc_rec;
/* 1 when the snapshot of the chain diff_ids[0..n) is missing (one from an
 * earlier boot is removed first), 0 when it is there. */
int kiln_snapshot_missing (struct kiln_store *st, char *const *diff_ids, size_t n, struct kiln_error **err);
/* Whether the layer's table of contents is still to be recorded (*d: the
 * parsed diff_id). */
bool kiln_snapshot_toc_wanted (struct kiln_store *st, const char *diff_id, struct kiln_digest *d);
/* Stores a recorded table of contents; a failure only warns. */
void kiln_snapshot_toc_keep (struct kiln_store *st, const struct kiln_digest *d, struct kiln_toc_rec *rec);

#endif
