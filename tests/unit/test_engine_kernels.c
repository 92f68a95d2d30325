/* Kernels: every SIMD path available on this CPU against the scalar
 * reference (quant.c / kernels.c) on seeded random inputs with odd sizes:
 * vec_dot per type, activation quantizers bit for bit, matmul (decode and
 * prefill tiles, 1..3 threads), and the f32 helpers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "t.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static float frand(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

static void fill(float *x, int64_t n, float scale) {
  for (int64_t i = 0; i < n; i++)
    x[i] = frand() * scale;
}

static const int weight_types[] = {
    QT_F32,  QT_F16,  QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1,   QT_Q5_0,  QT_Q5_1,
    QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_NL, QT_IQ4_XS};
#define N_WT ((int)(sizeof weight_types / sizeof *weight_types))

static int levels[3], n_levels;

static void find_levels(void) {
  n_levels = 0;
  for (int l = K_SIMD_SCALAR; l <= K_SIMD_AVX512; l++)
    if (k_set_simd(l) == 0)
      levels[n_levels++] = l;
  k_set_simd(levels[n_levels - 1]);
}

/* Quantizes a random row of `type`, returns it (caller frees). */
static void *make_row(int type, int64_t n, float *src) {
  void *w = malloc(qtype_row_size(type, n));
  fill(src, n, 1.0f);
  CHECKF(q_quant_row(type, src, w, n) == 0, "quantize %s", qtype_name(type));
  return w;
}

static void test_types_supported(void) {
  for (int i = 0; i < N_WT; i++)
    CHECKF(k_type_supported(weight_types[i]), "%s",
           qtype_name(weight_types[i]));
  CHECK(!k_type_supported(QT_Q8_K));
  CHECK(!k_type_supported(QT_IQ2_XXS));
}

/* vec_dot: every type x path vs q_vec_dot_ref (on identical inputs). */
static void test_vec_dot(void) {
  for (int ti = 0; ti < N_WT; ti++) {
    int type = weight_types[ti];
    int blck = qtype(type)->blck, vdt = qtype(type)->vec_dot_type;
    for (int nb = 1; nb <= 7; nb += 3) {
      int n = blck == 1 ? 37 * nb : blck * nb;
      float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
      void *w = make_row(type, n, a);
      fill(b, n, 3.0f);
      void *y = malloc(qtype_row_size(vdt, n));
      q_quant_row(vdt, b, y, n);
      float ref;
      q_vec_dot_ref(type, n, &ref, w, y);
      double mag = 0;
      for (int i = 0; i < n; i++)
        mag += fabs(a[i] * b[i]);
      for (int l = 0; l < n_levels; l++) {
        k_set_simd(levels[l]);
        float got = -12345;
        k_vec_dot(type, n, &got, w, y);
        CHECKF(fabs(got - ref) <= 1e-5 * mag + 1e-6, "%s n=%d %s: %g vs %g",
               qtype_name(type), n, k_simd_name(levels[l]), got, ref);
      }
      free(a), free(b), free(w), free(y);
    }
  }
  k_set_simd(levels[n_levels - 1]);
}

/* Activation quantizers: identical bytes, including all-zero blocks,
 * exact .5 ties and a negative largest value. */
static void test_quantize_act_exact(void) {
  const int types[] = {QT_Q8_0, QT_Q8_1, QT_Q8_K, QT_F16, QT_BF16, QT_F32};
  const int64_t n = 256 * 5;
  float *x = malloc(sizeof(float) * n);
  for (int trial = 0; trial < 4; trial++) {
    fill(x, n, trial == 0 ? 1.0f : 100.0f);
    if (trial == 1)
      memset(x + 256, 0, 256 * sizeof(float)); /* zero block */
    if (trial == 2) /* ties: k + 0.5 with amax 127 (Q8_0/Q8_1 scale 1) */
      for (int64_t i = 0; i < n; i++)
        x[i] = i % 32 == 5 ? 127.0f : (float)((int)(frand() * 120)) + 0.5f;
    if (trial == 3)
      for (int64_t i = 0; i < n; i += 37)
        x[i] = -200.0f; /* negative max */
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
      int t = types[ti];
      size_t sz = qtype_row_size(t, n);
      unsigned char *r = malloc(sz), *g = malloc(sz);
      memset(r, 0xAA, sz);
      q_quant_row(t, x, r, n);
      for (int l = 0; l < n_levels; l++) {
        k_set_simd(levels[l]);
        memset(g, 0x55, sz);
        k_quantize_act(t, x, g, n);
        CHECKF(memcmp(r, g, sz) == 0, "%s trial %d path %s", qtype_name(t),
               trial, k_simd_name(levels[l]));
      }
      free(r), free(g);
    }
  }
  free(x);
  k_set_simd(levels[n_levels - 1]);
}

/* matmul vs per-(row, token) reference dots, decode and prefill shapes,
 * with 1..3 threads and the pool-less path. */
static void check_matmul(int type, int64_t rows, int64_t cols, int64_t n_tok,
                         tpool *pool) {
  int vdt = qtype(type)->vec_dot_type;
  size_t wrow = qtype_row_size(type, cols), xrow = qtype_row_size(vdt, cols);
  float *tmp = malloc(sizeof(float) * cols);
  unsigned char *W = malloc(wrow * rows);
  for (int64_t r = 0; r < rows; r++) {
    fill(tmp, cols, 1.0f);
    q_quant_row(type, tmp, W + r * wrow, cols);
  }
  float *X = malloc(sizeof(float) * cols * n_tok);
  fill(X, cols * n_tok, 2.0f);
  unsigned char *Xq = malloc(xrow * n_tok);
  for (int64_t t = 0; t < n_tok; t++)
    q_quant_row(vdt, X + t * cols, Xq + t * xrow, cols);
  float *Y = malloc(sizeof(float) * rows * n_tok);
  for (int64_t i = 0; i < rows * n_tok; i++)
    Y[i] = NAN;
  CHECK_INT(k_matmul(pool, type, W, rows, cols, X, n_tok, Y), 0);
  int bad = 0;
  for (int64_t t = 0; t < n_tok && !bad; t++)
    for (int64_t r = 0; r < rows; r++) {
      float ref;
      q_vec_dot_ref(type, (int)cols, &ref, W + r * wrow, Xq + t * xrow);
      float got = Y[t * rows + r];
      if (!(fabsf(got - ref) <= 1e-4f * (1.0f + fabsf(ref)) + 1e-3f)) {
        CHECKF(0, "%s %lldx%lld tok %lld row %lld [%s, %d thr]: %g vs %g",
               qtype_name(type), (long long)rows, (long long)cols, (long long)t,
               (long long)r, k_simd_name(k_simd()), tpool_n_threads(pool), got,
               ref);
        bad = 1;
        break;
      }
    }
  free(tmp), free(W), free(X), free(Xq), free(Y);
}

static void test_matmul(void) {
  tpool *pools[3] = {tpool_create(1), tpool_create(2), tpool_create(3)};
  for (int l = 0; l < n_levels; l++) {
    k_set_simd(levels[l]);
    for (int ti = 0; ti < N_WT; ti++) {
      int type = weight_types[ti];
      int64_t cols = qtype(type)->blck == 1 ? 96 : 2 * qtype(type)->blck;
      if (qtype(type)->blck == 32)
        cols = 160;
      const int64_t shapes[][2] = {{37, 1}, {19, 7}, {70, 18}};
      for (int s = 0; s < 3; s++)
        check_matmul(type, shapes[s][0], cols, shapes[s][1], pools[s]);
      check_matmul(type, 5, cols, 3, NULL);
    }
  }
  /* a bigger prefill block (crosses the token block of the driver) */
  check_matmul(QT_Q8_0, 64, 512, 130, pools[1]);
  check_matmul(QT_Q4_K, 48, 512, 70, pools[2]);
  check_matmul(QT_Q6_K, 33, 256, 67, pools[0]);
  check_matmul(QT_Q5_0, 9, 32 * 601, 5, pools[1]); /* a very wide row */
  /* small batches streaming two rows at a time, an odd row left over */
  check_matmul(QT_Q8_0, 37, 576, 12, pools[1]);
  check_matmul(QT_Q8_0, 37, 544, 16, NULL);
  /* errors */
  float y;
  CHECK_INT(k_matmul(NULL, QT_IQ2_XXS, &y, 1, 256, &y, 1, &y), -1);
  CHECK_INT(k_matmul(NULL, QT_Q8_0, &y, 1, 33, &y, 1, &y), -1);
  for (int i = 0; i < 3; i++)
    tpool_free(pools[i]);
  k_set_simd(levels[n_levels - 1]);
}

static int close_arr(const float *a, const float *b, int n, float tol);

/* A small batch (k_small_batch_max) gives each token the outputs of a
 * matmul of that token alone, bit for bit, with 1 or 2 threads. */
static void test_small_batch_exact(void) {
  const int64_t rows = 70, cols = 576;
  int type = QT_Q8_0, nmax = k_small_batch_max(type);
  if (nmax < 2)
    SKIP("no small-batch path on %s", k_simd_name(k_simd()));
  size_t wr = qtype_row_size(type, cols);
  unsigned char *W = malloc(wr * rows);
  float *tmp = malloc(sizeof(float) * cols);
  for (int64_t r = 0; r < rows; r++) {
    fill(tmp, cols, 1.0f);
    q_quant_row(type, tmp, W + r * wr, cols);
  }
  float *X = malloc(sizeof(float) * cols * nmax);
  fill(X, cols * nmax, 2.0f);
  float *Y = malloc(sizeof(float) * rows * nmax), *y1 = malloc(4 * rows);
  tpool *pool = tpool_create(2);
  for (int nt = 2; nt <= nmax; nt++) {
    CHECK_INT(k_matmul(nt & 1 ? pool : NULL, type, W, rows, cols, X, nt, Y), 0);
    for (int t = 0; t < nt; t++) {
      CHECK_INT(k_matmul(pool, type, W, rows, cols, X + t * cols, 1, y1), 0);
      CHECKF(!memcmp(y1, Y + t * rows, 4 * rows),
             "%d tokens: token %d differs from alone", nt, t);
    }
  }
  /* one more token: the tiled path, within float tolerance */
  float *Yb = malloc(sizeof(float) * rows * (nmax + 1));
  float *Xb = malloc(sizeof(float) * cols * (nmax + 1));
  memcpy(Xb, X, sizeof(float) * cols * nmax);
  fill(Xb + cols * nmax, cols, 2.0f);
  CHECK_INT(k_matmul(pool, type, W, rows, cols, Xb, nmax + 1, Yb), 0);
  CHECK(close_arr(Yb, Y, (int)(rows * nmax), 1e-5f));
  tpool_free(pool);
  free(W), free(tmp), free(X), free(Y), free(y1), free(Yb), free(Xb);
}

/* The K-quant prepared prefill path (Q2_K..Q6_K, IQ4_XS rows decoded into
 * super-blocks, 8 x 2 tiles, edge tiles, slices of super-blocks): odd row and
 * token counts, 1 to several super-blocks, 1..3 threads, vs the scalar
 * reference dots; and a token's outputs do not depend on the batch around it
 * (bit for bit). */
static void test_matmul_kquant(void) {
  tpool *pools[3] = {tpool_create(1), tpool_create(2), tpool_create(3)};
  const int types[6] = {QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q3_K, QT_Q2_K, QT_IQ4_XS};
  const int64_t shapes[][3] = {/* rows, super-blocks, tokens */
                               {1, 1, 2},
                               {3, 1, 5},
                               {4, 3, 4},
                               {7, 2, 9},
                               {17, 5, 3},
                               {33, 7, 13},
                               {66, 1, 37},
                               /* several super-block slices per row */
                               {9, 23, 7},
                               {13, 11, 5}};
  for (int ti = 0; ti < 6; ti++)
    for (int s = 0; s < (int)(sizeof shapes / sizeof *shapes); s++)
      check_matmul(types[ti], shapes[s][0], 256 * shapes[s][1], shapes[s][2],
                   s < 3 ? pools[s] : pools[s % 3]);
  for (int ti = 0; ti < 6; ti++) {
    const int64_t rows = 23, cols = 256 * 13, nt = 11; /* 2 slices */
    size_t wr = qtype_row_size(types[ti], cols);
    unsigned char *W = malloc(wr * rows);
    float *tmp = malloc(4 * cols), *X = malloc(4 * cols * nt);
    for (int64_t r = 0; r < rows; r++) {
      fill(tmp, cols, 1.0f);
      q_quant_row(types[ti], tmp, W + r * wr, cols);
    }
    fill(X, cols * nt, 2.0f);
    float *Y = malloc(4 * rows * nt), *Y2 = malloc(4 * rows * 2);
    CHECK_INT(k_matmul(pools[1], types[ti], W, rows, cols, X, nt, Y), 0);
    for (int t = 0; t + 2 <= nt; t += 3) { /* tokens t, t+1 as a batch of 2 */
      CHECK_INT(k_matmul(NULL, types[ti], W, rows, cols, X + t * cols, 2, Y2),
                0);
      CHECKF(!memcmp(Y2, Y + t * rows, 4 * rows * 2),
             "%s: tokens %d, %d differ in a batch of 2", qtype_name(types[ti]),
             t, t + 1);
    }
    free(W), free(tmp), free(X), free(Y), free(Y2);
  }
  for (int i = 0; i < 3; i++)
    tpool_free(pools[i]);
}

/* k_matmul_q_multi of three matrices of types[] (rows[] rows, 512 columns,
 * sharing one input of nt tokens quantized to act) == one k_matmul_q each,
 * within float-order tolerance (tiles may cut rows differently). */
static void check_multi(tpool *p, const int types[3], const int64_t rows[3],
                        int act, int nt) {
  const int64_t cols = 512;
  float *X = malloc(sizeof(float) * cols * nt), *tmp = malloc(4 * cols);
  fill(X, cols * nt, 1.0f);
  size_t xr = k_act_row_size(act, cols);
  unsigned char *Xq = malloc(xr * nt);
  k_quantize_rows(p, act, X, nt, cols, Xq);
  k_mat mats[3];
  float *ref[3];
  for (int m = 0; m < 3; m++) {
    size_t wr = qtype_row_size(types[m], cols);
    unsigned char *W = malloc(wr * rows[m]);
    for (int64_t r = 0; r < rows[m]; r++) {
      fill(tmp, cols, 1.0f);
      q_quant_row(types[m], tmp, W + r * wr, cols);
    }
    mats[m] = (k_mat){types[m], W, rows[m], malloc(4 * rows[m] * nt)};
    ref[m] = malloc(4 * rows[m] * nt);
    CHECK_INT(k_matmul_q(p, types[m], W, rows[m], cols, Xq, nt, ref[m]), 0);
  }
  CHECK_INT(k_matmul_q_multi(p, mats, 3, cols, Xq, nt), 0);
  for (int m = 0; m < 3; m++) {
    CHECK(close_arr(mats[m].Y, ref[m], (int)(rows[m] * nt), 1e-5f));
    free((void *)mats[m].W), free(mats[m].Y), free(ref[m]);
  }
  /* mixed activation types are refused */
  k_mat bad[2] = {{QT_Q8_0, NULL, 1, NULL}, {QT_Q4_K, NULL, 1, NULL}};
  CHECK_INT(k_matmul_q_multi(p, bad, 2, 512, Xq, 1), -1);
  free(X), free(tmp), free(Xq);
}

/* The same with K-quants (the prepared K-quant prefill path, mixed types
 * sharing an input). */
static void test_matmul_multi_kquant(void) {
  const int64_t rows[3] = {21, 9, 40};
  const int types[3] = {QT_Q4_K, QT_Q6_K, QT_Q5_K};
  tpool *p = tpool_create(2);
  check_multi(p, types, rows, QT_Q4_K, 6);
  tpool_free(p);
}

/* k_matmul_q_multi == one k_matmul_q per matrix. */
static void test_matmul_multi(void) {
  const int64_t rows[3] = {40, 17, 70};
  const int types[3] = {QT_Q5_0, QT_Q8_0, QT_Q4_0}; /* all Q8_0 activations */
  tpool *p = tpool_create(3);
  for (int nt = 1; nt <= 9; nt += nt < 3 ? 2 : 6) /* 1, 3 and 9 */
    check_multi(p, types, rows, QT_Q8_0, nt);
  tpool_free(p);
}

/* Attention rows: scores and weighted values vs the helpers one row at a
 * time, with an index list and odd counts. */
static void test_attn_rows(void) {
  enum { HD = 64, NR = 37, STRIDE = 3 * HD };
  uint16_t kv[NR * STRIDE];
  float q[2 * HD], tmp[STRIDE], p[NR], out[2 * HD], ref[2 * HD], sc[NR];
  int32_t idx[NR];
  for (int j = 0; j < NR; j++) {
    fill(tmp, STRIDE, 1.0f);
    k_f32_to_f16(kv + j * STRIDE, tmp, STRIDE);
    idx[j] = (j * 11) % NR;
    p[j] = frand();
  }
  fill(q, 2 * HD, 1.0f);
  for (int l = 0; l < n_levels; l++) {
    k_set_simd(levels[l]);
    for (int n = 0; n <= NR; n += 9) {
      for (int use_idx = 0; use_idx <= 1; use_idx++) {
        const int32_t *ix = use_idx ? idx : NULL;
        k_attn_scores_f16(sc, q, kv + HD, ix, STRIDE, n, HD, 0.125f);
        for (int j = 0; j < n; j++) {
          float r =
              0.125f * k_dot_f16(q, kv + HD + (ix ? ix[j] : j) * STRIDE, HD);
          CHECKF(fabsf(sc[j] - r) <= 1e-5f * (1 + fabsf(r)), "score %d %s", j,
                 k_simd_name(levels[l]));
        }
        k_attn_values_f16(out, p, kv + HD, ix, STRIDE, n, HD);
        memset(ref, 0, sizeof ref);
        for (int j = 0; j < n; j++)
          k_axpy_f16(ref, p[j], kv + HD + (ix ? ix[j] : j) * STRIDE, HD);
        CHECKF(close_arr(out, ref, HD, 1e-5f), "values n=%d %s", n,
               k_simd_name(levels[l]));
      }
    }
    /* head dims that are not a multiple of 64 / 8 */
    for (int hd = 4; hd <= 100; hd += 48) {
      k_attn_values_f16(out, p, kv, NULL, STRIDE, 5, hd);
      memset(ref, 0, sizeof ref);
      for (int j = 0; j < 5; j++)
        k_axpy_f16(ref, p[j], kv + j * STRIDE, hd);
      CHECKF(close_arr(out, ref, hd, 1e-5f), "values hd=%d", hd);
      k_attn_scores_f16(sc, q, kv, NULL, STRIDE, 6, hd, 1.0f);
      for (int j = 0; j < 6; j++)
        CHECK_NEAR(sc[j], k_dot_f16(q, kv + j * STRIDE, hd), 1e-4);
    }
  }
  k_set_simd(levels[n_levels - 1]);
}

/* ---- f32 helpers --------------------------------------------------------- */

static int close_arr(const float *a, const float *b, int n, float tol) {
  for (int i = 0; i < n; i++)
    if (!(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i])))) {
      fprintf(stderr, "  at %d: %g vs %g\n", i, a[i], b[i]);
      return 0;
    }
  return 1;
}

static void test_f32_helpers(void) {
  const int sizes[] = {1, 7, 8, 33, 100, 896};
  enum { MAXN = 896 };
  float a[MAXN], b[MAXN], w[MAXN], y[MAXN], ref[MAXN];
  uint16_t h[MAXN], href[MAXN];
  for (int l = 0; l < n_levels; l++) {
    k_set_simd(levels[l]);
    const char *p = k_simd_name(levels[l]);
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
      int n = sizes[si];
      fill(a, n, 4.0f), fill(b, n, 2.0f), fill(w, n, 1.5f);
      /* rmsnorm */
      double ss = 0;
      for (int i = 0; i < n; i++)
        ss += (double)a[i] * a[i];
      float sc = 1.0f / sqrtf((float)(ss / n) + 1e-5f);
      for (int i = 0; i < n; i++)
        ref[i] = a[i] * sc * w[i];
      k_rmsnorm(y, a, w, n, 1e-5f);
      CHECKF(close_arr(y, ref, n, 1e-5f), "rmsnorm n=%d %s", n, p);
      /* silu * mul */
      for (int i = 0; i < n; i++)
        ref[i] = a[i] / (1 + expf(-a[i])) * b[i];
      k_silu_mul(y, a, b, n);
      CHECKF(close_arr(y, ref, n, 1e-5f), "silu_mul n=%d %s", n, p);
      /* add, scale */
      for (int i = 0; i < n; i++)
        ref[i] = (a[i] + b[i]) * 0.25f;
      k_add(y, a, b, n);
      k_scale(y, 0.25f, n);
      CHECKF(close_arr(y, ref, n, 1e-6f), "add/scale n=%d %s", n, p);
      /* softmax (with a large offset: must be stable) */
      double mx = -1e30, sum = 0;
      for (int i = 0; i < n; i++)
        y[i] = a[i] * 10 + 1000;
      for (int i = 0; i < n; i++)
        mx = y[i] > mx ? y[i] : mx;
      for (int i = 0; i < n; i++)
        sum += exp(y[i] - mx);
      for (int i = 0; i < n; i++)
        ref[i] = (float)(exp(y[i] - mx) / sum);
      k_softmax(y, n);
      CHECKF(close_arr(y, ref, n, 1e-5f), "softmax n=%d %s", n, p);
      /* dots */
      double d = 0, dh = 0;
      for (int i = 0; i < n; i++)
        d += (double)a[i] * b[i];
      CHECKF(fabs(k_dot_f32(a, b, n) - d) <= 1e-4 * (1 + fabs(d)),
             "dot n=%d %s", n, p);
      for (int i = 0; i < n; i++)
        href[i] = q_fp32_to_fp16(b[i]);
      k_f32_to_f16(h, b, n);
      CHECKF(memcmp(h, href, n * sizeof *h) == 0, "f32->f16 n=%d %s", n, p);
      k_f16_to_f32(y, h, n);
      for (int i = 0; i < n; i++)
        ref[i] = q_fp16_to_fp32(href[i]);
      CHECKF(memcmp(y, ref, n * sizeof *y) == 0, "f16->f32 n=%d %s", n, p);
      for (int i = 0; i < n; i++)
        dh += (double)a[i] * ref[i];
      CHECKF(fabs(k_dot_f16(a, h, n) - dh) <= 1e-4 * (1 + fabs(dh)),
             "dot_f16 n=%d %s", n, p);
      memcpy(y, w, n * sizeof *y);
      k_axpy_f16(y, 0.75f, h, n);
      for (int i = 0; i < n; i++)
        ref[i] = w[i] + 0.75f * ref[i];
      CHECKF(close_arr(y, ref, n, 1e-6f), "axpy_f16 n=%d %s", n, p);
    }
  }
  k_set_simd(levels[n_levels - 1]);
  float m[5] = {1, 3, -2, 3, 0};
  CHECK_INT(k_argmax(m, 5), 1);
  CHECK_INT(k_argmax(m, 0), -1);
}

/* rope vs the formula evaluated directly (double precision). */
static void test_rope(void) {
  enum { NH = 3, HD = 64 };
  float x[NH * HD], y[NH * HD], ff[HD / 2];
  for (int i = 0; i < HD / 2; i++)
    ff[i] = 1.0f + (i % 5) * 0.5f;
  for (int neox = 0; neox <= 1; neox++)
    for (int use_ff = 0; use_ff <= 1; use_ff++) {
      k_rope_params p = {HD, 10000.0f, 0.5f, use_ff ? ff : NULL, neox};
      int pos = 17;
      fill(x, NH * HD, 1.0f);
      memcpy(y, x, sizeof x);
      k_rope(y, NH, HD, pos, &p);
      int ok = 1;
      for (int h = 0; h < NH; h++)
        for (int i = 0; i < HD / 2; i++) {
          double th =
              pos * 0.5 * pow(10000.0, -2.0 * i / HD) / (use_ff ? ff[i] : 1.0);
          int a = neox ? i : 2 * i, b = neox ? i + HD / 2 : 2 * i + 1;
          double x0 = x[h * HD + a], x1 = x[h * HD + b];
          double r0 = x0 * cos(th) - x1 * sin(th);
          double r1 = x0 * sin(th) + x1 * cos(th);
          if (fabs(y[h * HD + a] - r0) > 1e-4 ||
              fabs(y[h * HD + b] - r1) > 1e-4)
            ok = 0;
        }
      CHECKF(ok, "rope neox=%d ff=%d", neox, use_ff);
    }
  /* partial rotation: dims past n_rot untouched */
  k_rope_params p = {32, 10000.0f, 1.0f, NULL, 1};
  fill(x, HD, 1.0f);
  memcpy(y, x, sizeof(float) * HD);
  k_rope(y, 1, HD, 5, &p);
  CHECK(memcmp(y + 32, x + 32, sizeof(float) * 32) == 0);
  CHECK(memcmp(y, x, sizeof(float) * 32) != 0);
}

int main(void) {
  k_init();
  find_levels();
  fprintf(stderr, "  simd paths:");
  for (int l = 0; l < n_levels; l++)
    fprintf(stderr, " %s", k_simd_name(levels[l]));
  fputc('\n', stderr);
  RUN(test_types_supported);
  RUN(test_vec_dot);
  RUN(test_quantize_act_exact);
  RUN(test_matmul);
  RUN(test_matmul_multi);
  RUN(test_matmul_kquant);
  RUN(test_matmul_multi_kquant);
  RUN(test_small_batch_exact);
  RUN(test_f32_helpers);
  RUN(test_attn_rows);
  RUN(test_rope);
  T_MAIN_END();
}
