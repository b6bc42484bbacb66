/* fuzz_passwd - user and group resolution against an image's /etc/passwd
 * and /etc/group (src/rootfs/passwd.c).
 *
 * Input: one flag byte, then "PASSWD\0GROUP\0SPEC": the two files are
 * written into a scratch root and SPEC ("user[:group]") is resolved with
 * the flags' same_gid/with_groups; without SPEC, the first name of each
 * passwd and group line is tried too.  Oracles: the sanitizers, and that a
 * numeric spec resolves to its numbers whatever the files hold. */
#include "fuzz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/fs.h"
#include "kiln/passwd.h"

static char root_dir[64];
static int rootfd = -1;

static void
remove_scratch (void)
{
  struct kiln_error *err = NULL;
  kiln_fs_rm_rf_at (AT_FDCWD, root_dir, &err);
  kiln_error_free (&err);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc, (void) argv;
  snprintf (root_dir, sizeof root_dir, "/tmp/kiln-fuzz-passwd-XXXXXX");
  if (mkdtemp (root_dir) == NULL)
    abort ();
  rootfd = open (root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0 || mkdirat (rootfd, "etc", 0755) < 0)
    abort ();
  atexit (remove_scratch);
  return 0;
}

static void
put (const char *name, const char *data, size_t n)
{
  int fd = openat (rootfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write (fd, data, n) != (ssize_t) n)
    abort ();
  close (fd);
}

static void
resolve (const char *spec, unsigned flags)
{
  struct kiln_passwd_ids ids = { 0 };
  struct kiln_error *err = NULL;
  bool same_gid = flags & 1, with_groups = flags & 2;
  kiln_passwd_spec_has_names (spec);
  if (kiln_passwd_resolve (rootfd, spec, same_gid, with_groups, &ids, &err) == 0)
    kiln_passwd_ids_clear (&ids);
  kiln_error_free (&err);
}

/* The first field of every line of text, resolved as a user (passwd) or
 * as "0:group" (group). */
static void
resolve_names (const char *text, size_t len, bool group, unsigned flags)
{
  size_t i = 0;
  while (i < len)
    {
      const char *nl = memchr (text + i, '\n', len - i);
      size_t n = nl ? (size_t) (nl - (text + i)) : len - i;
      size_t f = strcspn (text + i, ":\n");
      if (f > n)
        f = n;
      if (f > 0 && f < 256)
        {
          char spec[300];
          snprintf (spec, sizeof spec, "%s%.*s", group ? "0:" : "", (int) f, text + i);
          resolve (spec, flags);
        }
      i += n + 1;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned flags = data[0];
  char *parts[3];
  size_t lens[3];
  size_t n = fuzz_split (data + 1, size - 1, parts, lens, 3);
  put ("etc/passwd", parts[0], lens[0]);
  put ("etc/group", parts[1], lens[1]);
  if (n == 3 && lens[2] > 0)
    resolve (parts[2], flags);
  else
    {
      resolve_names (parts[0], lens[0], false, flags);
      resolve_names (parts[1], lens[1], true, flags);
    }
  /* numbers need no files: 1000:1000 is 1000:1000 whatever the image says */
  struct kiln_passwd_ids ids = { 0 };
  struct kiln_error *err = NULL;
  if (kiln_passwd_resolve (rootfd, "1234:5678", flags & 1, false, &ids, &err) < 0)
    fuzz_fail ("1234:5678 does not resolve: %s", err->msg);
  if (ids.uid != 1234 || ids.gid != 5678)
    fuzz_fail ("1234:5678 resolves to %u:%u", (unsigned) ids.uid, (unsigned) ids.gid);
  kiln_passwd_ids_clear (&ids);
  fuzz_free_parts (parts, 3);
  return 0;
}
