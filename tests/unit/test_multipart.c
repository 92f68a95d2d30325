/* Unit tests of the streaming multipart/form-data reader: every split point
 * of a body into two chunks, byte-by-byte feeding, truncated bodies, bad
 * boundaries, malformed part headers. */
#include "t.h"
#include "http/multipart.h"

typedef struct collect {
  char names[8][MP_MAX_NAME];
  char files[8][MP_MAX_FILENAME];
  char ctypes[8][MP_MAX_CTYPE];
  char data[8][256];
  size_t len[8];
  int n, open, ends;
} collect;

static int on_begin(void *u, const mp_part *p) {
  collect *c = u;
  if (c->n == 8)
    return 1;
  snprintf(c->names[c->n], MP_MAX_NAME, "%s", p->name);
  snprintf(c->files[c->n], MP_MAX_FILENAME, "%s", p->filename);
  snprintf(c->ctypes[c->n], MP_MAX_CTYPE, "%s", p->content_type);
  c->len[c->n] = 0;
  c->open = 1;
  return 0;
}

static int on_data(void *u, const char *d, size_t n) {
  collect *c = u;
  if (!c->open || c->len[c->n] + n >= sizeof c->data[0])
    return 1;
  memcpy(c->data[c->n] + c->len[c->n], d, n);
  c->len[c->n] += n;
  return 0;
}

static int on_end(void *u) {
  collect *c = u;
  c->data[c->n][c->len[c->n]] = 0;
  c->n++;
  c->open = 0;
  c->ends++;
  return 0;
}

static const mp_callbacks cbs = {on_begin, on_data, on_end};

#define BNDP "----hearthBoundary7MA4YWx"
#define BND BNDP "k"
static const char body[] =
    "preamble to ignore\r\n"
    "--" BND "\r\n"
    "Content-Disposition: form-data; name=\"purpose\"\r\n"
    "\r\n"
    "fine-tune\r\n"
    "--" BND "\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a "
    "\\\"q\\\".jsonl\"\r\n"
    "Content-Type: application/jsonl\r\n"
    "\r\n"
    "{\"a\":1}\r\n\r\n--" BNDP "Q\r\n-- not a boundary\r\r\n\r\n--\r\n"
    "--" BND "\r\n"
    "content-disposition: form-data; name=expires_after[seconds]\r\n"
    "\r\n"
    "\r\n"
    "--" BND "--\r\n"
    "epilogue";
static const char file_data[] =
    "{\"a\":1}\r\n\r\n--" BNDP "Q\r\n-- not a boundary\r\r\n\r\n--";

static void check_parts(const collect *c) {
  CHECK_INT(c->n, 3);
  CHECK_STR(c->names[0], "purpose");
  CHECK_STR(c->data[0], "fine-tune");
  CHECK_STR(c->names[1], "file");
  CHECK_STR(c->files[1], "a \"q\".jsonl");
  CHECK_STR(c->ctypes[1], "application/jsonl");
  CHECK_INT(c->len[1], strlen(file_data));
  CHECK(memcmp(c->data[1], file_data, strlen(file_data)) == 0);
  CHECK_STR(c->names[2], "expires_after[seconds]");
  CHECK_INT(c->len[2], 0);
}

static void test_whole(void) {
  mp_parser p;
  collect c = {0};
  CHECK_INT(mp_init(&p, BND, &cbs, &c), 0);
  CHECK_INT(mp_feed(&p, body, sizeof body - 1), MP_OK);
  CHECK(mp_done(&p));
  CHECK_INT(mp_finish(&p), MP_OK);
  check_parts(&c);
}

static void test_every_split(void) {
  size_t n = sizeof body - 1;
  for (size_t cut = 0; cut <= n; cut++) {
    mp_parser p;
    collect c = {0};
    mp_init(&p, BND, &cbs, &c);
    CHECK_INT(mp_feed(&p, body, cut), MP_OK);
    CHECK_INT(mp_feed(&p, body + cut, n - cut), MP_OK);
    CHECK_INT(mp_finish(&p), MP_OK);
    check_parts(&c);
    if (t_cur_failed) {
      fprintf(stderr, "  at split %zu\n", cut);
      return;
    }
  }
}

static void test_byte_by_byte(void) {
  mp_parser p;
  collect c = {0};
  mp_init(&p, BND, &cbs, &c);
  int bad = 0;
  for (size_t i = 0; i < sizeof body - 1; i++)
    bad |= mp_feed(&p, body + i, 1) != MP_OK;
  CHECK(!bad);
  CHECK_INT(mp_finish(&p), MP_OK);
  check_parts(&c);
}

static void test_truncated_everywhere(void) {
  /* Every prefix that stops before the closing delimiter is an error. */
  const char *close = strstr(body, "--" BND "--");
  size_t complete = (size_t)(close - body) + strlen("--" BND "--");
  for (size_t cut = 0; cut < complete; cut++) {
    mp_parser p;
    collect c = {0};
    mp_init(&p, BND, &cbs, &c);
    mp_feed(&p, body, cut);
    CHECKF(mp_finish(&p) == MP_ERR_SYNTAX, "prefix %zu accepted", cut);
    CHECK(mp_error(&p) != NULL);
  }
}

static void test_no_boundary_in_body(void) {
  mp_parser p;
  collect c = {0};
  mp_init(&p, "other", &cbs, &c);
  mp_feed(&p, body, sizeof body - 1);
  CHECK_INT(mp_finish(&p), MP_ERR_SYNTAX);
  CHECK_INT(c.n, 0);
}

static void test_bad_boundaries(void) {
  mp_parser p;
  collect c = {0};
  char b[80];
  CHECK_INT(mp_init(&p, "", &cbs, &c), -1);
  memset(b, 'a', 71);
  b[71] = 0;
  CHECK_INT(mp_init(&p, b, &cbs, &c), -1);
  CHECK_INT(mp_init(&p, "bad\rone", &cbs, &c), -1);
  b[70] = 0;
  CHECK_INT(mp_init(&p, b, &cbs, &c), 0);
}

static void test_content_type(void) {
  char buf[MP_MAX_BOUNDARY + 1];
  char *b = buf;
  CHECK_INT(mp_boundary_from_content_type(
                "multipart/form-data; boundary=abc123", b, sizeof buf),
            0);
  CHECK_STR(b, "abc123");
  CHECK_INT(mp_boundary_from_content_type(
                "Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\"", b,
                sizeof buf),
            0);
  CHECK_STR(b, "a b:c");
  CHECK_INT(mp_boundary_from_content_type("multipart/form-data", b, sizeof buf),
            -1);
  CHECK_INT(mp_boundary_from_content_type("application/json", b, sizeof buf),
            -1);
  CHECK_INT(mp_boundary_from_content_type(NULL, b, sizeof buf), -1);
  CHECK_INT(mp_boundary_from_content_type("multipart/form-data; boundary=", b,
                                          sizeof buf),
            -1);
}

static void expect_syntax(const char *text, const char *why) {
  mp_parser p;
  collect c = {0};
  mp_init(&p, "B", &cbs, &c);
  enum mp_status st = mp_feed(&p, text, strlen(text));
  if (st == MP_OK)
    st = mp_finish(&p);
  CHECKF(st == MP_ERR_SYNTAX, "%s accepted", why);
}

static void test_malformed(void) {
  expect_syntax("--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",
                "part without name");
  expect_syntax("--B\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n"
                "--B--",
                "not form-data");
  expect_syntax("--B\r\nno colon here\r\n\r\nx\r\n--B--", "header no colon");
  expect_syntax("--Bjunk\r\n", "garbage after boundary");
  expect_syntax("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
                "truncated data");
  expect_syntax("--B\r\nContent-Disposition: form-data; name=a\r\r\n",
                "bare CR");
  char big[2000];
  memset(big, 'h', sizeof big);
  memcpy(big, "--B\r\nX-Long: ", 13);
  big[sizeof big - 1] = 0;
  expect_syntax(big, "header too long");
}

static int abort_begin(void *u, const mp_part *p) {
  (void)u;
  (void)p;
  return 1;
}

static void test_callback_abort(void) {
  mp_parser p;
  mp_callbacks cb = {abort_begin, NULL, NULL};
  mp_init(&p, BND, &cb, NULL);
  CHECK_INT(mp_feed(&p, body, sizeof body - 1), MP_ERR_ABORTED);
}

int main(void) {
  RUN(test_whole);
  RUN(test_every_split);
  RUN(test_byte_by_byte);
  RUN(test_truncated_everywhere);
  RUN(test_no_boundary_in_body);
  RUN(test_bad_boundaries);
  RUN(test_content_type);
  RUN(test_malformed);
  RUN(test_callback_abort);
  T_MAIN_END();
}
