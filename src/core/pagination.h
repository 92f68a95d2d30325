/* Cursor pagination, one implementation for every list endpoint:
 * query parameters limit / after / before / order, and the list envelope
 * {"object":"list","data":[...],"first_id","last_id","has_more"}.
 * The store applies page_params (store_list); api handlers only parse and
 * render. Knows nothing about HTTP transport or SQL. */
#ifndef HEARTH_CORE_PAGINATION_H
#define HEARTH_CORE_PAGINATION_H

#include <jansson.h>

#include "core/error.h"

typedef enum page_order { PAGE_DESC = 0, PAGE_ASC = 1 } page_order;

#define PAGE_CURSOR_MAX 128

typedef struct page_params {
  int limit;                    /* 1..max */
  char after[PAGE_CURSOR_MAX];  /* object id, "" when none */
  char before[PAGE_CURSOR_MAX]; /* object id, "" when none */
  page_order order;
} page_params;

/* Per-resource defaults (the spec differs per list: files allow 10000). */
typedef struct page_spec {
  int default_limit;        /* 20 for most lists */
  int max_limit;            /* 100 for most lists */
  page_order default_order; /* PAGE_DESC for most lists */
} page_spec;

/* {20, 100, PAGE_DESC} */
page_spec page_spec_default(void);

/* Looks a query parameter up by name; returns NULL when absent. */
typedef const char *(*page_lookup_fn)(void *ctx, const char *key);

/* Fills p from the lookup (spec NULL = page_spec_default()). Returns 0, or
 * -1 with e = 400 naming 'limit' / 'order' / 'after' / 'before' ("Invalid
 * type for 'limit': expected an integer, but got a string instead.",
 * "Invalid 'limit': integer below minimum value. ...", "Invalid value:
 * 'sideways'. Supported values are: 'asc' and 'desc'."). An empty value is
 * treated as absent. */
int page_parse(page_params *p, page_lookup_fn get, void *ctx,
               const page_spec *spec, api_error *e);

/* Defaults without parsing anything (internal lists, tests). */
void page_params_init(page_params *p, const page_spec *spec);

/* The list envelope. data is stolen (an array of objects, each with an
 * "id"); first_id / last_id are data's first and last "id", or null when
 * data is empty. Returns a new reference (NULL only on OOM). */
json_t *page_render(json_t *data, int has_more);

#endif
