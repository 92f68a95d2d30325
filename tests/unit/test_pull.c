/* Tests of jobs/pull (model download) against an in-process libmicrohttpd
 * server on a free loopback port: full download, resume after a dropped
 * connection (Range checked, result byte-identical), a server that ignores
 * Range, an already complete part (416), SHA-256 match and mismatch, 404,
 * non-GGUF refusal, redirects, connection refused, the SHA-256 a server
 * publishes in X-Linked-Etag (Hugging Face), the catalog and the command's
 * output (progress lines when stderr is not a terminal, --list). */
#include <fcntl.h>
#include <microhttpd.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/pull.h"
#include "t.h"

/* ==== the test server ==================================================== */

enum { DATA_LEN = 1 << 20 };

typedef struct srv {
  struct MHD_Daemon *d;
  int port;
  unsigned char *data; /* DATA_LEN bytes starting with "GGUF" */
  pthread_mutex_t mu;
  int drop_next;          /* /drop.gguf: the next N answers stop midway */
  int requests;           /* requests served */
  char last_range[64];    /* Range header of the latest request, "" if none */
  char last_auth[96];     /* Authorization header of the latest request */
  char last_url[64];      /* path of the latest request */
  char first_auth[96];    /* Authorization header seen by /other-host */
  char last_if_range[64]; /* If-Range header of the latest request */
  char etag[16];          /* ETag of S.data ("\"v1\""); change = new file */
  char sha[65];           /* SHA-256 of S.data, hex */
} srv;

static srv S;

static void sha_of(const unsigned char *p, size_t n, char out[65]);

/* A body that ends with an error (connection closed) at `stop`. */
typedef struct dropper {
  const unsigned char *p;
  uint64_t stop;
} dropper;

static ssize_t drop_read(void *cls, uint64_t pos, char *buf, size_t max) {
  dropper *dr = cls;
  if (pos >= dr->stop)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = dr->stop - pos < max ? (size_t)(dr->stop - pos) : max;
  memcpy(buf, dr->p + pos, n);
  return (ssize_t)n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
                             struct MHD_Response *r) {
  enum MHD_Result rc = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code,
                                  const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  return reply(c, code, r);
}

/* Serves S.data honouring "Range: bytes=N-" (unless ignore_range); with
 * drop, the body stops halfway through what it promised. With bad_start,
 * a 206 claims to start at byte 0 whatever was asked. */
static enum MHD_Result serve_data(struct MHD_Connection *c, int ignore_range,
                                  int drop, int bad_start) {
  const char *range =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  const char *ifr =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  unsigned long long from = 0;
  char cr[96];
  int partial = 0;
  if (ifr && strcmp(ifr, S.etag))
    ignore_range = 1; /* changed since: the whole new file */
  if (range && !ignore_range && sscanf(range, "bytes=%llu-", &from) == 1) {
    if (from >= DATA_LEN) {
      snprintf(cr, sizeof cr, "bytes */%d", DATA_LEN);
      struct MHD_Response *r =
          MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
      return reply(c, 416, r);
    }
    partial = 1;
    snprintf(cr, sizeof cr, "bytes %llu-%d/%d", bad_start ? 0 : from,
             DATA_LEN - 1, DATA_LEN);
  } else {
    from = 0;
  }
  uint64_t len = DATA_LEN - from;
  struct MHD_Response *r;
  if (drop) {
    dropper *dr = malloc(sizeof *dr);
    dr->p = S.data + from;
    dr->stop = len / 2;
    r = MHD_create_response_from_callback(len, 32 * 1024, drop_read, dr, free);
  } else {
    r = MHD_create_response_from_buffer(len, S.data + from,
                                        MHD_RESPMEM_PERSISTENT);
  }
  if (partial)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, S.etag);
  return reply(c, partial ? 206 : 200, r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)cls, (void)method, (void)version, (void)upload, (void)upload_size;
  (void)con_cls;
  const char *range =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  int drop = 0;
  pthread_mutex_lock(&S.mu);
  S.requests++;
  snprintf(S.last_range, sizeof S.last_range, "%s", range ? range : "");
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION);
  snprintf(S.last_auth, sizeof S.last_auth, "%s", auth ? auth : "");
  snprintf(S.last_url, sizeof S.last_url, "%s", url);
  const char *ifr =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  snprintf(S.last_if_range, sizeof S.last_if_range, "%s", ifr ? ifr : "");
  if (!strcmp(url, "/drop.gguf") && S.drop_next > 0) {
    S.drop_next--;
    drop = 1;
  }
  pthread_mutex_unlock(&S.mu);
  if (!strcmp(url, "/model.gguf") || !strcmp(url, "/drop.gguf"))
    return serve_data(c, 0, drop, 0);
  if (!strcmp(url, "/norange.gguf"))
    return serve_data(c, 1, 0, 0);
  if (!strcmp(url, "/badrange.gguf"))
    return serve_data(c, 0, 0, 1);
  if (!strcmp(url, "/junk.bin"))
    return reply_text(c, 200, "<html>this is not a model</html>");
  if (!strcmp(url, "/redirect") || !strcmp(url, "/redirect2")) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION,
                            !strcmp(url, "/redirect") ? "/redirect2"
                                                      : "/model.gguf");
    return reply(c, !strcmp(url, "/redirect") ? 302 : 307, r);
  }
  if (!strncmp(url, "/hf/", 4)) {
    /* Like huggingface.co/.../resolve/main/F: a redirect to the LFS file
     * carrying its SHA-256 (right for /hf/good*, wrong for /hf/bad, a git
     * sha1 for /hf/sha1 which is not a digest of the file). */
    char linked[80];
    if (!strncmp(url, "/hf/good", 8))
      snprintf(linked, sizeof linked, "\"%s\"", S.sha);
    else if (!strcmp(url, "/hf/sha1"))
      snprintf(linked, sizeof linked, "\"%040d\"", 7);
    else
      snprintf(linked, sizeof linked, "W/\"%064d\"", 0);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, "/model.gguf");
    MHD_add_response_header(r, "X-Linked-Etag", linked);
    return reply(c, 302, r);
  }
  if (!strcmp(url, "/other-host")) {
    /* Same server under another host name: a different origin to curl. */
    char loc[96];
    snprintf(loc, sizeof loc, "http://localhost:%d/model.gguf", S.port);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    pthread_mutex_lock(&S.mu);
    snprintf(S.first_auth, sizeof S.first_auth, "%s", auth ? auth : "");
    pthread_mutex_unlock(&S.mu);
    return reply(c, 302, r);
  }
  return reply_text(c, 404, "not found");
}

static int srv_start(void) {
  pthread_mutex_init(&S.mu, NULL);
  S.data = malloc(DATA_LEN);
  if (!S.data)
    return -1;
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < DATA_LEN; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    S.data[i] = (unsigned char)x;
  }
  memcpy(S.data, "GGUF", 4);
  strcpy(S.etag, "\"v1\"");
  sha_of(S.data, DATA_LEN, S.sha);
  S.d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler,
                       NULL, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
  if (!S.d)
    return -1;
  const union MHD_DaemonInfo *i =
      MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
  S.port = i ? i->port : 0;
  return S.port ? 0 : -1;
}

/* ==== helpers ============================================================ */

/* CHECK_STR on char arrays (whose address is never NULL). */
static const char *str_(const char *s) {
  return s;
}
#define CHECK_S(a, b) CHECK_STR(str_(a), str_(b))

static char tmpdir[256];

static void url_of(char *out, size_t n, const char *path) {
  snprintf(out, n, "http://127.0.0.1:%d%s", S.port, path);
}

static void sha_of(const unsigned char *p, size_t n, char out[65]) {
  struct sha256_ctx ctx;
  uint8_t md[SHA256_DIGEST_SIZE];
  sha256_init(&ctx);
  sha256_update(&ctx, n, p);
  sha256_digest(&ctx, sizeof md, md);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static long file_size(const char *dir, const char *name) {
  char p[512];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &st) ? -1 : (long)st.st_size;
}

/* 1 if dir/name holds exactly S.data. */
static int file_is_data(const char *dir, const char *name) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb");
  if (!f)
    return 0;
  unsigned char *buf = malloc(DATA_LEN + 1);
  size_t n = fread(buf, 1, DATA_LEN + 1, f);
  fclose(f);
  int ok = n == DATA_LEN && !memcmp(buf, S.data, DATA_LEN);
  free(buf);
  return ok;
}

static void write_file(const char *dir, const char *name,
                       const unsigned char *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(p, 1, n, f);
    fclose(f);
  }
}

/* A fresh, empty models directory for one test. */
static const char *fresh_dir(const char *test) {
  static char dir[300];
  char cmd[400];
  snprintf(dir, sizeof dir, "%s/%s", tmpdir, test);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) {
  }
  return dir;
}

static pull_status pull(const char *dir, const char *path, const char *name,
                        const char *sha, int retries, pull_result *r,
                        char *err) {
  char url[128];
  url_of(url, sizeof url, path);
  pull_opts o = {.url = url,
                 .models_dir = dir,
                 .name = name,
                 .sha256 = sha,
                 .retries = retries,
                 .connect_timeout_s = 5,
                 .stall_timeout_s = 5};
  return pull_download(&o, r, err, 512);
}

/* ==== tests ============================================================== */

static void test_full_download(void) {
  const char *dir = fresh_dir("full");
  char err[512], want[65];
  pull_result r;
  sha_of(S.data, DATA_LEN, want);
  pull_status st = pull(dir, "/model.gguf", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK(file_is_data(dir, "m.gguf"));
  CHECK_INT(file_size(dir, "m.gguf.part"), -1);
  CHECK_S(r.sha256, want);
  CHECK_INT(r.bytes, DATA_LEN);
  CHECK_INT(r.attempts, 1);
  CHECK_INT(r.resumed_from, 0);
  CHECK_S(S.last_range, "");
  /* A second pull keeps the file and verifies it. */
  st = pull(dir, "/model.gguf", "m", want, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.already, 1);
  CHECK_INT(r.attempts, 0);
}

static void test_resume_after_drop(void) {
  const char *dir = fresh_dir("resume");
  char err[512], want[65], range[64];
  pull_result r;
  sha_of(S.data, DATA_LEN, want);
  S.drop_next = 1;
  pull_status st = pull(dir, "/drop.gguf", "m", want, 0, &r, err);
  CHECK_INT(st, PULL_ENET);
  CHECKF(strstr(err, "resume") != NULL, "%s", err);
  long part = file_size(dir, "m.gguf.part");
  CHECKF(part > 0 && part < DATA_LEN, "part %ld", part);
  CHECK_INT(file_size(dir, "m.gguf"), -1);
  /* The next pull asks for the rest only, and re-hashes the part. */
  st = pull(dir, "/drop.gguf", "m", want, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  snprintf(range, sizeof range, "bytes=%ld-", part);
  CHECK_S(S.last_range, range);
  CHECK_S(S.last_if_range, "\"v1\"");
  CHECK_INT(r.resumed_from, part);
  CHECK_INT(r.restarted, 0);
  CHECK_S(r.sha256, want);
  CHECK(file_is_data(dir, "m.gguf"));
  CHECK_INT(file_size(dir, "m.gguf.part"), -1);
  CHECK_INT(file_size(dir, "m.gguf.part.meta"), -1);
}

/* A part whose file changed on the server (new ETag) is not resumed. */
static void test_changed_file_restarts(void) {
  const char *dir = fresh_dir("changed");
  char err[512];
  pull_result r;
  S.drop_next = 1;
  pull_status st = pull(dir, "/drop.gguf", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_ENET);
  CHECK(file_size(dir, "m.gguf.part") > 0);
  strcpy(S.etag, "\"v2\"");
  st = pull(dir, "/drop.gguf", "m", NULL, 0, &r, err);
  strcpy(S.etag, "\"v1\"");
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_S(S.last_if_range, "\"v1\"");
  CHECK_INT(r.restarted, 1);
  CHECK(file_is_data(dir, "m.gguf"));
}

/* A part left by a pull of another URL under the same name is discarded
 * without even asking for a range. */
static void test_other_url_restarts(void) {
  const char *dir = fresh_dir("other-url");
  char err[512];
  pull_result r;
  S.drop_next = 1;
  pull_status st = pull(dir, "/drop.gguf", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_ENET);
  CHECK(file_size(dir, "m.gguf.part") > 0);
  st = pull(dir, "/model.gguf", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_S(S.last_range, "");
  CHECK_INT(r.restarted, 1);
  CHECK_INT(r.resumed_from, 0);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_resume_within_one_pull(void) {
  const char *dir = fresh_dir("retry");
  char err[512], want[65];
  pull_result r;
  sha_of(S.data, DATA_LEN, want);
  S.drop_next = 2;
  pull_status st = pull(dir, "/drop.gguf", "m", want, 3, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.attempts, 3);
  CHECK(strncmp(S.last_range, "bytes=", 6) == 0);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_server_ignores_range(void) {
  const char *dir = fresh_dir("norange");
  char err[512];
  pull_result r;
  mkdir(dir, 0700);
  write_file(dir, "m.gguf.part", S.data, DATA_LEN / 3);
  pull_status st = pull(dir, "/norange.gguf", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK(strncmp(S.last_range, "bytes=", 6) == 0);
  CHECK_INT(r.restarted, 1);
  CHECK_INT(r.resumed_from, 0);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_wrong_content_range(void) {
  const char *dir = fresh_dir("badrange");
  char err[512];
  pull_result r;
  mkdir(dir, 0700);
  write_file(dir, "m.gguf.part", S.data, 1000);
  pull_status st = pull(dir, "/badrange.gguf", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_EHTTP);
  CHECKF(strstr(err, "range") != NULL, "%s", err);
  CHECK_INT(file_size(dir, "m.gguf"), -1);
  CHECK_INT(file_size(dir, "m.gguf.part"), 1000);
}

static void test_complete_part(void) {
  const char *dir = fresh_dir("complete");
  char err[512];
  pull_result r;
  mkdir(dir, 0700);
  write_file(dir, "m.gguf.part", S.data, DATA_LEN);
  pull_status st = pull(dir, "/model.gguf", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.http_status, 416);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_sha256_match_and_mismatch(void) {
  const char *dir = fresh_dir("sha");
  char err[512], want[65], wrong[65];
  pull_result r;
  sha_of(S.data, DATA_LEN, want);
  pull_status st = pull(dir, "/model.gguf", "good", want, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK(file_is_data(dir, "good.gguf"));
  memcpy(wrong, want, sizeof wrong);
  wrong[10] = wrong[10] == '0' ? '1' : '0';
  st = pull(dir, "/model.gguf", "bad", wrong, 0, &r, err);
  CHECK_INT(st, PULL_ECHECKSUM);
  CHECKF(strstr(err, "SHA-256") && strstr(err, want), "%s", err);
  CHECK_INT(file_size(dir, "bad.gguf"), -1);
  CHECK_INT(file_size(dir, "bad.gguf.part"), -1);
  st = pull(dir, "/model.gguf", "x", "abc", 0, &r, err);
  CHECK_INT(st, PULL_EINVAL);
}

static void test_http_404(void) {
  const char *dir = fresh_dir("404");
  char err[512];
  pull_result r;
  pull_status st = pull(dir, "/nope.gguf", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_EHTTP);
  CHECK_INT(r.http_status, 404);
  CHECKF(strstr(err, "HTTP 404") != NULL, "%s", err);
  CHECK_INT(file_size(dir, "m.gguf"), -1);
  CHECK_INT(file_size(dir, "m.gguf.part"), -1);
}

static void test_not_gguf(void) {
  const char *dir = fresh_dir("junk");
  char err[512];
  pull_result r;
  pull_status st = pull(dir, "/junk.bin", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_ENOTGGUF);
  CHECKF(strstr(err, "GGUF") != NULL, "%s", err);
  CHECK_INT(file_size(dir, "m.gguf"), -1);
  CHECK_INT(file_size(dir, "m.gguf.part"), -1);
}

static void test_redirect(void) {
  const char *dir = fresh_dir("redirect");
  char err[512];
  pull_result r;
  int before = S.requests;
  pull_status st = pull(dir, "/redirect", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(S.requests - before, 3);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_redirect_keeps_range(void) {
  const char *dir = fresh_dir("redirect-range");
  char err[512];
  pull_result r;
  mkdir(dir, 0700);
  write_file(dir, "m.gguf.part", S.data, 12345);
  pull_status st = pull(dir, "/redirect", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_S(S.last_url, "/model.gguf");
  CHECK_S(S.last_range, "bytes=12345-");
  CHECK_INT(r.resumed_from, 12345);
  CHECK_INT(r.restarted, 0);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_token_not_sent_to_other_host(void) {
  const char *dir = fresh_dir("token");
  char err[512], url[128];
  pull_result r;
  url_of(url, sizeof url, "/other-host");
  pull_opts o = {
      .url = url, .models_dir = dir, .name = "m", .bearer = "secret-token"};
  pull_status st = pull_download(&o, &r, err, sizeof err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_S(S.first_auth, "Bearer secret-token");
  CHECK_S(S.last_url, "/model.gguf");
  CHECK_S(S.last_auth, "");
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_second_pull_is_refused_while_locked(void) {
  const char *dir = fresh_dir("locked");
  char err[512], path[512];
  pull_result r;
  mkdir(dir, 0700);
  write_file(dir, "m.gguf.part", S.data, 100);
  snprintf(path, sizeof path, "%s/m.gguf.part", dir);
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
  pull_status st = pull(dir, "/model.gguf", "m", NULL, 0, &r, err);
  CHECK_INT(st, PULL_EBUSY);
  CHECKF(strstr(err, "another process") != NULL, "%s", err);
  CHECK_INT(file_size(dir, "m.gguf.part"), 100);
  close(fd);
  st = pull(dir, "/model.gguf", "m", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK(file_is_data(dir, "m.gguf"));
}

static void test_connection_refused(void) {
  const char *dir = fresh_dir("refused");
  char err[512];
  pull_result r;
  pull_opts o = {.url = "http://127.0.0.1:1/m.gguf",
                 .models_dir = dir,
                 .name = "m",
                 .connect_timeout_s = 5};
  pull_status st = pull_download(&o, &r, err, sizeof err);
  CHECK_INT(st, PULL_ENET);
  CHECK(err[0] != 0);
  CHECK_INT(file_size(dir, "m.gguf"), -1);
}

static int stop_early(const pull_progress *p, void *ud) {
  int *calls = ud;
  ++*calls;
  return p->done >= DATA_LEN / 4;
}

static void test_progress_abort_keeps_part(void) {
  const char *dir = fresh_dir("abort");
  char err[512], url[128];
  pull_result r;
  int calls = 0;
  url_of(url, sizeof url, "/model.gguf");
  pull_opts o = {.url = url,
                 .models_dir = dir,
                 .name = "m",
                 .progress = stop_early,
                 .progress_ud = &calls};
  pull_status st = pull_download(&o, &r, err, sizeof err);
  CHECK_INT(st, PULL_ENET);
  CHECK(calls > 0);
  long part = file_size(dir, "m.gguf.part");
  CHECKF(part >= DATA_LEN / 4 && part <= DATA_LEN, "part %ld", part);
  o.progress = NULL;
  st = pull_download(&o, &r, err, sizeof err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK(file_is_data(dir, "m.gguf"));
}

/* The digest published in X-Linked-Etag is checked when none was given. */
static void test_linked_etag(void) {
  const char *dir = fresh_dir("linked");
  char err[512];
  pull_result r;
  pull_status st = pull(dir, "/hf/good", "good", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.sha256_checked, 1);
  CHECK_S(r.sha256, S.sha);
  CHECK(file_is_data(dir, "good.gguf"));
  st = pull(dir, "/hf/bad", "bad", NULL, 0, &r, err);
  CHECK_INT(st, PULL_ECHECKSUM);
  CHECKF(strstr(err, "X-Linked-Etag") != NULL, "%s", err);
  CHECK_INT(file_size(dir, "bad.gguf"), -1);
  CHECK_INT(file_size(dir, "bad.gguf.part"), -1);
  /* the caller's digest wins over the server's */
  st = pull(dir, "/hf/bad", "mine", S.sha, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.sha256_checked, 1);
  /* a git sha1 (non-LFS file) is no digest: nothing to check */
  st = pull(dir, "/hf/sha1", "small", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.sha256_checked, 0);
  /* no header at all */
  st = pull(dir, "/model.gguf", "plain", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.sha256_checked, 0);
  /* resumed: the part's bytes and the new ones hash to the published one */
  write_file(dir, "again.gguf.part", S.data, 54321);
  st = pull(dir, "/hf/good2", "again", NULL, 0, &r, err);
  CHECKF(st == PULL_OK, "%s", err);
  CHECK_INT(r.resumed_from, 54321);
  CHECK_INT(r.sha256_checked, 1);
}

static void test_resolve_and_catalog(void) {
  pull_target t;
  char err[256];
  size_t n = 0;
  const pull_catalog_entry *c = pull_catalog(&n);
  CHECK(n >= 8);
  for (size_t i = 0; i < n; i++) {
    CHECK_INT(pull_resolve(c[i].name, &t, err, sizeof err), 0);
    CHECK(pull_name_ok(t.name));
    CHECK(strncmp(t.url, "https://huggingface.co/", 23) == 0);
    CHECK(strstr(t.url, "/resolve/main/") != NULL);
  }
  CHECK_INT(pull_resolve("Qwen2.5-0.5B-Instruct:Q4_K_M", &t, err, 256), 0);
  CHECK_S(t.url, "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/"
                 "resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf");
  CHECK_S(t.name, "qwen2.5-0.5b-instruct-q4_k_m");
  CHECK(t.sha256 && strlen(t.sha256) == 64);
  CHECK_INT(pull_resolve("qwen2.5-1.5b-instruct:q8_0", &t, err, 256), 0);
  CHECK(t.sha256 == NULL);
  /* the models, each in Q4_K_M and Q8_0 */
  const char *want[] = {"qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct",
                        "llama-3.2-1b-instruct", "smollm2-360m-instruct"};
  for (size_t i = 0; i < 4; i++)
    for (int q = 0; q < 2; q++) {
      char nm[96];
      snprintf(nm, sizeof nm, "%s:%s", want[i], q ? "q8_0" : "q4_k_m");
      const pull_catalog_entry *e = pull_catalog_find(nm);
      CHECKF(e != NULL, "%s not in the catalog", nm);
      if (!e)
        continue;
      CHECKF(strcasestr(e->file, q ? "q8_0" : "q4_k_m") != NULL, "%s: %s", nm,
             e->file);
      CHECKF(!e->sha256 || strlen(e->sha256) == 64, "%s", nm);
    }
  CHECK_INT(pull_resolve("llama-3.2-1b-instruct:q4_k_m", &t, err, 256), 0);
  CHECK_S(t.url, "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/"
                 "resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf");
  CHECK_S(t.name, "llama-3.2-1b-instruct-q4_k_m");
  CHECK(pull_catalog_find("qwen2.5-0.5b-instruct-q4_k_m") != NULL);
  CHECK_INT(pull_resolve("http://h/a/b/My Model.GGUF?download=1", &t, err, 256),
            0);
  CHECK_S(t.name, "My_Model");
  CHECK_INT(pull_resolve("no-such-model:q4", &t, err, sizeof err), -1);
  CHECKF(strstr(err, "--list") != NULL, "%s", err);
  CHECK_INT(pull_resolve("ftp://h/x.gguf", &t, err, sizeof err), -1);
  CHECK_INT(pull_resolve("https://h/", &t, err, sizeof err), -1);
  CHECK(!pull_name_ok("../x"));
  CHECK(!pull_name_ok(".hidden"));
  CHECK(!pull_name_ok(""));
  CHECK(pull_name_ok("llama-3.2_1b"));
}

/* Runs `<hearth> pull ARGS` (output of stdout+stderr into out); returns
 * its exit status, or -1 if it could not run. */
static int run_cli(const char *bin, const char *args, char *out, size_t n) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s pull %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  if (!p)
    return -1;
  size_t k = fread(out, 1, n - 1, p);
  out[k] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command itself, through the built binary (./hearth, or $HEARTH_BIN). */
static void test_cli(void) {
  const char *bin = getenv("HEARTH_BIN");
  char out[8192], args[700];
  if (!bin || !*bin)
    bin = "./hearth";
  if (access(bin, X_OK))
    SKIP("%s not built (make hearth)", bin);
  const char *dir = fresh_dir("cli");
  CHECK_INT(run_cli(bin, "--list", out, sizeof out), 0);
  CHECKF(strstr(out, "qwen2.5-0.5b-instruct:q4_k_m") &&
             strstr(out, "smollm2-135m-instruct:q8_0"),
         "%s", out);
  CHECKF(strstr(out, "sha256 not built in") && strstr(out, "(checked)"), "%s",
         out);
  CHECK_INT(run_cli(bin, "--help", out, sizeof out), 0);
  CHECK(strstr(out, "--sha256") != NULL);
  CHECK_INT(run_cli(bin, "no-such-model", out, sizeof out), 2);
  CHECKF(strstr(out, "unknown model") != NULL, "%s", out);
  CHECK_INT(run_cli(bin, "", out, sizeof out), 2);
  snprintf(args, sizeof args,
           "http://127.0.0.1:%d/model.gguf --data '%s' --quiet", S.port, dir);
  CHECK_INT(run_cli(bin, args, out, sizeof out), 0);
  CHECK_S(out, "");
  char models[400];
  snprintf(models, sizeof models, "%s/models", dir);
  CHECK(file_is_data(models, "model.gguf"));
  snprintf(args, sizeof args,
           "http://127.0.0.1:%d/model.gguf --data='%s' --name copy "
           "--sha256 %064d",
           S.port, dir, 0);
  CHECK_INT(run_cli(bin, args, out, sizeof out), 1);
  CHECKF(strstr(out, "SHA-256 mismatch") != NULL, "%s", out);
  CHECK_INT(file_size(models, "copy.gguf"), -1);
  /* not a terminal: plain progress lines, then the summary */
  snprintf(args, sizeof args,
           "http://127.0.0.1:%d/hf/good --data '%s' --name lines", S.port, dir);
  CHECK_INT(run_cli(bin, args, out, sizeof out), 0);
  CHECKF(strstr(out, "pulling http://") && strstr(out, "100%  1.0/1.0 MB\n") &&
             strstr(out, "saved ") && strstr(out, ", verified)") &&
             !strchr(out, '\r'),
         "%s", out);
  /* on a terminal (script(1) gives it one): a redrawn bar */
  if (access("/usr/bin/script", X_OK) == 0) {
    char cmd[900];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/script -qec \"%s pull http://127.0.0.1:%d/model.gguf "
             "--data '%s' --name tty\" /dev/null",
             bin, S.port, dir);
    FILE *pp = popen(cmd, "r");
    size_t k = pp ? fread(out, 1, sizeof out - 1, pp) : 0;
    out[k] = 0;
    int st = pp ? pclose(pp) : -1;
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
    CHECKF(strstr(out, "\r[##############################] 100.0%") &&
               !strstr(out, "100%  1.0/1.0 MB"),
           "%s", out);
    CHECK(file_is_data(models, "tty.gguf"));
  }
  /* an interrupted pull resumes, and says so */
  write_file(models, "resumed.gguf.part", S.data, 300000);
  snprintf(args, sizeof args,
           "http://127.0.0.1:%d/model.gguf --data '%s' --name resumed", S.port,
           dir);
  CHECK_INT(run_cli(bin, args, out, sizeof out), 0);
  CHECKF(strstr(out, "resuming at 0.3 MB\n") && strstr(out, "100%"), "%s", out);
  CHECK(file_is_data(models, "resumed.gguf"));
  snprintf(args, sizeof args, "http://127.0.0.1:%d/gone.gguf --data '%s'",
           S.port, dir);
  CHECK_INT(run_cli(bin, args, out, sizeof out), 1);
  CHECKF(strstr(out, "HTTP 404") != NULL, "%s", out);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-test-pull-XXXXXX");
  if (!mkdtemp(tmpdir) || srv_start()) {
    fprintf(stderr, "cannot set up the test server\n");
    return 1;
  }
  RUN(test_resolve_and_catalog);
  RUN(test_linked_etag);
  RUN(test_full_download);
  RUN(test_resume_after_drop);
  RUN(test_changed_file_restarts);
  RUN(test_other_url_restarts);
  RUN(test_resume_within_one_pull);
  RUN(test_server_ignores_range);
  RUN(test_wrong_content_range);
  RUN(test_complete_part);
  RUN(test_sha256_match_and_mismatch);
  RUN(test_http_404);
  RUN(test_not_gguf);
  RUN(test_redirect);
  RUN(test_redirect_keeps_range);
  RUN(test_token_not_sent_to_other_host);
  RUN(test_second_pull_is_refused_while_locked);
  RUN(test_connection_refused);
  RUN(test_progress_abort_keeps_part);
  RUN(test_cli);
  MHD_stop_daemon(S.d);
  free(S.data);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd)) {
  }
  T_MAIN_END();
}
