/* libFuzzer target for the GGUF reader (engine/gguf.c): opens the input as
 * an in-memory GGUF image and, when it is accepted, walks everything the
 * reader promises is valid: every key and value (scalars through every
 * getter, every string-array element, every numeric-array element), and
 * every tensor (first and last data byte, and a dequantized first row
 * through the reference routines of engine/quant.c). Any out-of-bounds
 * read is caught by ASan. Pure computation, no I/O; built by
 * scripts/fuzz.sh:
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_gguf.c \
 *         src/engine/gguf.c src/engine/quant.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

static volatile uint64_t sink;

static void walk_keys(const gguf_file *f) {
  for (int i = 0; i < gguf_n_keys(f); i++) {
    size_t klen, vlen;
    const char *k = gguf_key_at(f, i, &klen);
    char key[256];
    if (!k || klen >= sizeof key)
      continue;
    memcpy(key, k, klen);
    key[klen] = 0;
    if (strlen(key) != klen)
      continue; /* embedded NUL: not addressable */
    int64_t iv;
    double dv;
    int bv, et;
    uint64_t n;
    sink += (uint64_t)gguf_get_int(f, key, &iv);
    sink += (uint64_t)gguf_get_float(f, key, &dv);
    sink += (uint64_t)gguf_get_bool(f, key, &bv);
    const char *s = gguf_get_str(f, key, &vlen);
    if (s && vlen)
      sink += (uint8_t)s[0] + (uint8_t)s[vlen - 1];
    const uint8_t *raw = gguf_value_at(f, i, &vlen);
    if (raw && vlen)
      sink += raw[vlen - 1];
    if (gguf_get_arr(f, key, &et, &n) != GGUF_OK)
      continue;
    if (et == GGUF_TYPE_STRING) {
      for (uint64_t j = 0; j < n; j++) {
        s = gguf_arr_str(f, key, j, &vlen);
        if (s && vlen)
          sink += (uint8_t)s[vlen - 1];
      }
    } else {
      for (uint64_t j = 0; j < n && j < 4096; j++) {
        sink += (uint64_t)gguf_arr_get_int(f, key, j, &iv);
        sink += (uint64_t)gguf_arr_get_float(f, key, j, &dv);
      }
    }
  }
}

static void walk_tensors(const gguf_file *f) {
  for (int i = 0; i < gguf_n_tensors(f); i++) {
    const gguf_tensor *t = gguf_tensor_at(f, i);
    if (gguf_find_tensor(f, t->name) == NULL)
      __builtin_trap();
    if (!t->nbytes)
      continue;
    const uint8_t *d = t->data;
    sink += d[0] + d[t->nbytes - 1];
    /* first row, when small enough to be cheap */
    const int64_t n = t->ne[0];
    if (n <= 0 || n > 4096)
      continue;
    const size_t rs = qtype_row_size(t->type, n);
    if (rs == 0 || rs > t->nbytes)
      continue;
    float *y = malloc((size_t)n * sizeof *y);
    if (!y)
      continue;
    q_dequant_row(t->type, t->data, y, n);
    sink += (uint64_t)(y[0] != y[0]);
    free(y);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gguf_file *f = NULL;
  char err[256];
  if (gguf_open_mem(data, size, &f, err, sizeof err) != 0) {
    if (f || !err[0])
      __builtin_trap(); /* failure must say why */
    return 0;
  }
  walk_keys(f);
  walk_tensors(f);
  gguf_close(f);
  return 0;
}
