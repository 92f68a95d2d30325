/* Stored chat completions (created with store: true): GET/POST/DELETE
 * /v1/chat/completions[/{id}] and GET /v1/chat/completions/{id}/messages.
 *
 * A stored completion is an object of kind "chat.completion" (data = the
 * completion as retrieve returns it, with its metadata; filter = the model,
 * so the list filters by model through the index). The request's messages
 * are objects of kind "chat.completion.message" (filter = the completion's
 * id, id "<completion id>-<index>"), inserted in message order with the
 * completion's created time, so the shared pagination lists them in order.
 * Invariant: a completion is written in one transaction with all its
 * messages and deleted before them, so a visible completion always has its
 * whole conversation.
 *
 * The first section is the stored-completions service (api_chat_store_save
 * is called by api/chat.c), the second the thin handlers. Knows nothing
 * about HTTP transport or SQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/ids.h"
#include "core/jsonbody.h"
#include "core/metadata.h"
#include "core/pagination.h"
#include "store/store.h"

#define KIND_COMPLETION "chat.completion"
#define KIND_MESSAGE "chat.completion.message"
#define ID_PREFIX "chatcmpl-"

/* ------------------------------------------- stored completions service */

static void not_found(api_error *e, const char *id) {
  err_not_found(e, NULL, "No chat completion found with id '%s'.", id);
}

/* A request message's content as the message list shows it: the string
 * itself, or the text parts joined with "\n" (as the chat template sees
 * them) when content is an array of parts; NULL when there is no text. */
static json_t *content_text(json_t *content, json_t **parts_out) {
  *parts_out = json_null();
  if (json_is_string(content))
    return json_incref(content);
  if (!json_is_array(content))
    return json_null();
  json_t *parts = json_array();
  char *text = NULL;
  size_t len = 0, i;
  json_t *p;
  json_array_foreach(content, i, p) {
    const char *type = json_string_value(json_object_get(p, "type"));
    const char *t = json_string_value(json_object_get(p, "text"));
    if (!type || (strcmp(type, "text") && strcmp(type, "image_url")))
      continue; /* the list's parts are text and image_url only */
    json_array_append(parts, p);
    if (strcmp(type, "text") || !t)
      continue;
    size_t n = strlen(t);
    char *grown = realloc(text, len + n + 2);
    if (!grown)
      break;
    text = grown;
    if (len)
      text[len++] = '\n';
    memcpy(text + len, t, n + 1);
    len += n;
  }
  json_decref(*parts_out);
  *parts_out = parts;
  json_t *out = text ? json_stringn(text, len) : json_null();
  free(text);
  return out ? out : json_null();
}

/* The message list's object for request message m at index i: id, role,
 * content, refusal (required by the list's schema; null unless the request
 * had one), name, content_parts. */
static json_t *message_object(const char *completion_id, size_t i, json_t *m) {
  char id[ID_MAX + 24];
  json_t *parts, *content;
  snprintf(id, sizeof id, "%s-%zu", completion_id, i);
  content = content_text(json_object_get(m, "content"), &parts);
  json_t *name = json_object_get(m, "name");
  const char *role = json_string_value(json_object_get(m, "role"));
  json_t *o = json_pack("{s:s, s:s, s:o, s:n, s:O, s:o}", "id", id, "role",
                        role ? role : "user", "content", content, "refusal",
                        "name", json_is_string(name) ? name : json_null(),
                        "content_parts", parts);
  /* What else identifies the turn: an assistant's tool calls or refusal, a
   * tool result's call id. */
  static const char *const extra[] = {"tool_calls", "refusal", "tool_call_id",
                                      NULL};
  for (int k = 0; o && extra[k]; k++) {
    json_t *v = json_object_get(m, extra[k]);
    if (v && !json_is_null(v))
      json_object_set(o, extra[k], v);
  }
  return o;
}

/* Fills objs[0..n) with the request's messages of completion id (created
 * at created) and kinds[i] with their kind. 0, or -1 on OOM. */
static int message_objs(const char *id, long long created, json_t *messages,
                        store_obj *objs, const char **kinds) {
  size_t i;
  json_t *m;
  json_array_foreach(messages, i, m) {
    store_obj *o = &objs[i];
    kinds[i] = KIND_MESSAGE;
    o->data = message_object(id, i, m);
    if (!o->data)
      return -1;
    snprintf(o->id, sizeof o->id, "%s",
             json_string_value(json_object_get(o->data, "id")));
    snprintf(o->filter, sizeof o->filter, "%s", id);
    o->created_at = created;
  }
  return 0;
}

/* Fills *o with the completion as retrieve returns it. 0, or -1 on OOM. */
static int completion_obj(json_t *completion, const char *id, const char *model,
                          json_t *metadata, size_t nmsg, store_obj *o) {
  json_t *created = json_object_get(completion, "created");
  snprintf(o->id, sizeof o->id, "%s", id);
  snprintf(o->filter, sizeof o->filter, "%s", model);
  o->created_at = json_is_integer(created) ? json_integer_value(created)
                                           : (long long)time(NULL);
  o->data = json_deep_copy(completion);
  o->internal = json_pack("{s:I}", "messages", (json_int_t)nmsg);
  if (!o->data || !o->internal)
    return -1;
  json_object_set_new(o->data, "metadata",
                      json_is_object(metadata) ? json_deep_copy(metadata)
                                               : json_object());
  return 0;
}

int api_chat_store_save(const api_ctx *ctx, const char *project,
                        json_t *completion, json_t *request_messages,
                        json_t *metadata) {
  const char *id = json_string_value(json_object_get(completion, "id"));
  const char *model = json_string_value(json_object_get(completion, "model"));
  /* Message ids ("<id>-<index>") must fit a store id too. */
  if (!id || !id_valid(ID_PREFIX, id) || !model ||
      strlen(id) + 22 > sizeof((store_obj *)0)->id) {
    fprintf(stderr, "chat_store: not a chat completion (id %s), not stored\n",
            id ? id : "missing");
    return -1;
  }
  /* One transaction: the messages, then the completion (the invariant at
   * the top holds even across a crash). */
  size_t n = json_array_size(request_messages);
  store_obj *objs = calloc(n + 1, sizeof *objs);
  const char **kinds = calloc(n + 1, sizeof *kinds);
  int rc = STORE_ERROR;
  if (objs && kinds &&
      completion_obj(completion, id, model, metadata, n, &objs[n]) == 0 &&
      message_objs(id, objs[n].created_at, request_messages, objs, kinds) ==
          0) {
    kinds[n] = KIND_COMPLETION;
    rc = store_put_many(ctx->store, project, n + 1, kinds, objs);
  }
  for (size_t i = 0; objs && i <= n; i++)
    store_obj_clear(&objs[i]);
  free(objs);
  free(kinds);
  if (rc != STORE_OK)
    fprintf(stderr, "chat_store: could not store chat completion %s\n", id);
  return rc == STORE_OK ? 0 : -1;
}

/* Loads stored completion id of project into *o (404 / 500 in e). */
static int completion_get(const api_ctx *ctx, const char *project,
                          const char *id, store_obj *o, api_error *e) {
  int rc = id && id_valid(ID_PREFIX, id)
               ? store_get(ctx->store, project, KIND_COMPLETION, id, o)
               : STORE_NOT_FOUND;
  if (rc == STORE_NOT_FOUND)
    not_found(e, id ? id : "");
  else if (rc != STORE_OK)
    err_server(e, "Could not read the chat completion.");
  return rc == STORE_OK ? 0 : -1;
}

/* Deletes the messages of completion id (after the completion itself). */
typedef struct msg_delete {
  store *s;
  int failed;
} msg_delete;

static int delete_message(const char *project, store_obj *o, void *ctx) {
  msg_delete *d = ctx;
  if (store_delete(d->s, project, KIND_MESSAGE, o->id) == STORE_ERROR)
    d->failed = 1;
  return 0;
}

/* ------------------------------------------------------------ handlers */

/* The list's filters beyond the indexed model: every metadata[KEY]=VALUE
 * query parameter, and the model itself when it is too long for the index
 * (store_obj.filter holds a prefix of it then). */
typedef struct list_filter {
  json_t *meta;      /* {KEY: VALUE} */
  const char *model; /* exact model to compare, or NULL */
  int bad;           /* a `metadata` parameter not of that form */
} list_filter;

static int collect_metadata(void *cls, const char *key, const char *value) {
  list_filter *f = cls;
  size_t n = strlen(key);
  if (strncmp(key, "metadata", 8))
    return 0;
  if (n < 11 || key[8] != '[' || key[n - 1] != ']') {
    f->bad = 1;
    return 1;
  }
  char *k = strndup(key + 9, n - 10);
  json_t *v = json_string(value);
  /* Keys and values that are not UTF-8 are refused, not ignored. */
  if (!k || !v) {
    json_decref(v);
    f->bad = 1;
  } else if (json_object_set_new(f->meta, k, v) < 0) { /* took v */
    f->bad = 1;
  }
  free(k);
  return f->bad;
}

/* store_list_match predicate: the exact model (when set) and every pair
 * of the metadata filter. */
static int list_matches(const store_obj *o, void *ctx) {
  const list_filter *f = ctx;
  json_t *have = json_object_get(o->data, "metadata");
  const char *k;
  json_t *want;
  const char *model = json_string_value(json_object_get(o->data, "model"));
  if (f->model && (!model || strcmp(f->model, model)))
    return 0;
  json_object_foreach(f->meta, k, want) {
    if (!json_equal(json_object_get(have, k), want))
      return 0;
  }
  return 1;
}

/* The store's pre-filter for a metadata filter: each pair as it appears in
 * a completion's stored JSON text ("key":"value", jansson's compact form,
 * the store's). pairs has room for METADATA_MAX_PAIRS + 1 (validated). */
static int metadata_pairs(json_t *meta, char **pairs) {
  const char *k;
  json_t *v;
  int n = 0;
  json_object_foreach(meta, k, v) {
    json_t *one = json_pack("{s:O}", k, v);
    char *text = one ? json_dumps(one, JSON_COMPACT) : NULL;
    json_decref(one);
    if (!text)
      return -1;
    size_t len = strlen(text); /* {"k":"v"} -> "k":"v" */
    memmove(text, text + 1, len - 2);
    text[len - 2] = 0;
    pairs[n++] = text;
  }
  return 0;
}

/* The 400 for a pagination cursor naming no object of the list: which is
 * "after" or "before" (NULL: the one given, `after` when both are). */
static void bad_cursor(api_error *e, const page_params *p, const char *which,
                       const char *what) {
  if (!which)
    which = p->after[0] ? "after" : "before";
  err_invalid(e, which, "Invalid '%s': no %s with id '%s'.", which, what,
              strcmp(which, "after") ? p->before : p->after);
}

void api_chat_list(api_req *req, api_resp *resp) {
  page_spec spec = {20, 100, PAGE_ASC};
  page_params p;
  json_t *out = NULL;
  list_filter f = {json_object(), NULL, 0};
  if (page_parse(&p, req->query_fn, req->query_ctx, &spec, &resp->err) < 0)
    goto done;
  api_query_each(req, collect_metadata, &f);
  if (f.bad) {
    err_invalid(&resp->err, "metadata",
                "Invalid 'metadata': expected query parameters of the form "
                "metadata[key]=value (UTF-8).");
    goto done;
  }
  if (metadata_validate(f.meta, &resp->err) < 0)
    goto done;
  /* The index holds the model's first bytes, as api_chat_store_save
   * truncated it; a longer name is then compared whole. */
  const char *model = api_query(req, "model");
  char indexed[sizeof((store_obj *)0)->filter];
  snprintf(indexed, sizeof indexed, "%s", model ? model : "");
  if (model && strlen(model) >= sizeof indexed)
    f.model = model;
  char *pairs[METADATA_MAX_PAIRS + 1] = {0};
  store_match m = {(const char *const *)pairs, list_matches, &f};
  int rc = metadata_pairs(f.meta, pairs) < 0
               ? STORE_ERROR
               : store_list_match(
                     req->ctx->store, req->project, KIND_COMPLETION, indexed,
                     &p, json_object_size(f.meta) || f.model ? &m : NULL, &out);
  for (int i = 0; pairs[i]; i++)
    free(pairs[i]);
  if (rc == STORE_NOT_FOUND)
    bad_cursor(&resp->err, &p, NULL, "chat completion");
  else if (rc != STORE_OK)
    err_server(&resp->err, "Could not list the chat completions.");
  else
    api_ok(resp, out);
done:
  json_decref(f.meta);
}

void api_chat_retrieve(api_req *req, api_resp *resp) {
  store_obj o = {0};
  if (completion_get(req->ctx, req->project, api_param(req, "completion_id"),
                     &o, &resp->err) < 0)
    return;
  api_ok(resp, json_incref(o.data));
  store_obj_clear(&o);
}

/* store_update callback: replaces data.metadata with ctx (an object). */
static int set_metadata(store_obj *o, void *ctx) {
  json_object_set(o->data, "metadata", ctx);
  return 0;
}

/* The update body: {"metadata": {...} | null}, nothing else. Returns the
 * new metadata (a new reference; null clears to {}), or NULL with e set. */
static json_t *update_body(const api_req *req, api_error *e) {
  json_t *body = api_json_body(req, e), *m = NULL;
  const char *k;
  json_t *v;
  if (!body)
    return NULL;
  json_object_foreach(body, k, v) {
    if (strcmp(k, "metadata")) {
      err_invalid(e, k, "Unrecognized request argument supplied: %s", k);
      goto done;
    }
  }
  if (!json_object_get(body, "metadata")) {
    err_invalid(e, "metadata", "Missing required parameter: 'metadata'.");
    goto done;
  }
  int rc = metadata_get(body, &m, e);
  if (rc >= 0)
    m = rc ? json_deep_copy(m) : json_object();
done:
  json_decref(body);
  return e->status ? NULL : m;
}

void api_chat_update(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "completion_id");
  store_obj o = {0};
  if (completion_get(req->ctx, req->project, id, &o, &resp->err) < 0)
    return;
  store_obj_clear(&o);
  json_t *m = update_body(req, &resp->err);
  if (!m)
    return;
  int rc = store_update(req->ctx->store, req->project, KIND_COMPLETION, id,
                        set_metadata, m);
  json_decref(m);
  if (rc == STORE_OK)
    rc = store_get(req->ctx->store, req->project, KIND_COMPLETION, id, &o);
  if (rc == STORE_NOT_FOUND)
    not_found(&resp->err, id);
  else if (rc != STORE_OK)
    err_server(&resp->err, "Could not update the chat completion.");
  else
    api_ok(resp, json_incref(o.data));
  store_obj_clear(&o);
}

void api_chat_delete(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "completion_id");
  int rc =
      id && id_valid(ID_PREFIX, id)
          ? store_delete(req->ctx->store, req->project, KIND_COMPLETION, id)
          : STORE_NOT_FOUND;
  if (rc == STORE_NOT_FOUND) {
    not_found(&resp->err, id ? id : "");
    return;
  }
  if (rc != STORE_OK) {
    err_server(&resp->err, "Could not delete the chat completion.");
    return;
  }
  msg_delete d = {req->ctx->store, 0};
  if (store_each(req->ctx->store, req->project, KIND_MESSAGE, id,
                 delete_message, &d) != STORE_OK ||
      d.failed)
    fprintf(stderr, "chat_store: messages of %s not all deleted\n", id);
  api_ok(resp, json_pack("{s:s, s:s, s:b}", "object", "chat.completion.deleted",
                         "id", id, "deleted", 1));
}

/* 1 when cursor (if any) names a message of completion id. */
static int own_cursor(const char *cursor, const char *id) {
  size_t n = strlen(id);
  return !cursor[0] || (!strncmp(cursor, id, n) && cursor[n] == '-');
}

void api_chat_messages(api_req *req, api_resp *resp) {
  const char *id = api_param(req, "completion_id");
  page_spec spec = {20, 100, PAGE_ASC};
  page_params p;
  store_obj o = {0};
  json_t *out = NULL;
  if (completion_get(req->ctx, req->project, id, &o, &resp->err) < 0)
    return;
  store_obj_clear(&o);
  if (page_parse(&p, req->query_fn, req->query_ctx, &spec, &resp->err) < 0)
    return;
  const char *which = !own_cursor(p.after, id)    ? "after"
                      : !own_cursor(p.before, id) ? "before"
                                                  : NULL;
  int rc = which ? STORE_NOT_FOUND
                 : store_list(req->ctx->store, req->project, KIND_MESSAGE, id,
                              &p, &out);
  if (rc == STORE_NOT_FOUND)
    bad_cursor(&resp->err, &p, which, "message in this chat completion");
  else if (rc != STORE_OK)
    err_server(&resp->err, "Could not list the chat completion's messages.");
  else
    api_ok(resp, out);
}
