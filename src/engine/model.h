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

enum { ARCH_LLAMA = 0, ARCH_QWEN2 = 1, ARCH_QWEN3 = 2 };

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
  float *attn_norm;    /* (n_embd) */
  mtensor wq;          /* (n_head*head_dim rows, n_embd cols) */
  mtensor wk;          /* (n_head_kv*head_dim, n_embd) */
  mtensor wv;          /* (n_head_kv*head_dim, n_embd) */
  mtensor wo;          /* (n_embd, n_head*head_dim) */
  float *bq, *bk, *bv; /* qwen2 biases (n_head*head_dim), (n_head_kv*hd) x2 */
  float *q_norm;       /* qwen3: (head_dim) */
  float *k_norm;       /* qwen3: (head_dim) */
  float *ffn_norm;     /* (n_embd) */
  mtensor ffn_gate;    /* (n_ff, n_embd) */
  mtensor ffn_up;      /* (n_ff, n_embd) */
  mtensor ffn_down;    /* (n_embd, n_ff) */
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
  int rope_neox;               /* 1 for qwen2/qwen3 */

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
