/* build_exec-internal.h - what the RUN op's files share: the step's job
 * (build_exec.c runs it, build_exec_mounts.c turns its --mount flags into
 * sandbox mounts). */
#ifndef KILN_BUILD_EXEC_INTERNAL_H
#define KILN_BUILD_EXEC_INTERNAL_H

#include "build-internal.h"
#include "kiln/sandbox.h"

struct kiln_mount;

struct run_job {
  struct build *b;
  struct build_stage *s;
  const struct kiln_df_instr *in;
  char **argv, **env;
  struct kiln_sandbox_mount *mounts;
  size_t nmounts;
  char **strings; /* owns the mount paths */
  int *locks;     /* flock()ed cache mounts (sharing=locked) */
  size_t nlocks;
  struct kiln_mount **rw; /* overlays giving rw bind mounts a throwaway upper */
  size_t nrw;
  bool network_none;
  char *hosts; /* /etc/hosts with --add-host entries, or NULL (the host's copy) */
};

/* A parse error of the step's instruction (fmt has one %s: arg). */
int kiln_build_run_fail (struct run_job *r, struct kiln_error **err, const char *fmt, const char *arg);
/* s, owned by the job from now on (freed with it). */
const char *kiln_build_run_keep (struct run_job *r, char *s);
/* One input of the step's key: "NAME\tVALUE". */
void kiln_build_run_input (struct run_job *r, const char *name, const char *value);
/* Appends a sandbox mount (the strings are borrowed: keep them in the job). */
void kiln_build_run_add_mount (struct run_job *r, enum kiln_sandbox_mount_type type, const char *source,
                               const char *target, bool readonly, const char *options);
/* build_exec_mounts.c: every --mount of the step as a sandbox mount and its
 * key inputs (tmp: where an image a from= names is loaded). */
int kiln_build_run_parse_mounts (struct run_job *r, struct build_stage *tmp, struct kiln_error **err);

#endif
