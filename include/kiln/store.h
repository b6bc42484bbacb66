/* kiln/store.h - the store: a plain OCI image layout at --root.
 *
 *   ROOT/oci-layout              {"imageLayoutVersion":"1.0.0"}
 *   ROOT/index.json              tagged manifests, ref.name = normalised reference
 *   ROOT/blobs/sha256/<hex>      content; the name always matches the content
 *   ROOT/ingest/                 blobs being written (temp files, never referenced)
 *   ROOT/tmp/                    scratch space of running builds
 *   ROOT/kiln.lock               flock()ed while index.json is rewritten
 *
 * Every write goes temp file -> fsync -> rename -> fsync dir, so a process
 * killed at any point leaves a store kiln_store_check reports clean.
 *
 * Ownership: the store is the caller's until kiln_store_free; its dirfd and
 * root string are borrowed from it.  A blob writer is freed by _commit or
 * _abort, whichever ends it.  A fd from kiln_store_blob_open is the
 * caller's to close.  Documents, descriptors, index snapshots and reports
 * are values: the call fills an empty one and the caller clears it with
 * its _clear (oci.h), also after a failure.  Returned paths are malloc'd
 * for the caller.  Nothing passed in is kept, except the fetcher's opaque
 * pointer, held until the fetcher is replaced. */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/buf.h"
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;
struct kiln_blob_writer;

/* Opens (creating when missing) the layout at root. */
int kiln_store_open (const char *root, struct kiln_store **out, struct kiln_error **err);
void kiln_store_free (struct kiln_store *st);
/* O_DIRECTORY fd of the root, owned by the store. */
int kiln_store_dirfd (const struct kiln_store *st);
const char *kiln_store_root (const struct kiln_store *st);

/* Starts a blob: a temp file in ingest/ hashed as it is written. */
int kiln_store_blob_begin (struct kiln_store *st, struct kiln_blob_writer **out, struct kiln_error **err);
int kiln_blob_writer_write (struct kiln_blob_writer *w, const void *data, size_t len, struct kiln_error **err);
/* Before the first write: the blob goes to disk with O_DIRECT, not through
 * the page cache, for a blob that is stored and seldom read back (a pulled
 * layer, extracted while it arrives).  Copying GBs into the page cache
 * costs more CPU than the disk write; the fsync at commit is unchanged.
 * Where the file system refuses O_DIRECT the blob is written as usual. */
void kiln_blob_writer_set_direct (struct kiln_blob_writer *w);
/* The digest of the bytes written so far (a download that must name what
 * it got without keeping it). */
void kiln_blob_writer_digest (const struct kiln_blob_writer *w, struct kiln_digest *out);
/* fsyncs and renames the blob to blobs/sha256/<hex> (an existing identical
 * blob is fine).  With expect non-NULL, a different digest fails with
 * KILN_E_DIGEST and nothing is committed.  Frees w in every case. */
int kiln_blob_writer_commit (struct kiln_blob_writer *w, const struct kiln_digest *expect, struct kiln_digest *out,
                             uint64_t *size, struct kiln_error **err);
/* Drops the temp file and frees w; NULL-safe. */
void kiln_blob_writer_abort (struct kiln_blob_writer *w);

/* Writes data as one blob. */
int kiln_store_blob_put (struct kiln_store *st, const void *data, size_t len, struct kiln_digest *out,
                         struct kiln_error **err);
bool kiln_store_blob_exists (struct kiln_store *st, const struct kiln_digest *d, uint64_t *size);
/* Read-only fd of a blob (KILN_E_NOTFOUND when absent and no fetcher could
 * get it). */
int kiln_store_blob_open (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err);
/* Makes sure a blob is in the store, asking the fetcher when it is not. */
int kiln_store_blob_ensure (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err);

/* Lazy blobs: a blob the store does not have (a cache hit or a base layer
 * known to live in a registry) is fetched only when something opens it.
 * The fetcher commits d into the store (verified) and returns 0, or fails;
 * KILN_E_NOTFOUND when it knows no place that has d.  One per store; NULL
 * removes it.  kiln_registry_fetch_blob is the registry-backed one. */
typedef int (*kiln_store_fetch_fn) (void *opaque, struct kiln_store *st, const struct kiln_digest *d,
                                    struct kiln_error **err);
void kiln_store_set_fetcher (struct kiln_store *st, kiln_store_fetch_fn fn, void *opaque);
/* Reads a whole blob into out (capped at max) and verifies its digest. */
int kiln_store_blob_read (struct kiln_store *st, const struct kiln_digest *d, size_t max, struct kiln_buf *out,
                          struct kiln_error **err);
/* "blobs/sha256/<hex>" relative to the root; caller frees. */
char *kiln_store_blob_relpath (const struct kiln_digest *d);

/* Serialises and stores a config / manifest; desc (optional) receives its descriptor. */
int kiln_store_put_config (struct kiln_store *st, const struct kiln_image_config *c, struct kiln_descriptor *desc,
                           struct kiln_error **err);
int kiln_store_put_manifest (struct kiln_store *st, const struct kiln_manifest *m, struct kiln_descriptor *desc,
                             struct kiln_error **err);
int kiln_store_get_manifest (struct kiln_store *st, const struct kiln_digest *d, struct kiln_manifest *out,
                             struct kiln_error **err);
int kiln_store_get_config (struct kiln_store *st, const struct kiln_digest *d, struct kiln_image_config *out,
                           struct kiln_error **err);

/* Points name (a normalised reference string) at the manifest desc, replacing
 * an older entry of that name; index.json is rewritten under the lock. */
int kiln_store_tag (struct kiln_store *st, const char *name, const struct kiln_descriptor *manifest,
                    struct kiln_error **err);
/* Removes the name; KILN_E_NOTFOUND when absent.  Blobs stay until prune. */
int kiln_store_untag (struct kiln_store *st, const char *name, struct kiln_error **err);
/* Finds the manifest descriptor for a name, a full "sha256:..." manifest
 * digest, or a unique hex prefix of one (>= 12 digits). */
int kiln_store_resolve (struct kiln_store *st, const char *name, struct kiln_descriptor *out, struct kiln_error **err);
/* A snapshot of index.json. */
int kiln_store_list (struct kiln_store *st, struct kiln_index *out, struct kiln_error **err);

struct kiln_store_report {
  size_t blobs, bad_blobs, refs, missing; /* counts */
  size_t remote;                          /* referenced blobs missing here but known to be in a
                                             * registry (kiln/sources.json): lazy, not problems */
  char **problems;                        /* one line each; NULL when clean */
  size_t ingest;                          /* leftover ingest/ files (not problems) */
};
void kiln_store_report_clear (struct kiln_store_report *r);
/* Rehashes every blob and follows every reference in index.json (manifests,
 * configs, layers).  Returns 0 when it could look (even if problems were
 * found; see r->problems), < 0 when it could not. */
int kiln_store_check (struct kiln_store *st, struct kiln_store_report *r, struct kiln_error **err);

/* A fresh private directory under ROOT/tmp (removed by the caller with
 * kiln_fs_rm_rf_at on kiln_store_dirfd, "tmp/<name>").  *relpath malloc'd. */
int kiln_store_mktemp_dir (struct kiln_store *st, char **relpath, struct kiln_error **err);

/* Writes an image (manifest + config + layers) as an OCI layout directory,
 * oci-archive or docker-archive; tag is the ref.name in the output (the tag
 * part, e.g. "latest") and name the full reference (may be NULL).
 * Blobs are hardlinked into a layout directory when on the same filesystem.
 * An archive goes to stdout when dest is "-" (never to a terminal). */
enum kiln_export_format {
  KILN_EXPORT_OCI_DIR,
  KILN_EXPORT_OCI_ARCHIVE,
  KILN_EXPORT_DOCKER_ARCHIVE,
  KILN_EXPORT_ROOTFS_TAR,
  KILN_EXPORT_ROOTFS_DIR
};
int kiln_store_export (struct kiln_store *st, const struct kiln_descriptor *manifest, const char *name, const char *tag,
                       enum kiln_export_format fmt, const char *dest, struct kiln_error **err);

/* The image's final filesystem - its layers applied in order, whiteouts
 * applied, in ROOT/tmp - written out (src/export_rootfs.c), as BuildKit's
 * tar and local exporters write a build result:
 *   KILN_EXPORT_ROOTFS_TAR  a tar at dest ("-" = stdout): names relative
 *                           ("etc/", "etc/passwd"), no root entry, sorted,
 *                           numeric owners, hardlinks as links to the first
 *                           name, xattrs as PAX SCHILY.xattr.*;
 *   KILN_EXPORT_ROOTFS_DIR  the same entries extracted into the directory
 *                           dest (created when missing) by the hardened
 *                           extractor, owners kept as real root only (a
 *                           rootless user gets the files as its own).
 * epoch non-NULL replaces every mtime (--source-date-epoch). */
int kiln_store_export_rootfs (struct kiln_store *st, const struct kiln_descriptor *manifest,
                              enum kiln_export_format fmt, const char *dest, const int64_t *epoch,
                              struct kiln_error **err);

#endif
