/* Unit tests for core/ids.c: prefixes, charset, uniqueness, validation. */
#include "core/ids.h"
#include "t.h"

static int is_b62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
         (c >= 'a' && c <= 'z');
}

static int cmp(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

static void test_prefix_length_charset(void) {
  char id[ID_MAX];
  id_new("file-", id, sizeof id);
  CHECK(strncmp(id, "file-", 5) == 0);
  CHECK_INT(strlen(id), 5 + ID_RANDOM_LEN);
  for (size_t i = 5; id[i]; i++)
    CHECK(is_b62(id[i]));
  CHECK(id_valid("file-", id));
}

static void test_unique_and_all_digits_used(void) {
  enum { N = 5000 };
  static char ids[N][ID_MAX];
  int seen[128] = {0};
  for (int i = 0; i < N; i++) {
    id_new("x_", ids[i], ID_MAX);
    for (const char *p = ids[i] + 2; *p; p++)
      seen[(int)*p]++;
  }
  qsort(ids, N, ID_MAX, cmp);
  int dups = 0;
  for (int i = 1; i < N; i++)
    dups += strcmp(ids[i - 1], ids[i]) == 0;
  CHECK_INT(dups, 0);
  /* 120000 draws over 62 digits: each expected ~1935 times; a biased or
   * truncated alphabet would leave some at 0 or far off. */
  int used = 0, min = 1 << 30, max = 0;
  for (int c = 0; c < 128; c++)
    if (seen[c]) {
      used++;
      min = seen[c] < min ? seen[c] : min;
      max = seen[c] > max ? seen[c] : max;
    }
  CHECK_INT(used, 62);
  CHECK(min > 1500 && max < 2400);
}

static void test_truncation_is_terminated(void) {
  char small[8];
  id_new("upload_", small, sizeof small);
  CHECK_INT(strlen(small), 7);
  CHECK(strcmp(small, "upload_") == 0);
  char one[1] = {'z'};
  id_new("a", one, 1);
  CHECK_INT(one[0], 0);
}

static void test_valid_rejects_bad(void) {
  CHECK(!id_valid("file-", "file-"));
  CHECK(!id_valid("file-", "upload_abc"));
  CHECK(!id_valid("file-", "file-ab/../c"));
  CHECK(!id_valid("file-", "file-ab c"));
  CHECK(!id_valid("file-", NULL));
  CHECK(id_valid("file-", "file-abc_DEF-9"));
}

int main(void) {
  RUN(test_prefix_length_charset);
  RUN(test_unique_and_all_digits_used);
  RUN(test_truncation_is_terminated);
  RUN(test_valid_rejects_bad);
  T_MAIN_END();
}
