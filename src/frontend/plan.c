/* plan.c - stages, global ARGs, target selection (parse -> PLAN -> execute). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/plan.h"
#include "kiln/util.h"

void
kiln_plan_host_platform (const char **os, const char **arch, const char **variant)
{
  struct utsname u;
  *os = "linux";
  *variant = NULL;
  *arch = "amd64";
  if (uname (&u) != 0)
    return;
  if (strcmp (u.machine, "aarch64") == 0)
    *arch = "arm64", *variant = "v8";
  else if (strncmp (u.machine, "armv7", 5) == 0)
    *arch = "arm", *variant = "v7";
  else if (strcmp (u.machine, "i686") == 0 || strcmp (u.machine, "i386") == 0)
    *arch = "386";
  else if (strcmp (u.machine, "ppc64le") == 0 || strcmp (u.machine, "s390x") == 0 || strcmp (u.machine, "riscv64") == 0)
    *arch = u.machine[0] == 'p' ? "ppc64le" : u.machine[0] == 's' ? "s390x" : "riscv64";
}

struct lookup_ctx {
  const struct kiln_plan *p;
};

static const char *
global_lookup (void *ud, const char *name)
{
  const struct kiln_plan *p = ((struct lookup_ctx *) ud)->p;
  for (size_t i = 0; i < p->global_args.n; i++)
    if (strcmp (p->global_args.items[i].key, name) == 0)
      return p->global_has_value[i] ? p->global_args.items[i].value : NULL;
  return kiln_kvlist_get (&p->platform_args, name);
}

static char *
lowercase (const char *s)
{
  char *r = kiln_xstrdup (s);
  for (char *c = r; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  return r;
}

static int
parse_error (const struct kiln_plan *p, const struct kiln_df_instr *in, struct kiln_error **err, const char *msg,
             const char *arg)
{
  return kiln_error_set (err, 0, KILN_E_PARSE, "%s:%d: %s: %s%s%s%s", p->df->name, in->line, kiln_df_cmd_name (in->cmd),
                         msg, arg ? " `" : "", arg ? arg : "", arg ? "`" : "");
}

/* ARG NAME[=default] before the first FROM.  As BuildKit (dockerfile2llb
 * Dockerfile2LLB over metaArgs): names are not expanded, a default is
 * expanded only when no --build-arg gives the value, and each argument sees
 * the ones before it. */
static int
add_global_arg (struct kiln_plan *p, const struct kiln_df_instr *in, struct kiln_error **err)
{
  struct lookup_ctx lc = { p };
  kiln_autostrv char **words = NULL;
  kiln_split_words_raw (in->args, p->df->escape, &words);
  for (size_t i = 0; words[i]; i++)
    {
      char *eq = strchr (words[i], '=');
      kiln_autofree char *name = eq ? kiln_xstrndup (words[i], (size_t) (eq - words[i])) : kiln_xstrdup (words[i]);
      kiln_autofree char *def = NULL;
      const char *given = kiln_kvlist_get (&p->build_args, name);
      if (!given && eq && kiln_expand_word (eq + 1, p->df->escape, global_lookup, &lc, &def, err) < 0)
        return kiln_error_wrap (err, "%s:%d: ARG", p->df->name, in->line);
      const char *val = given ? given : def;
      if (!*name)
        return parse_error (p, in, err, "empty argument name", NULL);
      kiln_kvlist_set (&p->global_args, name, val ? val : "");
      for (size_t k = 0; k < p->global_args.n; k++)
        if (strcmp (p->global_args.items[k].key, name) == 0)
          {
            p->global_has_value = kiln_xrealloc (p->global_has_value, p->global_args.n * sizeof (bool));
            p->global_has_value[k] = val != NULL;
          }
    }
  return 0;
}

static int
expand_global (struct kiln_plan *p, const struct kiln_df_instr *in, const char *text, char **out,
               struct kiln_error **err)
{
  struct lookup_ctx lc = { p };
  if (kiln_expand_word (text, p->df->escape, global_lookup, &lc, out, err) < 0)
    return kiln_error_wrap (err, "%s:%d: %s", p->df->name, in->line, kiln_df_cmd_name (in->cmd));
  return 0;
}

/* FROM's base among the stages so far: BuildKit convert.go dispatchStates
 * addState looks the expanded base up in statesByName, whose entry for a
 * name is the latest stage so named (a duplicate replaces it), keyed by the
 * lowercased name and looked up as written (so `FROM Builder` is an image
 * reference, never the stage `builder`), by name only (`FROM 0` is an
 * image too). */
static long
find_base (const struct kiln_plan *p, const char *base)
{
  for (size_t i = p->nstages; i-- > 0;)
    if (p->stages[i].name && strcmp (p->stages[i].name, base) == 0)
      return (long) i;
  return -1;
}

/* BuildKit builds a Dockerfile that names two stages alike, with the lint
 * warning DuplicateStageName (dockerfile2llb/validations.go
 * validateStageNames); references then mean the stage find_base or
 * kiln_plan_find_stage picks. */
static void
warn_duplicate (struct kiln_plan *p, const struct kiln_plan_stage *s)
{
  for (size_t i = 0; i < s->index; i++)
    if (p->stages[i].name && strcmp (p->stages[i].name, s->name) == 0)
      {
        kiln_strv_push_take (&p->warnings,
                             kiln_xasprintf ("%s:%d: DuplicateStageName: Duplicate stage name \"%s\", stage names "
                                             "should be unique (first named at line %d)",
                                             p->df->name, s->from->line, s->name, p->stages[i].from->line));
        return;
      }
}

/* FROM [--platform=P] IMAGE [AS NAME] */
static int
add_stage (struct kiln_plan *p, const struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **words = NULL;
  struct kiln_plan_stage *s;
  struct lookup_ctx lc = { p };

  if (kiln_expand_words (in->args, p->df->escape, global_lookup, &lc, &words, err) < 0)
    return kiln_error_wrap (err, "%s:%d: FROM", p->df->name, in->line);
  size_t n = kiln_strv_len (words);
  if (n != 1 && !(n == 3 && strcasecmp (words[1], "as") == 0))
    return parse_error (p, in, err, "expected `FROM image [AS name]`", NULL);
  if (!*words[0])
    return parse_error (p, in, err, "base image name is empty after expansion of", in->args);
  p->stages = kiln_xrealloc (p->stages, (p->nstages + 1) * sizeof *p->stages);
  s = &p->stages[p->nstages];
  memset (s, 0, sizeof *s);
  s->index = p->nstages;
  s->from = in;
  s->base = kiln_xstrdup (words[0]);
  s->base_stage = find_base (p, s->base);
  if (n == 3)
    {
      s->name = lowercase (words[2]);
      if (strspn (s->name, "0123456789") == strlen (s->name))
        {
          p->nstages++;
          return parse_error (p, in, err, "invalid stage name", s->name);
        }
      warn_duplicate (p, s);
    }
  const char *plat = kiln_df_instr_flag (in, "platform", NULL);
  p->nstages++;
  if (plat && expand_global (p, in, plat, &s->platform, err) < 0)
    return -1;
  return 0;
}

/* The last stage of the file with that name (case-insensitive), or -1. */
static long
find_last_named (const struct kiln_plan *p, const char *name)
{
  for (size_t i = p->nstages; i-- > 0;)
    if (p->stages[i].name && strcasecmp (p->stages[i].name, name) == 0)
      return (long) i;
  return -1;
}

long
kiln_plan_find_stage (const struct kiln_plan *p, const char *ref)
{
  if (*ref && strspn (ref, "0123456789") == strlen (ref))
    {
      unsigned long v = strtoul (ref, NULL, 10);
      return v < p->nstages ? (long) v : -1;
    }
  return find_last_named (p, ref);
}

static void
add_dep (struct kiln_plan_stage *s, long dep, const struct kiln_df_instr *in)
{
  s->deps = kiln_xrealloc (s->deps, (s->ndeps + 1) * sizeof *s->deps);
  s->dep_instrs = kiln_xrealloc (s->dep_instrs, (s->ndeps + 1) * sizeof *s->dep_instrs);
  s->dep_instrs[s->ndeps] = in;
  s->deps[s->ndeps++] = dep;
}

static const char *
no_lookup (void *ud, const char *name)
{
  (void) ud;
  (void) name;
  return NULL;
}

int
kiln_plan_check_copy_from (const struct kiln_dockerfile *df, const struct kiln_df_instr *in, struct kiln_error **err)
{
  const char *from = in->cmd == KILN_DF_COPY ? kiln_df_instr_flag (in, "from", NULL) : NULL;
  kiln_autofree char *out = NULL;

  if (!from)
    return 0;
  if (kiln_expand_word (from, df->escape, no_lookup, NULL, &out, err) < 0)
    return kiln_error_wrap (err, "%s:%d: COPY: --from", df->name, in->line);
  if (strcmp (out, from) != 0)
    return kiln_error_set (err, 0, KILN_E_PARSE,
                           "%s:%d: COPY: variable expansion is not supported for --from, define a new stage "
                           "with FROM using ARG from global scope as a workaround",
                           df->name, in->line);
  return 0;
}

char **
kiln_plan_from_names (const struct kiln_df_instr *in)
{
  char **names = kiln_xcalloc (1, sizeof *names);
  for (size_t f = 0; f < in->nflags; f++)
    {
      const char *v = NULL;
      const struct kiln_df_flag *fl = &in->flags[f];
      if (strcmp (fl->name, "from") == 0 && in->cmd == KILN_DF_COPY)
        v = fl->value;
      else if (strcmp (fl->name, "mount") == 0 && fl->value && (v = strstr (fl->value, "from=")))
        v = (v == fl->value || v[-1] == ',') ? v + 5 : NULL;
      if (v)
        kiln_strv_push_take (&names, kiln_xstrndup (v, strcspn (v, ",")));
    }
  return names;
}

/* --from= of COPY and from= of RUN --mount name other stages. */
static int
collect_deps (struct kiln_plan *p, struct kiln_plan_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  if (kiln_plan_check_copy_from (p->df, in, err) < 0)
    return -1;
  kiln_autostrv char **raws = kiln_plan_from_names (in);
  for (size_t i = 0; raws[i]; i++)
    {
      kiln_autofree char *name = NULL;
      /* BuildKit commands_runmount.go parseMount (no expander when the
       * stages are collected): a `$` other than the last byte fails */
      const char *dollar = in->cmd == KILN_DF_RUN ? strchr (raws[i], '$') : NULL;
      if (dollar && dollar[1])
        return parse_error (p, in, err,
                            "--mount: 'from' doesn't support variable expansion, define alias stage instead", NULL);
      if (expand_global (p, in, raws[i], &name, err) < 0)
        return -1;
      long dep = kiln_plan_find_stage (p, name);
      if (dep >= 0)
        add_dep (s, dep, in);
    }
  return 0;
}

/* A stage FROM another stage of the file runs that stage's ONBUILD
 * triggers, so their COPY --from / --mount from= stages are its own
 * dependencies (BuildKit testOnBuildInheritedStageWithFrom). */
static int
collect_trigger_deps (struct kiln_plan *p, struct kiln_plan_stage *s, struct kiln_error **err)
{
  if (s->base_stage < 0)
    return 0;
  const struct kiln_plan_stage *base = &p->stages[s->base_stage];
  for (size_t k = 0; k < base->ninstrs; k++)
    if (base->instrs[k]->cmd == KILN_DF_ONBUILD && base->instrs[k]->sub
        && collect_deps (p, s, base->instrs[k]->sub, err) < 0)
      return -1;
  return 0;
}

static void
mark_needed (struct kiln_plan *p, size_t i)
{
  struct kiln_plan_stage *s = &p->stages[i];
  if (s->needed)
    return;
  s->needed = true;
  if (s->base_stage >= 0)
    mark_needed (p, (size_t) s->base_stage);
  for (size_t d = 0; d < s->ndeps; d++)
    mark_needed (p, (size_t) s->deps[d]);
}

static void
set_platform_args (struct kiln_plan *p, const struct kiln_plan_opts *o)
{
  const char *os, *arch, *variant;
  kiln_plan_host_platform (&os, &arch, &variant);
  const char *tos = o->os ? o->os : os, *tarch = o->arch ? o->arch : arch;
  const char *tvar = o->arch ? o->variant : variant;
  kiln_autofree char *bp = kiln_xasprintf ("%s/%s%s%s", os, arch, variant ? "/" : "", variant ? variant : "");
  kiln_autofree char *tp = kiln_xasprintf ("%s/%s%s%s", tos, tarch, tvar ? "/" : "", tvar ? tvar : "");
  kiln_kvlist_set (&p->platform_args, "BUILDPLATFORM", bp);
  kiln_kvlist_set (&p->platform_args, "BUILDOS", os);
  kiln_kvlist_set (&p->platform_args, "BUILDARCH", arch);
  kiln_kvlist_set (&p->platform_args, "BUILDVARIANT", variant ? variant : "");
  kiln_kvlist_set (&p->platform_args, "TARGETPLATFORM", tp);
  kiln_kvlist_set (&p->platform_args, "TARGETOS", tos);
  kiln_kvlist_set (&p->platform_args, "TARGETARCH", tarch);
  kiln_kvlist_set (&p->platform_args, "TARGETVARIANT", tvar ? tvar : "");
}

/* Edge d of a stage, for d in [0, ndeps]: the stages its steps copy or
 * mount from, then its base stage (always an earlier one); -1 for none. */
static long
stage_edge (const struct kiln_plan_stage *s, size_t d)
{
  return d < s->ndeps ? s->deps[d] : s->base_stage;
}

/* The cycle check's walk: via[k] is the instruction of path[k] that leads
 * to path[k + 1]. */
struct cycle_walk {
  const struct kiln_plan *p;
  unsigned char *color; /* 0 unseen, 1 on the path, 2 done */
  size_t *path;
  const struct kiln_df_instr **via;
  size_t depth;
};

static long
visit_stage (struct cycle_walk *w, size_t i)
{
  const struct kiln_plan_stage *s = &w->p->stages[i];
  size_t at = w->depth++;
  w->color[i] = 1;
  w->path[at] = i;
  for (size_t d = 0; d <= s->ndeps; d++)
    {
      long next = stage_edge (s, d);
      if (next < 0 || w->color[next] == 2)
        continue;
      w->via[at] = d < s->ndeps ? s->dep_instrs[d] : s->from;
      long c = w->color[next] == 1 ? next : visit_stage (w, (size_t) next);
      if (c >= 0)
        return c;
    }
  w->color[i] = 2;
  w->depth--;
  return -1;
}

static char *
stage_label (const struct kiln_plan_stage *s)
{
  return s->name ? kiln_xstrdup (s->name) : kiln_xasprintf ("stage-%zu", s->index);
}

static int
cycle_error (const struct kiln_plan *p, const struct cycle_walk *w, long c, struct kiln_error **err)
{
  size_t k = 0;
  while (w->path[k] != (size_t) c)
    k++;
  kiln_autofree char *first = stage_label (&p->stages[c]);
  kiln_autobuf struct kiln_buf chain = KILN_BUF_INIT;
  for (size_t j = k; j < w->depth; j++)
    {
      kiln_autofree char *l = stage_label (&p->stages[w->path[j]]);
      kiln_buf_addf (&chain, "%s (line %d) -> ", l, w->via[j]->line);
    }
  kiln_buf_adds (&chain, first);
  const struct kiln_df_instr *in = w->via[k];
  kiln_error_set (err, 0, KILN_E_PARSE, "%s:%d: %s: circular dependency detected on stage: %s: %s", p->df->name,
                  in->line, kiln_df_cmd_name (in->cmd), first, chain.buf);
  return -1;
}

/* BuildKit validateCircularDependency: a stage may copy from one defined
 * later, but never, through any chain, from itself; the build would wait
 * for itself. */
static int
check_cycles (const struct kiln_plan *p, struct kiln_error **err)
{
  kiln_autofree unsigned char *color = kiln_xcalloc (p->nstages, 1);
  kiln_autofree size_t *path = kiln_xcalloc (p->nstages, sizeof *path);
  kiln_autofree const struct kiln_df_instr **via = kiln_xcalloc (p->nstages, sizeof *via);
  struct cycle_walk w = { p, color, path, via, 0 };
  for (size_t i = 0; i < p->nstages; i++)
    {
      long c = color[i] ? -1 : visit_stage (&w, i);
      if (c >= 0)
        return cycle_error (p, &w, c, err);
    }
  return 0;
}

static bool
needs_walk (const struct kiln_plan *p, size_t i, size_t to, unsigned char *seen)
{
  if (i == to)
    return true;
  if (seen[i])
    return false;
  seen[i] = 1;
  const struct kiln_plan_stage *s = &p->stages[i];
  for (size_t d = 0; d <= s->ndeps; d++)
    if (stage_edge (s, d) >= 0 && needs_walk (p, (size_t) stage_edge (s, d), to, seen))
      return true;
  return false;
}

bool
kiln_plan_stage_needs (const struct kiln_plan *p, size_t from, size_t to)
{
  kiln_autofree unsigned char *seen = kiln_xcalloc (p->nstages, 1);
  return needs_walk (p, from, to, seen);
}

static int
split_stages (struct kiln_plan *p, struct kiln_error **err)
{
  const struct kiln_dockerfile *df = p->df;
  for (size_t i = 0; i < df->ninstrs; i++)
    {
      const struct kiln_df_instr *in = &df->instrs[i];
      if (in->cmd == KILN_DF_FROM)
        {
          if (add_stage (p, in, err) < 0)
            return -1;
          continue;
        }
      if (p->nstages == 0)
        {
          if (in->cmd != KILN_DF_ARG)
            return parse_error (p, in, err, "no FROM before this instruction", NULL);
          if (add_global_arg (p, in, err) < 0)
            return -1;
          continue;
        }
      struct kiln_plan_stage *s = &p->stages[p->nstages - 1];
      s->instrs = kiln_xrealloc (s->instrs, (s->ninstrs + 1) * sizeof *s->instrs);
      s->instrs[s->ninstrs++] = in;
    }
  if (p->nstages == 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: no FROM instruction", df->name);
  /* after all stages are known, so a reference to a later one is recognised */
  for (size_t i = 0; i < p->nstages; i++)
    {
      for (size_t k = 0; k < p->stages[i].ninstrs; k++)
        if (collect_deps (p, &p->stages[i], p->stages[i].instrs[k], err) < 0)
          return -1;
      if (collect_trigger_deps (p, &p->stages[i], err) < 0)
        return -1;
    }
  return check_cycles (p, err);
}

int
kiln_plan_new (const struct kiln_dockerfile *df, const struct kiln_plan_opts *opts, struct kiln_plan **out,
               struct kiln_error **err)
{
  if (opts->build_args && opts->build_args->n > KILN_PLAN_MAX_BUILD_ARGS)
    return kiln_error_set (err, E2BIG, KILN_E_USAGE,
                           "%zu build arguments (--build-arg) given, more than the limit of %d", opts->build_args->n,
                           KILN_PLAN_MAX_BUILD_ARGS);
  struct kiln_plan *p = kiln_xcalloc (1, sizeof *p);
  p->df = df;
  if (opts->build_args)
    kiln_kvlist_copy (&p->build_args, opts->build_args);
  set_platform_args (p, opts);
  if (split_stages (p, err) < 0)
    {
      kiln_plan_free (p);
      return -1;
    }
  p->target = p->nstages - 1;
  if (opts->target)
    {
      /* BuildKit resolveTarget: findStateByName, the last stage so named */
      long t = find_last_named (p, opts->target);
      if (t < 0)
        {
          /* BuildKit suggests among the stage names */
          const char **names = kiln_xcalloc (p->nstages + 1, sizeof *names);
          for (size_t i = 0, n = 0; i < p->nstages; i++)
            if (p->stages[i].name)
              names[n++] = p->stages[i].name;
          kiln_autofree char *hint = kiln_suggest (opts->target, strlen (opts->target), names, true);
          free (names);
          kiln_error_set (err, 0, KILN_E_USAGE, "target stage `%s` could not be found in %s%s", opts->target, df->name,
                          hint ? hint : "");
          kiln_plan_free (p);
          return -1;
        }
      p->target = (size_t) t;
    }
  mark_needed (p, p->target);
  *out = p;
  return 0;
}

size_t
kiln_plan_count_steps (const struct kiln_plan *p)
{
  size_t n = 0;
  for (size_t i = 0; i < p->nstages; i++)
    if (p->stages[i].needed)
      n += 1 + p->stages[i].ninstrs;
  return n;
}

void
kiln_plan_free (struct kiln_plan *p)
{
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->nstages; i++)
    {
      free (p->stages[i].name);
      free (p->stages[i].base);
      free (p->stages[i].platform);
      free (p->stages[i].instrs);
      free (p->stages[i].deps);
      free (p->stages[i].dep_instrs);
    }
  free (p->stages);
  kiln_kvlist_clear (&p->global_args);
  kiln_kvlist_clear (&p->build_args);
  kiln_kvlist_clear (&p->platform_args);
  kiln_strv_free (p->warnings);
  free (p->global_has_value);
  free (p);
}
