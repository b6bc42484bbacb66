/* passwd.c - /etc/passwd and /etc/group of an image, read safely. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/passwd.h"
#include "kiln/util.h"

#define PASSWD_MAX (4u << 20)

/* Reads an image file; a missing one is empty (scratch images have none). */
static int
read_db (int rootfd, const char *file, struct kiln_buf *out, struct kiln_error **err)
{
  if (rootfd < 0)
    return 0;
  kiln_autoclose int fd = kiln_fs_open_in_root (rootfd, file, O_RDONLY, 0, err);
  if (fd < 0)
    {
      if ((*err)->kind != KILN_E_NOTFOUND)
        return kiln_error_wrap (err, "read the image's /%s", file);
      kiln_error_free (err);
      return 0;
    }
  if (kiln_fs_read_fd (fd, PASSWD_MAX, out, err) < 0)
    return kiln_error_wrap (err, "read the image's /%s", file);
  return 0;
}

/* Field i (0-based) of a ':'-separated line, copied. */
static char *
field (const char *line, int i)
{
  while (i-- > 0 && line)
    line = strchr (line, ':') ? strchr (line, ':') + 1 : NULL;
  if (!line)
    return NULL;
  return kiln_xstrndup (line, strcspn (line, ":\n"));
}

static bool
numeric (const char *s)
{
  return *s && strspn (s, "0123456789") == strlen (s);
}

bool
kiln_passwd_spec_has_names (const char *spec)
{
  kiln_autofree char *user = kiln_xstrndup (spec, strcspn (spec, ":"));
  const char *group = strchr (spec, ':');
  return !numeric (user) || (group && !numeric (group + 1));
}

/* Finds the line whose name (field 0) or id (field 2) is key. */
static const char *
find_line (const char *db, const char *key, bool by_id)
{
  for (const char *l = db; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL)
    {
      kiln_autofree char *f = field (l, by_id ? 2 : 0);
      if (f && strcmp (f, key) == 0)
        return l;
    }
  return NULL;
}

static void
add_groups (const char *groupdb, const char *user, gid_t primary, struct kiln_passwd_ids *out)
{
  for (const char *l = groupdb; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL)
    {
      kiln_autofree char *members = field (l, 3), *gid = field (l, 2);
      if (!members || !gid || !numeric (gid) || (gid_t) strtoul (gid, NULL, 10) == primary)
        continue;
      char *save = NULL;
      for (char *m = strtok_r (members, ",", &save); m; m = strtok_r (NULL, ",", &save))
        if (strcmp (m, user) == 0)
          {
            out->groups = kiln_xrealloc (out->groups, (out->ngroups + 1) * sizeof (gid_t));
            out->groups[out->ngroups++] = (gid_t) strtoul (gid, NULL, 10);
            break;
          }
    }
}

static int
resolve_user (const char *passwd, const char *user, bool same_gid, struct kiln_passwd_ids *out, char **name,
              struct kiln_error **err)
{
  const char *line = find_line (passwd, user, numeric (user));
  if (!line && !numeric (user))
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "unknown user `%s` (not in the image's /etc/passwd)", user);
  out->uid = (uid_t) strtoul (user, NULL, 10);
  out->gid = 0;
  if (line)
    {
      kiln_autofree char *uidf = field (line, 2), *gidf = field (line, 3);
      out->uid = (uid_t) strtoul (uidf, NULL, 10);
      out->gid = gidf && numeric (gidf) ? (gid_t) strtoul (gidf, NULL, 10) : 0;
      *name = field (line, 0);
    }
  /* COPY --chown without a group: a number is also the gid, a name brings
   * its passwd group, as BuildKit's readUser (solver/llbsolver/ops/
   * user_linux.go) and buildah do */
  if (same_gid && numeric (user))
    out->gid = (gid_t) out->uid;
  return 0;
}

int
kiln_passwd_resolve (int rootfd, const char *spec, bool same_gid, bool with_groups, struct kiln_passwd_ids *out,
                     struct kiln_error **err)
{
  struct kiln_buf passwd = KILN_BUF_INIT, group = KILN_BUF_INIT;
  kiln_autofree char *user = kiln_xstrdup (spec), *name = NULL;
  char *grp = strchr (user, ':');
  int ret = -1;
  memset (out, 0, sizeof *out);
  if (grp)
    *grp++ = '\0';
  if (!*user || (grp && !*grp))
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid user `%s`", spec);
  if (read_db (rootfd, "etc/passwd", &passwd, err) < 0 || read_db (rootfd, "etc/group", &group, err) < 0)
    goto out;
  if (resolve_user (passwd.buf, user, same_gid, out, &name, err) < 0)
    goto out;
  if (grp)
    {
      const char *gl = find_line (group.buf, grp, numeric (grp));
      if (!gl && !numeric (grp))
        {
          kiln_error_set (err, 0, KILN_E_NOTFOUND, "unknown group `%s` (not in the image's /etc/group)", grp);
          goto out;
        }
      kiln_autofree char *gidf = gl ? field (gl, 2) : kiln_xstrdup (grp);
      out->gid = (gid_t) strtoul (gidf, NULL, 10);
    }
  if (with_groups)
    {
      /* Docker and buildah list the primary group among the groups */
      out->groups = kiln_xrealloc (out->groups, (out->ngroups + 1) * sizeof (gid_t));
      out->groups[out->ngroups++] = out->gid;
      if (name && !grp)
        add_groups (group.buf, name, out->gid, out);
    }
  ret = 0;
out:
  kiln_buf_release (&passwd);
  kiln_buf_release (&group);
  return ret;
}

void
kiln_passwd_ids_clear (struct kiln_passwd_ids *ids)
{
  free (ids->groups);
  memset (ids, 0, sizeof *ids);
}
