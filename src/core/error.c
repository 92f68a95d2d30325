/* The platform's error object: filling an api_error and rendering it as
 * {"error":{"message","type","param","code"}}. Knows nothing about HTTP
 * transport: http/ sends the JSON with e->status. */
#include "core/error.h"

#include <stdio.h>
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

/* A JSON string, or null for NULL / "". */
static json_t *str_or_null(const char *s) {
  return s && *s ? json_string(s) : json_null();
}

json_t *api_error_json(const api_error *e) {
  json_t *inner = json_object();
  json_object_set_new(inner, "message", json_string(e->message));
  json_object_set_new(inner, "type",
                      json_string(e->type ? e->type : "server_error"));
  json_object_set_new(inner, "param", str_or_null(e->param));
  json_object_set_new(inner, "code", str_or_null(e->code));
  json_t *outer = json_object();
  json_object_set_new(outer, "error", inner);
  return outer;
}
