/* Attention (src/engine/attn.c) against a plain scalar reference: random
 * queries, keys and values in a kv_cache shared by several sequences
 * (interleaved and shared cells, odd lengths), decode steps (long ranges
 * cut into chunks) and multi-token chunks (unchunked), sliding window and
 * soft cap on and off, 1 and 2 threads, every SIMD level the CPU has; the
 * chunked path against the unchunked one, bit-identical results across
 * thread counts (heads split or not), and window layers skipping the cells
 * before the window. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attn.h"
#include "engine/kernels.h"
#include "engine/kvcache.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "t.h"

enum { HD = 64, NKV = 2, NH = 6, NSEQ = 4, NCTX = 2400, NBATCH = 64 };

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1). */
static float frand(void) {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

static float f16r(float x) {
  return q_fp16_to_fp32(q_fp32_to_fp16(x));
}

/* A cache with random keys and values; sequence s holds lens[s] cells at
 * positions 0.., placed round-robin in runs of `run` cells (interleaved
 * sequences), and sequences 0 and 1 share their first `shared` cells. */
typedef struct {
  kv_cache kv;
  int lens[NSEQ];
} cache;

static int cache_make(cache *c, const int *lens, int run, int shared) {
  if (kv_init(&c->kv, NCTX, 1, NKV * HD, NSEQ))
    return -1;
  kv_cache *kv = &c->kv;
  memcpy(c->lens, lens, sizeof c->lens);
  int next = 0, done[NSEQ] = {0};
  for (int left = 1; left;) {
    left = 0;
    for (int s = 0; s < NSEQ; s++) {
      int start = s == 1 ? shared : 0;
      for (int k = 0; k < run && done[s] + start < lens[s]; k++) {
        if (next >= NCTX)
          return -1;
        kv_cell *cl = &kv->cells[next++];
        cl->pos = done[s]++ + start;
        cl->seqs = 1ull << s;
        if (s == 0 && cl->pos < shared)
          cl->seqs |= 2ull;
      }
      left |= done[s] + start < lens[s];
    }
  }
  kv->n_used = next;
  /* random keys and values with a drift along the positions, so that far
   * apart chunks of a range differ in their scores and values */
  for (int r = 0; r < kv->row; r++)
    for (int cell = 0; cell < kv->pitch; cell++) {
      float p = cell < kv->n_cells ? (float)kv->cells[cell].pos : 0;
      size_t i = (size_t)r * kv->pitch + cell;
      kv->k[0][i] =
          q_fp32_to_fp16(frand() * 2.0f + 1.5f * cosf(p * 0.007f + r));
      kv->v[0][i] = q_fp32_to_fp16(frand() * 0.5f + sinf(p * 0.01f + r));
    }
  return 0;
}

/* Reference attention of query q (n_head * HD) of sequence seq at pos. */
static void ref_attn(const kv_cache *kv, const float *q, int seq, int32_t pos,
                     const attn_layer *lp, double *out) {
  static double sc[NCTX];
  for (int h = 0; h < NH; h++) {
    const int g = h / (NH / NKV);
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < kv->n_cells; c++) {
      const kv_cell *cl = &kv->cells[c];
      int vis = ((cl->seqs >> seq) & 1) && cl->pos <= pos &&
                (lp->window <= 0 || cl->pos > pos - lp->window);
      sc[c] = -INFINITY;
      if (!vis)
        continue;
      double s = 0;
      for (int d = 0; d < HD; d++)
        s += (double)f16r(q[h * HD + d]) *
             q_fp16_to_fp32(kv->k[0][(size_t)(g * HD + d) * kv->pitch + c]);
      s *= lp->scale;
      if (lp->softcap > 0)
        s = lp->softcap * tanh(s / lp->softcap);
      sc[c] = s;
      mx = s > mx ? s : mx;
    }
    for (int c = 0; c < kv->n_cells; c++)
      sum += sc[c] = sc[c] == -INFINITY ? 0 : exp(sc[c] - mx);
    for (int d = 0; d < HD; d++) {
      double o = 0;
      for (int c = 0; c < kv->n_cells; c++)
        if (sc[c] > 0)
          o += sc[c] / sum *
               q_fp16_to_fp32(kv->v[0][(size_t)(g * HD + d) * kv->pitch + c]);
      out[h * HD + d] = o;
    }
  }
}

/* Runs the attention of tokens tok[0..n) with queries q over the pool
 * (NULL: inline) into att. */
static int run_attn(const kv_cache *kv, tpool *pool, int nth,
                    const eng_batch_tok *tok, int n, const float *q,
                    const attn_layer *lp, float *att) {
  attn_state a;
  if (attn_init(&a, NBATCH, NSEQ, NCTX, nth, NH, NKV, HD)) {
    attn_free(&a);
    return -1;
  }
  attn_plan(&a, kv, tok, n);
  attn_run(&a, pool, kv, 0, lp, tok, q, att);
  attn_free(&a);
  return 0;
}

/* Worst |att - reference| over the tokens. */
static double max_err(const kv_cache *kv, const eng_batch_tok *tok, int n,
                      const float *q, const attn_layer *lp, const float *att) {
  static double ref[NH * HD];
  double worst = 0;
  for (int t = 0; t < n; t++) {
    ref_attn(kv, q + (size_t)t * NH * HD, tok[t].seq_id, tok[t].pos, lp, ref);
    for (int i = 0; i < NH * HD; i++) {
      double e = fabs(att[(size_t)t * NH * HD + i] - ref[i]);
      worst = e > worst ? e : worst;
    }
  }
  return worst;
}

/* A batch: one decode token per sequence (positions lens[s] - 1: their own
 * cells are in the cache), or (prefill) the last nt positions of sequence
 * 0 and a decode token of the others. */
static int make_batch(const cache *c, int nt, eng_batch_tok *tok) {
  int n = 0;
  for (int s = 0; s < NSEQ; s++) {
    int k = s == 0 ? nt : 1;
    for (int i = k; i >= 1; i--)
      tok[n++] = (eng_batch_tok){0, c->lens[s] - i, s, 1};
  }
  return n;
}

static const attn_layer LAYERS[] = {
    {0.125f, 0, 0}, {0.125f, 0, 100}, {0.2f, 2.5f, 0}, {0.2f, 2.5f, 333}};
enum { NLAYERS = sizeof LAYERS / sizeof LAYERS[0] };

/* Every layer kind, batch kind, thread count and SIMD level within
 * tolerance of the reference; the threads' results bit-identical. */
static void test_against_reference(void) {
  cache c;
  const int lens[NSEQ] = {1037, 37, 701, 300};
  CHECK(cache_make(&c, lens, 29, 20) == 0);
  tpool *pool = tpool_create(2);
  CHECK(pool != NULL);
  static eng_batch_tok tok[NBATCH];
  static float q[NBATCH * NH * HD], att[NBATCH * NH * HD],
      att1[NBATCH * NH * HD];
  for (size_t i = 0; i < sizeof q / sizeof *q; i++)
    q[i] = frand() * 3.0f;
  const int level = k_simd();
  for (int lv = K_SIMD_SCALAR; lv <= level; lv++) {
    if (k_set_simd(lv))
      continue;
    for (int li = 0; li < NLAYERS; li++)
      for (int nt = 1; nt <= 41; nt += 40) {
        const attn_layer *lp = &LAYERS[li];
        int n = make_batch(&c, nt, tok);
        CHECK(run_attn(&c.kv, NULL, 1, tok, n, q, lp, att1) == 0);
        CHECK(run_attn(&c.kv, pool, 2, tok, n, q, lp, att) == 0);
        double e = max_err(&c.kv, tok, n, q, lp, att);
        CHECKF(e < 2e-3, "simd %d layer %d nt %d: err %g", lv, li, nt, e);
        CHECKF(memcmp(att, att1, sizeof(float) * n * NH * HD) == 0,
               "simd %d layer %d nt %d: 1 and 2 threads differ", lv, li, nt);
      }
  }
  k_set_simd(level);
  tpool_free(pool);
  kv_free(&c.kv);
}

/* A decode token alone (its long range chunked) against the same token in
 * a two-token chunk of its sequence (unchunked): within float tolerance. */
static void test_chunked_vs_unchunked(void) {
  cache c;
  const int lens[NSEQ] = {1500, 5, 800, 17};
  CHECK(cache_make(&c, lens, 64, 0) == 0);
  static float q[2 * NH * HD], one[NH * HD], two[2 * NH * HD];
  for (size_t i = 0; i < sizeof q / sizeof *q; i++)
    q[i] = frand() * 3.0f;
  for (int s = 0; s < NSEQ; s += 2)
    for (int li = 0; li < NLAYERS; li++) {
      eng_batch_tok tok[2] = {{0, lens[s] - 2, s, 1}, {0, lens[s] - 1, s, 1}};
      CHECK(run_attn(&c.kv, NULL, 1, tok + 1, 1, q + NH * HD, &LAYERS[li],
                     one) == 0);
      CHECK(run_attn(&c.kv, NULL, 1, tok, 2, q, &LAYERS[li], two) == 0);
      double worst = 0;
      for (int i = 0; i < NH * HD; i++) {
        double e = fabs(one[i] - two[NH * HD + i]);
        worst = e > worst ? e : worst;
      }
      CHECKF(worst < 1e-3, "seq %d layer %d: chunked vs not %g", s, li, worst);
    }
  kv_free(&c.kv);
}

/* A long single-token range is cut into chunks; with a window, a decode
 * step's items cover about the window, not the whole sequence. */
static void test_chunks_and_window_skip(void) {
  cache c;
  const int lens[NSEQ] = {2300, 1, 1, 1};
  CHECK(cache_make(&c, lens, 4096, 0) == 0);
  eng_batch_tok tok = {0, lens[0] - 1, 0, 1};
  static float q[NH * HD], att[NH * HD];
  for (int i = 0; i < NH * HD; i++)
    q[i] = frand();
  attn_state a;
  CHECK(attn_init(&a, NBATCH, NSEQ, NCTX, 2, NH, NKV, HD) == 0);
  attn_plan(&a, &c.kv, &tok, 1);
  const attn_layer full = {0.125f, 0, 0}, win = {0.125f, 0, 128};
  attn_run(&a, NULL, &c.kv, 0, &full, &tok, q, att);
  const attn_items *L = &a.lists[0];
  long cells = 0;
  for (int i = 0; i < L->n_items; i++)
    cells += L->items[i].nr * L->items[i].nh;
  int nch = (lens[0] + ATTN_CHUNK - 1) / ATTN_CHUNK;
  nch = nch > ATTN_MAX_CHUNKS ? ATTN_MAX_CHUNKS : nch;
  CHECK(nch > 1);
  CHECK_INT(L->n_items, NKV * nch); /* chunks of each kv head */
  CHECK_INT(cells, (long)lens[0] * NH);
  attn_run(&a, NULL, &c.kv, 0, &win, &tok, q, att);
  L = &a.lists[1];
  cells = 0;
  for (int i = 0; i < L->n_items; i++)
    cells += L->items[i].nr * L->items[i].nh;
  CHECK_INT(cells, 128L * NH);
  CHECKF(max_err(&c.kv, &tok, 1, q, &win, att) < 2e-3, "window decode");
  attn_free(&a);
  kv_free(&c.kv);
}

/* Too few items for the threads: heads are split over more items, with the
 * same bits as all heads of a kv head in one item. */
static void test_head_split_same_bits(void) {
  cache c;
  const int lens[NSEQ] = {200, 3, 3, 3};
  CHECK(cache_make(&c, lens, 7, 0) == 0);
  eng_batch_tok tok = {0, lens[0] - 1, 0, 1};
  static float q[NH * HD], att1[NH * HD], att3[NH * HD];
  for (int i = 0; i < NH * HD; i++)
    q[i] = frand() * 3.0f;
  tpool *pool = tpool_create(3);
  CHECK(pool != NULL);
  attn_state a;
  CHECK(attn_init(&a, NBATCH, NSEQ, NCTX, 3, NH, NKV, HD) == 0);
  attn_plan(&a, &c.kv, &tok, 1);
  attn_run(&a, pool, &c.kv, 0, &LAYERS[2], &tok, q, att3);
  CHECK_INT(a.lists[0].n_items, NH); /* 2 kv heads < 3 threads: split */
  CHECK_INT(a.lists[0].items[0].nh, 1);
  attn_free(&a);
  CHECK(run_attn(&c.kv, NULL, 1, &tok, 1, q, &LAYERS[2], att1) == 0);
  CHECK(memcmp(att1, att3, sizeof att1) == 0);
  CHECKF(max_err(&c.kv, &tok, 1, q, &LAYERS[2], att3) < 2e-3, "split heads");
  tpool_free(pool);
  kv_free(&c.kv);
}

int main(void) {
  RUN(test_against_reference);
  RUN(test_chunked_vs_unchunked);
  RUN(test_chunks_and_window_skip);
  RUN(test_head_split_same_bits);
  T_MAIN_END();
}
