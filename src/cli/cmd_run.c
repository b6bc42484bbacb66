/* cmd_run.c - `kiln run`: options to struct kiln_run_opts, then
 * kiln_run_image (run.c); exit statuses as docker's (125: could not run). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "kiln/cleanup.h"
#include "kiln/registry.h"
#include "kiln/sandbox.h"
#include "kiln/run.h"
#include "kiln/util.h"

static const char usage_text[]
    = "usage: kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
      "  --rm                  remove the container afterwards (always done; accepted for docker compatibility)\n"
      "  -e, --env K=V         set an environment variable (K alone takes it from kiln's environment)\n"
      "  -v, --volume HOST:CTR[:ro]  bind-mount a host path\n"
      "  -w, --workdir DIR     working directory\n"
      "  -u, --user USER[:GROUP]\n"
      "      --network host|none\n"
      "      --entrypoint CMD  override the image's entrypoint\n"
      "      --pull[=POLICY]   missing (default), newer, always (also --pull alone) or never\n"
      "      --tls-verify=false  for pulling IMAGE\n";

struct run_cli {
  char **env, **volumes;
  const char *workdir, *user, *entrypoint;
  bool network_none, entrypoint_set, tls_verify;
  enum kiln_pull_policy pull;
  struct kiln_sandbox_mount *mounts;
  size_t nmounts;
};

static int
parse (struct run_cli *c, int argc, char **argv, struct kiln_error **err)
{
  static const struct option opts[] = {
    { "rm", no_argument, NULL, 'R' },
    { "env", required_argument, NULL, 'e' },
    { "volume", required_argument, NULL, 'v' },
    { "workdir", required_argument, NULL, 'w' },
    { "user", required_argument, NULL, 'u' },
    { "network", required_argument, NULL, 'N' },
    { "entrypoint", required_argument, NULL, 'E' },
    { "tls-verify", optional_argument, NULL, 'T' },
    { "pull", optional_argument, NULL, 'P' },
    { "interactive", no_argument, NULL, 'i' },
    { "tty", no_argument, NULL, 't' },
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
      case 'R':
      case 'i':
      case 't': break;
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
      case 'P':
        if (kiln_image_pull_policy_parse (optarg ? optarg : "always", &c->pull, err) < 0)
          return -1;
        break;
      case 'N':
        if (strcmp (optarg, "none") != 0 && strcmp (optarg, "host") != 0)
          return kiln_error_set (err, 0, KILN_E_USAGE, "--network must be host or none, not `%s`", optarg);
        c->network_none = strcmp (optarg, "none") == 0;
        break;
      default: return kiln_error_set (err, 0, KILN_E_USAGE, "bad option `%s`", argv[optind - 1]);
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
      c->mounts[c->nmounts++] = (struct kiln_sandbox_mount){
        .type = KILN_SANDBOX_BIND, .source = v, .target = colon + 1, .readonly = mode && !strcmp (mode, "ro")
      };
    }
  return 0;
}

static int
run (struct kiln_cli *cli, struct run_cli *c, const char *image, int argc, char **argv, int *status,
     struct kiln_error **err)
{
  struct kiln_store *st = NULL;
  struct kiln_registry_opts ro;
  kiln_registry_opts_init (&ro);
  ro.tls_verify = c->tls_verify;
  kiln_autostrv char **cmd = NULL;
  for (int i = 0; i < argc; i++)
    kiln_strv_push (&cmd, argv[i]);
  struct kiln_run_opts o = {
    .image = image,
    .argv = cmd,
    .entrypoint = c->entrypoint,
    .entrypoint_set = c->entrypoint_set,
    .env = c->env,
    .workdir = c->workdir,
    .user = c->user,
    .network_none = c->network_none,
    .registry = &ro,
    .pull = c->pull,
  };
  int ret = -1;
  if (parse_volumes (c, err) == 0 && kiln_cmd_isolate (err) == 0 && kiln_cmd_open_context (cli, &ro, &st, err) == 0)
    {
      o.mounts = c->mounts, o.nmounts = c->nmounts;
      ret = kiln_run_image (st, &o, status, err);
    }
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
      return st == 2 ? 2 : 125; /* docker: 125 when the container could not run */
    }
  return status;
}
