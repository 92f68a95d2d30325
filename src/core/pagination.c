/* Cursor pagination: parsing limit/after/before/order and rendering the
 * list envelope. The store applies the parameters (store_list). Knows
 * nothing about HTTP transport or SQL. */
#include "core/pagination.h"

#include <stdio.h>
#include <string.h>

#include "core/jsonbody.h"

page_spec page_spec_default(void) {
  page_spec s = {20, 100, PAGE_DESC};
  return s;
}

void page_params_init(page_params *p, const page_spec *spec) {
  page_spec d = spec ? *spec : page_spec_default();
  memset(p, 0, sizeof *p);
  p->limit = d.default_limit;
  p->order = d.default_order;
}

static const char *value(page_lookup_fn get, void *ctx, const char *key) {
  const char *v = get ? get(ctx, key) : NULL;
  return v && *v ? v : NULL;
}

static int cursor(const char *name, const char *v, char *dst, api_error *e) {
  size_t n = strlen(v);
  if (n >= PAGE_CURSOR_MAX) {
    err_invalid(e, name,
                "Invalid '%s': string too long. Expected a string with "
                "maximum length %d, but got a string with length %zu "
                "instead.",
                name, PAGE_CURSOR_MAX - 1, n);
    return -1;
  }
  memcpy(dst, v, n + 1);
  return 0;
}

int page_parse(page_params *p, page_lookup_fn get, void *ctx,
               const page_spec *spec, api_error *e) {
  page_spec d = spec ? *spec : page_spec_default();
  static const char *const orders[] = {"asc", "desc", NULL};
  page_params_init(p, &d);
  const char *v;
  if ((v = value(get, ctx, "limit"))) {
    long long lim;
    if (jb_parse_int("limit", v, 1, d.max_limit, &lim, e) != 0)
      return -1;
    p->limit = (int)lim;
  }
  if ((v = value(get, ctx, "order"))) {
    if (jb_check_enum("order", v, orders, e) != 0)
      return -1;
    p->order = !strcmp(v, "asc") ? PAGE_ASC : PAGE_DESC;
  }
  if ((v = value(get, ctx, "after")) && cursor("after", v, p->after, e) != 0)
    return -1;
  if ((v = value(get, ctx, "before")) && cursor("before", v, p->before, e) != 0)
    return -1;
  return 0;
}

static json_t *id_of(json_t *data, size_t i) {
  json_t *id = json_object_get(json_array_get(data, i), "id");
  return id ? json_incref(id) : json_null();
}

json_t *page_render(json_t *data, int has_more) {
  if (!data)
    data = json_array();
  size_t n = json_array_size(data);
  json_t *out = json_object();
  if (!out) {
    json_decref(data);
    return NULL;
  }
  json_object_set_new(out, "object", json_string("list"));
  json_object_set_new(out, "data", data);
  json_object_set_new(out, "first_id", n ? id_of(data, 0) : json_null());
  json_object_set_new(out, "last_id", n ? id_of(data, n - 1) : json_null());
  json_object_set_new(out, "has_more", json_boolean(has_more));
  return out;
}
