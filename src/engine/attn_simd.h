/* attn_simd.h: SIMD inner loops of the attention over the transposed f16
 * KV cache (attn_avx2.c, attn_avx512.c), used by attn.c when k_simd() >=
 * K_SIMD_AVX2 (the *_avx512 variants when k_simd() == K_SIMD_AVX512):
 * the two products and the masked softmax of a row of scores.
 * Knows nothing about models, sequences or the cache's bookkeeping. */
#ifndef HEARTH_ENGINE_ATTN_SIMD_H
#define HEARTH_ENGINE_ATTN_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* S[r*lds + j] = sum_d q[r*hd + d] * K[d*ldk + j]  for r < nq, j < nc.
 * nc a multiple of 16. The rows of K are prefetched ahead of their use, and
 * V (NULL: none; hd rows ldk apart, the values of the same cells) along the
 * way, for the product with the probabilities that follows: short ranges
 * of many rows far apart are too short for the hardware prefetchers. */
void attn_qk_avx2(const float *q, int nq, int hd, const uint16_t *K, size_t ldk,
                  int nc, float *S, size_t lds, const uint16_t *V);

/* out[r][d] += sum_j P[r*ldp + j] * V[d*ldv + j]  for r < nq, d < hd, j < nc.
 * nc a multiple of 8, hd a multiple of 4. */
void attn_pv_avx2(const uint16_t *P, size_t ldp, int nq, const uint16_t *V,
                  size_t ldv, int hd, int nc, float *const *out);

/* One row of scores s[0..n) (n a multiple of 16) -> probabilities: cells
 * with vpos[j] > pos or vpos[j] <= from are masked out, the others scaled
 * and, when softcap > 0, soft-capped (softcap * tanh(x / softcap)); *m =
 * their max, l = sum of exp(x - m) (returned), p[j] = f16(exp(x - m) / l)
 * (0 where masked). Every cell masked: *m = -INFINITY, p all 0, returns 0.
 * s is overwritten (scratch). */
float attn_softmax_avx2(float *s, const int32_t *vpos, int n, int32_t pos,
                        int32_t from, float scale, float softcap, uint16_t *p,
                        float *m);

/* The same three loops with AVX-512 (same preconditions). */
void attn_qk_avx512(const float *q, int nq, int hd, const uint16_t *K,
                    size_t ldk, int nc, float *S, size_t lds,
                    const uint16_t *V);
void attn_pv_avx512(const uint16_t *P, size_t ldp, int nq, const uint16_t *V,
                    size_t ldv, int hd, int nc, float *const *out);
float attn_softmax_avx512(float *s, const int32_t *vpos, int n, int32_t pos,
                          int32_t from, float scale, float softcap, uint16_t *p,
                          float *m);

#endif
