/* userns.c - rootless mode: enter a user + mount namespace as uid 0, mapping
 * subordinate ids through newuidmap/newgidmap, or only the caller's own id. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/userns.h"
#include "kiln/util.h"

#define SUBID_MAX (1u << 20)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* One id kind: uid or gid. */
struct idmap {
  const char *kind;        /* "uid" / "gid" */
  const char *subid_file;  /* /etc/subuid */
  const char *helper_name; /* newuidmap */
  const char *proc_map;    /* /proc/self/uid_map */
  unsigned long id;
  struct kiln_userns_range *ranges;
  size_t nranges;
  char *helper; /* full path, or NULL */
  char **argv;  /* helper command line, or NULL to map one id */
  char *why;    /* why the fallback is used */
};

bool
kiln_userns_needed (void)
{
  return geteuid () != 0;
}

static bool
parse_ul (const char *s, size_t len, unsigned long *out)
{
  char buf[32];
  char *end;
  if (len == 0 || len >= sizeof buf || s[0] < '0' || s[0] > '9')
    return false;
  memcpy (buf, s, len);
  buf[len] = '\0';
  errno = 0;
  *out = strtoul (buf, &end, 10);
  return errno == 0 && *end == '\0';
}

/* One "owner:start:count" line (without the newline). */
static bool
parse_line (const char *l, size_t len, const char *name, const char *idstr, struct kiln_userns_range *r)
{
  const char *c1 = memchr (l, ':', len);
  const char *c2 = c1 ? memchr (c1 + 1, ':', len - (size_t) (c1 + 1 - l)) : NULL;
  if (!c2)
    return false;
  size_t olen = (size_t) (c1 - l);
  bool mine = (name && strlen (name) == olen && !memcmp (l, name, olen))
              || (strlen (idstr) == olen && !memcmp (l, idstr, olen));
  return mine && parse_ul (c1 + 1, (size_t) (c2 - c1 - 1), &r->start)
         && parse_ul (c2 + 1, len - (size_t) (c2 + 1 - l), &r->count) && r->count > 0;
}

size_t
kiln_userns_parse_subid (const char *text, const char *name, unsigned long id, struct kiln_userns_range **ranges,
                         size_t *n)
{
  char idstr[32];
  size_t added = 0;
  snprintf (idstr, sizeof idstr, "%lu", id);
  for (const char *l = text; l && *l;)
    {
      const char *nl = strchrnul (l, '\n');
      struct kiln_userns_range r;
      if (parse_line (l, (size_t) (nl - l), name, idstr, &r))
        {
          *ranges = kiln_xrealloc (*ranges, (*n + 1) * sizeof **ranges);
          (*ranges)[(*n)++] = r;
          added++;
        }
      l = *nl ? nl + 1 : nl;
    }
  return added;
}

static char *
find_helper (const char *name)
{
  const char *path = getenv ("PATH");
  kiln_autofree char *copy = kiln_xstrdup (path && *path ? path : DEFAULT_PATH);
  char *save = NULL;
  for (char *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save))
    {
      char *p = kiln_xasprintf ("%s/%s", d, name);
      if (d[0] == '/' && access (p, X_OK) == 0)
        return p;
      free (p);
    }
  return NULL;
}

/* newuidmap PID 0 ID 1  1 START COUNT  ... : root is the caller, the
 * subordinate ranges follow from 1 upwards. */
static void
build_helper_argv (struct idmap *m, pid_t pid)
{
  unsigned long inside = 1;
  kiln_strv_push (&m->argv, m->helper);
  kiln_strv_push_take (&m->argv, kiln_xasprintf ("%ld", (long) pid));
  kiln_strv_push_take (&m->argv, kiln_xasprintf ("0 %lu 1", m->id));
  for (size_t i = 0; i < m->nranges; i++)
    {
      kiln_strv_push_take (&m->argv, kiln_xasprintf ("%lu %lu %lu", inside, m->ranges[i].start, m->ranges[i].count));
      inside += m->ranges[i].count;
    }
  /* the helpers take separate words: split "a b c" into three arguments */
  char **words = NULL;
  for (size_t i = 0; m->argv[i]; i++)
    {
      char *save = NULL;
      for (char *w = strtok_r (m->argv[i], " ", &save); w; w = strtok_r (NULL, " ", &save))
        kiln_strv_push (&words, w);
    }
  kiln_strv_free (m->argv);
  m->argv = words;
}

static void
idmap_plan (struct idmap *m, const char *user, pid_t pid)
{
  struct kiln_buf b = KILN_BUF_INIT;
  struct kiln_error *err = NULL;
  if (kiln_fs_read_file (AT_FDCWD, m->subid_file, SUBID_MAX, &b, &err) == 0)
    kiln_userns_parse_subid (b.buf, user, m->id, &m->ranges, &m->nranges);
  kiln_error_free (&err);
  kiln_buf_release (&b);
  if (m->nranges == 0)
    {
      m->why = kiln_xasprintf ("no subordinate %ss for `%s` in %s", m->kind, user ? user : "?", m->subid_file);
      return;
    }
  m->helper = find_helper (m->helper_name);
  if (!m->helper)
    {
      m->why = kiln_xasprintf ("`%s` not found (install the uidmap package)", m->helper_name);
      return;
    }
  build_helper_argv (m, pid);
}

static void
idmap_clear (struct idmap *m)
{
  free (m->ranges);
  free (m->helper);
  kiln_strv_free (m->argv);
  free (m->why);
}

static int
run_helper (char **argv)
{
  pid_t pid = fork ();
  if (pid == 0)
    {
      int null = open ("/dev/null", O_WRONLY | O_CLOEXEC);
      if (null >= 0)
        dup2 (null, STDOUT_FILENO);
      execv (argv[0], argv);
      _exit (127);
    }
  int st = 0;
  if (pid < 0)
    return -1;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
}

/* The helper child: waits until the parent has unshared (a byte on the pipe;
 * EOF means it failed), maps it, and exits with bit 0 set when the uid
 * helper failed, bit 1 when the gid one did. */
__attribute__ ((noreturn)) static void
helper_child (int rd, struct idmap maps[2])
{
  char c;
  ssize_t n;
  while ((n = read (rd, &c, 1)) < 0 && errno == EINTR)
    ;
  if (n != 1)
    _exit (3);
  int code = 0;
  for (int i = 0; i < 2; i++)
    if (maps[i].argv && run_helper (maps[i].argv) != 0)
      code |= 1 << i;
  _exit (code);
}

static int
write_proc (const char *path, const char *text, struct kiln_error **err)
{
  kiln_autoclose int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write (fd, text, strlen (text)) != (ssize_t) strlen (text))
    return kiln_error_set (err, errno, KILN_E_IO, "write `%s`", path);
  return 0;
}

/* Maps only our own id, which an unprivileged process may do for itself
 * (setgroups must be denied before a gid_map written that way). */
static int
map_single (struct idmap *m, struct kiln_error **err)
{
  kiln_autofree char *line = kiln_xasprintf ("0 %lu 1\n", m->id);
  if (!strcmp (m->kind, "gid") && write_proc ("/proc/self/setgroups", "deny", err) < 0)
    return -1;
  return write_proc (m->proc_map, line, err);
}

/* Unshares, lets the helper child map us, and reports which maps failed
 * (bitmask as in helper_child), or < 0. */
static int
unshare_and_map (struct idmap maps[2], struct kiln_error **err)
{
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return kiln_error_set (err, errno, KILN_E_IO, "create a pipe");
  pid_t pid = fork ();
  if (pid == 0)
    {
      close (fds[1]);
      helper_child (fds[0], maps);
    }
  close (fds[0]);
  if (pid < 0)
    return close (fds[1]), kiln_error_set (err, errno, KILN_E_IO, "fork the id-map helper");
  int r = unshare (CLONE_NEWUSER | CLONE_NEWNS);
  int e = errno;
  if (r == 0 && write (fds[1], "x", 1) != 1)
    r = -1, e = errno;
  close (fds[1]);
  int st = 0;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (r < 0)
    return kiln_error_set (err, e, e == EINVAL ? KILN_E_INTERNAL : KILN_E_UNSUPPORTED,
                           e == EINVAL ? "create a user namespace (the process must be single-threaded)"
                                       : "create a user namespace");
  return WIFEXITED (st) ? WEXITSTATUS (st) & 3 : 3;
}

int
kiln_userns_enter (struct kiln_error **err)
{
  struct passwd pw, *pwp = NULL;
  char pwbuf[4096];
  getpwuid_r (getuid (), &pw, pwbuf, sizeof pwbuf, &pwp);
  const char *user = pwp ? pwp->pw_name : NULL;
  struct idmap maps[2] = {
    { .kind = "uid",
      .subid_file = "/etc/subuid",
      .helper_name = "newuidmap",
      .proc_map = "/proc/self/uid_map",
      .id = getuid () },
    { .kind = "gid",
      .subid_file = "/etc/subgid",
      .helper_name = "newgidmap",
      .proc_map = "/proc/self/gid_map",
      .id = getgid () },
  };
  int single = 0, r;
  for (int i = 0; i < 2; i++)
    idmap_plan (&maps[i], user, getpid ());
  r = unshare_and_map (maps, err);
  for (int i = 0; r >= 0 && i < 2; i++)
    {
      if (maps[i].argv && !(r & (1 << i)))
        continue;
      if (!maps[i].why)
        maps[i].why = kiln_xasprintf ("`%s` failed", maps[i].helper);
      kiln_log_warn ("rootless: %s; mapping only %s %lu to root, so files owned by other %ss cannot be created",
                     maps[i].why, maps[i].kind, maps[i].id, maps[i].kind == maps[0].kind ? "user" : "group");
      single = 1;
      if (map_single (&maps[i], err) < 0)
        r = kiln_error_wrap (err, "map %s %lu in the user namespace", maps[i].kind, maps[i].id);
    }
  for (int i = 0; i < 2; i++)
    idmap_clear (&maps[i]);
  return r < 0 ? r : single;
}
