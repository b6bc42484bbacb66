/* tests/helper_init.c - a static program run inside sandboxes by the tests:
 * `helper_init CMD ARGS...` reports what the sandbox looks like.
 *   fds            list open fds (one per line)
 *   env            print the environment
 *   id             print uid gid and groups
 *   pid            print its pid (1 in a fresh PID namespace)
 *   cwd            print the working directory
 *   hostname       print the hostname
 *   exit N         exit with status N
 *   write PATH TXT write TXT to PATH
 *   cat PATH       print PATH
 *   sleep N        sleep N seconds
 *   mounts         print /proc/self/mountinfo */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int
cat (const char *path)
{
  FILE *f = fopen (path, "r");
  char buf[4096];
  size_t n;
  if (!f)
    return perror (path), 1;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    fwrite (buf, 1, n, stdout);
  fclose (f);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return 2;
  const char *c = argv[1];
  if (!strcmp (c, "fds"))
    {
      DIR *d = opendir ("/proc/self/fd");
      struct dirent *de;
      if (!d)
        return perror ("/proc/self/fd"), 1;
      while ((de = readdir (d)))
        if (de->d_name[0] != '.' && atoi (de->d_name) != dirfd (d))
          printf ("%s\n", de->d_name);
      closedir (d);
      return 0;
    }
  if (!strcmp (c, "env"))
    {
      for (char **e = environ; *e; e++)
        printf ("%s\n", *e);
      return 0;
    }
  if (!strcmp (c, "id"))
    {
      gid_t g[64];
      int n = getgroups (64, g);
      printf ("%d %d", (int) getuid (), (int) getgid ());
      for (int i = 0; i < n; i++)
        printf (" %d", (int) g[i]);
      printf ("\n");
      return 0;
    }
  if (!strcmp (c, "pid"))
    return printf ("%d\n", (int) getpid ()), 0;
  if (!strcmp (c, "cwd"))
    {
      char buf[4096];
      return printf ("%s\n", getcwd (buf, sizeof buf) ? buf : "?"), 0;
    }
  if (!strcmp (c, "hostname"))
    {
      char buf[256];
      gethostname (buf, sizeof buf);
      return printf ("%s\n", buf), 0;
    }
  if (!strcmp (c, "exit") && argc > 2)
    return atoi (argv[2]);
  if (!strcmp (c, "write") && argc > 3)
    {
      FILE *f = fopen (argv[2], "w");
      if (!f)
        return perror (argv[2]), 1;
      fputs (argv[3], f);
      return fclose (f) ? 1 : 0;
    }
  if (!strcmp (c, "cat") && argc > 2)
    return cat (argv[2]);
  if (!strcmp (c, "sleep") && argc > 2)
    return sleep ((unsigned) atoi (argv[2])), 0;
  if (!strcmp (c, "stat") && argc > 2)
    {
      struct stat st;
      if (lstat (argv[2], &st) < 0)
        return perror (argv[2]), 1;
      return printf ("%o %d %d %lld\n", (unsigned) st.st_mode, (int) st.st_uid, (int) st.st_gid,
                     (long long) st.st_size),
             0;
    }
  if (!strcmp (c, "mounts"))
    return cat ("/proc/self/mountinfo");
  return 2;
}
