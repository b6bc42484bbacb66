/* kiln/plan.h - from a parsed Dockerfile to a build plan: stages, their bases,
 * the global ARG scope, and which stages the target needs.
 *
 * Pure code.  Per-step expansion happens at execution time (the solver), because
 * it depends on the ENV of base images.
 *
 * Ownership: the plan borrows the Dockerfile (it points at its instructions:
 * keep df alive until kiln_plan_free) and copies the options it keeps.
 * Everything else in a plan is the plan's. */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/dockerfile.h"
#include "kiln/error.h"
#include "kiln/kvlist.h"

struct kiln_plan_stage {
  size_t index;
  char *name; /* lowercased "AS name", or NULL; may repeat */
  const struct kiln_df_instr *from;
  char *base;                          /* expanded FROM image ("scratch", stage name or reference) */
  long base_stage;                     /* the latest earlier stage named base, or -1 */
  char *platform;                      /* expanded --platform, or NULL */
  const struct kiln_df_instr **instrs; /* the stage's instructions after FROM */
  size_t ninstrs;
  long *deps;                              /* stages referenced by COPY --from / RUN --mount from=, earlier or later */
  const struct kiln_df_instr **dep_instrs; /* the instruction naming deps[i] */
  size_t ndeps;
  bool needed; /* the target depends on it */
};

struct kiln_plan {
  const struct kiln_dockerfile *df;
  struct kiln_plan_stage *stages;
  size_t nstages;
  size_t target;
  /* ARGs declared before the first FROM, with --build-arg overrides applied;
   * value NULL when declared without default and not given. */
  struct kiln_kvlist global_args;
  bool *global_has_value;
  /* --build-arg values as given (consulted by stage ARGs). */
  struct kiln_kvlist build_args;
  /* Predefined platform args (TARGETPLATFORM, TARGETOS, ... BUILDARCH). */
  struct kiln_kvlist platform_args;
  /* BuildKit lint warnings, "NAME:LINE: Rule: message", for the caller to
   * print (DuplicateStageName); NULL when none. */
  char **warnings;
};

/* --build-arg values a build takes (distinct names): the CI operator sets
 * them, a few dozen at most; each ARG looks them up linearly. */
#define KILN_PLAN_MAX_BUILD_ARGS 4096

struct kiln_plan_opts {
  const struct kiln_kvlist *build_args; /* --build-arg K=V */
  const char *target;                   /* --target, or NULL for the last stage */
  const char *os, *arch, *variant;      /* target platform (host by default) */
};

/* Fails (KILN_E_USAGE) with more than KILN_PLAN_MAX_BUILD_ARGS build args. */
int kiln_plan_new (const struct kiln_dockerfile *df, const struct kiln_plan_opts *opts, struct kiln_plan **out,
                   struct kiln_error **err);
void kiln_plan_free (struct kiln_plan *p);

/* The stage COPY --from= / RUN --mount from= names, as BuildKit resolves it
 * (convert.go toCommand: findStateByName, findStateByIndex): a decimal
 * index, or the LAST stage of the whole file with that name
 * (case-insensitive), wherever it is in the file; -1 when there is none (an
 * image reference).  Unlike BuildKit, a stage may name one defined after it
 * (the graph builds that one first); the plan rejects a chain of such
 * references that comes back to the stage (a cycle). */
long kiln_plan_find_stage (const struct kiln_plan *p, const char *ref);

/* Whether stage `from` needs stage `to` to be built first, through its
 * base and the stages it copies or mounts from, at any depth. */
bool kiln_plan_stage_needs (const struct kiln_plan *p, size_t from, size_t to);

/* The raw stage or image names a step copies or mounts from (COPY --from=,
 * each RUN --mount's from=), in flag order, not expanded.  Caller frees. */
char **kiln_plan_from_names (const struct kiln_df_instr *in);

/* COPY --from= takes no variables: BuildKit convert.go toCommand expands
 * the value with no variables at all and rejects it when that changes it
 * ("variable expansion is not supported for --from, ..."), for global ARGs
 * too.  0 for any other instruction; errors name NAME:LINE.  The plan checks
 * the Dockerfile's COPYs; the executor calls it for ONBUILD triggers. */
int kiln_plan_check_copy_from (const struct kiln_dockerfile *df, const struct kiln_df_instr *in,
                               struct kiln_error **err);

/* Number of steps the needed stages run (a FROM counts as one), for progress. */
size_t kiln_plan_count_steps (const struct kiln_plan *p);

/* The host platform as OCI names (amd64, arm64 + v8, ...). */
void kiln_plan_host_platform (const char **os, const char **arch, const char **variant);

#endif
