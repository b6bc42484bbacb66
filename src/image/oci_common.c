/* oci_common.c - descriptors and platforms shared by the config, manifest and
 * index documents. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/oci.h"
#include "oci-internal.h"
#include "kiln/util.h"

static char *
dup_or_null (const char *s)
{
  return s ? kiln_xstrdup (s) : NULL;
}

void
kiln_descriptor_clear (struct kiln_descriptor *d)
{
  if (d == NULL)
    return;
  free (d->media_type);
  kiln_kvlist_clear (&d->annotations);
  free (d->platform.os);
  free (d->platform.architecture);
  free (d->platform.variant);
  memset (d, 0, sizeof *d);
}

void
kiln_descriptor_copy (struct kiln_descriptor *dst, const struct kiln_descriptor *src)
{
  struct kiln_descriptor tmp = { 0 };
  /* build into tmp first so dst == src aliasing cannot free what we copy */
  tmp.media_type = dup_or_null (src->media_type);
  tmp.digest = src->digest;
  tmp.size = src->size;
  kiln_kvlist_copy (&tmp.annotations, &src->annotations);
  tmp.platform.os = dup_or_null (src->platform.os);
  tmp.platform.architecture = dup_or_null (src->platform.architecture);
  tmp.platform.variant = dup_or_null (src->platform.variant);
  kiln_descriptor_clear (dst);
  *dst = tmp;
}

void
kiln_oci_chain_id (char *const *diff_ids, size_t n, struct kiln_digest *out)
{
  memset (out, 0, sizeof *out);
  if (n == 0)
    return;
  /* diff ids come from parsed configs and are valid digests; snprintf keeps
   * a short one from being over-read anyway */
  snprintf (out->s, sizeof out->s, "%s", diff_ids[0]);
  for (size_t i = 1; i < n; i++)
    {
      char *joined = kiln_xasprintf ("%s %s", out->s, diff_ids[i]);
      kiln_digest_of (joined, strlen (joined), out);
      free (joined);
    }
}

/* ---- JSON helpers (oci-internal.h) ---- */

int
kiln_oci_type_error (const struct kiln_jpath *p, const char *key, const char *what, struct kiln_error **err)
{
  return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `%s%s` %s", p->doc, p->prefix, key, what);
}

int
kiln_oci_load (const char *data, size_t len, const char *doc, json_t **out, struct kiln_error **err)
{
  json_error_t jerr;
  json_t *j = json_loadb (data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (j == NULL)
    return kiln_error_set (err, 0, KILN_E_PARSE, "parse %s: line %d column %d: %s", doc, jerr.line, jerr.column,
                           jerr.text);
  if (!json_is_object (j))
    {
      json_decref (j);
      return kiln_error_set (err, 0, KILN_E_PARSE, "parse %s: not a JSON object", doc);
    }
  *out = j;
  return 0;
}

int
kiln_oci_dump (json_t *j, const char *doc, char **out, size_t *len, struct kiln_error **err)
{
  char *s = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
  if (s == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "serialise %s", doc);
  *out = s;
  if (len)
    *len = strlen (s);
  return 0;
}

/* The member, or NULL when absent or JSON null (Docker writes null for unset). */
static json_t *
member (json_t *obj, const char *key)
{
  json_t *v = json_object_get (obj, key);
  return json_is_null (v) ? NULL : v;
}

int
kiln_oci_get_str (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, char **out,
                  struct kiln_error **err)
{
  json_t *v = member (obj, key);
  if (v == NULL)
    return required ? kiln_oci_type_error (p, key, "is required", err) : 0;
  if (!json_is_string (v))
    return kiln_oci_type_error (p, key, "must be a string", err);
  free (*out);
  *out = kiln_xstrdup (json_string_value (v));
  return 0;
}

int
kiln_oci_get_strv (json_t *obj, const char *key, const struct kiln_jpath *p, char ***out, struct kiln_error **err)
{
  json_t *v = member (obj, key), *e;
  size_t i;
  if (v == NULL)
    return 0;
  if (!json_is_array (v))
    return kiln_oci_type_error (p, key, "must be an array of strings", err);
  json_array_foreach (v, i, e)
    if (!json_is_string (e))
      return kiln_oci_type_error (p, key, "must be an array of strings", err);
  char **r = kiln_xcalloc (json_array_size (v) + 1, sizeof (char *));
  json_array_foreach (v, i, e)
    r[i] = kiln_xstrdup (json_string_value (e));
  kiln_strv_free (*out);
  *out = r;
  return 0;
}

int
kiln_oci_get_keyset (json_t *obj, const char *key, const struct kiln_jpath *p, char ***out, struct kiln_error **err)
{
  json_t *v = member (obj, key), *e;
  const char *k;
  if (v == NULL)
    return 0;
  if (!json_is_object (v))
    return kiln_oci_type_error (p, key, "must be an object of empty objects", err);
  json_object_foreach (v, k, e)
    if (!json_is_object (e))
      return kiln_oci_type_error (p, key, "must be an object of empty objects", err);
  char **r = kiln_xcalloc (json_object_size (v) + 1, sizeof (char *));
  size_t i = 0;
  json_object_foreach (v, k, e)
    r[i++] = kiln_xstrdup (k);
  kiln_strv_free (*out);
  *out = r;
  return 0;
}

int
kiln_oci_get_kvlist (json_t *obj, const char *key, const struct kiln_jpath *p, struct kiln_kvlist *out,
                     struct kiln_error **err)
{
  json_t *v = member (obj, key), *e;
  const char *k;
  if (v == NULL)
    return 0;
  if (!json_is_object (v))
    return kiln_oci_type_error (p, key, "must be an object of strings", err);
  json_object_foreach (v, k, e)
    if (!json_is_string (e))
      return kiln_oci_type_error (p, key, "must be an object of strings", err);
  kiln_kvlist_clear (out);
  json_object_foreach (v, k, e)
    kiln_kvlist_set (out, k, json_string_value (e));
  return 0;
}

int
kiln_oci_get_int (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, int64_t *out,
                  struct kiln_error **err)
{
  json_t *v = member (obj, key);
  if (v == NULL)
    return required ? kiln_oci_type_error (p, key, "is required", err) : 0;
  if (!json_is_integer (v))
    return kiln_oci_type_error (p, key, "must be an integer", err);
  *out = (int64_t) json_integer_value (v);
  return 0;
}

int
kiln_oci_get_bool (json_t *obj, const char *key, const struct kiln_jpath *p, bool *out, struct kiln_error **err)
{
  json_t *v = member (obj, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean (v))
    return kiln_oci_type_error (p, key, "must be a boolean", err);
  *out = json_is_true (v);
  return 0;
}

int
kiln_oci_get_obj (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, json_t **out,
                  struct kiln_error **err)
{
  json_t *v = member (obj, key);
  *out = NULL;
  if (v == NULL)
    return required ? kiln_oci_type_error (p, key, "is required", err) : 0;
  if (!json_is_object (v))
    return kiln_oci_type_error (p, key, "must be an object", err);
  *out = v;
  return 0;
}

int
kiln_oci_get_array (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, json_t **out,
                    struct kiln_error **err)
{
  json_t *v = member (obj, key);
  *out = NULL;
  if (v == NULL)
    return required ? kiln_oci_type_error (p, key, "is required", err) : 0;
  if (!json_is_array (v))
    return kiln_oci_type_error (p, key, "must be an array", err);
  *out = v;
  return 0;
}

int
kiln_oci_check_schema_version (json_t *root, const struct kiln_jpath *p, struct kiln_error **err)
{
  int64_t v = 0;
  if (kiln_oci_get_int (root, "schemaVersion", p, true, &v, err) < 0)
    return -1;
  if (v != 2)
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `schemaVersion` must be 2, not %" PRId64, p->doc, v);
  return 0;
}

/* Go's encoding/json, which writes BuildKit's configs, turns each byte that
 * does not start valid UTF-8 into U+FFFD; jansson refuses such a string
 * (NULL, and the field silently vanished from the image), so the same
 * replacement is made here. */
static json_t *
jstring (const char *s)
{
  json_t *j = json_string (s);
  if (j == NULL)
    {
      kiln_autofree char *c = kiln_str_utf8_coerce (s);
      j = json_string (c);
    }
  return j;
}

/* (json_object_set_new frees v when it refuses the key, so the key is
 * made valid first) */
static void
set_key (json_t *o, const char *key, json_t *v)
{
  kiln_autofree char *c = kiln_str_utf8_coerce (key);
  json_object_set_new (o, c, v);
}

void
kiln_oci_set_str (json_t *obj, const char *key, const char *s)
{
  if (s)
    json_object_set_new (obj, key, jstring (s));
}

json_t *
kiln_oci_strv_to_json (char *const *v)
{
  json_t *a = json_array ();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new (a, jstring (v[i]));
  return a;
}

json_t *
kiln_oci_kvlist_to_json (const struct kiln_kvlist *l)
{
  json_t *o = json_object ();
  for (size_t i = 0; i < l->n; i++)
    set_key (o, l->items[i].key, jstring (l->items[i].value));
  return o;
}

json_t *
kiln_oci_keyset_to_json (char *const *v)
{
  json_t *o = json_object ();
  for (size_t i = 0; v && v[i]; i++)
    set_key (o, v[i], json_object ());
  return o;
}

json_t *
kiln_oci_descriptor_to_json (const struct kiln_descriptor *d)
{
  json_t *o = json_object ();
  kiln_oci_set_str (o, "mediaType", d->media_type);
  json_object_set_new (o, "digest", json_string (d->digest.s));
  json_object_set_new (o, "size", json_integer (d->size));
  if (d->annotations.n)
    json_object_set_new (o, "annotations", kiln_oci_kvlist_to_json (&d->annotations));
  if (d->platform.os || d->platform.architecture || d->platform.variant)
    {
      json_t *pl = json_object ();
      kiln_oci_set_str (pl, "os", d->platform.os);
      kiln_oci_set_str (pl, "architecture", d->platform.architecture);
      kiln_oci_set_str (pl, "variant", d->platform.variant);
      json_object_set_new (o, "platform", pl);
    }
  return o;
}

bool
kiln_descriptor_equal (const struct kiln_descriptor *a, const struct kiln_descriptor *b)
{
  json_t *ja = kiln_oci_descriptor_to_json (a), *jb = kiln_oci_descriptor_to_json (b);
  bool same = json_equal (ja, jb);
  json_decref (ja);
  json_decref (jb);
  return same;
}

static int
descriptor_fields (json_t *j, const struct kiln_jpath *p, struct kiln_descriptor *d, struct kiln_error **err)
{
  kiln_autofree char *digest = NULL;
  json_t *pl = NULL;
  if (kiln_oci_get_str (j, "mediaType", p, true, &d->media_type, err) < 0
      || kiln_oci_get_str (j, "digest", p, true, &digest, err) < 0
      || kiln_oci_get_int (j, "size", p, true, &d->size, err) < 0
      || kiln_oci_get_kvlist (j, "annotations", p, &d->annotations, err) < 0
      || kiln_oci_get_obj (j, "platform", p, false, &pl, err) < 0)
    return -1;
  if (kiln_digest_parse (digest, &d->digest, err) < 0)
    return kiln_error_wrap (err, "%s: `%sdigest`", p->doc, p->prefix);
  if (d->size < 0)
    return kiln_oci_type_error (p, "size", "must not be negative", err);
  if (pl == NULL)
    return 0;
  kiln_autofree char *pre = kiln_xasprintf ("%splatform.", p->prefix);
  struct kiln_jpath pp = { p->doc, pre };
  if (kiln_oci_get_str (pl, "os", &pp, false, &d->platform.os, err) < 0
      || kiln_oci_get_str (pl, "architecture", &pp, false, &d->platform.architecture, err) < 0
      || kiln_oci_get_str (pl, "variant", &pp, false, &d->platform.variant, err) < 0)
    return -1;
  return 0;
}

int
kiln_oci_descriptor_from_json (json_t *j, const struct kiln_jpath *p, struct kiln_descriptor *out,
                               struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  if (!json_is_object (j))
    {
      /* prefix is "layers[2]."; drop the final dot to name the element itself */
      kiln_autofree char *name = kiln_xstrndup (p->prefix, strlen (p->prefix) ? strlen (p->prefix) - 1 : 0);
      return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `%s` must be an object", p->doc, name);
    }
  if (descriptor_fields (j, p, &d, err) < 0)
    {
      kiln_descriptor_clear (&d);
      return -1;
    }
  *out = d;
  return 0;
}
