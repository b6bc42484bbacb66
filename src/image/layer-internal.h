/* layer-internal.h - what layer.c, layer_pipe.c, layer_map.c and layer_patch.c share.
 *
 * A gzip layer is a row of independent deflate blocks.  Where the writer
 * cuts them depends only on the entries (their names and sizes), never on
 * what came long before, so a changed file changes the one or two blocks
 * that hold it and every other block stays byte for byte the same.  Each
 * block gets a recipe: the sha256 of what it is made of (the tar header and
 * padding bytes as they are, and for file data the file's content digest
 * and the range taken), which a later build can compute without reading a
 * file.  The layer map (cache/lmap/<blob hex>) keeps per block its input
 * and output lengths, CRC-32 and recipe; a rebuild of the same COPY copies
 * the compressed bytes of every block whose recipe it finds there and makes
 * only the others (layer_patch.c).
 *
 * Cut rule (bump LMAP_VERSION when it changes): before an entry, when the
 * open block holds something, the writer cuts if the entry's data is at
 * least LMAP_CUT_BIG (its blocks then start at its header, so its data cuts
 * fall at the same offsets whatever precedes it), if the entry would not fit
 * in the block, or if the block holds at least LMAP_CUT_MIN and a hash of
 * the entry's name picks it, with odds that grow with the entry's size (one
 * in 2^LMAP_CUT_AVG_BITS per tar byte).  Since the minimum is small against
 * the average, two versions of a tree that differ in one file cut at the
 * same entries again from the first picked name after it.  A block also ends when it reaches
 * KILN_GZIP_BLOCK_MAX bytes, inside a big file's data. */
#ifndef KILN_LAYER_INTERNAL_H
#define KILN_LAYER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/buf.h"
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/layer.h"

struct kiln_store;
struct kiln_compressor;

#define LMAP_VERSION 4
#define LMAP_CUT_MIN (64 * 1024)
#define LMAP_CUT_AVG_BITS 18 /* 256 KiB */
#define LMAP_CUT_BIG (512 * 1024)
#define LMAP_HEADER_ROOM 1536 /* what a header and its padding may take, for the fit test */

/* How to make a block again (patch mode): raw bytes from the block's buffer
 * or a range of a file. */
struct lmap_piece {
  bool data;
  bool kept;         /* data kept in the raw buffer (in-memory content) */
  size_t raw_off;    /* raw, kept: offset in the block's raw buffer */
  uint64_t off, len; /* data: range of the file; raw: len only */
  char *path;        /* data: the entry, for errors and reopening */
  void *opaque;
  uint64_t size;
  struct kiln_digest digest;
};

struct lmap_block {
  uint64_t u_len;
  unsigned char recipe[32];
  struct kiln_sha256_mid mid; /* the diffID's state where the block starts */
  bool has_mid;
  bool closed, resolved;
  struct kiln_sha256 *ctx; /* the recipe being hashed; NULL until something goes in */
  uint64_t raw_run;        /* raw bytes hashed since the last record */
  bool pending;            /* holds data of the current entry, digest not known yet */
  uint64_t pend_off, pend_len;
  /* capture (patch mode) */
  struct kiln_buf raw;
  struct lmap_piece *pieces;
  size_t npieces;
};

struct lmap_builder {
  bool capture;         /* keep each block's pieces (patch mode) */
  bool broken;          /* an entry had no digest: no recipes, no map */
  bool keep_data;       /* capture the data bytes themselves (in-memory content) */
  struct lmap_block *q; /* blocks not taken yet; the last one is open */
  size_t head, n, cap;
  /* the entry being written */
  char *path;
  void *opaque;
  uint64_t size, data_off;
  bool known;
  struct kiln_digest digest;
};

void kiln_layer_map_builder_init (struct lmap_builder *b, bool capture);
void kiln_layer_map_builder_clear (struct lmap_builder *b);
/* Before an entry's header (after the previous entry's padding): true when
 * the open block was cut here. */
bool kiln_layer_map_cut_before (struct lmap_builder *b, const char *path, uint64_t size);
/* The entry whose header comes next; digest when already known. */
void kiln_layer_map_begin_entry (struct lmap_builder *b, const char *path, uint64_t size, void *opaque,
                                 const struct kiln_digest *digest);
/* Tar bytes in stream order: the current entry's content (data) or anything
 * else (headers, padding, the end of the archive). */
void kiln_layer_map_bytes (struct lmap_builder *b, bool data, const void *p, size_t len);
/* Where the next tar byte goes: true when it starts a block; *room is what
 * the open block takes before it closes on its own. */
bool kiln_layer_map_at_start (const struct lmap_builder *b, size_t *room);
/* The diffID's state at the start of the block the next byte opens. */
void kiln_layer_map_note_mid (struct lmap_builder *b, const struct kiln_sha256_mid *m);
/* The current entry is written; digest of its content (NULL: unknown). */
void kiln_layer_map_end_entry (struct lmap_builder *b, const struct kiln_digest *digest);
/* Closes the last block at the end of the stream. */
void kiln_layer_map_finish (struct lmap_builder *b);
/* The oldest block when it is closed and its recipe known (caller frees it
 * with lmap_block_clear). */
bool kiln_layer_map_take (struct lmap_builder *b, struct lmap_block *out);
void kiln_layer_map_block_clear (struct lmap_block *blk);

/* ---- the stored map ---- */

struct lmap_entry {
  uint64_t u_len, c_len, c_off; /* c_off: in the blob, after the gzip header */
  uint32_t crc;                 /* of the tar bytes */
  uint32_t ccrc;                /* of the compressed bytes: checks a block copied unread */
  unsigned char recipe[32];
  struct kiln_sha256_mid mid; /* mid.len is the block's offset in the tar */
};

struct lmap {
  int level;
  struct lmap_entry *v;
  size_t n, cap;
  size_t *slots; /* hash of recipes -> index + 1 (loaded maps) */
  size_t nslots;
};

void kiln_layer_map_add (struct lmap *m, uint64_t u_len, uint64_t c_len, uint32_t crc, uint32_t ccrc,
                         const unsigned char recipe[32], const struct kiln_sha256_mid *mid);
/* Whether every block of m has the diffID state at its start. */
bool kiln_layer_map_has_mids (const struct lmap *m);
void kiln_layer_map_clear (struct lmap *m);
int kiln_layer_map_save (struct kiln_store *st, const struct kiln_digest *blob, const struct lmap *m,
                         struct kiln_error **err);
/* 1 and *m when blob has a sound map written at level, 0 when not. */
int kiln_layer_map_load (struct kiln_store *st, const struct kiln_digest *blob, int level, struct lmap *m);
/* The block of m with this recipe and length, or NULL. */
const struct lmap_entry *kiln_layer_map_find (const struct lmap *m, const unsigned char recipe[32], uint64_t u_len);

/* ---- patch mode (layer_patch.c) ---- */

struct layer_patch;
struct kiln_blob_writer;
int kiln_layer_patch_new (struct kiln_store *st, const struct kiln_digest *base, int level, kiln_layer_open_fn open,
                          void *ud, struct layer_patch **out);
/* Emits one block: the old compressed bytes when its recipe is known, else
 * made again from its pieces; hashes its tar bytes into tar_hash. */
int kiln_layer_patch_block (struct layer_patch *p, struct lmap_block *blk, struct kiln_blob_writer *blob,
                            struct kiln_sha256 *tar_hash, struct kiln_error **err);
/* Writes the gzip end; *map is the new layer's map. */
int kiln_layer_patch_end (struct layer_patch *p, struct kiln_blob_writer *blob, struct kiln_sha256 *tar_hash,
                          struct lmap **map, struct kiln_error **err);
void kiln_layer_patch_counts (const struct layer_patch *p, uint64_t *made, uint64_t *reused);
void kiln_layer_patch_free (struct layer_patch *p);

/* ---- the pipe between the tar thread and the compressor thread (layer_pipe.c) ---- */

/* Between the tar thread and the compressor: 4 MiB, enough to ride out a
 * slow block on either side.  File data is read straight into the pipe, up
 * to one chunk per read(). */
#define PIPE_CHUNK (1024 * 1024)
#define PIPE_SLOTS 4

/* A single-producer single-consumer ring of chunks; slot = seq % PIPE_SLOTS.
 * The producer owns slots[pushed % PIPE_SLOTS] while pushed - popped <
 * PIPE_SLOTS; the consumer owns slots popped .. pushed - 1. */
struct layer_pipe {
  unsigned char *data[PIPE_SLOTS];
  size_t len[PIPE_SLOTS];
  bool cut[PIPE_SLOTS]; /* end the gzip block after this chunk */
  uint64_t pushed, popped;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started;
  bool eof;    /* no more pushes: drain and stop */
  bool abort;  /* stop now */
  bool failed; /* the consumer stopped on err */
  struct kiln_error *err;
  struct kiln_compressor *comp; /* what the chunks go to, set once it exists */
};

void kiln_layer_pipe_init (struct layer_pipe *p);
/* Stops the thread (after draining, unless abort); the pipe stays allocated. */
void kiln_layer_pipe_stop (struct layer_pipe *p, bool abort);
/* Stops the thread and frees the pipe's chunks and error. */
void kiln_layer_pipe_clear (struct layer_pipe *p);
/* The free tail of the chunk being filled (never empty: a full chunk is
 * pushed at once), where file data can be read in place. */
unsigned char *kiln_layer_pipe_tail (struct layer_pipe *p, size_t *room);
/* Appends len bytes (data may be the tail itself); a full chunk goes to the
 * compressor thread, started on the first one, waiting while the pipe is full. */
int kiln_layer_pipe_write (struct layer_pipe *p, const unsigned char *data, size_t len, struct kiln_error **err);
/* Ends the gzip block after what was written so far: the chunk being filled
 * goes to the compressor with the cut, in stream order. */
int kiln_layer_pipe_cut (struct layer_pipe *p, struct kiln_error **err);
/* Drains the pipe: after this the compressor belongs to the caller again. */
int kiln_layer_pipe_finish (struct layer_pipe *p, struct kiln_error **err);

#endif
