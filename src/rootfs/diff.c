/* diff.c - a RUN step's changes as a layer (see kiln/diff.h).
 *
 * Both walks open every component with O_NOFOLLOW relative to its parent's
 * fd, so a symlink the step left behind is written as a symlink and never
 * followed out of the tree.  Regular files are fstat()ed after opening and
 * that stat describes the entry, so the size in the header is the size
 * read (the layer writer fails the layer if the file still changes). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/diff.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

struct hardlink {
  dev_t dev;
  ino_t ino;
  char *path;
};

struct diff {
  const struct kiln_mount *m;
  const struct kiln_layer_opts *lo;
  struct kiln_layer_writer *w;
  bool keep;      /* also make the upper dir the layer's snapshot (snapshot_keep.c) */
  char **exclude; /* cleaned */
  struct hardlink *links;
  size_t nlinks;
};

/* A directory of the copy-mode walk whose entry is written only when
 * something below it is (or it changed itself). */
struct frame {
  struct frame *parent;
  const char *path;
  struct stat st;
  int fd;
  bool written;
};

static char *
join (const char *prefix, const char *name)
{
  return *prefix ? kiln_xasprintf ("%s/%s", prefix, name) : kiln_xstrdup (name);
}

static int
excluded (struct diff *d, const char *path, struct kiln_error **err)
{
  for (size_t i = 0; d->exclude && d->exclude[i]; i++)
    if (strcmp (d->exclude[i], path) == 0)
      {
        int r = kiln_snapshot_lstack_path_exists (d->m->lowers, path, err);
        return r < 0 ? -1 : !r;
      }
  return 0;
}

/* Returns the first path of a regular file already written with the same
 * inode, recording this one otherwise. */
static const char *
hardlink_target (struct diff *d, const char *path, const struct stat *st)
{
  if (!S_ISREG (st->st_mode) || st->st_nlink < 2)
    return NULL;
  for (size_t i = 0; i < d->nlinks; i++)
    if (d->links[i].dev == st->st_dev && d->links[i].ino == st->st_ino)
      return d->links[i].path;
  d->links = kiln_xrealloc (d->links, (d->nlinks + 1) * sizeof *d->links);
  d->links[d->nlinks++] = (struct hardlink){ st->st_dev, st->st_ino, kiln_xstrdup (path) };
  return NULL;
}

/* Keeping the upper dir is an optimisation: when it cannot be done, the
 * layer is still written and the upper dir deleted as before. */
static void
keep_failed (struct diff *d, struct kiln_error **e)
{
  kiln_log_debug ("not keeping the step's upper dir as its snapshot: %s", (*e)->msg);
  kiln_error_free (e);
  d->keep = false;
}

/* Removes what the layer leaves out of the upper dir. */
static void
keep_drop (struct diff *d, int dfd, const char *name)
{
  struct kiln_error *e = NULL;
  if (d->keep && kiln_fs_rm_rf_at (dfd, name, &e) < 0)
    keep_failed (d, &e);
}

/* One object: fd is an open regular file or directory (xattrs and data),
 * or -1 with dirfd/name for symlinks and nodes. */
static int
emit (struct diff *d, const char *path, const struct stat *st, int fd, int dirfd, const char *name,
      struct kiln_error **err)
{
  struct kiln_layer_entry e = { .path = path,
                                .mode = st->st_mode,
                                .uid = st->st_uid,
                                .gid = st->st_gid,
                                .mtime = st->st_mtim.tv_sec,
                                .mtime_nsec = st->st_mtim.tv_nsec,
                                .rdev = st->st_rdev };
  struct kiln_xattrs x = { 0 };
  char target[PATH_MAX + 1];
  int r = 0;

  if (S_ISREG (st->st_mode))
    {
      e.size = (uint64_t) st->st_size;
      if ((e.link = hardlink_target (d, path, st)))
        e.hardlink = true;
    }
  else if (S_ISLNK (st->st_mode))
    {
      ssize_t n = readlinkat (dirfd, name, target, PATH_MAX);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read symlink `%s`", path);
      target[n] = '\0';
      e.link = target;
    }
  if (fd >= 0 && !e.hardlink)
    r = kiln_xattrs_read (fd, &x, err);
  e.xattr_names = x.name;
  e.xattr_values = (const void *const *) x.value;
  e.xattr_sizes = x.size;
  e.nxattrs = x.n;
  if (r == 0)
    r = kiln_layer_writer_add (d->w, &e, fd, err);
  struct kiln_error *ke = NULL;
  if (r == 0 && d->keep && !e.hardlink
      && kiln_snapshot_keep_object (fd, dirfd, name, st, &x, kiln_layer_opts_mtime (d->lo, e.mtime), &ke) < 0)
    keep_failed (d, &ke);
  kiln_xattrs_clear (&x);
  return r < 0 ? kiln_error_wrap (err, "add `%.256s`", path) : 0;
}

/* Docker's form: mode 0, size 0, owner 0:0. */
static int
emit_marker (struct diff *d, const char *dir, const char *name, int64_t mtime, struct kiln_error **err)
{
  kiln_autofree char *base = kiln_xasprintf (".wh.%s", name);
  kiln_autofree char *path = join (dir, base);
  struct kiln_layer_entry e = { .path = path, .mode = S_IFREG, .mtime = mtime };
  return kiln_layer_writer_add_data (d->w, &e, "", 0, err);
}

/* ---- overlay mode: the upper dir ---- */

static bool
upper_opaque (const struct diff *d, int fd)
{
  char v[2];
  const char *name = d->m->userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
  return fgetxattr (fd, name, v, sizeof v) == 1 && v[0] == 'y';
}

static int walk_upper (struct diff *d, int dfd, const char *prefix, struct kiln_error **err);

/* Counts the excluded mount points below an upper dir; -2 when anything else
 * is there (the dir holds real changes). */
static int
mount_points_only (struct diff *d, int fd, const char *path, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  int found = 0;
  if (upper_opaque (d, fd))
    return -2;
  if (kiln_dir_names (fd, &names, err) < 0)
    return -1;
  for (size_t i = 0; names[i]; i++)
    {
      kiln_autofree char *child = join (path, names[i]);
      struct stat st;
      int x = excluded (d, child, err);
      if (x < 0)
        return -1;
      if (x)
        {
          found++;
          continue;
        }
      if (fstatat (fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR (st.st_mode))
        return -2;
      kiln_autoclose int cfd = openat (fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int r = cfd < 0                                                       ? -2
              : kiln_snapshot_lstack_path_exists (d->m->lowers, child, err) ? mount_points_only (d, cfd, child, err)
                                                                            : -2;
      if (r < 0)
        return r;
      found += r;
    }
  return found;
}

static int
upper_dir (struct diff *d, int dfd, const char *name, const char *path, struct kiln_error **err)
{
  struct stat st;
  kiln_autoclose int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  /* a lower dir copied up only because the sandbox put a mount point in it
   * (etc for etc/hosts) is not a change of the step; its new mtime is ours */
  int lower = kiln_snapshot_lstack_path_exists (d->m->lowers, path, err);
  int only = lower > 0 ? mount_points_only (d, fd, path, err) : -2;
  if (lower < 0 || only == -1)
    return -1;
  if (only > 0)
    return keep_drop (d, dfd, name), 0;
  if (emit (d, path, &st, fd, -1, NULL, err) < 0)
    return -1;
  /* right after the directory entry, as Docker writes it */
  bool opaque = upper_opaque (d, fd);
  if (opaque && emit_marker (d, path, ".wh..opq", st.st_mtim.tv_sec, err) < 0)
    return -1;
  if (walk_upper (d, fd, path, err) < 0)
    return -1;
  struct kiln_error *ke = NULL;
  if (d->keep && kiln_snapshot_keep_dir_done (fd, opaque, kiln_layer_opts_mtime (d->lo, st.st_mtim.tv_sec), &ke) < 0)
    keep_failed (d, &ke);
  return 0;
}

static int
upper_one (struct diff *d, int dfd, const char *prefix, const char *name, const char *path, struct kiln_error **err)
{
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", path);
  if (kiln_is_overlay_whiteout (&st))
    return emit_marker (d, prefix, name, st.st_mtim.tv_sec, err);
  if (S_ISDIR (st.st_mode))
    return upper_dir (d, dfd, name, path, err);
  if (S_ISSOCK (st.st_mode))
    return keep_drop (d, dfd, name), 0; /* sockets do not survive a tar, as in Docker */
  if (!S_ISREG (st.st_mode))
    return emit (d, path, &st, -1, dfd, name, err);
  kiln_autoclose int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  return emit (d, path, &st, fd, dfd, name, err);
}

static int
walk_upper (struct diff *d, int dfd, const char *prefix, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  if (kiln_dir_names (dfd, &names, err) < 0)
    return kiln_error_wrap (err, "list `%s`", *prefix ? prefix : "/");
  for (size_t i = 0; names[i]; i++)
    {
      kiln_autofree char *path = join (prefix, names[i]);
      int x = excluded (d, path, err);
      if (x < 0 || (x == 0 && upper_one (d, dfd, prefix, names[i], path, err) < 0))
        return -1;
      if (x > 0)
        keep_drop (d, dfd, names[i]);
    }
  return 0;
}

/* ---- copy mode: merged against the lowers ---- */

static int
flush (struct diff *d, struct frame *f, struct kiln_error **err)
{
  if (f == NULL || f->written || f->path == NULL)
    return 0;
  if (flush (d, f->parent, err) < 0)
    return -1;
  f->written = true;
  return emit (d, f->path, &f->st, f->fd, -1, NULL, err);
}

static bool
same_content (int a, int b)
{
  char x[65536], y[65536];
  for (;;)
    {
      ssize_t n = read (a, x, sizeof x), m = n > 0 ? read (b, y, (size_t) n) : read (b, y, 1);
      if (n < 0 || n != m || (n > 0 && memcmp (x, y, (size_t) n) != 0))
        return false;
      if (n == 0)
        return true;
    }
}

static bool
same_meta (const struct stat *a, const struct stat *b)
{
  return a->st_mode == b->st_mode && a->st_uid == b->st_uid && a->st_gid == b->st_gid
         && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec
         && (S_ISDIR (a->st_mode) || a->st_size == b->st_size)
         && ((!S_ISCHR (a->st_mode) && !S_ISBLK (a->st_mode)) || a->st_rdev == b->st_rdev);
}

static bool
same_xattrs (int a, int b)
{
  struct kiln_xattrs x, y;
  struct kiln_error *e = NULL;
  bool same = kiln_xattrs_read (a, &x, &e) == 0 && kiln_xattrs_read (b, &y, &e) == 0 && kiln_xattrs_equal (&x, &y);
  kiln_error_free (&e);
  kiln_xattrs_clear (&x);
  kiln_xattrs_clear (&y);
  return same;
}

/* A copied lower file has one link (copy mode does not keep lower
 * hardlinks), so more means the step linked it: written, as overlay would. */
static bool
unchanged_file (int mfd, const char *name, const struct stat *ms, int lfd, const struct stat *ls)
{
  if (!same_meta (ms, ls) || (S_ISREG (ms->st_mode) && ms->st_nlink > 1))
    return false;
  if (S_ISLNK (ms->st_mode))
    {
      char a[PATH_MAX + 1], b[PATH_MAX + 1];
      ssize_t n = readlinkat (mfd, name, a, PATH_MAX), m = readlinkat (lfd, name, b, PATH_MAX);
      return n >= 0 && n == m && memcmp (a, b, (size_t) n) == 0;
    }
  if (!S_ISREG (ms->st_mode))
    return true;
  kiln_autoclose int a = openat (mfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  kiln_autoclose int b = openat (lfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  return a >= 0 && b >= 0 && same_xattrs (a, b) && same_content (a, b);
}

static int walk_copy (struct diff *d, struct frame *f, const struct kiln_lstack *s, struct kiln_error **err);

static int
copy_dir (struct diff *d, struct frame *parent, const char *name, const char *path, const struct kiln_lstack *s,
          struct kiln_error **err)
{
  struct kiln_lstack child = { 0 };
  struct stat ls;
  size_t layer;
  struct frame f = { .parent = parent, .path = path };
  int r = kiln_snapshot_lstack_lookup (s, name, &ls, &layer, &child, err);
  f.fd = r < 0 ? -1 : openat (parent->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (r >= 0 && (f.fd < 0 || fstat (f.fd, &f.st) < 0))
    r = kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  if (r >= 0 && r != KILN_LOOKUP_DIR)
    kiln_snapshot_lstack_clear (&child); /* new, or replaces a non-directory: all below is new */
  bool same = r == KILN_LOOKUP_DIR && same_meta (&f.st, &ls) && same_xattrs (f.fd, child.fds[0]);
  if (r >= 0 && !same)
    r = flush (d, &f, err);
  if (r >= 0)
    r = walk_copy (d, &f, &child, err);
  kiln_snapshot_lstack_clear (&child);
  if (f.fd >= 0)
    close (f.fd);
  return r < 0 ? -1 : 0;
}

static int
copy_one (struct diff *d, struct frame *f, const char *name, const struct kiln_lstack *s, struct kiln_error **err)
{
  kiln_autofree char *path = join (f->path ? f->path : "", name);
  struct stat ms, ls;
  size_t layer = 0;
  int x = excluded (d, path, err);
  if (x != 0)
    return x;
  if (fstatat (f->fd, name, &ms, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", path);
  if (S_ISDIR (ms.st_mode))
    return copy_dir (d, f, name, path, s, err);
  if (S_ISSOCK (ms.st_mode))
    return 0;
  int r = kiln_snapshot_lstack_lookup (s, name, &ls, &layer, NULL, err);
  if (r < 0)
    return -1;
  if (r == KILN_LOOKUP_FILE && unchanged_file (f->fd, name, &ms, s->fds[layer], &ls))
    return 0;
  if (flush (d, f, err) < 0)
    return -1;
  kiln_autoclose int fd = S_ISREG (ms.st_mode) ? openat (f->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                                               : -1;
  if (S_ISREG (ms.st_mode) && (fd < 0 || fstat (fd, &ms) < 0))
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  return emit (d, path, &ms, fd, f->fd, name, err);
}

/* Merges the sorted names of merged and of the lowers: a name only the
 * lowers have was deleted by the step. */
static int
walk_copy (struct diff *d, struct frame *f, const struct kiln_lstack *s, struct kiln_error **err)
{
  kiln_autostrv char **mn = NULL, **ln = NULL;
  if (kiln_dir_names (f->fd, &mn, err) < 0 || kiln_snapshot_lstack_list (s, &ln, err) < 0)
    return kiln_error_wrap (err, "list `%s`", f->path ? f->path : "/");
  size_t i = 0, j = 0;
  while (mn[i] || ln[j])
    {
      int c = !mn[i] ? 1 : !ln[j] ? -1 : strcmp (mn[i], ln[j]);
      if (c > 0)
        {
          kiln_autofree char *path = join (f->path ? f->path : "", ln[j]);
          int x = excluded (d, path, err);
          if (x < 0
              || (x == 0
                  && (flush (d, f, err) < 0
                      || emit_marker (d, f->path ? f->path : "", ln[j], f->st.st_mtim.tv_sec, err) < 0)))
            return -1;
          j++;
          continue;
        }
      if (copy_one (d, f, mn[i], s, err) < 0)
        return -1;
      i++;
      j += c == 0;
    }
  return 0;
}

static int
diff_copy (struct diff *d, struct kiln_error **err)
{
  struct kiln_lstack s;
  struct frame root = { .fd = open (d->m->merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .written = true };
  if (root.fd < 0 || fstat (root.fd, &root.st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", d->m->merged);
  int r = kiln_snapshot_lstack_open_roots (d->m->lowers, &s, err);
  if (r == 0)
    r = walk_copy (d, &root, &s, err);
  kiln_snapshot_lstack_clear (&s);
  close (root.fd);
  return r;
}

static int
diff_upper (struct diff *d, struct kiln_error **err)
{
  kiln_autoclose int fd = open (d->m->upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", d->m->upper);
  return walk_upper (d, fd, "", err);
}

int
kiln_diff_write_layer (struct kiln_store *st, const struct kiln_mount *m, const struct kiln_layer_opts *lo,
                       char *const *exclude, bool *keep, struct kiln_layer_result *res, struct kiln_error **err)
{
  struct diff d = { .m = m, .lo = lo, .keep = keep && *keep && !m->copy_mode };
  for (size_t i = 0; exclude && exclude[i]; i++)
    kiln_strv_push_take (&d.exclude, kiln_fs_path_clean (exclude[i]));
  int r = kiln_layer_writer_new (st, lo, &d.w, err);
  if (r == 0)
    r = m->copy_mode ? diff_copy (&d, err) : diff_upper (&d, err);
  if (r == 0)
    r = kiln_layer_writer_finish (d.w, res, err);
  kiln_layer_writer_free (d.w);
  if (keep)
    *keep = r == 0 && d.keep;
  kiln_strv_free (d.exclude);
  for (size_t i = 0; i < d.nlinks; i++)
    free (d.links[i].path);
  free (d.links);
  return r < 0 ? kiln_error_wrap (err, "write layer of step changes") : 0;
}
