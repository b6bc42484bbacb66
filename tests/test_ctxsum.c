/* tests/test_ctxsum.c - the binary context checksum index: merge of old
 * records and new digests, tree order, racily clean entries, damage, and
 * two builds saving one context's index. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/ctxsum.h"
#include "kiln/store.h"
#include "kiln/util.h"

TestSuite (ctxsum, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

/* A stat that is not racily clean (old times), unique per i. */
static struct stat
fake_stat (size_t i)
{
  struct stat sb;
  memset (&sb, 0, sizeof sb);
  sb.st_mode = S_IFREG | 0644;
  sb.st_dev = 7;
  sb.st_ino = 1000 + i;
  sb.st_size = (off_t) i;
  sb.st_mtim.tv_sec = sb.st_ctim.tv_sec = 1000000000;
  sb.st_mtim.tv_nsec = (long) i;
  return sb;
}

static void
digest_of_index (size_t i, struct kiln_digest *d)
{
  char buf[32];
  int n = snprintf (buf, sizeof buf, "content %zu", i);
  kiln_digest_of (buf, (size_t) n, d);
}

static char *
path_of (size_t i)
{
  /* names that tree order and strcmp order sort differently: "a/x" < "a.txt" */
  static const char *const dirs[] = { "a", "a.d", "a-b", "a/b", "z" };
  return kiln_xasprintf ("%s/f%zu", dirs[i % 5], i);
}

static struct kiln_ctxsum *
open_cs (struct kiln_store *st)
{
  struct kiln_ctxsum *cs = NULL;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_ctxsum_open (st, "/ctx", &cs, &err), 0);
  return cs;
}

static void
save_cs (struct kiln_ctxsum *cs)
{
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_ctxsum_save (cs, &err), 0, "%s", err ? err->msg : "");
}

static size_t
hits (struct kiln_ctxsum *cs, size_t from, size_t to)
{
  size_t n = 0;
  for (size_t i = from; i < to; i++)
    {
      kiln_autofree char *p = path_of (i);
      struct stat sb = fake_stat (i);
      struct kiln_digest d, want;
      digest_of_index (i, &want);
      if (kiln_ctxsum_lookup (cs, p, &sb, &d))
        {
          cr_assert_str_eq (d.s, want.s, "%s", p);
          n++;
        }
    }
  return n;
}

static void
add (struct kiln_ctxsum *cs, size_t from, size_t to)
{
  /* backwards: the index sorts what it is given */
  for (size_t i = to; i-- > from;)
    {
      kiln_autofree char *p = path_of (i);
      struct stat sb = fake_stat (i);
      struct kiln_digest d;
      digest_of_index (i, &d);
      kiln_ctxsum_update (cs, p, &sb, &d);
    }
}

static char *
index_path (void)
{
  /* the only file under cache/ctxsum after a save */
  kiln_autofree char *dir = kiln_xasprintf ("%s/store/cache/ctxsum", kiln_test_tmpdir ());
  kiln_autodir DIR *d = opendir (dir);
  cr_assert_not_null (d);
  struct dirent *de;
  char *found = NULL;
  while ((de = readdir (d)))
    if (strstr (de->d_name, ".idx"))
      {
        cr_assert_null (found, "one index per context");
        found = kiln_xasprintf ("%s/%s", dir, de->d_name);
      }
  cr_assert_not_null (found);
  return found;
}

Test (ctxsum, merges_new_digests_into_the_saved_index)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_ctxsum *cs = open_cs (st);
  add (cs, 0, 5000);
  cr_assert_eq (hits (cs, 0, 5000), 5000, "updates are seen before the save");
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 5000), 5000);
  add (cs, 4000, 6000); /* 1000 again, 1000 new */
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 6000), 6000, "old records are kept by the merge");
  struct stat other = fake_stat (3);
  other.st_ctim.tv_nsec = 1;
  struct kiln_digest d;
  kiln_autofree char *p3 = path_of (3);
  cr_assert_not (kiln_ctxsum_lookup (cs, p3, &other, &d), "a changed ctime misses");
  cr_assert_not (kiln_ctxsum_lookup (cs, "nope", &other, &d));
  kiln_ctxsum_free (cs);
  kiln_store_free (st);
}

Test (ctxsum, a_new_digest_replaces_the_old_and_racy_entries_are_dropped)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_ctxsum *cs = open_cs (st);
  add (cs, 0, 10);
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  kiln_autofree char *p1 = path_of (1), *p2 = path_of (2);
  struct stat s1 = fake_stat (1), s2 = fake_stat (2);
  struct kiln_digest other, got;
  kiln_digest_of ("other", 5, &other);
  s1.st_mtim.tv_sec += 5;
  kiln_ctxsum_update (cs, p1, &s1, &other);
  /* changed just now: may change again within its timestamp granule */
  clock_gettime (CLOCK_REALTIME, &s2.st_mtim);
  kiln_ctxsum_update (cs, p2, &s2, &other);
  cr_assert_not (kiln_ctxsum_lookup (cs, p2, &s2, &got), "a racy entry is not used");
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  cr_assert (kiln_ctxsum_lookup (cs, p1, &s1, &got));
  cr_assert_str_eq (got.s, other.s);
  struct stat old2 = fake_stat (2);
  cr_assert_not (kiln_ctxsum_lookup (cs, p2, &s2, &got), "the racy entry was not saved");
  cr_assert_not (kiln_ctxsum_lookup (cs, p2, &old2, &got), "and its old record is gone");
  cr_assert_eq (hits (cs, 3, 10), 7);
  kiln_ctxsum_free (cs);
  kiln_store_free (st);
}

static void
damage_and_check (struct kiln_store *st, void (*damage) (const char *path))
{
  kiln_autofree char *idx = index_path ();
  damage (idx);
  struct kiln_ctxsum *cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 100), 0, "nothing of a damaged index is used");
  add (cs, 0, 100);
  save_cs (cs);
  kiln_ctxsum_free (cs);
  cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 100), 100, "the next save rewrites it whole");
  kiln_ctxsum_free (cs);
}

static void
flip_a_byte (const char *path)
{
  int fd = open (path, O_RDWR);
  struct stat sb;
  fstat (fd, &sb);
  char c;
  cr_assert_eq (pread (fd, &c, 1, sb.st_size / 2), 1);
  c ^= 0x20;
  cr_assert_eq (pwrite (fd, &c, 1, sb.st_size / 2), 1);
  close (fd);
}

static void
cut_short (const char *path)
{
  struct stat sb;
  stat (path, &sb);
  cr_assert_eq (truncate (path, sb.st_size - 40), 0);
}

static void
bad_magic (const char *path)
{
  int fd = open (path, O_RDWR);
  cr_assert_eq (pwrite (fd, "JSON{\"x", 7, 0), 7);
  close (fd);
}

Test (ctxsum, a_damaged_index_is_ignored_and_rewritten)
{
  struct kiln_store *st = kiln_test_store_open ();
  void (*damages[]) (const char *) = { flip_a_byte, cut_short, bad_magic };
  for (size_t i = 0; i < 3; i++)
    {
      struct kiln_ctxsum *cs = open_cs (st);
      add (cs, 0, 100);
      save_cs (cs);
      kiln_ctxsum_free (cs);
      damage_and_check (st, damages[i]);
    }
  kiln_store_free (st);
}

/* Two builds of one context: each reads the index at its start and saves
 * a merged file at its end.  The last save wins whole; what the other
 * learned is lost (it costs hashing again), never mixed into a torn file. */
Test (ctxsum, two_builds_saving_one_index)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_ctxsum *base = open_cs (st);
  add (base, 0, 100);
  save_cs (base);
  kiln_ctxsum_free (base);

  struct kiln_ctxsum *a = open_cs (st), *b = open_cs (st);
  add (a, 100, 200);
  add (b, 200, 300);
  save_cs (a);
  cr_assert_eq (hits (b, 0, 100), 100, "b still reads the index it opened");
  save_cs (b);
  kiln_ctxsum_free (a);
  kiln_ctxsum_free (b);

  struct kiln_ctxsum *cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 100), 100);
  cr_assert_eq (hits (cs, 200, 300), 100);
  cr_assert_eq (hits (cs, 100, 200), 0, "the earlier save was replaced whole");
  kiln_ctxsum_free (cs);
  kiln_store_free (st);
}

/* Open files of this process under rel (the runs: unnamed, but open). */
static size_t
open_under (const char *rel)
{
  kiln_autofree char *dir = kiln_xasprintf ("%s/store/%s/", kiln_test_tmpdir (), rel);
  kiln_autodir DIR *d = opendir ("/proc/self/fd");
  size_t n = 0;
  for (struct dirent *de; d && (de = readdir (d));)
    {
      char link[4096];
      kiln_autofree char *fd = kiln_xasprintf ("/proc/self/fd/%s", de->d_name);
      ssize_t len = readlink (fd, link, sizeof link - 1);
      n += len > 0 && (link[len] = '\0', strncmp (link, dir, strlen (dir)) == 0);
    }
  return n;
}

static size_t
files_in (const char *rel)
{
  kiln_autofree char *dir = kiln_xasprintf ("%s/store/%s", kiln_test_tmpdir (), rel);
  kiln_autodir DIR *d = opendir (dir);
  size_t n = 0;
  for (struct dirent *de; d && (de = readdir (d));)
    n += de->d_name[0] != '.';
  return n;
}

/* A build that learns more digests than it keeps in memory sets them aside
 * in sorted runs; the save merges runs, memory and the old index, the
 * newest of equal paths winning (a racy one dropping the old record too). */
Test (ctxsum, updates_past_the_memory_bound_go_to_runs_and_merge)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_ctxsum *cs = open_cs (st);
  add (cs, 0, 3000);
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  kiln_ctxsum_set_spill (cs, 64 * 1024); /* a run every few hundred updates */
  add (cs, 2000, 9000);                  /* 1000 known again, 6000 new */
  kiln_autofree char *p5 = path_of (5), *p2500 = path_of (2500), *p8000 = path_of (8000);
  struct stat s5 = fake_stat (5), s2500 = fake_stat (2500), s8000 = fake_stat (8000);
  struct kiln_digest other, got;
  kiln_digest_of ("other", 5, &other);
  s5.st_size = 99999;
  kiln_ctxsum_update (cs, p5, &s5, &other);       /* a mapped record replaced */
  kiln_ctxsum_update (cs, p8000, &s8000, &other); /* a spilled update replaced */
  clock_gettime (CLOCK_REALTIME, &s2500.st_mtim);
  kiln_ctxsum_update (cs, p2500, &s2500, &other); /* racy: neither it nor the old one is kept */
  add (cs, 9000, 12000);                          /* more runs after them */
  cr_assert_eq (files_in ("cache/ctxsum"), 1, "runs are unnamed files: only the index is listed");
  size_t runs = open_under ("cache/ctxsum");
  cr_assert (runs >= 10, "%zu runs", runs);
  save_cs (cs);
  kiln_ctxsum_free (cs);

  cs = open_cs (st);
  cr_assert_eq (hits (cs, 0, 5), 5);
  cr_assert_eq (hits (cs, 6, 2500), 2494);
  cr_assert_eq (hits (cs, 2501, 8000), 5499);
  cr_assert_eq (hits (cs, 8001, 12000), 3999);
  cr_assert (kiln_ctxsum_lookup (cs, p5, &s5, &got) && strcmp (got.s, other.s) == 0, "the update won");
  cr_assert (kiln_ctxsum_lookup (cs, p8000, &s8000, &got) && strcmp (got.s, other.s) == 0, "the later update won");
  struct stat old2500 = fake_stat (2500);
  cr_assert_not (kiln_ctxsum_lookup (cs, p2500, &old2500, &got), "the racy update dropped the old record");
  cr_assert_not (kiln_ctxsum_lookup (cs, p2500, &s2500, &got));
  kiln_ctxsum_free (cs);
  kiln_store_free (st);
}
