/* Unit tests of the HTTP server over raw sockets: an in-process server on a
 * free loopback port with a temp data directory. Checks keep-alive (several
 * requests on one connection), the standard headers, request-id echo, CORS
 * preflight, the 404 / wrong-method / 501 / 413 / 401 answers in the error
 * format, a multipart upload, streamed (SSE) bodies with a producer thread
 * and a client that leaves, and that shutdown with idle connections and a
 * suspended stream open returns promptly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/stream.h"
#include "core/auth.h"
#include "http/server.h"
#include "store/store.h"
#include "t.h"

static http_server *srv;
static api_ctx ctx;
static store *st;
static char dir[] = "/tmp/hearth-test-http-XXXXXX";

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  struct timeval tv = {5, 0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)http_port(srv));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

typedef struct reply {
  int status;
  char head[4096];
  char body[8192];
  size_t body_len;
} reply;

/* Reads one response (headers + Content-Length body) from fd. */
static int read_reply(int fd, reply *r) {
  char buf[16384];
  size_t n = 0;
  char *end = NULL;
  memset(r, 0, sizeof *r);
  while (!end) {
    ssize_t k = recv(fd, buf + n, 1, 0); /* byte-wise: stop at the body */
    if (k <= 0)
      return -1;
    n += (size_t)k;
    buf[n] = 0;
    end = strstr(buf, "\r\n\r\n");
    if (n + 2 >= sizeof buf)
      return -1;
  }
  snprintf(r->head, sizeof r->head, "%.*s", (int)(end - buf), buf);
  r->status = atoi(buf + 9);
  const char *cl = strcasestr(r->head, "\r\nContent-Length:");
  size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
  while (r->body_len < want && r->body_len + 1 < sizeof r->body) {
    ssize_t k = recv(fd, r->body + r->body_len, want - r->body_len, 0);
    if (k <= 0)
      return -1;
    r->body_len += (size_t)k;
  }
  r->body[r->body_len] = 0;
  return 0;
}

static int send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k <= 0)
      return -1;
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

static int request(int fd, const char *req, reply *r) {
  if (send_all(fd, req, strlen(req)) < 0)
    return -1;
  return read_reply(fd, r);
}

static int has_header(const reply *r, const char *name) {
  char pat[128];
  snprintf(pat, sizeof pat, "\r\n%s:", name);
  return strcasestr(r->head, pat) != NULL;
}

#define GET_MODELS                                                             \
  "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer any\r\n\r\n"

static void test_keepalive_and_headers(void) {
  int fd = dial();
  reply r;
  CHECK(fd >= 0);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(request(fd, GET_MODELS, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"object\":\"list\"") != NULL);
    CHECK(has_header(&r, "x-request-id"));
    CHECK(has_header(&r, "openai-processing-ms"));
    CHECK(strcasestr(r.head, "openai-version: 2020-10-01") != NULL);
    CHECK(strcasestr(r.head, "Access-Control-Allow-Origin: *") != NULL);
    CHECK(strcasestr(r.head, "Connection: close") == NULL);
  }
  close(fd);
}

static void test_request_id(void) {
  int fd = dial();
  reply r, r2;
  request(fd,
          "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: my-id-42\r\n\r\n",
          &r);
  CHECK_INT(r.status, 200);
  CHECK(strstr(r.head, "x-request-id: my-id-42") != NULL);
  request(fd, GET_MODELS, &r);
  request(fd, GET_MODELS, &r2);
  const char *a = strstr(r.head, "x-request-id: req_");
  const char *b = strstr(r2.head, "x-request-id: req_");
  CHECK(a && b);
  if (a && b)
    CHECK(strncmp(a, b, 14 + 28) != 0);
  close(fd);
}

static void test_errors(void) {
  int fd = dial();
  reply r;
  request(fd, "GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
  CHECK_INT(r.status, 404);
  CHECK(strstr(r.body, "Invalid URL (GET /v1/nope)") != NULL);
  CHECK(strstr(r.body, "\"type\":\"invalid_request_error\"") != NULL);
  request(fd,
          "PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
          "Content-Length: 0\r\n\r\n",
          &r);
  CHECK_INT(r.status, 404);
  CHECK(strstr(r.head, "Allow: GET, POST") != NULL);
  request(fd,
          "GET /v1/containers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
          "a\r\n\r\n",
          &r);
  CHECK_INT(r.status, 501);
  CHECK(strstr(r.body, "\"code\":\"not_implemented\"") != NULL);
  CHECK(strstr(r.body, "ListContainers") != NULL);
  request(fd,
          "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
          "Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":",
          &r);
  CHECK_INT(r.status, 400);
  /* Still the same connection: errors keep it alive. */
  CHECK_INT(request(fd, GET_MODELS, &r), 0);
  CHECK_INT(r.status, 200);
  close(fd);
}

static void test_too_large(void) {
  int fd = dial();
  reply r;
  CHECK_INT(request(fd,
                    "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: "
                    "Bearer a\r\nContent-Type: application/json\r\n"
                    "Content-Length: 99999999999\r\n\r\n{",
                    &r),
            0);
  CHECK_INT(r.status, 413);
  CHECK(strstr(r.body, "\"error\"") != NULL);
  close(fd);
  /* A body a little over the limit, sent in full: read, dropped, 413, and
   * the connection stays usable. */
  fd = dial();
  size_t n = 2048 + 10;
  char *big = malloc(n + 256);
  int h = snprintf(big, 256,
                   "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: "
                   "Bearer a\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n",
                   n);
  memset(big + h, ' ', n);
  big[h + n] = 0;
  CHECK_INT(request(fd, big, &r), 0);
  CHECK_INT(r.status, 413);
  CHECK_INT(request(fd, GET_MODELS, &r), 0);
  CHECK_INT(r.status, 200);
  free(big);
  close(fd);
}

static void test_preflight(void) {
  int fd = dial();
  reply r;
  request(fd,
          "OPTIONS /v1/files HTTP/1.1\r\nHost: x\r\nOrigin: http://a.test\r\n"
          "Access-Control-Request-Method: POST\r\n"
          "Access-Control-Request-Headers: authorization, x-foo\r\n\r\n",
          &r);
  CHECK_INT(r.status, 204);
  CHECK(strstr(r.head, "Access-Control-Allow-Methods: GET, POST") != NULL);
  CHECK(strstr(r.head, "Access-Control-Allow-Headers: authorization, x-foo") !=
        NULL);
  close(fd);
}

static void test_multipart_upload(void) {
  int fd = dial();
  reply r;
  const char *body = "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\""
                     "\r\n\r\nuser_data\r\n--XyZ\r\nContent-Disposition: "
                     "form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                     "Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";
  char req[1024];
  snprintf(req, sizeof req,
           "POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
           "Content-Type: multipart/form-data; boundary=XyZ\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  CHECK_INT(request(fd, req, &r), 0);
  CHECK_INT(r.status, 200);
  CHECK(strstr(r.body, "\"bytes\":5") != NULL);
  CHECK(strstr(r.body, "\"filename\":\"a.txt\"") != NULL);
  /* Truncated: no closing boundary. */
  const char *cut = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                    "filename=\"b.txt\"\r\n\r\nhel";
  snprintf(req, sizeof req,
           "POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
           "Content-Type: multipart/form-data; boundary=XyZ\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(cut), cut);
  CHECK_INT(request(fd, req, &r), 0);
  CHECK_INT(r.status, 400);
  CHECK(strstr(r.body, "truncated") != NULL);
  /* A JSON operation refuses a multipart body before reading it. */
  snprintf(req, sizeof req,
           "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
           "Content-Type: multipart/form-data; boundary=XyZ\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  CHECK_INT(request(fd, req, &r), 0);
  CHECK_INT(r.status, 400);
  CHECK(strstr(r.body, "expects a JSON body") != NULL);
  CHECK_INT(request(fd, GET_MODELS, &r), 0); /* still alive */
  CHECK_INT(r.status, 200);
  close(fd);
}

/* ---------------------------------------------------- streamed bodies */

static atomic_int producer_saw_cancel;

static void nap_ms(int ms) {
  struct timespec t = {0, ms * 1000000L};
  nanosleep(&t, NULL);
}

/* Three events 30 ms apart, [DONE], end. */
static void *produce_three(void *p) {
  api_stream *s = p;
  for (int i = 0; i < 3; i++) {
    nap_ms(30);
    json_t *j = json_pack("{s:i}", "n", i);
    api_stream_sse(s, i == 1 ? "tick" : NULL, j);
    json_decref(j);
  }
  api_stream_sse_done(s);
  api_stream_end(s);
  return NULL;
}

/* Writes until the client is gone, then notes it. */
static void *produce_forever(void *p) {
  api_stream *s = p;
  for (int i = 0; i < 500; i++) {
    if (api_stream_write(s, "data: x\n\n", 9) < 0) {
      atomic_store(&producer_saw_cancel, 1);
      break;
    }
    nap_ms(10);
  }
  api_stream_end(s);
  return NULL;
}

/* Never writes: waits for cancellation (server shutdown). */
static void *produce_nothing(void *p) {
  api_stream *s = p;
  for (int i = 0; i < 500 && !api_stream_cancelled(s); i++)
    nap_ms(10);
  api_stream_end(s);
  return NULL;
}

static void start_producer(api_resp *resp, void *(*fn)(void *)) {
  pthread_t t;
  api_stream *s = api_resp_stream(resp, NULL);
  if (s && pthread_create(&t, NULL, fn, s) == 0)
    pthread_detach(t);
}

static void h_three(api_req *q, api_resp *r) {
  (void)q;
  start_producer(r, produce_three);
}
static void h_forever(api_req *q, api_resp *r) {
  (void)q;
  start_producer(r, produce_forever);
}
static void h_nothing(api_req *q, api_resp *r) {
  (void)q;
  start_producer(r, produce_nothing);
}

static const route stream_routes[] = {
    {M_GET, "/test/three", "testThree", h_three, SCOPE_USER, 0},
    {M_GET, "/test/forever", "testForever", h_forever, SCOPE_USER, 0},
    {M_GET, "/test/nothing", "testNothing", h_nothing, SCOPE_USER, 0},
};

/* Reads a chunked body to its last chunk; returns its decoded bytes. */
static int read_chunked(int fd, char *out, size_t max) {
  size_t n = 0;
  for (;;) {
    char line[32];
    size_t k = 0;
    while (k + 1 < sizeof line) {
      if (recv(fd, line + k, 1, 0) != 1)
        return -1;
      if (k && line[k - 1] == '\r' && line[k] == '\n')
        break;
      k++;
    }
    size_t len = strtoul(line, NULL, 16);
    char crlf[2];
    if (len == 0)
      return recv(fd, crlf, 2, MSG_WAITALL) == 2 ? (int)n : -1;
    if (n + len >= max)
      return -1;
    if (recv(fd, out + n, len, MSG_WAITALL) != (ssize_t)len ||
        recv(fd, crlf, 2, MSG_WAITALL) != 2)
      return -1;
    n += len;
    out[n] = 0;
  }
}

static void test_stream_sse(void) {
  int fd = dial();
  reply r;
  char body[1024];
  const char *req = "GET /v1/test/three HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer a\r\n\r\n";
  send_all(fd, req, strlen(req));
  /* Headers only (read_reply reads no body without Content-Length). */
  CHECK_INT(read_reply(fd, &r), 0);
  CHECK_INT(r.status, 200);
  CHECK(strcasestr(r.head, "Content-Type: text/event-stream") != NULL);
  CHECK(strcasestr(r.head, "Transfer-Encoding: chunked") != NULL);
  CHECK(has_header(&r, "x-request-id"));
  int n = read_chunked(fd, body, sizeof body);
  CHECK(n > 0);
  const char *got = body;
  CHECK_STR(got, "data: {\"n\":0}\n\nevent: tick\ndata: "
                 "{\"n\":1}\n\ndata: {\"n\":2}\n\n"
                 "data: [DONE]\n\n");
  /* The connection is still good for another request. */
  CHECK_INT(request(fd, GET_MODELS, &r), 0);
  CHECK_INT(r.status, 200);
  close(fd);
}

static void test_stream_client_disconnect(void) {
  int fd = dial();
  reply r;
  const char *req = "GET /v1/test/forever HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer a\r\n\r\n";
  atomic_store(&producer_saw_cancel, 0);
  send_all(fd, req, strlen(req));
  CHECK_INT(read_reply(fd, &r), 0);
  close(fd);
  for (int i = 0; i < 300 && !atomic_load(&producer_saw_cancel); i++)
    nap_ms(10);
  CHECK(atomic_load(&producer_saw_cancel));
}

static void test_utf8_scrub(void) {
  char a[] = "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  char b[] = "bad \xff \xc0\xaf \xed\xa0\x80 \xe2\x82 \xf4\x90\x80\x80";
  const char *pa = a, *pb = b;
  api_utf8_scrub(a);
  CHECK_STR(pa, "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  api_utf8_scrub(b);
  CHECK_STR(pb, "bad ? ?? ??? ?? ????");
}

static void test_loopback(void) {
  CHECK(http_host_is_loopback("127.0.0.1"));
  CHECK(http_host_is_loopback("127.1.2.3"));
  CHECK(http_host_is_loopback("::1"));
  CHECK(http_host_is_loopback("localhost"));
  CHECK(!http_host_is_loopback("0.0.0.0"));
  CHECK(!http_host_is_loopback("::"));
  CHECK(!http_host_is_loopback("192.168.1.1"));
  CHECK(!http_host_is_loopback("example.com"));
}

static void test_shutdown_with_idle_connections(void) {
  int fds[4];
  reply r;
  for (int i = 0; i < 3; i++) {
    fds[i] = dial();
    request(fds[i], GET_MODELS, &r);
  }
  /* And a stream suspended, waiting for data that never comes. */
  fds[3] = dial();
  const char *req = "GET /v1/test/nothing HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer a\r\n\r\n";
  send_all(fds[3], req, strlen(req));
  CHECK_INT(read_reply(fds[3], &r), 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  http_stop(srv, 1);
  srv = NULL;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(t1.tv_sec - t0.tv_sec < 3); /* idle keep-alives do not hold it */
  for (int i = 0; i < 4; i++)
    close(fds[i]);
}

int main(void) {
  char err[256];
  http_config cfg;
  if (!mkdtemp(dir) || store_open(dir, &st, err, sizeof err) != STORE_OK) {
    fprintf(stderr, "cannot set up a store in %s\n", dir);
    return 1;
  }
  snprintf(ctx.data_dir, sizeof ctx.data_dir, "%s", dir);
  snprintf(ctx.models_dir, sizeof ctx.models_dir, "%s/models", dir);
  ctx.store = st;
  ctx.models_cache = api_models_cache_new();
  size_t ntab = routes_count + sizeof stream_routes / sizeof *stream_routes;
  route *tab = malloc(ntab * sizeof *tab);
  memcpy(tab, routes, routes_count * sizeof *tab);
  memcpy(tab + routes_count, stream_routes, sizeof stream_routes);
  http_config_default(&cfg);
  cfg.table = tab;
  cfg.table_len = ntab;
  cfg.port = 0;
  cfg.threads = 2;
  cfg.max_body = 2048;
  cfg.allow_open = 1;
  cfg.log = HTTP_LOG_QUIET;
  srv = http_start(&cfg, &ctx, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "http_start: %s\n", err);
    return 1;
  }
  RUN(test_keepalive_and_headers);
  RUN(test_request_id);
  RUN(test_errors);
  RUN(test_too_large);
  RUN(test_preflight);
  RUN(test_multipart_upload);
  RUN(test_stream_sse);
  RUN(test_stream_client_disconnect);
  RUN(test_utf8_scrub);
  RUN(test_loopback);
  RUN(test_shutdown_with_idle_connections);
  http_stop(srv, 1);
  store_close(st);
  free(tab);
  api_models_cache_free(ctx.models_cache);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  T_MAIN_END();
}
