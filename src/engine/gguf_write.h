/* GGUF writer: collects metadata and a tensor directory in memory, then
 * streams the file: header first, then each tensor's data in declaration
 * order (so multi-GB files are written without holding the weights).
 * Writes GGUF v3 (v2 on request), little-endian. Knows the tensor-type
 * table (quant.h) for sizes; knows nothing about models. */
#ifndef HEARTH_ENGINE_GGUF_WRITE_H
#define HEARTH_ENGINE_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* 2 or 3 (default 3). */
int gguf_writer_set_version(gguf_writer *w, int version);
/* Power of two; also written as general.alignment when not 32. */
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);

/* Metadata setters; a key set twice is an error (-1). Keys are copied. */
int gguf_w_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_w_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_w_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_w_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_w_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_w_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_w_f32(gguf_writer *w, const char *key, float v);
int gguf_w_f64(gguf_writer *w, const char *key, double v);
int gguf_w_bool(gguf_writer *w, const char *key, int v);
int gguf_w_str(gguf_writer *w, const char *key, const char *s);
int gguf_w_strn(gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of n packed scalars of elem_type (host order = little-endian). */
int gguf_w_arr(gguf_writer *w, const char *key, int elem_type, const void *data,
               uint64_t n);
/* Array of n strings; lens may be NULL (NUL-terminated strings). */
int gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *s,
                   const size_t *lens, uint64_t n);
/* Any value given as its already-encoded bytes (type tag excluded): for
 * nested arrays and tests. */
int gguf_w_raw(gguf_writer *w, const char *key, int type, const void *bytes,
               size_t nbytes);

/* Declares a tensor (its data comes later, in the same order). ne[0] is the
 * row length; it must be a multiple of the type's block size. Returns the
 * tensor index, or -1. */
int gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims,
                  const int64_t *ne);
/* Bytes of tensor i's data. */
size_t gguf_w_tensor_nbytes(const gguf_writer *w, int i);

/* Streaming: writes header, metadata and tensor directory to fp (which the
 * caller opened; "wb"). Then each tensor's data, in order, with
 * gguf_w_data (may be called several times per tensor with consecutive
 * chunks; padding is added when a tensor is complete). gguf_w_finish
 * checks every tensor was written in full. All return 0 or -1 with err. */
int gguf_w_begin(gguf_writer *w, FILE *fp, char *err, size_t errlen);
int gguf_w_data(gguf_writer *w, const void *data, size_t nbytes, char *err,
                size_t errlen);
int gguf_w_finish(gguf_writer *w, char *err, size_t errlen);

/* Convenience: whole file at once, tensor data from datas[i]. */
int gguf_w_write_file(gguf_writer *w, const char *path,
                      const void *const *datas, char *err, size_t errlen);

#endif
