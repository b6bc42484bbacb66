/* run.c - an image's command in a throwaway container (kiln/run.h): the
 * image resolved (pulled when the store lacks it), its snapshots prepared and
 * mounted under an overlay, the user looked up in the image's own passwd,
 * the sandbox run, everything unmounted and removed after. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/image.h"
#include "kiln/passwd.h"
#include "kiln/run.h"
#include "kiln/sandbox.h"
#include "kiln/snapshot.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* ENTRYPOINT + CMD as docker combines them with --entrypoint and a command. */
static char **
command_of (const struct kiln_run_opts *o, const struct kiln_image_config *cfg)
{
  char **v = NULL;
  if (o->entrypoint_set)
    {
      if (*o->entrypoint)
        kiln_strv_push (&v, o->entrypoint);
    }
  else
    for (size_t i = 0; cfg->entrypoint && cfg->entrypoint[i]; i++)
      kiln_strv_push (&v, cfg->entrypoint[i]);
  if (o->argv && o->argv[0])
    for (size_t i = 0; o->argv[i]; i++)
      kiln_strv_push (&v, o->argv[i]);
  else if (!o->entrypoint_set)
    for (size_t i = 0; cfg->cmd && cfg->cmd[i]; i++)
      kiln_strv_push (&v, cfg->cmd[i]);
  return v;
}

static char **
environment_of (const struct kiln_run_opts *o, const struct kiln_image_config *cfg)
{
  char **env = kiln_strv_dup (cfg->env);
  for (size_t i = 0; o->env && o->env[i]; i++)
    {
      size_t klen = strcspn (o->env[i], "=");
      size_t n = kiln_strv_len (env), k;
      for (k = 0; k < n; k++)
        if (strncmp (env[k], o->env[i], klen + 1) == 0)
          break;
      if (k < n)
        free (env[k]), env[k] = kiln_xstrdup (o->env[i]);
      else
        kiln_strv_push (&env, o->env[i]);
    }
  return env;
}

static int
load (struct kiln_store *st, const struct kiln_run_opts *o, struct kiln_manifest *m, struct kiln_image_config *cfg,
      struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  struct kiln_image_pull pull = { .registry = o->registry, .policy = o->pull };
  if (kiln_image_open (st, o->image, o->registry ? &pull : NULL, &d, err) < 0)
    return -1;
  int ret = kiln_store_get_manifest (st, &d.digest, m, err);
  if (ret == 0)
    ret = kiln_store_get_config (st, &m->config.digest, cfg, err);
  kiln_descriptor_clear (&d);
  return ret;
}

static int
run_sandbox (const struct kiln_run_opts *o, const struct kiln_image_config *cfg, const struct kiln_passwd_ids *ids,
             const struct kiln_mount *mnt, char **cmd, char **env, int *status, struct kiln_error **err)
{
  struct kiln_sandbox_opts so = {
    .rootfs = mnt->merged,
    .argv = cmd,
    .env = env,
    .cwd = o->workdir ? o->workdir : cfg->working_dir,
    .uid = ids->uid,
    .gid = ids->gid,
    .groups = ids->groups,
    .ngroups = ids->ngroups,
    .network_none = o->network_none,
    .mounts = o->mounts,
    .nmounts = o->nmounts,
    .stdin_fd = 0,
    .stdout_fd = 1,
    .stderr_fd = 2,
  };
  return kiln_sandbox_run (&so, status, err);
}

/* The image's snapshots under an overlay, the user resolved inside it, the
 * command run. */
static int
run_mounted (struct kiln_store *st, const struct kiln_run_opts *o, const struct kiln_manifest *m,
             const struct kiln_image_config *cfg, char **cmd, char **env, int *status, struct kiln_error **err)
{
  kiln_autostrv char **lowers = NULL;
  struct kiln_mount *mnt = NULL;
  struct kiln_passwd_ids ids = { 0 };
  kiln_autoclose int rootfd = -1;
  int ret = -1;
  if (kiln_snapshot_prepare (st, m->layers, cfg->diff_ids, m->nlayers, &lowers, err) < 0
      || kiln_snapshot_mount (st, lowers, NULL, &mnt, err) < 0)
    return -1;
  const char *user = o->user ? o->user : cfg->user && *cfg->user ? cfg->user : "0";
  rootfd = open (mnt->merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (kiln_passwd_resolve (rootfd, user, false, true, &ids, err) == 0)
    ret = run_sandbox (o, cfg, &ids, mnt, cmd, env, status, err);
  close (kiln_steal_fd (&rootfd)); /* an open fd keeps the overlay busy */
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_snapshot_unmount (mnt, &e);
  kiln_error_free (&e);
  kiln_snapshot_cleanup (st, mnt, &e);
  kiln_passwd_ids_clear (&ids);
  return ret;
}

int
kiln_run_image (struct kiln_store *st, const struct kiln_run_opts *o, int *status, struct kiln_error **err)
{
  struct kiln_manifest m = { 0 };
  struct kiln_image_config cfg = { 0 };
  kiln_autostrv char **cmd = NULL, **env = NULL;
  int ret = load (st, o, &m, &cfg, err);
  if (ret == 0)
    {
      cmd = command_of (o, &cfg);
      env = environment_of (o, &cfg);
      ret = cmd ? run_mounted (st, o, &m, &cfg, cmd, env, status, err)
                : kiln_error_set (err, 0, KILN_E_USAGE, "image `%s` has no command: give one after the image",
                                  o->image);
    }
  kiln_image_config_clear (&cfg);
  kiln_manifest_clear (&m);
  return ret;
}
