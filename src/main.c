/* hearth: command-line entry point. Dispatches to the subcommands declared in
 * cli/cli.h; knows nothing about what they do. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct command {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} commands[] = {
    {"serve", cli_serve, "run the API server"},
    {"keys", cli_keys, "manage API keys (keys create [--project NAME] [--admin])"},
    {"generate", cli_generate, "generate text from a GGUF model"},
    {"bench", cli_bench, "measure a GGUF model's prefill and decode speed"},
    {"fixture", cli_fixture, "write a random-weight GGUF model (tests, benchmarks)"},
    {"pull", cli_pull, "download a GGUF model by catalog name or URL"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: hearth <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n'hearth <command> --help' lists a command's flags; every flag "
             "also reads a HEARTH_* environment variable.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "hearth: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
