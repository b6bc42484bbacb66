/* extract-internal.h - the extractor's state and the calls its files share:
 * extract.c applies one entry at a time, extract_created.c remembers the
 * paths a layer created, extract_whiteout.c applies whiteouts and
 * extract_archive.c reads the tar (a file or a stream) and drives the rest. */
#ifndef KILN_EXTRACT_INTERNAL_H
#define KILN_EXTRACT_INTERNAL_H

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include "kiln/error.h"
#include "kiln/extract.h"
#include "kiln/fs.h"

#define READ_BLOCK (64 * 1024)
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* A string set with an int value per key (open addressing). */
struct pathset {
  char **keys;
  int *vals;
  size_t cap, n;
};

struct meta {
  mode_t mode; /* permission bits incl. setuid/setgid/sticky */
  bool chown;
  uid_t uid;
  gid_t gid;
  struct timespec times[2]; /* atime, mtime */
};

struct dirmeta {
  char *path;
  dev_t dev;
  ino_t ino;
  struct meta m;
};

struct xstate {
  const char *name;
  int rootfd;
  const struct kiln_extract_opts *opts;
  struct archive *a;
  struct pathset created; /* paths made by this archive, value = index in dirs or -1 */
  struct dirmeta *dirs;
  size_t ndirs, adirs;
  bool warned_chown;
  /* The directory the previous entry went into (a tar lists a directory's
   * files together): its path and fd, so its files skip resolving it again.
   * Valid only while every change goes through parent_fd; a whiteout, which
   * may remove directories by its own lookup, drops it. */
  struct kiln_fs_dircache pcache;
};

/* The value slot of key, or NULL when absent. */
int *kiln_extract_set_get (const struct pathset *s, const char *key);
/* The value slot of key, inserting it with -1 when new. */
int *kiln_extract_set_put (struct pathset *s, const char *key);
void kiln_extract_set_clear (struct pathset *s);

/* Frees what x holds (the reader too); x itself is the caller's. */
void kiln_extract_state_clear (struct xstate *x);
/* Records path and its ancestors as created by this layer. */
void kiln_extract_mark_created (struct xstate *x, const char *path);
/* A libarchive status as a kiln_error: WARN is logged, the rest fail. */
int kiln_extract_archive_check (struct xstate *x, int r, struct kiln_error **err);
/* Makes room for a new object at pfd/base: 1 when an existing directory
 * stays (keep_dir), 0 when nothing is there any more, < 0 on failure. */
int kiln_extract_clear_dest (int pfd, const char *base, bool keep_dir, struct kiln_error **err);
/* A ".wh.NAME" or ".wh..wh..opq" entry found in directory parent. */
int kiln_extract_whiteout (struct xstate *x, const char *parent, const char *base, struct kiln_error **err);
/* One entry of the archive, placed under the root. */
int kiln_extract_entry (struct xstate *x, struct archive_entry *e, struct kiln_error **err);
/* The directories' owners, modes and times, once every entry is in. */
int kiln_extract_dir_meta (struct xstate *x, struct kiln_error **err);

#endif
