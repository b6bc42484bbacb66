/* build_copy.c - the COPY/ADD op.  prepare: flags, the source root, then
 * key mode (a rebuild walks its sources into their tree digests, and the
 * solver looks the step up before anything is collected) or the entries
 * collected; exec: streaming or the array path.
 *
 * The step's files, one concern each (build_copy-internal.h has the job):
 *   build_copy_sources.c   what a source word names: heredoc, URL, path, wildcard
 *   build_copy_walk.c      collecting entries: the walk, .dockerignore, --exclude
 *   build_copy_add.c       ADD's own sources: local archives, URLs
 *   build_copy_place.c     placement on the image below, layer order, hardlinks
 *   build_copy_key.c       content digests, the step's inputs, tree listings
 *   build_copy_layer.c     writing (or patching) the layer
 *   build_copy_snapshot.c  a RUN's snapshot made from the entries
 *   build_copy_stream.c    one context directory straight into the layer
 *   build_copy_replay.c    key mode's entries, kept so streaming need not walk again */
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

/* A boolean flag (--link, --parents: bare or =true); the parser has refused
 * any other value. */
bool
kiln_build_copy_flag_true (const struct kiln_df_instr *in, const char *name)
{
  bool present;
  const char *v = kiln_df_instr_flag (in, name, &present);
  return present && (v == NULL || *v == '\0' || strcmp (v, "true") == 0);
}

int
kiln_build_copy_job_fail (struct copy_job *j, struct kiln_error **err, const char *fmt, const char *arg)
{
  kiln_error_set (err, 0, KILN_E_PARSE, fmt, arg ? arg : "");
  return kiln_build_step_error (j->b, j->in, err);
}

/* --chown=user[:group], numeric or names from the destination image. */
static int
parse_chown (struct copy_job *j, const char *spec, struct kiln_error **err)
{
  struct kiln_passwd_ids ids;
  int rootfd = -1;
  /* the image's files are only needed for names */
  if (kiln_passwd_spec_has_names (spec))
    {
      rootfd = kiln_build_stage_rootfs (j->b, j->s, err);
      if (rootfd < 0)
        return kiln_build_step_error (j->b, j->in, err);
    }
  if (kiln_passwd_resolve (rootfd, spec, true, false, &ids, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  j->uid = ids.uid;
  j->gid = ids.gid;
  j->has_chown = true;
  kiln_passwd_ids_clear (&ids);
  return 0;
}

static int
parse_chmod (struct copy_job *j, const char *spec, struct kiln_error **err)
{
  char *end;
  long m = strtol (spec, &end, 8);
  if (!*spec || *end || m < 0 || m > 07777)
    return kiln_build_copy_job_fail (j, err, "invalid --chmod `%s` (want an octal mode like 0644)", spec);
  j->chmod = (mode_t) m;
  j->has_chmod = true;
  return 0;
}

static int
expand_flag (struct copy_job *j, const char *name, char **out, struct kiln_error **err)
{
  const char *v = kiln_df_instr_flag (j->in, name, NULL);
  struct step_env e = { j->b, j->s };
  *out = NULL;
  if (!v)
    return 0;
  if (kiln_expand_word (v, j->b->df->escape, kiln_build_lookup, &e, out, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  return 0;
}

/* --from=stage|index|image: the files come from that filesystem, owners kept. */
static int
source_root (struct copy_job *j, struct build_stage *tmp, struct kiln_error **err)
{
  kiln_autofree char *from = NULL;
  if (expand_flag (j, "from", &from, err) < 0)
    return -1;
  if (!from)
    {
      j->rootfd = j->b->ctx_fd;
      j->from_context = true;
      return 0;
    }
  struct build_stage *src = tmp;
  long idx = kiln_plan_find_stage (j->b->plan, from);
  if (idx >= 0 && !j->b->stages[idx].built) /* never empty files for a stage the plan missed */
    return kiln_build_copy_job_fail (j, err, "stage `%s` was not built before its use", from);
  if (idx >= 0)
    src = &j->b->stages[idx];
  else if (kiln_build_load_image (j->b, tmp, from, err) < 0)
    return kiln_build_step_error (j->b, j->in, err);
  /* files of a stage or image are named by its cache key: equal key, equal files */
  kiln_strv_push_take (&j->origins, kiln_xasprintf ("from %s:", src->key.s));
  j->origin = j->origins[0];
  j->rootfd = kiln_build_stage_rootfs (j->b, src, err);
  j->keep_owner = true;
  return j->rootfd < 0 ? kiln_build_step_error (j->b, j->in, err) : 0;
}

static int
copy_words (struct copy_job *j, char ***words, struct kiln_error **err)
{
  struct step_env e = { j->b, j->s };
  /* As BuildKit: the arguments are split first, then each is expanded as
   * one word (SourcesAndDest.Expand), so `COPY f $empty` copies to the
   * working directory and a value with blanks stays one path. */
  kiln_autostrv char **raw = NULL;
  if (!j->in->json)
    kiln_split_words_raw (j->in->args, j->b->df->escape, &raw);
  char *const *argv = j->in->json ? j->in->argv : raw;
  size_t n = 0;
  for (size_t i = 0; argv[i]; i++)
    {
      char *w = NULL;
      if (kiln_expand_word (argv[i], j->b->df->escape, kiln_build_lookup, &e, &w, err) < 0)
        return kiln_build_step_error (j->b, j->in, err);
      kiln_strv_append (words, &n, w);
    }
  if (n < 2)
    return kiln_build_copy_job_fail (j, err, "requires at least two arguments%s", NULL);
  return 0;
}

/* Every --exclude (repeatable), expanded, as one .dockerignore-style set. */
static int
parse_exclude (struct copy_job *j, struct kiln_error **err)
{
  struct kiln_buf text = KILN_BUF_INIT;
  struct step_env e = { j->b, j->s };
  int r = 0;
  for (size_t i = 0; r == 0 && i < j->in->nflags; i++)
    {
      kiln_autofree char *v = NULL;
      if (strcmp (j->in->flags[i].name, "exclude") != 0)
        continue;
      r = kiln_expand_word (j->in->flags[i].value ? j->in->flags[i].value : "", j->b->df->escape, kiln_build_lookup, &e,
                            &v, err);
      if (r == 0 && (!*v || strchr (v, '\n')))
        r = kiln_error_set (err, 0, KILN_E_PARSE, "invalid --exclude `%s`", v);
      if (r == 0)
        kiln_buf_addf (&text, "%s\n", v);
    }
  if (r == 0 && text.len > 0)
    r = kiln_ignore_parse ("--exclude", text.buf, text.len, &j->exclude, err);
  kiln_buf_release (&text);
  return r < 0 ? kiln_build_step_error (j->b, j->in, err) : 0;
}

static int
check_flags (struct copy_job *j, struct kiln_error **err)
{
  static const char *const unsupported[] = { "keep-git-dir" };
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
    if (kiln_df_instr_flag (j->in, unsupported[i], NULL))
      {
        kiln_error_set (err, 0, KILN_E_UNSUPPORTED, "--%s is not supported yet", unsupported[i]);
        return kiln_build_step_error (j->b, j->in, err);
      }
  kiln_autofree char *chown = NULL, *chmod = NULL, *checksum = NULL;
  if (expand_flag (j, "chown", &chown, err) < 0 || expand_flag (j, "chmod", &chmod, err) < 0
      || expand_flag (j, "checksum", &checksum, err) < 0)
    return -1;
  if (checksum && j->in->cmd != KILN_DF_ADD)
    return kiln_build_copy_job_fail (j, err, "--checksum is an ADD flag%s", NULL);
  if (checksum && kiln_digest_parse (checksum, &j->checksum, err) < 0)
    {
      kiln_error_free (err);
      return kiln_build_copy_job_fail (j, err, "invalid --checksum `%s` (want sha256:<64 lowercase hex digits>)",
                                       checksum);
    }
  j->has_checksum = checksum != NULL;
  /* --parents (Dockerfile 1.20), a boolean the parser has checked */
  j->parents = kiln_build_copy_flag_true (j->in, "parents");
  if (parse_exclude (j, err) < 0)
    return -1;
  if (chown && parse_chown (j, chown, err) < 0)
    return -1;
  if (chmod && parse_chmod (j, chmod, err) < 0)
    return -1;
  return 0;
}

/* BuildKit's rule (fsutil copy.Copy): a destination whose last element is
 * empty or "." names a directory to make. */
static bool
names_dir (const char *raw)
{
  return kiln_str_has_suffix (raw, "/") || strcmp (raw, ".") == 0 || kiln_str_has_suffix (raw, "/.");
}

/* Key mode: the sources are walked and folded into their tree digests
 * without keeping their entries.  1 when that made every input (the solver
 * looks the step up), 0 when it could not (downloads, archives, or a file
 * to read when no hit is possible), -1 on error. */
static int
key_mode (struct copy_job *j, char **words, size_t nsrc, bool streams, struct kiln_error **err)
{
  if (!kiln_build_cache_enabled (j->b, j->s))
    return 0;
  for (size_t i = 0; i < nsrc; i++)
    if (kiln_fetch_is_url (words[i]))
      return 0;
  /* with no earlier record, a cold build reads each file once, while it
   * streams into the layer: key mode gives up at the first unknown file */
  j->fold_cheap_only = !kiln_build_solve_may_hit (j->b, j->s);
  j->fold = kiln_treesum_new ();
  j->fold_src = SIZE_MAX;
  if (streams) /* streaming then writes from the kept entries */
    j->replay = kiln_build_copy_replay_new ();
  int ret = kiln_build_copy_collect_sources (j, words, nsrc, err);
  kiln_build_copy_fold_finish_source (j);
  bool done = ret == 0 && !j->fold_abort;
  if (done)
    kiln_build_copy_step_inputs (j);
  kiln_treesum_free (j->fold);
  j->fold = NULL;
  if (!done)
    {
      kiln_build_copy_replay_free (j->replay);
      j->replay = NULL;
    }
  j->fold_abort = false; /* the array collection reports any error again */
  kiln_error_free (&j->fold_err);
  kiln_build_copy_reset_collection (j);
  return ret < 0 ? -1 : done;
}

/* ---- the COPY/ADD op ---- */

struct copy_op {
  struct copy_job j;
  struct build_stage tmp; /* an image --from names */
  char **words;           /* the sources, then the destination */
  size_t nsrc;
  char *stream_src;      /* the directory streaming writes, or NULL (the array path) */
  struct stat stream_st; /* its stat */
  bool collected;        /* prepare collected the entries into the array */
};

static int
setup (struct copy_op *op, struct kiln_error **err)
{
  struct copy_job *j = &op->j;
  if (copy_words (j, &op->words, err) < 0 || check_flags (j, err) < 0 || source_root (j, &op->tmp, err) < 0)
    return -1;
  op->nsrc = kiln_strv_len (op->words) - 1;
  j->raw_dest = op->words[op->nsrc];
  j->dest = kiln_fs_path_join (j->s->cfg.working_dir ? j->s->cfg.working_dir : "/", j->raw_dest);
  j->dest_slash = names_dir (j->raw_dest);
  j->link_view = kiln_build_copy_is_link (j) ? kiln_tocview_new () : NULL;
  if (j->has_checksum && op->nsrc > 1)
    return kiln_build_copy_job_fail (j, err, "--checksum takes a single source%s", NULL);
  return 0;
}

/* The inputs, read as cheaply as the step allows: key mode when it can;
 * else, for a step streaming will write, nothing yet (it hashes as it
 * writes); else the entries collected, hashed only when a hit is
 * possible. */
static int
copy_prepare (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  struct copy_op *op = st->state;
  struct copy_job *j = &op->j;
  *j = (struct copy_job){ .b = b, .s = s, .in = st->in, .rootfd = -1, .downloads_fd = -1, .dc = KILN_FS_DIRCACHE_INIT };
  op->tmp.rootfs_fd = -1;
  /* which files changed is known once exec has saved this build's listings */
  st->explain_late = true;
  st->explain_input = kiln_build_copy_explain_source;
  st->explain_ud = j;
  if (setup (op, err) < 0)
    return -1;
  op->stream_src = kiln_build_copy_stream_source (j, op->words, op->nsrc, &op->stream_st);
  int r = key_mode (j, op->words, op->nsrc, op->stream_src != NULL, err);
  if (r != 0)
    return r < 0 ? -1 : (j->looked_up = true, BUILD_KEY_READY);
  if (op->stream_src)
    return BUILD_KEY_AFTER_EXEC;
  if (kiln_build_copy_collect_sources (j, op->words, op->nsrc, err) < 0)
    return -1;
  op->collected = true;
  return kiln_build_copy_prepare_entries (j, err);
}

static int
copy_exec (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err)
{
  (void) b, (void) s;
  struct copy_op *op = st->state;
  struct copy_job *j = &op->j;
  if (op->stream_src)
    return kiln_build_copy_stream_copy (j, op->stream_src, &op->stream_st, err);
  if (!op->collected && kiln_build_copy_collect_sources (j, op->words, op->nsrc, err) < 0)
    return -1;
  return kiln_build_copy_commit_layer (j, err);
}

static void
copy_clear (struct build_step *st)
{
  struct copy_op *op = st->state;
  struct copy_job *j = &op->j;
  if (!j->b)
    return;
  kiln_build_copy_replay_free (j->replay);
  kiln_build_copy_free_entries (j);
  free (j->dest);
  kiln_tocview_free (j->link_view);
  kiln_ignore_free (j->exclude);
  if (j->downloads_fd >= 0)
    close (j->downloads_fd);
  kiln_strv_free (op->words);
  free (op->stream_src);
  kiln_build_stage_clear (&op->tmp);
}

const struct build_op kiln_build_op_copy = { .name = "COPY",
                                             .layer = true,
                                             .size = sizeof (struct copy_op),
                                             .prepare = copy_prepare,
                                             .exec = copy_exec,
                                             .clear = copy_clear };

int
kiln_build_tree_digest (struct build *b, struct build_stage *s, int rootfd, const char *rel, bool from_context,
                        const char *origin, struct kiln_digest *out, struct kiln_error **err)
{
  /* key mode: the tree is folded as it is walked, whatever its size */
  struct copy_job j = { .b = b,
                        .s = s,
                        .rootfd = rootfd,
                        .from_context = from_context,
                        .origin = origin,
                        .dc = KILN_FS_DIRCACHE_INIT,
                        .keep_owner = !from_context,
                        .fold = kiln_treesum_new (),
                        .fold_src = SIZE_MAX };
  struct stat st;
  int ret = -1;
  kiln_autofree char *src = kiln_fs_path_clean (rel);
  kiln_autoclose int fd = kiln_fs_open_in_root (rootfd, src, O_RDONLY | O_NONBLOCK, 0, err);
  if (fd < 0 || fstat (fd, &st) < 0)
    goto out;
  kiln_build_copy_begin_source (&j, S_ISDIR (st.st_mode), NULL);
  kiln_build_copy_add_from_stat (&j, src, "", &st, NULL);
  if (S_ISDIR (st.st_mode))
    {
      kiln_build_copy_walk_ahead_start (&j, fd, src);
      int r = kiln_build_copy_walk_dir (&j, j.walk ? -1 : kiln_steal_fd (&fd), src, "", err);
      kiln_build_copy_walk_ahead_stop (&j);
      if (r < 0)
        goto out;
    }
  kiln_build_copy_fold_finish_source (&j);
  if (j.fold_abort)
    {
      *err = kiln_steal_ptr (&j.fold_err);
      goto out;
    }
  *out = j.srcs[0].digest;
  ret = 0;
out:
  kiln_treesum_free (j.fold);
  kiln_error_free (&j.fold_err);
  kiln_build_copy_free_entries (&j);
  return ret;
}
