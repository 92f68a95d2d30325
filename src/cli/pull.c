/* hearth pull: downloads a GGUF model (being written; see jobs/pull.h). */
#include <stdio.h>

#include "cli/cli.h"

int cli_pull(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "hearth pull: not implemented yet\n");
  return 1;
}
