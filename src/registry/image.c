/* image.c - names to images: the store first, a registry only for a name the
 * store does not have (kiln/image.h). */
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/image.h"
#include "kiln/log.h"
#include "kiln/ref.h"
#include "kiln/registry.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* Resolves one spelling; 1 when it is not in the store (*err untouched). */
static int
try_name (struct kiln_store *st, const char *name, struct kiln_descriptor *out, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_store_resolve (st, name, out, &e) == 0)
    return 0;
  if (e->kind == KILN_E_NOTFOUND)
    return 1;
  *err = kiln_steal_ptr (&e);
  return -1;
}

int
kiln_image_resolve (struct kiln_store *st, const char *name, struct kiln_descriptor *out, struct kiln_error **err)
{
  int r = try_name (st, name, out, err);
  if (r <= 0)
    return r;
  struct kiln_ref ref = { 0 };
  kiln_autoerror struct kiln_error *perr = NULL;
  if (kiln_ref_parse (name, &ref, &perr) == 0)
    {
      kiln_autofree char *norm = kiln_ref_string (&ref);
      kiln_ref_clear (&ref);
      if (strcmp (norm, name) != 0 && (r = try_name (st, norm, out, err)) <= 0)
        return r;
    }
  /* an untagged build is still addressable by its manifest digest */
  uint64_t size;
  memset (out, 0, sizeof *out);
  if (kiln_digest_valid (name) && kiln_digest_parse (name, &out->digest, err) == 0
      && kiln_store_blob_exists (st, &out->digest, &size))
    {
      out->media_type = kiln_xstrdup (KILN_MT_OCI_MANIFEST);
      out->size = (int64_t) size;
      return 0;
    }
  return kiln_error_set (err, 0, KILN_E_NOTFOUND, "image `%s` not found in the store", name);
}

int
kiln_image_pull_policy_parse (const char *s, enum kiln_pull_policy *out, struct kiln_error **err)
{
  static const struct {
    const char *name;
    enum kiln_pull_policy p;
  } names[] = {
    { "always", KILN_PULL_ALWAYS }, { "true", KILN_PULL_ALWAYS }, { "missing", KILN_PULL_MISSING },
    { "false", KILN_PULL_MISSING }, { "never", KILN_PULL_NEVER }, { "newer", KILN_PULL_NEWER },
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp (s, names[i].name) == 0)
      {
        *out = names[i].p;
        return 0;
      }
  return kiln_error_set (err, 0, KILN_E_USAGE, "invalid pull policy `%s` (always, missing, never or newer)", s);
}

/* 1 when the store's entry d is an image kiln pulled under this name and
 * the registry's tag names another digest now; 0 otherwise, a registry
 * that cannot be asked included (with a warning). */
static int
tag_moved (const struct kiln_descriptor *d, const struct kiln_image_pull *pull)
{
  const char *name = kiln_kvlist_get (&d->annotations, KILN_ANNOT_REF_NAME);
  const char *ref = kiln_kvlist_get (&d->annotations, KILN_ANNOT_PULL_REF);
  const char *then = kiln_kvlist_get (&d->annotations, KILN_ANNOT_PULL_DIGEST);
  struct kiln_digest now;
  kiln_autoerror struct kiln_error *e = NULL;
  if (!name || !ref || !then || strcmp (name, ref) != 0)
    return 0;
  if (kiln_registry_tag_digest (ref, pull->registry, &now, &e) < 0)
    {
      kiln_log_warn ("%s; using the image in the store", e->msg);
      return 0;
    }
  return strcmp (now.s, then) != 0;
}

static int
pull_name (struct kiln_store *st, const char *name, const struct kiln_image_pull *pull, struct kiln_descriptor *out,
           struct kiln_error **err)
{
  struct kiln_ref ref = { 0 };
  if (kiln_ref_parse (name, &ref, err) < 0)
    return -1;
  kiln_autofree char *full = kiln_ref_string (&ref);
  kiln_ref_clear (&ref);
  if (pull->on_pull)
    pull->on_pull (pull->ud, full);
  return kiln_registry_pull (st, full, pull->registry, out, err);
}

/* Whether a store entry found for name is asked about at all. */
static bool
worth_asking (const char *name, enum kiln_pull_policy policy)
{
  struct kiln_ref ref = { 0 };
  if (policy != KILN_PULL_NEWER && policy != KILN_PULL_ALWAYS)
    return false;
  if (kiln_ref_parse (name, &ref, NULL) < 0)
    return false; /* a digest or id prefix: nothing to ask a registry */
  bool pinned = ref.digest != NULL;
  kiln_ref_clear (&ref);
  return !pinned;
}

int
kiln_image_open (struct kiln_store *st, const char *name, const struct kiln_image_pull *pull,
                 struct kiln_descriptor *out, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  int r = kiln_image_resolve (st, name, out, &e);
  if ((r < 0 && e->kind != KILN_E_NOTFOUND) || (r < 0 && pull == NULL))
    {
      *err = kiln_steal_ptr (&e);
      return -1;
    }
  if (r < 0 && pull->policy == KILN_PULL_NEVER)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "image `%s` is not in the store and --pull=never forbids pulling",
                           name);
  if (r < 0)
    return pull_name (st, name, pull, out, err);
  if (pull == NULL || !worth_asking (name, pull->policy))
    return 0;
  if (pull->policy == KILN_PULL_NEWER && !tag_moved (out, pull))
    return 0;
  struct kiln_descriptor local = *out;
  memset (out, 0, sizeof *out);
  r = pull_name (st, name, pull, out, err);
  if (r < 0 && pull->policy == KILN_PULL_NEWER)
    {
      /* buildah's newer: a failed pull keeps the image the store has */
      kiln_log_warn ("%s; using the image in the store", (*err)->msg);
      kiln_error_free (err);
      *out = local;
      return 0;
    }
  kiln_descriptor_clear (&local);
  return r;
}
