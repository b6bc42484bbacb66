/* tests/helpers.c - temporary directories, testdata paths, capability skips. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

static char tmpdir[4096];

void
kiln_test_tmp_init (void)
{
  const char *base = getenv ("TMPDIR");
  snprintf (tmpdir, sizeof tmpdir, "%s/kiln-test-XXXXXX", base ? base : "/tmp");
  cr_assert_not_null (mkdtemp (tmpdir), "mkdtemp: %s", strerror (errno));
}

void
kiln_test_tmp_fini (void)
{
  struct kiln_error *err = NULL;
  if (tmpdir[0])
    kiln_fs_rm_rf_at (AT_FDCWD, tmpdir, &err);
  kiln_error_free (&err);
  tmpdir[0] = '\0';
}

const char *
kiln_test_tmpdir (void)
{
  return tmpdir;
}

struct kiln_store *
kiln_test_store_open (void)
{
  struct kiln_error *err = NULL;
  struct kiln_store *st = NULL;
  char *root = kiln_xasprintf ("%s/store", tmpdir);
  int r = kiln_store_open (root, &st, &err);
  cr_assert_eq (r, 0, "open store %s: %s", root, err ? err->msg : "");
  free (root);
  return st;
}

const char *
kiln_test_data (const char *rel)
{
  static char path[4096];
  snprintf (path, sizeof path, "%s/%s", KILN_TESTDATA_DIR, rel);
  return path;
}

static bool
strict (void)
{
  const char *s = getenv ("KILN_TEST_STRICT"), *ci = getenv ("CI");
  return (s && strcmp (s, "1") == 0) || (ci && strcmp (ci, "true") == 0);
}

static int
probe_userns (void)
{
  pid_t pid = fork ();
  if (pid == 0)
    _exit (unshare (CLONE_NEWUSER) == 0 ? 0 : errno);
  int st = 0;
  waitpid (pid, &st, 0);
  return WIFEXITED (st) ? WEXITSTATUS (st) : EINVAL;
}

void
kiln_test_require (int needs)
{
  char why[256] = "";
  if ((needs & KILN_NEED_ROOT) && geteuid () != 0)
    snprintf (why, sizeof why, "needs root (euid %d)", (int) geteuid ());
  else if (needs & KILN_NEED_USERNS)
    {
      int e = probe_userns ();
      if (e)
        snprintf (why, sizeof why, "needs unprivileged user namespaces: unshare: %s", strerror (e));
    }
  if (why[0])
    kiln_test_skip (why);
}

void
kiln_test_skip (const char *why)
{
  if (strict ())
    cr_assert_fail ("%s (a skip is a failure under CI=true)", why);
  cr_skip_test ("%s", why);
}
