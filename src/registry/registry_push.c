/* registry_push.c - `kiln push`: blobs (HEAD, cross-repo mount, monolithic
 * or chunked upload, resumed through the upload status), then the config,
 * then the manifest. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/util.h"
#include "registry-internal.h"

#define DEFAULT_CHUNKED_ABOVE (64ll << 20)
#define DEFAULT_CHUNK (32ll << 20)

struct push {
  struct kiln_store *st;
  const struct kiln_registry_opts *o;
  struct kiln_registry_client *c;
  struct kiln_ref ref;
  char *base; /* "ORIGIN/v2/PATH" */
  char *repo; /* "domain/path" */
  int64_t chunked_above, chunk;
};

static void
emit (const struct kiln_registry_opts *o, enum kiln_registry_event ev, const char *what)
{
  if (o->on_event)
    o->on_event (o->opaque, ev, what);
}

/* 1 when the registry has the blob, 0 when not. */
static int
blob_exists (struct push *p, struct kiln_registry_conn *cn, const struct kiln_digest *d, struct kiln_error **err)
{
  kiln_autofree char *url = kiln_xasprintf ("%s/blobs/%s", p->base, d->s);
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "HEAD", q.url = url, q.idempotent = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0)
    r = resp.status == 200 ? 1 : resp.status == 404 ? 0 : kiln_registry_status_error (&resp, err);
  kiln_registry_resp_clear (&resp);
  return r;
}

/* The repository of this registry the store saw d in, for a mount. */
static char *
mount_source (struct push *p, const struct kiln_digest *d)
{
  kiln_autostrv char **srcs = kiln_registry_sources_get (p->st, d);
  size_t dl = strlen (p->ref.domain);
  for (size_t i = 0; srcs[i]; i++)
    if (strncmp (srcs[i], p->ref.domain, dl) == 0 && srcs[i][dl] == '/' && strcmp (srcs[i], p->repo) != 0)
      return kiln_xstrdup (srcs[i] + dl + 1);
  return NULL;
}

/* POST .../uploads/ (with ?mount= when from): 1 = mounted, 0 = *loc is a session. */
static int
start_upload (struct push *p, struct kiln_registry_conn *cn, const struct kiln_digest *d, const char *from, char **loc,
              int64_t *chunk_min, struct kiln_error **err)
{
  kiln_autofree char *url0 = kiln_xasprintf ("%s/blobs/uploads/", p->base);
  kiln_autofree char *url1 = from ? kiln_registry_url_add_query (url0, "mount", d->s) : NULL;
  kiln_autofree char *url = from ? kiln_registry_url_add_query (url1, "from", from) : kiln_xstrdup (url0);
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  /* a POST without a body only opens a session: repeating it is harmless */
  q.method = "POST", q.url = url, q.idempotent = true, q.no_redirect = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0 && resp.status == 201 && from)
    r = 1;
  else if (r == 0 && resp.status == 202 && resp.location)
    {
      *loc = kiln_registry_url_resolve (resp.url, resp.location);
      if (*loc == NULL)
        r = kiln_error_set (err, 0, KILN_E_NET, "registry `%s`: start upload: invalid Location", cn->c->host);
      else if (resp.chunk_min && kiln_registry_parse_size (resp.chunk_min, chunk_min) < 0)
        r = kiln_error_set (err, 0, KILN_E_NET, "registry `%s`: start upload: invalid OCI-Chunk-Min-Length `%.64s`",
                            cn->c->host, resp.chunk_min);
    }
  else if (r == 0)
    r = kiln_registry_status_error (&resp, err);
  kiln_registry_resp_clear (&resp);
  return r < 0 ? kiln_error_wrap (err, "start upload") : r;
}

/* One PATCH or PUT carrying [off, off+len) of fd; *loc follows the answer. */
static int
send_part (struct kiln_registry_conn *cn, const char *method, char **loc, const struct kiln_digest *d, int fd,
           int64_t off, int64_t len, bool content_range, struct kiln_error **err)
{
  kiln_autofree char *url = d ? kiln_registry_url_add_query (*loc, "digest", d->s) : kiln_xstrdup (*loc);
  kiln_autofree char *cr = content_range ? kiln_xasprintf ("%lld-%lld", (long long) off, (long long) (off + len - 1))
                                         : NULL;
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = method, q.url = url, q.fd = fd, q.off = off, q.len = len, q.has_body = len > 0;
  q.content_type = "application/octet-stream", q.content_range = cr, q.no_redirect = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  int want = d ? 201 : 202;
  if (r == 0 && resp.status != want)
    r = kiln_registry_status_error (&resp, err);
  if (r == 0 && resp.location)
    {
      char *n = kiln_registry_url_resolve (resp.url, resp.location);
      if (n)
        free (*loc), *loc = n;
    }
  kiln_registry_resp_clear (&resp);
  return r;
}

/* GET of the upload URL: how much the registry has (*next, at most sent),
 * its new Location. */
static int
upload_status (struct kiln_registry_conn *cn, char **loc, int64_t sent, int64_t *next, struct kiln_error **err)
{
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "GET", q.url = *loc, q.idempotent = true, q.no_redirect = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0 && resp.status != 204)
    r = kiln_registry_status_error (&resp, err);
  if (r == 0 && !resp.range)
    *next = 0;
  else if (r == 0 && kiln_registry_parse_upload_range (resp.range, sent, next) < 0)
    r = kiln_error_set (err, 0, KILN_E_NET,
                        "registry `%s`: upload status has an impossible Range `%.64s` (%lld bytes sent)", cn->c->host,
                        resp.range, (long long) sent);
  if (r == 0 && resp.location)
    {
      char *n = kiln_registry_url_resolve (resp.url, resp.location);
      if (n)
        free (*loc), *loc = n;
    }
  kiln_registry_resp_clear (&resp);
  return r;
}

static void
cancel_upload (struct kiln_registry_conn *cn, const char *loc)
{
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  q.method = "DELETE", q.url = loc, q.no_redirect = true;
  kiln_registry_do (cn, &q, &resp, &e); /* best effort: stale sessions time out anyway */
  kiln_registry_resp_clear (&resp);
}

/* Chunked PATCHes from *pos; after a failure the upload status says where
 * to go on, so nothing is replayed blindly.  Ends with the closing PUT. */
static int
upload_chunked (struct push *p, struct kiln_registry_conn *cn, char **loc, const struct kiln_digest *d, int fd,
                int64_t size, int64_t chunk, struct kiln_error **err)
{
  int64_t pos = 0;
  int fails = 0;
  while (pos < size)
    {
      int64_t n = size - pos < chunk ? size - pos : chunk;
      if (send_part (cn, "PATCH", loc, NULL, fd, pos, n, true, err) == 0)
        {
          pos += n;
          continue;
        }
      if (++fails > p->o->retries)
        return -1;
      kiln_log_warn ("blob %s: %s; asking the registry how much it has", d->s, (*err)->msg);
      kiln_error_free (err);
      kiln_registry_sleep_ms (kiln_registry_backoff_ms (p->o->retry_delay_ms, fails - 1));
      if (upload_status (cn, loc, pos + n, &pos, err) < 0)
        return -1;
      if (pos > size)
        return kiln_error_set (err, 0, KILN_E_NET, "registry claims %lld bytes of %lld", (long long) pos,
                               (long long) size);
    }
  return send_part (cn, "PUT", loc, d, fd, 0, 0, false, err);
}

/* One session: mount or upload.  Returns the event that happened.  The blob
 * is opened (*fd) only once the registry has neither mounted nor got it, so
 * a lazy blob is fetched only when it really has to be uploaded. */
static int
upload_session (struct push *p, struct kiln_registry_conn *cn, const struct kiln_digest *d, int *fd, int64_t size,
                const char *from, bool *no_blob, struct kiln_error **err)
{
  kiln_autofree char *loc = NULL;
  int64_t chunk_min = 0;
  int r = start_upload (p, cn, d, from, &loc, &chunk_min, err);
  if (r != 0)
    return r < 0 ? r : KILN_REGISTRY_BLOB_MOUNTED;
  if (*fd < 0 && (*fd = kiln_store_blob_open (p->st, d, err)) < 0)
    {
      *no_blob = true; /* neither here nor fetchable: another session will not help */
      cancel_upload (cn, loc);
      return -1;
    }
  int64_t chunk = p->chunk > chunk_min ? p->chunk : chunk_min;
  if (size > p->chunked_above)
    r = upload_chunked (p, cn, &loc, d, *fd, size, chunk, err);
  else
    r = send_part (cn, "PUT", &loc, d, *fd, 0, size, false, err);
  if (r < 0 && loc)
    cancel_upload (cn, loc);
  return r < 0 ? r : KILN_REGISTRY_BLOB_UPLOADED;
}

static int
push_blob (struct push *p, struct kiln_registry_conn *cn, const struct kiln_digest *d, int64_t size,
           struct kiln_error **err)
{
  int r = blob_exists (p, cn, d, err);
  if (r != 0)
    return r < 0 ? r : KILN_REGISTRY_BLOB_PRESENT;
  kiln_autoclose int fd = -1;
  kiln_autofree char *from = mount_source (p, d);
  bool no_blob = false;
  for (int attempt = 0;; attempt++)
    {
      r = upload_session (p, cn, d, &fd, size, attempt == 0 ? from : NULL, &no_blob, err);
      if (r >= 0 || no_blob || attempt >= p->o->retries || (*err)->kind == KILN_E_AUTH || (*err)->kind == KILN_E_IO)
        return r;
      /* the session is gone (Debian's registry drops it when a body is cut):
       * check whether the blob landed after all, else start over */
      kiln_autoerror struct kiln_error *e = NULL;
      if (blob_exists (p, cn, d, &e) == 1)
        {
          kiln_error_free (err);
          return KILN_REGISTRY_BLOB_UPLOADED;
        }
      kiln_log_warn ("blob %s: %s; uploading again", d->s, (*err)->msg);
      kiln_error_free (err);
      kiln_registry_sleep_ms (kiln_registry_backoff_ms (p->o->retry_delay_ms, attempt));
    }
}

/* ---- parallel blobs ---- */

struct pool {
  struct push *p;
  const struct kiln_descriptor *blobs;
  size_t n;
  struct kiln_registry_pool q; /* next item, first error */
};

static void *
worker (void *opaque)
{
  struct pool *pl = opaque;
  struct kiln_registry_conn cn = { 0 };
  struct kiln_error *e = NULL;
  if (kiln_registry_conn_init (&cn, pl->p->c, &e) == 0)
    for (size_t i; (i = kiln_registry_pool_next (&pl->q, pl->n)) < pl->n;)
      {
        int r = push_blob (pl->p, &cn, &pl->blobs[i].digest, pl->blobs[i].size, &e);
        if (r < 0)
          {
            kiln_error_wrap (&e, "blob %s", pl->blobs[i].digest.s);
            break;
          }
        emit (pl->p->o, (enum kiln_registry_event) r, pl->blobs[i].digest.s);
      }
  kiln_registry_conn_clear (&cn);
  kiln_registry_pool_fail (&pl->q, &e);
  return NULL;
}

static int
push_blobs (struct push *p, const struct kiln_descriptor *blobs, size_t n, struct kiln_error **err)
{
  struct pool pl = { .p = p, .blobs = blobs, .n = n };
  int want = p->o->jobs < 1 ? 1 : p->o->jobs;
  if ((size_t) want > n)
    want = n ? (int) n : 1;
  return kiln_registry_pool_run (&pl.q, want, worker, &pl, err);
}

/* ---- the whole push ---- */

static int
put_manifest (struct push *p, struct kiln_registry_conn *cn, const char *mt, const struct kiln_buf *raw,
              const struct kiln_digest *d, struct kiln_error **err)
{
  const char *reference = p->ref.tag ? p->ref.tag : d->s;
  kiln_autofree char *url = kiln_xasprintf ("%s/manifests/%s", p->base, reference);
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "PUT", q.url = url, q.data = raw->buf, q.len = (int64_t) raw->len, q.has_body = true;
  q.content_type = mt, q.idempotent = true, q.no_redirect = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0 && (resp.status < 200 || resp.status > 299))
    r = kiln_registry_status_error (&resp, err);
  kiln_registry_resp_clear (&resp);
  return r < 0 ? kiln_error_wrap (err, "manifest %s", d->s) : 0;
}

static void
add_mount_scopes (struct push *p, const struct kiln_manifest *m)
{
  for (size_t i = 0; i <= m->nlayers; i++)
    {
      kiln_autofree char *from = mount_source (p, i < m->nlayers ? &m->layers[i].digest : &m->config.digest);
      kiln_autofree char *scope = from ? kiln_xasprintf ("repository:%s:pull", from) : NULL;
      if (scope)
        kiln_registry_client_add_scope (p->c, scope);
    }
}

static int
push_image (struct push *p, const struct kiln_descriptor *md, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf raw = KILN_BUF_INIT;
  struct kiln_manifest m = { 0 };
  struct kiln_registry_conn cn = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  struct kiln_digest *all;
  int r = -1;
  if (kiln_store_blob_read (p->st, &md->digest, KILN_REG_MAX_MANIFEST, &raw, err) < 0
      || kiln_manifest_from_json (raw.buf, raw.len, &m, err) < 0)
    return -1;
  if (p->ref.digest && strcmp (p->ref.digest, md->digest.s) != 0)
    {
      r = kiln_error_set (err, 0, KILN_E_USAGE, "destination digest does not match the image `%s`", md->digest.s);
      goto out;
    }
  add_mount_scopes (p, &m);
  /* layers first (in parallel), then the config, then the manifest */
  if (push_blobs (p, m.layers, m.nlayers, err) < 0 || push_blobs (p, &m.config, 1, err) < 0)
    goto out;
  if (kiln_registry_conn_init (&cn, p->c, err) < 0 || put_manifest (p, &cn, m.media_type, &raw, &md->digest, err) < 0)
    goto out;
  emit (p->o, KILN_REGISTRY_MANIFEST_DONE, md->digest.s);
  all = kiln_xcalloc (m.nlayers + 2, sizeof *all);
  for (size_t i = 0; i < m.nlayers; i++)
    all[i] = m.layers[i].digest;
  all[m.nlayers] = m.config.digest, all[m.nlayers + 1] = md->digest;
  if (kiln_registry_sources_add (p->st, all, m.nlayers + 2, p->repo, &e) < 0)
    kiln_log_warn ("record where the blobs are: %s", e->msg);
  free (all);
  r = 0;
out:
  kiln_registry_conn_clear (&cn);
  kiln_manifest_clear (&m);
  return r;
}

int
kiln_registry_push (struct kiln_store *st, const char *image, const char *dest, const struct kiln_registry_opts *o,
                    struct kiln_digest *digest_out, struct kiln_error **err)
{
  struct kiln_descriptor md = { 0 };
  if (kiln_store_resolve (st, image, &md, err) < 0)
    {
      /* a short name (`app`, `bench/model:latest`) is stored normalised */
      struct kiln_ref ref = { 0 };
      kiln_autoerror struct kiln_error *e = NULL;
      kiln_autofree char *norm = NULL;
      if (kiln_ref_parse (image, &ref, &e) == 0)
        norm = kiln_ref_string (&ref);
      kiln_ref_clear (&ref);
      if (!norm || kiln_store_resolve (st, norm, &md, &e) < 0)
        return kiln_error_wrap (err, "push `%s`", image);
      kiln_error_free (err);
    }
  int r = kiln_registry_push_manifest (st, &md, dest ? dest : image, o, digest_out, err);
  kiln_descriptor_clear (&md);
  return r;
}

int
kiln_registry_push_manifest (struct kiln_store *st, const struct kiln_descriptor *mdesc, const char *target,
                             const struct kiln_registry_opts *o, struct kiln_digest *digest_out,
                             struct kiln_error **err)
{
  struct kiln_registry_opts defaults;
  struct push p = { .st = st, .o = o };
  struct kiln_descriptor md = { 0 };
  if (o == NULL)
    kiln_registry_opts_init (&defaults), p.o = o = &defaults;
  p.chunked_above = o->chunk_size > 0 ? o->chunk_size : DEFAULT_CHUNKED_ABOVE;
  p.chunk = o->chunk_size > 0 ? o->chunk_size : DEFAULT_CHUNK;
  kiln_descriptor_copy (&md, mdesc);
  int r = kiln_ref_parse (target, &p.ref, err);
  kiln_autofree char *shown = r == 0 ? kiln_ref_string (&p.ref) : kiln_xstrdup (target);
  if (r == 0)
    r = kiln_registry_client_open (p.ref.domain, o, true, &p.c, err);
  if (r == 0)
    {
      kiln_autofree char *scope = kiln_xasprintf ("repository:%s:pull,push", p.ref.path);
      kiln_registry_client_add_scope (p.c, scope);
      p.base = kiln_xasprintf ("%s/v2/%s", p.c->origin, p.ref.path);
      p.repo = kiln_ref_repository (&p.ref);
      r = push_image (&p, &md, err);
    }
  if (r == 0 && digest_out)
    *digest_out = md.digest;
  kiln_descriptor_clear (&md);
  kiln_registry_client_free (p.c);
  free (p.base), free (p.repo);
  kiln_ref_clear (&p.ref);
  return r < 0 ? kiln_error_wrap (err, "push `%s`", shown) : 0;
}
