/* model.h: the engine's in-memory model (internal to src/engine): the GGUF
 * mapping, hyper-parameters read from metadata, and every weight tensor as a
 * pointer into the mapping with its type and shape. Loading validates names,
 * shapes and types so the forward pass never has to. Knows nothing about
 * contexts, KV caches, the server or the public API's handles beyond the
 * struct it defines. */
#ifndef HEARTH_ENGINE_MODEL_H
#define HEARTH_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

struct tok_vocab;

enum {
  ARCH_LLAMA = 0,
  ARCH_QWEN2 = 1,
  ARCH_QWEN3 = 2,
  ARCH_GEMMA2 = 3,
  ARCH_GEMMA3 = 4,
  ARCH_GEMMA = 5
};

/* A 2-D weight in ggml orientation: rows of `cols` elements (the input
 * dimension), `rows` of them (the output dimension). */
typedef struct {
  const void *data; /* into the mapping */
  int type;         /* quant.h type id */
  int64_t cols;     /* ne[0] */
  int64_t rows;     /* ne[1] */
  size_t row_bytes; /* bytes per row */
} mtensor;

typedef struct {
  float *attn_norm;      /* (n_embd) */
  mtensor wq;            /* (n_head*head_dim rows, n_embd cols) */
  mtensor wk;            /* (n_head_kv*head_dim, n_embd) */
  mtensor wv;            /* (n_head_kv*head_dim, n_embd) */
  mtensor wo;            /* (n_embd, n_head*head_dim) */
  float *bq, *bk, *bv;   /* qwen2 biases (n_head*head_dim), (n_head_kv*hd) x2 */
  float *q_norm;         /* qwen3, gemma3: (head_dim) */
  float *k_norm;         /* qwen3, gemma3: (head_dim) */
  float *attn_post_norm; /* gemma2/3: (n_embd), on the attention output */
  float *ffn_norm;       /* (n_embd) */
  float *ffn_post_norm;  /* gemma2/3: (n_embd), on the feed-forward output */
  mtensor ffn_gate;      /* (n_ff, n_embd) */
  mtensor ffn_up;        /* (n_ff, n_embd) */
  mtensor ffn_down;      /* (n_embd, n_ff) */
  /* attention settings of this layer (gemma: sliding-window layers have
   * their own rope base and scale) */
  int swa;          /* 1: sliding-window layer (sees m->n_swa) */
  float rope_base;  /* theta base of this layer */
  float rope_scale; /* position scale of this layer */
} mlayer;

struct eng_model {
  gguf_file *gguf;
  struct tok_vocab *vocab;
  int arch;
  char arch_name[16];
  char *name;          /* general.name or the file stem */
  char *chat_template; /* tokenizer.chat_template or NULL */

  /* hyper-parameters */
  int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
  int head_dim; /* per-head size of q/k/v */
  int n_rot;    /* rotated dims per head */
  float rms_eps;
  float rope_base, rope_scale; /* theta base; position scale (1/factor) */
  int rope_neox;               /* 1 for all but llama */
  float embd_scale;    /* token embeddings times this (gemma: sqrt(n_embd)) */
  float attn_scale;    /* queries times this before q.k (gemma), or 0:
                          scores times 1/sqrt(head_dim) (llama, qwen) */
  float attn_softcap;  /* > 0: scores soft-capped (gemma2) */
  float final_softcap; /* > 0: logits soft-capped (gemma2; gemma3 w/o window) */
  int n_swa;           /* sliding window of the swa layers (0: none) */
  int swa_period;      /* layer il slides when il % period < period - 1 */
  float rope_base_swa, rope_scale_swa; /* rope of the sliding layers */
  int gelu; /* 1: GELU-gated feed-forward (gemma); 0: SiLU */

  mtensor tok_embd;   /* (n_vocab rows, n_embd) */
  float *output_norm; /* (n_embd) */
  mtensor output;     /* (n_vocab, n_embd); = tok_embd when tied */
  float *rope_freqs;  /* (n_rot/2) llama3 frequency factors, or NULL */
  mlayer *layers;     /* (n_layer) */

  uint64_t weight_bytes;
};

typedef struct eng_model eng_model;

/* Loads path into a new model. Returns ENG_OK or a negative ENG_* status with
 * a message in err. */
int model_load(const char *path, eng_model **out, char *err, size_t errlen);
void model_free(eng_model *m);

/* Writes row `tok` of the embedding table, dequantized, into out (n_embd). */
void model_embed_row(const eng_model *m, int32_t tok, float *out);

#endif
