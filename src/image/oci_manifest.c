/* oci_manifest.c - OCI image manifests and Docker v2 schema 2 manifests <-> JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/oci.h"
#include "kiln/util.h"
#include "oci-internal.h"

#define DOC "image manifest"

void
kiln_manifest_clear (struct kiln_manifest *m)
{
  free (m->media_type);
  kiln_descriptor_clear (&m->config);
  for (size_t i = 0; i < m->nlayers; i++)
    kiln_descriptor_clear (&m->layers[i]);
  free (m->layers);
  kiln_kvlist_clear (&m->annotations);
  memset (m, 0, sizeof *m);
}

int
kiln_manifest_to_json (const struct kiln_manifest *m, char **out, size_t *len, struct kiln_error **err)
{
  if (m->nlayers > KILN_OCI_MAX_LAYERS)
    return kiln_error_set (err, E2BIG, KILN_E_UNSUPPORTED, "%s: %zu layers, more than the limit of %d", DOC, m->nlayers,
                           KILN_OCI_MAX_LAYERS);
  kiln_autojson json_t *o = json_object ();
  json_t *layers = json_array ();
  json_object_set_new (o, "schemaVersion", json_integer (2));
  kiln_oci_set_str (o, "mediaType", m->media_type);
  json_object_set_new (o, "config", kiln_oci_descriptor_to_json (&m->config));
  for (size_t i = 0; i < m->nlayers; i++)
    json_array_append_new (layers, kiln_oci_descriptor_to_json (&m->layers[i]));
  json_object_set_new (o, "layers", layers);
  if (m->annotations.n)
    json_object_set_new (o, "annotations", kiln_oci_kvlist_to_json (&m->annotations));
  return kiln_oci_dump (o, DOC, out, len, err);
}

/* An index handed to the manifest parser is a caller mistake worth naming. */
static int
check_media_type (json_t *o, const struct kiln_jpath *p, struct kiln_manifest *m, struct kiln_error **err)
{
  if (kiln_oci_get_str (o, "mediaType", p, false, &m->media_type, err) < 0)
    return -1;
  const char *mt = m->media_type;
  if (mt == NULL && json_object_get (o, "manifests") && !json_object_get (o, "layers"))
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: document is an image index, not a manifest", DOC);
  if (mt == NULL || strcmp (mt, KILN_MT_OCI_MANIFEST) == 0 || strcmp (mt, KILN_MT_DOCKER_MANIFEST) == 0)
    return 0;
  if (strcmp (mt, KILN_MT_OCI_INDEX) == 0 || strcmp (mt, KILN_MT_DOCKER_LIST) == 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: document is an image index (`%s`), not a manifest", DOC, mt);
  return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "%s: unsupported `mediaType` `%.200s`", DOC, mt);
}

static int
manifest_fields (json_t *o, struct kiln_manifest *m, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "" };
  static const struct kiln_jpath pc = { DOC, "config." };
  json_t *cj = NULL, *lj = NULL, *e;
  size_t i;
  if (kiln_oci_check_schema_version (o, &p, err) < 0 || check_media_type (o, &p, m, err) < 0
      || kiln_oci_get_obj (o, "config", &p, true, &cj, err) < 0
      || kiln_oci_get_array (o, "layers", &p, true, &lj, err) < 0
      || kiln_oci_get_kvlist (o, "annotations", &p, &m->annotations, err) < 0
      || kiln_oci_descriptor_from_json (cj, &pc, &m->config, err) < 0)
    return -1;
  if (json_array_size (lj) > KILN_OCI_MAX_LAYERS)
    return kiln_error_set (err, E2BIG, KILN_E_PARSE, "%s: `layers` lists %zu layers, more than the limit of %d", DOC,
                           json_array_size (lj), KILN_OCI_MAX_LAYERS);
  m->layers = kiln_xcalloc (json_array_size (lj) + 1, sizeof *m->layers);
  json_array_foreach (lj, i, e)
    {
      char pre[40];
      snprintf (pre, sizeof pre, "layers[%zu].", i);
      struct kiln_jpath pl = { DOC, pre };
      if (kiln_oci_descriptor_from_json (e, &pl, &m->layers[i], err) < 0)
        return -1;
      m->nlayers = i + 1;
    }
  return 0;
}

int
kiln_manifest_from_json (const char *data, size_t len, struct kiln_manifest *out, struct kiln_error **err)
{
  kiln_autojson json_t *o = NULL;
  struct kiln_manifest m = { 0 };
  if (kiln_oci_load (data, len, DOC, &o, err) < 0)
    return -1;
  if (manifest_fields (o, &m, err) < 0)
    {
      kiln_manifest_clear (&m);
      return -1;
    }
  *out = m;
  return 0;
}

/* ---- formats ---- */

int
kiln_image_format_parse (const char *s, enum kiln_image_format *out, struct kiln_error **err)
{
  if (strcmp (s, "oci") == 0)
    *out = KILN_IMAGE_OCI;
  else if (strcmp (s, "docker") == 0)
    *out = KILN_IMAGE_DOCKER;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "unknown image format `%s` (oci or docker)", s);
  return 0;
}

const char *
kiln_image_format_manifest_type (enum kiln_image_format f)
{
  return f == KILN_IMAGE_DOCKER ? KILN_MT_DOCKER_MANIFEST : KILN_MT_OCI_MANIFEST;
}

const char *
kiln_image_format_config_type (enum kiln_image_format f)
{
  return f == KILN_IMAGE_DOCKER ? KILN_MT_DOCKER_CONFIG : KILN_MT_OCI_CONFIG;
}

/* One row per kind of layer bytes: its OCI name, its Docker name (NULL: none)
 * and the other names it goes by. */
static const struct {
  const char *oci, *docker, *alias;
} layer_types[] = {
  { KILN_MT_OCI_LAYER_GZIP, KILN_MT_DOCKER_LAYER_GZIP, NULL },
  { KILN_MT_OCI_LAYER, KILN_MT_DOCKER_LAYER, NULL },
  { KILN_MT_OCI_LAYER_ZSTD, NULL, KILN_MT_DOCKER_LAYER_ZSTD },
  { KILN_MT_OCI_NONDIST_GZIP, KILN_MT_DOCKER_FOREIGN_GZIP, NULL },
  { KILN_MT_OCI_NONDIST, KILN_MT_DOCKER_FOREIGN, NULL },
  { KILN_MT_OCI_NONDIST_ZSTD, NULL, NULL },
};

int
kiln_layer_media_type_for (const char *mt, enum kiln_image_format f, const char **out, bool *known,
                           struct kiln_error **err)
{
  *out = mt;
  *known = false;
  for (size_t i = 0; mt && i < sizeof layer_types / sizeof *layer_types; i++)
    {
      const char *d = layer_types[i].docker, *a = layer_types[i].alias;
      if (strcmp (mt, layer_types[i].oci) != 0 && !(d && strcmp (mt, d) == 0) && !(a && strcmp (mt, a) == 0))
        continue;
      *known = true;
      if (f == KILN_IMAGE_OCI)
        *out = layer_types[i].oci;
      else if (d)
        *out = d;
      else
        return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "a zstd layer (`%s`) cannot be written in a Docker manifest",
                               mt);
      return 0;
    }
  return 0;
}
