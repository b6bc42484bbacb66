/* build_copy.c - COPY and ADD: collect entries from the context, another
 * stage, an image, an extracted archive or a heredoc, then stream them, sorted,
 * through one layer writer.  No staging copy is made of file content. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build-internal.h"
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

/* What an entry keeps of its source's stat (half of a struct stat: a
 * 100,000-file COPY holds 100,000 of them). */
struct cstat {
  dev_t st_dev;
  ino_t st_ino;
  nlink_t st_nlink;
  off_t st_size;
  mode_t st_mode;
  struct timespec st_mtim, st_ctim;
};

static void
cstat_set (struct cstat *c, const struct stat *st)
{
  *c = (struct cstat){ .st_dev = st->st_dev, .st_ino = st->st_ino, .st_nlink = st->st_nlink, .st_size = st->st_size,
                       .st_mode = st->st_mode, .st_mtim = st->st_mtim, .st_ctim = st->st_ctim };
}

/* The fields the checksum cache compares, as a struct stat. */
static const struct stat *
cstat_get (const struct cstat *c, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_dev = c->st_dev, st->st_ino = c->st_ino, st->st_nlink = c->st_nlink, st->st_size = c->st_size;
  st->st_mode = c->st_mode, st->st_mtim = c->st_mtim, st->st_ctim = c->st_ctim;
  return st;
}

/* One file of the layer.  Collection fills rel (the path below where its
 * source lands); placement, once the step misses the cache, fills dest
 * against the image the layer goes on top of. */
struct centry {
  char *dest;            /* path in the image, cleaned, no leading '/'; NULL until placed */
  char *rel;             /* path below its source's destination, "" for a file source itself */
  size_t srcno;          /* which source (struct csource) it came from; SIZE_MAX: made by placement */
  bool dropped;          /* a later entry has the same dest: not written, still a cache input */
  bool implied;          /* an ADD archive's directory that the archive does not list (a parent) */
  bool optional;         /* streaming: a directory above the target, written only with files below */
  size_t link_to;        /* hardlink: index (in the placed, sorted entries) of the file it links to */
  bool hardlink;         /* another name of a file written earlier in the layer */
  int rootfd;            /* source root (borrowed), -1 when synthesized */
  char *src;             /* path under rootfd */
  char *data;            /* heredoc content */
  size_t datalen;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  uint64_t size;
  char *link;
  dev_t rdev;
  size_t seq;
  struct cstat st;       /* of the source, for the checksum cache and hardlinks */
  bool ctx;              /* a context file */
  const char *origin;    /* non-context source: its identity instead of its content */
  struct kiln_digest digest;   /* content digest of a regular file */
  bool have_digest;
  char *url;             /* ADD <url> not downloaded yet (its digest may be known: --checksum, 304) */
};

/* One source of the step, in the order written: a file (lands at the
 * destination, or inside it when that is a directory) or a directory tree
 * (its contents land in the destination, which is made when missing). */
struct csource {
  bool is_dir;
  bool archive;          /* ADD of a local archive: unpacked into the destination */
  char *name;            /* a file source's name inside a destination directory */
  bool folded;           /* digest was made by the streaming fold (key mode) */
  struct kiln_digest digest;
};

static void free_centry (struct centry *c);
static void free_centries (struct centry *v, size_t n);

struct copy_job {
  struct build *b;
  struct build_stage *s;
  const struct kiln_df_instr *in;
  struct centry *v;
  size_t n, cap;
  size_t added;          /* entries collected so far, folded ones included */
  /* key mode: each entry goes into its source's tree digest as soon as it
   * is known, and the array holds only the last few (memory does not grow
   * with the tree); a miss collects again into the array */
  struct kiln_treesum *fold;
  size_t fold_src;       /* the source the fold belongs to; SIZE_MAX: none */
  bool fold_cheap_only;  /* give up when a file would have to be read */
  bool fold_abort;       /* key mode cannot do this step: collect into the array */
  struct kiln_error *fold_err;   /* why, when a file could not be hashed */
  bool looked_up;        /* key mode looked the step up and it missed */
  bool patching;         /* the layer writer patches the last build's layer */
  bool has_chown, has_chmod;
  uid_t uid;
  gid_t gid;
  mode_t chmod;
  /* the source currently walked */
  int rootfd;
  bool from_context, keep_owner;
  const char *origin;    /* identity of a --from stage/image or an ADD archive */
  char **origins;        /* owns the origin strings */
  char **inputs;         /* what the cache key is made of */
  int downloads_fd;      /* scratch dir of this step's ADD <url> files, -1 until needed */
  struct kiln_ignore *exclude;   /* --exclude patterns, NULL without */
  const char *tree;      /* the directory source being walked: --exclude matches below it */
  bool has_checksum;     /* ADD --checksum */
  struct kiln_digest checksum;
  struct csource *srcs;  /* the sources; entries point at them by srcno */
  size_t nsrcs;
  bool parents;          /* --parents: each source keeps its path below the pivot */
  const char *parent_prefix;   /* with --parents: the current source's path below its pivot */
  const char *raw_dest;  /* the destination as written */
  char *dest;            /* joined to WORKDIR, cleaned, relative */
  bool globbed;          /* the source being added is a wildcard's match */
  struct kiln_tocview *link_view;  /* COPY --link: the empty view it is placed on, else NULL */
  bool dest_slash;       /* it names a directory (ends in '/' or '.') */
  /* key mode: directory listings read ahead on a second thread */
  struct kiln_walkahead *walk;
  bool walk_off;         /* it fell out of step: the walk reads alone */
  /* the directory of the last file opened for the layer (see open_source) */
  struct kiln_fs_dircache dc;
  /* streaming: each entry goes into the layer as soon as it is final */
  struct copy_stream *stream;
};

/* A boolean flag (--link, --parents: bare or =true); the parser has refused
 * any other value. */
static bool
flag_true (const struct kiln_df_instr *in, const char *name)
{
  bool present;
  const char *v = kiln_df_instr_flag (in, name, &present);
  return present && (v == NULL || *v == '\0' || strcmp (v, "true") == 0);
}

static int
job_fail (struct copy_job *j, struct kiln_error **err, const char *fmt, const char *arg)
{
  kiln_error_set (err, 0, KILN_E_PARSE, fmt, arg ? arg : "");
  return kiln_build_step_error (j->b, j->in, err);
}

static bool cheap_digest (struct copy_job *j, struct centry *c);
static int entry_digest (struct copy_job *j, struct centry *c, struct kiln_error **err);
static const struct kiln_treesum_entry *treesum_entry (const struct centry *c, struct kiln_treesum_entry *e);

/* Key mode: the entries in the array go into the fold.  Every one is final
 * by now: a later entry was added, so an excluded directory before it is the
 * parent of a re-included file and stays. */
static void stream_flush (struct copy_job *j);
static bool stream_failed (const struct copy_job *j);
static const struct kiln_df_heredoc *find_heredoc (const struct kiln_df_instr *in, const char *word);

static void
fold_flush (struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    {
      struct centry *c = &j->v[i];
      struct kiln_treesum_entry te;
      if (!j->fold_abort && S_ISREG (c->mode)
          && (j->fold_cheap_only ? !cheap_digest (j, c) : entry_digest (j, c, &j->fold_err) < 0))
        j->fold_abort = true;
      if (!j->fold_abort && kiln_treesum_add (j->fold, treesum_entry (c, &te), &j->fold_err) < 0)
        j->fold_abort = true;
      free_centry (c);
    }
  j->n = 0;
}

/* Key mode: the current source's digest, once all its entries are in. */
static void
fold_finish_source (struct copy_job *j)
{
  if (!j->fold || j->fold_src == SIZE_MAX)
    return;
  fold_flush (j);
  kiln_treesum_final (j->fold, &j->srcs[j->fold_src].digest);
  j->srcs[j->fold_src].folded = true;
  j->fold_src = SIZE_MAX;
}

static struct centry *
add_entry (struct copy_job *j, const char *rel)
{
  if (j->stream)
    stream_flush (j);
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
  e->seq = ++j->added;   /* from 1: placement's own entries (0) lose to a source's */
  return e;
}

/* Starts the next source; its entries follow. */
static void
begin_source (struct copy_job *j, bool is_dir, const char *name)
{
  fold_finish_source (j);
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

static int64_t
synth_mtime (const struct copy_job *j)
{
  /* synthesized directories get a fixed time so equal inputs give equal layers */
  return j->b->o->have_epoch ? j->b->o->epoch : 0;
}

static void
add_from_stat (struct copy_job *j, const char *src, const char *rel, const struct stat *st, const char *link)
{
  struct centry *e = add_entry (j, rel);
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
static bool
excluded (struct copy_job *j, const char *src, bool *descend)
{
  bool by_ignore = false, by_flag = false, d_ignore = false, d_flag = false;
  if (j->from_context)
    by_ignore = excluded_by (j->b->ignore, src, &d_ignore);
  if (j->exclude && j->tree)
    by_flag = excluded_by (j->exclude, tree_rel (j, src), &d_flag);
  *descend = (!by_ignore || d_ignore) && (!by_flag || d_flag);
  return by_ignore || by_flag;
}

static int walk_dir (struct copy_job *j, int dfd, const char *src, const char *rel, struct kiln_error **err);

/* One entry of a directory being walked, its stat (and link target) known. */
static int
visit (struct copy_job *j, int dfd, const char *name, const char *src, const char *rel, const struct stat *st,
       const char *link, struct kiln_error **err)
{
  bool descend;
  bool skip = excluded (j, src, &descend);
  if ((S_ISSOCK (st->st_mode) && !j->from_context) || (skip && !(descend && S_ISDIR (st->st_mode))))
    return 0;
  add_from_stat (j, src, rel, st, S_ISLNK (st->st_mode) ? link : NULL);
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
  if (walk_dir (j, cfd, src, rel, err) < 0)
    return -1;
  /* an excluded directory appears only as the parent of re-included files
   * (in key mode too: it is still the last entry when nothing followed) */
  if (skip && j->added == mark && j->n > 0 && j->v[j->n - 1].seq == mark)
    free_centry (&j->v[--j->n]);
  return 0;
}

static int
walk_child (struct copy_job *j, int dfd, const char *name, const char *src, const char *rel,
            struct kiln_error **err)
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
  return !excluded (ud, path, &descend) || descend;
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
static int
walk_dir (struct copy_job *j, int dfd, const char *src, const char *rel, struct kiln_error **err)
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
  for (size_t i = 0; ret == 0 && !stream_failed (j) && i < n; i++)
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
static void
walk_ahead_start (struct copy_job *j, int dfd, const char *src)
{
  int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd >= 0)
    j->walk = kiln_walkahead_start (dup_fd, src, walk_enters, j);
  j->walk_off = false;
}

static void
walk_ahead_stop (struct copy_job *j)
{
  kiln_walkahead_stop (j->walk);
  j->walk = NULL;
}

/* A source that is a directory: its contents go to the destination (the
 * directory's own metadata does not: BuildKit copies directory contents
 * only).  With --parents the directory itself lands at its path below the
 * pivot, under the destination. */
static int
copy_tree (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  int dfd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_DIRECTORY, 0, err);
  if (dfd < 0)
    return -1;
  const char *rel = j->parent_prefix ? j->parent_prefix : "";
  if (*rel)
    add_from_stat (j, src, rel, st, NULL);
  const char *saved = j->tree;
  j->tree = src;
  walk_ahead_start (j, dfd, src);
  if (j->walk)
    {
      close (dfd);
      dfd = -1;
    }
  int r = walk_dir (j, dfd, src, rel, err);
  walk_ahead_stop (j);
  j->tree = saved;
  return r;
}

/* Content digest of a context file through the checksum cache: a file
 * whose (dev, inode, size, mtime, ctime) did not change is not read. */
static int
source_digest (struct copy_job *j, int fd, const char *src, struct kiln_digest *d, struct kiln_error **err)
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

/* The archive's directories that it does not list itself (parents its
 * entries imply): placed as tar extraction treats them, through symlinks. */
static void
mark_implied (struct copy_job *j, size_t from, const struct kiln_toc *listed)
{
  const char **names = kiln_xcalloc (listed->n + 1, sizeof *names);
  for (size_t i = 0; i < listed->n; i++)
    names[i] = listed->v[i].path;
  qsort (names, listed->n, sizeof *names, kiln_strv_cmp);
  for (size_t i = from; i < j->n; i++)
    {
      const char *rel = j->v[i].rel;
      j->v[i].implied = S_ISDIR (j->v[i].mode) && !bsearch (&rel, names, listed->n, sizeof *names, kiln_strv_cmp);
    }
  free (names);
}

/* ADD of a local archive: extracted into scratch space, then copied as a tree. */
static int
add_archive (struct copy_job *j, int fd, const char *src, struct kiln_error **err)
{
  int tmpfd;
  struct stat st;
  struct kiln_toc_rec rec;
  struct kiln_toc *listed = NULL;
  struct kiln_extract_opts eo = { .whiteouts = false, .keep_owner = true, .toc = &rec };
  kiln_toc_rec_init (&rec);
  int xr = kiln_build_tmpdir (j->b, &tmpfd, NULL, err) < 0 ? -1 : kiln_extract_fd (fd, src, tmpfd, &eo, err);
  if (xr == 0 && kiln_toc_rec_read (&rec, &listed) < 0)
    xr = kiln_error_set (err, 0, KILN_E_INTERNAL, "list the entries of `%s`", src);
  kiln_toc_rec_clear (&rec);
  if (xr < 0)
    return kiln_build_step_error (j->b, j->in, err);
  fstat (tmpfd, &st);
  st.st_mode = S_IFDIR | 0755;
  st.st_uid = st.st_gid = 0;
  st.st_mtim.tv_sec = synth_mtime (j);
  struct kiln_digest ad;
  if (source_digest (j, fd, src, &ad, err) < 0)
    return -1;
  int saved_root = j->rootfd;
  bool saved_keep = j->keep_owner, saved_ctx = j->from_context;
  const char *saved_origin = j->origin;
  kiln_strv_push_take (&j->origins, kiln_xasprintf ("archive %s:", ad.s));
  j->origin = j->origins[kiln_strv_len (j->origins) - 1];
  j->rootfd = tmpfd;
  j->keep_owner = true;
  j->from_context = false;
  begin_source (j, true, NULL);
  j->srcs[j->nsrcs - 1].archive = true;
  size_t mark = j->n;
  int ret = copy_tree (j, "", &st, err);
  j->rootfd = saved_root, j->keep_owner = saved_keep, j->from_context = saved_ctx, j->origin = saved_origin;
  if (ret == 0)
    mark_implied (j, mark, listed);
  kiln_toc_free (listed);
  return ret;
}

/* What an ADD <url> entry holds, known from a download or an ETag record. */
static void
set_url_content (struct centry *e, const struct kiln_digest *d, uint64_t size, int64_t mtime)
{
  e->digest = *d;
  e->have_digest = true;
  e->size = size;
  if (mtime >= 0)
    e->mtime = mtime;
}

/* A download is done: check it against what was known of it (--checksum,
 * or the content an ETag stood for), remember its ETag, fill the entry. */
static int
take_download (struct copy_job *j, struct centry *e, const struct kiln_fetch_result *r, const char *shown,
               struct kiln_error **err)
{
  if (e->have_digest && strcmp (r->digest.s, e->digest.s) != 0)
    {
      if (j->has_checksum)
        kiln_error_set (err, 0, KILN_E_DIGEST, "`%s` has digest %s, not the %s of --checksum", shown, r->digest.s,
                        e->digest.s);
      else
        kiln_error_set (err, 0, KILN_E_DIGEST, "`%s` changed on the server during the build (%s, not %s); build again",
                        shown, r->digest.s, e->digest.s);
      return kiln_build_step_error (j->b, j->in, err);
    }
  if (r->etag)
    {
      struct kiln_url_record rec = { .etag = r->etag, .digest = r->digest, .size = r->size, .mtime = r->mtime };
      kiln_autoerror struct kiln_error *e2 = NULL;
      if (kiln_url_record_put (j->b->st, e->url, &rec, &e2) < 0)
        kiln_log_warn ("%s (the next build downloads `%s` again)", e2->msg, shown);
    }
  set_url_content (e, &r->digest, r->size, r->mtime);
  free (e->url);
  e->url = NULL;
  return 0;
}

/* The file of an ADD <url> entry in the step's scratch dir, emptied. */
static int
download_file (struct copy_job *j, const struct centry *e, const char *shown, struct kiln_error **err)
{
  int fd = openat (j->downloads_fd, e->src, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      kiln_error_set (err, errno, KILN_E_IO, "create the file for `%s` in the store's tmp/", shown);
      return kiln_build_step_error (j->b, j->in, err);
    }
  return fd;
}

/* Downloads an ADD <url> entry.  With if_none_match, a 304 fills the entry
 * from rec and leaves the download to a cache miss (returns 0 too). */
static int
fetch_entry (struct copy_job *j, struct centry *e, const struct kiln_url_record *rec, struct kiln_error **err)
{
  kiln_autofree char *shown = kiln_fetch_redact (e->url);
  struct kiln_fetch_result r;
  kiln_autoclose int fd = download_file (j, e, shown, err);
  if (fd < 0)
    return -1;
  kiln_build_progress (j->b, "%s %s", rec ? "checking" : "downloading", shown);
  int got = kiln_fetch_url (e->url, fd, j->b->o->interrupted, rec ? rec->etag : NULL, &r, err);
  if (got < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if (got == 1)
    {
      /* not modified: the content the ETag stood for, fetched only if the step misses */
      set_url_content (e, &rec->digest, rec->size, rec->mtime);
      return 0;
    }
  int ret = take_download (j, e, &r, shown, err);
  kiln_fetch_result_clear (&r);
  return ret;
}

/* ADD <url>: one regular file, 0600 unless --chmod, root's unless --chown,
 * its mtime from Last-Modified (else the build's epoch), never extracted -
 * as BuildKit does.  The content is known without a download when --checksum
 * gives it or when the server confirms (304) the ETag of an earlier download;
 * the download then waits until the step misses the cache. */
static int
add_url (struct copy_job *j, const char *url, struct kiln_error **err)
{
  kiln_autofree char *name = kiln_fetch_filename (url);
  if (j->downloads_fd < 0 && kiln_build_tmpdir (j->b, &j->downloads_fd, NULL, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  begin_source (j, false, name);
  struct centry *e = add_entry (j, "");
  e->rootfd = j->downloads_fd;
  e->src = kiln_xasprintf ("%zu", e->seq);
  e->url = kiln_xstrdup (url);
  e->mode = S_IFREG | (j->has_chmod ? j->chmod : 0600);
  e->uid = j->has_chown ? j->uid : 0;
  e->gid = j->has_chown ? j->gid : 0;
  e->mtime = synth_mtime (j);
  if (j->has_checksum)
    {
      e->digest = j->checksum;
      e->have_digest = true;
      return 0;
    }
  struct kiln_url_record rec;
  if (!kiln_build_cache_enabled (j->b, j->s) || !kiln_url_record_get (j->b->st, url, &rec))
    return fetch_entry (j, e, NULL, err);
  int r = fetch_entry (j, e, &rec, err);
  kiln_url_record_clear (&rec);
  return r;
}

/* The downloads put off (--checksum, confirmed ETag), once the layer is to
 * be written. */
static int
fetch_pending (struct copy_job *j, struct kiln_error **err)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].url && fetch_entry (j, &j->v[i], NULL, err) < 0)
      return -1;
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
      add_from_stat (j, path, rel, &st, NULL);
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
  begin_source (j, true, *src ? src : ".");
  if ((j->parent_prefix && add_pivot_parents (j, src, err) < 0) || copy_tree (j, src, st, err) < 0)
    return -1;
  if (!ignored || j->added > mark)
    return 0;
  drop_last_source (j);
  return j->globbed ? 0 : job_fail (j, err, "source `%s` not found in the build context (.dockerignore excludes it)", src);
}

static int
copy_one (struct copy_job *j, const char *src, struct kiln_error **err)
{
  struct stat st;
  bool descend;
  if (excluded (j, src, &descend) && !descend)
    return job_fail (j, err, "source `%s` is excluded by .dockerignore", src);
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_NONBLOCK, 0, err);
  if (fd < 0)
    {
      if ((*err)->kind != KILN_E_NOTFOUND)
        return kiln_build_step_error (j->b, j->in, err);
      kiln_error_free (err);
      return job_fail (j, err, "source `%s` not found in the build context", src);
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
      return add_archive (j, fd, src, err);
    }
  /* with --parents a file lands at its path below the pivot, inside the destination */
  begin_source (j, j->parent_prefix != NULL, base);
  if (j->parent_prefix && add_pivot_parents (j, src, err) < 0)
    return -1;
  add_from_stat (j, src, j->parent_prefix ? j->parent_prefix : "", &st, NULL);
  return 0;
}

static bool
has_glob (const char *s)
{
  return strpbrk (s, "*?[") != NULL;
}

/* The directories before a wildcard source's first wildcard must exist:
 * BuildKit walks from there (fsutil ResolveWildcards) and fails otherwise,
 * while a pattern that matches nothing copies nothing. */
static int
check_glob_base (struct copy_job *j, const char *src, struct kiln_error **err)
{
  kiln_autofree char *fixed = kiln_xstrdup (src);
  char *end = strpbrk (fixed, "*?[");
  while (end > fixed && *end != '/')
    end--;
  if (end == fixed)
    return 0;
  *end = '\0';
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, fixed, O_PATH, 0, &e);
  return fd >= 0 ? 0 : job_fail (j, err, "source directory `%s` not found in the build context", fixed);
}

/* Expands a wildcard source component by component, as BuildKit does. */
static int
glob_sources (struct copy_job *j, const char *dir, const char *pattern, char ***out, size_t *nout,
              struct kiln_error **err)
{
  const char *slash = strchr (pattern, '/');
  kiln_autofree char *comp = slash ? kiln_xstrndup (pattern, (size_t) (slash - pattern)) : kiln_xstrdup (pattern);
  kiln_autoerror struct kiln_error *ignored = NULL;
  int dfd = kiln_fs_open_in_root (j->rootfd, dir, O_RDONLY | O_DIRECTORY, 0, &ignored);
  if (dfd < 0)
    return 0;
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  if (!d)
    return close (dfd), kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", dir);
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0 || fnmatch (comp, de->d_name, 0) != 0)
        continue;
      kiln_autofree char *path = *dir ? kiln_xasprintf ("%s/%s", dir, de->d_name) : kiln_xstrdup (de->d_name);
      bool descend;
      if (excluded (j, path, &descend) && !descend)
        continue;
      if (!slash)
        kiln_strv_append (out, nout, kiln_steal_ptr (&path));
      else if (glob_sources (j, path, slash + 1, out, nout, err) < 0)
        return -1;
    }
  return 0;
}

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

/* Collection order does not depend on readdir order: by source, then path. */
static int
compare_collected (const void *a, const void *b)
{
  const struct centry *x = a, *y = b;
  if (x->srcno != y->srcno)
    return x->srcno < y->srcno ? -1 : 1;
  return strcmp (x->rel, y->rel);
}

/* Forgets what a collection gathered (not the step's flags, root or origin). */
static void
reset_collection (struct copy_job *j)
{
  free_centries (j->v, j->n);
  j->v = NULL;
  j->n = j->cap = j->added = 0;
  for (size_t i = 0; i < j->nsrcs; i++)
    free (j->srcs[i].name);
  free (j->srcs);
  j->srcs = NULL;
  j->nsrcs = 0;
  kiln_strv_free (j->inputs);
  j->inputs = NULL;
}

static void
free_entries (struct copy_job *j)
{
  reset_collection (j);
  kiln_strv_free (j->origins);
  j->origins = NULL;
}

/* Opens a regular entry's source for the layer.  The entries come sorted,
 * so files of one directory follow each other: their directory, resolved
 * inside the root once, stays open and each file is opened below it without
 * following a link (a name, no '/'), instead of resolving the whole path
 * from the root per file.  Anything unexpected takes the full resolution. */
static int
open_source (struct copy_job *j, const struct centry *c, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  const char *slash = strrchr (c->src, '/');
  int dfd = slash ? kiln_fs_dircache_get (&j->dc, c->rootfd, c->src, (size_t) (slash - c->src), &e) : -1;
  if (dfd >= 0)
    {
      int fd = openat (dfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0 || errno != ELOOP)
        return fd >= 0 ? fd : kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO,
                                              "open `%s`", c->src);
    }
  return kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
}

/* The content digest a layer's block recipes may use: the content's own
 * sha256 (a context file, in-memory data), never a stand-in such as a
 * stage file's origin. */
static const struct kiln_digest *
content_digest (const struct centry *c)
{
  return S_ISREG (c->mode) && c->have_digest && (c->ctx || c->data) ? &c->digest : NULL;
}

/* to: the entry a hardlink names (the file written just before under its
 * first name), else NULL. */
static int
write_entry (struct copy_job *j, struct kiln_layer_writer *w, struct centry *c, const struct centry *to,
             struct kiln_error **err)
{
  /* the digest a lookup would use (heredoc data, a stage's file by its
   * origin), else the content's, hashed while it streams: the key of a cold
   * build must be the key a rebuild computes */
  if (S_ISREG (c->mode))
    cheap_digest (j, c);
  struct kiln_layer_entry e = {
    .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid, .mtime = c->mtime,
    .size = c->size, .link = c->link, .rdev = c->rdev,
    /* a file not hashed yet is hashed while it streams into the layer */
    .content_digest = S_ISREG (c->mode) && !c->have_digest ? &c->digest : NULL,
    .known_digest = content_digest (c), .opaque = j->stream ? (void *) (uintptr_t) c->seq : c,
  };
  if (c->data)
    return kiln_layer_writer_add_data (w, &e, c->data, c->datalen, err);
  if (to)
    {
      /* the same content as the file it names, written before in the tar */
      e.link = to->dest, e.hardlink = true, e.content_digest = NULL, e.known_digest = NULL;
      c->digest = to->digest, c->have_digest = to->have_digest;
    }
  if (!S_ISREG (c->mode) || c->hardlink || j->patching)
    return kiln_layer_writer_add (w, &e, -1, err);
  kiln_autoclose int fd = open_source (j, c, err);
  if (fd < 0 || kiln_layer_writer_add (w, &e, fd, err) < 0)
    return -1;
  if (e.content_digest)
    {
      c->have_digest = true;
      if (c->ctx)
        {
          struct stat sb;
          kiln_ctxsum_update (j->b->ctxsum, c->src, cstat_get (&c->st, &sb), &c->digest);
        }
    }
  return 0;
}

/* Sorts by path; only the last entry of each path is written (the root
 * itself never is). */
static void
sort_entries (struct copy_job *j)
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
static void
compact_entries (struct copy_job *j)
{
  size_t out = 0;
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].dropped)
      free_centry (&j->v[i]);
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
  return job_fail (j, err, fmt, shown);
}

/* An entry made by placement (a created or kept directory). */
static void
add_made_dir (struct copy_job *j, const char *dest, const struct kiln_tocnode *n)
{
  struct centry *e = add_entry (j, "");
  e->srcno = SIZE_MAX;
  e->seq = 0;   /* a source's own entry for the same path wins */
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
          struct kiln_toc_entry e = { .path = p, .mode = S_IFDIR | 0755, .mtime = synth_mtime (j),
                                      .uid = wd ? wd->uid : j->has_chown ? j->uid : 0,
                                      .gid = wd ? wd->gid : j->has_chown ? j->gid : 0 };
          kiln_tocview_put (v, &e);
          add_made_dir (j, p, kiln_tocview_get (v, p));
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
static int
place_check (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target,
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

/* place_check, then the entry goes into the view. */
static int
place_entry (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target,
             struct kiln_error **err)
{
  if (place_check (j, v, c, target, err) < 0)
    return -1;
  struct kiln_toc_entry e = { .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid,
                              .mtime = c->mtime, .link = c->link };
  kiln_tocview_put (v, &e);
  return 0;
}

/* Where source i lands: its target path (caller frees). */
static int
source_target (struct copy_job *j, struct kiln_tocview *v, size_t i, const char *dst, char **out,
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
  struct kiln_toc_entry e = { .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid,
                              .mtime = c->mtime, .link = c->link };
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
      if (source_target (j, v, i, dst, &target, err) < 0)
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
static bool
has_dest (const struct copy_job *j, size_t n, const char *path)
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
static void
add_ancestors (struct copy_job *j, struct kiln_tocview *v)
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
      while (!has_dest (j, n, dir))
        {
          add_made_dir (j, dir, kiln_tocview_get (v, dir));
          if (!(slash = strrchr (dir, '/')))
            break;
          *slash = '\0';
        }
    }
}

/* COPY --link writes a layer that does not depend on the image below
 * (BuildKit copies onto scratch and links the result): nothing of the image
 * is read, so a remote base's layers need not be fetched. */
static bool
is_link (const struct copy_job *j)
{
  /* BuildKit links only without --chmod (dispatchCopy) */
  return flag_true (j->in, "link") && !j->has_chmod;
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
static int
place_prepare (struct copy_job *j, struct kiln_tocview *v, char **dst, struct kiln_error **err)
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
        return job_fail (j, err, "with more than one source the destination `%s` must be a directory (end it with /)",
                         j->raw_dest);
    }
  return 0;
}

static struct kiln_tocview *
place_view (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_tocview *v = j->link_view ? j->link_view : kiln_build_stage_view (j->b, j->s, err);
  if (!v)
    kiln_build_step_error (j->b, j->in, err);
  return v;
}

static int
place_entries (struct copy_job *j, struct kiln_error **err)
{
  kiln_autofree char *dst = NULL;
  struct kiln_tocview *v = place_view (j, err);
  if (!v || place_prepare (j, v, &dst, err) < 0 || (dst && place_sources (j, v, dst, err) < 0))
    return -1;
  sort_entries (j);
  add_ancestors (j, v);
  sort_entries (j);
  link_hardlinks (j);
  return 0;
}

/* The digest of a regular entry without reading it, when that is possible:
 * heredoc data, files of a stage or image (named by its key), context files
 * whose stat matches the checksum cache. */
static bool
cheap_digest (struct copy_job *j, struct centry *c)
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

static int
entry_digest (struct copy_job *j, struct centry *c, struct kiln_error **err)
{
  if (cheap_digest (j, c))
    return 0;
  kiln_autoclose int fd = kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
  if (fd < 0 || source_digest (j, fd, c->src, &c->digest, err) < 0)
    return -1;
  c->have_digest = true;
  return 0;
}

/* Every regular entry's digest without reading, or false. */
static bool
all_cheap (struct copy_job *j)
{
  bool ok = true;
  for (size_t i = 0; i < j->n; i++)
    if (S_ISREG (j->v[i].mode) && !cheap_digest (j, &j->v[i]))
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

static const struct kiln_treesum_entry *
treesum_entry (const struct centry *c, struct kiln_treesum_entry *e)
{
  *e = (struct kiln_treesum_entry){ .path = c->rel, .mode = c->mode, .uid = c->uid, .gid = c->gid, .link = c->link,
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
  if (j->stream)
    return;   /* it wrote the listing as it went */
  kiln_autofree char *name = kiln_treelist_name (value);
  kiln_autofree char *tmp = kiln_xasprintf (".tmp-%s-%d", name, (int) getpid ());
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
      kiln_treelist_write (w, c->ctx ? c->src : own, treesum_entry (c, &te));
    }
  if (kiln_treelist_writer_finish (w, &e) < 0 || renameat (dfd, tmp, dfd, name) < 0)
    unlinkat (dfd, tmp, 0);
}

static void
save_listings (struct copy_job *j)
{
  for (size_t i = 0; j->inputs && j->inputs[i]; i++)
    {
      size_t srcno;
      int off = 0;
      if (sscanf (j->inputs[i], "source %zu\t%n", &srcno, &off) == 1 && off > 0 && srcno < j->nsrcs)
        save_listing (j, srcno, j->inputs[i] + off);
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
 * listing of it (b->explain_input). */
static char *
explain_source (void *ud, const char *now_line, const char *was)
{
  struct copy_job *j = ud;
  size_t srcno;
  int off = 0;
  if (sscanf (now_line, "source %zu\t%n", &srcno, &off) != 1 || off == 0 || srcno >= j->nsrcs)
    return NULL;
  save_listing (j, srcno, now_line + off);
  kiln_autoclose int old = open_listing (j, was);
  kiln_autoclose int now = open_listing (j, now_line + off);
  char *why = old >= 0 && now >= 0 ? kiln_treelist_explain (old, now) : NULL;
  /* no listing of the last build (a record imported from a registry cache) */
  if (!why && j->srcs[srcno].name[0])
    why = kiln_xasprintf ("the files of `%s` changed", j->srcs[srcno].name);
  return why;
}

/* The key: the instruction, the variables it used, where the files land,
 * and per source the digest of its tree (each entry's path, type, mode,
 * owner, link target and content digest; never mtimes), so a record stays
 * small for any tree.  Entries must all have their digests. */
static void
step_key (struct copy_job *j, struct kiln_digest *key)
{
  const struct kiln_layer_opts *lo = &j->b->o->layer;
  struct kiln_cache_key k;
  kiln_strv_free (j->inputs);
  j->inputs = NULL;
  kiln_strv_push_take (&j->inputs, kiln_xasprintf ("instruction\t%s", j->in->original));
  /* the same files in another compression or mtime clamp are another layer */
  kiln_strv_push_take (&j->inputs, kiln_xasprintf ("layer format\t%s level %d clamp %s%lld",
                                                   kiln_compression_media_type (lo->compression), lo->level,
                                                   lo->clamp_mtime ? "at " : "off",
                                                   (long long) (lo->clamp_mtime ? lo->epoch : 0)));
  for (size_t i = 0; j->b->used && j->b->used[i]; i++)
    kiln_strv_push (&j->inputs, j->b->used[i]);
  /* where the files land follows from these and the parent's files (its key) */
  kiln_strv_push_take (&j->inputs, kiln_xasprintf ("destination\t/%s%s", j->dest, j->dest_slash ? "/" : ""));
  for (size_t i = 0; j->s->pending_dirs && j->s->pending_dirs[i]; i++)
    kiln_strv_push_take (&j->inputs, kiln_xasprintf ("workdir\t/%s %s", j->s->pending_dirs[i],
                                                     j->s->pending_owners[i].user));
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
          kiln_treesum_add (t, treesum_entry (order[k], &te), &e);
        }
      if (j->srcs[i].folded)
        d = j->srcs[i].digest;   /* key mode: the walk made it, the array is empty */
      else
        kiln_treesum_final (t, &d);
      kiln_strv_push_take (&j->inputs, kiln_xasprintf ("source %zu\t%s %s %s", i, j->srcs[i].is_dir ? "tree" : "file",
                                                       j->srcs[i].name, d.s));
    }
  kiln_treesum_free (t);
  kiln_cache_key_init (&k, &j->s->key);
  for (size_t i = 0; j->inputs[i]; i++)
    kiln_cache_key_add (&k, "input", j->inputs[i]);
  kiln_cache_key_final (&k, key);
}

/* The entries of a COPY layer this build wrote from the context, kept so a
 * later RUN can materialise the layer's snapshot from the same files. */
struct build_copied {
  struct kiln_digest blob;
  struct centry *v;
  size_t n;
};

static void
free_centry (struct centry *c)
{
  free (c->dest);
  free (c->rel);
  free (c->src);
  free (c->data);
  free (c->link);
  free (c->url);
}

static void
free_centries (struct centry *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free_centry (&v[i]);
  free (v);
}

/* Entries that can be copied again after the step: context files, heredocs
 * and synthesized dirs (another stage's or an archive's files do not
 * outlive the step). */
static bool
from_context_only (const struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].rootfd >= 0 && !j->v[i].ctx)
      return false;
  return true;
}

static void
keep_entries (struct copy_job *j)
{
  struct build *b = j->b;
  if (!from_context_only (j))
    return;
  b->copied = kiln_xrealloc (b->copied, (b->ncopied + 1) * sizeof *b->copied);
  struct build_copied *c = &b->copied[b->ncopied++];
  c->blob = j->s->layers[j->s->nlayers - 1].digest;
  c->v = kiln_steal_ptr (&j->v);
  c->n = j->n;
  j->n = 0;
}

void
kiln_build_copied_clear (struct build *b)
{
  for (size_t i = 0; i < b->ncopied; i++)
    free_centries (b->copied[i].v, b->copied[i].n);
  free (b->copied);
  b->copied = NULL;
  b->ncopied = 0;
}

/* One entry, as extracting the layer's tar would create it. */
static int
materialize_one (const struct centry *c, int dirfd, int64_t mtime, struct kiln_error **err)
{
  const char *slash = strrchr (c->dest, '/');
  kiln_autofree char *parent = slash ? kiln_xstrndup (c->dest, (size_t) (slash - c->dest)) : kiln_xstrdup ("");
  const char *name = slash ? slash + 1 : c->dest;
  kiln_autoclose int pfd = kiln_fs_open_in_root (dirfd, parent, O_RDONLY | O_DIRECTORY, 0, err);
  struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
  mode_t perm = c->mode & 07777;
  if (pfd < 0)
    return -1;
  if (S_ISDIR (c->mode))
    {
      if (mkdirat (pfd, name, 0700) < 0 && errno != EEXIST)
        return kiln_error_set (err, errno, KILN_E_IO, "snapshot: create `%s`", c->dest);
    }
  else if (S_ISLNK (c->mode))
    {
      if (symlinkat (c->link, pfd, name) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "snapshot: create `%s`", c->dest);
    }
  else if (S_ISREG (c->mode))
    {
      kiln_autoclose int out = openat (pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (out < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "snapshot: create `%s`", c->dest);
      if (c->data)
        {
          if (kiln_fs_write_all (out, c->data, c->datalen, err) < 0)
            return -1;
        }
      else
        {
          struct stat now;
          kiln_autoclose int in = kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
          /* the file must still be what went into the layer */
          if (in < 0 || fstat (in, &now) < 0 || now.st_size != c->st.st_size
              || now.st_mtim.tv_sec != c->st.st_mtim.tv_sec || now.st_mtim.tv_nsec != c->st.st_mtim.tv_nsec)
            return kiln_error_free (err), 0;
          int64_t n = kiln_fs_copy_data (in, out, c->size, err);
          if (n < 0)
            return kiln_error_wrap (err, "copy `%s` into a snapshot", c->src);
          if ((uint64_t) n != c->size)
            return 0;   /* it shrank since the layer was written */
        }
    }
  else if (mknodat (pfd, name, c->mode, c->rdev) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "snapshot: create `%s`", c->dest);
  if (fchownat (pfd, name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0
      || (!S_ISLNK (c->mode) && fchmodat (pfd, name, perm, 0) < 0)
      || (!S_ISDIR (c->mode) && utimensat (pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0))
    return kiln_error_set (err, errno, KILN_E_IO, "snapshot: set metadata of `%s`", c->dest);
  return 1;
}

static int64_t
layer_mtime (const struct build *b, int64_t mtime)
{
  return kiln_layer_opts_mtime (&b->o->layer, mtime);
}

/* 1 when the entries are now in dirfd, 0 when a source changed (use the
 * blob instead), < 0 on error. */
static int
materialize_entries (struct build *b, const struct centry *v, size_t n, int dirfd, struct kiln_error **err)
{
  for (size_t i = 0; i < n; i++)
    if (v[i].hardlink)
      return 0;   /* the layer's blob makes the links */
  for (size_t i = 0; i < n; i++)
    {
      int r = v[i].dropped ? 1 : materialize_one (&v[i], dirfd, layer_mtime (b, v[i].mtime), err);
      if (r <= 0)
        return r;
    }
  /* directory times last: creating their children changed them */
  for (size_t i = n; i-- > 0;)
    if (S_ISDIR (v[i].mode) && !v[i].dropped)
      {
        int64_t t = layer_mtime (b, v[i].mtime);
        struct timespec ts[2] = { { t, 0 }, { t, 0 } };
        kiln_autoclose int fd = kiln_fs_open_in_root (dirfd, v[i].dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, err);
        if (fd < 0 || futimens (fd, ts) < 0)
          return fd < 0 ? -1 : kiln_error_set (err, errno, KILN_E_IO, "snapshot: set times of `%s`", v[i].dest);
      }
  return 1;
}

int
kiln_build_materialize (void *opaque, const struct kiln_descriptor *layer, int dirfd, struct kiln_error **err)
{
  struct build *b = opaque;
  for (size_t i = 0; i < b->ncopied; i++)
    if (strcmp (b->copied[i].blob.s, layer->digest.s) == 0)
      return materialize_entries (b, b->copied[i].v, b->copied[i].n, dirfd, err);
  return 0;
}

/* The snapshot of a COPY layer made while the layer streams, on its own
 * thread: the layer writer keeps both cores busy only part of the time,
 * and a RUN right after needs the snapshot anyway. */
struct ahead {
  struct build *b;
  const struct centry *v;
  size_t n;
  int dirfd;
  int result;
  struct kiln_error *err;
  struct kiln_snapshot_tmp *tmp;
  pthread_t th;
  bool running;
};

static void *
ahead_main (void *arg)
{
  struct ahead *a = arg;
  a->result = materialize_entries (a->b, a->v, a->n, a->dirfd, &a->err);
  return NULL;
}

/* Whether a RUN later in this stage will need this step's snapshot. */
static bool
run_follows (const struct copy_job *j)
{
  const struct kiln_plan_stage *ps = &j->b->plan->stages[j->s - j->b->stages];
  bool after = false;
  for (size_t i = 0; i < ps->ninstrs; i++)
    {
      if (after && ps->instrs[i]->cmd == KILN_DF_RUN)
        return true;
      after = after || ps->instrs[i] == j->in;
    }
  return false;
}

static void
ahead_start (struct copy_job *j, struct ahead *a)
{
  kiln_autoerror struct kiln_error *e = NULL;
  *a = (struct ahead){ .b = j->b, .v = j->v, .n = j->n };
  if (!from_context_only (j) || !run_follows (j) || kiln_snapshot_begin (j->b->st, &a->tmp, &a->dirfd, &e) < 0)
    return;
  a->running = pthread_create (&a->th, NULL, ahead_main, a) == 0;
  if (!a->running)
    kiln_snapshot_abort (kiln_steal_ptr (&a->tmp));
}

/* Joins the thread; commits the snapshot when the layer and it are done. */
static void
ahead_finish (struct copy_job *j, struct ahead *a, bool layer_ok)
{
  if (!a->running)
    return;
  pthread_join (a->th, NULL);
  kiln_autoerror struct kiln_error *e = NULL;
  if (layer_ok && a->result == 1
      && kiln_snapshot_commit (kiln_steal_ptr (&a->tmp), j->s->cfg.diff_ids, j->s->nlayers, &e) < 0)
    kiln_log_warn ("snapshot ahead of `%s`: %s", j->in->original, e->msg);
  kiln_snapshot_abort (a->tmp);
  kiln_error_free (&a->err);
}

static int stream_open (struct copy_job *j, const char *path, struct kiln_error **err);

static int
open_entry (void *ud, void *opaque, const char *path, struct kiln_error **err)
{
  struct copy_job *j = ud;
  return j->stream ? stream_open (j, path, err) : open_source (j, opaque, err);
}

/* Whether every file the layer gets has its content digest (context files
 * and in-memory data only: a stage's or an archive's files do not). */
static bool
patchable (const struct copy_job *j)
{
  if (!from_context_only (j))
    return false;
  for (size_t i = 0; i < j->n; i++)
    {
      const struct centry *c = &j->v[i];
      if (!c->dropped && S_ISREG (c->mode) && !c->hardlink && content_digest (c) == NULL)
        return false;
    }
  return true;
}

/* A rebuild whose files all have their digests can patch the layer the
 * last build of this step wrote (kiln_layer_writer_new_patch): a one-file
 * change then reads that file's block, not the tree. */
static int
new_writer (struct copy_job *j, bool digested, struct kiln_layer_writer **w, struct kiln_error **err)
{
  struct kiln_cache_record sib = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  int r = 0;
  if (digested && patchable (j)
      && kiln_cache_find_sibling (j->b->st, &j->s->key, j->in->original, &sib, &e) == 0 && sib.has_layer)
    r = kiln_layer_writer_new_patch (j->b->st, &j->b->o->layer, &sib.layer.digest, open_entry, j, w, err);
  kiln_cache_record_clear (&sib);
  j->patching = r == 1;
  if (r != 0)
    return r < 0 ? -1 : 0;
  return kiln_layer_writer_new (j->b->st, &j->b->o->layer, w, err);
}

static void
report_patch (struct copy_job *j, struct kiln_layer_writer *w)
{
  uint64_t made, reused;
  if (!j->patching)
    return;
  kiln_layer_writer_blocks (w, &made, &reused);
  kiln_log_info ("%s: layer patched from the last build's: %llu of %llu blocks made again", j->in->original,
                 (unsigned long long) made, (unsigned long long) (made + reused));
}

static int finish_layer (struct copy_job *j, struct kiln_layer_writer *w, struct kiln_error **err);

/* Streams the sorted entries through one layer writer into the store. */
static int
write_layer (struct copy_job *j, bool digested, struct kiln_error **err)
{
  struct kiln_layer_writer *w = NULL;
  if (new_writer (j, digested, &w, err) < 0)
    return -1;
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].dropped ? S_ISREG (j->v[i].mode) && entry_digest (j, &j->v[i], err) < 0
                        : write_entry (j, w, &j->v[i], j->v[i].hardlink ? &j->v[j->v[i].link_to] : NULL, err) < 0)
      {
        kiln_layer_writer_free (w);
        kiln_fs_dircache_clear (&j->dc);
        kiln_error_wrap (err, "add `/%.256s` to the layer", j->v[i].dest);
        return kiln_build_step_error (j->b, j->in, err);
      }
  return finish_layer (j, w, err);
}

/* Closes the layer, frees w and adds the layer to the stage. */
static int
finish_layer (struct copy_job *j, struct kiln_layer_writer *w, struct kiln_error **err)
{
  struct kiln_layer_result lr = { 0 };
  int r = kiln_layer_writer_finish (w, &lr, err);
  kiln_fs_dircache_clear (&j->dc);
  if (r < 0)
    {
      kiln_layer_writer_free (w);
      return kiln_build_step_error (j->b, j->in, err);
    }
  report_patch (j, w);
  kiln_layer_writer_free (w);
  free (j->s->clock);
  j->s->clock = kiln_xstrdup (j->b->created);
  kiln_build_add_layer (j->b, j->s, &lr, j->in->original);
  kiln_layer_result_clear (&lr);
  return 0;
}

/* Reuses a cached layer or writes a new one and records it.  Files the
 * checksum cache does not know are hashed first only when a cached result
 * could exist; otherwise (a cold build) they are hashed while they stream
 * into the layer, so each byte is read once. */
static int
commit_layer (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_digest key;
  struct kiln_cache_record sib = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  /* the array's doubling slack back (placement adds a few directories) */
  if (j->cap > j->n + 64)
    {
      j->cap = j->n + 64;
      j->v = kiln_xrealloc (j->v, j->cap * sizeof *j->v);
    }
  if (j->n > 1)
    qsort (j->v, j->n, sizeof *j->v, compare_collected);
  /* key mode looked it up already: only the explanation is left */
  bool may_hit = j->looked_up
                 || (kiln_build_cache_enabled (j->b, j->s)
                     && (all_cheap (j)
                         || kiln_cache_find_sibling (j->b->st, &j->s->key, j->in->original, &sib, &e) == 0
                         || j->b->o->cache_sources));
  kiln_cache_record_clear (&sib);
  if (may_hit)
    {
      for (size_t i = 0; i < j->n; i++)
        if (S_ISREG (j->v[i].mode) && entry_digest (j, &j->v[i], err) < 0)
          return kiln_build_step_error (j->b, j->in, err);
      step_key (j, &key);
      j->b->explain_input = explain_source, j->b->explain_ud = j;
      int hit = 0;
      if (j->looked_up)
        kiln_build_cache_note_miss (j->b, j->s, j->in, &key, j->inputs);
      else
        hit = kiln_build_cache_lookup (j->b, j->s, j->in, &key, j->inputs, err);
      j->b->explain_input = NULL, j->b->explain_ud = NULL;
      if (hit != 0)
        return hit < 0 ? -1 : 0;
    }
  if (place_entries (j, err) < 0 || fetch_pending (j, err) < 0)
    return -1;
  struct ahead ahead;
  ahead_start (j, &ahead);
  int wr = write_layer (j, may_hit, err);
  ahead_finish (j, &ahead, wr == 0);
  if (wr < 0)
    return -1;
  /* the stage's view already holds what this layer put there */
  if (!j->link_view && j->s->view_layers + 1 == j->s->nlayers)
    j->s->view_layers = j->s->nlayers;
  if (!may_hit)
    {
      /* a cold build hashed the files while they streamed */
      step_key (j, &key);
      kiln_build_cache_note_miss (j->b, j->s, j->in, &key, j->inputs);
    }
  save_listings (j);
  /* after the key: the entries move to the build for snapshot materialising */
  compact_entries (j);
  keep_entries (j);
  return kiln_build_cache_record (j->b, j->s, j->in, &key, j->inputs, err);
}

/* ---- streaming: one directory of the context, straight into the layer ----
 *
 * A step that copies one directory of the context (`COPY . /app`, `COPY
 * app/ /app/`), with no RUN after it in its stage to materialise its
 * snapshot from the entries, does not hold them: each walked entry is
 * placed, written, folded into the tree digest and listed as soon as the
 * walk has the next one (the fold's rule: an excluded directory that turns
 * out empty is never written), then freed, so memory does not grow with the
 * tree.  The layer is the array path's byte for byte: both write in tree
 * order, placement's own directories are merged in at their place, and a
 * hardlink's first name in that order carries the content.  The tests
 * compare the two (KILN_COPY_STREAM=0 turns streaming off). */

/* The first name of a file with several links, which later names link to. */
struct stream_lead {
  dev_t dev;
  ino_t ino;
  struct centry *c;      /* its dest and digest only; NULL: a free slot */
};

struct copy_stream {
  struct kiln_layer_writer *w;
  struct kiln_tocview *v;
  char *target;          /* where the source's contents land */
  const char *src;       /* the source's path in the context */
  struct centry *made;   /* placement's directories, in layer order */
  size_t nmade, next;
  size_t written;        /* walked entries written */
  struct stream_lead *leads;
  size_t nleads, capleads;
  int list_dfd;          /* cache/trees, where the listing is written */
  char *list_tmp;
  struct kiln_treelist_writer *list;
  struct kiln_error *err;
};

static size_t
lead_slot (const struct copy_stream *cs, dev_t dev, ino_t ino)
{
  size_t h = ((size_t) ino * 0x9E3779B97F4A7C15ull) ^ (size_t) dev;
  for (size_t i = h & (cs->capleads - 1);; i = (i + 1) & (cs->capleads - 1))
    if (!cs->leads[i].c || (cs->leads[i].dev == dev && cs->leads[i].ino == ino))
      return i;
}

static const struct centry *
lead_find (const struct copy_stream *cs, const struct centry *c)
{
  if (cs->capleads == 0)
    return NULL;
  return cs->leads[lead_slot (cs, c->st.st_dev, c->st.st_ino)].c;
}

static void
lead_add (struct copy_stream *cs, const struct centry *c)
{
  if (2 * (cs->nleads + 1) > cs->capleads)
    {
      struct stream_lead *old = cs->leads;
      size_t oldcap = cs->capleads;
      cs->capleads = oldcap ? 2 * oldcap : 64;
      cs->leads = kiln_xcalloc (cs->capleads, sizeof *cs->leads);
      for (size_t i = 0; i < oldcap; i++)
        if (old[i].c)
          cs->leads[lead_slot (cs, old[i].dev, old[i].ino)] = old[i];
      free (old);
    }
  struct centry *k = kiln_xcalloc (1, sizeof *k);
  k->dest = kiln_xstrdup (c->dest);
  k->digest = c->digest, k->have_digest = c->have_digest;
  cs->leads[lead_slot (cs, c->st.st_dev, c->st.st_ino)] = (struct stream_lead){ c->st.st_dev, c->st.st_ino, k };
  cs->nleads++;
}

/* Placement's directories that come before path in the layer (all of
 * them when path is NULL); one the source has itself is its to write. */
static int
stream_made (struct copy_job *j, const char *path, struct kiln_error **err)
{
  struct copy_stream *cs = j->stream;
  for (; cs->next < cs->nmade; cs->next++)
    {
      struct centry *m = &cs->made[cs->next];
      int c = path ? kiln_treesum_path_cmp (m->dest, path) : -1;
      if (c > 0)
        break;
      /* above the target: only when the walk wrote something below it */
      if (c == 0 || m->dropped || (m->optional && cs->written == 0))
        continue;
      if (write_entry (j, cs->w, m, NULL, err) < 0)
        return kiln_error_wrap (err, "add `/%.256s` to the layer", m->dest);
    }
  return 0;
}

static int
stream_entry (struct copy_job *j, struct centry *c, struct kiln_error **err)
{
  struct copy_stream *cs = j->stream;
  struct kiln_treesum_entry te;
  const struct centry *to = NULL;
  if (place_check (j, cs->v, c, cs->target, err) < 0)
    return -1;
  bool linked = S_ISREG (c->mode) && c->src && !c->data && c->st.st_nlink > 1;
  if (linked && (to = lead_find (cs, c)))
    c->hardlink = true;
  cs->written++;
  if (stream_made (j, c->dest, err) < 0
      || (j->patching && S_ISREG (c->mode) && !to && entry_digest (j, c, err) < 0)
      || write_entry (j, cs->w, c, to, err) < 0)
    {
      kiln_error_wrap (err, "add `/%.256s` to the layer", c->dest);
      return kiln_build_step_error (j->b, j->in, err);
    }
  if (linked && !to)
    lead_add (cs, c);
  if (kiln_treesum_add (j->fold, treesum_entry (c, &te), err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if (cs->list)
    kiln_treelist_write (cs->list, c->src, &te);
  return 0;
}

/* The entries the walk has made final go into the layer. */
static void
stream_flush (struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    {
      if (!j->stream->err)
        stream_entry (j, &j->v[i], &j->stream->err);
      free_centry (&j->v[i]);
    }
  j->n = 0;
}

/* A streamed entry failed: the walk stops. */
static bool
stream_failed (const struct copy_job *j)
{
  return j->stream && j->stream->err;
}

/* The patch writer reopens files by their path in the layer. */
static int
stream_open (struct copy_job *j, const char *path, struct kiln_error **err)
{
  const char *rel = path + strlen (j->stream->target);
  rel += *rel == '/';
  kiln_autofree char *src = kiln_fs_path_join (j->stream->src, rel);
  struct centry c = { .src = *src == '/' ? src + 1 : src, .rootfd = j->rootfd };
  return open_source (j, &c, err);
}

/* Placement's directories (a pending WORKDIR, the destination and the
 * directories above it) are made before the walk and kept in layer order;
 * those above the target that the image has are optional (written only
 * when the tree has something, as the array path's ancestors). */
static int
stream_place (struct copy_job *j, struct copy_stream *cs, struct kiln_error **err)
{
  kiln_autofree char *dst = NULL;
  if (!(cs->v = place_view (j, err)) || place_prepare (j, cs->v, &dst, err) < 0
      || source_target (j, cs->v, 0, dst, &cs->target, err) < 0)
    return -1;
  sort_entries (j);
  add_ancestors (j, cs->v);
  size_t n = j->n;
  kiln_autofree char *dir = kiln_xstrdup (cs->target);
  while (*dir)
    {
      if (!has_dest (j, n, dir))
        {
          add_made_dir (j, dir, kiln_tocview_get (cs->v, dir));
          j->v[j->n - 1].optional = true;
        }
      char *slash = strrchr (dir, '/');
      if (!slash)
        break;
      *slash = '\0';
    }
  sort_entries (j);
  cs->made = kiln_steal_ptr (&j->v);
  cs->nmade = j->n;
  j->n = j->cap = 0;
  return 0;
}

/* The listing of the source (to explain the next miss) goes to a
 * temporary file of cache/trees as the walk goes; derived data, so a
 * failure costs only that explanation. */
static void
stream_list_open (struct copy_job *j)
{
  static unsigned serial;
  struct copy_stream *cs = j->stream;
  kiln_autoerror struct kiln_error *e = NULL;
  cs->list_dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (j->b->st), "cache/trees", 0755, &e);
  if (cs->list_dfd < 0)
    return;
  cs->list_tmp = kiln_xasprintf (".tmp-stream-%d-%u", (int) getpid (), serial++);
  int fd = openat (cs->list_dfd, cs->list_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0)
    cs->list = kiln_treelist_writer_new (fd);
}

/* Renames the listing to the name of the source's key line (NULL: drops it). */
static void
stream_list_close (struct copy_job *j, const char *value)
{
  struct copy_stream *cs = j->stream;
  kiln_autoerror struct kiln_error *e = NULL;
  if (!cs->list_tmp)
    return;
  kiln_autofree char *name = value ? kiln_treelist_name (value) : NULL;
  int r = cs->list ? kiln_treelist_writer_finish (cs->list, &e) : -1;
  cs->list = NULL;
  if (r < 0 || !name || renameat (cs->list_dfd, cs->list_tmp, cs->list_dfd, name) < 0)
    unlinkat (cs->list_dfd, cs->list_tmp, 0);
  free (cs->list_tmp);
  cs->list_tmp = NULL;
}

static void
stream_clear (struct copy_job *j)
{
  struct copy_stream *cs = j->stream;
  stream_list_close (j, NULL);
  if (cs->list_dfd >= 0)
    close (cs->list_dfd);
  kiln_layer_writer_free (cs->w);
  kiln_fs_dircache_clear (&j->dc);
  free_centries (cs->made, cs->nmade);
  for (size_t i = 0; i < cs->capleads; i++)
    if (cs->leads[i].c)
      {
        free_centry (cs->leads[i].c);
        free (cs->leads[i].c);
      }
  free (cs->leads);
  free (cs->target);
  kiln_error_free (&cs->err);
  kiln_treesum_free (j->fold);
  j->fold = NULL;
  j->stream = NULL;
}

/* After the layer: the key (the fold made the source's digest), the
 * listing under its name, the miss explained against the last build's
 * listing when key mode looked the step up, the record. */
static int
stream_record (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_digest key;
  step_key (j, &key);
  for (size_t i = 0; j->inputs[i]; i++)
    if (kiln_str_has_prefix (j->inputs[i], "source 0\t"))
      stream_list_close (j, j->inputs[i] + strlen ("source 0\t"));
  if (j->looked_up)
    j->b->explain_input = explain_source, j->b->explain_ud = j;
  kiln_build_cache_note_miss (j->b, j->s, j->in, &key, j->inputs);
  j->b->explain_input = NULL, j->b->explain_ud = NULL;
  return kiln_build_cache_record (j->b, j->s, j->in, &key, j->inputs, err);
}

static int
stream_run (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  struct copy_stream *cs = j->stream;
  bool ignored = kiln_ignore_excluded (j->b->ignore, src);
  begin_source (j, true, *src ? src : ".");
  /* placement's entries go to the array, not into the layer */
  j->stream = NULL;
  int r = stream_place (j, cs, err);
  j->stream = cs;
  if (r < 0)
    return -1;
  if (new_writer (j, j->looked_up, &cs->w, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  stream_list_open (j);
  j->fold = kiln_treesum_new ();
  if (copy_tree (j, src, st, err) < 0)
    return cs->err ? (kiln_error_free (err), *err = kiln_steal_ptr (&cs->err), -1) : -1;
  stream_flush (j);
  if (cs->err)
    return *err = kiln_steal_ptr (&cs->err), -1;
  if (ignored && cs->written == 0)
    return job_fail (j, err, "source `%s` not found in the build context (.dockerignore excludes it)", src);
  if (stream_made (j, NULL, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  kiln_treesum_final (j->fold, &j->srcs[0].digest);
  j->srcs[0].folded = true;
  kiln_log_debug ("%s: %zu entries streamed into the layer", j->in->original, cs->written);
  r = finish_layer (j, kiln_steal_ptr (&cs->w), err);
  return r < 0 ? -1 : stream_record (j, err);
}

/* Whether the step is one streaming does: a single directory of the
 * context, named without a wildcard, and no RUN after it in the stage. */
static bool
stream_applies (struct copy_job *j, const char *word, const char *src)
{
  const char *env = getenv ("KILN_COPY_STREAM");
  return j->from_context && !j->parents && !j->has_checksum && !find_heredoc (j->in, word)
         && !kiln_fetch_is_url (word) && !strstr (word, "://") && !kiln_str_has_prefix (word, "git@")
         && !has_glob (src) && !run_follows (j) && !(env && strcmp (env, "0") == 0);
}

/* 1: not a step for streaming (nothing done), 0: done, -1: error. */
static int
stream_copy (struct copy_job *j, char **words, size_t nsrc, struct kiln_error **err)
{
  struct stat st;
  bool descend;
  if (nsrc != 1)
    return 1;
  kiln_autofree char *src = kiln_fs_path_clean (words[0]);
  if (!stream_applies (j, words[0], src) || (excluded (j, src, &descend) && !descend))
    return 1;
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_NONBLOCK, 0, &e);
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISDIR (st.st_mode))
    return 1;   /* the array path says what is wrong */
  struct copy_stream cs = { .src = src, .list_dfd = -1 };
  j->stream = &cs;
  int ret = stream_run (j, src, &st, err);
  stream_clear (j);
  return ret;
}

/* --chown=user[:group], numeric or names from the destination image. */
static int
parse_chown (struct copy_job *j, const char *spec, struct kiln_error **err)
{
  struct kiln_passwd_ids ids;
  int rootfd = -1;
  /* the image's files are only needed for names */
  if (kiln_passwd_spec_has_names (spec))
    {
      rootfd = kiln_build_stage_rootfs (j->b, j->s, err);
      if (rootfd < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  if (kiln_passwd_resolve (rootfd, spec, true, false, &ids, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  j->uid = ids.uid;
  j->gid = ids.gid;
  j->has_chown = true;
  kiln_passwd_ids_clear (&ids);
  return 0;
}

static int
parse_chmod (struct copy_job *j, const char *spec, struct kiln_error **err)
{
  char *end;
  long m = strtol (spec, &end, 8);
  if (!*spec || *end || m < 0 || m > 07777)
    return job_fail (j, err, "invalid --chmod `%s` (want an octal mode like 0644)", spec);
  j->chmod = (mode_t) m;
  j->has_chmod = true;
  return 0;
}

static int
expand_flag (struct copy_job *j, const char *name, char **out, struct kiln_error **err)
{
  const char *v = kiln_df_instr_flag (j->in, name, NULL);
  struct step_env e = { j->b, j->s };
  *out = NULL;
  if (!v)
    return 0;
  if (kiln_expand_word (v, j->b->df->escape, kiln_build_lookup, &e, out, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  return 0;
}

/* --from=stage|index|image: the files come from that filesystem, owners kept. */
static int
source_root (struct copy_job *j, struct build_stage *tmp, struct kiln_error **err)
{
  kiln_autofree char *from = NULL;
  if (expand_flag (j, "from", &from, err) < 0)
    return -1;
  if (!from)
    {
      j->rootfd = j->b->ctx_fd;
      j->from_context = true;
      return 0;
    }
  struct build_stage *src = tmp;
  long idx = kiln_plan_find_stage (j->b->plan, from, (size_t) (j->s - j->b->stages));
  if (idx >= 0 && !j->b->stages[idx].built) /* never empty files for a stage the plan missed */
    return job_fail (j, err, "stage `%s` was not built before its use", from);
  if (idx >= 0)
    src = &j->b->stages[idx];
  else if (kiln_build_load_image (j->b, tmp, from, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  /* files of a stage or image are named by its cache key: equal key, equal files */
  kiln_strv_push_take (&j->origins, kiln_xasprintf ("from %s:", src->key.s));
  j->origin = j->origins[0];
  j->rootfd = kiln_build_stage_rootfs (j->b, src, err);
  j->keep_owner = true;
  return j->rootfd < 0 ? kiln_build_step_error (j->b, j->in, err) : 0;
}

static const struct kiln_df_heredoc *
find_heredoc (const struct kiln_df_instr *in, const char *word)
{
  if (strncmp (word, "<<", 2) != 0)
    return NULL;
  word += 2 + (word[2] == '-');
  for (size_t i = 0; i < in->nheredocs; i++)
    if (strcmp (in->heredocs[i].name, word) == 0)
      return &in->heredocs[i];
  return NULL;
}

static int
add_heredoc (struct copy_job *j, const struct kiln_df_heredoc *h, struct kiln_error **err)
{
  char *data = NULL;
  struct step_env e = { j->b, j->s };
  if (h->expand)
    {
      /* quotes in the body are text (BuildKit ExpandRaw, SkipProcessQuotes) */
      if (kiln_expand_heredoc (h->content, kiln_build_lookup, &e, &data, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  else
    data = kiln_xstrdup (h->content);
  begin_source (j, false, h->name);
  struct centry *c = add_entry (j, "");
  c->data = data;
  c->datalen = strlen (data);
  c->size = c->datalen;
  c->mode = S_IFREG | (j->has_chmod ? j->chmod : 0644);
  c->uid = j->has_chown ? j->uid : 0;
  c->gid = j->has_chown ? j->gid : 0;
  c->mtime = synth_mtime (j);
  return 0;
}

static int
copy_words (struct copy_job *j, char ***words, struct kiln_error **err)
{
  struct step_env e = { j->b, j->s };
  /* As BuildKit: the arguments are split first, then each is expanded as
   * one word (SourcesAndDest.Expand), so `COPY f $empty` copies to the
   * working directory and a value with blanks stays one path. */
  kiln_autostrv char **raw = NULL;
  if (!j->in->json)
    kiln_split_words_raw (j->in->args, j->b->df->escape, &raw);
  char *const *argv = j->in->json ? j->in->argv : raw;
  size_t n = 0;
  for (size_t i = 0; argv[i]; i++)
    {
      char *w = NULL;
      if (kiln_expand_word (argv[i], j->b->df->escape, kiln_build_lookup, &e, &w, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
      kiln_strv_append (words, &n, w);
    }
  if (n < 2)
    return job_fail (j, err, "requires at least two arguments%s", NULL);
  return 0;
}

/* Every --exclude (repeatable), expanded, as one .dockerignore-style set. */
static int
parse_exclude (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_buf text = KILN_BUF_INIT;
  struct step_env e = { j->b, j->s };
  int r = 0;
  for (size_t i = 0; r == 0 && i < j->in->nflags; i++)
    {
      kiln_autofree char *v = NULL;
      if (strcmp (j->in->flags[i].name, "exclude") != 0)
        continue;
      r = kiln_expand_word (j->in->flags[i].value ? j->in->flags[i].value : "", j->b->df->escape,
                            kiln_build_lookup, &e, &v, err);
      if (r == 0 && (!*v || strchr (v, '\n')))
        r = kiln_error_set (err, 0, KILN_E_PARSE, "invalid --exclude `%s`", v);
      if (r == 0)
        kiln_buf_addf (&text, "%s\n", v);
    }
  if (r == 0 && text.len > 0)
    r = kiln_ignore_parse ("--exclude", text.buf, text.len, &j->exclude, err);
  kiln_buf_release (&text);
  return r < 0 ? kiln_build_step_error (j->b, j->in, err) : 0;
}

static int
check_flags (struct copy_job *j, struct kiln_error **err)
{
  static const char *const unsupported[] = { "keep-git-dir" };
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
    if (kiln_df_instr_flag (j->in, unsupported[i], NULL))
      {
        kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "--%s is not supported yet", unsupported[i]);
        return kiln_build_step_error (j->b, j->in, err);
      }
  kiln_autofree char *chown = NULL, *chmod = NULL, *checksum = NULL;
  if (expand_flag (j, "chown", &chown, err) < 0 || expand_flag (j, "chmod", &chmod, err) < 0
      || expand_flag (j, "checksum", &checksum, err) < 0)
    return -1;
  if (checksum && j->in->cmd != KILN_DF_ADD)
    return job_fail (j, err, "--checksum is an ADD flag%s", NULL);
  if (checksum && kiln_digest_parse (checksum, &j->checksum, err) < 0)
    {
      kiln_error_free (err);
      return job_fail (j, err, "invalid --checksum `%s` (want sha256:<64 lowercase hex digits>)", checksum);
    }
  j->has_checksum = checksum != NULL;
  /* --parents (Dockerfile 1.20), a boolean the parser has checked */
  j->parents = flag_true (j->in, "parents");
  if (parse_exclude (j, err) < 0)
    return -1;
  if (chown && parse_chown (j, chown, err) < 0)
    return -1;
  if (chmod && parse_chmod (j, chmod, err) < 0)
    return -1;
  return 0;
}

/* A match's path below the pivot: the pivot's components (a wildcard in
 * one matched one component) dropped. */
static const char *
below_pivot (const char *match, const char *pivot)
{
  if (!*pivot)
    return match;
  size_t skip = 1;
  for (const char *c = pivot; (c = strchr (c, '/')); c++)
    skip++;
  for (; skip > 0 && match; skip--)
    if ((match = strchr (match, '/')))
      match++;
  return match ? match : "";
}

/* A context (or stage) path source: wildcards resolved here, as BuildKit
 * does in the copy itself, so one match is one source.  With --parents the
 * path is split at its "/./" pivot (none: the root) and each match keeps
 * its path below the pivot. */
static int
copy_path (struct copy_job *j, const char *word, struct kiln_error **err)
{
  kiln_autostrv char **matches = NULL;
  size_t nmatches = 0;
  const char *cut = j->parents ? strstr (word, "/./") : NULL;
  kiln_autofree char *pivot = cut ? kiln_xstrndup (word, (size_t) (cut - word)) : kiln_xstrdup ("");
  kiln_autofree char *pc = kiln_fs_path_clean (pivot);
  kiln_autofree char *src = kiln_fs_path_clean (word);
  if (!has_glob (src))
    kiln_strv_append (&matches, &nmatches, kiln_xstrdup (src));
  else if (check_glob_base (j, src, err) < 0)
    return -1;
  else if (glob_sources (j, "", src, &matches, &nmatches, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  for (size_t m = 0; matches && matches[m]; m++)
    {
      j->parent_prefix = j->parents ? below_pivot (matches[m], pc) : NULL;
      j->globbed = has_glob (src);
      int r = copy_one (j, matches[m], err);
      j->parent_prefix = NULL;
      if (r < 0)
        return -1;
    }
  return 0;
}

static int
collect_sources (struct copy_job *j, char **words, size_t nsrc, struct kiln_error **err)
{
  for (size_t i = 0; i < nsrc; i++)
    {
      const struct kiln_df_heredoc *h = find_heredoc (j->in, words[i]);
      if (h)
        {
          if (add_heredoc (j, h, err) < 0)
            return -1;
          continue;
        }
      if (kiln_fetch_is_url (words[i]))
        {
          kiln_autofree char *shown = kiln_fetch_redact (words[i]);
          if (j->in->cmd != KILN_DF_ADD)
            return job_fail (j, err, "COPY cannot download `%s`; use ADD", shown);
          if (add_url (j, words[i], err) < 0)
            return -1;
          continue;
        }
      if (j->has_checksum)
        return job_fail (j, err, "--checksum needs an http(s) URL as the source, not `%s`", words[i]);
      if (strstr (words[i], "://") || kiln_str_has_prefix (words[i], "git@"))
        {
          kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "remote source `%s` is not supported yet", words[i]);
          return kiln_build_step_error (j->b, j->in, err);
        }
      if (copy_path (j, words[i], err) < 0)
        return -1;
      if (j->fold_abort)
        return 0;
    }
  return 0;
}

/* BuildKit's rule (fsutil copy.Copy): a destination whose last element is
 * empty or "." names a directory to make. */
static bool
names_dir (const char *raw)
{
  return kiln_str_has_suffix (raw, "/") || strcmp (raw, ".") == 0 || kiln_str_has_suffix (raw, "/.");
}

/* Key mode: the sources are walked and folded into their tree digests
 * without keeping their entries, and the step is looked up.  1 on a hit
 * (done), 0 to collect the entries into the array (a miss, or a step key
 * mode cannot do: downloads, archives, or files to read before anything
 * could hit), -1 on error. */
static int
key_mode (struct copy_job *j, char **words, size_t nsrc, struct kiln_error **err)
{
  struct kiln_cache_record sib = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  if (!kiln_build_cache_enabled (j->b, j->s))
    return 0;
  for (size_t i = 0; i < nsrc; i++)
    if (kiln_fetch_is_url (words[i]))
      return 0;
  /* with no earlier record, a cold build reads each file once, while it
   * streams into the layer: key mode gives up at the first unknown file */
  j->fold_cheap_only = !(kiln_cache_find_sibling (j->b->st, &j->s->key, j->in->original, &sib, &e) == 0
                         || j->b->o->cache_sources);
  kiln_cache_record_clear (&sib);
  j->fold = kiln_treesum_new ();
  j->fold_src = SIZE_MAX;
  int ret = collect_sources (j, words, nsrc, err);
  fold_finish_source (j);
  if (ret == 0 && !j->fold_abort)
    {
      struct kiln_digest key;
      step_key (j, &key);
      ret = kiln_build_cache_try (j->b, j->s, j->in, &key, err);
      j->looked_up = ret == 0;
    }
  kiln_treesum_free (j->fold);
  j->fold = NULL;
  j->fold_abort = false;   /* the array collection reports any error again */
  kiln_error_free (&j->fold_err);
  if (ret == 0)
    reset_collection (j);
  return ret;
}

int
kiln_build_copy (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  struct copy_job j = { .b = b, .s = s, .in = in, .rootfd = -1, .downloads_fd = -1, .dc = KILN_FS_DIRCACHE_INIT };
  struct build_stage tmp = { .rootfs_fd = -1 };
  kiln_autostrv char **words = NULL;
  size_t nsrc;
  int ret = -1, hit;

  if (copy_words (&j, &words, err) < 0 || check_flags (&j, err) < 0 || source_root (&j, &tmp, err) < 0)
    goto out;
  nsrc = kiln_strv_len (words) - 1;
  j.raw_dest = words[nsrc];
  j.dest = kiln_fs_path_join (s->cfg.working_dir ? s->cfg.working_dir : "/", j.raw_dest);
  j.dest_slash = names_dir (j.raw_dest);
  j.link_view = is_link (&j) ? kiln_tocview_new () : NULL;
  if (j.has_checksum && nsrc > 1)
    {
      job_fail (&j, err, "--checksum takes a single source%s", NULL);
      goto out;
    }
  hit = key_mode (&j, words, nsrc, err);
  if (hit != 0)
    {
      ret = hit < 0 ? -1 : 0;
      goto done;
    }
  ret = stream_copy (&j, words, nsrc, err);
  if (ret == 1 && collect_sources (&j, words, nsrc, err) < 0)
    ret = -1;
  else if (ret == 1)
    ret = commit_layer (&j, err);
done:
  if (ret == 0)
    kiln_build_stage_pending_clear (s);
out:
  free_entries (&j);
  free (j.dest);
  kiln_tocview_free (j.link_view);
  kiln_ignore_free (j.exclude);
  if (j.downloads_fd >= 0)
    close (j.downloads_fd);
  kiln_build_stage_clear (&tmp);
  return ret;
}

int
kiln_build_tree_digest (struct build *b, struct build_stage *s, int rootfd, const char *rel, bool from_context,
                        const char *origin, struct kiln_digest *out, struct kiln_error **err)
{
  /* key mode: the tree is folded as it is walked, whatever its size */
  struct copy_job j = { .b = b, .s = s, .rootfd = rootfd, .from_context = from_context, .origin = origin,
                        .dc = KILN_FS_DIRCACHE_INIT, .keep_owner = !from_context, .fold = kiln_treesum_new (),
                        .fold_src = SIZE_MAX };
  struct stat st;
  int ret = -1;
  kiln_autofree char *src = kiln_fs_path_clean (rel);
  kiln_autoclose int fd = kiln_fs_open_in_root (rootfd, src, O_RDONLY | O_NONBLOCK, 0, err);
  if (fd < 0 || fstat (fd, &st) < 0)
    goto out;
  begin_source (&j, S_ISDIR (st.st_mode), NULL);
  add_from_stat (&j, src, "", &st, NULL);
  if (S_ISDIR (st.st_mode))
    {
      walk_ahead_start (&j, fd, src);
      int r = walk_dir (&j, j.walk ? -1 : kiln_steal_fd (&fd), src, "", err);
      walk_ahead_stop (&j);
      if (r < 0)
        goto out;
    }
  fold_finish_source (&j);
  if (j.fold_abort)
    {
      *err = kiln_steal_ptr (&j.fold_err);
      goto out;
    }
  *out = j.srcs[0].digest;
  ret = 0;
out:
  kiln_treesum_free (j.fold);
  kiln_error_free (&j.fold_err);
  free_entries (&j);
  return ret;
}
