/* build_copy_snapshot.c - the snapshot of a COPY layer made from the
 * context files it was written from, not from its blob: while the layer
 * streams when a RUN follows in the stage, or when a RUN needs it later. */
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

/* The entries of a COPY layer this build wrote from the context, kept so a
 * later RUN can materialise the layer's snapshot from the same files. */
struct build_copied {
  struct kiln_digest blob;
  struct centry *v;
  size_t n;
};

/* Entries that can be copied again after the step: context files, heredocs
 * and synthesized dirs (another stage's or an archive's files do not
 * outlive the step). */
bool
kiln_build_copy_from_context_only (const struct copy_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].rootfd >= 0 && !j->v[i].ctx)
      return false;
  return true;
}

void
kiln_build_copy_keep_entries (struct copy_job *j)
{
  struct build *b = j->b;
  if (!kiln_build_copy_from_context_only (j))
    return;
  kiln_build_lock (b);
  b->copied = kiln_xrealloc (b->copied, (b->ncopied + 1) * sizeof *b->copied);
  struct build_copied *c = &b->copied[b->ncopied++];
  c->blob = j->s->layers[j->s->nlayers - 1].digest;
  c->v = kiln_steal_ptr (&j->v);
  c->n = j->n;
  kiln_build_unlock (b);
  j->n = 0;
}

void
kiln_build_copied_clear (struct build *b)
{
  for (size_t i = 0; i < b->ncopied; i++)
    kiln_build_copy_free_centries (b->copied[i].v, b->copied[i].n);
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
            return 0; /* it shrank since the layer was written */
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
      return 0; /* the layer's blob makes the links */
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
  const struct centry *v = NULL;
  size_t n = 0;
  /* the entries stay until the build ends; only the list grows meanwhile */
  kiln_build_lock (b);
  for (size_t i = 0; !v && i < b->ncopied; i++)
    if (strcmp (b->copied[i].blob.s, layer->digest.s) == 0)
      v = b->copied[i].v, n = b->copied[i].n;
  kiln_build_unlock (b);
  return v ? materialize_entries (b, v, n, dirfd, err) : 0;
}

static void *
ahead_main (void *arg)
{
  struct ahead *a = arg;
  a->result = materialize_entries (a->b, a->v, a->n, a->dirfd, &a->err);
  return NULL;
}

/* Whether a RUN later in this stage will need this step's snapshot. */
bool
kiln_build_copy_run_follows (const struct copy_job *j)
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

void
kiln_build_copy_ahead_start (struct copy_job *j, struct ahead *a)
{
  kiln_autoerror struct kiln_error *e = NULL;
  *a = (struct ahead){ .b = j->b, .v = j->v, .n = j->n };
  if (!kiln_build_copy_from_context_only (j) || !kiln_build_copy_run_follows (j)
      || kiln_snapshot_begin (j->b->st, &a->tmp, &a->dirfd, &e) < 0)
    return;
  a->running = pthread_create (&a->th, NULL, ahead_main, a) == 0;
  if (!a->running)
    kiln_snapshot_abort (kiln_steal_ptr (&a->tmp));
}

/* Joins the thread; commits the snapshot when the layer and it are done. */
void
kiln_build_copy_ahead_finish (struct copy_job *j, struct ahead *a, bool layer_ok)
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

/* ---- the snapshot fed entry by entry (streaming) ----
 *
 * A streamed COPY holds no array to materialise from: each entry it writes
 * is handed over (moved) to a thread that creates it in the snapshot, through
 * a bounded queue, so memory stays bounded while the snapshot is still made
 * alongside the layer.  Directory times are set at the end, last first, as
 * materialize_entries does; a hardlink or a changed source gives up (the
 * RUN extracts the blob instead). */

#define FEED_QUEUE 1024
/* hand-overs go by batches: a wake-up per entry costs more than the entry */
#define FEED_BATCH 128

struct feed_dir {
  char *dest;
  int64_t mtime;
};

struct kiln_build_copy_feed {
  struct build *b;
  struct kiln_snapshot_tmp *tmp;
  int dirfd;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct centry q[FEED_QUEUE];
  size_t head, n;
  bool end, worker_waits, pusher_waits;
  int result; /* 1 so far so good, 0 gave up, < 0 failed */
  struct kiln_error *err;
  struct feed_dir *dirs; /* worker only */
  size_t ndirs, capdirs;
};

static void
feed_one (struct kiln_build_copy_feed *f, struct centry *c)
{
  if (f->result == 1 && c->hardlink)
    f->result = 0;
  if (f->result == 1)
    f->result = materialize_one (c, f->dirfd, layer_mtime (f->b, c->mtime), &f->err);
  if (f->result == 1 && S_ISDIR (c->mode))
    {
      if (f->ndirs == f->capdirs)
        {
          f->capdirs = f->capdirs ? 2 * f->capdirs : 256;
          f->dirs = kiln_xrealloc (f->dirs, f->capdirs * sizeof *f->dirs);
        }
      f->dirs[f->ndirs++] = (struct feed_dir){ kiln_steal_ptr (&c->dest), layer_mtime (f->b, c->mtime) };
    }
  kiln_build_copy_free_centry (c);
}

static void *
feed_main (void *arg)
{
  struct kiln_build_copy_feed *f = arg;
  struct centry batch[FEED_BATCH];
  for (;;)
    {
      size_t k = 0;
      pthread_mutex_lock (&f->mu);
      while (f->n < FEED_BATCH && !f->end)
        {
          f->worker_waits = true;
          pthread_cond_wait (&f->cv, &f->mu);
          f->worker_waits = false;
        }
      for (; k < FEED_BATCH && f->n > 0; k++, f->n--)
        {
          batch[k] = f->q[f->head];
          f->head = (f->head + 1) % FEED_QUEUE;
        }
      if (f->pusher_waits)
        pthread_cond_broadcast (&f->cv);
      pthread_mutex_unlock (&f->mu);
      if (k == 0)
        return NULL; /* the end, and nothing left */
      for (size_t i = 0; i < k; i++)
        feed_one (f, &batch[i]);
    }
}

struct kiln_build_copy_feed *
kiln_build_copy_feed_start (struct copy_job *j)
{
  kiln_autoerror struct kiln_error *e = NULL;
  struct kiln_build_copy_feed *f = kiln_xcalloc (1, sizeof *f);
  f->b = j->b;
  f->result = 1;
  pthread_mutex_init (&f->mu, NULL);
  pthread_cond_init (&f->cv, NULL);
  if (kiln_snapshot_begin (j->b->st, &f->tmp, &f->dirfd, &e) == 0 && pthread_create (&f->th, NULL, feed_main, f) == 0)
    return f;
  kiln_snapshot_abort (f->tmp);
  pthread_mutex_destroy (&f->mu);
  pthread_cond_destroy (&f->cv);
  free (f);
  return NULL;
}

void
kiln_build_copy_feed_push (struct kiln_build_copy_feed *f, struct centry *c)
{
  pthread_mutex_lock (&f->mu);
  while (f->n == FEED_QUEUE)
    {
      f->pusher_waits = true;
      pthread_cond_wait (&f->cv, &f->mu);
      f->pusher_waits = false;
    }
  f->q[(f->head + f->n) % FEED_QUEUE] = *c;
  f->n++;
  if (f->worker_waits && f->n >= FEED_BATCH)
    pthread_cond_broadcast (&f->cv);
  pthread_mutex_unlock (&f->mu);
  memset (c, 0, sizeof *c);
}

/* Directory times, last first (creating their children changed them). */
static int
feed_dir_times (struct kiln_build_copy_feed *f, struct kiln_error **err)
{
  for (size_t i = f->ndirs; i-- > 0;)
    {
      struct timespec ts[2] = { { f->dirs[i].mtime, 0 }, { f->dirs[i].mtime, 0 } };
      kiln_autoclose int fd = kiln_fs_open_in_root (f->dirfd, f->dirs[i].dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                                                    err);
      if (fd < 0 || futimens (fd, ts) < 0)
        return fd < 0 ? -1 : kiln_error_set (err, errno, KILN_E_IO, "snapshot: set times of `%s`", f->dirs[i].dest);
    }
  return 0;
}

void
kiln_build_copy_feed_finish (struct copy_job *j, struct kiln_build_copy_feed *f, bool layer_ok)
{
  kiln_autoerror struct kiln_error *e = NULL;
  if (!f)
    return;
  pthread_mutex_lock (&f->mu);
  f->end = true;
  pthread_cond_broadcast (&f->cv);
  pthread_mutex_unlock (&f->mu);
  pthread_join (f->th, NULL);
  if (layer_ok && f->result == 1 && feed_dir_times (f, &e) == 0
      && kiln_snapshot_commit (kiln_steal_ptr (&f->tmp), j->s->cfg.diff_ids, j->s->nlayers, &e) == 0)
    kiln_log_debug ("%s: snapshot made from the streamed entries", j->in->original);
  else if (e || f->err)
    kiln_log_warn ("snapshot ahead of `%s`: %s", j->in->original, (e ? e : f->err)->msg);
  kiln_snapshot_abort (f->tmp);
  for (size_t i = 0; i < f->ndirs; i++)
    free (f->dirs[i].dest);
  free (f->dirs);
  kiln_error_free (&f->err);
  pthread_mutex_destroy (&f->mu);
  pthread_cond_destroy (&f->cv);
  free (f);
}
