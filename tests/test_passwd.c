/* test_passwd.c - user[:group] resolution against an image's /etc files. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/passwd.h"

TestSuite (passwd, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static int
image_root (void)
{
  char p[4096];
  snprintf (p, sizeof p, "%s/etc", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (p, 0755), 0);
  snprintf (p, sizeof p, "%s/etc/passwd", kiln_test_tmpdir ());
  FILE *f = fopen (p, "w");
  fputs ("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", f);
  fclose (f);
  snprintf (p, sizeof p, "%s/etc/group", kiln_test_tmpdir ());
  f = fopen (p, "w");
  fputs ("root:x:0:\nappgrp:x:1001:\nextra:x:2000:app,other\n", f);
  fclose (f);
  int fd = open (kiln_test_tmpdir (), O_PATH | O_DIRECTORY);
  cr_assert_geq (fd, 0);
  return fd;
}

Test (passwd, spec_has_names_only_when_a_part_is_not_a_number)
{
  cr_assert_not (kiln_passwd_spec_has_names ("1000"));
  cr_assert_not (kiln_passwd_spec_has_names ("1000:50"));
  cr_assert (kiln_passwd_spec_has_names ("app"));
  cr_assert (kiln_passwd_spec_has_names ("1000:appgrp"));
  cr_assert (kiln_passwd_spec_has_names ("app:50"));
  cr_assert (kiln_passwd_spec_has_names ("10a"));
}

Test (passwd, copy_chown_by_name_gives_passwd_group_by_number_uid_as_gid)
{
  int fd = image_root ();
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_passwd_resolve (fd, "app", true, false, &ids, &err), 0);
  cr_assert_eq (ids.uid, 1000);
  cr_assert_eq (ids.gid, 1001, "COPY --chown=user: the passwd group, as BuildKit readUser");
  kiln_passwd_ids_clear (&ids);
  cr_assert_eq (kiln_passwd_resolve (fd, "1000", true, false, &ids, &err), 0);
  cr_assert_eq (ids.uid, 1000);
  cr_assert_eq (ids.gid, 1000, "COPY --chown=UID: gid = uid, listed in passwd or not");
  kiln_passwd_ids_clear (&ids);
  cr_assert_eq (kiln_passwd_resolve (fd, "app:extra", true, false, &ids, &err), 0);
  cr_assert_eq (ids.gid, 2000);
  kiln_passwd_ids_clear (&ids);
  close (fd);
}

Test (passwd, user_gets_primary_group_and_memberships)
{
  int fd = image_root ();
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_passwd_resolve (fd, "app", false, true, &ids, &err), 0);
  cr_assert_eq (ids.uid, 1000);
  cr_assert_eq (ids.gid, 1001);
  /* the primary group first, as Docker and buildah list it, then /etc/group memberships */
  cr_assert_eq (ids.ngroups, 2);
  cr_assert_eq (ids.groups[0], 1001);
  cr_assert_eq (ids.groups[1], 2000);
  kiln_passwd_ids_clear (&ids);
  close (fd);
}

Test (passwd, numbers_resolve_without_image_files)
{
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_passwd_resolve (-1, "123:456", true, false, &ids, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (ids.uid, 123);
  cr_assert_eq (ids.gid, 456);
  kiln_passwd_ids_clear (&ids);
}

Test (passwd, unknown_names_are_errors_naming_them)
{
  int fd = image_root ();
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_passwd_resolve (fd, "nobody2", true, false, &ids, &err), 0);
  cr_assert (strstr (err->msg, "unknown user `nobody2`"), "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_lt (kiln_passwd_resolve (fd, "app:nogroup", true, false, &ids, &err), 0);
  cr_assert (strstr (err->msg, "unknown group `nogroup`"), "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_lt (kiln_passwd_resolve (fd, "app:", true, false, &ids, &err), 0);
  kiln_error_free (&err);
  close (fd);
}

/* An image root whose /etc/passwd and /etc/group are the given bytes (len
 * given, so NUL bytes can be part of them). */
static int
hostile_root (const char *passwd, size_t plen, const char *group, size_t glen)
{
  char p[4096];
  snprintf (p, sizeof p, "%s/etc", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (p, 0755), 0);
  snprintf (p, sizeof p, "%s/etc/passwd", kiln_test_tmpdir ());
  FILE *f = fopen (p, "w");
  cr_assert_eq (fwrite (passwd, 1, plen, f), plen);
  fclose (f);
  snprintf (p, sizeof p, "%s/etc/group", kiln_test_tmpdir ());
  f = fopen (p, "w");
  cr_assert_eq (fwrite (group, 1, glen, f), glen);
  fclose (f);
  int fd = open (kiln_test_tmpdir (), O_PATH | O_DIRECTORY);
  cr_assert_geq (fd, 0);
  return fd;
}

static void
assert_resolve_error (int fd, const char *spec, bool with_groups, const char *want1, const char *want2)
{
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_passwd_resolve (fd, spec, !with_groups, with_groups, &ids, &err), 0, "%s resolved", spec);
  cr_assert_eq (err->kind, KILN_E_PARSE, "%s: %s", spec, err->msg);
  cr_assert (strstr (err->msg, want1), "%s: %s", spec, err->msg);
  cr_assert (strstr (err->msg, want2), "%s: %s", spec, err->msg);
  kiln_error_free (&err);
}

/* The entry of the user asked for is malformed (too few fields, an id that
 * is empty, not a number, negative or past 32 bits): an error naming the
 * file and the line, never a crash nor a silent uid 0 (BuildKit's
 * moby/sys/user parseLine would give 0 for all of these). */
Test (passwd, malformed_entry_of_the_user_is_an_error_naming_file_and_line)
{
  static const char pw[] = "root:x:0:0:root:/root:/bin/sh\n"
                           "short:x\n"
                           "bare\n"
                           "noid:x::5\n"
                           "alpha:x:abc:5\n"
                           "big:x:99999999999999999999:1\n"
                           "neg:x:-5:1\n"
                           "badgid:x:7:1x\n"
                           "nogid:x:8\n"
                           "wrap:x:4294967296:1\n"
                           "nul:x:1\0002:3\n";
  static const char gr[] = "root:x:0:\nshortg:x\nbadg:x:-1:\n";
  int fd = hostile_root (pw, sizeof pw - 1, gr, sizeof gr - 1);
  assert_resolve_error (fd, "short", false, "line 2 of the image's /etc/passwd", "2 fields, needs at least 4");
  assert_resolve_error (fd, "short", true, "line 2 of the image's /etc/passwd", "user `short`");
  assert_resolve_error (fd, "bare", false, "line 3 of the image's /etc/passwd", "1 field,");
  assert_resolve_error (fd, "noid", false, "line 4 of the image's /etc/passwd", "id `` is not a number");
  assert_resolve_error (fd, "alpha", false, "line 5 ", "id `abc`");
  assert_resolve_error (fd, "big", false, "line 6 ", "id `99999999999999999999` is not a number from 0 to 4294967294");
  assert_resolve_error (fd, "neg", false, "line 7 ", "id `-5`");
  assert_resolve_error (fd, "badgid", true, "line 8 ", "group id `1x`");
  assert_resolve_error (fd, "nogid", false, "line 9 ", "3 fields, needs at least 4");
  assert_resolve_error (fd, "wrap", false, "line 10 ", "id `4294967296`");
  assert_resolve_error (fd, "nul", false, "line 11 ", "is not a number");
  /* the numeric user whose entry has a bad group id */
  assert_resolve_error (fd, "7", true, "line 8 ", "group id `1x`");
  /* a group asked for by name */
  assert_resolve_error (fd, "root:shortg", false, "line 2 of the image's /etc/group", "2 fields, needs at least 3");
  assert_resolve_error (fd, "root:badg", false, "line 3 of the image's /etc/group", "id `-1`");
  close (fd);
}

/* Malformed lines of other users are skipped (glibc nss_files does), CRLF
 * and surrounding blanks are trimmed and comments skipped (moby/sys/user
 * ParsePasswdFilter: bytes.TrimSpace), a last line without '\n' counts, and
 * NUL bytes end nothing early. */
Test (passwd, other_malformed_lines_are_skipped)
{
  static const char pw[] = "junk\n"
                           "x:y:99999999999999999999999999:-1\n"
                           "\0\0\0:::\n"
                           "# app:x:1:1\n"
                           "\n"
                           "  root:x:0:0:root:/root:/bin/sh  \r\n"
                           "app:x:1000:1001::/home/app:/bin/sh\r\n"
                           "last:x:1200:1300";
  static const char gr[] = "g\n"
                           "bad:x:zz:app\n"
                           "\0:x:1:app\n"
                           "extra:x:2000:other,app\r\n"
                           "tail:x:2100:app";
  int fd = hostile_root (pw, sizeof pw - 1, gr, sizeof gr - 1);
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_passwd_resolve (fd, "app", false, true, &ids, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (ids.uid, 1000);
  cr_assert_eq (ids.gid, 1001);
  cr_assert_eq (ids.ngroups, 4, "primary + extra + tail + `\\0` (gid 1): %zu", ids.ngroups);
  cr_assert_eq (ids.groups[0], 1001);
  cr_assert_eq (ids.groups[1], 1);
  cr_assert_eq (ids.groups[2], 2000);
  cr_assert_eq (ids.groups[3], 2100);
  kiln_passwd_ids_clear (&ids);
  cr_assert_eq (kiln_passwd_resolve (fd, "last", true, false, &ids, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (ids.uid, 1200);
  cr_assert_eq (ids.gid, 1300);
  kiln_passwd_ids_clear (&ids);
  cr_assert_eq (kiln_passwd_resolve (fd, "root:extra", true, false, &ids, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (ids.uid, 0);
  cr_assert_eq (ids.gid, 2000);
  kiln_passwd_ids_clear (&ids);
  /* the commented-out entry is no entry */
  cr_assert_lt (kiln_passwd_resolve (fd, "# app", true, false, &ids, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND, "%s", err->msg);
  kiln_error_free (&err);
  close (fd);
}

/* A very long line (longer than any fixed buffer) and a file that is one
 * huge field are read without trouble. */
Test (passwd, very_long_lines_are_fine)
{
  size_t n = 1u << 20;
  char *pw = malloc (n + 64);
  memset (pw, 'a', n);
  memcpy (pw + n, "\napp:x:5:6\n", 11);
  int fd = hostile_root (pw, n + 11, "", 0);
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_passwd_resolve (fd, "app", true, false, &ids, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (ids.uid, 5);
  cr_assert_eq (ids.gid, 6);
  kiln_passwd_ids_clear (&ids);
  free (pw);
  close (fd);
}

/* Numeric ids given in the instruction must fit a uid_t too: a number past
 * 32 bits used to be cut to its low bits. */
Test (passwd, numeric_spec_out_of_range_is_an_error)
{
  struct kiln_passwd_ids ids;
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_passwd_resolve (-1, "4294967296", true, false, &ids, &err), 0);
  cr_assert (strstr (err->msg, "is not an id from 0 to 4294967294"), "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_lt (kiln_passwd_resolve (-1, "1:99999999999999999999999", true, false, &ids, &err), 0);
  kiln_error_free (&err);
  cr_assert_eq (kiln_passwd_resolve (-1, "4294967294:0", true, false, &ids, &err), 0);
  cr_assert_eq (ids.uid, 4294967294u);
  kiln_passwd_ids_clear (&ids);
}
