/* hearth bench: measures a GGUF model's prefill and decode speed with the
 * engine (engine.h), the machine's memory read bandwidth (engine/cpu.h) and
 * the share of it that decode uses (bytes of weights read per token x tokens
 * per second / bandwidth), the engine's time to first token (prefill of the
 * prompt with the last token's logits, then picking the first token: what a
 * server adds its overhead to) and the process RSS. Prompt tokens are seeded
 * pseudo-random ids, decode is greedy. Knows nothing about the server.
 * Every flag also reads HEARTH_<FLAG>. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "engine/cpu.h"
#include "engine/engine.h"

typedef struct {
  const char *model;
  int threads, prompt_tokens, gen_tokens, reps, json, no_bw;
  int parallel; /* sequences decoded together, one token each per pass */
} bench_opts;

static void bench_usage(FILE *f) {
  fprintf(
      f, "usage: hearth bench --model F.gguf [options]\n"
         "\n"
         "Measures prefill and decode tokens/s, memory read bandwidth and "
         "the share of it decode uses, and RSS.\n"
         "\n"
         "  --model F.gguf       GGUF model file (HEARTH_MODEL)\n"
         "  --threads N          threads (default: all cores)\n"
         "  --prompt-tokens N    prompt length for prefill (default 512)\n"
         "  --gen-tokens N       tokens decoded one by one (default 128)\n"
         "  --parallel N         decode N sequences together (each with its "
         "own prompt),\n"
         "                       one token of each per pass; decode tok/s "
         "counts all\n"
         "                       of them (default 1)\n"
         "  --reps N             repetitions; the best of each is reported "
         "(default 1;\n"
         "                       time to first token: best and median)\n"
         "  --no-bandwidth       skip the bandwidth measurement (probed before "
         "the first\n"
         "                       repetition and after each: the best "
         "counts)\n"
         "  --json               print one JSON object: prefill_tok_s, "
         "decode_tok_s,\n"
         "                       read_bandwidth_gb_s, "
         "decode_bandwidth_share, rss_mb,\n"
         "                       ttft_ms, ttft_ms_median, "
         "read_bandwidth_lowest_gb_s\n"
         "  --help               this text\n");
}

/* cli_int into an int field. */
static int to_int(const char *flag, const char *v, int lo, int hi, int *out) {
  long x;
  if (cli_int("bench", flag, v, lo, hi, &x))
    return -1;
  *out = (int)x;
  return 0;
}

static int bench_parse(int argc, char **argv, bench_opts *o) {
  static const char *flags[] = {"--model",      "--threads", "--prompt-tokens",
                                "--gen-tokens", "--reps",    "--parallel"};
  enum { NF = sizeof flags / sizeof *flags };
  const char *val[NF];
  for (int f = 0; f < NF; f++)
    val[f] = cli_env("HEARTH_", flags[f]);
  o->json = getenv("HEARTH_JSON") != NULL;
  o->no_bw = getenv("HEARTH_NO_BANDWIDTH") != NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      bench_usage(stdout);
      return 1;
    }
    if (!strcmp(argv[i], "--json")) {
      o->json = 1;
      continue;
    }
    if (!strcmp(argv[i], "--no-bandwidth")) {
      o->no_bw = 1;
      continue;
    }
    int f = 0;
    while (f < NF && strcmp(argv[i], flags[f]))
      f++;
    if (f == NF || i + 1 >= argc) {
      fprintf(stderr, "hearth bench: %s '%s' (see --help)\n",
              f == NF ? "unknown option" : "missing value for", argv[i]);
      return -1;
    }
    val[f] = argv[++i];
  }
  o->model = val[0];
  o->threads = 0;
  o->prompt_tokens = 512;
  o->gen_tokens = 128;
  o->reps = 1;
  o->parallel = 1;
  if ((val[1] && to_int(flags[1], val[1], 1, 1024, &o->threads)) ||
      (val[2] && to_int(flags[2], val[2], 1, 1 << 20, &o->prompt_tokens)) ||
      (val[3] && to_int(flags[3], val[3], 0, 1 << 20, &o->gen_tokens)) ||
      (val[4] && to_int(flags[4], val[4], 1, 100, &o->reps)) ||
      (val[5] && to_int(flags[5], val[5], 1, 64, &o->parallel)))
    return -1;
  if (!o->model) {
    fprintf(stderr, "hearth bench: --model is required (see --help)\n");
    return -1;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Resident set size in MB from /proc/self/status (VmRSS), -1 if unknown. */
static double rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double mb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6))
      mb = strtod(line + 6, NULL) / 1024.0;
  if (f)
    fclose(f);
  return mb;
}

/* Index of the largest logit. */
static int32_t argmax(const float *x, int n) {
  int32_t best = 0;
  float bv = x[0];
  for (int i = 1; i < n; i++)
    if (x[i] > bv)
      bv = x[best = i];
  return best;
}

typedef struct {
  double prefill_s, decode_s;
  double ttft_s; /* prefill + choosing the first generated token */
} bench_times;

/* One measurement: prefill of the prompt, then greedy decode of
 * o->parallel sequences (each prefilled with the prompt, as separate
 * requests of a server are), one token each per pass. */
static int bench_once(eng_ctx *ctx, int n_vocab, const int32_t *prompt,
                      const bench_opts *o, bench_times *t) {
  int np = o->parallel;
  eng_batch b = eng_batch_init(o->prompt_tokens > np ? o->prompt_tokens : np);
  if (!b.tok)
    return -1;
  eng_kv_clear(ctx);
  for (int i = 0; i < o->prompt_tokens; i++)
    eng_batch_add(&b, prompt[i], i, 0, i == o->prompt_tokens - 1);
  double t0 = now_s();
  int rc = eng_decode(ctx, &b);
  double t1 = now_s();
  int32_t tok =
      rc ? 0 : argmax(eng_get_logits(ctx, o->prompt_tokens - 1), n_vocab);
  double tf = now_s();                  /* the first token is known */
  for (int s = 1; !rc && s < np; s++) { /* each sequence its own cells */
    eng_batch_clear(&b);
    for (int i = 0; i < o->prompt_tokens; i++)
      eng_batch_add(&b, prompt[i], i, s, i == o->prompt_tokens - 1);
    rc = eng_decode(ctx, &b);
  }
  int32_t toks[64];
  for (int s = 0; s < np; s++)
    toks[s] = tok;
  for (int g = 0; !rc && g < o->gen_tokens; g++) {
    eng_batch_clear(&b);
    for (int s = 0; s < np; s++)
      eng_batch_add(&b, toks[s], o->prompt_tokens + g, s, 1);
    rc = eng_decode(ctx, &b);
    for (int s = 0; !rc && s < np; s++)
      toks[s] = argmax(eng_get_logits(ctx, s), n_vocab);
  }
  double t2 = now_s();
  eng_batch_free(&b);
  if (rc) {
    fprintf(stderr, "hearth bench: %s\n", eng_ctx_last_error(ctx));
    return -1;
  }
  t->prefill_s = t1 - t0;
  t->decode_s = t2 - t1;
  t->ttft_s = tf - t0;
  return 0;
}

/* Writes s as a JSON string (quotes, backslashes and control bytes
 * escaped). */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of n values (sorts them). */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The machine's read bandwidth as probed between the measurements: the
 * probe swings with the other work on a shared machine, so it runs before
 * the first repetition and after each one, and the best is the machine's
 * figure (the lowest is reported beside it). */
typedef struct {
  double best, lowest;
  int n;
} bw_probes;

static void bw_probe(const bench_opts *o, bw_probes *b) {
  if (o->no_bw)
    return;
  double g = cpu_measure_read_bandwidth_gbs();
  if (g <= 0)
    return;
  if (g > b->best)
    b->best = g;
  if (!b->n++ || g < b->lowest)
    b->lowest = g;
}

static void report(const bench_opts *o, const eng_model *m, int threads,
                   const bench_times *best, double ttft_med,
                   const bw_probes *probes) {
  double bw = probes->best;
  double pf = o->prompt_tokens / best->prefill_s;
  double dc = o->gen_tokens > 0
                  ? (double)o->gen_tokens * o->parallel / best->decode_s
                  : 0;
  double bytes = (double)eng_model_decode_bytes(m);
  /* the weights are read once per pass, whatever the sequences in it */
  double share = bw > 0 ? bytes * dc / o->parallel / (bw * 1e9) : 0;
  double rss = rss_mb();
  if (o->json) {
    printf("{\"model\":");
    json_str(eng_model_name(m));
    printf(",\"threads\":%d,\"parallel\":%d,\"prompt_tokens\":%d,"
           "\"gen_tokens\":%d,\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,"
           "\"read_bandwidth_gb_s\":%.2f,\"decode_bytes_per_token\":%.0f,"
           "\"decode_bandwidth_share\":%.4f,\"rss_mb\":%.1f,"
           "\"file_mb\":%.1f,\"ttft_ms\":%.3f,\"ttft_ms_median\":%.3f,"
           "\"read_bandwidth_lowest_gb_s\":%.2f,\"bandwidth_probes\":%d}\n",
           threads, o->parallel, o->prompt_tokens, o->gen_tokens, pf, dc, bw,
           bytes, share, rss, eng_model_file_bytes(m) / 1048576.0,
           best->ttft_s * 1e3, ttft_med * 1e3, probes->lowest, probes->n);
    return;
  }
  printf("model            %s (%s, %.1f MB file)\n", eng_model_name(m),
         eng_model_arch(m), eng_model_file_bytes(m) / 1048576.0);
  printf("threads          %d\n", threads);
  printf("prefill          %.1f tok/s (%d tokens)\n", pf, o->prompt_tokens);
  printf("decode           %.1f tok/s (%d tokens x %d sequences)\n", dc,
         o->gen_tokens, o->parallel);
  printf("first token      %.2f ms best, %.2f ms median (prefill + pick)\n",
         best->ttft_s * 1e3, ttft_med * 1e3);
  printf("read bandwidth   %.1f GB/s (best of %d probes, lowest %.1f)\n", bw,
         probes->n, probes->lowest);
  printf("decode bw share  %.1f%% (%.1f MB read per token)\n", share * 100,
         bytes / 1e6);
  printf("rss              %.1f MB\n", rss);
}

int cli_bench(int argc, char **argv) {
  bench_opts o = {0};
  int pr = bench_parse(argc, argv, &o);
  if (pr)
    return pr > 0 ? 0 : 2;
  char err[512];
  eng_model *m = NULL;
  eng_model_params mp = eng_model_default_params();
  mp.prefault = 1;
  if (eng_model_load(o.model, &mp, &m, err, sizeof err)) {
    fprintf(stderr, "hearth bench: %s\n", err);
    return 1;
  }
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_threads = o.threads;
  cp.n_ctx = (o.prompt_tokens + o.gen_tokens) * o.parallel + 1;
  cp.n_batch = o.prompt_tokens < 512 ? o.prompt_tokens : 512;
  if (cp.n_batch < o.parallel)
    cp.n_batch = o.parallel;
  cp.n_seq_max = o.parallel;
  eng_ctx *ctx = NULL;
  int32_t *prompt = malloc(sizeof(int32_t) * (size_t)o.prompt_tokens);
  double *ttft = NULL; /* each rep's time to first token */
  int rc = 1, n_vocab = eng_model_n_vocab(m);
  if (!prompt || eng_ctx_new(m, &cp, &ctx, err, sizeof err)) {
    fprintf(stderr, "hearth bench: %s\n", prompt ? err : "out of memory");
    goto out;
  }
  /* seeded pseudo-random prompt (xorshift), BOS first when there is one */
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < o.prompt_tokens; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    prompt[i] = (int32_t)(x % (uint64_t)n_vocab);
  }
  if (eng_token_bos(m) >= 0)
    prompt[0] = eng_token_bos(m);
  bench_times best = {1e30, 1e30, 1e30}, t;
  ttft = malloc(sizeof(double) * (size_t)o.reps);
  if (!ttft) {
    fprintf(stderr, "hearth bench: out of memory\n");
    goto out;
  }
  bench_opts warm = o; /* warm-up: touch the weights and caches once */
  warm.prompt_tokens = o.prompt_tokens < 16 ? o.prompt_tokens : 16;
  warm.gen_tokens = 2;
  if (bench_once(ctx, n_vocab, prompt, &warm, &t))
    goto out;
  bw_probes probes = {0, 0, 0};
  bw_probe(&o, &probes);
  for (int r = 0; r < o.reps; r++) {
    if (bench_once(ctx, n_vocab, prompt, &o, &t))
      goto out;
    bw_probe(&o, &probes);
    if (t.prefill_s < best.prefill_s)
      best.prefill_s = t.prefill_s;
    if (t.decode_s < best.decode_s)
      best.decode_s = t.decode_s;
    if (t.ttft_s < best.ttft_s)
      best.ttft_s = t.ttft_s;
    ttft[r] = t.ttft_s;
  }
  int threads = o.threads ? o.threads : cpu_n_cpus();
  report(&o, m, threads, &best, median(ttft, o.reps), &probes);
  rc = 0;
out:
  free(ttft);
  free(prompt);
  eng_ctx_free(ctx);
  eng_model_free(m);
  return rc;
}
