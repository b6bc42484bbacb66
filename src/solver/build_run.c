/* build_run.c - the build as a whole: read and plan, run each needed stage
 * (its FROM, its base's ONBUILD triggers, its steps: each through the
 * solver), write config and manifest. */
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
  for (size_t i = 0; i < r->nbases; i++)
    free (r->bases[i].ref);
  free (r->bases);
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

static int
compare_steps (const void *a, const void *b)
{
  const struct kiln_build_step_info *x = a, *y = b;
  if (x->stage != y->stage)
    return x->stage < y->stage ? -1 : 1;
  return x->stepno < y->stepno ? -1 : x->stepno > y->stepno;
}

/* An image's ONBUILD trigger, parsed under the name `trigger`, names a stage
 * that needs this one. */
static int
cycle_error (const char *trigger, const struct kiln_df_instr *in, const char *name, struct kiln_error **err)
{
  return kiln_error_set (err, 0, KILN_E_PARSE, "%s: %s: circular dependency detected on stage: %s", trigger,
                         kiln_df_cmd_name (in->cmd), name);
}

/* The stages a step copies or mounts from (COPY --from, RUN --mount
 * from=), built before it runs: here when no one has started them, else
 * waited for.  A stage starts as soon as its base is built, so the steps
 * before such a step run beside the stage it copies from.  A trigger of an
 * image can name stages too, which the plan could not know, as the image is
 * read only now (BuildKit adds a trigger's dependencies when it dispatches:
 * testOnBuildNewDeps).  A miss in such a stage explains this stage's misses
 * from here on. */
static int
need_sources (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, const char *trigger,
              struct kiln_error **err)
{
  kiln_autostrv char **names = kiln_plan_from_names (in);
  size_t self = (size_t) (s - b->stages);
  for (size_t i = 0; names[i]; i++)
    {
      long idx = kiln_plan_find_stage (b->plan, names[i]);
      if (idx < 0)
        continue;
      /* only an image's trigger can name a stage that needs this one: the
       * plan rejected the file's own cycles */
      if (trigger && kiln_plan_stage_needs (b->plan, (size_t) idx, self))
        return cycle_error (trigger, in, names[i], err);
      if (kiln_build_graph_need (b, (size_t) idx, err) < 0)
        return -1;
      s->any_miss |= b->stages[idx].any_miss;
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
      if (need_sources (b, s, &t->instrs[1], name, err) < 0)
        {
          kiln_dockerfile_free (t);
          return -1;
        }
      s->nsteps++;
      int r = kiln_build_solve_step (b, s, &t->instrs[1], NULL, "ONBUILD ", err);
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
  s->nsteps = 1 + ps->ninstrs;
  s->stepno = 0;
  if (kiln_build_solve_step (b, s, ps->from, &kiln_build_op_from, "", err) < 0)
    return -1;
  if (run_onbuild (b, s, ps->from, err) < 0)
    return -1;
  for (size_t i = 0; i < ps->ninstrs; i++)
    if (need_sources (b, s, ps->instrs[i], NULL, err) < 0
        || kiln_build_solve_step (b, s, ps->instrs[i], NULL, "", err) < 0)
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
      int r = kiln_cache_recompress (b->st, &s->layers[i], s->cfg.diff_ids[i], lo, &nd, err);
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
                                                                    "--force-compression)"
                                                                  : "");
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

/* --annotation: every one without a platform, and those for the image's */
static void
add_annotations (struct build *b, const struct build_stage *s, struct kiln_manifest *m)
{
  kiln_autofree char *plat = kiln_xasprintf ("%s/%s%s%s", s->cfg.os ? s->cfg.os : "",
                                             s->cfg.architecture ? s->cfg.architecture : "", s->cfg.variant ? "/" : "",
                                             s->cfg.variant ? s->cfg.variant : "");
  for (size_t i = 0; i < b->o->nannotations; i++)
    {
      const struct kiln_build_annotation *a = &b->o->annotations[i];
      if (a->platform == NULL || strcmp (a->platform, plat) == 0)
        kiln_kvlist_set (&m->annotations, a->key, a->value);
    }
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
  /* --label: the image's, not a step's (BuildKit's exporter sets them) */
  for (size_t i = 0; i < b->o->labels.n; i++)
    kiln_kvlist_set (&s->cfg.labels, b->o->labels.items[i].key, b->o->labels.items[i].value);
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
  add_annotations (b, s, &m);
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
read_capped (int dirfd, const char *path, const char *what, size_t max, struct kiln_buf *out, struct kiln_error **err)
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
  kiln_build_step_reset (&s->step);
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
  if (res->nsteps > 1) /* steps is NULL when none ran: qsort must not see it */
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
