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

/* ==== vec_dot (VNNI) ========================================================
 */

/* 8 int32 partial sums of x*y over 32 signed bytes with vpdpbusd. */
static inline __m256i dot_i8_vnni(__m256i x, __m256i y) {
  const __m256i bias = _mm256_set1_epi8((char)0x80);
  __m256i ysum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, y);
  __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(), ysum);
  return _mm256_dpbusd_epi32(acc, _mm256_xor_si256(x, bias), y);
}

static void vd_q8_0_vnni(int n, float *s, const void *vx, const void *vy) {
  const block_q8_0 *x = vx;
  const block_q8_0 *y = vy;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int nb = n / QK8_0, i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m256i p0 = dot_i8_vnni(dec_q8_0(&x[i]),
                             _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256i p1 = dot_i8_vnni(dec_q8_0(&x[i + 1]),
                             _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
                           _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)),
                           _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < nb; i++) {
    __m256i p = dot_i8_vnni(dec_q8_0(&x[i]),
                            _mm256_loadu_si256((const __m256i *)y[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
                           _mm256_cvtepi32_ps(p), acc0);
  }
  *s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ==== matmul tiles (VNNI) ==================================================
 */

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
K_TILE_Q8ACT_VNNI(tile_q5_0_vnni, block_q5_0, dec_q5_0, QT_Q5_0, 4, 4)
K_TILE_Q8ACT_VNNI(tile_iq4_nl_vnni, block_iq4_nl, dec_iq4_nl, QT_IQ4_NL, 4, 4)

/* ---- K-quant tiles: zmm vpdpbusd over 64 unpacked bytes, per-lane scale
 * multipliers (vpmulld) --------------------------------------------------- */

/* sum over 4 zmm groups of (q . y per 4 bytes) * mul[k], as 16 int32. */
static inline __m512i dot256_u8_zmm(const uint8_t *q, const int8_t *y,
                                    const __m512i *mul) {
  __m512i s = _mm512_setzero_si512();
  for (int k = 0; k < 4; k++) {
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                    _mm512_loadu_si512(q + 64 * k),
                                    _mm512_loadu_si512(y + 64 * k));
    s = _mm512_add_epi32(s, _mm512_mullo_epi32(p, mul[k]));
  }
  return s;
}

/* mul[k] lanes: scale of the 32-element group (Q4_K/Q5_K, per32 = 1) or
 * 16-element group (Q6_K, per32 = 0) that each 4 bytes belong to. */
static inline void lane_scales(__m512i all, int per32, __m512i *mul) {
  for (int k = 0; k < 4; k++) {
    __m512i idx =
        per32
            ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
            : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    idx = _mm512_add_epi32(idx, _mm512_set1_epi32(per32 ? 2 * k : 4 * k));
    mul[k] = _mm512_permutexvar_epi32(idx, all);
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
      if (is5) {
        const block_q5_K *b =
            (const block_q5_K *)((const char *)W + r * ws) + i;
        unpack_q4k_block(b->qs, b->qh, q);
        unpack_q4k_scales(b->scales, sc);
        d = f16(b->d), dmin = f16(b->dmin);
      } else {
        const block_q4_K *b =
            (const block_q4_K *)((const char *)W + r * ws) + i;
        unpack_q4k_block(b->qs, NULL, q);
        unpack_q4k_scales(b->scales, sc);
        d = f16(b->d), dmin = f16(b->dmin);
      }
      lane_scales(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)sc)), 1,
                  mul);
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
      lane_scales(
          _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->scales)), 0,
          mul);
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

static void set_tile(k_ops *o, int type, k_tile_fn f, int mr, int nt) {
  o->tile[type] = f;
  o->tile_mr[type] = mr;
  o->tile_nt[type] = nt;
}

void k_register_avx512(k_ops *o, int has_vnni) {
  if (!has_vnni)
    return; /* the AVX2 kernels serve AVX-512 without VNNI */
  o->vec_dot[QT_Q8_0] = vd_q8_0_vnni;
  set_tile(o, QT_Q8_0, tile_q8_0_vnni, 4, 4);
  set_tile(o, QT_Q4_0, tile_q4_0_vnni, 4, 4);
  set_tile(o, QT_Q5_0, tile_q5_0_vnni, 4, 4);
  set_tile(o, QT_IQ4_NL, tile_iq4_nl_vnni, 4, 4);
  set_tile(o, QT_Q4_K, tile_q4_k_zmm, 1, K_TILE_NT);
  set_tile(o, QT_Q5_K, tile_q5_k_zmm, 1, K_TILE_NT);
  set_tile(o, QT_Q6_K, tile_q6_k_zmm, 1, K_TILE_NT);
}
