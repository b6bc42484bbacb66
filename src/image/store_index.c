/* store_index.c - the store's index.json: tags, untags, listing, and what a
 * name, digest or digest prefix resolves to.  Every update is a
 * read-modify-write under the store's lock (kiln_store_lock), written
 * atomically, so two processes tagging at once both keep their entries. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "store-internal.h"

int
kiln_store_read_index_at (int dirfd, struct kiln_index *out, struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *e = NULL;
  if (kiln_fs_read_file (dirfd, "index.json", KILN_STORE_MAX_INDEX, &b, &e) < 0)
    {
      if (e->kind != KILN_E_NOTFOUND)
        {
          if (err)
            *err = kiln_steal_ptr (&e);
          kiln_error_free (&e);
          return -1;
        }
      /* a missing index.json is an empty one (it is recreated on write) */
      kiln_error_free (&e);
      memset (out, 0, sizeof *out);
      out->media_type = kiln_xstrdup (KILN_MT_OCI_INDEX);
      return 0;
    }
  return kiln_index_from_json (b.buf, b.len, out, err);
}

int
kiln_store_write_index_at (int dirfd, const struct kiln_index *ix, struct kiln_error **err)
{
  kiln_autofree char *json = NULL;
  size_t len = 0;
  if (kiln_index_to_json (ix, &json, &len, err) < 0)
    return -1;
  return kiln_fs_write_atomic (dirfd, "index.json", json, len, 0644, err);
}

static bool
has_name (const struct kiln_descriptor *d, const char *name)
{
  const char *n = kiln_kvlist_get (&d->annotations, KILN_ANNOT_REF_NAME);
  return n && strcmp (n, name) == 0;
}

/* Drops every entry called name; returns how many were dropped. */
size_t
kiln_store_index_remove_name (struct kiln_index *ix, const char *name)
{
  size_t kept = 0, n = ix->nmanifests;
  for (size_t i = 0; i < n; i++)
    {
      if (has_name (&ix->manifests[i], name))
        kiln_descriptor_clear (&ix->manifests[i]);
      else
        ix->manifests[kept++] = ix->manifests[i];
    }
  ix->nmanifests = kept;
  return n - kept;
}

void
kiln_store_index_add (struct kiln_index *ix, const struct kiln_descriptor *d)
{
  ix->manifests = kiln_xrealloc (ix->manifests, (ix->nmanifests + 1) * sizeof *ix->manifests);
  memset (&ix->manifests[ix->nmanifests], 0, sizeof *ix->manifests);
  kiln_descriptor_copy (&ix->manifests[ix->nmanifests], d);
  ix->nmanifests++;
}

enum index_op { OP_TAG, OP_UNTAG };

/* True when name is on exactly one entry and that entry is desc with the
 * name added, so tagging again would write the same index.json. */
static bool
tagged_as (const struct kiln_index *ix, const char *name, const struct kiln_descriptor *desc)
{
  const struct kiln_descriptor *hit = NULL;
  for (size_t i = 0; i < ix->nmanifests; i++)
    if (has_name (&ix->manifests[i], name))
      {
        if (hit)
          return false;
        hit = &ix->manifests[i];
      }
  if (!hit)
    return false;
  struct kiln_descriptor want = { 0 };
  kiln_descriptor_copy (&want, desc);
  kiln_kvlist_set (&want.annotations, KILN_ANNOT_REF_NAME, name);
  bool same = kiln_descriptor_equal (hit, &want);
  kiln_descriptor_clear (&want);
  return same;
}

/* Read-modify-write of index.json under LOCK_EX, so two processes tagging at
 * the same time both keep their entries. */
static int
update_index (struct kiln_store *st, enum index_op op, const char *name, const struct kiln_descriptor *desc,
              struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  int r;
  if (kiln_store_lock (st, LOCK_EX, err) < 0)
    return -1;
  r = kiln_store_read_index_at (st->rootfd, &ix, err);
  if (r == 0 && op == OP_TAG && tagged_as (&ix, name, desc))
    ; /* a rebuild that changed nothing: index.json stays as it is */
  else if (r == 0)
    {
      size_t dropped = kiln_store_index_remove_name (&ix, name);
      if (op == OP_TAG)
        {
          kiln_store_index_add (&ix, desc);
          kiln_kvlist_set (&ix.manifests[ix.nmanifests - 1].annotations, KILN_ANNOT_REF_NAME, name);
        }
      if (op == OP_UNTAG && dropped == 0)
        r = kiln_error_set (err, 0, KILN_E_NOTFOUND, "no image named `%s`", name);
      else
        r = kiln_store_write_index_at (st->rootfd, &ix, err);
    }
  kiln_store_unlock (st);
  kiln_index_clear (&ix);
  return r;
}

int
kiln_store_tag (struct kiln_store *st, const char *name, const struct kiln_descriptor *manifest,
                struct kiln_error **err)
{
  if (update_index (st, OP_TAG, name, manifest, err) < 0)
    return kiln_error_wrap (err, "tag `%s` in store `%s`", name, st->root);
  return 0;
}

int
kiln_store_untag (struct kiln_store *st, const char *name, struct kiln_error **err)
{
  if (update_index (st, OP_UNTAG, name, NULL, err) < 0)
    return kiln_error_wrap (err, "untag `%s`", name);
  return 0;
}

int
kiln_store_list (struct kiln_store *st, struct kiln_index *out, struct kiln_error **err)
{
  int r;
  if (kiln_store_lock (st, LOCK_SH, err) < 0)
    return -1;
  r = kiln_store_read_index_at (st->rootfd, out, err);
  kiln_store_unlock (st);
  if (r < 0)
    return kiln_error_wrap (err, "read `index.json` of store `%s`", st->root);
  return 0;
}

bool
kiln_store_is_hex (const char *s)
{
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

/* The hex digits to match by prefix, or NULL when name is not digest-like. */
static const char *
digest_prefix (const char *name)
{
  const char *hex = kiln_str_has_prefix (name, "sha256:") ? name + 7 : name;
  size_t n = strlen (hex);
  if (n < 12 || n > KILN_DIGEST_HEX_LEN || !kiln_store_is_hex (hex))
    return NULL;
  return hex;
}

static int
resolve_in (const struct kiln_index *ix, const char *name, struct kiln_descriptor *out, struct kiln_error **err)
{
  const struct kiln_descriptor *found = NULL;
  const char *hex;
  for (size_t i = 0; i < ix->nmanifests; i++)
    if (has_name (&ix->manifests[i], name))
      found = &ix->manifests[i]; /* the last entry wins, as on write */
  if (found == NULL && (hex = digest_prefix (name)) != NULL)
    for (size_t i = 0; i < ix->nmanifests; i++)
      {
        const struct kiln_digest *d = &ix->manifests[i].digest;
        if (strncmp (kiln_digest_hex (d), hex, strlen (hex)) != 0)
          continue;
        /* several names may point at one manifest: only distinct digests are ambiguous */
        if (found && strcmp (found->digest.s, d->s) != 0)
          return kiln_error_set (err, 0, KILN_E_USAGE, "image id `%s` is ambiguous", name);
        found = &ix->manifests[i];
      }
  if (found == NULL)
    return kiln_error_set (err, 0, KILN_E_NOTFOUND, "no image `%s` in the store", name);
  memset (out, 0, sizeof *out);
  kiln_descriptor_copy (out, found);
  return 0;
}

int
kiln_store_resolve (struct kiln_store *st, const char *name, struct kiln_descriptor *out, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  if (kiln_store_list (st, &ix, err) < 0)
    return -1;
  int r = resolve_in (&ix, name, out, err);
  kiln_index_clear (&ix);
  return r;
}
