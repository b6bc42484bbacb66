/* fs.c - safe *at() helpers: openat2 resolution, atomic writes, bounded reads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

/* read/write chunk when copy_file_range cannot copy */
#define COPY_BUF (1u << 20)

static int
do_openat2 (int dirfd, const char *rel, int flags, mode_t mode, unsigned long long resolve)
{
  struct open_how how = { .flags = (unsigned long long) (flags | O_CLOEXEC),
                          .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
                          .resolve = resolve };
  int fd;
  /* EAGAIN: a concurrent rename raced the lookup (RESOLVE_IN_ROOT is strict) */
  for (int tries = 0; tries < 32; tries++)
    {
      fd = (int) syscall (SYS_openat2, dirfd, *rel ? rel : ".", &how, sizeof how);
      if (fd >= 0 || (errno != EINTR && errno != EAGAIN))
        return fd;
    }
  return -1;
}

static int
open_error (struct kiln_error **err, const char *rel)
{
  if (errno == ENOSYS)
    return kiln_error_set (err, errno, KILN_E_UNSUPPORTED, "open `%s`: openat2 needs Linux 5.6 or newer", rel);
  return kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open `%s`", rel);
}

int
kiln_fs_open_in_root (int rootfd, const char *rel, int flags, mode_t mode, struct kiln_error **err)
{
  int fd = do_openat2 (rootfd, rel, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  return fd >= 0 ? fd : open_error (err, rel);
}

int
kiln_fs_open_beneath (int dirfd, const char *rel, int flags, mode_t mode, struct kiln_error **err)
{
  int fd = do_openat2 (dirfd, rel, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  return fd >= 0 ? fd : open_error (err, rel);
}

/* Walks rel one component at a time, creating what is missing; open_fn decides
 * how each existing component is resolved (in-root or beneath). */
static int
mkdir_p (int rootfd, const char *rel, mode_t mode, unsigned long long resolve, struct kiln_error **err)
{
  kiln_autofree char *clean = kiln_fs_path_clean (rel);
  kiln_autoclose int cur = do_openat2 (rootfd, "", O_PATH | O_DIRECTORY, 0, resolve);
  char *save = NULL;

  if (cur < 0)
    return open_error (err, ".");
  for (char *c = strtok_r (clean, "/", &save); c; c = strtok_r (NULL, "/", &save))
    {
      int next = do_openat2 (cur, c, O_PATH | O_DIRECTORY, 0, resolve);
      if (next < 0 && errno == ENOENT)
        {
          if (mkdirat (cur, c, mode) < 0 && errno != EEXIST)
            return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s` in `%s`", c, rel);
          next = do_openat2 (cur, c, O_PATH | O_DIRECTORY, 0, resolve);
        }
      if (next < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "open directory `%s` in `%s`", c, rel);
      close (cur);
      cur = next;
    }
  return kiln_steal_fd (&cur);
}

int
kiln_fs_mkdir_p_in_root (int rootfd, const char *rel, mode_t mode, struct kiln_error **err)
{
  /* each component is resolved from the previous one: pass IN_ROOT semantics
   * by resolving the whole prefix from the root instead */
  kiln_autofree char *clean = kiln_fs_path_clean (rel);
  struct kiln_buf prefix = KILN_BUF_INIT;
  char *save = NULL;
  int fd;

  for (char *c = strtok_r (clean, "/", &save); c; c = strtok_r (NULL, "/", &save))
    {
      if (prefix.len)
        kiln_buf_addch (&prefix, '/');
      kiln_buf_adds (&prefix, c);
      fd = do_openat2 (rootfd, prefix.buf, O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
      if (fd >= 0)
        {
          close (fd);
          continue;
        }
      if (errno != ENOENT)
        break;
      /* the parent exists (resolved in root); create the last component there */
      kiln_autofree char *parent = kiln_xstrndup (prefix.buf, prefix.len - strlen (c));
      int pfd = do_openat2 (rootfd, parent, O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
      if (pfd < 0)
        break;
      int r = mkdirat (pfd, c, mode);
      close (pfd);
      if (r < 0 && errno != EEXIST)
        break;
    }
  fd = do_openat2 (rootfd, prefix.buf, O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (fd < 0)
    kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", prefix.len ? prefix.buf : "/");
  kiln_buf_release (&prefix);
  return fd;
}

int
kiln_fs_mkdir_p_beneath (int dirfd, const char *rel, mode_t mode, struct kiln_error **err)
{
  return mkdir_p (dirfd, rel, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, err);
}

int
kiln_fs_tmpfile_beneath (int dirfd, const char *rel, mode_t mode, struct kiln_error **err)
{
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (dirfd, rel, 0755, err);
  if (dfd < 0)
    return -1;
  int fd = openat (dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
  return fd >= 0 ? fd : kiln_error_set (err, errno, KILN_E_IO, "create an unnamed file in `%s`", rel);
}

int
kiln_fs_write_all (int fd, const void *data, size_t len, struct kiln_error **err)
{
  const char *p = data;
  while (len)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "write");
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

int
kiln_fs_write_atomic (int dirfd, const char *name, const void *data, size_t len, mode_t mode, struct kiln_error **err)
{
  struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
  return kiln_fs_write_atomicv (dirfd, name, &iov, 1, mode, err);
}

static int
write_iov (int fd, const struct iovec *iov, int n, struct kiln_error **err)
{
  for (int i = 0; i < n; i++)
    if (kiln_fs_write_all (fd, iov[i].iov_base, iov[i].iov_len, err) < 0)
      return -1;
  return 0;
}

int
kiln_fs_write_atomicv (int dirfd, const char *name, const struct iovec *iov, int n, mode_t mode,
                       struct kiln_error **err)
{
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s.%d.%llu", name, (int) gettid (), kiln_now_ns ());
  kiln_autoclose int fd = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create `%s`", tmp);
  if (write_iov (fd, iov, n, err) < 0 || (fsync (fd) < 0 && kiln_error_set (err, errno, KILN_E_IO, "fsync")))
    {
      unlinkat (dirfd, tmp, 0);
      return kiln_error_wrap (err, "write `%s`", name);
    }
  if (fchmod (fd, mode) < 0 || renameat (dirfd, tmp, dirfd, name) < 0)
    {
      int e = errno;
      unlinkat (dirfd, tmp, 0);
      return kiln_error_set (err, e, KILN_E_IO, "rename into `%s`", name);
    }
  if (fsync (dirfd) < 0 && errno != EBADF && errno != EINVAL)
    return kiln_error_set (err, errno, KILN_E_IO, "fsync directory of `%s`", name);
  return 0;
}

int
kiln_fs_read_fd (int fd, size_t max, struct kiln_buf *out, struct kiln_error **err)
{
  char chunk[65536];
  out->max = max;
  for (;;)
    {
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read");
      if (n == 0)
        return 0;
      if (kiln_buf_add_checked (out, chunk, (size_t) n, err) < 0)
        return -1;
    }
}

int
kiln_fs_read_file (int dirfd, const char *path, size_t max, struct kiln_buf *out, struct kiln_error **err)
{
  kiln_autoclose int fd = -1;
  if (dirfd == AT_FDCWD && strcmp (path, "-") == 0)
    fd = dup (0);
  else
    fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open `%s`", path);
  if (kiln_fs_read_fd (fd, max, out, err) < 0)
    return kiln_error_wrap (err, "read `%s`", path);
  return 0;
}

size_t
kiln_fs_path_depth (const char *path)
{
  size_t n = *path != '\0';
  for (; *path; path++)
    n += *path == '/';
  return n;
}

int64_t
kiln_fs_copy_data (int in, int out, uint64_t size, struct kiln_error **err)
{
  uint64_t done = 0;
  bool in_kernel = true;
  kiln_autofree char *buf = NULL;
  while (done < size)
    {
      size_t want = size - done < (1u << 30) ? (size_t) (size - done) : (1u << 30);
      ssize_t n;
      if (in_kernel)
        {
          n = copy_file_range (in, NULL, out, NULL, want, 0);
          /* across file systems (EXDEV since Linux 5.19: a context on one
           * disk, the store on another), old kernels, special files: read
           * and write from where it stopped (both offsets moved with it) */
          if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
            {
              in_kernel = false;
              continue;
            }
        }
      else
        {
          buf = buf ? buf : kiln_xmalloc (COPY_BUF);
          n = read (in, buf, want < COPY_BUF ? want : COPY_BUF);
          if (n > 0 && kiln_fs_write_all (out, buf, (size_t) n, err) < 0)
            return -1;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "copy data");
      if (n == 0)
        break;
      done += (uint64_t) n;
    }
  return (int64_t) done;
}

static int
rm_rf_dirfd (int dfd, struct kiln_error **err)
{
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  if (d == NULL)
    {
      close (dfd);
      return kiln_error_set (err, errno, KILN_E_IO, "open directory for removal");
    }
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      /* the listing's type spares an lstat per file (a RUN's upper directory
       * of 50,000 files); a file that turned into a directory, or a
       * filesystem that does not say, takes the stat path */
      if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN
          && (unlinkat (dirfd (d), de->d_name, 0) == 0 || errno == ENOENT))
        continue;
      if (kiln_fs_rm_rf_at (dirfd (d), de->d_name, err) < 0)
        return -1;
    }
  return 0;
}

int
kiln_fs_rm_rf_at (int dirfd, const char *name, struct kiln_error **err)
{
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", name);
  if (S_ISDIR (st.st_mode))
    {
      int dfd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dfd < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", name);
      /* a directory without write/exec permission cannot be emptied */
      fchmod (dfd, 0700);
      if (rm_rf_dirfd (dfd, err) < 0)
        return kiln_error_wrap (err, "remove `%s`", name);
      if (unlinkat (dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return kiln_error_set (err, errno, KILN_E_IO, "remove `%s`", name);
      return 0;
    }
  if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
    return kiln_error_set (err, errno, KILN_E_IO, "remove `%s`", name);
  return 0;
}

/* Owner, mode and times of st onto the entry name of dirfd (not followed);
 * the mode after the owner, since chown clears set-id bits. */
static int
copy_meta (int dirfd, const char *name, const struct stat *st, struct kiln_error **err)
{
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (fchownat (dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0
      || (!S_ISLNK (st->st_mode) && fchmodat (dirfd, name, st->st_mode & 07777, 0) < 0)
      || utimensat (dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "copy the owner, mode and times of `%s`", name);
  return 0;
}

static int copy_dir_contents (int sfd, int dfd, struct kiln_error **err);

static int
copy_entry (int sdir, int ddir, const char *name, struct kiln_error **err)
{
  struct stat st;
  if (fstatat (sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", name);
  if (S_ISDIR (st.st_mode))
    {
      if (mkdirat (ddir, name, 0700) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "create `%s`", name);
      int sfd = openat (sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      kiln_autoclose int dfd = openat (ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sfd < 0 || dfd < 0)
        {
          int e = errno;
          if (sfd >= 0)
            close (sfd);
          return kiln_error_set (err, e, KILN_E_IO, "open `%s`", name);
        }
      if (copy_dir_contents (sfd, dfd, err) < 0)
        return kiln_error_wrap (err, "`%s`", name);
    }
  else if (S_ISREG (st.st_mode))
    {
      kiln_autoclose int in = openat (sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      kiln_autoclose int out = openat (ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (in < 0 || out < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "copy `%s`", name);
      if (kiln_fs_copy_data (in, out, (uint64_t) st.st_size, err) < 0)
        return kiln_error_wrap (err, "copy `%s`", name);
    }
  else if (S_ISLNK (st.st_mode))
    {
      char target[4096];
      ssize_t n = readlinkat (sdir, name, target, sizeof target - 1);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read link `%s`", name);
      target[n] = '\0';
      if (symlinkat (target, ddir, name) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "create link `%s`", name);
    }
  else if (S_ISSOCK (st.st_mode))
    return 0; /* a socket is no content (tar skips it too) */
  else if (mknodat (ddir, name, st.st_mode & ~07777u, st.st_rdev) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create special file `%s`", name);
  return copy_meta (ddir, name, &st, err);
}

/* Takes ownership of sfd. */
static int
copy_dir_contents (int sfd, int dfd, struct kiln_error **err)
{
  kiln_autodir DIR *d = fdopendir (sfd);
  struct dirent *de;
  if (d == NULL)
    {
      close (sfd);
      return kiln_error_set (err, errno, KILN_E_IO, "open directory to copy");
    }
  while ((errno = 0, de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (copy_entry (dirfd (d), dfd, de->d_name, err) < 0)
        return -1;
    }
  return errno ? kiln_error_set (err, errno, KILN_E_IO, "read directory to copy") : 0;
}

int
kiln_fs_copy_tree (int srcfd, int dstdirfd, const char *name, struct kiln_error **err)
{
  struct stat st;
  if (fstat (srcfd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat the directory to copy");
  if (!S_ISDIR (st.st_mode))
    return kiln_error_set (err, ENOTDIR, KILN_E_IO, "copy a tree: not a directory");
  int sfd = openat (srcfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open the directory to copy");
  kiln_autoclose int dfd = -1;
  if (mkdirat (dstdirfd, name, 0700) == 0)
    dfd = openat (dstdirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    {
      int e = errno;
      close (sfd);
      return kiln_error_set (err, e, KILN_E_IO, "create `%s`", name);
    }
  if (copy_dir_contents (sfd, dfd, err) < 0)
    return -1;
  return copy_meta (dstdirfd, name, &st, err);
}

char *
kiln_fs_path_clean (const char *path)
{
  size_t n = strlen (path);
  char *out = kiln_xmalloc (n + 1);
  size_t len = 0;
  const char *p = path;

  while (*p)
    {
      while (*p == '/')
        p++;
      const char *s = p;
      while (*p && *p != '/')
        p++;
      size_t cl = (size_t) (p - s);
      if (cl == 0 || (cl == 1 && s[0] == '.'))
        continue;
      if (cl == 2 && s[0] == '.' && s[1] == '.')
        {
          while (len > 0 && out[len - 1] != '/')
            len--;
          if (len > 0)
            len--;
          continue;
        }
      if (len)
        out[len++] = '/';
      memcpy (out + len, s, cl);
      len += cl;
    }
  out[len] = '\0';
  return out;
}

char *
kiln_fs_path_join (const char *a, const char *b)
{
  if (b[0] == '/')
    return kiln_fs_path_clean (b);
  kiln_autofree char *j = kiln_xasprintf ("%s/%s", a, b);
  return kiln_fs_path_clean (j);
}

void
kiln_fs_dircache_clear (struct kiln_fs_dircache *c)
{
  if (c->fd >= 0)
    close (c->fd);
  free (c->path);
  *c = (struct kiln_fs_dircache) KILN_FS_DIRCACHE_INIT;
}

int
kiln_fs_dircache_get (struct kiln_fs_dircache *c, int rootfd, const char *path, size_t len, struct kiln_error **err)
{
  if (c->fd >= 0 && c->rootfd == rootfd && strncmp (c->path, path, len) == 0 && c->path[len] == '\0')
    return c->fd;
  kiln_fs_dircache_clear (c);
  kiln_autofree char *dir = kiln_xstrndup (path, len);
  int fd = kiln_fs_open_in_root (rootfd, dir, O_PATH | O_DIRECTORY, 0, err);
  if (fd < 0)
    return -1;
  c->rootfd = rootfd;
  c->fd = fd;
  c->path = kiln_steal_ptr (&dir);
  return fd;
}

char **
kiln_fs_read_sorted (DIR *d, size_t *n)
{
  char **v = NULL;
  size_t cap = 0;
  struct dirent *de;
  *n = 0;
  while ((errno = 0, de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (*n == cap)
        {
          cap = cap ? 2 * cap : 32;
          v = kiln_xrealloc (v, cap * sizeof *v);
        }
      v[(*n)++] = kiln_xstrdup (de->d_name);
    }
  int saved = errno;
  if (*n > 1)
    qsort (v, *n, sizeof *v, kiln_strv_cmp);
  errno = saved;
  return v;
}

int
kiln_fs_list_names (int dfd, const char *shown, char ***out, struct kiln_error **err)
{
  int dup_fd = dup (dfd);
  kiln_autodir DIR *d = dup_fd >= 0 ? fdopendir (dup_fd) : NULL;
  *out = NULL;
  if (d == NULL)
    {
      if (dup_fd >= 0)
        close (dup_fd);
      return kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", shown);
    }
  /* collected first: a caller that removes entries would skip some while
   * iterating; in one pass (kiln_strv_push would be quadratic in a big directory) */
  size_t n;
  char **v = kiln_fs_read_sorted (d, &n);
  if (errno)
    {
      for (size_t i = 0; i < n; i++)
        free (v[i]);
      free (v);
      return kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", shown);
    }
  *out = kiln_xrealloc (v, (n + 1) * sizeof *v);
  (*out)[n] = NULL;
  return 0;
}
