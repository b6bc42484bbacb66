/* build_copy_walk.c - collecting a COPY's entries: a source path of the
 * context (or a stage), the walk below it with .dockerignore and --exclude,
 * its listings read ahead, --parents' pivot directories; in key mode each
 * entry goes into its source's tree digest instead of the array. */
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

static void
fold_flush (struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    {
      struct centry *c = &j->v[i];
      struct kiln_treesum_entry te;
      if (!j->fold_abort && S_ISREG (c->mode)
          && (j->fold_cheap_only ? !kiln_build_copy_cheap_digest (j, c)
                                 : kiln_build_copy_entry_digest (j, c, &j->fold_err) < 0))
        j->fold_abort = true;
      if (!j->fold_abort && kiln_treesum_add (j->fold, kiln_build_copy_treesum_entry (c, &te), &j->fold_err) < 0)
        j->fold_abort = true;
      if (j->replay && !j->fold_abort)
        kiln_build_copy_replay_note (j->replay, c);
      kiln_build_copy_free_centry (c);
    }
  j->n = 0;
}

/* Key mode: the current source's digest, once all its entries are in. */
void
kiln_build_copy_fold_finish_source (struct copy_job *j)
{
  if (!j->fold || j->fold_src == SIZE_MAX)
    return;
  fold_flush (j);
  kiln_treesum_final (j->fold, &j->srcs[j->fold_src].digest);
  j->srcs[j->fold_src].folded = true;
  j->fold_src = SIZE_MAX;
}

struct centry *
kiln_build_copy_add_entry (struct copy_job *j, const char *rel)
{
  if (j->stream)
    kiln_build_copy_stream_flush (j);
  else if (j->fold)
    fold_flush (j);
  if (j->n == j->cap)
    {
      j->cap = j->cap ? 2 * j->cap : 64;
      j->v = kiln_xrealloc (j->v, j->cap * sizeof *j->v);
    }
  struct centry *e = &j->v[j->n++];
  memset (e, 0, sizeof *e);
  e->rel = kiln_fs_path_clean (rel);
  e->srcno = j->nsrcs ? j->nsrcs - 1 : 0;
  e->rootfd = -1;
  e->seq = ++j->added; /* from 1: placement's own entries (0) lose to a source's */
  return e;
}

/* Starts the next source; its entries follow. */
void
kiln_build_copy_begin_source (struct copy_job *j, bool is_dir, const char *name)
{
  kiln_build_copy_fold_finish_source (j);
  j->srcs = kiln_xrealloc (j->srcs, (j->nsrcs + 1) * sizeof *j->srcs);
  memset (&j->srcs[j->nsrcs], 0, sizeof *j->srcs);
  j->srcs[j->nsrcs].is_dir = is_dir;
  j->srcs[j->nsrcs].name = kiln_xstrdup (name ? name : "");
  if (j->fold)
    j->fold_src = j->nsrcs;
  j->nsrcs++;
}

/* Forgets the last source, which turned out to have nothing. */
static void
drop_last_source (struct copy_job *j)
{
  if (j->fold && j->fold_src == j->nsrcs - 1)
    {
      struct kiln_digest unused;
      fold_flush (j);
      kiln_treesum_final (j->fold, &unused);
      j->fold_src = SIZE_MAX;
    }
  free (j->srcs[--j->nsrcs].name);
}

int64_t
kiln_build_copy_synth_mtime (const struct copy_job *j)
{
  /* synthesized directories get a fixed time so equal inputs give equal layers */
  return j->b->o->have_epoch ? j->b->o->epoch : 0;
}

void
kiln_build_copy_add_from_stat (struct copy_job *j, const char *src, const char *rel, const struct stat *st,
                               const char *link)
{
  struct centry *e = kiln_build_copy_add_entry (j, rel);
  e->rootfd = j->rootfd;
  e->src = kiln_xstrdup (src);
  e->mode = st->st_mode;
  if (j->has_chmod && !S_ISLNK (st->st_mode))
    e->mode = (st->st_mode & S_IFMT) | j->chmod;
  e->uid = j->has_chown ? j->uid : j->keep_owner ? st->st_uid : 0;
  e->gid = j->has_chown ? j->gid : j->keep_owner ? st->st_gid : 0;
  e->mtime = st->st_mtim.tv_sec;
  e->size = S_ISREG (st->st_mode) ? (uint64_t) st->st_size : 0;
  e->rdev = st->st_rdev;
  e->link = link ? kiln_xstrdup (link) : NULL;
  cstat_set (&e->st, st);
  e->ctx = j->from_context;
  e->origin = j->origin;
  /* BuildKit's context transfer (fsutil) sends a socket as an empty regular
   * file (testCopySocket); kept as empty data, it is never opened. */
  if (S_ISSOCK (st->st_mode) && j->from_context)
    {
      e->mode = S_IFREG | (e->mode & 07777);
      e->data = kiln_xstrdup ("");
    }
}

static bool
excluded_by (const struct kiln_ignore *ig, const char *rel, bool *descend)
{
  *descend = false;
  if (!kiln_ignore_excluded (ig, rel))
    return false;
  *descend = kiln_ignore_has_exceptions_under (ig, rel);
  return true;
}

/* src's path below the directory source being walked, for --exclude. */
static const char *
tree_rel (const struct copy_job *j, const char *src)
{
  size_t n = strlen (j->tree);
  return n == 0 ? src : src[n] == '/' ? src + n + 1 : "";
}

/* Excluded by .dockerignore (context files) or by --exclude; *descend: an
 * excluded directory that exceptions may still re-include parts of. */
bool
kiln_build_copy_excluded (struct copy_job *j, const char *src, bool *descend)
{
  bool by_ignore = false, by_flag = false, d_ignore = false, d_flag = false;
  if (j->from_context)
    by_ignore = excluded_by (j->b->ignore, src, &d_ignore);
  if (j->exclude && j->tree)
    by_flag = excluded_by (j->exclude, tree_rel (j, src), &d_flag);
  *descend = (!by_ignore || d_ignore) && (!by_flag || d_flag);
  return by_ignore || by_flag;
}

/* One entry of a directory being walked, its stat (and link target) known. */
static int
visit (struct copy_job *j, int dfd, const char *name, const char *src, const char *rel, const struct stat *st,
       const char *link, struct kiln_error **err)
{
  bool descend;
  bool skip = kiln_build_copy_excluded (j, src, &descend);
  if ((S_ISSOCK (st->st_mode) && !j->from_context) || (skip && !(descend && S_ISDIR (st->st_mode))))
    return 0;
  kiln_build_copy_add_from_stat (j, src, rel, st, S_ISLNK (st->st_mode) ? link : NULL);
  size_t mark = j->added;
  if (!S_ISDIR (st->st_mode))
    return 0;
  /* the layer would refuse what is below (kiln/extract.h); stop before the
   * walk's recursion goes deeper */
  if (kiln_fs_path_depth (rel) > KILN_EXTRACT_MAX_DEPTH)
    {
      kiln_error_set (err, ENAMETOOLONG, KILN_E_UNSUPPORTED,
                      "`%.64s...`: deeper than %d directories (the limit of a layer entry)", src,
                      KILN_EXTRACT_MAX_DEPTH);
      return kiln_build_step_error (j->b, j->in, err);
    }
  int cfd = -1;
  if (!j->walk || j->walk_off)
    {
      cfd = dfd >= 0 ? openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                     : kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_DIRECTORY, 0, err);
      if (cfd < 0)
        return dfd >= 0 ? kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", src) : -1;
    }
  if (kiln_build_copy_walk_dir (j, cfd, src, rel, err) < 0)
    return -1;
  /* an excluded directory appears only as the parent of re-included files
   * (in key mode too: it is still the last entry when nothing followed) */
  if (skip && j->added == mark && j->n > 0 && j->v[j->n - 1].seq == mark)
    kiln_build_copy_free_centry (&j->v[--j->n]);
  return 0;
}

static int
walk_child (struct copy_job *j, int dfd, const char *name, const char *src, const char *rel, struct kiln_error **err)
{
  struct stat st;
  char link[4097];
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", src);
  if (S_ISLNK (st.st_mode))
    {
      ssize_t n = readlinkat (dfd, name, link, sizeof link - 1);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read link `%s`", src);
      link[n] = '\0';
    }
  return visit (j, dfd, name, src, rel, &st, S_ISLNK (st.st_mode) ? link : NULL, err);
}

/* Whether a walk enters directory path (the read-ahead thread asks). */
static bool
walk_enters (void *ud, const char *path)
{
  bool descend;
  return !kiln_build_copy_excluded (ud, path, &descend) || descend;
}

/* The listing of src read ahead, or NULL (then the walk reads alone). */
static struct kiln_dirlisting *
listing_ahead (struct copy_job *j, const char *src)
{
  if (!j->walk || j->walk_off)
    return NULL;
  struct kiln_dirlisting *l = kiln_walkahead_next (j->walk, src);
  j->walk_off = l == NULL;
  return l;
}

/* Takes ownership of dfd; -1: the directory's listing was read ahead. */
int
kiln_build_copy_walk_dir (struct copy_job *j, int dfd, const char *src, const char *rel, struct kiln_error **err)
{
  struct kiln_dirlisting *l = dfd < 0 ? listing_ahead (j, src) : NULL;
  if (dfd < 0 && !l && (dfd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_DIRECTORY, 0, err)) < 0)
    return -1;
  kiln_autodir DIR *d = l ? NULL : fdopendir (dfd);
  if (!l && !d)
    {
      close (dfd);
      return kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", src);
    }
  size_t n = 0;
  char **names = l ? l->names : kiln_fs_read_sorted (d, &n);
  int ret = !l && errno ? kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", src) : 0;
  if (l)
    n = l->n;
  /* the children's paths are made in two buffers, not allocated per file */
  size_t sl = strlen (src), rl = strlen (rel);
  kiln_autofree char *csrc = kiln_xmalloc (sl + NAME_MAX + 2), *crel = kiln_xmalloc (rl + NAME_MAX + 2);
  memcpy (csrc, src, sl), memcpy (crel, rel, rl);
  csrc[sl] = crel[rl] = '/';
  for (size_t i = 0; ret == 0 && !kiln_build_copy_stream_failed (j) && i < n; i++)
    {
      size_t nl = strlen (names[i]) + 1;
      memcpy (csrc + sl + (sl > 0), names[i], nl);
      memcpy (crel + rl + (rl > 0), names[i], nl);
      ret = l ? visit (j, -1, names[i], csrc, crel, &l->st[i], l->links[i], err)
              : walk_child (j, dirfd (d), names[i], csrc, crel, err);
    }
  if (l)
    kiln_dirlisting_free (l);
  else
    {
      for (size_t i = 0; i < n; i++)
        free (names[i]);
      free (names);
    }
  return ret;
}

/* A tree's listings are read ahead on a second thread: the walk itself
 * then makes no system call per file. */
void
kiln_build_copy_walk_ahead_start (struct copy_job *j, int dfd, const char *src)
{
  int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd >= 0)
    j->walk = kiln_walkahead_start (dup_fd, src, walk_enters, j);
  j->walk_off = false;
}

void
kiln_build_copy_walk_ahead_stop (struct copy_job *j)
{
  kiln_walkahead_stop (j->walk);
  j->walk = NULL;
}

/* A source that is a directory: its contents go to the destination (the
 * directory's own metadata does not: BuildKit copies directory contents
 * only).  With --parents the directory itself lands at its path below the
 * pivot, under the destination. */
int
kiln_build_copy_copy_tree (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  int dfd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_DIRECTORY, 0, err);
  if (dfd < 0)
    return -1;
  const char *rel = j->parent_prefix ? j->parent_prefix : "";
  if (*rel)
    kiln_build_copy_add_from_stat (j, src, rel, st, NULL);
  const char *saved = j->tree;
  j->tree = src;
  kiln_build_copy_walk_ahead_start (j, dfd, src);
  if (j->walk)
    {
      close (dfd);
      dfd = -1;
    }
  int r = kiln_build_copy_walk_dir (j, dfd, src, rel, err);
  kiln_build_copy_walk_ahead_stop (j);
  j->tree = saved;
  return r;
}

/* Content digest of a context file through the checksum cache: a file
 * whose (dev, inode, size, mtime, ctime) did not change is not read. */
int
kiln_build_copy_source_digest (struct copy_job *j, int fd, const char *src, struct kiln_digest *d,
                               struct kiln_error **err)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", src);
  if (j->from_context && kiln_ctxsum_lookup (j->b->ctxsum, src, &st, d))
    return 0;
  if (lseek (fd, 0, SEEK_SET) < 0 || kiln_digest_fd (fd, d, NULL, err) < 0)
    return kiln_error_wrap (err, "hash `%s`", src);
  lseek (fd, 0, SEEK_SET);
  if (j->from_context)
    kiln_ctxsum_update (j->b->ctxsum, src, &st, d);
  return 0;
}

/* --parents: the directories between the pivot and the source, with the
 * metadata they have in the source, as BuildKit's copier creates them. */
static int
add_pivot_parents (struct copy_job *j, const char *src, struct kiln_error **err)
{
  const char *prefix = j->parent_prefix;
  size_t base = strlen (src) - strlen (prefix);
  for (const char *c = strchr (prefix, '/'); c; c = strchr (c + 1, '/'))
    {
      struct stat st;
      kiln_autofree char *path = kiln_xstrndup (src, base + (size_t) (c - prefix));
      kiln_autofree char *rel = kiln_xstrndup (prefix, (size_t) (c - prefix));
      kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, path, O_PATH, 0, err);
      if (fd < 0 || fstat (fd, &st) < 0)
        return fd < 0 ? -1 : kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", path);
      kiln_build_copy_add_from_stat (j, path, rel, &st, NULL);
    }
  return 0;
}

/* A directory source.  One that .dockerignore excludes is sent only as the
 * parent of what an exception re-includes (fsutil's filterFS): with nothing
 * re-included it does not exist for the build - an error when named, no
 * match for a wildcard. */
static int
copy_dir_source (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  size_t mark = j->added;
  bool ignored = j->from_context && kiln_ignore_excluded (j->b->ignore, src);
  /* named by its path: the key line and its listing (cache/trees) tell two
   * equal trees at two paths apart */
  kiln_build_copy_begin_source (j, true, *src ? src : ".");
  if ((j->parent_prefix && add_pivot_parents (j, src, err) < 0) || kiln_build_copy_copy_tree (j, src, st, err) < 0)
    return -1;
  if (!ignored || j->added > mark)
    return 0;
  drop_last_source (j);
  if (j->globbed)
    return 0;
  return kiln_build_copy_job_fail (j, err, "source `%s` not found in the build context (.dockerignore excludes it)",
                                   src);
}

int
kiln_build_copy_copy_one (struct copy_job *j, const char *src, struct kiln_error **err)
{
  struct stat st;
  bool descend;
  if (kiln_build_copy_excluded (j, src, &descend) && !descend)
    return kiln_build_copy_job_fail (j, err, "source `%s` is excluded by .dockerignore", src);
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_NONBLOCK, 0, err);
  if (fd < 0)
    {
      if ((*err)->kind != KILN_E_NOTFOUND)
        return kiln_build_step_error (j->b, j->in, err);
      kiln_error_free (err);
      return kiln_build_copy_job_fail (j, err, "source `%s` not found in the build context", src);
    }
  if (fstat (fd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", src);
  if (S_ISDIR (st.st_mode))
    return copy_dir_source (j, src, &st, err);
  /* a file source is matched by its own name (COPY --exclude=*.txt hom* /d/) */
  const char *base = strrchr (src, '/') ? strrchr (src, '/') + 1 : src;
  if (j->exclude && kiln_ignore_excluded (j->exclude, base))
    return 0;
  if (j->in->cmd == KILN_DF_ADD && S_ISREG (st.st_mode) && kiln_extract_is_archive (fd))
    {
      /* key mode would unpack it twice on a miss */
      if (j->fold)
        return j->fold_abort = true, 0;
      return kiln_build_copy_add_archive (j, fd, src, err);
    }
  /* with --parents a file lands at its path below the pivot, inside the destination */
  kiln_build_copy_begin_source (j, j->parent_prefix != NULL, base);
  if (j->parent_prefix && add_pivot_parents (j, src, err) < 0)
    return -1;
  kiln_build_copy_add_from_stat (j, src, j->parent_prefix ? j->parent_prefix : "", &st, NULL);
  return 0;
}

/* Collection order does not depend on readdir order: by source, then path. */
int
kiln_build_copy_compare_collected (const void *a, const void *b)
{
  const struct centry *x = a, *y = b;
  if (x->srcno != y->srcno)
    return x->srcno < y->srcno ? -1 : 1;
  return strcmp (x->rel, y->rel);
}

/* Forgets what a collection gathered (not the step's flags, root or origin). */
void
kiln_build_copy_reset_collection (struct copy_job *j)
{
  kiln_build_copy_free_centries (j->v, j->n);
  j->v = NULL;
  j->n = j->cap = j->added = 0;
  for (size_t i = 0; i < j->nsrcs; i++)
    free (j->srcs[i].name);
  free (j->srcs);
  j->srcs = NULL;
  j->nsrcs = 0;
  j->sorted = false;
}

void
kiln_build_copy_free_entries (struct copy_job *j)
{
  kiln_build_copy_reset_collection (j);
  kiln_strv_free (j->origins);
  j->origins = NULL;
}

void
kiln_build_copy_free_centry (struct centry *c)
{
  free (c->dest);
  free (c->rel);
  free (c->src);
  free (c->data);
  free (c->link);
  free (c->url);
}

void
kiln_build_copy_free_centries (struct centry *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    kiln_build_copy_free_centry (&v[i]);
  free (v);
}
