/* snapshot.c - layer snapshots as overlay lower dirs, and step mounts.
 *
 * Why a temp dir + RENAME_NOREPLACE instead of a lock per snapshot: the
 * rename is the commit point, so a snapshot under its final name is always
 * complete (against a kill; against a power loss the boot id it carries
 * decides, see stamp_boot), and two builds racing on one snapshot both
 * finish; the loser's copy is dropped.
 * The temp dir is flock()ed by its writer so kiln_snapshot_gc_tmp can tell
 * a live extraction from the leftovers of a killed one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/decompress.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/snapshot.h"
#include "kiln/toc.h"
#include "kiln/store.h"
#include "kiln/util.h"
#include "snapshot-internal.h"

#define SNAP_DIR "snapshots"
#define TMP_PREFIX ".tmp-"
/* a temp dir untouched this long and unlocked belongs to a dead process */
#define STALE_SECS 60
/* snapshots extracted at once (each is one thread, decompressing and writing) */
#define PREP_JOBS 4

/* ---- prepare ---- */

static char *
abs_root (struct kiln_store *st)
{
  char *r = realpath (kiln_store_root (st), NULL);
  return r ? r : kiln_xstrdup (kiln_store_root (st));
}

static int
open_snapdir (struct kiln_store *st, struct kiln_error **err)
{
  kiln_autoclose int fd = kiln_fs_mkdir_p_beneath (kiln_store_dirfd (st), SNAP_DIR, 0700, err);
  if (fd < 0)
    return kiln_error_wrap (err, "create `%s` in store", SNAP_DIR);
  int dfd = openat (fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s` in store", SNAP_DIR);
  return dfd;
}

static int
gc_one (int snapfd, const char *name, time_t now)
{
  struct kiln_error *e = NULL;
  kiln_autoclose int fd = openat (snapfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0 || now - st.st_mtime < STALE_SECS || flock (fd, LOCK_EX | LOCK_NB) < 0)
    return 0;
  int r = kiln_fs_rm_rf_at (snapfd, name, &e);
  if (r < 0)
    kiln_log_warn ("remove stale snapshot `%s`: %s", name, e->msg);
  kiln_error_free (&e);
  return r < 0 ? 0 : 1;
}

static int
gc_at (int snapfd, struct kiln_error **err)
{
  kiln_autostrv char **names = NULL;
  int removed = 0;
  if (kiln_dir_names (snapfd, &names, err) < 0)
    return kiln_error_wrap (err, "list `%s`", SNAP_DIR);
  time_t now = time (NULL);
  for (size_t i = 0; names[i]; i++)
    if (kiln_str_has_prefix (names[i], TMP_PREFIX))
      removed += gc_one (snapfd, names[i], now);
  return removed;
}

int
kiln_snapshot_gc_tmp (struct kiln_store *st, struct kiln_error **err)
{
  kiln_autoclose int snapfd = open_snapdir (st, err);
  return snapfd < 0 ? -1 : gc_at (snapfd, err);
}

bool
kiln_snapshot_toc_wanted (struct kiln_store *st, const char *diff_id, struct kiln_digest *d)
{
  kiln_autoerror struct kiln_error *e = NULL;
  return kiln_digest_parse (diff_id, d, &e) == 0 && !kiln_toc_exists (st, d);
}

void
kiln_snapshot_toc_keep (struct kiln_store *st, const struct kiln_digest *d, struct kiln_toc_rec *rec)
{
  kiln_autoerror struct kiln_error *e = NULL;
  /* a TOC can always be read again from the blob: failing to keep it only warns */
  if (kiln_toc_rec_save (st, d, rec, &e) < 0)
    kiln_log_warn ("%s", e->msg);
}

static ssize_t
blob_read (void *opaque, const void **out, struct kiln_error **err)
{
  return kiln_decomp_reader_read (opaque, out, err);
}

/* Extracts a layer from its blob into its snapshot dir, recording the
 * layer's table of contents on the way when the store has none yet (a pulled
 * layer).  gzip and zstd are undone here (ISA-L inflate is several times
 * libarchive's zlib), other compressions by libarchive. */
static int
extract_layer (struct kiln_store *st, const struct kiln_descriptor *layer, const char *diff_id, int dfd,
               struct kiln_error **err)
{
  struct kiln_toc_rec rec;
  struct kiln_digest d;
  struct kiln_decomp_reader *rd = NULL;
  bool want = kiln_snapshot_toc_wanted (st, diff_id, &d);
  struct kiln_extract_opts xo = { .overlay_whiteouts = true, .keep_owner = true, .toc = want ? &rec : NULL };
  kiln_autoclose int fd = kiln_store_blob_open (st, &layer->digest, err);
  if (fd < 0 || kiln_decomp_reader_open (fd, &rd, err) < 0)
    return kiln_error_wrap (err, "read blob `%s`", layer->digest.s);
  kiln_toc_rec_init (&rec);
  int r = kiln_extract_stream (blob_read, rd, kiln_decomp_reader_decompressed (rd), layer->digest.s, dfd, &xo, err);
  if (r == 0 && want)
    kiln_snapshot_toc_keep (st, &d, &rec);
  if (r == 0)
    kiln_log_debug ("snapshot of layer %s extracted from its blob", layer->digest.s);
  kiln_toc_rec_clear (&rec);
  kiln_decomp_reader_free (rd);
  return r;
}

/* A snapshot is a cache, so it is not fsynced (that cost seconds per GB):
 * it carries the boot it was written in instead, and one from an earlier
 * boot, which a power loss may have truncated, is made again. */
#define BOOT_XATTR "user.kiln.boot"

static void
boot_id (char out[64])
{
  int fd = open ("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read (fd, out, 63) : -1;
  if (fd >= 0)
    close (fd);
  out[n > 0 ? n : 0] = '\0';
  out[strcspn (out, "\n")] = '\0';
}

static int
stamp_boot (int dfd, struct kiln_error **err)
{
  char id[64];
  boot_id (id);
  if (fsetxattr (dfd, BOOT_XATTR, id, strlen (id), 0) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "mark snapshot with the boot id");
  return 0;
}

/* True when hex exists and was written in this boot. */
static bool
snapshot_current (int snapfd, const char *hex)
{
  char id[64], have[64];
  kiln_autoclose int fd = openat (snapfd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = fgetxattr (fd, BOOT_XATTR, have, sizeof have - 1);
  boot_id (id);
  if (n < 0)
    return false;
  have[n] = '\0';
  return strcmp (id, have) == 0;
}

/* Renames tmp to hex unless hex appeared meanwhile; a lost race is fine. */
static int
commit_snapshot (int snapfd, const char *tmp, const char *hex, struct kiln_error **err)
{
  int r = renameat2 (snapfd, tmp, snapfd, hex, RENAME_NOREPLACE);
  if (r < 0 && errno == EINVAL)
    r = renameat (snapfd, tmp, snapfd, hex); /* no RENAME_NOREPLACE here: a non-empty target still fails */
  if (r == 0)
    return 0;
  if (errno == EEXIST || errno == ENOTEMPTY)
    return kiln_fs_rm_rf_at (snapfd, tmp, err);
  return kiln_error_set (err, errno, KILN_E_IO, "rename snapshot `%s`", hex);
}

struct kiln_snapshot_tmp {
  int snapfd, dfd;
  char *name;
};

int
kiln_snapshot_begin (struct kiln_store *st, struct kiln_snapshot_tmp **out, int *dirfd, struct kiln_error **err)
{
  struct kiln_snapshot_tmp *t = kiln_xcalloc (1, sizeof *t);
  t->dfd = -1;
  t->snapfd = open_snapdir (st, err);
  static atomic_uint seq;
  /* the counter: two threads of one process may begin in the same nanosecond */
  t->name = kiln_xasprintf (TMP_PREFIX "%d-%llx-%x", (int) getpid (), kiln_now_ns (), atomic_fetch_add (&seq, 1));
  if (t->snapfd < 0)
    return kiln_snapshot_abort (t), -1;
  if (mkdirat (t->snapfd, t->name, 0755) < 0
      || (t->dfd = openat (t->snapfd, t->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0
      || flock (t->dfd, LOCK_EX | LOCK_NB) < 0) /* held until commit: gc skips it */
    {
      kiln_error_set (err, errno, KILN_E_IO, "create `%s/%s`", SNAP_DIR, t->name);
      kiln_snapshot_abort (t);
      return -1;
    }
  *dirfd = t->dfd;
  *out = t;
  return 0;
}

/* Stamps and renames the temp dir to hex; frees t either way. */
static int
tmp_commit (struct kiln_snapshot_tmp *t, const char *hex, struct kiln_error **err)
{
  int r = stamp_boot (t->dfd, err);
  if (r == 0)
    r = commit_snapshot (t->snapfd, t->name, hex, err);
  if (r == 0)
    {
      free (t->name);
      t->name = NULL; /* committed: nothing for abort to remove */
    }
  kiln_snapshot_abort (t);
  return r;
}

int
kiln_snapshot_commit (struct kiln_snapshot_tmp *t, char *const *diff_ids, size_t n, struct kiln_error **err)
{
  struct kiln_digest chain;
  kiln_oci_chain_id (diff_ids, n, &chain);
  return tmp_commit (t, kiln_digest_hex (&chain), err);
}

void
kiln_snapshot_abort (struct kiln_snapshot_tmp *t)
{
  if (t == NULL)
    return;
  if (t->name && t->snapfd >= 0)
    {
      struct kiln_error *e = NULL;
      kiln_fs_rm_rf_at (t->snapfd, t->name, &e);
      kiln_error_free (&e);
    }
  if (t->dfd >= 0)
    close (t->dfd);
  if (t->snapfd >= 0)
    close (t->snapfd);
  free (t->name);
  free (t);
}

static int
create_snapshot (struct kiln_store *st, const struct kiln_descriptor *layer, const char *diff_id, const char *hex,
                 kiln_snapshot_materialize_fn fn, void *opaque, struct kiln_error **err)
{
  struct kiln_snapshot_tmp *t = NULL;
  int dfd;
  if (kiln_snapshot_begin (st, &t, &dfd, err) < 0)
    return kiln_error_wrap (err, "prepare snapshot of layer `%s`", layer->digest.s);
  int made = fn ? fn (opaque, layer, dfd, err) : 0;
  int r = made < 0 ? -1 : made == 0 ? extract_layer (st, layer, diff_id, dfd, err) : 0;
  if (r == 0)
    r = tmp_commit (kiln_steal_ptr (&t), hex, err);
  kiln_snapshot_abort (t);
  return r < 0 ? kiln_error_wrap (err, "prepare snapshot of layer `%s`", layer->digest.s) : 0;
}

int
kiln_snapshot_prepare (struct kiln_store *st, const struct kiln_descriptor *layers, char *const *diff_ids, size_t n,
                       char ***lowerdirs, struct kiln_error **err)
{
  return kiln_snapshot_prepare_with (st, layers, diff_ids, n, NULL, NULL, lowerdirs, err);
}

/* Snapshot present and of this boot: 0; missing (a stale one removed): 1. */
static int
snapshot_missing (int snapfd, const char *hex, struct kiln_error **err)
{
  struct stat sb;
  if (fstatat (snapfd, hex, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR (sb.st_mode))
    return 1;
  if (snapshot_current (snapfd, hex))
    return 0;
  /* from an earlier boot: no process of ours can still use it */
  if (kiln_fs_rm_rf_at (snapfd, hex, err) < 0)
    return kiln_error_wrap (err, "remove stale snapshot `%s`", hex);
  return 1;
}

int
kiln_snapshot_missing (struct kiln_store *st, char *const *diff_ids, size_t n, struct kiln_error **err)
{
  struct kiln_digest chain;
  kiln_autoclose int snapfd = open_snapdir (st, err);
  if (snapfd < 0)
    return -1;
  kiln_oci_chain_id (diff_ids, n, &chain);
  return snapshot_missing (snapfd, kiln_digest_hex (&chain), err);
}

/* Missing snapshots are independent of each other (each holds only its own
 * layer), so they are extracted in parallel: a many-layer base unpacks in
 * the time of its largest layers, not of their sum. */
struct prep_pool {
  struct kiln_store *st;
  const struct kiln_descriptor *layers;
  char *const *diff_ids;
  size_t *todo; /* layer indexes to extract */
  char **hex;   /* chain id hex per layer */
  size_t ntodo;
  atomic_size_t next;
  atomic_bool failed;
  pthread_mutex_t lock;
  struct kiln_error *err; /* the first failure */
};

static void *
prep_worker (void *opaque)
{
  struct prep_pool *q = opaque;
  for (size_t k; !atomic_load (&q->failed) && (k = atomic_fetch_add (&q->next, 1)) < q->ntodo;)
    {
      struct kiln_error *e = NULL;
      size_t i = q->todo[k];
      if (create_snapshot (q->st, &q->layers[i], q->diff_ids[i], q->hex[i], NULL, NULL, &e) == 0)
        continue;
      atomic_store (&q->failed, true);
      pthread_mutex_lock (&q->lock);
      if (q->err == NULL)
        q->err = kiln_steal_ptr (&e);
      pthread_mutex_unlock (&q->lock);
      kiln_error_free (&e);
    }
  return NULL;
}

static int
prep_run (struct prep_pool *q, struct kiln_error **err)
{
  pthread_t th[PREP_JOBS];
  size_t started = 0, want = q->ntodo < PREP_JOBS ? q->ntodo : PREP_JOBS;
  pthread_mutex_init (&q->lock, NULL);
  for (; want > 1 && started < want; started++)
    if (pthread_create (&th[started], NULL, prep_worker, q) != 0)
      break;
  /* one layer, or no thread could start: here */
  if (started == 0)
    prep_worker (q);
  for (size_t i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&q->lock);
  if (q->err == NULL)
    return 0;
  *err = kiln_steal_ptr (&q->err);
  return kiln_error_code (*err);
}

/* The materialize function runs here, one layer after the other (it reads
 * the build's state); what it leaves is for the pool. */
static int
prep_materialize (struct prep_pool *q, kiln_snapshot_materialize_fn fn, void *opaque, struct kiln_error **err)
{
  size_t kept = 0;
  for (size_t k = 0; k < q->ntodo; k++)
    {
      size_t i = q->todo[k];
      struct kiln_snapshot_tmp *t = NULL;
      int dfd;
      if (kiln_snapshot_begin (q->st, &t, &dfd, err) < 0)
        return kiln_error_wrap (err, "prepare snapshot of layer `%s`", q->layers[i].digest.s);
      int made = fn (opaque, &q->layers[i], dfd, err);
      if (made > 0 && tmp_commit (kiln_steal_ptr (&t), q->hex[i], err) < 0)
        made = -1;
      kiln_snapshot_abort (t);
      if (made < 0)
        return kiln_error_wrap (err, "prepare snapshot of layer `%s`", q->layers[i].digest.s);
      if (made == 0)
        q->todo[kept++] = i;
    }
  q->ntodo = kept;
  return 0;
}

int
kiln_snapshot_prepare_with (struct kiln_store *st, const struct kiln_descriptor *layers, char *const *diff_ids,
                            size_t n, kiln_snapshot_materialize_fn fn, void *opaque, char ***lowerdirs,
                            struct kiln_error **err)
{
  kiln_autoclose int snapfd = open_snapdir (st, err);
  kiln_autofree char *root = abs_root (st);
  kiln_autostrv char **out = kiln_xcalloc (n + 1, sizeof *out);
  kiln_autostrv char **hex = kiln_xcalloc (n + 1, sizeof *hex);
  kiln_autofree size_t *todo = kiln_xcalloc (n + 1, sizeof *todo);
  struct prep_pool q = { .st = st, .layers = layers, .diff_ids = diff_ids, .todo = todo, .hex = hex };

  if (snapfd < 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    {
      struct kiln_digest chain;
      kiln_oci_chain_id (diff_ids, i + 1, &chain);
      hex[i] = kiln_xstrdup (kiln_digest_hex (&chain));
      /* top layer first */
      out[n - 1 - i] = kiln_xasprintf ("%s/%s/%s", root, SNAP_DIR, hex[i]);
      int r = snapshot_missing (snapfd, hex[i], err);
      if (r < 0)
        return -1;
      if (r > 0)
        todo[q.ntodo++] = i;
    }
  if (q.ntodo > 0 && gc_at (snapfd, err) < 0)
    return -1;
  if (q.ntodo > 0 && fn && prep_materialize (&q, fn, opaque, err) < 0)
    return -1;
  if (q.ntodo > 0 && prep_run (&q, err) < 0)
    return -1;
  *lowerdirs = kiln_steal_ptr (&out);
  return 0;
}
