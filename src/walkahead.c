/* walkahead.c - directory listings of a depth-first walk, read ahead on a
 * second thread (see kiln/walkahead.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/util.h"
#include "kiln/walkahead.h"

/* names queued before the reader waits for the walker: a few MiB at most */
#define AHEAD_MAX_NAMES 32768

struct node {
  struct kiln_dirlisting *l;
  struct node *next;
};

struct kiln_walkahead {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct node *head, *tail;
  size_t queued;
  bool done, stop;
  int dfd;
  char *path;
  kiln_walkahead_enter_fn enter;
  void *ud;
};

void
kiln_dirlisting_free (struct kiln_dirlisting *l)
{
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->names[i]);
      free (l->links[i]);
    }
  free (l->names);
  free (l->links);
  free (l->st);
  free (l->path);
  free (l);
}

/* Queues l for the walker; false when the walk stopped (l is freed). */
static bool
push (struct kiln_walkahead *w, struct kiln_dirlisting *l)
{
  struct node *nd = kiln_xcalloc (1, sizeof *nd);
  nd->l = l;
  pthread_mutex_lock (&w->mu);
  while (w->queued > AHEAD_MAX_NAMES && !w->stop)
    pthread_cond_wait (&w->cv, &w->mu);
  bool ok = !w->stop;
  if (ok)
    {
      if (w->tail)
        w->tail->next = nd;
      else
        w->head = nd;
      w->tail = nd;
      w->queued += l->n;
      pthread_cond_broadcast (&w->cv);
    }
  pthread_mutex_unlock (&w->mu);
  if (!ok)
    {
      kiln_dirlisting_free (l);
      free (nd);
    }
  return ok;
}

static char *
child_path (const char *dir, const char *name)
{
  return *dir ? kiln_xasprintf ("%s/%s", dir, name) : kiln_xstrdup (name);
}

/* Reads dfd (taken) and the directories below it that the walk enters;
 * false once the walk stopped or a directory could not be read (its
 * listing carries the error, and the walker reads from there itself). */
static bool
read_dir (struct kiln_walkahead *w, int dfd, const char *path)
{
  struct kiln_dirlisting *l = kiln_xcalloc (1, sizeof *l);
  l->path = kiln_xstrdup (path);
  DIR *d = fdopendir (dfd);
  if (!d)
    {
      l->err = errno ? errno : EIO;
      close (dfd);
      return push (w, l), false;
    }
  l->names = kiln_fs_read_sorted (d, &l->n);
  l->err = errno;
  l->st = kiln_xcalloc (l->n + 1, sizeof *l->st);
  l->links = kiln_xcalloc (l->n + 1, sizeof *l->links);
  /* the directories to enter, decided before the walker owns the listing */
  char **sub = kiln_xcalloc (l->n + 1, sizeof *sub);
  size_t nsub = 0;
  for (size_t i = 0; !l->err && i < l->n; i++)
    {
      char link[4097];
      if (fstatat (dirfd (d), l->names[i], &l->st[i], AT_SYMLINK_NOFOLLOW) < 0)
        l->err = errno;
      else if (S_ISLNK (l->st[i].st_mode))
        {
          ssize_t n = readlinkat (dirfd (d), l->names[i], link, sizeof link - 1);
          if (n < 0)
            l->err = errno;
          else
            l->links[i] = kiln_xstrndup (link, (size_t) n);
        }
      else if (S_ISDIR (l->st[i].st_mode))
        {
          char *cp = child_path (path, l->names[i]);
          if (w->enter (w->ud, cp))
            sub[nsub++] = kiln_xstrdup (l->names[i]);
          free (cp);
        }
    }
  /* a listing that failed still goes: the walker then reads from there itself */
  bool failed = l->err != 0;
  bool ok = push (w, l) && !failed;
  for (size_t i = 0; ok && i < nsub; i++)
    {
      int cfd = openat (dirfd (d), sub[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      kiln_autofree char *cp = child_path (path, sub[i]);
      if (cfd < 0)
        {
          struct kiln_dirlisting *e = kiln_xcalloc (1, sizeof *e);
          e->path = kiln_xstrdup (cp);
          e->err = errno;
          push (w, e);
          ok = false;
        }
      else
        ok = read_dir (w, cfd, cp);
    }
  for (size_t i = 0; i < nsub; i++)
    free (sub[i]);
  free (sub);
  closedir (d);
  return ok;
}

static void *
reader_main (void *arg)
{
  struct kiln_walkahead *w = arg;
  read_dir (w, w->dfd, w->path);
  pthread_mutex_lock (&w->mu);
  w->done = true;
  pthread_cond_broadcast (&w->cv);
  pthread_mutex_unlock (&w->mu);
  return NULL;
}

struct kiln_walkahead *
kiln_walkahead_start (int dfd, const char *path, kiln_walkahead_enter_fn enter, void *ud)
{
  struct kiln_walkahead *w = kiln_xcalloc (1, sizeof *w);
  pthread_mutex_init (&w->mu, NULL);
  pthread_cond_init (&w->cv, NULL);
  w->dfd = dfd;
  w->path = kiln_xstrdup (path);
  w->enter = enter;
  w->ud = ud;
  if (pthread_create (&w->th, NULL, reader_main, w) != 0)
    {
      close (dfd);
      pthread_mutex_destroy (&w->mu);
      pthread_cond_destroy (&w->cv);
      free (w->path);
      free (w);
      return NULL;
    }
  return w;
}

struct kiln_dirlisting *
kiln_walkahead_next (struct kiln_walkahead *w, const char *path)
{
  struct kiln_dirlisting *l = NULL;
  pthread_mutex_lock (&w->mu);
  while (!w->head && !w->done && !w->stop)
    pthread_cond_wait (&w->cv, &w->mu);
  if (w->head && !w->stop)
    {
      struct node *nd = w->head;
      w->head = nd->next;
      if (!w->head)
        w->tail = NULL;
      w->queued -= nd->l->n;
      l = nd->l;
      free (nd);
    }
  if (!l || l->err || strcmp (l->path, path) != 0)
    {
      /* out of step: the walker goes on alone */
      kiln_dirlisting_free (l);
      l = NULL;
      w->stop = true;
    }
  pthread_cond_broadcast (&w->cv);
  pthread_mutex_unlock (&w->mu);
  return l;
}

void
kiln_walkahead_stop (struct kiln_walkahead *w)
{
  if (!w)
    return;
  pthread_mutex_lock (&w->mu);
  w->stop = true;
  pthread_cond_broadcast (&w->cv);
  pthread_mutex_unlock (&w->mu);
  pthread_join (w->th, NULL);
  for (struct node *nd = w->head, *next; nd; nd = next)
    {
      next = nd->next;
      kiln_dirlisting_free (nd->l);
      free (nd);
    }
  pthread_mutex_destroy (&w->mu);
  pthread_cond_destroy (&w->cv);
  free (w->path);
  free (w);
}
