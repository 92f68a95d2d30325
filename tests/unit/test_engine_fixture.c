/* Tests of the fixture maker (engine/fixture.h): files it writes open with
 * the GGUF reader and carry the architecture's hyper-parameters, tensors of
 * the right shapes and types (including llama.cpp-like mixes and
 * fallbacks), valid vocabularies (SPM pieces; BPE merges whose parts and
 * results are all tokens), weights of the intended scale, and identical
 * bytes for identical parameters. */
#include "t.h"

#include <stdint.h>
#include <unistd.h>

#include "engine/fixture.h"
#include "engine/gguf.h"
#include "engine/quant.h"

static char path[96];
static const char *tmp(void) {
  snprintf(path, sizeof path, "/tmp/hearth_test_fixture_%d.gguf",
           (int)getpid());
  return path;
}

/* A small model: 1 layer, 256 wide, vocab 512. */
static void small(fixture_params *p, const char *preset) {
  fixture_default_params(p);
  CHECK_INT(fixture_preset(preset, p), 0);
  p->n_layer = 2;
  p->n_vocab = 512;
  p->n_ff = 256;
}

static gguf_file *write_open(const fixture_params *p) {
  char err[256];
  int rc = fixture_write(p, tmp(), err, sizeof err);
  CHECKF(rc == 0, "fixture_write: %s", err);
  if (rc)
    return NULL;
  gguf_file *f = NULL;
  rc = gguf_open(tmp(), &f, err, sizeof err);
  CHECKF(rc == 0, "gguf_open: %s", err);
  return f;
}

static int64_t get_i(const gguf_file *f, const char *key) {
  int64_t v = -1;
  CHECKF(gguf_get_int(f, key, &v) == 0, "missing %s", key);
  return v;
}

static int tok_id(const gguf_file *f, const char *s, size_t n) {
  uint64_t cnt;
  int et;
  gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &cnt);
  for (uint64_t i = 0; i < cnt; i++) {
    size_t l;
    const char *t = gguf_arr_str(f, "tokenizer.ggml.tokens", i, &l);
    if (l == n && memcmp(t, s, n) == 0)
      return (int)i;
  }
  return -1;
}

/* ---- parameters ---- */

static void test_params(void) {
  fixture_params p;
  char err[128];
  fixture_default_params(&p);
  CHECK_INT(fixture_validate(&p, err, sizeof err), 0);
  CHECK_INT(fixture_preset("nope", &p), -1);
  CHECK_INT(fixture_preset("qwen2.5-0.5b", &p), 0);
  CHECK(p.n_embd == 896 && p.n_layer == 24 && p.n_head == 14 &&
        p.n_head_kv == 2 && p.n_ff == 4864 && p.n_vocab == 151936 && p.tied);
  CHECK_INT(fixture_preset("smollm2-135m", &p), 0);
  CHECK(p.n_embd == 576 && p.n_layer == 30 && p.n_head == 9 &&
        p.n_head_kv == 3 && p.n_ff == 1536 && p.n_vocab == 49152);
  CHECK_INT(fixture_set_type(&p, "Q4_K_M"), 0);
  CHECK_INT(p.mix, FIXTURE_MIX_Q4_K_M);
  CHECK_INT(fixture_set_type(&p, "iq4_xs"), 0);
  CHECK(p.wtype == QT_IQ4_XS && p.mix == FIXTURE_MIX_NONE);
  CHECK_INT(fixture_set_type(&p, "q8_K"), -1); /* activation-only type */
  CHECK_INT(fixture_set_type(&p, "iq2_xs"), -1);
  fixture_default_params(&p);
  snprintf(p.arch, sizeof p.arch, "gpt9");
  CHECK(fixture_validate(&p, err, sizeof err) < 0 && strstr(err, "gpt9"));
  fixture_default_params(&p);
  p.n_head_kv = 3;
  CHECK(fixture_validate(&p, err, sizeof err) < 0 && strstr(err, "n_head_kv"));
  fixture_default_params(&p);
  p.n_vocab = 100;
  CHECK(fixture_validate(&p, err, sizeof err) < 0 && strstr(err, "n_vocab"));
}

static void test_mix_types(void) {
  fixture_params p;
  fixture_default_params(&p);
  fixture_preset("qwen2.5-0.5b", &p);
  fixture_set_type(&p, "Q4_K_M");
  /* 896-wide rows cannot hold 256-blocks: llama.cpp's substitutes */
  CHECK_INT(fixture_tensor_type(&p, "blk.5.attn_q.weight", 5, 896), QT_Q5_0);
  CHECK_INT(fixture_tensor_type(&p, "token_embd.weight", -1, 896), QT_Q8_0);
  CHECK_INT(fixture_tensor_type(&p, "blk.5.ffn_down.weight", 5, 4864), QT_Q6_K);
  CHECK_INT(fixture_tensor_type(&p, "blk.4.ffn_down.weight", 4, 4864), QT_Q4_K);
  CHECK_INT(fixture_tensor_type(&p, "blk.0.ffn_down.weight", 0, 4864), QT_Q6_K);
  CHECK_INT(fixture_tensor_type(&p, "blk.23.ffn_down.weight", 23, 4864),
            QT_Q6_K);
  CHECK_INT(fixture_tensor_type(&p, "blk.0.attn_norm.weight", 0, 896), QT_F32);
  CHECK_INT(fixture_tensor_type(&p, "blk.0.attn_q.bias", 0, 896), QT_F32);
}

/* ---- files ---- */

static void check_arch(const char *preset, const char *arch, int tok) {
  fixture_params p;
  small(&p, preset);
  gguf_file *f = write_open(&p);
  if (!f)
    return;
  size_t len;
  const char *a = gguf_get_str(f, "general.architecture", &len);
  CHECK(a && len == strlen(arch) && memcmp(a, arch, len) == 0);
  char k[96];
  snprintf(k, sizeof k, "%s.block_count", arch);
  CHECK_INT(get_i(f, k), 2);
  snprintf(k, sizeof k, "%s.embedding_length", arch);
  CHECK_INT(get_i(f, k), p.n_embd);
  snprintf(k, sizeof k, "%s.attention.head_count_kv", arch);
  CHECK_INT(get_i(f, k), p.n_head_kv);
  double eps;
  snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
  CHECK(gguf_get_float(f, k, &eps) == 0 && eps > 0);
  int et;
  uint64_t n;
  CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) == 0 &&
        n == (uint64_t)p.n_vocab);
  CHECK(gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &n) == 0 &&
        n == (uint64_t)p.n_vocab);
  const int64_t bos = get_i(f, "tokenizer.ggml.bos_token_id");
  const int64_t eos = get_i(f, "tokenizer.ggml.eos_token_id");
  CHECK(bos >= 0 && bos < p.n_vocab && eos >= 0 && eos < p.n_vocab);
  const char *model = gguf_get_str(f, "tokenizer.ggml.model", &len);
  CHECK(model &&
        memcmp(model, tok == FIXTURE_TOK_SPM ? "llama" : "gpt2", len) == 0);
  /* tensors */
  const gguf_tensor *e = gguf_find_tensor(f, "token_embd.weight");
  CHECK(e && e->ne[0] == p.n_embd && e->ne[1] == p.n_vocab);
  CHECK((gguf_find_tensor(f, "output.weight") != NULL) == !p.tied);
  const gguf_tensor *q = gguf_find_tensor(f, "blk.1.attn_q.weight");
  const int hd = p.head_dim ? p.head_dim : p.n_embd / p.n_head;
  CHECK(q && q->ne[0] == p.n_embd && q->ne[1] == p.n_head * hd &&
        q->type == QT_Q8_0);
  const gguf_tensor *kk = gguf_find_tensor(f, "blk.1.attn_k.weight");
  CHECK(kk && kk->ne[1] == p.n_head_kv * hd);
  const gguf_tensor *d = gguf_find_tensor(f, "blk.0.ffn_down.weight");
  CHECK(d && d->ne[0] == p.n_ff && d->ne[1] == p.n_embd);
  const gguf_tensor *nw = gguf_find_tensor(f, "blk.0.attn_norm.weight");
  CHECK(nw && nw->type == QT_F32 && nw->n_dims == 1);
  CHECK((gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL) ==
        (strcmp(arch, "qwen2") == 0));
  CHECK((gguf_find_tensor(f, "blk.0.attn_q_norm.weight") != NULL) ==
        (strcmp(arch, "qwen3") == 0 || strcmp(arch, "gemma3") == 0));
  const int gemma = strncmp(arch, "gemma", 5) == 0;
  const int post = gemma && strcmp(arch, "gemma") != 0; /* gemma2, gemma3 */
  CHECK((gguf_find_tensor(f, "blk.1.post_attention_norm.weight") != NULL) ==
        post);
  CHECK((gguf_find_tensor(f, "blk.1.post_ffw_norm.weight") != NULL) == post);
  if (tok == FIXTURE_TOK_BPE) {
    /* every merge "a b": a, b and ab are tokens */
    CHECK(gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n) == 0 && n > 100);
    int bad = 0;
    for (uint64_t i = 0; i < n; i += 7) {
      const char *m = gguf_arr_str(f, "tokenizer.ggml.merges", i, &len);
      const char *sp = memchr(m + 1, ' ', len - 1);
      if (!sp) {
        bad++;
        continue;
      }
      char joined[128];
      size_t la = (size_t)(sp - m), lb = len - la - 1;
      memcpy(joined, m, la);
      memcpy(joined + la, sp + 1, lb);
      bad += tok_id(f, m, la) < 0 || tok_id(f, sp + 1, lb) < 0 ||
             tok_id(f, joined, la + lb) < 0;
    }
    CHECK_INT(bad, 0);
    CHECK(tok_id(f, "\xc4\xa0the", 4) >= 0); /* "Ġthe" */
    CHECK(tok_id(f, "\xc4\x8a", 2) >= 0);    /* "Ċ": newline byte */
  } else {
    CHECK(tok_id(f, "<0x0A>", 6) >= 0);
    CHECK(tok_id(f, "\xe2\x96\x81the", 6) >= 0);
    CHECK_INT(gemma ? tok_id(f, "<bos>", 5) : tok_id(f, "<s>", 3), bos);
    double sc;
    CHECK(gguf_arr_get_float(f, "tokenizer.ggml.scores", 300, &sc) == 0);
  }
  gguf_close(f);
  unlink(tmp());
}

static void test_llama_spm(void) {
  check_arch("tiny-llama", "llama", FIXTURE_TOK_SPM);
}
static void test_llama_bpe(void) {
  check_arch("tiny-llama-bpe", "llama", FIXTURE_TOK_BPE);
}
static void test_qwen2(void) {
  check_arch("tiny-qwen2", "qwen2", FIXTURE_TOK_BPE);
}
static void test_qwen3(void) {
  check_arch("tiny-qwen3", "qwen3", FIXTURE_TOK_BPE);
}

/* Gemma: the keys llama.cpp reads for its sliding window, soft caps and
 * rope scaling; Gemma's vocabulary (<pad> <eos> <bos> <unk>, turn markers
 * as control tokens, no space prefix) and chat template; post-norms of the
 * intended mean. */
static void check_gemma(const char *preset, int window, double attn_cap,
                        double final_cap, double rope_factor) {
  fixture_params p;
  small(&p, preset);
  check_arch(preset, p.arch, FIXTURE_TOK_SPM);
  gguf_file *f = write_open(&p);
  if (!f)
    return;
  char k[96];
  double d;
  snprintf(k, sizeof k, "%s.attention.sliding_window", p.arch);
  CHECK_INT(get_i(f, k), window);
  snprintf(k, sizeof k, "%s.attention.key_length", p.arch);
  CHECK_INT(get_i(f, k), p.head_dim);
  snprintf(k, sizeof k, "%s.attn_logit_softcapping", p.arch);
  CHECK(attn_cap > 0 ? gguf_get_float(f, k, &d) == 0 && d == attn_cap
                     : gguf_find_key(f, k) < 0);
  snprintf(k, sizeof k, "%s.final_logit_softcapping", p.arch);
  CHECK(final_cap > 0 ? gguf_get_float(f, k, &d) == 0 && d == final_cap
                      : gguf_find_key(f, k) < 0);
  snprintf(k, sizeof k, "%s.rope.scaling.factor", p.arch);
  CHECK(rope_factor > 0 ? gguf_get_float(f, k, &d) == 0 && d == rope_factor
                        : gguf_find_key(f, k) < 0);
  CHECK_INT(tok_id(f, "<pad>", 5), 0);
  CHECK_INT(get_i(f, "tokenizer.ggml.eos_token_id"), tok_id(f, "<eos>", 5));
  CHECK_INT(get_i(f, "tokenizer.ggml.padding_token_id"), 0);
  const int sot = tok_id(f, "<start_of_turn>", 15);
  const int eot = tok_id(f, "<end_of_turn>", 13);
  int64_t ty = 0;
  CHECK(sot > 0 &&
        gguf_arr_get_int(f, "tokenizer.ggml.token_type", sot, &ty) == 0 &&
        ty == 3);
  CHECK(eot > 0 &&
        gguf_arr_get_int(f, "tokenizer.ggml.token_type", eot, &ty) == 0 &&
        ty == 3);
  int b = 1;
  CHECK(gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &b) == 0 && !b);
  size_t len;
  const char *tpl = gguf_get_str(f, "tokenizer.chat_template", &len);
  CHECK(tpl && memmem(tpl, len, "<start_of_turn>", 15));
  /* post-norms around 2 sqrt(n_embd / (2 n_layer)), other norms around 1 */
  const gguf_tensor *pn = gguf_find_tensor(f, "blk.0.post_ffw_norm.weight");
  const gguf_tensor *an = gguf_find_tensor(f, "blk.0.attn_norm.weight");
  if (pn && an) {
    double mp = 0, ma = 0;
    for (int i = 0; i < p.n_embd; i++) {
      mp += ((const float *)pn->data)[i];
      ma += ((const float *)an->data)[i];
    }
    CHECK_NEAR(mp / p.n_embd, 2 * sqrt(p.n_embd / (2.0 * p.n_layer)), 0.05);
    CHECK_NEAR(ma / p.n_embd, 1.0, 0.05);
  }
  gguf_close(f);
  unlink(tmp());
}

/* Gemma 1: Gemma's vocabulary, no window, tiny embeddings and a large
 * output norm (see the fixture's mean_of). */
static void test_gemma1(void) {
  check_arch("tiny-gemma", "gemma", FIXTURE_TOK_SPM);
  fixture_params p;
  small(&p, "tiny-gemma");
  gguf_file *f = write_open(&p);
  if (!f)
    return;
  CHECK(gguf_find_key(f, "gemma.attention.sliding_window") < 0);
  CHECK(tok_id(f, "<end_of_turn>", 13) > 0);
  const gguf_tensor *on = gguf_find_tensor(f, "output_norm.weight");
  const gguf_tensor *e = gguf_find_tensor(f, "token_embd.weight");
  if (on && e && e->type == QT_Q8_0) {
    double m = 0, s2 = 0;
    for (int i = 0; i < p.n_embd; i++)
      m += ((const float *)on->data)[i];
    float row[256];
    q_dequant_row(e->type, e->data, row, 256);
    for (int i = 0; i < 256; i++)
      s2 += (double)row[i] * row[i];
    CHECK_NEAR(m / p.n_embd, 30.0, 0.1);
    CHECK_NEAR(sqrt(s2 / 256), 0.1 / sqrt(p.n_embd), 0.002);
  }
  gguf_close(f);
  unlink(tmp());
}

static void test_gemma2(void) {
  check_gemma("tiny-gemma2", 6, 4, 15, 0);
}
static void test_gemma3(void) {
  check_gemma("tiny-gemma3", 6, 0, 0, 8);
  /* the sliding layers' period, written only when given */
  fixture_params p;
  char err[128];
  small(&p, "tiny-gemma3");
  p.swa_pattern = 3;
  gguf_file *f = write_open(&p);
  if (f) {
    CHECK_INT(get_i(f, "gemma3.attention.sliding_window_pattern"), 3);
    gguf_close(f);
  }
  small(&p, "tiny-gemma3");
  f = write_open(&p);
  if (f) {
    CHECK(gguf_find_key(f, "gemma3.attention.sliding_window_pattern") < 0);
    gguf_close(f);
  }
  unlink(tmp());
  /* gemma vocabularies are SentencePiece ones */
  small(&p, "tiny-gemma2");
  p.tokenizer = FIXTURE_TOK_BPE;
  CHECK(fixture_validate(&p, err, sizeof err) < 0 && strstr(err, "spm"));
}

/* Every weight type: the matrices carry it and hold values of the intended
 * scale (std 1/sqrt(fan_in)). */
static void test_every_type(void) {
  static const char *types[] = {"f32",  "f16",  "bf16", "q8_0",   "q4_0",
                                "q4_1", "q5_0", "q5_1", "q2_K",   "q3_K",
                                "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    fixture_params p;
    small(&p, "tiny-llama");
    p.n_layer = 1;
    CHECK_INT(fixture_set_type(&p, types[i]), 0);
    gguf_file *f = write_open(&p);
    if (!f)
      continue;
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_gate.weight");
    CHECKF(t && t->type == qtype_from_name(types[i]), "%s: type %s", types[i],
           t ? qtype_name(t->type) : "none");
    if (t) {
      const int64_t n = t->ne[0] * t->ne[1];
      float *y = malloc((size_t)n * sizeof *y);
      q_dequant_row(t->type, t->data, y, n);
      double s2 = 0, m = 0;
      for (int64_t j = 0; j < n; j++) {
        s2 += (double)y[j] * y[j];
        m += y[j];
      }
      const double sd = sqrt(s2 / n), want = 1 / sqrt((double)t->ne[0]);
      CHECKF(fabs(sd - want) < 0.25 * want && fabs(m / n) < 0.1 * want,
             "%s: std %g (want %g), mean %g", types[i], sd, want, m / n);
      free(y);
    }
    gguf_close(f);
  }
  unlink(tmp());
}

static void test_deterministic(void) {
  fixture_params p;
  small(&p, "tiny-qwen2");
  char err[256], p2[128];
  snprintf(p2, sizeof p2, "%s.b", tmp());
  CHECK_INT(fixture_write(&p, tmp(), err, sizeof err), 0);
  CHECK_INT(fixture_write(&p, p2, err, sizeof err), 0);
  FILE *a = fopen(tmp(), "rb"), *b = fopen(p2, "rb");
  int same = a && b, ca, cb;
  while (same && (ca = fgetc(a)) != EOF) {
    cb = fgetc(b);
    same = ca == cb;
  }
  if (same && b)
    same = fgetc(b) == EOF;
  CHECK(same);
  if (a)
    fclose(a);
  if (b)
    fclose(b);
  p.seed = 2;
  CHECK_INT(fixture_write(&p, p2, err, sizeof err), 0);
  gguf_file *f1, *f2;
  CHECK_INT(gguf_open(tmp(), &f1, err, sizeof err), 0);
  CHECK_INT(gguf_open(p2, &f2, err, sizeof err), 0);
  const gguf_tensor *t1 = gguf_find_tensor(f1, "blk.0.attn_q.weight"),
                    *t2 = gguf_find_tensor(f2, "blk.0.attn_q.weight");
  CHECK(t1 && t2 && memcmp(t1->data, t2->data, t1->nbytes) != 0);
  gguf_close(f1);
  gguf_close(f2);
  unlink(tmp());
  unlink(p2);
}

static void test_write_error(void) {
  fixture_params p;
  fixture_default_params(&p);
  char err[256] = "";
  CHECK(fixture_write(&p, "/nonexistent-dir/x.gguf", err, sizeof err) < 0);
  CHECK(strstr(err, "/nonexistent-dir/x.gguf") != NULL);
}

int main(void) {
  RUN(test_params);
  RUN(test_mix_types);
  RUN(test_llama_spm);
  RUN(test_llama_bpe);
  RUN(test_qwen2);
  RUN(test_qwen3);
  RUN(test_gemma1);
  RUN(test_gemma2);
  RUN(test_gemma3);
  RUN(test_every_type);
  RUN(test_deterministic);
  RUN(test_write_error);
  T_MAIN_END();
}
