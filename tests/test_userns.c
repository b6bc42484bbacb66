/* tests/test_userns.c - rootless mode: subid parsing, entering a user
 * namespace as an unprivileged user (65534), and a sandbox run inside it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/sandbox.h"
#include "kiln/userns.h"
#include "kiln/util.h"

#define NOBODY 65534

Test (userns, parse_subid_keeps_only_our_name_or_id)
{
  const char *text = "alice:100000:65536\n"
                     "bob:200000:65536\n"
                     "1000:300000:10\n"
                     "alice:bad:1\n"
                     "alice:400000\n"
                     "alice:500000:0\n"
                     "alicex:600000:5\n"
                     "alice:700000:20";
  struct kiln_userns_range *r = NULL;
  size_t n = 0;
  cr_assert_eq (kiln_userns_parse_subid (text, "alice", 1000, &r, &n), 3);
  cr_assert_eq (n, 3);
  cr_assert (r[0].start == 100000 && r[0].count == 65536);
  cr_assert (r[1].start == 300000 && r[1].count == 10);
  cr_assert (r[2].start == 700000 && r[2].count == 20);
  cr_assert_eq (kiln_userns_parse_subid (text, "carol", 2000, &r, &n), 0);
  cr_assert_eq (kiln_userns_parse_subid ("", NULL, 1000, &r, &n), 0);
  free (r);
}

Test (userns, needed_only_when_not_root)
{
  cr_assert_eq (kiln_userns_needed (), geteuid () != 0);
}

/* What the unprivileged child saw, sent back to the test. */
struct report {
  int ret, errnum, uid, gid, status, mounts_ok;
  char uid_map[128], gid_map[128], setgroups[32], out[512], msg[256];
};

static void
read_small (const char *path, char *buf, size_t size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read (fd, buf, size - 1) : -1;
  buf[n > 0 ? n : 0] = '\0';
  if (fd >= 0)
    close (fd);
}

static void
become_nobody (void)
{
  if (setgroups (0, NULL) < 0 || setresgid (NOBODY, NOBODY, NOBODY) < 0 || setresuid (NOBODY, NOBODY, NOBODY) < 0)
    _exit (90);
  /* setuid from root clears "dumpable", which makes /proc/self/uid_map
   * root-owned; a user started normally is dumpable */
  prctl (PR_SET_DUMPABLE, 1);
}

static bool
nobody_has_subids (void)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  struct kiln_userns_range *r = NULL;
  size_t n = 0;
  if (kiln_fs_read_file (AT_FDCWD, "/etc/subuid", 1u << 20, &b, &err) == 0)
    kiln_userns_parse_subid (b.buf, "nobody", NOBODY, &r, &n);
  kiln_error_free (&err);
  kiln_buf_release (&b);
  free (r);
  return n > 0;
}

/* Forks, becomes 65534, enters the user namespace, runs fn, and returns the
 * report; skips the test when the kernel refuses the namespace. */
static void
as_nobody_in_userns (void (*fn) (struct report *, void *), void *arg, struct report *rep)
{
  int fds[2];
  kiln_test_require (KILN_NEED_ROOT | KILN_NEED_USERNS);
  if (nobody_has_subids ())
    cr_skip_test ("/etc/subuid has ranges for nobody: the single-id fallback cannot be tested");
  cr_assert_eq (pipe (fds), 0);
  pid_t pid = fork ();
  if (pid == 0)
    {
      struct report r = { 0 };
      struct kiln_error *err = NULL;
      become_nobody ();
      r.ret = kiln_userns_enter (&err);
      if (err)
        {
          kiln_autofree char *m = kiln_error_format (err);
          r.errnum = err->errnum;
          snprintf (r.msg, sizeof r.msg, "%s", m);
        }
      r.uid = (int) getuid ();
      r.gid = (int) getgid ();
      read_small ("/proc/self/uid_map", r.uid_map, sizeof r.uid_map);
      read_small ("/proc/self/gid_map", r.gid_map, sizeof r.gid_map);
      read_small ("/proc/self/setgroups", r.setgroups, sizeof r.setgroups);
      if (r.ret >= 0 && fn)
        fn (&r, arg);
      _exit (write (fds[1], &r, sizeof r) == sizeof r ? 0 : 91);
    }
  close (fds[1]);
  ssize_t n = read (fds[0], rep, sizeof *rep);
  int st;
  waitpid (pid, &st, 0);
  close (fds[0]);
  cr_assert_eq (n, (ssize_t) sizeof *rep, "child exit %d", WEXITSTATUS (st));
  if (rep->ret < 0 && (rep->errnum == EPERM || rep->errnum == ENOSPC || rep->errnum == EUSERS))
    cr_skip_test ("user namespaces are not available to unprivileged users: %s", rep->msg);
}

static const char *
field (const char *map)
{
  return map + strspn (map, " ");
}

Test (userns, enter_as_unprivileged_user_falls_back_to_a_single_id)
{
  struct report r;
  as_nobody_in_userns (NULL, NULL, &r);
  cr_assert_eq (r.ret, 1, "fallback expected: %s", r.msg);
  cr_assert_eq (r.uid, 0);
  cr_assert_eq (r.gid, 0);
  cr_assert (kiln_str_has_prefix (field (r.uid_map), "0"), "%s", r.uid_map);
  kiln_autofree char *want = kiln_xasprintf ("0 %d 1", NOBODY);
  /* normalise "         0      65534          1" */
  char norm[128] = "";
  unsigned a, b, c;
  if (sscanf (r.uid_map, "%u %u %u", &a, &b, &c) == 3)
    snprintf (norm, sizeof norm, "%u %u %u", a, b, c);
  cr_assert_str_eq (norm, want);
  cr_assert (sscanf (r.gid_map, "%u %u %u", &a, &b, &c) == 3 && a == 0 && b == NOBODY && c == 1, "%s", r.gid_map);
  cr_assert_str_eq (r.setgroups, "deny\n");
}

struct sb_arg {
  const char *rootfs;
  int outfd;
};

static void
run_sandbox (struct report *r, void *argp)
{
  struct sb_arg *a = argp;
  char *env[] = { (char *) "PATH=/bin", NULL };
  char *argv[] = { (char *) "helper", (char *) "id", NULL };
  struct kiln_sandbox_opts o = { .rootfs = a->rootfs,
                                 .argv = argv,
                                 .env = env,
                                 .stdin_fd = -1,
                                 .stdout_fd = a->outfd,
                                 .stderr_fd = -1,
                                 .hosts = "",
                                 .resolv_conf = "" };
  struct kiln_error *err = NULL;
  r->ret = kiln_sandbox_run (&o, &r->status, &err);
  if (err)
    {
      kiln_autofree char *m = kiln_error_format (err);
      snprintf (r->msg, sizeof r->msg, "%s", m);
      r->ret = -1000; /* not a skip: the namespace exists */
    }
  lseek (a->outfd, 0, SEEK_SET);
  ssize_t n = read (a->outfd, r->out, sizeof r->out - 1);
  r->out[n > 0 ? n : 0] = '\0';
  /* then the mount table: host nodes bound on /dev, /sys read-only */
  char big[16384];
  argv[1] = (char *) "mounts";
  if (ftruncate (a->outfd, 0) < 0 || lseek (a->outfd, 0, SEEK_SET) < 0 || kiln_sandbox_run (&o, &r->status, &err) < 0)
    return;
  lseek (a->outfd, 0, SEEK_SET);
  n = read (a->outfd, big, sizeof big - 1);
  big[n > 0 ? n : 0] = '\0';
  r->mounts_ok = strstr (big, " /dev/null ") && strstr (big, " /sys ro,") && strstr (big, " /dev/pts ");
}

static void
chown_tree (const char *path)
{
  cr_assert_eq (lchown (path, NOBODY, NOBODY), 0, "chown %s: %s", path, strerror (errno));
}

/* The rootless paths of the sandbox: device nodes bound from the host,
 * sysfs bound when it cannot be mounted, no tty group for devpts. */
Test (userns, sandbox_runs_as_root_inside_the_user_namespace, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct report r;
  kiln_autofree char *rootfs = kiln_xasprintf ("%s/rootfs", kiln_test_tmpdir ());
  kiln_autofree char *bin = kiln_xasprintf ("%s/bin", rootfs);
  kiln_autofree char *helper = kiln_xasprintf ("%s/bin/helper", rootfs);
  kiln_autofree char *outp = kiln_xasprintf ("%s/out", kiln_test_tmpdir ());
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_eq (chmod (kiln_test_tmpdir (), 0755), 0);
  cr_assert_eq (mkdir (rootfs, 0755), 0);
  cr_assert_eq (mkdir (bin, 0755), 0);
  cr_assert_geq (kiln_fs_read_file (AT_FDCWD, KILN_HELPER_INIT, 64u << 20, &b, &err), 0);
  int fd = open (helper, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  cr_assert_geq (kiln_fs_write_all (fd, b.buf, b.len, &err), 0);
  close (fd);
  kiln_buf_release (&b);
  chown_tree (rootfs);
  chown_tree (bin);
  chown_tree (helper);
  struct sb_arg a = { .rootfs = rootfs, .outfd = open (outp, O_RDWR | O_CREAT | O_CLOEXEC, 0666) };
  as_nobody_in_userns (run_sandbox, &a, &r);
  cr_assert_eq (r.ret, 0, "sandbox failed: %s", r.msg);
  cr_assert_eq (r.status, 0);
  cr_assert_str_eq (r.out, "0 0\n");
  cr_assert (r.mounts_ok, "/dev/null bind, /sys ro and /dev/pts expected in the mount table");
  close (a.outfd);
}
