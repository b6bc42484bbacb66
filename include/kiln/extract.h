/* kiln/extract.h - the hardened tar extractor, and flattened root filesystems.
 *
 * Every path is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
 * under rootfd; hardlink targets and symlinks stay inside the root; entries
 * with ".." that would leave the root, absolute names, and ".wh..*" escapes
 * are rejected or confined (path traversal and link escapes).  Whiteouts
 * ".wh.NAME" and ".wh..wh..opq" are applied when asked.  Device nodes that
 * cannot be created are skipped with a warning.
 *
 * Ownership: fd and rootfd stay the caller's (never closed); options,
 * including the toc recorder, are borrowed for the call. */
#ifndef KILN_EXTRACT_H
#define KILN_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_store;
struct kiln_toc_rec;

/* Limits on what one tar entry names (a layer or an ADD archive is
 * third-party input): KILN_EXTRACT_MAX_PATH bytes for its name, a symlink's
 * target and a hardlink's target (Linux's PATH_MAX; a longer name could not
 * be opened by path inside a container anyway), and KILN_EXTRACT_MAX_DEPTH
 * components for its name and a hardlink's target once cleaned (the
 * deepest real trees, nested node_modules, stay below 100).  Past either,
 * extraction fails with KILN_E_PARSE naming the entry, the limit and its
 * value. */
#define KILN_EXTRACT_MAX_PATH 4096
#define KILN_EXTRACT_MAX_DEPTH 512

struct kiln_extract_opts {
  bool whiteouts; /* apply .wh. entries (image layers); false for ADD archives */
  /* Snapshots (kiln/snapshot.h): each layer goes into its own empty dir, so
   * whiteouts are not applied but become overlayfs markers (implies
   * whiteouts): ".wh.NAME" -> a 0:0 character device NAME, ".wh..wh..opq"
   * -> xattr user.overlay.opaque=y on the directory, plus
   * trusted.overlay.opaque=y when the process may set trusted.* xattrs
   * (real root), so one snapshot serves overlay mounts with and without
   * `userxattr`.  Fails when neither xattr can be set or mknod of the 0:0
   * device is refused (in a user namespace, Linux >= 5.8 allows it). */
  bool overlay_whiteouts;
  bool keep_owner;          /* chown to the entry's uid/gid (when permitted) */
  struct kiln_toc_rec *toc; /* optional: records every header read (kiln/toc.h) */
  bool has_chown;           /* ADD --chown: every entry gets uid/gid below */
  unsigned int uid, gid;
};

/* Extracts the tar (optionally gzip/bzip2/xz/zstd compressed, detected from
 * content) readable from fd into rootfd.  name is used in errors. */
int kiln_extract_fd (int fd, const char *name, int rootfd, const struct kiln_extract_opts *opts,
                     struct kiln_error **err);

/* The next piece of a stream: *out points at the returned number of bytes,
 * valid until the next call; 0 at its end; < 0 on failure with *err set. */
typedef ssize_t (*kiln_extract_read_fn) (void *opaque, const void **out, struct kiln_error **err);

/* kiln_extract_fd for a tar read from a stream (a layer as it downloads, a
 * blob decompressed by kiln/decompress.h).  decompressed: a compression was
 * undone already, so the stream must be a plain tar (a tar is decompressed
 * once); otherwise one compression is detected and undone as for a file.
 * The end-of-archive check reads on after the archive's end when the end
 * marker is a single zero block.  A failure of read is the error returned. */
int kiln_extract_stream (kiln_extract_read_fn read, void *opaque, bool decompressed, const char *name, int rootfd,
                         const struct kiln_extract_opts *opts, struct kiln_error **err);

/* True when the first bytes of fd look like a (compressed) tar archive; fd's
 * offset is restored.  ADD uses this to decide whether to extract. */
bool kiln_extract_is_archive (int fd);

/* Extracts the layers in order, whiteouts applied, into the directory
 * rootfd (normally empty): the image's flattened filesystem. */
int kiln_extract_layers (struct kiln_store *st, const struct kiln_descriptor *layers, size_t n, int rootfd,
                         struct kiln_error **err);

/* Marks the open directory dfd opaque for overlayfs, as a snapshot carries
 * it: user.overlay.opaque=y (what overlayfs reads with `userxattr`, i.e. in
 * a user namespace) and trusted.overlay.opaque=y when this process may set
 * trusted.* (real root); fails only when neither can be set.  Shared by
 * extraction (".wh..wh..opq") and a RUN's upper dir kept as its snapshot. */
int kiln_extract_set_opaque (int dfd, struct kiln_error **err);

#endif
