/* cmd_run.c - `kiln run`: an image's command in the sandbox, over an overlay
 * of its snapshots, for tests in CI.  The container is thrown away after. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "kiln/image.h"
#include "kiln/cleanup.h"
#include "kiln/passwd.h"
#include "kiln/registry.h"
#include "kiln/sandbox.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"

static const char usage_text[] =
  "usage: kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
  "  --rm                  remove the container afterwards (always done; accepted for docker compatibility)\n"
  "  -e, --env K=V         set an environment variable (K alone takes it from kiln's environment)\n"
  "  -v, --volume HOST:CTR[:ro]  bind-mount a host path\n"
  "  -w, --workdir DIR     working directory\n"
  "  -u, --user USER[:GROUP]\n"
  "      --network host|none\n"
  "      --entrypoint CMD  override the image's entrypoint\n"
  "      --tls-verify=false  for pulling IMAGE when it is not in the store\n";

struct run_cli {
  char **env, **volumes;
  const char *workdir, *user, *entrypoint;
  bool network_none, entrypoint_set, tls_verify;
  struct kiln_sandbox_mount *mounts;
  size_t nmounts;
};

static int
parse (struct run_cli *c, int argc, char **argv, struct kiln_error **err)
{
  static const struct option opts[] = {
    { "rm", no_argument, NULL, 'R' }, { "env", required_argument, NULL, 'e' },
    { "volume", required_argument, NULL, 'v' }, { "workdir", required_argument, NULL, 'w' },
    { "user", required_argument, NULL, 'u' }, { "network", required_argument, NULL, 'N' },
    { "entrypoint", required_argument, NULL, 'E' }, { "tls-verify", optional_argument, NULL, 'T' },
    { "interactive", no_argument, NULL, 'i' }, { "tty", no_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  int opt;
  optind = 1;
  opterr = 0;
  c->tls_verify = true;
  /* "+": options stop at IMAGE, the rest is the command */
  while ((opt = getopt_long (argc, argv, "+:e:v:w:u:it", opts, NULL)) != -1)
    switch (opt)
      {
      case 'R': case 'i': case 't': break;
      case 'e':
        if (strchr (optarg, '='))
          kiln_strv_push (&c->env, optarg);
        else if (getenv (optarg))
          kiln_strv_push_take (&c->env, kiln_xasprintf ("%s=%s", optarg, getenv (optarg)));
        break;
      case 'v': kiln_strv_push (&c->volumes, optarg); break;
      case 'w': c->workdir = optarg; break;
      case 'u': c->user = optarg; break;
      case 'E': c->entrypoint = optarg, c->entrypoint_set = true; break;
      case 'T': c->tls_verify = !optarg || strcmp (optarg, "false") != 0; break;
      case 'N':
        if (strcmp (optarg, "none") != 0 && strcmp (optarg, "host") != 0)
          return kiln_error_set (err, 0, KILN_E_USAGE, "--network must be host or none, not `%s`", optarg);
        c->network_none = strcmp (optarg, "none") == 0;
        break;
      default:
        return kiln_error_set (err, 0, KILN_E_USAGE, "bad option `%s`", argv[optind - 1]);
      }
  if (optind >= argc)
    return kiln_error_set (err, 0, KILN_E_USAGE, "expected an IMAGE");
  return optind;
}

/* -v HOST:CTR[:ro|rw] */
static int
parse_volumes (struct run_cli *c, struct kiln_error **err)
{
  for (size_t i = 0; c->volumes && c->volumes[i]; i++)
    {
      char *v = c->volumes[i], *colon = strchr (v, ':');
      if (!colon || colon == v || colon[1] != '/')
        return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --volume `%s` (want /host/path:/container/path[:ro])", v);
      *colon = '\0';
      char *mode = strchr (colon + 1, ':');
      if (mode)
        *mode++ = '\0';
      if (mode && strcmp (mode, "ro") != 0 && strcmp (mode, "rw") != 0)
        return kiln_error_set (err, 0, KILN_E_USAGE, "invalid --volume mode `%s` (ro or rw)", mode);
      if (access (v, F_OK) < 0)
        return kiln_error_set (err, errno, KILN_E_NOTFOUND, "volume source `%s`", v);
      c->mounts = kiln_xrealloc (c->mounts, (c->nmounts + 1) * sizeof *c->mounts);
      c->mounts[c->nmounts++] = (struct kiln_sandbox_mount){ .type = KILN_SANDBOX_BIND, .source = v,
                                                             .target = colon + 1,
                                                             .readonly = mode && !strcmp (mode, "ro") };
    }
  return 0;
}

static char **
command_of (const struct run_cli *c, const struct kiln_image_config *cfg, int argc, char **argv)
{
  char **v = NULL;
  if (c->entrypoint_set)
    {
      if (*c->entrypoint)
        kiln_strv_push (&v, c->entrypoint);
    }
  else
    for (size_t i = 0; cfg->entrypoint && cfg->entrypoint[i]; i++)
      kiln_strv_push (&v, cfg->entrypoint[i]);
  if (argc > 0)
    for (int i = 0; i < argc; i++)
      kiln_strv_push (&v, argv[i]);
  else if (!c->entrypoint_set)
    for (size_t i = 0; cfg->cmd && cfg->cmd[i]; i++)
      kiln_strv_push (&v, cfg->cmd[i]);
  return v;
}

static char **
environment_of (const struct run_cli *c, const struct kiln_image_config *cfg)
{
  char **env = kiln_strv_dup (cfg->env);
  for (size_t i = 0; c->env && c->env[i]; i++)
    {
      size_t klen = strcspn (c->env[i], "=");
      size_t n = kiln_strv_len (env), k;
      for (k = 0; k < n; k++)
        if (strncmp (env[k], c->env[i], klen + 1) == 0)
          break;
      if (k < n)
        free (env[k]), env[k] = kiln_xstrdup (c->env[i]);
      else
        kiln_strv_push (&env, c->env[i]);
    }
  return env;
}

static int
load (struct kiln_store *st, const char *image, const struct kiln_registry_opts *o, struct kiln_manifest *m,
      struct kiln_image_config *cfg, struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  struct kiln_image_pull pull = { .registry = o };
  if (kiln_image_open (st, image, &pull, &d, err) < 0)
    return -1;
  int ret = kiln_store_get_manifest (st, &d.digest, m, err);
  if (ret == 0)
    ret = kiln_store_get_config (st, &m->config.digest, cfg, err);
  kiln_descriptor_clear (&d);
  return ret;
}

static int
run_sandbox (const struct run_cli *c, const struct kiln_image_config *cfg, const struct kiln_passwd_ids *ids,
             const struct kiln_mount *mnt, char **cmd, char **env, int *status, struct kiln_error **err)
{
  struct kiln_sandbox_opts so = {
    .rootfs = mnt->merged, .argv = cmd, .env = env, .cwd = c->workdir ? c->workdir : cfg->working_dir,
    .uid = ids->uid, .gid = ids->gid, .groups = ids->groups, .ngroups = ids->ngroups,
    .network_none = c->network_none, .mounts = c->mounts, .nmounts = c->nmounts,
    .stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2,
  };
  return kiln_sandbox_run (&so, status, err);
}

static int
run (struct kiln_cli *cli, struct run_cli *c, const char *image, int argc, char **argv, int *status,
     struct kiln_error **err)
{
  struct kiln_store *st = NULL;
  struct kiln_manifest m = { 0 };
  struct kiln_image_config cfg = { 0 };
  struct kiln_passwd_ids ids = { 0 };
  struct kiln_mount *mnt = NULL;
  kiln_autostrv char **lowers = NULL, **cmd = NULL, **env = NULL;
  kiln_autoclose int rootfd = -1;
  const char *user;
  struct kiln_registry_opts ro;
  int ret = -1;
  kiln_registry_opts_init (&ro);
  ro.tls_verify = c->tls_verify;
  if (parse_volumes (c, err) < 0 || kiln_cmd_isolate (err) < 0 || kiln_cmd_open_context (cli, &ro, &st, err) < 0)
    goto out;
  if (load (st, image, &ro, &m, &cfg, err) < 0)
    goto out;
  cmd = command_of (c, &cfg, argc, argv);
  env = environment_of (c, &cfg);
  if (!cmd)
    {
      ret = kiln_error_set (err, 0, KILN_E_USAGE, "image `%s` has no command: give one after the image", image);
      goto out;
    }
  if (kiln_snapshot_prepare (st, m.layers, cfg.diff_ids, m.nlayers, &lowers, err) < 0
      || kiln_snapshot_mount (st, lowers, NULL, &mnt, err) < 0)
    goto out;
  user = c->user ? c->user : cfg.user && *cfg.user ? cfg.user : "0";
  rootfd = open (mnt->merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (kiln_passwd_resolve (rootfd, user, false, true, &ids, err) < 0)
    goto out;
  ret = run_sandbox (c, &cfg, &ids, mnt, cmd, env, status, err);
out:
  if (rootfd >= 0)
    close (kiln_steal_fd (&rootfd));   /* an open fd keeps the overlay busy */
  if (mnt)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      kiln_snapshot_unmount (mnt, &e);
      kiln_error_free (&e);
      kiln_snapshot_cleanup (st, mnt, &e);
    }
  kiln_passwd_ids_clear (&ids);
  kiln_image_config_clear (&cfg);
  kiln_manifest_clear (&m);
  kiln_store_free (st);
  return ret;
}

int
kiln_cmd_run (struct kiln_cli *cli, int argc, char **argv)
{
  struct run_cli c = { 0 };
  struct kiln_error *err = NULL;
  static volatile sig_atomic_t interrupted;
  int status = 0;
  if (argc > 1 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    return fputs (usage_text, stdout), 0;
  int first = parse (&c, argc, argv, &err);
  kiln_cmd_on_signals (&interrupted);
  int ret = first < 0 ? -1 : run (cli, &c, argv[first], argc - first - 1, argv + first + 1, &status, &err);
  kiln_strv_free (c.env);
  kiln_strv_free (c.volumes);
  free (c.mounts);
  if (ret < 0)
    {
      int st = kiln_cmd_fail (&err);
      return st == 2 ? 2 : 125;   /* docker: 125 when the container could not run */
    }
  return status;
}
