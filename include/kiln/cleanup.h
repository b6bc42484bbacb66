/* kiln/cleanup.h - one-line wrappers over __attribute__((cleanup)).
 * Ownership moves out of a cleanup variable with kiln_steal_ptr / kiln_steal_fd. */
#ifndef KILN_CLEANUP_H
#define KILN_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include "kiln/error.h"

void kiln_cleanup_freep (void *p);
void kiln_cleanup_closep (int *fd);
void kiln_cleanup_fclosep (FILE **f);
void kiln_cleanup_closedirp (DIR **d);
void kiln_cleanup_strvp (char ***v);
void kiln_cleanup_jsonp (void *pj); /* json_t ** */

#define kiln_autofree __attribute__ ((cleanup (kiln_cleanup_freep)))
#define kiln_autoclose __attribute__ ((cleanup (kiln_cleanup_closep)))
#define kiln_autofclose __attribute__ ((cleanup (kiln_cleanup_fclosep)))
#define kiln_autodir __attribute__ ((cleanup (kiln_cleanup_closedirp)))
#define kiln_autostrv __attribute__ ((cleanup (kiln_cleanup_strvp)))
#define kiln_autoerror __attribute__ ((cleanup (kiln_error_free)))
#define kiln_autojson __attribute__ ((cleanup (kiln_cleanup_jsonp)))

static inline void *
kiln_steal_ptr_impl (void *pp)
{
  void **p = pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define kiln_steal_ptr(pp) ((__typeof__ (*(pp))) kiln_steal_ptr_impl (pp))

static inline int
kiln_steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#endif
