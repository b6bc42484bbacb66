/* build-internal.h - what the executor's files share: the build, its
 * stages, their running steps and the ops.  build_graph.c runs the stages
 * (several at once: docs/internals/stages.md says what a step may touch),
 * build_run.c one stage, build_solve.c each step through its op (with
 * build_cache.c, the only code that decides the cache), and the ops:
 * build_from.c FROM, build_metadata.c metadata (build.c: what they share), build_copy*.c COPY and ADD,
 * build_exec.c RUN (docs/internals/solver.md). */
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
  char *user;    /* the USER at the WORKDIR ("" for none); the cache key uses it */
  bool resolved; /* uid/gid looked up (only when a layer makes the directories) */
  uid_t uid;
  gid_t gid;
};
struct build;
struct build_stage;
/* Looks o's user up once; names need the stage's files (rootfd, or -1: its
 * flattened view, made then). */
int kiln_build_owner_resolve (struct build *b, struct build_stage *s, struct kiln_build_owner *o, int rootfd,
                              struct kiln_error **err);

/* ---- ops and the solver (build_solve.c) ----
 * Every step runs as   prepare -> key -> lookup -> [miss: explain] -> exec -> record.
 * An op (one per kind of step: FROM, metadata, COPY/ADD, RUN) only declares
 * what its key is made of and does the work; the solver alone computes the
 * key, looks it up, explains a miss, records the result and reports
 * progress.  docs/internals/solver.md says how to add an op or a flag. */

/* What prepare says about the step's inputs. */
enum build_key {
  /* every input is declared: a layer step is looked up before exec */
  BUILD_KEY_READY = 0,
  /* exec completes them: a cold COPY hashes files while it writes them (a
   * hit was not possible, so reading them twice would be waste), metadata
   * learns which variables it used by expanding them */
  BUILD_KEY_AFTER_EXEC = 1,
};

struct build_step;
struct build_op {
  const char *name;
  bool layer;  /* adds a layer: looked up, and recorded after exec */
  bool root;   /* starts a stage's key chain (FROM): no parent key */
  size_t size; /* bytes of the op's own state (build_step.state), zeroed per step */
  /* Declares the step's inputs (kiln_build_step_input); may defer the
   * expensive ones to exec.  BUILD_KEY_* or -1. */
  int (*prepare) (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err);
  /* Does the step: a layer op adds exactly one layer to s. */
  int (*exec) (struct build *b, struct build_stage *s, struct build_step *st, struct kiln_error **err);
  /* Frees what the op's state holds (not the state itself); may be NULL. */
  void (*clear) (struct build_step *st);
};
extern const struct build_op kiln_build_op_from, kiln_build_op_metadata, kiln_build_op_copy, kiln_build_op_run;

/* The step a stage is running: its op and what its key and its miss
 * explanation are made of.  Each stage has its own, so stages can run at
 * once; the solver resets it before each step. */
struct build_step {
  const struct kiln_df_instr *in;
  const struct build_op *op;
  void *state; /* the op's, op->size bytes; owned by the solver */
  char **used; /* "var NAME\t=VALUE" of every variable it looked up */
  /* the key's inputs in order: inputs[i] enters it as field labels[i]
   * ("input" for layer steps, whose records keep the lines) */
  char **inputs;
  char **labels;
  bool explain_late; /* a miss is explained after exec (COPY: the listings exist then) */
  bool keeps_key;    /* the stage's key stays as exec left it (FROM another stage) */
  bool cached;
  char *miss_reason;
  /* the record of the same instruction on the same parent, read once
   * (build_cache.c): 0 not read yet, 1 found, -1 none */
  int sibling_state;
  struct kiln_cache_record sibling;
  struct kiln_digest key;
  /* says why input `now_line` (was: `was`) changed better than "NAME changed"
   * (COPY: which files of a tree); NULL when it cannot */
  char *(*explain_input) (void *ud, const char *now_line, const char *was);
  void *explain_ud;
};

/* Appends input "NAME\tVALUE" (value NULL: "") under the field "input". */
void kiln_build_step_input (struct build_step *st, const char *name, const char *value);
/* Appends value under field label, as it is. */
void kiln_build_step_add_input (struct build_step *st, const char *label, const char *value);
/* Forgets the inputs declared so far (an op that declares them again). */
void kiln_build_step_inputs_clear (struct build_step *st);
/* Frees everything the step holds and zeroes it. */
void kiln_build_step_reset (struct build_step *st);
/* The key a step's inputs make on top of parent (NULL: a chain's start). */
void kiln_build_step_key (const struct build_step *st, const struct kiln_digest *parent, struct kiln_digest *out);
/* Runs one step of stage s: op NULL picks it from in->cmd (FROM there is
 * an error); prefix goes before the progress label ("ONBUILD "). */
int kiln_build_solve_step (struct build *b, struct build_stage *s, const struct kiln_df_instr *in,
                           const struct build_op *op, const char *prefix, struct kiln_error **err);
/* Whether a lookup of this step could hit: the cache is enabled and the
 * store has a record of the same instruction on the same parent (or
 * --cache-sources asks to hash anyway).  An op hashes files in prepare only
 * then. */
bool kiln_build_solve_may_hit (struct build *b, struct build_stage *s);

struct build_stage {
  bool built;
  struct build_step step; /* the step running now */
  size_t stepno, nsteps;  /* progress: this step's number in the stage, and the stage's count */
  bool any_miss;          /* a layer step of this stage or the stages below it was not cached */
  struct kiln_image_config cfg;
  struct kiln_descriptor *layers;
  size_t nlayers;
  struct kiln_kvlist args;                 /* ARGs declared in this stage, in scope */
  bool cmd_set;                            /* CMD given in this stage (ENTRYPOINT resets an inherited one) */
  char **pending_dirs;                     /* WORKDIRs to create in the next layer */
  struct kiln_build_owner *pending_owners; /* each one's owner: USER at the WORKDIR */
  /* WorkingDir as the image config records it: an absolute WORKDIR as
   * written ("/tmp/").  cfg.working_dir holds the same directory cleaned
   * ("/tmp") while the stage builds, because RUN, COPY destinations and the
   * cache key use the directory, not its spelling; write_image puts this
   * one back into the config. NULL when unset. */
  char *workdir;
  char *rootfs; /* ROOT-relative flattened view, or NULL */
  int rootfs_fd;
  size_t rootfs_layers;      /* layers already applied to the view */
  struct kiln_tocview *view; /* the layers' tables of contents merged (kiln/toc.h), or NULL */
  size_t view_layers;        /* layers already applied to view */
  struct kiln_digest key;    /* cache key of the last step */
  char *clock;               /* history time of the last step (cached steps keep theirs) */
  /* rootfs and view of a built stage are made on the first use by another
   * stage, which may run at the same time as a third one using it */
  pthread_mutex_t mu;
};

/* Where a stage is in the graph (build_graph.c). */
enum build_state { BUILD_WAITING = 0, BUILD_RUNNING, BUILD_DONE, BUILD_FAILED };

struct build {
  struct kiln_store *st;
  const struct kiln_build_opts *o;
  struct kiln_dockerfile *df;
  struct kiln_plan *plan;
  struct build_stage *stages;
  int ctx_fd; /* the context directory */
  struct kiln_ignore *ignore;
  char *created; /* RFC 3339 timestamp for config and history */
  struct kiln_build_result *res;
  char **tmpdirs;              /* ROOT-relative scratch dirs to remove */
  struct kiln_ctxsum *ctxsum;  /* context checksum cache */
  struct build_copied *copied; /* entries of the COPY layers this build wrote (build_copy.c) */
  size_t ncopied;
  bool multi; /* more than one stage runs: progress names the stage */
  /* stages run at once (build_graph.c): lock guards what they share - the
   * result's steps, tmpdirs, copied, the states - and cond says a stage ended */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum build_state *state;
  size_t running;               /* stages running on threads */
  volatile int cancel;          /* a stage failed: the others stop at their next step */
  struct kiln_error *first_err; /* the failure that cancelled the build */
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

/* build_cache.c, the solver's half that talks to the cache; ops do not call it. */
/* Whether lookups may use the cache for stage s (--no-cache, --no-cache-filter). */
bool kiln_build_cache_enabled (struct build *b, const struct build_stage *s);
/* Looks the step's key up; on a hit with its layer in the store, adds the
 * layer to the stage and returns 1; 0 on a miss. */
int kiln_build_cache_try (struct build *b, struct build_stage *s, struct kiln_error **err);
/* Sets why the step missed, and says so in plain progress. */
void kiln_build_cache_note_miss (struct build *b, struct build_stage *s);
/* Records the layer the step just added under its key. */
int kiln_build_cache_record (struct build *b, struct build_stage *s, struct kiln_error **err);
/* Whether the store has a record of in on the stage's parent key. */
bool kiln_build_cache_has_sibling (struct build *b, struct build_stage *s);

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
/* A KILN_E_PARSE error of the step: fmt with one %s (arg, or ""), wrapped
 * as kiln_build_step_error does. */
int kiln_build_step_fail (struct build *b, const struct kiln_df_instr *in, struct kiln_error **err, const char *fmt,
                          const char *arg);
/* text expanded against stage s (kiln_build_lookup records what it used):
 * one word, or split into words. */
int kiln_build_expand_word (struct build *b, struct build_stage *s, const char *text, char **out,
                            struct kiln_error **err);
int kiln_build_expand_words (struct build *b, struct build_stage *s, const char *text, char ***out,
                             struct kiln_error **err);
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

/* The value of secret id (--secret): 1 found, 0 not given, < 0 error. */
int kiln_build_secret (struct build *b, const char *id, struct kiln_buf *out, struct kiln_error **err);

/* Appends a layer (result of the writer) to the stage's image. */
void kiln_build_add_layer (struct build *b, struct build_stage *s, const struct kiln_layer_result *lr,
                           const char *created_by);

/* Loads an image of the store as the starting state of s (FROM, COPY --from). */
int kiln_build_load_image (struct build *b, struct build_stage *s, const char *name, struct kiln_error **err);
void kiln_build_stage_clear (struct build_stage *s);
#endif
