/* Correctness of the engine's forward pass against llama.cpp: for every
 * decoder model with a *.golden.json recorded by node-llama-cpp (the in-repo
 * goldens of fixtures in tests/golden/, rebuilt with the fixture maker, and
 * the shared test data in ../shared/testdata/models when present), the
 * prompt is evaluated in one batch (in chunks of 16: the prefill path) and
 * the golden greedy continuation token by token (the decode path), teacher
 * forced, and compared: the top-5 probabilities at every
 * position and greedy step, and the argmax where llama.cpp's top-2 margin is
 * clear. Tolerances: see `tolerance` below; each model prints its figures.
 * Also a Gemma fixture through the chat path (template without a system
 * role, turn markers, end of turn). Uses only the public API (engine.h),
 * the chat renderer, the fixture maker, and jansson. */
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/fixture.h"
#include "t.h"

typedef struct {
  double max_abs, max_excess; /* worst |p - p_ref|, worst over tolerance */
  double sum_abs;             /* for the mean |p - p_ref| */
  int n_checked, n_argmax, n_argmax_checked;
} cmp_stats;

/* How close to llama.cpp a model must come. Random-weight models amplify
 * any rounding difference: where activations are rounded (to Q8 blocks in
 * quantized matmuls, to f16/bf16 for f16/bf16 weights), one value landing
 * on the other side of a rounding boundary moves probabilities by up to a
 * few 1e-2 (measured: hearth's own scalar and SIMD kernels differ from each
 * other that much), so those get a loose per-probability bound, a tight
 * bound on the mean, and argmax agreement; f16/bf16 weights round the
 * activations more finely than Q8 blocks do; f32 has no such rounding. */
typedef struct {
  double max_abs;  /* every |p - p_ref| */
  double mean_abs; /* mean |p - p_ref| over the top-5 lists */
  double agree;    /* share of equal argmax where the top-2 margin > 1e-3 */
} tolerance;

enum { W_F32 = 0, W_F16 = 1, W_QUANT = 2 }; /* weight kinds, by tolerance */
static const tolerance TOLS[3] = {
    {2e-3, 1e-4, 0.99},   /* f32 */
    {1.5e-2, 1e-3, 0.95}, /* f16, bf16 */
    {6e-2, 5e-3, 0.9},    /* quantized (Q8_0/Q8_1/Q8_K activations) */
};

/* Softmax of logits into p (n). */
static void softmax(const float *l, float *p, int n) {
  float mx = l[0];
  for (int i = 1; i < n; i++)
    if (l[i] > mx)
      mx = l[i];
  double s = 0;
  for (int i = 0; i < n; i++)
    s += p[i] = expf(l[i] - mx);
  for (int i = 0; i < n; i++)
    p[i] = (float)(p[i] / s);
}

static int argmax(const float *p, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (p[i] > p[b])
      b = i;
  return b;
}

/* Compares our distribution p against one golden "top" list. */
static void compare_top(const float *p, int n_vocab, json_t *top,
                        const tolerance *tol, const char *what, int idx,
                        cmp_stats *st) {
  size_t nt = json_array_size(top);
  for (size_t j = 0; j < nt; j++) {
    json_t *e = json_array_get(top, j);
    int tok = (int)json_integer_value(json_array_get(e, 0));
    double ref = json_number_value(json_array_get(e, 1));
    if (tok < 0 || tok >= n_vocab) {
      CHECKF(0, "%s %d: golden token %d out of range", what, idx, tok);
      continue;
    }
    double d = fabs(p[tok] - ref);
    if (d > st->max_abs)
      st->max_abs = d;
    st->sum_abs += d;
    st->n_checked++;
  }
  if (nt >= 2) {
    double p0 = json_number_value(json_array_get(json_array_get(top, 0), 1));
    double p1 = json_number_value(json_array_get(json_array_get(top, 1), 1));
    int ref_tok =
        (int)json_integer_value(json_array_get(json_array_get(top, 0), 0));
    if (p0 - p1 > 1e-3) {
      int ours = argmax(p, n_vocab);
      st->n_argmax_checked++;
      st->n_argmax += ours == ref_tok;
      /* a clear margin must give the same token */
      CHECKF(ours == ref_tok || p0 - p1 <= tol->max_abs,
             "%s %d: argmax %d vs llama.cpp %d (margin %.4f)", what, idx, ours,
             ref_tok, p0 - p1);
    }
  }
}

/* The weight kind of a type name ("f32", "F16", "q4_K", "Q4_K_M"...). */
static int kind_of_type(const char *t) {
  if (!strcasecmp(t, "f32"))
    return W_F32;
  if (!strcasecmp(t, "f16") || !strcasecmp(t, "bf16"))
    return W_F16;
  return W_QUANT;
}

/* The weight kind of a shared model, from its file name (NAME-TYPE.gguf). */
static int kind_of_path(const char *path) {
  const char *dash = strrchr(path, '-');
  char t[16] = "";
  if (dash)
    snprintf(t, sizeof t, "%.*s", (int)strcspn(dash + 1, "."), dash + 1);
  return kind_of_type(t);
}

/* Evaluates the model at model_path (NULL: the .gguf beside the golden)
 * against one golden file; returns 0 when it was checked. */
static int check_golden(const char *golden_path, const char *model_at, int kind,
                        int n_threads) {
  json_error_t jerr;
  json_t *g = json_load_file(golden_path, 0, &jerr);
  CHECKF(g != NULL, "%s: %s", golden_path, jerr.text);
  if (!g)
    return -1;
  json_t *prompt = json_object_get(g, "prompt");
  json_t *positions = json_object_get(g, "positions");
  json_t *greedy = json_object_get(g, "greedy");
  if (!prompt || !positions) { /* encoder goldens (bert): not a decoder */
    json_decref(g);
    return 1;
  }
  char model_path[1024];
  snprintf(model_path, sizeof model_path, "%s",
           model_at ? model_at : golden_path);
  char *suffix = strstr(model_path, ".golden.json");
  if (suffix)
    strcpy(suffix, ".gguf");
  if (kind < 0)
    kind = kind_of_path(model_path);
  const tolerance *tol = &TOLS[kind];

  char err[512];
  eng_model *m = NULL;
  int rc = eng_model_load(model_path, NULL, &m, err, sizeof err);
  CHECKF(rc == ENG_OK, "%s: %s", model_path, err);
  if (rc) {
    json_decref(g);
    return -1;
  }
  int np = (int)json_array_size(prompt);
  json_t *gtoks = greedy ? json_object_get(greedy, "tokens") : NULL;
  json_t *steps = greedy ? json_object_get(greedy, "steps") : NULL;
  int ng = (int)json_array_size(gtoks);
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_ctx = np + ng + 8;
  cp.n_threads = n_threads;
  cp.n_batch = 16; /* several chunks: exercises the chunked prefill */
  eng_ctx *ctx = NULL;
  rc = eng_ctx_new(m, &cp, &ctx, err, sizeof err);
  CHECKF(rc == ENG_OK, "%s", err);
  int n = np + ng, nv = eng_model_n_vocab(m);
  eng_batch b = eng_batch_init(n);
  float *p = malloc(sizeof(float) * nv);
  cmp_stats st = {0};
  if (!rc && b.tok && p) {
    /* the prompt in one batch (chunks of n_batch: prefill path) */
    for (int i = 0; i < np; i++)
      eng_batch_add(&b, (int32_t)json_integer_value(json_array_get(prompt, i)),
                    i, 0, 1);
    rc = eng_decode(ctx, &b);
    CHECKF(rc == ENG_OK, "decode: %s", eng_ctx_last_error(ctx));
    for (int i = 0; !rc && i < np; i++) {
      softmax(eng_get_logits(ctx, i), p, nv);
      json_t *pos = json_array_get(positions, i);
      compare_top(p, nv, json_object_get(pos, "top"), tol, "position", i, &st);
    }
    /* then the golden greedy tokens one at a time (decode path, teacher
     * forced): step k's distribution follows prompt + greedy[0..k) */
    for (int k = 0; !rc && k < (int)json_array_size(steps) && k < ng; k++) {
      if (k > 0) {
        eng_batch_clear(&b);
        eng_batch_add(&b,
                      (int32_t)json_integer_value(json_array_get(gtoks, k - 1)),
                      np + k - 1, 0, 1);
        rc = eng_decode(ctx, &b);
        CHECKF(rc == ENG_OK, "decode: %s", eng_ctx_last_error(ctx));
        if (rc)
          break;
      }
      softmax(eng_get_logits(ctx, k > 0 ? 0 : np - 1), p, nv);
      compare_top(p, nv, json_object_get(json_array_get(steps, k), "top"), tol,
                  "greedy step", k, &st);
    }
  }
  double mean = st.n_checked ? st.sum_abs / st.n_checked : 0;
  double agree =
      st.n_argmax_checked ? (double)st.n_argmax / st.n_argmax_checked : 1.0;
  CHECKF(st.max_abs <= tol->max_abs, "%s: max |dp| %.3g > %.3g", golden_path,
         st.max_abs, tol->max_abs);
  CHECKF(mean <= tol->mean_abs, "%s: mean |dp| %.3g > %.3g", golden_path, mean,
         tol->mean_abs);
  CHECKF(agree >= tol->agree, "%s: argmax agreement %.3f < %.2f", golden_path,
         agree, tol->agree);
  const char *base = strrchr(golden_path, '/');
  fprintf(
      stderr,
      "  %-34s %3d probs, max |dp| %.2e mean %.1e, argmax %d/%d where margin "
      "> 1e-3\n",
      base ? base + 1 : golden_path, st.n_checked, st.max_abs, mean,
      st.n_argmax, st.n_argmax_checked);
  free(p);
  eng_batch_free(&b);
  eng_ctx_free(ctx);
  eng_model_free(m);
  json_decref(g);
  return 0;
}

/* Checks every *.golden.json under dir; returns how many were checked. */
static int check_dir(const char *pattern, int n_threads) {
  glob_t gl;
  int n = 0;
  if (glob(pattern, 0, NULL, &gl) != 0)
    return 0;
  for (size_t i = 0; i < gl.gl_pathc; i++)
    if (check_golden(gl.gl_pathv[i], NULL, -1, n_threads) == 0)
      n++;
  globfree(&gl);
  return n;
}

static void test_shared_synthetic(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared is absent (no llama.cpp goldens of shared models)");
  char pat[512];
  snprintf(pat, sizeof pat, "%s/testdata/models/synthetic/*.golden.json", sh);
  int n = check_dir(pat, 1);
  fprintf(stderr, "  (tiny-bert-*: encoder goldens, skipped: bert is not a "
                  "decoder architecture of this engine)\n");
  CHECKF(n > 0, "no decoder goldens found under %s", pat);
}

static void test_shared_stories(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared is absent (no stories260K golden)");
  char pat[512];
  snprintf(pat, sizeof pat, "%s/testdata/models/stories260K/*.golden.json", sh);
  CHECK(check_dir(pat, 2) == 1);
}

/* Sets the numeric fixture option k (a `hearth fixture` flag) from v.
 * Returns 0, or -1 for a flag it does not know. */
static int fixture_num_option(fixture_params *p, const char *k, const char *v) {
  static const char *const ints[] = {"--swa-pattern", "--n-layer",
                                     "--sliding-window"};
  static const char *const floats[] = {"--final-softcap", "--attn-softcap",
                                       "--rope-theta", "--rope-scale"};
  int *iv[] = {&p->swa_pattern, &p->n_layer, &p->sliding_window};
  float *fv[] = {&p->final_softcap, &p->attn_softcap, &p->rope_theta,
                 &p->rope_scale_linear};
  for (int i = 0; i < 3; i++)
    if (!strcmp(k, ints[i])) {
      *iv[i] = atoi(v);
      return 0;
    }
  for (int i = 0; i < 4; i++)
    if (!strcmp(k, floats[i])) {
      *fv[i] = strtof(v, NULL);
      return 0;
    }
  return -1;
}

/* Rebuilds the fixture a repo golden names (fixture_args: --preset P
 * --type T --seed S, and the numeric options of fixture_num_option) into
 * path, and its weight kind (W_*) into *kind. Returns 0, or -1 on error. */
static int make_fixture(json_t *args, const char *path, int *kind) {
  fixture_params p;
  fixture_default_params(&p);
  char err[256] = "";
  *kind = W_QUANT;
  for (size_t i = 0; i + 1 < json_array_size(args); i += 2) {
    const char *k = json_string_value(json_array_get(args, i));
    const char *v = json_string_value(json_array_get(args, i + 1));
    int bad = !k || !v;
    if (!bad && !strcmp(k, "--preset"))
      bad = fixture_preset(v, &p) != 0;
    else if (!bad && !strcmp(k, "--type")) {
      bad = fixture_set_type(&p, v) != 0;
      *kind = kind_of_type(v);
    } else if (!bad && !strcmp(k, "--seed"))
      p.seed = strtoull(v, NULL, 10);
    else if (!bad)
      bad = fixture_num_option(&p, k, v) != 0;
    CHECKF(!bad, "fixture argument %s %s not understood", k ? k : "?",
           v ? v : "?");
    if (bad)
      return -1;
  }
  int rc = fixture_write(&p, path, err, sizeof err);
  CHECKF(rc == 0, "fixture: %s", err);
  return rc ? -1 : 0;
}

static void test_repo_goldens(void) {
  glob_t gl;
  if (glob("tests/golden/*.golden.json", 0, NULL, &gl) != 0)
    SKIP("no tests/golden/*.golden.json (run from the repository root)");
  char path[] = "/tmp/hearth_golden_fixture_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  int n = 0;
  for (size_t i = 0; fd >= 0 && i < gl.gl_pathc; i++) {
    json_t *g = json_load_file(gl.gl_pathv[i], 0, NULL);
    int kind = W_QUANT;
    if (g &&
        make_fixture(json_object_get(g, "fixture_args"), path, &kind) == 0 &&
        check_golden(gl.gl_pathv[i], path, kind, 1) == 0)
      n++;
    json_decref(g);
  }
  if (fd >= 0) {
    close(fd);
    remove(path);
  }
  CHECKF(n == (int)gl.gl_pathc, "%d of %zu repo goldens checked", n,
         gl.gl_pathc);
  globfree(&gl);
}

/* Id of `text` when it tokenizes (special tokens parsed) as one token. */
static int32_t one_token(const eng_model *m, const char *text) {
  int32_t ids[4];
  int n = eng_tokenize(m, text, strlen(text), 0, 1, ids, 4);
  return n == 1 ? ids[0] : -1;
}

/* Writes the fixture p to a temporary file and loads it (the file is
 * removed); NULL (with a failed check) when either step fails. */
static eng_model *load_fixture(const fixture_params *p) {
  char path[] = "/tmp/hearth_model_fixture_XXXXXX", err[256] = "";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0)
    return NULL;
  close(fd);
  eng_model *m = NULL;
  CHECKF(fixture_write(p, path, err, sizeof err) == 0, "%s", err);
  CHECKF(eng_model_load(path, NULL, &m, err, sizeof err) == ENG_OK, "%s", err);
  remove(path);
  return m;
}

/* A Gemma model through the chat path: its template (tpl: the fixture's
 * own when NULL) has no system role, so the system text is folded into the
 * first user turn; assistant turns are the "model" role; the turn markers
 * tokenize as single control tokens, <end_of_turn> ends a generation, and a
 * greedy reply decodes. */
static void gemma_chat(const char *tpl) {
  char err[256] = "";
  fixture_params p;
  fixture_default_params(&p);
  fixture_preset("tiny-gemma3", &p);
  p.chat_template = tpl;
  eng_model *m = load_fixture(&p);
  if (!m)
    return;
  CHECK_STR(eng_model_arch(m), "gemma3");
  chat_template *t = chat_template_new(m, err, sizeof err);
  CHECKF(t != NULL, "%s", err);
  if (!t) {
    eng_model_free(m);
    return;
  }
  CHECK(!chat_template_has_system_role(t) && !chat_template_is_chatml(t));
  json_t *msgs =
      json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "system",
                "content", "Be brief.", "role", "user", "content",
                "Hello world", "role", "assistant", "content", "Hi there ",
                "role", "user", "content", "Once upon a time");
  char *out = NULL;
  size_t len = 0;
  CHECKF(chat_render(t, msgs, NULL, &out, &len, err, sizeof err) == 0, "%s",
         err);
  CHECK_STR(out, "<bos><start_of_turn>user\nBe brief.\n\nHello "
                 "world<end_of_turn>\n<start_of_turn>model\nHi "
                 "there<end_of_turn>\n<start_of_turn>user\nOnce upon a "
                 "time<end_of_turn>\n<start_of_turn>model\n");
  const int32_t sot = one_token(m, "<start_of_turn>");
  const int32_t eot = one_token(m, "<end_of_turn>");
  CHECK(sot >= 0 && eot >= 0 && eng_token_is_eog(m, eot));
  CHECK(!eng_token_is_eog(m, sot));
  int32_t ids[256];
  int n = out ? eng_tokenize(m, out, len, 0, 1, ids, 256) : 0;
  CHECK(n > 8 && ids[0] == eng_token_bos(m) && ids[1] == sot);
  int n_sot = 0, n_eot = 0; /* four turns, three of them ended */
  for (int i = 0; i < n; i++) {
    n_sot += ids[i] == sot;
    n_eot += ids[i] == eot;
  }
  CHECK(n_sot == 4 && n_eot == 3);
  CHECK(out && !chat_prompt_wants_bos(t, out));
  /* a greedy reply: every token in range, the prompt's logits finite */
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_ctx = 512;
  cp.n_threads = 1;
  eng_ctx *c = NULL;
  CHECK(n > 0 && eng_ctx_new(m, &cp, &c, err, sizeof err) == ENG_OK);
  eng_batch b = eng_batch_init(256);
  for (int i = 0; c && i < n; i++)
    eng_batch_add(&b, ids[i], i, 0, i == n - 1);
  int ok = c && eng_decode(c, &b) == ENG_OK;
  CHECK(ok);
  for (int k = 0; ok && k < 8; k++) {
    const float *l = eng_get_logits(c, b.n_tokens - 1);
    int best = 0;
    for (int v = 1; v < eng_model_n_vocab(m); v++)
      best = l[v] > l[best] ? v : best;
    CHECK(isfinite(l[best]));
    eng_batch_clear(&b);
    eng_batch_add(&b, best, n + k, 0, 1);
    ok = eng_decode(c, &b) == ENG_OK;
    CHECK(ok);
  }
  eng_batch_free(&b);
  eng_ctx_free(c);
  free(out);
  json_decref(msgs);
  chat_template_free(t);
  eng_model_free(m);
}

static void test_gemma_chat(void) {
  gemma_chat(NULL);
}

/* Loads a tiny-gemma3 fixture whose file has `from` renamed to `to` (same
 * length); returns eng_model_load's status, its message in err. */
static int load_renamed(const char *from, const char *to, char *err,
                        size_t errlen) {
  char path[] = "/tmp/hearth_gemma_renamed_XXXXXX";
  int fd = mkstemp(path), rc = -1;
  if (fd < 0)
    return -1;
  close(fd);
  fixture_params p;
  fixture_default_params(&p);
  fixture_preset("tiny-gemma3", &p);
  FILE *f = NULL;
  char *buf = NULL;
  long n = 0;
  if (fixture_write(&p, path, err, errlen) == 0 && (f = fopen(path, "r+b")) &&
      !fseek(f, 0, SEEK_END) && (n = ftell(f)) > 0 &&
      (buf = malloc((size_t)n)) && !fseek(f, 0, SEEK_SET) &&
      fread(buf, 1, (size_t)n, f) == (size_t)n) {
    char *at = memmem(buf, (size_t)n, from, strlen(from));
    CHECKF(at != NULL, "'%s' not in the fixture", from);
    if (at && !fseek(f, at - buf, SEEK_SET) &&
        fwrite(to, 1, strlen(to), f) == strlen(to) && !fclose(f)) {
      f = NULL;
      eng_model *m = NULL;
      rc = eng_model_load(path, NULL, &m, err, errlen);
      eng_model_free(m);
    }
  }
  if (f)
    fclose(f);
  free(buf);
  remove(path);
  return rc;
}

/* Gemma files missing a tensor their architecture needs are refused with
 * its name; gemma3n (another architecture) is refused by name too. */
static void test_gemma_refusals(void) {
  char err[256] = "";
  CHECK_INT(load_renamed("blk.1.post_ffw_norm.weight",
                         "blk.1.post_ffw_xxxx.weight", err, sizeof err),
            ENG_ERR_FORMAT);
  CHECKF(strstr(err, "blk.1.post_ffw_norm.weight") != NULL, "%s", err);
  CHECK_INT(load_renamed("blk.0.attn_k_norm.weight", "blk.0.attn_k_xxxx.weight",
                         err, sizeof err),
            ENG_ERR_FORMAT);
  CHECKF(strstr(err, "blk.0.attn_k_norm.weight") != NULL, "%s", err);
  /* the first "gemma3" is general.architecture's value (written first) */
  CHECK_INT(load_renamed("gemma3", "gemma9", err, sizeof err),
            ENG_ERR_UNSUPPORTED);
  CHECKF(strstr(err, "'gemma9'") != NULL, "%s", err);
}

/* The same with Gemma 2's own template (../shared/testdata/templates). */
static void test_gemma_chat_real_template(void) {
  const char *sh = t_shared_dir();
  if (!sh)
    SKIP("../shared is absent (no Gemma chat template)");
  char path[512];
  snprintf(path, sizeof path,
           "%s/testdata/templates/google-gemma-2-2b-it.jinja", sh);
  FILE *f = fopen(path, "rb");
  CHECKF(f != NULL, "%s: cannot open", path);
  if (!f)
    return;
  char *src = calloc(1, 1 << 16);
  size_t n = src ? fread(src, 1, (1 << 16) - 1, f) : 0;
  fclose(f);
  CHECK(n > 100);
  if (n > 100)
    gemma_chat(src);
  free(src);
}

/* Softmax of the logits of batch entry i into p (n_vocab). */
static void probs_of(eng_ctx *c, int i, float *p, int nv) {
  const float *l = eng_get_logits(c, i);
  if (l)
    softmax(l, p, nv);
  else
    memset(p, 0, sizeof(float) * (size_t)nv);
}

/* Gemma's sliding window with several sequences at once: three prompts of
 * different lengths (longer than the window) prefilled in one batch, then
 * decoded together a token per sequence per step, give each sequence the
 * distributions it gets alone (the window counts each sequence's own
 * positions). */
static void test_gemma_batched(void) {
  fixture_params p;
  fixture_default_params(&p);
  fixture_preset("tiny-gemma2", &p); /* window 6, soft caps */
  fixture_set_type(&p, "f32");
  p.seed = 7;
  char err[256] = "";
  eng_model *m = load_fixture(&p);
  if (!m)
    return;
  static const char *const texts[3] = {
      "Once upon a time, there was a little girl named Lily.",
      "the quick brown fox jumps over the lazy dog and the cat",
      "Hello world, hello world, hello again"};
  enum { STEPS = 6 };
  const int nv = eng_model_n_vocab(m);
  int32_t ids[3][64];
  int n[3];
  float *alone = calloc((size_t)3 * (STEPS + 1) * nv, sizeof(float));
  float *p_tog = calloc((size_t)nv, sizeof(float));
  int32_t next[3][STEPS];
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_ctx = 256;
  cp.n_seq_max = 3;
  cp.n_threads = 2;
  eng_batch b = eng_batch_init(256);
  for (int s = 0; s < 3; s++) {
    n[s] = eng_tokenize(m, texts[s], strlen(texts[s]), 1, 0, ids[s], 64);
    CHECK(n[s] > 8);
  }
  /* alone: each sequence in its own context, greedy STEPS tokens */
  for (int s = 0; s < 3; s++) {
    eng_ctx *c = NULL;
    CHECK(eng_ctx_new(m, &cp, &c, err, sizeof err) == ENG_OK);
    eng_batch_clear(&b);
    for (int i = 0; c && i < n[s]; i++)
      eng_batch_add(&b, ids[s][i], i, 0, i == n[s] - 1);
    int ok = c && eng_decode(c, &b) == ENG_OK;
    for (int k = 0; ok && k <= STEPS; k++) {
      float *pk = alone + ((size_t)s * (STEPS + 1) + k) * nv;
      probs_of(c, b.n_tokens - 1, pk, nv);
      if (k == STEPS)
        break;
      next[s][k] = argmax(pk, nv);
      eng_batch_clear(&b);
      eng_batch_add(&b, next[s][k], n[s] + k, 0, 1);
      ok = eng_decode(c, &b) == ENG_OK;
    }
    CHECK(ok);
    eng_ctx_free(c);
  }
  /* together: one prefill batch of all three, then one token of each per
   * step (the same tokens as alone: teacher forced) */
  eng_ctx *c = NULL;
  CHECK(eng_ctx_new(m, &cp, &c, err, sizeof err) == ENG_OK);
  eng_batch_clear(&b);
  int last[3];
  for (int s = 0; s < 3; s++)
    for (int i = 0; i < n[s]; i++) {
      if (i == n[s] - 1)
        last[s] = b.n_tokens;
      eng_batch_add(&b, ids[s][i], i, s, i == n[s] - 1);
    }
  int ok = c && eng_decode(c, &b) == ENG_OK;
  double worst = 0;
  for (int k = 0; ok && k <= STEPS; k++) {
    for (int s = 0; s < 3; s++) {
      const float *pk = alone + ((size_t)s * (STEPS + 1) + k) * nv;
      probs_of(c, last[s], p_tog, nv);
      for (int v = 0; v < nv; v++) {
        double d = fabs((double)p_tog[v] - pk[v]);
        worst = d > worst ? d : worst;
      }
    }
    if (k == STEPS)
      break;
    eng_batch_clear(&b);
    for (int s = 0; s < 3; s++) {
      last[s] = b.n_tokens;
      eng_batch_add(&b, next[s][k], n[s] + k, s, 1);
    }
    ok = eng_decode(c, &b) == ENG_OK;
  }
  CHECK(ok);
  CHECKF(worst < 1e-4, "batched vs alone: max |dp| %.3g", worst);
  eng_ctx_free(c);
  eng_batch_free(&b);
  free(alone);
  free(p_tog);
  eng_model_free(m);
}

int main(void) {
  RUN(test_repo_goldens);
  RUN(test_gemma_chat);
  RUN(test_gemma_chat_real_template);
  RUN(test_gemma_refusals);
  RUN(test_gemma_batched);
  RUN(test_shared_synthetic);
  RUN(test_shared_stories);
  T_MAIN_END();
}
