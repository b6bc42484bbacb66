/* kiln/sandbox.h - run one process inside a prepared root directory, isolated.
 *
 * kiln_sandbox_run() clones a child into new mount, PID, UTS and IPC namespaces
 * (and a new network namespace with only `lo` when network_none).  The child
 * becomes PID 1 of the new PID namespace and acts as a tiny init: it prepares
 * the mounts, pivots into the rootfs, forks the command (PID 2), reaps every
 * orphan and exits with the command's status.  When it exits, the kernel kills
 * whatever else is left in the namespace.
 *
 * Every mount happens inside the child's own mount namespace, so nothing is
 * ever mounted on the host and nothing has to be unmounted afterwards, on any
 * exit path.  Mount targets are resolved inside the rootfs with openat2
 * (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) and mounted through
 * /proc/self/fd/N, so a symlink in the image cannot redirect a mount onto the
 * host.
 *
 * In the container:
 *   /proc      fresh procfs of the new PID namespace
 *   /dev       tmpfs with null zero full random urandom tty (device nodes, or
 *              binds of the host's nodes when mknod is not permitted, i.e. in a
 *              user namespace), pts (devpts newinstance), ptmx -> pts/ptmx,
 *              shm (tmpfs), fd/stdin/stdout/stderr symlinks to /proc/self/fd
 *   /sys       sysfs read-only (a recursive read-only bind of the host /sys
 *              when sysfs cannot be mounted, as in a user namespace)
 *   /etc/hosts, /etc/resolv.conf, /etc/hostname
 *              read-only binds of private copies with the given contents
 *   the extra mounts, in order
 * The command gets exactly `env`, fds 0-2 and nothing else, a new session,
 * default signal dispositions, umask 022, the requested uid/gid/groups, and a
 * capability bounding set reduced to Docker's default list (inheritable and
 * ambient sets empty).
 *
 * Threads: the child is created with a raw clone3 and does not allocate, so
 * kiln_sandbox_run may be called from any thread; several sandboxes may run at
 * once (up to KILN_SANDBOX_MAX_RUNNING are visible to kiln_sandbox_kill_all). */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kiln/error.h"

enum kiln_sandbox_mount_type {
  KILN_SANDBOX_BIND,
  KILN_SANDBOX_TMPFS,
  KILN_SANDBOX_DATA, /* a read-only file holding `data`, written only to the
                                         sandbox's private tmpfs (never to the host's disk): secrets */
};

/* A resource limit the command starts with (Docker's --ulimit). */
struct kiln_sandbox_rlimit {
  int resource;                  /* RLIMIT_* */
  const char *name;              /* Docker's name of it (static) */
  unsigned long long soft, hard; /* RLIM_INFINITY for unlimited */
};

/* Docker's --ulimit NAME=SOFT[:HARD] (NAME without RLIMIT_, e.g. nofile;
 * -1 for unlimited; one value sets both); KILN_E_USAGE naming what is wrong. */
int kiln_sandbox_rlimit_parse (const char *spec, struct kiln_sandbox_rlimit *out, struct kiln_error **err);

struct kiln_sandbox_mount { /* extra mounts, applied after the standard ones */
  enum kiln_sandbox_mount_type type;
  const char *source;  /* host path (bind); a file or a directory, recursive bind */
  const char *target;  /* path inside the container, resolved IN the rootfs;
                                         missing components are created (see `created`) */
  bool readonly;       /* bind: recursively read-only; tmpfs: mounted read-only */
  const char *options; /* tmpfs: mount data such as "size=64m,mode=1777"; may be NULL */
  const char *data;    /* data: the file's content, len bytes (never in an error) */
  size_t len;
  mode_t mode; /* data: permission bits (0 means 0400) */
  uid_t uid;   /* data: owner (kept as is when chown is refused, rootless) */
  gid_t gid;
};

struct kiln_sandbox_opts {
  const char *rootfs; /* host path of the root dir (an overlay mountpoint), must exist */
  char *const *argv;  /* argv[0] is searched in the PATH of `env` when it has no '/'
                                         (default PATH when env has none) */
  char *const *env;   /* exactly this environment (NULL: empty) */
  const char *cwd;    /* inside the container (NULL: "/"); created if missing (owned
                                         by root); NOT reported in `created` (it is content) */
  uid_t uid;
  gid_t gid;
  const gid_t *groups; /* supplementary groups; none when ngroups is 0 */
  size_t ngroups;
  bool network_none;                         /* own net namespace with loopback up; default host network */
  const char *hostname;                      /* NULL: keep the host's name */
  const struct kiln_sandbox_rlimit *rlimits; /* set before the command runs */
  size_t nrlimits;
  unsigned long long shm_size;     /* bytes of /dev/shm; 0: 64 MiB */
  const char *hosts, *resolv_conf; /* contents for /etc/hosts and /etc/resolv.conf
                                         (NULL: a copy of the host's file, empty if it has none) */
  const struct kiln_sandbox_mount *mounts;
  size_t nmounts;
  int stdin_fd, stdout_fd, stderr_fd; /* fds the process gets as 0, 1, 2 (-1: /dev/null); note that a
                                         zeroed struct means the caller's own stdin/stdout/stderr */
  /* Out, optional: receives a NULL-terminated vector (caller frees with
   * kiln_strv_free) of the paths, relative to the rootfs and parents before
   * children, of the mount-point files and directories the sandbox had to
   * create in the rootfs (e.g. "dev", "etc/hosts"), so the caller can keep
   * them out of the layer.  Paths are where the entries really are: a
   * symlinked parent is resolved (inside the rootfs).  Set on failure too
   * (whatever was created before the failure), NULL when nothing was. */
  char ***created;
};

/* Runs the command and waits for it; *status receives the exit status (128 +
 * signal number when it was killed, including by kiln_sandbox_kill_all).
 * Returns < 0 only when the sandbox itself could not be set up or the command
 * could not be executed; the error names the step, e.g. "pivot_root into
 * `/x/rootfs`", and an exec failure reads "exec `foo`" with the errno (kind
 * KILN_E_NOTFOUND for ENOENT). */
int kiln_sandbox_run (const struct kiln_sandbox_opts *o, int *status, struct kiln_error **err);

/* Async-signal-safe: SIGKILLs the init (PID 1) of every sandbox this process
 * is running, which kills everything in their PID namespaces.  Meant for the
 * caller's SIGINT/SIGTERM handler; each kiln_sandbox_run then returns 0 with
 * status 128 + 9. */
void kiln_sandbox_kill_all (void);

#define KILN_SANDBOX_MAX_RUNNING 64

#endif
