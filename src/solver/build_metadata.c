/* build_metadata.c - the metadata op: ENV, ARG, LABEL, WORKDIR, USER, CMD,
 * ENTRYPOINT, EXPOSE, VOLUME, HEALTHCHECK, SHELL, STOPSIGNAL, ONBUILD, ...
 * edit the stage's image config and history and write no layer.  The key is
 * the instruction as written and every variable its expansion looked up. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "build-internal.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/log.h"
#include "kiln/util.h"

static void
add_history (struct build *b, struct build_stage *s, const struct kiln_df_instr *in)
{
  kiln_image_config_add_history (&s->cfg, s->clock ? s->clock : b->created, in->original, true);
}

/* ENV and LABEL: "K=V ..." pairs, or the legacy "K V with spaces". */
static int
parse_pairs (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_kvlist *out,
             struct kiln_error **err)
{
  kiln_autostrv char **words = NULL;
  if (kiln_build_expand_words (b, s, in->args, &words, err) < 0)
    return kiln_build_step_error (b, in, err);
  if (words[0] && !strchr (words[0], '='))
    {
      /* legacy form: the value is the rest of the line, expanded as one word */
      const char *rest = in->args + strcspn (in->args, " \t");
      rest += strspn (rest, " \t");
      kiln_autofree char *val = NULL;
      kiln_autofree char *key = NULL;
      if (!*rest)
        return kiln_build_step_fail (b, in, err, "`%s` needs a value (KEY=VALUE or KEY VALUE)", words[0]);
      if (kiln_build_expand_word (b, s, rest, &val, err) < 0 || kiln_build_expand_word (b, s, words[0], &key, err) < 0)
        return kiln_build_step_error (b, in, err);
      kiln_kvlist_set (out, key, val);
      return 0;
    }
  for (size_t i = 0; words[i]; i++)
    {
      char *eq = strchr (words[i], '=');
      if (!eq || eq == words[i])
        return kiln_build_step_fail (b, in, err, "expected KEY=VALUE, got `%s`", words[i]);
      *eq = '\0';
      kiln_kvlist_set (out, words[i], eq + 1);
    }
  return 0;
}

static int
step_env_label (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  struct kiln_kvlist kv = { 0 };
  int ret = parse_pairs (b, s, in, &kv, err);
  for (size_t i = 0; ret == 0 && i < kv.n; i++)
    {
      if (in->cmd == KILN_DF_ENV)
        {
          kiln_image_config_setenv (&s->cfg, kv.items[i].key, kv.items[i].value);
          /* the later of ENV and ARG wins (see lookup) */
          kiln_kvlist_remove (&s->args, kv.items[i].key);
        }
      else
        kiln_kvlist_set (&s->cfg.labels, kv.items[i].key, kv.items[i].value);
    }
  kiln_kvlist_clear (&kv);
  return ret;
}

/* ARG NAME[=default]: --build-arg wins, then the default, then the global
 * value (or a predefined platform arg). */
static int
step_arg (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **words = NULL;
  const struct kiln_plan *p = b->plan;
  /* as BuildKit dispatchArg: names are not expanded, and a default only
   * when no --build-arg gives the value (ARG B=${A:?} with B given builds) */
  kiln_split_words_raw (in->args, b->df->escape, &words);
  for (size_t i = 0; words[i]; i++)
    {
      char *eq = strchr (words[i], '=');
      kiln_autofree char *def = NULL;
      if (eq)
        *eq = '\0';
      const char *val = kiln_kvlist_get (&p->build_args, words[i]);
      if (!val && eq)
        {
          if (kiln_build_expand_word (b, s, eq + 1, &def, err) < 0)
            return kiln_build_step_error (b, in, err);
          val = def;
        }
      for (size_t g = 0; !val && g < p->global_args.n; g++)
        if (strcmp (p->global_args.items[g].key, words[i]) == 0 && p->global_has_value[g])
          val = p->global_args.items[g].value;
      if (!val)
        val = kiln_kvlist_get (&p->platform_args, words[i]);
      if (!*words[i])
        return kiln_build_step_fail (b, in, err, "empty argument name%s", NULL);
      /* BuildKit dispatchArg adds an ARG to the environment (RUN's, and the
       * one later instructions expand against) only when it has a value;
       * without one it stays unset (${FOO+x} is empty, ${FOO-d} is d) and an
       * earlier value of the same ARG is kept */
      if (val)
        kiln_kvlist_set (&s->args, words[i], val);
    }
  return 0;
}

static int
step_workdir (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autofree char *dir = NULL;
  if (kiln_build_expand_word (b, s, in->args, &dir, err) < 0)
    return kiln_build_step_error (b, in, err);
  kiln_build_set_workdir (s, kiln_build_workdir (s->workdir, dir));
  /* created in the next layer this stage writes, as an image runtime would */
  if (s->cfg.working_dir[1])
    {
      /* looked up when a layer makes the directories: a cached build needs no passwd */
      size_t n = kiln_strv_len (s->pending_dirs);
      s->pending_owners = kiln_xrealloc (s->pending_owners, (n + 2) * sizeof *s->pending_owners);
      s->pending_owners[n] = (struct kiln_build_owner){ .user = kiln_xstrdup (s->cfg.user ? s->cfg.user : "") };
      s->pending_owners[n + 1] = (struct kiln_build_owner){ 0 };
      kiln_strv_push (&s->pending_dirs, s->cfg.working_dir + 1);
    }
  return 0;
}

static int
step_expose (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  kiln_autostrv char **words = NULL;
  if (kiln_build_expand_words (b, s, in->args, &words, err) < 0)
    return kiln_build_step_error (b, in, err);
  for (size_t i = 0; words[i]; i++)
    {
      char *slash = strchr (words[i], '/');
      const char *proto = slash ? slash + 1 : "tcp";
      if (slash)
        *slash = '\0';
      size_t digits = strspn (words[i], "0123456789-");
      if (!*words[i] || words[i][digits]
          || (strcasecmp (proto, "tcp") && strcasecmp (proto, "udp") && strcasecmp (proto, "sctp")))
        return kiln_build_step_fail (b, in, err, "invalid port `%s`", words[i]);
      kiln_autofree char *port = kiln_xasprintf ("%s/%s", words[i], proto);
      for (char *c = port; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
      bool dup = false;
      for (size_t k = 0; s->cfg.exposed_ports && s->cfg.exposed_ports[k]; k++)
        dup |= strcmp (s->cfg.exposed_ports[k], port) == 0;
      if (!dup)
        kiln_strv_push (&s->cfg.exposed_ports, port);
    }
  return 0;
}

static int
step_volume (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  /* BuildKit VolumeCommand.Expand expands each word on its own (no word
   * splitting of values), and dispatchVolume rejects an empty result */
  kiln_autostrv char **raw = kiln_df_list_words (in);
  kiln_autostrv char **words = kiln_xcalloc (1, sizeof *words);
  for (size_t i = 0; raw[i]; i++)
    {
      char *w = NULL;
      if (kiln_build_expand_word (b, s, raw[i], &w, err) < 0)
        return kiln_build_step_error (b, in, err);
      kiln_strv_push_take (&words, w);
      if (!*w)
        return kiln_build_step_fail (b, in, err, "`%s` expands to an empty string; a volume can not be empty", raw[i]);
    }
  for (size_t i = 0; words[i]; i++)
    {
      bool dup = false;
      for (size_t k = 0; s->cfg.volumes && s->cfg.volumes[k]; k++)
        dup |= strcmp (s->cfg.volumes[k], words[i]) == 0;
      if (!dup)
        kiln_strv_push (&s->cfg.volumes, words[i]);
    }
  return 0;
}

/* CMD/ENTRYPOINT/RUN argv: exec form as given, shell form through SHELL. */
static char **
command_argv (const struct build_stage *s, const struct kiln_df_instr *in)
{
  if (in->json)
    return kiln_strv_dup (in->argv);
  char **v = NULL;
  if (s->cfg.shell && s->cfg.shell[0])
    v = kiln_strv_dup (s->cfg.shell);
  else
    {
      kiln_strv_push (&v, "/bin/sh");
      kiln_strv_push (&v, "-c");
    }
  kiln_strv_push (&v, in->args);
  return v;
}

static int
step_cmd_entrypoint (struct build_stage *s, const struct kiln_df_instr *in)
{
  char **v = command_argv (s, in);
  if (in->cmd == KILN_DF_CMD)
    {
      kiln_strv_free (s->cfg.cmd);
      s->cfg.cmd = v;
      s->cmd_set = true;
      return 0;
    }
  kiln_strv_free (s->cfg.entrypoint);
  s->cfg.entrypoint = v;
  /* Docker: an ENTRYPOINT resets a CMD inherited from the base image */
  if (!s->cmd_set)
    {
      kiln_strv_free (s->cfg.cmd);
      s->cfg.cmd = NULL;
    }
  return 0;
}

/* Go time.ParseDuration subset: "1h2m3s", "500ms", "1.5s". */
static int
parse_duration (const char *s, int64_t *out)
{
  static const struct {
    const char *u;
    double ns;
  } units[] = {
    { "ns", 1 }, { "us", 1e3 }, { "µs", 1e3 }, { "ms", 1e6 }, { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
  };
  double total = 0;
  if (!*s)
    return -1;
  while (*s)
    {
      char *end;
      double v = strtod (s, &end);
      if (end == s || v < 0)
        return -1;
      size_t best = 0, bestlen = 0;
      for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        {
          size_t l = strlen (units[i].u);
          if (strncmp (end, units[i].u, l) == 0 && l > bestlen)
            best = i, bestlen = l;
        }
      if (!bestlen)
        return -1;
      total += v * units[best].ns;
      s = end + bestlen;
    }
  *out = (int64_t) total;
  return 0;
}

static int
healthcheck_flags (struct build *b, const struct kiln_df_instr *in, struct kiln_healthcheck *hc,
                   struct kiln_error **err)
{
  static const char *const names[] = { "interval", "timeout", "start-period", "start-interval" };
  int64_t *fields[] = { &hc->interval, &hc->timeout, &hc->start_period, &hc->start_interval };
  for (size_t i = 0; i < 4; i++)
    {
      const char *v = kiln_df_instr_flag (in, names[i], NULL);
      if (v && (parse_duration (v, fields[i]) < 0 || (*fields[i] != 0 && *fields[i] < 1000000)))
        return kiln_build_step_fail (b, in, err, "invalid duration `%s` (want e.g. 30s, 1m30s; at least 1ms)", v);
    }
  const char *r = kiln_df_instr_flag (in, "retries", NULL);
  if (r)
    {
      char *end;
      long v = strtol (r, &end, 10);
      if (*end || end == r || v < 0 || v > 1000000)
        return kiln_build_step_fail (b, in, err, "invalid --retries `%s`", r);
      hc->retries = (int) v;
    }
  return 0;
}

static int
step_healthcheck (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  struct kiln_healthcheck *hc = kiln_xcalloc (1, sizeof *hc);
  const char *a = in->args;
  if (strncasecmp (a, "NONE", 4) == 0 && (a[4] == '\0' || isspace ((unsigned char) a[4])))
    kiln_strv_push (&hc->test, "NONE");
  else
    {
      a += 3; /* "CMD", checked by the parser */
      a += strspn (a, " \t");
      if (in->json)
        {
          kiln_strv_push (&hc->test, "CMD");
          for (size_t i = 0; in->argv[i]; i++)
            kiln_strv_push (&hc->test, in->argv[i]);
        }
      else
        {
          kiln_strv_push (&hc->test, "CMD-SHELL");
          kiln_strv_push (&hc->test, a);
        }
      if (healthcheck_flags (b, in, hc, err) < 0)
        {
          kiln_strv_free (hc->test);
          free (hc);
          return -1;
        }
    }
  if (s->cfg.healthcheck)
    {
      kiln_strv_free (s->cfg.healthcheck->test);
      free (s->cfg.healthcheck);
    }
  s->cfg.healthcheck = hc;
  return 0;
}

static int
step_simple_word (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, char **field,
                  struct kiln_error **err)
{
  char *v = NULL;
  if (kiln_build_expand_word (b, s, in->args, &v, err) < 0)
    return kiln_build_step_error (b, in, err);
  if (!*v)
    {
      free (v);
      return kiln_build_step_fail (b, in, err, "value is empty after expansion of `%s`", in->args);
    }
  free (*field);
  *field = v;
  return 0;
}

/* The trigger as the config keeps it: BuildKit parseOnBuild appends each
 * heredoc's body and delimiter to the instruction, so that the image that
 * runs the trigger can read it again (BuildKit testOnBuildHeredoc). */
static char *
onbuild_trigger (const struct kiln_df_instr *in)
{
  const struct kiln_df_instr *t = in->sub;
  if (!t)
    return kiln_xstrdup (in->args);
  struct kiln_buf b = KILN_BUF_INIT;
  kiln_buf_adds (&b, t->original);
  for (size_t i = 0; i < t->nheredocs; i++)
    kiln_buf_addf (&b, "\n%s%s", t->heredocs[i].content, t->heredocs[i].name);
  return kiln_buf_detach (&b, NULL);
}

static int
step_metadata (struct build *b, struct build_stage *s, const struct kiln_df_instr *in, struct kiln_error **err)
{
  switch (in->cmd)
    {
    case KILN_DF_ENV:
    case KILN_DF_LABEL: return step_env_label (b, s, in, err);
    case KILN_DF_ARG: return step_arg (b, s, in, err);
    case KILN_DF_WORKDIR: return step_workdir (b, s, in, err);
    case KILN_DF_EXPOSE: return step_expose (b, s, in, err);
    case KILN_DF_VOLUME: return step_volume (b, s, in, err);
    case KILN_DF_USER: return step_simple_word (b, s, in, &s->cfg.user, err);
    case KILN_DF_STOPSIGNAL: return step_simple_word (b, s, in, &s->cfg.stop_signal, err);
    case KILN_DF_MAINTAINER:
      free (s->cfg.author);
      s->cfg.author = kiln_xstrdup (in->args);
      return 0;
    case KILN_DF_CMD:
    case KILN_DF_ENTRYPOINT: return step_cmd_entrypoint (s, in);
    case KILN_DF_HEALTHCHECK: return step_healthcheck (b, s, in, err);
    case KILN_DF_SHELL:
      kiln_strv_free (s->cfg.shell);
      s->cfg.shell = kiln_strv_dup (in->argv);
      return 0;
    case KILN_DF_ONBUILD: kiln_strv_push_take (&s->cfg.onbuild, onbuild_trigger (in)); return 0;
    default: return kiln_error_set (err, 0, KILN_E_INTERNAL, "not a metadata instruction");
    }
}

/* Metadata: the key is the instruction as written and the value of every
 * variable its expansion looked up, known once it ran. */
static int
metadata_prepare (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  (void) b, (void) s, (void) err;
  kiln_build_step_add_input (st, "instruction", st->in->original);
  return BUILD_KEY_AFTER_EXEC;
}

static int
metadata_exec (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  const struct kiln_df_instr *in = st->in;
  if (in->cmd == KILN_DF_FROM)
    return kiln_build_step_fail (b, in, err, "FROM is not allowed here%s", NULL);
  if (step_metadata (b, s, in, err) < 0)
    return -1;
  if (in->cmd != KILN_DF_ARG)
    add_history (b, s, in);
  for (size_t i = 0; st->used && st->used[i]; i++)
    kiln_build_step_add_input (st, "used", st->used[i]);
  return 0;
}

const struct build_op kiln_build_op_metadata = { .name = "metadata",
                                                 .prepare = metadata_prepare,
                                                 .exec = metadata_exec };
