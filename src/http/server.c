/* The HTTP server on libmicrohttpd: one request state per connection
 * (allocated when the connection opens, reused by its keep-alive requests),
 * route match + auth on the first access-handler call, body streaming on the
 * next ones (JSON buffered up to max_body, multipart parsed on the fly with
 * file parts written straight to blobs), the handler and the response on the
 * last. Invariant: a response is queued on the first call only when the
 * connection is to be closed anyway (413 announced by Content-Length):
 * libmicrohttpd 0.9.75 drops keep-alive for responses queued that early.
 * http_trim_idle gives freed heap pages back to the kernel once no
 * connection is open, so idle memory returns to its startup level after a
 * burst of connections. Knows nothing about any resource's JSON: handlers
 * live in api/. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/stream.h"
#include "core/auth.h"
#include "http/alog.h"
#include "http/multipart.h"
#include "http/router.h"
#include "store/blob.h"

/* Per-connection memory pool of libmicrohttpd (request line, headers, read
 * buffer, response headers). It is cleared for every request, so its size
 * is both CPU per request and RSS per connection: 16 KiB holds any SDK's
 * headers with room to spare (the default is 32 KiB). */
#define CONN_POOL_BYTES (16 * 1024)
#define FORM_MAX_FIELDS 64
#define FILE_CHUNK (256 * 1024)   /* bytes per write of an uploaded file */
#define FORM_MAX_TEXT (64 * 1024) /* one text field of a multipart body */
/* After an error, the rest of a body is read and dropped (so the client,
 * still sending, gets the answer rather than a reset) up to this many
 * bytes; beyond, the answer goes out at once and the connection closes. */
#define DISCARD_MAX (128LL << 20)
#define PART_BODY_MAX ((64LL << 20) + (64 << 10)) /* addUploadPart body */

/* A streamed response in flight: its stream and connection, linked into
 * the server's list so shutdown can end streams still waiting for data. */
typedef struct stream_hold {
  api_stream *s;
  struct MHD_Connection *conn;
  struct http_server *srv;
  struct stream_hold *prev, *next;
} stream_hold;

struct http_server {
  struct MHD_Daemon *d;
  pthread_mutex_t streams_mu;
  stream_hold *streams;
  alog *log; /* access log, NULL when quiet */
  http_config cfg;
  api_ctx *ctx;
  router *router;
  atomic_int inflight;
  atomic_int conns;  /* open connections */
  atomic_int closed; /* connections closed since the last trim */
  int port;
};

/* One request's state; lives in the connection's socket context and is
 * reused by each request of a keep-alive connection. Members before `tail`
 * are zeroed per request; those after are initialized where used. */
typedef struct reqstate {
  http_server *srv;
  struct MHD_Connection *conn;
  uint64_t rng[2]; /* request-id generator, seeded per connection */
  char *body;      /* kept across requests (capacity body_cap) */
  size_t body_cap;
  /* ---- reset per request from here */
  struct timespec t0;
  int active;  /* between the first call and completion */
  int handled; /* the response is queued */
  const route *rt;
  principal who;
  char allow[64];
  const char *method;
  const char *url;
  int multipart;
  api_form form;
  api_form_field *cur;
  char *fbuf; /* file part bytes not yet written (FILE_CHUNK bytes) */
  size_t fbuf_len;
  size_t body_len;
  long long received;
  char tail[1];
  /* ---- initialized where used */
  char rid[136];
  api_error err; /* pending error when err.status != 0 */
  api_params params;
  mp_parser mp;
} reqstate;

void http_config_default(http_config *c) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  memset(c, 0, sizeof *c);
  c->host = "127.0.0.1";
  c->port = 8080;
  c->threads = n > 0 ? (int)n : 2;
  c->max_body = 32LL << 20;
  c->max_upload = 8LL << 30;
  c->timeout = 60;
  c->max_connections = 1024;
  c->log = HTTP_LOG_INFO;
}

/* ------------------------------------------------------------- helpers */

static double ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
         (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static const char *header(reqstate *st, const char *name) {
  return MHD_lookup_connection_value(st->conn, MHD_HEADER_KIND, name);
}

static const char *query_lookup(void *q, const char *key) {
  return MHD_lookup_connection_value((struct MHD_Connection *)q,
                                     MHD_GET_ARGUMENT_KIND, key);
}

/* api_query_each over libmicrohttpd's decoded GET arguments. */
typedef struct query_walk {
  api_query_visit fn;
  void *cls;
  int stopped;
} query_walk;

static enum MHD_Result query_visit(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value) {
  query_walk *w = cls;
  (void)kind;
  w->stopped = w->fn(w->cls, key, value ? value : "");
  return w->stopped ? MHD_NO : MHD_YES;
}

static int query_each(void *q, api_query_visit fn, void *cls) {
  query_walk w = {fn, cls, 0};
  MHD_get_connection_values((struct MHD_Connection *)q, MHD_GET_ARGUMENT_KIND,
                            query_visit, &w);
  return w.stopped;
}

/* xoshiro128+-style step over the connection's 128-bit state. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
  s1 ^= s0;
  s[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
  s[1] = (s1 << 36) | (s1 >> 28);
  return r;
}

/* Client-sent X-Request-Id when it is sane, else "req_" + 24 base62 chars
 * from the connection's generator (seeded from the kernel's CSPRNG when the
 * connection opened: unique, not a secret, no lock or syscall per request). */
static void request_id(reqstate *st) {
  static const char b62[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const char *c = header(st, "X-Request-Id");
  size_t n = c ? strlen(c) : 0;
  int ok = n > 0 && n < sizeof st->rid;
  for (size_t i = 0; ok && i < n; i++)
    ok = c[i] > 32 && c[i] < 127;
  if (ok) {
    memcpy(st->rid, c, n + 1);
    return;
  }
  memcpy(st->rid, "req_", 4);
  for (int half = 0; half < 2; half++) {
    uint64_t x = rng_next(st->rng);
    for (int i = 0; i < 12; i++, x /= 62)
      st->rid[4 + half * 12 + i] = b62[x % 62];
  }
  st->rid[28] = 0;
}

static void access_log(reqstate *st, int status) {
  if (st->srv->cfg.log < HTTP_LOG_INFO &&
      !(st->srv->cfg.log >= HTTP_LOG_ERROR && status >= 500))
    return;
  char line[512];
  long us = (long)(ms_since(&st->t0) * 1000);
  int n = snprintf(line, sizeof line, "%s %s %s %s %d %ld.%03ldms\n", st->rid,
                   st->method, st->url, st->rt ? st->rt->op : "-", status,
                   us / 1000, us % 1000);
  if (n > 0)
    alog_line(st->srv->log, line,
              (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* api_ctx.log_line: a handler's line, written to stderr at once in one
 * write (whole beside the access log's batches; lines are short), so it
 * also works from threads that outlive the server (jobs finishing after
 * http_stop). */
static void handler_log_line(void *cls, const char *line, size_t n) {
  (void)cls;
  ssize_t w = write(2, line, n);
  (void)w;
}

/* ---------------------------------------------------------- responses */

static void add_common_headers(reqstate *st, struct MHD_Response *r) {
  char ms[32];
  snprintf(ms, sizeof ms, "%d", (int)(ms_since(&st->t0) + 0.5));
  MHD_add_response_header(r, "x-request-id", st->rid);
  MHD_add_response_header(r, "openai-processing-ms", ms);
  MHD_add_response_header(r, "openai-version", "2020-10-01");
  MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
  if (header(st, "Origin")) /* only browsers read it: save the bytes */
    MHD_add_response_header(
        r, "Access-Control-Expose-Headers",
        "x-request-id, openai-processing-ms, openai-version, "
        "x-ratelimit-limit-requests, x-ratelimit-limit-tokens, "
        "x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, "
        "x-ratelimit-reset-requests, x-ratelimit-reset-tokens");
}

static enum MHD_Result queue(reqstate *st, int status, struct MHD_Response *r) {
  if (!r)
    return MHD_NO;
  add_common_headers(st, r);
  enum MHD_Result ret = MHD_queue_response(st->conn, (unsigned)status, r);
  MHD_destroy_response(r);
  st->handled = 1;
  access_log(st, status);
  return ret;
}

static struct MHD_Response *json_response(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  if (!s)
    return NULL;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(s);
    return NULL;
  }
  MHD_add_response_header(r, "Content-Type", "application/json");
  return r;
}

static enum MHD_Result send_error_ra(reqstate *st, const api_error *err,
                                     const char *retry_after) {
  api_error copy = *err, *e = &copy;
  api_utf8_scrub(copy.message);
  api_utf8_scrub(copy.param);
  json_t *j = api_error_json(e);
  struct MHD_Response *r = json_response(j);
  json_decref(j);
  if (r && e->status == 404 && st->allow[0])
    MHD_add_response_header(r, "Allow", st->allow);
  if (r && retry_after && retry_after[0])
    MHD_add_response_header(r, "Retry-After", retry_after);
  return queue(st, e->status, r);
}

static enum MHD_Result send_error(reqstate *st, const api_error *err) {
  return send_error_ra(st, err, NULL);
}

/* ------------------------------------------------- streamed bodies */

static void stream_suspend(void *cls) {
  MHD_suspend_connection(((stream_hold *)cls)->conn);
}

static void stream_resume(void *cls) {
  MHD_resume_connection(((stream_hold *)cls)->conn);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  stream_hold *h = cls;
  (void)pos;
  ssize_t n = api_stream_read(h->s, buf, max, stream_suspend, stream_resume, h);
  return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

/* The response is gone (sent, or the client left): cancel the stream. */
static void stream_free(void *cls) {
  stream_hold *h = cls;
  http_server *srv = h->srv;
  pthread_mutex_lock(&srv->streams_mu);
  if (h->prev)
    h->prev->next = h->next;
  else
    srv->streams = h->next;
  if (h->next)
    h->next->prev = h->prev;
  pthread_mutex_unlock(&srv->streams_mu);
  api_stream_release(h->s);
  free(h);
}

static struct MHD_Response *stream_response(reqstate *st, api_resp *resp) {
  stream_hold *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->s = resp->stream;
  h->conn = st->conn;
  h->srv = st->srv;
  struct MHD_Response *r = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, h, stream_free);
  if (!r) {
    free(h);
    return NULL;
  }
  resp->stream = NULL; /* the hold owns the consumer's reference now */
  pthread_mutex_lock(&st->srv->streams_mu);
  h->next = st->srv->streams;
  if (h->next)
    h->next->prev = h;
  st->srv->streams = h;
  pthread_mutex_unlock(&st->srv->streams_mu);
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  return r;
}

/* Renders what a handler answered; takes everything resp owns. */
static enum MHD_Result send_resp(reqstate *st, api_resp *resp) {
  struct MHD_Response *r = NULL;
  if (resp->err.status) {
    enum MHD_Result ret = send_error_ra(st, &resp->err, resp->retry_after);
    api_resp_clear(resp);
    return ret;
  }
  if (resp->stream) {
    r = stream_response(st, resp);
  } else if (resp->fd >= 0) {
    r = MHD_create_response_from_fd64((uint64_t)resp->fd_len, resp->fd);
    if (r)
      resp->fd = -1; /* the response closes it */
  } else if (resp->raw && resp->raw_free) {
    /* raw_free has the shape of libmicrohttpd's free callback */
    r = MHD_create_response_from_buffer_with_free_callback_cls(
        resp->raw_len, (void *)resp->raw, resp->raw_free, resp->raw_cls);
    if (r)
      resp->raw_free = NULL; /* the response frees it */
  } else if (resp->raw) {
    r = MHD_create_response_from_buffer(resp->raw_len, (void *)resp->raw,
                                        MHD_RESPMEM_PERSISTENT);
  } else if (resp->json) {
    r = json_response(resp->json);
  } else {
    r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  }
  if (r && !resp->json)
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type[0] ? resp->content_type
                                                  : "application/json");
  if (r && resp->disposition[0])
    MHD_add_response_header(r, "Content-Disposition", resp->disposition);
  int status = resp->status ? resp->status : 200;
  api_resp_clear(resp);
  if (!r) {
    api_error e;
    err_server(&e, "The server could not render its response.");
    return send_error(st, &e);
  }
  return queue(st, status, r);
}

/* ------------------------------------------------- multipart to form */

static api_form_field *form_add(reqstate *st, const mp_part *p) {
  api_form *f = &st->form;
  if (f->n == FORM_MAX_FIELDS)
    return NULL;
  if (f->n == f->cap) {
    int cap = f->cap ? f->cap * 2 : 4;
    api_form_field *nf = realloc(f->fields, (size_t)cap * sizeof *nf);
    if (!nf)
      return NULL;
    f->fields = nf;
    f->cap = cap;
  }
  api_form_field *x = &f->fields[f->n++];
  memset(x, 0, sizeof *x);
  snprintf(x->name, sizeof x->name, "%s", p->name);
  snprintf(x->filename, sizeof x->filename, "%s", p->filename);
  snprintf(x->content_type, sizeof x->content_type, "%s", p->content_type);
  x->is_file = p->has_filename;
  return x;
}

static int on_part_begin(void *u, const mp_part *p) {
  reqstate *st = u;
  api_form_field *x = form_add(st, p);
  if (!x) {
    err_invalid(&st->err, NULL,
                "Too many fields in the multipart body (at most %d).",
                FORM_MAX_FIELDS);
    return 1;
  }
  st->cur = x;
  if (x->is_file) {
    char msg[256];
    if (blob_begin(st->srv->ctx->data_dir, &x->blob, msg, sizeof msg) < 0) {
      err_server(&st->err, "Could not store the uploaded file: %s", msg);
      return 1;
    }
  } else if (!(x->value = calloc(1, 1))) {
    err_server(&st->err, "Out of memory.");
    return 1;
  }
  return 0;
}

/* Writes the file bytes gathered in st->fbuf to the current part's blob. */
static int fbuf_flush(reqstate *st) {
  api_form_field *x = st->cur;
  if (st->fbuf_len && x && x->is_file &&
      blob_write(x->blob, st->fbuf, st->fbuf_len) < 0) {
    err_server(&st->err, "Could not write the uploaded file to disk.");
    return 1;
  }
  st->fbuf_len = 0;
  return 0;
}

/* File data arrives in pieces of a few KiB (libmicrohttpd's read buffer);
 * it goes to disk in FILE_CHUNK writes. */
static int file_data(reqstate *st, const char *d, size_t n) {
  if (!st->fbuf && !(st->fbuf = malloc(FILE_CHUNK))) {
    err_server(&st->err, "Out of memory.");
    return 1;
  }
  st->cur->len += n;
  while (n) {
    size_t k = FILE_CHUNK - st->fbuf_len < n ? FILE_CHUNK - st->fbuf_len : n;
    memcpy(st->fbuf + st->fbuf_len, d, k);
    st->fbuf_len += k;
    d += k;
    n -= k;
    if (st->fbuf_len == FILE_CHUNK && fbuf_flush(st))
      return 1;
  }
  return 0;
}

static int on_part_data(void *u, const char *d, size_t n) {
  reqstate *st = u;
  api_form_field *x = st->cur;
  if (x->is_file)
    return file_data(st, d, n);
  if (x->len + n > FORM_MAX_TEXT) {
    err_invalid(&st->err, x->name,
                "The form field '%s' is too long (at most %d bytes).", x->name,
                FORM_MAX_TEXT);
    return 1;
  }
  char *v = realloc(x->value, x->len + n + 1);
  if (!v) {
    err_server(&st->err, "Out of memory.");
    return 1;
  }
  memcpy(v + x->len, d, n);
  x->len += n;
  v[x->len] = 0;
  x->value = v;
  return 0;
}

static int on_part_end(void *u) {
  reqstate *st = u;
  if (fbuf_flush(st))
    return 1;
  st->cur = NULL;
  return 0;
}

static const mp_callbacks form_callbacks = {on_part_begin, on_part_data,
                                            on_part_end};

/* ------------------------------------------------------- request setup */

static void too_large(api_error *e, long long got, long long max, int upload) {
  api_error_set(e, 413, "invalid_request_error", "request_too_large", NULL,
                "Request body too large: %lld bytes exceed the limit of %lld "
                "bytes (hearth serve %s).",
                got, max, upload ? "--max-upload" : "--max-body");
}

/* Largest body this request may send. */
static long long body_limit(const reqstate *st) {
  const http_config *cfg = &st->srv->cfg;
  if (!st->multipart)
    return cfg->max_body;
  if (st->rt && !strcmp(st->rt->op, "addUploadPart") &&
      cfg->max_upload > PART_BODY_MAX)
    return PART_BODY_MAX;
  return cfg->max_upload;
}

/* Route, auth, limits: everything knowable from the request line and
 * headers. Leaves a pending error in st->err. */
static void setup(reqstate *st, const char *method, const char *url) {
  http_server *srv = st->srv;
  enum route_method m = route_method_parse(method);
  const char *ctype = header(st, MHD_HTTP_HEADER_CONTENT_TYPE);
  char b[MP_MAX_BOUNDARY + 1];

  if (strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/v1") != 0) {
    err_not_found(&st->err, NULL, "Invalid URL (%s %s)", method, url);
    return;
  }
  const char *beta = query_lookup(st->conn, "beta");
  enum route_match res =
      router_match(srv->router, m, url + 3, beta && !strcmp(beta, "true"),
                   &st->rt, &st->params, st->allow, sizeof st->allow);
  if (res != MATCH_OK) {
    /* The platform answers a wrong method like an unknown path. */
    if (res == MATCH_NO_PATH)
      st->allow[0] = 0;
    err_not_found(&st->err, NULL, "Invalid URL (%s %s)", method, url);
    return;
  }
  if (auth_resolve(srv->ctx->store, header(st, "Authorization"),
                   header(st, "OpenAI-Project"), srv->cfg.allow_open, &st->who,
                   &st->err) < 0)
    return;
  if (st->rt->scope == SCOPE_ADMIN && !st->who.admin) {
    api_error_set(&st->err, 403, "invalid_request_error", "permission_denied",
                  NULL,
                  "You have insufficient permissions for this operation: "
                  "%s %s needs an admin API key.",
                  method, url);
    return;
  }
  if (!st->rt->handler) {
    api_error_set(&st->err, 501, "invalid_request_error", "not_implemented",
                  NULL, "%s %s (%s) is not implemented in hearth yet.", method,
                  url, st->rt->op);
    return;
  }
  st->multipart = mp_boundary_from_content_type(ctype, b, sizeof b) == 0;
  if (ctype && !strncasecmp(ctype, "multipart/form-data", 19) &&
      !st->multipart) {
    err_invalid(&st->err, NULL,
                "Invalid multipart/form-data request: the Content-Type "
                "header has no valid boundary.");
    return;
  }
  if (st->multipart && !(st->rt->flags & ROUTE_FORM)) {
    st->multipart = 0; /* refused: the body is not parsed */
    err_invalid(&st->err, NULL,
                "Invalid Content-Type header (multipart/form-data): %s %s "
                "expects a JSON body (application/json).",
                method, url);
    return;
  }
  if (st->multipart)
    mp_init(&st->mp, b, &form_callbacks, st);
  const char *cl = header(st, MHD_HTTP_HEADER_CONTENT_LENGTH);
  long long max = body_limit(st);
  if (cl && strtoll(cl, NULL, 10) > max)
    too_large(&st->err, strtoll(cl, NULL, 10), max, st->multipart);
}

/* Feeds one chunk of body. */
static void body_chunk(reqstate *st, const char *d, size_t n) {
  long long max = body_limit(st);
  st->received += (long long)n;
  if (st->received > max) {
    too_large(&st->err, st->received, max, st->multipart);
    return;
  }
  if (st->multipart) {
    if (mp_feed(&st->mp, d, n) == MP_ERR_SYNTAX)
      err_invalid(&st->err, NULL, "Invalid multipart/form-data body: %s.",
                  mp_error(&st->mp));
    return;
  }
  if (st->body_len + n + 1 > st->body_cap) {
    size_t cap = st->body_cap ? st->body_cap : 4096;
    while (cap < st->body_len + n + 1)
      cap *= 2;
    char *nb = realloc(st->body, cap);
    if (!nb) {
      err_server(&st->err, "Out of memory reading the request body.");
      return;
    }
    st->body = nb;
    st->body_cap = cap;
  }
  memcpy(st->body + st->body_len, d, n);
  st->body_len += n;
  st->body[st->body_len] = 0;
}

/* Whether the body still to come is too large to read and drop. */
static int too_much_to_discard(reqstate *st) {
  const char *cl = header(st, MHD_HTTP_HEADER_CONTENT_LENGTH);
  long long total = cl ? strtoll(cl, NULL, 10) : -1;
  return total < 0 || total > DISCARD_MAX;
}

static enum MHD_Result run_handler(reqstate *st) {
  if (st->multipart && mp_finish(&st->mp) != MP_OK) {
    err_invalid(&st->err, NULL, "Invalid multipart/form-data body: %s.",
                mp_error(&st->mp));
    return send_error(st, &st->err);
  }
  api_req req = {
      .ctx = st->srv->ctx,
      .method = st->method,
      .url = st->url,
      .op = st->rt->op,
      .params = &st->params,
      .query_fn = query_lookup,
      .query_each_fn = query_each,
      .query_ctx = st->conn,
      .project = st->who.project_id,
      .admin = st->who.admin,
      .content_type = header(st, MHD_HTTP_HEADER_CONTENT_TYPE),
      .body = st->body,
      .body_len = st->body_len,
      .form = st->multipart ? &st->form : NULL,
      .request_id = st->rid,
  };
  api_resp resp;
  api_resp_init(&resp);
  st->rt->handler(&req, &resp);
  return send_resp(st, &resp);
}

static enum MHD_Result preflight(reqstate *st) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  const char *h = header(st, "Access-Control-Request-Headers");
  MHD_add_response_header(r, "Access-Control-Allow-Methods",
                          "GET, POST, DELETE, OPTIONS");
  MHD_add_response_header(r, "Access-Control-Allow-Headers",
                          h ? h
                            : "Authorization, Content-Type, OpenAI-Project, "
                              "OpenAI-Organization, X-Request-Id");
  MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
  return queue(st, 204, r);
}

static enum MHD_Result health(reqstate *st) {
  static const char ok[] = "{\"status\":\"ok\"}";
  struct MHD_Response *r = MHD_create_response_from_buffer(
      sizeof ok - 1, (void *)ok, MHD_RESPMEM_PERSISTENT);
  if (r)
    MHD_add_response_header(r, "Content-Type", "application/json");
  return queue(st, 200, r);
}

/* ------------------------------------------------------ MHD callbacks */

#define BODY_KEEP (64 << 10) /* body buffer kept for the next request */

static void reqstate_reset(reqstate *st) {
  api_form_free(&st->form);
  free(st->fbuf);
  if (st->body_cap > BODY_KEEP) {
    free(st->body);
    st->body = NULL;
    st->body_cap = 0;
  }
  memset(&st->t0, 0, offsetof(reqstate, tail) - offsetof(reqstate, t0));
  st->err.status = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
  http_server *srv = cls;
  (void)version;
  reqstate *st = *con_cls;
  if (!st) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    st = ci ? ci->socket_context : NULL;
    if (!st)
      return MHD_NO;
    reqstate_reset(st);
    st->srv = srv;
    st->conn = conn;
    st->active = 1;
    atomic_fetch_add(&srv->inflight, 1);
    clock_gettime(CLOCK_MONOTONIC, &st->t0);
    st->method = method;
    st->url = url;
    request_id(st);
    *con_cls = st;
    if (!strcmp(method, "OPTIONS") || !strcmp(url, "/health"))
      return MHD_YES;
    setup(st, method, url);
    if (st->err.status == 413 && too_much_to_discard(st))
      return send_error(st, &st->err); /* closes: body never read */
    return MHD_YES;
  }
  if (st->handled) {
    *data_size = 0;
    return MHD_YES;
  }
  if (*data_size) {
    size_t n = *data_size;
    *data_size = 0;
    if (st->err.status) {
      st->received += (long long)n;
      if (st->received > DISCARD_MAX)
        return send_error(st, &st->err);
      return MHD_YES;
    }
    body_chunk(st, data, n);
    if (st->err.status) {
      api_form_free(&st->form); /* drop partial blobs now */
      if (too_much_to_discard(st))
        return send_error(st, &st->err);
    }
    return MHD_YES;
  }
  if (!strcmp(method, "OPTIONS"))
    return preflight(st);
  if (!strcmp(url, "/health"))
    return health(st);
  if (st->err.status)
    return send_error(st, &st->err);
  return run_handler(st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode tc) {
  http_server *srv = cls;
  reqstate *st = *con_cls;
  (void)conn;
  (void)tc;
  if (!st || !st->active)
    return;
  reqstate_reset(st);
  *con_cls = NULL;
  atomic_fetch_sub(&srv->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  http_server *srv = cls;
  (void)conn;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(&srv->conns, 1);
    reqstate *st = calloc(1, sizeof(reqstate));
    if (st && getrandom(st->rng, sizeof st->rng, 0) != sizeof st->rng)
      st->rng[0] = (uint64_t)(uintptr_t)st ^ (uint64_t)time(NULL);
    if (st)
      st->rng[1] |= 1;
    *socket_context = st;
  } else {
    reqstate *st = *socket_context;
    if (st) {
      api_form_free(&st->form);
      free(st->fbuf);
      free(st->body);
      free(st);
    }
    *socket_context = NULL;
    atomic_fetch_sub(&srv->conns, 1);
    atomic_fetch_add(&srv->closed, 1);
  }
}

/* ------------------------------------------------------------ daemon */

int http_host_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (!strcmp(host, "localhost"))
    return 1;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return 0;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   char *err, size_t errlen) {
  struct addrinfo hints = {0}, *ai = NULL;
  char ps[16];
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(ps, sizeof ps, "%d", port);
  int rc = getaddrinfo(host, ps, &hints, &ai);
  if (rc != 0 || !ai) {
    snprintf(err, errlen, "cannot resolve host '%s': %s", host,
             gai_strerror(rc));
    return -1;
  }
  memset(ss, 0, sizeof *ss);
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return 0;
}

http_server *http_start(const http_config *cfg, api_ctx *ctx, char *err,
                        size_t errlen) {
  struct sockaddr_storage ss;
  if (resolve(cfg->host, cfg->port, &ss, err, errlen) < 0)
    return NULL;
  http_server *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->cfg = *cfg;
  s->ctx = ctx;
  pthread_mutex_init(&s->streams_mu, NULL);
  s->router = cfg->table ? router_new(cfg->table, cfg->table_len)
                         : router_new(routes, routes_count);
  if (!s->router) {
    snprintf(err, errlen, "the route table is malformed");
    free(s);
    return NULL;
  }
  unsigned flags =
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (cfg->log >= HTTP_LOG_ERROR)
    flags |= MHD_USE_ERROR_LOG;
  s->d = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)(cfg->threads > 0 ? cfg->threads : 1),
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL_BYTES,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
  if (!s->d) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
             errno ? strerror(errno) : "libmicrohttpd refused to start");
    router_free(s->router);
    free(s);
    return NULL;
  }
  if (cfg->log > HTTP_LOG_QUIET)
    s->log = alog_start(2);
  if (cfg->log >= HTTP_LOG_INFO) /* handlers' lines beside the access log */
    ctx->log_line = handler_log_line;
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : cfg->port;
  return s;
}

int http_port(const http_server *s) {
  return s->port;
}

void http_trim_idle(http_server *s) {
  /* Each connection's pool and buffers came from its worker's malloc arena;
   * freed, they stay resident until trimmed. Never on the request path:
   * trimming per close halves one-connection-per-request throughput. */
  if (atomic_load(&s->conns) == 0 && atomic_exchange(&s->closed, 0) > 0)
    malloc_trim(0);
}

/* Waits up to ticks x 50 ms for in-flight requests to finish. */
static void wait_idle(http_server *s, int ticks) {
  for (int i = 0; i < ticks && atomic_load(&s->inflight) > 0; i++) {
    struct timespec t = {0, 50 * 1000 * 1000};
    nanosleep(&t, NULL);
  }
}

void http_stop(http_server *s, int grace_s) {
  if (!s)
    return;
  MHD_socket ls = MHD_quiesce_daemon(s->d);
  if (ls != MHD_INVALID_SOCKET)
    close(ls);
  wait_idle(s, grace_s * 20);
  /* Streams still open past the grace period end now: a suspended
   * connection must be resumed before the daemon may stop. */
  pthread_mutex_lock(&s->streams_mu);
  for (stream_hold *h = s->streams; h; h = h->next)
    api_stream_abort(h->s);
  pthread_mutex_unlock(&s->streams_mu);
  wait_idle(s, 40);
  MHD_stop_daemon(s->d);
  alog_stop(s->log);
  pthread_mutex_destroy(&s->streams_mu);
  router_free(s->router);
  free(s);
}
