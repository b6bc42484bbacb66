/* fuzz_oci - OCI and Docker documents from registries and layouts: image
 * config, manifest, index, the --cache-from cache document, and the local
 * cache record (src/image/oci_config.c, oci_manifest.c, oci_index.c,
 * cache_export.c; cache.c through its public API).
 *
 * Input: one selector byte, then the JSON document.  Oracle (round trip):
 * whatever parses serialises, the serialisation parses, and serialising
 * that again gives the same bytes, so what kiln stores and hashes is
 * stable.  A cache record goes through a scratch store: written where
 * kiln_cache_get looks, read, put back, read again, and compared. */
#include "fuzz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/cache.h"
#include "kiln/cache_export.h"
#include "kiln/fs.h"
#include "kiln/oci.h"
#include "kiln/store.h"

typedef int (*from_fn) (const char *, size_t, void *, struct kiln_error **);
typedef int (*to_fn) (const void *, char **, size_t *, struct kiln_error **);
typedef void (*clear_fn) (void *);

struct doc {
  const char *name;
  size_t size;
  from_fn from;
  to_fn to;
  clear_fn clear;
};

static const struct doc docs[] = {
  { "image config", sizeof (struct kiln_image_config), (from_fn) kiln_image_config_from_json,
    (to_fn) kiln_image_config_to_json, (clear_fn) kiln_image_config_clear },
  { "manifest", sizeof (struct kiln_manifest), (from_fn) kiln_manifest_from_json, (to_fn) kiln_manifest_to_json,
    (clear_fn) kiln_manifest_clear },
  { "index", sizeof (struct kiln_index), (from_fn) kiln_index_from_json, (to_fn) kiln_index_to_json,
    (clear_fn) kiln_index_clear },
  { "cache document", sizeof (struct kiln_cache_doc), (from_fn) kiln_cache_doc_from_json,
    (to_fn) kiln_cache_doc_to_json, (clear_fn) kiln_cache_doc_clear },
};

static void
round_trip (const struct doc *d, const char *data, size_t size)
{
  /* big enough for any of the structs above, zeroed as callers do */
  _Alignas(max_align_t) unsigned char a[512] = { 0 }, b[512] = { 0 };
  char *j1 = NULL, *j2 = NULL;
  size_t l1 = 0, l2 = 0;
  struct kiln_error *err = NULL;
  if (d->size > sizeof a)
    abort ();
  if (d->from (data, size, a, &err) < 0)
    {
      kiln_error_free (&err);
      return;
    }
  if (d->to (a, &j1, &l1, &err) < 0)
    fuzz_fail ("%s: parsed, but does not serialise: %s", d->name, err->msg);
  if (d->from (j1, l1, b, &err) < 0)
    fuzz_fail ("%s: serialised as %.*s, which does not parse: %s", d->name, (int) l1, j1, err->msg);
  if (d->to (b, &j2, &l2, &err) < 0)
    fuzz_fail ("%s: the re-parsed document does not serialise: %s", d->name, err->msg);
  if (l1 != l2 || memcmp (j1, j2, l1) != 0)
    fuzz_fail ("%s: round trip differs:\n%.*s\n%.*s", d->name, (int) l1, j1, (int) l2, j2);
  d->clear (a);
  d->clear (b);
  free (j1);
  free (j2);
}

/* ---- cache records, through a scratch store ---- */

static struct kiln_store *store;
static char store_dir[64];
#define FUZZ_KEY "sha256:0000000000000000000000000000000000000000000000000000000000000001"

static void
remove_scratch (void)
{
  struct kiln_error *err = NULL;
  kiln_fs_rm_rf_at (AT_FDCWD, store_dir, &err);
  kiln_error_free (&err);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc, (void) argv;
  struct kiln_error *err = NULL;
  snprintf (store_dir, sizeof store_dir, "/tmp/kiln-fuzz-store-XXXXXX");
  if (mkdtemp (store_dir) == NULL || kiln_store_open (store_dir, &store, &err) < 0)
    fuzz_fail ("cannot open a scratch store in %s", store_dir);
  mkdirat (kiln_store_dirfd (store), "cache", 0755);
  mkdirat (kiln_store_dirfd (store), "cache/records", 0755);
  atexit (remove_scratch);
  return 0;
}

static bool
same_str (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

static void
same_record (const struct kiln_cache_record *a, const struct kiln_cache_record *b)
{
  size_t i = 0;
  if (strcmp (a->key.s, b->key.s) || strcmp (a->parent.s, b->parent.s) || !same_str (a->instruction, b->instruction)
      || !same_str (a->created, b->created) || a->has_layer != b->has_layer)
    fuzz_fail ("cache record changed through put/get");
  if (a->has_layer
      && (strcmp (a->layer.digest.s, b->layer.digest.s) || a->layer.size != b->layer.size
          || !same_str (a->layer.media_type, b->layer.media_type) || strcmp (a->diff_id.s, b->diff_id.s)))
    fuzz_fail ("cache record layer changed through put/get");
  for (; a->inputs && b->inputs && a->inputs[i] && b->inputs[i]; i++)
    if (strcmp (a->inputs[i], b->inputs[i]) != 0)
      fuzz_fail ("cache record input %zu changed through put/get", i);
  if ((a->inputs && a->inputs[i]) || (b->inputs && b->inputs[i]))
    fuzz_fail ("cache record inputs changed in number through put/get");
}

static void
drop_record (const struct kiln_cache_record *r)
{
  int dfd = kiln_store_dirfd (store);
  char rel[200];
  snprintf (rel, sizeof rel, "cache/records/%s.json", kiln_digest_hex (&r->key));
  unlinkat (dfd, rel, 0);
  snprintf (rel, sizeof rel, "cache/children/%s/%s", kiln_digest_hex (&r->parent), kiln_digest_hex (&r->key));
  unlinkat (dfd, rel, 0);
  snprintf (rel, sizeof rel, "cache/children/%s", kiln_digest_hex (&r->parent));
  unlinkat (dfd, rel, AT_REMOVEDIR);
}

static void
cache_record (const uint8_t *data, size_t size)
{
  struct kiln_digest key;
  struct kiln_cache_record r1 = { 0 }, r2 = { 0 }, sib = { 0 };
  struct kiln_error *err = NULL;
  int dfd = kiln_store_dirfd (store);
  char rel[200];
  kiln_digest_parse (FUZZ_KEY, &key, &err);
  snprintf (rel, sizeof rel, "cache/records/%s.json", kiln_digest_hex (&key));
  int fd = openat (dfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write (fd, data, size) != (ssize_t) size)
    abort ();
  close (fd);
  if (kiln_cache_get (store, &key, &r1, &err) == 0)
    {
      char in0[] = "RUN\tmake", in1[] = "ARG X\t1";
      char *const now[] = { in0, in1, NULL };
      free (kiln_cache_explain (r1.inputs ? r1.inputs : (char *const[]){ NULL }, now));
      unlinkat (dfd, rel, 0);
      if (kiln_cache_put (store, &r1, &err) < 0)
        fuzz_fail ("cache record read, but cannot be written: %s", err->msg);
      if (kiln_cache_get (store, &r1.key, &r2, &err) != 0)
        fuzz_fail ("cache record written, but cannot be read: %s", err ? err->msg : "absent");
      same_record (&r1, &r2);
      if (r1.instruction && kiln_cache_find_sibling (store, &r1.parent, r1.instruction, &sib, &err) < 0)
        kiln_error_free (&err);
      drop_record (&r1);
    }
  unlinkat (dfd, rel, 0);
  kiln_cache_record_clear (&r1);
  kiln_cache_record_clear (&r2);
  kiln_cache_record_clear (&sib);
  kiln_error_free (&err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned sel = data[0] % 5;
  if (sel < 4)
    round_trip (&docs[sel], (const char *) data + 1, size - 1);
  else
    cache_record (data + 1, size - 1);
  return 0;
}
