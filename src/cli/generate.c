/* hearth generate: loads a GGUF model, evaluates a prompt and streams the
 * sampled continuation to stdout (statistics to stderr). A thin user of the
 * public engine API (engine.h) and the sampler (sampler.h); knows nothing
 * about the server. Every flag also reads HEARTH_<FLAG> (e.g.
 * HEARTH_MAX_TOKENS). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "engine/engine.h"
#include "engine/sampler.h"

typedef struct {
  const char *model, *prompt;
  long max_tokens, top_k, threads, ctx;
  double temperature, top_p, min_p;
  unsigned long long seed;
  int seed_set, raw;
} gen_opts;

static void gen_usage(FILE *f) {
  fprintf(f,
          "usage: hearth generate --model F.gguf --prompt TEXT [options]\n"
          "\n"
          "Streams the model's continuation of TEXT to stdout; timings go to "
          "stderr.\n"
          "\n"
          "  --model F.gguf       GGUF model file (HEARTH_MODEL)\n"
          "  --prompt TEXT        prompt text; special tokens like "
          "<|im_start|> are parsed\n"
          "  --max-tokens N       tokens to generate (default 128)\n"
          "  --temperature T      0 = greedy (default 0.8)\n"
          "  --top-p P            nucleus sampling, (0,1] (default 0.95)\n"
          "  --top-k K            0 = off (default 40)\n"
          "  --min-p P            0 = off (default 0.05)\n"
          "  --seed S             sampling seed (default: random)\n"
          "  --threads N          threads (default: all cores)\n"
          "  --ctx N              context size in tokens (default: prompt + "
          "max-tokens)\n"
          "  --raw                do not add the BOS token\n"
          "  --help               this text\n");
}

static int gen_parse(int argc, char **argv, gen_opts *o) {
  static const char *flags[] = {
      "--model", "--prompt", "--max-tokens",  "--top-k", "--threads",
      "--ctx",   "--top-p",  "--temperature", "--min-p", "--seed"};
  const int nf = (int)(sizeof flags / sizeof *flags);
  const char *val[sizeof flags / sizeof *flags];
  for (int f = 0; f < nf; f++)
    val[f] = cli_env("HEARTH_", flags[f]);
  o->raw = getenv("HEARTH_RAW") != NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      gen_usage(stdout);
      return 1;
    }
    if (!strcmp(argv[i], "--raw")) {
      o->raw = 1;
      continue;
    }
    int f = 0;
    while (f < nf && strcmp(argv[i], flags[f]))
      f++;
    if (f == nf || i + 1 >= argc) {
      fprintf(stderr, "hearth generate: %s '%s' (see --help)\n",
              f == nf ? "unknown option" : "missing value for", argv[i]);
      return -1;
    }
    val[f] = argv[++i];
  }
  double d[nf];
  const double lo[] = {0, 0, 1, 0, 1, 1, 1e-9, 0, 0, 0};
  const double hi[] = {0, 0, 1e7, 1e7, 1024, 1e8, 1, 100, 1, 1.8e19};
  const double def[] = {0, 0, 128, 40, 0, 0, 0.95, 0.8, 0.05, 0};
  for (int f = 2; f < nf; f++) {
    d[f] = def[f];
    if (val[f] && cli_num("generate", flags[f], val[f], lo[f], hi[f], &d[f]))
      return -1;
  }
  o->model = val[0];
  o->prompt = val[1];
  o->max_tokens = (long)d[2];
  o->top_k = (long)d[3];
  o->threads = (long)d[4];
  o->ctx = (long)d[5];
  o->top_p = d[6];
  o->temperature = d[7];
  o->min_p = d[8];
  o->seed_set = val[9] != NULL;
  o->seed = o->seed_set ? strtoull(val[9], NULL, 10) : 0;
  if (!o->model || !o->prompt) {
    fprintf(stderr, "hearth generate: --model and --prompt are required "
                    "(see --help)\n");
    return -1;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes the text of tok through the streaming detokenizer. */
static void emit(eng_detok *dt, int32_t tok) {
  char buf[512];
  int n = eng_detok_push(dt, tok, buf, sizeof buf);
  if (n > 0)
    fwrite(buf, 1, (size_t)n, stdout);
  fflush(stdout);
}

/* Evaluates the prompt, then samples until max_tokens or end of generation.
 * Returns 0 or 1 (error printed). */
static int run(const gen_opts *o, eng_model *m, eng_ctx *ctx,
               const int32_t *ids, int n_ids) {
  sampler_params sp = sampler_default_params();
  sp.temperature = (float)o->temperature;
  sp.top_p = (float)o->top_p;
  sp.top_k = (int)o->top_k;
  sp.min_p = (float)o->min_p;
  sp.repetition_window = 0;
  if (o->seed_set)
    sp.seed = o->seed;
  char err[256];
  if (sampler_params_check(&sp, err, sizeof err)) {
    fprintf(stderr, "hearth generate: %s\n", err);
    return 1;
  }
  sampler *s = sampler_new(&sp);
  eng_batch b = eng_batch_init(n_ids > 1 ? n_ids : 1);
  eng_detok *dt = eng_detok_new(m, 0);
  int rc = 1;
  if (!s || !b.tok || !dt) {
    fprintf(stderr, "hearth generate: out of memory\n");
    goto out;
  }
  for (int i = 0; i < n_ids; i++)
    eng_batch_add(&b, ids[i], i, 0, i == n_ids - 1);
  double t0 = now_s();
  if (eng_decode(ctx, &b)) {
    fprintf(stderr, "hearth generate: %s\n", eng_ctx_last_error(ctx));
    goto out;
  }
  double t1 = now_s();
  const float *logits = eng_get_logits(ctx, n_ids - 1);
  int n_vocab = eng_model_n_vocab(m), n_gen = 0;
  for (; n_gen < o->max_tokens; n_gen++) {
    int32_t tok = sampler_sample(s, logits, n_vocab, NULL);
    if (tok < 0 || eng_token_is_eog(m, tok))
      break;
    sampler_accept(s, tok);
    emit(dt, tok);
    if (n_gen + 1 == o->max_tokens) {
      n_gen++;
      break;
    }
    eng_batch_clear(&b);
    eng_batch_add(&b, tok, n_ids + n_gen, 0, 1);
    if (eng_decode(ctx, &b)) {
      fprintf(stderr, "\nhearth generate: %s\n", eng_ctx_last_error(ctx));
      goto out;
    }
    logits = eng_get_logits(ctx, 0);
  }
  char buf[64];
  int n = eng_detok_flush(dt, buf, sizeof buf);
  if (n > 0)
    fwrite(buf, 1, (size_t)n, stdout);
  printf("\n");
  double t2 = now_s();
  fprintf(stderr,
          "prompt: %d tokens in %.3f s (%.1f tok/s); generated: %d tokens in "
          "%.3f s (%.1f tok/s)\n",
          n_ids, t1 - t0, n_ids / (t1 - t0), n_gen, t2 - t1,
          n_gen > 0 ? n_gen / (t2 - t1) : 0.0);
  rc = 0;
out:
  eng_detok_free(dt);
  eng_batch_free(&b);
  sampler_free(s);
  return rc;
}

int cli_generate(int argc, char **argv) {
  gen_opts o = {0};
  int pr = gen_parse(argc, argv, &o);
  if (pr)
    return pr > 0 ? 0 : 2;
  char err[512];
  eng_model *m = NULL;
  if (eng_model_load(o.model, NULL, &m, err, sizeof err)) {
    fprintf(stderr, "hearth generate: %s\n", err);
    return 1;
  }
  size_t plen = strlen(o.prompt);
  int cap = (int)plen + 8;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
  int n_ids = ids ? eng_tokenize(m, o.prompt, plen, !o.raw, 1, ids, cap) : -1;
  if (n_ids < 0 && -n_ids > cap) { /* byte fallback: more ids than bytes */
    cap = -n_ids;
    int32_t *more = realloc(ids, sizeof(int32_t) * (size_t)cap);
    ids = more ? more : ids;
    n_ids = more ? eng_tokenize(m, o.prompt, plen, !o.raw, 1, ids, cap) : -1;
  }
  if (n_ids <= 0) {
    fprintf(stderr, "hearth generate: %s\n",
            n_ids == 0 ? "the prompt has no tokens" : "cannot tokenize");
    free(ids);
    eng_model_free(m);
    return 1;
  }
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_threads = (int)o.threads;
  cp.n_ctx = o.ctx ? (int)o.ctx : n_ids + (int)o.max_tokens + 1;
  eng_ctx *ctx = NULL;
  int rc = 1;
  if (n_ids + o.max_tokens > cp.n_ctx) {
    fprintf(stderr,
            "hearth generate: prompt (%d tokens) + max-tokens (%ld) exceed "
            "the context (%d)\n",
            n_ids, o.max_tokens, cp.n_ctx);
  } else if (eng_ctx_new(m, &cp, &ctx, err, sizeof err)) {
    fprintf(stderr, "hearth generate: %s\n", err);
  } else {
    rc = run(&o, m, ctx, ids, n_ids);
  }
  eng_ctx_free(ctx);
  free(ids);
  eng_model_free(m);
  return rc;
}
