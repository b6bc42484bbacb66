/* extract_whiteout.c - ".wh.NAME" and ".wh..wh..opq" entries: applied to
 * the tree below (a plain extraction) or recorded as overlay markers (a
 * snapshot); never over an entry of the same layer (extract.c says why). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "extract-internal.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

static int
clear_lower (struct xstate *x, int dfd, const char *dirpath, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  if (kiln_fs_list_names (dfd, dirpath, &names, err) < 0)
    return -1;
  for (size_t i = 0; names && names[i]; i++)
    {
      kiln_autofree char *child = *dirpath ? kiln_xasprintf ("%s/%s", dirpath, names[i]) : kiln_xstrdup (names[i]);
      if (!kiln_extract_set_get (&x->created, child))
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

int
kiln_extract_set_opaque (int dfd, struct kiln_error **err)
{
  int user = fsetxattr (dfd, "user.overlay.opaque", "y", 1, 0);
  int user_errno = errno;
  int trusted = fsetxattr (dfd, "trusted.overlay.opaque", "y", 1, 0);
  if (trusted < 0 && errno != EPERM)
    return kiln_error_set (err, errno, KILN_E_IO, "set xattr `trusted.overlay.opaque`");
  if (user < 0 && trusted < 0)
    return kiln_error_set (err, user_errno, KILN_E_IO, "set xattr `user.overlay.opaque`");
  return 0;
}

/* Overlay opaque marker on the directory parent (created when missing). */
static int
mark_opaque (struct xstate *x, const char *parent, struct kiln_error **err)
{
  kiln_autoclose int pfd = kiln_fs_mkdir_p_in_root (x->rootfd, parent, 0755, err);
  if (pfd < 0)
    return -1;
  kiln_autoclose int dfd = openat (pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", parent);
  kiln_extract_mark_created (x, parent);
  return kiln_extract_set_opaque (dfd, err);
}

/* ".wh.NAME" as an overlay whiteout: a 0:0 character device replacing
 * whatever a lower layer has at NAME. */
static int
make_overlay_whiteout (struct xstate *x, const char *parent, const char *victim, struct kiln_error **err)
{
  kiln_autoclose int pfd = kiln_fs_mkdir_p_in_root (x->rootfd, parent, 0755, err);
  if (pfd < 0)
    return -1;
  kiln_extract_mark_created (x, parent);
  if (kiln_extract_clear_dest (pfd, victim, false, err) < 0)
    return -1;
  if (mknodat (pfd, victim, S_IFCHR, makedev (0, 0)) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create overlay whiteout `%s`", victim);
  return 0;
}

int
kiln_extract_whiteout (struct xstate *x, const char *parent, const char *base, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *tmp = NULL;
  const char *victim = base + strlen (WH_PREFIX);
  bool opaque = strcmp (base, WH_OPAQUE) == 0;

  if (!opaque
      && (kiln_str_has_prefix (victim, WH_PREFIX) || *victim == '\0' || strcmp (victim, ".") == 0
          || strcmp (victim, "..") == 0))
    return kiln_error_set (err, EINVAL, KILN_E_PARSE, "invalid whiteout `%s`", base);
  kiln_autofree char *vpath = *parent ? kiln_xasprintf ("%s/%s", parent, victim) : kiln_xstrdup (victim);
  if (!opaque && kiln_extract_set_get (&x->created, vpath))
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
