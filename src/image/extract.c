/* extract.c - the hardened tar extractor: no entry of a hostile tar can write outside the root.
 *
 * This file places one entry at a time; the tar is read in extract_archive.c,
 * whiteouts are applied in extract_whiteout.c, and the paths a layer created
 * are remembered in extract_created.c (extract-internal.h is their state).
 *
 * Path policy (containerd's, "confine"): every entry name is cleaned
 * lexically with kiln_fs_path_clean, which pops ".." but never above the root
 * and drops a leading '/', so "../x", "/../x" and "/x" all become "x" inside
 * the root.  A cleaned name cannot escape by construction; what remains is
 * symlinks in the tree, which are only ever resolved by openat2 with
 * RESOLVE_IN_ROOT (the parent directory) while the last component is created
 * with *at() calls on the parent fd that never follow it (O_EXCL|O_NOFOLLOW,
 * AT_SYMLINK_NOFOLLOW, linkat without AT_SYMLINK_FOLLOW).  An entry that
 * cleans to the root itself ("", ".", "/") is skipped whatever its type, as
 * BuildKit and containerd do: the root is never replaced (CVE-2021-29136: a
 * symlink named "." or "/") and keeps its own metadata.
 *
 * Whiteout ordering: we track every path created by the current layer (and
 * its ancestors) in a hash set.  ".wh.NAME" never removes a same-layer entry,
 * and ".wh..wh..opq" removes everything in its directory that this layer did
 * not create, descending into same-layer directories, so it works whether the
 * marker comes first (as Docker writes it) or after the layer's own entries
 * (umoci's upperPaths).  Each marker costs one walk of its directory.
 *
 * With overlay_whiteouts (snapshots) the layer lands in a directory of its
 * own and nothing below it is visible, so whiteouts are recorded instead of
 * applied: a 0:0 character device for ".wh.NAME", an opaque xattr for
 * ".wh..wh..opq".  The same-layer rule still holds: a marker never covers an
 * entry of its own layer, and an entry after a marker replaces it.
 *
 * Directory metadata (owner, mode, times) is applied after all entries, in
 * reverse order, by re-resolving the path with O_NOFOLLOW and checking the
 * inode recorded at creation, so a directory replaced later by a symlink is
 * never chmod'ed through (libarchive CVE-2021-31566).  Until then directories
 * are 0700 so a 0555 directory still receives its children. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "extract-internal.h"
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/util.h"

void
kiln_extract_state_clear (struct xstate *x)
{
  for (size_t i = 0; i < x->ndirs; i++)
    free (x->dirs[i].path);
  free (x->dirs);
  kiln_extract_set_clear (&x->created);
  kiln_fs_dircache_clear (&x->pcache);
  if (x->a)
    archive_read_free (x->a);
}

/* The one place that turns a libarchive status into a kiln_error
 * (STYLE §14): WARN is logged, FAILED/FATAL/RETRY fail. */
int
kiln_extract_archive_check (struct xstate *x, int r, struct kiln_error **err)
{
  const char *msg = archive_error_string (x->a);
  if (r == ARCHIVE_OK || r == ARCHIVE_EOF)
    return 0;
  if (r == ARCHIVE_WARN)
    {
      kiln_log_warn ("extract `%s`: %s", x->name, msg ? msg : "libarchive warning");
      return 0;
    }
  int e = archive_errno (x->a);
  /* libarchive reports format errors as EILSEQ (its private
   * ARCHIVE_ERRNO_FILE_FORMAT) or -1: the errno text would mislead */
  if (e <= 0 || e == EILSEQ)
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s", msg ? msg : "invalid archive");
  return kiln_error_set (err, e, KILN_E_IO, "%s", msg ? msg : "read archive");
}

static int
entry_meta (const struct xstate *x, struct archive_entry *e, struct meta *m, struct kiln_error **err)
{
  int64_t uid = archive_entry_uid (e), gid = archive_entry_gid (e);
  m->mode = archive_entry_perm (e) & 07777;
  m->chown = x->opts->keep_owner || x->opts->has_chown;
  if (x->opts->has_chown)
    {
      uid = x->opts->uid;
      gid = x->opts->gid;
    }
  if (m->chown && (uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX))
    return kiln_error_set (err, EINVAL, KILN_E_PARSE, "invalid owner %lld:%lld", (long long) uid, (long long) gid);
  m->uid = (uid_t) uid;
  m->gid = (gid_t) gid;
  m->times[1].tv_sec = archive_entry_mtime (e);
  m->times[1].tv_nsec = archive_entry_mtime_nsec (e);
  if (archive_entry_atime_is_set (e))
    {
      m->times[0].tv_sec = archive_entry_atime (e);
      m->times[0].tv_nsec = archive_entry_atime_nsec (e);
    }
  else
    m->times[0] = m->times[1];
  return 0;
}

/* chown failing for lack of privilege (EPERM, or EINVAL for an id unmapped in
 * a user namespace) is expected when not root: warn once and go on. */
static int
chown_result (struct xstate *x, int r, struct kiln_error **err)
{
  if (r == 0)
    return 0;
  if (errno == EPERM || errno == EINVAL)
    {
      if (!x->warned_chown)
        kiln_log_warn ("extract `%s`: cannot set file ownership (%s), keeping the current owner", x->name,
                       strerror (errno));
      x->warned_chown = true;
      return 0;
    }
  return kiln_error_set (err, errno, KILN_E_IO, "set owner");
}

static bool
xattr_allowed (const char *name)
{
  if (strcmp (name, "security.capability") == 0)
    return true;
  return kiln_str_has_prefix (name, "user.") && !kiln_str_has_prefix (name, "user.overlay.");
}

/* user.* and security.capability only: trusted.* and overlay names would
 * forge overlayfs metadata, security.selinux is host policy. */
static int
apply_xattrs (struct xstate *x, int fd, struct archive_entry *e, struct kiln_error **err)
{
  const char *name;
  const void *val;
  size_t size;

  archive_entry_xattr_reset (e);
  while (archive_entry_xattr_next (e, &name, &val, &size) == ARCHIVE_OK)
    {
      if (!xattr_allowed (name))
        {
          kiln_log_warn ("extract `%s`: entry `%s`: dropping xattr `%s`", x->name, archive_entry_pathname (e), name);
          continue;
        }
      if (fsetxattr (fd, name, val, size, 0) == 0)
        continue;
      if (errno == ENOTSUP || errno == EPERM)
        kiln_log_warn ("extract `%s`: entry `%s`: cannot set xattr `%s`: %s", x->name, archive_entry_pathname (e), name,
                       strerror (errno));
      else
        return kiln_error_set (err, errno, KILN_E_IO, "set xattr `%s`", name);
    }
  return 0;
}

/* Order matters: chown clears setuid bits and security.capability, so it
 * comes first, then the mode, then xattrs; times last. */
static int
apply_meta_fd (struct xstate *x, int fd, const struct meta *m, struct archive_entry *e, struct kiln_error **err)
{
  if (m->chown && chown_result (x, fchown (fd, m->uid, m->gid), err) < 0)
    return -1;
  if (fchmod (fd, m->mode) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set mode %04o", (unsigned) m->mode);
  if (e && apply_xattrs (x, fd, e, err) < 0)
    return -1;
  if (futimens (fd, m->times) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times");
  return 0;
}

/* For objects that cannot be opened safely (symlinks, devices, FIFOs). */
static int
apply_meta_at (struct xstate *x, int pfd, const char *base, const struct meta *m, bool is_link, struct kiln_error **err)
{
  if (m->chown && chown_result (x, fchownat (pfd, base, m->uid, m->gid, AT_SYMLINK_NOFOLLOW), err) < 0)
    return -1;
  /* symlinks have no mode of their own on Linux */
  if (!is_link && fchmodat (pfd, base, m->mode, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set mode %04o", (unsigned) m->mode);
  if (utimensat (pfd, base, m->times, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times");
  return 0;
}

/* Makes room for a new object at pfd/base.  Returns 1 when an existing
 * directory is kept (keep_dir: a directory entry over a directory only
 * updates metadata), 0 when the name is free. */
int
kiln_extract_clear_dest (int pfd, const char *base, bool keep_dir, struct kiln_error **err)
{
  struct stat st;
  if (fstatat (pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : kiln_error_set (err, errno, KILN_E_IO, "stat existing `%s`", base);
  if (S_ISDIR (st.st_mode))
    return keep_dir ? 1 : kiln_fs_rm_rf_at (pfd, base, err);
  if (unlinkat (pfd, base, 0) < 0 && errno != ENOENT)
    return kiln_error_set (err, errno, KILN_E_IO, "remove existing `%s`", base);
  return 0;
}

/* ---- entry types ---- */

static int
copy_data (struct xstate *x, int fd, struct archive_entry *e, struct kiln_error **err)
{
  const void *buf;
  size_t size;
  la_int64_t off, end = 0;
  int r;

  /* data blocks carry offsets: sparse holes are simply not written */
  while ((r = archive_read_data_block (x->a, &buf, &size, &off)) != ARCHIVE_EOF)
    {
      if (kiln_extract_archive_check (x, r, err) < 0)
        return -1;
      if (off + (la_int64_t) size > end)
        end = off + (la_int64_t) size;
      for (size_t done = 0; done < size;)
        {
          ssize_t n = pwrite (fd, (const char *) buf + done, size - done, (off_t) (off + (la_int64_t) done));
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            return kiln_error_set (err, errno, KILN_E_IO, "write");
          done += (size_t) n;
        }
    }
  /* only a sparse file ending in a hole is shorter than its size here */
  if (archive_entry_size_is_set (e) && end != archive_entry_size (e) && ftruncate (fd, archive_entry_size (e)) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set size");
  return 0;
}

static int
make_file (struct xstate *x, int pfd, const char *base, struct archive_entry *e, const struct meta *m,
           struct kiln_error **err)
{
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  kiln_autoclose int fd = openat (pfd, base, flags, 0600);
  /* something is there (a lower layer's, an earlier entry): replace it; most
   * files are new, so this costs them no stat */
  if (fd < 0 && errno == EEXIST)
    {
      if (kiln_extract_clear_dest (pfd, base, false, err) < 0)
        return -1;
      fd = openat (pfd, base, flags, 0600);
    }
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create file");
  if (copy_data (x, fd, e, err) < 0)
    return -1;
  return apply_meta_fd (x, fd, m, e, err);
}

static int
make_symlink (struct xstate *x, int pfd, const char *base, struct archive_entry *e, const struct meta *m,
              struct kiln_error **err)
{
  const char *target = archive_entry_symlink (e);
  if (target == NULL || *target == '\0')
    return kiln_error_set (err, EINVAL, KILN_E_PARSE, "symlink has no target");
  if (strlen (target) > KILN_EXTRACT_MAX_PATH)
    return kiln_error_set (err, ENAMETOOLONG, KILN_E_PARSE, "symlink target longer than %d bytes",
                           KILN_EXTRACT_MAX_PATH);
  /* stored as-is: it is only ever resolved in root later */
  if (symlinkat (target, pfd, base) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create symlink");
  return apply_meta_at (x, pfd, base, m, true, err);
}

static int
make_node (struct xstate *x, int pfd, const char *base, const char *path, struct archive_entry *e, const struct meta *m,
           struct kiln_error **err)
{
  mode_t type = archive_entry_filetype (e);
  dev_t dev = type == AE_IFIFO ? 0 : archive_entry_rdev (e);
  if (mknodat (pfd, base, type | 0600, dev) < 0)
    {
      if (errno == EPERM && type != AE_IFIFO)
        {
          kiln_log_warn ("extract `%s`: skipping device node `%s`: %s", x->name, path, strerror (errno));
          return 1;
        }
      return kiln_error_set (err, errno, KILN_E_IO, "create %s", type == AE_IFIFO ? "fifo" : "device node");
    }
  return apply_meta_at (x, pfd, base, m, false, err);
}

static int
add_dir_meta (struct xstate *x, const char *path, const struct stat *st, const struct meta *m)
{
  int *idx = kiln_extract_set_put (&x->created, path);
  if (*idx < 0)
    {
      if (x->ndirs == x->adirs)
        {
          x->adirs = x->adirs ? x->adirs * 2 : 64;
          x->dirs = kiln_xrealloc (x->dirs, x->adirs * sizeof *x->dirs);
        }
      *idx = (int) x->ndirs;
      x->dirs[x->ndirs++] = (struct dirmeta){ .path = kiln_xstrdup (path) };
    }
  /* a later entry for the same directory wins */
  struct dirmeta *d = &x->dirs[*idx];
  d->dev = st->st_dev;
  d->ino = st->st_ino;
  d->m = *m;
  return 0;
}

static int
make_dir (struct xstate *x, int pfd, const char *base, const char *path, struct archive_entry *e, const struct meta *m,
          struct kiln_error **err)
{
  struct stat st;
  int r = kiln_extract_clear_dest (pfd, base, true, err);
  if (r < 0)
    return r;
  if (r == 0 && mkdirat (pfd, base, 0700) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create directory");
  kiln_autoclose int fd = openat (pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open directory");
  /* owner/mode/times wait for the children; xattrs do not change with them */
  if (apply_xattrs (x, fd, e, err) < 0)
    return -1;
  kiln_extract_mark_created (x, path);
  return add_dir_meta (x, path, &st, m);
}

/* Components of a cleaned path ("" is the root: 0). */
static int
split_path (char *path, const char **parent, const char **base)
{
  char *slash = strrchr (path, '/');
  if (slash == NULL)
    {
      *parent = "";
      *base = path;
      return 0;
    }
  *slash = '\0';
  *parent = path;
  *base = slash + 1;
  return 0;
}

/* The target's parent is resolved in root and its last component is not
 * followed (containerd hardlinkRootPath): a hardlink to a symlink links the
 * symlink itself.  A hardlink entry's body, if any, is never written
 * (libarchive #746: it would land in the target inode). */
static int
make_hardlink (struct xstate *x, int pfd, const char *base, const char *linkname, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *tmp = NULL;
  struct stat tst, dst;
  const char *tparent, *tbase;

  if (strlen (linkname) > KILN_EXTRACT_MAX_PATH)
    return kiln_error_set (err, ENAMETOOLONG, KILN_E_PARSE, "hardlink target longer than %d bytes",
                           KILN_EXTRACT_MAX_PATH);
  kiln_autofree char *tpath = kiln_fs_path_clean (linkname);
  if (kiln_fs_path_depth (tpath) > KILN_EXTRACT_MAX_DEPTH)
    return kiln_error_set (err, ENAMETOOLONG, KILN_E_PARSE, "hardlink target deeper than %d directories (the limit)",
                           KILN_EXTRACT_MAX_DEPTH);
  if (*tpath == '\0')
    return kiln_error_set (err, EISDIR, KILN_E_PARSE, "hardlink target `%s` is a directory", linkname);
  split_path (tpath, &tparent, &tbase);
  kiln_autoclose int tpfd = kiln_fs_open_in_root (x->rootfd, tparent, O_PATH | O_DIRECTORY, 0, &tmp);
  if (tpfd < 0 || fstatat (tpfd, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "hardlink target `%s` not found", linkname);
  if (S_ISDIR (tst.st_mode))
    return kiln_error_set (err, EISDIR, KILN_E_PARSE, "hardlink target `%s` is a directory", linkname);
  /* already the same inode (an entry linking to itself): unlinking would lose it */
  if (fstatat (pfd, base, &dst, AT_SYMLINK_NOFOLLOW) == 0 && dst.st_dev == tst.st_dev && dst.st_ino == tst.st_ino)
    return 0;
  if (kiln_extract_clear_dest (pfd, base, false, err) < 0)
    return -1;
  if (linkat (tpfd, tbase, pfd, base, 0) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "hardlink to `%s`", linkname);
  return 0;
}

/* ---- one entry ---- */

static int
create_object (struct xstate *x, int pfd, const char *base, const char *path, struct archive_entry *e,
               struct kiln_error **err)
{
  struct meta m;
  mode_t type = archive_entry_filetype (e);
  int r;

  if (entry_meta (x, e, &m, err) < 0)
    return -1;
  if (type == AE_IFDIR)
    return make_dir (x, pfd, base, path, e, &m, err);
  if (type == AE_IFSOCK)
    {
      kiln_log_warn ("extract `%s`: skipping socket `%s`", x->name, path);
      return 0;
    }
  if (type != AE_IFREG && type != AE_IFLNK && type != AE_IFCHR && type != AE_IFBLK && type != AE_IFIFO)
    return kiln_error_set (err, EINVAL, KILN_E_UNSUPPORTED, "unsupported entry type %o", (unsigned) type);
  if (type != AE_IFREG && kiln_extract_clear_dest (pfd, base, false, err) < 0)
    return -1;
  if (type == AE_IFREG)
    r = make_file (x, pfd, base, e, &m, err);
  else if (type == AE_IFLNK)
    r = make_symlink (x, pfd, base, e, &m, err);
  else
    r = make_node (x, pfd, base, path, e, &m, err);
  if (r == 0)
    kiln_extract_mark_created (x, path);
  return r < 0 ? r : 0;
}

/* The entry's parent directory, resolved in root and created when missing
 * (borrowed: owned by the cache).  One openat2 when it exists, none when the
 * previous entry had the same parent. */
static int
parent_fd (struct xstate *x, const char *parent, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *tmp = NULL;
  int fd = kiln_fs_dircache_get (&x->pcache, x->rootfd, parent, strlen (parent), &tmp);
  if (fd >= 0)
    return fd;
  /* missing: made, then resolved like any other */
  fd = kiln_fs_mkdir_p_in_root (x->rootfd, parent, 0755, err);
  if (fd < 0)
    return -1;
  close (fd);
  return kiln_fs_dircache_get (&x->pcache, x->rootfd, parent, strlen (parent), err);
}

static int
extract_path (struct xstate *x, struct archive_entry *e, char *path, struct kiln_error **err)
{
  const char *parent, *base;
  const char *hardlink = archive_entry_hardlink (e);

  if (*path == '\0')
    {
      /* BuildKit (go-archive Unpack: Clean("") and Clean("./") are ".", and
       * "." on an existing directory is skipped before anything else) and
       * containerd (an entry resolving to the root is ignored) skip it,
       * whatever its type: the root keeps its own metadata and is never
       * replaced (CVE-2021-29136 was a symlink named "." replacing it). */
      if (archive_entry_filetype (e) != AE_IFDIR || hardlink != NULL)
        kiln_log_warn ("extract `%s`: skipping entry `%s`: it names the root but is not a directory", x->name,
                       archive_entry_pathname (e));
      return 0;
    }
  kiln_autofree char *full = kiln_xstrdup (path);
  split_path (path, &parent, &base);
  if ((x->opts->whiteouts || x->opts->overlay_whiteouts) && kiln_str_has_prefix (base, WH_PREFIX))
    {
      kiln_fs_dircache_clear (&x->pcache);
      return kiln_extract_whiteout (x, parent, base, err);
    }
  int pfd = parent_fd (x, parent, err);
  if (pfd < 0)
    return -1;
  if (hardlink)
    {
      if (make_hardlink (x, pfd, base, hardlink, err) < 0)
        return -1;
      kiln_extract_mark_created (x, full);
      return 0;
    }
  return create_object (x, pfd, base, full, e, err);
}

int
kiln_extract_entry (struct xstate *x, struct archive_entry *e, struct kiln_error **err)
{
  const char *raw = archive_entry_pathname (e);
  /* an empty name is the root, as tar and BuildKit read it */
  if (raw == NULL)
    raw = "";
  if (strlen (raw) > KILN_EXTRACT_MAX_PATH)
    return kiln_error_set (err, ENAMETOOLONG, KILN_E_PARSE, "entry `%.64s...`: name longer than %d bytes (the limit)",
                           raw, KILN_EXTRACT_MAX_PATH);
  kiln_autofree char *path = kiln_fs_path_clean (raw);
  if (kiln_fs_path_depth (path) > KILN_EXTRACT_MAX_DEPTH)
    return kiln_error_set (err, ENAMETOOLONG, KILN_E_PARSE, "entry `%.64s...`: deeper than %d directories (the limit)",
                           raw, KILN_EXTRACT_MAX_DEPTH);
  if (extract_path (x, e, path, err) < 0)
    return kiln_error_wrap (err, "entry `%s`", raw);
  return 0;
}

/* Deepest-last entries first: children get their times before parents, and
 * a 0500 parent is applied after its subdirectories. */
int
kiln_extract_dir_meta (struct xstate *x, struct kiln_error **err)
{
  for (size_t i = x->ndirs; i-- > 0;)
    {
      struct dirmeta *d = &x->dirs[i];
      kiln_autoerror struct kiln_error *tmp = NULL;
      struct stat st;
      kiln_autoclose int fd = kiln_fs_open_in_root (x->rootfd, d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, &tmp);
      /* gone, or replaced by something else since: not ours to touch */
      if (fd < 0 || fstat (fd, &st) < 0 || st.st_dev != d->dev || st.st_ino != d->ino)
        continue;
      if (apply_meta_fd (x, fd, &d->m, NULL, err) < 0)
        return kiln_error_wrap (err, "entry `%s`", d->path);
    }
  return 0;
}
