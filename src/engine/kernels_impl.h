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

typedef struct {
  k_vec_dot_fn vec_dot[QT_COUNT]; /* by weight type; NULL: q_vec_dot_ref */
  k_quant_fn quant[QT_COUNT];     /* by activation type; NULL: q_quant_row */
  k_tile_fn tile[QT_COUNT];       /* by weight type; NULL: vec_dot loop */
  int tile_mr[QT_COUNT], tile_nt[QT_COUNT];

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
