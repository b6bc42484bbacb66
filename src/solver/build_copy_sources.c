/* build_copy_sources.c - what a COPY/ADD source word names: a heredoc, a
 * URL, a path of the context or a stage, or a wildcard (resolved here, as
 * BuildKit does in the copy itself, so one match is one source); with
 * --parents each match keeps its path below its "/./" pivot. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "build_copy-internal.h"
#include "kiln/cleanup.h"
#include "kiln/expand.h"
#include "kiln/fetch.h"
#include "kiln/fs.h"
#include "kiln/util.h"

bool
kiln_build_copy_has_glob (const char *s)
{
  return strpbrk (s, "*?[") != NULL;
}

/* The directories before a wildcard source's first wildcard must exist:
 * BuildKit walks from there (fsutil ResolveWildcards) and fails otherwise,
 * while a pattern that matches nothing copies nothing. */
static int
check_glob_base (struct copy_job *j, const char *src, struct kiln_error **err)
{
  kiln_autofree char *fixed = kiln_xstrdup (src);
  char *end = strpbrk (fixed, "*?[");
  while (end > fixed && *end != '/')
    end--;
  if (end == fixed)
    return 0;
  *end = '\0';
  kiln_autoerror struct kiln_error *e = NULL;
  kiln_autoclose int fd = kiln_fs_open_in_root (j->rootfd, fixed, O_PATH, 0, &e);
  return fd >= 0 ? 0 : kiln_build_copy_job_fail (j, err, "source directory `%s` not found in the build context", fixed);
}

/* Expands a wildcard source component by component, as BuildKit does. */
static int
glob_sources (struct copy_job *j, const char *dir, const char *pattern, char ***out, size_t *nout,
              struct kiln_error **err)
{
  const char *slash = strchr (pattern, '/');
  kiln_autofree char *comp = slash ? kiln_xstrndup (pattern, (size_t) (slash - pattern)) : kiln_xstrdup (pattern);
  kiln_autoerror struct kiln_error *ignored = NULL;
  int dfd = kiln_fs_open_in_root (j->rootfd, dir, O_RDONLY | O_DIRECTORY, 0, &ignored);
  if (dfd < 0)
    return 0;
  kiln_autodir DIR *d = fdopendir (dfd);
  struct dirent *de;
  if (!d)
    return close (dfd), kiln_error_set (err, errno, KILN_E_IO, "read directory `%s`", dir);
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0 || fnmatch (comp, de->d_name, 0) != 0)
        continue;
      kiln_autofree char *path = *dir ? kiln_xasprintf ("%s/%s", dir, de->d_name) : kiln_xstrdup (de->d_name);
      bool descend;
      if (kiln_build_copy_excluded (j, path, &descend) && !descend)
        continue;
      if (!slash)
        kiln_strv_append (out, nout, kiln_steal_ptr (&path));
      else if (glob_sources (j, path, slash + 1, out, nout, err) < 0)
        return -1;
    }
  return 0;
}

/* A match's path below the pivot: the pivot's components (a wildcard in
 * one matched one component) dropped. */
static const char *
below_pivot (const char *match, const char *pivot)
{
  if (!*pivot)
    return match;
  size_t skip = 1;
  for (const char *c = pivot; (c = strchr (c, '/')); c++)
    skip++;
  for (; skip > 0 && match; skip--)
    if ((match = strchr (match, '/')))
      match++;
  return match ? match : "";
}

/* A context (or stage) path source: wildcards resolved here, as BuildKit
 * does in the copy itself, so one match is one source.  With --parents the
 * path is split at its "/./" pivot (none: the root) and each match keeps
 * its path below the pivot. */
static int
copy_path (struct copy_job *j, const char *word, struct kiln_error **err)
{
  kiln_autostrv char **matches = NULL;
  size_t nmatches = 0;
  const char *cut = j->parents ? strstr (word, "/./") : NULL;
  kiln_autofree char *pivot = cut ? kiln_xstrndup (word, (size_t) (cut - word)) : kiln_xstrdup ("");
  kiln_autofree char *pc = kiln_fs_path_clean (pivot);
  kiln_autofree char *src = kiln_fs_path_clean (word);
  if (!kiln_build_copy_has_glob (src))
    kiln_strv_append (&matches, &nmatches, kiln_xstrdup (src));
  else if (check_glob_base (j, src, err) < 0)
    return -1;
  else if (glob_sources (j, "", src, &matches, &nmatches, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  for (size_t m = 0; matches && matches[m]; m++)
    {
      j->parent_prefix = j->parents ? below_pivot (matches[m], pc) : NULL;
      j->globbed = kiln_build_copy_has_glob (src);
      int r = kiln_build_copy_copy_one (j, matches[m], err);
      j->parent_prefix = NULL;
      if (r < 0)
        return -1;
    }
  return 0;
}

const struct kiln_df_heredoc *
kiln_build_copy_find_heredoc (const struct kiln_df_instr *in, const char *word)
{
  if (strncmp (word, "<<", 2) != 0)
    return NULL;
  word += 2 + (word[2] == '-');
  for (size_t i = 0; i < in->nheredocs; i++)
    if (strcmp (in->heredocs[i].name, word) == 0)
      return &in->heredocs[i];
  return NULL;
}

static int
add_heredoc (struct copy_job *j, const struct kiln_df_heredoc *h, struct kiln_error **err)
{
  char *data = NULL;
  struct step_env e = { j->b, j->s };
  if (h->expand)
    {
      /* quotes in the body are text (BuildKit ExpandRaw, SkipProcessQuotes) */
      if (kiln_expand_heredoc (h->content, kiln_build_lookup, &e, &data, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  else
    data = kiln_xstrdup (h->content);
  kiln_build_copy_begin_source (j, false, h->name);
  struct centry *c = kiln_build_copy_add_entry (j, "");
  c->data = data;
  c->datalen = strlen (data);
  c->size = c->datalen;
  c->mode = S_IFREG | (j->has_chmod ? j->chmod : 0644);
  c->uid = j->has_chown ? j->uid : 0;
  c->gid = j->has_chown ? j->gid : 0;
  c->mtime = kiln_build_copy_synth_mtime (j);
  return 0;
}

int
kiln_build_copy_collect_sources (struct copy_job *j, char **words, size_t nsrc, struct kiln_error **err)
{
  for (size_t i = 0; i < nsrc; i++)
    {
      const struct kiln_df_heredoc *h = kiln_build_copy_find_heredoc (j->in, words[i]);
      if (h)
        {
          if (add_heredoc (j, h, err) < 0)
            return -1;
          continue;
        }
      if (kiln_fetch_is_url (words[i]))
        {
          kiln_autofree char *shown = kiln_fetch_redact (words[i]);
          if (j->in->cmd != KILN_DF_ADD)
            return kiln_build_copy_job_fail (j, err, "COPY cannot download `%s`; use ADD", shown);
          if (kiln_build_copy_add_url (j, words[i], err) < 0)
            return -1;
          continue;
        }
      if (j->has_checksum)
        return kiln_build_copy_job_fail (j, err, "--checksum needs an http(s) URL as the source, not `%s`", words[i]);
      if (strstr (words[i], "://") || kiln_str_has_prefix (words[i], "git@"))
        {
          kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "remote source `%s` is not supported yet", words[i]);
          return kiln_build_step_error (j->b, j->in, err);
        }
      if (copy_path (j, words[i], err) < 0)
        return -1;
      if (j->fold_abort)
        return 0;
    }
  return 0;
}
