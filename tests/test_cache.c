/* tests/test_cache.c - step keys, records, explanations, context checksums. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cache.h"
#include "kiln/ctxsum.h"
#include "kiln/store.h"
#include "kiln/util.h"

#define S(x) ((char *) (x))

static struct kiln_store *st;
static struct kiln_error *err;

static void
init (void)
{
  kiln_test_tmp_init ();
  st = kiln_test_store_open ();
}

static void
fini (void)
{
  kiln_store_free (st);
  kiln_error_free (&err);
  kiln_test_tmp_fini ();
}

TestSuite (cache, .init = init, .fini = fini);

static void
key_of (const struct kiln_digest *parent, const char *const *fields, struct kiln_digest *out)
{
  struct kiln_cache_key k;
  kiln_cache_key_init (&k, parent);
  for (size_t i = 0; fields[i]; i += 2)
    kiln_cache_key_add (&k, fields[i], fields[i + 1]);
  kiln_cache_key_final (&k, out);
}

Test (cache, key_depends_on_parent_field_names_and_values)
{
  struct kiln_digest a, b, c, d, p1, p2;
  kiln_digest_of ("x", 1, &p1);
  kiln_digest_of ("y", 1, &p2);
  key_of (&p1, (const char *[]){ "instr", "COPY a b", NULL }, &a);
  key_of (&p2, (const char *[]){ "instr", "COPY a b", NULL }, &b);
  key_of (&p1, (const char *[]){ "inst", "COPY a b", NULL }, &c);
  key_of (&p1, (const char *[]){ "instr", "COPY a c", NULL }, &d);
  cr_assert_str_neq (a.s, b.s);
  cr_assert_str_neq (a.s, c.s);
  cr_assert_str_neq (a.s, d.s);
  struct kiln_digest again;
  key_of (&p1, (const char *[]){ "instr", "COPY a b", NULL }, &again);
  cr_assert_str_eq (a.s, again.s);
}

Test (cache, key_fields_are_length_prefixed)
{
  struct kiln_digest a, b, c;
  key_of (NULL, (const char *[]){ "ab", "c", NULL }, &a);
  key_of (NULL, (const char *[]){ "a", "bc", NULL }, &b);
  cr_assert_str_neq (a.s, b.s);
  /* an empty value and an absent one differ */
  key_of (NULL, (const char *[]){ "v", "", NULL }, &a);
  key_of (NULL, (const char *[]){ "v", NULL, NULL }, &c);
  cr_assert_str_neq (a.s, c.s);
}

static void
make_record (struct kiln_cache_record *r, const char *instr, const char *keyseed, const char *parentseed)
{
  memset (r, 0, sizeof *r);
  kiln_digest_of (keyseed, strlen (keyseed), &r->key);
  kiln_digest_of (parentseed, strlen (parentseed), &r->parent);
  r->instruction = kiln_xstrdup (instr);
  r->created = kiln_xstrdup ("2024-01-01T00:00:00Z");
  r->has_layer = true;
  r->layer.media_type = kiln_xstrdup ("application/vnd.oci.image.layer.v1.tar+gzip");
  kiln_digest_of ("blob", 4, &r->layer.digest);
  r->layer.size = 42;
  kiln_digest_of ("tar", 3, &r->diff_id);
  kiln_strv_push (&r->inputs, "weights/model.bin content\tsha256:aaa");
  kiln_strv_push (&r->inputs, "app/main.py content\tsha256:bbb");
}

Test (cache, record_round_trips_and_missing_is_not_an_error)
{
  struct kiln_cache_record r, back = { 0 };
  make_record (&r, "COPY . /app", "k1", "p1");
  cr_assert_eq (kiln_cache_put (st, &r, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_cache_get (st, &r.key, &back, &err), 0);
  cr_assert_str_eq (back.instruction, "COPY . /app");
  cr_assert_str_eq (back.layer.digest.s, r.layer.digest.s);
  cr_assert_eq (back.layer.size, 42);
  cr_assert_str_eq (back.diff_id.s, r.diff_id.s);
  cr_assert_str_eq (back.inputs[1], "app/main.py content\tsha256:bbb");
  struct kiln_digest other;
  kiln_digest_of ("nope", 4, &other);
  struct kiln_cache_record none = { 0 };
  cr_assert_eq (kiln_cache_get (st, &other, &none, &err), 1);
  cr_assert_null (err);
  kiln_cache_record_clear (&r);
  kiln_cache_record_clear (&back);
}

Test (cache, sibling_with_same_parent_and_instruction_explains_a_miss)
{
  struct kiln_cache_record r, sib = { 0 };
  make_record (&r, "COPY weights/ /models/", "k1", "p1");
  cr_assert_eq (kiln_cache_put (st, &r, &err), 0);
  cr_assert_eq (kiln_cache_find_sibling (st, &r.parent, "COPY weights/ /models/", &sib, &err), 0);
  char *now[] = { S ("weights/model.bin content\tsha256:ccc"), S ("app/main.py content\tsha256:bbb"), NULL };
  char *why = kiln_cache_explain (sib.inputs, now);
  cr_assert_str_eq (why, "weights/model.bin content changed");
  free (why);
  char *fewer[] = { S ("weights/model.bin content\tsha256:aaa"), NULL };
  why = kiln_cache_explain (sib.inputs, fewer);
  cr_assert_str_eq (why, "app/main.py content went away");
  free (why);
  char *more[] = { S ("weights/model.bin content\tsha256:aaa"), S ("app/main.py content\tsha256:bbb"),
                   S ("x content\ty"), NULL };
  why = kiln_cache_explain (sib.inputs, more);
  cr_assert_str_eq (why, "x content is new");
  free (why);
  struct kiln_cache_record none = { 0 };
  cr_assert_eq (kiln_cache_find_sibling (st, &r.parent, "COPY other /x", &none, &err), 1);
  kiln_cache_record_clear (&r);
  kiln_cache_record_clear (&sib);
}

Test (cache, ctxsum_hits_only_on_identical_stat_and_survives_reload)
{
  char *path = kiln_xasprintf ("%s/f", kiln_test_tmpdir ());
  FILE *f = fopen (path, "w");
  fputs ("hello", f);
  fclose (f);
  /* an old timestamp, so the entry is not "racily clean" */
  struct timespec ts[2] = { { 1000000000, 5 }, { 1000000000, 5 } };
  utimensat (AT_FDCWD, path, ts, 0);
  struct stat sb;
  stat (path, &sb);
  struct kiln_ctxsum *cs = NULL;
  struct kiln_digest d, got;
  kiln_digest_of ("hello", 5, &d);
  cr_assert_eq (kiln_ctxsum_open (st, "/ctx", &cs, &err), 0);
  cr_assert_not (kiln_ctxsum_lookup (cs, "f", &sb, &got));
  kiln_ctxsum_update (cs, "f", &sb, &d);
  cr_assert_eq (kiln_ctxsum_save (cs, &err), 0);
  kiln_ctxsum_free (cs);
  cr_assert_eq (kiln_ctxsum_open (st, "/ctx", &cs, &err), 0);
  /* ctime is "now" after utimensat: racy, so it was not saved */
  cr_assert_not (kiln_ctxsum_lookup (cs, "f", &sb, &got));
  kiln_ctxsum_free (cs);
  sb.st_ctim.tv_sec -= 100;
  cr_assert_eq (kiln_ctxsum_open (st, "/ctx", &cs, &err), 0);
  kiln_ctxsum_update (cs, "f", &sb, &d);
  cr_assert_eq (kiln_ctxsum_save (cs, &err), 0);
  kiln_ctxsum_free (cs);
  cr_assert_eq (kiln_ctxsum_open (st, "/ctx", &cs, &err), 0);
  cr_assert (kiln_ctxsum_lookup (cs, "f", &sb, &got));
  cr_assert_str_eq (got.s, d.s);
  struct stat changed = sb;
  changed.st_mtim.tv_nsec += 1;
  cr_assert_not (kiln_ctxsum_lookup (cs, "f", &changed, &got), "a nanosecond mtime change must miss");
  changed = sb;
  changed.st_ino += 1;
  cr_assert_not (kiln_ctxsum_lookup (cs, "f", &changed, &got));
  changed = sb;
  changed.st_size += 1;
  cr_assert_not (kiln_ctxsum_lookup (cs, "f", &changed, &got));
  /* another context has its own cache */
  struct kiln_ctxsum *other = NULL;
  cr_assert_eq (kiln_ctxsum_open (st, "/other", &other, &err), 0);
  cr_assert_not (kiln_ctxsum_lookup (other, "f", &sb, &got));
  kiln_ctxsum_free (other);
  kiln_ctxsum_free (cs);
  free (path);
}

Test (cache, url_record_round_trips_keeps_no_url_text_and_damage_reads_as_none)
{
  const char *url = "https://user:s3cret@example.com/m.bin";
  struct kiln_url_record r = { .etag = S ("\"abc-1\""), .size = 42, .mtime = 1600000000 }, got;
  kiln_digest_of ("x", 1, &r.digest);
  cr_assert_not (kiln_url_record_get (st, url, &got), "no record before the first download");
  cr_assert_eq (kiln_url_record_put (st, url, &r, &err), 0, "%s", err ? err->msg : "");
  cr_assert (kiln_url_record_get (st, url, &got));
  cr_assert_str_eq (got.etag, "\"abc-1\"");
  cr_assert_str_eq (got.digest.s, r.digest.s);
  cr_assert_eq (got.size, 42);
  cr_assert_eq (got.mtime, 1600000000);
  kiln_url_record_clear (&got);
  cr_assert_not (kiln_url_record_get (st, "https://example.com/m.bin", &got), "another URL, another record");

  /* the file holds neither the URL nor its password */
  char *dir = kiln_xasprintf ("%s/store/cache/urls", kiln_test_tmpdir ());
  char cmd[4096];
  snprintf (cmd, sizeof cmd, "grep -r -q -e s3cret -e example.com %s", dir);
  cr_assert_neq (system (cmd), 0, "URL text found under %s", dir);
  /* a damaged record is no record */
  snprintf (cmd, sizeof cmd, "for f in %s/*.json; do printf '{\"etag\":1}' > $f; done", dir);
  cr_assert_eq (system (cmd), 0);
  cr_assert_not (kiln_url_record_get (st, url, &got));
  free (dir);
}
