/* toc_view.c - the merged view of a layer chain's tables of contents, as a
 * runtime would extract the layers (whiteouts and opaque directories
 * applied, a non-directory over a directory drops what was below it), and
 * path resolution in it with symlinks followed inside the root: what
 * COPY/ADD/WORKDIR resolve their destinations against without an extracted
 * filesystem. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/toc.h"
#include "kiln/util.h"

#define MAX_LINKS 40 /* symlinks followed in one resolution, as Linux */

/* Nodes in a hash table by path, children linked. */

struct node {
  struct kiln_tocnode n;
  char *path;
  struct node *parent, *first, *next; /* children list; dead nodes stay linked */
  bool dead;
};

struct kiln_tocview {
  struct node **slots; /* open addressing; TOMB marks a removed slot */
  size_t cap, used;    /* used counts live + tombstones */
  struct node **all;   /* every node ever made, freed at the end */
  size_t nall;
  struct node root;
};

static struct node tomb;
#define TOMB (&tomb)

static struct node **
find_slot (const struct kiln_tocview *v, const char *path, bool for_insert)
{
  size_t i = kiln_str_hash (path) & (v->cap - 1);
  struct node **tomb_slot = NULL;
  for (;; i = (i + 1) & (v->cap - 1))
    {
      struct node *n = v->slots[i];
      if (n == NULL)
        return for_insert && tomb_slot ? tomb_slot : &v->slots[i];
      if (n == TOMB)
        {
          if (!tomb_slot)
            tomb_slot = &v->slots[i];
        }
      else if (strcmp (n->path, path) == 0)
        return &v->slots[i];
    }
}

static void
grow (struct kiln_tocview *v)
{
  struct node **old = v->slots;
  size_t oldcap = v->cap;
  v->cap = oldcap ? oldcap * 2 : 1024;
  v->slots = kiln_xcalloc (v->cap, sizeof *v->slots);
  v->used = 0;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i] && old[i] != TOMB)
      {
        *find_slot (v, old[i]->path, true) = old[i];
        v->used++;
      }
  free (old);
}

struct kiln_tocview *
kiln_tocview_new (void)
{
  struct kiln_tocview *v = kiln_xcalloc (1, sizeof *v);
  v->root.n.mode = S_IFDIR | 0755;
  v->root.path = (char *) "";
  grow (v);
  return v;
}

void
kiln_tocview_free (struct kiln_tocview *v)
{
  if (!v)
    return;
  for (size_t i = 0; i < v->nall; i++)
    {
      free (v->all[i]->path);
      free (v->all[i]->n.link);
      free (v->all[i]);
    }
  free (v->all);
  free (v->slots);
  free (v);
}

static struct node *
lookup (const struct kiln_tocview *v, const char *path)
{
  if (!*path)
    return (struct node *) &v->root;
  struct node *n = *find_slot (v, path, false);
  return n && n != TOMB ? n : NULL;
}

const struct kiln_tocnode *
kiln_tocview_get (const struct kiln_tocview *v, const char *path)
{
  struct node *n = lookup (v, path);
  return n ? &n->n : NULL;
}

static void remove_children (struct kiln_tocview *v, struct node *n);

static void
remove_node (struct kiln_tocview *v, struct node *n)
{
  if (n->dead || n == &v->root)
    return;
  remove_children (v, n);
  n->dead = true;
  *find_slot (v, n->path, false) = TOMB;
}

static void
remove_children (struct kiln_tocview *v, struct node *n)
{
  for (struct node *c = n->first; c; c = c->next)
    remove_node (v, c);
  n->first = NULL;
}

static struct node *ensure_dir (struct kiln_tocview *v, const char *path);

static struct node *
new_node (struct kiln_tocview *v, const char *path)
{
  const char *slash = strrchr (path, '/');
  kiln_autofree char *pp = slash ? kiln_xstrndup (path, (size_t) (slash - path)) : kiln_xstrdup ("");
  struct node *parent = ensure_dir (v, pp);
  struct node *n = kiln_xcalloc (1, sizeof *n);
  if ((v->used + 1) * 2 > v->cap)
    grow (v);
  n->path = kiln_xstrdup (path);
  n->parent = parent;
  n->next = parent->first;
  parent->first = n;
  v->all = kiln_xrealloc (v->all, (v->nall + 1) * sizeof *v->all);
  v->all[v->nall++] = n;
  struct node **slot = find_slot (v, path, true);
  if (*slot == NULL)
    v->used++;
  *slot = n;
  return n;
}

/* The directory at path, made (0755 root) when missing or not a directory,
 * as runtimes do for a tar entry whose parents are not in the layer. */
static struct node *
ensure_dir (struct kiln_tocview *v, const char *path)
{
  struct node *n = lookup (v, path);
  if (n && S_ISDIR (n->n.mode))
    return n;
  if (n)
    remove_node (v, n);
  n = new_node (v, path);
  n->n.mode = S_IFDIR | 0755;
  return n;
}

void
kiln_tocview_put (struct kiln_tocview *v, const struct kiln_toc_entry *e)
{
  struct node *n = lookup (v, e->path);
  if (n == &v->root)
    {
      v->root.n.mode = S_IFDIR | (e->mode & 07777), v->root.n.uid = e->uid, v->root.n.gid = e->gid;
      return;
    }
  /* a directory over a directory merges; anything else replaces */
  if (n && !(S_ISDIR (n->n.mode) && S_ISDIR (e->mode)))
    {
      remove_node (v, n);
      n = NULL;
    }
  if (!n)
    n = new_node (v, e->path);
  n->n.mode = e->mode;
  n->n.uid = e->uid;
  n->n.gid = e->gid;
  n->n.mtime = e->mtime;
  free (n->n.link);
  n->n.link = e->link && !e->hardlink ? kiln_xstrdup (e->link) : NULL;
}

static void
apply_whiteout (struct kiln_tocview *v, const char *path)
{
  const char *slash = strrchr (path, '/');
  const char *base = slash ? slash + 1 : path;
  kiln_autofree char *dir = slash ? kiln_xstrndup (path, (size_t) (slash - path)) : kiln_xstrdup ("");
  if (strcmp (base, ".wh..wh..opq") == 0)
    {
      struct node *d = lookup (v, dir);
      if (d)
        remove_children (v, d);
      return;
    }
  kiln_autofree char *victim = *dir ? kiln_xasprintf ("%s/%s", dir, base + 4) : kiln_xstrdup (base + 4);
  struct node *n = lookup (v, victim);
  if (n)
    remove_node (v, n);
}

static bool
is_whiteout (const char *path)
{
  const char *slash = strrchr (path, '/');
  return kiln_str_has_prefix (slash ? slash + 1 : path, ".wh.");
}

void
kiln_tocview_apply (struct kiln_tocview *v, const struct kiln_toc *t)
{
  for (size_t i = 0; i < t->n; i++)
    if (is_whiteout (t->v[i].path))
      apply_whiteout (v, t->v[i].path);
  for (size_t i = 0; i < t->n; i++)
    if (!is_whiteout (t->v[i].path))
      kiln_tocview_put (v, &t->v[i]);
}

/* ---- resolution ---- */

/* Pops the last component of the relative path in b (never above the root). */
static void
pop_component (struct kiln_buf *b)
{
  char *slash = strrchr (b->buf, '/');
  kiln_buf_setlen (b, slash ? (size_t) (slash - b->buf) : 0);
}

int
kiln_tocview_resolve (const struct kiln_tocview *v, const char *path, bool follow_last, char **out,
                      struct kiln_error **err)
{
  kiln_autobuf struct kiln_buf cur = KILN_BUF_INIT;
  /* the components still to walk, as one '/'-joined string */
  kiln_autofree char *rest = kiln_xstrdup (path);
  int links = 0;
  char *p = rest;
  kiln_buf_adds (&cur, "");
  while (*p)
    {
      while (*p == '/')
        p++;
      char *s = p;
      while (*p && *p != '/')
        p++;
      size_t cl = (size_t) (p - s);
      bool last = strspn (p, "/") == strlen (p);
      if (cl == 0 || (cl == 1 && *s == '.'))
        continue;
      if (cl == 2 && s[0] == '.' && s[1] == '.')
        {
          pop_component (&cur);
          continue;
        }
      if (cur.len)
        kiln_buf_addch (&cur, '/');
      kiln_buf_add (&cur, s, cl);
      /* below a missing or non-directory component nothing is in the view */
      struct node *n = lookup (v, cur.buf);
      if (!n || !S_ISLNK (n->n.mode) || (last && !follow_last))
        continue;
      if (++links > MAX_LINKS)
        return kiln_error_set (err, ELOOP, KILN_E_PARSE, "too many levels of symbolic links in `%s`", path);
      pop_component (&cur);
      if (n->n.link[0] == '/')
        kiln_buf_reset (&cur);
      char *next = kiln_xasprintf ("%s/%s", n->n.link, p);
      free (rest);
      rest = p = next;
    }
  *out = kiln_xstrdup (cur.buf);
  return 0;
}
