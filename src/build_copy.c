/* build_copy.c - COPY and ADD: collect entries from the context, another
 * stage, an image, an extracted archive or a heredoc, then stream them, sorted,
 * through one layer writer.  No staging copy is made of file content. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
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
#include "kiln/util.h"

struct centry {
  char *dest;            /* path in the image, cleaned, no leading '/' */
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
  struct stat st;        /* of the source, for the context checksum cache */
  bool ctx;              /* a context file */
  const char *origin;    /* non-context source: its identity instead of its content */
  struct kiln_digest digest;   /* content digest of a regular file */
  bool have_digest;
  char *url;             /* ADD <url> not downloaded yet (its digest may be known: --checksum, 304) */
};

static void free_centry (struct centry *c);
static void free_centries (struct centry *v, size_t n);

struct copy_job {
  struct build *b;
  struct build_stage *s;
  const struct kiln_df_instr *in;
  struct centry *v;
  size_t n;
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
};

static int
job_fail (struct copy_job *j, struct kiln_error **err, const char *fmt, const char *arg)
{
  kiln_error_set (err, 0, KILN_E_PARSE, fmt, arg ? arg : "");
  return kiln_build_step_error (j->b, j->in, err);
}

static struct centry *
add_entry (struct copy_job *j, const char *dest)
{
  j->v = kiln_xrealloc (j->v, (j->n + 1) * sizeof *j->v);
  struct centry *e = &j->v[j->n];
  memset (e, 0, sizeof *e);
  e->dest = kiln_fs_path_clean (dest);
  e->rootfd = -1;
  e->seq = j->n++;
  return e;
}

static int64_t
synth_mtime (const struct copy_job *j)
{
  /* synthesized directories get a fixed time so equal inputs give equal layers */
  return j->b->o->have_epoch ? j->b->o->epoch : 0;
}

static void
add_dir (struct copy_job *j, const char *dest, mode_t mode)
{
  struct centry *e = add_entry (j, dest);
  e->mode = S_IFDIR | mode;
  e->uid = j->has_chown ? j->uid : 0;
  e->gid = j->has_chown ? j->gid : 0;
  e->mtime = synth_mtime (j);
}

/* Parents of dest that the layer must carry, oldest first. */
static void
add_parents (struct copy_job *j, const char *dest)
{
  kiln_autofree char *p = kiln_fs_path_clean (dest);
  for (char *c = p; (c = strchr (c, '/')); c++)
    {
      *c = '\0';
      add_dir (j, p, 0755);
      *c = '/';
    }
}

static void
add_from_stat (struct copy_job *j, const char *src, const char *dest, const struct stat *st, const char *link)
{
  struct centry *e = add_entry (j, dest);
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
  e->st = *st;
  e->ctx = j->from_context;
  e->origin = j->origin;
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

static int walk_dir (struct copy_job *j, int dfd, const char *src, const char *dest, struct kiln_error **err);

static int
walk_child (struct copy_job *j, int dfd, const char *name, const char *src, const char *dest,
            struct kiln_error **err)
{
  struct stat st;
  bool descend;
  char link[4097];
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat `%s`", src);
  bool skip = excluded (j, src, &descend);
  if (S_ISSOCK (st.st_mode) || (skip && !(descend && S_ISDIR (st.st_mode))))
    return 0;
  if (S_ISLNK (st.st_mode))
    {
      ssize_t n = readlinkat (dfd, name, link, sizeof link - 1);
      if (n < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "read link `%s`", src);
      link[n] = '\0';
    }
  size_t mark = j->n;
  add_from_stat (j, src, dest, &st, S_ISLNK (st.st_mode) ? link : NULL);
  if (!S_ISDIR (st.st_mode))
    return 0;
  int cfd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", src);
  if (walk_dir (j, cfd, src, dest, err) < 0)
    return -1;
  /* an excluded directory appears only as the parent of re-included files */
  if (skip && j->n == mark + 1)
    {
      free (j->v[mark].dest), free (j->v[mark].src);
      j->n--;
    }
  return 0;
}

/* Takes ownership of dfd. */
static int
walk_dir (struct copy_job *j, int dfd, const char *src, const char *dest, struct kiln_error **err)
{
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  if (!d)
    {
      close (dfd);
      return kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", src);
    }
  while ((errno = 0, de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      kiln_autofree char *csrc = *src ? kiln_xasprintf ("%s/%s", src, de->d_name) : kiln_xstrdup (de->d_name);
      kiln_autofree char *cdest = *dest ? kiln_xasprintf ("%s/%s", dest, de->d_name) : kiln_xstrdup (de->d_name);
      if (walk_child (j, dirfd (d), de->d_name, csrc, cdest, err) < 0)
        return -1;
    }
  if (errno)
    return kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", src);
  return 0;
}

/* A source that is a directory: its contents go to dest. */
static int
copy_tree (struct copy_job *j, const char *src, const struct stat *st, const char *dest, struct kiln_error **err)
{
  int dfd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_DIRECTORY, 0, err);
  if (dfd < 0)
    return -1;
  if (*dest)
    {
      add_parents (j, dest);
      add_from_stat (j, src, dest, st, NULL);
    }
  const char *saved = j->tree;
  j->tree = src;
  int r = walk_dir (j, dfd, src, dest, err);
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

/* ADD of a local archive: extracted into scratch space, then copied as a tree. */
static int
add_archive (struct copy_job *j, int fd, const char *src, const char *dest, struct kiln_error **err)
{
  int tmpfd;
  struct stat st;
  struct kiln_extract_opts eo = { .whiteouts = false, .keep_owner = true };
  if (kiln_build_tmpdir (j->b, &tmpfd, NULL, err) < 0)
    return -1;
  if (kiln_extract_fd (fd, src, tmpfd, &eo, err) < 0)
    return -1;
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
  int ret = copy_tree (j, "", &st, dest, err);
  j->rootfd = saved_root, j->keep_owner = saved_keep, j->from_context = saved_ctx, j->origin = saved_origin;
  return ret;
}

static char *
dest_for (const char *dest, bool dest_is_dir, const char *src)
{
  if (!dest_is_dir)
    return kiln_xstrdup (dest);
  const char *base = strrchr (src, '/');
  base = base ? base + 1 : src;
  return *dest ? kiln_xasprintf ("%s/%s", dest, base) : kiln_xstrdup (base);
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
add_url (struct copy_job *j, const char *url, const char *dest, bool dest_is_dir, struct kiln_error **err)
{
  kiln_autofree char *name = kiln_fetch_filename (url);
  kiln_autofree char *target = dest_for (dest, dest_is_dir, name);
  if (j->downloads_fd < 0 && kiln_build_tmpdir (j->b, &j->downloads_fd, NULL, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  add_parents (j, target);
  struct centry *e = add_entry (j, target);
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

static int
copy_one (struct copy_job *j, const char *src, const char *dest, bool dest_is_dir, struct kiln_error **err)
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
    return copy_tree (j, src, &st, dest, err);
  /* a file source is matched by its own name (COPY --exclude=*.txt hom* /d/) */
  const char *base = strrchr (src, '/') ? strrchr (src, '/') + 1 : src;
  if (j->exclude && kiln_ignore_excluded (j->exclude, base))
    return 0;
  kiln_autofree char *target = dest_for (dest, dest_is_dir, src);
  if (j->in->cmd == KILN_DF_ADD && S_ISREG (st.st_mode) && kiln_extract_is_archive (fd))
    return add_archive (j, fd, src, dest, err);
  add_parents (j, target);
  add_from_stat (j, src, target, &st, NULL);
  return 0;
}

static bool
has_glob (const char *s)
{
  return strpbrk (s, "*?[") != NULL;
}

/* Expands a wildcard source component by component, as BuildKit does. */
static int
glob_sources (struct copy_job *j, const char *dir, const char *pattern, char ***out, struct kiln_error **err)
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
        kiln_strv_push (out, path);
      else if (glob_sources (j, path, slash + 1, out, err) < 0)
        return -1;
    }
  return 0;
}

static int
compare_entries (const void *a, const void *b)
{
  const struct centry *x = a, *y = b;
  int c = strcmp (x->dest, y->dest);
  return c ? c : (x->seq < y->seq ? -1 : 1);
}

static void
free_entries (struct copy_job *j)
{
  free_centries (j->v, j->n);
  j->v = NULL;
  j->n = 0;
  kiln_strv_free (j->origins);
  kiln_strv_free (j->inputs);
  j->origins = j->inputs = NULL;
}

static int
write_entry (struct copy_job *j, struct kiln_layer_writer *w, struct centry *c, struct kiln_error **err)
{
  struct kiln_layer_entry e = {
    .path = c->dest, .mode = c->mode, .uid = c->uid, .gid = c->gid, .mtime = c->mtime,
    .size = c->size, .link = c->link, .rdev = c->rdev,
    /* a file not hashed yet is hashed while it streams into the layer */
    .content_digest = S_ISREG (c->mode) && !c->have_digest ? &c->digest : NULL,
  };
  if (c->data)
    return kiln_layer_writer_add_data (w, &e, c->data, c->datalen, err);
  if (!S_ISREG (c->mode))
    return kiln_layer_writer_add (w, &e, -1, err);
  kiln_autoclose int fd = kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
  if (fd < 0 || kiln_layer_writer_add (w, &e, fd, err) < 0)
    return -1;
  if (e.content_digest)
    {
      c->have_digest = true;
      if (c->ctx)
        kiln_ctxsum_update (j->b->ctxsum, c->src, &c->st, &c->digest);
    }
  return 0;
}

/* Sorts by path and keeps the last entry of each path. */
static void
sort_entries (struct copy_job *j)
{
  size_t out = 0;
  qsort (j->v, j->n, sizeof *j->v, compare_entries);
  for (size_t i = 0; i < j->n; i++)
    {
      struct centry *c = &j->v[i];
      if (!*c->dest || (i + 1 < j->n && strcmp (c->dest, j->v[i + 1].dest) == 0))
        {
          free_centry (c);
          continue;
        }
      j->v[out++] = *c;
    }
  j->n = out;
}

/* The digest of a regular entry without reading it, when that is possible:
 * heredoc data, files of a stage or image (named by its key), context files
 * whose stat matches the checksum cache. */
static bool
cheap_digest (struct copy_job *j, struct centry *c)
{
  if (c->have_digest)
    return true;
  if (c->data)
    kiln_digest_of (c->data, c->datalen, &c->digest);
  else if (c->origin)
    {
      kiln_autofree char *id = kiln_xasprintf ("%s%s", c->origin, c->src);
      kiln_digest_of (id, strlen (id), &c->digest);
    }
  else if (!(c->ctx && kiln_ctxsum_lookup (j->b->ctxsum, c->src, &c->st, &c->digest)))
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

/* The key: the instruction, the variables it used, and per entry its path,
 * type, mode, owner, link target and content digest; never mtimes.  Entries
 * must all have their digests. */
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
  for (size_t i = 0; i < j->n; i++)
    {
      const struct centry *c = &j->v[i];
      const char *name = c->ctx ? c->src : c->dest;
      kiln_strv_push_take (&j->inputs, kiln_xasprintf ("%s meta\t/%s %o %u:%u %s", name, c->dest,
                                                       (unsigned) c->mode, (unsigned) c->uid, (unsigned) c->gid,
                                                       c->link ? c->link : ""));
      if (S_ISREG (c->mode))
        kiln_strv_push_take (&j->inputs, kiln_xasprintf ("%s content\t%s", name, c->digest.s));
    }
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
  const struct kiln_layer_opts *lo = &b->o->layer;
  return lo->clamp_mtime && mtime > lo->epoch ? lo->epoch : mtime;
}

/* 1 when the entries are now in dirfd, 0 when a source changed (use the
 * blob instead), < 0 on error. */
static int
materialize_entries (struct build *b, const struct centry *v, size_t n, int dirfd, struct kiln_error **err)
{
  for (size_t i = 0; i < n; i++)
    {
      int r = materialize_one (&v[i], dirfd, layer_mtime (b, v[i].mtime), err);
      if (r <= 0)
        return r;
    }
  /* directory times last: creating their children changed them */
  for (size_t i = n; i-- > 0;)
    if (S_ISDIR (v[i].mode))
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

/* Streams the sorted entries through one layer writer into the store. */
static int
write_layer (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_layer_writer *w = NULL;
  struct kiln_layer_result lr = { 0 };
  if (kiln_layer_writer_new (j->b->st, &j->b->o->layer, &w, err) < 0)
    return -1;
  for (size_t i = 0; i < j->n; i++)
    if (write_entry (j, w, &j->v[i], err) < 0)
      {
        kiln_layer_writer_free (w);
        return kiln_error_wrap (err, "add `/%s` to the layer", j->v[i].dest);
      }
  if (kiln_layer_writer_finish (w, &lr, err) < 0)
    {
      kiln_layer_writer_free (w);
      return -1;
    }
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
  sort_entries (j);
  bool cheap = all_cheap (j);
  bool may_hit = kiln_build_cache_enabled (j->b, j->s)
                 && (cheap || kiln_cache_find_sibling (j->b->st, &j->s->key, j->in->original, &sib, &e) == 0
                     || j->b->o->cache_sources);
  kiln_cache_record_clear (&sib);
  if (may_hit)
    {
      for (size_t i = 0; i < j->n; i++)
        if (S_ISREG (j->v[i].mode) && entry_digest (j, &j->v[i], err) < 0)
          return kiln_build_step_error (j->b, j->in, err);
      step_key (j, &key);
      int hit = kiln_build_cache_lookup (j->b, j->s, j->in, &key, j->inputs, err);
      if (hit != 0)
        return hit < 0 ? -1 : 0;
    }
  if (fetch_pending (j, err) < 0)
    return -1;
  struct ahead ahead;
  ahead_start (j, &ahead);
  int wr = write_layer (j, err);
  ahead_finish (j, &ahead, wr == 0);
  if (wr < 0)
    return -1;
  if (!may_hit)
    {
      step_key (j, &key);
      kiln_build_cache_note_miss (j->b, j->s, j->in, &key, j->inputs);
    }
  /* after the key: the entries move to the build for snapshot materialising */
  keep_entries (j);
  return kiln_build_cache_record (j->b, j->s, j->in, &key, j->inputs, err);
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
add_heredoc (struct copy_job *j, const struct kiln_df_heredoc *h, const char *dest, bool dest_is_dir,
             struct kiln_error **err)
{
  char *data = NULL;
  struct step_env e = { j->b, j->s };
  if (h->expand)
    {
      if (kiln_expand_word (h->content, j->b->df->escape, kiln_build_lookup, &e, &data, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  else
    data = kiln_xstrdup (h->content);
  kiln_autofree char *target = dest_for (dest, dest_is_dir, h->name);
  add_parents (j, target);
  struct centry *c = add_entry (j, target);
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
  if (!j->in->json)
    {
      if (kiln_expand_words (j->in->args, j->b->df->escape, kiln_build_lookup, &e, words, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  else
    for (size_t i = 0; j->in->argv[i]; i++)
      {
        char *w = NULL;
        if (kiln_expand_word (j->in->argv[i], j->b->df->escape, kiln_build_lookup, &e, &w, err) < 0)
          return kiln_build_step_error (j->b, j->in, err);
        kiln_strv_push_take (words, w);
      }
  if (kiln_strv_len (*words) < 2)
    return job_fail (j, err, "requires at least two arguments%s", NULL);
  return 0;
}

static bool
is_dir_dest (struct copy_job *j, const char *raw, const char *dest)
{
  size_t l = strlen (raw);
  if (!*dest || raw[l - 1] == '/' || strcmp (raw, ".") == 0 || kiln_str_has_suffix (raw, "/."))
    return true;
  const char *wd = j->s->cfg.working_dir;
  if (wd && strcmp (wd + (*wd == '/'), dest) == 0)
    return true;
  for (size_t i = 0; j->s->pending_dirs && j->s->pending_dirs[i]; i++)
    if (strcmp (j->s->pending_dirs[i], dest) == 0)
      return true;
  struct stat st;
  if (j->s->rootfs_fd >= 0 && j->s->rootfs_layers == j->s->nlayers)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      kiln_autoclose int fd = kiln_fs_open_in_root (j->s->rootfs_fd, dest, O_PATH, 0, &e);
      return fd >= 0 && fstat (fd, &st) == 0 && S_ISDIR (st.st_mode);
    }
  return false;
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
  static const char *const unsupported[] = { "parents", "keep-git-dir" };
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
  if (parse_exclude (j, err) < 0)
    return -1;
  if (chown && parse_chown (j, chown, err) < 0)
    return -1;
  if (chmod && parse_chmod (j, chmod, err) < 0)
    return -1;
  return 0;
}

static int
collect_sources (struct copy_job *j, char **words, size_t nsrc, const char *dest, bool dest_is_dir,
                 struct kiln_error **err)
{
  for (size_t i = 0; i < nsrc; i++)
    {
      const struct kiln_df_heredoc *h = find_heredoc (j->in, words[i]);
      kiln_autostrv char **matches = NULL;
      if (h)
        {
          if (add_heredoc (j, h, dest, dest_is_dir, err) < 0)
            return -1;
          continue;
        }
      if (kiln_fetch_is_url (words[i]))
        {
          kiln_autofree char *shown = kiln_fetch_redact (words[i]);
          if (j->in->cmd != KILN_DF_ADD)
            return job_fail (j, err, "COPY cannot download `%s`; use ADD", shown);
          if (add_url (j, words[i], dest, dest_is_dir, err) < 0)
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
      kiln_autofree char *src = kiln_fs_path_clean (words[i]);
      if (!has_glob (src))
        kiln_strv_push (&matches, src);
      else if (glob_sources (j, "", src, &matches, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
      if (!matches)
        return job_fail (j, err, "no source files match `%s`", words[i]);
      for (size_t m = 0; matches[m]; m++)
        if (copy_one (j, matches[m], dest, dest_is_dir, err) < 0)
          return -1;
    }
  return 0;
}

int
kiln_build_copy (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  struct copy_job j = { .b = b, .s = s, .in = in, .rootfd = -1, .downloads_fd = -1 };
  struct build_stage tmp = { .rootfs_fd = -1 };
  kiln_autostrv char **words = NULL;
  kiln_autofree char *dest = NULL;
  size_t nsrc;
  const char *raw;
  bool multi, dest_is_dir, chown;
  int ret = -1;

  if (copy_words (&j, &words, err) < 0 || check_flags (&j, err) < 0 || source_root (&j, &tmp, err) < 0)
    goto out;
  nsrc = kiln_strv_len (words) - 1;
  raw = words[nsrc];
  dest = kiln_fs_path_join (s->cfg.working_dir ? s->cfg.working_dir : "/", raw);
  /* a URL's '?' starts its query, not a pattern */
  multi = nsrc > 1 || (!kiln_fetch_is_url (words[0]) && has_glob (words[0]));
  if (j.has_checksum && nsrc > 1)
    {
      job_fail (&j, err, "--checksum takes a single source%s", NULL);
      goto out;
    }
  dest_is_dir = is_dir_dest (&j, raw, dest);
  if (multi && !dest_is_dir)
    {
      job_fail (&j, err, "with more than one source the destination `%s` must be a directory ending in /", raw);
      goto out;
    }
  /* WORKDIRs belong to root, not to this step's --chown user */
  chown = j.has_chown;
  j.has_chown = false;
  for (size_t i = 0; s->pending_dirs && s->pending_dirs[i]; i++)
    {
      add_parents (&j, s->pending_dirs[i]);
      add_dir (&j, s->pending_dirs[i], 0755);
    }
  j.has_chown = chown;
  if (collect_sources (&j, words, nsrc, dest, dest_is_dir, err) < 0)
    goto out;
  ret = commit_layer (&j, err);
  if (ret == 0)
    {
      kiln_strv_free (s->pending_dirs);
      s->pending_dirs = NULL;
    }
out:
  free_entries (&j);
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
  struct copy_job j = { .b = b, .s = s, .rootfd = rootfd, .from_context = from_context, .origin = origin,
                        .keep_owner = !from_context };
  struct kiln_cache_key k;
  struct stat st;
  int ret = -1;
  kiln_autofree char *src = kiln_fs_path_clean (rel);
  kiln_autoclose int fd = kiln_fs_open_in_root (rootfd, src, O_RDONLY | O_NONBLOCK, 0, err);
  if (fd < 0 || fstat (fd, &st) < 0)
    goto out;
  if (S_ISDIR (st.st_mode))
    {
      add_from_stat (&j, src, ".", &st, NULL);
      if (walk_dir (&j, kiln_steal_fd (&fd), src, "", err) < 0)
        goto out;
    }
  else
    add_from_stat (&j, src, ".", &st, NULL);
  sort_entries (&j);
  kiln_cache_key_init (&k, NULL);
  for (size_t i = 0; i < j.n; i++)
    {
      const struct centry *c = &j.v[i];
      if (S_ISREG (c->mode) && entry_digest (&j, &j.v[i], err) < 0)
        {
          kiln_cache_key_clear (&k);
          goto out;
        }
      kiln_cache_key_addf (&k, c->dest, "%o %u:%u %s %s", (unsigned) c->mode, (unsigned) c->uid,
                           (unsigned) c->gid, c->link ? c->link : "", S_ISREG (c->mode) ? c->digest.s : "");
    }
  kiln_cache_key_final (&k, out);
  ret = 0;
out:
  free_entries (&j);
  return ret;
}
