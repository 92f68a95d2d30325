/* Unit tests of the Models handlers (api/models.c) called directly, without
 * HTTP: models/NAME.gguf listing, aliases from aliases.json and flags,
 * name resolution (no path escapes), retrieve, the 404 model_not_found
 * reply, and delete (admin only, aliases refused, the list follows at
 * once). */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "t.h"

static char dir[] = "/tmp/hearth-test-models-XXXXXX";
static api_ctx ctx;

static void write_file(const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Calls handler h with path parameter model=name. */
static void call(api_handler h, const char *name, int admin, api_resp *r) {
  api_params p = {0};
  api_req q = {0};
  p.n = 1;
  p.name[0] = "model";
  p.name_len[0] = 5;
  snprintf(p.buf, sizeof p.buf, "%s", name);
  p.value[0] = p.buf;
  q.ctx = &ctx;
  q.params = &p;
  q.admin = admin;
  api_resp_init(r);
  h(&q, r);
}

/* The ids of the list body, comma-joined. */
static void list_ids(char *out, size_t n) {
  api_resp r;
  call(api_models_list, "", 0, &r);
  out[0] = 0;
  json_t *j = r.raw ? json_loadb(r.raw, r.raw_len, 0, NULL) : NULL;
  json_t *m;
  size_t i;
  json_array_foreach(json_object_get(j, "data"), i, m) {
    size_t k = strlen(out);
    snprintf(out + k, n - k, "%s%s", k ? "," : "",
             json_string_value(json_object_get(m, "id")));
  }
  json_decref(j);
  api_resp_clear(&r);
}

static void test_resolve(void) {
  char path[1200];
  CHECK_STR(api_model_resolve(&ctx, "tiny", path, sizeof path), "tiny");
  CHECK_STR(api_model_resolve(&ctx, "gpt-4o-mini", path, sizeof path), "tiny");
  CHECK(strstr(path, "/models/tiny.gguf") != NULL);
  CHECK_STR(api_model_resolve(&ctx, "flagged", path, sizeof path), "other");
  CHECK(api_model_resolve(&ctx, "dangling", path, sizeof path) == NULL);
  CHECK(api_model_resolve(&ctx, "notes", path, sizeof path) == NULL);
  CHECK(api_model_resolve(&ctx, "../models/tiny", path, sizeof path) == NULL);
  CHECK(api_model_resolve(&ctx, ".hidden", path, sizeof path) == NULL);
  CHECK(api_model_resolve(&ctx, "", path, sizeof path) == NULL);
}

static void test_list(void) {
  char ids[512];
  list_ids(ids, sizeof ids);
  /* Sorted; the dangling alias and the .txt file are not models. */
  const char *got = ids;
  CHECK_STR(got, "flagged,gpt-4o-mini,other,tiny");
}

static void test_retrieve(void) {
  api_resp r;
  call(api_models_retrieve, "gpt-4o-mini", 0, &r);
  CHECK_INT(r.err.status, 0);
  CHECK_STR(json_string_value(json_object_get(r.json, "id")), "gpt-4o-mini");
  CHECK_STR(json_string_value(json_object_get(r.json, "object")), "model");
  CHECK_STR(json_string_value(json_object_get(r.json, "owned_by")), "hearth");
  CHECK(json_is_integer(json_object_get(r.json, "created")));
  api_resp_clear(&r);
  call(api_models_retrieve, "nope", 0, &r);
  CHECK_INT(r.err.status, 404);
  CHECK_STR(r.err.code, "model_not_found");
  const char *msg = r.err.message;
  CHECK_STR(msg, "The model `nope` does not exist or you do not have access to "
                 "it.");
  api_resp_clear(&r);
}

static void test_delete(void) {
  api_resp r;
  char ids[512], p[1024];
  call(api_models_delete, "other", 0, &r); /* not admin */
  CHECK_INT(r.err.status, 403);
  api_resp_clear(&r);
  call(api_models_delete, "gpt-4o-mini", 1, &r); /* an alias */
  CHECK_INT(r.err.status, 400);
  api_resp_clear(&r);
  call(api_models_delete, "nope", 1, &r);
  CHECK_INT(r.err.status, 404);
  api_resp_clear(&r);
  list_ids(ids, sizeof ids); /* warm the cache */
  call(api_models_delete, "other", 1, &r);
  CHECK_INT(r.err.status, 0);
  CHECK(json_is_true(json_object_get(r.json, "deleted")));
  api_resp_clear(&r);
  snprintf(p, sizeof p, "%s/models/other.gguf", dir);
  CHECK(access(p, F_OK) != 0);
  list_ids(ids, sizeof ids);
  const char *got = ids;
  CHECK_STR(got, "gpt-4o-mini,tiny"); /* flagged went too */
}

static void test_bad_aliases_file(void) {
  api_ctx c = {0};
  char err[256], p[1024];
  snprintf(p, sizeof p, "%s/bad.json", dir);
  write_file("bad.json", "[1, 2]");
  CHECK_INT(api_aliases_load(&c, p, err, sizeof err), -1);
  write_file("bad.json", "{\"a\": 3}");
  CHECK_INT(api_aliases_load(&c, p, err, sizeof err), -1);
  write_file("bad.json", "{\"a/b\": \"x\"}");
  CHECK_INT(api_aliases_load(&c, p, err, sizeof err), -1);
  snprintf(p, sizeof p, "%s/absent.json", dir);
  CHECK_INT(api_aliases_load(&c, p, err, sizeof err), 0);
  CHECK_INT(c.naliases, 0);
  api_aliases_free(&c);
}

int main(void) {
  char err[256], p[1024];
  if (!mkdtemp(dir))
    return 1;
  snprintf(ctx.data_dir, sizeof ctx.data_dir, "%s", dir);
  snprintf(ctx.models_dir, sizeof ctx.models_dir, "%s/models", dir);
  mkdir(ctx.models_dir, 0700);
  write_file("models/tiny.gguf", "GGUF");
  write_file("models/other.gguf", "GGUF");
  write_file("models/notes.txt", "not a model");
  write_file("aliases.json", "{\"gpt-4o-mini\": \"tiny\", \"dangling\": "
                             "\"zzz\", \"flagged\": \"tiny\"}");
  snprintf(p, sizeof p, "%s/aliases.json", dir);
  if (api_aliases_load(&ctx, p, err, sizeof err) < 0 ||
      api_alias_add(&ctx, "flagged", "other") < 0) /* a flag wins */
    fprintf(stderr, "alias set-up failed: %s\n", err);
  ctx.models_cache = api_models_cache_new();
  RUN(test_resolve);
  RUN(test_list);
  RUN(test_retrieve);
  RUN(test_delete);
  RUN(test_bad_aliases_file);
  api_models_cache_free(ctx.models_cache);
  api_aliases_free(&ctx);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  T_MAIN_END();
}
