/* build_copy_place.c - where a COPY's entries land on the image below (the
 * stage's view of its layers), the layer's order, and hardlinks. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build_copy-internal.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/extract.h"
#include "kiln/fetch.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/passwd.h"
#include "kiln/snapshot.h"
#include "kiln/toc.h"
#include "kiln/treesum.h"
#include "kiln/util.h"
#include "kiln/walkahead.h"

/* The layer's order: a directory, everything below it, then its next
 * sibling (names compared bytewise), as a walk that lists each directory
 * sorted writes it (BuildKit's differ does) and as the streaming COPY
 * below produces it.  Plain strcmp would put `a.py` between `a` and `a/x`. */
static int
compare_entries (const void *a, const void *b)
{
  const struct centry *x = a, *y = b;
  int c = kiln_treesum_path_cmp (x->dest, y->dest);
  return c ? c : (x->seq < y->seq ? -1 : 1);
}

/* Sorts by path; only the last entry of each path is written (the root
 * itself never is). */
void
kiln_build_copy_sort_entries (struct copy_job *j)
{
  if (j->n > 1) /* v is NULL when nothing was collected (COPY nomatch* /d/) */
    qsort (j->v, j->n, sizeof *j->v, compare_entries);
  for (size_t i = 0; i < j->n; i++)
    {
      struct centry *c = &j->v[i];
      c->dropped = !*c->dest || (i + 1 < j->n && strcmp (c->dest, j->v[i + 1].dest) == 0);
    }
}

/* Frees the entries that are not written (after the key is made). */
void
kiln_build_copy_compact_entries (struct copy_job *j)
{
  size_t out = 0;
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].dropped)
      kiln_build_copy_free_centry (&j->v[i]);
    else
      j->v[out++] = j->v[i];
  j->n = out;
}

/* ---- placement: where the entries land in the image below ----
 *
 * As BuildKit's copier (fsutil copy.Copy) does it: the destination is
 * resolved with every symlink followed inside the root; a file source lands
 * inside it when it is a directory; a directory source's contents land in it
 * (made when missing); missing directories are made 0755 and owned by the
 * --chown user (else root); existing directories keep their owner, mode and
 * time unless a source directory lands on them; a directory never replaces a
 * non-directory nor the reverse.  Every directory above a placed entry is
 * written into the layer with the metadata it has, so the layer (and the
 * snapshot made from its entries) does not reset them. */

static int
place_fail (struct copy_job *j, struct kiln_error **err, const char *fmt, const char *path)
{
  kiln_autofree char *shown = kiln_xasprintf ("/%s", path);
  return kiln_build_copy_job_fail (j, err, fmt, shown);
}

/* An entry made by placement (a created or kept directory). */
void
kiln_build_copy_add_made_dir (struct copy_job *j, const char *dest, const struct kiln_tocnode *n)
{
  struct centry *e = kiln_build_copy_add_entry (j, "");
  e->srcno = SIZE_MAX;
  e->seq = 0; /* a source's own entry for the same path wins */
  e->dest = kiln_xstrdup (dest);
  e->mode = S_IFDIR | (n->mode & 07777);
  e->uid = n->uid;
  e->gid = n->gid;
  e->mtime = n->mtime;
}

/* mkdir -p of the resolved path dir in the view; made directories become
 * entries, owned by wd (a pending WORKDIR's owner) or, when wd is NULL, by
 * the --chown user (else root). */
static int
make_dirs (struct copy_job *j, struct kiln_tocview *v, const char *dir, const struct kiln_build_owner *wd,
           struct kiln_error **err)
{
  kiln_autofree char *p = kiln_xstrdup (dir);
  for (char *c = p; *p; c++)
    {
      char saved = *c;
      if (saved != '/' && saved != '\0')
        continue;
      *c = '\0';
      const struct kiln_tocnode *n = kiln_tocview_get (v, p);
      if (n && !S_ISDIR (n->mode))
        return place_fail (j, err, "cannot make directory `%s`: a file is in the way", p);
      if (!n)
        {
          struct kiln_toc_entry e = { .path = p,
                                      .mode = S_IFDIR | 0755,
                                      .mtime = kiln_build_copy_synth_mtime (j),
                                      .uid = wd             ? wd->uid
                                             : j->has_chown ? j->uid
                                                            : 0,
                                      .gid = wd             ? wd->gid
                                             : j->has_chown ? j->gid
                                                            : 0 };
          kiln_tocview_put (v, &e);
          kiln_build_copy_add_made_dir (j, p, kiln_tocview_get (v, p));
        }
      *c = saved;
      if (!saved)
        break;
    }
  return 0;
}

/* Resolves rel in the view and makes it a directory. */
static int
make_dirs_at (struct copy_job *j, struct kiln_tocview *v, const char *rel, const struct kiln_build_owner *wd,
              struct kiln_error **err)
{
  kiln_autofree char *r = NULL;
  if (kiln_tocview_resolve (v, rel, true, &r, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  return make_dirs (j, v, r, wd, err);
}

/* Sets c->dest; a directory over a non-directory of the view or the
 * reverse fails as in BuildKit (the error is set). */
int
kiln_build_copy_place_check (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target,
                             struct kiln_error **err)
{
  c->dest = *c->rel ? (*target ? kiln_xasprintf ("%s/%s", target, c->rel) : kiln_xstrdup (c->rel))
                    : kiln_xstrdup (target);
  const struct kiln_tocnode *n = kiln_tocview_get (v, c->dest);
  if (n && S_ISDIR (c->mode) && !S_ISDIR (n->mode))
    return place_fail (j, err, "cannot copy a directory to `%s`: it is not a directory", c->dest);
  if (n && !S_ISDIR (c->mode) && S_ISDIR (n->mode))
    return place_fail (j, err, "cannot replace the directory `%s` with a file", c->dest);
  return 0;
}

/* kiln_build_copy_place_check, then the entry goes into the view. */
static int
place_entry (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target, struct kiln_error **err)
{
  if (kiln_build_copy_place_check (j, v, c, target, err) < 0)
    return -1;
  struct kiln_toc_entry e = {
    .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid, .mtime = c->mtime, .link = c->link
  };
  kiln_tocview_put (v, &e);
  return 0;
}

/* Where source i lands: its target path (caller frees). */
int
kiln_build_copy_source_target (struct copy_job *j, struct kiln_tocview *v, size_t i, const char *dst, char **out,
                               struct kiln_error **err)
{
  const struct kiln_tocnode *n = kiln_tocview_get (v, dst);
  if (j->srcs[i].is_dir)
    {
      if (n && !S_ISDIR (n->mode))
        return place_fail (j, err, "cannot copy a directory to `%s`: it is not a directory", dst);
      if (!n && make_dirs (j, v, dst, NULL, err) < 0)
        return -1;
      *out = kiln_xstrdup (dst);
      return 0;
    }
  if (n && S_ISDIR (n->mode))
    *out = *dst ? kiln_xasprintf ("%s/%s", dst, j->srcs[i].name) : kiln_xstrdup (j->srcs[i].name);
  else
    *out = kiln_xstrdup (dst);
  if (!*out[0])
    return place_fail (j, err, "cannot replace the root directory `%s` with a file", "");
  /* only a dangling symlink as the destination gets here: BuildKit fails too */
  const char *slash = strrchr (*out, '/');
  kiln_autofree char *parent = slash ? kiln_xstrndup (*out, (size_t) (slash - *out)) : kiln_xstrdup ("");
  n = kiln_tocview_get (v, parent);
  if (!n || !S_ISDIR (n->mode))
    return place_fail (j, err, "cannot copy to `%s`: its directory does not exist", *out);
  return 0;
}

/* An ADD archive's entry lands as tar extraction puts it (BuildKit unpacks
 * with go-archive's Untar): the path up to it is resolved through the
 * image's symlinks, a listed entry replaces what is there (a directory over
 * a directory merges), an implied parent that exists is kept as it is. */
static int
place_archive_entry (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target,
                     struct kiln_error **err)
{
  static const struct kiln_build_owner root = { .resolved = true };
  kiln_autofree char *path = *target ? kiln_xasprintf ("%s/%s", target, c->rel) : kiln_xstrdup (c->rel);
  kiln_autofree char *resolved = NULL;
  if (kiln_tocview_resolve (v, path, c->implied, &resolved, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  const char *slash = strrchr (resolved, '/');
  kiln_autofree char *parent = slash ? kiln_xstrndup (resolved, (size_t) (slash - resolved)) : kiln_xstrdup ("");
  if (make_dirs (j, v, parent, &root, err) < 0)
    return -1;
  c->dest = kiln_xstrdup (resolved);
  const struct kiln_tocnode *n = kiln_tocview_get (v, c->dest);
  if (c->implied && n && S_ISDIR (n->mode))
    {
      /* kept: written as the image has it, like any directory above an entry */
      c->mode = S_IFDIR | (n->mode & 07777), c->uid = n->uid, c->gid = n->gid, c->mtime = n->mtime;
      return 0;
    }
  struct kiln_toc_entry e = {
    .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid, .mtime = c->mtime, .link = c->link
  };
  kiln_tocview_put (v, &e);
  return 0;
}

static int
place_sources (struct copy_job *j, struct kiln_tocview *v, const char *dst, struct kiln_error **err)
{
  size_t n = j->n, e = 0;
  for (size_t i = 0; i < j->nsrcs; i++)
    {
      kiln_autofree char *target = NULL;
      if (kiln_build_copy_source_target (j, v, i, dst, &target, err) < 0)
        return -1;
      for (; e < n && j->v[e].srcno == i && j->srcs[i].archive; e++)
        if (place_archive_entry (j, v, &j->v[e], target, err) < 0)
          return -1;
      for (; e < n && j->v[e].srcno == i; e++)
        if (place_entry (j, v, &j->v[e], target, err) < 0)
          return -1;
    }
  return 0;
}

static int
compare_inode (const void *a, const void *b)
{
  const struct centry *x = *(const struct centry *const *) a, *y = *(const struct centry *const *) b;
  if (x->srcno != y->srcno)
    return x->srcno < y->srcno ? -1 : 1;
  if (x->st.st_dev != y->st.st_dev)
    return x->st.st_dev < y->st.st_dev ? -1 : 1;
  if (x->st.st_ino != y->st.st_ino)
    return x->st.st_ino < y->st.st_ino ? -1 : 1;
  return kiln_treesum_path_cmp (x->dest, y->dest);
}

/* Names of one file within a source stay one file, as BuildKit's copier
 * links them (fsutil getLinkSource): the first name in the layer's order
 * carries the content, the others are tar hardlinks to it.  Entries must be
 * placed and sorted. */
static void
link_hardlinks (struct copy_job *j)
{
  size_t n = 0;
  kiln_autofree struct centry **v = kiln_xcalloc (j->n + 1, sizeof *v);
  for (size_t i = 0; i < j->n; i++)
    if (!j->v[i].dropped && S_ISREG (j->v[i].mode) && j->v[i].src && !j->v[i].data && !j->v[i].url
        && j->v[i].st.st_nlink > 1)
      v[n++] = &j->v[i];
  qsort (v, n, sizeof *v, compare_inode);
  for (size_t i = 1; i < n; i++)
    {
      struct centry *lead = v[i - 1]->hardlink ? &j->v[v[i - 1]->link_to] : v[i - 1];
      if (lead->srcno != v[i]->srcno || lead->st.st_dev != v[i]->st.st_dev || lead->st.st_ino != v[i]->st.st_ino)
        continue;
      v[i]->hardlink = true;
      v[i]->link_to = (size_t) (lead - j->v);
    }
}

/* Whether path is the dest of one of the first n (sorted) entries. */
bool
kiln_build_copy_has_dest (const struct copy_job *j, size_t n, const char *path)
{
  size_t lo = 0, hi = n;
  while (lo < hi)
    {
      size_t mid = (lo + hi) / 2;
      int c = kiln_treesum_path_cmp (j->v[mid].dest, path);
      if (c == 0)
        return true;
      if (c < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return false;
}

/* Every directory above an entry, as the view has it (entries sorted). */
void
kiln_build_copy_add_ancestors (struct copy_job *j, struct kiln_tocview *v)
{
  size_t n = j->n;
  kiln_autofree char *prev = NULL;
  for (size_t i = 0; i < n; i++)
    {
      kiln_autofree char *dir = kiln_xstrdup (j->v[i].dest);
      char *slash = strrchr (dir, '/');
      if (!slash)
        continue;
      *slash = '\0';
      if (prev && strcmp (prev, dir) == 0)
        continue;
      free (prev);
      prev = kiln_xstrdup (dir);
      /* an ancestor that is an entry was handled when its turn came: it sorts first */
      while (!kiln_build_copy_has_dest (j, n, dir))
        {
          kiln_build_copy_add_made_dir (j, dir, kiln_tocview_get (v, dir));
          if (!(slash = strrchr (dir, '/')))
            break;
          *slash = '\0';
        }
    }
}

/* COPY --link writes a layer that does not depend on the image below
 * (BuildKit copies onto scratch and links the result): nothing of the image
 * is read, so a remote base's layers need not be fetched. */
bool
kiln_build_copy_is_link (const struct copy_job *j)
{
  /* BuildKit links only without --chmod (dispatchCopy) */
  return kiln_build_copy_flag_true (j->in, "link") && !j->has_chmod;
}

/* Several archives unpack into one directory, which each makes (BuildKit
 * unpack: MkdirAll(dest) then Untar; testDockerfileAddArchiveWildcard):
 * nothing is overwritten, so no trailing slash is needed. */
static bool
all_archives (const struct copy_job *j)
{
  for (size_t i = 0; i < j->nsrcs; i++)
    if (!j->srcs[i].archive)
      return false;
  return true;
}

/* Before the sources are placed: a pending WORKDIR, the stage's WORKDIR
 * and the destination's directory are made; *dst: the destination resolved
 * in the view (with at least one source). */
int
kiln_build_copy_place_prepare (struct copy_job *j, struct kiln_tocview *v, char **dst, struct kiln_error **err)
{
  kiln_autofree char *ensure = NULL;
  for (size_t i = 0; j->s->pending_dirs && j->s->pending_dirs[i]; i++)
    {
      if (kiln_build_owner_resolve (j->b, j->s, &j->s->pending_owners[i], -1, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
      if (make_dirs_at (j, v, j->s->pending_dirs[i], &j->s->pending_owners[i], err) < 0)
        return -1;
    }
  /* a WORKDIR of the base that its layers never made (kiln makes it with the
   * next layer): BuildKit's WORKDIR would have made it, so make it now */
  static const struct kiln_build_owner root = { .resolved = true };
  if (j->s->cfg.working_dir && !j->link_view && make_dirs_at (j, v, j->s->cfg.working_dir, &root, err) < 0)
    return -1;
  if (j->nsrcs > 0)
    {
      const char *slash = strrchr (j->dest, '/');
      ensure = j->dest_slash ? kiln_xstrdup (j->dest) : kiln_xstrndup (j->dest, slash ? (size_t) (slash - j->dest) : 0);
      if (make_dirs_at (j, v, ensure, NULL, err) < 0)
        return -1;
      if (kiln_tocview_resolve (v, j->dest, true, dst, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
      const struct kiln_tocnode *n = kiln_tocview_get (v, *dst);
      if (j->nsrcs > 1 && !j->dest_slash && !(n && S_ISDIR (n->mode)) && !all_archives (j))
        return kiln_build_copy_job_fail (j, err,
                                         "with more than one source the destination `%s` must be a directory "
                                         "(end it with /)",
                                         j->raw_dest);
    }
  return 0;
}

struct kiln_tocview *
kiln_build_copy_place_view (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_tocview *v = j->link_view ? j->link_view : kiln_build_stage_view (j->b, j->s, err);
  if (!v)
    kiln_build_step_error (j->b, j->in, err);
  return v;
}

int
kiln_build_copy_place_entries (struct copy_job *j, struct kiln_error **err)
{
  kiln_autofree char *dst = NULL;
  struct kiln_tocview *v = kiln_build_copy_place_view (j, err);
  if (!v || kiln_build_copy_place_prepare (j, v, &dst, err) < 0 || (dst && place_sources (j, v, dst, err) < 0))
    return -1;
  kiln_build_copy_sort_entries (j);
  kiln_build_copy_add_ancestors (j, v);
  kiln_build_copy_sort_entries (j);
  link_hardlinks (j);
  return 0;
}
