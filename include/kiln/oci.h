/* kiln/oci.h - OCI image config, manifest and index as C structs, and their
 * conversion to and from JSON (src/image/oci_config.c, oci_manifest.c,
 * oci_index.c).
 *
 * Serialisation is done once, compact with sorted keys, and the same bytes
 * are hashed and stored.  Parsing validates types and caps; errors are
 * KILN_E_PARSE and name the document and field.
 *
 * Ownership, for every type here: a struct owns all its strings and arrays
 * and is freed with its _clear (which leaves it zeroed, ready for reuse);
 * _copy fills an empty dst with a deep copy; _to_json hands the caller a
 * malloc'd *out to free; _from_json fills an empty *out that the caller
 * clears, and on error leaves *out as it was (what it had parsed is freed). */
#ifndef KILN_OCI_H
#define KILN_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/kvlist.h"

/* Layers of one image: a manifest's `layers` and a config's
 * `rootfs.diff_ids` may not list more, whether read or written.  Real images
 * have 5-130 (Docker's layer store refuses more than 125 (moby
 * layer_store.go maxLayerDepth), overlayfs stacks at most 500 lower
 * directories); each layer costs a descriptor, a snapshot and an extraction,
 * so a manifest of 4 MiB listing 20000 copies of one blob is refused early. */
#define KILN_OCI_MAX_LAYERS 1000

#define KILN_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define KILN_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define KILN_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define KILN_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define KILN_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define KILN_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define KILN_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define KILN_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define KILN_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define KILN_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define KILN_MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
/* containerd's name for a zstd layer in a Docker manifest; no Docker engine reads it */
#define KILN_MT_DOCKER_LAYER_ZSTD "application/vnd.docker.image.rootfs.diff.tar.zstd"
#define KILN_MT_DOCKER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar"
#define KILN_MT_DOCKER_FOREIGN_GZIP "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define KILN_MT_OCI_NONDIST "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define KILN_MT_OCI_NONDIST_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define KILN_MT_OCI_NONDIST_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

#define KILN_ANNOT_REF_NAME "org.opencontainers.image.ref.name"
#define KILN_ANNOT_IMAGE_NAME "io.containerd.image.name"
/* On the index.json entry of an image kiln pulled by tag: the reference it
 * pulled, and the digest (an index's or a manifest's) the tag named then;
 * --pull=newer compares it with what the tag names now. */
#define KILN_ANNOT_PULL_REF "dev.kiln.pull.ref"
#define KILN_ANNOT_PULL_DIGEST "dev.kiln.pull.digest"

struct kiln_platform {
  char *os, *architecture, *variant; /* NULL when absent */
};

struct kiln_descriptor {
  char *media_type;
  struct kiln_digest digest;
  int64_t size;
  struct kiln_kvlist annotations;
  struct kiln_platform platform; /* index entries only; fields may be NULL */
};
void kiln_descriptor_clear (struct kiln_descriptor *d);
void kiln_descriptor_copy (struct kiln_descriptor *dst, const struct kiln_descriptor *src);
/* Same media type, digest, size, annotations (in any order) and platform. */
bool kiln_descriptor_equal (const struct kiln_descriptor *a, const struct kiln_descriptor *b);

struct kiln_healthcheck {
  char **test;                                             /* ["NONE"] disables; ["CMD", ...] / ["CMD-SHELL", cmd] */
  int64_t interval, timeout, start_period, start_interval; /* nanoseconds, 0 = unset */
  int retries;                                             /* 0 = unset */
};

struct kiln_history {
  char *created; /* RFC 3339, may be NULL */
  char *created_by;
  char *comment;
  bool empty_layer;
};

/* Every field of the OCI image config plus the Docker extensions that
 * BuildKit writes even with OCI media types (Healthcheck, Shell, OnBuild). */
struct kiln_image_config {
  char *created, *author, *architecture, *os, *variant;
  /* config */
  char *user;
  char **env;        /* "K=V" */
  char **entrypoint; /* NULL = unset; non-NULL empty vector = [] */
  char **cmd;        /* NULL = unset */
  char *working_dir;
  char **exposed_ports; /* "80/tcp", sorted when serialised */
  char **volumes;
  struct kiln_kvlist labels;
  char *stop_signal;
  char **shell;                         /* NULL = unset */
  char **onbuild;                       /* NULL = unset */
  struct kiln_healthcheck *healthcheck; /* NULL = unset */
  bool args_escaped;                    /* Docker's ArgsEscaped, kept if read */
  /* rootfs and history */
  char **diff_ids; /* "sha256:..." in layer order */
  struct kiln_history *history;
  size_t nhistory;
};

void kiln_image_config_clear (struct kiln_image_config *c);
void kiln_image_config_copy (struct kiln_image_config *dst, const struct kiln_image_config *src);
/* Serialised compact, keys sorted; *out malloc'd, *len its length.
 * The *_from_json parsers fill *out from scratch (its old contents are not
 * freed) and leave it untouched on failure; unknown fields are ignored,
 * JSON null counts as unset, duplicate keys are rejected. */
int kiln_image_config_to_json (const struct kiln_image_config *c, char **out, size_t *len, struct kiln_error **err);
int kiln_image_config_from_json (const char *data, size_t len, struct kiln_image_config *out, struct kiln_error **err);
/* Looks up "K" in env ("K=V"); NULL when absent. */
const char *kiln_image_config_getenv (const struct kiln_image_config *c, const char *key);
void kiln_image_config_setenv (struct kiln_image_config *c, const char *key, const char *value);
void kiln_image_config_add_history (struct kiln_image_config *c, const char *created, const char *created_by,
                                    bool empty_layer);

struct kiln_manifest {
  char *media_type; /* KILN_MT_OCI_MANIFEST or KILN_MT_DOCKER_MANIFEST */
  struct kiln_descriptor config;
  struct kiln_descriptor *layers;
  size_t nlayers;
  struct kiln_kvlist annotations;
};
void kiln_manifest_clear (struct kiln_manifest *m);
int kiln_manifest_to_json (const struct kiln_manifest *m, char **out, size_t *len, struct kiln_error **err);
/* Accepts OCI and Docker v2 schema 2 manifests; rejects indexes (use oci_index). */
int kiln_manifest_from_json (const char *data, size_t len, struct kiln_manifest *out, struct kiln_error **err);

/* The manifest format kiln build writes (--format). */
enum kiln_image_format { KILN_IMAGE_OCI = 0, KILN_IMAGE_DOCKER };
int kiln_image_format_parse (const char *s, enum kiln_image_format *out, struct kiln_error **err);
/* The manifest and config media types of a format. */
const char *kiln_image_format_manifest_type (enum kiln_image_format f);
const char *kiln_image_format_config_type (enum kiln_image_format f);
/* The media type the same layer bytes have in a manifest of format f, as
 * BuildKit's convertLayerMediaType (util/compression): Docker gzip/plain <->
 * OCI gzip/plain, Docker foreign <-> OCI non-distributable.  A zstd layer has
 * no Docker media type (only containerd's unofficial one, which Docker does
 * not read): KILN_E_UNSUPPORTED.  A type kiln does not know is returned
 * unchanged with *known false (BuildKit warns and keeps it too). */
int kiln_layer_media_type_for (const char *mt, enum kiln_image_format f, const char **out, bool *known,
                               struct kiln_error **err);

struct kiln_index {
  char *media_type; /* may be NULL in an index.json */
  struct kiln_descriptor *manifests;
  size_t nmanifests;
  struct kiln_kvlist annotations;
};
void kiln_index_clear (struct kiln_index *ix);
int kiln_index_to_json (const struct kiln_index *ix, char **out, size_t *len, struct kiln_error **err);
int kiln_index_from_json (const char *data, size_t len, struct kiln_index *out, struct kiln_error **err);

/* "sha256:..." of the layer chain per the OCI spec: chain(0) = diffid(0),
 * chain(n) = sha256(chain(n-1) + " " + diffid(n)). */
void kiln_oci_chain_id (char *const *diff_ids, size_t n, struct kiln_digest *out);

#endif
