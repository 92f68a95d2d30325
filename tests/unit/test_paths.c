/* Unit tests for core/paths.c: default data directory, flag / HEARTH_DATA
 * precedence, mkdir -p. */
#include <ftw.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "t.h"

static const char *S(const char *x) {
  return x;
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

static void test_default_and_precedence(void) {
  char out[512];
  setenv("HOME", "/home/someone", 1);
  unsetenv("HEARTH_DATA");
  CHECK_INT(paths_default_data_dir(out, sizeof out), 0);
  CHECK_STR(S(out), "/home/someone/.hearth");
  CHECK_INT(paths_data_dir(NULL, out, sizeof out), 0);
  CHECK_STR(S(out), "/home/someone/.hearth");
  setenv("HEARTH_DATA", "/srv/hearth", 1);
  CHECK_INT(paths_data_dir(NULL, out, sizeof out), 0);
  CHECK_STR(S(out), "/srv/hearth");
  CHECK_INT(paths_data_dir("", out, sizeof out), 0);
  CHECK_STR(S(out), "/srv/hearth");
  CHECK_INT(paths_data_dir("/flag/wins", out, sizeof out), 0);
  CHECK_STR(S(out), "/flag/wins");
  char tiny[8];
  CHECK_INT(paths_data_dir("/much/too/long", tiny, sizeof tiny), -1);
  unsetenv("HEARTH_DATA");
  unsetenv("HOME"); /* falls back to the passwd entry, when there is one */
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_dir && *pw->pw_dir) {
    char want[512];
    snprintf(want, sizeof want, "%s/.hearth", pw->pw_dir);
    CHECK_INT(paths_default_data_dir(out, sizeof out), 0);
    CHECK_STR(S(out), S(want));
  } else {
    CHECK_INT(paths_default_data_dir(out, sizeof out), -1);
  }
}

static void test_mkdir_p(void) {
  char base[64], deep[128];
  strcpy(base, "/tmp/hearth-test-paths-XXXXXX");
  CHECK(mkdtemp(base) != NULL);
  snprintf(deep, sizeof deep, "%s/a/b/c/", base);
  CHECK_INT(paths_mkdir_p(deep), 0);
  CHECK_INT(paths_mkdir_p(deep), 0); /* existing is fine */
  struct stat st;
  CHECK(stat(deep, &st) == 0 && S_ISDIR(st.st_mode));
  CHECK_INT(st.st_mode & 0777, 0700);
  snprintf(deep, sizeof deep, "%s/file", base);
  FILE *f = fopen(deep, "w");
  fclose(f);
  CHECK_INT(paths_mkdir_p(deep), -1); /* a file is in the way */
  CHECK_INT(paths_mkdir_p(""), -1);
  nftw(base, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_default_and_precedence);
  RUN(test_mkdir_p);
  T_MAIN_END();
}
