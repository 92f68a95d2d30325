/* Tensor-type table and SCALAR reference routines: fp16/bf16 conversion,
 * dequantization (bit-exact with ggml), quantization (activation types
 * exactly like ggml's reference rounding; weight types with ggml-like
 * least-squares scale searches), and per-type dot products against the
 * activation type. This is the numerical specification SIMD kernels are
 * tested against: clarity over speed. Knows nothing about files or models. */
#include "engine/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <strings.h>

const int8_t q_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

/* ==== type table ======================================================== */

#define T(id, nm, bl, sz, vdt, sup, cq) [id] = {nm, bl, sz, vdt, sup, cq}
static const qtype_info TYPES[QT_COUNT] = {
    T(QT_F32, "f32", 1, 4, QT_F32, 1, 1),
    T(QT_F16, "f16", 1, 2, QT_F16, 1, 1),
    T(QT_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0), QT_Q8_0, 1, 1),
    T(QT_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1), QT_Q8_1, 1, 1),
    T(4, "q4_2", 0, 0, -1, 0, 0), /* removed from ggml */
    T(5, "q4_3", 0, 0, -1, 0, 0), /* removed from ggml */
    T(QT_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0), QT_Q8_0, 1, 1),
    T(QT_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1), QT_Q8_1, 1, 1),
    T(QT_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0), QT_Q8_0, 1, 1),
    T(QT_Q8_1, "q8_1", QK8_1, sizeof(block_q8_1), -1, 1, 1),
    T(QT_Q2_K, "q2_K", QK_K, sizeof(block_q2_K), QT_Q8_K, 1, 1),
    T(QT_Q3_K, "q3_K", QK_K, sizeof(block_q3_K), QT_Q8_K, 1, 1),
    T(QT_Q4_K, "q4_K", QK_K, sizeof(block_q4_K), QT_Q8_K, 1, 1),
    T(QT_Q5_K, "q5_K", QK_K, sizeof(block_q5_K), QT_Q8_K, 1, 1),
    T(QT_Q6_K, "q6_K", QK_K, sizeof(block_q6_K), QT_Q8_K, 1, 1),
    T(QT_Q8_K, "q8_K", QK_K, sizeof(block_q8_K), -1, 1, 1),
    T(QT_IQ2_XXS, "iq2_xxs", QK_K, 66, -1, 0, 0),
    T(QT_IQ2_XS, "iq2_xs", QK_K, 74, -1, 0, 0),
    T(QT_IQ3_XXS, "iq3_xxs", QK_K, 98, -1, 0, 0),
    T(QT_IQ1_S, "iq1_s", QK_K, 50, -1, 0, 0),
    T(QT_IQ4_NL, "iq4_nl", QK4_NL, sizeof(block_iq4_nl), QT_Q8_0, 1, 1),
    T(QT_IQ3_S, "iq3_s", QK_K, 110, -1, 0, 0),
    T(QT_IQ2_S, "iq2_s", QK_K, 82, -1, 0, 0),
    T(QT_IQ4_XS, "iq4_xs", QK_K, sizeof(block_iq4_xs), QT_Q8_K, 1, 1),
    T(QT_I8, "i8", 1, 1, -1, 0, 0),
    T(QT_I16, "i16", 1, 2, -1, 0, 0),
    T(QT_I32, "i32", 1, 4, -1, 0, 0),
    T(QT_I64, "i64", 1, 8, -1, 0, 0),
    T(QT_F64, "f64", 1, 8, -1, 0, 0),
    T(QT_IQ1_M, "iq1_m", QK_K, 56, -1, 0, 0),
    T(QT_BF16, "bf16", 1, 2, QT_BF16, 1, 1),
    T(31, "q4_0_4_4", 0, 0, -1, 0, 0), /* removed from ggml */
    T(32, "q4_0_4_8", 0, 0, -1, 0, 0),
    T(33, "q4_0_8_8", 0, 0, -1, 0, 0),
    T(QT_TQ1_0, "tq1_0", QK_K, 54, -1, 0, 0),
    T(QT_TQ2_0, "tq2_0", QK_K, 66, -1, 0, 0),
    T(36, "iq4_nl_4_4", 0, 0, -1, 0, 0), /* removed from ggml */
    T(37, "iq4_nl_4_8", 0, 0, -1, 0, 0),
    T(38, "iq4_nl_8_8", 0, 0, -1, 0, 0),
    T(QT_MXFP4, "mxfp4", 32, 17, -1, 0, 0),
};
#undef T

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K layout");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl layout");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs layout");

const qtype_info *qtype(int type) {
  if (type < 0 || type >= QT_COUNT || !TYPES[type].name)
    return NULL;
  return &TYPES[type];
}

const char *qtype_name(int type) {
  const qtype_info *t = qtype(type);
  return t ? t->name : "unknown";
}

int qtype_from_name(const char *name) {
  for (int i = 0; i < QT_COUNT; i++)
    if (TYPES[i].name && TYPES[i].blck && strcasecmp(TYPES[i].name, name) == 0)
      return i;
  return -1;
}

size_t qtype_row_size(int type, int64_t n) {
  const qtype_info *t = qtype(type);
  if (!t || t->blck <= 0 || n < 0 || n % t->blck)
    return 0;
  return (size_t)(n / t->blck) * t->type_size;
}

/* ==== fp16 / bf16 ======================================================= */

float q_fp16_to_fp32(q_half h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
  float f;
  if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
    f = (float)m * 0x1p-24f;
    return sign ? -f : f;
  }
  if (e == 31)
    bits = sign | 0x7f800000u | (m << 13);
  else
    bits = sign | ((e + 112) << 23) | (m << 13);
  memcpy(&f, &bits, sizeof f);
  return f;
}

q_half q_fp32_to_fp16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7fffffffu;
  if (a > 0x7f800000u) /* NaN: quiet, keep the top payload bits */
    return (q_half)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
  if (a >= 0x47800000u) /* >= 65536 (or inf): infinity */
    return (q_half)(sign | 0x7c00);
  if (a >= 0x38800000u) { /* normal half: rebias, round to nearest even */
    uint32_t m = a - 0x38000000u;
    m += 0xfff + ((m >> 13) & 1);
    return (q_half)(sign | (m >> 13)); /* carry may give inf: correct */
  }
  if (a < 0x33000000u) /* below half the smallest subnormal */
    return (q_half)sign;
  /* subnormal half: units of 2^-24 */
  uint32_t e = a >> 23, mant = (a & 0x7fffff) | 0x800000;
  int shift = 126 - (int)e; /* 14..24 */
  uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1)))
    q++;
  return (q_half)(sign | q);
}

float q_bf16_to_fp32(q_bf16 h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

q_bf16 q_fp32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (q_bf16)((u >> 16) | 64);
  return (q_bf16)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

#define H2F(h) q_fp16_to_fp32(h)
#define F2H(f) q_fp32_to_fp16(f)

/* Round half to even, like ggml's nearest_int (valid for |v| < 2^22). */
static inline int nearest_int(float v) {
  return (int)lrintf(v);
}

static inline int clampi(int v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* ==== dequantization (bit-exact with ggml) ============================== */

static void deq_q4_0(const block_q4_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK4_0) {
    const float d = H2F(x[i].d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

static void deq_q4_1(const block_q4_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK4_1) {
    const float d = H2F(x[i].d), m = H2F(x[i].m);
    for (int j = 0; j < QK4_1 / 2; j++) {
      y[j] = (x[i].qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
    }
  }
}

static void deq_q5_0(const block_q5_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK5_0) {
    const float d = H2F(x[i].d);
    uint32_t qh;
    memcpy(&qh, x[i].qh, sizeof qh);
    for (int j = 0; j < QK5_0 / 2; j++) {
      const uint8_t h0 = ((qh >> j) << 4) & 0x10;
      const uint8_t h1 = (qh >> (j + 12)) & 0x10;
      y[j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
      y[j + QK5_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

static void deq_q5_1(const block_q5_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK5_1) {
    const float d = H2F(x[i].d), m = H2F(x[i].m);
    uint32_t qh;
    memcpy(&qh, x[i].qh, sizeof qh);
    for (int j = 0; j < QK5_1 / 2; j++) {
      const uint8_t h0 = ((qh >> j) << 4) & 0x10;
      const uint8_t h1 = (qh >> (j + 12)) & 0x10;
      y[j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
      y[j + QK5_1 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

static void deq_q8_0(const block_q8_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK8_0) {
    const float d = H2F(x[i].d);
    for (int j = 0; j < QK8_0; j++)
      y[j] = x[i].qs[j] * d;
  }
}

static void deq_q8_1(const block_q8_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK8_1) {
    const float d = H2F(x[i].d);
    for (int j = 0; j < QK8_1; j++)
      y[j] = x[i].qs[j] * d;
  }
}

static void deq_q2_K(const block_q2_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = H2F(x[i].d), mn = H2F(x[i].dmin);
    const uint8_t *q = x[i].qs;
    int is = 0;
    for (int n = 0; n < QK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; half++) {
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
          for (int l = 0; l < 16; l++)
            *y++ = dl * (int8_t)((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

/* The 16 6-bit signed scales of a Q3_K block (offset by 32). */
static void q3k_scales(const uint8_t s[12], int8_t out[16]) {
  for (int j = 0; j < 16; j++) {
    int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = (int8_t)((lo | (hi << 4)) - 32);
  }
}

static void deq_q3_K(const block_q3_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d_all = H2F(x[i].d);
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    const uint8_t *q = x[i].qs, *hm = x[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < QK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int half = 0; half < 2; half++) {
          const float dl = d_all * sc[is++];
          for (int l = 16 * half; l < 16 * half + 16; l++)
            *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        }
      }
    }
  }
}

/* Scale and min j (0..7) of a Q4_K/Q5_K block's packed 6-bit pairs. */
static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *d,
                                uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

static void deq_q4_K(const block_q4_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = H2F(x[i].d), mn = H2F(x[i].dmin);
    const uint8_t *q = x[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      k4_scale_min(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = mn * m;
      k4_scale_min(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = mn * m;
      for (int l = 0; l < 32; l++)
        *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; l++)
        *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

static void deq_q5_K(const block_q5_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = H2F(x[i].d), mn = H2F(x[i].dmin);
    const uint8_t *ql = x[i].qs, *qh = x[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      k4_scale_min(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = mn * m;
      k4_scale_min(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = mn * m;
      for (int l = 0; l < 32; l++)
        *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; l++)
        *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

static void deq_q6_K(const block_q6_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = H2F(x[i].d);
    const uint8_t *ql = x[i].ql, *qh = x[i].qh;
    const int8_t *sc = x[i].scales;
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        const int q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 =
            (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 =
            (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

static void deq_q8_K(const block_q8_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    for (int j = 0; j < QK_K; j++)
      *y++ = x[i].d * x[i].qs[j];
}

static void deq_iq4_nl(const block_iq4_nl *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK4_NL) {
    const float d = H2F(x[i].d);
    for (int j = 0; j < QK4_NL / 2; j++) {
      y[j] = d * q_iq4nl_values[x[i].qs[j] & 0xF];
      y[j + QK4_NL / 2] = d * q_iq4nl_values[x[i].qs[j] >> 4];
    }
  }
}

/* 6-bit scale (offset by 32) of sub-block ib of an IQ4_XS block. */
static inline int iq4xs_ls(const block_iq4_xs *x, int ib) {
  return ((x->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) |
         (((x->scales_h >> 2 * ib) & 3) << 4);
}

static void deq_iq4_xs(const block_iq4_xs *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = H2F(x[i].d);
    const uint8_t *qs = x[i].qs;
    for (int ib = 0; ib < QK_K / 32; ib++, y += 32, qs += 16) {
      const float dl = d * (iq4xs_ls(&x[i], ib) - 32);
      for (int j = 0; j < 16; j++) {
        y[j] = dl * q_iq4nl_values[qs[j] & 0xF];
        y[j + 16] = dl * q_iq4nl_values[qs[j] >> 4];
      }
    }
  }
}

void q_dequant_row(int type, const void *x, float *y, int64_t n) {
  const qtype_info *t = qtype(type);
  if (!t || !t->supported || n % t->blck)
    return;
  const int64_t nb = n / t->blck;
  switch (type) {
  case QT_F32:
    memcpy(y, x, (size_t)n * sizeof(float));
    break;
  case QT_F16:
    for (int64_t i = 0; i < n; i++)
      y[i] = H2F(((const q_half *)x)[i]);
    break;
  case QT_BF16:
    for (int64_t i = 0; i < n; i++)
      y[i] = q_bf16_to_fp32(((const q_bf16 *)x)[i]);
    break;
  case QT_Q4_0:
    deq_q4_0(x, y, nb);
    break;
  case QT_Q4_1:
    deq_q4_1(x, y, nb);
    break;
  case QT_Q5_0:
    deq_q5_0(x, y, nb);
    break;
  case QT_Q5_1:
    deq_q5_1(x, y, nb);
    break;
  case QT_Q8_0:
    deq_q8_0(x, y, nb);
    break;
  case QT_Q8_1:
    deq_q8_1(x, y, nb);
    break;
  case QT_Q2_K:
    deq_q2_K(x, y, nb);
    break;
  case QT_Q3_K:
    deq_q3_K(x, y, nb);
    break;
  case QT_Q4_K:
    deq_q4_K(x, y, nb);
    break;
  case QT_Q5_K:
    deq_q5_K(x, y, nb);
    break;
  case QT_Q6_K:
    deq_q6_K(x, y, nb);
    break;
  case QT_Q8_K:
    deq_q8_K(x, y, nb);
    break;
  case QT_IQ4_NL:
    deq_iq4_nl(x, y, nb);
    break;
  case QT_IQ4_XS:
    deq_iq4_xs(x, y, nb);
    break;
  default:
    break;
  }
}

/* ==== quantization: simple block types (ggml reference rounding) ======== */

/* Value of largest magnitude (keeping its sign) and that magnitude. */
static float absmax_signed(const float *x, int n, float *amax_out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; j++) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  }
  *amax_out = amax;
  return max;
}

static void qnt_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK4_0) {
    float amax;
    const float max = absmax_signed(x, QK4_0, &amax);
    const float d = max / -8, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      const int a = clampi((int8_t)(x[j] * id + 8.5f), 0, 15);
      const int b = clampi((int8_t)(x[j + QK4_0 / 2] * id + 8.5f), 0, 15);
      y[i].qs[j] = (uint8_t)(a | (b << 4));
    }
  }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
  *mn = FLT_MAX;
  *mx = -FLT_MAX;
  for (int j = 0; j < n; j++) {
    if (x[j] < *mn)
      *mn = x[j];
    if (x[j] > *mx)
      *mx = x[j];
  }
}

static void qnt_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK4_1) {
    float mn, mx;
    minmax(x, QK4_1, &mn, &mx);
    const float d = (mx - mn) / 15, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    y[i].m = F2H(mn);
    for (int j = 0; j < QK4_1 / 2; j++) {
      const int a = clampi((int8_t)((x[j] - mn) * id + 0.5f), 0, 15);
      const int b =
          clampi((int8_t)((x[j + QK4_1 / 2] - mn) * id + 0.5f), 0, 15);
      y[i].qs[j] = (uint8_t)(a | (b << 4));
    }
  }
}

static void qnt_q5_0(const float *x, block_q5_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK5_0) {
    float amax;
    const float max = absmax_signed(x, QK5_0, &amax);
    const float d = max / -16, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
      const int a = clampi((int8_t)(x[j] * id + 16.5f), 0, 31);
      const int b = clampi((int8_t)(x[j + QK5_0 / 2] * id + 16.5f), 0, 31);
      y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
      qh |= ((uint32_t)(a & 0x10) >> 4) << j;
      qh |= ((uint32_t)(b & 0x10) >> 4) << (j + QK5_0 / 2);
    }
    memcpy(y[i].qh, &qh, sizeof qh);
  }
}

static void qnt_q5_1(const float *x, block_q5_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK5_1) {
    float mn, mx;
    minmax(x, QK5_1, &mn, &mx);
    const float d = (mx - mn) / 31, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    y[i].m = F2H(mn);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; j++) {
      const int a = clampi((uint8_t)((x[j] - mn) * id + 0.5f), 0, 31);
      const int b =
          clampi((uint8_t)((x[j + QK5_1 / 2] - mn) * id + 0.5f), 0, 31);
      y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
      qh |= ((uint32_t)(a & 0x10) >> 4) << j;
      qh |= ((uint32_t)(b & 0x10) >> 4) << (j + QK5_1 / 2);
    }
    memcpy(y[i].qh, &qh, sizeof qh);
  }
}

static void qnt_q8_0(const float *x, block_q8_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK8_0) {
    float amax;
    absmax_signed(x, QK8_0, &amax);
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    for (int j = 0; j < QK8_0; j++)
      y[i].qs[j] = (int8_t)roundf(x[j] * id);
  }
}

static void qnt_q8_1(const float *x, block_q8_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK8_1) {
    float amax;
    absmax_signed(x, QK8_1, &amax);
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    y[i].d = F2H(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; j++) {
      y[i].qs[j] = (int8_t)roundf(x[j] * id);
      sum += y[i].qs[j];
    }
    y[i].s = F2H(sum * d);
  }
}

static void qnt_q8_K(const float *x, block_q8_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float amax;
    const float max = absmax_signed(x, QK_K, &amax);
    memset(y[i].bsums, 0, sizeof y[i].bsums);
    if (!amax) {
      y[i].d = 0;
      memset(y[i].qs, 0, sizeof y[i].qs);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      const int v = nearest_int(iscale * x[j]);
      y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
      y[i].bsums[j / 16] = (int16_t)(y[i].bsums[j / 16] + y[i].qs[j]);
    }
    y[i].d = 1 / iscale;
  }
}

/* ==== quantization: scale searches for K-quants and IQ4 =============== */

/* Asymmetric fit of n values to levels 0..nmax: x ~ scale * L - mn, with
 * mn >= 0 (min clamped to <= 0 as in ggml). Tries a few inverse scales
 * around (nmax / range), refits scale and min by weighted least squares
 * each time, keeps the lowest weighted error. Returns scale; *mn_out set. */
static float fit_asym(int n, int nmax, const float *x, const float *w,
                      uint8_t *L, float *mn_out) {
  float mn, mx;
  minmax(x, n, &mn, &mx);
  if (mn > 0)
    mn = 0;
  if (mx <= mn) {
    memset(L, 0, (size_t)n);
    *mn_out = -mn;
    return 0.f;
  }
  float best_scale = (mx - mn) / nmax, best_min = mn, best_err = FLT_MAX;
  uint8_t Laux[QK_K];
  for (int step = -1; step <= 6; step++) {
    float iscale =
        step < 0 ? nmax / (mx - mn) : (-1.0f + 0.25f * step + nmax) / (mx - mn);
    float sw = 0, sl = 0, sl2 = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      Laux[i] = (uint8_t)l;
      sw += w[i];
      sl += w[i] * l;
      sl2 += w[i] * l * l;
      sx += w[i] * x[i];
      slx += w[i] * l * x[i];
    }
    const float det = sw * sl2 - sl * sl;
    float scale = best_scale, m = best_min;
    if (step >= 0 && det > 0) {
      scale = (sw * slx - sx * sl) / det;
      m = (sl2 * sx - sl * slx) / det;
      if (m > 0) { /* min must stay <= 0: refit scale alone */
        m = 0;
        scale = sl2 > 0 ? slx / sl2 : 0;
      }
    } else if (step >= 0) {
      continue;
    } else {
      scale = 1.0f / iscale;
      m = mn;
    }
    float err = 0;
    for (int i = 0; i < n; i++) {
      const float diff = scale * Laux[i] + m - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = m;
      memcpy(L, Laux, (size_t)n);
    }
  }
  *mn_out = -best_min;
  return best_scale;
}

/* Symmetric fit of n values to levels -nmax..nmax-1: x ~ scale * L.
 * Tries inverse scales around -nmax / max (max = value of largest
 * magnitude), refits the scale by weighted least squares, keeps the best. */
static float fit_sym(int n, int nmax, const float *x, const float *w) {
  float amax;
  const float max = absmax_signed(x, n, &amax);
  if (amax < 1e-30f)
    return 0.f;
  float best = 0, best_scale = -max / nmax;
  for (int is = -9; is <= 9; is++) {
    const float iscale = -(nmax + 0.1f * is) / max;
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      slx += w[i] * x[i] * l;
      sl2 += w[i] * l * l;
    }
    if (sl2 > 0 && slx * slx > best * sl2) {
      best = slx * slx / sl2;
      best_scale = slx / sl2;
    }
  }
  return best_scale;
}

/* Importance weights: |x| plus a floor tied to the block's RMS, so large
 * values are reproduced more precisely (as ggml's reference does). */
static void weights_for(const float *x, int n, float *w) {
  float s2 = 0;
  for (int i = 0; i < n; i++)
    s2 += x[i] * x[i];
  const float floor = sqrtf(s2 / n);
  for (int i = 0; i < n; i++)
    w[i] = floor + fabsf(x[i]);
}

/* Quantizes up to 16 per-group float scales to unsigned `bits` integers
 * of a common fp16 super-scale; returns the stored super-scale. */
static q_half pack_scales_u(const float *s, int ng, int qmax, uint8_t *q) {
  float mx = 0;
  for (int j = 0; j < ng; j++)
    if (s[j] > mx)
      mx = s[j];
  if (mx <= 0) {
    memset(q, 0, (size_t)ng);
    return F2H(0.f);
  }
  const float iscale = qmax / mx;
  for (int j = 0; j < ng; j++)
    q[j] = (uint8_t)clampi(nearest_int(iscale * s[j]), 0, qmax);
  return F2H(mx / qmax);
}

static void qnt_q2_K(const float *x, block_q2_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    uint8_t L[QK_K], Ls[16], Lm[16];
    float sc[16], mins[16], w[16];
    for (int j = 0; j < 16; j++) {
      for (int l = 0; l < 16; l++)
        w[l] = fabsf(x[16 * j + l]);
      sc[j] = fit_asym(16, 3, x + 16 * j, w, L + 16 * j, &mins[j]);
    }
    y[i].d = pack_scales_u(sc, 16, 15, Ls);
    y[i].dmin = pack_scales_u(mins, 16, 15, Lm);
    const float d = H2F(y[i].d), dmin = H2F(y[i].dmin);
    for (int j = 0; j < 16; j++) {
      y[i].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
      const float dl = d * Ls[j], ml = dmin * Lm[j];
      for (int l = 0; l < 16; l++)
        L[16 * j + l] =
            dl ? (uint8_t)clampi(nearest_int((x[16 * j + l] + ml) / dl), 0, 3)
               : 0;
    }
    for (int j = 0; j < QK_K; j += 128)
      for (int l = 0; l < 32; l++)
        y[i].qs[j / 4 + l] =
            (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                      (L[j + l + 96] << 6));
  }
}

static void qnt_q3_K(const float *x, block_q3_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float sc[16], w[QK_K], amax = 0, max = 0;
    int8_t L[QK_K];
    weights_for(x, QK_K, w);
    for (int j = 0; j < 16; j++) {
      sc[j] = fit_sym(16, 4, x + 16 * j, w + 16 * j);
      if (fabsf(sc[j]) > amax) {
        amax = fabsf(sc[j]);
        max = sc[j];
      }
    }
    memset(y[i].scales, 0, sizeof y[i].scales);
    int Ls[16] = {0};
    if (amax > 0) {
      const float iscale = -32.f / max;
      for (int j = 0; j < 16; j++)
        Ls[j] = clampi(nearest_int(iscale * sc[j]), -32, 31);
      y[i].d = F2H(1 / iscale);
    } else {
      y[i].d = F2H(0.f);
    }
    for (int j = 0; j < 16; j++) {
      const int l = Ls[j] + 32;
      if (j < 8)
        y[i].scales[j] = (uint8_t)(l & 0xF);
      else
        y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
      y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    const float d = H2F(y[i].d);
    for (int j = 0; j < 16; j++) {
      const float dl = d * Ls[j];
      for (int l = 0; l < 16; l++)
        L[16 * j + l] =
            (int8_t)(dl ? clampi(nearest_int(x[16 * j + l] / dl), -4, 3) + 4
                        : 4);
    }
    memset(y[i].hmask, 0, sizeof y[i].hmask);
    for (int j = 0; j < QK_K; j++) {
      if (L[j] > 3) {
        y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
        L[j] -= 4;
      }
    }
    for (int j = 0; j < QK_K; j += 128)
      for (int l = 0; l < 32; l++)
        y[i].qs[j / 4 + l] =
            (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                      (L[j + l + 96] << 6));
  }
}

/* Packs 8 6-bit scales and 8 6-bit mins the Q4_K/Q5_K way. */
static void k4_pack(const uint8_t ls[8], const uint8_t lm[8], uint8_t s[12]) {
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      s[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fits eight 32-element
 * sub-blocks, quantizes scales/mins to 6 bits, and requantizes L. */
static void k45_block(const float *x, int nmax, q_half *d_out, q_half *dmin_out,
                      uint8_t scales[12], uint8_t L[QK_K]) {
  float sc[8], mins[8], w[QK_K];
  uint8_t ls[8], lm[8];
  weights_for(x, QK_K, w);
  for (int j = 0; j < 8; j++)
    sc[j] = fit_asym(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j]);
  *d_out = pack_scales_u(sc, 8, 63, ls);
  *dmin_out = pack_scales_u(mins, 8, 63, lm);
  k4_pack(ls, lm, scales);
  const float d = H2F(*d_out), dmin = H2F(*dmin_out);
  for (int j = 0; j < 8; j++) {
    uint8_t s, m;
    k4_scale_min(j, scales, &s, &m);
    const float dl = d * s, ml = dmin * m;
    for (int l = 0; l < 32; l++)
      L[32 * j + l] =
          dl ? (uint8_t)clampi(nearest_int((x[32 * j + l] + ml) / dl), 0, nmax)
             : 0;
  }
}

static void qnt_q4_K(const float *x, block_q4_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    uint8_t L[QK_K];
    memset(y[i].scales, 0, sizeof y[i].scales);
    k45_block(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    uint8_t *q = y[i].qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; l++)
        q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
  }
}

static void qnt_q5_K(const float *x, block_q5_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    uint8_t L[QK_K];
    memset(y[i].scales, 0, sizeof y[i].scales);
    k45_block(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    memset(y[i].qh, 0, sizeof y[i].qh);
    uint8_t *ql = y[i].qs, m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; j++) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          y[i].qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          y[i].qh[j] |= m2;
        }
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
    }
  }
}

static void qnt_q6_K(const float *x, block_q6_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float sc[16], w[QK_K], amax = 0, max = 0;
    uint8_t L[QK_K];
    weights_for(x, QK_K, w);
    for (int j = 0; j < 16; j++) {
      sc[j] = fit_sym(16, 32, x + 16 * j, w + 16 * j);
      if (fabsf(sc[j]) > amax) {
        amax = fabsf(sc[j]);
        max = sc[j];
      }
    }
    if (amax <= 0) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    const float iscale = -128.f / max;
    y[i].d = F2H(1 / iscale);
    for (int j = 0; j < 16; j++)
      y[i].scales[j] = (int8_t)clampi(nearest_int(iscale * sc[j]), -128, 127);
    const float d = H2F(y[i].d);
    for (int j = 0; j < 16; j++) {
      const float dl = d * y[i].scales[j];
      for (int l = 0; l < 16; l++)
        L[16 * j + l] =
            (uint8_t)(dl ? clampi(nearest_int(x[16 * j + l] / dl), -32, 31) + 32
                         : 32);
    }
    uint8_t *ql = y[i].ql, *qh = y[i].qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; l++) {
        const uint8_t a = L[j + l], b = L[j + l + 32], c = L[j + l + 64],
                      e = L[j + l + 96];
        ql[l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
        ql[l + 32] = (uint8_t)((b & 0xF) | ((e & 0xF) << 4));
        qh[l] = (uint8_t)((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) |
                          ((e >> 4) << 6));
      }
    }
  }
}

/* Nearest IQ4 level by lookup: every midpoint between adjacent levels is
 * a multiple of 0.5, so within each half-unit bin of [-128, 128) the
 * nearest level is constant. Built per call (512 steps), no global state. */
typedef struct {
  uint8_t bin[512];
} iq4_lut;

static void iq4_lut_init(iq4_lut *t) {
  int k = 0;
  for (int b = 0; b < 512; b++) {
    const float c = (b + 0.5f) * 0.5f - 128.0f; /* bin centre */
    while (k < 15 &&
           fabsf(c - q_iq4nl_values[k + 1]) < fabsf(c - q_iq4nl_values[k]))
      k++;
    t->bin[b] = (uint8_t)k;
  }
}

static inline int iq4_best(const iq4_lut *t, float v) {
  if (!(v >= -128.0f))
    return 0; /* also NaN */
  if (v >= 127.5f)
    return 15;
  return t->bin[(int)((v + 128.0f) * 2.0f)];
}

/* Fits n values to d * q_iq4nl_values[L]: tries inverse scales around
 * -127/max, refits d by weighted least squares, keeps the best. */
static float fit_iq4(const iq4_lut *lut, int n, const float *x, const float *w,
                     uint8_t *L) {
  float amax;
  const float max = absmax_signed(x, n, &amax);
  memset(L, 8, (size_t)n); /* level 1: nearest to zero */
  if (amax < 1e-30f)
    return 0.f;
  float best = -1, best_d = max / q_iq4nl_values[0];
  uint8_t La[32];
  for (int t = -7; t <= 7; t++) {
    const float id = (t + q_iq4nl_values[0]) / max;
    float sqx = 0, sq2 = 0;
    for (int i = 0; i < n; i++) {
      La[i] = (uint8_t)iq4_best(lut, id * x[i]);
      const float q = q_iq4nl_values[La[i]];
      sqx += w[i] * q * x[i];
      sq2 += w[i] * q * q;
    }
    if (sq2 > 0 && sqx * sqx > best * sq2) {
      best = sqx * sqx / sq2;
      best_d = sqx / sq2;
      memcpy(L, La, (size_t)n);
    }
  }
  return best_d;
}

static void qnt_iq4_nl(const float *x, block_iq4_nl *y, int64_t nb) {
  iq4_lut lut;
  iq4_lut_init(&lut);
  for (int64_t i = 0; i < nb; i++, x += QK4_NL) {
    float w[QK4_NL];
    uint8_t L[QK4_NL];
    weights_for(x, QK4_NL, w);
    const float d = fit_iq4(&lut, QK4_NL, x, w, L);
    y[i].d = F2H(d);
    /* requantize against the stored (fp16) scale */
    const float dd = H2F(y[i].d), id = dd ? 1 / dd : 0;
    for (int j = 0; j < QK4_NL; j++)
      L[j] = (uint8_t)iq4_best(&lut, id * x[j]);
    for (int j = 0; j < QK4_NL / 2; j++)
      y[i].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
  }
}

static void qnt_iq4_xs(const float *x, block_iq4_xs *y, int64_t nb) {
  iq4_lut lut;
  iq4_lut_init(&lut);
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float w[QK_K], sc[8], amax = 0, max = 0;
    uint8_t L[QK_K];
    weights_for(x, QK_K, w);
    for (int ib = 0; ib < 8; ib++) {
      sc[ib] = fit_iq4(&lut, 32, x + 32 * ib, w + 32 * ib, L + 32 * ib);
      if (fabsf(sc[ib]) > amax) {
        amax = fabsf(sc[ib]);
        max = sc[ib];
      }
    }
    memset(y[i].scales_l, 0, sizeof y[i].scales_l);
    y[i].scales_h = 0;
    const float d = amax > 0 ? -max / 32 : 0, id = d ? 1 / d : 0;
    y[i].d = F2H(d);
    const float dh = H2F(y[i].d);
    for (int ib = 0; ib < 8; ib++) {
      const int l = clampi(nearest_int(id * sc[ib]), -32, 31) + 32;
      y[i].scales_l[ib / 2] |= (uint8_t)((l & 0xF) << (4 * (ib % 2)));
      y[i].scales_h |= (uint16_t)((l >> 4) << (2 * ib));
      const float dl = dh * (l - 32), idl = dl ? 1 / dl : 0;
      uint8_t *qs = y[i].qs + 16 * ib;
      for (int j = 0; j < 32; j++)
        L[32 * ib + j] = (uint8_t)iq4_best(&lut, idl * x[32 * ib + j]);
      for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(L[32 * ib + j] | (L[32 * ib + j + 16] << 4));
    }
  }
}

int q_quant_row(int type, const float *x, void *y, int64_t n) {
  const qtype_info *t = qtype(type);
  if (!t || !t->can_quantize || n % t->blck)
    return -1;
  const int64_t nb = n / t->blck;
  switch (type) {
  case QT_F32:
    memcpy(y, x, (size_t)n * sizeof(float));
    break;
  case QT_F16:
    for (int64_t i = 0; i < n; i++)
      ((q_half *)y)[i] = F2H(x[i]);
    break;
  case QT_BF16:
    for (int64_t i = 0; i < n; i++)
      ((q_bf16 *)y)[i] = q_fp32_to_bf16(x[i]);
    break;
  case QT_Q4_0:
    qnt_q4_0(x, y, nb);
    break;
  case QT_Q4_1:
    qnt_q4_1(x, y, nb);
    break;
  case QT_Q5_0:
    qnt_q5_0(x, y, nb);
    break;
  case QT_Q5_1:
    qnt_q5_1(x, y, nb);
    break;
  case QT_Q8_0:
    qnt_q8_0(x, y, nb);
    break;
  case QT_Q8_1:
    qnt_q8_1(x, y, nb);
    break;
  case QT_Q2_K:
    qnt_q2_K(x, y, nb);
    break;
  case QT_Q3_K:
    qnt_q3_K(x, y, nb);
    break;
  case QT_Q4_K:
    qnt_q4_K(x, y, nb);
    break;
  case QT_Q5_K:
    qnt_q5_K(x, y, nb);
    break;
  case QT_Q6_K:
    qnt_q6_K(x, y, nb);
    break;
  case QT_Q8_K:
    qnt_q8_K(x, y, nb);
    break;
  case QT_IQ4_NL:
    qnt_iq4_nl(x, y, nb);
    break;
  case QT_IQ4_XS:
    qnt_iq4_xs(x, y, nb);
    break;
  default:
    return -1;
  }
  return 0;
}

/* ==== reference dot products =========================================== */

static float dot_q4_0(const block_q4_0 *x, const block_q8_0 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int sumi = 0;
    for (int j = 0; j < QK4_0 / 2; j++) {
      sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
    }
    s += sumi * H2F(x[i].d) * H2F(y[i].d);
  }
  return s;
}

static float dot_q4_1(const block_q4_1 *x, const block_q8_1 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int sumi = 0;
    for (int j = 0; j < QK4_1 / 2; j++) {
      sumi += (x[i].qs[j] & 0xF) * y[i].qs[j];
      sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
    }
    s += (H2F(x[i].d) * H2F(y[i].d)) * sumi + H2F(x[i].m) * H2F(y[i].s);
  }
  return s;
}

/* The 5-bit values j and j+16 of a Q5_0/Q5_1 block (unsigned 0..31). */
static inline void q5_pair(const uint8_t *qs, uint32_t qh, int j, int *a,
                           int *b) {
  *a = (qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10);
  *b = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
}

static float dot_q5_0(const block_q5_0 *x, const block_q8_0 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, sizeof qh);
    int sumi = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
      int a, b;
      q5_pair(x[i].qs, qh, j, &a, &b);
      sumi += (a - 16) * y[i].qs[j] + (b - 16) * y[i].qs[j + QK5_0 / 2];
    }
    s += (H2F(x[i].d) * H2F(y[i].d)) * sumi;
  }
  return s;
}

static float dot_q5_1(const block_q5_1 *x, const block_q8_1 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, sizeof qh);
    int sumi = 0;
    for (int j = 0; j < QK5_1 / 2; j++) {
      int a, b;
      q5_pair(x[i].qs, qh, j, &a, &b);
      sumi += a * y[i].qs[j] + b * y[i].qs[j + QK5_1 / 2];
    }
    s += (H2F(x[i].d) * H2F(y[i].d)) * sumi + H2F(x[i].m) * H2F(y[i].s);
  }
  return s;
}

static float dot_q8_0(const block_q8_0 *x, const block_q8_0 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; j++)
      sumi += x[i].qs[j] * y[i].qs[j];
    s += sumi * (H2F(x[i].d) * H2F(y[i].d));
  }
  return s;
}

static float dot_iq4_nl(const block_iq4_nl *x, const block_q8_0 *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int sumi = 0;
    for (int j = 0; j < QK4_NL / 2; j++) {
      sumi += y[i].qs[j] * q_iq4nl_values[x[i].qs[j] & 0xF];
      sumi += y[i].qs[j + QK4_NL / 2] * q_iq4nl_values[x[i].qs[j] >> 4];
    }
    s += H2F(x[i].d) * H2F(y[i].d) * sumi;
  }
  return s;
}

static float dot_q2_K(const block_q2_K *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int summs = 0, isum = 0, is = 0;
    for (int j = 0; j < 16; j++)
      summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
    const int8_t *q8 = y[i].qs;
    const uint8_t *q2 = x[i].qs;
    for (int n = 0; n < QK_K; n += 128, q2 += 32) {
      for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
        for (int half = 0; half < 2; half++) {
          const int d = x[i].scales[is++] & 0xF;
          int suml = 0;
          for (int l = 16 * half; l < 16 * half + 16; l++)
            suml += q8[l] * ((q2[l] >> shift) & 3);
          isum += d * suml;
        }
      }
    }
    const float dall = y[i].d * H2F(x[i].d), dmin = y[i].d * H2F(x[i].dmin);
    s += dall * isum - dmin * summs;
  }
  return s;
}

static float dot_q3_K(const block_q3_K *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    const uint8_t *q = x[i].qs, *hm = x[i].hmask;
    const int8_t *q8 = y[i].qs;
    uint8_t m = 1;
    int is = 0, isum = 0;
    for (int n = 0; n < QK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int half = 0; half < 2; half++, q8 += 16) {
          int suml = 0;
          for (int l = 0; l < 16; l++) {
            const int k = 16 * half + l;
            suml += q8[l] * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
          }
          isum += sc[is++] * suml;
        }
      }
    }
    s += H2F(x[i].d) * y[i].d * isum;
  }
  return s;
}

static float dot_q4_K(const block_q4_K *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    const uint8_t *q = x[i].qs;
    const int8_t *q8 = y[i].qs;
    int isum = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      k4_scale_min(j, x[i].scales, &sc, &m);
      summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
      int suml = 0;
      for (int l = 0; l < 32; l++)
        suml += q8[32 * j + l] * ((j & 1) ? (q[32 * (j / 2) + l] >> 4)
                                          : (q[32 * (j / 2) + l] & 0xF));
      isum += sc * suml;
    }
    s += H2F(x[i].d) * y[i].d * isum - H2F(x[i].dmin) * y[i].d * summ;
  }
  return s;
}

static float dot_q5_K(const block_q5_K *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    const uint8_t *q = x[i].qs, *qh = x[i].qh;
    const int8_t *q8 = y[i].qs;
    int isum = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      k4_scale_min(j, x[i].scales, &sc, &m);
      summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
      int suml = 0;
      for (int l = 0; l < 32; l++) {
        const uint8_t b = q[32 * (j / 2) + l];
        const int lo = (j & 1) ? (b >> 4) : (b & 0xF);
        const int hi = (qh[l] >> j) & 1;
        suml += q8[32 * j + l] * (lo | (hi << 4));
      }
      isum += sc * suml;
    }
    s += H2F(x[i].d) * y[i].d * isum - H2F(x[i].dmin) * y[i].d * summ;
  }
  return s;
}

static float dot_q6_K(const block_q6_K *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    int8_t v[QK_K];
    const uint8_t *ql = x[i].ql, *qh = x[i].qh;
    for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; l++) {
        v[n + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        v[n + l + 32] =
            (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        v[n + l + 64] =
            (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        v[n + l + 96] =
            (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      int suml = 0;
      for (int l = 0; l < 16; l++)
        suml += v[16 * j + l] * y[i].qs[16 * j + l];
      isum += x[i].scales[j] * suml;
    }
    s += H2F(x[i].d) * y[i].d * isum;
  }
  return s;
}

static float dot_iq4_xs(const block_iq4_xs *x, const block_q8_K *y, int nb) {
  float s = 0;
  for (int i = 0; i < nb; i++) {
    const float d4d8 = H2F(x[i].d) * y[i].d;
    const uint8_t *qs = x[i].qs;
    const int8_t *q8 = y[i].qs;
    for (int ib = 0; ib < QK_K / 32; ib++, qs += 16, q8 += 32) {
      int sumi = 0;
      for (int j = 0; j < 16; j++) {
        sumi += q8[j] * q_iq4nl_values[qs[j] & 0xF];
        sumi += q8[j + 16] * q_iq4nl_values[qs[j] >> 4];
      }
      s += d4d8 * (iq4xs_ls(&x[i], ib) - 32) * sumi;
    }
  }
  return s;
}

void q_vec_dot_ref(int type, int n, float *s, const void *x, const void *y) {
  const qtype_info *t = qtype(type);
  *s = 0;
  if (!t || !t->supported || t->vec_dot_type < 0 || n % t->blck)
    return;
  const int nb = n / t->blck;
  double acc = 0;
  switch (type) {
  case QT_F32:
    for (int i = 0; i < n; i++)
      acc += (double)(((const float *)x)[i] * ((const float *)y)[i]);
    *s = (float)acc;
    return;
  case QT_F16:
    for (int i = 0; i < n; i++)
      acc +=
          (double)(H2F(((const q_half *)x)[i]) * H2F(((const q_half *)y)[i]));
    *s = (float)acc;
    return;
  case QT_BF16:
    for (int i = 0; i < n; i++)
      acc += (double)(q_bf16_to_fp32(((const q_bf16 *)x)[i]) *
                      q_bf16_to_fp32(((const q_bf16 *)y)[i]));
    *s = (float)acc;
    return;
  case QT_Q4_0:
    *s = dot_q4_0(x, y, nb);
    return;
  case QT_Q4_1:
    *s = dot_q4_1(x, y, nb);
    return;
  case QT_Q5_0:
    *s = dot_q5_0(x, y, nb);
    return;
  case QT_Q5_1:
    *s = dot_q5_1(x, y, nb);
    return;
  case QT_Q8_0:
    *s = dot_q8_0(x, y, nb);
    return;
  case QT_IQ4_NL:
    *s = dot_iq4_nl(x, y, nb);
    return;
  case QT_Q2_K:
    *s = dot_q2_K(x, y, nb);
    return;
  case QT_Q3_K:
    *s = dot_q3_K(x, y, nb);
    return;
  case QT_Q4_K:
    *s = dot_q4_K(x, y, nb);
    return;
  case QT_Q5_K:
    *s = dot_q5_K(x, y, nb);
    return;
  case QT_Q6_K:
    *s = dot_q6_K(x, y, nb);
    return;
  case QT_IQ4_XS:
    *s = dot_iq4_xs(x, y, nb);
    return;
  default:
    return;
  }
}
