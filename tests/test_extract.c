/* tests/test_extract.c - the hardened extractor against the crafted tars of
 * testdata/extract (made by testdata/extract/make.py).  Every test extracts
 * into <tmp>/root next to a tripwire dir <tmp>/tripwire whose one file must
 * keep its inode, mode, link count and content, and nothing may appear in
 * <tmp> besides the two. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/store.h"

static char root[4200], trip[4200];
static int rootfd = -1;
static struct stat secret_st;
static char *last_msg;
static struct kiln_error *last_err;

static void
setup (void)
{
  kiln_test_tmp_init ();
  snprintf (root, sizeof root, "%s/root", kiln_test_tmpdir ());
  snprintf (trip, sizeof trip, "%s/tripwire", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (root, 0755), 0);
  cr_assert_eq (mkdir (trip, 0755), 0);
  char secret[4300];
  snprintf (secret, sizeof secret, "%s/secret", trip);
  int fd = open (secret, O_WRONLY | O_CREAT | O_EXCL, 0400);
  cr_assert_geq (fd, 0);
  cr_assert_eq (write (fd, "secret", 6), 6);
  close (fd);
  cr_assert_eq (lstat (secret, &secret_st), 0);
  rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cr_assert_geq (rootfd, 0);
}

static void
teardown (void)
{
  close (rootfd);
  free (last_msg);
  last_msg = NULL;
  kiln_error_free (&last_err);
  kiln_test_tmp_fini ();
}

TestSuite (extract, .init = setup, .fini = teardown);

static void
assert_dir_holds (const char *dir, const char *const *names, size_t n)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  size_t seen = 0;
  cr_assert_not_null (d);
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      bool known = false;
      for (size_t i = 0; i < n; i++)
        known |= strcmp (de->d_name, names[i]) == 0;
      cr_assert (known, "unexpected `%s` in `%s`", de->d_name, dir);
      seen++;
    }
  closedir (d);
  cr_assert_eq (seen, n, "`%s` holds %zu entries, want %zu", dir, seen, n);
}

static void
assert_tripwire_intact (void)
{
  static const char *const top[] = { "root", "tripwire" };
  static const char *const inside[] = { "secret" };
  char secret[4300], buf[16] = "";
  struct stat st;

  assert_dir_holds (kiln_test_tmpdir (), top, 2);
  assert_dir_holds (trip, inside, 1);
  snprintf (secret, sizeof secret, "%s/secret", trip);
  cr_assert_eq (lstat (secret, &st), 0);
  cr_assert_eq (st.st_ino, secret_st.st_ino);
  cr_assert_eq (st.st_mode, secret_st.st_mode, "tripwire mode changed to %o", st.st_mode);
  cr_assert_eq (st.st_nlink, 1, "tripwire got a hardlink");
  cr_assert_eq (st.st_uid, secret_st.st_uid);
  cr_assert_eq (st.st_mtim.tv_sec, secret_st.st_mtim.tv_sec);
  int fd = open (secret, O_RDONLY);
  cr_assert_eq (read (fd, buf, sizeof buf), 6);
  close (fd);
  cr_assert_str_eq (buf, "secret");
}

static int
extract_with (const char *tar, const struct kiln_extract_opts *o)
{
  char rel[256];
  snprintf (rel, sizeof rel, "extract/%s", tar);
  int fd = open (kiln_test_data (rel), O_RDONLY | O_CLOEXEC);
  cr_assert_geq (fd, 0, "open %s: %s", rel, strerror (errno));
  free (last_msg);
  last_msg = NULL;
  kiln_error_free (&last_err);
  int r = kiln_extract_fd (fd, tar, rootfd, o, &last_err);
  close (fd);
  if (r < 0)
    {
      cr_assert_not_null (last_err);
      last_msg = kiln_error_format (last_err);
    }
  else
    cr_assert_null (last_err);
  return r;
}

static int
extract (const char *tar, bool whiteouts)
{
  struct kiln_extract_opts o = { .whiteouts = whiteouts, .keep_owner = true };
  return extract_with (tar, &o);
}

static const char *
rpath (const char *rel)
{
  static char p[8400];
  snprintf (p, sizeof p, "%s/%s", root, rel);
  return p;
}

static bool
exists (const char *rel)
{
  struct stat st;
  return lstat (rpath (rel), &st) == 0;
}

static struct stat
lst (const char *rel)
{
  struct stat st;
  cr_assert_eq (lstat (rpath (rel), &st), 0, "lstat root/%s: %s", rel, strerror (errno));
  return st;
}

static void
assert_content (const char *rel, const char *want)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, rpath (rel), 1 << 20, &b, &err), 0, "read root/%s", rel);
  cr_assert_str_eq (b.buf, want, "root/%s", rel);
  kiln_buf_release (&b);
}

static void
assert_root_empty (void)
{
  assert_dir_holds (root, NULL, 0);
}

/* ---- path traversal ---- */

Test (extract, dotdot_names_are_confined_to_root)
{
  cr_assert_eq (extract ("escape_dotdot.tar", true), 0, "%s", last_msg);
  assert_content ("tripwire/dotdot", "1");
  assert_content ("tripwire/slash-dotdot", "2");
  assert_content ("x", "3");
  assert_tripwire_intact ();
}

Test (extract, absolute_names_are_confined_to_root)
{
  cr_assert_eq (extract ("escape_absolute.tar", true), 0, "%s", last_msg);
  assert_content ("kiln-abs-file", "abs");
  assert_content ("etc/kiln-abs-passwd", "abs2");
  cr_assert_neq (access ("/kiln-abs-file", F_OK), 0);
  cr_assert_neq (access ("/etc/kiln-abs-passwd", F_OK), 0);
  assert_tripwire_intact ();
}

Test (extract, names_longer_than_4096_bytes_are_rejected)
{
  cr_assert_lt (extract ("long_name.tar", true), 0);
  cr_assert (strstr (last_msg, "longer than 4096 bytes"), "%s", last_msg);
  assert_root_empty ();
}

/* ---- symlinks ---- */

Test (extract, writes_through_symlinks_to_outside_land_in_root)
{
  char target[256] = "";
  cr_assert_eq (extract ("symlink_outside.tar", true), 0, "%s", last_msg);
  assert_content ("tmp/kiln-tripwire/pwned", "abs");
  assert_content ("tripwire/pwned-rel", "rel");
  cr_assert_gt (readlink (rpath ("link"), target, sizeof target - 1), 0);
  cr_assert_str_eq (target, "/tmp/kiln-tripwire", "symlink targets are stored as-is");
  cr_assert_neq (access ("/tmp/kiln-tripwire/pwned", F_OK), 0);
  assert_tripwire_intact ();
}

Test (extract, write_through_dangling_symlink_fails_without_escaping)
{
  cr_assert_lt (extract ("symlink_dangling.tar", true), 0);
  cr_assert (strstr (last_msg, "extract `symlink_dangling.tar`: entry `link/pwned`"), "%s", last_msg);
  assert_tripwire_intact ();
}

Test (extract, relative_symlink_chains_resolve_in_root)
{
  cr_assert_eq (extract ("symlink_chain.tar", true), 0, "%s", last_msg);
  assert_content ("etc/x", "chain");
  assert_content ("tripwire/via-up", "up");
  cr_assert (S_ISLNK (lst ("up").st_mode));
  assert_tripwire_intact ();
}

/* An entry that names the root ("", ".", "/") is skipped whatever its type,
 * as BuildKit does (go-archive Unpack: Clean("") is ".", and "." on the
 * existing destination directory is skipped before anything is removed or
 * applied) and containerd (an entry resolving to the root is ignored): the
 * root is never replaced (CVE-2021-29136) and keeps its own metadata. */
Test (extract, symlink_named_dot_is_skipped_and_root_stays)
{
  cr_assert_eq (extract ("symlink_root.tar", true), 0, "%s", last_msg);
  struct stat st;
  cr_assert_eq (lstat (root, &st), 0);
  cr_assert (S_ISDIR (st.st_mode));
  assert_root_empty ();
  assert_tripwire_intact ();
}

Test (extract, empty_name_directory_is_skipped_without_its_metadata)
{
  struct stat before, after;
  cr_assert_eq (lstat (root, &before), 0);
  cr_assert_eq (extract ("empty_name_dir.tar", false), 0, "%s", last_msg);
  assert_content ("after", "after");
  cr_assert_eq (lstat (root, &after), 0);
  cr_assert_eq (after.st_mode & 07777, before.st_mode & 07777, "the entry's mode 0700 was applied to the root");
  cr_assert_neq (after.st_mtim.tv_sec, 1000000000, "the entry's mtime was applied to the root");
  assert_tripwire_intact ();
}

Test (extract, empty_name_file_is_skipped)
{
  cr_assert_eq (extract ("empty_name_file.tar", false), 0, "%s", last_msg);
  static const char *const only[] = { "after" };
  assert_dir_holds (root, only, 1);
  assert_content ("after", "after");
  struct stat st;
  cr_assert_eq (lstat (root, &st), 0);
  cr_assert (S_ISDIR (st.st_mode));
  assert_tripwire_intact ();
}

/* ---- hardlinks ---- */

Test (extract, hardlink_to_missing_absolute_target_names_archive_and_entry)
{
  cr_assert_lt (extract ("hardlink_outside.tar", true), 0);
  cr_assert_str_eq (last_msg, "extract `hardlink_outside.tar`: entry `h`: hardlink target `/etc/passwd` not found");
  cr_assert_eq (last_err->kind, KILN_E_NOTFOUND);
  assert_root_empty ();
  assert_tripwire_intact ();
}

Test (extract, hardlink_targets_resolve_in_root)
{
  cr_assert_eq (extract ("hardlink_inside.tar", true), 0, "%s", last_msg);
  struct stat p = lst ("etc/passwd"), h1 = lst ("h1"), h2 = lst ("h2");
  cr_assert_eq (h1.st_ino, p.st_ino);
  cr_assert_eq (h2.st_ino, p.st_ino);
  cr_assert_eq (p.st_nlink, 3);
  assert_tripwire_intact ();
}

Test (extract, hardlink_to_tripwire_is_not_found)
{
  cr_assert_lt (extract ("hardlink_tripwire.tar", true), 0);
  cr_assert (strstr (last_msg, "hardlink target `../tripwire/secret` not found"), "%s", last_msg);
  cr_assert_not (exists ("h"));
  assert_tripwire_intact ();
}

Test (extract, hardlink_through_symlinked_dir_stays_in_root)
{
  cr_assert_lt (extract ("hardlink_symlink_dir.tar", true), 0);
  cr_assert (strstr (last_msg, "hardlink target `ldir/secret` not found"), "%s", last_msg);
  cr_assert_not (exists ("h"));
  assert_tripwire_intact ();
}

Test (extract, hardlink_to_symlink_links_the_symlink_and_chmods_nothing)
{
  cr_assert_eq (extract ("hardlink_symlink_chmod.tar", true), 0, "%s", last_msg);
  struct stat hl = lst ("hl"), sym = lst ("sym");
  cr_assert (S_ISLNK (hl.st_mode));
  cr_assert_eq (hl.st_ino, sym.st_ino);
  assert_tripwire_intact ();
}

Test (extract, hardlink_payload_is_never_written_into_the_target)
{
  cr_assert_eq (extract ("hardlink_data.tar", true), 0, "%s", last_msg);
  assert_content ("f", "orig");
  cr_assert_eq (lst ("h").st_ino, lst ("f").st_ino);
}

Test (extract, ustar_hardlink_with_body_is_rejected_and_target_unchanged)
{
  cr_assert_lt (extract ("hardlink_data_ustar.tar", true), 0);
  cr_assert (strstr (last_msg, "extract `hardlink_data_ustar.tar`"), "%s", last_msg);
  assert_content ("f", "orig");
}

/* ---- whiteouts ---- */

Test (extract, whiteouts_of_dot_dotdot_and_reserved_names_are_invalid)
{
  static const char *const tars[] = { "whiteout_dot.tar", "whiteout_dotdot.tar", "whiteout_etc_dotdot.tar",
                                      "whiteout_whwh.tar" };
  for (size_t i = 0; i < sizeof tars / sizeof *tars; i++)
    {
      cr_assert_lt (extract (tars[i], true), 0, "%s", tars[i]);
      cr_assert (strstr (last_msg, "invalid whiteout"), "%s: %s", tars[i], last_msg);
      cr_assert (strstr (last_msg, tars[i]), "%s", last_msg);
    }
  assert_tripwire_intact ();
}

Test (extract, whiteout_with_dotdot_only_removes_inside_root)
{
  cr_assert_eq (mkdir (rpath ("tripwire"), 0755), 0);
  cr_assert_eq (mkdir (rpath ("tripwire/inner"), 0755), 0);
  cr_assert_eq (mkdir (rpath ("secret"), 0755), 0);
  cr_assert_eq (extract ("whiteout_escape.tar", true), 0, "%s", last_msg);
  cr_assert_not (exists ("tripwire"));
  cr_assert_not (exists ("secret"));
  assert_tripwire_intact ();
}

Test (extract, regular_whiteouts_remove_lower_entries_in_root)
{
  cr_assert_eq (extract ("lower.tar", true), 0, "%s", last_msg);
  cr_assert_eq (extract ("whiteout_regular.tar", true), 0, "%s", last_msg);
  cr_assert_not (exists ("etc/passwd"));
  cr_assert_not (exists ("etc/group"), "whiteout under localetc -> /etc removes root/etc/group");
  cr_assert_not (exists ("d"));
  cr_assert (exists ("keep"));
  cr_assert (S_ISLNK (lst ("localetc").st_mode));
  assert_content ("newfile", "new");
  cr_assert_not (exists (".wh.d"));
  cr_assert_not (exists ("etc/.wh.passwd"));
  cr_assert_not (exists ("nodir"));
  assert_tripwire_intact ();
}

Test (extract, opaque_whiteout_hides_lower_entries_only)
{
  cr_assert_eq (extract ("lower.tar", true), 0, "%s", last_msg);
  cr_assert_eq (extract ("whiteout_opaque.tar", true), 0, "%s", last_msg);
  cr_assert (exists ("o/upper"));
  cr_assert_not (exists ("o/lower1"));
  cr_assert_not (exists ("o/lowerdir"));
  cr_assert_not (exists ("o/.wh..wh..opq"));
  /* marker after the layer's own entries: those stay */
  cr_assert (exists ("p/upper-before"));
  cr_assert (exists ("p/sub/newer"));
  cr_assert_not (exists ("p/lower"));
  cr_assert_not (exists ("p/sub/lowerfile"));
  cr_assert (exists ("keep"));
  assert_tripwire_intact ();
}

Test (extract, opaque_whiteout_over_10k_entries_is_fast)
{
  char name[64];
  cr_assert_eq (mkdir (rpath ("o"), 0755), 0);
  int dfd = open (rpath ("o"), O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < 10000; i++)
    {
      snprintf (name, sizeof name, "f%05d", i);
      int fd = openat (dfd, name, O_WRONLY | O_CREAT, 0644);
      cr_assert_geq (fd, 0);
      close (fd);
    }
  close (dfd);
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC, &a);
  cr_assert_eq (extract ("whiteout_opaque.tar", true), 0, "%s", last_msg);
  clock_gettime (CLOCK_MONOTONIC, &b);
  double secs = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
  cr_assert_lt (secs, 2.0, "took %.2fs", secs);
  static const char *const left[] = { "upper" };
  assert_dir_holds (rpath ("o"), left, 1);
}

Test (extract, whiteout_names_are_plain_files_when_whiteouts_are_off)
{
  cr_assert_eq (extract ("lower.tar", true), 0, "%s", last_msg);
  cr_assert_eq (extract ("whiteout_regular.tar", false), 0, "%s", last_msg);
  cr_assert (S_ISREG (lst ("etc/.wh.passwd").st_mode));
  cr_assert (S_ISREG (lst (".wh.d").st_mode));
  cr_assert (exists ("etc/passwd"));
  cr_assert (exists ("d/sub/f"));
}

/* ---- special files and metadata ---- */

Test (extract, device_nodes_and_fifos_are_created)
{
  kiln_test_require (KILN_NEED_ROOT);
  cr_assert_eq (extract ("device.tar", true), 0, "%s", last_msg);
  struct stat dev = lst ("dev/null2"), fifo = lst ("fifo");
  cr_assert (S_ISCHR (dev.st_mode));
  cr_assert_eq (dev.st_rdev, makedev (1, 3));
  cr_assert_eq (dev.st_mode & 07777, 0666);
  cr_assert (S_ISFIFO (fifo.st_mode));
  cr_assert_eq (fifo.st_mode & 07777, 0640);
}

static bool
write_str (const char *path, const char *s)
{
  int fd = open (path, O_WRONLY);
  bool ok = fd >= 0 && write (fd, s, strlen (s)) == (ssize_t) strlen (s);
  if (fd >= 0)
    close (fd);
  return ok;
}

/* In a user namespace mknod of a device fails with EPERM even for a mapped
 * root: the device is skipped with a warning, the FIFO still created. */
static int
extract_devices_in_userns (void)
{
  if (unshare (CLONE_NEWUSER) < 0 || !write_str ("/proc/self/setgroups", "deny")
      || !write_str ("/proc/self/uid_map", "0 0 1") || !write_str ("/proc/self/gid_map", "0 0 1"))
    return 10;
  struct kiln_extract_opts o = { .whiteouts = true };
  struct kiln_error *err = NULL;
  char rel[] = "extract/device.tar";
  int fd = open (kiln_test_data (rel), O_RDONLY);
  if (kiln_extract_fd (fd, "device.tar", rootfd, &o, &err) < 0)
    return 11;
  return exists ("dev/null2") ? 12 : !S_ISFIFO (lst ("fifo").st_mode) ? 13 : 0;
}

Test (extract, device_nodes_are_skipped_when_mknod_is_not_permitted)
{
  kiln_test_require (KILN_NEED_USERNS);
  pid_t pid = fork ();
  if (pid == 0)
    _exit (extract_devices_in_userns ());
  int status = 0;
  cr_assert_eq (waitpid (pid, &status, 0), pid);
  cr_assert (WIFEXITED (status));
  cr_assert_eq (WEXITSTATUS (status), 0, "child step %d failed", WEXITSTATUS (status));
  cr_assert (exists ("dev"));
  cr_assert_not (exists ("dev/null2"));
}

Test (extract, setuid_bits_owner_and_allowed_xattrs_are_kept)
{
  kiln_test_require (KILN_NEED_ROOT);
  static const unsigned char cap[20] = { 0x01, 0, 0, 0x02, 0, 0x04 };
  unsigned char got[64];
  cr_assert_eq (extract ("setuid.tar", true), 0, "%s", last_msg);
  cr_assert_eq (lst ("bin/su").st_mode & 07777, 04755);
  struct stat sg = lst ("bin/sg");
  cr_assert_eq (sg.st_mode & 07777, 02755, "chown must come before chmod: mode %o", sg.st_mode);
  cr_assert_eq (sg.st_uid, 1000);
  cr_assert_eq (sg.st_gid, 1001);
  struct stat tmp = lst ("tmp");
  cr_assert (S_ISDIR (tmp.st_mode));
  cr_assert_eq (tmp.st_mode & 07777, 01777);
  cr_assert_eq (lgetxattr (rpath ("bin/ping"), "user.foo", got, sizeof got), 3);
  cr_assert_eq (memcmp (got, "bar", 3), 0);
  cr_assert_eq (lgetxattr (rpath ("bin/ping"), "security.capability", got, sizeof got), 20);
  cr_assert_eq (memcmp (got, cap, 20), 0);
  cr_assert_lt (lgetxattr (rpath ("bin/ping"), "trusted.evil", got, sizeof got), 0);
  cr_assert_lt (lgetxattr (rpath ("bin/ping"), "user.overlay.redirect", got, sizeof got), 0);
}

Test (extract, chown_option_overrides_every_owner)
{
  kiln_test_require (KILN_NEED_ROOT);
  struct kiln_extract_opts o = { .has_chown = true, .uid = 123, .gid = 456 };
  cr_assert_eq (extract_with ("small.tar", &o), 0, "%s", last_msg);
  struct stat f = lst ("hello/world"), d = lst ("hello");
  cr_assert_eq (f.st_uid, 123);
  cr_assert_eq (f.st_gid, 456);
  cr_assert_eq (d.st_uid, 123);
  cr_assert_eq (d.st_gid, 456);
}

Test (extract, later_entries_replace_files_dirs_and_symlinks)
{
  cr_assert_eq (extract ("replace.tar", true), 0, "%s", last_msg);
  cr_assert (S_ISDIR (lst ("a").st_mode));
  assert_content ("a/child", "c");
  cr_assert (S_ISREG (lst ("b").st_mode));
  assert_content ("b", "now a file");
  cr_assert (S_ISREG (lst ("c").st_mode), "the file must replace the symlink, not write through it");
  assert_content ("c", "third");
  assert_tripwire_intact ();
}

Test (extract, readonly_dir_receives_children_and_keeps_mode_and_mtime)
{
  cr_assert_eq (extract ("ro_dir.tar", true), 0, "%s", last_msg);
  assert_content ("ro/child", "c");
  assert_content ("ro/sub/f", "f");
  struct stat ro = lst ("ro"), sub = lst ("ro/sub");
  cr_assert_eq (ro.st_mode & 07777, 0555);
  cr_assert_eq (sub.st_mode & 07777, 0500);
  cr_assert_eq (ro.st_mtim.tv_sec, 1234567, "directory mtime set after its children");
  cr_assert_eq (lst ("ro/child").st_mtim.tv_sec, 1000000000);
}

/* ---- formats ---- */

Test (extract, gzip_and_zstd_tars_are_decompressed)
{
  cr_assert_eq (extract ("small.tar.gz", true), 0, "%s", last_msg);
  assert_content ("hello/world", "hi\n");
  cr_assert_eq (unlink (rpath ("hello/world")), 0);
  cr_assert_eq (extract ("small.tar.zst", true), 0, "%s", last_msg);
  assert_content ("hello/world", "hi\n");
}

Test (extract, text_file_is_rejected_and_nothing_is_written)
{
  cr_assert_lt (extract ("notatar.txt", true), 0);
  cr_assert (strstr (last_msg, "extract `notatar.txt`"), "%s", last_msg);
  assert_root_empty ();
  assert_tripwire_intact ();
}

/* Go's archive/tar (BuildKit's untar) ends a tar at a clean end of input or
 * at two zero blocks; a partial marker block, a zero block followed by a
 * non-zero one, and a cut entry are errors that name the file. */
Test (extract, tar_without_or_with_one_end_block_is_accepted)
{
  static const char *const ok[] = { "end_none.tar", "end_one_block.tar", "end_record_cut.tar" };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    {
      cr_assert_eq (extract (ok[i], false), 0, "%s: %s", ok[i], last_msg);
      assert_content ("hello/world", "hi\n");
      cr_assert_eq (unlink (rpath ("hello/world")), 0);
    }
}

Test (extract, truncated_end_marker_or_entry_fails_naming_the_file)
{
  static const char *const bad[] = { "end_first_block_cut.tar", "end_second_block_cut.tar",
                                     "end_second_block_cut.tar.gz", "end_zero_then_garbage.tar", "end_data_cut.tar" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      cr_assert_lt (extract (bad[i], false), 0, "%s was accepted", bad[i]);
      char want[128];
      snprintf (want, sizeof want, "extract `%s`: ", bad[i]);
      cr_assert (strstr (last_msg, want), "%s", last_msg);
      cr_assert (strcasestr (last_msg, "truncated"), "%s", last_msg);
    }
  assert_tripwire_intact ();
}

Test (extract, tar_compressed_twice_is_rejected)
{
  cr_assert_lt (extract ("small.tar.gz.gz", false), 0);
  cr_assert (strstr (last_msg, "extract `small.tar.gz.gz`: compressed more than once"), "%s", last_msg);
  assert_root_empty ();
}

static bool
is_archive (const char *name)
{
  char rel[256];
  snprintf (rel, sizeof rel, "extract/%s", name);
  int fd = open (kiln_test_data (rel), O_RDONLY);
  cr_assert_geq (fd, 0);
  cr_assert_eq (lseek (fd, 7, SEEK_SET), 7);
  bool r = kiln_extract_is_archive (fd);
  cr_assert_eq (lseek (fd, 0, SEEK_CUR), 7, "offset must be unchanged");
  close (fd);
  return r;
}

Test (extract, is_archive_detects_tars_and_compressed_tars_only)
{
  cr_assert (is_archive ("small.tar"));
  cr_assert (is_archive ("setuid.tar"));
  cr_assert (is_archive ("small.tar.gz"));
  cr_assert (is_archive ("small.tar.zst"));
  cr_assert_not (is_archive ("notatar.txt"));
  /* compressed, but what it holds is not a tar: ADD copies it as it is */
  cr_assert_not (is_archive ("notatar.txt.gz"));
  cr_assert_not (is_archive ("make.py"));
  /* one decompression, then a tar (BuildKit isArchivePath): a gzip'd tar.xz
   * or tar.gz is not an archive, ADD copies the file as it is */
  cr_assert_not (is_archive ("small.tar.xz.gz"));
  cr_assert_not (is_archive ("small.tar.gz.gz"));
  int fd = open (rpath ("empty"), O_RDWR | O_CREAT, 0644);
  cr_assert_not (kiln_extract_is_archive (fd));
  /* a 512-byte block with a tar's shape but a wrong checksum */
  char rel[] = "extract/small.tar";
  int tfd = open (kiln_test_data (rel), O_RDONLY);
  char block[512];
  cr_assert_eq (read (tfd, block, sizeof block), 512);
  close (tfd);
  block[0] ^= 1;
  cr_assert_eq (pwrite (fd, block, sizeof block, 0), 512);
  cr_assert_not (kiln_extract_is_archive (fd));
  close (fd);
}

/* ---- layers from the store ---- */

static void
put_blob (struct kiln_store *st, const char *tar, struct kiln_descriptor *d)
{
  char rel[256];
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  snprintf (rel, sizeof rel, "extract/%s", tar);
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, kiln_test_data (rel), 1 << 20, &b, &err), 0);
  memset (d, 0, sizeof *d);
  cr_assert_eq (kiln_store_blob_put (st, b.buf, b.len, &d->digest, &err), 0);
  d->size = (int64_t) b.len;
  kiln_buf_release (&b);
}

Test (extract, layers_are_applied_in_order_with_whiteouts)
{
  char store_path[4300];
  struct kiln_store *st = NULL;
  struct kiln_error *err = NULL;
  struct kiln_descriptor layers[2];

  snprintf (store_path, sizeof store_path, "%s/root/.store", kiln_test_tmpdir ());
  cr_assert_eq (kiln_store_open (store_path, &st, &err), 0);
  put_blob (st, "lower.tar", &layers[0]);
  put_blob (st, "whiteout_opaque.tar", &layers[1]);
  cr_assert_eq (kiln_extract_layers (st, layers, 2, rootfd, &err), 0, "%s", err ? err->msg : "");
  cr_assert (exists ("etc/passwd"));
  cr_assert (exists ("o/upper"));
  cr_assert_not (exists ("o/lower1"));

  /* a missing blob is an error naming the layer */
  kiln_digest_of ("nope", 4, &layers[1].digest);
  cr_assert_lt (kiln_extract_layers (st, layers, 2, rootfd, &err), 0);
  cr_assert (strstr (err->msg, "layer 2"), "%s", err->msg);
  kiln_error_free (&err);
  kiln_store_free (st);
  assert_tripwire_intact ();
}
