/* Tensor types: the ggml type ids, their block layouts (byte-identical to
 * ggml's), sizes, fp16/bf16 conversion, and the SCALAR reference
 * quantize / dequantize / dot-product routines every SIMD kernel is checked
 * against. Numerics follow ggml's reference C implementation.
 * Knows nothing about files, models, threads or SIMD. */
#ifndef HEARTH_ENGINE_QUANT_H
#define HEARTH_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml type ids. Supported ones have working reference routines; the others
 * are known by name only so errors can say what a file contains. */
enum qtype_id {
  QT_F32 = 0,
  QT_F16 = 1,
  QT_Q4_0 = 2,
  QT_Q4_1 = 3,
  QT_Q5_0 = 6,
  QT_Q5_1 = 7,
  QT_Q8_0 = 8,
  QT_Q8_1 = 9,
  QT_Q2_K = 10,
  QT_Q3_K = 11,
  QT_Q4_K = 12,
  QT_Q5_K = 13,
  QT_Q6_K = 14,
  QT_Q8_K = 15,
  QT_IQ2_XXS = 16,
  QT_IQ2_XS = 17,
  QT_IQ3_XXS = 18,
  QT_IQ1_S = 19,
  QT_IQ4_NL = 20,
  QT_IQ3_S = 21,
  QT_IQ2_S = 22,
  QT_IQ4_XS = 23,
  QT_I8 = 24,
  QT_I16 = 25,
  QT_I32 = 26,
  QT_I64 = 27,
  QT_F64 = 28,
  QT_IQ1_M = 29,
  QT_BF16 = 30,
  QT_TQ1_0 = 34,
  QT_TQ2_0 = 35,
  QT_MXFP4 = 39,
  QT_COUNT = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK4_NL 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t q_half; /* IEEE binary16 bits */
typedef uint16_t q_bf16; /* bfloat16 bits */

/* ---- block layouts (identical to ggml's) ------------------------------- */

typedef struct {
  q_half d;
  uint8_t qs[QK4_0 / 2];
} block_q4_0;
typedef struct {
  q_half d, m;
  uint8_t qs[QK4_1 / 2];
} block_q4_1;
typedef struct {
  q_half d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
} block_q5_0;
typedef struct {
  q_half d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
} block_q5_1;
typedef struct {
  q_half d;
  int8_t qs[QK8_0];
} block_q8_0;
typedef struct {
  q_half d; /* delta */
  q_half s; /* d * sum(qs) */
  int8_t qs[QK8_1];
} block_q8_1;
typedef struct {
  uint8_t scales[QK_K / 16]; /* low 4 bits scale, high 4 bits min */
  uint8_t qs[QK_K / 4];
  q_half d, dmin;
} block_q2_K;
typedef struct {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12]; /* 16 6-bit scales */
  q_half d;
} block_q3_K;
typedef struct {
  q_half d, dmin;
  uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales + 8 6-bit mins */
  uint8_t qs[QK_K / 2];
} block_q4_K;
typedef struct {
  q_half d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  q_half d;
} block_q6_K;
typedef struct {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16]; /* sums of qs in groups of 16 */
} block_q8_K;
typedef struct {
  q_half d;
  uint8_t qs[QK4_NL / 2];
} block_iq4_nl;
typedef struct {
  q_half d;
  uint16_t scales_h;
  uint8_t scales_l[QK_K / 64];
  uint8_t qs[QK_K / 2];
} block_iq4_xs;

/* The 16 non-linear levels of IQ4_NL / IQ4_XS. */
extern const int8_t q_iq4nl_values[16];

/* ---- type table -------------------------------------------------------- */

typedef struct {
  const char *name; /* "q4_K", "f16", ... as ggml names them */
  int blck;         /* elements per block */
  size_t type_size; /* bytes per block */
  int vec_dot_type; /* activation type for q_vec_dot_ref; -1 if none */
  int supported;    /* reference routines exist; files may contain it */
  int can_quantize; /* q_quant_row works for it */
} qtype_info;

/* Info for a type id; NULL for ids outside the table (never used by ggml). */
const qtype_info *qtype(int type);
/* Name of a type id, "unknown" for ids outside the table. */
const char *qtype_name(int type);
/* Type id for a name (case-insensitive, "Q4_K" or "q4_k"), -1 if none. */
int qtype_from_name(const char *name);
/* Bytes of a row of n elements (n must be a multiple of blck); 0 when
 * the type is unknown or n is not a multiple. */
size_t qtype_row_size(int type, int64_t n);

/* ---- fp16 / bf16 ------------------------------------------------------- */

float q_fp16_to_fp32(q_half h);
q_half q_fp32_to_fp16(float f); /* round to nearest even, like F16C */
float q_bf16_to_fp32(q_bf16 h);
q_bf16 q_fp32_to_bf16(float f); /* round to nearest even, NaN kept quiet */

/* ---- reference routines ------------------------------------------------ */

/* Dequantize n elements (multiple of the block size) of a supported type. */
void q_dequant_row(int type, const void *x, float *y, int64_t n);

/* Quantize n elements into type (qtype(type)->can_quantize). Activation
 * types Q8_0 / Q8_1 / Q8_K round exactly like ggml's reference; weight
 * types use ggml-like reference quantizers (no importance matrix).
 * Returns 0, or -1 for a type that cannot be quantized. */
int q_quant_row(int type, const float *x, void *y, int64_t n);

/* *s = dot(row x of `type`, y) over n elements, where y is already in
 * qtype(type)->vec_dot_type. Integers accumulate per block, then scale, as
 * ggml's reference does. */
void q_vec_dot_ref(int type, int n, float *s, const void *x, const void *y);

#endif
