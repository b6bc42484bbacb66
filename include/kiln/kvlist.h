/* kiln/kvlist.h - an ordered list of key/value string pairs (labels,
 * annotations, build arguments).  Order is insertion order and is kept:
 * documents and keys are written in it.
 *
 * Ownership: the list owns copies of every key and value (_set and _copy
 * copy); _get returns a pointer into the list, valid until that key is set
 * or removed or the list is cleared.  A zeroed list is empty; _clear frees
 * and leaves it empty. */
#ifndef KILN_KVLIST_H
#define KILN_KVLIST_H

#include <stddef.h>

struct kiln_kv {
  char *key;
  char *value;
};
struct kiln_kvlist {
  struct kiln_kv *items;
  size_t n;
};
/* Sets key (replacing an existing one in place, else appending). */
void kiln_kvlist_set (struct kiln_kvlist *l, const char *key, const char *value);
const char *kiln_kvlist_get (const struct kiln_kvlist *l, const char *key);
void kiln_kvlist_remove (struct kiln_kvlist *l, const char *key);
void kiln_kvlist_clear (struct kiln_kvlist *l);
void kiln_kvlist_copy (struct kiln_kvlist *dst, const struct kiln_kvlist *src);

#endif
