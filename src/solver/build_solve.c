/* build_solve.c - the solver: one step of a stage, whatever its op.
 *
 *   prepare -> key -> lookup -> [miss: explain] -> exec -> record -> progress
 *
 * As BuildKit's solver asks an op for its CacheMap before it calls Exec,
 * kiln asks the op for the step's inputs (prepare), makes the key of them
 * on top of the stage's key, and runs the op only when the cache has no
 * layer for that key.  An op that could only learn its inputs by reading
 * every file (a cold COPY) declares them during exec instead; the key and
 * the record follow exec then.  Nothing else in the executor makes a key,
 * looks one up or writes a record. */
#include <stdlib.h>
#include <string.h>
#include "build-internal.h"
#include "kiln/cleanup.h"
#include "kiln/util.h"

void
kiln_build_step_add_input (struct build_step *st, const char *label, const char *value)
{
  kiln_strv_push (&st->labels, label);
  kiln_strv_push (&st->inputs, value);
}

void
kiln_build_step_input (struct build_step *st, const char *name, const char *value)
{
  kiln_strv_push (&st->labels, "input");
  kiln_strv_push_take (&st->inputs, kiln_xasprintf ("%s\t%s", name, value ? value : ""));
}

void
kiln_build_step_inputs_clear (struct build_step *st)
{
  kiln_strv_free (st->inputs);
  kiln_strv_free (st->labels);
  st->inputs = st->labels = NULL;
}

/* The op's state goes as soon as the step ends, so that what it holds (a
 * RUN's cache-mount locks and overlays, a COPY's entries) does not outlive
 * the step, whether it failed or not. */
static void
op_state_free (struct build_step *st)
{
  if (st->state && st->op && st->op->clear)
    st->op->clear (st);
  free (st->state);
  st->state = NULL;
  st->explain_input = NULL;
  st->explain_ud = NULL;
}

void
kiln_build_step_reset (struct build_step *st)
{
  op_state_free (st);
  kiln_strv_free (st->used);
  kiln_build_step_inputs_clear (st);
  kiln_cache_record_clear (&st->sibling);
  free (st->miss_reason);
  memset (st, 0, sizeof *st);
}

void
kiln_build_step_key (const struct build_step *st, const struct kiln_digest *parent, struct kiln_digest *out)
{
  struct kiln_cache_key k;
  kiln_cache_key_init (&k, parent);
  for (size_t i = 0; st->inputs && st->inputs[i]; i++)
    kiln_cache_key_add (&k, st->labels[i], st->inputs[i]);
  kiln_cache_key_final (&k, out);
}

bool
kiln_build_solve_may_hit (struct build *b, struct build_stage *s)
{
  return kiln_build_cache_enabled (b, s) && (b->o->cache_sources || kiln_build_cache_has_sibling (b, s));
}

static const struct build_op *
op_for (const struct kiln_df_instr *in)
{
  switch (in->cmd)
    {
    case KILN_DF_COPY:
    case KILN_DF_ADD: return &kiln_build_op_copy;
    case KILN_DF_RUN: return &kiln_build_op_run;
    default: return &kiln_build_op_metadata; /* it refuses a FROM here */
    }
}

/* The step into the build's result (stages running at once share it). */
static void
record_step (struct build *b, const char *text, double secs, const struct build_stage *s, bool layer)
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
  if (layer)
    {
      si->has_layer = true;
      si->layer = s->layers[s->nlayers - 1].digest;
    }
  kiln_build_unlock (b);
}

/* A layer step: looked up when its inputs are known before exec, run on a
 * miss, recorded.  1 on a hit, 0 when exec ran, -1 on error. */
static int
solve_layer (struct build *b, struct build_stage *s, enum build_key k, struct kiln_error **err)
{
  struct build_step *st = &s->step;
  if (k == BUILD_KEY_READY)
    {
      kiln_build_step_key (st, &s->key, &st->key);
      int hit = kiln_build_cache_try (b, s, err);
      if (hit != 0)
        return hit;
      /* said before the op runs, so it stands above a RUN's own output */
      if (!st->explain_late)
        kiln_build_cache_note_miss (b, s);
    }
  if (st->op->exec (b, s, st, err) < 0)
    return -1;
  /* exec may have declared the inputs again, now complete */
  kiln_build_step_key (st, &s->key, &st->key);
  if (k == BUILD_KEY_AFTER_EXEC || st->explain_late)
    kiln_build_cache_note_miss (b, s);
  return kiln_build_cache_record (b, s, err);
}

/* A step that changes only the image config (or starts the stage): no
 * lookup, the key of what it used continues the chain. */
static int
solve_config (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  struct build_step *st = &s->step;
  if (st->op->exec (b, s, st, err) < 0)
    return -1;
  if (st->keeps_key)
    st->key = s->key;
  else
    kiln_build_step_key (st, st->op->root ? NULL : &s->key, &st->key);
  return 0;
}

int
kiln_build_solve_step (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                       const struct build_op *op, const char *prefix, struct kiln_error **err)
{
  unsigned long long t0 = kiln_now_ns ();
  struct build_step *st = &s->step;
  size_t before = s->nlayers;
  s->stepno++;
  kiln_autofree char *label = kiln_build_step_label (b, s);
  kiln_autofree char *text = kiln_xasprintf ("%s%s %s", prefix, label, in->original);
  if (kiln_build_check_cancelled (b, in->original, err) < 0)
    return -1;
  kiln_build_step_reset (st);
  st->in = in;
  st->op = op ? op : op_for (in);
  st->state = st->op->size ? kiln_xcalloc (1, st->op->size) : NULL;
  int k = st->op->prepare ? st->op->prepare (b, s, st, err) : BUILD_KEY_AFTER_EXEC;
  if (k >= 0)
    k = st->op->layer ? solve_layer (b, s, (enum build_key) k, err) : solve_config (b, s, err);
  op_state_free (st);
  if (k < 0)
    return -1;
  if (st->op->layer)
    kiln_build_stage_pending_clear (s); /* the layer made the WORKDIRs */
  s->key = st->key;
  double secs = (double) (kiln_now_ns () - t0) / 1e9;
  kiln_build_progress (b, "%s%s %.2fs", text, st->cached ? " CACHED" : "", secs);
  record_step (b, text, secs, s, st->op->layer && s->nlayers > before);
  return 0;
}
