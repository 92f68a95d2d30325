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
  /* an odd multiple of 16 elements (32 bytes): 64 consecutive rows land at
   * 64 different offsets modulo 4 KB, whatever n_cells is */
  kv->pitch = ((n_cells + 31) & ~31) + 16;
  kv->cells = calloc((size_t)n_cells, sizeof *kv->cells);
  kv->mark = calloc((size_t)n_cells, 1);
  for (int i = 0; i < KV_MAX_SEQ; i++)
    kv->next[i] = -1;
  kv->k = calloc((size_t)n_layer, sizeof *kv->k);
  kv->v = calloc((size_t)n_layer, sizeof *kv->v);
  if (!kv->cells || !kv->mark || !kv->k || !kv->v)
    return -1;
  size_t bytes = (size_t)kv->pitch * (size_t)row * sizeof(uint16_t);
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
  free(kv->mark);
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

static int cell_open(const kv_cache *kv, int c) {
  return c >= 0 && c < kv->n_cells && !kv->cells[c].seqs && !kv->mark[c];
}

/* How far past its last cell a sequence looks for an open one before it
 * moves to a new run (forks of one prompt interleave within this). */
#define KV_NEAR 64

/* Start of a new run of cells: in the largest run of open cells; in its
 * middle when a sequence grows into it (hint[] holds each sequence's next
 * cell), else at its start. -1 when no cell is open. */
static int new_spot(const kv_cache *kv, const int32_t *hint) {
  int best = -1, best_len = 0;
  for (int c = 0; c < kv->n_cells;) {
    if (!cell_open(kv, c)) {
      c++;
      continue;
    }
    int c0 = c;
    while (c < kv->n_cells && cell_open(kv, c))
      c++;
    if (c - c0 > best_len) {
      best_len = c - c0;
      best = c0;
    }
  }
  if (best <= 0)
    return best;
  for (int s = 0; s < KV_MAX_SEQ; s++)
    if (hint[s] == best)
      return best + best_len / 2;
  return best;
}

/* The cell for the next token of a sequence whose next cell is hint: that
 * one, or an open one shortly after it, or a new run. */
static int place(const kv_cache *kv, const int32_t *hint, int h) {
  if (h >= 0)
    for (int c = h; c < kv->n_cells && c < h + KV_NEAR; c++)
      if (cell_open(kv, c))
        return c;
  return new_spot(kv, hint);
}

int kv_find_cells(kv_cache *kv, const int32_t *seq, int n, int32_t *out) {
  if (n > kv->n_cells - kv->n_used)
    return -1;
  int32_t hint[KV_MAX_SEQ];
  memcpy(hint, kv->next, sizeof hint);
  int k = 0;
  for (; k < n; k++) {
    int s = seq[k], c = place(kv, hint, hint[s]);
    if (c < 0)
      break;
    kv->mark[c] = 1;
    out[k] = c;
    hint[s] = c + 1;
  }
  for (int i = 0; i < k; i++)
    kv->mark[out[i]] = 0;
  return k == n ? 0 : -1;
}

/* next[] of the sequences in mask: after their last cell (-1: none). */
static void reset_next(kv_cache *kv, uint64_t mask) {
  for (int s = 0; s < KV_MAX_SEQ; s++)
    if (mask >> s & 1)
      kv->next[s] = -1;
  for (int c = 0; c < kv->n_cells; c++) {
    uint64_t b = kv->cells[c].seqs & mask;
    while (b) {
      int s = __builtin_ctzll(b);
      b &= b - 1;
      kv->next[s] = c + 1;
    }
  }
}

void kv_claim(kv_cache *kv, int c, int seq, int32_t pos, int32_t token) {
  kv_cell *cell = &kv->cells[c];
  if (!cell->seqs)
    kv->n_used++;
  cell->seqs |= 1ull << seq;
  cell->pos = pos;
  cell->token = token;
  kv->next[seq] = c + 1;
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
  reset_next(kv, mask);
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
  reset_next(kv, db); /* dst grows after the last cell it now shares */
  return 0;
}

void kv_clear(kv_cache *kv) {
  for (int c = 0; c < kv->n_cells; c++)
    kv->cells[c].seqs = 0;
  kv->n_used = 0;
  for (int i = 0; i < KV_MAX_SEQ; i++)
    kv->next[i] = -1;
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
