/* Sampler micro-benchmark: microseconds per sampled token of hearth's
 * sampler (src/engine/sampler.c) on a 49152- and a 151936-token vocabulary
 * (SmolLM2, Qwen2.5), greedy, temperature, temperature + top-p, min-p and
 * with log-probabilities, on a flat distribution (random weights: the
 * nucleus spans most of the vocabulary, the worst case) and a peaked one;
 * next to a textbook reference in the same run: softmax with expf, then a
 * full sort of the candidates for top-p, a linear draw. Best of 30 batches
 * of 50 calls (the reference: 5 of 10). About a minute. Prints ratios,
 * never asserts on them.
 * Build (from the repository root, after `make build/libengine.a`):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -o build/sampler_bench \
 *      bench/engine/sampler_bench.c build/libengine.a -lm -pthread
 * Run: build/sampler_bench */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the reference: what a straightforward sampler does ----------------*/

typedef struct {
  int id;
  float p;
} ref_cand;

static int ref_cmp(const void *a, const void *b) {
  float x = ((const ref_cand *)a)->p, y = ((const ref_cand *)b)->p;
  return (x < y) - (x > y);
}

static unsigned long long g_rng = 88172645463325252ull;
static double ref_uniform(void) {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

static int ref_sample(const float *lg, int n, float temp, float top_p,
                      float min_p, ref_cand *c) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (lg[i] > lg[best])
      best = i;
  if (temp == 0)
    return best;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    c[i].id = i;
    c[i].p = expf((lg[i] - lg[best]) / temp);
    sum += c[i].p;
  }
  int m = n;
  if (top_p < 1) {
    qsort(c, (size_t)n, sizeof *c, ref_cmp);
    double cum = 0;
    for (m = 0; m < n && cum < top_p * sum;)
      cum += c[m++].p;
  }
  if (min_p > 0) {
    int k = 0;
    for (int i = 0; i < m; i++)
      if (c[i].p >= min_p)
        c[k++] = c[i];
    m = k;
  }
  double tot = 0;
  for (int i = 0; i < m; i++)
    tot += c[i].p;
  double u = ref_uniform() * tot, cum = 0;
  for (int i = 0; i < m; i++)
    if ((cum += c[i].p) > u)
      return c[i].id;
  return c[m - 1].id;
}

/* ---- measurement ---------------------------------------------------------*/

typedef struct {
  const char *name;
  float temp, top_p, min_p;
  int logprobs;
} config;

static double time_hearth(const config *k, const float *lg, int n) {
  sampler_params p = sampler_default_params();
  p.seed = 1;
  p.temperature = k->temp;
  p.top_p = k->top_p;
  p.min_p = k->min_p;
  p.n_logprobs = k->logprobs ? 5 : 0;
  sampler *s = sampler_new(&p);
  sample_info info;
  double best = 1e30;
  for (int b = 0; s && b < 30; b++) {
    double t0 = now_s();
    for (int i = 0; i < 50; i++)
      sampler_accept(s, sampler_sample(s, lg, n, k->logprobs ? &info : NULL));
    double dt = (now_s() - t0) / 50;
    best = dt < best ? dt : best;
  }
  sampler_free(s);
  return best;
}

static double time_ref(const config *k, const float *lg, int n, ref_cand *c) {
  double best = 1e30;
  volatile int sink = 0;
  for (int b = 0; b < 5; b++) {
    double t0 = now_s();
    for (int i = 0; i < 10; i++) {
      sink += ref_sample(lg, n, k->temp, k->top_p, k->min_p, c);
      if (k->logprobs) { /* the log-normalizer a logprobs answer needs */
        double z = 0;
        for (int j = 0; j < n; j++)
          z += expf(lg[j]);
        sink += (int)log(z);
      }
    }
    double dt = (now_s() - t0) / 10;
    best = dt < best ? dt : best;
  }
  return best;
}

int main(void) {
  static const config cfg[] = {
      {"greedy", 0, 1, 0, 0},
      {"temperature 1", 1, 1, 0, 0},
      {"temperature 1 + logprobs", 1, 1, 0, 1},
      {"temperature 0.7, top_p 0.9", 0.7f, 0.9f, 0, 0},
      {"temperature 0.7, min_p 0.05", 0.7f, 1, 0.05f, 0},
  };
  const int vocab[2] = {49152, 151936};
  printf("| vocabulary | logits | sampling | hearth us/token | reference "
         "us/token | reference / hearth |\n|---:|---|---|---:|---:|---:|\n");
  for (int v = 0; v < 2; v++) {
    int n = vocab[v];
    float *lg = malloc(sizeof(float) * (size_t)n);
    ref_cand *c = malloc(sizeof(ref_cand) * (size_t)n);
    if (!lg || !c)
      return 1;
    for (int shape = 0; shape < 2; shape++) {
      srand(7);
      for (int i = 0; i < n; i++) /* flat, or a few strong tokens */
        lg[i] = shape == 0 ? (float)rand() / RAND_MAX * 4 - 2
                           : (float)rand() / RAND_MAX * 6 - 3 +
                                 (i % 997 == 0 ? 9.0f : 0.0f);
      for (size_t k = 0; k < sizeof cfg / sizeof *cfg; k++) {
        double h = time_hearth(&cfg[k], lg, n), r = time_ref(&cfg[k], lg, n, c);
        printf("| %d | %s | %s | %.1f | %.1f | %.1f |\n", n,
               shape ? "peaked" : "flat", cfg[k].name, h * 1e6, r * 1e6, r / h);
      }
    }
    free(lg);
    free(c);
  }
  return 0;
}
