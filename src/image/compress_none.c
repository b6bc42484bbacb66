/* compress_none.c - the pass-through backend (uncompressed layers). */
#include <stdlib.h>
#include "compress-internal.h"
#include "kiln/compress.h"
#include "kiln/util.h"

static int
none_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err)
{
  return kiln_compress_emit (c, data, len, err);
}

static int
none_finish (struct kiln_compressor *c, struct kiln_error **err)
{
  (void) c;
  (void) err;
  return 0;
}

static void
none_free (struct kiln_compressor *c)
{
  free (c);
}

static const struct kiln_compressor_ops none_ops = { none_write, none_finish, none_free, NULL };

struct kiln_compressor *
kiln_compress_none_new (void)
{
  struct kiln_compressor *k = kiln_xcalloc (1, sizeof *k);
  k->ops = &none_ops;
  return k;
}
