/* walkahead.c - directory listings of a depth-first walk, read ahead by a
 * few threads (see kiln/walkahead.h).
 *
 * The listings form a tree of nodes: a node is one directory, its kids the
 * subdirectories the walk enters, in name order.  Readers take pending nodes
 * from a stack (kids pushed last-first, so the top is the next directory in
 * the walk's order) and fill them in; the walker follows the tree depth-first
 * and frees each node once it has gone past it.  When the node the walker
 * needs is not taken yet, it reads it itself, so the bound on what is queued
 * can never leave the walker waiting for readers that wait for it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/error.h"
#include "kiln/fs.h"
#include "kiln/util.h"
#include "kiln/walkahead.h"

/* names read and not yet handed out before the readers wait: a few MiB */
#define AHEAD_MAX_NAMES 32768
/* readers: the walk is system calls, which scale with the cores; past four
 * the walker itself (hashing, index lookups) is the limit */
#define AHEAD_MAX_READERS 4

enum node_state { NODE_PENDING, NODE_READING, NODE_READY, NODE_TAKEN };

struct node {
  char *path;
  enum node_state state;
  struct kiln_dirlisting *l; /* READY: the listing, until the walker takes it */
  struct node *parent;
  struct node **kids;     /* READY or TAKEN: the directories the walk enters */
  size_t nkids, next_kid; /* next_kid: the walker's place among them */
};

struct kiln_walkahead {
  pthread_t th[AHEAD_MAX_READERS];
  size_t nthreads;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, ready_cv;
  struct node **stack; /* the pending nodes, the next one in the walk's order on top */
  size_t nstack, capstack;
  size_t queued, busy; /* names READY and not taken; nodes being read */
  size_t idle;         /* readers waiting on work_cv */
  bool stop, walker_waits;
  int rootfd;
  size_t root_len;         /* strlen of the start path: node paths below it are relative to rootfd */
  struct node *root, *cur; /* cur: the node whose listing the walker took last */
  kiln_walkahead_enter_fn enter;
  void *ud;
};

void
kiln_dirlisting_free (struct kiln_dirlisting *l)
{
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++)
    free (l->links[i]);
  free (l->names);
  free (l->links);
  free (l->st);
  free (l->path);
  free (l);
}

/* Reads a directory's names with getdents64 into one block: names[] point
 * into it (fdopendir/readdir cost two more system calls per directory). */
static int
read_names (int dfd, struct kiln_dirlisting *l)
{
  size_t cap = 16384, len = 0, n = 0;
  char *buf = kiln_xmalloc (cap);
  for (;;)
    {
      if (cap - len < 8192)
        buf = kiln_xrealloc (buf, cap *= 2);
      long r = syscall (SYS_getdents64, dfd, buf + len, cap - len);
      if (r < 0)
        {
          int e = errno;
          free (buf);
          return e;
        }
      if (r == 0)
        break;
      len += (size_t) r;
    }
  /* one block: the pointer array, then the names packed */
  size_t bytes = 0;
  for (size_t off = 0; off < len;)
    {
      struct dirent64 *de = (struct dirent64 *) (buf + off);
      bytes += strlen (de->d_name) + 1, n++;
      off += de->d_reclen;
    }
  char **names = kiln_xmalloc ((n + 1) * sizeof *names + bytes);
  char *p = (char *) (names + n + 1);
  l->n = 0;
  for (size_t off = 0; off < len;)
    {
      struct dirent64 *de = (struct dirent64 *) (buf + off);
      off += de->d_reclen;
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      size_t nl = strlen (de->d_name) + 1;
      names[l->n++] = memcpy (p, de->d_name, nl);
      p += nl;
    }
  names[l->n] = NULL;
  free (buf);
  if (l->n > 1)
    qsort (names, l->n, sizeof *names, kiln_strv_cmp);
  l->names = names;
  return 0;
}

/* lstat (and readlink) of every name; the kids the walk enters, by name. */
static int
stat_names (struct kiln_walkahead *w, int dfd, struct kiln_dirlisting *l, char ***sub, size_t *nsub)
{
  l->st = kiln_xcalloc (l->n + 1, sizeof *l->st);
  l->links = kiln_xcalloc (l->n + 1, sizeof *l->links);
  *sub = kiln_xcalloc (l->n + 1, sizeof **sub);
  *nsub = 0;
  for (size_t i = 0; i < l->n; i++)
    {
      char link[4097];
      if (fstatat (dfd, l->names[i], &l->st[i], AT_SYMLINK_NOFOLLOW) < 0)
        return errno;
      if (S_ISLNK (l->st[i].st_mode))
        {
          ssize_t n = readlinkat (dfd, l->names[i], link, sizeof link - 1);
          if (n < 0)
            return errno;
          l->links[i] = kiln_xstrndup (link, (size_t) n);
        }
      else if (S_ISDIR (l->st[i].st_mode))
        {
          kiln_autofree char *cp = *l->path ? kiln_xasprintf ("%s/%s", l->path, l->names[i])
                                            : kiln_xstrdup (l->names[i]);
          if (w->enter (w->ud, cp))
            {
              (*sub)[(*nsub)++] = cp;
              cp = NULL;
            }
        }
    }
  return 0;
}

/* The listing of node path; on failure it carries the error and no kids
 * (the walker then reads from there itself). */
static struct kiln_dirlisting *
read_listing (struct kiln_walkahead *w, const char *path, char ***sub, size_t *nsub)
{
  struct kiln_dirlisting *l = kiln_xcalloc (1, sizeof *l);
  l->path = kiln_xstrdup (path);
  *sub = NULL, *nsub = 0;
  const char *rel = path + w->root_len + (path[w->root_len] == '/');
  struct kiln_error *e = NULL;
  kiln_autoclose int dfd = *rel ? kiln_fs_open_beneath (w->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, &e)
                                : fcntl (w->rootfd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0)
    l->err = e && e->errnum ? e->errnum : EIO;
  kiln_error_free (&e);
  if (!l->err)
    l->err = read_names (dfd, l);
  if (!l->err)
    l->err = stat_names (w, dfd, l, sub, nsub);
  if (l->err)
    {
      for (size_t i = 0; i < *nsub; i++)
        free ((*sub)[i]);
      free (*sub);
      *sub = NULL, *nsub = 0;
    }
  return l;
}

static struct node *
node_new (const char *path, struct node *parent)
{
  struct node *nd = kiln_xcalloc (1, sizeof *nd);
  nd->path = kiln_xstrdup (path);
  nd->parent = parent;
  return nd;
}

static void
node_free (struct node *nd)
{
  if (!nd)
    return;
  for (size_t i = 0; i < nd->nkids; i++)
    node_free (nd->kids[i]);
  free (nd->kids);
  kiln_dirlisting_free (nd->l);
  free (nd->path);
  free (nd);
}

/* With w->mu held: nd is read; its kids become pending nodes. */
static void
node_fill (struct kiln_walkahead *w, struct node *nd, struct kiln_dirlisting *l, char **sub, size_t nsub)
{
  nd->l = l;
  nd->kids = kiln_xcalloc (nsub + 1, sizeof *nd->kids);
  nd->nkids = nsub;
  for (size_t i = 0; i < nsub; i++)
    {
      nd->kids[i] = node_new (sub[i], nd);
      free (sub[i]);
    }
  free (sub);
  nd->state = NODE_READY;
  w->queued += l->n;
  if (w->nstack + nsub > w->capstack)
    {
      w->capstack = 2 * (w->nstack + nsub) + 16;
      w->stack = kiln_xrealloc (w->stack, w->capstack * sizeof *w->stack);
    }
  for (size_t i = nsub; i-- > 0;)
    w->stack[w->nstack++] = nd->kids[i];
  if (nsub && w->idle)
    pthread_cond_broadcast (&w->work_cv);
  if (w->walker_waits)
    pthread_cond_signal (&w->ready_cv);
}

/* With w->mu held (released while reading): reads nd. */
static void
read_node (struct kiln_walkahead *w, struct node *nd)
{
  nd->state = NODE_READING;
  w->busy++;
  pthread_mutex_unlock (&w->mu);
  char **sub;
  size_t nsub;
  struct kiln_dirlisting *l = read_listing (w, nd->path, &sub, &nsub);
  pthread_mutex_lock (&w->mu);
  w->busy--;
  node_fill (w, nd, l, sub, nsub);
  if (w->busy == 0 && w->nstack == 0)
    pthread_cond_broadcast (&w->work_cv); /* no more work: idle readers leave */
}

/* With w->mu held: takes pending nd off the stack (the walker reads it
 * itself, and frees it once past it). */
static void
unstack (struct kiln_walkahead *w, struct node *nd)
{
  for (size_t i = w->nstack; i-- > 0;)
    if (w->stack[i] == nd)
      {
        memmove (w->stack + i, w->stack + i + 1, (w->nstack - i - 1) * sizeof *w->stack);
        w->nstack--;
        return;
      }
}

/* With w->mu held: the next pending node a reader may take, or NULL. */
static struct node *
pop_pending (struct kiln_walkahead *w)
{
  return w->nstack > 0 ? w->stack[--w->nstack] : NULL;
}

static void *
reader_main (void *arg)
{
  struct kiln_walkahead *w = arg;
  pthread_mutex_lock (&w->mu);
  while (!w->stop)
    {
      struct node *nd = w->queued <= AHEAD_MAX_NAMES ? pop_pending (w) : NULL;
      if (nd)
        {
          read_node (w, nd);
          continue;
        }
      if (w->nstack == 0 && w->busy == 0)
        break; /* the tree is read */
      w->idle++;
      pthread_cond_wait (&w->work_cv, &w->mu);
      w->idle--;
    }
  pthread_mutex_unlock (&w->mu);
  return NULL;
}

static size_t
reader_count (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n < 2 ? 1 : n > AHEAD_MAX_READERS ? AHEAD_MAX_READERS : (size_t) n;
}

struct kiln_walkahead *
kiln_walkahead_start (int dfd, const char *path, kiln_walkahead_enter_fn enter, void *ud)
{
  struct kiln_walkahead *w = kiln_xcalloc (1, sizeof *w);
  pthread_mutex_init (&w->mu, NULL);
  pthread_cond_init (&w->work_cv, NULL);
  pthread_cond_init (&w->ready_cv, NULL);
  w->rootfd = dfd;
  w->root_len = strlen (path);
  w->root = node_new (path, NULL);
  w->enter = enter;
  w->ud = ud;
  w->stack = kiln_xcalloc (16, sizeof *w->stack);
  w->capstack = 16;
  w->stack[w->nstack++] = w->root;
  size_t want = reader_count ();
  while (w->nthreads < want && pthread_create (&w->th[w->nthreads], NULL, reader_main, w) == 0)
    w->nthreads++;
  if (w->nthreads == 0)
    {
      kiln_walkahead_stop (w);
      return NULL;
    }
  return w;
}

/* With w->mu held: the node after w->cur in the walk's order; nodes left
 * behind are freed.  NULL at the end of the tree. */
static struct node *
successor (struct kiln_walkahead *w)
{
  struct node *nd = w->cur;
  if (!nd)
    return w->root;
  while (nd)
    {
      if (nd->next_kid < nd->nkids)
        return nd->kids[nd->next_kid++];
      struct node *up = nd->parent;
      if (up)
        {
          up->kids[up->next_kid - 1] = NULL; /* nd is done: freed here, not at stop */
          node_free (nd);
        }
      nd = up;
    }
  return NULL;
}

struct kiln_dirlisting *
kiln_walkahead_next (struct kiln_walkahead *w, const char *path)
{
  struct kiln_dirlisting *l = NULL;
  pthread_mutex_lock (&w->mu);
  struct node *nd = w->stop ? NULL : successor (w);
  if (nd && strcmp (nd->path, path) == 0)
    {
      if (nd->state == NODE_PENDING)
        {
          /* not taken yet: read it here rather than wait */
          unstack (w, nd);
          read_node (w, nd);
        }
      w->walker_waits = true;
      while (nd->state == NODE_READING)
        pthread_cond_wait (&w->ready_cv, &w->mu);
      w->walker_waits = false;
      l = nd->l;
      nd->l = NULL;
      nd->state = NODE_TAKEN;
      w->cur = nd;
      w->queued -= l->n;
      /* readers held back by the bound resume once half of it is free, not
       * at every listing taken (each wake-up is a context switch) */
      if (w->idle && w->queued <= AHEAD_MAX_NAMES / 2)
        pthread_cond_broadcast (&w->work_cv);
    }
  if (!l || l->err)
    {
      /* out of step, or the listing failed: the walker goes on alone */
      kiln_dirlisting_free (l);
      l = NULL;
      w->stop = true;
      pthread_cond_broadcast (&w->work_cv);
    }
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
  pthread_cond_broadcast (&w->work_cv);
  pthread_mutex_unlock (&w->mu);
  for (size_t i = 0; i < w->nthreads; i++)
    pthread_join (w->th[i], NULL);
  node_free (w->root);
  free (w->stack);
  close (w->rootfd);
  pthread_mutex_destroy (&w->mu);
  pthread_cond_destroy (&w->work_cv);
  pthread_cond_destroy (&w->ready_cv);
  free (w);
}
