/* Shared flag helpers for the subcommands in src/cli: the HEARTH_* variable
 * that backs a flag, boolean variables, and range-checked numbers. They
 * print their own error line ("hearth CMD: --flag must be ...") and know
 * nothing about any one command. */
#ifndef HEARTH_CLI_FLAGS_H
#define HEARTH_CLI_FLAGS_H

/* Value of the variable PREFIX + FLAG without its dashes, upper-cased with
 * '-' as '_' (prefix "HEARTH_", flag "--max-tokens" -> HEARTH_MAX_TOKENS),
 * or NULL when unset. */
const char *cli_env(const char *prefix, const char *flag);

/* True when the variable is set to something other than "", "0", "false". */
int cli_env_flag(const char *name);

/* Parses v as a number (or an integer) in [lo, hi] into *out; on error prints
 * "hearth CMD: FLAG must be ..." and returns -1. */
int cli_num(const char *cmd, const char *flag, const char *v, double lo,
            double hi, double *out);
int cli_int(const char *cmd, const char *flag, const char *v, long lo, long hi,
            long *out);

#endif
