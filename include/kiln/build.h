/* kiln/build.h - executes a plan: stages, steps, layers, the final image.
 *
 * The needed stages run as a graph (src/solver/build_graph.c, up to --jobs
 * at once); each step goes through the solver (build_solve.c), which asks
 * the step's op for its cache inputs, looks the key up and runs the op only
 * on a miss.  Metadata steps edit the image config; COPY/ADD stream a layer
 * from the context (or another stage's files) through the layer writer into
 * the store; RUN runs in the sandbox over a snapshot.  A flattened view of
 * a stage's filesystem is made only when a step needs it (COPY --from,
 * --chown by name), in ROOT/tmp.
 *
 * Ownership: opts and all they point to are borrowed for the call (the
 * interrupted flag is read while it runs).  The result is filled from
 * empty and cleared by the caller with kiln_build_result_clear, also after
 * a failure. */
#ifndef KILN_BUILD_H
#define KILN_BUILD_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include "kiln/error.h"
#include "kiln/image.h"
#include "kiln/layer.h"
#include "kiln/oci.h"
#include "kiln/registry.h"
#include "kiln/sandbox.h"

struct kiln_store;

/* The .dockerignore file read whole (the Dockerfile's own cap is
 * KILN_DOCKERFILE_MAX_SIZE in kiln/dockerfile.h); real ones are a few KiB. */
#define KILN_BUILD_MAX_DOCKERIGNORE (4u << 20)

enum kiln_progress { KILN_PROGRESS_QUIET = 0, KILN_PROGRESS_PLAIN };

/* An annotation of the image manifest; platform NULL, or "os/arch[/variant]"
 * when it is only for an image of that platform (buildx's manifest[P]:). */
struct kiln_build_annotation {
  char *platform, *key, *value;
};

struct kiln_build_opts {
  const char *context;         /* context directory */
  const char *dockerfile;      /* path of the Dockerfile ("-" = stdin) */
  const char *dockerfile_name; /* name used in messages (e.g. "Dockerfile") */
  struct kiln_kvlist build_args;
  const char *target;
  bool no_cache;                 /* no cache lookups (results are still recorded) */
  int64_t cache_ttl;             /* seconds: records built longer ago are ignored; 0 = no limit */
  bool cache_sources;            /* --cache-from given: a hit may exist without a local record */
  char **no_cache_filter;        /* stage names (or indexes) built without cache lookups */
  struct kiln_layer_opts layer;  /* compression and mtime clamping */
  bool force_compression;        /* base layers too: recompress those in another compression */
  enum kiln_image_format format; /* media types of the manifest, config and every layer (--format) */
  bool have_epoch;               /* --source-date-epoch / SOURCE_DATE_EPOCH */
  int64_t epoch;
  struct kiln_kvlist secrets;                /* --secret: id -> "src=PATH" or "env=NAME" */
  struct kiln_registry_opts registry;        /* for FROM / COPY --from images not in the store */
  enum kiln_pull_policy pull;                /* when those are asked for again (kiln build: newer) */
  bool network_none;                         /* --network none: RUN steps without --network, or with =default */
  char **add_hosts;                          /* --add-host: "IP\tHOST" lines added to every RUN's /etc/hosts */
  struct kiln_kvlist labels;                 /* --label: set on the final image's config */
  struct kiln_build_annotation *annotations; /* --annotation [manifest[PLATFORM]:]K=V */
  size_t nannotations;
  struct kiln_sandbox_rlimit *ulimits; /* --ulimit: every RUN step starts with these */
  size_t nulimits;
  unsigned long long shm_size;        /* --shm-size: bytes of every RUN's /dev/shm; 0: 64 MiB */
  volatile sig_atomic_t *interrupted; /* set by a signal handler: stop before the next step */
  unsigned jobs;                      /* stages run at once (--jobs); 0 or 1: one at a time */
  enum kiln_progress progress;
  FILE *progress_out; /* where progress lines go (stderr) */
};

struct kiln_build_step_info {
  char *text;               /* "[2/7] COPY app/ /app/" */
  struct kiln_digest key;   /* cache key */
  bool cached;              /* the layer came from the cache */
  char *miss;               /* why a layer step was not cached, or NULL */
  struct kiln_digest layer; /* blob digest, or empty when no layer */
  bool has_layer;
  double seconds;
  size_t stage, stepno; /* the stage's index in the Dockerfile, the step's number in it (from 1) */
};

/* An image the build started from (FROM, COPY --from, RUN --mount from):
 * the name as normalised and the manifest it resolved to. */
struct kiln_build_base {
  char *ref;
  struct kiln_digest digest;
};

struct kiln_build_result {
  struct kiln_descriptor manifest;
  struct kiln_digest config;
  struct kiln_build_step_info *steps;
  size_t nsteps;
  struct kiln_build_base *bases; /* each name once, in the order first resolved */
  size_t nbases;
};
void kiln_build_result_clear (struct kiln_build_result *r);

/* Builds; on success the manifest is in the store (untagged: callers tag). */
int kiln_build_run (struct kiln_store *st, const struct kiln_build_opts *opts, struct kiln_build_result *res,
                    struct kiln_error **err);

#endif
