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
#include <unistd.h>
#include "helpers.h"
#include "kiln/buf.h"
#include "kiln/diff.h"
#include "kiln/extract.h"
#include "kiln/fs.h"
#include "snapshot_fixture.h"

FX_SUITE (diff);

static int
cmp_name (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* One line per path: type+mode owner mtime, content or target, links. */
static void
manifest (int dfd, const char *prefix, struct kiln_buf *out)
{
  struct kiln_error *err = NULL;
  DIR *d = fdopendir (openat (dfd, ".", O_RDONLY | O_DIRECTORY));
  struct dirent *de;
  char **names = NULL;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      kiln_strv_push (&names, de->d_name);
  closedir (d);
  if (names)
    qsort (names, kiln_strv_len (names), sizeof *names, cmp_name);
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
  cr_assert_eq (kiln_diff_write_layer (fx.st, m, &lo, exclude, &res, &err), 0, "%s", err ? err->msg : "");
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
