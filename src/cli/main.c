/* main.c - global options, then dispatch to cmd_*.c; nothing else lives here. */
#include <stdio.h>
#include <curl/curl.h>
#include <string.h>
#include "cmd.h"
#include "kiln/log.h"

static const struct {
  const char *name;
  kiln_cmd_fn fn;
  const char *help;
} verbs[] = {
  { "build", kiln_cmd_build, "build an image from a Dockerfile and a context" },
  { "images", kiln_cmd_images, "list the tagged images in the store" },
  { "inspect", kiln_cmd_inspect, "print an image's manifest and config as JSON" },
  { "tag", kiln_cmd_tag, "give an image another name" },
  { "rmi", kiln_cmd_rmi, "remove an image name" },
  { "save", kiln_cmd_save, "write an image as an OCI layout, oci-archive or docker-archive" },
  { "pull", kiln_cmd_pull, "fetch an image from a registry into the store" },
  { "push", kiln_cmd_push, "upload an image to a registry" },
  { "login", kiln_cmd_login, "store credentials for a registry" },
  { "logout", kiln_cmd_logout, "remove stored credentials for a registry" },
  { "run", kiln_cmd_run, "run a command in a container of an image" },
  { "prune", kiln_cmd_prune, "remove unused blobs, snapshots and cache records" },
  { "store", kiln_cmd_store, "store maintenance (`kiln store check`)" },
  { "version", kiln_cmd_version, "print the version" },
};

static int
usage (FILE *f, int status)
{
  fprintf (f, "usage: kiln [--root DIR] [--debug] COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf (f, "  %-9s %s\n", verbs[i].name, verbs[i].help);
  fprintf (f, "\n`kiln COMMAND --help` describes a command.\n");
  return status;
}

int
main (int argc, char **argv)
{
  struct kiln_cli cli = { .argv0 = argv[0], .lease_fd = -1 };
  int i = 1;
  /* before any thread: stages pull at once, and libcurl's global set-up is
   * not safe to race (curl_global_init(3)) */
  curl_global_init (CURL_GLOBAL_DEFAULT);
  for (; i < argc && argv[i][0] == '-'; i++)
    {
      if (strcmp (argv[i], "--root") == 0 && i + 1 < argc)
        cli.root = argv[++i];
      else if (strncmp (argv[i], "--root=", 7) == 0)
        cli.root = argv[i] + 7;
      else if (strcmp (argv[i], "--debug") == 0)
        kiln_log_set_level (KILN_LOG_DEBUG);
      else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
        return usage (stdout, 0);
      else if (strcmp (argv[i], "--version") == 0)
        return kiln_cmd_version (&cli, 1, argv);
      else
        return kiln_cmd_usage_error (NULL, "unknown global option `%s`", argv[i]);
    }
  if (i >= argc)
    return usage (stderr, 2);
  if (!cli.root)
    cli.root = kiln_cmd_default_root (); /* freed at exit */
  for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++)
    if (strcmp (argv[i], verbs[v].name) == 0)
      return verbs[v].fn (&cli, argc - i, argv + i);
  return kiln_cmd_usage_error (NULL, "unknown command `%s`", argv[i]);
}
