/* sched.c: the continuous-batching scheduler (see sched.h) and the model
 * pool.
 *
 * One worker thread per sched owns the eng_ctx, the slots and every
 * admitted request; the only state shared with other threads is the
 * incoming list, the stop flag and the published stats, all under one mutex
 * taken a few times per step (uncontended but for submits). A step: splice
 * incoming requests into the worker's wait list, drop cancelled ones, admit
 * waiting requests into free slots (prefix reuse), build one batch (one token
 * of each generating choice first, then prompt chunks up to n_batch),
 * eng_decode it (dropping idle cached sequences, then preempting, when the KV
 * cache is full), fork n > 1 requests once their prompt is in, sample, report,
 * and reap finished requests. Nothing is allocated per step: per-request memory
 * is allocated at submit, per-slot memory at sched_new.
 *
 * A slot is one KV sequence id. While a choice runs in it, it is owned;
 * once the choice ends its KV stays (an idle cached sequence) and hist
 * remembers which tokens it holds, so admission can pick the idle slot
 * sharing the longest prefix with a new prompt, or share a prefix held by
 * any other sequence (eng_kv_reuse_prefix). */
#include "engine/sched.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/grammar.h"

/* ---- data ----------------------------------------------------------------*/

enum { CH_WAIT = 0, CH_FORK, CH_RUN, CH_DONE };

typedef struct choice {
  sampler *smp;
  grammar *gr;  /* json_object: created at first admission */
  int32_t *gen; /* generated tokens (capacity gen_cap) */
  int n_gen;
  int state;  /* CH_* */
  int slot;   /* KV sequence id, -1 when none */
  int n_past; /* tokens of this choice's sequence in the KV cache */
  int b_idx;  /* batch index of its logits this step, -1 when none */
  int b_n;    /* tokens it put in this step's batch */
} choice;

typedef struct sreq {
  struct sreq *prev, *next;
  sched_req_params p; /* callbacks, flags; p.prompt points to prompt */
  int32_t *prompt;
  int n_prompt;
  int n;
  choice *ch;
  int gen_cap;
  int n_live;      /* choices not done */
  int leader;      /* the choice that prefills the shared prompt */
  int admitted;    /* ever admitted (cached_tokens counted) */
  int cancel;      /* on_token asked to cancel */
  long long seqno; /* admission order (preemption picks the latest) */
  int logprobs;
  double t_submit; /* mono_s() at sched_submit */
  sched_usage usage;
} sreq;

typedef struct slot {
  sreq *req;     /* owner, NULL when idle */
  int32_t *hist; /* tokens its KV sequence holds at positions 0..n_hist) */
  int n_hist;
  unsigned long long last_used; /* when it went idle (LRU) */
} slot;

struct sched {
  eng_model *m;
  eng_ctx *ctx;
  sched_params p;
  int n_vocab;

  pthread_t th;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* under mu */
  int stop;
  sreq *in_head, *in_tail;
  int n_in;
  int n_wait_pub, n_busy_pub; /* waiting requests, owned slots */
  sched_stats pub;

  /* worker only */
  sreq *w_head, *w_tail; /* waiting for slots, in order */
  int n_wait;
  sreq **run; /* admitted, in admission order */
  int n_run;
  sreq **done; /* finished this step, before their on_done */
  slot *slots;
  eng_batch batch;
  float *scratch;        /* grammar-masked logits */
  pthread_mutex_t gv_mu; /* builds gv once (at the first json_object submit) */
  grammar_vocab *gv;     /* written before the request is queued */
  unsigned long long clock;
  long long seqno;
  sched_stats st;
};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

sched_params sched_default_params(void) {
  sched_params p = {0};
  p.n_slots = 16;
  p.n_batch = 512;
  p.max_queue = 64;
  return p;
}

sched_req_params sched_req_default_params(void) {
  sched_req_params p;
  memset(&p, 0, sizeof p);
  p.n = 1;
  p.sampling = sampler_default_params();
  return p;
}

const eng_model *sched_model(const sched *s) {
  return s->m;
}

int sched_n_ctx_seq(const sched *s) {
  return s->p.n_ctx_seq;
}

int sched_n_slots(const sched *s) {
  return s->p.n_slots;
}

/* ---- requests ------------------------------------------------------------*/

static void req_free(sreq *r) {
  if (!r)
    return;
  if (r->ch)
    for (int i = 0; i < r->n; i++) {
      sampler_free(r->ch[i].smp);
      grammar_free(r->ch[i].gr);
      free(r->ch[i].gen);
    }
  free(r->ch);
  free(r->prompt);
  free(r);
}

/* Allocates a request with its prompt copy, generation buffers and
 * samplers. NULL on OOM (or a sampler that refuses its params, checked
 * before). */
static sreq *req_new(const sched *s, const sched_req_params *p) {
  sreq *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->p = *p;
  r->n = p->n;
  r->n_prompt = p->n_prompt;
  int room = s->p.n_ctx_seq - p->n_prompt;
  r->gen_cap = p->max_tokens > 0 && p->max_tokens < room ? p->max_tokens : room;
  r->prompt = malloc(sizeof *r->prompt * (size_t)p->n_prompt);
  r->ch = calloc((size_t)r->n, sizeof *r->ch);
  if (!r->prompt || !r->ch) {
    req_free(r);
    return NULL;
  }
  memcpy(r->prompt, p->prompt, sizeof *r->prompt * (size_t)p->n_prompt);
  r->p.prompt = r->prompt;
  r->p.sampling.logit_bias = NULL; /* copied by the samplers */
  r->p.sampling.n_logit_bias = 0;
  r->logprobs = p->logprobs || p->sampling.n_logprobs > 0;
  for (int i = 0; i < r->n; i++) {
    choice *c = &r->ch[i];
    sampler_params sp = p->sampling;
    if (sp.seed != SAMPLER_SEED_RANDOM)
      sp.seed += (uint64_t)i;
    c->smp = sampler_new(&sp);
    c->gen = malloc(sizeof *c->gen * (size_t)(r->gen_cap > 0 ? r->gen_cap : 1));
    if (!c->smp || !c->gen) {
      req_free(r);
      return NULL;
    }
    sampler_accept_prompt(c->smp, r->prompt, r->n_prompt);
    c->slot = -1;
    c->b_idx = -1;
  }
  r->n_live = r->n;
  r->usage.prompt_tokens = r->n_prompt;
  return r;
}

static int32_t tok_at(const sreq *r, const choice *c, int pos) {
  return pos < r->n_prompt ? r->prompt[pos] : c->gen[pos - r->n_prompt];
}

/* ---- slots ---------------------------------------------------------------*/

/* Drops slot i's KV (idle or owned) and forgets what it held. */
static void slot_drop(sched *s, int i) {
  eng_kv_seq_rm(s->ctx, i, 0, -1);
  s->slots[i].n_hist = 0;
}

/* The idle slot to reuse for a new sequence: an empty one first, else the
 * least recently used; never `avoid`. -1 when none is idle. */
static int slot_pick_lru(const sched *s, int avoid) {
  int best = -1;
  for (int i = 0; i < s->p.n_slots; i++) {
    const slot *sl = &s->slots[i];
    if (sl->req || i == avoid)
      continue;
    if (best < 0)
      best = i;
    else {
      const slot *b = &s->slots[best];
      int e = sl->n_hist == 0, be = b->n_hist == 0;
      if ((e && !be) || (e == be && sl->last_used < b->last_used))
        best = i;
    }
  }
  return best;
}

/* Drops the least recently used idle cached sequence other than avoid.
 * Returns 1 when one was dropped. */
static int drop_lru_idle(sched *s, int avoid) {
  int best = -1;
  for (int i = 0; i < s->p.n_slots; i++) {
    const slot *sl = &s->slots[i];
    if (sl->req || i == avoid || sl->n_hist == 0)
      continue;
    if (best < 0 || sl->last_used < s->slots[best].last_used)
      best = i;
  }
  if (best < 0)
    return 0;
  slot_drop(s, best);
  return 1;
}

static int kv_free_cells(const sched *s) {
  return eng_ctx_n_ctx(s->ctx) - eng_kv_used(s->ctx);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
  int n = na < nb ? na : nb, k = 0;
  while (k < n && a[k] == b[k])
    k++;
  return k;
}

/* ---- finishing -----------------------------------------------------------*/

/* Ends choice ci of r. keep_kv: its slot stays as an idle cached sequence;
 * else the slot's KV is dropped. */
static void choice_finish(sched *s, sreq *r, int ci, sched_finish why,
                          const char *msg, int keep_kv) {
  choice *c = &r->ch[ci];
  if (c->state == CH_DONE)
    return;
  if (c->slot >= 0) {
    slot *sl = &s->slots[c->slot];
    if (!keep_kv || c->state != CH_RUN)
      slot_drop(s, c->slot);
    sl->req = NULL;
    sl->last_used = ++s->clock;
    c->slot = -1;
  }
  c->state = CH_DONE;
  c->b_idx = -1;
  r->n_live--;
  if (r->p.on_choice_done)
    r->p.on_choice_done(r->p.cls, ci, why, msg);
}

/* Ends every live choice of r (the request is then reaped). */
static void req_finish_all(sched *s, sreq *r, sched_finish why, const char *msg,
                           int keep_kv) {
  for (int i = 0; i < r->n; i++)
    choice_finish(s, r, i, why, msg, keep_kv);
}

static void req_done(sreq *r) {
  r->usage.total_s = mono_s() - r->t_submit;
  if (r->p.on_done)
    r->p.on_done(r->p.cls, &r->usage);
  req_free(r);
}

static void publish(sched *s);

/* Publishes the counters (so that on_done sees them up to date). */
static void publish_locked(sched *s) {
  pthread_mutex_lock(&s->mu);
  publish(s);
  pthread_mutex_unlock(&s->mu);
}

/* Removes finished requests from the run list, then on_done and free. */
static void reap(sched *s) {
  int k = 0, nd = 0;
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    if (r->n_live > 0)
      s->run[k++] = r;
    else
      s->done[nd++] = r;
  }
  s->n_run = k;
  if (!nd)
    return;
  publish_locked(s);
  for (int i = 0; i < nd; i++)
    req_done(s->done[i]);
}

/* ---- wait list -----------------------------------------------------------*/

static void wait_unlink(sched *s, sreq *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    s->w_head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    s->w_tail = r->prev;
  r->prev = r->next = NULL;
  s->n_wait--;
}

static void wait_push_front(sched *s, sreq *r) {
  r->prev = NULL;
  r->next = s->w_head;
  if (s->w_head)
    s->w_head->prev = r;
  else
    s->w_tail = r;
  s->w_head = r;
  s->n_wait++;
}

/* Cancels waiting requests whose client went away. */
static void poll_waiting(sched *s) {
  sreq *r = s->w_head;
  while (r) {
    sreq *next = r->next;
    if (r->p.cancelled && r->p.cancelled(r->p.cls)) {
      wait_unlink(s, r);
      req_finish_all(s, r, SCHED_FINISH_CANCELLED, NULL, 0);
      publish_locked(s);
      req_done(r);
    }
    r = next;
  }
}

/* Cancels running requests whose on_token said so, or (poll) whose client
 * went away: their slots are freed at once. */
static void poll_running(sched *s, int poll) {
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    if (r->n_live > 0 &&
        (r->cancel || (poll && r->p.cancelled && r->p.cancelled(r->p.cls))))
      req_finish_all(s, r, SCHED_FINISH_CANCELLED, NULL, 0);
  }
  reap(s);
}

/* ---- admission -----------------------------------------------------------*/

static int n_idle_slots(const sched *s) {
  int k = 0;
  for (int i = 0; i < s->p.n_slots; i++)
    k += s->slots[i].req == NULL;
  return k;
}

/* Creates the json_object grammars of r's choices (first admission; the
 * vocabulary was built by sched_submit). */
static int req_grammars(sched *s, sreq *r) {
  if (!r->p.json_object || r->ch[0].gr)
    return 0;
  if (!s->gv)
    return -1;
  for (int i = 0; i < r->n; i++)
    if (!(r->ch[i].gr = grammar_new_json_object(s->gv)))
      return -1;
  return 0;
}

/* Prefixes shorter than this (and than half the prompt) are not reused:
 * the engine's attention scans a sequence's cells from its first to its
 * last, and a short shared prefix (a chat template's opening) lies far
 * from the cells the rest of the prompt gets, so every later step would
 * scan the cells in between, for a few tokens of prefill saved. */
#define SCHED_MIN_REUSE 32

/* Places r's live choices into idle slots: the leader with prefix reuse,
 * the others waiting to fork its prompt. Returns 1 when admitted, 0 when
 * r must wait (not enough KV room while others run). */
static int try_admit(sched *s, sreq *r) {
  int lead = 0;
  while (r->ch[lead].state == CH_DONE)
    lead++;
  int cap = r->n_prompt - 1;
  /* longest cached prefix: in any slot, and in an idle one */
  int bm = 0, bi = -1, bim = 0;
  for (int i = 0; i < s->p.n_slots; i++) {
    const slot *sl = &s->slots[i];
    int m = common_prefix(sl->hist, sl->n_hist, r->prompt, cap);
    if (m > bm)
      bm = m;
    if (!sl->req && m > bim) {
      bim = m;
      bi = i;
    }
  }
  if (bm < SCHED_MIN_REUSE && 2 * bm < r->n_prompt)
    bm = bim = 0, bi = -1;
  /* room for the uncached prompt and one token per choice */
  int need = r->n_prompt - bm + r->n_live;
  while (kv_free_cells(s) < need && drop_lru_idle(s, bim == bm ? bi : -1))
    ;
  if (kv_free_cells(s) < need && s->n_run > 0)
    return 0;
  int target, cached;
  if (bi >= 0 && bim == bm) { /* trim the idle slot holding the prefix */
    target = bi;
    eng_kv_seq_rm(s->ctx, target, bim, -1);
    s->slots[target].n_hist = bim;
    cached = bim;
  } else {
    target = slot_pick_lru(s, -1);
    slot_drop(s, target);
    cached = bm > 0
                 ? eng_kv_reuse_prefix(s->ctx, target, r->prompt, r->n_prompt)
                 : 0;
    if (cached < 0)
      cached = 0;
    memcpy(s->slots[target].hist, r->prompt, sizeof(int32_t) * (size_t)cached);
    s->slots[target].n_hist = cached;
  }
  choice *L = &r->ch[lead];
  s->slots[target].req = r;
  L->slot = target;
  L->n_past = cached;
  L->state = CH_RUN;
  for (int i = 0; i < r->n; i++) {
    choice *c = &r->ch[i];
    if (i == lead || c->state == CH_DONE)
      continue;
    int k = slot_pick_lru(s, -1);
    slot_drop(s, k);
    s->slots[k].req = r;
    c->slot = k;
    c->n_past = 0;
    c->state = CH_FORK;
  }
  r->leader = lead;
  if (!r->admitted) {
    r->admitted = 1;
    r->usage.queue_s = mono_s() - r->t_submit;
    r->usage.cached_tokens = cached;
    s->st.cached_tokens += cached;
  }
  r->seqno = ++s->seqno;
  s->run[s->n_run++] = r;
  return 1;
}

/* Admits waiting requests in order while slots (and KV room) allow. */
static void admit(sched *s) {
  while (s->w_head) {
    sreq *r = s->w_head;
    if (n_idle_slots(s) < r->n_live)
      break;
    if (req_grammars(s, r)) {
      wait_unlink(s, r);
      req_finish_all(s, r, SCHED_FINISH_ERROR, "out of memory (grammar)", 0);
      req_done(r);
      continue;
    }
    if (!try_admit(s, r))
      break;
    wait_unlink(s, r);
  }
}

/* Preempts the most recently admitted running request: drops its KV and
 * puts it back at the head of the wait list, keeping what it generated. */
static void preempt_latest(sched *s) {
  int k = 0;
  for (int i = 1; i < s->n_run; i++)
    if (s->run[i]->seqno > s->run[k]->seqno)
      k = i;
  sreq *r = s->run[k];
  for (int i = 0; i < r->n; i++) {
    choice *c = &r->ch[i];
    if (c->state == CH_DONE)
      continue;
    if (c->slot >= 0) {
      slot_drop(s, c->slot);
      s->slots[c->slot].req = NULL;
      s->slots[c->slot].last_used = 0;
    }
    c->slot = -1;
    c->n_past = 0;
    c->state = CH_WAIT;
    c->b_idx = -1;
  }
  memmove(s->run + k, s->run + k + 1,
          sizeof *s->run * (size_t)(s->n_run - k - 1));
  s->n_run--;
  wait_push_front(s, r);
  s->st.preemptions++;
}

/* ---- one step ------------------------------------------------------------*/

/* Fills the batch: one token of each generating choice, then prompt (or
 * recomputation) chunks in admission order up to n_batch tokens. */
static void build_batch(sched *s) {
  eng_batch *b = &s->batch;
  eng_batch_clear(b);
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    for (int j = 0; j < r->n; j++) {
      choice *c = &r->ch[j];
      c->b_idx = -1;
      c->b_n = 0;
      if (c->state != CH_RUN || r->n_prompt + c->n_gen - c->n_past != 1)
        continue;
      c->b_idx = b->n_tokens;
      c->b_n = 1;
      eng_batch_add(b, tok_at(r, c, c->n_past), c->n_past, c->slot, 1);
    }
  }
  int budget = s->p.n_batch - b->n_tokens;
  for (int i = 0; i < s->n_run && budget > 0; i++) {
    sreq *r = s->run[i];
    for (int j = 0; j < r->n && budget > 0; j++) {
      choice *c = &r->ch[j];
      int rem = r->n_prompt + c->n_gen - c->n_past;
      if (c->state != CH_RUN || rem <= 1)
        continue;
      int k = rem < budget ? rem : budget;
      for (int t = 0; t < k; t++) {
        int pos = c->n_past + t;
        int last = t == k - 1 && k == rem;
        if (last)
          c->b_idx = b->n_tokens;
        eng_batch_add(b, tok_at(r, c, pos), pos, c->slot, last);
      }
      c->b_n = k;
      budget -= k;
    }
  }
}

/* Adds a pass's engine time to the prefill time of every request in it
 * that has no token yet. */
static void charge_prefill(sched *s, double dt) {
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    if (!r->usage.completion_tokens && r->ch[r->leader].b_n > 0)
      r->usage.prefill_s += dt;
  }
}

/* Decodes the step's batch, making room when the KV cache is full.
 * Returns 1 when a forward pass ran, 0 when there was nothing to run. */
static int decode_step(sched *s) {
  for (;;) {
    build_batch(s);
    if (s->batch.n_tokens == 0)
      return 0;
    double t0 = mono_s();
    int rc = eng_decode(s->ctx, &s->batch);
    double dt = mono_s() - t0;
    s->st.decode_s += dt;
    if (rc == ENG_OK) {
      charge_prefill(s, dt);
      s->st.steps++;
      s->st.tokens_decoded += s->batch.n_tokens;
      return 1;
    }
    if (rc == ENG_ERR_KV_FULL) {
      if (drop_lru_idle(s, -1))
        continue;
      if (s->n_run > 1) {
        preempt_latest(s);
        continue;
      }
      /* alone and still no room: it cannot grow any more */
      req_finish_all(s, s->run[0], SCHED_FINISH_LENGTH, NULL, 1);
      reap(s);
      continue;
    }
    const char *msg = eng_ctx_last_error(s->ctx);
    for (int i = 0; i < s->n_run; i++) {
      req_finish_all(s, s->run[i], SCHED_FINISH_ERROR, msg, 0);
    }
    reap(s);
    return 0;
  }
}

/* Records what the pass put in the KV cache, and forks n > 1 requests
 * whose shared prompt is now complete. */
static void after_decode(sched *s) {
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    for (int j = 0; j < r->n; j++) {
      choice *c = &r->ch[j];
      if (!c->b_n)
        continue;
      slot *sl = &s->slots[c->slot];
      for (int t = 0; t < c->b_n; t++)
        sl->hist[c->n_past + t] = tok_at(r, c, c->n_past + t);
      c->n_past += c->b_n;
      sl->n_hist = c->n_past;
    }
    choice *L = &r->ch[r->leader];
    if (L->state != CH_RUN || L->n_past < r->n_prompt)
      continue;
    for (int j = 0; j < r->n; j++) {
      choice *c = &r->ch[j];
      if (c->state != CH_FORK)
        continue;
      eng_kv_seq_cp(s->ctx, L->slot, c->slot, 0, r->n_prompt);
      memcpy(s->slots[c->slot].hist, s->slots[L->slot].hist,
             sizeof(int32_t) * (size_t)r->n_prompt);
      s->slots[c->slot].n_hist = r->n_prompt;
      c->n_past = r->n_prompt;
      c->state = CH_RUN;
      if (c->n_gen == 0) /* first token: from the leader's logits */
        c->b_idx = L->b_idx;
    }
  }
}

/* Samples choice ci of r from logits, reports the token and ends the
 * choice when it should. */
static void sample_choice(sched *s, sreq *r, int ci, const float *logits) {
  choice *c = &r->ch[ci];
  int nv = s->n_vocab;
  const float *use = logits;
  int limit = s->p.n_ctx_seq - r->n_prompt;
  if (r->p.max_tokens > 0 && r->p.max_tokens < limit)
    limit = r->p.max_tokens;
  if (c->gr) {
    memcpy(s->scratch, logits, sizeof(float) * (size_t)nv);
    grammar_apply(c->gr, s->scratch, nv, limit - c->n_gen);
    use = s->scratch;
  }
  sched_event ev;
  memset(&ev, 0, sizeof ev);
  int32_t tok = sampler_sample(c->smp, use, nv, r->logprobs ? &ev.info : NULL);
  if (tok < 0 || (c->gr && grammar_accept(c->gr, tok) != 0)) {
    choice_finish(s, r, ci, SCHED_FINISH_ERROR,
                  "no token can be sampled (every logit is masked)", 1);
    return;
  }
  sampler_accept(c->smp, tok);
  c->gen[c->n_gen++] = tok;
  if (!r->usage.completion_tokens++)
    r->usage.first_token_s = mono_s() - r->t_submit;
  ev.index = ci;
  ev.token = tok;
  ev.info.token = tok;
  ev.n_generated = c->n_gen;
  int rc = r->p.on_token ? r->p.on_token(r->p.cls, &ev) : 0;
  if (rc < 0) {
    r->cancel = 1;
    return;
  }
  sched_finish why = SCHED_FINISH_NONE;
  if (rc > 0 || (!r->p.ignore_eos && eng_token_is_eog(s->m, tok)) ||
      (c->gr && grammar_complete(c->gr)))
    why = SCHED_FINISH_STOP;
  else if (c->n_gen >= limit)
    why = SCHED_FINISH_LENGTH;
  if (why != SCHED_FINISH_NONE)
    choice_finish(s, r, ci, why, NULL, 1);
}

static void sample_all(sched *s) {
  for (int i = 0; i < s->n_run; i++) {
    sreq *r = s->run[i];
    for (int j = 0; j < r->n && !r->cancel; j++) {
      choice *c = &r->ch[j];
      if (c->state != CH_RUN || c->b_idx < 0)
        continue;
      const float *lg = eng_get_logits(s->ctx, c->b_idx);
      if (lg)
        sample_choice(s, r, j, lg);
    }
  }
}

/* Publishes counters; called with mu held. */
static void publish(sched *s) {
  s->pub = s->st;
  s->pub.queued = s->n_wait + s->n_in;
  s->pub.running = s->n_run;
  s->n_wait_pub = s->n_wait;
  s->n_busy_pub = s->p.n_slots - n_idle_slots(s);
}

/* Moves incoming requests to the end of the wait list; mu held. */
static void splice_incoming(sched *s) {
  if (!s->in_head)
    return;
  s->in_head->prev = s->w_tail;
  if (s->w_tail)
    s->w_tail->next = s->in_head;
  else
    s->w_head = s->in_head;
  s->w_tail = s->in_tail;
  s->n_wait += s->n_in;
  s->in_head = s->in_tail = NULL;
  s->n_in = 0;
}

/* Cancels everything (shutdown). */
static void cancel_everything(sched *s) {
  pthread_mutex_lock(&s->mu);
  splice_incoming(s);
  pthread_mutex_unlock(&s->mu);
  while (s->w_head) {
    sreq *r = s->w_head;
    wait_unlink(s, r);
    req_finish_all(s, r, SCHED_FINISH_CANCELLED, NULL, 0);
    req_done(r);
  }
  for (int i = 0; i < s->n_run; i++)
    req_finish_all(s, s->run[i], SCHED_FINISH_CANCELLED, NULL, 0);
  reap(s);
}

static void *worker(void *arg) {
  sched *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    splice_incoming(s);
    publish(s);
    while (!s->stop && !s->in_head && s->n_wait == 0 && s->n_run == 0)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->stop)
      break;
    splice_incoming(s);
    pthread_mutex_unlock(&s->mu);

    double t0 = mono_s();
    poll_waiting(s);
    poll_running(s, 1);
    admit(s);
    publish_locked(s);
    if (decode_step(s)) {
      publish_locked(s);
      after_decode(s);
      sample_all(s);
    }
    s->st.busy_s += mono_s() - t0; /* before reap publishes */
    poll_running(s, 0);            /* on_token said cancel; also reaps */
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  cancel_everything(s);
  return NULL;
}

/* ---- public --------------------------------------------------------------*/

static void sched_destroy(sched *s) {
  if (s->slots)
    for (int i = 0; i < s->p.n_slots; i++)
      free(s->slots[i].hist);
  free(s->slots);
  free(s->run);
  free(s->done);
  free(s->scratch);
  eng_batch_free(&s->batch);
  grammar_vocab_free(s->gv);
  eng_ctx_free(s->ctx);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->gv_mu);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Fills the defaults of p for model m and checks it. */
static int resolve_params(const eng_model *m, sched_params *p, char *err,
                          size_t errlen) {
  if (p->n_slots <= 0)
    p->n_slots = 16;
  if (p->n_slots > 64) {
    set_err(err, errlen, "n_slots must be at most 64, got %d", p->n_slots);
    return SCHED_EINVAL;
  }
  int train = eng_model_n_ctx_train(m);
  if (p->n_ctx_seq <= 0)
    p->n_ctx_seq = train > 0 && train < 4096 ? train : 4096;
  if (p->n_ctx_seq < 2) {
    set_err(err, errlen, "n_ctx_seq must be at least 2, got %d", p->n_ctx_seq);
    return SCHED_EINVAL;
  }
  if (p->n_kv <= 0)
    p->n_kv = p->n_ctx_seq * 4;
  if (p->n_kv < p->n_ctx_seq)
    p->n_kv = p->n_ctx_seq;
  if ((long long)p->n_kv > (long long)p->n_ctx_seq * p->n_slots)
    p->n_kv = p->n_ctx_seq * p->n_slots;
  if (p->n_batch <= 0)
    p->n_batch = 512;
  if (p->n_batch < p->n_slots)
    p->n_batch = p->n_slots;
  if (p->max_queue < 0)
    p->max_queue = 0;
  if (p->n_threads < 0)
    p->n_threads = 0;
  return SCHED_OK;
}

int sched_new(eng_model *m, const sched_params *params, sched **out, char *err,
              size_t errlen) {
  *out = NULL;
  sched_params p = params ? *params : sched_default_params();
  int rc = resolve_params(m, &p, err, errlen);
  if (rc)
    return rc;
  sched *s = calloc(1, sizeof *s);
  if (!s) {
    set_err(err, errlen, "out of memory");
    return SCHED_ENOMEM;
  }
  s->m = m;
  s->p = p;
  s->n_vocab = eng_model_n_vocab(m);
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->gv_mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_ctx = p.n_kv;
  cp.n_seq_max = p.n_slots;
  cp.n_batch = p.n_batch;
  cp.n_threads = p.n_threads;
  rc = eng_ctx_new(m, &cp, &s->ctx, err, errlen);
  if (rc) {
    sched_destroy(s);
    return rc;
  }
  s->slots = calloc((size_t)p.n_slots, sizeof *s->slots);
  s->run = calloc((size_t)p.n_slots, sizeof *s->run);
  s->done = calloc((size_t)p.n_slots, sizeof *s->done);
  s->scratch = malloc(sizeof(float) * (size_t)s->n_vocab);
  s->batch = eng_batch_init(p.n_batch);
  int ok = s->slots && s->run && s->done && s->scratch && s->batch.tok;
  for (int i = 0; ok && i < p.n_slots; i++)
    ok = (s->slots[i].hist = malloc(sizeof(int32_t) * (size_t)p.n_ctx_seq)) !=
         NULL;
  if (!ok) {
    sched_destroy(s);
    set_err(err, errlen, "out of memory");
    return SCHED_ENOMEM;
  }
  if (pthread_create(&s->th, NULL, worker, s)) {
    sched_destroy(s);
    set_err(err, errlen, "cannot start the scheduler thread");
    return SCHED_ENOMEM;
  }
  s->started = 1;
  *out = s;
  return SCHED_OK;
}

void sched_free(sched *s) {
  if (!s)
    return;
  if (s->started) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
  }
  sched_destroy(s);
}

/* Checks a request against the sched; SCHED_OK or a code with err. */
static int check_req(const sched *s, const sched_req_params *p, char *err,
                     size_t errlen) {
  if (!p->prompt || p->n_prompt < 1) {
    set_err(err, errlen, "the prompt is empty");
    return SCHED_EINVAL;
  }
  for (int i = 0; i < p->n_prompt; i++)
    if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab) {
      set_err(err, errlen, "prompt token %d is out of range (vocabulary of %d)",
              (int)p->prompt[i], s->n_vocab);
      return SCHED_EINVAL;
    }
  if (p->n < 1 || p->n > s->p.n_slots) {
    set_err(err, errlen, "n must be between 1 and %d, got %d", s->p.n_slots,
            p->n);
    return SCHED_EINVAL;
  }
  if (p->n_prompt + 1 > s->p.n_ctx_seq) {
    set_err(err, errlen,
            "the prompt has %d tokens; the context holds %d (prompt and "
            "output)",
            p->n_prompt, s->p.n_ctx_seq);
    return SCHED_ETOO_LONG;
  }
  if (sampler_params_check(&p->sampling, err, errlen))
    return SCHED_EINVAL;
  return SCHED_OK;
}

int sched_submit(sched *s, const sched_req_params *p, char *err,
                 size_t errlen) {
  int rc = check_req(s, p, err, errlen);
  if (rc)
    return rc;
  if (p->json_object) { /* on this thread, not stalling the worker */
    pthread_mutex_lock(&s->gv_mu);
    if (!s->gv)
      s->gv = grammar_vocab_new(s->m);
    int ok = s->gv != NULL;
    pthread_mutex_unlock(&s->gv_mu);
    if (!ok) {
      set_err(err, errlen, "out of memory (JSON grammar)");
      return SCHED_ENOMEM;
    }
  }
  sreq *r = req_new(s, p);
  if (!r) {
    set_err(err, errlen, "out of memory");
    return SCHED_ENOMEM;
  }
  r->t_submit = mono_s();
  pthread_mutex_lock(&s->mu);
  if (s->stop)
    rc = SCHED_ESHUTDOWN;
  else if (s->n_in + s->n_wait_pub >=
           s->p.max_queue + s->p.n_slots - s->n_busy_pub)
    rc = SCHED_EQUEUE_FULL; /* free slots take requests without queueing */
  else {
    r->prev = s->in_tail;
    if (s->in_tail)
      s->in_tail->next = r;
    else
      s->in_head = r;
    s->in_tail = r;
    s->n_in++;
    pthread_cond_signal(&s->cv);
  }
  int waiting = s->n_in + s->n_wait_pub;
  pthread_mutex_unlock(&s->mu);
  if (rc == SCHED_ESHUTDOWN)
    set_err(err, errlen, "the model is being unloaded");
  else if (rc == SCHED_EQUEUE_FULL)
    set_err(err, errlen, "too many requests are waiting for this model (%d)",
            waiting);
  if (rc)
    req_free(r);
  return rc;
}

void sched_get_stats(sched *s, sched_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->pub;
  out->queued = s->n_wait_pub + s->n_in;
  pthread_mutex_unlock(&s->mu);
}

/* ---- pool ----------------------------------------------------------------*/

typedef struct pool_ent {
  struct pool_ent *next;
  char *path;
  eng_model *m;
  sched *s;
  int refs;    /* acquired and not released */
  int loading; /* a thread is loading it; others wait on cv */
  int failed;  /* the load failed: rc/err for the waiters, then removed */
  int rc;
  char err[256];
  int waiters;                  /* threads waiting for the load */
  double idle_since;            /* monotonic seconds of the last release */
  unsigned long long last_used; /* LRU clock of the last release */
} pool_ent;

struct sched_pool {
  sched_pool_params p;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pool_ent *head;
  unsigned long long clock;
};

sched_pool_params sched_pool_default_params(void) {
  sched_pool_params p;
  p.sched = sched_default_params();
  p.keep_alive_s = 300;
  p.max_models = 2;
  return p;
}

sched_pool *sched_pool_new(const sched_pool_params *p) {
  sched_pool *pool = calloc(1, sizeof *pool);
  if (!pool)
    return NULL;
  pool->p = p ? *p : sched_pool_default_params();
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->cv, NULL);
  return pool;
}

static void ent_free(pool_ent *e) {
  sched_free(e->s);
  eng_model_free(e->m);
  free(e->path);
  free(e);
}

static void pool_unlink(sched_pool *pool, pool_ent *e) {
  for (pool_ent **pp = &pool->head; *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      e->next = NULL;
      return;
    }
}

void sched_pool_free(sched_pool *pool) {
  if (!pool)
    return;
  for (;;) { /* unlinked under mu: on_done of a cancelled request may
                release into the pool while its model is being freed */
    pthread_mutex_lock(&pool->mu);
    pool_ent *e = pool->head;
    if (e)
      pool->head = e->next;
    pthread_mutex_unlock(&pool->mu);
    if (!e)
      break;
    ent_free(e);
  }
  pthread_cond_destroy(&pool->cv);
  pthread_mutex_destroy(&pool->mu);
  free(pool);
}

static int ent_idle(const pool_ent *e) {
  return !e->loading && !e->failed && e->refs == 0;
}

/* While more than max_models are loaded (or loading), unlinks the least
 * recently used idle one (mu held) and returns them as a list for the
 * caller to free after unlocking. */
static pool_ent *pool_evict_over(sched_pool *pool) {
  pool_ent *gone = NULL;
  for (;;) {
    int n = 0;
    pool_ent *lru = NULL;
    for (pool_ent *e = pool->head; e; e = e->next) {
      if (e->failed)
        continue;
      n++;
      if (ent_idle(e) && (!lru || e->last_used < lru->last_used))
        lru = e;
    }
    if (pool->p.max_models <= 0 || n <= pool->p.max_models || !lru)
      return gone;
    pool_unlink(pool, lru);
    lru->next = gone;
    gone = lru;
  }
}

static void ent_free_list(pool_ent *e) {
  while (e) {
    pool_ent *next = e->next;
    ent_free(e);
    e = next;
  }
}

/* Loads e (without mu): the model and its sched. */
static int ent_load(sched_pool *pool, pool_ent *e) {
  eng_model_params mp = eng_model_default_params();
  int rc = eng_model_load(e->path, &mp, &e->m, e->err, sizeof e->err);
  if (rc)
    return rc;
  rc = sched_new(e->m, &pool->p.sched, &e->s, e->err, sizeof e->err);
  if (rc) {
    eng_model_free(e->m);
    e->m = NULL;
  }
  return rc;
}

/* Waits for another thread's load of e (mu held); 0 with a reference, or
 * the load's error. */
static int pool_wait_load(sched_pool *pool, pool_ent *e, sched **out, char *err,
                          size_t errlen) {
  e->waiters++;
  while (e->loading)
    pthread_cond_wait(&pool->cv, &pool->mu);
  e->waiters--;
  if (e->failed) {
    int rc = e->rc;
    set_err(err, errlen, "%s", e->err);
    if (e->waiters == 0) {
      pool_unlink(pool, e);
      free(e->path);
      free(e);
    }
    return rc;
  }
  e->refs++;
  *out = e->s;
  return 0;
}

int sched_pool_acquire(sched_pool *pool, const char *path, sched **out,
                       char *err, size_t errlen) {
  *out = NULL;
  pthread_mutex_lock(&pool->mu);
  pool_ent *e = pool->head;
  while (e && (e->failed || strcmp(e->path, path) != 0))
    e = e->next;
  if (e) {
    int rc = pool_wait_load(pool, e, out, err, errlen);
    pthread_mutex_unlock(&pool->mu);
    return rc;
  }
  e = calloc(1, sizeof *e);
  if (!e || !(e->path = strdup(path))) {
    free(e);
    pthread_mutex_unlock(&pool->mu);
    set_err(err, errlen, "out of memory");
    return SCHED_ENOMEM;
  }
  e->loading = 1;
  e->next = pool->head;
  pool->head = e;
  pool_ent *gone = pool_evict_over(pool);
  pthread_mutex_unlock(&pool->mu);
  ent_free_list(gone);

  int rc = ent_load(pool, e);
  pthread_mutex_lock(&pool->mu);
  e->loading = 0;
  if (rc) {
    e->failed = 1;
    e->rc = rc;
    set_err(err, errlen, "%s", e->err);
    if (e->waiters == 0) {
      pool_unlink(pool, e);
      free(e->path);
      free(e);
    }
  } else {
    e->refs = 1;
    *out = e->s;
  }
  pthread_cond_broadcast(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  return rc;
}

void sched_pool_release(sched_pool *pool, sched *s) {
  if (!pool || !s)
    return;
  pthread_mutex_lock(&pool->mu);
  for (pool_ent *e = pool->head; e; e = e->next)
    if (e->s == s && e->refs > 0) {
      e->refs--;
      e->idle_since = mono_s();
      e->last_used = ++pool->clock;
      break;
    }
  pthread_mutex_unlock(&pool->mu);
}

void sched_pool_tick(sched_pool *pool) {
  pool_ent *gone = NULL;
  double now = mono_s();
  pthread_mutex_lock(&pool->mu);
  if (pool->p.keep_alive_s >= 0) {
    pool_ent *e = pool->head;
    while (e) {
      pool_ent *next = e->next;
      if (ent_idle(e) && now - e->idle_since >= pool->p.keep_alive_s) {
        pool_unlink(pool, e);
        e->next = gone;
        gone = e;
      }
      e = next;
    }
  }
  /* over max_models (loads while every model was busy): the LRU idle */
  pool_ent *over = pool_evict_over(pool);
  while (over) {
    pool_ent *e = over;
    over = e->next;
    e->next = gone;
    gone = e;
  }
  pthread_mutex_unlock(&pool->mu);
  ent_free_list(gone);
}

int sched_pool_n_loaded(sched_pool *pool) {
  int n = 0;
  pthread_mutex_lock(&pool->mu);
  for (pool_ent *e = pool->head; e; e = e->next)
    n += !e->failed;
  pthread_mutex_unlock(&pool->mu);
  return n;
}
