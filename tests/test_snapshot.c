/* tests/test_snapshot.c - snapshots in overlay format, and step mounts in
 * overlay and copy mode (root only). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "helpers.h"
#include "snapshot_fixture.h"

FX_SUITE (snapshot);

Test (snapshot, whiteouts_become_overlay_markers)
{
  char **lowers = NULL;
  struct stat st;
  char v[4] = "";
  char p[8400];
  fx_prepare (&fx, 2, &lowers);
  cr_assert_eq (kiln_strv_len (lowers), 2);
  /* top first: lowers[0] is layer 2 */
  snprintf (p, sizeof p, "%s/gone", lowers[0]);
  cr_assert_eq (lstat (p, &st), 0);
  cr_assert (S_ISCHR (st.st_mode) && st.st_rdev == makedev (0, 0));
  cr_assert_not (fx_exists (lowers[0], ".wh.gone"));
  snprintf (p, sizeof p, "%s/opq", lowers[0]);
  cr_assert_eq (getxattr (p, "trusted.overlay.opaque", v, sizeof v), 1);
  cr_assert_eq (v[0], 'y');
  cr_assert_eq (getxattr (p, "user.overlay.opaque", v, sizeof v), 1);
  cr_assert_not (fx_exists (lowers[0], "opq/.wh..wh..opq"));
  cr_assert_not (fx_exists (lowers[0], "a"));
  char *one = fx_read (lowers[1], "a/file1");
  cr_assert_str_eq (one, "one");
  free (one);
  cr_assert (strstr (lowers[1], "/snapshots/") != NULL && lowers[1][0] == '/');
  kiln_strv_free (lowers);
}

Test (snapshot, second_prepare_leaves_snapshots_untouched)
{
  char **l1 = NULL, **l2 = NULL;
  struct stat a[2], b[2];
  fx_prepare (&fx, 2, &l1);
  for (int i = 0; i < 2; i++)
    cr_assert_eq (stat (l1[i], &a[i]), 0);
  sleep (1);
  fx_prepare (&fx, 2, &l2);
  for (int i = 0; i < 2; i++)
    {
      cr_assert_str_eq (l1[i], l2[i]);
      cr_assert_eq (stat (l2[i], &b[i]), 0);
      cr_assert_eq (a[i].st_ino, b[i].st_ino);
      cr_assert_eq (a[i].st_ctim.tv_sec, b[i].st_ctim.tv_sec);
      cr_assert_eq (a[i].st_ctim.tv_nsec, b[i].st_ctim.tv_nsec);
    }
  kiln_strv_free (l1);
  kiln_strv_free (l2);
}

Test (snapshot, prepare_of_one_layer_names_it_by_its_diff_id)
{
  char **l = NULL;
  fx_prepare (&fx, 1, &l);
  cr_assert_eq (kiln_strv_len (l), 1);
  cr_assert (kiln_str_has_suffix (l[0], fx.diff_ids[0] + 7));
  kiln_strv_free (l);
}

Test (snapshot, leftover_of_killed_prepare_is_ignored_then_removed)
{
  char p[8400], **l = NULL;
  struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
  snprintf (p, sizeof p, "%s/store/snapshots", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (p, 0700), 0);
  snprintf (p, sizeof p, "%s/store/snapshots/.tmp-1-dead", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (p, 0755), 0);
  char half[8500];
  snprintf (half, sizeof half, "%s/a", p);
  cr_assert_eq (mkdir (half, 0755), 0); /* half a snapshot */
  cr_assert_eq (utimensat (AT_FDCWD, p, old, 0), 0);
  fx_prepare (&fx, 2, &l);
  cr_assert_not (fx_exists (p, ""), "stale temp dir `%s` still there", p);
  char *one = fx_read (l[1], "a/file1");
  cr_assert_str_eq (one, "one");
  free (one);
  kiln_strv_free (l);
}

static void
check_merged_view (bool copy)
{
  char **lowers = NULL;
  struct kiln_mount *m = NULL;
  struct kiln_error *err = NULL;
  struct kiln_mount_opts o = { .force_copy = copy };
  fx_prepare (&fx, 2, &lowers);
  int r = kiln_snapshot_mount (fx.st, lowers, &o, &m, &err);
  cr_assert_eq (r, 0, "mount: %s", err ? err->msg : "");
  cr_assert_eq (m->copy_mode, copy);
  char *s = fx_read (m->merged, "a/file1");
  cr_assert_str_eq (s, "one");
  free (s);
  cr_assert_not (fx_exists (m->merged, "gone"));
  cr_assert (fx_exists (m->merged, "opq/newfile"));
  cr_assert_not (fx_exists (m->merged, "opq/lowfile"));
  cr_assert (fx_exists (m->merged, "link"));
  struct stat st;
  char p[8400];
  snprintf (p, sizeof p, "%s/opq", m->merged);
  cr_assert_eq (stat (p, &st), 0);
  cr_assert_eq (st.st_mode & 07777, 0711);
  if (!copy)
    {
      snprintf (p, sizeof p, "%s/created", m->merged);
      int fd = open (p, O_WRONLY | O_CREAT, 0644);
      cr_assert_geq (fd, 0);
      close (fd);
      cr_assert (fx_exists (m->upper, "created"));
    }
  cr_assert_eq (kiln_snapshot_unmount (m, &err), 0);
  cr_assert_eq (fx_exists (m->merged, "a"), copy, "merged must be empty after unmount in overlay mode only");
  cr_assert_eq (kiln_snapshot_cleanup (fx.st, m, &err), 0);
  fx_assert_no_mounts ();
  kiln_strv_free (lowers);
}

Test (snapshot, overlay_mount_shows_merged_view)
{
  check_merged_view (false);
}

Test (snapshot, copy_mode_shows_merged_view)
{
  check_merged_view (true);
}

Test (snapshot, mount_without_layers_uses_empty_lower)
{
  struct kiln_mount *m = NULL;
  struct kiln_error *err = NULL;
  char *none[] = { NULL };
  cr_assert_eq (kiln_snapshot_mount (fx.st, none, NULL, &m, &err), 0, "%s", err ? err->msg : "");
  cr_assert (m->mounted);
  cr_assert_not (fx_exists (m->merged, "a"));
  cr_assert_eq (kiln_snapshot_cleanup (fx.st, m, &err), 0);
  char p[8400];
  snprintf (p, sizeof p, "%s/store/tmp", kiln_test_tmpdir ());
  cr_assert_eq (rmdir (p), 0, "tmp not empty after cleanup");
}
