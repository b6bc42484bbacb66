/* export_rootfs.c - an image's final filesystem as a tar (BuildKit's tar
 * exporter) or a directory (its local exporter).
 *
 * The layers are applied in order by the hardened extractor into a fresh
 * directory under ROOT/tmp (whiteouts applied, owners kept), and that tree is
 * walked in sorted order into a tar the way BuildKit writes one
 * (exporter/tar/export.go -> fsutil WriteTar): relative names, directories
 * with a trailing '/', no entry for the root itself, numeric owners only, a
 * second name of an inode as a hardlink to the first, xattrs as PAX
 * SCHILY.xattr.*, mtimes rounded to the second (Go's tar writer) or replaced
 * by the epoch.  A directory output is that tar extracted into dest by the
 * same hardened extractor, so a symlink of the image (or one already in dest)
 * is only ever resolved inside dest. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "store-internal.h"

#define CHUNK (1u << 20)
#define XATTR_LIST_MAX_BYTES (64 * 1024)

struct first_name {
  dev_t dev;
  ino_t ino;
  char *path;
};

struct walk {
  struct archive *a;
  struct archive_entry *e;
  const int64_t *epoch;
  struct first_name *links; /* inodes with more than one name: the first name written */
  size_t nlinks;
  char *buf;
};

static int
walk_check (struct walk *w, int r, const char *path, struct kiln_error **err)
{
  if (r >= ARCHIVE_OK)
    return 0;
  if (r == ARCHIVE_WARN)
    {
      kiln_log_warn ("tar entry `%s`: %s", path, archive_error_string (w->a));
      return 0;
    }
  return kiln_error_set (err, archive_errno (w->a), KILN_E_IO, "tar entry `%s`: %s", path,
                         archive_error_string (w->a) ? archive_error_string (w->a) : "write failed");
}

/* The first name of a multiply linked inode, recording path when new. */
static const char *
first_name (struct walk *w, const struct stat *sb, const char *path)
{
  for (size_t i = 0; i < w->nlinks; i++)
    if (w->links[i].dev == sb->st_dev && w->links[i].ino == sb->st_ino)
      return w->links[i].path;
  w->links = kiln_xrealloc (w->links, (w->nlinks + 1) * sizeof *w->links);
  w->links[w->nlinks++] = (struct first_name){ sb->st_dev, sb->st_ino, kiln_xstrdup (path) };
  return NULL;
}

/* The extractor's xattr policy (user.* but not user.overlay.*, and
 * security.capability): anything else on the scratch tree came from the host
 * filesystem (an SELinux label), not from the image. */
static bool
xattr_exported (const char *name)
{
  if (strcmp (name, "security.capability") == 0)
    return true;
  return kiln_str_has_prefix (name, "user.") && !kiln_str_has_prefix (name, "user.overlay.");
}

static int
add_xattrs (struct walk *w, int fd, const char *path, struct kiln_error **err)
{
  char names[XATTR_LIST_MAX_BYTES];
  ssize_t n = flistxattr (fd, names, sizeof names);
  if (n < 0)
    return errno == ENOTSUP ? 0 : kiln_error_set (err, errno, KILN_E_IO, "list xattrs of `%s`", path);
  for (ssize_t off = 0; off < n; off += (ssize_t) strlen (names + off) + 1)
    {
      const char *name = names + off;
      if (!xattr_exported (name))
        continue;
      ssize_t len = fgetxattr (fd, name, w->buf, CHUNK);
      if (len < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read xattr `%s` of `%s`", name, path);
      archive_entry_xattr_add_entry (w->e, name, w->buf, (size_t) len);
    }
  return 0;
}

/* Go's tar writer rounds ModTime to the nearest second when the format is
 * left to it, as fsutil does. */
static void
set_mtime (struct walk *w, const struct stat *sb)
{
  if (w->epoch)
    archive_entry_set_mtime (w->e, *w->epoch, 0);
  else
    archive_entry_set_mtime (w->e, sb->st_mtim.tv_sec + (sb->st_mtim.tv_nsec >= 500000000), 0);
}

static int
copy_body (struct walk *w, int fd, const char *path, int64_t size, struct kiln_error **err)
{
  for (int64_t left = size; left > 0;)
    {
      ssize_t n = read (fd, w->buf, left < CHUNK ? (size_t) left : CHUNK);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return kiln_error_set (err, n < 0 ? errno : EIO, KILN_E_IO, "read `%s`%s", path, n == 0 ? ": file shrank" : "");
      la_ssize_t wr = archive_write_data (w->a, w->buf, (size_t) n);
      if (wr != n)
        return walk_check (w, wr < 0 ? (int) wr : ARCHIVE_FATAL, path, err);
      left -= n;
    }
  return 0;
}

/* Everything but the body: type, name, owner, mode, time, link, device. */
static int
fill_header (struct walk *w, int dfd, const char *name, const char *path, const struct stat *sb, const char **hardlink,
             struct kiln_error **err)
{
  archive_entry_clear (w->e);
  archive_entry_set_filetype (w->e, sb->st_mode & S_IFMT);
  archive_entry_set_perm (w->e, sb->st_mode & 07777);
  archive_entry_set_uid (w->e, sb->st_uid);
  archive_entry_set_gid (w->e, sb->st_gid);
  set_mtime (w, sb);
  archive_entry_set_size (w->e, S_ISREG (sb->st_mode) ? sb->st_size : 0);
  *hardlink = NULL;
  if (S_ISDIR (sb->st_mode))
    {
      kiln_autofree char *dir = kiln_xasprintf ("%s/", path);
      archive_entry_set_pathname (w->e, dir);
      return 0;
    }
  archive_entry_set_pathname (w->e, path);
  if (S_ISLNK (sb->st_mode))
    {
      ssize_t n = readlinkat (dfd, name, w->buf, CHUNK - 1);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read symlink `%s`", path);
      w->buf[n] = '\0';
      archive_entry_set_symlink (w->e, w->buf);
      return 0;
    }
  if (S_ISCHR (sb->st_mode) || S_ISBLK (sb->st_mode))
    {
      archive_entry_set_rdevmajor (w->e, major (sb->st_rdev));
      archive_entry_set_rdevminor (w->e, minor (sb->st_rdev));
    }
  if (sb->st_nlink > 1 && (*hardlink = first_name (w, sb, path)) != NULL)
    {
      archive_entry_set_hardlink (w->e, *hardlink);
      archive_entry_set_size (w->e, 0);
    }
  return 0;
}

static int walk_dir (struct walk *w, int dfd, const char *prefix, struct kiln_error **err);

static int
walk_entry (struct walk *w, int dfd, const char *name, const char *path, struct kiln_error **err)
{
  struct stat sb;
  const char *hardlink;
  kiln_autoclose int fd = -1;
  if (fstatat (dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", path);
  if (S_ISSOCK (sb.st_mode))
    return 0; /* the extractor never makes one; a layer's socket was skipped there already */
  if (fill_header (w, dfd, name, path, &sb, &hardlink, err) < 0)
    return -1;
  if ((S_ISREG (sb.st_mode) && !hardlink) || S_ISDIR (sb.st_mode))
    {
      fd = openat (dfd, name, (S_ISDIR (sb.st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
      if (add_xattrs (w, fd, path, err) < 0)
        return -1;
    }
  locale_t old = kiln_locale_utf8_enter ();
  int hr = archive_write_header (w->a, w->e);
  kiln_locale_restore (old);
  if (walk_check (w, hr, path, err) < 0)
    return -1;
  if (S_ISREG (sb.st_mode) && !hardlink && copy_body (w, fd, path, sb.st_size, err) < 0)
    return -1;
  if (S_ISDIR (sb.st_mode))
    {
      kiln_autofree char *prefix = kiln_xasprintf ("%s/", path);
      return walk_dir (w, fd, prefix, err);
    }
  return 0;
}

/* Byte order of the names in each directory, parents before children: the
 * order of fsutil's Walk. */
static int
walk_dir (struct walk *w, int dfd, const char *prefix, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  if (kiln_fs_list_names (dfd, *prefix ? prefix : "/", &names, err) < 0)
    return -1;
  size_t n = kiln_strv_len (names);
  if (n > 1)
    qsort (names, n, sizeof *names, kiln_strv_cmp);
  for (size_t i = 0; i < n; i++)
    {
      kiln_autofree char *path = kiln_xasprintf ("%s%s", prefix, names[i]);
      if (walk_entry (w, dfd, names[i], path, err) < 0)
        return -1;
    }
  return 0;
}

/* The tree at rootfd as a tar on fd. */
static int
write_tree_tar (int rootfd, int fd, const int64_t *epoch, struct kiln_error **err)
{
  struct walk w = { .a = archive_write_new (), .e = archive_entry_new (), .epoch = epoch };
  int r;
  if (w.a == NULL || w.e == NULL)
    abort ();
  w.buf = kiln_xmalloc (CHUNK);
  /* restricted pax: ustar headers, a pax header only when an entry needs one
   * (long names, xattrs), as Go's tar writer chooses */
  r = walk_check (&w, archive_write_set_format_pax_restricted (w.a), "tar", err);
  /* fsutil writes SCHILY.xattr.* only; libarchive adds LIBARCHIVE.xattr.* by default */
  if (r == 0)
    r = walk_check (&w, archive_write_set_format_option (w.a, "pax", "xattrheader", "SCHILY"), "tar", err);
  if (r == 0)
    r = walk_check (&w, archive_write_set_bytes_in_last_block (w.a, 1), "tar", err);
  if (r == 0)
    r = walk_check (&w, archive_write_open_fd (w.a, fd), "tar", err);
  if (r == 0)
    r = walk_dir (&w, rootfd, "", err);
  if (r == 0)
    r = walk_check (&w, archive_write_close (w.a), "end of archive", err);
  archive_write_free (w.a);
  archive_entry_free (w.e);
  for (size_t i = 0; i < w.nlinks; i++)
    free (w.links[i].path);
  free (w.links);
  free (w.buf);
  return r;
}

/* mkdir -p dest (buildx creates the local output directory the same way). */
static int
make_dest_dir (const char *dest, struct kiln_error **err)
{
  kiln_autofree char *p = kiln_xstrdup (dest);
  for (char *s = p + 1; *s; s++)
    if (*s == '/')
      {
        *s = '\0';
        if (mkdir (p, 0755) < 0 && errno != EEXIST)
          return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", p);
        *s = '/';
      }
  if (mkdir (p, 0755) < 0 && errno != EEXIST)
    return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", p);
  return 0;
}

/* True in the initial user namespace, whose uid_map is the whole range
 * mapped to itself: "0 0 4294967295". */
static bool
initial_user_namespace (void)
{
  unsigned long inside = 1, outside = 1, count = 0;
  FILE *f = fopen ("/proc/self/uid_map", "re");
  if (f == NULL)
    return true; /* no /proc: no user namespaces either */
  int n = fscanf (f, "%lu %lu %lu", &inside, &outside, &count);
  fclose (f);
  return n == 3 && inside == 0 && outside == 0 && count == 4294967295UL;
}

/* The tree at rootfd into the directory dest, through a tar in scratch. */
static int
write_tree_dir (int scratchfd, int rootfd, const char *dest, const int64_t *epoch, struct kiln_error **err)
{
  kiln_autoclose int tfd = openat (scratchfd, "rootfs.tar", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (tfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create a scratch tar");
  if (write_tree_tar (rootfd, tfd, epoch, err) < 0)
    return -1;
  if (lseek (tfd, 0, SEEK_SET) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "rewind the scratch tar");
  if (make_dest_dir (dest, err) < 0)
    return -1;
  kiln_autoclose int dfd = open (dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", dest);
  /* owners only as real root: a rootless kiln is root of its own user
   * namespace, and files owned by its subordinate ids would be files the
   * user cannot remove; it gets them as its own, as from buildx */
  const struct kiln_extract_opts opts = { .keep_owner = geteuid () == 0 && initial_user_namespace () };
  return kiln_extract_fd (tfd, "image filesystem", dfd, &opts, err);
}

static int
write_rootfs (struct kiln_store *st, const struct kiln_manifest *m, int scratchfd, enum kiln_export_format fmt,
              const char *dest, const int64_t *epoch, struct kiln_error **err)
{
  if (mkdirat (scratchfd, "root", 0755) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create the scratch root");
  kiln_autoclose int rootfd = openat (scratchfd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open the scratch root");
  if (kiln_extract_layers (st, m->layers, m->nlayers, rootfd, err) < 0)
    return -1;
  if (fmt == KILN_EXPORT_ROOTFS_DIR)
    return write_tree_dir (scratchfd, rootfd, dest, epoch, err);
  struct kiln_export_out o;
  if (kiln_export_out_open (dest, &o, err) < 0)
    return -1;
  if (write_tree_tar (rootfd, o.fd, epoch, err) < 0)
    {
      kiln_export_out_abort (&o);
      return -1;
    }
  return kiln_export_out_commit (&o, err);
}

int
kiln_store_export_rootfs (struct kiln_store *st, const struct kiln_descriptor *manifest, enum kiln_export_format fmt,
                          const char *dest, const int64_t *epoch, struct kiln_error **err)
{
  struct kiln_manifest m = { 0 };
  kiln_autofree char *scratch = NULL;
  int r;
  if (fmt != KILN_EXPORT_ROOTFS_TAR && fmt != KILN_EXPORT_ROOTFS_DIR)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "not a filesystem export format: %d", (int) fmt);
  if (fmt == KILN_EXPORT_ROOTFS_DIR && strcmp (dest, "-") == 0)
    return kiln_error_set (err, 0, KILN_E_USAGE, "a directory output cannot go to stdout (dest=-)");
  if (kiln_store_get_manifest (st, &manifest->digest, &m, err) < 0)
    return kiln_error_wrap (err, "export the filesystem to `%s`", dest);
  r = kiln_store_mktemp_dir (st, &scratch, err);
  if (r == 0)
    {
      kiln_autoclose int sfd = openat (kiln_store_dirfd (st), scratch, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      r = sfd < 0 ? kiln_error_set (err, errno, KILN_E_IO, "open `%s`", scratch)
                  : write_rootfs (st, &m, sfd, fmt, dest, epoch, err);
      kiln_autoerror struct kiln_error *ignored = NULL;
      kiln_fs_rm_rf_at (kiln_store_dirfd (st), scratch, &ignored);
    }
  kiln_manifest_clear (&m);
  if (r < 0)
    return kiln_error_wrap (err, "export the filesystem to `%s`", dest);
  return 0;
}
