/* kiln/walkahead.h - a depth-first walk's directory listings, read ahead
 * by a few threads.
 *
 * Checking a large tree against the checksum index costs one lstat per file,
 * and in a VM the system call is most of the cost.  A walk that visits
 * directories depth-first, each one's names sorted, can hand the reading
 * (getdents, lstat, readlink) to threads (one per CPU, at most four) that
 * read the directories it will enter, in its order as far as they can,
 * while it hashes and looks up what is already read.  The walker asks for
 * each directory by path; when the next listing is not that one (the two
 * disagreed on what to enter), it is told so and walks on by itself.
 * Listings read ahead are bounded, so memory does not grow with the tree;
 * a directory no reader has started yet is read by the walker itself.
 *
 * Ownership: _start takes dfd (closed by the readers or _stop, also when it
 * returns NULL); a listing _next returns is the caller's, freed with
 * kiln_dirlisting_free; _stop joins the threads and frees the rest. */
#ifndef KILN_WALKAHEAD_H
#define KILN_WALKAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct kiln_dirlisting {
  char *path; /* as the walk names it: the start path, then "/name" per level */
  size_t n;
  char **names;    /* sorted by strcmp */
  struct stat *st; /* lstat of each name */
  char **links;    /* symlink targets; NULL for other entries */
  int err;         /* not 0: reading it failed (errno); the walker reads it itself */
};
void kiln_dirlisting_free (struct kiln_dirlisting *l);

/* Whether the walk enters directory `path`; called on the reading threads,
 * several at once, so it must only read shared state. */
typedef bool (*kiln_walkahead_enter_fn) (void *ud, const char *path);

struct kiln_walkahead;
/* Starts reading at dfd (taken), named path; NULL when no thread starts. */
struct kiln_walkahead *kiln_walkahead_start (int dfd, const char *path, kiln_walkahead_enter_fn enter, void *ud);
/* The listing of `path` if it is the next one read; NULL otherwise, and from
 * then on (the walker reads the rest itself). */
struct kiln_dirlisting *kiln_walkahead_next (struct kiln_walkahead *w, const char *path);
void kiln_walkahead_stop (struct kiln_walkahead *w);

#endif
