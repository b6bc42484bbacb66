/* test_passwd.c - user[:group] resolution against an image's /etc files. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
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
