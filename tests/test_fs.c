/* test_fs.c - kiln_fs_copy_tree: the seed of a RUN cache mount from a
 * stage's path (a copy that keeps what a layer keeps, follows nothing). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

TestSuite (fs, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static char *
tpath (const char *rel)
{
  return kiln_xasprintf ("%s/%s", kiln_test_tmpdir (), rel);
}

static void
put (const char *rel, const char *data, mode_t mode)
{
  kiln_autofree char *p = tpath (rel);
  int fd = open (p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  cr_assert_geq (fd, 0, "create %s: %s", p, strerror (errno));
  cr_assert_eq (write (fd, data, strlen (data)), (ssize_t) strlen (data));
  cr_assert_eq (fchmod (fd, mode), 0);
  close (fd);
}

static struct stat
lst (const char *rel)
{
  kiln_autofree char *p = tpath (rel);
  struct stat st;
  cr_assert_eq (lstat (p, &st), 0, "lstat %s: %s", p, strerror (errno));
  return st;
}

static int
copy (const char *src, const char *name, struct kiln_error **err)
{
  kiln_autofree char *s = tpath (src);
  kiln_autoclose int sfd = open (s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  kiln_autoclose int dfd = open (kiln_test_tmpdir (), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cr_assert_geq (sfd, 0);
  return kiln_fs_copy_tree (sfd, dfd, name, err);
}

Test (fs, copy_tree_keeps_types_modes_times_and_does_not_follow_symlinks)
{
  struct kiln_error *err = NULL;
  kiln_autofree char *src = tpath ("src"), *sub = tpath ("src/sub"), *outside = tpath ("outside");
  cr_assert_eq (mkdir (src, 0750), 0);
  cr_assert_eq (mkdir (sub, 0700), 0);
  cr_assert_eq (mkdir (outside, 0755), 0);
  put ("outside/o", "outside", 0644);
  put ("src/sub/f", "content", 0640);
  put ("src/x", "setuid", 04755);
  kiln_autofree char *l1 = tpath ("src/abs"), *l2 = tpath ("src/sub/rel"), *fifo = tpath ("src/fifo");
  cr_assert_eq (symlink (outside, l1), 0);
  cr_assert_eq (symlink ("../x", l2), 0);
  cr_assert_eq (mkfifo (fifo, 0600), 0);
  struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 5 } };
  kiln_autofree char *f = tpath ("src/sub/f");
  cr_assert_eq (utimensat (AT_FDCWD, f, ts, 0), 0);
  cr_assert_eq (utimensat (AT_FDCWD, sub, ts, 0), 0);

  cr_assert_eq (copy ("src", "dst", &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (lst ("dst").st_mode, S_IFDIR | 0750);
  cr_assert_eq (lst ("dst/sub").st_mode, S_IFDIR | 0700);
  cr_assert_eq (lst ("dst/sub").st_mtim.tv_sec, 1000000000, "a directory's mtime after its children");
  cr_assert_eq (lst ("dst/sub/f").st_mode, S_IFREG | 0640);
  cr_assert_eq (lst ("dst/sub/f").st_mtim.tv_nsec, 5);
  cr_assert_eq (lst ("dst/x").st_mode, S_IFREG | 04755, "set-id bits survive the chown");
  cr_assert (S_ISFIFO (lst ("dst/fifo").st_mode));
  cr_assert (S_ISLNK (lst ("dst/abs").st_mode), "a symlink stays a symlink");
  cr_assert (S_ISLNK (lst ("dst/sub/rel").st_mode));
  char target[4096];
  kiln_autofree char *dl = tpath ("dst/abs");
  ssize_t n = readlink (dl, target, sizeof target - 1);
  cr_assert_gt (n, 0);
  target[n] = '\0';
  cr_assert_str_eq (target, outside);
  struct kiln_buf b = KILN_BUF_INIT;
  kiln_autofree char *df = tpath ("dst/sub/f");
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, df, 4096, &b, &err), 0);
  cr_assert_str_eq (b.buf, "content");
  kiln_buf_release (&b);
}

Test (fs, copy_tree_onto_an_existing_name_fails_with_eexist)
{
  struct kiln_error *err = NULL;
  kiln_autofree char *src = tpath ("src"), *dst = tpath ("dst");
  cr_assert_eq (mkdir (src, 0755), 0);
  cr_assert_eq (mkdir (dst, 0755), 0);
  cr_assert_lt (copy ("src", "dst", &err), 0);
  cr_assert_eq (err->errnum, EEXIST, "%s", err->msg);
  kiln_error_free (&err);
}

/* rm -rf by the listing's types: files, symlinks (never followed: the
 * directory one points to survives), fifos, nested and unwritable
 * directories all go. */
Test (fs, rm_rf_removes_every_kind_and_follows_no_symlink)
{
  const char *t = kiln_test_tmpdir ();
  kiln_autofree char *keep = kiln_xasprintf ("%s/keep", t), *kept = kiln_xasprintf ("%s/keep/file", t);
  kiln_autofree char *victim = kiln_xasprintf ("%s/victim", t);
  cr_assert_eq (mkdir (keep, 0755), 0);
  cr_assert_eq (close (open (kept, O_WRONLY | O_CREAT, 0644)), 0);
  cr_assert_eq (mkdir (victim, 0755), 0);
  for (int i = 0; i < 50; i++)
    {
      kiln_autofree char *d = kiln_xasprintf ("%s/d%d", victim, i), *f = kiln_xasprintf ("%s/d%d/f", victim, i);
      cr_assert_eq (mkdir (d, 0755), 0);
      cr_assert_eq (close (open (f, O_WRONLY | O_CREAT, 0644)), 0);
    }
  kiln_autofree char *ln = kiln_xasprintf ("%s/to-keep", victim), *fifo = kiln_xasprintf ("%s/fifo", victim);
  kiln_autofree char *ro = kiln_xasprintf ("%s/d0", victim);
  cr_assert_eq (symlink (keep, ln), 0);
  cr_assert_eq (mkfifo (fifo, 0600), 0);
  cr_assert_eq (chmod (ro, 0500), 0);
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_fs_rm_rf_at (AT_FDCWD, victim, &err), 0, "%s", err ? err->msg : "");
  struct stat st;
  cr_assert_eq (lstat (victim, &st), -1);
  cr_assert_eq (lstat (kept, &st), 0, "the symlink's target directory was emptied");
}
