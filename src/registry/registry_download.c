/* registry_download.c - one blob downloaded into the store: streamed with
 * its digest (and, for a layer, its diffID) checked while it arrives,
 * resumed with Range after a cut connection (at most MAX_RESUMES times),
 * and fetched once more from the start when the bytes do not match their
 * digest before that is an error naming both digests and the registry.  A
 * layer sink (a build's snapshots) gets the layer's tar on the way:
 * receiving + storing + digest, inflating + diffID, and the sink run on
 * three threads. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/decompress.h"
#include "kiln/log.h"
#include "kiln/ring.h"
#include "kiln/util.h"
#include "registry-internal.h"

#define MAX_RESUMES 64
#define STAGE (1u << 20)   /* blob bytes handed on at once */
#define RING (2u << 20)    /* staged bytes in flight to the inflate thread */
#define OBUF (256u * 1024) /* inflated bytes handed on at once */

struct dl {
  struct kiln_store *st;
  struct kiln_registry_client *c;
  const struct kiln_descriptor *d;
  const char *diff_id;
  enum kiln_compression comp;
  struct kiln_blob_writer *w;
  struct kiln_sha256 *dh; /* over the uncompressed stream */
  struct kiln_decomp *dc;
  int64_t got, attempt_start;
  struct kiln_registry_resp *resp;
  bool checked, restart;
  /* libcurl hands over 16 KiB at a time: staged into 1 MiB pieces, a blob
   * is written, hashed and inflated in few large calls */
  unsigned char *stage, *obuf;
  size_t staged;
  /* The staged bytes go through a ring to a thread of their own that
   * inflates and hashes them and feeds the sink, so receiving and storing
   * the blob, inflating it, and extracting it are three threads per layer. */
  struct kiln_ring *ring;
  pthread_t vth;
  bool vrunning;
  int vresult;
  struct kiln_error *verr;
  /* The tar stream failed (does not decode, truncated): the rest of the
   * body is still received and hashed, because only the blob's digest tells
   * bytes damaged on the way (retried) from a broken image (final). */
  struct kiln_error *bad;
  bool mismatch; /* the last attempt's bytes did not match the digest */
  int round;     /* 0, or 1 when downloading again after a mismatch */
  /* where the uncompressed tar also goes (a snapshot), or NULL */
  const struct kiln_registry_layer_sink *sink;
  void *stream;
};

static int
media_comp (const char *mt, enum kiln_compression *c)
{
  if (strstr (mt, "gzip"))
    *c = KILN_COMP_GZIP;
  else if (strstr (mt, "zstd"))
    *c = KILN_COMP_ZSTD;
  else if (kiln_str_has_suffix (mt, ".tar") || kiln_str_has_suffix (mt, "diff.tar"))
    *c = KILN_COMP_NONE;
  else
    return -1;
  return 0;
}

static void
tar_out (struct dl *x, const void *data, size_t len)
{
  kiln_sha256_update (x->dh, data, len);
  if (x->stream)
    x->sink->write (x->stream, data, len);
}

/* The decompressed bytes go to the diffID hash and the sink. */
static int
decomp_feed (struct dl *x, const void *data, size_t len, struct kiln_error **err)
{
  const unsigned char *in = data;
  for (;;)
    {
      size_t made = 0, before = len;
      if (kiln_decomp_step (x->dc, &in, &len, x->obuf, OBUF, &made, err) < 0)
        {
          (*err)->kind = KILN_E_DIGEST; /* a corrupt blob, as a wrong digest is */
          return kiln_error_wrap (err, "layer");
        }
      tar_out (x, x->obuf, made);
      if (len == 0 && made < OBUF)
        return 0;
      if (made == 0 && len == before)
        return kiln_error_set (err, 0, KILN_E_DIGEST, "layer: compressed stream does not decode");
    }
}

/* Blob bytes to the diffID hash and the sink, inflated first if need be. */
static int
tar_feed (struct dl *x, const void *data, size_t len, struct kiln_error **err)
{
  if (x->comp == KILN_COMP_NONE)
    {
      tar_out (x, data, len);
      return 0;
    }
  return decomp_feed (x, data, len, err);
}

static void *
inflater (void *opaque)
{
  struct dl *x = opaque;
  const void *p;
  ssize_t n;
  while ((n = kiln_ring_read (x->ring, &p)) > 0)
    if (tar_feed (x, p, (size_t) n, &x->verr) < 0)
      break;
  x->vresult = n == 0 ? 0 : -1; /* n < 0: aborted, nothing to report */
  kiln_ring_done (x->ring);
  return NULL;
}

static int
inflater_start (struct dl *x, struct kiln_error **err)
{
  x->ring = kiln_ring_new (RING, STAGE);
  x->vresult = 0;
  int e = pthread_create (&x->vth, NULL, inflater, x);
  if (e != 0)
    return kiln_error_set (err, e, KILN_E_INTERNAL, "start a thread");
  x->vrunning = true;
  return 0;
}

/* Ends the inflate thread (after the stream's last byte, or aborting it);
 * its failure, if any, is returned. */
static int
inflater_stop (struct dl *x, bool abort, struct kiln_error **err)
{
  if (x->vrunning)
    {
      kiln_ring_close (x->ring, abort);
      pthread_join (x->vth, NULL);
      x->vrunning = false;
    }
  kiln_ring_free (x->ring);
  x->ring = NULL;
  int r = x->vresult;
  x->vresult = 0;
  if (r < 0 && x->verr)
    {
      *err = kiln_steal_ptr (&x->verr);
      return -1;
    }
  kiln_error_free (&x->verr);
  return abort ? 0 : r;
}

/* The staged bytes into the blob and on to the inflate thread. */
static int
stage_flush (struct dl *x, struct kiln_error **err)
{
  size_t n = x->staged;
  x->staged = 0;
  if (n == 0)
    return 0;
  if (kiln_blob_writer_write (x->w, x->stage, n, err) < 0)
    return -1;
  if (x->bad || kiln_ring_write (x->ring, x->stage, n))
    return 0;
  /* it stopped early: the stream does not decode; from here on the bytes
   * are only stored and hashed */
  if (inflater_stop (x, false, &x->bad) == 0 || x->bad == NULL)
    kiln_error_set (&x->bad, 0, KILN_E_DIGEST, "layer: inflate stopped");
  return 0;
}

static void
sink_abort (struct dl *x)
{
  if (x->stream)
    x->sink->abort (x->stream);
  x->stream = NULL;
}

static void
dl_reset (struct dl *x)
{
  struct kiln_error *e = NULL;
  inflater_stop (x, true, &e);
  kiln_error_free (&e);
  kiln_error_free (&x->bad);
  x->mismatch = false;
  kiln_blob_writer_abort (x->w);
  x->w = NULL;
  x->got = 0;
  x->staged = 0;
  kiln_sha256_reset (x->dh);
  kiln_decomp_free (x->dc);
  x->dc = NULL;
  /* the snapshot has seen bytes that come again: it is made from the blob later */
  sink_abort (x);
}

static int
dl_begin (struct dl *x, struct kiln_error **err)
{
  if (kiln_decomp_new (x->comp, &x->dc, err) < 0 || inflater_start (x, err) < 0)
    return -1;
  if (kiln_store_blob_begin (x->st, &x->w, err) < 0)
    return -1;
  kiln_blob_writer_set_direct (x->w);
  return 0;
}

/* The first bytes of a response decide whether it continues what we have:
 * after a partial download only a 206 starting exactly there will do.  A
 * size < 0 (a lazy blob known only by digest) takes the server's total. */
static bool
response_continues (struct dl *x)
{
  int64_t s, e, t, want = x->d->size;
  if (x->got == 0)
    return x->resp->status == 200
           || (x->resp->status == 206 && kiln_registry_parse_content_range (x->resp->content_range, &s, &e, &t) == 0
               && s == 0 && (want < 0 || t == want));
  return x->resp->status == 206 && kiln_registry_parse_content_range (x->resp->content_range, &s, &e, &t) == 0
         && s == x->got && e == t - 1 && (want < 0 || t == want);
}

static int
dl_sink (void *opaque, const void *data, size_t len, struct kiln_error **err)
{
  struct dl *x = opaque;
  if (!x->checked)
    {
      x->checked = true;
      if (!response_continues (x))
        {
          x->restart = true;
          return kiln_error_set (err, 0, KILN_E_NET, "server did not continue the download at byte %lld",
                                 (long long) x->got);
        }
    }
  if (x->d->size >= 0 && x->got + (int64_t) len > x->d->size)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "more bytes than the descriptor's size %lld", (long long) x->d->size);
  x->got += (int64_t) len;
  for (const unsigned char *p = data; len > 0;)
    {
      size_t n = STAGE - x->staged < len ? STAGE - x->staged : len;
      memcpy (x->stage + x->staged, p, n);
      x->staged += n, p += n, len -= n;
      if (x->staged == STAGE && stage_flush (x, err) < 0)
        return -1;
    }
  return 0;
}

/* The whole body arrived: its digest decides first.  A mismatch (even when
 * the stream failed to decode before) is x->mismatch, retried from the start
 * by download_layer; a stream that fails although the bytes match is a
 * broken image, final. */
static int
dl_verify (struct dl *x, struct kiln_error **err)
{
  struct kiln_digest got;
  if (x->bad == NULL && inflater_stop (x, false, &x->bad) < 0 && x->bad == NULL)
    kiln_error_set (&x->bad, 0, KILN_E_DIGEST, "layer: inflate stopped");
  if (x->bad == NULL && !kiln_decomp_complete (x->dc))
    kiln_error_set (&x->bad, 0, KILN_E_DIGEST, "%s stream is truncated", x->comp == KILN_COMP_GZIP ? "gzip" : "zstd");
  kiln_blob_writer_digest (x->w, &got);
  if (strcmp (got.s, x->d->digest.s) != 0)
    {
      kiln_autofree char *why = kiln_xasprintf ("%s%s%s", x->round ? "downloaded twice" : "",
                                                x->round && x->bad ? "; " : "", x->bad ? x->bad->msg : "");
      x->mismatch = true;
      return kiln_registry_digest_mismatch (err, "blob", x->d->digest.s, got.s, x->c->host, *why ? why : NULL);
    }
  if (x->bad)
    {
      kiln_error_set (err, 0, KILN_E_PARSE, "%s (the bytes match the digest: the image in registry `%s` is broken)",
                      x->bad->msg, x->c->host);
      kiln_error_free (&x->bad);
      return -1;
    }
  return 0;
}

/* Blob first: a snapshot is committed only for a verified, stored blob. */
static int
dl_finish (struct dl *x, struct kiln_error **err)
{
  struct kiln_digest diff;
  if (dl_verify (x, err) < 0)
    return -1;
  kiln_sha256_final (x->dh, &diff);
  /* a lazy blob has no diffID at hand: its digest is checked on commit */
  if (x->diff_id && strcmp (diff.s, x->diff_id) != 0)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "uncompressed content has digest `%s`, the config says `%s`", diff.s,
                           x->diff_id);
  struct kiln_blob_writer *w = kiln_steal_ptr (&x->w);
  if (kiln_blob_writer_commit (w, &x->d->digest, NULL, NULL, err) < 0)
    return -1;
  void *stream = kiln_steal_ptr (&x->stream);
  kiln_autoerror struct kiln_error *e = NULL;
  /* the blob is stored: a failed snapshot is made again from it when a step
   * needs it, and reports its error there */
  if (stream && x->sink->commit (stream, &e) < 0)
    kiln_log_warn ("snapshot of layer %s: %s", x->d->digest.s, e->msg);
  return 0;
}

/* One GET from x->got on.  Returns 1 when the blob is complete, 0 when the
 * attempt ended early and may be resumed, < 0 on a final failure. */
static int
dl_attempt (struct dl *x, struct kiln_registry_conn *cn, const char *url, struct kiln_error **err)
{
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "GET", q.url = url, q.sink = dl_sink, q.opaque = x, q.range_from = x->got;
  x->resp = &resp, x->checked = false, x->restart = false, x->attempt_start = x->got;
  int r = kiln_registry_do (cn, &q, &resp, err);
  kiln_autoerror struct kiln_error *fe = NULL;
  /* what arrived before the attempt ended is the blob's (a resume goes on
   * after it); only a failure to store it is final here */
  if (!x->restart && stage_flush (x, &fe) < 0)
    {
      kiln_error_free (err);
      *err = kiln_steal_ptr (&fe);
      kiln_registry_resp_clear (&resp);
      return -1;
    }
  bool transient = r < 0 && !x->restart && resp.curl_code != CURLE_OK && resp.curl_code != CURLE_WRITE_ERROR
                   && resp.curl_code != CURLE_PEER_FAILED_VERIFICATION;
  if (r < 0 && (x->restart || transient))
    {
      kiln_log_warn ("%s; resuming", (*err)->msg);
      kiln_error_free (err);
      if (x->restart)
        dl_reset (x);
      r = 0;
    }
  else if (r == 0 && (resp.status == 200 || resp.status == 206))
    r = x->got == x->d->size || x->d->size < 0 ? 1 : 0;
  else if (r == 0)
    {
      bool again = resp.status == 408 || resp.status == 429 || resp.status >= 500;
      r = again ? 0 : kiln_registry_status_error (&resp, err);
    }
  kiln_registry_resp_clear (&resp);
  return r;
}

/* GETs (resumed with Range after a break) until the whole body is in:
 * returns 1, or < 0 on a final failure. */
static int
dl_fetch (struct dl *x, struct kiln_registry_conn *cn, const char *url, struct kiln_error **err)
{
  int r = 0, fails = 0, resumes = 0;
  while (r == 0)
    {
      if (x->w == NULL && (r = dl_begin (x, err)) < 0)
        break;
      r = dl_attempt (x, cn, url, err);
      if (r != 0)
        break;
      /* progress resets the budget: a flaky link that keeps delivering finishes */
      if (x->got > x->attempt_start && ++resumes <= MAX_RESUMES)
        fails = 0;
      else if (++fails > x->c->opts->retries)
        r = kiln_error_set (err, 0, KILN_E_NET, "download failed after %d attempts", fails);
      if (r == 0)
        kiln_registry_sleep_ms (
            kiln_registry_backoff_ms (fails ? x->c->opts->retry_delay_ms : 100, fails ? fails - 1 : 0));
    }
  return r;
}

int
kiln_registry_download_layer (struct kiln_store *st, struct kiln_registry_conn *cn, const char *base,
                              const struct kiln_descriptor *d, char *const *diff_ids, size_t index,
                              struct kiln_error **err)
{
  struct kiln_registry_client *c = cn->c;
  const char *diff_id = diff_ids && index != SIZE_MAX ? diff_ids[index] : NULL;
  struct dl x = { .st = st, .c = c, .d = d, .diff_id = diff_id };
  kiln_autofree char *url = kiln_xasprintf ("%s/blobs/%s", base, d->digest.s);
  int r;
  if (media_comp (d->media_type ? d->media_type : "", &x.comp) < 0)
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "unsupported layer media type `%s`", d->media_type);
  x.dh = kiln_sha256_new ();
  x.stage = kiln_xaligned_alloc (4096, STAGE); /* aligned: written to the blob with O_DIRECT as it is */
  x.obuf = kiln_xmalloc (OBUF);
  if (diff_id && c->opts->layer_sink)
    {
      x.sink = c->opts->layer_sink;
      x.stream = x.sink->begin (x.sink->opaque, diff_ids, index + 1, d, x.comp != KILN_COMP_NONE);
    }
  for (;;)
    {
      r = dl_fetch (&x, cn, url, err);
      if (r > 0)
        r = dl_finish (&x, err);
      if (r >= 0 || !x.mismatch || x.round > 0)
        break;
      /* once more from the start; dl_reset drops the stored bytes and the
       * snapshot begun from them (made from the blob later when needed) */
      kiln_log_warn ("%s; downloading it again", (*err)->msg);
      kiln_error_free (err);
      dl_reset (&x);
      x.round++;
    }
  bool mismatch = x.mismatch;
  dl_reset (&x); /* aborts the snapshot unless dl_finish committed it */
  kiln_sha256_free (x.dh);
  free (x.stage);
  free (x.obuf);
  if (r < 0 && !mismatch) /* a mismatch names the blob already */
    return kiln_error_wrap (err, "blob %s", d->digest.s);
  return r < 0 ? r : 0;
}

int
kiln_registry_download_blob (struct kiln_store *st, struct kiln_registry_client *c, const char *path,
                             const struct kiln_descriptor *d, struct kiln_error **err)
{
  struct kiln_registry_conn cn = { 0 };
  kiln_autofree char *base = kiln_xasprintf ("%s/v2/%s", c->origin, path);
  int r = kiln_registry_conn_init (&cn, c, err);
  if (r == 0)
    r = kiln_registry_download_layer (st, &cn, base, d, NULL, SIZE_MAX, err);
  kiln_registry_conn_clear (&cn);
  return r;
}
