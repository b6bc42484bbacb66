/* fuzz_glob - the linear-time glob matcher behind expansion patterns and
 * .dockerignore (src/base/glob.c), against a plain reference.
 *
 * Input: one byte choosing the separator ('/', '\n' or none), then
 * "PATTERN\0TEXT".  PATTERN becomes tokens: '*' STAR, '?' ONE, '[' a CLASS
 * (when well formed), 0x01 ANY, 0x02 DIRS, '\\' quotes the next byte, any
 * other byte is itself.  Oracle: the reference below walks every (token,
 * position) pair reachable from the start, one character at a time as the
 * matcher decodes them, and must agree with kiln_glob_match,
 * kiln_glob_prefix (shortest and longest) and, for ASCII text (where
 * "leftmost" needs no character boundaries), kiln_glob_find; a budget must
 * not change a result, and the steps spent stay within a constant times
 * (nodes x text length).  Patterns of 64 tokens or more take the matcher's
 * general path, shorter ones its bitset path; both are checked. */
#include "fuzz.h"

#include "kiln/glob.h"

#define MAX_TEXT 160
#define MAX_TOKENS 96

struct tok {
  enum kiln_glob_kind kind;
  char c;
  const char *cls;
};

struct ref {
  const struct tok *t;
  size_t m;
  const char *s;
  size_t n;
  int sep;
  unsigned char *seen; /* (m + 1) x (n + 1) */
};

static bool
is_sep (const struct ref *r, size_t j)
{
  return r->sep >= 0 && (unsigned char) r->s[j] == (unsigned) r->sep;
}

static bool
class_hit (const char *cls, uint32_t rune)
{
  bool hit = false;
  const char *p = cls;
  return kiln_glob_class_scan (&p, rune, &hit) && hit;
}

/* Marks every state reachable from (i, j). */
static void
reach (struct ref *r, size_t i, size_t j)
{
  unsigned char *v = &r->seen[i * (r->n + 1) + j];
  if (*v)
    return;
  *v = 1;
  if (i == r->m)
    return;
  const struct tok *t = &r->t[i];
  uint32_t rune = 0;
  size_t l = j < r->n ? kiln_glob_char (r->s + j, r->n - j, &rune) : 0;
  switch (t->kind)
    {
    case KILN_GLOB_BYTE:
      if (j < r->n && r->s[j] == t->c)
        reach (r, i + 1, j + 1);
      break;
    case KILN_GLOB_ONE:
      if (l && !is_sep (r, j))
        reach (r, i + 1, j + l);
      break;
    case KILN_GLOB_CLASS:
      if (l && class_hit (t->cls, rune))
        reach (r, i + 1, j + l);
      break;
    case KILN_GLOB_STAR:
    case KILN_GLOB_ANY:
      reach (r, i + 1, j);
      if (l && (t->kind == KILN_GLOB_ANY || !is_sep (r, j)))
        reach (r, i, j + l);
      break;
    case KILN_GLOB_DIRS:
      reach (r, i + 1, j);
      for (size_t k = j + 1; k <= r->n; k++)
        if (r->s[k - 1] == '/')
          reach (r, i + 1, k);
      break;
    }
}

static bool
done_at (const struct ref *r, size_t k)
{
  return r->seen[r->m * (r->n + 1) + k];
}

static void
ref_from (struct ref *r, size_t start)
{
  memset (r->seen, 0, (r->m + 1) * (r->n + 1));
  reach (r, 0, start);
}

static size_t
parse_pattern (const char *p, struct tok *t)
{
  size_t m = 0;
  while (*p && m < MAX_TOKENS)
    {
      struct tok k = { KILN_GLOB_BYTE, *p, NULL };
      const char *q = p + 1;
      bool hit;
      switch (*p)
        {
        case '*': k.kind = KILN_GLOB_STAR; break;
        case '?': k.kind = KILN_GLOB_ONE; break;
        case 1: k.kind = KILN_GLOB_ANY; break;
        case 2: k.kind = KILN_GLOB_DIRS; break;
        case '\\':
          if (p[1])
            k.c = p[1], q = p + 2;
          break;
        case '[':
          if (kiln_glob_class_scan (&q, 'a', &hit))
            k.kind = KILN_GLOB_CLASS, k.cls = p + 1;
          else
            q = p + 1;
          break;
        default: break;
        }
      t[m++] = k;
      p = q;
    }
  return m;
}

static bool
ascii (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if ((unsigned char) s[i] >= 0x80)
      return false;
  return true;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const int seps[] = { '/', '\n', -1 };
  if (size < 1)
    return 0;
  int sep = seps[data[0] % 3];
  char *parts[2];
  size_t lens[2];
  fuzz_split (data + 1, size - 1, parts, lens, 2);
  struct tok t[MAX_TOKENS];
  size_t m = parse_pattern (parts[0], t);
  size_t n = lens[1] < MAX_TEXT ? lens[1] : MAX_TEXT;
  const char *s = parts[1];
  struct kiln_glob g;
  kiln_glob_init (&g, sep);
  for (size_t i = 0; i < m; i++)
    kiln_glob_add (&g, t[i].kind, t[i].c, t[i].cls);
  struct ref r = { t, m, s, n, sep, calloc ((m + 1) * (n + 1), 1) };
  if (r.seen == NULL)
    abort ();

  ref_from (&r, 0);
  int want = done_at (&r, n);
  size_t budget = SIZE_MAX / 2, before = budget;
  int got = kiln_glob_match (&g, s, n, NULL);
  if (got != want)
    fuzz_fail ("match: got %d, the reference says %d", got, want);
  if (kiln_glob_match (&g, s, n, &budget) != got)
    fuzz_fail ("match: a budget changed the result");
  if (before - budget > 8 * (g.n + 2) * (n + 2))
    fuzz_fail ("match: %zu steps for %zu nodes and %zu bytes", before - budget, g.n, n);

  size_t shortest = SIZE_MAX, longest = SIZE_MAX, len = 0;
  for (size_t k = 0; k <= n; k++)
    if (done_at (&r, k))
      {
        if (shortest == SIZE_MAX)
          shortest = k;
        longest = k;
      }
  got = kiln_glob_prefix (&g, s, n, false, &len, NULL);
  if (got != (shortest != SIZE_MAX) || (got == 1 && len != shortest))
    fuzz_fail ("shortest prefix: got %d/%zu, the reference says %zu", got, len, shortest);
  got = kiln_glob_prefix (&g, s, n, true, &len, NULL);
  if (got != (longest != SIZE_MAX) || (got == 1 && len != longest))
    fuzz_fail ("longest prefix: got %d/%zu, the reference says %zu", got, len, longest);

  kiln_glob_match_start (&g, s, n);
  if (ascii (s, n))
    {
      size_t ws = SIZE_MAX, we = 0, gs = 0, ge = 0;
      for (size_t st = 0; st <= n && ws == SIZE_MAX; st++)
        {
          ref_from (&r, st);
          for (size_t k = n + 1; k-- > st;)
            if (done_at (&r, k))
              {
                ws = st, we = k;
                break;
              }
        }
      got = kiln_glob_find (&g, s, n, &gs, &ge, NULL);
      if (got != (ws != SIZE_MAX) || (got == 1 && (gs != ws || ge != we)))
        fuzz_fail ("find: got %d [%zu, %zu), the reference says [%zu, %zu)", got, gs, ge, ws, we);
    }
  free (r.seen);
  kiln_glob_clear (&g);
  fuzz_free_parts (parts, 2);
  return 0;
}
