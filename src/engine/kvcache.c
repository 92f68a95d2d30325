/* kvcache.c: cell bookkeeping of the f16 KV cache (see kvcache.h). The
 * forward pass writes keys/values into claimed cells and reads them back
 * through kv_seq_cells(); this file only tracks which cell belongs to which
 * sequence at which position. Knows nothing about models or attention. */
#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>

int kv_init(kv_cache *kv, int n_cells, int n_layer, int row, int n_seq) {
  memset(kv, 0, sizeof *kv);
  kv->n_cells = n_cells;
  kv->n_layer = n_layer;
  kv->row = row;
  kv->n_seq = n_seq;
  kv->cells = calloc((size_t)n_cells, sizeof *kv->cells);
  kv->k = calloc((size_t)n_layer, sizeof *kv->k);
  kv->v = calloc((size_t)n_layer, sizeof *kv->v);
  if (!kv->cells || !kv->k || !kv->v)
    return -1;
  size_t bytes = (size_t)n_cells * (size_t)row * sizeof(uint16_t);
  for (int il = 0; il < n_layer; il++) {
    /* calloc: fresh pages come from the kernel lazily, so RSS grows only as
     * cells are used. */
    kv->k[il] = calloc(1, bytes);
    kv->v[il] = calloc(1, bytes);
    if (!kv->k[il] || !kv->v[il])
      return -1;
  }
  return 0;
}

void kv_free(kv_cache *kv) {
  if (kv->k)
    for (int il = 0; il < kv->n_layer; il++)
      free(kv->k[il]);
  if (kv->v)
    for (int il = 0; il < kv->n_layer; il++)
      free(kv->v[il]);
  free(kv->k);
  free(kv->v);
  free(kv->cells);
  memset(kv, 0, sizeof *kv);
}

uint64_t kv_bytes(const kv_cache *kv) {
  return 2ull * kv->n_layer * kv->n_cells * kv->row * sizeof(uint16_t);
}

int kv_find_free(const kv_cache *kv, int n, int32_t *out) {
  if (n > kv->n_cells - kv->n_used)
    return -1;
  int k = 0;
  for (int c = 0; c < kv->n_cells && k < n; c++)
    if (!kv->cells[c].seqs)
      out[k++] = c;
  return k == n ? 0 : -1;
}

void kv_claim(kv_cache *kv, int c, int seq, int32_t pos, int32_t token) {
  kv_cell *cell = &kv->cells[c];
  if (!cell->seqs)
    kv->n_used++;
  cell->seqs |= 1ull << seq;
  cell->pos = pos;
  cell->token = token;
}

int32_t kv_seq_pos_max(const kv_cache *kv, int seq) {
  int32_t mx = -1;
  uint64_t bit = 1ull << seq;
  for (int c = 0; c < kv->n_cells; c++)
    if ((kv->cells[c].seqs & bit) && kv->cells[c].pos > mx)
      mx = kv->cells[c].pos;
  return mx;
}

/* Invariant: a cell with seqs == 0 is free and counted out of n_used. */
void kv_seq_rm(kv_cache *kv, int seq, int32_t p0, int32_t p1) {
  uint64_t mask = seq < 0 ? ~0ull : 1ull << seq;
  if (p0 < 0)
    p0 = 0;
  for (int c = 0; c < kv->n_cells; c++) {
    kv_cell *cell = &kv->cells[c];
    if (!(cell->seqs & mask) || cell->pos < p0 || (p1 >= 0 && cell->pos >= p1))
      continue;
    cell->seqs &= ~mask;
    if (!cell->seqs)
      kv->n_used--;
  }
}

int kv_seq_cp(kv_cache *kv, int src, int dst, int32_t p0, int32_t p1) {
  uint64_t sb = 1ull << src, db = 1ull << dst;
  if (p0 < 0)
    p0 = 0;
  for (int c = 0; c < kv->n_cells; c++) {
    const kv_cell *cell = &kv->cells[c];
    if ((cell->seqs & db) && cell->pos >= p0 && (p1 < 0 || cell->pos < p1))
      return -1; /* dst already holds a token in the range */
  }
  for (int c = 0; c < kv->n_cells; c++) {
    kv_cell *cell = &kv->cells[c];
    if ((cell->seqs & sb) && cell->pos >= p0 && (p1 < 0 || cell->pos < p1))
      cell->seqs |= db;
  }
  return 0;
}

void kv_clear(kv_cache *kv) {
  for (int c = 0; c < kv->n_cells; c++)
    kv->cells[c].seqs = 0;
  kv->n_used = 0;
}

int kv_seq_cells(const kv_cache *kv, int seq, int32_t *out, int cap) {
  uint64_t bit = 1ull << seq;
  int n = 0;
  for (int c = 0; c < kv->n_cells && n < cap; c++) {
    if (!(kv->cells[c].seqs & bit))
      continue;
    /* insertion by position: cells are mostly allocated in order already */
    int32_t p = kv->cells[c].pos;
    int j = n++;
    while (j > 0 && kv->cells[out[j - 1]].pos > p) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = c;
  }
  return n;
}
