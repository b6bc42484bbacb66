/* image.c - names to images: the store first, a registry only for a name the
 * store does not have (kiln/image.h). */
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/image.h"
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
kiln_image_open (struct kiln_store *st, const char *name, const struct kiln_image_pull *pull,
                 struct kiln_descriptor *out, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_image_resolve (st, name, out, &e) == 0)
    return 0;
  if (e->kind != KILN_E_NOTFOUND || pull == NULL)
    {
      *err = kiln_steal_ptr (&e);
      return -1;
    }
  struct kiln_ref ref = { 0 };
  if (kiln_ref_parse (name, &ref, err) < 0)
    return -1;
  kiln_autofree char *full = kiln_ref_string (&ref);
  kiln_ref_clear (&ref);
  if (pull->on_pull)
    pull->on_pull (pull->ud, full);
  return kiln_registry_pull (st, full, pull->registry, out, err);
}
