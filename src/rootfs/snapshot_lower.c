/* snapshot_lower.c - reading a stack of lower directories as overlayfs
 * would merge them, for the copy-mode diff and the rootfs views: which
 * names a directory has across the layers (opaque directories and overlay
 * whiteouts applied), where a name comes from, and the extended attributes
 * an image carries (security.capability and user.*, never overlay's own). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

/* ---- xattrs ---- */

bool
kiln_is_overlay_whiteout (const struct stat *st)
{
  return S_ISCHR (st->st_mode) && st->st_rdev == makedev (0, 0);
}

bool
kiln_xattr_exported (const char *name)
{
  if (strcmp (name, "security.capability") == 0)
    return true;
  return kiln_str_has_prefix (name, "user.") && !kiln_str_has_prefix (name, "user.overlay.");
}

void
kiln_xattrs_clear (struct kiln_xattrs *x)
{
  for (size_t i = 0; i < x->n; i++)
    free (x->value[i]);
  free (x->names);
  free (x->name);
  free (x->value);
  free (x->size);
  memset (x, 0, sizeof *x);
}

static int
xattr_get (int fd, const char *name, struct kiln_xattrs *x, struct kiln_error **err)
{
  ssize_t n = fgetxattr (fd, name, NULL, 0);
  void *v = n > 0 ? kiln_xmalloc ((size_t) n) : NULL;
  if (n > 0)
    n = fgetxattr (fd, name, v, (size_t) n);
  if (n < 0)
    {
      free (v);
      /* removed meanwhile: nothing to keep */
      return errno == ENODATA ? 0 : kiln_error_set (err, errno, KILN_E_IO, "read xattr `%s`", name);
    }
  x->name = kiln_xrealloc (x->name, (x->n + 1) * sizeof *x->name);
  x->value = kiln_xrealloc (x->value, (x->n + 1) * sizeof *x->value);
  x->size = kiln_xrealloc (x->size, (x->n + 1) * sizeof *x->size);
  x->name[x->n] = name;
  x->value[x->n] = v;
  x->size[x->n++] = (size_t) n;
  return 0;
}

/* Names come out of the kernel in a filesystem-defined order; we sort by
 * nothing and compare as sets, and the layer writer gets them in list order
 * (libarchive sorts nothing either, but the order is stable per inode). */
int
kiln_xattrs_read (int fd, struct kiln_xattrs *x, struct kiln_error **err)
{
  memset (x, 0, sizeof *x);
  ssize_t len = flistxattr (fd, NULL, 0);
  if (len < 0)
    return errno == ENOTSUP ? 0 : kiln_error_set (err, errno, KILN_E_IO, "list xattrs");
  if (len == 0)
    return 0;
  x->names = kiln_xmalloc ((size_t) len + 1);
  len = flistxattr (fd, x->names, (size_t) len);
  if (len < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "list xattrs");
  x->len = (size_t) len;
  for (char *p = x->names; p < x->names + len; p += strlen (p) + 1)
    if (kiln_xattr_exported (p) && xattr_get (fd, p, x, err) < 0)
      return -1;
  return 0;
}

bool
kiln_xattrs_equal (const struct kiln_xattrs *a, const struct kiln_xattrs *b)
{
  if (a->n != b->n)
    return false;
  for (size_t i = 0; i < a->n; i++)
    {
      size_t j = 0;
      while (j < b->n && strcmp (a->name[i], b->name[j]) != 0)
        j++;
      if (j == b->n || a->size[i] != b->size[j] || memcmp (a->value[i], b->value[j], a->size[i]) != 0)
        return false;
    }
  return true;
}

/* ---- the lower stack ---- */

void
kiln_snapshot_lstack_clear (struct kiln_lstack *s)
{
  for (size_t i = 0; i < s->n; i++)
    close (s->fds[i]);
  free (s->fds);
  s->fds = NULL;
  s->n = 0;
}

static void
lstack_push (struct kiln_lstack *s, int fd)
{
  s->fds = kiln_xrealloc (s->fds, (s->n + 1) * sizeof *s->fds);
  s->fds[s->n++] = fd;
}

/* Snapshots carry both markers when made as root, only the user one in a
 * user namespace; either means opaque in a lower. */
static bool
dir_opaque (int fd)
{
  char v[2];
  ssize_t n = fgetxattr (fd, "trusted.overlay.opaque", v, sizeof v);
  if (n == 1 && v[0] == 'y')
    return true;
  n = fgetxattr (fd, "user.overlay.opaque", v, sizeof v);
  return n == 1 && v[0] == 'y';
}

int
kiln_snapshot_lstack_open_roots (char *const *lowers, struct kiln_lstack *out, struct kiln_error **err)
{
  memset (out, 0, sizeof *out);
  for (size_t i = 0; lowers && lowers[i]; i++)
    {
      int fd = open (lowers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        {
          kiln_snapshot_lstack_clear (out);
          return kiln_error_set (err, errno, KILN_E_IO, "open lower dir `%s`", lowers[i]);
        }
      lstack_push (out, fd);
      if (dir_opaque (fd))
        break;
    }
  return 0;
}

int
kiln_dir_names (int dfd, char ***names, struct kiln_error **err)
{
  int dup_fd = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  kiln_autodir DIR *d = dup_fd >= 0 ? fdopendir (dup_fd) : NULL;
  struct dirent *de;
  if (d == NULL)
    {
      if (dup_fd >= 0)
        close (dup_fd);
      return kiln_error_set (err, errno, KILN_E_IO, "read directory");
    }
  *names = kiln_xcalloc (1, sizeof **names);
  while ((errno = 0, de = readdir (d)))
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      kiln_strv_push (names, de->d_name);
  if (errno != 0)
    return kiln_error_set (err, errno, KILN_E_IO, "read directory");
  qsort (*names, kiln_strv_len (*names), sizeof **names, kiln_strv_cmp);
  return 0;
}

int
kiln_snapshot_lstack_list (const struct kiln_lstack *s, char ***names, struct kiln_error **err)
{
  kiln_autostrv char **seen = kiln_xcalloc (1, sizeof *seen);
  kiln_autostrv char **out = kiln_xcalloc (1, sizeof *out);
  for (size_t i = 0; i < s->n; i++)
    {
      kiln_autostrv char **layer = NULL;
      if (kiln_dir_names (s->fds[i], &layer, err) < 0)
        return -1;
      for (size_t j = 0; layer[j]; j++)
        {
          size_t ns = kiln_strv_len (seen);
          if (bsearch (&layer[j], seen, ns, sizeof *seen, kiln_strv_cmp))
            continue;
          struct stat st;
          /* the topmost occurrence decides: a whiteout hides lower ones */
          if (fstatat (s->fds[i], layer[j], &st, AT_SYMLINK_NOFOLLOW) == 0 && !kiln_is_overlay_whiteout (&st))
            kiln_strv_push (&out, layer[j]);
          kiln_strv_push (&seen, layer[j]);
          qsort (seen, ns + 1, sizeof *seen, kiln_strv_cmp);
        }
    }
  qsort (out, kiln_strv_len (out), sizeof *out, kiln_strv_cmp);
  *names = kiln_steal_ptr (&out);
  return 0;
}

/* Adds name's directory in layer i to child; returns true when the stack
 * stops there (opaque). */
static int
child_push (const struct kiln_lstack *s, size_t i, const char *name, struct kiln_lstack *child, struct kiln_error **err)
{
  int fd = openat (s->fds[i], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open lower directory `%s`", name);
  bool opaque = dir_opaque (fd);
  lstack_push (child, fd);
  return opaque ? 1 : 0;
}

int
kiln_snapshot_lstack_lookup (const struct kiln_lstack *s, const char *name, struct stat *st, size_t *layer,
                             struct kiln_lstack *child, struct kiln_error **err)
{
  struct stat cur;
  int found = KILN_LOOKUP_ABSENT;
  if (child)
    memset (child, 0, sizeof *child);
  for (size_t i = 0; i < s->n; i++)
    {
      if (fstatat (s->fds[i], name, &cur, AT_SYMLINK_NOFOLLOW) < 0)
        {
          if (errno == ENOENT)
            continue;
          return kiln_error_set (err, errno, KILN_E_IO, "stat lower `%s`", name);
        }
      if (kiln_is_overlay_whiteout (&cur) || (found == KILN_LOOKUP_DIR && !S_ISDIR (cur.st_mode)))
        break;
      if (found == KILN_LOOKUP_ABSENT)
        {
          *st = cur;
          *layer = i;
          found = S_ISDIR (cur.st_mode) ? KILN_LOOKUP_DIR : KILN_LOOKUP_FILE;
        }
      if (found == KILN_LOOKUP_FILE || !child)
        break;
      int r = child_push (s, i, name, child, err);
      if (r < 0)
        return -1;
      if (r > 0)
        break;
    }
  return found;
}

int
kiln_snapshot_lstack_path_exists (char *const *lowers, const char *path, struct kiln_error **err)
{
  struct kiln_lstack cur;
  if (kiln_snapshot_lstack_open_roots (lowers, &cur, err) < 0)
    return -1;
  kiln_autofree char *p = kiln_xstrdup (path);
  int r = KILN_LOOKUP_DIR;
  for (char *c = p, *next; c && *c; c = next)
    {
      struct kiln_lstack child;
      struct stat st;
      size_t layer;
      char *slash = strchr (c, '/');
      next = slash ? slash + 1 : NULL;
      if (slash)
        *slash = '\0';
      r = kiln_snapshot_lstack_lookup (&cur, c, &st, &layer, &child, err);
      kiln_snapshot_lstack_clear (&cur);
      cur = child;
      /* a file in the middle of the path: the rest cannot exist */
      if (r == KILN_LOOKUP_FILE && next)
        r = KILN_LOOKUP_ABSENT;
      if (r <= KILN_LOOKUP_ABSENT)
        break;
    }
  kiln_snapshot_lstack_clear (&cur);
  return r < 0 ? -1 : r != KILN_LOOKUP_ABSENT;
}
