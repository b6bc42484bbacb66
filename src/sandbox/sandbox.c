/* sandbox.c - the parent side of kiln_sandbox_run: prepare the plan, clone the
 * namespace init, collect its reports, wait. */
#include <errno.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sandbox-internal.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

#define ETC_MAX (1u << 20)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The pids of the running namespace inits.  This is global on purpose (the
 * one exception to "no global state" besides logging): a signal handler has
 * no other way to find them.  A slot is cleared before the child is reaped,
 * so kill_all never signals a recycled pid. */
static volatile sig_atomic_t running[KILN_SANDBOX_MAX_RUNNING];
/* Counts kill_all calls: a sandbox cloned while one ran has no slot yet for
 * it to find, so spawn compares the count from before its clone with the
 * count after its slot is claimed and kills its own child when they differ
 * (either kill_all's scan sees the slot or spawn sees the new count). */
static volatile sig_atomic_t kills;

void
kiln_sandbox_kill_all (void)
{
  __atomic_add_fetch (&kills, 1, __ATOMIC_SEQ_CST);
  for (size_t i = 0; i < KILN_SANDBOX_MAX_RUNNING; i++)
    {
      pid_t pid = __atomic_load_n (&running[i], __ATOMIC_SEQ_CST); /* lock-free: a signal handler calls this */
      if (pid > 0)
        kill (pid, SIGKILL);
    }
}

static int
slot_claim (pid_t pid)
{
  for (int i = 0; i < KILN_SANDBOX_MAX_RUNNING; i++)
    {
      sig_atomic_t zero = 0;
      if (__atomic_compare_exchange_n (&running[i], &zero, pid, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return i;
    }
  return -1;
}

static const struct {
  const char *name;
  int resource;
} rlimit_names[] = {
  { "core", RLIMIT_CORE },         { "cpu", RLIMIT_CPU },
  { "data", RLIMIT_DATA },         { "fsize", RLIMIT_FSIZE },
  { "locks", RLIMIT_LOCKS },       { "memlock", RLIMIT_MEMLOCK },
  { "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE },
  { "nofile", RLIMIT_NOFILE },     { "nproc", RLIMIT_NPROC },
  { "rss", RLIMIT_RSS },           { "rtprio", RLIMIT_RTPRIO },
  { "rttime", RLIMIT_RTTIME },     { "sigpending", RLIMIT_SIGPENDING },
  { "stack", RLIMIT_STACK },
};

/* One limit value: a decimal >= 0, or -1 for unlimited. */
static bool
rlimit_value (const char *s, size_t n, unsigned long long *out)
{
  char buf[32], *end;
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy (buf, s, n);
  buf[n] = '\0';
  if (strcmp (buf, "-1") == 0)
    {
      *out = (unsigned long long) RLIM_INFINITY;
      return true;
    }
  errno = 0;
  *out = strtoull (buf, &end, 10);
  return buf[0] != '-' && *end == '\0' && errno == 0;
}

int
kiln_sandbox_rlimit_parse (const char *spec, struct kiln_sandbox_rlimit *out, struct kiln_error **err)
{
  const char *eq = strchr (spec, '=');
  size_t nlen = eq ? (size_t) (eq - spec) : 0;
  int resource = -1;
  const char *name = NULL;
  for (size_t i = 0; eq && i < sizeof rlimit_names / sizeof *rlimit_names; i++)
    if (strlen (rlimit_names[i].name) == nlen && strncmp (rlimit_names[i].name, spec, nlen) == 0)
      resource = rlimit_names[i].resource, name = rlimit_names[i].name;
  if (resource < 0)
    return kiln_error_set (err, 0, KILN_E_USAGE,
                           "invalid ulimit `%s`: want NAME=SOFT[:HARD] with a NAME such as nofile", spec);
  const char *v = eq + 1, *colon = strchr (v, ':');
  size_t slen = colon ? (size_t) (colon - v) : strlen (v);
  if (!rlimit_value (v, slen, &out->soft)
      || !rlimit_value (colon ? colon + 1 : v, colon ? strlen (colon + 1) : slen, &out->hard))
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid ulimit `%s`: values are numbers, or -1 for unlimited", spec);
  if (out->soft > out->hard)
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid ulimit `%s`: the soft limit is above the hard one", spec);
  out->resource = resource;
  out->name = name;
  return 0;
}

long
kiln_sandbox_clone3 (unsigned long long flags)
{
  struct clone_args args = { .flags = flags, .exit_signal = SIGCHLD };
  return syscall (SYS_clone3, &args, sizeof args);
}

/* Reads the host's copy of an /etc file for the container (missing: empty). */
static int
read_host_etc (const char *path, char **out, size_t *len, struct kiln_error **err)
{
  struct kiln_buf b = KILN_BUF_INIT;
  if (kiln_fs_read_file (AT_FDCWD, path, ETC_MAX, &b, err) < 0)
    {
      if ((*err)->errnum != ENOENT)
        return kiln_buf_release (&b), -1;
      kiln_error_free (err);
    }
  *out = kiln_buf_detach (&b, len);
  return 0;
}

static const char *
env_path (char *const *env)
{
  for (size_t i = 0; env && env[i]; i++)
    if (kiln_str_has_prefix (env[i], "PATH="))
      return env[i] + 5;
  return DEFAULT_PATH;
}

struct prep {
  struct sb_plan plan;
  char *owned[SB_ETC_N];
  char *cwd;
};

static void
prep_clear (struct prep *pr)
{
  for (int i = 0; i < SB_ETC_N; i++)
    free (pr->owned[i]);
  kiln_strv_free (pr->plan.targets);
  free (pr->plan.target_dir);
  free (pr->cwd);
}

static int
prep_etc (struct prep *pr, const struct kiln_sandbox_opts *o, struct kiln_error **err)
{
  static const char *const host[SB_ETC_N] = { "/etc/hosts", "/etc/resolv.conf", "/etc/hostname" };
  const char *given[SB_ETC_N] = { o->hosts, o->resolv_conf, NULL };
  for (int i = 0; i < SB_ETC_N; i++)
    {
      pr->plan.etc_rel[i] = host[i] + 1;
      if (i == SB_ETC_HOSTNAME)
        {
          char name[256] = "";
          if (!o->hostname && gethostname (name, sizeof name - 1) < 0)
            return kiln_error_set (err, errno, KILN_E_IO, "get the host name");
          pr->owned[i] = kiln_xasprintf ("%s\n", o->hostname ? o->hostname : name);
          pr->plan.etc_len[i] = strlen (pr->owned[i]);
        }
      else if (given[i])
        {
          pr->owned[i] = kiln_xstrdup (given[i]);
          pr->plan.etc_len[i] = strlen (given[i]);
        }
      else if (read_host_etc (host[i], &pr->owned[i], &pr->plan.etc_len[i], err) < 0)
        return kiln_error_wrap (err, "copy the host's `%s`", host[i]);
      pr->plan.etc_data[i] = pr->owned[i];
    }
  return 0;
}

/* A bind's target has the type of its source; a tmpfs needs a directory,
 * a data mount a file. */
static int
prep_mounts (struct prep *pr, const struct kiln_sandbox_opts *o, struct kiln_error **err)
{
  pr->plan.target_dir = kiln_xcalloc (o->nmounts + 1, sizeof (bool));
  for (size_t i = 0; i < o->nmounts; i++)
    {
      const struct kiln_sandbox_mount *m = &o->mounts[i];
      kiln_autofree char *t = kiln_fs_path_clean (m->target ? m->target : "");
      if (!*t)
        return kiln_error_set (err, EINVAL, KILN_E_USAGE, "mount onto `%s`: not allowed on the root",
                               m->target ? m->target : "(null)");
      pr->plan.target_dir[i] = m->type != KILN_SANDBOX_DATA;
      if (m->type == KILN_SANDBOX_BIND)
        {
          struct stat st;
          if (!m->source || stat (m->source, &st) < 0)
            return kiln_error_set (err, m->source ? errno : EINVAL, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO,
                                   "bind `%s` onto `%s`", m->source ? m->source : "(null)", m->target);
          pr->plan.target_dir[i] = S_ISDIR (st.st_mode);
        }
      kiln_strv_push_take (&pr->plan.targets, kiln_steal_ptr (&t));
    }
  return 0;
}

static int
prep (struct prep *pr, const struct kiln_sandbox_opts *o, struct kiln_error **err)
{
  struct stat st;
  memset (pr, 0, sizeof *pr);
  pr->plan.o = o;
  pr->plan.rootfd = -1;
  pr->plan.pipe_wr = -1;
  if (!o->rootfs || !o->argv || !o->argv[0])
    return kiln_error_set (err, EINVAL, KILN_E_USAGE, "run in sandbox: no rootfs or no command");
  if (stat (o->rootfs, &st) < 0)
    return kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open rootfs `%s`", o->rootfs);
  if (!S_ISDIR (st.st_mode))
    return kiln_error_set (err, ENOTDIR, KILN_E_USAGE, "open rootfs `%s`", o->rootfs);
  if (prep_etc (pr, o, err) < 0 || prep_mounts (pr, o, err) < 0)
    return -1;
  pr->cwd = kiln_fs_path_clean (o->cwd ? o->cwd : "/");
  pr->plan.cwd = pr->cwd;
  pr->plan.path = env_path (o->env);
  pr->plan.hostname = o->hostname;
  return 0;
}

static int
read_full (int fd, void *buf, size_t len)
{
  size_t got = 0;
  while (got < len)
    {
      ssize_t n = read (fd, (char *) buf + got, len - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return n < 0 ? -1 : (int) got;
      got += (size_t) n;
    }
  return (int) got;
}

/* Collects the child's reports until every copy of the write end is closed
 * (the init closes its own after forking the command, the command's copy
 * closes on exec).  Keeps the first error. */
static int
collect (int rd, char ***created, struct kiln_error **err)
{
  struct sb_msg m;
  int r = 0, n;
  while ((n = read_full (rd, &m, sizeof m)) == (int) sizeof m)
    {
      m.text[sizeof m.text - 1] = '\0';
      if (m.type == 'C')
        kiln_strv_push (created, m.text);
      else if (m.type == 'E' && r == 0)
        r = kiln_error_set (err, m.errnum, (enum kiln_errkind) m.kind, "%s", m.text);
    }
  if (n != 0 && r == 0)
    r = kiln_error_set (err, n < 0 ? errno : EPROTO, KILN_E_INTERNAL, "read the sandbox report pipe");
  return r;
}

/* Waits without reaping first, so the slot is cleared while the pid still
 * belongs to our (zombie) child. */
static int
wait_init (pid_t pid, int slot, struct kiln_error **err)
{
  siginfo_t si;
  int st = 0;
  while (waitid (P_PID, (id_t) pid, &si, WEXITED | WNOWAIT) < 0)
    if (errno != EINTR)
      return kiln_error_set (err, errno, KILN_E_INTERNAL, "wait for the sandbox");
  if (slot >= 0)
    __atomic_store_n (&running[slot], 0, __ATOMIC_SEQ_CST); /* slots are claimed from other threads */
  while (waitpid (pid, &st, 0) < 0)
    if (errno != EINTR)
      return kiln_error_set (err, errno, KILN_E_INTERNAL, "wait for the sandbox");
  return WIFSIGNALED (st) ? 128 + WTERMSIG (st) : WEXITSTATUS (st);
}

static int
spawn (struct sb_plan *plan, int *status, char ***created, struct kiln_error **err)
{
  const struct kiln_sandbox_opts *o = plan->o;
  unsigned long long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  int fds[2];
  if (o->network_none)
    flags |= CLONE_NEWNET;
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create the sandbox report pipe");
  plan->pipe_wr = fds[1];
  sig_atomic_t gen = __atomic_load_n (&kills, __ATOMIC_SEQ_CST);
  long pid = kiln_sandbox_clone3 (flags);
  if (pid == 0)
    kiln_sandbox_child_main (plan);
  int saved = errno;
  close (fds[1]);
  if (pid < 0)
    {
      close (fds[0]);
      return kiln_error_set (err, saved, saved == ENOSYS ? KILN_E_UNSUPPORTED : KILN_E_IO,
                             "create the sandbox namespaces (clone3)");
    }
  int slot = slot_claim ((pid_t) pid);
  if (__atomic_load_n (&kills, __ATOMIC_SEQ_CST) != gen)
    kill ((pid_t) pid, SIGKILL); /* a kill_all ran while it had no slot */
  int r = collect (fds[0], created, err);
  close (fds[0]);
  struct kiln_error *werr = NULL;
  int st = wait_init ((pid_t) pid, slot, r < 0 ? &werr : err);
  kiln_error_free (&werr);
  if (r < 0 || st < 0)
    return r < 0 ? r : st;
  *status = st;
  return 0;
}

int
kiln_sandbox_run (const struct kiln_sandbox_opts *o, int *status, struct kiln_error **err)
{
  struct prep pr;
  char **created = NULL;
  int r = prep (&pr, o, err);
  if (r >= 0)
    r = spawn (&pr.plan, status, &created, err);
  prep_clear (&pr);
  if (o->created)
    *o->created = created;
  else
    kiln_strv_free (created);
  return r;
}
