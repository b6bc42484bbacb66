/* test_oci_format.c - --format oci|docker: the media types of a manifest,
 * its config and every layer (the same bytes), after BuildKit's
 * util/compression convertLayerMediaType. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>
#include "kiln/error.h"
#include "kiln/oci.h"

static const char *
convert (const char *mt, enum kiln_image_format f, bool *known)
{
  const char *out = NULL;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_layer_media_type_for (mt, f, &out, known, &err), 0, "%s: %s", mt, err ? err->msg : "");
  return out;
}

Test (oci_format, layer_types_map_both_ways)
{
  static const struct {
    const char *from, *oci, *docker;
  } rows[] = {
    { KILN_MT_DOCKER_LAYER_GZIP, KILN_MT_OCI_LAYER_GZIP, KILN_MT_DOCKER_LAYER_GZIP },
    { KILN_MT_OCI_LAYER_GZIP, KILN_MT_OCI_LAYER_GZIP, KILN_MT_DOCKER_LAYER_GZIP },
    { KILN_MT_DOCKER_LAYER, KILN_MT_OCI_LAYER, KILN_MT_DOCKER_LAYER },
    { KILN_MT_OCI_LAYER, KILN_MT_OCI_LAYER, KILN_MT_DOCKER_LAYER },
    { KILN_MT_DOCKER_FOREIGN_GZIP, KILN_MT_OCI_NONDIST_GZIP, KILN_MT_DOCKER_FOREIGN_GZIP },
    { KILN_MT_DOCKER_FOREIGN, KILN_MT_OCI_NONDIST, KILN_MT_DOCKER_FOREIGN },
    { KILN_MT_OCI_NONDIST_GZIP, KILN_MT_OCI_NONDIST_GZIP, KILN_MT_DOCKER_FOREIGN_GZIP },
    { KILN_MT_OCI_NONDIST, KILN_MT_OCI_NONDIST, KILN_MT_DOCKER_FOREIGN },
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    {
      bool known = false;
      cr_assert_str_eq (convert (rows[i].from, KILN_IMAGE_OCI, &known), rows[i].oci, "%s to OCI", rows[i].from);
      cr_assert (known);
      cr_assert_str_eq (convert (rows[i].from, KILN_IMAGE_DOCKER, &known), rows[i].docker, "%s to Docker",
                        rows[i].from);
      cr_assert (known);
    }
  bool known = false;
  cr_assert_str_eq (convert (KILN_MT_DOCKER_LAYER_ZSTD, KILN_IMAGE_OCI, &known), KILN_MT_OCI_LAYER_ZSTD);
  cr_assert_str_eq (convert (KILN_MT_OCI_LAYER_ZSTD, KILN_IMAGE_OCI, &known), KILN_MT_OCI_LAYER_ZSTD);
}

Test (oci_format, zstd_has_no_docker_type)
{
  const char *zstd[] = { KILN_MT_OCI_LAYER_ZSTD, KILN_MT_DOCKER_LAYER_ZSTD, KILN_MT_OCI_NONDIST_ZSTD };
  for (size_t i = 0; i < 3; i++)
    {
      const char *out = NULL;
      bool known = false;
      struct kiln_error *err = NULL;
      cr_assert_lt (kiln_layer_media_type_for (zstd[i], KILN_IMAGE_DOCKER, &out, &known, &err), 0, "%s", zstd[i]);
      cr_assert_eq (err->kind, KILN_E_UNSUPPORTED);
      cr_assert (strstr (err->msg, "zstd") != NULL, "%s", err->msg);
      kiln_error_free (&err);
    }
}

Test (oci_format, unknown_types_are_kept_and_flagged)
{
  bool known = true;
  const char *odd = "application/vnd.example.layer+tar";
  cr_assert_eq (convert (odd, KILN_IMAGE_OCI, &known), odd);
  cr_assert_not (known);
  cr_assert_eq (convert (odd, KILN_IMAGE_DOCKER, &known), odd);
  cr_assert_not (known);
}

Test (oci_format, format_names_and_document_types)
{
  enum kiln_image_format f = KILN_IMAGE_OCI;
  struct kiln_error *err = NULL;
  cr_assert_eq (kiln_image_format_parse ("docker", &f, &err), 0);
  cr_assert_eq (f, KILN_IMAGE_DOCKER);
  cr_assert_str_eq (kiln_image_format_manifest_type (f), KILN_MT_DOCKER_MANIFEST);
  cr_assert_str_eq (kiln_image_format_config_type (f), KILN_MT_DOCKER_CONFIG);
  cr_assert_eq (kiln_image_format_parse ("oci", &f, &err), 0);
  cr_assert_eq (f, KILN_IMAGE_OCI);
  cr_assert_str_eq (kiln_image_format_manifest_type (f), KILN_MT_OCI_MANIFEST);
  cr_assert_str_eq (kiln_image_format_config_type (f), KILN_MT_OCI_CONFIG);
  cr_assert_lt (kiln_image_format_parse ("v2s2", &f, &err), 0);
  cr_assert_eq (err->kind, KILN_E_USAGE);
  kiln_error_free (&err);
}
