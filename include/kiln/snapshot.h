/* kiln/snapshot.h - image layers as overlayfs lower dirs, and the mount a
 * RUN step runs in.
 *
 *   ROOT/snapshots/<chainID hex>/   one layer, overlay format: extracted once,
 *                                   or a RUN step's upper dir kept
 *                                   (kiln_snapshot_keep_upper)
 *   ROOT/snapshots/.tmp-*           snapshots being extracted (flock()ed by
 *                                   their writer; stale ones are removed)
 *   ROOT/tmp/<name>/{upper,work,merged}   one mounted step (kiln_mount)
 *
 * A snapshot holds only its own layer: whiteouts are overlay markers (see
 * kiln_extract_opts.overlay_whiteouts): 0:0 character devices, and
 * user.overlay.opaque=y (+ trusted.overlay.opaque=y when running as real
 * root) on opaque directories, so the same snapshot mounts with or without
 * overlay's `userxattr` option.  A snapshot is extracted into a temp dir and
 * renamed into place (RENAME_NOREPLACE) when complete: a killed process
 * never leaves a partial snapshot under its final name, and of two builds
 * preparing the same one, the loser drops its copy.  The layer blob is
 * trusted to match its diff_id (blobs are verified by digest when stored).
 *
 * A missing parent directory in a layer tar is created 0755 root:root in
 * the snapshot, which hides the lower directory's metadata (as containerd's
 * overlay applier without parent lookup does); layers kiln writes always
 * carry their parents.
 *
 * Ownership: *lowerdirs is a vector of malloc'd paths for the caller
 * (kiln_strv_free).  A temp snapshot is freed by _commit or _abort, a
 * stream by _stream_commit or _stream_abort, whichever ends it; the dirfd
 * _begin gives stays the temp snapshot's (closed by commit/abort).  A mount
 * is the caller's until kiln_snapshot_cleanup, which frees it in every
 * case; _unmount leaves it allocated.  Descriptors, diff ids and options
 * passed in are borrowed for the call. */
#ifndef KILN_SNAPSHOT_H
#define KILN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;

/* Makes sure a snapshot exists for each of the n layers (diff_ids[i] is the
 * diff id of layers[i]; the snapshot is named after the chain id up to it)
 * and returns in *lowerdirs a NULL-terminated vector of their absolute
 * paths, TOP LAYER FIRST (overlay's lowerdir order); n == 0 gives an empty
 * vector.  Existing snapshots are not touched; missing ones are extracted
 * from their blobs (gzip and zstd undone by kiln/decompress.h) up to four at
 * a time, since each holds only its own layer.  Free with kiln_strv_free. */
int kiln_snapshot_prepare (struct kiln_store *st, const struct kiln_descriptor *layers, char *const *diff_ids, size_t n,
                           char ***lowerdirs, struct kiln_error **err);

/* Builds a missing snapshot without the blob: called with the empty temp dir
 * of the layer's snapshot; returns 1 when it filled it with exactly the
 * layer's files, 0 to let the blob be extracted instead, < 0 on error. */
typedef int (*kiln_snapshot_materialize_fn) (void *opaque, const struct kiln_descriptor *layer, int dirfd,
                                             struct kiln_error **err);
/* kiln_snapshot_prepare, trying fn first for each missing snapshot (one
 * after the other, in the calling thread). */
int kiln_snapshot_prepare_with (struct kiln_store *st, const struct kiln_descriptor *layers, char *const *diff_ids,
                                size_t n, kiln_snapshot_materialize_fn fn, void *opaque, char ***lowerdirs,
                                struct kiln_error **err);
/* A snapshot made ahead of its layer (while the layer streams, before its
 * diffID is known): fill *dirfd, then commit it under the chain id of
 * diff_ids[0..n) or abort it. */
struct kiln_snapshot_tmp;
int kiln_snapshot_begin (struct kiln_store *st, struct kiln_snapshot_tmp **out, int *dirfd, struct kiln_error **err);
int kiln_snapshot_commit (struct kiln_snapshot_tmp *t, char *const *diff_ids, size_t n, struct kiln_error **err);
void kiln_snapshot_abort (struct kiln_snapshot_tmp *t);
/* Removes snapshots/.tmp-* dirs left by killed processes (those whose flock
 * is free); returns how many were removed.  Prepare calls it before
 * creating a snapshot. */
int kiln_snapshot_gc_tmp (struct kiln_store *st, struct kiln_error **err);

/* A snapshot filled from its layer's tar while the layer downloads
 * (snapshot_stream.c): begin starts an extractor thread on an empty temp
 * dir, each write hands it the next bytes of the tar (blocking while its
 * 2 MiB ring is full; never failing: an extraction error is kept for
 * commit), commit - called only once the blob is verified - waits for the
 * extraction and renames the snapshot into place under the chain id of
 * diff_ids[0..n), abort drops it.  name (the layer digest) is for messages;
 * decompressed: the bytes written are the decompressed tar (else one
 * compression is still detected and undone, as kiln_extract_fd does).
 * begin gives *out NULL when the snapshot exists already. */
struct kiln_snapshot_stream;
int kiln_snapshot_stream_begin (struct kiln_store *st, char *const *diff_ids, size_t n, const char *name,
                                bool decompressed, struct kiln_snapshot_stream **out, struct kiln_error **err);
void kiln_snapshot_stream_write (struct kiln_snapshot_stream *s, const void *data, size_t len);
int kiln_snapshot_stream_commit (struct kiln_snapshot_stream *s, struct kiln_error **err);
void kiln_snapshot_stream_abort (struct kiln_snapshot_stream *s); /* NULL-safe */

struct kiln_mount_opts {
  bool force_copy; /* never try overlayfs (tests; hosts where it misbehaves) */
  bool userxattr;  /* mount with `userxattr` (user.overlay.* markers); set
                      * automatically when not in the initial user namespace */
};

/* A step's root filesystem.  Overlay mode: merged is an overlay mount of
 * lowers + upper.  Copy mode (overlayfs unavailable or force_copy): merged
 * is a plain directory holding a copy of the flattened lowers, upper is
 * NULL, and the diff compares merged against the lowers. */
struct kiln_mount {
  char *relpath; /* "tmp/<name>" under the store root */
  char *dir;     /* absolute ROOT/tmp/<name> */
  char *merged;  /* absolute: the step's root filesystem */
  char *upper;   /* absolute; NULL in copy mode */
  char **lowers; /* copy of the lower dirs, top first (never the empty one) */
  bool copy_mode;
  bool userxattr; /* the opaque marker the upper uses is user.overlay.opaque */
  bool mounted;   /* overlay mounted on merged (cleared by unmount) */
};

/* Creates ROOT/tmp/<unique>/{upper,work,merged} (plus an empty lower dir
 * when there are no layers) and mounts overlay on merged: fsopen + one
 * fsconfig "lowerdir+" per layer, so the number of layers is not bounded by
 * the 4 KiB option page; mount(2) with a lowerdir string on kernels without
 * "lowerdir+" (< 6.8).  redirect_dir and metacopy are forced off so every
 * change is a full copy-up the diff can read.  When overlay cannot be
 * mounted (ENODEV, EPERM, EINVAL) or opts->force_copy, falls back to copy
 * mode.  lowerdirs as from kiln_snapshot_prepare; opts may be NULL. */
int kiln_snapshot_mount (struct kiln_store *st, char *const *lowerdirs, const struct kiln_mount_opts *opts,
                         struct kiln_mount **out, struct kiln_error **err);

/* Unmounts merged (lazily when busy) and removes the work dir; the upper
 * dir stays for kiln_diff_write_layer.  No-op in copy mode or when already
 * unmounted. */
int kiln_snapshot_unmount (struct kiln_mount *m, struct kiln_error **err);

/* Makes the upper dir of m (unmounted, overlay mode) the snapshot of the
 * chain diff_ids[0..n), whose last layer kiln_diff_write_layer wrote from it
 * with keep set (which made the upper dir exactly what extracting that
 * layer gives).  A snapshot already there is kept instead; either way m
 * is still for kiln_snapshot_cleanup. */
int kiln_snapshot_keep_upper (struct kiln_store *st, const struct kiln_mount *m, char *const *diff_ids, size_t n,
                              struct kiln_error **err);

/* Unmounts if needed, removes ROOT/tmp/<name> and frees m, in every case
 * (the return value reports a failed removal).  NULL-safe. */
int kiln_snapshot_cleanup (struct kiln_store *st, struct kiln_mount *m, struct kiln_error **err);

#endif
