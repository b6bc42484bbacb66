/* kiln/cache_export.h - the layer cache shared through a registry or an OCI
 * layout: --cache-to / --cache-from.
 *
 * A cache is a plain OCI image manifest that any registry accepts: its
 * config is a JSON blob of media type KILN_MT_CACHE_CONFIG listing the cache
 * records (key, parent, instruction, created, built, inputs, layer, diff_id)
 * and its layers are the layer blobs those records name, deduplicated, so
 * the registry keeps them alive and a push of the image finds them by HEAD
 * or cross-repository mount.
 *
 * Import reads only the manifest and the config: records go into the local
 * cache and their layers into kiln/sources.json, so a hit is a hit without
 * its bytes, which are fetched when a later step needs the snapshot.
 *
 * Ownership: a spec and a doc are values cleared by their _clear; _parse,
 * _from_json and _collect fill an empty one, which the caller clears even
 * after a failure.  Keys, images, specs and options passed in are borrowed
 * for the call. */
#ifndef KILN_CACHE_EXPORT_H
#define KILN_CACHE_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include "kiln/cache.h"
#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/registry.h"

#define KILN_MT_CACHE_CONFIG "application/vnd.kiln.cache.config.v1+json"
#define KILN_CACHE_TTL_DEFAULT (14 * 24 * 3600) /* seconds, as kaniko */

enum kiln_cache_kind { KILN_CACHE_REGISTRY, KILN_CACHE_LOCAL };
enum kiln_cache_mode { KILN_CACHE_MODE_MIN, KILN_CACHE_MODE_MAX };

/* --cache-to / --cache-from value:
 *   type=registry,ref=REG/REPO:TAG[,mode=min|max]   (or just REF)
 *   type=local,dest=DIR[,tag=NAME][,mode=..]  /  type=local,src=DIR[,tag=NAME] */
struct kiln_cache_spec {
  enum kiln_cache_kind kind;
  char *ref;                 /* registry: normalised reference */
  char *dir;                 /* local: the OCI layout directory */
  char *tag;                 /* local: ref.name in index.json ("cache") */
  enum kiln_cache_mode mode; /* export: min (the final image's layers) by default */
};
/* for_export: dest= (else src=) names the directory. */
int kiln_cache_spec_parse (const char *text, bool for_export, struct kiln_cache_spec *out, struct kiln_error **err);
void kiln_cache_spec_clear (struct kiln_cache_spec *s);

/* One record of a cache document; built = unix seconds when the step was
 * built (the TTL counts from there, also across an import). */
struct kiln_cache_entry {
  struct kiln_cache_record rec;
  int64_t built;
  bool has_toc; /* the layer's table of contents travels as a blob */
  struct kiln_descriptor toc;
};
struct kiln_cache_doc {
  struct kiln_cache_entry *v;
  size_t n;
};
void kiln_cache_doc_clear (struct kiln_cache_doc *d);
/* The config blob: compact, keys sorted; *out malloc'd. */
int kiln_cache_doc_to_json (const struct kiln_cache_doc *d, char **out, size_t *len, struct kiln_error **err);
/* Fills *out from scratch; every record must carry a layer. */
int kiln_cache_doc_from_json (const char *data, size_t len, struct kiln_cache_doc *out, struct kiln_error **err);

/* The local records of keys (duplicates and keys without a layer record
 * are skipped; so are records older than ttl seconds when ttl > 0).  With
 * image non-NULL (mode=min) only records whose layer is one of the image's. */
int kiln_cache_doc_collect (struct kiln_store *st, const struct kiln_digest *keys, size_t n,
                            const struct kiln_descriptor *image, int64_t ttl, struct kiln_cache_doc *out,
                            struct kiln_error **err);
/* Stores the config blob and the manifest; *manifest receives its descriptor. */
int kiln_cache_doc_store (struct kiln_store *st, const struct kiln_cache_doc *d, struct kiln_descriptor *manifest,
                          struct kiln_error **err);
/* Puts the records into the local cache (records older than ttl skipped; a
 * local record of the same key whose layer is here wins), each record file
 * dated by its build time.  *imported (optional) counts the records put. */
int kiln_cache_doc_import (struct kiln_store *st, const struct kiln_cache_doc *d, int64_t ttl, size_t *imported,
                           struct kiln_error **err);

/* Unix seconds when the record key (child of parent) was written by a
 * build or dated by an import: the mtime of its children entry, which hits
 * do not touch (they touch the record file, for prune); 0 when unknown. */
int64_t kiln_cache_built (struct kiln_store *st, const struct kiln_digest *parent, const struct kiln_digest *key);

/* After a build: exports the records of keys (the steps' keys) to spec;
 * image is the built manifest (mode=min keeps its layers' records). */
int kiln_cache_export (struct kiln_store *st, const struct kiln_digest *keys, size_t n,
                       const struct kiln_descriptor *image, const struct kiln_cache_spec *spec, int64_t ttl,
                       const struct kiln_registry_opts *o, struct kiln_error **err);
/* Before a build: imports spec's records (manifest and config only).  A
 * cache that does not exist is a warning and returns 1; 0 imported. */
int kiln_cache_import (struct kiln_store *st, const struct kiln_cache_spec *spec, int64_t ttl,
                       const struct kiln_registry_opts *o, struct kiln_error **err);
/* --cache-from values (NULL-terminated, may be NULL): _check parses each
 * before anything is built (KILN_E_USAGE naming the flag); _import imports
 * each in turn with kiln_cache_import and stops at the first failure. */
int kiln_cache_check_sources (char *const *specs, struct kiln_error **err);
int kiln_cache_import_sources (struct kiln_store *st, char *const *specs, int64_t ttl,
                               const struct kiln_registry_opts *o, struct kiln_error **err);

#endif
