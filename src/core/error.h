/* The platform's error object: {"error":{"message","type","param","code"}}
 * with its HTTP status. Every layer above store/ reports failures through an
 * api_error; http/ renders it. Knows nothing about HTTP transport. */
#ifndef HEARTH_CORE_ERROR_H
#define HEARTH_CORE_ERROR_H

#include <jansson.h>
#include <stdarg.h>

typedef struct api_error {
  int status;         /* HTTP status; 0 means "no error" */
  const char *type;   /* static: "invalid_request_error", "server_error", ... */
  const char *code;   /* static or NULL: "invalid_api_key", "model_not_found" */
  char param[128];    /* offending parameter, "" when none (rendered null) */
  char message[1024]; /* human-readable, says what was wrong */
} api_error;

/* Fills e (status, type, code, param may be NULL) with a printf message. */
void api_error_set(api_error *e, int status, const char *type, const char *code,
                   const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Shared constructors for the common cases (Redis-style shared replies). */
void err_invalid(api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))); /* 400 invalid_request_error */
void err_not_found(api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))); /* 404 invalid_request_error */
void err_server(api_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))); /* 500 server_error */

/* {"error":{...}} as a new reference. */
json_t *api_error_json(const api_error *e);

#endif
