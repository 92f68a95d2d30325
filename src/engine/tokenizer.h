/* tokenizer.h: text <-> token ids for GGUF vocabularies, matching llama.cpp
 * token for token: SentencePiece-style ("llama": bigram merges by score, byte
 * fallback), byte-level BPE ("gpt2": PCRE2 pre-tokenizer per
 * tokenizer.ggml.pre, merge ranks), WordPiece ("bert": first code point of
 * NFD, lowercase, greedy longest match), special/control token splitting,
 * and a
 * streaming detokenizer that never emits half a UTF-8 character.
 *
 * Knows GGUF metadata keys (through gguf.h) and nothing about models,
 * kernels, HTTP or JSON. A tok_vocab is read-only after load: share it
 * between threads. All functions return errors, never exit. */
#ifndef HEARTH_TOKENIZER_H
#define HEARTH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gguf_file gguf_file;
typedef struct tok_vocab tok_vocab;

/* Vocabulary kinds (tokenizer.ggml.model). */
enum tok_kind {
  TOK_KIND_SPM = 1, /* "llama": SentencePiece */
  TOK_KIND_BPE = 2, /* "gpt2": byte-level BPE */
  TOK_KIND_WPM = 3, /* "bert": WordPiece */
};

/* Token types as stored in tokenizer.ggml.token_type. */
enum tok_type {
  TOK_TYPE_UNDEFINED = 0,
  TOK_TYPE_NORMAL = 1,
  TOK_TYPE_UNKNOWN = 2,
  TOK_TYPE_CONTROL = 3,
  TOK_TYPE_USER_DEFINED = 4,
  TOK_TYPE_UNUSED = 5,
  TOK_TYPE_BYTE = 6,
};

/* Status codes (0 ok, negative error). */
enum {
  TOK_OK = 0,
  TOK_ERR_FORMAT = -2,      /* missing/invalid tokenizer metadata */
  TOK_ERR_UNSUPPORTED = -3, /* unknown tokenizer model or pre-tokenizer */
  TOK_ERR_NOMEM = -4,
  TOK_ERR_INVALID = -5, /* bad argument (token id out of range, ...) */
};

/* An in-memory description of a vocabulary: what tok_load reads from GGUF
 * metadata. Lets tests and tools build vocabularies without a file. Strings
 * are (pointer, length) pairs, not NUL-terminated; tok_build copies them. */
typedef struct {
  const char *model; /* "llama", "gpt2", "bert" */
  const char *pre;   /* tokenizer.ggml.pre or NULL ("default") */
  const char *name;  /* general.name or NULL (llama.cpp keys quirks on it) */
  int n_tokens;
  const char *const *text; /* [n_tokens] */
  const size_t *text_len;  /* [n_tokens] */
  const float *scores;     /* [n_tokens] or NULL */
  const int32_t *types;    /* [n_tokens] enum tok_type, or NULL (normal) */
  int n_merges;
  const char *const *merges; /* [n_merges] "a b" */
  const size_t *merges_len;  /* [n_merges] */
  /* special ids, -1 = not given (then inferred as llama.cpp does) */
  int32_t bos, eos, eot, eom, unk, sep, pad, mask;
  int add_bos, add_eos;   /* -1 = default for the kind */
  int add_sep;            /* WordPiece: [SEP] at the end; -1 = default */
  int add_space_prefix;   /* -1 = default for the kind */
  int remove_extra_space; /* read for completeness; only T5-style (unigram)
                             vocabularies, not supported, use it */
} tok_spec;

/* Fills a spec with "not given" values (-1 ids, -1 flags, NULL arrays). */
void tok_spec_init(tok_spec *s);

/* Builds a vocabulary from a spec. Returns TOK_OK or a negative code with a
 * message in err (e.g. "unknown tokenizer pre-tokenizer 'foo'"). */
int tok_build(const tok_spec *s, tok_vocab **out, char *err, size_t errlen);

/* Reads tokenizer.ggml.* metadata of an open GGUF file. The vocabulary does
 * not keep pointers into the file: it may outlive it. */
int tok_load(const gguf_file *f, tok_vocab **out, char *err, size_t errlen);
void tok_free(tok_vocab *v);

int tok_n_vocab(const tok_vocab *v);
int tok_kind_of(const tok_vocab *v); /* enum tok_kind */
int32_t tok_bos(const tok_vocab *v); /* -1 when none */
int32_t tok_eos(const tok_vocab *v); /* -1 when none */
int32_t tok_eot(const tok_vocab *v); /* -1 when none */
int32_t tok_unk(const tok_vocab *v); /* -1 when none */
int32_t tok_pad(const tok_vocab *v); /* -1 when none */
int32_t tok_sep(const tok_vocab *v); /* -1 when none (BERT's [SEP]) */
int tok_add_bos(const tok_vocab *v); /* 1 when add_special adds BOS */
int tok_add_eos(const tok_vocab *v); /* 1 when add_special adds EOS */
/* 1 if id ends a generation (eos, eot, eom, <|im_end|>, <|endoftext|>...). */
int tok_is_eog(const tok_vocab *v, int32_t id);
/* 1 if id is a control token (rendered only with special = 1). */
int tok_is_control(const tok_vocab *v, int32_t id);
int tok_type_of(const tok_vocab *v, int32_t id); /* enum tok_type, -1 bad id */
/* Raw vocabulary text of id (not NUL-terminated), NULL for a bad id. */
const char *tok_text(const tok_vocab *v, int32_t id, size_t *len);
/* Id of an exact vocabulary string, -1 when absent. */
int32_t tok_find(const tok_vocab *v, const char *text, size_t len);

/* Text to ids. add_special: BOS/EOS ([CLS]/[SEP] for WordPiece) as the
 * vocabulary asks; parse_special:
 * control/user-defined token texts in the input become those tokens.
 * Returns the number of ids written; -(needed) when max_out is too small
 * (out then holds the first max_out ids; needed > max_out); or a TOK_ERR_*
 * code (-n <= max_out tells it apart): TOK_ERR_INVALID for bad arguments,
 * TOK_ERR_NOMEM. Invalid UTF-8 is not an error: it is tokenized as
 * llama.cpp does (BPE: as U+FFFD; SPM: byte fallback). */
int tok_encode(const tok_vocab *v, const char *text, size_t len,
               int add_special, int parse_special, int32_t *out, int max_out);

/* The bytes of one token: byte tokens give their byte, "▁" becomes a space
 * (SPM), byte-level symbols are mapped back (BPE); control tokens give ""
 * unless special = 1. lstrip = k drops up to k leading spaces (llama.cpp's
 * lstrip). Returns the byte count, -(needed) when len is too small, or
 * TOK_ERR_INVALID for a bad id. */
int tok_piece(const tok_vocab *v, int32_t id, int special, int lstrip,
              char *buf, int len);

/* Ids to text, as llama.cpp's llama_detokenize: remove_special drops a
 * leading BOS / trailing EOS when the vocabulary adds them; the first
 * piece loses one leading space when add_space_prefix (SPM) and no BOS was
 * dropped (llama.cpp's rule); unparse_special renders control tokens;
 * clean-up of " ," " 's" etc. where the pre-tokenizer asks (as llama.cpp).
 * Returns bytes written or -(needed), TOK_ERR_INVALID for a bad id. */
int tok_decode(const tok_vocab *v, const int32_t *ids, int n,
               int remove_special, int unparse_special, char *buf, int len);

/* Streaming detokenizer: push tokens one by one; only complete UTF-8
 * characters come out, the rest waits for the next token. Plain struct:
 * no allocation, copyable. */
typedef struct {
  const tok_vocab *v;
  int special;           /* render control tokens */
  int lstrip_first;      /* drop one leading space of the first piece */
  int n_pushed;          /* tokens pushed so far */
  unsigned char pend[8]; /* bytes of an incomplete UTF-8 character */
  int n_pend;
} tok_detok;

void tok_detok_init(tok_detok *d, const tok_vocab *v, int special,
                    int lstrip_first);
/* Appends the complete characters tok finishes to buf. Returns bytes written
 * (0 while a character is incomplete), -(needed) when len is too small
 * (state unchanged: retry with a bigger buffer), or TOK_ERR_INVALID. */
int tok_detok_push(tok_detok *d, int32_t id, char *buf, int len);
/* Emits what is pending; bytes that never formed a valid character become
 * U+FFFD. Returns bytes written or -(needed). */
int tok_detok_flush(tok_detok *d, char *buf, int len);

#endif
