/* GGUF reader. Parses the header, metadata and tensor directory of a GGUF
 * v2/v3 image with a bounds-checked cursor: every count, length and offset
 * is checked against the bytes that remain, with overflow-safe arithmetic,
 * before anything is allocated or read. Values are not copied: entries
 * point into the image. Knows the tensor-type table (quant.h) for sizes and
 * nothing about what the tensors or keys mean. */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/quant.h"

#define GGUF_MAX_NESTING 8
#define GGUF_MAX_NAME 1024 /* tensor-name bytes we accept */

typedef struct {
  const char *key;
  size_t key_len;
  int type;           /* enum gguf_type */
  const uint8_t *val; /* scalar bytes, string chars, or first array element */
  size_t len;         /* string length, or bytes of a scalar */
  int arr_type;       /* element type for arrays */
  uint64_t arr_n;     /* element count for arrays */
  uint64_t *str_off;  /* arrays of strings: offset of element i's length */
} gguf_kv;

struct gguf_file {
  const uint8_t *img;
  size_t size;
  int mapped; /* img is our mmap, unmapped at close */
  int version;
  size_t alignment;
  size_t data_off;
  int n_kv;
  gguf_kv *kv;
  int n_tensors;
  gguf_tensor *tensors;
};

/* ==== errors ============================================================ */

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ==== bounds-checked cursor ============================================ */

typedef struct {
  const uint8_t *base;
  size_t pos, size;
} cursor;

static int take(cursor *c, size_t n, const uint8_t **out) {
  if (n > c->size - c->pos)
    return -1;
  *out = c->base + c->pos;
  c->pos += n;
  return 0;
}

static int rd_u32(cursor *c, uint32_t *v) {
  const uint8_t *p;
  if (take(c, 4, &p))
    return -1;
  *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
       (uint32_t)p[3] << 24;
  return 0;
}

static int rd_u64(cursor *c, uint64_t *v) {
  uint32_t lo, hi;
  if (rd_u32(c, &lo) || rd_u32(c, &hi))
    return -1;
  *v = (uint64_t)hi << 32 | lo;
  return 0;
}

/* A GGUF string: u64 length, then bytes. */
static int rd_str(cursor *c, const char **s, size_t *len) {
  uint64_t n;
  const uint8_t *p;
  if (rd_u64(c, &n) || n > c->size - c->pos || take(c, (size_t)n, &p))
    return -1;
  *s = (const char *)p;
  *len = (size_t)n;
  return 0;
}

size_t gguf_scalar_size(int type) {
  switch (type) {
  case GGUF_TYPE_UINT8:
  case GGUF_TYPE_INT8:
  case GGUF_TYPE_BOOL:
    return 1;
  case GGUF_TYPE_UINT16:
  case GGUF_TYPE_INT16:
    return 2;
  case GGUF_TYPE_UINT32:
  case GGUF_TYPE_INT32:
  case GGUF_TYPE_FLOAT32:
    return 4;
  case GGUF_TYPE_UINT64:
  case GGUF_TYPE_INT64:
  case GGUF_TYPE_FLOAT64:
    return 8;
  default:
    return 0;
  }
}

const char *gguf_type_name(int type) {
  static const char *names[GGUF_TYPE_COUNT] = {
      "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return type >= 0 && type < GGUF_TYPE_COUNT ? names[type] : "?";
}

/* ==== metadata parsing ================================================== */

/* Skips (validating) one value of `type`; arrays recurse up to a depth. */
static int skip_value(cursor *c, int type, int depth);

/* Validates an array body (elem type, count, elements). For arrays of
 * strings, fills str_off (allocated) when it is not NULL. */
static int skip_array(cursor *c, int depth, int *et_out, uint64_t *n_out,
                      uint64_t **str_off) {
  uint32_t et;
  uint64_t n;
  if (depth > GGUF_MAX_NESTING || rd_u32(c, &et) || rd_u64(c, &n))
    return -1;
  if (et >= GGUF_TYPE_COUNT)
    return -2;
  *et_out = (int)et;
  *n_out = n;
  const size_t rem = c->size - c->pos;
  size_t es = gguf_scalar_size((int)et);
  if (es) { /* packed scalars */
    if (n > rem / es)
      return -1;
    c->pos += (size_t)n * es;
    return 0;
  }
  /* strings and arrays take at least 8 (resp. 12) bytes each */
  if (n > rem / 8)
    return -1;
  if (str_off && et == GGUF_TYPE_STRING) {
    *str_off = malloc((size_t)(n ? n : 1) * sizeof **str_off);
    if (!*str_off)
      return -3;
  }
  for (uint64_t i = 0; i < n; i++) {
    if (str_off && *str_off)
      (*str_off)[i] = c->pos;
    int rc = skip_value(c, (int)et, depth + 1);
    if (rc)
      return rc;
  }
  return 0;
}

static int skip_value(cursor *c, int type, int depth) {
  size_t es = gguf_scalar_size(type);
  const uint8_t *p;
  if (es)
    return take(c, es, &p);
  if (type == GGUF_TYPE_STRING) {
    const char *s;
    size_t len;
    return rd_str(c, &s, &len);
  }
  if (type == GGUF_TYPE_ARRAY) {
    int et;
    uint64_t n;
    return skip_array(c, depth, &et, &n, NULL);
  }
  return -2;
}

static int keys_equal(const gguf_kv *kv, const char *key, size_t len) {
  return kv->key_len == len && memcmp(kv->key, key, len) == 0;
}

/* Parses key/value i into f->kv[i]. */
static int parse_kv(gguf_file *f, cursor *c, int i, char *err, size_t errlen) {
  gguf_kv *kv = &f->kv[i];
  uint32_t type;
  if (rd_str(c, &kv->key, &kv->key_len))
    return fail(err, errlen, "metadata entry %d: key extends past end of file",
                i);
  const int kl = kv->key_len > 200 ? 200 : (int)kv->key_len;
  for (int j = 0; j < i; j++)
    if (keys_equal(&f->kv[j], kv->key, kv->key_len))
      return fail(err, errlen, "duplicate metadata key '%.*s'", kl, kv->key);
  if (rd_u32(c, &type))
    return fail(err, errlen, "metadata '%.*s': type past end of file", kl,
                kv->key);
  if (type >= GGUF_TYPE_COUNT)
    return fail(err, errlen, "metadata '%.*s': unknown value type %u", kl,
                kv->key, type);
  kv->type = (int)type;
  if (type == GGUF_TYPE_STRING) {
    const char *s;
    if (rd_str(c, &s, &kv->len))
      return fail(err, errlen,
                  "metadata '%.*s': string extends past end of file", kl,
                  kv->key);
    kv->val = (const uint8_t *)s;
    return 0;
  }
  if (type == GGUF_TYPE_ARRAY) {
    size_t start = c->pos;
    int rc = skip_array(c, 0, &kv->arr_type, &kv->arr_n, &kv->str_off);
    if (rc == -3)
      return fail(err, errlen, "out of memory");
    if (rc == -2)
      return fail(err, errlen,
                  "metadata '%.*s': unknown array element type or nesting", kl,
                  kv->key);
    if (rc)
      return fail(err, errlen,
                  "metadata '%.*s': array (%llu elements) extends past end of "
                  "file or nests too deep",
                  kl, kv->key, (unsigned long long)kv->arr_n);
    kv->val = c->base + start + 12;
    kv->len = c->pos - start - 12;
    return 0;
  }
  kv->len = gguf_scalar_size(kv->type);
  if (take(c, kv->len, &kv->val))
    return fail(err, errlen, "metadata '%.*s': value past end of file", kl,
                kv->key);
  return 0;
}

/* ==== tensor directory ================================================== */

/* Product of dims with overflow check (each >= 0); -1 on overflow. */
static int64_t n_elements(const int64_t *ne) {
  int64_t n = 1;
  for (int d = 0; d < GGUF_MAX_DIMS; d++) {
    if (ne[d] && n > INT64_MAX / ne[d])
      return -1;
    n *= ne[d];
  }
  return n;
}

static int parse_tensor(gguf_file *f, cursor *c, int i, char *err,
                        size_t errlen) {
  gguf_tensor *t = &f->tensors[i];
  const char *nm;
  size_t nl;
  uint32_t nd, type;
  if (rd_str(c, &nm, &nl))
    return fail(err, errlen, "tensor %d: name extends past end of file", i);
  if (nl == 0 || nl > GGUF_MAX_NAME || memchr(nm, 0, nl))
    return fail(err, errlen, "tensor %d: invalid name (length %zu)", i, nl);
  char *name = malloc(nl + 1);
  if (!name)
    return fail(err, errlen, "out of memory");
  memcpy(name, nm, nl);
  name[nl] = 0;
  t->name = name;
  for (int j = 0; j < i; j++)
    if (strcmp(f->tensors[j].name, name) == 0)
      return fail(err, errlen, "duplicate tensor name '%s'", name);
  if (rd_u32(c, &nd))
    return fail(err, errlen, "tensor '%s': header past end of file", name);
  if (nd < 1 || nd > GGUF_MAX_DIMS)
    return fail(err, errlen, "tensor '%s': %u dimensions (1..%d allowed)", name,
                nd, GGUF_MAX_DIMS);
  t->n_dims = (int)nd;
  for (int d = 0; d < GGUF_MAX_DIMS; d++)
    t->ne[d] = 1;
  for (uint32_t d = 0; d < nd; d++) {
    uint64_t v;
    if (rd_u64(c, &v))
      return fail(err, errlen, "tensor '%s': header past end of file", name);
    if (v > (uint64_t)INT64_MAX)
      return fail(err, errlen, "tensor '%s': dimension %u too large", name, d);
    t->ne[d] = (int64_t)v;
  }
  if (rd_u32(c, &type) || rd_u64(c, &t->offset))
    return fail(err, errlen, "tensor '%s': header past end of file", name);
  const qtype_info *qi = qtype((int)type);
  t->type = (int)type;
  if (!qi)
    return fail(err, errlen, "unknown tensor type %u in '%s'", type, name);
  if (!qi->supported)
    return fail(err, errlen, "unsupported tensor type %u (%s) in '%s'", type,
                qi->name, name);
  if (t->ne[0] % qi->blck)
    return fail(err, errlen,
                "tensor '%s': row length %lld is not a multiple of the %s "
                "block size %d",
                name, (long long)t->ne[0], qi->name, qi->blck);
  int64_t n = n_elements(t->ne);
  if (n < 0 || (uint64_t)(n / qi->blck) > SIZE_MAX / qi->type_size)
    return fail(err, errlen, "tensor '%s': element count overflows", name);
  t->nbytes = (size_t)(n / qi->blck) * qi->type_size;
  if (t->offset % f->alignment)
    return fail(err, errlen,
                "tensor '%s': offset %llu is not a multiple of the alignment "
                "%zu",
                name, (unsigned long long)t->offset, f->alignment);
  return 0;
}

/* Alignment the block struct of a type needs (its widest member). */
static size_t type_align(int type) {
  return type == QT_F32 || type == QT_Q8_K ? 4 : 2;
}

/* Checks every tensor's data lies inside the image, suitably aligned for
 * its type (an image need not be: general.alignment may be 1, and
 * gguf_open_mem takes any buffer); sets data pointers. */
static int place_tensors(gguf_file *f, char *err, size_t errlen) {
  const size_t avail = f->data_off <= f->size ? f->size - f->data_off : 0;
  for (int i = 0; i < f->n_tensors; i++) {
    gguf_tensor *t = &f->tensors[i];
    if (t->offset > avail || t->nbytes > avail - t->offset)
      return fail(err, errlen,
                  "tensor '%s': data extends past end of file (offset %llu + "
                  "size %zu > %zu)",
                  t->name, (unsigned long long)(f->data_off + t->offset),
                  t->nbytes, f->size);
    t->data = f->img + f->data_off + t->offset;
    const size_t need = type_align(t->type);
    if ((uintptr_t)t->data % need)
      return fail(err, errlen,
                  "tensor '%s': data at file offset %llu is not aligned for %s "
                  "(needs %zu)",
                  t->name, (unsigned long long)(f->data_off + t->offset),
                  qtype_name(t->type), need);
  }
  return 0;
}

/* ==== header ============================================================ */

static int parse_header(gguf_file *f, cursor *c, uint64_t *n_tensors,
                        uint64_t *n_kv, char *err, size_t errlen) {
  const uint8_t *magic;
  uint32_t ver;
  if (take(c, 4, &magic) || memcmp(magic, "GGUF", 4) != 0)
    return fail(err, errlen, "not a GGUF file (bad magic)");
  if (rd_u32(c, &ver))
    return fail(err, errlen, "truncated GGUF header");
  if (ver == 1)
    return fail(err, errlen, "unsupported GGUF version 1");
  if (ver > 0xffff && (ver & 0xffff) == 0)
    return fail(err, errlen,
                "big-endian GGUF (version bytes %08x) is not supported", ver);
  if (ver != 2 && ver != 3)
    return fail(err, errlen, "unsupported GGUF version %u", ver);
  f->version = (int)ver;
  if (rd_u64(c, n_tensors) || rd_u64(c, n_kv))
    return fail(err, errlen, "truncated GGUF header");
  /* each kv needs >= 13 bytes, each tensor info >= 29: bound the counts by
   * what is left before allocating */
  const size_t rem = c->size - c->pos;
  if (*n_kv > rem / 13 || *n_kv > INT32_MAX)
    return fail(err, errlen, "metadata count %llu exceeds file size",
                (unsigned long long)*n_kv);
  if (*n_tensors > rem / 29 || *n_tensors > INT32_MAX)
    return fail(err, errlen, "tensor count %llu exceeds file size",
                (unsigned long long)*n_tensors);
  return 0;
}

static int read_alignment(gguf_file *f, char *err, size_t errlen) {
  f->alignment = GGUF_DEFAULT_ALIGNMENT;
  int k = gguf_find_key(f, "general.alignment");
  if (k < 0)
    return 0;
  if (f->kv[k].type != GGUF_TYPE_UINT32)
    return fail(err, errlen, "general.alignment has type %s, expected uint32",
                gguf_type_name(f->kv[k].type));
  uint32_t a;
  memcpy(&a, f->kv[k].val, 4);
  if (a == 0 || (a & (a - 1)))
    return fail(err, errlen, "general.alignment %u is not a power of two", a);
  f->alignment = a;
  return 0;
}

static int parse(gguf_file *f, char *err, size_t errlen) {
  cursor c = {f->img, 0, f->size};
  uint64_t nt, nkv;
  if (parse_header(f, &c, &nt, &nkv, err, errlen))
    return -1;
  f->kv = calloc(nkv ? nkv : 1, sizeof *f->kv);
  f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
  if (!f->kv || !f->tensors)
    return fail(err, errlen, "out of memory");
  for (uint64_t i = 0; i < nkv; i++) {
    f->n_kv = (int)i + 1;
    if (parse_kv(f, &c, (int)i, err, errlen))
      return -1;
  }
  if (read_alignment(f, err, errlen))
    return -1;
  for (uint64_t i = 0; i < nt; i++) {
    f->n_tensors = (int)i + 1;
    if (parse_tensor(f, &c, (int)i, err, errlen))
      return -1;
  }
  /* data section starts at the next multiple of the alignment */
  size_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
  f->data_off = c.pos + pad;
  if (f->data_off < c.pos)
    return fail(err, errlen, "data offset overflows");
  if (nt && f->data_off > f->size)
    return fail(err, errlen, "data section starts past end of file");
  return place_tensors(f, err, errlen);
}

/* ==== open / close ====================================================== */

static int open_image(const uint8_t *img, size_t size, int mapped,
                      gguf_file **out, char *err, size_t errlen) {
  *out = NULL;
  gguf_file *f = calloc(1, sizeof *f);
  if (!f) {
    if (mapped)
      munmap((void *)img, size);
    return fail(err, errlen, "out of memory");
  }
  f->img = img;
  f->size = size;
  f->mapped = mapped;
  f->alignment = GGUF_DEFAULT_ALIGNMENT;
  if (parse(f, err, errlen)) {
    gguf_close(f);
    return -1;
  }
  *out = f;
  return 0;
}

int gguf_open_mem(const void *data, size_t size, gguf_file **out, char *err,
                  size_t errlen) {
  if (!out)
    return fail(err, errlen, "no output handle");
  if (!data && size)
    return fail(err, errlen, "no data");
  return open_image(data, size, 0, out, err, errlen);
}

int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen) {
  if (!out)
    return fail(err, errlen, "no output handle");
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(err, errlen, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errlen, "%s: not a regular file", path);
  }
  size_t size = (size_t)st.st_size;
  if (size < 24) {
    close(fd);
    return fail(err, errlen, "%s: too small to be a GGUF file (%zu bytes)",
                path, size);
  }
  void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED)
    return fail(err, errlen, "%s: mmap: %s", path, strerror(errno));
  char inner[384];
  if (open_image(m, size, 1, out, inner, sizeof inner)) {
    return fail(err, errlen, "%s: %s", path, inner);
  }
  return 0;
}

void gguf_close(gguf_file *f) {
  if (!f)
    return;
  for (int i = 0; i < f->n_kv; i++)
    free(f->kv[i].str_off);
  for (int i = 0; i < f->n_tensors; i++)
    free((void *)f->tensors[i].name);
  free(f->kv);
  free(f->tensors);
  if (f->mapped)
    munmap((void *)f->img, f->size);
  free(f);
}

int gguf_version(const gguf_file *f) {
  return f->version;
}
size_t gguf_file_size(const gguf_file *f) {
  return f->size;
}
size_t gguf_alignment(const gguf_file *f) {
  return f->alignment;
}
size_t gguf_data_offset(const gguf_file *f) {
  return f->data_off;
}
const void *gguf_image(const gguf_file *f) {
  return f->img;
}

/* ==== metadata access =================================================== */

int gguf_n_keys(const gguf_file *f) {
  return f->n_kv;
}

const char *gguf_key_at(const gguf_file *f, int i, size_t *len) {
  if (i < 0 || i >= f->n_kv)
    return NULL;
  if (len)
    *len = f->kv[i].key_len;
  return f->kv[i].key;
}

int gguf_find_key(const gguf_file *f, const char *key) {
  size_t len = strlen(key);
  for (int i = 0; i < f->n_kv; i++)
    if (keys_equal(&f->kv[i], key, len))
      return i;
  return -1;
}

int gguf_key_type(const gguf_file *f, int i) {
  return i >= 0 && i < f->n_kv ? f->kv[i].type : -1;
}

static const gguf_kv *kv_of(const gguf_file *f, const char *key) {
  int i = gguf_find_key(f, key);
  return i < 0 ? NULL : &f->kv[i];
}

/* Reads a little-endian scalar of `type` at p as int64 (integers/bool) or
 * double (floats); *is_float tells which. Returns GGUF_ETYPE for others. */
static int scalar_at(int type, const uint8_t *p, int64_t *iv, double *fv,
                     int *is_float) {
  uint64_t u = 0;
  size_t n = gguf_scalar_size(type);
  if (!n)
    return GGUF_ETYPE;
  for (size_t k = 0; k < n; k++)
    u |= (uint64_t)p[k] << (8 * k);
  *is_float = 0;
  switch (type) {
  case GGUF_TYPE_UINT8:
    *iv = (uint8_t)u;
    break;
  case GGUF_TYPE_INT8:
    *iv = (int8_t)(uint8_t)u;
    break;
  case GGUF_TYPE_BOOL:
    *iv = u != 0;
    break;
  case GGUF_TYPE_UINT16:
    *iv = (uint16_t)u;
    break;
  case GGUF_TYPE_INT16:
    *iv = (int16_t)(uint16_t)u;
    break;
  case GGUF_TYPE_UINT32:
    *iv = (uint32_t)u;
    break;
  case GGUF_TYPE_INT32:
    *iv = (int32_t)(uint32_t)u;
    break;
  case GGUF_TYPE_UINT64:
    if (u > (uint64_t)INT64_MAX)
      return GGUF_ERANGE;
    *iv = (int64_t)u;
    break;
  case GGUF_TYPE_INT64:
    *iv = (int64_t)u;
    break;
  case GGUF_TYPE_FLOAT32: {
    uint32_t b = (uint32_t)u;
    float fl;
    memcpy(&fl, &b, 4);
    *fv = fl;
    *is_float = 1;
    break;
  }
  case GGUF_TYPE_FLOAT64:
    memcpy(fv, &u, 8);
    *is_float = 1;
    break;
  default:
    return GGUF_ETYPE;
  }
  return GGUF_OK;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv)
    return GGUF_ENOKEY;
  int64_t iv;
  double fv;
  int isf, rc = scalar_at(kv->type, kv->val, &iv, &fv, &isf);
  if (rc)
    return rc;
  if (isf)
    return GGUF_ETYPE;
  *out = iv;
  return GGUF_OK;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv)
    return GGUF_ENOKEY;
  if (kv->type == GGUF_TYPE_BOOL)
    return GGUF_ETYPE;
  int64_t iv;
  double fv;
  int isf, rc = scalar_at(kv->type, kv->val, &iv, &fv, &isf);
  if (rc)
    return rc;
  *out = isf ? fv : (double)iv;
  return GGUF_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv)
    return GGUF_ENOKEY;
  if (kv->type != GGUF_TYPE_BOOL)
    return GGUF_ETYPE;
  *out = kv->val[0] != 0;
  return GGUF_OK;
}

const char *gguf_get_str(const gguf_file *f, const char *key, size_t *len) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv || kv->type != GGUF_TYPE_STRING)
    return NULL;
  if (len)
    *len = kv->len;
  return (const char *)kv->val;
}

int gguf_get_str_buf(const gguf_file *f, const char *key, char *buf,
                     size_t buflen) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv)
    return GGUF_ENOKEY;
  if (kv->type != GGUF_TYPE_STRING)
    return GGUF_ETYPE;
  if (buflen) {
    size_t n = kv->len < buflen - 1 ? kv->len : buflen - 1;
    memcpy(buf, kv->val, n);
    buf[n] = 0;
  }
  return kv->len > INT32_MAX ? INT32_MAX : (int)kv->len;
}

int gguf_get_arr(const gguf_file *f, const char *key, int *elem_type,
                 uint64_t *n) {
  return gguf_get_arr_at(f, gguf_find_key(f, key), elem_type, n);
}

int gguf_get_arr_at(const gguf_file *f, int i, int *elem_type, uint64_t *n) {
  if (i < 0 || i >= f->n_kv)
    return GGUF_ENOKEY;
  const gguf_kv *kv = &f->kv[i];
  if (kv->type != GGUF_TYPE_ARRAY)
    return GGUF_ETYPE;
  if (elem_type)
    *elem_type = kv->arr_type;
  if (n)
    *n = kv->arr_n;
  return GGUF_OK;
}

const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t i,
                         size_t *len) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING ||
      i >= kv->arr_n || !kv->str_off)
    return NULL;
  /* validated at open: the length and the bytes are inside the image */
  cursor c = {f->img, (size_t)kv->str_off[i], f->size};
  const char *s;
  size_t l;
  if (rd_str(&c, &s, &l))
    return NULL;
  if (len)
    *len = l;
  return s;
}

const void *gguf_arr_data(const gguf_file *f, const char *key) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv || kv->type != GGUF_TYPE_ARRAY || !gguf_scalar_size(kv->arr_type))
    return NULL;
  return kv->val;
}

static int arr_elem(const gguf_file *f, const char *key, uint64_t i,
                    int64_t *iv, double *fv, int *isf) {
  const gguf_kv *kv = kv_of(f, key);
  if (!kv)
    return GGUF_ENOKEY;
  size_t es;
  if (kv->type != GGUF_TYPE_ARRAY || !(es = gguf_scalar_size(kv->arr_type)))
    return GGUF_ETYPE;
  if (i >= kv->arr_n)
    return GGUF_ERANGE;
  return scalar_at(kv->arr_type, kv->val + i * es, iv, fv, isf);
}

int gguf_arr_get_int(const gguf_file *f, const char *key, uint64_t i,
                     int64_t *out) {
  int64_t iv;
  double fv;
  int isf, rc = arr_elem(f, key, i, &iv, &fv, &isf);
  if (rc)
    return rc;
  if (isf)
    return GGUF_ETYPE;
  *out = iv;
  return GGUF_OK;
}

int gguf_arr_get_float(const gguf_file *f, const char *key, uint64_t i,
                       double *out) {
  int64_t iv;
  double fv;
  int isf, rc = arr_elem(f, key, i, &iv, &fv, &isf);
  if (rc)
    return rc;
  *out = isf ? fv : (double)iv;
  return GGUF_OK;
}

const void *gguf_value_at(const gguf_file *f, int i, size_t *len) {
  if (i < 0 || i >= f->n_kv)
    return NULL;
  if (len)
    *len = f->kv[i].len;
  return f->kv[i].val;
}

/* ==== tensors =========================================================== */

int gguf_n_tensors(const gguf_file *f) {
  return f->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int i) {
  return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0)
      return &f->tensors[i];
  return NULL;
}
