/* JSON request bodies: parsing and typed field getters that produce the
 * platform's 400 messages, naming the offending parameter.
 *   "We could not parse the JSON body of your request. ..."
 *   "Missing required parameter: 'purpose'."
 *   "Invalid type for 'limit': expected an integer, but got a string instead."
 *   "Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'."
 *   "Invalid 'n': integer below minimum value. Expected a value >= 1, but got
 *    0 instead."
 *   "Invalid 'x': string too long. Expected a string with maximum length 10,
 *    but got a string with length 11 instead."
 * Knows nothing about HTTP transport or storage. */
#ifndef HEARTH_CORE_JSONBODY_H
#define HEARTH_CORE_JSONBODY_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

/* Parses buf[0..len) (need not be NUL-terminated). Returns a new reference
 * to a JSON object, or NULL with e set to a 400 (invalid JSON, or valid JSON
 * that is not an object). Duplicate keys: last one wins. */
json_t *jsonbody_parse(const char *buf, size_t len, api_error *e);

/* Flags for the getters. */
#define JB_OPTIONAL 0
#define JB_REQUIRED 1 /* absent -> "Missing required parameter: 'name'." */
#define JB_NULLABLE 2 /* JSON null is accepted and treated as absent */

/* Every getter returns 1 when the field is present and valid (out written),
 * 0 when absent (or null with JB_NULLABLE) and optional (out untouched),
 * -1 on error (e filled: 400 invalid_request_error, param = name).
 * `name` is the field's key in obj and also the param reported; obj may be
 * NULL (treated as empty). Pointers returned point into obj (borrowed). */

/* String of at most maxlen characters (UTF-8 code points; 0: unlimited). */
int jb_string(json_t *obj, const char *name, int flags, size_t maxlen,
              const char **out, api_error *e);
/* Integer (a JSON integer, or a real with no fraction) in [min, max]. */
int jb_int(json_t *obj, const char *name, int flags, long long min,
           long long max, long long *out, api_error *e);
/* Number (integer or real) in [min, max]. */
int jb_number(json_t *obj, const char *name, int flags, double min, double max,
              double *out, api_error *e);
int jb_bool(json_t *obj, const char *name, int flags, int *out, api_error *e);
/* String that must be one of allowed[] (NULL-terminated list). */
int jb_enum(json_t *obj, const char *name, int flags,
            const char *const *allowed, const char **out, api_error *e);
/* Object / array (borrowed reference). */
int jb_object(json_t *obj, const char *name, int flags, json_t **out,
              api_error *e);
int jb_array(json_t *obj, const char *name, int flags, json_t **out,
             api_error *e);

/* Checks a C string (e.g. a query-string or multipart value) against
 * allowed[] (NULL-terminated). 0 ok; -1 with e = the platform's "Invalid
 * value" 400 naming param. */
int jb_check_enum(const char *param, const char *value,
                  const char *const *allowed, api_error *e);

/* Parses a C string as a base-10 integer in [min, max] (query strings,
 * multipart fields). 0 ok; -1 with e = a 400 naming param ("expected an
 * integer" or the range message). */
int jb_parse_int(const char *param, const char *value, long long min,
                 long long max, long long *out, api_error *e);

/* "a string", "an integer", "a decimal", "a boolean", "an object",
 * "an array", "null": the platform's words for a JSON value's type. */
const char *jb_type_words(const json_t *v);

#endif
