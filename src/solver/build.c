/* build.c - what every op shares: variable lookup and expansion, progress
 * lines, step errors, scratch directories, locks, a stage's views, layers
 * and working directory.  The metadata op is build_metadata.c. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "build-internal.h"
#include "kiln/toc.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/passwd.h"
#include "kiln/ref.h"
#include "kiln/util.h"

/* BuildKit keeps ENV and ARG values in one environment (dispatchEnv and
 * dispatchArg both call llb.State.AddEnv, which replaces), so the later one
 * wins: ENV after ARG hides the ARG, an ARG with a value after ENV (or after
 * the base image's ENV) overrides it for RUN and expansion, while the image
 * config keeps the ENV.  An ENV removes the ARG of its name from s->args, so
 * an ARG still there was set after the ENV. */
static const char *
lookup (struct build_stage *s, const char *name)
{
  for (size_t i = 0; i < s->args.n; i++)
    if (strcmp (s->args.items[i].key, name) == 0)
      return s->args.items[i].value;
  return kiln_image_config_getenv (&s->cfg, name);
}

/* Every lookup is recorded: the values a step used are part of its cache
 * key, and only those (a changed build arg no step uses misses nothing). */
const char *
kiln_build_lookup (void *ud, const char *name)
{
  struct step_env *e = ud;
  const char *v = lookup (e->s, name);
  kiln_autofree char *line = kiln_xasprintf ("var %s\t%s%s", name, v ? "=" : "unset", v ? v : "");
  for (size_t i = 0; e->s->step.used && e->s->step.used[i]; i++)
    if (strcmp (e->s->step.used[i], line) == 0)
      return v;
  kiln_strv_push (&e->s->step.used, line);
  return v;
}

void
kiln_build_progress (struct build *b, const char *fmt, ...)
{
  if (b->o->progress != KILN_PROGRESS_PLAIN || !b->o->progress_out)
    return;
  va_list ap;
  va_start (ap, fmt);
  vfprintf (b->o->progress_out, fmt, ap);
  va_end (ap);
  fputc ('\n', b->o->progress_out);
  fflush (b->o->progress_out);
}

int
kiln_build_step_error (struct build *b, const struct kiln_df_instr *in, struct kiln_error **err)
{
  return kiln_error_wrap (err, "%s:%d: %s", b->df->name, in->line, kiln_df_cmd_name (in->cmd));
}

int
kiln_build_step_fail (struct build *b, const struct kiln_df_instr *in, struct kiln_error **err, const char *fmt,
                      const char *arg)
{
  kiln_error_set (err, 0, KILN_E_PARSE, fmt, arg ? arg : "");
  return kiln_build_step_error (b, in, err);
}

int
kiln_build_expand_word (struct build *b, struct build_stage *s, const char *text, char **out, struct kiln_error **err)
{
  struct step_env e = { b, s };
  return kiln_expand_word (text, b->df->escape, kiln_build_lookup, &e, out, err);
}

int
kiln_build_expand_words (struct build *b, struct build_stage *s, const char *text, char ***out, struct kiln_error **err)
{
  struct step_env e = { b, s };
  return kiln_expand_words (text, b->df->escape, kiln_build_lookup, &e, out, err);
}

int
kiln_build_tmpdir (struct build *b, int *fd, char **abs, struct kiln_error **err)
{
  char *rel = NULL;
  if (kiln_store_mktemp_dir (b->st, &rel, err) < 0)
    return -1;
  if (abs)
    *abs = kiln_xasprintf ("%s/%s", kiln_store_root (b->st), rel);
  kiln_build_lock (b);
  kiln_strv_push_take (&b->tmpdirs, rel);
  kiln_build_unlock (b);
  *fd = kiln_fs_open_beneath (kiln_store_dirfd (b->st), rel, O_RDONLY | O_DIRECTORY, 0, err);
  return *fd < 0 ? -1 : 0;
}

void
kiln_build_lock (struct build *b)
{
  pthread_mutex_lock (&b->lock);
}

void
kiln_build_unlock (struct build *b)
{
  pthread_mutex_unlock (&b->lock);
}

int
kiln_build_check_cancelled (const struct build *b, const char *what, struct kiln_error **err)
{
  bool interrupted = b->o->interrupted && *b->o->interrupted;
  if (!interrupted && !__atomic_load_n (&b->cancel, __ATOMIC_SEQ_CST))
    return 0;
  return kiln_error_set (err, EINTR, KILN_E_INTERNAL, "build %s before `%s`",
                         interrupted ? "interrupted" : "cancelled (another stage failed)", what);
}

char *
kiln_build_step_label (const struct build *b, const struct build_stage *s)
{
  size_t idx = (size_t) (s - b->stages);
  const char *name = b->plan->stages[idx].name;
  if (!b->multi)
    return kiln_xasprintf ("[%zu/%zu]", s->stepno, s->nsteps);
  if (name)
    return kiln_xasprintf ("[%s %zu/%zu]", name, s->stepno, s->nsteps);
  return kiln_xasprintf ("[stage-%zu %zu/%zu]", idx, s->stepno, s->nsteps);
}

static struct kiln_tocview *
stage_view (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  if (!s->view)
    s->view = kiln_tocview_new ();
  for (; s->view_layers < s->nlayers; s->view_layers++)
    {
      struct kiln_toc *t = NULL;
      struct kiln_digest diff_id;
      size_t i = s->view_layers;
      if (kiln_digest_parse (s->cfg.diff_ids[i], &diff_id, err) < 0
          || kiln_toc_load (b->st, &s->layers[i], &diff_id, &t, err) < 0)
        {
          kiln_error_wrap (err, "read what the image has (layer %zu)", i + 1);
          return NULL;
        }
      kiln_tocview_apply (s->view, t);
      kiln_toc_free (t);
    }
  return s->view;
}

struct kiln_tocview *
kiln_build_stage_view (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  pthread_mutex_lock (&s->mu);
  struct kiln_tocview *v = stage_view (b, s, err);
  pthread_mutex_unlock (&s->mu);
  return v;
}

static int
stage_rootfs (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  if (s->rootfs_fd < 0 && kiln_build_tmpdir (b, &s->rootfs_fd, NULL, err) < 0)
    return -1;
  if (s->rootfs_layers < s->nlayers)
    {
      if (kiln_extract_layers (b->st, s->layers + s->rootfs_layers, s->nlayers - s->rootfs_layers, s->rootfs_fd, err)
          < 0)
        return kiln_error_wrap (err, "prepare the stage's file system");
      s->rootfs_layers = s->nlayers;
    }
  return s->rootfs_fd;
}

int
kiln_build_stage_rootfs (struct build *b, struct build_stage *s, struct kiln_error **err)
{
  pthread_mutex_lock (&s->mu);
  int fd = stage_rootfs (b, s, err);
  pthread_mutex_unlock (&s->mu);
  return fd;
}

void
kiln_build_add_layer (struct build *b, struct build_stage *s, const struct kiln_layer_result *lr,
                      const char *created_by)
{
  s->layers = kiln_xrealloc (s->layers, (s->nlayers + 1) * sizeof *s->layers);
  memset (&s->layers[s->nlayers], 0, sizeof *s->layers);
  kiln_descriptor_copy (&s->layers[s->nlayers++], &lr->desc);
  kiln_strv_push (&s->cfg.diff_ids, lr->diff_id.s);
  kiln_image_config_add_history (&s->cfg, s->clock ? s->clock : b->created, created_by, false);
}

/* BuildKit dispatchWorkdir -> system.NormalizeWorkdir (util/system/path.go
 * NormalizePath, keepSlash false): an absolute path is kept as written
 * ("/tmp/" stays "/tmp/", as Docker and buildah keep it too); a relative one
 * is joined to the current directory and cleaned; an empty one keeps the
 * current directory. */
char *
kiln_build_workdir (const char *current, const char *dir)
{
  if (dir[0] == '/')
    return kiln_xstrdup (dir);
  if (current == NULL || *current == '\0')
    current = "/";
  if (dir[0] == '\0' && current[0] == '/')
    return kiln_xstrdup (current);
  kiln_autofree char *joined = kiln_fs_path_join (current, dir);
  return kiln_xasprintf ("/%s", joined);
}

void
kiln_build_set_workdir (struct build_stage *s, char *wd)
{
  free (s->workdir);
  free (s->cfg.working_dir);
  s->workdir = wd;
  s->cfg.working_dir = NULL;
  if (wd && *wd)
    {
      kiln_autofree char *rel = kiln_fs_path_clean (wd);
      s->cfg.working_dir = kiln_xasprintf ("/%s", rel);
    }
}

void
kiln_build_stage_pending_clear (struct build_stage *s)
{
  kiln_strv_free (s->pending_dirs);
  s->pending_dirs = NULL;
  for (size_t i = 0; s->pending_owners && s->pending_owners[i].user; i++)
    free (s->pending_owners[i].user);
  free (s->pending_owners);
  s->pending_owners = NULL;
}

/* The owner of the directories a WORKDIR makes, from the USER in force (see
 * struct kiln_build_owner).  A name missing from /etc/passwd gives root, as
 * readUser does when it finds no such user. */
int
kiln_build_owner_resolve (struct build *b, struct build_stage *s, struct kiln_build_owner *o, int rootfd,
                          struct kiln_error **err)
{
  const char *user = o->user;
  struct kiln_passwd_ids ids;
  if (o->resolved)
    return 0;
  o->resolved = true;
  o->uid = 0;
  o->gid = 0;
  if (*user == '\0')
    return 0;
  if (rootfd < 0 && kiln_passwd_spec_has_names (user) && (rootfd = kiln_build_stage_rootfs (b, s, err)) < 0)
    return -1;
  if (kiln_passwd_resolve (rootfd, user, true, false, &ids, err) < 0)
    {
      if ((*err)->kind != KILN_E_NOTFOUND)
        return -1;
      kiln_error_free (err);
      return 0;
    }
  o->uid = ids.uid;
  o->gid = ids.gid;
  kiln_passwd_ids_clear (&ids);
  return 0;
}
