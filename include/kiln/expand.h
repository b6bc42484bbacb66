/* kiln/expand.h - Dockerfile variable expansion and word splitting, exactly as
 * the Dockerfile reference (BuildKit's shell lexer) defines them.
 *
 * Supported: $v ${v} ${v:-w} ${v:+w} ${v-w} ${v+w} (w itself expanded,
 * nested), escape-char escapes (\$ gives a literal $), single quotes (no
 * expansion inside), double quotes (expansion inside, quotes removed).
 * Also as BuildKit: ${v:?msg} ${v?msg} (error naming v), ${v#p} ${v##p}
 * ${v%p} ${v%%p} ${v/p/r} ${v//p/r} (p: '*', '?', '\' escapes; matched
 * as BuildKit's Go regular expressions match them: by UTF-8 character,
 * '*' and '?' not matching a newline, ${v//p/r} replacing as Go's
 * ReplaceAllString does; in linear time, see kiln/glob.h), $1 and the
 * special parameters $@ $* $# $? $- $$ $! (looked up like any name).
 * Differs from BuildKit in one point: kiln_expand_words keeps a quoted empty
 * string ("" or '') as an empty word, as sh does.
 * Pure code.
 *
 * Ownership: what lookup returns is borrowed for the call (copied when
 * used).  *out is the caller's: a malloc'd string, or for _words and
 * _split_words_raw a vector freed with kiln_strv_free; on error *out is
 * left unset. */
#ifndef KILN_EXPAND_H
#define KILN_EXPAND_H

#include "kiln/error.h"

/* Limits of one kiln_expand_* call (one word, one instruction's words, one
 * heredoc), so that a Dockerfile cannot make expansion blow up: the bytes
 * its substitutions may produce in all (nested substitutions count each
 * time, even when their result is discarded: ${E:-${D//?/${E:-...}}}
 * otherwise grows exponentially), the glob matching steps of its patterns
 * (one step: one pattern token at one character), and how deep ${ } may
 * nest.  Text written as it is (a heredoc's lines) does not count.
 * Exceeding one is a KILN_E_PARSE error `expansion larger than N bytes`,
 * `pattern ...: more than N matching steps`, `${ nested more than N deep`. */
#define KILN_EXPAND_MAX_OUTPUT (1u << 20)
#define KILN_EXPAND_MAX_MATCH_STEPS (1u << 25)
#define KILN_EXPAND_MAX_DEPTH 64

/* Returns the value of name, or NULL when unset.  The planner records which
 * names a step looked up through this callback (cache keys, issue 5). */
typedef const char *(*kiln_expand_lookup_fn) (void *ud, const char *name);

/* Expands one word: quotes processed and removed, variables substituted, no
 * splitting on blanks.  *out is malloc'd.  Errors (KILN_E_PARSE): unterminated
 * quote or ${, bad substitution. */
int kiln_expand_word (const char *word, char escape, kiln_expand_lookup_fn lookup, void *ud, char **out,
                      struct kiln_error **err);

/* Splits text into words on unquoted blanks, expanding each as above
 * (BuildKit ProcessWords).  *out is a NULL-terminated vector. */
int kiln_expand_words (const char *text, char escape, kiln_expand_lookup_fn lookup, void *ud, char ***out,
                       struct kiln_error **err);

/* Expands the body of an unquoted heredoc (COPY <<EOF) as BuildKit's
 * dispatch ExpandRaw does: a lexer with the backslash as escape whatever the
 * escape directive, and SkipProcessQuotes, so quotes stay as written;
 * variables and backslash escapes are processed. */
int kiln_expand_heredoc (const char *body, kiln_expand_lookup_fn lookup, void *ud, char **out, struct kiln_error **err);

/* Splits text into raw words on blanks outside quotes, escapes and ${...},
 * expanding nothing (quotes and escapes are kept for kiln_expand_word).
 * BuildKit splits COPY/ADD arguments this way before expanding each as one
 * word (parser parseStringsWhitespaceDelimited, then ProcessWord): `$empty`
 * stays an (empty) argument and a value with blanks stays one path.
 * Unlike BuildKit, a quoted blank does not split ("a b" is one word). */
int kiln_split_words_raw (const char *text, char escape, char ***out);

#endif
