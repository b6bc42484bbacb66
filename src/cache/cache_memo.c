/* cache_memo.c - small memos of the store's cache that save work and are
 * never needed for a correct result: the validators of each ADD <url>
 * download (ETag, content digest) and which blob a layer became under
 * --force-compression.  A missing or damaged one is ignored. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "kiln/cache.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* A small JSON file of the store's cache, or NULL when it is missing or
 * damaged: these files only save work, so losing one is no error. */
static json_t *
load_cache_json (struct kiln_store *st, const char *rel, size_t max)
{
  kiln_autoerror struct kiln_error *e = NULL;
  struct kiln_buf text = KILN_BUF_INIT;
  json_t *root = NULL;
  int fd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY, 0, &e);
  if (fd >= 0 && kiln_fs_read_fd (fd, max, &text, &e) == 0)
    root = json_loadb (text.buf, text.len, 0, NULL);
  if (fd >= 0)
    close (fd);
  kiln_buf_release (&text);
  return root;
}

/* Writes one of those files atomically under dir (created as needed). */
static int
save_cache_json (struct kiln_store *st, const char *dir, const char *name, json_t *root, const char *what,
                 struct kiln_error **err)
{
  kiln_autofree char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
  if (text == NULL)
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "encode %s", what);
  kiln_autoclose int dfd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), dir, 0755, err);
  if (dfd < 0 || kiln_fs_write_atomic (dfd, name, text, strlen (text), 0644, err) < 0)
    return kiln_error_wrap (err, "save %s", what);
  return 0;
}

/* ---- ADD <url> validators ---- */

#define URL_RECORD_MAX 4096

static char *
url_record_name (const char *url)
{
  struct kiln_digest id;
  kiln_digest_of (url, strlen (url), &id);
  return kiln_xasprintf ("%s.json", kiln_digest_hex (&id));
}

bool
kiln_url_record_get (struct kiln_store *st, const char *url, struct kiln_url_record *out)
{
  kiln_autofree char *name = url_record_name (url);
  kiln_autofree char *rel = kiln_xasprintf ("cache/urls/%s", name);
  kiln_autoerror struct kiln_error *e = NULL;
  const char *etag = NULL, *digest = NULL;
  json_int_t size = -1, mtime = -1;
  memset (out, 0, sizeof *out);
  json_t *root = load_cache_json (st, rel, URL_RECORD_MAX);
  bool ok = root
            && json_unpack (root, "{s:s, s:s, s:I, s:I}", "etag", &etag, "digest", &digest, "size", &size, "mtime",
                            &mtime)
                   == 0
            && *etag && size >= 0 && kiln_digest_parse (digest, &out->digest, &e) == 0;
  if (ok)
    {
      out->etag = kiln_xstrdup (etag);
      out->size = (uint64_t) size;
      out->mtime = mtime;
    }
  json_decref (root);
  return ok;
}

int
kiln_url_record_put (struct kiln_store *st, const char *url, const struct kiln_url_record *r, struct kiln_error **err)
{
  kiln_autofree char *name = url_record_name (url);
  kiln_autojson json_t *root = json_pack ("{s:s, s:s, s:I, s:I}", "etag", r->etag, "digest", r->digest.s, "size",
                                          (json_int_t) r->size, "mtime", (json_int_t) r->mtime);
  return save_cache_json (st, "cache/urls", name, root, "a download record", err);
}

void
kiln_url_record_clear (struct kiln_url_record *r)
{
  free (r->etag);
  memset (r, 0, sizeof *r);
}

/* ---- recompressed layers (build --force-compression) ---- */

static char *
recompressed_name (const struct kiln_digest *from, const char *media_type, int level)
{
  kiln_autofree char *id = kiln_xasprintf ("%s %s %d", from->s, media_type, level);
  struct kiln_digest d;
  kiln_digest_of (id, strlen (id), &d);
  return kiln_xasprintf ("%s.json", kiln_digest_hex (&d));
}

bool
kiln_recompressed_get (struct kiln_store *st, const struct kiln_digest *from, const char *media_type, int level,
                       struct kiln_descriptor *out)
{
  kiln_autofree char *name = recompressed_name (from, media_type, level);
  kiln_autofree char *rel = kiln_xasprintf ("cache/recompressed/%s", name);
  kiln_autoerror struct kiln_error *e = NULL;
  json_t *root = load_cache_json (st, rel, URL_RECORD_MAX);
  const char *digest = NULL;
  json_int_t size = -1;
  struct kiln_digest d;
  bool ok = root && json_unpack (root, "{s:s, s:I}", "digest", &digest, "size", &size) == 0 && size >= 0
            && kiln_digest_parse (digest, &d, &e) == 0 && kiln_store_blob_exists (st, &d, NULL);
  if (ok)
    {
      memset (out, 0, sizeof *out);
      out->media_type = kiln_xstrdup (media_type);
      out->digest = d;
      out->size = (int64_t) size;
    }
  json_decref (root);
  return ok;
}

int
kiln_recompressed_put (struct kiln_store *st, const struct kiln_digest *from, int level,
                       const struct kiln_descriptor *to, struct kiln_error **err)
{
  kiln_autofree char *name = recompressed_name (from, to->media_type, level);
  kiln_autojson json_t *root = json_pack ("{s:s, s:I}", "digest", to->digest.s, "size", (json_int_t) to->size);
  return save_cache_json (st, "cache/recompressed", name, root, "a recompression record", err);
}
