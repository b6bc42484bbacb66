/* sandbox_child.c - PID 1 of the sandbox: mounts, pivot_root, the init loop.
 *
 * Runs in a raw clone3 child of a possibly multi-threaded parent: no malloc,
 * no stdio, no locks; only syscalls and snprintf into stack buffers.  A failed
 * step is reported over the pipe and the child _exit(127)s. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sandbox-internal.h"

#define FD_PATH_MAX 32

void
kiln_sandbox_send (struct sb_plan *p, int type, int errnum, int kind, const char *fmt, ...)
{
  struct sb_msg m = { .type = type, .errnum = errnum, .kind = kind };
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (m.text, sizeof m.text, fmt, ap);
  va_end (ap);
  /* one write below PIPE_BUF is atomic; retry only on EINTR */
  while (write (p->pipe_wr, &m, sizeof m) < 0 && errno == EINTR)
    ;
}

void
kiln_sandbox_fail (struct sb_plan *p, int errnum, const char *fmt, ...)
{
  struct sb_msg m = { .type = 'E', .errnum = errnum, .kind = KILN_E_IO };
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (m.text, sizeof m.text, fmt, ap);
  va_end (ap);
  while (write (p->pipe_wr, &m, sizeof m) < 0 && errno == EINTR)
    ;
  _exit (127);
}

int
kiln_sandbox_open_in_root (int rootfd, const char *rel, int flags, int mode)
{
  struct open_how how = { .flags = (unsigned long long) (flags | O_CLOEXEC),
                          .mode = (flags & O_CREAT) ? (unsigned long long) mode : 0,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  for (int tries = 0; tries < 32; tries++)
    {
      int fd = (int) syscall (SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
      if (fd >= 0 || (errno != EINTR && errno != EAGAIN))
        return fd;
    }
  return -1;
}

static void
fd_path (char buf[FD_PATH_MAX], int fd)
{
  snprintf (buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

/* Reports a freshly created entry if it lives on the rootfs mount itself (not
 * on one of our tmpfs mounts), by its real path relative to the rootfs. */
static void
record_created (struct sb_plan *p, int fd)
{
  struct statx sx;
  char link[FD_PATH_MAX], real[4096];
  size_t rl = strlen (p->root_real);
  if (statx (fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID)
      || (int) sx.stx_mnt_id != p->root_mnt_id)
    return;
  fd_path (link, fd);
  ssize_t n = readlink (link, real, sizeof real - 1);
  if (n < 0)
    return;
  real[n] = '\0';
  if (strncmp (real, p->root_real, rl) == 0 && real[rl] == '/')
    kiln_sandbox_send (p, 'C', 0, 0, "%s", real + rl + 1);
}

/* Opens (O_PATH) rel in the root, creating what is missing: directories, and
 * the last component as an empty file when !dir.  Returns -1 with errno. */
static int
ensure (struct sb_plan *p, int rootfd, const char *rel, bool dir, bool record)
{
  char buf[4096];
  size_t len = strlen (rel);
  if (len >= sizeof buf)
    return errno = ENAMETOOLONG, -1;
  memcpy (buf, rel, len + 1);
  for (size_t i = 0; i <= len; i++)
    {
      if (buf[i] != '/' && buf[i] != '\0')
        continue;
      bool last = buf[i] == '\0';
      buf[i] = '\0';
      int fd = kiln_sandbox_open_in_root (rootfd, buf, O_PATH | (last && !dir ? 0 : O_DIRECTORY), 0);
      if (fd < 0 && errno == ENOENT)
        {
          /* mkdirat through the parent; a file is created with O_CREAT, which
           * follows a dangling symlink, but still inside the root */
          char *slash = strrchr (buf, '/');
          int made = -1;
          if (last && !dir)
            made = kiln_sandbox_open_in_root (rootfd, buf, O_CREAT | O_WRONLY | O_NOCTTY, 0644);
          else
            {
              if (slash)
                *slash = '\0';
              int pfd = kiln_sandbox_open_in_root (rootfd, slash ? buf : "", O_PATH | O_DIRECTORY, 0);
              if (slash)
                *slash = '/';
              if (pfd >= 0)
                {
                  made = mkdirat (pfd, slash ? slash + 1 : buf, 0755);
                  close (pfd);
                }
            }
          if (made >= 0 && last && !dir)
            close (made);
          fd = kiln_sandbox_open_in_root (rootfd, buf, O_PATH | (last && !dir ? 0 : O_DIRECTORY), 0);
          if (fd >= 0 && made >= 0 && record)
            record_created (p, fd);
        }
      if (fd < 0)
        return -1;
      if (last)
        return fd;
      close (fd);
      buf[i] = '/';
    }
  return errno = EINVAL, -1;
}

/* mount(2) onto an O_PATH fd: the magic link pins the resolved target, so the
 * image cannot swap in a symlink between resolution and mount. */
static int
mount_at (const char *src, int fd, const char *type, unsigned long flags, const char *data)
{
  char t[FD_PATH_MAX];
  fd_path (t, fd);
  return mount (src, t, type, flags, data);
}

/* Makes the mount on top of rel read-only, recursively when possible.  The
 * target is reopened so the fd is the new mount's root, not what it covers. */
static int
make_readonly (int rootfd, const char *rel)
{
  int fd = kiln_sandbox_open_in_root (rootfd, rel, O_PATH, 0);
  if (fd < 0)
    return -1;
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
  int r = (int) syscall (SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
  if (r < 0 && errno == ENOSYS)
    {
      /* Linux < 5.12: top mount only; keep the flags a user namespace locks */
      struct statvfs sv;
      unsigned long keep = 0;
      if (fstatvfs (fd, &sv) == 0)
        keep = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0)
               | (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0) | (sv.f_flag & ST_NOATIME ? MS_NOATIME : 0)
               | (sv.f_flag & ST_NODIRATIME ? MS_NODIRATIME : 0) | (sv.f_flag & ST_RELATIME ? MS_RELATIME : 0);
      r = mount_at (NULL, fd, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
    }
  int e = errno;
  close (fd);
  errno = e;
  return r;
}

/* Binds the host path src onto rel in the root (created as dir or file). */
static void
bind_onto (struct sb_plan *p, const char *src, const char *rel, bool dir, bool ro, bool record)
{
  char s[FD_PATH_MAX];
  int sfd = open (src, O_PATH | O_CLOEXEC);
  if (sfd < 0)
    kiln_sandbox_fail (p, errno, "open bind source `%s`", src);
  int tfd = ensure (p, p->rootfd, rel, dir, record);
  if (tfd < 0)
    kiln_sandbox_fail (p, errno, "create mount point `/%s` in `%s`", rel, p->o->rootfs);
  fd_path (s, sfd);
  if (mount_at (s, tfd, NULL, MS_BIND | MS_REC, NULL) < 0)
    kiln_sandbox_fail (p, errno, "bind `%s` onto `/%s`", src, rel);
  close (sfd);
  close (tfd);
  if (ro && make_readonly (p->rootfd, rel) < 0)
    kiln_sandbox_fail (p, errno, "make `/%s` read-only", rel);
}

static void
mount_fs (struct sb_plan *p, const char *rel, const char *type, unsigned long flags, const char *data, bool record)
{
  int fd = ensure (p, p->rootfd, rel, true, record);
  if (fd < 0)
    kiln_sandbox_fail (p, errno, "create mount point `/%s` in `%s`", rel, p->o->rootfs);
  if (mount_at (type, fd, type, flags, data) < 0)
    kiln_sandbox_fail (p, errno, "mount %s on `/%s`", type, rel);
  close (fd);
}

static const struct {
  const char *name;
  unsigned major, minor;
} dev_nodes[] = { { "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
                  { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 } };

/* mknod needs CAP_MKNOD in the initial user namespace; in a user namespace we
 * bind the host's node onto an empty file instead. */
static void
make_dev_node (struct sb_plan *p, int devfd, unsigned i)
{
  char rel[64], host[64];
  const char *name = dev_nodes[i].name;
  if (mknodat (devfd, name, S_IFCHR | 0666, makedev (dev_nodes[i].major, dev_nodes[i].minor)) == 0)
    return;
  if (errno != EPERM)
    kiln_sandbox_fail (p, errno, "create device `/dev/%s`", name);
  snprintf (rel, sizeof rel, "dev/%s", name);
  snprintf (host, sizeof host, "/dev/%s", name);
  bind_onto (p, host, rel, false, false, false);
}

static void
setup_dev (struct sb_plan *p)
{
  static const char *const links[][2] = { { "ptmx", "pts/ptmx" },
                                          { "fd", "/proc/self/fd" },
                                          { "stdin", "/proc/self/fd/0" },
                                          { "stdout", "/proc/self/fd/1" },
                                          { "stderr", "/proc/self/fd/2" } };
  mount_fs (p, "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", true);
  int devfd = kiln_sandbox_open_in_root (p->rootfd, "dev", O_DIRECTORY | O_RDONLY, 0);
  if (devfd < 0)
    kiln_sandbox_fail (p, errno, "open `/dev` in `%s`", p->o->rootfs);
  for (unsigned i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++)
    make_dev_node (p, devfd, i);
  for (unsigned i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlinkat (links[i][1], devfd, links[i][0]) < 0)
      kiln_sandbox_fail (p, errno, "create symlink `/dev/%s`", links[i][0]);
  if (mkdirat (devfd, "pts", 0755) < 0 || mkdirat (devfd, "shm", 01777) < 0)
    kiln_sandbox_fail (p, errno, "create `/dev/pts` and `/dev/shm`");
  close (devfd);
  int fd = kiln_sandbox_open_in_root (p->rootfd, "dev/pts", O_PATH | O_DIRECTORY, 0);
  /* gid=5 (tty) is not mapped in a single-id user namespace: retry without */
  if (fd < 0
      || (mount_at ("devpts", fd, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0
          && mount_at ("devpts", fd, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0))
    kiln_sandbox_fail (p, errno, "mount devpts on `/dev/pts`");
  close (fd);
  char shm[64];
  snprintf (shm, sizeof shm, "mode=1777,size=%llu", p->o->shm_size ? p->o->shm_size : 64ull << 20);
  mount_fs (p, "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm, false);
}

/* sysfs can only be mounted by the owner of the network namespace; in a user
 * namespace with the host network, bind the host's /sys read-only instead. */
static void
setup_sys (struct sb_plan *p)
{
  int fd = ensure (p, p->rootfd, "sys", true, true);
  if (fd < 0)
    kiln_sandbox_fail (p, errno, "create mount point `/sys` in `%s`", p->o->rootfs);
  int r = mount_at ("sysfs", fd, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  close (fd);
  if (r < 0 && errno != EPERM)
    kiln_sandbox_fail (p, errno, "mount sysfs on `/sys`");
  if (r < 0)
    bind_onto (p, "/sys", "sys", true, true, false);
}

/* Writes data to a private file (stage, under /dev) on our /dev tmpfs, binds
 * it read-only onto rel, then unlinks it: the bind keeps the inode, and
 * nothing is ever written on the host.  Errors name rel, never the data. */
static void
bind_data (struct sb_plan *p, const char *stage, const char *rel, const char *data, size_t len, mode_t mode, uid_t uid,
           gid_t gid)
{
  int fd = kiln_sandbox_open_in_root (p->rootfd, stage, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0600);
  if (fd < 0)
    kiln_sandbox_fail (p, errno, "create the contents of `/%s`", rel);
  for (size_t off = 0; off < len;)
    {
      ssize_t n = write (fd, data + off, len - off);
      if (n < 0 && errno != EINTR)
        kiln_sandbox_fail (p, errno, "write the contents of `/%s`", rel);
      off += n > 0 ? (size_t) n : 0;
    }
  /* an owner a user namespace does not map stays as it is, as for binds */
  (void) !fchown (fd, uid, gid);
  if (fchmod (fd, mode) < 0)
    kiln_sandbox_fail (p, errno, "set the mode of `/%s`", rel);
  close (fd);
  fd = kiln_sandbox_open_in_root (p->rootfd, stage, O_PATH | O_NOFOLLOW, 0);
  int tfd = ensure (p, p->rootfd, rel, false, true);
  if (fd < 0 || tfd < 0)
    kiln_sandbox_fail (p, errno, "create mount point `/%s` in `%s`", rel, p->o->rootfs);
  char s[FD_PATH_MAX];
  fd_path (s, fd);
  if (mount_at (s, tfd, NULL, MS_BIND, NULL) < 0)
    kiln_sandbox_fail (p, errno, "bind `/%s`", rel);
  if (make_readonly (p->rootfd, rel) < 0)
    kiln_sandbox_fail (p, errno, "make `/%s` read-only", rel);
  close (fd);
  close (tfd);
  int devfd = kiln_sandbox_open_in_root (p->rootfd, "dev", O_PATH | O_DIRECTORY, 0);
  if (devfd < 0 || unlinkat (devfd, stage + 4, 0) < 0)
    kiln_sandbox_fail (p, errno, "remove the staging copy of `/%s`", rel);
  close (devfd);
}

static void
setup_etc (struct sb_plan *p)
{
  char name[64];
  for (int i = 0; i < SB_ETC_N; i++)
    {
      snprintf (name, sizeof name, "dev/.kiln-etc-%d", i);
      bind_data (p, name, p->etc_rel[i], p->etc_data[i], p->etc_len[i], 0644, 0, 0);
    }
}

static void
setup_user_mounts (struct sb_plan *p)
{
  for (size_t i = 0; i < p->o->nmounts; i++)
    {
      const struct kiln_sandbox_mount *m = &p->o->mounts[i];
      const char *rel = p->targets[i];
      if (m->type == KILN_SANDBOX_BIND)
        {
          bind_onto (p, m->source, rel, p->target_dir[i], m->readonly, true);
          continue;
        }
      if (m->type == KILN_SANDBOX_DATA)
        {
          char name[64];
          snprintf (name, sizeof name, "dev/.kiln-data-%zu", i);
          bind_data (p, name, rel, m->data, m->len, m->mode ? m->mode & 07777 : 0400, m->uid, m->gid);
          continue;
        }
      unsigned long fl = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
      mount_fs (p, rel, "tmpfs", fl, m->options, true);
    }
}

/* A sibling sandbox cloned from another thread may have inherited our pipe
 * (O_CLOEXEC does not help before exec): close everything we do not need
 * right away so the parents' EOF logic stays exact. */
static void
close_unneeded_fds (struct sb_plan *p)
{
  int keep[5] = { 2, p->pipe_wr, p->o->stdin_fd, p->o->stdout_fd, p->o->stderr_fd };
  /* insertion sort; then close each gap between kept fds */
  for (int i = 1; i < 5; i++)
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--)
      {
        int t = keep[j];
        keep[j] = keep[j - 1];
        keep[j - 1] = t;
      }
  unsigned lo = 3;
  for (int i = 0; i < 5; i++)
    {
      if (keep[i] < (int) lo)
        continue;
      if ((unsigned) keep[i] > lo)
        close_range (lo, (unsigned) keep[i] - 1, 0);
      lo = (unsigned) keep[i] + 1;
    }
  close_range (lo, ~0U, 0);
}

static void
loopback_up (struct sb_plan *p)
{
  struct ifreq ifr;
  int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  memset (&ifr, 0, sizeof ifr);
  memcpy (ifr.ifr_name, "lo", 3);
  if (s < 0 || ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    kiln_sandbox_fail (p, errno, "get the flags of `lo`");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    kiln_sandbox_fail (p, errno, "bring up `lo`");
  close (s);
}

static void
open_rootfs (struct sb_plan *p)
{
  const char *root = p->o->rootfs;
  char link[FD_PATH_MAX];
  struct statx sx;
  /* pivot_root needs the new root to be a mount point */
  if (mount (root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
    kiln_sandbox_fail (p, errno, "bind rootfs `%s` onto itself", root);
  p->rootfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (p->rootfd < 0 || statx (p->rootfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0)
    kiln_sandbox_fail (p, errno, "open rootfs `%s`", root);
  p->root_mnt_id = (sx.stx_mask & STATX_MNT_ID) ? (int) sx.stx_mnt_id : -1;
  fd_path (link, p->rootfd);
  ssize_t n = readlink (link, p->root_real, sizeof p->root_real - 1);
  p->root_real[n > 0 ? n : 0] = '\0';
}

static void
enter_root (struct sb_plan *p)
{
  /* pivot_root(".", ".") stacks the old root under the new one; detaching it
   * leaves only the rootfs (the runc trick, no put_old directory needed) */
  if (fchdir (p->rootfd) < 0 || syscall (SYS_pivot_root, ".", ".") < 0)
    kiln_sandbox_fail (p, errno, "pivot_root into `%s`", p->o->rootfs);
  if (umount2 (".", MNT_DETACH) < 0 || chdir ("/") < 0)
    kiln_sandbox_fail (p, errno, "detach the old root");
  close (p->rootfd);
  p->rootfd = open ("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (p->rootfd < 0)
    kiln_sandbox_fail (p, errno, "open the new root");
}

/* Reaps everything; exits with the command's status once it is gone, which
 * makes the kernel kill the rest of the PID namespace. */
__attribute__ ((noreturn)) static void
init_loop (pid_t cmd)
{
  for (;;)
    {
      int st;
      pid_t w = waitpid (-1, &st, 0);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        _exit (127);
      if (w == cmd)
        _exit (WIFSIGNALED (st) ? 128 + WTERMSIG (st) : WEXITSTATUS (st));
    }
}

void
kiln_sandbox_child_main (struct sb_plan *p)
{
  /* the sandbox must not outlive kiln (e.g. kiln is SIGKILLed) */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  close_unneeded_fds (p);
  umask (0);
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    kiln_sandbox_fail (p, errno, "make the mount tree private");
  if (p->o->network_none)
    loopback_up (p);
  if (p->hostname && sethostname (p->hostname, strlen (p->hostname)) < 0)
    kiln_sandbox_fail (p, errno, "set hostname `%s`", p->hostname);
  open_rootfs (p);
  mount_fs (p, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true);
  setup_dev (p);
  setup_sys (p);
  setup_etc (p);
  setup_user_mounts (p);
  enter_root (p);
  int cwdfd = ensure (p, p->rootfd, p->cwd, true, false);
  if (cwdfd < 0)
    kiln_sandbox_fail (p, errno, "create working directory `/%s`", p->cwd);
  long pid = kiln_sandbox_clone3 (0);
  if (pid < 0)
    kiln_sandbox_fail (p, errno, "fork the command");
  if (pid == 0)
    kiln_sandbox_exec_command (p, cwdfd);
  close (p->pipe_wr);
  close (cwdfd);
  init_loop ((pid_t) pid);
}
