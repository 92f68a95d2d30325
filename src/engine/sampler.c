/* Token sampler (see sampler.h): logit bias, penalties, temperature, top-k,
 * top-p, min-p, seeded draw, and model log-probabilities.
 *
 * Cost per call on a vocabulary of n tokens: a few vectorized O(n) passes.
 * Without top-k (the platform has none), the probabilities are computed
 * densely with the engine's SIMD exponential and drawn through per-block
 * running sums; top-p finds its set by bucketing the logits (only the
 * bucket where the mass is reached is sorted, and tokens too unlikely to
 * matter are never bucketed); min-p is a logit floor. With top-k, a
 * quickselect of the k best comes first. The copy of the logits is made
 * only when bias or penalties change them. Buffers are allocated on first
 * use for a given n_vocab and reused.
 *
 * Knows nothing about models, tokenizers, HTTP or JSON. */
#include "engine/sampler.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/kernels.h"

/* ==== PRNG: xoshiro256** seeded with splitmix64 ========================== */

typedef struct {
  uint64_t s[4];
} rng_state;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_seed(rng_state *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_state *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(rng_state *r) {
  return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t os_seed(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&v;
  }
  return v;
}

/* ==== sampler state ======================================================= */

/* Tokens per block of the dense draw's running sums. */
#define DRAW_BLOCK 256
/* Buckets of the top-p threshold search (by logit, best first). */
#define TOP_P_BUCKETS 1024

typedef struct {
  int32_t id;
  float logit; /* (adjusted logit - max) / temperature: <= 0 */
  float p;     /* exp(logit): unnormalized probability */
} cand;

struct sampler {
  sampler_params p; /* logit_bias points at our own copy */
  sampler_logit_bias *bias;
  rng_state rng;

  /* distinct generated tokens with their counts (presence/frequency) */
  struct gen_count {
    int32_t tok, cnt;
  } * gen;
  int n_gen, cap_gen;

  /* repetition window: ring of the last tokens seen */
  int32_t *ring;
  int ring_cap, ring_len, ring_head;
  int32_t *all_seen; /* window -1: every token seen (growable) */
  int n_seen, cap_seen;

  /* scratch for one call, sized to n_vocab */
  int n_vocab;
  float *work;
  float *lx;       /* scaled logits (w - max w) / temperature, dense */
  float *prob;     /* their unnormalized probabilities exp(lx) */
  double *bsum;    /* their sums per block of DRAW_BLOCK */
  int32_t *bucket; /* top-p: each token's bucket (TOP_P_BUCKETS: none) */
  cand *cands;
  uint8_t *mark;
};

sampler_params sampler_default_params(void) {
  sampler_params p;
  memset(&p, 0, sizeof p);
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  p.repetition_penalty = 1.0f;
  p.repetition_window = 64;
  p.seed = SAMPLER_SEED_RANDOM;
  return p;
}

int sampler_params_check(const sampler_params *p, char *err, size_t errlen) {
  const char *what = NULL;
  double got = 0;
  if (!p) {
    snprintf(err, errlen, "sampler params missing");
    return -1;
  }
  if (!(p->temperature >= 0 && isfinite(p->temperature)))
    what = "temperature must be >= 0", got = p->temperature;
  else if (p->top_k < 0)
    what = "top_k must be >= 0", got = p->top_k;
  else if (!(p->top_p > 0 && p->top_p <= 1))
    what = "top_p must be in (0, 1]", got = p->top_p;
  else if (!(p->min_p >= 0 && p->min_p <= 1))
    what = "min_p must be in [0, 1]", got = p->min_p;
  else if (!isfinite(p->presence_penalty))
    what = "presence_penalty must be finite", got = p->presence_penalty;
  else if (!isfinite(p->frequency_penalty))
    what = "frequency_penalty must be finite", got = p->frequency_penalty;
  else if (!(p->repetition_penalty > 0 && isfinite(p->repetition_penalty)))
    what = "repetition_penalty must be > 0", got = p->repetition_penalty;
  else if (p->repetition_window < -1)
    what = "repetition_window must be >= -1", got = p->repetition_window;
  else if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
    what = "logit_bias count/pointer mismatch", got = p->n_logit_bias;
  else if (p->n_logprobs < 0 || p->n_logprobs > SAMPLER_MAX_LOGPROBS)
    what = "n_logprobs must be in [0, 20]", got = p->n_logprobs;
  if (!what) {
    for (int i = 0; i < p->n_logit_bias; i++) {
      if (p->logit_bias[i].token < 0 || !isfinite(p->logit_bias[i].bias)) {
        snprintf(err, errlen, "logit_bias[%d]: token %d bias %g is invalid", i,
                 (int)p->logit_bias[i].token, (double)p->logit_bias[i].bias);
        return -1;
      }
    }
    return 0;
  }
  snprintf(err, errlen, "%s, got %g", what, got);
  return -1;
}

sampler *sampler_new(const sampler_params *p) {
  char err[160];
  if (sampler_params_check(p, err, sizeof err) != 0)
    return NULL;
  sampler *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->p = *p;
  if (p->n_logit_bias > 0) {
    s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias);
    if (!s->bias) {
      free(s);
      return NULL;
    }
    memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
  }
  s->p.logit_bias = s->bias;
  if (p->repetition_window > 0) {
    s->ring_cap = p->repetition_window;
    s->ring = malloc((size_t)s->ring_cap * sizeof *s->ring);
    if (!s->ring) {
      sampler_free(s);
      return NULL;
    }
  }
  rng_seed(&s->rng, p->seed == SAMPLER_SEED_RANDOM ? os_seed() : p->seed);
  return s;
}

void sampler_free(sampler *s) {
  if (!s)
    return;
  free(s->bias);
  free(s->gen);
  free(s->ring);
  free(s->all_seen);
  free(s->work);
  free(s->lx);
  free(s->prob);
  free(s->bsum);
  free(s->bucket);
  free(s->cands);
  free(s->mark);
  free(s);
}

void sampler_reset(sampler *s) {
  s->n_gen = 0;
  s->ring_len = s->ring_head = 0;
  s->n_seen = 0;
  if (s->p.seed != SAMPLER_SEED_RANDOM)
    rng_seed(&s->rng, s->p.seed);
}

/* ==== fast exp =========================================================== */

/* e^x for x <= 0 (the only inputs here: logits minus their max), relative
 * error < 2e-7, 0 below -87 (and for -inf). Branch-free so loops over it
 * vectorize: x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^6
 * (truncation < 1.2e-7), 2^n put in the exponent bits. */
static inline float fast_expf(float x) {
  union {
    float f;
    uint32_t u;
  } in = {.f = x}, lo = {.f = -87.0f}, sc, out;
  /* keep: all ones when x > -87 (never for NaN or -inf); masks instead of
   * branches or selects, so the compiler vectorizes callers' loops */
  uint32_t keep = -(uint32_t)(x > -87.0f);
  in.u = (in.u & keep) | (lo.u & ~keep);
  float t = in.f * 1.4426950408889634f;
  float fn = (t + 12582912.0f) - 12582912.0f; /* round to nearest */
  float r = (t - fn) * 0.6931471805599453f;
  float e =
      1.0f +
      r * (1.0f + r * (0.5f + r * (1.0f / 6 +
                                   r * (1.0f / 24 +
                                        r * (1.0f / 120 + r * (1.0f / 720))))));
  sc.u = (uint32_t)((int32_t)fn + 127) << 23;
  out.f = e * sc.f;
  out.u &= keep;
  return out.f;
}

/* Index of the largest value (the lowest index among equals; NaN never
 * wins), -1 when none is above -inf. Eight independent lanes so the loop
 * vectorizes; the lanes are merged in index order. */
static int32_t argmax(const float *w, int n) {
  float lv[8];
  int32_t li[8];
  for (int l = 0; l < 8; l++)
    lv[l] = -INFINITY, li[l] = -1;
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      int gt = w[i + l] > lv[l];
      lv[l] = gt ? w[i + l] : lv[l];
      li[l] = gt ? i + l : li[l];
    }
  int32_t best = -1;
  float bv = -INFINITY;
  for (int l = 0; l < 8; l++)
    if (li[l] >= 0 && (lv[l] > bv || (lv[l] == bv && li[l] < best)))
      bv = lv[l], best = li[l];
  for (; i < n; i++)
    if (w[i] > bv)
      bv = w[i], best = i;
  return best;
}

/* Sum of exp(x[i] - mx) over the values of x that are not NaN (mx their
 * max), using tmp (n floats) for the engine's SIMD exponentials by blocks
 * summed in double: accurate to ~1e-6 relative. */
static double sum_exp(const float *x, int n, float mx, float *tmp) {
  enum { B = 4096 };
  double total = 0;
  for (int b0 = 0; b0 < n; b0 += B) {
    const int len = b0 + B < n ? B : n - b0;
    for (int i = b0; i < b0 + len; i++)
      tmp[i] = x[i] == x[i] ? x[i] : -INFINITY; /* NaN: absent */
    total += k_exp_sub_sum(tmp + b0, mx, len);
  }
  return total;
}

/* ==== history ============================================================= */

static int grow_i32(int32_t **a, int *cap, int need) {
  if (need <= *cap)
    return 0;
  int nc = *cap ? *cap * 2 : 64;
  while (nc < need)
    nc *= 2;
  int32_t *na = realloc(*a, (size_t)nc * sizeof *na);
  if (!na)
    return -1;
  *a = na;
  *cap = nc;
  return 0;
}

static void window_push(sampler *s, int32_t tok) {
  if (s->p.repetition_window > 0) {
    s->ring[s->ring_head] = tok;
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    if (s->ring_len < s->ring_cap)
      s->ring_len++;
  } else if (s->p.repetition_window == -1) {
    /* OOM here only shortens the remembered history. */
    if (grow_i32(&s->all_seen, &s->cap_seen, s->n_seen + 1) == 0)
      s->all_seen[s->n_seen++] = tok;
  }
}

void sampler_accept_prompt(sampler *s, const int32_t *toks, int n) {
  for (int i = 0; i < n; i++)
    window_push(s, toks[i]);
}

void sampler_accept(sampler *s, int32_t tok) {
  window_push(s, tok);
  if (s->p.presence_penalty == 0 && s->p.frequency_penalty == 0)
    return;
  for (int i = 0; i < s->n_gen; i++) {
    if (s->gen[i].tok == tok) {
      s->gen[i].cnt++;
      return;
    }
  }
  if (s->n_gen == s->cap_gen) {
    int nc = s->cap_gen ? s->cap_gen * 2 : 64;
    struct gen_count *ng = realloc(s->gen, (size_t)nc * sizeof *ng);
    if (!ng)
      return; /* OOM only loses this token's penalty */
    s->gen = ng;
    s->cap_gen = nc;
  }
  s->gen[s->n_gen].tok = tok;
  s->gen[s->n_gen].cnt = 1;
  s->n_gen++;
}

/* ==== logit adjustments =================================================== */

/* Reallocates *p to `bytes`; 0, or -1 (then *p is unchanged). */
static int regrow(void **p, size_t bytes) {
  void *q = realloc(*p, bytes);
  if (!q)
    return -1;
  *p = q;
  return 0;
}

static int ensure_scratch(sampler *s, int n_vocab) {
  if (s->n_vocab >= n_vocab && s->work)
    return 0;
  size_t n = (size_t)n_vocab;
  if (regrow((void **)&s->work, n * sizeof *s->work) ||
      regrow((void **)&s->lx, n * sizeof *s->lx) ||
      regrow((void **)&s->prob, n * sizeof *s->prob) ||
      regrow((void **)&s->bsum, (n / DRAW_BLOCK + 1) * sizeof *s->bsum) ||
      regrow((void **)&s->bucket, n * sizeof *s->bucket) ||
      regrow((void **)&s->cands, n * sizeof *s->cands) ||
      regrow((void **)&s->mark, n))
    return -1;
  memset(s->mark, 0, (size_t)n_vocab);
  s->n_vocab = n_vocab;
  return 0;
}

static void apply_bias(const sampler *s, float *w, int n_vocab) {
  for (int i = 0; i < s->p.n_logit_bias; i++) {
    int32_t t = s->bias[i].token;
    if (t >= 0 && t < n_vocab)
      w[t] += s->bias[i].bias;
  }
}

/* llama.cpp semantics: each distinct token of the window once; positive
 * logits are divided by the penalty, negative ones multiplied. */
static void penalize_one(float *w, int32_t t, float pen) {
  w[t] = w[t] > 0 ? w[t] / pen : w[t] * pen;
}

static void apply_repetition(sampler *s, float *w, int n_vocab) {
  float pen = s->p.repetition_penalty;
  const int32_t *toks = s->p.repetition_window == -1 ? s->all_seen : s->ring;
  int n = s->p.repetition_window == -1 ? s->n_seen : s->ring_len;
  if (pen == 1.0f || n == 0)
    return;
  for (int i = 0; i < n; i++) {
    int32_t t = toks[i];
    if (t >= 0 && t < n_vocab && !s->mark[t]) {
      s->mark[t] = 1;
      penalize_one(w, t, pen);
    }
  }
  for (int i = 0; i < n; i++) /* mark is all-zero between calls */
    if (toks[i] >= 0 && toks[i] < n_vocab)
      s->mark[toks[i]] = 0;
}

/* OpenAI semantics: logit -= count * frequency + (count > 0) * presence. */
static void apply_presence_frequency(const sampler *s, float *w, int n_vocab) {
  for (int i = 0; i < s->n_gen; i++) {
    int32_t t = s->gen[i].tok;
    if (t >= 0 && t < n_vocab)
      w[t] -=
          (float)s->gen[i].cnt * s->p.frequency_penalty + s->p.presence_penalty;
  }
}

/* ==== log-probabilities of the raw distribution =========================== */

/* Keeps the k largest logits of x in top[] (descending); simple insertion
 * into a tiny sorted array: k <= 20, so O(n * small). */
static int top_n_raw(const float *x, int n, int k, sampler_logprob *top) {
  int m = 0;
  for (int i = 0; i < n; i++) {
    float v = x[i];
    if (isnan(v) || (m == k && v <= top[m - 1].logprob))
      continue;
    int j = m < k ? m++ : k - 1;
    while (j > 0 && top[j - 1].logprob < v) {
      top[j] = top[j - 1];
      j--;
    }
    top[j].token = i;
    top[j].logprob = v;
  }
  return m;
}

/* log(sum(exp(x - max))) + max over the raw logits: the log-normalizer.
 * NaN logits count as absent (-inf). */
static double log_normalizer(const float *x, int n, float *tmp) {
  int32_t best = argmax(x, n);
  if (best < 0)
    return -INFINITY;
  return x[best] + log(sum_exp(x, n, x[best], tmp));
}

static void fill_info(sampler *s, const float *logits, int n_vocab, int32_t tok,
                      sample_info *info) {
  double lz = log_normalizer(logits, n_vocab, s->work);
  int k = s->p.n_logprobs < n_vocab ? s->p.n_logprobs : n_vocab;
  info->token = tok;
  info->logprob = (float)((double)logits[tok] - lz);
  info->n_top = k > 0 ? top_n_raw(logits, n_vocab, k, info->top) : 0;
  for (int i = 0; i < info->n_top; i++)
    info->top[i].logprob = (float)((double)info->top[i].logprob - lz);
}

/* ==== truncation ========================================================== */

/* Strict total order, best first: higher logit, then lower id (so ties
 * resolve deterministically). */
static int cand_gt(const cand *a, const cand *b) {
  return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Lomuto partition of c[lo..hi] around a median-of-three pivot in the
 * cand_gt order: returns i with c[lo..i) better than c[i], c(i..hi] not. */
static int partition(cand *c, int lo, int hi) {
  int mid = lo + (hi - lo) / 2;
  int m =
      cand_gt(&c[lo], &c[mid])
          ? (cand_gt(&c[mid], &c[hi]) ? mid
                                      : (cand_gt(&c[lo], &c[hi]) ? hi : lo))
          : (cand_gt(&c[lo], &c[hi]) ? lo
                                     : (cand_gt(&c[mid], &c[hi]) ? hi : mid));
  cand t = c[m];
  c[m] = c[hi];
  c[hi] = t;
  int i = lo;
  for (int j = lo; j < hi; j++) {
    if (cand_gt(&c[j], &c[hi])) {
      t = c[i];
      c[i] = c[j];
      c[j] = t;
      i++;
    }
  }
  t = c[i];
  c[i] = c[hi];
  c[hi] = t;
  return i;
}

/* Rearranges c[0..n) so its k best (cand_gt order) come first, unsorted:
 * quickselect, O(n) expected. */
static void select_top(cand *c, int n, int k) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    int i = partition(c, lo, hi);
    if (i == k - 1 || i == k)
      return;
    if (i > k)
      hi = i - 1;
    else
      lo = i + 1;
  }
}

/* Top-p over c[0..n) (any order): moves to the front the smallest set of
 * best candidates whose mass reaches top_p of the total, and returns its
 * size. Weighted quickselect, O(n) expected: partition around a pivot; if
 * the better side already holds the mass still needed, recurse into it,
 * else keep all of it and look for the rest in the worse side. The kept
 * set is left unordered (the draw does not need order). */
static int apply_top_p(cand *c, int n, float top_p) {
  double total = 0;
  for (int i = 0; i < n; i++)
    total += c[i].p;
  double need = (double)top_p * total;
  int lo = 0, hi = n - 1; /* c[0..lo) kept; search in c[lo..hi] */
  while (lo < hi) {
    int i = partition(c, lo, hi); /* c[lo..i) > c[i] >= c(i..hi] */
    double mass = 0;
    for (int j = lo; j <= i; j++)
      mass += c[j].p;
    if (mass >= need) {
      /* the set ends at or before the pivot; it is the pivot when the
       * better side alone falls short */
      if (mass - c[i].p < need)
        return i + 1;
      hi = i - 1;
    } else {
      need -= mass; /* keep c[lo..i], look further down */
      lo = i + 1;
    }
  }
  /* lo == hi: that one completes the set; lo > hi: rounding, keep all */
  return lo > hi ? lo : lo + 1;
}

/* ==== sampling ============================================================ */

/* Draws from c[0..n) proportionally to c[].p. */
static int32_t draw(sampler *s, const cand *c, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += c[i].p;
  double u = rng_uniform(&s->rng) * sum;
  double cum = 0;
  for (int i = 0; i < n; i++) {
    cum += c[i].p;
    if (u < cum)
      return c[i].id;
  }
  return c[n - 1].id; /* u rounded up to sum */
}

/* Draws a token proportionally to prob[0..n) (dense_probs): the block whose
 * running sum passes u first, then the token inside it. */
static int32_t draw_dense(sampler *s, int n, double total) {
  double u = rng_uniform(&s->rng) * total, cum = 0;
  int32_t last = -1;
  for (int b0 = 0, k = 0; b0 < n; b0 += DRAW_BLOCK, k++) {
    if (cum + s->bsum[k] <= u && b0 + DRAW_BLOCK < n) {
      cum += s->bsum[k];
      continue;
    }
    int b1 = b0 + DRAW_BLOCK < n ? b0 + DRAW_BLOCK : n;
    for (int i = b0; i < b1; i++) {
      if (s->prob[i] <= 0)
        continue;
      last = i;
      cum += s->prob[i];
      if (u < cum)
        return i;
    }
  }
  return last; /* u rounded up to the total */
}

static int cand_cmp(const void *a, const void *b) {
  return cand_gt(b, a) - cand_gt(a, b);
}

/* Top-p (after temperature) over every token without top-k: the smallest
 * set of best tokens (higher logit, then lower id) whose probability mass
 * reaches top_p of the total, found without sorting the vocabulary. The
 * scaled logits (s->lx, <= 0, probabilities in s->prob: dense_probs) are
 * bucketed by value, best first; the buckets' masses locate the bucket
 * where the mass is reached, and only that bucket's tokens are ordered.
 * Returns the set's worst token: the set is every token not worse than it
 * (cand_gt order). */
static cand top_p_edge(sampler *s, int n, double total) {
  const float *lx = s->lx, *pr = s->prob;
  /* tokens below `cut` cannot be in the set: together they weigh less than
   * the (1 - top_p) share it leaves out (n tokens below e^cut each) */
  double rest = (1.0 - (double)s->p.top_p) * total / n;
  float cut = rest > 0 ? (float)log(rest) : -87.0f;
  cut = cut < -87.0f ? -87.0f : cut < -1e-3f ? cut : -1e-3f;
  const float scale = (TOP_P_BUCKETS - 1) / -cut;
  int32_t *restrict bk = s->bucket;
  for (int i = 0; i < n; i++) /* vectorizes */
    bk[i] =
        lx[i] >= cut && pr[i] > 0 ? (int32_t)(-lx[i] * scale) : TOP_P_BUCKETS;
  /* four interleaved histograms, so runs of tokens in one bucket (the
   * last: tokens left out) do not chain their additions */
  double m4[4][TOP_P_BUCKETS + 1] = {{0}}, mass[TOP_P_BUCKETS];
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; l++)
      m4[l][bk[i + l]] += pr[i + l];
  for (; i < n; i++)
    m4[0][bk[i]] += pr[i];
  for (int b = 0; b < TOP_P_BUCKETS; b++)
    mass[b] = m4[0][b] + m4[1][b] + m4[2][b] + m4[3][b];
  double need = (double)s->p.top_p * total, cum = 0;
  int edge = 0;
  while (edge < TOP_P_BUCKETS - 1 && cum + mass[edge] < need)
    cum += mass[edge++];
  /* the edge bucket's tokens, best first, until the mass is reached */
  cand *e = s->cands;
  int ne = 0;
  for (i = 0; i < n; i++)
    if (bk[i] == edge)
      e[ne++] = (cand){i, lx[i], pr[i]};
  if (!ne) /* rounding left the mass short: every token */
    return (cand){INT32_MAX, -INFINITY, 0};
  qsort(e, (size_t)ne, sizeof *e, cand_cmp);
  int k = 0;
  while (k < ne - 1 && (cum += e[k].p) < need)
    k++;
  return e[k];
}

/* Keeps in s->prob only the tokens not worse than `last` (cand_gt order)
 * and at or above the logit `floor` (NaN never); recomputes the block sums
 * of DRAW_BLOCK tokens and returns the total (summed in double by block;
 * lanes of 8 so the loop vectorizes). */
static inline float masked(const float *lx, const float *pr, int j, cand last,
                           float floor) {
  int keep = ((lx[j] > last.logit) | ((lx[j] == last.logit) & (j <= last.id))) &
             (lx[j] >= floor);
  return keep ? pr[j] : 0.0f;
}

static double mask_probs(sampler *s, int n, cand last, float floor) {
  float *restrict pr = s->prob;
  const float *restrict lx = s->lx;
  double total = 0;
  for (int b0 = 0, k = 0; b0 < n; b0 += DRAW_BLOCK, k++) {
    const int b1 = b0 + DRAW_BLOCK < n ? b0 + DRAW_BLOCK : n;
    float acc[8] = {0};
    int i = b0;
    for (; i + 8 <= b1; i += 8)
      for (int l = 0; l < 8; l++) {
        pr[i + l] = masked(lx, pr, i + l, last, floor);
        acc[l] += pr[i + l];
      }
    for (; i < b1; i++) {
      pr[i] = masked(lx, pr, i, last, floor);
      acc[0] += pr[i];
    }
    double bs = 0;
    for (int l = 0; l < 8; l++)
      bs += acc[l];
    s->bsum[k] = bs;
    total += bs;
  }
  return total;
}

/* lx[i] = (w[i] - wmax) * inv_t and prob[i] = exp(lx[i]) for every token,
 * exactly 0 for -inf and NaN logits, below -87 and below the logit `floor`
 * (min-p), with the block sums (mask_probs); returns the total. The
 * exponentials are the engine's SIMD kernel. */
static double dense_probs(sampler *s, const float *restrict w, int n,
                          float wmax, float inv_t, float floor) {
  float *restrict pr = s->prob, *restrict lx = s->lx;
  for (int i = 0; i < n; i++)
    pr[i] = lx[i] = (w[i] - wmax) * inv_t;
  for (int b0 = 0; b0 < n; b0 += 4096)
    k_exp_sub_sum(pr + b0, 0.0f, n - b0 < 4096 ? n - b0 : 4096);
  const cand all = {INT32_MAX, -INFINITY, 0};
  return mask_probs(s, n, all, floor > -87.0f ? floor : -87.0f);
}

/* Temperature, top-k, top-p, min-p, then a draw, over the adjusted logits w.
 * Candidates start as every token with a logit above -inf; their logits are
 * (w - max w) / temperature, so the best is 0 whatever the temperature.
 * Without top-k (the platform has none), the probabilities are computed
 * densely (vectorized) and top-p finds its set by buckets; with top-k, the
 * candidates are selected first. */
static int32_t sample_stochastic(sampler *s, const float *w, int n_vocab) {
  cand *c = s->cands;
  float inv_t = 1.0f / s->p.temperature;
  int32_t best = argmax(w, n_vocab);
  if (best < 0 || !isfinite(w[best]))
    return best; /* -1: nothing finite; +inf logit: forced */
  float wmax = w[best];
  /* min-p: p >= min_p * p_max <=> (scaled) logit >= log(min_p) */
  float floor = s->p.min_p > 0 ? logf(s->p.min_p) : -INFINITY;
  if (s->p.top_k <= 0 || s->p.top_k >= n_vocab) {
    if (s->p.top_p >= 1.0f) {
      double total = dense_probs(s, w, n_vocab, wmax, inv_t, floor);
      return draw_dense(s, n_vocab, total);
    }
    double total = dense_probs(s, w, n_vocab, wmax, inv_t, -INFINITY);
    cand last = top_p_edge(s, n_vocab, total);
    /* min-p after top-p; the max (logit 0) always survives */
    total = mask_probs(s, n_vocab, last, floor);
    return draw_dense(s, n_vocab, total);
  }
  int n = 0;
  for (int i = 0; i < n_vocab; i++) {
    if (w[i] > -INFINITY) { /* also skips NaN */
      c[n].id = i;
      c[n].logit = (w[i] - wmax) * inv_t;
      n++;
    }
  }
  if (s->p.top_k > 0 && s->p.top_k < n) {
    select_top(c, n, s->p.top_k);
    n = s->p.top_k;
  }
  for (int i = 0; i < n; i++)
    c[i].p = fast_expf(c[i].logit);
  if (s->p.top_p < 1.0f)
    n = apply_top_p(c, n, s->p.top_p);
  if (s->p.min_p > 0) {
    float floor_logit = logf(s->p.min_p); /* p >= min_p * p_max */
    int m = 0;
    for (int i = 0; i < n; i++)
      if (c[i].logit >= floor_logit)
        c[m++] = c[i];
    n = m; /* the max (logit 0) always survives: n >= 1 */
  }
  return draw(s, c, n);
}

/* 1 when bias or penalties may change the logits this call. */
static int adjusts(const sampler *s) {
  int rep = s->p.repetition_penalty != 1.0f &&
            (s->p.repetition_window == -1 ? s->n_seen : s->ring_len) > 0;
  int pf = s->n_gen > 0 &&
           (s->p.presence_penalty != 0 || s->p.frequency_penalty != 0);
  return s->p.n_logit_bias > 0 || rep || pf;
}

int32_t sampler_sample(sampler *s, const float *logits, int n_vocab,
                       sample_info *info) {
  if (!s || !logits || n_vocab <= 0 || ensure_scratch(s, n_vocab) != 0)
    return -1;
  const float *w = logits; /* adjusted logits: a copy only when needed */
  if (adjusts(s)) {
    memcpy(s->work, logits, (size_t)n_vocab * sizeof *s->work);
    apply_bias(s, s->work, n_vocab);
    apply_repetition(s, s->work, n_vocab);
    apply_presence_frequency(s, s->work, n_vocab);
    w = s->work;
  }
  int32_t tok = s->p.temperature == 0 ? argmax(w, n_vocab)
                                      : sample_stochastic(s, w, n_vocab);
  if (tok >= 0 && info) /* may reuse s->work as scratch: w is dead here */
    fill_info(s, logits, n_vocab, tok, info);
  return tok;
}
