/* Token sampler: turns one row of logits into the next token id.
 *
 * Supports greedy (temperature 0), temperature, top-k, top-p, min-p,
 * OpenAI presence / frequency penalties (over generated tokens), llama.cpp
 * repetition penalty (over a window of recent tokens, prompt included),
 * logit bias, a seeded per-sampler PRNG (same seed + same logits -> same
 * tokens), and log-probabilities of the chosen token with up to
 * SAMPLER_MAX_LOGPROBS top alternatives.
 *
 * Order of operations on the logits:
 *   logit bias -> repetition penalty -> presence/frequency penalties
 *   -> (temperature 0: argmax) -> temperature -> top-k -> top-p -> min-p
 *   -> draw from the renormalized remainder.
 *
 * Log-probabilities are those of the MODEL's distribution: log-softmax of the
 * raw logits given to sampler_sample, before bias, penalties, temperature and
 * truncation (what OpenAI reports as "logprobs", and vLLM's default).
 *
 * One sampler per generated sequence; not thread-safe; no global state.
 * Knows nothing about models, tokenizers, HTTP or JSON. */
#ifndef HEARTH_ENGINE_SAMPLER_H
#define HEARTH_ENGINE_SAMPLER_H
#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_LOGPROBS 20
/* seed value meaning "pick one from the OS" (getrandom). */
#define SAMPLER_SEED_RANDOM UINT64_MAX

typedef struct sampler sampler;

typedef struct {
  int32_t token;
  float bias; /* added to the logit; -100 bans, +100 forces in practice */
} sampler_logit_bias;

typedef struct {
  float temperature;        /* 0 = greedy (argmax after bias/penalties) */
  int top_k;                /* 0 = off */
  float top_p;              /* 1 = off; (0, 1] */
  float min_p;              /* 0 = off; [0, 1] */
  float presence_penalty;   /* OpenAI: [-2, 2]; 0 = off */
  float frequency_penalty;  /* OpenAI: [-2, 2]; 0 = off */
  float repetition_penalty; /* llama.cpp: 1 = off; > 0 */
  int repetition_window;    /* last N tokens seen (prompt + generated);
                               0 = off, -1 = all of them */
  const sampler_logit_bias *logit_bias; /* copied by sampler_new */
  int n_logit_bias;
  uint64_t seed;  /* SAMPLER_SEED_RANDOM = from the OS */
  int n_logprobs; /* top alternatives to report, 0..SAMPLER_MAX_LOGPROBS */
} sampler_params;

/* temperature 1, top_p 1, repetition_penalty 1, window 64, others 0/off,
 * seed SAMPLER_SEED_RANDOM. */
sampler_params sampler_default_params(void);

/* 0 when params are valid, else -1 with err naming the field, e.g.
 * "top_p must be in (0, 1], got 1.5". */
int sampler_params_check(const sampler_params *p, char *err, size_t errlen);

/* NULL when params are invalid (see sampler_params_check) or on OOM. */
sampler *sampler_new(const sampler_params *p);
void sampler_free(sampler *s);

typedef struct {
  int32_t token;
  float logprob; /* natural log, model distribution */
} sampler_logprob;

typedef struct {
  int32_t token; /* the chosen token */
  float logprob; /* its log-probability in the model distribution */
  int n_top;     /* = min(params.n_logprobs, n_vocab) */
  sampler_logprob top[SAMPLER_MAX_LOGPROBS]; /* most likely first */
} sample_info;

/* Picks the next token from logits[0..n_vocab). info may be NULL. Does NOT
 * record the token: call sampler_accept() with the token actually used.
 * Returns the token id (>= 0), or -1 when n_vocab <= 0 or every logit is NaN
 * or -inf after bias and penalties. Invariant: logits are not modified. */
int32_t sampler_sample(sampler *s, const float *logits, int n_vocab,
                       sample_info *info);

/* Records a generated token: counts for presence/frequency penalties and the
 * repetition window. */
void sampler_accept(sampler *s, int32_t tok);

/* Records prompt tokens: repetition window only (OpenAI's presence and
 * frequency penalties look at generated tokens). */
void sampler_accept_prompt(sampler *s, const int32_t *toks, int n);

/* Forgets every accepted token and reseeds the PRNG with params.seed (a
 * SAMPLER_SEED_RANDOM sampler keeps its current stream). */
void sampler_reset(sampler *s);

#endif
