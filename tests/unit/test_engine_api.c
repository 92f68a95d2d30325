/* Behaviour of the public engine API (engine.h) beyond numerics: batched
 * decoding of several sequences equals decoding each alone, prefix reuse
 * gives the same logits as recomputing, removing a sequence frees its cells,
 * batches that break the rules are refused with nothing done, a full cache
 * is reported, and load errors name what is wrong. Runs on tiny models made
 * by the fixture maker (plus ../shared's bert file when present). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fixture.h"
#include "engine/kernels.h"
#include "engine/kvcache.h"
#include "engine/quant.h"
#include "t.h"

/* ---- helpers -------------------------------------------------------------*/

/* Makes a fixture model (hearth's own maker: no ../shared needed), loads it
 * and removes the file (the mapping stays valid). */
static eng_model *load_fixture(const char *preset, const char *type) {
  fixture_params p;
  fixture_default_params(&p);
  char path[] = "/tmp/hearth_test_api_XXXXXX", err[256];
  int fd = mkstemp(path);
  if (fd < 0)
    return NULL;
  close(fd);
  eng_model *m = NULL;
  if (fixture_preset(preset, &p) || fixture_set_type(&p, type) ||
      fixture_write(&p, path, err, sizeof err))
    fprintf(stderr, "  fixture %s %s: %s\n", preset, type, err);
  else if (eng_model_load(path, NULL, &m, err, sizeof err))
    fprintf(stderr, "  load %s: %s\n", path, err);
  remove(path);
  return m;
}

static eng_ctx *new_ctx(eng_model *m, int n_ctx, int n_seq, int n_batch) {
  eng_ctx_params p = eng_ctx_default_params();
  p.n_ctx = n_ctx;
  p.n_seq_max = n_seq;
  p.n_batch = n_batch;
  p.n_threads = 2;
  eng_ctx *c = NULL;
  char err[256];
  if (eng_ctx_new(m, &p, &c, err, sizeof err))
    fprintf(stderr, "  ctx: %s\n", err);
  return c;
}

/* Largest |a - b| relative to the largest |b| (logits of random models
 * reach the hundreds; summation order alone moves them by ~1e-6 of that). */
static double max_diff(const float *a, const float *b, int n) {
  double d = 0, mx = 1e-6;
  for (int i = 0; i < n; i++) {
    if (fabs(a[i] - b[i]) > d)
      d = fabs(a[i] - b[i]);
    if (fabs(b[i]) > mx)
      mx = fabs(b[i]);
  }
  return d / mx;
}

/* Three different token sequences of different lengths. */
static const int32_t SEQ_A[] = {1, 409, 313, 341, 418, 259, 368, 448, 365};
static const int32_t SEQ_B[] = {1, 300, 500, 289, 405};
static const int32_t SEQ_C[] = {1, 22, 33, 44, 55, 66, 77, 88, 99, 111, 122};
#define LEN(a) ((int)(sizeof a / sizeof *a))

/* Decodes toks alone in a fresh context and copies the last logits. */
static int logits_alone(eng_model *m, const int32_t *toks, int n, float *out) {
  eng_ctx *c = new_ctx(m, 64, 1, 4);
  eng_batch b = eng_batch_init(n);
  int rc = -1;
  if (c && b.tok) {
    for (int i = 0; i < n; i++)
      eng_batch_add(&b, toks[i], i, 0, i == n - 1);
    if (eng_decode(c, &b) == ENG_OK) {
      memcpy(out, eng_get_logits(c, n - 1),
             sizeof(float) * eng_model_n_vocab(m));
      rc = 0;
    }
  }
  eng_batch_free(&b);
  eng_ctx_free(c);
  return rc;
}

/* ---- tests ---------------------------------------------------------------*/

/* tol: relative logit difference allowed (0 with the scalar kernels, whose
 * sums do not depend on how many tokens a matmul carries). */
static void batched_equals_alone(double tol) {
  eng_model *m = load_fixture("tiny-llama", "f32");
  CHECK(m != NULL);
  if (!m)
    return;
  int nv = eng_model_n_vocab(m);
  const int32_t *seqs[3] = {SEQ_A, SEQ_B, SEQ_C};
  int lens[3] = {LEN(SEQ_A), LEN(SEQ_B), LEN(SEQ_C)};
  float *ref = malloc(sizeof(float) * nv * 3);
  for (int s = 0; s < 3; s++)
    CHECK(logits_alone(m, seqs[s], lens[s], ref + (size_t)s * nv) == 0);

  /* step 1: prompts of seq 0 and 1 minus their last token, interleaved with
   * the whole of seq 2 in one batch; step 2: the last tokens of 0 and 1. */
  eng_ctx *c = new_ctx(m, 64, 3, 8);
  eng_batch b = eng_batch_init(64);
  int idx2 = -1;
  for (int i = 0; i < 12; i++)
    for (int s = 0; s < 3; s++) {
      int last = s == 2 ? lens[s] : lens[s] - 1;
      if (i < last) {
        if (s == 2 && i == last - 1)
          idx2 = b.n_tokens;
        eng_batch_add(&b, seqs[s][i], i, s, s == 2 && i == last - 1);
      }
    }
  CHECK(eng_decode(c, &b) == ENG_OK);
  CHECKF(max_diff(eng_get_logits(c, idx2), ref + 2 * (size_t)nv, nv) <= tol,
         "seq 2 batched vs alone: %g",
         max_diff(eng_get_logits(c, idx2), ref + 2 * (size_t)nv, nv));
  eng_batch_clear(&b);
  eng_batch_add(&b, SEQ_B[lens[1] - 1], lens[1] - 1, 1, 1);
  eng_batch_add(&b, SEQ_A[lens[0] - 1], lens[0] - 1, 0, 1);
  CHECK(eng_decode(c, &b) == ENG_OK);
  CHECKF(max_diff(eng_get_logits(c, 1), ref, nv) <= tol, "seq 0: %g",
         max_diff(eng_get_logits(c, 1), ref, nv));
  CHECKF(max_diff(eng_get_logits(c, 0), ref + nv, nv) <= tol, "seq 1: %g",
         max_diff(eng_get_logits(c, 0), ref + nv, nv));
  CHECK(eng_get_logits(c, 2) == NULL);
  CHECK(eng_kv_seq_pos_max(c, 0) == lens[0] - 1);
  CHECK(eng_kv_seq_pos_max(c, 2) == lens[2] - 1);
  CHECK(eng_kv_used(c) == lens[0] + lens[1] + lens[2]);
  eng_batch_free(&b);
  eng_ctx_free(c);
  free(ref);
  eng_model_free(m);
}

static void test_batched_equals_alone(void) {
  batched_equals_alone(1e-4);
}

/* With the scalar kernels the batching is exact: bit-identical logits. */
static void test_batched_exact_scalar(void) {
  int prev = k_simd();
  CHECK(k_set_simd(K_SIMD_SCALAR) == 0);
  batched_equals_alone(0);
  k_set_simd(prev);
}

static void test_prefix_reuse(void) {
  eng_model *m = load_fixture("tiny-qwen2", "f32");
  CHECK(m != NULL);
  if (!m)
    return;
  int nv = eng_model_n_vocab(m);
  int32_t longer[LEN(SEQ_A) + 3];
  memcpy(longer, SEQ_A, sizeof SEQ_A);
  longer[LEN(SEQ_A)] = 7, longer[LEN(SEQ_A) + 1] = 8,
  longer[LEN(SEQ_A) + 2] = 9;
  int nl = LEN(longer);
  float *ref = malloc(sizeof(float) * nv);
  CHECK(logits_alone(m, longer, nl, ref) == 0);

  eng_ctx *c = new_ctx(m, 64, 4, 16);
  eng_batch b = eng_batch_init(32);
  for (int i = 0; i < LEN(SEQ_A); i++)
    eng_batch_add(&b, SEQ_A[i], i, 0, 0);
  CHECK(eng_decode(c, &b) == ENG_OK);
  int used = eng_kv_used(c);
  /* seq 3 starts with SEQ_A: its cached prefix is shared, not recomputed */
  int k = eng_kv_reuse_prefix(c, 3, longer, nl);
  CHECK_INT(k, LEN(SEQ_A));
  CHECK_INT(eng_kv_used(c), used); /* shared cells, no new ones */
  CHECK_INT(eng_kv_seq_pos_max(c, 3), LEN(SEQ_A) - 1);
  eng_batch_clear(&b);
  for (int i = k; i < nl; i++)
    eng_batch_add(&b, longer[i], i, 3, i == nl - 1);
  CHECK(eng_decode(c, &b) == ENG_OK);
  double d = max_diff(eng_get_logits(c, b.n_tokens - 1), ref, nv);
  CHECKF(d < 1e-4, "prefix-reused logits differ by %g", d);
  /* removing seq 0 keeps the shared prefix alive for seq 3 */
  eng_kv_seq_rm(c, 0, 0, -1);
  CHECK_INT(eng_kv_seq_pos_max(c, 0), -1);
  CHECK_INT(eng_kv_used(c), nl);
  /* a prompt that is already fully cached still leaves one token to decode */
  CHECK_INT(eng_kv_reuse_prefix(c, 1, longer, nl), nl - 1);
  /* removing every sequence frees every cell */
  eng_kv_seq_rm(c, 3, 0, -1);
  eng_kv_seq_rm(c, 1, 0, -1);
  CHECK_INT(eng_kv_used(c), 0);
  eng_batch_free(&b);
  eng_ctx_free(c);
  free(ref);
  eng_model_free(m);
}

static void test_rules_and_full(void) {
  eng_model *m = load_fixture("tiny-llama", "q8_0");
  CHECK(m != NULL);
  if (!m)
    return;
  eng_ctx *c = new_ctx(m, 8, 2, 8);
  eng_batch b = eng_batch_init(16);
  /* positions must increase within a sequence */
  eng_batch_add(&b, 1, 0, 0, 1);
  eng_batch_add(&b, 2, 0, 0, 1);
  CHECK_INT(eng_decode(c, &b), ENG_ERR_INVALID);
  CHECK(strstr(eng_ctx_last_error(c), "position") != NULL);
  CHECK_INT(eng_kv_used(c), 0);
  /* token and sequence ids in range */
  eng_batch_clear(&b);
  eng_batch_add(&b, eng_model_n_vocab(m), 0, 0, 1);
  CHECK_INT(eng_decode(c, &b), ENG_ERR_INVALID);
  eng_batch_clear(&b);
  eng_batch_add(&b, 1, 0, 2, 1);
  CHECK_INT(eng_decode(c, &b), ENG_ERR_INVALID);
  /* 6 tokens fit, 3 more do not: refused with nothing done */
  eng_batch_clear(&b);
  for (int i = 0; i < 6; i++)
    eng_batch_add(&b, 10 + i, i, 0, i == 5);
  CHECK_INT(eng_decode(c, &b), ENG_OK);
  /* the hidden state comes with the logits, for the same tokens */
  CHECK(eng_get_embedding(c, 0) == NULL);
  const float *e = eng_get_embedding(c, 5);
  CHECK(e != NULL);
  double ss = 0;
  for (int i = 0; e && i < eng_model_n_embd(m); i++)
    ss += (double)e[i] * e[i];
  CHECK(isfinite(ss) && ss > 0);
  eng_batch_clear(&b);
  for (int i = 0; i < 3; i++)
    eng_batch_add(&b, 10 + i, i, 1, 1);
  CHECK_INT(eng_decode(c, &b), ENG_ERR_KV_FULL);
  CHECK_INT(eng_kv_used(c), 6);
  CHECK_INT(eng_kv_seq_pos_max(c, 1), -1);
  /* after removing a range of seq 0 they fit */
  eng_kv_seq_rm(c, 0, 3, -1);
  CHECK_INT(eng_kv_seq_pos_max(c, 0), 2);
  CHECK_INT(eng_decode(c, &b), ENG_OK);
  CHECK_INT(eng_kv_used(c), 6);
  eng_kv_clear(c);
  CHECK_INT(eng_kv_used(c), 0);
  /* an empty batch is refused */
  eng_batch_clear(&b);
  CHECK_INT(eng_decode(c, &b), ENG_ERR_INVALID);
  eng_batch_free(&b);
  eng_ctx_free(c);
  eng_model_free(m);
}

static void test_model_info(void) {
  eng_model *m = load_fixture("tiny-qwen2", "q8_0");
  CHECK(m != NULL);
  if (!m)
    return;
  CHECK_STR(eng_model_arch(m), "qwen2");
  CHECK(eng_model_n_vocab(m) > 0);
  CHECK(eng_model_n_layer(m) > 0);
  CHECK(eng_model_n_embd(m) > 0);
  CHECK(eng_model_n_head(m) % eng_model_n_head_kv(m) == 0);
  CHECK(eng_model_weight_bytes(m) > 0);
  CHECK(eng_model_weight_bytes(m) <= eng_model_file_bytes(m));
  char buf[64];
  CHECK(eng_model_meta_str(m, "general.architecture", buf, sizeof buf) == 5);
  CHECK(strcmp(buf, "qwen2") == 0);
  CHECK(eng_model_meta_str(m, "qwen2.block_count", buf, sizeof buf) > 0);
  CHECK_INT(atoi(buf), eng_model_n_layer(m));
  CHECK(eng_model_meta_str(m, "no.such.key", buf, sizeof buf) == -1);
  /* tokenizer passthrough round trip */
  int32_t ids[64];
  int n = eng_tokenize(m, "Hello world", 11, 0, 0, ids, 64);
  CHECK(n > 0);
  char text[256];
  int len = 0;
  for (int i = 0; i < n && n > 0; i++) {
    int k = eng_token_piece(m, ids[i], 0, text + len, (int)sizeof text - len);
    CHECK(k >= 0);
    if (k > 0)
      len += k;
  }
  text[len] = 0;
  CHECK(strcmp(text, "Hello world") == 0);
  eng_model_free(m);
}

static void test_load_errors(void) {
  char err[256] = "";
  eng_model *m = NULL;
  CHECK_INT(eng_model_load("/nonexistent/x.gguf", NULL, &m, err, sizeof err),
            ENG_ERR_IO);
  CHECK(m == NULL);
  CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
  /* a file that is not GGUF */
  char path[] = "/tmp/hearth_test_notgguf_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    FILE *f = fdopen(fd, "w");
    fputs("this is not a gguf file at all, just text", f);
    fclose(f);
    CHECK_INT(eng_model_load(path, NULL, &m, err, sizeof err), ENG_ERR_FORMAT);
    CHECK(m == NULL);
    remove(path);
  }
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared is absent (encoder model refusal not checked)");
  char bert[512];
  snprintf(bert, sizeof bert, "%s/testdata/models/synthetic/tiny-bert-f32.gguf",
           sh);
  CHECK_INT(eng_model_load(bert, NULL, &m, err, sizeof err),
            ENG_ERR_UNSUPPORTED);
  CHECKF(strstr(err, "'bert'") != NULL, "%s", err);
}

/* Writes a tiny fixture, patches its bytes (find -> repl, same length; or
 * sets the type of tensor `retype` to `type`) and returns the load status
 * with its message in err. */
static int load_patched(const char *find, const char *repl, const char *retype,
                        int type, char *err, size_t errlen) {
  char path[] = "/tmp/hearth_test_patched_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return 1;
  close(fd);
  fixture_params p;
  fixture_default_params(&p);
  int rc = 1;
  if (fixture_write(&p, path, err, errlen))
    goto out;
  FILE *f = fopen(path, "r+b");
  if (!f)
    goto out;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  char *buf = malloc((size_t)size);
  fseek(f, 0, SEEK_SET);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    free(buf);
    fclose(f);
    goto out;
  }
  const char *key = find ? find : retype;
  char *at = memmem(buf, (size_t)size, key, strlen(key));
  if (at && find) {
    memcpy(at, repl, strlen(repl));
  } else if (at) { /* name, n_dims (u32), ne (u64 each), type (u32) */
    uint32_t nd;
    memcpy(&nd, at + strlen(key), 4);
    uint32_t t = (uint32_t)type;
    memcpy(at + strlen(key) + 4 + 8 * nd, &t, 4);
  }
  fseek(f, 0, SEEK_SET);
  fwrite(buf, 1, (size_t)size, f);
  fclose(f);
  free(buf);
  if (!at)
    goto out;
  eng_model *m = NULL;
  rc = eng_model_load(path, NULL, &m, err, errlen);
  eng_model_free(m);
out:
  remove(path);
  return rc;
}

static void test_load_refusals(void) {
  char err[256] = "";
  /* unknown architecture, refused by name */
  CHECK_INT(load_patched("llama", "lxama", NULL, 0, err, sizeof err),
            ENG_ERR_UNSUPPORTED);
  CHECKF(strstr(err, "'lxama'") != NULL, "%s", err);
  /* a missing tensor is named */
  CHECK_INT(load_patched("blk.1.ffn_up.weight", "blk.1.ffn_xx.weight", NULL, 0,
                         err, sizeof err),
            ENG_ERR_FORMAT);
  CHECKF(strstr(err, "blk.1.ffn_up.weight") != NULL, "%s", err);
  /* a tensor type the engine cannot multiply is refused by name */
  int rc = load_patched(NULL, NULL, "blk.0.attn_q.weight", QT_IQ2_XXS, err,
                        sizeof err);
  CHECK_INT(rc, ENG_ERR_UNSUPPORTED);
  fprintf(stderr, "  refusal: %s\n", err);
  CHECKF(strstr(err, "iq2_xxs") != NULL || strstr(err, "IQ2_XXS") != NULL, "%s",
         err);
}

/* A long context (smaller attention work items, cells far apart) and a
 * fragmented cache give the same logits as a small fresh context. */
static void test_long_context_fragmented(void) {
  eng_model *m = load_fixture("tiny-qwen2", "f32");
  CHECK(m != NULL);
  if (!m)
    return;
  int nv = eng_model_n_vocab(m);
  float *ref = malloc(sizeof(float) * nv);
  CHECK(logits_alone(m, SEQ_C, LEN(SEQ_C), ref) == 0);
  eng_ctx *c = new_ctx(m, 100000, 2, 512);
  eng_batch b = eng_batch_init(64);
  /* seq 1 takes cells 0..9, seq 0 interleaves with it, then seq 1 goes */
  for (int i = 0; i < 10; i++)
    eng_batch_add(&b, 5 + i, i, 1, 0);
  CHECK(eng_decode(c, &b) == ENG_OK);
  eng_kv_seq_rm(c, 1, 2, 4); /* holes at cells 2, 3 */
  eng_batch_clear(&b);
  for (int i = 0; i < LEN(SEQ_C); i++) {
    eng_batch_add(&b, SEQ_C[i], i, 0, i == LEN(SEQ_C) - 1);
    if (i < 5)
      eng_batch_add(&b, 20 + i, 10 + i, 1, 0);
  }
  CHECK(eng_decode(c, &b) == ENG_OK);
  double d = max_diff(eng_get_logits(c, b.n_tokens - 1), ref, nv);
  CHECKF(d < 1e-4, "long/fragmented context logits differ by %g", d);
  /* one more token alone (the decode path) among seq 1's cells */
  int32_t more[LEN(SEQ_C) + 1];
  memcpy(more, SEQ_C, sizeof SEQ_C);
  more[LEN(SEQ_C)] = 77;
  CHECK(logits_alone(m, more, LEN(more), ref) == 0);
  eng_batch_clear(&b);
  eng_batch_add(&b, 77, LEN(SEQ_C), 0, 1);
  CHECK(eng_decode(c, &b) == ENG_OK);
  d = max_diff(eng_get_logits(c, 0), ref, nv);
  CHECKF(d < 1e-4, "decode step in a fragmented cache differs by %g", d);
  eng_batch_free(&b);
  eng_ctx_free(c);
  free(ref);
  eng_model_free(m);
}

/* Each sequence's cells of s form one run: count == hi - lo + 1. */
static int seq_contiguous(const kv_cache *kv, int s, int *count) {
  int lo = -1, hi = -1, n = 0;
  for (int c = 0; c < kv->n_cells; c++)
    if (kv->cells[c].seqs >> s & 1) {
      if (lo < 0)
        lo = c;
      hi = c;
      n++;
    }
  *count = n;
  return n == 0 || hi - lo + 1 == n;
}

/* 16 sequences admitted one per step (a 40-token prompt each) while the
 * others decode one token per step, then 64 steps all together: every
 * sequence's cells stay one run (attention scans a sequence's cell range,
 * so interleaved cells would make each query scan all 16 sequences). */
static void test_kv_placement_contiguous(void) {
  kv_cache kv;
  CHECK(kv_init(&kv, 4096, 1, 8, 16) == 0);
  int32_t seq[64], cells[64], pos[16] = {0};
  for (int step = 0; step < 16 + 64; step++) {
    int n = 0;
    for (int s = 0; s < 16 && s < step; s++)
      seq[n++] = s; /* one decode token each */
    if (step < 16)
      for (int i = 0; i < 40; i++)
        seq[n++] = step; /* the new prompt */
    CHECK(kv_find_cells(&kv, seq, n, cells) == 0);
    for (int i = 0; i < n; i++) {
      CHECK(kv.cells[cells[i]].seqs == 0);
      kv_claim(&kv, cells[i], seq[i], pos[seq[i]]++, 7);
    }
  }
  for (int s = 0; s < 16; s++) {
    int count;
    CHECKF(seq_contiguous(&kv, s, &count), "sequence %d not contiguous", s);
    CHECK_INT(count, pos[s]);
  }
  CHECK_INT(kv.n_used, 16 * (40 + 79) - 15 * 16 / 2);
  /* a sequence that is dropped leaves a hole; a trimmed one grows after its
   * own last cell again */
  kv_seq_rm(&kv, 3, 0, -1);
  kv_seq_rm(&kv, 5, 50, -1);
  pos[5] = 50;
  for (int i = 0; i < 10; i++)
    seq[i] = 5;
  CHECK(kv_find_cells(&kv, seq, 10, cells) == 0);
  for (int i = 0; i < 10; i++)
    kv_claim(&kv, cells[i], 5, pos[5]++, 7);
  int count;
  CHECK(seq_contiguous(&kv, 5, &count));
  CHECK_INT(count, 60);
  /* more than is free: nothing is handed out */
  int32_t *big = malloc(sizeof(int32_t) * 4096),
          *out = big ? malloc(sizeof(int32_t) * 4096) : NULL;
  CHECK(out != NULL);
  if (out) {
    for (int i = 0; i < 4096; i++)
      big[i] = 15;
    int free_n = kv.n_cells - kv.n_used;
    CHECK(kv_find_cells(&kv, big, free_n + 1, out) == -1);
    CHECK(kv_find_cells(&kv, big, free_n, out) == 0);
  }
  free(big);
  free(out);
  kv_free(&kv);
}

/* 16 sequences decoding together, their cells placed by kv_find_cells,
 * give each sequence the logits it gets alone. */
static void test_sixteen_together_equal_alone(void) {
  eng_model *m = load_fixture("tiny-llama", "f32");
  CHECK(m != NULL);
  if (!m)
    return;
  int nv = eng_model_n_vocab(m);
  enum { NS = 16, PL = 6, STEPS = 5 };
  int32_t toks[NS][PL + STEPS];
  for (int s = 0; s < NS; s++)
    for (int i = 0; i < PL + STEPS; i++)
      toks[s][i] = i ? 3 + (s * 37 + i * 11) % 400 : 1;
  eng_ctx *c = new_ctx(m, 1024, NS, 64);
  eng_batch b = eng_batch_init(NS * PL);
  for (int s = 0; s < NS; s++) /* all prompts, interleaved */
    for (int i = 0; i < PL; i++)
      eng_batch_add(&b, toks[s][i], i, s, 0);
  CHECK(eng_decode(c, &b) == ENG_OK);
  float *ref = malloc(sizeof(float) * nv);
  for (int k = 0; k < STEPS; k++) {
    eng_batch_clear(&b);
    for (int s = 0; s < NS; s++)
      eng_batch_add(&b, toks[s][PL + k], PL + k, s, 1);
    CHECK(eng_decode(c, &b) == ENG_OK);
  }
  for (int s = 0; s < NS; s += 5) {
    CHECK(logits_alone(m, toks[s], PL + STEPS, ref) == 0);
    double d = max_diff(eng_get_logits(c, s), ref, nv);
    CHECKF(d < 1e-4, "sequence %d: 16 together vs alone %g", s, d);
  }
  free(ref);
  eng_batch_free(&b);
  eng_ctx_free(c);
  eng_model_free(m);
}

/* Asking logits for only some tokens (the last block then finishes only
 * those) gives the same logits as asking for all of them. */
static void test_logits_subset(void) {
  eng_model *m = load_fixture("tiny-qwen2", "f32");
  CHECK(m != NULL);
  if (!m)
    return;
  int nv = eng_model_n_vocab(m), n = LEN(SEQ_C);
  eng_ctx *all = new_ctx(m, 64, 1, 64), *some = new_ctx(m, 64, 1, 64);
  eng_batch ba = eng_batch_init(n), bs = eng_batch_init(n);
  for (int i = 0; i < n; i++) {
    eng_batch_add(&ba, SEQ_C[i], i, 0, 1);
    eng_batch_add(&bs, SEQ_C[i], i, 0, i == 3 || i == n - 1);
  }
  CHECK(eng_decode(all, &ba) == ENG_OK);
  CHECK(eng_decode(some, &bs) == ENG_OK);
  CHECK(eng_get_logits(some, 2) == NULL);
  for (int k = 0; k < 2; k++) {
    int i = k ? n - 1 : 3;
    const float *a = eng_get_logits(all, i), *b = eng_get_logits(some, i);
    CHECK(a && b);
    if (a && b) {
      double d = max_diff(b, a, nv);
      CHECKF(d < 1e-4, "token %d: logits differ by %g", i, d);
    }
  }
  /* the next token sees the same cache either way */
  eng_batch_clear(&ba);
  eng_batch_add(&ba, 42, n, 0, 1);
  CHECK(eng_decode(all, &ba) == ENG_OK);
  CHECK(eng_decode(some, &ba) == ENG_OK);
  CHECKF(max_diff(eng_get_logits(some, 0), eng_get_logits(all, 0), nv) < 1e-4,
         "next token differs");
  eng_batch_free(&ba);
  eng_batch_free(&bs);
  eng_ctx_free(all);
  eng_ctx_free(some);
  eng_model_free(m);
}

int main(void) {
  RUN(test_batched_equals_alone);
  RUN(test_batched_exact_scalar);
  RUN(test_prefix_reuse);
  RUN(test_logits_subset);
  RUN(test_long_context_fragmented);
  RUN(test_kv_placement_contiguous);
  RUN(test_sixteen_together_equal_alone);
  RUN(test_rules_and_full);
  RUN(test_model_info);
  RUN(test_load_errors);
  RUN(test_load_refusals);
  T_MAIN_END();
}
