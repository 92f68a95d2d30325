/* The platform's `metadata` rule, shared by every resource that has one:
 * an object of at most 16 pairs, keys at most 64 characters, values strings
 * of at most 512 characters. Knows nothing about HTTP or storage. */
#ifndef HEARTH_CORE_METADATA_H
#define HEARTH_CORE_METADATA_H

#include <jansson.h>

#include "core/error.h"

#define METADATA_MAX_PAIRS 16
#define METADATA_MAX_KEY 64
#define METADATA_MAX_VALUE 512

/* 0 when v is a valid metadata object (or NULL / JSON null: "no metadata");
 * -1 with e = 400 invalid_request_error, param "metadata", and a message
 * saying which rule and which key broke it. */
int metadata_validate(const json_t *v, api_error *e);

/* Convenience: reads obj["metadata"] and validates it. Returns 1 and a
 * borrowed *out when present (an object), 0 when absent or null, -1 on
 * error. */
int metadata_get(json_t *obj, json_t **out, api_error *e);

#endif
