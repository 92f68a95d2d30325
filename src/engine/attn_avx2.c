/* attn_avx2.c: register-blocked AVX2/F16C inner loops of the attention over
 * the f16 KV cache (engine.c's attention, transposed K and V layout). The
 * portable path of the same products is engine.c's loop over k_axpy_f16 /
 * k_vec_dot; engine.c calls these only when the kernels run at AVX2 or
 * better (k_simd()). Same products as that path (f16 operands widened to
 * f32, f32 sums), summed in another order. Knows nothing about models,
 * sequences or the cache's bookkeeping. */
#include "engine/attn_simd.h"

#include <immintrin.h>

/* 8 f16 values widened to f32. */
static inline __m256 ld_h8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* 4 query rows x 16 cells: the 8 accumulators stay in registers over d. */
static void qk_block4(const float *const *q, int hd, const uint16_t *K,
                      size_t ldk, float *const *s) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
  __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  for (int d = 0; d < hd; d++) {
    __m256 k0 = ld_h8(K + d * ldk), k1 = ld_h8(K + d * ldk + 8);
    __m256 q0 = _mm256_broadcast_ss(q[0] + d);
    __m256 q1 = _mm256_broadcast_ss(q[1] + d);
    __m256 q2 = _mm256_broadcast_ss(q[2] + d);
    __m256 q3 = _mm256_broadcast_ss(q[3] + d);
    a00 = _mm256_fmadd_ps(q0, k0, a00);
    a01 = _mm256_fmadd_ps(q0, k1, a01);
    a10 = _mm256_fmadd_ps(q1, k0, a10);
    a11 = _mm256_fmadd_ps(q1, k1, a11);
    a20 = _mm256_fmadd_ps(q2, k0, a20);
    a21 = _mm256_fmadd_ps(q2, k1, a21);
    a30 = _mm256_fmadd_ps(q3, k0, a30);
    a31 = _mm256_fmadd_ps(q3, k1, a31);
  }
  _mm256_storeu_ps(s[0], a00);
  _mm256_storeu_ps(s[0] + 8, a01);
  _mm256_storeu_ps(s[1], a10);
  _mm256_storeu_ps(s[1] + 8, a11);
  _mm256_storeu_ps(s[2], a20);
  _mm256_storeu_ps(s[2] + 8, a21);
  _mm256_storeu_ps(s[3], a30);
  _mm256_storeu_ps(s[3] + 8, a31);
}

/* One query row x 16 cells (the remainder rows). */
static void qk_block1(const float *q, int hd, const uint16_t *K, size_t ldk,
                      float *s) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  for (int d = 0; d < hd; d++) {
    __m256 qv = _mm256_broadcast_ss(q + d);
    a0 = _mm256_fmadd_ps(qv, ld_h8(K + d * ldk), a0);
    a1 = _mm256_fmadd_ps(qv, ld_h8(K + d * ldk + 8), a1);
  }
  _mm256_storeu_ps(s, a0);
  _mm256_storeu_ps(s + 8, a1);
}

/* Cells outer, rows inner: the 16-cell block of K (hd rows) stays in L1
 * while every query row passes over it. */
void attn_qk_avx2(const float *q, int nq, int hd, const uint16_t *K, size_t ldk,
                  int nc, float *S, size_t lds) {
  for (int j = 0; j < nc; j += 16) {
    int r0 = 0;
    for (; r0 + 4 <= nq; r0 += 4) {
      const float *qr[4];
      float *sr[4];
      for (int r = 0; r < 4; r++) {
        qr[r] = q + (size_t)(r0 + r) * hd;
        sr[r] = S + (size_t)(r0 + r) * lds + j;
      }
      qk_block4(qr, hd, K + j, ldk, sr);
    }
    for (; r0 < nq; r0++)
      qk_block1(q + (size_t)r0 * hd, hd, K + j, ldk, S + (size_t)r0 * lds + j);
  }
}

/* 4 probability rows x 2 value rows (d, d+1) over nc cells: 8 register
 * accumulators, then out[r][d..d+1] += their sums. */
static void pv_block4(const uint16_t *const *p, const uint16_t *v0,
                      const uint16_t *v1, int nc, float *const *out, int d) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
  __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  for (int j = 0; j < nc; j += 8) {
    __m256 x0 = ld_h8(v0 + j), x1 = ld_h8(v1 + j);
    __m256 p0 = ld_h8(p[0] + j), p1 = ld_h8(p[1] + j);
    __m256 p2 = ld_h8(p[2] + j), p3 = ld_h8(p[3] + j);
    a00 = _mm256_fmadd_ps(p0, x0, a00);
    a01 = _mm256_fmadd_ps(p0, x1, a01);
    a10 = _mm256_fmadd_ps(p1, x0, a10);
    a11 = _mm256_fmadd_ps(p1, x1, a11);
    a20 = _mm256_fmadd_ps(p2, x0, a20);
    a21 = _mm256_fmadd_ps(p2, x1, a21);
    a30 = _mm256_fmadd_ps(p3, x0, a30);
    a31 = _mm256_fmadd_ps(p3, x1, a31);
  }
  out[0][d] += hsum8(a00), out[0][d + 1] += hsum8(a01);
  out[1][d] += hsum8(a10), out[1][d + 1] += hsum8(a11);
  out[2][d] += hsum8(a20), out[2][d + 1] += hsum8(a21);
  out[3][d] += hsum8(a30), out[3][d + 1] += hsum8(a31);
}

/* One probability row x 2 value rows (the remainder rows). */
static void pv_block1(const uint16_t *p, const uint16_t *v0, const uint16_t *v1,
                      int nc, float *out, int d) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  for (int j = 0; j < nc; j += 8) {
    __m256 pv = ld_h8(p + j);
    a0 = _mm256_fmadd_ps(pv, ld_h8(v0 + j), a0);
    a1 = _mm256_fmadd_ps(pv, ld_h8(v1 + j), a1);
  }
  out[d] += hsum8(a0), out[d + 1] += hsum8(a1);
}

#define PV_CB 256 /* cells per block: the block of V (hd rows) stays in L1 */

void attn_pv_avx2(const uint16_t *P, size_t ldp, int nq, const uint16_t *V,
                  size_t ldv, int hd, int nc, float *const *out) {
  for (int j0 = 0; j0 < nc; j0 += PV_CB) {
    int nb = nc - j0 < PV_CB ? nc - j0 : PV_CB;
    int r0 = 0;
    for (; r0 + 4 <= nq; r0 += 4) {
      const uint16_t *pr[4];
      for (int r = 0; r < 4; r++)
        pr[r] = P + (size_t)(r0 + r) * ldp + j0;
      for (int d = 0; d < hd; d += 2)
        pv_block4(pr, V + (size_t)d * ldv + j0, V + (size_t)(d + 1) * ldv + j0,
                  nb, out + r0, d);
    }
    for (; r0 < nq; r0++)
      for (int d = 0; d < hd; d += 2)
        pv_block1(P + (size_t)r0 * ldp + j0, V + (size_t)d * ldv + j0,
                  V + (size_t)(d + 1) * ldv + j0, nb, out[r0], d);
  }
}
