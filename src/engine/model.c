/* model.c: loads a llama / qwen2 / qwen3 / gemma / gemma2 / gemma3 GGUF into
 * an eng_model. Reads the hyper-parameters from `<arch>.*` metadata, finds
 * every weight tensor by its GGUF name, checks its shape and type, and
 * keeps a pointer into the mapping (weights are never copied; only the small
 * 1-D norm vectors and biases are converted to f32). Knows nothing about
 * contexts, the KV cache, the forward pass or the server. */
#include "engine/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

/* ---- small helpers -------------------------------------------------------*/

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *type_name(int type) {
  return qtype_name(type);
}

/* Integer metadata `<arch>.<suffix>`; *out untouched when absent. */
static int meta_int(const eng_model *m, const char *suffix, int64_t *out) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  return gguf_get_int(m->gguf, key, out) == GGUF_OK;
}

static int meta_float(const eng_model *m, const char *suffix, double *out) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  return gguf_get_float(m->gguf, key, out) == GGUF_OK;
}

static char *dup_str(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

/* ---- tensors -------------------------------------------------------------*/

typedef struct {
  eng_model *m;
  char *err;
  size_t errlen;
} loader;

/* Finds a 2-D weight named `name` with shape (cols, rows) (rows < 0: any)
 * and a type the kernels can multiply. optional: absent is fine (returns
 * ENG_OK with t->data NULL). */
static int get_mat(loader *L, const char *name, int64_t cols, int64_t rows,
                   int optional, mtensor *t) {
  const gguf_tensor *g = gguf_find_tensor(L->m->gguf, name);
  memset(t, 0, sizeof *t);
  if (!g) {
    if (optional)
      return ENG_OK;
    return fail(L->err, L->errlen, ENG_ERR_FORMAT, "missing tensor '%s'", name);
  }
  if (!k_type_supported(g->type))
    return fail(L->err, L->errlen, ENG_ERR_UNSUPPORTED,
                "tensor '%s': unsupported type %s", name, type_name(g->type));
  if (g->n_dims > 2 || g->ne[0] != cols || (rows >= 0 && g->ne[1] != rows))
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "tensor '%s': shape [%lld, %lld], expected [%lld, %lld]", name,
                (long long)g->ne[0], (long long)g->ne[1], (long long)cols,
                (long long)rows);
  t->data = g->data;
  t->type = g->type;
  t->cols = g->ne[0];
  t->rows = g->ne[1];
  t->row_bytes = qtype_row_size(g->type, g->ne[0]);
  L->m->weight_bytes += g->nbytes;
  return ENG_OK;
}

/* Finds a 1-D tensor of n elements (any float type) and converts it to a
 * newly allocated f32 array in *out (NULL when optional and absent). */
static int get_vec(loader *L, const char *name, int64_t n, int optional,
                   float **out) {
  const gguf_tensor *g = gguf_find_tensor(L->m->gguf, name);
  *out = NULL;
  if (!g) {
    if (optional)
      return ENG_OK;
    return fail(L->err, L->errlen, ENG_ERR_FORMAT, "missing tensor '%s'", name);
  }
  if (g->ne[0] != n || g->ne[1] * g->ne[2] * g->ne[3] != 1)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "tensor '%s': %lld elements, expected %lld", name,
                (long long)(g->ne[0] * g->ne[1]), (long long)n);
  const qtype_info *qi = qtype(g->type);
  if (!qi || !qi->supported || n % qi->blck != 0)
    return fail(L->err, L->errlen, ENG_ERR_UNSUPPORTED,
                "tensor '%s': unsupported type %s", name, type_name(g->type));
  *out = malloc(sizeof(float) * (size_t)n);
  if (!*out)
    return fail(L->err, L->errlen, ENG_ERR_NOMEM, "out of memory");
  q_dequant_row(g->type, g->data, *out, n);
  L->m->weight_bytes += g->nbytes;
  return ENG_OK;
}

static int load_layer(loader *L, int il, mlayer *l) {
  eng_model *m = L->m;
  int64_t E = m->n_embd, Q = (int64_t)m->n_head * m->head_dim;
  int64_t KV = (int64_t)m->n_head_kv * m->head_dim;
  char n[96];
  int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
  if ((rc = get_vec(L, NAME("attn_norm.weight"), E, 0, &l->attn_norm)) ||
      (rc = get_mat(L, NAME("attn_q.weight"), E, Q, 0, &l->wq)) ||
      (rc = get_mat(L, NAME("attn_k.weight"), E, KV, 0, &l->wk)) ||
      (rc = get_mat(L, NAME("attn_v.weight"), E, KV, 0, &l->wv)) ||
      (rc = get_mat(L, NAME("attn_output.weight"), Q, E, 0, &l->wo)) ||
      (rc = get_vec(L, NAME("ffn_norm.weight"), E, 0, &l->ffn_norm)) ||
      (rc = get_mat(L, NAME("ffn_gate.weight"), E, m->n_ff, 0, &l->ffn_gate)) ||
      (rc = get_mat(L, NAME("ffn_up.weight"), E, m->n_ff, 0, &l->ffn_up)) ||
      (rc = get_mat(L, NAME("ffn_down.weight"), m->n_ff, E, 0, &l->ffn_down)))
    return rc;
  /* qwen2 has q/k/v biases (llama files may carry them too). */
  int need_bias = m->arch == ARCH_QWEN2 ? 0 : 1;
  if ((rc = get_vec(L, NAME("attn_q.bias"), Q, need_bias, &l->bq)) ||
      (rc = get_vec(L, NAME("attn_k.bias"), KV, need_bias, &l->bk)) ||
      (rc = get_vec(L, NAME("attn_v.bias"), KV, need_bias, &l->bv)))
    return rc;
  /* qwen3 and gemma3 normalize q and k per head. */
  int need_qk = m->arch == ARCH_QWEN3 || m->arch == ARCH_GEMMA3 ? 0 : 1;
  if ((rc = get_vec(L, NAME("attn_q_norm.weight"), m->head_dim, need_qk,
                    &l->q_norm)) ||
      (rc = get_vec(L, NAME("attn_k_norm.weight"), m->head_dim, need_qk,
                    &l->k_norm)))
    return rc;
  /* gemma2/3 normalize the outputs of attention and feed-forward too */
  int gemma = m->arch == ARCH_GEMMA2 || m->arch == ARCH_GEMMA3;
  if (gemma && ((rc = get_vec(L, NAME("post_attention_norm.weight"), E, 0,
                              &l->attn_post_norm)) ||
                (rc = get_vec(L, NAME("post_ffw_norm.weight"), E, 0,
                              &l->ffn_post_norm))))
    return rc;
#undef NAME
  return ENG_OK;
}

/* ---- hyper-parameters ----------------------------------------------------*/

static int read_arch(loader *L) {
  eng_model *m = L->m;
  size_t len = 0;
  const char *a = gguf_get_str(m->gguf, "general.architecture", &len);
  if (!a)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing metadata 'general.architecture'");
  static const char *names[] = {"llama",  "qwen2",  "qwen3",
                                "gemma2", "gemma3", "gemma"};
  for (int i = 0; i < 6; i++)
    if (len == strlen(names[i]) && !memcmp(a, names[i], len)) {
      m->arch = i;
      snprintf(m->arch_name, sizeof m->arch_name, "%s", names[i]);
      return ENG_OK;
    }
  return fail(L->err, L->errlen, ENG_ERR_UNSUPPORTED,
              "unknown architecture '%.*s' (supported: llama, qwen2, qwen3, "
              "gemma, gemma2, gemma3)",
              (int)(len > 64 ? 64 : len), a);
}

/* Gemma 2's window and soft caps: every other layer from layer 0 slides
 * (window 4096 unless given); scores soft-capped at 50 and logits at 30
 * unless given; the sliding layers keep the global rope. */
static void read_gemma2(eng_model *m) {
  int64_t v;
  double d;
  m->n_swa = meta_int(m, "attention.sliding_window", &v) ? (int)v : 4096;
  m->swa_period = 2;
  m->attn_softcap =
      meta_float(m, "attn_logit_softcapping", &d) ? (float)d : 50.0f;
  m->final_softcap =
      meta_float(m, "final_logit_softcapping", &d) ? (float)d : 30.0f;
}

/* Gemma 3's window: when attention.sliding_window is set, 5 of every 6
 * layers slide (attention.sliding_window_pattern: another period), with
 * rope base rope.freq_base_swa (10000) and no rope scaling; without a
 * window, logits are soft-capped when final_logit_softcapping says so. */
static void read_gemma3(eng_model *m) {
  int64_t v;
  double d;
  m->n_swa = meta_int(m, "attention.sliding_window", &v) ? (int)v : 0;
  if (m->n_swa > 0) {
    m->swa_period =
        meta_int(m, "attention.sliding_window_pattern", &v) ? (int)v : 6;
    m->rope_base_swa =
        meta_float(m, "rope.freq_base_swa", &d) ? (float)d : 10000.0f;
    m->rope_scale_swa = 1.0f;
  } else if (meta_float(m, "final_logit_softcapping", &d) && d > 0)
    m->final_softcap = (float)d;
}

/* Gemma 1 / 2 / 3 settings, as llama.cpp reads them: embeddings scaled by
 * sqrt(n_embd); queries scaled by 1/sqrt(key_length) (Gemma 2/3 27B, told
 * apart by their layer count: 1/sqrt(n_embd / n_head)); GELU feed-forward;
 * Gemma 2/3's sliding windows and soft caps above. */
static int read_gemma(loader *L) {
  eng_model *m = L->m;
  m->embd_scale = sqrtf((float)m->n_embd);
  m->gelu = 1;
  m->attn_scale = 1.0f / sqrtf((float)m->head_dim);
  if (m->arch == ARCH_GEMMA) /* Gemma 1: no window, no soft caps */
    return ENG_OK;
  const int g2 = m->arch == ARCH_GEMMA2;
  if (m->n_layer == (g2 ? 46 : 62)) /* the 27B models */
    m->attn_scale = 1.0f / sqrtf((float)(m->n_embd / m->n_head));
  m->rope_base_swa = m->rope_base;
  m->rope_scale_swa = m->rope_scale;
  if (g2)
    read_gemma2(m);
  else
    read_gemma3(m);
  if (m->n_swa < 0 || m->swa_period < 0 || m->attn_softcap < 0 ||
      m->final_softcap < 0 || m->rope_base_swa <= 0)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "invalid sliding window %d / pattern %d / soft caps", m->n_swa,
                m->swa_period);
  return ENG_OK;
}

static int read_hparams(loader *L) {
  eng_model *m = L->m;
  int64_t v;
  double d;
  const gguf_tensor *emb = gguf_find_tensor(m->gguf, "token_embd.weight");
  if (!emb)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing tensor 'token_embd.weight'");
  if (!meta_int(m, "embedding_length", &v))
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing metadata '%s.embedding_length'", m->arch_name);
  m->n_embd = (int)v;
  if (!meta_int(m, "block_count", &v))
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing metadata '%s.block_count'", m->arch_name);
  m->n_layer = (int)v;
  if (!meta_int(m, "attention.head_count", &v))
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing metadata '%s.attention.head_count'", m->arch_name);
  m->n_head = (int)v;
  m->n_head_kv =
      meta_int(m, "attention.head_count_kv", &v) ? (int)v : m->n_head;
  if (!meta_int(m, "feed_forward_length", &v))
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "missing metadata '%s.feed_forward_length'", m->arch_name);
  m->n_ff = (int)v;
  m->n_ctx_train = meta_int(m, "context_length", &v) ? (int)v : 2048;
  if (m->n_embd <= 0 || m->n_layer <= 0 || m->n_layer > 4096 ||
      m->n_head <= 0 || m->n_head_kv <= 0 || m->n_head % m->n_head_kv ||
      m->n_ff <= 0 || m->n_ctx_train <= 0)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "invalid hyper-parameters (n_embd %d, n_layer %d, n_head %d, "
                "n_head_kv %d, n_ff %d)",
                m->n_embd, m->n_layer, m->n_head, m->n_head_kv, m->n_ff);
  m->head_dim =
      meta_int(m, "attention.key_length", &v) ? (int)v : m->n_embd / m->n_head;
  if (meta_int(m, "attention.value_length", &v) && v != m->head_dim)
    return fail(L->err, L->errlen, ENG_ERR_UNSUPPORTED,
                "value_length %lld != key_length %d is not supported",
                (long long)v, m->head_dim);
  m->n_rot = meta_int(m, "rope.dimension_count", &v) ? (int)v : m->head_dim;
  if (m->head_dim <= 0 || m->head_dim % 2 || m->n_rot <= 0 ||
      m->n_rot > m->head_dim || m->n_rot % 2 || m->head_dim > 1024)
    return fail(L->err, L->errlen, ENG_ERR_FORMAT,
                "invalid head size %d / rope dimensions %d", m->head_dim,
                m->n_rot);
  m->rms_eps =
      meta_float(m, "attention.layer_norm_rms_epsilon", &d) ? (float)d : 1e-5f;
  m->rope_base = meta_float(m, "rope.freq_base", &d) ? (float)d : 10000.0f;
  m->rope_scale = 1.0f;
  /* Linear position scaling (rope.scaling.type = linear, or the older
   * rope.scale_linear); llama3-style scaling comes as rope_freqs. */
  char key[128];
  size_t tl = 0;
  snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
  const char *st = gguf_get_str(m->gguf, key, &tl);
  if (st && !(tl == 4 && !memcmp(st, "none", 4)) &&
      !(tl == 6 && !memcmp(st, "linear", 6)))
    return fail(L->err, L->errlen, ENG_ERR_UNSUPPORTED,
                "rope scaling type '%.*s' is not supported (none, linear)",
                (int)(tl > 32 ? 32 : tl), st);
  if (st && tl == 6 && meta_float(m, "rope.scaling.factor", &d) && d > 0)
    m->rope_scale = (float)(1.0 / d);
  else if (meta_float(m, "rope.scale_linear", &d) && d > 0)
    m->rope_scale = (float)(1.0 / d);
  m->rope_neox = m->arch != ARCH_LLAMA;
  m->n_vocab = (int)emb->ne[1];
  m->embd_scale = 1.0f;
  if (m->arch == ARCH_GEMMA || m->arch == ARCH_GEMMA2 || m->arch == ARCH_GEMMA3)
    return read_gemma(L);
  return ENG_OK;
}

/* Whether layer il is a sliding-window one: gemma3's
 * attention.sliding_window_pattern when it is one flag per layer, else
 * il % period < period - 1 (period 0: every layer). */
static int layer_slides(const eng_model *m, int il) {
  const char *key = "gemma3.attention.sliding_window_pattern";
  int et;
  uint64_t n;
  int64_t v;
  if (m->arch == ARCH_GEMMA3 &&
      gguf_get_arr(m->gguf, key, &et, &n) == GGUF_OK &&
      n == (uint64_t)m->n_layer &&
      gguf_arr_get_int(m->gguf, key, (uint64_t)il, &v) == GGUF_OK)
    return v != 0;
  const int p = m->swa_period;
  return p == 0 || il % p < p - 1;
}

static int load_tensors(loader *L) {
  eng_model *m = L->m;
  int rc;
  if ((rc = get_mat(L, "token_embd.weight", m->n_embd, m->n_vocab, 0,
                    &m->tok_embd)))
    return rc;
  if ((rc = get_vec(L, "output_norm.weight", m->n_embd, 0, &m->output_norm)))
    return rc;
  if ((rc = get_mat(L, "output.weight", m->n_embd, m->n_vocab, 1, &m->output)))
    return rc;
  if (!m->output.data)
    m->output = m->tok_embd; /* tied embeddings */
  if ((rc = get_vec(L, "rope_freqs.weight", m->n_rot / 2, 1, &m->rope_freqs)))
    return rc;
  m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
  if (!m->layers)
    return fail(L->err, L->errlen, ENG_ERR_NOMEM, "no memory");
  for (int il = 0; il < m->n_layer; il++) {
    mlayer *l = &m->layers[il];
    if ((rc = load_layer(L, il, l)))
      return rc;
    l->swa = m->n_swa > 0 && layer_slides(m, il);
    l->rope_base = l->swa ? m->rope_base_swa : m->rope_base;
    l->rope_scale = l->swa ? m->rope_scale_swa : m->rope_scale;
  }
  return ENG_OK;
}

static int read_strings(loader *L, const char *path) {
  eng_model *m = L->m;
  size_t len = 0;
  const char *s = gguf_get_str(m->gguf, "general.name", &len);
  if (!s) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    s = base;
    len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
  }
  m->name = dup_str(s, len);
  s = gguf_get_str(m->gguf, "tokenizer.chat_template", &len);
  if (s)
    m->chat_template = dup_str(s, len);
  if (!m->name || (s && !m->chat_template))
    return fail(L->err, L->errlen, ENG_ERR_NOMEM, "out of memory");
  return ENG_OK;
}

/* ---- public (engine-internal) --------------------------------------------*/

int model_load(const char *path, eng_model **out, char *err, size_t errlen) {
  *out = NULL;
  eng_model *m = calloc(1, sizeof *m);
  if (!m)
    return fail(err, errlen, ENG_ERR_NOMEM, "out of memory");
  loader L = {m, err, errlen};
  char gerr[256] = "";
  if (gguf_open(path, &m->gguf, gerr, sizeof gerr) < 0) {
    free(m);
    FILE *f = fopen(path, "rb");
    if (!f)
      return fail(err, errlen, ENG_ERR_IO, "%s: cannot open", path);
    fclose(f);
    /* gguf's message names the file and what is wrong with it; a type it
     * knows but cannot read (e.g. IQ2_XXS) is unsupported, not corrupt */
    return fail(err, errlen,
                strstr(gerr, "unsupported") ? ENG_ERR_UNSUPPORTED
                                            : ENG_ERR_FORMAT,
                "%s", gerr);
  }
  int rc;
  if ((rc = read_arch(&L)) || (rc = read_hparams(&L)) ||
      (rc = load_tensors(&L)) || (rc = read_strings(&L, path))) {
    model_free(m);
    return rc;
  }
  if (tok_load(m->gguf, &m->vocab, gerr, sizeof gerr) != 0) {
    model_free(m);
    return fail(err, errlen, ENG_ERR_FORMAT, "tokenizer: %s", gerr);
  }
  *out = m;
  return ENG_OK;
}

void model_free(eng_model *m) {
  if (!m)
    return;
  if (m->layers)
    for (int il = 0; il < m->n_layer; il++) {
      mlayer *l = &m->layers[il];
      free(l->attn_norm);
      free(l->ffn_norm);
      free(l->bq);
      free(l->bk);
      free(l->bv);
      free(l->q_norm);
      free(l->k_norm);
      free(l->attn_post_norm);
      free(l->ffn_post_norm);
    }
  free(m->layers);
  free(m->output_norm);
  free(m->rope_freqs);
  free(m->name);
  free(m->chat_template);
  if (m->vocab)
    tok_free(m->vocab);
  gguf_close(m->gguf);
  free(m);
}

void model_embed_row(const eng_model *m, int32_t tok, float *out) {
  const char *row =
      (const char *)m->tok_embd.data + (size_t)tok * m->tok_embd.row_bytes;
  q_dequant_row(m->tok_embd.type, row, out, m->n_embd);
}
