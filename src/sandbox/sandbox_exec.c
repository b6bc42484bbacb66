/* sandbox_exec.c - the command's process inside the sandbox (PID 2): signals,
 * capabilities, credentials, working directory, fds, exec.
 *
 * Same rules as sandbox_child.c: no allocation, failures go over the pipe. */
#include <errno.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sandbox-internal.h"

/* Docker's default capability set (moby oci/caps/defaults.go). */
static const int default_caps[] = { CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
                                    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
                                    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                                    CAP_KILL,    CAP_AUDIT_WRITE };

static bool
cap_is_default (int cap)
{
  for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++)
    if (default_caps[i] == cap)
      return true;
  return false;
}

/* The parent may have blocked or ignored signals; exec keeps both. */
static void
reset_signals (void)
{
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal (sig, SIG_DFL);
}

/* Bounding set to Docker's list (what a root command can ever gain by exec),
 * ambient and inheritable empty (CVE-2022-24769). */
static void
drop_caps (struct sb_plan *p)
{
  for (int cap = 0; cap < 64; cap++)
    if (!cap_is_default (cap) && prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
      {
        if (errno == EINVAL)
          break; /* past the kernel's last capability */
        kiln_sandbox_fail (p, errno, "drop capability %d from the bounding set", cap);
      }
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    kiln_sandbox_fail (p, errno, "clear the ambient capabilities");
}

static void
clear_inheritable (struct sb_plan *p)
{
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
  struct __user_cap_data_struct d[2];
  if (syscall (SYS_capget, &h, d) < 0)
    kiln_sandbox_fail (p, errno, "read capabilities");
  d[0].inheritable = d[1].inheritable = 0;
  if (syscall (SYS_capset, &h, d) < 0)
    kiln_sandbox_fail (p, errno, "clear the inheritable capabilities");
}

static void
set_ids (struct sb_plan *p)
{
  const struct kiln_sandbox_opts *o = p->o;
  /* Raw system calls, not glibc's wrappers: those change the ids of every
   * thread of the process, and in a clone of a multithreaded parent they
   * wait forever for threads that exist only in the parent (stages run at
   * once, the output relay is a thread).  This process has one thread. */
  /* with a single-id user namespace setgroups is denied; no groups is fine */
  if (syscall (SYS_setgroups, o->ngroups, o->groups) < 0 && !(errno == EPERM && o->ngroups == 0))
    kiln_sandbox_fail (p, errno, "set supplementary groups");
  if (syscall (SYS_setresgid, o->gid, o->gid, o->gid) < 0)
    kiln_sandbox_fail (p, errno, "set gid %u", (unsigned) o->gid);
  if (syscall (SYS_setresuid, o->uid, o->uid, o->uid) < 0)
    kiln_sandbox_fail (p, errno, "set uid %u", (unsigned) o->uid);
}

/* Moves the requested fds to 0, 1, 2 through high copies so that any
 * permutation (e.g. stdout_fd 2 and stderr_fd 1) works. */
static void
setup_stdio (struct sb_plan *p)
{
  int want[3] = { p->o->stdin_fd, p->o->stdout_fd, p->o->stderr_fd }, tmp[3];
  for (int i = 0; i < 3; i++)
    {
      int src = want[i] >= 0 ? want[i] : open ("/dev/null", O_RDWR | O_CLOEXEC);
      tmp[i] = src >= 0 ? fcntl (src, F_DUPFD_CLOEXEC, 3) : -1;
      if (tmp[i] < 0)
        kiln_sandbox_fail (p, errno, "set up fd %d of the command", i);
    }
  for (int i = 0; i < 3; i++)
    if (dup2 (tmp[i], i) < 0)
      kiln_sandbox_fail (p, errno, "set up fd %d of the command", i);
}

static void
close_other_fds (struct sb_plan *p)
{
  unsigned w = (unsigned) p->pipe_wr;
  /* the report pipe is O_CLOEXEC: it stays open for an exec failure only */
  if (w > 3)
    close_range (3, w - 1, 0);
  close_range (w + 1, ~0U, 0);
}

/* execvp with the PATH of the container's environment, not kiln's. */
static void
exec_search (struct sb_plan *p)
{
  const char *file = p->o->argv[0];
  char *const empty[] = { NULL };
  char *const *env = p->o->env ? p->o->env : empty;
  if (strchr (file, '/'))
    {
      execve (file, p->o->argv, env);
      return;
    }
  bool eacces = false;
  for (const char *d = p->path;; d++)
    {
      const char *end = strchrnul (d, ':');
      char buf[4096];
      int n = snprintf (buf, sizeof buf, "%.*s%s%s", (int) (end - d), d, end == d ? "" : "/", file);
      if (n > 0 && (size_t) n < sizeof buf)
        {
          execve (buf, p->o->argv, env);
          if (errno == EACCES)
            eacces = true;
          else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT)
            return;
        }
      d = end;
      if (!*end)
        break;
    }
  errno = eacces ? EACCES : ENOENT;
}

/* --ulimit: while the capabilities still allow raising a hard limit */
static void
set_rlimits (struct sb_plan *p)
{
  for (size_t i = 0; i < p->o->nrlimits; i++)
    {
      const struct kiln_sandbox_rlimit *l = &p->o->rlimits[i];
      struct rlimit rl = { .rlim_cur = (rlim_t) l->soft, .rlim_max = (rlim_t) l->hard };
      if (setrlimit (l->resource, &rl) < 0)
        kiln_sandbox_fail (p, errno, "set ulimit %s to %llu:%llu", l->name, l->soft, l->hard);
    }
}

void
kiln_sandbox_exec_command (struct sb_plan *p, int cwdfd)
{
  reset_signals ();
  if (setsid () < 0)
    kiln_sandbox_fail (p, errno, "create a session");
  set_rlimits (p);
  drop_caps (p);
  set_ids (p);
  clear_inheritable (p);
  /* after setuid, so the command's user must be able to enter it, as in docker */
  if (fchdir (cwdfd) < 0)
    kiln_sandbox_fail (p, errno, "change to working directory `/%s`", p->cwd);
  setup_stdio (p);
  umask (022);
  close_other_fds (p);
  exec_search (p);
  int e = errno;
  kiln_sandbox_send (p, 'E', e, e == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "exec `%s`", p->o->argv[0]);
  _exit (127);
}
