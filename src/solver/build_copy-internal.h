/* build_copy-internal.h - what the files of COPY/ADD share: an entry, a
 * source, the step's job, and the functions one file gives another. */
#ifndef KILN_BUILD_COPY_INTERNAL_H
#define KILN_BUILD_COPY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include "build-internal.h"
#include "kiln/digest.h"
#include "kiln/fs.h"

struct kiln_ignore;
struct kiln_layer_writer;
struct kiln_tocview;
struct kiln_tocnode;
struct kiln_treesum;
struct kiln_treesum_entry;
struct kiln_walkahead;
struct kiln_df_heredoc;
struct copy_stream;
struct kiln_snapshot_tmp;
struct kiln_build_copy_feed;
struct kiln_build_copy_replay;

/* What an entry keeps of its source's stat (half of a struct stat: a
 * 100,000-file COPY holds 100,000 of them). */
struct cstat {
  dev_t st_dev;
  ino_t st_ino;
  nlink_t st_nlink;
  off_t st_size;
  mode_t st_mode;
  struct timespec st_mtim, st_ctim;
};

/* One file of the layer.  Collection fills rel (the path below where its
 * source lands); placement, once the step misses the cache, fills dest
 * against the image the layer goes on top of. */
struct centry {
  char *dest;     /* path in the image, cleaned, no leading '/'; NULL until placed */
  char *rel;      /* path below its source's destination, "" for a file source itself */
  size_t srcno;   /* which source (struct csource) it came from; SIZE_MAX: made by placement */
  bool dropped;   /* a later entry has the same dest: not written, still a cache input */
  bool implied;   /* an ADD archive's directory that the archive does not list (a parent) */
  bool optional;  /* streaming: a directory above the target, written only with files below */
  size_t link_to; /* hardlink: index (in the placed, sorted entries) of the file it links to */
  bool hardlink;  /* another name of a file written earlier in the layer */
  int rootfd;     /* source root (borrowed), -1 when synthesized */
  char *src;      /* path under rootfd */
  char *data;     /* heredoc content */
  size_t datalen;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  uint64_t size;
  char *link;
  dev_t rdev;
  size_t seq;
  struct cstat st;           /* of the source, for the checksum cache and hardlinks */
  bool ctx;                  /* a context file */
  const char *origin;        /* non-context source: its identity instead of its content */
  struct kiln_digest digest; /* content digest of a regular file */
  bool have_digest;
  char *url; /* ADD <url> not downloaded yet (its digest may be known: --checksum, 304) */
};

/* One source of the step, in the order written: a file (lands at the
 * destination, or inside it when that is a directory) or a directory tree
 * (its contents land in the destination, which is made when missing). */
struct csource {
  bool is_dir;
  bool archive; /* ADD of a local archive: unpacked into the destination */
  char *name;   /* a file source's name inside a destination directory */
  bool folded;  /* digest was made by the streaming fold (key mode) */
  struct kiln_digest digest;
};

struct copy_job {
  struct build *b;
  struct build_stage *s;
  const struct kiln_df_instr *in;
  struct centry *v;
  size_t n, cap;
  size_t added; /* entries collected so far, folded ones included */
  /* key mode: each entry goes into its source's tree digest as soon as it
   * is known, and the array holds only the last few (memory does not grow
   * with the tree); a miss collects again into the array */
  struct kiln_treesum *fold;
  size_t fold_src;             /* the source the fold belongs to; SIZE_MAX: none */
  bool fold_cheap_only;        /* give up when a file would have to be read */
  bool fold_abort;             /* key mode cannot do this step: collect into the array */
  struct kiln_error *fold_err; /* why, when a file could not be hashed */
  bool looked_up;              /* key mode declared the inputs: the solver looked the step up, it missed */
  bool may_hit;                /* the array path hashed every file: a hit was possible */
  bool sorted;                 /* the array is in collection order */
  bool streamed;               /* streaming wrote the layer and the listing */
  bool patching;               /* the layer writer patches the last build's layer */
  bool has_chown, has_chmod;
  uid_t uid;
  gid_t gid;
  mode_t chmod;
  /* the source currently walked */
  int rootfd;
  bool from_context, keep_owner;
  const char *origin;          /* identity of a --from stage/image or an ADD archive */
  char **origins;              /* owns the origin strings */
  int downloads_fd;            /* scratch dir of this step's ADD <url> files, -1 until needed */
  struct kiln_ignore *exclude; /* --exclude patterns, NULL without */
  const char *tree;            /* the directory source being walked: --exclude matches below it */
  bool has_checksum;           /* ADD --checksum */
  struct kiln_digest checksum;
  struct csource *srcs; /* the sources; entries point at them by srcno */
  size_t nsrcs;
  bool parents;                   /* --parents: each source keeps its path below the pivot */
  const char *parent_prefix;      /* with --parents: the current source's path below its pivot */
  const char *raw_dest;           /* the destination as written */
  char *dest;                     /* joined to WORKDIR, cleaned, relative */
  bool globbed;                   /* the source being added is a wildcard's match */
  struct kiln_tocview *link_view; /* COPY --link: the empty view it is placed on, else NULL */
  bool dest_slash;                /* it names a directory (ends in '/' or '.') */
  /* key mode: directory listings read ahead on a second thread */
  struct kiln_walkahead *walk;
  bool walk_off; /* it fell out of step: the walk reads alone */
  /* the directory of the last file opened for the layer (see kiln_build_copy_open_source) */
  struct kiln_fs_dircache dc;
  /* streaming: each entry goes into the layer as soon as it is final */
  struct copy_stream *stream;
  /* key mode's entries of a source streaming may write (build_copy_replay.c) */
  struct kiln_build_copy_replay *replay;
};

/* The snapshot of a COPY layer made while the layer streams, on its own
 * thread: the layer writer keeps both cores busy only part of the time,
 * and a RUN right after needs the snapshot anyway. */
struct ahead {
  struct build *b;
  const struct centry *v;
  size_t n;
  int dirfd;
  int result;
  struct kiln_error *err;
  struct kiln_snapshot_tmp *tmp;
  pthread_t th;
  bool running;
};

static inline void
cstat_set (struct cstat *c, const struct stat *st)
{
  *c = (struct cstat){ .st_dev = st->st_dev,
                       .st_ino = st->st_ino,
                       .st_nlink = st->st_nlink,
                       .st_size = st->st_size,
                       .st_mode = st->st_mode,
                       .st_mtim = st->st_mtim,
                       .st_ctim = st->st_ctim };
}

/* The fields the checksum cache compares, as a struct stat. */
static inline const struct stat *
cstat_get (const struct cstat *c, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_dev = c->st_dev, st->st_ino = c->st_ino, st->st_nlink = c->st_nlink, st->st_size = c->st_size;
  st->st_mode = c->st_mode, st->st_mtim = c->st_mtim, st->st_ctim = c->st_ctim;
  return st;
}

/* build_copy.c: the step */
bool kiln_build_copy_flag_true (const struct kiln_df_instr *in, const char *name);
int kiln_build_copy_job_fail (struct copy_job *j, struct kiln_error **err, const char *fmt, const char *arg);

/* build_copy_walk.c: collection */
struct centry *kiln_build_copy_add_entry (struct copy_job *j, const char *rel);
void kiln_build_copy_add_from_stat (struct copy_job *j, const char *src, const char *rel, const struct stat *st,
                                    const char *link);
void kiln_build_copy_begin_source (struct copy_job *j, bool is_dir, const char *name);
int kiln_build_copy_compare_collected (const void *a, const void *b);
int kiln_build_copy_copy_one (struct copy_job *j, const char *src, struct kiln_error **err);
int kiln_build_copy_copy_tree (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err);
bool kiln_build_copy_excluded (struct copy_job *j, const char *src, bool *descend);
void kiln_build_copy_fold_finish_source (struct copy_job *j);
void kiln_build_copy_free_centries (struct centry *v, size_t n);
void kiln_build_copy_free_centry (struct centry *c);
void kiln_build_copy_free_entries (struct copy_job *j);
void kiln_build_copy_reset_collection (struct copy_job *j);
int kiln_build_copy_source_digest (struct copy_job *j, int fd, const char *src, struct kiln_digest *d,
                                   struct kiln_error **err);
int64_t kiln_build_copy_synth_mtime (const struct copy_job *j);
void kiln_build_copy_walk_ahead_start (struct copy_job *j, int dfd, const char *src);
void kiln_build_copy_walk_ahead_stop (struct copy_job *j);
int kiln_build_copy_walk_dir (struct copy_job *j, int dfd, const char *src, const char *rel, struct kiln_error **err);

/* build_copy_sources.c: what a source word names */
int kiln_build_copy_collect_sources (struct copy_job *j, char **words, size_t nsrc, struct kiln_error **err);
const struct kiln_df_heredoc *kiln_build_copy_find_heredoc (const struct kiln_df_instr *in, const char *word);
bool kiln_build_copy_has_glob (const char *s);

/* build_copy_add.c: ADD's archives and URLs */
int kiln_build_copy_add_archive (struct copy_job *j, int fd, const char *src, struct kiln_error **err);
int kiln_build_copy_add_url (struct copy_job *j, const char *url, struct kiln_error **err);
int kiln_build_copy_fetch_pending (struct copy_job *j, struct kiln_error **err);

/* build_copy_place.c: placement */
void kiln_build_copy_add_ancestors (struct copy_job *j, struct kiln_tocview *v);
void kiln_build_copy_add_made_dir (struct copy_job *j, const char *dest, const struct kiln_tocnode *n);
void kiln_build_copy_compact_entries (struct copy_job *j);
bool kiln_build_copy_has_dest (const struct copy_job *j, size_t n, const char *path);
bool kiln_build_copy_is_link (const struct copy_job *j);
int kiln_build_copy_place_check (struct copy_job *j, struct kiln_tocview *v, struct centry *c, const char *target,
                                 struct kiln_error **err);
int kiln_build_copy_place_entries (struct copy_job *j, struct kiln_error **err);
int kiln_build_copy_place_prepare (struct copy_job *j, struct kiln_tocview *v, char **dst, struct kiln_error **err);
struct kiln_tocview *kiln_build_copy_place_view (struct copy_job *j, struct kiln_error **err);
void kiln_build_copy_sort_entries (struct copy_job *j);
int kiln_build_copy_source_target (struct copy_job *j, struct kiln_tocview *v, size_t i, const char *dst, char **out,
                                   struct kiln_error **err);

/* build_copy_key.c: digests, key, listings */
bool kiln_build_copy_all_cheap (struct copy_job *j);
bool kiln_build_copy_cheap_digest (struct copy_job *j, struct centry *c);
const struct kiln_digest *kiln_build_copy_content_digest (const struct centry *c);
int kiln_build_copy_entry_digest (struct copy_job *j, struct centry *c, struct kiln_error **err);
char *kiln_build_copy_explain_source (void *ud, const char *now_line, const char *was);
void kiln_build_copy_save_listings (struct copy_job *j);
void kiln_build_copy_step_inputs (struct copy_job *j);
const struct kiln_treesum_entry *kiln_build_copy_treesum_entry (const struct centry *c, struct kiln_treesum_entry *e);

/* build_copy_layer.c: the layer */
int kiln_build_copy_prepare_entries (struct copy_job *j, struct kiln_error **err);
int kiln_build_copy_commit_layer (struct copy_job *j, struct kiln_error **err);
int kiln_build_copy_finish_layer (struct copy_job *j, struct kiln_layer_writer *w, struct kiln_error **err);
int kiln_build_copy_new_writer (struct copy_job *j, bool digested, struct kiln_layer_writer **w,
                                struct kiln_error **err);
int kiln_build_copy_open_source (struct copy_job *j, const struct centry *c, struct kiln_error **err);
int kiln_build_copy_write_entry (struct copy_job *j, struct kiln_layer_writer *w, struct centry *c,
                                 const struct centry *to, struct kiln_error **err);

/* build_copy_snapshot.c: snapshots from the entries */
void kiln_build_copy_ahead_finish (struct copy_job *j, struct ahead *a, bool layer_ok);
void kiln_build_copy_ahead_start (struct copy_job *j, struct ahead *a);
bool kiln_build_copy_from_context_only (const struct copy_job *j);
void kiln_build_copy_keep_entries (struct copy_job *j);
bool kiln_build_copy_run_follows (const struct copy_job *j);

/* The snapshot of a streamed COPY, fed entry by entry (NULL: none made);
 * push moves the entry (*c is zeroed); finish commits it when the layer was
 * added and every entry made it. */
struct kiln_build_copy_feed *kiln_build_copy_feed_start (struct copy_job *j);
void kiln_build_copy_feed_push (struct kiln_build_copy_feed *f, struct centry *c);
void kiln_build_copy_feed_finish (struct copy_job *j, struct kiln_build_copy_feed *f, bool layer_ok);

/* build_copy_replay.c: key mode's entries, kept for streaming */
struct kiln_build_copy_replay *kiln_build_copy_replay_new (void);
void kiln_build_copy_replay_free (struct kiln_build_copy_replay *r);
void kiln_build_copy_replay_note (struct kiln_build_copy_replay *r, const struct centry *c);
bool kiln_build_copy_replay_complete (const struct kiln_build_copy_replay *r);
void kiln_build_copy_replay_run (struct copy_job *j, const struct kiln_build_copy_replay *r, const char *src);

/* build_copy_stream.c: streaming */
char *kiln_build_copy_stream_source (struct copy_job *j, char **words, size_t nsrc, struct stat *st);
int kiln_build_copy_stream_copy (struct copy_job *j, const char *src, const struct stat *st, struct kiln_error **err);
bool kiln_build_copy_stream_failed (const struct copy_job *j);
void kiln_build_copy_stream_flush (struct copy_job *j);
int kiln_build_copy_stream_open (struct copy_job *j, const char *path, struct kiln_error **err);

#endif
