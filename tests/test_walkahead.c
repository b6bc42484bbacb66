/* tests/test_walkahead.c - listings read ahead in the walk's order, the
 * directories the walk does not enter left out, and a walk that falls out
 * of step going on alone. */
#include <criterion/criterion.h>
#include <dirent.h>
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
  kiln_walkahead_stop (w); /* the reader is mid-walk or done; nothing leaks (asan) */
}

/* The walker's own depth-first walk, compared listing by listing with what
 * the readers hand it. */
static size_t
walk_compare (struct kiln_walkahead *w, const char *path)
{
  struct kiln_dirlisting *l = kiln_walkahead_next (w, path);
  cr_assert_not_null (l, "listing of `%s`", path);
  cr_assert_str_eq (l->path, path);
  kiln_autofree char *full = kiln_xasprintf ("%s/t%s%s", kiln_test_tmpdir (), *path ? "/" : "", path);
  struct dirent **de;
  int n = scandir (full, &de, NULL, alphasort);
  cr_assert_geq (n, 2);
  size_t k = 0, count = 1;
  char **dirs = kiln_xcalloc ((size_t) n + 1, sizeof *dirs);
  size_t nd = 0;
  for (int i = 0; i < n; i++)
    {
      if (strcmp (de[i]->d_name, ".") != 0 && strcmp (de[i]->d_name, "..") != 0)
        {
          cr_assert_lt (k, l->n);
          cr_assert_str_eq (l->names[k], de[i]->d_name, "`%s` entry %zu", path, k);
          if (S_ISDIR (l->st[k].st_mode))
            dirs[nd++] = kiln_xasprintf ("%s%s%s", path, *path ? "/" : "", de[i]->d_name);
          k++;
        }
      free (de[i]);
    }
  free (de);
  cr_assert_eq (k, l->n, "`%s` has %zu names, the listing %zu", path, k, l->n);
  kiln_dirlisting_free (l);
  for (size_t i = 0; i < nd; i++)
    {
      count += walk_compare (w, dirs[i]);
      free (dirs[i]);
    }
  free (dirs);
  return count;
}

Test (walkahead, a_big_tree_comes_whole_and_in_order_past_the_bound)
{
  /* 4 + 16 + 64 directories of 450 files each: more names than the
   * readers may queue, so they wait for the walker and it reads some itself */
  mk ("", true);
  size_t dirs = 1;
  for (int a = 0; a < 4; a++)
    for (int b = -1; b < 4; b++)
      for (int c = -1; c < (b < 0 ? 0 : 4); c++)
        {
          kiln_autofree char *d = b < 0   ? kiln_xasprintf ("d%d", a)
                                  : c < 0 ? kiln_xasprintf ("d%d/e%d", a, b)
                                          : kiln_xasprintf ("d%d/e%d/f%d", a, b, c);
          mk (d, true);
          dirs++;
          for (int i = 0; i < 450; i++)
            {
              kiln_autofree char *p = kiln_xasprintf ("%s/t/%s/x%03d", kiln_test_tmpdir (), d, i);
              int fd = open (p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
              cr_assert_geq (fd, 0, "%s", p);
              close (fd);
            }
        }
  struct kiln_walkahead *w = kiln_walkahead_start (root_fd (), "", not_skip, NULL);
  cr_assert_not_null (w);
  cr_assert_eq (walk_compare (w, ""), dirs);
  cr_assert_null (kiln_walkahead_next (w, "zz"), "the walk is over");
  kiln_walkahead_stop (w);
}
