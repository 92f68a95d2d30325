/* Static inline AVX2/FMA/F16C building blocks shared by kernels_avx2.c and
 * kernels_avx512.c (both are compiled with AVX2 enabled): horizontal sums,
 * f16/bf16 loads, a vectorized expf, int8 dot-product idioms, block unpacking
 * for the K-quants, and the bit-exact activation quantizer blocks. Only
 * included by SIMD kernel files. Knows nothing about models. */
#ifndef HEARTH_ENGINE_KERNELS_AVX2_INL_H
#define HEARTH_ENGINE_KERNELS_AVX2_INL_H
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/quant.h"

static inline float hsum_ps(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

static inline int hsum_i32(__m256i v) {
  __m128i h =
      _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
  return _mm_cvtsi128_si32(h);
}

static inline float f16(q_half h) {
  return _cvtsh_ss(h);
}

static inline __m256 load_f16x8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* expf to ~2 ulp (range reduction by ln 2, degree-6 polynomial); inputs are
 * clamped to [-87.3, 88.3] so the exponent stays normal. */
static inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)),
                    _mm256_set1_ps(88.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r,
                             _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* 8 int32 partial sums of x*y over 32 signed bytes (|x| <= 128, |y| <= 127:
 * no int16 saturation). */
static inline __m256i dot_i8(__m256i x, __m256i y) {
  __m256i p =
      _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* The same for unsigned x (< 128). */
static inline __m256i dot_u8(__m256i x, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles first, then high. */
static inline __m256i nibbles16(const uint8_t *qs) {
  __m128i q = _mm_loadu_si128((const __m128i *)qs);
  __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m),
                          _mm_and_si128(q, m));
}

/* Bit i of b -> byte i = 0xff (set) or 0x00. */
static inline __m256i bits_to_bytes(uint32_t b) {
  const __m256i spread = _mm256_setr_epi64x(
      0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), spread);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* IQ4 non-linear levels of 16 packed-nibble bytes (low nibbles first). */
static inline __m256i iq4_lookup(__m128i tbl, const uint8_t *qs) {
  __m128i q = _mm_loadu_si128((const __m128i *)qs);
  __m128i m = _mm_set1_epi8(0x0f);
  __m128i lo = _mm_shuffle_epi8(tbl, _mm_and_si128(q, m));
  __m128i hi = _mm_shuffle_epi8(tbl, _mm_and_si128(_mm_srli_epi16(q, 4), m));
  return _mm256_set_m128i(hi, lo);
}

/* int16 multiplier vector: a for the first 16 elements' pairs, b for the
 * next 16 (as laid out by vpmaddubsw on 32 bytes). */
static inline __m256i scale_pair(int a, int b) {
  return _mm256_set_m128i(_mm_set1_epi16((int16_t)b),
                          _mm_set1_epi16((int16_t)a));
}

/* sum over 16 groups of sc[g] * bsums[g]. */
static inline int scales16_dot(const int8_t *sc, const int16_t *bsums) {
  __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
  return hsum_i32(
      _mm256_madd_epi16(s, _mm256_loadu_si256((const __m256i *)bsums)));
}

/* Q4_K / Q5_K: 8 6-bit scales (out[0..7]) and 8 6-bit mins (out[8..15]). */
static inline void unpack_q4k_scales(const uint8_t *s, uint8_t *out) {
  uint32_t u[4];
  memcpy(u, s, 12);
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
  uint32_t mins_lo = u[1] & m6;
  u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
  u[2] = mins_lo;
  u[0] &= m6;
  memcpy(out, u, 16);
}

/* sum over 8 sub-blocks of 32 of mins[j] * (bsums[2j] + bsums[2j+1]). */
static inline int mins_dot(const uint8_t *mins, const int16_t *bsums) {
  __m128i b = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums),
                             _mm_loadu_si128((const __m128i *)(bsums + 8)));
  __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mins));
  __m128i p = _mm_madd_epi16(m, b);
  p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4e));
  p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xb1));
  return _mm_cvtsi128_si32(p);
}

/* Q4_K (qh NULL) / Q5_K super-block: 8 int32 lanes summing to
 * sum_j sc[j] * sum(q * y) over sub-block j (without the mins). */
static inline __m256i q4k_block_dot(const uint8_t *qs, const uint8_t *qh,
                                    const uint8_t *sc, const int8_t *yq) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
  __m256i hb =
      qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
  __m256i sumi = _mm256_setzero_si256();
  for (int j = 0; j < 4; j++) {
    __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
    __m256i lo = _mm256_and_si256(q, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if (qh) {
      lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4));
      hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));
      hb = _mm256_srli_epi16(hb, 2);
    }
    __m256i p0 = _mm256_maddubs_epi16(
        lo, _mm256_loadu_si256((const __m256i *)(yq + 64 * j)));
    __m256i p1 = _mm256_maddubs_epi16(
        hi, _mm256_loadu_si256((const __m256i *)(yq + 64 * j + 32)));
    p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * j]));
    p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * j + 1]));
    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
  }
  return sumi;
}

/* Q6_K super-block: 8 int32 lanes summing to sum_g sc[g] * sum((q-32) * y). */
static inline __m256i q6k_block_dot(const block_q6_K *b, const int8_t *yq,
                                    const int16_t *bsums) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03),
                h2 = _mm256_set1_epi8(0x30);
  __m256i sumi = _mm256_setzero_si256();
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = b->ql + 64 * h;
    const int8_t *sc = b->scales + 8 * h;
    const int8_t *y = yq + 128 * h;
    __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i q[4];
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                           _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 2), h2));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_and_si256(qh, h2));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), h2));
    for (int k = 0; k < 4; k++) {
      __m256i p = _mm256_maddubs_epi16(
          q[k], _mm256_loadu_si256((const __m256i *)(y + 32 * k)));
      sumi = _mm256_add_epi32(
          sumi, _mm256_madd_epi16(p, scale_pair(sc[2 * k], sc[2 * k + 1])));
    }
  }
  int corr = 32 * scales16_dot(b->scales, bsums);
  return _mm256_sub_epi32(sumi, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
}

/* Q3_K: 16 6-bit scales, already minus 32. */
static inline void unpack_q3k_scales(const uint8_t *s, int8_t *out) {
  uint32_t a[4];
  memcpy(a, s, 12);
  const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
  uint32_t t = a[2];
  a[2] = ((a[0] >> 4) & m4) | (((t >> 4) & m2) << 4);
  a[3] = ((a[1] >> 4) & m4) | (((t >> 6) & m2) << 4);
  a[0] = (a[0] & m4) | (((t >> 0) & m2) << 4);
  a[1] = (a[1] & m4) | (((t >> 2) & m2) << 4);
  memcpy(out, a, 16);
  for (int k = 0; k < 16; k++)
    out[k] = (int8_t)(out[k] - 32);
}

/* ---- activation quantizer blocks (bit-exact with quant.c) ---------------- */

/* Loads 32 floats, returns d = amax/127 and id = 1/d (0 when d == 0). */
static inline void q8_block_prep(const float *x, __m256 v[4], float *d,
                                 float *id) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 4; k++) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float amax = _mm_cvtss_f32(h);
  *d = amax / 127.0f;
  *id = *d != 0.0f ? 1.0f / *d : 0.0f;
}

/* roundf (half away from zero) of 8 floats, as int32. */
static inline __m256i roundf_epi32(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 a = _mm256_andnot_ps(sign, v);
  __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m256 up =
      _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
  return _mm256_cvttps_epi32(_mm256_or_ps(t, _mm256_and_ps(v, sign)));
}

/* Packs 4 x 8 int32 (in order) to 32 int8. */
static inline __m256i pack_i32x32(__m256i a, __m256i b, __m256i c, __m256i d) {
  __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  __m256i q = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(q,
                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Stores roundf(v * id) to 32 int8 and returns them. */
static inline __m256i q8_block_store(const __m256 v[4], float id, int8_t *qs) {
  __m256 vid = _mm256_set1_ps(id);
  __m256i i[4];
  for (int k = 0; k < 4; k++)
    i[k] = roundf_epi32(_mm256_mul_ps(v[k], vid));
  __m256i q = pack_i32x32(i[0], i[1], i[2], i[3]);
  _mm256_storeu_si256((__m256i *)qs, q);
  return q;
}

/* One Q8_K block of 256 floats, like the reference: the signed value of
 * largest magnitude (first one) sets iscale = -127/max, q = min(127,
 * nearest_even(iscale * x)), d = 1/iscale, bsums per 16. */
static inline void q8k_block(const float *x, block_q8_K *y) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < QK_K; k += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float amax = _mm_cvtss_f32(h);
  if (amax == 0.0f) {
    y->d = 0;
    memset(y->qs, 0, sizeof y->qs);
    memset(y->bsums, 0, sizeof y->bsums);
    return;
  }
  float max = 0;
  __m256 va = _mm256_set1_ps(amax);
  for (int k = 0; k < QK_K; k += 8) {
    __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, va, _CMP_EQ_OQ));
    if (mask) {
      max = x[k + __builtin_ctz((unsigned)mask)];
      break;
    }
  }
  const float iscale = -127.f / max;
  __m256 vs = _mm256_set1_ps(iscale);
  __m256i lim = _mm256_set1_epi32(127);
  for (int k = 0; k < QK_K; k += 32) {
    __m256i i[4];
    for (int j = 0; j < 4; j++)
      i[j] = _mm256_min_epi32(
          _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 8 * j))),
          lim);
    __m256i q = pack_i32x32(i[0], i[1], i[2], i[3]);
    _mm256_storeu_si256((__m256i *)(y->qs + k), q);
    __m256i w = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                  _mm256_set1_epi16(1));
    /* w: 8 sums of 4 bytes each, in order */
    __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
    __m128i s = _mm_hadd_epi32(lo, hi); /* pairs: 8-byte sums 0..3 */
    s = _mm_hadd_epi32(s, s);           /* 16-byte sums 0,1,0,1 */
    y->bsums[k / 16] = (int16_t)_mm_cvtsi128_si32(s);
    y->bsums[k / 16 + 1] = (int16_t)_mm_extract_epi32(s, 1);
  }
  y->d = 1 / iscale;
}
/* ---- matmul tiles
 * ------------------------------------------------------------ Weight blocks of
 * the 32-element types that pair with Q8_0 activations, decoded to 32 signed
 * bytes. */
static inline __m256i dec_q8_0(const block_q8_0 *b) {
  return _mm256_loadu_si256((const __m256i *)b->qs);
}
static inline __m256i dec_q4_0(const block_q4_0 *b) {
  return _mm256_sub_epi8(nibbles16(b->qs), _mm256_set1_epi8(8));
}
static inline __m256i dec_q5_0(const block_q5_0 *b) {
  uint32_t qh;
  memcpy(&qh, b->qh, 4);
  const __m256i b4 = _mm256_set1_epi8(0x10);
  __m256i hb = _mm256_and_si256(bits_to_bytes(qh), b4);
  return _mm256_sub_epi8(_mm256_or_si256(nibbles16(b->qs), hb), b4);
}
static inline __m256i dec_iq4_nl(const block_iq4_nl *b) {
  return iq4_lookup(_mm_loadu_si128((const __m128i *)q_iq4nl_values), b->qs);
}

/* Defines NAME, a k_tile_fn for weight blocks BT (32 elements, f16 d) against
 * Q8_0 activations: MR rows x NT tokens per step, one f32 accumulator per
 * (row, token); partial tiles go through EDGE (the type's vec_dot). The int8
 * products use the sign trick (AVX2). */
#define K_TILE_Q8ACT_AVX2(NAME, BT, DECODE, EDGE, MR, NT)                      \
  static void NAME(int n, const void *W, size_t ws, int nr, const void *X,     \
                   size_t xs, int nt, float *Y, size_t ldy) {                  \
    if (nr != (MR) || nt != (NT)) {                                            \
      for (int t = 0; t < nt; t++)                                             \
        for (int r = 0; r < nr; r++)                                           \
          EDGE(n, &Y[t * ldy + r], (const char *)W + r * ws,                   \
               (const char *)X + t * xs);                                      \
      return;                                                                  \
    }                                                                          \
    __m256 acc[MR][NT];                                                        \
    for (int r = 0; r < (MR); r++)                                             \
      for (int t = 0; t < (NT); t++)                                           \
        acc[r][t] = _mm256_setzero_ps();                                       \
    for (int i = 0; i < n / 32; i++) {                                         \
      __m256i q[MR], aq[MR];                                                   \
      __m256 dx[MR];                                                           \
      for (int r = 0; r < (MR); r++) {                                         \
        const BT *b = (const BT *)((const char *)W + r * ws) + i;              \
        q[r] = DECODE(b);                                                      \
        aq[r] = _mm256_sign_epi8(q[r], q[r]);                                  \
        dx[r] = _mm256_set1_ps(f16(b->d));                                     \
      }                                                                        \
      for (int t = 0; t < (NT); t++) {                                         \
        const block_q8_0 *yb =                                                 \
            (const block_q8_0 *)((const char *)X + t * xs) + i;                \
        __m256i yv = _mm256_loadu_si256((const __m256i *)yb->qs);              \
        __m256 dy = _mm256_set1_ps(f16(yb->d));                                \
        for (int r = 0; r < (MR); r++) {                                       \
          __m256i p = _mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(yv, q[r])); \
          p = _mm256_madd_epi16(p, _mm256_set1_epi16(1));                      \
          acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], dy),                \
                                      _mm256_cvtepi32_ps(p), acc[r][t]);       \
        }                                                                      \
      }                                                                        \
    }                                                                          \
    for (int t = 0; t < (NT); t++)                                             \
      for (int r = 0; r < (MR); r++)                                           \
        Y[t * ldy + r] = hsum_ps(acc[r][t]);                                   \
  }

/* K-quant tiles: one weight row at a time, its super-block unpacked once
 * (bytes to an L1 buffer, scales to multiplier vectors) and then used for
 * up to K_TILE_NT tokens. */
enum { K_TILE_NT = 8 };

/* Q4_K / Q5_K (qh != NULL) super-block unpacked: q[256] unsigned bytes in
 * activation order, sc multipliers per 32, and mins. */
static inline void unpack_q4k_block(const uint8_t *qs, const uint8_t *qh,
                                    uint8_t *q) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
  __m256i hb =
      qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
  for (int j = 0; j < 4; j++) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
    __m256i lo = _mm256_and_si256(v, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (qh) {
      lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4));
      hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));
      hb = _mm256_srli_epi16(hb, 2);
    }
    _mm256_storeu_si256((__m256i *)(q + 64 * j), lo);
    _mm256_storeu_si256((__m256i *)(q + 64 * j + 32), hi);
  }
}

/* Q6_K super-block unpacked to 256 unsigned bytes (0..63) in activation
 * order. */
static inline void unpack_q6k_block(const block_q6_K *b, uint8_t *out) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03),
                h2 = _mm256_set1_epi8(0x30);
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = b->ql + 64 * h;
    __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i *o = (__m256i *)(out + 128 * h);
    _mm256_storeu_si256(
        o, _mm256_or_si256(_mm256_and_si256(l0, m4),
                           _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)));
    _mm256_storeu_si256(
        o + 1, _mm256_or_si256(_mm256_and_si256(l1, m4),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 2), h2)));
    _mm256_storeu_si256(
        o + 2, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_and_si256(qh, h2)));
    _mm256_storeu_si256(
        o + 3, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), h2)));
  }
}

/* sum_j (q . y over 32-element group j) * mul[j]: 8 groups, mul[j] the
 * int16 multiplier vector of group j (per 16 elements within it). */
static inline __m256i dot256_u8(const uint8_t *q, const int8_t *y,
                                const __m256i *mul) {
  __m256i s = _mm256_setzero_si256();
  for (int j = 0; j < 8; j++) {
    __m256i p =
        _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(q + 32 * j)),
                             _mm256_loadu_si256((const __m256i *)(y + 32 * j)));
    s = _mm256_add_epi32(s, _mm256_madd_epi16(p, mul[j]));
  }
  return s;
}

/* Block i of a Q4_K (is5 = 0) or Q5_K (is5 = 1) row: its 256 quants as
 * bytes, its 16 sub-block scales/mins, and the two super-block scales. */
static inline void unpack_q45k(int is5, const void *row, int i, uint8_t *q,
                               uint8_t *sc, float *d, float *dmin) {
  if (is5) {
    const block_q5_K *b = (const block_q5_K *)row + i;
    unpack_q4k_block(b->qs, b->qh, q);
    unpack_q4k_scales(b->scales, sc);
    *d = f16(b->d), *dmin = f16(b->dmin);
  } else {
    const block_q4_K *b = (const block_q4_K *)row + i;
    unpack_q4k_block(b->qs, NULL, q);
    unpack_q4k_scales(b->scales, sc);
    *d = f16(b->d), *dmin = f16(b->dmin);
  }
}

/* Q4_K (is5 = 0) / Q5_K (is5 = 1) tile: nr rows x nt (<= K_TILE_NT) tokens. */
static inline void tile_q45k(int is5, int n, const void *W, size_t ws, int nr,
                             const void *X, size_t xs, int nt, float *Y,
                             size_t ldy) {
  const int nb = n / QK_K;
  for (int r = 0; r < nr; r++) {
    __m256 acc[K_TILE_NT];
    float summ[K_TILE_NT];
    for (int t = 0; t < nt; t++)
      acc[t] = _mm256_setzero_ps(), summ[t] = 0;
    for (int i = 0; i < nb; i++) {
      uint8_t q[QK_K] __attribute__((aligned(32)));
      uint8_t sc[16];
      __m256i mul[8];
      float d, dmin;
      unpack_q45k(is5, (const char *)W + r * ws, i, q, sc, &d, &dmin);
      for (int j = 0; j < 8; j++)
        mul[j] = _mm256_set1_epi16(sc[j]);
      for (int t = 0; t < nt; t++) {
        const block_q8_K *yb =
            (const block_q8_K *)((const char *)X + t * xs) + i;
        __m256i s = dot256_u8(q, yb->qs, mul);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yb->d),
                                 _mm256_cvtepi32_ps(s), acc[t]);
        summ[t] += dmin * yb->d * (float)mins_dot(sc + 8, yb->bsums);
      }
    }
    for (int t = 0; t < nt; t++)
      Y[t * ldy + r] = hsum_ps(acc[t]) - summ[t];
  }
}

static inline void tile_q6k(int n, const void *W, size_t ws, int nr,
                            const void *X, size_t xs, int nt, float *Y,
                            size_t ldy) {
  const int nb = n / QK_K;
  for (int r = 0; r < nr; r++) {
    __m256 acc[K_TILE_NT];
    for (int t = 0; t < nt; t++)
      acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
      const block_q6_K *b = (const block_q6_K *)((const char *)W + r * ws) + i;
      uint8_t q[QK_K] __attribute__((aligned(32)));
      __m256i mul[8];
      unpack_q6k_block(b, q);
      for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
          mul[4 * h + k] = scale_pair(b->scales[8 * h + 2 * k],
                                      b->scales[8 * h + 2 * k + 1]);
      float d = f16(b->d);
      for (int t = 0; t < nt; t++) {
        const block_q8_K *yb =
            (const block_q8_K *)((const char *)X + t * xs) + i;
        __m256i s = dot256_u8(q, yb->qs, mul);
        int corr = 32 * scales16_dot(b->scales, yb->bsums);
        s = _mm256_sub_epi32(s, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yb->d),
                                 _mm256_cvtepi32_ps(s), acc[t]);
      }
    }
    for (int t = 0; t < nt; t++)
      Y[t * ldy + r] = hsum_ps(acc[t]);
  }
}
#endif
