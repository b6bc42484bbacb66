/* build_exec.c - the RUN op: its inputs (command, environment, network,
 * mounts: build_exec_mounts.c), then an overlay over the stage's snapshots,
 * the command in the sandbox, the upper dir streamed into a layer. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "build_exec-internal.h"
#include "kiln/toc.h"
#include "kiln/cleanup.h"
#include "kiln/diff.h"
#include "kiln/expand.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/passwd.h"
#include "kiln/sandbox.h"
#include "kiln/snapshot.h"
#include "kiln/util.h"

/* Build args a RUN sees without declaring them, kept out of keys and
 * history.  BuildKit proxyEnvFromBuildArgs takes each in any case (over the
 * sorted names, so `http_proxy` wins over `HTTP_PROXY`) and the executor
 * sets both spellings (solver/llbsolver/ops/exec.go proxyEnvList). */
static const char *const proxy_args[] = { "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy", NULL };

int
kiln_build_run_fail (struct run_job *r, struct kiln_error **err, const char *fmt, const char *arg)
{
  kiln_error_set (err, 0, KILN_E_PARSE, fmt, arg ? arg : "");
  return kiln_build_step_error (r->b, r->in, err);
}

const char *
kiln_build_run_keep (struct run_job *r, char *s)
{
  kiln_strv_push_take (&r->strings, s);
  return s;
}

void
kiln_build_run_input (struct run_job *r, const char *name, const char *value)
{
  kiln_build_step_input (&r->s->step, name, value);
}

/* A lone `<<EOF` whose body starts with `#!` is a script run by its own
 * interpreter: BuildKit dispatchRun writes it as an executable file under a
 * read-only /dev/pipes/ and runs that path through the shell.  The body is
 * part of the key (the command line names only the path). */
static bool
shebang_script (struct run_job *r, struct kiln_buf *cmd)
{
  const struct kiln_df_heredoc *h = &r->in->heredocs[0];
  if (strncmp (h->content, "#!", 2) != 0)
    return false;
  const char *target = kiln_build_run_keep (r, kiln_xasprintf ("/dev/pipes/%s", h->name));
  kiln_build_run_add_mount (r, KILN_SANDBOX_DATA, NULL, target, true, NULL);
  struct kiln_sandbox_mount *sm = &r->mounts[r->nmounts - 1];
  sm->data = h->content;
  sm->len = strlen (h->content);
  sm->mode = 0755;
  kiln_build_run_input (r, "heredoc script", h->content);
  kiln_buf_adds (cmd, target);
  return true;
}

/* Shell form through SHELL; heredocs are handed to the shell, which knows
 * them: a lone `<<EOF` is the script itself. */
static void
command (struct run_job *r)
{
  const struct kiln_df_instr *in = r->in;
  const struct kiln_image_config *c = &r->s->cfg;
  if (in->json)
    {
      r->argv = kiln_strv_dup (in->argv);
      return;
    }
  struct kiln_buf cmd = KILN_BUF_INIT;
  const char *a = in->args;
  bool only_heredoc = in->nheredocs == 1 && a[0] == '<' && a[1] == '<' && !strpbrk (a, " \t");
  if (only_heredoc && !shebang_script (r, &cmd))
    kiln_buf_adds (&cmd, in->heredocs[0].content);
  else
    {
      kiln_buf_adds (&cmd, a);
      for (size_t i = 0; i < in->nheredocs; i++)
        kiln_buf_addf (&cmd, "\n%s%s", in->heredocs[i].content, in->heredocs[i].name);
    }
  if (c->shell && c->shell[0])
    r->argv = kiln_strv_dup (c->shell);
  else
    {
      kiln_strv_push (&r->argv, "/bin/sh");
      kiln_strv_push (&r->argv, "-c");
    }
  kiln_strv_push_take (&r->argv, kiln_buf_detach (&cmd, NULL));
}

static bool
env_has (char *const *env, const char *key)
{
  size_t n = strlen (key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp (env[i], key, n) == 0 && env[i][n] == '=')
      return true;
  return false;
}

/* The image's ENV, then the stage's ARGs with a value, then proxy build
 * args.  An ARG in s->args was set after any ENV of its name (an ENV drops
 * it, build.c lookup), and replaces it as in BuildKit, whose ENV and ARG
 * share one environment where the later wins. */
static void
environment (struct run_job *r)
{
  r->env = kiln_strv_dup (r->s->cfg.env);
  if (!env_has (r->env, "PATH"))
    kiln_strv_push (&r->env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (size_t i = 0; i < r->s->args.n; i++)
    {
      const struct kiln_kv *a = &r->s->args.items[i];
      size_t n = strlen (a->key), k = 0;
      while (r->env[k] && !(strncmp (r->env[k], a->key, n) == 0 && r->env[k][n] == '='))
        k++;
      if (r->env[k])
        {
          free (r->env[k]);
          r->env[k] = kiln_xasprintf ("%s=%s", a->key, a->value);
        }
      else
        kiln_strv_push_take (&r->env, kiln_xasprintf ("%s=%s", a->key, a->value));
    }
  for (size_t i = 0; r->env[i]; i++)
    {
      /* named by the variable, so a miss names what changed */
      kiln_autofree char *name = kiln_xasprintf ("env %.*s", (int) strcspn (r->env[i], "="), r->env[i]);
      kiln_build_run_input (r, name, r->env[i] + strcspn (r->env[i], "="));
    }
  for (size_t i = 0; proxy_args[i]; i++)
    {
      const struct kiln_kvlist *ba = &r->b->plan->build_args;
      const char *key = NULL, *v = NULL;
      for (size_t k = 0; k < ba->n; k++)
        if (strcasecmp (ba->items[k].key, proxy_args[i]) == 0 && (!key || strcmp (ba->items[k].key, key) > 0))
          key = ba->items[k].key, v = ba->items[k].value;
      if (!v || !*v)
        continue;
      kiln_autofree char *upper = kiln_xstrdup (proxy_args[i]);
      for (char *c = upper; *c; c++)
        *c = (char) toupper ((unsigned char) *c);
      if (!env_has (r->env, upper))
        kiln_strv_push_take (&r->env, kiln_xasprintf ("%s=%s", upper, v));
      if (!env_has (r->env, proxy_args[i]))
        kiln_strv_push_take (&r->env, kiln_xasprintf ("%s=%s", proxy_args[i], v));
    }
}

static int
parse_network (struct run_job *r, struct kiln_error **err)
{
  const char *net = kiln_df_instr_flag (r->in, "network", NULL);
  const char *sec = kiln_df_instr_flag (r->in, "security", NULL);
  if (sec && strcmp (sec, "sandbox") != 0)
    {
      kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "--security=%s is not supported", sec);
      return kiln_build_step_error (r->b, r->in, err);
    }
  if (net && strcmp (net, "none") != 0 && strcmp (net, "host") != 0 && strcmp (net, "default") != 0)
    return kiln_build_run_fail (r, err, "--network must be none, host or default, not `%s`", net);
  /* default: what `kiln build --network` chose (host unless none) */
  if (net == NULL || strcmp (net, "default") == 0)
    r->network_none = r->b->o->network_none;
  else
    r->network_none = strcmp (net, "none") == 0;
  kiln_build_run_input (r, "network", r->network_none ? "none" : "host");
  return 0;
}

/* --ulimit and --shm-size: inputs of the step only when given (BuildKit
 * keys its Ulimit and ShmSize too). */
static void
limits_input (struct run_job *r)
{
  const struct kiln_build_opts *o = r->b->o;
  if (o->nulimits)
    {
      struct kiln_buf v = KILN_BUF_INIT;
      for (size_t i = 0; i < o->nulimits; i++)
        kiln_buf_addf (&v, "%s%s=%llu:%llu", i ? "," : "", o->ulimits[i].name, o->ulimits[i].soft, o->ulimits[i].hard);
      kiln_build_run_input (r, "ulimit", v.buf);
      kiln_buf_release (&v);
    }
  if (o->shm_size)
    {
      char v[32];
      snprintf (v, sizeof v, "%llu", o->shm_size);
      kiln_build_run_input (r, "shm-size", v);
    }
}

/* --add-host: the host's /etc/hosts and the build's entries after it; an
 * input of the step (BuildKit keys its ExtraHosts too), only when given,
 * so steps of builds without it keep their keys. */
static int
extra_hosts (struct run_job *r, struct kiln_error **err)
{
  char **add = r->b->o->add_hosts;
  if (add == NULL || add[0] == NULL)
    return 0;
  struct kiln_buf hosts = KILN_BUF_INIT, key = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_fs_read_file (AT_FDCWD, "/etc/hosts", 1u << 20, &hosts, &e) < 0 && e->errnum != ENOENT)
    {
      kiln_buf_release (&hosts);
      *err = kiln_steal_ptr (&e);
      return kiln_error_wrap (err, "read the host's /etc/hosts for --add-host");
    }
  if (hosts.len && hosts.buf[hosts.len - 1] != '\n')
    kiln_buf_add (&hosts, "\n", 1);
  for (size_t i = 0; add[i]; i++)
    {
      kiln_buf_addf (&hosts, "%s\n", add[i]);
      kiln_buf_addf (&key, "%s%s", i ? "," : "", add[i]);
    }
  kiln_build_run_input (r, "add-host", key.buf);
  kiln_buf_release (&key);
  r->hosts = kiln_buf_detach (&hosts, NULL);
  return 0;
}

/* The last output of a step, kept for its failure report: the last
 * TAIL_BYTES bytes of the stream, of which the last TAIL_LINES lines are
 * shown.  Bounded, so a chatty step costs no memory. */
#define TAIL_BYTES 16384
#define TAIL_LINES 40

struct tail {
  char buf[TAIL_BYTES];
  size_t end, len; /* ring: next write position, bytes held */
};

static void
tail_add (struct tail *t, const char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      t->buf[t->end] = p[i];
      t->end = (t->end + 1) % TAIL_BYTES;
      if (t->len < TAIL_BYTES)
        t->len++;
    }
}

/* Writes the held lines (the last TAIL_LINES; a line the ring cut is
 * dropped unless it is the only one) to fd. */
static void
tail_write (const struct tail *t, int fd)
{
  char lin[TAIL_BYTES];
  size_t n = t->len, from = 0, lines = 0;
  for (size_t i = 0; i < n; i++)
    lin[i] = t->buf[(t->end + TAIL_BYTES - n + i) % TAIL_BYTES];
  const char *nl = n == TAIL_BYTES ? memchr (lin, '\n', n - 1) : NULL;
  if (nl)
    from = (size_t) (nl - lin) + 1;
  for (size_t i = n; i-- > from;)
    if (lin[i] == '\n' && i + 1 < n && ++lines == TAIL_LINES)
      {
        from = i + 1;
        break;
      }
  for (size_t done = from; done < n;)
    {
      ssize_t w = write (fd, lin + done, n - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        break;
      done += (size_t) w;
    }
}

/* Copies the step's output to the progress stream, each line prefixed, and
 * keeps its tail for tailfd.  A thread, not a forked process: stages run at
 * once, and a process forked by one stage would hold the write end of
 * another stage's pipe, so neither relay would ever see its end of output. */
struct relay {
  int fd, tailfd;
  FILE *out;
  const char *prefix;
  pthread_t th;
};

static void *
relay_main (void *arg)
{
  struct relay *rl = arg;
  char buf[8192];
  struct tail *t = kiln_xcalloc (1, sizeof *t);
  bool bol = true;
  ssize_t n;
  while ((n = read (rl->fd, buf, sizeof buf)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      tail_add (t, buf, (size_t) n);
      if (!rl->out)
        continue;
      flockfile (rl->out); /* a line of another stage does not cut into this chunk */
      for (ssize_t i = 0; i < n; i++)
        {
          if (bol)
            fputs_unlocked (rl->prefix, rl->out);
          fputc_unlocked (buf[i], rl->out);
          bol = buf[i] == '\n';
        }
      fflush_unlocked (rl->out);
      funlockfile (rl->out);
    }
  if (rl->out && !bol)
    {
      fputc ('\n', rl->out);
      fflush (rl->out);
    }
  if (rl->tailfd >= 0)
    tail_write (t, rl->tailfd);
  free (t);
  return NULL;
}

/* A failed step's last output lines, framed as BuildKit frames them above
 * the error, in every progress mode: with --progress=quiet this is the only
 * place the output shows, with plain it repeats what scrolled by. */
static void
print_failure_output (struct run_job *r, int tailfd)
{
  FILE *out = r->b->o->progress_out;
  kiln_autobuf struct kiln_buf t = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  if (!out || tailfd < 0 || lseek (tailfd, 0, SEEK_SET) < 0 || kiln_fs_read_fd (tailfd, TAIL_BYTES, &t, &e) < 0)
    return;
  kiln_autofree char *label = kiln_build_step_label (r->b, r->s);
  fprintf (out, "------\n > %s %s:\n", label, r->in->original);
  fwrite (t.buf, 1, t.len, out);
  fputs (t.len && t.buf[t.len - 1] != '\n' ? "\n------\n" : "------\n", out);
  fflush (out);
}

static int
resolve_user (struct run_job *r, const char *merged, struct kiln_passwd_ids *ids, struct kiln_error **err)
{
  const char *user = r->s->cfg.user && *r->s->cfg.user ? r->s->cfg.user : "0";
  kiln_autoclose int rootfd = open (merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", merged);
  if (kiln_passwd_resolve (rootfd, user, false, true, ids, err) < 0)
    return kiln_error_wrap (err, "USER `%s`", user);
  return 0;
}

/* mkdir -p of p inside rootfd; p itself, when it did not exist, gets owner. */
static int
owned_step (int rootfd, const char *p, const struct kiln_build_owner *owner, struct kiln_error **err)
{
  struct kiln_error *probe_err = NULL;
  int probe = kiln_fs_open_in_root (rootfd, p, O_PATH | O_CLOEXEC, 0, &probe_err);
  bool made = probe < 0 && probe_err->kind == KILN_E_NOTFOUND;
  if (probe >= 0)
    close (probe);
  kiln_error_free (&probe_err);
  kiln_autoclose int fd = kiln_fs_mkdir_p_in_root (rootfd, p, 0755, err);
  if (fd < 0)
    return -1;
  if (made && (owner->uid || owner->gid) && fchownat (fd, "", owner->uid, owner->gid, AT_EMPTY_PATH) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "chown `%s`", p);
  return 0;
}

/* The directories of dir (resolved, inside rootfd) that do not exist yet are
 * made 0755 and given to owner, as BuildKit's MkdirAll with a user does;
 * existing ones are left alone. */
static int
mkdir_owned (int rootfd, const char *dir, const struct kiln_build_owner *owner, struct kiln_error **err)
{
  kiln_autofree char *p = kiln_xstrdup (dir);
  for (char *c = p;; c++)
    {
      char saved = *c;
      if (saved != '/' && saved != '\0')
        continue;
      *c = '\0';
      if (*p && owned_step (rootfd, p, owner, err) < 0)
        return -1;
      *c = saved;
      if (!saved)
        break;
    }
  return 0;
}

/* WORKDIRs recorded since the last layer are created now, in this layer. */
static int
make_pending_dirs (struct run_job *r, const char *merged, struct kiln_error **err)
{
  if (!r->s->pending_dirs)
    return 0;
  kiln_autoclose int rootfd = open (merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", merged);
  /* symlinks on the way are followed inside the root, a dangling one too
   * (its target is made), as BuildKit does: resolve against the image's view */
  struct kiln_tocview *v = kiln_build_stage_view (r->b, r->s, err);
  if (!v)
    return -1;
  for (size_t i = 0; r->s->pending_dirs && r->s->pending_dirs[i]; i++)
    {
      kiln_autofree char *dir = NULL;
      if (kiln_tocview_resolve (v, r->s->pending_dirs[i], true, &dir, err) < 0)
        return -1;
      if (kiln_build_owner_resolve (r->b, r->s, &r->s->pending_owners[i], rootfd, err) < 0
          || mkdir_owned (rootfd, dir, &r->s->pending_owners[i], err) < 0)
        return -1;
    }
  return 0;
}

/* Runs the command; tailfd (may be -1) receives the tail of its output. */
static int
execute (struct run_job *r, const struct kiln_mount *mnt, char ***created, int *status, int tailfd,
         struct kiln_error **err)
{
  struct kiln_passwd_ids ids = { 0 };
  int pipefd[2] = { -1, -1 };
  bool plain = r->b->o->progress == KILN_PROGRESS_PLAIN && r->b->o->progress_out;
  kiln_autofree char *label = kiln_build_step_label (r->b, r->s);
  kiln_autofree char *prefix = kiln_xasprintf ("%s | ", label);
  /* the image's /etc/passwd may be malformed: name the step that read it */
  if (make_pending_dirs (r, mnt->merged, err) < 0 || resolve_user (r, mnt->merged, &ids, err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return kiln_passwd_ids_clear (&ids), kiln_error_set (err, errno, KILN_E_IO, "pipe");
  struct relay rl = {
    .fd = pipefd[0], .tailfd = tailfd, .out = plain ? r->b->o->progress_out : NULL, .prefix = prefix
  };
  int e = pthread_create (&rl.th, NULL, relay_main, &rl);
  if (e != 0)
    {
      close (pipefd[0]), close (pipefd[1]), kiln_passwd_ids_clear (&ids);
      return kiln_error_set (err, e, KILN_E_INTERNAL, "start the thread that relays the step's output");
    }
  struct kiln_sandbox_opts so = {
    .rootfs = mnt->merged,
    .argv = r->argv,
    .env = r->env,
    .cwd = r->s->cfg.working_dir,
    .uid = ids.uid,
    .gid = ids.gid,
    .groups = ids.groups,
    .ngroups = ids.ngroups,
    .network_none = r->network_none,
    .hostname = "kiln",
    .hosts = r->hosts,
    .rlimits = r->b->o->ulimits,
    .nrlimits = r->b->o->nulimits,
    .shm_size = r->b->o->shm_size,
    .mounts = r->mounts,
    .nmounts = r->nmounts,
    .stdin_fd = -1,
    .stdout_fd = pipefd[1],
    .stderr_fd = pipefd[1],
    .created = created,
  };
  int ret = kiln_sandbox_run (&so, status, err);
  close (pipefd[1]); /* the sandbox has exited: the relay reads to the end */
  pthread_join (rl.th, NULL);
  close (pipefd[0]);
  kiln_passwd_ids_clear (&ids);
  return ret;
}

static void
run_job_clear (struct run_job *r)
{
  for (size_t i = 0; i < r->nrw; i++)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      if (kiln_snapshot_unmount (r->rw[i], &e) < 0 || kiln_snapshot_cleanup (r->b->st, r->rw[i], &e) < 0)
        kiln_log_warn ("clean up a rw bind mount: %s", e->msg);
    }
  free (r->rw);
  for (size_t i = 0; i < r->nlocks; i++)
    close (r->locks[i]);
  free (r->locks);
  kiln_strv_free (r->argv);
  kiln_strv_free (r->env);
  kiln_strv_free (r->strings);
  free (r->mounts);
  free (r->hosts);
}

/* The inputs that follow from the stage rather than from the instruction. */
static void
stage_inputs (struct run_job *r)
{
  const struct kiln_layer_opts *lo = &r->b->o->layer;
  kiln_build_run_input (r, "layer format", kiln_compression_media_type (lo->compression));
  for (size_t i = 0; r->argv[i]; i++)
    {
      kiln_autofree char *name = kiln_xasprintf ("argv[%zu]", i);
      kiln_build_run_input (r, name, r->argv[i]);
    }
  kiln_build_run_input (r, "user", r->s->cfg.user);
  kiln_build_run_input (r, "workdir", r->s->cfg.working_dir);
  for (size_t i = 0; r->s->pending_dirs && r->s->pending_dirs[i]; i++)
    {
      kiln_autofree char *owned = kiln_xasprintf ("%s %s", r->s->pending_dirs[i], r->s->pending_owners[i].user);
      kiln_build_run_input (r, "mkdir", owned);
    }
}

/* Mounts the step's root, runs it, turns the upper dir into a layer. */
static int
run_and_diff (struct run_job *r, struct kiln_error **err)
{
  struct build_stage *s = r->s;
  kiln_autostrv char **lowers = NULL, **created = NULL;
  struct kiln_mount *mnt = NULL;
  struct kiln_layer_result lr = { 0 };
  kiln_autoerror struct kiln_error *cleanup_err = NULL;
  int status = 0, ret = -1;
  /* the upper dir becomes the new layer's snapshot: nothing to delete now,
   * nothing to extract when a later step builds on the layer */
  bool keep = true;
  kiln_autoclose int tailfd = memfd_create ("kiln-run-output", MFD_CLOEXEC);
  if (kiln_snapshot_prepare_with (r->b->st, s->layers, s->cfg.diff_ids, s->nlayers, kiln_build_materialize, r->b,
                                  &lowers, err)
          < 0
      || kiln_snapshot_mount (r->b->st, lowers, NULL, &mnt, err) < 0)
    return kiln_build_step_error (r->b, r->in, err);
  if (execute (r, mnt, &created, &status, tailfd, err) < 0)
    goto out;
  if (status != 0)
    {
      /* a step killed because another stage failed is not the failure to show */
      if (!__atomic_load_n (&r->b->cancel, __ATOMIC_SEQ_CST))
        print_failure_output (r, tailfd);
      kiln_error_set (err, 0, KILN_E_INTERNAL, "%s:%d: %s: exited with status %d", r->b->df->name, r->in->line,
                      r->in->original, status);
      goto out;
    }
  if (kiln_snapshot_unmount (mnt, err) < 0
      || kiln_diff_write_layer (r->b->st, mnt, &r->b->o->layer, created, &keep, &lr, err) < 0)
    {
      kiln_build_step_error (r->b, r->in, err);
      goto out;
    }
  free (s->clock);
  s->clock = kiln_xstrdup (r->b->created);
  kiln_build_add_layer (r->b, s, &lr, r->in->original);
  kiln_layer_result_clear (&lr);
  if (keep && kiln_snapshot_keep_upper (r->b->st, mnt, s->cfg.diff_ids, s->nlayers, &cleanup_err) < 0)
    {
      kiln_log_warn ("keep the snapshot of `%s`: %s", r->in->original, cleanup_err->msg);
      kiln_error_free (&cleanup_err);
    }
  ret = 0;
out:
  if (mnt && kiln_snapshot_cleanup (r->b->st, mnt, &cleanup_err) < 0)
    kiln_log_warn ("clean up after `%s`: %s", r->in->original, cleanup_err->msg);
  return ret;
}

/* ---- the RUN op ---- */

struct run_op {
  struct run_job r;
  struct build_stage tmp; /* an image a --mount from= names */
};

/* Everything the command sees enters the key: the instruction, its argv
 * and environment (proxy args excepted), network, mounts (a bind mount's
 * files by their tree digest), user, workdir and the WORKDIRs it makes. */
static int
run_prepare (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  struct run_op *op = st->state;
  struct run_job *r = &op->r;
  *r = (struct run_job){ .b = b, .s = s, .in = st->in };
  op->tmp.rootfs_fd = -1;
  kiln_build_run_input (r, "instruction", st->in->original);
  command (r);
  environment (r);
  limits_input (r);
  if (parse_network (r, err) < 0 || extra_hosts (r, err) < 0 || kiln_build_run_parse_mounts (r, &op->tmp, err) < 0)
    return -1;
  stage_inputs (r);
  return BUILD_KEY_READY;
}

static int
run_exec (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  (void) b, (void) s;
  struct run_op *op = st->state;
  return run_and_diff (&op->r, err);
}

static void
run_clear (struct build_step *st)
{
  struct run_op *op = st->state;
  if (op->r.b)
    run_job_clear (&op->r);
  kiln_build_stage_clear (&op->tmp);
}

const struct build_op kiln_build_op_run = { .name = "RUN",
                                            .layer = true,
                                            .size = sizeof (struct run_op),
                                            .prepare = run_prepare,
                                            .exec = run_exec,
                                            .clear = run_clear };
