/* build_exec_mounts.c - a RUN's --mount flags: parsed as BuildKit's
 * runmount does, then each made a sandbox mount with its key inputs - a
 * cache (seeded from a from= stage, locked for sharing=locked), a secret (a
 * file only on the sandbox's tmpfs, or an env variable), a bind (read-only,
 * or rw over a throwaway upper; its files enter the key by tree digest), a
 * tmpfs; and --secret's values. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build_exec-internal.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"

struct mount_spec {
  char *type, *target, *source, *from, *id, *sharing, *mode, *uid, *gid, *env, *size;
  bool rw, required;
  uint32_t mode_v, uid_v, gid_v; /* mode, uid, gid parsed (0 when not given) */
};

static void
mount_spec_clear (struct mount_spec *m)
{
  free (m->type), free (m->target), free (m->source), free (m->from), free (m->id), free (m->sharing);
  free (m->mode), free (m->uid), free (m->gid), free (m->env), free (m->size);
}

/* BuildKit commands_runmount.go: "unexpected key 'typ' in 'typ=tmpfs'" with
 * a suggestion among the keys it knows. */
static int
unknown_mount_key (struct run_job *r, const char *key, const char *val, bool has_val, struct kiln_error **err)
{
  static const char *const keys[] = { "type",        "from", "source", "target",    "readonly", "id",  "sharing",
                                      "required",    "size", "mode",   "uid",       "gid",      "src", "dst",
                                      "destination", "ro",   "rw",     "readwrite", "env",      NULL };
  kiln_autofree char *hint = kiln_suggest (key, strlen (key), keys, true);
  kiln_error_set (err, 0, KILN_E_PARSE, "--mount: unexpected key '%s' in '%s%s%s'%s", key, key, has_val ? "=" : "",
                  has_val ? val : "", hint ? hint : "");
  return kiln_build_step_error (r->b, r->in, err);
}

/* BuildKit commands_runmount.go: uid and gid decimal, mode octal, each
 * ParseUint(.., 32); anything else is "invalid value X for uid". */
static int
parse_mount_ids (struct run_job *r, struct mount_spec *m, struct kiln_error **err)
{
  struct {
    const char *name, *val;
    unsigned base;
    uint32_t *out;
  } ids[] = {
    { "mode", m->mode, 8, &m->mode_v },
    { "uid", m->uid, 10, &m->uid_v },
    { "gid", m->gid, 10, &m->gid_v },
  };
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    {
      uint64_t v;
      if (!ids[i].val)
        continue;
      if (kiln_parse_uint (ids[i].val, strlen (ids[i].val), ids[i].base, UINT32_MAX, &v))
        {
          *ids[i].out = (uint32_t) v;
          continue;
        }
      kiln_error_set (err, 0, KILN_E_PARSE, "--mount: invalid value %s for %s", ids[i].val, ids[i].name);
      return kiln_build_step_error (r->b, r->in, err);
    }
  return 0;
}

static int
parse_mount_spec (struct run_job *r, const char *spec, struct mount_spec *m, struct kiln_error **err)
{
  struct {
    const char *name;
    char **field;
  } keys[] = {
    { "type", &m->type },       { "target", &m->target }, { "dst", &m->target }, { "destination", &m->target },
    { "source", &m->source },   { "src", &m->source },    { "from", &m->from },  { "id", &m->id },
    { "sharing", &m->sharing }, { "mode", &m->mode },     { "uid", &m->uid },    { "gid", &m->gid },
    { "env", &m->env },         { "size", &m->size },
  };
  kiln_autofree char *copy = kiln_xstrdup (spec);
  char *save = NULL;
  for (char *kv = strtok_r (copy, ",", &save); kv; kv = strtok_r (NULL, ",", &save))
    {
      char *eq = strchr (kv, '=');
      const char *val = eq ? eq + 1 : "true";
      if (eq)
        *eq = '\0';
      bool known = false;
      for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !known; i++)
        if (strcmp (kv, keys[i].name) == 0)
          {
            free (*keys[i].field);
            *keys[i].field = kiln_xstrdup (val);
            known = true;
          }
      if (strcmp (kv, "rw") == 0 || strcmp (kv, "readwrite") == 0)
        m->rw = strcmp (val, "false") != 0, known = true;
      else if (strcmp (kv, "ro") == 0 || strcmp (kv, "readonly") == 0)
        m->rw = strcmp (val, "true") != 0, known = true;
      else if (strcmp (kv, "required") == 0)
        m->required = strcmp (val, "false") != 0, known = true;
      if (!known)
        return unknown_mount_key (r, kv, val, eq != NULL, err);
    }
  if (parse_mount_ids (r, m, err) < 0)
    return -1;
  if (!m->type)
    m->type = kiln_xstrdup ("bind");
  /* BuildKit commands_runmount.go: the type is case-insensitive */
  for (char *c = m->type; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  static const char *const types[] = { "bind", "cache", "tmpfs", "secret", "ssh", NULL };
  bool known_type = false;
  for (size_t i = 0; types[i]; i++)
    known_type = known_type || strcmp (m->type, types[i]) == 0;
  if (!known_type)
    {
      kiln_autofree char *hint = kiln_suggest (m->type, strlen (m->type), types, true);
      kiln_error_set (err, 0, KILN_E_PARSE, "--mount: unsupported mount type \"%s\"%s", m->type, hint ? hint : "");
      return kiln_build_step_error (r->b, r->in, err);
    }
  if (!m->target && strcmp (m->type, "secret") != 0)
    return kiln_build_run_fail (r, err, "--mount: `target` is required for type=%s", m->type);
  return 0;
}

void
kiln_build_run_add_mount (struct run_job *r, enum kiln_sandbox_mount_type type, const char *source, const char *target,
                          bool readonly, const char *options)
{
  r->mounts = kiln_xrealloc (r->mounts, (r->nmounts + 1) * sizeof *r->mounts);
  r->mounts[r->nmounts++] = (struct kiln_sandbox_mount){
    .type = type, .source = source, .target = target, .readonly = readonly, .options = options
  };
}

/* The stage or image a mount names with from= (an image is loaded into tmp,
 * which one RUN reuses for each such mount: an earlier mount keeps its path,
 * the view's dir lives until the build ends). */
static int
from_stage (struct run_job *r, struct build_stage *tmp, const char *from, struct build_stage **out,
            struct kiln_error **err)
{
  long idx = kiln_plan_find_stage (r->b->plan, from);
  if (idx >= 0)
    {
      /* never an empty mount for a stage the plan missed */
      if (!r->b->stages[idx].built)
        return kiln_error_set (err, 0, KILN_E_INTERNAL, "stage `%s` was not built before its use", from);
      *out = &r->b->stages[idx];
      return 0;
    }
  kiln_build_stage_clear (tmp);
  if (kiln_build_load_image (r->b, tmp, from, err) < 0)
    return -1;
  *out = tmp;
  return 0;
}

static int
from_root (struct run_job *r, struct build_stage *tmp, const char *from, struct build_stage **out,
           struct kiln_error **err)
{
  if (from_stage (r, tmp, from, out, err) < 0)
    return -1;
  return kiln_build_stage_rootfs (r->b, *out, err);
}

/* A cache mount with from=: BuildKit (solver/llbsolver/mounts/mount.go
 * getRefCacheDir) keys the cache by its id and the from= snapshot and makes
 * a new cache a copy of that snapshot, whose source= path is mounted; an
 * existing cache is reused as it is, never re-seeded.  kiln copies only the
 * source path, into scratch space, and renames it into place, so a cache
 * is either absent or completely seeded. */
static int
seed_cache (struct run_job *r, struct build_stage *from, const struct mount_spec *m, const char *hex,
            struct kiln_error **err)
{
  int store = kiln_store_dirfd (r->b->st);
  kiln_autofree char *rel = kiln_xasprintf ("cache/mounts/%s", hex);
  kiln_autoerror struct kiln_error *absent = NULL;
  kiln_autoclose int have = kiln_fs_open_beneath (store, rel, O_PATH | O_DIRECTORY, 0, &absent);
  if (have >= 0)
    return 0;
  int rootfd = kiln_build_stage_rootfs (r->b, from, err);
  if (rootfd < 0)
    return -1;
  const char *source = m->source ? m->source : "/";
  kiln_autoclose int sfd = kiln_fs_open_in_root (rootfd, source, O_RDONLY | O_DIRECTORY, 0, err);
  if (sfd < 0)
    return kiln_error_wrap (err, "cache mount source `%s` from `%s`", source, m->from);
  int tmpfd;
  if (kiln_build_tmpdir (r->b, &tmpfd, NULL, err) < 0)
    return -1;
  kiln_autoclose int scratch = tmpfd;
  kiln_autoclose int mounts = kiln_fs_mkdir_p_beneath (store, "cache/mounts", 0755, err);
  if (mounts < 0 || kiln_fs_copy_tree (sfd, scratch, "seed", err) < 0)
    return kiln_error_wrap (err, "seed cache mount `%s` from `%s`", m->target, m->from);
  /* another build seeding the same cache first is fine: its copy is equal */
  if (renameat (scratch, "seed", mounts, hex) < 0 && errno != EEXIST && errno != ENOTEMPTY)
    return kiln_error_set (err, errno, KILN_E_IO, "seed cache mount `%s`", m->target);
  return 0;
}

/* The cache's directory name: the id (default: the target), and with from=
 * the from= stage's key and the source path. */
static void
cache_name (const struct mount_spec *m, const struct build_stage *from, struct kiln_digest *id, char **what)
{
  const char *name = m->id ? m->id : m->target;
  kiln_autofree char *src = kiln_fs_path_clean (m->source ? m->source : "/");
  if (!m->from)
    {
      kiln_digest_of (name, strlen (name), id);
      *what = kiln_xstrdup (m->target);
      return;
    }
  kiln_autofree char *full = kiln_xasprintf ("%s\nfrom %s\nsource /%s", name, from->key.s, src);
  kiln_digest_of (full, strlen (full), id);
  *what = kiln_xasprintf ("%s from %s /%s", m->target, from->key.s, src);
}

/* A cache mount: a directory of the store that outlives builds and enters no
 * layer; its content enters no key (with from=, the from= stage's key does). */
static int
mount_cache (struct run_job *r, struct build_stage *tmp, const struct mount_spec *m, struct kiln_error **err)
{
  struct kiln_digest id;
  kiln_autofree char *what = NULL;
  const char *name = m->id ? m->id : m->target;
  struct build_stage *from = NULL;
  if (m->from && from_stage (r, tmp, m->from, &from, err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  cache_name (m, from, &id, &what);
  if (from && seed_cache (r, from, m, kiln_digest_hex (&id), err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  kiln_autofree char *rel = kiln_xasprintf ("cache/mounts/%s", kiln_digest_hex (&id));
  kiln_autoclose int fd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (r->b->st), rel, 0755, err);
  if (fd < 0)
    return kiln_build_step_error (r->b, r->in, err);
  kiln_autoclose int dfd = kiln_fs_open_beneath (kiln_store_dirfd (r->b->st), rel, O_RDONLY | O_DIRECTORY, 0, err);
  if (dfd < 0)
    return kiln_build_step_error (r->b, r->in, err);
  struct stat st;
  /* uid/gid/mode apply when the cache directory is new (still root-owned and
   * empty-handed); BuildKit ignores them on a cache with a source path */
  if (!m->from && fstat (dfd, &st) == 0 && st.st_nlink == 2 && (m->uid || m->gid || m->mode))
    {
      if (fchown (dfd, m->uid_v, m->gid_v) < 0 || (m->mode && fchmod (dfd, (mode_t) (m->mode_v & 07777)) < 0))
        kiln_log_warn ("cache mount `%s`: could not set owner or mode: %s", name, strerror (errno));
    }
  if (m->sharing && strcmp (m->sharing, "locked") == 0)
    {
      int lfd = dup (dfd);
      if (lfd < 0 || flock (lfd, LOCK_EX) < 0)
        return kiln_error_set (err, errno, KILN_E_IO, "lock cache mount `%s`", name);
      r->locks = kiln_xrealloc (r->locks, (r->nlocks + 1) * sizeof (int));
      r->locks[r->nlocks++] = lfd;
    }
  const char *src = kiln_build_run_keep (r, kiln_xasprintf ("%s/%s", kiln_store_root (r->b->st), rel));
  kiln_build_run_add_mount (r, KILN_SANDBOX_BIND, src, kiln_build_run_keep (r, kiln_xstrdup (m->target)), false, NULL);
  kiln_build_run_input (r, "mount cache", what);
  return 0;
}

/* BuildKit dispatchSecret (frontend/dockerfile/dockerfile2llb/convert_secrets.go):
 * the id is id=, else source=, else basename(target); without env= the
 * secret is a file at target (default /run/secrets/<id>); env= alone makes it
 * only an environment variable; env= with a target gives both. */
static int
secret_id (struct run_job *r, const struct mount_spec *m, const char **id, struct kiln_error **err)
{
  /* instructions/commands_runmount.go validateMount */
  if (m->from)
    return kiln_build_run_fail (r, err, "secret mount should not have a from%s", NULL);
  if (m->sharing)
    return kiln_build_run_fail (r, err, "secret mount should not define sharing%s", NULL);
  if (m->source && m->id)
    return kiln_build_run_fail (r, err, "secret mount: both source and id can't be set%s", NULL);
  *id = m->source ? m->source : m->id;
  if (*id && **id)
    return 0;
  kiln_autofree char *t = m->target ? kiln_fs_path_clean (m->target) : NULL;
  if (!t || !*t)
    return kiln_build_run_fail (r, err, "--mount=type=secret needs an id or a target%s", NULL);
  const char *slash = strrchr (t, '/');
  *id = kiln_build_run_keep (r, kiln_xstrdup (slash ? slash + 1 : t));
  return 0;
}

/* A secret: a read-only file (0400 root, or mode=, uid=, gid=) that exists
 * only on the sandbox's private tmpfs, and/or an env var of the process; its
 * value enters no key, layer, history, log or file of the store (only its
 * id enters the key). */
static int
mount_secret (struct run_job *r, const struct mount_spec *m, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf val = KILN_BUF_INIT;
  const char *id = NULL;
  if (secret_id (r, m, &id, err) < 0)
    return -1;
  int found = kiln_build_secret (r->b, id, &val, err);
  if (found < 0)
    return kiln_build_step_error (r->b, r->in, err);
  if (found == 0)
    return m->required ? kiln_build_run_fail (r, err, "secret `%s` is required but was not given with --secret", id)
                       : 0;
  kiln_build_run_input (r, "mount secret", id);
  if (m->env)
    kiln_strv_push_take (&r->env, kiln_xasprintf ("%s=%s", m->env, val.buf));
  if (m->env && !m->target)
    return 0;
  /* the target is kept by the job: the mount spec is freed before the run;
   * the default path uses the id's base name, as BuildKit does */
  const char *base = strrchr (id, '/') ? strrchr (id, '/') + 1 : id;
  const char *target = kiln_build_run_keep (r, m->target ? kiln_xstrdup (m->target)
                                                         : kiln_xasprintf ("/run/secrets/%s", base));
  size_t len = val.len;
  kiln_build_run_add_mount (r, KILN_SANDBOX_DATA, NULL, target, true, NULL);
  struct kiln_sandbox_mount *sm = &r->mounts[r->nmounts - 1];
  sm->data = kiln_build_run_keep (r, kiln_buf_detach (&val, NULL));
  sm->len = len;
  sm->mode = m->mode ? (mode_t) (m->mode_v & 07777) : 0400;
  sm->uid = m->uid_v;
  sm->gid = m->gid_v;
  return 0;
}

/* rw bind: writes land in a throwaway place, never in the source (BuildKit:
 * "written data will be discarded").  A directory gets an overlay with the
 * source as its lower; a file is copied into scratch space. */
static int
writable_copy (struct run_job *r, int srcfd, const char **source, struct kiln_error **err)
{
  struct stat st;
  if (fstat (srcfd, &st) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "stat bind source");
  if (S_ISDIR (st.st_mode))
    {
      char *lowers[] = { (char *) *source, NULL };
      struct kiln_mount *mnt = NULL;
      if (kiln_snapshot_mount (r->b->st, lowers, NULL, &mnt, err) < 0)
        return -1;
      r->rw = kiln_xrealloc (r->rw, (r->nrw + 1) * sizeof *r->rw);
      r->rw[r->nrw++] = mnt;
      *source = mnt->merged;
      return 0;
    }
  int tmpfd;
  char *dirpath = NULL;
  if (kiln_build_tmpdir (r->b, &tmpfd, &dirpath, err) < 0)
    return -1;
  kiln_build_run_keep (r, dirpath);
  kiln_autoclose int dir = tmpfd;
  kiln_autoclose int in = open (*source, O_RDONLY | O_CLOEXEC);
  kiln_autoclose int out = openat (dir, "file", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (in < 0 || out < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "copy bind source `%s`", *source);
  if (kiln_fs_copy_data (in, out, (uint64_t) st.st_size, err) < 0)
    return kiln_error_wrap (err, "copy bind source `%s`", *source);
  *source = kiln_build_run_keep (r, kiln_xasprintf ("%s/file", dirpath));
  return 0;
}

/* A bind mount from the context or from a stage or image (read-only unless rw). */
static int
mount_bind (struct run_job *r, struct build_stage *tmp, const struct mount_spec *m, struct kiln_error **err)
{
  int rootfd = r->b->ctx_fd;
  const char *origin = NULL;
  struct build_stage *src = NULL;
  if (m->from)
    {
      rootfd = from_root (r, tmp, m->from, &src, err);
      if (rootfd < 0)
        return kiln_build_step_error (r->b, r->in, err);
      origin = kiln_build_run_keep (r, kiln_xasprintf ("from %s:", src->key.s));
    }
  const char *rel = m->source ? m->source : "/";
  struct kiln_digest d;
  if (kiln_build_tree_digest (r->b, r->s, rootfd, rel, !m->from, origin, &d, err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  /* the host path of the source, resolved inside its root */
  kiln_autoclose int fd = kiln_fs_open_in_root (rootfd, rel, O_PATH, 0, err);
  if (fd < 0)
    return kiln_build_step_error (r->b, r->in, err);
  char path[4096];
  kiln_autofree char *proc = kiln_xasprintf ("/proc/self/fd/%d", fd);
  ssize_t n = readlink (proc, path, sizeof path - 1);
  if (n < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "resolve bind source `%s`", rel);
  path[n] = '\0';
  const char *source = kiln_build_run_keep (r, kiln_xstrdup (path));
  if (m->rw && writable_copy (r, fd, &source, err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  kiln_build_run_add_mount (r, KILN_SANDBOX_BIND, source, kiln_build_run_keep (r, kiln_xstrdup (m->target)), !m->rw,
                            NULL);
  kiln_autofree char *what = kiln_xasprintf ("%s from %s %s", m->target, m->from ? m->from : "context", d.s);
  kiln_build_run_input (r, "mount bind", what);
  return 0;
}

int
kiln_build_run_parse_mounts (struct run_job *r, struct build_stage *tmp, struct kiln_error **err)
{
  for (size_t i = 0; i < r->in->nflags; i++)
    {
      const struct kiln_df_flag *f = &r->in->flags[i];
      struct mount_spec m = { 0 };
      kiln_autofree char *spec = NULL;
      struct step_env e = { r->b, r->s };
      int ret = 0;
      if (strcmp (f->name, "mount") != 0)
        continue;
      if (!f->value || kiln_expand_word (f->value, r->b->df->escape, kiln_build_lookup, &e, &spec, err) < 0)
        return f->value ? kiln_build_step_error (r->b, r->in, err)
                        : kiln_build_run_fail (r, err, "--mount needs a value%s", NULL);
      if (parse_mount_spec (r, spec, &m, err) < 0)
        ret = -1;
      else if (strcmp (m.type, "cache") == 0)
        ret = mount_cache (r, tmp, &m, err);
      else if (strcmp (m.type, "secret") == 0)
        ret = mount_secret (r, &m, err);
      else if (strcmp (m.type, "bind") == 0)
        ret = mount_bind (r, tmp, &m, err);
      else if (strcmp (m.type, "tmpfs") == 0)
        {
          const char *opt = m.size ? kiln_build_run_keep (r, kiln_xasprintf ("size=%s", m.size)) : NULL;
          kiln_build_run_add_mount (r, KILN_SANDBOX_TMPFS, NULL, kiln_build_run_keep (r, kiln_xstrdup (m.target)),
                                    false, opt);
          kiln_build_run_input (r, "mount tmpfs", m.target);
        }
      else
        ret = kiln_build_run_fail (r, err, "--mount type `%s` is not supported", m.type);
      mount_spec_clear (&m);
      if (ret < 0)
        return -1;
    }
  return 0;
}

int
kiln_build_secret (struct build *b, const char *id, struct kiln_buf *out, struct kiln_error **err)
{
  const char *how = kiln_kvlist_get (&b->o->secrets, id);
  if (!how)
    return 0;
  if (kiln_str_has_prefix (how, "env="))
    {
      const char *v = getenv (how + 4);
      if (!v)
        return 0;
      kiln_buf_adds (out, v);
      return 1;
    }
  if (kiln_fs_read_file (AT_FDCWD, how + 4, 1u << 20, out, err) < 0)
    return kiln_error_wrap (err, "read secret `%s`", id);
  return 1;
}
