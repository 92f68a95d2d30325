/* Tests of the tensor-type table and the scalar reference routines
 * (engine/quant.h): fp16/bf16 conversion, quantize/dequantize error bounds
 * for every type, exact ggml rounding of the activation quantizers, dot
 * products against dequantized math, and (when ../shared is present)
 * dequantization of llama.cpp-made files and bit-exact requantization. */
#include "t.h"

#include <stdint.h>

#include "engine/gguf.h"
#include "engine/quant.h"

static uint64_t rng_state = 42;
static float frand(void) { /* uniform [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}
static float nrand(void) {
  float s = 0;
  for (int i = 0; i < 4; i++)
    s += frand();
  return s * 0.866f;
}

/* ---- fp16 / bf16 ---- */

static void test_fp16_known(void) {
  CHECK_INT(q_fp32_to_fp16(1.0f), 0x3c00);
  CHECK_INT(q_fp32_to_fp16(-2.0f), 0xc000);
  CHECK_INT(q_fp32_to_fp16(65504.0f), 0x7bff);
  CHECK_INT(q_fp32_to_fp16(65520.0f), 0x7c00);        /* rounds to inf */
  CHECK_INT(q_fp32_to_fp16(0x1p-24f), 0x0001);        /* smallest subnormal */
  CHECK_INT(q_fp32_to_fp16(0x1p-25f), 0x0000);        /* tie -> even (0) */
  CHECK_INT(q_fp32_to_fp16(0x1.8p-24f), 0x0002);      /* tie 1.5 -> 2 */
  CHECK_INT(q_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00); /* tie -> even */
  CHECK_INT(q_fp32_to_fp16(1.0f + 0x1.8p-11f), 0x3c01);
  CHECK_INT(q_fp32_to_fp16(1.0f + 0x3p-11f), 0x3c02); /* tie -> even */
  CHECK_INT(q_fp32_to_fp16(INFINITY), 0x7c00);
  CHECK((q_fp32_to_fp16(NAN) & 0x7c00) == 0x7c00 &&
        (q_fp32_to_fp16(NAN) & 0x3ff));
  CHECK(q_fp16_to_fp32(0x3555) > 0.333f && q_fp16_to_fp32(0x3555) < 0.3334f);
  CHECK(isinf(q_fp16_to_fp32(0xfc00)) && q_fp16_to_fp32(0xfc00) < 0);
}

static void test_fp16_roundtrip_all(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      continue; /* NaN */
    if (q_fp32_to_fp16(q_fp16_to_fp32((q_half)h)) != h)
      bad++;
  }
  CHECK_INT(bad, 0);
}

#ifdef __FLT16_MAX__
/* Against the compiler's own binary16 conversion (round to nearest even). */
static void test_fp16_vs_compiler(void) {
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t bits = (uint32_t)(rng_state >> 32);
    float f;
    memcpy(&f, &bits, 4);
    if (isnan(f))
      continue;
    _Float16 c = (_Float16)f;
    uint16_t cb;
    memcpy(&cb, &c, 2);
    if (cb != q_fp32_to_fp16(f))
      bad++;
  }
  CHECK_INT(bad, 0);
}
#endif

static void test_bf16(void) {
  CHECK_INT(q_fp32_to_bf16(1.0f), 0x3f80);
  CHECK(q_bf16_to_fp32(0x3f80) == 1.0f);
  /* 1 + 2^-8 is a tie between 1 and 1+2^-7: even wins (1) */
  CHECK_INT(q_fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  CHECK_INT(q_fp32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
  CHECK((q_fp32_to_bf16(NAN) & 0x7f80) == 0x7f80 &&
        (q_fp32_to_bf16(NAN) & 0x7f));
}

/* ---- table ---- */

static void test_table(void) {
  CHECK_STR(qtype_name(QT_Q4_K), "q4_K");
  CHECK_INT(qtype_from_name("Q6_K"), QT_Q6_K);
  CHECK_INT(qtype_from_name("iq4_xs"), QT_IQ4_XS);
  CHECK_INT(qtype_from_name("nope"), -1);
  CHECK_STR(qtype_name(QT_IQ2_XS), "iq2_xs");
  CHECK(!qtype(QT_IQ2_XS)->supported);
  CHECK(qtype(4) && !qtype(4)->supported);
  CHECK(qtype(40) == NULL && qtype(-1) == NULL);
  CHECK_INT(qtype_row_size(QT_Q4_K, 512), 288);
  CHECK_INT(qtype_row_size(QT_Q8_0, 64), 68);
  CHECK_INT(qtype_row_size(QT_Q8_0, 33), 0);
  CHECK_INT(qtype_row_size(QT_F16, 3), 6);
  CHECK_INT(qtype(QT_Q4_1)->vec_dot_type, QT_Q8_1);
  CHECK_INT(qtype(QT_IQ4_NL)->vec_dot_type, QT_Q8_0);
  CHECK_INT(qtype(QT_IQ4_XS)->vec_dot_type, QT_Q8_K);
  CHECK_INT(qtype(QT_BF16)->vec_dot_type, QT_BF16);
}

/* ---- round trips ---- */

typedef struct {
  int type;
  double max_rel; /* bound on RMSE / RMS for Gaussian data */
} bound;

static const bound BOUNDS[] = {
    {QT_F32, 0},       {QT_F16, 1e-3},   {QT_BF16, 5e-3}, {QT_Q8_0, 0.01},
    {QT_Q8_1, 0.01},   {QT_Q8_K, 0.012}, {QT_Q4_0, 0.13}, {QT_Q4_1, 0.12},
    {QT_Q5_0, 0.065},  {QT_Q5_1, 0.06},  {QT_Q2_K, 0.40}, {QT_Q3_K, 0.20},
    {QT_Q4_K, 0.11},   {QT_Q5_K, 0.055}, {QT_Q6_K, 0.03}, {QT_IQ4_NL, 0.11},
    {QT_IQ4_XS, 0.11},
};
#define NB (int)(sizeof BOUNDS / sizeof *BOUNDS)
#define N 1024

static double rel_rmse(const float *a, const float *b, int n) {
  double e = 0, s = 0;
  for (int i = 0; i < n; i++) {
    e += (double)(a[i] - b[i]) * (a[i] - b[i]);
    s += (double)b[i] * b[i];
  }
  return sqrt(e / (s > 0 ? s : 1));
}

static void test_roundtrip_all_types(void) {
  static float x[N], y[N];
  static uint8_t q[N * 4 + 64];
  for (int i = 0; i < N; i++)
    x[i] = nrand() * 0.05f;
  x[7] = 0.4f; /* an outlier, as real weights have */
  for (int k = 0; k < NB; k++) {
    const int t = BOUNDS[k].type;
    CHECK(qtype(t)->can_quantize && qtype(t)->supported);
    memset(q, 0xAB, sizeof q);
    CHECK_INT(q_quant_row(t, x, q, N), 0);
    q_dequant_row(t, q, y, N);
    const double r = rel_rmse(y, x, N);
    CHECKF(r <= BOUNDS[k].max_rel, "%s rel rmse %.4f > %.4f", qtype_name(t), r,
           BOUNDS[k].max_rel);
  }
}

static void test_zero_and_constant_blocks(void) {
  static float x[N], y[N];
  static uint8_t q[N * 4 + 64];
  for (int k = 0; k < NB; k++) {
    const int t = BOUNDS[k].type;
    memset(x, 0, sizeof x);
    q_quant_row(t, x, q, N);
    q_dequant_row(t, q, y, N);
    int nz = 0;
    for (int i = 0; i < N; i++)
      nz += y[i] != 0 || isnan(y[i]);
    CHECKF(nz == 0, "%s: zeros dequantize to %d non-zeros", qtype_name(t), nz);
    for (int i = 0; i < N; i++)
      x[i] = 0.25f;
    q_quant_row(t, x, q, N);
    q_dequant_row(t, q, y, N);
    CHECKF(rel_rmse(y, x, N) < 0.05, "%s: constant block error %.3f",
           qtype_name(t), rel_rmse(y, x, N));
  }
}

static void test_unsupported_refused(void) {
  float x[256] = {0};
  uint8_t q[1024];
  CHECK_INT(q_quant_row(QT_IQ2_XS, x, q, 256), -1);
  CHECK_INT(q_quant_row(QT_Q8_0, x, q, 33), -1);
}

/* ---- activation quantizers: exact ggml rounding ---- */

static void test_q8_0_rounding(void) {
  float x[32] = {0};
  x[0] = 127.0f; /* amax 127 -> d = 1 */
  x[1] = 2.5f;   /* roundf: half away from zero */
  x[2] = -2.5f;
  x[3] = 0.49f;
  block_q8_0 b;
  q_quant_row(QT_Q8_0, x, &b, 32);
  CHECK(q_fp16_to_fp32(b.d) == 1.0f);
  CHECK_INT(b.qs[0], 127);
  CHECK_INT(b.qs[1], 3);
  CHECK_INT(b.qs[2], -3);
  CHECK_INT(b.qs[3], 0);
  block_q8_1 c;
  q_quant_row(QT_Q8_1, x, &c, 32);
  CHECK(q_fp16_to_fp32(c.s) == 127.0f); /* d * sum(qs) = 127 + 3 - 3 */
}

static void test_q8_K_rounding(void) {
  float x[256] = {0};
  x[0] = -127.0f; /* signed max: iscale = -127 / -127 = 1 */
  x[1] = 2.5f;    /* nearest even -> 2 */
  x[2] = 3.5f;    /* -> 4 */
  x[20] = 5.0f;
  block_q8_K b;
  q_quant_row(QT_Q8_K, x, &b, 256);
  CHECK(b.d == 1.0f);
  CHECK_INT(b.qs[0], -127);
  CHECK_INT(b.qs[1], 2);
  CHECK_INT(b.qs[2], 4);
  CHECK_INT(b.bsums[0], -127 + 2 + 4);
  CHECK_INT(b.bsums[1], 5);
  x[0] = 127.0f; /* positive max: iscale = -1, so d = -1, signs flip */
  q_quant_row(QT_Q8_K, x, &b, 256);
  CHECK(b.d == -1.0f);
  CHECK_INT(b.qs[0], -127);
  CHECK_INT(b.qs[1], -2);
}

/* ---- dot products ---- */

static void test_vec_dot_matches_dequant(void) {
  static float x[N], a[N], xd[N], ad[N];
  static uint8_t qx[N * 4 + 64], qa[N * 4 + 64];
  for (int i = 0; i < N; i++) {
    x[i] = nrand() * 0.05f;
    a[i] = nrand();
  }
  const int wt[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q8_0,   QT_Q4_0,
                    QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q2_K,   QT_Q3_K,
                    QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_NL, QT_IQ4_XS};
  for (size_t k = 0; k < sizeof wt / sizeof *wt; k++) {
    const int t = wt[k], vt = qtype(t)->vec_dot_type;
    q_quant_row(t, x, qx, N);
    q_quant_row(vt, a, qa, N);
    q_dequant_row(t, qx, xd, N);
    q_dequant_row(vt, qa, ad, N);
    double ref = 0, mag = 0;
    for (int i = 0; i < N; i++) {
      ref += (double)xd[i] * ad[i];
      mag += fabs((double)xd[i] * ad[i]);
    }
    float s = -1;
    q_vec_dot_ref(t, N, &s, qx, qa);
    CHECKF(fabs(s - ref) <= 1e-4 * mag + 1e-6, "%s: dot %g vs dequant %g",
           qtype_name(t), s, ref);
  }
}

/* ---- against llama.cpp-made files in ../shared ---- */

static float *tensor_f32(const gguf_tensor *t) {
  int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
  float *y = malloc((size_t)n * sizeof *y);
  if (y)
    q_dequant_row(t->type, t->data, y, n);
  return y;
}

static void test_shared_dequant(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  static const struct {
    const char *file;
    double bound;
  } files[] = {{"Q4_0", 0.12},   {"Q4_1", 0.11},   {"Q5_0", 0.06},
               {"Q5_1", 0.055},  {"Q2_K", 0.40},   {"Q3_K_M", 0.20},
               {"Q4_K_M", 0.10}, {"Q5_K_M", 0.05}, {"Q6_K", 0.025},
               {"IQ4_NL", 0.10}, {"IQ4_XS", 0.10}};
  char path[512], err[256];
  gguf_file *ref = NULL;
  snprintf(path, sizeof path,
           "%s/testdata/models/synthetic/tiny-llama-d256-f16.gguf", sh);
  if (gguf_open(path, &ref, err, sizeof err))
    SKIP("%s", err);
  for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
    gguf_file *f;
    snprintf(path, sizeof path,
             "%s/testdata/models/synthetic/tiny-llama-d256-%s.gguf", sh,
             files[k].file);
    if (gguf_open(path, &f, err, sizeof err)) {
      CHECKF(0, "%s", err);
      continue;
    }
    for (int i = 0; i < gguf_n_tensors(f); i++) {
      const gguf_tensor *t = gguf_tensor_at(f, i);
      const gguf_tensor *r = gguf_find_tensor(ref, t->name);
      CHECK(r != NULL);
      if (!r)
        continue;
      float *a = tensor_f32(t), *b = tensor_f32(r);
      const double e = rel_rmse(a, b, (int)(t->ne[0] * t->ne[1]));
      CHECKF(e <= files[k].bound, "%s %s (%s): rel rmse %.4f", files[k].file,
             t->name, qtype_name(t->type), e);
      free(a);
      free(b);
    }
    gguf_close(f);
  }
  gguf_close(ref);
}

/* Share of blocks of llama.cpp-quantized tensor `t` that our reference
 * quantizer reproduces byte for byte from the source tensor `src`. */
static double same_blocks(const gguf_tensor *t, const gguf_tensor *src) {
  const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
  float *x = tensor_f32(src);
  uint8_t *q = malloc(t->nbytes);
  q_quant_row(t->type, x, q, n);
  const size_t bs = qtype(t->type)->type_size, nb = t->nbytes / bs;
  size_t same = 0;
  for (size_t b = 0; b < nb; b++)
    same += memcmp(q + b * bs, (const uint8_t *)t->data + b * bs, bs) == 0;
  free(x);
  free(q);
  return nb ? (double)same / nb : 0;
}

/* Compares every tensor of type `type` in file qf with its source in sf;
 * requires at least `min_share` identical blocks. */
static void requant_file(const char *sh, const char *sf, const char *qf,
                         int type, double min_share) {
  char p1[512], p2[512], err[256];
  gguf_file *s = NULL, *q = NULL;
  snprintf(p1, sizeof p1, "%s/testdata/models/synthetic/%s", sh, sf);
  snprintf(p2, sizeof p2, "%s/testdata/models/synthetic/%s", sh, qf);
  if (gguf_open(p1, &s, err, sizeof err) ||
      gguf_open(p2, &q, err, sizeof err)) {
    CHECKF(0, "%s", err);
    gguf_close(s);
    return;
  }
  int checked = 0;
  for (int i = 0; i < gguf_n_tensors(q); i++) {
    const gguf_tensor *t = gguf_tensor_at(q, i);
    const gguf_tensor *r = gguf_find_tensor(s, t->name);
    if (!r || t->type != type)
      continue;
    const double share = same_blocks(t, r);
    CHECKF(share >= min_share, "%s %s: %.3f of blocks identical (< %.2f)", qf,
           t->name, share, min_share);
    checked++;
  }
  CHECKF(checked > 0, "%s: no %s tensor compared", qf, qtype_name(type));
  gguf_close(s);
  gguf_close(q);
}

/* llama.cpp quantizes Q8_0 with its reference quantizer: from the same f32
 * source our bytes must be identical. The d256 files were quantized from a
 * source we only have in f16, so there most (not all) blocks must match. */
static void test_shared_requant_exact(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared not found (set HEARTH_SHARED)");
  requant_file(sh, "tiny-llama-f32.gguf", "tiny-llama-q8_0.gguf", QT_Q8_0, 1.0);
  requant_file(sh, "tiny-qwen2-f32.gguf", "tiny-qwen2-q8_0.gguf", QT_Q8_0, 1.0);
  requant_file(sh, "tiny-llama-d256-f16.gguf", "tiny-llama-d256-Q4_0.gguf",
               QT_Q4_0, 0.9);
  requant_file(sh, "tiny-llama-d256-f16.gguf", "tiny-llama-d256-Q5_0.gguf",
               QT_Q5_0, 0.9);
  requant_file(sh, "tiny-llama-d256-f16.gguf", "tiny-llama-d256-Q4_1.gguf",
               QT_Q4_1, 0.7);
  requant_file(sh, "tiny-llama-d256-f16.gguf", "tiny-llama-d256-Q5_1.gguf",
               QT_Q5_1, 0.7);
}

int main(void) {
  RUN(test_fp16_known);
  RUN(test_fp16_roundtrip_all);
#ifdef __FLT16_MAX__
  RUN(test_fp16_vs_compiler);
#endif
  RUN(test_bf16);
  RUN(test_table);
  RUN(test_roundtrip_all_types);
  RUN(test_zero_and_constant_blocks);
  RUN(test_unsupported_refused);
  RUN(test_q8_0_rounding);
  RUN(test_q8_K_rounding);
  RUN(test_vec_dot_matches_dequant);
  RUN(test_shared_dequant);
  RUN(test_shared_requant_exact);
  T_MAIN_END();
}
