/* cmd_run.c - `kiln run` (being written). */
#include <stdio.h>
#include "cmd.h"

int
kiln_cmd_run (struct kiln_cli *cli, int argc, char **argv)
{
  (void) cli, (void) argc, (void) argv;
  fprintf (stderr, "kiln: error: `kiln run` is not implemented yet\n");
  return 1;
}
