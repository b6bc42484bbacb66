/* registry_fetch.c - lazy blobs: a blob the store lacks but kiln/sources.json
 * says a registry holds (a layer of a --cache-from hit, of a lazily pulled
 * base) is downloaded only when something opens it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/util.h"
#include "registry-internal.h"

bool
kiln_registry_blob_remote (struct kiln_store *st, const struct kiln_digest *d)
{
  if (kiln_store_blob_exists (st, d, NULL))
    return false;
  kiln_autostrv char **srcs = kiln_registry_sources_get (st, d);
  return srcs[0] != NULL;
}

/* One repository ("domain/path"): open a client, download, verify. */
static int
fetch_from (struct kiln_store *st, const struct kiln_digest *d, const char *repo, const struct kiln_registry_opts *o,
            struct kiln_error **err)
{
  const char *slash = strchr (repo, '/');
  if (slash == NULL || slash == repo || slash[1] == '\0')
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid repository `%s` in `kiln/sources.json`", repo);
  kiln_autofree char *domain = kiln_xstrndup (repo, (size_t) (slash - repo));
  kiln_autofree char *scope = kiln_xasprintf ("repository:%s:pull", slash + 1);
  struct kiln_registry_client *c = NULL;
  /* the size is not known here (sources.json keeps only where a blob is);
   * the digest, checked as it streams in, is what makes it trustworthy */
  struct kiln_descriptor desc = { .media_type = (char *) KILN_MT_OCI_LAYER, .digest = *d, .size = -1 };
  if (kiln_registry_client_open (domain, o, true, &c, err) < 0)
    return -1;
  kiln_registry_client_add_scope (c, scope);
  int r = kiln_registry_download_blob (st, c, slash + 1, &desc, err);
  kiln_registry_client_free (c);
  return r;
}

int
kiln_registry_fetch_blob (struct kiln_store *st, const struct kiln_digest *d, const struct kiln_registry_opts *o,
                          struct kiln_error **err)
{
  struct kiln_registry_opts defaults;
  kiln_autostrv char **srcs = kiln_registry_sources_get (st, d);
  if (o == NULL)
    kiln_registry_opts_init (&defaults), o = &defaults;
  if (srcs[0] == NULL)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "blob `%s` is not in the store and no registry is known to have it",
                           d->s);
  for (size_t i = 0; srcs[i]; i++)
    {
      kiln_autoerror struct kiln_error *e = NULL;
      kiln_log_info ("fetching blob %s from %s", d->s, srcs[i]);
      if (fetch_from (st, d, srcs[i], o, &e) == 0)
        {
          if (o->on_event)
            o->on_event (o->opaque, KILN_REGISTRY_BLOB_FETCHED, d->s);
          return 0;
        }
      /* the next repository may still have it; the last failure is the one told */
      if (srcs[i + 1] == NULL)
        {
          *err = kiln_steal_ptr (&e);
          return kiln_error_wrap (err, "fetch blob `%s` from `%s`", d->s, srcs[i]);
        }
      kiln_log_warn ("fetch blob %s from %s: %s; trying %s", d->s, srcs[i], e->msg, srcs[i + 1]);
    }
  return -1; /* not reached */
}

static int
fetcher (void *opaque, struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err)
{
  return kiln_registry_fetch_blob (st, d, opaque, err);
}

void
kiln_registry_install_fetcher (struct kiln_store *st, const struct kiln_registry_opts *o)
{
  kiln_store_set_fetcher (st, fetcher, (void *) o);
}

/* ---- documents only (registry cache import) ---- */

/* The manifest (by tag: trusted as the registry serves it; by digest:
 * verified), then its config blob, verified against the manifest. */
static int
get_manifest_config (struct kiln_registry_conn *cn, const char *base, const struct kiln_ref *ref,
                     struct kiln_buf *manifest, struct kiln_buf *config, struct kiln_error **err)
{
  struct kiln_manifest m = { 0 };
  kiln_autofree char *murl = kiln_xasprintf ("%s/manifests/%s", base, ref->digest ? ref->digest : ref->tag);
  if (ref->digest)
    {
      if (kiln_registry_get_verified (cn, murl, KILN_MT_OCI_MANIFEST, KILN_REG_MAX_MANIFEST, "manifest", ref->digest,
                                      manifest, NULL, err)
          < 0)
        return -1;
    }
  else if (kiln_registry_get_small (cn, murl, KILN_MT_OCI_MANIFEST, KILN_REG_MAX_MANIFEST, manifest, NULL, err) < 0)
    return kiln_error_wrap (err, "manifest");
  if (kiln_manifest_from_json (manifest->buf, manifest->len, &m, err) < 0)
    return -1;
  int r = 0;
  kiln_autofree char *curl = kiln_xasprintf ("%s/blobs/%s", base, m.config.digest.s);
  if (m.config.size < 0 || m.config.size > (int64_t) KILN_REG_MAX_CONFIG)
    r = kiln_error_set (err, EFBIG, KILN_E_UNSUPPORTED, "config `%s` is larger than 4 MiB", m.config.digest.s);
  else
    r = kiln_registry_get_verified (cn, curl, NULL, (size_t) m.config.size, "config", m.config.digest.s, config, NULL,
                                    err);
  kiln_manifest_clear (&m);
  return r;
}

int
kiln_registry_get_documents (const char *ref, const struct kiln_registry_opts *o, struct kiln_buf *manifest,
                             struct kiln_buf *config, char **repo, struct kiln_error **err)
{
  struct kiln_registry_repo rp;
  struct kiln_registry_opts defaults;
  if (o == NULL)
    kiln_registry_opts_init (&defaults), o = &defaults;
  int r = kiln_registry_repo_open (ref, o, &rp, err);
  if (r == 0)
    r = get_manifest_config (&rp.cn, rp.base, &rp.ref, manifest, config, err);
  if (r == 0 && repo)
    *repo = kiln_ref_repository (&rp.ref);
  kiln_registry_repo_close (&rp);
  return r;
}

int
kiln_registry_note_blobs (struct kiln_store *st, const struct kiln_digest *blobs, size_t n, const char *repo,
                          struct kiln_error **err)
{
  return kiln_registry_sources_add (st, blobs, n, repo, err);
}
