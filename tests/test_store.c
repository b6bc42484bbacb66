/* test_store.c - the store: layout, blobs, tags under concurrency, check, export. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

static char *
path_in_tmp (const char *rel)
{
  return kiln_xasprintf ("%s/%s", kiln_test_tmpdir (), rel);
}

static struct kiln_store *
open_store (void)
{
  return kiln_test_store_open ();
}

static bool
exists_in (struct kiln_store *st, const char *rel)
{
  struct stat sb;
  return fstatat (kiln_store_dirfd (st), rel, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static size_t
count_entries (struct kiln_store *st, const char *rel)
{
  int fd = kiln_fs_open_beneath (kiln_store_dirfd (st), rel, O_RDONLY | O_DIRECTORY, 0, NULL);
  cr_assert_geq (fd, 0);
  kiln_autodir DIR *d = fdopendir (fd);
  size_t n = 0;
  for (struct dirent *de; (de = readdir (d));)
    if (de->d_name[0] != '.')
      n++;
  return n;
}

Test (store, open_creates_layout_and_reopens, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  const char *want[] = { "oci-layout", "index.json", "blobs/sha256", "ingest", "tmp", "kiln.lock" };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_assert (exists_in (st, want[i]), "missing %s", want[i]);
  struct kiln_buf b = KILN_BUF_INIT;
  cr_assert_eq (kiln_fs_read_file (kiln_store_dirfd (st), "index.json", 4096, &b, NULL), 0);
  cr_assert_str_eq (b.buf, "{\"manifests\":[],\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                           "\"schemaVersion\":2}");
  kiln_buf_release (&b);
  kiln_store_free (st);
  st = open_store (); /* second open of an existing store */
  kiln_store_free (st);
}

Test (store, blob_put_exists_read, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct kiln_digest d, want;
  uint64_t size = 0;
  kiln_digest_of ("hello", 5, &want);
  cr_assert_eq (kiln_store_blob_put (st, "hello", 5, &d, &err), 0);
  cr_assert_str_eq (d.s, want.s);
  cr_assert (kiln_store_blob_exists (st, &d, &size));
  cr_assert_eq (size, 5);
  /* putting the same content again is fine */
  cr_assert_eq (kiln_store_blob_put (st, "hello", 5, &d, &err), 0);
  struct kiln_buf b = KILN_BUF_INIT;
  cr_assert_eq (kiln_store_blob_read (st, &d, 100, &b, &err), 0);
  cr_assert_str_eq (b.buf, "hello");
  /* the cap applies */
  cr_assert_lt (kiln_store_blob_read (st, &d, 3, &b, &err), 0);
  kiln_error_free (&err);
  kiln_buf_release (&b);
  kiln_autofree char *rel = kiln_store_blob_relpath (&d);
  cr_assert (exists_in (st, rel));
  cr_assert_eq (count_entries (st, "ingest"), 0);
  kiln_digest_of ("nope", 4, &want);
  cr_assert_not (kiln_store_blob_exists (st, &want, NULL));
  cr_assert_lt (kiln_store_blob_open (st, &want, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  kiln_store_free (st);
}

Test (store, commit_with_wrong_digest_fails_and_leaves_nothing, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct kiln_blob_writer *w = NULL;
  struct kiln_digest other, got;
  kiln_digest_of ("other", 5, &other);
  cr_assert_eq (kiln_store_blob_begin (st, &w, &err), 0);
  cr_assert_eq (kiln_blob_writer_write (w, "abc", 3, &err), 0);
  cr_assert_eq (kiln_blob_writer_write (w, "def", 3, &err), 0);
  cr_assert_lt (kiln_blob_writer_commit (w, &other, &got, NULL, &err), 0);
  cr_assert_eq (err->kind, KILN_E_DIGEST);
  kiln_error_free (&err);
  cr_assert_eq (count_entries (st, "ingest"), 0);
  cr_assert_eq (count_entries (st, "blobs/sha256"), 0);
  /* and the streamed digest equals the one-shot digest */
  struct kiln_digest want;
  uint64_t size = 0;
  kiln_digest_of ("abcdef", 6, &want);
  cr_assert_eq (kiln_store_blob_begin (st, &w, &err), 0);
  cr_assert_eq (kiln_blob_writer_write (w, "abc", 3, &err), 0);
  cr_assert_eq (kiln_blob_writer_write (w, "def", 3, &err), 0);
  cr_assert_eq (kiln_blob_writer_commit (w, &want, &got, &size, &err), 0);
  cr_assert_str_eq (got.s, want.s);
  cr_assert_eq (size, 6);
  cr_assert_eq (count_entries (st, "blobs/sha256"), 1);
  /* abort drops the temp file */
  cr_assert_eq (kiln_store_blob_begin (st, &w, &err), 0);
  cr_assert_eq (count_entries (st, "ingest"), 1);
  kiln_blob_writer_abort (w);
  cr_assert_eq (count_entries (st, "ingest"), 0);
  kiln_store_free (st);
}

/* ---- tags ---- */

static struct kiln_descriptor
fake_desc (char fill, char last)
{
  struct kiln_descriptor d = { 0 };
  d.media_type = kiln_xstrdup ("application/vnd.oci.image.manifest.v1+json");
  memcpy (d.digest.s, "sha256:", 7);
  memset (d.digest.s + 7, fill, KILN_DIGEST_HEX_LEN);
  d.digest.s[KILN_DIGEST_STR_LEN - 1] = last;
  d.digest.s[KILN_DIGEST_STR_LEN] = '\0';
  d.size = 42;
  return d;
}

Test (store, tag_untag_resolve, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct kiln_descriptor d1 = fake_desc ('a', '1'), d2 = fake_desc ('a', '2'), d3 = fake_desc ('b', '3'), out;
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d1, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "example.com/x:2", &d2, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "example.com/y:1", &d3, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "example.com/y:also", &d3, &err), 0);
  /* by name, and retagging replaces */
  cr_assert_eq (kiln_store_resolve (st, "example.com/x:1", &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d1.digest.s);
  cr_assert_eq (out.size, 42);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d3, &err), 0);
  cr_assert_eq (kiln_store_resolve (st, "example.com/x:1", &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d3.digest.s);
  kiln_descriptor_clear (&out);
  struct kiln_index ix;
  cr_assert_eq (kiln_store_list (st, &ix, &err), 0);
  cr_assert_eq (ix.nmanifests, 4);
  kiln_index_clear (&ix);
  /* full digest, unique prefix (two names on one digest are not ambiguous) */
  cr_assert_eq (kiln_store_resolve (st, d2.digest.s, &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d2.digest.s);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_store_resolve (st, "bbbbbbbbbbbbbb", &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d3.digest.s);
  kiln_descriptor_clear (&out);
  /* d1 is no longer tagged; d2's prefix is now unique */
  cr_assert_eq (kiln_store_resolve (st, "sha256:aaaaaaaaaaaaaaa", &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d2.digest.s);
  kiln_descriptor_clear (&out);
  cr_assert_eq (kiln_store_tag (st, "example.com/z:1", &d1, &err), 0);
  cr_assert_lt (kiln_store_resolve (st, "aaaaaaaaaaaaaaa", &out, &err), 0);
  cr_assert (strstr (err->msg, "ambiguous"), "%s", err->msg);
  kiln_error_free (&err);
  /* too short a prefix is not a digest */
  cr_assert_lt (kiln_store_resolve (st, "bbbbbbbbbbb", &out, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  /* untag */
  cr_assert_eq (kiln_store_untag (st, "example.com/y:1", &err), 0);
  cr_assert_lt (kiln_store_resolve (st, "example.com/y:1", &out, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  cr_assert_lt (kiln_store_untag (st, "example.com/y:1", &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  kiln_error_free (&err);
  kiln_descriptor_clear (&d1);
  kiln_descriptor_clear (&d2);
  kiln_descriptor_clear (&d3);
  kiln_store_free (st);
}

/* Pages of the file at rel that are in the page cache (mincore). */
static size_t
cached_pages (struct kiln_store *st, const char *rel)
{
  kiln_autoclose int fd = openat (kiln_store_dirfd (st), rel, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  cr_assert (fd >= 0 && fstat (fd, &sb) == 0, "%s", rel);
  size_t pg = (size_t) sysconf (_SC_PAGESIZE), n = ((size_t) sb.st_size + pg - 1) / pg, hot = 0;
  void *map = mmap (NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
  cr_assert_neq (map, MAP_FAILED);
  kiln_autofree unsigned char *vec = kiln_xmalloc (n);
  cr_assert_eq (mincore (map, (size_t) sb.st_size, vec), 0);
  for (size_t i = 0; i < n; i++)
    hot += vec[i] & 1;
  munmap (map, (size_t) sb.st_size);
  return hot;
}

/* Writes data as one blob in pieces that take every path of a direct
 * writer: an aligned whole-block write, a small piece gathered, an
 * unaligned piece that fills the gather buffer, and a tail left for commit. */
static struct kiln_digest
put_in_pieces (struct kiln_store *st, const unsigned char *data, size_t len, bool direct)
{
  const size_t mib = 1u << 20, piece[] = { mib, 5, mib - 5, len - 2 * mib };
  struct kiln_blob_writer *w = NULL;
  struct kiln_error *err = NULL;
  struct kiln_digest d;
  cr_assert_eq (kiln_store_blob_begin (st, &w, &err), 0);
  if (direct)
    kiln_blob_writer_set_direct (w);
  for (size_t i = 0, off = 0; i < sizeof piece / sizeof *piece; off += piece[i++])
    cr_assert_eq (kiln_blob_writer_write (w, data + off, piece[i], &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_blob_writer_commit (w, NULL, &d, NULL, &err), 0, "%s", err ? err->msg : "");
  return d;
}

Test (store, direct_blob_has_its_bytes_and_stays_out_of_the_page_cache, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  const size_t len = (4u << 20) + 118; /* the last piece: a whole MiB and a tail */
  kiln_autofree unsigned char *data = kiln_xaligned_alloc (4096, 5u << 20);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char) (i * 2654435761u >> 13);
  kiln_autoclose int probe = openat (AT_FDCWD, kiln_test_tmpdir (), O_TMPFILE | O_WRONLY | O_DIRECT, 0600);
  if (probe < 0)
    kiln_test_skip ("the test directory's file system refuses O_DIRECT (set TMPDIR elsewhere)");
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct kiln_digest want, d;
  kiln_digest_of (data, len, &want);
  d = put_in_pieces (st, data, len, true);
  cr_assert_str_eq (d.s, want.s);
  kiln_autofree char *rel = kiln_store_blob_relpath (&d);
  /* at most the tail's page was written through the cache */
  cr_assert_leq (cached_pages (st, rel), 1, "%zu pages cached", cached_pages (st, rel));
  struct kiln_buf b = KILN_BUF_INIT;
  cr_assert_eq (kiln_store_blob_read (st, &d, len, &b, &err), 0);
  cr_assert_eq (b.len, len);
  cr_assert_eq (memcmp (b.buf, data, len), 0);
  kiln_buf_release (&b);
  /* the same pieces without O_DIRECT: the same blob, and it is cached (so
   * the check above can tell the two apart) */
  data[len - 1] ^= 1;
  kiln_digest_of (data, len, &want);
  d = put_in_pieces (st, data, len, false);
  cr_assert_str_eq (d.s, want.s);
  kiln_autofree char *rel2 = kiln_store_blob_relpath (&d);
  cr_assert_gt (cached_pages (st, rel2), 1000);
  kiln_store_free (st);
}

static struct stat
stat_in (struct kiln_store *st, const char *rel)
{
  struct stat sb;
  cr_assert_eq (fstatat (kiln_store_dirfd (st), rel, &sb, AT_SYMLINK_NOFOLLOW), 0, "%s", rel);
  return sb;
}

/* A rebuild that changed nothing puts the same config and manifest and tags
 * the same name again; none of it may touch the disk. */
Test (store, putting_and_tagging_what_is_there_writes_nothing, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct kiln_digest d;
  struct kiln_descriptor d1 = fake_desc ('a', '1'), d2 = fake_desc ('a', '2');
  cr_assert_eq (kiln_store_blob_put (st, "hello", 5, &d, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d1, &err), 0);
  struct stat ingest = stat_in (st, "ingest"), index = stat_in (st, "index.json");
  usleep (20000); /* past the coarse clock's tick, so a write would show */
  cr_assert_eq (kiln_store_blob_put (st, "hello", 5, &d, &err), 0);
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d1, &err), 0);
  struct stat ingest2 = stat_in (st, "ingest"), index2 = stat_in (st, "index.json");
  cr_assert_eq (ingest2.st_mtim.tv_nsec, ingest.st_mtim.tv_nsec, "a temp blob was written");
  cr_assert_eq (ingest2.st_mtim.tv_sec, ingest.st_mtim.tv_sec);
  cr_assert_eq (index2.st_ino, index.st_ino, "index.json was rewritten");
  /* an annotation more, or another digest, is a change */
  kiln_kvlist_set (&d1.annotations, "org.example.k", "v");
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d1, &err), 0);
  struct stat index3 = stat_in (st, "index.json");
  cr_assert_neq (index3.st_ino, index.st_ino);
  cr_assert_eq (kiln_store_tag (st, "example.com/x:1", &d2, &err), 0);
  cr_assert_neq (stat_in (st, "index.json").st_ino, index3.st_ino);
  struct kiln_descriptor out;
  cr_assert_eq (kiln_store_resolve (st, "example.com/x:1", &out, &err), 0);
  cr_assert_str_eq (out.digest.s, d2.digest.s);
  kiln_descriptor_clear (&out);
  kiln_descriptor_clear (&d1);
  kiln_descriptor_clear (&d2);
  kiln_store_free (st);
}

static int
tag_many (const char *who)
{
  struct kiln_store *st = NULL;
  struct kiln_error *err = NULL;
  kiln_autofree char *root = path_in_tmp ("store");
  if (kiln_store_open (root, &st, &err) < 0)
    return 1;
  struct kiln_descriptor d = fake_desc (who[0] == 'a' ? 'a' : 'b', '0');
  for (int i = 0; i < 20; i++)
    {
      kiln_autofree char *name = kiln_xasprintf ("example.com/%s:%d", who, i);
      if (kiln_store_tag (st, name, &d, &err) < 0)
        return 2;
    }
  kiln_descriptor_clear (&d);
  kiln_store_free (st);
  return 0;
}

Test (store, concurrent_taggers_keep_all_entries, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  int pipefd[2];
  cr_assert_eq (pipe (pipefd), 0);
  pid_t pids[2];
  const char *who[] = { "a", "b" };
  for (int i = 0; i < 2; i++)
    {
      pids[i] = fork ();
      cr_assert_geq (pids[i], 0);
      if (pids[i] == 0)
        {
          char c;
          close (pipefd[1]);
          (void) !read (pipefd[0], &c, 1); /* start together */
          _exit (tag_many (who[i]));
        }
    }
  close (pipefd[0]);
  close (pipefd[1]); /* EOF releases both children at once */
  for (int i = 0; i < 2; i++)
    {
      int status = 0;
      cr_assert_eq (waitpid (pids[i], &status, 0), pids[i]);
      cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "child %d status %d", i, status);
    }
  struct kiln_index ix;
  cr_assert_eq (kiln_store_list (st, &ix, NULL), 0);
  cr_assert_eq (ix.nmanifests, 40);
  kiln_index_clear (&ix);
  kiln_store_free (st);
}

Test (store, mktemp_dir_is_unique, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  kiln_autofree char *a = NULL, *b = NULL;
  cr_assert_eq (kiln_store_mktemp_dir (st, &a, NULL), 0);
  cr_assert_eq (kiln_store_mktemp_dir (st, &b, NULL), 0);
  cr_assert (kiln_str_has_prefix (a, "tmp/build-"), "%s", a);
  cr_assert_str_neq (a, b);
  struct stat sb;
  cr_assert_eq (fstatat (kiln_store_dirfd (st), a, &sb, 0), 0);
  cr_assert (S_ISDIR (sb.st_mode));
  kiln_store_free (st);
}

/* ---- a small hand-made image ---- */

#include <zlib.h>

struct image {
  struct kiln_descriptor manifest;
  struct kiln_digest layers[2], diff_ids[2], config;
};

/* An uncompressed tar with one file, built with libarchive. */
static char *
make_tar (const char *path, const char *content, size_t *len)
{
  size_t cap = 1 << 16, used = 0;
  char *buf = kiln_xmalloc (cap);
  struct archive *a = archive_write_new ();
  struct archive_entry *e = archive_entry_new ();
  archive_write_set_format_pax_restricted (a);
  cr_assert_eq (archive_write_open_memory (a, buf, cap, &used), ARCHIVE_OK);
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) strlen (content));
  cr_assert_eq (archive_write_header (a, e), ARCHIVE_OK);
  cr_assert_eq (archive_write_data (a, content, strlen (content)), (la_ssize_t) strlen (content));
  cr_assert_eq (archive_write_close (a), ARCHIVE_OK);
  archive_entry_free (e);
  archive_write_free (a);
  *len = used;
  return buf;
}

static char *
gzip_bytes (const char *in, size_t len, size_t *out_len)
{
  z_stream z = { 0 };
  size_t cap = len + 1024;
  char *out = kiln_xmalloc (cap);
  cr_assert_eq (deflateInit2 (&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *) in;
  z.avail_in = (uInt) len;
  z.next_out = (Bytef *) out;
  z.avail_out = (uInt) cap;
  cr_assert_eq (deflate (&z, Z_FINISH), Z_STREAM_END);
  *out_len = z.total_out;
  deflateEnd (&z);
  return out;
}

static void
put_layer (struct kiln_store *st, struct image *img, int i, const char *path, const char *content, bool gz,
           struct kiln_descriptor *desc)
{
  size_t tlen = 0, glen = 0;
  kiln_autofree char *tar = make_tar (path, content, &tlen);
  kiln_autofree char *blob = gz ? gzip_bytes (tar, tlen, &glen) : NULL;
  kiln_digest_of (tar, tlen, &img->diff_ids[i]);
  cr_assert_eq (kiln_store_blob_put (st, gz ? blob : tar, gz ? glen : tlen, &img->layers[i], NULL), 0);
  memset (desc, 0, sizeof *desc);
  desc->media_type = kiln_xstrdup (gz ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                      : "application/vnd.oci.image.layer.v1.tar");
  desc->digest = img->layers[i];
  desc->size = (int64_t) (gz ? glen : tlen);
}

static void
make_image (struct kiln_store *st, struct image *img)
{
  struct kiln_image_config c = { 0 };
  struct kiln_manifest m = { 0 };
  struct kiln_error *err = NULL;
  m.media_type = kiln_xstrdup ("application/vnd.oci.image.manifest.v1+json");
  m.layers = kiln_xcalloc (2, sizeof *m.layers);
  m.nlayers = 2;
  put_layer (st, img, 0, "hello.txt", "hello world\n", true, &m.layers[0]);
  put_layer (st, img, 1, "etc/motd", "plain layer\n", false, &m.layers[1]);
  c.architecture = kiln_xstrdup ("amd64");
  c.os = kiln_xstrdup ("linux");
  c.created = kiln_xstrdup ("1970-01-01T00:00:00Z");
  kiln_strv_push (&c.cmd, "/bin/sh");
  kiln_strv_push (&c.diff_ids, img->diff_ids[0].s);
  kiln_strv_push (&c.diff_ids, img->diff_ids[1].s);
  cr_assert_eq (kiln_store_put_config (st, &c, &m.config, &err), 0);
  img->config = m.config.digest;
  cr_assert_eq (kiln_store_put_manifest (st, &m, &img->manifest, &err), 0);
  cr_assert_str_eq (img->manifest.media_type, "application/vnd.oci.image.manifest.v1+json");
  kiln_image_config_clear (&c);
  kiln_manifest_clear (&m);
}

Test (store, put_and_get_documents, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct image img;
  struct kiln_manifest m;
  struct kiln_image_config c;
  make_image (st, &img);
  cr_assert_eq (kiln_store_get_manifest (st, &img.manifest.digest, &m, NULL), 0);
  cr_assert_eq (m.nlayers, 2);
  cr_assert_str_eq (m.layers[1].digest.s, img.layers[1].s);
  cr_assert_eq (kiln_store_get_config (st, &m.config.digest, &c, NULL), 0);
  cr_assert_str_eq (c.diff_ids[0], img.diff_ids[0].s);
  cr_assert_str_eq (c.cmd[0], "/bin/sh");
  /* a config is not a manifest */
  struct kiln_error *err = NULL;
  cr_assert_lt (kiln_store_get_manifest (st, &img.config, &m, &err), 0);
  kiln_error_free (&err);
  kiln_image_config_clear (&c);
  kiln_manifest_clear (&m);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

/* ---- check ---- */

static bool
has_problem (const struct kiln_store_report *r, const char *a, const char *b)
{
  for (size_t i = 0; r->problems && r->problems[i]; i++)
    if (strstr (r->problems[i], a) && (b == NULL || strstr (r->problems[i], b)))
      return true;
  return false;
}

Test (store, check_is_clean_on_a_good_store, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_store_report r;
  struct image img;
  struct kiln_blob_writer *w = NULL;
  make_image (st, &img);
  cr_assert_eq (kiln_store_tag (st, "example.com/app:1", &img.manifest, NULL), 0);
  cr_assert_eq (kiln_store_blob_begin (st, &w, NULL), 0); /* an interrupted write */
  cr_assert_eq (kiln_store_check (st, &r, NULL), 0);
  cr_assert_null (r.problems, "%s", r.problems ? r.problems[0] : "");
  cr_assert_eq (r.blobs, 4);
  cr_assert_eq (r.refs, 1);
  cr_assert_eq (r.bad_blobs + r.missing, 0);
  cr_assert_eq (r.ingest, 1);
  kiln_blob_writer_abort (w);
  kiln_store_report_clear (&r);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

Test (store, check_reports_corrupt_blob_missing_layer_and_stray_file, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_store_report r;
  struct image img;
  make_image (st, &img);
  cr_assert_eq (kiln_store_tag (st, "example.com/app:1", &img.manifest, NULL), 0);
  int dfd = kiln_store_dirfd (st);
  /* flip one byte of the first layer */
  kiln_autofree char *l0 = kiln_store_blob_relpath (&img.layers[0]);
  cr_assert_eq (fchmodat (dfd, l0, 0644, 0), 0);
  kiln_autoclose int fd = openat (dfd, l0, O_RDWR);
  char c;
  cr_assert_eq (pread (fd, &c, 1, 20), 1);
  c ^= 1;
  cr_assert_eq (pwrite (fd, &c, 1, 20), 1);
  /* lose the second */
  kiln_autofree char *l1 = kiln_store_blob_relpath (&img.layers[1]);
  cr_assert_eq (unlinkat (dfd, l1, 0), 0);
  kiln_autoclose int junk = openat (dfd, "blobs/sha256/junk", O_WRONLY | O_CREAT, 0644);
  cr_assert_geq (junk, 0);

  cr_assert_eq (kiln_store_check (st, &r, NULL), 0);
  cr_assert_eq (r.bad_blobs, 2);
  cr_assert_eq (r.missing, 1);
  cr_assert (has_problem (&r, img.layers[0].s, "corrupt"));
  cr_assert (has_problem (&r, img.layers[1].s, "missing"));
  cr_assert (has_problem (&r, "example.com/app:1", "layer"));
  cr_assert (has_problem (&r, "blobs/sha256/junk", NULL));
  kiln_store_report_clear (&r);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

/* ---- export ---- */

struct tar_entry {
  char *name;
  char *data;
  size_t len;
  int64_t uid, mtime;
};

static size_t
read_tar (const char *path, struct tar_entry *out, size_t max)
{
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  size_t n = 0;
  archive_read_support_format_tar (a);
  cr_assert_eq (archive_read_open_filename (a, path, 65536), ARCHIVE_OK, "%s", archive_error_string (a));
  while (archive_read_next_header (a, &e) == ARCHIVE_OK)
    {
      cr_assert_lt (n, max);
      struct kiln_buf b = KILN_BUF_INIT;
      char chunk[4096];
      la_ssize_t r;
      while ((r = archive_read_data (a, chunk, sizeof chunk)) > 0)
        kiln_buf_add (&b, chunk, (size_t) r);
      out[n].name = kiln_xstrdup (archive_entry_pathname (e));
      out[n].data = kiln_buf_detach (&b, &out[n].len);
      out[n].uid = archive_entry_uid (e);
      out[n].mtime = archive_entry_mtime (e);
      n++;
    }
  archive_read_free (a);
  return n;
}

static const struct tar_entry *
find_entry (const struct tar_entry *t, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (t[i].name, name) == 0)
      return &t[i];
  return NULL;
}

static void
free_entries (struct tar_entry *t, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free (t[i].name);
      free (t[i].data);
    }
}

/* skopeo ARGS..., when skopeo is installed; true when it succeeded or is absent. */
static bool
skopeo_ok (const char *a1, const char *a2, const char *a3)
{
  if (access ("/usr/bin/skopeo", X_OK) != 0)
    return true;
  pid_t pid = fork ();
  if (pid == 0)
    {
      int devnull = open ("/dev/null", O_WRONLY);
      dup2 (devnull, 1);
      execl ("/usr/bin/skopeo", "skopeo", "--insecure-policy", a1, a2, a3, (char *) NULL);
      _exit (127);
    }
  int status = 0;
  waitpid (pid, &status, 0);
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

static bool
skopeo_accepts (const char *target)
{
  return skopeo_ok ("inspect", target, NULL);
}

static json_t *
index_of_dir (const char *dir)
{
  kiln_autofree char *p = kiln_xasprintf ("%s/index.json", dir);
  json_error_t jerr;
  json_t *j = json_load_file (p, 0, &jerr);
  cr_assert_not_null (j, "%s: %s", p, jerr.text);
  return j;
}

Test (store, export_oci_dir_links_blobs_and_merges_tags, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct image img;
  make_image (st, &img);
  kiln_autofree char *dest = path_in_tmp ("layout");
  cr_assert_eq (kiln_store_export (st, &img.manifest, "example.com/app:v1", "v1", KILN_EXPORT_OCI_DIR, dest, &err), 0,
                "%s", err ? err->msg : "");
  kiln_autofree char *layout = kiln_xasprintf ("%s/oci-layout", dest);
  cr_assert_eq (access (layout, R_OK), 0);
  json_t *ix = index_of_dir (dest);
  json_t *ms = json_object_get (ix, "manifests");
  cr_assert_eq (json_array_size (ms), 1);
  json_t *ann = json_object_get (json_array_get (ms, 0), "annotations");
  cr_assert_str_eq (json_string_value (json_object_get (ann, "org.opencontainers.image.ref.name")), "v1");
  cr_assert_str_eq (json_string_value (json_object_get (ann, "io.containerd.image.name")), "example.com/app:v1");
  cr_assert_str_eq (json_string_value (json_object_get (json_array_get (ms, 0), "digest")), img.manifest.digest.s);
  json_decref (ix);
  /* every blob is there, hardlinked to the store's copy (same filesystem) */
  struct kiln_digest all[] = { img.manifest.digest, img.config, img.layers[0], img.layers[1] };
  for (size_t i = 0; i < 4; i++)
    {
      struct stat a, b;
      kiln_autofree char *rel = kiln_store_blob_relpath (&all[i]);
      kiln_autofree char *p = kiln_xasprintf ("%s/%s", dest, rel);
      cr_assert_eq (stat (p, &b), 0, "missing %s", p);
      cr_assert_eq (fstatat (kiln_store_dirfd (st), rel, &a, 0), 0);
      cr_assert_eq (a.st_ino, b.st_ino);
    }
  /* a second tag is added, the same tag replaced */
  cr_assert_eq (kiln_store_export (st, &img.manifest, NULL, "v2", KILN_EXPORT_OCI_DIR, dest, &err), 0);
  cr_assert_eq (kiln_store_export (st, &img.manifest, NULL, "v1", KILN_EXPORT_OCI_DIR, dest, &err), 0);
  ix = index_of_dir (dest);
  cr_assert_eq (json_array_size (json_object_get (ix, "manifests")), 2);
  json_decref (ix);
  kiln_autofree char *target = kiln_xasprintf ("oci:%s:v2", dest);
  cr_assert (skopeo_accepts (target), "skopeo inspect %s failed", target);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

Test (store, export_oci_archive_is_a_deterministic_layout_tar, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct image img;
  struct tar_entry t[16];
  make_image (st, &img);
  kiln_autofree char *dest = path_in_tmp ("img.tar");
  cr_assert_eq (kiln_store_export (st, &img.manifest, "example.com/app:v1", "v1", KILN_EXPORT_OCI_ARCHIVE, dest, &err),
                0, "%s", err ? err->msg : "");
  size_t n = read_tar (dest, t, 16);
  cr_assert_not_null (find_entry (t, n, "oci-layout"));
  const struct tar_entry *ixe = find_entry (t, n, "index.json");
  cr_assert_not_null (ixe);
  cr_assert (strstr (ixe->data, img.manifest.digest.s));
  cr_assert (strstr (ixe->data, "\"org.opencontainers.image.ref.name\":\"v1\""));
  struct kiln_digest all[] = { img.manifest.digest, img.config, img.layers[0], img.layers[1] };
  for (size_t i = 0; i < 4; i++)
    {
      kiln_autofree char *rel = kiln_store_blob_relpath (&all[i]);
      const struct tar_entry *b = find_entry (t, n, rel);
      cr_assert_not_null (b, "missing %s", rel);
      struct kiln_digest d;
      kiln_digest_of (b->data, b->len, &d);
      cr_assert_str_eq (d.s, all[i].s);
    }
  for (size_t i = 0; i < n; i++)
    cr_assert (t[i].uid == 0 && t[i].mtime == 0, "%s not normalised", t[i].name);
  free_entries (t, n);
  /* the same image gives the same bytes */
  kiln_autofree char *again = path_in_tmp ("img2.tar");
  cr_assert_eq (kiln_store_export (st, &img.manifest, "example.com/app:v1", "v1", KILN_EXPORT_OCI_ARCHIVE, again, &err),
                0);
  struct kiln_buf a = KILN_BUF_INIT, b = KILN_BUF_INIT;
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, dest, 0, &a, NULL), 0);
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, again, 0, &b, NULL), 0);
  cr_assert (a.len == b.len && memcmp (a.buf, b.buf, a.len) == 0);
  kiln_buf_release (&a);
  kiln_buf_release (&b);
  kiln_autofree char *target = kiln_xasprintf ("oci-archive:%s", dest);
  cr_assert (skopeo_accepts (target), "skopeo inspect %s failed", target);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

Test (store, export_docker_archive_has_uncompressed_layers, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct image img;
  struct tar_entry t[16];
  make_image (st, &img);
  kiln_autofree char *dest = path_in_tmp ("docker.tar");
  cr_assert_eq (kiln_store_export (st, &img.manifest, "example.com/app:v1", "v1", KILN_EXPORT_DOCKER_ARCHIVE, dest,
                                   &err),
                0, "%s", err ? err->msg : "");
  size_t n = read_tar (dest, t, 16);
  const struct tar_entry *me = find_entry (t, n, "manifest.json");
  cr_assert_not_null (me);
  json_error_t jerr;
  kiln_autojson json_t *mj = json_loadb (me->data, me->len, 0, &jerr);
  cr_assert (json_is_array (mj) && json_array_size (mj) == 1);
  json_t *m0 = json_array_get (mj, 0);
  kiln_autofree char *cfg = kiln_xasprintf ("%s.json", kiln_digest_hex (&img.config));
  cr_assert_str_eq (json_string_value (json_object_get (m0, "Config")), cfg);
  cr_assert_str_eq (json_string_value (json_array_get (json_object_get (m0, "RepoTags"), 0)), "example.com/app:v1");
  json_t *layers = json_object_get (m0, "Layers");
  cr_assert_eq (json_array_size (layers), 2);
  cr_assert_not_null (find_entry (t, n, cfg));
  for (size_t i = 0; i < 2; i++)
    {
      const char *lp = json_string_value (json_array_get (layers, i));
      kiln_autofree char *want = kiln_xasprintf ("%s/layer.tar", kiln_digest_hex (&img.diff_ids[i]));
      cr_assert_str_eq (lp, want);
      const struct tar_entry *le = find_entry (t, n, lp);
      cr_assert_not_null (le, "missing %s", lp);
      struct kiln_digest d;
      kiln_digest_of (le->data, le->len, &d);
      cr_assert_str_eq (d.s, img.diff_ids[i].s, "layer %zu is not the uncompressed tar", i);
    }
  const struct tar_entry *re = find_entry (t, n, "repositories");
  cr_assert_not_null (re);
  cr_assert (strstr (re->data, "\"example.com/app\":{\"v1\":"));
  free_entries (t, n);
  kiln_autofree char *target = kiln_xasprintf ("docker-archive:%s", dest);
  cr_assert (skopeo_accepts (target), "skopeo inspect %s failed", target);
  /* copying verifies every layer against the config's diff ids */
  kiln_autofree char *copy = kiln_xasprintf ("oci:%s/copy:x", kiln_test_tmpdir ());
  cr_assert (skopeo_ok ("copy", target, copy), "skopeo copy %s failed", target);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}

Test (store, export_fails_cleanly_on_missing_blob, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = open_store ();
  struct kiln_error *err = NULL;
  struct image img;
  make_image (st, &img);
  kiln_autofree char *l1 = kiln_store_blob_relpath (&img.layers[1]);
  cr_assert_eq (unlinkat (kiln_store_dirfd (st), l1, 0), 0);
  kiln_autofree char *dest = path_in_tmp ("docker.tar");
  cr_assert_lt (kiln_store_export (st, &img.manifest, NULL, "v1", KILN_EXPORT_DOCKER_ARCHIVE, dest, &err), 0);
  cr_assert_eq (err->kind, KILN_E_NOTFOUND);
  cr_assert (strstr (err->msg, img.layers[1].s), "%s", err->msg);
  kiln_error_free (&err);
  cr_assert_neq (access (dest, F_OK), 0);
  kiln_descriptor_clear (&img.manifest);
  kiln_store_free (st);
}
