/* tests/fuzz/replay.c - runs a fuzz target without libFuzzer: every file
 * named on the command line, or found (non-recursively) in a directory named
 * there, is passed once to LLVMFuzzerTestOneInput.  `make fuzz-replay`
 * links it with each tests/fuzz/fuzz_TARGET.c (gcc, build/fuzz-replay/TARGET)
 * and replays testdata/fuzz/TARGET/ and testdata/fuzz/seeds/TARGET/, so a
 * fixed finding cannot come back unnoticed; `make fuzz-replay-asan` does the
 * same under ASan+UBSan.
 *
 *   replay [-t SECONDS] DIR|FILE...
 *
 * -t stops starting new inputs after SECONDS (a CI time budget); a crash or
 * a failed oracle aborts and names the input.  Missing
 * paths are skipped: a target need not have regressions yet. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

__attribute__ ((weak)) int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc, (void) argv;
  return 0;
}

/* in the sanitizer runtimes; absent (NULL) in a plain build */
void __sanitizer_set_death_callback (void (*cb) (void)) __attribute__ ((weak));

static double deadline; /* 0: none */
static size_t ran;
static const char *current; /* the input being run, named when it crashes */

static void
name_current (void)
{
  if (current)
    {
      static const char msg[] = "\nreplay: the failing input is ";
      if (write (2, msg, sizeof msg - 1) < 0 || write (2, current, strlen (current)) < 0 || write (2, "\n", 1) < 0)
        return;
    }
}

static void
on_fatal (int sig)
{
  name_current ();
  signal (sig, SIG_DFL);
  raise (sig);
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
run_file (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      fprintf (stderr, "replay: cannot open %s: %s\n", path, strerror (errno));
      return -1;
    }
  size_t n = (size_t) st.st_size;
  uint8_t *buf = malloc (n ? n : 1);
  size_t got = 0;
  while (buf && got < n)
    {
      ssize_t r = read (fd, buf + got, n - got);
      if (r <= 0)
        break;
      got += (size_t) r;
    }
  close (fd);
  if (buf == NULL || got != n)
    {
      fprintf (stderr, "replay: cannot read %s\n", path);
      free (buf);
      return -1;
    }
  current = path;
  LLVMFuzzerTestOneInput (buf, n);
  current = NULL;
  free (buf);
  ran++;
  return 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
run_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0;
  int ret = 0;
  if (d == NULL)
    return 0;
  while ((de = readdir (d)))
    {
      if (de->d_name[0] == '.')
        continue;
      size_t len = strlen (dir) + strlen (de->d_name) + 2;
      names = realloc (names, (n + 1) * sizeof *names);
      if (names == NULL || (names[n] = malloc (len)) == NULL)
        abort ();
      snprintf (names[n++], len, "%s/%s", dir, de->d_name);
    }
  closedir (d);
  if (n > 1) /* qsort (NULL, 0) is undefined: an empty corpus directory */
    qsort (names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++)
    {
      if (ret == 0 && (deadline == 0 || now () < deadline))
        ret = run_file (names[i]);
      free (names[i]);
    }
  free (names);
  return ret;
}

int
main (int argc, char **argv)
{
  int i = 1, ret = 0;
  if (argc > 2 && strcmp (argv[1], "-t") == 0)
    {
      deadline = now () + atof (argv[2]);
      i = 3;
    }
  /* a sanitizer reports faults itself (its handlers must stay), then dies */
  if (__sanitizer_set_death_callback)
    __sanitizer_set_death_callback (name_current);
  else
    {
      signal (SIGSEGV, on_fatal);
      signal (SIGBUS, on_fatal);
      signal (SIGFPE, on_fatal);
    }
  signal (SIGABRT, on_fatal);
  LLVMFuzzerInitialize (&argc, &argv);
  for (; i < argc && ret == 0; i++)
    {
      struct stat st;
      if (stat (argv[i], &st) < 0)
        continue;
      ret = S_ISDIR (st.st_mode) ? run_dir (argv[i]) : run_file (argv[i]);
    }
  fprintf (stderr, "replay: %s: %zu inputs\n", argv[0], ran);
  return ret ? 1 : 0;
}
