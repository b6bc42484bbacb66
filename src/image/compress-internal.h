/* compress-internal.h - what a compression backend implements (its ops
 * table, with the base struct as its first member) and what the front
 * gives it.  Only src/compress*.c include this. */
#ifndef KILN_COMPRESS_INTERNAL_H
#define KILN_COMPRESS_INTERNAL_H

#include <stddef.h>
#include "kiln/compress.h"
#include "kiln/error.h"

struct kiln_compressor_ops {
  int (*write) (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err);
  int (*finish) (struct kiln_compressor *c, struct kiln_error **err);
  void (*free) (struct kiln_compressor *c);
  int (*cut) (struct kiln_compressor *c, struct kiln_error **err); /* NULL: blocks are not cut */
};

/* Backends embed this as their first member. */
struct kiln_compressor {
  const struct kiln_compressor_ops *ops;
  kiln_compress_sink sink;
  void *opaque;
  kiln_compress_block_fn on_block;
  void *block_opaque;
};

/* Hands output to the compressor's sink (nothing for len 0). */
int kiln_compress_emit (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err);

/* The backends' constructors; the front sets sink and opaque. */
struct kiln_compressor *kiln_compress_none_new (void);
int kiln_compress_gzip_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err);
int kiln_compress_zstd_new (int level, int threads, struct kiln_compressor **out, struct kiln_error **err);

#endif
