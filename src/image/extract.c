/* extract.c - the hardened tar extractor: no entry of a hostile tar can write outside the root.
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
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/toc.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"

#define READ_BLOCK (64 * 1024)
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ---- a string set with an int value per key (open addressing) ---- */

struct pathset {
  char **keys;
  int *vals;
  size_t cap, n;
};

static size_t
set_slot (const struct pathset *s, const char *key)
{
  size_t i = kiln_str_hash (key) & (s->cap - 1);
  while (s->keys[i] && strcmp (s->keys[i], key) != 0)
    i = (i + 1) & (s->cap - 1);
  return i;
}

static int *
set_get (const struct pathset *s, const char *key)
{
  if (s->cap == 0)
    return NULL;
  size_t i = set_slot (s, key);
  return s->keys[i] ? &s->vals[i] : NULL;
}

static void
set_grow (struct pathset *s)
{
  struct pathset old = *s;
  s->cap = old.cap ? old.cap * 2 : 256;
  s->keys = kiln_xcalloc (s->cap, sizeof *s->keys);
  s->vals = kiln_xcalloc (s->cap, sizeof *s->vals);
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i])
      {
        size_t j = set_slot (s, old.keys[i]);
        s->keys[j] = old.keys[i];
        s->vals[j] = old.vals[i];
      }
  free (old.keys);
  free (old.vals);
}

/* Returns the value slot of key, inserting it with -1 when new. */
static int *
set_put (struct pathset *s, const char *key)
{
  if ((s->n + 1) * 2 > s->cap)
    set_grow (s);
  size_t i = set_slot (s, key);
  if (!s->keys[i])
    {
      s->keys[i] = kiln_xstrdup (key);
      s->vals[i] = -1;
      s->n++;
    }
  return &s->vals[i];
}

static void
set_clear (struct pathset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free (s->keys[i]);
  free (s->keys);
  free (s->vals);
  memset (s, 0, sizeof *s);
}

/* ---- extraction state ---- */

struct meta {
  mode_t mode; /* permission bits incl. setuid/setgid/sticky */
  bool chown;
  uid_t uid;
  gid_t gid;
  struct timespec times[2]; /* atime, mtime */
};

struct dirmeta {
  char *path;
  dev_t dev;
  ino_t ino;
  struct meta m;
};

struct xstate {
  const char *name;
  int rootfd;
  const struct kiln_extract_opts *opts;
  struct archive *a;
  struct pathset created; /* paths made by this archive, value = index in dirs or -1 */
  struct dirmeta *dirs;
  size_t ndirs, adirs;
  bool warned_chown;
  /* The directory the previous entry went into (a tar lists a directory's
   * files together): its path and fd, so its files skip resolving it again.
   * Valid only while every change goes through parent_fd; a whiteout, which
   * may remove directories by its own lookup, drops it. */
  struct kiln_fs_dircache pcache;
};

static void
xstate_clear (struct xstate *x)
{
  for (size_t i = 0; i < x->ndirs; i++)
    free (x->dirs[i].path);
  free (x->dirs);
  set_clear (&x->created);
  kiln_fs_dircache_clear (&x->pcache);
  if (x->a)
    archive_read_free (x->a);
}

/* Records path and its ancestors as created by this layer; stops at the first
 * ancestor already known, since its own ancestors were recorded with it. */
static void
mark_created (struct xstate *x, const char *path)
{
  kiln_autofree char *p = kiln_xstrdup (path);
  while (*p && !set_get (&x->created, p))
    {
      set_put (&x->created, p);
      char *slash = strrchr (p, '/');
      if (!slash)
        break;
      *slash = '\0';
    }
}

/* The one place that turns a libarchive status into a kiln_error
 * (STYLE §14): WARN is logged, FAILED/FATAL/RETRY fail. */
static int
archive_check (struct xstate *x, int r, struct kiln_error **err)
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
static int
clear_dest (int pfd, const char *base, bool keep_dir, struct kiln_error **err)
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
      if (archive_check (x, r, err) < 0)
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
      if (clear_dest (pfd, base, false, err) < 0)
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
  int *idx = set_put (&x->created, path);
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
  int r = clear_dest (pfd, base, true, err);
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
  mark_created (x, path);
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
  if (clear_dest (pfd, base, false, err) < 0)
    return -1;
  if (linkat (tpfd, tbase, pfd, base, 0) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "hardlink to `%s`", linkname);
  return 0;
}

/* ---- whiteouts ---- */

static int
clear_lower (struct xstate *x, int dfd, const char *dirpath, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  if (kiln_fs_list_names (dfd, dirpath, &names, err) < 0)
    return -1;
  for (size_t i = 0; names && names[i]; i++)
    {
      kiln_autofree char *child = *dirpath ? kiln_xasprintf ("%s/%s", dirpath, names[i]) : kiln_xstrdup (names[i]);
      if (!set_get (&x->created, child))
        {
          if (kiln_fs_rm_rf_at (dfd, names[i], err) < 0)
            return -1;
          continue;
        }
      /* a same-layer directory may sit over a lower one: clear inside it too */
      kiln_autoclose int cfd = openat (dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd >= 0 && clear_lower (x, cfd, child, err) < 0)
        return -1;
    }
  return 0;
}

/* Overlay opaque marker on the directory parent (created when missing).
 * user.overlay.opaque always (what overlayfs reads with `userxattr`, i.e. in
 * a user namespace); trusted.overlay.opaque too when we may set it. */
static int
mark_opaque (struct xstate *x, const char *parent, struct kiln_error **err)
{
  kiln_autoclose int pfd = kiln_fs_mkdir_p_in_root (x->rootfd, parent, 0755, err);
  if (pfd < 0)
    return -1;
  kiln_autoclose int dfd = openat (pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", parent);
  mark_created (x, parent);
  int user = fsetxattr (dfd, "user.overlay.opaque", "y", 1, 0);
  int user_errno = errno;
  int trusted = fsetxattr (dfd, "trusted.overlay.opaque", "y", 1, 0);
  if (trusted < 0 && errno != EPERM)
    return kiln_error_set (err, errno, KILN_E_IO, "set xattr `trusted.overlay.opaque`");
  if (user < 0 && trusted < 0)
    return kiln_error_set (err, user_errno, KILN_E_IO, "set xattr `user.overlay.opaque`");
  return 0;
}

/* ".wh.NAME" as an overlay whiteout: a 0:0 character device replacing
 * whatever a lower layer has at NAME. */
static int
make_overlay_whiteout (struct xstate *x, const char *parent, const char *victim, struct kiln_error **err)
{
  kiln_autoclose int pfd = kiln_fs_mkdir_p_in_root (x->rootfd, parent, 0755, err);
  if (pfd < 0)
    return -1;
  mark_created (x, parent);
  if (clear_dest (pfd, victim, false, err) < 0)
    return -1;
  if (mknodat (pfd, victim, S_IFCHR, makedev (0, 0)) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create overlay whiteout `%s`", victim);
  return 0;
}

static int
apply_whiteout (struct xstate *x, const char *parent, const char *base, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *tmp = NULL;
  const char *victim = base + strlen (WH_PREFIX);
  bool opaque = strcmp (base, WH_OPAQUE) == 0;

  if (!opaque
      && (kiln_str_has_prefix (victim, WH_PREFIX) || *victim == '\0' || strcmp (victim, ".") == 0
          || strcmp (victim, "..") == 0))
    return kiln_error_set (err, EINVAL, KILN_E_PARSE, "invalid whiteout `%s`", base);
  kiln_autofree char *vpath = *parent ? kiln_xasprintf ("%s/%s", parent, victim) : kiln_xstrdup (victim);
  if (!opaque && set_get (&x->created, vpath))
    return 0; /* same-layer entries are never whited out */
  if (x->opts->overlay_whiteouts)
    return opaque ? mark_opaque (x, parent, err) : make_overlay_whiteout (x, parent, victim, err);
  /* the parent is resolved in root, so ".wh.x" under "localetc -> /etc"
   * removes root/etc/x; a missing parent means nothing to remove */
  kiln_autoclose int dfd = kiln_fs_open_in_root (x->rootfd, parent, O_RDONLY | O_DIRECTORY, 0, &tmp);
  if (dfd < 0)
    {
      if (tmp->errnum == ENOENT || tmp->errnum == ENOTDIR)
        return 0;
      *err = kiln_steal_ptr (&tmp);
      return kiln_error_code (*err);
    }
  if (opaque)
    return clear_lower (x, dfd, parent, err);
  return kiln_fs_rm_rf_at (dfd, victim, err);
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
  if (type != AE_IFREG && clear_dest (pfd, base, false, err) < 0)
    return -1;
  if (type == AE_IFREG)
    r = make_file (x, pfd, base, e, &m, err);
  else if (type == AE_IFLNK)
    r = make_symlink (x, pfd, base, e, &m, err);
  else
    r = make_node (x, pfd, base, path, e, &m, err);
  if (r == 0)
    mark_created (x, path);
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
      return apply_whiteout (x, parent, base, err);
    }
  int pfd = parent_fd (x, parent, err);
  if (pfd < 0)
    return -1;
  if (hardlink)
    {
      if (make_hardlink (x, pfd, base, hardlink, err) < 0)
        return -1;
      mark_created (x, full);
      return 0;
    }
  return create_object (x, pfd, base, full, e, err);
}

static int
extract_entry (struct xstate *x, struct archive_entry *e, struct kiln_error **err)
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
static int
apply_dir_meta (struct xstate *x, struct kiln_error **err)
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

/* Only tar formats, and only decompressors linked in-process: libarchive
 * falls back to exec'ing an external program when a library is missing,
 * which docs/security.md rules out (no external programs). */
static void
support_filters (struct archive *a)
{
  if (archive_zlib_version ())
    archive_read_support_filter_gzip (a);
  if (archive_bzlib_version ())
    archive_read_support_filter_bzip2 (a);
  if (archive_liblzma_version ())
    archive_read_support_filter_xz (a);
  if (archive_libzstd_version ())
    archive_read_support_filter_zstd (a);
}

static void
support_formats (struct archive *a)
{
  archive_read_support_format_tar (a);
  support_filters (a);
}

/* Docker and BuildKit (DecompressStream) undo one compression, detected by
 * its magic; libarchive would undo any number.  The filter count includes
 * the reader itself: 1 for a plain tar, 2 for a compressed one. */
static bool
one_compression (struct archive *a)
{
  return archive_filter_count (a) <= 2;
}

static int
open_reader (struct xstate *x, int fd, struct kiln_error **err)
{
  struct archive *a = x->a = archive_read_new ();
  support_formats (a);
  return archive_check (x, archive_read_open_fd (a, fd, READ_BLOCK), err);
}

struct peek {
  int fd;
  off_t off;
  char buf[READ_BLOCK];
};

static la_ssize_t
peek_read (struct archive *a, void *ud, const void **out)
{
  struct peek *p = ud;
  ssize_t n;
  (void) a;
  do
    n = pread (p->fd, p->buf, sizeof p->buf, p->off);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    p->off += n;
  *out = p->buf;
  return n;
}

/* Whether the uncompressed stream of fd, read from offset start, holds
 * more than pos bytes: 1 yes, 0 no, -1 unreadable.  Decompresses again, with
 * pread (fd's offset is untouched). */
static int
bytes_after (int fd, off_t start, int64_t pos)
{
  struct archive_entry *e;
  kiln_autofree struct peek *p = kiln_xmalloc (sizeof *p);
  kiln_autofree char *buf = kiln_xmalloc (READ_BLOCK);
  struct archive *a = archive_read_new ();
  int64_t total = 0;
  la_ssize_t n = -1;
  p->fd = fd;
  p->off = start;
  support_filters (a);
  archive_read_support_format_raw (a);
  if (archive_read_open (a, p, NULL, peek_read, NULL) == ARCHIVE_OK && archive_read_next_header (a, &e) == ARCHIVE_OK)
    while ((n = archive_read_data (a, buf, READ_BLOCK)) > 0 && total <= pos)
      total += n;
  archive_read_free (a);
  if (n < 0)
    return -1;
  return total > pos;
}

/* Go's archive/tar, with which BuildKit extracts ADD archives, ends a tar at
 * a clean end of input or at two zero blocks: a zero block followed by a
 * partial block (ErrUnexpectedEOF) or by a non-zero one (ErrHeader) fails
 * the build.  libarchive ends at the first zero block in both cases, so when
 * it consumed exactly one zero block, look at what follows it.  start < 0:
 * the input cannot be re-read (a pipe), libarchive's answer stands. */
static int
check_end_marker (struct xstate *x, int fd, off_t start, struct kiln_error **err)
{
  int64_t end = archive_filter_bytes (x->a, 0);
  int64_t marker = archive_read_header_position (x->a);
  if (start < 0 || end - marker != 512)
    return 0;
  int more = bytes_after (fd, start, end);
  if (more < 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "read the end of the archive again");
  if (more)
    return kiln_error_set (err, 0, KILN_E_PARSE, "truncated tar archive: damaged end-of-archive marker");
  return 0;
}

/* Entries until the end of the archive; max_filters: the filter count
 * allowed (the reader itself is one, see one_compression). */
static int
read_entries (struct xstate *x, int max_filters, struct kiln_error **err)
{
  struct archive_entry *e;
  for (;;)
    {
      int r = archive_read_next_header (x->a, &e);
      if (r == ARCHIVE_EOF)
        return 0;
      if (archive_check (x, r, err) < 0)
        return -1;
      if (archive_filter_count (x->a) > max_filters)
        return kiln_error_set (err, 0, KILN_E_PARSE, "compressed more than once (a tar is decompressed once)");
      if (x->opts->toc)
        kiln_toc_rec_add_archive (x->opts->toc, e);
      if (extract_entry (x, e, err) < 0)
        return -1;
    }
}

int
kiln_extract_fd (int fd, const char *name, int rootfd, const struct kiln_extract_opts *opts, struct kiln_error **err)
{
  struct xstate x = { .name = name, .rootfd = rootfd, .opts = opts, .pcache = KILN_FS_DIRCACHE_INIT };
  off_t start = lseek (fd, 0, SEEK_CUR);
  int r;

  locale_t old = kiln_locale_utf8_enter ();
  if ((r = open_reader (&x, fd, err)) == 0 && (r = read_entries (&x, 2, err)) == 0
      && (r = check_end_marker (&x, fd, start, err)) == 0)
    r = apply_dir_meta (&x, err);
  kiln_locale_restore (old);
  xstate_clear (&x);
  if (r < 0)
    return kiln_error_wrap (err, "extract `%s`", name);
  return 0;
}

/* ---- a stream instead of a file ---- */

struct sread {
  kiln_extract_read_fn fn;
  void *opaque;
  struct kiln_error *err; /* the read function's own failure */
  int64_t delivered;      /* bytes handed to libarchive */
};

static la_ssize_t
sread_cb (struct archive *a, void *ud, const void **out)
{
  struct sread *s = ud;
  ssize_t n = s->fn (s->opaque, out, &s->err);
  if (n < 0)
    {
      archive_set_error (a, EIO, "%s", s->err ? s->err->msg : "read error");
      return -1;
    }
  s->delivered += n;
  return n;
}

/* check_end_marker for a stream, which cannot be read again: whatever
 * follows the one zero block is either already handed to libarchive or
 * still to come, and one more byte of either means the marker is damaged.
 * Behind a libarchive filter the positions are not the stream's: skipped. */
static int
stream_end_marker (struct xstate *x, struct sread *s, struct kiln_error **err)
{
  int64_t end = archive_filter_bytes (x->a, 0);
  int64_t marker = archive_read_header_position (x->a);
  const void *buf;
  if (end - marker != 512 || archive_filter_count (x->a) != 1)
    return 0;
  ssize_t n = s->delivered > end ? 1 : s->fn (s->opaque, &buf, err);
  if (n < 0)
    return -1;
  if (n > 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "truncated tar archive: damaged end-of-archive marker");
  return 0;
}

int
kiln_extract_stream (kiln_extract_read_fn read, void *opaque, bool decompressed, const char *name, int rootfd,
                     const struct kiln_extract_opts *opts, struct kiln_error **err)
{
  struct xstate x = { .name = name, .rootfd = rootfd, .opts = opts, .pcache = KILN_FS_DIRCACHE_INIT };
  struct sread s = { .fn = read, .opaque = opaque };
  int r;

  locale_t old = kiln_locale_utf8_enter ();
  x.a = archive_read_new ();
  support_formats (x.a);
  r = archive_check (&x, archive_read_open (x.a, &s, NULL, sread_cb, NULL), err);
  if (r == 0 && (r = read_entries (&x, decompressed ? 1 : 2, err)) == 0 && (r = stream_end_marker (&x, &s, err)) == 0)
    r = apply_dir_meta (&x, err);
  kiln_locale_restore (old);
  xstate_clear (&x);
  if (r < 0 && s.err)
    {
      /* the stream's own error says more than libarchive's copy of it */
      kiln_error_free (err);
      *err = kiln_steal_ptr (&s.err);
    }
  kiln_error_free (&s.err);
  if (r < 0)
    return kiln_error_wrap (err, "extract `%s`", name);
  return 0;
}

static bool
tar_checksum_ok (const unsigned char *h)
{
  unsigned long want = 0, sum = 0;
  long ssum = 0;
  int i = 148, digits = 0;

  while (i < 156 && h[i] == ' ')
    i++;
  for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++, digits++)
    want = want * 8 + (unsigned long) (h[i] - '0');
  if (digits == 0 || (i < 156 && h[i] != ' ' && h[i] != '\0'))
    return false;
  for (i = 0; i < 512; i++)
    {
      unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
      sum += c;
      ssum += (signed char) c;
    }
  /* some old tars summed signed chars */
  return want == sum || (long) want == ssum;
}

/* Docker extracts a compressed file only when what it holds is a tar: a
 * gzip'd text file is copied as it is, and so is a gzip'd tar.xz (BuildKit
 * isArchivePath: one DecompressStream, then tar.Next must succeed).  Reads with pread, so fd's offset
 * is untouched. */
static bool
compressed_tar (int fd)
{
  struct archive_entry *e;
  struct peek *p = kiln_xmalloc (sizeof *p);
  struct archive *a = archive_read_new ();
  p->fd = fd;
  p->off = 0;
  support_formats (a);
  /* a warning (a name libarchive cannot convert) still means a tar */
  locale_t old = kiln_locale_utf8_enter ();
  int r = archive_read_open (a, p, NULL, peek_read, NULL);
  if (r == ARCHIVE_OK)
    r = archive_read_next_header (a, &e);
  bool ok = (r == ARCHIVE_OK || r == ARCHIVE_WARN) && one_compression (a);
  kiln_locale_restore (old);
  archive_read_free (a);
  free (p);
  return ok;
}

bool
kiln_extract_is_archive (int fd)
{
  unsigned char h[512];
  ssize_t n;

  do
    n = pread (fd, h, sizeof h, 0);
  while (n < 0 && errno == EINTR);
  if (n < 4)
    return false;
  if ((h[0] == 0x1f && h[1] == 0x8b) || memcmp (h, "BZh", 3) == 0
      || (n >= 6
          && memcmp (h,
                     "\xfd"
                     "7zXZ\0",
                     6)
                 == 0)
      || memcmp (h, "\x28\xb5\x2f\xfd", 4) == 0)
    return compressed_tar (fd);
  return n == (ssize_t) sizeof h && tar_checksum_ok (h);
}

int
kiln_extract_layers (struct kiln_store *st, const struct kiln_descriptor *layers, size_t n, int rootfd,
                     struct kiln_error **err)
{
  const struct kiln_extract_opts opts = { .whiteouts = true, .keep_owner = true };
  for (size_t i = 0; i < n; i++)
    {
      kiln_autoclose int fd = kiln_store_blob_open (st, &layers[i].digest, err);
      if (fd < 0)
        return kiln_error_wrap (err, "extract layer %zu", i + 1);
      if (kiln_extract_fd (fd, layers[i].digest.s, rootfd, &opts, err) < 0)
        return -1;
    }
  return 0;
}
