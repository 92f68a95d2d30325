/* Unit tests for core/error.c: the platform's error object. */
#include "core/error.h"
#include "t.h"

static void test_invalid_renders_param_and_null_code(void) {
  api_error e;
  err_invalid(&e, "purpose", "Invalid value: '%s'.", "x");
  CHECK_INT(e.status, 400);
  json_t *j = api_error_json(&e);
  json_t *in = json_object_get(j, "error");
  CHECK_STR(json_string_value(json_object_get(in, "message")),
            "Invalid value: 'x'.");
  CHECK_STR(json_string_value(json_object_get(in, "type")),
            "invalid_request_error");
  CHECK_STR(json_string_value(json_object_get(in, "param")), "purpose");
  CHECK(json_is_null(json_object_get(in, "code")));
  CHECK_INT(json_object_size(in), 4);
  json_decref(j);
}

static void test_empty_param_is_null(void) {
  api_error e;
  err_server(&e, "boom %d", 7);
  CHECK_INT(e.status, 500);
  json_t *j = api_error_json(&e);
  json_t *in = json_object_get(j, "error");
  CHECK(json_is_null(json_object_get(in, "param")));
  CHECK_STR(json_string_value(json_object_get(in, "type")), "server_error");
  CHECK_STR(json_string_value(json_object_get(in, "message")), "boom 7");
  json_decref(j);
}

static void test_set_with_code_and_not_found(void) {
  api_error e;
  api_error_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                "nope");
  json_t *j = api_error_json(&e);
  CHECK_STR(
      json_string_value(json_object_get(json_object_get(j, "error"), "code")),
      "invalid_api_key");
  json_decref(j);
  err_not_found(&e, "file_id", "No such File object: %s", "file-x");
  CHECK_INT(e.status, 404);
  CHECK_STR(e.param, "file_id");
  CHECK_STR(e.message, "No such File object: file-x");
}

static void test_long_message_truncates_safely(void) {
  api_error e;
  char big[5000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  err_invalid(&e, big, "%s", big);
  CHECK(strlen(e.message) == sizeof e.message - 1);
  CHECK(strlen(e.param) == sizeof e.param - 1);
}

/* Messages quoting a client's bytes stay valid JSON and keep their text. */
static void test_invalid_utf8_is_replaced(void) {
  api_error e;
  err_invalid(&e, "purpose", "Invalid value: '%s'.",
              "b\xff"
              "a\xed\xa0\x80z");
  json_t *j = api_error_json(&e);
  const char *m = json_string_value(
      json_object_get(json_object_get(j, "error"), "message"));
  CHECK_STR(m, "Invalid value: 'b\xef\xbf\xbd"
               "a\xef\xbf\xbd\xef\xbf\xbd"
               "\xef\xbf\xbdz'.");
  json_decref(j);
  /* a multi-byte character cut by truncation at the end */
  char big[1100];
  memset(big, 'a', sizeof big);
  memcpy(big + 1021, "\xe2\x82\xac", 3); /* the euro sign across the cut */
  big[sizeof big - 1] = 0;
  err_invalid(&e, NULL, "%s", big);
  j = api_error_json(&e);
  m = json_string_value(
      json_object_get(json_object_get(j, "error"), "message"));
  CHECK(m != NULL && strlen(m) >= 1021);
  json_decref(j);
  /* valid UTF-8 passes unchanged */
  err_invalid(&e, "p\xc3\xa9", "caf\xc3\xa9 \xf0\x9f\x94\xa5");
  j = api_error_json(&e);
  CHECK_STR(json_string_value(
                json_object_get(json_object_get(j, "error"), "message")),
            "caf\xc3\xa9 \xf0\x9f\x94\xa5");
  CHECK_STR(
      json_string_value(json_object_get(json_object_get(j, "error"), "param")),
      "p\xc3\xa9");
  json_decref(j);
}

int main(void) {
  RUN(test_invalid_renders_param_and_null_code);
  RUN(test_empty_param_is_null);
  RUN(test_set_with_code_and_not_found);
  RUN(test_long_message_truncates_safely);
  RUN(test_invalid_utf8_is_replaced);
  T_MAIN_END();
}
