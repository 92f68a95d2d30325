/* The default data directory ($HOME/.hearth) and directory creation.
 * Knows nothing about what is stored there. */
#include "core/paths.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int paths_default_data_dir(char *out, size_t outlen) {
  const char *home = getenv("HOME");
  if (!home || !*home) {
    struct passwd *pw = getpwuid(getuid());
    home = pw ? pw->pw_dir : NULL;
  }
  if (!home || !*home)
    return -1;
  int n = snprintf(out, outlen, "%s/.hearth", home);
  return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int paths_data_dir(const char *flag, char *out, size_t outlen) {
  const char *v = flag && *flag ? flag : getenv("HEARTH_DATA");
  if (v && *v) {
    int n = snprintf(out, outlen, "%s", v);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
  }
  return paths_default_data_dir(out, outlen);
}

int paths_mkdir_p(const char *dir) {
  char buf[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf) {
    errno = EINVAL;
    return -1;
  }
  memcpy(buf, dir, n + 1);
  /* Invariant: buf[0..i) names a directory that exists once the loop
   * passes a '/'. */
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return -1;
    buf[i] = saved;
  }
  struct stat st;
  if (stat(dir, &st) != 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}
