/* registry-internal.h - what registry*.c share: the per-registry client, the
 * per-thread connection, one HTTP exchange, and the pure helpers that
 * tests/test_registry.c exercises. */
#ifndef KILN_REGISTRY_INTERNAL_H
#define KILN_REGISTRY_INTERNAL_H

#include <stdatomic.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/oci.h"
#include "kiln/ref.h"
#include "kiln/registry.h"

#define KILN_REG_MAX_MANIFEST (4u << 20)
#define KILN_REG_MAX_CONFIG (4u << 20)
#define KILN_REG_MAX_TOKEN (1u << 20)
#define KILN_REG_MAX_ERROR (1u << 20)
/* Response headers (status line included), per response: one line, and all
 * of them.  Real registries send < 4 KiB (a signed storage URL in
 * `Location` is the longest, 1-8 KiB); libcurl's own caps are 100 KiB per
 * line and, since 8.3, 300 KiB in all, so these trip first with an error
 * that names the registry. */
#define KILN_REG_MAX_HEADER_LINE (64u << 10)
#define KILN_REG_MAX_HEADERS (256u << 10)
#define KILN_REG_MAX_REDIRECTS 10
#define KILN_REG_MAX_BACKOFF_MS 30000u

enum kiln_registry_scheme { KILN_REG_AUTH_NONE, KILN_REG_AUTH_BASIC, KILN_REG_AUTH_BEARER };

/* A parsed WWW-Authenticate challenge (the first one given). */
struct kiln_registry_challenge {
  enum kiln_registry_scheme scheme;
  char *realm, *service, *scope, *error;
};
void kiln_registry_challenge_clear (struct kiln_registry_challenge *c);
/* Parses `Bearer realm="..",service="..",scope="..",error=".."` or `Basic
 * realm=".."`; unknown schemes fail with KILN_E_AUTH. */
int kiln_registry_challenge_parse (const char *header, struct kiln_registry_challenge *out, struct kiln_error **err);

/* One registry: where it is, how to authenticate; shared by the threads of
 * one operation (token state under lock). */
struct kiln_registry_client {
  char *host;    /* API host[:port] */
  char *origin;  /* "https://host:port" (default ports written out) after the ping */
  bool insecure; /* --tls-verify=false */
  bool http_ok;  /* loopback or insecure: plain http may be tried */
  const struct kiln_registry_opts *opts;
  struct kiln_auth_cred cred;
  bool have_cred;
  char *ca_blob; /* system CAs + certs.d, when certs.d has any */
  size_t ca_len;
  char *client_cert, *client_key;
  pthread_mutex_t lock;
  struct kiln_registry_challenge chal;
  char **scopes; /* "repository:NAME:ACTIONS" wanted by this operation */
  char *token;
  unsigned long long token_expiry_ns;
  unsigned token_gen;
};

/* A thread's connection: its own curl handle over the shared client. */
struct kiln_registry_conn {
  struct kiln_registry_client *c;
  CURL *h;
  bool fresh; /* the next request opens a new connection (the last one failed) */
};

typedef int (*kiln_registry_sink) (void *opaque, const void *data, size_t len, struct kiln_error **err);

struct kiln_registry_req {
  const char *method; /* GET HEAD PUT POST PATCH DELETE */
  const char *url;    /* absolute */
  const char *accept, *content_type, *content_range;
  int64_t range_from; /* > 0: sends `Range: bytes=N-` */
  /* request body: memory (data/len) or a file range (fd >= 0) */
  const void *data;
  int fd;
  int64_t off, len;
  bool has_body;
  size_t body_max;         /* cap of a 2xx body kept in resp.body (0: discard it) */
  kiln_registry_sink sink; /* or streams a 2xx body here */
  void *opaque;
  int64_t max_size; /* CURLOPT_MAXFILESIZE when > 0 */
  bool idempotent;  /* retried on connect errors, 408/429/5xx */
  bool no_redirect;
  bool token_request;      /* to the realm: no challenge handling */
  const char *auth_header; /* token_request: sent only to auth_origin */
  const char *auth_origin;
};
#define KILN_REG_REQ_INIT                                                                                              \
  {                                                                                                                    \
    .fd = -1                                                                                                           \
  }

struct kiln_registry_resp {
  long status;
  char *url; /* the last hop's URL */
  char *location, *content_type, *digest, *range, *content_range, *www_auth, *retry_after, *chunk_min;
  struct kiln_buf body; /* 2xx body (req.body_max) or the error body (1 MiB) */
  struct kiln_error *sink_err;
  int curl_code; /* CURLcode of a failed kiln_registry_do */
};
void kiln_registry_resp_clear (struct kiln_registry_resp *r);
/* Records one response header line of n bytes in r (curl's header
 * callback): a status line resets the headers kiln reads. */
void kiln_registry_resp_header (struct kiln_registry_resp *r, const char *data, size_t n);

/* Sends req: follows redirects of GET/HEAD itself (auth only to the
 * registry's origin), answers Bearer/Basic challenges (one new token per
 * request), retries idempotent requests with backoff.  Returns 0 when a
 * response arrived (any status: check resp->status), < 0 on a transport
 * failure, a sink failure or an auth failure. */
int kiln_registry_do (struct kiln_registry_conn *cn, const struct kiln_registry_req *req,
                      struct kiln_registry_resp *resp, struct kiln_error **err);
/* "HTTP 500 (UNKNOWN: message)" from a response, kind by status. */
int kiln_registry_status_error (const struct kiln_registry_resp *resp, struct kiln_error **err);

int kiln_registry_conn_init (struct kiln_registry_conn *cn, struct kiln_registry_client *c, struct kiln_error **err);
void kiln_registry_conn_clear (struct kiln_registry_conn *cn);

/* Creates the client for a reference domain, reads credentials and TLS
 * material, pings /v2/ (https, then http only where allowed). */
int kiln_registry_client_open (const char *domain, const struct kiln_registry_opts *o, bool use_cred,
                               struct kiln_registry_client **out, struct kiln_error **err);
void kiln_registry_client_free (struct kiln_registry_client *c);

/* One repository to pull from, with its connection open: ref parsed, a
 * client carrying the repository's pull scope, base "ORIGIN/v2/PATH". */
struct kiln_registry_repo {
  struct kiln_ref ref;
  struct kiln_registry_client *c;
  struct kiln_registry_conn cn;
  char *base;
};
int kiln_registry_repo_open (const char *ref, const struct kiln_registry_opts *o, struct kiln_registry_repo *out,
                             struct kiln_error **err);
/* Closes and frees what _open made; a zeroed repo is fine. */
void kiln_registry_repo_close (struct kiln_registry_repo *r);
/* Adds a scope (deduplicated) the next token must carry. */
void kiln_registry_client_add_scope (struct kiln_registry_client *c, const char *scope);

/* The Authorization header for a request to the registry origin (NULL =
 * none); refetches the token when expired or gen_seen says it failed.
 * *gen receives the generation of the token used. */
int kiln_registry_auth_header (struct kiln_registry_conn *cn, bool force_new, unsigned *gen, char **out,
                               struct kiln_error **err);
/* Handles a 401: merges the challenge's scope, drops token generation gen. */
int kiln_registry_auth_challenged (struct kiln_registry_client *c, const char *www_auth, unsigned gen,
                                   struct kiln_error **err);
/* "Basic base64(user:pass)"; caller zeroes and frees. */
char *kiln_registry_basic_header (const char *user, const char *pass);
/* Parses a token response ({"token"|"access_token", "expires_in"}); *expires_s >= 60. */
int kiln_registry_token_parse (const char *body, size_t len, char **token, long *expires_s, struct kiln_error **err);
/* Fetches a token for scopes from the realm; used by login (scopes may be NULL). */
int kiln_registry_token_fetch (struct kiln_registry_conn *cn, char *const *scopes, char **token, long *expires_s,
                               struct kiln_error **err);

/* ---- pure helpers (unit tested) ---- */
/* "scheme://host:port" of an absolute URL, lowercase, default port explicit; NULL when not a URL. */
char *kiln_registry_url_origin (const char *url);
/* Resolves a Location value (absolute, "//host/..", "/path", relative) against base. */
char *kiln_registry_url_resolve (const char *base, const char *loc);
/* Appends "name=value" (value URL-encoded) to the query of url. */
char *kiln_registry_url_add_query (const char *url, const char *name, const char *value);
/* True for localhost, 127.0.0.0/8 and ::1, with or without a port. */
bool kiln_registry_host_is_loopback (const char *hostport);
/* Parses "bytes 100-199/200" (strict); returns 0 and fills, < 0 otherwise. */
int kiln_registry_parse_content_range (const char *s, int64_t *start, int64_t *end, int64_t *total);
/* Parses an upload status "0-123" (or "bytes=0-123"); *next = 124.  An end
 * at or past sent (the bytes sent so far), a start other than 0, a number
 * that overflows or anything else is invalid. */
int kiln_registry_parse_upload_range (const char *s, int64_t sent, int64_t *next);
/* A header holding a size (OCI-Chunk-Min-Length): decimal digits only, no
 * overflow; < 0 otherwise. */
int kiln_registry_parse_size (const char *s, int64_t *out);
/* Retry-After as milliseconds (delta-seconds or HTTP-date), capped at
 * cap_ms without overflow (a huge delay or a date far ahead gives cap_ms);
 * -1 when absent, invalid or in the past. */
long kiln_registry_parse_retry_after (const char *s, long cap_ms);
/* Backoff before attempt n (0-based): delay * 2^n + up to 25 % jitter, capped. */
unsigned kiln_registry_backoff_ms (unsigned delay_ms, int n);
/* Parses "os/arch[/variant]"; fills p (caller clears). */
int kiln_registry_platform_parse (const char *s, struct kiln_platform *p, struct kiln_error **err);
/* The host's platform ("linux/amd64", ...). */
void kiln_registry_platform_host (struct kiln_platform *p);
/* Index of the entry of ix that matches want (arm64 without variant = v8); -1 when none. */
int kiln_registry_platform_select (const struct kiln_index *ix, const struct kiln_platform *want);

enum kiln_registry_doc { KILN_REG_DOC_MANIFEST, KILN_REG_DOC_INDEX };
/* Classifies a fetched manifest document by its mediaType (or the
 * Content-Type when the document has none); rejects unknown types and
 * ambiguous documents (both `manifests` and `layers`/`config`). */
int kiln_registry_doc_kind (const char *data, size_t len, const char *content_type, enum kiln_registry_doc *kind,
                            char **media_type, struct kiln_error **err);
/* Downloads layer d of the repository at base ("ORIGIN/v2/PATH") on cn into
 * the store, checked against its digest (and diff_ids[index], its diffID,
 * when diff_ids is not NULL); with index < SIZE_MAX and a layer sink in the
 * client's options, the sink gets the tar of the chain diff_ids[0..index]. */
int kiln_registry_download_layer (struct kiln_store *st, struct kiln_registry_conn *cn, const char *base,
                                  const struct kiln_descriptor *d, char *const *diff_ids, size_t index,
                                  struct kiln_error **err);
/* Sleeps ms milliseconds, through signals (a retry's backoff). */
void kiln_registry_sleep_ms (unsigned long ms);

/* Downloads blob d from repository path (no domain) of c into the store:
 * resumed with Range, digest verified on commit, size checked unless
 * d->size < 0; a compressed layer's diffID is not checked. */
int kiln_registry_download_blob (struct kiln_store *st, struct kiln_registry_client *c, const char *path,
                                 const struct kiln_descriptor *d, struct kiln_error **err);

/* ---- provenance (ROOT/kiln/sources.json) ---- */
/* Records that blobs came from / exist at "registry/repository". */
int kiln_registry_sources_add (struct kiln_store *st, const struct kiln_digest *blobs, size_t n, const char *repo,
                               struct kiln_error **err);
/* The repositories known to hold d (NULL-terminated, caller frees). */
char **kiln_registry_sources_get (struct kiln_store *st, const struct kiln_digest *d);

/* GET of a small document (manifest, config, token) into out, capped at max;
 * *ctype (optional) receives the Content-Type. */
int kiln_registry_get_small (struct kiln_registry_conn *cn, const char *url, const char *accept, size_t max,
                             struct kiln_buf *out, char **ctype, struct kiln_error **err);

/* GET of a document whose digest is known (a manifest by digest, a config)
 * into out: bytes that do not match are fetched once more before the
 * mismatch is an error (kiln_registry_digest_mismatch).  what: "manifest",
 * "config". */
int kiln_registry_get_verified (struct kiln_registry_conn *cn, const char *url, const char *accept, size_t max,
                                const char *what, const char *want, struct kiln_buf *out, char **ctype,
                                struct kiln_error **err);
/* KILN_E_DIGEST: "WHAT `want`: digest mismatch: got `got` from registry
 * `registry` (why)"; why may be NULL. */
int kiln_registry_digest_mismatch (struct kiln_error **err, const char *what, const char *want, const char *got,
                                   const char *registry, const char *why);

/* Work shared by a few transfer threads: each takes the next item until
 * all are taken or one failed; the first error is kept. */
struct kiln_registry_pool {
  atomic_size_t next;
  atomic_bool failed;
  pthread_mutex_t lock;
  struct kiln_error *err;
};
#define KILN_REG_MAX_JOBS 16
/* The next item index, or n when there is none left (or a worker failed). */
size_t kiln_registry_pool_next (struct kiln_registry_pool *q, size_t n);
/* Records *e (if set) as the pool's error unless one is there; frees *e. */
void kiln_registry_pool_fail (struct kiln_registry_pool *q, struct kiln_error **e);
/* Runs worker(arg) on n threads (at most KILN_REG_MAX_JOBS; in the caller
 * when none can start), waits, and returns the first error. */
int kiln_registry_pool_run (struct kiln_registry_pool *q, int n, void *(*worker) (void *), void *arg,
                            struct kiln_error **err);

#endif
