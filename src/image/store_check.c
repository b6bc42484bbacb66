/* store_check.c - `kiln store check`: every blob rehashed against its name,
 * every reference of index.json followed (manifests, configs, layers), and
 * blobs a registry holds for the store (kiln/sources.json) told apart from
 * missing ones.  It reads only; problems are reported, never repaired. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "store-internal.h"

void
kiln_store_report_clear (struct kiln_store_report *r)
{
  kiln_strv_free (r->problems);
  memset (r, 0, sizeof *r);
}

static void __attribute__ ((format (printf, 2, 3))) problem (struct kiln_store_report *r, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  va_end (ap);
  kiln_strv_push_take (&r->problems, s);
}

static void
check_one_blob (struct kiln_store *st, const char *name, struct kiln_store_report *r)
{
  struct kiln_error *e = NULL;
  struct kiln_digest d;
  struct stat sb;
  r->blobs++;
  if (strlen (name) != KILN_DIGEST_HEX_LEN || !kiln_store_is_hex (name))
    {
      r->bad_blobs++;
      problem (r, "stray file `blobs/sha256/%s` (not a sha256 digest name)", name);
      return;
    }
  kiln_autoclose int fd = kiln_fs_open_beneath (st->blobsfd, name, O_RDONLY | O_NOFOLLOW, 0, &e);
  if (fd < 0 || fstat (fd, &sb) < 0 || !S_ISREG (sb.st_mode) || kiln_digest_fd (fd, &d, NULL, &e) < 0)
    {
      r->bad_blobs++;
      problem (r, "blob `sha256:%s` cannot be read%s%s", name, e ? ": " : "", e ? e->msg : "");
      kiln_error_free (&e);
      return;
    }
  if (strcmp (kiln_digest_hex (&d), name) != 0)
    {
      r->bad_blobs++;
      problem (r, "blob `sha256:%s` is corrupt: its content has digest `%s`", name, d.s);
    }
}

static int
check_blobs (struct kiln_store *st, struct kiln_store_report *r, struct kiln_error **err)
{
  int fd = kiln_fs_open_beneath (st->blobsfd, ".", O_RDONLY | O_DIRECTORY, 0, err);
  if (fd < 0)
    return -1;
  kiln_autodir DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return kiln_error_set (err, errno, KILN_E_IO, "list `blobs/sha256`");
    }
  for (struct dirent *de; (errno = 0, de = readdir (d));)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      check_one_blob (st, de->d_name, r);
  if (errno)
    return kiln_error_set (err, errno, KILN_E_IO, "list `blobs/sha256`");
  return 0;
}

/* The digests kiln/sources.json knows a registry for (the registry client
 * writes it); an empty object when there is none. */
static json_t *
load_sources (struct kiln_store *st)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_autoerror struct kiln_error *e = NULL;
  json_t *j = NULL;
  if (kiln_fs_read_file (st->rootfd, "kiln/sources.json", KILN_STORE_MAX_INDEX, &b, &e) == 0)
    j = json_loadb (b.buf, b.len, 0, NULL);
  if (!json_is_object (j))
    {
      json_decref (j);
      j = json_object ();
    }
  return j;
}

static bool
is_remote (json_t *sources, const struct kiln_digest *d)
{
  json_t *a = json_object_get (sources, d->s);
  return json_is_array (a) && json_array_size (a) > 0;
}

/* One referenced blob: present, and of the size its descriptor claims.
 * A layer missing here but known to be in a registry is lazy, not lost. */
static bool
check_ref (struct kiln_store *st, const char *who, const char *what, const struct kiln_descriptor *d, json_t *sources,
           struct kiln_store_report *r)
{
  uint64_t size = 0;
  if (!kiln_store_blob_exists (st, &d->digest, &size))
    {
      if (sources && is_remote (sources, &d->digest))
        {
          r->remote++;
          return false;
        }
      r->missing++;
      problem (r, "image `%s`: %s `%s` is missing", who, what, d->digest.s);
      return false;
    }
  if (size != (uint64_t) d->size)
    {
      problem (r, "image `%s`: %s `%s` has %" PRIu64 " bytes, the descriptor says %" PRId64, who, what, d->digest.s,
               size, d->size);
      return false;
    }
  return true;
}

static void
check_manifest (struct kiln_store *st, const char *who, const struct kiln_descriptor *d, json_t *sources,
                struct kiln_store_report *r)
{
  struct kiln_manifest m = { 0 };
  struct kiln_error *e = NULL;
  if (!check_ref (st, who, "manifest", d, NULL, r))
    return;
  if (kiln_store_get_manifest (st, &d->digest, &m, &e) < 0)
    {
      problem (r, "image `%s`: %s", who, e->msg);
      kiln_error_free (&e);
      return;
    }
  check_ref (st, who, "config", &m.config, NULL, r);
  for (size_t i = 0; i < m.nlayers; i++)
    check_ref (st, who, "layer", &m.layers[i], sources, r);
  kiln_manifest_clear (&m);
}

static size_t
count_ingest (struct kiln_store *st)
{
  size_t n = 0;
  int fd = kiln_fs_open_beneath (st->ingestfd, ".", O_RDONLY | O_DIRECTORY, 0, NULL);
  kiln_autodir DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL)
    {
      if (fd >= 0)
        close (fd);
      return 0;
    }
  for (struct dirent *de; (de = readdir (d));)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      n++;
  return n;
}

int
kiln_store_check (struct kiln_store *st, struct kiln_store_report *r, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  struct kiln_error *e = NULL;
  memset (r, 0, sizeof *r);
  if (check_blobs (st, r, err) < 0)
    return kiln_error_wrap (err, "check store `%s`", st->root);
  r->ingest = count_ingest (st);
  if (kiln_store_list (st, &ix, &e) < 0)
    {
      /* an unreadable index is a finding about the store, not a failure to look */
      problem (r, "%s", e->msg);
      kiln_error_free (&e);
      return 0;
    }
  json_t *sources = load_sources (st);
  for (size_t i = 0; i < ix.nmanifests; i++)
    {
      const char *name = kiln_kvlist_get (&ix.manifests[i].annotations, KILN_ANNOT_REF_NAME);
      r->refs++;
      check_manifest (st, name ? name : ix.manifests[i].digest.s, &ix.manifests[i], sources, r);
    }
  json_decref (sources);
  kiln_index_clear (&ix);
  return 0;
}
