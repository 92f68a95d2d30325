/* Unit tests for store/sqlite.c: CRUD, replace, update, isolation between
 * projects, migrations across re-open, projects, keys, iteration, expiry
 * queries, filtered pagination (store_list_match), batched writes
 * (store_put_many) and concurrent use from several threads. */
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "t.h"

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

static store *open_tmp(char *dir) {
  store *s = NULL;
  char err[256];
  strcpy(dir, "/tmp/hearth-test-store-XXXXXX");
  if (!mkdtemp(dir))
    return NULL;
  if (store_open(dir, &s, err, sizeof err) != STORE_OK)
    fprintf(stderr, "store_open: %s\n", err);
  return s;
}

static void cleanup(store *s, const char *dir) {
  store_close(s);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static store_obj mk(const char *id, long long created, const char *filter) {
  store_obj o = {0};
  snprintf(o.id, sizeof o.id, "%s", id);
  o.created_at = created;
  snprintf(o.filter, sizeof o.filter, "%s", filter ? filter : "");
  o.data = json_pack("{s:s,s:s}", "id", id, "object", "thing");
  o.internal = json_pack("{s:s}", "blob", "blob_x");
  return o;
}

static void test_crud_and_isolation(void) {
  char dir[64];
  store *s = open_tmp(dir);
  CHECK(s != NULL);
  if (!s)
    return;
  const char *A = store_default_project(s);
  CHECK(strncmp(A, "proj_", 5) == 0);
  store_project pb;
  CHECK_INT(store_project_create(s, "b", &pb), STORE_OK);
  const char *B = pb.id;
  store_obj o = mk("t_1", 100, "x"), g;
  o.expires_at = 500;
  CHECK_INT(store_insert(s, A, "thing", &o), STORE_OK);
  CHECK_INT(store_insert(s, A, "thing", &o), STORE_EXISTS);
  CHECK_INT(store_get(s, A, "thing", "t_1", &g), STORE_OK);
  CHECK_STR(json_string_value(json_object_get(g.data, "object")), "thing");
  CHECK_STR(json_string_value(json_object_get(g.internal, "blob")), "blob_x");
  CHECK_INT(g.created_at, 100);
  CHECK_INT(g.expires_at, 500);
  CHECK_STR(g.filter, "x");
  store_obj_clear(&g);
  /* another project, another kind: absent */
  CHECK_INT(store_get(s, B, "thing", "t_1", &g), STORE_NOT_FOUND);
  CHECK_INT(store_get(s, A, "other", "t_1", &g), STORE_NOT_FOUND);
  CHECK_INT(store_delete(s, B, "thing", "t_1"), STORE_NOT_FOUND);
  CHECK_INT(store_put(s, B, "thing", &o), STORE_EXISTS); /* no hijack */
  CHECK_INT(store_get(s, A, "thing", "t_1", &g), STORE_OK);
  store_obj_clear(&g);
  /* put replaces in place */
  json_object_set_new(o.data, "v", json_integer(2));
  CHECK_INT(store_put(s, A, "thing", &o), STORE_OK);
  CHECK_INT(store_get(s, A, "thing", "t_1", &g), STORE_OK);
  CHECK_INT(json_integer_value(json_object_get(g.data, "v")), 2);
  store_obj_clear(&g);
  /* text holding U+0000 (a model's output can) reads back whole */
  json_object_set_new(o.data, "text", json_stringn("a\0b", 3));
  json_object_set_new(o.internal, "text", json_stringn("\0", 1));
  CHECK_INT(store_put(s, A, "thing", &o), STORE_OK);
  CHECK_INT(store_get(s, A, "thing", "t_1", &g), STORE_OK);
  CHECK_INT((int)json_string_length(json_object_get(g.data, "text")), 3);
  CHECK(g.data &&
        !memcmp(json_string_value(json_object_get(g.data, "text")), "a\0b", 3));
  CHECK_INT((int)json_string_length(json_object_get(g.internal, "text")), 1);
  store_obj_clear(&g);
  CHECK_INT(store_delete(s, A, "thing", "t_1"), STORE_OK);
  CHECK_INT(store_delete(s, A, "thing", "t_1"), STORE_NOT_FOUND);
  CHECK_INT(store_get(s, A, "thing", "t_1", &g), STORE_NOT_FOUND);
  store_obj_clear(&o);
  cleanup(s, dir);
}

static int bump(store_obj *o, void *ctx) {
  int *calls = ctx;
  (*calls)++;
  json_int_t v = json_integer_value(json_object_get(o->data, "n"));
  json_object_set_new(o->data, "n", json_integer(v + 1));
  o->expires_at = 77;
  snprintf(o->id, sizeof o->id, "hijacked"); /* ignored */
  return 0;
}

static int refuse(store_obj *o, void *ctx) {
  (void)ctx;
  json_object_set_new(o->data, "n", json_integer(-1));
  return 123;
}

static void test_update(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *A = store_default_project(s);
  store_obj o = mk("u_1", 1, NULL), g;
  json_object_set_new(o.data, "n", json_integer(1));
  store_insert(s, A, "thing", &o);
  int calls = 0;
  CHECK_INT(store_update(s, A, "thing", "u_1", bump, &calls), STORE_OK);
  CHECK_INT(store_update(s, A, "thing", "u_1", refuse, NULL), 123);
  CHECK_INT(store_update(s, A, "thing", "nope", bump, &calls), STORE_NOT_FOUND);
  CHECK_INT(store_update(s, "proj_x", "thing", "u_1", bump, &calls),
            STORE_NOT_FOUND);
  CHECK_INT(calls, 1);
  CHECK_INT(store_get(s, A, "thing", "u_1", &g), STORE_OK);
  CHECK_INT(json_integer_value(json_object_get(g.data, "n")), 2);
  CHECK_INT(g.expires_at, 77);
  store_obj_clear(&g);
  CHECK_INT(store_get(s, A, "thing", "hijacked", &g), STORE_NOT_FOUND);
  store_obj_clear(&o);
  cleanup(s, dir);
}

static void test_reopen_keeps_data_and_schema(void) {
  char dir[64], err[256];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  char proj[64];
  snprintf(proj, sizeof proj, "%s", store_default_project(s));
  int v = store_schema_version(s);
  CHECK(v >= 1);
  store_obj o = mk("r_1", 5, NULL), g;
  store_insert(s, proj, "thing", &o);
  store_obj_clear(&o);
  store_close(s);
  CHECK_INT(store_open(dir, &s, err, sizeof err), STORE_OK);
  CHECK(strcmp(store_default_project(s), proj) == 0); /* not a second default */
  CHECK_INT(store_schema_version(s), v);
  CHECK_INT(store_get(s, proj, "thing", "r_1", &g), STORE_OK);
  store_obj_clear(&g);
  struct stat st;
  char db[128];
  snprintf(db, sizeof db, "%s/hearth.db-wal", dir);
  CHECK(stat(db, &st) == 0); /* WAL mode */
  cleanup(s, dir);
}

static void test_projects_and_keys(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  store_project p, q;
  CHECK_INT(store_project_create(s, "acme", &p), STORE_OK);
  CHECK_INT(store_project_create(s, "acme", &q), STORE_EXISTS);
  CHECK_STR(q.id, p.id);
  CHECK_INT(store_project_by_name(s, "acme", &q), STORE_OK);
  CHECK_INT(store_project_by_id(s, p.id, &q), STORE_OK);
  CHECK_STR(q.name, "acme");
  CHECK_INT(store_project_by_name(s, "nope", &q), STORE_NOT_FOUND);
  long long n = -1;
  CHECK_INT(store_key_count(s, &n), STORE_OK);
  CHECK_INT(n, 0);
  store_key k = {0}, g;
  strcpy(k.id, "key_1");
  strcpy(k.project_id, p.id);
  memset(k.hash, 'a', 64);
  strcpy(k.redacted, "sk-***a");
  k.admin = 1;
  CHECK_INT(store_key_insert(s, &k), STORE_OK);
  CHECK_INT(store_key_insert(s, &k), STORE_EXISTS);
  CHECK_INT(store_key_count(s, &n), STORE_OK);
  CHECK_INT(n, 1); /* the insert invalidated the cached 0 */
  CHECK_INT(store_key_by_hash(s, k.hash, &g), STORE_OK);
  CHECK_STR(g.project_id, p.id);
  CHECK_INT(g.admin, 1);
  CHECK_INT(store_key_by_hash(s, k.hash, &g), STORE_OK); /* cached */
  char other[65];
  memset(other, 'b', 64);
  other[64] = 0;
  CHECK_INT(store_key_by_hash(s, other, &g), STORE_NOT_FOUND);
  CHECK_INT(store_key_delete(s, "key_1"), STORE_OK);
  CHECK_INT(store_key_by_hash(s, k.hash, &g), STORE_NOT_FOUND);
  CHECK_INT(store_key_delete(s, "key_1"), STORE_NOT_FOUND);
  cleanup(s, dir);
}

typedef struct collect {
  int n;
  char ids[300][64];
  store *s;
  int delete_each;
} collect;

static int collect_cb(const char *project, store_obj *o, void *ctx) {
  collect *c = ctx;
  if (c->n < 300)
    snprintf(c->ids[c->n], 64, "%s", o->id);
  c->n++;
  if (c->delete_each)
    store_delete(c->s, project, "thing", o->id);
  return 0;
}

static void test_each_and_expired(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *A = store_default_project(s);
  for (int i = 0; i < 250; i++) {
    char id[32];
    snprintf(id, sizeof id, "e_%03d", i);
    store_obj o = mk(id, 10 + i / 50, i % 3 ? "rest" : "three");
    o.expires_at = i < 120 ? 1000 + i : 0;
    store_insert(s, A, "thing", &o);
    store_obj_clear(&o);
  }
  static collect c;
  memset(&c, 0, sizeof c);
  CHECK_INT(store_each(s, A, "thing", NULL, collect_cb, &c), STORE_OK);
  CHECK_INT(c.n, 250); /* crosses batch boundaries */
  CHECK_STR(c.ids[0], "e_000");
  CHECK_STR(c.ids[249], "e_249");
  memset(&c, 0, sizeof c);
  store_each(s, A, "thing", "three", collect_cb, &c);
  CHECK_INT(c.n, 84);
  memset(&c, 0, sizeof c);
  CHECK_INT(store_each_expired(s, "thing", 1049, 1000, collect_cb, &c), 50);
  CHECK_STR(c.ids[0], "e_000");
  memset(&c, 0, sizeof c);
  c.s = s;
  c.delete_each = 1;
  CHECK_INT(store_each_expired(s, "thing", 5000, 30, collect_cb, &c), 30);
  CHECK_INT(store_each_expired(s, "thing", 5000, 1000, collect_cb, &c), 90);
  CHECK_INT(store_each_expired(s, "thing", 5000, 1000, collect_cb, &c), 0);
  cleanup(s, dir);
}

/* ---- concurrency ----------------------------------------------------- */

typedef struct worker {
  store *s;
  char project[64];
  int t, errors;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 150; i++) {
    char id[32];
    snprintf(id, sizeof id, "c_%d_%d", w->t, i);
    store_obj o = mk(id, i, NULL), g;
    if (store_insert(w->s, w->project, "thing", &o) != STORE_OK)
      w->errors++;
    if (store_get(w->s, w->project, "thing", id, &g) != STORE_OK)
      w->errors++;
    store_obj_clear(&g);
    if (i % 3 == 0 && store_delete(w->s, w->project, "thing", id) != STORE_OK)
      w->errors++;
    page_params p;
    page_params_init(&p, NULL);
    json_t *l = NULL;
    if (store_list(w->s, w->project, "thing", NULL, &p, &l) != STORE_OK)
      w->errors++;
    json_decref(l);
    store_obj_clear(&o);
  }
  return NULL;
}

/* store_list_match: keeps objects whose data.n is a multiple of *ctx. */
static int multiple_of(const store_obj *o, void *ctx) {
  json_int_t n = json_integer_value(json_object_get(o->data, "n"));
  return n % *(int *)ctx == 0;
}

/* Walks every page (limit per page) with `after`, or when back is an id
 * with `before` from that id towards the start, and collects the ids in
 * list order in got; returns the number of pages and checks that every page
 * but the last is full. */
static int walk(store *s, const char *project, int order, int limit, int k,
                const char *back, char got[][16], int *ngot) {
  store_match m = {NULL, multiple_of, &k};
  page_params p;
  page_params_init(&p, NULL);
  p.order = order;
  p.limit = limit;
  if (back)
    snprintf(p.before, sizeof p.before, "%s", back);
  int pages = 0;
  *ngot = 0;
  for (;;) {
    json_t *l = NULL;
    int rc = store_list_match(s, project, "thing", NULL, &p, &m, &l);
    CHECK_INT(rc, STORE_OK);
    if (rc != STORE_OK)
      return pages;
    json_t *data = json_object_get(l, "data");
    size_t n = json_array_size(data);
    int more = json_is_true(json_object_get(l, "has_more"));
    pages++;
    /* Backwards pages come nearest-first in order; prepend them. */
    if (back) {
      memmove(got + n, got, (size_t)*ngot * sizeof *got);
      for (size_t i = 0; i < n; i++)
        snprintf(
            got[i], 16, "%s",
            json_string_value(json_object_get(json_array_get(data, i), "id")));
    } else {
      for (size_t i = 0; i < n; i++)
        snprintf(
            got[*ngot + i], 16, "%s",
            json_string_value(json_object_get(json_array_get(data, i), "id")));
    }
    *ngot += (int)n;
    if (n)
      snprintf(
          back ? p.before : p.after, PAGE_CURSOR_MAX, "%s",
          json_string_value(json_object_get(l, back ? "first_id" : "last_id")));
    json_decref(l);
    if (!more || pages > 400)
      return pages;
    CHECK_INT((int)n, limit);
  }
}

static void test_list_match(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *A = store_default_project(s);
  for (int i = 0; i < 250; i++) {
    char id[32];
    snprintf(id, sizeof id, "m_%03d", i);
    store_obj o = mk(id, 10 + i / 40, NULL);
    json_object_set_new(o.data, "n", json_integer(i));
    store_insert(s, A, "thing", &o);
    store_obj_clear(&o);
  }
  static char got[300][16];
  int ks[] = {1, 7, 120, 1000}, limits[] = {1, 3, 100};
  for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
    for (size_t b = 0; b < sizeof limits / sizeof *limits; b++)
      for (int order = 0; order < 2; order++)
        for (int back = 0; back < 2; back++) {
          /* Matches: n = 0, k, 2k, ... <= 249; walking back from the last
           * one in list order sees all the others. */
          int k = ks[a], ngot, nmatch = 249 / k + 1;
          char last[16];
          snprintf(last, sizeof last, "m_%03d",
                   order == PAGE_ASC ? (nmatch - 1) * k : 0);
          int expect = back ? nmatch - 1 : nmatch;
          int pages =
              walk(s, A, order, limits[b], k, back ? last : NULL, got, &ngot);
          CHECK_INT(ngot, expect);
          CHECK_INT(pages, expect ? (expect + limits[b] - 1) / limits[b] : 1);
          for (int i = 0; i < ngot && i < expect; i++) {
            int n = order == PAGE_ASC ? i * k : (nmatch - 1 - i) * k;
            char want[16];
            snprintf(want, sizeof want, "m_%03d", n);
            const char *g = got[i], *w = want;
            CHECK_STR(g, w);
          }
        }
  /* k = 100000: only m_000 matches, and only in A; B sees an empty page. */
  int k = 100000;
  page_params p;
  page_params_init(&p, NULL);
  json_t *l = NULL;
  store_project pb;
  CHECK_INT(store_project_create(s, "b", &pb), STORE_OK);
  store_match m = {NULL, multiple_of, &k};
  CHECK_INT(store_list_match(s, pb.id, "thing", NULL, &p, &m, &l), STORE_OK);
  CHECK_INT((int)json_array_size(json_object_get(l, "data")), 0);
  CHECK(json_is_false(json_object_get(l, "has_more")));
  json_decref(l);
  /* A cursor naming nothing is STORE_NOT_FOUND, as for store_list. */
  snprintf(p.after, sizeof p.after, "nope");
  CHECK_INT(store_list_match(s, A, "thing", NULL, &p, &m, &l), STORE_NOT_FOUND);
  cleanup(s, dir);
}

/* ids of a store_list_match page, comma-joined. */
static void match_ids(store *s, const char *project, const store_match *m,
                      int limit, char *buf, size_t n) {
  page_params p;
  page_params_init(&p, NULL);
  p.order = PAGE_ASC;
  p.limit = limit;
  json_t *l = NULL, *o;
  size_t i;
  buf[0] = 0;
  CHECK_INT(store_list_match(s, project, "thing", NULL, &p, m, &l), STORE_OK);
  json_array_foreach(json_object_get(l, "data"), i, o) {
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "%s%s", k ? "," : "",
             json_string_value(json_object_get(o, "id")));
  }
  if (json_is_true(json_object_get(l, "has_more")))
    snprintf(buf + strlen(buf), n - strlen(buf), "+");
  json_decref(l);
}

static int tag_is(const store_obj *o, void *ctx) {
  return !strcmp(json_string_value(json_object_get(o->data, "tag")), ctx);
}

static void test_list_contains(void) {
  char dir[64], ids[256];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *A = store_default_project(s);
  const char *tags[] = {"a%b", "axb", "a_b", "a\\b", "A%B", "a%b"};
  for (int i = 0; i < 6; i++) {
    char id[16];
    snprintf(id, sizeof id, "c_%d", i);
    store_obj o = mk(id, 10, NULL);
    json_object_set_new(o.data, "tag", json_string(tags[i]));
    store_insert(s, A, "thing", &o);
    store_obj_clear(&o);
  }
  /* LIKE's wildcards and escape character are matched literally. */
  const char *pct[] = {"\"tag\":\"a%b\"", NULL};
  store_match m = {pct, NULL, NULL};
  match_ids(s, A, &m, 10, ids, sizeof ids);
  const char *got = ids;
  CHECK_STR(got, "c_0,c_4,c_5"); /* A%B: ASCII case folds (a superset) */
  m.fn = tag_is;
  m.ctx = "a%b";
  match_ids(s, A, &m, 10, ids, sizeof ids);
  CHECK_STR(got, "c_0,c_5");
  match_ids(s, A, &m, 1, ids, sizeof ids);
  CHECK_STR(got, "c_0+");
  const char *und[] = {"\"a_b\"", NULL};
  store_match mu = {und, NULL, NULL};
  match_ids(s, A, &mu, 10, ids, sizeof ids);
  CHECK_STR(got, "c_2");
  const char *bs[] = {"\"a\\\\b\"", NULL}; /* JSON text "a\\b" */
  store_match mb = {bs, NULL, NULL};
  match_ids(s, A, &mb, 10, ids, sizeof ids);
  CHECK_STR(got, "c_3");
  /* Several substrings must all be there. */
  const char *two[] = {"\"tag\"", "axb", NULL};
  store_match m2 = {two, NULL, NULL};
  match_ids(s, A, &m2, 10, ids, sizeof ids);
  CHECK_STR(got, "c_1");
  cleanup(s, dir);
}

static void test_put_many(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  const char *A = store_default_project(s);
  store_project pb;
  CHECK_INT(store_project_create(s, "b", &pb), STORE_OK);
  store_obj objs[3] = {mk("pm_1", 5, "f"), mk("pm_2", 5, "f"),
                       mk("pm_3", 5, NULL)};
  const char *kinds[3] = {"thing", "thing", "other"};
  CHECK_INT(store_put_many(s, A, 3, kinds, objs), STORE_OK);
  store_obj g;
  CHECK_INT(store_get(s, A, "other", "pm_3", &g), STORE_OK);
  store_obj_clear(&g);
  /* Again: an upsert, each keeps its place. */
  json_object_set_new(objs[0].data, "v", json_integer(2));
  CHECK_INT(store_put_many(s, A, 3, kinds, objs), STORE_OK);
  CHECK_INT(store_get(s, A, "thing", "pm_1", &g), STORE_OK);
  CHECK_INT(json_integer_value(json_object_get(g.data, "v")), 2);
  store_obj_clear(&g);
  /* In B, pm_2 is A's id: nothing at all is written. */
  store_obj fresh[2] = {mk("pm_new", 6, NULL), mk("pm_2", 6, NULL)};
  CHECK_INT(store_put_many(s, pb.id, 2, kinds, fresh), STORE_EXISTS);
  CHECK_INT(store_get(s, pb.id, "thing", "pm_new", &g), STORE_NOT_FOUND);
  CHECK_INT(store_put_many(s, pb.id, 0, kinds, fresh), STORE_OK);
  for (int i = 0; i < 3; i++)
    store_obj_clear(&objs[i]);
  for (int i = 0; i < 2; i++)
    store_obj_clear(&fresh[i]);
  cleanup(s, dir);
}

static void test_concurrent_threads(void) {
  char dir[64];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  enum { T = 12 }; /* more threads than pooled connections */
  pthread_t th[T];
  worker w[T];
  for (int t = 0; t < T; t++) {
    w[t] = (worker){s, "", t, 0};
    store_project p;
    char name[16];
    snprintf(name, sizeof name, "p%d", t % 3);
    store_project_create(s, name, &p);
    snprintf(w[t].project, sizeof w[t].project, "%s", p.id);
    pthread_create(&th[t], NULL, work, &w[t]);
  }
  int errors = 0;
  for (int t = 0; t < T; t++) {
    pthread_join(th[t], NULL);
    errors += w[t].errors;
  }
  CHECK_INT(errors, 0);
  /* each project holds its 4 threads' surviving objects, no others */
  for (int t = 0; t < 3; t++) {
    static collect c;
    memset(&c, 0, sizeof c);
    store_each(s, w[t].project, "thing", NULL, collect_cb, &c);
    CHECK_INT(c.n, 4 * 100);
  }
  cleanup(s, dir);
}

static void test_open_errors(void) {
  store *s = NULL;
  char err[256] = "";
  CHECK_INT(store_open("/proc/hearth-cannot-exist/x", &s, err, sizeof err),
            STORE_ERROR);
  CHECK(s == NULL);
  CHECK(strlen(err) > 0);
}

static void test_newer_schema_is_refused(void) {
  char dir[64], err[256] = "", db[128];
  store *s = open_tmp(dir);
  if (!s) {
    CHECK(0);
    return;
  }
  store_close(s);
  /* a database written by a future hearth */
  snprintf(db, sizeof db, "%s/hearth.db", dir);
  sqlite3 *raw;
  CHECK_INT(sqlite3_open(db, &raw), SQLITE_OK);
  CHECK_INT(sqlite3_exec(raw,
                         "INSERT INTO schema_version (version, applied_at) "
                         "VALUES (999, 0)",
                         NULL, NULL, NULL),
            SQLITE_OK);
  sqlite3_close(raw);
  s = NULL;
  CHECK_INT(store_open(dir, &s, err, sizeof err), STORE_ERROR);
  CHECK(s == NULL);
  CHECK(strlen(err) > 0);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  RUN(test_crud_and_isolation);
  RUN(test_update);
  RUN(test_reopen_keeps_data_and_schema);
  RUN(test_projects_and_keys);
  RUN(test_each_and_expired);
  RUN(test_list_match);
  RUN(test_list_contains);
  RUN(test_put_many);
  RUN(test_concurrent_threads);
  RUN(test_open_errors);
  RUN(test_newer_schema_is_refused);
  T_MAIN_END();
}
