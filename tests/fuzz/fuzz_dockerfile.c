/* fuzz_dockerfile - a Dockerfile through the parser, the planner, and the
 * expansion of every word of every instruction, as a build would expand
 * them (src/frontend/dockerfile.c, src/frontend/plan.c, src/frontend/expand.c).
 *
 * The input is the Dockerfile text.  Oracles: the sanitizers, and that a
 * parsed instruction's line numbers are ordered and its keyword has a name. */
#include "fuzz.h"

#include "kiln/dockerfile.h"
#include "kiln/expand.h"
#include "kiln/plan.h"

/* What a step sees: a few variables, the --build-args, the global ARGs. */
struct scope {
  const struct kiln_plan *plan;
};

static const char *
lookup (void *ud, const char *name)
{
  const struct scope *s = ud;
  static const char *const fixed[][2] = {
    { "PATH", "/usr/local/bin:/usr/bin:/bin" },
    { "HOME", "/root" },
    { "V", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab" },
    { "EMPTY", "" },
    { "SP", "a b  c" },
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (strcmp (name, fixed[i][0]) == 0)
      return fixed[i][1];
  if (s->plan)
    {
      const char *v = kiln_kvlist_get (&s->plan->global_args, name);
      if (v)
        return v;
      return kiln_kvlist_get (&s->plan->platform_args, name);
    }
  return NULL;
}

static void
expand_one (const char *word, char escape, struct scope *s)
{
  char *out = NULL;
  struct kiln_error *err = NULL;
  if (kiln_expand_word (word, escape, lookup, s, &out, &err) == 0 && out == NULL)
    fuzz_fail ("kiln_expand_word succeeded without a result for `%s`", word);
  free (out);
  kiln_error_free (&err);
}

static void
expand_words (const char *text, char escape, struct scope *s)
{
  char **words = NULL;
  struct kiln_error *err = NULL;
  if (kiln_expand_words (text, escape, lookup, s, &words, &err) == 0)
    {
      if (words == NULL)
        fuzz_fail ("kiln_expand_words succeeded without a vector");
      for (size_t i = 0; words[i]; i++)
        free (words[i]);
      free (words);
    }
  kiln_error_free (&err);
}

/* COPY/ADD split the raw words first and expand each as one word. */
static void
split_and_expand (const char *text, char escape, struct scope *s)
{
  char **raw = NULL;
  if (kiln_split_words_raw (text, escape, &raw) < 0)
    return;
  for (size_t i = 0; raw && raw[i]; i++)
    {
      expand_one (raw[i], escape, s);
      free (raw[i]);
    }
  free (raw);
}

static void
expand_instr (const struct kiln_dockerfile *df, const struct kiln_df_instr *in, struct scope *s)
{
  char esc = df->escape;
  if (kiln_df_cmd_name (in->cmd) == NULL)
    fuzz_fail ("instruction %d has no keyword name", (int) in->cmd);
  if (in->end_line < in->line)
    fuzz_fail ("instruction ends on line %d before it starts on line %d", in->end_line, in->line);
  for (size_t i = 0; i < in->nflags; i++)
    if (in->flags[i].value)
      expand_one (in->flags[i].value, esc, s);
  if (in->json)
    for (size_t i = 0; in->argv && in->argv[i]; i++)
      expand_one (in->argv[i], esc, s);
  else if (in->args)
    {
      expand_words (in->args, esc, s);
      if (in->cmd == KILN_DF_COPY || in->cmd == KILN_DF_ADD)
        split_and_expand (in->args, esc, s);
      else
        expand_one (in->args, esc, s);
    }
  for (size_t i = 0; i < in->nheredocs; i++)
    if (in->heredocs[i].expand)
      {
        char *out = NULL;
        struct kiln_error *err = NULL;
        kiln_expand_heredoc (in->heredocs[i].content, lookup, s, &out, &err);
        free (out);
        kiln_error_free (&err);
      }
  if (in->cmd == KILN_DF_VOLUME)
    {
      char **w = kiln_df_list_words (in);
      for (size_t i = 0; w && w[i]; i++)
        {
          expand_one (w[i], esc, s);
          free (w[i]);
        }
      free (w);
    }
  kiln_df_healthcheck_cmd (in);
  if (in->cmd == KILN_DF_COPY)
    {
      struct kiln_error *err = NULL;
      kiln_plan_check_copy_from (df, in, &err);
      kiln_error_free (&err);
    }
  if (in->sub)
    expand_instr (df, in->sub, s);
}

static void
plan_and_expand (const struct kiln_dockerfile *df)
{
  struct kiln_kvlist ba = { 0 };
  kiln_kvlist_set (&ba, "V", "x");
  kiln_kvlist_set (&ba, "BASE", "busybox:latest");
  struct kiln_plan_opts o = { .build_args = &ba, .os = "linux", .arch = "arm64", .variant = "v8" };
  struct kiln_plan *plan = NULL;
  struct kiln_error *err = NULL;
  struct scope s = { NULL };
  if (kiln_plan_new (df, &o, &plan, &err) == 0)
    {
      s.plan = plan;
      kiln_plan_count_steps (plan);
      for (size_t i = 0; i < plan->nstages; i++)
        {
          long f = plan->stages[i].name ? kiln_plan_find_stage (plan, plan->stages[i].name) : (long) i;
          if (f < (long) i)
            fuzz_fail ("stage %zu `%s` resolves to earlier stage %ld", i, plan->stages[i].name, f);
          /* an accepted plan has no cycle: the build would wait for itself */
          for (size_t d = 0; d < plan->stages[i].ndeps; d++)
            if (kiln_plan_stage_needs (plan, (size_t) plan->stages[i].deps[d], i))
              fuzz_fail ("stage %zu needs stage %ld, which needs it back", i, plan->stages[i].deps[d]);
        }
      if (plan->target >= plan->nstages)
        fuzz_fail ("target stage %zu of %zu", plan->target, plan->nstages);
    }
  kiln_error_free (&err);
  for (size_t i = 0; i < df->ninstrs; i++)
    {
      if (i > 0 && df->instrs[i].line <= df->instrs[i - 1].end_line)
        fuzz_fail ("instruction %zu starts on line %d, within the previous one (ends %d)", i, df->instrs[i].line,
                   df->instrs[i - 1].end_line);
      expand_instr (df, &df->instrs[i], &s);
    }
  /* --target naming the first named stage plans too */
  for (size_t i = 0; plan && i < plan->nstages; i++)
    if (plan->stages[i].name)
      {
        struct kiln_plan *p2 = NULL;
        o.target = plan->stages[i].name;
        if (kiln_plan_new (df, &o, &p2, &err) < 0)
          fuzz_fail ("--target `%s` of an existing stage fails: %s", o.target, err->msg);
        kiln_plan_free (p2);
        break;
      }
  kiln_plan_free (plan);
  kiln_kvlist_clear (&ba);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct kiln_dockerfile *df = NULL;
  struct kiln_error *err = NULL;
  if (kiln_dockerfile_parse ("Dockerfile", (const char *) data, size, &df, &err) == 0)
    {
      plan_and_expand (df);
      kiln_dockerfile_free (df);
    }
  else if (err == NULL || err->msg == NULL)
    fuzz_fail ("parse failed without an error message");
  kiln_error_free (&err);
  return 0;
}
