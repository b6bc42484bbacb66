/* kiln/glob.h - glob matching in time linear in the text: the patterns of
 * word expansion (${v#p} ${v%p} ${v/p/r}, BuildKit shell/lex.go) and of
 * .dockerignore / COPY --exclude (moby/patternmatcher) run on one matcher.
 *
 * The callers parse their own syntax into a list of tokens; the matcher
 * simulates them as a nondeterministic automaton, one text position at a
 * time with the set of live tokens (as RE2, which BuildKit's and
 * patternmatcher's regular expressions run on, does).  There is no
 * backtracking: a pattern of m tokens costs O(m) per byte of text, so
 * `*a*a*a*a*b` against a long text is as cheap as `*b`.
 *
 * Characters are UTF-8 sequences; a byte that does not start a valid
 * sequence is a character of its own (Go's utf8.DecodeRune).  Pure code.
 *
 * Ownership: a kiln_glob owns its token array (freed by kiln_glob_clear) but
 * not the class texts its tokens point to, which the caller keeps alive
 * (they point into the pattern the caller parsed). */
#ifndef KILN_GLOB_H
#define KILN_GLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kiln_glob_kind {
  KILN_GLOB_BYTE,  /* the byte c */
  KILN_GLOB_ONE,   /* one character other than the separator */
  KILN_GLOB_CLASS, /* one character in the [...] class whose text starts at cls (after '[') */
  KILN_GLOB_STAR,  /* any run of characters without the separator */
  KILN_GLOB_ANY,   /* any run of characters, separator included */
  KILN_GLOB_DIRS,  /* "" or any run ending in '/' (patternmatcher's "**" + "/" before more pattern) */
};

struct kiln_glob_node;

/* A compiled pattern.  sep is the character ONE and STAR do not match
 * ('/' for paths, '\n' for BuildKit's shell patterns, -1 for none). */
struct kiln_glob {
  struct kiln_glob_node *nodes;
  size_t n, alloc;
  int sep;
};

void kiln_glob_init (struct kiln_glob *g, int sep);
/* Appends a token; cls (KILN_GLOB_CLASS) must stay valid as long as g. */
void kiln_glob_add (struct kiln_glob *g, enum kiln_glob_kind kind, char c, const char *cls);
void kiln_glob_clear (struct kiln_glob *g);

/* Every function below takes budget: NULL for no limit, else the number of
 * steps (one step: one token at one text position) it may still spend; it
 * is decreased, and when it runs out the function returns -1 (and the
 * caller reports the pattern as too costly).  Otherwise 1 = match, 0 = no. */

/* Does all of s[0, n) match? */
int kiln_glob_match (const struct kiln_glob *g, const char *s, size_t n, size_t *budget);
/* The shortest (longest) prefix of s[0, n) that matches: its length in *len. */
int kiln_glob_prefix (const struct kiln_glob *g, const char *s, size_t n, bool longest, size_t *len, size_t *budget);
/* The leftmost match in s[0, n), the longest one at that position:
 * [*start, *end). */
int kiln_glob_find (const struct kiln_glob *g, const char *s, size_t n, size_t *start, size_t *end, size_t *budget);
/* Could s[0, n) be the beginning of a text that matches?  (All of s is
 * consumed and some token is still live.) */
bool kiln_glob_match_start (const struct kiln_glob *g, const char *s, size_t n);

/* The length of the character at s (1 to 4, at most n; 0 when n is 0);
 * *rune (may be NULL) receives its code point, or the byte itself. */
size_t kiln_glob_char (const char *s, size_t n, uint32_t *rune);

/* Go filepath.Match's character class, *p just after '[' of a
 * NUL-terminated pattern: false when malformed; else *p is left after ']'
 * and *hit says whether rune c is in the class. */
bool kiln_glob_class_scan (const char **p, uint32_t c, bool *hit);

#endif
