/* kiln/layer.h - the streaming layer writer.
 *
 * One pass per layer: entries (added by the caller in sorted path order) ->
 * tar (libarchive, PAX, numeric uid/gid, no uname/gname, no atime/ctime) ->
 * sha256 of the tar (the diffID) -> compressor (gzip, zstd or none) ->
 * sha256 of the blob -> store ingest file.  Memory stays bounded (a few MiB)
 * whatever the file sizes.  The same entries and options always give the
 * same bytes.
 *
 * Ownership: an entry and everything it points to (path, link, xattrs,
 * digests) is borrowed for the one call that takes it; the fd given to
 * kiln_layer_writer_add stays the caller's (read, never closed).  The
 * writer is the caller's from _new until kiln_layer_writer_free, which is
 * called after _finish too (finish does not free it; _blocks reads a
 * finished writer).  A kiln_layer_result is filled by _finish and cleared
 * by the caller with kiln_layer_result_clear.  kiln_compression_media_type
 * returns a static string. */
#ifndef KILN_LAYER_H
#define KILN_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;

enum kiln_compression { KILN_COMP_GZIP = 0, KILN_COMP_ZSTD, KILN_COMP_NONE };

struct kiln_layer_opts {
  enum kiln_compression compression;
  int level;        /* -1 = the default for the compressor */
  bool clamp_mtime; /* clamp every mtime to epoch (--source-date-epoch) */
  int64_t epoch;
};

/* The mtime a layer records for mtime: clamped to the epoch when asked. */
int64_t kiln_layer_opts_mtime (const struct kiln_layer_opts *o, int64_t mtime);

/* Parses "gzip" | "zstd" | "none"/"uncompressed". */
int kiln_compression_parse (const char *s, enum kiln_compression *out, struct kiln_error **err);
const char *kiln_compression_media_type (enum kiln_compression c);

struct kiln_layer_entry {
  const char *path; /* relative, no leading '/', no trailing '/', cleaned */
  mode_t mode;      /* type bits + permission bits (incl. setuid/sticky) */
  uid_t uid;
  gid_t gid;
  int64_t mtime; /* seconds */
  long mtime_nsec;
  uint64_t size;    /* regular files */
  const char *link; /* symlink target, or hardlink target path (relative) */
  bool hardlink;
  dev_t rdev; /* char/block devices */
  /* extended attributes as name/value pairs (security.capability, user.*) */
  const char *const *xattr_names;
  const void *const *xattr_values;
  const size_t *xattr_sizes;
  size_t nxattrs;
  /* Out, optional: the sha256 of the file's content, computed from the same
   * reads that fill the tar, so a cold COPY reads each file once. */
  struct kiln_digest *content_digest;
  /* In, optional: the content's sha256 when the caller knows it already; a
   * patching writer needs it for every regular file and reads only the
   * files of blocks it cannot reuse. */
  const struct kiln_digest *known_digest;
  void *opaque; /* handed back to a patching writer's open callback */
};

/* Opens the file of an entry a patching writer must read after all (opaque
 * and path as given to kiln_layer_writer_add); a read-only fd or -1 with *err.
 * Called from the writer's own thread, while the caller may be inside
 * kiln_layer_writer_add or _finish: it must not share unlocked state with
 * what the caller does meanwhile. */
typedef int (*kiln_layer_open_fn) (void *ud, void *opaque, const char *path, struct kiln_error **err);

struct kiln_layer_result {
  struct kiln_digest diff_id;  /* sha256 of the uncompressed tar */
  struct kiln_descriptor desc; /* the stored blob: media type, digest, size */
  uint64_t tar_size;
};
void kiln_layer_result_clear (struct kiln_layer_result *r);

struct kiln_layer_writer;

int kiln_layer_writer_new (struct kiln_store *st, const struct kiln_layer_opts *opts, struct kiln_layer_writer **out,
                           struct kiln_error **err);
/* A writer that rebuilds a gzip layer from an earlier layer `base` of the
 * same step: blocks whose recipe (layer-internal.h) the base's layer map
 * lists are copied compressed, the others are made from the files again
 * (opened through open), so a rebuild after a one-file change reads one
 * block's files, not the tree.  The bytes are exactly those
 * kiln_layer_writer_new would write.  Every regular file needs
 * known_digest; kiln_layer_writer_add takes fd -1.  Returns 1 with *out, or
 * 0 when base cannot serve (no map, another level, blob gone): then write
 * the layer the usual way. */
int kiln_layer_writer_new_patch (struct kiln_store *st, const struct kiln_layer_opts *opts,
                                 const struct kiln_digest *base, kiln_layer_open_fn open, void *ud,
                                 struct kiln_layer_writer **out, struct kiln_error **err);
/* How many blocks a finished writer made and how many it reused. */
void kiln_layer_writer_blocks (const struct kiln_layer_writer *w, uint64_t *made, uint64_t *reused);
/* Adds one entry; for regular files (not hardlinks) exactly e->size bytes are
 * read from fd (a file that changed size fails with KILN_E_IO). */
int kiln_layer_writer_add (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, int fd,
                           struct kiln_error **err);
/* Adds a regular file whose content is in memory (heredocs, generated files). */
int kiln_layer_writer_add_data (struct kiln_layer_writer *w, const struct kiln_layer_entry *e, const void *data,
                                size_t len, struct kiln_error **err);
/* Finishes the tar, flushes the compressor, commits the blob. */
int kiln_layer_writer_finish (struct kiln_layer_writer *w, struct kiln_layer_result *res, struct kiln_error **err);
/* Aborts an unfinished writer (drops the ingest file); NULL-safe. */
void kiln_layer_writer_free (struct kiln_layer_writer *w);

#endif
