/* build-internal.h - what the executor's files share: the build, its
 * stages and their running steps.  build_graph.c runs the stages (several
 * at once: docs/internals/stages.md says what a step may touch),
 * build_run.c one stage, build.c the metadata steps, build_copy*.c COPY and
 * ADD, build_exec.c RUN, build_cache.c the cache decisions. */
#ifndef KILN_BUILD_INTERNAL_H
#define KILN_BUILD_INTERNAL_H

#include <pthread.h>
#include "kiln/build.h"
#include "kiln/cache.h"
#include "kiln/ctxsum.h"
#include "kiln/dockerfile.h"
#include "kiln/ignore.h"
#include "kiln/oci.h"
#include "kiln/plan.h"
#include "kiln/store.h"

/* Owner of the directories a WORKDIR makes: BuildKit dispatchWorkdir makes
 * them with llb.WithUser(USER), whose ids fileop's readUser resolves: a name
 * gives the passwd uid and gid, a number gives uid = gid = that number. */
struct kiln_build_owner {
  char *user;              /* the USER at the WORKDIR ("" for none); the cache key uses it */
  bool resolved;           /* uid/gid looked up (only when a layer makes the directories) */
  uid_t uid;
  gid_t gid;
};
struct build;
struct build_stage;
/* Looks o's user up once; names need the stage's files (rootfd, or -1: its
 * flattened view, made then). */
int kiln_build_owner_resolve (struct build *b, struct build_stage *s, struct kiln_build_owner *o, int rootfd,
                              struct kiln_error **err);

/* The step a stage is running: what its key and its miss explanation are
 * made of.  Each stage has its own, so stages can run at once. */
struct build_step {
  char **used;                      /* "NAME\tVALUE" of every variable it looked up */
  bool cached;
  char *miss_reason;
  struct kiln_digest key;
  /* says why input `now_line` (was: `was`) changed better than "NAME changed"
   * (COPY: which files of a tree); NULL when it cannot */
  char *(*explain_input) (void *ud, const char *now_line, const char *was);
  void *explain_ud;
};

struct build_stage {
  bool built;
  struct build_step step;           /* the step running now */
  size_t stepno, nsteps;            /* progress: this step's number in the stage, and the stage's count */
  bool any_miss;                    /* a layer step of this stage or the stages below it was not cached */
  struct kiln_image_config cfg;
  struct kiln_descriptor *layers;
  size_t nlayers;
  struct kiln_kvlist args;          /* ARGs declared in this stage, in scope */
  bool cmd_set;                     /* CMD given in this stage (ENTRYPOINT resets an inherited one) */
  char **pending_dirs;              /* WORKDIRs to create in the next layer */
  struct kiln_build_owner *pending_owners; /* each one's owner: USER at the WORKDIR */
  /* WorkingDir as the image config records it: an absolute WORKDIR as
   * written ("/tmp/").  cfg.working_dir holds the same directory cleaned
   * ("/tmp") while the stage builds, because RUN, COPY destinations and the
   * cache key use the directory, not its spelling; write_image puts this
   * one back into the config. NULL when unset. */
  char *workdir;
  char *rootfs;                     /* ROOT-relative flattened view, or NULL */
  int rootfs_fd;
  size_t rootfs_layers;             /* layers already applied to the view */
  struct kiln_tocview *view;        /* the layers' tables of contents merged (kiln/toc.h), or NULL */
  size_t view_layers;               /* layers already applied to view */
  struct kiln_digest key;           /* cache key of the last step */
  char *clock;                      /* history time of the last step (cached steps keep theirs) */
  /* rootfs and view of a built stage are made on the first use by another
   * stage, which may run at the same time as a third one using it */
  pthread_mutex_t mu;
};

struct build {
  struct kiln_store *st;
  const struct kiln_build_opts *o;
  struct kiln_dockerfile *df;
  struct kiln_plan *plan;
  struct build_stage *stages;
  int ctx_fd;                       /* the context directory */
  struct kiln_ignore *ignore;
  char *created;                    /* RFC 3339 timestamp for config and history */
  struct kiln_build_result *res;
  char **tmpdirs;                   /* ROOT-relative scratch dirs to remove */
  struct kiln_ctxsum *ctxsum;       /* context checksum cache */
  struct build_copied *copied;      /* entries of the COPY layers this build wrote (build_copy.c) */
  size_t ncopied;
  bool multi;                       /* more than one stage runs: progress names the stage */
  /* stages run at once (build_graph.c): lock guards what they share - the
   * result's steps, tmpdirs, copied, the states - and cond says a stage ended */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum build_state { BUILD_WAITING = 0, BUILD_RUNNING, BUILD_DONE, BUILD_FAILED } *state;
  size_t running;                   /* stages running on threads */
  volatile int cancel;              /* a stage failed: the others stop at their next step */
  struct kiln_error *first_err;     /* the failure that cancelled the build */
};

void kiln_build_lock (struct build *b);
void kiln_build_unlock (struct build *b);
/* -1 with an error naming what (the step about to run) when the build
 * should stop (a signal, or another stage failed); 0 otherwise. */
int kiln_build_check_cancelled (const struct build *b, const char *what, struct kiln_error **err);
/* "[N/M]", or "[STAGE N/M]" when several stages run: the step's progress label.  Caller frees. */
char *kiln_build_step_label (const struct build *b, const struct build_stage *s);

/* build_graph.c: the stages as a graph.  Runs every needed stage, each once
 * its base and the stages it copies or mounts from are built, up to
 * o->jobs at once; the first failure cancels the rest. */
int kiln_build_graph_run (struct build *b, struct kiln_error **err);
/* Stage idx built (an ONBUILD trigger names it): built here unless it is
 * built or being built elsewhere, then waited for. */
int kiln_build_graph_need (struct build *b, size_t idx, struct kiln_error **err);
/* build_run.c: one stage, its base and dependencies built. */
int kiln_build_stage_run (struct build *b, size_t idx, struct kiln_error **err);

/* Whether lookups may use the cache for stage s (--no-cache, --no-cache-filter). */
bool kiln_build_cache_enabled (struct build *b, const struct build_stage *s);
/* Looks key up; on a hit with its layer in the store, adds the layer to the
 * stage and returns 1; 0 on a miss (s->step.miss_reason set). */
int kiln_build_cache_lookup (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                             const struct kiln_digest *key, char *const *inputs, struct kiln_error **err);
/* The same without saying anything on a miss: the caller notes it once it
 * can explain it (kiln_build_cache_note_miss). */
int kiln_build_cache_try (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                          const struct kiln_digest *key, struct kiln_error **err);
/* For a step that was not looked up (no cached result could exist): sets
 * the step's key and why it missed, and says so in plain progress. */
void kiln_build_cache_note_miss (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                                 const struct kiln_digest *key, char *const *inputs);
/* Records the layer the step just added under key. */
int kiln_build_cache_record (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                             const struct kiln_digest *key, char *const *inputs, struct kiln_error **err);

/* The step's variable lookup: ENV of the stage first, then its ARGs. */
struct step_env {
  struct build *b;
  struct build_stage *s;
};
const char *kiln_build_lookup (void *ud, const char *name);

/* The working directory after `WORKDIR dir` (dir expanded) when it was
 * current (NULL: unset): an absolute dir as written, a relative one joined
 * and cleaned.  Caller frees. */
char *kiln_build_workdir (const char *current, const char *dir);
/* Sets the stage's WorkingDir to wd (taken; NULL: unset): s->workdir keeps
 * it, s->cfg.working_dir gets it cleaned. */
void kiln_build_set_workdir (struct build_stage *s, char *wd);
/* Forgets the stage's pending WORKDIRs (once a layer has made them). */
void kiln_build_stage_pending_clear (struct build_stage *s);

/* "Dockerfile:LINE: KEYWORD: " prefix for errors of one instruction. */
int kiln_build_step_error (struct build *b, const struct kiln_df_instr *in, struct kiln_error **err);
/* One line of --progress=plain output (nothing when quiet). */
void kiln_build_progress (struct build *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* The stage's merged table of contents, brought up to its last layer
 * (NULL on error).  Owned by the stage. */
struct kiln_tocview *kiln_build_stage_view (struct build *b, struct build_stage *s, struct kiln_error **err);

/* Makes or updates the stage's flattened filesystem view; returns its fd. */
int kiln_build_stage_rootfs (struct build *b, struct build_stage *s, struct kiln_error **err);

/* A fresh scratch dir under ROOT/tmp, removed when the build ends; *abs
 * (optional, caller frees) receives its absolute path. */
int kiln_build_tmpdir (struct build *b, int *fd, char **abs, struct kiln_error **err);

/* COPY and ADD: writes one layer and appends it to the stage. */
int kiln_build_copy (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                     struct kiln_error **err);

/* A digest of the files under rel (names, modes, owners, link targets,
 * contents) for RUN --mount=type=bind keys; context files go through the
 * checksum cache, files of a stage or image (origin) are named by it. */
int kiln_build_tree_digest (struct build *b, struct build_stage *s, int rootfd, const char *rel, bool from_context,
                            const char *origin, struct kiln_digest *out, struct kiln_error **err);

/* kiln_snapshot_materialize_fn for COPY layers this build wrote: the
 * snapshot is made from the source files with copy_file_range (a reflink
 * where the filesystem can) instead of decompressing the blob.  opaque is
 * the struct build. */
int kiln_build_materialize (void *opaque, const struct kiln_descriptor *layer, int dirfd, struct kiln_error **err);
void kiln_build_copied_clear (struct build *b);

/* RUN. */
int kiln_build_run_step (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                         struct kiln_error **err);
/* The value of secret id (--secret): 1 found, 0 not given, < 0 error. */
int kiln_build_secret (struct build *b, const char *id, struct kiln_buf *out, struct kiln_error **err);

/* Appends a layer (result of the writer) to the stage's image. */
void kiln_build_add_layer (struct build *b, struct build_stage *s, const struct kiln_layer_result *lr,
                           const char *created_by);



/* Loads an image of the store as the starting state of s (FROM, COPY --from). */
int kiln_build_load_image (struct build *b, struct build_stage *s, const char *name, struct kiln_error **err);
void kiln_build_stage_clear (struct build_stage *s);
#endif
