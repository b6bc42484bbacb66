/* build_copy_stream.c - one directory of the context straight into the
 * layer, its entries never held (see the comment below). */
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

/* ---- streaming: one directory of the context, straight into the layer ----
 *
 * A step that copies one directory of the context (`COPY . /app`, `COPY
 * app/ /app/`) does not hold its entries: each walked entry is placed,
 * written, folded into the tree digest and listed as soon as the walk has
 * the next one (the fold's rule: an excluded directory that turns out empty
 * is never written), then freed - or, when a RUN follows in the stage,
 * handed to the thread that makes the RUN's snapshot alongside
 * (kiln_build_copy_feed_*) - so memory does not grow with the tree.  The
 * layer is the array path's byte for byte: both write in tree order,
 * placement's own directories are merged in at their place, and a hardlink's
 * first name in that order carries the content.  The tests compare the two
 * (KILN_COPY_STREAM=0 turns streaming off). */

/* The first name of a file with several links, which later names link to. */
struct stream_lead {
  dev_t dev;
  ino_t ino;
  struct centry *c; /* its dest and digest only; NULL: a free slot */
};

struct copy_stream {
  struct kiln_layer_writer *w;
  struct kiln_tocview *v;
  char *target;        /* where the source's contents land */
  const char *src;     /* the source's path in the context */
  struct centry *made; /* placement's directories, in layer order */
  size_t nmade, next;
  size_t written; /* walked entries written */
  struct stream_lead *leads;
  size_t nleads, capleads;
  int list_dfd; /* cache/trees, where the listing is written */
  char *list_tmp;
  struct kiln_treelist_writer *list;
  struct kiln_error *err;
  struct kiln_build_copy_feed *feed; /* a RUN follows: its snapshot, made alongside */
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
      if (kiln_build_copy_write_entry (j, cs->w, m, NULL, err) < 0)
        return kiln_error_wrap (err, "add `/%.256s` to the layer", m->dest);
      if (cs->feed)
        {
          struct centry dir = { .dest = kiln_xstrdup (m->dest),
                                .mode = m->mode,
                                .uid = m->uid,
                                .gid = m->gid,
                                .mtime = m->mtime,
                                .rootfd = -1 };
          kiln_build_copy_feed_push (cs->feed, &dir);
        }
    }
  return 0;
}

static int
stream_entry (struct copy_job *j, struct centry *c, struct kiln_error **err)
{
  struct copy_stream *cs = j->stream;
  struct kiln_treesum_entry te;
  const struct centry *to = NULL;
  if (kiln_build_copy_place_check (j, cs->v, c, cs->target, err) < 0)
    return -1;
  bool linked = S_ISREG (c->mode) && c->src && !c->data && c->st.st_nlink > 1;
  if (linked && (to = lead_find (cs, c)))
    c->hardlink = true;
  cs->written++;
  /* stream_made names the directory it failed on */
  if (stream_made (j, c->dest, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if ((j->patching && S_ISREG (c->mode) && !to && kiln_build_copy_entry_digest (j, c, err) < 0)
      || kiln_build_copy_write_entry (j, cs->w, c, to, err) < 0)
    {
      kiln_error_wrap (err, "add `/%.256s` to the layer", c->dest);
      return kiln_build_step_error (j->b, j->in, err);
    }
  if (linked && !to)
    lead_add (cs, c);
  if (kiln_treesum_add (j->fold, kiln_build_copy_treesum_entry (c, &te), err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if (cs->list)
    kiln_treelist_write (cs->list, c->src, &te);
  return 0;
}

/* The entries the walk has made final go into the layer. */
void
kiln_build_copy_stream_flush (struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    {
      bool ok = !j->stream->err && stream_entry (j, &j->v[i], &j->stream->err) == 0;
      if (ok && j->stream->feed)
        kiln_build_copy_feed_push (j->stream->feed, &j->v[i]);
      kiln_build_copy_free_centry (&j->v[i]);
    }
  j->n = 0;
}

/* A streamed entry failed: the walk stops. */
bool
kiln_build_copy_stream_failed (const struct copy_job *j)
{
  return j->stream && j->stream->err;
}

/* The patch writer reopens files by their path in the layer. */
int
kiln_build_copy_stream_open (struct copy_job *j, const char *path, struct kiln_error **err)
{
  const char *rel = path + strlen (j->stream->target);
  rel += *rel == '/';
  kiln_autofree char *src = kiln_fs_path_join (j->stream->src, rel);
  struct centry c = { .src = *src == '/' ? src + 1 : src, .rootfd = j->rootfd };
  return kiln_build_copy_open_source (j, &c, err);
}

/* Placement's directories (a pending WORKDIR, the destination and the
 * directories above it) are made before the walk and kept in layer order;
 * those above the target that the image has are optional (written only
 * when the tree has something, as the array path's ancestors). */
static int
stream_place (struct copy_job *j, struct copy_stream *cs, struct kiln_error **err)
{
  kiln_autofree char *dst = NULL;
  if (!(cs->v = kiln_build_copy_place_view (j, err)) || kiln_build_copy_place_prepare (j, cs->v, &dst, err) < 0
      || kiln_build_copy_source_target (j, cs->v, 0, dst, &cs->target, err) < 0)
    return -1;
  kiln_build_copy_sort_entries (j);
  kiln_build_copy_add_ancestors (j, cs->v);
  size_t n = j->n;
  kiln_autofree char *dir = kiln_xstrdup (cs->target);
  while (*dir)
    {
      if (!kiln_build_copy_has_dest (j, n, dir))
        {
          kiln_build_copy_add_made_dir (j, dir, kiln_tocview_get (cs->v, dir));
          j->v[j->n - 1].optional = true;
        }
      char *slash = strrchr (dir, '/');
      if (!slash)
        break;
      *slash = '\0';
    }
  kiln_build_copy_sort_entries (j);
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
  cs->list_tmp = kiln_xasprintf (".tmp-stream-%d-%u", (int) gettid (),
                                 __atomic_fetch_add (&serial, 1, __ATOMIC_RELAXED));
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
  kiln_build_copy_feed_finish (j, kiln_steal_ptr (&cs->feed), false);
  kiln_layer_writer_free (cs->w);
  kiln_fs_dircache_clear (&j->dc);
  kiln_build_copy_free_centries (cs->made, cs->nmade);
  for (size_t i = 0; i < cs->capleads; i++)
    if (cs->leads[i].c)
      {
        kiln_build_copy_free_centry (cs->leads[i].c);
        free (cs->leads[i].c);
      }
  free (cs->leads);
  free (cs->target);
  kiln_error_free (&cs->err);
  kiln_treesum_free (j->fold);
  j->fold = NULL;
  j->stream = NULL;
}

/* After the layer: the inputs (the fold made the source's digest), and
 * the listing under the name its input line gives it, for the next
 * build's explanation. */
static void
stream_inputs (struct copy_job *j)
{
  char **inputs;
  kiln_build_copy_step_inputs (j);
  inputs = j->s->step.inputs;
  for (size_t i = 0; inputs[i]; i++)
    if (kiln_str_has_prefix (inputs[i], "source 0\t"))
      stream_list_close (j, inputs[i] + strlen ("source 0\t"));
  j->streamed = true;
}

static int
stream_run (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  struct copy_stream *cs = j->stream;
  bool ignored = kiln_ignore_excluded (j->b->ignore, src);
  kiln_build_copy_begin_source (j, true, *src ? src : ".");
  /* placement's entries go to the array, not into the layer */
  j->stream = NULL;
  int r = stream_place (j, cs, err);
  j->stream = cs;
  if (r < 0)
    return -1;
  if (kiln_build_copy_new_writer (j, j->looked_up, &cs->w, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if (kiln_build_copy_run_follows (j))
    cs->feed = kiln_build_copy_feed_start (j);
  stream_list_open (j);
  j->fold = kiln_treesum_new ();
  if (kiln_build_copy_replay_complete (j->replay))
    kiln_build_copy_replay_run (j, j->replay, src);
  else if (kiln_build_copy_copy_tree (j, src, st, err) < 0)
    return cs->err ? (kiln_error_free (err), *err = kiln_steal_ptr (&cs->err), -1) : -1;
  kiln_build_copy_stream_flush (j);
  if (cs->err)
    return *err = kiln_steal_ptr (&cs->err), -1;
  if (ignored && cs->written == 0)
    return kiln_build_copy_job_fail (j, err, "source `%s` not found in the build context (.dockerignore excludes it)",
                                     src);
  if (stream_made (j, NULL, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  kiln_treesum_final (j->fold, &j->srcs[0].digest);
  j->srcs[0].folded = true;
  kiln_log_debug ("%s: %zu entries streamed into the layer", j->in->original, cs->written);
  r = kiln_build_copy_finish_layer (j, kiln_steal_ptr (&cs->w), err);
  kiln_build_copy_feed_finish (j, kiln_steal_ptr (&cs->feed), r == 0);
  if (r < 0)
    return -1;
  stream_inputs (j);
  return 0;
}

/* Whether the step is one streaming does: a single directory of the
 * context, named without a wildcard. */
static bool
stream_applies (struct copy_job *j, const char *word, const char *src)
{
  const char *env = getenv ("KILN_COPY_STREAM");
  return j->from_context && !j->parents && !j->has_checksum && !kiln_build_copy_find_heredoc (j->in, word)
         && !kiln_fetch_is_url (word) && !strstr (word, "://") && !kiln_str_has_prefix (word, "git@")
         && !kiln_build_copy_has_glob (src) && !(env && strcmp (env, "0") == 0);
}

/* The directory streaming writes (its path cleaned, caller frees, and its
 * stat in *st), or NULL when the step is not one for streaming: a single
 * directory of the context, there, named without a wildcard. */
char *
kiln_build_copy_stream_source (struct copy_job *j, char **words, size_t nsrc, struct stat *st)
{
  bool descend;
  if (nsrc != 1)
    return NULL;
  kiln_autofree char *src = kiln_fs_path_clean (words[0]);
  if (!stream_applies (j, words[0], src) || (kiln_build_copy_excluded (j, src, &descend) && !descend))
    return NULL;
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, src, O_RDONLY | O_NONBLOCK, 0, &e);
  if (fd < 0 || fstat (fd, st) < 0 || !S_ISDIR (st->st_mode))
    return NULL; /* the array path says what is wrong */
  return kiln_steal_ptr (&src);
}

/* Writes the layer from src (kiln_build_copy_stream_source's), then
 * declares the step's inputs. */
int
kiln_build_copy_stream_copy (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err)
{
  struct copy_stream cs = { .src = src, .list_dfd = -1 };
  j->stream = &cs;
  int ret = stream_run (j, src, st, err);
  stream_clear (j);
  return ret;
}
