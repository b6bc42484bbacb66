/* kiln/ref.h - image references, parsed and normalised as Docker does:
 * "busybox" -> docker.io/library/busybox:latest, "host:port/a/b:tag@sha256:..".
 *
 * Ownership: a kiln_ref is a value filled by _parse and cleared by the
 * caller with kiln_ref_clear; every function returning char * returns a
 * malloc'd string for the caller. */
#ifndef KILN_REF_H
#define KILN_REF_H

#include <stdbool.h>
#include "kiln/error.h"

struct kiln_ref {
  char *domain; /* "docker.io", "localhost:5000", ... */
  char *path;   /* "library/busybox", "a/b" */
  char *tag;    /* NULL when only a digest was given; "latest" when neither */
  char *digest; /* "sha256:..." or NULL */
};

/* Parses s; errors (KILN_E_PARSE) name the reference and what is wrong
 * (uppercase repository, bad tag, bad digest, empty, too long). */
int kiln_ref_parse (const char *s, struct kiln_ref *out, struct kiln_error **err);
void kiln_ref_clear (struct kiln_ref *r);

/* "domain/path:tag", "domain/path@digest" or "domain/path:tag@digest". */
char *kiln_ref_string (const struct kiln_ref *r);
/* The tag of name ("latest" when it has none or does not parse), for an
 * archive's own image name.  Caller frees. */
char *kiln_ref_tag_or_latest (const char *name);
/* "domain/path" */
char *kiln_ref_repository (const struct kiln_ref *r);

#endif
