/* Unit tests for core/metadata.c: the 16 / 64 / 512 limits. */
#include "core/metadata.h"
#include "t.h"

static json_t *md(int pairs, int keylen, int vallen) {
  json_t *o = json_object();
  char k[200], v[1000];
  for (int i = 0; i < pairs; i++) {
    memset(k, 'k', (size_t)keylen);
    snprintf(k, sizeof k, "%0*d", keylen, i);
    memset(v, 'v', (size_t)vallen);
    v[vallen] = '\0';
    json_object_set_new(o, k, json_string(v));
  }
  return o;
}

static void check_ok(json_t *o) {
  api_error e;
  CHECK_INT(metadata_validate(o, &e), 0);
  json_decref(o);
}

static void check_bad(json_t *o, const char *needle) {
  api_error e;
  memset(&e, 0, sizeof e);
  CHECK_INT(metadata_validate(o, &e), -1);
  CHECK_INT(e.status, 400);
  CHECK_STR(e.param, "metadata");
  CHECKF(strstr(e.message, needle) != NULL, "%s", e.message);
  json_decref(o);
}

static void test_limits(void) {
  check_ok(md(16, 64, 512));
  check_ok(md(0, 1, 0));
  check_bad(md(17, 4, 1), "too many properties");
  check_bad(md(1, 65, 1), "too long");
  check_bad(md(1, 4, 513), "maximum length 512");
}

static void test_types(void) {
  api_error e;
  CHECK_INT(metadata_validate(NULL, &e), 0);
  json_t *n = json_null();
  CHECK_INT(metadata_validate(n, &e), 0);
  check_bad(json_string("x"), "expected an object, but got a string");
  check_bad(json_pack("{s:i}", "a", 1),
            "expected a string, but got an integer");
  check_bad(json_pack("{s:{}}", "a"), "but got an object");
}

static void test_unicode_counts_chars(void) {
  /* 512 two-byte characters are 1024 bytes but within the limit */
  char v[1100] = "";
  for (int i = 0; i < 512; i++)
    strcat(v, "\xc3\xa9");
  check_ok(json_pack("{s:s}", "k", v));
  strcat(v, "\xc3\xa9");
  check_bad(json_pack("{s:s}", "k", v), "length 513");
}

static void test_get(void) {
  api_error e;
  json_t *b = json_pack("{s:{s:s}}", "metadata", "a", "b"), *out = NULL;
  CHECK_INT(metadata_get(b, &out, &e), 1);
  CHECK(json_is_object(out));
  json_decref(b);
  b = json_pack("{s:n}", "metadata");
  CHECK_INT(metadata_get(b, &out, &e), 0);
  json_decref(b);
  b = json_pack("{s:[]}", "metadata");
  CHECK_INT(metadata_get(b, &out, &e), -1);
  json_decref(b);
}

int main(void) {
  RUN(test_limits);
  RUN(test_types);
  RUN(test_unicode_counts_chars);
  RUN(test_get);
  T_MAIN_END();
}
