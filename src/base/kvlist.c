/* kvlist.c - ordered key/value string lists (labels, annotations, build
 * arguments): a front-end type as much as an OCI one, so it has its own
 * module and the pure plan does not depend on the OCI documents. */
#include <stdlib.h>
#include <string.h>
#include "kiln/kvlist.h"
#include "kiln/util.h"

void
kiln_kvlist_set (struct kiln_kvlist *l, const char *key, const char *value)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp (l->items[i].key, key) == 0)
      {
        char *v = kiln_xstrdup (value);
        free (l->items[i].value);
        l->items[i].value = v;
        return;
      }
  l->items = kiln_xrealloc (l->items, (l->n + 1) * sizeof *l->items);
  l->items[l->n].key = kiln_xstrdup (key);
  l->items[l->n].value = kiln_xstrdup (value);
  l->n++;
}

const char *
kiln_kvlist_get (const struct kiln_kvlist *l, const char *key)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp (l->items[i].key, key) == 0)
      return l->items[i].value;
  return NULL;
}

void
kiln_kvlist_remove (struct kiln_kvlist *l, const char *key)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp (l->items[i].key, key) == 0)
      {
        free (l->items[i].key);
        free (l->items[i].value);
        /* shift rather than swap: insertion order is part of the contract */
        memmove (&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof *l->items);
        l->n--;
        return;
      }
}

void
kiln_kvlist_clear (struct kiln_kvlist *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->items[i].key);
      free (l->items[i].value);
    }
  free (l->items);
  l->items = NULL;
  l->n = 0;
}

void
kiln_kvlist_copy (struct kiln_kvlist *dst, const struct kiln_kvlist *src)
{
  kiln_kvlist_clear (dst);
  for (size_t i = 0; i < src->n; i++)
    kiln_kvlist_set (dst, src->items[i].key, src->items[i].value);
}
