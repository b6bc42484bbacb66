/* kiln/registry.h - the OCI distribution client: pull images into the store,
 * push images from it, verify credentials for `kiln login`.
 *
 * Transport rules: TLS verification is always
 * on unless tls_verify is false; plain http is tried only for loopback hosts
 * or with tls_verify false, and only after https failed to connect.  Redirects
 * are followed by kiln, never by curl, and credentials go only to the
 * registry's own scheme+host+port and to the token realm.  No secret appears
 * in an error message or a log line.
 *
 * Ownership: options and everything they point to are borrowed for the
 * call, except by kiln_registry_install_fetcher, which keeps o (see
 * there).  Out descriptors are cleared by the caller (kiln_descriptor_clear);
 * out buffers are the caller's to release; *repo is malloc'd for the caller.
 * kiln_registry_api_host returns either its argument or a static string. */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/store.h"

enum kiln_registry_event {
  KILN_REGISTRY_BLOB_PRESENT,  /* pull: already in the store; push: registry has it */
  KILN_REGISTRY_BLOB_FETCHED,  /* pull: downloaded and verified */
  KILN_REGISTRY_BLOB_MOUNTED,  /* push: cross-repository mount */
  KILN_REGISTRY_BLOB_UPLOADED, /* push: uploaded */
  KILN_REGISTRY_MANIFEST_DONE, /* the manifest was stored / pushed */
};

/* Called from worker threads (one call at a time per blob); what is a
 * "sha256:..." string. */
typedef void (*kiln_registry_event_fn) (void *opaque, enum kiln_registry_event ev, const char *what);

/* Pull: where a layer's tar goes besides the store while it downloads (a
 * build extracts it into a snapshot on the way).  begin is called before
 * the download of a layer the store lacks, with the chain diff_ids[0..n)
 * that ends with it, and returns the layer's stream or NULL when it is not
 * wanted; decompressed says the bytes written are the decompressed tar
 * (else the blob's own bytes).  write takes every byte in order and never
 * fails the download; commit is called once the blob is verified and
 * stored (its failure is only a warning: the blob is there), abort when the
 * download failed or starts over.  Calls for one layer never overlap (write
 * runs on the layer's inflate thread, the others on its download thread). */
struct kiln_registry_layer_sink {
  void *(*begin) (void *opaque, char *const *diff_ids, size_t n, const struct kiln_descriptor *layer,
                  bool decompressed);
  void (*write) (void *stream, const void *data, size_t len);
  int (*commit) (void *stream, struct kiln_error **err);
  void (*abort) (void *stream);
  void *opaque;
};

struct kiln_registry_opts {
  const char *platform;                              /* "os/arch[/variant]"; NULL = the host's */
  bool tls_verify;                                   /* false = --tls-verify=false */
  int retries;                                       /* extra attempts of a failed request (default 3) */
  unsigned retry_delay_ms;                           /* first backoff delay, doubled each time (default 1000) */
  const char *auth_file;                             /* NULL = the default search (see auth.h) */
  const char *cert_dir;                              /* NULL = /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST */
  int jobs;                                          /* blobs transferred in parallel (default 4) */
  int64_t chunk_size;                                /* push: blobs larger than this go in PATCH chunks of
                               * max(this, OCI-Chunk-Min-Length); 0 = 64 MiB / 32 MiB */
  bool lazy;                                         /* pull: manifest and config only; missing layers are
                               * fetched when opened (kiln_registry_fetch_blob) */
  const struct kiln_registry_layer_sink *layer_sink; /* pull; may be NULL */
  kiln_registry_event_fn on_event;                   /* may be NULL */
  void *opaque;
};

/* Fills o with the defaults above. */
void kiln_registry_opts_init (struct kiln_registry_opts *o);

/* Pulls ref ("busybox", "host:5000/a/b:tag", "...@sha256:...") into the
 * store: picks o->platform from an index, fetches config and layers (layers
 * already present are not fetched), verifies every digest, size and diffID,
 * and tags the manifest under the normalised reference (kiln_ref_string), so
 * kiln_store_resolve finds it afterwards.  manifest_out (optional) receives
 * the image manifest's descriptor; the caller clears it. */
int kiln_registry_pull (struct kiln_store *st, const char *ref, const struct kiln_registry_opts *o,
                        struct kiln_descriptor *manifest_out, struct kiln_error **err);

/* The digest ref's tag names now in its registry: a HEAD of the manifest
 * (the server's Docker-Content-Digest), or a GET hashed here when the
 * server sends none.  One attempt, no retries: callers that ask have a local
 * copy to go on with. */
int kiln_registry_tag_digest (const char *ref, const struct kiln_registry_opts *o, struct kiln_digest *out,
                              struct kiln_error **err);

/* Pushes the store image `image` (name, digest or prefix) to dest (NULL =
 * the image's own name).  Blobs, then config, then the manifest.
 * digest_out (optional) receives the pushed manifest's digest. */
int kiln_registry_push (struct kiln_store *st, const char *image, const char *dest, const struct kiln_registry_opts *o,
                        struct kiln_digest *digest_out, struct kiln_error **err);

/* Pushes the manifest md of the store (which need not be tagged) as
 * target ("host/repo:tag").  Blobs the registry has (HEAD) or can mount
 * are not read, so lazy blobs are fetched only when they must be uploaded. */
int kiln_registry_push_manifest (struct kiln_store *st, const struct kiln_descriptor *md, const char *target,
                                 const struct kiln_registry_opts *o, struct kiln_digest *digest_out,
                                 struct kiln_error **err);

/* Lazy blobs (see kiln_store_set_fetcher). */
/* True when d is not in the store but kiln/sources.json names a repository
 * that has it. */
bool kiln_registry_blob_remote (struct kiln_store *st, const struct kiln_digest *d);
/* Fetches d into the store from a repository sources.json names for it
 * (each in turn until one succeeds), verifying its digest while it streams.
 * KILN_E_NOTFOUND when no repository is known. */
int kiln_registry_fetch_blob (struct kiln_store *st, const struct kiln_digest *d, const struct kiln_registry_opts *o,
                              struct kiln_error **err);
/* Installs kiln_registry_fetch_blob as the store's fetcher; o must outlive
 * the store (or the next call). */
void kiln_registry_install_fetcher (struct kiln_store *st, const struct kiln_registry_opts *o);

/* Registry cache import: the image manifest ref names (by tag or digest;
 * no index) and its config blob, verified, into memory; no layer is read.
 * *repo (optional) receives "domain/path".  KILN_E_NOTFOUND on a 404. */
int kiln_registry_get_documents (const char *ref, const struct kiln_registry_opts *o, struct kiln_buf *manifest,
                                 struct kiln_buf *config, char **repo, struct kiln_error **err);
/* Notes in kiln/sources.json that blobs exist at repo ("domain/path"), so a
 * push can mount them and a lazy fetch knows where to get them. */
int kiln_registry_note_blobs (struct kiln_store *st, const struct kiln_digest *blobs, size_t n, const char *repo,
                              struct kiln_error **err);

/* Checks user/password against registry's /v2/ (Basic, or a token request
 * at the Bearer realm).  KILN_E_AUTH when rejected. */
int kiln_registry_login_check (const char *registry, const char *user, const char *password,
                               const struct kiln_registry_opts *o, struct kiln_error **err);

/* The API host of a reference domain: "docker.io" -> "registry-1.docker.io". */
const char *kiln_registry_api_host (const char *domain);

#endif
