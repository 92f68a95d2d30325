/* Fixture maker: builds a vocabulary (SentencePiece pieces with scores, or
 * GPT-2 byte-level tokens with a consistent merge list), a tensor directory
 * in llama.cpp's naming, and streams seeded random weights, quantized row
 * by row, into a GGUF file. Each tensor's random stream depends only on
 * (seed, tensor index), so output is identical however it is chunked.
 * Knows the GGUF writer and tensor types; nothing about inference. */
#include "engine/fixture.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/quant.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ==== parameters ======================================================== */

void fixture_default_params(fixture_params *p) {
  memset(p, 0, sizeof *p);
  fixture_preset("tiny-llama", p);
  p->wtype = QT_Q8_0;
  p->mix = FIXTURE_MIX_NONE;
  p->embd_type = -1;
  p->seed = 1;
  p->add_bos = -1;
}

typedef struct {
  const char *name, *arch;
  int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, ctx, head_dim;
  float theta, eps;
  int tied, tok;
  const char *pre;
  int swa;                             /* gemma: sliding window */
  float attn_cap, final_cap, rope_lin; /* gemma: soft caps, linear rope */
} preset;

static const preset PRESETS[] = {
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 0, 100000.f,
     1e-5f, 1, FIXTURE_TOK_BPE, "smollm", 0, 0, 0, 0},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 0, 1000000.f,
     1e-6f, 1, FIXTURE_TOK_BPE, "qwen2", 0, 0, 0, 0},
    {"tiny-llama", "llama", 256, 2, 4, 2, 512, 1024, 512, 0, 10000.f, 1e-5f, 0,
     FIXTURE_TOK_SPM, "", 0, 0, 0, 0},
    {"tiny-llama-bpe", "llama", 256, 2, 4, 2, 512, 1024, 512, 0, 500000.f,
     1e-5f, 1, FIXTURE_TOK_BPE, "llama-bpe", 0, 0, 0, 0},
    {"tiny-qwen2", "qwen2", 256, 2, 4, 2, 512, 1024, 512, 0, 1000000.f, 1e-6f,
     1, FIXTURE_TOK_BPE, "qwen2", 0, 0, 0, 0},
    {"tiny-qwen3", "qwen3", 256, 2, 4, 2, 512, 1024, 512, 128, 1000000.f, 1e-6f,
     1, FIXTURE_TOK_BPE, "qwen2", 0, 0, 0, 0},
    {"gemma2-2b", "gemma2", 2304, 26, 8, 4, 9216, 256000, 8192, 256, 10000.f,
     1e-6f, 1, FIXTURE_TOK_SPM, "", 4096, 50.f, 30.f, 0},
    {"gemma3-1b", "gemma3", 1152, 26, 4, 1, 6912, 262144, 32768, 256, 1000000.f,
     1e-6f, 1, FIXTURE_TOK_SPM, "", 512, 0, 0, 0},
    /* tiny gemmas: windows, caps and scaling small enough to matter within
     * the goldens' 43-token prompt and random weights; gemma3 needs 6 layers
     * for one global (non-sliding) layer, and scales the global layers' rope
     * like Gemma 3 4B */
    {"tiny-gemma2", "gemma2", 256, 2, 4, 2, 512, 1024, 512, 128, 10000.f, 1e-6f,
     1, FIXTURE_TOK_SPM, "", 6, 4.f, 15.f, 0},
    {"tiny-gemma3", "gemma3", 256, 6, 4, 2, 512, 1024, 512, 128, 1000000.f,
     1e-6f, 1, FIXTURE_TOK_SPM, "", 6, 0, 0, 8.f},
    {"tiny-gemma", "gemma", 256, 2, 4, 2, 512, 1024, 512, 128, 10000.f, 1e-6f,
     1, FIXTURE_TOK_SPM, "", 0, 0, 0, 0},
};

int fixture_preset(const char *name, fixture_params *p) {
  for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++) {
    const preset *s = &PRESETS[i];
    if (strcmp(s->name, name) != 0)
      continue;
    snprintf(p->arch, sizeof p->arch, "%s", s->arch);
    p->n_embd = s->n_embd;
    p->n_layer = s->n_layer;
    p->n_head = s->n_head;
    p->n_head_kv = s->n_head_kv;
    p->n_ff = s->n_ff;
    p->n_vocab = s->n_vocab;
    p->ctx_length = s->ctx;
    p->head_dim = s->head_dim;
    p->rope_theta = s->theta;
    p->norm_eps = s->eps;
    p->tied = s->tied;
    p->tokenizer = s->tok;
    snprintf(p->bpe_pre, sizeof p->bpe_pre, "%s", s->pre);
    p->sliding_window = s->swa;
    p->swa_pattern = 0;
    p->attn_softcap = s->attn_cap;
    p->final_softcap = s->final_cap;
    p->rope_scale_linear = s->rope_lin;
    return 0;
  }
  return -1;
}

int fixture_set_type(fixture_params *p, const char *name) {
  static const struct {
    const char *n;
    int mix;
  } mixes[] = {{"q3_k_m", FIXTURE_MIX_Q3_K_M},
               {"q4_k_m", FIXTURE_MIX_Q4_K_M},
               {"q5_k_m", FIXTURE_MIX_Q5_K_M}};
  for (size_t i = 0; i < sizeof mixes / sizeof *mixes; i++) {
    if (strcasecmp(name, mixes[i].n) == 0) {
      p->mix = mixes[i].mix;
      return 0;
    }
  }
  int t = qtype_from_name(name);
  const qtype_info *qi = qtype(t);
  if (!qi || !qi->can_quantize || t == QT_Q8_1 || t == QT_Q8_K)
    return -1;
  p->wtype = t;
  p->mix = FIXTURE_MIX_NONE;
  return 0;
}

static int is_gemma(const fixture_params *p) {
  return strncmp(p->arch, "gemma", 5) == 0;
}

/* Gemma 2 and 3 (not 1) normalize attention and feed-forward outputs. */
static int has_post_norms(const fixture_params *p) {
  return strcmp(p->arch, "gemma2") == 0 || strcmp(p->arch, "gemma3") == 0;
}

static int head_dim(const fixture_params *p) {
  return p->head_dim ? p->head_dim : p->n_embd / p->n_head;
}

int fixture_validate(const fixture_params *p, char *err, size_t errlen) {
  if (strcmp(p->arch, "llama") && strcmp(p->arch, "qwen2") &&
      strcmp(p->arch, "qwen3") && strcmp(p->arch, "gemma") &&
      !has_post_norms(p))
    return fail(err, errlen,
                "unknown arch '%s' (llama, qwen2, qwen3, gemma, gemma2, "
                "gemma3)",
                p->arch);
  if (is_gemma(p) && p->tokenizer != FIXTURE_TOK_SPM)
    return fail(err, errlen, "%s fixtures have an spm vocabulary", p->arch);
  if (p->sliding_window < 0 || p->swa_pattern < 0 || p->attn_softcap < 0 ||
      p->final_softcap < 0 || p->rope_scale_linear < 0)
    return fail(err, errlen,
                "sliding window, soft caps and rope scale must be >= 0");
  if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 ||
      p->n_head_kv <= 0 || p->n_ff <= 0 || p->ctx_length <= 0)
    return fail(err, errlen, "dimensions must be positive");
  if (p->n_embd > 65536 || p->n_ff > 262144 || p->n_layer > 512 ||
      p->n_vocab > 1000000)
    return fail(err, errlen, "dimensions too large");
  if (p->n_head % p->n_head_kv)
    return fail(err, errlen, "n_head %d is not a multiple of n_head_kv %d",
                p->n_head, p->n_head_kv);
  if (!p->head_dim && p->n_embd % p->n_head)
    return fail(err, errlen, "n_embd %d is not a multiple of n_head %d",
                p->n_embd, p->n_head);
  if (head_dim(p) % 2 || head_dim(p) <= 0)
    return fail(err, errlen, "head dimension %d must be even", head_dim(p));
  const int min_vocab = p->tokenizer == FIXTURE_TOK_SPM ? 400 : 400;
  if (p->n_vocab < min_vocab)
    return fail(err, errlen, "n_vocab %d too small (at least %d)", p->n_vocab,
                min_vocab);
  if (p->tokenizer == FIXTURE_TOK_BPE && strcmp(p->bpe_pre, "llama-bpe") &&
      strcmp(p->bpe_pre, "qwen2") && strcmp(p->bpe_pre, "smollm"))
    return fail(err, errlen, "unknown BPE pre-tokenizer '%s'", p->bpe_pre);
  const qtype_info *qi = qtype(p->wtype);
  if (p->mix == FIXTURE_MIX_NONE &&
      (!qi || !qi->can_quantize || p->wtype == QT_Q8_1 || p->wtype == QT_Q8_K))
    return fail(err, errlen, "type %s cannot be used for weights",
                qtype_name(p->wtype));
  if (p->embd_type >= 0 &&
      (!qtype(p->embd_type) || !qtype(p->embd_type)->can_quantize))
    return fail(err, errlen, "embedding type %s cannot be used",
                qtype_name(p->embd_type));
  if (p->rope_theta <= 0 || p->norm_eps <= 0)
    return fail(err, errlen, "rope theta and norm eps must be positive");
  return 0;
}

/* ==== tensor types (llama.cpp-like recipes) ============================= */

static int use_more_bits(int i, int n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama.cpp's substitutes when a row is not a multiple of 256. */
static int fallback_type(int t, int64_t ne0) {
  const qtype_info *qi = qtype(t);
  if (ne0 % qi->blck == 0)
    return t;
  switch (t) {
  case QT_Q2_K:
  case QT_Q3_K:
  case QT_IQ4_XS:
    t = QT_IQ4_NL;
    break;
  case QT_Q4_K:
    t = QT_Q5_0;
    break;
  case QT_Q5_K:
    t = QT_Q5_1;
    break;
  case QT_Q6_K:
    t = QT_Q8_0;
    break;
  default:
    t = QT_F16;
    break;
  }
  return ne0 % qtype(t)->blck == 0 ? t : QT_F16;
}

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

int fixture_tensor_type(const fixture_params *p, const char *name, int layer,
                        int64_t ne0) {
  if (has_suffix(name, "norm.weight") || has_suffix(name, ".bias"))
    return QT_F32;
  const int is_out = strcmp(name, "output.weight") == 0 ||
                     (p->tied && strcmp(name, "token_embd.weight") == 0);
  const int is_embd = strcmp(name, "token_embd.weight") == 0;
  int t = p->wtype;
  if ((is_out || is_embd) && p->embd_type >= 0)
    return fallback_type(p->embd_type, ne0);
  if (p->mix != FIXTURE_MIX_NONE) {
    const int base = p->mix == FIXTURE_MIX_Q3_K_M   ? QT_Q3_K
                     : p->mix == FIXTURE_MIX_Q4_K_M ? QT_Q4_K
                                                    : QT_Q5_K;
    t = base;
    if (is_out)
      t = QT_Q6_K;
    else if (has_suffix(name, "attn_v.weight") ||
             has_suffix(name, "ffn_down.weight")) {
      if (p->mix == FIXTURE_MIX_Q3_K_M)
        t = layer < 2 ? QT_Q5_K : QT_Q4_K;
      else if (use_more_bits(layer, p->n_layer))
        t = QT_Q6_K;
    } else if (p->mix == FIXTURE_MIX_Q3_K_M &&
               has_suffix(name, "attn_output.weight"))
      t = QT_Q4_K;
  }
  return fallback_type(t, ne0);
}

/* ==== random numbers ==================================================== */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms,
 * centred and scaled to unit variance (cheap enough for 10^9 draws). */
static float randn(uint64_t *s) {
  uint64_t r = splitmix64(s);
  float u = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) +
            (float)((r >> 32) & 0xffff) + (float)(r >> 48);
  return (u / 65536.0f - 2.0f) * 1.7320508f;
}

/* ==== string set (dedupes vocabulary entries) =========================== */

typedef struct {
  char **tok;    /* token strings (owned) */
  size_t *len;   /* their lengths */
  float *score;  /* SPM scores */
  int32_t *type; /* llama token types */
  int n, cap;
  int *slots; /* open addressing: token index + 1, 0 empty */
  size_t nslots;
  char **merges; /* BPE merges "a b" (owned) */
  int n_merges, cap_merges;
  int bos, eos, unk, eot, pad;
} vocab;

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

static uint64_t hash_str(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return h;
}

static int vocab_find(const vocab *v, const char *s, size_t n) {
  for (size_t k = hash_str(s, n) & (v->nslots - 1);;
       k = (k + 1) & (v->nslots - 1)) {
    int id = v->slots[k] - 1;
    if (id < 0)
      return -1;
    if (v->len[id] == n && memcmp(v->tok[id], s, n) == 0)
      return id;
  }
}

static int vocab_init(vocab *v, int cap) {
  memset(v, 0, sizeof *v);
  v->cap = cap;
  v->nslots = 1;
  while (v->nslots < (size_t)cap * 2)
    v->nslots <<= 1;
  v->tok = calloc((size_t)cap, sizeof *v->tok);
  v->len = calloc((size_t)cap, sizeof *v->len);
  v->score = calloc((size_t)cap, sizeof *v->score);
  v->type = calloc((size_t)cap, sizeof *v->type);
  v->slots = calloc(v->nslots, sizeof *v->slots);
  v->bos = v->eos = v->unk = v->eot = v->pad = -1;
  return v->tok && v->len && v->score && v->type && v->slots ? 0 : -1;
}

static void vocab_free(vocab *v) {
  for (int i = 0; i < v->n; i++)
    free(v->tok[i]);
  for (int i = 0; i < v->n_merges; i++)
    free(v->merges[i]);
  free(v->tok);
  free(v->len);
  free(v->score);
  free(v->type);
  free(v->slots);
  free(v->merges);
}

/* Adds a token unless present or full. Returns its id, -1 if full/dup, -2
 * on allocation failure. */
static int vocab_add(vocab *v, const char *s, size_t n, int type) {
  if (v->n >= v->cap || vocab_find(v, s, n) >= 0)
    return -1;
  char *c = malloc(n + 1);
  if (!c)
    return -2;
  memcpy(c, s, n);
  c[n] = 0;
  const int id = v->n++;
  v->tok[id] = c;
  v->len[id] = n;
  v->type[id] = type;
  v->score[id] = -(float)id;
  size_t k = hash_str(s, n) & (v->nslots - 1);
  while (v->slots[k])
    k = (k + 1) & (v->nslots - 1);
  v->slots[k] = id + 1;
  return id;
}

static int vocab_add_merge(vocab *v, const char *a, size_t na, const char *b,
                           size_t nb) {
  if (v->n_merges == v->cap_merges) {
    int cap = v->cap_merges ? 2 * v->cap_merges : 1024;
    char **m = realloc(v->merges, (size_t)cap * sizeof *m);
    if (!m)
      return -2;
    v->merges = m;
    v->cap_merges = cap;
  }
  char *s = malloc(na + nb + 2);
  if (!s)
    return -2;
  memcpy(s, a, na);
  s[na] = ' ';
  memcpy(s + na + 1, b, nb);
  s[na + nb + 1] = 0;
  v->merges[v->n_merges++] = s;
  return 0;
}

/* ==== vocabularies ====================================================== */

static const char *const WORDS[] = {
    "the",   "of",    "and",   "to",    "in",    "is",     "was",  "that",
    "for",   "it",    "with",  "as",    "on",    "be",     "at",   "by",
    "this",  "had",   "not",   "are",   "but",   "from",   "or",   "have",
    "an",    "they",  "which", "one",   "you",   "were",   "her",  "all",
    "she",   "there", "would", "their", "we",    "him",    "been", "has",
    "when",  "who",   "will",  "more",  "no",    "if",     "out",  "so",
    "said",  "what",  "up",    "its",   "about", "into",   "than", "them",
    "can",   "only",  "other", "new",   "some",  "could",  "time", "these",
    "two",   "may",   "then",  "do",    "first", "any",    "my",   "now",
    "such",  "like",  "our",   "over",  "man",   "me",     "even", "most",
    "made",  "after", "also",  "did",   "many",  "before", "must", "through",
    "back",  "years", "where", "much",  "your",  "way",    "well", "down",
    "hello", "world", "Hello", "World", "Once",  "upon",   "a",    "little",
    "girl",  "named", "Lily",  "day",   "happy", "story",  "test", "token",
    "model", "llama", "quick", "brown", "fox",   "jumps",  "lazy", "dog",
    "ing",   "ed",    "er",    "ly",    "tion",  "es",     "re",   "en",
    "th",    "he",    "in",    "an",    "on",    "at",     "or",   "st",
};
#define N_WORDS (int)(sizeof WORDS / sizeof *WORDS)

/* Enumerates lowercase strings in length-then-lexicographic order:
 * k -> "a".."z", "aa".."zz", "aaa"... */
static int enum_word(uint64_t k, char *out) {
  int len = 1;
  uint64_t span = 26;
  while (k >= span) {
    k -= span;
    span *= 26;
    len++;
  }
  for (int i = len - 1; i >= 0; i--) {
    out[i] = (char)('a' + k % 26);
    k /= 26;
  }
  out[len] = 0;
  return len;
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word marker */

/* Special pieces first: Llama's <unk> <s> </s>, or Gemma's <pad> <eos>
 * <bos> <unk> <start_of_turn> <end_of_turn> (its chat turns' markers). */
static int spm_specials(vocab *v, int gemma) {
  if (!gemma) {
    v->unk = vocab_add(v, "<unk>", 5, TT_UNKNOWN);
    v->bos = vocab_add(v, "<s>", 3, TT_CONTROL);
    v->eos = vocab_add(v, "</s>", 4, TT_CONTROL);
    return 0;
  }
  v->pad = vocab_add(v, "<pad>", 5, TT_CONTROL);
  v->eos = vocab_add(v, "<eos>", 5, TT_CONTROL);
  v->bos = vocab_add(v, "<bos>", 5, TT_CONTROL);
  v->unk = vocab_add(v, "<unk>", 5, TT_UNKNOWN);
  if (vocab_add(v, "<start_of_turn>", 15, TT_CONTROL) < 0)
    return -2;
  v->eot = vocab_add(v, "<end_of_turn>", 13, TT_CONTROL);
  return v->eot < 0 ? -2 : 0;
}

static int build_spm(vocab *v, int n_vocab, int gemma) {
  if (vocab_init(v, n_vocab) || spm_specials(v, gemma))
    return -2;
  for (int b = 0; b < 256; b++) {
    char s[8];
    snprintf(s, sizeof s, "<0x%02X>", b);
    if (vocab_add(v, s, 6, TT_BYTE) == -2)
      return -2;
  }
  if (vocab_add(v, SPM_SPACE, 3, TT_NORMAL) == -2)
    return -2;
  for (int c = 33; c < 127; c++) { /* printable ASCII as single pieces */
    char s[2] = {(char)c, 0};
    if (vocab_add(v, s, 1, TT_NORMAL) == -2)
      return -2;
  }
  char buf[64];
  for (int i = 0; i < N_WORDS; i++) {
    int n = snprintf(buf, sizeof buf, SPM_SPACE "%s", WORDS[i]);
    if (vocab_add(v, buf, (size_t)n, TT_NORMAL) == -2 ||
        vocab_add(v, WORDS[i], strlen(WORDS[i]), TT_NORMAL) == -2)
      return -2;
  }
  for (uint64_t k = 0; v->n < n_vocab; k++) {
    char w[32];
    int n = enum_word(k, w);
    snprintf(buf, sizeof buf, SPM_SPACE "%s", w);
    if (vocab_add(v, buf, (size_t)n + 3, TT_NORMAL) == -2 ||
        (n > 1 && vocab_add(v, w, (size_t)n, TT_NORMAL) == -2))
      return -2;
  }
  return 0;
}

/* GPT-2's byte-to-unicode map: printable bytes keep their code point, the
 * others are shifted to 256+. Writes UTF-8 of byte b's symbol. */
static int byte_symbol(int b, char *out) {
  int cp;
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
    cp = b;
  else {
    int n = 0;
    for (int k = 0; k < b; k++)
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) ||
            (k >= 174 && k <= 255)))
        n++;
    cp = 256 + n;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  out[0] = (char)(0xC0 | (cp >> 6));
  out[1] = (char)(0x80 | (cp & 0x3F));
  return 2;
}

/* Adds `word` (already in byte-symbol form) to a BPE vocab by merging its
 * longest existing prefix with its next symbol, left to right. */
static int bpe_add_word(vocab *v, const char *w, size_t n) {
  size_t cur = 0;
  /* first symbol: one UTF-8 character */
  cur = ((uint8_t)w[0] & 0x80) ? 2 : 1;
  while (cur < n && v->n < v->cap) {
    size_t step = ((uint8_t)w[cur] & 0x80) ? 2 : 1;
    if (vocab_find(v, w, cur + step) < 0) {
      int id = vocab_add(v, w, cur + step, TT_NORMAL);
      if (id == -2)
        return -2;
      if (id >= 0 && vocab_add_merge(v, w, cur, w + cur, step))
        return -2;
    }
    cur += step;
  }
  return 0;
}

static int build_bpe(vocab *v, int n_vocab, const char *pre, int fim) {
  static const char *const qwen_sp[] = {"<|endoftext|>", "<|im_start|>",
                                        "<|im_end|>"};
  static const char *const fim_sp[] = {"<|fim_prefix|>", "<|fim_suffix|>",
                                       "<|fim_middle|>"};
  const int n_fim = fim ? 3 : 0;
  static const char *const llama3_sp[] = {
      "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
      "<|end_header_id|>", "<|eot_id|>"};
  const int is_l3 = strcmp(pre, "llama-bpe") == 0;
  const char *const *sp = is_l3 ? llama3_sp : qwen_sp;
  const int n_sp = is_l3 ? 5 : 3;
  if (vocab_init(v, n_vocab))
    return -2;
  v->cap = n_vocab - n_sp - n_fim; /* content first, specials last */
  char g[4], sym[2];
  const int ng = byte_symbol(' ', g);
  for (int b = 0; b < 256; b++) {
    int n = byte_symbol(b, sym);
    if (vocab_add(v, sym, (size_t)n, TT_NORMAL) == -2)
      return -2;
  }
  char buf[64];
  for (int i = 0; i < N_WORDS; i++) {
    memcpy(buf, g, (size_t)ng);
    size_t wl = strlen(WORDS[i]);
    memcpy(buf + ng, WORDS[i], wl);
    if (bpe_add_word(v, buf, (size_t)ng + wl) || bpe_add_word(v, WORDS[i], wl))
      return -2;
  }
  for (uint64_t k = 0; v->n < v->cap; k++) {
    char w[32];
    int n = enum_word(k, w);
    memcpy(buf, g, (size_t)ng);
    memcpy(buf + ng, w, (size_t)n);
    if (bpe_add_word(v, buf, (size_t)(ng + n)) || bpe_add_word(v, w, (size_t)n))
      return -2;
  }
  v->cap = n_vocab;
  int ids[5];
  for (int i = 0; i < n_sp; i++)
    if ((ids[i] = vocab_add(v, sp[i], strlen(sp[i]), TT_CONTROL)) < 0)
      return -2;
  for (int i = 0; i < n_fim; i++)
    if (vocab_add(v, fim_sp[i], strlen(fim_sp[i]), TT_CONTROL) < 0)
      return -2;
  if (is_l3) {
    v->bos = ids[0];
    v->eos = ids[1];
    v->eot = ids[4];
  } else {
    v->bos = ids[0];
    v->eos = ids[2];
    v->eot = ids[2];
  }
  return 0;
}

/* ==== tensor directory ================================================== */

typedef struct {
  char name[64];
  int type, n_dims, layer;
  int64_t ne[2];
  int kind; /* 0 matrix, 1 norm (around 1), 2 bias, 3 embedding */
} tspec;

static void add_t(tspec *t, int *n, const char *name, int layer, int64_t ne0,
                  int64_t ne1, int kind) {
  tspec *s = &t[(*n)++];
  snprintf(s->name, sizeof s->name, "%s", name);
  s->layer = layer;
  s->ne[0] = ne0;
  s->ne[1] = ne1;
  s->n_dims = ne1 > 1 || kind == 0 || kind == 3 ? 2 : 1;
  s->kind = kind;
}

static int build_tensors(const fixture_params *p, tspec *t) {
  const int hd = head_dim(p), nq = p->n_head * hd, nkv = p->n_head_kv * hd;
  const int qwen2 = strcmp(p->arch, "qwen2") == 0,
            qk_norm =
                strcmp(p->arch, "qwen3") == 0 || strcmp(p->arch, "gemma3") == 0,
            post_norms = has_post_norms(p);
  int n = 0;
  char nm[64];
  add_t(t, &n, "token_embd.weight", -1, p->n_embd, p->n_vocab, 3);
  add_t(t, &n, "output_norm.weight", -1, p->n_embd, 1, 1);
  if (!p->tied)
    add_t(t, &n, "output.weight", -1, p->n_embd, p->n_vocab, 3);
  for (int l = 0; l < p->n_layer; l++) {
#define L(suffix, ne0, ne1, kind)                                              \
  snprintf(nm, sizeof nm, "blk.%d." suffix, l);                                \
  add_t(t, &n, nm, l, ne0, ne1, kind)
    L("attn_norm.weight", p->n_embd, 1, 1);
    L("attn_q.weight", p->n_embd, nq, 0);
    L("attn_k.weight", p->n_embd, nkv, 0);
    L("attn_v.weight", p->n_embd, nkv, 0);
    if (qwen2) {
      L("attn_q.bias", nq, 1, 2);
      L("attn_k.bias", nkv, 1, 2);
      L("attn_v.bias", nkv, 1, 2);
    }
    if (qk_norm) {
      L("attn_q_norm.weight", hd, 1, 1);
      L("attn_k_norm.weight", hd, 1, 1);
    }
    L("attn_output.weight", nq, p->n_embd, 0);
    if (post_norms) {
      L("post_attention_norm.weight", p->n_embd, 1, 1);
    }
    L("ffn_norm.weight", p->n_embd, 1, 1);
    L("ffn_gate.weight", p->n_embd, p->n_ff, 0);
    L("ffn_up.weight", p->n_embd, p->n_ff, 0);
    L("ffn_down.weight", p->n_ff, p->n_embd, 0);
    if (post_norms) {
      L("post_ffw_norm.weight", p->n_embd, 1, 1);
    }
#undef L
  }
  for (int i = 0; i < n; i++)
    t[i].type = fixture_tensor_type(p, t[i].name, t[i].layer, t[i].ne[0]);
  return n;
}

/* ==== metadata ========================================================== */

static int ftype_of(const fixture_params *p) {
  switch (p->mix) {
  case FIXTURE_MIX_Q3_K_M:
    return 12;
  case FIXTURE_MIX_Q4_K_M:
    return 15;
  case FIXTURE_MIX_Q5_K_M:
    return 17;
  default:
    break;
  }
  switch (p->wtype) {
  case QT_F32:
    return 0;
  case QT_F16:
    return 1;
  case QT_Q4_0:
    return 2;
  case QT_Q4_1:
    return 3;
  case QT_Q8_0:
    return 7;
  case QT_Q5_0:
    return 8;
  case QT_Q5_1:
    return 9;
  case QT_Q2_K:
    return 10;
  case QT_Q3_K:
    return 11;
  case QT_Q4_K:
    return 14;
  case QT_Q5_K:
    return 16;
  case QT_Q6_K:
    return 18;
  case QT_IQ4_NL:
    return 25;
  case QT_IQ4_XS:
    return 30;
  case QT_BF16:
    return 32;
  default:
    return 0;
  }
}

static const char CHATML[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + "
    "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif "
    "%}";

/* Gemma's turn format: no system role (it raises), "assistant" turns are
 * the "model" role, contents trimmed. */
static const char GEMMA_CHAT[] =
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}"
    "{% endif %}";

static int put_hparams(gguf_writer *w, const fixture_params *p) {
  char k[96];
  int rc = 0;
#define KEY(s) (snprintf(k, sizeof k, "%s." s, p->arch), k)
  rc |= gguf_w_str(w, "general.architecture", p->arch);
  rc |= gguf_w_str(w, "general.name", "hearth random-weight fixture");
  rc |= gguf_w_u32(w, "general.file_type", (uint32_t)ftype_of(p));
  rc |= gguf_w_u32(w, "general.quantization_version", 2);
  rc |= gguf_w_u32(w, KEY("context_length"), (uint32_t)p->ctx_length);
  rc |= gguf_w_u32(w, KEY("embedding_length"), (uint32_t)p->n_embd);
  rc |= gguf_w_u32(w, KEY("block_count"), (uint32_t)p->n_layer);
  rc |= gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)p->n_ff);
  rc |= gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)p->n_head);
  rc |= gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv);
  rc |= gguf_w_f32(w, KEY("rope.freq_base"), p->rope_theta);
  rc |= gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), p->norm_eps);
  rc |= gguf_w_u32(w, KEY("vocab_size"), (uint32_t)p->n_vocab);
  if (strcmp(p->arch, "llama") == 0)
    rc |= gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)head_dim(p));
  if (strcmp(p->arch, "qwen3") == 0 || is_gemma(p)) {
    rc |= gguf_w_u32(w, KEY("attention.key_length"), (uint32_t)head_dim(p));
    rc |= gguf_w_u32(w, KEY("attention.value_length"), (uint32_t)head_dim(p));
  }
  if (p->sliding_window > 0)
    rc |= gguf_w_u32(w, KEY("attention.sliding_window"),
                     (uint32_t)p->sliding_window);
  if (p->swa_pattern > 0)
    rc |= gguf_w_u32(w, KEY("attention.sliding_window_pattern"),
                     (uint32_t)p->swa_pattern);
  if (p->attn_softcap > 0)
    rc |= gguf_w_f32(w, KEY("attn_logit_softcapping"), p->attn_softcap);
  if (p->final_softcap > 0)
    rc |= gguf_w_f32(w, KEY("final_logit_softcapping"), p->final_softcap);
  if (p->rope_scale_linear > 0) {
    rc |= gguf_w_str(w, KEY("rope.scaling.type"), "linear");
    rc |= gguf_w_f32(w, KEY("rope.scaling.factor"), p->rope_scale_linear);
  }
#undef KEY
  return rc ? -1 : 0;
}

static int put_vocab(gguf_writer *w, const fixture_params *p, const vocab *v) {
  int rc = 0;
  const int spm = p->tokenizer == FIXTURE_TOK_SPM;
  rc |= gguf_w_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!spm)
    rc |= gguf_w_str(w, "tokenizer.ggml.pre", p->bpe_pre);
  rc |= gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok,
                       v->len, (uint64_t)v->n);
  if (spm)
    rc |= gguf_w_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->score,
                     (uint64_t)v->n);
  rc |= gguf_w_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->type,
                   (uint64_t)v->n);
  if (!spm)
    rc |= gguf_w_arr_str(w, "tokenizer.ggml.merges",
                         (const char *const *)v->merges, NULL,
                         (uint64_t)v->n_merges);
  rc |= gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
  rc |= gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
  if (v->unk >= 0)
    rc |= gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
  if (v->pad >= 0)
    rc |= gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
  if (is_gemma(p)) /* Gemma's SentencePiece model adds no dummy prefix */
    rc |= gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", 0);
  if (!spm && v->eot >= 0 && v->eot != v->eos)
    rc |= gguf_w_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot);
  const int add_bos = p->add_bos >= 0 ? p->add_bos
                      : spm           ? 1
                                      : strcmp(p->bpe_pre, "llama-bpe") == 0;
  rc |= gguf_w_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
  rc |= gguf_w_bool(w, "tokenizer.ggml.add_eos_token", 0);
  const char *tpl = p->chat_template                          ? p->chat_template
                    : is_gemma(p)                             ? GEMMA_CHAT
                    : !spm && strcmp(p->bpe_pre, "llama-bpe") ? CHATML
                                                              : "";
  if (*tpl)
    rc |= gguf_w_str(w, "tokenizer.chat_template", tpl);
  return rc ? -1 : 0;
}

/* ==== weights =========================================================== */

/* Standard deviation of a tensor's random values. Matrices: 1/sqrt(fan in)
 * keeps activations at unit scale; embeddings: logits of std ~3 after the
 * final norm, so distributions are peaked like a trained model's. */
static float std_of(const tspec *t, const fixture_params *p) {
  switch (t->kind) {
  case 0:
    return 1.0f / sqrtf((float)t->ne[0]);
  case 1:
    return 0.1f;
  case 2:
    return 0.1f;
  default: /* Gemma 1: see mean_of */
    return (strcmp(p->arch, "gemma") ? 3.0f : 0.1f) / sqrtf((float)p->n_embd);
  }
}

/* Mean of a tensor's random values: norms are around 1, except Gemma 2/3's
 * post-attention and post-feed-forward norms, around 2 sqrt(n_embd / (2
 * n_layer)), and Gemma 1's output norm, around 30. Gemma scales the (tied)
 * token embeddings by sqrt(n_embd) into the residual stream: with
 * unit-sized layer outputs the input token's own embedding would dominate
 * the final hidden state, and every position would predict its own token
 * with probability ~1 (a golden test of nothing). Gemma 2/3: layer outputs
 * this large keep the distributions spread; Gemma 1 (no post-norms):
 * embeddings 30x smaller than other fixtures' (std_of), and the output norm
 * 30x larger to give the logits their usual spread. */
static float mean_of(const tspec *t, const fixture_params *p) {
  if (t->kind != 1)
    return 0.0f;
  if (has_post_norms(p) && strstr(t->name, ".post_"))
    return 2.0f * sqrtf((float)p->n_embd / (2.0f * (float)p->n_layer));
  if (!strcmp(p->arch, "gemma") && !strcmp(t->name, "output_norm.weight"))
    return 30.0f;
  return 1.0f;
}

static int write_tensor_data(gguf_writer *w, const fixture_params *p,
                             const tspec *t, int idx, char *err,
                             size_t errlen) {
  const int64_t ne0 = t->ne[0], rows = t->ne[1];
  const size_t rs = qtype_row_size(t->type, ne0);
  const int64_t chunk = rows < 64 ? rows : 64;
  float *x = malloc((size_t)(ne0 * chunk) * sizeof *x);
  uint8_t *q = malloc(rs * (size_t)chunk);
  if (!x || !q) {
    free(x);
    free(q);
    return fail(err, errlen, "out of memory");
  }
  uint64_t s = p->seed * 0x2545f4914f6cdd1dull +
               (uint64_t)(idx + 1) * 0x9e3779b97f4a7c15ull;
  splitmix64(&s);
  const float sd = std_of(t, p), mean = mean_of(t, p);
  int rc = 0;
  for (int64_t r = 0; r < rows && !rc; r += chunk) {
    const int64_t nr = rows - r < chunk ? rows - r : chunk;
    for (int64_t i = 0; i < nr * ne0; i++)
      x[i] = mean + sd * randn(&s);
    for (int64_t i = 0; i < nr; i++)
      q_quant_row(t->type, x + i * ne0, q + (size_t)i * rs, ne0);
    rc = gguf_w_data(w, q, rs * (size_t)nr, err, errlen);
  }
  free(x);
  free(q);
  return rc;
}

/* ==== entry point ======================================================= */

int fixture_write(const fixture_params *p, const char *path, char *err,
                  size_t errlen) {
  if (fixture_validate(p, err, errlen))
    return -1;
  vocab v;
  int rc = p->tokenizer == FIXTURE_TOK_SPM
               ? build_spm(&v, p->n_vocab, is_gemma(p))
               : build_bpe(&v, p->n_vocab, p->bpe_pre, p->fim);
  if (rc || v.n != p->n_vocab) {
    vocab_free(&v);
    return fail(err, errlen, "cannot build a vocabulary of %d tokens",
                p->n_vocab);
  }
  const int max_t = 3 + p->n_layer * 14;
  tspec *t = calloc((size_t)max_t, sizeof *t);
  gguf_writer *w = gguf_writer_new();
  FILE *fp = NULL;
  if (!t || !w) {
    rc = fail(err, errlen, "out of memory");
    goto done;
  }
  const int nt = build_tensors(p, t);
  if (put_hparams(w, p) || put_vocab(w, p, &v)) {
    rc = fail(err, errlen, "cannot encode metadata");
    goto done;
  }
  for (int i = 0; i < nt; i++)
    if (gguf_w_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne) < 0) {
      rc = fail(err, errlen, "cannot declare tensor '%s'", t[i].name);
      goto done;
    }
  if (!(fp = fopen(path, "wb"))) {
    rc = fail(err, errlen, "%s: cannot create", path);
    goto done;
  }
  rc = gguf_w_begin(w, fp, err, errlen);
  for (int i = 0; i < nt && !rc; i++)
    rc = write_tensor_data(w, p, &t[i], i, err, errlen);
  if (!rc)
    rc = gguf_w_finish(w, err, errlen);
done:
  if (fp && fclose(fp) && !rc)
    rc = fail(err, errlen, "%s: write failed", path);
  if (fp && rc)
    unlink(path); /* no half-written model left behind */
  gguf_writer_free(w);
  free(t);
  vocab_free(&v);
  return rc;
}
