/* tests/test_limits.c - the resource limits on inputs kiln reads whole
 * (suite `limits`; docs/security.md lists them).  Each limit is tested at its
 * value (accepted) and one past it (the error that names it). */
#include <criterion/criterion.h>
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/dockerfile.h"
#include "kiln/extract.h"
#include "kiln/oci.h"
#include "kiln/plan.h"
#include "kiln/registry.h"
#include "kiln/expand.h"
#include "kiln/util.h"
#include "../src/registry/registry-internal.h"

/* ---- Dockerfile ---- */

static int
parse_buf (const struct kiln_buf *b, struct kiln_error **err)
{
  struct kiln_dockerfile *df = NULL;
  int r = kiln_dockerfile_parse ("Dockerfile", b->buf, b->len, &df, err);
  kiln_dockerfile_free (df);
  return r;
}

static void
expect_ok (const struct kiln_buf *b)
{
  struct kiln_error *err = NULL;
  cr_assert_geq (parse_buf (b, &err), 0, "%s", err ? err->msg : "");
}

static void
expect_msg (const struct kiln_buf *b, const char *msg)
{
  struct kiln_error *err = NULL;
  cr_assert_lt (parse_buf (b, &err), 0);
  cr_assert_eq (err->kind, KILN_E_PARSE);
  cr_expect_str_eq (err->msg, msg);
  kiln_error_free (&err);
}

/* "FROM a\n" padded with a comment line to exactly len bytes. */
static void
dockerfile_of_size (struct kiln_buf *b, size_t len)
{
  kiln_buf_adds (b, "FROM a\n#");
  while (b->len < len - 1)
    kiln_buf_addch (b, 'x');
  kiln_buf_addch (b, '\n');
}

Test (limits, dockerfile_size)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  dockerfile_of_size (&b, KILN_DOCKERFILE_MAX_SIZE);
  cr_assert_eq (b.len, KILN_DOCKERFILE_MAX_SIZE);
  expect_ok (&b);
  kiln_buf_reset (&b);
  dockerfile_of_size (&b, KILN_DOCKERFILE_MAX_SIZE + 1);
  expect_msg (&b, "Dockerfile: file is larger than the limit of 16777216 bytes");
}

Test (limits, dockerfile_instructions)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_buf_adds (&b, "FROM a\n");
  for (int i = 1; i < KILN_DOCKERFILE_MAX_INSTRUCTIONS; i++)
    kiln_buf_adds (&b, "EXPOSE 80\n");
  expect_ok (&b);
  kiln_buf_adds (&b, "EXPOSE 80\n");
  expect_msg (&b, "Dockerfile:10001: EXPOSE: more than 10000 instructions in the file (the limit)");
}

/* A heredoc whose body (lines with their '\n') is exactly len bytes. */
static void
heredoc_of_size (struct kiln_buf *b, size_t len)
{
  kiln_buf_adds (b, "FROM a\nCOPY <<EOF /f\n");
  for (size_t left = len; left > 0;)
    {
      size_t line = left > 1000 ? 1000 : left;
      for (size_t i = 0; i + 1 < line; i++)
        kiln_buf_addch (b, 'y');
      kiln_buf_addch (b, '\n');
      left -= line;
    }
  kiln_buf_adds (b, "EOF\n");
}

Test (limits, heredoc_size)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_dockerfile *df = NULL;
  struct kiln_error *err = NULL;
  heredoc_of_size (&b, KILN_DOCKERFILE_MAX_HEREDOC);
  cr_assert_eq (kiln_dockerfile_parse ("Dockerfile", b.buf, b.len, &df, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq (strlen (df->instrs[1].heredocs[0].content), KILN_DOCKERFILE_MAX_HEREDOC);
  kiln_dockerfile_free (df);
  kiln_buf_reset (&b);
  heredoc_of_size (&b, KILN_DOCKERFILE_MAX_HEREDOC + 1);
  expect_msg (&b, "Dockerfile:2: COPY: heredoc `EOF` is larger than the limit of 4194304 bytes");
}

/* ARG names add up over instructions and stages; n names in lines of 100. */
static void
args_file (struct kiln_buf *b, const char *kw, int n, bool pairs)
{
  kiln_buf_adds (b, "FROM a\n");
  for (int i = 0; i < n; i++)
    {
      if (i % 100 == 0)
        kiln_buf_addf (b, "%s%s", i ? "\n" : "", kw);
      kiln_buf_addf (b, pairs ? " v%d=1" : " v%d", i);
    }
  kiln_buf_addch (b, '\n');
}

Test (limits, arg_names)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  args_file (&b, "ARG", KILN_DOCKERFILE_MAX_ARGS, false);
  expect_ok (&b);
  kiln_buf_reset (&b);
  args_file (&b, "ARG", KILN_DOCKERFILE_MAX_ARGS + 1, false);
  expect_msg (&b, "Dockerfile:42: ARG: more than 4096 ARG names declared in the file (the limit)");
}

Test (limits, env_label_pairs)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  args_file (&b, "ENV", KILN_DOCKERFILE_MAX_PAIRS, true);
  expect_ok (&b);
  kiln_buf_reset (&b);
  args_file (&b, "LABEL", KILN_DOCKERFILE_MAX_PAIRS + 1, true);
  expect_msg (&b, "Dockerfile:165: LABEL: more than 16384 ENV and LABEL pairs in the file (the limit)");
}

/* Splitting a line into words was quadratic in the number of words (400 KB
 * took 7 s); 2 MiB of words must now parse in well under a second. */
Test (limits, many_words_on_one_line_parse_in_linear_time, .timeout = 10)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  kiln_buf_adds (&b, "FROM a\nRUN <<EOF");
  for (int i = 0; i < (1 << 20); i++)
    kiln_buf_adds (&b, " x");
  kiln_buf_adds (&b, "\necho\nEOF\n");
  expect_ok (&b);
}

/* A COPY line's words are split again at build time (kiln_split_words_raw):
 * 1M words must not take quadratic time (a 100,000-word COPY took 16 s when
 * each word was appended by measuring the vector first). */
Test (limits, many_words_split_at_build_time_in_linear_time, .timeout = 10)
{
  kiln_autobuf struct kiln_buf b = KILN_BUF_INIT;
  for (int i = 0; i < (1 << 20); i++)
    kiln_buf_adds (&b, " x");
  kiln_autostrv char **words = NULL;
  cr_assert_eq (kiln_split_words_raw (b.buf, '\\', &words), 0);
  cr_assert_eq (kiln_strv_len (words), (size_t) 1 << 20);
}

Test (limits, strv_append_keeps_every_string_and_the_end_marker)
{
  char **v = NULL;
  size_t n = 0;
  for (size_t i = 0; i < 5000; i++)
    {
      kiln_strv_append (&v, &n, kiln_xasprintf ("%zu", i));
      cr_assert_eq (n, i + 1);
      cr_assert_null (v[n], "NULL after %zu strings", n);
    }
  for (size_t i = 0; i < 5000; i++)
    {
      kiln_autofree char *want = kiln_xasprintf ("%zu", i);
      cr_assert_str_eq (v[i], want);
    }
  kiln_strv_free (v);
}

/* The strict unsigned parser behind --mount uid/gid/mode and passwd ids:
 * digits of the base only, not empty, at most max, no overflow on the way. */
Test (limits, parse_uint_takes_digits_up_to_max_and_nothing_else)
{
  uint64_t v = 0;
  cr_assert (kiln_parse_uint ("4294967295", 10, 10, UINT32_MAX, &v) && v == UINT32_MAX);
  cr_assert_not (kiln_parse_uint ("4294967296", 10, 10, UINT32_MAX, &v));
  cr_assert (kiln_parse_uint ("0755", 4, 8, UINT32_MAX, &v) && v == 0755);
  cr_assert_not (kiln_parse_uint ("0489", 4, 8, UINT32_MAX, &v));
  cr_assert (kiln_parse_uint ("18446744073709551615", 20, 10, UINT64_MAX, &v) && v == UINT64_MAX);
  cr_assert_not (kiln_parse_uint ("18446744073709551616", 20, 10, UINT64_MAX, &v));
  cr_assert_not (kiln_parse_uint ("99999999999999999999999", 23, 10, UINT64_MAX, &v));
  const char *bad[] = { "", "-1", "+1", " 1", "1 ", "0x1f", "1e3", "12a" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_not (kiln_parse_uint (bad[i], strlen (bad[i]), 10, UINT64_MAX, &v), "`%s`", bad[i]);
  cr_assert (kiln_parse_uint ("12junk", 2, 10, 100, &v) && v == 12, "only the first n bytes count");
  cr_assert_not (kiln_parse_uint ("7", 1, 10, 5, &v), "a digit above a small max");
  cr_assert (kiln_parse_uint ("5", 1, 10, 5, &v) && v == 5);
}

/* ---- build args ---- */

static int
plan_with_args (size_t n, struct kiln_error **err)
{
  struct kiln_dockerfile *df = NULL;
  struct kiln_plan *p = NULL;
  struct kiln_kvlist args = { 0 };
  cr_assert_eq (kiln_dockerfile_parse ("Dockerfile", "FROM scratch\n", 13, &df, err), 0);
  /* built directly: kiln_kvlist_set would be quadratic here */
  args.items = kiln_xcalloc (n, sizeof *args.items);
  for (size_t i = 0; i < n; i++)
    args.items[args.n++] = (struct kiln_kv){ kiln_xasprintf ("A%zu", i), kiln_xstrdup ("1") };
  struct kiln_plan_opts po = { .build_args = &args };
  int r = kiln_plan_new (df, &po, &p, err);
  kiln_plan_free (p);
  kiln_kvlist_clear (&args);
  kiln_dockerfile_free (df);
  return r;
}

Test (limits, build_args)
{
  struct kiln_error *err = NULL;
  cr_assert_eq (plan_with_args (KILN_PLAN_MAX_BUILD_ARGS, &err), 0, "%s", err ? err->msg : "");
  cr_assert_lt (plan_with_args (KILN_PLAN_MAX_BUILD_ARGS + 1, &err), 0);
  cr_expect_eq (err->kind, KILN_E_USAGE);
  cr_expect_str_eq (err->msg, "4097 build arguments (--build-arg) given, more than the limit of 4096");
  kiln_error_free (&err);
}

/* ---- image documents ---- */

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *
manifest_with_layers (size_t n)
{
  struct kiln_buf b = KILN_BUF_INIT;
  kiln_buf_adds (&b, "{\"schemaVersion\":2,\"mediaType\":\"" KILN_MT_OCI_MANIFEST
                     "\",\"config\":{\"mediaType\":\"" KILN_MT_OCI_CONFIG "\",\"digest\":\"" DIGEST
                     "\",\"size\":2},\"layers\":[");
  for (size_t i = 0; i < n; i++)
    kiln_buf_addf (&b, "%s{\"mediaType\":\"" KILN_MT_OCI_LAYER_GZIP "\",\"digest\":\"" DIGEST "\",\"size\":1}",
                   i ? "," : "");
  kiln_buf_adds (&b, "]}");
  return kiln_buf_detach (&b, NULL);
}

Test (limits, manifest_layers)
{
  struct kiln_manifest m = { 0 };
  struct kiln_error *err = NULL;
  kiln_autofree char *ok = manifest_with_layers (KILN_OCI_MAX_LAYERS);
  kiln_autofree char *over = manifest_with_layers (KILN_OCI_MAX_LAYERS + 1);
  cr_assert_eq (kiln_manifest_from_json (ok, strlen (ok), &m, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq (m.nlayers, KILN_OCI_MAX_LAYERS);
  /* what kiln writes it must be able to read: one more layer is refused */
  kiln_autofree char *out = NULL;
  size_t len;
  cr_assert_eq (kiln_manifest_to_json (&m, &out, &len, &err), 0);
  m.layers = kiln_xrealloc (m.layers, (m.nlayers + 1) * sizeof *m.layers);
  m.layers[m.nlayers] = (struct kiln_descriptor){ 0 };
  m.nlayers++;
  free (out);
  out = NULL;
  cr_assert_lt (kiln_manifest_to_json (&m, &out, &len, &err), 0);
  cr_expect_str_eq (err->msg, "image manifest: 1001 layers, more than the limit of 1000");
  kiln_error_free (&err);
  kiln_manifest_clear (&m);
  cr_assert_lt (kiln_manifest_from_json (over, strlen (over), &m, &err), 0);
  cr_expect_eq (err->kind, KILN_E_PARSE);
  cr_expect_str_eq (err->msg, "image manifest: `layers` lists 1001 layers, more than the limit of 1000");
  kiln_error_free (&err);
}

static char *
config_with_layers (size_t n)
{
  struct kiln_buf b = KILN_BUF_INIT;
  kiln_buf_adds (&b, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
  for (size_t i = 0; i < n; i++)
    kiln_buf_addf (&b, "%s\"" DIGEST "\"", i ? "," : "");
  kiln_buf_adds (&b, "]}}");
  return kiln_buf_detach (&b, NULL);
}

Test (limits, config_diff_ids)
{
  struct kiln_image_config c = { 0 };
  struct kiln_error *err = NULL;
  kiln_autofree char *ok = config_with_layers (KILN_OCI_MAX_LAYERS);
  kiln_autofree char *over = config_with_layers (KILN_OCI_MAX_LAYERS + 1);
  cr_assert_eq (kiln_image_config_from_json (ok, strlen (ok), &c, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq (kiln_strv_len (c.diff_ids), KILN_OCI_MAX_LAYERS);
  kiln_image_config_clear (&c);
  cr_assert_lt (kiln_image_config_from_json (over, strlen (over), &c, &err), 0);
  cr_expect_str_eq (err->msg, "image config: `rootfs.diff_ids` lists 1001 layers, more than the limit of 1000");
  kiln_error_free (&err);
}

/* ---- paths in layers ---- */

/* A tar in the temporary directory holding one file entry per name. */
static int
tar_of (const char *const *names, size_t n)
{
  char path[4200];
  snprintf (path, sizeof path, "%s/layer.tar", kiln_test_tmpdir ());
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  cr_assert_eq (archive_write_open_filename (a, path), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, names[i]);
      archive_entry_set_filetype (e, AE_IFREG);
      archive_entry_set_perm (e, 0644);
      archive_entry_set_size (e, 1);
      cr_assert_eq (archive_write_header (a, e), ARCHIVE_OK, "%s", archive_error_string (a));
      cr_assert_eq (archive_write_data (a, "z", 1), 1);
      archive_entry_free (e);
    }
  archive_write_close (a);
  archive_write_free (a);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  cr_assert_geq (fd, 0);
  return fd;
}

static int
extract_names (const char *const *names, size_t n, struct kiln_error **err)
{
  char root[4200];
  snprintf (root, sizeof root, "%s/root", kiln_test_tmpdir ());
  mkdir (root, 0755);
  kiln_autoclose int rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  kiln_autoclose int fd = tar_of (names, n);
  struct kiln_extract_opts o = { .whiteouts = true };
  return kiln_extract_fd (fd, "layer.tar", rootfd, &o, err);
}

/* "d/d/.../f" with depth components in all. */
static char *
deep_name (int depth)
{
  struct kiln_buf b = KILN_BUF_INIT;
  for (int i = 1; i < depth; i++)
    kiln_buf_adds (&b, "d/");
  kiln_buf_adds (&b, "f");
  return kiln_buf_detach (&b, NULL);
}

Test (limits, layer_path_depth, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_error *err = NULL;
  kiln_autofree char *ok = deep_name (KILN_EXTRACT_MAX_DEPTH);
  kiln_autofree char *over = deep_name (KILN_EXTRACT_MAX_DEPTH + 1);
  const char *names[] = { ok, over };
  cr_assert_eq (extract_names (names, 1, &err), 0, "%s", err ? err->msg : "");
  cr_assert_lt (extract_names (names + 1, 1, &err), 0);
  cr_expect_eq (err->kind, KILN_E_PARSE);
  cr_expect (strstr (err->msg, "deeper than 512 directories (the limit)"), "%s", err->msg);
  cr_expect (strstr (err->msg, "extract `layer.tar`"), "%s", err->msg);
  kiln_error_free (&err);
}

/* A name of exactly 4096 bytes: 16 directories of 240 bytes and a file. */
Test (limits, layer_path_length, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_error *err = NULL;
  struct kiln_buf b = KILN_BUF_INIT;
  for (int i = 0; i < 17; i++)
    {
      for (int k = 0; k < 240; k++)
        kiln_buf_addch (&b, (char) ('a' + i));
      if (i < 16)
        kiln_buf_addch (&b, '/');
    }
  cr_assert_eq (b.len, KILN_EXTRACT_MAX_PATH);
  kiln_autofree char *ok = kiln_buf_detach (&b, NULL);
  kiln_autofree char *over = kiln_xasprintf ("%sz", ok);
  const char *names[] = { ok, over };
  cr_assert_eq (extract_names (names, 1, &err), 0, "%s", err ? err->msg : "");
  cr_assert_lt (extract_names (names + 1, 1, &err), 0);
  cr_expect (strstr (err->msg, "name longer than 4096 bytes (the limit)"), "%s", err->msg);
  kiln_error_free (&err);
}

/* ---- registry response headers ---- */

/* A loopback server answering every connection with one canned response
 * (to curl's TLS hello too, which then falls back to plain http). */
struct canned {
  int lfd;
  const char *resp;
  size_t len;
};

static void *
serve (void *arg)
{
  struct canned *c = arg;
  for (;;)
    {
      int fd = accept (c->lfd, NULL, NULL);
      if (fd < 0)
        return NULL;
      char buf[4096];
      ssize_t n = read (fd, buf, sizeof buf);
      if (n > 0 && write (fd, c->resp, c->len) < 0)
        n = -1;
      shutdown (fd, SHUT_WR);
      while (read (fd, buf, sizeof buf) > 0)
        ;
      close (fd);
    }
}

/* Serves resp (taken) on a new loopback port; returns "127.0.0.1:PORT". */
static char *
start_canned (struct kiln_buf *resp)
{
  struct canned *c = kiln_xcalloc (1, sizeof *c); /* lives as long as the test process */
  c->len = resp->len;
  c->resp = kiln_buf_detach (resp, NULL);
  c->lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  cr_assert_eq (bind (c->lfd, (struct sockaddr *) &sa, sizeof sa), 0);
  cr_assert_eq (listen (c->lfd, 8), 0);
  cr_assert_eq (getsockname (c->lfd, (struct sockaddr *) &sa, &sl), 0);
  pthread_t t;
  pthread_create (&t, NULL, serve, c);
  return kiln_xasprintf ("127.0.0.1:%d", ntohs (sa.sin_port));
}

static int
open_client (const char *host, struct kiln_registry_client **cl, struct kiln_error **err)
{
  struct kiln_registry_opts *o = kiln_xcalloc (1, sizeof *o); /* the client keeps a pointer */
  kiln_registry_opts_init (o);
  o->retries = 0;
  return kiln_registry_client_open (host, o, false, cl, err);
}

/* Pings a server whose /v2/ answer is 200 with header lines of the given
 * sizes (each counted with its CRLF). */
static int
ping_with_headers (const size_t *lines, size_t n, struct kiln_error **err)
{
  struct kiln_buf r = KILN_BUF_INIT;
  kiln_buf_adds (&r, "HTTP/1.1 200 OK\r\n");
  for (size_t i = 0; i < n; i++)
    {
      size_t start = r.len;
      kiln_buf_addf (&r, "X-Pad-%zu: ", i % 10);
      while (r.len - start < lines[i] - 2)
        kiln_buf_addch (&r, 'p');
      kiln_buf_adds (&r, "\r\n");
    }
  kiln_buf_adds (&r, "Docker-Distribution-API-Version: registry/2.0\r\nContent-Length: 2\r\n"
                     "Connection: close\r\n\r\n{}");
  kiln_autofree char *host = start_canned (&r);
  struct kiln_registry_client *cl = NULL;
  int ret = open_client (host, &cl, err);
  kiln_registry_client_free (cl);
  return ret;
}

Test (limits, registry_header_line)
{
  struct kiln_error *err = NULL;
  size_t ok[] = { KILN_REG_MAX_HEADER_LINE }, over[] = { KILN_REG_MAX_HEADER_LINE + 1 };
  cr_assert_eq (ping_with_headers (ok, 1, &err), 0, "%s", err ? err->msg : "");
  cr_assert_lt (ping_with_headers (over, 1, &err), 0);
  cr_expect_eq (err->kind, KILN_E_NET);
  cr_expect (strstr (err->msg, "/v2/`: response header line of 65537 bytes, more than the limit of 65536"), "%s",
             err->msg);
  kiln_error_free (&err);
}

/* The status line and the fixed headers of ping_with_headers count too. */
Test (limits, registry_headers_total)
{
  struct kiln_error *err = NULL;
  static const char fixed[] = "HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\n"
                              "Content-Length: 2\r\nConnection: close\r\n\r\n";
  size_t left = KILN_REG_MAX_HEADERS - (sizeof fixed - 1);
  size_t ok[5] = { 60000, 60000, 60000, 60000, left - 240000 };
  cr_assert_eq (ping_with_headers (ok, 5, &err), 0, "%s", err ? err->msg : "");
  ok[4]++;
  cr_assert_lt (ping_with_headers (ok, 5, &err), 0);
  cr_expect (strstr (err->msg, "response headers larger than the limit of 262144 bytes"), "%s", err->msg);
  kiln_error_free (&err);
}

/* A document read whole (manifest, config, token) larger than its cap:
 * the error names the request and the cap. */
static int
get_body_of (size_t size, size_t max, struct kiln_error **err)
{
  struct kiln_buf r = KILN_BUF_INIT;
  kiln_buf_addf (&r,
                 "HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 size);
  for (size_t i = 0; i < size; i++)
    kiln_buf_addch (&r, 'b');
  kiln_autofree char *host = start_canned (&r);
  kiln_autofree char *url = kiln_xasprintf ("http://%s/v2/x/manifests/1", host);
  struct kiln_registry_client *cl = NULL;
  struct kiln_registry_conn cn = { 0 };
  struct kiln_buf out = KILN_BUF_INIT;
  int ret = open_client (host, &cl, err);
  if (ret == 0)
    ret = kiln_registry_conn_init (&cn, cl, err);
  if (ret == 0)
    ret = kiln_registry_get_small (&cn, url, NULL, max, &out, NULL, err);
  if (ret == 0)
    cr_expect_eq (out.len, size);
  kiln_buf_release (&out);
  kiln_registry_conn_clear (&cn);
  kiln_registry_client_free (cl);
  return ret;
}

Test (limits, registry_document_size)
{
  struct kiln_error *err = NULL;
  cr_assert_eq (get_body_of (100000, 100000, &err), 0, "%s", err ? err->msg : "");
  cr_assert_lt (get_body_of (100001, 100000, &err), 0);
  cr_expect (strstr (err->msg, "/v2/x/manifests/1`: response larger than the limit of 100000 bytes"), "%s", err->msg);
  kiln_error_free (&err);
}
