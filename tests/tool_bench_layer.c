/* tool_bench_layer.c - time the layer writer on real files (not a unit test).
 *
 *   bench_layer [-c gzip|zstd|none] [-l LEVEL] [-r RUNS] STORE_DIR FILE...
 *
 * Writes one layer holding FILE... (by base name) into the store at
 * STORE_DIR, RUNS times per compression (all three without -c), and prints
 * one line per run: compression, input MiB, seconds, MiB/s of input, blob
 * bytes, CPU seconds and peak RSS.  KILN_THREADS sets the compression
 * threads.  The time includes the store's fsync of the blob; put STORE_DIR
 * on tmpfs (/dev/shm) to leave the disk out.  Build by hand:
 *
 *   cc -std=gnu11 -O2 -D_GNU_SOURCE -Iinclude -o /tmp/bench_layer tests/tool_bench_layer.c \
 *      build/libkiln.a $(pkg-config --libs libarchive libcrypto libzstd jansson libcurl zlib libisal) -lpthread
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "kiln/error.h"
#include "kiln/layer.h"
#include "kiln/store.h"

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
cpu_seconds (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec
         + (double) ru.ru_stime.tv_usec / 1e6;
}

static int
add_file (struct kiln_layer_writer *w, const char *path, uint64_t *total, struct kiln_error **err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "open `%s`", path);
  struct stat sb;
  fstat (fd, &sb);
  const char *base = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
  struct kiln_layer_entry e = { .path = base, .mode = S_IFREG | 0644, .mtime = 1, .size = (uint64_t) sb.st_size };
  int r = kiln_layer_writer_add (w, &e, fd, err);
  close (fd);
  *total += (uint64_t) sb.st_size;
  return r;
}

static int
run_once (struct kiln_store *st, enum kiln_compression c, int level, char **files, int nfiles, const char *name)
{
  struct kiln_error *err = NULL;
  struct kiln_layer_opts opts = { .compression = c, .level = level };
  struct kiln_layer_writer *w = NULL;
  struct kiln_layer_result res = { 0 };
  uint64_t total = 0;
  double t0 = now (), c0 = cpu_seconds ();
  int r = kiln_layer_writer_new (st, &opts, &w, &err);
  for (int i = 0; r == 0 && i < nfiles; i++)
    r = add_file (w, files[i], &total, &err);
  if (r == 0)
    r = kiln_layer_writer_finish (w, &res, &err);
  kiln_layer_writer_free (w);
  if (r < 0)
    {
      fprintf (stderr, "bench_layer: %s: %s\n", name, err->msg);
      kiln_error_free (&err);
      return 1;
    }
  double dt = now () - t0, cpu = cpu_seconds () - c0;
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  double mib = (double) total / 1048576.0;
  printf ("%-5s %8.1f MiB  %6.3f s  %7.1f MiB/s  blob %12lld  cpu %6.2f s  maxrss %ld KiB  %s\n", name, mib, dt,
          mib / dt, (long long) res.desc.size, cpu, ru.ru_maxrss, res.desc.digest.s + 7);
  kiln_layer_result_clear (&res);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *only = NULL;
  int level = -1, runs = 1, opt;
  while ((opt = getopt (argc, argv, "c:l:r:")) != -1)
    {
      if (opt == 'c')
        only = optarg;
      else if (opt == 'l')
        level = (int) strtol (optarg, NULL, 10);
      else if (opt == 'r')
        runs = (int) strtol (optarg, NULL, 10);
      else
        return 2;
    }
  if (argc - optind < 2)
    {
      fprintf (stderr, "usage: bench_layer [-c gzip|zstd|none] [-l LEVEL] [-r RUNS] STORE_DIR FILE...\n");
      return 2;
    }
  struct kiln_error *err = NULL;
  struct kiln_store *st = NULL;
  if (kiln_store_open (argv[optind], &st, &err) < 0)
    {
      fprintf (stderr, "bench_layer: %s\n", err->msg);
      return 1;
    }
  const char *names[] = { "gzip", "zstd", "none" };
  int rc = 0;
  for (int k = 0; k < 3; k++)
    {
      if (only != NULL && strcmp (only, names[k]) != 0)
        continue;
      enum kiln_compression c;
      kiln_compression_parse (names[k], &c, &err);
      for (int i = 0; i < runs; i++)
        rc |= run_once (st, c, level, argv + optind + 1, argc - optind - 1, names[k]);
    }
  kiln_store_free (st);
  return rc;
}
