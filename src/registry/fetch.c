/* fetch.c - download one http(s) URL into a file for ADD <url>. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fetch.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/util.h"

#define FETCH_ATTEMPTS 3

bool
kiln_fetch_is_url (const char *s)
{
  return kiln_str_has_prefix (s, "http://") || kiln_str_has_prefix (s, "https://");
}

/* A URL handle for url, or NULL when curl cannot parse it. */
static CURLU *
parse (const char *url)
{
  CURLU *u = curl_url ();
  if (u && curl_url_set (u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS) != CURLUE_OK)
    {
      curl_url_cleanup (u);
      return NULL;
    }
  return u;
}

char *
kiln_fetch_redact (const char *url)
{
  CURLU *u = parse (url);
  char *s = NULL;
  if (u)
    {
      curl_url_set (u, CURLUPART_USER, NULL, 0);
      curl_url_set (u, CURLUPART_PASSWORD, NULL, 0);
      curl_url_get (u, CURLUPART_URL, &s, 0);
      curl_url_cleanup (u);
    }
  char *out = kiln_xstrdup (s ? s : "(unparsable URL)");
  curl_free (s);
  return out;
}

char *
kiln_fetch_filename (const char *url)
{
  CURLU *u = parse (url);
  char *path = NULL;
  if (u)
    curl_url_get (u, CURLUPART_PATH, &path, CURLU_URLDECODE);
  curl_url_cleanup (u);
  /* path.Base: trailing slashes do not count */
  size_t len = path ? strlen (path) : 0;
  while (len > 0 && path[len - 1] == '/')
    len--;
  size_t start = len;
  while (start > 0 && path[start - 1] != '/')
    start--;
  /* "." and ".." name no file (and ".." must not climb out of the destination) */
  bool dots = (len - start == 1 && path[start] == '.') || (len - start == 2 && strncmp (path + start, "..", 2) == 0);
  char *name = len > start && !dots ? kiln_xstrndup (path + start, len - start) : kiln_xstrdup ("__unnamed__");
  curl_free (path);
  return name;
}

struct body {
  int fd;
  struct kiln_sha256 *hash;
  uint64_t size;
  int write_errno;
  volatile sig_atomic_t *cancel;
  char *etag; /* of the last response (redirects come first) */
};

/* Keeps the ETag of the final response: a new status line forgets the one
 * of a redirect. */
static size_t
header_cb (char *data, size_t size, size_t n, void *opaque)
{
  struct body *b = opaque;
  size_t len = size * n;
  if (len >= 5 && strncmp (data, "HTTP/", 5) == 0)
    {
      free (b->etag);
      b->etag = NULL;
    }
  else if (len > 5 && strncasecmp (data, "etag:", 5) == 0)
    {
      const char *v = data + 5;
      size_t vl = len - 5;
      while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
      while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
      free (b->etag);
      b->etag = vl ? kiln_xstrndup (v, vl) : NULL;
    }
  return len;
}

/* A signal stops a multi-GB download now, not after its last byte. */
static int
progress_cb (void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
  const struct body *b = opaque;
  return b->cancel && *b->cancel ? 1 : 0;
}

static size_t
body_cb (char *data, size_t size, size_t n, void *opaque)
{
  struct body *b = opaque;
  size_t len = size * n;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_fs_write_all (b->fd, data, len, &e) < 0)
    {
      b->write_errno = e->errnum ? e->errnum : EIO;
      return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
  kiln_sha256_update (b->hash, data, len);
  b->size += len;
  return len;
}

void
kiln_fetch_defaults (CURL *h, char *errbuf)
{
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt (h, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
}

static void
setup (CURL *h, const char *url, struct body *b, struct curl_slist *hdrs, char *errbuf)
{
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, b);
  curl_easy_setopt (h, CURLOPT_URL, url);
  /* never file://, ftp:// or the like, not even through a redirect */
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (h, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt (h, CURLOPT_FILETIME, 1L);
  kiln_fetch_defaults (h, errbuf);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, b);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, b);
}

/* Empties the file and the hash for another attempt. */
static int
restart (struct body *b, const char *shown, struct kiln_error **err)
{
  if (ftruncate (b->fd, 0) < 0 || lseek (b->fd, 0, SEEK_SET) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "download `%s`: reset the partial file", shown);
  kiln_sha256_reset (b->hash);
  b->size = 0;
  return 0;
}

static bool
transient (CURLcode rc, long status)
{
  if (rc == CURLE_OK)
    return status >= 500 || status == 429;
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE
         || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING;
}

/* One GET; the status (0 without a response) goes to *status. */
static CURLcode
attempt (CURL *h, const char *url, struct body *b, struct curl_slist *hdrs, long *status, char *errbuf)
{
  curl_easy_reset (h);
  errbuf[0] = '\0';
  setup (h, url, b, hdrs, errbuf);
  CURLcode rc = curl_easy_perform (h);
  *status = 0;
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, status);
  return rc;
}

static int
failure (CURLcode rc, long status, const struct body *b, const char *shown, const char *errbuf, struct kiln_error **err)
{
  if (rc == CURLE_WRITE_ERROR && b->write_errno)
    return kiln_error_set (err, b->write_errno, KILN_E_IO, "download `%s`: write the file", shown);
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "download `%s`: interrupted", shown);
  if (rc != CURLE_OK)
    return kiln_error_set (err, 0, KILN_E_NET, "download `%s`: %s", shown,
                           errbuf[0] ? errbuf : curl_easy_strerror (rc));
  return kiln_error_set (err, 0, status == 404 ? KILN_E_NOTFOUND : KILN_E_NET, "download `%s`: HTTP status %ld", shown,
                         status);
}

int
kiln_fetch_url (const char *url, int fd, volatile sig_atomic_t *cancel, const char *if_none_match,
                struct kiln_fetch_result *out, struct kiln_error **err)
{
  kiln_autofree char *shown = kiln_fetch_redact (url);
  kiln_autofree char *cond = if_none_match ? kiln_xasprintf ("If-None-Match: %s", if_none_match) : NULL;
  struct body b = { .fd = fd, .hash = kiln_sha256_new (), .cancel = cancel };
  struct curl_slist *hdrs = cond ? curl_slist_append (NULL, cond) : NULL;
  char errbuf[CURL_ERROR_SIZE];
  curl_off_t t = -1;
  CURL *h = curl_easy_init ();
  int ret = -1;
  memset (out, 0, sizeof *out);
  if (h == NULL)
    {
      kiln_error_set (err, ENOMEM, KILN_E_INTERNAL, "download `%s`: cannot start libcurl", shown);
      goto out;
    }
  for (int n = 1;; n++)
    {
      long status;
      CURLcode rc = attempt (h, url, &b, hdrs, &status, errbuf);
      if (rc == CURLE_OK && status == 304 && cond)
        {
          ret = 1; /* what the caller knows is current; nothing was written */
          goto out;
        }
      if (rc == CURLE_OK && status >= 200 && status < 300)
        break;
      if (n == FETCH_ATTEMPTS || !transient (rc, status) || (cancel && *cancel))
        {
          failure (rc, status, &b, shown, errbuf, err);
          goto out;
        }
      kiln_log_warn ("download `%s`: %s; trying again in %d s", shown,
                     rc != CURLE_OK ? curl_easy_strerror (rc) : "server error", n);
      sleep ((unsigned) n);
      if (restart (&b, shown, err) < 0)
        goto out;
    }
  if (curl_easy_getinfo (h, CURLINFO_FILETIME_T, &t) != CURLE_OK)
    t = -1;
  out->mtime = t;
  out->size = b.size;
  out->etag = kiln_steal_ptr (&b.etag);
  kiln_sha256_final (b.hash, &out->digest);
  ret = 0;
out:
  curl_easy_cleanup (h);
  curl_slist_free_all (hdrs);
  kiln_sha256_free (b.hash);
  free (b.etag);
  return ret;
}

void
kiln_fetch_result_clear (struct kiln_fetch_result *r)
{
  free (r->etag);
  r->etag = NULL;
}
