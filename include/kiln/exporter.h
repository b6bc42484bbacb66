/* kiln/exporter.h - what a finished build leaves behind, in one order
 * (as BuildKit's exporters): the tags, --output, --iidfile, --metadata-file,
 * the push, then the cache export (after the push, so the cache's layers are
 * found in the registry and mounted or skipped, not uploaded twice).
 *
 * Ownership: the options and the build result are borrowed; nothing is
 * kept after a call returns. */
#ifndef KILN_EXPORTER_H
#define KILN_EXPORTER_H

#include <stdbool.h>
#include <stdint.h>
#include "kiln/error.h"

struct kiln_store;
struct kiln_registry_opts;
struct kiln_build_result;

struct kiln_exporter_opts {
  char **tags;               /* normalised names; the first names --output's image */
  const char *output;        /* "type=tar|local|oci|oci-archive|docker|docker-archive,dest=PATH[,tar=BOOL]" */
  const char *iidfile;       /* the manifest digest, no newline */
  const char *metadata_file; /* BuildKit's keys and kiln's per-step data, JSON */
  bool push;                 /* every tag to its registry */
  char **cache_to;           /* --cache-to specs */
  int64_t cache_ttl;
  const struct kiln_registry_opts *registry;
  const int64_t *epoch; /* --source-date-epoch for the rootfs outputs, or NULL */
};

/* Checks the specs (--output, --cache-to) before anything is built, so a bad
 * one writes nothing; KILN_E_USAGE naming the flag. */
int kiln_exporter_check (const struct kiln_exporter_opts *o, struct kiln_error **err);
/* Whether --output writes to stdout (then stdout carries nothing else). */
bool kiln_exporter_to_stdout (const struct kiln_exporter_opts *o);
/* Runs every exporter asked for, in the order above; stops at the first
 * failure (earlier ones stay done). */
int kiln_exporter_run (struct kiln_store *st, const struct kiln_exporter_opts *o, const struct kiln_build_result *r,
                       struct kiln_error **err);

#endif
