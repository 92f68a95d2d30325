/* Unit tests of the stored chat completions (api/chat_store.c) called
 * directly, without HTTP, over a temporary store: api_chat_store_save as
 * api/chat.c calls it, then list (order, model and metadata filters,
 * pagination), retrieve, update of metadata (null clears, bad bodies are
 * 400s), the messages list (ids, content parts, pagination, foreign
 * cursors), delete with its messages, and isolation between projects. */
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "store/store.h"
#include "t.h"

static char dir[] = "/tmp/hearth-test-chat-store-XXXXXX";
static api_ctx ctx;
static char other_project[64];

/* A query string as "k=v&k=v" (no escaping: tests use plain values). */
typedef struct query {
  char keys[16][512], values[16][512];
  int n;
} query;

static void query_parse(query *q, const char *s) {
  q->n = 0;
  while (s && *s && q->n < 16) {
    const char *amp = strchr(s, '&'), *eq = strchr(s, '=');
    size_t len = amp ? (size_t)(amp - s) : strlen(s);
    size_t klen = eq && eq < s + len ? (size_t)(eq - s) : len;
    snprintf(q->keys[q->n], 512, "%.*s", (int)klen, s);
    snprintf(q->values[q->n], 512, "%.*s",
             (int)(klen < len ? len - klen - 1 : 0), s + klen + 1);
    q->n++;
    s = amp ? amp + 1 : NULL;
  }
}

static const char *query_get(void *cls, const char *key) {
  query *q = cls;
  for (int i = 0; i < q->n; i++)
    if (!strcmp(q->keys[i], key))
      return q->values[i];
  return NULL;
}

static int query_each(void *cls, api_query_visit fn, void *fcls) {
  query *q = cls;
  for (int i = 0; i < q->n; i++)
    if (fn(fcls, q->keys[i], q->values[i]))
      return 1;
  return 0;
}

/* Calls h as project (NULL: the default) with completion_id = id (or
 * none), query string qs and JSON body. Returns the status; *out is the
 * body (new reference, the error object on errors). */
static int call_as(const char *project, api_handler h, const char *id,
                   const char *qs, const char *body, json_t **out) {
  api_params p = {0};
  api_req r = {0};
  api_resp resp;
  query q;
  query_parse(&q, qs);
  if (id) {
    p.n = 1;
    p.name[0] = "completion_id";
    p.name_len[0] = strlen("completion_id");
    snprintf(p.buf, sizeof p.buf, "%s", id);
    p.value[0] = p.buf;
  }
  r.ctx = &ctx;
  r.params = &p;
  r.query_fn = query_get;
  r.query_each_fn = query_each;
  r.query_ctx = &q;
  r.project = project ? project : store_default_project(ctx.store);
  r.content_type = "application/json";
  r.body = body;
  r.body_len = body ? strlen(body) : 0;
  api_resp_init(&resp);
  h(&r, &resp);
  int status = resp.err.status ? resp.err.status : 200;
  *out = resp.err.status ? api_error_json(&resp.err) : json_incref(resp.json);
  api_resp_clear(&resp);
  return status;
}

static int call(api_handler h, const char *id, const char *qs, const char *body,
                json_t **out) {
  return call_as(NULL, h, id, qs, body, out);
}

/* The ids of a list body, comma-joined, and its has_more. */
static const char *ids_of(json_t *list, char *buf, size_t n) {
  json_t *o;
  size_t i;
  buf[0] = 0;
  json_array_foreach(json_object_get(list, "data"), i, o) {
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "%s%s", k ? "," : "",
             json_string_value(json_object_get(o, "id")));
  }
  return buf;
}

static const char *str_at(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

/* Saves completion chatcmpl-<name> of model at created with messages. */
static int save(const char *project, const char *name, const char *model,
                long long created, const char *messages, const char *meta) {
  char id[64];
  snprintf(id, sizeof id, "chatcmpl-%s", name);
  json_t *c = json_pack(
      "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s, s:n}], s:{s:i, s:i, "
      "s:i}}",
      "id", id, "object", "chat.completion", "created", (json_int_t)created,
      "model", model, "choices", "index", 0, "message", "role", "assistant",
      "content", "hello", "finish_reason", "stop", "logprobs", "usage",
      "prompt_tokens", 5, "completion_tokens", 1, "total_tokens", 6);
  json_t *m = json_loads(messages, 0, NULL);
  json_t *md = meta ? json_loads(meta, 0, NULL) : NULL;
  int rc = api_chat_store_save(
      &ctx, project ? project : store_default_project(ctx.store), c, m, md);
  json_decref(c);
  json_decref(m);
  json_decref(md);
  return rc;
}

#define USER_HI "[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_save_and_retrieve(void) {
  json_t *j;
  const char *msgs =
      "[{\"role\":\"system\",\"content\":\"be brief\"},"
      "{\"role\":\"user\",\"name\":\"ann\",\"content\":[{\"type\":\"text\","
      "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
      "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
      "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
      "\"arguments\":\"{}\"}}]},"
      "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"42\"}]";
  CHECK_INT(save(NULL, "one", "tiny", 1000, msgs, "{\"k\":\"v\"}"), 0);
  CHECK_INT(call(api_chat_retrieve, "chatcmpl-one", NULL, NULL, &j), 200);
  CHECK_STR(str_at(j, "object"), "chat.completion");
  CHECK_STR(str_at(j, "model"), "tiny");
  CHECK_STR(str_at(json_object_get(j, "metadata"), "k"), "v");
  CHECK_INT(json_integer_value(json_object_get(j, "created")), 1000);
  CHECK_STR(
      str_at(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                             "message"),
             "content"),
      "hello");
  json_decref(j);

  /* The messages, in order, with the platform's ids and shapes. */
  CHECK_INT(call(api_chat_messages, "chatcmpl-one", NULL, NULL, &j), 200);
  char ids[512];
  CHECK_STR(ids_of(j, ids, sizeof ids),
            "chatcmpl-one-0,chatcmpl-one-1,chatcmpl-one-2,chatcmpl-one-3");
  json_t *d = json_object_get(j, "data");
  json_t *m0 = json_array_get(d, 0), *m1 = json_array_get(d, 1);
  json_t *m2 = json_array_get(d, 2), *m3 = json_array_get(d, 3);
  CHECK_STR(str_at(m0, "role"), "system");
  CHECK_STR(str_at(m0, "content"), "be brief");
  CHECK(json_is_null(json_object_get(m0, "name")));
  CHECK(json_is_null(json_object_get(m0, "content_parts")));
  CHECK(json_is_null(json_object_get(m0, "refusal")));
  CHECK_STR(str_at(m1, "name"), "ann");
  CHECK_STR(str_at(m1, "content"), "a\nb");
  CHECK_INT(json_array_size(json_object_get(m1, "content_parts")), 2);
  CHECK(json_is_null(json_object_get(m2, "content")));
  CHECK_STR(str_at(json_array_get(json_object_get(m2, "tool_calls"), 0), "id"),
            "call_1");
  CHECK_STR(str_at(m3, "tool_call_id"), "call_1");
  CHECK_STR(str_at(j, "first_id"), "chatcmpl-one-0");
  CHECK_STR(str_at(j, "last_id"), "chatcmpl-one-3");
  CHECK(json_is_false(json_object_get(j, "has_more")));
  json_decref(j);

  /* Pagination of messages both ways; foreign or unknown cursors. */
  CHECK_INT(
      call(api_chat_messages, "chatcmpl-one", "limit=3&order=desc", NULL, &j),
      200);
  CHECK_STR(ids_of(j, ids, sizeof ids),
            "chatcmpl-one-3,chatcmpl-one-2,chatcmpl-one-1");
  CHECK(json_is_true(json_object_get(j, "has_more")));
  json_decref(j);
  CHECK_INT(call(api_chat_messages, "chatcmpl-one",
                 "limit=2&after=chatcmpl-one-1", NULL, &j),
            200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-one-2,chatcmpl-one-3");
  CHECK(json_is_false(json_object_get(j, "has_more")));
  json_decref(j);
  CHECK_INT(
      call(api_chat_messages, "chatcmpl-one", "after=chatcmpl-two-0", NULL, &j),
      400);
  CHECK_STR(str_at(json_object_get(j, "error"), "param"), "after");
  json_decref(j);
  CHECK_INT(
      call(api_chat_messages, "chatcmpl-one", "after=chatcmpl-one-9", NULL, &j),
      400);
  json_decref(j);
  CHECK_INT(call(api_chat_messages, "chatcmpl-one", "limit=0", NULL, &j), 400);
  CHECK_STR(str_at(json_object_get(j, "error"), "param"), "limit");
  json_decref(j);
}

static void test_list_filters_and_pages(void) {
  json_t *j;
  char ids[1024];
  /* p1..p5: models alternate, created in order; p2 and p4 tagged. */
  CHECK_INT(save(NULL, "p1", "m-a", 2000, USER_HI, NULL), 0);
  CHECK_INT(save(NULL, "p2", "m-b", 2001, USER_HI, "{\"tag\":\"x\"}"), 0);
  CHECK_INT(save(NULL, "p3", "m-a", 2002, USER_HI, "{\"tag\":\"y\"}"), 0);
  CHECK_INT(
      save(NULL, "p4", "m-a", 2003, USER_HI, "{\"tag\":\"x\",\"u\":\"1\"}"), 0);
  CHECK_INT(save(NULL, "p5", "m-b", 2004, USER_HI, NULL), 0);
  /* Default order is ascending (the spec's default for this list). */
  CHECK_INT(call(api_chat_list, NULL, "after=chatcmpl-one", NULL, &j), 200);
  CHECK_STR(ids_of(j, ids, sizeof ids),
            "chatcmpl-p1,chatcmpl-p2,chatcmpl-p3,chatcmpl-p4,chatcmpl-p5");
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL, "model=m-a&order=desc", NULL, &j), 200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p4,chatcmpl-p3,chatcmpl-p1");
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL, "metadata[tag]=x", NULL, &j), 200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p2,chatcmpl-p4");
  json_decref(j);
  CHECK_INT(
      call(api_chat_list, NULL, "metadata[tag]=x&metadata[u]=1", NULL, &j),
      200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p4");
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL, "metadata[tag]=x&model=m-b", NULL, &j),
            200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p2");
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL, "metadata[tag]=x&limit=1", NULL, &j),
            200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p2");
  CHECK(json_is_true(json_object_get(j, "has_more")));
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL,
                 "metadata[tag]=x&limit=1&after=chatcmpl-p2", NULL, &j),
            200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-p4");
  CHECK(json_is_false(json_object_get(j, "has_more")));
  json_decref(j);
  CHECK_INT(call(api_chat_list, NULL, "metadata[tag]=none", NULL, &j), 200);
  CHECK_INT(json_array_size(json_object_get(j, "data")), 0);
  CHECK(json_is_null(json_object_get(j, "first_id")));
  json_decref(j);
  /* Model names longer than the index: two sharing their first 150 bytes
   * are still told apart. */
  char m1[201], m2[201], qs[256];
  memset(m1, 'm', 200);
  m1[200] = 0;
  memcpy(m2, m1, sizeof m2);
  m2[199] = 'z';
  CHECK_INT(save(NULL, "long1", m1, 2100, USER_HI, NULL), 0);
  CHECK_INT(save(NULL, "long2", m2, 2101, USER_HI, NULL), 0);
  snprintf(qs, sizeof qs, "model=%s", m2);
  CHECK_INT(call(api_chat_list, NULL, qs, NULL, &j), 200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-long2");
  json_decref(j);
  snprintf(qs, sizeof qs, "model=%.150s", m1);
  CHECK_INT(call(api_chat_list, NULL, qs, NULL, &j), 200);
  CHECK_STR(ids_of(j, ids, sizeof ids), "");
  json_decref(j);
  /* Bad filters and cursors are 400s naming the parameter. */
  const char *bad[][2] = {{"metadata=x", "metadata"},
                          {"metadata[]=x", "metadata"},
                          {"metadata[\xff]=x", "metadata"},
                          {"metadata[k]=\xc3", "metadata"},
                          {"after=chatcmpl-nope", "after"},
                          {"order=sideways", "order"},
                          {"limit=101", "limit"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_INT(call(api_chat_list, NULL, bad[i][0], NULL, &j), 400);
    CHECK_STR(str_at(json_object_get(j, "error"), "param"), bad[i][1]);
    json_decref(j);
  }
}

static void test_update(void) {
  json_t *j;
  CHECK_INT(save(NULL, "u1", "tiny", 3000, USER_HI, "{\"a\":\"1\"}"), 0);
  CHECK_INT(call(api_chat_update, "chatcmpl-u1", NULL,
                 "{\"metadata\":{\"b\":\"2\"}}", &j),
            200);
  json_t *m = json_object_get(j, "metadata");
  CHECK_STR(str_at(m, "b"), "2");
  CHECK(json_object_get(m, "a") == NULL); /* replaced, not merged */
  json_decref(j);
  CHECK_INT(call(api_chat_retrieve, "chatcmpl-u1", NULL, NULL, &j), 200);
  CHECK_STR(str_at(json_object_get(j, "metadata"), "b"), "2");
  json_decref(j);
  CHECK_INT(
      call(api_chat_update, "chatcmpl-u1", NULL, "{\"metadata\":null}", &j),
      200);
  CHECK_INT(json_object_size(json_object_get(j, "metadata")), 0);
  json_decref(j);
  const char *bad[][2] = {
      {"{}", "metadata"},
      {"{\"metadata\":{\"a\":1}}", "metadata"},
      {"{\"metadata\":\"x\"}", "metadata"},
      {"{\"metadata\":{},\"model\":\"x\"}", "model"},
      {"not json", ""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_INT(call(api_chat_update, "chatcmpl-u1", NULL, bad[i][0], &j), 400);
    json_t *p = json_object_get(json_object_get(j, "error"), "param");
    CHECK_STR(json_is_null(p) ? "" : json_string_value(p), bad[i][1]);
    json_decref(j);
  }
  CHECK_INT(
      call(api_chat_update, "chatcmpl-nope", NULL, "{\"metadata\":{}}", &j),
      404);
  json_decref(j);
}

static void test_delete_and_isolation(void) {
  json_t *j;
  CHECK_INT(save(other_project, "theirs", "tiny", 4000, USER_HI, NULL), 0);
  CHECK_INT(save(NULL, "d1", "tiny", 4001, USER_HI, NULL), 0);
  /* Another project's completion is absent here, and ours there. */
  CHECK_INT(call(api_chat_retrieve, "chatcmpl-theirs", NULL, NULL, &j), 404);
  CHECK_STR(str_at(json_object_get(j, "error"), "type"),
            "invalid_request_error");
  json_decref(j);
  CHECK_INT(call(api_chat_messages, "chatcmpl-theirs", NULL, NULL, &j), 404);
  json_decref(j);
  CHECK_INT(call(api_chat_delete, "chatcmpl-theirs", NULL, NULL, &j), 404);
  json_decref(j);
  CHECK_INT(
      call_as(other_project, api_chat_retrieve, "chatcmpl-d1", NULL, NULL, &j),
      404);
  json_decref(j);
  CHECK_INT(call_as(other_project, api_chat_list, NULL, NULL, NULL, &j), 200);
  char ids[256];
  CHECK_STR(ids_of(j, ids, sizeof ids), "chatcmpl-theirs");
  json_decref(j);

  CHECK_INT(call(api_chat_delete, "chatcmpl-d1", NULL, NULL, &j), 200);
  CHECK_STR(str_at(j, "object"), "chat.completion.deleted");
  CHECK_STR(str_at(j, "id"), "chatcmpl-d1");
  CHECK(json_is_true(json_object_get(j, "deleted")));
  json_decref(j);
  CHECK_INT(call(api_chat_retrieve, "chatcmpl-d1", NULL, NULL, &j), 404);
  json_decref(j);
  CHECK_INT(call(api_chat_delete, "chatcmpl-d1", NULL, NULL, &j), 404);
  json_decref(j);
  /* Its messages went with it. */
  store_obj o;
  CHECK_INT(store_get(ctx.store, store_default_project(ctx.store),
                      "chat.completion.message", "chatcmpl-d1-0", &o),
            STORE_NOT_FOUND);
  /* Malformed ids are 404s too; a save without an id is refused. */
  CHECK_INT(call(api_chat_retrieve, "../x", NULL, NULL, &j), 404);
  json_decref(j);
  json_t *c = json_pack("{s:s}", "model", "tiny");
  CHECK_INT(api_chat_store_save(&ctx, store_default_project(ctx.store), c, NULL,
                                NULL),
            -1);
  /* So is one whose id leaves no room for its messages' ids. */
  json_object_set_new(c, "id",
                      json_string("chatcmpl-0123456789012345678901234"
                                  "5678901234567890"));
  CHECK_INT(api_chat_store_save(&ctx, store_default_project(ctx.store), c, NULL,
                                NULL),
            -1);
  json_decref(c);
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w) {
  (void)sb, (void)f, (void)w;
  return remove(p);
}

int main(void) {
  char err[256];
  if (!mkdtemp(dir) ||
      store_open(dir, &ctx.store, err, sizeof err) != STORE_OK) {
    fprintf(stderr, "cannot open a store in %s\n", dir);
    return 1;
  }
  store_project p;
  store_project_create(ctx.store, "other", &p);
  snprintf(other_project, sizeof other_project, "%s", p.id);
  RUN(test_save_and_retrieve);
  RUN(test_list_filters_and_pages);
  RUN(test_update);
  RUN(test_delete_and_isolation);
  store_close(ctx.store);
  nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
  T_MAIN_END();
}
