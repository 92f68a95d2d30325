/* Unit tests of the token sampler (src/engine/sampler.c) on crafted logits:
 * each option's deterministic effect, draw frequencies against the exact
 * distribution (fixed seeds, so the outcome is reproducible), and large
 * vocabularies checked against a brute-force full-sort reference.
 * Knows nothing about models or the server. */
#include "engine/sampler.h"
#include "t.h"

#include <stdint.h>

enum { DRAWS = 20000 };

static sampler *mk(sampler_params p) {
  sampler *s = sampler_new(&p);
  CHECK(s != NULL);
  return s;
}

static sampler_params greedy_params(void) {
  sampler_params p = sampler_default_params();
  p.temperature = 0;
  p.seed = 1;
  return p;
}

/* Counts of DRAWS samples over n logits into cnt[n]. */
static void histogram(sampler *s, const float *lg, int n, int *cnt) {
  memset(cnt, 0, (size_t)n * sizeof *cnt);
  for (int i = 0; i < DRAWS; i++) {
    int32_t t = sampler_sample(s, lg, n, NULL);
    CHECK(t >= 0 && t < n);
    if (t >= 0 && t < n)
      cnt[t]++;
  }
}

/* Expected softmax(lg / temp) restricted to keep[] (1 = kept). */
static void expected(const float *lg, int n, float temp, const int *keep,
                     double *pr) {
  double mx = -1e30, sum = 0;
  for (int i = 0; i < n; i++)
    if (keep[i] && lg[i] / temp > mx)
      mx = lg[i] / temp;
  for (int i = 0; i < n; i++) {
    pr[i] = keep[i] ? exp(lg[i] / temp - mx) : 0;
    sum += pr[i];
  }
  for (int i = 0; i < n; i++)
    pr[i] /= sum;
}

/* Every frequency within 0.015 of its expectation (> 4 sigma at 20000
 * draws), and tokens of probability 0 never drawn. */
static void check_freq(const int *cnt, const double *pr, int n) {
  for (int i = 0; i < n; i++) {
    double f = (double)cnt[i] / DRAWS;
    CHECKF(fabs(f - pr[i]) <= 0.015, "token %d: freq %.4f expected %.4f", i, f,
           pr[i]);
    if (pr[i] == 0)
      CHECK_INT(cnt[i], 0);
  }
}

static const float L5[5] = {2.0f, 1.5f, 1.0f, 0.0f, -1.0f};

/* ---- params -------------------------------------------------------------- */

static void test_params_check(void) {
  char err[160];
  sampler_params p = sampler_default_params();
  CHECK_INT(sampler_params_check(&p, err, sizeof err), 0);
  CHECK_NEAR(p.temperature, 1.0, 0);
  CHECK_NEAR(p.top_p, 1.0, 0);
  CHECK_NEAR(p.repetition_penalty, 1.0, 0);
  p.top_p = 1.5f;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  CHECK(strstr(err, "top_p") != NULL);
  CHECK(sampler_new(&p) == NULL);
  p = sampler_default_params();
  p.temperature = -1;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  CHECK(strstr(err, "temperature") != NULL);
  p = sampler_default_params();
  p.n_logprobs = 21;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  CHECK(strstr(err, "n_logprobs") != NULL);
  p = sampler_default_params();
  p.min_p = -0.1f;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  p = sampler_default_params();
  p.top_k = -2;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  p = sampler_default_params();
  p.repetition_penalty = 0;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  sampler_logit_bias b = {-3, 1.0f};
  p = sampler_default_params();
  p.logit_bias = &b;
  p.n_logit_bias = 1;
  CHECK_INT(sampler_params_check(&p, err, sizeof err), -1);
  CHECK(strstr(err, "logit_bias[0]") != NULL);
}

static void test_invalid_input(void) {
  sampler *s = mk(greedy_params());
  float lg[3] = {-INFINITY, -INFINITY, -INFINITY};
  CHECK_INT(sampler_sample(s, lg, 3, NULL), -1);
  CHECK_INT(sampler_sample(s, lg, 0, NULL), -1);
  float nan_lg[3] = {NAN, 0.5f, NAN};
  CHECK_INT(sampler_sample(s, nan_lg, 3, NULL), 1);
  sampler_free(s);
  sampler_params p = sampler_default_params();
  p.seed = 3;
  s = mk(p);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), -1);
  for (int i = 0; i < 50; i++)
    CHECK_INT(sampler_sample(s, nan_lg, 3, NULL), 1);
  sampler_free(s);
}

/* ---- greedy, bias -------------------------------------------------------- */

static void test_greedy(void) {
  sampler *s = mk(greedy_params());
  CHECK_INT(sampler_sample(s, L5, 5, NULL), 0);
  float lg[6] = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 0};
  CHECK_INT(sampler_sample(s, lg, 6, NULL), 1); /* tie: lowest id */
  sampler_free(s);
}

static void test_logit_bias(void) {
  sampler_logit_bias b[2] = {{0, -100.0f}, {99, 100.0f}}; /* 99: out of range */
  sampler_params p = greedy_params();
  p.logit_bias = b;
  p.n_logit_bias = 2;
  sampler *s = mk(p);
  b[0].bias = 0; /* sampler_new copied the list */
  CHECK_INT(sampler_sample(s, L5, 5, NULL), 1);
  sampler_free(s);

  sampler_logit_bias force = {4, 100.0f};
  p = sampler_default_params();
  p.seed = 7;
  p.logit_bias = &force;
  p.n_logit_bias = 1;
  s = mk(p);
  for (int i = 0; i < 200; i++)
    CHECK_INT(sampler_sample(s, L5, 5, NULL), 4);
  sampler_free(s);

  sampler_logit_bias ban = {0, -100.0f};
  p.logit_bias = &ban;
  s = mk(p);
  int cnt[5];
  histogram(s, L5, 5, cnt);
  CHECK_INT(cnt[0], 0);
  sampler_free(s);
}

/* ---- temperature, top-k, top-p, min-p ------------------------------------ */

static void test_temperature(void) {
  const float temps[3] = {1.0f, 0.5f, 2.0f};
  int keep[5] = {1, 1, 1, 1, 1}, cnt[5];
  double pr[5];
  for (int k = 0; k < 3; k++) {
    sampler_params p = sampler_default_params();
    p.temperature = temps[k];
    p.seed = 42 + (uint64_t)k;
    sampler *s = mk(p);
    histogram(s, L5, 5, cnt);
    expected(L5, 5, temps[k], keep, pr);
    check_freq(cnt, pr, 5);
    sampler_free(s);
  }
  /* a tiny temperature is greedy without overflowing */
  sampler_params p = sampler_default_params();
  p.temperature = 1e-6f;
  p.seed = 5;
  sampler *s = mk(p);
  for (int i = 0; i < 100; i++)
    CHECK_INT(sampler_sample(s, L5, 5, NULL), 0);
  sampler_free(s);
}

static void test_top_k(void) {
  sampler_params p = sampler_default_params();
  p.top_k = 3;
  p.seed = 11;
  sampler *s = mk(p);
  int keep[5] = {1, 1, 1, 0, 0}, cnt[5];
  double pr[5];
  histogram(s, L5, 5, cnt);
  expected(L5, 5, 1.0f, keep, pr);
  check_freq(cnt, pr, 5);
  sampler_free(s);

  p.top_k = 1;
  s = mk(p);
  float lg[7] = {0, 0.5f, 0.2f, 0.49f, -1, 0.1f, 0.3f};
  for (int i = 0; i < 100; i++)
    CHECK_INT(sampler_sample(s, lg, 7, NULL), 1);
  sampler_free(s);

  p.top_k = 50; /* larger than the vocabulary: off */
  s = mk(p);
  histogram(s, L5, 5, cnt);
  int all[5] = {1, 1, 1, 1, 1};
  expected(L5, 5, 1.0f, all, pr);
  check_freq(cnt, pr, 5);
  sampler_free(s);
}

static void test_top_p(void) {
  /* probabilities 0.5, 0.3, 0.15, 0.05 */
  float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
  sampler_params p = sampler_default_params();
  p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.8: keeps {0, 1} */
  p.seed = 13;
  sampler *s = mk(p);
  int keep[4] = {1, 1, 0, 0}, cnt[4];
  double pr[4];
  histogram(s, lg, 4, cnt);
  expected(lg, 4, 1.0f, keep, pr);
  check_freq(cnt, pr, 4);
  sampler_free(s);

  p.top_p = 0.9f; /* keeps {0, 1, 2} */
  s = mk(p);
  int keep3[4] = {1, 1, 1, 0};
  histogram(s, lg, 4, cnt);
  expected(lg, 4, 1.0f, keep3, pr);
  check_freq(cnt, pr, 4);
  sampler_free(s);

  p.top_p = 0.3f; /* the top token alone */
  s = mk(p);
  for (int i = 0; i < 100; i++)
    CHECK_INT(sampler_sample(s, lg, 4, NULL), 0);
  sampler_free(s);
}

static void test_min_p(void) {
  float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
  sampler_params p = sampler_default_params();
  p.min_p = 0.25f; /* p >= 0.125: keeps {0, 1, 2} */
  p.seed = 17;
  sampler *s = mk(p);
  int keep[4] = {1, 1, 1, 0}, cnt[4];
  double pr[4];
  histogram(s, lg, 4, cnt);
  expected(lg, 4, 1.0f, keep, pr);
  check_freq(cnt, pr, 4);
  sampler_free(s);

  p.min_p = 0.7f; /* keeps {0} */
  s = mk(p);
  for (int i = 0; i < 100; i++)
    CHECK_INT(sampler_sample(s, lg, 4, NULL), 0);
  sampler_free(s);
}

/* Temperature applies before top-p: at T = 0.5 the probabilities become
 * (0.5^2, 0.3^2, ...) normalized = 0.676, 0.243, ... so top_p 0.6 keeps
 * token 0 alone. */
static void test_temperature_then_top_p(void) {
  float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
  sampler_params p = sampler_default_params();
  p.temperature = 0.5f;
  p.top_p = 0.6f;
  p.seed = 19;
  sampler *s = mk(p);
  for (int i = 0; i < 200; i++)
    CHECK_INT(sampler_sample(s, lg, 4, NULL), 0);
  sampler_free(s);
}

/* ---- seeds --------------------------------------------------------------- */

static void draw_seq(uint64_t seed, int32_t *out, int n) {
  sampler_params p = sampler_default_params();
  p.seed = seed;
  p.top_k = 4;
  p.presence_penalty = 0.3f;
  sampler *s = mk(p);
  for (int i = 0; i < n; i++) {
    out[i] = sampler_sample(s, L5, 5, NULL);
    sampler_accept(s, out[i]);
  }
  sampler_free(s);
}

static void test_seed(void) {
  int32_t a[64], b[64], c[64];
  draw_seq(1234, a, 64);
  draw_seq(1234, b, 64);
  draw_seq(1235, c, 64);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(memcmp(a, c, sizeof a) != 0);

  /* reset replays the same stream */
  sampler_params p = sampler_default_params();
  p.seed = 99;
  sampler *s = mk(p);
  int32_t x[32], y[32];
  for (int i = 0; i < 32; i++)
    x[i] = sampler_sample(s, L5, 5, NULL);
  sampler_reset(s);
  for (int i = 0; i < 32; i++)
    y[i] = sampler_sample(s, L5, 5, NULL);
  CHECK(memcmp(x, y, sizeof x) == 0);
  sampler_free(s);

  /* random seeds: two samplers almost surely differ over 64 draws */
  p.seed = SAMPLER_SEED_RANDOM;
  sampler *r1 = mk(p), *r2 = mk(p);
  int differ = 0;
  for (int i = 0; i < 64; i++)
    differ |=
        sampler_sample(r1, L5, 5, NULL) != sampler_sample(r2, L5, 5, NULL);
  CHECK(differ);
  sampler_free(r1);
  sampler_free(r2);
}

/* ---- penalties ----------------------------------------------------------- */

static void test_presence_penalty(void) {
  float lg[3] = {1.0f, 0.9f, 0.0f};
  sampler_params p = greedy_params();
  p.presence_penalty = 0.2f;
  sampler *s = mk(p);
  int32_t prompt[3] = {0, 0, 0};
  sampler_accept_prompt(s, prompt, 3); /* prompt tokens do not count */
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 0);
  sampler_accept(s, 0);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 1); /* 0.8 < 0.9 */
  sampler_accept(s, 1);                         /* both penalized once */
  sampler_accept(s, 1);
  sampler_accept(s, 1); /* presence does not grow with count */
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 0);
  sampler_free(s);

  p.presence_penalty = -0.5f; /* negative encourages repeats */
  s = mk(p);
  sampler_accept(s, 2);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 0);
  sampler_accept(s, 2);
  float lg2[3] = {1.0f, 0.9f, 0.6f};
  CHECK_INT(sampler_sample(s, lg2, 3, NULL), 2);
  sampler_free(s);
}

static void test_frequency_penalty(void) {
  float lg[3] = {1.0f, 0.9f, 0.0f};
  sampler_params p = greedy_params();
  p.frequency_penalty = 0.04f;
  sampler *s = mk(p);
  sampler_accept(s, 0);
  sampler_accept(s, 0);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 0); /* 1 - 0.08 = 0.92 */
  sampler_accept(s, 0);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 1); /* 1 - 0.12 = 0.88 */
  sampler_reset(s);
  CHECK_INT(sampler_sample(s, lg, 3, NULL), 0);
  sampler_free(s);
}

static void test_repetition_penalty(void) {
  float lg[4] = {2.0f, 1.5f, -1.0f, -1.2f};
  sampler_params p = greedy_params();
  p.repetition_penalty = 1.5f;
  p.repetition_window = 2;
  sampler *s = mk(p);
  int32_t prompt[1] = {0};
  sampler_accept_prompt(s, prompt, 1); /* prompt counts for repetition */
  CHECK_INT(sampler_sample(s, lg, 4, NULL), 1); /* 2.0 / 1.5 = 1.33 */
  sampler_accept(s, 3);
  sampler_accept(s, 3); /* token 0 leaves the window of 2 */
  CHECK_INT(sampler_sample(s, lg, 4, NULL), 0);
  sampler_free(s);

  /* negative logits are multiplied: -1.0 * 1.5 = -1.5 < -1.2 */
  float neg[2] = {-1.0f, -1.2f};
  p.repetition_window = 64;
  s = mk(p);
  sampler_accept(s, 0);
  sampler_accept(s, 0); /* counted once, not per occurrence */
  CHECK_INT(sampler_sample(s, neg, 2, NULL), 1);
  sampler_free(s);

  /* window -1: the whole history */
  p.repetition_window = -1;
  s = mk(p);
  sampler_accept(s, 0);
  for (int i = 0; i < 500; i++)
    sampler_accept(s, 3);
  CHECK_INT(sampler_sample(s, lg, 4, NULL), 1);
  sampler_free(s);

  /* window 0: off */
  p.repetition_window = 0;
  s = mk(p);
  sampler_accept(s, 0);
  CHECK_INT(sampler_sample(s, lg, 4, NULL), 0);
  sampler_free(s);
}

/* The caller's logits are never modified, whatever applies. */
static void test_logits_untouched(void) {
  float lg[5], before[5];
  memcpy(lg, L5, sizeof lg);
  memcpy(before, L5, sizeof lg);
  sampler_logit_bias b = {2, 5.0f};
  sampler_params p = sampler_default_params();
  p.seed = 31;
  p.logit_bias = &b;
  p.n_logit_bias = 1;
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.5f;
  p.top_k = 3;
  p.top_p = 0.9f;
  p.min_p = 0.01f;
  p.n_logprobs = 5;
  sampler *s = mk(p);
  sample_info info;
  for (int i = 0; i < 50; i++) {
    int32_t t = sampler_sample(s, lg, 5, &info);
    CHECK(t >= 0 && t < 5);
    sampler_accept(s, t);
  }
  CHECK(memcmp(lg, before, sizeof lg) == 0);
  sampler_free(s);
}

/* ---- log-probabilities --------------------------------------------------- */

static void test_logprobs(void) {
  sampler_logit_bias b = {4, 100.0f};
  sampler_params p = sampler_default_params();
  p.temperature = 0.3f;
  p.seed = 23;
  p.n_logprobs = 3;
  p.logit_bias = &b;
  p.n_logit_bias = 1;
  sampler *s = mk(p);
  sample_info info;
  double z = 0;
  for (int i = 0; i < 5; i++)
    z += exp(L5[i]);
  z = log(z);
  int32_t t = sampler_sample(s, L5, 5, &info);
  CHECK_INT(t, 4);
  CHECK_INT(info.token, 4);
  /* model distribution: bias and temperature do not change logprobs */
  CHECK_NEAR(info.logprob, L5[4] - z, 1e-5);
  CHECK_INT(info.n_top, 3);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(info.top[i].token, i);
    CHECK_NEAR(info.top[i].logprob, L5[i] - z, 1e-5);
  }
  sampler_free(s);

  p = greedy_params();
  p.n_logprobs = 20; /* clamped to the vocabulary */
  s = mk(p);
  CHECK_INT(sampler_sample(s, L5, 5, &info), 0);
  CHECK_INT(info.n_top, 5);
  double sum = 0;
  for (int i = 0; i < info.n_top; i++)
    sum += exp(info.top[i].logprob);
  CHECK_NEAR(sum, 1.0, 1e-5);
  CHECK_NEAR(info.logprob, info.top[0].logprob, 0);
  sampler_free(s);

  p.n_logprobs = 0;
  s = mk(p);
  CHECK_INT(sampler_sample(s, L5, 5, &info), 0);
  CHECK_INT(info.n_top, 0);
  sampler_free(s);
}

/* Log-probabilities over a wide logit range match a double-precision
 * log-softmax (the sampler uses a fast float exp). */
static void test_logprobs_accuracy(void) {
  enum { NV = 50000 };
  float *lg = malloc(NV * sizeof *lg);
  CHECK(lg != NULL);
  if (!lg)
    return;
  uint64_t x = 5;
  for (int i = 0; i < NV; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    lg[i] = (float)((x >> 33) % 400000) / 10000.0f - 30.0f; /* [-30, 10) */
  }
  lg[123] = -INFINITY; /* banned token: excluded, no effect */
  double mx = -1e30, z = 0;
  for (int i = 0; i < NV; i++)
    mx = lg[i] > mx ? lg[i] : mx;
  for (int i = 0; i < NV; i++)
    z += exp((double)lg[i] - mx);
  double lz = mx + log(z);
  sampler_params p = greedy_params();
  p.n_logprobs = 20;
  sampler *s = mk(p);
  sample_info info;
  int32_t t = sampler_sample(s, lg, NV, &info);
  CHECK(t >= 0);
  if (t >= 0) {
    CHECK_NEAR(info.logprob, lg[t] - lz, 2e-5);
    for (int i = 0; i < info.n_top; i++)
      CHECK_NEAR(info.top[i].logprob, lg[info.top[i].token] - lz, 2e-5);
  }
  sampler_free(s);
  free(lg);
}

/* ---- large vocabularies against a brute-force reference ------------------ */

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
  return *x >> 33;
}

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

/* Logit of the nucleus' last member by a full sort: tokens at or above it
 * are the top-p set (no exact ties in random floats). */
static float nucleus_floor(const float *lg, int n, float top_p, float *tmp) {
  memcpy(tmp, lg, (size_t)n * sizeof *tmp);
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_desc);
  double z = 0, cum = 0;
  for (int i = 0; i < n; i++)
    z += exp(tmp[i] - tmp[0]);
  for (int i = 0; i < n; i++) {
    cum += exp(tmp[i] - tmp[0]);
    if (cum >= top_p * z)
      return tmp[i];
  }
  return tmp[n - 1];
}

static void test_large_vocab(void) {
  enum { NV = 151936 };
  float *lg = malloc(NV * sizeof *lg), *tmp = malloc(NV * sizeof *tmp);
  CHECK(lg && tmp);
  if (!lg || !tmp) {
    free(lg);
    free(tmp);
    return;
  }
  uint64_t x = 77;
  for (int i = 0; i < NV; i++) /* flat-ish: the nucleus spans thousands */
    lg[i] = (float)(lcg(&x) % 100000) / 100000.0f * 3.0f;

  sampler_params p = sampler_default_params();
  p.seed = 29;
  p.top_p = 0.5f;
  p.n_logprobs = 20;
  sampler *s = mk(p);
  float floor_p = nucleus_floor(lg, NV, 0.5f, tmp);
  sample_info info;
  for (int i = 0; i < 200; i++) {
    int32_t t = sampler_sample(s, lg, NV, &info);
    CHECK(t >= 0 && t < NV && lg[t] >= floor_p);
  }
  CHECK_INT(info.n_top, 20);
  CHECK_NEAR(lg[info.top[0].token], tmp[0], 0);
  CHECK_NEAR(lg[info.top[19].token], tmp[19], 0);
  sampler_free(s);

  p.top_p = 1.0f;
  p.top_k = 40;
  s = mk(p);
  for (int i = 0; i < 200; i++) {
    int32_t t = sampler_sample(s, lg, NV, NULL);
    CHECK(t >= 0 && t < NV && lg[t] >= tmp[39]);
  }
  sampler_free(s);

  p.top_k = 0;
  p.min_p = 0.9f; /* p >= 0.9 p_max <=> logit >= max + ln 0.9 */
  s = mk(p);
  for (int i = 0; i < 200; i++) {
    int32_t t = sampler_sample(s, lg, NV, NULL);
    CHECK(t >= 0 && t < NV && lg[t] >= tmp[0] + logf(0.9f) - 1e-6f);
  }
  sampler_free(s);
  free(lg);
  free(tmp);
}

/* Top-p on a large vocabulary (the bucketed search): ten equal best
 * logits at spread-out ids above a long flat tail; the nucleus needs four
 * of them, and ties go to the lower ids, so exactly ids 100, 200, 300, 400
 * come out, each about a quarter of the time, with and without a
 * temperature (which keeps the ties). */
static void test_top_p_large_ties(void) {
  enum { NV = 60000 };
  float *lg = malloc(NV * sizeof *lg);
  CHECK(lg != NULL);
  if (!lg)
    return;
  for (int i = 0; i < NV; i++)
    lg[i] = -20.0f + (float)(i % 7) * 0.1f;
  for (int k = 1; k <= 10; k++)
    lg[100 * k] = 5.0f;
  const float temps[2] = {1.0f, 0.5f};
  for (int ti = 0; ti < 2; ti++) {
    sampler_params p = sampler_default_params();
    p.seed = 31 + ti;
    p.temperature = temps[ti];
    p.top_p = 0.35f; /* 4 of the 10 (0.4 of the mass) */
    sampler *s = mk(p);
    int cnt[5] = {0}, outside = 0;
    for (int i = 0; i < 4000; i++) {
      int32_t t = sampler_sample(s, lg, NV, NULL);
      if (t % 100 == 0 && t >= 100 && t <= 400)
        cnt[t / 100]++;
      else
        outside++;
    }
    CHECK_INT(outside, 0);
    for (int k = 1; k <= 4; k++)
      CHECK(cnt[k] > 850 && cnt[k] < 1150);
    sampler_free(s);
  }
  free(lg);
}

int main(void) {
  RUN(test_params_check);
  RUN(test_invalid_input);
  RUN(test_greedy);
  RUN(test_logit_bias);
  RUN(test_temperature);
  RUN(test_top_k);
  RUN(test_top_p);
  RUN(test_min_p);
  RUN(test_temperature_then_top_p);
  RUN(test_seed);
  RUN(test_presence_penalty);
  RUN(test_frequency_penalty);
  RUN(test_repetition_penalty);
  RUN(test_logits_untouched);
  RUN(test_logprobs);
  RUN(test_logprobs_accuracy);
  RUN(test_large_vocab);
  RUN(test_top_p_large_ties);
  T_MAIN_END();
}
