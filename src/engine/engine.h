/* engine.h: the public API of hearth's GGUF inference engine, and the only
 * header a user of the engine (the server, the CLIs, tests) includes.
 *
 * Shape (in the spirit of llama.h): opaque handles, *_params structs filled by
 * *_default_params(), explicit *_free, every fallible call returns an
 * ENG_* status (0 = ok, negative = error) and writes a human-readable message
 * into a caller buffer. Nothing here calls exit() or prints.
 *
 *   eng_model   weights (mmapped GGUF, used in place), hyper-parameters,
 *               tokenizer. Read-only after load: share it between contexts
 *               and threads.
 *   eng_ctx     one inference context on a model: a KV cache of n_ctx cells
 *               shared by up to n_seq_max sequences, scratch buffers, a thread
 *               pool. Not thread-safe: one caller at a time.
 *   eng_batch   tokens to evaluate, each with (position, sequence id, wants
 *               logits). One eng_decode() advances any mix of sequences in one
 *               forward pass: prompt chunks of some, single tokens of others.
 *
 * The engine knows nothing about HTTP, JSON or the server. */
#ifndef HEARTH_ENGINE_H
#define HEARTH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes --------------------------------------------------------*/

enum {
  ENG_OK = 0,
  ENG_ERR_IO = -1,          /* file missing / unreadable */
  ENG_ERR_FORMAT = -2,      /* not a valid GGUF, missing key or tensor */
  ENG_ERR_UNSUPPORTED = -3, /* unknown architecture or tensor type */
  ENG_ERR_NOMEM = -4,       /* allocation failed */
  ENG_ERR_INVALID = -5,     /* bad argument (token id, position, seq id) */
  ENG_ERR_KV_FULL = -6,     /* no free KV cells for this batch: nothing done */
};

/* Short static name of a status ("ok", "kv cache full", ...). */
const char *eng_status_str(int status);

/* ---- model ---------------------------------------------------------------*/

typedef struct eng_model eng_model;

typedef struct {
  int prefault; /* 1: touch every weight page at load (MAP_POPULATE) */
} eng_model_params;

eng_model_params eng_model_default_params(void);

/* Loads a GGUF file. On error returns a negative ENG_* code, *out stays NULL
 * and err holds e.g. "unknown architecture 'gemma7'", "tensor
 * 'blk.3.attn_q.weight': unsupported type IQ2_XXS", "missing tensor
 * 'blk.0.ffn_up.weight'". */
int eng_model_load(const char *path, const eng_model_params *params,
                   eng_model **out, char *err, size_t errlen);
void eng_model_free(eng_model *model);

/* Hyper-parameters and description. Strings are owned by the model and are
 * NUL-terminated; they live as long as the model. */
/* "llama", "qwen2", "qwen3", "gemma", "gemma2" or "gemma3" */
const char *eng_model_arch(const eng_model *m);
const char *eng_model_name(const eng_model *m); /* general.name or file stem */
int eng_model_n_vocab(const eng_model *m);
int eng_model_n_ctx_train(const eng_model *m);
int eng_model_n_embd(const eng_model *m);
int eng_model_n_layer(const eng_model *m);
int eng_model_n_head(const eng_model *m);
int eng_model_n_head_kv(const eng_model *m);
/* Bytes of all weight tensors (what one decode step reads). */
uint64_t eng_model_weight_bytes(const eng_model *m);
/* Bytes of weights one decode step reads: every weight except the token
 * embedding table (only one row of it is read) unless it doubles as the
 * output matrix (tied). The numerator of decode bandwidth use. */
uint64_t eng_model_decode_bytes(const eng_model *m);
/* Size of the GGUF file in bytes. */
uint64_t eng_model_file_bytes(const eng_model *m);
/* tokenizer.chat_template, or NULL when the file has none. */
const char *eng_model_chat_template(const eng_model *m);
/* Any metadata value rendered as text (strings as is, numbers in decimal,
 * bools as true/false; arrays are refused). Writes at most buflen bytes
 * including the NUL; returns the full length, or -1 when the key is absent
 * or is an array. */
int eng_model_meta_str(const eng_model *m, const char *key, char *buf,
                       size_t buflen);

/* ---- tokenizer -----------------------------------------------------------*/

/* Text to token ids. add_special adds BOS/EOS as the vocabulary asks;
 * parse_special turns "<|im_start|>"-like text into its control token.
 * Returns the number of ids written, or -(needed) when max_out is too small,
 * or ENG_ERR_INVALID on invalid input. */
int eng_tokenize(const eng_model *m, const char *text, size_t len,
                 int add_special, int parse_special, int32_t *out, int max_out);
/* The bytes of one token (special = 1 renders control tokens' text).
 * Returns the byte count, or -(needed) when buf is too small. */
int eng_token_piece(const eng_model *m, int32_t tok, int special, char *buf,
                    int len);
int32_t eng_token_bos(const eng_model *m); /* -1 when none */
int32_t eng_token_eos(const eng_model *m); /* -1 when none */
/* 1 if tok ends a generation (eos, eot, <|im_end|>, ...). */
int eng_token_is_eog(const eng_model *m, int32_t tok);
/* Fill-in-the-middle tokens, for infill prompts laid out as
 * PRE prefix SUF suffix MID (the model then writes the middle). */
enum { ENG_FIM_PRE = 0, ENG_FIM_SUF = 1, ENG_FIM_MID = 2 };
/* The FIM token `which` (ENG_FIM_*): from tokenizer.ggml.fim_{pre,suf,mid}_
 * token_id (or the older prefix/suffix/middle_token_id) metadata, else a
 * vocabulary token spelled like <|fim_prefix|>, <fim_prefix>, <fim-prefix>,
 * <|fim_suffix|> ... Returns -1 when the model has none. */
int32_t eng_token_fim(const eng_model *m, int which);

/* Streaming detokenizer: pushes tokens, emits only complete UTF-8. */
typedef struct eng_detok eng_detok;
eng_detok *eng_detok_new(const eng_model *m, int special);
/* Appends the text that tok completes to buf (at most len bytes). Returns the
 * bytes written (0 when waiting for the rest of a UTF-8 sequence) or
 * -(needed) when buf is too small (nothing consumed). */
int eng_detok_push(eng_detok *d, int32_t tok, char *buf, int len);
/* Emits whatever is pending (invalid trailing bytes as U+FFFD). */
int eng_detok_flush(eng_detok *d, char *buf, int len);
void eng_detok_free(eng_detok *d);

/* ---- context ------------------------------------------------------------*/

typedef struct eng_ctx eng_ctx;

typedef struct {
  int n_ctx;     /* KV cells in total, shared by all sequences (0 = train) */
  int n_seq_max; /* distinct sequence ids 0..n_seq_max-1 (1..64) */
  int n_batch;   /* most tokens per forward pass; eng_decode splits larger
                    batches into chunks of this size */
  int n_threads; /* threads of the context's pool (0 = all cores) */
} eng_ctx_params;

eng_ctx_params eng_ctx_default_params(void);

int eng_ctx_new(eng_model *m, const eng_ctx_params *params, eng_ctx **out,
                char *err, size_t errlen);
void eng_ctx_free(eng_ctx *ctx);
int eng_ctx_n_ctx(const eng_ctx *ctx);
int eng_ctx_n_seq_max(const eng_ctx *ctx);
const eng_model *eng_ctx_model(const eng_ctx *ctx);
/* Bytes of the KV cache buffers. */
uint64_t eng_ctx_kv_bytes(const eng_ctx *ctx);

/* ---- batch --------------------------------------------------------------*/

typedef struct {
  int32_t token;
  int32_t pos;    /* position in its sequence, 0-based */
  int32_t seq_id; /* 0..n_seq_max-1 */
  int8_t logits;  /* 1: keep this token's logits (eng_get_logits) */
} eng_batch_tok;

typedef struct {
  int n_tokens;
  int capacity;
  eng_batch_tok *tok;
} eng_batch;

/* Returns a batch with room for capacity tokens (tok == NULL on OOM). */
eng_batch eng_batch_init(int capacity);
void eng_batch_free(eng_batch *b);
void eng_batch_clear(eng_batch *b);
/* Appends one token; returns ENG_ERR_INVALID when the batch is full. */
int eng_batch_add(eng_batch *b, int32_t token, int32_t pos, int32_t seq_id,
                  int logits);

/* Evaluates the batch. Rules: token ids in range; for each sequence, its
 * tokens' positions strictly increase within the batch and start after the
 * sequence's last cached position (eng_kv_seq_pos_max). Each token attends
 * only to cached tokens of its own sequence at positions <= its own (on a
 * gemma2/gemma3 sliding-window layer, only the last `window` of them).
 * Returns ENG_OK, ENG_ERR_INVALID (nothing done), ENG_ERR_KV_FULL (nothing
 * done). Logits of the previous call are replaced. */
int eng_decode(eng_ctx *ctx, const eng_batch *batch);
/* Logits (n_vocab floats) of batch token i of the last eng_decode, or NULL
 * when token i did not ask for logits. Valid until the next eng_decode. */
const float *eng_get_logits(eng_ctx *ctx, int i);
/* The final hidden state (n_embd floats, after the output norm: the input
 * of the output matrix) of batch token i of the last eng_decode, or NULL
 * when token i did not ask for logits. For embeddings from a decoder model
 * (the caller pools, e.g. the mean over a text's tokens, and normalizes).
 * Valid until the next eng_decode. */
const float *eng_get_embedding(eng_ctx *ctx, int i);
/* Last error message of ctx (eng_decode's reason). */
const char *eng_ctx_last_error(const eng_ctx *ctx);

/* ---- KV cache -----------------------------------------------------------*/

/* Removes seq's cached tokens with p0 <= pos < p1 (p1 < 0: to the end;
 * seq < 0: every sequence). Cells no sequence uses any more become free. */
void eng_kv_seq_rm(eng_ctx *ctx, int seq, int32_t p0, int32_t p1);
/* Makes dst share src's cached tokens with p0 <= pos < p1 (p1 < 0: to the
 * end) without copying: prefix reuse. dst must not already hold tokens in
 * that range. Returns ENG_OK or ENG_ERR_INVALID. */
int eng_kv_seq_cp(eng_ctx *ctx, int src, int dst, int32_t p0, int32_t p1);
/* Largest cached position of seq, or -1 when it holds nothing. */
int32_t eng_kv_seq_pos_max(const eng_ctx *ctx, int seq);
/* Number of KV cells in use (by any sequence). */
int eng_kv_used(const eng_ctx *ctx);
void eng_kv_clear(eng_ctx *ctx);

/* Prefix reuse helper: among sequences other than dst, finds the one whose
 * cached tokens (as recorded by eng_decode) share the longest prefix with
 * tokens[0..n), shares that prefix into dst (dst must be empty) and returns
 * its length (0 when none), or ENG_ERR_INVALID when dst is out of range or
 * not empty. The caller then decodes tokens[len..n) into dst at positions
 * len.. . At least one token is always left to decode (len <= n-1), so the
 * caller always gets fresh logits. */
int eng_kv_reuse_prefix(eng_ctx *ctx, int dst, const int32_t *tokens, int n);

#ifdef __cplusplus
}
#endif
#endif
