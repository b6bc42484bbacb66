/* cmd_registry.c - `kiln pull`, `push`, `login`, `logout`. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "cmd.h"
#include "kiln/auth.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/util.h"

#define PULL_USAGE                                                                                                     \
  "pull [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [--authfile FILE] [--cert-dir DIR]\n"                      \
  "                 [--retry N] [--retry-delay DURATION] [--jobs N] [-q] REFERENCE"
#define PUSH_USAGE                                                                                                     \
  "push [--tls-verify=false] [--digestfile FILE] [--authfile FILE] [--cert-dir DIR] [--retry N]\n"                     \
  "                 [--retry-delay DURATION] [--jobs N] [--chunk-size BYTES] [-q] IMAGE [DESTINATION]"
#define LOGIN_USAGE                                                                                                    \
  "login [-u USER] [-p PASSWORD | --password-stdin] [--tls-verify=false] [--authfile FILE] [--cert-dir DIR] REGISTRY"
#define LOGOUT_USAGE "logout [--authfile FILE] REGISTRY"

/* Options shared by the four verbs; each verb rejects what it does not take. */
struct ropts {
  struct kiln_registry_opts o;
  const char *digestfile, *user, *password;
  bool password_stdin, quiet;
  char **pos; /* positional arguments */
  atomic_int n_present, n_fetched, n_mounted, n_uploaded;
};

/* Value of "--name VALUE" or "--name=VALUE" at argv[*i]; NULL when argv[*i] is not it. */
static const char *
opt_value (int argc, char **argv, int *i, const char *name, bool *missing)
{
  size_t n = strlen (name);
  if (strncmp (argv[*i], name, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != '\0')
    return NULL;
  if (*i + 1 >= argc)
    {
      *missing = true;
      return NULL;
    }
  return argv[++*i];
}

static int
parse_tls (const char *arg, struct ropts *r)
{
  if (strcmp (arg, "--tls-verify") == 0 || strcmp (arg, "--tls-verify=true") == 0)
    r->o.tls_verify = true;
  else if (strcmp (arg, "--tls-verify=false") == 0)
    r->o.tls_verify = false;
  else
    return -1;
  return 0;
}

static int
parse_one (const char *verb, int argc, char **argv, int *i, struct ropts *r)
{
  bool miss = false;
  const char *v;
  long n;
  if (parse_tls (argv[*i], r) == 0)
    return 0;
  if (strcmp (argv[*i], "-q") == 0 || strcmp (argv[*i], "--quiet") == 0)
    return r->quiet = true, 0;
  if (strcmp (argv[*i], "--password-stdin") == 0)
    return r->password_stdin = true, 0;
  if ((v = opt_value (argc, argv, i, "--platform", &miss)))
    return r->o.platform = v, 0;
  if ((v = opt_value (argc, argv, i, "--authfile", &miss)))
    return r->o.auth_file = v, 0;
  if ((v = opt_value (argc, argv, i, "--cert-dir", &miss)))
    return r->o.cert_dir = v, 0;
  if ((v = opt_value (argc, argv, i, "--digestfile", &miss)))
    return r->digestfile = v, 0;
  if ((v = opt_value (argc, argv, i, "-u", &miss)) || (v = opt_value (argc, argv, i, "--username", &miss)))
    return r->user = v, 0;
  if ((v = opt_value (argc, argv, i, "-p", &miss)) || (v = opt_value (argc, argv, i, "--password", &miss)))
    return r->password = v, 0;
  if ((v = opt_value (argc, argv, i, "--retry-delay", &miss)))
    return kiln_cmd_parse_delay_ms (v, &r->o.retry_delay_ms) < 0
               ? kiln_cmd_usage_error (verb, "invalid --retry-delay `%s` (e.g. 500ms, 2s)", v)
               : 0;
  if ((v = opt_value (argc, argv, i, "--retry", &miss)))
    return kiln_cmd_parse_long (v, 0, 100, &n) < 0 ? kiln_cmd_usage_error (verb, "invalid --retry `%s`", v)
                                                   : (r->o.retries = (int) n, 0);
  if ((v = opt_value (argc, argv, i, "--jobs", &miss)))
    return kiln_cmd_parse_long (v, 1, 16, &n) < 0 ? kiln_cmd_usage_error (verb, "invalid --jobs `%s` (1-16)", v)
                                                  : (r->o.jobs = (int) n, 0);
  if ((v = opt_value (argc, argv, i, "--chunk-size", &miss)))
    return kiln_cmd_parse_long (v, 1, 1L << 40, &n) < 0 ? kiln_cmd_usage_error (verb, "invalid --chunk-size `%s`", v)
                                                        : (r->o.chunk_size = n, 0);
  if (miss)
    return kiln_cmd_usage_error (verb, "option `%s` needs a value", argv[*i]);
  return kiln_cmd_usage_error (verb, "unknown option `%s`", argv[*i]);
}

/* Parses argv into r; `allowed` lists the options the verb takes (by prefix).
 * Returns -1 to go on, else the exit status. */
static int
parse_args (const char *verb, const char *usage, const char *allowed, int argc, char **argv, int min, int max,
            struct ropts *r)
{
  kiln_registry_opts_init (&r->o);
  if (kiln_cmd_wants_help (argc, argv))
    {
      printf ("usage: kiln %s\n", usage);
      return 0;
    }
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--") == 0)
        {
          while (++i < argc)
            kiln_strv_push (&r->pos, argv[i]);
          break;
        }
      if (argv[i][0] != '-' || argv[i][1] == '\0')
        {
          kiln_strv_push (&r->pos, argv[i]);
          continue;
        }
      size_t n = strcspn (argv[i], "=");
      kiln_autofree char *name = kiln_xasprintf (" %.*s ", (int) n, argv[i]);
      if (strstr (allowed, name) == NULL)
        return kiln_cmd_usage_error (verb, "unknown option `%s`", argv[i]);
      int st = parse_one (verb, argc, argv, &i, r);
      if (st != 0)
        return st;
    }
  int np = (int) kiln_strv_len (r->pos);
  if (np < min || np > max)
    return kiln_cmd_usage_error (verb, "expected: kiln %s", usage);
  return -1;
}

static void
on_event (void *opaque, enum kiln_registry_event ev, const char *what)
{
  struct ropts *r = opaque;
  static const char *const words[] = { "already present", "fetched", "mounted", "uploaded", "written" };
  atomic_int *ctr[] = { &r->n_present, &r->n_fetched, &r->n_mounted, &r->n_uploaded, NULL };
  if (ctr[ev])
    atomic_fetch_add (ctr[ev], 1);
  if (!r->quiet)
    fprintf (stderr, "%s %.19s: %s\n", ev == KILN_REGISTRY_MANIFEST_DONE ? "manifest" : "blob", what, words[ev]);
}

int
kiln_cmd_pull (struct kiln_cli *cli, int argc, char **argv)
{
  struct ropts r = { 0 };
  int st = parse_args ("pull", PULL_USAGE,
                       " --platform --tls-verify --authfile --cert-dir --retry --retry-delay --jobs -q --quiet ", argc,
                       argv, 1, 1, &r);
  kiln_autostrv char **pos = r.pos;
  if (st >= 0)
    return st;
  r.o.on_event = on_event, r.o.opaque = &r;
  struct kiln_descriptor d = { 0 };
  struct kiln_error *err = NULL;
  struct kiln_store *store = NULL;
  int ret = kiln_cmd_open_context (cli, &r.o, &store, &err);
  if (ret == 0)
    ret = kiln_registry_pull (store, pos[0], &r.o, &d, &err);
  if (ret == 0)
    printf ("%s\n", d.digest.s);
  kiln_descriptor_clear (&d);
  kiln_store_free (store);
  return ret < 0 ? kiln_cmd_fail (&err) : 0;
}

static int
write_digestfile (const char *path, const struct kiln_digest *d, struct kiln_error **err)
{
  kiln_autoclose int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  return kiln_fs_write_all (fd, d->s, strlen (d->s), err);
}

int
kiln_cmd_push (struct kiln_cli *cli, int argc, char **argv)
{
  struct ropts r = { 0 };
  int st = parse_args ("push", PUSH_USAGE,
                       " --tls-verify --digestfile --authfile --cert-dir --retry --retry-delay --jobs --chunk-size -q "
                       "--quiet ",
                       argc, argv, 1, 2, &r);
  kiln_autostrv char **pos = r.pos;
  if (st >= 0)
    return st;
  r.o.on_event = on_event, r.o.opaque = &r;
  struct kiln_digest d;
  struct kiln_error *err = NULL;
  struct kiln_store *store = NULL;
  /* a lazy layer is fetched only if the destination has to get its bytes */
  int ret = kiln_cmd_open_context (cli, &r.o, &store, &err);
  if (ret == 0)
    ret = kiln_registry_push (store, pos[0], pos[1], &r.o, &d, &err);
  if (ret == 0 && r.digestfile)
    ret = write_digestfile (r.digestfile, &d, &err);
  if (ret == 0 && !r.quiet)
    fprintf (stderr, "pushed %s: %d blobs uploaded, %d mounted, %d already present\n", d.s, atomic_load (&r.n_uploaded),
             atomic_load (&r.n_mounted), atomic_load (&r.n_present));
  kiln_store_free (store);
  return ret < 0 ? kiln_cmd_fail (&err) : 0;
}

/* Reads one line from the terminal, echo off when secret. */
static char *
prompt (const char *what, bool secret)
{
  kiln_autofclose FILE *tty = fopen ("/dev/tty", "r+e");
  struct termios old, t;
  char line[1024];
  if (tty == NULL)
    return NULL;
  fprintf (tty, "%s: ", what);
  fflush (tty);
  bool echo_off = secret && tcgetattr (fileno (tty), &old) == 0;
  if (echo_off)
    {
      t = old;
      t.c_lflag &= ~(tcflag_t) ECHO;
      tcsetattr (fileno (tty), TCSAFLUSH, &t);
    }
  char *s = fgets (line, sizeof line, tty);
  if (echo_off)
    {
      tcsetattr (fileno (tty), TCSAFLUSH, &old);
      fputc ('\n', tty);
    }
  char *out = s ? kiln_xstrndup (line, strcspn (line, "\r\n")) : NULL;
  explicit_bzero (line, sizeof line);
  return out;
}

static char *
read_password_stdin (struct kiln_error **err)
{
  struct kiln_buf b = KILN_BUF_INIT;
  if (kiln_fs_read_fd (0, 1u << 20, &b, err) < 0)
    {
      kiln_buf_release (&b);
      return NULL;
    }
  while (b.len > 0 && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '\r'))
    b.buf[--b.len] = '\0';
  return kiln_buf_detach (&b, NULL);
}

static int
login_credentials (struct ropts *r, char **user, char **pass, struct kiln_error **err)
{
  if (r->password && r->password_stdin)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--password and --password-stdin exclude each other");
  if (r->password_stdin && !r->user)
    return kiln_error_set (err, 0, KILN_E_USAGE, "--password-stdin needs --username");
  *user = r->user ? kiln_xstrdup (r->user) : prompt ("Username", false);
  if (*user == NULL || **user == '\0')
    return kiln_error_set (err, 0, KILN_E_USAGE, "no username (use -u USER)");
  if (r->password)
    {
      kiln_log_warn ("a password on the command line is visible to other users; use --password-stdin");
      *pass = kiln_xstrdup (r->password);
    }
  else
    *pass = r->password_stdin ? read_password_stdin (err) : prompt ("Password", true);
  if (*pass == NULL)
    return *err ? -1 : kiln_error_set (err, 0, KILN_E_USAGE, "no password (use --password-stdin)");
  return 0;
}

static void
free_secret (char *s)
{
  if (s)
    explicit_bzero (s, strlen (s));
  free (s);
}

int
kiln_cmd_login (struct kiln_cli *cli, int argc, char **argv)
{
  struct ropts r = { 0 };
  int st = parse_args ("login", LOGIN_USAGE,
                       " -u --username -p --password --password-stdin --tls-verify --authfile --cert-dir ", argc, argv,
                       1, 1, &r);
  kiln_autostrv char **pos = r.pos;
  (void) cli;
  if (st >= 0)
    return st;
  kiln_autofree char *host = kiln_auth_normalize_key (pos[0]);
  kiln_autofree char *file = r.o.auth_file ? kiln_xstrdup (r.o.auth_file) : kiln_auth_default_file ();
  char *user = NULL, *pass = NULL;
  struct kiln_error *err = NULL;
  int ret = login_credentials (&r, &user, &pass, &err);
  if (ret == 0)
    ret = kiln_registry_login_check (host, user, pass, &r.o, &err);
  if (ret == 0)
    ret = kiln_auth_store (file, host, user, pass, &err);
  free (user);
  free_secret (pass);
  if (ret < 0)
    return kiln_cmd_fail (&err);
  printf ("login succeeded for `%s`\n", host);
  return 0;
}

int
kiln_cmd_logout (struct kiln_cli *cli, int argc, char **argv)
{
  struct ropts r = { 0 };
  int st = parse_args ("logout", LOGOUT_USAGE, " --authfile ", argc, argv, 1, 1, &r);
  kiln_autostrv char **pos = r.pos;
  (void) cli;
  if (st >= 0)
    return st;
  kiln_autofree char *host = kiln_auth_normalize_key (pos[0]);
  kiln_autofree char *file = r.o.auth_file ? kiln_xstrdup (r.o.auth_file) : kiln_auth_default_file ();
  struct kiln_error *err = NULL;
  if (kiln_auth_remove (file, host, &err) < 0)
    return kiln_cmd_fail (&err);
  printf ("removed credentials for `%s`\n", host);
  return 0;
}
