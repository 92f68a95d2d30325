/* AVX2 + FMA + F16C kernels: the same contracts as the scalar references in
 * quant.c / kernels.c, registered into the dispatch table by
 * k_register_avx2(). Integer dot products use the sign trick (|x| * sign(y,x)
 * through vpmaddubsw) and accumulate per block in int32, then scale in f32,
 * like the reference. Knows nothing about models. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels_avx2_inl.h"
#include "engine/kernels_impl.h"
#include "engine/quant.h"

/* ==== f32 helpers ========================================================= */

static float a_dot_f32(const float *x, const float *y, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8),
                         a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
  float s = hsum_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++)
    s += x[i] * y[i];
  return s;
}

static float a_sumsq_f32(const float *x, int n) {
  return a_dot_f32(x, x, n);
}

static void a_mul_scale(float *y, const float *x, const float *w, float s,
                        int n) {
  __m256 vs = _mm256_set1_ps(s);
  int i = 0;
  if (w) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i,
                       _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                     _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
      y[i] = (x[i] * s) * w[i];
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++)
      y[i] = x[i] * s;
  }
}

static void a_silu_mul(float *y, const float *a, const float *b, int n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 va = _mm256_loadu_ps(a + i);
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), va));
    __m256 s = _mm256_div_ps(va, _mm256_add_ps(one, e));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(b + i)));
  }
  for (; i < n; i++)
    y[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

static void a_add(float *y, const float *a, const float *b, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; i++)
    y[i] = a[i] + b[i];
}

static void a_scale(float *y, float s, int n) {
  __m256 vs = _mm256_set1_ps(s);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vs));
  for (; i < n; i++)
    y[i] *= s;
}

static float a_max_f32(const float *x, int n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; i++)
    if (x[i] > r)
      r = x[i];
  return r;
}

static float a_exp_sub_sum(float *x, float m, int n) {
  __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float s = hsum_ps(acc);
  for (; i < n; i++) {
    x[i] = expf(x[i] - m);
    s += x[i];
  }
  return s;
}

static void a_f32_to_f16(uint16_t *y, const float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        (__m128i *)(y + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++)
    y[i] = q_fp32_to_fp16(x[i]);
}

static void a_f16_to_f32(float *y, const uint16_t *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  for (; i < n; i++)
    y[i] = q_fp16_to_fp32(x[i]);
}

static float a_dot_f16(const float *q, const uint16_t *k, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16x8(k + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_f16x8(k + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16x8(k + i), a0);
  float s = hsum_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++)
    s += q[i] * q_fp16_to_fp32(k[i]);
  return s;
}

static void a_axpy_f16(float *y, float a, const uint16_t *v, int n) {
  __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        y + i, _mm256_fmadd_ps(va, load_f16x8(v + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++)
    y[i] += a * q_fp16_to_fp32(v[i]);
}

/* q . K_j for 4 rows at once (q chunk loaded once), hd a multiple of 8. */
static void a_attn_scores(float *out, const float *q, const uint16_t *base,
                          const int32_t *idx, size_t stride, int n, int hd,
                          float scale) {
  if (hd % 8) {
    for (int j = 0; j < n; j++)
      out[j] =
          scale * a_dot_f16(q, base + (size_t)(idx ? idx[j] : j) * stride, hd);
    return;
  }
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const uint16_t *k[4];
    __m256 acc[4];
    for (int r = 0; r < 4; r++) {
      k[r] = base + (size_t)(idx ? idx[j + r] : j + r) * stride;
      acc[r] = _mm256_setzero_ps();
    }
    for (int i = 0; i < hd; i += 8) {
      __m256 qv = _mm256_loadu_ps(q + i);
      for (int r = 0; r < 4; r++)
        acc[r] = _mm256_fmadd_ps(qv, load_f16x8(k[r] + i), acc[r]);
    }
    /* transpose-reduce the 4 accumulators into 4 sums */
    __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]);
    __m256 s23 = _mm256_hadd_ps(acc[2], acc[3]);
    __m256 s = _mm256_hadd_ps(s01, s23);
    __m128 r4 =
        _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    _mm_storeu_ps(out + j, _mm_mul_ps(r4, _mm_set1_ps(scale)));
  }
  for (; j < n; j++)
    out[j] =
        scale * a_dot_f16(q, base + (size_t)(idx ? idx[j] : j) * stride, hd);
}

/* out = sum_j p[j] V_j, 64 columns at a time kept in registers. */
static void a_attn_values(float *out, const float *p, const uint16_t *base,
                          const int32_t *idx, size_t stride, int n, int hd) {
  int i = 0;
  for (; i + 64 <= hd; i += 64) {
    __m256 acc[8];
    for (int k = 0; k < 8; k++)
      acc[k] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
      const uint16_t *v = base + (size_t)(idx ? idx[j] : j) * stride + i;
      __m256 pj = _mm256_set1_ps(p[j]);
      for (int k = 0; k < 8; k++)
        acc[k] = _mm256_fmadd_ps(pj, load_f16x8(v + 8 * k), acc[k]);
    }
    for (int k = 0; k < 8; k++)
      _mm256_storeu_ps(out + i + 8 * k, acc[k]);
  }
  if (i < hd) {
    memset(out + i, 0, sizeof(float) * (size_t)(hd - i));
    for (int j = 0; j < n; j++)
      a_axpy_f16(out + i, p[j], base + (size_t)(idx ? idx[j] : j) * stride + i,
                 hd - i);
  }
}

/* ==== activation quantizers (bit-identical to the reference) ============== */

static void a_quant_q8_0(const float *x, void *vy, int64_t n) {
  block_q8_0 *y = vy;
  for (int64_t i = 0; i < n / QK8_0; i++) {
    __m256 v[4];
    float d, id;
    q8_block_prep(x + i * 32, v, &d, &id);
    y[i].d = q_fp32_to_fp16(d);
    q8_block_store(v, id, y[i].qs);
  }
}

static void a_quant_q8_1(const float *x, void *vy, int64_t n) {
  block_q8_1 *y = vy;
  for (int64_t i = 0; i < n / QK8_1; i++) {
    __m256 v[4];
    float d, id;
    q8_block_prep(x + i * 32, v, &d, &id);
    y[i].d = q_fp32_to_fp16(d);
    __m256i q = q8_block_store(v, id, y[i].qs);
    __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    int sum = hsum_i32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
    y[i].s = q_fp32_to_fp16((float)sum * d);
  }
}

static void a_quant_q8_k(const float *x, void *vy, int64_t n) {
  block_q8_K *y = vy;
  for (int64_t i = 0; i < n / QK_K; i++)
    q8k_block(x + i * QK_K, &y[i]);
}

static void a_quant_f16(const float *x, void *y, int64_t n) {
  a_f32_to_f16(y, x, (int)n);
}

/* ==== quantized dot products ============================================== */

static void vd_q8_0(int n, float *s, const void *vx, const void *vy) {
  const block_q8_0 *x = vx;
  const block_q8_0 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < n / QK8_0; i++) {
    __m256i p = dot_i8(_mm256_loadu_si256((const __m256i *)x[i].qs),
                       _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q4_0(int n, float *s, const void *vx, const void *vy) {
  const block_q4_0 *x = vx;
  const block_q8_0 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i off = _mm256_set1_epi8(8);
  for (int i = 0; i < n / QK4_0; i++) {
    __m256i q = _mm256_sub_epi8(nibbles16(x[i].qs), off);
    __m256i p = dot_i8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q4_1(int n, float *s, const void *vx, const void *vy) {
  const block_q4_1 *x = vx;
  const block_q8_1 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  float summ = 0;
  for (int i = 0; i < n / QK4_1; i++) {
    __m256i p = dot_u8(nibbles16(x[i].qs),
                       _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    summ += f16(x[i].m) * f16(y[i].s);
  }
  *s = hsum_ps(acc) + summ;
}

static void vd_q5_0(int n, float *s, const void *vx, const void *vy) {
  const block_q5_0 *x = vx;
  const block_q8_0 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i b4 = _mm256_set1_epi8(0x10);
  for (int i = 0; i < n / QK5_0; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    __m256i hb = _mm256_and_si256(bits_to_bytes(qh), b4);
    __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles16(x[i].qs), hb), b4);
    __m256i p = dot_i8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q5_1(int n, float *s, const void *vx, const void *vy) {
  const block_q5_1 *x = vx;
  const block_q8_1 *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i b4 = _mm256_set1_epi8(0x10);
  float summ = 0;
  for (int i = 0; i < n / QK5_1; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    __m256i hb = _mm256_and_si256(bits_to_bytes(qh), b4);
    __m256i q = _mm256_or_si256(nibbles16(x[i].qs), hb);
    __m256i p = dot_u8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    summ += f16(x[i].m) * f16(y[i].s);
  }
  *s = hsum_ps(acc) + summ;
}

static void vd_iq4_nl(int n, float *s, const void *vx, const void *vy) {
  const block_iq4_nl *x = vx;
  const block_q8_0 *y = vy;
  const __m128i tbl = _mm_loadu_si128((const __m128i *)q_iq4nl_values);
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < n / QK4_NL; i++) {
    __m256i q = iq4_lookup(tbl, x[i].qs);
    __m256i p = dot_i8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
    __m256 d = _mm256_set1_ps(f16(x[i].d) * f16(y[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_iq4_xs(int n, float *s, const void *vx, const void *vy) {
  const block_iq4_xs *x = vx;
  const block_q8_K *y = vy;
  const __m128i tbl = _mm_loadu_si128((const __m128i *)q_iq4nl_values);
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < n / QK_K; i++) {
    __m256i sumi = _mm256_setzero_si256();
    for (int ib = 0; ib < QK_K / 32; ib++) {
      int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) |
               (((x[i].scales_h >> 2 * ib) & 3) << 4);
      __m256i q = iq4_lookup(tbl, x[i].qs + 16 * ib);
      __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib));
      __m256i p16 =
          _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yv, q));
      sumi = _mm256_add_epi32(
          sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16((int16_t)(ls - 32))));
    }
    __m256 d = _mm256_set1_ps(f16(x[i].d) * y[i].d);
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q4_k(int n, float *s, const void *vx, const void *vy) {
  const block_q4_K *x = vx;
  const block_q8_K *y = vy;
  __m256 acc = _mm256_setzero_ps();
  float summ = 0;
  for (int i = 0; i < n / QK_K; i++) {
    uint8_t sc[16]; /* 8 scales then 8 mins */
    unpack_q4k_scales(x[i].scales, sc);
    summ += y[i].d * f16(x[i].dmin) * (float)mins_dot(sc + 8, y[i].bsums);
    __m256i sumi = q4k_block_dot(x[i].qs, NULL, sc, y[i].qs);
    __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc) - summ;
}

static void vd_q5_k(int n, float *s, const void *vx, const void *vy) {
  const block_q5_K *x = vx;
  const block_q8_K *y = vy;
  __m256 acc = _mm256_setzero_ps();
  float summ = 0;
  for (int i = 0; i < n / QK_K; i++) {
    uint8_t sc[16];
    unpack_q4k_scales(x[i].scales, sc);
    summ += y[i].d * f16(x[i].dmin) * (float)mins_dot(sc + 8, y[i].bsums);
    __m256i sumi = q4k_block_dot(x[i].qs, x[i].qh, sc, y[i].qs);
    __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc) - summ;
}

static void vd_q6_k(int n, float *s, const void *vx, const void *vy) {
  const block_q6_K *x = vx;
  const block_q8_K *y = vy;
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < n / QK_K; i++) {
    __m256i sumi = q6k_block_dot(&x[i], y[i].qs, y[i].bsums);
    __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q3_k(int n, float *s, const void *vx, const void *vy) {
  const block_q3_K *x = vx;
  const block_q8_K *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  for (int i = 0; i < n / QK_K; i++) {
    int8_t sc[16];
    unpack_q3k_scales(x[i].scales, sc);
    /* sum q*y with q = low2 | 4*hbit in 0..7, minus 4 * sum(sc * bsum) */
    __m256i sumi = _mm256_setzero_si256();
    __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
    for (int h = 0; h < 2; h++) {
      __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
      for (int j = 0; j < 4; j++) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m3);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
        q = _mm256_or_si256(q, _mm256_slli_epi16(hb, 2));
        const int8_t *yq = y[i].qs + 128 * h + 32 * j;
        __m256i p =
            _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)yq));
        int is = 8 * h + 2 * j;
        sumi = _mm256_add_epi32(
            sumi, _mm256_madd_epi16(p, scale_pair(sc[is], sc[is + 1])));
      }
    }
    int corr = 4 * scales16_dot(sc, y[i].bsums);
    sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
    __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc);
}

static void vd_q2_k(int n, float *s, const void *vx, const void *vy) {
  const block_q2_K *x = vx;
  const block_q8_K *y = vy;
  __m256 acc = _mm256_setzero_ps();
  const __m256i m3 = _mm256_set1_epi8(3);
  float summ = 0;
  for (int i = 0; i < n / QK_K; i++) {
    int8_t sc[16], mn[16];
    for (int k = 0; k < 16; k++) {
      sc[k] = (int8_t)(x[i].scales[k] & 0xF);
      mn[k] = (int8_t)(x[i].scales[k] >> 4);
    }
    summ += y[i].d * f16(x[i].dmin) * (float)scales16_dot(mn, y[i].bsums);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
      __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
      for (int j = 0; j < 4; j++) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m3);
        const int8_t *yq = y[i].qs + 128 * h + 32 * j;
        __m256i p =
            _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)yq));
        int is = 8 * h + 2 * j;
        sumi = _mm256_add_epi32(
            sumi, _mm256_madd_epi16(p, scale_pair(sc[is], sc[is + 1])));
      }
    }
    __m256 d = _mm256_set1_ps(y[i].d * f16(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  *s = hsum_ps(acc) - summ;
}

static void vd_f32(int n, float *s, const void *x, const void *y) {
  *s = a_dot_f32(x, y, n);
}

static void vd_f16(int n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
    a1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
  float r = hsum_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++)
    r += q_fp16_to_fp32(x[i]) * q_fp16_to_fp32(y[i]);
  *s = r;
}

static void vd_bf16(int n, float *s, const void *vx, const void *vy) {
  const uint16_t *x = vx, *y = vy;
  __m256 a0 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), a0);
  float r = hsum_ps(a0);
  for (; i < n; i++)
    r += q_bf16_to_fp32(x[i]) * q_bf16_to_fp32(y[i]);
  *s = r;
}

/* ==== matmul tiles ======================================================== */

/* 16 ymm registers: 4 rows x 2 tokens of accumulators. */
K_TILE_Q8ACT_AVX2(tile_q8_0, block_q8_0, dec_q8_0, vd_q8_0, 4, 2)
K_TILE_Q8ACT_AVX2(tile_q4_0, block_q4_0, dec_q4_0, vd_q4_0, 4, 2)
K_TILE_Q8ACT_AVX2(tile_q5_0, block_q5_0, dec_q5_0, vd_q5_0, 4, 2)
K_TILE_Q8ACT_AVX2(tile_iq4_nl, block_iq4_nl, dec_iq4_nl, vd_iq4_nl, 4, 2)

static void tile_q4_k(int n, const void *W, size_t ws, int nr, const void *X,
                      size_t xs, int nt, float *Y, size_t ldy) {
  tile_q45k(0, n, W, ws, nr, X, xs, nt, Y, ldy);
}

static void tile_q5_k(int n, const void *W, size_t ws, int nr, const void *X,
                      size_t xs, int nt, float *Y, size_t ldy) {
  tile_q45k(1, n, W, ws, nr, X, xs, nt, Y, ldy);
}

static void tile_q6_k(int n, const void *W, size_t ws, int nr, const void *X,
                      size_t xs, int nt, float *Y, size_t ldy) {
  tile_q6k(n, W, ws, nr, X, xs, nt, Y, ldy);
}

/* ---- prepared prefill path (kernels_impl.h), AVX2 flavour: weights are
 * decoded once per row to signed bytes (64 per pair) and 2 x 8 lane scales;
 * activations keep their bytes and lane scales (the -128 * sum(y) field of
 * the layout is unused here and zeroed). */

typedef struct {
  int8_t q[64];
  float d[16];
} a_wpair;
typedef struct {
  int8_t y[64];
  int32_t unused[16];
  float d[16];
} a_xpair;
_Static_assert(sizeof(a_wpair) == K_WPAIR, "a_wpair");
_Static_assert(sizeof(a_xpair) == K_XPAIR, "a_xpair");

#define K_WPREP_AVX2(NAME, BT, DECODE)                                         \
  static void NAME(const void *row, int n, void *out) {                        \
    const BT *b = row;                                                         \
    a_wpair *o = out;                                                          \
    const int nb = n / 32;                                                     \
    for (int i = 0; i < nb; i += 2, o++) {                                     \
      const int two = i + 1 < nb;                                              \
      _mm256_store_si256((__m256i *)o->q, DECODE(&b[i]));                      \
      _mm256_store_si256((__m256i *)(o->q + 32),                               \
                         two ? DECODE(&b[i + 1]) : _mm256_setzero_si256());    \
      _mm256_store_ps(o->d, _mm256_set1_ps(f16(b[i].d)));                      \
      _mm256_store_ps(o->d + 8, _mm256_set1_ps(two ? f16(b[i + 1].d) : 0.0f)); \
    }                                                                          \
  }

K_WPREP_AVX2(wprep_q4_0, block_q4_0, dec_q4_0)
K_WPREP_AVX2(wprep_q5_0, block_q5_0, dec_q5_0)
K_WPREP_AVX2(wprep_iq4_nl, block_iq4_nl, dec_iq4_nl)

static void xprep_q8_0(const void *row, int n, void *out) {
  const block_q8_0 *y = row;
  a_xpair *o = out;
  const int nb = n / 32;
  for (int i = 0; i < nb; i += 2, o++) {
    const int two = i + 1 < nb;
    _mm256_store_si256((__m256i *)o->y, dec_q8_0(&y[i]));
    _mm256_store_si256((__m256i *)(o->y + 32),
                       two ? dec_q8_0(&y[i + 1]) : _mm256_setzero_si256());
    memset(o->unused, 0, sizeof o->unused);
    _mm256_store_ps(o->d, _mm256_set1_ps(f16(y[i].d)));
    _mm256_store_ps(o->d + 8, _mm256_set1_ps(two ? f16(y[i + 1].d) : 0.0f));
  }
}

enum { APP_MR = 4, APP_NT = 2 };

/* Prepared tile: APP_MR rows x APP_NT tokens, one 32-byte block at a time
 * (sign trick); partial tiles one (row, token) at a time. */
static void tile_pp(int np, const void *Wp, size_t wps, int nr, const void *Xp,
                    size_t xps, int nt, float *Y, size_t ldy) {
  const int full = nr == APP_MR && nt == APP_NT;
  const int MR = full ? APP_MR : 1, NT = full ? APP_NT : 1;
  for (int r0 = 0; r0 < nr; r0 += MR)
    for (int t0 = 0; t0 < nt; t0 += NT) {
      __m256 acc[APP_MR][APP_NT];
      for (int r = 0; r < MR; r++)
        for (int t = 0; t < NT; t++)
          acc[r][t] = _mm256_setzero_ps();
      for (int i = 0; i < np; i++)
        for (int h = 0; h < 2; h++) {
          __m256i q[APP_MR], aq[APP_MR];
          for (int r = 0; r < MR; r++) {
            const a_wpair *w =
                (const a_wpair *)((const char *)Wp + (r0 + r) * wps) + i;
            q[r] = _mm256_load_si256((const __m256i *)(w->q + 32 * h));
            aq[r] = _mm256_sign_epi8(q[r], q[r]);
          }
          for (int t = 0; t < NT; t++) {
            const a_xpair *x =
                (const a_xpair *)((const char *)Xp + (t0 + t) * xps) + i;
            __m256i yv = _mm256_load_si256((const __m256i *)(x->y + 32 * h));
            __m256 dy = _mm256_load_ps(x->d + 8 * h);
            for (int r = 0; r < MR; r++) {
              const a_wpair *w =
                  (const a_wpair *)((const char *)Wp + (r0 + r) * wps) + i;
              __m256i p =
                  _mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(yv, q[r]));
              p = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
              acc[r][t] = _mm256_fmadd_ps(
                  _mm256_mul_ps(_mm256_load_ps(w->d + 8 * h), dy),
                  _mm256_cvtepi32_ps(p), acc[r][t]);
            }
          }
        }
      for (int t = 0; t < NT; t++)
        for (int r = 0; r < MR; r++)
          Y[(t0 + t) * ldy + r0 + r] = hsum_ps(acc[r][t]);
    }
}

static void set_tile(k_ops *o, int type, k_tile_fn f, int mr, int nt) {
  o->tile[type] = f;
  o->tile_mr[type] = mr;
  o->tile_nt[type] = nt;
}

/* ==== registration ======================================================== */

void k_register_avx2(k_ops *o) {
  o->dot_f32 = a_dot_f32;
  o->sumsq_f32 = a_sumsq_f32;
  o->mul_scale = a_mul_scale;
  o->silu_mul = a_silu_mul;
  o->add = a_add;
  o->scale = a_scale;
  o->max_f32 = a_max_f32;
  o->exp_sub_sum = a_exp_sub_sum;
  o->f32_to_f16 = a_f32_to_f16;
  o->f16_to_f32 = a_f16_to_f32;
  o->dot_f16 = a_dot_f16;
  o->axpy_f16 = a_axpy_f16;
  o->attn_scores = a_attn_scores;
  o->attn_values = a_attn_values;

  o->quant[QT_Q8_0] = a_quant_q8_0;
  o->quant[QT_Q8_1] = a_quant_q8_1;
  o->quant[QT_Q8_K] = a_quant_q8_k;
  o->quant[QT_F16] = a_quant_f16;

  o->vec_dot[QT_F32] = vd_f32;
  o->vec_dot[QT_F16] = vd_f16;
  o->vec_dot[QT_BF16] = vd_bf16;
  o->vec_dot[QT_Q8_0] = vd_q8_0;
  o->vec_dot[QT_Q4_0] = vd_q4_0;
  o->vec_dot[QT_Q4_1] = vd_q4_1;
  o->vec_dot[QT_Q5_0] = vd_q5_0;
  o->vec_dot[QT_Q5_1] = vd_q5_1;
  o->vec_dot[QT_IQ4_NL] = vd_iq4_nl;
  o->vec_dot[QT_IQ4_XS] = vd_iq4_xs;
  o->vec_dot[QT_Q2_K] = vd_q2_k;
  o->vec_dot[QT_Q3_K] = vd_q3_k;
  o->vec_dot[QT_Q4_K] = vd_q4_k;
  o->vec_dot[QT_Q5_K] = vd_q5_k;
  o->vec_dot[QT_Q6_K] = vd_q6_k;

  set_tile(o, QT_Q8_0, tile_q8_0, 4, 2);
  /* Q8_0 has nothing to decode: its direct 4x2 tile is faster here */
  o->wprep[QT_Q4_0] = wprep_q4_0;
  o->wprep[QT_Q5_0] = wprep_q5_0;
  o->wprep[QT_IQ4_NL] = wprep_iq4_nl;
  o->xprep_q8_0 = xprep_q8_0;
  o->tile_p = tile_pp;
  o->tile_p_mr = APP_MR;
  o->tile_p_nt = APP_NT;
  set_tile(o, QT_Q4_0, tile_q4_0, 4, 2);
  set_tile(o, QT_Q5_0, tile_q5_0, 4, 2);
  set_tile(o, QT_IQ4_NL, tile_iq4_nl, 4, 2);
  set_tile(o, QT_Q4_K, tile_q4_k, 1, K_TILE_NT);
  set_tile(o, QT_Q5_K, tile_q5_k, 1, K_TILE_NT);
  set_tile(o, QT_Q6_K, tile_q6_k, 1, K_TILE_NT);
}
