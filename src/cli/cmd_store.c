/* cmd_store.c - `kiln save`, `kiln store check`, `kiln version`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <archive.h>
#include <jansson.h>
#include <openssl/opensslv.h>
#include <zstd.h>
#include <curl/curl.h>
#include "cmd.h"
#include "kiln/image.h"
#include "kiln/ref.h"
#include "kiln/cleanup.h"
#include "kiln/prune.h"
#include "kiln/registry.h"
#include "kiln/util.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

static const char save_usage[] = "usage: kiln save [--format oci|oci-archive|docker-archive] -o PATH IMAGE\n";

static int
save (struct kiln_store *st, const char *image, const char *format, const char *path, struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  enum kiln_export_format fmt;
  if (strcmp (format, "oci") == 0 || strcmp (format, "oci-dir") == 0)
    fmt = KILN_EXPORT_OCI_DIR;
  else if (strcmp (format, "oci-archive") == 0)
    fmt = KILN_EXPORT_OCI_ARCHIVE;
  else if (strcmp (format, "docker-archive") == 0)
    fmt = KILN_EXPORT_DOCKER_ARCHIVE;
  else
    return kiln_error_set (err, 0, KILN_E_USAGE, "unknown --format `%s` (oci, oci-archive or docker-archive)", format);
  if (kiln_image_resolve (st, image, &d, err) < 0)
    return -1;
  kiln_autofree char *norm = NULL;
  kiln_autoerror struct kiln_error *ignored = NULL;
  const char *name = kiln_cmd_normalize_ref (image, &norm, &ignored) == 0 && !kiln_digest_valid (image) ? norm : NULL;
  kiln_autofree char *tag = name ? kiln_ref_tag_or_latest (name) : kiln_xstrdup ("latest");
  int ret = kiln_store_export (st, &d, name, tag, fmt, path, err);
  kiln_descriptor_clear (&d);
  return ret < 0 ? kiln_error_wrap (err, "save `%s` to `%s`", image, path) : 0;
}

int
kiln_cmd_save (struct kiln_cli *cli, int argc, char **argv)
{
  static const struct option opts[] = { { "format", required_argument, NULL, 'F' },
                                        { "output", required_argument, NULL, 'o' },
                                        { "help", no_argument, NULL, 'h' },
                                        { NULL, 0, NULL, 0 } };
  const char *format = "oci-archive", *out = NULL;
  int opt;
  if (kiln_cmd_wants_help (argc, argv))
    return fputs (save_usage, stdout), 0;
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long (argc, argv, ":o:", opts, NULL)) != -1)
    {
      if (opt == 'F')
        format = optarg;
      else if (opt == 'o')
        out = optarg;
      else
        return kiln_cmd_usage_error ("save", "bad option `%s`", argv[optind - 1]);
    }
  if (!out || optind != argc - 1)
    return kiln_cmd_usage_error ("save", "expected -o PATH and one IMAGE");
  struct kiln_error *err = NULL;
  struct kiln_store *st = NULL;
  struct kiln_registry_opts ro;
  kiln_registry_opts_init (&ro);
  int ret = kiln_cmd_open_context (cli, &ro, &st, &err);
  if (ret == 0)
    ret = save (st, argv[optind], format, out, &err);
  kiln_store_free (st);
  return ret < 0 ? kiln_cmd_fail (&err) : 0;
}

static int
check (struct kiln_store *st, struct kiln_error **err)
{
  struct kiln_store_report r = { 0 };
  if (kiln_store_check (st, &r, err) < 0)
    return -1;
  int status = 0;
  if (r.problems)
    {
      for (size_t i = 0; r.problems[i]; i++)
        fprintf (stderr, "kiln: store problem: %s\n", r.problems[i]);
      fprintf (stderr, "store `%s` has %zu problem(s)\n", kiln_store_root (st), kiln_strv_len (r.problems));
      status = 1;
    }
  else
    printf ("store ok: %zu blobs, %zu references verified\n", r.blobs, r.refs);
  if (r.remote)
    printf ("%zu layer reference(s) are remote (in a registry, fetched when needed)\n", r.remote);
  kiln_store_report_clear (&r);
  return status;
}

int
kiln_cmd_store (struct kiln_cli *cli, int argc, char **argv)
{
  if (kiln_cmd_wants_help (argc, argv) || argc < 2)
    {
      printf ("usage: kiln store check\n\n  check   rehash every blob and follow every reference\n");
      return argc < 2 ? 2 : 0;
    }
  if (strcmp (argv[1], "check") != 0 || argc != 2)
    return kiln_cmd_usage_error ("store", "unknown store command `%s`", argv[1]);
  struct kiln_error *err = NULL;
  struct kiln_store *st = NULL;
  int ret = kiln_cmd_open_store (cli, &st, &err);
  if (ret == 0)
    ret = check (st, &err);
  kiln_store_free (st);
  return ret < 0 ? kiln_cmd_fail (&err) : ret;
}

int
kiln_cmd_version (struct kiln_cli *cli, int argc, char **argv)
{
  (void) cli;
  if (kiln_cmd_wants_help (argc, argv))
    return puts ("usage: kiln version"), 0;
  printf ("kiln %s\n", KILN_VERSION);
  printf ("libarchive %s, %s, zstd %s, jansson %s, %s\n", archive_version_string () + 11, OPENSSL_VERSION_TEXT,
          ZSTD_versionString (), JANSSON_VERSION, curl_version ());
  return 0;
}

static const char prune_usage[]
    = "usage: kiln prune [--all] [--keep-storage SIZE] [--filter until=DURATION] [--wait]\n\n"
      "Removes blobs, snapshots and scratch space nothing references, and cache records:\n"
      "  --all                    every cache record and snapshot (tagged images stay)\n"
      "  --keep-storage SIZE      drop least recently used cache records until the store fits (e.g. 10GB)\n"
      "  --filter until=DURATION  drop cache records unused for longer than DURATION (e.g. 24h, 7d)\n"
      "  --wait                   wait for running builds instead of failing\n";

static int
prune_args (int argc, char **argv, struct kiln_prune_opts *o, struct kiln_error **err)
{
  static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
                                        { "keep-storage", required_argument, NULL, 'k' },
                                        { "filter", required_argument, NULL, 'f' },
                                        { "wait", no_argument, NULL, 'w' },
                                        { NULL, 0, NULL, 0 } };
  int opt;
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long (argc, argv, ":a", opts, NULL)) != -1)
    {
      if (opt == 'a')
        o->all = true;
      else if (opt == 'w')
        o->wait = true;
      else if (opt == 'k' && kiln_prune_parse_size (optarg, &o->keep_storage, err) < 0)
        return -1;
      else if (opt == 'f' && !kiln_str_has_prefix (optarg, "until="))
        return kiln_error_set (err, 0, KILN_E_USAGE, "unknown --filter `%s` (until=DURATION)", optarg);
      else if (opt == 'f' && kiln_prune_parse_duration (optarg + 6, &o->until, err) < 0)
        return -1;
      else if (opt == '?' || opt == ':')
        return kiln_error_set (err, 0, KILN_E_USAGE, "bad option `%s`", argv[optind - 1]);
    }
  if (optind != argc)
    return kiln_error_set (err, 0, KILN_E_USAGE, "unexpected argument `%s`", argv[optind]);
  return 0;
}

int
kiln_cmd_prune (struct kiln_cli *cli, int argc, char **argv)
{
  struct kiln_prune_opts o = { .keep_storage = -1 };
  struct kiln_prune_report r;
  struct kiln_error *err = NULL;
  struct kiln_store *st = NULL;
  if (kiln_cmd_wants_help (argc, argv))
    return fputs (prune_usage, stdout), 0;
  int ret = prune_args (argc, argv, &o, &err);
  if (ret == 0)
    ret = kiln_cmd_open_store (cli, &st, &err);
  if (ret == 0)
    {
      /* our own lease would block the exclusive lock */
      close (cli->lease_fd);
      cli->lease_fd = -1;
      ret = kiln_prune (st, &o, &r, &err);
    }
  kiln_store_free (st);
  if (ret < 0)
    return kiln_cmd_fail (&err);
  printf ("pruned %zu cache records, %zu blobs (%.1f MB), %zu snapshots, %zu scratch entries\n", r.records, r.blobs,
          (double) r.bytes / 1e6, r.snapshots, r.scratch);
  return 0;
}
