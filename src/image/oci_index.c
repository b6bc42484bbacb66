/* oci_index.c - OCI image indexes (and index.json of a layout) <-> JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/oci.h"
#include "kiln/util.h"
#include "oci-internal.h"

#define DOC "image index"

void
kiln_index_clear (struct kiln_index *ix)
{
  free (ix->media_type);
  for (size_t i = 0; i < ix->nmanifests; i++)
    kiln_descriptor_clear (&ix->manifests[i]);
  free (ix->manifests);
  kiln_kvlist_clear (&ix->annotations);
  memset (ix, 0, sizeof *ix);
}

int
kiln_index_to_json (const struct kiln_index *ix, char **out, size_t *len, struct kiln_error **err)
{
  kiln_autojson json_t *o = json_object ();
  json_t *ms = json_array ();
  json_object_set_new (o, "schemaVersion", json_integer (2));
  kiln_oci_set_str (o, "mediaType", ix->media_type);
  for (size_t i = 0; i < ix->nmanifests; i++)
    json_array_append_new (ms, kiln_oci_descriptor_to_json (&ix->manifests[i]));
  json_object_set_new (o, "manifests", ms);
  if (ix->annotations.n)
    json_object_set_new (o, "annotations", kiln_oci_kvlist_to_json (&ix->annotations));
  return kiln_oci_dump (o, DOC, out, len, err);
}

static int
index_fields (json_t *o, struct kiln_index *ix, struct kiln_error **err)
{
  static const struct kiln_jpath p = { DOC, "" };
  json_t *mj = NULL, *e;
  size_t i;
  if (kiln_oci_check_schema_version (o, &p, err) < 0
      || kiln_oci_get_str (o, "mediaType", &p, false, &ix->media_type, err) < 0
      || kiln_oci_get_array (o, "manifests", &p, true, &mj, err) < 0
      || kiln_oci_get_kvlist (o, "annotations", &p, &ix->annotations, err) < 0)
    return -1;
  if (ix->media_type && strcmp (ix->media_type, KILN_MT_OCI_INDEX) != 0
      && strcmp (ix->media_type, KILN_MT_DOCKER_LIST) != 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "%s: `mediaType` `%.200s` is not an index", DOC, ix->media_type);
  ix->manifests = kiln_xcalloc (json_array_size (mj) + 1, sizeof *ix->manifests);
  json_array_foreach (mj, i, e)
    {
      char pre[40];
      snprintf (pre, sizeof pre, "manifests[%zu].", i);
      struct kiln_jpath pm = { DOC, pre };
      if (kiln_oci_descriptor_from_json (e, &pm, &ix->manifests[i], err) < 0)
        return -1;
      ix->nmanifests = i + 1;
    }
  return 0;
}

int
kiln_index_from_json (const char *data, size_t len, struct kiln_index *out, struct kiln_error **err)
{
  kiln_autojson json_t *o = NULL;
  struct kiln_index ix = { 0 };
  if (kiln_oci_load (data, len, DOC, &o, err) < 0)
    return -1;
  if (index_fields (o, &ix, err) < 0)
    {
      kiln_index_clear (&ix);
      return -1;
    }
  *out = ix;
  return 0;
}
