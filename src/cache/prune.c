/* prune.c - garbage collection: cache records by age or size, then every
 * blob, snapshot and scratch dir nothing references. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "kiln/cache.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/prune.h"
#include "kiln/store.h"
#include "kiln/treesum.h"
#include "kiln/util.h"

#define JSON_MAX (8u << 20)

int
kiln_prune_lease (struct kiln_store *st, int *fd, struct kiln_error **err)
{
  *fd = openat (kiln_store_dirfd (st), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (*fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `gc.lock` in the store");
  while (flock (*fd, LOCK_SH) < 0)
    if (errno != EINTR)
      {
        close (*fd);
        *fd = -1;
        return kiln_error_set (err, errno, KILN_E_IO, "take the store lease");
      }
  return 0;
}

/* A set of strings (digests, chain ids), kept sorted for bsearch. */
struct strset {
  char **v;
  size_t n;
  bool sorted;
};

static void
set_add (struct strset *s, const char *x)
{
  kiln_strv_push (&s->v, x);
  s->n++;
  s->sorted = false;
}

static bool
set_has (struct strset *s, const char *x)
{
  if (!s->sorted && s->n)
    qsort (s->v, s->n, sizeof *s->v, kiln_strv_cmp);
  s->sorted = true;
  return s->n && bsearch (&x, s->v, s->n, sizeof *s->v, kiln_strv_cmp) != NULL;
}

struct record_file {
  char *name;  /* "<hex>.json" */
  time_t used; /* mtime: last build that hit or wrote it */
  struct kiln_cache_record r;
};

static int
cmp_used (const void *a, const void *b)
{
  const struct record_file *x = a, *y = b;
  return x->used < y->used ? -1 : x->used > y->used;
}

/* Every record, oldest use first; unreadable ones are garbage (name only). */
static int
load_records (struct kiln_store *st, struct record_file **out, size_t *n, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  int dfd = kiln_fs_open_beneath (kiln_store_dirfd (st), "cache/records", O_RDONLY | O_DIRECTORY, 0, &e);
  *out = NULL;
  *n = 0;
  if (dfd < 0)
    return e->kind == KILN_E_NOTFOUND ? 0 : kiln_error_set (err, e->errnum, KILN_E_IO, "open cache records");
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  while (d && (de = readdir (d)))
    {
      struct stat sb;
      struct kiln_digest key;
      kiln_autofree char *hex = kiln_xstrndup (de->d_name, strcspn (de->d_name, "."));
      kiln_autofree char *ds = kiln_xasprintf ("sha256:%s", hex);
      if (de->d_name[0] == '.' || fstatat (dirfd (d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      *out = kiln_xrealloc (*out, (*n + 1) * sizeof **out);
      struct record_file *rf = &(*out)[(*n)++];
      memset (rf, 0, sizeof *rf);
      rf->name = kiln_xstrdup (de->d_name);
      rf->used = sb.st_mtime;
      if (kiln_digest_parse (ds, &key, &e) < 0 || kiln_cache_get (st, &key, &rf->r, &e) != 0)
        kiln_error_free (&e);
    }
  if (*n > 1) /* qsort's array may not be NULL, even for no record */
    qsort (*out, *n, sizeof **out, cmp_used);
  return 0;
}

static void
add_chains (struct strset *chains, char *const *diff_ids)
{
  size_t n = kiln_strv_len (diff_ids);
  for (size_t i = 1; i <= n; i++)
    {
      struct kiln_digest c;
      kiln_oci_chain_id (diff_ids, i, &c);
      set_add (chains, kiln_digest_hex (&c));
    }
}

/* Blobs and snapshot chains the tagged images need. */
static int
mark_images (struct kiln_store *st, struct strset *blobs, struct strset *chains, struct kiln_error **err)
{
  struct kiln_index ix = { 0 };
  if (kiln_store_list (st, &ix, err) < 0)
    return -1;
  for (size_t i = 0; i < ix.nmanifests; i++)
    {
      struct kiln_manifest m = { 0 };
      struct kiln_image_config c = { 0 };
      kiln_autoerror struct kiln_error *e = NULL;
      set_add (blobs, ix.manifests[i].digest.s);
      if (kiln_store_get_manifest (st, &ix.manifests[i].digest, &m, &e) < 0)
        continue; /* not an image manifest: keep just the blob */
      set_add (blobs, m.config.digest.s);
      for (size_t l = 0; l < m.nlayers; l++)
        set_add (blobs, m.layers[l].digest.s);
      if (kiln_store_get_config (st, &m.config.digest, &c, &e) == 0)
        add_chains (chains, c.diff_ids);
      kiln_image_config_clear (&c);
      kiln_manifest_clear (&m);
    }
  kiln_index_clear (&ix);
  return 0;
}

static uint64_t
blob_size (struct kiln_store *st, const char *digest)
{
  struct kiln_digest d;
  uint64_t size = 0;
  kiln_autoerror struct kiln_error *e = NULL;
  if (kiln_digest_parse (digest, &d, &e) == 0)
    kiln_store_blob_exists (st, &d, &size);
  return size;
}

/* Bytes of the blobs the images and the kept records [first, n) need. */
static uint64_t
kept_size (struct kiln_store *st, struct strset *images, struct record_file *rec, size_t first, size_t n)
{
  struct strset all = { 0 };
  uint64_t total = 0;
  for (size_t i = 0; i < images->n; i++)
    set_add (&all, images->v[i]);
  for (size_t i = first; i < n; i++)
    if (rec[i].r.has_layer && !set_has (&all, rec[i].r.layer.digest.s))
      set_add (&all, rec[i].r.layer.digest.s);
  /* duplicates among images are few; sort and count each digest once */
  qsort (all.v, all.n, sizeof *all.v, kiln_strv_cmp);
  for (size_t i = 0; i < all.n; i++)
    if (i == 0 || strcmp (all.v[i], all.v[i - 1]) != 0)
      total += blob_size (st, all.v[i]);
  kiln_strv_free (all.v);
  return total;
}

static size_t
records_to_drop (struct kiln_store *st, const struct kiln_prune_opts *o, struct strset *images, struct record_file *rec,
                 size_t n)
{
  time_t now = time (NULL);
  size_t drop = 0;
  if (o->all)
    return n;
  /* rec is sorted by last use, oldest first */
  while (drop < n && o->until > 0 && now - rec[drop].used > o->until)
    drop++;
  while (drop < n && o->keep_storage >= 0 && kept_size (st, images, rec, drop, n) > (uint64_t) o->keep_storage)
    drop++;
  return drop;
}

static void
drop_record (struct kiln_store *st, struct record_file *rf)
{
  int root = kiln_store_dirfd (st);
  kiln_autofree char *rel = kiln_xasprintf ("cache/records/%s", rf->name);
  if (rf->r.instruction || rf->r.has_layer)
    {
      kiln_autofree char *child = kiln_xasprintf ("cache/children/%s/%s", kiln_digest_hex (&rf->r.parent),
                                                  kiln_digest_hex (&rf->r.key));
      unlinkat (root, child, 0);
    }
  unlinkat (root, rel, 0);
}

/* Removes the entries of dir (under the root) that keep() rejects. */
static int
sweep (struct kiln_store *st, const char *dir, bool (*keep) (void *ud, const char *name, const struct stat *sb),
       void *ud, size_t *count, uint64_t *bytes, struct kiln_error **err)
{
  kiln_autoerror struct kiln_error *e = NULL;
  int dfd = kiln_fs_open_beneath (kiln_store_dirfd (st), dir, O_RDONLY | O_DIRECTORY, 0, &e);
  if (dfd < 0)
    return e->kind == KILN_E_NOTFOUND ? 0 : kiln_error_set (err, e->errnum, KILN_E_IO, "open `%s`", dir);
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  while (d && (de = readdir (d)))
    {
      struct stat sb;
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0
          || fstatat (dirfd (d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || keep (ud, de->d_name, &sb))
        continue;
      if (kiln_fs_rm_rf_at (dirfd (d), de->d_name, err) < 0)
        return kiln_error_wrap (err, "prune `%s`", dir);
      (*count)++;
      if (bytes)
        *bytes += (uint64_t) sb.st_size;
    }
  return 0;
}

/* The tree listings (cache/trees) a COPY record's sources name. */
static void
mark_listings (const struct kiln_cache_record *r, struct strset *trees)
{
  for (size_t i = 0; r->inputs && r->inputs[i]; i++)
    {
      const char *tab = strchr (r->inputs[i], '\t');
      if (tab && strncmp (r->inputs[i], "source ", 7) == 0)
        {
          kiln_autofree char *name = kiln_treelist_name (tab + 1);
          set_add (trees, name);
        }
    }
}

static bool
keep_blob (void *ud, const char *name, const struct stat *sb)
{
  kiln_autofree char *d = kiln_xasprintf ("sha256:%s", name);
  (void) sb;
  return set_has (ud, d);
}

static bool
keep_chain (void *ud, const char *name, const struct stat *sb)
{
  (void) sb;
  return ud && set_has (ud, name);
}

static bool
keep_nothing (void *ud, const char *name, const struct stat *sb)
{
  (void) ud, (void) name, (void) sb;
  return false;
}

static int
take_exclusive (struct kiln_store *st, bool wait, int *fd, struct kiln_error **err)
{
  *fd = openat (kiln_store_dirfd (st), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (*fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `gc.lock` in the store");
  while (flock (*fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0)
    if (errno != EINTR)
      return kiln_error_set (err, errno == EWOULDBLOCK ? 0 : errno, KILN_E_IO,
                             errno == EWOULDBLOCK ? "the store is in use by a running kiln (build, run, pull or push); "
                                                    "prune again when it is done"
                                                  : "lock the store for pruning");
  return 0;
}

int
kiln_prune (struct kiln_store *st, const struct kiln_prune_opts *o, struct kiln_prune_report *r,
            struct kiln_error **err)
{
  struct strset blobs = { 0 }, chains = { 0 }, trees = { 0 };
  struct record_file *rec = NULL;
  size_t n = 0, drop;
  kiln_autoclose int lock = -1;
  int ret = -1;
  memset (r, 0, sizeof *r);
  if (take_exclusive (st, o->wait, &lock, err) < 0 || mark_images (st, &blobs, &chains, err) < 0
      || load_records (st, &rec, &n, err) < 0)
    goto out;
  drop = records_to_drop (st, o, &blobs, rec, n);
  for (size_t i = 0; i < n; i++)
    if (i < drop || !rec[i].r.has_layer)
      {
        drop_record (st, &rec[i]);
        r->records += rec[i].r.has_layer || i < drop;
      }
    else
      {
        set_add (&blobs, rec[i].r.layer.digest.s);
        mark_listings (&rec[i].r, &trees);
      }
  /* only now, with every reference known, does anything unreferenced go */
  if (sweep (st, "blobs/sha256", keep_blob, &blobs, &r->blobs, &r->bytes, err) < 0
      || sweep (st, "snapshots", keep_chain, o->all ? NULL : &chains, &r->snapshots, NULL, err) < 0
      || sweep (st, "tmp", keep_nothing, NULL, &r->scratch, NULL, err) < 0
      || sweep (st, "ingest", keep_nothing, NULL, &r->scratch, NULL, err) < 0
      /* listings only explain misses of the records kept */
      || sweep (st, "cache/trees", keep_chain, &trees, &r->scratch, NULL, err) < 0
      /* a layer's block map lives as long as its blob */
      || sweep (st, "cache/lmap", keep_blob, &blobs, &r->scratch, NULL, err) < 0
      /* tables of contents are derived data (read again from a layer when needed) */
      || (o->all && sweep (st, "cache/toc", keep_nothing, NULL, &r->scratch, NULL, err) < 0))
    goto out;
  ret = 0;
out:
  for (size_t i = 0; i < n; i++)
    {
      free (rec[i].name);
      kiln_cache_record_clear (&rec[i].r);
    }
  free (rec);
  kiln_strv_free (blobs.v);
  kiln_strv_free (chains.v);
  kiln_strv_free (trees.v);
  return ret;
}

static int
parse_number_unit (const char *s, double *v, const char **unit)
{
  char *end;
  *v = strtod (s, &end);
  if (end == s || *v < 0)
    return -1;
  *unit = end;
  return 0;
}

int
kiln_prune_parse_size (const char *s, int64_t *out, struct kiln_error **err)
{
  static const struct {
    const char *u;
    double m;
  } units[] = {
    { "", 1 },
    { "b", 1 },
    { "k", 1e3 },
    { "kb", 1e3 },
    { "kib", 1024.0 },
    { "m", 1e6 },
    { "mb", 1e6 },
    { "mib", 1048576.0 },
    { "g", 1e9 },
    { "gb", 1e9 },
    { "gib", 1073741824.0 },
    { "t", 1e12 },
    { "tb", 1e12 },
    { "tib", 1099511627776.0 },
  };
  double v;
  const char *unit;
  if (parse_number_unit (s, &v, &unit) == 0)
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (strcasecmp (unit, units[i].u) == 0)
        return *out = (int64_t) (v * units[i].m), 0;
  return kiln_error_set (err, 0, KILN_E_USAGE, "invalid size `%s` (e.g. 10GB, 512MiB)", s);
}

int
kiln_prune_parse_duration (const char *s, int64_t *out, struct kiln_error **err)
{
  static const struct {
    const char *u;
    double m;
  } units[] = {
    { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 604800 },
  };
  double v;
  const char *unit;
  if (parse_number_unit (s, &v, &unit) == 0)
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (strcmp (unit, units[i].u) == 0)
        return *out = (int64_t) (v * units[i].m), 0;
  return kiln_error_set (err, 0, KILN_E_USAGE, "invalid duration `%s` (e.g. 24h, 7d, 30m)", s);
}
