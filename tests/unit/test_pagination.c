/* Unit tests for core/pagination.c (parsing, envelope) and for the shared
 * cursor pagination as the store applies it: both orders, after/before
 * across pages, filters, has_more, first_id/last_id. */
#include <ftw.h>
#include <unistd.h>

#include "core/pagination.h"
#include "store/store.h"
#include "t.h"

typedef struct kv {
  const char *k[4], *v[4];
} kv;

static const char *lookup(void *ctx, const char *key) {
  kv *q = ctx;
  for (int i = 0; i < 4 && q->k[i]; i++)
    if (!strcmp(q->k[i], key))
      return q->v[i];
  return NULL;
}

static void test_parse_defaults_and_values(void) {
  page_params p;
  api_error e;
  kv none = {{0}, {0}};
  CHECK_INT(page_parse(&p, lookup, &none, NULL, &e), 0);
  CHECK_INT(p.limit, 20);
  CHECK_INT(p.order, PAGE_DESC);
  CHECK_STR(p.after, "");
  kv q = {{"limit", "order", "after", "before"}, {"5", "asc", "a1", "b2"}};
  CHECK_INT(page_parse(&p, lookup, &q, NULL, &e), 0);
  CHECK_INT(p.limit, 5);
  CHECK_INT(p.order, PAGE_ASC);
  CHECK_STR(p.after, "a1");
  CHECK_STR(p.before, "b2");
  page_spec files = {10000, 10000, PAGE_DESC};
  kv big = {{"limit"}, {"5000"}};
  CHECK_INT(page_parse(&p, lookup, &big, &files, &e), 0);
  CHECK_INT(p.limit, 5000);
  CHECK_INT(page_parse(&p, lookup, &big, NULL, &e), -1);
  CHECK_STR(e.param, "limit");
  kv empty = {{"limit", "order"}, {"", ""}};
  CHECK_INT(page_parse(&p, lookup, &empty, NULL, &e), 0);
  CHECK_INT(p.limit, 20);
}

static void test_parse_errors(void) {
  page_params p;
  api_error e;
  kv a = {{"limit"}, {"ten"}};
  CHECK_INT(page_parse(&p, lookup, &a, NULL, &e), -1);
  CHECK_STR(e.message, "Invalid type for 'limit': expected an integer, but "
                       "got a string instead.");
  kv b = {{"limit"}, {"0"}};
  CHECK_INT(page_parse(&p, lookup, &b, NULL, &e), -1);
  CHECK(strstr(e.message, "integer below minimum value") != NULL);
  kv c = {{"order"}, {"sideways"}};
  CHECK_INT(page_parse(&p, lookup, &c, NULL, &e), -1);
  CHECK_STR(e.param, "order");
  CHECK_STR(e.message, "Invalid value: 'sideways'. Supported values are: "
                       "'asc' and 'desc'.");
  char longc[300];
  memset(longc, 'x', sizeof longc - 1);
  longc[sizeof longc - 1] = 0;
  kv d = {{"after"}, {longc}};
  CHECK_INT(page_parse(&p, lookup, &d, NULL, &e), -1);
  CHECK_STR(e.param, "after");
}

static void test_render(void) {
  json_t *l = page_render(json_array(), 0);
  CHECK_STR(json_string_value(json_object_get(l, "object")), "list");
  CHECK(json_is_null(json_object_get(l, "first_id")));
  CHECK(json_is_null(json_object_get(l, "last_id")));
  CHECK(json_is_false(json_object_get(l, "has_more")));
  json_decref(l);
  json_t *d = json_pack("[{s:s},{s:s},{s:s}]", "id", "a", "id", "b", "id", "c");
  l = page_render(d, 1);
  CHECK_STR(json_string_value(json_object_get(l, "first_id")), "a");
  CHECK_STR(json_string_value(json_object_get(l, "last_id")), "c");
  CHECK(json_is_true(json_object_get(l, "has_more")));
  CHECK_INT(json_array_size(json_object_get(l, "data")), 3);
  json_decref(l);
}

/* ---- through the store ---------------------------------------------- */

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

#define N 23
static char ids[N][64];

static store *fill(char *dir) {
  store *s;
  char err[256];
  strcpy(dir, "/tmp/hearth-test-page-XXXXXX");
  if (!mkdtemp(dir) || store_open(dir, &s, err, sizeof err) != STORE_OK)
    return NULL;
  const char *proj = store_default_project(s);
  for (int i = 0; i < N; i++) {
    store_obj o = {0};
    snprintf(o.id, sizeof o.id, "obj_%02d", i);
    snprintf(ids[i], sizeof ids[i], "%s", o.id);
    /* several objects per second, as in real life: order must fall back
     * to insertion order within one created_at */
    o.created_at = 1000 + i / 4;
    snprintf(o.filter, sizeof o.filter, "%s", i % 2 ? "odd" : "even");
    o.data = json_pack("{s:s,s:i}", "id", o.id, "n", i);
    store_insert(s, proj, "thing", &o);
    store_obj_clear(&o);
  }
  return s;
}

/* Walks every page with `after` (or `before` from the far end) and checks
 * the concatenation is the whole ordered set. */
static void walk(store *s, page_order order, int use_before, int limit) {
  const char *proj = store_default_project(s);
  char seen[N][64];
  int n = 0, pages = 0;
  page_params p;
  page_params_init(&p, NULL);
  p.limit = limit;
  p.order = order;
  if (use_before) /* start past the far end: the last object in order */
    snprintf(p.before, sizeof p.before, "%s",
             order == PAGE_ASC ? ids[N - 1] : ids[0]);
  for (;;) {
    json_t *l = NULL;
    CHECK_INT(store_list(s, proj, "thing", NULL, &p, &l), STORE_OK);
    json_t *d = json_object_get(l, "data");
    size_t k = json_array_size(d);
    pages++;
    if (use_before) { /* prepend: pages come from the end backwards */
      memmove(seen[k], seen[0], sizeof seen[0] * (size_t)n);
      for (size_t i = 0; i < k; i++)
        snprintf(
            seen[i], 64, "%s",
            json_string_value(json_object_get(json_array_get(d, i), "id")));
    } else {
      for (size_t i = 0; i < k; i++)
        snprintf(
            seen[n + (int)i], 64, "%s",
            json_string_value(json_object_get(json_array_get(d, i), "id")));
    }
    n += (int)k;
    int more = json_is_true(json_object_get(l, "has_more"));
    const char *cur = json_string_value(
        json_object_get(l, use_before ? "first_id" : "last_id"));
    if (use_before)
      snprintf(p.before, sizeof p.before, "%s", cur ? cur : "");
    else
      snprintf(p.after, sizeof p.after, "%s", cur ? cur : "");
    json_decref(l);
    if (!more || pages > N + 2)
      break;
  }
  int expect_n = use_before ? N - 1 : N;
  CHECK_INT(n, expect_n);
  CHECK_INT(pages, (expect_n + limit - 1) / limit);
  for (int i = 0; i < n && i < expect_n; i++) {
    int idx = order == PAGE_ASC ? i : N - 1 - i;
    CHECKF(!strcmp(seen[i], ids[idx]), "pos %d: %s != %s", i, seen[i],
           ids[idx]);
  }
}

static void test_store_pages_both_orders(void) {
  char dir[64];
  store *s = fill(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  int limits[] = {1, 5, 7, 23, 100};
  for (int i = 0; i < 5; i++) {
    walk(s, PAGE_ASC, 0, limits[i]);
    walk(s, PAGE_DESC, 0, limits[i]);
    walk(s, PAGE_ASC, 1, limits[i]);
    walk(s, PAGE_DESC, 1, limits[i]);
  }
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_store_before_is_nearest_and_filter(void) {
  char dir[64];
  store *s = fill(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *proj = store_default_project(s);
  page_params p;
  page_params_init(&p, NULL);
  p.limit = 3;
  p.order = PAGE_ASC;
  strcpy(p.before, "obj_10");
  json_t *l;
  CHECK_INT(store_list(s, proj, "thing", NULL, &p, &l), STORE_OK);
  CHECK_STR(json_string_value(json_object_get(l, "first_id")), "obj_07");
  CHECK_STR(json_string_value(json_object_get(l, "last_id")), "obj_09");
  CHECK(json_is_true(json_object_get(l, "has_more")));
  json_decref(l);
  /* after and before together: a window */
  strcpy(p.after, "obj_03");
  p.limit = 100;
  CHECK_INT(store_list(s, proj, "thing", NULL, &p, &l), STORE_OK);
  CHECK_INT(json_array_size(json_object_get(l, "data")), 6);
  CHECK(json_is_false(json_object_get(l, "has_more")));
  json_decref(l);
  /* filter, desc */
  page_params_init(&p, NULL);
  p.limit = 4;
  CHECK_INT(store_list(s, proj, "thing", "odd", &p, &l), STORE_OK);
  CHECK_STR(json_string_value(json_object_get(l, "first_id")), "obj_21");
  CHECK_STR(json_string_value(json_object_get(l, "last_id")), "obj_15");
  json_decref(l);
  /* unknown cursor, other project's view */
  strcpy(p.after, "obj_nope");
  CHECK_INT(store_list(s, proj, "thing", NULL, &p, &l), STORE_NOT_FOUND);
  page_params_init(&p, NULL);
  CHECK_INT(store_list(s, "proj_other", "thing", NULL, &p, &l), STORE_OK);
  CHECK_INT(json_array_size(json_object_get(l, "data")), 0);
  CHECK(json_is_null(json_object_get(l, "first_id")));
  json_decref(l);
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_parse_defaults_and_values);
  RUN(test_parse_errors);
  RUN(test_render);
  RUN(test_store_pages_both_orders);
  RUN(test_store_before_is_nearest_and_filter);
  T_MAIN_END();
}
