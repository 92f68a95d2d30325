/* Internal to the kernels: the dispatch table that kernels.c fills with the
 * scalar reference functions and that kernels_avx2.c / kernels_avx512.c
 * override with their SIMD versions of the same contract. Only the kernel
 * files include this. Knows nothing about models. */
#ifndef HEARTH_ENGINE_KERNELS_IMPL_H
#define HEARTH_ENGINE_KERNELS_IMPL_H
#include <stddef.h>
#include <stdint.h>

#include "engine/quant.h"

typedef void (*k_vec_dot_fn)(int n, float *s, const void *x, const void *y);
typedef void (*k_quant_fn)(const float *x, void *y, int64_t n);

/* Matmul tile: for r < nr (<= tile_mr), t < nt (<= tile_nt):
 *   Y[t * ldy + r] = dot(W + r * wstride, X + t * xstride)   over n elements.
 * X rows are already in the type's vec_dot_type. */
typedef void (*k_tile_fn)(int n, const void *W, size_t wstride, int nr,
                          const void *X, size_t xstride, int nt, float *Y,
                          size_t ldy);

/* Prepared prefill path (weights with Q8_0 activations, where available):
 * a weight row is decoded once per token block into pairs of 32-blocks
 * (K_WPAIR bytes: 64 biased bytes q + 128, 16 f32 lane scales), the
 * activations once per matmul into K_XPAIR-byte pairs (64 bytes y, 16 int32
 * of -128 * sum(y) per 4 bytes, 16 f32 lane scales); the tile then only
 * loads and multiplies. An odd last block is paired with zeros. */
enum { K_WPAIR = 128, K_XPAIR = 192 };
typedef void (*k_prep_fn)(const void *row, int n, void *pairs);
typedef void (*k_tilep_fn)(int npairs, const void *Wp, size_t wps, int nr,
                           const void *Xp, size_t xps, int nt, float *Y,
                           size_t ldy);

/* The same for the types with Q8_K activations (Q2_K..Q6_K, IQ4_XS): a
 * weight row is decoded once per matmul into K_WSB-byte super-blocks of 256
 * weights (256 unsigned bytes q, reordered so that each int32 lane of a
 * 4-byte dot product sums one group of 16 weights; 16 f32 group scales
 * sc[g], 16 f32 group offsets o[g]), the activations into K_XSB-byte
 * super-blocks (256 bytes y in the same order, 16 f32 dy * sum_g(y), f32
 * dy), and a super-block's dot is
 *   sum_g sc[g] * dy * (q . y)_g - o[g] * dy * sum_g(y).
 * The tile takes the number of super-blocks where tile_p takes pairs. */
enum { K_WSB = 384, K_XSB = 384 };
/* The K-quant tile over nsb super-blocks (Wp, Xp: the first of them):
 * Y[t * ldy + r] = (add ? Y[t * ldy + r] : 0) + the dot over them. */
typedef void (*k_tilepk_fn)(int nsb, const void *Wp, size_t wps, int nr,
                            const void *Xp, size_t xps, int nt, float *Y,
                            size_t ldy, int add);

/* Y[t * ldy] = dot(W row x, token t's prepared pairs at Xp + t * xps), for
 * t < nt (any nt >= 1). */
typedef void (*k_vec_dot_n_fn)(int n, float *Y, size_t ldy, const void *x,
                               const void *Xp, size_t xps, int nt);

typedef void (*k_vec_dot_n2_fn)(int n, float *Y, size_t ldy, const void *x,
                                size_t xrow, const void *Xp, size_t xps,
                                int nt);

typedef struct {
  k_vec_dot_fn vec_dot[QT_COUNT]; /* by weight type; NULL: q_vec_dot_ref */
  k_quant_fn quant[QT_COUNT];     /* by activation type; NULL: q_quant_row */
  k_tile_fn tile[QT_COUNT];       /* by weight type; NULL: vec_dot loop */
  int tile_mr[QT_COUNT], tile_nt[QT_COUNT];
  k_prep_fn wprep[QT_COUNT]; /* by weight type; NULL: no prepared path */
  k_prep_fn xprep_q8_0;      /* Q8_0 activation row -> pairs */
  k_tilep_fn tile_p;         /* up to tile_p_mr rows x tile_p_nt tokens */
  /* decode: one weight row (raw blocks) . prepared activation pairs */
  k_vec_dot_fn vec_dot_p[QT_COUNT];
  /* small batches: vec_dot_p of one weight row against nt tokens' prepared
   * pairs, bit-identical to nt vec_dot_p calls (batch-size invariant) */
  k_vec_dot_n_fn vec_dot_pn[QT_COUNT];
  /* the same for two rows at once (rows x and x + xrow bytes, outputs
   * Y[t * ldy + 0..1]), within float tolerance, for more tokens */
  k_vec_dot_n2_fn vec_dot_pn2[QT_COUNT];
  int pn_exact_tok; /* most tokens per matmul on vec_dot_pn (bit-exact) */
  int pn_max_tok;   /* most tokens per matmul streaming rows (vec_dot_pn,
                       then vec_dot_pn2 above pn_exact_tok) */
  int tile_p_mr, tile_p_nt;
  k_prep_fn wprep_k[QT_COUNT]; /* K-quant row -> super-blocks (K_WSB) */
  k_prep_fn xprep_q8_k;        /* Q8_K activation row -> super-blocks */
  k_tilepk_fn tile_pk;         /* up to tile_pk_mr rows x tile_pk_nt tokens */
  int tile_pk_mr, tile_pk_nt;
  int tile_pk_ksb; /* most super-blocks per tile call (0: all): a slice of
                      the rows that stays in L1 across the tokens */
  int pf_dist;     /* decode software prefetch distance in bytes (0: off) */

  float (*dot_f32)(const float *x, const float *y, int n);
  float (*sumsq_f32)(const float *x, int n);
  void (*mul_scale)(float *y, const float *x, const float *w, float s, int n);
  void (*silu_mul)(float *y, const float *a, const float *b, int n);
  void (*add)(float *y, const float *a, const float *b, int n);
  void (*scale)(float *y, float s, int n);
  float (*max_f32)(const float *x, int n);
  float (*exp_sub_sum)(float *x, float m, int n); /* x=exp(x-m); ret sum */
  void (*f32_to_f16)(uint16_t *y, const float *x, int n);
  void (*f16_to_f32)(float *y, const uint16_t *x, int n);
  float (*dot_f16)(const float *q, const uint16_t *k, int n);
  void (*axpy_f16)(float *y, float a, const uint16_t *v, int n);
  void (*attn_scores)(float *out, const float *q, const uint16_t *base,
                      const int32_t *idx, size_t stride, int n, int hd,
                      float scale);
  void (*attn_values)(float *out, const float *p, const uint16_t *base,
                      const int32_t *idx, size_t stride, int n, int hd);
} k_ops;

/* Fill in what each ISA level provides (leave other entries untouched). */
void k_register_avx2(k_ops *o);
void k_register_avx512(k_ops *o, int has_vnni);

#endif
