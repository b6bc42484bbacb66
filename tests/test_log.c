/* test_log.c - log lines written from several threads at once stay whole
 * (a pull's layers and stages running at once log concurrently). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "helpers.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/util.h"

TestSuite (log, .init = kiln_test_tmp_init, .fini = kiln_test_tmp_fini);

#define THREADS 4
#define LINES 2000

static void *
writer (void *arg)
{
  int id = (int) (intptr_t) arg;
  for (int i = 0; i < LINES; i++)
    kiln_log_debug ("thread %d line %d %s", id, i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  return NULL;
}

Test (log, lines_from_several_threads_are_not_interleaved)
{
  kiln_autofree char *path = kiln_xasprintf ("%s/log", kiln_test_tmpdir ());
  fflush (stderr);
  int saved = dup (2);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  cr_assert (saved >= 0 && fd >= 0);
  cr_assert_eq (dup2 (fd, 2), 2);
  close (fd);
  /* a small full buffer: each line goes out in several writes, so a line
   * another thread cut into shows in the file */
  char buf[64];
  setvbuf (stderr, buf, _IOFBF, sizeof buf);
  enum kiln_log_level old = kiln_log_get_level ();
  kiln_log_set_level (KILN_LOG_DEBUG);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    cr_assert_eq (pthread_create (&th[t], NULL, writer, (void *) (intptr_t) t), 0);
  for (int t = 0; t < THREADS; t++)
    pthread_join (th[t], NULL);
  kiln_log_set_level (old);
  fflush (stderr);
  setvbuf (stderr, NULL, _IONBF, 0);
  dup2 (saved, 2);
  close (saved);

  FILE *f = fopen (path, "r");
  cr_assert_not_null (f);
  char line[256];
  int n = 0, id, i;
  char tail[64];
  while (fgets (line, sizeof line, f))
    {
      cr_assert_eq (sscanf (line, "kiln: debug: thread %d line %d %63s\n", &id, &i, tail), 3, "torn line: %s", line);
      cr_assert_str_eq (tail, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "torn line: %s", line);
      cr_assert (strncmp (line, "kiln: debug: thread ", 20) == 0, "torn line: %s", line);
      n++;
    }
  fclose (f);
  cr_assert_eq (n, THREADS * LINES);
}
