/* sched.h: the continuous-batching scheduler of one loaded model, and the
 * pool that loads models on first use and unloads idle ones.
 *
 * A sched owns one eng_ctx (a KV cache of n_kv cells shared by n_slots
 * sequences) and one worker thread. Requests are submitted from any thread;
 * the worker admits queued requests into free slots at the next step and
 * runs ONE eng_decode per step that advances every running sequence (prompt
 * chunks of newly admitted ones, one token of each generating one), samples
 * each sequence's next token and reports it through the request's callback.
 * A request leaves its slot when done; its KV stays cached (in the idle
 * slot) so a later request with the same prefix (same system prompt, same
 * conversation so far) reuses it: reported as cached_tokens. A shared
 * prefix is reused when it is at least 32 tokens or half the prompt
 * (shorter ones would cost more in attention than they save).
 *
 * A request with n > 1 prefills its prompt once and forks the KV into n
 * sequences (no copy); choice i samples with seed + i.
 *
 * When the KV cache is full mid-step, the most recently admitted running
 * request is preempted: its KV is dropped and it goes back to the head of
 * the queue, keeping what it generated; it is recomputed when readmitted
 * (the client sees only a pause). A request alone that cannot fit ends with
 * SCHED_FINISH_LENGTH.
 *
 * Callbacks run on the worker thread, between forward passes: they must be
 * quick and must not block (writing a few bytes to a stream is fine) and
 * must not call back into the sched except sched_* functions documented as
 * callable from callbacks (none today).
 *
 * Knows nothing about HTTP or JSON. */
#ifndef HEARTH_ENGINE_SCHED_H
#define HEARTH_ENGINE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sampler.h"

enum {
  SCHED_OK = 0,
  SCHED_EQUEUE_FULL = -1, /* the queue is at max_queue: answer 429 */
  SCHED_ETOO_LONG = -2,   /* prompt (+ 1 token) exceeds n_ctx_seq */
  SCHED_EINVAL = -3,      /* bad params (message in err) */
  SCHED_ESHUTDOWN = -4,   /* the sched is stopping */
  SCHED_ENOMEM = -5,
};

typedef enum sched_finish {
  SCHED_FINISH_NONE = 0,
  SCHED_FINISH_STOP,      /* end-of-generation token, or on_token said stop,
                             or the grammar completed */
  SCHED_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
  SCHED_FINISH_CANCELLED, /* cancelled (client gone) or sched shut down */
  SCHED_FINISH_ERROR,     /* the engine failed (message in the event) */
} sched_finish;

typedef struct sched_params {
  int n_slots;   /* sequences decoded together (default 16, 1..64) */
  int n_ctx_seq; /* most tokens (prompt + output) of one sequence
                    (0 = default: min(n_ctx_train, 4096)) */
  int n_kv;      /* KV cells in all (0 = default: n_ctx_seq * 4; clamped
                    to at least n_ctx_seq, at most n_ctx_seq * n_slots) */
  int n_batch;   /* most tokens per forward pass (default 512, at least
                    n_slots); prompt prefill is chunked so generating
                    sequences keep going */
  int n_threads; /* engine threads (0 = all cores) */
  int max_queue; /* requests waiting for a slot before SCHED_EQUEUE_FULL
                    (default 64) */
} sched_params;

sched_params sched_default_params(void);

/* One token's report. */
typedef struct sched_event {
  int index;        /* choice index 0..n-1 */
  int32_t token;    /* the sampled token (already accepted); may be an
                       end-of-generation token, which ends the choice: it
                       is reported (and counted in completion_tokens) but
                       is not text */
  sample_info info; /* logprob and top alternatives (n_top = n_logprobs);
                       filled only when the request asked for logprobs,
                       else zero but for info.token */
  int n_generated;  /* tokens generated so far by this choice, this one
                       included */
} sched_event;

/* Totals handed to on_done. */
typedef struct sched_usage {
  int prompt_tokens;     /* the prompt's length */
  int cached_tokens;     /* of those, taken from the KV cache */
  int completion_tokens; /* summed over all choices */
  /* Timing (seconds, from sched_submit; 0 when it never happened): */
  double queue_s;       /* until first admitted into a slot */
  double prefill_s;     /* engine time (eng_decode) of the passes that
                           evaluated its prompt, until its first token:
                           passes shared with other sequences count whole */
  double first_token_s; /* until its first token was reported */
  double total_s;       /* until on_done */
} sched_usage;

typedef struct sched_req_params {
  const int32_t *prompt;   /* copied at submit */
  int n_prompt;            /* >= 1 */
  int n;                   /* choices, 1..n_slots (default 1) */
  int max_tokens;          /* per choice; <= 0 = until the context is full */
  sampler_params sampling; /* copied (logit_bias too); seed + i for choice i */
  /* JSON mode: 1 = each choice is constrained by its own
   * grammar_new_json_object() (engine/grammar.h) over the model's
   * grammar_vocab (built by the first such sched_submit, on its thread,
   * then kept); the
   * remaining max_tokens budget is passed so the object closes in time. */
  int json_object;
  /* A json_object choice ends with SCHED_FINISH_STOP as soon as the object
   * is complete (its closing brace is the last token: no end-of-generation
   * token follows). Its logprobs are those of the constrained distribution
   * (the masked logits), so the chosen token's is always finite. */
  int ignore_eos; /* 1: end-of-generation tokens do not stop (benchmarks) */
  int logprobs;   /* 1: fill sched_event.info (a log-softmax per token);
                     sampling.n_logprobs > 0 implies it */

  /* Called for each sampled token of each choice. Return 0 to go on, 1 to
   * finish this choice with SCHED_FINISH_STOP (e.g. a stop sequence
   * matched), -1 to cancel the whole request (client gone). */
  int (*on_token)(void *cls, const sched_event *ev);
  /* Called once per choice when it ends (the token that ended it, if any,
   * was reported before). msg: NULL, or the engine's error. */
  void (*on_choice_done)(void *cls, int index, sched_finish why,
                         const char *msg);
  /* Called exactly once, last, after every choice is done (also when the
   * request was cancelled or failed before admission): the request is
   * forgotten by the sched after it returns, cls may be freed. */
  void (*on_done)(void *cls, const sched_usage *usage);
  /* Polled once per step while queued or running: nonzero = cancel (the
   * client went away). May be NULL. */
  int (*cancelled)(void *cls);
  void *cls;
} sched_req_params;

sched_req_params sched_req_default_params(void);

typedef struct sched sched;

/* Creates the context and starts the worker. m must outlive the sched. */
int sched_new(eng_model *m, const sched_params *p, sched **out, char *err,
              size_t errlen);
/* Cancels everything queued or running (their on_done runs with
 * SCHED_FINISH_CANCELLED), joins the worker, frees the context. */
void sched_free(sched *s);

/* Queues a request. SCHED_OK: callbacks will run (on_done last, exactly
 * once). Any other code: nothing was queued and no callback runs. */
int sched_submit(sched *s, const sched_req_params *p, char *err, size_t errlen);

const eng_model *sched_model(const sched *s);
int sched_n_ctx_seq(const sched *s);
/* Sequences decoded together: the most choices (n) of one request. */
int sched_n_slots(const sched *s);

/* Counters for tests, logs and benchmarks (a snapshot). */
typedef struct sched_stats {
  int queued, running;
  long long steps;          /* forward passes */
  long long tokens_decoded; /* batch tokens evaluated */
  long long preemptions;
  long long cached_tokens; /* prompt tokens served from the cache */
  double busy_s;           /* worker time in steps (admission to callbacks) */
  double decode_s; /* of which inside eng_decode: busy_s - decode_s is the
                      scheduler's own cost, callbacks included */
} sched_stats;
void sched_get_stats(sched *s, sched_stats *out);

/* ---- pool: models loaded on first use ------------------------------------*/

typedef struct sched_pool sched_pool;

typedef struct sched_pool_params {
  sched_params sched; /* for every model */
  int keep_alive_s;   /* unload a model idle this long; 0 = at the first
                         tick after its last request ended, < 0 = keep
                         forever (default 300) */
  int max_models;     /* loaded at once; the least recently used idle one is
                         unloaded to make room (default 2; <= 0 = no
                         limit). A soft limit: when every loaded model is
                         busy, one more is loaded anyway and the surplus is
                         unloaded by sched_pool_tick once idle */
} sched_pool_params;

sched_pool_params sched_pool_default_params(void);
sched_pool *sched_pool_new(const sched_pool_params *p);
/* Unloads everything (sched_free of each: running requests are cancelled). */
void sched_pool_free(sched_pool *pool);

/* The sched of the model file at path, loading it if needed (concurrent
 * callers for one path wait for one load). The reference keeps it loaded:
 * release it with sched_pool_release once the request's on_done ran
 * (calling it from on_done is fine: release never unloads inline;
 * unloading happens in sched_pool_tick).
 * 0, or an ENG_* / SCHED_* code with a message in err. */
int sched_pool_acquire(sched_pool *pool, const char *path, sched **out,
                       char *err, size_t errlen);
void sched_pool_release(sched_pool *pool, sched *s);
/* Unloads models idle past keep_alive (call periodically; cheap). */
void sched_pool_tick(sched_pool *pool);
/* Models loaded (or loading) now. */
int sched_pool_n_loaded(sched_pool *pool);

#endif
