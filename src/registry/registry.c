/* registry.c - the registry client: options, TLS material, the /v2/ ping
 * that decides https vs http and the auth scheme, platforms, document
 * kinds, blob provenance, login checks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/util.h"
#include "registry-internal.h"
#include "../image/store-internal.h"

#define CA_BUNDLE_MAX (16u << 20)

void
kiln_registry_opts_init (struct kiln_registry_opts *o)
{
  memset (o, 0, sizeof *o);
  o->tls_verify = true;
  o->retries = 3;
  o->retry_delay_ms = 1000;
  o->jobs = 4;
}

const char *
kiln_registry_api_host (const char *domain)
{
  if (strcmp (domain, "docker.io") == 0 || strcmp (domain, "index.docker.io") == 0)
    return "registry-1.docker.io";
  return domain;
}

bool
kiln_registry_host_is_loopback (const char *hp)
{
  size_t n;
  if (hp[0] == '[')
    return strncmp (hp, "[::1]", 5) == 0 && (hp[5] == '\0' || hp[5] == ':');
  n = strcspn (hp, ":");
  if (n == 9 && strncmp (hp, "localhost", 9) == 0)
    return true;
  if (strcmp (hp, "::1") == 0)
    return true;
  if (n < 4 || strncmp (hp, "127.", 4) != 0)
    return false;
  int dots = 0;
  for (size_t i = 0; i < n; i++)
    if (hp[i] == '.')
      dots++;
    else if (hp[i] < '0' || hp[i] > '9')
      return false;
  return dots == 3;
}

/* ---- TLS material from certs.d ---- */

static void
scan_cert_dir (struct kiln_registry_client *c, const char *dir, struct kiln_buf *extra)
{
  kiln_autodir DIR *d = opendir (dir);
  if (d == NULL)
    return;
  for (struct dirent *de; (de = readdir (d));)
    {
      kiln_autofree char *p = kiln_xasprintf ("%s/%s", dir, de->d_name);
      if (kiln_str_has_suffix (de->d_name, ".crt"))
        {
          kiln_autoerror struct kiln_error *e = NULL;
          size_t before = extra->len;
          if (kiln_fs_read_file (AT_FDCWD, p, CA_BUNDLE_MAX, extra, &e) < 0)
            kiln_log_warn ("ignore CA file `%s`: %s", p, e->msg);
          else if (extra->len > before && extra->buf[extra->len - 1] != '\n')
            kiln_buf_addch (extra, '\n');
        }
      else if (kiln_str_has_suffix (de->d_name, ".cert") && c->client_cert == NULL)
        {
          kiln_autofree char *key = kiln_xasprintf ("%.*s.key", (int) (strlen (p) - 5), p);
          if (access (key, R_OK) == 0)
            {
              c->client_cert = kiln_xstrdup (p);
              c->client_key = kiln_steal_ptr (&key);
            }
          else
            kiln_log_warn ("ignore client certificate `%s`: no `%s`", p, key);
        }
    }
}

static char *
default_ca_path (void)
{
  char *path = NULL;
  CURL *h = curl_easy_init ();
  if (h && curl_easy_getinfo (h, CURLINFO_CAINFO, &path) == CURLE_OK && path)
    path = kiln_xstrdup (path);
  else
    path = kiln_xstrdup ("/etc/ssl/certs/ca-certificates.crt");
  curl_easy_cleanup (h);
  return path;
}

/* CURLOPT_CAINFO replaces the system bundle, so extra CAs travel as one
 * blob: the system bundle followed by the certs.d ones. */
static void
load_tls (struct kiln_registry_client *c, const char *cert_dir)
{
  struct kiln_buf extra = KILN_BUF_INIT;
  if (cert_dir)
    scan_cert_dir (c, cert_dir, &extra);
  else
    {
      const char *bases[] = { "/etc/containers/certs.d", "/etc/docker/certs.d" };
      for (size_t i = 0; i < 2; i++)
        {
          kiln_autofree char *d = kiln_xasprintf ("%s/%s", bases[i], c->host);
          scan_cert_dir (c, d, &extra);
        }
    }
  if (extra.len)
    {
      struct kiln_buf all = KILN_BUF_INIT;
      kiln_autoerror struct kiln_error *e = NULL;
      kiln_autofree char *sys = default_ca_path ();
      if (kiln_fs_read_file (AT_FDCWD, sys, CA_BUNDLE_MAX, &all, &e) < 0)
        kiln_log_warn ("read the system CA bundle: %s", e->msg);
      kiln_buf_addch (&all, '\n');
      kiln_buf_add (&all, extra.buf, extra.len);
      c->ca_len = all.len;
      c->ca_blob = kiln_buf_detach (&all, NULL);
    }
  kiln_buf_release (&extra);
}

/* ---- client and connections ---- */

int
kiln_registry_conn_init (struct kiln_registry_conn *cn, struct kiln_registry_client *c, struct kiln_error **err)
{
  cn->c = c;
  cn->h = curl_easy_init ();
  if (cn->h == NULL)
    return kiln_error_set (err, ENOMEM, KILN_E_INTERNAL, "create a curl handle");
  return 0;
}

void
kiln_registry_conn_clear (struct kiln_registry_conn *cn)
{
  if (cn->h)
    curl_easy_cleanup (cn->h);
  cn->h = NULL;
}

void
kiln_registry_client_free (struct kiln_registry_client *c)
{
  if (c == NULL)
    return;
  free (c->host), free (c->origin);
  kiln_auth_cred_clear (&c->cred);
  free (c->ca_blob), free (c->client_cert), free (c->client_key);
  kiln_registry_challenge_clear (&c->chal);
  kiln_strv_free (c->scopes);
  if (c->token)
    explicit_bzero (c->token, strlen (c->token));
  free (c->token);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

/* Errors after which https is known not to be spoken at all (a plain-http
 * server); a certificate failure is *not* among them: no silent downgrade. */
static bool
tls_absent (CURLcode cc)
{
  return cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_WEIRD_SERVER_REPLY || cc == CURLE_RECV_ERROR
         || cc == CURLE_GOT_NOTHING;
}

static int
ping_one (struct kiln_registry_conn *cn, const char *scheme, bool retry, CURLcode *cc, struct kiln_error **err)
{
  struct kiln_registry_client *c = cn->c;
  kiln_autofree char *url = kiln_xasprintf ("%s://%s/v2/", scheme, c->host);
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  free (c->origin);
  c->origin = kiln_registry_url_origin (url);
  if (c->origin == NULL)
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid registry host `%s`", c->host);
  q.method = "GET", q.url = url, q.idempotent = retry, q.token_request = true, q.no_redirect = true;
  int r = kiln_registry_do (cn, &q, &resp, err);
  *cc = r < 0 ? resp.curl_code : CURLE_OK;
  if (r == 0 && resp.status == 401 && resp.www_auth)
    r = kiln_registry_challenge_parse (resp.www_auth, &c->chal, err);
  else if (r == 0 && resp.status != 200)
    {
      kiln_registry_status_error (&resp, err);
      r = kiln_error_wrap (err, "`%s` does not answer as a registry", url);
    }
  kiln_registry_resp_clear (&resp);
  return r;
}

static int
ping (struct kiln_registry_conn *cn, struct kiln_error **err)
{
  struct kiln_registry_client *c = cn->c;
  CURLcode cc;
  kiln_autoerror struct kiln_error *e1 = NULL;
  if (ping_one (cn, "https", !c->http_ok, &cc, &e1) == 0)
    return 0;
  if (!c->http_ok || !tls_absent (cc))
    {
      *err = kiln_steal_ptr (&e1);
      return kiln_error_code (*err);
    }
  kiln_log_debug ("registry: `%s` does not speak https; trying plain http", c->host);
  if (ping_one (cn, "http", true, &cc, err) < 0)
    return kiln_error_wrap (err, "%s; then over plain http", e1->msg);
  if (c->insecure && !kiln_registry_host_is_loopback (c->host))
    kiln_log_warn ("registry `%s` is used over plain http (--tls-verify=false)", c->host);
  return 0;
}

int
kiln_registry_client_open (const char *domain, const struct kiln_registry_opts *o, bool use_cred,
                           struct kiln_registry_client **out, struct kiln_error **err)
{
  struct kiln_registry_client *c = kiln_xcalloc (1, sizeof *c);
  struct kiln_registry_conn cn = { 0 };
  pthread_mutex_init (&c->lock, NULL);
  c->host = kiln_xstrdup (kiln_registry_api_host (domain));
  c->opts = o;
  c->insecure = !o->tls_verify;
  c->http_ok = c->insecure || kiln_registry_host_is_loopback (c->host);
  int r = 0;
  if (use_cred && (r = kiln_auth_lookup (o->auth_file, domain, &c->cred, err)) < 0)
    goto fail;
  c->have_cred = r > 0;
  load_tls (c, o->cert_dir);
  if (kiln_registry_conn_init (&cn, c, err) < 0 || ping (&cn, err) < 0)
    goto fail;
  kiln_registry_conn_clear (&cn);
  *out = c;
  return 0;
fail:
  kiln_registry_conn_clear (&cn);
  kiln_registry_client_free (c);
  return kiln_error_wrap (err, "connect to registry `%s`", domain);
}

/* ---- login ---- */

int
kiln_registry_login_check (const char *registry, const char *user, const char *password,
                           const struct kiln_registry_opts *o, struct kiln_error **err)
{
  struct kiln_registry_client *c = NULL;
  struct kiln_registry_conn cn = { 0 };
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  if (kiln_registry_client_open (registry, o, false, &c, err) < 0)
    return -1;
  c->cred.username = kiln_xstrdup (user);
  c->cred.password = kiln_xstrdup (password);
  c->have_cred = true;
  int r = kiln_registry_conn_init (&cn, c, err);
  if (r == 0 && c->chal.scheme == KILN_REG_AUTH_BEARER)
    {
      char *tok = NULL;
      long exp;
      r = kiln_registry_token_fetch (&cn, NULL, &tok, &exp, err);
      if (tok)
        explicit_bzero (tok, strlen (tok));
      free (tok);
    }
  else if (r == 0 && c->chal.scheme == KILN_REG_AUTH_BASIC)
    {
      kiln_autofree char *url = kiln_xasprintf ("%s/v2/", c->origin);
      struct kiln_registry_req q = KILN_REG_REQ_INIT;
      q.method = "GET", q.url = url, q.idempotent = true, q.no_redirect = true;
      r = kiln_registry_do (&cn, &q, &resp, err);
      if (r == 0 && resp.status != 200)
        r = kiln_registry_status_error (&resp, err);
    }
  kiln_registry_resp_clear (&resp);
  kiln_registry_conn_clear (&cn);
  kiln_registry_client_free (c);
  if (r < 0)
    return kiln_error_wrap (err, "log in to `%s` as `%s`", registry, user);
  return 0;
}

int
kiln_registry_repo_open (const char *ref, const struct kiln_registry_opts *o, struct kiln_registry_repo *out,
                         struct kiln_error **err)
{
  memset (out, 0, sizeof *out);
  if (kiln_ref_parse (ref, &out->ref, err) < 0
      || kiln_registry_client_open (out->ref.domain, o, true, &out->c, err) < 0)
    return -1;
  kiln_autofree char *scope = kiln_xasprintf ("repository:%s:pull", out->ref.path);
  kiln_registry_client_add_scope (out->c, scope);
  out->base = kiln_xasprintf ("%s/v2/%s", out->c->origin, out->ref.path);
  return kiln_registry_conn_init (&out->cn, out->c, err);
}

void
kiln_registry_repo_close (struct kiln_registry_repo *r)
{
  kiln_registry_conn_clear (&r->cn);
  kiln_registry_client_free (r->c);
  kiln_ref_clear (&r->ref);
  free (r->base);
  memset (r, 0, sizeof *r);
}

/* ---- platforms ---- */

int
kiln_registry_platform_parse (const char *s, struct kiln_platform *p, struct kiln_error **err)
{
  const char *a = strchr (s, '/');
  const char *v = a ? strchr (a + 1, '/') : NULL;
  memset (p, 0, sizeof *p);
  if (a == NULL || a == s || a[1] == '\0' || a[1] == '/' || (v && (v[1] == '\0' || strchr (v + 1, '/'))))
    return kiln_error_set (err, 0, KILN_E_USAGE, "invalid platform `%s` (expected os/arch[/variant])", s);
  p->os = kiln_xstrndup (s, (size_t) (a - s));
  p->architecture = v ? kiln_xstrndup (a + 1, (size_t) (v - a - 1)) : kiln_xstrdup (a + 1);
  p->variant = v ? kiln_xstrdup (v + 1) : NULL;
  return 0;
}

void
kiln_registry_platform_host (struct kiln_platform *p)
{
  memset (p, 0, sizeof *p);
  p->os = kiln_xstrdup ("linux");
#if defined(__x86_64__)
  p->architecture = kiln_xstrdup ("amd64");
#elif defined(__aarch64__)
  p->architecture = kiln_xstrdup ("arm64");
#elif defined(__arm__)
  p->architecture = kiln_xstrdup ("arm");
  p->variant = kiln_xstrdup ("v7");
#elif defined(__i386__)
  p->architecture = kiln_xstrdup ("386");
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  p->architecture = kiln_xstrdup ("ppc64le");
#elif defined(__s390x__)
  p->architecture = kiln_xstrdup ("s390x");
#elif defined(__riscv) && __riscv_xlen == 64
  p->architecture = kiln_xstrdup ("riscv64");
#else
  p->architecture = kiln_xstrdup ("unknown");
#endif
}

static const char *
norm_variant (const char *arch, const char *variant)
{
  if (variant == NULL && arch && strcmp (arch, "arm64") == 0)
    return "v8";
  return variant;
}

int
kiln_registry_platform_select (const struct kiln_index *ix, const struct kiln_platform *want)
{
  for (size_t i = 0; i < ix->nmanifests; i++)
    {
      const struct kiln_platform *p = &ix->manifests[i].platform;
      if (!p->os || !p->architecture || strcmp (p->os, want->os) != 0
          || strcmp (p->architecture, want->architecture) != 0)
        continue;
      const char *wv = norm_variant (want->architecture, want->variant);
      const char *pv = norm_variant (p->architecture, p->variant);
      if (wv == NULL || (pv && strcmp (wv, pv) == 0))
        return (int) i;
    }
  return -1;
}

/* ---- manifest documents ---- */

static bool
known_type (const char *t, enum kiln_registry_doc *kind)
{
  if (strcmp (t, KILN_MT_OCI_MANIFEST) == 0 || strcmp (t, KILN_MT_DOCKER_MANIFEST) == 0)
    return *kind = KILN_REG_DOC_MANIFEST, true;
  if (strcmp (t, KILN_MT_OCI_INDEX) == 0 || strcmp (t, KILN_MT_DOCKER_LIST) == 0)
    return *kind = KILN_REG_DOC_INDEX, true;
  return false;
}

int
kiln_registry_doc_kind (const char *data, size_t len, const char *content_type, enum kiln_registry_doc *kind,
                        char **media_type, struct kiln_error **err)
{
  json_error_t je;
  kiln_autojson json_t *j = json_loadb (data, len, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object (j))
    return kiln_error_set (err, 0, KILN_E_PARSE, "manifest is not a JSON object: %s", j ? "" : je.text);
  const char *mt = json_string_value (json_object_get (j, "mediaType"));
  kiln_autofree char *ct = content_type ? kiln_xstrndup (content_type, strcspn (content_type, "; ")) : NULL;
  const char *t = mt ? mt : ct;
  bool has_m = json_object_get (j, "manifests") != NULL;
  bool has_l = json_object_get (j, "layers") != NULL || json_object_get (j, "config") != NULL;
  if (has_m && has_l)
    return kiln_error_set (err, 0, KILN_E_PARSE, "ambiguous manifest: it has both `manifests` and `layers`");
  if (t == NULL || !known_type (t, kind))
    return kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "unsupported manifest media type `%s`", t ? t : "(none)");
  if ((*kind == KILN_REG_DOC_INDEX && has_l) || (*kind == KILN_REG_DOC_MANIFEST && has_m))
    return kiln_error_set (err, 0, KILN_E_PARSE, "manifest content does not match its media type `%s`", t);
  *media_type = kiln_xstrdup (t);
  return 0;
}

/* ---- provenance ---- */

static int
sources_load (int dfd, json_t **out, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_fs_read_file (dfd, "sources.json", KILN_STORE_MAX_INDEX, &b, &e) < 0)
    {
      if (e->errnum != ENOENT)
        {
          *err = kiln_steal_ptr (&e);
          return kiln_error_code (*err);
        }
    }
  *out = b.len ? json_loadb (b.buf, b.len, 0, NULL) : NULL;
  if (!json_is_object (*out))
    {
      json_decref (*out);
      *out = json_object (); /* only a hint for mounts: a broken file is rebuilt */
    }
  return 0;
}

int
kiln_registry_sources_add (struct kiln_store *st, const struct kiln_digest *blobs, size_t n, const char *repo,
                           struct kiln_error **err)
{
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), "kiln", 0755, err);
  kiln_autojson json_t *doc = NULL;
  if (dfd < 0 || kiln_store_lock (st, LOCK_EX, err) < 0)
    return -1;
  int r = sources_load (dfd, &doc, err);
  for (size_t i = 0; r == 0 && i < n; i++)
    {
      json_t *a = json_object_get (doc, blobs[i].s);
      if (!json_is_array (a))
        json_object_set_new (doc, blobs[i].s, a = json_array ());
      size_t k;
      json_t *v;
      bool have = false;
      json_array_foreach (a, k, v)
        have = have || (json_is_string (v) && strcmp (json_string_value (v), repo) == 0);
      if (!have)
        json_array_append_new (a, json_string (repo));
    }
  if (r == 0)
    {
      kiln_autofree char *text = json_dumps (doc, JSON_COMPACT | JSON_SORT_KEYS);
      r = kiln_fs_write_atomic (dfd, "sources.json", text, strlen (text), 0644, err);
    }
  kiln_store_unlock (st);
  return r;
}

char **
kiln_registry_sources_get (struct kiln_store *st, const struct kiln_digest *d)
{
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autoclose int dfd = kiln_fs_open_beneath (kiln_store_dirfd (st), "kiln", O_RDONLY | O_DIRECTORY, 0, &e);
  kiln_autojson json_t *doc = NULL;
  char **out = kiln_xcalloc (1, sizeof *out);
  if (dfd < 0 || sources_load (dfd, &doc, &e) < 0)
    return out;
  size_t k;
  json_t *v;
  json_array_foreach (json_object_get (doc, d->s), k, v)
    if (json_is_string (v))
      kiln_strv_push (&out, json_string_value (v));
  return out;
}
