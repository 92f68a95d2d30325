/* Shared flag helpers for the subcommands (see flags.h). */
#include "cli/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_env(const char *prefix, const char *flag) {
  char name[96];
  size_t k = strlen(prefix);
  if (k >= sizeof name)
    return NULL;
  memcpy(name, prefix, k);
  for (const char *p = flag + strspn(flag, "-"); *p && k < sizeof name - 1; p++)
    name[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
  name[k] = 0;
  return getenv(name);
}

int cli_env_flag(const char *name) {
  const char *v = getenv(name);
  return v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

int cli_num(const char *cmd, const char *flag, const char *v, double lo,
            double hi, double *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || !(d >= lo && d <= hi)) {
    fprintf(stderr, "hearth %s: %s must be a number in [%g, %g], got '%s'\n",
            cmd, flag, lo, hi, v);
    return -1;
  }
  *out = d;
  return 0;
}

int cli_int(const char *cmd, const char *flag, const char *v, long lo, long hi,
            long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr,
            "hearth %s: %s must be an integer in [%ld, %ld], got '%s'\n", cmd,
            flag, lo, hi, v);
    return -1;
  }
  *out = x;
  return 0;
}
