/* cmd_images.c - the store verbs: images, inspect, tag, rmi, save, store check, version. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd.h"
#include "kiln/image.h"
#include "kiln/cleanup.h"
#include "kiln/util.h"

#define DOC_MAX (4u << 20)

/* Opens the store, runs fn, prints its error: the shape of every verb here. */
#define KILN_WITH_STORE(cli, body)                                                                                     \
  do                                                                                                                   \
    {                                                                                                                  \
      struct kiln_error *err = NULL;                                                                                   \
      struct kiln_store *st = NULL;                                                                                    \
      int ret = kiln_cmd_open_store (cli, &st, &err);                                                                  \
      if (ret == 0)                                                                                                    \
        ret = (body);                                                                                                  \
      kiln_store_free (st);                                                                                            \
      return ret < 0 ? kiln_cmd_fail (&err) : ret;                                                                     \
    }                                                                                                                  \
  while (0)

static int
want_args (const char *verb, int argc, char **argv, int n, const char *usage)
{
  if (kiln_cmd_wants_help (argc, argv))
    {
      printf ("usage: kiln %s\n", usage);
      return 0;
    }
  if (argc - 1 != n)
    return kiln_cmd_usage_error (verb, "expected: kiln %s", usage);
  return -1;
}

static int64_t
image_size (struct kiln_store *st, const struct kiln_descriptor *d)
{
  struct kiln_manifest m = { 0 };
  kiln_autoerror struct kiln_error *err = NULL;
  int64_t total = d->size;
  if (kiln_store_get_manifest (st, &d->digest, &m, &err) < 0)
    return total;
  total += m.config.size;
  for (size_t i = 0; i < m.nlayers; i++)
    total += m.layers[i].size;
  kiln_manifest_clear (&m);
  return total;
}

static int
list_images (struct kiln_store *st, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  if (kiln_store_list (st, &ix, err) < 0)
    return -1;
  printf ("%-50s %-14s %s\n", "NAME", "DIGEST", "SIZE");
  for (size_t i = 0; i < ix.nmanifests; i++)
    {
      const char *name = kiln_kvlist_get (&ix.manifests[i].annotations, KILN_ANNOT_REF_NAME);
      printf ("%-50s %.12s   %.1f MB\n", name ? name : "<none>", kiln_digest_hex (&ix.manifests[i].digest),
              (double) image_size (st, &ix.manifests[i]) / 1e6);
    }
  kiln_index_clear (&ix);
  return 0;
}

int
kiln_cmd_images (struct kiln_cli *cli, int argc, char **argv)
{
  int r = want_args ("images", argc, argv, 0, "images");
  if (r >= 0)
    return r;
  KILN_WITH_STORE (cli, list_images (st, &err));
}

static json_t *
load_json_blob (struct kiln_store *st, const struct kiln_digest *d, struct kiln_error **err)
{
  struct kiln_buf b = KILN_BUF_INIT;
  json_error_t je;
  if (kiln_store_blob_read (st, d, DOC_MAX, &b, err) < 0)
    return NULL;
  json_t *j = json_loadb (b.buf, b.len, 0, &je);
  kiln_buf_release (&b);
  if (!j)
    kiln_error_set (err, 0, KILN_E_PARSE, "blob `%s` is not JSON: %s", d->s, je.text);
  return j;
}

static int
inspect (struct kiln_store *st, const char *image, struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  struct kiln_manifest m = { 0 };
  kiln_autojson json_t *doc = NULL;
  kiln_autofree char *text = NULL;
  json_t *mj, *cj;
  int ret = -1;
  if (kiln_image_resolve (st, image, &d, err) < 0 || kiln_store_get_manifest (st, &d.digest, &m, err) < 0)
    goto out;
  mj = load_json_blob (st, &d.digest, err);
  cj = mj ? load_json_blob (st, &m.config.digest, err) : NULL;
  if (!cj)
    {
      json_decref (mj);
      goto out;
    }
  doc = json_pack ("{s:s, s:o, s:o}", "digest", d.digest.s, "manifest", mj, "config", cj);
  text = json_dumps (doc, JSON_INDENT (2) | JSON_SORT_KEYS);
  puts (text);
  ret = 0;
out:
  kiln_manifest_clear (&m);
  kiln_descriptor_clear (&d);
  return ret;
}

int
kiln_cmd_inspect (struct kiln_cli *cli, int argc, char **argv)
{
  int r = want_args ("inspect", argc, argv, 1, "inspect IMAGE");
  if (r >= 0)
    return r;
  KILN_WITH_STORE (cli, inspect (st, argv[1], &err));
}

static int
tag (struct kiln_store *st, const char *src, const char *dst, struct kiln_error **err)
{
  struct kiln_descriptor d = { 0 };
  kiln_autofree char *norm = NULL;
  int ret = kiln_cmd_normalize_ref (dst, &norm, err);
  if (ret == 0)
    ret = kiln_image_resolve (st, src, &d, err);
  if (ret == 0)
    ret = kiln_store_tag (st, norm, &d, err);
  kiln_descriptor_clear (&d);
  return ret;
}

int
kiln_cmd_tag (struct kiln_cli *cli, int argc, char **argv)
{
  int r = want_args ("tag", argc, argv, 2, "tag SOURCE TARGET");
  if (r >= 0)
    return r;
  KILN_WITH_STORE (cli, tag (st, argv[1], argv[2], &err));
}

static int
rmi (struct kiln_store *st, const char *image, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autofree char *norm = NULL;
  if (kiln_store_untag (st, image, &e) == 0)
    return printf ("untagged %s\n", image), 0;
  if (kiln_cmd_normalize_ref (image, &norm, err) < 0)
    return -1;
  if (kiln_store_untag (st, norm, err) < 0)
    return -1;
  printf ("untagged %s\n", norm);
  return 0;
}

int
kiln_cmd_rmi (struct kiln_cli *cli, int argc, char **argv)
{
  int r = want_args ("rmi", argc, argv, 1, "rmi IMAGE");
  if (r >= 0)
    return r;
  KILN_WITH_STORE (cli, rmi (st, argv[1], &err));
}
