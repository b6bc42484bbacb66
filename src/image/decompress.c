/* decompress.c - streaming gzip (ISA-L inflate), zstd and pass-through
 * decompression for layer blobs, and a reader that decompresses a blob file
 * as its magic says. */
#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "kiln/cleanup.h"
#include "kiln/decompress.h"
#include "kiln/util.h"

#define READER_BLOCK (256 * 1024)

struct kiln_decomp {
  enum kiln_compression c;
  struct inflate_state *gz; /* ~80 KiB: on the heap */
  bool member_done;         /* gzip: the last member read to its trailer */
  ZSTD_DStream *zs;
  size_t zret; /* zstd: 0 once a frame is complete */
  bool any_input;
};

static void
gz_start_member (struct kiln_decomp *d)
{
  isal_inflate_reset (d->gz);
  d->gz->crc_flag = ISAL_GZIP; /* header parsed, CRC32 and ISIZE checked */
  d->member_done = false;
}

int
kiln_decomp_new (enum kiln_compression c, struct kiln_decomp **out, struct kiln_error **err)
{
  struct kiln_decomp *d = kiln_xcalloc (1, sizeof *d);
  d->c = c;
  d->zret = 1;
  if (c == KILN_COMP_GZIP)
    {
      /* calloc: every field ISA-L may read before it writes is defined */
      d->gz = kiln_xcalloc (1, sizeof *d->gz);
      isal_inflate_init (d->gz);
      gz_start_member (d);
    }
  else if (c == KILN_COMP_ZSTD && (d->zs = ZSTD_createDStream ()) == NULL)
    {
      free (d);
      return kiln_error_set (err, ENOMEM, KILN_E_INTERNAL, "ZSTD_createDStream");
    }
  *out = d;
  return 0;
}

void
kiln_decomp_free (struct kiln_decomp *d)
{
  if (d == NULL)
    return;
  free (d->gz);
  if (d->zs)
    ZSTD_freeDStream (d->zs);
  free (d);
}

static const char *
isal_error_name (int r)
{
  switch (r)
    {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid lookback distance";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect checksum";
    default: return "invalid data";
    }
}

/* One isal_inflate call at a time until the input is used up, out is full or
 * nothing moves; a member that ends with input left starts the next one. */
static int
gz_step (struct kiln_decomp *d, const unsigned char **in, size_t *in_len, unsigned char *out, size_t cap,
         size_t *produced, struct kiln_error **err)
{
  struct inflate_state *s = d->gz;
  for (;;)
    {
      if (d->member_done && *in_len == 0)
        return 0;
      if (d->member_done)
        gz_start_member (d);
      s->next_in = (uint8_t *) *in;
      s->avail_in = (uint32_t) (*in_len > UINT32_MAX ? UINT32_MAX : *in_len);
      s->next_out = out + *produced;
      s->avail_out = (uint32_t) (cap - *produced > UINT32_MAX ? UINT32_MAX : cap - *produced);
      uint32_t in_before = s->avail_in, out_before = s->avail_out;
      int r = isal_inflate (s);
      size_t used = in_before - s->avail_in, made = out_before - s->avail_out;
      *in += used, *in_len -= used, *produced += made;
      if (r < 0)
        return kiln_error_set (err, 0, KILN_E_PARSE, "not valid gzip: %s", isal_error_name (r));
      if (s->block_state == ISAL_BLOCK_FINISH)
        {
          d->member_done = true;
          continue;
        }
      if (*produced == cap || (used == 0 && made == 0))
        return 0;
    }
}

static int
zstd_step (struct kiln_decomp *d, const unsigned char **in, size_t *in_len, unsigned char *out, size_t cap,
           size_t *produced, struct kiln_error **err)
{
  for (;;)
    {
      ZSTD_inBuffer i = { *in, *in_len, 0 };
      ZSTD_outBuffer o = { out + *produced, cap - *produced, 0 };
      size_t zr = ZSTD_decompressStream (d->zs, &o, &i);
      if (ZSTD_isError (zr))
        return kiln_error_set (err, 0, KILN_E_PARSE, "not valid zstd: %s", ZSTD_getErrorName (zr));
      /* a call that moved nothing would start the next frame's hint */
      if (i.pos > 0 || o.pos > 0)
        d->zret = zr;
      *in += i.pos, *in_len -= i.pos, *produced += o.pos;
      if (*produced == cap || (i.pos == 0 && o.pos == 0))
        return 0;
    }
}

int
kiln_decomp_step (struct kiln_decomp *d, const unsigned char **in, size_t *in_len, unsigned char *out, size_t cap,
                  size_t *produced, struct kiln_error **err)
{
  *produced = 0;
  d->any_input = d->any_input || *in_len > 0;
  if (d->c == KILN_COMP_GZIP)
    return gz_step (d, in, in_len, out, cap, produced, err);
  if (d->c == KILN_COMP_ZSTD)
    return zstd_step (d, in, in_len, out, cap, produced, err);
  size_t n = *in_len < cap ? *in_len : cap;
  memcpy (out, *in, n);
  *in += n, *in_len -= n, *produced = n;
  return 0;
}

bool
kiln_decomp_complete (const struct kiln_decomp *d)
{
  if (d->c == KILN_COMP_GZIP)
    return d->member_done && d->any_input;
  if (d->c == KILN_COMP_ZSTD)
    return d->zret == 0 && d->any_input;
  return true;
}

enum kiln_compression
kiln_decomp_sniff (const void *head, size_t n)
{
  const unsigned char *h = head;
  if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
    return KILN_COMP_GZIP;
  if (n >= 4 && memcmp (h, "\x28\xb5\x2f\xfd", 4) == 0)
    return KILN_COMP_ZSTD;
  return KILN_COMP_NONE;
}

/* ---- a blob file, decompressed as it is read ---- */

struct kiln_decomp_reader {
  int fd;
  bool eof;
  struct kiln_decomp *d;   /* NULL: passed through */
  const unsigned char *in; /* unread input in ibuf */
  size_t in_len;
  unsigned char ibuf[READER_BLOCK];
  unsigned char obuf[READER_BLOCK];
};

static int reader_fill (struct kiln_decomp_reader *r, struct kiln_error **err);

int
kiln_decomp_reader_open (int fd, struct kiln_decomp_reader **out, struct kiln_error **err)
{
  struct kiln_decomp_reader *r = kiln_xmalloc (sizeof *r);
  r->fd = fd;
  r->eof = false;
  r->d = NULL;
  r->in = r->ibuf;
  r->in_len = 0;
  enum kiln_compression c = KILN_COMP_NONE;
  int ret = reader_fill (r, err);
  if (ret == 0)
    c = kiln_decomp_sniff (r->in, r->in_len);
  if (ret == 0 && c != KILN_COMP_NONE)
    ret = kiln_decomp_new (c, &r->d, err);
  if (ret < 0)
    {
      kiln_decomp_reader_free (r);
      return -1;
    }
  *out = r;
  return 0;
}

void
kiln_decomp_reader_free (struct kiln_decomp_reader *r)
{
  if (r == NULL)
    return;
  kiln_decomp_free (r->d);
  free (r);
}

bool
kiln_decomp_reader_decompressed (const struct kiln_decomp_reader *r)
{
  return r->d != NULL;
}

/* Refills ibuf when it is empty; sets eof at the end of the file. */
static int
reader_fill (struct kiln_decomp_reader *r, struct kiln_error **err)
{
  ssize_t n;
  if (r->in_len > 0 || r->eof)
    return 0;
  do
    n = read (r->fd, r->ibuf, sizeof r->ibuf);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "read");
  r->in = r->ibuf;
  r->in_len = (size_t) n;
  r->eof = n == 0;
  return 0;
}

ssize_t
kiln_decomp_reader_read (struct kiln_decomp_reader *r, const void **out, struct kiln_error **err)
{
  for (;;)
    {
      if (reader_fill (r, err) < 0)
        return -1;
      if (r->d == NULL)
        {
          /* passed through: the input block itself */
          size_t n = r->in_len;
          *out = r->in;
          r->in_len = 0;
          return (ssize_t) n;
        }
      size_t made = 0, before = r->in_len;
      if (kiln_decomp_step (r->d, &r->in, &r->in_len, r->obuf, sizeof r->obuf, &made, err) < 0)
        return -1;
      if (made > 0)
        {
          *out = r->obuf;
          return (ssize_t) made;
        }
      if (r->in_len > 0 && r->in_len == before)
        return kiln_error_set (err, 0, KILN_E_PARSE, "compressed stream does not decode");
      if (r->eof)
        {
          if (!kiln_decomp_complete (r->d))
            return kiln_error_set (err, 0, KILN_E_PARSE, "compressed stream is truncated");
          return 0;
        }
    }
}
