/* build_copy_layer.c - a COPY's layer: the entries through one layer
 * writer (or patching the last build's layer), then the step's inputs. */
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

/* Opens a regular entry's source for the layer.  The entries come sorted,
 * so files of one directory follow each other: their directory, resolved
 * inside the root once, stays open and each file is opened below it without
 * following a link (a name, no '/'), instead of resolving the whole path
 * from the root per file.  Anything unexpected takes the full resolution. */
int
kiln_build_copy_open_source (struct copy_job *j, const struct centry *c, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  const char *slash = strrchr (c->src, '/');
  int dfd = slash ? kiln_fs_dircache_get (&j->dc, c->rootfd, c->src, (size_t) (slash - c->src), &e) : -1;
  if (dfd >= 0)
    {
      int fd = openat (dfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0 || errno != ELOOP)
        return fd >= 0
                   ? fd
                   : kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open `%s`", c->src);
    }
  return kiln_fs_open_in_root (c->rootfd, c->src, O_RDONLY, 0, err);
}

/* to: the entry a hardlink names (the file written just before under its
 * first name), else NULL. */
int
kiln_build_copy_write_entry (struct copy_job *j, struct kiln_layer_writer *w, struct centry *c, const struct centry *to,
                             struct kiln_error **err)
{
  /* the digest a lookup would use (heredoc data, a stage's file by its
   * origin), else the content's, hashed while it streams: the key of a cold
   * build must be the key a rebuild computes */
  if (S_ISREG (c->mode))
    kiln_build_copy_cheap_digest (j, c);
  struct kiln_layer_entry e = {
    .path = c->dest,
    .mode = c->mode,
    .uid = c->uid,
    .gid = c->gid,
    .mtime = c->mtime,
    .size = c->size,
    .link = c->link,
    .rdev = c->rdev,
    /* a file not hashed yet is hashed while it streams into the layer */
    .content_digest = S_ISREG (c->mode) && !c->have_digest ? &c->digest : NULL,
    .known_digest = kiln_build_copy_content_digest (c),
    .opaque = j->stream ? (void *) (uintptr_t) c->seq : c,
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
  kiln_autoclose int fd = kiln_build_copy_open_source (j, c, err);
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

static int
open_entry (void *ud, void *opaque, const char *path, struct kiln_error **err)
{
  struct copy_job *j = ud;
  return j->stream ? kiln_build_copy_stream_open (j, path, err) : kiln_build_copy_open_source (j, opaque, err);
}

/* Whether every file the layer gets has its content digest (context files
 * and in-memory data only: a stage's or an archive's files do not). */
static bool
patchable (const struct copy_job *j)
{
  if (!kiln_build_copy_from_context_only (j))
    return false;
  for (size_t i = 0; i < j->n; i++)
    {
      const struct centry *c = &j->v[i];
      if (!c->dropped && S_ISREG (c->mode) && !c->hardlink && kiln_build_copy_content_digest (c) == NULL)
        return false;
    }
  return true;
}

/* A rebuild whose files all have their digests can patch the layer the
 * last build of this step wrote (kiln_layer_writer_new_patch): a one-file
 * change then reads that file's block, not the tree. */
int
kiln_build_copy_new_writer (struct copy_job *j, bool digested, struct kiln_layer_writer **w, struct kiln_error **err)
{
  struct kiln_cache_record sib = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  int r = 0;
  if (digested && patchable (j) && kiln_cache_find_sibling (j->b->st, &j->s->key, j->in->original, &sib, &e) == 0
      && sib.has_layer)
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

/* The array's doubling slack back (placement adds a few directories), the
 * entries in collection order. */
static void
sort_entries (struct copy_job *j)
{
  if (j->sorted)
    return;
  j->sorted = true;
  if (j->cap > j->n + 64)
    {
      j->cap = j->n + 64;
      j->v = kiln_xrealloc (j->v, j->cap * sizeof *j->v);
    }
  if (j->n > 1)
    qsort (j->v, j->n, sizeof *j->v, kiln_build_copy_compare_collected);
}

/* Streams the sorted entries through one layer writer into the store. */
static int
write_layer (struct copy_job *j, bool digested, struct kiln_error **err)
{
  struct kiln_layer_writer *w = NULL;
  if (kiln_build_copy_new_writer (j, digested, &w, err) < 0)
    return -1;
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].dropped
            ? S_ISREG (j->v[i].mode) && kiln_build_copy_entry_digest (j, &j->v[i], err) < 0
            : kiln_build_copy_write_entry (j, w, &j->v[i], j->v[i].hardlink ? &j->v[j->v[i].link_to] : NULL, err) < 0)
      {
        kiln_layer_writer_free (w);
        kiln_fs_dircache_clear (&j->dc);
        kiln_error_wrap (err, "add `/%.256s` to the layer", j->v[i].dest);
        return kiln_build_step_error (j->b, j->in, err);
      }
  return kiln_build_copy_finish_layer (j, w, err);
}

/* Closes the layer, frees w and adds the layer to the stage. */
int
kiln_build_copy_finish_layer (struct copy_job *j, struct kiln_layer_writer *w, struct kiln_error **err)
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

/* The collected entries sorted; when a cached result could exist, every
 * file hashed (the checksum cache first) and the inputs declared:
 * BUILD_KEY_READY.  Otherwise (a cold build) BUILD_KEY_AFTER_EXEC: the
 * files are hashed while they stream into the layer, so each byte is read
 * once. */
int
kiln_build_copy_prepare_entries (struct copy_job *j, struct kiln_error **err)
{
  sort_entries (j);
  j->may_hit = kiln_build_cache_enabled (j->b, j->s)
               && (kiln_build_copy_all_cheap (j) || kiln_build_solve_may_hit (j->b, j->s));
  if (!j->may_hit)
    return BUILD_KEY_AFTER_EXEC;
  for (size_t i = 0; i < j->n; i++)
    if (S_ISREG (j->v[i].mode) && kiln_build_copy_entry_digest (j, &j->v[i], err) < 0)
      return kiln_build_step_error (j->b, j->in, err);
  kiln_build_copy_step_inputs (j);
  return BUILD_KEY_READY;
}

/* Writes the layer from the collected entries and declares the step's
 * inputs, complete now. */
int
kiln_build_copy_commit_layer (struct copy_job *j, struct kiln_error **err)
{
  sort_entries (j);
  /* key mode looked it up: a patch of the last build's layer needs the digests first */
  bool digested = j->may_hit || j->looked_up;
  for (size_t i = 0; digested && i < j->n; i++)
    if (S_ISREG (j->v[i].mode) && kiln_build_copy_entry_digest (j, &j->v[i], err) < 0)
      return kiln_build_step_error (j->b, j->in, err);
  if (kiln_build_copy_place_entries (j, err) < 0 || kiln_build_copy_fetch_pending (j, err) < 0)
    return -1;
  struct ahead ahead;
  kiln_build_copy_ahead_start (j, &ahead);
  int wr = write_layer (j, digested, err);
  kiln_build_copy_ahead_finish (j, &ahead, wr == 0);
  if (wr < 0)
    return -1;
  /* the stage's view already holds what this layer put there */
  if (!j->link_view && j->s->view_layers + 1 == j->s->nlayers)
    j->s->view_layers = j->s->nlayers;
  /* a cold build hashed the files while they streamed */
  kiln_build_copy_step_inputs (j);
  kiln_build_copy_save_listings (j);
  /* after the inputs: the entries move to the build for snapshot materialising */
  kiln_build_copy_compact_entries (j);
  kiln_build_copy_keep_entries (j);
  return 0;
}
