/* tests/test_cache_export.c - the registry/local cache document, its specs,
 * record import and export, the store's lazy-blob fetcher. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cache_export.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

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

TestSuite (cache_export, .init = init, .fini = fini);

static void
digest_of_text (const char *s, struct kiln_digest *d)
{
  kiln_digest_of (s, strlen (s), d);
}

/* A record whose layer is the blob `content` (put in the store when store_blob). */
static void
make_entry (struct kiln_cache_entry *e, const char *name, const char *parent, const char *content, bool store_blob,
            int64_t built)
{
  memset (e, 0, sizeof *e);
  digest_of_text (name, &e->rec.key);
  digest_of_text (parent, &e->rec.parent);
  e->rec.instruction = kiln_xasprintf ("COPY %s /", name);
  e->rec.created = kiln_xstrdup ("2024-01-02T03:04:05Z");
  kiln_strv_push (&e->rec.inputs, "src\tsha256:1");
  e->rec.has_layer = true;
  e->rec.layer.media_type = kiln_xstrdup (KILN_MT_OCI_LAYER_GZIP);
  digest_of_text (content, &e->rec.layer.digest);
  e->rec.layer.size = (int64_t) strlen (content);
  digest_of_text ("diff", &e->rec.diff_id);
  e->built = built;
  if (store_blob)
    cr_assert_eq (kiln_store_blob_put (st, content, strlen (content), NULL, &err), 0);
}

static struct kiln_cache_doc
doc_of (size_t n)
{
  struct kiln_cache_doc d = { .v = kiln_xcalloc (n, sizeof (struct kiln_cache_entry)), .n = n };
  return d;
}

Test (cache_export, config_json_round_trips_every_field)
{
  struct kiln_cache_doc d = doc_of (2), back = { 0 };
  make_entry (&d.v[0], "a", "root", "layer-a", false, 1700000000);
  make_entry (&d.v[1], "b", "a", "layer-b", false, 1700000100);
  char *json = NULL;
  size_t len = 0;
  cr_assert_eq (kiln_cache_doc_to_json (&d, &json, &len, &err), 0);
  cr_assert_eq (kiln_cache_doc_from_json (json, len, &back, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (back.n, 2);
  for (size_t i = 0; i < 2; i++)
    {
      const struct kiln_cache_record *a = &d.v[i].rec, *b = &back.v[i].rec;
      cr_assert_str_eq (a->key.s, b->key.s);
      cr_assert_str_eq (a->parent.s, b->parent.s);
      cr_assert_str_eq (a->instruction, b->instruction);
      cr_assert_str_eq (a->created, b->created);
      cr_assert_str_eq (a->layer.digest.s, b->layer.digest.s);
      cr_assert_str_eq (a->layer.media_type, b->layer.media_type);
      cr_assert_eq (a->layer.size, b->layer.size);
      cr_assert_str_eq (a->diff_id.s, b->diff_id.s);
      cr_assert_str_eq (a->inputs[0], b->inputs[0]);
      cr_assert (b->has_layer);
      cr_assert_eq (d.v[i].built, back.v[i].built);
    }
  /* serialised once, canonically: the same document gives the same bytes */
  char *again = NULL;
  size_t len2 = 0;
  cr_assert_eq (kiln_cache_doc_to_json (&back, &again, &len2, &err), 0);
  cr_assert_eq (len, len2);
  cr_assert_eq (memcmp (json, again, len), 0);
  free (json), free (again);
  kiln_cache_doc_clear (&d);
  kiln_cache_doc_clear (&back);
}

Test (cache_export, config_json_rejects_bad_documents)
{
  struct kiln_cache_doc d = { 0 };
  const char *bad[] = {
    "{\"version\":2,\"records\":[]}",
    "{\"version\":1}",
    "{\"version\":1,\"records\":[{\"key\":\"sha256:zz\",\"parent\":\"x\"}]}",
    /* a record without a layer is useless to a cache */
    "{\"version\":1,\"records\":[{\"key\":\"sha256:"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "\",\"parent\":\"sha256:"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "\"}]}",
    "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      cr_assert_lt (kiln_cache_doc_from_json (bad[i], strlen (bad[i]), &d, &err), 0, "accepted %s", bad[i]);
      cr_assert_eq (d.n, 0);
      kiln_error_free (&err);
    }
}

Test (cache_export, spec_parses_registry_and_local_forms)
{
  struct kiln_cache_spec s;
  cr_assert_eq (kiln_cache_spec_parse ("type=registry,ref=localhost:5000/app:cache,mode=max", true, &s, &err), 0);
  cr_assert_eq (s.kind, KILN_CACHE_REGISTRY);
  cr_assert_str_eq (s.ref, "localhost:5000/app:cache");
  cr_assert_eq (s.mode, KILN_CACHE_MODE_MAX);
  kiln_cache_spec_clear (&s);
  cr_assert_eq (kiln_cache_spec_parse ("example.com/team/app", false, &s, &err), 0);
  cr_assert_str_eq (s.ref, "example.com/team/app:latest");
  cr_assert_eq (s.mode, KILN_CACHE_MODE_MIN);
  kiln_cache_spec_clear (&s);
  cr_assert_eq (kiln_cache_spec_parse ("type=local,dest=/tmp/c", true, &s, &err), 0);
  cr_assert_eq (s.kind, KILN_CACHE_LOCAL);
  cr_assert_str_eq (s.dir, "/tmp/c");
  cr_assert_str_eq (s.tag, "cache");
  kiln_cache_spec_clear (&s);
  const char *bad_export[] = {
    "type=local,src=/x", "type=registry", "type=s3,ref=a", "type=registry,ref=a,mode=mid",
    "type=registry,ref=a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  };
  for (size_t i = 0; i < sizeof bad_export / sizeof bad_export[0]; i++)
    {
      cr_assert_lt (kiln_cache_spec_parse (bad_export[i], true, &s, &err), 0, "accepted %s", bad_export[i]);
      cr_assert_eq (err->kind, KILN_E_USAGE);
      kiln_error_free (&err);
    }
}

Test (cache_export, import_puts_records_dated_by_their_build)
{
  struct kiln_cache_doc d = doc_of (2);
  int64_t now = (int64_t) time (NULL);
  make_entry (&d.v[0], "fresh", "root", "layer-fresh", false, now - 3600);
  make_entry (&d.v[1], "old", "root", "layer-old", false, now - 30 * 86400);
  size_t n = 0;
  cr_assert_eq (kiln_cache_doc_import (st, &d, 14 * 86400, &n, &err), 0);
  cr_assert_eq (n, 1, "only the record within the TTL is imported");
  struct kiln_cache_record r = { 0 };
  cr_assert_eq (kiln_cache_get (st, &d.v[0].rec.key, &r, &err), 0);
  cr_assert_str_eq (r.layer.digest.s, d.v[0].rec.layer.digest.s);
  cr_assert_eq (kiln_cache_built (st, &d.v[0].rec.parent, &d.v[0].rec.key), now - 3600);
  kiln_cache_record_clear (&r);
  cr_assert_eq (kiln_cache_get (st, &d.v[1].rec.key, &r, &err), 1, "expired record imported");
  kiln_cache_doc_clear (&d);
}

Test (cache_export, import_keeps_a_local_record_whose_layer_is_here)
{
  struct kiln_cache_doc local = doc_of (1), remote = doc_of (1);
  make_entry (&local.v[0], "step", "root", "local-layer", true, 0);
  cr_assert_eq (kiln_cache_put (st, &local.v[0].rec, &err), 0);
  make_entry (&remote.v[0], "step", "root", "remote-layer", false, (int64_t) time (NULL));
  size_t n = 9;
  cr_assert_eq (kiln_cache_doc_import (st, &remote, 0, &n, &err), 0);
  cr_assert_eq (n, 0);
  struct kiln_cache_record r = { 0 };
  cr_assert_eq (kiln_cache_get (st, &local.v[0].rec.key, &r, &err), 0);
  cr_assert_str_eq (r.layer.digest.s, local.v[0].rec.layer.digest.s);
  kiln_cache_record_clear (&r);
  kiln_cache_doc_clear (&local);
  kiln_cache_doc_clear (&remote);
}

Test (cache_export, collect_and_store_make_a_plain_oci_manifest)
{
  struct kiln_cache_doc d = doc_of (3), got = { 0 };
  make_entry (&d.v[0], "one", "root", "shared-layer", true, 0);
  make_entry (&d.v[1], "two", "one", "shared-layer", true, 0); /* same layer: listed once */
  make_entry (&d.v[2], "three", "two", "other-layer", true, 0);
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq (kiln_cache_put (st, &d.v[i].rec, &err), 0);
  struct kiln_digest keys[5] = { d.v[0].rec.key, d.v[1].rec.key, d.v[0].rec.key, d.v[2].rec.key };
  digest_of_text ("metadata step without a record", &keys[4]);
  cr_assert_eq (kiln_cache_doc_collect (st, keys, 5, NULL, 0, &got, &err), 0);
  cr_assert_eq (got.n, 3, "duplicates and keys without records are skipped");
  struct kiln_descriptor md = { 0 };
  struct kiln_manifest m = { 0 };
  cr_assert_eq (kiln_cache_doc_store (st, &got, &md, &err), 0);
  cr_assert_str_eq (md.media_type, KILN_MT_OCI_MANIFEST);
  cr_assert_eq (kiln_store_get_manifest (st, &md.digest, &m, &err), 0);
  cr_assert_str_eq (m.config.media_type, KILN_MT_CACHE_CONFIG);
  cr_assert_eq (m.nlayers, 2);
  cr_assert_str_eq (m.layers[0].digest.s, d.v[0].rec.layer.digest.s);
  cr_assert_str_eq (m.layers[1].digest.s, d.v[2].rec.layer.digest.s);
  /* the config blob reads back as the same records */
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_cache_doc back = { 0 };
  cr_assert_eq (kiln_store_blob_read (st, &m.config.digest, 1 << 20, &b, &err), 0);
  cr_assert_eq (kiln_cache_doc_from_json (b.buf, b.len, &back, &err), 0);
  cr_assert_eq (back.n, 3);
  cr_assert_gt (back.v[0].built, 0, "collect dates each record");
  kiln_buf_release (&b);
  kiln_cache_doc_clear (&back);
  kiln_manifest_clear (&m);
  kiln_descriptor_clear (&md);
  kiln_cache_doc_clear (&got);
  kiln_cache_doc_clear (&d);
}

Test (cache_export, collect_skips_records_older_than_the_ttl)
{
  struct kiln_cache_doc d = doc_of (1), got = { 0 };
  make_entry (&d.v[0], "aged", "root", "aged-layer", true, 0);
  cr_assert_eq (kiln_cache_put (st, &d.v[0].rec, &err), 0);
  char *rel = kiln_xasprintf ("%s/store/cache/children/%s/%s", kiln_test_tmpdir (),
                              kiln_digest_hex (&d.v[0].rec.parent), kiln_digest_hex (&d.v[0].rec.key));
  struct timespec t[2] = { { .tv_sec = time (NULL) - 20 * 86400 }, { .tv_sec = time (NULL) - 20 * 86400 } };
  cr_assert_eq (utimensat (AT_FDCWD, rel, t, 0), 0);
  free (rel);
  cr_assert_eq (kiln_cache_doc_collect (st, &d.v[0].rec.key, 1, NULL, 14 * 86400, &got, &err), 0);
  cr_assert_eq (got.n, 0);
  kiln_cache_doc_clear (&got);
  cr_assert_eq (kiln_cache_doc_collect (st, &d.v[0].rec.key, 1, NULL, 0, &got, &err), 0);
  cr_assert_eq (got.n, 1, "no TTL keeps it");
  kiln_cache_doc_clear (&got);
  kiln_cache_doc_clear (&d);
}

/* ---- the store's fetcher ---- */

static int fetch_calls;

static int
fake_fetch (void *opaque, struct kiln_store *s, const struct kiln_digest *d, struct kiln_error **e)
{
  const char *content = opaque;
  struct kiln_blob_writer *w = NULL;
  fetch_calls++;
  if (kiln_store_blob_begin (s, &w, e) < 0 || kiln_blob_writer_write (w, content, strlen (content), e) < 0)
    return -1;
  return kiln_blob_writer_commit (w, d, NULL, NULL, e);
}

Test (cache_export, blob_open_fetches_a_missing_blob_once)
{
  struct kiln_digest d;
  digest_of_text ("lazy content", &d);
  cr_assert_lt (kiln_store_blob_open (st, &d, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  fetch_calls = 0;
  kiln_store_set_fetcher (st, fake_fetch, (void *) "lazy content");
  int fd = kiln_store_blob_open (st, &d, &err);
  cr_assert_geq (fd, 0, "%s", err ? err->msg : "");
  close (fd);
  fd = kiln_store_blob_open (st, &d, &err);
  cr_assert_geq (fd, 0);
  close (fd);
  cr_assert_eq (fetch_calls, 1, "a blob in the store is not fetched again");
  cr_assert (kiln_store_blob_exists (st, &d, NULL));
}

Test (cache_export, blob_open_fails_when_the_fetched_content_is_wrong)
{
  struct kiln_digest d;
  digest_of_text ("the real content", &d);
  kiln_store_set_fetcher (st, fake_fetch, (void *) "something else");
  cr_assert_lt (kiln_store_blob_open (st, &d, &err), 0);
  cr_assert_eq (err->kind, KILN_E_DIGEST, "%s", err->msg);
  cr_assert (!kiln_store_blob_exists (st, &d, NULL));
}

Test (cache_export, store_check_counts_remote_layers_as_no_problem)
{
  struct kiln_descriptor cfg = { 0 }, md = { 0 };
  struct kiln_image_config c = { 0 };
  struct kiln_manifest m = { .media_type = (char *) KILN_MT_OCI_MANIFEST };
  struct kiln_descriptor layers[2] = { { .media_type = (char *) KILN_MT_OCI_LAYER_GZIP, .size = 4 },
                                       { .media_type = (char *) KILN_MT_OCI_LAYER_GZIP, .size = 4 } };
  digest_of_text ("remote", &layers[0].digest);
  digest_of_text ("lost", &layers[1].digest);
  c.os = (char *) "linux", c.architecture = (char *) "amd64";
  cr_assert_eq (kiln_store_put_config (st, &c, &cfg, &err), 0);
  m.config = cfg, m.layers = layers, m.nlayers = 2;
  cr_assert_eq (kiln_store_put_manifest (st, &m, &md, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "localhost/lazy:1", &md, &err), 0);
  char *sources = kiln_xasprintf ("{\"%s\":[\"localhost:5000/app\"]}", layers[0].digest.s);
  char *dir = kiln_xasprintf ("%s/store/kiln", kiln_test_tmpdir ());
  mkdir (dir, 0755);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY);
  cr_assert_eq (kiln_fs_write_atomic (dfd, "sources.json", sources, strlen (sources), 0644, &err), 0);
  close (dfd);
  struct kiln_store_report r = { 0 };
  cr_assert_eq (kiln_store_check (st, &r, &err), 0);
  cr_assert_eq (r.remote, 1);
  cr_assert_eq (r.missing, 1, "a layer no registry is known for is still missing");
  cr_assert_eq (kiln_strv_len (r.problems), 1);
  kiln_store_report_clear (&r);
  kiln_descriptor_clear (&cfg);
  kiln_descriptor_clear (&md);
  free (sources), free (dir);
}
