/* Compute kernels of the engine: quantized dot products per tensor type,
 * activation quantizers, matrix multiplication over the thread pool, and the
 * f32 helpers the forward pass needs (rmsnorm, softmax, silu*mul, rope,
 * attention over an f16 KV cache). Each kernel has a scalar reference path and
 * AVX2 / AVX-512 paths chosen once at run time (k_init); they agree within
 * float tolerance (quantizers: bit for bit). Tensor type ids and block
 * layouts are those of quant.h (ggml's). Knows nothing about models, files,
 * tokenizers or the server. */
#ifndef HEARTH_ENGINE_KERNELS_H
#define HEARTH_ENGINE_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#include "engine/threadpool.h"

/* ---- dispatch ------------------------------------------------------------ */

enum { K_SIMD_SCALAR = 0, K_SIMD_AVX2 = 1, K_SIMD_AVX512 = 2 };

/* Detects the CPU once and picks the best path; env HEARTH_SIMD=scalar|avx2|
 * avx512 forces one (falling back to the best available below it). Cheap and
 * idempotent; every k_* function calls it implicitly on first use. */
void k_init(void);

/* The path in use (K_SIMD_*), and its name ("scalar", "avx2", "avx512"). */
int k_simd(void);
const char *k_simd_name(int level);

/* Forces a path for tests/benchmarks. Returns 0, or -1 when this CPU (or
 * build) cannot run it (the current path is then unchanged). Not thread-safe:
 * call it while no kernel runs. */
int k_set_simd(int level);

/* 1 when the type has a vec_dot/matmul kernel (every type quant.h marks
 * supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K,
 * IQ4_NL, IQ4_XS). */
int k_type_supported(int type);

/* ---- quantized dot products ---------------------------------------------- */

/* *s = dot(x, y) over n elements (n a multiple of the type's block size):
 * x is one row of `type`, y is the activation already quantized to
 * qtype(type)->vec_dot_type (k_quantize_act). Same contract as
 * q_vec_dot_ref. */
void k_vec_dot(int type, int n, float *s, const void *x, const void *y);

/* Quantizes n floats (a multiple of the block size) into the activation
 * type vdt (Q8_0, Q8_1, Q8_K; also F32 = copy, F16, BF16): bit-identical to
 * q_quant_row. */
void k_quantize_act(int vdt, const float *x, void *y, int64_t n);

/* Bytes of one activation row of n elements for weight type wtype (i.e. in
 * its vec_dot_type). */
size_t k_act_row_size(int wtype, int64_t n);

/* ---- matrix multiplication ----------------------------------------------- */

/* Y[t*rows + r] = dot(W row r, X row t) for t < n_tok, r < rows.
 * W: rows x cols of wtype, rows contiguous (row r at r * row_size).
 * X: n_tok x cols f32. Y: n_tok x rows f32.
 * X is quantized once to the vec_dot_type; work items (chunks of rows) are
 * taken dynamically by the pool's threads. Decode (n_tok == 1) streams every
 * weight row once through the type's vec_dot; so do small batches where the
 * path has it (k_small_batch_max), every token against each row. Prefill
 * (more tokens) reads each weight row once and sweeps blocks of tokens over
 * it in tiles of several rows x several tokens; with AVX-512 VNNI,
 * Q8_0/Q4_0/Q5_0/IQ4_NL and Q2_K..Q6_K/IQ4_XS rows and the activations
 * are first decoded into a multiply-ready layout (kernels_impl.h). Temporary memory comes from the
 * pool's scratch (tpool_scratch: grown when needed, then reused), or malloc
 * when pool is NULL (single thread). One caller per pool at a time. cols must
 * be a multiple of the block size. Returns 0, or -1 for an unsupported type /
 * bad size / no memory. */
int k_matmul(tpool *pool, int wtype, const void *W, int64_t rows, int64_t cols,
             const float *X, int64_t n_tok, float *Y);

/* As k_matmul with X already quantized (Xq: n_tok rows of
 * k_act_row_size(wtype, cols) bytes each, e.g. when several matrices share
 * one input: Q, K and V). Xq must not live in the pool's scratch (the
 * prefill path uses it). */
int k_matmul_q(tpool *pool, int wtype, const void *W, int64_t rows,
               int64_t cols, const void *Xq, int64_t n_tok, float *Y);

/* Several matrices multiplied by the same quantized input in ONE pool
 * dispatch (decode: Q, K and V; gate and up): the rows of all of them are
 * split over the threads together. Every matrix has `cols` columns and a
 * weight type with the same vec_dot_type (Xq is in it); mats[m].Y gets
 * n_tok x mats[m].rows floats as in k_matmul. At most K_MULTI_MAX matrices.
 * Returns 0, or -1 (unsupported type, mixed activation types, bad size). */
enum { K_MULTI_MAX = 8 };
typedef struct {
  int wtype;
  const void *W;
  int64_t rows;
  float *Y;
} k_mat;
int k_matmul_q_multi(tpool *pool, const k_mat *mats, int n_mats, int64_t cols,
                     const void *Xq, int64_t n_tok);

/* Small batches: up to this many tokens (0: none at the current path),
 * a matmul with weights of wtype streams each weight row once, like decode,
 * dotting it against every token (no weight repacking, which only pays for
 * itself over more tokens), and each token's outputs are bit-identical to
 * a matmul of that token alone. Somewhat larger batches (up to 16) stream
 * the rows two at a time, within float tolerance. Env HEARTH_PN_MAX=n: the
 * most tokens that stream rows (default 16; 0: off; the bit-identical limit
 * is min(n, 7)). */
int k_small_batch_max(int wtype);

/* Quantizes n_tok rows of X (cols each) for wtype into Xq, split over the
 * pool. Xq must hold n_tok * k_act_row_size(wtype, cols) bytes. */
void k_quantize_rows(tpool *pool, int wtype, const float *X, int64_t n_tok,
                     int64_t cols, void *Xq);

/* ---- f32 helpers (n: any size) ------------------------------------------ */

/* y = x / sqrt(mean(x^2) + eps) * w (w may be NULL: no weight); in place ok */
void k_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* Stable softmax in place. */
void k_softmax(float *x, int n);
/* x[i] = exp(x[i] - m) in place (SIMD when available), returns their sum.
 * For x[i] - m <= 0; below about -87 the result is tiny but not 0, and
 * NaN stays NaN: callers that need exact zeros mask them. */
float k_exp_sub_sum(float *x, float m, int n);
/* y = silu(a) * b = a / (1 + exp(-a)) * b. In place ok (y == a or y == b). */
void k_silu_mul(float *y, const float *a, const float *b, int n);
/* y = gelu(a) * b, GELU's tanh approximation computed as ggml's CPU
 * backend does (a rounded to f16, GELU looked up in an f16 table; 0 below
 * -10, identity above 10). In place ok (y == a or y == b). */
void k_gelu_mul(float *y, const float *a, const float *b, int n);
/* y = a + b. In place ok. */
void k_add(float *y, const float *a, const float *b, int n);
/* y *= s. */
void k_scale(float *y, float s, int n);
/* Returns sum x[i]*y[i]. */
float k_dot_f32(const float *x, const float *y, int n);
/* Index of the largest element (first on ties); -1 when n <= 0. */
int k_argmax(const float *x, int n);

/* f16 (IEEE half) conversions. */
void k_f32_to_f16(uint16_t *y, const float *x, int n);
void k_f16_to_f32(float *y, const uint16_t *x, int n);

/* Attention over an f16 KV cache:
 *   k_dot_f16:  returns sum q[i] * k[i]  (q f32, k f16)
 *   k_axpy_f16: y[i] += a * v[i]        (v f16) */
float k_dot_f16(const float *q, const uint16_t *k, int n);
void k_axpy_f16(float *y, float a, const uint16_t *v, int n);

/* Attention rows over an f16 KV cache (one query head against many cached
 * rows; row j starts at base + (idx ? idx[j] : j) * stride, hd halves):
 *   k_attn_scores_f16: out[j] = scale * dot(q, K_j)             (j < n)
 *   k_attn_values_f16: out[i] = sum_j p[j] * V_j[i]  (i < hd; overwrites) */
void k_attn_scores_f16(float *out, const float *q, const uint16_t *base,
                       const int32_t *idx, size_t stride, int n, int hd,
                       float scale);
void k_attn_values_f16(float *out, const float *p, const uint16_t *base,
                       const int32_t *idx, size_t stride, int n, int hd);

/* Rotary position embedding, in place, over n_heads heads of head_dim floats
 * (x[h*head_dim + i]) at position pos, rotating the first n_rot dims.
 * theta_i = pos * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i]
 * (freq_factors may be NULL: llama3-style scaling passes rope_freqs here).
 * neox=0: pairs (x[2i], x[2i+1]) (llama); neox=1: pairs (x[i], x[i+n_rot/2])
 * (qwen2, NeoX). Computed like ggml (theta advanced by repeated
 * multiplication). */
typedef struct {
  int n_rot;
  float freq_base;
  float freq_scale;
  const float *freq_factors; /* n_rot/2 entries or NULL */
  int neox;
} k_rope_params;
void k_rope(float *x, int n_heads, int head_dim, int pos,
            const k_rope_params *p);

#endif
