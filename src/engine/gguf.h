/* GGUF reader: opens a GGUF v2/v3 file (memory-mapped, read-only) or an
 * in-memory image, validates every count, length and offset against the
 * image size, and gives typed access to metadata and to the tensor directory.
 * Tensor data is never copied: gguf_tensor.data points into the mapping.
 * Knows the tensor-type table (quant.h) for sizes; knows nothing about
 * models, tokenizers or anything above the file format. */
#ifndef HEARTH_ENGINE_GGUF_H
#define HEARTH_ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types, as numbered by the GGUF format. */
enum gguf_type {
  GGUF_TYPE_UINT8 = 0,
  GGUF_TYPE_INT8 = 1,
  GGUF_TYPE_UINT16 = 2,
  GGUF_TYPE_INT16 = 3,
  GGUF_TYPE_UINT32 = 4,
  GGUF_TYPE_INT32 = 5,
  GGUF_TYPE_FLOAT32 = 6,
  GGUF_TYPE_BOOL = 7,
  GGUF_TYPE_STRING = 8,
  GGUF_TYPE_ARRAY = 9,
  GGUF_TYPE_UINT64 = 10,
  GGUF_TYPE_INT64 = 11,
  GGUF_TYPE_FLOAT64 = 12,
  GGUF_TYPE_COUNT
};

/* Return codes of the getters (0 = success). */
enum {
  GGUF_OK = 0,
  GGUF_ENOKEY = -1, /* key absent */
  GGUF_ETYPE = -2,  /* key present with an incompatible type */
  GGUF_ERANGE = -3, /* value (or index) out of range for the request */
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_file gguf_file;

typedef struct {
  const char *name;          /* NUL-terminated copy owned by the gguf_file */
  int type;                  /* tensor type id (quant.h QT_*) */
  int n_dims;                /* 1..4 */
  int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (contiguous); unused = 1 */
  size_t nbytes;             /* bytes of data */
  uint64_t offset;           /* offset relative to the data section */
  const void *data;          /* into the image; bounds-checked at open */
} gguf_tensor;

/* Opens and validates a file (mmap, read-only). On failure returns a
 * negative value and writes a message naming the problem into err. */
int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen);

/* Same over a caller-owned image (not copied; must outlive the handle). */
int gguf_open_mem(const void *data, size_t size, gguf_file **out, char *err,
                  size_t errlen);

void gguf_close(gguf_file *f);

int gguf_version(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);
size_t gguf_alignment(const gguf_file *f);
size_t gguf_data_offset(const gguf_file *f); /* start of the data section */
const void *gguf_image(const gguf_file *f);  /* start of the image */

/* ---- metadata ---------------------------------------------------------- */

int gguf_n_keys(const gguf_file *f);
/* Key name of entry i (not NUL-terminated; *len set), NULL when out of
 * range. */
const char *gguf_key_at(const gguf_file *f, int i, size_t *len);
/* Index of key, or -1 when absent. */
int gguf_find_key(const gguf_file *f, const char *key);
/* Value type of entry i (enum gguf_type), -1 when out of range. */
int gguf_key_type(const gguf_file *f, int i);

/* Any integer type (and bool) into int64; UINT64 above INT64_MAX is
 * GGUF_ERANGE. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
/* FLOAT32/FLOAT64, or any integer type, into double. */
int gguf_get_float(const gguf_file *f, const char *key, double *out);
/* BOOL (any non-zero byte is true). */
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
/* STRING: pointer into the image (NOT NUL-terminated), *len set; NULL when
 * absent or not a string. */
const char *gguf_get_str(const gguf_file *f, const char *key, size_t *len);
/* Copies a STRING value NUL-terminated into buf (truncating); returns the
 * full length, or a negative code. */
int gguf_get_str_buf(const gguf_file *f, const char *key, char *buf,
                     size_t buflen);

/* ARRAY: element type and count. */
int gguf_get_arr(const gguf_file *f, const char *key, int *elem_type,
                 uint64_t *n);
/* Element i of an array of STRING (not NUL-terminated); NULL on error. */
const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t i,
                         size_t *len);
/* Packed numeric elements of an array (NULL for STRING/ARRAY elements).
 * WARNING: the pointer may be unaligned; read with memcpy or use the
 * element getters below. */
const void *gguf_arr_data(const gguf_file *f, const char *key);
/* Element i of a numeric array, converted (any integer / float width). */
int gguf_arr_get_int(const gguf_file *f, const char *key, uint64_t i,
                     int64_t *out);
int gguf_arr_get_float(const gguf_file *f, const char *key, uint64_t i,
                       double *out);

/* Index-based access for tools that walk every entry (dumpers, tests).
 * The raw value of entry i: for scalars a pointer to its little-endian
 * bytes; for STRING the characters (len set); for ARRAY the first element
 * (elem type / count via gguf_get_arr_at). */
const void *gguf_value_at(const gguf_file *f, int i, size_t *len);
int gguf_get_arr_at(const gguf_file *f, int i, int *elem_type, uint64_t *n);

/* ---- tensors ----------------------------------------------------------- */

int gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Name of a metadata value type ("uint32", "string", ...), "?" if unknown. */
const char *gguf_type_name(int type);
/* Bytes of one scalar of metadata value type `type`; 0 for string, array
 * and unknown types. */
size_t gguf_scalar_size(int type);

#endif
