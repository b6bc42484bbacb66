/* snapshot_mount.c - the overlay (or copy) a RUN step runs in.
 *
 * Why the new mount API first: mount(2) takes all options in one page, so
 * "lowerdir=a:b:..." caps an image at ~50 layers under a long root path;
 * fsconfig "lowerdir+" (Linux 6.8) takes one layer per call.  redirect_dir
 * and metacopy are forced off: with them a renamed directory or a chmod is
 * recorded as overlay xattrs pointing into the lowers, which a tar of the
 * upper dir cannot express. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/snapshot.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

/* uid_map "0 0 4294967295" is the initial user namespace; anything else is
 * a user namespace where only user.* xattrs can be written. */
static bool
in_init_userns (void)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *e = NULL;
  unsigned long a = 1, c = 1, n = 0;
  bool init = true;
  if (kiln_fs_read_file (AT_FDCWD, "/proc/self/uid_map", 4096, &b, &e) == 0)
    init = sscanf (b.buf, "%lu %lu %lu", &a, &c, &n) == 3 && a == 0 && c == 0 && n == 4294967295UL;
  kiln_error_free (&e);
  kiln_buf_release (&b);
  return init;
}

/* The kernel explains fsconfig failures in the fs context's log. */
static void
read_fs_log (int fsfd, char *msg, size_t size)
{
  ssize_t n = read (fsfd, msg, size - 1);
  msg[n > 0 ? n : 0] = '\0';
  if (n > 0 && msg[n - 1] == '\n')
    msg[n - 1] = '\0';
}

static int
set_str (int fsfd, const char *key, const char *val)
{
  return fsconfig (fsfd, FSCONFIG_SET_STRING, key, val, 0);
}

/* Returns 0, or -errno with msg filled; -ENOSYS / -ENOPARAM-like EINVAL on
 * the first "lowerdir+" means: retry with mount(2). */
static int
mount_new_api (const struct kiln_mount *m, char *const *lowers, int mergedfd, bool *legacy, char *msg, size_t size)
{
  kiln_autoclose int fsfd = fsopen ("overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0)
    {
      *legacy = errno == ENOSYS;
      return -errno;
    }
  for (size_t i = 0; lowers[i]; i++)
    if (set_str (fsfd, "lowerdir+", lowers[i]) < 0)
      {
        int e = errno;
        *legacy = i == 0 && e == EINVAL;
        read_fs_log (fsfd, msg, size);
        return -e;
      }
  kiln_autofree char *upper = kiln_xasprintf ("%s/upper", m->dir);
  kiln_autofree char *work = kiln_xasprintf ("%s/work", m->dir);
  if (set_str (fsfd, "upperdir", upper) < 0
      || set_str (fsfd, "workdir", work) < 0
      /* userxattr conflicts with redirect_dir=off; nofollow also never follows redirects */
      || set_str (fsfd, "redirect_dir", m->userxattr ? "nofollow" : "off") < 0 || set_str (fsfd, "metacopy", "off") < 0
      || (m->userxattr && fsconfig (fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
      /* volatile (Linux 5.10): no syncfs of the whole upper filesystem at
       * umount (seconds after a big COPY); the upper dir is diffed into a
       * fsynced blob and then thrown away or kept as a snapshot, which is a
       * cache marked with the boot it was written in (snapshot.c), so it
       * needs no durability.  Optional. */
      || (fsconfig (fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0), false)
      || fsconfig (fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    {
      int e = errno; /* read_fs_log's read would clobber it */
      read_fs_log (fsfd, msg, size);
      return -e;
    }
  kiln_autoclose int mfd = fsmount (fsfd, FSMOUNT_CLOEXEC, 0);
  if (mfd < 0 || move_mount (mfd, "", mergedfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    {
      int e = errno;
      read_fs_log (fsfd, msg, size);
      return -e;
    }
  return 0;
}

/* mount(2): one option page, and ':' ',' in paths cannot be escaped reliably. */
static int
mount_legacy (const struct kiln_mount *m, char *const *lowers, char *msg, size_t size)
{
  kiln_autobuf struct kiln_buf o = KILN_BUF_INIT;
  kiln_buf_adds (&o, "lowerdir=");
  for (size_t i = 0; lowers[i]; i++)
    kiln_buf_addf (&o, "%s%s", i ? ":" : "", lowers[i]);
  kiln_buf_addf (&o, ",upperdir=%s/upper,workdir=%s/work,redirect_dir=%s,metacopy=off%s", m->dir, m->dir,
                 m->userxattr ? "nofollow" : "off", m->userxattr ? ",userxattr" : "");
  if (strchr (m->dir, ',') || strchr (m->dir, ':') || o.len >= 4096)
    {
      snprintf (msg, size, "overlay options too long or with `:`/`,` in paths (%zu bytes)", o.len);
      return -E2BIG;
    }
  if (mount ("overlay", m->merged, "overlay", 0, o.buf) < 0)
    return -errno;
  return 0;
}

static int
mount_overlay (struct kiln_mount *m, char *const *lowers, int mergedfd, struct kiln_error **err)
{
  char msg[512] = "";
  bool legacy = false;
  int r = mount_new_api (m, lowers, mergedfd, &legacy, msg, sizeof msg);
  if (r < 0 && legacy)
    r = mount_legacy (m, lowers, msg, sizeof msg);
  if (r == 0)
    {
      m->mounted = true;
      return 0;
    }
  return kiln_error_set (err, -r, KILN_E_IO, "mount overlay on `%s`%s%s", m->merged, *msg ? ": " : "", msg);
}

/* ---- copy mode: the flattened lowers, copied ---- */

static int copy_dir (const struct kiln_lstack *s, int dstfd, struct kiln_error **err);

static int
copy_xattrs (int from, int to, struct kiln_error **err)
{
  struct kiln_xattrs x;
  int r = kiln_xattrs_read (from, &x, err);
  for (size_t i = 0; r == 0 && i < x.n; i++)
    if (fsetxattr (to, x.name[i], x.value[i], x.size[i], 0) < 0)
      r = kiln_error_set (err, errno, KILN_E_IO, "set xattr `%s`", x.name[i]);
  kiln_xattrs_clear (&x);
  return r;
}

/* chown first (it clears setuid bits and capabilities), then mode, xattrs, times. */
static int
copy_meta_fd (int from, int to, const struct stat *st, struct kiln_error **err)
{
  struct timespec t[2] = { st->st_atim, st->st_mtim };
  if (fchown (to, st->st_uid, st->st_gid) < 0 && errno != EPERM && errno != EINVAL)
    return kiln_error_set (err, errno, KILN_E_IO, "set owner");
  if (fchmod (to, st->st_mode & 07777) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set mode");
  if (copy_xattrs (from, to, err) < 0)
    return -1;
  if (futimens (to, t) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times");
  return 0;
}

static int
copy_file (int srcdir, const char *name, int dstfd, const struct stat *st, struct kiln_error **err)
{
  kiln_autoclose int in = openat (srcdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  kiln_autoclose int out = openat (dstfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (in < 0 || out < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s` to copy", name);
  if (kiln_fs_copy_data (in, out, UINT64_MAX, err) < 0)
    return -1;
  return copy_meta_fd (in, out, st, err);
}

static int
copy_special (int srcdir, const char *name, int dstfd, const struct stat *st, struct kiln_error **err)
{
  struct timespec t[2] = { st->st_atim, st->st_mtim };
  if (S_ISLNK (st->st_mode))
    {
      char target[PATH_MAX + 1];
      ssize_t n = readlinkat (srcdir, name, target, PATH_MAX);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read symlink `%s`", name);
      target[n] = '\0';
      if (symlinkat (target, dstfd, name) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "create symlink `%s`", name);
    }
  else if (mknodat (dstfd, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create node `%s`", name);
  if (fchownat (dstfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
    return kiln_error_set (err, errno, KILN_E_IO, "set owner of `%s`", name);
  if (!S_ISLNK (st->st_mode) && fchmodat (dstfd, name, st->st_mode & 07777, 0) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set mode of `%s`", name);
  if (utimensat (dstfd, name, t, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set times of `%s`", name);
  return 0;
}

static int
copy_subdir (const struct kiln_lstack *child, const char *name, int dstfd, const struct stat *st,
             struct kiln_error **err)
{
  if (mkdirat (dstfd, name, 0700) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", name);
  kiln_autoclose int fd = openat (dstfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", name);
  if (copy_dir (child, fd, err) < 0)
    return -1;
  /* metadata after the children, or their creation would move the mtime */
  return copy_meta_fd (child->fds[0], fd, st, err);
}

static int
copy_one (const struct kiln_lstack *s, const char *name, int dstfd, struct kiln_error **err)
{
  struct kiln_lstack child;
  struct stat st;
  size_t layer = 0;
  int r = kiln_snapshot_lstack_lookup (s, name, &st, &layer, &child, err);
  if (r == KILN_LOOKUP_DIR)
    r = copy_subdir (&child, name, dstfd, &st, err);
  else if (r == KILN_LOOKUP_FILE && S_ISREG (st.st_mode))
    r = copy_file (s->fds[layer], name, dstfd, &st, err);
  else if (r == KILN_LOOKUP_FILE && !S_ISSOCK (st.st_mode))
    r = copy_special (s->fds[layer], name, dstfd, &st, err);
  kiln_snapshot_lstack_clear (&child);
  return r < 0 ? kiln_error_wrap (err, "copy `%s`", name) : 0;
}

static int
copy_dir (const struct kiln_lstack *s, int dstfd, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  if (kiln_snapshot_lstack_list (s, &names, err) < 0)
    return -1;
  for (size_t i = 0; names[i]; i++)
    if (copy_one (s, names[i], dstfd, err) < 0)
      return -1;
  return 0;
}

static int
copy_lowers (struct kiln_mount *m, int mergedfd, struct kiln_error **err)
{
  struct kiln_lstack s;
  struct stat st;
  if (kiln_snapshot_lstack_open_roots (m->lowers, &s, err) < 0)
    return -1;
  int r = 0;
  if (s.n > 0)
    {
      r = copy_dir (&s, mergedfd, err);
      if (r == 0 && fstat (s.fds[0], &st) == 0)
        r = copy_meta_fd (s.fds[0], mergedfd, &st, err);
    }
  kiln_snapshot_lstack_clear (&s);
  return r < 0 ? kiln_error_wrap (err, "copy lower dirs into `%s`", m->merged) : 0;
}

/* ---- mount / unmount ---- */

static void
mount_free (struct kiln_mount *m)
{
  free (m->relpath);
  free (m->dir);
  free (m->merged);
  free (m->upper);
  kiln_strv_free (m->lowers);
  free (m);
}

/* The root of the step's filesystem takes the top layer's root metadata
 * (overlay shows the upper dir's root), 0755 root when there is none. */
static int
init_root (char *const *lowers, int fd, struct kiln_error **err)
{
  struct stat st = { .st_mode = S_IFDIR | 0755 };
  if (lowers[0] && stat (lowers[0], &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", lowers[0]);
  if (fchown (fd, st.st_uid, st.st_gid) < 0 && errno != EPERM && errno != EINVAL)
    return kiln_error_set (err, errno, KILN_E_IO, "set owner");
  if (fchmod (fd, st.st_mode & 07777) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "set mode");
  return 0;
}

static int
make_dirs (struct kiln_store *st, struct kiln_mount *m, int *dirfd, struct kiln_error **err)
{
  static const char *const sub[] = { "upper", "work", "merged", "empty" };
  if (kiln_store_mktemp_dir (st, &m->relpath, err) < 0)
    return -1;
  kiln_autofree char *root = realpath (kiln_store_root (st), NULL);
  m->dir = kiln_xasprintf ("%s/%s", root ? root : kiln_store_root (st), m->relpath);
  m->merged = kiln_xasprintf ("%s/merged", m->dir);
  *dirfd = kiln_fs_open_beneath (kiln_store_dirfd (st), m->relpath, O_RDONLY | O_DIRECTORY, 0, err);
  if (*dirfd < 0)
    return -1;
  for (size_t i = 0; i < sizeof sub / sizeof *sub; i++)
    if (mkdirat (*dirfd, sub[i], 0755) < 0)
      return kiln_error_set (err, errno, KILN_E_IO, "create `%s/%s`", m->relpath, sub[i]);
  return 0;
}

/* Overlay or, when the kernel refuses it, copy mode.  Other failures stay failures. */
static int
mount_or_copy (struct kiln_mount *m, const struct kiln_mount_opts *o, int dirfd, int mergedfd, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autostrv char **lowers = kiln_strv_dup (m->lowers);
  if (!lowers[0])
    kiln_strv_push_take (&lowers, kiln_xasprintf ("%s/empty", m->dir));
  if (!o->force_copy)
    {
      kiln_autoclose int upfd = openat (dirfd, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (upfd < 0 || init_root (m->lowers, upfd, err) < 0)
        return upfd < 0 ? kiln_error_set (err, errno, KILN_E_IO, "open upper dir") : -1;
      if (mount_overlay (m, lowers, mergedfd, &e) == 0)
        {
          m->upper = kiln_xasprintf ("%s/upper", m->dir);
          return 0;
        }
      if (e->errnum != ENODEV && e->errnum != EPERM && e->errnum != EINVAL)
        return *err = kiln_steal_ptr (&e), kiln_error_code (*err);
      kiln_log_info ("overlayfs unavailable (%s), copying the lower layers instead", e->msg);
    }
  m->copy_mode = true;
  if (init_root (m->lowers, mergedfd, err) < 0)
    return -1;
  return copy_lowers (m, mergedfd, err);
}

int
kiln_snapshot_mount (struct kiln_store *st, char *const *lowerdirs, const struct kiln_mount_opts *opts,
                     struct kiln_mount **out, struct kiln_error **err)
{
  const struct kiln_mount_opts defaults = { 0 };
  const struct kiln_mount_opts *o = opts ? opts : &defaults;
  struct kiln_mount *m = kiln_xcalloc (1, sizeof *m);
  kiln_autoclose int dirfd = -1;
  m->lowers = kiln_strv_dup (lowerdirs);
  if (!m->lowers)
    m->lowers = kiln_xcalloc (1, sizeof *m->lowers);
  m->userxattr = o->userxattr || !in_init_userns ();
  int r = make_dirs (st, m, &dirfd, err);
  kiln_autoclose int mergedfd = r < 0 ? -1 : openat (dirfd, "merged", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r == 0 && mergedfd < 0)
    r = kiln_error_set (err, errno, KILN_E_IO, "open `%s`", m->merged);
  if (r == 0)
    r = mount_or_copy (m, o, dirfd, mergedfd, err);
  if (r < 0)
    {
      struct kiln_error *e = NULL;
      kiln_snapshot_cleanup (st, m, &e);
      kiln_error_free (&e);
      return kiln_error_wrap (err, "mount step filesystem");
    }
  *out = m;
  return 0;
}

int
kiln_snapshot_unmount (struct kiln_mount *m, struct kiln_error **err)
{
  if (!m->mounted)
    return 0;
  /* busy: a process of the step still has a cwd or fd in it; detach lazily */
  if (umount2 (m->merged, UMOUNT_NOFOLLOW) < 0
      && (errno != EBUSY || umount2 (m->merged, MNT_DETACH | UMOUNT_NOFOLLOW) < 0))
    return kiln_error_set (err, errno, KILN_E_IO, "unmount `%s`", m->merged);
  m->mounted = false;
  kiln_autoclose int dfd = open (m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", m->dir);
  return kiln_fs_rm_rf_at (dfd, "work", err);
}

/* rm -rf must never descend into a mount (a bind mount of host paths the
 * sandbox forgot would be emptied): refuse when anything is mounted below. */
static int
check_no_mounts (const char *dir, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  if (kiln_fs_read_file (AT_FDCWD, "/proc/self/mountinfo", 64u << 20, &b, err) < 0)
    return -1;
  size_t dl = strlen (dir);
  for (char *line = b.buf; line && *line;)
    {
      char *nl = strchr (line, '\n');
      char mnt[4096];
      if (sscanf (line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strncmp (mnt, dir, dl) == 0
          && (mnt[dl] == '/' || mnt[dl] == '\0'))
        return kiln_error_set (err, EBUSY, KILN_E_IO, "remove `%s`: `%s` is still mounted", dir, mnt);
      line = nl ? nl + 1 : NULL;
    }
  return 0;
}

int
kiln_snapshot_cleanup (struct kiln_store *st, struct kiln_mount *m, struct kiln_error **err)
{
  if (m == NULL)
    return 0;
  int r = kiln_snapshot_unmount (m, err);
  if (r == 0 && m->relpath && m->dir)
    r = check_no_mounts (m->dir, err);
  if (r == 0 && m->relpath)
    r = kiln_fs_rm_rf_at (kiln_store_dirfd (st), m->relpath, err);
  mount_free (m);
  return r;
}
