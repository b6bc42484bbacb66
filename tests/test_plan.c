/* tests/test_plan.c - stages, global ARGs, target selection. */
#include <criterion/criterion.h>
#include <string.h>
#include "kiln/plan.h"
#include "kiln/util.h"

static struct kiln_dockerfile *df;
static struct kiln_plan *plan;
static struct kiln_error *err;

static int
make_plan (const char *text, const char *target, const char *const *args)
{
  struct kiln_kvlist ba = { 0 };
  for (size_t i = 0; args && args[i]; i += 2)
    kiln_kvlist_set (&ba, args[i], args[i + 1]);
  struct kiln_plan_opts o = { .build_args = &ba, .target = target, .os = "linux", .arch = "amd64" };
  cr_assert_eq (kiln_dockerfile_parse ("Dockerfile", text, strlen (text), &df, &err), 0, "%s", err ? err->msg : "");
  int r = kiln_plan_new (df, &o, &plan, &err);
  kiln_kvlist_clear (&ba);
  return r;
}

static void
fini (void)
{
  kiln_plan_free (plan);
  kiln_dockerfile_free (df);
  kiln_error_free (&err);
  plan = NULL;
  df = NULL;
}

TestSuite (plan, .fini = fini);

Test (plan, global_arg_expands_in_from_and_build_arg_overrides_default)
{
  const char *args[] = { "TAG", "2.0", NULL };
  cr_assert_eq (make_plan ("ARG TAG=1.0\nARG REG=localhost\nFROM $REG/app:${TAG}\n", NULL, args), 0);
  cr_assert_str_eq (plan->stages[0].base, "localhost/app:2.0");
}

Test (plan, global_arg_without_value_expands_empty)
{
  cr_assert_eq (make_plan ("ARG V\nFROM busybox${V:+:}${V}\n", NULL, NULL), 0);
  cr_assert_str_eq (plan->stages[0].base, "busybox");
}

Test (plan, platform_args_are_in_global_scope)
{
  cr_assert_eq (make_plan ("FROM base-$TARGETARCH\n", NULL, NULL), 0);
  cr_assert_str_eq (plan->stages[0].base, "base-amd64");
}

Test (plan, target_builds_only_the_stages_it_needs)
{
  const char *text = "FROM scratch AS a\nFROM scratch AS b\nCOPY --from=a /x /x\n"
                     "FROM b AS c\nFROM scratch AS unused\nCOPY missing /m\n";
  cr_assert_eq (make_plan (text, "c", NULL), 0);
  cr_assert_eq (plan->target, 2);
  cr_assert (plan->stages[0].needed && plan->stages[1].needed && plan->stages[2].needed);
  cr_assert_not (plan->stages[3].needed);
  cr_assert_eq (plan->stages[2].base_stage, 1);
  cr_assert_eq (kiln_plan_count_steps (plan), 4);
}

Test (plan, last_stage_is_the_default_target_and_unreferenced_stages_are_skipped)
{
  cr_assert_eq (make_plan ("FROM scratch AS a\nFROM scratch AS b\nLABEL x=1\n", NULL, NULL), 0);
  cr_assert_eq (plan->target, 1);
  cr_assert_not (plan->stages[0].needed);
}

Test (plan, copy_from_index_and_mount_from_are_dependencies)
{
  const char *text = "FROM scratch\nFROM scratch AS two\nFROM scratch\nCOPY --from=0 /a /a\n"
                     "RUN --mount=type=bind,from=two,target=/t true\n";
  cr_assert_eq (make_plan (text, NULL, NULL), 0);
  cr_assert (plan->stages[0].needed && plan->stages[1].needed);
}

Test (plan, stage_names_are_case_insensitive)
{
  cr_assert_eq (make_plan ("FROM scratch AS Builder\nFROM builder\n", "BUILDER", NULL), 0);
  cr_assert_eq (plan->target, 0);
  cr_assert_str_eq (plan->stages[0].name, "builder");
}

Test (plan, from_a_later_stage_name_is_an_image_not_a_stage)
{
  cr_assert_eq (make_plan ("FROM later\nFROM scratch AS later\n", "later", NULL), 0);
  cr_assert_eq (plan->stages[0].base_stage, -1);
}

Test (plan, rejects_unknown_target)
{
  cr_assert_lt (make_plan ("FROM scratch AS a\n", "nope", NULL), 0);
  cr_assert_str_eq (err->msg, "target stage `nope` could not be found in Dockerfile");
  cr_assert_eq (err->kind, KILN_E_USAGE);
}

/* BuildKit dockerfile2llb: validations.go validateStageNames only warns
 * (lint DuplicateStageName); convert.go dispatchStates.addState resolves a
 * FROM to the latest earlier stage of that name, toCommand (COPY --from,
 * RUN --mount from=) and resolveTarget (--target) to the last one of the
 * file (findStateByName over statesByName, where a duplicate replaces the
 * entry); a COPY from a stage not yet built fails. */
Test (plan, duplicate_stage_name_is_a_warning_naming_both_lines)
{
  cr_assert_eq (make_plan ("FROM scratch AS a\nFROM scratch AS b\nFROM scratch AS A\n", NULL, NULL), 0);
  cr_assert_eq (plan->nstages, 3);
  cr_assert_eq (kiln_strv_len (plan->warnings), 1);
  cr_assert_str_eq (plan->warnings[0], "Dockerfile:3: DuplicateStageName: Duplicate stage name \"a\", stage names "
                                       "should be unique (first named at line 1)");
}

Test (plan, no_warnings_without_duplicates)
{
  cr_assert_eq (make_plan ("FROM scratch AS a\nFROM a AS b\n", NULL, NULL), 0);
  cr_assert_null (plan->warnings);
}

Test (plan, from_a_duplicate_name_is_the_latest_earlier_stage)
{
  const char *text = "FROM scratch AS final\n"  /* 0 */
                     "FROM final AS final\n"    /* 1: builds on 0 */
                     "FROM final\n"             /* 2: builds on 1 */
                     "FROM scratch AS final\n"; /* 3 */
  cr_assert_eq (make_plan (text, NULL, NULL), 0);
  cr_assert_eq (plan->stages[1].base_stage, 0);
  cr_assert_eq (plan->stages[2].base_stage, 1);
  cr_assert_eq (plan->stages[3].base_stage, -1);
  cr_assert_eq (kiln_strv_len (plan->warnings), 2);
}

Test (plan, copy_and_mount_from_a_duplicate_name_is_the_last_stage_of_the_file)
{
  const char *text = "FROM scratch AS final\nFROM scratch AS final\n"
                     "FROM scratch\nCOPY --from=final /a /a\nRUN --mount=from=final,target=/m true\n";
  cr_assert_eq (make_plan (text, NULL, NULL), 0);
  cr_assert_eq (plan->stages[2].ndeps, 2);
  cr_assert_eq (plan->stages[2].deps[0], 1);
  cr_assert_eq (plan->stages[2].deps[1], 1);
  cr_assert_not (plan->stages[0].needed);
  cr_assert_eq (kiln_plan_find_stage (plan, "FINAL"), 1);
  cr_assert_eq (kiln_plan_find_stage (plan, "2"), 2);
  cr_assert_eq (kiln_plan_find_stage (plan, "3"), -1);
  cr_assert_eq (kiln_plan_find_stage (plan, "busybox"), -1);
}

Test (plan, copy_from_a_name_means_its_last_stage_even_when_that_comes_later)
{
  /* the earlier `final` does not count: BuildKit picks the last one */
  const char *text = "FROM scratch AS final\nFROM scratch AS mid\nCOPY --from=final /a /a\nFROM scratch AS final\n";
  cr_assert_eq (make_plan (text, "mid", NULL), 0, "%s", err ? err->msg : "");
  cr_assert_eq (plan->stages[1].ndeps, 1);
  cr_assert_eq (plan->stages[1].deps[0], 2);
  cr_assert_eq (plan->stages[1].dep_instrs[0]->line, 3);
  cr_assert (plan->stages[2].needed);
  cr_assert_not (plan->stages[0].needed);
}

Test (plan, target_with_a_duplicate_name_is_the_last_stage)
{
  const char *text = "FROM scratch AS final\nFROM scratch AS final\nFROM scratch AS other\n";
  cr_assert_eq (make_plan (text, "Final", NULL), 0);
  cr_assert_eq (plan->target, 1);
  cr_assert_not (plan->stages[0].needed);
}

Test (plan, from_is_looked_up_by_exact_name_only)
{
  /* statesByName is keyed by the lowercased name and looked up as written */
  cr_assert_eq (make_plan ("FROM scratch AS builder\nFROM Builder\nFROM 0\n", NULL, NULL), 0);
  cr_assert_eq (plan->stages[1].base_stage, -1);
  cr_assert_eq (plan->stages[2].base_stage, -1);
}

Test (plan, copy_and_mount_from_a_stage_defined_later_are_dependencies)
{
  const char *text = "FROM scratch AS a\nCOPY --from=b /x /x\nRUN --mount=from=2,target=/m true\nFROM scratch AS b\n"
                     "FROM scratch\n";
  cr_assert_eq (make_plan (text, "a", NULL), 0, "%s", err ? err->msg : "");
  cr_assert_eq (plan->stages[0].ndeps, 2);
  cr_assert_eq (plan->stages[0].deps[0], 1);
  cr_assert_eq (plan->stages[0].deps[1], 2);
  cr_assert (plan->stages[1].needed && plan->stages[2].needed);
  cr_assert (kiln_plan_stage_needs (plan, 0, 2));
  cr_assert_not (kiln_plan_stage_needs (plan, 2, 0));
}

/* BuildKit TestDockerfileCircularDependencies: the same two Dockerfiles */
Test (plan, rejects_a_stage_that_copies_from_itself)
{
  cr_assert_lt (make_plan ("FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n", NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: COPY: circular dependency detected on stage: stage0: "
                              "stage0 (line 2) -> stage0");
}

Test (plan, rejects_a_cycle_through_several_stages)
{
  const char *text = "FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\n"
                     "COPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n";
  cr_assert_lt (make_plan (text, NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: COPY: circular dependency detected on stage: stage0: "
                              "stage0 (line 2) -> stage2 (line 6) -> stage1 (line 4) -> stage0");
}

/* a stage FROM another needs it built first, so copying back is a cycle */
Test (plan, rejects_a_cycle_through_a_base_stage)
{
  const char *text = "FROM scratch AS a\nRUN --mount=from=b,target=/m true\nFROM a AS b\n";
  cr_assert_lt (make_plan (text, NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: RUN: circular dependency detected on stage: a: "
                              "a (line 2) -> b (line 3) -> a");
}

Test (plan, names_an_unnamed_stage_in_a_cycle_by_its_index)
{
  cr_assert_lt (make_plan ("FROM scratch\nCOPY --from=0 /x /x\n", NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: COPY: circular dependency detected on stage: stage-0: "
                              "stage-0 (line 2) -> stage-0");
}

Test (plan, rejects_from_that_expands_to_nothing)
{
  cr_assert_lt (make_plan ("ARG IMG\nFROM $IMG\n", NULL, NULL), 0);
  cr_assert (strstr (err->msg, "Dockerfile:2: FROM:") == err->msg, "%s", err->msg);
}

/* BuildKit convert.go toCommand: --from is expanded with no variables and
 * rejected when that changes it, global ARG or not. */
Test (plan, copy_from_with_a_variable_is_rejected_naming_the_line)
{
  const char *texts[] = {
    "ARG SRC=a\nFROM scratch AS a\nFROM scratch\nCOPY --from=$SRC /x /x\n",
    "FROM scratch AS a\nFROM scratch\nARG SRC=a\nCOPY --from=${SRC} /x /x\n",
    "FROM scratch AS a\nFROM scratch\nLABEL x=y\nCOPY --from=${SRC:-a} /x /x\n",
  };
  for (size_t i = 0; i < 3; i++)
    {
      cr_assert_lt (make_plan (texts[i], NULL, NULL), 0, "%zu", i);
      cr_assert_str_eq (err->msg, "Dockerfile:4: COPY: variable expansion is not supported for --from, define a "
                                  "new stage with FROM using ARG from global scope as a workaround");
      fini ();
    }
}

Test (plan, copy_from_and_mount_from_without_variables_are_accepted)
{
  cr_assert_eq (make_plan ("FROM scratch AS a\nFROM scratch AS b\nFROM scratch\nCOPY --from=a /x /x\n"
                           "RUN --mount=from=b,target=/m true\n",
                           NULL, NULL),
                0);
  cr_assert_eq (plan->stages[2].ndeps, 2);
}

/* BuildKit commands_runmount.go: runMountPostHook parses the mounts with no
 * expander, and parseMount then rejects a `$` in from= (BuildKit
 * testMountFromError) */
Test (plan, mount_from_with_a_variable_fails)
{
  cr_assert_lt (make_plan ("FROM scratch AS a\nFROM scratch\nARG X=a\n"
                           "RUN --mount=type=cache,from=$X,target=/m true\n",
                           NULL, NULL),
                0);
  cr_assert_str_eq (err->msg, "Dockerfile:4: RUN: --mount: 'from' doesn't support variable expansion, define "
                              "alias stage instead");
}

/* A stage FROM a stage with ONBUILD COPY --from / RUN --mount from= depends
 * on those stages (BuildKit testOnBuildInheritedStageWithFrom) */
Test (plan, onbuild_triggers_of_a_base_stage_are_dependencies)
{
  cr_assert_eq (make_plan ("FROM scratch AS src\nFROM scratch AS m\nFROM scratch AS base\n"
                           "ONBUILD COPY --from=src /x /x\nONBUILD RUN --mount=from=m,target=/m true\n"
                           "FROM base AS mid\n",
                           NULL, NULL),
                0);
  cr_assert_eq (plan->stages[3].ndeps, 2);
  cr_assert (plan->stages[0].needed);
  cr_assert (plan->stages[1].needed);
  cr_assert_eq (plan->stages[2].ndeps, 0, "the triggers do not run in the stage that declares them");
}

/* BuildKit resolveTarget: suggest among the stage names (testTargetMistype) */
Test (plan, unknown_target_suggests_a_stage)
{
  cr_assert_lt (make_plan ("FROM scratch AS build\nFROM scratch\n", "bulid", NULL), 0);
  cr_assert_str_eq (err->msg, "target stage `bulid` could not be found in Dockerfile (did you mean build?)");
}
