/* Fixture maker: writes GGUF model files with seeded random weights and
 * valid vocabularies (SentencePiece "llama" or byte-level BPE "gpt2"), in
 * the llama / qwen2 / qwen3 / gemma / gemma2 / gemma3 architectures and any
 * quantizable tensor type,
 * loadable by llama.cpp. Used by tests (small files made on the fly) and
 * benchmarks (real model shapes, streamed to disk in seconds).
 * Knows the GGUF writer and the tensor types; nothing about inference. */
#ifndef HEARTH_ENGINE_FIXTURE_H
#define HEARTH_ENGINE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

enum { FIXTURE_TOK_SPM = 0, FIXTURE_TOK_BPE = 1 };

/* Mixed-precision recipes like llama.cpp's (ftype names). */
enum {
  FIXTURE_MIX_NONE = 0,
  FIXTURE_MIX_Q3_K_M,
  FIXTURE_MIX_Q4_K_M,
  FIXTURE_MIX_Q5_K_M,
};

typedef struct {
  char arch[16]; /* "llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3" */
  int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, ctx_length;
  int head_dim; /* 0: n_embd / n_head */
  float rope_theta, norm_eps;
  /* gemma2/gemma3 (keys written when > 0): attention.sliding_window,
   * attention.sliding_window_pattern, attn_logit_softcapping,
   * final_logit_softcapping, rope.scaling.factor (linear) */
  int sliding_window;
  int swa_pattern; /* > 0: attention.sliding_window_pattern (gemma3) */
  float attn_softcap, final_softcap, rope_scale_linear;
  int wtype;     /* QT_* of the matrices (ignored when mix != NONE) */
  int mix;       /* FIXTURE_MIX_* */
  int embd_type; /* QT_* of token_embd / output; -1: as llama.cpp would */
  int tied;      /* output shares token_embd */
  uint64_t seed;
  int tokenizer;    /* FIXTURE_TOK_* */
  char bpe_pre[16]; /* BPE pre-tokenizer: "llama-bpe", "qwen2", "smollm" */
  int add_bos;      /* -1: the tokenizer's usual default */
  int fim; /* 1: the BPE vocabulary ends with <|fim_prefix|> <|fim_suffix|>
              <|fim_middle|> control tokens (infill); SPM ignores it */
  const char *chat_template; /* tokenizer.chat_template (borrowed); NULL: a
                                ChatML one for BPE vocabularies other than
                                llama-bpe, none otherwise; "": none */
} fixture_params;

/* A tiny llama with an SPM vocabulary, Q8_0 matrices, seed 1. */
void fixture_default_params(fixture_params *p);

/* Applies a named preset (architecture, shape, tokenizer): "smollm2-135m",
 * "qwen2.5-0.5b", "gemma2-2b", "gemma3-1b", "tiny-llama", "tiny-qwen2",
 * "tiny-qwen3", "tiny-llama-bpe", "tiny-gemma", "tiny-gemma2", "tiny-gemma3".
 * Gemma presets have a Gemma-style SentencePiece vocabulary (<pad> <eos> <bos>
 * <unk> <start_of_turn> <end_of_turn>, no space prefix) and a Gemma chat
 * template. Returns 0, or -1 for an unknown name. */
int fixture_preset(const char *name, fixture_params *p);

/* Sets wtype/mix from a name: any quantizable type ("q4_K", "Q8_0", "f16")
 * or a mix ("Q4_K_M", "Q5_K_M", "Q3_K_M"). Returns 0 or -1. */
int fixture_set_type(fixture_params *p, const char *name);

/* Checks the parameters; 0, or -1 with a message. */
int fixture_validate(const fixture_params *p, char *err, size_t errlen);

/* Writes the model file. Deterministic: same params -> same bytes. */
int fixture_write(const fixture_params *p, const char *path, char *err,
                  size_t errlen);

/* Type chosen for one tensor (exposed for tests): name is the GGUF tensor
 * name, layer its block index (-1 for none), ne0 its row length. */
int fixture_tensor_type(const fixture_params *p, const char *name, int layer,
                        int64_t ne0);

#endif
