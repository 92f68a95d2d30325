/* Minimal unit-test harness shared by every tests/unit/test_*.c.
 * A test is a void function; RUN() counts it passed unless a CHECK failed
 * inside it, or skipped if it called SKIP(). T_MAIN_END prints the closing
 * line "N passed, N failed, N skipped" that scripts/test.sh sums. */
#ifndef HEARTH_T_H
#define HEARTH_T_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail, t_skip, t_cur_failed, t_cur_skipped;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
      t_cur_failed = 1;                                                        \
    }                                                                          \
  } while (0)

#define CHECKF(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      t_cur_failed = 1;                                                        \
    }                                                                          \
  } while (0)

#define CHECK_STR(a, b)                                                        \
  CHECKF((a) && (b) && strcmp((a), (b)) == 0, "\"%s\" != \"%s\"",              \
         (a) ? (a) : "(null)", (b) ? (b) : "(null)")
#define CHECK_INT(a, b)                                                        \
  CHECKF((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a),     \
         (long long)(b))
#define CHECK_NEAR(a, b, tol)                                                  \
  CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%g != %g (tol %g)",        \
         (double)(a), (double)(b), (double)(tol))

/* Skip the current test with a visible reason, and return from it. */
#define SKIP(...)                                                              \
  do {                                                                         \
    fprintf(stderr, "  SKIP %s: ", __func__);                                  \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    t_cur_skipped = 1;                                                         \
    return;                                                                    \
  } while (0)

#define RUN(fn)                                                                \
  do {                                                                         \
    t_cur_failed = t_cur_skipped = 0;                                          \
    fn();                                                                      \
    if (t_cur_failed) {                                                        \
      t_fail++;                                                                \
      fprintf(stderr, "not ok %s\n", #fn);                                     \
    } else if (t_cur_skipped)                                                  \
      t_skip++;                                                                \
    else                                                                       \
      t_pass++;                                                                \
  } while (0)

#define T_MAIN_END()                                                           \
  do {                                                                         \
    printf("%d passed, %d failed, %d skipped\n", t_pass, t_fail, t_skip);      \
    return t_fail ? 1 : 0;                                                     \
  } while (0)

/* Directory of ../shared (read-only test data), or NULL when absent.
 * HEARTH_SHARED overrides; otherwise ../shared beside the repository. */
static inline const char *t_shared_dir(void) {
  const char *env = getenv("HEARTH_SHARED");
  static const char *cands[] = {"../shared"};
  if (env && *env) return env;
  for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/DESIGN.md", cands[i]);
    FILE *f = fopen(p, "r");
    if (f) {
      fclose(f);
      return cands[i];
    }
  }
  return NULL;
}
#endif
