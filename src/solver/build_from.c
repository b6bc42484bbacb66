/* build_from.c - the FROM op: a stage starts from scratch, from another
 * stage, or from an image of the store (pulled when the store lacks it,
 * its layers streamed into snapshots when a RUN will need them).  Its key
 * input is the base's identity; it starts the stage's chain. */
#include <stdlib.h>
#include <string.h>
#include "build-internal.h"
#include "kiln/image.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"

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

static int load_image (struct build *b, struct build_stage *s, const char *name, bool snapshots, char **identity,
                       struct kiln_error **err);

/* The key a base's identity starts a chain with (FROM's one input). */
static void
chain_start (struct build_step *st, const char *identity)
{
  kiln_build_step_add_input (st, "from", identity);
}

int
kiln_build_load_image (struct build *b, struct build_stage *s, const char *name, struct kiln_error **err)
{
  kiln_autofree char *identity = NULL;
  struct build_step st = { 0 };
  if (load_image (b, s, name, false, &identity, err) < 0)
    return -1;
  chain_start (&st, identity);
  kiln_build_step_key (&st, NULL, &s->key);
  kiln_build_step_inputs_clear (&st);
  return 0;
}

static size_t
base_find (const struct kiln_build_result *r, const char *ref)
{
  size_t i = 0;
  while (i < r->nbases && strcmp (r->bases[i].ref, ref) != 0)
    i++;
  return i;
}

/* Each base is asked about once per build, so a base that several stages
 * (or COPY --from) name costs one registry round trip and every stage gets
 * the image the first one resolved.  True when another step resolved ref
 * already (waiting while one is at it); false when the caller resolves it
 * now and must call base_done (its entry in the result has no digest until
 * then). */
static bool
base_claim (struct build *b, const char *ref)
{
  struct kiln_build_result *r = b->res;
  kiln_build_lock (b);
  size_t i;
  while ((i = base_find (r, ref)) < r->nbases && r->bases[i].digest.s[0] == '\0')
    pthread_cond_wait (&b->cond, &b->lock);
  bool seen = i < r->nbases;
  if (!seen)
    {
      r->bases = kiln_xrealloc (r->bases, (r->nbases + 1) * sizeof *r->bases);
      r->bases[r->nbases++] = (struct kiln_build_base){ .ref = kiln_xstrdup (ref) };
    }
  kiln_build_unlock (b);
  return seen;
}

/* The claimed base resolved to d, or (d NULL) failed: dropped, so another
 * step asks again. */
static void
base_done (struct build *b, const char *ref, const struct kiln_digest *d)
{
  struct kiln_build_result *r = b->res;
  kiln_build_lock (b);
  size_t i = base_find (r, ref);
  if (d)
    r->bases[i].digest = *d;
  else
    {
      free (r->bases[i].ref);
      memmove (&r->bases[i], &r->bases[i + 1], (r->nbases - i - 1) * sizeof *r->bases);
      r->nbases--;
    }
  pthread_cond_broadcast (&b->cond); /* its waiters, and the graph's, loop on their own conditions */
  kiln_build_unlock (b);
}

static void
note_pull (void *ud, const char *ref)
{
  kiln_build_progress (ud, "pulling %s", ref);
}

/* Base image from the store, pulled when the store does not have it or
 * the pull policy says so (kiln/image.h); *identity (caller frees) names it for the key: the digest behind the
 * tag, not the tag, and its platform. */
static int
load_image (struct build *b, struct build_stage *s, const char *name, bool snapshots, char **identity,
            struct kiln_error **err)
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
  bool seen = base_claim (b, full);
  struct kiln_image_pull pull = {
    .registry = &ro, .policy = seen ? KILN_PULL_MISSING : b->o->pull, .on_pull = note_pull, .ud = b
  };
  int opened = kiln_image_open (b->st, full, &pull, &d, err);
  if (!seen)
    base_done (b, full, opened == 0 ? &d.digest : NULL);
  if (opened < 0)
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
  *identity = kiln_xasprintf ("image %s %s/%s", d.digest.s, s->cfg.os ? s->cfg.os : "",
                              s->cfg.architecture ? s->cfg.architecture : "");
  free (s->clock);
  s->clock = s->cfg.created ? kiln_xstrdup (s->cfg.created) : NULL;
  ret = 0;
out:
  kiln_manifest_clear (&m);
  kiln_descriptor_clear (&d);
  kiln_ref_clear (&ref);
  return ret;
}

/* FROM another stage of the file continues that stage's chain. */
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
init_scratch (struct build *b, struct build_stage *s, struct build_step *st)
{
  const char *os, *arch, *variant;
  kiln_plan_host_platform (&os, &arch, &variant);
  kiln_autofree char *identity = kiln_xasprintf ("scratch %s/%s/%s", os, arch, variant ? variant : "");
  chain_start (st, identity);
  s->clock = kiln_xstrdup (b->created);
  s->cfg.os = kiln_xstrdup (os);
  s->cfg.architecture = kiln_xstrdup (arch);
  s->cfg.variant = variant ? kiln_xstrdup (variant) : NULL;
  kiln_image_config_setenv (&s->cfg, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  /* BuildKit dockerfile2llb/image.go emptyImage (testDockerfileScratchConfig) */
  s->cfg.working_dir = kiln_xstrdup ("/");
}

/* "os/arch[/variant]" names the platform os, arch, variant (arm64's v8 is
 * its default variant; a variant given on one side only is not compared). */
static bool
same_platform (const char *want, const char *os, const char *arch, const char *variant)
{
  kiln_autofree char *w = kiln_xstrdup (want);
  char *save = NULL;
  const char *wos = strtok_r (w, "/", &save), *warch = strtok_r (NULL, "/", &save);
  const char *wvar = strtok_r (NULL, "/", &save);
  if (!wos || !warch || !os || !arch || strcmp (wos, os) != 0 || strcmp (warch, arch) != 0)
    return false;
  if (strcmp (arch, "arm64") == 0)
    {
      wvar = wvar && strcmp (wvar, "v8") == 0 ? NULL : wvar;
      variant = variant && strcmp (variant, "v8") == 0 ? NULL : variant;
    }
  return !wvar || !variant || strcmp (wvar, variant) == 0;
}

/* FROM --platform: kiln builds for this machine's platform only, so any
 * other is an error here, never ignored (FROM --platform=$BUILDPLATFORM,
 * the usual cross-compiling stage, names this machine's). */
static int
check_from_platform (struct build *b, const struct kiln_plan_stage *ps, struct kiln_error **err)
{
  const char *os, *arch, *variant;
  if (ps->platform == NULL)
    return 0;
  kiln_plan_host_platform (&os, &arch, &variant);
  if (strchr (ps->platform, '/') == NULL)
    return kiln_build_step_fail (b, ps->from, err, "--platform=%s: want OS/ARCH[/VARIANT]", ps->platform);
  if (same_platform (ps->platform, os, arch, variant))
    return 0;
  kiln_error_set (err, 0, KILN_E_UNSUPPORTED,
                  "--platform=%s: kiln builds for this machine's platform (%s/%s%s%s) only, not yet for others",
                  ps->platform, os, arch, variant ? "/" : "", variant ? variant : "");
  return kiln_build_step_error (b, ps->from, err);
}

/* An image of another platform than the build's is used, as BuildKit does,
 * with a warning (its RUN steps fail unless an emulator is registered). */
static void
warn_image_platform (const struct build_stage *s, const char *name)
{
  const char *os, *arch, *variant;
  kiln_plan_host_platform (&os, &arch, &variant);
  kiln_autofree char *have = kiln_xasprintf ("%s/%s%s%s", s->cfg.os ? s->cfg.os : "?",
                                             s->cfg.architecture ? s->cfg.architecture : "?", s->cfg.variant ? "/" : "",
                                             s->cfg.variant ? s->cfg.variant : "");
  if (!same_platform (have, os, arch, variant))
    kiln_log_warn ("FROM %s: the image is for %s, the build for %s/%s%s%s", name, have, os, arch, variant ? "/" : "",
                   variant ? variant : "");
}

static int
from_exec (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  size_t idx = (size_t) (s - b->stages);
  const struct kiln_plan_stage *ps = &b->plan->stages[idx];
  if (check_from_platform (b, ps, err) < 0)
    return -1;
  if (ps->base_stage >= 0)
    {
      copy_stage_image (s, &b->stages[ps->base_stage]);
      st->keeps_key = true;
    }
  else if (strcmp (ps->base, "scratch") == 0)
    init_scratch (b, s, st);
  else
    {
      kiln_autofree char *identity = NULL;
      if (load_image (b, s, ps->base, stage_runs (b->plan, idx), &identity, err) < 0)
        return kiln_build_step_error (b, ps->from, err);
      warn_image_platform (s, ps->base);
      chain_start (st, identity);
    }
  if (ps->base_stage < 0)
    kiln_build_set_workdir (s, kiln_steal_ptr (&s->cfg.working_dir));
  if (b->o->have_epoch || !s->clock)
    {
      free (s->clock);
      s->clock = kiln_xstrdup (b->created);
    }
  return 0;
}

const struct build_op kiln_build_op_from = { .name = "FROM", .root = true, .exec = from_exec };
