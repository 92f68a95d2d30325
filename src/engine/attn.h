/* attn.h: the attention of one chunk of tokens over the f16 KV cache
 * (internal to src/engine). The chunk's tokens are grouped by sequence;
 * each query attends to the cells of its own sequence at positions up to
 * its own (causal), optionally only the last `window` positions (sliding
 * window: cells before the window are skipped, not only masked), with
 * scores scaled, optionally soft-capped (softcap * tanh(s / softcap)),
 * softmaxed and applied to the values. Work is cut into items run over the
 * thread pool; the cell range of a single-token group longer than
 * ATTN_CHUNK cells is cut into chunks (flash decoding: each chunk's max,
 * sum of exponentials and partial output, merged in chunk order by the
 * item that finishes last), so a long decode uses every thread. Chunk
 * bounds depend only on the group's range: the results are the same bits
 * for any thread count. Knows nothing about the rest of the forward pass,
 * the public API or the server. */
#ifndef HEARTH_ENGINE_ATTN_H
#define HEARTH_ENGINE_ATTN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/kvcache.h"
#include "engine/threadpool.h"

/* Cells per chunk of a chunked range (at least; at most ATTN_MAX_CHUNKS
 * chunks, so longer ranges get longer chunks). -DATTN_CHUNK=n to tune. On
 * 2 threads (SmolLM2 shapes, attention alone) 512 beat 256 by 10-25% from
 * 1k to 4k cells: each item starts its strided row streams cold, so short
 * chunks cost more than the balance they bring. */
#ifndef ATTN_CHUNK
#define ATTN_CHUNK 512
#endif
#define ATTN_MAX_CHUNKS 16

/* Per-layer attention settings. */
typedef struct {
  float scale;   /* scores are q.k * scale (1/sqrt(head_dim) usually) */
  float softcap; /* > 0: scores become softcap * tanh(score / softcap) */
  int window;    /* > 0: a query at position p sees positions > p - window */
} attn_layer;

/* The chunk's tokens grouped by sequence, and each group's cell range. */
typedef struct attn_group {
  int seq, lo, nr;        /* cells [lo, lo+nr) hold every visible cell */
  int t0, nt;             /* tokens order[t0 .. t0+nt) */
  int32_t minpos, maxpos; /* the group's lowest and highest position */
} attn_group;

/* A work item: queries heads [h0, h0+nh) of kv head g for tokens
 * [t0, t0+nt) of group gi over cells [lo, lo+nr). Chunked (nch > 1):
 * chunk ci of nch of unit `unit` (one token, one block of heads), whose
 * partial results are merged by the last chunk to finish. */
typedef struct attn_item {
  int gi, g, h0, nh, t0, nt;
  int lo, nr;        /* cells; nr 0: nothing to see (an empty chunk) */
  int ci, nch, unit; /* chunk ci of nch; row r of the unit (head h0 + r)
                        keeps its partials in slot unit + r */
} attn_item;

/* The items of one window size (built on first use after a plan). */
typedef struct {
  int window; /* the attn_layer.window they were built for */
  int valid;  /* built since the last attn_plan */
  attn_item *items;
  int n_items, n_units;
} attn_items;

/* The plan of one chunk and every thread's scratch (allocated once). */
typedef struct {
  int n_head, n_head_kv, head_dim, n_ctx, n_seq, n_threads;
  int32_t *order;     /* (n_batch) tokens grouped by sequence */
  attn_group *groups; /* (n_seq) */
  int n_groups;
  attn_items lists[2]; /* [0]: window 0; [1]: the last window > 0 */
  int max_items;       /* capacity of each list */
  int max_units;       /* slots of chunked rows: min(n_batch, n_seq) * n_head */
  int max_chunks;      /* chunks per range at most */
  int rows;            /* rows = tb * heads per kv head */
  int tb;              /* tokens per work item */
  double work;         /* multiply-adds of the chunk's attention */
  float *qf;           /* (n_threads, rows, head_dim) */
  float **outp;        /* (n_threads, rows) output row pointers */
  int32_t *vpos;       /* (n_threads, n_ctx) */
  uint16_t *q16;       /* (n_threads, rows, head_dim) */
  float *s;            /* (n_threads, rows, n_ctx) scores */
  uint16_t *p16;       /* (n_threads, rows, n_ctx) probabilities */
  float *part_o;       /* (max_units, max_chunks, head_dim) partial outputs */
  float *part_ml;      /* (max_units, max_chunks, 2): their max and sum */
  atomic_int *part_done; /* (max_units) chunks of each unit finished */
} attn_state;

/* Allocates the scratch for chunks of up to n_batch tokens. 0, or -1 when
 * out of memory (attn_free cleans up either way). */
int attn_init(attn_state *a, int n_batch, int n_seq, int n_ctx, int n_threads,
              int n_head, int n_head_kv, int head_dim);
void attn_free(attn_state *a);

/* Plans the chunk's tokens tok[0..n) against the cache (their own cells
 * already claimed). */
void attn_plan(attn_state *a, const kv_cache *kv, const eng_batch_tok *tok,
               int n);

/* att[t] = attention of q[t] (rows of n_head * head_dim) for the planned
 * tokens, in layer il of the cache, over the pool (inline when small). */
void attn_run(attn_state *a, tpool *pool, const kv_cache *kv, int il,
              const attn_layer *lp, const eng_batch_tok *tok, const float *q,
              float *att);

#endif
