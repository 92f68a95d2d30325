/* JSON request bodies and typed field getters with the platform's 400
 * wording. One place decides how "wrong type", "missing", "out of range"
 * and "not one of" read, so every endpoint says them the same way.
 * Knows nothing about HTTP transport or storage. */
#include "core/jsonbody.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_ERROR_MSG                                                        \
  "We could not parse the JSON body of your request. (HINT: This likely "      \
  "means you aren't using your HTTP library correctly. The OpenAI API "        \
  "expects a JSON payload, but what was sent was not valid JSON. If you "      \
  "have trouble figuring out how to fix this, please contact us through our "  \
  "help center at help.openai.com.)"

json_t *jsonbody_parse(const char *buf, size_t len, api_error *e) {
  json_error_t jerr;
  json_t *v = json_loadb(buf ? buf : "", buf ? len : 0, JSON_DECODE_ANY, &jerr);
  if (!v) {
    err_invalid(e, NULL, PARSE_ERROR_MSG);
    return NULL;
  }
  if (!json_is_object(v)) {
    err_invalid(e, NULL,
                "Invalid body: expected a JSON object, but got %s instead.",
                jb_type_words(v));
    json_decref(v);
    return NULL;
  }
  return v;
}

const char *jb_type_words(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a decimal";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

/* Common prologue of every getter: finds the field and handles absent /
 * null / required. Returns 1 with *v set when there is a value to check,
 * 0 when absent-and-fine, -1 on error. */
static int field(json_t *obj, const char *name, int flags, json_t **v,
                 api_error *e) {
  json_t *x = obj ? json_object_get(obj, name) : NULL;
  if (x && json_is_null(x) && (flags & JB_NULLABLE))
    x = NULL;
  if (!x) {
    if (flags & JB_REQUIRED) {
      err_invalid(e, name, "Missing required parameter: '%s'.", name);
      return -1;
    }
    return 0;
  }
  *v = x;
  return 1;
}

static int type_error(const char *name, const char *expected, const json_t *v,
                      api_error *e) {
  err_invalid(e, name,
              "Invalid type for '%s': expected %s, but got %s instead.", name,
              expected, jb_type_words(v));
  return -1;
}

/* Number of UTF-8 code points in s[0..n). */
static size_t utf8_len(const char *s, size_t n) {
  size_t cps = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      cps++;
  return cps;
}

int jb_string(json_t *obj, const char *name, int flags, size_t maxlen,
              const char **out, api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_string(v))
    return type_error(name, "a string", v, e);
  size_t n = utf8_len(json_string_value(v), json_string_length(v));
  if (maxlen && n > maxlen) {
    err_invalid(e, name,
                "Invalid '%s': string too long. Expected a string with "
                "maximum length %zu, but got a string with length %zu "
                "instead.",
                name, maxlen, n);
    return -1;
  }
  *out = json_string_value(v);
  return 1;
}

static int range_error_ll(const char *name, long long v, long long min,
                          long long max, api_error *e) {
  if (v < min)
    err_invalid(e, name,
                "Invalid '%s': integer below minimum value. Expected a value "
                ">= %lld, but got %lld instead.",
                name, min, v);
  else
    err_invalid(e, name,
                "Invalid '%s': integer above maximum value. Expected a value "
                "<= %lld, but got %lld instead.",
                name, max, v);
  return -1;
}

int jb_int(json_t *obj, const char *name, int flags, long long min,
           long long max, long long *out, api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  long long x;
  if (json_is_integer(v)) {
    x = json_integer_value(v);
  } else if (json_is_real(v) &&
             floor(json_real_value(v)) == json_real_value(v) &&
             fabs(json_real_value(v)) < 9.0e18) {
    x = (long long)json_real_value(v);
  } else {
    return type_error(name, "an integer", v, e);
  }
  if (x < min || x > max)
    return range_error_ll(name, x, min, max, e);
  *out = x;
  return 1;
}

int jb_number(json_t *obj, const char *name, int flags, double min, double max,
              double *out, api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_number(v))
    return type_error(name, "a number", v, e);
  double x = json_number_value(v);
  if (x < min) {
    err_invalid(e, name,
                "Invalid '%s': decimal below minimum value. Expected a value "
                ">= %g, but got %g instead.",
                name, min, x);
    return -1;
  }
  if (x > max) {
    err_invalid(e, name,
                "Invalid '%s': decimal above maximum value. Expected a value "
                "<= %g, but got %g instead.",
                name, max, x);
    return -1;
  }
  *out = x;
  return 1;
}

int jb_bool(json_t *obj, const char *name, int flags, int *out, api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_boolean(v))
    return type_error(name, "a boolean", v, e);
  *out = json_is_true(v);
  return 1;
}

/* "'a'", "'a' and 'b'", "'a', 'b', and 'c'" into buf. */
static void list_words(const char *const *allowed, char *buf, size_t n) {
  size_t count = 0, used = 0;
  while (allowed[count])
    count++;
  buf[0] = '\0';
  for (size_t i = 0; i < count && used < n; i++) {
    const char *sep = i == 0                           ? ""
                      : (i == count - 1 && count == 2) ? " and "
                      : i == count - 1                 ? ", and "
                                                       : ", ";
    int w = snprintf(buf + used, n - used, "%s'%s'", sep, allowed[i]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
}

int jb_check_enum(const char *param, const char *value,
                  const char *const *allowed, api_error *e) {
  for (size_t i = 0; allowed[i]; i++)
    if (!strcmp(value, allowed[i]))
      return 0;
  char words[700];
  list_words(allowed, words, sizeof words);
  err_invalid(e, param, "Invalid value: '%.200s'. Supported values are: %s.",
              value, words);
  return -1;
}

int jb_enum(json_t *obj, const char *name, int flags,
            const char *const *allowed, const char **out, api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_string(v))
    return type_error(name, "a string", v, e);
  if (jb_check_enum(name, json_string_value(v), allowed, e) != 0)
    return -1;
  *out = json_string_value(v);
  return 1;
}

int jb_object(json_t *obj, const char *name, int flags, json_t **out,
              api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_object(v))
    return type_error(name, "an object", v, e);
  *out = v;
  return 1;
}

int jb_array(json_t *obj, const char *name, int flags, json_t **out,
             api_error *e) {
  json_t *v;
  int r = field(obj, name, flags, &v, e);
  if (r <= 0)
    return r;
  if (!json_is_array(v))
    return type_error(name, "an array", v, e);
  *out = v;
  return 1;
}

int jb_parse_int(const char *param, const char *value, long long min,
                 long long max, long long *out, api_error *e) {
  char *end;
  errno = 0;
  long long x = strtoll(value, &end, 10);
  if (!*value || *end || errno == ERANGE || isspace((unsigned char)value[0]) ||
      value[0] == '+') {
    err_invalid(e, param,
                "Invalid type for '%s': expected an integer, but got a "
                "string instead.",
                param);
    return -1;
  }
  if (x < min || x > max)
    return range_error_ll(param, x, min, max, e);
  *out = x;
  return 0;
}
