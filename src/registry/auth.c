/* auth.c - registry credentials from auth.json / config.json and credential
 * helpers; writing them for `kiln login` / `kiln logout`. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"

#define AUTH_FILE_MAX (4u << 20)
#define HELPER_OUT_MAX (1u << 20)
#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

static void
free_secret (char **s)
{
  if (*s)
    {
      explicit_bzero (*s, strlen (*s));
      free (*s);
      *s = NULL;
    }
}

void
kiln_auth_cred_clear (struct kiln_auth_cred *c)
{
  free (c->username);
  c->username = NULL;
  free_secret (&c->password);
  free_secret (&c->identity_token);
}

char *
kiln_auth_normalize_key (const char *key)
{
  const char *p = key;
  if (kiln_str_has_prefix (p, "https://"))
    p += 8;
  else if (kiln_str_has_prefix (p, "http://"))
    p += 7;
  /* a bare "host/namespace" key (podman) keeps its path; a URL loses it */
  size_t n = p != key ? strcspn (p, "/") : strlen (p);
  while (n > 0 && p[n - 1] == '/')
    n--;
  char *k = kiln_xstrndup (p, n);
  if (strcmp (k, "index.docker.io") == 0 || strcmp (k, "registry-1.docker.io") == 0)
    {
      free (k);
      k = kiln_xstrdup ("docker.io");
    }
  return k;
}

static char *
home_dir (void)
{
  const char *h = getenv ("HOME");
  if (h && *h)
    return kiln_xstrdup (h);
  struct passwd *pw = getpwuid (geteuid ());
  return kiln_xstrdup (pw ? pw->pw_dir : "/");
}

char *
kiln_auth_default_file (void)
{
  const char *f = getenv ("REGISTRY_AUTH_FILE"), *xdg = getenv ("XDG_RUNTIME_DIR");
  if (f && *f)
    return kiln_xstrdup (f);
  if (xdg && *xdg)
    return kiln_xasprintf ("%s/containers/auth.json", xdg);
  kiln_autofree char *home = home_dir ();
  return kiln_xasprintf ("%s/.docker/config.json", home);
}

static char **
search_files (void)
{
  char **v = NULL;
  const char *f = getenv ("REGISTRY_AUTH_FILE"), *xdg = getenv ("XDG_RUNTIME_DIR"), *dc = getenv ("DOCKER_CONFIG");
  if (f && *f)
    kiln_strv_push (&v, f);
  if (xdg && *xdg)
    kiln_strv_push_take (&v, kiln_xasprintf ("%s/containers/auth.json", xdg));
  if (dc && *dc)
    kiln_strv_push_take (&v, kiln_xasprintf ("%s/config.json", dc));
  kiln_autofree char *home = home_dir ();
  kiln_strv_push_take (&v, kiln_xasprintf ("%s/.docker/config.json", home));
  return v;
}

/* Decodes base64 "user:pass" into the credential. */
static int
decode_basic (const char *b64, const char *path, struct kiln_auth_cred *out, struct kiln_error **err)
{
  size_t n = strlen (b64), pad = 0;
  if (n == 0 || n % 4 != 0)
    return kiln_error_set (err, 0, KILN_E_PARSE, "parse `%s`: an `auth` value is not base64", path);
  while (pad < 2 && b64[n - 1 - pad] == '=')
    pad++;
  unsigned char *raw = kiln_xmalloc (n / 4 * 3 + 1);
  int len = EVP_DecodeBlock (raw, (const unsigned char *) b64, (int) n);
  if (len < 0)
    {
      free (raw);
      return kiln_error_set (err, 0, KILN_E_PARSE, "parse `%s`: an `auth` value is not base64", path);
    }
  len -= (int) pad;
  raw[len] = '\0';
  char *colon = memchr (raw, ':', (size_t) len);
  if (colon == NULL || colon == (char *) raw)
    {
      explicit_bzero (raw, (size_t) len);
      free (raw);
      return kiln_error_set (err, 0, KILN_E_PARSE, "parse `%s`: an `auth` value is not `user:password`", path);
    }
  out->username = kiln_xstrndup ((char *) raw, (size_t) (colon - (char *) raw));
  out->password = kiln_xstrdup (colon + 1);
  explicit_bzero (raw, (size_t) len);
  free (raw);
  return 1;
}

/* The value of obj whose normalised key is host; NULL when none. */
static json_t *
find_host (json_t *obj, const char *host)
{
  const char *key;
  json_t *v;
  if (!json_is_object (obj))
    return NULL;
  if ((v = json_object_get (obj, host)))
    return v;
  json_object_foreach (obj, key, v)
    {
      kiln_autofree char *k = kiln_auth_normalize_key (key);
      if (strcmp (k, host) == 0)
        return v;
    }
  return NULL;
}

static int
from_auths_entry (json_t *e, const char *path, struct kiln_auth_cred *out, struct kiln_error **err)
{
  const char *auth = json_string_value (json_object_get (e, "auth"));
  const char *idt = json_string_value (json_object_get (e, "identitytoken"));
  int r = 0;
  if (auth && *auth && (r = decode_basic (auth, path, out, err)) < 0)
    return r;
  if (idt && *idt)
    {
      out->identity_token = kiln_xstrdup (idt);
      r = 1;
    }
  return r;
}

static int helper_get (const char *helper, const char *host, struct kiln_auth_cred *out, struct kiln_error **err);

int
kiln_auth_lookup_file (const char *path, const char *host, struct kiln_auth_cred *out, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_autojson json_t *doc = NULL;
  kiln_autoerror struct kiln_error *rerr = NULL;
  json_error_t je;
  if (kiln_fs_read_file (AT_FDCWD, path, AUTH_FILE_MAX, &b, &rerr) < 0)
    {
      if (rerr->errnum == ENOENT || rerr->errnum == ENOTDIR)
        return 0;
      *err = kiln_steal_ptr (&rerr);
      return kiln_error_wrap (err, "read credentials `%s`", path);
    }
  doc = json_loadb (b.buf, b.len, JSON_REJECT_DUPLICATES, &je);
  explicit_bzero (b.buf, b.len);
  if (!json_is_object (doc))
    return kiln_error_set (err, 0, KILN_E_PARSE, "parse `%s`:%d:%d: %s", path, je.line, je.column,
                           doc ? "not a JSON object" : je.text);
  const char *helper = json_string_value (find_host (json_object_get (doc, "credHelpers"), host));
  if (helper)
    return helper_get (helper, host, out, err);
  json_t *e = find_host (json_object_get (doc, "auths"), host);
  int r = e ? from_auths_entry (e, path, out, err) : 0;
  if (r != 0)
    return r;
  const char *store = json_string_value (json_object_get (doc, "credsStore"));
  if (store && *store)
    return helper_get (store, host, out, err);
  return 0;
}

int
kiln_auth_lookup (const char *auth_file, const char *host, struct kiln_auth_cred *out, struct kiln_error **err)
{
  if (auth_file)
    return kiln_auth_lookup_file (auth_file, host, out, err);
  kiln_autostrv char **files = search_files ();
  for (size_t i = 0; files[i]; i++)
    {
      int r = kiln_auth_lookup_file (files[i], host, out, err);
      if (r != 0)
        return r;
    }
  return 0;
}

/* ---- credential helpers ---- */

static int
valid_helper_name (const char *s)
{
  if (*s == '\0' || strlen (s) > 64)
    return 0;
  for (; *s; s++)
    if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') || *s == '-' || *s == '_'
          || *s == '.'))
      return 0;
  return 1;
}

/* Runs `docker-credential-NAME get` with input on stdin; collects stdout. */
static int
run_helper (const char *prog, const char *input, struct kiln_buf *out, int *status, struct kiln_error **err)
{
  int in[2], o[2];
  if (pipe2 (in, O_CLOEXEC) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "pipe");
  if (pipe2 (o, O_CLOEXEC) < 0)
    {
      close (in[0]), close (in[1]);
      return kiln_error_set (err, errno, KILN_E_IO, "pipe");
    }
  pid_t pid = fork ();
  if (pid == 0)
    {
      char *argv[] = { (char *) prog, (char *) "get", NULL };
      if (dup2 (in[0], 0) < 0 || dup2 (o[1], 1) < 0)
        _exit (127);
      execvp (prog, argv);
      _exit (127);
    }
  close (in[0]), close (o[1]);
  if (pid < 0)
    {
      close (in[1]), close (o[0]);
      return kiln_error_set (err, errno, KILN_E_IO, "fork `%s`", prog);
    }
  struct sigaction ign = { .sa_handler = SIG_IGN }, old;
  sigaction (SIGPIPE, &ign, &old);
  kiln_autoerror struct kiln_error *werr = NULL;
  kiln_fs_write_all (in[1], input, strlen (input), &werr);
  close (in[1]);
  int r = kiln_fs_read_fd (o[0], HELPER_OUT_MAX, out, err);
  close (o[0]);
  sigaction (SIGPIPE, &old, NULL);
  while (waitpid (pid, status, 0) < 0)
    if (errno != EINTR)
      return kiln_error_set (err, errno, KILN_E_IO, "wait for `%s`", prog);
  return r;
}

static int
parse_helper_output (const char *prog, struct kiln_buf *b, struct kiln_auth_cred *out, struct kiln_error **err)
{
  kiln_autojson json_t *j = json_loadb (b->buf, b->len, 0, NULL);
  const char *user = json_string_value (json_object_get (j, "Username"));
  const char *secret = json_string_value (json_object_get (j, "Secret"));
  if (!user || !secret)
    return kiln_error_set (err, 0, KILN_E_AUTH, "credential helper `%s` printed no Username/Secret", prog);
  if (strcmp (user, "<token>") == 0)
    out->identity_token = kiln_xstrdup (secret);
  else
    {
      out->username = kiln_xstrdup (user);
      out->password = kiln_xstrdup (secret);
    }
  json_object_clear (j);
  return 1;
}

static int
helper_get (const char *helper, const char *host, struct kiln_auth_cred *out, struct kiln_error **err)
{
  if (!valid_helper_name (helper))
    return kiln_error_set (err, 0, KILN_E_AUTH, "invalid credential helper name `%s`", helper);
  kiln_autofree char *prog = kiln_xasprintf ("docker-credential-%s", helper);
  kiln_autofree char *url = strcmp (host, "docker.io") == 0 ? kiln_xstrdup (DOCKER_HUB_KEY) : kiln_xstrdup (host);
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  int status = 0, r;
  if (run_helper (prog, url, &b, &status, err) < 0)
    return kiln_error_wrap (err, "run credential helper `%s`", prog);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 127)
    return kiln_error_set (err, ENOENT, KILN_E_AUTH, "run credential helper `%s`", prog);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      /* the helper protocol's "not found" answer means anonymous access */
      r = strstr (b.buf, "credentials not found")
              ? 0
              : kiln_error_set (err, 0, KILN_E_AUTH, "credential helper `%s` failed for `%s`", prog, host);
      explicit_bzero (b.buf, b.len);
      return r;
    }
  r = parse_helper_output (prog, &b, out, err);
  explicit_bzero (b.buf, b.len);
  return r;
}

/* ---- writing ---- */

static int
load_for_update (const char *path, json_t **doc, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *rerr = NULL;
  json_error_t je;
  if (kiln_fs_read_file (AT_FDCWD, path, AUTH_FILE_MAX, &b, &rerr) < 0)
    {
      if (rerr->errnum != ENOENT)
        {
          *err = kiln_steal_ptr (&rerr);
          return kiln_error_wrap (err, "read `%s`", path);
        }
      *doc = json_object ();
      return 0;
    }
  *doc = b.len ? json_loadb (b.buf, b.len, 0, &je) : json_object ();
  explicit_bzero (b.buf, b.len);
  if (!json_is_object (*doc))
    {
      json_decref (*doc);
      *doc = NULL;
      return kiln_error_set (err, 0, KILN_E_PARSE, "parse `%s`: not a JSON object", path);
    }
  return 0;
}

/* mkdir -p for an ordinary (not store, not rootfs) path given by the user. */
static int
mkdir_parents (const char *dir, struct kiln_error **err)
{
  kiln_autofree char *p = kiln_xstrdup (dir);
  for (char *s = p + 1;; s++)
    if (*s == '/' || *s == '\0')
      {
        char c = *s;
        *s = '\0';
        if (mkdir (p, 0700) < 0 && errno != EEXIST)
          return kiln_error_set (err, errno, KILN_E_IO, "create directory `%s`", p);
        if ((*s = c) == '\0')
          break;
      }
  int fd = open (dir, O_DIRECTORY | O_CLOEXEC | O_RDONLY);
  return fd < 0 ? kiln_error_set (err, errno, KILN_E_IO, "open directory `%s`", dir) : fd;
}

static int
save_doc (const char *path, json_t *doc, struct kiln_error **err)
{
  kiln_autofree char *dir = kiln_xstrdup (path);
  char *slash = strrchr (dir, '/');
  const char *base = slash ? slash + 1 : path;
  if (slash)
    *slash = '\0';
  kiln_autoclose int dfd = mkdir_parents (!slash ? "." : *dir ? dir : "/", err);
  if (dfd < 0)
    return -1;
  char *text = json_dumps (doc, JSON_INDENT (1) | JSON_SORT_KEYS);
  int r = kiln_fs_write_atomic (dfd, base, text, strlen (text), 0600, err);
  explicit_bzero (text, strlen (text));
  free (text);
  return r < 0 ? kiln_error_wrap (err, "write `%s`", path) : 0;
}

int
kiln_auth_store (const char *path, const char *host, const char *user, const char *password, struct kiln_error **err)
{
  kiln_autojson json_t *doc = NULL;
  if (load_for_update (path, &doc, err) < 0)
    return -1;
  json_t *auths = json_object_get (doc, "auths");
  if (!json_is_object (auths))
    json_object_set_new (doc, "auths", auths = json_object ());
  kiln_autofree char *plain = kiln_xasprintf ("%s:%s", user, password);
  size_t n = strlen (plain);
  kiln_autofree char *b64 = kiln_xmalloc ((n + 2) / 3 * 4 + 1);
  EVP_EncodeBlock ((unsigned char *) b64, (unsigned char *) plain, (int) n);
  explicit_bzero (plain, n);
  json_object_set_new (auths, host, json_pack ("{s:s}", "auth", b64));
  explicit_bzero (b64, strlen (b64));
  return save_doc (path, doc, err);
}

int
kiln_auth_remove (const char *path, const char *host, struct kiln_error **err)
{
  kiln_autojson json_t *doc = NULL;
  if (load_for_update (path, &doc, err) < 0)
    return -1;
  json_t *auths = json_object_get (doc, "auths");
  const char *key;
  json_t *v;
  void *tmp;
  int removed = 0;
  if (json_is_object (auths))
    json_object_foreach_safe (auths, tmp, key, v)
      {
        kiln_autofree char *k = kiln_auth_normalize_key (key);
        if (strcmp (k, host) == 0 || strcmp (key, host) == 0)
          {
            json_object_del (auths, key);
            removed++;
          }
      }
  if (!removed)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "not logged in to `%s` (in `%s`)", host, path);
  return save_doc (path, doc, err);
}
