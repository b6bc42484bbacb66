/* build_cache.c - the solver's side of the layer cache: lookups, records,
 * and why a step missed.  Only build_solve.c calls it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "build-internal.h"
#include "kiln/cache_export.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/util.h"

bool
kiln_build_cache_enabled (struct build *b, const struct build_stage *s)
{
  if (b->o->no_cache)
    return false;
  size_t idx = (size_t) (s - b->stages);
  if (idx >= b->plan->nstages)
    return true;
  const char *name = b->plan->stages[idx].name;
  for (size_t i = 0; b->o->no_cache_filter && b->o->no_cache_filter[i]; i++)
    {
      const char *f = b->o->no_cache_filter[i];
      if ((name && strcasecmp (f, name) == 0) || kiln_plan_find_stage (b->plan, f) == (long) idx)
        return false;
    }
  return true;
}

static void
set_clock (struct build_stage *s, const char *t)
{
  free (s->clock);
  s->clock = kiln_xstrdup (t);
}

/* A record's age counts from when its step was built (kept through an
 * import), not from its last hit: see kiln_cache_built. */
static bool
record_expired (struct build *b, const struct kiln_digest *parent, const struct kiln_digest *key)
{
  if (b->o->cache_ttl <= 0)
    return false;
  int64_t built = kiln_cache_built (b->st, parent, key);
  return built > 0 && (int64_t) time (NULL) - built > b->o->cache_ttl;
}

/* The layer is here, or a registry has it and it is fetched only when a
 * later step needs the snapshot (or a push has to upload it). */
static bool
layer_available (struct build *b, const struct kiln_digest *d)
{
  return kiln_store_blob_exists (b->st, d, NULL) || kiln_registry_blob_remote (b->st, d);
}

/* The record of the same instruction on the same parent: read once per
 * step, whether an op asks if a hit is possible or a miss is explained. */
static const struct kiln_cache_record *
sibling (struct build *b, struct build_stage *s)
{
  struct build_step *st = &s->step;
  if (st->sibling_state == 0)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      st->sibling_state = kiln_cache_find_sibling (b->st, &s->key, st->in->original, &st->sibling, &e) == 0 ? 1 : -1;
    }
  return st->sibling_state > 0 ? &st->sibling : NULL;
}

static char *
explain_miss (struct build *b, struct build_stage *s)
{
  char *const *inputs = s->step.inputs;
  if (record_expired (b, &s->key, &s->step.key))
    return kiln_xstrdup ("the cached step is older than --cache-ttl");
  const struct kiln_cache_record *sib = sibling (b, s);
  if (!sib)
    return kiln_xstrdup (s->any_miss ? "an earlier step changed" : "not built before");
  size_t idx;
  const char *was;
  char *why = NULL;
  if (s->step.explain_input && kiln_cache_changed_input (sib->inputs, inputs, &idx, &was))
    why = s->step.explain_input (s->step.explain_ud, inputs[idx], was);
  if (!why)
    why = kiln_cache_explain (sib->inputs, inputs);
  return why;
}

int
kiln_build_cache_try (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  struct kiln_cache_record r = { 0 };
  const struct kiln_digest *key = &s->step.key;
  const struct kiln_df_instr *in = s->step.in;
  free (s->step.miss_reason);
  s->step.miss_reason = NULL;
  if (!kiln_build_cache_enabled (b, s))
    return 0;
  int found = kiln_cache_get (b->st, key, &r, err);
  if (found < 0)
    return -1;
  if (found == 0 && r.has_layer && !record_expired (b, &r.parent, key) && layer_available (b, &r.layer.digest))
    {
      struct kiln_layer_result lr = { .diff_id = r.diff_id, .desc = r.layer };
      if (!b->o->have_epoch && r.created)
        set_clock (s, r.created);
      kiln_build_add_layer (b, s, &lr, in->original);
      kiln_cache_record_clear (&r);
      kiln_cache_touch (b->st, key);
      s->step.cached = true;
      return 1;
    }
  kiln_cache_record_clear (&r);
  return 0;
}

void
kiln_build_cache_note_miss (struct build *b, struct build_stage *s)
{
  free (s->step.miss_reason);
  s->step.miss_reason = kiln_build_cache_enabled (b, s) ? explain_miss (b, s) : kiln_xstrdup ("cache disabled");
  kiln_build_progress (b, "miss: %s : %s", s->step.in->original, s->step.miss_reason);
}

int
kiln_build_cache_record (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  const struct kiln_df_instr *in = s->step.in;
  struct kiln_cache_record r = {
    .key = s->step.key,
    .parent = s->key,
    .instruction = in->original,
    .has_layer = true,
    .layer = s->layers[s->nlayers - 1],
    .created = s->clock,
    .inputs = s->step.inputs,
  };
  const char *diff = s->cfg.diff_ids[kiln_strv_len (s->cfg.diff_ids) - 1];
  s->any_miss = true;
  if (kiln_digest_parse (diff, &r.diff_id, err) < 0)
    return -1;
  /* a cache that cannot be written only costs the next build time */
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_cache_put (b->st, &r, &e) < 0)
    kiln_log_warn ("could not record the cache for `%s`: %s", in->original, e->msg);
  return 0;
}

bool
kiln_build_cache_has_sibling (struct build *b, struct build_stage *s)
{
  return sibling (b, s) != NULL;
}
