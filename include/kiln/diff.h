/* kiln/diff.h - a RUN step's changes as a layer.
 *
 * Overlay mode: the upper dir is walked depth-first, names sorted by strcmp,
 * and every object in it becomes a tar entry through the layer writer:
 *   - an overlay whiteout (0:0 character device) NAME -> ".wh.NAME", a mode
 *     0 regular file of size 0 owned by 0:0 (as Docker writes it);
 *   - an opaque directory (trusted.overlay.opaque=y, or user.overlay.opaque=y
 *     on a `userxattr` mount) -> the directory entry, then "DIR/.wh..wh..opq";
 *   - a regular file whose dev+ino was already written -> a hardlink entry to
 *     the first path;
 *   - xattrs: security.capability and user.* only (never trusted.*,
 *     user.overlay.* or security.selinux).
 * Copy mode: merged is compared with the lowers (type, mode, owner, size,
 * mtime to the nanosecond, symlink target, device number, exported xattrs,
 * and the content of regular files whose metadata all matches); new and
 * changed objects are written, paths present in the lowers but gone from
 * merged become ".wh.NAME", and the parent directories of everything written
 * are written too.  A lower directory replaced by a new directory is
 * written as a changed directory plus whiteouts for its vanished children
 * (no opaque marker): the flattened result is the same.
 *
 * exclude: cleaned relative paths (e.g. "etc/hosts", "etc/resolv.conf",
 * "dev", "proc", "sys") the sandbox created as mount points.  Such a path,
 * and everything below it, is skipped when it does not exist in the lowers;
 * when it does, it is diffed like any other path (the sandbox's bind mount
 * received the step's writes, so a step that edits an existing /etc/hosts
 * leaves no trace in the upper dir and the edit is lost, as in Docker).
 *
 * keep (when non-NULL and true, overlay mode): while writing the layer,
 * also make the upper dir exactly what extracting that layer gives, for
 * kiln_snapshot_keep_upper: the mount points and sockets the layer leaves
 * out removed, times set to the layer's whole seconds, only the xattrs the
 * layer carries (and the opaque markers, security.selinux) left.  Cleared
 * when that could not be done (the layer is written all the same).
 *
 * Ownership: m, lo and exclude are borrowed; *res is filled from empty and
 * cleared by the caller with kiln_layer_result_clear. */
#ifndef KILN_DIFF_H
#define KILN_DIFF_H

#include <stdbool.h>
#include "kiln/error.h"
#include "kiln/layer.h"
#include "kiln/snapshot.h"

struct kiln_store;

/* Writes the changes of m (unmounted with kiln_snapshot_unmount first, or
 * at least with the step's processes gone) as a layer into the store;
 * lo->clamp_mtime applies to every entry.  exclude may be NULL. */
int kiln_diff_write_layer (struct kiln_store *st, const struct kiln_mount *m, const struct kiln_layer_opts *lo,
                           char *const *exclude, bool *keep, struct kiln_layer_result *res, struct kiln_error **err);

#endif
