/* oci-internal.h - jansson helpers shared by oci_config.c, oci_manifest.c,
 * oci_index.c and the store.  Parsing goes through the typed getters only,
 * so every type failure becomes one KILN_E_PARSE error of the form
 * "<document>: `<field path>` must be <what>". */
#ifndef KILN_OCI_INTERNAL_H
#define KILN_OCI_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include "kiln/oci.h"

/* Where a getter is reading: doc names the document ("image config"),
 * prefix the path of the enclosing object ("config.", "layers[2]."). */
struct kiln_jpath {
  const char *doc;
  const char *prefix;
};

int kiln_oci_type_error (const struct kiln_jpath *p, const char *key, const char *what, struct kiln_error **err);
/* Parses data as a JSON object (duplicate keys rejected); *out owned by the caller. */
int kiln_oci_load (const char *data, size_t len, const char *doc, json_t **out, struct kiln_error **err);
/* Serialises compact with sorted keys. */
int kiln_oci_dump (json_t *j, const char *doc, char **out, size_t *len, struct kiln_error **err);

/* Getters: an absent key (or JSON null) leaves *out untouched and returns 0,
 * unless required, which fails with "is required". */
int kiln_oci_get_str (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, char **out,
                      struct kiln_error **err);
int kiln_oci_get_strv (json_t *obj, const char *key, const struct kiln_jpath *p, char ***out, struct kiln_error **err);
/* An object whose keys are the values ({"80/tcp":{}}); values must be objects. */
int kiln_oci_get_keyset (json_t *obj, const char *key, const struct kiln_jpath *p, char ***out,
                         struct kiln_error **err);
int kiln_oci_get_kvlist (json_t *obj, const char *key, const struct kiln_jpath *p, struct kiln_kvlist *out,
                         struct kiln_error **err);
int kiln_oci_get_int (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, int64_t *out,
                      struct kiln_error **err);
int kiln_oci_get_bool (json_t *obj, const char *key, const struct kiln_jpath *p, bool *out, struct kiln_error **err);
/* The member key as an object (NULL when absent or null); fails on another type. */
int kiln_oci_get_obj (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, json_t **out,
                      struct kiln_error **err);
int kiln_oci_get_array (json_t *obj, const char *key, const struct kiln_jpath *p, bool required, json_t **out,
                        struct kiln_error **err);
int kiln_oci_check_schema_version (json_t *root, const struct kiln_jpath *p, struct kiln_error **err);

/* The *_to_json functions and kiln_oci_set_str write strings that are not
 * UTF-8 through kiln_str_utf8_coerce (keys too), as Go's encoding/json. */
json_t *kiln_oci_strv_to_json (char *const *v);
json_t *kiln_oci_kvlist_to_json (const struct kiln_kvlist *l);
json_t *kiln_oci_keyset_to_json (char *const *v);
json_t *kiln_oci_descriptor_to_json (const struct kiln_descriptor *d);
/* Parses one descriptor; p->prefix names it ("config.", "layers[0]."). */
int kiln_oci_descriptor_from_json (json_t *j, const struct kiln_jpath *p, struct kiln_descriptor *out,
                                   struct kiln_error **err);
/* Sets key to a copy of s when s is non-NULL. */
void kiln_oci_set_str (json_t *obj, const char *key, const char *s);

#endif
