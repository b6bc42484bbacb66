/* registry_pull.c - `kiln pull`: the manifest (the platform's from an
 * index), the config, then the layers the store lacks, several at a time,
 * each downloaded by registry_download.c (streamed and verified, with a
 * build's snapshots fed on the way); the image is tagged only once every
 * blob is in.  A manifest or config fetched by digest whose bytes do not
 * match is fetched once more before that is an error. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/util.h"
#include "registry-internal.h"

#define MANIFEST_ACCEPT                                                                                                \
  KILN_MT_OCI_INDEX ", " KILN_MT_OCI_MANIFEST ", " KILN_MT_DOCKER_LIST ", " KILN_MT_DOCKER_MANIFEST

struct pull {
  struct kiln_store *st;
  const struct kiln_registry_opts *o;
  struct kiln_registry_client *c;
  struct kiln_ref ref;
  char *base;               /* "ORIGIN/v2/PATH" */
  char *repo;               /* "domain/path" */
  struct kiln_digest named; /* what the tag named: the first document's digest */
};

static void
emit (const struct kiln_registry_opts *o, enum kiln_registry_event ev, const char *what)
{
  if (o->on_event)
    o->on_event (o->opaque, ev, what);
}

/* GET of a small document (manifest or config) into out, capped. */
size_t
kiln_registry_pool_next (struct kiln_registry_pool *q, size_t n)
{
  return atomic_load (&q->failed) ? n : atomic_fetch_add (&q->next, 1);
}

void
kiln_registry_pool_fail (struct kiln_registry_pool *q, struct kiln_error **e)
{
  if (*e == NULL)
    return;
  atomic_store (&q->failed, true);
  pthread_mutex_lock (&q->lock);
  if (q->err == NULL)
    q->err = kiln_steal_ptr (e);
  pthread_mutex_unlock (&q->lock);
  kiln_error_free (e);
}

int
kiln_registry_pool_run (struct kiln_registry_pool *q, int n, void *(*worker) (void *), void *arg,
                        struct kiln_error **err)
{
  pthread_t th[KILN_REG_MAX_JOBS];
  int started = 0;
  pthread_mutex_init (&q->lock, NULL);
  if (n > KILN_REG_MAX_JOBS)
    n = KILN_REG_MAX_JOBS;
  for (; started < n; started++)
    if (pthread_create (&th[started], NULL, worker, arg) != 0)
      break;
  /* no thread at all: do the work here */
  if (started == 0)
    worker (arg);
  for (int i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&q->lock);
  if (q->err)
    {
      *err = kiln_steal_ptr (&q->err);
      return kiln_error_code (*err);
    }
  return 0;
}

int
kiln_registry_get_small (struct kiln_registry_conn *cn, const char *url, const char *accept, size_t max,
                         struct kiln_buf *out, char **ctype, struct kiln_error **err)
{
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "GET", q.url = url, q.accept = accept, q.body_max = max, q.idempotent = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0 && resp.status != 200)
    r = kiln_registry_status_error (&resp, err);
  if (r == 0)
    {
      kiln_buf_reset (out);
      kiln_buf_add (out, resp.body.buf, resp.body.len);
      if (ctype)
        *ctype = kiln_steal_ptr (&resp.content_type);
    }
  kiln_registry_resp_clear (&resp);
  return r;
}

int
kiln_registry_digest_mismatch (struct kiln_error **err, const char *what, const char *want, const char *got,
                               const char *registry, const char *why)
{
  return kiln_error_set (err, 0, KILN_E_DIGEST, "%s `%s`: digest mismatch: got `%s` from registry `%s`%s%s%s", what,
                         want, got, registry, why ? " (" : "", why ? why : "", why ? ")" : "");
}

int
kiln_registry_get_verified (struct kiln_registry_conn *cn, const char *url, const char *accept, size_t max,
                            const char *what, const char *want, struct kiln_buf *out, char **ctype,
                            struct kiln_error **err)
{
  struct kiln_digest got;
  for (int attempt = 0;; attempt++)
    {
      if (ctype)
        free (*ctype), *ctype = NULL;
      if (kiln_registry_get_small (cn, url, accept, max, out, ctype, err) < 0)
        return kiln_error_wrap (err, "%s `%s`", what, want);
      /* the server's Docker-Content-Digest is not trusted: only our own hash */
      kiln_digest_of (out->buf, out->len, &got);
      if (strcmp (got.s, want) == 0)
        return 0;
      if (attempt > 0)
        return kiln_registry_digest_mismatch (err, what, want, got.s, cn->c->host, "fetched twice");
      kiln_log_warn ("%s %s: digest mismatch: got %s from registry %s; fetching it again", what, want, got.s,
                     cn->c->host);
    }
}

static int
get_manifest (struct pull *p, struct kiln_registry_conn *cn, const char *reference, const char *want_digest,
              struct kiln_buf *raw, enum kiln_registry_doc *kind, char **mt, struct kiln_error **err)
{
  kiln_autofree char *url = kiln_xasprintf ("%s/manifests/%s", p->base, reference);
  kiln_autofree char *ct = NULL;
  /* by tag the document is what the registry serves; by digest it must match */
  if (want_digest)
    {
      if (kiln_registry_get_verified (cn, url, MANIFEST_ACCEPT, KILN_REG_MAX_MANIFEST, "manifest", want_digest, raw,
                                      &ct, err)
          < 0)
        return -1;
    }
  else if (kiln_registry_get_small (cn, url, MANIFEST_ACCEPT, KILN_REG_MAX_MANIFEST, raw, &ct, err) < 0)
    return kiln_error_wrap (err, "manifest `%s`", reference);
  if (kiln_registry_doc_kind (raw->buf, raw->len, ct, kind, mt, err) < 0)
    return kiln_error_wrap (err, "manifest `%s`", reference);
  return 0;
}

static char *
platform_string (const struct kiln_platform *pl)
{
  return kiln_xasprintf ("%s/%s%s%s", pl->os, pl->architecture, pl->variant ? "/" : "", pl->variant ? pl->variant : "");
}

static int
choose_from_index (struct pull *p, const struct kiln_buf *raw, struct kiln_digest *child, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  struct kiln_platform want;
  if (kiln_index_from_json (raw->buf, raw->len, &ix, err) < 0)
    return -1;
  int r = p->o->platform ? kiln_registry_platform_parse (p->o->platform, &want, err)
                         : (kiln_registry_platform_host (&want), 0);
  if (r == 0)
    {
      int i = kiln_registry_platform_select (&ix, &want);
      kiln_autofree char *ws = platform_string (&want);
      if (i < 0)
        r = kiln_error_set (err, 0, KILN_E_NOTFOUND, "no image for platform `%s` in the index", ws);
      else
        *child = ix.manifests[i].digest;
      free (want.os), free (want.architecture), free (want.variant);
    }
  kiln_index_clear (&ix);
  return r;
}

/* The image manifest (through an index if need be); raw holds its bytes. */
static int
resolve_manifest (struct pull *p, struct kiln_registry_conn *cn, struct kiln_buf *raw, struct kiln_descriptor *desc,
                  struct kiln_error **err)
{
  enum kiln_registry_doc kind;
  char *mt = NULL;
  const char *reference = p->ref.digest ? p->ref.digest : p->ref.tag;
  if (get_manifest (p, cn, reference, p->ref.digest, raw, &kind, &mt, err) < 0)
    return -1;
  kiln_digest_of (raw->buf, raw->len, &p->named);
  if (kind == KILN_REG_DOC_INDEX)
    {
      struct kiln_digest child;
      free (mt), mt = NULL;
      if (choose_from_index (p, raw, &child, err) < 0
          || get_manifest (p, cn, child.s, child.s, raw, &kind, &mt, err) < 0)
        return -1;
      if (kind != KILN_REG_DOC_MANIFEST)
        {
          free (mt);
          return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "manifest `%s` is a nested index", child.s);
        }
    }
  desc->media_type = mt;
  kiln_digest_of (raw->buf, raw->len, &desc->digest);
  desc->size = (int64_t) raw->len;
  return 0;
}

static int
get_config (struct pull *p, struct kiln_registry_conn *cn, const struct kiln_descriptor *d, struct kiln_buf *raw,
            struct kiln_image_config *cfg, struct kiln_error **err)
{
  kiln_autofree char *url = kiln_xasprintf ("%s/blobs/%s", p->base, d->digest.s);
  if (d->size < 0 || d->size > (int64_t) KILN_REG_MAX_CONFIG)
    return kiln_error_set (err, EFBIG, KILN_E_UNSUPPORTED, "config `%s` is larger than 4 MiB", d->digest.s);
  if (kiln_registry_get_verified (cn, url, NULL, (size_t) d->size, "config", d->digest.s, raw, NULL, err) < 0)
    return -1;
  if ((int64_t) raw->len != d->size)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "config `%s`: %zu bytes, the manifest says %lld", d->digest.s,
                           raw->len, (long long) d->size);
  if (kiln_image_config_from_json (raw->buf, raw->len, cfg, err) < 0)
    return kiln_error_wrap (err, "config `%s`", d->digest.s);
  return 0;
}

/* ---- parallel layers ---- */

struct pool {
  struct pull *p;
  const struct kiln_manifest *m;
  char **diff_ids;
  struct kiln_registry_pool q; /* next item, first error */
};

static void *
worker (void *opaque)
{
  struct pool *pl = opaque;
  struct kiln_registry_conn cn = { 0 };
  struct kiln_error *e = NULL;
  if (kiln_registry_conn_init (&cn, pl->p->c, &e) == 0)
    for (size_t i; (i = kiln_registry_pool_next (&pl->q, pl->m->nlayers)) < pl->m->nlayers;)
      {
        const struct kiln_descriptor *d = &pl->m->layers[i];
        if (kiln_store_blob_exists (pl->p->st, &d->digest, NULL))
          {
            emit (pl->p->o, KILN_REGISTRY_BLOB_PRESENT, d->digest.s);
            continue;
          }
        if (kiln_registry_download_layer (pl->p->st, &cn, pl->p->base, d, pl->diff_ids, i, &e) < 0)
          break;
        emit (pl->p->o, KILN_REGISTRY_BLOB_FETCHED, d->digest.s);
      }
  kiln_registry_conn_clear (&cn);
  kiln_registry_pool_fail (&pl->q, &e);
  return NULL;
}

static int
fetch_layers (struct pull *p, const struct kiln_manifest *m, char **diff_ids, struct kiln_error **err)
{
  struct pool pl = { .p = p, .m = m, .diff_ids = diff_ids };
  int n = p->o->jobs > 0 ? p->o->jobs : 1;
  if ((size_t) n > m->nlayers)
    n = m->nlayers ? (int) m->nlayers : 1;
  return kiln_registry_pool_run (&pl.q, n, worker, &pl, err);
}

/* ---- the whole pull ---- */

static int
store_image (struct pull *p, const struct kiln_buf *cfg_raw, const struct kiln_buf *raw, const struct kiln_manifest *m,
             const struct kiln_descriptor *desc, struct kiln_error **err)
{
  struct kiln_digest d;
  if (kiln_store_blob_put (p->st, cfg_raw->buf, cfg_raw->len, &d, err) < 0
      || kiln_store_blob_put (p->st, raw->buf, raw->len, &d, err) < 0)
    return -1;
  kiln_autofree char *name = kiln_ref_string (&p->ref);
  struct kiln_descriptor entry = { 0 };
  kiln_descriptor_copy (&entry, desc);
  if (p->ref.digest == NULL)
    {
      kiln_kvlist_set (&entry.annotations, KILN_ANNOT_PULL_REF, name);
      kiln_kvlist_set (&entry.annotations, KILN_ANNOT_PULL_DIGEST, p->named.s);
    }
  int r = kiln_store_tag (p->st, name, &entry, err);
  kiln_descriptor_clear (&entry);
  if (r < 0)
    return -1;
  size_t n = m->nlayers + 2;
  struct kiln_digest *all = kiln_xcalloc (n, sizeof *all);
  for (size_t i = 0; i < m->nlayers; i++)
    all[i] = m->layers[i].digest;
  all[m->nlayers] = m->config.digest;
  all[m->nlayers + 1] = desc->digest;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_registry_sources_add (p->st, all, n, p->repo, &e) < 0)
    kiln_log_warn ("record where the blobs came from: %s", e->msg);
  free (all);
  emit (p->o, KILN_REGISTRY_MANIFEST_DONE, desc->digest.s);
  return 0;
}

static int
pull_image (struct pull *p, struct kiln_descriptor *desc, struct kiln_error **err)
{
  struct kiln_registry_conn cn = { 0 };
  kiln_autobuf struct kiln_buf raw = KILN_BUF_INIT, cfg_raw = KILN_BUF_INIT;
  struct kiln_manifest m = { 0 };
  struct kiln_image_config cfg = { 0 };
  int r = -1;
  if (kiln_registry_conn_init (&cn, p->c, err) < 0 || resolve_manifest (p, &cn, &raw, desc, err) < 0
      || kiln_manifest_from_json (raw.buf, raw.len, &m, err) < 0)
    goto out;
  if (get_config (p, &cn, &m.config, &cfg_raw, &cfg, err) < 0)
    goto out;
  if (kiln_strv_len (cfg.diff_ids) != m.nlayers)
    {
      r = kiln_error_set (err, 0, KILN_E_PARSE, "manifest has %zu layers but the config %zu diff_ids", m.nlayers,
                          kiln_strv_len (cfg.diff_ids));
      goto out;
    }
  kiln_registry_conn_clear (&cn);
  /* lazy: layers stay in the registry until something opens them */
  r = p->o->lazy ? 0 : fetch_layers (p, &m, cfg.diff_ids, err);
  if (r == 0)
    r = store_image (p, &cfg_raw, &raw, &m, desc, err);
out:
  kiln_registry_conn_clear (&cn);
  kiln_manifest_clear (&m);
  kiln_image_config_clear (&cfg);
  return r;
}

/* HEAD first; a server that names no digest is asked for the document. */
static int
tag_digest (struct kiln_registry_conn *cn, const char *url, struct kiln_digest *out, struct kiln_error **err)
{
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  q.method = "HEAD", q.url = url, q.accept = MANIFEST_ACCEPT;
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (r == 0 && resp.status != 200)
    r = kiln_registry_status_error (&resp, err);
  if (r == 0 && resp.digest && kiln_digest_parse (resp.digest, out, NULL) == 0)
    {
      kiln_registry_resp_clear (&resp);
      return 0;
    }
  kiln_registry_resp_clear (&resp);
  if (r < 0)
    return -1;
  kiln_autobuf struct kiln_buf raw = KILN_BUF_INIT;
  if (kiln_registry_get_small (cn, url, MANIFEST_ACCEPT, KILN_REG_MAX_MANIFEST, &raw, NULL, err) < 0)
    return -1;
  kiln_digest_of (raw.buf, raw.len, out);
  return 0;
}

int
kiln_registry_tag_digest (const char *ref, const struct kiln_registry_opts *o, struct kiln_digest *out,
                          struct kiln_error **err)
{
  struct kiln_registry_opts once;
  struct kiln_registry_repo rp;
  if (o == NULL)
    kiln_registry_opts_init (&once);
  else
    once = *o;
  once.retries = 0;
  int ret = kiln_registry_repo_open (ref, &once, &rp, err);
  if (ret == 0)
    {
      kiln_autofree char *url = kiln_xasprintf ("%s/manifests/%s", rp.base, rp.ref.tag ? rp.ref.tag : "latest");
      ret = tag_digest (&rp.cn, url, out, err);
    }
  kiln_registry_repo_close (&rp);
  return ret < 0 ? kiln_error_wrap (err, "ask registry for `%s`", ref) : 0;
}

int
kiln_registry_pull (struct kiln_store *st, const char *ref, const struct kiln_registry_opts *o,
                    struct kiln_descriptor *manifest_out, struct kiln_error **err)
{
  struct kiln_registry_opts defaults;
  struct pull p = { .st = st, .o = o };
  struct kiln_descriptor desc = { 0 };
  if (o == NULL)
    kiln_registry_opts_init (&defaults), p.o = o = &defaults;
  if (o->platform)
    {
      struct kiln_platform pl;
      if (kiln_registry_platform_parse (o->platform, &pl, err) < 0)
        return -1;
      free (pl.os), free (pl.architecture), free (pl.variant);
    }
  if (kiln_ref_parse (ref, &p.ref, err) < 0)
    return -1;
  kiln_autofree char *shown = kiln_ref_string (&p.ref);
  int r = kiln_registry_client_open (p.ref.domain, o, true, &p.c, err);
  if (r == 0)
    {
      kiln_autofree char *scope = kiln_xasprintf ("repository:%s:pull", p.ref.path);
      kiln_registry_client_add_scope (p.c, scope);
      p.base = kiln_xasprintf ("%s/v2/%s", p.c->origin, p.ref.path);
      p.repo = kiln_ref_repository (&p.ref);
      r = pull_image (&p, &desc, err);
    }
  if (r == 0 && manifest_out)
    *manifest_out = desc;
  else
    kiln_descriptor_clear (&desc);
  kiln_registry_client_free (p.c);
  free (p.base), free (p.repo);
  kiln_ref_clear (&p.ref);
  return r < 0 ? kiln_error_wrap (err, "pull `%s`", shown) : 0;
}
