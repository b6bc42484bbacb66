/* tests/test_treesum.c - the Merkle digest of a tree (order, metadata,
 * content, empty and implied directories, symlinks) and listings that name
 * what changed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/treesum.h"
#include "kiln/util.h"

TestSuite (treesum, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

struct ent {
  const char *path;
  mode_t mode;
  const char *link;
  const char *content; /* hashed into the content digest */
  uid_t uid;
};

/* The tree entry of a test entry; c holds its content digest. */
static const struct kiln_treesum_entry *
entry_of (const struct ent *v, struct kiln_digest *c, struct kiln_treesum_entry *e)
{
  if (v->content)
    kiln_digest_of (v->content, strlen (v->content), c);
  *e = (struct kiln_treesum_entry){
    .path = v->path, .mode = v->mode, .uid = v->uid, .link = v->link, .content = v->content ? c : NULL
  };
  return e;
}

static void
fold (const struct ent *v, size_t n, struct kiln_digest *out)
{
  struct kiln_treesum *t = kiln_treesum_new ();
  struct kiln_error *err = NULL;
  for (size_t i = 0; i < n; i++)
    {
      struct kiln_digest c;
      struct kiln_treesum_entry e;
      cr_assert_eq (kiln_treesum_add (t, entry_of (&v[i], &c, &e), &err), 0, "%s", err ? err->msg : "");
    }
  kiln_treesum_final (t, out);
  kiln_treesum_free (t);
}

#define FOLD(arr, out) fold (arr, sizeof arr / sizeof arr[0], out)

static const struct ent base[] = {
  { "a", S_IFDIR | 0755, NULL, NULL, 0 },      { "a/b", S_IFDIR | 0755, NULL, NULL, 0 },
  { "a/b/f", S_IFREG | 0644, NULL, "one", 0 }, { "a/b.txt", S_IFREG | 0644, NULL, "two", 0 },
  { "a/l", S_IFLNK | 0777, "b/f", NULL, 0 },   { "a.txt", S_IFREG | 0644, NULL, "three", 0 },
  { "empty", S_IFDIR | 0700, NULL, NULL, 0 },
};

Test (treesum, path_order_puts_children_after_their_directory)
{
  cr_assert_lt (kiln_treesum_path_cmp ("a", "a/b"), 0);
  cr_assert_lt (kiln_treesum_path_cmp ("a/b", "a.txt"), 0, "'/' sorts below '.'");
  cr_assert_lt (kiln_treesum_path_cmp ("a/zzz", "a0"), 0);
  cr_assert_lt (kiln_treesum_path_cmp ("", "a"), 0);
  cr_assert_eq (kiln_treesum_path_cmp ("x/y", "x/y"), 0);
  cr_assert_gt (kiln_treesum_path_cmp ("b", "a/z"), 0);
}

Test (treesum, equal_trees_equal_digests)
{
  struct kiln_digest a, b;
  FOLD (base, &a);
  FOLD (base, &b);
  cr_assert_str_eq (a.s, b.s);
  cr_assert (kiln_digest_valid (a.s));
}

/* Each change of one property of one entry changes the root digest. */
Test (treesum, every_property_counts)
{
  struct kiln_digest ref, d;
  FOLD (base, &ref);
  size_t n = sizeof base / sizeof base[0];
  for (size_t i = 0; i < n; i++)
    for (int prop = 0; prop < 4; prop++)
      {
        struct ent v[sizeof base / sizeof base[0]];
        memcpy (v, base, sizeof v);
        if (prop == 0)
          v[i].mode ^= 0001;
        else if (prop == 1)
          v[i].uid = 1000;
        else if (prop == 2 && v[i].content)
          v[i].content = "changed";
        else if (prop == 3 && v[i].link)
          v[i].link = "elsewhere";
        else
          continue;
        fold (v, n, &d);
        cr_assert_str_neq (d.s, ref.s, "entry %s property %d", v[i].path, prop);
      }
}

Test (treesum, names_and_empty_directories_count)
{
  struct kiln_digest ref, d;
  FOLD (base, &ref);
  static const struct ent renamed[] = {
    { "a", S_IFDIR | 0755, NULL, NULL, 0 },      { "a/b", S_IFDIR | 0755, NULL, NULL, 0 },
    { "a/b/g", S_IFREG | 0644, NULL, "one", 0 }, { "a/b.txt", S_IFREG | 0644, NULL, "two", 0 },
    { "a/l", S_IFLNK | 0777, "b/f", NULL, 0 },   { "a.txt", S_IFREG | 0644, NULL, "three", 0 },
    { "empty", S_IFDIR | 0700, NULL, NULL, 0 },
  };
  FOLD (renamed, &d);
  cr_assert_str_neq (d.s, ref.s, "a renamed file");
  fold (base, sizeof base / sizeof base[0] - 1, &d);
  cr_assert_str_neq (d.s, ref.s, "an empty directory left out");
  /* moving a file one level up is another tree, though the same entries are hashed */
  static const struct ent moved[] = {
    { "a", S_IFDIR | 0755, NULL, NULL, 0 },
    { "a/b", S_IFDIR | 0755, NULL, NULL, 0 },
    { "a/f", S_IFREG | 0644, NULL, "one", 0 },
  };
  static const struct ent unmoved[] = {
    { "a", S_IFDIR | 0755, NULL, NULL, 0 },
    { "a/b", S_IFDIR | 0755, NULL, NULL, 0 },
    { "a/b/f", S_IFREG | 0644, NULL, "one", 0 },
  };
  struct kiln_digest m, u;
  FOLD (moved, &m);
  FOLD (unmoved, &u);
  cr_assert_str_neq (m.s, u.s);
}

Test (treesum, implied_directories_differ_from_listed_ones)
{
  static const struct ent implied[] = { { "d/f", S_IFREG | 0644, NULL, "x", 0 } };
  static const struct ent listed[] = { { "d", S_IFDIR | 0755, NULL, NULL, 0 },
                                       { "d/f", S_IFREG | 0644, NULL, "x", 0 } };
  static const struct ent deep[] = { { "d/e/f", S_IFREG | 0644, NULL, "x", 0 } };
  struct kiln_digest a, b, c, a2;
  FOLD (implied, &a);
  FOLD (listed, &b);
  FOLD (deep, &c);
  FOLD (implied, &a2);
  cr_assert_str_neq (a.s, b.s);
  cr_assert_str_neq (a.s, c.s);
  cr_assert_str_eq (a.s, a2.s);
}

Test (treesum, a_single_file_is_its_own_tree)
{
  static const struct ent f1[] = { { "", S_IFREG | 0644, NULL, "x", 0 } };
  static const struct ent f2[] = { { "", S_IFREG | 0600, NULL, "x", 0 } };
  static const struct ent none[] = { { "", S_IFDIR | 0755, NULL, NULL, 0 } };
  struct kiln_digest a, b, c, e;
  FOLD (f1, &a);
  FOLD (f2, &b);
  FOLD (none, &c);
  fold (NULL, 0, &e);
  cr_assert_str_neq (a.s, b.s);
  cr_assert_str_neq (a.s, c.s);
  cr_assert_str_neq (c.s, e.s, "the root's own metadata counts when given");
}

Test (treesum, out_of_order_entries_are_refused)
{
  struct kiln_treesum *t = kiln_treesum_new ();
  struct kiln_error *err = NULL;
  struct kiln_treesum_entry b = { .path = "b", .mode = S_IFDIR | 0755 };
  struct kiln_treesum_entry a = { .path = "a/x", .mode = S_IFDIR | 0755 };
  cr_assert_eq (kiln_treesum_add (t, &b, &err), 0);
  cr_assert_eq (kiln_treesum_add (t, &a, &err), -1);
  cr_assert_not_null (err);
  cr_assert (strstr (err->msg, "a/x") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  kiln_treesum_free (t);
}

/* ---- listings ---- */

static int
listing (const char *name, const struct ent *v, size_t n)
{
  kiln_autofree char *path = kiln_xasprintf ("%s/%s", kiln_test_tmpdir (), name);
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  cr_assert_geq (fd, 0);
  struct kiln_treelist_writer *w = kiln_treelist_writer_new (dup (fd));
  struct kiln_error *err = NULL;
  for (size_t i = 0; i < n; i++)
    {
      struct kiln_digest c;
      struct kiln_treesum_entry e;
      kiln_autofree char *shown = kiln_xasprintf ("ctx/%s", v[i].path);
      kiln_treelist_write (w, shown, entry_of (&v[i], &c, &e));
    }
  cr_assert_eq (kiln_treelist_writer_finish (w, &err), 0);
  return fd;
}

Test (treesum, listings_name_the_first_change_and_count_the_rest)
{
  size_t n = sizeof base / sizeof base[0];
  struct ent v[sizeof base / sizeof base[0] + 1];
  memcpy (v, base, sizeof base);
  int old = listing ("old", base, n);
  int same = listing ("same", base, n);
  cr_assert_null (kiln_treelist_explain (old, same));

  v[2].content = "edited"; /* a/b/f */
  v[5].uid = 7;            /* a.txt */
  int now = listing ("now", v, n);
  kiln_autofree char *why = kiln_treelist_explain (old, now);
  cr_assert_str_eq (why, "ctx/a/b/f content changed (+1 more)");

  memcpy (v, base, sizeof base);
  v[n] = (struct ent){ "zz", S_IFREG | 0644, NULL, "new", 0 };
  int added = listing ("added", v, n + 1);
  kiln_autofree char *why2 = kiln_treelist_explain (old, added);
  cr_assert_str_eq (why2, "ctx/zz is new");
  kiln_autofree char *why3 = kiln_treelist_explain (added, old);
  cr_assert_str_eq (why3, "ctx/zz went away");
  close (old), close (same), close (now), close (added);
}

Test (treesum, a_damaged_listing_explains_nothing)
{
  size_t n = sizeof base / sizeof base[0];
  int old = listing ("old", base, n);
  struct ent v[sizeof base / sizeof base[0]];
  memcpy (v, base, sizeof base);
  v[0].mode = S_IFDIR | 0700;
  int now = listing ("now", v, n);
  struct stat st;
  cr_assert_eq (fstat (old, &st), 0);
  cr_assert_eq (ftruncate (old, st.st_size - 5), 0);
  cr_assert_null (kiln_treelist_explain (old, now));
  cr_assert_eq (pwrite (old, "garbage!", 8, 0), 8);
  cr_assert_null (kiln_treelist_explain (old, now));
  close (old), close (now);
}
