/* cmd_registry.c - `kiln pull`, `push`, `login`, `logout` (being written). */
#include <stdio.h>
#include "cmd.h"

static int
not_yet (const char *verb)
{
  fprintf (stderr, "kiln: error: `kiln %s` is not implemented yet\n", verb);
  return 1;
}

int kiln_cmd_pull (struct kiln_cli *cli, int argc, char **argv) { (void) cli; (void) argc; (void) argv; return not_yet ("pull"); }
int kiln_cmd_push (struct kiln_cli *cli, int argc, char **argv) { (void) cli; (void) argc; (void) argv; return not_yet ("push"); }
int kiln_cmd_login (struct kiln_cli *cli, int argc, char **argv) { (void) cli; (void) argc; (void) argv; return not_yet ("login"); }
int kiln_cmd_logout (struct kiln_cli *cli, int argc, char **argv) { (void) cli; (void) argc; (void) argv; return not_yet ("logout"); }
