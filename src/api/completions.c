/* Completions (legacy): POST /v1/completions.
 *
 * Two sections, Redis t_list.c style: first the completion "type" (prompts
 * in their four JSON forms -> token ids, fill-in-the-middle for `suffix`,
 * the prompt's own log-probabilities for `echo` + `logprobs`, the legacy
 * logprobs object {tokens, token_logprobs, top_logprobs, text_offset}),
 * then the handler and the generation callbacks over the shared driver
 * (api/gen.h), which does sampling, stop sequences and streaming.
 *
 * Choices: prompt i's choices are indices i*n .. i*n+n-1. With best_of > n,
 * best_of candidates are generated per prompt and the n with the highest
 * mean token log-probability are returned (not streamable, as the
 * platform). text_offset counts characters (code points) of the prompt
 * followed by the completion, also without echo, as the platform does.
 *
 * echo + logprobs needs the logits of every prompt token: they are computed
 * on a private one-sequence context over the same (shared, read-only) model
 * on the request's thread, outside the scheduler: correct but not batched.
 *
 * Knows nothing about libmicrohttpd or the scheduler's internals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/gen.h"
#include "api/stream.h"
#include "core/jsonbody.h"
#include "engine/engine.h"

/* prompts in one request (each is one sched request) */
#define CMPL_MAX_PROMPTS 32
#define CMPL_MAX_LOGPROBS 5 /* the platform's bound on `logprobs` */
#define CMPL_PLP_CHUNK 32   /* prompt tokens per forward pass (echo logprobs) */

/* ======================================================================== */
/* The completion type: prompts, infill, prompt logprobs, legacy logprobs   */
/* ======================================================================== */

/* One prompt token's log-probabilities (echo + logprobs). */
typedef struct cmpl_plp {
  int has;       /* 0: the first token of a sequence (logprob null) */
  float logprob; /* of the token itself */
  int n_top;
  int32_t top_id[CMPL_MAX_LOGPROBS];
  float top_lp[CMPL_MAX_LOGPROBS];
} cmpl_plp;

/* One prompt, tokenized. */
typedef struct cmpl_prompt {
  int32_t *ids; /* what the model reads (owned) */
  int n;
  int echo_first; /* ids[echo_first..n) are the echoed tokens (1 when a
                     BOS / document separator was added in front) */
  char *echo;     /* the prompt's text, for echo (owned, NUL-ended) */
  size_t echo_len;
  size_t echo_chars; /* code points of echo */
  cmpl_plp *plp;     /* n - echo_first entries, or NULL */
} cmpl_prompt;

/* Code points in s[0..n): bytes that are not UTF-8 continuation bytes. */
static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

/* A token's text as the platform shows it: the text itself when it is
 * valid UTF-8 without NUL, else "bytes:\xNN..." (a piece of a character).
 * Writes a NUL-terminated string into buf (cap >= 4 * len + 8). */
static void tok_key(const char *s, int len, char *buf, size_t cap) {
  json_t *j = len >= 0 && !memchr(s, 0, (size_t)len)
                  ? json_stringn(s, (size_t)len)
                  : NULL;
  if (j && (size_t)len < cap) {
    memcpy(buf, s, (size_t)len);
    buf[len] = 0;
  } else {
    size_t o = (size_t)snprintf(buf, cap, "bytes:");
    for (int i = 0; i < len && o + 5 < cap; i++)
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", (unsigned char)s[i]);
  }
  json_decref(j);
}

/* A log-probability as JSON: -inf (a banned token) is not JSON, the
 * platform reports -9999. */
static json_t *lp_json(float lp) {
  return json_real(lp > -9999.0f ? (double)lp : -9999.0);
}

/* The empty legacy logprobs object. */
static json_t *lp_new(void) {
  return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs",
                   "top_logprobs", "text_offset");
}

/* Appends one token to a legacy logprobs object. has_lp 0: logprob and top
 * alternatives are null (a sequence's first token). The sampled token is
 * always among its top_logprobs (the platform's "up to logprobs+1"). */
static void lp_add(json_t *lp, const char *text, int len, int has_lp,
                   float logprob, const char *const *top_text,
                   const int *top_len, const float *top_lp, int n_top,
                   size_t offset) {
  char key[4 * 256 + 16];
  char *big = NULL;
  size_t cap = (size_t)(len > 0 ? len : 0) * 4 + 16;
  char *k = cap <= sizeof key ? key : (big = malloc(cap));
  if (!k)
    return;
  tok_key(text, len, k, cap);
  json_array_append_new(json_object_get(lp, "tokens"), json_string(k));
  json_array_append_new(json_object_get(lp, "token_logprobs"),
                        has_lp ? lp_json(logprob) : json_null());
  json_t *top = has_lp ? json_object() : json_null();
  for (int i = 0; has_lp && i < n_top; i++) {
    char tk[4 * 256 + 16];
    if (top_len[i] > 255)
      continue; /* no vocabulary piece is that long; skip defensively */
    tok_key(top_text[i], top_len[i], tk, sizeof tk);
    json_object_set_new(top, tk, lp_json(top_lp[i]));
  }
  if (has_lp && !json_object_get(top, k))
    json_object_set_new(top, k, lp_json(logprob));
  json_array_append_new(json_object_get(lp, "top_logprobs"), top);
  json_array_append_new(json_object_get(lp, "text_offset"),
                        json_integer((json_int_t)offset));
  free(big);
}

/* Appends the echoed prompt tokens of pr (with their log-probabilities when
 * computed) to lp, offsets from 0. */
static void lp_add_prompt(json_t *lp, const eng_model *m,
                          const cmpl_prompt *pr) {
  size_t off = 0;
  for (int i = pr->echo_first; i < pr->n; i++) {
    char piece[256], tops[CMPL_MAX_LOGPROBS][256];
    const char *tt[CMPL_MAX_LOGPROBS];
    int tl[CMPL_MAX_LOGPROBS];
    int len = eng_token_piece(m, pr->ids[i], 1, piece, sizeof piece);
    len = len < 0 ? 0 : len;
    const cmpl_plp *p = pr->plp ? &pr->plp[i - pr->echo_first] : NULL;
    int n_top = p && p->has ? p->n_top : 0;
    for (int t = 0; t < n_top; t++) {
      tl[t] = eng_token_piece(m, p->top_id[t], 1, tops[t], sizeof tops[t]);
      tl[t] = tl[t] < 0 ? 0 : tl[t];
      tt[t] = tops[t];
    }
    lp_add(lp, piece, len, p && p->has, p ? p->logprob : 0, tt, tl,
           p ? p->top_lp : NULL, n_top,
           off > pr->echo_chars ? pr->echo_chars : off);
    off += utf8_chars(piece, (size_t)len);
    /* SentencePiece's space prefix is in the first piece, not the text */
    if (i == pr->echo_first && len > 0 && piece[0] == ' ' && pr->echo[0] != ' ')
      off--;
  }
}

/* Appends generated tokens (from the driver) to lp: offsets are base plus
 * the characters of text before each token's start. */
static void lp_add_generated(json_t *lp, const gen_token *toks, int n,
                             const char *text, size_t text_len, size_t base) {
  size_t byte = 0, chars = 0;
  for (int i = 0; i < n; i++) {
    const gen_token *t = &toks[i];
    size_t to = t->offset < text_len ? t->offset : text_len;
    if (to > byte) {
      chars += utf8_chars(text + byte, to - byte);
      byte = to;
    }
    const char *tt[SAMPLER_MAX_LOGPROBS];
    int tl[SAMPLER_MAX_LOGPROBS];
    float tp[SAMPLER_MAX_LOGPROBS];
    for (int a = 0; a < t->n_top && a < SAMPLER_MAX_LOGPROBS; a++) {
      tt[a] = t->top[a].text;
      tl[a] = t->top[a].len;
      tp[a] = t->top[a].logprob;
    }
    lp_add(lp, t->text, t->len, 1, t->logprob, tt, tl, tp, t->n_top,
           base + chars);
  }
}

/* ---- prompts: JSON forms -> items ---- */

/* Checks the shape of `prompt` (before any model is loaded) and collects
 * its items: one string, or one array of ids, per prompt. null and absent
 * differ: absent is a missing parameter, null is the empty document. */
static int prompt_items(json_t *body, json_t **items, int *n_items,
                        api_error *e) {
  json_t *v = json_object_get(body, "prompt");
  if (!v) {
    err_invalid(e, "prompt", "Missing required parameter: 'prompt'.");
    return -1;
  }
  *n_items = 0;
  if (json_is_null(v) || json_is_string(v)) {
    items[(*n_items)++] = v;
    return 0;
  }
  if (!json_is_array(v)) {
    err_invalid(e, "prompt",
                "Invalid type for 'prompt': expected a string, an array of "
                "strings, an array of integers or an array of arrays of "
                "integers, but got %s instead.",
                jb_type_words(v));
    return -1;
  }
  size_t n = json_array_size(v);
  if (n == 0) {
    err_invalid(e, "prompt",
                "Invalid 'prompt': empty array. Expected an array with "
                "minimum length 1, but got an empty array instead.");
    return -1;
  }
  json_t *first = json_array_get(v, 0);
  if (json_is_integer(first)) { /* one prompt of token ids */
    items[(*n_items)++] = v;
    return 0;
  }
  if (!json_is_string(first) && !json_is_array(first)) {
    err_invalid(e, "prompt",
                "Invalid type for 'prompt[0]': expected a string, an integer "
                "or an array of integers, but got %s instead.",
                jb_type_words(first));
    return -1;
  }
  if (n > CMPL_MAX_PROMPTS) {
    err_invalid(e, "prompt",
                "Invalid 'prompt': too many prompts. Expected at most %d "
                "prompts in one request, but got %zu.",
                CMPL_MAX_PROMPTS, n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    int same = json_is_string(first) ? json_is_string(x) : json_is_array(x);
    if (!same) {
      err_invalid(e, "prompt",
                  "Invalid type for 'prompt[%zu]': expected %s, but got %s "
                  "instead.",
                  i,
                  json_is_string(first) ? "a string" : "an array of integers",
                  jb_type_words(x));
      return -1;
    }
    if (json_is_array(x) && json_array_size(x) == 0) {
      err_invalid(e, "prompt",
                  "Invalid 'prompt[%zu]': empty array. Expected an array "
                  "with minimum length 1, but got an empty array instead.",
                  i);
      return -1;
    }
    items[(*n_items)++] = x;
  }
  return 0;
}

/* Token ids of an array item, each checked against the vocabulary. */
static int prompt_ids_from_array(json_t *arr, int item, int nested, int n_vocab,
                                 cmpl_prompt *pr, api_error *e) {
  size_t n = json_array_size(arr);
  pr->ids = malloc((n ? n : 1) * sizeof *pr->ids);
  if (!pr->ids) {
    err_server(e, "Out of memory reading the prompt.");
    return -1;
  }
  char where[48];
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(arr, i);
    if (nested)
      snprintf(where, sizeof where, "prompt[%d][%zu]", item, i);
    else
      snprintf(where, sizeof where, "prompt[%zu]", i);
    if (!json_is_integer(x)) {
      err_invalid(e, "prompt",
                  "Invalid type for '%s': expected an integer (a token id), "
                  "but got %s instead.",
                  where, jb_type_words(x));
      return -1;
    }
    json_int_t id = json_integer_value(x);
    if (id < 0 || id >= n_vocab) {
      err_invalid(e, "prompt",
                  "Invalid '%s': token id %lld is out of range. This model's "
                  "vocabulary has %d tokens (ids 0 to %d).",
                  where, (long long)id, n_vocab, n_vocab - 1);
      return -1;
    }
    pr->ids[i] = (int32_t)id;
  }
  pr->n = (int)n;
  return 0;
}

/* The text of ids (control tokens rendered), malloc'd, for echo. */
static char *detok_all(const eng_model *m, const int32_t *ids, int n,
                       size_t *len) {
  size_t cap = 256, used = 0;
  char *out = malloc(cap);
  eng_detok *d = eng_detok_new(m, 1);
  for (int i = 0; out && d && i <= n; i++) {
    for (;;) {
      int room = (int)(cap - used - 1);
      int w = i < n ? eng_detok_push(d, ids[i], out + used, room)
                    : eng_detok_flush(d, out + used, room);
      if (w >= 0) {
        used += (size_t)w;
        break;
      }
      char *bigger = realloc(out, cap * 2 + (size_t)-w);
      if (!bigger) {
        free(out);
        out = NULL;
        break;
      }
      out = bigger;
      cap = cap * 2 + (size_t)-w;
    }
  }
  eng_detok_free(d);
  if (!d) {
    free(out);
    return NULL;
  }
  if (out) {
    out[used] = 0;
    api_utf8_scrub(out);
  }
  *len = used;
  return out;
}

/* 1 when the vocabulary puts BOS in front of tokenized text. */
static int adds_bos(const eng_model *m) {
  int32_t t[4];
  return eng_tokenize(m, "", 0, 1, 0, t, 4) > 0;
}

/* Concatenates parts into pr->ids (owned parts are freed). */
static int ids_concat(cmpl_prompt *pr, int32_t *const *parts, const int *lens,
                      int n_parts, api_error *e) {
  int total = 0;
  for (int i = 0; i < n_parts; i++)
    total += lens[i];
  int32_t *ids = malloc((size_t)(total ? total : 1) * sizeof *ids);
  if (!ids) {
    err_server(e, "Out of memory reading the prompt.");
    return -1;
  }
  int o = 0;
  for (int i = 0; i < n_parts; i++) {
    if (lens[i])
      memcpy(ids + o, parts[i], (size_t)lens[i] * sizeof *ids);
    o += lens[i];
  }
  free(pr->ids);
  pr->ids = ids;
  pr->n = total;
  return 0;
}

/* Fill in the middle: [BOS] PRE prompt SUF suffix MID. */
static int prompt_infill(const gen_model *gm, cmpl_prompt *pr,
                         const char *suffix, api_error *e) {
  const eng_model *m = sched_model(gm->s);
  int32_t pre = eng_token_fim(m, ENG_FIM_PRE),
          suf = eng_token_fim(m, ENG_FIM_SUF),
          mid = eng_token_fim(m, ENG_FIM_MID), bos = eng_token_bos(m);
  int32_t *sfx = NULL;
  int n_sfx = gen_tokenize(gm, suffix, strlen(suffix), 0, 0, 1, &sfx, e);
  if (n_sfx < 0)
    return -1;
  int has_bos = adds_bos(m) && bos >= 0;
  int32_t *parts[] = {&bos, &pre, pr->ids, &suf, sfx, &mid};
  int lens[] = {has_bos, 1, pr->n, 1, n_sfx, 1};
  int rc = ids_concat(pr, parts, lens, 6, e);
  free(sfx);
  pr->echo_first = pr->n; /* nothing of an infill prompt is echoed */
  return rc;
}

/* Tokenizes one prompt item: a string (document separator in front when
 * the vocabulary asks for BOS, or when it is empty), or ids as given. */
static int prompt_tokenize(const gen_model *gm, json_t *item, int idx,
                           int nested, cmpl_prompt *pr, api_error *e) {
  const eng_model *m = sched_model(gm->s);
  if (json_is_array(item)) {
    if (prompt_ids_from_array(item, idx, nested, eng_model_n_vocab(m), pr, e))
      return -1;
    pr->echo = detok_all(m, pr->ids, pr->n, &pr->echo_len);
  } else {
    const char *s = json_is_string(item) ? json_string_value(item) : "";
    size_t len = json_is_string(item) ? json_string_length(item) : 0;
    int32_t *t = NULL;
    int n = gen_tokenize(gm, s, len, 0, 0, 1, &t, e);
    if (n < 0)
      return -1;
    int32_t sep = eng_token_bos(m) >= 0 ? eng_token_bos(m) : eng_token_eos(m);
    int front = (n == 0 || adds_bos(m)) && sep >= 0;
    if (n == 0 && sep < 0) {
      free(t);
      err_invalid(e, "prompt",
                  "Invalid 'prompt': the prompt is empty and this model has "
                  "no beginning-of-text token to start from.");
      return -1;
    }
    int32_t *parts[] = {&sep, t};
    int lens[] = {front, n};
    int rc = ids_concat(pr, parts, lens, 2, e);
    free(t);
    if (rc)
      return -1;
    pr->echo_first = front;
    pr->echo = malloc(len + 1);
    if (pr->echo) {
      memcpy(pr->echo, s, len);
      pr->echo[len] = 0;
      pr->echo_len = len;
    }
  }
  if (!pr->echo) {
    err_server(e, "Out of memory reading the prompt.");
    return -1;
  }
  pr->echo_chars = utf8_chars(pr->echo, pr->echo_len);
  return 0;
}

/* ---- prompt log-probabilities (echo + logprobs) ---- */

/* log-softmax of logits at tok, and the k most likely (most likely first). */
static void logits_lp(const float *x, int n_vocab, int32_t tok, int k,
                      cmpl_plp *out) {
  float mx = -INFINITY;
  for (int i = 0; i < n_vocab; i++)
    mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int i = 0; i < n_vocab; i++)
    sum += exp((double)(x[i] - mx));
  const float lse = mx + (float)log(sum);
  out->has = 1;
  out->logprob = x[tok] - lse;
  out->n_top = 0;
  for (int i = 0; i < n_vocab; i++) {
    int pos = out->n_top;
    while (pos > 0 && x[out->top_id[pos - 1]] < x[i])
      pos--;
    if (pos >= k)
      continue;
    int last = out->n_top < k ? out->n_top : k - 1;
    for (int j = last; j > pos; j--)
      out->top_id[j] = out->top_id[j - 1];
    out->top_id[pos] = i;
    if (out->n_top < k)
      out->n_top++;
  }
  for (int j = 0; j < out->n_top; j++)
    out->top_lp[j] = x[out->top_id[j]] - lse;
}

/* Fills pr->plp: evaluates the prompt on a private context (the model is
 * read-only and shared; eng_ctx_new only reads it) with logits for every
 * position whose next token is echoed, on half the cores, in chunks of
 * CMPL_PLP_CHUNK tokens (logits of one chunk at a time). 0, or -1 with e
 * (500). */
static int prompt_logprobs(const eng_model *cm, cmpl_prompt *pr, int k,
                           api_error *e) {
  const int n = pr->n, first = pr->echo_first, n_vocab = eng_model_n_vocab(cm);
  if (first >= n)
    return 0;
  pr->plp = calloc((size_t)(n - first), sizeof *pr->plp);
  if (!pr->plp) {
    err_server(e, "Out of memory computing the prompt's logprobs.");
    return -1;
  }
  if (n < 2 || (first == 0 && n == 1))
    return 0; /* only a first token: its logprob is null */
  eng_ctx_params cp = eng_ctx_default_params();
  cp.n_ctx = n;
  cp.n_seq_max = 1;
  cp.n_batch = CMPL_PLP_CHUNK;
  /* half the cores: the model's scheduler keeps decoding meanwhile */
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cp.n_threads = cpus > 1 ? (int)(cpus / 2) : 1;
  eng_ctx *ctx = NULL;
  char err[256];
  eng_batch b = eng_batch_init(CMPL_PLP_CHUNK);
  int rc = b.tok ? eng_ctx_new((eng_model *)cm, &cp, &ctx, err, sizeof err)
                 : ENG_ERR_NOMEM;
  /* token i's logits predict token i+1: evaluate 0..n-2 */
  for (int s = 0; rc == ENG_OK && s < n - 1; s += CMPL_PLP_CHUNK) {
    int end = s + CMPL_PLP_CHUNK < n - 1 ? s + CMPL_PLP_CHUNK : n - 1;
    eng_batch_clear(&b);
    for (int i = s; i < end; i++)
      eng_batch_add(&b, pr->ids[i], i, 0, i + 1 >= first);
    rc = eng_decode(ctx, &b);
    if (rc != ENG_OK) {
      snprintf(err, sizeof err, "%s", eng_ctx_last_error(ctx));
      break;
    }
    for (int i = s; i < end; i++)
      if (i + 1 >= first)
        logits_lp(eng_get_logits(ctx, i - s), n_vocab, pr->ids[i + 1], k,
                  &pr->plp[i + 1 - first]);
  }
  eng_batch_free(&b);
  eng_ctx_free(ctx);
  if (rc != ENG_OK) {
    err_server(e, "Could not compute the prompt's logprobs: %s.",
               rc == ENG_ERR_NOMEM ? "out of memory" : err);
    return -1;
  }
  return 0;
}

/* ======================================================================== */
/* Handler                                                                  */
/* ======================================================================== */

/* Everything one request needs after the handler returned (the driver's
 * callbacks run on the model's worker thread). */
typedef struct cmpl {
  gen_model m;
  gen_params p;
  json_t *body;           /* the request (prompt items borrow from it) */
  const char *model_name; /* as requested, into body */
  char id[64];
  long long created;
  cmpl_prompt *prompts;
  int n_prompts;
  int n;       /* choices returned per prompt */
  int best_of; /* generated per prompt (>= n) */
  int echo;
  int logprobs;                    /* -1: none, else 0..5 alternatives */
  int *echo_sent;                  /* streaming: per choice */
  size_t *sent_bytes, *sent_chars; /* streaming: per choice */
} cmpl;

static void cmpl_free(cmpl *c) {
  if (!c)
    return;
  for (int i = 0; c->prompts && i < c->n_prompts; i++) {
    free(c->prompts[i].ids);
    free(c->prompts[i].echo);
    free(c->prompts[i].plp);
  }
  free(c->prompts);
  free(c->echo_sent);
  free(c->sent_bytes);
  free(c->sent_chars);
  gen_params_free(&c->p);
  json_decref(c->body);
  free(c);
}

/* The response object's frame: {id, object, created, model,
 * system_fingerprint, choices: []}. */
static json_t *frame(const cmpl *c) {
  return json_pack("{s:s,s:s,s:I,s:s,s:s,s:[]}", "id", c->id, "object",
                   "text_completion", "created", (json_int_t)c->created,
                   "model", c->model_name, "system_fingerprint",
                   c->m.fingerprint, "choices");
}

static json_t *choice_json(int index, const char *text, size_t len,
                           json_t *logprobs, const char *finish) {
  json_t *t = json_stringn(text, len);
  return json_pack("{s:o,s:i,s:o,s:o}", "text", t ? t : json_string(""),
                   "index", index, "logprobs",
                   logprobs ? logprobs : json_null(), "finish_reason",
                   finish ? json_string(finish) : json_null());
}

/* One streamed chunk with one choice. 0 / -1 (client gone). */
static int send_chunk(const cmpl *c, api_stream *s, json_t *choice) {
  json_t *f = frame(c);
  json_array_append_new(json_object_get(f, "choices"), choice);
  int rc = api_stream_sse(s, NULL, f);
  json_decref(f);
  return rc;
}

/* Streaming: the echoed prompt opens each choice. */
static int send_echo(cmpl *c, api_stream *s, int index) {
  if (!c->echo || c->echo_sent[index])
    return 0;
  c->echo_sent[index] = 1;
  const cmpl_prompt *pr = &c->prompts[index / c->n];
  json_t *lp = NULL;
  if (c->logprobs >= 0) {
    lp = lp_new();
    lp_add_prompt(lp, sched_model(c->m.s), pr);
  }
  c->sent_bytes[index] = 0;
  return send_chunk(c, s, choice_json(index, pr->echo, pr->echo_len, lp, NULL));
}

static int on_delta(gen_job *j, void *cls, const gen_choice *ch,
                    const char *text, size_t len, const gen_token *toks,
                    int n_toks) {
  cmpl *c = cls;
  api_stream *s = gen_job_stream(j);
  if (send_echo(c, s, ch->index))
    return -1;
  const cmpl_prompt *pr = &c->prompts[ch->index / c->n];
  json_t *lp = NULL;
  if (c->logprobs >= 0) {
    /* toks' offsets are into the choice's whole text; this delta starts at
     * sent_bytes of it */
    gen_token *tk = malloc(sizeof *tk * (size_t)(n_toks > 0 ? n_toks : 1));
    if (!tk)
      return -1;
    for (int i = 0; i < n_toks; i++) {
      tk[i] = toks[i];
      size_t b = c->sent_bytes[ch->index];
      tk[i].offset = toks[i].offset > b ? toks[i].offset - b : 0;
    }
    lp = lp_new();
    lp_add_generated(lp, tk, n_toks, text, len,
                     pr->echo_chars + c->sent_chars[ch->index]);
    free(tk);
  }
  c->sent_bytes[ch->index] += len;
  c->sent_chars[ch->index] += utf8_chars(text, len);
  return send_chunk(c, s, choice_json(ch->index, text, len, lp, NULL));
}

static int on_choice_done(gen_job *j, void *cls, const gen_choice *ch) {
  cmpl *c = cls;
  api_stream *s = gen_job_stream(j);
  if (send_echo(c, s, ch->index))
    return -1;
  return send_chunk(
      c, s,
      choice_json(ch->index, "", 0, NULL,
                  ch->finish_reason ? ch->finish_reason : "stop"));
}

/* Mean log-probability of a candidate (best_of ranking). */
static double choice_score(const gen_choice *ch) {
  return ch->n_generated > 0 ? ch->sum_logprob / ch->n_generated : 0;
}

/* Non-streaming: the choices of prompt pi, best first when best_of > n. */
static void add_choices(cmpl *c, json_t *arr, gen_choice *all, int pi) {
  gen_choice *cand = all + (size_t)pi * c->best_of;
  int order[GEN_MAX_N];
  for (int i = 0; i < c->best_of; i++)
    order[i] = i;
  if (c->best_of > c->n) /* insertion sort by score, stable */
    for (int i = 1; i < c->best_of; i++)
      for (int k = i; k > 0 && choice_score(&cand[order[k]]) >
                                   choice_score(&cand[order[k - 1]]);
           k--) {
        int t = order[k];
        order[k] = order[k - 1];
        order[k - 1] = t;
      }
  const cmpl_prompt *pr = &c->prompts[pi];
  for (int r = 0; r < c->n; r++) {
    const gen_choice *ch = &cand[order[r]];
    json_t *lp = NULL;
    if (c->logprobs >= 0) {
      lp = lp_new();
      if (c->echo)
        lp_add_prompt(lp, sched_model(c->m.s), pr);
      lp_add_generated(lp, ch->tokens, ch->n_tokens, ch->text ? ch->text : "",
                       ch->len, pr->echo_chars);
    }
    size_t el = c->echo ? pr->echo_len : 0;
    char *text = malloc(el + ch->len + 1);
    if (text) {
      memcpy(text, pr->echo, el);
      if (ch->len)
        memcpy(text + el, ch->text, ch->len);
    }
    json_array_append_new(
        arr,
        choice_json(pi * c->n + r, text ? text : "", text ? el + ch->len : 0,
                    lp, ch->finish_reason ? ch->finish_reason : "stop"));
    free(text);
  }
}

static void write_json(api_stream *s, json_t *j) {
  char *txt = json_dumps(j, JSON_COMPACT);
  if (txt)
    api_stream_write(s, txt, strlen(txt));
  free(txt);
}

static void on_done(gen_job *j, void *cls, const gen_usage *u,
                    const char *error) {
  cmpl *c = cls;
  api_stream *s = gen_job_stream(j);
  if (error && strcmp(error, "cancelled") != 0) {
    api_error e;
    err_server(&e, "Generation failed: %s", error);
    json_t *ej = api_error_json(&e);
    if (c->p.stream)
      api_stream_sse(s, NULL, ej);
    else
      write_json(s, ej);
    json_decref(ej);
  } else if (!error && c->p.stream) {
    if (c->p.include_usage) {
      json_t *f = frame(c);
      json_object_set_new(f, "usage", gen_usage_json(u));
      api_stream_sse(s, NULL, f);
      json_decref(f);
    }
    api_stream_sse_done(s);
  } else if (!error) {
    int n_all = 0;
    gen_choice *all = gen_job_choices(j, &n_all);
    json_t *f = frame(c);
    for (int pi = 0; pi < c->n_prompts && n_all >= c->n_prompts * c->best_of;
         pi++)
      add_choices(c, json_object_get(f, "choices"), all, pi);
    json_object_set_new(f, "usage", gen_usage_json(u));
    write_json(s, f);
    json_decref(f);
  }
  gen_model_release(&c->m);
  cmpl_free(c);
}

/* ---- request parsing ---- */

/* Parameters of this endpoint that the shared parser does not read. */
static int parse_own(cmpl *c, const char **suffix, int *zero_tokens,
                     api_error *e) {
  long long best_of = 0, mt = 0;
  int echo = 0;
  *suffix = NULL;
  if (jb_bool(c->body, "echo", JB_NULLABLE, &echo, e) < 0 ||
      jb_string(c->body, "suffix", JB_NULLABLE, 0, suffix, e) < 0 ||
      jb_int(c->body, "max_tokens", JB_NULLABLE, 0, 1 << 30, &mt, e) < 0)
    return -1;
  *zero_tokens =
      json_is_integer(json_object_get(c->body, "max_tokens")) && mt == 0;
  int has_best_of = jb_int(c->body, "best_of", JB_NULLABLE, 0, 20, &best_of, e);
  if (has_best_of < 0)
    return -1;
  json_t *lpv = json_object_get(c->body, "logprobs");
  c->logprobs = json_is_integer(lpv) ? (int)json_integer_value(lpv) : -1;
  c->echo = echo;
  c->n = c->p.n;
  c->best_of = has_best_of ? (int)best_of : c->n;
  if (c->best_of < c->n) {
    err_invalid(e, "best_of",
                "best_of must be greater than or equal to n (best_of %d, n "
                "%d).",
                c->best_of, c->n);
    return -1;
  }
  if (c->p.stream && c->best_of > c->n) {
    err_invalid(e, "best_of",
                "Cannot stream results when best_of (%d) is greater than n "
                "(%d): the best completions are chosen once all are done.",
                c->best_of, c->n);
    return -1;
  }
  if (*suffix && !**suffix)
    *suffix = NULL; /* an empty suffix is no suffix */
  if (*suffix && echo) {
    err_invalid(e, "echo", "echo cannot be used together with suffix.");
    return -1;
  }
  return 0;
}

/* Tokenizes every prompt item (after the model is known). */
static int tokenize_all(cmpl *c, json_t **items, const char *suffix,
                        api_error *e) {
  const eng_model *m = sched_model(c->m.s);
  json_t *pv = json_object_get(c->body, "prompt");
  int nested = json_is_array(pv) && json_is_array(json_array_get(pv, 0));
  if (suffix &&
      (eng_token_fim(m, ENG_FIM_PRE) < 0 || eng_token_fim(m, ENG_FIM_SUF) < 0 ||
       eng_token_fim(m, ENG_FIM_MID) < 0)) {
    err_invalid(e, "suffix",
                "suffix is not supported by this model: it has no "
                "fill-in-the-middle tokens.");
    return -1;
  }
  c->prompts = calloc((size_t)c->n_prompts, sizeof *c->prompts);
  if (!c->prompts) {
    err_server(e, "Out of memory reading the prompt.");
    return -1;
  }
  for (int i = 0; i < c->n_prompts; i++) {
    cmpl_prompt *pr = &c->prompts[i];
    if (prompt_tokenize(&c->m, items[i], i, nested, pr, e))
      return -1;
    if (suffix && prompt_infill(&c->m, pr, suffix, e))
      return -1;
  }
  return 0;
}

/* Checks n / best_of against the model's slots and the longest prompt (+
 * max_tokens) against its context. 0 / -1 with e. */
static int check_context(cmpl *c, api_error *e) {
  const int slots = sched_n_slots(c->m.s);
  if (c->best_of > slots) { /* every candidate of a prompt runs at once */
    const char *what = c->best_of > c->n ? "best_of" : "n";
    err_invalid(e, what,
                "Invalid '%s': this server generates at most %d completions "
                "of one prompt at once (its --parallel slots), but %d were "
                "requested.",
                what, slots, c->best_of);
    return -1;
  }
  int longest = 0;
  for (int i = 0; i < c->n_prompts; i++)
    longest = c->prompts[i].n > longest ? c->prompts[i].n : longest;
  int saved_n = c->p.n;
  c->p.n = c->best_of;
  int bad = gen_check_context(&c->m, &c->p, longest, "prompt", "prompt", e);
  c->p.n = saved_n;
  if (bad && !strcmp(e->param, "n") && c->best_of > c->n)
    snprintf(e->param, sizeof e->param, "best_of");
  return bad ? -1 : 0;
}

/* echo + logprobs: scores every prompt (after the context check, so the
 * private context is bounded by the model's). */
static int score_prompts(cmpl *c, api_error *e) {
  if (!c->echo || c->logprobs < 0)
    return 0;
  for (int i = 0; i < c->n_prompts; i++)
    if (prompt_logprobs(sched_model(c->m.s), &c->prompts[i], c->logprobs, e))
      return -1;
  return 0;
}

/* max_tokens 0: no generation; the (echoed) prompts are the answer. */
static void answer_without_generation(cmpl *c, api_resp *resp) {
  gen_usage u = {0};
  for (int i = 0; i < c->n_prompts; i++)
    u.prompt_tokens += c->prompts[i].n;
  json_t *f = frame(c);
  api_stream *s = c->p.stream ? api_resp_stream(resp, NULL) : NULL;
  for (int pi = 0; pi < c->n_prompts; pi++)
    for (int r = 0; r < c->n; r++) {
      const cmpl_prompt *pr = &c->prompts[pi];
      json_t *lp = NULL;
      if (c->logprobs >= 0) {
        lp = lp_new();
        if (c->echo)
          lp_add_prompt(lp, sched_model(c->m.s), pr);
      }
      int idx = pi * c->n + r;
      const char *t = c->echo ? pr->echo : "";
      size_t tl = c->echo ? pr->echo_len : 0;
      if (s) {
        send_chunk(c, s, choice_json(idx, t, tl, lp, NULL));
        send_chunk(c, s, choice_json(idx, "", 0, NULL, "length"));
      } else {
        json_array_append_new(json_object_get(f, "choices"),
                              choice_json(idx, t, tl, lp, "length"));
      }
    }
  if (s) {
    if (c->p.include_usage) {
      json_t *uf = frame(c);
      json_object_set_new(uf, "usage", gen_usage_json(&u));
      api_stream_sse(s, NULL, uf);
      json_decref(uf);
    }
    api_stream_sse_done(s);
    api_stream_end(s);
    json_decref(f);
  } else if (!resp->err.status) {
    json_object_set_new(f, "usage", gen_usage_json(&u));
    api_ok(resp, f);
  } else {
    json_decref(f);
  }
}

/* Starts generation; on success the callbacks own c. 0 / -1 (e set, c
 * still the caller's). */
static int start_job(cmpl *c, const api_req *req, api_resp *resp,
                     api_error *e) {
  int saved_n = c->p.n;
  c->p.n = c->best_of;            /* the driver generates best_of per prompt */
  c->p.score = c->best_of > c->n; /* ranking needs each sum_logprob */
  int nc = c->n_prompts * c->best_of;
  if (c->p.stream) {
    c->echo_sent = calloc((size_t)nc, sizeof *c->echo_sent);
    c->sent_bytes = calloc((size_t)nc, sizeof *c->sent_bytes);
    c->sent_chars = calloc((size_t)nc, sizeof *c->sent_chars);
    if (!c->echo_sent || !c->sent_bytes || !c->sent_chars) {
      err_server(e, "Out of memory starting the completion.");
      return -1;
    }
  }
  api_stream *s =
      api_resp_stream(resp, c->p.stream ? NULL : "application/json");
  if (!s) {
    *e = resp->err;
    return -1;
  }
  gen_callbacks cb = {c->p.stream ? on_delta : NULL,
                      c->p.stream ? on_choice_done : NULL, on_done, c};
  gen_job *j = gen_job_new(&c->m, &c->p, s, c->n_prompts, !c->p.stream, &cb);
  if (!j) {
    api_stream_end(s);
    err_server(e, "Out of memory starting the completion.");
    return -1;
  }
  gen_job_log(j, req->ctx, req->request_id, "completions");
  const int32_t **ids = malloc((size_t)c->n_prompts * sizeof *ids);
  int *lens = malloc((size_t)c->n_prompts * sizeof *lens);
  for (int i = 0; ids && lens && i < c->n_prompts; i++) {
    ids[i] = c->prompts[i].ids;
    lens[i] = c->prompts[i].n;
  }
  int retry = 0, rc = -1;
  if (ids && lens)
    rc = gen_job_start(j, (const int32_t *const *)ids, lens, 0, &retry, e);
  else
    err_server(e, "Out of memory starting the completion.");
  free(ids);
  free(lens);
  if (rc && retry > 0)
    snprintf(resp->retry_after, sizeof resp->retry_after, "%d", retry);
  if (rc)
    c->p.n = saved_n;
  return rc;
}

void api_completions_create(api_req *req, api_resp *resp) {
  api_error *e = &resp->err;
  cmpl *c = calloc(1, sizeof *c);
  if (!c) {
    err_server(e, "Out of memory.");
    return;
  }
  json_t *items[CMPL_MAX_PROMPTS];
  const char *suffix = NULL;
  int zero = 0;
  if (!(c->body = api_json_body(req, e)) ||
      gen_params_parse(c->body, GEN_API_COMPLETIONS, &c->p, e) ||
      prompt_items(c->body, items, &c->n_prompts, e) ||
      parse_own(c, &suffix, &zero, e))
    goto free;
  if (c->n_prompts * c->best_of > GEN_MAX_N) {
    err_invalid(e, "n",
                "Too many completions requested: %d prompts x %d choices "
                "each is more than %d.",
                c->n_prompts, c->best_of, GEN_MAX_N);
    goto free;
  }
  if (gen_model_acquire(req->ctx, c->body, &c->m, e))
    goto free;
  c->model_name = json_string_value(json_object_get(c->body, "model"));
  if (tokenize_all(c, items, suffix, e) || check_context(c, e) ||
      score_prompts(c, e))
    goto release;
  gen_new_id("cmpl-", c->id, sizeof c->id);
  c->created = (long long)time(NULL);
  if (zero) { /* answered here: nothing to generate */
    answer_without_generation(c, resp);
    goto release;
  }
  if (start_job(c, req, resp, e))
    goto release;
  return; /* the job owns c now */
release:
  gen_model_release(&c->m);
free:
  cmpl_free(c);
}
