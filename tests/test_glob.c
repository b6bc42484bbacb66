/* test_glob.c - the linear-time glob matcher: the same answers as a plain
 * backtracking matcher (the one expand.c and ignore.c used before) on many
 * small random cases, and no blow-up on the inputs that made that one take
 * exponential time. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/glob.h"

/* ---- the reference: backtracking, obviously right, exponential ---- */

struct rtok {
  enum kiln_glob_kind kind;
  char c;
};

static bool
ref_match (const struct rtok *t, size_t nt, const char *s, size_t n, int sep)
{
  size_t l;
  if (nt == 0)
    return n == 0;
  switch (t->kind)
    {
    case KILN_GLOB_BYTE: return n > 0 && *s == t->c && ref_match (t + 1, nt - 1, s + 1, n - 1, sep);
    case KILN_GLOB_ONE:
      if (n == 0 || *s == sep)
        return false;
      l = kiln_glob_char (s, n, NULL);
      return ref_match (t + 1, nt - 1, s + l, n - l, sep);
    case KILN_GLOB_STAR:
    case KILN_GLOB_ANY:
      for (size_t i = 0;; i += l)
        {
          if (ref_match (t + 1, nt - 1, s + i, n - i, sep))
            return true;
          if (i == n || (t->kind == KILN_GLOB_STAR && s[i] == sep))
            return false;
          l = kiln_glob_char (s + i, n - i, NULL);
        }
    case KILN_GLOB_DIRS:
      if (ref_match (t + 1, nt - 1, s, n, sep))
        return true;
      for (size_t i = 0; i < n; i++)
        if (s[i] == '/' && ref_match (t + 1, nt - 1, s + i + 1, n - i - 1, sep))
          return true;
      return false;
    default: return false;
    }
}

/* positions where a character starts, as the matcher walks s */
static bool
boundary (const char *s, size_t n, size_t k)
{
  for (size_t i = 0; i < n; i += kiln_glob_char (s + i, n - i, NULL))
    if (i == k)
      return true;
  return k == n;
}

static const char alphabet[][3] = { "a", "b", "/", "\n", "\xc3\xa9", "\xa9" };
static const enum kiln_glob_kind kinds[] = { KILN_GLOB_BYTE, KILN_GLOB_BYTE, KILN_GLOB_BYTE, KILN_GLOB_ONE,
                                             KILN_GLOB_STAR, KILN_GLOB_ANY,  KILN_GLOB_DIRS };

static size_t
random_text (char *s, size_t max)
{
  size_t n = 0, want = (size_t) rand () % max;
  for (size_t i = 0; i < want; i++)
    {
      const char *a = alphabet[rand () % 6];
      memcpy (s + n, a, strlen (a));
      n += strlen (a);
    }
  s[n] = '\0';
  return n;
}

Test (glob, agrees_with_backtracking_on_random_cases)
{
  srand (12);
  for (int iter = 0; iter < 20000; iter++)
    {
      struct rtok t[6];
      size_t nt = (size_t) rand () % 6;
      int sep = iter % 2 ? '/' : '\n';
      struct kiln_glob g;
      kiln_glob_init (&g, sep);
      for (size_t i = 0; i < nt; i++)
        {
          t[i].kind = kinds[rand () % 7];
          t[i].c = "ab/"[rand () % 3];
          kiln_glob_add (&g, t[i].kind, t[i].c, NULL);
        }
      char s[64];
      size_t n = random_text (s, 8);
      cr_assert_eq (kiln_glob_match (&g, s, n, NULL) == 1, ref_match (t, nt, s, n, sep), "case %d", iter);
      /* shortest and longest prefix over the character boundaries */
      size_t lo = SIZE_MAX, hi = SIZE_MAX, k;
      for (size_t i = 0; i <= n; i++)
        if (boundary (s, n, i) && ref_match (t, nt, s, i, sep))
          {
            lo = lo == SIZE_MAX ? i : lo;
            hi = i;
          }
      int r = kiln_glob_prefix (&g, s, n, false, &k, NULL);
      cr_assert_eq (r == 1, lo != SIZE_MAX, "case %d", iter);
      if (r == 1)
        cr_assert_eq (k, lo, "case %d shortest", iter);
      r = kiln_glob_prefix (&g, s, n, true, &k, NULL);
      if (r == 1)
        cr_assert_eq (k, hi, "case %d longest", iter);
      /* leftmost, then longest */
      size_t fs = SIZE_MAX, fe = 0, a, b;
      for (size_t i = 0; i <= n && fs == SIZE_MAX; i++)
        for (size_t j = i; j <= n && boundary (s, n, i); j++)
          if (boundary (s + i, n - i, j - i) && ref_match (t, nt, s + i, j - i, sep))
            fs = i, fe = j;
      r = kiln_glob_find (&g, s, n, &a, &b, NULL);
      cr_assert_eq (r == 1, fs != SIZE_MAX, "case %d find", iter);
      if (r == 1)
        cr_assert (a == fs && b == fe, "case %d find: [%zu, %zu) want [%zu, %zu)", iter, a, b, fs, fe);
      /* the same behind 70 literal bytes: over 64 states, the general
       * simulation (with start positions) instead of the bit-set one */
      struct kiln_glob big;
      char zs[80 + 64];
      kiln_glob_init (&big, sep);
      memset (zs, 'z', 70);
      memcpy (zs + 70, s, n + 1);
      for (int i = 0; i < 70; i++)
        kiln_glob_add (&big, KILN_GLOB_BYTE, 'z', NULL);
      for (size_t i = 0; i < nt; i++)
        kiln_glob_add (&big, t[i].kind, t[i].c, NULL);
      cr_assert_eq (kiln_glob_match (&big, zs, n + 70, NULL) == 1, ref_match (t, nt, s, n, sep), "big %d", iter);
      r = kiln_glob_prefix (&big, zs, n + 70, false, &k, NULL);
      cr_assert_eq (r == 1, lo != SIZE_MAX, "big %d", iter);
      if (r == 1)
        cr_assert_eq (k, lo + 70, "big %d shortest", iter);
      r = kiln_glob_prefix (&big, zs, n + 70, true, &k, NULL);
      if (r == 1)
        cr_assert_eq (k, hi + 70, "big %d longest", iter);
      cr_assert_eq (kiln_glob_match_start (&big, zs, n + 70), kiln_glob_match_start (&g, s, n), "big %d", iter);
      kiln_glob_clear (&big);
      kiln_glob_clear (&g);
    }
}

Test (glob, classes_and_match_start)
{
  struct kiln_glob g;
  kiln_glob_init (&g, '/');
  kiln_glob_add (&g, KILN_GLOB_BYTE, 'x', NULL);
  kiln_glob_add (&g, KILN_GLOB_CLASS, 0, "a-c\xc3\xa9]");
  kiln_glob_add (&g, KILN_GLOB_BYTE, '/', NULL);
  kiln_glob_add (&g, KILN_GLOB_STAR, 0, NULL);
  cr_assert_eq (kiln_glob_match (&g, "xb/yy", 5, NULL), 1);
  cr_assert_eq (kiln_glob_match (&g, "x\xc3\xa9/", 4, NULL), 1);
  cr_assert_eq (kiln_glob_match (&g, "xd/", 3, NULL), 0);
  cr_assert_eq (kiln_glob_match (&g, "xb/y/z", 6, NULL), 0, "* does not cross /");
  cr_assert (kiln_glob_match_start (&g, "xa", 2));
  cr_assert (kiln_glob_match_start (&g, "xa/q", 4));
  cr_assert (kiln_glob_match_start (&g, "", 0));
  cr_assert_not (kiln_glob_match_start (&g, "xa/q/", 5));
  cr_assert_not (kiln_glob_match_start (&g, "y", 1));
  kiln_glob_clear (&g);
}

static void
add_stars (struct kiln_glob *g, int stars, enum kiln_glob_kind star)
{
  for (int i = 0; i < stars; i++)
    {
      kiln_glob_add (g, star, 0, NULL);
      kiln_glob_add (g, KILN_GLOB_BYTE, 'a', NULL);
    }
  kiln_glob_add (g, star, 0, NULL);
  kiln_glob_add (g, KILN_GLOB_BYTE, 'b', NULL);
}

/* "*a*a*a*a*a*a*b" against 10,000 a's: a backtracking matcher tries
 * C(10000, 6) splits; this one walks the text once.  The 64-star version
 * against 100 characters would not finish either under backtracking. */
Test (glob, many_stars_against_long_text_are_linear, .timeout = 10)
{
  static char s[10001];
  memset (s, 'a', 10000);
  for (int t = 0; t < 3; t++)
    {
      enum kiln_glob_kind star = t == 0 ? KILN_GLOB_STAR : t == 1 ? KILN_GLOB_ANY : KILN_GLOB_DIRS;
      struct kiln_glob g;
      size_t a, b;
      kiln_glob_init (&g, '/');
      add_stars (&g, 6, star);
      cr_assert_eq (kiln_glob_match (&g, s, 10000, NULL), 0);
      cr_assert_eq (kiln_glob_find (&g, s, 10000, &a, &b, NULL), 0);
      cr_assert_eq (kiln_glob_prefix (&g, s, 10000, true, &a, NULL), 0);
      kiln_glob_clear (&g);
      kiln_glob_init (&g, '/');
      add_stars (&g, 64, star);
      cr_assert_eq (kiln_glob_match (&g, s, 100, NULL), 0);
      cr_assert_eq (kiln_glob_find (&g, s, 100, &a, &b, NULL), 0);
      kiln_glob_clear (&g);
    }
}

Test (glob, budget_stops_the_walk)
{
  static char s[10001];
  memset (s, 'a', 10000);
  struct kiln_glob g;
  kiln_glob_init (&g, -1);
  add_stars (&g, 6, KILN_GLOB_STAR);
  kiln_glob_add (&g, KILN_GLOB_STAR, 0, NULL);
  size_t budget = 1000;
  cr_assert_eq (kiln_glob_match (&g, s, 10000, &budget), -1);
  budget = 10001 * 20;
  cr_assert_eq (kiln_glob_match (&g, s, 10000, &budget), 0);
  cr_assert_lt (budget, 10001 * 20, "steps are counted");
  kiln_glob_clear (&g);
}
