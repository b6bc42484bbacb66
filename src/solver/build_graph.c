/* build_graph.c - the needed stages as a graph.
 *
 * A stage is ready once its base (FROM another stage) is built; a step that
 * copies or mounts from another stage waits for that one when it comes to
 * it (kiln_build_graph_need), so the steps before it run beside the stage
 * they will copy from, as BuildKit schedules per step.  Ready stages run at
 * once on threads, up to --jobs of them (in file order: the stages a later
 * one copies from come first); a lone ready stage with nothing else running runs on
 * the calling thread, so a single-stage build starts no thread.  What the
 * stages share is guarded by b->lock (build-internal.h); each stage writes
 * only its own struct build_stage, and reads another only once it is built.
 *
 * The first stage to fail cancels the build: the others stop before their
 * next step, the RUNs running now are killed, and the build waits for every
 * thread before it returns that first error (so no mount, process or
 * scratch directory outlives it).  Images and cache keys do not depend on
 * the order stages ran in; the result's steps are sorted by stage and step. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "build-internal.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/sandbox.h"
#include "kiln/util.h"

struct stage_job {
  struct build *b;
  size_t idx;
};

static bool
base_done (const struct build *b, size_t i)
{
  const struct kiln_plan_stage *ps = &b->plan->stages[i];
  return ps->base_stage < 0 || b->state[ps->base_stage] == BUILD_DONE;
}

/* Under the lock: stage idx ended with r; the first failure's error is
 * kept and cancels the rest. */
static void
stage_ended (struct build *b, size_t idx, int r, struct kiln_error **err)
{
  b->state[idx] = r < 0 ? BUILD_FAILED : BUILD_DONE;
  if (r < 0 && !b->first_err)
    {
      b->first_err = kiln_steal_ptr (err);
      __atomic_store_n (&b->cancel, 1, __ATOMIC_SEQ_CST);
      kiln_sandbox_kill_all ();
    }
  kiln_error_free (err);
  pthread_cond_broadcast (&b->cond);
}

static void *
stage_thread (void *arg)
{
  struct stage_job *job = arg;
  struct build *b = job->b;
  struct kiln_error *e = NULL;
  int r = kiln_build_stage_run (b, job->idx, &e);
  kiln_build_lock (b);
  stage_ended (b, job->idx, r, &e);
  b->running--;
  kiln_build_unlock (b);
  free (job);
  return NULL;
}

/* Under the lock: runs stage idx on the calling thread. */
static void
run_here (struct build *b, size_t idx)
{
  struct kiln_error *e = NULL;
  b->state[idx] = BUILD_RUNNING;
  kiln_build_unlock (b);
  int r = kiln_build_stage_run (b, idx, &e);
  kiln_build_lock (b);
  stage_ended (b, idx, r, &e);
}

/* Under the lock: starts stage idx on a thread (on this one if a thread
 * cannot be made). */
static void
run_thread (struct build *b, size_t idx)
{
  struct stage_job *job = kiln_xcalloc (1, sizeof *job);
  pthread_attr_t attr;
  pthread_t th;
  *job = (struct stage_job){ b, idx };
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  b->state[idx] = BUILD_RUNNING;
  b->running++;
  int e = pthread_create (&th, &attr, stage_thread, job);
  pthread_attr_destroy (&attr);
  if (e != 0)
    {
      kiln_log_debug ("stage %zu: could not start a thread (%s): running it here", idx, strerror (e));
      b->running--;
      free (job);
      run_here (b, idx);
    }
}

/* Under the lock: the stages ready to run, in file order. */
static size_t
ready_stages (const struct build *b, size_t *out)
{
  size_t n = 0;
  for (size_t i = 0; i < b->plan->nstages; i++)
    if (b->plan->stages[i].needed && b->state[i] == BUILD_WAITING && base_done (b, i))
      out[n++] = i;
  return n;
}

static bool
all_done (const struct build *b)
{
  for (size_t i = 0; i < b->plan->nstages; i++)
    if (b->plan->stages[i].needed && b->state[i] != BUILD_DONE)
      return false;
  return true;
}

int
kiln_build_graph_run (struct build *b, struct kiln_error **err)
{
  size_t jobs = b->o->jobs ? b->o->jobs : 1;
  kiln_autofree size_t *ready = kiln_xcalloc (b->plan->nstages, sizeof *ready);
  kiln_build_lock (b);
  while (!b->cancel && !all_done (b))
    {
      size_t n = ready_stages (b, ready);
      if (n == 0 && b->running == 0)
        break; /* cannot happen: the plan's graph has no cycle */
      if ((n == 1 || jobs == 1) && n > 0 && b->running == 0)
        run_here (b, ready[0]);
      else if (n > 0 && b->running < jobs)
        for (size_t i = 0; i < n && b->running < jobs; i++)
          run_thread (b, ready[i]);
      else
        pthread_cond_wait (&b->cond, &b->lock);
    }
  while (b->running > 0)
    pthread_cond_wait (&b->cond, &b->lock);
  int ret = 0;
  if (b->first_err)
    {
      *err = kiln_steal_ptr (&b->first_err);
      ret = -1;
    }
  else if (!all_done (b))
    ret = kiln_error_set (err, 0, KILN_E_INTERNAL, "the stages' graph has no stage ready to run");
  kiln_build_unlock (b);
  return ret;
}

int
kiln_build_graph_need (struct build *b, size_t idx, struct kiln_error **err)
{
  const struct kiln_plan_stage *ps = &b->plan->stages[idx];
  if (ps->base_stage >= 0 && kiln_build_graph_need (b, (size_t) ps->base_stage, err) < 0)
    return -1;
  for (size_t d = 0; d < ps->ndeps; d++)
    if (kiln_build_graph_need (b, (size_t) ps->deps[d], err) < 0)
      return -1;
  kiln_build_lock (b);
  while (b->state[idx] == BUILD_RUNNING)
    pthread_cond_wait (&b->cond, &b->lock);
  int ret = 0;
  if (b->state[idx] == BUILD_WAITING)
    {
      b->state[idx] = BUILD_RUNNING;
      kiln_build_unlock (b);
      ret = kiln_build_stage_run (b, idx, err);
      kiln_build_lock (b);
      b->state[idx] = ret < 0 ? BUILD_FAILED : BUILD_DONE;
      pthread_cond_broadcast (&b->cond);
    }
  else if (b->state[idx] == BUILD_FAILED)
    ret = kiln_error_set (err, 0, KILN_E_INTERNAL, "stage `%s` failed", ps->name ? ps->name : ps->from->original);
  kiln_build_unlock (b);
  return ret;
}
