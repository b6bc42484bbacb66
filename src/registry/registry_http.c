/* registry_http.c - one HTTP exchange with a registry over libcurl: manual
 * redirects with per-hop auth decisions, challenge answering, retries. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "kiln/fetch.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/util.h"
#include "registry-internal.h"

/* The URL without its query (upload URLs carry opaque state) for logs. */
static char *
url_for_log (const char *url)
{
  return kiln_xstrndup (url, strcspn (url, "?#"));
}

/* ---- responses ---- */

void
kiln_registry_resp_clear (struct kiln_registry_resp *r)
{
  free (r->url), free (r->location), free (r->content_type), free (r->digest), free (r->range);
  free (r->content_range), free (r->www_auth), free (r->retry_after), free (r->chunk_min);
  kiln_buf_release (&r->body);
  kiln_error_free (&r->sink_err);
  memset (r, 0, sizeof *r);
  r->body = (struct kiln_buf) KILN_BUF_INIT;
}

/* Keeps only printable text from the registry, capped, so an error body
 * cannot smuggle terminal escapes into our output. */
static char *
sanitize (const char *s, size_t max)
{
  struct kiln_buf b = KILN_BUF_INIT;
  for (; *s && b.len < max; s++)
    kiln_buf_addch (&b, ((unsigned char) *s < 0x20 || *s == 0x7f) ? ' ' : *s);
  return kiln_buf_detach (&b, NULL);
}

int
kiln_registry_status_error (const struct kiln_registry_resp *resp, struct kiln_error **err)
{
  enum kiln_errkind kind = KILN_E_NET;
  if (resp->status == 401 || resp->status == 403)
    kind = KILN_E_AUTH;
  else if (resp->status == 404)
    kind = KILN_E_NOTFOUND;
  kiln_autojson json_t *j = resp->body.len ? json_loadb (resp->body.buf, resp->body.len, 0, NULL) : NULL;
  json_t *e0 = json_array_get (json_object_get (j, "errors"), 0);
  const char *code = json_string_value (json_object_get (e0, "code"));
  const char *msg = json_string_value (json_object_get (e0, "message"));
  if (code)
    {
      kiln_autofree char *c = sanitize (code, 64), *m = sanitize (msg ? msg : "", 300);
      return kiln_error_set (err, 0, kind, "HTTP %ld (%s%s%s)", resp->status, c, *m ? ": " : "", m);
    }
  return kiln_error_set (err, 0, kind, "HTTP %ld", resp->status);
}

/* ---- one transfer ---- */

struct xfer {
  const struct kiln_registry_req *req;
  struct kiln_registry_resp *resp;
  int64_t pos;         /* request body position */
  const char *url;     /* this hop's */
  size_t header_bytes; /* of the current response */
};

/* False (and resp->sink_err set) once a response's headers pass
 * KILN_REG_MAX_HEADER_LINE or KILN_REG_MAX_HEADERS: a registry, or a proxy
 * in between, must not make kiln keep unbounded headers. */
static bool
header_within_limits (struct xfer *x, size_t n)
{
  x->header_bytes += n;
  if (n <= KILN_REG_MAX_HEADER_LINE && x->header_bytes <= KILN_REG_MAX_HEADERS)
    return true;
  kiln_autofree char *lu = url_for_log (x->url);
  if (x->resp->sink_err == NULL && n > KILN_REG_MAX_HEADER_LINE)
    kiln_error_set (&x->resp->sink_err, E2BIG, KILN_E_NET,
                    "%s `%s`: response header line of %zu bytes, more than the limit of %u", x->req->method, lu, n,
                    KILN_REG_MAX_HEADER_LINE);
  else if (x->resp->sink_err == NULL)
    kiln_error_set (&x->resp->sink_err, E2BIG, KILN_E_NET,
                    "%s `%s`: response headers larger than the limit of %u bytes", x->req->method, lu,
                    KILN_REG_MAX_HEADERS);
  return false;
}

static void
set_header (char **slot, const char *v, size_t n)
{
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  while (n > 0 && (*v == ' ' || *v == '\t'))
    v++, n--;
  free (*slot);
  *slot = kiln_xstrndup (v, n);
}

void
kiln_registry_resp_header (struct kiln_registry_resp *r, const char *data, size_t n)
{
  static const struct {
    const char *name;
    size_t off;
  } hs[] = {
    { "location", offsetof (struct kiln_registry_resp, location) },
    { "content-type", offsetof (struct kiln_registry_resp, content_type) },
    { "docker-content-digest", offsetof (struct kiln_registry_resp, digest) },
    { "range", offsetof (struct kiln_registry_resp, range) },
    { "content-range", offsetof (struct kiln_registry_resp, content_range) },
    { "www-authenticate", offsetof (struct kiln_registry_resp, www_auth) },
    { "retry-after", offsetof (struct kiln_registry_resp, retry_after) },
    { "oci-chunk-min-length", offsetof (struct kiln_registry_resp, chunk_min) },
  };
  if (n > 5 && strncmp (data, "HTTP/", 5) == 0)
    {
      /* a new response (after 100 Continue): forget the previous headers */
      for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        {
          char **slot = (char **) ((char *) r + hs[i].off);
          free (*slot);
          *slot = NULL;
        }
      /* "HTTP/x SSS ...": three digits, nothing longer (curl checked the line) */
      const char *sp = memchr (data, ' ', n);
      size_t rest = sp ? n - (size_t) (sp + 1 - data) : 0;
      r->status = 0;
      for (size_t i = 0; i < 3 && i < rest && sp[1 + i] >= '0' && sp[1 + i] <= '9'; i++)
        r->status = r->status * 10 + (sp[1 + i] - '0');
      return;
    }
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    {
      size_t l = strlen (hs[i].name);
      if (n > l && data[l] == ':' && strncasecmp (data, hs[i].name, l) == 0
          && !(hs[i].off == offsetof (struct kiln_registry_resp, www_auth) && r->www_auth))
        set_header ((char **) ((char *) r + hs[i].off), data + l + 1, n - l - 1);
    }
}

static size_t
header_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  size_t n = size * nmemb;
  if (n > 5 && strncmp (data, "HTTP/", 5) == 0)
    x->header_bytes = 0;
  if (!header_within_limits (x, n))
    return 0;
  kiln_registry_resp_header (x->resp, data, n);
  return n;
}

static size_t
write_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  struct kiln_registry_resp *r = x->resp;
  size_t n = size * nmemb;
  if (r->status < 200 || r->status > 299)
    {
      /* error bodies are only for the message: keep the first 1 MiB */
      if (r->body.len < KILN_REG_MAX_ERROR)
        kiln_buf_add (&r->body, data, n < KILN_REG_MAX_ERROR - r->body.len ? n : KILN_REG_MAX_ERROR - r->body.len);
      return n;
    }
  if (x->req->sink)
    return x->req->sink (x->req->opaque, data, n, &r->sink_err) < 0 ? 0 : n;
  if (x->req->body_max == 0)
    return n;
  if (n > x->req->body_max - r->body.len)
    {
      /* a manifest, config or token (KILN_REG_MAX_*): name which limit */
      kiln_autofree char *lu = url_for_log (x->url);
      kiln_error_set (&r->sink_err, EFBIG, KILN_E_NET, "%s `%s`: response larger than the limit of %zu bytes",
                      x->req->method, lu, x->req->body_max);
      return 0;
    }
  kiln_buf_add (&r->body, data, n);
  return n;
}

static size_t
read_cb (char *buf, size_t size, size_t nmemb, void *opaque)
{
  struct xfer *x = opaque;
  const struct kiln_registry_req *q = x->req;
  size_t want = size * nmemb;
  if ((int64_t) want > q->len - x->pos)
    want = (size_t) (q->len - x->pos);
  if (want == 0)
    return 0;
  if (q->fd < 0)
    {
      memcpy (buf, (const char *) q->data + x->pos, want);
      x->pos += (int64_t) want;
      return want;
    }
  ssize_t r;
  do
    r = pread (q->fd, buf, want, q->off + x->pos);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return CURL_READFUNC_ABORT;
  x->pos += r;
  return (size_t) r;
}

static void
setup_tls (struct kiln_registry_conn *cn, const char *url)
{
  struct kiln_registry_client *c = cn->c;
  kiln_autofree char *origin = kiln_registry_url_origin (url);
  bool own = origin && c->origin && strcmp (origin, c->origin) == 0;
  if (c->insecure && own)
    {
      curl_easy_setopt (cn->h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (cn->h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  if (c->ca_blob && own)
    {
      struct curl_blob blob = { c->ca_blob, c->ca_len, CURL_BLOB_NOCOPY };
      curl_easy_setopt (cn->h, CURLOPT_CAINFO_BLOB, &blob);
    }
  if (c->client_cert && own)
    {
      curl_easy_setopt (cn->h, CURLOPT_SSLCERT, c->client_cert);
      curl_easy_setopt (cn->h, CURLOPT_SSLKEY, c->client_key);
    }
}

/* Only our own origin may be plain http (loopback or --tls-verify=false);
 * everything else, redirect targets and realms included, is https. */
static const char *
allowed_protocols (struct kiln_registry_client *c, const char *url)
{
  kiln_autofree char *origin = kiln_registry_url_origin (url);
  if (origin && c->origin && strcmp (origin, c->origin) == 0 && kiln_str_has_prefix (origin, "http:"))
    return "http";
  if (origin && kiln_str_has_prefix (origin, "http:") && c->origin && kiln_str_has_prefix (c->origin, "http:"))
    return "http,https"; /* a plain-http registry's own token realm / storage */
  return "https";
}

static struct curl_slist *
build_headers (const struct kiln_registry_req *q, const char *auth)
{
  struct curl_slist *h = curl_slist_append (NULL, "Expect:");
  kiln_autofree char *a = NULL;
  if (q->accept)
    h = curl_slist_append (h, (a = kiln_xasprintf ("Accept: %s", q->accept)));
  if (q->content_type)
    {
      kiln_autofree char *ct = kiln_xasprintf ("Content-Type: %s", q->content_type);
      h = curl_slist_append (h, ct);
    }
  if (q->content_range)
    {
      kiln_autofree char *cr = kiln_xasprintf ("Content-Range: %s", q->content_range);
      h = curl_slist_append (h, cr);
    }
  if (auth)
    {
      kiln_autofree char *ah = kiln_xasprintf ("Authorization: %s", auth);
      h = curl_slist_append (h, ah);
      explicit_bzero (ah, strlen (ah));
    }
  return h;
}

static void
zero_slist (struct curl_slist *h)
{
  for (struct curl_slist *p = h; p; p = p->next)
    if (strncmp (p->data, "Authorization:", 14) == 0)
      explicit_bzero (p->data, strlen (p->data));
  curl_slist_free_all (h);
}

static CURLcode
perform_once (struct kiln_registry_conn *cn, const struct kiln_registry_req *q, const char *url, const char *auth,
              struct kiln_registry_resp *resp, char *errbuf)
{
  CURL *h = cn->h;
  struct xfer x = { q, resp, 0, url, 0 };
  curl_easy_reset (h);
  if (cn->fresh)
    curl_easy_setopt (h, CURLOPT_FRESH_CONNECT, 1L);
  cn->fresh = false;
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, allowed_protocols (cn->c, url));
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 0L);
  kiln_fetch_defaults (h, errbuf);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &x);
  setup_tls (cn, url);
  if (strcmp (q->method, "HEAD") == 0)
    curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
  else if (q->has_body || strcmp (q->method, "GET") != 0)
    {
      /* UPLOAD gives Content-Length (0 too) and a streamed body for any method */
      curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, q->method);
      curl_easy_setopt (h, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt (h, CURLOPT_READDATA, &x);
      /* 2 MiB reads instead of 64 KiB: a multi-GB layer in far fewer syscalls */
      curl_easy_setopt (h, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
      curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) (q->has_body ? q->len : 0));
    }
  /* a streamed body (a layer) in 512 KiB pieces instead of 16 KiB: fewer
   * calls through hashing, inflating and the snapshot's ring */
  if (q->sink)
    curl_easy_setopt (h, CURLOPT_BUFFERSIZE, 512L << 10);
  if (q->max_size > 0)
    curl_easy_setopt (h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) q->max_size);
  kiln_autofree char *range = q->range_from > 0 ? kiln_xasprintf ("%lld-", (long long) q->range_from) : NULL;
  if (range)
    curl_easy_setopt (h, CURLOPT_RANGE, range);
  struct curl_slist *hdrs = build_headers (q, auth);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
  errbuf[0] = '\0';
  CURLcode cc = curl_easy_perform (h);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, NULL);
  zero_slist (hdrs);
  return cc;
}

static bool
transient_curl (CURLcode cc)
{
  switch (cc)
    {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    /* garbage where a status line should be ("HTTP/0.9 not allowed"): a
     * connection left dirty by a broken earlier response */
    case CURLE_UNSUPPORTED_PROTOCOL: return true;
    default: return false;
    }
}

static bool
transient_status (long s)
{
  return s == 408 || s == 429 || s == 499 || (s >= 500 && s <= 599 && s != 501 && s != 505);
}

static int
redirect_target (const char *url, const struct kiln_registry_resp *resp, char **next, struct kiln_error **err)
{
  *next = kiln_registry_url_resolve (url, resp->location);
  if (*next == NULL)
    return kiln_error_set (err, 0, KILN_E_NET, "HTTP %ld redirect to an invalid location", resp->status);
  if (kiln_str_has_prefix (url, "https:") && !kiln_str_has_prefix (*next, "https:"))
    {
      free (*next);
      *next = NULL;
      return kiln_error_set (err, 0, KILN_E_NET, "refuse a redirect from https to another protocol");
    }
  return 0;
}

/* The Authorization value for this hop: only the origin it belongs to gets it. */
static int
hop_auth (struct kiln_registry_conn *cn, const struct kiln_registry_req *q, const char *url, unsigned *gen, char **auth,
          struct kiln_error **err)
{
  kiln_autofree char *origin = kiln_registry_url_origin (url);
  *auth = NULL;
  if (origin == NULL)
    return kiln_error_set (err, 0, KILN_E_NET, "invalid URL");
  if (q->token_request)
    {
      if (q->auth_header && q->auth_origin && strcmp (origin, q->auth_origin) == 0)
        *auth = kiln_xstrdup (q->auth_header);
      return 0;
    }
  if (cn->c->origin && strcmp (origin, cn->c->origin) == 0)
    return kiln_registry_auth_header (cn, false, gen, auth, err);
  return 0;
}

static void
free_secret_str (char **s)
{
  if (*s)
    explicit_bzero (*s, strlen (*s));
  free (*s);
  *s = NULL;
}

/* One attempt: the redirect chain plus at most one answered challenge. */
static int
attempt (struct kiln_registry_conn *cn, const struct kiln_registry_req *q, struct kiln_registry_resp *resp,
         CURLcode *cc, struct kiln_error **err)
{
  kiln_autofree char *url = kiln_xstrdup (q->url);
  char errbuf[CURL_ERROR_SIZE];
  bool challenged = false;
  bool follow = !q->no_redirect && (strcmp (q->method, "GET") == 0 || strcmp (q->method, "HEAD") == 0);
  for (int hop = 0; hop <= KILN_REG_MAX_REDIRECTS; hop++)
    {
      char *auth = NULL;
      unsigned gen = 0;
      kiln_registry_resp_clear (resp);
      if (hop_auth (cn, q, url, &gen, &auth, err) < 0)
        return -1;
      bool sent_auth = auth != NULL;
      *cc = perform_once (cn, q, url, auth, resp, errbuf);
      free_secret_str (&auth);
      kiln_autofree char *lu = url_for_log (url);
      kiln_log_debug ("registry: %s %s -> %ld (%s)", q->method, lu, resp->status, curl_easy_strerror (*cc));
      if (resp->sink_err)
        {
          *err = kiln_steal_ptr (&resp->sink_err);
          return kiln_error_code (*err);
        }
      if (*cc != CURLE_OK)
        return kiln_error_set (err, 0, KILN_E_NET, "%s `%s`: %s", q->method, lu,
                               *errbuf ? errbuf : curl_easy_strerror (*cc));
      if (resp->status == 401 && !q->token_request && !challenged && resp->www_auth
          && (sent_auth || cn->c->chal.scheme != KILN_REG_AUTH_NONE || cn->c->have_cred))
        {
          challenged = true;
          if (kiln_registry_auth_challenged (cn->c, resp->www_auth, gen, err) < 0)
            return -1;
          hop--;
          continue;
        }
      if (follow && resp->status >= 300 && resp->status <= 308 && resp->status != 304 && resp->location)
        {
          char *next;
          if (redirect_target (url, resp, &next, err) < 0)
            return -1;
          free (url);
          url = next;
          continue;
        }
      resp->url = kiln_steal_ptr (&url);
      return 0;
    }
  return kiln_error_set (err, 0, KILN_E_NET, "%s `%s`: more than %d redirects", q->method, q->url,
                         KILN_REG_MAX_REDIRECTS);
}

void
kiln_registry_sleep_ms (unsigned long ms)
{
  struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

int
kiln_registry_do (struct kiln_registry_conn *cn, const struct kiln_registry_req *q, struct kiln_registry_resp *resp,
                  struct kiln_error **err)
{
  int tries = q->idempotent ? cn->c->opts->retries : 0;
  for (int n = 0;; n++)
    {
      CURLcode cc = CURLE_OK;
      struct kiln_error *e = NULL;
      int r = attempt (cn, q, resp, &cc, &e);
      bool again = n < tries
                   && ((r < 0 && cc != CURLE_OK && transient_curl (cc)) || (r == 0 && transient_status (resp->status)));
      if (!again)
        {
          resp->curl_code = (int) cc;
          if (r < 0)
            *err = e;
          return r;
        }
      long wait = r == 0 ? kiln_registry_parse_retry_after (resp->retry_after, KILN_REG_MAX_BACKOFF_MS) : -1;
      if (wait < 0)
        wait = kiln_registry_backoff_ms (cn->c->opts->retry_delay_ms, n);
      kiln_autofree char *lu = url_for_log (q->url);
      /* never retry on the connection that just failed */
      cn->fresh = r < 0;
      if (r < 0)
        kiln_log_warn ("%s; retrying in %ld ms", e->msg, wait);
      else
        kiln_log_warn ("%s `%s`: HTTP %ld; retrying in %ld ms", q->method, lu, resp->status, wait);
      kiln_error_free (&e);
      kiln_registry_sleep_ms ((unsigned long) wait);
    }
}
