/* Tests of the GGUF reader and writer (engine/gguf.h, engine/gguf_write.h):
 * write -> read round trips of every metadata type (v2 and v3, custom
 * alignment), hostile inputs (truncation at every byte, huge counts and
 * lengths, overflowing offsets, bad alignment, unknown types, duplicates),
 * and the llama.cpp-made files in ../shared when present. */
#include "t.h"

#include <stdint.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"

/* ---- helpers ---- */

/* Reads a whole file into memory (exact size, so overreads are caught by
 * sanitizers). */
static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
  if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *n = (size_t)sz;
  return b;
}

static char tmp_path[64];
static const char *tmpfile_path(void) {
  snprintf(tmp_path, sizeof tmp_path, "/tmp/hearth_test_gguf_%d.gguf",
           (int)getpid());
  return tmp_path;
}

/* Little byte builder for hand-made (hostile) files. */
typedef struct {
  uint8_t b[4096];
  size_t n;
} bb;
static void b_raw(bb *b, const void *p, size_t n) {
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void b_u32(bb *b, uint32_t v) {
  b_raw(b, &v, 4);
}
static void b_u64(bb *b, uint64_t v) {
  b_raw(b, &v, 8);
}
static void b_str(bb *b, const char *s) {
  b_u64(b, strlen(s));
  b_raw(b, s, strlen(s));
}
static void b_header(bb *b, uint32_t ver, uint64_t nt, uint64_t nkv) {
  b->n = 0;
  b_raw(b, "GGUF", 4);
  b_u32(b, ver);
  b_u64(b, nt);
  b_u64(b, nkv);
}
/* A tensor info: name, 2 dims, type, offset. */
static void b_tensor(bb *b, const char *name, uint64_t ne0, uint64_t ne1,
                     uint32_t type, uint64_t off) {
  b_str(b, name);
  b_u32(b, 2);
  b_u64(b, ne0);
  b_u64(b, ne1);
  b_u32(b, type);
  b_u64(b, off);
}
static void b_pad(bb *b, size_t a) {
  while (b->n % a)
    b->b[b->n++] = 0;
}

/* Opens b; expects failure with `needle` in the message. */
static void expect_fail(const bb *b, const char *needle) {
  gguf_file *f = NULL;
  char err[512] = "";
  uint8_t *copy = malloc(b->n ? b->n : 1);
  memcpy(copy, b->b, b->n);
  int rc = gguf_open_mem(copy, b->n, &f, err, sizeof err);
  CHECKF(rc < 0 && f == NULL, "opened, expected error containing '%s'", needle);
  CHECKF(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
  if (f)
    gguf_close(f);
  free(copy);
}

/* ---- round trip ---- */

static int write_sample(int version, uint32_t alignment, const char *path) {
  gguf_writer *w = gguf_writer_new();
  int rc = 0;
  rc |= gguf_writer_set_version(w, version);
  rc |= gguf_writer_set_alignment(w, alignment);
  rc |= gguf_w_u8(w, "t.u8", 200);
  rc |= gguf_w_i8(w, "t.i8", -100);
  rc |= gguf_w_u16(w, "t.u16", 60000);
  rc |= gguf_w_i16(w, "t.i16", -30000);
  rc |= gguf_w_u32(w, "t.u32", 4000000000u);
  rc |= gguf_w_i32(w, "t.i32", -2000000000);
  rc |= gguf_w_u64(w, "t.u64", 1ull << 40);
  rc |= gguf_w_i64(w, "t.i64", -(1ll << 40));
  rc |= gguf_w_f32(w, "t.f32", 0.5f);
  rc |= gguf_w_f64(w, "t.f64", -1.25);
  rc |= gguf_w_bool(w, "t.bool", 1);
  rc |= gguf_w_str(w, "t.str", "héllo");
  rc |= gguf_w_str(w, "t.empty", "");
  rc |= gguf_w_u64(w, "t.big", UINT64_MAX);
  const int32_t ai[5] = {1, -2, 3, -4, 5};
  rc |= gguf_w_arr(w, "t.arr_i32", GGUF_TYPE_INT32, ai, 5);
  const float af[3] = {0.25f, -1.5f, 3.0f};
  rc |= gguf_w_arr(w, "t.arr_f32", GGUF_TYPE_FLOAT32, af, 3);
  const uint8_t au[2] = {7, 255};
  rc |= gguf_w_arr(w, "t.arr_u8", GGUF_TYPE_UINT8, au, 2);
  const char *as[3] = {"a", "", "ccc"};
  rc |= gguf_w_arr_str(w, "t.arr_str", as, NULL, 3);
  rc |= gguf_w_arr(w, "t.arr_empty", GGUF_TYPE_INT64, NULL, 0);
  /* nested: array of 2 arrays of u16 */
  bb nb = {.n = 0};
  b_u32(&nb, GGUF_TYPE_ARRAY);
  b_u64(&nb, 2);
  for (int k = 0; k < 2; k++) {
    b_u32(&nb, GGUF_TYPE_UINT16);
    b_u64(&nb, 2);
    uint16_t v[2] = {(uint16_t)(k + 1), (uint16_t)(k + 10)};
    b_raw(&nb, v, 4);
  }
  rc |= gguf_w_raw(w, "t.nested", GGUF_TYPE_ARRAY, nb.b, nb.n);
  CHECK(gguf_w_u8(w, "t.u8", 1) < 0); /* duplicate key refused */
  /* tensors */
  const int64_t ne_a[2] = {32, 3}, ne_b[1] = {5}, ne_c[2] = {256, 2};
  CHECK_INT(gguf_w_tensor(w, "a", QT_Q8_0, 2, ne_a), 0);
  CHECK_INT(gguf_w_tensor(w, "b", QT_F32, 1, ne_b), 1);
  CHECK_INT(gguf_w_tensor(w, "c", QT_Q4_K, 2, ne_c), 2);
  CHECK(gguf_w_tensor(w, "a", QT_F32, 1, ne_b) < 0);    /* duplicate */
  CHECK(gguf_w_tensor(w, "d", QT_Q8_0, 1, ne_b) < 0);   /* 5 % 32 */
  CHECK(gguf_w_tensor(w, "e", QT_IQ2_XS, 2, ne_c) < 0); /* unsupported */
  uint8_t da[3 * 34], dc[2 * 144];
  float db[5] = {1, 2, 3, 4, 5};
  for (size_t i = 0; i < sizeof da; i++)
    da[i] = (uint8_t)i;
  for (size_t i = 0; i < sizeof dc; i++)
    dc[i] = (uint8_t)(i * 7);
  const void *datas[3] = {da, db, dc};
  char err[256];
  if (rc)
    return -1;
  rc = gguf_w_write_file(w, path, datas, err, sizeof err);
  gguf_writer_free(w);
  return rc;
}

static void check_sample(const gguf_file *f, int version, size_t alignment) {
  int64_t i;
  double d;
  int b, et;
  uint64_t n;
  size_t len;
  CHECK_INT(gguf_version(f), version);
  CHECK_INT(gguf_alignment(f), alignment);
  CHECK(gguf_get_int(f, "t.u8", &i) == 0 && i == 200);
  CHECK(gguf_get_int(f, "t.i8", &i) == 0 && i == -100);
  CHECK(gguf_get_int(f, "t.u16", &i) == 0 && i == 60000);
  CHECK(gguf_get_int(f, "t.i16", &i) == 0 && i == -30000);
  CHECK(gguf_get_int(f, "t.u32", &i) == 0 && i == 4000000000ll);
  CHECK(gguf_get_int(f, "t.i32", &i) == 0 && i == -2000000000);
  CHECK(gguf_get_int(f, "t.u64", &i) == 0 && i == 1ll << 40);
  CHECK(gguf_get_int(f, "t.i64", &i) == 0 && i == -(1ll << 40));
  CHECK_INT(gguf_get_int(f, "t.big", &i), GGUF_ERANGE);
  CHECK_INT(gguf_get_int(f, "t.f32", &i), GGUF_ETYPE);
  CHECK_INT(gguf_get_int(f, "t.str", &i), GGUF_ETYPE);
  CHECK_INT(gguf_get_int(f, "absent", &i), GGUF_ENOKEY);
  CHECK(gguf_get_float(f, "t.f32", &d) == 0 && d == 0.5);
  CHECK(gguf_get_float(f, "t.f64", &d) == 0 && d == -1.25);
  CHECK(gguf_get_float(f, "t.i16", &d) == 0 && d == -30000);
  CHECK(gguf_get_bool(f, "t.bool", &b) == 0 && b == 1);
  CHECK_INT(gguf_get_bool(f, "t.u8", &b), GGUF_ETYPE);
  const char *s = gguf_get_str(f, "t.str", &len);
  CHECK(s && len == strlen("héllo") && memcmp(s, "héllo", len) == 0);
  s = gguf_get_str(f, "t.empty", &len);
  CHECK(s && len == 0);
  CHECK(gguf_get_str(f, "t.u8", &len) == NULL);
  char buf[4];
  CHECK_INT(gguf_get_str_buf(f, "t.str", buf, sizeof buf), strlen("héllo"));
  CHECK(strcmp(buf, "h\xc3\xa9") == 0);
  CHECK(gguf_get_arr(f, "t.arr_i32", &et, &n) == 0 && et == GGUF_TYPE_INT32 &&
        n == 5);
  CHECK(gguf_arr_get_int(f, "t.arr_i32", 3, &i) == 0 && i == -4);
  CHECK_INT(gguf_arr_get_int(f, "t.arr_i32", 5, &i), GGUF_ERANGE);
  CHECK(gguf_arr_get_float(f, "t.arr_f32", 1, &d) == 0 && d == -1.5);
  CHECK(gguf_arr_get_int(f, "t.arr_u8", 1, &i) == 0 && i == 255);
  int32_t raw[5];
  memcpy(raw, gguf_arr_data(f, "t.arr_i32"), sizeof raw);
  CHECK(raw[0] == 1 && raw[4] == 5);
  CHECK(gguf_get_arr(f, "t.arr_str", &et, &n) == 0 && et == GGUF_TYPE_STRING &&
        n == 3);
  s = gguf_arr_str(f, "t.arr_str", 2, &len);
  CHECK(s && len == 3 && memcmp(s, "ccc", 3) == 0);
  s = gguf_arr_str(f, "t.arr_str", 1, &len);
  CHECK(s && len == 0);
  CHECK(gguf_arr_str(f, "t.arr_str", 3, &len) == NULL);
  CHECK(gguf_arr_data(f, "t.arr_str") == NULL);
  CHECK(gguf_get_arr(f, "t.arr_empty", &et, &n) == 0 && n == 0);
  CHECK(gguf_get_arr(f, "t.nested", &et, &n) == 0 && et == GGUF_TYPE_ARRAY &&
        n == 2);
  CHECK_INT(gguf_get_arr(f, "t.u8", &et, &n), GGUF_ETYPE);
  /* index-based walk sees every key once, in order */
  int k = gguf_find_key(f, "t.u8");
  CHECK(k >= 0 && gguf_key_type(f, k) == GGUF_TYPE_UINT8);
  const char *kn = gguf_key_at(f, k, &len);
  CHECK(kn && len == 4 && memcmp(kn, "t.u8", 4) == 0);
  CHECK(gguf_key_at(f, gguf_n_keys(f), &len) == NULL);
  /* tensors */
  CHECK_INT(gguf_n_tensors(f), 3);
  const gguf_tensor *a = gguf_find_tensor(f, "a"),
                    *tb = gguf_find_tensor(f, "b"),
                    *c = gguf_find_tensor(f, "c");
  CHECK(a && tb && c && !gguf_find_tensor(f, "zz"));
  if (!a || !tb || !c)
    return;
  CHECK(a->type == QT_Q8_0 && a->n_dims == 2 && a->ne[0] == 32 &&
        a->ne[1] == 3 && a->ne[2] == 1 && a->nbytes == 3 * 34);
  CHECK(tb->type == QT_F32 && tb->n_dims == 1 && tb->nbytes == 20);
  CHECK(c->type == QT_Q4_K && c->nbytes == 2 * 144);
  const uint8_t *pa = a->data;
  int ok = 1;
  for (int j = 0; j < 3 * 34; j++)
    ok &= pa[j] == (uint8_t)j;
  CHECK(ok);
  float fb[5];
  memcpy(fb, tb->data, sizeof fb);
  CHECK(fb[0] == 1 && fb[4] == 5);
  const uint8_t *pc = c->data;
  ok = 1;
  for (int j = 0; j < 2 * 144; j++)
    ok &= pc[j] == (uint8_t)(j * 7);
  CHECK(ok);
  const uint8_t *img = gguf_image(f);
  for (int t = 0; t < 3; t++) {
    const gguf_tensor *x = gguf_tensor_at(f, t);
    CHECK(((const uint8_t *)x->data - img) % alignment == 0);
  }
}

static void test_roundtrip(void) {
  const int versions[2] = {2, 3};
  const uint32_t aligns[2] = {32, 64};
  for (int v = 0; v < 2; v++) {
    for (int a = 0; a < 2; a++) {
      const char *p = tmpfile_path();
      CHECK_INT(write_sample(versions[v], aligns[a], p), 0);
      gguf_file *f = NULL;
      char err[256];
      CHECKF(gguf_open(p, &f, err, sizeof err) == 0, "%s", err);
      if (f) {
        check_sample(f, versions[v], aligns[a]);
        gguf_close(f);
      }
      unlink(p);
    }
  }
}

/* Truncated at every byte: an error (never a crash) until the last
 * tensor's data is complete; the trailing padding is optional. */
static void test_truncation_every_byte(void) {
  const char *p = tmpfile_path();
  CHECK_INT(write_sample(3, 32, p), 0);
  size_t n;
  uint8_t *full = slurp(p, &n);
  unlink(p);
  CHECK(full != NULL);
  if (!full)
    return;
  gguf_file *f;
  char err[256];
  CHECK_INT(gguf_open_mem(full, n, &f, err, sizeof err), 0);
  const gguf_tensor *last = gguf_tensor_at(f, gguf_n_tensors(f) - 1);
  const size_t need =
      (size_t)((const uint8_t *)last->data - full) + last->nbytes;
  gguf_close(f);
  int wrong = 0;
  for (size_t len = 0; len < n; len++) {
    uint8_t *cut = malloc(len ? len : 1);
    memcpy(cut, full, len);
    err[0] = 0;
    int rc = gguf_open_mem(cut, len, &f, err, sizeof err);
    if (len < need && (rc == 0 || !err[0]))
      wrong++;
    if (len >= need && rc != 0)
      wrong++;
    if (rc == 0)
      gguf_close(f);
    free(cut);
  }
  CHECK_INT(wrong, 0);
  free(full);
}

/* ---- hostile inputs ---- */

static void test_bad_magic_and_versions(void) {
  bb b;
  b_header(&b, 3, 0, 0);
  b.b[0] = 'X';
  expect_fail(&b, "not a GGUF file");
  b_header(&b, 1, 0, 0);
  expect_fail(&b, "unsupported GGUF version 1");
  b_header(&b, 4, 0, 0);
  expect_fail(&b, "unsupported GGUF version 4");
  b_header(&b, 0x03000000, 0, 0);
  expect_fail(&b, "big-endian");
  b.n = 6;
  expect_fail(&b, "truncated GGUF header");
  b_header(&b, 3, 0, 0); /* minimal valid file */
  gguf_file *f;
  char err[128];
  CHECK_INT(gguf_open_mem(b.b, b.n, &f, err, sizeof err), 0);
  if (f)
    gguf_close(f);
}

static void test_huge_counts(void) {
  bb b;
  b_header(&b, 3, 0, UINT64_MAX);
  expect_fail(&b, "metadata count");
  b_header(&b, 3, 1ull << 40, 0);
  expect_fail(&b, "tensor count");
  /* string length near 2^64 */
  b_header(&b, 3, 0, 1);
  b_str(&b, "k");
  b_u32(&b, GGUF_TYPE_STRING);
  b_u64(&b, UINT64_MAX - 3);
  b_raw(&b, "abcdefghijklmnop", 16);
  expect_fail(&b, "past end of file");
  /* key length huge */
  b_header(&b, 3, 0, 1);
  b_u64(&b, 1ull << 62);
  b_raw(&b, "abcdefghijklmnop", 16);
  expect_fail(&b, "key extends past end");
  /* array count huge, for scalar and string elements */
  b_header(&b, 3, 0, 1);
  b_str(&b, "arr");
  b_u32(&b, GGUF_TYPE_ARRAY);
  b_u32(&b, GGUF_TYPE_UINT64);
  b_u64(&b, 1ull << 61);
  b_raw(&b, "abcdefghijklmnop", 16);
  expect_fail(&b, "past end of file");
  b_header(&b, 3, 0, 1);
  b_str(&b, "arr");
  b_u32(&b, GGUF_TYPE_ARRAY);
  b_u32(&b, GGUF_TYPE_STRING);
  b_u64(&b, UINT64_MAX);
  b_raw(&b, "abcdefghijklmnop", 16);
  expect_fail(&b, "past end of file");
  /* unknown value type and unknown array element type */
  b_header(&b, 3, 0, 1);
  b_str(&b, "k");
  b_u32(&b, 13);
  b_u32(&b, 0);
  expect_fail(&b, "unknown value type 13");
  b_header(&b, 3, 0, 1);
  b_str(&b, "arr");
  b_u32(&b, GGUF_TYPE_ARRAY);
  b_u32(&b, 77);
  b_u64(&b, 1);
  b_u32(&b, 0);
  expect_fail(&b, "unknown array element type");
}

static void test_deep_nesting(void) {
  bb b;
  b_header(&b, 3, 0, 1);
  b_str(&b, "deep");
  b_u32(&b, GGUF_TYPE_ARRAY);
  for (int d = 0; d < 40; d++) {
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u64(&b, 1);
  }
  b_u32(&b, GGUF_TYPE_UINT8);
  b_u64(&b, 0);
  expect_fail(&b, "deep");
}

static void test_duplicates(void) {
  bb b;
  b_header(&b, 3, 0, 2);
  for (int k = 0; k < 2; k++) {
    b_str(&b, "dup");
    b_u32(&b, GGUF_TYPE_UINT8);
    b.b[b.n++] = 1;
  }
  expect_fail(&b, "duplicate metadata key 'dup'");
  b_header(&b, 3, 2, 0);
  b_tensor(&b, "w", 32, 1, QT_F32, 0);
  b_tensor(&b, "w", 32, 1, QT_F32, 128);
  b_pad(&b, 32);
  memset(b.b + b.n, 0, 256);
  b.n += 256;
  expect_fail(&b, "duplicate tensor name 'w'");
}

static void test_tensor_errors(void) {
  bb b;
  /* data past end of file */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "blk.0.attn_q.weight", 32, 4, QT_F32, 0);
  b_pad(&b, 32);
  memset(b.b + b.n, 0, 100);
  b.n += 100; /* 512 needed */
  expect_fail(&b,
              "tensor 'blk.0.attn_q.weight': data extends past end of file");
  /* offset near 2^64 must not wrap */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 32, 1, QT_F32, UINT64_MAX - 31);
  b_pad(&b, 32);
  expect_fail(&b, "past end of file");
  /* element count overflow */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 1ull << 40, 1ull << 40, QT_F32, 0);
  expect_fail(&b, "overflows");
  /* dimension above INT64_MAX */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", UINT64_MAX, 1, QT_F32, 0);
  expect_fail(&b, "too large");
  /* unsupported and unknown types are refused by name */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 256, 1, QT_IQ2_XS, 0);
  expect_fail(&b, "unsupported tensor type 17 (iq2_xs) in 'x'");
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 256, 1, 99, 0);
  expect_fail(&b, "unknown tensor type 99 in 'x'");
  /* row not a multiple of the block */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 33, 1, QT_Q8_0, 0);
  expect_fail(&b, "not a multiple of the q8_0 block size");
  /* misaligned offset */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "x", 32, 1, QT_F32, 8);
  expect_fail(&b, "not a multiple of the alignment");
  /* bad dimension count */
  b_header(&b, 3, 1, 0);
  b_str(&b, "x");
  b_u32(&b, 5);
  memset(b.b + b.n, 0, 64);
  b.n += 64;
  expect_fail(&b, "5 dimensions");
  /* empty name */
  b_header(&b, 3, 1, 0);
  b_tensor(&b, "", 32, 1, QT_F32, 0);
  expect_fail(&b, "invalid name");
}

static void test_bad_alignment(void) {
  bb b;
  b_header(&b, 3, 0, 1);
  b_str(&b, "general.alignment");
  b_u32(&b, GGUF_TYPE_UINT32);
  b_u32(&b, 48);
  expect_fail(&b, "not a power of two");
  b_header(&b, 3, 0, 1);
  b_str(&b, "general.alignment");
  b_u32(&b, GGUF_TYPE_UINT32);
  b_u32(&b, 0);
  expect_fail(&b, "not a power of two");
  b_header(&b, 3, 0, 1);
  b_str(&b, "general.alignment");
  b_u32(&b, GGUF_TYPE_UINT64);
  b_u64(&b, 32);
  expect_fail(&b, "expected uint32");
  /* alignment 1 is legal, but data must still suit its type: here the
   * f32 tensor would start at byte 98 */
  b_header(&b, 3, 1, 1);
  b_str(&b, "general.alignment");
  b_u32(&b, GGUF_TYPE_UINT32);
  b_u32(&b, 1);
  b_tensor(&b, "x", 4, 1, QT_F32, 0);
  CHECK_INT(b.n, 98);
  memset(b.b + b.n, 0, 16);
  b.n += 16;
  expect_fail(&b, "not aligned for f32");
}

static void test_open_errors(void) {
  gguf_file *f = (gguf_file *)1;
  char err[256];
  CHECK(gguf_open("/nonexistent/x.gguf", &f, err, sizeof err) < 0 && !f);
  CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
  CHECK(gguf_open("/tmp", &f, err, sizeof err) < 0);
  CHECK(strstr(err, "not a regular file") != NULL);
}

/* ---- llama.cpp-made files ---- */

static void test_shared_files(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  static const char *files[] = {"synthetic/tiny-llama-f32.gguf",
                                "synthetic/tiny-qwen2-q8_0.gguf",
                                "synthetic/tiny-llama-d256-Q4_K_M.gguf",
                                "synthetic/tiny-llama-d256-IQ4_XS.gguf",
                                "synthetic/tiny-bert-f16.gguf",
                                "stories260K/stories260K-f32.gguf"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char p[512], err[256];
    snprintf(p, sizeof p, "%s/testdata/models/%s", sh, files[i]);
    gguf_file *f;
    if (gguf_open(p, &f, err, sizeof err)) {
      CHECKF(0, "%s", err);
      continue;
    }
    size_t len;
    CHECK(gguf_get_str(f, "general.architecture", &len) != NULL);
    CHECK(gguf_n_tensors(f) > 0);
    int et;
    uint64_t n;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) == 0 &&
          et == GGUF_TYPE_STRING && n > 0);
    CHECK(gguf_arr_str(f, "tokenizer.ggml.tokens", n - 1, &len) != NULL);
    gguf_close(f);
  }
}

int main(void) {
  RUN(test_roundtrip);
  RUN(test_truncation_every_byte);
  RUN(test_bad_magic_and_versions);
  RUN(test_huge_counts);
  RUN(test_deep_nesting);
  RUN(test_duplicates);
  RUN(test_tensor_errors);
  RUN(test_bad_alignment);
  RUN(test_open_errors);
  RUN(test_shared_files);
  T_MAIN_END();
}
