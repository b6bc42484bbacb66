/* kiln/fs.h - safe *at() helpers.
 *
 * Paths inside a rootfs are resolved with openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS); paths inside the store with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS.  There is no userland fallback: without openat2
 * (Linux < 5.6) these fail with KILN_E_UNSUPPORTED. */
#ifndef KILN_FS_H
#define KILN_FS_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "kiln/error.h"
#include "kiln/buf.h"

/* Opens rel inside the root rootfd as if rootfd were "/" (symlinks, "..",
 * absolute targets all stay inside).  flags get O_CLOEXEC added. */
int kiln_fs_open_in_root (int rootfd, const char *rel, int flags, mode_t mode, struct kiln_error **err);

/* Opens rel beneath dirfd with no symlink anywhere in the path (store use). */
int kiln_fs_open_beneath (int dirfd, const char *rel, int flags, mode_t mode, struct kiln_error **err);

/* Creates every missing directory of rel inside rootfd (one component at a
 * time, mkdirat + RESOLVE_IN_ROOT), mode for new ones; returns an O_PATH|O_DIRECTORY
 * fd of the last one.  Intermediate symlinks are followed inside the root. */
int kiln_fs_mkdir_p_in_root (int rootfd, const char *rel, mode_t mode, struct kiln_error **err);

/* Creates missing directories beneath dirfd (store use, no symlinks); returns an fd. */
int kiln_fs_mkdir_p_beneath (int dirfd, const char *rel, mode_t mode, struct kiln_error **err);
/* An unnamed file (O_TMPFILE, read-write) in the directory rel beneath dirfd,
 * made as needed: space set aside that vanishes with the process unless it
 * is linked in.  Returns the fd. */
int kiln_fs_tmpfile_beneath (int dirfd, const char *rel, mode_t mode, struct kiln_error **err);

/* Writes data to dirfd/name atomically and durably: temp file in the same dir,
 * write, fsync, rename over name, fsync the dir. */
int kiln_fs_write_atomic (int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                          struct kiln_error **err);
/* The same with the data in pieces (no copy to join them). */
struct iovec;
int kiln_fs_write_atomicv (int dirfd, const char *name, const struct iovec *iov, int n, mode_t mode,
                           struct kiln_error **err);

/* The last directory resolved inside a root (O_PATH), kept open for the next
 * lookup of the same directory: files that come grouped by directory (a
 * layer's entries, sorted sources) resolve their parent once. */
struct kiln_fs_dircache {
  int rootfd, fd;
  char *path;
};
#define KILN_FS_DIRCACHE_INIT                                                                                          \
  {                                                                                                                    \
    .rootfd = -1, .fd = -1, .path = NULL                                                                               \
  }
/* The fd of the first len bytes of path resolved in rootfd (borrowed: valid
 * until the next call or the clear); -1 with err set. */
int kiln_fs_dircache_get (struct kiln_fs_dircache *c, int rootfd, const char *path, size_t len,
                          struct kiln_error **err);
void kiln_fs_dircache_clear (struct kiln_fs_dircache *c);

/* The names in the directory dfd (not "." or ".."), sorted; dfd
 * stays open and usable.  shown names the directory in errors. */
int kiln_fs_list_names (int dfd, const char *shown, char ***out, struct kiln_error **err);
/* The names in d (not "." or ".."), sorted by strcmp, *n of them, read in
 * one pass without an O(n^2) vector; errno is not 0 when reading failed. */
char **kiln_fs_read_sorted (DIR *d, size_t *n);

/* Reads a whole file relative to dirfd (plain openat, or "-" for stdin when
 * dirfd is AT_FDCWD), failing with EFBIG past max bytes. */
int kiln_fs_read_file (int dirfd, const char *path, size_t max, struct kiln_buf *out, struct kiln_error **err);
/* Same, from an open fd. */
int kiln_fs_read_fd (int fd, size_t max, struct kiln_buf *out, struct kiln_error **err);

/* Writes all of data to fd, retrying short writes and EINTR. */
int kiln_fs_write_all (int fd, const void *data, size_t len, struct kiln_error **err);

/* Copies up to size bytes (UINT64_MAX: to the end) from in to out (current
 * offsets) with copy_file_range: in the kernel, a reflink where the
 * filesystem shares extents; across file systems, or where the kernel cannot,
 * with read and write.  Returns the bytes copied (fewer when in ended early),
 * < 0 on error. */
/* The number of components of a relative path ("" has none). */
size_t kiln_fs_path_depth (const char *path);

int64_t kiln_fs_copy_data (int in, int out, uint64_t size, struct kiln_error **err);

/* Removes dirfd/name recursively (no symlink following); missing is success. */
int kiln_fs_rm_rf_at (int dirfd, const char *name, struct kiln_error **err);

/* Copies the directory srcfd (an fd that can be read, e.g. O_RDONLY |
 * O_DIRECTORY) to a new directory dstdirfd/name, as `cp -a` would but
 * without following any symlink: directories, regular files, symlinks and
 * special files with their owners, modes and times (sockets are skipped;
 * hard links become separate files; no xattrs).  Fails with EEXIST when
 * name exists. */
int kiln_fs_copy_tree (int srcfd, int dstdirfd, const char *name, struct kiln_error **err);

/* Normalises a slash path lexically: no "." or empty components, ".." popped
 * but never above the root, no leading or trailing '/'; "" for the root.
 * Caller frees. */
char *kiln_fs_path_clean (const char *path);

/* Joins two slash paths (b absolute replaces a) and cleans the result. */
char *kiln_fs_path_join (const char *a, const char *b);

#endif
