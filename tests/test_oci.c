/* test_oci.c - OCI config, manifest and index <-> JSON, kvlists, chain ids. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "kiln/cleanup.h"
#include "kiln/oci.h"
#include "kiln/util.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static char **
strv (const char *a, const char *b, const char *c)
{
  char **v = kiln_xcalloc (1, sizeof (char *));
  const char *in[] = { a, b, c };
  for (int i = 0; i < 3 && in[i]; i++)
    kiln_strv_push (&v, in[i]);
  return v;
}

static void
full_config (struct kiln_image_config *c)
{
  memset (c, 0, sizeof *c);
  c->created = kiln_xstrdup ("2024-01-02T03:04:05Z");
  c->author = kiln_xstrdup ("someone");
  c->architecture = kiln_xstrdup ("arm64");
  c->os = kiln_xstrdup ("linux");
  c->variant = kiln_xstrdup ("v8");
  c->user = kiln_xstrdup ("1000:1000");
  c->env = strv ("PATH=/usr/bin:/bin", "A=b c", NULL);
  c->entrypoint = strv ("/bin/app", "--flag", NULL);
  c->cmd = strv ("serve", NULL, NULL);
  c->working_dir = kiln_xstrdup ("/srv");
  c->exposed_ports = strv ("80/tcp", "53/udp", NULL);
  c->volumes = strv ("/data", NULL, NULL);
  kiln_kvlist_set (&c->labels, "org.example.b", "2");
  kiln_kvlist_set (&c->labels, "org.example.a", "1");
  c->stop_signal = kiln_xstrdup ("SIGTERM");
  c->shell = strv ("/bin/bash", "-c", NULL);
  c->onbuild = strv ("RUN true", NULL, NULL);
  c->healthcheck = kiln_xcalloc (1, sizeof *c->healthcheck);
  c->healthcheck->test = strv ("CMD-SHELL", "curl -f localhost", NULL);
  c->healthcheck->interval = 30000000000;
  c->healthcheck->timeout = 5000000000;
  c->healthcheck->start_period = 1000000000;
  c->healthcheck->start_interval = 2000000000;
  c->healthcheck->retries = 3;
  c->args_escaped = true;
  c->diff_ids = strv ("sha256:" HEX_A, "sha256:" HEX_B, NULL);
  kiln_image_config_add_history (c, "2024-01-02T03:04:05Z", "COPY . /srv", false);
  kiln_image_config_add_history (c, NULL, "ENV A=b c", true);
  c->history[1].comment = kiln_xstrdup ("buildkit.dockerfile.v0");
}

static char *
config_json (const struct kiln_image_config *c)
{
  struct kiln_error *err = NULL;
  char *s = NULL;
  size_t len = 0;
  cr_assert_eq (kiln_image_config_to_json (c, &s, &len, &err), 0);
  cr_assert_eq (strlen (s), len);
  return s;
}

static void
assert_config_error (const char *json, const char *want)
{
  struct kiln_error *err = NULL;
  struct kiln_image_config c;
  cr_assert_lt (kiln_image_config_from_json (json, strlen (json), &c, &err), 0, "accepted %s", json);
  cr_assert_eq (err->kind, KILN_E_PARSE);
  cr_assert (strstr (err->msg, want), "error `%s` lacks `%s`", err->msg, want);
  kiln_error_free (&err);
}

Test (oci, config_round_trip_keeps_every_field)
{
  struct kiln_image_config c, back = { 0 }, copy = { 0 };
  struct kiln_error *err = NULL;
  full_config (&c);
  kiln_autofree char *a = config_json (&c);
  json_error_t jerr;
  kiln_autojson json_t *j = json_loads (a, 0, &jerr);
  cr_assert_not_null (j);
  const char *paths[] = { "created", "author", "architecture", "os", "variant", "config", "rootfs", "history" };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    cr_assert_not_null (json_object_get (j, paths[i]), "missing %s", paths[i]);
  json_t *cj = json_object_get (j, "config");
  const char *cfields[] = { "User",   "Env",        "Entrypoint", "Cmd",     "WorkingDir",  "ExposedPorts", "Volumes",
                            "Labels", "StopSignal", "Shell",      "OnBuild", "Healthcheck", "ArgsEscaped" };
  for (size_t i = 0; i < sizeof cfields / sizeof cfields[0]; i++)
    cr_assert_not_null (json_object_get (cj, cfields[i]), "missing config.%s", cfields[i]);
  cr_assert (json_is_object (json_object_get (json_object_get (cj, "ExposedPorts"), "80/tcp")));
  cr_assert_eq (json_integer_value (json_object_get (json_object_get (cj, "Healthcheck"), "StartInterval")),
                2000000000);
  cr_assert (strstr (a, "\"rootfs\":{\"diff_ids\":[\"sha256:" HEX_A "\",\"sha256:" HEX_B "\"],\"type\":\"layers\"}"));
  cr_assert (strstr (a, "\"comment\":\"buildkit.dockerfile.v0\",\"created_by\":\"ENV A=b c\",\"empty_layer\":true"));

  cr_assert_eq (kiln_image_config_from_json (a, strlen (a), &back, &err), 0, "%s", err ? err->msg : "");
  kiln_autofree char *b = config_json (&back);
  cr_assert_str_eq (a, b);
  kiln_image_config_copy (&copy, &back);
  kiln_autofree char *d = config_json (&copy);
  cr_assert_str_eq (a, d);
  cr_assert_str_eq (kiln_image_config_getenv (&back, "A"), "b c");
  kiln_image_config_clear (&c);
  kiln_image_config_clear (&back);
  kiln_image_config_clear (&copy);
}

Test (oci, config_keeps_empty_entrypoint_and_omits_unset)
{
  struct kiln_image_config c = { 0 }, back = { 0 };
  struct kiln_error *err = NULL;
  c.entrypoint = kiln_xcalloc (1, sizeof (char *));
  c.os = kiln_xstrdup ("linux");
  kiln_autofree char *a = config_json (&c);
  cr_assert_str_eq (a, "{\"config\":{\"Entrypoint\":[]},\"os\":\"linux\",\"rootfs\":{\"diff_ids\":[],"
                       "\"type\":\"layers\"}}");
  cr_assert_eq (kiln_image_config_from_json (a, strlen (a), &back, &err), 0);
  cr_assert_not_null (back.entrypoint);
  cr_assert_eq (kiln_strv_len (back.entrypoint), 0);
  cr_assert_null (back.cmd);
  /* Docker writes null for unset fields */
  static const char nulls[] = "{\"config\":{\"Cmd\":null,\"Volumes\":null,\"Entrypoint\":null},\"rootfs\":"
                              "{\"type\":\"layers\",\"diff_ids\":[]}}";
  kiln_image_config_clear (&back);
  cr_assert_eq (kiln_image_config_from_json (nulls, strlen (nulls), &back, &err), 0);
  cr_assert_null (back.cmd);
  cr_assert_null (back.entrypoint);
  cr_assert_null (back.volumes);
  kiln_image_config_clear (&c);
  kiln_image_config_clear (&back);
}

/* Go's encoding/json (encode.go appendString: utf8.DecodeRuneInString,
 * RuneError of width 1 -> \ufffd), which writes BuildKit's config, replaces
 * each byte that starts no valid UTF-8 sequence with U+FFFD; jansson refused
 * the string and the field vanished from the image. */
Test (oci, config_replaces_invalid_utf8_like_go_instead_of_dropping_it)
{
  struct kiln_image_config c = { 0 };
  c.cmd = strv ("/bin/sh", "-c", "echo \xff\xc3\xa9\xc0\x80\xed\xa0\x80\xe2\x82");
  c.env = strv ("E=\xfe", NULL, NULL);
  c.volumes = strv ("/v\xff", NULL, NULL);
  kiln_kvlist_set (&c.labels, "k\xff", "v\xff");
  c.working_dir = kiln_xstrdup ("/w\xff");
  kiln_autofree char *a = config_json (&c);
  cr_assert_str_eq (a, "{\"config\":{\"Cmd\":[\"/bin/sh\",\"-c\",\"echo \xef\xbf\xbd\xc3\xa9"
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"],"
                       "\"Env\":[\"E=\xef\xbf\xbd\"],\"Labels\":{\"k\xef\xbf\xbd\":\"v\xef\xbf\xbd\"},"
                       "\"Volumes\":{\"/v\xef\xbf\xbd\":{}},\"WorkingDir\":\"/w\xef\xbf\xbd\"},"
                       "\"rootfs\":{\"diff_ids\":[],\"type\":\"layers\"}}");
  kiln_image_config_clear (&c);
}

Test (oci, config_setenv_replaces_in_place)
{
  struct kiln_image_config c = { 0 };
  kiln_image_config_setenv (&c, "A", "1");
  kiln_image_config_setenv (&c, "AB", "2");
  kiln_image_config_setenv (&c, "A", "3");
  cr_assert_eq (kiln_strv_len (c.env), 2);
  cr_assert_str_eq (c.env[0], "A=3");
  cr_assert_str_eq (kiln_image_config_getenv (&c, "AB"), "2");
  cr_assert_null (kiln_image_config_getenv (&c, "B"));
  kiln_image_config_clear (&c);
}

Test (oci, invalid_config_names_the_field)
{
  assert_config_error ("{\"config\":{\"Env\":\"A=b\"}}", "image config: `config.Env` must be an array of strings");
  assert_config_error ("{\"config\":{\"Env\":[1]}}", "`config.Env` must be an array of strings");
  assert_config_error ("{\"created\":5}", "`created` must be a string");
  assert_config_error ("{\"config\":{\"Healthcheck\":{\"Interval\":\"30s\"}}}",
                       "`config.Healthcheck.Interval` must be an integer");
  assert_config_error ("{\"config\":{\"Labels\":{\"a\":1}}}", "`config.Labels` must be an object of strings");
  assert_config_error ("{\"config\":{\"ExposedPorts\":[\"80\"]}}", "`config.ExposedPorts`");
  assert_config_error ("{\"history\":[{\"empty_layer\":\"yes\"}]}", "`history[0].empty_layer` must be a boolean");
  assert_config_error ("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"md5:x\"]}}", "`rootfs.diff_ids[0]`");
  assert_config_error ("{\"rootfs\":{\"type\":\"zfs\"}}", "`rootfs.type`");
  assert_config_error ("[1,2]", "not a JSON object");
  assert_config_error ("{\"os\":", "parse image config: line 1");
  assert_config_error ("{\"os\":\"a\",\"os\":\"b\"}", "image config");
}

static const char manifest_json[]
    = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" HEX_A
      "\",\"size\":123},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
      "\"digest\":\"sha256:" HEX_B "\",\"size\":456,\"annotations\":{\"k\":\"v\"}}],"
      "\"annotations\":{\"org.opencontainers.image.created\":\"now\"}}";

Test (oci, manifest_round_trip)
{
  struct kiln_manifest m, back;
  struct kiln_error *err = NULL;
  char *a = NULL, *b = NULL;
  cr_assert_eq (kiln_manifest_from_json (manifest_json, strlen (manifest_json), &m, &err), 0, "%s",
                err ? err->msg : "");
  cr_assert_str_eq (m.media_type, KILN_MT_OCI_MANIFEST);
  cr_assert_str_eq (m.config.digest.s, "sha256:" HEX_A);
  cr_assert_eq (m.config.size, 123);
  cr_assert_eq (m.nlayers, 1);
  cr_assert_eq (m.layers[0].size, 456);
  cr_assert_str_eq (kiln_kvlist_get (&m.layers[0].annotations, "k"), "v");
  cr_assert_eq (kiln_manifest_to_json (&m, &a, NULL, &err), 0);
  cr_assert_eq (kiln_manifest_from_json (a, strlen (a), &back, &err), 0);
  cr_assert_eq (kiln_manifest_to_json (&back, &b, NULL, &err), 0);
  cr_assert_str_eq (a, b);
  cr_assert_eq (strncmp (a, "{\"annotations\":", 15), 0, "keys not sorted: %s", a);
  free (a);
  free (b);
  kiln_manifest_clear (&m);
  kiln_manifest_clear (&back);
}

Test (oci, manifest_accepts_docker_and_missing_media_type)
{
  struct kiln_manifest m;
  struct kiln_error *err = NULL;
  const char *docker = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
                       "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":1},\"layers\":[]}";
  cr_assert_eq (kiln_manifest_from_json (docker, strlen (docker), &m, &err), 0);
  cr_assert_str_eq (m.media_type, KILN_MT_DOCKER_MANIFEST);
  kiln_manifest_clear (&m);
  const char *bare = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
                     "\",\"size\":1},\"layers\":[]}";
  cr_assert_eq (kiln_manifest_from_json (bare, strlen (bare), &m, &err), 0);
  cr_assert_null (m.media_type);
  kiln_manifest_clear (&m);
}

static void
assert_manifest_error (const char *json, const char *want)
{
  struct kiln_error *err = NULL;
  struct kiln_manifest m;
  cr_assert_lt (kiln_manifest_from_json (json, strlen (json), &m, &err), 0, "accepted %s", json);
  cr_assert (strstr (err->msg, want), "error `%s` lacks `%s`", err->msg, want);
  kiln_error_free (&err);
}

Test (oci, invalid_manifest_names_the_field)
{
  assert_manifest_error ("{\"schemaVersion\":1,\"config\":{},\"layers\":[]}", "`schemaVersion` must be 2");
  assert_manifest_error ("{\"config\":{},\"layers\":[]}", "`schemaVersion` is required");
  assert_manifest_error ("{\"schemaVersion\":2,\"mediaType\":\"" KILN_MT_OCI_INDEX "\",\"manifests\":[]}",
                         "is an image index");
  assert_manifest_error ("{\"schemaVersion\":2,\"manifests\":[]}", "is an image index");
  assert_manifest_error ("{\"schemaVersion\":2,\"layers\":[]}", "`config` is required");
  assert_manifest_error ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:abc\",\"size\":1},"
                         "\"layers\":[]}",
                         "image manifest: `config.digest`: invalid digest");
  assert_manifest_error ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
                         "\",\"size\":1},\"layers\":[{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_B
                         "\",\"size\":-1}]}",
                         "`layers[0].size` must not be negative");
  assert_manifest_error ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
                         "\",\"size\":1},\"layers\":[\"x\"]}",
                         "`layers[0]` must be an object");
  assert_manifest_error ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
                         "\",\"size\":1.5},\"layers\":[]}",
                         "`config.size` must be an integer");
}

Test (oci, index_round_trip_with_platform)
{
  struct kiln_index ix, back;
  struct kiln_error *err = NULL;
  char *a = NULL, *b = NULL;
  const char *json = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" KILN_MT_OCI_MANIFEST
                     "\",\"digest\":\"sha256:" HEX_C "\",\"size\":9,\"platform\":{\"os\":\"linux\","
                     "\"architecture\":\"arm\",\"variant\":\"v7\"},\"annotations\":{\"" KILN_ANNOT_REF_NAME
                     "\":\"latest\"}}]}";
  cr_assert_eq (kiln_index_from_json (json, strlen (json), &ix, &err), 0, "%s", err ? err->msg : "");
  cr_assert_null (ix.media_type);
  cr_assert_eq (ix.nmanifests, 1);
  cr_assert_str_eq (ix.manifests[0].platform.variant, "v7");
  cr_assert_str_eq (kiln_kvlist_get (&ix.manifests[0].annotations, KILN_ANNOT_REF_NAME), "latest");
  cr_assert_eq (kiln_index_to_json (&ix, &a, NULL, &err), 0);
  cr_assert_eq (kiln_index_from_json (a, strlen (a), &back, &err), 0);
  cr_assert_eq (kiln_index_to_json (&back, &b, NULL, &err), 0);
  cr_assert_str_eq (a, b);
  free (a);
  free (b);
  kiln_index_clear (&ix);
  kiln_index_clear (&back);
  const char *bad = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_C
                    "\",\"size\":9,\"platform\":{\"os\":7}}]}";
  cr_assert_lt (kiln_index_from_json (bad, strlen (bad), &ix, &err), 0);
  cr_assert (strstr (err->msg, "image index: `manifests[0].platform.os` must be a string"), "%s", err->msg);
  kiln_error_free (&err);
}

Test (oci, kvlist_keeps_insertion_order)
{
  struct kiln_kvlist l = { 0 }, c = { 0 };
  kiln_kvlist_set (&l, "z", "1");
  kiln_kvlist_set (&l, "a", "2");
  kiln_kvlist_set (&l, "m", "3");
  kiln_kvlist_set (&l, "z", "4");
  cr_assert_eq (l.n, 3);
  cr_assert_str_eq (l.items[0].key, "z");
  cr_assert_str_eq (l.items[0].value, "4");
  kiln_kvlist_remove (&l, "a");
  cr_assert_eq (l.n, 2);
  cr_assert_str_eq (l.items[1].key, "m");
  cr_assert_null (kiln_kvlist_get (&l, "a"));
  kiln_kvlist_copy (&c, &l);
  cr_assert_str_eq (c.items[0].key, "z");
  cr_assert_str_eq (kiln_kvlist_get (&c, "m"), "3");
  kiln_kvlist_clear (&l);
  kiln_kvlist_clear (&c);
  cr_assert_eq (l.n, 0);
}

Test (oci, chain_id_matches_known_vector)
{
  char a[] = "sha256:" HEX_A, b[] = "sha256:" HEX_B, c[] = "sha256:" HEX_C;
  char *ids[] = { a, b, c };
  struct kiln_digest d;
  kiln_oci_chain_id (ids, 1, &d);
  cr_assert_str_eq (d.s, "sha256:" HEX_A);
  kiln_oci_chain_id (ids, 2, &d);
  cr_assert_str_eq (d.s, "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
  kiln_oci_chain_id (ids, 3, &d);
  cr_assert_str_eq (d.s, "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588");
}
