/* snapshot_keep.c - turning a RUN step's overlay upper dir into the snapshot of
 * the layer the diff wrote from it, instead of deleting the upper dir and
 * extracting the layer again when a later step needs it.
 *
 * Why: deleting tens of thousands of files costs as much as writing them,
 * and on ext4 without a journal the inodes freed are refused to new files
 * for 60 s (360 s while their inode table block is dirty), so the next
 * step or build that creates as many files spends seconds scanning for
 * inodes (recently_deleted in fs/ext4/ialloc.c).  buildah and containerd's
 * snapshotters keep a step's upper dir as its layer for the same reason.
 *
 * A snapshot must hold exactly what extracting its layer gives (a later
 * COPY --from or RUN sees the snapshot, a cache hit on another runner sees
 * the extraction), so while the diff writes an object it also makes the
 * object what kiln_extract would have made of its entry:
 *   - times: the layer's whole-second mtime (clamped under
 *     --source-date-epoch), atime the same, as extraction sets them;
 *   - xattrs: only what the layer carries (security.capability, user.*)
 *     stays, plus security.selinux (host policy, which labels extracted
 *     files too) and the opaque markers of a directory; overlay's own
 *     bookkeeping (trusted.overlay.origin, .impure), ACLs and the rest go;
 *   - an opaque directory gets both markers, as extraction writes them;
 *   - what the diff leaves out (the sandbox's mount points, sockets) is
 *     removed.
 * Overlay whiteouts (0:0 character devices) are the snapshot's whiteouts
 * already. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

#define OPAQUE_TRUSTED "trusted.overlay.opaque"
#define OPAQUE_USER "user.overlay.opaque"

static bool
xattr_stays (const char *name, bool dir)
{
  if (kiln_xattr_exported (name) || strcmp (name, "security.selinux") == 0)
    return true;
  return dir && (strcmp (name, OPAQUE_TRUSTED) == 0 || strcmp (name, OPAQUE_USER) == 0);
}

/* names: a listxattr buffer of len bytes; remove(name) drops one. */
static int
strip (const char *names, size_t len, bool dir, int (*remove) (void *, const char *), void *opaque,
       struct kiln_error **err)
{
  for (const char *p = names; p < names + len; p += strlen (p) + 1)
    if (!xattr_stays (p, dir) && remove (opaque, p) < 0 && errno != ENODATA)
      return kiln_error_set (err, errno, KILN_E_IO, "remove xattr `%s`", p);
  return 0;
}

static int
remove_fd (void *opaque, const char *name)
{
  return fremovexattr (*(int *) opaque, name);
}

static int
remove_path (void *opaque, const char *name)
{
  return lremovexattr (opaque, name);
}

/* Symlinks and nodes cannot be opened for f*xattr: their /proc/self/fd path
 * with the l* calls (which do not follow the last component). */
static int
strip_at (int dirfd, const char *name, struct kiln_error **err)
{
  kiln_autofree char *path = kiln_xasprintf ("/proc/self/fd/%d/%s", dirfd, name);
  ssize_t len = llistxattr (path, NULL, 0);
  if (len <= 0)
    return len < 0 && errno != ENOTSUP ? kiln_error_set (err, errno, KILN_E_IO, "list xattrs") : 0;
  kiln_autofree char *names = kiln_xmalloc ((size_t) len);
  len = llistxattr (path, names, (size_t) len);
  if (len < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "list xattrs");
  return strip (names, (size_t) len, false, remove_path, path, err);
}

int
kiln_snapshot_keep_object (int fd, int dirfd, const char *name, const struct stat *st, const struct kiln_xattrs *x,
                           int64_t mtime, struct kiln_error **err)
{
  const struct timespec t[2] = { { .tv_sec = mtime }, { .tv_sec = mtime } };
  if (S_ISDIR (st->st_mode))
    return strip (x->names, x->len, true, remove_fd, &fd, err); /* times once its children are done */
  if (fd >= 0)
    {
      if (strip (x->names, x->len, false, remove_fd, &fd, err) < 0)
        return -1;
      if (futimens (fd, t) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "set times");
      return 0;
    }
  if (strip_at (dirfd, name, err) < 0)
    return -1;
  if (utimensat (dirfd, name, t, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times");
  return 0;
}

int
kiln_snapshot_keep_dir_done (int fd, bool opaque, int64_t mtime, struct kiln_error **err)
{
  const struct timespec t[2] = { { .tv_sec = mtime }, { .tv_sec = mtime } };
  if (opaque && kiln_extract_set_opaque (fd, err) < 0)
    return -1;
  if (futimens (fd, t) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times");
  return 0;
}

/* Moves the upper dir's top-level entries into a temp snapshot (made as
 * every snapshot is: its root is a fresh directory, as extraction leaves
 * it, since a layer has no entry for "/") and commits it.  A snapshot
 * already there wins: the upper dir then goes with the scratch dir. */
int
kiln_snapshot_keep_upper (struct kiln_store *st, const struct kiln_mount *m, char *const *diff_ids, size_t n,
                          struct kiln_error **err)
{
  if (m->copy_mode || m->mounted || m->upper == NULL)
    return kiln_error_set (err, EINVAL, KILN_E_INTERNAL, "keep upper dir: not an unmounted overlay step");
  int r = kiln_snapshot_missing (st, diff_ids, n, err);
  if (r <= 0)
    return r;
  kiln_autoclose int up = open (m->upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  kiln_autostrv char **names = NULL;
  if (up < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", m->upper);
  if (kiln_dir_names (up, &names, err) < 0)
    return -1;
  struct kiln_snapshot_tmp *t = NULL;
  int dfd;
  if (kiln_snapshot_begin (st, &t, &dfd, err) < 0)
    return -1;
  for (size_t i = 0; names[i]; i++)
    if (renameat (up, names[i], dfd, names[i]) < 0)
      {
        kiln_error_set (err, errno, KILN_E_IO, "move `%s` into the snapshot", names[i]);
        kiln_snapshot_abort (t);
        return -1;
      }
  return kiln_snapshot_commit (t, diff_ids, n, err);
}
