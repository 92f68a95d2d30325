/* gen.c: the generation driver shared by chat and legacy completions (see
 * gen.h). Three parts: the common parameters, the model (resolve, acquire,
 * context check, tokenize), and the job, which turns the sched's tokens into
 * released text per choice.
 *
 * Invariant of a choice's text: bytes already released never contain the
 * start of a stop match, because any suffix of the pending text that is a
 * prefix of a stop string is held back; so a stop match can only start in
 * the pending text, and searching the pending text is enough.
 *
 * Lifetime of a job: one reference for the starting thread and one per
 * submitted sched request; whoever drops the last one runs the endpoint's
 * on_done (unless the start failed), ends the stream and frees the job. */
#include "api/gen.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ids.h"
#include "core/jsonbody.h"

/* ====================================================== parameters */

/* stop: a string, or an array of at most GEN_MAX_STOP strings. Empty
 * strings are ignored (they would match everywhere). */
static int parse_stop(json_t *body, gen_params *p, api_error *e) {
  json_t *v = json_object_get(body, "stop");
  if (!v || json_is_null(v))
    return 0;
  if (json_is_string(v)) {
    if (json_string_length(v) &&
        !(p->stop[p->n_stop++] = strdup(json_string_value(v))))
      return err_server(e, "Out of memory."), -1;
    return 0;
  }
  if (!json_is_array(v)) {
    err_invalid(e, "stop",
                "Invalid type for 'stop': expected one of a string or an "
                "array of strings, but got %s instead.",
                jb_type_words(v));
    return -1;
  }
  if (json_array_size(v) > GEN_MAX_STOP) {
    err_invalid(e, "stop",
                "Invalid 'stop': array too long. Expected an array with "
                "maximum length %d, but got an array with length %zu instead.",
                GEN_MAX_STOP, json_array_size(v));
    return -1;
  }
  size_t i;
  json_t *s;
  json_array_foreach(v, i, s) {
    if (!json_is_string(s)) {
      char param[32];
      snprintf(param, sizeof param, "stop[%zu]", i);
      err_invalid(e, param,
                  "Invalid type for 'stop[%zu]': expected a string, but got "
                  "%s instead.",
                  i, jb_type_words(s));
      return -1;
    }
    if (json_string_length(s) &&
        !(p->stop[p->n_stop++] = strdup(json_string_value(s))))
      return err_server(e, "Out of memory."), -1;
  }
  return 0;
}

/* logit_bias: {"token id": bias in [-100, 100]}. Token ids are checked
 * against the vocabulary later (gen_check_context). */
static int parse_logit_bias(json_t *body, gen_params *p, api_error *e) {
  json_t *v;
  int r = jb_object(body, "logit_bias", JB_NULLABLE, &v, e);
  if (r <= 0)
    return r;
  size_t n = json_object_size(v);
  if (n > 1024) {
    err_invalid(e, "logit_bias",
                "Invalid 'logit_bias': too many keys. Expected at most 1024, "
                "but got %zu.",
                n);
    return -1;
  }
  if (!n)
    return 0;
  p->bias = calloc(n, sizeof *p->bias);
  if (!p->bias)
    return err_server(e, "Out of memory."), -1;
  const char *key;
  json_t *val;
  json_object_foreach(v, key, val) {
    char *end;
    long long id = strtoll(key, &end, 10);
    if (!*key || *end || id < 0 || id > INT32_MAX) {
      err_invalid(e, "logit_bias",
                  "Invalid key in 'logit_bias': '%.64s'. Keys must be token "
                  "ids (non-negative integers written as strings).",
                  key);
      return -1;
    }
    if (!json_is_number(val)) {
      err_invalid(e, "logit_bias",
                  "Invalid type for 'logit_bias.%.64s': expected a number, "
                  "but got %s instead.",
                  key, jb_type_words(val));
      return -1;
    }
    double b = json_number_value(val);
    if (b < -100 || b > 100) {
      err_invalid(e, "logit_bias",
                  "Invalid 'logit_bias.%.64s': bias %g is out of range. "
                  "Expected a value between -100 and 100.",
                  key, b);
      return -1;
    }
    p->bias[p->n_bias].token = (int32_t)id;
    p->bias[p->n_bias].bias = (float)b;
    p->n_bias++;
  }
  p->sampling.logit_bias = p->bias;
  p->sampling.n_logit_bias = p->n_bias;
  return 0;
}

/* max_completion_tokens (chat) wins over max_tokens. */
static int parse_max_tokens(json_t *body, gen_api api, gen_params *p,
                            api_error *e) {
  long long x;
  int r;
  p->max_tokens = api == GEN_API_COMPLETIONS ? 16 : 0;
  p->max_tokens_param = "max_tokens";
  if (api == GEN_API_CHAT) {
    r = jb_int(body, "max_completion_tokens", JB_NULLABLE, 1, INT_MAX, &x, e);
    if (r < 0)
      return -1;
    if (r > 0) {
      p->max_tokens = (int)x;
      p->max_tokens_param = "max_completion_tokens";
    }
  }
  r = jb_int(body, "max_tokens", JB_NULLABLE, api == GEN_API_CHAT ? 1 : 0,
             INT_MAX, &x, e);
  if (r < 0)
    return -1;
  if (r > 0 && strcmp(p->max_tokens_param, "max_completion_tokens"))
    p->max_tokens = (int)x;
  return 0;
}

/* logprobs: a boolean + top_logprobs 0..20 (chat), or 0..5 alternatives
 * (legacy completions). */
static int parse_logprobs(json_t *body, gen_api api, gen_params *p,
                          api_error *e) {
  long long x;
  int r;
  if (api == GEN_API_COMPLETIONS) {
    r = jb_int(body, "logprobs", JB_NULLABLE, 0, 5, &x, e);
    if (r > 0) {
      p->logprobs = 1;
      p->top_logprobs = (int)x;
    }
    return r < 0 ? -1 : 0;
  }
  if (jb_bool(body, "logprobs", JB_NULLABLE, &p->logprobs, e) < 0)
    return -1;
  r = jb_int(body, "top_logprobs", JB_NULLABLE, 0, SAMPLER_MAX_LOGPROBS, &x, e);
  if (r < 0)
    return -1;
  if (r > 0) {
    if (!p->logprobs && x > 0) {
      err_invalid(e, "top_logprobs",
                  "Invalid value for 'top_logprobs': 'logprobs' must be set "
                  "to true when 'top_logprobs' is used.");
      return -1;
    }
    p->top_logprobs = (int)x;
  }
  return 0;
}

static int parse_stream(json_t *body, gen_params *p, api_error *e) {
  json_t *so;
  if (jb_bool(body, "stream", JB_NULLABLE, &p->stream, e) < 0)
    return -1;
  int r = jb_object(body, "stream_options", JB_NULLABLE, &so, e);
  if (r < 0)
    return -1;
  if (r > 0) {
    if (!p->stream) {
      err_invalid(e, "stream_options",
                  "The 'stream_options' parameter is only allowed when "
                  "'stream' is enabled.");
      return -1;
    }
    json_t *iu = json_object_get(so, "include_usage");
    if (iu && !json_is_null(iu) && !json_is_boolean(iu)) {
      err_invalid(e, "stream_options.include_usage",
                  "Invalid type for 'stream_options.include_usage': expected "
                  "a boolean, but got %s instead.",
                  jb_type_words(iu));
      return -1;
    }
    p->include_usage = iu && json_is_true(iu);
  }
  return 0;
}

/* temperature, top_p, penalties, seed into p->sampling. */
static int parse_sampling(json_t *body, gen_params *p, api_error *e) {
  double x;
  long long seed;
  sampler_params *s = &p->sampling;
  x = 1; /* the platform's default */
  if (jb_number(body, "temperature", JB_NULLABLE, 0, 2, &x, e) < 0)
    return -1;
  s->temperature = (float)x;
  x = 1;
  if (jb_number(body, "top_p", JB_NULLABLE, 0, 1, &x, e) < 0)
    return -1;
  if (x <= 0)
    s->top_k = 1; /* top_p 0: only the most likely token */
  else
    s->top_p = (float)x;
  x = 0;
  if (jb_number(body, "presence_penalty", JB_NULLABLE, -2, 2, &x, e) < 0)
    return -1;
  s->presence_penalty = (float)x;
  x = 0;
  if (jb_number(body, "frequency_penalty", JB_NULLABLE, -2, 2, &x, e) < 0)
    return -1;
  s->frequency_penalty = (float)x;
  int r = jb_int(body, "seed", JB_NULLABLE, LLONG_MIN, LLONG_MAX, &seed, e);
  if (r < 0)
    return -1;
  if (r > 0) {
    p->has_seed = 1;
    s->seed = (uint64_t)seed;
    if (s->seed == SAMPLER_SEED_RANDOM) /* -1 is a seed like any other */
      s->seed--;
  }
  return 0;
}

int gen_params_parse(json_t *body, gen_api api, gen_params *p, api_error *e) {
  long long n = 1;
  memset(p, 0, sizeof *p);
  p->sampling = sampler_default_params();
  p->sampling.temperature = 1;
  p->sampling.repetition_window = 0; /* OpenAI has no repetition penalty */
  p->sampling.repetition_penalty = 1;
  if (parse_sampling(body, p, e) < 0)
    return -1;
  if (jb_int(body, "n", JB_NULLABLE, 1, GEN_MAX_N, &n, e) < 0)
    return -1;
  p->n = (int)n;
  if (parse_stop(body, p, e) < 0 || parse_logit_bias(body, p, e) < 0 ||
      parse_max_tokens(body, api, p, e) < 0 ||
      parse_logprobs(body, api, p, e) < 0 || parse_stream(body, p, e) < 0)
    return -1;
  p->sampling.n_logprobs = p->top_logprobs;
  if (jb_string(body, "user", JB_NULLABLE, 0, &p->user, e) < 0 ||
      jb_bool(body, "ignore_eos", JB_NULLABLE, &p->ignore_eos, e) < 0)
    return -1;
  return 0;
}

void gen_params_free(gen_params *p) {
  for (int i = 0; i < p->n_stop; i++)
    free(p->stop[i]);
  free(p->bias);
  p->bias = NULL;
  p->n_bias = p->n_stop = 0;
  p->sampling.logit_bias = NULL;
  p->sampling.n_logit_bias = 0;
}

/* ====================================================== model */

/* 64-bit FNV-1a. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

/* system_fingerprint: a hash of the LOADED model's identity (file name and
 * size, shapes, chat template), so it changes when the weights or the
 * template serving a name change, and says what is loaded even when the
 * file on disk was replaced and the old one is still in memory. */
static void fingerprint(const char *name, const eng_model *m, char *out,
                        size_t outlen) {
  uint64_t h = fnv1a(0xcbf29ce484222325ULL, name, strlen(name) + 1);
  const char *arch = eng_model_arch(m), *tmpl = eng_model_chat_template(m);
  long long v[6] = {(long long)eng_model_file_bytes(m),
                    (long long)eng_model_weight_bytes(m),
                    eng_model_n_vocab(m),
                    eng_model_n_layer(m),
                    eng_model_n_embd(m),
                    eng_model_n_ctx_train(m)};
  h = fnv1a(h, v, sizeof v);
  h = fnv1a(h, arch, strlen(arch) + 1);
  if (tmpl)
    h = fnv1a(h, tmpl, strlen(tmpl));
  snprintf(out, outlen, "fp_%010llx",
           (unsigned long long)(h & 0xffffffffffULL));
}

static void model_not_found(api_error *e, const char *name) {
  api_error_set(e, 404, "invalid_request_error", "model_not_found", NULL,
                "The model `%.200s` does not exist or you do not have access "
                "to it.",
                name);
}

int gen_model_acquire(const api_ctx *ctx, json_t *body, gen_model *m,
                      api_error *e) {
  const char *name, *file;
  char path[1200], err[512];
  memset(m, 0, sizeof *m);
  if (jb_string(body, "model", JB_REQUIRED, 256, &name, e) < 0)
    return -1;
  file = api_model_resolve(ctx, name, path, sizeof path);
  if (!file && ctx->default_model)
    file = api_model_resolve(ctx, ctx->default_model, path, sizeof path);
  if (!file)
    return model_not_found(e, name), -1;
  if (!ctx->pool) {
    api_error_set(e, 503, "server_error", NULL, NULL,
                  "This server does not run models.");
    return -1;
  }
  int rc = sched_pool_acquire(ctx->pool, path, &m->s, err, sizeof err);
  if (rc != 0) {
    err_server(e, "The model `%.200s` could not be loaded: %.600s", name, err);
    return -1;
  }
  m->pool = ctx->pool;
  snprintf(m->name, sizeof m->name, "%s", file);
  fingerprint(file, sched_model(m->s), m->fingerprint, sizeof m->fingerprint);
  return 0;
}

void gen_model_release(gen_model *m) {
  if (m->s)
    sched_pool_release(m->pool, m->s);
  m->s = NULL;
}

int gen_check_context(const gen_model *m, const gen_params *p, int n_prompt,
                      const char *prompt_param, const char *what_prompt,
                      api_error *e) {
  const eng_model *em = sched_model(m->s);
  int n_vocab = eng_model_n_vocab(em), n_ctx = sched_n_ctx_seq(m->s);
  int slots = sched_n_slots(m->s);
  if (p->n > slots) {
    err_invalid(e, "n",
                "Invalid 'n': this server decodes at most %d sequences of one "
                "model together (hearth serve --parallel), but got %d.",
                slots, p->n);
    return -1;
  }
  for (int i = 0; i < p->n_bias; i++)
    if (p->bias[i].token >= n_vocab) {
      err_invalid(e, "logit_bias",
                  "Invalid key in 'logit_bias': %d is not a token id of this "
                  "model (its vocabulary has %d tokens).",
                  (int)p->bias[i].token, n_vocab);
      return -1;
    }
  if (p->max_tokens <= 0 && n_prompt + 1 > n_ctx) {
    api_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                  prompt_param,
                  "This model's maximum context length is %d tokens. "
                  "However, your %s resulted in %d tokens. Please reduce the "
                  "length of the %s.",
                  n_ctx, what_prompt, n_prompt, what_prompt);
    return -1;
  }
  if (p->max_tokens > 0 && (long long)n_prompt + p->max_tokens > n_ctx) {
    api_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                  prompt_param,
                  "This model's maximum context length is %d tokens. "
                  "However, you requested %lld tokens (%d in the %s, %d in "
                  "the completion). Please reduce the length of the %s or "
                  "completion.",
                  n_ctx, (long long)n_prompt + p->max_tokens, n_prompt,
                  what_prompt, p->max_tokens, what_prompt);
    return -1;
  }
  return 0;
}

int gen_tokenize(const gen_model *m, const char *text, size_t len, int add_bos,
                 int add_special, int parse_special, int32_t **out,
                 api_error *e) {
  const eng_model *em = sched_model(m->s);
  int32_t bos = eng_token_bos(em);
  int lead = add_bos && bos >= 0;
  int cap = (int)(len < INT_MAX / 2 - 16 ? len : INT_MAX / 2 - 16) + 8;
  int32_t *t = malloc((size_t)(cap + lead) * sizeof *t);
  if (!t)
    return err_server(e, "Out of memory."), -1;
  int n =
      eng_tokenize(em, text, len, add_special, parse_special, t + lead, cap);
  if (n < 0 && n != ENG_ERR_INVALID) { /* -(needed) */
    cap = -n;
    int32_t *t2 = realloc(t, (size_t)(cap + lead) * sizeof *t);
    if (!t2)
      return free(t), err_server(e, "Out of memory."), -1;
    t = t2;
    n = eng_tokenize(em, text, len, add_special, parse_special, t + lead, cap);
  }
  if (n < 0) {
    free(t);
    err_invalid(e, NULL, "The text could not be tokenized.");
    return -1;
  }
  if (lead)
    t[0] = bos;
  *out = t;
  return n + lead;
}

/* ====================================================== job */

/* Per-choice private state. */
typedef struct cstate {
  eng_detok *dt;
  char *pend; /* detokenized, not yet released */
  size_t plen, pcap;
  size_t released; /* bytes released before pend[0] */
  size_t tcap;     /* capacity of the choice's kept text */
  gen_token *ptok; /* tokens not yet released (logprobs only) */
  int nptok, cptok;
  int stopped; /* a stop sequence matched: ignore what follows */
  int done;
} cstate;

/* The cls of one sched request (one prompt). */
typedef struct gen_sub {
  gen_job *j;
  int prompt;
} gen_sub;

struct gen_job {
  pthread_mutex_t mu;
  atomic_int refs;
  atomic_int failed;    /* start failed: callbacks are muted */
  atomic_int cancelled; /* client gone or a write failed */
  sched *sched;
  const eng_model *em;
  api_stream *stream;
  gen_callbacks cb;
  int keep_text;
  int n, n_prompts, n_choices;
  int logprobs, top_logprobs, ignore_eos, max_tokens, score;
  sampler_params sampling;
  sampler_logit_bias *bias;
  char *stop[GEN_MAX_STOP];
  int n_stop;
  gen_choice *choices;
  cstate *cs;
  gen_sub *subs;
  gen_usage usage;
  char error[512];
  /* gen_job_log: where the line goes (NULL: nowhere) and what it names */
  void (*log_line)(void *cls, const char *line, size_t n);
  void *log_cls;
  char log_id[64], log_endpoint[32], log_model[256];
};

static void token_free(gen_token *t) {
  free((void *)t->text); /* one block holds the token's and alts' text */
}

static void job_free(gen_job *j) {
  for (int i = 0; i < j->n_choices; i++) {
    cstate *c = &j->cs[i];
    eng_detok_free(c->dt);
    free(c->pend);
    for (int k = 0; k < c->nptok; k++)
      token_free(&c->ptok[k]);
    free(c->ptok);
    gen_choice *ch = &j->choices[i];
    free(ch->text);
    for (int k = 0; k < ch->n_tokens; k++)
      token_free(&ch->tokens[k]);
    free(ch->tokens);
  }
  for (int i = 0; i < j->n_stop; i++)
    free(j->stop[i]);
  free(j->bias);
  free(j->choices);
  free(j->cs);
  free(j->subs);
  if (j->stream)
    api_stream_end(j->stream);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

gen_job *gen_job_new(const gen_model *m, const gen_params *p,
                     api_stream *stream, int n_prompts, int keep_text,
                     const gen_callbacks *cb) {
  gen_job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  pthread_mutex_init(&j->mu, NULL);
  atomic_init(&j->refs, 1);
  j->sched = m->s;
  j->em = sched_model(m->s);
  j->cb = *cb;
  snprintf(j->log_model, sizeof j->log_model, "%s", m->name);
  j->keep_text = keep_text;
  j->n = p->n;
  j->n_prompts = n_prompts;
  j->n_choices = n_prompts * p->n;
  j->logprobs = p->logprobs;
  j->top_logprobs = p->top_logprobs;
  j->ignore_eos = p->ignore_eos;
  j->score = p->score;
  j->max_tokens = p->max_tokens;
  j->sampling = p->sampling;
  int ok = 1;
  if (p->n_bias) {
    j->bias = malloc((size_t)p->n_bias * sizeof *j->bias);
    ok = j->bias != NULL;
    if (ok)
      memcpy(j->bias, p->bias, (size_t)p->n_bias * sizeof *j->bias);
    j->sampling.logit_bias = j->bias;
  }
  for (int i = 0; ok && i < p->n_stop; i++)
    ok = (j->stop[j->n_stop++] = strdup(p->stop[i])) != NULL;
  j->choices = calloc((size_t)j->n_choices, sizeof *j->choices);
  j->cs = calloc((size_t)j->n_choices, sizeof *j->cs);
  j->subs = calloc((size_t)n_prompts, sizeof *j->subs);
  ok = ok && j->choices && j->cs && j->subs;
  for (int i = 0; ok && i < j->n_choices; i++) {
    j->choices[i].index = i;
    ok = (j->cs[i].dt = eng_detok_new(j->em, 0)) != NULL;
  }
  if (!ok) {
    job_free(j);
    return NULL;
  }
  j->stream = stream; /* owned from here on */
  return j;
}

api_stream *gen_job_take_stream(gen_job *j) {
  api_stream *s = j->stream;
  j->stream = NULL;
  return s;
}

gen_choice *gen_job_choices(gen_job *j, int *n) {
  if (n)
    *n = j->n_choices;
  return j->choices;
}

int gen_job_n_choices(const gen_job *j) {
  return j->n_choices;
}

api_stream *gen_job_stream(gen_job *j) {
  return j->stream;
}

/* --------------------------------------------------- text and tokens */

static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need)
    c *= 2;
  void *b = realloc(*buf, c * elem);
  if (!b)
    return -1;
  *buf = b;
  *cap = c;
  return 0;
}

/* Appends what tok completes (or, tok < 0, what the detokenizer still
 * holds) to the pending text. */
static int detok_into(gen_job *j, cstate *c, int32_t tok) {
  char small[256];
  int n = tok >= 0 ? eng_detok_push(c->dt, tok, small, sizeof small)
                   : eng_detok_flush(c->dt, small, sizeof small);
  char *src = small, *big = NULL;
  if (n < 0) {
    big = malloc((size_t)-n);
    if (!big)
      return -1;
    n = tok >= 0 ? eng_detok_push(c->dt, tok, big, -n)
                 : eng_detok_flush(c->dt, big, -n);
    src = big;
  }
  (void)j;
  if (n > 0 &&
      grow((void **)&c->pend, &c->pcap, c->plen + (size_t)n + 1, 1) < 0) {
    free(big);
    return -1;
  }
  if (n > 0) {
    memcpy(c->pend + c->plen, src, (size_t)n);
    c->plen += (size_t)n;
  }
  free(big);
  return 0;
}

/* A token's own bytes into buf; a piece longer than buf (never seen in
 * real vocabularies) is reported empty. The chosen token is rendered as the
 * content is (control tokens empty), so the tokens add up to the text;
 * alternatives render control tokens ("<|im_end|>") to say what they are. */
static int piece(const eng_model *m, int32_t tok, int special, char *buf,
                 int len) {
  int n = eng_token_piece(m, tok, special, buf, len);
  return n < 0 ? 0 : n;
}

/* Records tok (logprobs asked) as pending, starting at offset. */
static int token_add(gen_job *j, cstate *c, const sched_event *ev,
                     size_t offset) {
  char tmp[SAMPLER_MAX_LOGPROBS + 1][128];
  int lens[SAMPLER_MAX_LOGPROBS + 1], total = 0;
  int n_top =
      ev->info.n_top < j->top_logprobs ? ev->info.n_top : j->top_logprobs;
  size_t cap = (size_t)c->cptok;
  if (grow((void **)&c->ptok, &cap, (size_t)c->nptok + 1, sizeof *c->ptok) < 0)
    return -1;
  c->cptok = (int)cap;
  lens[0] = piece(j->em, ev->token, 0, tmp[0], sizeof tmp[0]);
  total += lens[0] + 1;
  for (int i = 0; i < n_top; i++) {
    lens[i + 1] =
        piece(j->em, ev->info.top[i].token, 1, tmp[i + 1], sizeof tmp[i + 1]);
    total += lens[i + 1] + 1;
  }
  char *block = malloc((size_t)total);
  if (!block)
    return -1;
  gen_token *t = &c->ptok[c->nptok++];
  memset(t, 0, sizeof *t);
  char *w = block;
  for (int i = 0; i <= n_top; i++) {
    memcpy(w, tmp[i], (size_t)lens[i]);
    w[lens[i]] = 0;
    if (i == 0) {
      t->text = w;
      t->len = lens[0];
    } else {
      t->top[i - 1].id = ev->info.top[i - 1].token;
      t->top[i - 1].logprob = ev->info.top[i - 1].logprob;
      t->top[i - 1].text = w;
      t->top[i - 1].len = lens[i];
    }
    w += lens[i] + 1;
  }
  t->id = ev->token;
  t->logprob = ev->info.logprob;
  t->offset = offset;
  t->n_top = n_top;
  return 0;
}

/* Keeps released text and tokens in the choice (keep_text). */
static int keep(cstate *c, gen_choice *ch, const char *text, size_t len,
                gen_token *toks, int n_toks) {
  if (grow((void **)&ch->text, &c->tcap, ch->len + len + 1, 1) < 0)
    return -1;
  memcpy(ch->text + ch->len, text, len);
  ch->len += len;
  ch->text[ch->len] = 0;
  if (!n_toks)
    return 0;
  gen_token *t =
      realloc(ch->tokens, (size_t)(ch->n_tokens + n_toks) * sizeof *t);
  if (!t)
    return -1;
  memcpy(t + ch->n_tokens, toks, (size_t)n_toks * sizeof *t);
  ch->tokens = t;
  ch->n_tokens += n_toks;
  return 0;
}

/* Releases pend[0..k) and the pending tokens starting before released + k
 * (all of them when all_toks); drop_rest: forget the remaining tokens and
 * text (cut at a stop). Returns 0, or -1 when the endpoint's write failed
 * or memory ran out. */
static int release(gen_job *j, int idx, size_t k, int all_toks, int drop_rest) {
  cstate *c = &j->cs[idx];
  gen_choice *ch = &j->choices[idx];
  size_t end = c->released + k;
  int nt = 0;
  while (nt < c->nptok && (all_toks || c->ptok[nt].offset < end))
    nt++;
  int rc = 0;
  const char *text = c->pend ? c->pend : "";
  if ((k || nt) && j->cb.on_delta &&
      j->cb.on_delta(j, j->cb.cls, ch, text, k, c->ptok, nt) < 0)
    rc = -1;
  if (j->keep_text && keep(c, ch, text, k, c->ptok, nt) < 0)
    rc = -1;
  else if (!j->keep_text)
    for (int i = 0; i < nt; i++)
      token_free(&c->ptok[i]);
  if (nt) {
    memmove(c->ptok, c->ptok + nt, (size_t)(c->nptok - nt) * sizeof *c->ptok);
    c->nptok -= nt;
  }
  if (k) {
    memmove(c->pend, c->pend + k, c->plen - k);
    c->plen -= k;
  }
  c->released = end;
  if (drop_rest) {
    for (int i = 0; i < c->nptok; i++)
      token_free(&c->ptok[i]);
    c->nptok = 0;
    c->plen = 0;
  }
  return rc;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of a
 * stop string (text that must be held back). */
static size_t stop_holdback(const gen_job *j, const char *s, size_t n) {
  size_t best = 0;
  for (int i = 0; i < j->n_stop; i++) {
    size_t sl = strlen(j->stop[i]);
    size_t max = sl - 1 < n ? sl - 1 : n;
    for (size_t k = max; k > best; k--)
      if (!memcmp(s + n - k, j->stop[i], k)) {
        best = k;
        break;
      }
  }
  return best;
}

/* Earliest match of any stop string in s[0..n), or (size_t)-1. */
static size_t stop_find(const gen_job *j, const char *s, size_t n) {
  size_t best = (size_t)-1;
  for (int i = 0; i < j->n_stop; i++) {
    const char *m = memmem(s, n, j->stop[i], strlen(j->stop[i]));
    if (m && (size_t)(m - s) < best)
      best = (size_t)(m - s);
  }
  return best;
}

/* Releases what can be released. Returns 0, 1 when a stop sequence
 * matched (the choice is finished), -1 on a failed write. */
static int advance(gen_job *j, int idx, int final) {
  cstate *c = &j->cs[idx];
  size_t at = stop_find(j, c->pend, c->plen);
  if (at != (size_t)-1) {
    c->stopped = 1;
    return release(j, idx, at, 0, 1) < 0 ? -1 : 1;
  }
  size_t hold = final ? 0 : stop_holdback(j, c->pend, c->plen);
  return release(j, idx, c->plen - hold, final, 0);
}

/* ------------------------------------------------- sched callbacks */

/* The client is gone, or so far behind that writing to it would block
 * the worker (api_stream_write waits past API_STREAM_MAX_BUFFERED). */
static int client_lost(gen_job *j) {
  return j->stream && (api_stream_cancelled(j->stream) ||
                       api_stream_buffered(j->stream) > GEN_MAX_UNREAD);
}

static int cb_token(void *cls, const sched_event *ev) {
  gen_sub *sub = cls;
  gen_job *j = sub->j;
  if (atomic_load(&j->failed) || atomic_load(&j->cancelled) || client_lost(j))
    return -1;
  int idx = sub->prompt * j->n + ev->index;
  cstate *c = &j->cs[idx];
  gen_choice *ch = &j->choices[idx];
  pthread_mutex_lock(&j->mu);
  int rc = 0;
  if (c->stopped) {
    rc = 1;
    goto out;
  }
  ch->n_generated = ev->n_generated;
  ch->sum_logprob += ev->info.logprob;
  if (eng_token_is_eog(j->em, ev->token))
    goto out; /* ends the choice (or, ignore_eos, is skipped): no text */
  size_t start = c->released + c->plen;
  if (detok_into(j, c, ev->token) < 0 ||
      (j->logprobs && token_add(j, c, ev, start) < 0)) {
    snprintf(j->error, sizeof j->error, "Out of memory.");
    rc = -1;
    goto out;
  }
  rc = advance(j, idx, 0);
out:
  pthread_mutex_unlock(&j->mu);
  if (rc < 0)
    atomic_store(&j->cancelled, 1);
  return rc;
}

static void cb_choice_done(void *cls, int index, sched_finish why,
                           const char *msg) {
  gen_sub *sub = cls;
  gen_job *j = sub->j;
  if (atomic_load(&j->failed))
    return;
  int idx = sub->prompt * j->n + index;
  cstate *c = &j->cs[idx];
  gen_choice *ch = &j->choices[idx];
  pthread_mutex_lock(&j->mu);
  int rc = 0;
  if (!c->stopped && !atomic_load(&j->cancelled)) {
    if (detok_into(j, c, -1) < 0)
      rc = -1;
    else
      rc = advance(j, idx, 1);
  }
  c->done = 1;
  if (why == SCHED_FINISH_ERROR && !j->error[0])
    snprintf(j->error, sizeof j->error, "%s",
             msg ? msg : "The model failed while generating.");
  if (why == SCHED_FINISH_CANCELLED)
    atomic_store(&j->cancelled, 1);
  ch->finish_reason =
      c->stopped || why == SCHED_FINISH_STOP ? "stop" : "length";
  if (rc >= 0 && !atomic_load(&j->cancelled) && j->cb.on_choice_done &&
      j->cb.on_choice_done(j, j->cb.cls, ch) < 0)
    rc = -1;
  pthread_mutex_unlock(&j->mu);
  if (rc < 0)
    atomic_store(&j->cancelled, 1);
}

void gen_job_log(gen_job *j, const api_ctx *ctx, const char *request_id,
                 const char *endpoint) {
  if (!ctx || !ctx->log_line)
    return;
  j->log_line = ctx->log_line;
  j->log_cls = ctx->log_cls;
  snprintf(j->log_id, sizeof j->log_id, "%s", request_id ? request_id : "-");
  snprintf(j->log_endpoint, sizeof j->log_endpoint, "%s", endpoint);
}

/* The job's line (gen_job_log), e.g. "req_x chat.completions model=m
 * prompt=64 cached=0 completion=128 queue=0.02ms prefill=51.30ms
 * first_token=52.10ms total=560.00ms decode=250.1tok/s". */
static void job_log(gen_job *j, const char *err) {
  const gen_usage *u = &j->usage;
  double gen_s = u->total_s - u->first_token_s;
  double tps = u->completion_tokens > j->n_choices && gen_s > 0
                   ? (u->completion_tokens - j->n_choices) / gen_s
                   : 0;
  char line[768];
  int n = snprintf(
      line, sizeof line,
      "%s %s model=%s prompt=%d cached=%d completion=%d queue=%.2fms "
      "prefill=%.2fms first_token=%.2fms total=%.2fms decode=%.1ftok/s%s%s\n",
      j->log_id, j->log_endpoint, j->log_model, u->prompt_tokens,
      u->cached_tokens, u->completion_tokens, u->queue_s * 1e3,
      u->prefill_s * 1e3, u->first_token_s * 1e3, u->total_s * 1e3, tps,
      err ? " error=" : "", err ? err : "");
  if (n > 0)
    j->log_line(j->log_cls, line,
                (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Drops one reference; the last one finishes the job. */
static void job_unref(gen_job *j) {
  if (atomic_fetch_sub(&j->refs, 1) != 1)
    return;
  if (!atomic_load(&j->failed)) {
    const char *err = j->error[0]                  ? j->error
                      : atomic_load(&j->cancelled) ? "cancelled"
                                                   : NULL;
    if (j->log_line)
      job_log(j, err);
    j->cb.on_done(j, j->cb.cls, &j->usage, err);
  }
  job_free(j);
}

static double max_d(double a, double b) {
  return a > b ? a : b;
}

static void cb_done(void *cls, const sched_usage *u) {
  gen_sub *sub = cls;
  gen_job *j = sub->j;
  pthread_mutex_lock(&j->mu);
  gen_usage *g = &j->usage;
  g->prompt_tokens += u->prompt_tokens;
  g->cached_tokens += u->cached_tokens;
  g->completion_tokens += u->completion_tokens;
  g->queue_s = max_d(g->queue_s, u->queue_s);
  g->prefill_s = max_d(g->prefill_s, u->prefill_s);
  if (u->first_token_s > 0 &&
      (g->first_token_s <= 0 || u->first_token_s < g->first_token_s))
    g->first_token_s = u->first_token_s;
  g->total_s = max_d(g->total_s, u->total_s);
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
}

static int cb_cancelled(void *cls) {
  gen_job *j = ((gen_sub *)cls)->j;
  return atomic_load(&j->failed) || atomic_load(&j->cancelled) ||
         client_lost(j);
}

/* ------------------------------------------------------- start */

static void submit_error(int rc, const char *msg, int *retry_after,
                         api_error *e) {
  switch (rc) {
  case SCHED_EQUEUE_FULL:
    api_error_set(e, 429, "requests", "rate_limit_exceeded", NULL,
                  "Too many requests are waiting for this model: its queue "
                  "is full. Please retry after a short wait.");
    if (retry_after)
      *retry_after = 1;
    break;
  case SCHED_ETOO_LONG:
    api_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                  NULL, "%s", msg[0] ? msg : "The prompt is too long.");
    break;
  case SCHED_EINVAL:
    err_invalid(e, NULL, "%s", msg[0] ? msg : "Invalid request.");
    break;
  case SCHED_ESHUTDOWN:
    api_error_set(e, 503, "server_error", NULL, NULL,
                  "The server is shutting down.");
    break;
  default:
    err_server(e, "The model could not take the request: %s",
               msg[0] ? msg : "out of memory");
  }
}

int gen_job_start(gen_job *j, const int32_t *const *prompts,
                  const int *n_prompt, int json_object, int *retry_after_s,
                  api_error *e) {
  char msg[512];
  for (int i = 0; i < j->n_prompts; i++) {
    sched_req_params rp = sched_req_default_params();
    rp.prompt = prompts[i];
    rp.n_prompt = n_prompt[i];
    rp.n = j->n;
    rp.max_tokens = j->max_tokens;
    rp.sampling = j->sampling;
    rp.json_object = json_object;
    rp.ignore_eos = j->ignore_eos;
    rp.logprobs = j->logprobs || j->score;
    rp.on_token = cb_token;
    rp.on_choice_done = cb_choice_done;
    rp.on_done = cb_done;
    rp.cancelled = cb_cancelled;
    j->subs[i].j = j;
    j->subs[i].prompt = i;
    rp.cls = &j->subs[i];
    msg[0] = 0;
    atomic_fetch_add(&j->refs, 1);
    int rc = sched_submit(j->sched, &rp, msg, sizeof msg);
    if (rc != SCHED_OK) {
      atomic_fetch_sub(&j->refs, 1);
      submit_error(rc, msg, retry_after_s, e);
      atomic_store(&j->failed, 1);
      job_unref(j);
      return -1;
    }
  }
  job_unref(j);
  return 0;
}

/* ====================================================== shared state */

#define TMPL_CACHE_MAX 8

typedef struct tmpl_entry {
  const eng_model *model; /* key (compared, never dereferenced) ... */
  char fp[32];            /* ... with the file's fingerprint */
  chat_template *t;
  int refs;
  unsigned long long used; /* last use, for eviction */
} tmpl_entry;

typedef struct gen_task {
  void (*fn)(void *);
  void *arg;
  struct gen_task *next;
} gen_task;

struct gen_shared {
  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t cv;
  tmpl_entry tmpl[TMPL_CACHE_MAX];
  unsigned long long clock;
  gen_task *head, *tail; /* deferred work, oldest first */
  int running;           /* the background thread runs */
  pthread_t th;
};

static void *bg_main(void *arg) {
  gen_shared *g = arg;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    while (g->running && !g->head)
      pthread_cond_wait(&g->cv, &g->mu);
    gen_task *t = g->head;
    if (!t)
      break; /* stopping and drained */
    g->head = t->next;
    if (!g->head)
      g->tail = NULL;
    pthread_mutex_unlock(&g->mu);
    t->fn(t->arg);
    free(t);
    pthread_mutex_lock(&g->mu);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

gen_shared *gen_shared_new(void) {
  gen_shared *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  /* The thread never takes process signals (hearth serve waits for
   * SIGINT/SIGTERM on its main thread; a signal delivered here would run
   * the default action and kill the process). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  g->running = 1;
  if (pthread_create(&g->th, NULL, bg_main, g) != 0)
    g->running = 0; /* deferred work runs inline */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return g;
}

void gen_shared_stop(gen_shared *g) {
  if (!g)
    return;
  pthread_mutex_lock(&g->mu);
  int was = g->running;
  g->running = 0;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
  if (was)
    pthread_join(g->th, NULL);
}

void gen_shared_free(gen_shared *g) {
  if (!g)
    return;
  gen_shared_stop(g);
  for (int i = 0; i < TMPL_CACHE_MAX; i++) {
    assert(!g->tmpl[i].refs);
    chat_template_free(g->tmpl[i].t);
  }
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

void gen_defer(gen_shared *g, void (*fn)(void *), void *arg) {
  gen_task *t = g ? malloc(sizeof *t) : NULL;
  if (t) {
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&g->mu);
    if (g->running) {
      if (g->tail)
        g->tail->next = t;
      else
        g->head = t;
      g->tail = t;
      pthread_cond_signal(&g->cv);
      t = NULL; /* queued */
    }
    pthread_mutex_unlock(&g->mu);
    if (!t)
      return;
    free(t);
  }
  fn(arg); /* no background thread (any more): inline */
}

/* The cached template of (m, fp) with a new reference, or NULL (lock
 * held). */
static chat_template *tmpl_find(gen_shared *g, const eng_model *m,
                                const char *fp) {
  for (int i = 0; i < TMPL_CACHE_MAX; i++) {
    tmpl_entry *e = &g->tmpl[i];
    if (e->t && e->model == m && !strcmp(e->fp, fp)) {
      e->refs++;
      e->used = ++g->clock;
      return e->t;
    }
  }
  return NULL;
}

/* A free entry, evicting the least recently used unreferenced one if need
 * be; NULL when every entry is in use (lock held). */
static tmpl_entry *tmpl_slot(gen_shared *g) {
  tmpl_entry *victim = NULL;
  for (int i = 0; i < TMPL_CACHE_MAX; i++) {
    tmpl_entry *e = &g->tmpl[i];
    if (!e->t)
      return e;
    if (!e->refs && (!victim || e->used < victim->used))
      victim = e;
  }
  if (victim) {
    chat_template_free(victim->t);
    memset(victim, 0, sizeof *victim);
  }
  return victim;
}

chat_template *gen_template_acquire(gen_shared *g, const gen_model *gm,
                                    char *err, size_t errlen) {
  const eng_model *m = sched_model(gm->s);
  chat_template *t = NULL;
  if (g) {
    pthread_mutex_lock(&g->mu);
    t = tmpl_find(g, m, gm->fingerprint);
    pthread_mutex_unlock(&g->mu);
    if (t)
      return t;
  }
  t = chat_template_new(m, err, errlen); /* parsed outside the lock */
  if (!t || !g)
    return t;
  pthread_mutex_lock(&g->mu);
  chat_template *other = tmpl_find(g, m, gm->fingerprint); /* a racer's */
  tmpl_entry *e = other ? NULL : tmpl_slot(g);
  if (e) {
    e->model = m;
    snprintf(e->fp, sizeof e->fp, "%s", gm->fingerprint);
    e->t = t;
    e->refs = 1;
    e->used = ++g->clock;
  }
  pthread_mutex_unlock(&g->mu);
  if (other) {
    chat_template_free(t);
    return other;
  }
  return t; /* not cached when every entry is busy: private, freed on
               release */
}

void gen_template_release(gen_shared *g, chat_template *t) {
  int cached = 0;
  if (!t)
    return;
  if (g) {
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < TMPL_CACHE_MAX; i++)
      if (g->tmpl[i].t == t) {
        g->tmpl[i].refs--;
        cached = 1;
      }
    pthread_mutex_unlock(&g->mu);
  }
  if (!cached)
    chat_template_free(t);
}

/* ====================================================== helpers */

void gen_new_id(const char *prefix, char *out, size_t outlen) {
  id_new(prefix, out, outlen);
}

json_t *gen_usage_json(const gen_usage *u) {
  return json_pack(
      "{s:i, s:i, s:i, s:{s:i, s:i}, s:{s:i, s:i, s:i, s:i}}", "prompt_tokens",
      u->prompt_tokens, "completion_tokens", u->completion_tokens,
      "total_tokens", u->prompt_tokens + u->completion_tokens,
      "prompt_tokens_details", "cached_tokens", u->cached_tokens,
      "audio_tokens", 0, "completion_tokens_details", "reasoning_tokens", 0,
      "audio_tokens", 0, "accepted_prediction_tokens", 0,
      "rejected_prediction_tokens", 0);
}

/* A JSON string of bytes that may not be valid UTF-8 (a token's piece):
 * invalid bytes become U+FFFD, as the platform shows them. */
static json_t *lossy_string(const char *s, int n) {
  char *buf = malloc((size_t)n * 3 + 1);
  if (!buf)
    return NULL;
  size_t w = 0;
  for (int i = 0; i < n;) {
    unsigned char b = (unsigned char)s[i];
    int l = b < 0x80         ? 1
            : (b >> 5) == 6  ? 2
            : (b >> 4) == 14 ? 3
            : (b >> 3) == 30 ? 4
                             : 0;
    int ok = l > 0 && i + l <= n;
    for (int k = 1; ok && k < l; k++)
      ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
    if (ok) {
      memcpy(buf + w, s + i, (size_t)l);
      w += (size_t)l;
      i += l;
    } else {
      memcpy(buf + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    }
  }
  json_t *v = json_stringn(buf, w);
  free(buf);
  if (!v) /* overlong forms and the like: jansson refuses them */
    v = json_string("\xEF\xBF\xBD");
  return v;
}

static json_t *bytes_json(const char *s, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++)
    json_array_append_new(a, json_integer((unsigned char)s[i]));
  return a;
}

/* -inf (a banned token) is not JSON: the platform reports -9999. */
static double finite_lp(float lp) {
  return lp > -9999.0f ? (double)lp : -9999.0;
}

json_t *gen_token_logprob_json(const gen_token *t, int n_top) {
  json_t *top = json_array();
  for (int i = 0; top && i < n_top && i < t->n_top; i++)
    json_array_append_new(
        top, json_pack("{s:o, s:f, s:o}", "token",
                       lossy_string(t->top[i].text, t->top[i].len), "logprob",
                       finite_lp(t->top[i].logprob), "bytes",
                       bytes_json(t->top[i].text, t->top[i].len)));
  return json_pack("{s:o, s:f, s:o, s:o}", "token",
                   lossy_string(t->text, t->len), "logprob",
                   finite_lp(t->logprob), "bytes", bytes_json(t->text, t->len),
                   "top_logprobs", top);
}
