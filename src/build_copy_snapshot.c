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
