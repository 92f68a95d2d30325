/* attn_avx2.c: register-blocked AVX2/F16C inner loops of the attention over
 * the f16 KV cache (attn.c's attention, transposed K and V layout): the
 * scores (with prefetching of the cache's strided rows), the masked softmax
 * of a row (a polynomial exp) and the weighted values. The portable path of
 * the same products is attn.c's loop over k_axpy_f16 / k_vec_dot; attn.c
 * calls these only when the kernels run at AVX2 or better (k_simd()). Same
 * products as that path (f16 operands widened to f32, f32 sums), summed in
 * another order. Blocks take several query rows at once (the query heads
 * of one kv head under GQA), so each f16 K/V value is widened once per
 * block, not once per row. Knows nothing about models, sequences or the
 * cache's bookkeeping. */
#include "engine/attn_simd.h"

#include <immintrin.h>
#include <math.h>

#include "engine/kernels_avx2_inl.h"

#define INL static inline __attribute__((always_inline))

/* R query rows (R <= 4, a constant after inlining) x 16 cells: the 2R
 * accumulators stay in registers over d. */
INL void qk_block(int R, const float *q, int hd, const uint16_t *K, size_t ldk,
                  float *s, size_t lds) {
  __m256 a0[4], a1[4];
  for (int r = 0; r < R; r++)
    a0[r] = a1[r] = _mm256_setzero_ps();
  for (int d = 0; d < hd; d++) {
    __m256 k0 = load_f16x8(K + d * ldk), k1 = load_f16x8(K + d * ldk + 8);
    for (int r = 0; r < R; r++) {
      __m256 qv = _mm256_broadcast_ss(q + (size_t)r * hd + d);
      a0[r] = _mm256_fmadd_ps(qv, k0, a0[r]);
      a1[r] = _mm256_fmadd_ps(qv, k1, a1[r]);
    }
  }
  for (int r = 0; r < R; r++) {
    _mm256_storeu_ps(s + (size_t)r * lds, a0[r]);
    _mm256_storeu_ps(s + (size_t)r * lds + 8, a1[r]);
  }
}

/* Prefetches, for every row d < hd, the cache line at p + d * ld. */
INL void prefetch_rows(const uint16_t *p, size_t ld, int hd) {
  for (int d = 0; d < hd; d++)
    _mm_prefetch((const char *)(p + (size_t)d * ld), _MM_HINT_T0);
}

#define QK_PF 64 /* cells prefetched ahead (2 cache lines of each row) */

/* Cells outer, blocks of up to 4 rows inner: the 16-cell block of K (hd
 * rows) stays in L1 while every query row passes over it, and the rows of
 * one block share each widened K value. Every other step (a cache line of
 * each row) prefetches the K line QK_PF cells ahead in every row, and the
 * V line of the cells it scores. */
void attn_qk_avx2(const float *q, int nq, int hd, const uint16_t *K, size_t ldk,
                  int nc, float *S, size_t lds, const uint16_t *V) {
  for (int j = 0; j < QK_PF && j < nc; j += 32)
    prefetch_rows(K + j, ldk, hd);
  for (int j = 0; j < nc; j += 16) {
    if (j % 32 == 0 && j + QK_PF < nc)
      prefetch_rows(K + j + QK_PF, ldk, hd);
    if (j % 32 == 0 && V)
      prefetch_rows(V + j, ldk, hd);
    int r0 = 0;
    for (; r0 + 4 <= nq; r0 += 4)
      qk_block(4, q + (size_t)r0 * hd, hd, K + j, ldk, S + (size_t)r0 * lds + j,
               lds);
    const float *qr = q + (size_t)r0 * hd;
    float *sr = S + (size_t)r0 * lds + j;
    switch (nq - r0) {
    case 3:
      qk_block(3, qr, hd, K + j, ldk, sr, lds);
      break;
    case 2:
      qk_block(2, qr, hd, K + j, ldk, sr, lds);
      break;
    case 1:
      qk_block(1, qr, hd, K + j, ldk, sr, lds);
      break;
    }
  }
}

/* The 8 horizontal sums of a[0..8) in one vector (element i: the sum of
 * a[i]): 6 hadds, 2 lane permutes and an add instead of 8 reductions. Each
 * sum is added up in the same order whatever the other 7 hold. */
INL __m256 sum8x8(const __m256 *a) {
  __m256 g0 =
      _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  __m256 g1 =
      _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(g0, g1, 0x20),
                       _mm256_permute2f128_ps(g0, g1, 0x31));
}

/* R probability rows (R <= 2) x 4 value rows (d .. d+3) over nc cells: 8
 * register accumulators a[4r + k] (row r, value row d + k; zero for r >=
 * R), summed by sum8x8: its 128-bit half r holds out[r][d .. d+3]'s
 * increments. */
INL void pv_block(int R, const uint16_t *p, size_t ldp, const uint16_t *v,
                  size_t ldv, int nc, float *const *out, int d) {
  __m256 a[8];
  for (int i = 0; i < 8; i++)
    a[i] = _mm256_setzero_ps();
  for (int j = 0; j < nc; j += 8) {
    __m256 x[4];
    for (int k = 0; k < 4; k++)
      x[k] = load_f16x8(v + (size_t)k * ldv + j);
    for (int r = 0; r < R; r++) {
      __m256 pr = load_f16x8(p + (size_t)r * ldp + j);
      for (int k = 0; k < 4; k++)
        a[4 * r + k] = _mm256_fmadd_ps(pr, x[k], a[4 * r + k]);
    }
  }
  const __m256 s = sum8x8(a);
  _mm_storeu_ps(out[0] + d, _mm_add_ps(_mm_loadu_ps(out[0] + d),
                                       _mm256_castps256_ps128(s)));
  if (R > 1)
    _mm_storeu_ps(out[1] + d, _mm_add_ps(_mm_loadu_ps(out[1] + d),
                                         _mm256_extractf128_ps(s, 1)));
}

#define ATTN_PV_NAME attn_pv_avx2
#define PV_D 4
#define PV_R 2
#include "engine/attn_pv_impl.h"

/* ---- masked softmax of a row ------------------------------------------- */

INL float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* exp(x) for x <= 0, exactly 0 below -87 (-inf and masked scores
 * included): the kernels' vectorized expf, masked. */
INL __m256 exp_neg8(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
  return _mm256_and_ps(exp_ps(x), keep);
}

/* cap * tanh(x / cap), with tanh|y| = (1 - e) / (1 + e), e = exp(-2|y|). */
INL __m256 softcap8(__m256 x, float cap) {
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
  __m256 y = _mm256_mul_ps(x, _mm256_set1_ps(1.0f / cap));
  __m256 ay = _mm256_andnot_ps(sign, y);
  __m256 e = exp_neg8(_mm256_mul_ps(ay, _mm256_set1_ps(-2.0f)));
  __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  t = _mm256_or_ps(t, _mm256_and_ps(y, sign));
  return _mm256_mul_ps(t, _mm256_set1_ps(cap));
}

float attn_softmax_avx2(float *s, const int32_t *vpos, int n, int32_t pos,
                        int32_t from, float scale, float softcap, uint16_t *p,
                        float *m) {
  const __m256i vhi = _mm256_set1_epi32(pos), vfrom = _mm256_set1_epi32(from);
  const __m256 ninf = _mm256_set1_ps(-INFINITY), vscale = _mm256_set1_ps(scale);
  __m256 vmax = ninf;
  for (int j = 0; j < n; j += 8) {
    __m256i vp = _mm256_loadu_si256((const __m256i *)(vpos + j));
    /* visible: from < vp <= pos */
    __m256i vis = _mm256_andnot_si256(_mm256_cmpgt_epi32(vp, vhi),
                                      _mm256_cmpgt_epi32(vp, vfrom));
    __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vscale);
    if (softcap > 0)
      x = softcap8(x, softcap);
    x = _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(vis));
    _mm256_storeu_ps(s + j, x);
    vmax = _mm256_max_ps(vmax, x);
  }
  const float mx = hmax8(vmax);
  *m = mx;
  if (mx == -INFINITY) {
    for (int j = 0; j < n; j += 8)
      _mm_storeu_si128((__m128i *)(p + j), _mm_setzero_si128());
    return 0;
  }
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) {
    __m256 e = exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  const float l = hsum_ps(vsum);
  const __m256 inv = _mm256_set1_ps(1.0f / l);
  for (int j = 0; j < n; j += 8)
    _mm_storeu_si128((__m128i *)(p + j),
                     _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(s + j), inv),
                                     _MM_FROUND_TO_NEAREST_INT));
  return l;
}
