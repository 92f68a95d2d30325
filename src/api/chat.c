/* Chat Completions: POST /v1/chat/completions.
 *
 * The handler validates the messages (every role, content as a string or
 * parts) and the chat-only parameters, renders the conversation with the
 * model's chat template (engine/chat.h), tokenizes it and hands it to the
 * generation driver (api/gen.h), then formats what the driver reports:
 * one chat.completion object written whole when generation ends, or
 * chat.completion.chunk Server-Sent Events as the platform sends them
 * (a role chunk per choice, content deltas, a finish chunk per choice, the
 * usage chunk when stream_options.include_usage, then data: [DONE]).
 *
 * Choices made where the platform has no local equivalent:
 *   - "model" in responses echoes the name the request used (an alias such
 *     as gpt-4o-mini stays gpt-4o-mini), so stored completions filter by
 *     the names applications use;
 *   - "system_fingerprint" is "fp_" + 10 hex digits of a hash of the loaded
 *     model (file name and size, shapes, chat template; see gen.h): it
 *     changes when the weights or template serving the name change;
 *   - image, audio and file content parts answer 400: no local model
 *     supported today reads them; response_format json_schema answers 400
 *     until structured outputs land;
 *   - a failure after the response started (the engine failing mid-way)
 *     cannot change the status any more: a stream gets one more event
 *     {"error": ...}, a non-streamed body is that error object (status 200).
 *
 * Parsed chat templates are cached per loaded model (gen_template_acquire)
 * and stored completions are written on the background thread of api/gen.h
 * (gen_defer), never on a model's decode thread; the response's last bytes
 * go out after the store, so a client that reads [DONE] finds it stored.
 * Knows nothing about libmicrohttpd. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/gen.h"
#include "api/stream.h"
#include "core/ids.h"
#include "core/jsonbody.h"
#include "core/metadata.h"
#include "engine/chat.h"

/* ====================================================== validation */

static const char *const roles[] = {"system", "assistant", "user", "function",
                                    "tool",   "developer", NULL};

static int missing(api_error *e, const char *param) {
  api_error_set(e, 400, "invalid_request_error", "missing_required_parameter",
                param, "Missing required parameter: '%s'.", param);
  return -1;
}

static int bad_type(api_error *e, const char *param, const char *want,
                    const json_t *v) {
  api_error_set(e, 400, "invalid_request_error", "invalid_type", param,
                "Invalid type for '%s': expected %s, but got %s instead.",
                param, want, jb_type_words(v));
  return -1;
}

/* One content part of a message with role role. */
static int check_part(json_t *part, const char *role, const char *param,
                      api_error *e) {
  static const char *const types[] = {
      "text", "image_url", "input_audio", "refusal", "audio", "file", NULL};
  char p[384];
  if (!json_is_object(part))
    return bad_type(e, param, "an object", part);
  json_t *type = json_object_get(part, "type");
  snprintf(p, sizeof p, "%s.type", param);
  if (!type)
    return missing(e, p);
  if (!json_is_string(type))
    return bad_type(e, p, "a string", type);
  if (jb_check_enum(p, json_string_value(type), types, e) < 0) {
    e->code = "invalid_value";
    return -1;
  }
  const char *t = json_string_value(type);
  if (!strcmp(t, "text") || !strcmp(t, "refusal")) {
    if (!strcmp(t, "refusal") && strcmp(role, "assistant")) {
      err_invalid(e, p,
                  "Invalid value: 'refusal'. Content parts of type 'refusal' "
                  "are only allowed in assistant messages.");
      return -1;
    }
    json_t *text = json_object_get(part, t);
    snprintf(p, sizeof p, "%s.%s", param, t);
    if (!text)
      return missing(e, p);
    if (!json_is_string(text))
      return bad_type(e, p, "a string", text);
    return 0;
  }
  const char *what = !strcmp(t, "image_url") ? "image"
                     : !strcmp(t, "file")    ? "file"
                                             : "audio";
  if (strcmp(role, "user")) {
    err_invalid(e, p,
                "Invalid value: '%s'. Content parts of type '%s' are only "
                "allowed in user messages.",
                t, t);
    return -1;
  }
  api_error_set(e, 400, "invalid_request_error", "unsupported_value", p,
                "Invalid content type. This model does not support %s input "
                "(content part '%s'); send text parts only.",
                what, t);
  return -1;
}

/* content: a string or an array of parts; may be null/absent only where
 * the platform allows it (assistant with tool_calls or function_call). */
static int check_content(json_t *msg, const char *role, const char *param,
                         api_error *e) {
  char p[256];
  json_t *c = json_object_get(msg, "content");
  snprintf(p, sizeof p, "%s.content", param);
  int optional = !strcmp(role, "assistant");
  if (!c || json_is_null(c))
    return optional ? 0 : missing(e, p);
  if (json_is_string(c))
    return 0;
  if (!json_is_array(c))
    return bad_type(e, p, "one of a string or array of objects", c);
  size_t i;
  json_t *part;
  json_array_foreach(c, i, part) {
    char pp[320];
    snprintf(pp, sizeof pp, "%s[%zu]", p, i);
    if (check_part(part, role, pp, e) < 0)
      return -1;
  }
  return 0;
}

/* Role-specific fields: tool_call_id of tool messages, name of function
 * messages, tool_calls of assistant messages. */
static int check_role_fields(json_t *msg, const char *role, const char *param,
                             api_error *e) {
  char p[256];
  const char *need = !strcmp(role, "tool")       ? "tool_call_id"
                     : !strcmp(role, "function") ? "name"
                                                 : NULL;
  if (need) {
    json_t *v = json_object_get(msg, need);
    snprintf(p, sizeof p, "%s.%s", param, need);
    if (!v)
      return missing(e, p);
    if (!json_is_string(v))
      return bad_type(e, p, "a string", v);
  }
  json_t *name = json_object_get(msg, "name");
  if (name && !need && !json_is_null(name) && !json_is_string(name)) {
    snprintf(p, sizeof p, "%s.name", param);
    return bad_type(e, p, "a string", name);
  }
  json_t *tc = json_object_get(msg, "tool_calls");
  if (tc && !json_is_null(tc) && !json_is_array(tc)) {
    snprintf(p, sizeof p, "%s.tool_calls", param);
    return bad_type(e, p, "an array", tc);
  }
  return 0;
}

/* Every message: an object with a known role and valid content. A tool
 * message must answer an assistant message with tool_calls. */
static int check_messages(json_t *msgs, api_error *e) {
  size_t i;
  json_t *m;
  int tool_calls_seen = 0;
  if (!json_array_size(msgs)) {
    api_error_set(e, 400, "invalid_request_error", "empty_array", "messages",
                  "Invalid 'messages': empty array. Expected an array with "
                  "minimum length 1, but got an empty array instead.");
    return -1;
  }
  json_array_foreach(msgs, i, m) {
    char p[64], pr[80];
    snprintf(p, sizeof p, "messages[%zu]", i);
    snprintf(pr, sizeof pr, "%s.role", p);
    if (!json_is_object(m))
      return bad_type(e, p, "an object", m);
    json_t *role = json_object_get(m, "role");
    if (!role)
      return missing(e, pr);
    if (!json_is_string(role))
      return bad_type(e, pr, "a string", role);
    if (jb_check_enum(pr, json_string_value(role), roles, e) < 0) {
      e->code = "invalid_value";
      return -1;
    }
    const char *r = json_string_value(role);
    if (check_content(m, r, p, e) < 0 || check_role_fields(m, r, p, e) < 0)
      return -1;
    if (!strcmp(r, "assistant"))
      tool_calls_seen = json_array_size(json_object_get(m, "tool_calls")) > 0;
    else if (!strcmp(r, "tool") && !tool_calls_seen) {
      err_invalid(e, pr,
                  "Invalid parameter: messages with role 'tool' must be a "
                  "response to a preceeding message with 'tool_calls'.");
      return -1;
    }
  }
  return 0;
}

/* Case-insensitive "json" anywhere in the messages' text. */
static int mentions_json(json_t *msgs) {
  size_t i, k;
  json_t *m, *part;
  json_array_foreach(msgs, i, m) {
    json_t *c = json_object_get(m, "content");
    if (json_is_string(c) && strcasestr(json_string_value(c), "json"))
      return 1;
    json_array_foreach(c, k, part) {
      const char *t = json_string_value(json_object_get(part, "text"));
      if (t && strcasestr(t, "json"))
        return 1;
    }
  }
  return 0;
}

/* response_format: text (default) or json_object; json_schema is refused
 * until structured outputs land. Sets *json_object. */
static int check_response_format(json_t *body, json_t *msgs, int *json_object,
                                 api_error *e) {
  static const char *const types[] = {"text", "json_object", "json_schema",
                                      NULL};
  json_t *rf;
  const char *type;
  *json_object = 0;
  int r = jb_object(body, "response_format", JB_NULLABLE, &rf, e);
  if (r <= 0)
    return r;
  json_t *t = json_object_get(rf, "type");
  if (!t)
    return missing(e, "response_format.type");
  if (!json_is_string(t))
    return bad_type(e, "response_format.type", "a string", t);
  type = json_string_value(t);
  if (jb_check_enum("response_format.type", type, types, e) < 0)
    return -1;
  if (!strcmp(type, "json_schema")) {
    err_invalid(e, "response_format.type",
                "response_format of type 'json_schema' is not supported yet "
                "by this server; use 'json_object' (any JSON object) or "
                "'text'.");
    return -1;
  }
  if (!strcmp(type, "json_object")) {
    if (!mentions_json(msgs)) {
      err_invalid(e, "messages",
                  "'messages' must contain the word 'json' in some form, to "
                  "use 'response_format' of type 'json_object'.");
      return -1;
    }
    *json_object = 1;
  }
  return 0;
}

/* Parameters the platform has that a local text model cannot honour. */
static int check_unsupported(json_t *body, api_error *e) {
  json_t *mod = json_object_get(body, "modalities");
  size_t i;
  json_t *v;
  if (mod && !json_is_null(mod) && !json_is_array(mod))
    return bad_type(e, "modalities", "an array", mod);
  json_array_foreach(mod, i, v) {
    if (json_is_string(v) && !strcmp(json_string_value(v), "text"))
      continue;
    err_invalid(e, "modalities",
                "This model only supports the 'text' modality.");
    return -1;
  }
  json_t *audio = json_object_get(body, "audio");
  if (audio && !json_is_null(audio)) {
    err_invalid(e, "audio", "This model does not support audio output.");
    return -1;
  }
  json_t *tools = json_object_get(body, "tools");
  if (tools && !json_is_null(tools) && !json_is_array(tools))
    return bad_type(e, "tools", "an array", tools);
  return 0;
}

/* ====================================================== the request */

/* The endpoint's state of one request, owned by the job's callbacks. */
typedef struct chat_req {
  const api_ctx *ctx;
  const char *request_id; /* for the log line (copied by gen_job_log) */
  gen_model model;
  chat_template *tmpl;
  char id[ID_MAX];
  long long created;
  char *model_name; /* as requested */
  int stream, include_usage, logprobs, n_top;
  int store;
  char *project;
  json_t *messages, *metadata; /* for store */
  json_t *chunk;               /* the chunk template (streaming) */
} chat_req;

static void chat_req_free(chat_req *c) {
  if (!c)
    return;
  if (c->tmpl)
    gen_template_release(c->ctx->gen, c->tmpl);
  gen_model_release(&c->model);
  free(c->model_name);
  free(c->project);
  json_decref(c->messages);
  json_decref(c->metadata);
  json_decref(c->chunk);
  free(c);
}

/* A JSON string of generated text. The detokenizer emits valid UTF-8;
 * should a byte ever slip through, it becomes '?' rather than a lost
 * field. */
static json_t *text_json(const char *text, size_t len) {
  json_t *v = json_stringn(text, len);
  if (v)
    return v;
  char *copy = strndup(text, len);
  if (copy)
    api_utf8_scrub(copy);
  v = json_string(copy ? copy : "");
  free(copy);
  return v;
}

/* {"content":[...], "refusal":null} of tokens. */
static json_t *logprobs_json(const chat_req *c, const gen_token *t, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++)
    json_array_append_new(a, gen_token_logprob_json(&t[i], c->n_top));
  return json_pack("{s:o, s:n}", "content", a, "refusal");
}

/* ------------------------------------------------------- streaming */

/* Writes one chunk with the given choices (new reference taken) and usage
 * (NULL: "usage": null when include_usage, absent otherwise). */
static int write_chunk(chat_req *c, api_stream *s, json_t *choices,
                       json_t *usage) {
  json_t *chunk = json_copy(c->chunk);
  if (!chunk) {
    json_decref(choices);
    json_decref(usage);
    return -1;
  }
  json_object_set_new(chunk, "choices", choices);
  if (c->include_usage)
    json_object_set_new(chunk, "usage", usage ? usage : json_null());
  int rc = api_stream_sse(s, NULL, chunk);
  json_decref(chunk);
  return rc;
}

static json_t *choice_delta(int index, json_t *delta, json_t *logprobs,
                            const char *finish) {
  return json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta,
                   "logprobs", logprobs ? logprobs : json_null(),
                   "finish_reason", finish ? json_string(finish) : json_null());
}

static int on_delta(gen_job *j, void *cls, const gen_choice *ch,
                    const char *text, size_t len, const gen_token *toks,
                    int n_toks) {
  chat_req *c = cls;
  if (!c->stream)
    return 0;
  json_t *delta = json_object();
  json_object_set_new(delta, "content", text_json(text, len));
  json_t *lp = c->logprobs ? logprobs_json(c, toks, n_toks) : NULL;
  return write_chunk(c, gen_job_stream(j),
                     json_pack("[o]", choice_delta(ch->index, delta, lp, NULL)),
                     NULL);
}

static int on_choice_done(gen_job *j, void *cls, const gen_choice *ch) {
  chat_req *c = cls;
  if (!c->stream)
    return 0;
  return write_chunk(c, gen_job_stream(j),
                     json_pack("[o]", choice_delta(ch->index, json_object(),
                                                   NULL, ch->finish_reason)),
                     NULL);
}

/* The first chunk of each choice: role and empty content. */
static int write_role_chunks(chat_req *c, api_stream *s, int n) {
  for (int i = 0; i < n; i++) {
    json_t *delta = json_pack("{s:s, s:s, s:n}", "role", "assistant", "content",
                              "", "refusal");
    if (write_chunk(c, s, json_pack("[o]", choice_delta(i, delta, NULL, NULL)),
                    NULL) < 0)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------- the whole object */

static json_t *completion_json(chat_req *c, gen_job *j, const gen_usage *u) {
  int n;
  gen_choice *ch = gen_job_choices(j, &n);
  json_t *choices = json_array();
  for (int i = 0; i < n; i++) {
    json_t *msg =
        json_pack("{s:s, s:o, s:n, s:[]}", "role", "assistant", "content",
                  text_json(ch[i].text ? ch[i].text : "", ch[i].len), "refusal",
                  "annotations");
    json_t *lp =
        c->logprobs ? logprobs_json(c, ch[i].tokens, ch[i].n_tokens) : NULL;
    json_array_append_new(
        choices,
        json_pack("{s:i, s:o, s:o, s:s}", "index", ch[i].index, "message", msg,
                  "logprobs", lp ? lp : json_null(), "finish_reason",
                  ch[i].finish_reason ? ch[i].finish_reason : "stop"));
  }
  return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s, s:s}", "id", c->id,
                   "object", "chat.completion", "created",
                   (json_int_t)c->created, "model", c->model_name, "choices",
                   choices, "usage", gen_usage_json(u), "service_tier",
                   "default", "system_fingerprint", c->model.fingerprint);
}

/* A failure after the response started: an error object (non-streaming:
 * the body; streaming: one more event). */
static void write_error(chat_req *c, api_stream *s, const char *why) {
  api_error e;
  err_server(&e, "The model failed while generating: %s", why);
  json_t *j = api_error_json(&e);
  if (c->stream)
    api_stream_sse(s, NULL, j);
  else {
    char *txt = json_dumps(j, JSON_COMPACT);
    if (txt)
      api_stream_write(s, txt, strlen(txt));
    free(txt);
  }
  json_decref(j);
}

/* The response's last bytes: the whole object (not streaming), or the
 * usage chunk and [DONE]. */
static void write_final(chat_req *c, api_stream *s, json_t *obj,
                        const gen_usage *u) {
  if (c->stream) {
    if (c->include_usage)
      write_chunk(c, s, json_array(), gen_usage_json(u));
    api_stream_sse_done(s);
  } else if (obj) {
    char *txt = json_dumps(obj, JSON_COMPACT);
    if (txt)
      api_stream_write(s, txt, strlen(txt));
    free(txt);
  }
}

/* store: true, finished on the background thread: store, then the last
 * bytes, then the end of the stream. */
typedef struct store_task {
  chat_req *c;
  json_t *obj;
  api_stream *s;
  gen_usage u;
} store_task;

static void store_and_finish(void *arg) {
  store_task *t = arg;
  if (t->obj)
    api_chat_store_save(t->c->ctx, t->c->project, t->obj, t->c->messages,
                        t->c->metadata);
  write_final(t->c, t->s, t->obj, &t->u);
  api_stream_end(t->s);
  json_decref(t->obj);
  chat_req_free(t->c);
  free(t);
}

static void on_done(gen_job *j, void *cls, const gen_usage *u,
                    const char *error) {
  chat_req *c = cls;
  api_stream *s = gen_job_stream(j);
  if (error && strcmp(error, "cancelled"))
    write_error(c, s, error);
  if (error) {
    chat_req_free(c);
    return;
  }
  json_t *obj = !c->stream || c->store ? completion_json(c, j, u) : NULL;
  store_task *t = c->store ? malloc(sizeof *t) : NULL;
  if (t) {
    *t = (store_task){c, obj, gen_job_take_stream(j), *u};
    gen_defer(c->ctx->gen, store_and_finish, t);
    return;
  }
  if (c->store && obj) /* out of memory for the task: store inline */
    api_chat_store_save(c->ctx, c->project, obj, c->messages, c->metadata);
  write_final(c, s, obj, u);
  json_decref(obj);
  chat_req_free(c);
}

/* ------------------------------------------------------- the handler */

/* Body checks that need no model: messages, chat-only fields, the common
 * generation parameters. */
static int check_body(json_t *body, chat_req *c, gen_params *gp,
                      int *json_object, api_error *e) {
  json_t *msgs, *meta = NULL;
  if (jb_array(body, "messages", JB_REQUIRED, &msgs, e) < 0 ||
      check_messages(msgs, e) < 0 ||
      check_response_format(body, msgs, json_object, e) < 0 ||
      check_unsupported(body, e) < 0 ||
      jb_bool(body, "store", JB_NULLABLE, &c->store, e) < 0 ||
      metadata_get(body, &meta, e) < 0 ||
      gen_params_parse(body, GEN_API_CHAT, gp, e) < 0)
    return -1;
  c->messages = json_incref(msgs);
  c->metadata = meta ? json_incref(meta) : NULL;
  c->stream = gp->stream;
  c->include_usage = gp->include_usage;
  c->logprobs = gp->logprobs;
  c->n_top = gp->top_logprobs;
  return 0;
}

/* Renders and tokenizes the conversation. */
static int prompt_tokens(chat_req *c, json_t *body, int32_t **toks,
                         api_error *e) {
  char err[512];
  char *text = NULL;
  size_t len = 0;
  json_t *tools = json_object_get(body, "tools");
  c->tmpl = gen_template_acquire(c->ctx->gen, &c->model, err, sizeof err);
  if (!c->tmpl) {
    err_server(e, "The chat template of model `%s` does not parse: %s",
               c->model_name, err);
    return -1;
  }
  if (chat_render(c->tmpl, c->messages, json_is_array(tools) ? tools : NULL,
                  &text, &len, err, sizeof err) < 0) {
    err_invalid(e, "messages", "%s", err);
    return -1;
  }
  int n = gen_tokenize(&c->model, text, len,
                       chat_prompt_wants_bos(c->tmpl, text), 0, 1, toks, e);
  free(text);
  return n;
}

/* The response's identity: id, created, the model name as requested, the
 * project to store in, and the chunk template every streamed chunk copies.
 */
static int identify(chat_req *c, const api_req *req, json_t *body,
                    api_error *e) {
  gen_new_id("chatcmpl-", c->id, sizeof c->id);
  c->created = (long long)time(NULL);
  c->model_name = strdup(json_string_value(json_object_get(body, "model")));
  c->project = strdup(req->project ? req->project : "");
  if (c->model_name)
    c->chunk =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", c->id, "object",
                  "chat.completion.chunk", "created", (json_int_t)c->created,
                  "model", c->model_name, "service_tier", "default",
                  "system_fingerprint", c->model.fingerprint);
  if (!c->model_name || !c->project || !c->chunk) {
    err_server(e, "Out of memory.");
    return -1;
  }
  return 0;
}

/* Starts the job; on failure resp->err is set. */
static void start(chat_req *c, const gen_params *gp, int32_t *toks, int n_tok,
                  int json_object, api_resp *resp) {
  api_stream *s = api_resp_stream(resp, c->stream ? "text/event-stream"
                                                  : "application/json");
  if (!s)
    return;
  gen_callbacks cb = {on_delta, on_choice_done, on_done, c};
  gen_job *j = gen_job_new(&c->model, gp, s, 1, !c->stream || c->store, &cb);
  if (!j) {
    api_stream_end(s);
    err_server(&resp->err, "Out of memory.");
    return;
  }
  gen_job_log(j, c->ctx, c->request_id, "chat.completions");
  if (c->stream) /* buffered until sent; cannot fail before that */
    write_role_chunks(c, s, gp->n);
  const int32_t *prompts[1] = {toks};
  int retry = 0;
  if (gen_job_start(j, prompts, &n_tok, json_object, &retry, &resp->err) < 0 &&
      retry)
    snprintf(resp->retry_after, sizeof resp->retry_after, "%d", retry);
}

void api_chat_create(api_req *req, api_resp *resp) {
  api_error *e = &resp->err;
  gen_params gp;
  int json_object = 0;
  int32_t *toks = NULL;
  memset(&gp, 0, sizeof gp);
  json_t *body = api_json_body(req, e);
  if (!body)
    return;
  chat_req *c = calloc(1, sizeof *c);
  if (!c) {
    err_server(e, "Out of memory.");
    goto out;
  }
  c->ctx = req->ctx;
  c->request_id = req->request_id;
  if (check_body(body, c, &gp, &json_object, e) < 0 ||
      gen_model_acquire(req->ctx, body, &c->model, e) < 0)
    goto fail;
  if (identify(c, req, body, e) < 0)
    goto fail;
  int n_tok = prompt_tokens(c, body, &toks, e);
  if (n_tok < 0 ||
      gen_check_context(&c->model, &gp, n_tok, "messages", "messages", e) < 0)
    goto fail;
  start(c, &gp, toks, n_tok, json_object, resp);
  if (!resp->err.status)
    c = NULL; /* the job owns it now */
fail:
  chat_req_free(c);
out:
  free(toks);
  gen_params_free(&gp);
  json_decref(body);
}
