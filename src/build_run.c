/* build_run.c - the build as a whole: read and plan, run each needed stage,
 * write config and manifest. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "build-internal.h"
#include "kiln/image.h"
#include "kiln/toc.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"


int kiln_build_step_handle (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                            struct kiln_error **err);

void
kiln_build_result_clear (struct kiln_build_result *r)
{
  kiln_descriptor_clear (&r->manifest);
  for (size_t i = 0; i < r->nsteps; i++)
    {
      free (r->steps[i].text);
      free (r->steps[i].miss);
    }
  free (r->steps);
  memset (r, 0, sizeof *r);
}

static char *
rfc3339 (time_t t)
{
  struct tm tm;
  char buf[64];
  gmtime_r (&t, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return kiln_xstrdup (buf);
}

static void
progress (struct build *b, const char *text, double secs, const char *note)
{
  if (b->o->progress != KILN_PROGRESS_PLAIN || !b->o->progress_out)
    return;
  fprintf (b->o->progress_out, "%s%s%s %.2fs\n", text, note ? " " : "", note ? note : "", secs);
  fflush (b->o->progress_out);
}

/* Metadata steps: the key covers the instruction and the values it used. */
static void
metadata_key (struct build_stage *s, const struct kiln_df_instr *in)
{
  struct kiln_cache_key k;
  kiln_cache_key_init (&k, &s->key);
  kiln_cache_key_add (&k, "instruction", in->original);
  for (size_t i = 0; s->step.used && s->step.used[i]; i++)
    kiln_cache_key_add (&k, "used", s->step.used[i]);
  kiln_cache_key_final (&k, &s->step.key);
}

static void
step_reset (struct build_step *st)
{
  kiln_strv_free (st->used);
  free (st->miss_reason);
  memset (st, 0, sizeof *st);
}

static void
record_step (struct build *b, const char *text, double secs, const struct build_stage *s, size_t layers_before)
{
  struct kiln_build_result *r = b->res;
  kiln_build_lock (b);
  r->steps = kiln_xrealloc (r->steps, (r->nsteps + 1) * sizeof *r->steps);
  struct kiln_build_step_info *si = &r->steps[r->nsteps++];
  memset (si, 0, sizeof *si);
  si->text = kiln_xstrdup (text);
  si->seconds = secs;
  si->key = s->key;
  si->cached = s->step.cached;
  si->miss = s->step.miss_reason ? kiln_xstrdup (s->step.miss_reason) : NULL;
  si->stage = (size_t) (s - b->stages);
  si->stepno = s->stepno;
  if (s->nlayers > layers_before)
    {
      si->has_layer = true;
      si->layer = s->layers[s->nlayers - 1].digest;
    }
  kiln_build_unlock (b);
}

static int
compare_steps (const void *a, const void *b)
{
  const struct kiln_build_step_info *x = a, *y = b;
  if (x->stage != y->stage)
    return x->stage < y->stage ? -1 : 1;
  return x->stepno < y->stepno ? -1 : x->stepno > y->stepno;
}

static int
run_instr (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, const char *prefix,
           struct kiln_error **err)
{
  unsigned long long t0 = kiln_now_ns ();
  size_t before = s->nlayers;
  s->stepno++;
  kiln_autofree char *label = kiln_build_step_label (b, s);
  kiln_autofree char *text = kiln_xasprintf ("%s%s %s", prefix, label, in->original);
  if (kiln_build_check_cancelled (b, in->original, err) < 0)
    return -1;
  step_reset (&s->step);
  if (kiln_build_step_handle (b, s, in, err) < 0)
    return -1;
  bool layer_step = in->cmd == KILN_DF_COPY || in->cmd == KILN_DF_ADD || in->cmd == KILN_DF_RUN;
  if (!layer_step)
    metadata_key (s, in);
  s->key = s->step.key;
  double secs = (double) (kiln_now_ns () - t0) / 1e9;
  progress (b, text, secs, s->step.cached ? "CACHED" : NULL);
  record_step (b, text, secs, s, before);
  return 0;
}

/* ---- a pulled base's layers streamed into snapshots ---- */

static void *
snap_begin (void *opaque, char *const *diff_ids, size_t n, const struct kiln_descriptor *layer, bool decompressed)
{
  struct kiln_snapshot_stream *s = NULL;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_snapshot_stream_begin (opaque, diff_ids, n, layer->digest.s, decompressed, &s, &e) < 0)
    kiln_log_warn ("%s; extracting it from the store when a step needs it", e->msg);
  return s;
}

static void
snap_write (void *stream, const void *data, size_t len)
{
  kiln_snapshot_stream_write (stream, data, len);
}

static int
snap_commit (void *stream, struct kiln_error **err)
{
  return kiln_snapshot_stream_commit (stream, err);
}

static void
snap_abort (void *stream)
{
  kiln_snapshot_stream_abort (stream);
}

/* Whether a RUN of stage idx, or of a stage built on it, will need the
 * base's snapshots: then a pull extracts each layer as it downloads instead
 * of reading it back from the store later.  (ONBUILD RUN triggers of the
 * image are not known before the pull; their snapshots come from the store.) */
static bool
stage_runs (const struct kiln_plan *plan, size_t idx)
{
  for (size_t i = idx; i < plan->nstages; i++)
    {
      const struct kiln_plan_stage *ps = &plan->stages[i];
      long up = (long) i;
      while (up >= 0 && (size_t) up != idx)
        up = plan->stages[up].base_stage;
      if (up < 0)
        continue;
      for (size_t k = 0; k < ps->ninstrs; k++)
        if (ps->instrs[k]->cmd == KILN_DF_RUN)
          return true;
    }
  return false;
}

static int
load_image (struct build *b, struct build_stage *s, const char *name, bool snapshots, struct kiln_error **err);

int
kiln_build_load_image (struct build *b, struct build_stage *s, const char *name, struct kiln_error **err)
{
  return load_image (b, s, name, false, err);
}

static void
note_pull (void *ud, const char *ref)
{
  kiln_build_progress (ud, "pulling %s", ref);
}

/* Base image from the store, pulled only when the store does not have it. */
static int
load_image (struct build *b, struct build_stage *s, const char *name, bool snapshots, struct kiln_error **err)
{
  struct kiln_ref ref = { 0 };
  struct kiln_descriptor d = { 0 };
  struct kiln_manifest m = { 0 };
  int ret = -1;
  if (kiln_ref_parse (name, &ref, err) < 0)
    return -1;
  kiln_autofree char *full = kiln_ref_string (&ref);
  struct kiln_registry_layer_sink sink = { snap_begin, snap_write, snap_commit, snap_abort, b->st };
  struct kiln_registry_opts ro = b->o->registry;
  if (snapshots && !ro.lazy)
    ro.layer_sink = &sink;
  struct kiln_image_pull pull = { .registry = &ro, .on_pull = note_pull, .ud = b };
  if (kiln_image_open (b->st, full, &pull, &d, err) < 0)
    goto out;
  if (kiln_store_get_manifest (b->st, &d.digest, &m, err) < 0
      || kiln_store_get_config (b->st, &m.config.digest, &s->cfg, err) < 0)
    goto out;
  if (kiln_strv_len (s->cfg.diff_ids) != m.nlayers)
    {
      kiln_error_set (err, 0, KILN_E_PARSE, "image `%s`: %zu layers but %zu diff_ids", full, m.nlayers,
                      kiln_strv_len (s->cfg.diff_ids));
      goto out;
    }
  s->layers = kiln_xcalloc (m.nlayers, sizeof *s->layers);
  for (size_t i = 0; i < m.nlayers; i++)
    kiln_descriptor_copy (&s->layers[i], &m.layers[i]);
  s->nlayers = m.nlayers;
  /* the digest behind the tag, not the tag, starts the cache chain */
  struct kiln_cache_key k;
  kiln_cache_key_init (&k, NULL);
  kiln_cache_key_addf (&k, "from", "image %s %s/%s", d.digest.s, s->cfg.os ? s->cfg.os : "",
                       s->cfg.architecture ? s->cfg.architecture : "");
  kiln_cache_key_final (&k, &s->key);
  free (s->clock);
  s->clock = s->cfg.created ? kiln_xstrdup (s->cfg.created) : NULL;
  ret = 0;
out:
  kiln_manifest_clear (&m);
  kiln_descriptor_clear (&d);
  kiln_ref_clear (&ref);
  return ret;
}

static void
copy_stage_image (struct build_stage *dst, const struct build_stage *src)
{
  dst->key = src->key;
  dst->clock = src->clock ? kiln_xstrdup (src->clock) : NULL;
  kiln_image_config_copy (&dst->cfg, &src->cfg);
  dst->layers = kiln_xcalloc (src->nlayers ? src->nlayers : 1, sizeof *dst->layers);
  for (size_t i = 0; i < src->nlayers; i++)
    kiln_descriptor_copy (&dst->layers[i], &src->layers[i]);
  dst->nlayers = src->nlayers;
  dst->any_miss |= src->any_miss;
  kiln_build_set_workdir (dst, src->workdir ? kiln_xstrdup (src->workdir) : NULL);
  /* a stage built FROM another inherits its ARGs with their values
   * (BuildKit dispatchState.init copies the base's state env and buildArgs) */
  kiln_kvlist_copy (&dst->args, &src->args);
}

static void
init_scratch (struct build *b, struct build_stage *s)
{
  const char *os, *arch, *variant;
  struct kiln_cache_key k;
  kiln_plan_host_platform (&os, &arch, &variant);
  kiln_cache_key_init (&k, NULL);
  kiln_cache_key_addf (&k, "from", "scratch %s/%s/%s", os, arch, variant ? variant : "");
  kiln_cache_key_final (&k, &s->key);
  s->clock = kiln_xstrdup (b->created);
  s->cfg.os = kiln_xstrdup (os);
  s->cfg.architecture = kiln_xstrdup (arch);
  s->cfg.variant = variant ? kiln_xstrdup (variant) : NULL;
  kiln_image_config_setenv (&s->cfg, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  /* BuildKit dockerfile2llb/image.go emptyImage (testDockerfileScratchConfig) */
  s->cfg.working_dir = kiln_xstrdup ("/");
}


/* A trigger of an image can name stages of this file (COPY --from, RUN
 * --mount from=) that the plan could not know the stage needs, as the image
 * is read only now: they are built before the trigger runs, as BuildKit
 * adds a trigger's dependencies when it dispatches (testOnBuildNewDeps). */
static int
build_trigger_deps (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  for (size_t f = 0; f < in->nflags; f++)
    {
      const struct kiln_df_flag *fl = &in->flags[f];
      const char *v = NULL;
      if (strcmp (fl->name, "from") == 0 && in->cmd == KILN_DF_COPY)
        v = fl->value;
      else if (strcmp (fl->name, "mount") == 0 && fl->value && (v = strstr (fl->value, "from=")))
        v = (v == fl->value || v[-1] == ',') ? v + 5 : NULL;
      if (!v)
        continue;
      kiln_autofree char *name = kiln_xstrndup (v, strcspn (v, ","));
      long idx = kiln_plan_find_stage (b->plan, name, (size_t) (s - b->stages));
      if (idx >= 0 && kiln_build_graph_need (b, (size_t) idx, err) < 0)
        return -1;
    }
  return 0;
}

/* ONBUILD triggers of the base run right after FROM, then are dropped. */
static int
run_onbuild (struct build *b, struct build_stage *s, const struct kiln_df_instr *from, struct kiln_error **err)
{
  kiln_autostrv char **triggers = s->cfg.onbuild;
  s->cfg.onbuild = NULL;
  for (size_t i = 0; triggers && triggers[i]; i++)
    {
      struct kiln_dockerfile *t = NULL;
      kiln_autofree char *name = kiln_xasprintf ("%s:%d: ONBUILD trigger", b->df->name, from->line);
      kiln_autofree char *text = kiln_xasprintf ("FROM scratch\n%s\n", triggers[i]);
      if (kiln_dockerfile_parse (name, text, strlen (text), &t, err) < 0)
        return -1;
      if (kiln_plan_check_copy_from (t, &t->instrs[1], err) < 0)
        {
          kiln_dockerfile_free (t);
          return -1;
        }
      if (build_trigger_deps (b, s, &t->instrs[1], err) < 0)
        {
          kiln_dockerfile_free (t);
          return -1;
        }
      s->nsteps++;
      int r = run_instr (b, s, &t->instrs[1], "ONBUILD ", err);
      kiln_dockerfile_free (t);
      if (r < 0)
        return -1;
    }
  return 0;
}

/* Runs stage idx; its base and the stages it copies or mounts from are
 * built (kiln_build_graph_run sees to that). */
int
kiln_build_stage_run (struct build *b, size_t idx, struct kiln_error **err)
{
  struct kiln_plan_stage *ps = &b->plan->stages[idx];
  struct build_stage *s = &b->stages[idx];
  unsigned long long t0 = kiln_now_ns ();
  s->nsteps = 1 + ps->ninstrs;
  s->stepno = 1;
  kiln_autofree char *label = kiln_build_step_label (b, s);
  kiln_autofree char *text = kiln_xasprintf ("%s %s", label, ps->from->original);

  step_reset (&s->step);
  if (kiln_build_check_cancelled (b, ps->from->original, err) < 0)
    return -1;
  /* a miss below this stage explains this stage's misses */
  for (size_t d = 0; d < ps->ndeps; d++)
    s->any_miss |= b->stages[ps->deps[d]].any_miss;
  if (ps->base_stage >= 0)
    copy_stage_image (s, &b->stages[ps->base_stage]);
  else if (strcmp (ps->base, "scratch") == 0)
    init_scratch (b, s);
  else if (load_image (b, s, ps->base, stage_runs (b->plan, idx), err) < 0)
    return kiln_build_step_error (b, ps->from, err);
  if (ps->base_stage < 0)
    kiln_build_set_workdir (s, kiln_steal_ptr (&s->cfg.working_dir));
  if (b->o->have_epoch || !s->clock)
    {
      free (s->clock);
      s->clock = kiln_xstrdup (b->created);
    }
  progress (b, text, (double) (kiln_now_ns () - t0) / 1e9, NULL);
  record_step (b, text, (double) (kiln_now_ns () - t0) / 1e9, s, s->nlayers);
  if (run_onbuild (b, s, ps->from, err) < 0)
    return -1;
  for (size_t i = 0; i < ps->ninstrs; i++)
    if (run_instr (b, s, ps->instrs[i], "", err) < 0)
      return -1;
  s->built = true;
  return 0;
}

static const char *
compression_family (const char *media_type)
{
  return kiln_str_has_suffix (media_type, "gzip") ? "gzip" : kiln_str_has_suffix (media_type, "zstd") ? "zstd" : "none";
}

/* --force-compression: inherited layers in another compression are
 * recompressed, so the whole image is in the chosen one. */
static int
force_compression (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  const struct kiln_layer_opts *lo = &b->o->layer;
  const char *want = compression_family (kiln_compression_media_type (lo->compression));
  for (size_t i = 0; i < s->nlayers; i++)
    {
      struct kiln_descriptor nd;
      if (strcmp (compression_family (s->layers[i].media_type), want) == 0)
        continue;
      int r = kiln_layer_recompress (b->st, &s->layers[i], s->cfg.diff_ids[i], lo, &nd, err);
      if (r < 0)
        return kiln_error_wrap (err, "--force-compression");
      if (r == 0)
        kiln_build_progress (b, "recompressed layer %s (%s) to %s", s->layers[i].digest.s, s->layers[i].media_type,
                             want);
      kiln_descriptor_clear (&s->layers[i]);
      s->layers[i] = nd;
    }
  return 0;
}

/* Every layer, inherited ones too, gets the media type of the output format
 * (the bytes stay): a Docker-format base gives OCI layer types in an OCI
 * manifest, which umoci and other strict readers require. */
static int
layer_media_types (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  for (size_t i = 0; i < s->nlayers; i++)
    {
      const char *mt;
      bool known;
      if (kiln_layer_media_type_for (s->layers[i].media_type, b->o->format, &mt, &known, err) < 0)
        return kiln_error_wrap (err, "layer %zu (%s)%s", i + 1, s->layers[i].digest.s,
                                b->o->format == KILN_IMAGE_DOCKER ? " in --format docker (use --compression gzip "
                                                                    "--force-compression)" : "");
      if (!known)
        kiln_log_warn ("layer %zu (%s): unknown media type `%s` kept as it is", i + 1, s->layers[i].digest.s,
                       s->layers[i].media_type ? s->layers[i].media_type : "");
      if (mt != s->layers[i].media_type)
        {
          char *copy = kiln_xstrdup (mt);
          free (s->layers[i].media_type);
          s->layers[i].media_type = copy;
        }
    }
  return 0;
}

static int
write_image (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  struct kiln_descriptor cfgd = { 0 };
  struct kiln_manifest m = { 0 };
  int ret;
  free (s->cfg.created);
  s->cfg.created = kiln_xstrdup (s->clock ? s->clock : b->created);
  if (b->o->force_compression && force_compression (b, s, err) < 0)
    return -1;
  if (layer_media_types (b, s, err) < 0)
    return -1;
  /* the config records WorkingDir as written (see build_stage.workdir) */
  char *clean = s->cfg.working_dir;
  s->cfg.working_dir = s->workdir;
  int r = kiln_store_put_config (b->st, &s->cfg, &cfgd, err);
  s->cfg.working_dir = clean;
  if (r < 0)
    return kiln_error_wrap (err, "store image config");
  /* the same config bytes in both formats, as BuildKit's oci-mediatypes=false */
  free (cfgd.media_type);
  cfgd.media_type = kiln_xstrdup (kiln_image_format_config_type (b->o->format));
  m.media_type = kiln_xstrdup (kiln_image_format_manifest_type (b->o->format));
  m.config = cfgd;
  m.layers = s->layers;
  m.nlayers = s->nlayers;
  ret = kiln_store_put_manifest (b->st, &m, &b->res->manifest, err);
  b->res->config = cfgd.digest;
  m.layers = NULL;
  m.nlayers = 0;
  kiln_manifest_clear (&m);
  return ret < 0 ? kiln_error_wrap (err, "store image manifest") : 0;
}

/* Reads a build input whole, capped at max: past the cap the error names
 * the file, the limit and its value instead of the buffer's generic one. */
static int
read_capped (int dirfd, const char *path, const char *what, size_t max, struct kiln_buf *out,
             struct kiln_error **err)
{
  int r = kiln_fs_read_file (dirfd, path, max, out, err);
  if (r < 0 && (*err)->errnum == EFBIG)
    {
      kiln_error_free (err);
      return kiln_error_set (err, EFBIG, KILN_E_PARSE, "%s `%s` is larger than the limit of %zu bytes", what, path,
                             max);
    }
  return r;
}

/* <Dockerfile>.dockerignore next to the Dockerfile wins over CONTEXT/.dockerignore. */
static int
load_ignore (struct build *b, struct kiln_error **err)
{
  struct kiln_buf text = KILN_BUF_INIT;
  kiln_autofree char *specific = kiln_xasprintf ("%s.dockerignore", b->o->dockerfile);
  const char *name = specific;
  int ret = read_capped (AT_FDCWD, specific, "ignore file", KILN_BUILD_MAX_DOCKERIGNORE, &text, err);
  if (ret < 0 && (*err)->kind == KILN_E_NOTFOUND)
    {
      kiln_error_free (err);
      kiln_buf_release (&text);
      name = ".dockerignore";
      ret = read_capped (b->ctx_fd, name, "ignore file", KILN_BUILD_MAX_DOCKERIGNORE, &text, err);
      if (ret < 0 && (*err)->kind == KILN_E_NOTFOUND)
        {
          kiln_error_free (err);
          kiln_buf_release (&text);
          b->ignore = kiln_ignore_new_empty ();
          return 0;
        }
    }
  if (ret == 0)
    ret = kiln_ignore_parse (name, text.buf, text.len, &b->ignore, err);
  kiln_buf_release (&text);
  return ret;
}

static int
prepare (struct build *b, struct kiln_error **err)
{
  struct kiln_buf text = KILN_BUF_INIT;
  const struct kiln_build_opts *o = b->o;
  b->ctx_fd = open (o->context, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (b->ctx_fd < 0)
    return kiln_error_set (err, errno, KILN_E_NOTFOUND, "open build context `%s`", o->context);
  if (read_capped (AT_FDCWD, o->dockerfile, "Dockerfile", KILN_DOCKERFILE_MAX_SIZE, &text, err) < 0)
    return -1;
  int ret = kiln_dockerfile_parse (o->dockerfile_name, text.buf, text.len, &b->df, err);
  kiln_buf_release (&text);
  if (ret < 0 || load_ignore (b, err) < 0)
    return -1;
  struct kiln_plan_opts po = { .build_args = &o->build_args, .target = o->target };
  if (kiln_plan_new (b->df, &po, &b->plan, err) < 0)
    return -1;
  for (size_t i = 0; b->plan->warnings && b->plan->warnings[i]; i++)
    kiln_log_warn ("%s", b->plan->warnings[i]);
  kiln_autofree char *abs = realpath (o->context, NULL);
  if (!abs || kiln_ctxsum_open (b->st, abs, &b->ctxsum, err) < 0)
    return abs ? -1 : kiln_error_set (err, errno, KILN_E_IO, "resolve build context `%s`", o->context);
  b->stages = kiln_xcalloc (b->plan->nstages, sizeof *b->stages);
  b->state = kiln_xcalloc (b->plan->nstages, sizeof *b->state);
  size_t needed = 0;
  for (size_t i = 0; i < b->plan->nstages; i++)
    {
      b->stages[i].rootfs_fd = -1;
      pthread_mutex_init (&b->stages[i].mu, NULL);
      needed += b->plan->stages[i].needed;
    }
  b->multi = needed > 1;
  b->created = rfc3339 (o->have_epoch ? (time_t) o->epoch : time (NULL));
  return 0;
}

void
kiln_build_stage_clear (struct build_stage *s)
{
  kiln_image_config_clear (&s->cfg);
  for (size_t l = 0; l < s->nlayers; l++)
    kiln_descriptor_clear (&s->layers[l]);
  free (s->layers);
  kiln_kvlist_clear (&s->args);
  kiln_build_stage_pending_clear (s);
  free (s->workdir);
  free (s->clock);
  if (s->rootfs_fd >= 0)
    close (s->rootfs_fd);
  kiln_tocview_free (s->view);
  step_reset (&s->step);
  pthread_mutex_destroy (&s->mu);
  memset (s, 0, sizeof *s);
  pthread_mutex_init (&s->mu, NULL);
  s->rootfs_fd = -1;
}

static void
build_clear (struct build *b)
{
  struct kiln_error *e = NULL;
  for (size_t i = 0; b->plan && i < b->plan->nstages; i++)
    kiln_build_stage_clear (&b->stages[i]);
  for (size_t i = 0; b->tmpdirs && b->tmpdirs[i]; i++)
    if (kiln_fs_rm_rf_at (kiln_store_dirfd (b->st), b->tmpdirs[i], &e) < 0)
      {
        kiln_log_warn ("could not remove scratch directory `%s`: %s", b->tmpdirs[i], e->msg);
        kiln_error_free (&e);
      }
  kiln_strv_free (b->tmpdirs);
  kiln_build_copied_clear (b);
  kiln_ctxsum_free (b->ctxsum);
  free (b->stages);
  free (b->state);
  kiln_error_free (&b->first_err);
  pthread_mutex_destroy (&b->lock);
  pthread_cond_destroy (&b->cond);
  kiln_plan_free (b->plan);
  kiln_dockerfile_free (b->df);
  kiln_ignore_free (b->ignore);
  free (b->created);
  if (b->ctx_fd >= 0)
    close (b->ctx_fd);
}

int
kiln_build_run (struct kiln_store *st, const struct kiln_build_opts *opts, struct kiln_build_result *res,
                struct kiln_error **err)
{
  struct build b = { .st = st, .o = opts, .ctx_fd = -1, .res = res };
  pthread_mutex_init (&b.lock, NULL);
  pthread_cond_init (&b.cond, NULL);
  int ret = prepare (&b, err);
  if (ret == 0)
    ret = kiln_build_graph_run (&b, err);
  /* stages may have run at once: the steps are listed by stage, then step */
  if (res->nsteps > 1)   /* steps is NULL when none ran: qsort must not see it */
    qsort (res->steps, res->nsteps, sizeof *res->steps, compare_steps);
  if (ret == 0)
    ret = write_image (&b, &b.stages[b.plan->target], err);
  if (ret == 0)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      if (kiln_ctxsum_save (b.ctxsum, &e) < 0)
        kiln_log_warn ("%s", e->msg);
    }
  build_clear (&b);
  return ret;
}
