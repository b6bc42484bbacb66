/* build_copy_key.c - a COPY's content digests (the checksum cache first),
 * its cache key (one tree digest per source) and the listings that explain
 * a miss. */
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

/* The content digest a layer's block recipes may use: the content's own
 * sha256 (a context file, in-memory data), never a stand-in such as a
 * stage file's origin. */
const struct kiln_digest *
kiln_build_copy_content_digest (const struct centry *c)
{
  return S_ISREG (c->mode) && c->have_digest && (c->ctx || c->data) ? &c->digest : NULL;
}

/* The digest of a regular entry without reading it, when that is possible:
 * heredoc data, files of a stage or image (named by its key), context files
 * whose stat matches the checksum cache. */
bool
kiln_build_copy_cheap_digest (struct copy_job *j, struct centry *c)
{
  struct stat sb;
  if (c->have_digest)
    return true;
  if (c->data)
    kiln_digest_of (c->data, c->datalen, &c->digest);
  else if (c->origin)
    {
      kiln_autofree char *id = kiln_xasprintf ("%s%s", c->origin, c->src);
      kiln_digest_of (id, strlen (id), &c->digest);
    }
  else if (!(c->ctx && kiln_ctxsum_lookup (j->b->ctxsum, c->src, cstat_get (&c->st, &sb), &c->digest)))
    return false;
  c->have_digest = true;
  return true;
}

int
kiln_build_copy_entry_digest (struct copy_job *j, struct centry *c, struct kiln_error **err)
{
  if (kiln_build_copy_cheap_digest (j, c))
    return 0;
  kiln_autoclose int fd = kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
  if (fd < 0 || kiln_build_copy_source_digest (j, fd, c->src, &c->digest, err) < 0)
    return -1;
  c->have_digest = true;
  return 0;
}

/* Every regular entry's digest without reading, or false. */
bool
kiln_build_copy_all_cheap (struct copy_job *j)
{
  bool ok = true;
  for (size_t i = 0; i < j->n; i++)
    if (S_ISREG (j->v[i].mode) && !kiln_build_copy_cheap_digest (j, &j->v[i]))
      ok = false;
  return ok;
}

/* Tree order within each source: a directory before its contents, siblings
 * by name (what the tree digest and the listings read); equal paths keep
 * their collection order. */
static int
compare_tree_ptr (const void *a, const void *b)
{
  const struct centry *x = *(const struct centry *const *) a, *y = *(const struct centry *const *) b;
  if (x->srcno != y->srcno)
    return x->srcno < y->srcno ? -1 : 1;
  int c = kiln_treesum_path_cmp (x->rel, y->rel);
  return c ? c : x->seq < y->seq ? -1 : 1;
}

/* The collected entries (not placement's own), in tree order. */
static const struct centry **
tree_order (const struct copy_job *j, size_t *n)
{
  const struct centry **order = kiln_xcalloc (j->n + 1, sizeof *order);
  size_t no = 0;
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].srcno != SIZE_MAX)
      order[no++] = &j->v[i];
  qsort (order, no, sizeof *order, compare_tree_ptr);
  *n = no;
  return order;
}

const struct kiln_treesum_entry *
kiln_build_copy_treesum_entry (const struct centry *c, struct kiln_treesum_entry *e)
{
  *e = (struct kiln_treesum_entry){ .path = c->rel,
                                    .mode = c->mode,
                                    .uid = c->uid,
                                    .gid = c->gid,
                                    .link = c->link,
                                    .content = S_ISREG (c->mode) ? &c->digest : NULL };
  return e;
}

/* ---- listings: what the last build of a source held, to explain a miss ---- */

/* Writes the listing of source srcno (key line value) unless the store has
 * it: derived data, so failing costs only the next explanation. */
static void
save_listing (struct copy_job *j, size_t srcno, const char *value)
{
  kiln_autoerror struct kiln_error *e = NULL;
  if (j->stream || j->streamed)
    return; /* it wrote the listing as it went */
  kiln_autofree char *name = kiln_treelist_name (value);
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s-%d", name, (int) gettid ());
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (j->b->st), "cache/trees", 0755, &e);
  if (dfd < 0 || faccessat (dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    return;
  int fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  struct kiln_treelist_writer *w = kiln_treelist_writer_new (fd);
  size_t no;
  kiln_autofree const struct centry **order = tree_order (j, &no);
  for (size_t k = 0; k < no; k++)
    {
      const struct centry *c = order[k];
      if (c->srcno != srcno)
        continue;
      struct kiln_treesum_entry te;
      kiln_autofree char *own = c->ctx ? NULL : kiln_xasprintf ("%zu:%s", c->srcno, c->rel);
      kiln_treelist_write (w, c->ctx ? c->src : own, kiln_build_copy_treesum_entry (c, &te));
    }
  if (kiln_treelist_writer_finish (w, &e) < 0 || renameat (dfd, tmp, dfd, name) < 0)
    unlinkat (dfd, tmp, 0);
}

void
kiln_build_copy_save_listings (struct copy_job *j)
{
  char **inputs = j->s->step.inputs;
  for (size_t i = 0; inputs && inputs[i]; i++)
    {
      size_t srcno;
      int off = 0;
      if (sscanf (inputs[i], "source %zu\t%n", &srcno, &off) == 1 && off > 0 && srcno < j->nsrcs)
        save_listing (j, srcno, inputs[i] + off);
    }
}

static int
open_listing (struct copy_job *j, const char *value)
{
  kiln_autofree char *name = kiln_treelist_name (value);
  kiln_autofree char *rel = kiln_xasprintf ("cache/trees/%s", name);
  return openat (kiln_store_dirfd (j->b->st), rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* A source whose tree changed: the files that differ from the last build's
 * listing of it (step.explain_input).  Asked after exec, which saved the
 * listings of this build. */
char *
kiln_build_copy_explain_source (void *ud, const char *now_line, const char *was)
{
  struct copy_job *j = ud;
  size_t srcno;
  int off = 0;
  if (sscanf (now_line, "source %zu\t%n", &srcno, &off) != 1 || off == 0 || srcno >= j->nsrcs)
    return NULL;
  kiln_autoclose int old = open_listing (j, was);
  kiln_autoclose int now = open_listing (j, now_line + off);
  char *why = old >= 0 && now >= 0 ? kiln_treelist_explain (old, now) : NULL;
  /* no listing of the last build (a record imported from a registry cache) */
  if (!why && j->srcs[srcno].name[0])
    why = kiln_xasprintf ("the files of `%s` changed", j->srcs[srcno].name);
  return why;
}

/* The key's inputs: the instruction, the variables it used, where the
 * files land, and per source the digest of its tree (each entry's path,
 * type, mode, owner, link target and content digest; never mtimes), so a
 * record stays small for any tree.  Entries must all have their digests.
 * Declared again each time: the solver makes the key of the last ones. */
void
kiln_build_copy_step_inputs (struct copy_job *j)
{
  const struct kiln_layer_opts *lo = &j->b->o->layer;
  struct build_step *st = &j->s->step;
  kiln_build_step_inputs_clear (st);
  kiln_build_step_input (st, "instruction", j->in->original);
  /* the same files in another compression or mtime clamp are another layer */
  kiln_autofree char *format = kiln_xasprintf ("%s level %d clamp %s%lld",
                                               kiln_compression_media_type (lo->compression), lo->level,
                                               lo->clamp_mtime ? "at " : "off",
                                               (long long) (lo->clamp_mtime ? lo->epoch : 0));
  kiln_build_step_input (st, "layer format", format);
  for (size_t i = 0; st->used && st->used[i]; i++)
    kiln_build_step_add_input (st, "input", st->used[i]);
  /* where the files land follows from these and the parent's files (its key) */
  kiln_autofree char *dest = kiln_xasprintf ("/%s%s", j->dest, j->dest_slash ? "/" : "");
  kiln_build_step_input (st, "destination", dest);
  for (size_t i = 0; j->s->pending_dirs && j->s->pending_dirs[i]; i++)
    {
      kiln_autofree char *wd = kiln_xasprintf ("/%s %s", j->s->pending_dirs[i], j->s->pending_owners[i].user);
      kiln_build_step_input (st, "workdir", wd);
    }
  /* one line per source, whatever its size: its tree's digest */
  size_t no;
  kiln_autofree const struct centry **order = tree_order (j, &no);
  struct kiln_treesum *t = kiln_treesum_new ();
  for (size_t i = 0, k = 0; i < j->nsrcs; i++)
    {
      struct kiln_digest d;
      kiln_autoerror struct kiln_error *e = NULL;
      for (; k < no && order[k]->srcno == i; k++)
        {
          struct kiln_treesum_entry te;
          /* cannot fail: tree_order sorts as the fold wants */
          kiln_treesum_add (t, kiln_build_copy_treesum_entry (order[k], &te), &e);
        }
      if (j->srcs[i].folded)
        d = j->srcs[i].digest; /* key mode: the walk made it, the array is empty */
      else
        kiln_treesum_final (t, &d);
      kiln_autofree char *name = kiln_xasprintf ("source %zu", i);
      kiln_autofree char *value = kiln_xasprintf ("%s %s %s", j->srcs[i].is_dir ? "tree" : "file", j->srcs[i].name,
                                                  d.s);
      kiln_build_step_input (st, name, value);
    }
  kiln_treesum_free (t);
}
