/* Unit tests of the route table and matcher: every operation of
 * operations.tsv reaches its operationId with its params extracted; unknown
 * paths and wrong methods are told apart; static segments beat params. */
#include "http/router.h"
#include "t.h"

static router *R;

static const route *match(const char *m, const char *path, int beta,
                          route_params *p, enum route_match *res) {
  const route *rt = NULL;
  char allow[64];
  *res = router_match(R, route_method_parse(m), path, beta, &rt, p, allow,
                      sizeof allow);
  return *res == MATCH_OK ? rt : NULL;
}

/* "/a/{x}/b" -> "/a/v-x/b" (params become "v-" + their name). */
static void concretize(const char *tpl, char *out, size_t n, int *beta) {
  size_t k = 0;
  *beta = 0;
  for (const char *c = tpl; *c && k + 1 < n; c++) {
    if (*c == '?') {
      *beta = 1;
      break;
    }
    if (*c == '{') {
      out[k++] = 'v';
      out[k++] = '-';
      continue;
    }
    if (*c == '}')
      continue;
    out[k++] = *c;
  }
  out[k] = 0;
}

static void check_params(const char *tpl, const route_params *p) {
  int k = 0;
  for (const char *c = tpl; *c && *c != '?'; c++) {
    if (*c != '{')
      continue;
    const char *e = strchr(c, '}');
    char name[64], want[80];
    snprintf(name, sizeof name, "%.*s", (int)(e - c - 1), c + 1);
    snprintf(want, sizeof want, "v-%s", name);
    const char *w = want;
    CHECK_STR(route_param(p, name), w);
    k++;
  }
  CHECK_INT(p->n, k);
}

static void test_every_operation_tsv(void) {
  const char *dir = t_shared_dir();
  if (!dir)
    SKIP("../shared absent: operations.tsv not available");
  char path[512], line[1024];
  snprintf(path, sizeof path, "%s/openapi/operations.tsv", dir);
  FILE *f = fopen(path, "r");
  if (!f)
    SKIP("%s not readable", path);
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    char *m = strtok(line, "\t"), *tpl = strtok(NULL, "\t"),
         *op = strtok(NULL, "\t\n");
    if (!m || !tpl || !op)
      continue;
    char url[512];
    int beta;
    route_params p;
    enum route_match res;
    concretize(tpl, url, sizeof url, &beta);
    const route *rt = match(m, url, beta, &p, &res);
    CHECKF(rt && !strcmp(rt->op, op), "%s %s -> %s, want %s", m, url,
           rt ? rt->op : "(none)", op);
    if (rt)
      check_params(tpl, &p);
    n++;
  }
  fclose(f);
  CHECK_INT(n, 288);
  CHECK_INT(routes_count, 288);
}

static void test_table_is_consistent(void) {
  /* Every template parses and no (method, path) pair is listed twice. */
  router *r = router_new(routes, routes_count);
  CHECK(r != NULL);
  router_free(r);
  route dup[2] = {routes[0], routes[0]};
  CHECK(router_new(dup, 2) == NULL);
}

static void test_params(void) {
  route_params p;
  enum route_match res;
  const route *rt = match("GET", "/files/file-abc/content", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "downloadFile"));
  CHECK_STR(route_param(&p, "file_id"), "file-abc");
  CHECK(route_param(&p, "nope") == NULL);
  rt = match("DELETE", "/vector_stores/vs_1/files/file-2", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "deleteVectorStoreFile"));
  CHECK_STR(route_param(&p, "vector_store_id"), "vs_1");
  CHECK_STR(route_param(&p, "file_id"), "file-2");
  rt = match("GET", "//models///m1/", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "retrieveModel"));
  CHECK_STR(route_param(&p, "model"), "m1");
}

static void test_static_beats_param(void) {
  route_params p;
  enum route_match res;
  const route *rt = match("GET", "/videos/characters/c1", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "GetVideoCharacter"));
  rt = match("POST", "/videos/characters", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "CreateVideoCharacter"));
  /* GET /responses/compact: only POST is static there; the param route
   * answers (as the platform would look up a response named so). */
  rt = match("GET", "/responses/compact", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "getResponse"));
  CHECK_STR(route_param(&p, "response_id"), "compact");
}

static void test_beta_variants(void) {
  route_params p;
  enum route_match res;
  const route *rt = match("POST", "/responses", 1, &p, &res);
  CHECK(rt && !strcmp(rt->op, "beta_createResponse"));
  rt = match("POST", "/responses", 0, &p, &res);
  CHECK(rt && !strcmp(rt->op, "createResponse"));
  rt = match("POST", "/files", 1, &p, &res); /* no beta variant: plain */
  CHECK(rt && !strcmp(rt->op, "createFile"));
}

static void test_unknown_and_wrong_method(void) {
  route_params p;
  enum route_match res;
  CHECK(match("GET", "/foo", 0, &p, &res) == NULL);
  CHECK_INT(res, MATCH_NO_PATH);
  CHECK(match("GET", "/files/a/b/c", 0, &p, &res) == NULL);
  CHECK_INT(res, MATCH_NO_PATH);
  CHECK(match("GET", "/", 0, &p, &res) == NULL);
  CHECK_INT(res, MATCH_NO_PATH);
  const route *rt = NULL;
  char allow[64];
  const char *al = allow;
  res = router_match(R, M_POST, "/models", 0, &rt, &p, allow, sizeof allow);
  CHECK_INT(res, MATCH_BAD_METHOD);
  CHECK_STR(al, "GET");
  res = router_match(R, M_OTHER, "/files", 0, &rt, &p, allow, sizeof allow);
  CHECK_INT(res, MATCH_BAD_METHOD);
  CHECK_STR(al, "GET, POST");
  res = router_match(R, M_DELETE, "/uploads/u1/parts", 0, &rt, &p, allow,
                     sizeof allow);
  CHECK_INT(res, MATCH_BAD_METHOD);
  CHECK_STR(al, "POST");
}

static void test_long_and_deep_paths(void) {
  route_params p;
  enum route_match res;
  char url[4096];
  memset(url, 'a', sizeof url);
  memcpy(url, "/files/", 7);
  url[sizeof url - 1] = 0;
  CHECK(match("GET", url, 0, &p, &res) == NULL); /* param too long */
  CHECK(match("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", 0, &p, &res) ==
        NULL);
  CHECK_INT(res, MATCH_NO_PATH);
}

static void test_form_flags(void) {
  int forms = 0;
  for (size_t i = 0; i < routes_count; i++) {
    int f = (routes[i].flags & ROUTE_FORM) != 0;
    forms += f;
    if (!strcmp(routes[i].op, "createFile") ||
        !strcmp(routes[i].op, "addUploadPart") ||
        !strcmp(routes[i].op, "createTranscription"))
      CHECKF(f, "%s takes multipart", routes[i].op);
    if (!strcmp(routes[i].op, "createUpload") ||
        !strcmp(routes[i].op, "completeUpload") || routes[i].method != M_POST)
      CHECKF(!f, "%s takes no multipart", routes[i].op);
  }
  CHECK_INT(forms, 18); /* the spec's multipart/form-data operations */
}

static void test_scopes(void) {
  for (size_t i = 0; i < routes_count; i++) {
    int admin = !strncmp(routes[i].path, "/organization/", 14) ||
                !strncmp(routes[i].path, "/projects/", 10);
    CHECKF((routes[i].scope == SCOPE_ADMIN) == admin, "%s", routes[i].op);
  }
}

int main(void) {
  R = router_new(routes, routes_count);
  if (!R) {
    fprintf(stderr, "router_new failed\n");
    return 1;
  }
  RUN(test_every_operation_tsv);
  RUN(test_table_is_consistent);
  RUN(test_params);
  RUN(test_static_beats_param);
  RUN(test_beta_variants);
  RUN(test_unknown_and_wrong_method);
  RUN(test_long_and_deep_paths);
  RUN(test_scopes);
  RUN(test_form_flags);
  router_free(R);
  T_MAIN_END();
}
