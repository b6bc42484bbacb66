/* fuzz_extract - the tar extractor on hostile archives (src/image/extract.c).
 *
 * Input: one flag byte (whiteouts, overlay whiteouts, keep owners, ADD
 * --chown, stream or file reader, fix header checksums), then the archive
 * (plain or compressed).  Most mutations of a tar header break its
 * checksum and never reach kiln's code; with flag 0x20 the checksum of
 * every header is recomputed first, so they do.
 * It is extracted into BASE/root; beside the root sit BASE/tripwire/secret
 * (the tests' relative way out, "../tripwire") and BASE/parent-secret.
 * Escape oracle: after the extraction BASE holds exactly root, tripwire and
 * parent-secret, tripwire holds exactly secret, and both secrets keep their
 * type, mode, owner and content; nothing was created outside the root. */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/extract.h"
#include "kiln/fs.h"

#define SECRET "secret\n"

static char base[64];
static int basefd = -1;

static void
put_secret (int dirfd, const char *name)
{
  int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
  if (fd < 0 || write (fd, SECRET, strlen (SECRET)) != (ssize_t) strlen (SECRET))
    abort ();
  close (fd);
}

/* The scratch directory goes when the run ends (libFuzzer exits normally
 * at -max_total_time; a crash leaves it for inspection). */
static void
remove_scratch (void)
{
  struct kiln_error *err = NULL;
  kiln_fs_rm_rf_at (AT_FDCWD, base, &err);
  kiln_error_free (&err);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc, (void) argv;
  snprintf (base, sizeof base, "/tmp/kiln-fuzz-extract-XXXXXX");
  if (mkdtemp (base) == NULL)
    abort ();
  basefd = open (base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (basefd < 0 || mkdirat (basefd, "tripwire", 0755) < 0)
    abort ();
  int tfd = openat (basefd, "tripwire", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  put_secret (tfd, "secret");
  close (tfd);
  put_secret (basefd, "parent-secret");
  atexit (remove_scratch);
  return 0;
}

/* The names in dir (dirfd's "name"), sorted, joined by '/'; "?" when unreadable. */
static void
listing (int dirfd, const char *name, char *out, size_t max)
{
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct dirent **v = NULL;
  size_t o = 0;
  out[0] = '\0';
  if (fd < 0)
    {
      snprintf (out, max, "?");
      return;
    }
  char path[64];
  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  int n = scandir (path, &v, NULL, alphasort);
  for (int i = 0; i < n; i++)
    {
      if (strcmp (v[i]->d_name, ".") && strcmp (v[i]->d_name, ".."))
        o += (size_t) snprintf (out + o, o < max ? max - o : 0, "%s/", v[i]->d_name);
      free (v[i]);
    }
  free (v);
  close (fd);
}

static void
check_secret (int dirfd, const char *name)
{
  struct stat st;
  char buf[64];
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    fuzz_fail ("%s was removed", name);
  if (!S_ISREG (st.st_mode) || (st.st_mode & 07777) != 0400 || st.st_uid != getuid () || st.st_nlink != 1)
    fuzz_fail ("%s changed: mode %o, uid %u, links %lu", name, (unsigned) st.st_mode, (unsigned) st.st_uid,
               (unsigned long) st.st_nlink);
  int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read (fd, buf, sizeof buf) : -1;
  if (fd >= 0)
    close (fd);
  if (n != (ssize_t) strlen (SECRET) || memcmp (buf, SECRET, (size_t) n) != 0)
    fuzz_fail ("%s content changed", name);
}

static void
check_confined (void)
{
  char l[512];
  listing (basefd, ".", l, sizeof l);
  if (strcmp (l, "parent-secret/root/tripwire/") != 0)
    fuzz_fail ("something was created beside the root: %s", l);
  listing (basefd, "tripwire", l, sizeof l);
  if (strcmp (l, "secret/") != 0)
    fuzz_fail ("something was created in ../tripwire: %s", l);
  check_secret (basefd, "parent-secret");
  int tfd = openat (basefd, "tripwire", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  check_secret (tfd, "secret");
  close (tfd);
}

/* Walks the ustar headers of a plain tar and writes each one's checksum
 * (sum of the header bytes with the checksum field as blanks). */
static void
fix_checksums (uint8_t *t, size_t n)
{
  for (size_t o = 0; o + 512 <= n;)
    {
      uint8_t *h = t + o;
      unsigned sum = 0;
      unsigned long long size = 0;
      memset (h + 148, ' ', 8);
      for (size_t i = 0; i < 512; i++)
        sum += h[i];
      snprintf ((char *) h + 148, 8, "%06o", sum & 0777777);
      h[155] = ' ';
      for (size_t i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
        size = size * 8 + (unsigned) (h[i] - '0');
      /* pax and GNU long-name headers are followed by their data too */
      if (size > n)
        break;
      o += 512 + (size + 511) / 512 * 512;
    }
}

struct mem {
  const uint8_t *p;
  size_t n, pos;
};

/* Hands the archive over in pieces of varying size, as a download does. */
static ssize_t
mem_read (void *opaque, const void **out, struct kiln_error **err)
{
  (void) err;
  struct mem *m = opaque;
  size_t chunk = 1 + (m->pos * 7 + 511) % 4096;
  if (m->pos >= m->n)
    return 0;
  if (chunk > m->n - m->pos)
    chunk = m->n - m->pos;
  *out = m->p + m->pos;
  m->pos += chunk;
  return (ssize_t) chunk;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned flags = data[0];
  uint8_t *copy = NULL;
  data++, size--;
  if (flags & 0x20)
    {
      copy = malloc (size ? size : 1);
      if (copy == NULL)
        abort ();
      memcpy (copy, data, size);
      fix_checksums (copy, size);
      data = copy;
    }
  struct kiln_extract_opts o = {
    .whiteouts = flags & 1,
    .overlay_whiteouts = flags & 2,
    .keep_owner = flags & 4,
    .has_chown = flags & 8,
    .uid = 1000,
    .gid = 1000,
  };
  struct kiln_error *err = NULL;
  if (mkdirat (basefd, "root", 0755) < 0)
    abort ();
  int rootfd = openat (basefd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (flags & 16)
    {
      struct mem m = { data, size, 0 };
      kiln_extract_stream (mem_read, &m, false, "fuzz.tar", rootfd, &o, &err);
    }
  else
    {
      int fd = memfd_create ("fuzz.tar", MFD_CLOEXEC);
      if (fd < 0 || (size && write (fd, data, size) != (ssize_t) size) || lseek (fd, 0, SEEK_SET) != 0)
        abort ();
      kiln_extract_is_archive (fd);
      kiln_extract_fd (fd, "fuzz.tar", rootfd, &o, &err);
      close (fd);
    }
  kiln_error_free (&err);
  free (copy);
  close (rootfd);
  check_confined ();
  if (kiln_fs_rm_rf_at (basefd, "root", &err) < 0)
    fuzz_fail ("cannot remove the extracted root: %s", err->msg);
  return 0;
}
