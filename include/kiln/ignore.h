/* kiln/ignore.h - .dockerignore with Docker's semantics (moby patternmatcher):
 * Go filepath.Match syntax plus "**", "!" exceptions, the last matching
 * pattern wins, a path is excluded when it or one of its parents is excluded
 * unless a later exception re-includes it.  Patterns are cleaned like
 * filepath.Clean and a leading "/" is dropped.  Pure code.
 *
 * Ownership: _parse copies what it keeps of text; the pattern set is the
 * caller's until kiln_ignore_free (NULL-safe). */
#ifndef KILN_IGNORE_H
#define KILN_IGNORE_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/error.h"

struct kiln_ignore;

/* Parses the file's text (comments "#", blank lines skipped). name for errors. */
int kiln_ignore_parse (const char *name, const char *text, size_t len, struct kiln_ignore **out,
                       struct kiln_error **err);
/* An empty pattern set (nothing excluded). */
struct kiln_ignore *kiln_ignore_new_empty (void);
void kiln_ignore_free (struct kiln_ignore *ig);

/* Is rel (a cleaned relative path, '/'-separated, no leading '/') excluded? */
bool kiln_ignore_excluded (const struct kiln_ignore *ig, const char *rel);

/* For an excluded directory: may an exception pattern re-include something
 * below it?  If true the walker must still descend into it. */
bool kiln_ignore_has_exceptions_under (const struct kiln_ignore *ig, const char *dir);

#endif
