/* kiln/decompress.h - streaming decompression of layer blobs.
 *
 * gzip with ISA-L's inflate (three to five times zlib's speed on layer
 * data), several members in a row read as one stream (RFC 1952; pigz and
 * some registries write them), every member's CRC and size checked; zstd
 * with libzstd; KILN_COMP_NONE copies.  The pull verifies a layer's diffID on
 * this output and snapshots extract from it, so a layer is inflated once on
 * its way into the store and once, fast, when a snapshot is made from a blob.
 *
 * Ownership: a decompressor or reader is the caller's until its _free; a
 * reader's fd stays the caller's; the bytes _read points to are the
 * reader's, valid until the next call. */
#ifndef KILN_DECOMPRESS_H
#define KILN_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kiln/error.h"
#include "kiln/layer.h"

struct kiln_decomp;

/* A decompressor for c (never fails but for zstd's allocation). */
int kiln_decomp_new (enum kiln_compression c, struct kiln_decomp **out, struct kiln_error **err);
void kiln_decomp_free (struct kiln_decomp *d);

/* Decompresses from *in (*in_len bytes; both advanced past what was used)
 * into out (cap bytes); *produced receives the bytes written.  Returns when
 * the input is used up or out is full.  Invalid data: KILN_E_PARSE. */
int kiln_decomp_step (struct kiln_decomp *d, const unsigned char **in, size_t *in_len, unsigned char *out, size_t cap,
                      size_t *produced, struct kiln_error **err);

/* Whether the input so far ends exactly at the end of a gzip member or zstd
 * frame (always true for none); false for an empty gzip or zstd stream. */
bool kiln_decomp_complete (const struct kiln_decomp *d);

/* The compression the first bytes of a blob show (gzip or zstd magic);
 * KILN_COMP_NONE for anything else, as Docker's DecompressStream decides. */
enum kiln_compression kiln_decomp_sniff (const void *head, size_t n);

/* Reads a blob from fd (from its current offset), decompressed as its first
 * bytes say: gzip and zstd here, anything else passed through as it is. */
struct kiln_decomp_reader;
/* Reads the first block to see the magic. */
int kiln_decomp_reader_open (int fd, struct kiln_decomp_reader **out, struct kiln_error **err);
/* The next piece of output: *out points at the returned number of bytes,
 * valid until the next call; 0 at the end of a complete stream; < 0 on a read
 * error or invalid or truncated data (*err set). */
ssize_t kiln_decomp_reader_read (struct kiln_decomp_reader *r, const void **out, struct kiln_error **err);
/* Whether the reader undid a compression (gzip or zstd magic). */
bool kiln_decomp_reader_decompressed (const struct kiln_decomp_reader *r);
void kiln_decomp_reader_free (struct kiln_decomp_reader *r); /* NULL-safe; fd stays open */

#endif
