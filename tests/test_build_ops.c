/* tests/test_build_ops.c - each op's prepare: which inputs enter a step's
 * cache key, checked without running a build (no sandbox, no layer). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../src/solver/build-internal.h"
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

static struct build b;
static struct kiln_build_opts o;
static struct kiln_build_result res;
static struct kiln_error *err;
static char ctx[4096];

static void
write_ctx (const char *rel, const char *data)
{
  char path[8192];
  snprintf (path, sizeof path, "%s/%s", ctx, rel);
  for (char *p = strchr (path + strlen (ctx) + 1, '/'); p; p = strchr (p + 1, '/'))
    {
      *p = '\0';
      mkdir (path, 0755);
      *p = '/';
    }
  FILE *f = fopen (path, "w");
  cr_assert_not_null (f, "%s", path);
  fputs (data, f);
  fclose (f);
}

/* A build as kiln_build_run prepares it, without running any stage. */
static void
setup_build (const char *dockerfile)
{
  snprintf (ctx, sizeof ctx, "%s/ctx", kiln_test_tmpdir ());
  mkdir (ctx, 0755);
  o.context = ctx;
  o.dockerfile_name = "Dockerfile";
  b.st = kiln_test_store_open ();
  b.o = &o;
  b.res = &res;
  b.ctx_fd = open (ctx, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cr_assert_geq (b.ctx_fd, 0);
  cr_assert_eq (kiln_dockerfile_parse ("Dockerfile", dockerfile, strlen (dockerfile), &b.df, &err), 0, "%s",
                err ? err->msg : "");
  struct kiln_plan_opts po = { .build_args = &o.build_args };
  cr_assert_eq (kiln_plan_new (b.df, &po, &b.plan, &err), 0, "%s", err ? err->msg : "");
  b.ignore = kiln_ignore_new_empty ();
  cr_assert_eq (kiln_ctxsum_open (b.st, ctx, &b.ctxsum, &err), 0, "%s", err ? err->msg : "");
  b.stages = kiln_xcalloc (b.plan->nstages, sizeof *b.stages);
  b.state = kiln_xcalloc (b.plan->nstages, sizeof *b.state);
  for (size_t i = 0; i < b.plan->nstages; i++)
    {
      b.stages[i].rootfs_fd = -1;
      pthread_mutex_init (&b.stages[i].mu, NULL);
      kiln_digest_of ("parent", 6, &b.stages[i].key);
    }
  b.created = kiln_xstrdup ("2026-01-01T00:00:00Z");
  pthread_mutex_init (&b.lock, NULL);
  pthread_cond_init (&b.cond, NULL);
}

static void
init (void)
{
  kiln_test_tmp_init ();
  memset (&b, 0, sizeof b);
  memset (&o, 0, sizeof o);
  memset (&res, 0, sizeof res);
}

static void
fini (void)
{
  for (size_t i = 0; b.plan && i < b.plan->nstages; i++)
    kiln_build_stage_clear (&b.stages[i]);
  kiln_build_copied_clear (&b);
  kiln_strv_free (b.tmpdirs);
  free (b.stages);
  free (b.state);
  kiln_ctxsum_free (b.ctxsum);
  kiln_ignore_free (b.ignore);
  kiln_plan_free (b.plan);
  kiln_dockerfile_free (b.df);
  free (b.created);
  if (b.ctx_fd >= 0)
    close (b.ctx_fd);
  kiln_store_free (b.st);
  kiln_kvlist_clear (&o.build_args);
  kiln_build_result_clear (&res);
  kiln_error_free (&err);
  kiln_test_tmp_fini ();
}

TestSuite (ops, .init = init, .fini = fini);

static const struct kiln_df_instr *
instr (size_t stage, size_t i)
{
  return b.plan->stages[stage].instrs[i];
}

/* What the solver does before prepare, then prepare. */
static int
prepare (struct build_stage *s, const struct kiln_df_instr *in, const struct build_op *op)
{
  kiln_build_step_reset (&s->step);
  s->step.in = in;
  s->step.op = op;
  s->step.state = op->size ? kiln_xcalloc (1, op->size) : NULL;
  int r = op->prepare (&b, s, &s->step, &err);
  cr_assert_geq (r, 0, "%s", err ? err->msg : "");
  return r;
}

static const char *
find_input (const struct build_step *st, const char *label, const char *prefix)
{
  for (size_t i = 0; st->inputs && st->inputs[i]; i++)
    if (strcmp (st->labels[i], label) == 0 && kiln_str_has_prefix (st->inputs[i], prefix))
      return st->inputs[i];
  return NULL;
}

static void
key_now (struct build_stage *s, struct kiln_digest *out)
{
  kiln_build_step_key (&s->step, &s->key, out);
}

Test (ops, run_declares_command_environment_user_workdir_network)
{
  setup_build ("FROM scratch\nRUN --network=none echo $A\n");
  struct build_stage *s = &b.stages[0];
  kiln_image_config_setenv (&s->cfg, "A", "1");
  s->cfg.user = kiln_xstrdup ("app");
  s->cfg.working_dir = kiln_xstrdup ("/w");
  cr_assert_eq (prepare (s, instr (0, 0), &kiln_build_op_run), BUILD_KEY_READY);
  const struct build_step *st = &s->step;
  cr_assert_not_null (find_input (st, "input", "instruction\tRUN --network=none echo $A"));
  /* shell form: the text as written goes to the shell, which expands $A */
  cr_assert_not_null (find_input (st, "input", "argv[0]\t/bin/sh"));
  cr_assert_not_null (find_input (st, "input", "argv[2]\techo $A"));
  cr_assert_not_null (find_input (st, "input", "env A\t=1"));
  cr_assert_not_null (find_input (st, "input", "user\tapp"));
  cr_assert_not_null (find_input (st, "input", "workdir\t/w"));
  cr_assert_not_null (find_input (st, "input", "network\tnone"));
  cr_assert_not_null (find_input (st, "input", "layer format\t"));
  /* only "input" lines: they are what a record keeps and a miss compares */
  for (size_t i = 0; st->inputs[i]; i++)
    cr_assert_str_eq (st->labels[i], "input");
}

Test (ops, run_key_follows_env_and_shell_not_proxy_args)
{
  setup_build ("FROM scratch\nRUN make\n");
  struct build_stage *s = &b.stages[0];
  struct kiln_digest k1, k2, k3, k4;
  kiln_image_config_setenv (&s->cfg, "A", "1");
  kiln_kvlist_set (&b.plan->build_args, "http_proxy", "http://proxy-one:3128");
  prepare (s, instr (0, 0), &kiln_build_op_run);
  key_now (s, &k1);
  for (size_t i = 0; s->step.inputs[i]; i++)
    cr_assert_null (strstr (s->step.inputs[i], "proxy"), "%s", s->step.inputs[i]);
  /* another proxy: the same step (BuildKit keeps proxies out of the key) */
  kiln_kvlist_set (&b.plan->build_args, "http_proxy", "http://proxy-two:3128");
  prepare (s, instr (0, 0), &kiln_build_op_run);
  key_now (s, &k2);
  cr_assert_str_eq (k1.s, k2.s);
  kiln_image_config_setenv (&s->cfg, "A", "2");
  prepare (s, instr (0, 0), &kiln_build_op_run);
  key_now (s, &k3);
  cr_assert_str_neq (k1.s, k3.s);
  cr_assert_not_null (find_input (&s->step, "input", "env A\t=2"));
  kiln_strv_push (&s->cfg.shell, "/bin/bash");
  kiln_strv_push (&s->cfg.shell, "-c");
  prepare (s, instr (0, 0), &kiln_build_op_run);
  key_now (s, &k4);
  cr_assert_str_neq (k3.s, k4.s);
  cr_assert_not_null (find_input (&s->step, "input", "argv[0]\t/bin/bash"));
  /* the same inputs on another parent: another key */
  struct kiln_digest other, k5;
  kiln_digest_of ("other parent", 12, &other);
  kiln_build_step_key (&s->step, &other, &k5);
  cr_assert_str_neq (k4.s, k5.s);
}

Test (ops, metadata_declares_the_instruction_then_the_variables_it_used)
{
  setup_build ("FROM scratch\nARG V=1\nARG W=2\nENV A=$V\n");
  struct build_stage *s = &b.stages[0];
  for (size_t i = 0; i < 2; i++)
    {
      prepare (s, instr (0, i), &kiln_build_op_metadata);
      cr_assert_eq (kiln_build_op_metadata.exec (&b, s, &s->step, &err), 0, "%s", err ? err->msg : "");
    }
  cr_assert_eq (prepare (s, instr (0, 2), &kiln_build_op_metadata), BUILD_KEY_AFTER_EXEC);
  cr_assert_eq (kiln_strv_len (s->step.inputs), 1);
  cr_assert_str_eq (s->step.labels[0], "instruction");
  cr_assert_str_eq (s->step.inputs[0], "ENV A=$V");
  cr_assert_eq (kiln_build_op_metadata.exec (&b, s, &s->step, &err), 0, "%s", err ? err->msg : "");
  /* V entered (ENV expanded it), W did not: changing W misses nothing */
  cr_assert_not_null (find_input (&s->step, "used", "var V\t=1"));
  cr_assert_null (find_input (&s->step, "used", "var W"));
  cr_assert_str_eq (kiln_image_config_getenv (&s->cfg, "A"), "1");
}

Test (ops, solver_chains_a_metadata_key_on_the_parent)
{
  setup_build ("FROM scratch\nENV A=1\n");
  struct build_stage *s = &b.stages[0];
  struct kiln_digest parent = s->key, want;
  struct build_step expect = { 0 };
  kiln_build_step_add_input (&expect, "instruction", "ENV A=1");
  kiln_build_step_key (&expect, &parent, &want);
  kiln_build_step_inputs_clear (&expect);
  s->nsteps = 2;
  cr_assert_eq (kiln_build_solve_step (&b, s, instr (0, 0), NULL, "", &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq (s->key.s, want.s);
  cr_assert_eq (res.nsteps, 1);
  cr_assert_str_eq (res.steps[0].key.s, want.s);
  cr_assert_not (res.steps[0].has_layer);
}

Test (ops, from_scratch_starts_a_chain_of_its_own)
{
  setup_build ("FROM scratch\n");
  struct build_stage *s = &b.stages[0];
  s->nsteps = 1;
  cr_assert_eq (kiln_build_solve_step (&b, s, b.plan->stages[0].from, &kiln_build_op_from, "", &err), 0, "%s",
                err ? err->msg : "");
  cr_assert_not_null (find_input (&s->step, "from", "scratch linux/"));
  struct kiln_digest want;
  kiln_build_step_key (&s->step, NULL, &want);
  /* the stage's key before FROM (the fixture's) is not its parent */
  cr_assert_str_eq (s->key.s, want.s);
}

Test (ops, copy_of_a_tree_defers_hashing_on_a_cold_build)
{
  setup_build ("FROM scratch\nCOPY app/ /app/\n");
  write_ctx ("app/a.txt", "hello\n");
  write_ctx ("app/sub/b.txt", "world\n");
  /* no record of this step: no hit is possible, the files are hashed
   * while streaming writes them, not read twice */
  cr_assert_eq (prepare (&b.stages[0], instr (0, 0), &kiln_build_op_copy), BUILD_KEY_AFTER_EXEC);
  cr_assert_null (b.stages[0].step.inputs);
  cr_assert (b.stages[0].step.explain_late);
}

Test (ops, copy_of_a_tree_declares_one_digest_of_its_files)
{
  setup_build ("FROM scratch\nCOPY app/ /app/\n");
  struct build_stage *s = &b.stages[0];
  o.cache_sources = true; /* a registry cache may have it: a hit is possible */
  write_ctx ("app/a.txt", "hello\n");
  write_ctx ("app/sub/b.txt", "world\n");
  cr_assert_eq (prepare (s, instr (0, 0), &kiln_build_op_copy), BUILD_KEY_READY);
  cr_assert_not_null (find_input (&s->step, "input", "instruction\tCOPY app/ /app/"));
  cr_assert_not_null (find_input (&s->step, "input", "destination\t/app/"));
  kiln_autofree char *tree1 = kiln_xstrdup (find_input (&s->step, "input", "source 0\ttree "));
  cr_assert_eq (kiln_strv_len (s->step.inputs), 4, "one line per source, not per file");

  /* a new mtime, same content: the same tree */
  kiln_autofree char *path = kiln_xasprintf ("%s/app/a.txt", ctx);
  struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };
  cr_assert_eq (utimensat (AT_FDCWD, path, ts, 0), 0);
  prepare (s, instr (0, 0), &kiln_build_op_copy);
  cr_assert_str_eq (find_input (&s->step, "input", "source 0\ttree "), tree1);

  write_ctx ("app/sub/b.txt", "world, changed\n");
  prepare (s, instr (0, 0), &kiln_build_op_copy);
  cr_assert_str_neq (find_input (&s->step, "input", "source 0\ttree "), tree1);
}

Test (ops, copy_of_files_names_each_content_digest)
{
  setup_build ("FROM scratch\nCOPY a.txt b.txt /d/\n");
  struct build_stage *s = &b.stages[0];
  write_ctx ("a.txt", "hello\n");
  write_ctx ("b.txt", "world\n");
  /* cold: not even key mode reads them */
  cr_assert_eq (prepare (s, instr (0, 0), &kiln_build_op_copy), BUILD_KEY_AFTER_EXEC);
  cr_assert_null (s->step.inputs);
  o.cache_sources = true;
  cr_assert_eq (prepare (s, instr (0, 0), &kiln_build_op_copy), BUILD_KEY_READY);
  /* one line per source: its name and the digest of its one-entry tree */
  kiln_autofree char *a1 = kiln_xstrdup (find_input (&s->step, "input", "source 0\tfile a.txt sha256:"));
  kiln_autofree char *b1 = kiln_xstrdup (find_input (&s->step, "input", "source 1\tfile b.txt sha256:"));
  cr_assert_not_null (find_input (&s->step, "input", "destination\t/d/"));
  write_ctx ("b.txt", "world, changed\n");
  prepare (s, instr (0, 0), &kiln_build_op_copy);
  cr_assert_str_eq (find_input (&s->step, "input", "source 0\t"), a1);
  cr_assert_str_neq (find_input (&s->step, "input", "source 1\t"), b1);
}

Test (ops, copy_key_follows_destination_and_workdir_to_make)
{
  setup_build ("FROM scratch\nCOPY a.txt d/\n");
  struct build_stage *s = &b.stages[0];
  o.cache_sources = true;
  write_ctx ("a.txt", "hello\n");
  struct kiln_digest k1, k2;
  prepare (s, instr (0, 0), &kiln_build_op_copy);
  key_now (s, &k1);
  cr_assert_not_null (find_input (&s->step, "input", "destination\t/d/"));
  /* WORKDIR /w: the relative destination lands under it */
  kiln_build_set_workdir (s, kiln_xstrdup ("/w"));
  kiln_strv_push (&s->pending_dirs, "w");
  s->pending_owners = kiln_xcalloc (2, sizeof *s->pending_owners); /* ends at a NULL user */
  s->pending_owners[0].user = kiln_xstrdup ("");
  prepare (s, instr (0, 0), &kiln_build_op_copy);
  key_now (s, &k2);
  cr_assert_not_null (find_input (&s->step, "input", "destination\t/w/d/"));
  cr_assert_not_null (find_input (&s->step, "input", "workdir\t/w "));
  cr_assert_str_neq (k1.s, k2.s);
}
