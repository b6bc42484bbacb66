/* cache_export.c - --cache-to / --cache-from: the layer cache as a plain OCI
 * image manifest in a registry or an OCI layout directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "kiln/cache_export.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/store.h"
#include "kiln/toc.h"
#include "kiln/util.h"
#include "../image/oci-internal.h"

#define CACHE_DOC "cache config"
#define CACHE_VERSION 1
#define LOCAL_MAX_JSON (8u << 20)

/* ---- --cache-to / --cache-from values ---- */

void
kiln_cache_spec_clear (struct kiln_cache_spec *s)
{
  free (s->ref), free (s->dir), free (s->tag);
  memset (s, 0, sizeof *s);
}

static int
spec_key (struct kiln_cache_spec *s, const char *text, const char *kv, bool for_export, const char **type,
          struct kiln_error **err)
{
  const char *v = strchr (kv, '=');
  size_t kl = v ? (size_t) (v - kv) : strlen (kv);
  v = v ? v + 1 : "";
#define KEY(name) (kl == strlen (name) && strncmp (kv, name, kl) == 0)
  if (KEY ("type"))
    *type = v;
  else if (KEY ("ref"))
    free (s->ref), s->ref = kiln_xstrdup (v);
  else if ((for_export && KEY ("dest")) || (!for_export && KEY ("src")))
    free (s->dir), s->dir = kiln_xstrdup (v);
  else if (KEY ("tag"))
    free (s->tag), s->tag = kiln_xstrdup (v);
  else if (KEY ("mode") && (strcmp (v, "min") == 0 || strcmp (v, "max") == 0))
    s->mode = strcmp (v, "max") == 0 ? KILN_CACHE_MODE_MAX : KILN_CACHE_MODE_MIN;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "cache `%s`: invalid key `%s`", text, kv);
#undef KEY
  return 0;
}

/* A registry reference, normalised; a digest is allowed only to read. */
static int
spec_ref (struct kiln_cache_spec *s, const char *text, bool for_export, struct kiln_error **err)
{
  struct kiln_ref r = { 0 };
  if (s->ref == NULL || *s->ref == '\0')
    return kiln_error_set (err, 0, KILN_E_USAGE, "cache `%s`: type=registry needs ref=REGISTRY/REPOSITORY:TAG", text);
  if (kiln_ref_parse (s->ref, &r, err) < 0)
    return kiln_error_wrap (err, "cache `%s`", text);
  bool digest_only = r.digest != NULL && for_export;
  free (s->ref);
  s->ref = kiln_ref_string (&r);
  kiln_ref_clear (&r);
  if (digest_only)
    return kiln_error_set (err, 0, KILN_E_USAGE, "cache `%s`: --cache-to needs a tag, not a digest", text);
  return 0;
}

int
kiln_cache_spec_parse (const char *text, bool for_export, struct kiln_cache_spec *out, struct kiln_error **err)
{
  kiln_autofree char *copy = kiln_xstrdup (text);
  const char *type = NULL;
  char *save = NULL;
  memset (out, 0, sizeof *out);
  if (strchr (text, '=') == NULL) /* a bare reference, as buildx takes it */
    out->ref = kiln_xstrdup (text), type = "registry";
  else
    for (char *kv = strtok_r (copy, ",", &save); kv; kv = strtok_r (NULL, ",", &save))
      if (spec_key (out, text, kv, for_export, &type, err) < 0)
        goto fail;
  if (type && strcmp (type, "registry") == 0)
    {
      out->kind = KILN_CACHE_REGISTRY;
      if (out->dir || out->tag || spec_ref (out, text, for_export, err) < 0)
        goto bad;
      return 0;
    }
  if (type && strcmp (type, "local") == 0 && out->dir && *out->dir && !out->ref)
    {
      out->kind = KILN_CACHE_LOCAL;
      if (!out->tag)
        out->tag = kiln_xstrdup ("cache");
      return 0;
    }
bad:
  if (!*err)
    kiln_error_set (err, 0, KILN_E_USAGE, "invalid cache `%s` (want type=registry,ref=REF or type=local,%s=DIR)", text,
                    for_export ? "dest" : "src");
fail:
  kiln_cache_spec_clear (out);
  return kiln_error_code (*err);
}

/* ---- the config document ---- */

void
kiln_cache_doc_clear (struct kiln_cache_doc *d)
{
  for (size_t i = 0; i < d->n; i++)
    {
      kiln_cache_record_clear (&d->v[i].rec);
      kiln_descriptor_clear (&d->v[i].toc);
    }
  free (d->v);
  memset (d, 0, sizeof *d);
}

static json_t *
entry_to_json (const struct kiln_cache_entry *e)
{
  const struct kiln_cache_record *r = &e->rec;
  json_t *j = json_object ();
  json_object_set_new (j, "key", json_string (r->key.s));
  json_object_set_new (j, "parent", json_string (r->parent.s));
  kiln_oci_set_str (j, "instruction", r->instruction);
  kiln_oci_set_str (j, "created", r->created);
  json_object_set_new (j, "built", json_integer (e->built));
  json_object_set_new (j, "layer", kiln_oci_descriptor_to_json (&r->layer));
  json_object_set_new (j, "diff_id", json_string (r->diff_id.s));
  json_object_set_new (j, "inputs", kiln_oci_strv_to_json (r->inputs ? r->inputs : (char *[]){ NULL }));
  if (e->has_toc)
    json_object_set_new (j, "toc", json_string (e->toc.digest.s));
  return j;
}

int
kiln_cache_doc_to_json (const struct kiln_cache_doc *d, char **out, size_t *len, struct kiln_error **err)
{
  kiln_autojson json_t *root = json_object ();
  json_t *recs = json_array ();
  json_object_set_new (root, "version", json_integer (CACHE_VERSION));
  json_object_set_new (root, "records", recs);
  for (size_t i = 0; i < d->n; i++)
    json_array_append_new (recs, entry_to_json (&d->v[i]));
  return kiln_oci_dump (root, CACHE_DOC, out, len, err);
}

static int
entry_from_json (json_t *j, size_t i, struct kiln_cache_entry *e, struct kiln_error **err)
{
  kiln_autofree char *prefix = kiln_xasprintf ("records[%zu].", i);
  kiln_autofree char *lprefix = kiln_xasprintf ("records[%zu].layer.", i);
  const struct kiln_jpath p = { CACHE_DOC, prefix }, lp = { CACHE_DOC, lprefix };
  kiln_autofree char *key = NULL, *parent = NULL, *diff = NULL, *toc = NULL;
  struct kiln_cache_record *r = &e->rec;
  json_t *layer = NULL;
  if (!json_is_object (j))
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `records[%zu]` must be an object", CACHE_DOC, i);
  if (kiln_oci_get_str (j, "key", &p, true, &key, err) < 0 || kiln_oci_get_str (j, "parent", &p, true, &parent, err) < 0
      || kiln_oci_get_str (j, "instruction", &p, false, &r->instruction, err) < 0
      || kiln_oci_get_str (j, "created", &p, false, &r->created, err) < 0
      || kiln_oci_get_int (j, "built", &p, false, &e->built, err) < 0
      || kiln_oci_get_strv (j, "inputs", &p, &r->inputs, err) < 0
      || kiln_oci_get_obj (j, "layer", &p, true, &layer, err) < 0
      || kiln_oci_get_str (j, "diff_id", &p, true, &diff, err) < 0
      || kiln_oci_get_str (j, "toc", &p, false, &toc, err) < 0
      || kiln_oci_descriptor_from_json (layer, &lp, &r->layer, err) < 0)
    return -1;
  if (kiln_digest_parse (key, &r->key, err) < 0 || kiln_digest_parse (parent, &r->parent, err) < 0
      || kiln_digest_parse (diff, &r->diff_id, err) < 0 || (toc && kiln_digest_parse (toc, &e->toc.digest, err) < 0))
    return kiln_error_wrap (err, "%s: records[%zu]", CACHE_DOC, i);
  e->has_toc = toc != NULL;
  r->has_layer = true;
  return 0;
}

int
kiln_cache_doc_from_json (const char *data, size_t len, struct kiln_cache_doc *out, struct kiln_error **err)
{
  kiln_autojson json_t *root = NULL;
  const struct kiln_jpath p = { CACHE_DOC, "" };
  json_t *recs = NULL;
  int64_t version = 0;
  memset (out, 0, sizeof *out);
  if (kiln_oci_load (data, len, CACHE_DOC, &root, err) < 0
      || kiln_oci_get_int (root, "version", &p, true, &version, err) < 0
      || kiln_oci_get_array (root, "records", &p, true, &recs, err) < 0)
    return -1;
  if (version != CACHE_VERSION)
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "%s: unsupported version %lld", CACHE_DOC, (long long) version);
  out->v = kiln_xcalloc (json_array_size (recs) + 1, sizeof *out->v);
  for (size_t i = 0; i < json_array_size (recs); i++, out->n++)
    if (entry_from_json (json_array_get (recs, i), i, &out->v[i], err) < 0)
      {
        kiln_cache_record_clear (&out->v[i].rec);
        kiln_cache_doc_clear (out);
        return -1;
      }
  return 0;
}

/* ---- collect, store, import ---- */

static char *
child_rel (const struct kiln_digest *parent, const struct kiln_digest *key)
{
  return kiln_xasprintf ("cache/children/%s/%s", kiln_digest_hex (parent), kiln_digest_hex (key));
}

int64_t
kiln_cache_built (struct kiln_store *st, const struct kiln_digest *parent, const struct kiln_digest *key)
{
  struct stat sb;
  kiln_autofree char *rel = child_rel (parent, key);
  return fstatat (kiln_store_dirfd (st), rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 ? (int64_t) sb.st_mtime : 0;
}

static bool
too_old (int64_t built, int64_t ttl)
{
  return ttl > 0 && (int64_t) time (NULL) - built > ttl;
}

static bool
doc_has_key (const struct kiln_cache_doc *d, const struct kiln_digest *k)
{
  for (size_t i = 0; i < d->n; i++)
    if (strcmp (d->v[i].rec.key.s, k->s) == 0)
      return true;
  return false;
}

static bool
manifest_has_layer (const struct kiln_manifest *m, const struct kiln_digest *d)
{
  for (size_t i = 0; i < m->nlayers; i++)
    if (strcmp (m->layers[i].digest.s, d->s) == 0)
      return true;
  return false;
}

int
kiln_cache_doc_collect (struct kiln_store *st, const struct kiln_digest *keys, size_t n,
                        const struct kiln_descriptor *image, int64_t ttl, struct kiln_cache_doc *out,
                        struct kiln_error **err)
{
  struct kiln_manifest m = { 0 };
  memset (out, 0, sizeof *out);
  if (image && kiln_store_get_manifest (st, &image->digest, &m, err) < 0)
    return -1;
  out->v = kiln_xcalloc (n + 1, sizeof *out->v);
  for (size_t i = 0; i < n; i++)
    {
      struct kiln_cache_entry *e = &out->v[out->n];
      if (!kiln_digest_valid (keys[i].s) || doc_has_key (out, &keys[i]))
        continue;
      int r = kiln_cache_get (st, &keys[i], &e->rec, err);
      if (r < 0)
        {
          kiln_manifest_clear (&m);
          kiln_cache_doc_clear (out);
          return -1;
        }
      e->built = r == 0 ? kiln_cache_built (st, &e->rec.parent, &keys[i]) : 0;
      /* metadata steps have no record; mode=min keeps the final image's layers */
      if (r == 0 && e->rec.has_layer && !too_old (e->built, ttl)
          && (!image || manifest_has_layer (&m, &e->rec.layer.digest)))
        r = kiln_toc_export (st, &e->rec.diff_id, &e->toc, err);
      else
        r = -2;
      if (r == -1)
        {
          kiln_manifest_clear (&m);
          kiln_cache_doc_clear (out);
          return -1;
        }
      if (r < 0)
        kiln_cache_record_clear (&e->rec);
      else
        {
          e->has_toc = r == 1;
          out->n++;
        }
    }
  kiln_manifest_clear (&m);
  return 0;
}

static void
add_doc_layer (struct kiln_manifest *m, const struct kiln_descriptor *d)
{
  if (manifest_has_layer (m, &d->digest))
    return;
  kiln_descriptor_copy (&m->layers[m->nlayers], d);
  kiln_kvlist_clear (&m->layers[m->nlayers].annotations);
  m->nlayers++;
}

/* The layers the records name, each once, in record order, then their
 * tables of contents. */
static void
doc_layers (const struct kiln_cache_doc *d, struct kiln_manifest *m)
{
  m->layers = kiln_xcalloc (2 * d->n + 1, sizeof *m->layers);
  for (size_t i = 0; i < d->n; i++)
    add_doc_layer (m, &d->v[i].rec.layer);
  for (size_t i = 0; i < d->n; i++)
    if (d->v[i].has_toc)
      add_doc_layer (m, &d->v[i].toc);
}

int
kiln_cache_doc_store (struct kiln_store *st, const struct kiln_cache_doc *d, struct kiln_descriptor *manifest,
                      struct kiln_error **err)
{
  kiln_autofree char *json = NULL;
  size_t len = 0;
  struct kiln_manifest m = { .media_type = (char *) KILN_MT_OCI_MANIFEST };
  int r = kiln_cache_doc_to_json (d, &json, &len, err);
  if (r == 0)
    r = kiln_store_blob_put (st, json, len, &m.config.digest, err);
  if (r < 0)
    return kiln_error_wrap (err, "store the cache config");
  m.config.media_type = (char *) KILN_MT_CACHE_CONFIG;
  m.config.size = (int64_t) len;
  doc_layers (d, &m);
  r = kiln_store_put_manifest (st, &m, manifest, err);
  for (size_t i = 0; i < m.nlayers; i++)
    kiln_descriptor_clear (&m.layers[i]);
  free (m.layers);
  return r;
}

/* A local record of the key whose layer is here is at least as good. */
static bool
have_local (struct kiln_store *st, const struct kiln_digest *key, int64_t ttl)
{
  struct kiln_cache_record r = { 0 };
  kiln_autoerror struct kiln_error *e = NULL;
  bool ok = kiln_cache_get (st, key, &r, &e) == 0 && r.has_layer && kiln_store_blob_exists (st, &r.layer.digest, NULL)
            && !too_old (kiln_cache_built (st, &r.parent, key), ttl);
  kiln_cache_record_clear (&r);
  return ok;
}

int
kiln_cache_doc_import (struct kiln_store *st, const struct kiln_cache_doc *d, int64_t ttl, size_t *imported,
                       struct kiln_error **err)
{
  size_t n = 0;
  for (size_t i = 0; i < d->n; i++)
    {
      const struct kiln_cache_entry *e = &d->v[i];
      if (too_old (e->built, ttl) || have_local (st, &e->rec.key, ttl))
        continue;
      if (kiln_cache_put (st, &e->rec, err) < 0
          || (e->has_toc && kiln_toc_note_blob (st, &e->rec.diff_id, &e->toc.digest, err) < 0))
        return kiln_error_wrap (err, "import cache record `%s`", e->rec.key.s);
      /* the TTL counts from when the step was built, not from this import */
      kiln_autofree char *rel = child_rel (&e->rec.parent, &e->rec.key);
      struct timespec t[2] = { { .tv_sec = (time_t) e->built }, { .tv_sec = (time_t) e->built } };
      if (e->built > 0 && utimensat (kiln_store_dirfd (st), rel, t, AT_SYMLINK_NOFOLLOW) < 0)
        kiln_log_warn ("date cache record `%s`: %s", rel, strerror (errno));
      n++;
    }
  if (imported)
    *imported = n;
  return 0;
}

/* ---- --cache-to ---- */

int
kiln_cache_export (struct kiln_store *st, const struct kiln_digest *keys, size_t n, const struct kiln_descriptor *image,
                   const struct kiln_cache_spec *spec, int64_t ttl, const struct kiln_registry_opts *o,
                   struct kiln_error **err)
{
  struct kiln_cache_doc d = { 0 };
  struct kiln_descriptor md = { 0 };
  const struct kiln_descriptor *only = spec->mode == KILN_CACHE_MODE_MIN ? image : NULL;
  const char *where = spec->kind == KILN_CACHE_REGISTRY ? spec->ref : spec->dir;
  int r = kiln_cache_doc_collect (st, keys, n, only, ttl, &d, err);
  if (r == 0)
    r = kiln_cache_doc_store (st, &d, &md, err);
  /* blobs first: usually the image push put them there, so HEAD or a mount
   * answers and no lazy layer is fetched */
  if (r == 0 && spec->kind == KILN_CACHE_REGISTRY)
    r = kiln_registry_push_manifest (st, &md, spec->ref, o, NULL, err);
  else if (r == 0)
    r = kiln_store_export (st, &md, NULL, spec->tag, KILN_EXPORT_OCI_DIR, spec->dir, err);
  if (r == 0)
    kiln_log_info ("exported %zu cache record(s) to %s", d.n, where);
  kiln_descriptor_clear (&md);
  kiln_cache_doc_clear (&d);
  return r < 0 ? kiln_error_wrap (err, "export the cache to `%s`", where) : 0;
}

/* ---- --cache-from ---- */

static int
check_cache_manifest (const struct kiln_buf *raw, struct kiln_manifest *m, struct kiln_error **err)
{
  if (kiln_manifest_from_json (raw->buf, raw->len, m, err) < 0)
    return -1;
  if (!m->config.media_type || strcmp (m->config.media_type, KILN_MT_CACHE_CONFIG) != 0)
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "not a kiln cache (config media type `%s`)",
                           m->config.media_type ? m->config.media_type : "");
  return 0;
}

static int
import_registry (struct kiln_store *st, const struct kiln_cache_spec *spec, const struct kiln_registry_opts *o,
                 struct kiln_cache_doc *d, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf raw = KILN_BUF_INIT, cfg = KILN_BUF_INIT;
  kiln_autofree char *repo = NULL;
  struct kiln_manifest m = { 0 };
  if (kiln_registry_get_documents (spec->ref, o, &raw, &cfg, &repo, err) < 0)
    return -1;
  int r = check_cache_manifest (&raw, &m, err);
  if (r == 0)
    r = kiln_cache_doc_from_json (cfg.buf, cfg.len, d, err);
  if (r == 0)
    {
      /* the layers stay there: a push mounts them, a snapshot fetches them */
      struct kiln_digest *blobs = kiln_xcalloc (m.nlayers + 1, sizeof *blobs);
      for (size_t i = 0; i < m.nlayers; i++)
        blobs[i] = m.layers[i].digest;
      r = kiln_registry_note_blobs (st, blobs, m.nlayers, repo, err);
      free (blobs);
    }
  kiln_manifest_clear (&m);
  return r;
}

/* A blob of the layout, verified as it is copied into the store. */
static int
ingest_local_blob (struct kiln_store *st, int dfd, const struct kiln_digest *d, struct kiln_error **err)
{
  struct kiln_blob_writer *w = NULL;
  char buf[65536];
  kiln_autofree char *rel = kiln_store_blob_relpath (d);
  kiln_autoclose int fd = kiln_fs_open_beneath (dfd, rel, O_RDONLY, 0, err);
  if (fd < 0 || kiln_store_blob_begin (st, &w, err) < 0)
    return -1;
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          kiln_blob_writer_abort (w);
          return kiln_error_set (err, errno, KILN_E_IO, "read `%s`", rel);
        }
      if (n == 0)
        break;
      if (kiln_blob_writer_write (w, buf, (size_t) n, err) < 0)
        {
          kiln_blob_writer_abort (w);
          return -1;
        }
    }
  return kiln_blob_writer_commit (w, d, NULL, NULL, err);
}

static int
read_local_blob (int dfd, const struct kiln_digest *d, struct kiln_buf *out, struct kiln_error **err)
{
  struct kiln_digest got;
  kiln_autofree char *rel = kiln_store_blob_relpath (d);
  if (kiln_fs_read_file (dfd, rel, LOCAL_MAX_JSON, out, err) < 0)
    return -1;
  kiln_digest_of (out->buf, out->len, &got);
  if (strcmp (got.s, d->s) != 0)
    return kiln_error_set (err, 0, KILN_E_DIGEST, "`%s`: content has digest `%s`", rel, got.s);
  return 0;
}

/* The manifest named tag in index.json (the last one, as the store does). */
static int
local_manifest (int dfd, const char *tag, struct kiln_digest *out, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_index ix = { 0 };
  int r = kiln_fs_read_file (dfd, "index.json", LOCAL_MAX_JSON, &b, err);
  if (r == 0)
    r = kiln_index_from_json (b.buf, b.len, &ix, err);
  if (r < 0)
    return -1;
  bool found = false;
  for (size_t i = 0; i < ix.nmanifests; i++)
    {
      const char *name = kiln_kvlist_get (&ix.manifests[i].annotations, KILN_ANNOT_REF_NAME);
      if (name && strcmp (name, tag) == 0)
        *out = ix.manifests[i].digest, found = true;
    }
  kiln_index_clear (&ix);
  if (!found)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "no manifest named `%s` in `index.json`", tag);
  return 0;
}

/* A layout directory: its layers are copied in now (verified), since there
 * is no registry to fetch them from later. */
static int
import_local (struct kiln_store *st, const struct kiln_cache_spec *spec, struct kiln_cache_doc *d,
              struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf raw = KILN_BUF_INIT, cfg = KILN_BUF_INIT;
  struct kiln_manifest m = { 0 };
  struct kiln_digest md;
  kiln_autoclose int dfd = open (spec->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, errno == ENOENT ? KILN_E_NOTFOUND : KILN_E_IO, "open `%s`", spec->dir);
  if (local_manifest (dfd, spec->tag, &md, err) < 0 || read_local_blob (dfd, &md, &raw, err) < 0)
    return -1;
  int r = check_cache_manifest (&raw, &m, err);
  if (r == 0)
    r = read_local_blob (dfd, &m.config.digest, &cfg, err);
  if (r == 0)
    r = kiln_cache_doc_from_json (cfg.buf, cfg.len, d, err);
  for (size_t i = 0; r == 0 && i < m.nlayers; i++)
    if (!kiln_store_blob_exists (st, &m.layers[i].digest, NULL))
      r = ingest_local_blob (st, dfd, &m.layers[i].digest, err);
  kiln_manifest_clear (&m);
  return r;
}

int
kiln_cache_import (struct kiln_store *st, const struct kiln_cache_spec *spec, int64_t ttl,
                   const struct kiln_registry_opts *o, struct kiln_error **err)
{
  struct kiln_cache_doc d = { 0 };
  const char *where = spec->kind == KILN_CACHE_REGISTRY ? spec->ref : spec->dir;
  size_t n = 0;
  int r = spec->kind == KILN_CACHE_REGISTRY ? import_registry (st, spec, o, &d, err) : import_local (st, spec, &d, err);
  if (r < 0 && (*err)->kind == KILN_E_NOTFOUND)
    {
      /* the first build of a branch has no cache yet: that is no failure */
      kiln_log_warn ("cache `%s` not found: %s", where, (*err)->msg);
      kiln_error_free (err);
      return 1;
    }
  if (r == 0)
    r = kiln_cache_doc_import (st, &d, ttl, &n, err);
  if (r == 0)
    kiln_log_info ("imported %zu of %zu cache record(s) from %s", n, d.n, where);
  kiln_cache_doc_clear (&d);
  return r < 0 ? kiln_error_wrap (err, "import the cache from `%s`", where) : 0;
}

int
kiln_cache_check_sources (char *const *specs, struct kiln_error **err)
{
  for (size_t i = 0; specs && specs[i]; i++)
    {
      struct kiln_cache_spec spec;
      if (kiln_cache_spec_parse (specs[i], false, &spec, err) < 0)
        return kiln_error_wrap (err, "--cache-from");
      kiln_cache_spec_clear (&spec);
    }
  return 0;
}

int
kiln_cache_import_sources (struct kiln_store *st, char *const *specs, int64_t ttl, const struct kiln_registry_opts *o,
                           struct kiln_error **err)
{
  for (size_t i = 0; specs && specs[i]; i++)
    {
      struct kiln_cache_spec spec;
      int ret = kiln_cache_spec_parse (specs[i], false, &spec, err);
      if (ret == 0)
        ret = kiln_cache_import (st, &spec, ttl, o, err);
      kiln_cache_spec_clear (&spec);
      if (ret < 0)
        return -1;
    }
  return 0;
}
