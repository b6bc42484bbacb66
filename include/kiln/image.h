/* kiln/image.h - an image by the name a user gives: found in the store, or
 * pulled from its registry only when the store does not have it.
 *
 * Every command that takes an image name (build's FROM, run, inspect, tag,
 * save, push) goes through here, so they agree on what a name means: the
 * name as written, then its normalised reference (docker.io/library/busybox:
 * latest), then a manifest digest kept in the store (an untagged build).  A
 * store that cannot be read is an error of its own, never a reason to pull:
 * pulling over a damaged index.json would hide the damage and could build on
 * another image than the one the store has.
 *
 * Ownership: *out is a descriptor the caller clears (kiln_descriptor_clear);
 * name and pull are borrowed for the call. */
#ifndef KILN_IMAGE_H
#define KILN_IMAGE_H

#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;
struct kiln_registry_opts;

/* The manifest descriptor of name in the store; KILN_E_NOTFOUND only when it
 * is not there (other kinds: the store could not be read, an id is
 * ambiguous, the name does not parse). */
int kiln_image_resolve (struct kiln_store *st, const char *name, struct kiln_descriptor *out, struct kiln_error **err);

/* When kiln_image_open asks the registry (buildah's --pull values).  Only
 * a store entry that kiln pulled under the same name is ever compared with
 * its registry: an image built or tagged here is used as it is, and an
 * image named by digest is never checked again (its content cannot move). */
enum kiln_pull_policy {
  KILN_PULL_MISSING, /* only a name the store lacks */
  KILN_PULL_NEWER,   /* also when the registry's tag now names another digest
                      * than it did at the pull (one HEAD); a registry that
                      * cannot be asked, or a failed pull, keeps the local
                      * copy with a warning */
  KILN_PULL_ALWAYS,  /* every name by tag, every time; a failure is an error */
  KILN_PULL_NEVER,   /* the store only; a missing name is an error */
};
/* "always", "missing", "never", "newer", and "true" (always) / "false"
 * (missing) as buildah takes them. */
int kiln_image_pull_policy_parse (const char *s, enum kiln_pull_policy *out, struct kiln_error **err);

/* How kiln_image_open may pull: with registry options, told before a pull. */
struct kiln_image_pull {
  const struct kiln_registry_opts *registry;
  enum kiln_pull_policy policy;
  void (*on_pull) (void *ud, const char *ref); /* may be NULL */
  void *ud;
};

/* kiln_image_resolve, then, as pull->policy says and when pull is not NULL,
 * a pull of the normalised name. */
int kiln_image_open (struct kiln_store *st, const char *name, const struct kiln_image_pull *pull,
                     struct kiln_descriptor *out, struct kiln_error **err);

#endif
