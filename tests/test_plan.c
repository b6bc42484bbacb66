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
  cr_assert_eq (kiln_dockerfile_parse ("Dockerfile", text, strlen (text), &df, &err), 0, "%s",
                err ? err->msg : "");
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

Test (plan, rejects_duplicate_stage_name_with_line)
{
  cr_assert_lt (make_plan ("FROM scratch AS a\nFROM scratch AS a\n", NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: FROM: invalid or duplicate stage name `a`");
}

Test (plan, rejects_copy_from_a_stage_defined_later)
{
  cr_assert_lt (make_plan ("FROM scratch\nCOPY --from=b /x /x\nFROM scratch AS b\n", NULL, NULL), 0);
  cr_assert_str_eq (err->msg, "Dockerfile:2: COPY: stage must be defined before it is used: `b`");
}

Test (plan, rejects_from_that_expands_to_nothing)
{
  cr_assert_lt (make_plan ("ARG IMG\nFROM $IMG\n", NULL, NULL), 0);
  cr_assert (strstr (err->msg, "Dockerfile:2: FROM:") == err->msg, "%s", err->msg);
}
