/* hearth fixture: writes a seeded random-weight GGUF model (engine/fixture.h)
 * for tests and benchmarks. A thin command-line front end; knows nothing
 * about the server. Every flag also reads HEARTH_FIXTURE_<FLAG>. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "engine/fixture.h"
#include "engine/quant.h"

static void fx_usage(FILE *f) {
  fprintf(
      f,
      "usage: hearth fixture --out F.gguf [--preset P] [options]\n"
      "\n"
      "Writes a GGUF model with seeded random weights and a valid "
      "vocabulary.\n"
      "\n"
      "  --out F.gguf        output file (required)\n"
      "  --preset P          smollm2-135m | qwen2.5-0.5b | gemma2-2b |\n"
      "                      gemma3-1b | tiny-llama | tiny-llama-bpe |\n"
      "                      tiny-qwen2 | tiny-qwen3 | tiny-gemma |\n"
      "                      tiny-gemma2 | tiny-gemma3 (default "
      "tiny-llama)\n"
      "  --arch A            llama | qwen2 | qwen3 | gemma | gemma2 | gemma3 "
      "(overrides\n"
      "                      the preset)\n"
      "  --type T            f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K "
      "q3_K q4_K\n"
      "                      q5_K q6_K iq4_nl iq4_xs, or Q3_K_M Q4_K_M "
      "Q5_K_M (default q8_0)\n"
      "  --embd-type T       type of token_embd/output (default: as "
      "--type)\n"
      "  --seed S            random seed (default 1)\n"
      "  --tokenizer K       spm | bpe\n"
      "  --bpe-pre P         llama-bpe | qwen2 | smollm\n"
      "  --tied 0|1          output shares token_embd\n"
      "  --fim 0|1           BPE: add <|fim_prefix|> <|fim_suffix|> "
      "<|fim_middle|>\n"
      "  --chat-template F   file written as tokenizer.chat_template "
      "(none: no\n"
      "                      template; default ChatML for qwen2/smollm "
      "BPE)\n"
      "  --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N\n"
      "  --n-vocab N --ctx N --head-dim N --rope-theta X --norm-eps X\n"
      "  --sliding-window N  gemma: window of the sliding layers (0: "
      "none)\n"
      "  --swa-pattern N     gemma: every Nth layer is global (written "
      "when > 0)\n"
      "  --attn-softcap X --final-softcap X   gemma2: soft caps (0: "
      "none)\n"
      "  --rope-scale X      linear rope scaling factor (0: none)\n"
      "  --help              this text\n");
}

static const char *const FLAGS[] = {
    "--out",           "--preset",         "--arch",        "--type",
    "--embd-type",     "--seed",           "--tokenizer",   "--bpe-pre",
    "--tied",          "--n-embd",         "--n-layer",     "--n-head",
    "--n-head-kv",     "--n-ff",           "--n-vocab",     "--ctx",
    "--head-dim",      "--rope-theta",     "--norm-eps",    "--fim",
    "--chat-template", "--sliding-window", "--swa-pattern", "--attn-softcap",
    "--final-softcap", "--rope-scale"};
enum { NF = sizeof FLAGS / sizeof *FLAGS };

/* Applies the numeric shape flags (indices 9..18) to p. */
static int fx_apply_nums(const char *const *val, fixture_params *p) {
  int *ints[] = {&p->n_embd, &p->n_layer, &p->n_head,     &p->n_head_kv,
                 &p->n_ff,   &p->n_vocab, &p->ctx_length, &p->head_dim};
  for (int f = 9; f < 17; f++) {
    double d;
    if (!val[f])
      continue;
    if (cli_num("fixture", FLAGS[f], val[f], f == 16 ? 0 : 1, 1e7, &d))
      return -1;
    *ints[f - 9] = (int)d;
  }
  double d;
  if (val[17]) {
    if (cli_num("fixture", FLAGS[17], val[17], 1e-3, 1e12, &d))
      return -1;
    p->rope_theta = (float)d;
  }
  if (val[18]) {
    if (cli_num("fixture", FLAGS[18], val[18], 1e-12, 1, &d))
      return -1;
    p->norm_eps = (float)d;
  }
  return 0;
}

/* Applies the Gemma flags (indices 21..25) to p: 0 writes no key. */
static int fx_apply_gemma(const char *const *val, fixture_params *p) {
  int *ints[] = {&p->sliding_window, &p->swa_pattern};
  float *floats[] = {&p->attn_softcap, &p->final_softcap,
                     &p->rope_scale_linear};
  double d;
  for (int f = 21; f < 26; f++) {
    if (!val[f])
      continue;
    if (cli_num("fixture", FLAGS[f], val[f], 0, 1e7, &d))
      return -1;
    if (f < 23)
      *ints[f - 21] = (int)d;
    else
      *floats[f - 23] = (float)d;
  }
  return 0;
}

static int fx_apply(const char *const *val, fixture_params *p) {
  if (val[1] && fixture_preset(val[1], p)) {
    fprintf(stderr, "hearth fixture: unknown preset '%s'\n", val[1]);
    return -1;
  }
  if (val[2])
    snprintf(p->arch, sizeof p->arch, "%s", val[2]);
  if (val[3] && fixture_set_type(p, val[3])) {
    fprintf(stderr, "hearth fixture: --type '%s' is not a weight type\n",
            val[3]);
    return -1;
  }
  if (val[4] && ((p->embd_type = qtype_from_name(val[4])) < 0)) {
    fprintf(stderr, "hearth fixture: unknown --embd-type '%s'\n", val[4]);
    return -1;
  }
  double d;
  if (val[5]) {
    if (cli_num("fixture", "--seed", val[5], 0, 1.8e19, &d))
      return -1;
    p->seed = strtoull(val[5], NULL, 10);
  }
  if (val[6]) {
    if (strcmp(val[6], "spm") && strcmp(val[6], "bpe")) {
      fprintf(stderr, "hearth fixture: --tokenizer must be spm or bpe\n");
      return -1;
    }
    p->tokenizer = strcmp(val[6], "spm") ? FIXTURE_TOK_BPE : FIXTURE_TOK_SPM;
    if (p->tokenizer == FIXTURE_TOK_BPE && !p->bpe_pre[0])
      snprintf(p->bpe_pre, sizeof p->bpe_pre, "llama-bpe");
  }
  if (val[7])
    snprintf(p->bpe_pre, sizeof p->bpe_pre, "%s", val[7]);
  if (val[8]) {
    if (cli_num("fixture", "--tied", val[8], 0, 1, &d))
      return -1;
    p->tied = (int)d;
  }
  if (val[19]) {
    if (cli_num("fixture", "--fim", val[19], 0, 1, &d))
      return -1;
    p->fim = (int)d;
  }
  return fx_apply_nums(val, p) || fx_apply_gemma(val, p) ? -1 : 0;
}

/* --chat-template F: the file's text in *out (malloc'd), or NULL for
 * "none". 0, or -1 with a message. */
static int fx_read_template(const char *path, char **out) {
  *out = NULL;
  if (!strcmp(path, "none"))
    return 0;
  FILE *f = fopen(path, "rb");
  long n = -1;
  if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 &&
      !fseek(f, 0, SEEK_SET) && (*out = malloc((size_t)n + 1)) &&
      fread(*out, 1, (size_t)n, f) == (size_t)n) {
    (*out)[n] = 0;
    fclose(f);
    return 0;
  }
  fprintf(stderr, "hearth fixture: cannot read --chat-template '%s': %s\n",
          path, strerror(errno));
  free(*out);
  *out = NULL;
  if (f)
    fclose(f);
  return -1;
}

int cli_fixture(int argc, char **argv) {
  const char *val[NF];
  for (int f = 0; f < NF; f++)
    val[f] = cli_env("HEARTH_FIXTURE_", FLAGS[f]);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fx_usage(stdout);
      return 0;
    }
    int f = 0;
    while (f < NF && strcmp(argv[i], FLAGS[f]))
      f++;
    if (f == NF || i + 1 >= argc) {
      fprintf(stderr, "hearth fixture: %s '%s'\n",
              f == NF ? "unknown option" : "missing value for", argv[i]);
      fx_usage(stderr);
      return 2;
    }
    val[f] = argv[++i];
  }
  if (!val[0]) {
    fprintf(stderr, "hearth fixture: --out is required\n");
    fx_usage(stderr);
    return 2;
  }
  fixture_params p;
  fixture_default_params(&p);
  if (fx_apply(val, &p))
    return 2;
  char *tpl = NULL;
  if (val[20] && fx_read_template(val[20], &tpl))
    return 2;
  p.chat_template = val[20] && !tpl ? "" : tpl;
  char err[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = fixture_write(&p, val[0], err, sizeof err);
  free(tpl);
  if (rc) {
    fprintf(stderr, "hearth fixture: %s\n", err);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr,
          "hearth fixture: wrote %s (%s, %d layers, n_embd %d, vocab %d) in "
          "%.2f s\n",
          val[0], p.arch, p.n_layer, p.n_embd, p.n_vocab,
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
