/* GGUF writer: metadata is encoded into a growing byte buffer as it is
 * set; tensor infos are kept in a list with their offsets computed at
 * declaration; the file is then streamed. Knows nothing about models. */
#include "engine/gguf_write.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

typedef struct {
  char *name;
  int type, n_dims;
  int64_t ne[GGUF_MAX_DIMS];
  size_t nbytes;
  uint64_t offset;
} w_tensor;

typedef struct {
  uint8_t *p;
  size_t len, cap;
  int oom;
} buf;

struct gguf_writer {
  int version;
  uint32_t alignment;
  buf kv; /* encoded key/value pairs */
  uint64_t n_kv;
  char **keys;
  w_tensor *t;
  int n_t, cap_t;
  uint64_t data_size; /* offsets of the next tensor */
  /* streaming state */
  FILE *fp;
  int cur;         /* tensor being written */
  size_t cur_done; /* bytes of it written */
};

/* ==== byte buffer ======================================================= */

static void put(buf *b, const void *d, size_t n) {
  if (b->oom || n == 0)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void put_le(buf *b, uint64_t v, int n) {
  uint8_t t[8];
  for (int i = 0; i < n; i++)
    t[i] = (uint8_t)(v >> (8 * i));
  put(b, t, (size_t)n);
}

static void put_str(buf *b, const char *s, size_t len) {
  put_le(b, len, 8);
  put(b, s, len);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ==== construction ====================================================== */

gguf_writer *gguf_writer_new(void) {
  gguf_writer *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->version = 3;
  w->alignment = GGUF_DEFAULT_ALIGNMENT;
  return w;
}

void gguf_writer_free(gguf_writer *w) {
  if (!w)
    return;
  for (uint64_t i = 0; i < w->n_kv; i++)
    free(w->keys[i]);
  for (int i = 0; i < w->n_t; i++)
    free(w->t[i].name);
  free(w->keys);
  free(w->t);
  free(w->kv.p);
  free(w);
}

int gguf_writer_set_version(gguf_writer *w, int version) {
  if (version != 2 && version != 3)
    return -1;
  w->version = version;
  return 0;
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
  if (!alignment || (alignment & (alignment - 1)) || w->n_t)
    return -1;
  w->alignment = alignment;
  if (alignment != GGUF_DEFAULT_ALIGNMENT)
    return gguf_w_u32(w, "general.alignment", alignment);
  return 0;
}

/* Records a new key and writes its name and type tag; -1 if duplicate. */
static int begin_kv(gguf_writer *w, const char *key, int type) {
  for (uint64_t i = 0; i < w->n_kv; i++)
    if (strcmp(w->keys[i], key) == 0)
      return -1;
  char **k = realloc(w->keys, (w->n_kv + 1) * sizeof *k);
  if (!k)
    return -1;
  w->keys = k;
  if (!(k[w->n_kv] = strdup(key)))
    return -1;
  w->n_kv++;
  put_str(&w->kv, key, strlen(key));
  put_le(&w->kv, (uint32_t)type, 4);
  return w->kv.oom ? -1 : 0;
}

static int scalar(gguf_writer *w, const char *key, int type, uint64_t bits,
                  int n) {
  if (begin_kv(w, key, type))
    return -1;
  put_le(&w->kv, bits, n);
  return w->kv.oom ? -1 : 0;
}

int gguf_w_u8(gguf_writer *w, const char *key, uint8_t v) {
  return scalar(w, key, GGUF_TYPE_UINT8, v, 1);
}
int gguf_w_i8(gguf_writer *w, const char *key, int8_t v) {
  return scalar(w, key, GGUF_TYPE_INT8, (uint8_t)v, 1);
}
int gguf_w_u16(gguf_writer *w, const char *key, uint16_t v) {
  return scalar(w, key, GGUF_TYPE_UINT16, v, 2);
}
int gguf_w_i16(gguf_writer *w, const char *key, int16_t v) {
  return scalar(w, key, GGUF_TYPE_INT16, (uint16_t)v, 2);
}
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) {
  return scalar(w, key, GGUF_TYPE_UINT32, v, 4);
}
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v) {
  return scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v, 4);
}
int gguf_w_u64(gguf_writer *w, const char *key, uint64_t v) {
  return scalar(w, key, GGUF_TYPE_UINT64, v, 8);
}
int gguf_w_i64(gguf_writer *w, const char *key, int64_t v) {
  return scalar(w, key, GGUF_TYPE_INT64, (uint64_t)v, 8);
}
int gguf_w_f32(gguf_writer *w, const char *key, float v) {
  uint32_t b;
  memcpy(&b, &v, 4);
  return scalar(w, key, GGUF_TYPE_FLOAT32, b, 4);
}
int gguf_w_f64(gguf_writer *w, const char *key, double v) {
  uint64_t b;
  memcpy(&b, &v, 8);
  return scalar(w, key, GGUF_TYPE_FLOAT64, b, 8);
}
int gguf_w_bool(gguf_writer *w, const char *key, int v) {
  return scalar(w, key, GGUF_TYPE_BOOL, v != 0, 1);
}

int gguf_w_strn(gguf_writer *w, const char *key, const char *s, size_t len) {
  if (begin_kv(w, key, GGUF_TYPE_STRING))
    return -1;
  put_str(&w->kv, s, len);
  return w->kv.oom ? -1 : 0;
}

int gguf_w_str(gguf_writer *w, const char *key, const char *s) {
  return gguf_w_strn(w, key, s, strlen(s));
}

int gguf_w_arr(gguf_writer *w, const char *key, int elem_type, const void *data,
               uint64_t n) {
  const size_t es = gguf_scalar_size(elem_type);
  if (!es || begin_kv(w, key, GGUF_TYPE_ARRAY))
    return -1;
  put_le(&w->kv, (uint32_t)elem_type, 4);
  put_le(&w->kv, n, 8);
  put(&w->kv, data, (size_t)n * es); /* x86/ARM LE: host order is file order */
  return w->kv.oom ? -1 : 0;
}

int gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *s,
                   const size_t *lens, uint64_t n) {
  if (begin_kv(w, key, GGUF_TYPE_ARRAY))
    return -1;
  put_le(&w->kv, GGUF_TYPE_STRING, 4);
  put_le(&w->kv, n, 8);
  for (uint64_t i = 0; i < n; i++)
    put_str(&w->kv, s[i], lens ? lens[i] : strlen(s[i]));
  return w->kv.oom ? -1 : 0;
}

int gguf_w_raw(gguf_writer *w, const char *key, int type, const void *bytes,
               size_t nbytes) {
  if (type < 0 || type >= GGUF_TYPE_COUNT || begin_kv(w, key, type))
    return -1;
  put(&w->kv, bytes, nbytes);
  return w->kv.oom ? -1 : 0;
}

int gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims,
                  const int64_t *ne) {
  if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || w->fp)
    return -1;
  const qtype_info *qi = qtype(type);
  if (!qi || !qi->supported)
    return -1;
  int64_t n = 1;
  for (int d = 0; d < n_dims; d++) {
    if (ne[d] < 0 || (ne[d] && n > INT64_MAX / ne[d]))
      return -1;
    n *= ne[d];
  }
  if (ne[0] % qi->blck)
    return -1;
  for (int i = 0; i < w->n_t; i++)
    if (strcmp(w->t[i].name, name) == 0)
      return -1;
  if (w->n_t == w->cap_t) {
    int cap = w->cap_t ? 2 * w->cap_t : 64;
    w_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
    if (!t)
      return -1;
    w->t = t;
    w->cap_t = cap;
  }
  w_tensor *t = &w->t[w->n_t];
  memset(t, 0, sizeof *t);
  if (!(t->name = strdup(name)))
    return -1;
  t->type = type;
  t->n_dims = n_dims;
  for (int d = 0; d < GGUF_MAX_DIMS; d++)
    t->ne[d] = d < n_dims ? ne[d] : 1;
  t->nbytes = (size_t)(n / qi->blck) * qi->type_size;
  t->offset = w->data_size;
  const uint64_t a = w->alignment;
  w->data_size += (t->nbytes + a - 1) / a * a;
  return w->n_t++;
}

size_t gguf_w_tensor_nbytes(const gguf_writer *w, int i) {
  return i >= 0 && i < w->n_t ? w->t[i].nbytes : 0;
}

/* ==== streaming ========================================================= */

static int write_pad(FILE *fp, size_t n) {
  static const uint8_t zeros[64];
  while (n) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    if (fwrite(zeros, 1, k, fp) != k)
      return -1;
    n -= k;
  }
  return 0;
}

int gguf_w_begin(gguf_writer *w, FILE *fp, char *err, size_t errlen) {
  if (w->kv.oom)
    return fail(err, errlen, "out of memory building metadata");
  buf h = {0};
  put(&h, "GGUF", 4);
  put_le(&h, (uint32_t)w->version, 4);
  put_le(&h, (uint64_t)w->n_t, 8);
  put_le(&h, w->n_kv, 8);
  put(&h, w->kv.p, w->kv.len);
  for (int i = 0; i < w->n_t; i++) {
    const w_tensor *t = &w->t[i];
    put_str(&h, t->name, strlen(t->name));
    put_le(&h, (uint32_t)t->n_dims, 4);
    for (int d = 0; d < t->n_dims; d++)
      put_le(&h, (uint64_t)t->ne[d], 8);
    put_le(&h, (uint32_t)t->type, 4);
    put_le(&h, t->offset, 8);
  }
  if (h.oom)
    return fail(err, errlen, "out of memory building header");
  const size_t pad = (w->alignment - h.len % w->alignment) % w->alignment;
  int rc = fwrite(h.p, 1, h.len, fp) != h.len || write_pad(fp, pad);
  free(h.p);
  if (rc)
    return fail(err, errlen, "write failed");
  w->fp = fp;
  w->cur = 0;
  w->cur_done = 0;
  return 0;
}

int gguf_w_data(gguf_writer *w, const void *data, size_t nbytes, char *err,
                size_t errlen) {
  if (!w->fp)
    return fail(err, errlen, "gguf_w_data before gguf_w_begin");
  while (w->cur < w->n_t && w->t[w->cur].nbytes == 0)
    w->cur++;
  if (w->cur >= w->n_t)
    return fail(err, errlen, "data past the last tensor");
  w_tensor *t = &w->t[w->cur];
  if (nbytes > t->nbytes - w->cur_done)
    return fail(err, errlen, "tensor '%s': %zu bytes given, %zu remain",
                t->name, nbytes, t->nbytes - w->cur_done);
  if (nbytes && fwrite(data, 1, nbytes, w->fp) != nbytes)
    return fail(err, errlen, "write failed");
  w->cur_done += nbytes;
  if (w->cur_done == t->nbytes) {
    const size_t a = w->alignment;
    if (write_pad(w->fp, (a - t->nbytes % a) % a))
      return fail(err, errlen, "write failed");
    w->cur++;
    w->cur_done = 0;
  }
  return 0;
}

int gguf_w_finish(gguf_writer *w, char *err, size_t errlen) {
  if (!w->fp)
    return fail(err, errlen, "gguf_w_finish before gguf_w_begin");
  /* zero-sized tensors are complete without any data call */
  while (w->cur < w->n_t && w->t[w->cur].nbytes == 0)
    w->cur++;
  if (w->cur != w->n_t)
    return fail(err, errlen, "tensor '%s' not written", w->t[w->cur].name);
  int rc = fflush(w->fp);
  w->fp = NULL;
  return rc ? fail(err, errlen, "write failed") : 0;
}

int gguf_w_write_file(gguf_writer *w, const char *path,
                      const void *const *datas, char *err, size_t errlen) {
  FILE *fp = fopen(path, "wb");
  if (!fp)
    return fail(err, errlen, "%s: cannot create", path);
  int rc = gguf_w_begin(w, fp, err, errlen);
  for (int i = 0; !rc && i < w->n_t; i++) {
    if (w->t[i].nbytes == 0)
      continue;
    rc = gguf_w_data(w, datas[i], w->t[i].nbytes, err, errlen);
  }
  if (!rc)
    rc = gguf_w_finish(w, err, errlen);
  if (fclose(fp) && !rc)
    rc = fail(err, errlen, "%s: write failed", path);
  return rc;
}
