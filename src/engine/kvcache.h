/* kvcache.h: the f16 key/value cache of one context (internal to
 * src/engine). n_cells cells shared by up to 64 sequences: each cell holds
 * one token's keys and values for every layer, its position, its token id,
 * and the set of sequences that use it (a bit mask), so a prefix shared by
 * several sequences is stored once. Knows nothing about models beyond the
 * sizes it is given, nor about the forward pass or the public API. */
#ifndef HEARTH_ENGINE_KVCACHE_H
#define HEARTH_ENGINE_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#define KV_MAX_SEQ 64

typedef struct {
  int32_t pos;   /* position of the token in its sequences */
  int32_t token; /* token id (for prefix reuse) */
  uint64_t seqs; /* bit s set: sequence s uses this cell; 0 = free */
} kv_cell;

typedef struct {
  int n_cells, n_layer, n_seq;
  int row; /* f16 elements per cell per layer: n_head_kv * head_dim */
  kv_cell *cells;
  int pitch;    /* f16 elements between K/V rows d and d+1: round32(n_cells)
                   + 16 (>= n_cells + 16), so that a head's rows do not all map
                   to the same CPU cache sets (4 KB aliasing at 2^k cells) */
  uint16_t **k; /* [n_layer] -> row x pitch f16: keys (after rope),
                   transposed: element d of cell c at [d * pitch + c] */
  uint16_t **v; /* [n_layer] -> row x pitch f16: values, same layout */
  int n_used;
  int32_t next[KV_MAX_SEQ]; /* cell after each sequence's last claimed one
                               (-1: none): where it grows next */
  uint8_t *mark;            /* (n_cells) scratch of kv_find_cells */
} kv_cache;

/* Allocates the cache. Returns 0 or -1 on allocation failure. */
int kv_init(kv_cache *kv, int n_cells, int n_layer, int row, int n_seq);
void kv_free(kv_cache *kv);
uint64_t kv_bytes(const kv_cache *kv);

/* Finds n free cells and writes their indices to out (ascending). Returns 0,
 * or -1 when fewer than n are free (nothing changed). Does not claim them. */
int kv_find_free(const kv_cache *kv, int n, int32_t *out);
/* Finds a free cell for each of n tokens of sequences seq[0..n) (in batch
 * order) and writes them to out, keeping each sequence's cells together:
 * a token goes to the cell after its sequence's last one when free, else
 * to a new free run (a new sequence starts in the largest one, in its
 * middle when the sequence before it may still grow). Returns 0, or -1
 * when fewer than n are free (nothing changed). Does not claim them. */
int kv_find_cells(kv_cache *kv, const int32_t *seq, int n, int32_t *out);
/* Claims cell c for (seq, pos, token). */
void kv_claim(kv_cache *kv, int c, int seq, int32_t pos, int32_t token);

int32_t kv_seq_pos_max(const kv_cache *kv, int seq);
void kv_seq_rm(kv_cache *kv, int seq, int32_t p0, int32_t p1);
int kv_seq_cp(kv_cache *kv, int src, int dst, int32_t p0, int32_t p1);
void kv_clear(kv_cache *kv);

/* Indices of seq's cells sorted by position; returns the count (<= cap). */
int kv_seq_cells(const kv_cache *kv, int seq, int32_t *out, int cap);

#endif
