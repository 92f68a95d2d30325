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

/* ==== scalar f32 helpers ===================================================
 */

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

/* ==== dispatch ==============================================================
 */

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
   * (default 0: off; hardware prefetch only) */
  const char *pf = getenv("HEARTH_PF");
  for (int l = 0; l < 3; l++)
    g_ops[l].pf_dist = pf ? atoi(pf) : 0;
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

/* ==== quantized dot products and activations ============================= */

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

/* ==== matmul ================================================================
 */

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

/* Matrix x vector over rows [r0, r1): the weights stream once. */
static void mv_rows(const mm_job *j, int64_t r0, int64_t r1) {
  k_vec_dot_fn f = j->o->vec_dot[j->wtype];
  const uint8_t *w = j->W + (size_t)r0 * j->wrow;
  const uint8_t *end = j->W + (size_t)r1 * j->wrow;
  const int dist = j->o->pf_dist;
  const uint8_t *pf = w + dist;
  for (int64_t r = r0; r < r1; r++, w += j->wrow) {
    if (dist) {
      const uint8_t *lim = w + j->wrow + dist;
      if (lim > end)
        lim = end;
      for (; pf < lim; pf += 64)
        __builtin_prefetch(pf, 0, 0);
    }
    if (f)
      f((int)j->cols, &j->Y[r], w, j->X);
    else
      q_vec_dot_ref(j->wtype, (int)j->cols, &j->Y[r], w, j->X);
  }
}

/* Prepared path limits: tokens per block (their prepared activations stay
 * in L2 while the thread's rows stream past). */
enum { PP_TOK_BLOCK = 32 };

static int pp_pairs(int64_t cols) {
  return (int)((cols / 32 + 1) / 2);
}

/* 1 when the prepared path serves this weight type and size. */
static int pp_usable(const k_ops *o, int wtype, int64_t cols, int64_t n_tok) {
  return n_tok > 1 && o->wprep[wtype] && o->xprep_q8_0 &&
         qtype(wtype)->vec_dot_type == QT_Q8_0 && cols > 0;
}

/* Prefill rows [r0, r1) x tokens [t0, t1) on the prepared path. */
static void mm_part_prep(const mm_job *j, int64_t r0, int64_t r1, int64_t t0,
                         int64_t t1, int ith) {
  const k_ops *o = j->o;
  const int mr = o->tile_p_mr, ntm = o->tile_p_nt, np = pp_pairs(j->cols);
  const size_t wps = (size_t)np * K_WPAIR;
  uint8_t *wbuf = j->wb + (size_t)ith * j->wb_stride; /* mr rows */
  for (int64_t r = r0; r < r1; r += mr) {
    int nr = (int)(r1 - r < mr ? r1 - r : mr);
    for (int k = 0; k < nr; k++)
      o->wprep[j->wtype](j->W + (size_t)(r + k) * j->wrow, (int)j->cols,
                         wbuf + (size_t)k * wps);
    for (int64_t t = t0; t < t1; t += ntm) {
      int nt = (int)(t1 - t < ntm ? t1 - t : ntm);
      o->tile_p(np, wbuf, wps, nr, j->Xp + (size_t)t * j->xprow, j->xprow, nt,
                j->Y + (size_t)t * (size_t)j->rows + (size_t)r,
                (size_t)j->rows);
    }
  }
}

/* Prefill rows [r0, r1) x tokens [t0, t1) with the type's tile (or one
 * vec_dot per pair). */
static void mm_part_tile(const mm_job *j, int64_t r0, int64_t r1, int64_t t0,
                         int64_t t1) {
  k_tile_fn tile = j->o->tile[j->wtype];
  int mr = tile ? j->o->tile_mr[j->wtype] : 1;
  int nt_max = tile ? j->o->tile_nt[j->wtype] : 1;
  for (int64_t r = r0; r < r1; r += mr) {
    int nr = (int)(r1 - r < mr ? r1 - r : mr);
    for (int64_t t = t0; t < t1; t += nt_max) {
      int nt = (int)(t1 - t < nt_max ? t1 - t : nt_max);
      if (tile)
        tile((int)j->cols, j->W + (size_t)r * j->wrow, j->wrow, nr,
             j->X + (size_t)t * j->xrow, j->xrow, nt,
             j->Y + (size_t)t * (size_t)j->rows + (size_t)r, (size_t)j->rows);
      else
        tile_by_vec_dot(j, r, nr, t, nt);
    }
  }
}

static void mm_part(const mm_job *j, int64_t r0, int64_t r1, int64_t t0,
                    int64_t t1, int ith) {
  if (j->n_tok == 1)
    mv_rows(j, r0, r1);
  else if (j->Xp)
    mm_part_prep(j, r0, r1, t0, t1, ith);
  else
    mm_part_tile(j, r0, r1, t0, t1);
}

/* Work items of one or more jobs sharing their input: (token block, chunk
 * of the concatenated rows), token-block major so the threads share a block
 * of activations while the weights stream; taken from a shared counter
 * (tpool_run_dyn) so a preempted thread's share is picked up by the others. */
typedef struct {
  const mm_job *m;
  int n;
  int64_t total; /* rows of all jobs */
  int64_t chunk; /* rows per item (multiple of 16: tiles stay whole) */
  int64_t n_rc;  /* row chunks */
  int64_t tblk;  /* tokens per item */
  int64_t n_items;
  atomic_llong next;
} mm_sched;

static void mm_item(const mm_sched *s, int64_t it, int ith) {
  const int64_t n_tok = s->m[0].n_tok;
  int64_t t0 = it / s->n_rc * s->tblk, a = it % s->n_rc * s->chunk;
  int64_t t1 = t0 + s->tblk < n_tok ? t0 + s->tblk : n_tok;
  int64_t b = a + s->chunk < s->total ? a + s->chunk : s->total;
  int64_t base = 0;
  for (int m = 0; m < s->n && base < b; base += s->m[m].rows, m++) {
    int64_t lo = a > base ? a - base : 0;
    int64_t hi = b - base < s->m[m].rows ? b - base : s->m[m].rows;
    if (lo < hi)
      mm_part(&s->m[m], lo, hi, t0, t1, ith);
  }
}

static void mm_dyn_worker(void *arg, int ith, int nth) {
  mm_sched *s = arg;
  (void)nth;
  for (int64_t it; (it = atomic_fetch_add(&s->next, 1)) < s->n_items;)
    mm_item(s, it, ith);
}

/* Runs the jobs (all with the same n_tok) over the pool. */
static void mm_schedule(tpool *pool, const mm_job *m, int n) {
  mm_sched s = {.m = m, .n = n};
  for (int i = 0; i < n; i++)
    s.total += m[i].rows;
  const int64_t n_tok = m[0].n_tok, nth = tpool_n_threads(pool);
  s.tblk = n_tok == 1 ? 1 : PP_TOK_BLOCK;
  int64_t n_tb = (n_tok + s.tblk - 1) / s.tblk;
  /* about 8 items per thread in all, at least 16 rows each */
  int64_t want = (8 * nth + n_tb - 1) / n_tb;
  s.chunk = (s.total + want - 1) / want;
  s.chunk = (s.chunk + 15) / 16 * 16;
  s.n_rc = (s.total + s.chunk - 1) / s.chunk;
  s.n_items = s.n_rc * n_tb;
  atomic_init(&s.next, 0);
  tpool_run_dyn(pool, mm_dyn_worker, &s);
}

/* ---- running jobs: prepare activations when the prepared path applies -- */

typedef struct {
  const mm_job *m;
  uint8_t *Xp;
  atomic_llong next; /* next token */
} xp_job;

static void xp_worker(void *arg, int ith, int nth) {
  xp_job *x = arg;
  (void)ith, (void)nth;
  for (int64_t t; (t = atomic_fetch_add(&x->next, 1)) < x->m->n_tok;)
    x->m->o->xprep_q8_0(x->m->X + (size_t)t * x->m->xrow, (int)x->m->cols,
                        x->Xp + (size_t)t * x->m->xprow);
}

/* Prepared-path buffer layout: the activations (n_tok rows of pairs), then
 * one weight buffer of tile_p_mr prepared rows per thread. */
static size_t xp_act_bytes(const mm_job *m) {
  size_t b = (size_t)m->n_tok * (size_t)pp_pairs(m->cols) * K_XPAIR;
  return (b + 63) & ~(size_t)63;
}

static size_t xp_wb_stride(const mm_job *m) {
  size_t b = (size_t)m->o->tile_p_mr * (size_t)pp_pairs(m->cols) * K_WPAIR;
  return (b + 63) & ~(size_t)63;
}

/* Bytes of that buffer the jobs need (0: prepared path unused). */
static size_t xp_bytes(const mm_job *m, int n, int nth) {
  for (int i = 0; i < n; i++)
    if (pp_usable(m[i].o, m[i].wtype, m[i].cols, m[i].n_tok))
      return xp_act_bytes(m) + (size_t)nth * xp_wb_stride(m);
  return 0;
}

/* Prepares the activations into buf (when any job can use them) and points
 * the jobs that can at them and at the weight buffers. */
static void xp_attach(tpool *pool, mm_job *m, int n, uint8_t *buf) {
  if (!buf)
    return;
  m[0].xprow = (size_t)pp_pairs(m[0].cols) * K_XPAIR;
  xp_job x = {&m[0], buf, 0};
  tpool_run_dyn(pool, xp_worker, &x);
  for (int i = 0; i < n; i++)
    if (pp_usable(m[i].o, m[i].wtype, m[i].cols, m[i].n_tok)) {
      m[i].Xp = buf;
      m[i].xprow = m[0].xprow;
      m[i].wb = buf + xp_act_bytes(m);
      m[i].wb_stride = xp_wb_stride(m);
    }
}

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

/* Runs single-matrix job j; xp: buffer for prepared activations of
 * xp_bytes(), or NULL to take it from the pool's scratch (malloc without a
 * pool). */
static int mm_run1(tpool *pool, mm_job *j, uint8_t *xp) {
  size_t need = xp_bytes(j, 1, tpool_n_threads(pool));
  void *own = NULL;
  if (need && !xp) {
    xp = pool ? tpool_scratch(pool, need)
              : (own = aligned_alloc(64, (need + 63) & ~(size_t)63));
    if (!xp)
      return -1;
  }
  xp_attach(pool, j, 1, need ? xp : NULL);
  mm_schedule(pool, j, 1);
  free(own);
  return 0;
}

int k_matmul_q(tpool *pool, int wtype, const void *W, int64_t rows,
               int64_t cols, const void *Xq, int64_t n_tok, float *Y) {
  if (!valid_shape(wtype, rows, cols, n_tok))
    return -1;
  if (rows == 0 || n_tok == 0)
    return 0;
  mm_job j = make_job(wtype, W, rows, cols, Xq, n_tok, Y);
  return mm_run1(pool, &j, NULL);
}

int k_matmul_q_multi(tpool *pool, const k_mat *mats, int n_mats, int64_t cols,
                     const void *Xq, int64_t n_tok) {
  if (n_mats < 1 || n_mats > K_MULTI_MAX)
    return -1;
  mm_job jm[K_MULTI_MAX];
  int64_t total = 0;
  for (int m = 0; m < n_mats; m++) {
    int t = mats[m].wtype;
    if (!valid_shape(t, mats[m].rows, cols, n_tok) ||
        qtype(t)->vec_dot_type != qtype(mats[0].wtype)->vec_dot_type)
      return -1;
    jm[m] = make_job(t, mats[m].W, mats[m].rows, cols, Xq, n_tok, mats[m].Y);
    total += mats[m].rows;
  }
  if (n_tok == 0 || total == 0)
    return 0;
  size_t need = xp_bytes(jm, n_mats, tpool_n_threads(pool));
  void *own = NULL, *xp = NULL;
  if (need) {
    xp = pool ? tpool_scratch(pool, need)
              : (own = aligned_alloc(64, (need + 63) & ~(size_t)63));
    if (!xp)
      return -1;
  }
  xp_attach(pool, jm, n_mats, xp);
  mm_schedule(pool, jm, n_mats);
  free(own);
  return 0;
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
  /* one scratch block: quantized activations, then prepared ones */
  size_t qb = ((size_t)n_tok * k_act_row_size(wtype, cols) + 63) & ~(size_t)63;
  mm_job j = make_job(wtype, W, rows, cols, NULL, n_tok, Y);
  size_t pb = xp_bytes(&j, 1, tpool_n_threads(pool));
  void *own = NULL;
  uint8_t *buf = pool ? tpool_scratch(pool, qb + pb)
                      : (own = aligned_alloc(64, qb + pb + 64));
  if (!buf)
    return -1;
  k_quantize_rows(pool, wtype, X, n_tok, cols, buf);
  j.X = buf;
  int rc = mm_run1(pool, &j, pb ? buf + qb : NULL);
  free(own);
  return rc;
}

/* ==== f32 helpers ===========================================================
 */

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

void k_silu_mul(float *y, const float *a, const float *b, int n) {
  ops()->silu_mul(y, a, b, n);
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
