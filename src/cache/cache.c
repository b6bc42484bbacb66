/* cache.c - step keys and step records: one record per key, the children
 * index of a parent key (a miss is explained against its sibling), and the
 * explanation itself.  The small memos beside them (ADD <url> validators,
 * recompressed layers) are in cache_memo.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cache.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "../image/oci-internal.h"

#define RECORD_MAX (16u << 20)

void
kiln_cache_key_init (struct kiln_cache_key *k, const struct kiln_digest *parent)
{
  k->h = kiln_sha256_new ();
  kiln_cache_key_add (k, "kiln-cache-v1", parent ? parent->s : "");
}

void
kiln_cache_key_add (struct kiln_cache_key *k, const char *field, const char *value)
{
  char len[64];
  const char *v = value ? value : "";
  /* length-prefixed so ("ab","c") and ("a","bc") never collide */
  int n = snprintf (len, sizeof len, "%zu:%zu:", strlen (field), strlen (v));
  kiln_sha256_update (k->h, len, (size_t) n);
  kiln_sha256_update (k->h, field, strlen (field));
  kiln_sha256_update (k->h, v, strlen (v));
  kiln_sha256_update (k->h, value ? "+" : "-", 1);
}

void
kiln_cache_key_addf (struct kiln_cache_key *k, const char *field, const char *fmt, ...)
{
  va_list ap;
  char *v;
  va_start (ap, fmt);
  if (vasprintf (&v, fmt, ap) < 0)
    abort ();
  va_end (ap);
  kiln_cache_key_add (k, field, v);
  free (v);
}

void
kiln_cache_key_final (struct kiln_cache_key *k, struct kiln_digest *out)
{
  kiln_sha256_final (k->h, out);
  kiln_cache_key_clear (k);
}

void
kiln_cache_key_clear (struct kiln_cache_key *k)
{
  kiln_sha256_free (k->h);
  k->h = NULL;
}

void
kiln_cache_record_clear (struct kiln_cache_record *r)
{
  free (r->instruction);
  free (r->created);
  kiln_descriptor_clear (&r->layer);
  kiln_strv_free (r->inputs);
  memset (r, 0, sizeof *r);
}

static int
cache_dir (struct kiln_store *st, const char *rel, struct kiln_error **err)
{
  return kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), rel, 0755, err);
}

static json_t *
record_to_json (const struct kiln_cache_record *r)
{
  json_t *j = json_object ();
  json_object_set_new (j, "key", json_string (r->key.s));
  json_object_set_new (j, "parent", json_string (r->parent.s));
  kiln_oci_set_str (j, "instruction", r->instruction);
  kiln_oci_set_str (j, "created", r->created);
  if (r->has_layer)
    {
      json_object_set_new (j, "layer", kiln_oci_descriptor_to_json (&r->layer));
      json_object_set_new (j, "diff_id", json_string (r->diff_id.s));
    }
  json_object_set_new (j, "inputs", kiln_oci_strv_to_json (r->inputs ? r->inputs : (char *[]){ NULL }));
  return j;
}

static int
record_from_json (const char *data, size_t len, struct kiln_cache_record *r, struct kiln_error **err)
{
  kiln_autojson json_t *j = NULL;
  json_t *layer = NULL;
  const struct kiln_jpath p = { "cache record", "" }, lp = { "cache record", "layer." };
  kiln_autofree char *key = NULL, *parent = NULL, *diff = NULL;
  if (kiln_oci_load (data, len, "cache record", &j, err) < 0 || kiln_oci_get_str (j, "key", &p, true, &key, err) < 0
      || kiln_oci_get_str (j, "parent", &p, true, &parent, err) < 0
      || kiln_oci_get_str (j, "instruction", &p, false, &r->instruction, err) < 0
      || kiln_oci_get_str (j, "created", &p, false, &r->created, err) < 0
      || kiln_oci_get_strv (j, "inputs", &p, &r->inputs, err) < 0
      || kiln_oci_get_obj (j, "layer", &p, false, &layer, err) < 0
      || kiln_oci_get_str (j, "diff_id", &p, false, &diff, err) < 0)
    return -1;
  if (kiln_digest_parse (key, &r->key, err) < 0 || kiln_digest_parse (parent, &r->parent, err) < 0)
    return kiln_error_wrap (err, "cache record");
  if (layer)
    {
      r->has_layer = true;
      if (kiln_oci_descriptor_from_json (layer, &lp, &r->layer, err) < 0
          || kiln_digest_parse (diff, &r->diff_id, err) < 0)
        return kiln_error_wrap (err, "cache record");
    }
  return 0;
}

static int
read_record (struct kiln_store *st, const char *rel, struct kiln_cache_record *r, struct kiln_error **err)
{
  struct kiln_buf b = KILN_BUF_INIT;
  kiln_autoclose int fd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY, 0, err);
  if (fd < 0)
    {
      if ((*err)->kind != KILN_E_NOTFOUND)
        return -1;
      kiln_error_free (err);
      return 1;
    }
  int ret = kiln_fs_read_fd (fd, RECORD_MAX, &b, err);
  if (ret == 0)
    ret = record_from_json (b.buf, b.len, r, err);
  kiln_buf_release (&b);
  if (ret < 0)
    {
      kiln_cache_record_clear (r);
      return kiln_error_wrap (err, "read `%s`", rel);
    }
  return 0;
}

int
kiln_cache_get (struct kiln_store *st, const struct kiln_digest *key, struct kiln_cache_record *r,
                struct kiln_error **err)
{
  kiln_autofree char *rel = kiln_xasprintf ("cache/records/%s.json", kiln_digest_hex (key));
  return read_record (st, rel, r, err);
}

int
kiln_cache_put (struct kiln_store *st, const struct kiln_cache_record *r, struct kiln_error **err)
{
  kiln_autojson json_t *j = record_to_json (r);
  kiln_autofree char *text = NULL;
  kiln_autofree char *name = kiln_xasprintf ("%s.json", kiln_digest_hex (&r->key));
  kiln_autofree char *children = kiln_xasprintf ("cache/children/%s", kiln_digest_hex (&r->parent));
  size_t len;
  if (kiln_oci_dump (j, "cache record", &text, &len, err) < 0)
    return -1;
  kiln_autoclose int rfd = cache_dir (st, "cache/records", err);
  if (rfd < 0 || kiln_fs_write_atomic (rfd, name, text, len, 0644, err) < 0)
    return kiln_error_wrap (err, "write cache record");
  /* the children entry only points at the record; a stale one is ignored */
  kiln_autoclose int cfd = cache_dir (st, children, err);
  if (cfd < 0)
    return kiln_error_wrap (err, "write cache record");
  return kiln_fs_write_atomic (cfd, kiln_digest_hex (&r->key), r->instruction ? r->instruction : "",
                               r->instruction ? strlen (r->instruction) : 0, 0644, err);
}

void
kiln_cache_touch (struct kiln_store *st, const struct kiln_digest *key)
{
  kiln_autofree char *rel = kiln_xasprintf ("cache/records/%s.json", kiln_digest_hex (key));
  utimensat (kiln_store_dirfd (st), rel, NULL, AT_SYMLINK_NOFOLLOW);
}

int
kiln_cache_find_sibling (struct kiln_store *st, const struct kiln_digest *parent, const char *instruction,
                         struct kiln_cache_record *r, struct kiln_error **err)
{
  kiln_autofree char *rel = kiln_xasprintf ("cache/children/%s", kiln_digest_hex (parent));
  kiln_autoerror struct kiln_error *e = NULL;
  int dfd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY | O_DIRECTORY, 0, &e);
  if (dfd < 0)
    return 1;
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  struct timespec best = { 0, 0 };
  int found = 1;
  while (d && (de = readdir (d)))
    {
      struct stat sb;
      struct kiln_buf text = KILN_BUF_INIT;
      /* the newest by nanoseconds: a fast rebuild records several in one second */
      if (de->d_name[0] == '.' || fstatat (dirfd (d), de->d_name, &sb, 0) < 0
          || (found == 0
              && (sb.st_mtim.tv_sec < best.tv_sec
                  || (sb.st_mtim.tv_sec == best.tv_sec && sb.st_mtim.tv_nsec <= best.tv_nsec))))
        continue;
      int ok = kiln_fs_read_file (dirfd (d), de->d_name, 1 << 20, &text, &e) == 0
               && strcmp (text.buf, instruction) == 0;
      kiln_buf_release (&text);
      kiln_error_free (&e);
      kiln_autofree char *rrel = kiln_xasprintf ("cache/records/%s.json", de->d_name);
      struct kiln_cache_record cand = { 0 };
      if (!ok || read_record (st, rrel, &cand, &e) != 0)
        {
          kiln_error_free (&e);
          continue;
        }
      kiln_cache_record_clear (r);
      *r = cand;
      best = sb.st_mtim;
      found = 0;
    }
  (void) err;
  return found;
}

static const char *
input_value (char *const *v, const char *name, size_t nlen)
{
  for (size_t i = 0; v && v[i]; i++)
    if (strncmp (v[i], name, nlen) == 0 && v[i][nlen] == '\t')
      return v[i] + nlen + 1;
  return NULL;
}

bool
kiln_cache_changed_input (char *const *old_inputs, char *const *now_inputs, size_t *idx, const char **was)
{
  for (size_t i = 0; now_inputs && now_inputs[i]; i++)
    {
      const char *sp = strchr (now_inputs[i], '\t');
      size_t nlen = sp ? (size_t) (sp - now_inputs[i]) : strlen (now_inputs[i]);
      const char *old = input_value (old_inputs, now_inputs[i], nlen);
      if (!old)
        return false;
      if (sp && strcmp (old, sp + 1) != 0)
        {
          *idx = i, *was = old;
          return true;
        }
    }
  return false;
}

char *
kiln_cache_explain (char *const *old_inputs, char *const *now_inputs)
{
  for (size_t i = 0; now_inputs && now_inputs[i]; i++)
    {
      const char *sp = strchr (now_inputs[i], '\t');
      size_t nlen = sp ? (size_t) (sp - now_inputs[i]) : strlen (now_inputs[i]);
      const char *old = input_value (old_inputs, now_inputs[i], nlen);
      if (!old)
        return kiln_xasprintf ("%.*s is new", (int) nlen, now_inputs[i]);
      if (sp && strcmp (old, sp + 1) != 0)
        return kiln_xasprintf ("%.*s changed", (int) nlen, now_inputs[i]);
    }
  for (size_t i = 0; old_inputs && old_inputs[i]; i++)
    {
      const char *sp = strchr (old_inputs[i], '\t');
      size_t nlen = sp ? (size_t) (sp - old_inputs[i]) : strlen (old_inputs[i]);
      if (!input_value (now_inputs, old_inputs[i], nlen))
        return kiln_xasprintf ("%.*s went away", (int) nlen, old_inputs[i]);
    }
  return kiln_xstrdup ("an earlier step changed");
}
