/* cmd_common.c - helpers of the command layer; the only code that prints errors. */
#include <errno.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cmd.h"
#include "kiln/cleanup.h"
#include "kiln/prune.h"
#include "kiln/ref.h"
#include "kiln/registry.h"
#include "kiln/sandbox.h"
#include "kiln/userns.h"
#include "kiln/util.h"

int
kiln_cmd_fail (struct kiln_error **err)
{
  kiln_autofree char *msg = kiln_error_format (*err);
  int status = (*err && (*err)->kind == KILN_E_USAGE) ? 2 : 1;
  fprintf (stderr, "kiln: error: %s\n", msg);
  kiln_error_free (err);
  return status;
}

int
kiln_cmd_usage_error (const char *verb, const char *fmt, ...)
{
  va_list ap;
  fputs ("kiln: error: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nsee `kiln %s%s--help`\n", verb ? verb : "", verb ? " " : "");
  return 2;
}

int
kiln_cmd_wants_help (int argc, char **argv)
{
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
      return 1;
  return 0;
}

char *
kiln_cmd_default_root (void)
{
  const char *xdg = getenv ("XDG_DATA_HOME"), *home = getenv ("HOME");
  if (geteuid () == 0)
    return kiln_xstrdup ("/var/lib/kiln");
  if (xdg && *xdg)
    return kiln_xasprintf ("%s/kiln", xdg);
  if (!home || !*home)
    {
      struct passwd *pw = getpwuid (geteuid ());
      home = pw ? pw->pw_dir : "/tmp";
    }
  return kiln_xasprintf ("%s/.local/share/kiln", home);
}

int
kiln_cmd_open_store (struct kiln_cli *cli, struct kiln_store **st, struct kiln_error **err)
{
  kiln_autofree char *def = cli->root ? NULL : kiln_cmd_default_root ();
  const char *root = cli->root ? cli->root : def;
  if (kiln_store_open (root, st, err) < 0)
    return -1;
  /* released when kiln exits: prune waits for (or refuses to run beside) us */
  if (cli->lease_fd < 0 && kiln_prune_lease (*st, &cli->lease_fd, err) < 0)
    {
      kiln_store_free (*st);
      *st = NULL;
      return -1;
    }
  return 0;
}

int
kiln_cmd_open_context (struct kiln_cli *cli, const struct kiln_registry_opts *ro, struct kiln_store **st,
                       struct kiln_error **err)
{
  if (kiln_cmd_open_store (cli, st, err) < 0)
    return -1;
  /* layers a lazily pulled or cache-hit image has only in a registry come
   * when first opened */
  if (ro)
    kiln_registry_install_fetcher (*st, ro);
  return 0;
}

int
kiln_cmd_normalize_ref (const char *s, char **out, struct kiln_error **err)
{
  struct kiln_ref r = { 0 };
  if (kiln_ref_parse (s, &r, err) < 0)
    {
      (*err)->kind = KILN_E_USAGE;
      return -1;
    }
  *out = kiln_ref_string (&r);
  kiln_ref_clear (&r);
  return 0;
}

int
kiln_cmd_isolate (struct kiln_error **err)
{
  if (kiln_userns_needed ())
    return kiln_userns_enter (err) < 0 ? -1 : 0;
  if (unshare (CLONE_NEWNS) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create a private mount namespace");
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "make the mount namespace private");
  return 0;
}

static volatile sig_atomic_t *signal_flag;

static void
on_signal (int sig)
{
  if (*signal_flag)
    {
      signal (sig, SIG_DFL);
      raise (sig);
      return;
    }
  *signal_flag = 1;
  kiln_sandbox_kill_all ();
}

void
kiln_cmd_on_signals (volatile sig_atomic_t *flag)
{
  struct sigaction sa = { .sa_handler = on_signal };
  signal_flag = flag;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
}

int
kiln_cmd_parse_delay_ms (const char *s, unsigned *out)
{
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (errno || end == s || v < 0 || v > 3600)
    return -1;
  if (strcmp (end, "ms") == 0)
    *out = (unsigned) v;
  else if (*end == '\0' || strcmp (end, "s") == 0)
    *out = (unsigned) (v * 1000);
  else
    return -1;
  return 0;
}

int
kiln_cmd_parse_long (const char *s, long min, long max, long *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}
