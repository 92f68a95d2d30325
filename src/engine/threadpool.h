/* Persistent thread pool for the engine's parallel loops (matmul rows,
 * attention heads). Workers are created once, spin briefly waiting for work
 * and then sleep on a futex; tpool_run() hands every worker the same function
 * and waits until all are done. The calling thread participates as thread 0,
 * so a pool of 1 thread runs everything inline. No allocation per call.
 * Knows nothing about models, tensors or kernels. */
#ifndef HEARTH_ENGINE_THREADPOOL_H
#define HEARTH_ENGINE_THREADPOOL_H
#include <stddef.h>

typedef struct tpool tpool;

/* A task: called once per thread with ith in [0, nth). */
typedef void (*tpool_fn)(void *arg, int ith, int nth);

/* Creates a pool of n_threads (>= 1; values < 1 mean "number of CPUs").
 * Returns NULL on allocation or thread-creation failure. */
tpool *tpool_create(int n_threads);

/* Number of threads (including the caller). */
int tpool_n_threads(const tpool *p);

/* Runs fn(arg, ith, nth) on all nth threads and returns when every call has
 * returned. fn must not call tpool_run on the same pool, and only one thread
 * at a time may run tasks on a pool. A NULL pool runs fn(arg, 0, 1) inline. */
void tpool_run(tpool *p, tpool_fn fn, void *arg);

/* As tpool_run but with only the first nth threads (1 <= nth <= n_threads);
 * useful for small jobs where waking every worker costs more than it saves. */
void tpool_run_n(tpool *p, tpool_fn fn, void *arg, int nth);

/* Dynamic variant for work taken from a shared counter: fn(arg, ith, nth)
 * is called by the caller (ith 0) and by those of the other nth-1 threads
 * that arrive before the caller has finished its own call; the caller then
 * waits only for the ones that started. fn must therefore take its work
 * from a shared atomic counter until none is left (never split work by
 * ith). A preempted worker thus never holds the caller up by more than the
 * item it is running. */
void tpool_run_dyn(tpool *p, tpool_fn fn, void *arg);

/* Scratch memory owned by the pool, at least `bytes` long and 64-byte
 * aligned; grows (reallocates) only when a larger size is asked for, so it is
 * allocation-free in steady state. Valid until the next call or tpool_free.
 * Returns NULL on allocation failure (or when p is NULL). Not thread-safe:
 * call it from the thread that calls tpool_run. */
void *tpool_scratch(tpool *p, size_t bytes);

/* Stops and joins the workers and frees the pool. NULL is allowed. */
void tpool_free(tpool *p);

/* Split helper: the [*start, *end) share of thread ith out of nth over n
 * items, in contiguous chunks whose sizes are multiples of `align` (except
 * the last one). */
void tpool_split(long long n, int ith, int nth, long long align,
                 long long *start, long long *end);

#endif
