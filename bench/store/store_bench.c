/* Store and auth micro-benchmark: per-call cost of store_insert, store_get,
 * store_list (20 after a cursor) and auth_resolve (key cache hit, miss =
 * SHA-256 + indexed lookup, unknown key). Prints microseconds per op; run.sh
 * compares two builds of store/sqlite.c side by side. Knows nothing about
 * HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth.h"
#include "store/store.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void objects(store *s, int n) {
  const char *P = store_default_project(s);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    store_obj o = {0};
    snprintf(o.id, sizeof o.id, "file-%06d", i);
    o.created_at = i / 10;
    strcpy(o.filter, "batch");
    o.data = json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", o.id, "object", "file",
                       "bytes", i, "filename", "x.jsonl", "purpose", "batch");
    o.internal = json_pack("{s:s}", "blob", "blob_abc");
    store_insert(s, P, "file", &o);
    store_obj_clear(&o);
  }
  double t1 = now();
  printf("insert:               %7.1f us/op\n", (t1 - t0) / n * 1e6);
  t0 = now();
  for (int i = 0; i < n; i++) {
    store_obj g;
    char id[64];
    snprintf(id, sizeof id, "file-%06d", (i * 7) % n);
    store_get(s, P, "file", id, &g);
    store_obj_clear(&g);
  }
  t1 = now();
  printf("get:                  %7.1f us/op\n", (t1 - t0) / n * 1e6);
  page_params p;
  page_params_init(&p, NULL);
  snprintf(p.after, sizeof p.after, "file-%06d", n / 2);
  int m = 2000;
  t0 = now();
  for (int i = 0; i < m; i++) {
    json_t *l;
    store_list(s, P, "file", NULL, &p, &l);
    json_decref(l);
  }
  t1 = now();
  printf("list 20 after cursor: %7.1f us/op\n", (t1 - t0) / m * 1e6);
}

enum { K = 1000 };
static char keys[K][AUTH_KEY_MAX], hdr[K][AUTH_KEY_MAX + 16];

static void auth(store *s) {
  api_error e;
  principal p;
  for (int i = 0; i < K; i++) {
    auth_key_create(s, "bench", 0, keys[i], NULL, &e);
    snprintf(hdr[i], sizeof hdr[i], "Bearer %.*s", AUTH_KEY_MAX - 1, keys[i]);
  }
  int n = 200000, m = 50000;
  double t0 = now();
  for (int i = 0; i < n; i++)
    auth_resolve(s, hdr[0], NULL, 0, &p, &e);
  double t1 = now();
  printf("resolve, cache hit:   %7.2f us/op\n", (t1 - t0) / n * 1e6);
  /* 1000 keys cycling through the 64-slot cache: nearly every call misses */
  t0 = now();
  for (int i = 0; i < m; i++)
    auth_resolve(s, hdr[(i * 7) % K], NULL, 0, &p, &e);
  t1 = now();
  printf("resolve, cache miss:  %7.2f us/op\n", (t1 - t0) / m * 1e6);
  t0 = now();
  for (int i = 0; i < m; i++)
    auth_resolve(s, "Bearer sk-hearth-unknown", NULL, 0, &p, &e);
  t1 = now();
  printf("resolve, unknown key: %7.2f us/op\n", (t1 - t0) / m * 1e6);
}

int main(void) {
  char dir[] = "/tmp/hearth-store-bench-XXXXXX", err[256], cmd[128];
  store *s;
  if (!mkdtemp(dir) || store_open(dir, &s, err, sizeof err) != STORE_OK) {
    fprintf(stderr, "store_bench: %s\n", err);
    return 1;
  }
  objects(s, 5000);
  auth(s);
  store_close(s);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) ? 1 : 0;
}
