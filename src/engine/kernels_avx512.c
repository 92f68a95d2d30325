/* AVX-512 (BW/VL/DQ, VNNI when present) kernels: same contracts as the
 * scalar references; registered by k_register_avx512() over the AVX2 table.
 * What changes from AVX2: 32 vector registers (bigger matmul tiles) and
 * vpdpbusd, which multiplies unsigned by signed bytes and accumulates in one
 * instruction: signed weights are biased by +128 and the bias is removed by
 * starting the accumulator at -128 * sum(y). Knows nothing about models. */
#include <immintrin.h>

#include "engine/kernels.h"
#include "engine/kernels_avx2_inl.h"
#include "engine/kernels_impl.h"

#pragma GCC target("avx512vnni")

/* Q5_0 block with the fifth bits from a mask register: q - 16 where the
 * bit is clear. */
static inline __m256i dec_q5_0_k(const block_q5_0 *b) {
  uint32_t qh;
  memcpy(&qh, b->qh, 4);
  __m256i u = nibbles16(b->qs);
  return _mm256_mask_sub_epi8(u, _cvtu32_mask32(~qh), u,
                              _mm256_set1_epi8(0x10));
}

/* ==== matmul tiles (VNNI) ================================================= */

/* Two 32-element blocks side by side in one zmm: the low half from block
 * p[0], the high half from p[1] (or zero when p1 is NULL). */
static inline __m512i zpair(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static inline __m512 zpair_ps(float lo, float hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(lo)),
                            _mm256_set1_ps(hi), 1);
}

/* As K_TILE_Q8ACT_AVX2 with vpdpbusd on zmm, two blocks per register: per
 * token, acc starts at -128 * sum(y) (per 4-byte group), then
 * += (q + 128) . y. An odd last block pairs with zeros. */
#define K_TILE_Q8ACT_VNNI(NAME, BT, DECODE, EDGE_TYPE, MR, NT)                 \
  static void NAME(int n, const void *W, size_t ws, int nr, const void *X,     \
                   size_t xs, int nt, float *Y, size_t ldy) {                  \
    if (nr != (MR) || nt != (NT)) {                                            \
      for (int t = 0; t < nt; t++)                                             \
        for (int r = 0; r < nr; r++)                                           \
          k_vec_dot(EDGE_TYPE, n, &Y[t * ldy + r], (const char *)W + r * ws,   \
                    (const char *)X + t * xs);                                 \
      return;                                                                  \
    }                                                                          \
    const __m512i bias = _mm512_set1_epi8((char)0x80);                         \
    const int nb = n / 32;                                                     \
    __m512 acc[MR][NT];                                                        \
    for (int r = 0; r < (MR); r++)                                             \
      for (int t = 0; t < (NT); t++)                                           \
        acc[r][t] = _mm512_setzero_ps();                                       \
    for (int i = 0; i < nb; i += 2) {                                          \
      const int two = i + 1 < nb;                                              \
      __m512i uq[MR];                                                          \
      __m512 dx[MR];                                                           \
      for (int r = 0; r < (MR); r++) {                                         \
        const BT *b = (const BT *)((const char *)W + r * ws) + i;              \
        __m256i hi = two ? DECODE(b + 1) : _mm256_setzero_si256();             \
        uq[r] = _mm512_xor_si512(zpair(DECODE(b), hi), bias);                  \
        dx[r] = zpair_ps(f16(b->d), two ? f16(b[1].d) : 0.0f);                 \
      }                                                                        \
      for (int t = 0; t < (NT); t++) {                                         \
        const block_q8_0 *yb =                                                 \
            (const block_q8_0 *)((const char *)X + t * xs) + i;                \
        __m256i ylo = _mm256_loadu_si256((const __m256i *)yb->qs);             \
        __m256i yhi = two ? _mm256_loadu_si256((const __m256i *)yb[1].qs)      \
                          : _mm256_setzero_si256();                            \
        __m512i yv = zpair(ylo, yhi);                                          \
        __m512 dy = zpair_ps(f16(yb->d), two ? f16(yb[1].d) : 0.0f);           \
        __m512i neg = _mm512_sub_epi32(                                        \
            _mm512_setzero_si512(),                                            \
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yv));            \
        for (int r = 0; r < (MR); r++) {                                       \
          __m512i p = _mm512_dpbusd_epi32(neg, uq[r], yv);                     \
          acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dx[r], dy),                \
                                      _mm512_cvtepi32_ps(p), acc[r][t]);       \
        }                                                                      \
      }                                                                        \
    }                                                                          \
    for (int t = 0; t < (NT); t++)                                             \
      for (int r = 0; r < (MR); r++)                                           \
        Y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);                      \
  }

K_TILE_Q8ACT_VNNI(tile_q8_0_vnni, block_q8_0, dec_q8_0, QT_Q8_0, 4, 4)
K_TILE_Q8ACT_VNNI(tile_q4_0_vnni, block_q4_0, dec_q4_0, QT_Q4_0, 4, 4)
K_TILE_Q8ACT_VNNI(tile_q5_0_vnni, block_q5_0, dec_q5_0_k, QT_Q5_0, 4, 4)
K_TILE_Q8ACT_VNNI(tile_iq4_nl_vnni, block_iq4_nl, dec_iq4_nl, QT_IQ4_NL, 4, 4)

/* ---- K-quant tiles: zmm vpdpbusd over 64 unpacked bytes, per-lane scale
 * multipliers (vpmulld) --------------------------------------------------- */

/* sum over 4 zmm steps of 64 bytes of (q . y per byte pair) * mul[k]
 * (int16 multipliers per pair), as 16 int32. */
static inline __m512i dot256_u8_zmm(const uint8_t *q, const int8_t *y,
                                    const __m512i *mul) {
  __m512i s = _mm512_setzero_si512();
  for (int k = 0; k < 4; k++) {
    __m512i p = _mm512_maddubs_epi16(_mm512_loadu_si512(q + 64 * k),
                                     _mm512_loadu_si512(y + 64 * k));
    s = _mm512_add_epi32(s, _mm512_madd_epi16(p, mul[k]));
  }
  return s;
}

/* mul[k]: int16 multiplier of each byte pair of step k, from the scales
 * (as int16 in the low lanes of `all`) of the 32-element (Q4_K/Q5_K,
 * per32 = 1) or 16-element (Q6_K, per32 = 0) groups. */
static inline void lane_scales(__m512i all, int per32, __m512i *mul) {
  /* pair lane l of step k covers elements 64k + 2l, +1 */
  const __m512i l = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21,
                                     20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
                                     9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int k = 0; k < 4; k++) {
    __m512i e = _mm512_add_epi16(l, _mm512_set1_epi16((int16_t)(32 * k)));
    __m512i idx = _mm512_srli_epi16(e, per32 ? 4 : 3);
    mul[k] = _mm512_permutexvar_epi16(idx, all);
  }
}

static inline float hsum512(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

static inline void tile_q45k_zmm(int is5, int n, const void *W, size_t ws,
                                 int nr, const void *X, size_t xs, int nt,
                                 float *Y, size_t ldy) {
  const int nb = n / QK_K;
  for (int r = 0; r < nr; r++) {
    __m512 acc[K_TILE_NT];
    float summ[K_TILE_NT];
    for (int t = 0; t < nt; t++)
      acc[t] = _mm512_setzero_ps(), summ[t] = 0;
    for (int i = 0; i < nb; i++) {
      uint8_t q[QK_K] __attribute__((aligned(64)));
      uint8_t sc[16];
      __m512i mul[4];
      float d, dmin;
      unpack_q45k(is5, (const char *)W + r * ws, i, q, sc, &d, &dmin);
      lane_scales(_mm512_castsi256_si512(_mm256_cvtepu8_epi16(
                      _mm_loadu_si128((const __m128i *)sc))),
                  1, mul);
      for (int t = 0; t < nt; t++) {
        const block_q8_K *yb =
            (const block_q8_K *)((const char *)X + t * xs) + i;
        __m512i s = dot256_u8_zmm(q, yb->qs, mul);
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * yb->d),
                                 _mm512_cvtepi32_ps(s), acc[t]);
        summ[t] += dmin * yb->d * (float)mins_dot(sc + 8, yb->bsums);
      }
    }
    for (int t = 0; t < nt; t++)
      Y[t * ldy + r] = hsum512(acc[t]) - summ[t];
  }
}

static void tile_q4_k_zmm(int n, const void *W, size_t ws, int nr,
                          const void *X, size_t xs, int nt, float *Y,
                          size_t ldy) {
  tile_q45k_zmm(0, n, W, ws, nr, X, xs, nt, Y, ldy);
}

static void tile_q5_k_zmm(int n, const void *W, size_t ws, int nr,
                          const void *X, size_t xs, int nt, float *Y,
                          size_t ldy) {
  tile_q45k_zmm(1, n, W, ws, nr, X, xs, nt, Y, ldy);
}

static void tile_q6_k_zmm(int n, const void *W, size_t ws, int nr,
                          const void *X, size_t xs, int nt, float *Y,
                          size_t ldy) {
  const int nb = n / QK_K;
  for (int r = 0; r < nr; r++) {
    __m512 acc[K_TILE_NT];
    for (int t = 0; t < nt; t++)
      acc[t] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
      const block_q6_K *b = (const block_q6_K *)((const char *)W + r * ws) + i;
      uint8_t q[QK_K] __attribute__((aligned(64)));
      __m512i mul[4];
      unpack_q6k_block(b, q);
      lane_scales(_mm512_castsi256_si512(_mm256_cvtepi8_epi16(
                      _mm_loadu_si128((const __m128i *)b->scales))),
                  0, mul);
      float d = f16(b->d);
      for (int t = 0; t < nt; t++) {
        const block_q8_K *yb =
            (const block_q8_K *)((const char *)X + t * xs) + i;
        __m512i s = dot256_u8_zmm(q, yb->qs, mul);
        int corr = 32 * scales16_dot(b->scales, yb->bsums);
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * yb->d),
                                 _mm512_cvtepi32_ps(_mm512_sub_epi32(
                                     s, _mm512_maskz_set1_epi32(1, corr))),
                                 acc[t]);
      }
    }
    for (int t = 0; t < nt; t++)
      Y[t * ldy + r] = hsum512(acc[t]);
  }
}

/* ==== K-quant vec_dot on zmm (decode) ===================================== */

/* Q4_K (qh NULL) / Q5_K: 16 int32 lanes summing to sum_j sc[j] * q.y over
 * sub-block j. 64 elements per step: the 32 bytes of chunk j hold sub-block
 * 2j in their low nibbles and 2j+1 in their high nibbles, which are exactly
 * the next 64 activations. The chunk is broadcast to both halves of a zmm
 * and its high half shifted by 4 (one vpsrlvq); the scale multiply and the
 * accumulation are one vpdpwssd. */
static inline __m512i q4k_block_dot_zmm(const uint8_t *qs, const uint8_t *qh,
                                        __m128i scm, const int8_t *yq) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
  const __m512i nib = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
  const __m512i hsh = _mm512_set_epi64(3, 3, 3, 3, 4, 4, 4, 4);
  __m512i hb =
      qh ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh))
         : _mm512_setzero_si512();
  /* int16 lane l of step j covers elements 64j + 2l, +1: sub-block
   * 2j + l / 16 */
  const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(scm));
  __m512i idx =
      _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i sumi[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int j = 0; j < 4; j++) {
    __m512i mul = _mm512_permutexvar_epi16(idx, sc16);
    idx = _mm512_add_epi16(idx, _mm512_set1_epi16(2));
    __m512i v = _mm512_broadcast_i64x4(
        _mm256_loadu_si256((const __m256i *)(qs + 32 * j)));
    __m512i q = _mm512_and_si512(_mm512_srlv_epi64(v, nib), m4);
    if (qh) {
      q = _mm512_or_si512(q, _mm512_and_si512(_mm512_sllv_epi64(hb, hsh), b4));
      hb = _mm512_srli_epi64(hb, 2);
    }
    __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(yq + 64 * j));
    sumi[j & 1] = _mm512_dpwssd_epi32(sumi[j & 1], p, mul);
  }
  return _mm512_add_epi32(sumi[0], sumi[1]);
}

/* Q4_K / Q5_K scales (bytes 0..7) and mins (bytes 8..15) of a super-block,
 * unpacked in registers (no round trip through memory). */
static inline __m128i q4k_scales_mins(const uint8_t *s) {
  uint32_t u0, u1, u2;
  memcpy(&u0, s, 4), memcpy(&u1, s + 4, 4), memcpy(&u2, s + 8, 4);
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  return _mm_setr_epi32(
      (int)(u0 & m6), (int)((u2 & m4) | (((u0 >> 6) & m2) << 4)),
      (int)(u1 & m6), (int)(((u2 >> 4) & m4) | (((u1 >> 6) & m2) << 4)));
}

/* The mins term of a super-block as 4 int32 lanes summing to
 * sum_j mins[j] * (bsums[2j] + bsums[2j+1]). */
static inline __m128i q4k_mins_dot(__m128i scm, const int16_t *bsums) {
  __m128i b = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums),
                             _mm_loadu_si128((const __m128i *)(bsums + 8)));
  return _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(scm, 8)), b);
}

static void vd_q45k_zmm(int is5, int n, float *s, const void *vx,
                        const void *vy) {
  const block_q8_K *y = vy;
  __m512 acc = _mm512_setzero_ps();
  __m128 accm = _mm_setzero_ps();
  for (int i = 0; i < n / QK_K; i++) {
    __m128i scm;
    __m512i sumi;
    float d, dmin;
    if (is5) {
      const block_q5_K *x = (const block_q5_K *)vx + i;
      scm = q4k_scales_mins(x->scales);
      sumi = q4k_block_dot_zmm(x->qs, x->qh, scm, y[i].qs);
      d = f16(x->d), dmin = f16(x->dmin);
    } else {
      const block_q4_K *x = (const block_q4_K *)vx + i;
      scm = q4k_scales_mins(x->scales);
      sumi = q4k_block_dot_zmm(x->qs, NULL, scm, y[i].qs);
      d = f16(x->d), dmin = f16(x->dmin);
    }
    accm = _mm_fmadd_ps(_mm_set1_ps(y[i].d * dmin),
                        _mm_cvtepi32_ps(q4k_mins_dot(scm, y[i].bsums)), accm);
    acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * d), _mm512_cvtepi32_ps(sumi),
                          acc);
  }
  accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
  accm = _mm_add_ss(accm, _mm_movehdup_ps(accm));
  *s = _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(accm);
}

static void vd_q4_k_zmm(int n, float *s, const void *vx, const void *vy) {
  vd_q45k_zmm(0, n, s, vx, vy);
}

static void vd_q5_k_zmm(int n, float *s, const void *vx, const void *vy) {
  vd_q45k_zmm(1, n, s, vx, vy);
}

/* Q6_K: per half of 128 elements, ql's 64 bytes give elements 0..63 (low
 * nibbles) and 64..127 (high nibbles); qh's 32 bytes add bit pairs 0-1/2-3
 * and 4-5/6-7 to them. Scales per 16 elements via vpermw. */
static void vd_q6_k_zmm(int n, float *s, const void *vx, const void *vy) {
  const block_q6_K *x = vx;
  const block_q8_K *y = vy;
  const __m512i m4 = _mm512_set1_epi8(0x0f), h2 = _mm512_set1_epi8(0x30);
  /* int16 lane l of a 64-element step covers elements 2l, 2l+1: group l/8 */
  const __m512i g0 =
      _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
                       1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i g4 = _mm512_add_epi16(g0, _mm512_set1_epi16(4));
  /* qh broadcast to both halves: bits 0-1 / 2-3 to 4-5 (shift left 4 / 2),
   * bits 4-5 / 6-7 to 4-5 (shift right 0 / 2) */
  const __m512i sh01 = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);
  const __m512i sh23 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n / QK_K; i++) {
    __m512i sc16 = _mm512_castsi256_si512(
        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales)));
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
      __m512i l = _mm512_loadu_si512(x[i].ql + 64 * h);
      __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
      __m512i h01 = _mm512_sllv_epi64(qh, sh01);
      __m512i h23 = _mm512_srlv_epi64(qh, sh23);
      __m512i q01 =
          _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(h01, h2));
      __m512i q23 =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                          _mm512_and_si512(h23, h2));
      const int8_t *yq = y[i].qs + 128 * h;
      /* groups of this half: 8h .. 8h+7; q01 -> 8h+0..3, q23 -> 8h+4..7 */
      __m512i base = _mm512_set1_epi16((int16_t)(8 * h));
      __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(g0, base), sc16);
      __m512i s23 = _mm512_permutexvar_epi16(_mm512_add_epi16(g4, base), sc16);
      __m512i p01 = _mm512_maddubs_epi16(q01, _mm512_loadu_si512(yq));
      __m512i p23 = _mm512_maddubs_epi16(q23, _mm512_loadu_si512(yq + 64));
      s0 = _mm512_dpwssd_epi32(s0, p01, s01);
      s1 = _mm512_dpwssd_epi32(s1, p23, s23);
    }
    __m512i sumi = _mm512_add_epi32(s0, s1);
    int corr = 32 * scales16_dot(x[i].scales, y[i].bsums);
    sumi = _mm512_sub_epi32(sumi, _mm512_maskz_set1_epi32(1, corr));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * f16(x[i].d)),
                          _mm512_cvtepi32_ps(sumi), acc);
  }
  *s = _mm512_reduce_add_ps(acc);
}

/* Q5_0 (and Q4_0 / IQ4_NL via DECODE) against Q8_0, two blocks per zmm:
 * vpdpbusd of the biased weights, bias removed with -128 * sum(y). */
#define K_VD_Q8ACT_ZMM(NAME, BT, DECODE)                                       \
  static void NAME(int n, float *s, const void *vx, const void *vy) {          \
    const BT *x = vx;                                                          \
    const block_q8_0 *y = vy;                                                  \
    const __m512i bias = _mm512_set1_epi8((char)0x80);                         \
    const int nb = n / 32;                                                     \
    __m512 acc = _mm512_setzero_ps();                                          \
    for (int i = 0; i < nb; i += 2) {                                          \
      const int two = i + 1 < nb;                                              \
      __m256i hi = two ? DECODE(&x[i + 1]) : _mm256_setzero_si256();           \
      __m512i uq = _mm512_xor_si512(zpair(DECODE(&x[i]), hi), bias);           \
      __m256i ylo = _mm256_loadu_si256((const __m256i *)y[i].qs);              \
      __m256i yhi = two ? _mm256_loadu_si256((const __m256i *)y[i + 1].qs)     \
                        : _mm256_setzero_si256();                              \
      __m512i yv = zpair(ylo, yhi);                                            \
      __m512i neg = _mm512_sub_epi32(                                          \
          _mm512_setzero_si512(),                                              \
          _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yv));              \
      __m512i p = _mm512_dpbusd_epi32(neg, uq, yv);                            \
      __m512 d = zpair_ps(f16(x[i].d) * f16(y[i].d),                           \
                          two ? f16(x[i + 1].d) * f16(y[i + 1].d) : 0.0f);     \
      acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);                    \
    }                                                                          \
    *s = _mm512_reduce_add_ps(acc);                                            \
  }

K_VD_Q8ACT_ZMM(vd_q5_0_zmm, block_q5_0, dec_q5_0_k)
K_VD_Q8ACT_ZMM(vd_q4_0_zmm, block_q4_0, dec_q4_0)
K_VD_Q8ACT_ZMM(vd_iq4_nl_zmm, block_iq4_nl, dec_iq4_nl)
K_VD_Q8ACT_ZMM(vd_q8_0_zmm, block_q8_0, dec_q8_0)

/* Q8_0 decode: two pairs of blocks per iteration into two accumulators
 * (independent chains), a single pair or block for the rest. */
static inline __m512 q8_0_pair_fma(const block_q8_0 *x, const block_q8_0 *y,
                                   __m512 acc) {
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  __m512i uq = _mm512_xor_si512(zpair(dec_q8_0(x), dec_q8_0(x + 1)), bias);
  __m512i yv = zpair(dec_q8_0(y), dec_q8_0(y + 1));
  __m512i neg =
      _mm512_sub_epi32(_mm512_setzero_si512(),
                       _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yv));
  __m512i p = _mm512_dpbusd_epi32(neg, uq, yv);
  __m512 d = zpair_ps(f16(x[0].d) * f16(y[0].d), f16(x[1].d) * f16(y[1].d));
  return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
}

static void vd_q8_0_x4(int n, float *s, const void *vx, const void *vy) {
  const block_q8_0 *x = vx;
  const block_q8_0 *y = vy;
  const int nb = n / 32;
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 4 <= nb; i += 4) {
    a0 = q8_0_pair_fma(x + i, y + i, a0);
    a1 = q8_0_pair_fma(x + i + 2, y + i + 2, a1);
  }
  if (i + 2 <= nb) {
    a0 = q8_0_pair_fma(x + i, y + i, a0);
    i += 2;
  }
  float r = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  if (i < nb) {
    float t;
    vd_q8_0_zmm(32, &t, x + i, y + i);
    r += t;
  }
  *s = r;
}

/* Q5_0 decode, two blocks per zmm without per-block unpacking: the 32
 * quant bytes of the pair are split into nibbles in one go, which orders
 * the elements [b0 0-15 | b1 0-15 | b0 16-31 | b1 16-31]; the activations
 * are permuted the same way (128-bit lanes 0, 2, 1, 3), the fifth bits
 * become one 64-bit mask in that order, and the scales follow the lanes. */
static void vd_q5_0_pair(int n, float *s, const void *vx, const void *vy) {
  const block_q5_0 *x = vx;
  const block_q8_0 *y = vy;
  const __m512i m4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
  const __m512i lane_blk =
      _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  const int nb = n / 32;
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x[i].qs)),
        _mm_loadu_si128((const __m128i *)x[i + 1].qs), 1);
    __m512i q = _mm512_and_si512(zpair(v, _mm256_srli_epi16(v, 4)), m4);
    uint32_t h0, h1;
    memcpy(&h0, x[i].qh, 4);
    memcpy(&h1, x[i + 1].qh, 4);
    uint64_t m = (uint64_t)((h0 & 0xffffu) | (h1 << 16)) |
                 (uint64_t)((h0 >> 16) | (h1 & 0xffff0000u)) << 32;
    q = _mm512_mask_add_epi8(q, _cvtu64_mask64(m), q, b4); /* | 16 */
    __m512i yv = zpair(_mm256_loadu_si256((const __m256i *)y[i].qs),
                       _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
    yv = _mm512_shuffle_i64x2(yv, yv, _MM_SHUFFLE(3, 1, 2, 0));
    __m512i neg =
        _mm512_sub_epi32(_mm512_setzero_si512(),
                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), b4, yv));
    __m512i p = _mm512_dpbusd_epi32(neg, q, yv);
    /* the four f16 scales in one conversion: [x0, x1, y0, y1] */
    __m128i h = _mm_cvtsi32_si128(x[i].d);
    h = _mm_insert_epi16(h, x[i + 1].d, 1);
    h = _mm_insert_epi16(h, y[i].d, 2);
    h = _mm_insert_epi16(h, y[i + 1].d, 3);
    __m128 f = _mm_cvtph_ps(h);
    __m128 dd = _mm_mul_ps(f, _mm_movehl_ps(f, f)); /* [d0, d1, .. ] */
    __m512 d = _mm512_permutexvar_ps(lane_blk, _mm512_castps128_ps512(dd));
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
  }
  float r = _mm512_reduce_add_ps(acc);
  if (i < nb) {
    float t;
    vd_q5_0_zmm(32, &t, &x[i], &y[i]);
    r += t;
  }
  *s = r;
}

/* Q4_0 / IQ4_NL decode in the same pair order as vd_q5_0_pair: the pair's
 * nibbles split at once (levels through vpshufb for IQ4_NL), activations
 * permuted to match; Q4_0 takes q - 8 as unsigned q with -8 * sum(y),
 * IQ4_NL biases its signed levels by 128. */
#define K_VD_PAIR4(NAME, BT, IQ, TAIL)                                         \
  static void NAME(int n, float *s, const void *vx, const void *vy) {          \
    const BT *x = vx;                                                          \
    const block_q8_0 *y = vy;                                                  \
    const __m512i m4 = _mm512_set1_epi8(0x0f);                                 \
    const __m512i off = _mm512_set1_epi8(IQ ? (char)0x80 : 8);                 \
    const __m512i tbl = _mm512_broadcast_i32x4(                                \
        _mm_xor_si128(_mm_loadu_si128((const __m128i *)q_iq4nl_values),        \
                      _mm_set1_epi8((char)0x80)));                             \
    const __m512i lane_blk =                                                   \
        _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);     \
    const int nb = n / 32;                                                     \
    __m512 acc = _mm512_setzero_ps();                                          \
    int i = 0;                                                                 \
    for (; i + 2 <= nb; i += 2) {                                              \
      __m256i v = _mm256_inserti128_si256(                                     \
          _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x[i].qs)),   \
          _mm_loadu_si128((const __m128i *)x[i + 1].qs), 1);                   \
      __m512i q = _mm512_and_si512(zpair(v, _mm256_srli_epi16(v, 4)), m4);     \
      if (IQ)                                                                  \
        q = _mm512_shuffle_epi8(tbl, q); /* level + 128 */                     \
      __m512i yv = zpair(_mm256_loadu_si256((const __m256i *)y[i].qs),         \
                         _mm256_loadu_si256((const __m256i *)y[i + 1].qs));    \
      yv = _mm512_shuffle_i64x2(yv, yv, _MM_SHUFFLE(3, 1, 2, 0));              \
      __m512i neg = _mm512_sub_epi32(                                          \
          _mm512_setzero_si512(),                                              \
          _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yv));               \
      __m512i p = _mm512_dpbusd_epi32(neg, q, yv);                             \
      __m128i h = _mm_cvtsi32_si128(x[i].d);                                   \
      h = _mm_insert_epi16(h, x[i + 1].d, 1);                                  \
      h = _mm_insert_epi16(h, y[i].d, 2);                                      \
      h = _mm_insert_epi16(h, y[i + 1].d, 3);                                  \
      __m128 f = _mm_cvtph_ps(h);                                              \
      __m128 dd = _mm_mul_ps(f, _mm_movehl_ps(f, f));                          \
      __m512 d = _mm512_permutexvar_ps(lane_blk, _mm512_castps128_ps512(dd));  \
      acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);                    \
    }                                                                          \
    float r = _mm512_reduce_add_ps(acc);                                       \
    if (i < nb) {                                                              \
      float t;                                                                 \
      TAIL(32, &t, &x[i], &y[i]);                                              \
      r += t;                                                                  \
    }                                                                          \
    *s = r;                                                                    \
  }

K_VD_PAIR4(vd_q4_0_pair, block_q4_0, 0, vd_q4_0_zmm)
K_VD_PAIR4(vd_iq4_nl_pair, block_iq4_nl, 1, vd_iq4_nl_zmm)

/* ==== prepared prefill path (see kernels_impl.h) ========================== */

typedef struct {
  uint8_t u[64];
  float d[16];
} wpair;
typedef struct {
  int8_t y[64];
  int32_t neg[16];
  float d[16];
} xpair;
_Static_assert(sizeof(wpair) == K_WPAIR, "wpair");
_Static_assert(sizeof(xpair) == K_XPAIR, "xpair");

#define K_WPREP(NAME, BT, DECODE)                                              \
  static void NAME(const void *row, int n, void *out) {                        \
    const BT *b = row;                                                         \
    wpair *o = out;                                                            \
    const __m512i bias = _mm512_set1_epi8((char)0x80);                         \
    const int nb = n / 32;                                                     \
    for (int i = 0; i < nb; i += 2, o++) {                                     \
      const int two = i + 1 < nb;                                              \
      __m256i hi = two ? DECODE(&b[i + 1]) : _mm256_setzero_si256();           \
      _mm512_store_si512(o->u,                                                 \
                         _mm512_xor_si512(zpair(DECODE(&b[i]), hi), bias));    \
      _mm512_store_ps(o->d,                                                    \
                      zpair_ps(f16(b[i].d), two ? f16(b[i + 1].d) : 0.0f));    \
    }                                                                          \
  }

K_WPREP(wprep_q8_0, block_q8_0, dec_q8_0)
K_WPREP(wprep_q4_0, block_q4_0, dec_q4_0)
K_WPREP(wprep_q5_0, block_q5_0, dec_q5_0_k)
K_WPREP(wprep_iq4_nl, block_iq4_nl, dec_iq4_nl)

static void xprep_q8_0(const void *row, int n, void *out) {
  const block_q8_0 *y = row;
  xpair *o = out;
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  const int nb = n / 32;
  for (int i = 0; i < nb; i += 2, o++) {
    const int two = i + 1 < nb;
    __m256i ylo = _mm256_loadu_si256((const __m256i *)y[i].qs);
    __m256i yhi = two ? _mm256_loadu_si256((const __m256i *)y[i + 1].qs)
                      : _mm256_setzero_si256();
    __m512i yv = zpair(ylo, yhi);
    _mm512_store_si512(o->y, yv);
    _mm512_store_si512(
        o->neg, _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yv)));
    _mm512_store_ps(o->d, zpair_ps(f16(y[i].d), two ? f16(y[i + 1].d) : 0.0f));
  }
}

/* One (row, token) dot on prepared pairs. */
static float dot_pp(int np, const wpair *w, const xpair *x) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < np; i++) {
    __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(x[i].neg),
                                    _mm512_load_si512(w[i].u),
                                    _mm512_load_si512(x[i].y));
    acc = _mm512_fmadd_ps(
        _mm512_mul_ps(_mm512_load_ps(w[i].d), _mm512_load_ps(x[i].d)),
        _mm512_cvtepi32_ps(p), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

enum { PP_MR = 4, PP_NT = 4 };

/* The hot loop of prefill: PP_MR rows x PP_NT tokens of accumulators, every
 * operand a plain load. */
static void tile_pp(int np, const void *Wp, size_t wps, int nr, const void *Xp,
                    size_t xps, int nt, float *Y, size_t ldy) {
  if (nr != PP_MR || nt != PP_NT) {
    for (int t = 0; t < nt; t++)
      for (int r = 0; r < nr; r++)
        Y[t * ldy + r] = dot_pp(np, (const wpair *)((const char *)Wp + r * wps),
                                (const xpair *)((const char *)Xp + t * xps));
    return;
  }
  const wpair *w[PP_MR];
  const xpair *x[PP_NT];
  for (int r = 0; r < PP_MR; r++)
    w[r] = (const wpair *)((const char *)Wp + r * wps);
  for (int t = 0; t < PP_NT; t++)
    x[t] = (const xpair *)((const char *)Xp + t * xps);
  __m512 acc[PP_MR][PP_NT];
  for (int r = 0; r < PP_MR; r++)
    for (int t = 0; t < PP_NT; t++)
      acc[r][t] = _mm512_setzero_ps();
  for (int i = 0; i < np; i++) {
    __m512i u[PP_MR];
    __m512 dx[PP_MR];
    for (int r = 0; r < PP_MR; r++) {
      u[r] = _mm512_load_si512(w[r][i].u);
      dx[r] = _mm512_load_ps(w[r][i].d);
    }
    for (int t = 0; t < PP_NT; t++) {
      __m512i yv = _mm512_load_si512(x[t][i].y);
      __m512i neg = _mm512_load_si512(x[t][i].neg);
      __m512 dy = _mm512_load_ps(x[t][i].d);
      for (int r = 0; r < PP_MR; r++) {
        __m512i p = _mm512_dpbusd_epi32(neg, u[r], yv);
        acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dx[r], dy),
                                    _mm512_cvtepi32_ps(p), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < PP_NT; t++)
    for (int r = 0; r < PP_MR; r++)
      Y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ---- prepared K-quant super-blocks (see kernels_impl.h) ---------------- */

/* Byte order of a prepared super-block: 4 steps of 64 bytes, step k holding
 * in its 4-byte lane l the elements 16l + 4k .. 16l + 4k + 3, so that int32
 * lane l of vpdpbusd over the 4 steps sums exactly the 16 elements of group
 * l (every K-quant scale covers whole groups of 16). */
typedef struct {
  uint8_t u[QK_K]; /* unsigned quants, in lane order */
  float sc[16];    /* scale of group l: d * its integer scale */
  float o[16];     /* offset of group l (times its sum(y)) */
} wsb;
typedef struct {
  int8_t y[QK_K]; /* in lane order */
  float bs[16];   /* dy * sum of y over group l */
  float d;        /* dy */
  float pad[15];
} xsb;
_Static_assert(sizeof(wsb) == K_WSB, "wsb");
_Static_assert(sizeof(xsb) == K_XSB, "xsb");

/* 256 bytes from element order (v[j]: elements 64j .. 64j + 63) to lane
 * order, stored at out (a 16 x 4 dword transpose). */
static inline void store_lane_order(const __m512i v[4], void *out) {
  const __m512i base = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8,
                                         12, 16, 20, 24, 28);
  for (int k = 0; k < 4; k++) {
    __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(k));
    __m512i lo = _mm512_permutex2var_epi32(v[0], idx, v[1]); /* groups 0-7 */
    __m512i hi = _mm512_permutex2var_epi32(v[2], idx, v[3]); /* 8-15 */
    _mm512_store_si512((char *)out + 64 * k,
                       _mm512_mask_blend_epi32(0xff00, lo, hi));
  }
}

/* Q4_K / Q5_K (qh != NULL) quants in element order: the 32 bytes of chunk j
 * hold elements 64j .. 64j + 31 in their low nibbles and the next 32 in
 * their high nibbles; Q5_K's fifth bits are bits 2j, 2j + 1 of qh[e]. */
static inline void unpack_q45k_zmm(const uint8_t *qs, const uint8_t *qh,
                                   __m512i v[4]) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
  const __m512i sh =
      _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  __m256i hb =
      qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
  for (int j = 0; j < 4; j++) {
    __m256i c = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
    __m512i q = _mm512_and_si512(_mm512_srlv_epi16(zpair(c, c), sh), m4);
    if (qh) {
      __m512i h = zpair(_mm256_slli_epi16(hb, 4), _mm256_slli_epi16(hb, 3));
      q = _mm512_or_si512(q, _mm512_and_si512(h, b4));
      hb = _mm256_srli_epi16(hb, 2);
    }
    v[j] = q;
  }
}

/* Q4_K / Q5_K: d * sc * q - dmin * m per sub-block of 32 (groups 2j and
 * 2j + 1). */
static inline void wprep_q45k(int is5, const void *row, int n, void *out) {
  const __m512i half =
      _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  wsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++) {
    const uint8_t *qs, *qh, *scales;
    q_half d, dmin;
    if (is5) {
      const block_q5_K *b = (const block_q5_K *)row + i;
      qs = b->qs, qh = b->qh, scales = b->scales, d = b->d, dmin = b->dmin;
    } else {
      const block_q4_K *b = (const block_q4_K *)row + i;
      qs = b->qs, qh = NULL, scales = b->scales, d = b->d, dmin = b->dmin;
    }
    __m512i v[4];
    unpack_q45k_zmm(qs, qh, v);
    store_lane_order(v, o->u);
    uint8_t sc[16];
    unpack_q4k_scales(scales, sc);
    __m512 f = _mm512_cvtepi32_ps(
        _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)sc)));
    _mm512_store_ps(o->sc, _mm512_mul_ps(_mm512_permutexvar_ps(half, f),
                                         _mm512_set1_ps(f16(d))));
    _mm512_store_ps(
        o->o,
        _mm512_mul_ps(_mm512_permutexvar_ps(
                          _mm512_add_epi32(half, _mm512_set1_epi32(8)), f),
                      _mm512_set1_ps(f16(dmin))));
  }
}

static void wprep_q4_k(const void *row, int n, void *out) {
  wprep_q45k(0, row, n, out);
}

static void wprep_q5_k(const void *row, int n, void *out) {
  wprep_q45k(1, row, n, out);
}

/* Q6_K: d * sc[g] * (q - 32) per group of 16, q unsigned 0..63: per half
 * of 128, ql's 64 bytes give elements 0..63 (low nibbles) and 64..127
 * (high nibbles), qh's 32 bytes their bit pairs 0-1/2-3 and 4-5/6-7. */
static void wprep_q6_k(const void *row, int n, void *out) {
  const block_q6_K *b = row;
  const __m512i m4 = _mm512_set1_epi8(0x0f), h2 = _mm512_set1_epi8(0x30);
  wsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++, b++) {
    __m512i v[4];
    for (int h = 0; h < 2; h++) {
      __m512i l = _mm512_loadu_si512(b->ql + 64 * h);
      __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
      __m512i h01 = zpair(_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 2));
      __m512i h23 = zpair(qh, _mm256_srli_epi16(qh, 2));
      v[2 * h] =
          _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(h01, h2));
      v[2 * h + 1] =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                          _mm512_and_si512(h23, h2));
    }
    store_lane_order(v, o->u);
    __m512 sc = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                  _mm_loadu_si128((const __m128i *)b->scales))),
                              _mm512_set1_ps(f16(b->d)));
    _mm512_store_ps(o->sc, sc);
    _mm512_store_ps(o->o, _mm512_mul_ps(sc, _mm512_set1_ps(32.0f)));
  }
}

/* Q2_K / Q3_K (hmask != NULL) quants in element order: elements
 * 128h + 32j + e are bits 2j, 2j + 1 of qs[32h + e], Q3_K's third bit bit
 * 4h + j of hmask[e] (0..3, Q3_K 0..7). */
static inline void unpack_q23k_zmm(const uint8_t *qs, const uint8_t *hmask,
                                   __m512i v[4]) {
  const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  __m256i hm = hmask ? _mm256_loadu_si256((const __m256i *)hmask)
                     : _mm256_setzero_si256();
  for (int h = 0; h < 2; h++) {
    __m256i qv = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
      q[j] = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m3);
      if (hmask) {
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
        q[j] = _mm256_or_si256(q[j], _mm256_slli_epi16(hb, 2));
      }
    }
    v[2 * h] = zpair(q[0], q[1]);
    v[2 * h + 1] = zpair(q[2], q[3]);
  }
}

/* Q2_K: d * sc[g] * q - dmin * m[g] per group of 16 (4-bit sc and m). */
static void wprep_q2_k(const void *row, int n, void *out) {
  const block_q2_K *b = row;
  const __m512i m4 = _mm512_set1_epi32(0xf);
  wsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++, b++) {
    __m512i v[4];
    unpack_q23k_zmm(b->qs, NULL, v);
    store_lane_order(v, o->u);
    __m512i sm =
        _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->scales));
    _mm512_store_ps(o->sc,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(sm, m4)),
                                  _mm512_set1_ps(f16(b->d))));
    _mm512_store_ps(o->o,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(sm, 4)),
                                  _mm512_set1_ps(f16(b->dmin))));
  }
}

/* Q3_K: d * sc[g] * (q - 4) per group of 16, q unsigned 0..7. */
static void wprep_q3_k(const void *row, int n, void *out) {
  const block_q3_K *b = row;
  wsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++, b++) {
    __m512i v[4];
    unpack_q23k_zmm(b->qs, b->hmask, v);
    store_lane_order(v, o->u);
    int8_t sc[16];
    unpack_q3k_scales(b->scales, sc);
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                 _mm_loadu_si128((const __m128i *)sc))),
                             _mm512_set1_ps(f16(b->d)));
    _mm512_store_ps(o->sc, f);
    _mm512_store_ps(o->o, _mm512_mul_ps(f, _mm512_set1_ps(4.0f)));
  }
}

/* IQ4_XS: d * (ls - 32) * level per sub-block of 32, the non-linear level
 * stored biased (level + 128, unsigned). */
static void wprep_iq4_xs(const void *row, int n, void *out) {
  const block_iq4_xs *b = row;
  const __m128i tbl =
      _mm_xor_si128(_mm_loadu_si128((const __m128i *)q_iq4nl_values),
                    _mm_set1_epi8((char)0x80));
  wsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++, b++) {
    __m512i v[4];
    for (int k = 0; k < 4; k++)
      v[k] = zpair(iq4_lookup(tbl, b->qs + 32 * k),
                   iq4_lookup(tbl, b->qs + 32 * k + 16));
    store_lane_order(v, o->u);
    const float d = f16(b->d);
    for (int g = 0; g < 16; g++) {
      const int ib = g / 2;
      const int ls = ((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
                     (((b->scales_h >> 2 * ib) & 3) << 4);
      o->sc[g] = d * (float)(ls - 32);
      o->o[g] = 128.0f * o->sc[g];
    }
  }
}

static void xprep_q8_k(const void *row, int n, void *out) {
  const block_q8_K *y = row;
  const __m512i ones = _mm512_set1_epi8(1);
  xsb *o = out;
  for (int i = 0; i < n / QK_K; i++, o++, y++) {
    __m512i v[4];
    for (int k = 0; k < 4; k++)
      v[k] = _mm512_loadu_si512(y->qs + 64 * k);
    store_lane_order(v, o->y);
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < 4; k++)
      s = _mm512_dpbusd_epi32(s, ones, _mm512_load_si512(o->y + 64 * k));
    _mm512_store_ps(o->bs,
                    _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(y->d)));
    o->d = y->d;
  }
}

/* Register tile of the K-quant path: 8 rows x 2 tokens (16 accumulators;
 * a token's bytes, loaded once, serve 8 rows: fewer loads per product than
 * 4 x 4; with the slices below 150 -> 175 GMAC/s at 1 thread here). */
enum { PK_MR = 8, PK_NT = 2 };
/* Super-blocks per tile call: 8 rows x 10 x K_WSB = 30 KiB of weights stay
 * in L1 while the tokens pass (wider rows take several calls). */
enum { PK_KSB = 10 };

/* MR rows x NT tokens of prepared super-blocks: 4 vpdpbusd give the 16
 * group dots q . y, then one conversion and the group scales and offsets.
 * Every (row, token) takes the same operations in the same order whatever
 * MR and NT, so a token's result does not depend on its batch. */
static inline __attribute__((always_inline)) void
tile_pk_body(int nsb, const void *Wp, size_t wps, const void *Xp, size_t xps,
             float *Y, size_t ldy, int add, const int MR, const int NT) {
  __m512 acc[PK_MR][PK_NT];
  for (int r = 0; r < MR; r++)
    for (int t = 0; t < NT; t++)
      acc[r][t] = _mm512_setzero_ps();
  for (int i = 0; i < nsb; i++) {
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
      const xsb *x = (const xsb *)((const char *)Xp + t * xps) + i;
      __m512i y[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++)
        y[k] = _mm512_load_si512(x->y + 64 * k);
      const __m512 dy = _mm512_set1_ps(x->d), bs = _mm512_load_ps(x->bs);
#pragma GCC unroll 8
      for (int r = 0; r < MR; r++) {
        const wsb *w = (const wsb *)((const char *)Wp + r * wps) + i;
        __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
          s = _mm512_dpbusd_epi32(s, _mm512_load_si512(w->u + 64 * k), y[k]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), dy),
                                    _mm512_load_ps(w->sc), acc[r][t]);
        acc[r][t] = _mm512_fnmadd_ps(_mm512_load_ps(w->o), bs, acc[r][t]);
      }
    }
  }
  for (int t = 0; t < NT; t++)
    for (int r = 0; r < MR; r++)
      Y[t * ldy + r] =
          (add ? Y[t * ldy + r] : 0.0f) + _mm512_reduce_add_ps(acc[r][t]);
}

/* Each tile shape its own function (inlined together they spill). */
#define K_TILE_PK(NAME, MR, NT)                                                \
  static __attribute__((noinline)) void NAME(                                  \
      int nsb, const void *Wp, size_t wps, const void *Xp, size_t xps,         \
      float *Y, size_t ldy, int add) {                                         \
    tile_pk_body(nsb, Wp, wps, Xp, xps, Y, ldy, add, MR, NT);                  \
  }
K_TILE_PK(tile_pk_full, PK_MR, PK_NT)
K_TILE_PK(tile_pk_4x2, 4, 2)
K_TILE_PK(tile_pk_4x1, 4, 1)
K_TILE_PK(tile_pk_1x2, 1, 2)
K_TILE_PK(tile_pk_1x1, 1, 1)
#undef K_TILE_PK

/* Full tiles, then the edges in 4-row and 1-row pieces of 2 tokens and
 * of 1 token. */
static void tile_pk(int nsb, const void *Wp, size_t wps, int nr, const void *Xp,
                    size_t xps, int nt, float *Y, size_t ldy, int add) {
  if (nr == PK_MR && nt == PK_NT) {
    tile_pk_full(nsb, Wp, wps, Xp, xps, Y, ldy, add);
    return;
  }
  for (int t = 0; t < nt;) {
    const char *x = (const char *)Xp + t * xps;
    const int two = t + 2 <= nt;
    int r = 0;
    for (; r + 4 <= nr; r += 4)
      (two ? tile_pk_4x2 : tile_pk_4x1)(nsb, (const char *)Wp + r * wps, wps, x,
                                        xps, &Y[t * ldy + r], ldy, add);
    for (; r < nr; r++)
      (two ? tile_pk_1x2 : tile_pk_1x1)(nsb, (const char *)Wp + r * wps, wps, x,
                                        xps, &Y[t * ldy + r], ldy, add);
    t += two ? 2 : 1;
  }
}

/* vec_dot_p of one Q8_0 row against NT tokens' prepared pairs: each weight
 * pair is decoded once for all of them, and each token's dot takes the same
 * operations in the same order as a lone one (two accumulators alternating
 * by pair, the odd last block alone), so a token's result does not depend
 * on how many tokens share the call. Always inlined with a constant NT. */
static inline __attribute__((always_inline)) void
vdpn_q8_0_body(int n, float *Y, size_t ldy, const void *vx, const void *Xp,
               size_t xps, const int NT) {
  const block_q8_0 *x = vx;
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  const __m512i lane_blk =
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const int nb = n / 32;
  __m512 a0[8], a1[8];
  for (int t = 0; t < NT; t++)
    a0[t] = a1[t] = _mm512_setzero_ps();
  int i = 0, k = 0;
  for (; i + 2 <= nb; i += 2, k++) {
    __m512i uq =
        _mm512_xor_si512(zpair(dec_q8_0(&x[i]), dec_q8_0(&x[i + 1])), bias);
    __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(x[i].d), x[i + 1].d, 1);
    __m512 dx = _mm512_permutexvar_ps(lane_blk,
                                      _mm512_castps128_ps512(_mm_cvtph_ps(h)));
    for (int t = 0; t < NT; t++) {
      const xpair *y = (const xpair *)((const char *)Xp + t * xps) + k;
      __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(y->neg), uq,
                                      _mm512_load_si512(y->y));
      __m512 d = _mm512_mul_ps(dx, _mm512_load_ps(y->d));
      if (i & 2)
        a1[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), a1[t]);
      else
        a0[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), a0[t]);
    }
  }
  if (i < nb) { /* last block: its pair's high half is zero */
    __m512i uq =
        _mm512_xor_si512(zpair(dec_q8_0(&x[i]), _mm256_setzero_si256()), bias);
    __m512 dx = _mm512_set1_ps(f16(x[i].d));
    for (int t = 0; t < NT; t++) {
      const xpair *y = (const xpair *)((const char *)Xp + t * xps) + k;
      __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(y->neg), uq,
                                      _mm512_load_si512(y->y));
      __m512 d = _mm512_mul_ps(dx, _mm512_load_ps(y->d));
      a0[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), a0[t]);
    }
  }
  for (int t = 0; t < NT; t++)
    Y[t * ldy] = _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t]));
}

/* Two Q8_0 rows (x, x + xrow bytes) against NT tokens' prepared pairs, one
 * accumulator per (row, token): the token loads are shared by the rows.
 * Y[t * ldy + r] for r < 2, t < NT. Within float tolerance of vdp_q8_0
 * (not bit-identical: one accumulator). Always inlined, constant NT. */
static inline __attribute__((always_inline)) void
vdpn2_q8_0_body(int n, float *Y, size_t ldy, const void *vx, size_t xrow,
                const void *Xp, size_t xps, const int NT) {
  const block_q8_0 *x0 = vx;
  const block_q8_0 *x1 = (const block_q8_0 *)((const char *)vx + xrow);
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  const __m512i lane_blk =
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const int nb = n / 32;
  __m512 a[2][8];
  for (int t = 0; t < NT; t++)
    a[0][t] = a[1][t] = _mm512_setzero_ps();
  for (int i = 0, k = 0; i < nb; i += 2, k++) {
    const int two = i + 1 < nb;
    __m512i u0 =
        _mm512_xor_si512(zpair(dec_q8_0(&x0[i]), two ? dec_q8_0(&x0[i + 1])
                                                     : _mm256_setzero_si256()),
                         bias);
    __m512i u1 =
        _mm512_xor_si512(zpair(dec_q8_0(&x1[i]), two ? dec_q8_0(&x1[i + 1])
                                                     : _mm256_setzero_si256()),
                         bias);
    __m128i h0 =
        _mm_insert_epi16(_mm_cvtsi32_si128(x0[i].d), two ? x0[i + 1].d : 0, 1);
    __m128i h1 =
        _mm_insert_epi16(_mm_cvtsi32_si128(x1[i].d), two ? x1[i + 1].d : 0, 1);
    __m512 d0 = _mm512_permutexvar_ps(lane_blk,
                                      _mm512_castps128_ps512(_mm_cvtph_ps(h0)));
    __m512 d1 = _mm512_permutexvar_ps(lane_blk,
                                      _mm512_castps128_ps512(_mm_cvtph_ps(h1)));
    for (int t = 0; t < NT; t++) {
      const xpair *y = (const xpair *)((const char *)Xp + t * xps) + k;
      __m512i yv = _mm512_load_si512(y->y), ng = _mm512_load_si512(y->neg);
      __m512 dy = _mm512_load_ps(y->d);
      __m512i p0 = _mm512_dpbusd_epi32(ng, u0, yv);
      __m512i p1 = _mm512_dpbusd_epi32(ng, u1, yv);
      a[0][t] = _mm512_fmadd_ps(_mm512_mul_ps(d0, dy), _mm512_cvtepi32_ps(p0),
                                a[0][t]);
      a[1][t] = _mm512_fmadd_ps(_mm512_mul_ps(d1, dy), _mm512_cvtepi32_ps(p1),
                                a[1][t]);
    }
  }
  for (int t = 0; t < NT; t++) {
    Y[t * ldy] = _mm512_reduce_add_ps(a[0][t]);
    Y[t * ldy + 1] = _mm512_reduce_add_ps(a[1][t]);
  }
}

/* Two rows, any number of tokens: near-equal groups of at most 8. */
static void vdpn2_q8_0(int n, float *Y, size_t ldy, const void *vx, size_t xrow,
                       const void *Xp, size_t xps, int nt) {
  while (nt > 0) {
    int groups = (nt + 7) / 8, g = (nt + groups - 1) / groups;
    switch (g) {
#define K_VDPN2_CASE(G)                                                        \
  case G:                                                                      \
    vdpn2_q8_0_body(n, Y, ldy, vx, xrow, Xp, xps, G);                          \
    break;
      K_VDPN2_CASE(1)
      K_VDPN2_CASE(2)
      K_VDPN2_CASE(3)
      K_VDPN2_CASE(4)
      K_VDPN2_CASE(5)
      K_VDPN2_CASE(6)
      K_VDPN2_CASE(7)
      K_VDPN2_CASE(8)
#undef K_VDPN2_CASE
    }
    nt -= g;
    Y += (size_t)g * ldy;
    Xp = (const char *)Xp + (size_t)g * xps;
  }
}

/* Decode on prepared activations (xpair: bytes, -128 * sum, lane scales
 * loaded, not recomputed per row); the pair's two weight scales converted
 * together. */
static void vdp_q8_0(int n, float *s, const void *vx, const void *vp) {
  vdpn_q8_0_body(n, s, 0, vx, vp, 0, 1);
}

/* Small batches: the tokens in near-equal groups of at most 8, one pass
 * over the (cached) row per group. */
static void vdpn_q8_0(int n, float *Y, size_t ldy, const void *vx,
                      const void *Xp, size_t xps, int nt) {
  while (nt > 0) {
    int groups = (nt + 7) / 8, g = (nt + groups - 1) / groups;
    switch (g) {
#define K_VDPN_CASE(G)                                                         \
  case G:                                                                      \
    vdpn_q8_0_body(n, Y, ldy, vx, Xp, xps, G);                                 \
    break;
      K_VDPN_CASE(1)
      K_VDPN_CASE(2)
      K_VDPN_CASE(3)
      K_VDPN_CASE(4)
      K_VDPN_CASE(5)
      K_VDPN_CASE(6)
      K_VDPN_CASE(7)
      K_VDPN_CASE(8)
#undef K_VDPN_CASE
    }
    nt -= g;
    Y += (size_t)g * ldy;
    Xp = (const char *)Xp + (size_t)g * xps;
  }
}

static void set_tile(k_ops *o, int type, k_tile_fn f, int mr, int nt) {
  o->tile[type] = f;
  o->tile_mr[type] = mr;
  o->tile_nt[type] = nt;
}

void k_register_avx512(k_ops *o, int has_vnni) {
  if (!has_vnni)
    return; /* the AVX2 kernels serve AVX-512 without VNNI */
  o->vec_dot[QT_Q8_0] = vd_q8_0_x4;
  o->vec_dot[QT_Q4_0] = vd_q4_0_pair;
  o->vec_dot[QT_Q5_0] = vd_q5_0_pair;
  o->vec_dot[QT_IQ4_NL] = vd_iq4_nl_pair;
  o->vec_dot[QT_Q4_K] = vd_q4_k_zmm;
  o->vec_dot[QT_Q5_K] = vd_q5_k_zmm;
  o->vec_dot[QT_Q6_K] = vd_q6_k_zmm;
  set_tile(o, QT_Q8_0, tile_q8_0_vnni, 4, 4);
  set_tile(o, QT_Q4_0, tile_q4_0_vnni, 4, 4);
  set_tile(o, QT_Q5_0, tile_q5_0_vnni, 4, 4);
  set_tile(o, QT_IQ4_NL, tile_iq4_nl_vnni, 4, 4);
  set_tile(o, QT_Q4_K, tile_q4_k_zmm, 1, K_TILE_NT);
  set_tile(o, QT_Q5_K, tile_q5_k_zmm, 1, K_TILE_NT);
  set_tile(o, QT_Q6_K, tile_q6_k_zmm, 1, K_TILE_NT);

  o->wprep[QT_Q8_0] = wprep_q8_0;
  o->wprep[QT_Q4_0] = wprep_q4_0;
  o->wprep[QT_Q5_0] = wprep_q5_0;
  o->wprep[QT_IQ4_NL] = wprep_iq4_nl;
  o->xprep_q8_0 = xprep_q8_0;
  o->vec_dot_p[QT_Q8_0] = vdp_q8_0;
  o->vec_dot_pn[QT_Q8_0] = vdpn_q8_0;
  o->vec_dot_pn2[QT_Q8_0] = vdpn2_q8_0;
  o->tile_p = tile_pp;
  o->tile_p_mr = PP_MR;
  o->tile_p_nt = PP_NT;
  o->wprep_k[QT_Q2_K] = wprep_q2_k;
  o->wprep_k[QT_Q3_K] = wprep_q3_k;
  o->wprep_k[QT_IQ4_XS] = wprep_iq4_xs;
  o->wprep_k[QT_Q4_K] = wprep_q4_k;
  o->wprep_k[QT_Q5_K] = wprep_q5_k;
  o->wprep_k[QT_Q6_K] = wprep_q6_k;
  o->xprep_q8_k = xprep_q8_k;
  o->tile_pk = tile_pk;
  o->tile_pk_mr = PK_MR;
  o->tile_pk_nt = PK_NT;
  o->tile_pk_ksb = PK_KSB;
}
