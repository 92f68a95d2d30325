/* attn_avx512.c: AVX-512 variants of attn_avx2.c's attention loops over the
 * transposed f16 KV cache (16 f16 values widened per instruction, 512-bit
 * FMAs, masked compares for the softmax's mask). attn.c calls these only
 * when the kernels run at AVX-512 (k_simd()). Same products as the portable
 * path (f16 operands widened to f32, f32 sums), summed in another order.
 * Knows nothing about models, sequences or the cache's bookkeeping. */
#include "engine/attn_simd.h"

#include <immintrin.h>
#include <math.h>

#define INL static inline __attribute__((always_inline))

/* 16 f16 values widened to f32. */
INL __m512 ld_h16(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* R query rows (R <= 4, a constant after inlining) x 16*W cells (W = 1 or
 * 2): the R*W accumulators stay in registers over d. */
INL void qk_block(int R, int W, const float *q, int hd, const uint16_t *K,
                  size_t ldk, float *s, size_t lds) {
  __m512 a[4][2];
  for (int r = 0; r < R; r++)
    for (int w = 0; w < W; w++)
      a[r][w] = _mm512_setzero_ps();
  for (int d = 0; d < hd; d++) {
    __m512 k[2];
    for (int w = 0; w < W; w++)
      k[w] = ld_h16(K + d * ldk + 16 * w);
    for (int r = 0; r < R; r++) {
      __m512 qv = _mm512_set1_ps(q[(size_t)r * hd + d]);
      for (int w = 0; w < W; w++)
        a[r][w] = _mm512_fmadd_ps(qv, k[w], a[r][w]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int w = 0; w < W; w++)
      _mm512_storeu_ps(s + (size_t)r * lds + 16 * w, a[r][w]);
}

/* Every row over 16*W cells at j. */
INL void qk_cells(int W, const float *q, int nq, int hd, const uint16_t *K,
                  size_t ldk, float *S, size_t lds) {
  int r0 = 0;
  for (; r0 + 4 <= nq; r0 += 4)
    qk_block(4, W, q + (size_t)r0 * hd, hd, K, ldk, S + (size_t)r0 * lds, lds);
  const float *qr = q + (size_t)r0 * hd;
  float *sr = S + (size_t)r0 * lds;
  switch (nq - r0) {
  case 3:
    qk_block(3, W, qr, hd, K, ldk, sr, lds);
    break;
  case 2:
    qk_block(2, W, qr, hd, K, ldk, sr, lds);
    break;
  case 1:
    qk_block(1, W, qr, hd, K, ldk, sr, lds);
    break;
  }
}

/* Prefetches, for every row d < hd, the cache line at p + d * ld. */
INL void prefetch_rows(const uint16_t *p, size_t ld, int hd) {
  for (int d = 0; d < hd; d++)
    _mm_prefetch((const char *)(p + (size_t)d * ld), _MM_HINT_T0);
}

#define QK_PF 64 /* cells prefetched ahead (2 cache lines of each row) */

/* Cells outer (32 at a time, then 16), blocks of up to 4 rows inner: the
 * block of K stays in L1 while every query row passes over it. Each step
 * prefetches the K line QK_PF cells ahead in every row, and the V line of
 * the cells it scores. */
void attn_qk_avx512(const float *q, int nq, int hd, const uint16_t *K,
                    size_t ldk, int nc, float *S, size_t lds,
                    const uint16_t *V) {
  for (int j = 0; j < QK_PF && j < nc; j += 32)
    prefetch_rows(K + j, ldk, hd);
  int j = 0;
  for (; j + 32 <= nc; j += 32) {
    if (j + QK_PF < nc)
      prefetch_rows(K + j + QK_PF, ldk, hd);
    if (V)
      prefetch_rows(V + j, ldk, hd);
    qk_cells(2, q, nq, hd, K + j, ldk, S + j, lds);
  }
  for (; j < nc; j += 16) {
    if (V)
      prefetch_rows(V + j, ldk, hd);
    qk_cells(1, q, nq, hd, K + j, ldk, S + j, lds);
  }
}

/* The first 8 f16 values at p widened to f32, the upper 8 lanes zero (a
 * masked load: nothing past p + 8 is read). */
INL __m512 ld_h8z(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)0x00ff, p));
}

/* Level 1 of the sums of 16 accumulators: the 256-bit halves of x and of y
 * added, x's 8 partial sums in the low half, y's in the high half. */
INL __m512 fold_x2(__m512 x, __m512 y) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Level 2: from two level-1 results (x, y) and (z, w), each 128-bit lane
 * holds 4 partial sums of one of x, y, z, w. */
INL __m512 fold_x4(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Levels 3 and 4, within 128-bit lanes: pairs, then single sums. */
INL __m512 fold_in2(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
INL __m512 fold_in1(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The 16 horizontal sums of a[0..16) in one vector: element 4L + i is the
 * sum of a[4i + L] (30 shuffles instead of 64 for 16 separate reductions;
 * each sum is added up in the same order whatever the other 15 hold). */
INL __m512 sum16(const __m512 *a) {
  __m512 u[4];
  for (int i = 0; i < 4; i++)
    u[i] = fold_x4(fold_x2(a[4 * i], a[4 * i + 1]),
                   fold_x2(a[4 * i + 2], a[4 * i + 3]));
  return fold_in1(fold_in2(u[0], u[1]), fold_in2(u[2], u[3]));
}

/* R probability rows (R <= 4) x 4 value rows (d .. d+3) over nc cells (a
 * multiple of 8): 16 register accumulators a[4k + r] (value row d + k, row
 * r; zero for r >= R), summed by sum16 so that its 128-bit lane r holds
 * out[r][d .. d+3]'s increments. */
INL void pv_block(int R, const uint16_t *p, size_t ldp, const uint16_t *v,
                  size_t ldv, int nc, float *const *out, int d) {
  __m512 a[16];
  for (int i = 0; i < 16; i++)
    a[i] = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= nc; j += 16) {
    __m512 x[4];
    for (int k = 0; k < 4; k++)
      x[k] = ld_h16(v + (size_t)k * ldv + j);
    for (int r = 0; r < R; r++) {
      __m512 pr = ld_h16(p + (size_t)r * ldp + j);
      for (int k = 0; k < 4; k++)
        a[4 * k + r] = _mm512_fmadd_ps(pr, x[k], a[4 * k + r]);
    }
  }
  if (j < nc) { /* an 8-cell tail */
    __m512 x[4];
    for (int k = 0; k < 4; k++)
      x[k] = ld_h8z(v + (size_t)k * ldv + j);
    for (int r = 0; r < R; r++) {
      __m512 pr = ld_h8z(p + (size_t)r * ldp + j);
      for (int k = 0; k < 4; k++)
        a[4 * k + r] = _mm512_fmadd_ps(pr, x[k], a[4 * k + r]);
    }
  }
  const __m512 s = sum16(a);
  for (int r = 0; r < R; r++) {
    __m128 o = _mm_loadu_ps(out[r] + d);
    _mm_storeu_ps(out[r] + d, _mm_add_ps(o, _mm512_extractf32x4_ps(s, r)));
  }
}

#define ATTN_PV_NAME attn_pv_avx512
#define PV_D 4
#define PV_R 4
#include "engine/attn_pv_impl.h"

/* ---- masked softmax of a row ------------------------------------------- */

/* exp(x) for x <= 0 (0 below -87, -inf included): x = n ln2 + r, |r| <=
 * ln2 / 2, a degree-7 Taylor polynomial for exp(r), times 2^n. */
INL __m512 exp_neg16(__m512 x) {
  const __mmask16 tiny =
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(p, n));
}

/* cap * tanh(x / cap), with tanh|y| = (1 - e) / (1 + e), e = exp(-2|y|). */
INL __m512 softcap16(__m512 x, float cap) {
  __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(1.0f / cap));
  __m512 ay = _mm512_abs_ps(y);
  __m512 e = exp_neg16(_mm512_mul_ps(ay, _mm512_set1_ps(-2.0f)));
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  /* the sign of y back onto tanh|y| */
  __m512i sign = _mm512_and_si512(_mm512_castps_si512(y),
                                  _mm512_set1_epi32((int)0x80000000u));
  t = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
  return _mm512_mul_ps(t, _mm512_set1_ps(cap));
}

float attn_softmax_avx512(float *s, const int32_t *vpos, int n, int32_t pos,
                          int32_t from, float scale, float softcap, uint16_t *p,
                          float *m) {
  const __m512i vpos_hi = _mm512_set1_epi32(pos),
                vfrom = _mm512_set1_epi32(from);
  const __m512 ninf = _mm512_set1_ps(-INFINITY), vscale = _mm512_set1_ps(scale);
  __m512 vmax = ninf;
  for (int j = 0; j < n; j += 16) {
    __m512i vp = _mm512_loadu_si512(vpos + j);
    __mmask16 vis = _mm512_cmple_epi32_mask(vp, vpos_hi) &
                    _mm512_cmpgt_epi32_mask(vp, vfrom);
    __m512 x = _mm512_mul_ps(_mm512_loadu_ps(s + j), vscale);
    if (softcap > 0)
      x = softcap16(x, softcap);
    x = _mm512_mask_mov_ps(ninf, vis, x);
    _mm512_storeu_ps(s + j, x);
    vmax = _mm512_max_ps(vmax, x);
  }
  const float mx = _mm512_reduce_max_ps(vmax);
  *m = mx;
  if (mx == -INFINITY) {
    for (int j = 0; j < n; j += 16)
      _mm256_storeu_si256((__m256i *)(p + j), _mm256_setzero_si256());
    return 0;
  }
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (int j = 0; j < n; j += 16) {
    __m512 e = exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(s + j), vm));
    _mm512_storeu_ps(s + j, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  const float l = _mm512_reduce_add_ps(vsum);
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int j = 0; j < n; j += 16)
    _mm256_storeu_si256(
        (__m256i *)(p + j),
        _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(s + j), inv),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return l;
}
