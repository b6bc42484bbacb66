/* glob.c - linear-time glob matching (see kiln/glob.h).
 *
 * The tokens are the states of an automaton; the matcher keeps, for each
 * text position not yet passed, the set of live states, each with the
 * leftmost text position a match through it started at.  A character is
 * 1 to 4 bytes, so a state lands at most 4 positions ahead: a ring of 5
 * sets is all the memory needed.  Moves that consume nothing (a star may
 * match the empty string, "**" + "/" may match nothing) only go forward in
 * the token list, so one pass in order follows them all. */
#include <stdlib.h>
#include <string.h>
#include "kiln/glob.h"
#include "kiln/util.h"

#define RING 5
#define NONE SIZE_MAX
#define SPLIT 100 /* internal: consumes nothing, goes on at +1 or +skip */

struct kiln_glob_node {
  unsigned char kind;
  char c;
  unsigned char skip;
  const char *cls;
};

enum mode {
  MODE_MATCH,
  MODE_SHORTEST,
  MODE_LONGEST,
  MODE_FIND,
  MODE_START,
};

struct sim {
  const struct kiln_glob *g;
  const char *s;
  size_t n;
  size_t m; /* states: the tokens, then "matched" */
  size_t *slot[RING];
  bool live[RING];
};

void
kiln_glob_init (struct kiln_glob *g, int sep)
{
  memset (g, 0, sizeof *g);
  g->sep = sep;
}

static void
push_node (struct kiln_glob *g, unsigned char kind, char c, unsigned char skip, const char *cls)
{
  if (g->n == g->alloc)
    {
      g->alloc = g->alloc ? 2 * g->alloc : 16;
      g->nodes = kiln_xrealloc (g->nodes, g->alloc * sizeof *g->nodes);
    }
  g->nodes[g->n++] = (struct kiln_glob_node){ kind, c, skip, cls };
}

void
kiln_glob_add (struct kiln_glob *g, enum kiln_glob_kind kind, char c, const char *cls)
{
  if (kind != KILN_GLOB_DIRS)
    {
      push_node (g, (unsigned char) kind, c, 0, cls);
      return;
    }
  /* "(.*" "/)?": skip all three, or any run then a slash */
  push_node (g, SPLIT, 0, 3, NULL);
  push_node (g, KILN_GLOB_ANY, 0, 0, NULL);
  push_node (g, KILN_GLOB_BYTE, '/', 1, NULL); /* skip = 1: may be skipped */
}

void
kiln_glob_clear (struct kiln_glob *g)
{
  free (g->nodes);
  kiln_glob_init (g, g->sep);
}

size_t
kiln_glob_char (const char *s, size_t n, uint32_t *rune)
{
  const unsigned char *p = (const unsigned char *) s;
  if (n == 0)
    return 0;
  size_t l = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
  uint32_t r = l == 1 ? p[0] : l == 2 ? p[0] & 0x1fu : l == 3 ? p[0] & 0x0fu : p[0] & 0x07u;
  bool ok = l != 0 && l <= n;
  for (size_t i = 1; ok && i < l; i++)
    {
      ok = (p[i] & 0xc0) == 0x80;
      r = (r << 6) | (p[i] & 0x3fu);
    }
  if (!ok)
    {
      l = 1;
      r = p[0];
    }
  if (rune)
    *rune = r;
  return l;
}

static uint32_t
next_rune (const char **p)
{
  uint32_t r;
  *p += kiln_glob_char (*p, strnlen (*p, 4), &r);
  return r;
}

/* One character of a class (Go's getEsc): not '-' or ']' unescaped, and the
 * class must go on after it. */
static bool
class_char (const char **p, uint32_t *r)
{
  if (**p == '\0' || **p == '-' || **p == ']')
    return false;
  if (**p == '\\')
    {
      (*p)++;
      if (**p == '\0')
        return false;
    }
  *r = next_rune (p);
  return **p != '\0';
}

bool
kiln_glob_class_scan (const char **p, uint32_t c, bool *hit)
{
  bool neg = **p == '^';
  bool in = false;
  if (neg)
    (*p)++;
  for (int nrange = 0;; nrange++)
    {
      uint32_t lo, hi;
      if (**p == ']' && nrange > 0)
        break;
      if (!class_char (p, &lo))
        return false;
      hi = lo;
      if (**p == '-')
        {
          (*p)++;
          if (!class_char (p, &hi))
            return false;
        }
      if (lo <= c && c <= hi)
        in = true;
    }
  (*p)++;
  *hit = in != neg;
  return true;
}

/* State k is live at text position pos, for a match that started at start
 * (the leftmost start wins: the futures of both are the same). */
static void
relax (struct sim *x, size_t pos, size_t k, size_t start)
{
  size_t *st = x->slot[pos % RING];
  if (start < st[k])
    st[k] = start;
  x->live[pos % RING] = true;
}

static void
closure (const struct sim *x, size_t *st)
{
  for (size_t k = 0; k < x->g->n; k++)
    {
      const struct kiln_glob_node *nd = &x->g->nodes[k];
      if (st[k] == NONE)
        continue;
      if (nd->kind == KILN_GLOB_STAR || nd->kind == KILN_GLOB_ANY || nd->kind == SPLIT)
        st[k + 1] = st[k] < st[k + 1] ? st[k] : st[k + 1];
      if (nd->kind == SPLIT)
        st[k + nd->skip] = st[k] < st[k + nd->skip] ? st[k] : st[k + nd->skip];
    }
}

static bool
class_hit (const char *cls, uint32_t r)
{
  bool hit = false;
  kiln_glob_class_scan (&cls, r, &hit);
  return hit;
}

/* Consumes the character at position j from the states in st. */
static void
step (struct sim *x, size_t j, const size_t *st)
{
  uint32_t r;
  size_t l = kiln_glob_char (x->s + j, x->n - j, &r);
  unsigned char c = (unsigned char) x->s[j];
  bool sep = x->g->sep >= 0 && c == (unsigned) x->g->sep;
  for (size_t k = 0; k < x->g->n; k++)
    {
      const struct kiln_glob_node *nd = &x->g->nodes[k];
      if (st[k] == NONE)
        continue;
      switch (nd->kind)
        {
        case KILN_GLOB_BYTE:
          if (c == (unsigned char) nd->c)
            relax (x, j + 1, k + 1, st[k]);
          break;
        case KILN_GLOB_ONE:
          if (!sep)
            relax (x, j + l, k + 1, st[k]);
          break;
        case KILN_GLOB_CLASS:
          if (class_hit (nd->cls, r))
            relax (x, j + l, k + 1, st[k]);
          break;
        case KILN_GLOB_STAR:
          if (!sep)
            relax (x, j + l, k, st[k]);
          break;
        case KILN_GLOB_ANY: relax (x, j + l, k, st[k]); break;
        default: break;
        }
    }
}

static bool
any_live (const struct sim *x)
{
  for (int i = 0; i < RING; i++)
    if (x->live[i])
      return true;
  return false;
}

/* A match through the "matched" state at position j, started at start. */
static bool
better (bool found, size_t best_s, size_t best_e, size_t start, size_t j)
{
  return !found || start < best_s || (start == best_s && j > best_e);
}

/* The simulation behind every entry point.  *a and *b receive the match
 * (MODE_FIND: start and end; prefix modes: the length in *a). */
static int
run (struct sim *x, enum mode mode, size_t *a, size_t *b, size_t *budget)
{
  size_t m = x->m, best_s = NONE, best_e = 0;
  bool found = false;
  int ret = 0;
  if (mode != MODE_FIND)
    relax (x, 0, 0, 0);
  for (size_t j = 0; j <= x->n; j++)
    {
      size_t *st = x->slot[j % RING];
      if (mode == MODE_FIND && !found)
        relax (x, j, 0, j);
      if (!any_live (x))
        break;
      if (!x->live[j % RING])
        continue;
      if (budget && *budget < m)
        return -1;
      if (budget)
        *budget -= m;
      closure (x, st);
      if (mode == MODE_FIND && found)
        for (size_t k = 0; k < m; k++)
          if (st[k] != NONE && st[k] > best_s)
            st[k] = NONE;
      if (st[m - 1] != NONE)
        {
          if (mode == MODE_SHORTEST)
            return *a = j, 1;
          if (mode == MODE_LONGEST)
            *a = j, ret = 1;
          if (mode == MODE_FIND && better (found, best_s, best_e, st[m - 1], j))
            best_s = st[m - 1], best_e = j, found = true;
          if (mode == MODE_MATCH && j == x->n)
            ret = 1;
        }
      if (mode == MODE_START && j == x->n)
        for (size_t k = 0; k < m; k++)
          ret |= st[k] != NONE;
      if (j < x->n)
        step (x, j, st);
      memset (st, 0xff, m * sizeof *st);
      x->live[j % RING] = false;
    }
  if (mode == MODE_FIND && found)
    *a = best_s, *b = best_e, ret = 1;
  return ret;
}

/* ---- the same without start positions, for at most 64 states: a bit
 * per state, only the live ones visited (the .dockerignore hot path) ---- */

static uint64_t
closure64 (const struct kiln_glob *g, uint64_t cur)
{
  for (uint64_t todo = cur; todo;)
    {
      size_t k = (size_t) __builtin_ctzll (todo);
      todo &= todo - 1;
      if (k >= g->n)
        continue;
      const struct kiln_glob_node *nd = &g->nodes[k];
      uint64_t add = 0;
      if (nd->kind == KILN_GLOB_STAR || nd->kind == KILN_GLOB_ANY || nd->kind == SPLIT)
        add |= 1ull << (k + 1);
      if (nd->kind == SPLIT)
        add |= 1ull << (k + nd->skip);
      add &= ~cur;
      cur |= add;
      todo |= add;
    }
  return cur;
}

static void
step64 (const struct kiln_glob *g, const char *s, size_t n, size_t j, uint64_t cur, uint64_t *ring)
{
  uint32_t r;
  size_t l = kiln_glob_char (s + j, n - j, &r);
  unsigned char c = (unsigned char) s[j];
  bool sep = g->sep >= 0 && c == (unsigned) g->sep;
  for (; cur; cur &= cur - 1)
    {
      size_t k = (size_t) __builtin_ctzll (cur);
      const struct kiln_glob_node *nd = k < g->n ? &g->nodes[k] : NULL;
      if (!nd)
        continue;
      if ((nd->kind == KILN_GLOB_BYTE && c == (unsigned char) nd->c))
        ring[(j + 1) % RING] |= 1ull << (k + 1);
      else if ((nd->kind == KILN_GLOB_ONE && !sep) || (nd->kind == KILN_GLOB_CLASS && class_hit (nd->cls, r)))
        ring[(j + l) % RING] |= 1ull << (k + 1);
      else if ((nd->kind == KILN_GLOB_STAR && !sep) || nd->kind == KILN_GLOB_ANY)
        ring[(j + l) % RING] |= 1ull << k;
    }
}

static int
run64 (const struct kiln_glob *g, const char *s, size_t n, enum mode mode, size_t *a, size_t *budget)
{
  uint64_t ring[RING] = { 1 }, done = 1ull << g->n;
  size_t m = g->n + 1;
  int ret = 0;
  for (size_t j = 0; j <= n; j++)
    {
      uint64_t cur = ring[j % RING];
      ring[j % RING] = 0;
      if (!cur)
        {
          if (!(ring[0] | ring[1] | ring[2] | ring[3] | ring[4]))
            break;
          continue;
        }
      if (budget && *budget < m)
        return -1;
      if (budget)
        *budget -= m;
      cur = closure64 (g, cur);
      if (cur & done)
        {
          if (mode == MODE_SHORTEST)
            return *a = j, 1;
          if (mode == MODE_LONGEST)
            *a = j, ret = 1;
          if (mode == MODE_MATCH && j == n)
            ret = 1;
        }
      if (mode == MODE_START && j == n)
        ret = 1;
      if (j < n)
        step64 (g, s, n, j, cur, ring);
    }
  return ret;
}

static int
simulate (const struct kiln_glob *g, const char *s, size_t n, enum mode mode, size_t *a, size_t *b, size_t *budget)
{
  if (g->n < 64 && mode != MODE_FIND)
    return run64 (g, s, n, mode, a, budget);

  struct sim x = { .g = g, .s = s, .n = n, .m = g->n + 1 };
  /* small patterns (every .dockerignore line, in the context walk) need no
   * allocation */
  size_t local[RING * 24];
  size_t *mem = x.m <= 24 ? local : kiln_xmalloc (RING * x.m * sizeof *mem);
  memset (mem, 0xff, RING * x.m * sizeof *mem);
  for (int i = 0; i < RING; i++)
    x.slot[i] = mem + (size_t) i * x.m;
  int ret = run (&x, mode, a, b, budget);
  if (mem != local)
    free (mem);
  return ret;
}

static bool
fixed_byte (const struct kiln_glob *g, size_t k)
{
  return g->nodes[k].kind == KILN_GLOB_BYTE && g->nodes[k].skip == 0;
}

/* The bytes every match starts and ends with are there: a cheap test that
 * turns most paths away before the simulation (the context walk asks every
 * .dockerignore pattern about every path and its parents). */
static bool
fixed_ends_fit (const struct kiln_glob *g, const char *s, size_t n)
{
  size_t lead = 0, k = g->n, t = 0;
  for (; lead < g->n && fixed_byte (g, lead); lead++)
    if (lead >= n || s[lead] != g->nodes[lead].c)
      return false;
  if (lead == g->n)
    return n == lead;
  for (; k > lead && fixed_byte (g, k - 1); k--)
    if (++t > n - lead || s[n - t] != g->nodes[k - 1].c)
      return false;
  return true;
}

int
kiln_glob_match (const struct kiln_glob *g, const char *s, size_t n, size_t *budget)
{
  if (!fixed_ends_fit (g, s, n))
    return 0;
  return simulate (g, s, n, MODE_MATCH, NULL, NULL, budget);
}

int
kiln_glob_prefix (const struct kiln_glob *g, const char *s, size_t n, bool longest, size_t *len, size_t *budget)
{
  return simulate (g, s, n, longest ? MODE_LONGEST : MODE_SHORTEST, len, NULL, budget);
}

int
kiln_glob_find (const struct kiln_glob *g, const char *s, size_t n, size_t *start, size_t *end, size_t *budget)
{
  return simulate (g, s, n, MODE_FIND, start, end, budget);
}

bool
kiln_glob_match_start (const struct kiln_glob *g, const char *s, size_t n)
{
  return simulate (g, s, n, MODE_START, NULL, NULL, NULL) == 1;
}
