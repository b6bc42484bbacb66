/* passwd.c - /etc/passwd and /etc/group of an image, read safely.
 *
 * The files come from base images other people publish, so every line is
 * untrusted: lines are bounded by the buffer (not by NUL bytes), fields are
 * counted before use and ids are parsed without overflow.  Lines are read as
 * BuildKit's user package (moby/sys/user ParsePasswdFilter/ParseGroupFilter)
 * reads them: surrounding blanks trimmed, blank lines and '#' comments
 * skipped, first entry wins.  Where that package silently turns a short line
 * or a bad id into uid/gid 0, kiln refuses the entry of the user asked for
 * (naming the file and line) and skips malformed lines of other users, as
 * glibc's nss_files parser does. */
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
/* (uid_t) -1 means "unchanged" to chown and setresuid: not an id */
#define ID_MAX 4294967294ull
#define NFIELDS 4

/* One non-blank, non-comment line, split at ':' (fields past the fourth
 * are counted but not kept). */
struct entry {
  const char *f[NFIELDS];
  size_t len[NFIELDS];
  size_t nf;
  size_t lineno;
};

struct db {
  const char *name; /* "/etc/passwd" for messages */
  const char *p, *end;
  size_t lineno;
};

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

static bool
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void
split_entry (const char *s, const char *e, struct entry *out)
{
  out->nf = 0;
  for (;;)
    {
      const char *c = memchr (s, ':', (size_t) (e - s));
      const char *fe = c ? c : e;
      if (out->nf < NFIELDS)
        {
          out->f[out->nf] = s;
          out->len[out->nf] = (size_t) (fe - s);
        }
      out->nf++;
      if (!c)
        break;
      s = c + 1;
    }
}

/* The next entry of db; false at the end. */
static bool
next_entry (struct db *db, struct entry *out)
{
  while (db->p && db->p < db->end)
    {
      const char *nl = memchr (db->p, '\n', (size_t) (db->end - db->p));
      const char *s = db->p, *e = nl ? nl : db->end;
      db->p = nl ? nl + 1 : NULL;
      db->lineno++;
      while (s < e && is_space (*s))
        s++;
      while (e > s && is_space (e[-1]))
        e--;
      if (s == e || *s == '#')
        continue;
      split_entry (s, e, out);
      out->lineno = db->lineno;
      return true;
    }
  return false;
}

static bool
field_is (const struct entry *en, size_t i, const char *s)
{
  return i < en->nf && en->len[i] == strlen (s) && memcmp (en->f[i], s, en->len[i]) == 0;
}

/* A decimal id in 0..ID_MAX, nothing else (no sign, blank or suffix). */
static bool
parse_id (const char *s, size_t n, unsigned long long *out)
{
  uint64_t v;
  if (!kiln_parse_uint (s, n, 10, ID_MAX, &v))
    return false;
  *out = v;
  return true;
}

static bool
field_id (const struct entry *en, size_t i, unsigned long long *out)
{
  return i < en->nf && parse_id (en->f[i], en->len[i], out);
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

/* Why the entry of the user or group asked for cannot be used; min is the
 * number of fields needed, ids the fields that hold ids. */
static int
entry_error (const struct db *db, const struct entry *en, const char *what, const char *key, size_t min,
             const size_t *ids, size_t nids, struct kiln_error **err)
{
  static const char *const names[] = { "name", "password", "id", "group id" };
  if (en->nf < min)
    return kiln_error_set (err, 0, KILN_E_PARSE,
                           "malformed entry for %s `%s` at line %zu of the image's %s: %zu field%s, needs at least %zu",
                           what, key, en->lineno, db->name, en->nf, en->nf == 1 ? "" : "s", min);
  for (size_t i = 0; i < nids; i++)
    {
      unsigned long long v;
      if (!field_id (en, ids[i], &v))
        return kiln_error_set (err, 0, KILN_E_PARSE,
                               "malformed entry for %s `%s` at line %zu of the image's %s: %s `%.*s` is not a "
                               "number from 0 to %llu",
                               what, key, en->lineno, db->name, names[ids[i]],
                               (int) (en->len[ids[i]] > 40 ? 40 : en->len[ids[i]]), en->f[ids[i]], ID_MAX);
    }
  return 0;
}

/* Finds the first entry whose name (field 0) is key or, by_id, whose
 * valid id (field 2) is key.  Returns 1 found, 0 not, < 0 when the entry
 * found is malformed (see entry_error). */
static int
find_entry (struct db *db, const char *what, const char *key, bool by_id, size_t min, const size_t *ids, size_t nids,
            struct entry *out, struct kiln_error **err)
{
  unsigned long long want = 0, v;
  if (by_id && !parse_id (key, strlen (key), &want))
    return 0;
  while (next_entry (db, out))
    {
      bool hit = by_id ? field_id (out, 2, &v) && v == want : field_is (out, 0, key);
      if (!hit)
        continue;
      if (entry_error (db, out, what, key, min, ids, nids, err) < 0)
        return -1;
      return 1;
    }
  return 0;
}

static void
push_group (struct kiln_passwd_ids *out, gid_t g)
{
  out->groups = kiln_xrealloc (out->groups, (out->ngroups + 1) * sizeof (gid_t));
  out->groups[out->ngroups++] = g;
}

static bool
lists_member (const struct entry *en, const char *user)
{
  if (en->nf < 4)
    return false;
  size_t ul = strlen (user);
  for (const char *m = en->f[3], *end = en->f[3] + en->len[3]; m <= end;)
    {
      const char *c = memchr (m, ',', (size_t) (end - m));
      const char *me = c ? c : end;
      if ((size_t) (me - m) == ul && memcmp (m, user, ul) == 0)
        return true;
      if (!c)
        break;
      m = c + 1;
    }
  return false;
}

/* Supplementary groups: malformed lines are skipped, as glibc does. */
static void
add_groups (const struct kiln_buf *groupdb, const char *user, gid_t primary, struct kiln_passwd_ids *out)
{
  struct db db = { "/etc/group", groupdb->buf, groupdb->buf + groupdb->len, 0 };
  struct entry en;
  unsigned long long gid;
  while (next_entry (&db, &en))
    if (field_id (&en, 2, &gid) && (gid_t) gid != primary && lists_member (&en, user))
      push_group (out, (gid_t) gid);
}

static int
spec_id (const char *spec, const char *part, unsigned long long *out, struct kiln_error **err)
{
  if (!parse_id (part, strlen (part), out))
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid user `%s`: `%s` is not an id from 0 to %llu", spec, part,
                           ID_MAX);
  return 0;
}

static int
resolve_user (const char *spec, const struct kiln_buf *passwd, const char *user, bool same_gid,
              struct kiln_passwd_ids *out, char **name, struct kiln_error **err)
{
  static const size_t ids[] = { 2, 3 };
  struct db db = { "/etc/passwd", passwd->buf, passwd->buf + passwd->len, 0 };
  struct entry en;
  unsigned long long uid = 0, gid = 0;
  bool by_id = numeric (user);
  if (by_id && spec_id (spec, user, &uid, err) < 0)
    return -1;
  int found = find_entry (&db, "user", user, by_id, 4, ids, 2, &en, err);
  if (found < 0)
    return -1;
  if (!found && !by_id)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "unknown user `%s` (not in the image's /etc/passwd)", user);
  if (found)
    {
      field_id (&en, 2, &uid);
      field_id (&en, 3, &gid);
      *name = kiln_xstrndup (en.f[0], en.len[0]);
    }
  out->uid = (uid_t) uid;
  out->gid = (gid_t) gid;
  /* COPY --chown without a group: a number is also the gid, a name brings
   * its passwd group, as BuildKit's readUser (solver/llbsolver/ops/
   * user_linux.go) and buildah do */
  if (same_gid && by_id)
    out->gid = (gid_t) out->uid;
  return 0;
}

static int
resolve_group (const char *spec, const struct kiln_buf *group, const char *grp, struct kiln_passwd_ids *out,
               struct kiln_error **err)
{
  static const size_t ids[] = { 2 };
  struct db db = { "/etc/group", group->buf, group->buf + group->len, 0 };
  struct entry en;
  unsigned long long gid = 0;
  bool by_id = numeric (grp);
  if (by_id && spec_id (spec, grp, &gid, err) < 0)
    return -1;
  int found = find_entry (&db, "group", grp, by_id, 3, ids, 1, &en, err);
  if (found < 0)
    return -1;
  if (!found && !by_id)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "unknown group `%s` (not in the image's /etc/group)", grp);
  if (found)
    field_id (&en, 2, &gid);
  out->gid = (gid_t) gid;
  return 0;
}

int
kiln_passwd_resolve (int rootfd, const char *spec, bool same_gid, bool with_groups, struct kiln_passwd_ids *out,
                     struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf passwd = KILN_BUF_INIT;
  kiln_autobuf struct kiln_buf group = KILN_BUF_INIT;
  kiln_autofree char *user = kiln_xstrdup (spec), *name = NULL;
  char *grp = strchr (user, ':');
  memset (out, 0, sizeof *out);
  if (grp)
    *grp++ = '\0';
  if (!*user || (grp && !*grp))
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid user `%s`", spec);
  if (read_db (rootfd, "etc/passwd", &passwd, err) < 0 || read_db (rootfd, "etc/group", &group, err) < 0)
    return -1;
  if (resolve_user (spec, &passwd, user, same_gid, out, &name, err) < 0)
    return -1;
  if (grp && resolve_group (spec, &group, grp, out, err) < 0)
    return -1;
  if (with_groups)
    {
      /* Docker and buildah list the primary group among the groups */
      push_group (out, out->gid);
      if (name && !grp)
        add_groups (&group, name, out->gid, out);
    }
  return 0;
}

void
kiln_passwd_ids_clear (struct kiln_passwd_ids *ids)
{
  free (ids->groups);
  memset (ids, 0, sizeof *ids);
}
