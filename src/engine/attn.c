/* attn.c: the attention of one chunk over the f16 KV cache (attn.h): the
 * plan (tokens grouped by sequence, each group's cell range, work items)
 * and the items' scores, masked softmax and weighted values, with the SIMD
 * inner loops of attn_avx2.c / attn_avx512.c. */
#include "engine/attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attn_simd.h"
#include "engine/kernels.h"
#include "engine/quant.h"

#define ATTN_TB 16  /* most tokens per work item (fewer for long contexts) */
#define ATTN_CB 256 /* cells per block of the portable score and value loops   \
                     */
/* Below this many multiply-adds (~5 us) the attention of a chunk runs on
 * the calling thread: handing it to the pool would cost about as much. */
#define ATTN_INLINE_WORK 1e5

int attn_init(attn_state *a, int n_batch, int n_seq, int n_ctx, int n_threads,
              int n_head, int n_head_kv, int head_dim) {
  memset(a, 0, sizeof *a);
  a->n_head = n_head, a->n_head_kv = n_head_kv, a->head_dim = head_dim;
  a->n_ctx = n_ctx, a->n_seq = n_seq, a->n_threads = n_threads;
  size_t grp = (size_t)(n_head / n_head_kv), T = (size_t)n_threads;
  size_t B = (size_t)n_batch, hd = (size_t)head_dim, C = (size_t)n_ctx;
  /* tokens per item: up to ATTN_TB while a thread's scores and
   * probabilities (rows x n_ctx x 6 bytes) stay within ~4 MB */
  size_t tb = ((size_t)4 << 20) / (grp * C * 6);
  a->tb = tb < 1 ? 1 : tb > ATTN_TB ? ATTN_TB : (int)tb;
  a->rows = (int)(a->tb * grp);
  size_t R = (size_t)a->rows;
  a->order = calloc(B, sizeof(int32_t));
  a->groups = calloc((size_t)n_seq, sizeof(attn_group));
  a->items = calloc((B + (size_t)n_seq) * (size_t)n_head, sizeof(attn_item));
  a->qf = calloc(T * R * hd, sizeof(float));
  a->outp = calloc(T * R, sizeof(float *));
  a->vpos = calloc(T * C, sizeof(int32_t));
  a->q16 = calloc(T * R * hd, 2);
  a->s = calloc(T * R * C, sizeof(float));
  a->p16 = calloc(T * R * C, 2);
  return a->order && a->groups && a->items && a->qf && a->outp && a->vpos &&
                 a->q16 && a->s && a->p16
             ? 0
             : -1;
}

void attn_free(attn_state *a) {
  free(a->order);
  free(a->groups);
  free(a->items);
  free(a->qf);
  free(a->outp);
  free(a->vpos);
  free(a->q16);
  free(a->s);
  free(a->p16);
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

/* Groups the chunk's tokens by sequence (keeping order within one), finds
 * each group's cell range, and cuts the work into items. */
void attn_plan(attn_state *a, const kv_cache *kv, const eng_batch_tok *tok,
               int n) {
  int ng = 0, k = 0;
  for (int s = 0; s < a->n_seq; s++) {
    int32_t maxpos = -1, nt = 0;
    for (int t = 0; t < n; t++)
      if (tok[t].seq_id == s) {
        a->order[k + nt++] = t;
        if (tok[t].pos > maxpos)
          maxpos = tok[t].pos;
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
    attn_group *g = &a->groups[ng++];
    g->seq = s, g->lo = lo, g->nr = hi - lo + 1, g->t0 = k, g->nt = nt;
    k += nt;
  }
  /* items: (group, kv head, token block); split heads when too few */
  const int grp = a->n_head / a->n_head_kv;
  int blocks = 0;
  for (int gi = 0; gi < ng; gi++)
    blocks += (a->groups[gi].nt + a->tb - 1) / a->tb;
  /* all query heads of a kv head in one item (each f16 K/V value widened
   * once for all of them) unless that leaves a thread without work */
  int hstep = blocks * a->n_head_kv < a->n_threads ? 1 : grp;
  int ni = 0;
  for (int gi = 0; gi < ng; gi++)
    for (int t0 = 0; t0 < a->groups[gi].nt; t0 += a->tb)
      for (int g = 0; g < a->n_head_kv; g++)
        for (int h0 = 0; h0 < grp; h0 += hstep) {
          attn_item *it = &a->items[ni++];
          it->gi = gi, it->g = g, it->h0 = g * grp + h0, it->nh = hstep;
          it->t0 = t0;
          it->nt =
              a->groups[gi].nt - t0 < a->tb ? a->groups[gi].nt - t0 : a->tb;
        }
  a->n_items = ni;
  /* multiply-adds of the chunk's attention (scores and outputs) */
  a->work = 0;
  for (int gi = 0; gi < ng; gi++)
    a->work +=
        2.0 * a->groups[gi].nt * a->groups[gi].nr * a->n_head * a->head_dim;
}

/* ---- run ----------------------------------------------------------------*/

typedef struct {
  attn_state *a;
  const kv_cache *kv;
  int il;
  const attn_layer *lp;
  const eng_batch_tok *tok;
  const float *q;
  float *att;
  atomic_int next; /* items taken so far (tpool_run_dyn) */
} attn_args;

/* Row r's scores s[0..np) -> probabilities: cells this query may not see
 * (other sequences, later positions, outside the window) masked out; scale,
 * soft cap, softmax, then rounded to f16 into p as llama.cpp's f16 V.p
 * product does. */
static void attn_softmax_row(float *s, uint16_t *p, const int32_t *vpos, int np,
                             int32_t pos, const attn_layer *lp) {
  const int32_t from = lp->window > 0 ? pos - lp->window : INT32_MIN;
  for (int j = 0; j < np; j++)
    s[j] = vpos[j] <= pos && vpos[j] > from ? s[j] * lp->scale : -INFINITY;
  if (lp->softcap > 0)
    for (int j = 0; j < np; j++)
      if (s[j] != -INFINITY)
        s[j] = lp->softcap * tanhf(s[j] / lp->softcap);
  k_softmax(s, np);
  k_quantize_act(QT_F16, s, p, np);
}

/* One item: scores, masked softmax, weighted sum of values. */
static void attn_item_run(const attn_args *x, const attn_item *it, int ith) {
  attn_state *a = x->a;
  const kv_cache *kv = x->kv;
  const eng_batch_tok *tok = x->tok;
  const attn_group *gr = &a->groups[it->gi];
  const int hd = a->head_dim, Q = a->n_head * hd;
  const uint64_t bit = 1ull << gr->seq;
  uint16_t *q16 = a->q16 + (size_t)ith * a->rows * hd;
  float *S = a->s + (size_t)ith * a->rows * a->n_ctx;
  uint16_t *P = a->p16 + (size_t)ith * a->rows * a->n_ctx;
  float *qf = a->qf + (size_t)ith * a->rows * hd;
  const int nq = it->nt * it->nh;
  /* causal: cells past the last one this block of tokens sees are skipped */
  int32_t maxpos = -1;
  for (int ti = 0; ti < it->nt; ti++) {
    int32_t p = tok[a->order[gr->t0 + it->t0 + ti]].pos;
    if (p > maxpos)
      maxpos = p;
  }
  int nr = gr->nr;
  while (nr > 1 && !((kv->cells[gr->lo + nr - 1].seqs & bit) &&
                     kv->cells[gr->lo + nr - 1].pos <= maxpos))
    nr--;
  /* position of each cell of the range as this sequence sees it (INT32_MAX:
   * not its cell); the range is padded to 16 cells for the SIMD loops */
  int32_t *vpos = a->vpos + (size_t)ith * a->n_ctx;
  int np = (nr + 15) & ~15;
  if (gr->lo + np > kv->n_cells)
    np = nr;
  for (int j = 0; j < np; j++) {
    const kv_cell *cl = &kv->cells[gr->lo + j];
    vpos[j] = j < nr && (cl->seqs & bit) ? cl->pos : INT32_MAX;
  }
  /* qf = the queries of the item rounded to f16, as llama.cpp rounds them
   * for its f16 K.q product (row r = token r / nh, head h0 + r % nh) */
  for (int ti = 0; ti < it->nt; ti++) {
    int t = a->order[gr->t0 + it->t0 + ti];
    for (int j = 0; j < it->nh; j++) {
      size_t r = (size_t)(ti * it->nh + j) * hd;
      k_f32_to_f16(q16 + r, x->q + (size_t)t * Q + (size_t)(it->h0 + j) * hd,
                   hd);
      k_f16_to_f32(qf + r, q16 + r, hd);
    }
  }
  /* S[r][j] = sum_d qf[r][d] * K[g][d][lo + j]: long f16 axpys over cells */
  const size_t nc = (size_t)kv->pitch;
  const uint16_t *K = kv->k[x->il] + (size_t)it->g * hd * nc + gr->lo;
  /* register-blocked AVX2 (or AVX-512) loops when the range is a multiple
   * of 16 cells */
  const int simd = k_simd() >= K_SIMD_AVX2 && np % 16 == 0 && hd % 2 == 0;
  const int avx512 = simd && k_simd() >= K_SIMD_AVX512;
  if (avx512)
    attn_qk_avx512(qf, nq, hd, K, nc, np, S, (size_t)np);
  else if (simd)
    attn_qk_avx2(qf, nq, hd, K, nc, np, S, (size_t)np);
  else
    memset(S, 0, sizeof(float) * (size_t)nq * np);
  /* portable: blocks of ATTN_CB cells so the block of K (hd rows) stays in
   * L1 while every query row passes over it */
  for (int j0 = 0; !simd && j0 < np; j0 += ATTN_CB) {
    int nb = np - j0 < ATTN_CB ? np - j0 : ATTN_CB;
    for (int r = 0; r < nq; r++)
      for (int d = 0; d < hd; d++)
        k_axpy_f16(S + (size_t)r * np + j0, qf[(size_t)r * hd + d],
                   K + d * nc + j0, nb);
  }
  for (int r = 0; r < nq; r++) {
    int32_t pos = tok[a->order[gr->t0 + it->t0 + r / it->nh]].pos;
    attn_softmax_row(S + (size_t)r * np, P + (size_t)r * np, vpos, np, pos,
                     x->lp);
  }
  /* att[t][h][d] = sum_j V[g][d][lo + j] * p[r][j], in the same blocks */
  const uint16_t *V = kv->v[x->il] + (size_t)it->g * hd * nc + gr->lo;
  float **outp = a->outp + (size_t)ith * a->rows;
  for (int r = 0; r < nq; r++) {
    int t = a->order[gr->t0 + it->t0 + r / it->nh];
    outp[r] = x->att + (size_t)t * Q + (size_t)(it->h0 + r % it->nh) * hd;
    memset(outp[r], 0, sizeof(float) * hd);
  }
  if (avx512)
    attn_pv_avx512(P, (size_t)np, nq, V, nc, hd, np, outp);
  else if (simd)
    attn_pv_avx2(P, (size_t)np, nq, V, nc, hd, np, outp);
  for (int j0 = 0; !simd && j0 < np; j0 += ATTN_CB) {
    int nb = np - j0 < ATTN_CB ? np - j0 : ATTN_CB;
    for (int r = 0; r < nq; r++) {
      const uint16_t *p = P + (size_t)r * np + j0;
      for (int d = 0; d < hd; d++) {
        float part;
        k_vec_dot(QT_F16, nb, &part, V + d * nc + j0, p);
        outp[r][d] += part;
      }
    }
  }
}

/* Items are taken from a shared counter (tpool_run_dyn: a preempted thread
 * holds the others up by one item at most), last first: later token blocks
 * see more cells (causal), so the big items go first and the small ones
 * even out the end. */
static void attn_task(void *arg, int ith, int nth) {
  attn_args *x = arg;
  const int n = x->a->n_items;
  (void)nth;
  for (int i;
       (i = atomic_fetch_add_explicit(&x->next, 1, memory_order_relaxed)) < n;)
    attn_item_run(x, &x->a->items[n - 1 - i], ith);
}

void attn_run(attn_state *a, tpool *pool, const kv_cache *kv, int il,
              const attn_layer *lp, const eng_batch_tok *tok, const float *q,
              float *att) {
  attn_args x = {a, kv, il, lp, tok, q, att, 0};
  if (a->work < ATTN_INLINE_WORK) /* a short decode step: no wake-up */
    attn_task(&x, 0, 1);
  else
    tpool_run_dyn(pool, attn_task, &x);
}
