/* test_export_rootfs.c - an image's filesystem as a tar or a directory
 * (kiln_store_export_rootfs): layers applied with whiteouts, BuildKit's
 * entry names and order (exporter/tar/export.go, fsutil tarwriter.go
 * WriteTar: relative names, '/' after directories, no root entry, a second
 * name of an inode as TypeLink, xattrs as SCHILY.xattr.*, epoch mtimes). */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "kiln/util.h"

/* One tar entry to write: type 'f' file, 'd' dir, 'l' symlink, 'h' hardlink. */
struct ent {
  char type;
  const char *name, *body; /* body: content, or the link target */
  int mode, uid;
  const char *xattr; /* user.note value, or NULL */
};

static void
tar_put (struct archive *a, const struct ent *x)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, x->name);
  archive_entry_set_perm (e, (mode_t) x->mode);
  archive_entry_set_uid (e, x->uid);
  archive_entry_set_gid (e, x->uid);
  archive_entry_set_mtime (e, 1600000000, 0);
  archive_entry_set_filetype (e, x->type == 'd' ? AE_IFDIR : x->type == 'l' ? AE_IFLNK : AE_IFREG);
  if (x->type == 'l')
    archive_entry_set_symlink (e, x->body);
  if (x->type == 'h')
    archive_entry_set_hardlink (e, x->body);
  archive_entry_set_size (e, x->type == 'f' ? (la_int64_t) strlen (x->body) : 0);
  if (x->xattr)
    archive_entry_xattr_add_entry (e, "user.note", x->xattr, strlen (x->xattr));
  cr_assert_eq (archive_write_header (a, e), ARCHIVE_OK, "%s", archive_error_string (a));
  if (x->type == 'f')
    cr_assert_eq (archive_write_data (a, x->body, strlen (x->body)), (la_ssize_t) strlen (x->body));
  archive_entry_free (e);
}

static void
put_layer (struct kiln_store *st, const struct ent *ents, size_t n, struct kiln_descriptor *desc)
{
  size_t cap = 1 << 16, used = 0;
  kiln_autofree char *buf = kiln_xmalloc (cap);
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  cr_assert_eq (archive_write_open_memory (a, buf, cap, &used), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    tar_put (a, &ents[i]);
  cr_assert_eq (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
  memset (desc, 0, sizeof *desc);
  cr_assert_eq (kiln_store_blob_put (st, buf, used, &desc->digest, NULL), 0);
  desc->media_type = kiln_xstrdup ("application/vnd.oci.image.layer.v1.tar");
  desc->size = (int64_t) used;
}

static const struct ent layer1[] = {
  { 'd', "etc", NULL, 0755, 0, NULL },          { 'f', "etc/passwd", "root:x:0:0::/:/bin/sh\n", 0644, 0, NULL },
  { 'd', "data", NULL, 0750, 1000, NULL },      { 'f', "data/a", "shared\n", 04755, 1000, "hello" },
  { 'h', "data/b", "data/a", 0, 0, NULL },      { 'l', "data/sym", "a", 0777, 0, NULL },
  { 'f', "data/gone", "bye\n", 0644, 0, NULL }, { 'd', "opq", NULL, 0755, 0, NULL },
  { 'f', "opq/old", "old\n", 0644, 0, NULL },   { 'l', "escape", "/", 0777, 0, NULL },
};
static const struct ent layer2[] = {
  { 'f', "data/.wh.gone", "", 0644, 0, NULL },
  { 'd', "opq", NULL, 0755, 0, NULL },
  { 'f', "opq/.wh..wh..opq", "", 0644, 0, NULL },
  { 'f', "opq/new", "new\n", 0600, 0, NULL },
};

/* An image of layer1 + layer2 (nlayers 2), or of no layer at all (0). */
static void
make_image (struct kiln_store *st, size_t nlayers, struct kiln_descriptor *out)
{
  struct kiln_manifest m = { 0 };
  struct kiln_image_config c = { 0 };
  m.media_type = kiln_xstrdup ("application/vnd.oci.image.manifest.v1+json");
  m.layers = kiln_xcalloc (2, sizeof *m.layers);
  m.nlayers = nlayers;
  if (nlayers)
    {
      put_layer (st, layer1, sizeof layer1 / sizeof *layer1, &m.layers[0]);
      put_layer (st, layer2, sizeof layer2 / sizeof *layer2, &m.layers[1]);
    }
  c.os = kiln_xstrdup ("linux");
  c.architecture = kiln_xstrdup ("amd64");
  cr_assert_eq (kiln_store_put_config (st, &c, &m.config, NULL), 0);
  cr_assert_eq (kiln_store_put_manifest (st, &m, out, NULL), 0);
  kiln_image_config_clear (&c);
  kiln_manifest_clear (&m);
}

Test (export_rootfs, tar_is_the_flattened_tree_in_buildkit_form, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_descriptor img;
  struct kiln_error *err = NULL;
  int64_t epoch = 1234;
  make_image (st, 2, &img);
  kiln_autofree char *dest = kiln_xasprintf ("%s/fs.tar", kiln_test_tmpdir ());
  cr_assert_eq (kiln_store_export_rootfs (st, &img, KILN_EXPORT_ROOTFS_TAR, dest, &epoch, &err), 0, "%s",
                err ? err->msg : "");
  /* name, type, hardlink target, symlink target */
  static const struct {
    const char *name;
    mode_t type;
    const char *link;
  } want[] = {
    { "data/", AE_IFDIR, NULL },      { "data/a", AE_IFREG, NULL }, { "data/b", AE_IFREG, "data/a" },
    { "data/sym", AE_IFLNK, "a" },    { "escape", AE_IFLNK, "/" },  { "etc/", AE_IFDIR, NULL },
    { "etc/passwd", AE_IFREG, NULL }, { "opq/", AE_IFDIR, NULL },   { "opq/new", AE_IFREG, NULL },
  };
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  archive_read_support_format_tar (a);
  cr_assert_eq (archive_read_open_filename (a, dest, 65536), ARCHIVE_OK);
  size_t n = 0;
  for (; archive_read_next_header (a, &e) == ARCHIVE_OK; n++)
    {
      const char *name = archive_entry_pathname (e);
      cr_assert_lt (n, sizeof want / sizeof *want, "extra entry `%s`", name);
      cr_assert_str_eq (name, want[n].name);
      /* (libarchive reads a TypeLink entry without a file type: the target has it) */
      if (want[n].type != AE_IFREG || !want[n].link)
        cr_assert_eq (archive_entry_filetype (e), want[n].type, "type of %s", name);
      else
        cr_assert_eq (archive_entry_size (e), 0, "a hardlink has no body");
      cr_assert_eq (archive_entry_mtime (e), 1234, "mtime of %s", name);
      const char *hl = archive_entry_hardlink (e), *sl = archive_entry_symlink (e);
      if (want[n].type == AE_IFLNK)
        cr_assert_str_eq (sl ? sl : "", want[n].link, "symlink %s", name);
      else if (want[n].link)
        cr_assert_str_eq (hl ? hl : "", want[n].link, "hardlink %s", name);
      else
        cr_assert_null (hl, "%s is no hardlink", name);
      if (strcmp (name, "data/a") == 0)
        {
          const char *xn;
          const void *xv;
          size_t xs;
          cr_assert_eq (archive_entry_uid (e), 1000);
          cr_assert_eq (archive_entry_perm (e), 04755);
          cr_assert_eq (archive_entry_xattr_reset (e), 1, "one xattr on data/a");
          cr_assert_eq (archive_entry_xattr_next (e, &xn, &xv, &xs), ARCHIVE_OK);
          cr_assert_str_eq (xn, "user.note");
          cr_assert (xs == 5 && memcmp (xv, "hello", 5) == 0);
          char body[16] = "";
          cr_assert_eq (archive_read_data (a, body, sizeof body), 7);
          cr_assert_str_eq (body, "shared\n");
        }
      if (strcmp (name, "data/") == 0)
        cr_assert_eq (archive_entry_perm (e), 0750);
      if (strcmp (name, "opq/new") == 0)
        cr_assert_eq (archive_entry_perm (e), 0600);
    }
  cr_assert_eq (n, sizeof want / sizeof *want, "entries: %zu", n);
  archive_read_free (a);
  /* the raw PAX record is fsutil's SCHILY.xattr.*, without libarchive's own copy */
  struct kiln_buf raw = KILN_BUF_INIT;
  cr_assert_eq (kiln_fs_read_file (AT_FDCWD, dest, 1 << 20, &raw, NULL), 0);
  cr_assert (memmem (raw.buf, raw.len, "SCHILY.xattr.user.note=hello\n", 29) != NULL);
  cr_assert (memmem (raw.buf, raw.len, "LIBARCHIVE.xattr", 16) == NULL);
  kiln_buf_release (&raw);
  /* the scratch tree is gone */
  kiln_autofree char *tmp = kiln_xasprintf ("%s/store/tmp", kiln_test_tmpdir ());
  kiln_autodir DIR *d = opendir (tmp);
  int left = 0;
  for (struct dirent *de; (de = readdir (d));)
    left += de->d_name[0] != '.';
  cr_assert_eq (left, 0, "ROOT/tmp is empty after the export");
  kiln_descriptor_clear (&img);
  kiln_store_free (st);
}

Test (export_rootfs, empty_image_is_just_the_end_marker, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_descriptor img;
  struct kiln_error *err = NULL;
  make_image (st, 0, &img);
  kiln_autofree char *dest = kiln_xasprintf ("%s/empty.tar", kiln_test_tmpdir ());
  cr_assert_eq (kiln_store_export_rootfs (st, &img, KILN_EXPORT_ROOTFS_TAR, dest, NULL, &err), 0);
  struct stat sb;
  cr_assert_eq (stat (dest, &sb), 0);
  cr_assert_eq (sb.st_size, 1024, "two zero blocks, nothing else (got %lld bytes)", (long long) sb.st_size);
  char buf[1024], zero[1024] = { 0 };
  FILE *f = fopen (dest, "rb");
  cr_assert_eq (fread (buf, 1, sizeof buf, f), sizeof buf);
  fclose (f);
  cr_assert (memcmp (buf, zero, sizeof buf) == 0);
  kiln_descriptor_clear (&img);
  kiln_store_free (st);
}

Test (export_rootfs, dir_output_keeps_links_modes_owners_and_stays_inside, .init = kiln_test_tmp_init,
      .fini = kiln_test_tmp_fini)
{
  struct kiln_store *st = kiln_test_store_open ();
  struct kiln_descriptor img;
  struct kiln_error *err = NULL;
  struct stat a, b;
  make_image (st, 2, &img);
  kiln_autofree char *outside = kiln_xasprintf ("%s/outside", kiln_test_tmpdir ());
  kiln_autofree char *dest = kiln_xasprintf ("%s/out/fs", kiln_test_tmpdir ());
  kiln_autofree char *parent = kiln_xasprintf ("%s/out", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (outside, 0755), 0);
  cr_assert_eq (mkdir (parent, 0755), 0);
  cr_assert_eq (mkdir (dest, 0755), 0);
  /* a symlink already in dest where the image has a directory: replaced, never followed */
  kiln_autofree char *trap = kiln_xasprintf ("%s/data", dest);
  cr_assert_eq (symlink (outside, trap), 0);
  cr_assert_eq (kiln_store_export_rootfs (st, &img, KILN_EXPORT_ROOTFS_DIR, dest, NULL, &err), 0, "%s",
                err ? err->msg : "");
  kiln_autodir DIR *od = opendir (outside);
  int n = 0;
  for (struct dirent *de; (de = readdir (od));)
    n += de->d_name[0] != '.';
  cr_assert_eq (n, 0, "nothing was written through the symlink");
  kiln_autofree char *pa = kiln_xasprintf ("%s/data/a", dest), *pb = kiln_xasprintf ("%s/data/b", dest);
  kiln_autofree char *ps = kiln_xasprintf ("%s/data/sym", dest), *pg = kiln_xasprintf ("%s/data/gone", dest);
  kiln_autofree char *po = kiln_xasprintf ("%s/opq/old", dest), *pn = kiln_xasprintf ("%s/opq/new", dest);
  cr_assert_eq (lstat (pa, &a), 0);
  cr_assert_eq (lstat (pb, &b), 0);
  cr_assert (S_ISREG (a.st_mode) && a.st_ino == b.st_ino, "data/b is a hardlink of data/a");
  cr_assert_eq (a.st_mode & 07777, 04755);
  if (geteuid () == 0)
    cr_assert_eq (a.st_uid, 1000, "owner kept as root");
  char note[16] = "";
  cr_assert_eq (lgetxattr (pa, "user.note", note, sizeof note - 1), 5, "user.note on data/a");
  cr_assert_str_eq (note, "hello");
  char target[16] = "";
  cr_assert_eq (readlink (ps, target, sizeof target - 1), 1);
  cr_assert_str_eq (target, "a");
  cr_assert_neq (lstat (pg, &b), 0, "whited-out file absent");
  cr_assert_neq (lstat (po, &b), 0, "opaque dir cleared");
  cr_assert_eq (lstat (pn, &b), 0);
  cr_assert_eq (b.st_mode & 07777, 0600);
  /* stdout is no directory */
  cr_assert_lt (kiln_store_export_rootfs (st, &img, KILN_EXPORT_ROOTFS_DIR, "-", NULL, &err), 0);
  kiln_error_free (&err);
  kiln_descriptor_clear (&img);
  kiln_store_free (st);
}
