/* sandbox-internal.h - what the parent side (sandbox.c) prepares for the child
 * side (sandbox_child.c, sandbox_exec.c).
 *
 * The child is a raw clone3 of a possibly multi-threaded process, so it must
 * not allocate or take locks: everything that needs memory (cleaned paths,
 * file contents, the PATH value) is computed here by the parent beforehand,
 * and the child reports back over a pipe with fixed-size messages. */
#ifndef KILN_SANDBOX_INTERNAL_H
#define KILN_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "kiln/sandbox.h"

enum { SB_ETC_HOSTS, SB_ETC_RESOLV, SB_ETC_HOSTNAME, SB_ETC_N };

struct sb_plan {
  const struct kiln_sandbox_opts *o;
  int pipe_wr;                   /* O_CLOEXEC write end of the report pipe */
  const char *etc_rel[SB_ETC_N]; /* "etc/hosts", ... */
  const char *etc_data[SB_ETC_N];
  size_t etc_len[SB_ETC_N];
  char **targets;   /* cleaned rootfs-relative targets of o->mounts */
  bool *target_dir; /* the target is a directory (else a file) */
  const char *cwd;  /* cleaned, rootfs-relative ("" for /) */
  const char *path; /* PATH used to find argv[0] */
  const char *hostname;
  /* child state */
  int rootfd; /* O_PATH of the rootfs bind mount (later "/") */
  int root_mnt_id;
  char root_real[4096]; /* the rootfs as /proc/self/fd shows it, for `created` */
};

/* One report: type 'C' (a created path in text) or 'E' (a failed step). */
struct sb_msg {
  int type;
  int errnum;
  int kind;
  char text[1012];
};

/* Child side, never return.  sb_child_main is PID 1 of the namespace. */
__attribute__ ((noreturn)) void kiln_sandbox_child_main (struct sb_plan *p);
__attribute__ ((noreturn)) void kiln_sandbox_exec_command (struct sb_plan *p, int cwdfd);

/* Child side helpers shared by both files. */
void kiln_sandbox_send (struct sb_plan *p, int type, int errnum, int kind, const char *fmt, ...)
    __attribute__ ((format (printf, 5, 6)));
__attribute__ ((noreturn)) void kiln_sandbox_fail (struct sb_plan *p, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* fork() as a raw clone3, safe in the child of a multi-threaded parent. */
long kiln_sandbox_clone3 (unsigned long long flags);
/* openat2 in root with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, no allocation. */
int kiln_sandbox_open_in_root (int rootfd, const char *rel, int flags, int mode);

#endif
