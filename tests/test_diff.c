/* tests/test_diff.c - a step's changes as a layer, overlay and copy mode:
 * the layer's entries, and base layers + new layer flattened == the merged
 * view the step saw (root only). */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/diff.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "kiln/oci.h"
#include "snapshot_fixture.h"

FX_SUITE (diff);

static int
cmp_name (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The names in dfd but . and .., sorted; NULL when there are none. */
static char **
sorted_names (int dfd)
{
  DIR *d = fdopendir (openat (dfd, ".", O_RDONLY | O_DIRECTORY));
  struct dirent *de;
  char **names = NULL;
  cr_assert_not_null (d);
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      kiln_strv_push (&names, de->d_name);
  closedir (d);
  if (names)
    qsort (names, kiln_strv_len (names), sizeof *names, cmp_name);
  return names;
}

/* One line per path: type+mode owner mtime, content or target, links. */
static void
manifest (int dfd, const char *prefix, struct kiln_buf *out)
{
  struct kiln_error *err = NULL;
  char **names = sorted_names (dfd);
  for (size_t i = 0; names && names[i]; i++)
    {
      struct stat st;
      char path[4096], buf[256] = "";
      snprintf (path, sizeof path, "%s%s", prefix, names[i]);
      if (strcmp (path, "etc/hosts") == 0 || strcmp (path, "dev") == 0)
        continue;
      cr_assert_eq (fstatat (dfd, names[i], &st, AT_SYMLINK_NOFOLLOW), 0);
      if (S_ISLNK (st.st_mode))
        buf[readlinkat (dfd, names[i], buf, sizeof buf - 1)] = '\0';
      if (S_ISREG (st.st_mode))
        {
          int fd = openat (dfd, names[i], O_RDONLY);
          ssize_t n = read (fd, buf, sizeof buf - 1);
          buf[n > 0 ? n : 0] = '\0';
          close (fd);
        }
      kiln_buf_addf (out, "%s %o %u:%u %s%lld [%s] links=%d\n", path, (unsigned) st.st_mode, st.st_uid, st.st_gid,
                     S_ISDIR (st.st_mode) ? "" : "t=", S_ISDIR (st.st_mode) ? 0LL : (long long) st.st_mtime, buf,
                     S_ISREG (st.st_mode) ? (int) st.st_nlink : 0);
      if (S_ISDIR (st.st_mode))
        {
          char sub[4200];
          snprintf (sub, sizeof sub, "%s/", path);
          int fd = openat (dfd, names[i], O_RDONLY | O_DIRECTORY);
          manifest (fd, sub, out);
          close (fd);
        }
    }
  kiln_strv_free (names);
  kiln_error_free (&err);
}

static void
sh (const char *dir, const char *script)
{
  /* test-only convenience: the changes a RUN step would make */
  char cmd[8800];
  snprintf (cmd, sizeof cmd, "cd '%s' && %s", dir, script);
  cr_assert_eq (system (cmd), 0, "%s", script);
}

struct run {
  char *view;    /* manifest of merged before unmount */
  char *flat;    /* manifest of base + new layer extracted */
  char *entries; /* "name[ -> hardlink]" per tar entry */
  bool trusted_xattr;
};

static void
read_layer (struct kiln_layer_result *res, struct run *r)
{
  struct kiln_error *err = NULL;
  struct kiln_buf b = KILN_BUF_INIT;
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  int fd = kiln_store_blob_open (fx.st, &res->desc.digest, &err);
  archive_read_support_format_tar (a);
  archive_read_support_filter_gzip (a);
  cr_assert_eq (archive_read_open_fd (a, fd, 65536), ARCHIVE_OK);
  while (archive_read_next_header (a, &e) == ARCHIVE_OK)
    {
      const char *name, *hl = archive_entry_hardlink (e);
      const void *v;
      size_t sz;
      kiln_buf_addf (&b, "%s%s%s|", archive_entry_pathname (e), hl ? " -> " : "", hl ? hl : "");
      archive_entry_xattr_reset (e);
      while (archive_entry_xattr_next (e, &name, &v, &sz) == ARCHIVE_OK)
        r->trusted_xattr |= !strncmp (name, "trusted.", 8) || !strncmp (name, "user.overlay.", 13);
    }
  archive_read_free (a);
  close (fd);
  r->entries = kiln_buf_detach (&b, NULL);
}

static void
run_step (bool copy, struct run *r)
{
  char **lowers = NULL, flatdir[4200];
  struct kiln_mount *m = NULL;
  struct kiln_error *err = NULL;
  struct kiln_mount_opts o = { .force_copy = copy };
  struct kiln_layer_opts lo = { .compression = KILN_COMP_GZIP, .level = -1 };
  struct kiln_layer_result res = { 0 };
  struct kiln_buf b = KILN_BUF_INIT;
  char ex_hosts[] = "etc/hosts", ex_dev[] = "dev";
  char *exclude[] = { ex_hosts, ex_dev, NULL };

  fx_prepare (&fx, 2, &lowers);
  cr_assert_eq (kiln_snapshot_mount (fx.st, lowers, &o, &m, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (m->copy_mode, copy);
  sh (m->merged,
      "mkdir -p new/dir && echo created > new/dir/f && echo changed > a/file1 && chmod 600 a/keep"
      " && ln a/keep a/hl && rm a/del && rm -r d && rm -r dir2 && mkdir dir2 && echo y > dir2/y"
      " && mkdir etc && echo 127.0.0.1 > etc/hosts && mkdir dev && touch dev/null"
      /* fixed times: the overlay and the copy-mode run may straddle a second */
      " && touch -h -d @1000000 new new/dir new/dir/f a a/file1 a/keep dir2 dir2/y etc etc/hosts dev dev/null");
  int mfd = open (m->merged, O_RDONLY | O_DIRECTORY);
  manifest (mfd, "", &b);
  close (mfd);
  r->view = kiln_buf_detach (&b, NULL);
  cr_assert_eq (kiln_snapshot_unmount (m, &err), 0);
  cr_assert_eq (kiln_diff_write_layer (fx.st, m, &lo, exclude, NULL, &res, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_snapshot_cleanup (fx.st, m, &err), 0);
  read_layer (&res, r);

  struct kiln_descriptor all[3] = { fx.layers[0], fx.layers[1], res.desc };
  snprintf (flatdir, sizeof flatdir, "%s/flat-%d", kiln_test_tmpdir (), copy);
  cr_assert_eq (mkdir (flatdir, 0755), 0);
  int ffd = open (flatdir, O_RDONLY | O_DIRECTORY);
  cr_assert_eq (kiln_extract_layers (fx.st, all, 3, ffd, &err), 0, "%s", err ? err->msg : "");
  manifest (ffd, "", &b);
  close (ffd);
  r->flat = kiln_buf_detach (&b, NULL);
  kiln_layer_result_clear (&res);
  kiln_strv_free (lowers);
}

static void
run_clear (struct run *r)
{
  free (r->view);
  free (r->flat);
  free (r->entries);
}

static void
assert_has (const char *entries, const char *want)
{
  cr_assert (strstr (entries, want) != NULL, "`%s` missing in %s", want, entries);
}

static void
assert_common (struct run *r)
{
  cr_assert_str_eq (r->flat, r->view, "flattened:\n%s\nmerged view:\n%s", r->flat, r->view);
  assert_has (r->entries, "|.wh.d|");
  assert_has (r->entries, "|a/.wh.del|");
  assert_has (r->entries, "|a/file1|");
  assert_has (r->entries, "|a/keep -> a/hl|");
  assert_has (r->entries, "|new/dir/f|");
  assert_has (r->entries, "|dir2/y|");
  cr_assert_null (strstr (r->entries, "etc/hosts"), "%s", r->entries);
  cr_assert_null (strstr (r->entries, "dev/"), "%s", r->entries);
  cr_assert_null (strstr (r->entries, "|link"), "unchanged symlink exported: %s", r->entries);
  cr_assert_not (r->trusted_xattr);
}

Test (diff, overlay_upper_becomes_layer_with_whiteouts_and_hardlinks)
{
  struct run r = { 0 };
  run_step (false, &r);
  assert_common (&r);
  assert_has (r.entries, "|dir2/|dir2/.wh..wh..opq|");
  run_clear (&r);
}

Test (diff, copy_mode_gives_same_flattened_result)
{
  struct run ov = { 0 }, cp = { 0 };
  run_step (true, &cp);
  assert_common (&cp);
  assert_has (cp.entries, "|dir2/.wh.x|");
  run_step (false, &ov);
  cr_assert_str_eq (cp.flat, ov.flat);
  run_clear (&ov);
  run_clear (&cp);
}

/* ---- a kept upper dir is the layer's snapshot ---- */

/* Everything a snapshot holds below dir, one line per object: type and
 * mode, owner, times to the nanosecond (not for whiteouts, which overlay
 * never shows), size, content, link target, device, links, every xattr. */
static void
strict_manifest (const char *dir, const char *prefix, struct kiln_buf *out)
{
  int dfd = open (dir, O_RDONLY | O_DIRECTORY);
  cr_assert_geq (dfd, 0, "open %s", dir);
  char **names = sorted_names (dfd);
  close (dfd);
  for (size_t i = 0; names && names[i]; i++)
    {
      char path[4200], rel[4200], buf[256] = "", xl[4096];
      struct stat st;
      snprintf (path, sizeof path, "%s/%s", dir, names[i]);
      snprintf (rel, sizeof rel, "%s%s", prefix, names[i]);
      cr_assert_eq (lstat (path, &st), 0);
      bool wh = S_ISCHR (st.st_mode) && st.st_rdev == 0;
      if (S_ISLNK (st.st_mode))
        buf[readlink (path, buf, sizeof buf - 1)] = '\0';
      if (S_ISREG (st.st_mode))
        {
          int fd = open (path, O_RDONLY);
          ssize_t n = read (fd, buf, sizeof buf - 1);
          buf[n > 0 ? n : 0] = '\0';
          close (fd);
        }
      kiln_buf_addf (out, "%s %o %u:%u rdev=%lu", rel, (unsigned) st.st_mode, st.st_uid, st.st_gid,
                     (unsigned long) st.st_rdev);
      if (!wh)
        kiln_buf_addf (out, " t=%lld.%09ld", (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
      if (!S_ISDIR (st.st_mode))
        kiln_buf_addf (out, " size=%lld links=%lu [%s]", (long long) st.st_size, (unsigned long) st.st_nlink, buf);
      ssize_t xn = llistxattr (path, xl, sizeof xl);
      char **xs = NULL;
      for (char *p = xl; xn > 0 && p < xl + xn; p += strlen (p) + 1)
        {
          char v[256];
          ssize_t vn = lgetxattr (path, p, v, sizeof v - 1);
          v[vn > 0 ? vn : 0] = '\0';
          kiln_strv_push_take (&xs, kiln_xasprintf ("%s=%s", p, v));
        }
      if (xs)
        qsort (xs, kiln_strv_len (xs), sizeof *xs, cmp_name);
      for (size_t j = 0; xs && xs[j]; j++)
        kiln_buf_addf (out, " %s", xs[j]);
      kiln_strv_free (xs);
      kiln_buf_adds (out, "\n");
      if (S_ISDIR (st.st_mode))
        {
          char sub[4300];
          snprintf (sub, sizeof sub, "%s/", rel);
          strict_manifest (path, sub, out);
        }
    }
  kiln_strv_free (names);
}

static void
set_xattr (const char *merged, const char *rel, const char *name, const char *value)
{
  char p[4200];
  snprintf (p, sizeof p, "%s/%s", merged, rel);
  cr_assert_eq (lsetxattr (p, name, value, strlen (value), 0), 0, "%s on %s", name, rel);
}

/* The step runs on overlay, the diff writes its layer keeping the upper dir,
 * and the kept snapshot must equal, object for object, what extracting the
 * layer's blob gives (as kiln_snapshot_prepare would for a cache hit). */
static void
keep_matches_extraction (const struct kiln_layer_opts *lo, char **kept_out)
{
  char **lowers = NULL, xdir[4200], kdir[8400];
  struct kiln_mount *m = NULL;
  struct kiln_error *err = NULL;
  struct kiln_layer_result res = { 0 };
  struct kiln_buf a = KILN_BUF_INIT, b = KILN_BUF_INIT;
  char ex_hosts[] = "etc/hosts", ex_dev[] = "dev", ex_stub[] = "opq/stub";
  char *exclude[] = { ex_hosts, ex_dev, ex_stub, NULL };
  bool keep = true;

  fx_prepare (&fx, 2, &lowers);
  cr_assert_eq (kiln_snapshot_mount (fx.st, lowers, NULL, &m, &err), 0, "%s", err ? err->msg : "");
  cr_assert_not (m->copy_mode);
  sh (m->merged, "mkdir -p new/dir && echo created > new/dir/f && echo changed >> a/file1 && chmod 600 a/keep"
                 " && ln a/keep a/hl && rm a/del && rm -r dir2 && mkdir dir2 && echo y > dir2/y && mkfifo new/fifo"
                 " && ln -s dir new/sym && touch -h link && mkdir etc && echo 127.0.0.1 > etc/hosts"
                 " && mkdir dev && touch dev/null && touch opq/stub"
                 " && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"new/sock\")'");
  set_xattr (m->merged, "new/dir/f", "user.keep", "1");
  set_xattr (m->merged, "new/dir", "user.dirkeep", "2");
  set_xattr (m->merged, "new/dir/f", "trusted.drop", "x");
  cr_assert_eq (kiln_snapshot_unmount (m, &err), 0);
  cr_assert_eq (kiln_diff_write_layer (fx.st, m, lo, exclude, &keep, &res, &err), 0, "%s", err ? err->msg : "");
  cr_assert (keep, "the upper dir could not be kept");
  char *ids[] = { fx.diff_ids[0], fx.diff_ids[1], res.diff_id.s, NULL };
  cr_assert_eq (kiln_snapshot_keep_upper (fx.st, m, ids, 3, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq (kiln_snapshot_cleanup (fx.st, m, &err), 0);

  struct kiln_digest chain;
  kiln_oci_chain_id (ids, 3, &chain);
  snprintf (kdir, sizeof kdir, "%s/snapshots/%s", kiln_store_root (fx.st), kiln_digest_hex (&chain));
  snprintf (xdir, sizeof xdir, "%s/extracted", kiln_test_tmpdir ());
  cr_assert_eq (mkdir (xdir, 0755), 0);
  int xfd = open (xdir, O_RDONLY | O_DIRECTORY), bfd = kiln_store_blob_open (fx.st, &res.desc.digest, &err);
  struct kiln_extract_opts xo = { .overlay_whiteouts = true, .keep_owner = true };
  cr_assert_eq (kiln_extract_fd (bfd, "layer", xfd, &xo, &err), 0, "%s", err ? err->msg : "");
  close (bfd);
  close (xfd);
  strict_manifest (kdir, "", &a);
  strict_manifest (xdir, "", &b);
  cr_assert_str_eq (a.buf, b.buf, "kept:\n%s\nextracted:\n%s", a.buf, b.buf);
  *kept_out = kiln_buf_detach (&a, NULL);
  kiln_buf_release (&b);
  kiln_layer_result_clear (&res);
  kiln_strv_free (lowers);
}

Test (diff, overlay_kept_upper_is_what_extracting_the_layer_gives)
{
  struct kiln_layer_opts lo = { .compression = KILN_COMP_GZIP, .level = -1 };
  char *kept = NULL;
  keep_matches_extraction (&lo, &kept);
  /* what the comparison covered: not vacuous */
  assert_has (kept, "new/dir/f 100644 0:0");
  assert_has (kept, "user.keep=1");
  assert_has (kept, "user.dirkeep=2");
  assert_has (kept, "dir2 40755");
  assert_has (kept, "trusted.overlay.opaque=y user.overlay.opaque=y");
  assert_has (kept, "a/del 20000");
  assert_has (kept, "new/fifo 10644");
  cr_assert_null (strstr (kept, "trusted.drop"), "%s", kept);
  cr_assert_null (strstr (kept, "etc/hosts"), "%s", kept);
  cr_assert_null (strstr (kept, "\ndev"), "%s", kept);
  cr_assert_null (strstr (kept, "\nopq"), "mount-point-only dir kept: %s", kept);
  cr_assert_null (strstr (kept, "sock"), "%s", kept);
  cr_assert_null (strstr (kept, "origin"), "%s", kept);
  free (kept);
}

Test (diff, overlay_kept_upper_takes_clamped_mtimes)
{
  struct kiln_layer_opts lo = { .compression = KILN_COMP_GZIP, .level = -1, .clamp_mtime = true, .epoch = 1500000 };
  char *kept = NULL;
  keep_matches_extraction (&lo, &kept);
  assert_has (kept, "new/dir/f 100644 0:0 rdev=0 t=1500000.000000000");
  free (kept);
}
