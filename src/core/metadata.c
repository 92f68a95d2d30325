/* The shared `metadata` rule: <= 16 string pairs, keys <= 64 characters,
 * values <= 512 characters. Knows nothing about HTTP or storage. */
#include "core/metadata.h"

#include "core/jsonbody.h"

/* Characters (UTF-8 code points) of a string. */
static size_t chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80)
      n++;
  return n;
}

static int check_pair(const char *key, const json_t *val, api_error *e) {
  size_t klen = chars(key);
  if (klen > METADATA_MAX_KEY) {
    err_invalid(e, "metadata",
                "Invalid 'metadata': key '%.80s...' too long. Expected a key "
                "with maximum length %d, but got a key with length %zu "
                "instead.",
                key, METADATA_MAX_KEY, klen);
    return -1;
  }
  if (!json_is_string(val)) {
    err_invalid(e, "metadata",
                "Invalid type for 'metadata.%.64s': expected a string, but "
                "got %s instead.",
                key, jb_type_words(val));
    return -1;
  }
  size_t vlen = chars(json_string_value(val));
  if (vlen > METADATA_MAX_VALUE) {
    err_invalid(e, "metadata",
                "Invalid 'metadata.%.64s': string too long. Expected a string "
                "with maximum length %d, but got a string with length %zu "
                "instead.",
                key, METADATA_MAX_VALUE, vlen);
    return -1;
  }
  return 0;
}

int metadata_validate(const json_t *v, api_error *e) {
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v)) {
    err_invalid(e, "metadata",
                "Invalid type for 'metadata': expected an object, but got %s "
                "instead.",
                jb_type_words(v));
    return -1;
  }
  size_t n = json_object_size(v);
  if (n > METADATA_MAX_PAIRS) {
    err_invalid(e, "metadata",
                "Invalid 'metadata': too many properties. Expected an object "
                "with at most %d properties, but got an object with %zu "
                "properties instead.",
                METADATA_MAX_PAIRS, n);
    return -1;
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)v, key, val) {
    if (check_pair(key, val, e) != 0)
      return -1;
  }
  return 0;
}

int metadata_get(json_t *obj, json_t **out, api_error *e) {
  json_t *v = obj ? json_object_get(obj, "metadata") : NULL;
  if (!v || json_is_null(v))
    return 0;
  if (metadata_validate(v, e) != 0)
    return -1;
  *out = v;
  return 1;
}
