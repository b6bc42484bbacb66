/* ref.c - image references parsed and normalised as Docker does
 * (distribution/reference: regexp.go grammar, normalize.go defaults).
 *
 * The grammar is checked by hand rather than with regex(3): the components
 * are small and hand-written checks give precise error messages.  One
 * deliberate difference from current upstream: a first component without
 * '.' or ':' (other than "localhost") is always part of the path, so
 * "Foo/bar" is an uppercase error rather than a registry called "Foo"
 * (upstream changed this in 2023; older Docker rejected it as we do). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/ref.h"
#include "kiln/util.h"

#define DEFAULT_DOMAIN "docker.io"
#define LEGACY_DOMAIN "index.docker.io"
#define OFFICIAL_PREFIX "library/"
#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum (char c)
{
  return is_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

static bool
is_hex (char c, bool upper_ok)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (upper_ok && c >= 'A' && c <= 'F');
}

/* [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)* */
static bool
path_component_valid (const char *s, size_t n)
{
  size_t i = 0;
  for (;;)
    {
      size_t start = i;
      while (i < n && is_lower_alnum (s[i]))
        i++;
      if (i == start)
        return false;
      if (i == n)
        return true;
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
      else if (s[i] == '-')
        while (i < n && s[i] == '-')
          i++;
      else
        return false;
    }
}

static bool
path_valid (const char *path)
{
  for (;;)
    {
      const char *slash = strchr (path, '/');
      size_t n = slash ? (size_t) (slash - path) : strlen (path);
      if (!path_component_valid (path, n))
        return false;
      if (slash == NULL)
        return true;
      path = slash + 1;
    }
}

/* [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9], dot-separated */
static bool
domain_name_valid (const char *s, size_t n)
{
  size_t i = 0;
  for (;;)
    {
      size_t start = i;
      while (i < n && (is_alnum (s[i]) || s[i] == '-'))
        i++;
      if (i == start || s[start] == '-' || s[i - 1] == '-')
        return false;
      if (i == n)
        return true;
      if (s[i] != '.')
        return false;
      i++;
    }
}

/* host[:port] where host is a domain name or a bracketed IPv6 address. */
static bool
domain_valid (const char *d)
{
  const char *port, *end = d + strlen (d);
  if (d[0] == '[')
    {
      const char *close = strchr (d, ']');
      if (close == NULL || close == d + 1)
        return false;
      for (const char *p = d + 1; p < close; p++)
        if (!is_hex (*p, true) && *p != ':')
          return false;
      port = close + 1;
      if (*port != '\0' && *port != ':')
        return false;
    }
  else
    {
      port = strchr (d, ':');
      if (port == NULL)
        port = end;
      if (!domain_name_valid (d, (size_t) (port - d)))
        return false;
    }
  if (*port == '\0')
    return true;
  if (port[1] == '\0')
    return false;
  for (const char *p = port + 1; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}

/* [\w][\w.-]{0,127} */
static bool
tag_valid (const char *t)
{
  size_t n = strlen (t);
  if (n == 0 || n > TAG_MAX_LEN || !(is_alnum (t[0]) || t[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(is_alnum (t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
      return false;
  return true;
}

/* algorithm:hex with a registered algorithm and its exact lowercase hex
 * length, as go-digest validates. */
static const char *
digest_problem (const char *d)
{
  static const struct {
    const char *alg;
    size_t len;
  } algs[] = { { "sha256", 64 }, { "sha384", 96 }, { "sha512", 128 } };
  const char *colon = strchr (d, ':');
  if (colon == NULL || colon == d || colon[1] == '\0')
    return "invalid digest format";
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
    {
      if (strlen (algs[i].alg) != (size_t) (colon - d) || strncmp (d, algs[i].alg, (size_t) (colon - d)) != 0)
        continue;
      if (strlen (colon + 1) != algs[i].len)
        return "invalid digest length";
      for (const char *p = colon + 1; *p; p++)
        if (!is_hex (*p, false))
          return "invalid digest format";
      return NULL;
    }
  return "unsupported digest algorithm";
}

static bool
is_identifier (const char *s)
{
  size_t n = strlen (s);
  for (size_t i = 0; i < n; i++)
    if (!is_hex (s[i], false))
      return false;
  return n == 64;
}

/* normalize.go splitDockerDomain: the first component is a registry when it
 * is "localhost" or contains '.' or ':'. */
static void
split_domain (const char *name, struct kiln_ref *r)
{
  const char *slash = strchr (name, '/');
  size_t n = slash ? (size_t) (slash - name) : 0;
  bool is_domain = slash
                   && ((n == 9 && strncmp (name, "localhost", 9) == 0) || memchr (name, '.', n) != NULL
                       || memchr (name, ':', n) != NULL);

  if (is_domain)
    {
      r->domain = kiln_xstrndup (name, n);
      r->path = kiln_xstrdup (slash + 1);
    }
  else
    {
      r->domain = kiln_xstrdup (DEFAULT_DOMAIN);
      r->path = kiln_xstrdup (name);
    }
  if (strcmp (r->domain, LEGACY_DOMAIN) == 0)
    {
      free (r->domain);
      r->domain = kiln_xstrdup (DEFAULT_DOMAIN);
    }
  if (strcmp (r->domain, DEFAULT_DOMAIN) == 0 && strchr (r->path, '/') == NULL)
    {
      char *p = kiln_xasprintf (OFFICIAL_PREFIX "%s", r->path);
      free (r->path);
      r->path = p;
    }
}

/* Splits "name[:tag][@digest]"; a ':' before the last '/' is a port. */
static const char *
split_tag_digest (char *s, struct kiln_ref *r)
{
  char *at = strchr (s, '@');
  if (at)
    {
      *at = '\0';
      r->digest = kiln_xstrdup (at + 1);
      const char *problem = digest_problem (r->digest);
      if (problem)
        return problem;
    }
  char *colon = strrchr (s, ':');
  char *slash = strrchr (s, '/');
  if (colon && (slash == NULL || colon > slash))
    {
      *colon = '\0';
      if (colon[1] == '\0')
        return "missing tag after `:`";
      r->tag = kiln_xstrdup (colon + 1);
      if (!tag_valid (r->tag))
        return "invalid tag format";
    }
  return NULL;
}

static const char *
check_name (const struct kiln_ref *r)
{
  if (!domain_valid (r->domain))
    return "invalid reference format";
  if (!path_valid (r->path))
    {
      kiln_autofree char *lower = kiln_xstrdup (r->path);
      for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
          *p = (char) (*p - 'A' + 'a');
      return path_valid (lower) ? "repository name must be lowercase" : "invalid reference format";
    }
  if (strlen (r->domain) + 1 + strlen (r->path) > NAME_MAX_LEN)
    return "repository name must not be more than 255 characters";
  return NULL;
}

int
kiln_ref_parse (const char *s, struct kiln_ref *out, struct kiln_error **err)
{
  struct kiln_ref r = { 0 };
  const char *problem;

  if (s[0] == '\0')
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid reference: empty string");
  if (is_identifier (s))
    return kiln_error_set (err, 0, KILN_E_PARSE, "invalid reference `%s`: cannot specify 64-byte hexadecimal strings",
                           s);
  kiln_autofree char *copy = kiln_xstrdup (s);
  problem = split_tag_digest (copy, &r);
  if (problem == NULL && copy[0] == '\0')
    problem = "repository name must have at least one component";
  if (problem == NULL)
    {
      split_domain (copy, &r);
      problem = check_name (&r);
    }
  if (problem)
    {
      kiln_ref_clear (&r);
      return kiln_error_set (err, 0, KILN_E_PARSE, "invalid reference `%s`: %s", s, problem);
    }
  if (r.tag == NULL && r.digest == NULL)
    r.tag = kiln_xstrdup ("latest");
  *out = r;
  return 0;
}

void
kiln_ref_clear (struct kiln_ref *r)
{
  if (r == NULL)
    return;
  free (r->domain);
  free (r->path);
  free (r->tag);
  free (r->digest);
  memset (r, 0, sizeof *r);
}

char *
kiln_ref_string (const struct kiln_ref *r)
{
  return kiln_xasprintf ("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
                         r->digest ? "@" : "", r->digest ? r->digest : "");
}

char *
kiln_ref_repository (const struct kiln_ref *r)
{
  return kiln_xasprintf ("%s/%s", r->domain, r->path);
}

char *
kiln_ref_tag_or_latest (const char *name)
{
  struct kiln_ref r = { 0 };
  struct kiln_error *err = NULL;
  if (kiln_ref_parse (name, &r, &err) < 0)
    {
      kiln_error_free (&err);
      return kiln_xstrdup ("latest");
    }
  char *tag = kiln_xstrdup (r.tag ? r.tag : "latest");
  kiln_ref_clear (&r);
  return tag;
}
