/* Unit tests for core/jsonbody.c: parse errors and typed getters with the
 * platform's 400 wording. */
#include "core/jsonbody.h"
#include "t.h"

static json_t *body(const char *s) {
  api_error e;
  return jsonbody_parse(s, strlen(s), &e);
}

static void test_parse_errors(void) {
  api_error e;
  const char *bad[] = {"", "{", "{\"a\":}", "nul", "{\"a\":1}x", "\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&e, 0, sizeof e);
    CHECK(jsonbody_parse(bad[i], strlen(bad[i]), &e) == NULL);
    CHECK_INT(e.status, 400);
    CHECK(strstr(e.message, "We could not parse the JSON body") != NULL);
  }
  CHECK(jsonbody_parse("[1,2]", 5, &e) == NULL);
  CHECK(strstr(e.message, "expected a JSON object, but got an array") != NULL);
  CHECK(jsonbody_parse("\"s\"", 3, &e) == NULL);
  CHECK(jsonbody_parse(NULL, 0, &e) == NULL);
  /* not NUL-terminated: only len bytes count */
  json_t *o = jsonbody_parse("{\"a\":1}garbage", 7, &e);
  CHECK(json_is_object(o));
  json_decref(o);
}

static void test_missing_and_type(void) {
  api_error e;
  json_t *o = body("{\"limit\":\"10\",\"name\":null}");
  const char *s;
  long long n;
  CHECK_INT(jb_string(o, "purpose", JB_REQUIRED, 0, &s, &e), -1);
  CHECK_STR(e.message, "Missing required parameter: 'purpose'.");
  CHECK_STR(e.param, "purpose");
  CHECK_INT(jb_int(o, "limit", 0, 1, 100, &n, &e), -1);
  CHECK_STR(e.message, "Invalid type for 'limit': expected an integer, but "
                       "got a string instead.");
  CHECK_STR(e.param, "limit");
  CHECK_INT(jb_string(o, "name", JB_NULLABLE, 0, &s, &e), 0);
  CHECK_INT(jb_string(o, "name", 0, 0, &s, &e), -1);
  CHECK(strstr(e.message, "but got null instead") != NULL);
  CHECK_INT(jb_string(o, "absent", 0, 0, &s, &e), 0);
  CHECK_INT(jb_string(NULL, "absent", 0, 0, &s, &e), 0);
  json_decref(o);
}

static void test_ranges_and_lengths(void) {
  api_error e;
  json_t *o = body("{\"n\":0,\"m\":200,\"f\":2.0,\"g\":2.5,\"t\":-0.5,"
                   "\"s\":\"h\\u00e9llo\",\"b\":true}");
  long long n;
  double d;
  const char *s;
  int b;
  CHECK_INT(jb_int(o, "n", 0, 1, 128, &n, &e), -1);
  CHECK_STR(e.message, "Invalid 'n': integer below minimum value. Expected a "
                       "value >= 1, but got 0 instead.");
  CHECK_INT(jb_int(o, "m", 0, 1, 128, &n, &e), -1);
  CHECK(strstr(e.message, "integer above maximum value") != NULL);
  CHECK_INT(jb_int(o, "f", 0, 1, 128, &n, &e), 1);
  CHECK_INT(n, 2);
  CHECK_INT(jb_int(o, "g", 0, 1, 128, &n, &e), -1);
  CHECK(strstr(e.message, "but got a decimal instead") != NULL);
  CHECK_INT(jb_number(o, "t", 0, 0, 2, &d, &e), -1);
  CHECK(strstr(e.message, "decimal below minimum value") != NULL);
  CHECK_INT(jb_number(o, "g", 0, 0, 3, &d, &e), 1);
  CHECK_NEAR(d, 2.5, 0);
  /* "héllo" is 5 characters (6 bytes) */
  CHECK_INT(jb_string(o, "s", 0, 5, &s, &e), 1);
  CHECK_INT(jb_string(o, "s", 0, 4, &s, &e), -1);
  CHECK_STR(e.message, "Invalid 's': string too long. Expected a string with "
                       "maximum length 4, but got a string with length 5 "
                       "instead.");
  CHECK_INT(jb_bool(o, "b", 0, &b, &e), 1);
  CHECK_INT(b, 1);
  CHECK_INT(jb_bool(o, "n", 0, &b, &e), -1);
  CHECK(strstr(e.message, "expected a boolean, but got an integer") != NULL);
  json_decref(o);
}

static void test_enum_object_array(void) {
  api_error e;
  static const char *const purposes[] = {"assistants", "batch", "fine-tune",
                                         NULL};
  static const char *const two[] = {"asc", "desc", NULL};
  json_t *o = body("{\"purpose\":\"nope\",\"ok\":\"batch\",\"o\":{},"
                   "\"a\":[1]}");
  const char *s;
  json_t *v;
  CHECK_INT(jb_enum(o, "purpose", JB_REQUIRED, purposes, &s, &e), -1);
  CHECK_STR(e.message, "Invalid value: 'nope'. Supported values are: "
                       "'assistants', 'batch', and 'fine-tune'.");
  CHECK_STR(e.param, "purpose");
  CHECK_INT(jb_enum(o, "ok", JB_REQUIRED, purposes, &s, &e), 1);
  CHECK_STR(s, "batch");
  CHECK_INT(jb_check_enum("order", "up", two, &e), -1);
  CHECK_STR(e.message,
            "Invalid value: 'up'. Supported values are: 'asc' and 'desc'.");
  CHECK_INT(jb_object(o, "o", 0, &v, &e), 1);
  CHECK_INT(jb_object(o, "a", 0, &v, &e), -1);
  CHECK(strstr(e.message, "expected an object, but got an array") != NULL);
  CHECK_INT(jb_array(o, "a", 0, &v, &e), 1);
  CHECK_INT(jb_array(o, "o", 0, &v, &e), -1);
  json_decref(o);
}

static void test_parse_int_strings(void) {
  api_error e;
  long long n = 0;
  CHECK_INT(jb_parse_int("limit", "42", 1, 100, &n, &e), 0);
  CHECK_INT(n, 42);
  const char *bad[] = {"", "4x", " 4", "+4", "4.0", "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK_INT(jb_parse_int("limit", bad[i], 1, 100, &n, &e), -1);
  CHECK_INT(jb_parse_int("limit", "101", 1, 100, &n, &e), -1);
  CHECK(strstr(e.message, "Expected a value <= 100, but got 101") != NULL);
}

int main(void) {
  RUN(test_parse_errors);
  RUN(test_missing_and_type);
  RUN(test_ranges_and_lengths);
  RUN(test_enum_object_array);
  RUN(test_parse_int_strings);
  T_MAIN_END();
}
