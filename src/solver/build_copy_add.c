/* build_copy_add.c - ADD's own sources: a local archive unpacked into
 * scratch space by the hardened extractor, and URLs (downloaded into
 * scratch space; with --checksum or a 304 only after the step misses). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "build_copy-internal.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/extract.h"
#include "kiln/fetch.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/passwd.h"
#include "kiln/snapshot.h"
#include "kiln/toc.h"
#include "kiln/treesum.h"
#include "kiln/util.h"
#include "kiln/walkahead.h"

/* The archive's directories that it does not list itself (parents its
 * entries imply): placed as tar extraction treats them, through symlinks. */
static void
mark_implied (struct copy_job *j, size_t from, const struct kiln_toc *listed)
{
  const char **names = kiln_xcalloc (listed->n + 1, sizeof *names);
  for (size_t i = 0; i < listed->n; i++)
    names[i] = listed->v[i].path;
  qsort (names, listed->n, sizeof *names, kiln_strv_cmp);
  for (size_t i = from; i < j->n; i++)
    {
      const char *rel = j->v[i].rel;
      j->v[i].implied = S_ISDIR (j->v[i].mode) && !bsearch (&rel, names, listed->n, sizeof *names, kiln_strv_cmp);
    }
  free (names);
}

/* ADD of a local archive: extracted into scratch space, then copied as a tree. */
int
kiln_build_copy_add_archive (struct copy_job *j, int fd, const char *src, struct kiln_error **err)
{
  int tmpfd;
  struct stat st;
  struct kiln_toc_rec rec;
  struct kiln_toc *listed = NULL;
  struct kiln_extract_opts eo = { .whiteouts = false, .keep_owner = true, .toc = &rec };
  kiln_toc_rec_init (&rec);
  int xr = kiln_build_tmpdir (j->b, &tmpfd, NULL, err) < 0 ? -1 : kiln_extract_fd (fd, src, tmpfd, &eo, err);
  if (xr == 0 && kiln_toc_rec_read (&rec, &listed) < 0)
    xr = kiln_error_set (err, 0, KILN_E_INTERNAL, "list the entries of `%s`", src);
  kiln_toc_rec_clear (&rec);
  if (xr < 0)
    return kiln_build_step_error (j->b, j->in, err);
  fstat (tmpfd, &st);
  st.st_mode = S_IFDIR | 0755;
  st.st_uid = st.st_gid = 0;
  st.st_mtim.tv_sec = kiln_build_copy_synth_mtime (j);
  struct kiln_digest ad;
  if (kiln_build_copy_source_digest (j, fd, src, &ad, err) < 0)
    return -1;
  int saved_root = j->rootfd;
  bool saved_keep = j->keep_owner, saved_ctx = j->from_context;
  const char *saved_origin = j->origin;
  kiln_strv_push_take (&j->origins, kiln_xasprintf ("archive %s:", ad.s));
  j->origin = j->origins[kiln_strv_len (j->origins) - 1];
  j->rootfd = tmpfd;
  j->keep_owner = true;
  j->from_context = false;
  kiln_build_copy_begin_source (j, true, NULL);
  j->srcs[j->nsrcs - 1].archive = true;
  size_t mark = j->n;
  int ret = kiln_build_copy_copy_tree (j, "", &st, err);
  j->rootfd = saved_root, j->keep_owner = saved_keep, j->from_context = saved_ctx, j->origin = saved_origin;
  if (ret == 0)
    mark_implied (j, mark, listed);
  kiln_toc_free (listed);
  return ret;
}

/* What an ADD <url> entry holds, known from a download or an ETag record. */
static void
set_url_content (struct centry *e, const struct kiln_digest *d, uint64_t size, int64_t mtime)
{
  e->digest = *d;
  e->have_digest = true;
  e->size = size;
  if (mtime >= 0)
    e->mtime = mtime;
}

/* A download is done: check it against what was known of it (--checksum,
 * or the content an ETag stood for), remember its ETag, fill the entry. */
static int
take_download (struct copy_job *j, struct centry *e, const struct kiln_fetch_result *r, const char *shown,
               struct kiln_error **err)
{
  if (e->have_digest && strcmp (r->digest.s, e->digest.s) != 0)
    {
      if (j->has_checksum)
        kiln_error_set (err, 0, KILN_E_DIGEST, "`%s` has digest %s, not the %s of --checksum", shown, r->digest.s,
                        e->digest.s);
      else
        kiln_error_set (err, 0, KILN_E_DIGEST, "`%s` changed on the server during the build (%s, not %s); build again",
                        shown, r->digest.s, e->digest.s);
      return kiln_build_step_error (j->b, j->in, err);
    }
  if (r->etag)
    {
      struct kiln_url_record rec = { .etag = r->etag, .digest = r->digest, .size = r->size, .mtime = r->mtime };
      kiln_autoerror struct kiln_error *e2 = NULL;
      if (kiln_url_record_put (j->b->st, e->url, &rec, &e2) < 0)
        kiln_log_warn ("%s (the next build downloads `%s` again)", e2->msg, shown);
    }
  set_url_content (e, &r->digest, r->size, r->mtime);
  free (e->url);
  e->url = NULL;
  return 0;
}

/* The file of an ADD <url> entry in the step's scratch dir, emptied. */
static int
download_file (struct copy_job *j, const struct centry *e, const char *shown, struct kiln_error **err)
{
  int fd = openat (j->downloads_fd, e->src, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      kiln_error_set (err, errno, KILN_E_IO, "create the file for `%s` in the store's tmp/", shown);
      return kiln_build_step_error (j->b, j->in, err);
    }
  return fd;
}

/* Downloads an ADD <url> entry.  With if_none_match, a 304 fills the entry
 * from rec and leaves the download to a cache miss (returns 0 too). */
static int
fetch_entry (struct copy_job *j, struct centry *e, const struct kiln_url_record *rec, struct kiln_error **err)
{
  kiln_autofree char *shown = kiln_fetch_redact (e->url);
  struct kiln_fetch_result r;
  kiln_autoclose int fd = download_file (j, e, shown, err);
  if (fd < 0)
    return -1;
  kiln_build_progress (j->b, "%s %s", rec ? "checking" : "downloading", shown);
  int got = kiln_fetch_url (e->url, fd, j->b->o->interrupted, rec ? rec->etag : NULL, &r, err);
  if (got < 0)
    return kiln_build_step_error (j->b, j->in, err);
  if (got == 1)
    {
      /* not modified: the content the ETag stood for, fetched only if the step misses */
      set_url_content (e, &rec->digest, rec->size, rec->mtime);
      return 0;
    }
  int ret = take_download (j, e, &r, shown, err);
  kiln_fetch_result_clear (&r);
  return ret;
}

/* ADD <url>: one regular file, 0600 unless --chmod, root's unless --chown,
 * its mtime from Last-Modified (else the build's epoch), never extracted -
 * as BuildKit does.  The content is known without a download when --checksum
 * gives it or when the server confirms (304) the ETag of an earlier download;
 * the download then waits until the step misses the cache. */
int
kiln_build_copy_add_url (struct copy_job *j, const char *url, struct kiln_error **err)
{
  kiln_autofree char *name = kiln_fetch_filename (url);
  if (j->downloads_fd < 0 && kiln_build_tmpdir (j->b, &j->downloads_fd, NULL, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  kiln_build_copy_begin_source (j, false, name);
  struct centry *e = kiln_build_copy_add_entry (j, "");
  e->rootfd = j->downloads_fd;
  e->src = kiln_xasprintf ("%zu", e->seq);
  e->url = kiln_xstrdup (url);
  e->mode = S_IFREG | (j->has_chmod ? j->chmod : 0600);
  e->uid = j->has_chown ? j->uid : 0;
  e->gid = j->has_chown ? j->gid : 0;
  e->mtime = kiln_build_copy_synth_mtime (j);
  if (j->has_checksum)
    {
      e->digest = j->checksum;
      e->have_digest = true;
      return 0;
    }
  struct kiln_url_record rec;
  if (!kiln_build_cache_enabled (j->b, j->s) || !kiln_url_record_get (j->b->st, url, &rec))
    return fetch_entry (j, e, NULL, err);
  int r = fetch_entry (j, e, &rec, err);
  kiln_url_record_clear (&rec);
  return r;
}

/* The downloads put off (--checksum, confirmed ETag), once the layer is to
 * be written. */
int
kiln_build_copy_fetch_pending (struct copy_job *j, struct kiln_error **err)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->v[i].url && fetch_entry (j, &j->v[i], NULL, err) < 0)
      return -1;
  return 0;
}
