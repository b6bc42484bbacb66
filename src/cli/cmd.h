/* cmd.h - what the cmd_*.c verbs share: global options, store opening,
 * printing errors (the only place that does). */
#ifndef KILN_CMD_H
#define KILN_CMD_H

#include <signal.h>
#include "kiln/error.h"
#include "kiln/store.h"

struct kiln_cli {
  const char *root; /* --root, or NULL for the default */
  const char *argv0;
  int lease_fd; /* shared gc.lock held while the store is open (see prune.h) */
};

typedef int (*kiln_cmd_fn) (struct kiln_cli *cli, int argc, char **argv);

int kiln_cmd_build (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_images (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_inspect (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_tag (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_rmi (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_save (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_prune (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_store (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_pull (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_push (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_login (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_logout (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_run (struct kiln_cli *cli, int argc, char **argv);
int kiln_cmd_version (struct kiln_cli *cli, int argc, char **argv);

/* Prints "kiln: error: MESSAGE" and returns the exit status for its kind. */
int kiln_cmd_fail (struct kiln_error **err);
/* Prints a usage error with a hint and returns 2. */
int kiln_cmd_usage_error (const char *verb, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* /var/lib/kiln for root, else $XDG_DATA_HOME/kiln (~/.local/share/kiln).
 * main decides it first: inside kiln's user namespace everyone is root. */
char *kiln_cmd_default_root (void);
int kiln_cmd_open_store (struct kiln_cli *cli, struct kiln_store **st, struct kiln_error **err);
/* The same, with the registry options (kept by reference) that fetch blobs
 * the store lacks (NULL: none); every command that reads images uses it. */
struct kiln_registry_opts;
int kiln_cmd_open_context (struct kiln_cli *cli, const struct kiln_registry_opts *ro, struct kiln_store **st,
                           struct kiln_error **err);
/* The normalised form of a -t reference; KILN_E_USAGE when invalid. */
int kiln_cmd_normalize_ref (const char *ref, char **out, struct kiln_error **err);
/* Puts kiln into its own mount namespace (and, when not root, a user
 * namespace) so every mount it makes dies with it, even on SIGKILL.  Call
 * before any thread starts. */
int kiln_cmd_isolate (struct kiln_error **err);
/* SIGINT/SIGTERM/SIGHUP: the first kills running sandboxes and sets *flag;
 * the second ends kiln at once. */
void kiln_cmd_on_signals (volatile sig_atomic_t *flag);

/* True if argv holds -h/--help (before a "--"). */
int kiln_cmd_wants_help (int argc, char **argv);

/* "500ms", "2s", "1.5" (seconds) up to an hour, as milliseconds; -1 when
 * invalid.  For --retry-delay. */
int kiln_cmd_parse_delay_ms (const char *s, unsigned *out);
/* A decimal integer in [min, max]; -1 otherwise. */
int kiln_cmd_parse_long (const char *s, long min, long max, long *out);

#endif
