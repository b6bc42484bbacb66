/* kiln/compress.h - streaming compressors, one backend each behind a private
 * ops table (src/compress-internal.h).
 *
 * A compressor takes bytes with kiln_compressor_write and hands its output to
 * a sink callback as it is produced; kiln_compressor_finish flushes the end of
 * the stream (gzip trailer, zstd epilogue).  Output depends only on the input
 * bytes, the algorithm and the level, never on chunking, time or host, so
 * equal layers give equal blobs.  A backend (ISA-L igzip,
 * multithreaded zstd) is swapped in without touching the layer writer.
 *
 * Ownership: the compressor is the caller's until kiln_compressor_free
 * (also after _finish).  Bytes passed to _write are copied or consumed
 * before it returns; the bytes a sink or block callback receives are the
 * compressor's and valid only during that call. */
#ifndef KILN_COMPRESS_H
#define KILN_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include "kiln/error.h"
#include "kiln/layer.h"

/* Receives compressed output; returns < 0 (with *err set) to stop the stream. */
typedef int (*kiln_compress_sink) (void *opaque, const void *data, size_t len, struct kiln_error **err);
/* Told of each gzip block as it is emitted, in stream order: its input and
 * output lengths and the CRC-32s of its input and of its output. */
typedef void (*kiln_compress_block_fn) (void *opaque, size_t in_len, size_t out_len, uint32_t crc, uint32_t out_crc);

struct kiln_compressor;

/* Creates a compressor for c at level (-1 = the default; ignored for
 * KILN_COMP_NONE).  Out-of-range levels fail with KILN_E_USAGE.  Same as
 * kiln_compressor_new_mt with threads 0.
 *
 * gzip: ISA-L deflate in independent 1 MiB input blocks (each ends byte
 * aligned, so the blocks concatenate into one gzip member, as pigz -i does);
 * a block that does not compress is stored as is.  Levels 0-9 map onto
 * ISA-L's 0-3: 0 = stored blocks only (as gzip -0), 1 = ISA-L 0,
 * 2-5 = ISA-L 1, 6-7 = ISA-L 2, 8-9 = ISA-L 3; the default is ISA-L 1.
 * zstd: levels 1-max, default 1 (faster than 3 and, on text, no larger),
 * always libzstd's multithreaded mode (at least one worker) with a fixed
 * 1 MiB job size and overlap and no checksum. */
int kiln_compressor_new (enum kiln_compression c, int level, kiln_compress_sink sink, void *opaque,
                         struct kiln_compressor **out, struct kiln_error **err);
/* threads: compression workers, 0 = the number of online CPUs (capped at
 * KILN_COMPRESS_MAX_THREADS).  The output bytes never depend on it.  gzip
 * with one thread compresses in the caller; otherwise workers are started
 * once the first full block is written.  The sink is always called from the
 * thread calling write/finish, in stream order. */
int kiln_compressor_new_mt (enum kiln_compression c, int level, int threads, kiln_compress_sink sink, void *opaque,
                            struct kiln_compressor **out, struct kiln_error **err);
#define KILN_COMPRESS_MAX_THREADS 64
/* The thread count kiln_compressor_new_mt uses for threads (0 -> online CPUs). */
int kiln_compress_threads (int threads);
int kiln_compressor_write (struct kiln_compressor *c, const void *data, size_t len, struct kiln_error **err);
/* Ends the current gzip block here (when it holds anything), so the next
 * block starts at this point of the input; other compressions ignore it.
 * The output then depends on where the caller cuts, which must itself
 * depend only on the input (the layer writer cuts before entries chosen by
 * their names and sizes). */
int kiln_compressor_cut (struct kiln_compressor *c, struct kiln_error **err);
/* fn is called for every gzip block (in the thread that emits it). */
void kiln_compressor_on_block (struct kiln_compressor *c, kiln_compress_block_fn fn, void *opaque);
/* Ends the stream; no write may follow. */
int kiln_compressor_finish (struct kiln_compressor *c, struct kiln_error **err);
/* NULL-safe; an unfinished stream is simply dropped. */
void kiln_compressor_free (struct kiln_compressor *c);

/* ---- gzip pieces, for a layer rebuilt from an earlier one's blocks ---- */

/* Input blocks are at most this long; a block's output fits in
 * KILN_GZIP_BLOCK_OUT_CAP bytes. */
#define KILN_GZIP_BLOCK_MAX (1024 * 1024)
#define KILN_GZIP_BLOCK_OUT_CAP (KILN_GZIP_BLOCK_MAX + 5 * 17 + 1024)
#define KILN_GZIP_HEADER_LEN 10
#define KILN_GZIP_END_LEN 13
extern const unsigned char kiln_gzip_header[KILN_GZIP_HEADER_LEN];
/* One block exactly as the gzip compressor at level makes it (len <=
 * KILN_GZIP_BLOCK_MAX); returns the output length, *crc the input's CRC-32. */
size_t kiln_gzip_block (int level, const void *in, size_t len, unsigned char *out, uint32_t *crc);
/* The closing empty block and the trailer (CRC-32 and length of the input). */
void kiln_gzip_end (uint32_t crc, uint64_t isize, unsigned char out[KILN_GZIP_END_LEN]);

#endif
