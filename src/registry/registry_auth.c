/* registry_auth.c - WWW-Authenticate challenges, Basic credentials and the
 * Docker token flow (realm, service, scope; token or access_token). */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/util.h"
#include "registry-internal.h"

void
kiln_registry_challenge_clear (struct kiln_registry_challenge *c)
{
  free (c->realm), free (c->service), free (c->scope), free (c->error);
  memset (c, 0, sizeof *c);
}

/* Reads a token or a quoted-string (backslash escapes) at *p. */
static char *
read_value (const char **p)
{
  struct kiln_buf b = KILN_BUF_INIT;
  const char *s = *p;
  if (*s == '"')
    {
      for (s++; *s && *s != '"'; s++)
        {
          if (*s == '\\' && s[1])
            s++;
          kiln_buf_addch (&b, *s);
        }
      if (*s == '"')
        s++;
    }
  else
    for (; *s && *s != ',' && *s != ' ' && *s != '\t'; s++)
      kiln_buf_addch (&b, *s);
  *p = s;
  return kiln_buf_detach (&b, NULL);
}

static void
set_param (struct kiln_registry_challenge *c, const char *key, size_t klen, char *value)
{
  static const struct {
    const char *k;
    size_t off;
  } ps[] = {
    { "realm", offsetof (struct kiln_registry_challenge, realm) },
    { "service", offsetof (struct kiln_registry_challenge, service) },
    { "scope", offsetof (struct kiln_registry_challenge, scope) },
    { "error", offsetof (struct kiln_registry_challenge, error) },
  };
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
    if (strlen (ps[i].k) == klen && strncasecmp (key, ps[i].k, klen) == 0)
      {
        char **slot = (char **) ((char *) c + ps[i].off);
        free (*slot);
        *slot = value;
        return;
      }
  free (value);
}

int
kiln_registry_challenge_parse (const char *h, struct kiln_registry_challenge *out, struct kiln_error **err)
{
  memset (out, 0, sizeof *out);
  h += strspn (h, " \t");
  size_t sl = strcspn (h, " \t");
  if (sl == 5 && strncasecmp (h, "basic", 5) == 0)
    out->scheme = KILN_REG_AUTH_BASIC;
  else if (sl == 6 && strncasecmp (h, "bearer", 6) == 0)
    out->scheme = KILN_REG_AUTH_BEARER;
  else
    return kiln_error_set (err, 0, KILN_E_AUTH, "unsupported authentication scheme `%.*s`", (int) (sl < 32 ? sl : 32),
                           h);
  const char *p = h + sl;
  for (;;)
    {
      p += strspn (p, " \t,");
      size_t kl = strcspn (p, "= \t,");
      if (kl == 0 || p[kl] != '=')
        break; /* end, or the next challenge's scheme */
      const char *key = p;
      p += kl + 1;
      set_param (out, key, kl, read_value (&p));
    }
  if (out->scheme == KILN_REG_AUTH_BEARER && (out->realm == NULL || *out->realm == '\0'))
    {
      kiln_registry_challenge_clear (out);
      return kiln_error_set (err, 0, KILN_E_AUTH, "bearer challenge without a realm");
    }
  return 0;
}

char *
kiln_registry_basic_header (const char *user, const char *pass)
{
  kiln_autofree char *plain = kiln_xasprintf ("%s:%s", user, pass ? pass : "");
  size_t n = strlen (plain);
  char *b64 = kiln_xmalloc ((n + 2) / 3 * 4 + 1);
  EVP_EncodeBlock ((unsigned char *) b64, (unsigned char *) plain, (int) n);
  explicit_bzero (plain, n);
  char *h = kiln_xasprintf ("Basic %s", b64);
  explicit_bzero (b64, strlen (b64));
  free (b64);
  return h;
}

int
kiln_registry_token_parse (const char *body, size_t len, char **token, long *expires_s, struct kiln_error **err)
{
  kiln_autojson json_t *j = json_loadb (body, len, 0, NULL);
  const char *t = json_string_value (json_object_get (j, "token"));
  if (t == NULL || *t == '\0')
    t = json_string_value (json_object_get (j, "access_token"));
  if (t == NULL || *t == '\0')
    return kiln_error_set (err, 0, KILN_E_AUTH, "token response has no `token` or `access_token`");
  for (const char *p = t; *p; p++)
    if ((unsigned char) *p < 0x21 || *p == 0x7f)
      return kiln_error_set (err, 0, KILN_E_AUTH, "token response holds an invalid token");
  json_int_t e = json_integer_value (json_object_get (j, "expires_in"));
  *expires_s = e < 60 ? 60 : e > 86400 ? 86400 : (long) e;
  *token = kiln_xstrdup (t);
  json_object_clear (j);
  return 0;
}

/* The realm may be plain http only when the registry itself is. */
static int
check_realm (struct kiln_registry_client *c, const char *realm, char **origin, struct kiln_error **err)
{
  *origin = kiln_registry_url_origin (realm);
  if (*origin == NULL || !(kiln_str_has_prefix (*origin, "https:") || kiln_str_has_prefix (*origin, "http:")))
    return kiln_error_set (err, 0, KILN_E_AUTH, "invalid token realm `%s`", realm);
  if (kiln_str_has_prefix (*origin, "http:") && !c->insecure && !kiln_str_has_prefix (c->origin, "http:"))
    return kiln_error_set (err, 0, KILN_E_AUTH, "refuse the plain-http token realm `%s` of an https registry", realm);
  return 0;
}

static char *
token_url (const struct kiln_registry_challenge *ch, char *const *scopes)
{
  char *url = kiln_xstrdup (ch->realm);
  if (ch->service)
    {
      char *u = kiln_registry_url_add_query (url, "service", ch->service);
      free (url), url = u;
    }
  for (size_t i = 0; scopes && scopes[i] && url; i++)
    {
      char *u = kiln_registry_url_add_query (url, "scope", scopes[i]);
      free (url), url = u;
    }
  return url;
}

/* OAuth2 refresh-token grant: the identity token travels in the body only. */
static char *
oauth_form (CURL *h, const struct kiln_registry_challenge *ch, char *const *scopes, const char *idt)
{
  struct kiln_buf b = KILN_BUF_INIT;
  char *v = curl_easy_escape (h, idt, 0);
  kiln_buf_addf (&b, "grant_type=refresh_token&client_id=kiln&refresh_token=%s", v);
  explicit_bzero (v, strlen (v));
  curl_free (v);
  if (ch->service)
    {
      v = curl_easy_escape (h, ch->service, 0);
      kiln_buf_addf (&b, "&service=%s", v);
      curl_free (v);
    }
  struct kiln_buf sc = KILN_BUF_INIT;
  for (size_t i = 0; scopes && scopes[i]; i++)
    kiln_buf_addf (&sc, "%s%s", i ? " " : "", scopes[i]);
  v = curl_easy_escape (h, sc.buf, 0);
  kiln_buf_addf (&b, "&scope=%s", v);
  curl_free (v);
  kiln_buf_release (&sc);
  return kiln_buf_detach (&b, NULL);
}

int
kiln_registry_token_fetch (struct kiln_registry_conn *cn, char *const *scopes, char **token, long *expires_s,
                           struct kiln_error **err)
{
  struct kiln_registry_client *c = cn->c;
  kiln_autofree char *origin = NULL, *url = NULL, *basic = NULL, *form = NULL;
  struct kiln_registry_resp resp = { .body = KILN_BUF_INIT };
  struct kiln_registry_req q = KILN_REG_REQ_INIT;
  if (check_realm (c, c->chal.realm, &origin, err) < 0)
    return -1;
  bool oauth = c->have_cred && c->cred.identity_token;
  url = oauth ? kiln_xstrdup (c->chal.realm) : token_url (&c->chal, scopes);
  if (url == NULL)
    return kiln_error_set (err, 0, KILN_E_AUTH, "invalid token realm `%s`", c->chal.realm);
  if (c->have_cred && c->cred.username && !oauth)
    basic = kiln_registry_basic_header (c->cred.username, c->cred.password);
  q.method = oauth ? "POST" : "GET", q.url = url, q.idempotent = true, q.body_max = KILN_REG_MAX_TOKEN;
  q.token_request = true, q.auth_header = basic, q.auth_origin = origin;
  if (oauth)
    {
      form = oauth_form (cn->h, &c->chal, scopes, c->cred.identity_token);
      q.data = form, q.len = (int64_t) strlen (form), q.has_body = true;
      q.content_type = "application/x-www-form-urlencoded";
    }
  int r = kiln_registry_do (cn, &q, &resp, err);
  if (basic)
    explicit_bzero (basic, strlen (basic));
  if (form)
    explicit_bzero (form, strlen (form));
  if (r == 0 && resp.status != 200)
    r = kiln_registry_status_error (&resp, err);
  if (r == 0)
    r = kiln_registry_token_parse (resp.body.buf, resp.body.len, token, expires_s, err);
  explicit_bzero (resp.body.buf, resp.body.len);
  kiln_registry_resp_clear (&resp);
  if (r < 0)
    {
      kiln_autofree char *shown = kiln_xstrndup (c->chal.realm, strcspn (c->chal.realm, "?"));
      return kiln_error_wrap (err, "get a token from `%s`", shown);
    }
  return 0;
}

static void
drop_token (struct kiln_registry_client *c)
{
  if (c->token)
    explicit_bzero (c->token, strlen (c->token));
  free (c->token);
  c->token = NULL;
}

int
kiln_registry_auth_header (struct kiln_registry_conn *cn, bool force_new, unsigned *gen, char **out,
                           struct kiln_error **err)
{
  struct kiln_registry_client *c = cn->c;
  int r = 0;
  *out = NULL;
  pthread_mutex_lock (&c->lock);
  if (c->chal.scheme == KILN_REG_AUTH_BASIC && c->have_cred && c->cred.username)
    *out = kiln_registry_basic_header (c->cred.username, c->cred.password);
  else if (c->chal.scheme == KILN_REG_AUTH_BEARER)
    {
      /* refresh ahead of expiry so a long upload's next request still passes */
      if (force_new || c->token == NULL || kiln_now_ns () + 15000000000ull > c->token_expiry_ns)
        {
          char *t = NULL;
          long exp = 60;
          r = kiln_registry_token_fetch (cn, c->scopes, &t, &exp, err);
          if (r == 0)
            {
              drop_token (c);
              c->token = t;
              c->token_expiry_ns = kiln_now_ns () + (unsigned long long) exp * 1000000000ull;
              c->token_gen++;
            }
        }
      if (r == 0)
        *out = kiln_xasprintf ("Bearer %s", c->token);
    }
  *gen = c->token_gen;
  pthread_mutex_unlock (&c->lock);
  return r;
}

void
kiln_registry_client_add_scope (struct kiln_registry_client *c, const char *scope)
{
  for (size_t i = 0; c->scopes && c->scopes[i]; i++)
    if (strcmp (c->scopes[i], scope) == 0)
      return;
  kiln_strv_push (&c->scopes, scope);
}

int
kiln_registry_auth_challenged (struct kiln_registry_client *c, const char *www_auth, unsigned gen,
                               struct kiln_error **err)
{
  struct kiln_registry_challenge ch;
  if (kiln_registry_challenge_parse (www_auth, &ch, err) < 0)
    return -1;
  pthread_mutex_lock (&c->lock);
  if (ch.scheme == KILN_REG_AUTH_BEARER && ch.scope)
    {
      /* insufficient_scope (or a first challenge): ask for what it names */
      for (const char *s = ch.scope; *s;)
        {
          size_t n = strcspn (s, " ");
          if (n)
            {
              kiln_autofree char *one = kiln_xstrndup (s, n);
              kiln_registry_client_add_scope (c, one);
            }
          s += n + (s[n] == ' ');
        }
    }
  if (ch.scheme != c->chal.scheme || (ch.realm && (!c->chal.realm || strcmp (ch.realm, c->chal.realm) != 0)))
    {
      kiln_registry_challenge_clear (&c->chal);
      c->chal = ch;
      memset (&ch, 0, sizeof ch);
      drop_token (c);
    }
  else if (gen == c->token_gen)
    drop_token (c);
  pthread_mutex_unlock (&c->lock);
  kiln_registry_challenge_clear (&ch);
  return 0;
}
