/* extract_created.c - the paths the layer being extracted created itself
 * (with their ancestors), in a hash set: a whiteout never removes an entry
 * of its own layer, and a directory's recorded metadata is found by path. */
#include <stdlib.h>
#include <string.h>
#include "extract-internal.h"
#include "kiln/cleanup.h"
#include "kiln/util.h"

static size_t
set_slot (const struct pathset *s, const char *key)
{
  size_t i = kiln_str_hash (key) & (s->cap - 1);
  while (s->keys[i] && strcmp (s->keys[i], key) != 0)
    i = (i + 1) & (s->cap - 1);
  return i;
}

int *
kiln_extract_set_get (const struct pathset *s, const char *key)
{
  if (s->cap == 0)
    return NULL;
  size_t i = set_slot (s, key);
  return s->keys[i] ? &s->vals[i] : NULL;
}

static void
set_grow (struct pathset *s)
{
  struct pathset old = *s;
  s->cap = old.cap ? old.cap * 2 : 256;
  s->keys = kiln_xcalloc (s->cap, sizeof *s->keys);
  s->vals = kiln_xcalloc (s->cap, sizeof *s->vals);
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i])
      {
        size_t j = set_slot (s, old.keys[i]);
        s->keys[j] = old.keys[i];
        s->vals[j] = old.vals[i];
      }
  free (old.keys);
  free (old.vals);
}

/* Returns the value slot of key, inserting it with -1 when new. */
int *
kiln_extract_set_put (struct pathset *s, const char *key)
{
  if ((s->n + 1) * 2 > s->cap)
    set_grow (s);
  size_t i = set_slot (s, key);
  if (!s->keys[i])
    {
      s->keys[i] = kiln_xstrdup (key);
      s->vals[i] = -1;
      s->n++;
    }
  return &s->vals[i];
}

void
kiln_extract_set_clear (struct pathset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free (s->keys[i]);
  free (s->keys);
  free (s->vals);
  memset (s, 0, sizeof *s);
}

/* Records path and its ancestors as created by this layer; stops at the first
 * ancestor already known, since its own ancestors were recorded with it. */
void
kiln_extract_mark_created (struct xstate *x, const char *path)
{
  kiln_autofree char *p = kiln_xstrdup (path);
  while (*p && !kiln_extract_set_get (&x->created, p))
    {
      kiln_extract_set_put (&x->created, p);
      char *slash = strrchr (p, '/');
      if (!slash)
        break;
      *slash = '\0';
    }
}
