/* Tests of the tokenizer (engine/tokenizer.h): in-memory vocabularies for
 * SentencePiece merges, byte fallback, byte-level BPE, special-token
 * splitting and the streaming detokenizer (no data needed); then
 * conformance with llama.cpp: its tokenizer vectors in
 * ../shared/testdata/tokenizers and the tokenize[] goldens of
 * ../shared/testdata/models (skipped with a reason when ../shared is
 * absent). Knows nothing about models or inference. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fixture.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"
#include "t.h"

/* ---- helpers ---- */

#define MAXV 512

/* An in-memory vocabulary under construction. */
typedef struct {
  const char *text[MAXV];
  size_t len[MAXV];
  float score[MAXV];
  int32_t type[MAXV];
  int n;
  const char *merge[MAXV];
  size_t mlen[MAXV];
  int nm;
} vb;

static int32_t vb_add(vb *b, const char *s, float score, int type) {
  b->text[b->n] = s;
  b->len[b->n] = strlen(s);
  b->score[b->n] = score;
  b->type[b->n] = type;
  return b->n++;
}

static void vb_merge(vb *b, const char *m) {
  b->merge[b->nm] = m;
  b->mlen[b->nm] = strlen(m);
  b->nm++;
}

static tok_vocab *vb_build(vb *b, const char *model, const char *pre,
                           tok_spec *base) {
  tok_spec s;
  if (base)
    s = *base;
  else
    tok_spec_init(&s);
  s.model = model;
  s.pre = pre;
  s.n_tokens = b->n;
  s.text = b->text;
  s.text_len = b->len;
  s.scores = b->score;
  s.types = b->type;
  s.n_merges = b->nm;
  s.merges = b->merge;
  s.merges_len = b->mlen;
  tok_vocab *v = NULL;
  char err[256] = "";
  int rc = tok_build(&s, &v, err, sizeof err);
  CHECKF(rc == TOK_OK, "tok_build: %s", err);
  return v;
}

/* Encodes and compares with expected ids (n_exp of them). */
static void check_enc(const tok_vocab *v, const char *text, int add_special,
                      int parse_special, const int32_t *exp, int n_exp) {
  int32_t out[256];
  int n =
      tok_encode(v, text, strlen(text), add_special, parse_special, out, 256);
  int same = n == n_exp;
  for (int i = 0; same && i < n; i++)
    same = out[i] == exp[i];
  if (!same) {
    fprintf(stderr, "  encode \"%s\": got", text);
    for (int i = 0; i < n && i < 256; i++)
      fprintf(stderr, " %d", out[i]);
    fprintf(stderr, " (n=%d), want", n);
    for (int i = 0; i < n_exp; i++)
      fprintf(stderr, " %d", exp[i]);
    fputc('\n', stderr);
  }
  CHECK(same);
}

/* A small SPM vocabulary: unk, bos, eos, 256 byte tokens, some pieces. */
static tok_vocab *spm_vocab(void) {
  static vb b;
  static char bytes[256][8];
  memset(&b, 0, sizeof b);
  vb_add(&b, "<unk>", 0, TOK_TYPE_UNKNOWN);
  vb_add(&b, "<s>", 0, TOK_TYPE_CONTROL);
  vb_add(&b, "</s>", 0, TOK_TYPE_CONTROL);
  for (int i = 0; i < 256; i++) {
    snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
    vb_add(&b, bytes[i], 0, TOK_TYPE_BYTE);
  }
  /* ids 259.. */
  vb_add(&b, "\xe2\x96\x81", -1, 1);                /* 259 ▁ */
  vb_add(&b, "h", -2, 1);                           /* 260 */
  vb_add(&b, "e", -2, 1);                           /* 261 */
  vb_add(&b, "l", -2, 1);                           /* 262 */
  vb_add(&b, "o", -2, 1);                           /* 263 */
  vb_add(&b, "he", -3, 1);                          /* 264 */
  vb_add(&b, "ll", -1.5f, 1);                       /* 265: beats he */
  vb_add(&b, "hell", -4, 1);                        /* 266 */
  vb_add(&b, "hello", -5, 1);                       /* 267 */
  vb_add(&b, "\xe2\x96\x81hello", -6, 1);           /* 268 ▁hello */
  vb_add(&b, "<|user|>", 0, TOK_TYPE_USER_DEFINED); /* 269 */
  vb_add(&b, "<|ctl|>", 0, TOK_TYPE_CONTROL);       /* 270 */
  return vb_build(&b, "llama", NULL, NULL);
}

/* ---- SentencePiece ---- */

static void test_spm_merges_and_prefix(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  CHECK_INT(tok_kind_of(v), TOK_KIND_SPM);
  CHECK_INT(tok_bos(v), 1);
  CHECK_INT(tok_eos(v), 2);
  CHECK(tok_add_bos(v));
  check_enc(v, "hello", 0, 0, (int32_t[]){268}, 1);
  check_enc(v, "hello", 1, 0, (int32_t[]){1, 268}, 2);
  /* "hel": ll is not there; h+e merges (he), then "▁"... */
  check_enc(v, "hel", 0, 0, (int32_t[]){259, 264, 262}, 3);
  /* Empty text: nothing, or only BOS. */
  check_enc(v, "", 0, 0, NULL, 0);
  check_enc(v, "", 1, 0, (int32_t[]){1}, 1);
  tok_free(v);
}

static void test_spm_byte_fallback(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  /* "ä" = C3 A4 is not a piece: two byte tokens (3 + byte). */
  check_enc(v, "\xc3\xa4", 0, 0, (int32_t[]){259, 3 + 0xC3, 3 + 0xA4}, 3);
  char buf[8];
  CHECK_INT(tok_piece(v, 3 + 0xC3, 0, 0, buf, sizeof buf), 1);
  CHECK_INT((unsigned char)buf[0], 0xC3);
  CHECK_INT(tok_piece(v, 268, 0, 0, buf, sizeof buf), 6);
  CHECK(memcmp(buf, " hello", 6) == 0);
  CHECK_INT(tok_piece(v, 268, 0, 1, buf, sizeof buf), 5);
  CHECK_INT(tok_piece(v, 268, 0, 0, buf, 3), -6);
  CHECK_INT(tok_piece(v, 1, 0, 0, buf, sizeof buf), 0);
  CHECK_INT(tok_piece(v, 1, 1, 0, buf, sizeof buf), 3);
  CHECK_INT(tok_piece(v, 99999, 0, 0, buf, sizeof buf), TOK_ERR_INVALID);
  tok_free(v);
}

static void test_spm_special_split(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  /* User-defined tokens split even without parse_special; control ones
   * only with it. The text after a special token gets the space prefix. */
  check_enc(v, "<|user|>hello", 0, 0, (int32_t[]){269, 268}, 2);
  check_enc(v, "a<|user|>", 0, 0, (int32_t[]){259, 3 + 0x61, 269}, 3);
  check_enc(v, "<|ctl|>hello", 0, 1, (int32_t[]){270, 268}, 2);
  int32_t out[64];
  int n = tok_encode(v, "<|ctl|>hello", 12, 0, 0, out, 64);
  CHECK(n > 2); /* "<|ctl|>" tokenized as text */
  for (int i = 0; i < n; i++)
    CHECK(out[i] != 270);
  /* Too small an output: -needed, first ids written. */
  CHECK_INT(tok_encode(v, "<|ctl|>hello", 12, 1, 1, out, 1), -3);
  CHECK_INT(out[0], 1);
  tok_free(v);
}

static void test_decode(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  int32_t ids[] = {1, 268, 259, 264, 262, 2};
  char buf[64];
  int n = tok_decode(v, ids, 6, 1, 0, buf, sizeof buf);
  CHECK_INT(n, 10);
  CHECK(n == 10 && memcmp(buf, " hello hel", 10) == 0);
  /* Without BOS first, the leading space is stripped (add_space_prefix). */
  n = tok_decode(v, ids + 1, 4, 1, 0, buf, sizeof buf);
  CHECK(n == 9 && memcmp(buf, "hello hel", 9) == 0);
  n = tok_decode(v, ids, 6, 0, 1, buf, sizeof buf);
  CHECK(n == 17 && memcmp(buf, "<s> hello hel</s>", 17) == 0);
  CHECK_INT(tok_decode(v, ids, 6, 0, 1, buf, 5), -17);
  tok_free(v);
}

/* ---- streaming detokenizer ---- */

static void test_detok_streaming(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  tok_detok d;
  tok_detok_init(&d, v, 0, 1);
  char buf[64];
  /* "▁hello" first: leading space dropped. */
  CHECK_INT(tok_detok_push(&d, 268, buf, sizeof buf), 5);
  /* "€" = E2 82 AC arriving one byte token at a time. */
  CHECK_INT(tok_detok_push(&d, 3 + 0xE2, buf, sizeof buf), 0);
  CHECK_INT(tok_detok_push(&d, 3 + 0x82, buf, sizeof buf), 0);
  /* A buffer too small: -needed, nothing consumed. */
  CHECK_INT(tok_detok_push(&d, 3 + 0xAC, buf, 2), -3);
  CHECK_INT(tok_detok_push(&d, 3 + 0xAC, buf, sizeof buf), 3);
  CHECK(memcmp(buf, "\xe2\x82\xac", 3) == 0);
  /* Control tokens are silent unless asked for. */
  CHECK_INT(tok_detok_push(&d, 2, buf, sizeof buf), 0);
  /* A lead byte followed by ASCII: U+FFFD then the ASCII. */
  CHECK_INT(tok_detok_push(&d, 3 + 0xE2, buf, sizeof buf), 0);
  int n = tok_detok_push(&d, 263, buf, sizeof buf);
  CHECK(n == 4 && memcmp(buf, "\xef\xbf\xbdo", 4) == 0);
  /* An unfinished character at the end: flushed as U+FFFD. */
  CHECK_INT(tok_detok_push(&d, 3 + 0xF0, buf, sizeof buf), 0);
  CHECK_INT(tok_detok_push(&d, 3 + 0x9F, buf, sizeof buf), 0);
  n = tok_detok_flush(&d, buf, sizeof buf);
  CHECK(n == 3 && memcmp(buf, "\xef\xbf\xbd", 3) == 0);
  CHECK_INT(tok_detok_flush(&d, buf, sizeof buf), 0);
  CHECK_INT(tok_detok_push(&d, -1, buf, sizeof buf), TOK_ERR_INVALID);
  tok_free(v);
}

/* Every split point of a multi-byte string streams back to the same text. */
static void test_detok_every_split(void) {
  tok_vocab *v = spm_vocab();
  if (!v)
    return;
  const char *s = "a\xc3\xa4\xe2\x82\xac\xf0\x9f\xa6\x99z"; /* aä€🦙z */
  size_t sn = strlen(s);
  int32_t ids[64];
  int n = tok_encode(v, s, sn, 0, 0, ids, 64);
  CHECK(n > 0);
  tok_detok d;
  tok_detok_init(&d, v, 0, 1);
  char out[128];
  int o = 0;
  for (int i = 0; i < n; i++) {
    int r = tok_detok_push(&d, ids[i], out + o, (int)sizeof out - o);
    CHECK(r >= 0);
    if (r < 0)
      break;
    CHECK(utf8_is_valid(out + o, (size_t)r));
    o += r;
  }
  o += tok_detok_flush(&d, out + o, (int)sizeof out - o);
  CHECK(o == (int)sn && memcmp(out, s, sn) == 0);
  tok_free(v);
}

/* ---- byte-level BPE ---- */

/* Byte-level vocabulary: every single byte as its byte-level character,
 * then merges "Ġ h", "e l", "Ġh e"... plus specials. */
static tok_vocab *bpe_vocab(const char *pre) {
  static vb b;
  static char chars[256][4];
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 256; i++) {
    int l = utf8_encode(bytelevel_cp((unsigned char)i), chars[i]);
    chars[i][l] = 0;
    vb_add(&b, chars[i], 0, 1);
  }
  vb_add(&b, "\xc4\xa0h", 0, 1);                    /* 256 Ġh */
  vb_add(&b, "el", 0, 1);                           /* 257 */
  vb_add(&b, "\xc4\xa0hel", 0, 1);                  /* 258 Ġhel */
  vb_add(&b, "lo", 0, 1);                           /* 259 */
  vb_add(&b, "\xc4\xa0hello", 0, 1);                /* 260 Ġhello */
  vb_add(&b, "<|im_start|>", 0, TOK_TYPE_CONTROL);  /* 261 */
  vb_add(&b, "<|im_end|>", 0, TOK_TYPE_CONTROL);    /* 262 */
  vb_add(&b, "<|endoftext|>", 0, TOK_TYPE_CONTROL); /* 263 */
  vb_add(&b, "hello", 0, 1);                        /* 264: never merged to */
  vb_merge(&b, "\xc4\xa0 h");
  vb_merge(&b, "e l");
  vb_merge(&b, "\xc4\xa0h el");
  vb_merge(&b, "l o");
  vb_merge(&b, "\xc4\xa0hel lo");
  tok_spec s;
  tok_spec_init(&s);
  s.eos = 263;
  return vb_build(&b, "gpt2", pre, &s);
}

static void test_bpe_merges(void) {
  tok_vocab *v = bpe_vocab("qwen2");
  if (!v)
    return;
  CHECK_INT(tok_kind_of(v), TOK_KIND_BPE);
  check_enc(v, " hello", 0, 0, (int32_t[]){260}, 1);
  /* "hello" has no leading space: h, el, lo (merge rank order). */
  check_enc(v, "hello", 0, 0, (int32_t[]){'h', 257, 259}, 3);
  /* eot/eog inferred from the texts, as llama.cpp does. */
  CHECK(tok_is_eog(v, 262));
  CHECK(tok_is_eog(v, 263));
  CHECK(!tok_is_eog(v, 261));
  CHECK_INT(tok_eot(v), 262);
  char buf[16];
  CHECK_INT(tok_piece(v, 260, 0, 0, buf, sizeof buf), 6);
  CHECK(memcmp(buf, " hello", 6) == 0);
  CHECK_INT(tok_piece(v, 0xC4 - 0xA1 + 0xA1, 0, 0, buf, sizeof buf), 1);
  tok_free(v);
}

static void test_bpe_ignore_merges(void) {
  /* llama-bpe: a pre-token that is a whole vocabulary entry is taken as
   * is, without merging. */
  tok_vocab *v = bpe_vocab("llama-bpe");
  if (!v)
    return;
  check_enc(v, "hello", 0, 0, (int32_t[]){264}, 1);
  CHECK(tok_add_bos(v)); /* llama3 adds BOS; default id 11, as llama.cpp */
  CHECK_INT(tok_bos(v), 11);
  tok_free(v);
}

static void test_bpe_special_split(void) {
  tok_vocab *v = bpe_vocab("qwen2");
  if (!v)
    return;
  const char *t = "<|im_start|> hello<|im_end|>";
  check_enc(v, t, 0, 1, (int32_t[]){261, 260, 262}, 3);
  int32_t out[64];
  int n = tok_encode(v, t, strlen(t), 0, 0, out, 64);
  CHECK(n > 3);
  for (int i = 0; i < n; i++)
    CHECK(out[i] != 261 && out[i] != 262);
  /* Invalid UTF-8 is not an error. */
  n = tok_encode(v, "\xff\xfe hello", 8, 0, 0, out, 64);
  CHECK(n > 0);
  tok_free(v);
}

/* llama.cpp's clean-up of spaces on decoding (gpt-2: clean_spaces on). */
static void test_decode_clean_spaces(void) {
  tok_vocab *v = bpe_vocab("gpt-2");
  if (!v)
    return;
  const char *t = "a ' ' b , c 's 't 're 'll ?";
  int32_t ids[64];
  char buf[64];
  int n = tok_encode(v, t, strlen(t), 0, 0, ids, 64);
  CHECK(n > 0);
  int m = tok_decode(v, ids, n, 0, 0, buf, sizeof buf - 1);
  CHECK(m > 0);
  buf[m < 0 ? 0 : m] = 0;
  CHECKF(strcmp(buf, "a'' b, c's 't're 'll?") == 0, "got \"%s\"", buf);
  tok_free(v);
  v = bpe_vocab("qwen2"); /* clean_spaces off */
  if (!v)
    return;
  n = tok_encode(v, t, strlen(t), 0, 0, ids, 64);
  m = tok_decode(v, ids, n, 0, 0, buf, sizeof buf - 1);
  buf[m < 0 ? 0 : m] = 0;
  CHECKF(strcmp(buf, t) == 0, "got \"%s\"", buf);
  tok_free(v);
}

/* Every supported pre-tokenizer compiles and splits a mixed text into
 * tokens that decode back to it. */
static void test_all_pretokenizers(void) {
  static const char *const pres[] = {
      "default",     "gpt-2",       "llama-bpe",      "llama3",  "dbrx",
      "qwen2",       "stablelm2",   "deepseek-coder", "falcon",  "starcoder",
      "smollm",      "command-r",   "gpt-4o",         "llama4",  "tekken",
      "deepseek-v3", "chatglm-bpe", "megrez",         "bloom",   "poro-chat",
      "viking",      "exaone4",     "hunyuan",        "kimi-k2", "glm4",
      "minimax-m2",  "qwen35",      "hunyuan-dense"};
  const char *t = "Hello WORLD's 12345 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                  "\xf0\x9f\xa6\x99\n\n  x!?";
  for (size_t i = 0; i < sizeof pres / sizeof *pres; i++) {
    tok_vocab *v = bpe_vocab(pres[i]);
    CHECKF(v != NULL, "pre %s", pres[i]);
    if (!v)
      continue;
    int32_t ids[128];
    char buf[128];
    int n = tok_encode(v, t, strlen(t), 0, 0, ids, 128);
    int m = n > 0 ? tok_decode(v, ids, n, 0, 0, buf, sizeof buf) : -1;
    CHECKF(m == (int)strlen(t) && memcmp(buf, t, strlen(t)) == 0,
           "pre %s: round trip (n=%d m=%d)", pres[i], n, m);
    tok_free(v);
  }
}

/* An SPM vocabulary without byte tokens falls back to [UNK] (id 0 unless
 * the file names another) for each byte it cannot encode. */
static void test_spm_no_fallback(void) {
  static vb b;
  memset(&b, 0, sizeof b);
  vb_add(&b, "\xe2\x96\x81", 0, 1);
  vb_add(&b, "a", 0, 1);
  vb_add(&b, "<s>", 0, TOK_TYPE_CONTROL);
  vb_add(&b, "</s>", 0, TOK_TYPE_CONTROL);
  tok_spec s;
  tok_spec_init(&s);
  s.unk = 7; /* out of range: ignored, default kept */
  tok_vocab *v = vb_build(&b, "llama", NULL, &s);
  if (!v)
    return;
  CHECK_INT(tok_unk(v), 0);
  check_enc(v, "a\xc3\xa4", 0, 0, (int32_t[]){0, 1, 0, 0}, 4);
  tok_free(v);
  /* an empty token text gets llama.cpp's placeholder name */
  vb_add(&b, "", 0, 1);
  v = vb_build(&b, "llama", NULL, NULL);
  if (!v)
    return;
  size_t l = 0;
  const char *t = tok_text(v, 4, &l);
  CHECK(t && l == 9 && memcmp(t, "[EMPTY_4]", 9) == 0);
  tok_free(v);
}

static void test_bad_vocab(void) {
  tok_spec s;
  tok_spec_init(&s);
  tok_vocab *v = (tok_vocab *)1;
  char err[128] = "";
  s.model = "t5";
  CHECK_INT(tok_build(&s, &v, err, sizeof err), TOK_ERR_UNSUPPORTED);
  CHECK(v == NULL);
  CHECK(strstr(err, "t5") != NULL);
  const char *tx[] = {"a"};
  size_t tl[] = {1};
  s.model = "gpt2";
  s.pre = "no-such-pre";
  s.n_tokens = 1;
  s.text = tx;
  s.text_len = tl;
  CHECK_INT(tok_build(&s, &v, err, sizeof err), TOK_ERR_UNSUPPORTED);
  CHECK(strstr(err, "no-such-pre") != NULL);
  s.model = "llama";
  s.n_tokens = 0;
  CHECK_INT(tok_build(&s, &v, err, sizeof err), TOK_ERR_FORMAT);
}

static tok_vocab *open_vocab(const char *path, char *why, size_t whylen);

/* ---- fixture vocabularies (engine/fixture.h) ---- */

static const char *const ROUND_TRIP[] = {
    "Hello world",
    " leading space and  two  spaces",
    "new\nline\ttab\r\n",
    "Numbers 3.14159 and 2048; symbols: @#$%^&*()",
    "d\xc3\xa9j\xc3\xa0 vu, \xc3\x84pfel, "
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, "
    "\xf0\x9f\x98\x80!",
    "",
};

/* Writes a tiny fixture model with the given tokenizer, loads its vocab. */
static tok_vocab *fixture_vocab(const char *preset, const char *pre) {
  fixture_params p;
  fixture_default_params(&p);
  char err[256] = "", path[64];
  if (fixture_preset(preset, &p) != 0) {
    CHECKF(0, "unknown preset %s", preset);
    return NULL;
  }
  if (pre)
    snprintf(p.bpe_pre, sizeof p.bpe_pre, "%s", pre);
  snprintf(path, sizeof path, "/tmp/hearth-tokfx-%d.gguf", (int)getpid());
  int rc = fixture_write(&p, path, err, sizeof err);
  CHECKF(rc == 0, "fixture_write %s: %s", preset, err);
  tok_vocab *v = rc == 0 ? open_vocab(path, err, sizeof err) : NULL;
  CHECKF(rc != 0 || v, "load %s: %s", preset, err);
  unlink(path);
  return v;
}

/* encode -> decode gives the text back; streaming gives the same bytes. */
static void check_round_trip(const tok_vocab *v, const char *name) {
  for (size_t k = 0; k < sizeof ROUND_TRIP / sizeof *ROUND_TRIP; k++) {
    const char *t = ROUND_TRIP[k];
    size_t tl = strlen(t);
    int32_t ids[512];
    char a[1024], b[1024];
    int n = tok_encode(v, t, tl, 1, 0, ids, 512);
    CHECKF(n >= 0, "%s: encode \"%s\" = %d", name, t, n);
    if (n < 0)
      continue;
    /* llama.cpp strips SPM's leading space only when no BOS precedes. */
    int skip = n > 0 && tok_add_bos(v) && ids[0] == tok_bos(v);
    int dl = tok_decode(v, ids + skip, n - skip, 1, 0, a, sizeof a);
    CHECKF(dl == (int)tl && memcmp(a, t, tl) == 0,
           "%s: decode(encode(\"%s\")) = \"%.*s\"", name, t, dl < 0 ? 0 : dl,
           a);
    tok_detok d;
    tok_detok_init(&d, v, 0, tok_kind_of(v) == TOK_KIND_SPM);
    int o = 0;
    for (int i = skip; i < n; i++) {
      int r = tok_detok_push(&d, ids[i], b + o, (int)sizeof b - o);
      CHECK(r >= 0);
      if (r < 0)
        break;
      o += r;
    }
    o += tok_detok_flush(&d, b + o, (int)sizeof b - o);
    CHECKF(o == (int)tl && memcmp(b, t, tl) == 0,
           "%s: streamed \"%s\" = \"%.*s\"", name, t, o, b);
  }
}

static void test_fixture_spm(void) {
  tok_vocab *v = fixture_vocab("tiny-llama", NULL);
  if (!v)
    return;
  CHECK_INT(tok_kind_of(v), TOK_KIND_SPM);
  check_round_trip(v, "tiny-llama");
  tok_free(v);
}

static void test_fixture_bpe(void) {
  static const char *const pres[] = {"llama-bpe", "qwen2", "smollm"};
  for (size_t i = 0; i < 3; i++) {
    tok_vocab *v = fixture_vocab("tiny-qwen2", pres[i]);
    if (!v)
      continue;
    CHECK_INT(tok_kind_of(v), TOK_KIND_BPE);
    check_round_trip(v, pres[i]);
    /* chat markers are control tokens that end generation where llama.cpp
     * says so */
    int32_t ids[8];
    const char *t = "<|im_start|><|im_end|>";
    int n = tok_encode(v, t, strlen(t), 0, 1, ids, 8);
    if (tok_find(v, "<|im_end|>", 10) >= 0) {
      CHECK_INT(n, 2);
      CHECK(tok_is_eog(v, ids[1]));
      CHECK(!tok_is_eog(v, ids[0]));
      CHECK(tok_is_control(v, ids[0]));
    }
    tok_free(v);
  }
}

/* ---- hostile input: random bytes and ids ---- */

static uint64_t rng_next(uint64_t *st) {
  *st ^= *st << 13;
  *st ^= *st >> 7;
  *st ^= *st << 17;
  return *st;
}

/* Random bytes (biased toward UTF-8 lead/continuation bytes and specials'
 * characters) encode without error; a short output array reports the same
 * count; random ids stream out as valid UTF-8. */
static void fuzz_vocab(const tok_vocab *v, uint64_t seed) {
  static const char alphabet[] = "<|>im_startend hello\xc3\xa4\xe2\x82\xac\xf0"
                                 "\x9f\xa6\x99\x80\xbf\xff\n\t ";
  char text[200];
  int32_t ids[1024], few[3];
  for (int round = 0; round < 300; round++) {
    size_t n = (size_t)(rng_next(&seed) % sizeof text);
    for (size_t i = 0; i < n; i++) {
      uint64_t r = rng_next(&seed);
      text[i] =
          (r & 1) ? (char)(r >> 8) : alphabet[(r >> 8) % (sizeof alphabet - 1)];
    }
    int sp = round & 1, ps = (round >> 1) & 1;
    int k = tok_encode(v, text, n, sp, ps, ids, 1024);
    CHECK(k >= 0);
    int k2 = tok_encode(v, text, n, sp, ps, few, 3);
    CHECK(k2 == (k > 3 ? -k : k));
    for (int i = 0; i < k && i < 3; i++)
      CHECK(few[i] == ids[i]);
    for (int i = 0; i < k; i++)
      CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v));
  }
  tok_detok d;
  tok_detok_init(&d, v, 1, 0);
  char out[4096];
  for (int i = 0; i < 2000; i++) {
    int32_t id = (int32_t)(rng_next(&seed) % (uint64_t)tok_n_vocab(v));
    int r = tok_detok_push(&d, id, out, sizeof out);
    CHECK(r >= 0 && utf8_is_valid(out, (size_t)(r < 0 ? 0 : r)));
  }
  int r = tok_detok_flush(&d, out, sizeof out);
  CHECK(r >= 0 && utf8_is_valid(out, (size_t)(r < 0 ? 0 : r)));
}

static void test_fuzz_inputs(void) {
  tok_vocab *v = spm_vocab();
  if (v)
    fuzz_vocab(v, 0x1234567ull);
  tok_free(v);
  v = bpe_vocab("qwen2");
  if (v)
    fuzz_vocab(v, 0x89abcdefull);
  tok_free(v);
  v = bpe_vocab("default");
  if (v)
    fuzz_vocab(v, 0x5555ull);
  tok_free(v);
  v = fixture_vocab("tiny-qwen2", "llama-bpe");
  if (v)
    fuzz_vocab(v, 0x777ull);
  tok_free(v);
}

/* ---- conformance with llama.cpp (../shared) ---- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[n] = 0;
    *len = (size_t)n;
  }
  return b;
}

/* Opens a vocabulary file (gunzipping *.gz into a temp file first). */
static tok_vocab *open_vocab(const char *path, char *why, size_t whylen) {
  char tmp[64] = "";
  const char *p = path;
  size_t pl = strlen(path);
  if (pl > 3 && strcmp(path + pl - 3, ".gz") == 0) {
    snprintf(tmp, sizeof tmp, "/tmp/hearth-tok-%d.gguf", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s'", path, tmp);
    if (system(cmd) != 0) {
      snprintf(why, whylen, "gzip -dc %s failed", path);
      unlink(tmp);
      return NULL;
    }
    p = tmp;
  }
  gguf_file *g = NULL;
  tok_vocab *v = NULL;
  if (gguf_open(p, &g, why, whylen) == 0) {
    tok_load(g, &v, why, whylen);
    gguf_close(g);
  }
  if (*tmp)
    unlink(tmp);
  return v;
}

static const char *const VOCABS[] = {
    "llama-spm", "phi-3",     "llama-bpe",      "qwen2",    "gpt-2",
    "falcon",    "starcoder", "deepseek-coder", "bert-bge",
};

/* ../shared's directory sub (e.g. "testdata/tokenizers") into buf, or NULL
 * when ../shared or that directory is absent. */
static const char *shared_sub(const char *sub, char *buf, size_t len) {
  const char *sh = t_shared_dir();
  struct stat st;
  if (!sh)
    return NULL;
  snprintf(buf, len, "%s/%s", sh, sub);
  return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

/* Runs one .inp/.out pair; returns the number of failing cases. */
static int run_vocab_cases(const tok_vocab *v, const char *inp,
                           const char *outp, const char *name) {
  static const char SEP[] = "\n__ggml_vocab_test__\n";
  int fails = 0, cases = 0;
  const char *ip = inp, *op = outp;
  int32_t *ids = malloc(65536 * sizeof *ids);
  while (ids && *ip) {
    const char *e = strstr(ip, SEP);
    if (!e)
      break;
    const char *oe = strchr(op, '\n');
    if (!oe)
      oe = op + strlen(op);
    int n = tok_encode(v, ip, (size_t)(e - ip), 0, 0, ids, 65536);
    char got[8192];
    int gl = 0;
    for (int i = 0; i < n && gl < (int)sizeof got - 16; i++)
      gl += snprintf(got + gl, sizeof got - (size_t)gl, " %d", ids[i]);
    got[gl] = 0;
    size_t wl = (size_t)(oe - op);
    if ((size_t)gl != wl || memcmp(got, op, wl) != 0) {
      if (fails < 5)
        fprintf(stderr, "  %s case %d \"%.*s\":\n    got %s\n   want %.*s\n",
                name, cases, (int)(e - ip < 40 ? e - ip : 40), ip, got, (int)wl,
                op);
      fails++;
    }
    cases++;
    ip = e + sizeof SEP - 1;
    op = *oe ? oe + 1 : oe;
  }
  free(ids);
  CHECKF(cases == 46, "%s: %d cases", name, cases);
  return fails;
}

static void test_llamacpp_vectors(void) {
  char dir[512];
  if (!shared_sub("testdata/tokenizers", dir, sizeof dir))
    SKIP("../shared/testdata/tokenizers absent: no llama.cpp vectors");
  for (size_t k = 0; k < sizeof VOCABS / sizeof *VOCABS; k++) {
    char base[700], path[800], why[256] = "";
    snprintf(base, sizeof base, "%s/ggml-vocab-%s.gguf", dir, VOCABS[k]);
    struct stat st;
    snprintf(path, sizeof path, "%s", base);
    if (stat(path, &st) != 0)
      snprintf(path, sizeof path, "%s.gz", base);
    tok_vocab *v = open_vocab(path, why, sizeof why);
    CHECKF(v != NULL, "%s: %s", VOCABS[k], why);
    if (!v)
      continue;
    size_t il, ol;
    char ip[800], op[800];
    snprintf(ip, sizeof ip, "%s.inp", base);
    snprintf(op, sizeof op, "%s.out", base);
    char *inp = read_file(ip, &il), *out = read_file(op, &ol);
    CHECKF(inp && out, "%s: missing .inp/.out", VOCABS[k]);
    if (inp && out) {
      int f = run_vocab_cases(v, inp, out, VOCABS[k]);
      CHECKF(f == 0, "%s: %d of 46 cases differ", VOCABS[k], f);
    }
    free(inp);
    free(out);
    tok_free(v);
  }
}

/* tokenize[] of a golden file: ids (no special parsing) and ids_special. */
static int check_golden_entry(const tok_vocab *v, json_t *e, const char *file) {
  const char *text = json_string_value(json_object_get(e, "text"));
  if (!text)
    return 0;
  int bad = 0;
  const char *keys[2] = {"ids", "ids_special"};
  int32_t ids[4096];
  for (int k = 0; k < 2; k++) {
    json_t *want = json_object_get(e, keys[k]);
    if (!json_is_array(want))
      continue;
    int n = tok_encode(v, text, strlen(text), 0, k, ids, 4096);
    int same = n == (int)json_array_size(want);
    for (int i = 0; same && i < n; i++)
      same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
    if (!same) {
      fprintf(stderr, "  %s: %s of \"%.40s\" differ (n=%d want %zu)\n", file,
              keys[k], text, n, json_array_size(want));
      bad++;
    }
  }
  return bad;
}

static int check_golden_file(const char *gguf_path, const char *json_path,
                             int *n_checked) {
  json_error_t je;
  json_t *root = json_load_file(json_path, 0, &je);
  if (!root)
    return 0;
  json_t *arr = json_object_get(root, "tokenize");
  int bad = 0;
  if (json_array_size(arr) > 0) {
    char why[256] = "";
    tok_vocab *v = open_vocab(gguf_path, why, sizeof why);
    const char *vt = json_string_value(json_object_get(root, "vocabularyType"));
    if (!v && vt && strcmp(vt, "wpm") == 0) {
      fprintf(stderr, "  SKIP %s: %s\n", gguf_path, why);
    } else if (!v) {
      fprintf(stderr, "  %s: %s\n", gguf_path, why);
      bad++;
    } else {
      for (size_t i = 0; i < json_array_size(arr); i++)
        bad += check_golden_entry(v, json_array_get(arr, i), json_path);
      (*n_checked)++;
    }
    tok_free(v);
  }
  json_decref(root);
  return bad;
}

static void test_model_goldens(void) {
  char dir[512];
  if (!shared_sub("testdata/models", dir, sizeof dir))
    SKIP("../shared/testdata/models absent: no model goldens");
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s/*/*.golden.json", dir);
  FILE *ls = popen(cmd, "r");
  CHECK(ls != NULL);
  if (!ls)
    return;
  char line[1024];
  int bad = 0, files = 0;
  while (fgets(line, sizeof line, ls)) {
    line[strcspn(line, "\n")] = 0;
    char gguf[1024];
    size_t l = strlen(line);
    if (l < 12)
      continue;
    snprintf(gguf, sizeof gguf, "%.*s.gguf", (int)(l - 12), line);
    bad += check_golden_file(gguf, line, &files);
  }
  pclose(ls);
  CHECK(files > 0);
  CHECKF(bad == 0, "%d golden tokenizations differ", bad);
}

/* ---- in-repo goldens (tests/golden): llama.cpp on hearth's fixtures ---- */

/* Fixture parameters from a golden's fixture_args (argv words). Only the
 * flags that shape the vocabulary matter; the rest are applied when known
 * and otherwise ignored (they change weights, not tokens). */
static int golden_params(json_t *args, fixture_params *p) {
  fixture_default_params(p);
  size_t n = json_array_size(args);
  for (size_t i = 0; i + 1 < n; i += 2) {
    const char *k = json_string_value(json_array_get(args, i));
    const char *val = json_string_value(json_array_get(args, i + 1));
    if (!k || !val)
      return -1;
    if (!strcmp(k, "--preset") && fixture_preset(val, p))
      return -1;
    if (!strcmp(k, "--type") && fixture_set_type(p, val))
      return -1;
    if (!strcmp(k, "--seed"))
      p->seed = strtoull(val, NULL, 10);
    if (!strcmp(k, "--n-vocab"))
      p->n_vocab = atoi(val);
    if (!strcmp(k, "--tokenizer"))
      p->tokenizer = !strcmp(val, "bpe") ? FIXTURE_TOK_BPE : FIXTURE_TOK_SPM;
    if (!strcmp(k, "--bpe-pre"))
      snprintf(p->bpe_pre, sizeof p->bpe_pre, "%s", val);
  }
  return 0;
}

static int check_repo_golden(const char *json_path, int *n_checked) {
  json_error_t je;
  json_t *root = json_load_file(json_path, 0, &je);
  if (!root) {
    fprintf(stderr, "  %s: %s\n", json_path, je.text);
    return 1;
  }
  json_t *arr = json_object_get(root, "tokenize");
  fixture_params p;
  int bad = 0;
  if (json_array_size(arr) == 0) {
    json_decref(root);
    return 0;
  }
  char err[256] = "", path[64];
  snprintf(path, sizeof path, "/tmp/hearth-tokgold-%d.gguf", (int)getpid());
  if (golden_params(json_object_get(root, "fixture_args"), &p) ||
      fixture_write(&p, path, err, sizeof err)) {
    fprintf(stderr, "  %s: cannot rebuild fixture %s\n", json_path, err);
    json_decref(root);
    return 1;
  }
  tok_vocab *v = open_vocab(path, err, sizeof err);
  unlink(path);
  if (!v) {
    fprintf(stderr, "  %s: %s\n", json_path, err);
    bad++;
  } else {
    for (size_t i = 0; i < json_array_size(arr); i++)
      bad += check_golden_entry(v, json_array_get(arr, i), json_path);
    json_t *prompt = json_object_get(root, "prompt");
    const char *pt = json_string_value(json_object_get(root, "prompt_text"));
    if (pt && json_is_array(prompt)) { /* the prompt, BOS included */
      int32_t ids[4096];
      int n = tok_encode(v, pt, strlen(pt), 1, 0, ids, 4096);
      int same = n == (int)json_array_size(prompt);
      for (int k = 0; same && k < n; k++)
        same = ids[k] == json_integer_value(json_array_get(prompt, (size_t)k));
      if (!same) {
        fprintf(stderr, "  %s: prompt ids differ\n", json_path);
        bad++;
      }
    }
    (*n_checked)++;
  }
  tok_free(v);
  json_decref(root);
  return bad;
}

static void test_repo_goldens(void) {
  struct stat st;
  if (stat("tests/golden", &st) != 0)
    SKIP("tests/golden not found from the working directory");
  FILE *ls = popen("ls tests/golden/*.golden.json 2>/dev/null", "r");
  CHECK(ls != NULL);
  if (!ls)
    return;
  char line[1024];
  int bad = 0, files = 0;
  while (fgets(line, sizeof line, ls)) {
    line[strcspn(line, "\n")] = 0;
    bad += check_repo_golden(line, &files);
  }
  pclose(ls);
  if (files == 0 && bad == 0)
    SKIP("no tests/golden/*.golden.json with tokenize[] yet");
  CHECKF(bad == 0, "%d differences in tests/golden", bad);
}

/* ---- optional throughput measurement (not a test: no assertion) ----
 * HEARTH_TOK_BENCH=vocab.gguf HEARTH_TOK_BENCH_TEXT=file prints one JSON
 * line: tokens, best of 3 ms, MB/s and an FNV-1a checksum of the ids (as
 * little-endian int32), to compare with llama.cpp's on the same file. */
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void bench_if_asked(void) {
  const char *vp = getenv("HEARTH_TOK_BENCH"),
             *tp = getenv("HEARTH_TOK_BENCH_TEXT");
  if (!vp || !tp)
    return;
  char why[256] = "";
  size_t tl;
  tok_vocab *v = open_vocab(vp, why, sizeof why);
  char *text = read_file(tp, &tl);
  if (!v || !text) {
    fprintf(stderr, "bench: %s\n", v ? "cannot read text" : why);
    tok_free(v);
    free(text);
    return;
  }
  int cap = (int)tl + 16, n = 0;
  int32_t *ids = malloc((size_t)cap * sizeof *ids);
  double best = 1e30;
  for (int r = 0; r < 3 && ids; r++) {
    double t0 = now_ms();
    n = tok_encode(v, text, tl, 0, 0, ids, cap);
    double ms = now_ms() - t0;
    best = ms < best ? ms : best;
  }
  uint32_t h = 2166136261u;
  for (int i = 0; i < n; i++)
    for (int b = 0; b < 4; b++)
      h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xff)) * 16777619u;
  printf("{\"model\":\"%s\",\"tokens\":%d,\"best_ms\":%.2f,\"mb_s\":%.2f,"
         "\"fnv\":%u}\n",
         strrchr(vp, '/') ? strrchr(vp, '/') + 1 : vp, n, best,
         (double)tl / 1e6 / (best / 1e3), h);
  free(ids);
  free(text);
  tok_free(v);
}

int main(void) {
  bench_if_asked();
  RUN(test_spm_merges_and_prefix);
  RUN(test_spm_byte_fallback);
  RUN(test_spm_special_split);
  RUN(test_decode);
  RUN(test_detok_streaming);
  RUN(test_detok_every_split);
  RUN(test_bpe_merges);
  RUN(test_bpe_ignore_merges);
  RUN(test_bpe_special_split);
  RUN(test_decode_clean_spaces);
  RUN(test_all_pretokenizers);
  RUN(test_spm_no_fallback);
  RUN(test_bad_vocab);
  RUN(test_fixture_spm);
  RUN(test_fixture_bpe);
  RUN(test_fuzz_inputs);
  RUN(test_llamacpp_vectors);
  RUN(test_model_goldens);
  RUN(test_repo_goldens);
  T_MAIN_END();
}
