/* kiln/cache.h - the layer cache: step keys, step records, and the context
 * checksum cache.
 *
 * A step's key is a sha256 over its parent's key and exactly the inputs the
 * step depends on (the expanded instruction and flags, the ARG/ENV values it
 * sees, the content digests, modes and owners of COPY sources; never secrets
 * or cache mounts).  Fields are length-prefixed so two different input lists
 * never hash alike.  Records live in ROOT/cache/records/<key>.json, listed per
 * parent under ROOT/cache/children/<parent>/, so a miss can be explained by
 * the record of the same instruction with the same parent.
 *
 * The context checksum cache maps a context file's (dev, inode, size,
 * mtime_ns, ctime_ns) to its sha256, so a rebuild with no change reads no
 * file content.
 *
 * Ownership: a key's hash state is freed by _final or _clear (either may
 * end it).  Records, URL records and descriptors are values: a _get or
 * _find fills an empty one, which the caller clears with its _clear (also
 * when the call returned 1, "none", where it stays empty); _put reads its
 * argument and keeps nothing.  Input arrays given to _explain and
 * _changed_input are borrowed; *was points into old_inputs. */
#ifndef KILN_CACHE_H
#define KILN_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"

struct kiln_layer_opts;

struct kiln_store;

struct kiln_cache_key {
  struct kiln_sha256 *h;
};

/* parent NULL for a chain start (then add the base's identity). */
void kiln_cache_key_init (struct kiln_cache_key *k, const struct kiln_digest *parent);
void kiln_cache_key_add (struct kiln_cache_key *k, const char *field, const char *value);
void kiln_cache_key_addf (struct kiln_cache_key *k, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* Writes the key and frees the hash state. */
void kiln_cache_key_final (struct kiln_cache_key *k, struct kiln_digest *out);
void kiln_cache_key_clear (struct kiln_cache_key *k);

/* What a cached step produced, and what it was made from (for explanations). */
struct kiln_cache_record {
  struct kiln_digest key, parent;
  char *instruction; /* the instruction as written ("COPY weights/ /models/") */
  bool has_layer;
  struct kiln_descriptor layer; /* the layer blob */
  struct kiln_digest diff_id;
  char *created; /* history time of the step when it was built */
  char **inputs; /* "NAME\tVALUE" lines: what went into the key */
};
void kiln_cache_record_clear (struct kiln_cache_record *r);

/* 0 and *r filled when found; 1 when there is no record (not an error). */
int kiln_cache_get (struct kiln_store *st, const struct kiln_digest *key, struct kiln_cache_record *r,
                    struct kiln_error **err);
int kiln_cache_put (struct kiln_store *st, const struct kiln_cache_record *r, struct kiln_error **err);
/* Marks the record used now (prune drops the least recently used first). */
void kiln_cache_touch (struct kiln_store *st, const struct kiln_digest *key);
/* The most recent record with this parent and instruction, for explaining a
 * miss; 1 when none. */
int kiln_cache_find_sibling (struct kiln_store *st, const struct kiln_digest *parent, const char *instruction,
                             struct kiln_cache_record *r, struct kiln_error **err);
/* Human text for why `now` misses where `old` was built: the first input
 * that changed, appeared or went away, e.g. "weights/model.bin content
 * changed"; "parent changed" when the inputs are equal. Caller frees. */
char *kiln_cache_explain (char *const *old_inputs, char *const *now_inputs);
/* Whether the first input of now that old also has (by name) has another
 * value there, before any input that old lacks: its index in now and old's
 * value (for an explanation more precise than "NAME changed"). */
bool kiln_cache_changed_input (char *const *old_inputs, char *const *now_inputs, size_t *idx, const char **was);

/* What an ADD <url> download's ETag stood for, kept per URL (under
 * cache/urls/, named by the URL's sha256, so no URL text or password is
 * stored): a rebuild asks the server with If-None-Match and, on 304, knows
 * the content without downloading it. */
struct kiln_url_record {
  char *etag;
  struct kiln_digest digest;
  uint64_t size;
  int64_t mtime;
};
/* True and *out filled when a valid record exists; any damage reads as none. */
bool kiln_url_record_get (struct kiln_store *st, const char *url, struct kiln_url_record *out);
int kiln_url_record_put (struct kiln_store *st, const char *url, const struct kiln_url_record *r,
                         struct kiln_error **err);
void kiln_url_record_clear (struct kiln_url_record *r);

/* build --force-compression: which blob a layer blob became in another
 * media type and level.  get is true only while that blob is in the store. */
bool kiln_recompressed_get (struct kiln_store *st, const struct kiln_digest *from, const char *media_type, int level,
                            struct kiln_descriptor *out);
int kiln_recompressed_put (struct kiln_store *st, const struct kiln_digest *from, int level,
                           const struct kiln_descriptor *to, struct kiln_error **err);

/* The layer blob `in` (its tar's digest: diff_id) in opts' compression,
 * stored; *out describes the new blob.  The decompressed bytes must match
 * diff_id.  Remembered per (blob, media type, level), so asking again is
 * free while the new blob stays in the store: then it returns 1, not 0. */
int kiln_cache_recompress (struct kiln_store *st, const struct kiln_descriptor *in, const char *diff_id,
                           const struct kiln_layer_opts *opts, struct kiln_descriptor *out, struct kiln_error **err);

#endif
