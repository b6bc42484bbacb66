/* test_registry_pull.c - downloads whose bytes do not match their digest,
 * against a small HTTP server in a thread that flips one bit of a body
 * (once, or every time): a document or a layer is fetched once more from the
 * start; a second mismatch is an error naming both digests and the registry,
 * also when the layer stopped decoding first; a layer that does not decode
 * although its bytes match is a broken image, not retried. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "../src/registry/registry-internal.h"
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* ---- the server: GET /v2/ answers 200, GET `path` the body, else 404 ---- */

struct srv {
  int fd, port;
  pthread_t th;
  atomic_bool stop;
  const char *path;
  const unsigned char *body;
  size_t len;
  size_t flip_at;        /* bit 0 of this byte flipped ... */
  atomic_int flips_left; /* ... this many times (-1: always) */
  atomic_int gets;       /* GETs of path */
};

static void
send_all (int fd, const void *p, size_t n)
{
  for (const char *c = p; n > 0;)
    {
      ssize_t w = write (fd, c, n);
      if (w <= 0)
        return;
      c += w, n -= (size_t) w;
    }
}

static void
answer (struct srv *s, int fd)
{
  char req[8192] = "";
  size_t got = 0;
  while (got < sizeof req - 1 && !strstr (req, "\r\n\r\n"))
    {
      ssize_t n = read (fd, req + got, sizeof req - 1 - got);
      if (n <= 0)
        return;
      got += (size_t) n;
      req[got] = '\0';
      /* a TLS hello (kiln tries https before plain http on loopback): hang up */
      if (req[0] != 'G' && req[0] != 'H')
        return;
    }
  char path[1024];
  if (sscanf (req, "GET %1023s HTTP/1.1", path) != 1)
    return;
  const unsigned char *body = (const unsigned char *) "{}";
  size_t len = 2;
  int status = 200;
  unsigned char *copy = NULL;
  if (strcmp (path, s->path) == 0)
    {
      atomic_fetch_add (&s->gets, 1);
      body = s->body, len = s->len;
      int left = atomic_load (&s->flips_left);
      if (left != 0)
        {
          if (left > 0)
            atomic_fetch_sub (&s->flips_left, 1);
          copy = kiln_xmalloc (len);
          memcpy (copy, body, len);
          copy[s->flip_at] ^= 1;
          body = copy;
        }
    }
  else if (strcmp (path, "/v2/") != 0)
    status = 404, len = 0;
  char head[256];
  int hn = snprintf (head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     len);
  send_all (fd, head, (size_t) hn);
  send_all (fd, body, len);
  free (copy);
}

static void *
serve (void *opaque)
{
  struct srv *s = opaque;
  while (!atomic_load (&s->stop))
    {
      struct pollfd p = { .fd = s->fd, .events = POLLIN };
      if (poll (&p, 1, 50) <= 0)
        continue;
      int c = accept (s->fd, NULL, NULL);
      if (c < 0)
        continue;
      answer (s, c);
      shutdown (c, SHUT_WR);
      close (c);
    }
  return NULL;
}

static void
srv_start (struct srv *s, const char *path, const void *body, size_t len, size_t flip_at, int flips)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t al = sizeof a;
  memset (s, 0, sizeof *s);
  s->path = path, s->body = body, s->len = len, s->flip_at = flip_at;
  atomic_store (&s->flips_left, flips);
  s->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq (s->fd, 0);
  cr_assert_eq (bind (s->fd, (struct sockaddr *) &a, sizeof a), 0);
  cr_assert_eq (listen (s->fd, 16), 0);
  cr_assert_eq (getsockname (s->fd, (struct sockaddr *) &a, &al), 0);
  s->port = ntohs (a.sin_port);
  cr_assert_eq (pthread_create (&s->th, NULL, serve, s), 0);
}

static void
srv_stop (struct srv *s)
{
  atomic_store (&s->stop, true);
  pthread_join (s->th, NULL);
  close (s->fd);
}

static struct kiln_registry_client *
client_for (const struct srv *s, struct kiln_registry_opts *o)
{
  struct kiln_registry_client *c = NULL;
  struct kiln_error *err = NULL;
  kiln_autofree char *host = kiln_xasprintf ("127.0.0.1:%d", s->port);
  kiln_registry_opts_init (o);
  o->retry_delay_ms = 10;
  int r = kiln_registry_client_open (host, o, false, &c, &err);
  cr_assert_eq (r, 0, "client: %s", err ? err->msg : "");
  return c;
}

static void
flipped_digest (const void *data, size_t len, size_t at, struct kiln_digest *out)
{
  unsigned char *b = kiln_xmalloc (len);
  memcpy (b, data, len);
  b[at] ^= 1;
  kiln_digest_of (b, len, out);
  free (b);
}

/* ---- documents ---- */

static const char doc[]
    = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
#define DOC_PATH "/v2/a/blobs/x"

/* flips: how often the server damages the document; returns what
 * kiln_registry_get_verified returned, the error in *err. */
static int
get_doc (int flips, struct srv *s, struct kiln_buf *out, struct kiln_error **err)
{
  struct kiln_registry_opts o;
  struct kiln_registry_conn cn = { 0 };
  struct kiln_digest want;
  kiln_digest_of (doc, strlen (doc), &want);
  srv_start (s, DOC_PATH, doc, strlen (doc), 7, flips);
  struct kiln_registry_client *c = client_for (s, &o);
  kiln_autofree char *url = kiln_xasprintf ("%s" DOC_PATH, c->origin);
  cr_assert_eq (kiln_registry_conn_init (&cn, c, err), 0);
  int r = kiln_registry_get_verified (&cn, url, NULL, 4096, "config", want.s, out, NULL, err);
  kiln_registry_conn_clear (&cn);
  kiln_registry_client_free (c);
  srv_stop (s);
  return r;
}

Test (registry_pull, document_damaged_once_is_fetched_again)
{
  struct srv s;
  kiln_autobuf struct kiln_buf out = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_eq (get_doc (1, &s, &out, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (atomic_load (&s.gets), 2);
  cr_assert_eq (out.len, strlen (doc));
  cr_assert (memcmp (out.buf, doc, out.len) == 0);
}

Test (registry_pull, intact_document_is_fetched_once)
{
  struct srv s;
  kiln_autobuf struct kiln_buf out = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  cr_assert_eq (get_doc (0, &s, &out, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (atomic_load (&s.gets), 1);
}

Test (registry_pull, document_damaged_every_time_names_both_digests_and_the_registry)
{
  struct srv s;
  kiln_autobuf struct kiln_buf out = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  struct kiln_digest want, got;
  kiln_digest_of (doc, strlen (doc), &want);
  flipped_digest (doc, strlen (doc), 7, &got);
  cr_assert_lt (get_doc (-1, &s, &out, &err), 0);
  cr_assert_eq (atomic_load (&s.gets), 2);
  cr_assert_eq (err->kind, KILN_E_DIGEST);
  kiln_autofree char *msg = kiln_xasprintf ("config `%s`: digest mismatch: got `%s` from registry `127.0.0.1:%d` "
                                            "(fetched twice)",
                                            want.s, got.s, s.port);
  cr_assert_str_eq (err->msg, msg);
  kiln_error_free (&err);
}

/* ---- layers ---- */

/* ~1 MiB of text, gzipped: dynamic Huffman blocks, so byte 16 lies in the
 * first block's header and the stream stops decoding right there. */
static unsigned char *
gzip_text (size_t *len)
{
  struct kiln_buf t = KILN_BUF_INIT;
  for (int i = 0; t.len < (1u << 20); i++)
    kiln_buf_addf (&t, "line %d of a layer that compresses\n", i);
  z_stream z = { 0 };
  cr_assert_eq (deflateInit2 (&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound (&z, t.len);
  unsigned char *out = kiln_xmalloc (cap);
  z.next_in = (unsigned char *) t.buf, z.avail_in = (uInt) t.len;
  z.next_out = out, z.avail_out = (uInt) cap;
  cr_assert_eq (deflate (&z, Z_FINISH), Z_STREAM_END);
  *len = cap - z.avail_out;
  deflateEnd (&z);
  kiln_buf_release (&t);
  return out;
}

static size_t
entries (struct kiln_store *st, const char *rel)
{
  int fd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY | O_DIRECTORY, 0, NULL);
  cr_assert_geq (fd, 0);
  kiln_autodir DIR *d = fdopendir (fd);
  size_t n = 0;
  for (struct dirent *de; (de = readdir (d));)
    n += de->d_name[0] != '.';
  return n;
}

/* Serves body (flipped at byte 16 `flips` times) as a gzip layer with
 * digest want; returns what kiln_registry_download_blob returned. */
static int
download (const unsigned char *body, size_t len, const struct kiln_digest *want, int flips, struct srv *s,
          struct kiln_store *st, struct kiln_error **err)
{
  struct kiln_registry_opts o;
  struct kiln_descriptor d = { .media_type = (char *) KILN_MT_OCI_LAYER_GZIP, .digest = *want, .size = (int64_t) len };
  kiln_autofree char *path = kiln_xasprintf ("/v2/a/blobs/%s", want->s);
  srv_start (s, path, body, len, 16, flips);
  struct kiln_registry_client *c = client_for (s, &o);
  int r = kiln_registry_download_blob (st, c, "a", &d, err);
  kiln_registry_client_free (c);
  srv_stop (s);
  return r;
}

Test (registry_pull, layer_damaged_once_is_downloaded_again, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_digest want;
  struct srv s;
  size_t len;
  kiln_autofree unsigned char *gz = gzip_text (&len);
  kiln_digest_of (gz, len, &want);
  cr_assert_eq (download (gz, len, &want, 1, &s, st, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (atomic_load (&s.gets), 2);
  cr_assert (kiln_store_blob_exists (st, &want, NULL));
  cr_assert_eq (entries (st, "ingest"), 0);
  kiln_store_free (st);
}

Test (registry_pull, layer_that_stops_decoding_is_still_hashed_to_name_what_arrived, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_digest want, got;
  struct srv s;
  size_t len;
  kiln_autofree unsigned char *gz = gzip_text (&len);
  kiln_digest_of (gz, len, &want);
  /* the digest of the whole damaged body: only known if the bytes after
   * the point where inflating failed were received and hashed too */
  flipped_digest (gz, len, 16, &got);
  cr_assert_lt (download (gz, len, &want, -1, &s, st, &err), 0);
  cr_assert_eq (atomic_load (&s.gets), 2);
  cr_assert_eq (err->kind, KILN_E_DIGEST);
  kiln_autofree char *head = kiln_xasprintf ("blob `%s`: digest mismatch: got `%s` from registry `127.0.0.1:%d` "
                                             "(downloaded twice; layer: not valid gzip: ",
                                             want.s, got.s, s.port);
  cr_assert (strncmp (err->msg, head, strlen (head)) == 0, "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (entries (st, "blobs/sha256"), 0);
  cr_assert_eq (entries (st, "ingest"), 0);
  kiln_store_free (st);
}

Test (registry_pull, layer_that_does_not_decode_but_matches_its_digest_is_a_broken_image, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_error *err = NULL;
  struct kiln_digest want;
  struct srv s;
  size_t len;
  kiln_autofree unsigned char *gz = gzip_text (&len);
  gz[16] ^= 1; /* broken at the source, and its digest says so */
  kiln_digest_of (gz, len, &want);
  cr_assert_lt (download (gz, len, &want, 0, &s, st, &err), 0);
  cr_assert_eq (atomic_load (&s.gets), 1, "not retried");
  cr_assert_neq (err->kind, KILN_E_DIGEST);
  cr_assert (strstr (err->msg, "not valid gzip"), "%s", err->msg);
  kiln_autofree char *tail = kiln_xasprintf ("(the bytes match the digest: the image in registry `127.0.0.1:%d` is "
                                             "broken)",
                                             s.port);
  cr_assert (strstr (err->msg, tail), "%s", err->msg);
  cr_assert (strstr (err->msg, want.s), "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_eq (entries (st, "blobs/sha256"), 0);
  kiln_store_free (st);
}

/* ---- the pieces ---- */

Test (registry_pull, peeked_digest_is_the_digest_so_far_and_hashing_goes_on, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_blob_writer *w = NULL;
  struct kiln_error *err = NULL;
  struct kiln_digest abc, abcdef, peek, got;
  kiln_digest_of ("abc", 3, &abc);
  kiln_digest_of ("abcdef", 6, &abcdef);
  cr_assert_eq (kiln_store_blob_begin (st, &w, &err), 0);
  cr_assert_eq (kiln_blob_writer_write (w, "abc", 3, &err), 0);
  kiln_blob_writer_digest (w, &peek);
  cr_assert_str_eq (peek.s, abc.s);
  cr_assert_eq (kiln_blob_writer_write (w, "def", 3, &err), 0);
  kiln_blob_writer_digest (w, &peek);
  cr_assert_str_eq (peek.s, abcdef.s);
  cr_assert_eq (kiln_blob_writer_commit (w, &abcdef, &got, NULL, &err), 0);
  cr_assert_str_eq (got.s, abcdef.s);
  kiln_store_free (st);
}

Test (registry_pull, mismatch_message_names_what_both_digests_and_the_registry)
{
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_registry_digest_mismatch (&err, "manifest", "sha256:aa", "sha256:bb", "r.example:5000", NULL), 0);
  cr_assert_eq (err->kind, KILN_E_DIGEST);
  cr_assert_str_eq (err->msg, "manifest `sha256:aa`: digest mismatch: got `sha256:bb` from registry `r.example:5000`");
  kiln_error_free (&err);
  kiln_registry_digest_mismatch (&err, "blob", "sha256:aa", "sha256:bb", "r", "downloaded twice");
  cr_assert_str_eq (err->msg,
                    "blob `sha256:aa`: digest mismatch: got `sha256:bb` from registry `r` (downloaded twice)");
  kiln_error_free (&err);
}
