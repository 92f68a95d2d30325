/* Kernel dispatch, scalar reference paths of the f32 helpers, and the matmul
 * driver (see kernels.h). The quantized scalar paths are quant.c's reference
 * routines; kernels_avx2.c / kernels_avx512.c override entries of the
 * dispatch table (kernels_impl.h). Knows nothing about models or files. */
#include "engine/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/kernels_impl.h"
#include "engine/quant.h"

/* ==== scalar f32 helpers ================================================== */

static float s_dot_f32(const float *x, const float *y, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += (double)x[i] * y[i];
  return (float)s;
}

static float s_sumsq_f32(const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += (double)x[i] * x[i];
  return (float)s;
}

static void s_mul_scale(float *y, const float *x, const float *w, float s,
                        int n) {
  if (w)
    for (int i = 0; i < n; i++)
      y[i] = (x[i] * s) * w[i];
  else
    for (int i = 0; i < n; i++)
      y[i] = x[i] * s;
}

static void s_silu_mul(float *y, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++)
    y[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

static void s_add(float *y, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++)
    y[i] = a[i] + b[i];
}

static void s_scale(float *y, float s, int n) {
  for (int i = 0; i < n; i++)
    y[i] *= s;
}

static float s_max_f32(const float *x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; i++)
    if (x[i] > m)
      m = x[i];
  return m;
}

static float s_exp_sub_sum(float *x, float m, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - m);
    s += x[i];
  }
  return (float)s;
}

static void s_f32_to_f16(uint16_t *y, const float *x, int n) {
  for (int i = 0; i < n; i++)
    y[i] = q_fp32_to_fp16(x[i]);
}

static void s_f16_to_f32(float *y, const uint16_t *x, int n) {
  for (int i = 0; i < n; i++)
    y[i] = q_fp16_to_fp32(x[i]);
}

static float s_dot_f16(const float *q, const uint16_t *k, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += (double)q[i] * q_fp16_to_fp32(k[i]);
  return (float)s;
}

static void s_axpy_f16(float *y, float a, const uint16_t *v, int n) {
  for (int i = 0; i < n; i++)
    y[i] += a * q_fp16_to_fp32(v[i]);
}

static void s_attn_scores(float *out, const float *q, const uint16_t *base,
                          const int32_t *idx, size_t stride, int n, int hd,
                          float scale) {
  for (int j = 0; j < n; j++)
    out[j] =
        scale * s_dot_f16(q, base + (size_t)(idx ? idx[j] : j) * stride, hd);
}

static void s_attn_values(float *out, const float *p, const uint16_t *base,
                          const int32_t *idx, size_t stride, int n, int hd) {
  memset(out, 0, sizeof(float) * (size_t)hd);
  for (int j = 0; j < n; j++)
    s_axpy_f16(out, p[j], base + (size_t)(idx ? idx[j] : j) * stride, hd);
}

/* Activation conversions for the float weight types (quant.c covers the
 * Q8 activation types). */
static void s_quant_f32(const float *x, void *y, int64_t n) {
  memcpy(y, x, (size_t)n * sizeof(float));
}

static void s_quant_f16(const float *x, void *y, int64_t n) {
  uint16_t *h = y;
  for (int64_t i = 0; i < n; i++)
    h[i] = q_fp32_to_fp16(x[i]);
}

static void s_quant_bf16(const float *x, void *y, int64_t n) {
  uint16_t *h = y;
  for (int64_t i = 0; i < n; i++)
    h[i] = q_fp32_to_bf16(x[i]);
}

/* ==== dispatch ============================================================ */

/* Dispatch tables: written once under pthread_once, read-only afterwards
 * (k_set_simd only swaps which one is current). */
static k_ops g_ops[3];
static int g_avail[3];
static const k_ops *g_cur;
static int g_level;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fill_scalar(k_ops *o) {
  memset(o, 0, sizeof *o);
  o->quant[QT_F32] = s_quant_f32;
  o->quant[QT_F16] = s_quant_f16;
  o->quant[QT_BF16] = s_quant_bf16;
  o->dot_f32 = s_dot_f32;
  o->sumsq_f32 = s_sumsq_f32;
  o->mul_scale = s_mul_scale;
  o->silu_mul = s_silu_mul;
  o->add = s_add;
  o->scale = s_scale;
  o->max_f32 = s_max_f32;
  o->exp_sub_sum = s_exp_sub_sum;
  o->f32_to_f16 = s_f32_to_f16;
  o->f16_to_f32 = s_f16_to_f32;
  o->dot_f16 = s_dot_f16;
  o->axpy_f16 = s_axpy_f16;
  o->attn_scores = s_attn_scores;
  o->attn_values = s_attn_values;
}

static int level_from_env(void) {
  const char *e = getenv("HEARTH_SIMD");
  if (!e || !*e)
    return K_SIMD_AVX512;
  if (!strcmp(e, "scalar"))
    return K_SIMD_SCALAR;
  if (!strcmp(e, "avx2"))
    return K_SIMD_AVX2;
  return K_SIMD_AVX512;
}

/* Most tokens of the bit-exact small-batch path (vec_dot_pn keeps two
 * accumulators per token in registers). */
enum { K_PN_EXACT = 7 };

static void init_once(void) {
  cpu_features f;
  cpu_detect(&f);
  fill_scalar(&g_ops[K_SIMD_SCALAR]);
  g_avail[K_SIMD_SCALAR] = 1;
#if defined(__x86_64__)
  g_avail[K_SIMD_AVX2] = f.avx2 && f.fma && f.f16c;
  g_avail[K_SIMD_AVX512] = g_avail[K_SIMD_AVX2] && f.avx512f && f.avx512bw &&
                           f.avx512vl && f.avx512dq;
  g_ops[K_SIMD_AVX2] = g_ops[K_SIMD_SCALAR];
  if (g_avail[K_SIMD_AVX2])
    k_register_avx2(&g_ops[K_SIMD_AVX2]);
  g_ops[K_SIMD_AVX512] = g_ops[K_SIMD_AVX2];
  if (g_avail[K_SIMD_AVX512])
    k_register_avx512(&g_ops[K_SIMD_AVX512], f.avx512vnni);
#endif
  /* HEARTH_PF=bytes: software prefetch distance of decode's weight stream
   * (0: hardware prefetch only). Default 8 KiB: +15-20% single-thread Q8_0
   * matvec from memory here (28 -> 32.5 GB/s), neutral for compute-bound
   * types. */
  const char *pf = getenv("HEARTH_PF");
  for (int l = 0; l < 3; l++)
    g_ops[l].pf_dist = pf ? atoi(pf) : 8192;
  /* HEARTH_PN_MAX=n: most tokens of a matmul that go row by row against
   * the raw weights (vec_dot_pn) rather than through prepared weight
   * tiles (0: never) */
  const char *pn = getenv("HEARTH_PN_MAX");
  for (int l = 0; l < 3; l++)
    g_ops[l].pn_max_tok = pn ? atoi(pn) : 16;
  for (int l = 0; l < 3; l++) /* one accumulator pair per token: <= 8 */
    g_ops[l].pn_exact_tok =
        g_ops[l].pn_max_tok < K_PN_EXACT ? g_ops[l].pn_max_tok : K_PN_EXACT;
  int want = level_from_env();
  while (want > 0 && !g_avail[want])
    want--;
  g_level = want;
  g_cur = &g_ops[want];
}

void k_init(void) {
  pthread_once(&g_once, init_once);
}

static inline const k_ops *ops(void) {
  if (__builtin_expect(g_cur == NULL, 0))
    k_init();
  return g_cur;
}

int k_simd(void) {
  k_init();
  return g_level;
}

const char *k_simd_name(int level) {
  switch (level) {
  case K_SIMD_SCALAR:
    return "scalar";
  case K_SIMD_AVX2:
    return "avx2";
  case K_SIMD_AVX512:
    return "avx512";
  }
  return "unknown";
}

int k_set_simd(int level) {
  k_init();
  if (level < 0 || level > K_SIMD_AVX512 || !g_avail[level])
    return -1;
  g_level = level;
  g_cur = &g_ops[level];
  return 0;
}

int k_type_supported(int type) {
  const qtype_info *q = qtype(type);
  return q && q->supported && q->vec_dot_type >= 0 && type != QT_Q8_1 &&
         type != QT_Q8_K;
}

/* ==== quantized dot products and activations ============================== */

void k_vec_dot(int type, int n, float *s, const void *x, const void *y) {
  k_vec_dot_fn f = ops()->vec_dot[type];
  if (f)
    f(n, s, x, y);
  else
    q_vec_dot_ref(type, n, s, x, y);
}

void k_quantize_act(int vdt, const float *x, void *y, int64_t n) {
  k_quant_fn f = ops()->quant[vdt];
  if (f)
    f(x, y, n);
  else
    q_quant_row(vdt, x, y, n);
}

size_t k_act_row_size(int wtype, int64_t n) {
  const qtype_info *q = qtype(wtype);
  if (!q || q->vec_dot_type < 0)
    return 0;
  return qtype_row_size(q->vec_dot_type, n);
}

/* ==== matmul ============================================================== */

typedef struct {
  const k_ops *o;
  int wtype;
  const uint8_t *W;
  size_t wrow; /* bytes per weight row */
  int64_t rows, cols;
  const uint8_t *X;
  size_t xrow; /* bytes per activation row */
  int64_t n_tok;
  float *Y;
  const uint8_t *Xp; /* prepared activations (kernels_impl.h) or NULL */
  size_t xprow;      /* bytes per prepared activation row */
  uint8_t *wb;       /* prepared weight rows: one buffer per thread, */
  size_t wb_stride;  /* wb + ith * wb_stride */
} mm_job;

/* Fallback tile: one vec_dot per (row, token). */
static void tile_by_vec_dot(const mm_job *j, int64_t r0, int nr, int64_t t0,
                            int nt) {
  k_vec_dot_fn f = j->o->vec_dot[j->wtype];
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < nr; r++) {
      const void *w = j->W + (size_t)(r0 + r) * j->wrow;
      const void *x = j->X + (size_t)(t0 + t) * j->xrow;
      float *y = j->Y + (size_t)(t0 + t) * (size_t)j->rows + (size_t)(r0 + r);
      if (f)
        f((int)j->cols, y, w, x);
      else
        q_vec_dot_ref(j->wtype, (int)j->cols, y, w, x);
    }
}

/* Software prefetch of the weight stream up to `dist` bytes ahead of w
 * (decode; hardware prefetchers stop at 4 KiB page boundaries). */
static inline void prefetch_ahead(const uint8_t **pf, const uint8_t *upto,
                                  const uint8_t *end) {
  if (upto > end)
    upto = end;
  for (; *pf < upto; *pf += 64)
    __builtin_prefetch(*pf, 0, 0);
}

/* Matrix x vector over rows [r0, r1): the weights stream once, row after
 * row. (Four-row kernels that read four rows side by side were faster in
 * cache but much slower from memory: the single sequential stream is what
 * the hardware prefetchers follow best.) fresh: the stream starts here, so
 * prefetching starts at r0; otherwise the previous call (rows just before
 * r0) already prefetched the first pf_dist bytes. Prefetching runs on past
 * r1 up to the end of the matrix, so a thread that takes consecutive row
 * ranges sees one uninterrupted stream. */
static void mv_rows(const mm_job *j, int64_t r0, int64_t r1, int fresh) {
  k_vec_dot_fn f = j->o->vec_dot[j->wtype];
  k_vec_dot_n_fn fn = NULL;
  k_vec_dot_n2_fn fn2 = NULL;
  const void *x = j->X;
  if (j->Xp) { /* prepared activations */
    f = j->o->vec_dot_p[j->wtype];
    fn = j->n_tok > 1 ? j->o->vec_dot_pn[j->wtype] : NULL;
    fn2 = j->n_tok > j->o->pn_exact_tok ? j->o->vec_dot_pn2[j->wtype] : NULL;
    x = j->Xp;
  }
  const uint8_t *w = j->W + (size_t)r0 * j->wrow;
  const uint8_t *end = j->W + (size_t)j->rows * j->wrow;
  const int dist = j->o->pf_dist;
  const uint8_t *pf = fresh ? w : w + dist;
  for (int64_t r = r0; r < r1; r++, w += j->wrow) {
    if (dist)
      prefetch_ahead(&pf, w + j->wrow + dist, end);
    if (fn2 && r + 1 < r1) { /* two rows at a time, every token */
      if (dist)
        prefetch_ahead(&pf, w + 2 * j->wrow + dist, end);
      fn2((int)j->cols, &j->Y[r], (size_t)j->rows, w, j->wrow, x, j->xprow,
          (int)j->n_tok);
      r++, w += j->wrow;
    } else if (fn) /* a small batch: every token against this row */
      fn((int)j->cols, &j->Y[r], (size_t)j->rows, w, x, j->xprow,
         (int)j->n_tok);
    else if (f)
      f((int)j->cols, &j->Y[r], w, x);
    else
      q_vec_dot_ref(j->wtype, (int)j->cols, &j->Y[r], w, j->X);
  }
}

/* 1 when a matmul of n_tok > 1 tokens goes row by row like decode, every
 * token against each weight row as it streams past (vec_dot_pn): small
 * batches, where preparing the weights would cost more than it saves. */
static int pn_small(const k_ops *o, int wtype, int64_t n_tok) {
  if (n_tok < 2 || !o->xprep_q8_0 || qtype(wtype)->vec_dot_type != QT_Q8_0)
    return 0;
  if (n_tok <= o->pn_exact_tok && o->vec_dot_pn[wtype])
    return 1;
  return n_tok <= o->pn_max_tok && o->vec_dot_pn[wtype] &&
         o->vec_dot_pn2[wtype];
}

/* Prepared path limits: tokens per block (their prepared activations stay
 * in L2 while the thread's rows stream past). */
enum { PP_TOK_BLOCK = 32 };

static int pp_pairs(int64_t cols) {
  return (int)((cols / 32 + 1) / 2);
}

/* 1 for the K-quant prepared layout (Q8_K activations, super-blocks), 0 for
 * the Q8_0 one (pairs of 32-blocks). */
static int pp_k(int wtype) {
  return qtype(wtype)->vec_dot_type == QT_Q8_K;
}

/* Prepared units of a row (pairs or super-blocks) and their bytes. */
static int pp_units(int wtype, int64_t cols) {
  return pp_k(wtype) ? (int)(cols / QK_K) : pp_pairs(cols);
}

static size_t pp_wrow(int wtype, int64_t cols) {
  return (size_t)pp_units(wtype, cols) * (pp_k(wtype) ? K_WSB : K_WPAIR);
}

static size_t pp_xrow(int wtype, int64_t cols) {
  return (size_t)pp_units(wtype, cols) * (pp_k(wtype) ? K_XSB : K_XPAIR);
}

/* 1 when the prepared path serves this weight type and size. */
static int pp_usable(const k_ops *o, int wtype, int64_t cols, int64_t n_tok) {
  if (pp_k(wtype)) /* prefill only: decode streams the raw rows */
    return n_tok > 1 && o->wprep_k[wtype] && o->xprep_q8_k && o->tile_pk &&
           cols > 0;
  if (n_tok == 1) /* decode: vec_dot against prepared activations */
    return o->vec_dot_p[wtype] && o->xprep_q8_0 &&
           qtype(wtype)->vec_dot_type == QT_Q8_0;
  if (pn_small(o, wtype, n_tok))
    return 1;
  return o->wprep[wtype] && o->xprep_q8_0 &&
         qtype(wtype)->vec_dot_type == QT_Q8_0 && cols > 0;
}

/* Prefill rows [r0, r1) x all tokens on the prepared path: the rows are
 * prepared once into the thread's buffer, then swept by blocks of tokens
 * whose prepared activations stay in L2. */
static void mm_part_prep(const mm_job *j, int64_t r0, int64_t r1, int ith) {
  const k_ops *o = j->o;
  const int k = pp_k(j->wtype), np = pp_units(j->wtype, j->cols);
  const int mr = k ? o->tile_pk_mr : o->tile_p_mr;
  const int ntm = k ? o->tile_pk_nt : o->tile_p_nt;
  const k_prep_fn prep = k ? o->wprep_k[j->wtype] : o->wprep[j->wtype];
  const size_t wps = pp_wrow(j->wtype, j->cols);
  uint8_t *wbuf = j->wb + (size_t)ith * j->wb_stride; /* r1 - r0 rows */
  const uint8_t *end = j->W + (size_t)r1 * j->wrow;
  const uint8_t *pf = j->W + (size_t)r0 * j->wrow;
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *w = j->W + (size_t)r * j->wrow;
    if (o->pf_dist) /* the chunk's rows stream from memory: run ahead */
      prefetch_ahead(&pf, w + j->wrow + o->pf_dist, end);
    prep(w, (int)j->cols, wbuf + (size_t)(r - r0) * wps);
  }
  /* K-quants: the super-blocks in near-equal slices of at most tile_pk_ksb
   * (the same for every tile, so results do not depend on the batch) */
  int ks = np;
  if (k && o->tile_pk_ksb > 0 && np > o->tile_pk_ksb) {
    int n_sl = (np + o->tile_pk_ksb - 1) / o->tile_pk_ksb;
    ks = (np + n_sl - 1) / n_sl;
  }
  for (int64_t tb = 0; tb < j->n_tok; tb += PP_TOK_BLOCK) {
    int64_t te = tb + PP_TOK_BLOCK < j->n_tok ? tb + PP_TOK_BLOCK : j->n_tok;
    for (int s0 = 0; s0 < np; s0 += ks) {
      const int ns = np - s0 < ks ? np - s0 : ks;
      for (int64_t r = r0; r < r1; r += mr) {
        int nr = (int)(r1 - r < mr ? r1 - r : mr);
        const uint8_t *wp = wbuf + (size_t)(r - r0) * wps;
        for (int64_t t = tb; t < te; t += ntm) {
          int nt = (int)(te - t < ntm ? te - t : ntm);
          const uint8_t *xp = j->Xp + (size_t)t * j->xprow;
          float *y = j->Y + (size_t)t * (size_t)j->rows + (size_t)r;
          if (k)
            o->tile_pk(ns, wp + (size_t)s0 * K_WSB, wps, nr,
                       xp + (size_t)s0 * K_XSB, j->xprow, nt, y,
                       (size_t)j->rows, s0 > 0);
          else
            o->tile_p(np, wp, wps, nr, xp, j->xprow, nt, y, (size_t)j->rows);
        }
      }
    }
  }
}

/* Prefill rows [r0, r1) x all tokens with the type's tile (or one vec_dot
 * per pair), by blocks of tokens: the rows stay in L2 across blocks. */
static void mm_part_tile(const mm_job *j, int64_t r0, int64_t r1) {
  k_tile_fn tile = j->o->tile[j->wtype];
  int mr = tile ? j->o->tile_mr[j->wtype] : 1;
  int nt_max = tile ? j->o->tile_nt[j->wtype] : 1;
  for (int64_t tb = 0; tb < j->n_tok; tb += PP_TOK_BLOCK) {
    int64_t te = tb + PP_TOK_BLOCK < j->n_tok ? tb + PP_TOK_BLOCK : j->n_tok;
    for (int64_t r = r0; r < r1; r += mr) {
      int nr = (int)(r1 - r < mr ? r1 - r : mr);
      for (int64_t t = tb; t < te; t += nt_max) {
        int nt = (int)(te - t < nt_max ? te - t : nt_max);
        if (tile)
          tile((int)j->cols, j->W + (size_t)r * j->wrow, j->wrow, nr,
               j->X + (size_t)t * j->xrow, j->xrow, nt,
               j->Y + (size_t)t * (size_t)j->rows + (size_t)r, (size_t)j->rows);
        else
          tile_by_vec_dot(j, r, nr, t, nt);
      }
    }
  }
}

static void mm_part(const mm_job *j, int64_t r0, int64_t r1, int ith,
                    int fresh) {
  if (j->n_tok == 1 || (j->Xp && pn_small(j->o, j->wtype, j->n_tok)))
    mv_rows(j, r0, r1, fresh);
  else if (j->Xp)
    mm_part_prep(j, r0, r1, ith);
  else
    mm_part_tile(j, r0, r1);
}

/* Work items of one or more jobs sharing their input: chunks of the
 * concatenated rows (every token). The items are cut into one contiguous
 * region per thread; a thread takes the items of its own region from the
 * front, in order (decode: one uninterrupted weight stream per thread, on
 * disjoint memory), then takes what is left of the other regions from
 * their backs, so a preempted or late thread's share is picked up by the
 * others (tpool_run_dyn). Each weight row is read from memory (and
 * prepared) once per matmul. */
static int64_t total_rows(const mm_job *m, int n) {
  int64_t t = 0;
  for (int i = 0; i < n; i++)
    t += m[i].rows;
  return t;
}

enum { MM_MAX_REGIONS = 64 };

typedef struct {
  _Alignas(64) atomic_ullong span; /* items [lo, hi): hi << 32 | lo */
} mm_region;

typedef struct {
  const mm_job *m;
  int n;
  int n_reg;
  int64_t total; /* rows of all jobs */
  int64_t chunk; /* rows per item */
  int64_t n_items;
  mm_region reg[MM_MAX_REGIONS];
} mm_sched;

static void mm_item(const mm_sched *s, int64_t it, int ith, int fresh) {
  int64_t a = it * s->chunk;
  int64_t b = a + s->chunk < s->total ? a + s->chunk : s->total;
  int64_t base = 0;
  for (int m = 0; m < s->n && base < b; base += s->m[m].rows, m++) {
    int64_t lo = a > base ? a - base : 0;
    int64_t hi = b - base < s->m[m].rows ? b - base : s->m[m].rows;
    if (lo < hi)
      mm_part(&s->m[m], lo, hi, ith, fresh || lo == 0);
  }
}

/* Takes the first (front) or the last item left in region r; -1: none. */
static int64_t region_take(mm_region *r, int front) {
  unsigned long long v = atomic_load_explicit(&r->span, memory_order_relaxed);
  for (;;) {
    unsigned long long lo = v & 0xffffffffu, hi = v >> 32;
    if (lo >= hi)
      return -1;
    unsigned long long nv = front ? v + 1 : v - (1ull << 32);
    if (atomic_compare_exchange_weak_explicit(
            &r->span, &v, nv, memory_order_relaxed, memory_order_relaxed))
      return (int64_t)(front ? lo : hi - 1);
  }
}

static void mm_sched_init(mm_sched *s, const mm_job *m, int n, int64_t chunk,
                          int nth) {
  s->m = m, s->n = n, s->total = total_rows(m, n), s->chunk = chunk;
  s->n_items = (s->total + chunk - 1) / chunk;
  s->n_reg = nth < 1 ? 1 : nth > MM_MAX_REGIONS ? MM_MAX_REGIONS : nth;
  for (int r = 0; r < s->n_reg; r++) {
    long long lo, hi;
    tpool_split(s->n_items, r, s->n_reg, 1, &lo, &hi);
    atomic_init(&s->reg[r].span,
                (unsigned long long)hi << 32 | (unsigned long long)lo);
  }
}

static void mm_dyn_worker(void *arg, int ith, int nth) {
  mm_sched *s = arg;
  (void)nth;
  int own = ith % s->n_reg;
  int64_t prev = -2;
  for (int64_t it; (it = region_take(&s->reg[own], 1)) >= 0; prev = it)
    mm_item(s, it, ith, it != prev + 1);
  for (int k = 1; k < s->n_reg; k++) {
    mm_region *r = &s->reg[(own + k) % s->n_reg];
    for (int64_t it; (it = region_take(r, 0)) >= 0;)
      mm_item(s, it, ith, 1);
  }
}

/* Rows per work item: decode, about 32 items per thread (small items keep
 * the load balanced; each thread's own items are contiguous anyway), 8 for
 * a single thread; prefill, as many rows as keep ~128 KiB of (prepared)
 * weights hot, at most 64, at least 4 items per thread. Multiples of 16
 * (tiles stay whole, output cache lines mostly stay with one thread) unless
 * rows are few, then of the tile's rows (4, the K-quant path's 8). */
static int64_t mm_chunk(const mm_job *m, int n, int nth) {
  int64_t total = total_rows(m, n), c, q = 4;
  if (m[0].n_tok == 1 || pn_small(m[0].o, m[0].wtype, m[0].n_tok)) {
    int per = nth > 1 ? 32 : 8;
    c = (total + per * nth - 1) / (per * nth);
  } else {
    size_t per_row = m[0].wrow;
    if (pp_usable(m[0].o, m[0].wtype, m[0].cols, m[0].n_tok)) {
      per_row = pp_wrow(m[0].wtype, m[0].cols);
      if (pp_k(m[0].wtype) && m[0].o->tile_pk_mr > q)
        q = m[0].o->tile_pk_mr;
    }
    c = (int64_t)(131072 / per_row);
    c = c < 4 ? 4 : c > 64 ? 64 : c;
    int64_t bal = (total + 4 * nth - 1) / (4 * nth);
    if (bal < c)
      c = bal;
  }
  c = c >= 16 ? c / 16 * 16 : (c + q - 1) / q * q;
  return c < 4 ? 4 : c;
}

/* ---- prepared activations ------------------------------------------------ */

typedef struct {
  const mm_job *m;
  uint8_t *Xp;
  atomic_llong next; /* next token */
} xp_job;

static void xp_worker(void *arg, int ith, int nth) {
  xp_job *x = arg;
  (void)ith, (void)nth;
  const k_prep_fn f =
      pp_k(x->m->wtype) ? x->m->o->xprep_q8_k : x->m->o->xprep_q8_0;
  for (int64_t t; (t = atomic_fetch_add(&x->next, 1)) < x->m->n_tok;)
    f(x->m->X + (size_t)t * x->m->xrow, (int)x->m->cols,
      x->Xp + (size_t)t * x->m->xprow);
}

/* Prepared-path buffer layout: the activations (n_tok prepared rows), then
 * one weight buffer of `chunk` prepared rows per thread (the jobs share
 * their activation type, hence the prepared layout of m[0]). */
static size_t xp_act_bytes(const mm_job *m) {
  size_t b = (size_t)m->n_tok * pp_xrow(m->wtype, m->cols);
  return (b + 63) & ~(size_t)63;
}

static size_t xp_wb_stride(const mm_job *m, int64_t chunk) {
  size_t b = (size_t)chunk * pp_wrow(m->wtype, m->cols);
  return (b + 63) & ~(size_t)63;
}

/* Bytes of that buffer the jobs need (0: prepared path unused): weight
 * buffers only when some job prepares its weights (not decode, not a small
 * batch). */
static size_t xp_bytes(const mm_job *m, int n, int nth, int64_t chunk) {
  int act = 0, wb = 0;
  for (int i = 0; i < n; i++)
    if (pp_usable(m[i].o, m[i].wtype, m[i].cols, m[i].n_tok)) {
      act = 1;
      wb |= m[i].n_tok > 1 && !pn_small(m[i].o, m[i].wtype, m[i].n_tok);
    }
  if (!act)
    return 0;
  return xp_act_bytes(m) + (wb ? (size_t)nth * xp_wb_stride(m, chunk) : 0);
}

/* Prepares the activations into buf and points the jobs that can use the
 * prepared path at them and at the weight buffers. */
static void xp_attach(tpool *pool, mm_job *m, int n, uint8_t *buf,
                      int64_t chunk) {
  m[0].xprow = pp_xrow(m[0].wtype, m[0].cols);
  xp_job x = {&m[0], buf, 0};
  if (m[0].n_tok < 4)
    xp_worker(&x, 0, 1); /* decode: not worth waking the workers */
  else
    tpool_run_dyn(pool, xp_worker, &x);
  for (int i = 0; i < n; i++)
    if (pp_usable(m[i].o, m[i].wtype, m[i].cols, m[i].n_tok)) {
      m[i].Xp = buf;
      m[i].xprow = m[0].xprow;
      m[i].wb = m->n_tok > 1 && !pn_small(m[i].o, m[i].wtype, m->n_tok)
                    ? buf + xp_act_bytes(m)
                    : NULL;
      m[i].wb_stride = xp_wb_stride(m, chunk);
    }
}

/* ---- running ------------------------------------------------------------- */

static mm_job make_job(int wtype, const void *W, int64_t rows, int64_t cols,
                       const void *Xq, int64_t n_tok, float *Y) {
  mm_job j = {ops(), wtype, W,    qtype_row_size(wtype, cols),
              rows,  cols,  Xq,   k_act_row_size(wtype, cols),
              n_tok, Y,     NULL, 0,
              NULL,  0};
  return j;
}

static int valid_shape(int wtype, int64_t rows, int64_t cols, int64_t n_tok) {
  return k_type_supported(wtype) && rows >= 0 && n_tok >= 0 && cols > 0 &&
         cols % qtype(wtype)->blck == 0 && cols <= INT32_MAX;
}

/* Runs the jobs (same input, same n_tok). xp: a buffer of
 * xp_bytes(m, n, nth, chunk) bytes when that is not 0. */
static void mm_exec(tpool *pool, mm_job *m, int n, uint8_t *xp, int64_t chunk) {
  if (xp)
    xp_attach(pool, m, n, xp, chunk);
  mm_sched s;
  mm_sched_init(&s, m, n, chunk, tpool_n_threads(pool));
  tpool_run_dyn(pool, mm_dyn_worker, &s);
}

/* Runs jobs whose quantized input is already in place (not in the pool's
 * scratch), taking the prepared-path buffer from the scratch. */
static int mm_run(tpool *pool, mm_job *m, int n) {
  int64_t chunk = mm_chunk(m, n, tpool_n_threads(pool));
  size_t need = xp_bytes(m, n, tpool_n_threads(pool), chunk);
  void *own = NULL;
  uint8_t *xp = NULL;
  if (need) {
    xp = pool ? tpool_scratch(pool, need)
              : (own = aligned_alloc(64, (need + 63) & ~(size_t)63));
    if (!xp)
      return -1;
  }
  mm_exec(pool, m, n, xp, chunk);
  free(own);
  return 0;
}

int k_small_batch_max(int wtype) {
  const k_ops *o = ops();
  if (wtype < 0 || wtype >= QT_COUNT || !qtype(wtype) || !pn_small(o, wtype, 2))
    return 0;
  return o->pn_exact_tok;
}

int k_matmul_q(tpool *pool, int wtype, const void *W, int64_t rows,
               int64_t cols, const void *Xq, int64_t n_tok, float *Y) {
  if (!valid_shape(wtype, rows, cols, n_tok))
    return -1;
  if (rows == 0 || n_tok == 0)
    return 0;
  mm_job j = make_job(wtype, W, rows, cols, Xq, n_tok, Y);
  return mm_run(pool, &j, 1);
}

int k_matmul_q_multi(tpool *pool, const k_mat *mats, int n_mats, int64_t cols,
                     const void *Xq, int64_t n_tok) {
  if (n_mats < 1 || n_mats > K_MULTI_MAX)
    return -1;
  mm_job jm[K_MULTI_MAX];
  for (int m = 0; m < n_mats; m++) {
    int t = mats[m].wtype;
    if (!valid_shape(t, mats[m].rows, cols, n_tok) ||
        qtype(t)->vec_dot_type != qtype(mats[0].wtype)->vec_dot_type)
      return -1;
    jm[m] = make_job(t, mats[m].W, mats[m].rows, cols, Xq, n_tok, mats[m].Y);
  }
  if (n_tok == 0 || total_rows(jm, n_mats) == 0)
    return 0;
  return mm_run(pool, jm, n_mats);
}

typedef struct {
  int vdt;
  const float *X;
  int64_t n_tok, cols;
  uint8_t *Xq;
  size_t xrow;
  atomic_llong next; /* next token */
} qr_job;

static void qr_worker(void *arg, int ith, int nth) {
  qr_job *j = arg;
  (void)ith, (void)nth;
  for (int64_t t; (t = atomic_fetch_add(&j->next, 1)) < j->n_tok;)
    k_quantize_act(j->vdt, j->X + t * j->cols, j->Xq + (size_t)t * j->xrow,
                   j->cols);
}

void k_quantize_rows(tpool *pool, int wtype, const float *X, int64_t n_tok,
                     int64_t cols, void *Xq) {
  qr_job j = {qtype(wtype)->vec_dot_type,  X, n_tok, cols, Xq,
              k_act_row_size(wtype, cols), 0};
  if (n_tok < 4)
    qr_worker(&j, 0, 1); /* not worth waking the workers */
  else
    tpool_run_dyn(pool, qr_worker, &j);
}

int k_matmul(tpool *pool, int wtype, const void *W, int64_t rows, int64_t cols,
             const float *X, int64_t n_tok, float *Y) {
  if (!valid_shape(wtype, rows, cols, n_tok))
    return -1;
  if (n_tok == 0 || rows == 0)
    return 0;
  /* one scratch block: quantized activations, then the prepared path's */
  size_t qb = ((size_t)n_tok * k_act_row_size(wtype, cols) + 63) & ~(size_t)63;
  mm_job j = make_job(wtype, W, rows, cols, NULL, n_tok, Y);
  int64_t chunk = mm_chunk(&j, 1, tpool_n_threads(pool));
  size_t pb = xp_bytes(&j, 1, tpool_n_threads(pool), chunk);
  void *own = NULL;
  uint8_t *buf = pool ? tpool_scratch(pool, qb + pb)
                      : (own = aligned_alloc(64, qb + pb + 64));
  if (!buf)
    return -1;
  k_quantize_rows(pool, wtype, X, n_tok, cols, buf);
  j.X = buf;
  mm_exec(pool, &j, 1, pb ? buf + qb : NULL, chunk);
  free(own);
  return 0;
}

/* ==== f32 helpers ========================================================= */

void k_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
  const k_ops *o = ops();
  float mean = o->sumsq_f32(x, n) / (float)n;
  o->mul_scale(y, x, w, 1.0f / sqrtf(mean + eps), n);
}

void k_softmax(float *x, int n) {
  if (n <= 0)
    return;
  const k_ops *o = ops();
  float m = o->max_f32(x, n);
  float s = o->exp_sub_sum(x, m, n);
  o->scale(x, 1.0f / s, n);
}

float k_exp_sub_sum(float *x, float m, int n) {
  return n > 0 ? ops()->exp_sub_sum(x, m, n) : 0.0f;
}

void k_silu_mul(float *y, const float *a, const float *b, int n) {
  ops()->silu_mul(y, a, b, n);
}

/* GELU (tanh approximation) of every f16 value, itself rounded to f16:
 * ggml's table, so that k_gelu_mul rounds exactly as llama.cpp's CPU
 * backend does (it looks the f16-rounded input up in such a table). */
static uint16_t g_gelu_f16[1 << 16];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void) {
  for (int i = 0; i < (1 << 16); i++) {
    float x = q_fp16_to_fp32((q_half)i);
    float g = 0.5f * x *
              (1.0f +
               tanhf(0.79788456080286535588f * x * (1.0f + 0.044715f * x * x)));
    g_gelu_f16[i] = q_fp32_to_fp16(g);
  }
}

void k_gelu_mul(float *y, const float *a, const float *b, int n) {
  pthread_once(&g_gelu_once, gelu_table_init);
  const k_ops *o = ops();
  uint16_t h[64];
  float g[64];
  for (int i0 = 0; i0 < n; i0 += 64) {
    const int m = n - i0 < 64 ? n - i0 : 64;
    o->f32_to_f16(h, a + i0, m); /* the inputs in f16, */
    for (int i = 0; i < m; i++)  /* their GELU looked up, */
      h[i] = g_gelu_f16[h[i]];
    o->f16_to_f32(g, h, m); /* widened */
    for (int i = 0; i < m; i++) {
      const float x = a[i0 + i];
      y[i0 + i] = x <= -10.0f  ? 0.0f
                  : x >= 10.0f ? x * b[i0 + i]
                               : g[i] * b[i0 + i];
    }
  }
}

void k_add(float *y, const float *a, const float *b, int n) {
  ops()->add(y, a, b, n);
}

void k_scale(float *y, float s, int n) {
  ops()->scale(y, s, n);
}

float k_dot_f32(const float *x, const float *y, int n) {
  return ops()->dot_f32(x, y, n);
}

int k_argmax(const float *x, int n) {
  if (n <= 0)
    return -1;
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

void k_f32_to_f16(uint16_t *y, const float *x, int n) {
  ops()->f32_to_f16(y, x, n);
}

void k_f16_to_f32(float *y, const uint16_t *x, int n) {
  ops()->f16_to_f32(y, x, n);
}

float k_dot_f16(const float *q, const uint16_t *k, int n) {
  return ops()->dot_f16(q, k, n);
}

void k_axpy_f16(float *y, float a, const uint16_t *v, int n) {
  ops()->axpy_f16(y, a, v, n);
}

void k_attn_scores_f16(float *out, const float *q, const uint16_t *base,
                       const int32_t *idx, size_t stride, int n, int hd,
                       float scale) {
  ops()->attn_scores(out, q, base, idx, stride, n, hd, scale);
}

void k_attn_values_f16(float *out, const float *p, const uint16_t *base,
                       const int32_t *idx, size_t stride, int n, int hd) {
  ops()->attn_values(out, p, base, idx, stride, n, hd);
}

/* ---- rope ---------------------------------------------------------------- */

/* cos/sin of the rotation of pair i (theta as ggml's rope cache builds it). */
static void rope_cache(float *c, float *s, int n_pairs, int pos,
                       const k_rope_params *p) {
  float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
  float theta = (float)pos;
  for (int i = 0; i < n_pairs; i++) {
    float ff = p->freq_factors ? p->freq_factors[i] : 1.0f;
    float t = p->freq_scale * (theta / ff);
    c[i] = cosf(t);
    s[i] = sinf(t);
    theta *= theta_scale;
  }
}

static void rope_head(float *x, const float *c, const float *s, int n_pairs,
                      int neox) {
  for (int i = 0; i < n_pairs; i++) {
    int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
    float x0 = x[a], x1 = x[b];
    x[a] = x0 * c[i] - x1 * s[i];
    x[b] = x0 * s[i] + x1 * c[i];
  }
}

void k_rope(float *x, int n_heads, int head_dim, int pos,
            const k_rope_params *p) {
  enum { MAXP = 512 };
  float c[MAXP], s[MAXP];
  int n_pairs = p->n_rot / 2;
  if (n_pairs > MAXP)
    n_pairs = MAXP; /* n_rot <= 1024: every known model */
  if (n_pairs * 2 > head_dim)
    n_pairs = head_dim / 2;
  rope_cache(c, s, n_pairs, pos, p);
  for (int h = 0; h < n_heads; h++)
    rope_head(x + (size_t)h * head_dim, c, s, n_pairs, p->neox);
}
