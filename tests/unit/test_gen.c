/* Unit tests of the generation driver (api/gen.h): the common parameters
 * and their 400s, and jobs on a random-weight fixture model run by a real
 * sched: text released per choice, stop sequences cut where they match
 * (also across tokens) and text held back for a possible stop released at
 * the end, logprob tokens and offsets, n choices, a failed write cancelling,
 * a full queue answering 429. */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "api/gen.h"
#include "engine/fixture.h"
#include "t.h"

/* ------------------------------------------------------------ parameters */

static json_t *js(const char *text) {
  json_error_t je;
  json_t *v = json_loads(text, 0, &je);
  if (!v)
    fprintf(stderr, "  bad test JSON: %s\n", text);
  return v;
}

/* s as a JSON string literal (quotes included), malloc'd. */
static char *quoted(const char *str) {
  json_t *v = json_string(str);
  char *out = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
  json_decref(v);
  return out;
}

/* Parses body for api; returns the result and fills p / e. */
static int parse(const char *body, gen_api api, gen_params *p, api_error *e) {
  json_t *b = js(body);
  memset(e, 0, sizeof *e);
  int r = gen_params_parse(b, api, p, e);
  json_decref(b);
  return r;
}

static void test_params_defaults(void) {
  gen_params p;
  api_error e;
  CHECK_INT(parse("{}", GEN_API_CHAT, &p, &e), 0);
  CHECK_INT(p.n, 1);
  CHECK_INT(p.max_tokens, 0);
  CHECK_NEAR(p.sampling.temperature, 1, 0);
  CHECK_NEAR(p.sampling.top_p, 1, 0);
  CHECK_INT(p.sampling.repetition_window, 0);
  CHECK(p.sampling.seed == SAMPLER_SEED_RANDOM);
  CHECK_INT(p.stream, 0);
  CHECK_INT(p.logprobs, 0);
  gen_params_free(&p);
  CHECK_INT(parse("{}", GEN_API_COMPLETIONS, &p, &e), 0);
  CHECK_INT(p.max_tokens, 16);
  gen_params_free(&p);
}

static void test_params_values(void) {
  gen_params p;
  api_error e;
  CHECK_INT(parse("{\"temperature\":0,\"top_p\":0,\"n\":3,\"seed\":-1,"
                  "\"stop\":[\"a\",\"\",\"bc\"],\"logit_bias\":{\"5\":-100,"
                  "\"7\":2.5},\"max_tokens\":9,\"max_completion_tokens\":4,"
                  "\"logprobs\":true,\"top_logprobs\":3,\"stream\":true,"
                  "\"stream_options\":{\"include_usage\":true},"
                  "\"presence_penalty\":-2,\"frequency_penalty\":2,"
                  "\"user\":\"u\",\"ignore_eos\":true}",
                  GEN_API_CHAT, &p, &e),
            0);
  CHECK_NEAR(p.sampling.temperature, 0, 0);
  CHECK_INT(p.sampling.top_k, 1); /* top_p 0: the most likely token */
  CHECK_INT(p.n, 3);
  CHECK(p.has_seed && p.sampling.seed != SAMPLER_SEED_RANDOM);
  CHECK_INT(p.n_stop, 2); /* the empty string is dropped */
  CHECK_STR(p.stop[1], "bc");
  CHECK_INT(p.n_bias, 2);
  CHECK(p.sampling.logit_bias == p.bias && p.sampling.n_logit_bias == 2);
  CHECK_INT(p.max_tokens, 4); /* max_completion_tokens wins */
  CHECK_STR(p.max_tokens_param, "max_completion_tokens");
  CHECK_INT(p.top_logprobs, 3);
  CHECK_INT(p.sampling.n_logprobs, 3);
  CHECK(p.stream && p.include_usage && p.ignore_eos);
  CHECK(p.user != NULL); /* borrowed from the (now freed) body */
  gen_params_free(&p);
  /* legacy logprobs: an integer count of alternatives */
  CHECK_INT(
      parse("{\"logprobs\":2,\"stop\":\"x\"}", GEN_API_COMPLETIONS, &p, &e), 0);
  CHECK(p.logprobs && p.top_logprobs == 2 && p.n_stop == 1);
  gen_params_free(&p);
  CHECK_INT(parse("{\"logprobs\":0}", GEN_API_COMPLETIONS, &p, &e), 0);
  CHECK(p.logprobs && p.top_logprobs == 0);
  gen_params_free(&p);
}

/* Each bad body answers 400 naming param. */
static void test_params_errors(void) {
  static const struct {
    const char *body, *param;
    gen_api api;
  } cases[] = {
      {"{\"temperature\":\"x\"}", "temperature", GEN_API_CHAT},
      {"{\"temperature\":2.01}", "temperature", GEN_API_CHAT},
      {"{\"top_p\":-0.1}", "top_p", GEN_API_CHAT},
      {"{\"n\":0}", "n", GEN_API_CHAT},
      {"{\"n\":129}", "n", GEN_API_CHAT},
      {"{\"n\":1.5}", "n", GEN_API_CHAT},
      {"{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", GEN_API_CHAT},
      {"{\"stop\":{}}", "stop", GEN_API_CHAT},
      {"{\"stop\":[\"a\",null]}", "stop[1]", GEN_API_CHAT},
      {"{\"logit_bias\":[]}", "logit_bias", GEN_API_CHAT},
      {"{\"logit_bias\":{\"x\":1}}", "logit_bias", GEN_API_CHAT},
      {"{\"logit_bias\":{\"-1\":1}}", "logit_bias", GEN_API_CHAT},
      {"{\"logit_bias\":{\"1\":\"1\"}}", "logit_bias", GEN_API_CHAT},
      {"{\"logit_bias\":{\"1\":-100.5}}", "logit_bias", GEN_API_CHAT},
      {"{\"max_tokens\":0}", "max_tokens", GEN_API_CHAT},
      {"{\"max_tokens\":-1}", "max_tokens", GEN_API_COMPLETIONS},
      {"{\"max_completion_tokens\":0}", "max_completion_tokens", GEN_API_CHAT},
      {"{\"logprobs\":1}", "logprobs", GEN_API_CHAT},
      {"{\"logprobs\":6}", "logprobs", GEN_API_COMPLETIONS},
      {"{\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs", GEN_API_CHAT},
      {"{\"top_logprobs\":1}", "top_logprobs", GEN_API_CHAT},
      {"{\"stream\":1}", "stream", GEN_API_CHAT},
      {"{\"stream_options\":{\"include_usage\":true}}", "stream_options",
       GEN_API_CHAT},
      {"{\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
       "stream_options.include_usage", GEN_API_CHAT},
      {"{\"presence_penalty\":2.5}", "presence_penalty", GEN_API_CHAT},
      {"{\"frequency_penalty\":\"1\"}", "frequency_penalty", GEN_API_CHAT},
      {"{\"seed\":\"1\"}", "seed", GEN_API_CHAT},
      {"{\"user\":1}", "user", GEN_API_CHAT},
      {"{\"ignore_eos\":\"yes\"}", "ignore_eos", GEN_API_CHAT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    gen_params p;
    api_error e;
    int r = parse(cases[i].body, cases[i].api, &p, &e);
    CHECKF(r == -1 && e.status == 400 && !strcmp(e.param, cases[i].param),
           "%s -> %d %d param '%s' (%s)", cases[i].body, r, e.status, e.param,
           e.message);
    gen_params_free(&p);
  }
}

/* ------------------------------------------------------------ jobs */

static eng_model *g_m;
static sched *g_s;
static char g_path[64];

/* f16 weights: greedy text does not depend on what shares the batch. */
static int setup_model(void) {
  fixture_params fp;
  char err[256];
  fixture_default_params(&fp);
  strcpy(g_path, "/tmp/hearth_test_gen_XXXXXX");
  int fd = mkstemp(g_path);
  if (fd < 0)
    return -1;
  close(fd);
  if (fixture_preset("tiny-qwen2", &fp) || fixture_set_type(&fp, "f16") ||
      fixture_write(&fp, g_path, err, sizeof err) ||
      eng_model_load(g_path, NULL, &g_m, err, sizeof err)) {
    fprintf(stderr, "  fixture: %s\n", err);
    return -1;
  }
  sched_params sp = sched_default_params();
  sp.n_slots = 4;
  sp.n_ctx_seq = 256;
  sp.max_queue = 1;
  sp.n_threads = 1;
  return sched_new(g_m, &sp, &g_s, err, sizeof err) == SCHED_OK ? 0 : -1;
}

/* What a job reported. */
typedef struct got {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  char deltas[4][2048]; /* concatenated on_delta text per choice */
  int n_delta_toks[4];
  int fail_after; /* on_delta returns -1 from this call on (0: never) */
  int block;      /* on_delta waits (the worker with it) while set */
  int blocked;    /* on_delta is waiting */
  int calls;
  char text[4][2048]; /* final texts (keep_text) */
  char finish[4][16];
  int n_tokens[4];
  size_t last_offset_ok[4]; /* 1 while token offsets were consistent */
  size_t offsets[4][64];    /* where each token's text starts */
  gen_usage usage;
  char error[128];
} got;

static int on_delta(gen_job *j, void *cls, const gen_choice *c,
                    const char *text, size_t len, const gen_token *toks,
                    int n_toks) {
  got *g = cls;
  (void)j;
  (void)toks;
  pthread_mutex_lock(&g->mu);
  while (g->block) {
    g->blocked = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_cond_wait(&g->cv, &g->mu);
  }
  pthread_mutex_unlock(&g->mu);
  strncat(g->deltas[c->index], text, len);
  g->n_delta_toks[c->index] += n_toks;
  return g->fail_after && ++g->calls >= g->fail_after ? -1 : 0;
}

static void on_done(gen_job *j, void *cls, const gen_usage *u,
                    const char *error) {
  got *g = cls;
  int n;
  gen_choice *ch = gen_job_choices(j, &n);
  pthread_mutex_lock(&g->mu);
  for (int i = 0; i < n && i < 4; i++) {
    snprintf(g->text[i], sizeof g->text[i], "%s", ch[i].text ? ch[i].text : "");
    snprintf(g->finish[i], sizeof g->finish[i], "%s",
             ch[i].finish_reason ? ch[i].finish_reason : "");
    g->n_tokens[i] = ch[i].n_tokens;
    g->last_offset_ok[i] = 1;
    size_t at = 0;
    for (int k = 0; k < ch[i].n_tokens; k++) {
      if (ch[i].tokens[k].offset < at || ch[i].tokens[k].offset > ch[i].len)
        g->last_offset_ok[i] = 0;
      at = ch[i].tokens[k].offset;
      if (k < 64)
        g->offsets[i][k] = at;
    }
  }
  g->usage = *u;
  snprintf(g->error, sizeof g->error, "%s", error ? error : "");
  g->done = 1;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void wait_done(got *g) {
  pthread_mutex_lock(&g->mu);
  while (!g->done)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

/* Runs one job on the prompt "hello" with body's parameters; 0 or -1 with
 * e from the start. */
/* api_ctx.log_line of the tests: keeps the last line. */
static char g_log[1024];
static void keep_log_line(void *cls, const char *line, size_t n) {
  (void)cls;
  snprintf(g_log, sizeof g_log, "%.*s", (int)n, line);
}

static int run(const char *body, got *g, api_error *e) {
  gen_params p;
  gen_model gm;
  int32_t *toks = NULL;
  memset(&gm, 0, sizeof gm);
  gm.s = g_s;
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  if (parse(body, GEN_API_CHAT, &p, e) < 0)
    return -1;
  const char *prompt = "<|im_start|>user\nhello<|im_end|>\n";
  int n = gen_tokenize(&gm, prompt, strlen(prompt), 0, 0, 1, &toks, e);
  api_stream *s = api_stream_new(); /* the test holds the consumer's end */
  gen_callbacks cb = {on_delta, NULL, on_done, g};
  gen_job *j = gen_job_new(&gm, &p, s, 1, 1, &cb);
  api_ctx ctx = {.log_line = keep_log_line};
  g_log[0] = 0;
  if (j)
    gen_job_log(j, &ctx, "req_test", "chat.completions");
  const int32_t *prompts[1] = {toks};
  int retry = 0,
      r = n > 0 && j ? gen_job_start(j, prompts, &n, 0, &retry, e) : -1;
  if (r == 0)
    wait_done(g);
  api_stream_release(s);
  free(toks);
  gen_params_free(&p);
  return r;
}

static void test_job_text_and_logprobs(void) {
  got g;
  api_error e;
  if (!g_s)
    SKIP("no fixture model");
  CHECK_INT(run("{\"temperature\":0,\"max_tokens\":12,\"ignore_eos\":true,"
                "\"logprobs\":true,\"top_logprobs\":2}",
                &g, &e),
            0);
  CHECK_STR(g.error, "");
  CHECK_STR(g.finish[0], "length");
  CHECK_INT(g.usage.completion_tokens, 12);
  CHECK_INT(g.n_tokens[0], 12);
  CHECK_INT(g.n_delta_toks[0], 12);
  CHECK_STR(g.deltas[0], g.text[0]); /* deltas add up to the text */
  CHECK(g.last_offset_ok[0]);
  CHECK(g.usage.prompt_tokens > 5);
  /* timing, and the log line that reports it */
  CHECK(g.usage.prefill_s > 0 && g.usage.prefill_s <= g.usage.first_token_s);
  CHECK(g.usage.first_token_s < g.usage.total_s);
  char want[128];
  snprintf(want, sizeof want,
           "req_test chat.completions model= prompt=%d "
           "cached=%d completion=12 queue=",
           g.usage.prompt_tokens, g.usage.cached_tokens);
  CHECK(strncmp(g_log, want, strlen(want)) == 0);
  CHECK(strstr(g_log, " first_token=") && strstr(g_log, "tok/s\n"));
}

/* A stop string made of the end of one token and the start of the next
 * cuts the text before it; nothing of it was ever released. */
static void test_job_stop_across_tokens(void) {
  got full, cut;
  api_error e;
  if (!g_s)
    SKIP("no fixture model");
  CHECK_INT(run("{\"temperature\":0,\"max_tokens\":24,\"ignore_eos\":true,"
                "\"logprobs\":true}",
                &full, &e),
            0);
  size_t n = strlen(full.text[0]);
  /* the first 3-byte window (not at 0) that occurs first where it is and
   * holds a token boundary strictly inside */
  char stop[4] = {0};
  size_t at = 0;
  for (size_t i = 1; i + 3 <= n && !at; i++) {
    int inside = 0;
    for (int k = 0; k < full.n_tokens[0] && k < 64; k++)
      inside |= full.offsets[0][k] > i && full.offsets[0][k] < i + 3;
    memcpy(stop, full.text[0] + i, 3);
    if (inside && (size_t)(strstr(full.text[0], stop) - full.text[0]) == i)
      at = i;
  }
  if (!at)
    SKIP("no window across a token boundary in '%s'", full.text[0]);
  char body[256], *q = quoted(stop);
  snprintf(body, sizeof body,
           "{\"temperature\":0,\"max_tokens\":24,\"ignore_eos\":true,"
           "\"stop\":[\"zzzzzz\",%s]}",
           q ? q : "null");
  free(q);
  CHECK_INT(run(body, &cut, &e), 0);
  CHECK_STR(cut.finish[0], "stop");
  CHECKF(strlen(cut.text[0]) == at && !strncmp(cut.text[0], full.text[0], at),
         "'%s' cut at %zu of '%s'", cut.text[0], at, full.text[0]);
  CHECK_STR(cut.deltas[0], cut.text[0]);
  CHECK(cut.usage.completion_tokens < 24);
}

/* A stop that could start at the end of the text (its first byte is the
 * text's last) but never completes: the held-back bytes come out at the
 * end, so the text is whole. */
static void test_job_holdback_flushed(void) {
  got full, g;
  api_error e;
  if (!g_s)
    SKIP("no fixture model");
  CHECK_INT(run("{\"temperature\":0,\"max_tokens\":10,\"ignore_eos\":true}",
                &full, &e),
            0);
  size_t n = strlen(full.text[0]);
  if (!n)
    SKIP("empty greedy text");
  char last[4] = {full.text[0][n - 1], 1, 2, 0}, body[256];
  if ((unsigned char)last[0] >= 0x80)
    SKIP("the text ends inside a UTF-8 sequence");
  char *q = quoted(last);
  snprintf(body, sizeof body,
           "{\"temperature\":0,\"max_tokens\":10,\"ignore_eos\":true,"
           "\"stop\":%s}",
           q ? q : "null");
  free(q);
  CHECK_INT(run(body, &g, &e), 0);
  CHECK_STR(g.text[0], full.text[0]);
  CHECK_STR(g.deltas[0], full.text[0]);
  CHECK_STR(g.finish[0], "length");
}

static void test_job_n_choices(void) {
  got g;
  api_error e;
  if (!g_s)
    SKIP("no fixture model");
  CHECK_INT(
      run("{\"n\":3,\"max_tokens\":5,\"ignore_eos\":true,\"seed\":5}", &g, &e),
      0);
  CHECK_INT(g.usage.completion_tokens, 15);
  for (int i = 0; i < 3; i++) {
    CHECK_STR(g.finish[i], "length");
    CHECK_STR(g.deltas[i], g.text[i]);
  }
}

/* The endpoint's write fails (client gone): the job cancels and on_done
 * says so. */
static void test_job_write_failure_cancels(void) {
  got g;
  api_error e;
  if (!g_s)
    SKIP("no fixture model");
  memset(&g, 0, sizeof g);
  gen_params p;
  gen_model gm = {.s = g_s};
  int32_t *toks = NULL;
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  g.fail_after = 2;
  CHECK_INT(
      parse("{\"max_tokens\":200,\"ignore_eos\":true}", GEN_API_CHAT, &p, &e),
      0);
  int n = gen_tokenize(&gm, "hello", 5, 0, 0, 1, &toks, &e);
  api_stream *s = api_stream_new();
  gen_callbacks cb = {on_delta, NULL, on_done, &g};
  gen_job *j = gen_job_new(&gm, &p, s, 1, 0, &cb);
  const int32_t *prompts[1] = {toks};
  CHECK_INT(gen_job_start(j, prompts, &n, 0, NULL, &e), 0);
  wait_done(&g);
  CHECK_STR(g.error, "cancelled");
  CHECK(g.usage.completion_tokens < 200);
  api_stream_release(s);
  free(toks);
  gen_params_free(&p);
}

/* Starts a job on "hello" (keep_text 0); the stream is leaked to the
 * caller's release. */
static int start_job(const char *body, got *g, api_stream **sp, int *retry,
                     api_error *e) {
  gen_params p;
  gen_model gm = {.s = g_s};
  int32_t *toks = NULL;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  if (parse(body, GEN_API_CHAT, &p, e) < 0)
    return -1;
  int n = gen_tokenize(&gm, "hello", 5, 0, 0, 1, &toks, e);
  *sp = api_stream_new();
  gen_callbacks cb = {on_delta, NULL, on_done, g};
  gen_job *j = gen_job_new(&gm, &p, *sp, 1, 0, &cb);
  const int32_t *prompts[1] = {toks};
  int r = gen_job_start(j, prompts, &n, 0, retry, e);
  free(toks);
  gen_params_free(&p);
  return r;
}

/* Every slot busy (the worker held inside a callback) and the queue (1)
 * full: the next start answers 429 with a retry-after, runs nothing and
 * leaves the others to finish. */
static void test_job_queue_full(void) {
  static got a, b, c;
  api_stream *sa, *sb, *sc;
  api_error e;
  int retry = 0;
  if (!g_s)
    SKIP("no fixture model");
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  a.block = 1;
  CHECK_INT(start_job("{\"n\":4,\"max_tokens\":8,\"ignore_eos\":true}", &a, &sa,
                      &retry, &e),
            0);
  pthread_mutex_lock(&a.mu);
  while (!a.blocked)
    pthread_cond_wait(&a.cv, &a.mu);
  pthread_mutex_unlock(&a.mu);
  CHECK_INT(start_job("{\"max_tokens\":2}", &b, &sb, &retry, &e), 0);
  CHECK_INT(start_job("{\"max_tokens\":2}", &c, &sc, &retry, &e), -1);
  CHECK_INT(e.status, 429);
  CHECK_STR(e.code, "rate_limit_exceeded");
  CHECK(retry >= 1);
  api_stream_release(sc);
  pthread_mutex_lock(&a.mu);
  a.block = 0;
  pthread_cond_broadcast(&a.cv);
  pthread_mutex_unlock(&a.mu);
  wait_done(&a);
  wait_done(&b);
  CHECK_INT(a.usage.completion_tokens, 32);
  CHECK_STR(b.error, "");
  CHECK(!c.done);
  api_stream_release(sa);
  api_stream_release(sb);
}

/* Context check wording and the vocabulary bound of logit_bias. */
static void test_check_context(void) {
  gen_params p;
  api_error e;
  gen_model gm = {.s = g_s};
  if (!g_s)
    SKIP("no fixture model");
  CHECK_INT(parse("{\"max_tokens\":250}", GEN_API_CHAT, &p, &e), 0);
  CHECK_INT(gen_check_context(&gm, &p, 10, "messages", "messages", &e), -1);
  CHECK_INT(e.status, 400);
  CHECK_STR(e.code, "context_length_exceeded");
  CHECK_STR(e.message,
            "This model's maximum context length is 256 tokens. However, you "
            "requested 260 tokens (10 in the messages, 250 in the "
            "completion). Please reduce the length of the messages or "
            "completion.");
  CHECK_INT(gen_check_context(&gm, &p, 6, "messages", "messages", &e), 0);
  gen_params_free(&p);
  CHECK_INT(parse("{}", GEN_API_CHAT, &p, &e), 0);
  CHECK_INT(gen_check_context(&gm, &p, 256, "prompt", "prompt", &e), -1);
  CHECK_STR(e.param, "prompt");
  gen_params_free(&p);
  CHECK_INT(parse("{\"n\":5}", GEN_API_CHAT, &p, &e), 0);
  CHECK_INT(gen_check_context(&gm, &p, 5, "messages", "messages", &e), -1);
  CHECK_STR(e.param, "n"); /* 4 slots */
  gen_params_free(&p);
  CHECK_INT(parse("{\"logit_bias\":{\"1024\":1}}", GEN_API_CHAT, &p, &e), 0);
  CHECK_INT(gen_check_context(&gm, &p, 5, "messages", "messages", &e), -1);
  CHECK_STR(e.param, "logit_bias");
  gen_params_free(&p);
}

static void test_json_helpers(void) {
  gen_usage u = {
      .prompt_tokens = 10, .cached_tokens = 4, .completion_tokens = 3};
  json_t *j = gen_usage_json(&u);
  char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_STR(s, "{\"completion_tokens\":3,\"completion_tokens_details\":{"
               "\"accepted_prediction_tokens\":0,\"audio_tokens\":0,"
               "\"reasoning_tokens\":0,\"rejected_prediction_tokens\":0},"
               "\"prompt_tokens\":10,\"prompt_tokens_details\":{"
               "\"audio_tokens\":0,\"cached_tokens\":4},\"total_tokens\":13}");
  free(s);
  json_decref(j);
  /* a token that is half of a UTF-8 sequence: U+FFFD text, raw bytes */
  gen_token t = {.id = 1, .logprob = -0.5f, .text = "\xC3", .len = 1};
  j = gen_token_logprob_json(&t, 0);
  CHECK_STR(json_string_value(json_object_get(j, "token")), "\xEF\xBF\xBD");
  CHECK_INT(json_integer_value(json_array_get(json_object_get(j, "bytes"), 0)),
            0xC3);
  CHECK_INT(json_array_size(json_object_get(j, "top_logprobs")), 0);
  json_decref(j);
}

/* Deferred work runs in order on the background thread; after stop, inline
 * on the caller's. */
typedef struct order {
  int seen[8], n;
  pthread_t th[8];
} order;

static order g_order;

static void record(void *arg) {
  g_order.th[g_order.n] = pthread_self();
  g_order.seen[g_order.n++] = (int)(intptr_t)arg;
}

static void test_shared_defer(void) {
  gen_shared *g = gen_shared_new();
  CHECK(g != NULL);
  memset(&g_order, 0, sizeof g_order);
  for (int i = 0; i < 5; i++)
    gen_defer(g, record, (void *)(intptr_t)i);
  gen_shared_stop(g); /* drains */
  CHECK_INT(g_order.n, 5);
  for (int i = 0; i < 5; i++) {
    CHECK_INT(g_order.seen[i], i);
    CHECK(!pthread_equal(g_order.th[i], pthread_self()));
  }
  gen_defer(g, record, (void *)(intptr_t)5);
  CHECK_INT(g_order.n, 6);
  CHECK(pthread_equal(g_order.th[5], pthread_self()));
  gen_defer(NULL, record, (void *)(intptr_t)6); /* no shared state: inline */
  CHECK_INT(g_order.n, 7);
  gen_shared_free(g);
}

/* One parsed template per loaded model, shared while referenced. */
static void test_shared_templates(void) {
  char err[256];
  gen_model gm = {.s = g_s};
  if (!g_s)
    SKIP("no fixture model");
  snprintf(gm.fingerprint, sizeof gm.fingerprint, "fp_test");
  gen_shared *g = gen_shared_new();
  chat_template *a = gen_template_acquire(g, &gm, err, sizeof err);
  chat_template *b = gen_template_acquire(g, &gm, err, sizeof err);
  CHECK(a && a == b);
  snprintf(gm.fingerprint, sizeof gm.fingerprint, "fp_other");
  chat_template *c = gen_template_acquire(g, &gm, err, sizeof err);
  CHECK(c && c != a); /* another file at the same address */
  gen_template_release(g, a);
  gen_template_release(g, b);
  gen_template_release(g, c);
  chat_template *p = gen_template_acquire(NULL, &gm, err, sizeof err);
  CHECK(p != NULL);
  gen_template_release(NULL, p); /* private: freed */
  gen_shared_free(g);
}

int main(void) {
  RUN(test_params_defaults);
  RUN(test_params_values);
  RUN(test_params_errors);
  RUN(test_json_helpers);
  if (setup_model() < 0)
    fprintf(stderr, "  could not build the fixture model\n");
  RUN(test_check_context);
  RUN(test_job_text_and_logprobs);
  RUN(test_job_stop_across_tokens);
  RUN(test_job_holdback_flushed);
  RUN(test_job_n_choices);
  RUN(test_job_write_failure_cancels);
  RUN(test_job_queue_full);
  RUN(test_shared_defer);
  RUN(test_shared_templates);
  if (g_s)
    sched_free(g_s);
  eng_model_free(g_m);
  unlink(g_path);
  T_MAIN_END();
}
