/* kiln/userns.h - rootless mode: put the whole kiln process into a user
 * namespace (and a mount namespace) where it is uid 0.
 *
 * The caller's uid and gid map to 0; the subordinate ranges of /etc/subuid and
 * /etc/subgid (entries for the caller's name or numeric id) map to 1.. through
 * the setuid helpers newuidmap/newgidmap.  Without ranges or helpers only the
 * single id is mapped (setgroups denied), with a warning: files owned by other
 * users in images then cannot be created.
 *
 * Ownership: kiln_userns_parse_subid grows the caller's *ranges array with
 * realloc; the caller frees it. */
#ifndef KILN_USERNS_H
#define KILN_USERNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kiln/error.h"

struct kiln_userns_range {
  unsigned long start, count;
};

/* True when kiln is not root and needs kiln_userns_enter (euid != 0). */
bool kiln_userns_needed (void);

/* Enters the namespaces, in place (no re-exec).  The process MUST be
 * single-threaded: call it from main before any thread is created (unshare
 * of a user namespace fails with EINVAL otherwise).  Returns 0 when the
 * subordinate ranges were mapped, 1 when only the single id was (the
 * fallback), < 0 on failure (the process is then unchanged, or, if the
 * namespace exists but no map could be written, unusable: exit). */
int kiln_userns_enter (struct kiln_error **err);

/* Parses subuid/subgid text ("name:start:count" lines) and appends the ranges
 * of entries whose first field is `name` or the decimal `id` to *ranges
 * (realloc'd, *n updated).  Malformed lines are skipped.  Returns the number
 * of ranges added. */
size_t kiln_userns_parse_subid (const char *text, const char *name, unsigned long id, struct kiln_userns_range **ranges,
                                size_t *n);

#endif
