/* attn.c: the attention of one chunk over the f16 KV cache (attn.h): the
 * plan (tokens grouped by sequence, each group's cell range), the work
 * items of a window size (token blocks x kv heads, long single-token ranges
 * cut into chunks), and the items' scores, masked softmax, weighted values
 * and the merge of chunks, with the SIMD inner loops of attn_avx2.c /
 * attn_avx512.c. */
#include "engine/attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attn_simd.h"
#include "engine/kernels.h"
#include "engine/quant.h"

#define ATTN_TB 16 /* most tokens per work item (fewer for long contexts) */
/* cells per block of the portable score and value loops */
#define ATTN_CB 256
/* Below this many multiply-adds (~5 us) the attention of a chunk runs on
 * the calling thread: handing it to the pool would cost about as much. */
#define ATTN_INLINE_WORK 1e5

static int imin(int a, int b) {
  return a < b ? a : b;
}

int attn_init(attn_state *a, int n_batch, int n_seq, int n_ctx, int n_threads,
              int n_head, int n_head_kv, int head_dim) {
  memset(a, 0, sizeof *a);
  a->n_head = n_head, a->n_head_kv = n_head_kv, a->head_dim = head_dim;
  a->n_ctx = n_ctx, a->n_seq = n_seq, a->n_threads = n_threads;
  size_t grp = (size_t)(n_head / n_head_kv), T = (size_t)n_threads;
  size_t B = (size_t)n_batch, hd = (size_t)head_dim, H = (size_t)n_head;
  /* a range is padded to 16 cells for the SIMD loops */
  size_t C = (size_t)((n_ctx + 15) & ~15);
  /* tokens per item: up to ATTN_TB while a thread's scores and
   * probabilities (rows x n_ctx x 6 bytes) stay within ~4 MB */
  size_t tb = ((size_t)4 << 20) / (grp * C * 6);
  a->tb = tb < 1 ? 1 : tb > ATTN_TB ? ATTN_TB : (int)tb;
  a->rows = (int)(a->tb * grp);
  size_t R = (size_t)a->rows;
  int mc = (n_ctx + ATTN_CHUNK - 1) / ATTN_CHUNK;
  a->max_chunks = mc < 1 ? 1 : mc > ATTN_MAX_CHUNKS ? ATTN_MAX_CHUNKS : mc;
  size_t MC = (size_t)a->max_chunks;
  /* items: token blocks (at most n_batch / tb + n_seq) x n_head, plus up to
   * max_chunks x n_head per single-token group */
  a->max_items = (int)((B + (size_t)n_seq * (MC + 1)) * H);
  a->max_units = imin(n_batch, n_seq) * n_head;
  size_t U = (size_t)a->max_units;
  a->order = calloc(B, sizeof(int32_t));
  a->groups = calloc((size_t)n_seq, sizeof(attn_group));
  for (int i = 0; i < 2; i++)
    a->lists[i].items = calloc((size_t)a->max_items, sizeof(attn_item));
  a->qf = calloc(T * R * hd, sizeof(float));
  a->outp = calloc(T * R, sizeof(float *));
  a->vpos = calloc(T * C, sizeof(int32_t));
  a->q16 = calloc(T * R * hd, 2);
  a->s = calloc(T * R * C, sizeof(float));
  a->p16 = calloc(T * R * C, 2);
  a->part_o = calloc(U * MC * hd, sizeof(float));
  a->part_ml = calloc(U * MC * 2, sizeof(float));
  a->part_done = calloc(U, sizeof(atomic_int));
  return a->order && a->groups && a->lists[0].items && a->lists[1].items &&
                 a->qf && a->outp && a->vpos && a->q16 && a->s && a->p16 &&
                 a->part_o && a->part_ml && a->part_done
             ? 0
             : -1;
}

void attn_free(attn_state *a) {
  free(a->order);
  free(a->groups);
  for (int i = 0; i < 2; i++)
    free(a->lists[i].items);
  free(a->qf);
  free(a->outp);
  free(a->vpos);
  free(a->q16);
  free(a->s);
  free(a->p16);
  free(a->part_o);
  free(a->part_ml);
  free(a->part_done);
  memset(a, 0, sizeof *a);
}

/* ---- plan -----------------------------------------------------------------
 * The cache of a layer holds, per kv head g, keys and values transposed:
 * K[g][d][cell] and V[g][d][cell] (f16). For a sequence whose visible cells
 * lie in [lo, lo+nr), the scores of a query are hd long f16 axpys over the
 * cell range (sum over d of q[d] * K[g][d][lo..]) and its output is hd
 * nr-long f16 dot products of V rows with the probabilities: long vectors
 * for the SIMD kernels, and the numerics of llama.cpp's f16 KQ and KQV
 * products (q and the probabilities rounded to f16). Cells of the range that
 * belong to other sequences, or lie at later positions, are masked out. */

/* Groups the chunk's tokens by sequence (keeping order within one) and finds
 * each group's cell range; the items are built per window size by
 * attn_run. */
void attn_plan(attn_state *a, const kv_cache *kv, const eng_batch_tok *tok,
               int n) {
  int ng = 0, k = 0;
  for (int s = 0; s < a->n_seq; s++) {
    int32_t maxpos = -1, minpos = INT32_MAX, nt = 0;
    for (int t = 0; t < n; t++)
      if (tok[t].seq_id == s) {
        a->order[k + nt++] = t;
        maxpos = tok[t].pos > maxpos ? tok[t].pos : maxpos;
        minpos = tok[t].pos < minpos ? tok[t].pos : minpos;
      }
    if (!nt)
      continue;
    uint64_t bit = 1ull << s;
    int lo = kv->n_cells, hi = -1;
    for (int cell = 0; cell < kv->n_cells; cell++)
      if ((kv->cells[cell].seqs & bit) && kv->cells[cell].pos <= maxpos) {
        if (cell < lo)
          lo = cell;
        hi = cell;
      }
    if (hi < 0) /* no visible cell (the tokens' own are claimed first) */
      lo = hi = 0;
    attn_group *g = &a->groups[ng++];
    g->seq = s, g->lo = lo, g->nr = hi - lo + 1, g->t0 = k, g->nt = nt;
    g->minpos = minpos, g->maxpos = maxpos;
    k += nt;
  }
  a->n_groups = ng;
  a->lists[0].valid = a->lists[1].valid = 0;
  /* multiply-adds of the chunk's attention (scores and outputs) */
  a->work = 0;
  for (int gi = 0; gi < ng; gi++)
    a->work +=
        2.0 * a->groups[gi].nt * a->groups[gi].nr * a->n_head * a->head_dim;
}

/* ---- items ----------------------------------------------------------------*/

/* Whether cell c may be seen by a query of sequence bit at a position in
 * [minpos, maxpos] (window > 0: by the one at minpos, within its window). */
static int cell_visible(const kv_cache *kv, int c, uint64_t bit, int32_t minpos,
                        int32_t maxpos, int window) {
  const kv_cell *cl = &kv->cells[c];
  return (cl->seqs & bit) && cl->pos <= maxpos &&
         (window <= 0 || cl->pos > minpos - window);
}

/* Narrows [*lo, *lo + *nr) to its first and last cells visible to queries at
 * [minpos, maxpos] (at least one cell is kept). */
static void trim_range(const kv_cache *kv, uint64_t bit, int32_t minpos,
                       int32_t maxpos, int window, int *lo, int *nr) {
  int l = *lo, h = *lo + *nr - 1;
  while (l < h && !cell_visible(kv, l, bit, minpos, maxpos, window))
    l++;
  while (h > l && !cell_visible(kv, h, bit, minpos, maxpos, window))
    h--;
  *lo = l, *nr = h - l + 1;
}

/* Chunks of a group's range of nr cells: 1 unless the group is a single
 * token (decode) with a long range; then ranges of *cs cells (a multiple
 * of 16, at least ATTN_CHUNK). */
static int range_chunks(const attn_state *a, const attn_group *g, int nr,
                        int *cs) {
  *cs = nr;
  if (g->nt != 1 || nr <= ATTN_CHUNK)
    return 1;
  int nch = imin((nr + ATTN_CHUNK - 1) / ATTN_CHUNK, a->max_chunks);
  *cs = ((nr + nch - 1) / nch + 15) & ~15;
  return (nr + *cs - 1) / *cs;
}

/* Query heads per item: all heads of a kv head (each f16 K/V value read and
 * widened once for all of them: attention is bound by reading the cache),
 * unless that leaves a thread without work (splitting heads changes no
 * result). */
static int head_step(const attn_state *a, int items, int inline_run) {
  const int grp = a->n_head / a->n_head_kv;
  return !inline_run && items < a->n_threads ? 1 : grp;
}

/* Builds the items of the planned chunk for layers with this window. */
static void build_items(attn_state *a, const kv_cache *kv, attn_items *L,
                        int window) {
  const int grp = a->n_head / a->n_head_kv;
  int base = 0;
  for (int gi = 0; gi < a->n_groups; gi++) {
    attn_group *g = &a->groups[gi];
    int lo = g->lo, nr = g->nr, cs;
    trim_range(kv, 1ull << g->seq, g->minpos, g->maxpos, window, &lo, &nr);
    base += range_chunks(a, g, nr, &cs) * ((g->nt + a->tb - 1) / a->tb);
  }
  const int hstep =
      head_step(a, base * a->n_head_kv, a->work < ATTN_INLINE_WORK);
  int ni = 0, nu = 0;
  for (int gi = 0; gi < a->n_groups; gi++) {
    attn_group *g = &a->groups[gi];
    int lo = g->lo, nr = g->nr, cs;
    trim_range(kv, 1ull << g->seq, g->minpos, g->maxpos, window, &lo, &nr);
    const int nch = range_chunks(a, g, nr, &cs);
    for (int t0 = 0; t0 < g->nt; t0 += a->tb)
      for (int h0 = 0; h0 < a->n_head; h0 += hstep)
        for (int c = 0; c < nch; c++) {
          attn_item *it = &L->items[ni++];
          it->gi = gi, it->g = h0 / grp, it->h0 = h0, it->nh = hstep;
          it->t0 = t0, it->nt = imin(g->nt - t0, a->tb);
          it->lo = lo + c * cs, it->nr = imin(cs, nr - c * cs);
          it->ci = c, it->nch = nch, it->unit = nch > 1 ? nu + h0 : -1;
        }
    if (nch > 1)
      nu += a->n_head;
  }
  L->window = window, L->valid = 1, L->n_items = ni, L->n_units = nu;
}

/* The items for layers with this window (built once per plan). */
static const attn_items *items_for(attn_state *a, const kv_cache *kv,
                                   int window) {
  attn_items *L = &a->lists[window > 0];
  if (!L->valid || L->window != window)
    build_items(a, kv, L, window);
  for (int u = 0; u < L->n_units; u++)
    atomic_store_explicit(&a->part_done[u], 0, memory_order_relaxed);
  return L;
}

/* ---- run ----------------------------------------------------------------*/

typedef struct {
  attn_state *a;
  const attn_items *L;
  const kv_cache *kv;
  int il;
  const attn_layer *lp;
  const eng_batch_tok *tok;
  const float *q;
  float *att;
  atomic_int next; /* items taken so far (tpool_run_dyn) */
} attn_args;

/* Portable attn_softmax_avx2 (attn_simd.h): any n. */
static float softmax_row(float *s, const int32_t *vpos, int n, int32_t pos,
                         int32_t from, const attn_layer *lp, uint16_t *p,
                         float *m) {
  float mx = -INFINITY;
  for (int j = 0; j < n; j++) {
    float x = s[j] * lp->scale;
    if (lp->softcap > 0)
      x = lp->softcap * tanhf(x / lp->softcap);
    s[j] = vpos[j] <= pos && vpos[j] > from ? x : -INFINITY;
    mx = s[j] > mx ? s[j] : mx;
  }
  *m = mx;
  if (mx == -INFINITY) {
    memset(p, 0, sizeof(uint16_t) * (size_t)n);
    return 0;
  }
  float l = 0;
  for (int j = 0; j < n; j++)
    l += s[j] = expf(s[j] - mx);
  for (int j = 0; j < n; j++)
    s[j] *= 1.0f / l;
  k_f32_to_f16(p, s, n);
  return l;
}

/* The item's cells: its range, narrowed (unchunked) to the cells its tokens
 * (positions [minpos, maxpos]) may see. Returns the padded length np (a
 * multiple of 16 when the cache's pitch allows) and fills vpos[0..np): the
 * position of each cell as this sequence sees it (INT32_MAX: not its). */
static int item_cells(const attn_args *x, const attn_item *it, int32_t minpos,
                      int32_t maxpos, int32_t *vpos, int *lo_out) {
  const kv_cache *kv = x->kv;
  const uint64_t bit = 1ull << x->a->groups[it->gi].seq;
  int lo = it->lo, nr = it->nr;
  if (it->nch == 1)
    trim_range(kv, bit, minpos, maxpos, x->lp->window, &lo, &nr);
  int np = (nr + 15) & ~15;
  if (lo + np > kv->pitch)
    np = nr;
  for (int j = 0; j < np; j++) {
    const kv_cell *cl = &kv->cells[lo + j];
    vpos[j] = j < nr && (cl->seqs & bit) ? cl->pos : INT32_MAX;
  }
  *lo_out = lo;
  return np;
}

/* S[r][j] = sum_d qf[r][d] * K[d][j] over np cells (V: prefetched along
 * the way by the SIMD loops). */
static void item_scores(int simd, const float *qf, int nq, int hd,
                        const uint16_t *K, size_t nc, int np, float *S,
                        const uint16_t *V) {
  if (simd == 2)
    attn_qk_avx512(qf, nq, hd, K, nc, np, S, (size_t)np, V);
  else if (simd == 1)
    attn_qk_avx2(qf, nq, hd, K, nc, np, S, (size_t)np, V);
  if (simd)
    return;
  /* portable: blocks of ATTN_CB cells so the block of K (hd rows) stays in
   * L1 while every query row passes over it */
  memset(S, 0, sizeof(float) * (size_t)nq * np);
  for (int j0 = 0; j0 < np; j0 += ATTN_CB) {
    int nb = np - j0 < ATTN_CB ? np - j0 : ATTN_CB;
    for (int r = 0; r < nq; r++)
      for (int d = 0; d < hd; d++)
        k_axpy_f16(S + (size_t)r * np + j0, qf[(size_t)r * hd + d],
                   K + d * nc + j0, nb);
  }
}

/* out[r][d] += sum_j V[d][j] * P[r][j] over np cells. */
static void item_values(int simd, const uint16_t *P, int nq, int hd,
                        const uint16_t *V, size_t nc, int np,
                        float *const *out) {
  if (simd == 2)
    attn_pv_avx512(P, (size_t)np, nq, V, nc, hd, np, out);
  else if (simd == 1)
    attn_pv_avx2(P, (size_t)np, nq, V, nc, hd, np, out);
  for (int j0 = 0; !simd && j0 < np; j0 += ATTN_CB) {
    int nb = np - j0 < ATTN_CB ? np - j0 : ATTN_CB;
    for (int r = 0; r < nq; r++) {
      const uint16_t *p = P + (size_t)r * np + j0;
      for (int d = 0; d < hd; d++) {
        float part;
        k_vec_dot(QT_F16, nb, &part, V + d * nc + j0, p);
        out[r][d] += part;
      }
    }
  }
}

/* The rows of a unit whose chunks are all done: out = sum over chunks of
 * w_c * o_c / sum of w_c, w_c = l_c * exp(m_c - M), in chunk order. */
static void merge_unit(const attn_args *x, const attn_item *it) {
  const attn_state *a = x->a;
  const int hd = a->head_dim, MC = a->max_chunks, Q = a->n_head * hd;
  const int t = a->order[a->groups[it->gi].t0 + it->t0];
  for (int r = 0; r < it->nh; r++) {
    const size_t slot = (size_t)(it->unit + r) * MC;
    const float *ml = a->part_ml + slot * 2;
    float *out = x->att + (size_t)t * Q + (size_t)(it->h0 + r) * hd;
    float M = -INFINITY, w[ATTN_MAX_CHUNKS], W = 0;
    for (int c = 0; c < it->nch; c++)
      M = ml[2 * c] > M ? ml[2 * c] : M;
    for (int c = 0; c < it->nch; c++)
      W += w[c] = M == -INFINITY ? 0 : ml[2 * c + 1] * expf(ml[2 * c] - M);
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int c = 0; c < it->nch && W > 0; c++) {
      const float *o = a->part_o + (slot + (size_t)c) * hd, f = w[c] / W;
      for (int d = 0; d < hd; d++)
        out[d] += f * o[d];
    }
  }
}

/* Prefetches the first cache lines of the keys of item `it` (a guess at the
 * thread's next item), so that they load while this one finishes. */
static void prefetch_item(const attn_args *x, const attn_item *it) {
  const kv_cache *kv = x->kv;
  const int hd = x->a->head_dim;
  const uint16_t *K =
      kv->k[x->il] + (size_t)it->g * hd * kv->pitch + (size_t)it->lo;
  const int lines = it->nr > 32 ? 2 : 1; /* 32 f16 cells per line */
  for (int d = 0; d < hd; d++)
    for (int l = 0; l < lines; l++)
      __builtin_prefetch(K + (size_t)d * kv->pitch + 32 * l, 0, 3);
}

/* qf = the queries of the item rounded to f16, as llama.cpp rounds them for
 * its f16 K.q product (row r = token r / nh, head h0 + r % nh). */
static void item_queries(const attn_args *x, const attn_item *it,
                         const int32_t *order, uint16_t *q16, float *qf) {
  const int hd = x->a->head_dim, Q = x->a->n_head * hd;
  for (int ti = 0; ti < it->nt; ti++)
    for (int j = 0; j < it->nh; j++) {
      size_t r = (size_t)(ti * it->nh + j) * hd;
      k_f32_to_f16(q16 + r,
                   x->q + (size_t)order[ti] * Q + (size_t)(it->h0 + j) * hd,
                   hd);
      k_f16_to_f32(qf + r, q16 + r, hd);
    }
}

/* Each row's scores (rows of np in S) -> probabilities P; a chunk keeps each
 * row's max and sum in its slot of part_ml. */
static void item_probs(const attn_args *x, const attn_item *it,
                       const int32_t *order, int simd, const int32_t *vpos,
                       int np, float *S, uint16_t *P) {
  const attn_layer *lp = x->lp;
  for (int r = 0; r < it->nt * it->nh; r++) {
    int32_t pos = x->tok[order[r / it->nh]].pos;
    int32_t from = lp->window > 0 ? pos - lp->window : INT32_MIN;
    float *s = S + (size_t)r * np, m, l;
    uint16_t *p = P + (size_t)r * np;
    if (simd == 2)
      l = attn_softmax_avx512(s, vpos, np, pos, from, lp->scale, lp->softcap, p,
                              &m);
    else if (simd == 1)
      l = attn_softmax_avx2(s, vpos, np, pos, from, lp->scale, lp->softcap, p,
                            &m);
    else
      l = softmax_row(s, vpos, np, pos, from, lp, p, &m);
    if (it->nch > 1) {
      float *ml = x->a->part_ml +
                  ((size_t)(it->unit + r) * x->a->max_chunks + it->ci) * 2;
      ml[0] = m, ml[1] = l;
    }
  }
}

/* The item's output rows, zeroed: its tokens' rows of att, or a chunk's
 * partial outputs. */
static void item_outputs(const attn_args *x, const attn_item *it,
                         const int32_t *order, float **outp) {
  const attn_state *a = x->a;
  const int hd = a->head_dim, Q = a->n_head * hd;
  for (int r = 0; r < it->nt * it->nh; r++) {
    if (it->nch > 1)
      outp[r] = a->part_o +
                ((size_t)(it->unit + r) * a->max_chunks + it->ci) * (size_t)hd;
    else
      outp[r] = x->att + (size_t)order[r / it->nh] * Q +
                (size_t)(it->h0 + r % it->nh) * hd;
    memset(outp[r], 0, sizeof(float) * (size_t)hd);
  }
}

/* One item: scores, masked softmax, weighted sum of values; a chunk's
 * partial results, merged by the last chunk of its unit to finish. next
 * (NULL: none): the item the thread will likely run next, prefetched. */
static void attn_item_run(const attn_args *x, const attn_item *it, int ith,
                          const attn_item *next) {
  attn_state *a = x->a;
  const kv_cache *kv = x->kv;
  const int hd = a->head_dim, nq = it->nt * it->nh;
  const int32_t *order = a->order + a->groups[it->gi].t0 + it->t0;
  const size_t C = (size_t)((a->n_ctx + 15) & ~15), R = (size_t)a->rows;
  uint16_t *q16 = a->q16 + (size_t)ith * R * hd, *P = a->p16 + ith * R * C;
  float *S = a->s + ith * R * C, *qf = a->qf + (size_t)ith * R * hd;
  /* causal: cells past the last one this block of tokens sees are skipped,
   * and with a window those before the first one */
  int32_t minpos = INT32_MAX, maxpos = -1;
  for (int ti = 0; ti < it->nt; ti++) {
    int32_t p = x->tok[order[ti]].pos;
    maxpos = p > maxpos ? p : maxpos;
    minpos = p < minpos ? p : minpos;
  }
  int32_t *vpos = a->vpos + (size_t)ith * C;
  int lo;
  const int np = item_cells(x, it, minpos, maxpos, vpos, &lo);
  item_queries(x, it, order, q16, qf);
  /* register-blocked AVX2 (or AVX-512) loops when the range is a multiple
   * of 16 cells */
  const int level = k_simd();
  const int simd = level < K_SIMD_AVX2 || np % 16 || hd % 4 ? 0
                   : level >= K_SIMD_AVX512                 ? 2
                                                            : 1;
  const size_t nc = (size_t)kv->pitch;
  const size_t head = (size_t)it->g * hd * nc + (size_t)lo;
  item_scores(simd, qf, nq, hd, kv->k[x->il] + head, nc, np, S,
              kv->v[x->il] + head);
  if (next)
    prefetch_item(x, next);
  item_probs(x, it, order, simd, vpos, np, S, P);
  /* att[t][h][d] (a chunk: its partial output) = sum_j V[d][j] * p[r][j] */
  float **outp = a->outp + (size_t)ith * R;
  item_outputs(x, it, order, outp);
  item_values(simd, P, nq, hd, kv->v[x->il] + head, nc, np, outp);
  if (it->nch > 1 &&
      atomic_fetch_add_explicit(&a->part_done[it->unit], 1,
                                memory_order_acq_rel) == it->nch - 1)
    merge_unit(x, it);
}

/* Items are taken from a shared counter (tpool_run_dyn: a preempted thread
 * holds the others up by one item at most), last first: later token blocks
 * see more cells (causal), so the big items go first and the small ones
 * even out the end. */
static void attn_task(void *arg, int ith, int nth) {
  attn_args *x = arg;
  const int n = x->L->n_items;
  const attn_item *items = x->L->items;
  for (int i;
       (i = atomic_fetch_add_explicit(&x->next, 1, memory_order_relaxed)) <
       n;) /* the threads take turns: this one's next is likely i + nth */
    attn_item_run(x, &items[n - 1 - i], ith,
                  i + nth < n ? &items[n - 1 - i - nth] : NULL);
}

void attn_run(attn_state *a, tpool *pool, const kv_cache *kv, int il,
              const attn_layer *lp, const eng_batch_tok *tok, const float *q,
              float *att) {
  const attn_items *L = items_for(a, kv, lp->window);
  attn_args x = {a, L, kv, il, lp, tok, q, att, 0};
  if (a->work < ATTN_INLINE_WORK) /* a short decode step: no wake-up */
    attn_task(&x, 0, 1);
  else
    tpool_run_dyn(pool, attn_task, &x);
}
