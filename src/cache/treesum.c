/* treesum.c - the Merkle digest of a file tree fed in tree order, and the
 * listings that explain what changed between two trees. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kiln/cleanup.h"
#include "kiln/treesum.h"
#include "kiln/util.h"

int
kiln_treesum_path_cmp (const char *a, const char *b)
{
  const unsigned char *x = (const unsigned char *) a, *y = (const unsigned char *) b;
  for (;; x++, y++)
    {
      /* NUL ends, '/' next, then every other byte: children follow their directory */
      int cx = *x == '\0' ? 0 : *x == '/' ? 1 : *x + 1;
      int cy = *y == '\0' ? 0 : *y == '/' ? 1 : *y + 1;
      if (cx != cy)
        return cx < cy ? -1 : 1;
      if (cx == 0)
        return 0;
    }
}

/* One open directory: its children's "name NUL digest" lines are hashed as
 * they come, the directory's own line goes to its parent when it closes. */
struct level {
  size_t plen; /* length of its path in t->path */
  size_t nlen; /* length of its name (the last element) */
  bool has_meta;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  struct kiln_sha256 *children;
};

struct kiln_treesum {
  struct level *v;
  size_t n, cap;
  char *path; /* the innermost open directory's path */
  char *last; /* the last entry's path, for the order check */
  size_t lastcap;
  struct kiln_sha256 *leaf; /* reused for every file's digest */
  bool leaf_root;           /* the root is not a directory: its digest is the tree's */
  struct kiln_digest root;
  size_t count;
};

struct kiln_treesum *
kiln_treesum_new (void)
{
  struct kiln_treesum *t = kiln_xcalloc (1, sizeof *t);
  t->path = kiln_xstrdup ("");
  t->lastcap = 64;
  t->last = kiln_xcalloc (1, t->lastcap);
  return t;
}

/* metadata NUL link NUL content digest */
static void
leaf_digest (struct kiln_treesum *t, const struct kiln_treesum_entry *e, struct kiln_digest *out)
{
  char meta[64];
  int n = snprintf (meta, sizeof meta, "%o %u:%u", (unsigned) e->mode, (unsigned) e->uid, (unsigned) e->gid);
  if (!t->leaf)
    t->leaf = kiln_sha256_new ();
  else
    kiln_sha256_reset (t->leaf);
  kiln_sha256_update (t->leaf, meta, (size_t) n + 1);
  if (e->link)
    kiln_sha256_update (t->leaf, e->link, strlen (e->link));
  kiln_sha256_update (t->leaf, "", 1);
  if (e->content)
    kiln_sha256_update (t->leaf, e->content->s, KILN_DIGEST_STR_LEN);
  kiln_sha256_final (t->leaf, out);
}

static void
push_level (struct kiln_treesum *t, const char *path, size_t plen, const struct kiln_treesum_entry *meta)
{
  if (t->n == t->cap)
    {
      t->cap = t->cap ? 2 * t->cap : 16;
      t->v = kiln_xrealloc (t->v, t->cap * sizeof *t->v);
      memset (t->v + t->n, 0, (t->cap - t->n) * sizeof *t->v);
    }
  struct level *l = &t->v[t->n++];
  const char *slash = memrchr (path, '/', plen);
  l->plen = plen;
  l->nlen = slash ? plen - (size_t) (slash - path) - 1 : plen;
  l->has_meta = meta != NULL;
  l->mode = meta ? meta->mode : S_IFDIR;
  l->uid = meta ? meta->uid : 0;
  l->gid = meta ? meta->gid : 0;
  if (l->children)
    kiln_sha256_reset (l->children);
  else
    l->children = kiln_sha256_new ();
  free (t->path);
  t->path = kiln_xstrndup (path, plen);
}

/* Adds "name NUL digest" to the innermost open directory. */
static void
add_child (struct kiln_treesum *t, const char *name, size_t nlen, const struct kiln_digest *d)
{
  struct kiln_sha256 *h = t->v[t->n - 1].children;
  kiln_sha256_update (h, name, nlen);
  kiln_sha256_update (h, "", 1);
  kiln_sha256_update (h, d->s, KILN_DIGEST_STR_LEN);
}

static void
close_digest (const struct level *l, struct kiln_digest *out)
{
  struct kiln_digest kids;
  char meta[80];
  kiln_sha256_final (l->children, &kids);
  int n = l->has_meta
              ? snprintf (meta, sizeof meta, "%o %u:%u", (unsigned) l->mode, (unsigned) l->uid, (unsigned) l->gid)
              : snprintf (meta, sizeof meta, "implied");
  struct kiln_sha256 *h = kiln_sha256_new ();
  kiln_sha256_update (h, meta, (size_t) n + 1);
  kiln_sha256_update (h, kids.s, KILN_DIGEST_STR_LEN);
  kiln_sha256_final (h, out);
  kiln_sha256_free (h);
}

/* Closes the innermost directory into its parent (not the root). */
static void
pop_level (struct kiln_treesum *t)
{
  struct kiln_digest d;
  struct level *l = &t->v[t->n - 1];
  close_digest (l, &d);
  size_t plen = l->plen, nlen = l->nlen;
  kiln_autofree char *name = kiln_xstrndup (t->path + plen - nlen, nlen);
  t->n--;
  t->path[t->v[t->n - 1].plen] = '\0';
  add_child (t, name, nlen, &d);
}

static bool
under (const char *path, const char *dir, size_t dlen)
{
  return dlen == 0 || (strncmp (path, dir, dlen) == 0 && path[dlen] == '/');
}

int
kiln_treesum_add (struct kiln_treesum *t, const struct kiln_treesum_entry *e, struct kiln_error **err)
{
  if ((t->count > 0 && kiln_treesum_path_cmp (t->last, e->path) > 0) || (t->leaf_root && t->count > 0))
    return kiln_error_set (err, 0, KILN_E_INTERNAL, "tree digest: `%s` after `%s`", e->path, t->last);
  size_t plen = strlen (e->path);
  if (plen >= t->lastcap)
    {
      t->lastcap = plen + 64;
      t->last = kiln_xrealloc (t->last, t->lastcap);
    }
  memcpy (t->last, e->path, plen + 1);
  t->count++;
  if (t->n == 0)
    push_level (t, "", 0, NULL);
  if (*e->path == '\0')
    {
      if (!S_ISDIR (e->mode))
        {
          leaf_digest (t, e, &t->root);
          t->leaf_root = true;
          return 0;
        }
      t->v[0].has_meta = true, t->v[0].mode = e->mode, t->v[0].uid = e->uid, t->v[0].gid = e->gid;
      return 0;
    }
  while (t->n > 1 && !under (e->path, t->path, t->v[t->n - 1].plen))
    pop_level (t);
  /* directories between the innermost open one and the entry, unnamed */
  size_t base = t->v[t->n - 1].plen;
  for (const char *c = strchr (e->path + base + (base > 0), '/'); c; c = strchr (c + 1, '/'))
    push_level (t, e->path, (size_t) (c - e->path), NULL);
  const char *slash = strrchr (e->path, '/');
  const char *name = slash ? slash + 1 : e->path;
  if (S_ISDIR (e->mode))
    {
      push_level (t, e->path, strlen (e->path), e);
      return 0;
    }
  struct kiln_digest d;
  leaf_digest (t, e, &d);
  add_child (t, name, strlen (name), &d);
  return 0;
}

void
kiln_treesum_final (struct kiln_treesum *t, struct kiln_digest *out)
{
  if (t->n == 0 && !t->leaf_root)
    push_level (t, "", 0, NULL);
  while (t->n > 1)
    pop_level (t);
  if (t->leaf_root)
    *out = t->root;
  else
    close_digest (&t->v[0], out);
  t->n = 0;
  t->leaf_root = false;
  t->count = 0;
  t->last[0] = '\0';
}

void
kiln_treesum_free (struct kiln_treesum *t)
{
  if (!t)
    return;
  for (size_t i = 0; i < t->cap; i++)
    kiln_sha256_free (t->v[i].children);
  free (t->v);
  free (t->path);
  free (t->last);
  kiln_sha256_free (t->leaf);
  free (t);
}

/* ---- listings ----
 *
 * "KILNTL1\n", then per entry: u32 name length, name, u32 mode, u32 uid,
 * u32 gid, u32 link length (0xffffffff: none), link, u8 has content, the
 * content digest's 64 hex digits when it has; then a u32 0xffffffff end
 * mark.  Native byte order: a listing never leaves its store. */

#define TL_MAGIC "KILNTL1\n"
#define TL_END 0xffffffffu
#define TL_MAX_STR (1u << 20)

struct kiln_treelist_writer {
  FILE *f;
  bool failed;
};

struct kiln_treelist_writer *
kiln_treelist_writer_new (int fd)
{
  struct kiln_treelist_writer *w = kiln_xcalloc (1, sizeof *w);
  w->f = fdopen (fd, "w");
  if (!w->f)
    {
      close (fd);
      w->failed = true;
      return w;
    }
  setvbuf (w->f, NULL, _IOFBF, 1 << 16);
  w->failed = fwrite (TL_MAGIC, 8, 1, w->f) != 1;
  return w;
}

static void
put_u32 (struct kiln_treelist_writer *w, uint32_t v)
{
  w->failed |= w->f == NULL || fwrite (&v, sizeof v, 1, w->f) != 1;
}

static void
put_str (struct kiln_treelist_writer *w, const char *s)
{
  size_t n = strlen (s);
  put_u32 (w, (uint32_t) n);
  w->failed |= w->f == NULL || (n && fwrite (s, n, 1, w->f) != 1);
}

void
kiln_treelist_write (struct kiln_treelist_writer *w, const char *shown, const struct kiln_treesum_entry *e)
{
  if (w->failed)
    return;
  put_str (w, shown);
  put_u32 (w, (uint32_t) e->mode);
  put_u32 (w, (uint32_t) e->uid);
  put_u32 (w, (uint32_t) e->gid);
  if (e->link)
    put_str (w, e->link);
  else
    put_u32 (w, TL_END);
  uint8_t has = e->content != NULL;
  w->failed |= fwrite (&has, 1, 1, w->f) != 1;
  if (has)
    w->failed |= fwrite (kiln_digest_hex (e->content), KILN_DIGEST_HEX_LEN, 1, w->f) != 1;
}

int
kiln_treelist_writer_finish (struct kiln_treelist_writer *w, struct kiln_error **err)
{
  if (!w->failed)
    put_u32 (w, TL_END);
  bool failed = w->failed || (w->f && fflush (w->f) != 0);
  int e = errno;
  if (w->f && fclose (w->f) != 0)
    failed = true;
  free (w);
  return failed ? kiln_error_set (err, e, KILN_E_IO, "write a tree listing") : 0;
}

char *
kiln_treelist_name (const char *key_value)
{
  struct kiln_digest d;
  kiln_autofree char *id = kiln_xasprintf ("listing %s", key_value);
  kiln_digest_of (id, strlen (id), &d);
  return kiln_xstrdup (kiln_digest_hex (&d));
}

/* One entry read back. */
struct tl_rec {
  char *name, *link;
  uint32_t mode, uid, gid;
  bool has;
  char hex[KILN_DIGEST_HEX_LEN + 1];
};

static void
tl_rec_clear (struct tl_rec *r)
{
  free (r->name);
  free (r->link);
  memset (r, 0, sizeof *r);
}

static bool
get_u32 (FILE *f, uint32_t *v)
{
  return fread (v, sizeof *v, 1, f) == 1;
}

static bool
get_str (FILE *f, uint32_t n, char **out)
{
  if (n > TL_MAX_STR)
    return false;
  *out = kiln_xmalloc (n + 1);
  (*out)[n] = '\0';
  return n == 0 || fread (*out, n, 1, f) == 1;
}

/* 1: a record, 0: the end, -1: damaged. */
static int
tl_next (FILE *f, struct tl_rec *r)
{
  uint32_t n, ln;
  uint8_t has;
  tl_rec_clear (r);
  if (!get_u32 (f, &n))
    return -1;
  if (n == TL_END)
    return 0;
  if (!get_str (f, n, &r->name) || !get_u32 (f, &r->mode) || !get_u32 (f, &r->uid) || !get_u32 (f, &r->gid)
      || !get_u32 (f, &ln) || (ln != TL_END && !get_str (f, ln, &r->link)) || fread (&has, 1, 1, f) != 1)
    return -1;
  r->has = has;
  if (has && fread (r->hex, KILN_DIGEST_HEX_LEN, 1, f) != 1)
    return -1;
  return 1;
}

static FILE *
tl_open (int fd)
{
  char magic[8];
  int d = dup (fd);
  FILE *f = d >= 0 ? fdopen (d, "r") : NULL;
  if (!f)
    {
      if (d >= 0)
        close (d);
      return NULL;
    }
  if (lseek (d, 0, SEEK_SET) < 0 || fread (magic, 8, 1, f) != 1 || memcmp (magic, TL_MAGIC, 8) != 0)
    {
      fclose (f);
      return NULL;
    }
  return f;
}

/* How entries with the same name differ: NULL when they do not. */
static const char *
tl_change (const struct tl_rec *a, const struct tl_rec *b)
{
  if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid || (a->link == NULL) != (b->link == NULL)
      || (a->link && strcmp (a->link, b->link) != 0))
    return "metadata changed";
  if (a->has != b->has || (a->has && strcmp (a->hex, b->hex) != 0))
    return "content changed";
  return NULL;
}

char *
kiln_treelist_explain (int old_fd, int now_fd)
{
  FILE *fo = tl_open (old_fd), *fn = tl_open (now_fd);
  struct tl_rec o = { 0 }, n = { 0 };
  char *first = NULL;
  size_t more = 0;
  bool ok = fo && fn;
  int ro = ok ? tl_next (fo, &o) : -1, rn = ok ? tl_next (fn, &n) : -1;
  while (ok && ro >= 0 && rn >= 0 && (ro > 0 || rn > 0))
    {
      int c = ro == 0 ? 1 : rn == 0 ? -1 : kiln_treesum_path_cmp (o.name, n.name);
      const char *what = c < 0 ? "went away" : c > 0 ? "is new" : tl_change (&o, &n);
      if (what && first)
        more++;
      else if (what)
        first = kiln_xasprintf ("%s %s", c < 0 ? o.name : n.name, what);
      if (c <= 0)
        ro = tl_next (fo, &o);
      if (c >= 0)
        rn = tl_next (fn, &n);
    }
  if (ro < 0 || rn < 0)
    {
      free (first);
      first = NULL;
    }
  tl_rec_clear (&o);
  tl_rec_clear (&n);
  if (fo)
    fclose (fo);
  if (fn)
    fclose (fn);
  if (first && more)
    {
      char *s = kiln_xasprintf ("%s (+%zu more)", first, more);
      free (first);
      first = s;
    }
  return first;
}
