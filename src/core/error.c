/* The platform's error object: filling an api_error and rendering it as
 * {"error":{"message","type","param","code"}}. Knows nothing about HTTP
 * transport: http/ sends the JSON with e->status. */
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void error_vset(api_error *e, int status, const char *type,
                       const char *code, const char *param, const char *fmt,
                       va_list ap) {
  e->status = status;
  e->type = type;
  e->code = code;
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  vsnprintf(e->message, sizeof e->message, fmt, ap);
}

void api_error_set(api_error *e, int status, const char *type, const char *code,
                   const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(e, status, type, code, param, fmt, ap);
  va_end(ap);
}

void err_invalid(api_error *e, const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(e, 400, "invalid_request_error", NULL, param, fmt, ap);
  va_end(ap);
}

void err_not_found(api_error *e, const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(e, 404, "invalid_request_error", NULL, param, fmt, ap);
  va_end(ap);
}

void err_server(api_error *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vset(e, 500, "server_error", NULL, NULL, fmt, ap);
  va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p) {
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4)
    return 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
      (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
    return 0;
  return n;
}

/* A JSON string of s; bytes that are not UTF-8 (messages may quote what a
 * client sent) become U+FFFD so the message is never lost. */
static json_t *json_text(const char *s) {
  json_t *v = json_string(s);
  if (v)
    return v;
  size_t n = strlen(s);
  char *buf = malloc(3 * n + 1), *o = buf;
  if (!buf)
    return json_string("");
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t k = utf8_seq(p);
    if (k == 0) {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      p++;
    } else {
      memcpy(o, p, k);
      o += k;
      p += k;
    }
  }
  *o = '\0';
  v = json_string(buf);
  free(buf);
  return v ? v : json_string("");
}

/* A JSON string, or null for NULL / "". */
static json_t *str_or_null(const char *s) {
  return s && *s ? json_text(s) : json_null();
}

json_t *api_error_json(const api_error *e) {
  json_t *inner = json_object();
  json_object_set_new(inner, "message", json_text(e->message));
  json_object_set_new(inner, "type",
                      json_string(e->type ? e->type : "server_error"));
  json_object_set_new(inner, "param", str_or_null(e->param));
  json_object_set_new(inner, "code", str_or_null(e->code));
  json_t *outer = json_object();
  json_object_set_new(outer, "error", inner);
  return outer;
}
