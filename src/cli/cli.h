/* Subcommands of the hearth binary. Each lives in its own src/cli/<name>.c,
 * parses its own flags (every flag also readable from a HEARTH_* variable),
 * prints its own --help, and returns a process exit status. */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

int cli_serve(int argc, char **argv);    /* src/cli/serve.c */
int cli_keys(int argc, char **argv);     /* src/cli/keys.c */
int cli_generate(int argc, char **argv); /* src/cli/generate.c */
int cli_bench(int argc, char **argv);    /* src/cli/bench.c */
int cli_fixture(int argc, char **argv);  /* src/cli/fixture.c */
int cli_pull(int argc, char **argv);     /* src/cli/pull.c */

#endif
