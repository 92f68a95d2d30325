/* tokenizer.c: GGUF vocabularies -> token ids and back, following llama.cpp's
 * llama-vocab.cpp behaviour token for token (see tokenizer.h).
 *
 * Sections: string hash map; vocabulary building (attributes, special ids,
 * end-of-generation set, pre-tokenizer regexes, piece cache); special-token
 * splitting; SentencePiece; byte-level BPE; encode; pieces and decoding;
 * streaming detokenizer; GGUF loading.
 *
 * Knows the tokenizer.ggml.* GGUF keys; nothing about models, HTTP or JSON. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer.h"

#include <ctype.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/unicode.h"

/* Token attributes (bit set), as llama.cpp derives them from token types. */
enum {
  A_UNKNOWN = 1 << 0,
  A_UNUSED = 1 << 1,
  A_NORMAL = 1 << 2,
  A_CONTROL = 1 << 3,
  A_USER = 1 << 4,
  A_BYTE = 1 << 5,
  A_LSTRIP = 1 << 6,
  A_RSTRIP = 1 << 7,
};

#define MAX_RE 5

/* ======================= string hash map ======================= */

/* Open addressing over ids into a (blob, off, len) string table; the table
 * owns nothing but its slots. Invariant: slots hold -1 or a valid index. */
typedef struct {
  int32_t *slots;
  uint32_t mask;
  const char *blob;
  const uint32_t *off, *len;
} strmap;

static uint32_t fnv_step(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}
#define FNV_INIT 2166136261u

static int strmap_init(strmap *m, int n, const char *blob, const uint32_t *off,
                       const uint32_t *len) {
  uint32_t cap = 16;
  while (cap < (uint32_t)n * 2u + 16u)
    cap <<= 1;
  m->slots = malloc(cap * sizeof *m->slots);
  if (!m->slots)
    return -1;
  memset(m->slots, 0xff, cap * sizeof *m->slots);
  m->mask = cap - 1;
  m->blob = blob;
  m->off = off;
  m->len = len;
  return 0;
}

/* Slot of key a + sep + b (sep < 0: none): the slot holding it or the empty
 * slot where it would go. */
static uint32_t strmap_slot(const strmap *m, const char *a, size_t an, int sep,
                            const char *b, size_t bn) {
  uint32_t h = fnv_step(FNV_INIT, a, an);
  char sc = (char)sep;
  if (sep >= 0)
    h = fnv_step(h, &sc, 1);
  h = fnv_step(h, b, bn);
  size_t kn = an + bn + (sep >= 0);
  for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
    int32_t id = m->slots[i];
    if (id < 0)
      return i;
    if (m->len[id] != kn)
      continue;
    const char *k = m->blob + m->off[id];
    if (memcmp(k, a, an) == 0 && (sep < 0 || k[an] == sc) &&
        memcmp(k + an + (sep >= 0), b, bn) == 0)
      return i;
  }
}

static int32_t strmap_get2(const strmap *m, const char *a, size_t an, int sep,
                           const char *b, size_t bn) {
  return m->slots[strmap_slot(m, a, an, sep, b, bn)];
}

static int32_t strmap_get(const strmap *m, const char *s, size_t n) {
  return strmap_get2(m, s, n, -1, "", 0);
}

/* Inserts id under its own string; replace = 1 lets a later id win (as
 * llama.cpp's token_to_id[word] = i), 0 keeps the first (bpe_ranks.emplace). */
static void strmap_put(strmap *m, int32_t id, int replace) {
  uint32_t s = strmap_slot(m, m->blob + m->off[id], m->len[id], -1, "", 0);
  if (m->slots[s] < 0 || replace)
    m->slots[s] = id;
}

/* ======================= vocabulary ======================= */

/* Pre-tokenizer families: which regexes split text before BPE. */
enum pre_family {
  PRE_DEFAULT,
  PRE_GPT2,
  PRE_LLAMA3,
  PRE_QWEN2,
  PRE_DEEPSEEK_CODER,
  PRE_FALCON,
  PRE_STARCODER,
  PRE_OTHER,
};

struct tok_vocab {
  int kind;
  int pre;
  int n;
  char *blob; /* token texts, each NUL-terminated */
  uint32_t *off, *len;
  float *score;
  uint8_t *attr;
  strmap map; /* text -> id */
  /* byte-level BPE merges: "left right" -> rank */
  char *mblob;
  uint32_t *moff, *mlen;
  int n_merges;
  strmap mmap;
  /* pieces (token -> bytes) cached at build, as llama.cpp does */
  char *pblob;
  uint32_t *poff, *plen;
  int32_t bos, eos, eot, eom, unk, sep, pad, mask;
  int add_bos, add_eos, add_sep, add_space_prefix, ignore_merges, clean_spaces;
  int max_token_len; /* bytes of the longest token text (WordPiece) */
  int32_t *eog;
  int n_eog;
  int32_t *special; /* control/user-defined/unknown ids, longest text first */
  int n_special;
  int32_t byte_tok[256]; /* SPM byte fallback ids (-1 absent) */
  /* SPM: fingerprints of every adjacent character pair inside any token
   * (0 = empty slot). Where two characters of the text form a pair absent
   * here, no merge can cross: the text is cut there and the pieces merged
   * independently, with the same result (see spm_tokenize). */
  uint32_t *pairs;
  uint32_t pairs_mask;
  char bl_utf8[256][3]; /* BPE: byte -> its byte-level character */
  uint8_t bl_len[256];
  pcre2_code *re[MAX_RE];
  int n_re;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

void tok_spec_init(tok_spec *s) {
  memset(s, 0, sizeof *s);
  s->bos = s->eos = s->eot = s->eom = s->unk = s->sep = s->pad = s->mask = -1;
  s->add_bos = s->add_eos = s->add_sep = s->add_space_prefix = -1;
  s->remove_extra_space = -1;
}

void tok_free(tok_vocab *v) {
  if (!v)
    return;
  for (int i = 0; i < v->n_re; i++)
    pcre2_code_free(v->re[i]);
  free(v->blob);
  free(v->off);
  free(v->len);
  free(v->score);
  free(v->attr);
  free(v->map.slots);
  free(v->mblob);
  free(v->moff);
  free(v->mlen);
  free(v->mmap.slots);
  free(v->pblob);
  free(v->poff);
  free(v->plen);
  free(v->eog);
  free(v->special);
  free(v->pairs);
  free(v);
}

/* Copies n strings into one blob with offsets/lengths (NUL after each). */
static int copy_strings(int n, const char *const *s, const size_t *l,
                        char **blob, uint32_t **off, uint32_t **len) {
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += l[i] + 1;
  if (total > UINT32_MAX)
    return -1;
  *blob = malloc(total ? total : 1);
  *off = malloc(((size_t)n + 1) * sizeof **off);
  *len = malloc(((size_t)n + 1) * sizeof **len);
  if (!*blob || !*off || !*len)
    return -1;
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    memcpy(*blob + o, s[i], l[i]);
    (*blob)[o + l[i]] = 0;
    (*off)[i] = (uint32_t)o;
    (*len)[i] = (uint32_t)l[i];
    o += l[i] + 1;
  }
  return 0;
}

static const char *vtext(const tok_vocab *v, int32_t id) {
  return v->blob + v->off[id];
}

static uint8_t attr_of_type(int32_t t) {
  switch (t) {
  case TOK_TYPE_UNKNOWN:
    return A_UNKNOWN;
  case TOK_TYPE_UNUSED:
    return A_UNUSED;
  case TOK_TYPE_NORMAL:
    return A_NORMAL;
  case TOK_TYPE_CONTROL:
    return A_CONTROL;
  case TOK_TYPE_USER_DEFINED:
    return A_USER;
  case TOK_TYPE_BYTE:
    return A_BYTE;
  default:
    return 0; /* undefined */
  }
}

/* ---- pre-tokenizers ---- */

#define RE_GPT2                                                                \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| "                              \
  "?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3_N(N)                                                         \
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"                 \
  "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" N                                     \
  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define RE_CONTRACT "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"
#define RE_UP "((?=[\\p{L}])([^a-z]))"
#define RE_LO "((?=[\\p{L}])([^A-Z]))"
#define RE_CASED(SUFFIX, NUM)                                                  \
  "[^\\r\\n\\p{L}\\p{N}]?" RE_UP "*" RE_LO "+" SUFFIX                          \
  "|[^\\r\\n\\p{L}\\p{N}]?" RE_UP "+" RE_LO "*" SUFFIX "|\\p{N}" NUM           \
  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
  const char *names; /* space-separated tokenizer.ggml.pre values */
  int family;
  const char *re[MAX_RE];
  int ignore_merges, add_bos, clean_spaces; /* -1: leave default */
} pre_def;

/* Every entry, alias included, gives the same ids as llama.cpp (through
 * node-llama-cpp 3.21.1) on a 1 MB mixed text; names llama.cpp knows but
 * that are not here (seed-coder, chameleon, superbpe, deepseek-llm, ...)
 * are refused by name. */
static const pre_def PRE_DEFS[] = {
    {"default",
     PRE_DEFAULT,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     0,
     -1,
     1},
    {"gpt-2 phi-2 jina-es jina-de gigachat jina-v1-en jina-v2-es jina-v2-de "
     "a.x-4.0 mellum mpt olmo jais trillion exaone4 granite-docling",
     PRE_GPT2,
     {RE_GPT2},
     0,
     -1,
     1},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2",
     PRE_LLAMA3,
     {RE_LLAMA3_N("{1,3}")},
     1,
     1,
     1},
    {"dbrx smaug-bpe kimi-k2 glm4",
     PRE_LLAMA3,
     {RE_LLAMA3_N("{1,3}")},
     0,
     -1,
     1},
    {"qwen2 deepseek-r1-qwen qwen35", PRE_QWEN2, {RE_LLAMA3_N("")}, 0, -1, 0},
    {"stablelm2 hunyuan grok-2 solar-open",
     PRE_QWEN2,
     {RE_LLAMA3_N("")},
     0,
     -1,
     1},
    {"deepseek-coder",
     PRE_DEEPSEEK_CODER,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-"
      "\xed\x9f\xbf]+",
      "\\p{N}"},
     0,
     -1,
     0},
    {"falcon",
     PRE_FALCON,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"},
     0,
     -1,
     1},
    {"starcoder refact codeshell exaone minerva-7b",
     PRE_STARCODER,
     {"\\p{N}", RE_GPT2},
     0,
     -1,
     1},
    {"smollm command-r", PRE_STARCODER, {"\\p{N}", RE_GPT2}, 0, -1, 0},
    /* llama.cpp's rewrite of the GPT-4o / Tekken patterns: an "upper" letter
     * is a letter other than a-z, a "lower" one a letter other than A-Z. */
    {"gpt-4o llama4 minimax-m2",
     PRE_OTHER,
     {RE_CASED("(?:" RE_CONTRACT ")?", "{1,3}")},
     0,
     -1,
     1},
    {"tekken", PRE_OTHER, {RE_CASED("", "")}, 1, -1, 0},
    {"deepseek-v3 hunyuan-dense joyai-llm",
     PRE_OTHER,
     {"\\p{N}{1,3}",
      "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-"
      "\xe3\x83\xbf]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
      "[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     0,
     -1,
     0},
    {"chatglm-bpe", PRE_LLAMA3, {RE_LLAMA3_N("{1,3}")}, 0, -1, 1},
    {"megrez bailingmoe", PRE_QWEN2, {RE_LLAMA3_N("")}, 0, -1, 1},
    {"bloom gpt3-finnish",
     PRE_OTHER,
     {" ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5"
      "\xa4\xdb\x94\xd8\x8c)]+"},
     0,
     -1,
     1},
    {"poro-chat",
     PRE_OTHER,
     {" ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5"
      "\xa4\xdb\x94\xd8\x8c)]+"},
     0,
     -1,
     1},
    {"viking",
     PRE_OTHER,
     {" ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5"
      "\xa4\xdb\x94\xd8\x8c)]+",
      "\\p{N}"},
     0,
     -1,
     1},
};

static int name_in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ' ');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == n && memcmp(p, name, n) == 0)
      return 1;
    if (!e)
      break;
    p = e + 1;
  }
  return 0;
}

static const pre_def *find_pre(const char *name) {
  if (!name || !*name)
    name = "default";
  for (size_t i = 0; i < sizeof PRE_DEFS / sizeof *PRE_DEFS; i++)
    if (name_in_list(PRE_DEFS[i].names, name))
      return &PRE_DEFS[i];
  return NULL;
}

static int compile_pre(tok_vocab *v, const pre_def *d, char *err,
                       size_t errlen) {
  for (int i = 0; i < MAX_RE && d->re[i]; i++) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!re) {
      char msg[128];
      pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
      set_err(err, errlen, "pre-tokenizer regex %d: %s at %zu", i, msg,
              (size_t)eo);
      return TOK_ERR_FORMAT;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    v->re[v->n_re++] = re;
  }
  return TOK_OK;
}

/* ---- special ids, end-of-generation set ---- */

static int32_t valid_id(const tok_vocab *v, int32_t id) {
  return id >= 0 && id < v->n ? id : -1;
}

static int32_t find_text(const tok_vocab *v, const char *s) {
  return strmap_get(&v->map, s, strlen(s));
}

/* ---- special tokens recognized by their text, as llama.cpp does ---- */

static const char *const EOT_NAMES[] = {
    "<|eot_id|>",    "<|im_end|>",         "<|end|>", "<end_of_turn>",
    "<|endoftext|>", "<|end_of_text|>",    "<EOT>",   "_<EOT>",
    "[EOT]",         "<end_of_utterance>", NULL};
static const char *const EOM_NAMES[] = {"<|eom_id|>", NULL};
static const char *const FIM_PRE[] = {"<|fim_prefix|>",
                                      "<fim-prefix>",
                                      "<fim_prefix>",
                                      "<PRE>",
                                      "<|code_prefix|>",
                                      "<|prefix|>",
                                      NULL};
static const char *const FIM_SUF[] = {"<|fim_suffix|>",
                                      "<fim-suffix>",
                                      "<fim_suffix>",
                                      "<SUF>",
                                      "<|code_suffix|>",
                                      "<|suffix|>",
                                      NULL};
static const char *const FIM_MID[] = {"<|fim_middle|>",
                                      "<fim-middle>",
                                      "<fim_middle>",
                                      "<MID>",
                                      "<|code_middle|>",
                                      "<|middle|>",
                                      NULL};
static const char *const FIM_PAD[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                      "<PAD>",       "[PAD]",     NULL};
static const char *const FIM_REP[] = {"<|fim_repo|>", "<|repo_name|>",
                                      "<fim-repo>",   "<REPO>",
                                      "<reponame>",   NULL};
static const char *const FIM_SEP[] = {"<|file_sep|>", NULL};
static const char *const EOG_NAMES[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        NULL};
/* gpt-oss: always rendered, split even without parse_special */
static const char *const RENDER_ALWAYS[] = {"<|channel|>", "<|message|>",
                                            "<|start|>", "<|constrain|>", NULL};

static void force_control(tok_vocab *v, int32_t id) {
  if (id >= 0)
    v->attr[id] |= A_CONTROL;
}

/* The first name of the list present in the vocabulary, forced to control
 * (llama.cpp takes the first in its hash-map order; here the list order). */
static int32_t detect_one(tok_vocab *v, const char *const *names) {
  for (size_t i = 0; names[i]; i++) {
    int32_t id = find_text(v, names[i]);
    if (id >= 0) {
      force_control(v, id);
      return id;
    }
  }
  return -1;
}

static int add_eog(tok_vocab *v, int32_t id) {
  if (id < 0)
    return 0;
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == id)
      return 0;
  int32_t *e = realloc(v->eog, ((size_t)v->n_eog + 1) * sizeof *e);
  if (!e)
    return -1;
  v->eog = e;
  v->eog[v->n_eog++] = id;
  return 0;
}

static void remove_eog(tok_vocab *v, int32_t id) {
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == id) {
      v->eog[i] = v->eog[--v->n_eog];
      return;
    }
}

/* id of text when it is in the end-of-generation set, else -1. */
static int32_t eog_text(const tok_vocab *v, const char *text) {
  int32_t id = find_text(v, text);
  return id >= 0 && tok_is_eog(v, id) ? id : -1;
}

/* eot/eom/FIM ids, the end-of-generation set and its exceptions. */
static int build_eog(tok_vocab *v) {
  int32_t pad, rep, sep;
  if (v->eot < 0)
    v->eot = detect_one(v, EOT_NAMES);
  if (v->eom < 0)
    v->eom = detect_one(v, EOM_NAMES);
  detect_one(v, FIM_PRE);
  detect_one(v, FIM_SUF);
  detect_one(v, FIM_MID);
  pad = detect_one(v, FIM_PAD);
  rep = detect_one(v, FIM_REP);
  sep = detect_one(v, FIM_SEP);
  if (add_eog(v, pad) || add_eog(v, rep) || add_eog(v, sep))
    return -1;
  for (size_t i = 0; EOG_NAMES[i]; i++) {
    int32_t id = find_text(v, EOG_NAMES[i]);
    force_control(v, id);
    if (add_eog(v, id))
      return -1;
  }
  for (size_t i = 0; RENDER_ALWAYS[i]; i++) {
    int32_t id = find_text(v, RENDER_ALWAYS[i]);
    if (id >= 0)
      v->attr[id] = A_USER;
  }
  if (add_eog(v, v->eos) || add_eog(v, v->eot) || add_eog(v, v->eom))
    return -1;
  /* harmony / solar-open: "<|end|>" ends a message, not the generation */
  int32_t end = eog_text(v, "<|end|>");
  int call = eog_text(v, "<|call|>") >= 0 || eog_text(v, "<|calls|>") >= 0;
  if (end >= 0 && call &&
      (eog_text(v, "<|return|>") >= 0 || eog_text(v, "<|flush|>") >= 0)) {
    remove_eog(v, end);
    v->attr[end] = A_USER;
  }
  /* gemma4: "</s>" is text there */
  int32_t s_id = eog_text(v, "</s>");
  if (s_id >= 0 && eog_text(v, "<|tool_response>") >= 0) {
    remove_eog(v, s_id);
    v->attr[s_id] = A_NORMAL;
  }
  return 0;
}

/* (text length, id) packed so that ascending order is longest text first,
 * then lowest id: qsort needs no context. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int build_special(tok_vocab *v) {
  uint64_t *keys = malloc(((size_t)v->n + 1) * sizeof *keys);
  v->special = malloc(((size_t)v->n + 1) * sizeof *v->special);
  if (!keys || !v->special) {
    free(keys);
    return -1;
  }
  for (int32_t i = 0; i < v->n; i++)
    if (v->attr[i] & (A_CONTROL | A_USER | A_UNKNOWN))
      keys[v->n_special++] =
          ((uint64_t)(UINT32_MAX - v->len[i]) << 32) | (uint32_t)i;
  qsort(keys, (size_t)v->n_special, sizeof *keys, cmp_u64);
  for (int i = 0; i < v->n_special; i++)
    v->special[i] = (int32_t)(uint32_t)keys[i];
  free(keys);
  return 0;
}

/* Phi-3's special tokens swallow the whitespace after them (llama.cpp keys
 * this on general.name). */
static void apply_name_hacks(tok_vocab *v, const char *name) {
  if (!name)
    return;
  char low[64];
  size_t n = strlen(name);
  if (n >= sizeof low)
    n = sizeof low - 1;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)tolower((unsigned char)name[i]);
  low[n] = 0;
  if (!strstr(low, "phi-3") && !strstr(low, "phi3"))
    return;
  for (int i = 0; i < v->n_special; i++)
    v->attr[v->special[i]] |= A_RSTRIP;
  int32_t id = find_text(v, "</s>");
  if (id >= 0)
    v->attr[id] |= A_RSTRIP;
  static const char *const off[] = {"<unk>", "<s>", "<|endoftext|>"};
  for (size_t i = 0; i < 3; i++) {
    id = find_text(v, off[i]);
    if (id >= 0)
      v->attr[id] &= (uint8_t)~A_RSTRIP;
  }
}

/* ---- pieces ---- */

/* SPM: "▁" -> " " into out (room: len bytes); returns length. */
static size_t unescape_ws(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
      out[o++] = ' ';
      i += 3;
    } else
      out[o++] = s[i++];
  }
  return o;
}

/* BPE: byte-level characters back to bytes; unknown characters render as
 * llama.cpp's "[UNK_BYTE_0x..<text>]". out needs room for n * (20 + n). */
static size_t bytelevel_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int l = utf8_decode(s + i, n - i, &cp);
    int b = l > 0 ? bytelevel_byte(cp) : -1;
    if (l <= 0)
      l = 1;
    if (b >= 0) {
      out[o++] = (char)b;
    } else {
      o += (size_t)sprintf(out + o, "[UNK_BYTE_0x");
      for (int k = 0; k < l; k++)
        o += (size_t)sprintf(out + o, "%02x", (unsigned char)s[i + k]);
      memcpy(out + o, s, n);
      o += n;
      out[o++] = ']';
    }
    i += (size_t)l;
  }
  return o;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The piece of token i, special tokens included (the caller filters). */
static size_t make_piece(const tok_vocab *v, int32_t i, char *out) {
  const char *t = vtext(v, i);
  size_t n = v->len[i];
  uint8_t a = v->attr[i];
  if (a & (A_UNKNOWN | A_CONTROL | A_USER)) {
    memcpy(out, t, n);
    return n;
  }
  if (v->kind == TOK_KIND_BPE)
    return (a & A_NORMAL) ? bytelevel_decode(t, n, out) : 0;
  if (a & A_NORMAL)
    return unescape_ws(t, n, out);
  if ((a & A_BYTE) && n == 6) {
    int h = hexval(t[3]), l = hexval(t[4]);
    out[0] = (char)((h < 0 ? 0 : h) * 16 + (l < 0 ? 0 : l));
    return 1;
  }
  return 0;
}

static int build_pieces(tok_vocab *v) {
  size_t cap = 0;
  for (int i = 0; i < v->n; i++) {
    size_t l = v->len[i];
    cap += v->kind == TOK_KIND_BPE ? l * (21 + l) + 1 : l + 1;
  }
  char *tmp = malloc(cap ? cap : 1);
  v->poff = malloc(((size_t)v->n + 1) * sizeof *v->poff);
  v->plen = malloc(((size_t)v->n + 1) * sizeof *v->plen);
  if (!tmp || !v->poff || !v->plen) {
    free(tmp);
    return -1;
  }
  size_t o = 0;
  for (int i = 0; i < v->n; i++) {
    size_t l = make_piece(v, i, tmp + o);
    v->poff[i] = (uint32_t)o;
    v->plen[i] = (uint32_t)l;
    o += l;
  }
  v->pblob = realloc(tmp, o ? o : 1);
  if (!v->pblob)
    v->pblob = tmp;
  return 0;
}

/* Fingerprint of the character pair a (an bytes) + b (bn bytes); never 0.
 * Collisions only make a pair look present: fewer cuts, same result. */
static uint32_t pair_fp(const char *a, size_t an, const char *b, size_t bn) {
  uint32_t h = fnv_step(FNV_INIT, a, an);
  h = fnv_step(h ^ (uint32_t)an * 0x9E3779B1u, b, bn);
  return h ? h : 1;
}

static int pairs_has(const tok_vocab *v, uint32_t fp) {
  for (uint32_t i = fp & v->pairs_mask;; i = (i + 1) & v->pairs_mask) {
    if (v->pairs[i] == fp)
      return 1;
    if (v->pairs[i] == 0)
      return 0;
  }
}

static void pairs_add(tok_vocab *v, uint32_t fp) {
  uint32_t i = fp & v->pairs_mask;
  while (v->pairs[i] != 0 && v->pairs[i] != fp)
    i = (i + 1) & v->pairs_mask;
  v->pairs[i] = fp;
}

/* Calls fn on each adjacent character pair of t[0..n) (characters split as
 * the tokenizer splits them). */
static void each_pair(tok_vocab *v, const char *t, size_t n,
                      void (*fn)(tok_vocab *, uint32_t), size_t *count) {
  size_t prev = 0, pl = 0;
  for (size_t o = 0; o < n;) {
    size_t l = (size_t)utf8_len_lead((unsigned char)t[o]);
    if (l > n - o)
      l = n - o;
    if (o > 0) {
      if (fn)
        fn(v, pair_fp(t + prev, pl, t + o, l));
      if (count)
        (*count)++;
    }
    prev = o;
    pl = l;
    o += l;
  }
}

static int build_pairs(tok_vocab *v) {
  size_t total = 0;
  for (int i = 0; i < v->n; i++)
    each_pair(v, vtext(v, i), v->len[i], NULL, &total);
  uint32_t cap = 1024;
  while (cap < total * 2 && cap < (1u << 30))
    cap <<= 1;
  v->pairs = calloc(cap, sizeof *v->pairs);
  if (!v->pairs)
    return -1;
  v->pairs_mask = cap - 1;
  for (int i = 0; i < v->n; i++)
    each_pair(v, vtext(v, i), v->len[i], pairs_add, NULL);
  return 0;
}

static void build_byte_tables(tok_vocab *v) {
  for (int b = 0; b < 256; b++) {
    char hex[8];
    snprintf(hex, sizeof hex, "<0x%02X>", b);
    v->byte_tok[b] = find_text(v, hex);
    if (v->byte_tok[b] < 0) {
      char c = (char)b;
      v->byte_tok[b] = strmap_get(&v->map, &c, 1);
    }
    v->bl_len[b] =
        (uint8_t)utf8_encode(bytelevel_cp((unsigned char)b), v->bl_utf8[b]);
  }
}

static int kind_of_model(const char *model) {
  if (!model)
    return 0;
  if (!strcmp(model, "llama"))
    return TOK_KIND_SPM;
  if (!strcmp(model, "gpt2"))
    return TOK_KIND_BPE;
  if (!strcmp(model, "bert"))
    return TOK_KIND_WPM;
  return 0;
}

/* Token texts, with empty ones named "[EMPTY_<id>]" as llama.cpp does. */
static int copy_token_texts(tok_vocab *v, const tok_spec *s) {
  int n_empty = 0;
  for (int i = 0; i < v->n; i++)
    n_empty += s->text_len[i] == 0;
  if (n_empty == 0)
    return copy_strings(v->n, s->text, s->text_len, &v->blob, &v->off, &v->len);
  const char **t = malloc((size_t)v->n * sizeof *t);
  size_t *l = malloc((size_t)v->n * sizeof *l);
  char *names = malloc((size_t)n_empty * 24);
  int rc = -1;
  if (t && l && names) {
    char *p = names;
    for (int i = 0; i < v->n; i++) {
      t[i] = s->text[i];
      l[i] = s->text_len[i];
      if (l[i] == 0) {
        l[i] = (size_t)snprintf(p, 24, "[EMPTY_%d]", i);
        t[i] = p;
        p += 24;
      }
    }
    rc = copy_strings(v->n, t, l, &v->blob, &v->off, &v->len);
  }
  free(t);
  free(l);
  free(names);
  return rc;
}

static int build_tokens(tok_vocab *v, const tok_spec *s) {
  v->n = s->n_tokens;
  if (copy_token_texts(v, s))
    return -1;
  v->score = calloc((size_t)v->n + 1, sizeof *v->score);
  v->attr = calloc((size_t)v->n + 1, 1);
  if (!v->score || !v->attr)
    return -1;
  for (int i = 0; i < v->n; i++) {
    if ((int)v->len[i] > v->max_token_len)
      v->max_token_len = (int)v->len[i];
    v->score[i] = s->scores ? s->scores[i] : 0.0f;
    v->attr[i] = s->types ? attr_of_type(s->types[i]) : A_NORMAL;
  }
  if (strmap_init(&v->map, v->n, v->blob, v->off, v->len))
    return -1;
  for (int i = 0; i < v->n; i++)
    strmap_put(&v->map, i, 1);
  return 0;
}

/* Merges "a b": stored whole; looked up as (left, ' ', right). llama.cpp
 * splits at the first space after the first byte; a merge whose split point
 * differs (a space as first byte) is stored under the same bytes, which is
 * what the lookup compares. */
static int build_merges(tok_vocab *v, const tok_spec *s) {
  v->n_merges = s->n_merges;
  if (copy_strings(v->n_merges, s->merges, s->merges_len, &v->mblob, &v->moff,
                   &v->mlen))
    return -1;
  if (strmap_init(&v->mmap, v->n_merges, v->mblob, v->moff, v->mlen))
    return -1;
  for (int i = 0; i < v->n_merges; i++) {
    const char *m = v->mblob + v->moff[i];
    if (v->mlen[i] < 2 || !memchr(m + 1, ' ', v->mlen[i] - 1))
      continue;
    strmap_put(&v->mmap, i, 0);
  }
  return 0;
}

static void set_defaults(tok_vocab *v, const tok_spec *s, const pre_def *pd) {
  v->eot = v->eom = v->sep = v->pad = v->mask = -1;
  if (v->kind == TOK_KIND_SPM) {
    v->bos = 1, v->eos = 2, v->unk = 0;
    v->add_bos = 1, v->add_space_prefix = 1;
  } else if (v->kind == TOK_KIND_WPM) { /* BERT: [CLS] text [SEP] */
    v->bos = 101, v->eos = -1, v->unk = 100, v->sep = 102, v->pad = 0;
    v->mask = 103;
    v->add_bos = 1, v->add_sep = 1, v->clean_spaces = 1;
  } else {
    v->bos = 11, v->eos = 11, v->unk = -1;
    v->add_bos = pd && pd->add_bos > 0;
    v->ignore_merges = pd && pd->ignore_merges;
    v->clean_spaces = pd ? pd->clean_spaces : 1;
  }
#define TAKE(f)                                                                \
  if (s->f >= 0 && s->f < v->n)                                                \
    v->f = s->f;
  TAKE(bos)
  TAKE(eos)
  TAKE(eot)
  TAKE(eom)
  TAKE(unk)
  TAKE(sep)
  TAKE(pad)
  TAKE(mask)
#undef TAKE
  if (s->add_bos >= 0)
    v->add_bos = s->add_bos;
  if (s->add_eos >= 0)
    v->add_eos = s->add_eos;
  if (s->add_space_prefix >= 0)
    v->add_space_prefix = s->add_space_prefix;
  if (s->add_sep >= 0)
    v->add_sep = s->add_sep;
  v->bos = valid_id(v, v->bos);
  v->sep = valid_id(v, v->sep);
  v->eos = valid_id(v, v->eos);
  v->unk = valid_id(v, v->unk);
}

static int build_all(tok_vocab *v, const tok_spec *s, const pre_def *pd,
                     char *err, size_t errlen) {
  if (build_tokens(v, s))
    return TOK_ERR_NOMEM;
  if (v->kind == TOK_KIND_BPE && build_merges(v, s))
    return TOK_ERR_NOMEM;
  set_defaults(v, s, pd);
  if (build_eog(v) || build_special(v) || build_pieces(v))
    return TOK_ERR_NOMEM;
  apply_name_hacks(v, s->name);
  build_byte_tables(v);
  if (v->kind == TOK_KIND_SPM && build_pairs(v))
    return TOK_ERR_NOMEM;
  if (v->kind == TOK_KIND_BPE)
    return compile_pre(v, pd, err, errlen);
  return TOK_OK;
}

int tok_build(const tok_spec *s, tok_vocab **out, char *err, size_t errlen) {
  *out = NULL;
  int kind = kind_of_model(s->model);
  if (!kind) {
    set_err(err, errlen, "unknown tokenizer model '%s'",
            s->model ? s->model : "(none)");
    return TOK_ERR_UNSUPPORTED;
  }
  if (kind == TOK_KIND_WPM && ucp_load(err, errlen) != 0)
    return TOK_ERR_UNSUPPORTED; /* WordPiece needs ICU's properties */
  const pre_def *pd = NULL;
  if (kind == TOK_KIND_BPE && !(pd = find_pre(s->pre))) {
    set_err(err, errlen, "unknown pre-tokenizer '%s'", s->pre);
    return TOK_ERR_UNSUPPORTED;
  }
  if (s->n_tokens <= 0 || !s->text || !s->text_len ||
      (s->n_merges > 0 && (!s->merges || !s->merges_len))) {
    set_err(err, errlen, "vocabulary has no tokens");
    return TOK_ERR_FORMAT;
  }
  tok_vocab *v = calloc(1, sizeof *v);
  if (!v)
    return TOK_ERR_NOMEM;
  v->kind = kind;
  v->pre = pd ? pd->family : PRE_DEFAULT;
  int rc = build_all(v, s, pd, err, errlen);
  if (rc != TOK_OK) {
    if (rc == TOK_ERR_NOMEM)
      set_err(err, errlen, "out of memory");
    tok_free(v);
    return rc;
  }
  *out = v;
  return TOK_OK;
}

/* ---- queries ---- */

int tok_n_vocab(const tok_vocab *v) {
  return v->n;
}
int tok_kind_of(const tok_vocab *v) {
  return v->kind;
}
int32_t tok_bos(const tok_vocab *v) {
  return v->bos;
}
int32_t tok_eos(const tok_vocab *v) {
  return v->eos;
}
int32_t tok_eot(const tok_vocab *v) {
  return v->eot;
}
int32_t tok_unk(const tok_vocab *v) {
  return v->unk;
}
int32_t tok_pad(const tok_vocab *v) {
  return v->pad;
}
int32_t tok_sep(const tok_vocab *v) {
  return v->sep;
}
int tok_add_bos(const tok_vocab *v) {
  return v->add_bos && v->bos >= 0;
}
int tok_add_eos(const tok_vocab *v) {
  return v->add_eos && v->eos >= 0;
}

int tok_is_eog(const tok_vocab *v, int32_t id) {
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == id)
      return 1;
  return 0;
}

int tok_is_control(const tok_vocab *v, int32_t id) {
  return id >= 0 && id < v->n && (v->attr[id] & A_CONTROL) != 0;
}

int tok_type_of(const tok_vocab *v, int32_t id) {
  if (id < 0 || id >= v->n)
    return -1;
  uint8_t a = v->attr[id];
  if (a & A_CONTROL)
    return TOK_TYPE_CONTROL;
  if (a & A_USER)
    return TOK_TYPE_USER_DEFINED;
  if (a & A_UNKNOWN)
    return TOK_TYPE_UNKNOWN;
  if (a & A_UNUSED)
    return TOK_TYPE_UNUSED;
  if (a & A_BYTE)
    return TOK_TYPE_BYTE;
  if (a & A_NORMAL)
    return TOK_TYPE_NORMAL;
  return TOK_TYPE_UNDEFINED;
}

const char *tok_text(const tok_vocab *v, int32_t id, size_t *len) {
  if (id < 0 || id >= v->n)
    return NULL;
  if (len)
    *len = v->len[id];
  return vtext(v, id);
}

int32_t tok_find(const tok_vocab *v, const char *text, size_t len) {
  return strmap_get(&v->map, text, len);
}

/* ======================= output buffer ======================= */

/* Growable id list; on overflow of the caller's array we keep counting. */
typedef struct {
  int32_t *ids;
  int cap, n;
} idbuf;

static inline void push_id(idbuf *b, int32_t id) {
  if (b->n < b->cap)
    b->ids[b->n] = id;
  b->n++;
}

/* ======================= special-token splitting ======================= */

typedef struct {
  int32_t tok;     /* >= 0: a special token; -1: raw text */
  size_t off, len; /* raw text span */
} frag;

typedef struct {
  frag *f;
  int n, cap;
} fraglist;

static int frag_push(fraglist *l, int32_t tok, size_t off, size_t len) {
  if (l->n == l->cap) {
    int nc = l->cap ? l->cap * 2 : 16;
    frag *f = realloc(l->f, (size_t)nc * sizeof *f);
    if (!f)
      return -1;
    l->f = f;
    l->cap = nc;
  }
  l->f[l->n++] = (frag){tok, off, len};
  return 0;
}

/* Splits one raw span on every occurrence of special token id, honouring
 * its lstrip/rstrip attributes, appending the pieces to out. */
static int split_span(const tok_vocab *v, const char *text, frag in, int32_t id,
                      fraglist *out) {
  const char *st = vtext(v, id);
  size_t sl = v->len[id];
  size_t off = in.off, len = in.len;
  while (len >= sl) {
    const char *m = memmem(text + off, len, st, sl);
    if (!m)
      break;
    size_t mo = (size_t)(m - text);
    size_t left = mo - off;
    if (v->attr[id] & A_LSTRIP)
      while (left > 0 && isspace((unsigned char)text[off + left - 1]))
        left--;
    if (left > 0 && frag_push(out, -1, off, left))
      return -1;
    if (frag_push(out, id, 0, 0))
      return -1;
    size_t roff = mo + sl, rlen = off + len - roff;
    if (v->attr[id] & A_RSTRIP)
      while (rlen > 0 && isspace((unsigned char)text[roff]))
        roff++, rlen--;
    off = roff;
    len = rlen;
  }
  if (len > 0 && frag_push(out, -1, off, len))
    return -1;
  return 0;
}

/* llama.cpp's tokenizer_st_partition: special tokens, longest first, cut
 * the raw spans; control/unknown ones only when parse_special. */
static int partition(const tok_vocab *v, const char *text, size_t len,
                     int parse_special, fraglist *out) {
  fraglist a = {0}, b = {0};
  if (len > 0 && frag_push(&a, -1, 0, len))
    return -1;
  for (int k = 0; k < v->n_special; k++) {
    int32_t id = v->special[k];
    if (!parse_special && (v->attr[id] & (A_CONTROL | A_UNKNOWN)))
      continue;
    if (v->len[id] == 0)
      continue;
    b.n = 0;
    for (int i = 0; i < a.n; i++) {
      int rc = a.f[i].tok >= 0 ? frag_push(&b, a.f[i].tok, 0, 0)
                               : split_span(v, text, a.f[i], id, &b);
      if (rc) {
        free(a.f);
        free(b.f);
        return -1;
      }
    }
    fraglist t = a;
    a = b;
    b = t;
  }
  free(b.f);
  *out = a;
  return 0;
}

/* ======================= SentencePiece ======================= */

typedef struct {
  const char *text;
  int n, prev, next;
} sym;

typedef struct {
  int left, right;
  float score; /* SPM: higher first */
  int rank;    /* BPE: lower first */
  int size;
} bigram;

/* Binary heap of bigrams; before() is the heap order. */
typedef struct {
  bigram *h;
  int n, cap;
  int bpe;
} bheap;

static int bg_before(const bheap *q, const bigram *a, const bigram *b) {
  if (q->bpe) {
    if (a->rank != b->rank)
      return a->rank < b->rank;
  } else if (a->score != b->score)
    return a->score > b->score;
  return a->left < b->left;
}

static int heap_push(bheap *q, bigram g) {
  if (q->n == q->cap) {
    int nc = q->cap ? q->cap * 2 : 64;
    bigram *h = realloc(q->h, (size_t)nc * sizeof *h);
    if (!h)
      return -1;
    q->h = h;
    q->cap = nc;
  }
  int i = q->n++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!bg_before(q, &g, &q->h[p]))
      break;
    q->h[i] = q->h[p];
    i = p;
  }
  q->h[i] = g;
  return 0;
}

static bigram heap_pop(bheap *q) {
  bigram top = q->h[0], last = q->h[--q->n];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= q->n)
      break;
    if (c + 1 < q->n && bg_before(q, &q->h[c + 1], &q->h[c]))
      c++;
    if (!bg_before(q, &q->h[c], &last))
      break;
    q->h[i] = q->h[c];
    i = c;
  }
  if (q->n > 0)
    q->h[i] = last;
  return top;
}

/* Splits s[0..n) into UTF-8 characters as llama.cpp does (lengths from the
 * lead byte, clipped at the end). Returns the count; syms needs n slots. */
static int split_chars(const char *s, size_t n, sym *syms) {
  int k = 0;
  for (size_t o = 0; o < n;) {
    size_t l = (size_t)utf8_len_lead((unsigned char)s[o]);
    if (l > n - o)
      l = n - o;
    syms[k] = (sym){s + o, (int)l, k - 1, o + l == n ? -1 : k + 1};
    o += l;
    k++;
  }
  return k;
}

static int spm_try_bigram(const tok_vocab *v, sym *syms, bheap *q, int l,
                          int r) {
  if (l < 0 || r < 0)
    return 0;
  int32_t id =
      strmap_get(&v->map, syms[l].text, (size_t)(syms[l].n + syms[r].n));
  if (id < 0)
    return 0;
  return heap_push(q, (bigram){l, r, v->score[id], 0, syms[l].n + syms[r].n});
}

static void spm_emit(const tok_vocab *v, const sym *s, idbuf *out) {
  int32_t id = strmap_get(&v->map, s->text, (size_t)s->n);
  if (id >= 0) {
    push_id(out, id);
    return;
  }
  for (int i = 0; i < s->n; i++) {
    int32_t b = v->byte_tok[(unsigned char)s->text[i]];
    if (b < 0)
      b = v->unk; /* a vocabulary without that byte: [UNK], if any */
    if (b >= 0)
      push_id(out, b);
  }
}

/* Merges s[0..n) by score (llama.cpp llm_tokenizer_spm_session). */
static int spm_merge(const tok_vocab *v, const char *s, size_t n, sym *syms,
                     bheap *qp, idbuf *out) {
  if (n == 0)
    return 0;
  bheap q = *qp;
  q.n = 0;
  int ns = split_chars(s, n, syms), rc = 0;
  for (int i = 1; i < ns && !rc; i++)
    rc = spm_try_bigram(v, syms, &q, i - 1, i);
  while (q.n > 0 && !rc) {
    bigram g = heap_pop(&q);
    sym *l = &syms[g.left], *r = &syms[g.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != g.size)
      continue; /* stale */
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
      syms[r->next].prev = g.left;
    rc = spm_try_bigram(v, syms, &q, l->prev, g.left);
    if (!rc)
      rc = spm_try_bigram(v, syms, &q, g.left, l->next);
  }
  for (int i = 0; i != -1 && !rc && ns > 0; i = syms[i].next)
    spm_emit(v, &syms[i], out);
  *qp = q; /* keeps the grown heap storage for the next piece */
  return rc;
}

/* One SentencePiece session over already-escaped text. llama.cpp merges
 * the whole text in one priority queue; merges never cross a point whose
 * two neighbouring characters appear adjacent in no token (no bigram there
 * is ever a token), and the queue order restricted to one side is that
 * side's own order, so merging the pieces between such points one by one
 * gives the same tokens with small queues. */
static int spm_tokenize(const tok_vocab *v, const char *s, size_t n,
                        idbuf *out) {
  if (n == 0)
    return 0;
  sym *syms = malloc(n * sizeof *syms);
  bheap q = {0};
  if (!syms)
    return -1;
  size_t start = 0, prev = 0, pl = 0;
  int rc = 0;
  for (size_t o = 0; o < n && !rc;) {
    size_t l = (size_t)utf8_len_lead((unsigned char)s[o]);
    if (l > n - o)
      l = n - o;
    if (o > 0 && !pairs_has(v, pair_fp(s + prev, pl, s + o, l))) {
      rc = spm_merge(v, s + start, o - start, syms, &q, out);
      start = o;
    }
    prev = o;
    pl = l;
    o += l;
  }
  if (!rc)
    rc = spm_merge(v, s + start, n - start, syms, &q, out);
  free(syms);
  free(q.h);
  return rc;
}

/* " " -> "▁", with an optional leading "▁". */
static char *spm_escape(const char *s, size_t n, int prefix, size_t *out_n) {
  size_t spaces = 0;
  for (size_t i = 0; i < n; i++)
    spaces += s[i] == ' ';
  char *o = malloc(n + (spaces + (size_t)prefix) * 2 + 1);
  if (!o)
    return NULL;
  size_t k = 0;
  if (prefix)
    memcpy(o, "\xe2\x96\x81", 3), k = 3;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ') {
      memcpy(o + k, "\xe2\x96\x81", 3);
      k += 3;
    } else
      o[k++] = s[i];
  }
  *out_n = k;
  return o;
}

static int spm_encode(const tok_vocab *v, const char *text, const fraglist *fl,
                      int add_special, idbuf *out) {
  int prev_special = 1;
  if (add_special && v->add_bos && v->bos >= 0)
    push_id(out, v->bos);
  for (int i = 0; i < fl->n; i++) {
    const frag *f = &fl->f[i];
    if (f->tok >= 0) {
      push_id(out, f->tok);
      prev_special = 1;
      continue;
    }
    size_t en;
    char *e = spm_escape(text + f->off, f->len,
                         v->add_space_prefix && prev_special, &en);
    if (!e)
      return -1;
    int rc = spm_tokenize(v, e, en, out);
    free(e);
    if (rc)
      return -1;
    prev_special = 0;
  }
  if (add_special && v->add_eos && v->eos >= 0)
    push_id(out, v->eos);
  return 0;
}

/* ======================= byte-level BPE ======================= */

/* Word pieces of the pre-tokenizer: spans of the (sanitized) text. */
typedef struct {
  size_t *off, *len;
  int n, cap;
} spans;

static int span_push(spans *s, size_t off, size_t len) {
  if (len == 0)
    return 0;
  if (s->n == s->cap) {
    int nc = s->cap ? s->cap * 2 : 64;
    size_t *o = realloc(s->off, (size_t)nc * sizeof *o);
    if (!o)
      return -1;
    s->off = o;
    size_t *l = realloc(s->len, (size_t)nc * sizeof *l);
    if (!l)
      return -1;
    s->len = l;
    s->cap = nc;
  }
  s->off[s->n] = off;
  s->len[s->n] = len;
  s->n++;
  return 0;
}

/* Runs one regex over one span: matches and the gaps between them become
 * pieces (llama.cpp's unicode_regex_split keeps both). The span is the
 * whole subject: lookaheads do not see past it. */
static int regex_split_span(pcre2_code *re, pcre2_match_data *md,
                            const char *text, size_t off, size_t len,
                            spans *out) {
  PCRE2_SPTR subj = (PCRE2_SPTR)(text + off);
  size_t pos = 0, last = 0;
  while (pos < len) {
    int rc = pcre2_match(re, subj, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(re, subj, len, pos, PCRE2_NO_JIT | PCRE2_NO_UTF_CHECK,
                       md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH)
      break;
    if (rc < 0)
      return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (e == s) { /* empty match: step one character */
      pos = s + (size_t)utf8_len_lead(subj[s]);
      continue;
    }
    if (span_push(out, off + last, s - last) || span_push(out, off + s, e - s))
      return -1;
    pos = last = e;
  }
  return span_push(out, off + last, len - last);
}

static int pretokenize(const tok_vocab *v, const char *text, size_t len,
                       spans *out) {
  spans a = {0}, b = {0};
  int rc = span_push(&a, 0, len);
  for (int r = 0; r < v->n_re && !rc; r++) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(v->re[r], NULL);
    if (!md) {
      rc = -1;
      break;
    }
    b.n = 0;
    for (int i = 0; i < a.n && !rc; i++)
      rc = regex_split_span(v->re[r], md, text, a.off[i], a.len[i], &b);
    pcre2_match_data_free(md);
    spans t = a;
    a = b;
    b = t;
  }
  free(b.off);
  free(b.len);
  if (rc) {
    free(a.off);
    free(a.len);
    return -1;
  }
  *out = a;
  return 0;
}

/* The word's bytes mapped to byte-level characters (buf: 2 bytes each). */
static size_t bytelevel_encode(const tok_vocab *v, const char *s, size_t n,
                               char *buf) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    memcpy(buf + o, v->bl_utf8[c], v->bl_len[c]);
    o += v->bl_len[c];
  }
  return o;
}

static int bpe_try_bigram(const tok_vocab *v, sym *syms, bheap *q, int l,
                          int r) {
  if (l < 0 || r < 0)
    return 0;
  int32_t rank = strmap_get2(&v->mmap, syms[l].text, (size_t)syms[l].n, ' ',
                             syms[r].text, (size_t)syms[r].n);
  if (rank < 0)
    return 0;
  return heap_push(q, (bigram){l, r, 0, rank, syms[l].n + syms[r].n});
}

static void bpe_emit(const tok_vocab *v, const sym *s, idbuf *out) {
  int32_t id = strmap_get(&v->map, s->text, (size_t)s->n);
  if (id >= 0) {
    push_id(out, id);
    return;
  }
  for (int i = 0; i < s->n; i++) { /* llama.cpp: single raw bytes, if any */
    int32_t b = strmap_get(&v->map, s->text + i, 1);
    if (b >= 0)
      push_id(out, b);
  }
}

/* Merges one byte-level word (w[0..n)) by rank and emits its tokens.
 * syms needs n slots. */
static int bpe_word(const tok_vocab *v, const char *w, size_t n, sym *syms,
                    bheap *q, idbuf *out) {
  if (v->ignore_merges && strmap_get(&v->map, w, n) >= 0) {
    push_id(out, strmap_get(&v->map, w, n));
    return 0;
  }
  int ns = split_chars(w, n, syms), rc = 0;
  q->n = 0;
  for (int i = 1; i < ns && !rc; i++)
    rc = bpe_try_bigram(v, syms, q, i - 1, i);
  while (q->n > 0 && !rc) {
    bigram g = heap_pop(q);
    sym *l = &syms[g.left], *r = &syms[g.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != g.size)
      continue; /* stale */
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
      syms[r->next].prev = g.left;
    rc = bpe_try_bigram(v, syms, q, l->prev, g.left);
    if (!rc)
      rc = bpe_try_bigram(v, syms, q, g.left, l->next);
  }
  for (int i = 0; i < ns && !rc; i++)
    if (syms[i].n > 0)
      bpe_emit(v, &syms[i], out);
  return rc;
}

/* One raw fragment: sanitize, pre-tokenize, byte-encode, merge. */
static int bpe_fragment(const tok_vocab *v, const char *s, size_t n,
                        idbuf *out) {
  char *clean = NULL;
  if (!utf8_is_valid(s, n)) {
    if (!(clean = utf8_sanitize(s, n, &n)))
      return -1;
    s = clean;
  }
  spans sp = {0};
  int rc = pretokenize(v, s, n, &sp);
  size_t maxw = 0;
  for (int i = 0; i < sp.n; i++)
    if (sp.len[i] > maxw)
      maxw = sp.len[i];
  char *w = rc ? NULL : malloc(maxw * 2 + 1);
  sym *syms = rc ? NULL : malloc((maxw * 2 + 1) * sizeof *syms);
  bheap q = {.bpe = 1};
  if (!rc && (!w || !syms))
    rc = -1;
  for (int i = 0; i < sp.n && !rc; i++) {
    size_t wn = bytelevel_encode(v, s + sp.off[i], sp.len[i], w);
    rc = bpe_word(v, w, wn, syms, &q, out);
  }
  free(q.h);
  free(syms);
  free(w);
  free(sp.off);
  free(sp.len);
  free(clean);
  return rc;
}

/* ======================= WordPiece (BERT) ======================= */

/* Greedy longest-match of one "▁word" (w[0..n)), as llama.cpp: byte
 * positions, at most max_token_len bytes per try; a word with an
 * unmatchable position becomes a single [UNK]. */
static void wpm_word(const tok_vocab *v, const char *w, size_t n, idbuf *out) {
  int start = out->n;
  for (size_t i = 0; i < n; i++) {
    size_t j = i + (size_t)v->max_token_len + 1;
    if (j > n)
      j = n;
    int32_t id = -1;
    for (; j > i; j--)
      if ((id = strmap_get(&v->map, w + i, j - i)) >= 0)
        break;
    if (id < 0) {
      out->n = start; /* discard the word's tokens */
      break;
    }
    push_id(out, id);
    i = j - 1;
  }
  if (out->n == start && v->unk >= 0)
    push_id(out, v->unk);
}

static int is_cjk_ideograph(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Word buffer: "▁" then the word's characters. */
typedef struct {
  char *b;
  size_t n;
} wbuf;

static void wpm_flush(const tok_vocab *v, wbuf *w, idbuf *out) {
  if (w->n > 3)
    wpm_word(v, w->b, w->n, out);
  w->n = 3;
}

/* llama.cpp's WordPiece preprocessing: each code point replaced by the first
 * of its NFD decomposition; whitespace separates words; NUL, U+FFFD and
 * control characters vanish; the rest is lowercased; punctuation, ASCII
 * symbols and CJK ideographs are words of their own. */
static int wpm_fragment(const tok_vocab *v, const char *s, size_t n,
                        idbuf *out) {
  wbuf w = {malloc(n * 4 + 8), 3};
  if (!w.b)
    return -1;
  memcpy(w.b, "\xe2\x96\x81", 3);
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int l = utf8_decode(s + i, n - i, &cp);
    if (l <= 0)
      cp = 0xFFFD, l = 1;
    i += (size_t)l;
    cp = ucp_nfd_first(cp);
    int f = ucp_flags(cp);
    if (f & UCP_WHITESPACE) {
      wpm_flush(v, &w, out);
      continue;
    }
    if (cp == 0 || cp == 0xFFFD || (f & UCP_CONTROL))
      continue;
    char enc[4];
    int el = utf8_encode(ucp_tolower(cp), enc);
    int alone = (f & UCP_PUNCT) || (cp < 0x7F && (f & UCP_SYMBOL)) ||
                is_cjk_ideograph(cp);
    if (alone)
      wpm_flush(v, &w, out);
    memcpy(w.b + w.n, enc, (size_t)el);
    w.n += (size_t)el;
    if (alone)
      wpm_flush(v, &w, out);
  }
  wpm_flush(v, &w, out);
  free(w.b);
  return 0;
}

/* BPE and WordPiece: special fragments are their token, raw ones go through
 * frag_fn; BOS first and end (EOS for BPE, SEP for WordPiece) last when
 * add_special asks and the vocabulary adds them. */
typedef int (*frag_fn)(const tok_vocab *v, const char *s, size_t n, idbuf *out);
static int encode_frags(const tok_vocab *v, const char *text,
                        const fraglist *fl, int add_special, frag_fn fn,
                        int add_end, int32_t end, idbuf *out) {
  if (add_special && v->add_bos && v->bos >= 0)
    push_id(out, v->bos);
  for (int i = 0; i < fl->n; i++) {
    const frag *f = &fl->f[i];
    if (f->tok >= 0)
      push_id(out, f->tok);
    else if (fn(v, text + f->off, f->len, out))
      return -1;
  }
  if (add_special && add_end && end >= 0)
    push_id(out, end);
  return 0;
}

/* ======================= encode ======================= */

int tok_encode(const tok_vocab *v, const char *text, size_t len,
               int add_special, int parse_special, int32_t *out, int max_out) {
  if (!v || (!text && len) || max_out < 0 || (!out && max_out))
    return TOK_ERR_INVALID;
  if (len > (size_t)INT_MAX / 2)
    return TOK_ERR_INVALID;
  fraglist fl = {0};
  if (partition(v, text ? text : "", len, parse_special, &fl))
    return TOK_ERR_NOMEM;
  idbuf ob = {out, max_out, 0};
  int rc = v->kind == TOK_KIND_SPM ? spm_encode(v, text, &fl, add_special, &ob)
           : v->kind == TOK_KIND_WPM
               ? encode_frags(v, text, &fl, add_special, wpm_fragment,
                              v->add_sep, v->sep, &ob)
               : encode_frags(v, text, &fl, add_special, bpe_fragment,
                              v->add_eos, v->eos, &ob);
  free(fl.f);
  if (rc)
    return TOK_ERR_NOMEM;
  return ob.n <= max_out ? ob.n : -ob.n;
}

/* ======================= pieces and decoding ======================= */

int tok_piece(const tok_vocab *v, int32_t id, int special, int lstrip,
              char *buf, int len) {
  if (!v || id < 0 || id >= v->n)
    return TOK_ERR_INVALID;
  if (!special && (v->attr[id] & (A_UNKNOWN | A_CONTROL)))
    return 0;
  const char *p = v->pblob + v->poff[id];
  size_t n = v->plen[id];
  for (int i = 0; i < lstrip && n > 0 && *p == ' '; i++)
    p++, n--;
  if (n > (size_t)INT_MAX)
    return TOK_ERR_INVALID;
  if ((size_t)len < n || len < 0)
    return -(int)n;
  memcpy(buf, p, n);
  return (int)n;
}

/* HF's clean_up_tokenization_spaces, as llama.cpp applies it in place:
 * " ?" " !" " ." " ," lose the space; " ' " loses both spaces; " 's" " 'm"
 * " 're" " 've" lose the space (" 't" " 'd" " 'll" keep it). */
static int clean_spaces(char *t, int total) {
  int n = total ? 1 : 0;
  for (int i = 1; i < total; i++) {
    char x = t[i];
    if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
      n--;
    t[n++] = x;
  }
  total = n;
  n = total ? 1 : 0;
  for (int i = 1; i < total; i++) {
    char x = t[i];
    if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
      n--;        /* the space before */
      t[++i] = 0; /* and the one after (seen as NUL by the next char) */
    }
    t[n++] = x;
  }
  total = n;
  n = total ? 1 : 0;
  for (int i = 1; i < total; i++) {
    char x = t[i];
    if (x == '\'' && t[i - 1] == ' ' && i + 1 < total) {
      char y = t[i + 1], z = i + 2 < total ? t[i + 2] : 0;
      if (y == 's' || y == 'm' || (y == 'r' && z == 'e') ||
          (y == 'v' && z == 'e'))
        n--;
    }
    t[n++] = x;
  }
  return n;
}

int tok_decode(const tok_vocab *v, const int32_t *ids, int n,
               int remove_special, int unparse_special, char *buf, int len) {
  if (!v || n < 0 || (n && !ids) || len < 0 || (len && !buf))
    return TOK_ERR_INVALID;
  int strip = v->add_space_prefix;
  if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) {
    strip = 0;
    ids++;
    n--;
  }
  if (remove_special && v->add_eos && n > 0 && ids[n - 1] == v->eos)
    n--;
  int total = 0; /* invariant: total > len once a piece did not fit */
  char scratch[1];
  for (int i = 0; i < n; i++) {
    int fits = buf && total <= len;
    int r = tok_piece(v, ids[i], unparse_special, strip,
                      fits ? buf + total : scratch, fits ? len - total : 0);
    strip = 0;
    if (r == TOK_ERR_INVALID && (ids[i] < 0 || ids[i] >= v->n))
      return r;
    total += r < 0 ? -r : r;
  }
  if (total > len)
    return -total;
  if (v->clean_spaces)
    total = clean_spaces(buf, total);
  return total;
}

/* ======================= GGUF loading ======================= */

/* Arrays read out of the file for one tok_build call. */
typedef struct {
  const char **text, **merges;
  size_t *text_len, *merges_len;
  float *scores;
  int32_t *types;
  char model[32], pre[64], name[128];
} gguf_arrays;

static void arrays_free(gguf_arrays *a) {
  free(a->text);
  free(a->text_len);
  free(a->merges);
  free(a->merges_len);
  free(a->scores);
  free(a->types);
}

/* Reads a string array into pointer/length arrays (pointers into the file). */
static int read_str_arr(const gguf_file *f, const char *key, int *n,
                        const char ***s, size_t **l, char *err, size_t errlen) {
  int et;
  uint64_t cnt;
  if (gguf_get_arr(f, key, &et, &cnt) != GGUF_OK || et != GGUF_TYPE_STRING ||
      cnt > INT_MAX / 2) {
    set_err(err, errlen, "'%s' is missing or not an array of strings", key);
    return TOK_ERR_FORMAT;
  }
  *s = malloc((cnt + 1) * sizeof **s);
  *l = malloc((cnt + 1) * sizeof **l);
  if (!*s || !*l)
    return TOK_ERR_NOMEM;
  for (uint64_t i = 0; i < cnt; i++) {
    (*s)[i] = gguf_arr_str(f, key, i, &(*l)[i]);
    if (!(*s)[i]) {
      set_err(err, errlen, "'%s'[%llu] is unreadable", key,
              (unsigned long long)i);
      return TOK_ERR_FORMAT;
    }
  }
  *n = (int)cnt;
  return TOK_OK;
}

/* Optional numeric per-token array (scores / token types) of n entries. */
static int read_num_arr(const gguf_file *f, const char *key, int n, float **fl,
                        int32_t **in, char *err, size_t errlen) {
  int et;
  uint64_t cnt;
  if (gguf_find_key(f, key) < 0)
    return TOK_OK;
  if (gguf_get_arr(f, key, &et, &cnt) != GGUF_OK || cnt != (uint64_t)n ||
      et == GGUF_TYPE_STRING || et == GGUF_TYPE_ARRAY) {
    set_err(err, errlen, "'%s' is not a numeric array of %d entries", key, n);
    return TOK_ERR_FORMAT;
  }
  if (fl && !(*fl = malloc(((size_t)n + 1) * sizeof **fl)))
    return TOK_ERR_NOMEM;
  if (in && !(*in = malloc(((size_t)n + 1) * sizeof **in)))
    return TOK_ERR_NOMEM;
  for (int i = 0; i < n; i++) {
    double d = 0;
    int64_t v = 0;
    int rc = fl ? gguf_arr_get_float(f, key, (uint64_t)i, &d)
                : gguf_arr_get_int(f, key, (uint64_t)i, &v);
    if (rc != GGUF_OK) {
      set_err(err, errlen, "'%s'[%d] is unreadable", key, i);
      return TOK_ERR_FORMAT;
    }
    if (fl)
      (*fl)[i] = (float)d;
    if (in)
      (*in)[i] = (int32_t)(v < INT32_MIN || v > INT32_MAX ? 0 : v);
  }
  return TOK_OK;
}

static void get_id(const gguf_file *f, const char *key, int32_t *out) {
  int64_t v;
  if (gguf_get_int(f, key, &v) == GGUF_OK && v >= 0 && v <= INT32_MAX)
    *out = (int32_t)v;
}

static void get_flag(const gguf_file *f, const char *key, int *out) {
  int b;
  if (gguf_get_bool(f, key, &b) == GGUF_OK)
    *out = b != 0;
}

static void read_ids(const gguf_file *f, tok_spec *s) {
  get_id(f, "tokenizer.ggml.bos_token_id", &s->bos);
  get_id(f, "tokenizer.ggml.eos_token_id", &s->eos);
  get_id(f, "tokenizer.ggml.eot_token_id", &s->eot);
  get_id(f, "tokenizer.ggml.eom_token_id", &s->eom);
  get_id(f, "tokenizer.ggml.unknown_token_id", &s->unk);
  get_id(f, "tokenizer.ggml.seperator_token_id", &s->sep);
  get_id(f, "tokenizer.ggml.padding_token_id", &s->pad);
  get_id(f, "tokenizer.ggml.mask_token_id", &s->mask);
  if (s->bos < 0)
    get_id(f, "tokenizer.ggml.cls_token_id", &s->bos); /* BERT's [CLS] */
  get_flag(f, "tokenizer.ggml.add_sep_token", &s->add_sep);
  get_flag(f, "tokenizer.ggml.add_bos_token", &s->add_bos);
  get_flag(f, "tokenizer.ggml.add_eos_token", &s->add_eos);
  get_flag(f, "tokenizer.ggml.add_space_prefix", &s->add_space_prefix);
  get_flag(f, "tokenizer.ggml.remove_extra_whitespaces",
           &s->remove_extra_space);
}

static int read_spec(const gguf_file *f, tok_spec *s, gguf_arrays *a, char *err,
                     size_t errlen) {
  if (gguf_get_str_buf(f, "tokenizer.ggml.model", a->model, sizeof a->model) <
      0) {
    set_err(err, errlen, "missing key 'tokenizer.ggml.model'");
    return TOK_ERR_FORMAT;
  }
  s->model = a->model;
  if (gguf_get_str_buf(f, "tokenizer.ggml.pre", a->pre, sizeof a->pre) >= 0)
    s->pre = a->pre;
  if (gguf_get_str_buf(f, "general.name", a->name, sizeof a->name) >= 0)
    s->name = a->name;
  int rc = read_str_arr(f, "tokenizer.ggml.tokens", &s->n_tokens, &a->text,
                        &a->text_len, err, errlen);
  if (!rc)
    rc = read_num_arr(f, "tokenizer.ggml.scores", s->n_tokens, &a->scores, NULL,
                      err, errlen);
  if (!rc)
    rc = read_num_arr(f, "tokenizer.ggml.token_type", s->n_tokens, NULL,
                      &a->types, err, errlen);
  if (!rc && !strcmp(a->model, "gpt2"))
    rc = read_str_arr(f, "tokenizer.ggml.merges", &s->n_merges, &a->merges,
                      &a->merges_len, err, errlen);
  s->text = a->text;
  s->text_len = a->text_len;
  s->scores = a->scores;
  s->types = a->types;
  s->merges = a->merges;
  s->merges_len = a->merges_len;
  read_ids(f, s);
  return rc;
}

int tok_load(const gguf_file *f, tok_vocab **out, char *err, size_t errlen) {
  *out = NULL;
  tok_spec s;
  tok_spec_init(&s);
  gguf_arrays a;
  memset(&a, 0, sizeof a);
  int rc = read_spec(f, &s, &a, err, errlen);
  if (rc == TOK_ERR_NOMEM)
    set_err(err, errlen, "out of memory");
  if (rc == TOK_OK)
    rc = tok_build(&s, out, err, errlen);
  arrays_free(&a);
  return rc;
}

/* ======================= streaming detokenizer ======================= */

void tok_detok_init(tok_detok *d, const tok_vocab *v, int special,
                    int lstrip_first) {
  memset(d, 0, sizeof *d);
  d->v = v;
  d->special = special;
  d->lstrip_first = lstrip_first;
}

/* Emits the complete characters of in[0..n) into out (when out != NULL),
 * invalid subparts as U+FFFD; an incomplete character at the end stays
 * unconsumed unless final. Returns output bytes; *used = bytes consumed. */
static size_t utf8_emit(const unsigned char *in, size_t n, int final, char *out,
                        size_t *used) {
  size_t i = 0, o = 0;
  while (i < n) {
    int l = utf8_valid_prefix(in + i, n - i);
    if (l == 0 && !final)
      break;
    size_t take = l > 0    ? (size_t)l
                  : l == 0 ? n - i
                           : (size_t)utf8_invalid_len(in + i, n - i);
    if (l > 0) {
      if (out)
        memcpy(out + o, in + i, take);
      o += take;
    } else {
      if (out)
        memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
    i += take;
  }
  *used = i;
  return o;
}

/* pend + bytes through utf8_emit into buf; state changes only on success. */
static int detok_feed(tok_detok *d, const char *p, size_t n, int final,
                      char *buf, int len) {
  unsigned char stackbuf[256], *tmp = stackbuf;
  size_t tn = (size_t)d->n_pend + n;
  if (tn > sizeof stackbuf && !(tmp = malloc(tn)))
    return TOK_ERR_NOMEM;
  memcpy(tmp, d->pend, (size_t)d->n_pend);
  if (n)
    memcpy(tmp + d->n_pend, p, n);
  size_t used, need = utf8_emit(tmp, tn, final, NULL, &used);
  int rc;
  if (need > (size_t)INT_MAX)
    rc = TOK_ERR_INVALID;
  else if (len < 0 || need > (size_t)len)
    rc = -(int)need;
  else {
    utf8_emit(tmp, tn, final, buf, &used);
    d->n_pend = (int)(tn - used); /* < 4: an incomplete character */
    memcpy(d->pend, tmp + used, (size_t)d->n_pend);
    rc = (int)need;
  }
  if (tmp != stackbuf)
    free(tmp);
  return rc;
}

int tok_detok_push(tok_detok *d, int32_t id, char *buf, int len) {
  const tok_vocab *v = d->v;
  if (!v || id < 0 || id >= v->n)
    return TOK_ERR_INVALID;
  const char *p = v->pblob + v->poff[id];
  size_t n = v->plen[id];
  if (!d->special && (v->attr[id] & (A_UNKNOWN | A_CONTROL)))
    n = 0;
  if (d->lstrip_first && d->n_pushed == 0 && n > 0 && *p == ' ')
    p++, n--;
  int rc = detok_feed(d, p, n, 0, buf, len);
  if (rc >= 0)
    d->n_pushed++;
  return rc;
}

int tok_detok_flush(tok_detok *d, char *buf, int len) {
  return detok_feed(d, NULL, 0, 1, buf, len);
}
