/* kiln/run.h - an image's command in the sandbox, over an overlay of its
 * snapshots (`kiln run`: tests in CI).  The container's writable layer is
 * thrown away afterwards.
 *
 * Ownership: the options and everything they point to are borrowed for the
 * call. */
#ifndef KILN_RUN_H
#define KILN_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/error.h"
#include "kiln/image.h"

struct kiln_store;
struct kiln_registry_opts;
struct kiln_sandbox_mount;

struct kiln_run_opts {
  const char *image;
  char **argv;            /* the command, replacing the image's CMD; NULL: CMD */
  const char *entrypoint; /* with entrypoint_set: replaces ENTRYPOINT ("" clears it) */
  bool entrypoint_set;
  char **env;          /* "K=V", over the image's ENV */
  const char *workdir; /* NULL: the image's WorkingDir */
  const char *user;    /* NULL: the image's User, else root */
  bool network_none;
  const struct kiln_sandbox_mount *mounts;
  size_t nmounts;
  const struct kiln_registry_opts *registry; /* to pull an image the store lacks; NULL: never */
  enum kiln_pull_policy pull;                /* --pull (default missing, as podman run) */
};

/* Runs the command; *status is its exit status (128 + signal when killed).
 * -1 with *err when the container could not be set up (the image has no
 * command, the user is unknown, a mount failed). */
int kiln_run_image (struct kiln_store *st, const struct kiln_run_opts *o, int *status, struct kiln_error **err);

#endif
