/* libFuzzer target for core/jsonbody: parses the input as a request body and
 * runs every typed getter over every key it finds (and over a few fixed
 * names), then the string helpers (jb_check_enum, jb_parse_int) over the
 * input as a C string. Checks the getters' contract: 1/0/-1 only, values
 * within the limits asked for, and an error always carrying a 400, a type,
 * a param and a message.
 * Knows nothing about HTTP or storage; built by scripts/fuzz.sh. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonbody.h"

static const char *const kEnum[] = {"asc", "desc", "batch", "fine-tune", NULL};

static void check_result(int r, const api_error *e) {
  assert(r == -1 || r == 0 || r == 1);
  if (r == -1) {
    assert(e->status == 400);
    assert(e->type != NULL);
    assert(e->message[0] != '\0');
    assert(memchr(e->message, '\0', sizeof e->message) != NULL);
    assert(memchr(e->param, '\0', sizeof e->param) != NULL);
  }
}

/* UTF-8 code points in s (s is valid UTF-8: jansson checked it). */
static size_t code_points(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static int in_enum(const char *s) {
  for (size_t i = 0; kEnum[i]; i++)
    if (!strcmp(s, kEnum[i]))
      return 1;
  return 0;
}

/* Every getter on one key, required and nullable variants; values returned
 * must honour the limits asked for. */
static void probe(json_t *obj, const char *name) {
  static const int flags[] = {JB_OPTIONAL, JB_REQUIRED, JB_NULLABLE,
                              JB_REQUIRED | JB_NULLABLE};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    api_error e;
    const char *s = NULL;
    long long ll = 0;
    double d = 0;
    int b = 0;
    json_t *j = NULL;
    int r;
    memset(&e, 0, sizeof e);
    r = jb_string(obj, name, flags[i], 8, &s, &e);
    check_result(r, &e);
    assert(r != 1 || code_points(s) <= 8);
    memset(&e, 0, sizeof e);
    check_result(jb_string(obj, name, flags[i], 0, &s, &e), &e);
    memset(&e, 0, sizeof e);
    r = jb_int(obj, name, flags[i], -5, 1000000, &ll, &e);
    check_result(r, &e);
    assert(r != 1 || (ll >= -5 && ll <= 1000000));
    memset(&e, 0, sizeof e);
    r = jb_number(obj, name, flags[i], 0.0, 2.0, &d, &e);
    check_result(r, &e);
    assert(r != 1 || (d >= 0.0 && d <= 2.0));
    memset(&e, 0, sizeof e);
    r = jb_bool(obj, name, flags[i], &b, &e);
    check_result(r, &e);
    assert(r != 1 || b == 0 || b == 1);
    memset(&e, 0, sizeof e);
    r = jb_enum(obj, name, flags[i], kEnum, &s, &e);
    check_result(r, &e);
    assert(r != 1 || in_enum(s));
    memset(&e, 0, sizeof e);
    check_result(jb_object(obj, name, flags[i], &j, &e), &e);
    memset(&e, 0, sizeof e);
    check_result(jb_array(obj, name, flags[i], &j, &e), &e);
  }
}

static void walk(json_t *obj, int depth) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    probe(obj, key);
    assert(jb_type_words(v) != NULL);
    if (json_is_object(v) && depth < 3)
      walk(v, depth + 1);
  }
}

/* The C-string helpers on the raw input (NUL-terminated copy). */
static void strings(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return;
  memcpy(s, data, size);
  s[size] = '\0';
  api_error e;
  long long v = 0;
  memset(&e, 0, sizeof e);
  int r = jb_check_enum("order", s, kEnum, &e);
  assert(r == 0 || (r == -1 && e.status == 400));
  memset(&e, 0, sizeof e);
  r = jb_parse_int("limit", s, 1, 100, &v, &e);
  assert(r == -1 ? e.status == 400 : (r == 0 && v >= 1 && v <= 100));
  memset(&e, 0, sizeof e);
  r = jb_parse_int("n", s, -9223372036854775807LL - 1, 9223372036854775807LL,
                   &v, &e);
  assert(r == 0 || (r == -1 && e.status == 400));
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  api_error e;
  memset(&e, 0, sizeof e);
  json_t *obj = jsonbody_parse((const char *)data, size, &e);
  if (obj) {
    assert(json_is_object(obj));
    walk(obj, 0);
    static const char *const fixed[] = {"purpose", "bytes", "", "part_ids"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
      probe(obj, fixed[i]);
    probe(NULL, "x");
    json_decref(obj);
  } else {
    assert(e.status == 400 && e.message[0] != '\0');
  }
  if (size < 4096)
    strings(data, size);
  return 0;
}
