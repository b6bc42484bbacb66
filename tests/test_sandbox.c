/* tests/test_sandbox.c - kiln_sandbox_run against a tiny rootfs holding the
 * static helper (tests/helper_init.c) as /bin/helper.  Needs root. */
#include <criterion/criterion.h>
#include <sys/resource.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/sandbox.h"
#include "kiln/util.h"

static char rootfs[4096];
static char marker[64];

static void
copy_file (const char *from, const char *to, mode_t mode)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_geq (kiln_fs_read_file (AT_FDCWD, from, 64u << 20, &b, &err), 0, "read %s", from);
  int fd = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  cr_assert_geq (fd, 0, "create %s: %s", to, strerror (errno));
  cr_assert_geq (kiln_fs_write_all (fd, b.buf, b.len, &err), 0);
  close (fd);
  kiln_buf_release (&b);
}

static char *
tmp_path (const char *rel)
{
  return kiln_xasprintf ("%s/%s", kiln_test_tmpdir (), rel);
}

static void
setup (void)
{
  kiln_test_tmp_init ();
  kiln_test_require (KILN_NEED_ROOT);
  snprintf (rootfs, sizeof rootfs, "%s/rootfs", kiln_test_tmpdir ());
  snprintf (marker, sizeof marker, "kiln-sandbox-test-%d", (int) getpid ());
  kiln_autofree char *bin = kiln_xasprintf ("%s/bin", rootfs);
  kiln_autofree char *helper = kiln_xasprintf ("%s/bin/helper", rootfs);
  cr_assert_eq (mkdir (rootfs, 0755), 0);
  cr_assert_eq (mkdir (bin, 0755), 0);
  copy_file (KILN_HELPER_INIT, helper, 0755);
}

TestSuite (sandbox, .init = setup, .fini = kiln_test_tmp_fini);

struct run {
  struct kiln_sandbox_opts o;
  char *env[4];
  int status;
  struct kiln_error *err;
  char *out;
  char **created;
};

static void
run_init (struct run *r)
{
  memset (r, 0, sizeof *r);
  r->env[0] = (char *) "PATH=/bin";
  r->env[1] = (char *) "HOME=/root";
  r->o.rootfs = rootfs;
  r->o.env = r->env;
  r->o.stdin_fd = -1;
  r->o.stderr_fd = -1;
  r->o.hosts = "127.0.0.1 localhost\n";
  r->o.resolv_conf = "nameserver 192.0.2.53\n";
  r->o.created = &r->created;
}

/* Runs `helper ARGS...` with stdout captured in a file; returns the result. */
static int
run_argv (struct run *r, const char *const *argv)
{
  kiln_autofree char *outp = tmp_path ("out");
  kiln_autoclose int fd = open (outp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert_geq (fd, 0);
  /* a test may run twice on one struct run: the first run's results go */
  free (r->out), r->out = NULL;
  kiln_strv_free (r->created), r->created = NULL;
  r->o.argv = (char *const *) argv;
  r->o.stdout_fd = fd;
  int ret = kiln_sandbox_run (&r->o, &r->status, &r->err);
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_geq (kiln_fs_read_file (AT_FDCWD, outp, 1u << 20, &b, &err), 0);
  r->out = kiln_buf_detach (&b, NULL);
  return ret;
}

#define RUN(r, ...) run_argv ((r), (const char *const[]){ "helper", __VA_ARGS__, NULL })

static void
run_clear (struct run *r)
{
  free (r->out);
  kiln_strv_free (r->created);
  kiln_error_free (&r->err);
}

static void
expect_ok (struct run *r, int ret)
{
  kiln_autofree char *msg = r->err ? kiln_error_format (r->err) : NULL;
  cr_assert_eq (ret, 0, "sandbox failed: %s", msg ? msg : "?");
  cr_assert_eq (r->status, 0, "status %d, output: %s", r->status, r->out);
}

static bool
strv_has (char **v, const char *s)
{
  for (size_t i = 0; v && v[i]; i++)
    if (!strcmp (v[i], s))
      return true;
  return false;
}

Test (sandbox, command_is_pid_2_under_a_namespace_init)
{
  struct run r;
  run_init (&r);
  expect_ok (&r, RUN (&r, "pid"));
  cr_assert_str_eq (r.out, "2\n");
  run_clear (&r);
}

Test (sandbox, command_sees_only_fds_0_1_2)
{
  struct run r;
  int leak = open ("/", O_RDONLY); /* no O_CLOEXEC on purpose */
  cr_assert_geq (leak, 3);
  run_init (&r);
  expect_ok (&r, RUN (&r, "fds"));
  cr_assert_str_eq (r.out, "0\n1\n2\n");
  close (leak);
  run_clear (&r);
}

Test (sandbox, environment_is_exactly_env)
{
  struct run r;
  setenv ("KILN_HOST_SECRET", "leak", 1);
  run_init (&r);
  expect_ok (&r, RUN (&r, "env"));
  cr_assert_str_eq (r.out, "PATH=/bin\nHOME=/root\n");
  run_clear (&r);
}

Test (sandbox, argv0_is_found_through_the_path_of_env)
{
  struct run r;
  run_init (&r);
  r.env[0] = (char *) "PATH=/nonexistent::/bin";
  expect_ok (&r, run_argv (&r, (const char *const[]){ "helper", "exit", "0", NULL }));
  r.env[0] = (char *) "PATH=/usr/bin";
  kiln_error_free (&r.err);
  cr_assert_lt (run_argv (&r, (const char *const[]){ "helper", "exit", "0", NULL }), 0);
  run_clear (&r);
}

Test (sandbox, applies_uid_gid_and_groups)
{
  struct run r;
  const gid_t groups[] = { 1002, 1003 };
  run_init (&r);
  r.o.uid = 1000;
  r.o.gid = 1001;
  r.o.groups = groups;
  r.o.ngroups = 2;
  expect_ok (&r, RUN (&r, "id"));
  cr_assert_str_eq (r.out, "1000 1001 1002 1003\n");
  run_clear (&r);
}

Test (sandbox, root_has_docker_default_capabilities_only)
{
  struct run r;
  run_init (&r);
  expect_ok (&r, RUN (&r, "cat", "/proc/self/status"));
  cr_assert_not_null (strstr (r.out, "CapBnd:\t00000000a80425fb\n"), "%s", r.out);
  cr_assert_not_null (strstr (r.out, "CapEff:\t00000000a80425fb\n"), "%s", r.out);
  cr_assert_not_null (strstr (r.out, "CapInh:\t0000000000000000\n"), "%s", r.out);
  run_clear (&r);
}

Test (sandbox, missing_cwd_is_created_and_entered)
{
  struct run r;
  struct stat st;
  run_init (&r);
  r.o.cwd = "/work/a/../b";
  expect_ok (&r, RUN (&r, "cwd"));
  cr_assert_str_eq (r.out, "/work/b\n");
  kiln_autofree char *host = kiln_xasprintf ("%s/work/b", rootfs);
  cr_assert_eq (stat (host, &st), 0);
  cr_assert (S_ISDIR (st.st_mode));
  cr_assert (!strv_has (r.created, "work/b"), "cwd is content, not a mount point");
  run_clear (&r);
}

/* CVE-2024-21626 shape: a working directory through a magic link must not
 * reach an fd inherited from the host */
Test (sandbox, cwd_through_proc_self_fd_is_refused)
{
  struct run r;
  int leak = open ("/", O_RDONLY);
  run_init (&r);
  kiln_autofree char *cwd = kiln_xasprintf ("/proc/self/fd/%d", leak);
  r.o.cwd = cwd;
  cr_assert_lt (RUN (&r, "cwd"), 0, "ran in %s", r.out);
  cr_assert_not_null (strstr (r.err->msg, "working directory"), "%s", r.err->msg);
  close (leak);
  run_clear (&r);
}

Test (sandbox, hostname_is_set_and_written_to_etc_hostname)
{
  struct run r;
  run_init (&r);
  r.o.hostname = "kiln-box";
  expect_ok (&r, RUN (&r, "hostname"));
  cr_assert_str_eq (r.out, "kiln-box\n");
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "cat", "/etc/hostname"));
  cr_assert_str_eq (r.out, "kiln-box\n");
  run_clear (&r);
}

Test (sandbox, exit_status_is_propagated)
{
  struct run r;
  run_init (&r);
  cr_assert_eq (RUN (&r, "exit", "3"), 0);
  cr_assert_eq (r.status, 3);
  run_clear (&r);
}

Test (sandbox, missing_command_is_a_notfound_error)
{
  struct run r;
  run_init (&r);
  cr_assert_lt (run_argv (&r, (const char *const[]){ "foo", NULL }), 0);
  cr_assert_not_null (r.err);
  cr_assert_eq (r.err->kind, KILN_E_NOTFOUND);
  cr_assert_eq (r.err->errnum, ENOENT);
  cr_assert_str_eq (r.err->msg, "exec `foo`");
  run_clear (&r);
}

Test (sandbox, missing_rootfs_is_an_error)
{
  struct run r;
  run_init (&r);
  r.o.rootfs = "/nonexistent/rootfs";
  cr_assert_lt (RUN (&r, "pid"), 0);
  cr_assert_eq (r.err->kind, KILN_E_NOTFOUND);
  run_clear (&r);
}

Test (sandbox, network_none_has_only_loopback_and_it_is_up)
{
  struct run r;
  run_init (&r);
  r.o.network_none = true;
  expect_ok (&r, RUN (&r, "cat", "/proc/net/dev"));
  /* two header lines, then one line per interface */
  char *lines = strchr (strchr (r.out, '\n') + 1, '\n') + 1;
  cr_assert (kiln_str_has_prefix (lines + strspn (lines, " "), "lo:"), "%s", r.out);
  cr_assert_eq (strchr (lines, '\n')[1], '\0', "more than lo: %s", r.out);
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "cat", "/sys/class/net/lo/flags"));
  cr_assert_str_eq (r.out, "0x9\n"); /* IFF_UP | IFF_LOOPBACK */
  run_clear (&r);
}

Test (sandbox, etc_files_have_our_content_and_are_read_only)
{
  struct run r;
  run_init (&r);
  expect_ok (&r, RUN (&r, "cat", "/etc/hosts"));
  cr_assert_str_eq (r.out, "127.0.0.1 localhost\n");
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "cat", "/etc/resolv.conf"));
  cr_assert_str_eq (r.out, "nameserver 192.0.2.53\n");
  free (r.out), r.out = NULL;
  cr_assert_eq (RUN (&r, "write", "/etc/hosts", "evil"), 0);
  cr_assert_eq (r.status, 1, "writing /etc/hosts must fail");
  run_clear (&r);
}

Test (sandbox, dev_has_working_nodes_and_stdio_links)
{
  struct run r;
  run_init (&r);
  kiln_autofree char *inp = tmp_path ("in");
  copy_file (KILN_HELPER_INIT, inp, 0644); /* any content will do */
  cr_assert_eq (truncate (inp, 0), 0);
  int fd = open (inp, O_RDWR | O_CLOEXEC);
  cr_assert_eq (write (fd, "from stdin\n", 11), 11);
  lseek (fd, 0, SEEK_SET);
  r.o.stdin_fd = fd;
  expect_ok (&r, RUN (&r, "cat", "/dev/stdin"));
  cr_assert_str_eq (r.out, "from stdin\n");
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "write", "/dev/null", "x"));
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "mounts"));
  cr_assert_not_null (strstr (r.out, " /dev/pts "), "%s", r.out);
  cr_assert_not_null (strstr (r.out, " /dev/shm "), "%s", r.out);
  cr_assert_not_null (strstr (r.out, " /sys ro,"), "%s", r.out);
  cr_assert_not_null (strstr (r.out, " /proc rw,"), "%s", r.out);
  close (fd);
  run_clear (&r);
}

Test (sandbox, bind_and_tmpfs_mounts_appear_and_readonly_bind_rejects_writes)
{
  struct run r;
  kiln_autofree char *share = tmp_path ("share");
  kiln_autofree char *ro = tmp_path ("ro");
  cr_assert_eq (mkdir (share, 0755), 0);
  cr_assert_eq (mkdir (ro, 0755), 0);
  struct kiln_sandbox_mount m[] = {
    { .type = KILN_SANDBOX_BIND, .source = share, .target = "/mnt/share" },
    { .type = KILN_SANDBOX_BIND, .source = ro, .target = "/mnt/ro", .readonly = true },
    { .type = KILN_SANDBOX_TMPFS, .target = "/scratch", .options = "size=1m,mode=0700" },
  };
  run_init (&r);
  r.o.mounts = m;
  r.o.nmounts = 3;
  expect_ok (&r, RUN (&r, "write", "/mnt/share/f", "through the bind"));
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  kiln_autofree char *f = tmp_path ("share/f");
  cr_assert_geq (kiln_fs_read_file (AT_FDCWD, f, 4096, &b, &err), 0);
  cr_assert_str_eq (b.buf, "through the bind");
  kiln_buf_release (&b);
  cr_assert (strv_has (r.created, "mnt/share") && strv_has (r.created, "scratch"));
  free (r.out), r.out = NULL;
  cr_assert_eq (RUN (&r, "write", "/mnt/ro/f", "nope"), 0);
  cr_assert_eq (r.status, 1);
  kiln_autofree char *rof = tmp_path ("ro/f");
  cr_assert_neq (access (rof, F_OK), 0);
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "mounts"));
  cr_assert_not_null (strstr (r.out, " /scratch rw,nosuid,nodev"), "%s", r.out);
  cr_assert_not_null (strstr (r.out, " - tmpfs tmpfs rw,size=1024k,mode=700"), "%s", r.out);
  cr_assert_not_null (strstr (r.out, " /mnt/ro ro,"), "%s", r.out);
  run_clear (&r);
}

/* A data mount (RUN secrets): the content exists only on the sandbox's
 * tmpfs; the file is read-only with the given mode and owner, the mount
 * point kiln made is reported and stays empty on the host. */
Test (sandbox, data_mount_is_a_readonly_file_that_never_touches_the_host)
{
  struct run r;
  static const char secret[] = "data-mount-secret\0with a NUL";
  struct kiln_sandbox_mount m[] = {
    { .type = KILN_SANDBOX_DATA,
      .target = "/run/secrets/tok",
      .data = secret,
      .len = sizeof secret - 1,
      .mode = 0440,
      .uid = 1000,
      .gid = 1001 },
    { .type = KILN_SANDBOX_DATA, .target = "/tmp/default", .data = "d", .len = 1 },
  };
  run_init (&r);
  r.o.mounts = m;
  r.o.nmounts = 2;
  expect_ok (&r, RUN (&r, "stat", "/run/secrets/tok"));
  cr_assert_str_eq (r.out, "100440 1000 1001 28\n");
  free (r.out), r.out = NULL;
  kiln_strv_free (r.created);
  r.created = NULL;
  expect_ok (&r, RUN (&r, "stat", "/tmp/default"));
  cr_assert_str_eq (r.out, "100400 0 0 1\n", "default mode 0400, root");
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "cat", "/run/secrets/tok"));
  cr_assert_eq (memcmp (r.out, "data-mount-secret", 17), 0, "%s", r.out);
  free (r.out), r.out = NULL;
  cr_assert_eq (RUN (&r, "write", "/run/secrets/tok", "evil"), 0);
  cr_assert_eq (r.status, 1, "writing a data mount must fail");
  free (r.out), r.out = NULL;
  cr_assert_eq (RUN (&r, "stat", "/dev/.kiln-data-0"), 0);
  cr_assert_eq (r.status, 1, "the staging copy is removed once bound");
  run_clear (&r);
}

Test (sandbox, data_mount_leaves_only_an_empty_stub_on_the_host)
{
  struct run r;
  struct kiln_sandbox_mount m[] = {
    { .type = KILN_SANDBOX_DATA, .target = "/run/secrets/tok", .data = "s3cr3t", .len = 6 },
  };
  run_init (&r);
  r.o.mounts = m;
  r.o.nmounts = 1;
  expect_ok (&r, RUN (&r, "pid"));
  cr_assert (strv_has (r.created, "run") && strv_has (r.created, "run/secrets/tok"));
  kiln_autofree char *stub = kiln_xasprintf ("%s/run/secrets/tok", rootfs);
  struct stat st;
  cr_assert_eq (stat (stub, &st), 0);
  cr_assert_eq (st.st_size, 0, "the mount point stays empty on the host");
  run_clear (&r);
}

Test (sandbox, created_lists_new_mount_points_once)
{
  struct run r;
  run_init (&r);
  expect_ok (&r, RUN (&r, "pid"));
  const char *want[] = { "proc", "dev", "sys", "etc", "etc/hosts", "etc/resolv.conf", "etc/hostname" };
  cr_assert_eq (kiln_strv_len (r.created), 7);
  for (size_t i = 0; i < 7; i++)
    cr_assert_str_eq (r.created[i], want[i]);
  kiln_strv_free (r.created);
  r.created = NULL;
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "pid"));
  cr_assert_null (r.created, "second run created nothing");
  kiln_autofree char *hosts = kiln_xasprintf ("%s/etc/hosts", rootfs);
  struct stat st;
  cr_assert_eq (stat (hosts, &st), 0);
  cr_assert_eq (st.st_size, 0, "the mount point stays empty on the host");
  run_clear (&r);
}

/* etc -> <absolute host dir>: in the root it resolves to rootfs/<that dir>. */
Test (sandbox, symlinked_etc_cannot_move_the_hosts_mount_outside)
{
  struct run r;
  kiln_autofree char *trip = tmp_path ("tripwire");
  kiln_autofree char *etc = kiln_xasprintf ("%s/etc", rootfs);
  cr_assert_eq (mkdir (trip, 0755), 0);
  cr_assert_eq (symlink (trip, etc), 0);
  run_init (&r);
  cr_assert_lt (RUN (&r, "cat", "/etc/hosts"), 0, "dangling in the root: refused");
  kiln_error_free (&r.err);
  /* now make the link resolve inside the root */
  struct kiln_error *err = NULL;
  int rootfd = open (rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = kiln_fs_mkdir_p_in_root (rootfd, trip, 0755, &err);
  cr_assert_geq (fd, 0);
  close (fd);
  close (rootfd);
  free (r.out), r.out = NULL;
  expect_ok (&r, RUN (&r, "cat", "/etc/hosts"));
  cr_assert_str_eq (r.out, "127.0.0.1 localhost\n");
  kiln_autodir DIR *d = opendir (trip);
  struct dirent *de;
  while ((de = readdir (d)))
    cr_assert (de->d_name[0] == '.', "tripwire touched: %s", de->d_name);
  kiln_autofree char *inside = kiln_xasprintf ("%s/hosts", trip + 1);
  cr_assert (strv_has (r.created, inside), "created records the real place");
  run_clear (&r);
}

static char *
read_mountinfo (void)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_geq (kiln_fs_read_file (AT_FDCWD, "/proc/self/mountinfo", 1u << 20, &b, &err), 0);
  return kiln_buf_detach (&b, NULL);
}

/* Processes anywhere on the host whose command line carries our marker. */
static int
count_marked (void)
{
  kiln_autodir DIR *d = opendir ("/proc");
  struct dirent *de;
  int n = 0;
  while ((de = readdir (d)))
    {
      char path[300], buf[4096];
      snprintf (path, sizeof path, "/proc/%s/cmdline", de->d_name);
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        continue;
      ssize_t len = read (fd, buf, sizeof buf - 1);
      close (fd);
      for (ssize_t i = 0; i < len; i += (ssize_t) strlen (buf + i) + 1)
        {
          buf[len] = '\0';
          if (!strcmp (buf + i, marker))
            n++;
        }
    }
  return n;
}

Test (sandbox, leaves_no_mounts_and_no_processes_on_the_host)
{
  struct run r;
  kiln_autofree char *before = read_mountinfo ();
  run_init (&r);
  r.o.network_none = true;
  struct kiln_sandbox_mount m[] = { { .type = KILN_SANDBOX_TMPFS, .target = "/scratch" } };
  r.o.mounts = m;
  r.o.nmounts = 1;
  expect_ok (&r, run_argv (&r, (const char *const[]){ "helper", "mounts", marker, NULL }));
  kiln_autofree char *after = read_mountinfo ();
  cr_assert_str_eq (before, after);
  cr_assert_eq (waitpid (-1, NULL, WNOHANG), -1);
  cr_assert_eq (errno, ECHILD);
  cr_assert_eq (count_marked (), 0);
  run_clear (&r);
}

static void
on_alarm (int sig)
{
  (void) sig;
  kiln_sandbox_kill_all ();
}

Test (sandbox, kill_all_from_a_signal_handler_ends_the_namespace)
{
  struct run r;
  struct sigaction sa = { .sa_handler = on_alarm };
  kiln_autofree char *before = read_mountinfo ();
  sigaction (SIGALRM, &sa, NULL);
  run_init (&r);
  unsigned long long t0 = kiln_now_ns ();
  alarm (1);
  int ret = run_argv (&r, (const char *const[]){ "helper", "sleep", "30", marker, NULL });
  double secs = (double) (kiln_now_ns () - t0) / 1e9;
  cr_assert_eq (ret, 0);
  cr_assert_eq (r.status, 128 + SIGKILL);
  cr_assert_lt (secs, 5.0);
  cr_assert_eq (count_marked (), 0);
  kiln_autofree char *after = read_mountinfo ();
  cr_assert_str_eq (before, after);
  run_clear (&r);
}

/* A background process must die with the command (busybox-static, when the
 * host has it, supplies a shell that can fork). */
Test (sandbox, orphans_die_when_the_command_exits)
{
  struct run r;
  if (access ("/bin/busybox", X_OK) != 0)
    cr_skip_test ("needs /bin/busybox (busybox-static) for a forking shell");
  kiln_autofree char *sh = kiln_xasprintf ("%s/bin/sh", rootfs);
  copy_file ("/bin/busybox", sh, 0755);
  kiln_autofree char *script = kiln_xasprintf ("(sh -c 'sleep 30; true' %s &); sleep 1; exit 5", marker);
  run_init (&r);
  unsigned long long t0 = kiln_now_ns ();
  cr_assert_eq (run_argv (&r, (const char *const[]){ "sh", "-c", script, NULL }), 0);
  cr_assert_eq (r.status, 5);
  cr_assert_lt ((double) (kiln_now_ns () - t0) / 1e9, 5.0);
  cr_assert_eq (count_marked (), 0);
  run_clear (&r);
}

Test (sandbox, rlimit_specs_as_docker_spells_them)
{
  struct kiln_sandbox_rlimit l;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_sandbox_rlimit_parse ("nofile=1024:4096", &l, &err), 0);
  cr_assert (l.resource == RLIMIT_NOFILE && l.soft == 1024 && l.hard == 4096 && strcmp (l.name, "nofile") == 0);
  cr_assert_eq (kiln_sandbox_rlimit_parse ("nproc=50", &l, &err), 0);
  cr_assert (l.resource == RLIMIT_NPROC && l.soft == 50 && l.hard == 50);
  cr_assert_eq (kiln_sandbox_rlimit_parse ("core=0:-1", &l, &err), 0);
  cr_assert (l.soft == 0 && l.hard == (unsigned long long) RLIM_INFINITY);
  const char *bad[] = { "nofile", "nofile=", "nofile=2:1", "nofile=-2", "nofile=1x", "bogus=1", "=1", "nofile=1:" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      cr_assert_lt (kiln_sandbox_rlimit_parse (bad[i], &l, &err), 0, "%s", bad[i]);
      cr_assert (strstr (err->msg, bad[i]) && err->kind == KILN_E_USAGE, "%s", err->msg);
      kiln_error_free (&err);
    }
}
