/* tests/test_layer_patch.c - a gzip layer rebuilt from an earlier layer's
 * blocks (kiln_layer_writer_new_patch) is byte for byte the layer a fresh
 * writer makes, whatever changed; it reads only the changed blocks' files,
 * and a store or file that lies is caught. */
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
#include "kiln/digest.h"
#include "kiln/layer.h"
#include "kiln/store.h"
#include "kiln/util.h"

TestSuite (layer_patch, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

#define NFILES 600

/* The tree: NFILES text files of 100 bytes to 12 KiB, a 3 MiB file of
 * pseudo-random bytes (several blocks) and a heredoc-like in-memory file. */
struct tree {
  char *path[NFILES + 1];
  size_t size[NFILES + 1];
  bool gone[NFILES + 1];
  int opened; /* files the open callback opened */
};

static char *
src_path (const char *rel)
{
  return kiln_xasprintf ("%s/src/%s", kiln_test_tmpdir (), rel);
}

static void
write_file (const char *rel, const void *data, size_t len)
{
  kiln_autofree char *p = src_path (rel);
  kiln_autofree char *dir = kiln_xstrdup (p);
  *strrchr (dir, '/') = '\0';
  kiln_autofree char *cmd = kiln_xasprintf ("mkdir -p '%s'", dir);
  cr_assert_eq (system (cmd), 0);
  FILE *f = fopen (p, "wb");
  cr_assert_not_null (f, "%s", p);
  cr_assert_eq (fwrite (data, 1, len, f), len);
  fclose (f);
}

static unsigned
next_rand (unsigned *s)
{
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

static void
fill_text (char *buf, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = i % 61 == 60 ? '\n' : (char) ('a' + next_rand (&seed) % 26);
}

static void
make_tree (struct tree *t)
{
  unsigned seed = 7;
  kiln_autofree char *buf = kiln_xmalloc (3 * 1024 * 1024 + 4096);
  for (int i = 0; i < NFILES; i++)
    {
      t->path[i] = kiln_xasprintf ("app/d%d/e%d/f%04d.py", i % 5, i % 11, i);
      t->size[i] = 100 + next_rand (&seed) % 12000;
      fill_text (buf, t->size[i], (unsigned) i);
      write_file (t->path[i], buf, t->size[i]);
    }
  t->path[NFILES] = kiln_xstrdup ("app/zz/weights.bin");
  t->size[NFILES] = 3 * 1024 * 1024 + 77;
  for (size_t i = 0; i < t->size[NFILES]; i++)
    buf[i] = (char) (next_rand (&seed) >> 3);
  write_file (t->path[NFILES], buf, t->size[NFILES]);
}

static void
free_tree (struct tree *t)
{
  for (int i = 0; i <= NFILES; i++)
    free (t->path[i]);
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
open_cb (void *ud, void *opaque, const char *path, struct kiln_error **err)
{
  struct tree *t = ud;
  kiln_autofree char *p = src_path (opaque);
  (void) path;
  __atomic_add_fetch (&t->opened, 1, __ATOMIC_SEQ_CST);
  int fd = open (p, O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? fd : kiln_error_set (err, errno, KILN_E_IO, "open `%s`", p);
}

static void
digest_file (const char *rel, struct kiln_digest *d)
{
  kiln_autofree char *p = src_path (rel);
  FILE *f = fopen (p, "rb");
  cr_assert_not_null (f);
  struct kiln_sha256 *h = kiln_sha256_new ();
  char buf[65536];
  size_t n;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    kiln_sha256_update (h, buf, n);
  fclose (f);
  kiln_sha256_final (h, d);
  kiln_sha256_free (h);
}

/* Writes the tree (sorted, as a COPY does): fresh when base is NULL (files
 * read and hashed while they stream), else patched from base (digests
 * given, no file read unless a block must be made).  1 when patched. */
static int
write_tree (struct kiln_store *st, struct tree *t, const struct kiln_digest *base, const struct kiln_digest *bad,
            struct kiln_layer_result *res, uint64_t *made, struct kiln_error **err)
{
  struct kiln_layer_opts opts = { .compression = KILN_COMP_GZIP, .level = -1 };
  struct kiln_layer_writer *w = NULL;
  int patched = 0;
  if (base)
    patched = kiln_layer_writer_new_patch (st, &opts, base, open_cb, t, &w, err);
  if (patched == 0)
    cr_assert_eq (kiln_layer_writer_new (st, &opts, &w, err), 0);
  char *order[NFILES + 1];
  size_t n = 0;
  for (int i = 0; i <= NFILES; i++)
    if (!t->gone[i])
      order[n++] = t->path[i];
  qsort (order, n, sizeof *order, cmp_str);
  int r = 0;
  static const char note[] = "written in memory\n";
  struct kiln_layer_entry e0 = { .path = "app/NOTE", .mode = S_IFREG | 0644, .mtime = 5 };
  r = kiln_layer_writer_add_data (w, &e0, note, sizeof note - 1, err);
  for (size_t i = 0; r == 0 && i < n; i++)
    {
      kiln_autofree char *p = src_path (order[i]);
      struct stat sb;
      cr_assert_eq (stat (p, &sb), 0);
      struct kiln_digest d, out;
      digest_file (order[i], &d);
      if (bad && strcmp (order[i], t->path[0]) == 0)
        d = *bad;
      struct kiln_layer_entry e = { .path = order[i],
                                    .mode = S_IFREG | (sb.st_mode & 07777),
                                    .mtime = 1000,
                                    .size = (uint64_t) sb.st_size,
                                    .opaque = order[i] };
      if (patched)
        {
          e.known_digest = &d;
          r = kiln_layer_writer_add (w, &e, -1, err);
          continue;
        }
      e.content_digest = &out;
      int fd = open (p, O_RDONLY);
      r = kiln_layer_writer_add (w, &e, fd, err);
      close (fd);
    }
  if (r == 0)
    r = kiln_layer_writer_finish (w, res, err);
  uint64_t reused = 0;
  *made = 0;
  if (r == 0)
    kiln_layer_writer_blocks (w, made, &reused);
  kiln_layer_writer_free (w);
  return r < 0 ? -1 : patched;
}

static void
check_equal (struct kiln_store *st, struct tree *t, const struct kiln_digest *base, struct kiln_digest *next,
             uint64_t max_made)
{
  struct kiln_layer_result patched = { 0 }, fresh = { 0 };
  struct kiln_error *err = NULL;
  uint64_t made, made_fresh;
  t->opened = 0;
  int r = write_tree (st, t, base, NULL, &patched, &made, &err);
  cr_assert_eq (r, 1, "patch: %d %s", r, err ? err->msg : "");
  cr_assert_leq (made, max_made, "%llu blocks made again", (unsigned long long) made);
  cr_assert_lt (t->opened, NFILES / 4, "%d files opened", t->opened);
  /* the fresh layer of the same files, in another store */
  r = write_tree (st, t, NULL, NULL, &fresh, &made_fresh, &err);
  cr_assert_eq (r, 0, "%s", err ? err->msg : "");
  cr_assert_str_eq (patched.desc.digest.s, fresh.desc.digest.s, "patched blob differs from a fresh one");
  cr_assert_str_eq (patched.diff_id.s, fresh.diff_id.s);
  cr_assert_eq (patched.desc.size, fresh.desc.size);
  cr_assert_gt (made_fresh, made);
  *next = patched.desc.digest;
  kiln_layer_result_clear (&patched);
  kiln_layer_result_clear (&fresh);
}

Test (layer_patch, patched_layers_equal_fresh_ones_through_a_series_of_changes, .timeout = 120)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct tree t = { 0 };
  make_tree (&t);
  struct kiln_layer_result first = { 0 };
  struct kiln_error *err = NULL;
  uint64_t made;
  cr_assert_eq (write_tree (st, &t, NULL, NULL, &first, &made, &err), 0);
  struct kiln_digest base = first.desc.digest, next;
  char buf[20000];

  /* one file's content, same size */
  fill_text (buf, t.size[300], 999);
  write_file (t.path[300], buf, t.size[300]);
  check_equal (st, &t, &base, &next, 2);
  base = next;
  /* one file grows past its 512-byte padding (every block after it moves) */
  t.size[10] += 700;
  fill_text (buf, t.size[10], 5);
  write_file (t.path[10], buf, t.size[10]);
  check_equal (st, &t, &base, &next, 4);
  base = next;
  /* a file goes away (every block after it moves) */
  t.gone[450] = true;
  kiln_autofree char *gone = src_path (t.path[450]);
  cr_assert_eq (unlink (gone), 0);
  check_equal (st, &t, &base, &next, 3);
  base = next;
  /* a mode change (a header only) */
  kiln_autofree char *p = src_path (t.path[77]);
  cr_assert_eq (chmod (p, 0600), 0);
  check_equal (st, &t, &base, &next, 2);
  base = next;
  /* the big file changes: its blocks all carry its digest */
  kiln_autofree char *big = src_path (t.path[NFILES]);
  FILE *f = fopen (big, "r+b");
  cr_assert_not_null (f);
  fseek (f, 2000000, SEEK_SET);
  fputs ("changed", f);
  fclose (f);
  check_equal (st, &t, &base, &next, 6);
  free_tree (&t);
  kiln_layer_result_clear (&first);
  kiln_store_free (st);
}

Test (layer_patch, a_file_that_does_not_match_its_digest_fails_the_layer)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct tree t = { 0 };
  make_tree (&t);
  struct kiln_layer_result first = { 0 }, second = { 0 };
  struct kiln_error *err = NULL;
  uint64_t made;
  cr_assert_eq (write_tree (st, &t, NULL, NULL, &first, &made, &err), 0);
  /* the caller says path[0] has another content: its block must be made,
   * and the file read then is not what the recipe was made of */
  struct kiln_digest bad;
  kiln_digest_of ("something else", 14, &bad);
  int r = write_tree (st, &t, &first.desc.digest, &bad, &second, &made, &err);
  cr_assert_eq (r, -1);
  cr_assert_not_null (err);
  cr_assert (strstr (err->msg, "changed while being added") != NULL, "%s", err->msg);
  kiln_error_free (&err);
  free_tree (&t);
  kiln_layer_result_clear (&first);
  kiln_store_free (st);
}

/* A map that is gone or a damaged old blob never gives a wrong layer. */
Test (layer_patch, no_map_means_no_patch_and_a_damaged_base_is_not_trusted, .timeout = 60)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct tree t = { 0 };
  make_tree (&t);
  struct kiln_layer_result first = { 0 }, fresh = { 0 }, patched = { 0 };
  struct kiln_error *err = NULL;
  uint64_t made;
  cr_assert_eq (write_tree (st, &t, NULL, NULL, &first, &made, &err), 0);
  /* damage the old blob in its first block (the unchanged prefix) */
  kiln_autofree char *blob = kiln_xasprintf ("%s/store/blobs/sha256/%s", kiln_test_tmpdir (),
                                             kiln_digest_hex (&first.desc.digest));
  cr_assert_eq (chmod (blob, 0644), 0);
  int fd = open (blob, O_WRONLY);
  cr_assert_geq (fd, 0);
  cr_assert_eq (pwrite (fd, "\xff\xff\xff\xff", 4, 200), 4);
  close (fd);
  char buf[20000];
  fill_text (buf, t.size[NFILES - 1], 31);
  write_file (t.path[NFILES - 1], buf, t.size[NFILES - 1]);
  cr_assert_eq (write_tree (st, &t, &first.desc.digest, NULL, &patched, &made, &err), 1, "%s", err ? err->msg : "");
  cr_assert_eq (write_tree (st, &t, NULL, NULL, &fresh, &made, &err), 0);
  cr_assert_str_eq (patched.desc.digest.s, fresh.desc.digest.s);
  cr_assert_str_eq (patched.diff_id.s, fresh.diff_id.s);

  /* a map of another level is no base, nor is a base without its map */
  struct kiln_layer_opts opts = { .compression = KILN_COMP_GZIP, .level = 9 };
  struct kiln_layer_writer *w = NULL;
  cr_assert_eq (kiln_layer_writer_new_patch (st, &opts, &fresh.desc.digest, open_cb, &t, &w, &err), 0);
  opts.level = -1;
  kiln_autofree char *map = kiln_xasprintf ("%s/store/cache/lmap/%s", kiln_test_tmpdir (),
                                            kiln_digest_hex (&fresh.desc.digest));
  cr_assert_eq (unlink (map), 0);
  cr_assert_eq (kiln_layer_writer_new_patch (st, &opts, &fresh.desc.digest, open_cb, &t, &w, &err), 0);
  cr_assert_null (w);
  free_tree (&t);
  kiln_layer_result_clear (&first);
  kiln_layer_result_clear (&fresh);
  kiln_layer_result_clear (&patched);
  kiln_store_free (st);
}
