/* gen.h: the text-generation driver shared by POST /v1/chat/completions
 * (api/chat.c) and POST /v1/completions (api/completions.c).
 *
 * It does what both endpoints have in common and nothing of their JSON
 * shapes:
 *   1. gen_params_parse: the common body parameters, with the platform's 400
 *      wording (temperature, top_p, n, stop, seed, penalties, logit_bias,
 *      max_tokens / max_completion_tokens, user, stream, stream_options,
 *      logprobs counts, and the hearth extension ignore_eos);
 *   2. gen_model_acquire: model name -> loaded sched (404 model_not_found);
 *   3. gen_check_context: prompt + max_tokens vs the context (400
 *      context_length_exceeded);
 *   4. gen_job: submits one or more prompts (n choices each) to the sched,
 *      turns tokens into text per choice with a streaming detokenizer, cuts
 *      at stop sequences that may span tokens (text that could be the start
 *      of a stop string is held back until it cannot), keeps per-token
 *      logprobs, cancels when the client goes away, and hands text deltas,
 *      choice ends and the final totals to the endpoint's callbacks, which
 *      format and write their own JSON / SSE to the job's api_stream.
 *
 * Threads: gen_job_start runs on the HTTP thread and returns at once; every
 * callback runs later on the model's sched worker thread (one thread per
 * model, so the callbacks of one job never run concurrently). The HTTP
 * thread never waits for generation: non-streaming responses are streamed
 * bodies too (Content-Type application/json) written whole in on_done.
 * The worker never waits for a client either: a client that leaves more
 * than GEN_MAX_UNREAD bytes unread is treated as gone (its job cancels)
 * instead of stalling every sequence of the model behind a blocked write.
 *
 * Hearth extension (non-standard, for benchmarks): "ignore_eos": true in the
 * body makes end-of-generation tokens not stop a choice (finish_reason then
 * "length").
 *
 * Knows nothing about libmicrohttpd; uses api/api.h, api/stream.h and
 * engine/sched.h. */
#ifndef HEARTH_API_GEN_H
#define HEARTH_API_GEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "api/stream.h"
#include "core/error.h"
#include "engine/chat.h"
#include "engine/sched.h"

#define GEN_MAX_STOP 4
#define GEN_MAX_N 128            /* the platform's bound on n */
#define GEN_MAX_UNREAD (2 << 20) /* bytes a streaming client may lag */

/* ------------------------------------------------------------ parameters */

/* What differs between the two endpoints' parameter sets. */
typedef enum gen_api {
  GEN_API_CHAT = 0,    /* max_tokens or max_completion_tokens (default: until
                          the context is full); logprobs is a boolean and
                          top_logprobs 0..20 */
  GEN_API_COMPLETIONS, /* max_tokens (default 16); logprobs is an integer
                          0..5 (the alternatives' count) */
} gen_api;

typedef struct gen_params {
  sampler_params sampling;  /* temperature, top_p, penalties, seed,
                               logit_bias (points into bias below) */
  sampler_logit_bias *bias; /* owned */
  int n_bias;
  int n;          /* choices per prompt (1..GEN_MAX_N; checked against the
                     sched's slots by gen_check_context) */
  int max_tokens; /* per choice; 0 = absent (chat: until the context is
                     full) */
  const char *max_tokens_param; /* "max_tokens" or "max_completion_tokens"
                                   (for error messages) */
  char *stop[GEN_MAX_STOP];     /* owned, non-empty strings */
  int n_stop;
  int stream;        /* stream: true */
  int include_usage; /* stream_options.include_usage */
  int logprobs;      /* 1: report per-token logprobs */
  int top_logprobs;  /* alternatives per token (0..20) */
  int ignore_eos;    /* hearth extension */
  int score;         /* 1: fill gen_choice.sum_logprob even without
                        logprobs (best_of); the caller sets it */
  int has_seed;      /* seed was given (sampling.seed is it) */
  const char *user;  /* borrowed from the body, or NULL */
} gen_params;

/* Reads the common parameters of body (model, messages/prompt and
 * endpoint-specific fields are the caller's). 0, or -1 with e = 400 naming
 * the parameter. On success free with gen_params_free (also safe after a
 * failure). Strings borrowed from body stay valid while body lives. */
int gen_params_parse(json_t *body, gen_api api, gen_params *p, api_error *e);
void gen_params_free(gen_params *p);

/* ------------------------------------------------------------ model */

typedef struct gen_model {
  sched *s;             /* acquired from ctx->pool; release with
                           gen_model_release */
  sched_pool *pool;     /* where it came from */
  char name[256];       /* the model's name as listed (file stem) */
  char fingerprint[32]; /* "fp_" + 10 hex of a hash of the loaded model
                           (file name and size, shapes, chat template):
                           changes when what serves the name does */
} gen_model;

/* Resolves the body's "model" (required string) through api_model_resolve
 * (aliases included; ctx->default_model when set and the name is unknown)
 * and acquires its sched (loading it on first use). 0, or -1 with e: 400
 * for a missing / non-string model, 404 model_not_found "The model `x` does
 * not exist or you do not have access to it.", 500 when the file does not
 * load. */
int gen_model_acquire(const api_ctx *ctx, json_t *body, gen_model *m,
                      api_error *e);
void gen_model_release(gen_model *m);

/* Checks n against the sched's slots (400 naming n: "this server decodes
 * at most N sequences of one model together (hearth serve --parallel)"),
 * logit_bias ids against the vocabulary, and n_prompt +
 * max_tokens against the context (400 context_length_exceeded, param
 * prompt_param, the platform's wording "This model's maximum context length
 * is N tokens. However, you requested M tokens (P in the messages, C in the
 * completion). Please reduce the length of the messages or completion.";
 * what_prompt is "messages" or "prompt"). max_tokens 0 counts as 1. 0 / -1.
 */
int gen_check_context(const gen_model *m, const gen_params *p, int n_prompt,
                      const char *prompt_param, const char *what_prompt,
                      api_error *e);

/* Tokenizes text with the model's vocabulary (parse_special / add_special
 * as eng_tokenize), prefixing BOS when add_bos. Returns the count and a
 * malloc'd *out, or -1 with e (500; 400 when the text is not tokenizable). */
int gen_tokenize(const gen_model *m, const char *text, size_t len, int add_bos,
                 int add_special, int parse_special, int32_t **out,
                 api_error *e);

/* ------------------------------------------------------------ job */

/* One generated token with its log-probabilities, as released with text.
 * text/len: the token's own bytes (may be a partial UTF-8 sequence);
 * offset: where the token's text starts in the choice's text. */
typedef struct gen_alt {
  int32_t id;
  float logprob;
  const char *text;
  int len;
} gen_alt;

typedef struct gen_token {
  int32_t id;
  float logprob;
  const char *text;
  int len;
  size_t offset;
  int n_top;
  gen_alt top[SAMPLER_MAX_LOGPROBS];
} gen_token;

/* A choice's state, readable by the endpoint in its callbacks. */
typedef struct gen_choice {
  int index;  /* prompt_index * n + i */
  char *text; /* everything released so far (NUL-terminated) */
  size_t len;
  gen_token *tokens; /* released tokens (when logprobs), n_tokens */
  int n_tokens;
  const char *finish_reason; /* NULL while running; "stop" / "length" */
  double sum_logprob;        /* of every sampled token, when logprobs or
                                gen_params.score (best_of); else 0 */
  int n_generated;           /* tokens sampled */
} gen_choice;

typedef struct gen_usage {
  int prompt_tokens; /* summed over prompts */
  int cached_tokens;
  int completion_tokens; /* summed over choices */
  /* timing from the submission, seconds (engine/sched.h's sched_usage):
   * the slowest prompt's queue, prefill and total, the earliest first
   * token (the prompts of one request share their passes) */
  double queue_s, prefill_s, first_token_s, total_s;
} gen_usage;

typedef struct gen_job gen_job;

typedef struct gen_callbacks {
  /* Text released for a choice: text[0..len) (valid UTF-8, may be empty
   * only when toks are being released without text) and the tokens whose
   * text starts in it (n_toks > 0 only when logprobs were asked). For
   * streaming. May be NULL. Return 0, or -1 when the write failed (the
   * job cancels). */
  int (*on_delta)(gen_job *j, void *cls, const gen_choice *c, const char *text,
                  size_t len, const gen_token *toks, int n_toks);
  /* A choice ended (c->finish_reason set, all its text released). May be
   * NULL. Return 0 / -1 as on_delta. */
  int (*on_choice_done)(gen_job *j, void *cls, const gen_choice *c);
  /* Once, last: every choice is done. error: NULL, or why generation
   * failed (engine error, or "cancelled" when the client went away). The
   * endpoint writes its final bytes (the whole JSON when not streaming)
   * here; the job ends the stream and frees itself after it returns. */
  void (*on_done)(gen_job *j, void *cls, const gen_usage *u, const char *error);
  void *cls; /* the endpoint's state; freed by the endpoint in on_done */
} gen_callbacks;

/* A job over model m (borrowed until the job is done: the job releases
 * nothing; the endpoint releases the model in on_done, or when start
 * fails) and the stream the endpoint made with api_resp_stream. keep_text:
 * 1 = accumulate each choice's text and tokens (non-streaming). NULL on
 * OOM. */
gen_job *gen_job_new(const gen_model *m, const gen_params *p,
                     api_stream *stream, int n_prompts, int keep_text,
                     const gen_callbacks *cb);

/* Makes the job write one line to ctx->log_line when it ends (when the
 * server logs): the request id, the endpoint (e.g. "chat.completions"),
 * the model, token counts and timing: queue, engine prefill, first token,
 * total, decode tokens/s. Call before gen_job_start. */
void gen_job_log(gen_job *j, const api_ctx *ctx, const char *request_id,
                 const char *endpoint);

/* Submits the prompts (tokens, copied), each with p->n choices (prompt i's
 * choices are indices i*n .. i*n+n-1). json_object: constrain output to a
 * JSON object (engine/grammar.h). Returns 0: callbacks will run and the job
 * ends the stream and frees itself after on_done. -1: none of the
 * endpoint's callbacks will run (prompts already submitted are cancelled;
 * the job ends the stream and frees itself once the sched let go of them,
 * maybe later, on the worker thread); e is set (429 rate_limit_exceeded
 * with *retry_after_s set when the queue is full, 400
 * context_length_exceeded, 503 when shutting down, 500); the endpoint
 * answers e and must not touch j again. */
int gen_job_start(gen_job *j, const int32_t *const *prompts,
                  const int *n_prompt, int json_object, int *retry_after_s,
                  api_error *e);

/* The choices (n_prompts * n of them), for on_done / on_choice_done. */
gen_choice *gen_job_choices(gen_job *j, int *n);
int gen_job_n_choices(const gen_job *j);
api_stream *gen_job_stream(gen_job *j);

/* Only from on_done: the endpoint takes the producer's end of the stream
 * (the job will not end it) to finish the response later, from any thread
 * (e.g. after gen_defer'd work); it must api_stream_end it. */
api_stream *gen_job_take_stream(gen_job *j);

/* ------------------------------------------------ shared server state */

/* What generation endpoints keep for the server's lifetime (api_ctx.gen):
 * parsed chat templates of loaded models, and a background thread for work
 * that must not run on a model's decode thread (storing a completion).
 * Thread-safe. Every function accepts g == NULL: no cache (a template per
 * request) and deferred work runs inline. */
typedef struct gen_shared gen_shared;

gen_shared *gen_shared_new(void);
/* Runs the deferred work still queued and joins the background thread;
 * later gen_defer calls run inline. Call once HTTP has stopped and before
 * the models and the store go away. */
void gen_shared_stop(gen_shared *g);
/* Frees the template cache (no request may hold one any more). */
void gen_shared_free(gen_shared *g);

/* The chat template of m's model, parsed once per loaded model (keyed by
 * the model's address and file fingerprint; at most 8 kept, least recently
 * used unreferenced one evicted). NULL with err when the template does not
 * parse. Release with gen_template_release. */
chat_template *gen_template_acquire(gen_shared *g, const gen_model *m,
                                    char *err, size_t errlen);
void gen_template_release(gen_shared *g, chat_template *t);

/* Runs fn(arg) on the background thread, in submission order. */
void gen_defer(gen_shared *g, void (*fn)(void *arg), void *arg);

/* --------------------------------------------------------- helpers */

/* A fresh id: prefix + 24 base62 characters ("chatcmpl-", "cmpl-"). */
void gen_new_id(const char *prefix, char *out, size_t outlen);

/* The usage object of the spec (prompt_tokens, completion_tokens,
 * total_tokens, prompt_tokens_details {cached_tokens, audio_tokens},
 * completion_tokens_details {reasoning_tokens, audio_tokens,
 * accepted_prediction_tokens, rejected_prediction_tokens}). New reference. */
json_t *gen_usage_json(const gen_usage *u);

/* The chat-style logprob object of one token: {token, logprob, bytes,
 * top_logprobs: [{token, logprob, bytes}]}. New reference. */
json_t *gen_token_logprob_json(const gen_token *t, int n_top);

#endif
