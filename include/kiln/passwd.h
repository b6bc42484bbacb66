/* kiln/passwd.h - user and group names of an image, read from its /etc/passwd
 * and /etc/group through openat2(RESOLVE_IN_ROOT) on the image's root.
 *
 * Ownership: rootfd stays the caller's (never closed).  The ids are filled
 * from empty; their groups array is freed by kiln_passwd_ids_clear. */
#ifndef KILN_PASSWD_H
#define KILN_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kiln/error.h"

struct kiln_passwd_ids {
  uid_t uid;
  gid_t gid;
  gid_t *groups; /* supplementary groups (from /etc/group membership) */
  size_t ngroups;
};

/* Resolves "user[:group]" (names or numbers) as Docker does.  A user without
 * a group gets: with same_gid (COPY --chown, WORKDIR's owner) gid = uid for a
 * number and the passwd group for a name (BuildKit readUser); otherwise
 * (USER) the primary group from /etc/passwd, or 0 for a numeric user not
 * listed there.
 * rootfd may be -1 (no files: only numbers resolve).  with_groups also
 * collects the supplementary groups of /etc/group. */
int kiln_passwd_resolve (int rootfd, const char *spec, bool same_gid, bool with_groups, struct kiln_passwd_ids *out,
                         struct kiln_error **err);
void kiln_passwd_ids_clear (struct kiln_passwd_ids *ids);
/* Whether "user[:group]" names a user or group rather than giving numbers
 * only, i.e. whether resolving it needs the image's files. */
bool kiln_passwd_spec_has_names (const char *spec);

#endif
