/* What an endpoint handler sees: a transport-neutral request (path params,
 * query lookup, resolved project, raw body or parsed multipart form) and a
 * response to fill (JSON, pre-rendered bytes, a file to stream, or an
 * api_error). http/ builds the request from libmicrohttpd and renders the
 * response; handlers in api/ never see libmicrohttpd. Declares every
 * handler the route table (http/routes.c) points at. */
#ifndef HEARTH_API_API_H
#define HEARTH_API_API_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

#define API_MAX_PARAMS 6
#define API_PARAM_BUF 1024

/* Path parameters of the matched route: NUL-terminated copies. */
typedef struct api_params {
  int n;
  const char *name[API_MAX_PARAMS]; /* into the route template, not NUL-ended */
  size_t name_len[API_MAX_PARAMS];
  const char *value[API_MAX_PARAMS]; /* into buf */
  char buf[API_PARAM_BUF];
} api_params;

/* One field of a multipart/form-data body. Text fields are held in memory
 * (bounded); file fields (those with a filename) stream into a blob writer
 * (store/blob.h) while the body arrives, never held whole. */
typedef struct api_form_field {
  char name[128];
  int is_file;
  char *value; /* text: NUL-terminated, owned by the form */
  size_t len;  /* text length, or file size in bytes */
  char filename[256];
  char content_type[128];
  struct blob_writer *blob; /* file: uncommitted; a handler that keeps the
                               bytes commits it and sets blob = NULL; the
                               form aborts what is left */
} api_form_field;

typedef struct api_form {
  api_form_field *fields;
  int n, cap;
} api_form;

/* Configured model name aliases: NAME -> MODEL. */
typedef struct api_alias {
  char *name;
  char *model;
} api_alias;

/* Long-lived context shared by every request; read-only once serving, except
 * for members that say how they are guarded. */
typedef struct api_ctx {
  char data_dir[768];
  char models_dir[800]; /* <data>/models */
  api_alias *aliases;
  size_t naliases;
  long long max_upload;                  /* bytes of one multipart body */
  struct store *store;                   /* the object store (store/store.h) */
  struct api_models_cache *models_cache; /* api/models.c, has its own lock */
  struct sched_pool *pool;   /* loaded models (engine/sched.h), own lock */
  const char *default_model; /* opt-in: model for unknown chat model names,
                                NULL = unknown names answer 404 */
  struct gen_shared *gen;    /* api/gen.h: chat templates of loaded models,
                                background work; own lock; may be NULL */
  /* Where handlers write log lines (stderr beside the access log, set by
   * http_start when it logs requests; callable from any thread, also after
   * the server stopped); NULL: no logging. */
  void (*log_line)(void *cls, const char *line, size_t n);
  void *log_cls;
} api_ctx;

/* Visitor of query parameters (api_query_each): nonzero stops the walk. */
typedef int (*api_query_visit)(void *cls, const char *key, const char *value);

typedef struct api_req {
  const api_ctx *ctx;
  const char *method;
  const char *url; /* as received, with /v1 */
  const char *op;  /* operationId */
  const api_params *params;
  const char *(*query_fn)(void *q, const char *key);
  void *query_ctx;
  /* Calls fn for every query parameter, in request order (keys and values
   * decoded); returns nonzero if fn stopped it. NULL: none to visit. */
  int (*query_each_fn)(void *q, api_query_visit fn, void *cls);
  const char *project; /* resolved project id */
  int admin;           /* key has admin scope */
  const char *content_type;
  const char *body; /* raw body (not multipart), may be NULL */
  size_t body_len;
  api_form *form; /* multipart body, or NULL */
  const char *request_id;
} api_req;

typedef struct api_resp {
  int status;      /* 200 unless set */
  json_t *json;    /* body; the renderer takes the reference */
  const char *raw; /* pre-rendered body bytes, or NULL */
  size_t raw_len;
  void (*raw_free)(void *cls); /* called once the bytes are sent (or the
                                  response dropped); NULL: raw is static */
  void *raw_cls;
  int fd; /* >= 0: stream this file's bytes (renderer closes it) */
  long long fd_len;
  char content_type[128];    /* "" = application/json */
  char disposition[320];     /* Content-Disposition, "" = none */
  struct api_stream *stream; /* streamed body (api/stream.h), or NULL */
  api_error err;             /* err.status != 0: render this error instead */
  char retry_after[16];      /* Retry-After header value, "" = none */
} api_resp;

typedef void (*api_handler)(api_req *req, api_resp *resp);

/* ---------------------------------------------------- helpers (api.c) */

const char *api_param(const api_req *r, const char *name);
const char *api_query(const api_req *r, const char *key);
/* Visits every query parameter (e.g. the metadata[KEY]=VALUE filters of a
 * list); returns nonzero if fn stopped the walk. */
int api_query_each(const api_req *r, api_query_visit fn, void *cls);
/* The form field named name, or NULL. */
api_form_field *api_form_get(const api_req *r, const char *name);
void api_form_free(api_form *f);
/* A text field's value, or NULL when absent (or a file). */
const char *api_form_text(const api_req *r, const char *name);
/* The request's JSON object body: refuses a non-JSON Content-Type or a
 * multipart body, then parses (core/jsonbody.h). NULL with e set (400). */
json_t *api_json_body(const api_req *r, api_error *e);
/* Makes the response a streamed body (Content-Type content_type, NULL =
 * text/event-stream) and returns the producer's end (api/stream.h): write
 * to it from any thread, then api_stream_end it. NULL on OOM (resp then
 * holds a 500). */
struct api_stream *api_resp_stream(api_resp *resp, const char *content_type);
/* Replaces bytes of s that are not valid UTF-8 with '?', in place (JSON
 * strings must be valid UTF-8; client input quoted in messages, filenames
 * and multipart headers need not be). */
void api_utf8_scrub(char *s);
/* Sets a 200 JSON body (takes the reference). */
void api_ok(api_resp *resp, json_t *body);
void api_resp_init(api_resp *resp);
void api_resp_clear(api_resp *resp);

/* --------------------------------------------- models (api/models.c) */

typedef struct api_models_cache api_models_cache;
api_models_cache *api_models_cache_new(void);
void api_models_cache_free(api_models_cache *c);
/* Adds alias name -> model (a later one for the same name wins). 0 / -1. */
int api_alias_add(api_ctx *ctx, const char *name, const char *model);
/* Loads {"name": "model", ...} from path; a missing file is fine. 0, or -1
 * with a message. */
int api_aliases_load(api_ctx *ctx, const char *path, char *err, size_t errlen);
void api_aliases_free(api_ctx *ctx);
/* Resolves a request's model name (a models/NAME.gguf or an alias of one):
 * returns the model file's name and its path in path, or NULL when there is
 * no such model (answer 404 model_not_found). */
const char *api_model_resolve(const api_ctx *ctx, const char *name, char *path,
                              size_t pathlen);

/* --------------------------------------------------------- handlers */

/* api/models.c */
void api_models_list(api_req *req, api_resp *resp);
void api_models_retrieve(api_req *req, api_resp *resp);
void api_models_delete(api_req *req, api_resp *resp);
/* api/files.c */
void api_files_list(api_req *req, api_resp *resp);
void api_files_create(api_req *req, api_resp *resp);
void api_files_retrieve(api_req *req, api_resp *resp);
void api_files_delete(api_req *req, api_resp *resp);
void api_files_content(api_req *req, api_resp *resp);
/* api/uploads.c */
void api_uploads_create(api_req *req, api_resp *resp);
void api_uploads_add_part(api_req *req, api_resp *resp);
void api_uploads_complete(api_req *req, api_resp *resp);
void api_uploads_cancel(api_req *req, api_resp *resp);
/* api/chat.c */
void api_chat_create(api_req *req, api_resp *resp);
/* api/chat_store.c: stored chat completions (store: true) */
void api_chat_list(api_req *req, api_resp *resp);
void api_chat_retrieve(api_req *req, api_resp *resp);
void api_chat_update(api_req *req, api_resp *resp);
void api_chat_delete(api_req *req, api_resp *resp);
void api_chat_messages(api_req *req, api_resp *resp);
/* Stores a finished chat completion (the response object as sent, not
 * streamed chunks), the request's messages and metadata, in project.
 * Called by api/chat.c from any thread. References are borrowed (nothing is
 * stolen); completion needs "id" (chatcmpl-...) and "model";
 * request_messages is the request's validated `messages` array; metadata
 * may be NULL or JSON null (stored as {}). Retrieve then answers the
 * completion with its "metadata". 0, or -1 (logged). */
int api_chat_store_save(const api_ctx *ctx, const char *project,
                        json_t *completion, json_t *request_messages,
                        json_t *metadata);
/* api/completions.c (legacy) */
void api_completions_create(api_req *req, api_resp *resp);

#endif
