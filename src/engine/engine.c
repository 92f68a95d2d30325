/* engine.c: the public engine API (engine.h) over the internal pieces: model
 * loading (model.c), the f16 KV cache (kvcache.c), kernels and thread pool
 * (kernels.c, threadpool.c), attention (attn.c), tokenizer (tokenizer.c).
 * Holds the forward pass of the decoder-only transformer (llama / qwen2 /
 * qwen3 / gemma / gemma2 / gemma3), batched over several sequences: read
 * forward_chunk() and forward_layer() top to bottom. Knows nothing about
 * HTTP, JSON or the server. */
#include "engine/engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/attn.h"
#include "engine/kernels.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"

const char *eng_status_str(int status) {
  switch (status) {
  case ENG_OK:
    return "ok";
  case ENG_ERR_IO:
    return "i/o error";
  case ENG_ERR_FORMAT:
    return "invalid model file";
  case ENG_ERR_UNSUPPORTED:
    return "unsupported";
  case ENG_ERR_NOMEM:
    return "out of memory";
  case ENG_ERR_INVALID:
    return "invalid argument";
  case ENG_ERR_KV_FULL:
    return "kv cache full";
  }
  return "unknown error";
}

/* ======================================================================== */
/* Model                                                                    */
/* ======================================================================== */

eng_model_params eng_model_default_params(void) {
  eng_model_params p = {0};
  return p;
}

int eng_model_load(const char *path, const eng_model_params *params,
                   eng_model **out, char *err, size_t errlen) {
  eng_model_params p = params ? *params : eng_model_default_params();
  if (!path || !out) {
    snprintf(err, errlen, "no model path");
    return ENG_ERR_INVALID;
  }
  int rc = model_load(path, out, err, errlen);
  if (rc == ENG_OK && p.prefault) {
    /* Ask the kernel to read the whole mapping ahead. */
    const gguf_file *g = (*out)->gguf;
    uintptr_t base = (uintptr_t)gguf_image(g) & ~(uintptr_t)4095;
    size_t len = gguf_file_size(g) + ((uintptr_t)gguf_image(g) - base);
    madvise((void *)base, len, MADV_WILLNEED);
  }
  return rc;
}

void eng_model_free(eng_model *m) {
  model_free(m);
}

const char *eng_model_arch(const eng_model *m) {
  return m->arch_name;
}
const char *eng_model_name(const eng_model *m) {
  return m->name;
}
int eng_model_n_vocab(const eng_model *m) {
  return m->n_vocab;
}
int eng_model_n_ctx_train(const eng_model *m) {
  return m->n_ctx_train;
}
int eng_model_n_embd(const eng_model *m) {
  return m->n_embd;
}
int eng_model_n_layer(const eng_model *m) {
  return m->n_layer;
}
int eng_model_n_head(const eng_model *m) {
  return m->n_head;
}
int eng_model_n_head_kv(const eng_model *m) {
  return m->n_head_kv;
}
uint64_t eng_model_weight_bytes(const eng_model *m) {
  return m->weight_bytes;
}
uint64_t eng_model_decode_bytes(const eng_model *m) {
  uint64_t emb = (uint64_t)m->tok_embd.rows * m->tok_embd.row_bytes;
  int tied = m->output.data == m->tok_embd.data;
  return m->weight_bytes - (tied ? 0 : emb);
}
uint64_t eng_model_file_bytes(const eng_model *m) {
  return gguf_file_size(m->gguf);
}
const char *eng_model_chat_template(const eng_model *m) {
  return m->chat_template;
}

int eng_model_meta_str(const eng_model *m, const char *key, char *buf,
                       size_t buflen) {
  int i = gguf_find_key(m->gguf, key);
  if (i < 0)
    return -1;
  int t = gguf_key_type(m->gguf, i);
  char tmp[64];
  const char *s = tmp;
  size_t n;
  int64_t iv;
  double dv;
  if (t == GGUF_TYPE_STRING) {
    s = gguf_get_str(m->gguf, key, &n);
    if (!s)
      return -1;
  } else if (t == GGUF_TYPE_BOOL) {
    int b = 0;
    gguf_get_bool(m->gguf, key, &b);
    n = (size_t)snprintf(tmp, sizeof tmp, "%s", b ? "true" : "false");
  } else if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) {
    if (gguf_get_float(m->gguf, key, &dv) != GGUF_OK)
      return -1;
    n = (size_t)snprintf(tmp, sizeof tmp, "%.9g", dv);
  } else if (t != GGUF_TYPE_ARRAY &&
             gguf_get_int(m->gguf, key, &iv) == GGUF_OK) {
    n = (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)iv);
  } else {
    return -1;
  }
  if (buf && buflen) {
    size_t c = n < buflen - 1 ? n : buflen - 1;
    memcpy(buf, s, c);
    buf[c] = 0;
  }
  return (int)n;
}

/* ======================================================================== */
/* Tokenizer passthrough                                                    */
/* ======================================================================== */

int eng_tokenize(const eng_model *m, const char *text, size_t len,
                 int add_special, int parse_special, int32_t *out,
                 int max_out) {
  int n =
      tok_encode(m->vocab, text, len, add_special, parse_special, out, max_out);
  if (n < 0 && max_out < -n)
    return n; /* -(needed) */
  return n < 0 ? ENG_ERR_INVALID : n;
}

int eng_token_piece(const eng_model *m, int32_t tok, int special, char *buf,
                    int len) {
  int n = tok_piece(m->vocab, tok, special, 0, buf, len);
  if (n == TOK_ERR_INVALID)
    return ENG_ERR_INVALID;
  return n;
}

int32_t eng_token_bos(const eng_model *m) {
  return tok_bos(m->vocab);
}
int32_t eng_token_eos(const eng_model *m) {
  return tok_eos(m->vocab);
}
int eng_token_is_eog(const eng_model *m, int32_t tok) {
  return tok_is_eog(m->vocab, tok);
}

/* Metadata keys, then vocabulary spellings, of the FIM tokens (ENG_FIM_*). */
static const char *const FIM_KEYS[3][2] = {
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
};
static const char *const FIM_TEXTS[3][5] = {
    {"<|fim_prefix|>", "<fim_prefix>", "<fim-prefix>", "<|fim▁begin|>", NULL},
    {"<|fim_suffix|>", "<fim_suffix>", "<fim-suffix>", "<|fim▁hole|>", NULL},
    {"<|fim_middle|>", "<fim_middle>", "<fim-middle>", "<|fim▁end|>", NULL},
};

int32_t eng_token_fim(const eng_model *m, int which) {
  if (which < ENG_FIM_PRE || which > ENG_FIM_MID)
    return -1;
  const int n_vocab = tok_n_vocab(m->vocab);
  char buf[32];
  for (int k = 0; k < 2; k++)
    if (eng_model_meta_str(m, FIM_KEYS[which][k], buf, sizeof buf) > 0) {
      long id = strtol(buf, NULL, 10);
      if (id >= 0 && id < n_vocab)
        return (int32_t)id;
    }
  for (int k = 0; FIM_TEXTS[which][k]; k++) {
    const char *t = FIM_TEXTS[which][k];
    int32_t id = tok_find(m->vocab, t, strlen(t));
    if (id >= 0)
      return id;
  }
  return -1;
}

struct eng_detok {
  tok_detok d;
};

eng_detok *eng_detok_new(const eng_model *m, int special) {
  eng_detok *d = malloc(sizeof *d);
  if (d)
    tok_detok_init(&d->d, m->vocab, special, 0);
  return d;
}
int eng_detok_push(eng_detok *d, int32_t tok, char *buf, int len) {
  return tok_detok_push(&d->d, tok, buf, len);
}
int eng_detok_flush(eng_detok *d, char *buf, int len) {
  return tok_detok_flush(&d->d, buf, len);
}
void eng_detok_free(eng_detok *d) {
  free(d);
}

/* ======================================================================== */
/* Batch                                                                    */
/* ======================================================================== */

eng_batch eng_batch_init(int capacity) {
  eng_batch b = {0, 0, NULL};
  if (capacity > 0)
    b.tok = calloc((size_t)capacity, sizeof *b.tok);
  if (b.tok)
    b.capacity = capacity;
  return b;
}
void eng_batch_free(eng_batch *b) {
  free(b->tok);
  b->tok = NULL;
  b->n_tokens = b->capacity = 0;
}
void eng_batch_clear(eng_batch *b) {
  b->n_tokens = 0;
}
int eng_batch_add(eng_batch *b, int32_t token, int32_t pos, int32_t seq_id,
                  int logits) {
  if (b->n_tokens >= b->capacity)
    return ENG_ERR_INVALID;
  eng_batch_tok *t = &b->tok[b->n_tokens++];
  t->token = token;
  t->pos = pos;
  t->seq_id = seq_id;
  t->logits = logits ? 1 : 0;
  return ENG_OK;
}

/* ======================================================================== */
/* Context                                                                  */
/* ======================================================================== */

struct eng_ctx {
  eng_model *m;
  int n_ctx, n_seq, n_batch, n_threads;
  tpool *pool;
  kv_cache kv;

  /* Scratch for one chunk of at most n_batch tokens (allocated once). */
  float *x;       /* (n_batch, n_embd) residual stream */
  float *xb;      /* (n_batch, n_embd) normalized input of a block */
  float *q;       /* (n_batch, n_head*head_dim) queries */
  float *k;       /* (n_batch, n_head_kv*head_dim) keys of the chunk */
  float *v;       /* (n_batch, n_head_kv*head_dim) values of the chunk */
  uint16_t *kv16; /* (n_batch, 2*n_head_kv*head_dim) the chunk's k, v as f16,
                     on their way into the transposed cache */
  float *att;     /* (n_batch, n_head*head_dim) attention output */
  float *hb;      /* (n_batch, n_ff) gate, then silu(gate)*up */
  float *hb2;     /* (n_batch, n_ff) up */
  void *xq;       /* quantized activations, (n_batch, widest act row) */
  size_t xq_bytes;
  int32_t *cell_of;        /* (n_batch) KV cell of each chunk token */
  int32_t *keep;           /* (n_batch) chunk tokens that want logits */
  eng_batch_tok *tok_keep; /* (n_batch) their batch entries */
  int32_t *seq_cells;      /* (n_ctx) scratch: a sequence's cells by position */
  attn_state attn;         /* the chunk's attention plan and scratch */

  /* Whole-batch state. */
  int32_t *all_cells; /* (capacity) cells claimed for the batch */
  int32_t *all_seq;   /* (capacity) sequence of each batch token */
  int all_cap;
  float *logits;     /* (n_out, n_vocab) */
  float *hidden;     /* (n_out, n_embd) final normalized hidden states */
  size_t logits_cap; /* rows */
  int32_t *out_row;  /* (batch tokens) row in logits or -1 */
  int n_batch_last;

  char err[256];
};

eng_ctx_params eng_ctx_default_params(void) {
  eng_ctx_params p = {
      .n_ctx = 4096, .n_seq_max = 1, .n_batch = 512, .n_threads = 0};
  return p;
}

static void *xcalloc(size_t n, size_t sz, int *bad) {
  void *p = calloc(n ? n : 1, sz);
  if (!p)
    *bad = 1;
  return p;
}

/* Bytes of the largest quantized activation row any matrix of m takes. */
static size_t max_act_row(const eng_model *m) {
  size_t mx = k_act_row_size(m->output.type, m->output.cols);
  for (int il = 0; il < m->n_layer; il++) {
    const mtensor *w[7] = {&m->layers[il].wq,       &m->layers[il].wk,
                           &m->layers[il].wv,       &m->layers[il].wo,
                           &m->layers[il].ffn_gate, &m->layers[il].ffn_up,
                           &m->layers[il].ffn_down};
    for (int j = 0; j < 7; j++) {
      size_t r = k_act_row_size(w[j]->type, w[j]->cols);
      mx = r > mx ? r : mx;
    }
  }
  return mx + 64;
}

static int ctx_alloc(eng_ctx *c) {
  const eng_model *m = c->m;
  size_t B = (size_t)c->n_batch, E = (size_t)m->n_embd;
  size_t Q = (size_t)m->n_head * m->head_dim;
  size_t KV = (size_t)m->n_head_kv * m->head_dim, F = (size_t)m->n_ff;
  int bad = 0;
  c->x = xcalloc(B * E, sizeof(float), &bad);
  c->xb = xcalloc(B * E, sizeof(float), &bad);
  c->q = xcalloc(B * Q, sizeof(float), &bad);
  c->k = xcalloc(B * KV, sizeof(float), &bad);
  c->v = xcalloc(B * KV, sizeof(float), &bad);
  c->kv16 = xcalloc(B * 2 * KV, sizeof(uint16_t), &bad);
  c->att = xcalloc(B * Q, sizeof(float), &bad);
  c->hb = xcalloc(B * F, sizeof(float), &bad);
  c->hb2 = xcalloc(B * F, sizeof(float), &bad);
  c->xq_bytes = B * max_act_row(m);
  c->xq = xcalloc(c->xq_bytes, 1, &bad);
  c->cell_of = xcalloc(B, sizeof(int32_t), &bad);
  c->keep = xcalloc(B, sizeof(int32_t), &bad);
  c->tok_keep = xcalloc(B, sizeof(eng_batch_tok), &bad);
  c->seq_cells = xcalloc((size_t)c->n_ctx, sizeof(int32_t), &bad);
  if (attn_init(&c->attn, c->n_batch, c->n_seq, c->n_ctx, c->n_threads,
                m->n_head, m->n_head_kv, m->head_dim))
    bad = 1;
  if (bad)
    return ENG_ERR_NOMEM;
  if (kv_init(&c->kv, c->n_ctx, m->n_layer, (int)KV, c->n_seq))
    return ENG_ERR_NOMEM;
  return ENG_OK;
}

int eng_ctx_new(eng_model *m, const eng_ctx_params *params, eng_ctx **out,
                char *err, size_t errlen) {
  eng_ctx_params p = params ? *params : eng_ctx_default_params();
  *out = NULL;
  if (p.n_ctx <= 0)
    p.n_ctx = m->n_ctx_train;
  if (p.n_batch <= 0)
    p.n_batch = 512;
  if (p.n_batch > p.n_ctx)
    p.n_batch = p.n_ctx;
  if (p.n_seq_max < 1 || p.n_seq_max > KV_MAX_SEQ) {
    snprintf(err, errlen, "n_seq_max must be in 1..%d, got %d", KV_MAX_SEQ,
             p.n_seq_max);
    return ENG_ERR_INVALID;
  }
  eng_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return ENG_ERR_NOMEM;
  c->m = m;
  c->n_ctx = p.n_ctx;
  c->n_seq = p.n_seq_max;
  c->n_batch = p.n_batch;
  c->pool = tpool_create(p.n_threads);
  c->n_threads = c->pool ? tpool_n_threads(c->pool) : 1;
  int rc = c->pool ? ctx_alloc(c) : ENG_ERR_NOMEM;
  if (rc) {
    snprintf(err, errlen, "out of memory (context of %d cells)", p.n_ctx);
    eng_ctx_free(c);
    return rc;
  }
  *out = c;
  return ENG_OK;
}

void eng_ctx_free(eng_ctx *c) {
  if (!c)
    return;
  tpool_free(c->pool);
  kv_free(&c->kv);
  free(c->x);
  free(c->xb);
  free(c->q);
  free(c->k);
  free(c->v);
  free(c->kv16);
  free(c->att);
  free(c->hb);
  free(c->hb2);
  free(c->xq);
  free(c->cell_of);
  free(c->keep);
  free(c->tok_keep);
  free(c->seq_cells);
  attn_free(&c->attn);
  free(c->all_cells);
  free(c->all_seq);
  free(c->logits);
  free(c->hidden);
  free(c->out_row);
  free(c);
}

int eng_ctx_n_ctx(const eng_ctx *c) {
  return c->n_ctx;
}
int eng_ctx_n_seq_max(const eng_ctx *c) {
  return c->n_seq;
}
const eng_model *eng_ctx_model(const eng_ctx *c) {
  return c->m;
}
uint64_t eng_ctx_kv_bytes(const eng_ctx *c) {
  return kv_bytes(&c->kv);
}
const char *eng_ctx_last_error(const eng_ctx *c) {
  return c->err;
}

/* ======================================================================== */
/* Forward pass                                                             */
/* ======================================================================== */

/* One matrix of a group multiplied by the same input. */
typedef struct {
  const mtensor *w;
  float *y;
} mm_job;

/* Y_i = X @ W_i^T for each job (X: n rows of cols). Consecutive jobs whose
 * weights take the same activation type share one quantization of X and one
 * pass over the pool (k_matmul_q_multi: their rows split together). A single
 * row (decode) is quantized inline, without waking the pool. Returns 0 or
 * -1. */
static int matmul_group(eng_ctx *c, const float *X, int n, int64_t cols,
                        const mm_job *jobs, int n_jobs) {
  for (int j0 = 0; j0 < n_jobs;) {
    int vdt = qtype(jobs[j0].w->type)->vec_dot_type;
    k_mat mats[K_MULTI_MAX];
    int nm = 0;
    for (; j0 + nm < n_jobs && nm < K_MULTI_MAX; nm++) {
      const mtensor *w = jobs[j0 + nm].w;
      if (qtype(w->type)->vec_dot_type != vdt)
        break;
      mats[nm] = (k_mat){w->type, w->data, w->rows, jobs[j0 + nm].y};
    }
    if (n == 1)
      k_quantize_act(vdt, X, c->xq, cols);
    else
      k_quantize_rows(c->pool, jobs[j0].w->type, X, n, cols, c->xq);
    if (k_matmul_q_multi(c->pool, mats, nm, cols, c->xq, n))
      return -1;
    j0 += nm;
  }
  return 0;
}

/* Per-token steps of a block, run over the chunk's tokens in parallel. */
enum {
  STEP_ATTN_IN,  /* xb = rmsnorm(x) * attn_norm */
  STEP_QKV_POST, /* biases, q/k norm, rope, k/v to f16 and the cache */
  STEP_FFN_IN,   /* (gemma2/3: xb = rmsnorm(xb) * attn_post_norm) x += xb;
                    xb = rmsnorm(x) * ffn_norm */
  STEP_ACT,      /* hb = silu(hb) * hb2 (gemma: gelu) */
  STEP_RESID,    /* (gemma2/3: xb = rmsnorm(xb) * ffn_post_norm) x += xb */
};

typedef struct {
  eng_ctx *c;
  int il, n, step;
  const eng_batch_tok *tok;
} step_args;

/* Tokens in a chunk from which its keys and values go to the cache row by
 * row (kv_store, one more pool barrier) rather than token by token: enough
 * of them that many share each row's pages (a prefill's cells are
 * contiguous); decode steps stay token by token. */
enum { KV_STORE_ROWS_MIN = 32 };

/* Biases, per-head q/k norm (qwen3, gemma3), rope (with the layer's base
 * and scale) and the query scale (gemma) of token t's q, k, v; k and v
 * converted to f16 into row t of c->kv16, and stored in the cache here when
 * the chunk is short (else kv_store does it). */
static void qkv_post(eng_ctx *c, const mlayer *L, int il, int n, int t,
                     int32_t pos) {
  const eng_model *m = c->m;
  const int hd = m->head_dim, Q = m->n_head * hd, KV = m->n_head_kv * hd;
  float *q = c->q + (size_t)t * Q, *k = c->k + (size_t)t * KV;
  float *v = c->v + (size_t)t * KV;
  if (L->bq)
    k_add(q, q, L->bq, Q);
  if (L->bk)
    k_add(k, k, L->bk, KV);
  if (L->bv)
    k_add(v, v, L->bv, KV);
  for (int h = 0; L->q_norm && h < m->n_head; h++)
    k_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, m->rms_eps);
  for (int h = 0; L->k_norm && h < m->n_head_kv; h++)
    k_rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, m->rms_eps);
  const k_rope_params rp = {m->n_rot, L->rope_base, L->rope_scale,
                            m->rope_freqs, m->rope_neox};
  k_rope(q, m->n_head, hd, pos, &rp);
  k_rope(k, m->n_head_kv, hd, pos, &rp);
  if (m->attn_scale > 0) /* gemma: q scaled before it is rounded for q.k */
    k_scale(q, m->attn_scale, Q);
  uint16_t *kv16 = c->kv16 + (size_t)t * 2 * KV;
  k_f32_to_f16(kv16, k, KV);
  k_f32_to_f16(kv16 + KV, v, KV);
  if (n >= KV_STORE_ROWS_MIN)
    return;
  /* transposed: K[g][d][cell], V[g][d][cell] */
  const size_t cell = (size_t)c->cell_of[t], nc = (size_t)c->kv.pitch;
  uint16_t *K = c->kv.k[il], *V = c->kv.v[il];
  for (int i = 0; i < KV; i++) {
    K[(size_t)i * nc + cell] = kv16[i];
    V[(size_t)i * nc + cell] = kv16[KV + i];
  }
}

typedef struct {
  eng_ctx *c;
  int il, n;
} kv_store_args;

/* Stores the chunk's keys and values (c->kv16) in the cache, transposed:
 * K[g][d][cell], V[g][d][cell]. Split by cache rows, not by tokens: a row
 * takes all the chunk's tokens at once, so each row's memory (rows are
 * pitch * 2 bytes apart: a page or more) is touched once per chunk rather
 * than once per token (a prefill's cells are contiguous: TLB misses were
 * ~10% of a 64-token prefill in the server). */
static void kv_store_task(void *arg, int ith, int nth) {
  const kv_store_args *a = arg;
  eng_ctx *c = a->c;
  const int KV = c->m->n_head_kv * c->m->head_dim;
  const size_t nc = (size_t)c->kv.pitch, w = 2 * (size_t)KV;
  long long r0, r1;
  tpool_split(2 * KV, ith, nth, 1, &r0, &r1);
  for (long long r = r0; r < r1; r++) {
    uint16_t *dst = r < KV ? c->kv.k[a->il] + (size_t)r * nc
                           : c->kv.v[a->il] + (size_t)(r - KV) * nc;
    const uint16_t *src = c->kv16 + r;
    for (int t = 0; t < a->n; t++)
      dst[c->cell_of[t]] = src[(size_t)t * w];
  }
}

/* kv_store_task over the pool, for chunks of KV_STORE_ROWS_MIN tokens or
 * more (qkv_post stores shorter ones). */
static void kv_store(eng_ctx *c, int il, int n) {
  kv_store_args a = {c, il, n};
  if (n >= KV_STORE_ROWS_MIN)
    tpool_run(c->pool, kv_store_task, &a);
}

/* Step `step` of token t of a chunk of n tokens. */
static void step_token(eng_ctx *c, int il, int step, int n, int t,
                       int32_t pos) {
  const eng_model *m = c->m;
  const mlayer *L = &m->layers[il];
  const int E = m->n_embd, F = m->n_ff;
  float *x = c->x + (size_t)t * E, *xb = c->xb + (size_t)t * E;
  switch (step) {
  case STEP_ATTN_IN:
    k_rmsnorm(xb, x, L->attn_norm, E, m->rms_eps);
    break;
  case STEP_QKV_POST:
    qkv_post(c, L, il, n, t, pos);
    break;
  case STEP_FFN_IN:
    if (L->attn_post_norm)
      k_rmsnorm(xb, xb, L->attn_post_norm, E, m->rms_eps);
    k_add(x, x, xb, E);
    k_rmsnorm(xb, x, L->ffn_norm, E, m->rms_eps);
    break;
  case STEP_ACT:
    (m->gelu ? k_gelu_mul : k_silu_mul)(c->hb + (size_t)t * F,
                                        c->hb + (size_t)t * F,
                                        c->hb2 + (size_t)t * F, F);
    break;
  case STEP_RESID:
    if (L->ffn_post_norm)
      k_rmsnorm(xb, xb, L->ffn_post_norm, E, m->rms_eps);
    k_add(x, x, xb, E);
    break;
  }
}

static void step_task(void *arg, int ith, int nth) {
  const step_args *a = arg;
  long long t0, t1;
  tpool_split(a->n, ith, nth, 1, &t0, &t1);
  for (long long t = t0; t < t1; t++)
    step_token(a->c, a->il, a->step, a->n, (int)t, a->tok[t].pos);
}

/* Runs one per-token step over the chunk: inline for a single token (decode:
 * waking the pool would cost more than the work), else over the pool. */
static void run_step(eng_ctx *c, int il, int step, const eng_batch_tok *tok,
                     int n) {
  step_args a = {c, il, n, step, tok};
  if (n == 1)
    step_task(&a, 0, 1);
  else
    tpool_run(c->pool, step_task, &a);
}

/* One transformer block on the chunk (n tokens in c->x). */
/* Keeps only the rows keep[0..n_keep) (ascending) of q and x, moved to the
 * front, with their tokens in c->tok_keep; replans the attention for them. */
static void keep_rows(eng_ctx *c, const eng_batch_tok *tok, const int32_t *keep,
                      int n_keep) {
  const eng_model *m = c->m;
  const size_t E = (size_t)m->n_embd, Q = (size_t)m->n_head * m->head_dim;
  for (int k = 0; k < n_keep; k++) { /* keep[k] >= k: sources stay intact */
    int t = keep[k];
    c->tok_keep[k] = tok[t];
    if (t == k)
      continue;
    memcpy(c->q + k * Q, c->q + t * Q, sizeof(float) * Q);
    memcpy(c->x + k * E, c->x + t * E, sizeof(float) * E);
  }
  attn_plan(&c->attn, &c->kv, c->tok_keep, n_keep);
}

/* One transformer block on the chunk (n tokens in c->x). keep (the last
 * block): after the keys and values of every token are cached, only the rows
 * keep[0..n_keep) go on (the tokens whose logits are wanted), moved to the
 * front. */
static int forward_layer(eng_ctx *c, int il, const eng_batch_tok *tok, int n,
                         const int32_t *keep, int n_keep) {
  const eng_model *m = c->m;
  const mlayer *L = &m->layers[il];
  const int E = m->n_embd, Q = m->n_head * m->head_dim, F = m->n_ff;

  /* xb = rmsnorm(x) * attn_norm */
  run_step(c, il, STEP_ATTN_IN, tok, n);
  /* q = xb @ wq^T, k = xb @ wk^T, v = xb @ wv^T (one quantization of xb) */
  mm_job qkv[3] = {{&L->wq, c->q}, {&L->wk, c->k}, {&L->wv, c->v}};
  if (matmul_group(c, c->xb, n, E, qkv, 3))
    return -1;
  /* + biases, q/k norm, rope; k and v into the f16 cache */
  run_step(c, il, STEP_QKV_POST, tok, n);
  kv_store(c, il, n);
  if (keep) { /* last block: the rest only for the tokens that want logits */
    if (!n_keep)
      return 0;
    keep_rows(c, tok, keep, n_keep);
    tok = c->tok_keep;
    n = n_keep;
  }
  /* att = softmax(q k^T / sqrt(hd)) v, per sequence, causal (gemma: q
   * already scaled, scores soft-capped, sliding window on some layers) */
  const attn_layer lp = {m->attn_scale > 0 ? 1.0f
                                           : 1.0f / sqrtf((float)m->head_dim),
                         m->attn_softcap, L->swa ? m->n_swa : 0};
  attn_run(&c->attn, c->pool, &c->kv, il, &lp, tok, c->q, c->att);
  /* xb = att @ wo^T */
  mm_job o = {&L->wo, c->xb};
  if (matmul_group(c, c->att, n, Q, &o, 1))
    return -1;
  /* (gemma2/3: xb = rmsnorm(xb) * attn_post_norm) x += xb;
   * xb = rmsnorm(x) * ffn_norm */
  run_step(c, il, STEP_FFN_IN, tok, n);
  /* hb = xb @ gate^T, hb2 = xb @ up^T */
  mm_job gu[2] = {{&L->ffn_gate, c->hb}, {&L->ffn_up, c->hb2}};
  if (matmul_group(c, c->xb, n, E, gu, 2))
    return -1;
  /* hb = silu(hb) * hb2 (gemma: gelu(hb) * hb2) */
  run_step(c, il, STEP_ACT, tok, n);
  /* xb = hb @ down^T; (gemma2/3: xb = rmsnorm(xb) * ffn_post_norm) x += xb */
  mm_job d = {&L->ffn_down, c->xb};
  if (matmul_group(c, c->hb, n, F, &d, 1))
    return -1;
  run_step(c, il, STEP_RESID, tok, n);
  return 0;
}

/* The final soft cap over n logits, split over the pool's threads. */
typedef struct {
  float *x;
  size_t n;
  float cap;
} softcap_args;

static void softcap_task(void *arg, int ith, int nth) {
  const softcap_args *a = arg;
  long long i0, i1;
  tpool_split((long long)a->n, ith, nth, 64, &i0, &i1);
  const float inv = 1.0f / a->cap;
  for (long long i = i0; i < i1; i++)
    a->x[i] = tanhf(a->x[i] * inv) * a->cap;
}

/* x[0..n) = cap * tanh(x / cap) with the model's final soft cap, computed as
 * llama.cpp does (times 1/cap, tanh, times cap): over the pool for a large
 * vocabulary (Gemma 2's 256000: ~2 ms of tanhf), inline for a small one. */
static void softcap_logits(eng_ctx *c, float *x, size_t n) {
  softcap_args a = {x, n, c->m->final_softcap};
  if (n < 65536)
    softcap_task(&a, 0, 1);
  else
    tpool_run(c->pool, softcap_task, &a);
}

/* THE HOT PATH: the forward pass over one chunk of n <= n_batch tokens whose
 * KV cells are already claimed (cells[t]); writes the logits of tokens that
 * asked for them to the rows out_row[t] of c->logits. */
static int forward_chunk(eng_ctx *c, const eng_batch_tok *tok, int n,
                         const int32_t *cells, const int32_t *out_row) {
  const eng_model *m = c->m;
  const int E = m->n_embd;
  memcpy(c->cell_of, cells, sizeof(int32_t) * n);
  attn_plan(&c->attn, &c->kv, tok, n);

  /* x = token_embd[token] (gemma: * sqrt(n_embd)) */
  for (int t = 0; t < n; t++) {
    model_embed_row(m, tok[t].token, c->x + (size_t)t * E);
    if (m->embd_scale != 1.0f)
      k_scale(c->x + (size_t)t * E, m->embd_scale, E);
  }

  /* the tokens that want logits (ascending) */
  int n_out = 0, first_row = -1;
  for (int t = 0; t < n; t++)
    if (out_row[t] >= 0) {
      if (first_row < 0)
        first_row = out_row[t];
      c->keep[n_out++] = t;
    }

  /* the transformer blocks; the last one finishes only the kept tokens,
   * which end up in rows 0..n_out-1 */
  for (int il = 0; il < m->n_layer; il++) {
    int last = il == m->n_layer - 1 && n_out < n;
    if (forward_layer(c, il, tok, n, last ? c->keep : NULL, n_out))
      return -1;
  }
  if (!n_out)
    return 0;

  /* xb = rmsnorm(x) * output_norm for the tokens that want logits */
  for (int k = 0; k < n_out; k++)
    k_rmsnorm(c->xb + (size_t)k * E, c->x + (size_t)k * E, m->output_norm, E,
              m->rms_eps);
  /* keep the normalized hidden states (eng_get_embedding) */
  memcpy(c->hidden + (size_t)first_row * E, c->xb, sizeof(float) * n_out * E);
  /* logits = xb @ output^T (rows of this chunk are consecutive) */
  float *logits = c->logits + (size_t)first_row * m->n_vocab;
  mm_job lo = {&m->output, logits};
  if (matmul_group(c, c->xb, n_out, E, &lo, 1))
    return -1;
  /* gemma2 (gemma3 without window): logits = cap * tanh(logits / cap) */
  if (m->final_softcap > 0)
    softcap_logits(c, logits, (size_t)n_out * m->n_vocab);
  return 0;
}

/* Checks the batch against the rules of eng_decode (see engine.h). */
static int validate(eng_ctx *c, const eng_batch *b) {
  int32_t last[KV_MAX_SEQ];
  for (int s = 0; s < c->n_seq; s++)
    last[s] = -2;
  for (int i = 0; i < b->n_tokens; i++) {
    const eng_batch_tok *t = &b->tok[i];
    if (t->token < 0 || t->token >= c->m->n_vocab) {
      snprintf(c->err, sizeof c->err, "token %d: id %d out of range [0, %d)", i,
               t->token, c->m->n_vocab);
      return ENG_ERR_INVALID;
    }
    if (t->seq_id < 0 || t->seq_id >= c->n_seq) {
      snprintf(c->err, sizeof c->err,
               "token %d: seq_id %d out of range [0, %d)", i, t->seq_id,
               c->n_seq);
      return ENG_ERR_INVALID;
    }
    int s = t->seq_id;
    if (last[s] == -2)
      last[s] = kv_seq_pos_max(&c->kv, s);
    if (t->pos <= last[s]) {
      snprintf(c->err, sizeof c->err,
               "token %d: position %d of sequence %d is not after its last "
               "position %d",
               i, t->pos, s, last[s]);
      return ENG_ERR_INVALID;
    }
    last[s] = t->pos;
  }
  return ENG_OK;
}

/* Grows the per-batch arrays to hold n tokens and n_out logits rows. */
static int reserve(eng_ctx *c, int n, int n_out) {
  if (n > c->all_cap) {
    int32_t *a = realloc(c->all_cells, sizeof(int32_t) * n);
    if (!a)
      return -1;
    c->all_cells = a;
    int32_t *o = realloc(c->out_row, sizeof(int32_t) * n);
    if (!o)
      return -1;
    c->out_row = o;
    int32_t *q = realloc(c->all_seq, sizeof(int32_t) * n);
    if (!q)
      return -1;
    c->all_seq = q;
    c->all_cap = n;
  }
  if ((size_t)n_out > c->logits_cap) {
    float *l =
        realloc(c->logits, sizeof(float) * (size_t)n_out * c->m->n_vocab);
    if (!l)
      return -1;
    c->logits = l;
    float *h = realloc(c->hidden, sizeof(float) * (size_t)n_out * c->m->n_embd);
    if (!h)
      return -1;
    c->hidden = h;
    c->logits_cap = (size_t)n_out;
  }
  return 0;
}

int eng_decode(eng_ctx *c, const eng_batch *b) {
  c->err[0] = 0;
  c->n_batch_last = 0;
  if (!b || b->n_tokens <= 0) {
    snprintf(c->err, sizeof c->err, "empty batch");
    return ENG_ERR_INVALID;
  }
  int rc = validate(c, b);
  if (rc)
    return rc;
  int n = b->n_tokens, n_out = 0;
  for (int i = 0; i < n; i++)
    n_out += b->tok[i].logits != 0;
  if (reserve(c, n, n_out)) {
    snprintf(c->err, sizeof c->err, "out of memory");
    return ENG_ERR_NOMEM;
  }
  /* claim a cache cell for every token up front, all or nothing, each
   * sequence's cells kept together (attention scans a sequence's range) */
  for (int i = 0; i < n; i++)
    c->all_seq[i] = b->tok[i].seq_id;
  if (kv_find_cells(&c->kv, c->all_seq, n, c->all_cells)) {
    snprintf(c->err, sizeof c->err,
             "kv cache full: %d tokens need cells, %d of %d free", n,
             c->kv.n_cells - c->kv.n_used, c->kv.n_cells);
    return ENG_ERR_KV_FULL;
  }
  for (int i = 0, r = 0; i < n; i++) {
    const eng_batch_tok *t = &b->tok[i];
    kv_claim(&c->kv, c->all_cells[i], t->seq_id, t->pos, t->token);
    c->out_row[i] = t->logits ? r++ : -1;
  }
  /* run the forward pass in chunks of n_batch tokens */
  for (int i0 = 0; i0 < n; i0 += c->n_batch) {
    int cn = n - i0 < c->n_batch ? n - i0 : c->n_batch;
    if (forward_chunk(c, b->tok + i0, cn, c->all_cells + i0, c->out_row + i0)) {
      for (int i = 0; i < n; i++) /* give the cells back */
        kv_seq_rm(&c->kv, b->tok[i].seq_id, b->tok[i].pos, b->tok[i].pos + 1);
      snprintf(c->err, sizeof c->err, "matrix multiplication failed");
      return ENG_ERR_NOMEM;
    }
  }
  c->n_batch_last = n;
  return ENG_OK;
}

const float *eng_get_embedding(eng_ctx *c, int i) {
  if (i < 0 || i >= c->n_batch_last || c->out_row[i] < 0)
    return NULL;
  return c->hidden + (size_t)c->out_row[i] * c->m->n_embd;
}

const float *eng_get_logits(eng_ctx *c, int i) {
  if (i < 0 || i >= c->n_batch_last || c->out_row[i] < 0)
    return NULL;
  return c->logits + (size_t)c->out_row[i] * c->m->n_vocab;
}

/* ======================================================================== */
/* KV cache operations                                                      */
/* ======================================================================== */

void eng_kv_seq_rm(eng_ctx *c, int seq, int32_t p0, int32_t p1) {
  if (seq >= c->n_seq)
    return;
  kv_seq_rm(&c->kv, seq, p0, p1);
}

int eng_kv_seq_cp(eng_ctx *c, int src, int dst, int32_t p0, int32_t p1) {
  if (src < 0 || dst < 0 || src >= c->n_seq || dst >= c->n_seq || src == dst)
    return ENG_ERR_INVALID;
  return kv_seq_cp(&c->kv, src, dst, p0, p1) ? ENG_ERR_INVALID : ENG_OK;
}

int32_t eng_kv_seq_pos_max(const eng_ctx *c, int seq) {
  if (seq < 0 || seq >= c->n_seq)
    return -1;
  return kv_seq_pos_max(&c->kv, seq);
}

int eng_kv_used(const eng_ctx *c) {
  return c->kv.n_used;
}
void eng_kv_clear(eng_ctx *c) {
  kv_clear(&c->kv);
}

/* Length of the prefix of tokens[0..n) that seq holds at positions 0.. */
static int common_prefix(eng_ctx *c, int seq, const int32_t *tokens, int n) {
  int32_t *cells = c->seq_cells;
  int nc = kv_seq_cells(&c->kv, seq, cells, c->n_ctx);
  int k = 0;
  while (k < nc && k < n && c->kv.cells[cells[k]].pos == k &&
         c->kv.cells[cells[k]].token == tokens[k])
    k++;
  return k;
}

int eng_kv_reuse_prefix(eng_ctx *c, int dst, const int32_t *tokens, int n) {
  if (dst < 0 || dst >= c->n_seq || n <= 0)
    return ENG_ERR_INVALID;
  if (kv_seq_pos_max(&c->kv, dst) >= 0)
    return ENG_ERR_INVALID;
  int best = 0, best_seq = -1;
  for (int s = 0; s < c->n_seq; s++) {
    if (s == dst)
      continue;
    int k = common_prefix(c, s, tokens, n);
    if (k > best) {
      best = k;
      best_seq = s;
    }
  }
  if (best > n - 1)
    best = n - 1;
  if (best <= 0)
    return 0;
  kv_seq_cp(&c->kv, best_seq, dst, 0, best);
  return best;
}
