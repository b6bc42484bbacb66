/* tests/test_walkahead.c - listings read ahead in the walk's order, the
 * directories the walk does not enter left out, and a walk that falls out
 * of step going on alone. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/util.h"
#include "kiln/walkahead.h"

TestSuite (walkahead, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

static void
mk (const char *rel, bool dir)
{
  kiln_autofree char *p = kiln_xasprintf ("%s/t/%s", kiln_test_tmpdir (), rel);
  if (dir)
    cr_assert_eq (mkdir (p, 0755), 0, "%s", p);
  else
    {
      FILE *f = fopen (p, "w");
      cr_assert_not_null (f);
      fputs (rel, f);
      fclose (f);
    }
}

static int
root_fd (void)
{
  kiln_autofree char *p = kiln_xasprintf ("%s/t", kiln_test_tmpdir ());
  return open (p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void
make_tree (void)
{
  mk ("", true);
  mk ("b", true);
  mk ("b/f", false);
  mk ("a", true);
  mk ("a/x", true);
  mk ("a/x/deep", false);
  mk ("a.txt", false);
  mk ("skip", true);
  mk ("skip/inner", true);
  kiln_autofree char *l = kiln_xasprintf ("%s/t/link", kiln_test_tmpdir ());
  cr_assert_eq (symlink ("a/x", l), 0);
}

static bool
not_skip (void *ud, const char *path)
{
  (void) ud;
  return strcmp (path, "skip") != 0;
}

static struct kiln_dirlisting *
next (struct kiln_walkahead *w, const char *path, size_t n)
{
  struct kiln_dirlisting *l = kiln_walkahead_next (w, path);
  cr_assert_not_null (l, "listing of `%s`", path);
  cr_assert_str_eq (l->path, path);
  cr_assert_eq (l->n, n, "`%s` has %zu names", path, l->n);
  return l;
}

Test (walkahead, listings_come_depth_first_sorted_with_stats_and_links)
{
  make_tree ();
  struct kiln_walkahead *w = kiln_walkahead_start (root_fd (), "", not_skip, NULL);
  cr_assert_not_null (w);
  struct kiln_dirlisting *l = next (w, "", 5);
  const char *want[] = { "a", "a.txt", "b", "link", "skip" };
  for (size_t i = 0; i < 5; i++)
    cr_assert_str_eq (l->names[i], want[i]);
  cr_assert (S_ISDIR (l->st[0].st_mode));
  cr_assert (S_ISREG (l->st[1].st_mode));
  cr_assert_eq (l->st[1].st_size, 5);
  cr_assert (S_ISLNK (l->st[3].st_mode));
  cr_assert_str_eq (l->links[3], "a/x");
  cr_assert_null (l->links[0]);
  kiln_dirlisting_free (l);
  kiln_dirlisting_free (next (w, "a", 1));
  kiln_dirlisting_free (next (w, "a/x", 1));
  kiln_dirlisting_free (next (w, "b", 1));
  /* skip/ is not entered: nothing more */
  cr_assert_null (kiln_walkahead_next (w, "skip"));
  kiln_walkahead_stop (w);
}

Test (walkahead, out_of_step_the_walker_goes_on_alone)
{
  make_tree ();
  struct kiln_walkahead *w = kiln_walkahead_start (root_fd (), "", not_skip, NULL);
  kiln_dirlisting_free (next (w, "", 5));
  /* the walker skips "a" (say its own rules differ): the next listing is not "b" */
  cr_assert_null (kiln_walkahead_next (w, "b"));
  cr_assert_null (kiln_walkahead_next (w, "a"), "once out of step, always");
  kiln_walkahead_stop (w);
}

/* Enters every directory, but takes "b" away just before it is opened. */
static bool
remove_b (void *ud, const char *path)
{
  (void) ud;
  if (strcmp (path, "b") == 0)
    {
      kiln_autofree char *f = kiln_xasprintf ("%s/t/b/f", kiln_test_tmpdir ());
      kiln_autofree char *d = kiln_xasprintf ("%s/t/b", kiln_test_tmpdir ());
      cr_assert_eq (unlink (f), 0);
      cr_assert_eq (rmdir (d), 0);
    }
  return true;
}

Test (walkahead, a_directory_that_cannot_be_read_hands_the_walk_back)
{
  make_tree ();
  struct kiln_walkahead *w = kiln_walkahead_start (root_fd (), "", remove_b, NULL);
  kiln_dirlisting_free (next (w, "", 5));
  kiln_dirlisting_free (next (w, "a", 1));
  kiln_dirlisting_free (next (w, "a/x", 1));
  cr_assert_null (kiln_walkahead_next (w, "b"), "the failed listing is not handed out");
  cr_assert_null (kiln_walkahead_next (w, "skip"));
  kiln_walkahead_stop (w);
}

Test (walkahead, stopping_early_frees_what_was_read)
{
  mk ("", true);
  for (int i = 0; i < 200; i++)
    {
      kiln_autofree char *d = kiln_xasprintf ("d%03d", i);
      mk (d, true);
    }
  struct kiln_walkahead *w = kiln_walkahead_start (root_fd (), "", not_skip, NULL);
  kiln_dirlisting_free (next (w, "", 200));
  kiln_walkahead_stop (w);   /* the reader is mid-walk or done; nothing leaks (asan) */
}
