/* hearth fixture: placeholder until its issue lands; says so and fails. */
#include <stdio.h>

#include "cli/cli.h"

int cli_fixture(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "hearth fixture: not built yet\n");
  return 1;
}
