/* tool_compress.c - run one of kiln's compressors over stdin (tests only).
 *
 *   compress_tool gzip|zstd|none THREADS < IN > OUT
 *
 * t_memcheck runs it under valgrind: a field a compression library reads
 * without our setting it makes the layer bytes depend on stack or heap
 * garbage (ISA-L's hist_bits did), which digests alone catch only by luck. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/compress.h"
#include "kiln/error.h"
#include "kiln/fs.h"

static int
to_stdout (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  (void) opaque;
  return kiln_fs_write_all (STDOUT_FILENO, data, len, err);
}

int
main (int argc, char **argv)
{
  enum kiln_compression c;
  struct kiln_error *err = NULL;
  if (argc != 3 || kiln_compression_parse (argv[1], &c, &err) < 0)
    {
      fprintf (stderr, "usage: compress_tool gzip|zstd|none THREADS < IN > OUT\n");
      return 2;
    }
  struct kiln_compressor *k = NULL;
  int r = kiln_compressor_new_mt (c, -1, (int) strtol (argv[2], NULL, 10), to_stdout, NULL, &k, &err);
  /* odd read sizes, so block boundaries never line up with the writes */
  static unsigned char buf[300007];
  ssize_t n;
  while (r == 0 && (n = read (STDIN_FILENO, buf, sizeof buf)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          perror ("compress_tool: read");
          return 1;
        }
      r = kiln_compressor_write (k, buf, (size_t) n, &err);
    }
  if (r == 0)
    r = kiln_compressor_finish (k, &err);
  kiln_compressor_free (k);
  if (r < 0)
    {
      fprintf (stderr, "compress_tool: %s\n", err ? err->msg : "failed");
      return 1;
    }
  return 0;
}
